//! Compaction of partitions on a shared storage in a cluster, through the log.
//!
//! The leader alone compacts such a partition: it rewrites the files as a single node does
//! (under a name no other node can choose), then proposes the result
//! ([`ReplicatedCompaction`]); every node applies it alike ([`apply_compaction`]), listing the
//! new file and keeping the replaced ones as obsolete. Nodes may still be reading the
//! replaced files through listings taken before, so the leader deletes them only
//! `storage.replaced_file_grace_secs` after it first saw them obsolete, then proposes that
//! ([`DeletedFiles`], applied by [`apply_deleted`]). The leader also deletes files no
//! manifest can come to list any more ([`sweep`]).

use super::{Compaction, Rewritten, compaction_due, rewrite};
use crate::cold::file::batch_of;
use crate::cold::{ColdPartition, IndexUpdate};
use crate::database::Database;
use crate::error::{KalamError, Result};
use crate::flush;
use crate::ids::Partition;
use crate::replication::{Command, DeletedFiles, ReplicatedCompaction};
use crate::schema::TableDef;
use std::sync::Arc;
use std::time::Duration;

/// Compacts a partition on a shared storage if this node leads and it is due (the cleanup's
/// steps 2 and 3, through the log). No lock is held while the entry commits (see
/// `flush::flush_through_log`).
pub(super) async fn compact(
    db: &Database,
    table: &Arc<TableDef>,
    partition: Partition,
    cold: &ColdPartition,
    horizon: i64,
    cancelled: &dyn Fn() -> bool,
) -> Result<Option<Compaction>> {
    let Some(replication) = db.replication().filter(|r| r.leads(r.group_of(table.id, partition))) else {
        return Ok(Some(Compaction::default()));
    };
    let (rewritten, proposal) = {
        let _schema = db.schema_lock.read().await;
        let _flushing = cold.flush_lock.lock().await;
        let table = &flush::current_definition(db, table)?;
        let manifest = cold.manifest();
        if !compaction_due(&manifest, horizon) {
            return Ok(Some(Compaction::default()));
        }
        let Some(rewritten) = rewrite(cold, table, &manifest, horizon, cancelled).await? else { return Ok(None) };
        let proposal = ReplicatedCompaction {
            table: table.id,
            partition,
            base: manifest.next_batch,
            replaced: manifest.file_names().map(str::to_string).collect(),
            file: rewritten.file.as_ref().map(|f| f.entry.clone()),
            purged_through: rewritten.next.purged_through,
        };
        (rewritten, proposal)
    };
    let Rewritten { done, file, .. } = rewritten;
    match replication.propose(Command::Compaction(proposal)).await {
        Ok(_) => Ok(Some(done)),
        // Not known to be applied or not: the file stays (unlisted, `sweep` deletes it).
        Err(e @ KalamError::Unavailable(_)) => Err(e),
        // The group's leadership moved before the entry reached the log: nothing was done
        // here, and the partition is the new leader's (as for a node that never led it).
        Err(KalamError::NotLeader(_)) => {
            if let Some(file) = &file {
                file.discard().await;
            }
            Ok(Some(Compaction::default()))
        }
        Err(e) => {
            if let Some(file) = &file {
                file.discard().await;
            }
            Err(e)
        }
    }
}

/// Applies a compaction the leader replicated, on every node: its file replaces the files
/// the partition listed at `base`, which become obsolete. Applying it again after a crash
/// changes nothing.
pub(crate) async fn apply_compaction(db: &Database, compaction: ReplicatedCompaction) -> Result<()> {
    let (table, cold) = replicated_partition(db, compaction.table, compaction.partition).await?;
    let current = cold.manifest();
    let files: Vec<_> = compaction.file.into_iter().collect();
    if current.next_batch == compaction.base + 1 && current.files == files {
        return Ok(());
    }
    let listed: Vec<&str> = current.file_names().collect();
    if current.next_batch != compaction.base || listed != compaction.replaced {
        return Err(KalamError::InUse(format!(
            "the files of a partition of {} changed while it was compacted; the next cleanup compacts it",
            table.qualified_name()
        )));
    }
    let mut next = current;
    next.files = files;
    next.next_batch = compaction.base + 1;
    next.obsolete.extend(compaction.replaced);
    next.purged_through = next.purged_through.max(compaction.purged_through);
    db.cold.install_replicated(&cold, table.id, compaction.partition, next, IndexUpdate::Rebuild)
}

/// Applies the leader's deletion of obsolete files, on every node: they leave the manifest.
pub(crate) async fn apply_deleted(db: &Database, deleted: DeletedFiles) -> Result<()> {
    let (table, cold) = replicated_partition(db, deleted.table, deleted.partition).await?;
    let mut next = cold.manifest();
    next.obsolete.retain(|name| !deleted.files.contains(name));
    db.cold.install_replicated(&cold, table.id, deleted.partition, next, IndexUpdate::Keep)
}

/// On the leader: deletes the obsolete files of a partition on a shared storage that every
/// node has had the grace period to stop reading (and tells the others through the log),
/// and the files no manifest lists nor can come to list: those of a batch number the
/// partition has passed (written by a leader whose entry was refused or lost). A file of
/// the next batch may be a flush or compaction in progress, and stays.
pub(crate) async fn sweep(db: &Database, table: &TableDef, partition: Partition, cold: &ColdPartition) -> Result<()> {
    let Some(replication) = db.replication().filter(|r| r.leads(r.group_of(table.id, partition))) else {
        return Ok(());
    };
    let grace = Duration::from_secs(db.config.storage.replaced_file_grace_secs);
    let expired = cold.obsolete_for(grace);
    if !expired.is_empty() {
        for name in &expired {
            cold.dir.delete(name).await?;
        }
        let deleted = DeletedFiles { table: table.id, partition, files: expired };
        replication.propose(Command::DeletedFiles(deleted)).await?;
    }
    let manifest = cold.manifest();
    let known = |name: &str| manifest.file_names().any(|f| f == name) || manifest.obsolete.iter().any(|f| f == name);
    for name in cold.dir.list(false).await? {
        if batch_of(&name).is_some_and(|batch| batch < manifest.next_batch) && !known(&name) {
            tracing::info!(table = %table.qualified_name(), "deleting {name}, which no manifest lists");
            cold.dir.delete(&name).await?;
        }
    }
    Ok(())
}

/// The table and partition an entry names, which must be on a shared storage.
async fn replicated_partition(
    db: &Database,
    table: crate::ids::TableId,
    partition: Partition,
) -> Result<(Arc<TableDef>, Arc<ColdPartition>)> {
    let table = db
        .catalog
        .table_by_id(table)
        .ok_or_else(|| KalamError::TableNotFound(format!("the compacted table (id {})", table.0)))?;
    let cold = db.cold.partition(&table, partition).await?;
    if !cold.replicated {
        return Err(KalamError::Validation(format!(
            "{} is not on a shared storage: each node compacts it itself",
            table.qualified_name()
        )));
    }
    Ok((table, cold))
}
