//! A backup of a cluster with spread storage, where no node holds every user's partitions.
//! The node running `BACKUP DATABASE` writes the partitions of the groups it stores; for
//! each other data group, the group's leader writes that group's partitions (a *part*) into
//! a directory of its own (`{data_dir}/backups/.parts/{part}`), and this node fetches the
//! part's files over the cluster port in chunks, checking each file's size and SHA-256.
//!
//! Each part is one consistent state of its group (as a single node's backup is of the
//! whole database); groups are independent logs, so the parts are taken one after another.
//! A part is written with the table definitions the backup lists: the leader first applies
//! the metadata log as far as this node had, and refuses if a table's schema has changed
//! since (the backup then fails and says so).

use crate::backup::{self, BackupFile, BackupPart};
use crate::cold::location::blocking;
use crate::database::Database;
use crate::error::{KalamError, Result};
use crate::ids::{NamespaceId, TableId};
use crate::jobs::JobHandle;
use crate::replication::{AppliedPosition, GroupId, METADATA, Replication};
use crate::schema::TableDef;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Bytes of a part's file per request over the cluster port.
pub(crate) const CHUNK_BYTES: usize = 1 << 20;

/// What the node running a backup asks of a data group's leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PartRequest {
    /// Names the part's directory on the leader (the job's id and the group).
    pub part: String,
    pub namespace: NamespaceId,
    /// The tables to write, each with the schema version the backup lists.
    pub tables: Vec<(TableId, u32)>,
    /// The index of the metadata log the asking node had applied: the leader applies as
    /// far before it writes, so that it knows every table listed.
    pub metadata_applied: u64,
}

/// A part as written: the node holding it and what it holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PartWritten {
    pub node: u64,
    pub part: BackupPart,
}

/// A chunk of one file of a part: `path` relative to the part's directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ChunkRequest {
    pub part: String,
    pub path: String,
    pub offset: u64,
}

/// Writes into `target` the partitions of the data groups this node does not store, each
/// written by the group's leader and fetched from it; `None` if `job` was cancelled.
pub(crate) async fn gather(
    replication: &dyn Replication,
    job: &JobHandle,
    namespace: &NamespaceId,
    tables: &[Arc<TableDef>],
    target: &Path,
) -> Result<Option<Vec<BackupPart>>> {
    let groups = replication.groups_elsewhere();
    if groups.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let metadata_applied = replication.applied_position().0.get(METADATA.0 as usize).copied().unwrap_or(0);
    let mut parts = Vec::with_capacity(groups.len());
    for group in groups {
        if job.is_cancelled() {
            return Ok(None);
        }
        let request = PartRequest {
            part: format!("{}-g{}", job.id, group.0),
            namespace: namespace.clone(),
            tables: tables.iter().map(|t| (t.id, t.schema_version)).collect(),
            metadata_applied,
        };
        let request_json = serde_json::to_value(&request).map_err(KalamError::internal)?;
        let written: PartWritten = serde_json::from_value(replication.backup_part(group, request_json).await?)
            .map_err(|e| {
                KalamError::Unavailable(format!("the answer of group {}'s leader is not a backup part: {e}", group.0))
            })?;
        let fetched = fetch(replication, job, written.node, &request.part, &written.part.files, target).await;
        replication.backup_part_done(written.node, &request.part).await;
        if !fetched? {
            return Ok(None);
        }
        parts.push(written.part);
    }
    Ok(Some(parts))
}

/// Copies the files of part `part` on node `node` into `target`, checking each against its
/// listing; `false` if `job` was cancelled meanwhile.
async fn fetch(
    replication: &dyn Replication,
    job: &JobHandle,
    node: u64,
    part: &str,
    files: &[BackupFile],
    target: &Path,
) -> Result<bool> {
    for f in files {
        if job.is_cancelled() {
            return Ok(false);
        }
        let path = target.join(checked_relative(&f.path)?);
        let mut out = open_for_write(&path)?;
        let mut hash = Sha256::new();
        let mut offset = 0u64;
        loop {
            let bytes = replication.backup_chunk(node, part, &f.path, offset).await?;
            if offset + bytes.len() as u64 > f.bytes {
                break; // longer than listed: refused below
            }
            hash.update(&bytes);
            out.write_all(&bytes).map_err(KalamError::io("write", &path))?;
            offset += bytes.len() as u64;
            if bytes.len() < CHUNK_BYTES {
                break;
            }
        }
        out.sync_all().map_err(KalamError::io("sync", &path))?;
        let sha256 = hex::encode(hash.finalize());
        if offset != f.bytes || sha256 != f.sha256 {
            return Err(KalamError::Unavailable(format!(
                "backup file {} from node {node} does not match its listing (size or SHA-256); run the backup again",
                f.path
            )));
        }
        job.progress(0, f.bytes, 1)?;
    }
    Ok(true)
}

fn open_for_write(path: &Path) -> Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(KalamError::io("create", dir))?;
    }
    std::fs::File::create(path).map_err(KalamError::io("create", path))
}

/// `path` if it is a plain relative path (no `..`, no root): it names a file inside a
/// backup or a part, never outside.
fn checked_relative(path: &str) -> Result<&Path> {
    let p = Path::new(path);
    let plain = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    match plain {
        true => Ok(p),
        false => Err(KalamError::Validation(format!("invalid backup file path '{}'", path.escape_debug()))),
    }
}

/// Where this node keeps the parts it writes for backups run on other nodes.
fn parts_dir(db: &Database) -> PathBuf {
    db.config.server.data_dir.join("backups").join(".parts")
}

/// The directory of part `part`, if `part` is a name this server makes (a job id and a
/// group: letters, digits and `-`).
fn part_dir(db: &Database, part: &str) -> Result<PathBuf> {
    part_dir_in(&parts_dir(db), part)
}

fn part_dir_in(parts: &Path, part: &str) -> Result<PathBuf> {
    let plain = !part.is_empty() && part.len() <= 128 && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    match plain {
        true => Ok(parts.join(part)),
        false => Err(KalamError::Validation(format!("invalid backup part '{}'", part.escape_debug()))),
    }
}

/// On the leader of `group`: writes the part `request` asks for. A part that fails is
/// removed; a finished one stays until the asking node says it has fetched it
/// ([`remove_part`]), this node restarts ([`remove_all_parts`]), or it is abandoned
/// ([`ABANDONED_AFTER`]).
pub(crate) async fn write_requested(
    db: &Database,
    replication: &dyn Replication,
    group: GroupId,
    request: &PartRequest,
) -> Result<BackupPart> {
    let dir = part_dir(db, &request.part)?;
    let mut position = vec![0; METADATA.0 as usize + 1];
    position[METADATA.0 as usize] = request.metadata_applied;
    if !replication.wait_applied(&AppliedPosition(position)).await {
        return Err(KalamError::Unavailable(format!(
            "the leader of group {} has not applied the catalog as far as the backup's node in time; retry",
            group.0
        )));
    }
    // Hot rows are decoded through these definitions: no ALTER TABLE until the part is written.
    let _schema = db.schema_lock.read().await;
    let mut tables = Vec::with_capacity(request.tables.len());
    for (id, version) in &request.tables {
        match db.catalog.table_by_id(*id) {
            Some(t) if t.schema_version == *version && t.namespace == request.namespace => tables.push(t),
            _ => {
                return Err(KalamError::Validation(format!(
                    "a table of namespace '{}' was altered or dropped while the backup ran; run it again",
                    request.namespace
                )));
            }
        }
    }
    remove_abandoned_parts(db);
    backup::check_target_empty(&dir)?;
    std::fs::create_dir_all(&dir).map_err(KalamError::io("create", &dir))?;
    let keep = |t: TableId, p| replication.group_of(t, p) == group;
    match backup::write_part(db, None, &tables, &keep, &dir).await {
        Ok(Some(part)) => Ok(part),
        // A part has no job of its own to be cancelled.
        Ok(None) => Err(KalamError::internal("a backup part was cancelled")),
        Err(e) => {
            drop(std::fs::remove_dir_all(&dir));
            Err(e)
        }
    }
}

/// Up to [`CHUNK_BYTES`] of a part's file from `offset` (fewer at its end).
pub(crate) async fn read_chunk(db: &Database, chunk: ChunkRequest) -> Result<Vec<u8>> {
    let path = part_dir(db, &chunk.part)?.join(checked_relative(&chunk.path)?);
    blocking(move || {
        let mut file = std::fs::File::open(&path).map_err(KalamError::io("open", &path))?;
        file.seek(SeekFrom::Start(chunk.offset)).map_err(KalamError::io("seek", &path))?;
        let mut bytes = Vec::with_capacity(CHUNK_BYTES);
        file.take(CHUNK_BYTES as u64).read_to_end(&mut bytes).map_err(KalamError::io("read", &path))?;
        Ok(bytes)
    })
    .await
}

/// Removes a part once the node that asked for it has fetched it (or given up).
pub(crate) async fn remove_part(db: &Database, part: &str) -> Result<()> {
    let dir = part_dir(db, part)?;
    blocking(move || match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(KalamError::io("remove", &dir)(e)),
        _ => Ok(()),
    })
    .await
}

/// A part not fetched this long after it was written is abandoned (the node that asked for
/// it stopped or lost this node midway): longer than a part may take to write and fetch.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// Removes parts written longer than [`ABANDONED_AFTER`] ago, so that a backup whose node
/// died midway leaves no copy behind for good on a node that keeps running.
fn remove_abandoned_parts(db: &Database) {
    let Ok(entries) = std::fs::read_dir(parts_dir(db)) else { return };
    for entry in entries.flatten() {
        let age = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        if age.is_some_and(|age| age > ABANDONED_AFTER) {
            let path = entry.path();
            if let Err(e) = std::fs::remove_dir_all(&path) {
                tracing::warn!("cannot remove the abandoned backup part {}: {e}", path.display());
            }
        }
    }
}

/// Removes the parts left by backups that ended while this node was down or unreachable.
pub(crate) fn remove_all_parts(db: &Database) {
    let dir = parts_dir(db);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!("cannot remove the backup parts in {}: {e}", dir.display())
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_and_file_names_never_leave_the_parts_directory() {
        let parts = Path::new("/data/backups/.parts");
        assert_eq!(part_dir_in(parts, "backup-node2-7-g3").unwrap(), parts.join("backup-node2-7-g3"));
        for bad in ["", "..", "../x", "a/b", "a b", "/etc", &"x".repeat(129)] {
            assert!(part_dir_in(parts, bad).is_err(), "part {bad:?} accepted");
        }
        assert_eq!(checked_relative("items/3/batch-1.parquet").unwrap(), Path::new("items/3/batch-1.parquet"));
        for bad in ["", "/etc/passwd", "../x", "items/../../x", "./x"] {
            assert!(checked_relative(bad).is_err(), "path {bad:?} accepted");
        }
    }
}
