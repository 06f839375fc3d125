//! Tombstone retention and compaction of the cold tier.
//!
//! A cleanup of one partition (see `docs/storage.md`):
//! 1. flushes the partition first if it has hot rows older than the table's tombstone
//!    horizon (`deleted_retention_hours` ago), so that old hot tombstones reach the files;
//! 2. under the partition's flush lock, rewrites all its files into one: per primary key
//!    only the newest version, and nothing for a key whose newest version is a tombstone
//!    older than the horizon;
//! 3. publishes that file (temp file, fsync, rename; one PUT on S3), then writes the manifest
//!    listing only it, the replaced files as `obsolete`, and `purged_through` raised to the
//!    newest purged tombstone's `_updated`;
//! 4. swaps the partition's listing and key index in memory. The replaced files are deleted
//!    once no reader holds a listing taken before the swap, and leave `obsolete` then.
//!
//! Only versions no read can see are removed: superseded ones, and expired tombstones, which
//! only a cursor older than them would need — and a cursor older than `purged_through` gets
//! a `reset`.
//! A pending record (`compact/{table}/{partition}`) is kept from before the file is written
//! until the replaced files are deleted: recovery at start then deletes every file the
//! manifest does not list — the new file of a compaction that crashed before its manifest,
//! or the replaced files of one that crashed after.
//!
//! - [`policy`]: the background task that finds due partitions and runs cleanup jobs.

pub(crate) mod policy;
pub(crate) mod replicated;
#[cfg(test)]
mod tests;

use crate::cold::file::{self, FileWriter, WrittenFile};
use crate::cold::key_index::{ColdVersion, KeyIndex, PkKey};
use crate::cold::manifest::Manifest;
use crate::cold::{ColdError, ColdPartition};
use crate::database::Database;
use crate::error::Result;
use crate::fault;
use crate::flush::{self, PartitionFlush, PendingFile, PendingKind};
use crate::ids::Partition;
use crate::jobs::{JobEnd, JobHandle};
use crate::schema::TableDef;
use crate::storage::row_codec::StoredRow;
use std::sync::Arc;

/// A partition with this many files is compacted even with no tombstone to purge.
pub(crate) const COMPACT_AT_FILES: usize = 16;
/// Rows handed to the file writer at a time.
const WRITE_CHUNK_ROWS: usize = 8192;

/// What a partition's cleanup did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Compaction {
    /// Files replaced.
    pub files: u64,
    /// Row versions dropped: superseded versions and purged tombstones.
    pub removed: u64,
    /// Of those, expired tombstones.
    pub purged: u64,
    /// Bytes of the replaced files minus those of the new one.
    pub freed: u64,
}

/// Whether a partition's files are due for compaction at `horizon`.
pub(crate) fn compaction_due(manifest: &Manifest, horizon: i64) -> bool {
    manifest.files.len() >= COMPACT_AT_FILES || manifest.files.iter().any(|f| f.has_tombstone_before(horizon))
}

/// Cleans one partition (the steps above). `None` if it was cancelled.
pub(crate) async fn clean_partition(
    db: &Database,
    table: &Arc<TableDef>,
    partition: Partition,
    cancelled: &dyn Fn() -> bool,
) -> Result<Option<Compaction>> {
    let now = db.clock.now_micros();
    let horizon = table.options.tombstone_horizon(now);
    // Hot tombstones are only purged once flushed.
    if db.committer.hot_stats().get(table.id, partition).is_some_and(|h| h.has_rows_before(horizon))
        && matches!(flush::flush_partition(db, table, partition, cancelled).await?, PartitionFlush::Cancelled)
    {
        return Ok(None);
    }
    let cold = db.cold.partition(table, partition).await?;
    if cold.replicated {
        return replicated::compact(db, table, partition, &cold, horizon, cancelled).await;
    }
    // Rows are read and written through the current definition, fixed until this is done.
    let _schema = db.schema_lock.read().await;
    let flushing = cold.flush_lock.lock().await;
    let table = &flush::current_definition(db, table)?;
    let manifest = cold.manifest();
    if !compaction_due(&manifest, horizon) {
        delete_retired(&cold, &flushing).await?;
        return Ok(Some(Compaction::default()));
    }
    let pending = PendingFile { table_id: table.id, partition: partition.key(), batch: manifest.next_batch };
    let pending_key = flush::pending_key(PendingKind::Compaction, table.id, partition);
    flush::record_pending(db, &pending_key, &pending)?;
    // On an error the record stays: the next start removes what was left.
    let Some(Rewritten { next, index, done, file }) = rewrite(&cold, table, &manifest, horizon, cancelled).await?
    else {
        flush::clear_pending(db, &pending_key)?;
        return Ok(None);
    };
    if let Err(e) = next.store(&cold.dir).await {
        if let Some(file) = &file {
            file.discard().await;
        }
        return Err(e);
    }
    fault::point(fault::COMPACT_AFTER_MANIFEST);
    let replaced = manifest.file_names().map(str::to_string).collect();
    cold.replace_files(next, index, replaced);
    db.cold.enforce_index_budget(&cold);
    delete_retired(&cold, &flushing).await?;
    flush::clear_pending(db, &pending_key)?;
    tracing::info!(
        table = %table.qualified_name(),
        "compacted {} files of partition {}: {} versions removed, {} of them expired tombstones",
        done.files,
        crate::cold::scope_name(partition),
        done.removed,
        done.purged
    );
    Ok(Some(done))
}

/// A compaction's result, published but not yet listed.
struct Rewritten {
    /// The manifest listing it.
    next: Manifest,
    index: KeyIndex,
    done: Compaction,
    /// The file, unless nothing was kept.
    file: Option<WrittenFile>,
}

/// Steps 2 and 3 up to the manifest: writes and publishes the compacted file. `None` if
/// cancelled.
async fn rewrite(
    cold: &ColdPartition,
    table: &Arc<TableDef>,
    manifest: &Manifest,
    horizon: i64,
    cancelled: &dyn Fn() -> bool,
) -> Result<Option<Rewritten>> {
    let current = KeyIndex::build(&cold.dir, table, &manifest.files).await?;
    let batch_no = manifest.next_batch;
    let name = match cold.replicated {
        true => file::unique_file_name(batch_no),
        false => file::file_name(batch_no),
    };
    let mut writer = FileWriter::create_named(&cold.dir, batch_no, name, table.clone())?;
    let mut index = KeyIndex::default();
    let mut done = Compaction { files: manifest.files.len() as u64, ..Compaction::default() };
    let mut kept: Vec<StoredRow> = Vec::with_capacity(WRITE_CHUNK_ROWS);
    let mut written = 0u32;
    let mut newest_purged = 0i64;
    let columns = file::row_columns(table);
    let mut ahead = manifest.files.first().map(|f| cold.dir.open_ahead(&f.file)).transpose()?;
    for (i, f) in manifest.files.iter().enumerate() {
        let opening = ahead.take().expect("opened ahead");
        ahead = manifest.files.get(i + 1).map(|f| cold.dir.open_ahead(&f.file)).transpose()?;
        let mut row = 0u32;
        let mut batches = file::open_from(opening, table, &columns, None, file::ROW_GROUP_ROWS).await?;
        while let Some(b) = batches.next().await {
            let b = b?;
            for r in 0..b.num_rows() {
                let version = file::stored_row(table, &b, r)?;
                let key = PkKey::of(&version.values[table.primary_key])
                    .ok_or_else(|| ColdError::Corrupt("a primary key is NULL".into()))?;
                let newest = current.get(&key).is_some_and(|v| v.batch == f.batch && v.row == row);
                row += 1;
                if !newest {
                    done.removed += 1;
                    continue;
                }
                if version.deleted && version.updated < horizon {
                    done.removed += 1;
                    done.purged += 1;
                    newest_purged = newest_purged.max(version.updated);
                    continue;
                }
                let at =
                    ColdVersion { batch: batch_no, row: written, updated: version.updated, deleted: version.deleted };
                index.insert(key, at);
                written += 1;
                kept.push(version);
                if kept.len() == WRITE_CHUNK_ROWS {
                    writer.write(&kept)?;
                    kept.clear();
                }
            }
        }
        if cancelled() {
            writer.finish()?.discard().await;
            return Ok(None);
        }
    }
    writer.write(&kept)?;
    let file = writer.finish()?;
    let old_bytes: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    let mut next = manifest.clone();
    next.next_batch = batch_no + 1;
    next.obsolete.extend(manifest.file_names().map(str::to_string));
    next.purged_through = next.purged_through.max(newest_purged);
    let file = if written == 0 {
        file.discard().await;
        next.files = vec![];
        done.freed = old_bytes;
        None
    } else {
        if let Err(e) = file.publish().await {
            file.discard().await;
            return Err(e);
        }
        fault::point(fault::COMPACT_AFTER_WRITE);
        done.freed = old_bytes.saturating_sub(file.entry.bytes);
        next.files = vec![file.entry.clone()];
        Some(file)
    };
    if cancelled() {
        if let Some(file) = &file {
            file.discard().await;
        }
        return Ok(None);
    }
    Ok(Some(Rewritten { next, index, done, file }))
}

/// Deletes the replaced files no reader can still use, and drops them from the manifest's
/// `obsolete` list. `_flushing` is the partition's flush lock, held by the caller.
pub(crate) async fn delete_retired(cold: &ColdPartition, _flushing: &tokio::sync::MutexGuard<'_, ()>) -> Result<usize> {
    let names = cold.take_unread_retired();
    if names.is_empty() {
        return Ok(0);
    }
    for name in &names {
        cold.dir.delete(name).await?;
    }
    cold.forget_obsolete(&names).await?;
    Ok(names.len())
}

/// Runs a cleanup job over partitions of tables.
pub(crate) async fn run_job(
    db: &Database,
    job: &JobHandle,
    targets: &[(Arc<TableDef>, Vec<Partition>)],
) -> Result<JobEnd> {
    job.start()?;
    for (table, partitions) in targets {
        for &partition in partitions {
            if job.is_cancelled() {
                return Ok(JobEnd::Cancelled);
            }
            match clean_partition(db, table, partition, &|| job.is_cancelled()).await? {
                Some(c) => job.progress(c.removed, c.freed, c.files)?,
                None => return Ok(JobEnd::Cancelled),
            }
        }
    }
    Ok(JobEnd::Completed)
}
