//! Snapshots of one Raft group's state machine on a node: what lets the group's log be
//! purged, and what a node too far behind installs instead of replaying it.
//!
//! A snapshot is one tar file in `{data_dir}/raft-snapshots/group-NNNN/`:
//!
//! ```text
//! meta.json                                        openraft's SnapshotMeta: last applied log id, members
//! rocksdb/…                                        a RocksDB database of the keys the group owns
//! storage/{ns}/{table}/{scope}/batch-{n}.parquet   the cold files of the group's partitions on the node's own storage
//! storage/{ns}/{table}/{scope}/manifest.json       their manifest (those of shared storages
//!                                                  are in the checkpoint, their files shared)
//! checksums.json                                   the SHA-256 of every file above, written last
//! ```
//!
//! The database in the tar holds only the keys the group owns ([`crate::storage::ownership`]),
//! copied out of a checkpoint of the whole database once the locks below are released: a
//! node's snapshots of its groups together are about the size of its data, not that size once
//! per group.
//!
//! **Checked before it is installed:** every file must be listed in `checksums.json` and
//! match its SHA-256, and every listed file must be there; otherwise the snapshot is
//! discarded, the node keeps its data, and the leader sends one again.
//!
//! **Taking one.** Between two applied entries of the group (its apply gate, so the stored
//! applied log id is exact) and under the commit lock (so no commit lands meanwhile), RocksDB
//! makes a checkpoint (hard links), then every open cold partition of the group lists its
//! files with a lease that keeps them on storage. In that order because a flush publishes its
//! file before it removes any hot row: a row missing from the checkpoint is in a listed file.
//! The group's keys are copied out of the checkpoint and the tar written after both locks are
//! released. A row caught in both tiers by a flush is read once (equal versions are one row).
//!
//! **Installing one** replaces the group's state on the node, which every part of the server
//! holds open. Rather than tearing that down in place, the node keeps the received file and
//! restarts its own process (`exec`, same pid, same client address), as after a crash, once
//! for the snapshots of every group it receives at about the same time ([`InstallRestart`]);
//! before it opens its database, [`install_pending`] replaces, group by group (the metadata
//! group first), the keys the group owns (the catalog, or a data group's rows, records and
//! clock, and the group's applied position: [`crate::storage::ownership`]) with the
//! checkpoint's, and the group's partition directories on the node's own storage with the
//! snapshot's. The node's own keys (its jobs) and the other groups' stay. A restart is what a
//! crash-safe server handles anyway, and clients reconnect and resume from their cursors.
//! Every step of the install can be repeated, so a crash during it is harmless.

use super::TypeConfig;
use crate::cold::ColdSnapshot;
use crate::cold::manifest::{Manifest, sync_dir, write_atomically};
use crate::database::Database;
use crate::error::{KalamError, Result};
use crate::ids::{Partition, Placement};
use crate::replication::{GroupId, METADATA};
use crate::schema::TableKind;
use crate::storage::Store;
use crate::storage::ownership::{Owner, replace_owned};
use openraft::storage::Snapshot;
use openraft::{BasicNode, SnapshotMeta};
use serde::{Deserialize, Serialize};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

type Meta = SnapshotMeta<u64, BasicNode>;

const DIR: &str = "raft-snapshots";
/// Names the current snapshot file and holds its meta, so serving it reads no tar.
const CURRENT: &str = "current.json";
/// Being received from the leader.
const INCOMING: &str = "incoming.tar";
/// Received whole: installed at the next start. Its presence is the marker.
const INSTALL: &str = "install.tar";
const INSTALLING: &str = "installing";
const REPLACED: &str = "replaced";
/// The checkpoint of the whole database a snapshot's keys are copied from.
const CHECKPOINT: &str = "checkpoint";
const META_FILE: &str = "meta.json";
/// The SHA-256 of every other entry, written last: an install checks them before it
/// replaces anything.
const CHECKSUMS_FILE: &str = "checksums.json";
/// The node's database and cold tier, as `Database::open` lays them out.
pub(super) const ROCKSDB: &str = "rocksdb";
const STORAGE: &str = "storage";

#[derive(Serialize, Deserialize)]
struct Current {
    meta: Meta,
    file: String,
}

/// The snapshot directory of one Raft group on one node.
#[derive(Clone)]
pub(super) struct Snapshots {
    group: GroupId,
    data_dir: PathBuf,
    dir: PathBuf,
}

/// `raft-snapshots/group-NNNN`: the snapshots of `group`.
fn group_dir(data_dir: &Path, group: GroupId) -> PathBuf {
    data_dir.join(DIR).join(format!("group-{:04}", group.0))
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> KalamError {
    KalamError::io(op, path)
}

fn remove_dir_if_present(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(KalamError::io("remove", dir)(e)),
        _ => Ok(()),
    }
}

impl Snapshots {
    pub(super) fn open(data_dir: &Path, group: GroupId) -> Result<Snapshots> {
        let dir = group_dir(data_dir, group);
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        Ok(Snapshots { group, data_dir: data_dir.to_path_buf(), dir })
    }

    /// Takes a snapshot of `db` as of the last applied entry (see the module docs). `gate`
    /// is held by the state machine while it applies an entry.
    pub(super) async fn build(
        &self,
        db: &Arc<Database>,
        gate: &tokio::sync::Mutex<()>,
        position: impl FnOnce() -> Result<Meta>,
    ) -> Result<Snapshot<TypeConfig>> {
        // Opened before the locks, so that listing them touches no storage; a partition first
        // flushed later opens itself before its first file.
        for t in db.catalog.tables(None).iter().filter(|t| t.kind != TableKind::Stream) {
            for p in db.cold.partitions_on_disk(t).await? {
                db.cold.partition(t, p).await?;
            }
        }
        let work = self.dir.join(format!("building-{}", crate::clock::now_micros()));
        let built = self.build_in(&work, db, gate, position).await;
        if built.is_err() {
            // A failed build (a full disk, say) leaves nothing behind to fill it further.
            let _ = remove_dir_if_present(&work);
            let _ = std::fs::remove_file(work.with_extension("tar"));
        }
        built
    }

    async fn build_in(
        &self,
        work: &Path,
        db: &Arc<Database>,
        gate: &tokio::sync::Mutex<()>,
        position: impl FnOnce() -> Result<Meta>,
    ) -> Result<Snapshot<TypeConfig>> {
        let work = work.to_path_buf();
        remove_dir_if_present(&work)?;
        std::fs::create_dir_all(&work).map_err(io("create", &work))?;
        let checkpoint = work.join(CHECKPOINT);
        // The checkpoint below writes the memtables out, under the locks that hold up
        // applies and commits; most of that is done here first, outside them.
        let flushing = db.clone();
        tokio::task::spawn_blocking(move || flushing.store.flush_memtables()).await.map_err(KalamError::internal)??;

        let applying = gate.lock().await;
        let started = std::time::Instant::now();
        let meta = position()?;
        let taken = db.clone();
        let (group, placement) = (self.group, db.committer.placement());
        let at = checkpoint.clone();
        let listings = tokio::task::spawn_blocking(move || {
            taken.committer.at_watermarks(|_| -> Result<Vec<(Manifest, ColdSnapshot)>> {
                // The checkpoint before the listings: a flush publishes its file before it
                // removes any hot row, so a row missing from the checkpoint is listed.
                rocksdb::checkpoint::Checkpoint::new(taken.store.db())
                    .and_then(|c| c.create_checkpoint(&at))
                    .map_err(KalamError::from)?;
                Ok(taken
                    .catalog
                    .tables(None)
                    .iter()
                    .filter(|t| t.kind != TableKind::Stream)
                    .flat_map(|t| taken.cold.open_partitions(t.id).into_iter().map(move |(p, c)| (t.id, p, c)))
                    // The group's own partitions: other groups are at other points of their logs.
                    .filter(|(table, p, _)| group == crate::replication::group_of(placement, *table, *p))
                    .map(|(_, p, c)| (p, c))
                    // Files on a shared storage are every node's already; their manifests
                    // are in the checkpoint.
                    .filter(|(_, c)| !c.replicated)
                    .map(|(_, c)| c.manifest_with_snapshot())
                    .filter(|(m, _)| !m.files.is_empty())
                    .collect())
            })
        })
        .await
        .map_err(KalamError::internal)??;
        drop(applying);
        let paused = started.elapsed();

        let this = self.clone();
        let written = meta.clone();
        let (file, keys) = tokio::task::spawn_blocking(move || -> Result<(PathBuf, u64)> {
            let keys = copy_owned_keys(&work.join(CHECKPOINT), &work.join(ROCKSDB), group, placement)?;
            Ok((this.write_tar(&work, &written, &listings)?, keys))
        })
        .await
        .map_err(KalamError::internal)??;
        let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        tracing::info!(
            group = self.group.0,
            last = ?meta.last_log_id,
            file = %file.display(),
            bytes,
            keys,
            applies_paused_ms = paused.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "took a snapshot"
        );
        let data = tokio::fs::File::open(&file).await.map_err(io("open", &file))?;
        Ok(Snapshot { meta, snapshot: Box::new(data) })
    }

    /// Writes the tar of a taken snapshot, makes it the current one and removes older ones.
    fn write_tar(&self, work: &Path, meta: &Meta, listings: &[(Manifest, ColdSnapshot)]) -> Result<PathBuf> {
        let partial = work.with_extension("tar");
        let file = std::fs::File::create(&partial).map_err(io("create", &partial))?;
        let mut tar = ChecksummedTar::new(BufWriter::new(file));
        let failed = io("write", &partial);
        let result = (|| -> std::io::Result<std::fs::File> {
            tar.bytes(META_FILE, &serde_json::to_vec_pretty(meta).expect("snapshot metas serialise"))?;
            tar.dir(&work.join(ROCKSDB), Path::new(ROCKSDB))?;
            if crate::fault::fails(crate::fault::SNAPSHOT_WRITE) {
                return Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "fault injected"));
            }
            let storage = self.data_dir.join(STORAGE);
            for (manifest, listing) in listings {
                let (dir, relative) = partition_dir(&listing.dir, &storage)?;
                let inside = Path::new(STORAGE).join(relative);
                for f in &manifest.files {
                    tar.file(&dir.join(&f.file), &inside.join(&f.file))?;
                }
                let kept = Manifest { obsolete: vec![], ..manifest.clone() };
                let name = inside.join(crate::cold::manifest::MANIFEST_FILE);
                tar.bytes(&name.to_string_lossy(), &kept.to_bytes())?;
            }
            tar.finish()?.into_inner().map_err(|e| e.into_error())
        })();
        let file = result.map_err(failed)?;
        file.sync_all().map_err(io("sync", &partial))?;
        drop(file);
        let id = snapshot_file_name(meta);
        let target = self.dir.join(&id);
        std::fs::rename(&partial, &target).map_err(io("rename", &partial))?;
        self.make_current(meta, &id)?;
        remove_dir_if_present(work)?;
        Ok(target)
    }

    /// Records `file` (in the snapshot directory) as the current snapshot, and removes the
    /// others (a reader of one keeps its open file).
    fn make_current(&self, meta: &Meta, file: &str) -> Result<()> {
        let current = Current { meta: meta.clone(), file: file.to_string() };
        write_atomically(&self.dir, CURRENT, &serde_json::to_vec(&current).expect("serialises"))?;
        for entry in std::fs::read_dir(&self.dir).map_err(io("list", &self.dir))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("snapshot-") && name != file {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// The last snapshot taken or installed, opened for sending.
    pub(super) async fn current(&self) -> Result<Option<Snapshot<TypeConfig>>> {
        let path = self.dir.join(CURRENT);
        let current: Current = match tokio::fs::read(&path).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|_| KalamError::Corrupt(path.display().to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(KalamError::io("read", &path)(e)),
        };
        let file = self.dir.join(&current.file);
        match tokio::fs::File::open(&file).await {
            Ok(data) => Ok(Some(Snapshot { meta: current.meta, snapshot: Box::new(data) })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(KalamError::io("open", &file)(e)),
        }
    }

    /// What a failed build hands openraft: the current snapshot, or none at all (no log id),
    /// which openraft ignores as not newer than the one it has.
    pub(super) async fn not_newer(&self) -> Result<Snapshot<TypeConfig>> {
        if let Ok(Some(current)) = self.current().await {
            return Ok(current);
        }
        let nothing = Path::new("/dev/null");
        let data = tokio::fs::File::open(nothing).await.map_err(io("open", nothing))?;
        let meta = Meta { last_log_id: None, last_membership: Default::default(), snapshot_id: "none".into() };
        Ok(Snapshot { meta, snapshot: Box::new(data) })
    }

    /// An empty file for a snapshot the leader is about to send.
    pub(super) async fn receive(&self) -> Result<tokio::fs::File> {
        let path = self.dir.join(INCOMING);
        tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await
            .map_err(io("create", &path))
    }

    /// Keeps a received snapshot for installing at the next start; the caller then restarts.
    pub(super) async fn keep_for_install(&self, mut data: tokio::fs::File) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let incoming = self.dir.join(INCOMING);
        data.flush().await.map_err(io("write", &incoming))?;
        data.sync_all().await.map_err(io("sync", &incoming))?;
        drop(data);
        let install = self.dir.join(INSTALL);
        std::fs::rename(&incoming, &install).map_err(io("rename", &incoming))?;
        sync_dir(&self.dir)
    }
}

/// A snapshot's tar being written: records the SHA-256 of every entry, and appends them as
/// [`CHECKSUMS_FILE`] when finished.
struct ChecksummedTar<W: Write> {
    tar: tar::Builder<W>,
    sums: std::collections::BTreeMap<String, String>,
}

impl<W: Write> ChecksummedTar<W> {
    fn new(out: W) -> Self {
        ChecksummedTar { tar: tar::Builder::new(out), sums: Default::default() }
    }

    fn bytes(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        use sha2::Digest;
        self.sums.insert(name.to_string(), format!("{:x}", sha2::Sha256::digest(bytes)));
        append_bytes(&mut self.tar, name, bytes)
    }

    /// Appends the file at `path` as `name`, hashing it as it is copied (one read).
    fn file(&mut self, path: &Path, name: &Path) -> std::io::Result<()> {
        use sha2::Digest;
        let file = std::fs::File::open(path)?;
        let mut header = tar::Header::new_gnu();
        header.set_metadata(&file.metadata()?);
        let mut reading = HashingReader { inner: file, hasher: sha2::Sha256::new() };
        self.tar.append_data(&mut header, name, &mut reading)?;
        self.sums.insert(name.to_string_lossy().into_owned(), format!("{:x}", reading.hasher.finalize()));
        Ok(())
    }

    /// Appends every file under `dir`, as `name/...`.
    fn dir(&mut self, dir: &Path, name: &Path) -> std::io::Result<()> {
        let mut entries: Vec<std::fs::DirEntry> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let inside = name.join(entry.file_name());
            match entry.file_type()?.is_dir() {
                true => self.dir(&entry.path(), &inside)?,
                false => self.file(&entry.path(), &inside)?,
            }
        }
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<W> {
        let sums = serde_json::to_vec_pretty(&self.sums).map_err(std::io::Error::other)?;
        append_bytes(&mut self.tar, CHECKSUMS_FILE, &sums)?;
        self.tar.into_inner()
    }
}

/// Hashes what is read through it.
struct HashingReader<R> {
    inner: R,
    hasher: sha2::Sha256,
}

impl<R: std::io::Read> std::io::Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn sha256_of(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// Checks an unpacked snapshot against its [`CHECKSUMS_FILE`]: every file listed, present
/// and unchanged, and nothing else. A snapshot from a build before checksums has none and
/// is taken as it is.
fn check_checksums(unpacked: &Path) -> std::result::Result<(), String> {
    let listed = unpacked.join(CHECKSUMS_FILE);
    let sums: std::collections::BTreeMap<String, String> = match std::fs::read(&listed) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|_| "unreadable checksums".to_string())?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!("a received snapshot has no checksums (written by an older build): not checked");
            return Ok(());
        }
        Err(e) => return Err(format!("cannot read the checksums: {e}")),
    };
    let mut found = 0;
    let mut todo = vec![unpacked.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| e.to_string())?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
                continue;
            }
            let name = path.strip_prefix(unpacked).map_err(|e| e.to_string())?.to_string_lossy().into_owned();
            if name == CHECKSUMS_FILE {
                continue;
            }
            let expected = sums.get(&name).ok_or_else(|| format!("{name} is not in the checksums"))?;
            if &sha256_of(&path).map_err(|e| format!("{name}: {e}"))? != expected {
                return Err(format!("{name} does not match its checksum"));
            }
            found += 1;
        }
    }
    match found == sums.len() {
        true => Ok(()),
        false => Err(format!("{} of {} files listed in the checksums are missing", sums.len() - found, sums.len())),
    }
}

fn append_bytes(tar: &mut tar::Builder<impl Write>, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, name, bytes)
}

/// A partition's directory and its path under the node's own cold tier, where it must be:
/// cluster mode has no other storage (CREATE STORAGE is refused there).
fn partition_dir<'a>(
    location: &'a crate::cold::location::Location,
    storage: &Path,
) -> std::io::Result<(&'a Path, &'a Path)> {
    match location.local_dir().map(|dir| (dir, dir.strip_prefix(storage))) {
        Some((dir, Ok(relative))) => Ok((dir, relative)),
        _ => Err(std::io::Error::other(format!(
            "a snapshot holds only the node's own storage, not {}",
            location.display()
        ))),
    }
}

fn snapshot_file_name(meta: &Meta) -> String {
    let (term, index) = meta.last_log_id.map_or((0, 0), |l| (l.leader_id.term, l.index));
    format!("snapshot-{term}-{index}-{}.tar", crate::clock::now_micros())
}

/// Installs a snapshot received before the last restart, if there is one: replaces the
/// node's database and cold tier with the snapshot's, and makes it the current snapshot.
/// Runs before the database is opened.
/// Installs the snapshots received before the restart (see the module docs), the metadata
/// group's first, so that a data group's rows never arrive before their tables.
pub(crate) fn install_pending(data_dir: &Path, placement: Placement) -> Result<()> {
    let root = data_dir.join(DIR);
    std::fs::create_dir_all(&root).map_err(io("create", &root))?;
    let mut groups: Vec<GroupId> = Vec::new();
    for entry in std::fs::read_dir(&root).map_err(io("list", &root))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(g) = name.strip_prefix("group-").and_then(|g| g.parse::<u32>().ok()) {
            groups.push(GroupId(g));
        }
    }
    groups.sort();
    for group in groups {
        install_group(data_dir, group, placement)?;
    }
    Ok(())
}

/// Copies the keys `group` owns from the database checkpoint at `checkpoint` into a new
/// database at `into`, then removes the checkpoint. Answers how many keys it copied.
fn copy_owned_keys(checkpoint: &Path, into: &Path, group: GroupId, placement: Placement) -> Result<u64> {
    let copied = {
        let whole = Store::open(checkpoint, false)?;
        let owned = Store::open(into, false)?;
        let (_, copied) = replace_owned(&owned, &whole, placement, |o| owned_by(group, o))?;
        owned.flush_memtables()?;
        copied
    };
    remove_dir_if_present(checkpoint)?;
    Ok(copied)
}

/// Whether a key's owner is replaced by a snapshot of `group`.
fn owned_by(group: GroupId, owner: Owner) -> bool {
    match owner {
        Owner::Catalog => group == METADATA,
        Owner::Data(d) => group == crate::replication::raft_group(d),
        Owner::RaftState(g) => g == group,
        Owner::Node => false,
    }
}

fn install_group(data_dir: &Path, group: GroupId, placement: Placement) -> Result<()> {
    let snapshots = Snapshots::open(data_dir, group)?;
    for entry in std::fs::read_dir(&snapshots.dir).map_err(io("list", &snapshots.dir))?.flatten() {
        if entry.file_name().to_string_lossy().starts_with("building-") {
            let path = entry.path();
            match path.is_dir() {
                true => remove_dir_if_present(&path)?,
                false => std::fs::remove_file(&path).map_err(io("remove", &path))?,
            }
        }
    }
    let install = snapshots.dir.join(INSTALL);
    if !install.exists() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let installing = snapshots.dir.join(INSTALLING);
    remove_dir_if_present(&installing)?;
    let file = std::fs::File::open(&install).map_err(io("open", &install))?;
    tar::Archive::new(std::io::BufReader::new(file)).unpack(&installing).map_err(io("unpack", &install))?;
    let meta_path = installing.join(META_FILE);
    let meta: Meta = std::fs::read(&meta_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| KalamError::Corrupt(format!("{}: no snapshot meta", install.display())))?;
    let complete = match installing.join(ROCKSDB).join("CURRENT").exists() {
        true => check_checksums(&installing).and_then(|()| missing_cold_files(&installing.join(STORAGE))),
        false => Err("no database".to_string()),
    };
    if let Err(problem) = complete {
        tracing::error!(group = group.0, snapshot = %install.display(), "discarding a received snapshot: {problem}");
        remove_dir_if_present(&installing)?;
        std::fs::remove_file(&install).map_err(io("remove", &install))?;
        return Ok(());
    }
    tracing::info!(group = group.0, last = ?meta.last_log_id, "installing a snapshot received from the leader");

    {
        // (A node without a database yet gets an empty one, and the group's keys.)
        let live = Store::open(&data_dir.join(ROCKSDB), true)?;
        let received = Store::open(&installing.join(ROCKSDB), false)?;
        let (deleted, copied) = replace_owned(&live, &received, placement, |o| owned_by(group, o))?;
        live.flush_memtables()?;
        tracing::info!(group = group.0, deleted, copied, "replaced the group's keys of the database");
    }
    // The node's own storage: the group's partition directories are replaced by the
    // snapshot's (moved aside first, so that a crash here is repeatable).
    let replaced = snapshots.dir.join(REPLACED);
    let storage = data_dir.join(STORAGE);
    for dir in local_partition_dirs(&storage, group, placement)? {
        move_under(&dir, &storage, &replaced)?;
    }
    let received_storage = installing.join(STORAGE);
    for dir in local_partition_dirs(&received_storage, group, placement)? {
        move_under(&dir, &received_storage, &storage)?;
    }
    std::fs::create_dir_all(&storage).map_err(io("create", data_dir))?;
    sync_dir(data_dir)?;

    let id = snapshot_file_name(&meta);
    std::fs::rename(&install, snapshots.dir.join(&id)).map_err(io("rename", &install))?;
    snapshots.make_current(&meta, &id)?;
    remove_dir_if_present(&replaced)?;
    remove_dir_if_present(&installing)?;
    tracing::info!(group = group.0, ms = started.elapsed().as_millis() as u64, "installed the snapshot");
    Ok(())
}

/// Removes what the node keeps of `group` as files: its partition directories on the node's
/// own storage and its snapshots (for a group the node has left: `super::leaving`).
pub(super) fn remove_group_files(data_dir: &Path, group: GroupId, placement: Placement) -> Result<()> {
    let storage = data_dir.join(STORAGE);
    for dir in local_partition_dirs(&storage, group, placement)? {
        remove_dir_if_present(&dir)?;
    }
    remove_dir_if_present(&group_dir(data_dir, group))?;
    sync_dir(data_dir)
}

/// Moves `dir` (under `from`) to the same place under `to`, replacing what is there.
fn move_under(dir: &Path, from: &Path, to: &Path) -> Result<()> {
    let target = to.join(dir.strip_prefix(from).map_err(KalamError::internal)?);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    remove_dir_if_present(&target)?;
    std::fs::rename(dir, &target).map_err(io("rename", dir))
}

/// The partition directories under `storage` (`{ns}/{table}/{scope}`, each with its
/// manifest naming its table) whose partitions are in `group`.
fn local_partition_dirs(storage: &Path, group: GroupId, placement: Placement) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let list = |dir: &Path| -> Result<Vec<PathBuf>> {
        match std::fs::read_dir(dir) {
            Ok(entries) => Ok(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(KalamError::io("list", dir)(e)),
        }
    };
    for namespace in list(storage)? {
        for table in list(&namespace)? {
            for scope in list(&table)? {
                let partition = match scope.file_name().and_then(|n| n.to_str()) {
                    Some("shared") => Partition::Shared,
                    Some(user) => match user.parse::<u64>() {
                        Ok(id) => Partition::User(crate::ids::UserId(id)),
                        Err(_) => continue,
                    },
                    None => continue,
                };
                let manifest: Option<Manifest> = std::fs::read(scope.join(crate::cold::manifest::MANIFEST_FILE))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                if let Some(m) = manifest
                    && crate::replication::group_of(placement, m.table_id, partition) == group
                {
                    found.push(scope);
                }
            }
        }
    }
    Ok(found)
}

fn missing_cold_files(storage: &Path) -> std::result::Result<(), String> {
    let Ok(entries) = std::fs::read_dir(storage) else { return Ok(()) };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            missing_cold_files(&path)?;
        } else if entry.file_name() == crate::cold::manifest::MANIFEST_FILE {
            let manifest: Manifest = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| format!("unreadable manifest {}", path.display()))?;
            for f in &manifest.files {
                // A plain file name, so that the check stays inside the snapshot.
                crate::cold::location::check_segment(&f.file).map_err(|e| e.to_string())?;
                let file = storage.join(&f.file);
                match std::fs::metadata(&file) {
                    Ok(m) if m.len() == f.bytes => {}
                    _ => return Err(format!("{} is missing or not {} bytes", file.display(), f.bytes)),
                }
            }
        }
    }
    Ok(())
}

/// Replaces this process by a new start of the same server, keeping its client address
/// (even one picked with port 0). Returns only if that fails.
/// After one group's snapshot is kept, how long no other group may have been receiving one
/// before the node restarts to install them all.
const RESTART_QUIET: std::time::Duration = std::time::Duration::from_secs(1);
/// The longest a kept snapshot waits for the others before the node restarts anyway.
const RESTART_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Default)]
struct InstallState {
    receiving: std::collections::BTreeSet<GroupId>,
    first_kept: Option<std::time::Instant>,
    last_event: Option<std::time::Instant>,
}

/// The restart that installs received snapshots, shared by a node's groups: a node that
/// gets snapshots of several groups at about the same time (a new node gets one per group)
/// installs them all in one restart rather than one restart each.
#[derive(Clone, Default)]
pub(super) struct InstallRestart(Arc<std::sync::Mutex<InstallState>>);

impl InstallRestart {
    fn state(&self) -> std::sync::MutexGuard<'_, InstallState> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `group` starts receiving a snapshot.
    pub(super) fn receiving(&self, group: GroupId) {
        let mut state = self.state();
        state.receiving.insert(group);
        state.last_event = Some(std::time::Instant::now());
    }

    /// `group`'s snapshot is kept for install: restarts the node once no group has been
    /// receiving one for [`RESTART_QUIET`], or [`RESTART_WAIT`] after the first was kept.
    /// Returns only if the restart fails.
    pub(super) async fn kept(&self, group: GroupId, client_address: Option<std::net::SocketAddr>) -> std::io::Error {
        {
            let now = std::time::Instant::now();
            let mut state = self.state();
            state.receiving.remove(&group);
            state.first_kept.get_or_insert(now);
            state.last_event = Some(now);
        }
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let state = self.state();
            let quiet = state.receiving.is_empty() && state.last_event.is_none_or(|t| t.elapsed() >= RESTART_QUIET);
            if quiet || state.first_kept.is_some_and(|t| t.elapsed() >= RESTART_WAIT) {
                break;
            }
        }
        restart(client_address)
    }
}

#[cfg(unix)]
pub(super) fn restart(client_address: Option<std::net::SocketAddr>) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return e,
    };
    let mut args = Vec::new();
    let mut skip_value = false;
    for arg in std::env::args_os().skip(1) {
        let text = arg.to_string_lossy();
        if std::mem::take(&mut skip_value) {
            continue;
        }
        if text == "--listen" {
            skip_value = true;
            continue;
        }
        if !text.starts_with("--listen=") {
            args.push(arg);
        }
    }
    let mut command = std::process::Command::new(exe);
    command.args(args);
    if let Some(addr) = client_address {
        command.env("KALAMDB_LISTEN", addr.to_string());
    }
    command.exec()
}

#[cfg(not(unix))]
pub(super) fn restart(_client_address: Option<std::net::SocketAddr>) -> std::io::Error {
    std::io::Error::other("installing a snapshot needs a restart, which is supported on Unix only")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cold::manifest::FileEntry;
    use crate::ids::TableId;

    /// The one data group of a single node's placement.
    const DATA: GroupId = GroupId(1);

    /// Received snapshots of the metadata group and the data group (a node's whole state
    /// with one data group), whose manifest lists one 5-byte file, included or not.
    fn receive(data_dir: &Path, include_file: bool) {
        receive_listing(data_dir, "batch-1.parquet", include_file)
    }

    fn receive_listing(data_dir: &Path, listed: &str, include_file: bool) {
        for group in [METADATA, DATA] {
            receive_with(data_dir, group, listed, include_file, |_| {})
        }
    }

    fn install(data_dir: &Path) {
        install_pending(data_dir, Placement::SINGLE).unwrap()
    }

    /// A received snapshot as [`ChecksummedTar`] writes it; `tamper` may change the
    /// checksums before they are written.
    fn receive_with(
        data_dir: &Path,
        group: GroupId,
        listed: &str,
        include_file: bool,
        tamper: impl FnOnce(&mut std::collections::BTreeMap<String, String>),
    ) {
        let snapshots = Snapshots::open(data_dir, group).unwrap();
        let file = std::fs::File::create(snapshots.dir.join(INSTALL)).unwrap();
        let mut tar = ChecksummedTar::new(file);
        let meta = Meta::default();
        tar.bytes(META_FILE, &serde_json::to_vec(&meta).unwrap()).unwrap();
        // The leader's database: its catalog, and a job of its own.
        let leader = tempfile::tempdir().unwrap();
        put(&leader.path().join(ROCKSDB), &[(b"ns/new", b"new"), (b"job/0000000000000009", b"leader's job")]);
        tar.dir(&leader.path().join(ROCKSDB), Path::new(ROCKSDB)).unwrap();
        let entry = FileEntry {
            batch: 1,
            file: listed.into(),
            rows: 1,
            tombstones: 0,
            oldest_tombstone: None,
            bytes: 5,
            min_updated: 1,
            max_updated: 1,
            created_at: 0,
            schema_version: 1,
            columns: Default::default(),
            sorted_by_updated: true,
        };
        let manifest = Manifest { files: vec![entry], next_batch: 2, ..Manifest::empty(TableId(7)) };
        tar.bytes("storage/app/t/shared/manifest.json", &manifest.to_bytes()).unwrap();
        if include_file {
            tar.bytes("storage/app/t/shared/batch-1.parquet", b"PAR1!").unwrap();
        }
        tamper(&mut tar.sums);
        tar.finish().unwrap().sync_all().unwrap();
    }

    /// Writes `pairs` into the `catalog` column family of the database at `dir`.
    fn put(dir: &Path, pairs: &[(&[u8], &[u8])]) {
        let store = Store::open(dir, false).unwrap();
        let mut batch = rocksdb::WriteBatch::default();
        for (k, v) in pairs {
            batch.put_cf(&store.cf(crate::storage::CF_CATALOG), k, v);
        }
        store.write(batch).unwrap();
    }

    /// The `catalog` keys of the node's database, as text.
    fn catalog(data_dir: &Path) -> Vec<String> {
        let store = Store::open(&data_dir.join(ROCKSDB), false).unwrap();
        let pairs = store.scan_prefix(crate::storage::CF_CATALOG, b"").unwrap();
        pairs.iter().map(|(k, v)| format!("{}={}", String::from_utf8_lossy(k), String::from_utf8_lossy(v))).collect()
    }

    const OLD: [&str; 2] = ["job/0000000000000001=mine", "ns/old=old"];
    /// The snapshot's replicated keys in, the node's own job kept.
    const INSTALLED: [&str; 2] = ["job/0000000000000001=mine", "ns/new=new"];

    /// A node whose database holds a catalog record and a job of its own.
    fn setup() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        put(&dir.path().join(ROCKSDB), &[(b"ns/old", b"old"), (b"job/0000000000000001", b"mine")]);
        dir
    }

    /// A group's snapshot carries the keys that group owns, none of the others' nor the
    /// node's own (its jobs).
    #[test]
    fn a_snapshots_database_holds_the_keys_its_group_owns_only() {
        let pairs: [(&[u8], &[u8]); 4] =
            [(b"ns/app", b"a"), (b"job/0000000000000001", b"mine"), (b"seq/clock", b"7"), (b"raft/applied", b"m")];
        for (group, expected) in [(METADATA, ["ns/app=a", "raft/applied=m"]), (DATA, ["seq/clock=7", ""])] {
            let dir = tempfile::tempdir().unwrap();
            let checkpoint = dir.path().join(CHECKPOINT);
            put(&checkpoint, &pairs);
            let copied = copy_owned_keys(&checkpoint, &dir.path().join(ROCKSDB), group, Placement::SINGLE).unwrap();
            let expected: Vec<&str> = expected.into_iter().filter(|k| !k.is_empty()).collect();
            assert_eq!(copied, expected.len() as u64);
            assert_eq!(catalog(dir.path()), expected, "group {}", group.0);
            assert!(!checkpoint.exists(), "the checkpoint is removed");
        }
    }

    #[test]
    fn a_received_snapshot_replaces_the_replicated_state_and_becomes_current() {
        let dir = setup();
        receive(dir.path(), true);
        install(dir.path());
        assert_eq!(catalog(dir.path()), INSTALLED);
        assert_eq!(std::fs::read(dir.path().join("storage/app/t/shared/batch-1.parquet")).unwrap(), b"PAR1!");
        let snapshots = group_dir(dir.path(), DATA);
        assert!(!snapshots.join(INSTALL).exists() && !snapshots.join(INSTALLING).exists());
        assert!(!snapshots.join(REPLACED).exists());
        let current: Current = serde_json::from_slice(&std::fs::read(snapshots.join(CURRENT)).unwrap()).unwrap();
        assert!(snapshots.join(current.file).exists());
        // Nothing is left to install at the next start.
        install(dir.path());
        assert_eq!(catalog(dir.path()), INSTALLED);
    }

    /// A node with no database yet takes the groups' keys, not the leader's own (its jobs).
    #[test]
    fn a_new_node_takes_the_groups_keys() {
        let dir = tempfile::tempdir().unwrap();
        receive(dir.path(), true);
        install(dir.path());
        assert_eq!(catalog(dir.path()), ["ns/new=new"]);
    }

    /// A data group's snapshot leaves the catalog (the metadata group's) as it is.
    #[test]
    fn a_data_groups_snapshot_replaces_its_partitions_only() {
        let dir = setup();
        receive_with(dir.path(), DATA, "batch-1.parquet", true, |_| {});
        install(dir.path());
        assert_eq!(catalog(dir.path()), OLD);
        assert_eq!(std::fs::read(dir.path().join("storage/app/t/shared/batch-1.parquet")).unwrap(), b"PAR1!");
    }

    #[test]
    fn a_snapshot_missing_a_listed_file_is_discarded_and_the_data_kept() {
        let dir = setup();
        receive(dir.path(), false);
        install(dir.path());
        assert_eq!(catalog(dir.path()), OLD);
        for group in [METADATA, DATA] {
            let snapshots = group_dir(dir.path(), group);
            assert!(!snapshots.join(INSTALL).exists() && !snapshots.join(INSTALLING).exists());
            assert!(!snapshots.join(CURRENT).exists());
        }
    }

    #[test]
    fn a_snapshot_whose_file_does_not_match_its_checksum_is_discarded_and_the_data_kept() {
        let dir = setup();
        receive_with(dir.path(), DATA, "batch-1.parquet", true, |sums| {
            // As if a byte of the file changed on the way.
            sums.insert(
                "storage/app/t/shared/batch-1.parquet".into(),
                format!("{:x}", {
                    use sha2::Digest;
                    sha2::Sha256::digest(b"PAR1?")
                }),
            );
        });
        install(dir.path());
        assert_eq!(catalog(dir.path()), OLD);
        assert!(!group_dir(dir.path(), DATA).join(INSTALL).exists());
        // A file the checksums do not list is refused too.
        receive_with(dir.path(), METADATA, "batch-1.parquet", true, |sums| {
            sums.remove("rocksdb/CURRENT");
        });
        install(dir.path());
        assert_eq!(catalog(dir.path()), OLD);
    }

    #[test]
    fn a_snapshot_listing_a_file_outside_its_directory_is_discarded() {
        let dir = setup();
        // Exactly 5 bytes sit at that path, so only the name gives it away.
        std::fs::write(dir.path().join("outside.parquet"), b"PAR1!").unwrap();
        receive_listing(dir.path(), "../../../../../../outside.parquet", false);
        install(dir.path());
        assert_eq!(catalog(dir.path()), OLD);
        assert!(!group_dir(dir.path(), DATA).join(INSTALL).exists());
    }

    #[test]
    fn an_install_interrupted_midway_is_finished_at_the_next_start() {
        let dir = setup();
        receive(dir.path(), true);
        // As if a crash came while the keys were being replaced (some deleted, some
        // copied), and after the group's old partition directory was moved aside.
        put(&dir.path().join(ROCKSDB), &[(b"ns/new", b"new")]);
        let replaced = group_dir(dir.path(), DATA).join(REPLACED);
        std::fs::create_dir_all(replaced.join("app/t/shared")).unwrap();
        std::fs::write(replaced.join("app/t/shared/batch-0.parquet"), b"old").unwrap();
        install(dir.path());
        assert_eq!(catalog(dir.path()), INSTALLED);
        assert!(dir.path().join("storage/app/t/shared/batch-1.parquet").exists());
        assert!(!replaced.exists());
    }
}
