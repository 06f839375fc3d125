//! RESTORE DATABASE in a cluster.
//!
//! The node that runs the restore reads the backup (a directory it can read), checks it, and
//! copies its files into the tables' storages, which in a cluster must be shared: every node
//! reads them there. Nothing is visible yet. It then moves every data group's row clock past
//! the restored rows' `_updated`, through each group's log, so that every replica stamps later
//! writes alike and newer than them. Last, one entry of the metadata group's log registers the
//! namespace with its tables and records each partition's file list on every node, in one write
//! per node ([`apply_replicated_restore`]); the tables take their ids there. A restore refused
//! before that entry leaves no trace but the copied files, which the job removes; one that
//! gets no answer (`UNAVAILABLE`) keeps them, since its entries may still be committed. The
//! copies are named apart ([`unique_file_name`]), so a restore under the same name meanwhile
//! never removes or replaces them; should both commit, the later entry is refused and the
//! files it copied are removed (as the cleanup's `sweep` would remove files no manifest
//! lists).
//!
//! Tables with files on a storage each node keeps apart (`local`, or a path not marked
//! shared) cannot be restored this way: their files would have to reach every node's disk.
//! Such a backup is restored on a single node, which then grows into a cluster
//! (docs/cluster.md).

use super::{BackupManifest, CopyTo, TableBackup, copy_in};
use crate::cold::file::unique_file_name;
use crate::cold::manifest::Manifest;
use crate::database::Database;
use crate::error::{KalamError, Result};
use crate::jobs::JobHandle;
use crate::replication::{AdvanceClock, Command, ReplicatedRestore, Replication, RestoredTable};
use crate::schema::{Namespace, SchemaVersion, TableDef};
use std::path::Path;

/// Copies the files of `manifest` (read from `source`, already verified) to the shared
/// storages of `defs` (its tables in namespace `ns`), moves every data group's clock past
/// them, then registers them through the metadata group's log. `false` if the job was
/// cancelled first. Unless the last entry got no answer, a restore that does not register
/// its tables removes the files it copied.
pub(super) async fn restore(
    db: &Database,
    replication: &dyn Replication,
    job: &JobHandle,
    ns: Namespace,
    source: &Path,
    manifest: &BackupManifest,
    defs: &[(TableDef, Vec<SchemaVersion>)],
) -> Result<bool> {
    check_shared_storages(db, &manifest.tables)?;
    // Names no other restore can have chosen: one whose last entry got no answer may still
    // be committed, listing its own files under the same table directories.
    let renamed = with_unique_file_names(&manifest.tables);
    let restore = ReplicatedRestore { namespace: ns, tables: renamed.iter().map(restored).collect::<Result<_>>()? };
    check_entry_size(db, &restore)?;
    let copied: Result<bool> = async {
        let Some(max_updated) = copy_in(db, job, source, manifest, defs, CopyTo::Shared(&renamed)).await? else {
            return Ok(false);
        };
        for group in db.committer.placement().all() {
            replication.propose_on_leader(Command::AdvanceClock(AdvanceClock { group, after: max_updated })).await?;
        }
        Ok(true)
    }
    .await;
    let outcome = match copied {
        Ok(true) => match register(replication, restore).await {
            Ok(()) => return Ok(true),
            // The entry may be committed without an answer, even later by a new leader:
            // its files stay.
            Err(e @ KalamError::Unavailable(_)) => return Err(e),
            Err(e) => Err(e),
        },
        cancelled_or_failed => cancelled_or_failed,
    };
    remove_copies(db, job, defs, &renamed).await;
    outcome
}

/// Registers the restored tables through the metadata group's leader.
async fn register(replication: &dyn Replication, restore: ReplicatedRestore) -> Result<()> {
    let name = restore.namespace.name.clone();
    replication.propose_on_leader(Command::Restore(restore)).await.map(|_| ()).map_err(|e| match e {
        KalamError::Unavailable(why) => KalamError::Unavailable(format!(
            "{why}; whether namespace '{name}' was restored is not known yet (SHOW NAMESPACES tells once the \
             cluster answers), so the files copied for it are kept"
        )),
        other => other,
    })
}

/// The backup's tables with every file given a name of its own ([`unique_file_name`]).
fn with_unique_file_names(tables: &[TableBackup]) -> Vec<TableBackup> {
    let mut renamed = tables.to_vec();
    for f in renamed.iter_mut().flat_map(|t| &mut t.partitions).flat_map(|p| &mut p.files) {
        f.file = unique_file_name(f.batch);
    }
    renamed
}

/// Removes the files a restore copied (or would have) under the names `renamed` gives.
async fn remove_copies(
    db: &Database,
    job: &JobHandle,
    defs: &[(TableDef, Vec<SchemaVersion>)],
    renamed: &[TableBackup],
) {
    for ((def, _), t) in defs.iter().zip(renamed) {
        for p in &t.partitions {
            let dir = match db.cold.table_dir(def).and_then(|d| d.join(&p.scope)) {
                Ok(dir) => dir,
                Err(e) => {
                    tracing::warn!(job = %job.id, table = %def.name, "cannot remove a failed restore's files: {}", e.report());
                    continue;
                }
            };
            for f in &p.files {
                if let Err(e) = dir.delete(&f.file).await {
                    tracing::warn!(job = %job.id, table = %def.name, "cannot remove a failed restore's file {}: {}", f.file, e.report());
                }
            }
        }
    }
}

/// A table of a backup as the restore's log entry carries it.
fn restored(t: &TableBackup) -> Result<RestoredTable> {
    let partitions = t.partitions.iter().map(|p| {
        let key = crate::cold::scope_partition(&p.scope)
            .ok_or_else(|| KalamError::Validation(format!("invalid partition '{}'", p.scope.escape_debug())))?;
        Ok((key, p.manifest(t.table.id)))
    });
    Ok(RestoredTable {
        table: t.table.clone(),
        schema_versions: t.schema_versions.clone(),
        partitions: partitions.collect::<Result<_>>()?,
    })
}

/// In a cluster, every table with files in the backup must be on a storage whose files
/// every node reads. (A table without any, such as a STREAM table, may be on a node's own
/// storage: each node flushes those itself.)
pub(crate) fn check_shared_storages(db: &Database, tables: &[TableBackup]) -> Result<()> {
    check_storages_of(db, tables.iter().map(|t| (&t.table, !t.partitions.is_empty())))
}

/// [`check_shared_storages`] over tables and whether each has files.
fn check_storages_of<'a>(db: &Database, tables: impl IntoIterator<Item = (&'a TableDef, bool)>) -> Result<()> {
    let mut tables = tables.into_iter();
    match tables.find(|(t, has_files)| *has_files && !db.cold.is_replicated(&t.options.storage)) {
        None => Ok(()),
        Some((t, _)) => Err(KalamError::Validation(format!(
            "table '{}' is on storage '{}', which each node keeps apart: in a cluster RESTORE DATABASE \
             restores tables on shared storages only (restore this backup on a single node, then grow it \
             into a cluster)",
            t.name, t.options.storage
        ))),
    }
}

/// The restore's entry carries every partition's file list: it must fit in one log entry.
/// Checked before any file is copied.
fn check_entry_size(db: &Database, restore: &ReplicatedRestore) -> Result<()> {
    let size = serde_json::to_vec(restore).map_err(KalamError::internal)?.len();
    let limit = db.config.cluster.max_entry_bytes;
    // The proposal adds a few bytes around the command.
    if size + 64 > limit {
        let partitions: usize = restore.tables.iter().map(|t| t.partitions.len()).sum();
        return Err(KalamError::TooLarge(format!(
            "this backup lists {partitions} partitions, whose file lists take {size} bytes: more than one \
             cluster log entry carries (cluster.max_entry_bytes = {limit}); raise it on every node, or restore \
             on a single node and grow it into a cluster"
        )));
    }
    Ok(())
}

/// Applies a restore on this node, from the metadata group's log: registers the namespace
/// and its tables with the catalog's next ids, and records each partition's file list, in one
/// write with what `mark` adds (the log's applied mark). Every node does the same at the same
/// point of the log, so each refuses alike (a namespace that exists by then; a storage that
/// is not shared).
pub(crate) fn apply_replicated_restore(
    db: &Database,
    restore: &ReplicatedRestore,
    mark: impl FnOnce(&mut rocksdb::WriteBatch),
) -> Result<()> {
    check_storages_of(db, restore.tables.iter().map(|t| (&t.table, !t.partitions.is_empty())))?;
    let tables: Vec<_> = restore.tables.iter().map(|t| (t.table.clone(), t.schema_versions.clone())).collect();
    db.catalog.restore_namespace_with_new_ids(&restore.namespace, &tables, |batch, defs| {
        for (def, restored) in defs.iter().zip(&restore.tables) {
            for (key, files) in &restored.partitions {
                let files = Manifest { table_id: def.id, ..files.clone() };
                db.cold.record_replicated(batch, *key, &files)?;
            }
        }
        mark(batch);
        Ok(())
    })?;
    Ok(())
}
