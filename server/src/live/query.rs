//! A subscription's SQL, compiled once (by [`crate::sql::subscription`]): which table and
//! partition it watches, which columns it sends, and the WHERE predicate as a DataFusion
//! physical expression evaluated against rows (a whole batch during catch-up, one row per
//! live change).

use crate::budget::StatementBudget;
use crate::error::{KalamError, Result};
use crate::ids::Partition;
use crate::schema::{ColumnId, TableDef};
use crate::storage::row_codec::StoredRow;
use crate::storage::row_codec::rows_to_batch;
use crate::values::{self, Value};
use datafusion::arrow::array::{Array, BooleanArray, RecordBatch};
use datafusion::physical_expr::PhysicalExpr;
use kalamdb_client_core::protocol::ColumnInfo;
use std::sync::Arc;

#[derive(Debug)]
pub(crate) struct LiveQuery {
    pub table: Arc<TableDef>,
    pub partition: Partition,
    /// Indexes into `table.columns` of the columns sent, primary key included.
    pub columns: Vec<usize>,
    /// Columns the SQL names (projection and WHERE; `*` names none): ALTER TABLE refuses to
    /// drop or rename them while the subscription lives.
    pub named_columns: Vec<ColumnId>,
    pub(crate) filter: Option<Arc<dyn PhysicalExpr>>,
    /// What the filter's evaluations may spend (its memory counts against the subscriber).
    pub(crate) budget: Option<Arc<StatementBudget>>,
    /// The filter depends on who evaluates it (`CURRENT_USER()`), so its results cannot be
    /// shared with other users' subscriptions.
    pub user_dependent: bool,
}

impl LiveQuery {
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

    pub(crate) fn schema(&self) -> Vec<ColumnInfo> {
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
    pub(crate) fn is_function_free(&self) -> bool {
        self.budget.is_none()
    }

    /// Which rows of `batch` (built by [`to_batch`] from this table) match the WHERE.
    pub(crate) fn matches_batch(&self, batch: &RecordBatch) -> Result<Vec<bool>> {
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
    pub(crate) fn project(&self, values: &[Value]) -> Vec<serde_json::Value> {
        self.columns.iter().map(|&i| values::to_sync_json(&values[i], self.table.columns[i].data_type)).collect()
    }

    /// The primary key of a row, as JSON.
    pub(crate) fn pk_json(&self, values: &[Value]) -> serde_json::Value {
        values::to_json(&values[self.table.primary_key], self.table.pk().data_type)
    }
}

/// Rows as a record batch with the table's full schema (user columns, then `_updated` and
/// `_deleted` unless it is a STREAM table): what subscription predicates are planned against.
pub(crate) fn to_batch(table: &TableDef, rows: &[&StoredRow]) -> Result<RecordBatch> {
    rows_to_batch(table, rows, table.has_system_columns(), None)
}
