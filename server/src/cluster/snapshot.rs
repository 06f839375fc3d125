//! Snapshots of a node's state machine: what lets the Raft log be purged, and what a node
//! too far behind installs instead of replaying the log.
//!
//! A snapshot is one tar file in `{data_dir}/raft-snapshots/`:
//!
//! ```text
//! meta.json                                        openraft's SnapshotMeta: last applied log id, members
//! rocksdb/…                                        a RocksDB checkpoint of the node's database
//! storage/{ns}/{table}/{scope}/batch-{n}.parquet   the cold files of the node's own storage
//! storage/{ns}/{table}/{scope}/manifest.json       their manifest (those of shared storages
//!                                                  are in the checkpoint, their files shared)
//! checksums.json                                   the SHA-256 of every file above, written last
//! ```
//!
//! **Checked before it is installed:** every file must be listed in `checksums.json` and
//! match its SHA-256, and every listed file must be there; otherwise the snapshot is
//! discarded, the node keeps its data, and the leader sends one again.
//!
//! **Taking one.** Between two applied entries (the apply gate, so the stored applied log id
//! is exact) and under the commit lock (so no commit lands meanwhile), RocksDB makes a
//! checkpoint (hard links), then every open cold partition lists its files with a lease that
//! keeps them on storage. In that order because a flush publishes its file before it removes
//! any hot row: a row missing from the checkpoint is in a listed file. The tar is written after both locks are
//! released. A row caught in both tiers by a flush is read once (equal versions are one row).
//!
//! **Installing one** replaces the node's replicated state, which every part of the server
//! holds open. Rather than tearing that down in place, the node keeps the received file and
//! restarts its own process (`exec`, same pid, same client address), as after a crash;
//! before it opens its database, [`install_pending`] replaces every key of the database
//! that a Raft group owns (the catalog, the data groups' rows and records, the applied
//! position: [`crate::storage::ownership`]) with the checkpoint's, keeping the node's own
//! (its jobs), and swaps in the snapshot's cold files. A restart is what a crash-safe server
//! handles anyway, and clients reconnect and resume from their cursors. Every step of the
//! install can be repeated, so a crash during it is harmless.

use super::TypeConfig;
use crate::cold::ColdSnapshot;
use crate::cold::manifest::{Manifest, sync_dir, write_atomically};
use crate::database::Database;
use crate::error::{KalamError, Result};
use crate::ids::Placement;
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
const META_FILE: &str = "meta.json";
/// The SHA-256 of every other entry, written last: an install checks them before it
/// replaces anything.
const CHECKSUMS_FILE: &str = "checksums.json";
/// The node's database and cold tier, as `Database::open` lays them out.
const ROCKSDB: &str = "rocksdb";
const STORAGE: &str = "storage";

#[derive(Serialize, Deserialize)]
struct Current {
    meta: Meta,
    file: String,
}

/// The snapshot directory of one node.
#[derive(Clone)]
pub(super) struct Snapshots {
    data_dir: PathBuf,
    dir: PathBuf,
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

fn rename_if_present(from: &Path, to: &Path) -> Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(KalamError::io("rename", from)(e)),
        _ => Ok(()),
    }
}

impl Snapshots {
    pub(super) fn open(data_dir: &Path) -> Result<Snapshots> {
        let dir = data_dir.join(DIR);
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        Ok(Snapshots { data_dir: data_dir.to_path_buf(), dir })
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
        let checkpoint = work.join(ROCKSDB);
        // The checkpoint below writes the memtables out, under the locks that hold up
        // applies and commits; most of that is done here first, outside them.
        let flushing = db.clone();
        tokio::task::spawn_blocking(move || flushing.store.flush_memtables()).await.map_err(KalamError::internal)??;

        let applying = gate.lock().await;
        let started = std::time::Instant::now();
        let meta = position()?;
        let taken = db.clone();
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
                    .flat_map(|t| taken.cold.open_partitions(t.id))
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
        let file = tokio::task::spawn_blocking(move || this.write_tar(&work, &written, &listings))
            .await
            .map_err(KalamError::internal)??;
        let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        tracing::info!(
            last = ?meta.last_log_id,
            file = %file.display(),
            bytes,
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
pub(crate) fn install_pending(data_dir: &Path) -> Result<()> {
    let snapshots = Snapshots::open(data_dir)?;
    // Snapshots being taken when the process stopped.
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
    // tar refuses entries that would land outside `installing` (absolute paths, `..`).
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
        // Keep the data this node has; the leader sends a snapshot again.
        tracing::error!(snapshot = %install.display(), "discarding a received snapshot: {problem}");
        remove_dir_if_present(&installing)?;
        std::fs::remove_file(&install).map_err(io("remove", &install))?;
        return Ok(());
    }
    tracing::info!(last = ?meta.last_log_id, "installing a snapshot received from the leader");

    // The replicated keys of the database become the snapshot's; this node's own records
    // (its jobs) stay. A node without a database yet takes the snapshot's as it is.
    let live_db = data_dir.join(ROCKSDB);
    match live_db.join("CURRENT").exists() {
        true => {
            let live = Store::open(&live_db, true)?;
            let received = Store::open(&installing.join(ROCKSDB), false)?;
            let (deleted, copied) = replace_owned(&live, &received, Placement::SINGLE, |o| o != Owner::Node)?;
            live.flush_memtables()?;
            tracing::info!(deleted, copied, "replaced the replicated keys of the database");
        }
        false => std::fs::rename(installing.join(ROCKSDB), &live_db).map_err(io("rename", &installing))?,
    }
    // Set aside the node's own cold tier, then move the snapshot's in.
    let replaced = snapshots.dir.join(REPLACED);
    remove_dir_if_present(&replaced)?;
    std::fs::create_dir_all(&replaced).map_err(io("create", &replaced))?;
    rename_if_present(&data_dir.join(STORAGE), &replaced.join(STORAGE))?;
    match installing.join(STORAGE).exists() {
        true => std::fs::rename(installing.join(STORAGE), data_dir.join(STORAGE)).map_err(io("rename", &installing))?,
        false => std::fs::create_dir_all(data_dir.join(STORAGE)).map_err(io("create", data_dir))?,
    }
    sync_dir(data_dir)?;

    let id = snapshot_file_name(&meta);
    std::fs::rename(&install, snapshots.dir.join(&id)).map_err(io("rename", &install))?;
    snapshots.make_current(&meta, &id)?;
    remove_dir_if_present(&replaced)?;
    remove_dir_if_present(&installing)?;
    tracing::info!(ms = started.elapsed().as_millis() as u64, "installed the snapshot");
    Ok(())
}

/// Checks that every file the manifests under `storage` list is there, with its size.
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

    /// A received snapshot whose manifest lists one 5-byte file, included or not.
    fn receive(data_dir: &Path, include_file: bool) {
        receive_listing(data_dir, "batch-1.parquet", include_file)
    }

    fn receive_listing(data_dir: &Path, listed: &str, include_file: bool) {
        receive_with(data_dir, listed, include_file, |_| {})
    }

    /// A received snapshot as [`ChecksummedTar`] writes it; `tamper` may change the
    /// checksums before they are written.
    fn receive_with(
        data_dir: &Path,
        listed: &str,
        include_file: bool,
        tamper: impl FnOnce(&mut std::collections::BTreeMap<String, String>),
    ) {
        let snapshots = Snapshots::open(data_dir).unwrap();
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

    #[test]
    fn a_received_snapshot_replaces_the_replicated_state_and_becomes_current() {
        let dir = setup();
        receive(dir.path(), true);
        install_pending(dir.path()).unwrap();
        assert_eq!(catalog(dir.path()), INSTALLED);
        assert_eq!(std::fs::read(dir.path().join("storage/app/t/shared/batch-1.parquet")).unwrap(), b"PAR1!");
        let snapshots = dir.path().join(DIR);
        assert!(!snapshots.join(INSTALL).exists() && !snapshots.join(INSTALLING).exists());
        assert!(!snapshots.join(REPLACED).exists());
        let current: Current = serde_json::from_slice(&std::fs::read(snapshots.join(CURRENT)).unwrap()).unwrap();
        assert!(snapshots.join(current.file).exists());
        // Nothing is left to install at the next start.
        install_pending(dir.path()).unwrap();
        assert_eq!(catalog(dir.path()), INSTALLED);
    }

    /// A node with no database yet takes the snapshot's whole, the leader's jobs included
    /// (they are history, not work: they do not run here).
    #[test]
    fn a_new_node_takes_the_snapshots_database() {
        let dir = tempfile::tempdir().unwrap();
        receive(dir.path(), true);
        install_pending(dir.path()).unwrap();
        assert_eq!(catalog(dir.path()), ["job/0000000000000009=leader's job", "ns/new=new"]);
    }

    #[test]
    fn a_snapshot_missing_a_listed_file_is_discarded_and_the_data_kept() {
        let dir = setup();
        receive(dir.path(), false);
        install_pending(dir.path()).unwrap();
        assert_eq!(catalog(dir.path()), OLD);
        let snapshots = dir.path().join(DIR);
        assert!(!snapshots.join(INSTALL).exists() && !snapshots.join(INSTALLING).exists());
        assert!(!snapshots.join(CURRENT).exists());
    }

    #[test]
    fn a_snapshot_whose_file_does_not_match_its_checksum_is_discarded_and_the_data_kept() {
        let dir = setup();
        receive_with(dir.path(), "batch-1.parquet", true, |sums| {
            // As if a byte of the file changed on the way.
            sums.insert(
                "storage/app/t/shared/batch-1.parquet".into(),
                format!("{:x}", {
                    use sha2::Digest;
                    sha2::Sha256::digest(b"PAR1?")
                }),
            );
        });
        install_pending(dir.path()).unwrap();
        assert_eq!(catalog(dir.path()), OLD);
        assert!(!dir.path().join(DIR).join(INSTALL).exists());
        // A file the checksums do not list is refused too.
        receive_with(dir.path(), "batch-1.parquet", true, |sums| {
            sums.remove("rocksdb/CURRENT");
        });
        install_pending(dir.path()).unwrap();
        assert_eq!(catalog(dir.path()), OLD);
    }

    #[test]
    fn a_snapshot_listing_a_file_outside_its_directory_is_discarded() {
        let dir = setup();
        // Exactly 5 bytes sit at that path, so only the name gives it away.
        std::fs::write(dir.path().join("outside.parquet"), b"PAR1!").unwrap();
        receive_listing(dir.path(), "../../../../../../outside.parquet", false);
        install_pending(dir.path()).unwrap();
        assert_eq!(catalog(dir.path()), OLD);
        assert!(!dir.path().join(DIR).join(INSTALL).exists());
    }

    #[test]
    fn an_install_interrupted_midway_is_finished_at_the_next_start() {
        let dir = setup();
        std::fs::create_dir_all(dir.path().join(STORAGE).join("old")).unwrap();
        receive(dir.path(), true);
        // As if a crash came while the keys were being replaced (some deleted, some
        // copied), and after the old cold tier was moved aside.
        put(&dir.path().join(ROCKSDB), &[(b"ns/new", b"new")]);
        let replaced = dir.path().join(DIR).join(REPLACED);
        std::fs::create_dir_all(&replaced).unwrap();
        std::fs::rename(dir.path().join(STORAGE), replaced.join(STORAGE)).unwrap();
        install_pending(dir.path()).unwrap();
        assert_eq!(catalog(dir.path()), INSTALLED);
        assert!(dir.path().join("storage/app/t/shared/batch-1.parquet").exists());
        assert!(!dir.path().join("storage/old").exists() && !replaced.exists());
    }
}
