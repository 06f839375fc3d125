//! Durable replica storage.
//!
//! A [`ReplicaStore`] persists what the sync engine needs to survive a reload: the declared
//! subscriptions with their cursors and schemas, each subscription's rows, the outbox of
//! local writes, and a few metadata values. The engine keeps the working copy in memory
//! ([`crate::replica::Replica`]); the store only has to load everything at start (rows typed
//! as the replica keeps them, see [`Snapshot`]) and apply a list of [`StoreOp`]s
//! **atomically**. A batch of rows and the cursor after it always
//! travel in one commit, so an interrupted first sync resumes exactly where it stopped.
//!
//! Stores: [`MemoryStore`] (native, Node, tests) and, in the browser, the IndexedDB store
//! of the `wasm` crate, which keeps rows in the [`binary`] record format.

pub mod binary;
mod memory;

pub use memory::MemoryStore;

use crate::protocol::ColumnInfo;
use crate::protocol::ws::{Cursor, MutationOp};
use crate::replica::{Replica, RowColumns, SubscriptionRows, TypedRow};
use futures::future::LocalBoxFuture;
use litemap::LiteMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One row as the server sends it and stores record it: column name → value in the server's
/// JSON encoding (`docs/http-api.md`). The replica keeps rows typed instead
/// ([`crate::replica::SubscriptionRows`]).
pub type Row = Map<String, Value>;

/// Client-chosen name of a subscription (what `sync()` declared), stable across restarts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubscriptionId(pub String);

impl std::fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A subscription as persisted: what to sync and how far it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    pub id: SubscriptionId,
    /// `SELECT ... FROM namespace.table [WHERE ...]`, sent to the server as is.
    pub sql: String,
    /// `namespace.table`, parsed from `sql`.
    pub table: String,
    /// Resume point: everything up to here is in the store. `None` before the first batch.
    pub cursor: Option<Cursor>,
    /// Columns as the server last described them (empty until the first `subscribed`).
    pub schema: Vec<ColumnInfo>,
    pub primary_key: Option<String>,
    /// The initial load finished at least once; afterwards only live changes and catch-ups follow.
    pub complete: bool,
    /// Rows received so far in the current initial load (progress of a first sync).
    pub rows_loaded: u64,
    /// Wall-clock time (ms since the Unix epoch) of the last batch or change applied.
    pub last_synced_ms: Option<f64>,
}

/// A local write waiting for the server's verdict, or, once the server applied it, for its
/// change to reach the replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub client_id: String,
    pub seq: u64,
    pub ops: Vec<MutationOp>,
    /// When it was written (ms since the Unix epoch); orders entries of several clients.
    pub created_ms: f64,
    /// Set once the server applied the write. The entry still overlays the synced rows
    /// until the change arrives, so the write never vanishes from local queries in between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<Confirmed>,
}

/// The server applied an outbox entry: its change is on the way to the subscriptions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confirmed {
    /// `_updated` of the last row the write changed.
    pub cursor: Cursor,
    /// The same for each table it wrote: a subscription of the table at or past it has the
    /// change.
    pub tables: BTreeMap<String, Cursor>,
    /// When the confirmation arrived (ms since the Unix epoch).
    pub at_ms: f64,
}

/// Primary-key value encoded as canonical JSON text, the key of a row within a subscription.
pub fn pk_key(pk: &Value) -> String {
    match pk {
        // The common key, made without the formatter: JSON writes a text without `"`, `\` or
        // control characters as it is, in quotes (every synced row's key is made here).
        Value::String(s) if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) => {
            let mut key = String::with_capacity(s.len() + 2);
            key.push('"');
            key.push_str(s);
            key.push('"');
            key
        }
        _ => pk.to_string(),
    }
}

/// The row of a [`StoreOp::PutRow`]: the server's JSON by column name, or the row typed
/// already.
///
/// The sync engine types a synced row as it reads the server's frame, when the row's values
/// line up with the columns the replica types its table to ([`OpRow::Typed`]). The replica
/// and a store in memory then keep that very row, and nothing builds a JSON map of it: on a
/// large first sync the maps (a key text per column, a tree per row) cost more than typing.
/// Either form serialises as the JSON map (tabs sharing a store send their ops so), and reads
/// back as [`OpRow::Json`].
#[derive(Debug, Clone)]
pub enum OpRow {
    /// Column name → value, in the server's JSON encoding: local writes, rows from another
    /// tab, rows rewritten after a schema change, rows that did not type.
    Json(Row),
    /// Values aligned to `columns`, the columns the replica types the table's rows to when the
    /// op was made (rows of tables with CRDT_TEXT columns stay JSON: their cells carry state).
    Typed { columns: RowColumns, row: TypedRow },
}

impl OpRow {
    /// The row as the server's JSON by column name (made, for a typed row).
    pub fn json(&self) -> Cow<'_, Row> {
        match self {
            OpRow::Json(row) => Cow::Borrowed(row),
            OpRow::Typed { columns, row } => {
                // Inserted one by one: collecting into a map costs the wasm bundle a sort.
                let mut json = Row::new();
                for (c, v) in columns.iter().zip(row.iter()) {
                    json.insert(c.name.clone(), kalamdb_query::json::to_json(v, c.ty));
                }
                Cow::Owned(json)
            }
        }
    }

    /// The typed row, if it is one typed to `columns`.
    pub fn typed_to(&self, columns: Option<&RowColumns>) -> Option<&TypedRow> {
        match (self, columns) {
            (OpRow::Typed { columns: ours, row }, Some(theirs)) if Arc::ptr_eq(ours, theirs) || ours == theirs => {
                Some(row)
            }
            _ => None,
        }
    }
}

impl From<Row> for OpRow {
    fn from(row: Row) -> OpRow {
        OpRow::Json(row)
    }
}

/// Rows are equal when their JSON is.
impl PartialEq for OpRow {
    fn eq(&self, other: &OpRow) -> bool {
        self.json() == other.json()
    }
}

impl Serialize for OpRow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // A typed row is made into its map first: only tabs sharing a store serialise ops, and
        // one serialiser keeps the wasm bundle smaller.
        self.json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for OpRow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<OpRow, D::Error> {
        Row::deserialize(d).map(OpRow::Json)
    }
}

/// One change to the store; a commit applies a list of them in order, all or nothing.
///
/// Serialisable so that tabs sharing one store can tell each other what they committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreOp {
    PutSubscription(SubscriptionRecord),
    /// Removes the subscription and all its rows.
    DeleteSubscription(SubscriptionId),
    PutRow {
        sub: SubscriptionId,
        pk: String,
        row: OpRow,
    },
    DeleteRow {
        sub: SubscriptionId,
        pk: String,
    },
    /// Removes every row of a subscription (a `reset`).
    ClearRows(SubscriptionId),
    PutOutbox(OutboxEntry),
    DeleteOutbox {
        client_id: String,
        seq: u64,
    },
    PutMeta {
        key: String,
        value: Value,
    },
}

/// Rows by subscription. A map as a sorted list (`LiteMap`): a replica has a few
/// subscriptions, and each `BTreeMap<K, V>` compiles its B-tree again (~10 KB of wasm).
pub type RowsBySubscription = LiteMap<SubscriptionId, SubscriptionRows>;

/// Everything a store holds, as loaded at start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub subscriptions: Vec<SubscriptionRecord>,
    /// Each subscription's rows (subscriptions without rows may be absent), typed to their
    /// tables' columns as the replica types them: a store starts from
    /// [`crate::replica::empty_rows_of`] its subscriptions and puts each row as it reads it,
    /// so a large replica is typed once, while loading, and moved into place.
    pub rows: RowsBySubscription,
    /// Ordered by `(created_ms, client_id, seq)`.
    pub outbox: Vec<OutboxEntry>,
    pub meta: Vec<(String, Value)>,
}

/// Puts outbox entries in [`Snapshot::outbox`]'s order, `(created_ms, client_id, seq)`. (One
/// function for every store: each `sort_by` closure compiles a sort of its own.)
pub fn sort_outbox(entries: &mut [OutboxEntry]) {
    entries.sort_by(|a, b| {
        a.created_ms.total_cmp(&b.created_ms).then_with(|| (&a.client_id, a.seq).cmp(&(&b.client_id, b.seq)))
    });
}

impl Snapshot {
    /// The number of rows of all subscriptions.
    pub fn row_count(&self) -> usize {
        self.rows.values().map(SubscriptionRows::len).sum()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("replica store: {0}")]
pub struct StoreError(pub String);

/// Persistence for one replica (one user on one server).
///
/// Futures are not `Send`: in the browser everything runs on one thread.
pub trait ReplicaStore {
    /// Reads everything back.
    fn load(&self) -> LocalBoxFuture<'_, Result<Snapshot, StoreError>>;
    /// Applies `ops` in order, atomically: after a crash either all of them are visible or none.
    fn commit(&self, ops: Vec<StoreOp>) -> LocalBoxFuture<'_, Result<(), StoreError>>;

    /// [`Self::commit`], told the replica that applied `ops` just before (and nothing after
    /// them). A store that keeps rows in memory takes the replica's typed rows instead of
    /// typing them again, so both hold one copy ([`MemoryStore`]); others ignore it.
    fn commit_applied(&self, ops: Vec<StoreOp>, _replica: &Replica) -> LocalBoxFuture<'_, Result<(), StoreError>> {
        self.commit(ops)
    }
}

impl<T: ReplicaStore + ?Sized> ReplicaStore for Box<T> {
    fn load(&self) -> LocalBoxFuture<'_, Result<Snapshot, StoreError>> {
        (**self).load()
    }

    fn commit(&self, ops: Vec<StoreOp>) -> LocalBoxFuture<'_, Result<(), StoreError>> {
        (**self).commit(ops)
    }

    fn commit_applied(&self, ops: Vec<StoreOp>, replica: &Replica) -> LocalBoxFuture<'_, Result<(), StoreError>> {
        (**self).commit_applied(ops, replica)
    }
}
