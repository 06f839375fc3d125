//! DataFusion access to one partition of a USER or SHARED table.
//!
//! A provider is created per query for the caller's scope: a USER table resolves to the
//! caller's own partition (or the `EXECUTE AS` target's), so every SQL shape — joins,
//! subqueries, CTEs, UNIONs — can only ever read rows of that one partition.
//!
//! A scan streams the hot rows and, once the partition has been flushed, its Parquet files
//! (pruned by the manifest's statistics for comparisons on `_updated` and on columns),
//! merged by [`crate::cold::merge::ScanSource`]: newest `_updated` per key wins,
//! tombstones hide rows, and memory is bounded by the batch size.

use crate::cold::ColdStore;
use crate::cold::merge::{CompareOp, FilePredicate, ScanSource, ScanSpec, StatColumn};
use crate::error::{KalamError, Result};
use crate::ids::Partition;
use crate::schema::{TableDef, UPDATED_COLUMN};
use crate::storage::row_codec::{self, StoredRow, rows_to_batch};
use crate::storage::{CF_ROWS, Store, keys};
use crate::types::DataType;
use crate::values::Value;
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::memory::MemorySourceConfig;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::error::Result as DfResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use futures::StreamExt;
use std::sync::Arc;

/// Whether a query sees `_updated` / `_deleted`. They are hidden from `SELECT *` unless the
/// statement names one of them; tombstones are returned only when it names `_deleted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SystemColumns {
    Hidden,
    /// Columns visible, tombstones still hidden (the statement names `_updated` only).
    Visible,
    /// Columns visible and tombstones included (the statement names `_deleted`).
    VisibleWithTombstones,
}

#[derive(Debug)]
pub(crate) struct PartitionTableProvider {
    table: Arc<TableDef>,
    partition: Partition,
    system_columns: SystemColumns,
    schema: SchemaRef,
    store: Arc<Store>,
    cold: Arc<ColdStore>,
}

impl PartitionTableProvider {
    pub(crate) fn new(
        table: Arc<TableDef>,
        partition: Partition,
        system_columns: SystemColumns,
        store: Arc<Store>,
        cold: Arc<ColdStore>,
    ) -> Self {
        let schema = table.arrow_schema(system_columns != SystemColumns::Hidden);
        PartitionTableProvider { table, partition, system_columns, schema, store, cold }
    }

    /// The primary-key value if `expr` is `pk = literal` (either way round).
    fn pk_equality(&self, expr: &Expr) -> Option<Value> {
        let (col, CompareOp::Eq, lit) = column_comparison(expr)? else { return None };
        if col != self.table.pk().name {
            return None;
        }
        match lit {
            ScalarValue::Int8(Some(i)) => Some(Value::Int(i as i64)),
            ScalarValue::Int16(Some(i)) => Some(Value::Int(i as i64)),
            ScalarValue::Int32(Some(i)) => Some(Value::Int(i as i64)),
            ScalarValue::Int64(Some(i)) => Some(Value::Int(i)),
            ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => {
                Some(Value::Text(s))
            }
            _ => None,
        }
    }

    /// A predicate cold files can be pruned by, if `expr` is `column op literal` on a column
    /// with statistics.
    fn file_predicate(&self, expr: &Expr) -> Option<FilePredicate> {
        let (col, op, lit) = column_comparison(expr)?;
        if col == UPDATED_COLUMN {
            let value = match lit {
                ScalarValue::TimestampMicrosecond(Some(t), _) => Value::Timestamp(t),
                ScalarValue::TimestampMillisecond(Some(t), _) => Value::Timestamp(t.checked_mul(1_000)?),
                ScalarValue::TimestampSecond(Some(t), _) => Value::Timestamp(t.checked_mul(1_000_000)?),
                ScalarValue::TimestampNanosecond(Some(t), _) if t % 1_000 == 0 => Value::Timestamp(t / 1_000),
                _ => return None,
            };
            return Some(FilePredicate { column: StatColumn::Updated, op, value });
        }
        let i = self.table.column_index(&col)?;
        let value = match (self.table.columns[i].data_type, lit) {
            (DataType::SmallInt | DataType::Int | DataType::BigInt, l) => Value::Int(match l {
                ScalarValue::Int8(Some(v)) => v as i64,
                ScalarValue::Int16(Some(v)) => v as i64,
                ScalarValue::Int32(Some(v)) => v as i64,
                ScalarValue::Int64(Some(v)) => v,
                _ => return None,
            }),
            (DataType::Float | DataType::Double, l) => Value::Float(match l {
                ScalarValue::Float32(Some(v)) => v as f64,
                ScalarValue::Float64(Some(v)) => v,
                _ => return None,
            }),
            (
                DataType::Text,
                ScalarValue::Utf8(Some(v)) | ScalarValue::Utf8View(Some(v)) | ScalarValue::LargeUtf8(Some(v)),
            ) => Value::Text(v),
            (DataType::Boolean, ScalarValue::Boolean(Some(v))) => Value::Bool(v),
            (DataType::Date, ScalarValue::Date32(Some(v))) => Value::Date(v),
            (DataType::Timestamp, ScalarValue::TimestampMicrosecond(Some(v), _)) => Value::Timestamp(v),
            (DataType::Decimal { scale, .. }, ScalarValue::Decimal128(Some(v), _, s)) if s == scale => {
                Value::Decimal(v)
            }
            _ => return None,
        };
        Some(FilePredicate { column: StatColumn::User(i), op, value })
    }

    /// The current version of `pk` from either tier.
    async fn current_row(&self, pk: &Value) -> Result<Option<StoredRow>> {
        let key = keys::row_key(self.table.id, self.partition, &keys::encode_pk(pk)?);
        match self.store.get(CF_ROWS, &key)? {
            Some(bytes) => Ok(Some(row_codec::decode(&self.table, &bytes)?)),
            None => self.cold.get(&self.table, self.partition, pk).await,
        }
    }
}

/// `(column, op, literal)` if `expr` compares a column with a literal (either way round).
fn column_comparison(expr: &Expr) -> Option<(String, CompareOp, ScalarValue)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else { return None };
    let op = match op {
        Operator::Eq => CompareOp::Eq,
        Operator::Lt => CompareOp::Lt,
        Operator::LtEq => CompareOp::LtEq,
        Operator::Gt => CompareOp::Gt,
        Operator::GtEq => CompareOp::GtEq,
        _ => return None,
    };
    match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(v, _)) => Some((c.name.clone(), op, v.clone())),
        (Expr::Literal(v, _), Expr::Column(c)) => Some((c.name.clone(), op.flipped(), v.clone())),
        _ => None,
    }
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
        // Primary-key equality turns the scan into a point read, and comparisons with
        // statistics prune cold files; DataFusion still re-checks every filter (Inexact), so
        // correctness never depends on either.
        Ok(filters
            .iter()
            .map(|f| match self.pk_equality(f).is_some() || self.file_predicate(f).is_some() {
                true => TableProviderFilterPushDown::Inexact,
                false => TableProviderFilterPushDown::Unsupported,
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
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let projection = projection.map(|p| p.as_slice()).unwrap_or(&all);
        let schema = Arc::new(self.schema.project(projection)?);
        let with_tombstones = self.system_columns == SystemColumns::VisibleWithTombstones;
        let with_system = self.system_columns != SystemColumns::Hidden;
        if let Some(pk) = filters.iter().find_map(|f| self.pk_equality(f)) {
            let row = self.current_row(&pk).await.map_err(KalamError::into_datafusion)?;
            let rows: Vec<&StoredRow> = row.iter().filter(|r| with_tombstones || !r.deleted).collect();
            let batch = rows_to_batch(&self.table, &rows, with_system, Some(projection))
                .map_err(KalamError::into_datafusion)?;
            return Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], schema, None)?);
        }
        let spec = ScanSpec {
            table: self.table.clone(),
            partition: self.partition,
            projection: projection.to_vec(),
            with_system,
            with_tombstones,
            predicates: filters.iter().filter_map(|f| self.file_predicate(f)).collect(),
            // A limit is only safe to apply here when no filter remains to be evaluated above.
            limit: if filters.is_empty() { limit } else { None },
        };
        let stream = ScanStream { spec, schema: schema.clone(), store: self.store.clone(), cold: self.cold.clone() };
        Ok(Arc::new(StreamingTableExec::try_new(schema, vec![Arc::new(stream)], None, [], false, None)?))
    }
}

/// The partition's rows as DataFusion pulls them: the scan opens (snapshot and file
/// listing) when the plan starts executing, then reads one batch per poll.
#[derive(Debug)]
struct ScanStream {
    spec: ScanSpec,
    schema: SchemaRef,
    store: Arc<Store>,
    cold: Arc<ColdStore>,
}

impl PartitionStream for ScanStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (spec, store, cold) = (self.spec.clone(), self.store.clone(), self.cold.clone());
        let opened = futures::stream::once(async move {
            let partition = cold.partition(&spec.table, spec.partition).await?;
            Ok::<_, KalamError>(ScanSource::open(spec, &store, &cold, &partition).await?.scan())
        });
        let batches = opened.flat_map(|scan| match scan {
            Ok(scan) => futures::stream::unfold(Some(scan), |state| async move {
                let mut scan = state?;
                match scan.next_batch().await {
                    Ok(Some(batch)) => Some((Ok(batch), Some(scan))),
                    Ok(None) => None,
                    Err(e) => Some((Err(e.into_datafusion()), None)),
                }
            })
            .left_stream(),
            Err(e) => futures::stream::once(async move { Err(e.into_datafusion()) }).right_stream(),
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches))
    }
}
