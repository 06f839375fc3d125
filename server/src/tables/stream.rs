//! STREAM tables: ephemeral events kept in memory per partition (never in RocksDB rows, never
//! flushed), evicted by age (`ttl_seconds`) and count (`max_buffer`, oldest first). Events
//! get a cursor from the same hybrid clock as table rows and reach subscribers through the
//! same fan-out ([`Committer::commit_stream`](crate::tables::Committer::commit_stream)).

use crate::clock::Clock;
use crate::error::KalamError;
use crate::ids::{Partition, TableId};
use crate::schema::{StreamOptions, TableDef};
use crate::storage::row_codec::StoredRow;
use crate::storage::row_codec::rows_to_batch;
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::memory::MemorySourceConfig;
use datafusion::catalog::{Session, TableProvider};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

struct Buffer {
    events: VecDeque<StoredRow>,
    ttl_micros: i64,
}

impl Buffer {
    fn evict_expired(&mut self, now: i64) {
        while self.events.front().is_some_and(|e| e.updated < now - self.ttl_micros) {
            self.events.pop_front();
        }
    }
}

/// The in-memory event buffers of every STREAM table partition.
pub(crate) struct StreamBuffers {
    buffers: Mutex<HashMap<(TableId, Partition), Buffer>>,
    /// What TTLs are measured against (the clock `_updated` cursors come from).
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for StreamBuffers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamBuffers")
    }
}

fn options(table: &TableDef) -> StreamOptions {
    table.options.stream.unwrap_or_default()
}

impl StreamBuffers {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> StreamBuffers {
        StreamBuffers { buffers: Mutex::default(), clock }
    }

    /// Appends events (called under the commit lock), then applies both eviction rules.
    pub(crate) fn append(&self, table: &TableDef, partition: Partition, events: &[StoredRow]) {
        let opts = options(table);
        let mut buffers = self.buffers.lock();
        let buf = buffers
            .entry((table.id, partition))
            .or_insert_with(|| Buffer { events: VecDeque::new(), ttl_micros: opts.ttl_seconds as i64 * 1_000_000 });
        buf.ttl_micros = opts.ttl_seconds as i64 * 1_000_000;
        buf.events.extend(events.iter().cloned());
        while buf.events.len() as u64 > opts.max_buffer {
            buf.events.pop_front();
        }
        buf.evict_expired(self.clock.now_micros());
    }

    /// Unexpired events with `after < cursor <= upto`, oldest first.
    pub(crate) fn read(&self, table: TableId, partition: Partition, after: i64, upto: i64) -> Vec<StoredRow> {
        let mut buffers = self.buffers.lock();
        let Some(buf) = buffers.get_mut(&(table, partition)) else { return vec![] };
        buf.evict_expired(self.clock.now_micros());
        buf.events.iter().filter(|e| e.updated > after && e.updated <= upto).cloned().collect()
    }

    pub(crate) fn drop_table(&self, table: TableId) {
        self.buffers.lock().retain(|(t, _), _| *t != table);
    }

    /// Evicts expired events everywhere and forgets empty partitions.
    pub(crate) fn sweep(&self) {
        let now = self.clock.now_micros();
        self.buffers.lock().retain(|_, buf| {
            buf.evict_expired(now);
            !buf.events.is_empty()
        });
    }
}

/// DataFusion access to one partition of a STREAM table: its buffered events.
#[derive(Debug)]
pub(crate) struct StreamTableProvider {
    table: Arc<TableDef>,
    partition: Partition,
    schema: SchemaRef,
    streams: Arc<StreamBuffers>,
}

impl StreamTableProvider {
    pub(crate) fn new(table: Arc<TableDef>, partition: Partition, streams: Arc<StreamBuffers>) -> Self {
        let schema = table.arrow_schema(false);
        StreamTableProvider { table, partition, schema, streams }
    }
}

#[async_trait]
impl TableProvider for StreamTableProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let events = self.streams.read(self.table.id, self.partition, i64::MIN, i64::MAX);
        let refs: Vec<&StoredRow> = events.iter().collect();
        let batch = rows_to_batch(&self.table, &refs, false, projection.map(|p| p.as_slice()))
            .map_err(KalamError::into_datafusion)?;
        let schema = batch.schema();
        Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], schema, None)?)
    }
}
