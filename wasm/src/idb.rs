//! The IndexedDB replica store (browsers).
//!
//! One database per replica (one user on one server). Four object stores, every record
//! shaped `{k: key, v: "<JSON text>"}` with key path `k`:
//!
//! | store           | key                     | `v`                         |
//! |-----------------|-------------------------|-----------------------------|
//! | `subscriptions` | subscription id         | [`SubscriptionRecord`]      |
//! | `rows`          | `[subscription id, pk]` | the row object              |
//! | `outbox`        | `[client_id, seq]`      | [`OutboxEntry`]             |
//! | `meta`          | meta key                | the value                   |
//!
//! Values are kept as JSON text rather than as JavaScript objects: integers beyond 2^53 (BIGINT
//! columns) survive unchanged, and a string is the cheapest thing for IndexedDB to clone.
//!
//! A commit is one read-write transaction over the stores it touches. Its records are
//! serialised into one JSON array in Rust and parsed once with `JSON.parse`, so a batch of
//! 1,000 rows crosses the wasm boundary as one string, not field by field. A load reads each
//! store with one `getAll()` and hands it back with one `JSON.stringify`.

use futures::future::LocalBoxFuture;
use indexed_db_futures::KeyPath;
use indexed_db_futures::database::Database;
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::{TransactionDurability, TransactionMode, TransactionOptions};
use kalamdb_client_core::query::Row;
use kalamdb_client_core::store::{
    OutboxEntry, ReplicaStore, Snapshot, StoreError, StoreOp, SubscriptionId, SubscriptionRecord,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{IdbKeyRange, IdbObjectStore, IdbRequest};

/// Version of the object-store layout; raising it runs the upgrade handler.
pub const SCHEMA_VERSION: u32 = 1;

const SUBSCRIPTIONS: &str = "subscriptions";
const ROWS: &str = "rows";
const OUTBOX: &str = "outbox";
const META: &str = "meta";
/// Indexed by [`Target`]; the order of the object stores in a transaction.
const STORES: [&str; 4] = [SUBSCRIPTIONS, ROWS, OUTBOX, META];

/// A [`ReplicaStore`] in one IndexedDB database.
pub struct IndexedDbStore {
    db: Database,
    name: String,
    /// Closes this connection when another one needs to upgrade the schema (kept alive here).
    _on_version_change: Closure<dyn FnMut(JsValue)>,
}

impl IndexedDbStore {
    /// Opens (creating or upgrading if needed) the database `name`, e.g. `kalamdb:<user>@<server>`.
    pub async fn open(name: &str) -> Result<Self, StoreError> {
        let db = Database::open(name)
            .with_version(SCHEMA_VERSION)
            .with_on_upgrade_needed(|event, db| {
                // Version 0 → 1 creates everything; later versions add their steps here.
                if event.old_version() < 1.0 {
                    for store in STORES {
                        db.create_object_store(store).with_key_path(KeyPath::One("k")).build()?;
                    }
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
        Ok(IndexedDbStore { db, name: name.to_string(), _on_version_change: on_version_change })
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

    async fn load_all(&self) -> Result<Snapshot, StoreError> {
        let tx = self.db.transaction(STORES).with_mode(TransactionMode::Readonly).build().map_err(idb_err)?;
        let mut requests = Vec::with_capacity(STORES.len());
        for name in STORES {
            let store = tx.object_store(name).map_err(idb_err)?;
            requests.push(store.as_sys().get_all().map_err(js_err)?);
        }
        tx.commit().await.map_err(idb_err)?;
        let [subs, rows, outbox, meta] = <[IdbRequest; 4]>::try_from(requests).expect("one request per store");

        let mut subscriptions: Vec<SubscriptionRecord> =
            read_records::<String>(&subs)?.into_iter().map(|r| parse_value(&r.v)).collect::<Result<_, _>>()?;
        subscriptions.sort_by(|a, b| a.id.cmp(&b.id));
        let mut rows: Vec<(SubscriptionId, String, Row)> = read_records::<(String, String)>(&rows)?
            .into_iter()
            .map(|r| Ok((SubscriptionId(r.k.0), r.k.1, parse_value(&r.v)?)))
            .collect::<Result<_, StoreError>>()?;
        // IndexedDB orders strings by UTF-16 code unit, Rust by code point; sort like MemoryStore
        // (already sorted except around surrogates, so this is a linear pass in practice).
        rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let mut outbox: Vec<OutboxEntry> =
            read_records::<Value>(&outbox)?.into_iter().map(|r| parse_value(&r.v)).collect::<Result<_, _>>()?;
        outbox.sort_by(|a, b| {
            a.created_ms.total_cmp(&b.created_ms).then_with(|| (&a.client_id, a.seq).cmp(&(&b.client_id, b.seq)))
        });
        let mut meta: Vec<(String, Value)> = read_records::<String>(&meta)?
            .into_iter()
            .map(|r| Ok((r.k, parse_value(&r.v)?)))
            .collect::<Result<_, StoreError>>()?;
        meta.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Snapshot { subscriptions, rows, outbox, meta })
    }

    async fn commit_all(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let plan = Plan::new(&ops)?;
        // Pending local writes are the one thing the server cannot give back: flush them to
        // disk before reporting success. Server data may use relaxed durability — after a
        // power loss the replica is merely an earlier, still consistent state that resumes
        // from its (equally earlier) cursors.
        let mut options = TransactionOptions::new();
        options.set_durability(if plan.has_outbox_put {
            TransactionDurability::Strict
        } else {
            TransactionDurability::Relaxed
        });
        let names: Vec<&str> = STORES.iter().enumerate().filter(|(i, _)| plan.used[*i]).map(|(_, n)| *n).collect();
        let tx = self
            .db
            .transaction(names.as_slice())
            .with_mode(TransactionMode::Readwrite)
            .with_options(options)
            .build()
            .map_err(idb_err)?;
        let mut stores: [Option<IdbObjectStore>; 4] = Default::default();
        for (i, name) in STORES.iter().enumerate() {
            if plan.used[i] {
                stores[i] = Some(tx.object_store(name).map_err(idb_err)?.as_sys().clone());
            }
        }
        let items: js_sys::Array = js_sys::JSON::parse(&plan.json).map_err(js_err)?.unchecked_into();
        // Requests run in the order they are issued. Any failure — thrown here or reported
        // later — aborts the transaction (dropping `tx` on an early return aborts it too).
        for (i, step) in plan.steps.iter().enumerate() {
            let item = items.get(i as u32);
            let store = stores[step.target as usize].as_ref().expect("store of every step opened");
            match step.action {
                Action::Put => store.put(&item),
                Action::Delete => store.delete(&item),
                Action::DeleteRange => {
                    let bounds: js_sys::Array = item.unchecked_into();
                    let range = IdbKeyRange::bound(&bounds.get(0), &bounds.get(1)).map_err(js_err)?;
                    store.delete(&range)
                }
            }
            .map_err(js_err)?;
        }
        tx.commit().await.map_err(idb_err)
    }
}

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

    fn commit(&self, ops: Vec<StoreOp>) -> LocalBoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.commit_all(ops))
    }
}

/// Object store of a step, an index into [`STORES`].
#[derive(Clone, Copy)]
enum Target {
    Subscriptions = 0,
    Rows = 1,
    Outbox = 2,
    Meta = 3,
}

#[derive(Clone, Copy)]
enum Action {
    /// The item is a `{k, v}` record.
    Put,
    /// The item is a key.
    Delete,
    /// The item is `[lower, upper]`, an inclusive key range.
    DeleteRange,
}

struct Step {
    target: Target,
    action: Action,
}

/// A commit translated into IndexedDB requests: `json` is an array with one item per step.
struct Plan {
    steps: Vec<Step>,
    json: String,
    used: [bool; 4],
    has_outbox_put: bool,
}

/// A record as written: the value is JSON text of its own.
#[derive(Serialize)]
struct RecordOut<'a, K> {
    k: K,
    v: &'a str,
}

impl Plan {
    fn new(ops: &[StoreOp]) -> Result<Self, StoreError> {
        let mut b = PlanBuilder { steps: Vec::with_capacity(ops.len() + 1), json: vec![b'['], used: [false; 4] };
        let mut has_outbox_put = false;
        for op in ops {
            match op {
                StoreOp::PutSubscription(rec) => b.put(Target::Subscriptions, &rec.id, rec)?,
                StoreOp::DeleteSubscription(id) => {
                    b.push(Target::Subscriptions, Action::Delete, id)?;
                    b.push(Target::Rows, Action::DeleteRange, &rows_of(id))?;
                }
                StoreOp::PutRow { sub, pk, row } => b.put(Target::Rows, &(sub, pk), row)?,
                StoreOp::DeleteRow { sub, pk } => b.push(Target::Rows, Action::Delete, &(sub, pk))?,
                StoreOp::ClearRows(sub) => b.push(Target::Rows, Action::DeleteRange, &rows_of(sub))?,
                StoreOp::PutOutbox(entry) => {
                    has_outbox_put = true;
                    b.put(Target::Outbox, &(&entry.client_id, entry.seq), entry)?;
                }
                StoreOp::DeleteOutbox { client_id, seq } => {
                    b.push(Target::Outbox, Action::Delete, &(client_id, seq))?
                }
                StoreOp::PutMeta { key, value } => b.put(Target::Meta, key, value)?,
            }
        }
        b.json.push(b']');
        let json = String::from_utf8(b.json).expect("serde_json writes UTF-8");
        Ok(Plan { steps: b.steps, json, used: b.used, has_outbox_put })
    }
}

struct PlanBuilder {
    steps: Vec<Step>,
    json: Vec<u8>,
    used: [bool; 4],
}

impl PlanBuilder {
    fn push(&mut self, target: Target, action: Action, item: &impl Serialize) -> Result<(), StoreError> {
        if !self.steps.is_empty() {
            self.json.push(b',');
        }
        serde_json::to_writer(&mut self.json, item).map_err(json_err)?;
        self.used[target as usize] = true;
        self.steps.push(Step { target, action });
        Ok(())
    }

    fn put(&mut self, target: Target, key: &impl Serialize, value: &impl Serialize) -> Result<(), StoreError> {
        let text = serde_json::to_string(value).map_err(json_err)?;
        self.push(target, Action::Put, &RecordOut { k: key, v: &text })
    }
}

/// Every key `[sub, pk]` of one subscription: pk keys are strings, and arrays sort after strings.
fn rows_of(sub: &SubscriptionId) -> Value {
    serde_json::json!([[sub], [sub, []]])
}

/// A record as stored, with the key type of its object store.
#[derive(Deserialize)]
struct Record<K> {
    k: K,
    v: String,
}

/// Reads a finished `getAll()` with one `JSON.stringify` rather than field by field.
fn read_records<K: for<'de> Deserialize<'de>>(request: &IdbRequest) -> Result<Vec<Record<K>>, StoreError> {
    let result = request.result().map_err(js_err)?;
    let text: String = js_sys::JSON::stringify(&result).map_err(js_err)?.into();
    serde_json::from_str(&text).map_err(|e| StoreError(format!("unreadable IndexedDB records: {e}")))
}

fn parse_value<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError(format!("unreadable IndexedDB value: {e}")))
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
