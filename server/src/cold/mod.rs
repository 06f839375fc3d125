//! The cold tier: Parquet files per partition under
//! `{storage}/{namespace}/{table}/{user_id | shared}/`, listed by a manifest. A table's
//! storage is `local` (`{data_dir}/storage`) or one made by CREATE STORAGE (a directory or
//! an S3 bucket).
//!
//! - [`location`]: a directory of files on the filesystem or in an object store.
//! - [`manifest`]: the per-scope manifest (files, row counts, `_updated` range, column stats).
//! - [`file`]: writing and reading one Parquet file.
//! - [`stats`]: column statistics and the value order pruning relies on.
//! - [`key_index`]: newest cold version per primary key, built lazily per partition.
//! - [`merge`]: reading a partition through both tiers (newest `_updated` per key wins).
//!
//! Files are immutable once listed; a flush adds one file per partition (see
//! [`crate::flush`]) and a compaction replaces them all by one (see [`crate::cleanup`]).
//!
//! In a cluster, tables keep their files on a shared storage (an object store, or a
//! directory every node mounts) and the nodes share them: the leader writes each file once
//! and the log says which files a partition lists. A node keeps those manifests in its own
//! database ([`manifest_key`]), applied from the log, never in the shared storage, where
//! nodes applying the log at different speeds would overwrite each other's.
//! Readers work from a [`ColdSnapshot`] of the file list, whose files stay on storage for as
//! long as it is held.

mod error;
pub(crate) mod file;
pub(crate) mod key_index;
pub(crate) mod location;
pub(crate) mod manifest;
pub(crate) mod merge;
pub(crate) mod stats;

use crate::error::{KalamError, Result};
use crate::ids::{Partition, StorageId, TableId};
use crate::schema::{StorageDef, TableDef};
use crate::storage::row_codec::StoredRow;
use crate::storage::{CF_CATALOG, Store};
pub(crate) use error::ColdError;
use key_index::{ColdVersion, KeyIndex, PkKey};
use location::Location;
use manifest::{FileEntry, Manifest};
use parking_lot::{Mutex, RwLock};
use parquet::arrow::arrow_reader::RowSelection;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

/// Keys kept in all loaded key indexes together; past this, indexes of other partitions
/// are dropped (and rebuilt from their files when next needed).
const KEY_INDEX_BUDGET: usize = 4_000_000;

/// The cold tier of all tables.
pub(crate) struct ColdStore {
    local: PathBuf,
    /// Roots of the storages made by CREATE STORAGE, and whether they are shared.
    storages: RwLock<HashMap<StorageId, (Location, bool)>>,
    partitions: Mutex<HashMap<(TableId, Partition), Arc<ColdPartition>>>,
    /// In a cluster: the node's database, which holds the manifests of partitions on shared
    /// storages (see the module docs).
    replicated_manifests: Option<Arc<Store>>,
}

/// How a change applied from the log affects a partition's key index.
pub(crate) enum IndexUpdate {
    /// The same files are listed (only their bookkeeping changed).
    Keep,
    /// A file was added, holding these keys (newer than any listed before).
    Extend(KeyIndex),
    /// The files were replaced: built again from them when next needed.
    Rebuild,
}

/// Key (in the `catalog` column family) of the manifest of a partition on a shared storage
/// in a cluster.
pub(crate) fn manifest_key(table: TableId, partition: Partition) -> Vec<u8> {
    format!("manifest/{:016x}/{:016x}", table.0, partition.key()).into_bytes()
}

impl std::fmt::Debug for ColdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ColdStore({})", self.local.display())
    }
}

/// Directory name of a partition's scope.
pub(crate) fn scope_name(partition: Partition) -> String {
    match partition {
        Partition::Shared => "shared".into(),
        Partition::User(u) => u.to_string(),
    }
}

/// The partition a scope directory name names ([`scope_name`]'s inverse).
pub(crate) fn scope_partition(name: &str) -> Option<Partition> {
    match name {
        "shared" => Some(Partition::Shared),
        _ => name.parse::<u64>().ok().map(|id| Partition::User(crate::ids::UserId(id))),
    }
}

impl ColdStore {
    /// The cold tier, with the `local` storage at `local` (`{data_dir}/storage`). In a cluster
    /// `replicated_manifests` is the node's database (see the module docs).
    pub(crate) fn new(local: PathBuf, replicated_manifests: Option<Arc<Store>>) -> ColdStore {
        ColdStore {
            local,
            storages: RwLock::new(HashMap::new()),
            partitions: Mutex::new(HashMap::new()),
            replicated_manifests,
        }
    }

    /// Makes a storage usable by tables (at start for each recorded one, and on CREATE).
    pub(crate) fn add_storage(&self, def: &StorageDef) -> Result<()> {
        let root = Location::open(&def.location)?;
        self.storages.write().insert(def.id.clone(), (root, def.location.is_shared()));
        Ok(())
    }

    /// Makes storage `id` a location of the test's choosing (an in-memory object store).
    #[cfg(test)]
    pub(crate) fn use_location(&self, id: StorageId, location: Location) {
        self.storages.write().insert(id, (location, true));
    }

    /// Records the manifest of a partition on a shared storage, as applied from the log, and
    /// makes it the partition's listing, with its key index updated as `index` says.
    pub(crate) fn install_replicated(
        &self,
        partition: &ColdPartition,
        table: TableId,
        key: Partition,
        manifest: Manifest,
        index: IndexUpdate,
    ) -> Result<()> {
        let db = self.replicated_manifests.as_ref().filter(|_| partition.replicated).ok_or_else(|| {
            KalamError::internal("a replicated manifest for a partition that is not on a shared storage")
        })?;
        let mut record = rocksdb::WriteBatch::default();
        record.put_cf(&db.cf(CF_CATALOG), manifest_key(table, key), manifest.to_bytes());
        db.write(record)?;
        let mut state = partition.state.write();
        match index {
            IndexUpdate::Keep => {}
            IndexUpdate::Extend(added) => {
                if let Some(current) = state.index.as_mut() {
                    for (k, v) in added.iter() {
                        current.insert(k.clone(), *v);
                    }
                }
            }
            IndexUpdate::Rebuild => {
                state.index = None;
                // Listings taken before keep their own lease; the files they read stay until
                // the leader deletes them, after `storage.replaced_file_grace_secs`.
                state.lease = Arc::new(());
            }
        }
        state.manifest = manifest;
        Ok(())
    }

    /// Adds to `batch` the record of a partition's manifest on a shared storage in a cluster,
    /// for a table no node has read yet (a restored one: nothing of it is open here).
    pub(crate) fn record_replicated(
        &self,
        batch: &mut rocksdb::WriteBatch,
        key: Partition,
        manifest: &Manifest,
    ) -> Result<()> {
        let db = self
            .replicated_manifests
            .as_ref()
            .ok_or_else(|| KalamError::internal("a replicated manifest on a node that is not in a cluster"))?;
        batch.put_cf(&db.cf(CF_CATALOG), manifest_key(manifest.table_id, key), manifest.to_bytes());
        Ok(())
    }

    /// When a single node's data becomes a cluster: the manifests its flushes left beside the
    /// files of `table` on a shared storage become the node's records (which the snapshot
    /// then gives to every node, and the cluster's flushes extend). Partitions that have a
    /// record already are left as they are, so this can be repeated.
    pub(crate) async fn adopt_storage_manifests(&self, table: &TableDef) -> Result<()> {
        let Some(db) = self.replicated_manifests.as_ref().filter(|_| self.is_replicated(&table.options.storage)) else {
            return Ok(());
        };
        for key in self.partitions_on_disk(table).await? {
            if db.get(CF_CATALOG, &manifest_key(table.id, key))?.is_some() {
                continue;
            }
            let dir = self.table_dir(table)?.join(&scope_name(key))?;
            if let Some(manifest) = Manifest::load(&dir).await?.filter(|m| m.table_id == table.id) {
                let partition = self.partition(table, key).await?;
                self.install_replicated(&partition, table.id, key, manifest, IndexUpdate::Rebuild)?;
            }
        }
        Ok(())
    }

    /// Whether a table on storage `id` has its files shared by the nodes of a cluster, its
    /// flushes replicated through the log (see the module docs).
    pub(crate) fn is_replicated(&self, id: &StorageId) -> bool {
        self.replicated_manifests.is_some() && self.storages.read().get(id).is_some_and(|(_, shared)| *shared)
    }

    pub(crate) fn remove_storage(&self, id: &StorageId) {
        self.storages.write().remove(id);
    }

    /// Root of a storage.
    pub(crate) fn storage_root(&self, id: &StorageId) -> Result<Location> {
        if id.is_local() {
            return Ok(Location::Dir(self.local.clone()));
        }
        self.storages
            .read()
            .get(id)
            .map(|(root, _)| root.clone())
            .ok_or_else(|| KalamError::internal(format!("storage '{id}' is not open")))
    }

    /// Directory of a table's files.
    pub(crate) fn table_dir(&self, table: &TableDef) -> Result<Location> {
        self.storage_root(&table.options.storage)?.join(table.namespace.as_str())?.join(&table.name)
    }

    /// Every open partition of `table` (any partition a flush writes to is open while
    /// it does).
    pub(crate) fn open_partitions(&self, table: TableId) -> Vec<(Partition, Arc<ColdPartition>)> {
        let mut out: Vec<_> = self
            .partitions
            .lock()
            .iter()
            .filter(|((t, _), _)| *t == table)
            .map(|((_, p), c)| (*p, c.clone()))
            .collect();
        out.sort_by_key(|(p, _)| *p);
        out
    }

    /// The cold tier of one partition (its manifest is read on first use).
    pub(crate) async fn partition(&self, table: &TableDef, partition: Partition) -> Result<Arc<ColdPartition>> {
        if let Some(p) = self.partitions.lock().get(&(table.id, partition)) {
            return Ok(p.clone());
        }
        let dir = self.table_dir(table)?.join(&scope_name(partition))?;
        let replicated = self.is_replicated(&table.options.storage);
        let stored = match (&self.replicated_manifests, replicated) {
            // Never read from the shared storage: applying the log must not depend on
            // reaching it (a single node's manifests there are adopted once, when it becomes
            // a cluster: `adopt_storage_manifests`).
            (Some(db), true) => match db.get(CF_CATALOG, &manifest_key(table.id, partition))? {
                Some(bytes) => Some(Manifest::from_bytes(&bytes, &dir)?),
                None => None,
            },
            _ => Manifest::load(&dir).await?,
        };
        let manifest = match stored {
            Some(m) if m.table_id == table.id => m,
            // Left by a dropped table of the same name: not this table's files.
            _ => Manifest::empty(table.id),
        };
        let p = Arc::new(ColdPartition {
            dir,
            state: RwLock::new(PartitionState::new(manifest)),
            flush_lock: Arc::new(tokio::sync::Mutex::new(())),
            replicated,
            obsolete_seen: Mutex::new(HashMap::new()),
        });
        Ok(self.partitions.lock().entry((table.id, partition)).or_insert(p).clone())
    }

    /// Partitions of `table` that have a cold tier on disk.
    pub(crate) async fn partitions_on_disk(&self, table: &TableDef) -> Result<Vec<Partition>> {
        let mut out = vec![];
        for name in self.table_dir(table)?.list(true).await? {
            out.extend(scope_partition(&name));
        }
        out.sort();
        Ok(out)
    }

    /// Forgets a dropped table and deletes its files. Called once the table has left the
    /// catalog: a flush or compaction already writing finishes first (its flush lock is
    /// taken here), and one that starts later finds the table gone once it holds the lock.
    pub(crate) async fn drop_table(&self, table: &TableDef) -> Result<()> {
        if let (Some(db), true) = (&self.replicated_manifests, self.is_replicated(&table.options.storage)) {
            let prefix = format!("manifest/{:016x}/", table.id.0);
            let mut forget = rocksdb::WriteBatch::default();
            for (key, _) in db.scan_prefix(CF_CATALOG, prefix.as_bytes())? {
                forget.delete_cf(&db.cf(CF_CATALOG), key);
            }
            db.write(forget)?;
        }
        let open: Vec<Arc<ColdPartition>> = {
            let mut partitions = self.partitions.lock();
            let keys: Vec<_> = partitions.keys().filter(|(t, _)| *t == table.id).copied().collect();
            keys.iter().filter_map(|k| partitions.remove(k)).collect()
        };
        let mut _writers_done = Vec::with_capacity(open.len());
        for p in &open {
            _writers_done.push(p.flush_lock.lock().await);
        }
        remove_table_files(&self.table_dir(table)?).await
    }

    /// Drops loaded key indexes (except `keep`'s) when together they exceed the budget.
    pub(crate) fn enforce_index_budget(&self, keep: &ColdPartition) {
        let partitions: Vec<Arc<ColdPartition>> = self.partitions.lock().values().cloned().collect();
        let total: usize = partitions.iter().map(|p| p.indexed_keys()).sum();
        if total <= KEY_INDEX_BUDGET {
            return;
        }
        for p in partitions {
            if !std::ptr::eq(&*p, keep) {
                let mut state = p.state.write();
                state.index = None;
                state.footers.clear();
            }
        }
    }

    /// The newest cold version of `pk` in one partition, as a whole row.
    pub(crate) async fn get(
        &self,
        table: &TableDef,
        partition: Partition,
        pk: &crate::values::Value,
    ) -> Result<Option<StoredRow>> {
        let p = self.partition(table, partition).await?;
        if p.is_empty() {
            return Ok(None);
        }
        let Some(key) = PkKey::of(pk) else { return Ok(None) };
        Ok(p.newest_rows(self, table, &[key], false).await?.pop().flatten())
    }
}

/// A partition's files at one moment: paired with a RocksDB snapshot taken just before it
/// (a flush publishes its file before it removes hot rows), the two tiers as one consistent
/// state. While it is held,
/// its files stay on storage even if a compaction replaces them.
#[derive(Debug, Clone, Default)]
pub(crate) struct ColdSnapshot {
    pub dir: Location,
    pub files: Vec<FileEntry>,
    /// The listing's generation (the manifest's next batch number, which every flush and
    /// compaction advances).
    pub generation: u64,
    /// See [`Manifest::purged_through`].
    pub purged_through: i64,
    _lease: Option<FileLease>,
}

impl ColdSnapshot {
    /// A partition with no cold tier yet.
    pub(crate) fn empty(dir: Location) -> ColdSnapshot {
        ColdSnapshot { dir, generation: 1, ..ColdSnapshot::default() }
    }
}

/// Keeps the files of the listings taken while it lives from being deleted.
type FileLease = Arc<()>;

/// Files a compaction replaced, deleted once every lease taken before it has been dropped.
struct Retired {
    files: Vec<String>,
    holders: Vec<Weak<()>>,
}

struct PartitionState {
    manifest: Manifest,
    index: Option<KeyIndex>,
    /// Footers of files point reads went to, by file name: kept while the key index is
    /// (they are a small fraction of its size) and for listed files only.
    footers: HashMap<String, file::Footer>,
    /// Handed to every listing; replaced at each compaction.
    lease: FileLease,
    /// Leases of earlier listings that may still be held.
    old_leases: Vec<Weak<()>>,
    retired: Vec<Retired>,
}

impl PartitionState {
    fn new(manifest: Manifest) -> PartitionState {
        // Files a compaction replaced before a restart: nothing reads them any more.
        let retired = match manifest.obsolete.is_empty() {
            true => vec![],
            false => vec![Retired { files: manifest.obsolete.clone(), holders: vec![] }],
        };
        PartitionState {
            manifest,
            index: None,
            footers: HashMap::new(),
            lease: Arc::new(()),
            old_leases: vec![],
            retired,
        }
    }
}

/// One partition's cold tier.
pub(crate) struct ColdPartition {
    pub dir: Location,
    state: RwLock<PartitionState>,
    /// Held by a flush or compaction of this partition while it changes the manifest (a
    /// flush from reading the hot rows to deleting them). Async: a dropped table's cleanup
    /// and a commit that keeps losing races with flushes wait for it without blocking.
    pub flush_lock: Arc<tokio::sync::Mutex<()>>,
    /// On a shared storage of a cluster: its flushes go through the log, and its manifest is
    /// kept in the node's database (see the module docs).
    pub replicated: bool,
    /// When this node first saw each obsolete file (see [`ColdPartition::obsolete_for`]).
    obsolete_seen: Mutex<HashMap<String, std::time::Instant>>,
}

impl ColdPartition {
    pub(crate) fn is_empty(&self) -> bool {
        self.state.read().manifest.files.is_empty()
    }

    /// The files as listed now, kept on storage while the snapshot lives.
    pub(crate) fn snapshot(&self) -> ColdSnapshot {
        self.listing(&self.state.read())
    }

    /// The manifest and a snapshot of exactly its files, read together.
    pub(crate) fn manifest_with_snapshot(&self) -> (Manifest, ColdSnapshot) {
        let state = self.state.read();
        (state.manifest.clone(), self.listing(&state))
    }

    fn listing(&self, state: &PartitionState) -> ColdSnapshot {
        ColdSnapshot {
            dir: self.dir.clone(),
            files: state.manifest.files.clone(),
            generation: state.manifest.next_batch,
            purged_through: state.manifest.purged_through,
            _lease: Some(state.lease.clone()),
        }
    }

    /// The listing's generation now (see [`ColdSnapshot::generation`]).
    pub(crate) fn generation(&self) -> u64 {
        self.state.read().manifest.next_batch
    }

    /// The files as listed now.
    pub(crate) fn files(&self) -> Vec<FileEntry> {
        self.state.read().manifest.files.clone()
    }

    pub(crate) fn manifest(&self) -> Manifest {
        self.state.read().manifest.clone()
    }

    /// Whether the key index is loaded (a replicated flush then extends it).
    pub(crate) fn has_index(&self) -> bool {
        self.state.read().index.is_some()
    }

    fn indexed_keys(&self) -> usize {
        self.state.read().index.as_ref().map_or(0, KeyIndex::len)
    }

    /// Runs `f` on the key index (building it first if needed), but only if the files are
    /// still those of the listing of `generation` (`None` otherwise): the index then describes
    /// exactly the files a reader listed.
    pub(crate) async fn with_index_at<T>(
        &self,
        store: &ColdStore,
        table: &TableDef,
        generation: u64,
        f: impl FnOnce(&KeyIndex) -> T,
    ) -> Result<Option<T>> {
        self.ensure_index(store, table).await?;
        let files = {
            let state = self.state.read();
            if state.manifest.next_batch != generation {
                return Ok(None);
            }
            match &state.index {
                Some(index) => return Ok(Some(f(index))),
                None => state.manifest.files.clone(),
            }
        };
        // The index was dropped (over budget) since: build one for this reader only.
        let index = KeyIndex::build(&self.dir, table, &files).await?;
        Ok((self.generation() == generation).then(|| f(&index)))
    }

    /// Which rows of `listing`'s files are the newest cold version of their key; `None` if
    /// the files changed since the listing was taken.
    pub(crate) async fn newest_versions(
        &self,
        store: &ColdStore,
        table: &TableDef,
        listing: &ColdSnapshot,
    ) -> Result<Option<merge::NewestVersions>> {
        self.with_index_at(store, table, listing.generation, |index| merge::NewestVersions::of(index, &listing.files))
            .await
    }

    async fn ensure_index(&self, store: &ColdStore, table: &TableDef) -> Result<()> {
        if self.state.read().index.is_some() {
            return Ok(());
        }
        // Built outside the lock; a flush or compaction that lands meanwhile changes
        // `next_batch`, and the build is retried rather than installing a stale index.
        loop {
            let manifest = self.manifest();
            let built = KeyIndex::build(&self.dir, table, &manifest.files).await?;
            let installed = {
                let mut state = self.state.write();
                let current = state.manifest.next_batch == manifest.next_batch;
                if current {
                    state.index = Some(built);
                }
                current
            };
            if installed {
                store.enforce_index_budget(self);
                return Ok(());
            }
        }
    }

    /// Makes a newly written file (already listed in `manifest`, which is on disk) part of
    /// the tier, with the keys it holds.
    pub(crate) fn add_file(&self, manifest: Manifest, keys: Vec<(PkKey, ColdVersion)>) {
        let mut state = self.state.write();
        state.manifest = manifest;
        if let Some(index) = state.index.as_mut() {
            for (k, v) in keys {
                index.insert(k, v);
            }
        }
    }

    /// Of the obsolete files (replaced by a compaction), those first seen obsolete by this
    /// node at least `grace` ago: after a restart or a change of leader, the wait starts again.
    pub(crate) fn obsolete_for(&self, grace: std::time::Duration) -> Vec<String> {
        let obsolete = self.state.read().manifest.obsolete.clone();
        let mut seen = self.obsolete_seen.lock();
        seen.retain(|name, _| obsolete.contains(name));
        let now = std::time::Instant::now();
        obsolete
            .into_iter()
            .filter(|name| now.duration_since(*seen.entry(name.clone()).or_insert(now)) >= grace)
            .collect()
    }

    /// Makes a compaction's result the tier: `manifest` (already on storage) lists its file
    /// and `index` its keys. The files it replaced stay until no earlier listing is held.
    pub(crate) fn replace_files(&self, manifest: Manifest, index: KeyIndex, replaced: Vec<String>) {
        let mut state = self.state.write();
        state.manifest = manifest;
        state.index = Some(index);
        let old = std::mem::replace(&mut state.lease, Arc::new(()));
        state.old_leases.push(Arc::downgrade(&old));
        drop(old);
        state.old_leases.retain(|w| w.strong_count() > 0);
        let holders = state.old_leases.clone();
        state.retired.push(Retired { files: replaced, holders });
    }

    /// Replaced files no listing can still read: they are forgotten here, and the caller
    /// deletes them. Called with `flush_lock` held.
    pub(crate) fn take_unread_retired(&self) -> Vec<String> {
        let mut state = self.state.write();
        let mut out = Vec::new();
        state.retired.retain_mut(|r| {
            let unread = r.holders.iter().all(|h| h.strong_count() == 0);
            if unread {
                out.append(&mut r.files);
            }
            !unread
        });
        out
    }

    /// Drops deleted files from the manifest's `obsolete` list (on storage, then here).
    /// Called with `flush_lock` held.
    pub(crate) async fn forget_obsolete(&self, deleted: &[String]) -> Result<()> {
        let mut manifest = self.manifest();
        manifest.obsolete.retain(|n| !deleted.contains(n));
        manifest.store(&self.dir).await?;
        self.state.write().manifest = manifest;
        Ok(())
    }

    /// Whether replaced files are waiting to be deleted.
    pub(crate) fn has_retired(&self) -> bool {
        !self.state.read().retired.is_empty()
    }

    /// The newest cold versions of `keys` (`None` for a key with none, or whose newest is a
    /// tombstone when `live_only`), read from one listing: a compaction that lands meanwhile
    /// renumbers the rows, and the lookup is repeated.
    pub(crate) async fn newest_rows(
        &self,
        store: &ColdStore,
        table: &TableDef,
        keys: &[PkKey],
        live_only: bool,
    ) -> Result<Vec<Option<StoredRow>>> {
        loop {
            let listing = self.snapshot();
            let found = self
                .with_index_at(store, table, listing.generation, |index| {
                    keys.iter().map(|k| index.get(k).copied().filter(|v| !(live_only && v.deleted))).collect::<Vec<_>>()
                })
                .await?;
            let Some(found) = found else { continue };
            let versions: Vec<ColdVersion> = found.iter().flatten().copied().collect();
            let mut rows = self.read_versions(&listing, table, &versions).await?.into_iter();
            return Ok(found.iter().map(|v| v.map(|_| rows.next().expect("one row per version"))).collect());
        }
    }

    /// The footer of `entry`, a file of this partition: kept from an earlier read, or read
    /// now (and kept if the key index is loaded and the file still listed).
    async fn footer(&self, entry: &FileEntry) -> Result<file::Footer> {
        if let Some(footer) = self.state.read().footers.get(&entry.file) {
            return Ok(footer.clone());
        }
        let footer = file::footer(&self.dir, &entry.file).await?;
        let mut state = self.state.write();
        if state.index.is_some() {
            let PartitionState { manifest, footers, .. } = &mut *state;
            footers.retain(|name, _| manifest.files.iter().any(|f| &f.file == name));
            if manifest.files.iter().any(|f| f.file == entry.file) {
                footers.insert(entry.file.clone(), footer.clone());
            }
        }
        Ok(footer)
    }

    /// Whole rows of the given versions of a listing's files (in the given order).
    async fn read_versions(
        &self,
        listing: &ColdSnapshot,
        table: &TableDef,
        versions: &[ColdVersion],
    ) -> Result<Vec<StoredRow>> {
        let files = &listing.files;
        let columns = file::row_columns(table);
        let mut by_batch: HashMap<u64, Vec<(u32, usize)>> = HashMap::new();
        for (i, v) in versions.iter().enumerate() {
            by_batch.entry(v.batch).or_default().push((v.row, i));
        }
        let mut out: Vec<Option<StoredRow>> = vec![None; versions.len()];
        for (batch, mut wanted) in by_batch {
            let entry = files
                .iter()
                .find(|f| f.batch == batch)
                .ok_or_else(|| ColdError::Corrupt(format!("cold file batch-{batch} is not in the manifest")))?;
            wanted.sort_unstable();
            let mut rows: Vec<u32> = wanted.iter().map(|w| w.0).collect();
            rows.dedup();
            let ranges = rows.iter().map(|&r| r as usize..r as usize + 1);
            let selection = RowSelection::from_consecutive_ranges(ranges, entry.rows as usize);
            let mut read = Vec::with_capacity(rows.len());
            let footer = self.footer(entry).await?;
            for b in file::read_selected(&listing.dir, &entry.file, footer, table, &columns, selection).await? {
                for r in 0..b.num_rows() {
                    read.push(file::stored_row(table, &b, r)?);
                }
            }
            if read.len() != rows.len() {
                return Err(ColdError::Corrupt(format!("cold file {} is shorter than its index", entry.file)).into());
            }
            for (row, i) in wanted {
                let at = rows.binary_search(&row).expect("selected");
                out[i] = Some(read[at].clone());
            }
        }
        Ok(out.into_iter().map(|r| r.expect("every version read")).collect())
    }
}

/// Deletes what the cold tier writes under a table's directory — per partition,
/// `batch-{n}.parquet`, `manifest.json` and their `.tmp` files — and the directories left
/// empty. Anything else found there is not the table's and stays.
pub(crate) async fn remove_table_files(table_dir: &Location) -> Result<()> {
    let is_cold_file = |name: &str| {
        let name = name.strip_suffix(".tmp").unwrap_or(name);
        name == manifest::MANIFEST_FILE || file::batch_of(name).is_some()
    };
    for scope in table_dir.list(true).await? {
        if scope != "shared" && scope.parse::<u64>().is_err() {
            continue;
        }
        let dir = table_dir.join(&scope)?;
        for name in dir.list(false).await? {
            if is_cold_file(&name) {
                dir.delete(&name).await?;
            }
        }
        dir.remove_dir_if_empty().await?;
    }
    table_dir.remove_dir_if_empty().await
}
