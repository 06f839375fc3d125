//! The IndexedDB replica store (browsers).
//!
//! One database per replica (one user on one server). Every record is `{k: key, v: value}`
//! with key path `k`; the value is JSON text, except for rows, which are binary records
//! ([`binary`], a `Uint8Array`: rows in their typed layout, so a load copies them instead of
//! parsing JSON):
//!
//! | store           | key                      | `v`                                         |
//! |-----------------|--------------------------|---------------------------------------------|
//! | `subscriptions` | subscription id          | [`SubscriptionRecord`] (JSON)               |
//! | `outbox`        | `[client_id, seq]`       | [`OutboxEntry`] (JSON)                      |
//! | `meta`          | meta key                 | the value (JSON)                            |
//! | `rows`          | `[subscription id, n]`   | a chunk of rows (binary)                    |
//! | `row_log`       | generated, ascending     | the row operations of one commit (binary)   |
//!
//! Schema version 2 kept rows as JSON text too (a chunk `[[pk, row], ...]`, a log record
//! `[{"put": [sub, pk, row]}, ...]`). Those records are still read, and the first compaction
//! after a load that met one rewrites every row in the binary form, so nothing is lost.
//!
//! Rows are not one record each: Chromium spends about as long on every `put` as on
//! serialising a thousand rows (measured: a few thousand single-row puts per second, over
//! 60,000 rows per second as chunks). So a commit appends its row operations as **one**
//! `row_log` record, and the rows are the `rows` chunks with the log replayed on top. Once
//! the log outgrows the chunks (and [`IndexedDbStore::set_compaction_threshold`]), a commit
//! folds it into fresh chunks.
//!
//! Values are JSON text or bytes rather than JavaScript objects: integers beyond 2^53 (BIGINT
//! columns) survive unchanged, and a string or a byte array is the cheapest thing for IndexedDB
//! to clone. A commit is
//! one read-write transaction over the stores it touches, so a batch of rows and its cursor
//! are durable together or not at all.

use futures::future::LocalBoxFuture;
use indexed_db_futures::KeyPath;
use indexed_db_futures::database::Database;
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::{TransactionDurability, TransactionMode, TransactionOptions};
use kalamdb_client_core::replica::{Replica, empty_rows_of};
use kalamdb_client_core::store::binary::{self, RecordWriter};
use kalamdb_client_core::store::{
    OutboxEntry, ReplicaStore, RowsBySubscription, Snapshot, StoreError, StoreOp, SubscriptionId, SubscriptionRecord,
    sort_outbox,
};
use litemap::LiteMap;
use serde::de::DeserializeSeed;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::cell::Cell;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{IdbKeyRange, IdbObjectStore, IdbRequest};

/// Version of the object-store layout and record formats; raising it runs the upgrade handler.
/// 3: rows in binary records (version 2's JSON rows are still read, and rewritten by the next
/// compaction). A client of an older version cannot open a database of a newer one: it fails
/// to open instead of misreading rows.
pub const SCHEMA_VERSION: u32 = 3;

const SUBSCRIPTIONS: &str = "subscriptions";
const OUTBOX: &str = "outbox";
const META: &str = "meta";
const ROWS: &str = "rows";
const ROW_LOG: &str = "row_log";
/// Indexed by [`Target`].
const STORES: [&str; 5] = [SUBSCRIPTIONS, OUTBOX, META, ROWS, ROW_LOG];

/// Rows per chunk written by a compaction.
const CHUNK_ROWS: usize = 2_000;
/// Bytes per row put in a log record, to estimate the rows of a log without chunks beside it
/// (five columns of short text, numbers and a timestamp take ~130).
const LOG_BYTES_PER_ROW: usize = 128;
/// The log is folded into chunks once it holds more than this many bytes and more
/// than the chunks do: a 100,000-row first sync stays in the log, so catching up never waits
/// for a compaction, and compactions cost at most about as much as the log that triggers them.
const COMPACT_MIN_BYTES: usize = 32 * 1024 * 1024;

/// A [`ReplicaStore`] in one IndexedDB database.
pub struct IndexedDbStore {
    db: Database,
    name: String,
    /// Bytes in `row_log` and in `rows`, tracked to decide when to compact.
    log_bytes: Cell<usize>,
    chunk_bytes: Cell<usize>,
    /// The last load met rows in version 2's JSON form: the next commit compacts, which
    /// rewrites them in the binary form.
    rewrite: Cell<bool>,
    compact_min_bytes: Cell<usize>,
    compactions: Cell<u64>,
    /// After a failed compaction, how many log bytes there must be before the next try.
    compact_retry_at: Cell<usize>,
    /// Closes this connection when another one needs to upgrade the schema (kept alive here).
    _on_version_change: Closure<dyn FnMut(JsValue)>,
}

impl IndexedDbStore {
    /// Opens (creating or upgrading if needed) the database `name`, e.g. `kalamdb:<user>@<server>`.
    pub async fn open(name: &str) -> Result<Self, StoreError> {
        let db = Database::open(name)
            .with_version(SCHEMA_VERSION)
            .with_on_upgrade_needed(|event, db| {
                let old = event.old_version() as u32;
                if old < 1 {
                    for store in [SUBSCRIPTIONS, OUTBOX, META] {
                        db.create_object_store(store).with_key_path(KeyPath::One("k")).build()?;
                    }
                }
                if old < 2 {
                    // Version 1 kept one record per row. Its rows are not carried over: the
                    // subscriptions go too, so they sync again from the start when declared;
                    // pending writes and meta stay.
                    if old == 1 {
                        db.delete_object_store(ROWS)?;
                        db.delete_object_store(SUBSCRIPTIONS)?;
                        db.create_object_store(SUBSCRIPTIONS).with_key_path(KeyPath::One("k")).build()?;
                    }
                    db.create_object_store(ROWS).with_key_path(KeyPath::One("k")).build()?;
                    db.create_object_store(ROW_LOG)
                        .with_key_path(KeyPath::One("k"))
                        .with_auto_increment(true)
                        .build()?;
                }
                Ok(())
            })
            .await
            .map_err(|e| StoreError(format!("cannot open IndexedDB database '{name}': {e}")))?;
        // A newer version of the app in another tab waits for every open connection to close
        // before it can upgrade; let it. Later commits here then fail and the client stops syncing.
        let sys = db.as_sys().clone();
        let on_version_change = Closure::<dyn FnMut(JsValue)>::new(move |_| sys.close());
        db.as_sys().set_onversionchange(Some(on_version_change.as_ref().unchecked_ref()));
        Ok(IndexedDbStore {
            db,
            name: name.to_string(),
            log_bytes: Cell::new(0),
            chunk_bytes: Cell::new(0),
            rewrite: Cell::new(false),
            compact_min_bytes: Cell::new(COMPACT_MIN_BYTES),
            compactions: Cell::new(0),
            compact_retry_at: Cell::new(0),
            _on_version_change: on_version_change,
        })
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Deletes the database `name` (every replica row, cursor and pending write in it).
    pub async fn delete(name: &str) -> Result<(), StoreError> {
        Database::delete_by_name(name)
            .map_err(|e| StoreError(format!("cannot delete IndexedDB database '{name}': {e}")))?
            .await
            .map_err(|e| StoreError(format!("cannot delete IndexedDB database '{name}': {e}")))
    }

    /// Folds the row log into chunks once it holds more than `bytes` (and more than the
    /// chunks). The default suits replicas of any size; tests lower it to compact often.
    pub fn set_compaction_threshold(&self, bytes: usize) {
        self.compact_min_bytes.set(bytes);
    }

    /// Compactions run by this store so far.
    pub fn compactions(&self) -> u64 {
        self.compactions.get()
    }

    /// Reads every store in one read-only transaction. The rows' records (the bulk of it) are
    /// read in ranges of keys, all requested at once, and each range is decoded as soon as it
    /// has arrived: IndexedDB reads the next ranges (in the browser's own process) while this
    /// one is typed into rows, instead of the whole replica arriving before the first row is
    /// made.
    async fn read(&self) -> Result<Contents, StoreError> {
        let tx = self.db.transaction(STORES).with_mode(TransactionMode::Readonly).build().map_err(idb_err)?;
        let store = |name: &str| -> Result<IdbObjectStore, StoreError> {
            Ok(tx.object_store(name).map_err(idb_err)?.as_sys().clone())
        };
        let (chunk_store, log_store) = (store(ROWS)?, store(ROW_LOG)?);
        // First the small stores whole, and the keys of the rows' stores.
        let subs = Read::new(store(SUBSCRIPTIONS)?.get_all())?;
        let outbox = Read::new(store(OUTBOX)?.get_all())?;
        let meta = Read::new(store(META)?.get_all())?;
        let chunk_keys = Read::new(chunk_store.get_all_keys())?;
        let log_keys = Read::new(log_store.get_all_keys())?;
        for read in [&subs, &outbox, &meta, &chunk_keys, &log_keys] {
            read.finished().await?;
        }
        let chunk_keys: js_sys::Array = chunk_keys.request.result().map_err(js_err)?.unchecked_into();
        let log_keys: js_sys::Array = log_keys.request.result().map_err(js_err)?.unchecked_into();
        // Requested here, where the transaction is still active (a request's success event
        // has just been handled); each request is awaited, not the transaction: Chromium
        // fires `complete` on a read-only transaction that was `commit()`ed before large
        // `getAll` results have arrived (seen with a 400,000-row replica). Dropping `tx` at the
        // end ends it.
        let chunks = in_ranges(&chunk_store, &chunk_keys)?;
        let log = in_ranges(&log_store, &log_keys)?;

        let mut c = Contents::default();
        for (_, v) in records(&subs.request)? {
            let rec: SubscriptionRecord = parse(&v)?;
            c.subscriptions.insert(rec.id.clone(), rec);
        }
        for (_, v) in records(&outbox.request)? {
            c.outbox.push(parse(&v)?);
        }
        for (k, v) in records(&meta.request)? {
            let key = k.as_string().ok_or_else(|| StoreError("IndexedDB: a meta key is not a string".into()))?;
            c.meta.push((key, parse(&v)?));
        }
        // Rows are typed as they are read, record by record: one record's bytes at a time are
        // in wasm memory (copied into one reused buffer), never the whole replica's.
        c.rows = empty_rows_of(&c.subscriptions.values().collect::<Vec<_>>());
        // Room for every row at once rather than growing step by step: the chunks' rows
        // (chunks are full but the last of each subscription) now, counted from their keys
        // `[subscription, n]`; the log's once its records are in (below).
        // (A list, not a map: a few subscriptions, and each map type costs the bundle KBs.)
        let mut chunk_counts: Vec<(SubscriptionId, usize)> = Vec::new();
        for k in chunk_keys.iter() {
            if let Some(sub) = js_sys::Reflect::get(&k, &0.into()).ok().and_then(|s| s.as_string()) {
                match chunk_counts.iter_mut().find(|(s, _)| s.0 == sub) {
                    Some((_, n)) => *n += 1,
                    None => chunk_counts.push((SubscriptionId(sub), 1)),
                }
            }
        }
        for (sub, n) in &chunk_counts {
            if let Some(rows) = c.rows.get_mut(sub) {
                rows.reserve(*n * CHUNK_ROWS);
            }
        }
        let mut buf = Vec::new();
        for read in &chunks {
            read.finished().await?;
            for_each_record(&read.request, &mut |k, v| {
                c.chunk_bytes += match RowRecord::of(v, &mut buf)? {
                    RowRecord::Binary(bytes) => binary::replay_chunk(bytes, &mut c.rows).map(|()| bytes.len())?,
                    RowRecord::Json(text) => {
                        c.legacy = true;
                        let sub = js_sys::Reflect::get(&k, &0.into()).ok().and_then(|s| s.as_string());
                        let sub = SubscriptionId(
                            sub.ok_or_else(|| StoreError("IndexedDB: a chunk key is malformed".into()))?,
                        );
                        c.rows.entry(sub).or_default().put_json_text(&text).map_err(unreadable)?;
                        text.len()
                    }
                };
                Ok(())
            })?;
        }
        // The log's puts, estimated from its bytes at the chunks' bytes per row (2 % over:
        // the room is exact, and one row beyond it would double the rows' array), go to the
        // subscription with the most chunks (or the only one). Its records have arrived by
        // now, as a rule: reading is faster than typing the chunks' rows.
        let mut log_bytes = 0;
        for read in &log {
            read.finished().await?;
            for_each_record(&read.request, &mut |_, v| {
                log_bytes += v.dyn_ref::<js_sys::Uint8Array>().map_or(0, |b| b.length() as usize);
                Ok(())
            })?;
        }
        let chunk_rows = chunk_counts.iter().map(|(_, n)| n).sum::<usize>() * CHUNK_ROWS;
        let log_rows = match c.chunk_bytes {
            0 => log_bytes / LOG_BYTES_PER_ROW,
            _ => (log_bytes as f64 * chunk_rows as f64 / c.chunk_bytes as f64 * 1.02) as usize,
        };
        let largest = chunk_counts.iter().max_by_key(|(_, n)| *n).map(|(sub, _)| sub.clone());
        let largest = largest.or_else(|| (c.rows.len() == 1).then(|| c.rows.keys().next().cloned()).flatten());
        if let Some(rows) = largest.and_then(|sub| c.rows.get_mut(&sub)) {
            rows.reserve(log_rows);
        }
        // The chunks' rows were added without their keys: indexed now, all at once (after the
        // room above, so that the key index is made at its final size).
        for (_, rows) in c.rows.iter_mut() {
            rows.index_appended();
        }
        for read in &log {
            for_each_record(&read.request, &mut |k, v| {
                c.last_log_key = k.as_f64();
                c.log_bytes += match RowRecord::of(v, &mut buf)? {
                    RowRecord::Binary(bytes) => binary::replay(bytes, &mut c.rows).map(|()| bytes.len())?,
                    RowRecord::Json(text) => {
                        c.legacy = true;
                        let mut de = serde_json::Deserializer::from_str(&text);
                        legacy_log::Replay(&mut c.rows)
                            .deserialize(&mut de)
                            .and_then(|()| de.end())
                            .map_err(unreadable)?;
                        text.len()
                    }
                };
                Ok(())
            })?;
        }
        drop(tx);
        Ok(c)
    }

    async fn load_all(&self) -> Result<Snapshot, StoreError> {
        let c = self.read().await?;
        self.log_bytes.set(c.log_bytes);
        self.chunk_bytes.set(c.chunk_bytes);
        // Only the leading tab writes rows (see `compact`): the rewrite waits for its next commit.
        self.rewrite.set(c.legacy);
        let mut outbox = c.outbox;
        sort_outbox(&mut outbox);
        let mut meta = c.meta;
        // IndexedDB orders strings by UTF-16 code unit, Rust by code point: sort like MemoryStore.
        meta.sort_by(|a, b| a.0.cmp(&b.0));
        let mut rows = c.rows;
        rows.retain(|_, rows| !rows.is_empty());
        Ok(Snapshot { subscriptions: c.subscriptions.into_iter().map(|(_, rec)| rec).collect(), rows, outbox, meta })
    }

    /// Commits the operations `plan` was made of.
    async fn commit_plan(&self, plan: Result<Option<Plan>, StoreError>) -> Result<(), StoreError> {
        let Some(plan) = plan? else { return Ok(()) };
        // Pending local writes are the one thing the server cannot give back: flush them to
        // disk before reporting success. Server data may use relaxed durability — after a
        // power loss the replica is merely an earlier, still consistent state that resumes
        // from its (equally earlier) cursors.
        let durability =
            if plan.has_outbox_put { TransactionDurability::Strict } else { TransactionDurability::Relaxed };
        let tx = self.write_transaction(&plan.used, durability)?;
        let mut stores: [Option<IdbObjectStore>; 5] = Default::default();
        for (i, name) in STORES.iter().enumerate() {
            if plan.used[i] {
                stores[i] = Some(tx.object_store(name).map_err(idb_err)?.as_sys().clone());
            }
        }
        let store = |t: Target| stores[t as usize].as_ref().expect("the store of every request is open");
        // Requests run in the order they are issued. Any failure — thrown here or reported
        // later — aborts the transaction (dropping `tx` on an early return aborts it too).
        if let Some(log) = &plan.row_log {
            let record = js_sys::Object::new();
            js_sys::Reflect::set(&record, &"v".into(), &js_sys::Uint8Array::from(&log[..])).map_err(js_err)?;
            store(Target::RowLog).put(&record).map_err(js_err)?;
        }
        let items: js_sys::Array = js_sys::JSON::parse(&plan.json).map_err(js_err)?.unchecked_into();
        for (i, (target, action)) in plan.steps.iter().enumerate() {
            let item = items.get(i as u32);
            match action {
                Action::Put => store(*target).put(&item),
                Action::Delete => store(*target).delete(&item),
            }
            .map_err(js_err)?;
        }
        tx.commit().await.map_err(idb_err)?;
        if let Some(log) = &plan.row_log {
            self.log_bytes.set(self.log_bytes.get() + log.len());
        }
        let threshold = self.compact_min_bytes.get().max(self.chunk_bytes.get());
        let log_bytes = self.log_bytes.get();
        if compaction_due(self.rewrite.get(), log_bytes, threshold, self.compact_retry_at.get()) {
            // The commit is durable whatever happens here; a failed compaction only leaves a
            // longer log (or rows in the old form, still read). It reads and rewrites the whole
            // replica, too much to repeat after every commit while it keeps failing (a full
            // quota, say): it is tried again once the log has grown by another threshold.
            match self.compact().await {
                Ok(()) => self.compact_retry_at.set(0),
                Err(e) => {
                    web_sys::console::warn_1(&format!("kalamdb: IndexedDB compaction failed: {e}").into());
                    self.compact_retry_at.set(log_bytes.saturating_add(threshold));
                }
            }
        }
        Ok(())
    }

    fn write_transaction(&self, used: &[bool; 5], durability: TransactionDurability) -> Result<Tx<'_>, StoreError> {
        let names: Vec<&str> = STORES.iter().zip(used).filter(|(_, u)| **u).map(|(n, _)| *n).collect();
        let mut options = TransactionOptions::new();
        options.set_durability(durability);
        self.db.transaction(names).with_mode(TransactionMode::Readwrite).with_options(options).build().map_err(idb_err)
    }

    /// Rewrites the rows as chunks and drops the log records they include. Only the tab that
    /// leads sync writes rows, so no other compaction runs at the same time; commits after
    /// the read append log records beyond `last_log_key`, which stay.
    async fn compact(&self) -> Result<(), StoreError> {
        let c = self.read().await?;
        let Some(last_log_key) = c.last_log_key else { return Ok(()) };
        let tx = self.write_transaction(&[false, false, false, true, true], TransactionDurability::Relaxed)?;
        let chunks = tx.object_store(ROWS).map_err(idb_err)?.as_sys().clone();
        let log = tx.object_store(ROW_LOG).map_err(idb_err)?.as_sys().clone();
        chunks.clear().map_err(js_err)?;
        let mut chunk_bytes = 0;
        for (sub, rows) in &c.rows {
            // One chunk's record at a time in wasm memory (the whole replica's would grow the
            // wasm memory for good).
            let mut keys = rows.keys().peekable();
            for n in 0u32.. {
                if keys.peek().is_none() {
                    break;
                }
                let mut chunk = RecordWriter::new();
                chunk.put_all(sub, rows, keys.by_ref().take(CHUNK_ROWS))?;
                let bytes = chunk.finish();
                chunk_bytes += bytes.len();
                let record = js_sys::Object::new();
                let key = js_sys::Array::of2(&JsValue::from_str(&sub.0), &JsValue::from(n));
                js_sys::Reflect::set(&record, &"k".into(), &key).map_err(js_err)?;
                js_sys::Reflect::set(&record, &"v".into(), &js_sys::Uint8Array::from(&bytes[..])).map_err(js_err)?;
                chunks.put(&record).map_err(js_err)?;
            }
        }
        let included = IdbKeyRange::upper_bound(&JsValue::from(last_log_key)).map_err(js_err)?;
        log.delete(&included).map_err(js_err)?;
        tx.commit().await.map_err(idb_err)?;
        self.rewrite.set(false);
        self.chunk_bytes.set(chunk_bytes);
        self.log_bytes.set(self.log_bytes.get().saturating_sub(c.log_bytes));
        self.compactions.set(self.compactions.get() + 1);
        Ok(())
    }
}

/// Whether a commit that leaves `log_bytes` in the log compacts: when the rows are in the old
/// form (`rewrite`) or the log has outgrown `threshold`, unless a failed compaction asked to
/// wait until the log reaches `retry_at`.
pub fn compaction_due(rewrite: bool, log_bytes: usize, threshold: usize, retry_at: usize) -> bool {
    (rewrite || log_bytes > threshold) && log_bytes >= retry_at
}

type Tx<'a> = indexed_db_futures::transaction::Transaction<'a>;

impl Drop for IndexedDbStore {
    /// Closes the connection now rather than at garbage collection, so that deleting or
    /// upgrading the database elsewhere is not blocked by a store nobody uses.
    fn drop(&mut self) {
        self.db.as_sys().set_onversionchange(None);
        self.db.as_sys().close();
    }
}

impl ReplicaStore for IndexedDbStore {
    fn load(&self) -> LocalBoxFuture<'_, Result<Snapshot, StoreError>> {
        Box::pin(self.load_all())
    }

    /// Rows go as JSON in the log record: without the replica that applied them, this store
    /// does not type them (a load does).
    fn commit(&self, ops: Vec<StoreOp>) -> LocalBoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.commit_plan(Plan::new(&ops, None)))
    }

    /// Rows go typed in the log record, taken from `replica`, so a load copies them.
    fn commit_applied(&self, ops: Vec<StoreOp>, replica: &Replica) -> LocalBoxFuture<'_, Result<(), StoreError>> {
        // Planned now: the future does not borrow the replica.
        Box::pin(self.commit_plan(Plan::new(&ops, Some(replica))))
    }
}

/// Everything in the database, rows with the log replayed.
#[derive(Default)]
struct Contents {
    subscriptions: LiteMap<SubscriptionId, SubscriptionRecord>,
    rows: RowsBySubscription,
    outbox: Vec<OutboxEntry>,
    meta: Vec<(String, Value)>,
    chunk_bytes: usize,
    log_bytes: usize,
    last_log_key: Option<f64>,
    /// Some rows were in version 2's JSON form.
    legacy: bool,
}

/// The value of a `rows` or `row_log` record.
enum RowRecord<'a> {
    /// A [`binary`] record (schema version 3), in the reused buffer.
    Binary(&'a [u8]),
    /// JSON text (schema version 2).
    Json(String),
}

impl<'a> RowRecord<'a> {
    /// Reads `v`, copying bytes into `buf`.
    fn of(v: JsValue, buf: &'a mut Vec<u8>) -> Result<Self, StoreError> {
        if let Some(text) = v.as_string() {
            return Ok(RowRecord::Json(text));
        }
        let bytes = v
            .dyn_into::<js_sys::Uint8Array>()
            .map_err(|_| StoreError("IndexedDB: a row record is neither bytes nor JSON text".into()))?;
        // The buffer only grows: zeroing it afresh for every record (~130 MB for a
        // 1,000,000-row replica) cost ~55 ms of a start-up, and every byte is overwritten.
        let n = bytes.length() as usize;
        if buf.len() < n {
            buf.resize(n, 0);
        }
        let record = &mut buf[..n];
        bytes.copy_to(record);
        Ok(RowRecord::Binary(record))
    }
}

/// Replays a log record of schema version 2 onto the rows as it is read: a list of
/// `{"put": [sub, pk, row]}`, `{"delete": [sub, pk]}` and `{"clear": sub}`. Each put row is
/// typed straight from the JSON text, without a map of it (see [`SubscriptionRows::put_seed`]).
mod legacy_log {
    use super::{RowsBySubscription, SubscriptionId};
    use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    type Rows = RowsBySubscription;

    /// The record: a list of operations.
    pub(super) struct Replay<'a>(pub(super) &'a mut Rows);

    impl<'de> DeserializeSeed<'de> for Replay<'_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for Replay<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of row operations")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Op(&mut *self.0))?.is_some() {}
            Ok(())
        }
    }

    /// One operation: an object with one member named by its kind.
    struct Op<'a>(&'a mut Rows);

    impl<'de> DeserializeSeed<'de> for Op<'_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Op<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a row operation")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let rows = self.0;
            while let Some(kind) = map.next_key::<String>()? {
                match kind.as_str() {
                    "put" => map.next_value_seed(Put(&mut *rows))?,
                    "delete" => {
                        let (sub, pk): (SubscriptionId, String) = map.next_value()?;
                        if let Some(r) = rows.get_mut(&sub) {
                            r.remove(&pk);
                        }
                    }
                    "clear" => {
                        let sub: SubscriptionId = map.next_value()?;
                        if let Some(r) = rows.get_mut(&sub) {
                            r.clear();
                        }
                    }
                    other => return Err(de::Error::unknown_variant(other, &["put", "delete", "clear"])),
                }
            }
            Ok(())
        }
    }

    /// `[sub, pk, row]`.
    struct Put<'a>(&'a mut Rows);

    impl<'de> DeserializeSeed<'de> for Put<'_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for Put<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("[subscription, key, row]")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let sub: SubscriptionId = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
            let pk: String =
                seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &"[subscription, key, row]"))?;
            let rows = self.0.entry(sub).or_default();
            seq.next_element_seed(rows.put_seed(pk))?
                .ok_or_else(|| de::Error::invalid_length(2, &"[subscription, key, row]"))
        }
    }
}

/// Object store of a request, an index into [`STORES`].
#[derive(Clone, Copy)]
enum Target {
    Subscriptions = 0,
    Outbox = 1,
    Meta = 2,
    RowLog = 4,
}

#[derive(Clone, Copy)]
enum Action {
    /// The item is a `{k, v}` record.
    Put,
    /// The item is a key.
    Delete,
}

/// A commit translated into IndexedDB requests: the row operations as one binary log record,
/// the rest as a JSON array with one item per step.
struct Plan {
    steps: Vec<(Target, Action)>,
    json: String,
    row_log: Option<Vec<u8>>,
    used: [bool; 5],
    has_outbox_put: bool,
}

/// A record as written: the value is JSON text of its own.
#[derive(Serialize)]
struct RecordOut<'a, K> {
    k: K,
    v: &'a str,
}

impl Plan {
    /// The requests of `ops` (`None`: nothing to do). Put rows are taken typed from `replica`,
    /// the replica that applied `ops`, where it has them (see [`RecordWriter::put`]).
    fn new(ops: &[StoreOp], replica: Option<&Replica>) -> Result<Option<Self>, StoreError> {
        if ops.is_empty() {
            return Ok(None);
        }
        let mut plan =
            Plan { steps: Vec::new(), json: String::new(), row_log: None, used: [false; 5], has_outbox_put: false };
        let mut items: Vec<u8> = vec![b'['];
        let mut log = RecordWriter::new();
        for op in ops {
            match op {
                StoreOp::PutSubscription(rec) => plan.put(&mut items, Target::Subscriptions, &rec.id, rec)?,
                StoreOp::DeleteSubscription(id) => {
                    plan.push(&mut items, Target::Subscriptions, Action::Delete, id)?;
                    log.clear(id);
                }
                StoreOp::PutRow { sub, pk, row } => {
                    let rows = replica.and_then(|r| r.subscription(sub)).map(|d| &d.rows);
                    log.put(sub, pk, row, rows)?;
                }
                StoreOp::DeleteRow { sub, pk } => log.delete(sub, pk),
                StoreOp::ClearRows(sub) => log.clear(sub),
                StoreOp::PutOutbox(entry) => {
                    plan.has_outbox_put = true;
                    plan.put(&mut items, Target::Outbox, &(&entry.client_id, entry.seq), entry)?;
                }
                StoreOp::DeleteOutbox { client_id, seq } => {
                    plan.push(&mut items, Target::Outbox, Action::Delete, &(client_id, seq))?;
                }
                StoreOp::PutMeta { key, value } => plan.put(&mut items, Target::Meta, key, value)?,
            }
        }
        items.push(b']');
        plan.json = String::from_utf8(items).map_err(|e| StoreError(format!("cannot serialise for IndexedDB: {e}")))?;
        if !log.is_empty() {
            plan.row_log = Some(log.finish());
            plan.used[Target::RowLog as usize] = true;
        }
        Ok(Some(plan))
    }

    fn push(
        &mut self,
        items: &mut Vec<u8>,
        target: Target,
        action: Action,
        item: &impl Serialize,
    ) -> Result<(), StoreError> {
        if !self.steps.is_empty() {
            items.push(b',');
        }
        serde_json::to_writer(&mut *items, item).map_err(json_err)?;
        self.used[target as usize] = true;
        self.steps.push((target, action));
        Ok(())
    }

    fn put(
        &mut self,
        items: &mut Vec<u8>,
        target: Target,
        key: &impl Serialize,
        value: &impl Serialize,
    ) -> Result<(), StoreError> {
        let text = serde_json::to_string(value).map_err(json_err)?;
        self.push(items, target, Action::Put, &RecordOut { k: key, v: &text })
    }
}

/// Records of a store's rows read per request (chunks are ~250 KB for this table's rows):
/// small enough that the first range arrives soon, large enough that requests are few.
const RECORDS_PER_READ: u32 = 16;

/// A request and a promise of its end.
struct Read {
    request: IdbRequest,
    done: js_sys::Promise,
}

impl Read {
    fn new(request: Result<IdbRequest, JsValue>) -> Result<Read, StoreError> {
        let request = request.map_err(js_err)?;
        Ok(Read { done: finished(&request), request })
    }

    /// Waits until the request has its result; its error if it failed.
    async fn finished(&self) -> Result<(), StoreError> {
        if wasm_bindgen_futures::JsFuture::from(self.done.clone()).await.is_err() {
            let error = self.request.error().ok().flatten().map_or(JsValue::UNDEFINED, JsValue::from);
            return Err(js_err(error));
        }
        Ok(())
    }
}

/// Requests the records of `store` under `keys` (all of its keys, in order), in ranges of
/// [`RECORDS_PER_READ`] keys, all at once.
fn in_ranges(store: &IdbObjectStore, keys: &js_sys::Array) -> Result<Vec<Read>, StoreError> {
    let mut reads = Vec::new();
    let mut first = 0;
    while first < keys.length() {
        let last = (first + RECORDS_PER_READ).min(keys.length()) - 1;
        let range = IdbKeyRange::bound(&keys.get(first), &keys.get(last)).map_err(js_err)?;
        reads.push(Read::new(store.get_all_with_key(&range))?);
        first = last + 1;
    }
    Ok(reads)
}

/// Resolves when `request` succeeds; rejects (with the error event) when it fails.
fn finished(request: &IdbRequest) -> js_sys::Promise {
    js_sys::Promise::new(&mut |resolve, reject| {
        request.set_onsuccess(Some(&resolve));
        request.set_onerror(Some(&reject));
    })
}

/// The `(k, v)` of every record a finished `getAll()` returned, `v` JSON text.
fn records(request: &IdbRequest) -> Result<Vec<(JsValue, String)>, StoreError> {
    let mut out = Vec::new();
    for_each_record(request, &mut |k, v| {
        out.push((k, v.as_string().ok_or_else(|| StoreError("IndexedDB: a record has no JSON text".into()))?));
        Ok(())
    })?;
    Ok(out)
}

/// Calls `f` with the `(k, v)` of each record a finished `getAll()` returned, so that one
/// record at a time is copied into wasm memory.
fn for_each_record(
    request: &IdbRequest,
    f: &mut dyn FnMut(JsValue, JsValue) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let all: js_sys::Array = request.result().map_err(js_err)?.unchecked_into();
    let (k, v) = (JsValue::from_str("k"), JsValue::from_str("v"));
    for record in all.iter() {
        let key = js_sys::Reflect::get(&record, &k).map_err(js_err)?;
        f(key, js_sys::Reflect::get(&record, &v).map_err(js_err)?)?;
    }
    Ok(())
}

fn parse<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(unreadable)
}

fn unreadable(e: serde_json::Error) -> StoreError {
    StoreError(format!("unreadable IndexedDB value: {e}"))
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError(format!("cannot serialise for IndexedDB: {e}"))
}

fn idb_err(e: indexed_db_futures::error::Error) -> StoreError {
    StoreError(format!("IndexedDB: {e}"))
}

/// `name: message` of a thrown DOMException or Error.
fn js_err(e: JsValue) -> StoreError {
    if let Some(d) = e.dyn_ref::<web_sys::DomException>() {
        return StoreError(format!("IndexedDB: {}: {}", d.name(), d.message()));
    }
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        return StoreError(format!("IndexedDB: {}", String::from(err.message())));
    }
    StoreError(format!("IndexedDB: {e:?}"))
}
