//! BACKUP / RESTORE DATABASE: one namespace to and from a directory (see `docs/storage.md`).
//!
//! ```text
//! {backup}/backup.json                          metadata + every file with size and SHA-256
//! {backup}/backup.json.sha256                   SHA-256 of backup.json (`sha256sum -c` format)
//! {backup}/backup.json.hmac                     HMAC-SHA256 of backup.json with the server's backup key
//! {backup}/{table}/{user_id | shared}/batch-{n}.parquet
//! ```
//!
//! Nothing in a backup is trusted before it is checked: the manifest must carry a valid
//! HMAC made with this server's backup key ([`ManifestSigner`](crate::auth::ManifestSigner); the SHA-256 only detects
//! corruption), and every table, partition and file name in it must be a plain name of the
//! shape KalamDB writes, so that no path built from it leaves the backup or the storage.
//!
//! A backup is one consistent state: under the commit lock it takes a RocksDB snapshot, then
//! the file list of every open cold partition of the namespace (a flush opens its partition
//! before writing, and publishes its file before it removes any hot row, so a row missing
//! from the snapshot is in a listed file). It then copies those files
//! (immutable) and writes the snapshot's hot rows of each partition as one more Parquet file,
//! numbered like the partition's next flush. A row version caught between a flush's manifest
//! and its hot-row removal is in two files; reads keep one (equal versions are one row).
//!
//! A restore verifies every file's size and checksum before it changes anything, copies the
//! files into the tables' storages, writes their manifests, then registers the namespace and
//! its tables (new ids, the same schema history) in one catalog batch.

use crate::auth::ManifestSigner;
use crate::clock::now_micros;
use crate::cold::file::FileWriter;
use crate::cold::location::Location;
use crate::cold::manifest::{FileEntry, Manifest, write_atomically};
use crate::cold::{ColdError, ColdSnapshot, scope_name};
use crate::database::Database;
use crate::error::{KalamError, Result};
use crate::ids::{NamespaceId, Partition, TableId};
use crate::jobs::{JobEnd, JobHandle};
use crate::schema::{Namespace, SchemaVersion, TableDef, TableKind};
use crate::storage::{CF_ROWS, Snapshot, keys};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

pub(crate) mod gather;
mod replicated;

pub(crate) use replicated::{apply_replicated_restore, check_shared_storages};

pub(crate) const MANIFEST_FILE: &str = "backup.json";
/// The manifest's own checksum, written before it: a backup with a manifest has one.
pub(crate) const MANIFEST_CHECKSUM_FILE: &str = "backup.json.sha256";
/// The manifest's authenticity tag, written before it.
pub(crate) const MANIFEST_TAG_FILE: &str = "backup.json.hmac";

const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BackupManifest {
    pub format: u32,
    pub namespace: Namespace,
    pub created_at: i64,
    /// The last `_updated` committed when the snapshot was taken.
    pub watermark: i64,
    pub tables: Vec<TableBackup>,
    /// Every data file, relative to the backup directory.
    pub files: Vec<BackupFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TableBackup {
    pub table: TableDef,
    /// Every schema version, oldest first.
    pub schema_versions: Vec<SchemaVersion>,
    /// Cold tier per partition (none for STREAM tables, whose data is not backed up).
    pub partitions: Vec<PartitionBackup>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PartitionBackup {
    /// `shared` or the owner's user id, as in the cold tier.
    pub scope: String,
    pub next_batch: u64,
    /// Files under `{table}/{scope}/`, listed as a cold-tier manifest lists them.
    pub files: Vec<FileEntry>,
    /// The cold tier's tombstone purge horizon (see the cold-tier manifest).
    #[serde(default)]
    pub purged_through: i64,
}

impl PartitionBackup {
    /// The cold-tier manifest that lists these files for table `table`.
    pub(crate) fn manifest(&self, table: TableId) -> Manifest {
        Manifest {
            files: self.files.clone(),
            next_batch: self.next_batch,
            purged_through: self.purged_through,
            ..Manifest::empty(table)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct BackupFile {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// A backup path as written: absolute, or relative to `{data_dir}/backups`.
pub(crate) fn resolve_path(db: &Database, path: &str) -> Result<PathBuf> {
    let p = Path::new(path.trim());
    if path.trim().is_empty() {
        return Err(KalamError::Validation("the backup path is empty".into()));
    }
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    if p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(KalamError::Validation(format!(
            "backup path '{path}' must be absolute or a plain relative path (no '..')"
        )));
    }
    Ok(db.config.server.data_dir.join("backups").join(p))
}

/// Refuses a target that already holds files.
pub(crate) fn check_target_empty(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir).map(|mut entries| entries.next().is_some()) {
        Ok(true) => Err(KalamError::AlreadyExists(format!(
            "backup directory {} is not empty; choose a new path",
            dir.display()
        ))),
        Ok(false) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            Err(KalamError::AlreadyExists(format!("{} exists and is not a directory", dir.display())))
        }
        Err(e) => Err(KalamError::io("read", dir)(e)),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Reads `{dir}/backup.json`, checks its checksum, its authenticity tag and every name in it.
pub(crate) fn read_manifest(dir: &Path, signer: &ManifestSigner) -> Result<BackupManifest> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KalamError::Validation(format!("no backup at {} ({MANIFEST_FILE} is missing)", dir.display())));
        }
        Err(e) => return Err(KalamError::io("read", &path)(e)),
    };
    let checksum_path = dir.join(MANIFEST_CHECKSUM_FILE);
    let checksum = std::fs::read_to_string(&checksum_path).map_err(|e| {
        KalamError::Validation(format!("the backup at {} has no readable {MANIFEST_CHECKSUM_FILE}: {e}", dir.display()))
    })?;
    if checksum.split_whitespace().next() != Some(sha256_hex(&bytes).as_str()) {
        return Err(KalamError::Validation(format!(
            "the backup manifest {} is corrupt: its SHA-256 does not match {MANIFEST_CHECKSUM_FILE}",
            path.display()
        )));
    }
    let tag = std::fs::read_to_string(dir.join(MANIFEST_TAG_FILE)).unwrap_or_default();
    if !signer.verify(&bytes, &tag) {
        return Err(KalamError::Validation(format!(
            "the backup at {} is not signed with this server's backup key ({MANIFEST_TAG_FILE} is missing or does \
             not match); restore it on a server configured with the key that made it (storage.backup_key)",
            dir.display()
        )));
    }
    let manifest: BackupManifest = serde_json::from_slice(&bytes)
        .map_err(|e| KalamError::Validation(format!("the backup manifest {} is corrupt: {e}", path.display())))?;
    check_names(&manifest).map_err(|e| {
        KalamError::Validation(format!("the backup manifest {} is not a valid backup: {e}", path.display()))
    })?;
    if manifest.format != FORMAT {
        return Err(KalamError::Validation(format!(
            "the backup at {} has format {}, this server reads {FORMAT}",
            dir.display(),
            manifest.format
        )));
    }
    Ok(manifest)
}

/// Checks that every name in `manifest` is a name KalamDB writes: table names are
/// identifiers, partitions are `shared` or a user id, files are `batch-{n}.parquet`, and the
/// file list names exactly the tables' files, as `{table}/{partition}/{file}`.
pub(crate) fn check_names(manifest: &BackupManifest) -> Result<()> {
    let mut expected = std::collections::BTreeSet::new();
    for t in &manifest.tables {
        let name = &t.table.name;
        if crate::ids::normalize_ident("table", name).ok().as_deref() != Some(name.as_str()) {
            return Err(KalamError::Validation(format!("invalid table name '{}'", name.escape_debug())));
        }
        for p in &t.partitions {
            let scope_ok = p.scope.len() <= 20
                && p.scope.bytes().all(|b| b.is_ascii_alphanumeric())
                && crate::cold::scope_partition(&p.scope).is_some();
            if !scope_ok {
                return Err(KalamError::Validation(format!("invalid partition '{}'", p.scope.escape_debug())));
            }
            for f in &p.files {
                if crate::cold::file::batch_of(&f.file).is_none() {
                    return Err(KalamError::Validation(format!("invalid file name '{}'", f.file.escape_debug())));
                }
                expected.insert(format!("{name}/{}/{}", p.scope, f.file));
            }
        }
    }
    let listed: std::collections::BTreeSet<String> = manifest.files.iter().map(|f| f.path.clone()).collect();
    if listed != expected || listed.len() != manifest.files.len() {
        return Err(KalamError::Validation("the file list does not match the tables' files".into()));
    }
    Ok(())
}

/// Checks every listed file's size and SHA-256; the first mismatch is the error.
pub(crate) fn verify(dir: &Path, manifest: &BackupManifest) -> Result<()> {
    for f in &manifest.files {
        let path = dir.join(&f.path);
        let bytes = std::fs::read(&path)
            .map_err(|e| KalamError::Validation(format!("backup file {} cannot be read: {e}", f.path)))?;
        if bytes.len() as u64 != f.bytes || sha256_hex(&bytes) != f.sha256 {
            return Err(KalamError::Validation(format!(
                "backup file {} is corrupt: its size or SHA-256 does not match the manifest",
                f.path
            )));
        }
    }
    Ok(())
}

/// What the backup job copies for one partition.
struct PartitionSource {
    partition: Partition,
    /// Its files stay on storage while this is held.
    cold: ColdSnapshot,
}

/// Writes a backup of `namespace` to `target` (an empty or missing directory).
/// A failed or cancelled backup removes what it wrote (the directory was empty or missing).
pub(crate) async fn run_backup(
    db: &Database,
    job: &JobHandle,
    namespace: &NamespaceId,
    target: &Path,
) -> Result<JobEnd> {
    job.start()?;
    check_target_empty(target)?;
    std::fs::create_dir_all(target).map_err(KalamError::io("create", target))?;
    let outcome = write_backup(db, job, namespace, target).await;
    if !matches!(outcome, Ok(JobEnd::Completed))
        && let Err(e) = std::fs::remove_dir_all(target)
    {
        tracing::warn!(job = %job.id, "cannot remove the unfinished backup {}: {e}", target.display());
    }
    outcome
}

async fn write_backup(db: &Database, job: &JobHandle, namespace: &NamespaceId, target: &Path) -> Result<JobEnd> {
    let ns = db.catalog.namespace(namespace).ok_or_else(|| KalamError::NamespaceNotFound(namespace.to_string()))?;
    // Hot rows are decoded through these definitions: no ALTER TABLE until this node's copy
    // is done. (The other groups' parts are written under their leaders' locks, which check
    // that the definitions are still these.)
    let schema = db.schema_lock.read().await;
    let tables = db.catalog.tables(Some(namespace));
    let versions: Vec<Vec<SchemaVersion>> =
        tables.iter().map(|t| db.catalog.schema_versions(t.id)).collect::<Result<_>>()?;
    let data_tables: Vec<Arc<TableDef>> = tables.iter().filter(|t| t.kind != TableKind::Stream).cloned().collect();
    let replication = db.replication();
    // With spread storage this node holds only some users' partitions: it writes those, and
    // a node storing each other data group writes that group's (see `gather`).
    let here = |t: TableId, p: Partition| replication.as_ref().is_none_or(|r| r.stores(r.group_of(t, p)));
    let Some(mut parts) = write_part(db, Some(job), &data_tables, &here, target).await?.map(|p| vec![p]) else {
        return Ok(JobEnd::Cancelled);
    };
    drop(schema);
    if let Some(replication) = &replication {
        match gather::gather(replication.as_ref(), job, namespace, &data_tables, target).await? {
            Some(theirs) => parts.extend(theirs),
            None => return Ok(JobEnd::Cancelled),
        }
    }
    let watermark = parts.iter().map(|p| p.watermark).max().unwrap_or(0);
    let mut files: Vec<BackupFile> = Vec::new();
    let mut by_table: BTreeMap<TableId, Vec<PartitionBackup>> = BTreeMap::new();
    for part in parts {
        files.extend(part.files);
        for (t, p) in part.partitions {
            by_table.entry(t).or_default().push(p);
        }
    }
    let table_backups = tables
        .iter()
        .zip(versions)
        .map(|(t, schema_versions)| {
            let mut partitions = by_table.remove(&t.id).unwrap_or_default();
            partitions.sort_by(|a, b| a.scope.cmp(&b.scope));
            TableBackup { table: (**t).clone(), schema_versions, partitions }
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let manifest = BackupManifest {
        format: FORMAT,
        namespace: ns,
        created_at: now_micros(),
        watermark,
        tables: table_backups,
        files,
    };
    let bytes = serde_json::to_vec_pretty(&manifest).expect("backup manifests serialise");
    let checksum = format!("{}  {MANIFEST_FILE}\n", sha256_hex(&bytes));
    write_atomically(target, MANIFEST_CHECKSUM_FILE, checksum.as_bytes())?;
    write_atomically(target, MANIFEST_TAG_FILE, format!("{}\n", db.backup_signer.sign(&bytes)).as_bytes())?;
    write_atomically(target, MANIFEST_FILE, &bytes)?;
    Ok(JobEnd::Completed)
}

/// What one node wrote of a backup: the partitions it holds of the backed-up tables, at one
/// consistent state of its replica, with their files (paths relative to the backup).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BackupPart {
    /// The last `_updated` committed when its snapshot was taken.
    pub watermark: i64,
    pub partitions: Vec<(TableId, PartitionBackup)>,
    pub files: Vec<BackupFile>,
}

/// Writes into `target` the partitions of `tables` that `keep` selects, as one consistent
/// state: under the commit lock it takes a RocksDB snapshot, then the file list of every
/// open cold partition. `None` if `job` was cancelled meanwhile.
pub(crate) async fn write_part(
    db: &Database,
    job: Option<&JobHandle>,
    tables: &[Arc<TableDef>],
    keep: &(dyn Fn(TableId, Partition) -> bool + Sync),
    target: &Path,
) -> Result<Option<BackupPart>> {
    // Opened before the snapshot so that listing them under the commit lock touches no
    // storage; a partition first flushed later opens itself before its first file.
    for t in tables {
        for p in db.cold.partitions_on_disk(t).await? {
            if keep(t.id, p) {
                db.cold.partition(t, p).await?;
            }
        }
    }
    // The snapshot before the listings: a flush publishes its file before it removes any
    // hot row, so a row gone from the snapshot is in a listed file.
    let (watermark, snapshot, listings) = db.committer.at_watermarks(|w| {
        let w = w.iter().copied().max().unwrap_or(0);
        let snapshot = db.store.db().snapshot();
        let listings: Vec<Vec<(Partition, ColdSnapshot)>> = tables
            .iter()
            .map(|t| db.cold.open_partitions(t.id).into_iter().map(|(p, c)| (p, c.snapshot())).collect())
            .collect();
        (w, snapshot, listings)
    });
    let mut part = BackupPart { watermark, partitions: Vec::new(), files: Vec::new() };
    for (t, listing) in tables.iter().zip(listings) {
        let mut sources: BTreeMap<Partition, PartitionSource> =
            listing.into_iter().map(|(p, cold)| (p, PartitionSource { partition: p, cold })).collect();
        // Partitions with hot rows only have no open cold partition: start from batch 1.
        for p in hot_partitions(db, &snapshot, t.id)? {
            if let std::collections::btree_map::Entry::Vacant(e) = sources.entry(p) {
                let dir = db.cold.table_dir(t)?.join(&scope_name(p))?;
                e.insert(PartitionSource { partition: p, cold: ColdSnapshot::empty(dir) });
            }
        }
        for source in sources.into_values().filter(|s| keep(t.id, s.partition)) {
            if job.is_some_and(|j| j.is_cancelled()) {
                return Ok(None);
            }
            let copied = backup_partition(db, job, t, &snapshot, &source, target, &mut part.files).await?;
            if !copied.files.is_empty() {
                part.partitions.push((t.id, copied));
            }
        }
    }
    Ok(Some(part))
}

/// Partitions of `table` with rows in the snapshot's hot tier.
fn hot_partitions(db: &Database, snapshot: &Snapshot<'_>, table: TableId) -> Result<Vec<Partition>> {
    let mut out = Vec::new();
    let prefix = keys::table_prefix(table);
    let cf = db.store.cf(CF_ROWS);
    let mut it = snapshot.raw_iterator_cf(&cf);
    it.seek(prefix);
    while let Some(k) = it.key() {
        if !k.starts_with(&prefix) || k.len() < 16 {
            break;
        }
        let p = u64::from_be_bytes(k[8..16].try_into().expect("8 bytes"));
        out.push(Partition::from_key(p));
        // Skip the rest of this partition.
        match p.checked_add(1) {
            Some(next) => it.seek(keys::partition_prefix(table, Partition::from_key(next))),
            None => break,
        }
    }
    it.status()?;
    Ok(out)
}

/// Copies one partition's files and writes its hot rows as one more file.
async fn backup_partition(
    db: &Database,
    job: Option<&JobHandle>,
    table: &Arc<TableDef>,
    snapshot: &Snapshot<'_>,
    source: &PartitionSource,
    target: &Path,
    listed: &mut Vec<BackupFile>,
) -> Result<PartitionBackup> {
    let scope = scope_name(source.partition);
    let rel_dir = format!("{}/{scope}", table.name);
    let out_dir = target.join(&table.name).join(&scope);
    std::fs::create_dir_all(&out_dir).map_err(KalamError::io("create", &out_dir))?;
    let cold = &source.cold;
    let mut entries = Vec::with_capacity(cold.files.len() + 1);
    for f in &cold.files {
        crate::fault::delay(crate::fault::BACKUP_FILE);
        let bytes =
            cold.dir.read(&f.file).await?.ok_or_else(|| {
                ColdError::Corrupt(format!("cold file {} is missing in {}", f.file, cold.dir.display()))
            })?;
        write_atomically(&out_dir, &f.file, &bytes)?;
        listed.push(BackupFile {
            path: format!("{rel_dir}/{}", f.file),
            bytes: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
        });
        if let Some(job) = job {
            job.progress(f.rows, bytes.len() as u64, 1)?;
        }
        entries.push(f.clone());
    }
    let mut next_batch = cold.generation;
    // The snapshot's hot rows, tombstones included, in `_updated` order.
    let mut writer: Option<FileWriter> = None;
    crate::flush::scan_hot_rows(db, snapshot, table, source.partition, |_, rows| {
        let w = match writer.as_mut() {
            Some(w) => w,
            None => writer.insert(FileWriter::create(&Location::Dir(out_dir.clone()), next_batch, table.clone())?),
        };
        w.write(rows)?;
        Ok(true)
    })?;
    if let Some(w) = writer {
        let written = w.finish()?;
        written.publish().await?;
        let bytes = std::fs::read(out_dir.join(&written.entry.file)).map_err(KalamError::io("read", &out_dir))?;
        listed.push(BackupFile {
            path: format!("{rel_dir}/{}", written.entry.file),
            bytes: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
        });
        if let Some(job) = job {
            job.progress(written.entry.rows, bytes.len() as u64, 1)?;
        }
        entries.push(written.entry.clone());
        next_batch += 1;
    }
    Ok(PartitionBackup { scope, next_batch, files: entries, purged_through: cold.purged_through })
}

/// Restores `manifest` (read from `source`) as namespace `namespace`.
pub(crate) async fn run_restore(
    db: &Database,
    job: &JobHandle,
    namespace: &NamespaceId,
    source: &Path,
    manifest: &BackupManifest,
) -> Result<JobEnd> {
    job.start()?;
    verify(source, manifest)?;
    if db.catalog.namespace(namespace).is_some() {
        return Err(KalamError::AlreadyExists(format!("namespace '{namespace}' already exists")));
    }
    for t in &manifest.tables {
        db.catalog.require_storage(&t.table.options.storage)?;
    }
    let ns =
        Namespace { name: namespace.clone(), created_at: now_micros(), options: manifest.namespace.options.clone() };
    // Where the files go depends on the namespace, the table's name and its storage only.
    let defs: Vec<(TableDef, Vec<SchemaVersion>)> = manifest
        .tables
        .iter()
        .map(|t| (TableDef { namespace: namespace.clone(), ..t.table.clone() }, t.schema_versions.clone()))
        .collect();
    // Each removes the files it copied if it fails (in a cluster, unless its last entry got
    // no answer).
    let done = match db.replication() {
        Some(replication) => replicated::restore(db, replication.as_ref(), job, ns, source, manifest, &defs).await?,
        None => restore_here(db, job, ns, source, manifest, defs).await?,
    };
    Ok(if done { JobEnd::Completed } else { JobEnd::Cancelled })
}

/// [`register_here`], then, unless it registered the tables or found the namespace taken
/// meanwhile (its tables may live at the same paths), removes the files it copied.
async fn restore_here(
    db: &Database,
    job: &JobHandle,
    ns: Namespace,
    source: &Path,
    manifest: &BackupManifest,
    defs: Vec<(TableDef, Vec<SchemaVersion>)>,
) -> Result<bool> {
    let outcome = match register_here(db, job, ns, source, manifest, defs.clone()).await {
        Ok(true) => return Ok(true),
        Err(e @ KalamError::AlreadyExists(_)) => return Err(e),
        cancelled_or_failed => cancelled_or_failed,
    };
    for (def, _) in &defs {
        let removed = match db.cold.table_dir(def) {
            Ok(dir) => crate::cold::remove_table_files(&dir).await,
            Err(e) => Err(e),
        };
        if let Err(e) = removed {
            tracing::warn!(job = %job.id, table = %def.name, "cannot remove a failed restore's files: {}", e.report());
        }
    }
    outcome
}

/// On a single node: reserves table ids, copies the files and writes their manifests, moves
/// the clock past the restored rows, then registers the tables. `false` if the job was
/// cancelled first.
async fn register_here(
    db: &Database,
    job: &JobHandle,
    ns: Namespace,
    source: &Path,
    manifest: &BackupManifest,
    mut defs: Vec<(TableDef, Vec<SchemaVersion>)>,
) -> Result<bool> {
    let first_id = db.catalog.reserve_table_ids(defs.len() as u64)?;
    for (i, (def, _)) in defs.iter_mut().enumerate() {
        def.id = TableId(first_id + i as u64);
    }
    let Some(max_updated) = copy_in(db, job, source, manifest, &defs, CopyTo::ThisNode).await? else {
        return Ok(false);
    };
    db.committer.advance_clock(max_updated)?;
    db.catalog.restore_namespace(&ns, &defs).map(|_| true)
}

/// Where a restore copies a backup's files.
pub(super) enum CopyTo<'a> {
    /// This node's storages, under the backup's own names, once what a dropped table of the
    /// same name left is removed; each partition's manifest is written beside its files.
    ThisNode,
    /// A cluster's shared storages, under the names `tables` gives (the backup's tables with
    /// every file renamed, see [`replicated`]); no manifest is written (every node records
    /// the file lists from the log) and nothing already there is removed.
    Shared(&'a [TableBackup]),
}

/// Copies the files of `manifest` into each table's storage as `to` says; returns the
/// largest `_updated` restored, or `None` if the job was cancelled.
async fn copy_in(
    db: &Database,
    job: &JobHandle,
    source: &Path,
    manifest: &BackupManifest,
    defs: &[(TableDef, Vec<SchemaVersion>)],
    to: CopyTo<'_>,
) -> Result<Option<i64>> {
    let mut max_updated = manifest.watermark;
    for (i, (t, (def, _))) in manifest.tables.iter().zip(defs).enumerate() {
        let table_dir = db.cold.table_dir(def)?;
        let dest = match to {
            CopyTo::ThisNode => {
                // Files a dropped table of the same name may have left are not this table's.
                crate::cold::remove_table_files(&table_dir).await?;
                t
            }
            CopyTo::Shared(tables) => &tables[i],
        };
        for (p, dest) in t.partitions.iter().zip(&dest.partitions) {
            let dir = table_dir.join(&p.scope)?;
            for (f, dest) in p.files.iter().zip(&dest.files) {
                if job.is_cancelled() {
                    return Ok(None);
                }
                let path = source.join(&t.table.name).join(&p.scope).join(&f.file);
                let bytes = std::fs::read(&path).map_err(KalamError::io("read", &path))?;
                job.progress(f.rows, bytes.len() as u64, 1)?;
                dir.put(&dest.file, bytes.into()).await?;
                max_updated = max_updated.max(f.max_updated);
            }
            if matches!(to, CopyTo::ThisNode) {
                p.manifest(def.id).store(&dir).await?;
            }
        }
    }
    Ok(Some(max_updated))
}

/// What SHOW BACKUP reports.
pub(crate) struct BackupSummary {
    pub manifest: BackupManifest,
    /// `None` when every file matches its size and checksum.
    pub problem: Option<String>,
}

pub(crate) fn inspect(dir: &Path, signer: &ManifestSigner) -> Result<BackupSummary> {
    let manifest = read_manifest(dir, signer)?;
    let problem = verify(dir, &manifest).err().map(|e| e.to_string());
    Ok(BackupSummary { manifest, problem })
}
