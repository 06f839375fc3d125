//! Subscriptions: `SELECT cols FROM t [WHERE ...]` planned into a [`LiveQuery`] for the
//! caller (their table, partition and rights), which the live registry then evaluates
//! against each committed change.
//!
//! The SQL is checked against the query language's one definition, `kalamdb-query` — its
//! shape, then its names and types against the table — exactly as the client checks and
//! evaluates it, so a subscription the client accepts is one the server accepts, with the
//! same message when it is not. It is then lowered to a DataFusion expression, which
//! evaluates it (the differential test holds the two evaluations equal).

use crate::error::{KalamError, Result};
use crate::live::LiveQuery;
use crate::schema::{DELETED_COLUMN, TableDef, UPDATED_COLUMN};
use crate::sql::ast::Statement as KalamStatement;
use crate::sql::parser::{Script, ident_name};
use crate::sql::{ExecContext, session};
use crate::tables::SystemColumns;
use datafusion::common::DFSchema;
use datafusion::sql::sqlparser::ast::{
    Expr, ExprWithAlias, SelectItem, SetExpr, Statement, TableFactor, visit_expressions, visit_expressions_mut,
};
use std::ops::ControlFlow;

/// Longest subscription SQL accepted.
pub(crate) const MAX_QUERY_BYTES: usize = 16 * 1024;

/// Parses and plans `SELECT cols FROM t [WHERE ...]` for the context's principal.
pub(crate) fn plan(cx: &ExecContext<'_>, sql: &str) -> Result<LiveQuery> {
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
    // sqlparser first: its recursion limit answers input nested too deeply (TOO_LARGE).
    let statement = script.statement(0)?;
    kalamdb_query::parse_subscription(sql).map_err(language_error)?;
    let KalamStatement::Sql(statement) = statement else {
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
    if !matches!(&select.group_by, datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(e, _) if e.is_empty()) {
        return Err(unsupported("GROUP BY"));
    }
    let TableFactor::Table { name, alias, .. } = &select.from[0].relation else {
        return Err(unsupported("a subquery or table function"));
    };
    let table = cx.resolve_table(&crate::sql::dml::table_ref(name)?)?;
    cx.check_read(&table)?;
    let subscribed = SubscribedTable::new(&table, &cx.principal.username);
    kalamdb_query::plan(sql, &subscribed, &[]).map_err(language_error)?;
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
                    KalamError::Validation(format!("column '{name}' does not exist in '{}'", table.qualified_name()))
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

/// A refusal of the query language, with the error code it gets everywhere.
fn language_error(e: kalamdb_query::QueryError) -> KalamError {
    use kalamdb_query::QueryError as Q;
    match e {
        Q::Syntax { .. } => KalamError::Parse(e.to_string()),
        Q::Unsupported { .. } | Q::NotInSubscription { .. } => KalamError::NotSupported(e.to_string()),
        Q::UnknownTable(_) | Q::UnknownColumn(_) | Q::AmbiguousColumn(_) | Q::Type { .. } | Q::Eval { .. } => {
            KalamError::Validation(e.to_string())
        }
    }
}

/// The subscribed table (already resolved and checked for the caller's rights) as the query
/// language's catalog: its columns, `_updated` and `_deleted`, and the caller as
/// `current_user()`.
struct SubscribedTable {
    schema: kalamdb_query::TableSchema,
    user: String,
}

impl SubscribedTable {
    fn new(table: &TableDef, user: &str) -> SubscribedTable {
        use kalamdb_query::{ColumnDef, DataType};
        let mut columns = Vec::with_capacity(table.columns.len() + 2);
        for c in &table.columns {
            columns.push(ColumnDef::new(c.name.clone(), c.data_type, c.nullable));
        }
        if table.has_system_columns() {
            columns.push(ColumnDef::new(UPDATED_COLUMN, DataType::Timestamp, false));
            columns.push(ColumnDef::new(DELETED_COLUMN, DataType::Boolean, false));
        }
        let schema = kalamdb_query::TableSchema {
            namespace: table.namespace.as_str().to_string(),
            name: table.name.clone(),
            columns,
            primary_key: vec![table.primary_key],
        };
        SubscribedTable { schema, user: user.to_string() }
    }
}

impl kalamdb_query::Catalog for SubscribedTable {
    fn table(&self, namespace: Option<&str>, name: &str) -> Option<kalamdb_query::TableSchema> {
        // The one table the subscription names, which the server resolved already (a bare
        // name through the connection's namespace).
        let ours = name == self.schema.name && namespace.is_none_or(|ns| ns == self.schema.namespace);
        ours.then(|| self.schema.clone())
    }

    fn current_user(&self) -> Option<String> {
        Some(self.user.clone())
    }
}
