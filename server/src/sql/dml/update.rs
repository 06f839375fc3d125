//! UPDATE t SET col = expr, ... [WHERE ...]

use crate::error::{KalamError, Result};
use crate::sql::dml::{existing_rows_target, pk_equality, select_matching, simple_value, writable_column};
use crate::sql::parser::ident_name;
use crate::sql::{ExecContext, results};
use crate::tables::{RowOp, TableWrite};
use crate::values;
use datafusion::sql::sqlparser::ast::{AssignmentTarget, Expr, TableFactor, Update};
use kalamdb_client_core::protocol::QueryResult;

pub(crate) async fn execute(cx: &ExecContext<'_>, upd: &Update) -> Result<QueryResult> {
    if upd.from.is_some()
        || !upd.table.joins.is_empty()
        || upd.returning.is_some()
        || upd.limit.is_some()
        || !upd.order_by.is_empty()
    {
        return Err(KalamError::NotSupported(
            "UPDATE supports one table with SET and WHERE (use a subquery in WHERE instead of FROM/JOIN)".into(),
        ));
    }
    let TableFactor::Table { name, .. } = &upd.table.relation else {
        return Err(KalamError::NotSupported("UPDATE target must be a table".into()));
    };
    let table = existing_rows_target(cx, name)?;

    let mut targets = Vec::with_capacity(upd.assignments.len());
    for a in &upd.assignments {
        let AssignmentTarget::ColumnName(col) = &a.target else {
            return Err(KalamError::NotSupported("tuple assignments are not supported".into()));
        };
        let Some(column) = col.0.last().and_then(|p| p.as_ident()) else {
            return Err(KalamError::NotSupported(format!("unsupported assignment target '{col}'")));
        };
        let idx = writable_column(&table, &ident_name(column))?;
        if idx == table.primary_key {
            return Err(KalamError::Validation(format!(
                "the primary key '{}' cannot be updated; delete and insert instead",
                table.pk().name
            )));
        }
        if targets.iter().any(|(i, _)| *i == idx) {
            return Err(KalamError::Validation(format!("column '{}' is assigned twice", table.columns[idx].name)));
        }
        targets.push((idx, &a.value));
    }

    let partition = cx.partition(&table);
    let lock = cx.db.partition_locks.get((table.id, partition));
    let _guard = lock.lock().await;

    // Point update with plain values: no query engine needed.
    if let Some(pk) = pk_equality(cx, &table, upd.selection.as_ref()) {
        let pk = pk?;
        let set = targets
            .iter()
            .map(|(idx, expr)| {
                let col = &table.columns[*idx];
                simple_value(cx, expr, col.data_type, &col.name).map(|v| v.map(|v| (*idx, v)))
            })
            .collect::<Option<Result<Vec<_>>>>();
        if let Some(set) = set {
            let set = set?;
            check_not_null(&table, &set)?;
            let r = cx
                .db
                .commit(vec![TableWrite { table: &table, partition, ops: vec![RowOp::Update { pk, set }] }], None)
                .await?;
            return Ok(results::message(r.affected, format!("Updated {} row(s)", r.affected)));
        }
    }

    // General case: compute the key and new values of every matching row in the caller's
    // scope, then commit them.
    let exprs: Vec<&Expr> = targets.iter().map(|(_, e)| *e).collect();
    let batches = select_matching(cx, &table, &upd.table, &exprs, upd.selection.as_ref()).await?;
    let mut ops = Vec::new();
    for batch in &batches {
        for r in 0..batch.num_rows() {
            let pk = values::from_arrow(batch.column(0).as_ref(), r)?;
            let pk = values::coerce(pk, table.pk().data_type, &table.pk().name)?;
            let mut set = Vec::with_capacity(targets.len());
            for (c, (idx, _)) in targets.iter().enumerate() {
                let col = &table.columns[*idx];
                let v = values::from_arrow(batch.column(c + 1).as_ref(), r)?;
                set.push((*idx, values::coerce(v, col.data_type, &col.name)?));
            }
            check_not_null(&table, &set)?;
            ops.push(RowOp::Update { pk, set });
        }
    }
    let r = cx.db.commit(vec![TableWrite { table: &table, partition, ops }], None).await?;
    Ok(results::message(r.affected, format!("Updated {} row(s)", r.affected)))
}

pub(crate) fn check_not_null(table: &crate::schema::TableDef, set: &[(usize, values::Value)]) -> Result<()> {
    for (idx, v) in set {
        let col = &table.columns[*idx];
        if v.is_null() && !col.nullable {
            return Err(KalamError::Validation(format!("column '{}' cannot be NULL", col.name)));
        }
    }
    Ok(())
}
