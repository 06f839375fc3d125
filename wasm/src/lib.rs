//! KalamDB for JavaScript: the client-core sync engine compiled to WebAssembly.
//!
//! - [`KalamClient`]: the object the TypeScript SDK (`@kalamdb/client`) wraps — open a
//!   replica, declare subscriptions, query it locally (one-shot or live), write through the
//!   outbox, watch status.
//! - [`platform`]: WebSocket, timers, clock and randomness from the JavaScript globals.
//! - [`idb`]: the IndexedDB replica store used in browsers.
//! - [`tabs`]: several tabs sharing one IndexedDB replica, one of them leading sync.
//!
//! Values cross the boundary as plain JSON-compatible objects, except that integers beyond
//! 2^53 are `bigint`s ([`values`]); the TypeScript layer adds types and the React/Vue bindings.

pub mod idb;
pub mod platform;
pub mod tabs;
pub mod values;

use futures::channel::oneshot;
use futures::{FutureExt, StreamExt};
use kalamdb_client_core::protocol::ws::MutationOp;
use kalamdb_client_core::store::{MemoryStore, ReplicaStore};
use kalamdb_client_core::sync::platform::{ConnectError, Platform, TokenSource, uuid_v7};
use kalamdb_client_core::sync::{self, Client, ClientConfig, SyncError, WriteReceipt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasm_bindgen::prelude::*;

/// Options of [`KalamClient::open`] (camelCase in JavaScript).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OpenOptions {
    /// `ws://host:port/v1/ws`.
    url: String,
    /// `"memory"` (default) or `"indexeddb"` (browsers; needs `dbName`).
    #[serde(default)]
    storage: Option<String>,
    /// IndexedDB database of this replica: one per user and server, e.g. `kalamdb:<user>@<server>`.
    #[serde(default)]
    db_name: Option<String>,
    /// With IndexedDB: share the replica with other tabs, one of them leading sync (default
    /// true where Web Locks and BroadcastChannel exist).
    #[serde(default)]
    multi_tab: Option<bool>,
    /// Start connected (default true).
    #[serde(default)]
    online: Option<bool>,
    #[serde(default)]
    ping_interval_ms: Option<u64>,
    #[serde(default)]
    backoff_max_ms: Option<u64>,
}

fn to_js<T: Serialize>(v: &T) -> Result<JsValue, JsError> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| JsError::new(&e.to_string()))
}

fn from_js<T: for<'de> Deserialize<'de>>(v: JsValue, what: &str) -> Result<T, JsError> {
    serde_wasm_bindgen::from_value(v).map_err(|e| JsError::new(&format!("invalid {what}: {e}")))
}

fn sync_err(e: SyncError) -> JsError {
    JsError::new(&e.to_string())
}

/// A write receipt: `{clientId, seq, insertedKeys}`.
fn receipt_to_js(r: &WriteReceipt) -> JsValue {
    let receipt = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&receipt, &"clientId".into(), &JsValue::from_str(&r.client_id));
    let _ = js_sys::Reflect::set(&receipt, &"seq".into(), &JsValue::from_f64(r.seq as f64));
    let keys = values::json_to_js(&Value::Array(r.inserted_keys.clone()));
    let _ = js_sys::Reflect::set(&receipt, &"insertedKeys".into(), &keys);
    receipt.into()
}

/// A running client with its local replica.
#[wasm_bindgen]
pub struct KalamClient {
    client: Client,
    /// Set when this client shares its IndexedDB replica with other tabs.
    tabs: Option<tabs::Tabs>,
}

/// Stops a live query or an event listener.
#[wasm_bindgen]
pub struct Subscription {
    stop: Option<oneshot::Sender<()>>,
}

#[wasm_bindgen]
impl Subscription {
    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Calls `callback(convert(item))` for every item of `stream` until stopped.
fn forward<T: 'static>(
    stream: impl futures::Stream<Item = T> + Unpin + 'static,
    callback: js_sys::Function,
    convert: fn(&T) -> Result<JsValue, JsError>,
) -> Subscription {
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let mut stream = stream.fuse();
    wasm_bindgen_futures::spawn_local(async move {
        loop {
            futures::select! {
                item = stream.next() => match item {
                    Some(item) => {
                        if let Ok(v) = convert(&item) {
                            let _ = callback.call1(&JsValue::NULL, &v);
                        }
                    }
                    None => break,
                },
                _ = stop_rx => break,
            }
        }
    });
    Subscription { stop: Some(stop_tx) }
}

#[wasm_bindgen]
impl KalamClient {
    /// Opens the replica and starts syncing. `token` is a function returning (a promise of)
    /// an access token; it is called for every connection and before the token expires.
    pub async fn open(options: JsValue, token: js_sys::Function) -> Result<KalamClient, JsError> {
        let o: OpenOptions = from_js(options, "options")?;
        let mut config = ClientConfig::new(o.url);
        let want_online = o.online.unwrap_or(true);
        config.online = want_online;
        if let Some(ms) = o.ping_interval_ms {
            config.ping_interval_ms = ms.max(100);
        }
        if let Some(ms) = o.backoff_max_ms {
            config.backoff_max_ms = ms.max(config.backoff_base_ms);
        }
        let tokens: TokenSource = Box::new(move || {
            let result = token.call0(&JsValue::NULL);
            async move {
                let v = result.map_err(|e| sign_in_error(&e))?;
                let v = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::resolve(&v))
                    .await
                    .map_err(|e| sign_in_error(&e))?;
                v.as_string().ok_or_else(|| ConnectError {
                    code: "SIGN_IN_FAILED".into(),
                    message: "the token function must return a string".into(),
                })
            }
            .boxed_local()
        });
        let store: Box<dyn ReplicaStore> = match o.storage.as_deref().unwrap_or("memory") {
            "memory" => Box::new(MemoryStore::new()),
            "indexeddb" => {
                // No default name: a shared default would mix the replicas of different users.
                let name = o.db_name.as_deref().filter(|n| !n.is_empty()).ok_or_else(|| {
                    JsError::new("storage \"indexeddb\" needs dbName (one database per user and server)")
                })?;
                if o.multi_tab.unwrap_or(true) && tabs::supported() {
                    // The leader lock is taken before the client starts, so that its load is the
                    // only one (see tabs); asked for while the database opens.
                    let lock = tabs::lock_if_free(name).map_err(|e| JsError::new(&e))?;
                    let store = idb::IndexedDbStore::open(name).await.map_err(|e| JsError::new(&e.to_string()))?;
                    let held = lock.await.map_err(|_| JsError::new("the Web Lock request was dropped"))?;
                    return Self::open_shared(config, name, store, tokens, want_online, held);
                }
                let store = idb::IndexedDbStore::open(name).await.map_err(|e| JsError::new(&e.to_string()))?;
                Box::new(store)
            }
            other => return Err(JsError::new(&format!("unknown storage '{other}' (use \"memory\" or \"indexeddb\")"))),
        };
        let client = sync::start(config, platform::JsPlatform, store, tokens);
        Ok(KalamClient { client, tabs: None })
    }

    /// A client on a replica shared with other tabs: offline under a client id of its own
    /// until it leads sync (at once with `held`, the leader lock taken before the start).
    fn open_shared(
        mut config: ClientConfig,
        db_name: &str,
        store: idb::IndexedDbStore,
        tokens: TokenSource,
        want_online: bool,
        held: Option<js_sys::Function>,
    ) -> Result<KalamClient, JsError> {
        let p = platform::JsPlatform;
        let tab_id = uuid_v7(p.now_ms(), || p.random_u32());
        let channel = tabs::channel(db_name).map_err(|e| JsError::new(&e))?;
        config.online = false;
        config.session_client_id = Some(tab_id.clone());
        // Boxed like the other stores: one copy of the sync driver in the bundle, not one per
        // store type (~10 KB of wasm).
        let store: Box<dyn ReplicaStore> = Box::new(tabs::BroadcastingStore::new(store, channel.clone()));
        let client = sync::start(config, p, store, tokens);
        // Joined in the same turn as the start: the store loads later, so every commit
        // posted after that load arrives here.
        let tabs = tabs::Tabs::join(db_name, tab_id, client.clone(), channel, want_online, held)
            .map_err(|e| JsError::new(&e))?;
        Ok(KalamClient { client, tabs: Some(tabs) })
    }

    /// Whether this engine can share an IndexedDB replica between tabs here (Web Locks and
    /// BroadcastChannel available).
    #[wasm_bindgen(js_name = supportsMultiTab)]
    pub fn supports_multi_tab() -> bool {
        tabs::supported()
    }

    /// Whether this client leads sync: always, unless it shares its replica with other tabs
    /// and another one leads.
    #[wasm_bindgen(js_name = isLeader)]
    pub fn is_leader(&self) -> bool {
        self.tabs.as_ref().is_none_or(|t| t.is_leader())
    }

    /// Declares what to replicate: `SELECT ... FROM namespace.table [WHERE ...]`, under `id`.
    pub async fn sync(&self, id: String, sql: String) -> Result<(), JsError> {
        match &self.tabs {
            Some(tabs) => tabs.request(tabs::Action::Sync { id, sql }).await.map_err(|e| JsError::new(&e)),
            None => self.client.sync(&id, &sql).await.map_err(sync_err),
        }
    }

    /// Stops replicating `id` and drops its rows locally.
    pub async fn unsync(&self, id: String) -> Result<(), JsError> {
        match &self.tabs {
            Some(tabs) => tabs.request(tabs::Action::Unsync { id }).await.map_err(|e| JsError::new(&e)),
            None => self.client.unsync(&id).await.map_err(sync_err),
        }
    }

    /// Runs a query on the local replica: `{columns, types, rows}` with rows as arrays (values
    /// as in [`values`]). `params` bind `$1..$n` (or the `?`s); a `bigint` stays exact.
    pub async fn query(&self, sql: String, params: JsValue) -> Result<JsValue, JsError> {
        let params: Vec<Value> =
            if params.is_undefined() || params.is_null() { vec![] } else { from_js(params, "params")? };
        Ok(values::result_to_js(&self.client.query(&sql, params).await.map_err(sync_err)?))
    }

    /// A live local query: `callback({columns, types, rows})` now and after every change to
    /// one of the tables it reads that changes the result.
    pub async fn live(
        &self,
        sql: String,
        params: JsValue,
        callback: js_sys::Function,
    ) -> Result<Subscription, JsError> {
        let params: Vec<Value> =
            if params.is_undefined() || params.is_null() { vec![] } else { from_js(params, "params")? };
        let live = self.client.live(&sql, params).await.map_err(sync_err)?;
        Ok(forward(live, callback, |rs| Ok(values::result_to_js(rs))))
    }

    /// Writes `ops` (`[{table, op, row?, pk?}]`) as one atomic mutation.
    pub async fn mutate(&self, ops: JsValue) -> Result<JsValue, JsError> {
        let ops: Vec<MutationOp> = from_js(ops, "ops")?;
        Ok(receipt_to_js(&self.client.mutate(ops).await.map_err(sync_err)?))
    }

    /// `{status: "pending" | "applied" | "rejected", ...}` or `undefined` if unknown.
    #[wasm_bindgen(js_name = mutationState)]
    pub async fn mutation_state(&self, client_id: String, seq: u64) -> Result<JsValue, JsError> {
        let receipt = WriteReceipt { client_id, seq, inserted_keys: vec![] };
        match self.client.mutation_state(&receipt).await.map_err(sync_err)? {
            Some(s) => to_js(&s),
            None => Ok(JsValue::UNDEFINED),
        }
    }

    /// A CRDT_TEXT cell with pending edits merged: `{text, state}` (state: base64 Yjs v1
    /// update to load into a `Y.Doc`), a string, or null.
    #[wasm_bindgen(js_name = crdtCell)]
    pub async fn crdt_cell(&self, table: String, pk: JsValue, column: String) -> Result<JsValue, JsError> {
        let pk: Value = from_js(pk, "primary key")?;
        Ok(values::json_to_js(&self.client.crdt_cell(&table, pk, &column).await.map_err(sync_err)?))
    }

    pub async fn status(&self) -> Result<JsValue, JsError> {
        to_js(&self.client.status().await.map_err(sync_err)?)
    }

    /// `callback(event)` for status changes, mutation outcomes and errors.
    #[wasm_bindgen(js_name = onEvent)]
    pub fn on_event(&self, callback: js_sys::Function) -> Subscription {
        forward(self.client.events(), callback, to_js)
    }

    /// Goes offline or back online. With a shared replica, only the leading tab connects;
    /// the choice applies whenever this tab leads.
    #[wasm_bindgen(js_name = setOnline)]
    pub fn set_online(&self, online: bool) {
        match &self.tabs {
            Some(tabs) => tabs.set_online(online),
            None => self.client.set_online(online),
        }
    }

    /// Resolves once online, all subscriptions loaded and every local write confirmed.
    pub async fn settled(&self) -> Result<(), JsError> {
        self.client.settled().await.map_err(sync_err)
    }

    /// Stops syncing; a tab leading sync for others hands the lead to one of them.
    pub async fn close(&self) {
        match &self.tabs {
            Some(tabs) => tabs.close().await,
            None => self.client.close().await,
        }
    }
}

/// What the token function threw, as a connection failure: its `code` and `message` when it
/// is a `KalamError` (`NETWORK_ERROR`, `UNAUTHORIZED`, ...), not a stack trace.
fn sign_in_error(e: &JsValue) -> ConnectError {
    let field = |name: &str| js_sys::Reflect::get(e, &JsValue::from_str(name)).ok().and_then(|v| v.as_string());
    ConnectError {
        code: field("code").unwrap_or_else(|| "SIGN_IN_FAILED".into()),
        message: field("message").or_else(|| e.as_string()).unwrap_or_else(|| format!("{e:?}")),
    }
}
