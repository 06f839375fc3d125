//! The commit path. Every write to a USER or SHARED table goes through [`Committer::commit`],
//! which holds one lock while it assigns `_updated` from the hybrid clock and writes the
//! RocksDB batch. Hence, within a partition (and in fact globally), commit order equals
//! `_updated` order, and once a commit returns every change with a smaller `_updated` is
//! already visible: the property catch-up-then-live-tail sync relies on.

use crate::catalog::{DataType, TableDef};
use crate::clock::HybridClock;
use crate::error::{KalamError, Result};
use crate::ids::{Partition, TableId};
use crate::storage::row_codec::{self, StoredRow};
use crate::storage::{CF_CATALOG, CF_ROW_INDEX, CF_ROWS, Store, keys};
use crate::values::{self, Value};
use parking_lot::Mutex;
use rocksdb::WriteBatch;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

const CLOCK_KEY: &[u8] = b"seq/clock";

/// One row operation of a statement. Values are already coerced to the column types; a
/// CRDT_TEXT value is a write ([`values::merge_crdt`]) the commit turns into a document.
#[derive(Debug, Clone)]
pub enum RowOp {
    /// A full row aligned to the table's columns (primary key included).
    Insert { values: Vec<Value> },
    /// Set some columns (by index) of the live row with this key; no-op if absent.
    Update { pk: Value, set: Vec<(usize, Value)> },
    /// Soft delete: the row becomes a tombstone; no-op if absent.
    Delete { pk: Value },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Insert,
    Update,
    Delete,
}

/// A committed change, for live queries.
#[derive(Debug, Clone)]
pub struct RowChange {
    pub table: TableId,
    pub partition: Partition,
    pub kind: ChangeKind,
    /// Values before the change (updates and deletes).
    pub old: Option<Vec<Value>>,
    pub new: StoredRow,
}

#[derive(Debug, Default)]
pub struct CommitResult {
    /// Rows inserted, updated or deleted.
    pub affected: u64,
    pub changes: Vec<RowChange>,
}

/// Receives committed changes, in commit order, while the commit lock is held. Must be
/// quick and never block (the live-query fan-out only enqueues).
pub trait ChangeSink: Send + Sync {
    fn publish(&self, changes: &[RowChange]);
}

/// The writes one statement (or one mutation message) makes to one table partition.
pub struct TableWrite<'a> {
    pub table: &'a TableDef,
    pub partition: Partition,
    pub ops: Vec<RowOp>,
}

pub struct Committer {
    store: Arc<Store>,
    clock: Mutex<HybridClock>,
    sink: OnceLock<Arc<dyn ChangeSink>>,
}

impl Committer {
    /// Resumes the clock after the last `_updated` ever handed out.
    pub fn open(store: Arc<Store>) -> Result<Committer> {
        let last = match store.get(CF_CATALOG, CLOCK_KEY)? {
            Some(b) => {
                i64::from_le_bytes(b.as_slice().try_into().map_err(|_| KalamError::internal("corrupt clock record"))?)
            }
            None => 0,
        };
        Ok(Committer { store, clock: Mutex::new(HybridClock::starting_after(last)), sink: OnceLock::new() })
    }

    /// Sets where committed changes go (once, at start).
    pub fn set_sink(&self, sink: Arc<dyn ChangeSink>) {
        let _ = self.sink.set(sink);
    }

    /// Runs `f` under the commit lock with the last `_updated` handed out: every change at or
    /// below it is committed and published, none above it is.
    pub fn at_watermark<T>(&self, f: impl FnOnce(i64) -> T) -> T {
        let clock = self.clock.lock();
        f(clock.last())
    }

    /// Appends events to a STREAM table partition: each gets a cursor from the clock, goes
    /// to `buffer` and to live subscribers, all under the commit lock so stream events and
    /// subscription registrations stay in one order.
    pub fn commit_stream(
        &self,
        table: &TableDef,
        partition: Partition,
        rows: Vec<Vec<Value>>,
        buffer: impl FnOnce(&[StoredRow]),
    ) -> Vec<StoredRow> {
        let mut clock = self.clock.lock();
        let events: Vec<StoredRow> =
            rows.into_iter().map(|values| StoredRow { updated: clock.next(), deleted: false, values }).collect();
        buffer(&events);
        if let Some(sink) = self.sink.get() {
            sink.publish(
                &events
                    .iter()
                    .map(|e| RowChange {
                        table: table.id,
                        partition,
                        kind: ChangeKind::Insert,
                        old: None,
                        new: e.clone(),
                    })
                    .collect::<Vec<_>>(),
            );
        }
        drop(clock);
        events
    }

    /// Reads the current version of a row (tombstones included).
    pub fn get(&self, table: &TableDef, partition: Partition, pk: &Value) -> Result<Option<StoredRow>> {
        let key = keys::row_key(table.id, partition, &keys::encode_pk(pk)?);
        match self.store.get(CF_ROWS, &key)? {
            Some(bytes) => Ok(Some(row_codec::decode(table, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Applies `ops` to one partition atomically: either all are written or, on error (a
    /// duplicate key), none.
    pub fn commit(&self, table: &TableDef, partition: Partition, ops: Vec<RowOp>) -> Result<CommitResult> {
        self.commit_many(vec![TableWrite { table, partition, ops }], |_, _| {})
    }

    /// Applies writes to several partitions in one atomic batch. `extra` may add its own
    /// records to the batch once the outcome is known (a mutation's dedupe record).
    pub fn commit_many(
        &self,
        writes: Vec<TableWrite<'_>>,
        extra: impl FnOnce(&mut WriteBatch, &CommitResult),
    ) -> Result<CommitResult> {
        let rows_cf = self.store.cf(CF_ROWS);
        let index_cf = self.store.cf(CF_ROW_INDEX);
        let mut batch = WriteBatch::default();
        let mut result = CommitResult::default();
        // Rows this commit already wrote (by row key), so several ops on one key see each other.
        let mut pending: HashMap<Vec<u8>, StoredRow> = HashMap::new();
        let mut clock = self.clock.lock();
        for TableWrite { table, partition, ops } in writes {
            let pk_index = table.primary_key;
            for op in ops {
                let pk = match &op {
                    RowOp::Insert { values } => &values[pk_index],
                    RowOp::Update { pk, .. } | RowOp::Delete { pk } => pk,
                };
                let pk_bytes = keys::encode_pk(pk)?;
                let row_key = keys::row_key(table.id, partition, &pk_bytes);
                let current = match pending.get(&row_key) {
                    Some(row) => Some(row.clone()),
                    None => match self.store.get(CF_ROWS, &row_key)? {
                        Some(bytes) => Some(row_codec::decode(table, &bytes)?),
                        None => None,
                    },
                };
                let live = current.as_ref().filter(|r| !r.deleted);
                let (kind, new_values) = match op {
                    RowOp::Insert { values } => {
                        if live.is_some() {
                            return Err(KalamError::DuplicateKey(format!(
                                "duplicate primary key {} = {} in table '{}'",
                                table.pk().name,
                                display_pk(&values[pk_index]),
                                table.qualified_name()
                            )));
                        }
                        (ChangeKind::Insert, values::resolve_new_row(table, values)?)
                    }
                    RowOp::Update { set, .. } => {
                        let Some(live) = live else { continue };
                        let mut values = live.values.clone();
                        for (i, v) in set {
                            let col = &table.columns[i];
                            // A CRDT_TEXT write merges into the version read just above, under
                            // the commit lock, so concurrent edits to the document all survive.
                            values[i] = match col.data_type {
                                DataType::CrdtText => values::merge_crdt(Some(&values[i]), v, &col.name)?,
                                _ => v,
                            };
                        }
                        (ChangeKind::Update, values)
                    }
                    RowOp::Delete { .. } => {
                        let Some(live) = live else { continue };
                        (ChangeKind::Delete, live.values.clone())
                    }
                };
                let updated = clock.next();
                let row = StoredRow { updated, deleted: kind == ChangeKind::Delete, values: new_values };
                if let Some(old) = &current {
                    batch.delete_cf(&index_cf, keys::index_key(table.id, partition, old.updated));
                }
                batch.put_cf(&rows_cf, &row_key, row_codec::encode(table, &row));
                batch.put_cf(&index_cf, keys::index_key(table.id, partition, updated), &pk_bytes);
                result.affected += 1;
                result.changes.push(RowChange {
                    table: table.id,
                    partition,
                    kind,
                    old: if kind == ChangeKind::Insert { None } else { live.map(|r| r.values.clone()) },
                    new: row.clone(),
                });
                pending.insert(row_key, row);
            }
        }
        extra(&mut batch, &result);
        if batch.is_empty() {
            return Ok(result);
        }
        batch.put_cf(&self.store.cf(CF_CATALOG), CLOCK_KEY, clock.last().to_le_bytes());
        self.store.write(batch)?;
        if let (Some(sink), false) = (self.sink.get(), result.changes.is_empty()) {
            sink.publish(&result.changes);
        }
        drop(clock);
        Ok(result)
    }
}

fn display_pk(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Text(s) => format!("'{s}'"),
        other => format!("{other:?}"),
    }
}
