//! The driver: one task that owns the [`SyncEngine`], the store and the socket, and turns
//! commands, socket frames and timers into engine inputs.
//!
//! Effects of consecutive inputs that are already waiting are combined into one store commit
//! (up to [`MAX_INPUTS_PER_COMMIT`]), so a fast catch-up crosses into the store per batch of
//! frames, not per row.

use super::backoff::Backoff;
use super::client::{Client, Command, WriteReceipt};
use super::engine::{Effects, SyncEngine, SyncError};
use super::platform::{ConnectError, Platform, Socket, SocketEvent, TokenSource, parse_utc_ms, uuid_v7};
use super::status::SyncEvent;
use crate::live::LiveView;
use crate::protocol::ws::{ClientMessage, MutationKind, MutationOp, ServerMessage};
use crate::query::{LocalQuery, ResultSet};
use crate::replica::RowChanges;
use crate::store::ReplicaStore;
use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, StreamExt};
use std::collections::VecDeque;
use std::rc::Rc;

const MAX_INPUTS_PER_COMMIT: usize = 256;

/// Writes wait for a table's columns at most this long (see [`HeldWrite`]).
const HOLD_WRITE_MS: f64 = 30_000.0;
/// Writes held at most at once; more are refused.
const MAX_HELD_WRITES: usize = 1024;

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// WebSocket endpoint, e.g. `ws://127.0.0.1:8080/v1/ws`.
    pub url: String,
    /// A `ping` goes out this often; a connection silent for two intervals is dropped.
    pub ping_interval_ms: u64,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// Start connected (false: offline until `set_online(true)`).
    pub online: bool,
    /// A client id for this session only, when several sessions (browser tabs) share one
    /// store; `None`: the store's own, created once and kept in its meta.
    pub session_client_id: Option<String>,
}

impl ClientConfig {
    pub fn new(url: impl Into<String>) -> Self {
        ClientConfig {
            url: url.into(),
            ping_interval_ms: 15_000,
            backoff_base_ms: 250,
            backoff_max_ms: 30_000,
            online: true,
            session_client_id: None,
        }
    }
}

enum Input {
    Command(Command),
    Socket(SocketEvent),
    Opened { conn: u64, result: Result<(Box<dyn Socket>, String), ConnectError> },
    Retry { conn: u64 },
    Renew { conn: u64, token: Result<String, ConnectError> },
    RenewDue { conn: u64 },
    Tick,
}

/// A live local query and where its results go.
struct LiveRegistration {
    id: u64,
    view: LiveView,
    updates: mpsc::UnboundedSender<ResultSet>,
}

/// A write waiting for the columns of a table it inserts into. Right after the first `sync()`
/// the server has not described the table yet, so which column is the key, and whether one
/// must be generated, is unknown; sent as is, a row without its key would be shown, then
/// refused by the server. While the columns can arrive (the client is online or connecting),
/// the write waits for them, up to [`HOLD_WRITE_MS`], and later writes wait behind it so that
/// writes stay in the order they were made. Offline, or after that time, it is written as is.
struct HeldWrite {
    ops: Vec<MutationOp>,
    reply: oneshot::Sender<Result<WriteReceipt, SyncError>>,
    since_ms: f64,
}

/// Starts a client on the current thread's executor (the platform's `spawn`).
pub fn start<P: Platform, S: ReplicaStore + 'static>(
    config: ClientConfig,
    platform: P,
    store: S,
    tokens: TokenSource,
) -> Client {
    let (tx, rx) = mpsc::unbounded();
    let platform = Rc::new(platform);
    platform.spawn(Box::pin(run(config, platform.clone(), store, tokens, rx)));
    Client::new(tx)
}

/// The driver loop; returns when the client is closed or every handle is dropped.
pub async fn run<P: Platform, S: ReplicaStore>(
    config: ClientConfig,
    platform: Rc<P>,
    store: S,
    tokens: TokenSource,
    commands: mpsc::UnboundedReceiver<Command>,
) {
    let (input_tx, input_rx) = mpsc::unbounded::<Input>();
    let (socket_tx, socket_rx) = mpsc::unbounded::<SocketEvent>();
    let mut inputs = futures::stream::select(
        futures::stream::select(commands.map(Input::Command), socket_rx.map(Input::Socket)),
        input_rx,
    );
    let snapshot = match store.load().await {
        Ok(s) => s,
        Err(e) => {
            // Without its store the replica cannot run; answer every command with the error.
            while let Some(input) = inputs.next().await {
                if let Input::Command(cmd) = input {
                    fail_command(cmd, SyncError::Store(e.clone()));
                }
            }
            return;
        }
    };
    let p = platform.clone();
    let (engine, init) = match config.session_client_id.clone() {
        Some(id) => (SyncEngine::with_session_client_id(snapshot, id), Vec::new()),
        None => SyncEngine::new(snapshot, || uuid_v7(p.now_ms(), || p.random_u32())),
    };
    let mut d = Driver {
        backoff: Backoff::new(config.backoff_base_ms, config.backoff_max_ms),
        want_online: config.online,
        config,
        platform,
        store,
        tokens: Rc::new(tokens),
        engine,
        conn: 0,
        socket: None,
        connecting: false,
        last_frame_ms: 0.0,
        input_tx,
        socket_tx,
        lives: Vec::new(),
        held: VecDeque::new(),
        next_live: 1,
        event_sinks: Vec::new(),
        settle_waiters: Vec::new(),
        failing: None,
        connected_once: false,
        replies: Vec::new(),
        reload: None,
        closed: None,
    };
    if !init.is_empty() {
        d.perform(Effects { commit: init, ..Effects::default() }).await;
    }
    d.schedule_tick();
    if d.want_online {
        d.connect();
    }
    while let Some(first) = inputs.next().await {
        let mut fx = d.handle(first);
        for _ in 1..MAX_INPUTS_PER_COMMIT {
            if d.reload.is_some() {
                break; // later inputs see the reloaded replica
            }
            match inputs.next().now_or_never() {
                Some(Some(input)) => fx.absorb(d.handle(input)),
                _ => break,
            }
        }
        if !d.held.is_empty() {
            fx.absorb(d.release_held());
        }
        d.perform(fx).await;
        if let Some(reply) = d.reload.take() {
            let result = match d.store.load().await {
                Ok(snapshot) => {
                    let fx = d.engine.reload(snapshot);
                    d.perform(fx).await;
                    Ok(())
                }
                Err(e) => Err(SyncError::Store(e)),
            };
            let _ = reply.send(result);
        }
        if let Some(reply) = d.closed.take() {
            d.shutdown();
            let _ = reply.send(());
            return;
        }
    }
    d.shutdown();
}

fn connection_error(e: &ConnectError) -> SyncError {
    SyncError::Connection { code: e.code.clone(), message: e.message.clone() }
}

fn fail_command(cmd: Command, e: SyncError) {
    match cmd {
        Command::Sync { reply, .. } => drop(reply.send(Err(e))),
        Command::Query { reply, .. } => drop(reply.send(Err(e))),
        Command::Live { reply, .. } => drop(reply.send(Err(e))),
        Command::Write { reply, .. } => drop(reply.send(Err(e))),
        Command::Reload { reply } => drop(reply.send(Err(e))),
        Command::Close { reply } => {
            let _ = reply.send(());
        }
        _ => {}
    }
}

type Reply = Box<dyn FnOnce()>;

struct Driver<P: Platform, S: ReplicaStore> {
    config: ClientConfig,
    platform: Rc<P>,
    store: S,
    tokens: Rc<TokenSource>,
    engine: SyncEngine,
    /// Number of the current connection attempt; events of older ones are ignored.
    conn: u64,
    socket: Option<Box<dyn Socket>>,
    connecting: bool,
    want_online: bool,
    backoff: Backoff,
    last_frame_ms: f64,
    input_tx: mpsc::UnboundedSender<Input>,
    socket_tx: mpsc::UnboundedSender<SocketEvent>,
    lives: Vec<LiveRegistration>,
    /// Writes waiting for a table's columns, oldest first.
    held: VecDeque<HeldWrite>,
    next_live: u64,
    event_sinks: Vec<mpsc::UnboundedSender<SyncEvent>>,
    settle_waiters: Vec<oneshot::Sender<Result<(), SyncError>>>,
    /// The last failure to connect, until a connection is accepted again.
    failing: Option<ConnectError>,
    /// Whether the server ever accepted a connection of this client. Until it has, a failure
    /// is most likely a mistake to report (a wrong URL or password, an origin the server does
    /// not allow) and `settled()` fails with it; afterwards it is an outage to wait out.
    connected_once: bool,
    /// Answers held back until the effects they depend on are committed.
    replies: Vec<Reply>,
    /// A reload of the replica from the store, done once the current inputs are performed.
    reload: Option<oneshot::Sender<Result<(), SyncError>>>,
    closed: Option<oneshot::Sender<()>>,
}

impl<P: Platform, S: ReplicaStore> Driver<P, S> {
    fn later(&self, ms: u64, input: Input) {
        let tx = self.input_tx.clone();
        let sleep = self.platform.sleep(ms);
        self.platform.spawn(Box::pin(async move {
            sleep.await;
            let _ = tx.unbounded_send(input);
        }));
    }

    fn schedule_tick(&self) {
        self.later(self.config.ping_interval_ms, Input::Tick);
    }

    fn connect(&mut self) {
        if self.connecting || self.socket.is_some() || !self.want_online {
            return;
        }
        self.conn += 1;
        self.connecting = true;
        let (conn, url) = (self.conn, self.config.url.clone());
        let (platform, tokens, tx, socket_tx) =
            (self.platform.clone(), self.tokens.clone(), self.input_tx.clone(), self.socket_tx.clone());
        self.platform.spawn(Box::pin(async move {
            let result = match (tokens)().await {
                Err(e) => Err(e),
                Ok(token) => match platform.connect(&url, conn, socket_tx).await {
                    Ok(socket) => Ok((socket, token)),
                    Err(e) => Err(ConnectError {
                        code: "NETWORK_ERROR".into(),
                        message: format!("cannot open the WebSocket to {url}: {e}"),
                    }),
                },
            };
            let _ = tx.unbounded_send(Input::Opened { conn, result });
        }));
    }

    /// A connection attempt failed: reported once per kind of failure; until the client has
    /// connected once, what waits for the server is told why instead of waiting for a retry.
    fn connect_failed(&mut self, e: ConnectError, fx: &mut Effects) {
        if self.failing.as_ref() != Some(&e) {
            fx.events.push(SyncEvent::ConnectionFailed { code: e.code.clone(), message: e.message.clone() });
        }
        if !self.connected_once {
            self.fail_settle_waiters(&e);
        }
        self.failing = Some(e);
    }

    fn fail_settle_waiters(&mut self, e: &ConnectError) {
        for w in self.settle_waiters.drain(..) {
            let _ = w.send(Err(connection_error(e)));
        }
    }

    fn retry_later(&mut self) {
        let delay = self.backoff.next_delay_ms(self.platform.random_u32() as f64 / 4_294_967_296.0);
        self.later(delay, Input::Retry { conn: self.conn });
    }

    fn drop_socket(&mut self, reason: Option<String>) -> Effects {
        if let Some(s) = self.socket.take() {
            s.close();
        }
        self.engine.on_close(reason)
    }

    fn handle(&mut self, input: Input) -> Effects {
        match input {
            Input::Command(cmd) => self.command(cmd),
            Input::Opened { conn, result } => {
                if conn != self.conn {
                    if let Ok((s, _)) = result {
                        s.close();
                    }
                    return Effects::default();
                }
                self.connecting = false;
                match result {
                    Ok((socket, token)) if self.want_online => {
                        self.socket = Some(socket);
                        self.last_frame_ms = self.platform.now_ms();
                        self.engine.on_open(token)
                    }
                    Ok((socket, _)) => {
                        socket.close();
                        Effects::default()
                    }
                    Err(e) => {
                        self.retry_later();
                        let mut fx = self.engine.on_close(Some(e.message.clone()));
                        self.connect_failed(e, &mut fx);
                        fx
                    }
                }
            }
            Input::Socket(SocketEvent::Frame { conn, text }) if conn == self.conn && self.socket.is_some() => {
                self.last_frame_ms = self.platform.now_ms();
                match serde_json::from_str::<ServerMessage>(&text) {
                    Ok(msg) => {
                        match &msg {
                            ServerMessage::AuthOk { expires_at, .. } => {
                                self.backoff.reset();
                                self.failing = None;
                                self.connected_once = true;
                                self.schedule_renewal(expires_at);
                            }
                            // Refused as a whole (the token, the user's connection limit):
                            // nothing the client waits for can happen until that changes.
                            ServerMessage::Error { id: None, code, message } if !self.connected_once => {
                                self.fail_settle_waiters(&ConnectError {
                                    code: serde_json::to_value(code)
                                        .ok()
                                        .and_then(|v| v.as_str().map(str::to_string))
                                        .unwrap_or_else(|| "ERROR".into()),
                                    message: message.clone(),
                                });
                            }
                            _ => {}
                        }
                        self.engine.on_message(msg, self.platform.now_ms())
                    }
                    Err(e) => {
                        // A frame this client cannot read: reconnecting resumes from cursors.
                        let fx = self.drop_socket(Some(format!("unreadable frame from server: {e}")));
                        self.retry_later();
                        fx
                    }
                }
            }
            Input::Socket(SocketEvent::Closed { conn, reason }) if conn == self.conn => {
                self.socket = None;
                let fx = self.engine.on_close(reason.or_else(|| Some("connection closed".into())));
                if self.want_online {
                    self.retry_later();
                }
                fx
            }
            Input::Socket(_) => Effects::default(),
            Input::Retry { conn } => {
                if conn == self.conn {
                    self.connect();
                }
                Effects::default()
            }
            Input::RenewDue { conn } => {
                if conn == self.conn && self.socket.is_some() {
                    let (tokens, tx) = (self.tokens.clone(), self.input_tx.clone());
                    self.platform.spawn(Box::pin(async move {
                        let token = (tokens)().await;
                        let _ = tx.unbounded_send(Input::Renew { conn, token });
                    }));
                }
                Effects::default()
            }
            Input::Renew { conn, token } => match token {
                Ok(token) if conn == self.conn && self.socket.is_some() => self.engine.renew(token),
                _ => Effects::default(),
            },
            Input::Tick => {
                self.schedule_tick();
                let now = self.platform.now_ms();
                if self.socket.is_some() {
                    if now - self.last_frame_ms > 2.0 * self.config.ping_interval_ms as f64 {
                        let fx = self.drop_socket(Some("no answer from the server".into()));
                        self.retry_later();
                        return fx;
                    }
                    return Effects { send: vec![ClientMessage::Ping { nonce: None }], ..Effects::default() };
                }
                Effects::default()
            }
        }
    }

    fn schedule_renewal(&self, expires_at: &str) {
        if let Some(exp) = parse_utc_ms(expires_at) {
            // Renew at 80% of the remaining lifetime, not more often than every second.
            let left = (exp - self.platform.now_ms()).max(0.0);
            self.later(((left * 0.8) as u64).max(1000), Input::RenewDue { conn: self.conn });
        }
    }

    fn command(&mut self, cmd: Command) -> Effects {
        match cmd {
            Command::Sync { id, sql, reply } => match self.engine.subscribe(id, sql) {
                Ok(fx) => {
                    self.replies.push(Box::new(move || drop(reply.send(Ok(())))));
                    fx
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                    Effects::default()
                }
            },
            Command::Unsync { id, reply } => {
                let fx = self.engine.unsubscribe(&id);
                self.replies.push(Box::new(move || {
                    let _ = reply.send(());
                }));
                fx
            }
            Command::Query { sql, params, reply } => {
                let _ = reply.send(self.engine.query(&sql, &params));
                Effects::default()
            }
            Command::Live { sql, params, updates, reply } => {
                let replica = self.engine.replica();
                let first = LocalQuery::parse(&sql, &params).and_then(|query| LiveView::start(query, replica));
                match first {
                    Ok((view, rs)) => {
                        let id = self.next_live;
                        self.next_live += 1;
                        let _ = updates.unbounded_send(rs);
                        self.lives.push(LiveRegistration { id, view, updates });
                        let _ = reply.send(Ok(id));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
                Effects::default()
            }
            Command::StopLive { id } => {
                self.lives.retain(|l| l.id != id);
                Effects::default()
            }
            Command::Write { ops, reply } => {
                if !self.held.is_empty() || (self.schema_can_arrive() && self.engine.awaits_schema(&ops)) {
                    if self.held.len() >= MAX_HELD_WRITES {
                        let e =
                            format!("{MAX_HELD_WRITES} writes already wait for the columns of a table (see settled())");
                        let _ = reply.send(Err(SyncError::InvalidWrite(e)));
                    } else {
                        self.held.push_back(HeldWrite { ops, reply, since_ms: self.platform.now_ms() });
                    }
                    return Effects::default();
                }
                self.write(ops, reply)
            }
            Command::MutationState { client_id, seq, reply } => {
                let _ = reply.send(self.engine.mutation_state(&client_id, seq));
                Effects::default()
            }
            Command::CrdtCell { table, pk, column, reply } => {
                let _ = reply.send(self.engine.replica().crdt_cell(&table, &pk, &column).map_err(SyncError::from));
                Effects::default()
            }
            Command::Status { reply } => {
                let _ = reply.send(self.engine.status());
                Effects::default()
            }
            Command::Events { sink } => {
                let _ = sink.unbounded_send(SyncEvent::Status(self.engine.status()));
                self.event_sinks.push(sink);
                Effects::default()
            }
            Command::SetOnline { online } => {
                self.want_online = online;
                if online {
                    self.backoff.reset();
                    self.connect();
                    Effects::default()
                } else {
                    // Events of the closed connection must not count for a later one.
                    self.conn += 1;
                    self.connecting = false;
                    self.drop_socket(None)
                }
            }
            Command::Settled { reply } => {
                match &self.failing {
                    // Waiting would only end once a retry succeeds: say why it cannot now.
                    Some(e) if self.socket.is_none() && !self.connected_once => {
                        drop(reply.send(Err(connection_error(e))))
                    }
                    _ => self.settle_waiters.push(reply),
                }
                Effects::default()
            }
            Command::Remote { ops } => self.engine.apply_remote(ops),
            Command::RemoteOutcome { client_id, seq, state } => self.engine.settle_remote(client_id, seq, state),
            Command::Follow { leader } => self.engine.follow(leader),
            Command::Reload { reply } => {
                self.reload = Some(reply);
                Effects::default()
            }
            Command::Close { reply } => {
                self.closed = Some(reply);
                Effects::default()
            }
        }
    }

    fn write(&mut self, ops: Vec<MutationOp>, reply: oneshot::Sender<Result<WriteReceipt, SyncError>>) -> Effects {
        let platform = self.platform.clone();
        let new_key = move || uuid_v7(platform.now_ms(), || platform.random_u32());
        match self.engine.write(ops, self.platform.now_ms(), new_key) {
            Ok((seq, fx)) => {
                let receipt = self.receipt(seq);
                self.replies.push(Box::new(move || drop(reply.send(Ok(receipt)))));
                fx
            }
            Err(e) => {
                let _ = reply.send(Err(e));
                Effects::default()
            }
        }
    }

    /// Whether the columns of a synced table can still arrive: the client is online or
    /// connecting, and not failing to connect before it ever has.
    fn schema_can_arrive(&self) -> bool {
        self.want_online && (self.connected_once || self.failing.is_none())
    }

    /// Writes the held writes, in the order they were made, up to the first that still
    /// waits for columns that can arrive.
    fn release_held(&mut self) -> Effects {
        let now = self.platform.now_ms();
        let can_wait = self.schema_can_arrive();
        let mut fx = Effects::default();
        while let Some(h) = self.held.front() {
            if can_wait && now - h.since_ms < HOLD_WRITE_MS && self.engine.awaits_schema(&h.ops) {
                break;
            }
            if let Some(h) = self.held.pop_front() {
                fx.absorb(self.write(h.ops, h.reply));
            }
        }
        fx
    }

    fn receipt(&self, seq: u64) -> WriteReceipt {
        let entry = self.engine.replica().outbox().get(self.engine.client_id(), seq);
        let inserted_keys = entry
            .map(|e| {
                e.ops
                    .iter()
                    .filter(|op| op.op == MutationKind::Insert)
                    .filter_map(|op| {
                        let pk = self.engine.replica().primary_key(&op.table)?;
                        op.row.as_ref()?.get(pk).cloned()
                    })
                    .collect()
            })
            .unwrap_or_default();
        WriteReceipt { client_id: self.engine.client_id().to_string(), seq, inserted_keys }
    }

    /// Commit, then send, then notify.
    async fn perform(&mut self, fx: Effects) {
        if !fx.commit.is_empty()
            && let Err(e) = self.store.commit_applied(fx.commit, self.engine.replica()).await
        {
            // Memory is ahead of the store now; stop syncing so nothing builds on it.
            let mut fx2 = self.drop_socket(Some(e.to_string()));
            self.want_online = false;
            fx2.events
                .push(SyncEvent::Error { code: crate::protocol::ErrorCode::InternalError, message: e.to_string() });
            self.notify(fx2.events);
            for reply in self.replies.drain(..) {
                reply();
            }
            return;
        }
        if let Some(socket) = &self.socket {
            for msg in fx.send {
                let text = serde_json::to_string(&msg).expect("client frames serialize");
                if socket.send(text).is_err() {
                    break; // the Closed event follows and everything is resent after reconnecting
                }
            }
        }
        for reply in self.replies.drain(..) {
            reply();
        }
        self.refresh_live(&fx.touched, &fx.changes);
        self.notify(fx.events);
        if !self.settle_waiters.is_empty() {
            let s = self.engine.status();
            if s.online && !s.syncing && s.pending_writes == 0 && self.held.is_empty() {
                for w in self.settle_waiters.drain(..) {
                    let _ = w.send(Ok(()));
                }
            }
        }
    }

    fn notify(&mut self, events: Vec<SyncEvent>) {
        if events.is_empty() {
            return;
        }
        self.event_sinks.retain(|sink| events.iter().all(|e| sink.unbounded_send(e.clone()).is_ok()));
    }

    /// Brings every live query on a touched table up to date (all before any result is sent,
    /// so no two show different moments of the replica) and sends the results that changed.
    fn refresh_live(&mut self, touched: &std::collections::HashSet<String>, changes: &RowChanges) {
        if touched.is_empty() {
            return;
        }
        let replica = self.engine.replica();
        let results: Vec<Option<ResultSet>> =
            self.lives.iter_mut().map(|l| l.view.refresh(replica, touched, changes)).collect();
        let mut results = results.into_iter();
        self.lives.retain(|l| match results.next().flatten() {
            Some(rs) => l.updates.unbounded_send(rs).is_ok(),
            None => !l.updates.is_closed(),
        });
    }

    fn shutdown(&mut self) {
        self.conn += 1;
        if let Some(s) = self.socket.take() {
            s.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ColumnInfo;
    use crate::store::{MemoryStore, StoreOp, SubscriptionId, SubscriptionRecord, pk_key};
    use crate::sync::LiveQuery;
    use crate::sync::platform::SocketEvent;
    use futures::channel::mpsc::UnboundedSender;
    use futures::future::LocalBoxFuture;
    use serde_json::{Value, json};
    use std::time::Duration;

    /// A platform that never connects: the client works on its replica alone.
    struct Offline;

    impl Platform for Offline {
        fn connect(
            &self,
            _url: &str,
            _conn: u64,
            _events: UnboundedSender<SocketEvent>,
        ) -> LocalBoxFuture<'static, Result<Box<dyn Socket>, String>> {
            Box::pin(async { Err("offline".to_string()) })
        }
        fn spawn(&self, task: LocalBoxFuture<'static, ()>) {
            tokio::task::spawn_local(task);
        }
        fn sleep(&self, ms: u64) -> LocalBoxFuture<'static, ()> {
            Box::pin(tokio::time::sleep(Duration::from_millis(ms)))
        }
        fn now_ms(&self) -> f64 {
            0.0
        }
        fn random_u32(&self) -> u32 {
            7
        }
    }

    /// A store holding `app.lists` and `app.todos` as a previous session synced them.
    async fn synced_store() -> MemoryStore {
        let store = MemoryStore::new();
        let sub = |id: &str, columns: &[(&str, &str)]| {
            StoreOp::PutSubscription(SubscriptionRecord {
                id: SubscriptionId(id.into()),
                sql: format!("SELECT * FROM app.{id}"),
                table: format!("app.{id}"),
                cursor: Some(1),
                schema: columns.iter().map(|(n, t)| ColumnInfo::new(*n, *t)).collect(),
                primary_key: Some("id".into()),
                complete: true,
                rows_loaded: 0,
                last_synced_ms: None,
            })
        };
        let row = |id: &str, row: Value| StoreOp::PutRow {
            sub: SubscriptionId(id.into()),
            pk: pk_key(&row["id"]),
            row: row.as_object().unwrap().clone().into(),
        };
        store
            .commit(vec![
                sub("lists", &[("id", "TEXT"), ("name", "TEXT")]),
                sub("todos", &[("id", "TEXT"), ("list_id", "TEXT"), ("done", "BOOLEAN")]),
                row("lists", json!({"id": "l1", "name": "Home"})),
                row("todos", json!({"id": "t1", "list_id": "l1", "done": false})),
            ])
            .await
            .unwrap();
        store
    }

    async fn next_rows(live: &mut LiveQuery) -> Vec<Vec<Value>> {
        tokio::time::timeout(Duration::from_secs(5), live.next())
            .await
            .expect("a live result")
            .unwrap()
            .rows
            .into_iter()
            .collect()
    }

    fn obj(v: Value) -> crate::store::Row {
        v.as_object().unwrap().clone()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_live_join_follows_writes_to_each_table_it_reads() {
        tokio::task::LocalSet::new()
            .run_until(async {
                let mut config = ClientConfig::new("ws://127.0.0.1:9/v1/ws");
                config.online = false;
                let tokens: TokenSource = Box::new(|| Box::pin(async { Ok("token".to_string()) }));
                let client = start(config, Offline, synced_store().await, tokens);
                let mut live = client
                    .live(
                        "SELECT l.name, count(t.id) AS open FROM app.lists l \
                         LEFT JOIN app.todos t ON t.list_id = l.id AND NOT t.done GROUP BY l.name ORDER BY l.name",
                        vec![],
                    )
                    .await
                    .unwrap();
                assert_eq!(next_rows(&mut live).await, vec![vec![json!("Home"), json!(1)]]);

                client.insert("app.todos", obj(json!({"id": "t2", "list_id": "l1", "done": false}))).await.unwrap();
                assert_eq!(next_rows(&mut live).await, vec![vec![json!("Home"), json!(2)]]);

                client.insert("app.lists", obj(json!({"id": "l2", "name": "Work"}))).await.unwrap();
                assert_eq!(
                    next_rows(&mut live).await,
                    vec![vec![json!("Home"), json!(2)], vec![json!("Work"), json!(0)]]
                );

                client.update("app.todos", json!("t1"), obj(json!({"done": true}))).await.unwrap();
                assert_eq!(
                    next_rows(&mut live).await,
                    vec![vec![json!("Home"), json!(1)], vec![json!("Work"), json!(0)]]
                );

                // A write that does not change the result is not reported.
                client.insert("app.todos", obj(json!({"id": "t3", "list_id": "l9", "done": false}))).await.unwrap();
                client.update("app.lists", json!("l2"), obj(json!({"name": "Office"}))).await.unwrap();
                assert_eq!(
                    next_rows(&mut live).await,
                    vec![vec![json!("Home"), json!(1)], vec![json!("Office"), json!(0)]]
                );
                client.close().await;
            })
            .await;
    }
}
