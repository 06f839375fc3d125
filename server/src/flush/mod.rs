//! Flushing hot rows to the cold tier.
//!
//! A flush of one partition (see `docs/storage.md`):
//! 1. records a pending flush (`flush/{table}/{partition}` in the `catalog` CF);
//! 2. reads every hot row version of the partition from a RocksDB snapshot, tombstones
//!    included, and writes them in key order to `batch-{n}.parquet.tmp`, then fsyncs it;
//! 3. renames it to `batch-{n}.parquet` and fsyncs the directory;
//! 4. writes the manifest listing it (temp file + rename): the file is now part of the tier;
//! 5. removes the flushed hot rows and their change-index entries, in batches under the
//!    partition's lock (not the commit lock: writers of other partitions never wait), each
//!    only if its `_updated` is still the flushed one; the last batch also clears the
//!    pending record. The emptied key range is then compacted, so later scans do not walk
//!    over the deletions.
//!
//! A crash before 4 leaves a file no manifest lists: recovery deletes it (the rows are still
//! hot). A crash after 4 leaves rows in both tiers, which reads tolerate (same version:
//! newest `_updated` wins either way); recovery finishes step 5. See [`recovery`].
//!
//! In a cluster, a partition on a shared storage is flushed by the leader only, through the
//! log ([`ReplicatedFlush`]): the leader writes the file once, under a name no other node
//! can pick, and proposes it; every node then does steps 4 and 5 as it applies the entry
//! ([`apply_replicated`]). A leader that dies before its entry commits leaves an unlisted
//! file and no change; the next leader flushes the rows again.
//!
//! [`recovery`]: crate::recovery
//!
//! - [`policy`]: the background task that flushes partitions by their table's policy.

pub(crate) mod policy;

use crate::cold::file::{FileWriter, unique_file_name};
use crate::cold::key_index::{ColdVersion, KeyIndex, PkKey};
use crate::cold::manifest::FileEntry;
use crate::cold::{ColdPartition, IndexUpdate};
use crate::database::Database;
use crate::error::{KalamError, Result};
use crate::fault;
use crate::ids::{Partition, TableId};
use crate::jobs::{JobEnd, JobHandle};
use crate::replication::{Command, ReplicatedFlush};
use crate::schema::{TableDef, TableKind};
use crate::storage::row_codec::{self, StoredRow};
use crate::storage::{CF_CATALOG, CF_ROW_INDEX, CF_ROWS, Snapshot, keys};
use rocksdb::ReadOptions;
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Rows decoded and written to the Parquet writer at a time.
const WRITE_CHUNK_ROWS: usize = 8192;
/// Hot rows removed per hold of the partition's lock, so the partition's writers wait at
/// most for one such batch (about 0.3 ms here; 2,048 held it for milliseconds).
const DELETE_CHUNK_ROWS: usize = 256;

/// A flush or compaction in progress, recorded before its file is created.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PendingFile {
    pub table_id: TableId,
    pub partition: u64,
    pub batch: u64,
}

/// Key of a partition's pending flush record (`flush/`) or compaction record (`compact/`).
pub(crate) fn pending_key(kind: PendingKind, table: TableId, partition: Partition) -> String {
    format!("{}{:016x}/{:016x}", kind.prefix(), table.0, partition.key())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PendingKind {
    Flush,
    Compaction,
}

impl PendingKind {
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            PendingKind::Flush => "flush/",
            PendingKind::Compaction => "compact/",
        }
    }
}

/// Records a pending flush or compaction (before its file is created).
pub(crate) fn record_pending(db: &Database, key: &str, pending: &PendingFile) -> Result<()> {
    let mut record = WriteBatch::default();
    record.put_cf(&db.store.cf(CF_CATALOG), key, serde_json::to_vec(pending).expect("serialises"));
    db.store.write(record)
}

/// Clears a pending record: the flush or compaction finished or was rolled back.
pub(crate) fn clear_pending(db: &Database, key: &str) -> Result<()> {
    let mut b = WriteBatch::default();
    b.delete_cf(&db.store.cf(CF_CATALOG), key);
    db.store.write(b)
}

/// Outcome of flushing one partition.
#[derive(Debug)]
pub(crate) enum PartitionFlush {
    /// Nothing was hot.
    Empty,
    Flushed(FileEntry),
    /// Cancelled before the file became part of the tier.
    Cancelled,
    /// On a shared storage in a cluster, where only the leader flushes: not this node (or
    /// no longer, by the time its file would have entered the log).
    NotLeader,
}

/// Flushes one partition of a USER or SHARED table (the protocol above). `cancelled` is
/// checked until the manifest is written; after that the flush always completes.
pub(crate) async fn flush_partition(
    db: &Database,
    table: &Arc<TableDef>,
    partition: Partition,
    cancelled: &dyn Fn() -> bool,
) -> Result<PartitionFlush> {
    // Rows are decoded and written through the current definition, which cannot change
    // until this flush is done.
    let cold = db.cold.partition(table, partition).await?;
    if cold.replicated {
        return flush_through_log(db, table, partition, &cold, cancelled).await;
    }
    let _schema = db.schema_lock.read().await;
    let _flushing = cold.flush_lock.lock().await;
    let table = &current_definition(db, table)?;
    fault::delay(fault::FLUSH_LOCKED);
    let manifest = cold.manifest();
    let batch_no = manifest.next_batch;
    let pending = PendingFile { table_id: table.id, partition: partition.key(), batch: batch_no };
    let pending_key = pending_key(PendingKind::Flush, table.id, partition);
    record_pending(db, &pending_key, &pending)?;
    let mut writer = FileWriter::create(&cold.dir, batch_no, table.clone())?;
    // (encoded pk, _updated) of every flushed version, and the key index entries.
    let mut flushed: Vec<(Vec<u8>, i64)> = Vec::new();
    let mut index_entries: Vec<(PkKey, ColdVersion)> = Vec::new();
    scan_hot_rows(db, &db.store.db().snapshot(), table, partition, |pks, rows| {
        for (pk, row) in pks.into_iter().zip(rows) {
            flushed.push((pk, row.updated));
            if let Some(key) = PkKey::of(&row.values[table.primary_key]) {
                let v = ColdVersion {
                    batch: batch_no,
                    row: index_entries.len() as u32,
                    updated: row.updated,
                    deleted: row.deleted,
                };
                index_entries.push((key, v));
            }
        }
        writer.write(rows)?;
        Ok(!cancelled())
    })?;
    let written = writer.finish()?;
    if flushed.is_empty() || cancelled() {
        written.discard().await;
        clear_pending(db, &pending_key)?;
        return Ok(if flushed.is_empty() { PartitionFlush::Empty } else { PartitionFlush::Cancelled });
    }
    fault::point(fault::AFTER_WRITE);
    if let Err(e) = written.publish().await {
        written.discard().await;
        clear_pending(db, &pending_key)?;
        return Err(e);
    }
    fault::point(fault::AFTER_RENAME);
    let mut next = manifest.clone();
    next.files.push(written.entry.clone());
    next.next_batch = batch_no + 1;
    if let Err(e) = next.store(&cold.dir).await {
        written.discard().await;
        clear_pending(db, &pending_key)?;
        return Err(e);
    }
    fault::point(fault::AFTER_MANIFEST);
    cold.add_file(next, index_entries);
    remove_hot_rows(db, table, partition, &flushed, Some(&pending_key)).await?;
    fault::point(fault::AFTER_DELETE);
    Ok(PartitionFlush::Flushed(written.entry))
}

/// Flushes a partition on a shared storage in a cluster, on the leader (see the module docs):
/// writes the file, then proposes it. No lock is held while the entry commits, since applying
/// entries before it may need them (DROP TABLE takes the flush lock, ALTER TABLE the schema
/// lock); the entry is refused instead if the partition's files changed meanwhile.
async fn flush_through_log(
    db: &Database,
    table: &Arc<TableDef>,
    partition: Partition,
    cold: &ColdPartition,
    cancelled: &dyn Fn() -> bool,
) -> Result<PartitionFlush> {
    let Some(replication) = db.replication().filter(|r| r.leads(r.group_of(table.id, partition))) else {
        return Ok(PartitionFlush::NotLeader);
    };
    let (written, proposal) = {
        let _schema = db.schema_lock.read().await;
        let _flushing = cold.flush_lock.lock().await;
        let table = &current_definition(db, table)?;
        fault::delay(fault::FLUSH_LOCKED);
        let base = cold.generation();
        let mut writer = FileWriter::create_named(&cold.dir, base, unique_file_name(base), table.clone())?;
        // Every version read here was stamped before any that is not: `through` is the
        // newest, and applying the entry removes exactly these.
        let mut through = None;
        scan_hot_rows(db, &db.store.db().snapshot(), table, partition, |_, rows| {
            through = rows.iter().map(|r| r.updated).max().max(through);
            writer.write(rows)?;
            Ok(!cancelled())
        })?;
        let written = writer.finish()?;
        let Some(through) = through.filter(|_| !cancelled()) else {
            written.discard().await;
            return Ok(if through.is_none() { PartitionFlush::Empty } else { PartitionFlush::Cancelled });
        };
        if let Err(e) = written.publish().await {
            written.discard().await;
            return Err(e);
        }
        let proposal = ReplicatedFlush { table: table.id, partition, base, file: written.entry.clone(), through };
        (written, proposal)
    };
    match replication.propose(Command::Flush(proposal)).await {
        Ok(_) => Ok(PartitionFlush::Flushed(written.entry)),
        // The group's leadership moved (a handover, a failover) before the entry reached the
        // log: nothing lists the file, and the partition is the new leader's to flush.
        Err(KalamError::NotLeader(_)) => {
            written.discard().await;
            Ok(PartitionFlush::NotLeader)
        }
        // Not known to be applied or not: the file stays (unlisted, it costs only space).
        Err(e @ KalamError::Unavailable(_)) => Err(e),
        // Applied as a refusal, on every node alike: no node lists the file.
        Err(e) => {
            written.discard().await;
            Err(e)
        }
    }
}

/// Applies a flush the leader replicated, on every node (see the module docs and
/// [`ReplicatedFlush`]): lists the file, then removes the hot rows it holds. Applying it
/// again after a crash finds the file listed and finishes the removal.
pub(crate) async fn apply_replicated(db: &Database, flush: ReplicatedFlush) -> Result<()> {
    let table = db
        .catalog
        .table_by_id(flush.table)
        .ok_or_else(|| KalamError::TableNotFound(format!("the flushed table (id {})", flush.table.0)))?;
    let cold = db.cold.partition(&table, flush.partition).await?;
    if !cold.replicated {
        return Err(KalamError::Validation(format!(
            "{} is not on a shared storage: each node flushes it itself",
            table.qualified_name()
        )));
    }
    let manifest = cold.manifest();
    let listed = manifest.files.iter().any(|f| f.file == flush.file.file);
    if !listed {
        if manifest.next_batch != flush.base {
            return Err(KalamError::InUse(format!(
                "the files of a partition of {} changed while it was flushed; the next flush takes its rows",
                table.qualified_name()
            )));
        }
        let mut next = manifest;
        next.files.push(flush.file.clone());
        next.next_batch = flush.base + 1;
        // A loaded key index takes the new file's keys (one read of two columns), rather
        // than being read again from every file at the next point read.
        let index = match cold.has_index() {
            true => KeyIndex::build(&cold.dir, &table, std::slice::from_ref(&flush.file))
                .await
                .inspect_err(|e| tracing::warn!("cannot read the keys of a flushed file: {}", e.report()))
                .map_or(IndexUpdate::Rebuild, IndexUpdate::Extend),
            false => IndexUpdate::Rebuild,
        };
        db.cold.install_replicated(&cold, table.id, flush.partition, next, index)?;
    }
    let flushed = hot_versions_through(db, &table, flush.partition, flush.through)?;
    remove_hot_rows(db, &table, flush.partition, &flushed, None).await?;
    Ok(())
}

/// (encoded pk, `_updated`) of every hot version of a partition stamped at or before `through`.
fn hot_versions_through(
    db: &Database,
    table: &TableDef,
    partition: Partition,
    through: i64,
) -> Result<Vec<(Vec<u8>, i64)>> {
    let prefix = keys::partition_prefix(table.id, partition);
    let mut it = db.store.db().raw_iterator_cf(&db.store.cf(CF_ROW_INDEX));
    it.seek(prefix);
    let mut out = Vec::new();
    while let (Some(key), Some(pk)) = (it.key(), it.value()) {
        let Some(updated) = key.strip_prefix(&prefix[..]).and_then(|_| keys::index_key_updated(key)) else { break };
        if updated > through {
            break;
        }
        out.push((pk.to_vec(), updated));
        it.next();
    }
    it.status()?;
    Ok(out)
}

/// The table's current definition, or `TableNotFound` once it was dropped. Flushes and
/// compactions ask with the partition's flush lock held, which DROP TABLE takes before it
/// deletes the files: so they never write into a dropped table's directory.
pub(crate) fn current_definition(db: &Database, table: &TableDef) -> Result<Arc<TableDef>> {
    match db.catalog.table(&table.namespace, &table.name) {
        Some(t) if t.id == table.id => Ok(t),
        _ => Err(KalamError::TableNotFound(table.qualified_name())),
    }
}

/// Reads a partition's hot rows (tombstones included) as of `snapshot`, in `_updated` order
/// (walking the change index), in chunks: `f` gets each chunk's encoded primary keys and
/// rows, and returns whether to go on. Files written in this order can be streamed by
/// readers that need it (catch-up) instead of being sorted.
pub(crate) fn scan_hot_rows(
    db: &Database,
    snapshot: &Snapshot<'_>,
    table: &TableDef,
    partition: Partition,
    mut f: impl FnMut(Vec<Vec<u8>>, &[StoredRow]) -> Result<bool>,
) -> Result<()> {
    let prefix = keys::partition_prefix(table.id, partition);
    let (index_cf, rows_cf) = (db.store.cf(CF_ROW_INDEX), db.store.cf(CF_ROWS));
    let mut it = snapshot.raw_iterator_cf(&index_cf);
    it.seek(prefix);
    let mut pks = Vec::with_capacity(WRITE_CHUNK_ROWS);
    loop {
        let at_end = match (it.key(), it.value()) {
            (Some(k), Some(pk)) if k.starts_with(&prefix) => {
                pks.push(pk.to_vec());
                it.next();
                false
            }
            _ => true,
        };
        if pks.len() == WRITE_CHUNK_ROWS || (at_end && !pks.is_empty()) {
            // Looked up in key order, in one batch (RocksDB's fastest multi-get).
            let row_keys: Vec<Vec<u8>> = pks.iter().map(|pk| keys::row_key(table.id, partition, pk)).collect();
            let mut order: Vec<usize> = (0..row_keys.len()).collect();
            order.sort_unstable_by(|&a, &b| row_keys[a].cmp(&row_keys[b]));
            let mut read = ReadOptions::default();
            read.set_snapshot(snapshot);
            let fetched =
                db.store.db().batched_multi_get_cf_opt(&rows_cf, order.iter().map(|&i| &row_keys[i]), true, &read);
            let mut rows: Vec<Option<StoredRow>> = vec![None; pks.len()];
            for (&i, bytes) in order.iter().zip(fetched) {
                // The commit writes a row and its index entry in one batch.
                let bytes = bytes?.ok_or_else(|| KalamError::internal("a change-index entry has no row"))?;
                rows[i] = Some(row_codec::decode(table, &bytes)?);
            }
            let rows: Vec<StoredRow> = rows.into_iter().flatten().collect();
            if !f(std::mem::take(&mut pks), &rows)? {
                return Ok(());
            }
        }
        if at_end {
            break;
        }
    }
    it.status()?;
    Ok(())
}

/// Step 5: removes flushed rows from the hot tier in chunks; the last chunk also clears the
/// pending record. Used by flushes and by recovery.
pub(crate) async fn remove_hot_rows(
    db: &Database,
    table: &TableDef,
    partition: Partition,
    flushed: &[(Vec<u8>, i64)],
    pending_key: Option<&str>,
) -> Result<u64> {
    let mut removed = 0;
    let chunks: Vec<&[(Vec<u8>, i64)]> = flushed.chunks(DELETE_CHUNK_ROWS).collect();
    let last = chunks.len().saturating_sub(1);
    let table = Arc::new(table.clone());
    // Each chunk holds the partition's lock: run it where a preemption cannot stall its writers.
    let remove = |chunk: Vec<(Vec<u8>, i64)>, clear_pending: bool| {
        let (committer, store, table, pending_key) =
            (db.committer.clone(), db.store.clone(), table.clone(), pending_key.map(str::to_string));
        crate::budget::at_request_priority(move || {
            committer.remove_flushed(&table, partition, &chunk, |b| {
                if let (true, Some(key)) = (clear_pending, &pending_key) {
                    b.delete_cf(&store.cf(CF_CATALOG), key);
                }
            })
        })
    };
    if chunks.is_empty() {
        remove(Vec::new(), true).await?;
    }
    for (i, chunk) in chunks.into_iter().enumerate() {
        removed += remove(chunk.to_vec(), i == last).await?;
        if i == 0 {
            fault::point(fault::MID_DELETE);
        }
    }
    if removed > 0 {
        let from = keys::partition_prefix(table.id, partition);
        let to = keys::partition_prefix(table.id, Partition::from_key(partition.key() + 1));
        for cf in [CF_ROWS, CF_ROW_INDEX] {
            db.store.compact_range(cf, &from, &to);
        }
        let (committer, table_id) = (db.committer.clone(), table.id);
        crate::budget::at_request_priority(move || committer.refresh_oldest(table_id, partition)).await?;
    }
    Ok(removed)
}

/// Tables a flush job covers: one table, a namespace's or all USER and SHARED tables.
pub(crate) fn flushable(tables: Vec<Arc<TableDef>>) -> Vec<Arc<TableDef>> {
    tables.into_iter().filter(|t| t.kind != TableKind::Stream).collect()
}

/// Runs a flush job over `targets`: each partition with hot rows (or only those listed)
/// is flushed in turn, and the job's counts grow as files are written.
pub(crate) async fn run_job(
    db: &Database,
    job: &JobHandle,
    targets: &[(Arc<TableDef>, Option<Vec<Partition>>)],
) -> Result<JobEnd> {
    job.start()?;
    for (table, partitions) in targets {
        let partitions = match partitions {
            Some(p) => p.clone(),
            None => db.committer.hot_stats().partitions_of(table.id).into_iter().map(|(p, _)| p).collect(),
        };
        for partition in partitions {
            if job.is_cancelled() {
                return Ok(JobEnd::Cancelled);
            }
            match flush_partition(db, table, partition, &|| job.is_cancelled()).await? {
                PartitionFlush::Flushed(f) => job.progress(f.rows, f.bytes, 1)?,
                PartitionFlush::Empty | PartitionFlush::NotLeader => {}
                PartitionFlush::Cancelled => return Ok(JobEnd::Cancelled),
            }
        }
    }
    Ok(JobEnd::Completed)
}

/// Starts a flush job in the background and returns at once. Flush jobs of one scope (a
/// table, a namespace, all tables) run one at a time; the next waits, `queued`, without a
/// thread.
pub(crate) fn spawn_job(
    db: Arc<Database>,
    job: JobHandle,
    scope: String,
    targets: Vec<(Arc<TableDef>, Option<Vec<Partition>>)>,
) {
    tokio::spawn(async move {
        let _turn = db.jobs.turn(&format!("flush/{scope}")).await;
        let work_db = db.clone();
        let outcome = crate::budget::spawn_background(db.runtime.requests(), "flush", move || async move {
            let outcome = run_job(&work_db, &job, &targets).await;
            job.finish(outcome);
        })
        .await;
        if let Err(e) = outcome {
            tracing::warn!("a flush job did not run: {}", e.report());
        }
    });
}
