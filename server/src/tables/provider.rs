//! DataFusion access to one partition of a USER or SHARED table.
//!
//! A provider is created per query for the caller's scope: a USER table resolves to the
//! caller's own partition (or the `EXECUTE AS` target's), so every SQL shape — joins,
//! subqueries, CTEs, UNIONs — can only ever read rows of that one partition.

use crate::catalog::TableDef;
use crate::error::{KalamError, Result};
use crate::ids::Partition;
use crate::storage::row_codec::{self, StoredRow};
use crate::storage::{CF_ROWS, Store, keys};
use crate::values::{self, Value};
use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::memory::MemorySourceConfig;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use std::sync::Arc;

/// Whether a query sees `_updated` / `_deleted`. They are hidden from `SELECT *` unless the
/// statement names one of them; tombstones are returned only when it names `_deleted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemColumns {
    Hidden,
    /// Columns visible, tombstones still hidden (the statement names `_updated` only).
    Visible,
    /// Columns visible and tombstones included (the statement names `_deleted`).
    VisibleWithTombstones,
}

#[derive(Debug)]
pub struct PartitionTableProvider {
    table: Arc<TableDef>,
    partition: Partition,
    system_columns: SystemColumns,
    schema: SchemaRef,
    store: Arc<Store>,
}

impl PartitionTableProvider {
    pub fn new(table: Arc<TableDef>, partition: Partition, system_columns: SystemColumns, store: Arc<Store>) -> Self {
        let schema = table.arrow_schema(system_columns != SystemColumns::Hidden);
        PartitionTableProvider { table, partition, system_columns, schema, store }
    }

    /// The primary-key value if `expr` is `pk = literal` (either way round).
    fn pk_equality(&self, expr: &Expr) -> Option<Value> {
        let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) = expr else { return None };
        let (col, lit) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) => (c, v),
            _ => return None,
        };
        if col.name != self.table.pk().name {
            return None;
        }
        match lit {
            ScalarValue::Int8(Some(i)) => Some(Value::Int(*i as i64)),
            ScalarValue::Int16(Some(i)) => Some(Value::Int(*i as i64)),
            ScalarValue::Int32(Some(i)) => Some(Value::Int(*i as i64)),
            ScalarValue::Int64(Some(i)) => Some(Value::Int(*i)),
            ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => {
                Some(Value::Text(s.clone()))
            }
            _ => None,
        }
    }

    /// Reads the partition's live rows (and tombstones if the mode says so), or only the
    /// row with `pk` when given.
    pub fn read_rows(&self, pk: Option<&Value>, limit: Option<usize>) -> Result<Vec<StoredRow>> {
        let with_tombstones = self.system_columns == SystemColumns::VisibleWithTombstones;
        let mut rows = Vec::new();
        if let Some(pk) = pk {
            let key = keys::row_key(self.table.id, self.partition, &keys::encode_pk(pk)?);
            if let Some(bytes) = self.store.get(CF_ROWS, &key)? {
                let row = row_codec::decode(&self.table, &bytes)?;
                if with_tombstones || !row.deleted {
                    rows.push(row);
                }
            }
            return Ok(rows);
        }
        let prefix = keys::partition_prefix(self.table.id, self.partition);
        let mut err = None;
        self.store.for_each_prefix(CF_ROWS, &prefix, |_, v| {
            match row_codec::decode_header(v) {
                Ok((_, true)) if !with_tombstones => return true,
                Ok(_) => {}
                Err(e) => {
                    err = Some(e);
                    return false;
                }
            }
            match row_codec::decode(&self.table, v) {
                Ok(row) => rows.push(row),
                Err(e) => {
                    err = Some(e);
                    return false;
                }
            }
            limit.is_none_or(|l| rows.len() < l)
        })?;
        match err {
            Some(e) => Err(e),
            None => Ok(rows),
        }
    }
}

/// Rows of `table` as a record batch: the user columns, then `_updated` and `_deleted` when
/// `with_system` (never for STREAM tables), keeping only `projection` (indexes into that
/// schema) if given.
pub fn rows_to_batch(
    table: &TableDef,
    rows: &[&StoredRow],
    with_system: bool,
    projection: Option<&[usize]>,
) -> Result<RecordBatch> {
    let full = table.arrow_schema(with_system);
    let n_user = table.columns.len();
    let all: Vec<usize> = (0..full.fields().len()).collect();
    let indices = projection.unwrap_or(&all);
    let schema = Arc::new(full.project(indices).map_err(KalamError::internal)?);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(indices.len());
    for &i in indices {
        let array: ArrayRef = if i < n_user {
            let vals: Vec<&Value> = rows.iter().map(|r| &r.values[i]).collect();
            values::to_arrow(table.columns[i].data_type, &vals)?
        } else if i == n_user {
            Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.updated)))
        } else {
            Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.deleted))))
        };
        columns.push(array);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
    RecordBatch::try_new_with_options(schema, columns, &options).map_err(KalamError::internal)
}

#[async_trait]
impl TableProvider for PartitionTableProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Primary-key equality turns the scan into a point read; DataFusion still re-checks
        // every filter (Inexact), so correctness never depends on this.
        Ok(filters
            .iter()
            .map(|f| match self.pk_equality(f) {
                Some(_) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let pk = filters.iter().find_map(|f| self.pk_equality(f));
        // A limit is only safe to apply here when no filter remains to be evaluated above.
        let limit = if filters.is_empty() { limit } else { None };
        let rows = self.read_rows(pk.as_ref(), limit).map_err(KalamError::into_datafusion)?;
        let refs: Vec<&StoredRow> = rows.iter().collect();
        let with_system = self.system_columns != SystemColumns::Hidden;
        let batch = rows_to_batch(&self.table, &refs, with_system, projection.map(|p| p.as_slice()))
            .map_err(KalamError::into_datafusion)?;
        let schema = batch.schema();
        Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], schema, None)?)
    }
}
