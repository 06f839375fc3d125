//! DELETE FROM t [WHERE ...]: a soft delete (tombstones with a new `_updated`).

use crate::error::{KalamError, Result};
use crate::sql::dml::{existing_rows_target, pk_equality, select_matching};
use crate::sql::{ExecContext, results};
use crate::tables::{RowOp, TableWrite};
use crate::values;
use datafusion::sql::sqlparser::ast::{Delete, FromTable, TableFactor};
use kalamdb_client_core::protocol::QueryResult;

pub(crate) async fn execute(cx: &ExecContext<'_>, del: &Delete) -> Result<QueryResult> {
    let from = match &del.from {
        FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
    };
    if from.len() != 1
        || !from[0].joins.is_empty()
        || !del.tables.is_empty()
        || del.using.is_some()
        || del.returning.is_some()
        || del.limit.is_some()
        || !del.order_by.is_empty()
    {
        return Err(KalamError::NotSupported(
            "DELETE supports one table with WHERE (use a subquery in WHERE instead of USING/JOIN)".into(),
        ));
    }
    let TableFactor::Table { name, .. } = &from[0].relation else {
        return Err(KalamError::NotSupported("DELETE target must be a table".into()));
    };
    let table = existing_rows_target(cx, name)?;
    let partition = cx.partition(&table);
    let lock = cx.db.partition_locks.get((table.id, partition));
    let _guard = lock.lock().await;

    let ops = match pk_equality(cx, &table, del.selection.as_ref()) {
        Some(pk) => vec![RowOp::Delete { pk: pk? }],
        None => {
            let batches = select_matching(cx, &table, &from[0], &[], del.selection.as_ref()).await?;
            let mut ops = Vec::new();
            for batch in &batches {
                for r in 0..batch.num_rows() {
                    let pk = values::from_arrow(batch.column(0).as_ref(), r)?;
                    ops.push(RowOp::Delete { pk: values::coerce(pk, table.pk().data_type, &table.pk().name)? });
                }
            }
            ops
        }
    };
    let r = cx.db.commit(vec![TableWrite { table: &table, partition, ops }], None).await?;
    Ok(results::message(r.affected, format!("Deleted {} row(s)", r.affected)))
}
