//! The primary-key fast path: `SELECT <columns | *> FROM t WHERE pk = <value>` is answered
//! with one key lookup instead of a DataFusion plan. The result is identical to the planned
//! query's (same columns, types and value encoding); anything else takes the general path.

use crate::error::Result;
use crate::schema::TableKind;
use crate::sql::ExecContext;
use crate::sql::dml::{pk_equality, table_ref};
use crate::sql::parser::ident_name;
use crate::values;
use datafusion::sql::sqlparser::ast::{Expr, GroupByExpr, SelectItem, SetExpr, Statement, TableFactor};
use kalamdb_client_core::protocol::{ColumnInfo, QueryResult};

/// `Some(result)` if `stmt` is a primary-key point read, `None` if it needs the planner.
pub(crate) async fn try_execute(cx: &ExecContext<'_>, stmt: &Statement) -> Option<Result<QueryResult>> {
    let Statement::Query(query) = stmt else { return None };
    if query.with.is_some() || query.order_by.is_some() || query.limit_clause.is_some() || query.fetch.is_some() {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else { return None };
    let plain = select.distinct.is_none()
        && select.having.is_none()
        && select.qualify.is_none()
        && select.named_window.is_empty()
        && select.top.is_none()
        && select.into.is_none()
        && select.lateral_views.is_empty()
        && matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
        && select.from.len() == 1
        && select.from[0].joins.is_empty();
    if !plain {
        return None;
    }
    let TableFactor::Table { name, alias: None, args: None, with_hints, .. } = &select.from[0].relation else {
        return None;
    };
    if !with_hints.is_empty() {
        return None;
    }
    let table = cx.resolve_table(&table_ref(name).ok()?).ok()?;
    if table.kind == TableKind::Stream {
        return None;
    }
    let mut columns = Vec::new();
    for item in &select.projection {
        match item {
            SelectItem::Wildcard(opts) if opts.opt_exclude.is_none() && opts.opt_except.is_none() => {
                columns.extend(0..table.columns.len())
            }
            SelectItem::UnnamedExpr(Expr::Identifier(ident)) => columns.push(table.column_index(&ident_name(ident))?),
            _ => return None,
        }
    }
    let pk = pk_equality(cx, &table, select.selection.as_ref())?;
    Some(
        async {
            cx.check_read(&table)?;
            let pk = pk?;
            let row = cx.db.committer.get(&table, cx.partition(&table), &pk).await?.filter(|r| !r.deleted);
            let schema = columns
                .iter()
                .map(|&i| ColumnInfo::new(table.columns[i].name.clone(), table.columns[i].data_type.sql_name()))
                .collect();
            let rows: Vec<Vec<serde_json::Value>> = row
                .into_iter()
                .map(|r| columns.iter().map(|&i| values::to_json(&r.values[i], table.columns[i].data_type)).collect())
                .collect();
            Ok(QueryResult { schema, row_count: rows.len() as u64, rows, message: None })
        }
        .await,
    )
}
