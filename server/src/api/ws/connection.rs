//! One WebSocket connection: authentication, framing, limits, heartbeat, and the
//! subscriptions it owns.
//!
//! [`serve`] splits a socket in two tasks. The [`Connection`] reads client frames and does
//! the work they ask for (planning, initial loads, mutations) on the query runtime; the
//! [`SocketWriter`] writes on the I/O runtime, taking the connection's frames and the
//! fan-out's change events (see its module for how the two are ordered). Either ending ends
//! the other.

use crate::api::ws::mutations;
use crate::api::ws::socket_writer::{self, SocketWriter, WriterCommand};
use crate::auth::{Principal, TokenGrant};
use crate::budget::ConnectionPermit;
use crate::clock::now_micros;
use crate::database::Database;
use crate::error::{KalamError, Result};
use crate::live::catchup::{CatchUp, LoadSnapshot, MAX_BATCH_SIZE, stream_batches};
use crate::live::registry::{ConnectionSignal, LiveSubscription, Outgoing};
use crate::schema::TableKind;
use crate::sql::ExecContext;
use crate::sql::context::Origin;
use axum::extract::ws::{Message, WebSocket};
use futures::StreamExt;
use kalamdb_client_core::protocol::UserInfo;
use kalamdb_client_core::protocol::ws::{ClientMessage, ServerMessage, Subscribe};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Longest client-chosen subscription id.
const MAX_SUBSCRIPTION_ID: usize = 128;
/// How long a subscription waits for this cluster node to reach the cursor it resumes from.
const CURSOR_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why a connection ends (sent as the close frame's reason).
enum Close {
    ClientGone,
    Policy(&'static str),
    /// The client should connect again (it resumes from its cursors).
    Reconnect(&'static str),
}

/// Where a socket comes from.
pub(crate) enum Arrival {
    /// A client of this node.
    Client,
    /// A client of another node, which does not store the client's user's data (spread
    /// storage) and relays its frames: served here, never handed on again.
    HandedOver,
}

/// Serves one upgraded socket until either side closes it. Call on the I/O runtime: the
/// writer runs here, the connection on the query runtime. With spread storage, a client
/// whose `auth` frame names a user whose data this node does not store is relayed to a node
/// that does ([`super::tunnel`]).
pub(crate) async fn serve(db: Arc<Database>, mut socket: WebSocket, arrival: Arrival) {
    let auth_deadline = tokio::time::Instant::now() + Duration::from_secs(db.config.live.auth_timeout_secs);
    let mut first = None;
    if matches!(arrival, Arrival::Client) && db.committer.placement().shared_apart() {
        match tokio::time::timeout_at(auth_deadline, socket.next()).await {
            Ok(Some(Ok(message))) => {
                if let Some(group) = super::tunnel::group_elsewhere(&db, &message) {
                    return super::tunnel::relay(&db, socket, message, group).await;
                }
                first = Some(message);
            }
            Ok(_) => return,
            // The connection below answers the missing `auth` frame at once.
            Err(_) => {}
        }
    }
    let (sink, stream) = socket.split();
    let stream = futures::stream::iter(first.map(Ok)).chain(stream).boxed();
    let (fanout_tx, fanout_rx) = mpsc::channel(db.config.live.send_queue);
    let (commands_tx, commands_rx) = mpsc::channel(WRITER_QUEUE);
    let signal = Arc::new(ConnectionSignal::default());
    let writer =
        SocketWriter::new(sink, commands_rx, fanout_rx, signal.clone(), db.live.clone(), db.config.live.send_queue);
    let handed_over = matches!(arrival, Arrival::HandedOver);
    let connection = Connection::new(db.clone(), fanout_tx, commands_tx, signal, handed_over);
    let connection = db.runtime.spawn(connection.run(stream, auth_deadline));
    writer.run().await;
    let _ = connection.await;
}

/// Frames the connection may have handed to its writer before it waits (initial loads
/// wait here for a slow client instead of piling up in memory).
const WRITER_QUEUE: usize = 16;

/// The socket is gone (its writer has stopped).
struct Gone;

struct Connection {
    db: Arc<Database>,
    id: String,
    /// The accepted token; its user is checked against the catalog before each use.
    grant: Option<TokenGrant>,
    /// Counts this connection against its user's limit while it is open.
    permit: Option<ConnectionPermit>,
    subs: HashMap<String, Arc<LiveSubscription>>,
    /// The fan-out's way to this connection's writer (each subscription holds a clone).
    fanout: mpsc::Sender<Outgoing>,
    writer: mpsc::Sender<WriterCommand>,
    signal: Arc<ConnectionSignal>,
    /// Token bucket for incoming frames.
    tokens: f64,
    refilled: Instant,
    last_seen: Instant,
    /// A client of another node, which relays its frames ([`Arrival::HandedOver`]).
    handed_over: bool,
}

type Stream = futures::stream::BoxStream<'static, std::result::Result<Message, axum::Error>>;

impl Connection {
    fn new(
        db: Arc<Database>,
        fanout: mpsc::Sender<Outgoing>,
        writer: mpsc::Sender<WriterCommand>,
        signal: Arc<ConnectionSignal>,
        handed_over: bool,
    ) -> Connection {
        let burst = db.config.live.max_messages_per_second as f64 * 2.0;
        Connection {
            id: ulid::Ulid::new().to_string(),
            db,
            grant: None,
            permit: None,
            subs: HashMap::new(),
            fanout,
            writer,
            signal,
            tokens: burst,
            refilled: Instant::now(),
            last_seen: Instant::now(),
            handed_over,
        }
    }

    /// Reads client frames until the client leaves, the writer stops, or a policy closes
    /// the connection; then removes its subscriptions.
    async fn run(mut self, mut stream: Stream, auth_deadline: tokio::time::Instant) {
        let cfg = self.db.config.live.clone();
        let auth_deadline = tokio::time::sleep_until(auth_deadline);
        tokio::pin!(auth_deadline);
        let mut heartbeat = tokio::time::interval(Duration::from_secs(cfg.heartbeat_secs));
        heartbeat.tick().await;
        let writer = self.writer.clone();
        let close: std::result::Result<Close, Gone> = loop {
            tokio::select! {
                _ = writer.closed() => break Err(Gone),
                incoming = stream.next() => {
                    let msg = match incoming {
                        Some(Ok(m)) => m,
                        _ => break Ok(Close::ClientGone),
                    };
                    self.last_seen = Instant::now();
                    match msg {
                        Message::Text(text) => {
                            if !self.take_token() {
                                let e = KalamError::RateLimited(format!(
                                    "more than {} frames per second", cfg.max_messages_per_second));
                                if self.send(&error_frame(None, &e)).await.is_err() { break Err(Gone); }
                                continue;
                            }
                            match self.handle_text(text.as_str()).await {
                                Ok(None) => {}
                                Ok(Some(close)) => break Ok(close),
                                Err(Gone) => break Err(Gone),
                            }
                        }
                        Message::Binary(_) => {
                            let e = KalamError::InvalidRequest("binary frames are not supported; send JSON text".into());
                            if self.send(&error_frame(None, &e)).await.is_err() { break Err(Gone); }
                        }
                        Message::Close(_) => break Ok(Close::ClientGone),
                        Message::Ping(_) | Message::Pong(_) => {}
                    }
                }
                _ = self.signal.account_notify.notified() => {
                    if self.signal.account_changed.swap(false, Ordering::SeqCst) && self.grant.is_some() {
                        match self.account_changed().await {
                            Ok(None) => {}
                            Ok(Some(close)) => break Ok(close),
                            Err(Gone) => break Err(Gone),
                        }
                    }
                }
                _ = &mut auth_deadline, if self.grant.is_none() => {
                    let e = KalamError::Unauthorized("no auth frame received in time".into());
                    let _ = self.send(&error_frame(None, &e)).await;
                    break Ok(Close::Policy("authentication timeout"));
                }
                _ = heartbeat.tick() => {
                    if self.last_seen.elapsed() > Duration::from_secs(cfg.idle_timeout_secs) {
                        break Ok(Close::Policy("idle timeout"));
                    }
                    if self.moved_elsewhere() {
                        break Ok(Close::Reconnect("this user's data moved to other nodes; reconnect"));
                    }
                    if self.grant.as_ref().is_some_and(|g| now_micros() / 1_000_000 > g.expires) {
                        let e = KalamError::Unauthorized("token expired; send a new auth frame before expiry".into());
                        let _ = self.send(&error_frame(None, &e)).await;
                        break Ok(Close::Policy("token expired"));
                    }
                    if self.writer.send(WriterCommand::Ping).await.is_err() { break Err(Gone); }
                }
            }
        };
        for sub in self.subs.values() {
            sub.end();
            self.db.live.unregister(&sub.live_id);
        }
        let close = match close {
            Ok(Close::Policy(reason)) => Some((socket_writer::POLICY, reason)),
            Ok(Close::Reconnect(reason)) => Some((socket_writer::RECONNECT, reason)),
            _ => None,
        };
        if let Some((code, reason)) = close {
            let _ = self.writer.send(WriterCommand::Close(code, reason)).await;
        }
    }

    /// With spread storage: whether this node has stopped storing the connection's user
    /// (a change of the cluster's members moved their group away). Its subscriptions would
    /// get no more changes here, so the client is told to reconnect (within a heartbeat),
    /// and is then relayed to a node that stores the user, where it resumes from its
    /// cursors.
    fn moved_elsewhere(&self) -> bool {
        let (Some(grant), Some(replication)) = (&self.grant, self.db.replication()) else { return false };
        if !self.db.committer.placement().shared_apart() {
            return false;
        }
        let user = crate::ids::Partition::User(grant.principal.user_id);
        !replication.stores(replication.group_of(crate::ids::TableId(0), user))
    }

    /// Hands a frame to the writer, serialized here (initial loads are large).
    async fn send(&self, frame: &ServerMessage) -> std::result::Result<(), Gone> {
        let text = serde_json::to_string(frame).map_err(|_| Gone)?;
        self.writer.send(WriterCommand::Frame(text)).await.map_err(|_| Gone)
    }

    /// The subscriptions this connection still serves (the writer ends those the server
    /// killed or whose table changed).
    fn current_subs(&mut self) -> &mut HashMap<String, Arc<LiveSubscription>> {
        self.subs.retain(|_, sub| sub.is_current());
        &mut self.subs
    }

    fn take_token(&mut self) -> bool {
        let rate = self.db.config.live.max_messages_per_second as f64;
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.refilled).as_secs_f64() * rate).min(rate * 2.0);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Handles one client frame.
    async fn handle_text(&mut self, text: &str) -> std::result::Result<Option<Close>, Gone> {
        let msg: ClientMessage = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                let e = KalamError::InvalidRequest(format!("invalid frame: {e}"));
                self.send(&error_frame(None, &e)).await?;
                return Ok(None);
            }
        };
        match msg {
            ClientMessage::Auth { token } => match self.authenticate(&token) {
                Ok(frame) => self.send(&frame).await?,
                Err(e) => {
                    self.send(&error_frame(None, &e)).await?;
                    return Ok(Some(Close::Policy("authentication failed")));
                }
            },
            _ if self.grant.is_none() => {
                let e = KalamError::Unauthorized("send an auth frame first".into());
                self.send(&error_frame(None, &e)).await?;
                return Ok(Some(Close::Policy("not authenticated")));
            }
            ClientMessage::Ping { nonce } => self.send(&ServerMessage::Pong { nonce }).await?,
            ClientMessage::Subscribe(s) => {
                let id = s.id.clone();
                if let Err(e) = self.subscribe(s).await {
                    match e {
                        SubscribeError::Socket => return Err(Gone),
                        SubscribeError::Revoked => return Ok(Some(Close::Policy("credentials revoked"))),
                        SubscribeError::Kalam(e) => self.send(&error_frame(Some(id), &e)).await?,
                    }
                }
            }
            ClientMessage::Unsubscribe { id } => match self.current_subs().remove(&id) {
                Some(sub) => {
                    sub.end();
                    self.db.live.unregister(&sub.live_id);
                    self.send(&ServerMessage::Unsubscribed { id }).await?;
                }
                None => {
                    let e = KalamError::Validation(format!("no subscription with id '{id}'"));
                    self.send(&error_frame(Some(id), &e)).await?;
                }
            },
            ClientMessage::Mutate(m) => {
                let principal = match self.current_principal().await? {
                    Ok(p) => p,
                    Err(close) => return Ok(Some(close)),
                };
                // Counted with the user's HTTP statements (waits its turn; never refused, so a
                // client's outbox is not rejected for being busy).
                let _turn = self.db.admission.wait_for_statement(principal.user_id).await;
                let result = mutations::apply(&self.db, &principal, m).await;
                self.send(&ServerMessage::MutateResult(result)).await?;
            }
        }
        Ok(None)
    }

    /// Accepts a first token, or renews it in place (same user only).
    fn authenticate(&mut self, token: &str) -> Result<ServerMessage> {
        let grant = self.db.auth.grant(token)?;
        let principal = grant.principal.clone();
        match &self.grant {
            Some(current) if current.principal.user_id != principal.user_id => {
                return Err(KalamError::Unauthorized("a renewed token must belong to the same user".into()));
            }
            Some(_) => {}
            None => {
                self.permit = Some(self.db.admission.connection(principal.user_id)?);
                self.db.live.watch_account(principal.user_id, &self.signal);
            }
        }
        let expires = grant.expires;
        self.grant = Some(grant);
        let user =
            UserInfo { id: principal.user_id.to_string(), username: principal.username.clone(), role: principal.role };
        Ok(ServerMessage::AuthOk { user, expires_at: crate::values::format_timestamp(expires * 1_000_000) })
    }

    /// The connection's user as they are now. If the account was dropped or its password
    /// changed, the client is told and the connection closes (`Err`); a changed role applies
    /// from here on. `Ok(Err)` carries the close; the outer `Err` is a gone socket.
    async fn current_principal(&mut self) -> std::result::Result<std::result::Result<Principal, Close>, Gone> {
        let grant = self.grant.as_mut().expect("authenticated");
        match self.db.auth.recheck(grant) {
            Ok(principal) => {
                grant.principal = principal.clone();
                Ok(Ok(principal))
            }
            Err(e) => {
                self.send(&error_frame(None, &e)).await?;
                Ok(Err(Close::Policy("credentials revoked")))
            }
        }
    }

    /// After an account change: closes the connection if its credentials are gone, or ends
    /// the subscriptions the user's new role no longer allows.
    async fn account_changed(&mut self) -> std::result::Result<Option<Close>, Gone> {
        let principal = match self.current_principal().await? {
            Ok(p) => p,
            Err(close) => return Ok(Some(close)),
        };
        self.current_subs();
        let cx = ExecContext { db: &self.db, principal, namespace: None, params: &[], origin: Origin::Client };
        let revoked: Vec<(String, KalamError)> = self
            .subs
            .iter()
            .filter_map(|(id, sub)| cx.check_read(&sub.query.table).err().map(|e| (id.clone(), e)))
            .collect();
        for (id, e) in revoked {
            if let Some(sub) = self.subs.remove(&id) {
                sub.end();
                self.db.live.unregister(&sub.live_id);
            }
            self.send(&error_frame(Some(id), &e)).await?;
        }
        Ok(None)
    }

    async fn subscribe(&mut self, s: Subscribe) -> std::result::Result<(), SubscribeError> {
        let limits = self.db.config.live.clone();
        if s.id.is_empty() || s.id.len() > MAX_SUBSCRIPTION_ID {
            return Err(
                KalamError::Validation(format!("subscription id must be 1-{MAX_SUBSCRIPTION_ID} characters")).into()
            );
        }
        if self.current_subs().contains_key(&s.id) {
            return Err(KalamError::AlreadyExists(format!(
                "subscription '{}' already exists on this connection",
                s.id
            ))
            .into());
        }
        if self.subs.len() >= limits.max_subscriptions_per_connection {
            return Err(KalamError::TooLarge(format!(
                "at most {} subscriptions per connection",
                limits.max_subscriptions_per_connection
            ))
            .into());
        }
        if s.batch_size.is_some_and(|b| b == 0 || b as usize > MAX_BATCH_SIZE) {
            return Err(KalamError::Validation(format!("batch_size must be between 1 and {MAX_BATCH_SIZE}")).into());
        }
        let principal = match self.current_principal().await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(SubscribeError::Revoked),
            Err(Gone) => return Err(SubscribeError::Socket),
        };
        let cx = ExecContext {
            db: &self.db,
            principal: principal.clone(),
            namespace: None,
            params: &[],
            origin: Origin::Client,
        };
        let query = crate::sql::subscription::plan(&cx, &s.sql)?;
        let sub = Arc::new(LiveSubscription {
            live_id: format!("{}-{}", self.id, s.id),
            id: s.id.clone(),
            connection_id: self.id.clone(),
            user_id: principal.user_id,
            username: principal.username.clone(),
            sql: s.sql.clone(),
            options: serde_json::json!({"since": s.since, "last_rows": s.last_rows, "batch_size": s.batch_size}),
            created_at: now_micros(),
            updated_at: AtomicI64::new(now_micros()),
            changes: AtomicU64::new(0),
            loading: AtomicBool::new(true),
            ended: AtomicBool::new(false),
            query,
            sender: self.fanout.clone(),
            signal: self.signal.clone(),
        });
        // Registration and the snapshot the initial load reads happen under the commit lock:
        // the load sees exactly the commits up to the watermark, the live tail all after it.
        let live = self.db.live.clone();
        let store = self.db.store.clone();
        let streams = self.db.streams.clone();
        let stream_key =
            (sub.query.table.kind == TableKind::Stream).then_some((sub.query.table.id, sub.query.partition));
        let tier = match stream_key {
            Some(_) => None,
            None => Some(self.db.cold.partition(&sub.query.table, sub.query.partition).await?),
        };
        let committer = &self.db.committer;
        let group = committer.group_of(sub.query.table.id, sub.query.partition);
        // A client of another node may have written through it just before: that node had
        // its writes applied by the group's leader, not necessarily here yet. The load
        // starts from where the group's leader stands.
        if let (true, Some(replication), None) = (self.handed_over, self.db.replication(), stream_key) {
            replication.group_barrier(crate::replication::raft_group(group)).await?;
        }
        // In a cluster, a client moving from another node may hold a cursor this node has not
        // applied yet (followers apply the log a little behind): wait for it, bounded, rather
        // than take the cursor for one from the future (which means a full reload).
        if let (Some(since), Some(_), None) = (s.since, self.db.replication(), stream_key) {
            let deadline = tokio::time::Instant::now() + CURSOR_WAIT;
            while committer.at_watermark(group, |w| w) < since && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        let registered = committer.at_watermark(group, |w| {
            // Planned just before an ALTER TABLE: the fan-out has already dropped the
            // table's subscriptions, so this one must not join it.
            if !committer.is_current(&sub.query.table) {
                return None;
            }
            live.register(sub.clone());
            let events = stream_key.map(|(t, p)| streams.read(t, p, s.since.unwrap_or(i64::MIN), w));
            Some((w, store.db().snapshot(), tier.as_ref().map(|c| c.snapshot()).unwrap_or_default(), events))
        });
        let Some((watermark, snapshot, cold, events)) = registered else {
            let table = &sub.query.table;
            let current = self.db.catalog.table(&table.namespace, &table.name).filter(|t| t.id == table.id);
            let schema_version = current.map_or(table.schema_version + 1, |t| t.schema_version);
            let changed = ServerMessage::SchemaChanged { id: s.id.clone(), schema_version };
            return self.send(&changed).await.map_err(|_| SubscribeError::Socket);
        };
        self.subs.insert(s.id.clone(), sub.clone());
        let subscribed = ServerMessage::Subscribed {
            id: s.id.clone(),
            live_id: sub.live_id.clone(),
            schema: sub.query.schema(),
            primary_key: sub.query.table.pk().name.clone(),
        };
        self.send(&subscribed).await.map_err(|_| SubscribeError::Socket)?;
        let loaded = match events {
            Some(events) => self.stream_load(&sub, &s, &events, watermark).await,
            None => {
                let view = LoadSnapshot {
                    store: &self.db.store,
                    hot: &snapshot,
                    cold: &cold,
                    tier: tier.as_deref().map(|t| (&*self.db.cold, t)),
                    watermark,
                };
                self.initial_load(&sub, &s, &view).await
            }
        };
        drop(snapshot);
        if loaded.is_err() {
            self.subs.remove(&s.id);
            sub.end();
            self.db.live.unregister(&sub.live_id);
        }
        // Its changes waiting in the writer follow the load (or are dropped if it failed).
        self.writer.send(WriterCommand::Loaded(sub)).await.map_err(|_| SubscribeError::Socket)?;
        loaded
    }

    /// Sends the buffered events of a STREAM subscription.
    async fn stream_load(
        &self,
        sub: &LiveSubscription,
        s: &Subscribe,
        events: &[crate::storage::row_codec::StoredRow],
        watermark: i64,
    ) -> std::result::Result<(), SubscribeError> {
        for frame in stream_batches(&sub.query, &s.id, events, s.last_rows, s.batch_size, watermark)? {
            self.send(&frame).await.map_err(|_| SubscribeError::Socket)?;
        }
        Ok(())
    }

    /// Sends the initial batches as they are read; live changes wait in the writer meanwhile
    /// (their cursors are all above the watermark) and follow the last batch.
    async fn initial_load(
        &self,
        sub: &LiveSubscription,
        s: &Subscribe,
        view: &LoadSnapshot<'_, '_>,
    ) -> std::result::Result<(), SubscribeError> {
        let scheduler = &self.db.scheduler;
        let mut load = {
            let _slot = scheduler.acquire(sub.user_id).await;
            CatchUp::new(view, &sub.query, s).await?
        };
        // Each batch is read and filtered under a CPU slot of the fair scheduler.
        loop {
            let frame = {
                let _slot = scheduler.acquire(sub.user_id).await;
                load.next_batch(view, &sub.query).await?
            };
            let Some(frame) = frame else { return Ok(()) };
            self.send(&frame).await.map_err(|_| SubscribeError::Socket)?;
        }
    }
}

enum SubscribeError {
    Kalam(KalamError),
    Socket,
    /// The user's credentials were revoked (the client has been told).
    Revoked,
}

impl From<KalamError> for SubscribeError {
    fn from(e: KalamError) -> Self {
        SubscribeError::Kalam(e)
    }
}

fn error_frame(id: Option<String>, e: &KalamError) -> ServerMessage {
    if e.code() == kalamdb_client_core::protocol::ErrorCode::InternalError {
        tracing::error!(error = %e.report(), "internal error on a WebSocket");
    }
    ServerMessage::Error { id, code: e.code(), message: e.public_message() }
}
