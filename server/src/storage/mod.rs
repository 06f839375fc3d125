//! The hot tier: one RocksDB database. Every column family and key prefix, and the module
//! that owns (writes) it:
//!
//! | column family | key | value | owner |
//! |---|---|---|---|
//! | `catalog` | `ns/{name}` | namespace (JSON) | [`crate::catalog`] |
//! | `catalog` | `table/{id:016x}` | table definition | [`crate::catalog`] |
//! | `catalog` | `schema/{id:016x}/{version:08}` | schema version | [`crate::catalog`] |
//! | `catalog` | `storage/{id}` | storage definition | [`crate::catalog`] |
//! | `catalog` | `user/{id:016x}` | user | [`crate::catalog`] |
//! | `catalog` | `seq/table`, `seq/user` | next id | [`crate::catalog`] |
//! | `catalog` | `job/{n:016x}`, `seq/job` | job record, next job number | [`crate::jobs`] |
//! | `catalog` | `flush/…`, `compact/…` (`{table:016x}/{partition:016x}`) | pending flush or compaction | [`crate::flush`], [`crate::cleanup`] (recovered by [`crate::recovery`]) |
//! | `catalog` | `manifest/{table:016x}/{partition:016x}` | cluster mode: the manifest of a partition on a shared storage, applied from the log | [`crate::cold`] (written by the state machine) |
//! | `catalog` | `seq/clock`, `seq/clock/{group:04x}` | last `_updated` handed out in data group 0, in another data group | [`crate::tables::commit`] |
//! | `catalog` | `raft/applied`, `raft/membership` | cluster mode: the last log id applied (written with the rows it applied) and the membership | [`crate::cluster`] (state machine) |
//! | `rows` | `table_id \| partition \| pk` ([`keys`]) | row ([`row_codec`]) | [`crate::tables::commit`]; flush removes |
//! | `row_index` | `table_id \| partition \| _updated` | pk (the change index catch-up reads) | [`crate::tables::commit`]; flush removes |
//! | `mutations` | `(data group, user, client_id, seq)` | outcome of a client `mutate` message, written with its rows | [`crate::tables::mutation_outcomes`] |
//!
//! Which Raft group (or the node alone) owns each key — what a snapshot carries and an
//! install replaces — is [`ownership`]'s to say.
//!
//! In cluster mode the Raft log itself is in another RocksDB instance (`{data_dir}/raft`,
//! crate `kalamdb-raft`), apart from the data it is applied to.
//!
//! One user's partition of a USER table is one contiguous key range in `rows` and in
//! `row_index`. Every commit goes through [`crate::tables::commit`], which keeps `_updated`
//! order equal to commit order. Flushes move rows from here to Parquet files
//! ([`crate::cold`]); [`hot_stats`] counts what each partition still holds here. All column
//! families share one block cache ([`BLOCK_CACHE_BYTES`]).

pub(crate) mod hot_stats;
pub(crate) mod keys;
pub(crate) mod ownership;
pub(crate) mod row_codec;

use crate::error::{KalamError, Result};
use rocksdb::{
    BoundColumnFamily, ColumnFamilyDescriptor, DBWithThreadMode, MultiThreaded, Options, WriteBatch, WriteOptions,
};
use std::path::Path;
use std::sync::Arc;

pub(crate) type Db = DBWithThreadMode<MultiThreaded>;
/// A consistent read view of the database.
pub(crate) type Snapshot<'a> = rocksdb::SnapshotWithThreadMode<'a, Db>;

self_cell::self_cell!(
    /// A snapshot that holds its store, so that it can outlive the caller (a scan streaming
    /// to DataFusion reads its partition's hot rows from one snapshot, a chunk at a time).
    pub struct OwnedSnapshot {
        owner: Arc<Store>,
        #[covariant]
        dependent: Snapshot,
    }
);

impl OwnedSnapshot {
    pub(crate) fn of(store: &Arc<Store>) -> OwnedSnapshot {
        OwnedSnapshot::new(store.clone(), |s| s.db().snapshot())
    }
}

pub(crate) const CF_CATALOG: &str = "catalog";
pub(crate) const CF_ROWS: &str = "rows";
pub(crate) const CF_ROW_INDEX: &str = "row_index";
pub(crate) const CF_MUTATIONS: &str = "mutations";
/// Every column family of the database.
const COLUMN_FAMILIES: [&str; 4] = [CF_CATALOG, CF_ROWS, CF_ROW_INDEX, CF_MUTATIONS];

/// A RocksDB key and its value.
pub(crate) type KeyValue = (Box<[u8]>, Box<[u8]>);

/// Handle to the RocksDB database.
pub(crate) struct Store {
    db: Db,
    write_opts: WriteOptions,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// Size of the block cache all column families share.
pub(crate) const BLOCK_CACHE_BYTES: usize = 32 << 20;

impl Store {
    /// Opens (or creates) the database under `dir`. `sync_writes` fsyncs the WAL per commit.
    pub(crate) fn open(dir: &Path, sync_writes: bool) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(KalamError::io("create", dir))?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        opts.set_keep_log_file_num(5);
        // One block cache for every column family (each would otherwise get its own 32 MiB
        // one): the server's RocksDB read cache is bounded by this, whatever the data size.
        let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let mut table_opts = rocksdb::BlockBasedOptions::default();
        table_opts.set_block_cache(&cache);
        let cfs = COLUMN_FAMILIES.map(|name| {
            let mut cf_opts = Options::default();
            cf_opts.set_block_based_table_factory(&table_opts);
            cf_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
            ColumnFamilyDescriptor::new(name, cf_opts)
        });
        let db = Db::open_cf_descriptors(&opts, dir, cfs)?;
        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(sync_writes);
        Ok(Store { db, write_opts })
    }

    pub(crate) fn cf(&self, name: &str) -> Arc<BoundColumnFamily<'_>> {
        self.db.cf_handle(name).expect("column families are created on open")
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// Writes every column family's memtable to disk (blocking).
    pub(crate) fn flush_memtables(&self) -> Result<()> {
        for name in COLUMN_FAMILIES {
            self.db.flush_cf(&self.cf(name))?;
        }
        Ok(())
    }

    pub(crate) fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(&self.cf(cf), key)?)
    }

    /// Applies a batch atomically, with the configured durability.
    pub(crate) fn write(&self, batch: WriteBatch) -> Result<()> {
        Ok(self.db.write_opt(batch, &self.write_opts)?)
    }

    /// Compacts the keys in `[from, to)` of a column family, dropping deleted entries: a
    /// range a flush emptied would otherwise cost every later scan a walk over its
    /// tombstones.
    pub(crate) fn compact_range(&self, cf: &str, from: &[u8], to: &[u8]) {
        self.db.compact_range_cf(&self.cf(cf), Some(from), Some(to));
    }

    /// All `(key, value)` pairs whose key starts with `prefix`, in key order.
    pub(crate) fn scan_prefix(&self, cf: &str, prefix: &[u8]) -> Result<Vec<KeyValue>> {
        let mut out = Vec::new();
        self.for_each_prefix(cf, prefix, |k, v| {
            out.push((k.into(), v.into()));
            true
        })?;
        Ok(out)
    }

    /// Calls `f` for every pair under `prefix` in key order until it returns `false`.
    pub(crate) fn for_each_prefix(
        &self,
        cf: &str,
        prefix: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        let cf = self.cf(cf);
        let mut it = self.db.raw_iterator_cf(&cf);
        it.seek(prefix);
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else { break };
            if !k.starts_with(prefix) || !f(k, v) {
                break;
            }
            it.next();
        }
        it.status()?;
        Ok(())
    }
}
