//! Several tabs of one app on one IndexedDB replica.
//!
//! Every tab runs its own client on the shared database, under a client id of its own (kept
//! out of the shared meta, so two tabs never number writes alike). One tab leads sync: it
//! holds the Web Lock `kalamdb-leader:<db>` and is the only one connected. Tabs talk over the
//! `BroadcastChannel` `kalamdb:<db>`:
//!
//! - After every commit, a tab posts the store operations it committed; the others apply them
//!   to their in-memory replicas (no IndexedDB reads), and live queries fire everywhere.
//! - A follower's writes go to the shared outbox under its client id. The leader learns of
//!   them from that broadcast and sends them — exactly one tab sends — and posts each outcome.
//! - A follower's `sync()`/`unsync()` is forwarded to the leader, which commits it: cursors
//!   have a single writer, so they never move backwards.
//! - The leader posts its status; followers report it as their own (online, syncing, ...).
//! - When the leader closes or its tab goes away, the lock passes to another tab, which
//!   reloads the replica from IndexedDB (the cursors the old leader committed) and connects.
//! - A tab that finds the lock free when it opens ([`lock_if_free`]) leads from the start:
//!   its client loads the replica after the lock is held, so that load already has everything
//!   a leader committed, and no second load follows (a large replica loads once, not twice).

use crate::idb::IndexedDbStore;
use futures::StreamExt;
use futures::channel::oneshot;
use futures::future::LocalBoxFuture;
use kalamdb_client_core::replica::Replica;
use kalamdb_client_core::store::{ReplicaStore, Snapshot, StoreError, StoreOp};
use kalamdb_client_core::sync::{Client, MutationState, SyncEvent, SyncStatus};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{AbortController, BroadcastChannel, MessageEvent};

#[wasm_bindgen]
extern "C" {
    /// The Web Locks API (`navigator.locks`); bound here because web-sys marks it unstable.
    type LockManager;

    #[wasm_bindgen(method, js_name = request)]
    fn request_with_options(
        this: &LockManager,
        name: &str,
        options: &JsValue,
        callback: &js_sys::Function,
    ) -> js_sys::Promise;
}

/// `navigator.locks` in a window or a worker, if the environment has Web Locks.
fn lock_manager() -> Option<LockManager> {
    let navigator = js_sys::Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    let locks = js_sys::Reflect::get(&navigator, &"locks".into()).ok()?;
    let request = js_sys::Reflect::get(&locks, &"request".into()).ok()?;
    request.is_function().then(|| locks.unchecked_into())
}

/// Whether this environment can share a replica between tabs (Web Locks and BroadcastChannel).
pub fn supported() -> bool {
    let has_channel =
        js_sys::Reflect::get(&js_sys::global(), &"BroadcastChannel".into()).is_ok_and(|c| c.is_function());
    has_channel && lock_manager().is_some()
}

/// What tabs post to each other (JSON text on the channel). Decoded by
/// [`kalamdb_client_core::tagged`].
#[derive(Serialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Message {
    /// Store operations a tab committed.
    Ops { ops: Vec<StoreOp> },
    /// A mutation the leader settled with the server.
    Mutation { client_id: String, seq: u64, state: MutationState },
    /// The leader's status.
    Status { status: SyncStatus },
    /// A tab opened; the leader answers with its status.
    Hello,
    /// A tab took the lead; followers post their unanswered requests again.
    Leader,
    /// A follower asks the leader to change the subscriptions.
    Request { from: String, req: u64, action: Action },
    /// The leader's answer to a request.
    Reply { to: String, req: u64, error: Option<String> },
}

/// [`Message`] externally tagged, for [`kalamdb_client_core::tagged`].
#[derive(Deserialize)]
#[serde(remote = "Message", rename_all = "snake_case")]
enum MessageFields {
    Ops { ops: Vec<StoreOp> },
    Mutation { client_id: String, seq: u64, state: MutationState },
    Status { status: SyncStatus },
    Hello,
    Leader,
    Request { from: String, req: u64, action: Action },
    Reply { to: String, req: u64, error: Option<String> },
}

kalamdb_client_core::decode_tag_first!(Message, MessageFields, "t");

/// A subscription change a follower leaves to the leader. Decoded by
/// [`kalamdb_client_core::tagged`].
#[derive(Clone, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Sync { id: String, sql: String },
    Unsync { id: String },
}

/// [`Action`] externally tagged, for [`kalamdb_client_core::tagged`].
#[derive(Deserialize)]
#[serde(remote = "Action", rename_all = "snake_case")]
enum ActionFields {
    Sync { id: String, sql: String },
    Unsync { id: String },
}

kalamdb_client_core::decode_tag_first!(Action, ActionFields, "action");

/// [`Message::Ops`] serialised from borrowed operations.
#[derive(Serialize)]
struct OpsOut<'a> {
    t: &'static str,
    ops: &'a [StoreOp],
}

/// The IndexedDB store, posting every successful commit to the other tabs.
pub struct BroadcastingStore {
    inner: IndexedDbStore,
    channel: BroadcastChannel,
}

impl BroadcastingStore {
    pub fn new(inner: IndexedDbStore, channel: BroadcastChannel) -> Self {
        BroadcastingStore { inner, channel }
    }
}

impl ReplicaStore for BroadcastingStore {
    fn load(&self) -> LocalBoxFuture<'_, Result<Snapshot, StoreError>> {
        self.inner.load()
    }

    fn commit(&self, ops: Vec<StoreOp>) -> LocalBoxFuture<'_, Result<(), StoreError>> {
        self.commit_with(ops, None)
    }

    fn commit_applied(&self, ops: Vec<StoreOp>, replica: &Replica) -> LocalBoxFuture<'_, Result<(), StoreError>> {
        self.commit_with(ops, Some(replica))
    }
}

impl BroadcastingStore {
    /// Commits `ops` (through [`ReplicaStore::commit_applied`] when `replica` is given), then
    /// posts them.
    fn commit_with(&self, ops: Vec<StoreOp>, replica: Option<&Replica>) -> LocalBoxFuture<'_, Result<(), StoreError>> {
        if ops.is_empty() {
            return Box::pin(async { Ok(()) });
        }
        // Serialised first: the store consumes the operations.
        let text = serde_json::to_string(&OpsOut { t: "ops", ops: &ops })
            .map_err(|e| StoreError(format!("cannot serialise for other tabs: {e}")));
        // Started now: the store reads what it needs of the replica before the future runs.
        let commit = match replica {
            Some(replica) => self.inner.commit_applied(ops, replica),
            None => self.inner.commit(ops),
        };
        Box::pin(async move {
            let text = text?;
            commit.await?;
            // Posted only once durable, so another tab never shows what may still roll back.
            let _ = self.channel.post_message(&JsValue::from_str(&text));
            Ok(())
        })
    }
}

struct Pending {
    action: Action,
    reply: oneshot::Sender<Result<(), String>>,
}

#[derive(Default)]
struct State {
    leader: bool,
    /// What the application asked for with `online`/`setOnline`; applies while leading.
    want_online: bool,
    closed: bool,
    next_req: u64,
    /// Requests to the leader not answered yet (by request number, ascending), posted again
    /// when a new leader appears. A list: there are few, and a map type costs the bundle KBs.
    pending: Vec<(u64, Pending)>,
    /// Resolves the promise that holds the leader lock.
    release: Option<js_sys::Function>,
}

struct Shared {
    /// This tab's client id, which also names it on the channel.
    tab_id: String,
    client: Client,
    channel: BroadcastChannel,
    state: RefCell<State>,
}

impl Shared {
    fn post(&self, msg: &Message) {
        let text = serde_json::to_string(msg).expect("tab messages serialise");
        let _ = self.channel.post_message(&JsValue::from_str(&text));
    }

    fn is_leader(&self) -> bool {
        self.state.borrow().leader
    }

    async fn perform(&self, action: Action) -> Result<(), String> {
        match action {
            Action::Sync { id, sql } => self.client.sync(&id, &sql).await.map_err(|e| e.to_string()),
            Action::Unsync { id } => self.client.unsync(&id).await.map_err(|e| e.to_string()),
        }
    }

    fn post_request(&self, req: u64, action: &Action) {
        self.post(&Message::Request { from: self.tab_id.clone(), req, action: action.clone() });
    }

    fn on_message(self: &Rc<Self>, msg: Message) {
        let leader = self.is_leader();
        match msg {
            Message::Ops { ops } => self.client.apply_remote(ops),
            Message::Mutation { client_id, seq, state } if !leader => self.client.settle_remote(client_id, seq, state),
            Message::Status { status } if !leader => self.client.follow(Some(status)),
            Message::Hello if leader => {
                let this = self.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    if let Ok(status) = this.client.status().await {
                        this.post(&Message::Status { status });
                    }
                });
            }
            Message::Leader if !leader => {
                for (req, p) in self.state.borrow().pending.iter() {
                    self.post_request(*req, &p.action);
                }
            }
            Message::Request { from, req, action } if leader => {
                let this = self.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    let error = this.perform(action).await.err();
                    this.post(&Message::Reply { to: from, req, error });
                });
            }
            Message::Reply { to, req, error } if to == self.tab_id => {
                let mut st = self.state.borrow_mut();
                if let Some(at) = st.pending.iter().position(|(r, _)| *r == req) {
                    let (_, p) = st.pending.remove(at);
                    let _ = p.reply.send(error.map_or(Ok(()), Err));
                }
            }
            _ => {}
        }
    }

    /// This tab got the lock: start from what the store holds now (reloaded, unless the
    /// client's own load came after the lock), then connect.
    async fn lead(self: Rc<Self>, reload: bool) {
        let reloaded = if reload { self.client.reload().await } else { Ok(()) };
        let (pending, online) = {
            let mut st = self.state.borrow_mut();
            if st.closed {
                return; // closed while reloading; the lock is released already
            }
            if let Err(e) = reloaded {
                // The store is unusable (the driver reports it too): stay offline.
                web_sys::console::error_1(&format!("kalamdb: cannot lead sync: {e}").into());
                return;
            }
            st.leader = true;
            (std::mem::take(&mut st.pending), st.want_online)
        };
        self.client.follow(None);
        self.post(&Message::Leader);
        if online {
            self.client.set_online(true);
        }
        if let Ok(status) = self.client.status().await {
            self.post(&Message::Status { status });
        }
        for (_, p) in pending {
            let _ = p.reply.send(self.perform(p.action).await);
        }
    }
}

/// One tab's part in sharing a replica; see the module documentation.
pub struct Tabs {
    shared: Rc<Shared>,
    abort: AbortController,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_lock: Closure<dyn FnMut(JsValue) -> JsValue>,
}

/// Asks for the leader lock of replica `db_name`, granted only if no tab holds it now (asked
/// at once; the answer comes later): the function that releases it, or `None` when another
/// tab leads. A client started after a lock arrived loads a replica no other tab is syncing
/// into, so it can lead without reloading it ([`Tabs::join`] with the lock).
pub fn lock_if_free(db_name: &str) -> Result<oneshot::Receiver<Option<js_sys::Function>>, String> {
    let locks = lock_manager().ok_or("no Web Locks in this environment")?;
    let (tx, rx) = oneshot::channel::<Option<js_sys::Function>>();
    let callback = Closure::once_into_js(move |lock: JsValue| -> JsValue {
        if lock.is_null() {
            let _ = tx.send(None);
            return js_sys::Promise::resolve(&JsValue::UNDEFINED).into();
        }
        // The lock is held until this promise resolves: at close, or with the tab.
        let mut release = None;
        let hold = js_sys::Promise::new(&mut |resolve, _| release = Some(resolve));
        if let Err(Some(release)) = tx.send(release) {
            // Nobody waits for it any more (the open was abandoned): give it back.
            let _ = release.call0(&JsValue::UNDEFINED);
        }
        hold.into()
    });
    let options = js_sys::Object::new();
    js_sys::Reflect::set(&options, &"ifAvailable".into(), &JsValue::TRUE).map_err(|e| format!("{e:?}"))?;
    let granted = locks.request_with_options(&format!("kalamdb-leader:{db_name}"), &options, callback.unchecked_ref());
    wasm_bindgen_futures::spawn_local(async move {
        let _ = wasm_bindgen_futures::JsFuture::from(granted).await;
    });
    Ok(rx)
}

/// The channel a replica's tabs talk on.
pub fn channel(db_name: &str) -> Result<BroadcastChannel, String> {
    BroadcastChannel::new(&format!("kalamdb:{db_name}")).map_err(|e| format!("cannot open BroadcastChannel: {e:?}"))
}

impl Tabs {
    /// Joins the tabs of replica `db_name` with `client`, whose store posts its commits on
    /// `channel` and which must have started offline under the session client id `tab_id`.
    /// Call before yielding to the event loop, so no message posted after the client's store
    /// load goes unseen. `held`: the release function of the leader lock, when
    /// [`lock_if_free`] took it before the client started; this tab then leads at once.
    pub fn join(
        db_name: &str,
        tab_id: String,
        client: Client,
        channel: BroadcastChannel,
        want_online: bool,
        held: Option<js_sys::Function>,
    ) -> Result<Tabs, String> {
        let locks = lock_manager().ok_or("no Web Locks in this environment")?;
        let state = State { want_online, ..State::default() };
        let shared = Rc::new(Shared { tab_id, client, channel, state: RefCell::new(state) });

        let weak = Rc::downgrade(&shared);
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let (Some(shared), Some(text)) = (weak.upgrade(), e.data().as_string()) else { return };
            match serde_json::from_str::<Message>(&text) {
                Ok(msg) => shared.on_message(msg),
                Err(e) => {
                    web_sys::console::warn_1(&format!("kalamdb: unreadable message from another tab: {e}").into())
                }
            }
        });
        shared.channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));

        let weak: Weak<Shared> = Rc::downgrade(&shared);
        let on_lock = Closure::<dyn FnMut(JsValue) -> JsValue>::new(move |_lock: JsValue| {
            let Some(shared) = weak.upgrade().filter(|s| !s.state.borrow().closed) else {
                return js_sys::Promise::resolve(&JsValue::UNDEFINED).into();
            };
            // The lock is held until this promise resolves: at close, or with the tab.
            let hold = js_sys::Promise::new(&mut |resolve, _| shared.state.borrow_mut().release = Some(resolve));
            // Other tabs may have committed since this client loaded the store.
            wasm_bindgen_futures::spawn_local(shared.lead(true));
            hold.into()
        });
        let abort = AbortController::new().map_err(|e| format!("cannot create AbortController: {e:?}"))?;
        match held {
            Some(release) => {
                shared.state.borrow_mut().release = Some(release);
                // The client's load comes after the lock: it is current, no reload.
                wasm_bindgen_futures::spawn_local(shared.clone().lead(false));
            }
            None => {
                let options = js_sys::Object::new();
                js_sys::Reflect::set(&options, &"signal".into(), &abort.signal()).expect("set on a plain object");
                let granted = locks.request_with_options(
                    &format!("kalamdb-leader:{db_name}"),
                    &options,
                    on_lock.as_ref().unchecked_ref(),
                );
                // Rejects with AbortError when closed while still waiting: nothing to do then.
                wasm_bindgen_futures::spawn_local(async move {
                    let _ = wasm_bindgen_futures::JsFuture::from(granted).await;
                });
            }
        }

        // The leader's outcomes and status, for the followers.
        let mut events = shared.client.events();
        let weak = Rc::downgrade(&shared);
        wasm_bindgen_futures::spawn_local(async move {
            while let Some(event) = events.next().await {
                let Some(shared) = weak.upgrade() else { break };
                if !shared.is_leader() {
                    continue;
                }
                match event {
                    SyncEvent::Status(status) => shared.post(&Message::Status { status }),
                    SyncEvent::Mutation { client_id, seq, state } => {
                        shared.post(&Message::Mutation { client_id, seq, state })
                    }
                    _ => {}
                }
            }
        });
        shared.post(&Message::Hello);
        Ok(Tabs { shared, abort, _on_message: on_message, _on_lock: on_lock })
    }

    /// Whether this tab leads sync now.
    pub fn is_leader(&self) -> bool {
        self.shared.is_leader()
    }

    /// Changes the subscriptions: directly when leading, else through the leader.
    pub async fn request(&self, action: Action) -> Result<(), String> {
        if self.is_leader() {
            return self.shared.perform(action).await;
        }
        let (tx, rx) = oneshot::channel();
        let req = {
            let mut st = self.shared.state.borrow_mut();
            st.next_req += 1;
            let req = st.next_req;
            st.pending.push((req, Pending { action: action.clone(), reply: tx }));
            req
        };
        self.shared.post_request(req, &action);
        rx.await.map_err(|_| "the client is closed".to_string())?
    }

    /// Goes online or offline: now when leading, else once this tab leads.
    pub fn set_online(&self, online: bool) {
        let leader = {
            let mut st = self.shared.state.borrow_mut();
            st.want_online = online;
            st.leader
        };
        if leader {
            self.shared.client.set_online(online);
        }
    }

    /// Leaves the group: closes the client first (nothing more is committed), then hands the
    /// lead to another tab.
    pub async fn close(&self) {
        let release = {
            let mut st = self.shared.state.borrow_mut();
            st.closed = true;
            st.leader = false;
            st.pending.clear();
            st.release.take()
        };
        self.shared.client.close().await;
        self.shared.channel.set_onmessage(None);
        self.shared.channel.close();
        match release {
            Some(release) => drop(release.call0(&JsValue::UNDEFINED)),
            None => self.abort.abort(),
        }
    }
}
