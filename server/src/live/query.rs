//! A subscription's SQL, compiled once: which table and partition it watches, which columns
//! it sends, and the WHERE predicate as a DataFusion physical expression evaluated against
//! rows (a whole batch during catch-up, one row per live change).

use crate::budget::StatementBudget;
use crate::error::{KalamError, Result};
use crate::ids::Partition;
use crate::schema::{ColumnId, TableDef};
use crate::sql::ast::Statement as KalamStatement;
use crate::sql::parser::{Script, ident_name};
use crate::sql::{ExecContext, session};
use crate::storage::row_codec::StoredRow;
use crate::storage::row_codec::rows_to_batch;
use crate::tables::SystemColumns;
use crate::values::{self, Value};
use datafusion::arrow::array::{Array, BooleanArray, RecordBatch};
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::sql::sqlparser::ast::{
    Expr, ExprWithAlias, SelectItem, SetExpr, Statement, TableFactor, visit_expressions, visit_expressions_mut,
};
use kalamdb_client_core::protocol::ColumnInfo;
use std::ops::ControlFlow;
use std::sync::Arc;

/// Longest subscription SQL accepted.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;

#[derive(Debug)]
pub struct LiveQuery {
    pub table: Arc<TableDef>,
    pub partition: Partition,
    /// Indexes into `table.columns` of the columns sent, primary key included.
    pub columns: Vec<usize>,
    /// Columns the SQL names (projection and WHERE; `*` names none): ALTER TABLE refuses to
    /// drop or rename them while the subscription lives.
    pub named_columns: Vec<ColumnId>,
    filter: Option<Arc<dyn PhysicalExpr>>,
    /// What the filter's evaluations may spend (its memory counts against the subscriber).
    budget: Option<Arc<StatementBudget>>,
    /// The filter depends on who evaluates it (`CURRENT_USER()`), so its results cannot be
    /// shared with other users' subscriptions.
    pub user_dependent: bool,
}

impl LiveQuery {
    /// Parses and plans `SELECT cols FROM t [WHERE ...]` for the context's principal.
    pub fn plan(cx: &ExecContext<'_>, sql: &str) -> Result<LiveQuery> {
        if sql.len() > MAX_QUERY_BYTES {
            return Err(KalamError::TooLarge(format!("subscription SQL is longer than {MAX_QUERY_BYTES} bytes")));
        }
        let unsupported = |what: &str| {
            KalamError::NotSupported(format!(
                "subscriptions support SELECT columns FROM one table [WHERE ...]; {what} is not supported"
            ))
        };
        let script = Script::tokenize(sql)?;
        if script.len() != 1 {
            return Err(unsupported("anything but a single SELECT"));
        }
        let KalamStatement::Sql(statement) = script.statement(0)? else {
            return Err(unsupported("anything but a single SELECT"));
        };
        let Statement::Query(query) = *statement else {
            return Err(unsupported("anything but a single SELECT"));
        };
        if query.with.is_some() || query.order_by.is_some() || query.limit_clause.is_some() || query.fetch.is_some() {
            return Err(unsupported("WITH, ORDER BY or LIMIT"));
        }
        let SetExpr::Select(select) = *query.body else { return Err(unsupported("UNION or VALUES")) };
        if select.from.len() != 1 || !select.from[0].joins.is_empty() {
            return Err(unsupported("a join or several tables"));
        }
        if select.distinct.is_some()
            || select.having.is_some()
            || select.qualify.is_some()
            || !select.named_window.is_empty()
        {
            return Err(unsupported("DISTINCT, HAVING or windows"));
        }
        if !matches!(&select.group_by, datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(e, _) if e.is_empty())
        {
            return Err(unsupported("GROUP BY"));
        }
        let TableFactor::Table { name, alias, .. } = &select.from[0].relation else {
            return Err(unsupported("a subquery or table function"));
        };
        let table = cx.resolve_table(&crate::sql::dml::table_ref(name)?)?;
        cx.check_read(&table)?;
        let alias = alias.as_ref().map(|a| ident_name(&a.name));

        let mut columns = Vec::new();
        let mut named_columns = Vec::new();
        for item in &select.projection {
            match item {
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(_, _) => columns.extend(0..table.columns.len()),
                SelectItem::UnnamedExpr(expr) => {
                    let name = column_name(expr, alias.as_deref(), &table)
                        .ok_or_else(|| unsupported(&format!("the expression '{expr}' (select plain columns)")))?;
                    let idx = table.column_index(&name).ok_or_else(|| {
                        KalamError::Validation(format!(
                            "column '{name}' does not exist in '{}'",
                            table.qualified_name()
                        ))
                    })?;
                    columns.push(idx);
                    named_columns.push(table.columns[idx].id);
                }
                other => return Err(unsupported(&format!("'{other}'"))),
            }
        }
        let mut seen = std::collections::HashSet::new();
        columns.retain(|c| seen.insert(*c));
        if !columns.contains(&table.primary_key) {
            columns.insert(0, table.primary_key);
        }

        let user_dependent = select.selection.as_ref().is_some_and(|e| {
            visit_expressions(e, |e| match e {
                Expr::Function(f)
                    if f.name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| {
                        ["current_user", "session_user", "user", "current_role"].contains(&ident_name(i).as_str())
                    }) =>
                {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            })
            .is_break()
        });
        let mut budget = None;
        let filter = match &select.selection {
            None => None,
            Some(expr) => {
                let has_subquery = visit_expressions(expr, |e| match e {
                    Expr::Subquery(_) | Expr::InSubquery { .. } | Expr::Exists { .. } => ControlFlow::Break(()),
                    _ => ControlFlow::Continue(()),
                });
                if has_subquery.is_break() {
                    return Err(unsupported("a subquery in WHERE"));
                }
                let _ = visit_expressions(expr, |e| {
                    let name = match e {
                        Expr::Identifier(i) => Some(i),
                        Expr::CompoundIdentifier(parts) => parts.last(),
                        _ => None,
                    };
                    if let Some(i) = name.and_then(|n| table.column_index(&ident_name(n))) {
                        named_columns.push(table.columns[i].id);
                    }
                    ControlFlow::<()>::Continue(())
                });
                let (ctx, filter_budget) =
                    session::context_for(cx.db, &cx.principal, cx.namespace.as_ref(), SystemColumns::Hidden);
                budget = Some(filter_budget);
                let schema = DFSchema::try_from(table.arrow_schema(true).as_ref().clone())?;
                // The predicate is evaluated against bare column names: drop qualifiers.
                let mut expr = expr.clone();
                let _ = visit_expressions_mut(&mut expr, |e| {
                    if let Expr::CompoundIdentifier(parts) = e
                        && let Some(last) = parts.last().cloned()
                    {
                        *e = Expr::Identifier(last);
                    }
                    ControlFlow::<()>::Continue(())
                });
                let state = ctx.state();
                let logical = state.create_logical_expr_from_sql_expr(ExprWithAlias { expr, alias: None }, &schema)?;
                // Functions in a filter are metered like in a query (the budget travels in
                // the state's config, which the physical expression keeps). A filter without
                // functions needs no budget: thousands of subscriptions would each hold one.
                let metered = crate::budget::meter_expr(logical, &schema)?;
                if !metered.transformed {
                    budget = None;
                }
                let logical = metered.data;
                Some(state.create_physical_expr(logical, &schema)?)
            }
        };
        let partition = cx.partition(&table);
        named_columns.sort_unstable();
        named_columns.dedup();
        Ok(LiveQuery { table, partition, columns, named_columns, filter, budget, user_dependent })
    }

    /// Columns sent for this subscription: name, type, stable id and fill value.
    /// Every column of `table`, no filter: what `SELECT * FROM t` plans to, for tests.
    #[cfg(test)]
    pub(crate) fn unfiltered(table: Arc<TableDef>, partition: Partition) -> LiveQuery {
        LiveQuery {
            columns: (0..table.columns.len()).collect(),
            table,
            partition,
            named_columns: Vec::new(),
            filter: None,
            budget: None,
            user_dependent: false,
        }
    }

    pub fn schema(&self) -> Vec<ColumnInfo> {
        self.columns
            .iter()
            .map(|&i| {
                let c = &self.table.columns[i];
                ColumnInfo {
                    id: Some(c.id),
                    default: c.has_fill().then(|| values::to_json(&c.fill(), c.data_type)),
                    ..ColumnInfo::new(c.name.clone(), c.data_type.sql_name())
                }
            })
            .collect()
    }

    /// Whether the filter calls no functions: its cost is then bounded by the size of the
    /// row it reads (comparisons, arithmetic, LIKE), so it can be presumed cheap before it
    /// has ever run.
    pub fn is_function_free(&self) -> bool {
        self.budget.is_none()
    }

    /// Which rows of `batch` (built by [`to_batch`] from this table) match the WHERE.
    pub fn matches_batch(&self, batch: &RecordBatch) -> Result<Vec<bool>> {
        let n = batch.num_rows();
        let Some(filter) = &self.filter else { return Ok(vec![true; n]) };
        let result = filter.evaluate(batch).and_then(|r| r.into_array(n));
        if let Some(budget) = &self.budget {
            budget.settle();
        }
        let result = result?;
        let bools = result
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| KalamError::Validation("the subscription's WHERE is not a boolean condition".into()))?;
        Ok((0..n).map(|i| bools.is_valid(i) && bools.value(i)).collect())
    }

    /// The subscription's columns of a row, as JSON values in the sync form (CRDT_TEXT cells
    /// as `{"text", "state"}`).
    pub fn project(&self, values: &[Value]) -> Vec<serde_json::Value> {
        self.columns.iter().map(|&i| values::to_sync_json(&values[i], self.table.columns[i].data_type)).collect()
    }

    /// The primary key of a row, as JSON.
    pub fn pk_json(&self, values: &[Value]) -> serde_json::Value {
        values::to_json(&values[self.table.primary_key], self.table.pk().data_type)
    }
}

/// `col`, `alias.col` or `"col"` → the column name.
fn column_name(expr: &Expr, alias: Option<&str>, table: &TableDef) -> Option<String> {
    match expr {
        Expr::Identifier(i) => Some(ident_name(i)),
        Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
            let q = ident_name(&parts[0]);
            (Some(q.as_str()) == alias || q == table.name).then(|| ident_name(&parts[1]))
        }
        _ => None,
    }
}

/// Rows as a record batch with the table's full schema (user columns, then `_updated` and
/// `_deleted` unless it is a STREAM table): what subscription predicates are planned against.
pub fn to_batch(table: &TableDef, rows: &[&StoredRow]) -> Result<RecordBatch> {
    rows_to_batch(table, rows, table.has_system_columns(), None)
}
