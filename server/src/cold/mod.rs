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
//! [`crate::flush`]), so readers can work from a copy of the file list taken at any time.

pub mod file;
pub mod key_index;
pub mod location;
pub mod manifest;
pub mod merge;
pub mod stats;

use crate::catalog::{StorageDef, TableDef};
use crate::error::{KalamError, Result};
use crate::ids::{Partition, StorageId, TableId};
use crate::storage::row_codec::StoredRow;
use datafusion::parquet::arrow::arrow_reader::RowSelection;
use key_index::{ColdVersion, KeyIndex, PkKey};
use location::Location;
use manifest::{FileEntry, Manifest};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Keys kept in all loaded key indexes together; past this, indexes of other partitions
/// are dropped (and rebuilt from their files when next needed).
const KEY_INDEX_BUDGET: usize = 4_000_000;

/// The cold tier of all tables.
pub struct ColdStore {
    local: PathBuf,
    /// Roots of the storages made by CREATE STORAGE.
    storages: RwLock<HashMap<StorageId, Location>>,
    partitions: Mutex<HashMap<(TableId, Partition), Arc<ColdPartition>>>,
}

impl std::fmt::Debug for ColdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ColdStore({})", self.local.display())
    }
}

/// Directory name of a partition's scope.
pub fn scope_name(partition: Partition) -> String {
    match partition {
        Partition::Shared => "shared".into(),
        Partition::User(u) => u.to_string(),
    }
}

impl ColdStore {
    /// The cold tier, with the `local` storage at `local` (`{data_dir}/storage`).
    pub fn new(local: PathBuf) -> ColdStore {
        ColdStore { local, storages: RwLock::new(HashMap::new()), partitions: Mutex::new(HashMap::new()) }
    }

    /// Makes a storage usable by tables (at start for each recorded one, and on CREATE).
    pub fn add_storage(&self, def: &StorageDef) -> Result<()> {
        let root = Location::open(&def.location)?;
        self.storages.write().insert(def.id.clone(), root);
        Ok(())
    }

    pub fn remove_storage(&self, id: &StorageId) {
        self.storages.write().remove(id);
    }

    /// Root of a storage.
    pub fn storage_root(&self, id: &StorageId) -> Result<Location> {
        if id.is_local() {
            return Ok(Location::Dir(self.local.clone()));
        }
        self.storages.read().get(id).cloned().ok_or_else(|| KalamError::internal(format!("storage '{id}' is not open")))
    }

    /// Directory of a table's files.
    pub fn table_dir(&self, table: &TableDef) -> Result<Location> {
        Ok(self.storage_root(&table.options.storage)?.join(table.namespace.as_str()).join(&table.name))
    }

    /// Every open partition of `table` (any partition a flush writes to is open while
    /// it does).
    pub fn open_partitions(&self, table: TableId) -> Vec<(Partition, Arc<ColdPartition>)> {
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
    pub fn partition(&self, table: &TableDef, partition: Partition) -> Result<Arc<ColdPartition>> {
        if let Some(p) = self.partitions.lock().get(&(table.id, partition)) {
            return Ok(p.clone());
        }
        let dir = self.table_dir(table)?.join(&scope_name(partition));
        let manifest = match Manifest::load(&dir)? {
            Some(m) if m.table_id == table.id => m,
            // Left by a dropped table of the same name: not this table's files.
            _ => Manifest::empty(table.id),
        };
        let p = Arc::new(ColdPartition {
            dir,
            state: RwLock::new(PartitionState { manifest, index: None }),
            flush_lock: Mutex::new(()),
        });
        Ok(self.partitions.lock().entry((table.id, partition)).or_insert(p).clone())
    }

    /// Partitions of `table` that have a cold tier on disk.
    pub fn partitions_on_disk(&self, table: &TableDef) -> Result<Vec<Partition>> {
        let mut out = vec![];
        for name in self.table_dir(table)?.list(true)? {
            if name == "shared" {
                out.push(Partition::Shared);
            } else if let Ok(id) = name.parse::<u64>() {
                out.push(Partition::User(crate::ids::UserId(id)));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Forgets a dropped table and deletes its files.
    pub fn drop_table(&self, table: &TableDef) -> Result<()> {
        self.partitions.lock().retain(|(t, _), _| *t != table.id);
        self.table_dir(table)?.remove_all()
    }

    /// Drops loaded key indexes (except `keep`'s) when together they exceed the budget.
    fn enforce_index_budget(&self, keep: &ColdPartition) {
        let partitions: Vec<Arc<ColdPartition>> = self.partitions.lock().values().cloned().collect();
        let total: usize = partitions.iter().map(|p| p.indexed_keys()).sum();
        if total <= KEY_INDEX_BUDGET {
            return;
        }
        for p in partitions {
            if !std::ptr::eq(&*p, keep) {
                p.state.write().index = None;
            }
        }
    }

    /// The newest cold version of `pk` in one partition, as a whole row.
    pub fn get(&self, table: &TableDef, partition: Partition, pk: &crate::values::Value) -> Result<Option<StoredRow>> {
        let p = self.partition(table, partition)?;
        if p.is_empty() {
            return Ok(None);
        }
        let Some(key) = PkKey::of(pk) else { return Ok(None) };
        let Some(version) = p.with_index(self, table, |index| index.get(&key).copied())? else { return Ok(None) };
        Ok(p.read_versions(table, &[version])?.pop())
    }
}

/// A partition's files at one moment: paired with a RocksDB snapshot taken at the same
/// time (under the commit lock), the two tiers as one consistent state.
#[derive(Debug, Clone, Default)]
pub struct ColdSnapshot {
    pub dir: Location,
    pub files: Vec<FileEntry>,
}

struct PartitionState {
    manifest: Manifest,
    index: Option<KeyIndex>,
}

/// One partition's cold tier.
pub struct ColdPartition {
    pub dir: Location,
    state: RwLock<PartitionState>,
    /// Held by a flush of this partition from reading the hot rows to deleting them.
    pub flush_lock: Mutex<()>,
}

impl ColdPartition {
    pub fn is_empty(&self) -> bool {
        self.state.read().manifest.files.is_empty()
    }

    pub fn snapshot(&self) -> ColdSnapshot {
        ColdSnapshot { dir: self.dir.clone(), files: self.files() }
    }

    /// The files as listed now.
    pub fn files(&self) -> Vec<FileEntry> {
        self.state.read().manifest.files.clone()
    }

    pub fn manifest(&self) -> Manifest {
        self.state.read().manifest.clone()
    }

    fn indexed_keys(&self) -> usize {
        self.state.read().index.as_ref().map_or(0, KeyIndex::len)
    }

    /// The files as listed now, and the listing's generation (the next batch number, which
    /// every flush advances).
    pub fn listing(&self) -> (Vec<FileEntry>, u64) {
        let state = self.state.read();
        (state.manifest.files.clone(), state.manifest.next_batch)
    }

    /// Runs `f` on the key index, building it first if needed.
    pub fn with_index<T>(&self, store: &ColdStore, table: &TableDef, f: impl FnOnce(&KeyIndex) -> T) -> Result<T> {
        self.ensure_index(store, table)?;
        let state = self.state.read();
        match &state.index {
            Some(index) => Ok(f(index)),
            // Evicted in between by another partition's build: answer from a fresh one.
            None => {
                let files = state.manifest.files.clone();
                drop(state);
                Ok(f(&KeyIndex::build(&self.dir, table, &files)?))
            }
        }
    }

    /// Like [`ColdPartition::with_index`], but only if no file was added since the listing
    /// of `generation` (`None` otherwise): the index then describes exactly the files a
    /// reader listed.
    pub fn with_index_at<T>(
        &self,
        store: &ColdStore,
        table: &TableDef,
        generation: u64,
        f: impl FnOnce(&KeyIndex) -> T,
    ) -> Result<Option<T>> {
        self.ensure_index(store, table)?;
        let state = self.state.read();
        if state.manifest.next_batch != generation {
            return Ok(None);
        }
        match &state.index {
            Some(index) => Ok(Some(f(index))),
            None => {
                let files = state.manifest.files.clone();
                drop(state);
                let index = KeyIndex::build(&self.dir, table, &files)?;
                Ok((self.state.read().manifest.next_batch == generation).then(|| f(&index)))
            }
        }
    }

    fn ensure_index(&self, store: &ColdStore, table: &TableDef) -> Result<()> {
        if self.state.read().index.is_some() {
            return Ok(());
        }
        // Built outside the lock; a flush that lands meanwhile changes `next_batch`, and the
        // build is retried rather than installing an index that misses its file.
        loop {
            let manifest = self.manifest();
            let built = KeyIndex::build(&self.dir, table, &manifest.files)?;
            let mut state = self.state.write();
            if state.manifest.next_batch == manifest.next_batch {
                state.index = Some(built);
                drop(state);
                store.enforce_index_budget(self);
                return Ok(());
            }
        }
    }

    /// Makes a newly written file (already listed in `manifest`, which is on disk) part of
    /// the tier, with the keys it holds.
    pub fn add_file(&self, manifest: Manifest, keys: Vec<(PkKey, ColdVersion)>) {
        let mut state = self.state.write();
        state.manifest = manifest;
        if let Some(index) = state.index.as_mut() {
            for (k, v) in keys {
                index.insert(k, v);
            }
        }
    }

    /// Whole rows of the given versions (in the given order).
    pub fn read_versions(&self, table: &TableDef, versions: &[ColdVersion]) -> Result<Vec<StoredRow>> {
        let files = self.files();
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
                .ok_or_else(|| KalamError::internal(format!("cold file batch-{batch} is not in the manifest")))?;
            wanted.sort_unstable();
            let mut rows: Vec<u32> = wanted.iter().map(|w| w.0).collect();
            rows.dedup();
            let ranges = rows.iter().map(|&r| r as usize..r as usize + 1);
            let selection = RowSelection::from_consecutive_ranges(ranges, entry.rows as usize);
            let mut read = Vec::with_capacity(rows.len());
            for b in file::read(&self.dir, &entry.file, table, &columns, Some(selection))? {
                for r in 0..b.num_rows() {
                    read.push(file::stored_row(table, &b, r)?);
                }
            }
            if read.len() != rows.len() {
                return Err(KalamError::internal(format!("cold file {} is shorter than its index", entry.file)));
            }
            for (row, i) in wanted {
                let at = rows.binary_search(&row).expect("selected");
                out[i] = Some(read[at].clone());
            }
        }
        Ok(out.into_iter().map(|r| r.expect("every version read")).collect())
    }
}
