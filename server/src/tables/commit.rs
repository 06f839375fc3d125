//! The commit path. Every write to a USER or SHARED table goes through [`Committer::commit`],
//! which holds one lock while it assigns `_updated` from the hybrid clock of the partition's
//! data group ([`Placement`]) and writes the RocksDB batch. Hence, within a partition (and
//! within a group), commit order equals `_updated` order, and once a commit returns every
//! change of its group with a smaller `_updated` is already visible: the property
//! catch-up-then-live-tail sync relies on. A single node has one group; in a cluster each
//! group's clock moves only with the group's log, so replicas applying several groups in
//! different interleavings still stamp alike.
//!
//! A commit's changes get consecutive `_updated` values from the first one on, so a commit
//! is reproducible from its writes and that first value: applied to the same state, it
//! writes the same rows and publishes the same changes (what a replica applying a
//! replicated log needs).
//!
//! The current version of a key is its hot row or, once flushed, its newest cold version
//! ([`ColdStore`]): duplicate-key checks, updates and deletes see flushed rows. Flushes
//! remove hot rows ([`Committer::remove_flushed`]) only while they are still the flushed
//! version, under a per-partition lock that commits to the partition also take, so a
//! concurrent write is never lost. (They read those versions before taking it, and again
//! under it only if the partition was written meanwhile: a per-partition write count tells.)
//!
//! Two locks, always taken in this order:
//! - the partition stripes ([`PartitionStripes`]) order a partition's commits against the
//!   removal of its flushed rows; a flush of one user's partition never holds up another's
//!   writes;
//! - the commit lock (`clock`) covers ordering only: the groups' clocks, the hot rows a commit
//!   replaces (RocksDB reads), the RocksDB write and the hand-over of the changes to the
//!   live fan-out. Cold versions are read from Parquet before it is taken ([`ColdReads`]) and
//!   used under it only if the partition's files are still those they were read from and
//!   every key then hot still is; a flush or compaction in between sends the commit back to
//!   read again. No Parquet or object-store I/O happens under either lock.
//!
//! Readers that combine a RocksDB snapshot with a listing of cold files therefore never rely
//! on these locks: they take the snapshot first, or check the listing's generation after it
//! (a flush publishes its file before it removes any hot row).

use crate::clock::{Clock, HybridClock};
use crate::cold::key_index::PkKey;
use crate::cold::{ColdPartition, ColdStore};
use crate::error::{KalamError, Result};
use crate::ids::{DataGroup, Partition, Placement, TableId};
use crate::schema::{ColumnDef, TableDef};
use crate::storage::hot_stats::HotStats;
use crate::storage::row_codec::{self, StoredRow};
use crate::storage::{CF_CATALOG, CF_ROW_INDEX, CF_ROWS, Store, keys};
use crate::tables::MutationKey;
use crate::types::DataType;
use crate::values::{self, Value};
use parking_lot::{Mutex, RwLock};
use rocksdb::WriteBatch;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Where a group's clock persists the last `_updated` it handed out (group 0 where the one
/// clock of a single node always has).
fn clock_key(group: DataGroup) -> Vec<u8> {
    match group.0 {
        0 => b"seq/clock".to_vec(),
        g => format!("seq/clock/{g:04x}").into_bytes(),
    }
}

/// The hybrid clock of each data group, behind the commit lock.
#[derive(Debug)]
struct GroupClocks(Vec<HybridClock>);

impl GroupClocks {
    fn of(&mut self, group: DataGroup) -> &mut HybridClock {
        &mut self.0[usize::from(group.0)]
    }

    /// The last stamp handed out in each group, by group.
    fn lasts(&self) -> Vec<i64> {
        self.0.iter().map(HybridClock::last).collect()
    }
}

/// One row operation of a statement. Values are already coerced to the column types; a
/// CRDT_TEXT value is a write ([`values::merge_crdt`]) the commit turns into a document.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) enum RowOp {
    /// A full row aligned to the table's columns (primary key included).
    Insert { values: Vec<Value> },
    /// Set some columns (by index) of the live row with this key; no-op if absent.
    Update { pk: Value, set: Vec<(usize, Value)> },
    /// Soft delete: the row becomes a tombstone; no-op if absent.
    Delete { pk: Value },
}

impl RowOp {
    /// The primary key the op writes.
    fn pk<'a>(&'a self, table: &TableDef) -> &'a Value {
        match self {
            RowOp::Insert { values } => &values[table.primary_key],
            RowOp::Update { pk, .. } | RowOp::Delete { pk } => pk,
        }
    }
}

/// Re-aligns ops planned on an older version of a table (its columns `planned_on`) to the
/// table's current definition, matching columns by id: a dropped column's value goes, a
/// column added since gets what a row stored before the change reads as (its fill). In a
/// cluster a data group may apply a write after its node applied a schema change the
/// write's planner had not seen; the write then lands as if committed just before it.
pub(crate) fn realign(ops: Vec<RowOp>, planned_on: &[ColumnDef], current: &TableDef) -> Vec<RowOp> {
    let position = |old: usize| planned_on.get(old).and_then(|c| current.columns.iter().position(|n| n.id == c.id));
    ops.into_iter()
        .map(|op| match op {
            RowOp::Insert { values } => {
                let mut next: Vec<Value> = current.columns.iter().map(ColumnDef::fill).collect();
                for (old, v) in values.into_iter().enumerate() {
                    if let Some(pos) = position(old) {
                        next[pos] = v;
                    }
                }
                RowOp::Insert { values: next }
            }
            RowOp::Update { pk, set } => RowOp::Update {
                pk,
                set: set.into_iter().filter_map(|(old, v)| position(old).map(|p| (p, v))).collect(),
            },
            delete @ RowOp::Delete { .. } => delete,
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Insert,
    Update,
    Delete,
}

/// A committed change, for live queries.
#[derive(Debug, Clone)]
pub(crate) struct RowChange {
    pub table: TableId,
    pub partition: Partition,
    pub kind: ChangeKind,
    /// Values before the change (updates and deletes).
    pub old: Option<Vec<Value>>,
    pub new: StoredRow,
}

#[derive(Debug, Default)]
pub(crate) struct CommitResult {
    /// Rows inserted, updated or deleted.
    pub affected: u64,
    pub changes: Vec<RowChange>,
}

/// What a statement's or a mutation message's commit did, as its caller answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Committed {
    /// Rows inserted, updated or deleted.
    pub affected: u64,
    /// The largest `_updated` written.
    pub cursor: Option<i64>,
    /// The largest `_updated` written in each table (a subscription of that table at or
    /// past it has the change). Empty for a duplicate.
    #[serde(default)]
    pub tables: Vec<(TableId, i64)>,
    /// The mutation message had been applied before: nothing was written now.
    pub duplicate: bool,
}

impl Committed {
    fn of(result: &CommitResult) -> Committed {
        let mut tables: Vec<(TableId, i64)> = Vec::new();
        for c in &result.changes {
            match tables.iter_mut().find(|(t, _)| *t == c.table) {
                Some((_, at)) => *at = (*at).max(c.new.updated),
                None => tables.push((c.table, c.new.updated)),
            }
        }
        Committed {
            affected: result.affected,
            cursor: result.changes.iter().map(|c| c.new.updated).max(),
            tables,
            duplicate: false,
        }
    }
}

/// Receives committed changes, in commit order, while the commit lock is held. Must be
/// quick and never block (the live-query fan-out only enqueues).
pub(crate) trait ChangeSink: Send + Sync {
    fn publish(&self, changes: &[RowChange]);
    /// The table's schema changed: subscriptions planned on the old definition end.
    fn schema_changed(&self, table: TableId, schema_version: u32);
}

/// The writes one statement (or one mutation message) makes to one table partition.
pub(crate) struct TableWrite<'a> {
    pub table: &'a TableDef,
    pub partition: Partition,
    pub ops: Vec<RowOp>,
}

pub(crate) struct Committer {
    store: Arc<Store>,
    cold: Arc<ColdStore>,
    hot_stats: HotStats,
    placement: Placement,
    /// The commit lock, and the clock of each data group.
    clock: Mutex<GroupClocks>,
    /// In cluster mode, what stamps STREAM events (which only the leader sees) instead of
    /// `clock`, whose stamps must stay those every replica computes from the log.
    stream_clock: OnceLock<Mutex<HybridClock>>,
    /// What `clock` reads, kept to restart it after a restore.
    wall: Arc<dyn Clock>,
    sink: OnceLock<Arc<dyn ChangeSink>>,
    /// Schema version of each table altered since start. A write prepared on an older
    /// definition is refused ([`KalamError::SchemaChanged`]) and its statement retried, so
    /// no row is encoded, and no change published, through a stale definition.
    schema_versions: RwLock<HashMap<TableId, u32>>,
    partitions: PartitionStripes,
    /// How long commits wait between their cold reads and the lock (to widen that window).
    #[cfg(test)]
    pause_before_lock: Mutex<Option<std::time::Duration>>,
}

/// Per-partition state shared by the commit path and the removal of flushed rows, hashed
/// into a fixed number of stripes (a shared stripe only costs waiting or a re-read):
/// - a lock that orders a partition's commits against the removal of its flushed hot rows.
///   Commits take their partitions' stripes before the commit lock; removals take only the
///   stripe, so a flush of one partition never makes writers of another wait.
/// - a write count, bumped after each write with the stripe held: work that read a
///   partition's hot rows before taking the stripe finds the count unchanged under it only
///   if nothing was written there meanwhile.
struct PartitionStripes(Box<[PartitionStripe]>);

#[derive(Default)]
struct PartitionStripe {
    lock: Mutex<()>,
    writes: std::sync::atomic::AtomicU64,
}

impl PartitionStripes {
    const STRIPES: usize = 1024;

    fn new() -> PartitionStripes {
        PartitionStripes((0..Self::STRIPES).map(|_| PartitionStripe::default()).collect())
    }

    fn index(&self, (table, partition): (TableId, Partition)) -> usize {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let hash = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .hash_one((table, partition.key()));
        hash as usize % Self::STRIPES
    }

    fn writes(&self, key: (TableId, Partition)) -> u64 {
        self.0[self.index(key)].writes.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Counts a write; the caller holds the partition's stripe.
    fn bump(&self, key: (TableId, Partition)) {
        self.0[self.index(key)].writes.fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    fn lock(&self, key: (TableId, Partition)) -> parking_lot::MutexGuard<'_, ()> {
        self.0[self.index(key)].lock.lock()
    }

    /// Locks the stripes of several partitions, in index order (so two commits never wait
    /// for each other crosswise).
    fn lock_all(&self, keys: impl Iterator<Item = (TableId, Partition)>) -> Vec<parking_lot::MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = keys.map(|k| self.index(k)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        stripes.into_iter().map(|i| self.0[i].lock.lock()).collect()
    }
}

/// How often a commit reads the cold tier again before the lock because a flush or
/// compaction changed it meanwhile; after that it holds its partitions' flush locks while
/// it reads and commits, so it always ends.
const COLD_READ_ATTEMPTS: usize = 3;

/// The newest live cold versions of one write's keys that were not hot when read, and the
/// generation of the files they were read from.
struct ColdReads {
    partition: Arc<ColdPartition>,
    generation: u64,
    /// By row key; `None`: no live cold version.
    rows: HashMap<Vec<u8>, Option<StoredRow>>,
}

/// The version a write replaces, and whether it is a hot row (which has a change-index
/// entry to remove) or a cold one.
struct Current {
    row: StoredRow,
    hot: bool,
}

impl Committer {
    /// Resumes each group's clock after the last `_updated` it ever handed out.
    pub(crate) fn open(
        store: Arc<Store>,
        cold: Arc<ColdStore>,
        wall: Arc<dyn Clock>,
        placement: Placement,
    ) -> Result<Committer> {
        let mut stored = Vec::with_capacity(usize::from(placement.groups()));
        for group in placement.all() {
            stored.push(match store.get(CF_CATALOG, &clock_key(group))? {
                Some(b) => Some(i64::from_le_bytes(
                    b.as_slice().try_into().map_err(|_| KalamError::Corrupt("clock record".into()))?,
                )),
                None => None,
            });
        }
        // A group without a clock yet (a single node's data spread over a cluster's groups)
        // starts after every stamp handed out so far, whichever group handed it out.
        let floor = stored.iter().flatten().copied().max().unwrap_or(0);
        let clocks =
            stored.into_iter().map(|last| HybridClock::starting_after(last.unwrap_or(floor), wall.clone())).collect();
        let hot_stats = HotStats::load(&store)?;
        crate::tables::mutation_outcomes::key_records_by_group(&store, placement)?;
        Ok(Committer {
            store,
            cold,
            hot_stats,
            placement,
            clock: Mutex::new(GroupClocks(clocks)),
            stream_clock: OnceLock::new(),
            wall,
            sink: OnceLock::new(),
            schema_versions: RwLock::new(HashMap::new()),
            partitions: PartitionStripes::new(),
            #[cfg(test)]
            pause_before_lock: Mutex::new(None),
        })
    }

    /// Where partitions go.
    pub(crate) fn placement(&self) -> Placement {
        self.placement
    }

    /// The data group of `table`'s partition `partition`.
    pub(crate) fn group_of(&self, table: TableId, partition: Partition) -> DataGroup {
        self.placement.group_of(table, partition)
    }

    /// Row counts and ages of the hot tier per partition.
    pub(crate) fn hot_stats(&self) -> &HotStats {
        &self.hot_stats
    }

    /// Sets where committed changes go (once, at start).
    pub(crate) fn set_sink(&self, sink: Arc<dyn ChangeSink>) {
        let _ = self.sink.set(sink);
    }

    /// Whether `table` is the table's current definition (no ALTER TABLE since it was read).
    pub(crate) fn is_current(&self, table: &TableDef) -> bool {
        self.schema_versions.read().get(&table.id).is_none_or(|v| *v == table.schema_version)
    }

    /// Runs a schema change under the commit lock: `apply` persists the new definition;
    /// afterwards writes prepared on older definitions are refused, and live subscribers
    /// hear of it after every change committed before it.
    pub(crate) fn change_schema(&self, apply: impl FnOnce() -> Result<Arc<TableDef>>) -> Result<Arc<TableDef>> {
        let _clock = self.clock.lock();
        let def = apply()?;
        self.schema_versions.write().insert(def.id, def.schema_version);
        if let Some(sink) = self.sink.get() {
            sink.schema_changed(def.id, def.schema_version);
        }
        Ok(def)
    }

    /// Runs a DROP TABLE (or a DROP NAMESPACE's) under the commit lock: `drop` removes the
    /// tables and their rows; afterwards any write prepared on them is refused
    /// ([`KalamError::SchemaChanged`], then not found when planned again), so none lands
    /// after their rows were removed.
    pub(crate) fn drop_tables(&self, drop: impl FnOnce() -> Result<Vec<Arc<TableDef>>>) -> Result<Vec<Arc<TableDef>>> {
        let _clock = self.clock.lock();
        let dropped = drop()?;
        let mut versions = self.schema_versions.write();
        for def in &dropped {
            versions.insert(def.id, u32::MAX);
        }
        Ok(dropped)
    }

    /// Runs `f` under the commit lock with the last `_updated` handed out in `group`: every
    /// change of the group at or below it is committed and published, none above it is.
    pub(crate) fn at_watermark<T>(&self, group: DataGroup, f: impl FnOnce(i64) -> T) -> T {
        let mut clock = self.clock.lock();
        f(clock.of(group).last())
    }

    /// Runs `f` under the commit lock with every group's watermark (by group): a RocksDB
    /// snapshot taken in `f` holds exactly the changes at or below them.
    pub(crate) fn at_watermarks<T>(&self, f: impl FnOnce(&[i64]) -> T) -> T {
        let clock = self.clock.lock();
        f(&clock.lasts())
    }

    /// Makes every group's clock hand out only values after `updated` (restored rows keep
    /// their `_updated`; a later write must still be newer than them).
    pub(crate) fn advance_clock(&self, updated: i64) -> Result<()> {
        self.advance_clocks(self.placement.all(), updated)
    }

    /// [`Committer::advance_clock`] for `groups` only (a cluster moves each data group's
    /// clock at a point of that group's log).
    pub(crate) fn advance_clocks(&self, groups: impl Iterator<Item = DataGroup>, updated: i64) -> Result<()> {
        let mut clock = self.clock.lock();
        let behind: Vec<DataGroup> = groups.filter(|g| clock.of(*g).last() < updated).collect();
        if behind.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        for group in &behind {
            batch.put_cf(&self.store.cf(CF_CATALOG), clock_key(*group), updated.to_le_bytes());
        }
        self.store.write(batch)?;
        for group in behind {
            *clock.of(group) = HybridClock::starting_after(updated, self.wall.clone());
        }
        Ok(())
    }

    /// Cluster mode: the row clocks only move by the replicated stamp rule from now on
    /// (STREAM events, which are not replicated, get stamps of their own).
    pub(crate) fn replicated(&self) {
        let last = self.clock.lock().lasts().into_iter().max().unwrap_or(0);
        let _ = self.stream_clock.set(Mutex::new(HybridClock::starting_after(last, self.wall.clone())));
    }

    /// Appends events to a STREAM table partition: each gets a cursor from the clock, goes
    /// to `buffer` and to live subscribers, all under the commit lock so stream events and
    /// subscription registrations stay in one order.
    pub(crate) fn commit_stream(
        &self,
        table: &TableDef,
        partition: Partition,
        rows: Vec<Vec<Value>>,
        buffer: impl FnOnce(&[StoredRow]),
    ) -> Vec<StoredRow> {
        let group = self.placement.group_of(table.id, partition);
        let mut clock = self.clock.lock();
        let mut apart = self.stream_clock.get().map(|c| c.lock());
        let events: Vec<StoredRow> = rows
            .into_iter()
            .map(|values| {
                let updated = match apart.as_mut() {
                    Some(c) => c.tick(),
                    None => clock.of(group).tick(),
                };
                StoredRow { updated, deleted: false, values }
            })
            .collect();
        drop(apart);
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

    /// Cluster mode: takes STREAM events the leader stamped, as [`Committer::commit_stream`]
    /// takes new ones (into `buffer` and to live subscribers, under the commit lock).
    pub(crate) fn publish_stream(
        &self,
        table: &TableDef,
        partition: Partition,
        events: &[StoredRow],
        buffer: impl FnOnce(&[StoredRow]),
    ) {
        let clock = self.clock.lock();
        buffer(events);
        if let Some(sink) = self.sink.get() {
            let changes: Vec<RowChange> = events
                .iter()
                .map(|e| RowChange { table: table.id, partition, kind: ChangeKind::Insert, old: None, new: e.clone() })
                .collect();
            sink.publish(&changes);
        }
        drop(clock);
    }

    /// Reads the current version of a row (tombstones included) from either tier.
    pub(crate) async fn get(&self, table: &TableDef, partition: Partition, pk: &Value) -> Result<Option<StoredRow>> {
        let key = keys::row_key(table.id, partition, &keys::encode_pk(pk)?);
        match self.store.get(CF_ROWS, &key)? {
            Some(bytes) => Ok(Some(row_codec::decode(table, &bytes)?)),
            None => self.cold.get(table, partition, pk).await,
        }
    }

    /// Reads, before the commit lock, the cold versions of the ops' keys that are not hot.
    /// A partition without files needs no reads (and its keys none of the hot look-ups
    /// here): if a flush gives it files meanwhile, the generation check sends the commit
    /// back.
    async fn read_cold(&self, table: &TableDef, partition: Partition, ops: &[RowOp]) -> Result<ColdReads> {
        let cold = self.cold.partition(table, partition).await?;
        let generation = cold.generation();
        // Every key not hot now gets an entry: `None` until a live cold version is found.
        let mut rows: HashMap<Vec<u8>, Option<StoredRow>> = HashMap::new();
        if cold.is_empty() {
            return Ok(ColdReads { partition: cold, generation, rows });
        }
        let mut lookups: Vec<(Vec<u8>, PkKey)> = Vec::new();
        for op in ops {
            let row_key = keys::row_key(table.id, partition, &keys::encode_pk(op.pk(table))?);
            if rows.contains_key(&row_key) || self.store.get(CF_ROWS, &row_key)?.is_some() {
                continue;
            }
            if let Some(k) = PkKey::of(op.pk(table)) {
                lookups.push((row_key.clone(), k));
            }
            rows.insert(row_key, None);
        }
        if !lookups.is_empty() {
            // A cold tombstone reads as no row to every op: only live versions are fetched.
            let (row_keys, pks): (Vec<Vec<u8>>, Vec<PkKey>) = lookups.into_iter().unzip();
            for (rk, row) in row_keys.into_iter().zip(cold.newest_rows(&self.cold, table, &pks, true).await?) {
                rows.insert(rk, row);
            }
        }
        Ok(ColdReads { partition: cold, generation, rows })
    }

    /// The versions the ops' keys currently have, under the commit lock: hot rows, else the
    /// cold versions read before the lock (`reads`, whose files are still those listed).
    /// `None` if a key that was hot when `reads` were taken has been flushed since: its cold
    /// version was not read, and no storage is read under the lock.
    fn current_versions(
        &self,
        table: &TableDef,
        partition: Partition,
        ops: &[RowOp],
        reads: &ColdReads,
    ) -> Result<Option<HashMap<Vec<u8>, Current>>> {
        let mut out = HashMap::with_capacity(ops.len());
        for op in ops {
            let row_key = keys::row_key(table.id, partition, &keys::encode_pk(op.pk(table))?);
            if out.contains_key(&row_key) {
                continue;
            }
            match self.store.get(CF_ROWS, &row_key)? {
                Some(bytes) => {
                    out.insert(row_key, Current { row: row_codec::decode(table, &bytes)?, hot: true });
                }
                None => match reads.rows.get(&row_key) {
                    Some(Some(row)) => {
                        out.insert(row_key, Current { row: row.clone(), hot: false });
                    }
                    Some(None) => {}
                    // A partition without files then has none now (its generation is unchanged).
                    None if reads.partition.is_empty() => {}
                    None => return Ok(None),
                },
            }
        }
        Ok(Some(out))
    }

    /// Removes flushed rows from the hot tier: each `(encoded pk, _updated)` whose hot row
    /// still has that `_updated`; a newer version written since the flush read it stays.
    /// `extra` joins the same atomic batch. Returns how many rows were removed.
    pub(crate) fn remove_flushed(
        &self,
        table: &TableDef,
        partition: Partition,
        flushed: &[(Vec<u8>, i64)],
        extra: impl FnOnce(&mut WriteBatch),
    ) -> Result<u64> {
        let rows_cf = self.store.cf(CF_ROWS);
        let index_cf = self.store.cf(CF_ROW_INDEX);
        let row_keys: Vec<Vec<u8>> = flushed.iter().map(|(pk, _)| keys::row_key(table.id, partition, pk)).collect();
        let read_current = || -> Result<Vec<Option<Vec<u8>>>> {
            let current = self.store.db().multi_get_cf(row_keys.iter().map(|k| (&rows_cf, k.as_slice())));
            current.into_iter().map(|r| r.map_err(KalamError::from)).collect()
        };
        // Read before the stripe; valid under it if nothing was committed to the partition since.
        let seen = self.partitions.writes((table.id, partition));
        let mut current = read_current()?;
        crate::fault::delay(crate::fault::REMOVE_BEFORE_LOCK);
        let stripe = self.partitions.lock((table.id, partition));
        if self.partitions.writes((table.id, partition)) != seen {
            current = read_current()?;
        }
        let mut batch = WriteBatch::default();
        let mut removed = 0u64;
        for ((row_key, (_, updated)), bytes) in row_keys.iter().zip(flushed).zip(current) {
            let Some(bytes) = bytes else { continue };
            if row_codec::decode_header(&bytes)?.0 == *updated {
                batch.delete_cf(&rows_cf, row_key);
                batch.delete_cf(&index_cf, keys::index_key(table.id, partition, *updated));
                removed += 1;
            }
        }
        extra(&mut batch);
        if !batch.is_empty() {
            self.store.write(batch)?;
            self.partitions.bump((table.id, partition));
        }
        self.hot_stats.removed(table.id, partition, removed);
        drop(stripe);
        Ok(removed)
    }

    /// Reads the oldest hot version of a partition from its change index into the hot
    /// stats. Once per flush, after the removed entries were compacted away: seeking past
    /// thousands of fresh deletions under the partition's stripe would stall its writers.
    pub(crate) fn refresh_oldest(&self, table: TableId, partition: Partition) -> Result<()> {
        let prefix = keys::partition_prefix(table, partition);
        let _stripe = self.partitions.lock((table, partition));
        let mut oldest = None;
        self.store.for_each_prefix(CF_ROW_INDEX, &prefix, |k, _| {
            oldest = keys::index_key_updated(k);
            false
        })?;
        self.hot_stats.set_oldest(table, partition, oldest);
        Ok(())
    }

    /// Applies `ops` to one partition atomically: either all are written or, on error (a
    /// duplicate key), none. (The server commits through [`Committer::commit_writes`].)
    #[cfg(test)]
    pub(crate) async fn commit(&self, table: &TableDef, partition: Partition, ops: Vec<RowOp>) -> Result<CommitResult> {
        self.commit_from(vec![TableWrite { table, partition, ops }], None, |_, _| {}).await
    }

    /// Commits a statement's writes or, with `mutation`, a client mutation message's: a
    /// message applied before is not applied again, and the outcome is recorded with the
    /// rows (or, for a message the commit refuses, on its own) for retries to find.
    /// `proposed_at` as in [`Committer::commit_from`]; `mark` adds records of the caller's
    /// to the batch (a replica's applied log position).
    pub(crate) async fn commit_writes(
        &self,
        writes: Vec<TableWrite<'_>>,
        mutation: Option<&MutationKey>,
        proposed_at: Option<i64>,
        mark: impl FnOnce(&mut WriteBatch),
    ) -> Result<Committed> {
        use kalamdb_client_core::protocol::ws::MutationStatus;
        // A message's record is kept in the group it commits in: its first write's (a
        // message writing two groups is refused, and the refusal kept there).
        let group = writes.first().map_or(DataGroup(0), |w| self.group_of(w.table.id, w.partition));
        if let Some(key) = mutation
            && let Some(earlier) = key.recorded(&self.store, group)?
        {
            if earlier.status == MutationStatus::Applied {
                return Ok(Committed { cursor: earlier.cursor, duplicate: true, ..Committed::default() });
            }
            let code = earlier.code.unwrap_or(kalamdb_client_core::protocol::ErrorCode::ValidationError);
            return Err(KalamError::Remote { code, message: earlier.reason.unwrap_or_default() });
        }
        let outcome = self
            .commit_from(writes, proposed_at, |batch, result| {
                if let Some(key) = mutation {
                    let cursor = result.changes.iter().map(|c| c.new.updated).max();
                    key.record(&self.store, batch, group, &key.outcome(MutationStatus::Applied, None, cursor));
                }
                mark(batch);
            })
            .await;
        match outcome {
            Ok(result) => Ok(Committed::of(&result)),
            Err(e) => {
                // A refusal is final and recorded; an internal failure may be transient, and
                // a write planned on an old definition is planned again.
                let final_refusal = e.code() != kalamdb_client_core::protocol::ErrorCode::InternalError
                    && !matches!(e, KalamError::SchemaChanged(_));
                if let (Some(key), true) = (mutation, final_refusal) {
                    let mut batch = WriteBatch::default();
                    let refused = key.outcome(MutationStatus::Rejected, Some((e.code(), e.public_message())), None);
                    key.record(&self.store, &mut batch, group, &refused);
                    self.store.write(batch)?;
                }
                Err(e)
            }
        }
    }

    /// Reads the cold versions of the writes' keys, then commits under the lock if the cold
    /// tier did not change meanwhile, numbering the changes from the clock's next value, or,
    /// for a commit `proposed_at` a time by a replicated log's leader, from the first stamp
    /// after the last one handed out and not before that time
    /// ([`HybridClock::next_not_before`]): the same on every replica. The writes must all be
    /// in one data group, whose clock numbers them. A commit that keeps losing the race to
    /// flushes and compactions holds its partitions' flush locks from its reads to its commit.
    pub(crate) async fn commit_from(
        &self,
        writes: Vec<TableWrite<'_>>,
        proposed_at: Option<i64>,
        extra: impl FnOnce(&mut WriteBatch, &CommitResult),
    ) -> Result<CommitResult> {
        let group = self.group_of_writes(&writes)?;
        let mut frozen: Vec<tokio::sync::OwnedMutexGuard<()>> = Vec::new();
        for attempt in 1.. {
            if attempt > COLD_READ_ATTEMPTS && frozen.is_empty() {
                frozen = self.freeze(&writes).await?;
            }
            let mut reads = Vec::with_capacity(writes.len());
            for w in &writes {
                reads.push(self.read_cold(w.table, w.partition, &w.ops).await?);
            }
            #[cfg(test)]
            {
                let pause = *self.pause_before_lock.lock();
                if let Some(pause) = pause {
                    tokio::time::sleep(pause).await;
                }
            }
            let _stripes = self.partitions.lock_all(writes.iter().map(|w| (w.table.id, w.partition)));
            let clock = self.clock.lock();
            if reads.iter().any(|r| r.partition.generation() != r.generation) {
                if !frozen.is_empty() {
                    return Err(KalamError::internal("a partition's files changed while its flushes were held"));
                }
                continue;
            }
            let mut stored = Vec::with_capacity(writes.len());
            for (w, r) in writes.iter().zip(&reads) {
                match self.current_versions(w.table, w.partition, &w.ops, r)? {
                    Some(versions) => stored.push(versions),
                    None => break,
                }
            }
            if stored.len() < writes.len() {
                if !frozen.is_empty() {
                    return Err(KalamError::internal("a hot row was removed while its partition's flushes were held"));
                }
                continue;
            }
            let mut clock = clock;
            let first = match proposed_at {
                Some(at) => clock.of(group).next_not_before(at),
                None => clock.of(group).next(),
            };
            return self.commit_locked(clock, group, first, writes, stored, extra);
        }
        unreachable!("the attempts above end")
    }

    /// The one data group all of `writes` are in (the first partition's when there are none).
    fn group_of_writes(&self, writes: &[TableWrite<'_>]) -> Result<DataGroup> {
        let mut groups = writes.iter().map(|w| self.placement.group_of(w.table.id, w.partition));
        let group = groups.next().unwrap_or(DataGroup(0));
        if groups.any(|g| g != group) {
            return Err(KalamError::InvalidRequest(
                "one statement or mutation message may write to one data group only: split the writes to \
                 SHARED tables and to your own tables into separate messages"
                    .into(),
            ));
        }
        Ok(group)
    }

    /// Takes the flush locks of the writes' partitions, in one order (see `commit_from`).
    async fn freeze(&self, writes: &[TableWrite<'_>]) -> Result<Vec<tokio::sync::OwnedMutexGuard<()>>> {
        let mut partitions = Vec::with_capacity(writes.len());
        for w in writes {
            partitions.push(((w.table.id, w.partition), self.cold.partition(w.table, w.partition).await?));
        }
        partitions.sort_by_key(|(k, _)| *k);
        partitions.dedup_by_key(|(k, _)| *k);
        let mut guards = Vec::with_capacity(partitions.len());
        for (_, p) in partitions {
            guards.push(p.flush_lock.clone().lock_owned().await);
        }
        Ok(guards)
    }

    /// The commit proper, under the lock (`clock`), with the cold versions read before it.
    ///
    /// Its changes get consecutive `_updated` values from `first` on, so the outcome depends
    /// only on the state, `writes` and `first`: a replica applying the same writes with the
    /// same `first` to the same state writes the same rows and publishes the same changes.
    fn commit_locked(
        &self,
        mut clock: parking_lot::MutexGuard<'_, GroupClocks>,
        group: DataGroup,
        first: i64,
        writes: Vec<TableWrite<'_>>,
        stored: Vec<HashMap<Vec<u8>, Current>>,
        extra: impl FnOnce(&mut WriteBatch, &CommitResult),
    ) -> Result<CommitResult> {
        let rows_cf = self.store.cf(CF_ROWS);
        let index_cf = self.store.cf(CF_ROW_INDEX);
        let mut batch = WriteBatch::default();
        let mut result = CommitResult::default();
        // Rows this commit already wrote (by row key), so several ops on one key see each other.
        let mut pending: HashMap<Vec<u8>, StoredRow> = HashMap::new();
        // New hot keys per partition, for the flush policies.
        let mut new_hot_keys: HashMap<(crate::ids::TableId, Partition), (u64, i64)> = HashMap::new();
        let written: Vec<(TableId, Partition)> = writes.iter().map(|w| (w.table.id, w.partition)).collect();
        let mut next_updated = first;
        for (TableWrite { table, partition, ops }, stored) in writes.into_iter().zip(stored) {
            if !self.is_current(table) {
                return Err(KalamError::SchemaChanged(table.qualified_name()));
            }
            let pk_index = table.primary_key;
            for op in ops {
                let pk = match &op {
                    RowOp::Insert { values } => &values[pk_index],
                    RowOp::Update { pk, .. } | RowOp::Delete { pk } => pk,
                };
                let pk_bytes = keys::encode_pk(pk)?;
                let row_key = keys::row_key(table.id, partition, &pk_bytes);
                let current = match pending.get(&row_key) {
                    Some(row) => Some(Current { row: row.clone(), hot: true }),
                    None => stored.get(&row_key).map(|c| Current { row: c.row.clone(), hot: c.hot }),
                };
                let was_hot = current.as_ref().is_some_and(|c| c.hot);
                let current = current.map(|c| c.row);
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
                        (ChangeKind::Insert, table.resolve_new_row(values)?)
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
                let updated = next_updated;
                next_updated += 1;
                let row = StoredRow { updated, deleted: kind == ChangeKind::Delete, values: new_values };
                match (&current, was_hot) {
                    (Some(old), true) => batch.delete_cf(&index_cf, keys::index_key(table.id, partition, old.updated)),
                    _ => {
                        let e = new_hot_keys.entry((table.id, partition)).or_insert((0, updated));
                        e.0 += 1;
                    }
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
        let group_clock = clock.of(group);
        group_clock.advance_to(next_updated - 1);
        batch.put_cf(&self.store.cf(CF_CATALOG), clock_key(group), group_clock.last().to_le_bytes());
        self.store.write(batch)?;
        for key in &written {
            self.partitions.bump(*key);
        }
        for ((table, partition), (n, first)) in new_hot_keys {
            self.hot_stats.added(table, partition, n, first);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;
    use crate::schema::{DefaultValue, test_table};

    /// Records what the commit path publishes, in publish order.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<RowChange>>);

    impl ChangeSink for Recorder {
        fn publish(&self, changes: &[RowChange]) {
            self.0.lock().extend_from_slice(changes);
        }
        fn schema_changed(&self, _: TableId, _: u32) {}
    }

    fn open(dir: &std::path::Path) -> Committer {
        let store = Arc::new(Store::open(&dir.join("db"), false).unwrap());
        let cold = Arc::new(ColdStore::new(dir.join("cold"), None));
        Committer::open(store, cold, Arc::new(crate::clock::SystemClock), Placement::SINGLE).unwrap()
    }

    fn table() -> Arc<TableDef> {
        test_table(&[("id", DataType::BigInt), ("n", DataType::BigInt)])
    }

    fn insert(id: i64, n: i64) -> RowOp {
        RowOp::Insert { values: vec![Value::Int(id), Value::Int(n)] }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_commits_are_published_in_updated_order() {
        let dir = tempfile::tempdir().unwrap();
        let committer = Arc::new(open(dir.path()));
        let recorder = Arc::new(Recorder::default());
        committer.set_sink(recorder.clone());
        let table = table();
        let threads: Vec<_> = (0..4i64)
            .map(|t| {
                let (committer, table) = (committer.clone(), table.clone());
                tokio::spawn(async move {
                    let partition = Partition::User(UserId(t as u64 % 2 + 10));
                    let mut last = i64::MIN;
                    for i in 0..200 {
                        let r = committer.commit(&table, partition, vec![insert(t * 1000 + i, i)]).await.unwrap();
                        let updated = r.changes[0].new.updated;
                        assert!(updated > last, "a thread's commits get increasing _updated");
                        // Returned means published: the watermark is at least this commit.
                        assert!(committer.at_watermark(DataGroup(0), |w| w) >= updated);
                        last = updated;
                    }
                })
            })
            .collect();
        for t in threads {
            t.await.unwrap();
        }
        let published = recorder.0.lock();
        assert_eq!(published.len(), 800);
        assert!(published.windows(2).all(|w| w[0].new.updated < w[1].new.updated), "publish order is _updated order");
    }

    #[tokio::test]
    async fn a_failed_statement_writes_nothing_and_publishes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let committer = open(dir.path());
        let recorder = Arc::new(Recorder::default());
        committer.set_sink(recorder.clone());
        let (table, partition) = (table(), Partition::User(UserId(7)));
        committer.commit(&table, partition, vec![insert(1, 1)]).await.unwrap();
        let err = committer.commit(&table, partition, vec![insert(2, 2), insert(1, 9)]).await.unwrap_err();
        assert!(matches!(err, KalamError::DuplicateKey(_)), "{err:?}");
        assert!(committer.get(&table, partition, &Value::Int(2)).await.unwrap().is_none());
        assert_eq!(recorder.0.lock().len(), 1);
        // The same key in another partition is another row.
        committer.commit(&table, Partition::User(UserId(8)), vec![insert(1, 1)]).await.unwrap();
    }

    #[test]
    fn writes_planned_on_an_older_schema_are_realigned_by_column_id() {
        // Planned on (id, a, b); since then `a` was dropped and `c` added, with a default.
        let old = test_table(&[("id", DataType::BigInt), ("a", DataType::Text), ("b", DataType::Text)]);
        let mut current = (*old).clone();
        current.columns.remove(1);
        let mut c = current.columns[1].clone();
        (c.id, c.name, c.default) = (4, "c".into(), Some(DefaultValue::Literal(Value::Int(5))));
        current.columns.push(c);
        let text = |s: &str| Value::Text(s.into());
        let ops = vec![
            RowOp::Insert { values: vec![Value::Int(1), text("a"), text("b")] },
            RowOp::Update { pk: Value::Int(1), set: vec![(1, text("a2")), (2, text("b2"))] },
            RowOp::Delete { pk: Value::Int(1) },
        ];
        let realigned = realign(ops, &old.columns, &current);
        assert!(
            matches!(&realigned[0], RowOp::Insert { values } if values == &vec![Value::Int(1), text("b"), Value::Int(5)])
        );
        assert!(matches!(&realigned[1], RowOp::Update { set, .. } if set == &vec![(1, text("b2"))]));
        assert!(matches!(&realigned[2], RowOp::Delete { pk } if pk == &Value::Int(1)));
    }

    #[tokio::test]
    async fn a_write_prepared_before_its_table_was_dropped_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let committer = open(dir.path());
        let (table, partition) = (table(), Partition::User(UserId(7)));
        committer.commit(&table, partition, vec![insert(1, 1)]).await.unwrap();
        committer.drop_tables(|| Ok(vec![table.clone()])).unwrap();
        let err = committer.commit(&table, partition, vec![insert(2, 1)]).await.unwrap_err();
        assert!(matches!(err, KalamError::SchemaChanged(_)), "{err:?}");
        assert!(committer.get(&table, partition, &Value::Int(2)).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_clock_resumes_after_a_restart_and_after_restored_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (table, partition) = (table(), Partition::User(UserId(7)));
        let first =
            open(dir.path()).commit(&table, partition, vec![insert(1, 1)]).await.unwrap().changes[0].new.updated;
        let committer = open(dir.path());
        let second = committer.commit(&table, partition, vec![insert(2, 1)]).await.unwrap().changes[0].new.updated;
        assert!(second > first);
        // A restore brings rows from the future: later writes are newer still.
        let future = second + 3_600_000_000;
        committer.advance_clock(future).unwrap();
        let third = committer.commit(&table, partition, vec![insert(3, 1)]).await.unwrap().changes[0].new.updated;
        assert!(third > future);
        drop(committer);
        let fourth =
            open(dir.path()).commit(&table, partition, vec![insert(4, 1)]).await.unwrap().changes[0].new.updated;
        assert!(fourth > third);
    }

    #[tokio::test]
    async fn removing_flushed_rows_keeps_versions_written_after_the_flush_read_them() {
        let dir = tempfile::tempdir().unwrap();
        let committer = open(dir.path());
        let (table, partition) = (table(), Partition::User(UserId(7)));
        let flushed = committer.commit(&table, partition, vec![insert(1, 1)]).await.unwrap().changes[0].new.updated;
        let pk = keys::encode_pk(&Value::Int(1)).unwrap();
        // The row changes after the flush read it: the newer version stays hot.
        let update = RowOp::Update { pk: Value::Int(1), set: vec![(1, Value::Int(2))] };
        let newer = committer.commit(&table, partition, vec![update]).await.unwrap().changes[0].new.updated;
        assert_eq!(committer.remove_flushed(&table, partition, &[(pk.clone(), flushed)], |_| {}).unwrap(), 0);
        let row = committer.get(&table, partition, &Value::Int(1)).await.unwrap().unwrap();
        assert_eq!((row.updated, &row.values[1]), (newer, &Value::Int(2)));
        assert_eq!(committer.remove_flushed(&table, partition, &[(pk, newer)], |_| {}).unwrap(), 1);
        assert!(committer.get(&table, partition, &Value::Int(1)).await.unwrap().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn removing_flushed_rows_while_they_are_updated_loses_no_update() {
        let dir = tempfile::tempdir().unwrap();
        let committer = Arc::new(open(dir.path()));
        let (table, partition) = (table(), Partition::User(UserId(7)));
        const N: i64 = 400;
        let mut flushed: Vec<(Vec<u8>, i64)> = Vec::new();
        for i in 0..N {
            let updated = committer.commit(&table, partition, vec![insert(i, i)]).await.unwrap().changes[0].new.updated;
            flushed.push((keys::encode_pk(&Value::Int(i)).unwrap(), updated));
        }
        // Widen the window between the read before the lock and the lock.
        fail::cfg(crate::fault::REMOVE_BEFORE_LOCK, "sleep(1)").unwrap();
        let updater = {
            let (committer, table) = (committer.clone(), table.clone());
            tokio::spawn(async move {
                // Every key once, from both ends towards the middle, racing the removal.
                let mut done = Vec::new();
                for i in (0..N / 2).flat_map(|i| [i, N - 1 - i]) {
                    let update = RowOp::Update { pk: Value::Int(i), set: vec![(1, Value::Int(i + 1000))] };
                    done.push((i, committer.commit(&table, partition, vec![update]).await.unwrap().affected));
                }
                done
            })
        };
        let mut removed = 0;
        for chunk in flushed.chunks(8) {
            removed += committer.remove_flushed(&table, partition, chunk, |_| {}).unwrap();
        }
        let updates = updater.await.unwrap();
        fail::remove(crate::fault::REMOVE_BEFORE_LOCK);
        let mut kept = 0;
        for (i, affected) in updates {
            let row = committer.get(&table, partition, &Value::Int(i)).await.unwrap();
            match affected {
                // The update came first: its version is newer than the flushed one and stays.
                1 => {
                    assert_eq!(row.map(|r| r.values[1].clone()), Some(Value::Int(i + 1000)), "key {i}");
                    kept += 1;
                }
                // The removal came first: the update found no hot row.
                _ => assert!(row.is_none(), "key {i}"),
            }
        }
        assert_eq!(removed + kept, N as u64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[expect(clippy::await_holding_lock, reason = "the test holds a stripe as a removal batch does, while commits run")]
    async fn removing_flushed_rows_holds_up_only_the_partitions_own_writers() {
        let dir = tempfile::tempdir().unwrap();
        let committer = Arc::new(open(dir.path()));
        let table = table();
        let busy = Partition::User(UserId(7));
        let stripe = |p: Partition| committer.partitions.index((table.id, p));
        let other = (8..).map(|u| Partition::User(UserId(u))).find(|p| stripe(*p) != stripe(busy)).unwrap();
        let commit = |partition: Partition, id: i64| {
            let (committer, table) = (committer.clone(), table.clone());
            tokio::spawn(
                async move { committer.commit(&table, partition, vec![insert(id, id)]).await.unwrap().affected },
            )
        };
        // Held as a removal batch of `busy` holds it.
        let held = committer.partitions.lock((table.id, busy));
        let elsewhere = tokio::time::timeout(std::time::Duration::from_secs(5), commit(other, 1)).await;
        assert_eq!(elsewhere.expect("a write to another partition does not wait").unwrap(), 1);
        let waiting = commit(busy, 2);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "a write to the partition waits for the batch");
        drop(held);
        assert_eq!(waiting.await.unwrap(), 1);
    }

    /// Writes `rows` of `partition` to a cold file as a flush would (file, manifest, key
    /// index), leaving the hot rows in place.
    async fn write_cold_file(committer: &Committer, table: &Arc<TableDef>, partition: Partition, rows: &[StoredRow]) {
        let cold = committer.cold.partition(table, partition).await.unwrap();
        let mut manifest = cold.manifest();
        let batch = manifest.next_batch;
        let mut writer = crate::cold::file::FileWriter::create(&cold.dir, batch, table.clone()).unwrap();
        writer.write(rows).unwrap();
        let written = writer.finish().unwrap();
        written.publish().await.unwrap();
        manifest.files.push(written.entry.clone());
        manifest.next_batch = batch + 1;
        manifest.store(&cold.dir).await.unwrap();
        let keys = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let v = crate::cold::key_index::ColdVersion {
                    batch,
                    row: i as u32,
                    updated: r.updated,
                    deleted: r.deleted,
                };
                (PkKey::of(&r.values[0]).unwrap(), v)
            })
            .collect();
        cold.add_file(manifest, keys);
    }

    /// A flush lists its file first and removes the hot rows after: a commit that found a key
    /// hot in between and takes the lock after the removal has no version of it read. It
    /// must read again (nothing is read under the lock), not take the key for absent.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_key_flushed_between_the_cold_read_and_the_lock_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let committer = Arc::new(open(dir.path()));
        let (table, partition) = (table(), Partition::User(UserId(7)));
        let two = committer.commit(&table, partition, vec![insert(2, 2)]).await.unwrap().changes[0].new.clone();
        // The flush of key 2 lists its file before the commits below read.
        write_cold_file(&committer, &table, partition, std::slice::from_ref(&two)).await;
        *committer.pause_before_lock.lock() = Some(std::time::Duration::from_millis(300));
        let update = {
            let (committer, table) = (committer.clone(), table.clone());
            let set = RowOp::Update { pk: Value::Int(2), set: vec![(1, Value::Int(20))] };
            tokio::spawn(async move { committer.commit(&table, partition, vec![set]).await })
        };
        let duplicate = {
            let (committer, table) = (committer.clone(), table.clone());
            tokio::spawn(async move { committer.commit(&table, partition, vec![insert(2, 99)]).await })
        };
        // Both commits found key 2 hot and wait before the lock: the flush now removes it.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let pk2 = keys::encode_pk(&Value::Int(2)).unwrap();
        assert_eq!(committer.remove_flushed(&table, partition, &[(pk2, two.updated)], |_| {}).unwrap(), 1);
        let (update, duplicate) = (update.await.unwrap(), duplicate.await.unwrap());
        assert_eq!(update.unwrap().affected, 1, "the update found the flushed row");
        assert!(matches!(duplicate, Err(KalamError::DuplicateKey(_))), "{duplicate:?}");
        let row = committer.get(&table, partition, &Value::Int(2)).await.unwrap().unwrap();
        assert_eq!(row.values[1], Value::Int(20));
    }

    impl Committer {
        /// Applies `writes` with their changes numbered from `first`, as a replica applying
        /// another node's commit would.
        async fn commit_at(&self, first: i64, writes: Vec<TableWrite<'_>>) -> Result<CommitResult> {
            self.commit_from(writes, Some(first), |_, _| {}).await
        }
    }

    /// Replicas applying one log — commits with the time their leader proposed them, a
    /// later leader's clock behind the first one's — stamp every change alike, whatever
    /// their own wall clocks say, and in log order.
    #[tokio::test]
    async fn replicas_stamp_a_replicated_log_alike_whatever_their_wall_clocks() {
        const HOUR: i64 = 3_600_000_000;
        let start = 1_800_000_000_000_000;
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let replicas: Vec<Committer> = dirs
            .iter()
            .zip([0, HOUR, -HOUR])
            .map(|(dir, skew)| {
                let store = Arc::new(Store::open(&dir.path().join("db"), false).unwrap());
                let cold = Arc::new(ColdStore::new(dir.path().join("cold"), None));
                Committer::open(store, cold, crate::clock::ManualClock::new(start + skew), Placement::SINGLE).unwrap()
            })
            .collect();
        let (table, partition) = (table(), Partition::User(UserId(7)));
        // (proposed at, ops): the third leader's clock is a minute behind the first's.
        let log: Vec<(i64, Vec<RowOp>)> = vec![
            (start, vec![insert(1, 1), insert(2, 2)]),
            (start + 10, vec![RowOp::Update { pk: Value::Int(1), set: vec![(1, Value::Int(5))] }]),
            (start - 60_000_000, vec![insert(3, 3), RowOp::Delete { pk: Value::Int(2) }]),
            (start - 60_000_000, vec![insert(1, 9)]),
            (start + 20, vec![insert(4, 4)]),
        ];
        let mut stamps: Vec<Vec<Vec<i64>>> = vec![Vec::new(); replicas.len()];
        for (at, ops) in &log {
            for (replica, stamps) in replicas.iter().zip(&mut stamps) {
                let write = vec![TableWrite { table: &table, partition, ops: ops.clone() }];
                let applied = replica.commit_from(write, Some(*at), |_, _| {}).await;
                stamps.push(applied.map(|r| r.changes.iter().map(|c| c.new.updated).collect()).unwrap_or_default());
            }
        }
        assert_eq!(
            stamps[0],
            [vec![start, start + 1], vec![start + 10], vec![start + 11, start + 12], vec![], vec![start + 20]]
        );
        assert!(stamps.iter().all(|s| *s == stamps[0]), "{stamps:?}");
        let contents = hot_contents(&replicas[0]);
        assert!(replicas.iter().all(|r| hot_contents(r) == contents));
    }

    /// With several data groups, each group's clock moves only with the group's own commits:
    /// two replicas applying the same per-group logs, interleaved differently across the
    /// groups (as two nodes applying several Raft groups do), stamp every change alike, and
    /// each group's clock resumes where it stopped after a restart. A commit spanning two
    /// groups is refused.
    #[tokio::test]
    async fn each_data_group_stamps_its_own_log_whatever_the_interleaving() {
        let start = 1_800_000_000_000_000;
        let placement = Placement::new(4).unwrap();
        let table = table();
        // Users 1 and 42 are in different groups (see `ids::tests`); 1000 shares 1's group.
        let (a, b) = (Partition::User(UserId(1)), Partition::User(UserId(42)));
        let (ga, gb) = (placement.group_of(table.id, a), placement.group_of(table.id, b));
        assert_ne!(ga, gb);
        // Group b's leader proposes far ahead of group a's.
        let log_a: Vec<(i64, i64)> = (0..20).map(|i| (start + i, i)).collect();
        let log_b: Vec<(i64, i64)> = (0..20).map(|i| (start + 1_000_000 + i * 3, i)).collect();
        let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        let open = |dir: &std::path::Path| {
            let store = Arc::new(Store::open(&dir.join("db"), false).unwrap());
            let cold = Arc::new(ColdStore::new(dir.join("cold"), None));
            Committer::open(store, cold, crate::clock::ManualClock::new(start), placement).unwrap()
        };
        let mut stamps: Vec<Vec<(usize, i64)>> = Vec::new();
        for (replica, dir) in dirs.iter().enumerate() {
            let committer = open(dir.path());
            // Replica 0 applies all of a, then all of b; replica 1 alternates, b first.
            let order: Vec<(usize, usize)> = match replica {
                0 => (0..20).map(|i| (0, i)).chain((0..20).map(|i| (1, i))).collect(),
                _ => (0..20).flat_map(|i| [(1, i), (0, i)]).collect(),
            };
            let mut got = Vec::new();
            for (log, i) in order {
                let (partition, (at, key)) = if log == 0 { (a, log_a[i]) } else { (b, log_b[i]) };
                let write = vec![TableWrite { table: &table, partition, ops: vec![insert(key, key)] }];
                let done = committer.commit_from(write, Some(at), |_, _| {}).await.unwrap();
                got.push((log * 100 + i, done.changes[0].new.updated));
            }
            got.sort();
            stamps.push(got);
            drop(committer);
            let reopened = open(dir.path());
            assert_eq!(reopened.at_watermark(ga, |w| w), start + 19);
            assert_eq!(reopened.at_watermark(gb, |w| w), start + 1_000_000 + 57);
            let both = vec![
                TableWrite { table: &table, partition: a, ops: vec![insert(100, 1)] },
                TableWrite { table: &table, partition: b, ops: vec![insert(100, 1)] },
            ];
            let refused = reopened.commit_from(both, None, |_, _| {}).await.unwrap_err();
            assert!(matches!(refused, KalamError::InvalidRequest(_)), "{refused:?}");
        }
        assert_eq!(stamps[0], stamps[1]);
        assert!(stamps[0].iter().take(20).enumerate().all(|(i, (_, u))| *u == start + i as i64));
    }

    /// Every row and change-index record, in key order.
    fn hot_contents(committer: &Committer) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        for cf in [CF_ROWS, CF_ROW_INDEX] {
            committer
                .store
                .for_each_prefix(cf, b"", |k, v| {
                    out.push((k.to_vec(), v.to_vec()));
                    true
                })
                .unwrap();
        }
        out
    }

    #[tokio::test]
    async fn replaying_commits_with_their_first_updated_reproduces_the_state() {
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (leader, replica) = (open(dir_a.path()), open(dir_b.path()));
        let table = table();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut random = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let (mut failed, mut empty) = (0, 0);
        for _ in 0..400 {
            let partition = Partition::User(UserId(random(2) + 1));
            let ops: Vec<RowOp> = (0..=random(3))
                .map(|_| {
                    let key = random(25) as i64;
                    match random(3) {
                        0 => insert(key, random(100) as i64),
                        1 => RowOp::Update { pk: Value::Int(key), set: vec![(1, Value::Int(random(100) as i64))] },
                        _ => RowOp::Delete { pk: Value::Int(key) },
                    }
                })
                .collect();
            let write = |ops: Vec<RowOp>| vec![TableWrite { table: &table, partition, ops }];
            match leader.commit_from(write(ops.clone()), None, |_, _| {}).await {
                Ok(done) if done.changes.is_empty() => {
                    empty += 1;
                    assert_eq!(
                        replica
                            .commit_at(leader.at_watermark(DataGroup(0), |w| w) + 1, write(ops))
                            .await
                            .unwrap()
                            .affected,
                        0
                    );
                }
                Ok(done) => {
                    let first = done.changes[0].new.updated;
                    let again = replica.commit_at(first, write(ops)).await.unwrap();
                    assert_eq!(again.affected, done.affected);
                    let stamps =
                        |r: &CommitResult| r.changes.iter().map(|c| (c.new.updated, c.kind)).collect::<Vec<_>>();
                    assert_eq!(stamps(&again), stamps(&done));
                }
                Err(e) => {
                    failed += 1;
                    assert!(matches!(e, KalamError::DuplicateKey(_)), "{e:?}");
                    let again =
                        replica.commit_at(leader.at_watermark(DataGroup(0), |w| w) + 1, write(ops)).await.unwrap_err();
                    assert!(matches!(again, KalamError::DuplicateKey(_)), "{again:?}");
                }
            }
        }
        assert!(failed > 10 && empty > 10, "the sequence exercises failures ({failed}) and no-ops ({empty})");
        assert_eq!(hot_contents(&replica), hot_contents(&leader));
        // The replica's clock moved past everything it applied.
        assert_eq!(replica.at_watermark(DataGroup(0), |w| w), leader.at_watermark(DataGroup(0), |w| w));
    }
}
