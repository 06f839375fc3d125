//! The sync state machine, free of I/O.
//!
//! [`SyncEngine`] takes inputs — a server frame, a connection that opened or dropped, a local
//! write, a new subscription — updates the in-memory [`Replica`] and returns [`Effects`]: store
//! operations to commit, frames to send and events to report. The driver
//! ([`super::driver`]) performs them in that order: commit first, then send, then notify, so a
//! frame is never sent for a write that is not durable yet.

use super::status::{MutationState, SyncEvent, SyncStatus};
use crate::protocol::ws::{
    ChangeOp, ClientMessage, Cursor, Mutate, MutateResult, MutationKind, MutationOp, MutationStatus, ServerMessage,
    Subscribe,
};
use crate::protocol::{ColumnInfo, ErrorCode};
use crate::query::{self, LocalQuery, LocalQueryError, ResultSet, SubscriptionError};
use crate::replica::{META_USER, Replica, ReplicaError, RowChanges, RowColumns, typed_values};
use crate::store::{Confirmed, OpRow, OutboxEntry, Row, Snapshot, StoreOp, SubscriptionId, SubscriptionRecord, pk_key};
use crate::sync::schema_change::RowMigration;
use kalamdb_query::DataType;
use kalamdb_query::json::from_json;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

const META_CLIENT_ID: &str = "client_id";
const META_NEXT_SEQ: &str = "next_seq";

/// What the driver must do after an input.
#[derive(Debug, Default)]
pub struct Effects {
    /// Commit these atomically, before anything else.
    pub commit: Vec<StoreOp>,
    /// Then send these, in order.
    pub send: Vec<ClientMessage>,
    /// Then report these.
    pub events: Vec<SyncEvent>,
    /// Tables whose view changed (live queries on them must be brought up to date).
    pub touched: HashSet<String>,
    /// How the rows of tables local queries read changed: what live queries are fed.
    pub changes: RowChanges,
}

impl Effects {
    /// Combines the effects of several inputs handled before one commit.
    pub fn absorb(&mut self, other: Effects) {
        self.commit.extend(other.commit);
        self.send.extend(other.send);
        self.events.extend(other.events);
        self.touched.extend(other.touched);
        self.changes.absorb(other.changes);
    }
}

/// Errors of local operations (the server's verdicts arrive as events instead).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SyncError {
    /// A local query failed.
    #[error(transparent)]
    Query(#[from] LocalQueryError),
    /// A subscription's SQL was refused before it reached the server.
    #[error(transparent)]
    Subscription(#[from] SubscriptionError),
    /// The replica cannot show what was asked (a CRDT cell of a table that is not synced).
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    #[error("invalid write: {0}")]
    InvalidWrite(String),
    #[error("subscription '{0}' already exists with a different query")]
    SubscriptionConflict(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("the client is closed")]
    Closed,
    #[error("server: {code}: {message}")]
    Server { code: ErrorCode, message: String },
    /// The client cannot connect (see [`ConnectError`](super::platform::ConnectError)):
    /// what waits for the server fails with it rather than wait while retries fail.
    #[error("connection: {code}: {message}")]
    Connection { code: String, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Offline,
    /// Socket open, `auth` sent, waiting for `auth_ok`.
    Authenticating,
    Online,
}

/// The sync state machine for one replica.
pub struct SyncEngine {
    replica: Replica,
    client_id: String,
    next_seq: u64,
    link: Link,
    /// Subscriptions whose initial load or catch-up is running on this connection.
    loading: HashSet<SubscriptionId>,
    /// Outcomes of settled mutations, kept for `mutation_state` (bounded).
    settled: BTreeMap<(String, u64), MutationState>,
    last_error: Option<String>,
    /// The client id belongs to this session alone (one of several tabs sharing the store), so
    /// it and its sequence numbers stay out of the store's shared meta.
    session_id: bool,
    /// While another tab leads sync for the shared store: its status, reported as this one's.
    leader_status: Option<SyncStatus>,
}

const SETTLED_KEPT: usize = 1000;
/// How long a confirmed write keeps showing while its change has not arrived.
const CHANGE_WAIT_MS: f64 = 3000.0;

impl SyncEngine {
    /// Restores the engine from a store snapshot. `fresh_client_id` names this replica's
    /// writes if the store has none yet.
    pub fn new(snapshot: Snapshot, fresh_client_id: impl FnOnce() -> String) -> (Self, Vec<StoreOp>) {
        let replica = Replica::from_snapshot(snapshot);
        let mut init = Vec::new();
        let client_id = match replica.meta(META_CLIENT_ID).and_then(Value::as_str) {
            Some(id) => id.to_string(),
            None => {
                let id = fresh_client_id();
                init.push(StoreOp::PutMeta { key: META_CLIENT_ID.into(), value: Value::String(id.clone()) });
                id
            }
        };
        let stored_seq = replica.meta(META_NEXT_SEQ).and_then(Value::as_u64).unwrap_or(1);
        let next_seq = own_next_seq(&replica, &client_id, stored_seq);
        let mut engine = Self::from_parts(replica, client_id, next_seq, false);
        engine.replica.apply(&init);
        (engine, init)
    }

    /// Restores the engine from a snapshot of a store that several sessions (browser tabs)
    /// share, under `client_id`, which is this session's alone: it is not read from or written
    /// to the store's meta, and its sequence numbers continue after its entries in the outbox.
    pub fn with_session_client_id(snapshot: Snapshot, client_id: String) -> Self {
        let replica = Replica::from_snapshot(snapshot);
        let next_seq = own_next_seq(&replica, &client_id, 1);
        Self::from_parts(replica, client_id, next_seq, true)
    }

    fn from_parts(replica: Replica, client_id: String, next_seq: u64, session_id: bool) -> Self {
        SyncEngine {
            replica,
            client_id,
            next_seq,
            link: Link::Offline,
            loading: HashSet::new(),
            settled: BTreeMap::new(),
            last_error: None,
            session_id,
            leader_status: None,
        }
    }

    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn is_online(&self) -> bool {
        self.link == Link::Online
    }

    fn commit(&mut self, fx: &mut Effects, ops: Vec<StoreOp>) {
        fx.changes.absorb(self.replica.apply(&ops));
        fx.commit.extend(ops);
    }

    pub fn status(&self) -> SyncStatus {
        if let Some(leader) = &self.leader_status {
            // The outbox is shared, but this replica sees its own writes before the leader does.
            return SyncStatus { pending_writes: self.replica.outbox().len(), ..leader.clone() };
        }
        let subs: Vec<&SubscriptionRecord> = self.replica.subscriptions().collect();
        SyncStatus {
            online: self.link == Link::Online,
            syncing: !self.loading.is_empty() || (self.link == Link::Online && subs.iter().any(|s| !s.complete)),
            pending_writes: self.replica.outbox().len(),
            last_synced_ms: subs.iter().filter_map(|s| s.last_synced_ms).reduce(f64::max),
            first_sync_rows: subs.iter().filter(|s| !s.complete).map(|s| s.rows_loaded).sum(),
            last_error: self.last_error.clone(),
        }
    }

    fn status_changed(&self, fx: &mut Effects) {
        fx.events.push(SyncEvent::Status(self.status()));
    }

    // ---- connection lifecycle -------------------------------------------------------------

    /// A socket opened: authenticate first.
    pub fn on_open(&mut self, token: String) -> Effects {
        self.link = Link::Authenticating;
        Effects { send: vec![ClientMessage::Auth { token }], ..Effects::default() }
    }

    /// The socket closed or failed; everything in flight will be resent after reconnecting.
    pub fn on_close(&mut self, reason: Option<String>) -> Effects {
        let mut fx = Effects::default();
        let was = self.link;
        self.link = Link::Offline;
        self.loading.clear();
        if reason.is_some() {
            self.last_error = reason;
        }
        if was != Link::Offline {
            self.status_changed(&mut fx);
        }
        fx
    }

    /// A token renewal for the open connection.
    pub fn renew(&self, token: String) -> Effects {
        Effects { send: vec![ClientMessage::Auth { token }], ..Effects::default() }
    }

    fn subscribe_frame(rec: &SubscriptionRecord) -> ClientMessage {
        ClientMessage::Subscribe(Subscribe {
            id: rec.id.0.clone(),
            sql: rec.sql.clone(),
            since: rec.cursor,
            last_rows: None,
            batch_size: None,
        })
    }

    fn mutate_frame(e: &OutboxEntry) -> ClientMessage {
        ClientMessage::Mutate(Mutate { client_id: e.client_id.clone(), seq: e.seq, ops: e.ops.clone() })
    }

    // ---- server frames --------------------------------------------------------------------

    pub fn on_message(&mut self, msg: ServerMessage, now_ms: f64) -> Effects {
        let mut fx = Effects::default();
        match msg {
            ServerMessage::AuthOk { user, .. } => {
                if self.link == Link::Authenticating {
                    self.link = Link::Online;
                    self.last_error = None;
                    // Who `current_user()` is in local queries, kept for offline starts.
                    if self.replica.user() != Some(user.username.as_str()) {
                        let name = Value::String(user.username);
                        self.commit(&mut fx, vec![StoreOp::PutMeta { key: META_USER.into(), value: name }]);
                    }
                    let subs: Vec<SubscriptionRecord> = self.replica.subscriptions().cloned().collect();
                    for rec in &subs {
                        self.loading.insert(rec.id.clone());
                        fx.send.push(Self::subscribe_frame(rec));
                    }
                    for e in self.replica.outbox().iter().filter(|e| e.confirmed.is_none()) {
                        fx.send.push(Self::mutate_frame(e));
                    }
                    self.status_changed(&mut fx);
                }
            }
            ServerMessage::Subscribed { id, schema, primary_key, .. } => {
                let id = SubscriptionId(id);
                if let Some(mut rec) = self.record(&id)
                    && (rec.schema != schema || rec.primary_key.as_deref() != Some(primary_key.as_str()))
                {
                    // The table was altered: rewrite the stored rows to the new columns
                    // (keys are primary-key values, which no ALTER changes). The new schema
                    // goes first, so that the replica types the rewritten rows to it.
                    let migration = RowMigration::between(&rec.schema, &schema);
                    let old_rows: Vec<(String, Row)> = match (&migration, self.replica.subscription(&id)) {
                        (Some(_), Some(data)) => data.rows.json_rows().collect(),
                        _ => Vec::new(),
                    };
                    rec.schema = schema;
                    rec.primary_key = Some(primary_key);
                    fx.touched.insert(rec.table.clone());
                    let mut ops = vec![StoreOp::PutSubscription(rec)];
                    if let Some(m) = migration {
                        ops.extend(old_rows.into_iter().map(|(pk, row)| StoreOp::PutRow {
                            sub: id.clone(),
                            pk,
                            row: m.apply(&row).into(),
                        }));
                    }
                    self.commit(&mut fx, ops);
                }
            }
            ServerMessage::SchemaChanged { id, .. } => {
                // The server ended the subscription after its last change under the old
                // schema; subscribing again from the cursor brings the new one.
                let id = SubscriptionId(id);
                if let Some(rec) = self.record(&id)
                    && self.link == Link::Online
                {
                    self.loading.insert(id);
                    fx.send.push(Self::subscribe_frame(&rec));
                    self.status_changed(&mut fx);
                }
            }
            ServerMessage::Batch { id, rows, deleted, cursor, reset, last } => {
                let id = SubscriptionId(id);
                let Some(mut rec) = self.record(&id) else { return fx };
                let mut ops = Vec::with_capacity(rows.len() + deleted.len() + 2);
                if reset {
                    ops.push(StoreOp::ClearRows(id.clone()));
                    rec.rows_loaded = 0;
                    rec.complete = false;
                }
                rec.rows_loaded += rows.len() as u64;
                RowPut::new(&self.replica, &id, &rec).push_ops(rows, &mut ops);
                for pk in deleted {
                    ops.push(StoreOp::DeleteRow { sub: id.clone(), pk: pk_key(&pk) });
                }
                // Cursors never move backwards, except that a reset restarts the history.
                if reset || rec.cursor.is_none_or(|c| cursor >= c) {
                    rec.cursor = Some(cursor);
                }
                if last {
                    rec.complete = true;
                    rec.rows_loaded = 0;
                    self.loading.remove(&id);
                }
                rec.last_synced_ms = Some(now_ms);
                fx.touched.insert(rec.table.clone());
                ops.push(StoreOp::PutSubscription(rec));
                self.commit(&mut fx, ops);
                self.status_changed(&mut fx);
            }
            ServerMessage::Change { id, op, row, cursor, .. } => {
                let id = SubscriptionId(id);
                let Some(mut rec) = self.record(&id) else { return fx };
                if rec.cursor.is_some_and(|c| cursor <= c) {
                    return fx; // already applied (can only happen after a reset race); never go back
                }
                let put = RowPut::new(&self.replica, &id, &rec);
                let mut ops = Vec::with_capacity(2);
                match op {
                    ChangeOp::Insert | ChangeOp::Update => {
                        put.push_ops(vec![row], &mut ops);
                    }
                    ChangeOp::Delete => {
                        if let Some(pk) = put.pk_index.and_then(|i| row.get(i)) {
                            ops.push(StoreOp::DeleteRow { sub: id.clone(), pk: pk_key(pk) });
                        }
                    }
                }
                rec.cursor = Some(cursor);
                rec.last_synced_ms = Some(now_ms);
                fx.touched.insert(rec.table.clone());
                ops.push(StoreOp::PutSubscription(rec));
                self.commit(&mut fx, ops);
            }
            ServerMessage::MutateResult(r) => self.on_mutate_result(r, now_ms, &mut fx),
            ServerMessage::Error { id: Some(id), code, message } => {
                let sub = SubscriptionId(id.clone());
                if self.loading.remove(&sub) {
                    self.status_changed(&mut fx);
                }
                fx.events.push(SyncEvent::SubscriptionError { id: sub, code, message });
            }
            ServerMessage::Error { id: None, code, message } => {
                self.last_error = Some(format!("{code}: {message}"));
                fx.events.push(SyncEvent::Error { code, message });
            }
            ServerMessage::Unsubscribed { .. } | ServerMessage::Pong { .. } => {}
        }
        self.release_confirmed(now_ms, &mut fx);
        fx
    }

    fn record(&self, id: &SubscriptionId) -> Option<SubscriptionRecord> {
        self.replica.subscription(id).and_then(|d| d.record.clone())
    }

    fn on_mutate_result(&mut self, r: MutateResult, now_ms: f64, fx: &mut Effects) {
        let Some(entry) = self.replica.outbox().get(&r.client_id, r.seq).cloned() else {
            return; // settled before (a duplicate reply)
        };
        let state = match r.status {
            MutationStatus::Applied | MutationStatus::Duplicate => MutationState::Applied { cursor: r.cursor },
            MutationStatus::Rejected => MutationState::Rejected {
                code: r.code.unwrap_or(ErrorCode::InternalError),
                reason: r.reason.unwrap_or_default(),
            },
        };
        match (&state, r.cursor) {
            // The change travels separately from this answer and may come after it: until
            // it does, the entry goes on showing the write, which otherwise would vanish
            // from local queries in between.
            (MutationState::Applied { .. }, Some(cursor)) if self.awaits_change(&r.tables) => {
                let confirmed = Some(Confirmed { cursor, tables: r.tables, at_ms: now_ms });
                self.commit(fx, vec![StoreOp::PutOutbox(OutboxEntry { confirmed, ..entry })]);
            }
            _ => {
                fx.touched.extend(entry.ops.iter().map(|op| op.table.clone()));
                self.commit(fx, vec![StoreOp::DeleteOutbox { client_id: r.client_id.clone(), seq: r.seq }]);
            }
        }
        self.settled.insert((r.client_id.clone(), r.seq), state.clone());
        while self.settled.len() > SETTLED_KEPT {
            self.settled.pop_first();
        }
        fx.events.push(SyncEvent::Mutation { client_id: r.client_id, seq: r.seq, state });
        self.status_changed(fx);
    }

    /// Whether a subscription of a table a write changed (up to the cursor `tables` gives)
    /// has not reached that cursor yet: the write's change may still be on its way to it.
    fn awaits_change(&self, tables: &BTreeMap<String, Cursor>) -> bool {
        self.replica
            .subscriptions()
            .any(|s| tables.get(&s.table).is_some_and(|written| s.cursor.is_none_or(|at| at < *written)))
    }

    /// Drops the confirmed entries whose change has arrived, or that waited
    /// [`CHANGE_WAIT_MS`] (a subscription whose filter the written row does not match never
    /// gets its change).
    fn release_confirmed(&mut self, now_ms: f64, fx: &mut Effects) {
        if self.replica.outbox().confirmed_len() == 0 || self.leader_status.is_some() {
            return;
        }
        let done: Vec<(String, u64, Vec<String>)> = self
            .replica
            .outbox()
            .iter()
            .filter(|e| {
                e.confirmed
                    .as_ref()
                    .is_some_and(|c| now_ms - c.at_ms >= CHANGE_WAIT_MS || !self.awaits_change(&c.tables))
            })
            .map(|e| (e.client_id.clone(), e.seq, e.ops.iter().map(|op| op.table.clone()).collect()))
            .collect();
        if done.is_empty() {
            return;
        }
        let mut ops = Vec::with_capacity(done.len());
        for (client_id, seq, tables) in done {
            fx.touched.extend(tables);
            ops.push(StoreOp::DeleteOutbox { client_id, seq });
        }
        self.commit(fx, ops);
        self.status_changed(fx);
    }

    // ---- local operations -----------------------------------------------------------------

    /// Declares a subscription (idempotent for the same id and SQL). Its rows start arriving
    /// once online.
    pub fn subscribe(&mut self, id: SubscriptionId, sql: String) -> Result<Effects, SyncError> {
        let table = query::subscription_table(&sql)?;
        let mut fx = Effects::default();
        if let Some(existing) = self.record(&id) {
            if existing.sql == sql {
                return Ok(fx);
            }
            return Err(SyncError::SubscriptionConflict(id.0));
        }
        let rec = SubscriptionRecord {
            id: id.clone(),
            sql,
            table,
            cursor: None,
            schema: Vec::new(),
            primary_key: None,
            complete: false,
            rows_loaded: 0,
            last_synced_ms: None,
        };
        if self.link == Link::Online {
            self.loading.insert(id);
            fx.send.push(Self::subscribe_frame(&rec));
        }
        self.commit(&mut fx, vec![StoreOp::PutSubscription(rec)]);
        self.status_changed(&mut fx);
        Ok(fx)
    }

    /// Drops a subscription and its rows from the replica.
    pub fn unsubscribe(&mut self, id: &SubscriptionId) -> Effects {
        let mut fx = Effects::default();
        if let Some(rec) = self.record(id) {
            if self.link == Link::Online {
                fx.send.push(ClientMessage::Unsubscribe { id: id.0.clone() });
            }
            self.loading.remove(id);
            fx.touched.insert(rec.table);
            self.commit(&mut fx, vec![StoreOp::DeleteSubscription(id.clone())]);
            self.status_changed(&mut fx);
        }
        fx
    }

    /// Queues local writes as one atomic mutation: applied to the view at once, persisted in
    /// the outbox, sent when online. Returns the mutation's `seq`.
    pub fn write(
        &mut self,
        mut ops: Vec<MutationOp>,
        now_ms: f64,
        new_key: impl Fn() -> String,
    ) -> Result<(u64, Effects), SyncError> {
        if ops.is_empty() {
            return Err(SyncError::InvalidWrite("a mutation needs at least one operation".into()));
        }
        for op in &mut ops {
            self.prepare(op, &new_key)?;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = OutboxEntry { client_id: self.client_id.clone(), seq, ops, created_ms: now_ms, confirmed: None };
        let mut fx = Effects::default();
        for op in &entry.ops {
            fx.touched.insert(op.table.clone());
        }
        if self.link == Link::Online {
            fx.send.push(Self::mutate_frame(&entry));
        }
        let mut ops = vec![StoreOp::PutOutbox(entry)];
        if !self.session_id {
            ops.push(StoreOp::PutMeta { key: META_NEXT_SEQ.into(), value: Value::from(self.next_seq) });
        }
        self.commit(&mut fx, ops);
        self.status_changed(&mut fx);
        Ok((seq, fx))
    }

    /// Whether `ops` insert into a synced table whose columns have not arrived yet: which
    /// column is the key, and so whether one must be generated, is unknown (the driver holds
    /// such writes until the columns arrive, while they can).
    pub fn awaits_schema(&self, ops: &[MutationOp]) -> bool {
        ops.iter().any(|op| {
            op.op == MutationKind::Insert
                && self.replica.primary_key(&op.table).is_none()
                && matches!(self.replica.table_columns(&op.table), Err(ReplicaError::SchemaPending(_)))
        })
    }

    /// Validates one write and fills in what the client owns: a primary key for inserts into
    /// tables with a TEXT key (UUIDv7, so keys sort by creation time like the server's).
    fn prepare(&self, op: &mut MutationOp, new_key: &impl Fn() -> String) -> Result<(), SyncError> {
        let invalid = |m: String| Err(SyncError::InvalidWrite(m));
        if !op.table.contains('.') {
            return invalid(format!("name the table with its namespace (namespace.{})", op.table));
        }
        let pk_col = self.replica.primary_key(&op.table).map(str::to_string);
        match op.op {
            MutationKind::Insert => {
                let Some(row) = op.row.as_mut() else { return invalid("insert needs a row".into()) };
                if let Some(pk_col) = pk_col
                    && row.get(&pk_col).is_none_or(Value::is_null)
                {
                    match self.replica.column_type(&op.table, &pk_col) {
                        Some("TEXT") => {
                            row.insert(pk_col, Value::String(new_key()));
                        }
                        _ => {
                            return invalid(format!(
                                "insert into {} needs a value for its primary key '{pk_col}' (only TEXT keys are generated offline)",
                                op.table
                            ));
                        }
                    }
                }
                if op.pk.is_some() {
                    return invalid("insert carries the key inside the row, not in pk".into());
                }
            }
            MutationKind::Update => {
                if op.pk.is_none() || op.row.as_ref().is_none_or(|r| r.is_empty()) {
                    return invalid("update needs pk and at least one changed column".into());
                }
            }
            MutationKind::Delete => {
                if op.pk.is_none() || op.row.is_some() {
                    return invalid("delete needs pk and no row".into());
                }
            }
        }
        match &op.row {
            Some(row) => self.check_values(&op.table, row),
            None => Ok(()),
        }
    }

    /// Values written to columns whose type the replica knows must read as that type the way
    /// the server stores them: a write the server would refuse is refused at once, and local
    /// queries never meet a pending value they cannot read. Columns not (yet) described, of a
    /// type this client does not know, or CRDT_TEXT (which takes edits the replica merges)
    /// are left to the server.
    fn check_values(&self, table: &str, row: &Row) -> Result<(), SyncError> {
        for (column, value) in row {
            let ty = self.replica.column_type(table, column).and_then(|t| t.parse::<DataType>().ok());
            if let Some(ty) = ty.filter(|t| *t != DataType::CrdtText) {
                from_json(value, ty)
                    .map_err(|e| SyncError::InvalidWrite(format!("column '{column}' of {table}: {e}")))?;
            }
        }
        Ok(())
    }

    /// Where a mutation stands.
    pub fn mutation_state(&self, client_id: &str, seq: u64) -> Option<MutationState> {
        if let Some(entry) = self.replica.outbox().get(client_id, seq) {
            return Some(match &entry.confirmed {
                Some(c) => MutationState::Applied { cursor: Some(c.cursor) },
                None => MutationState::Pending,
            });
        }
        self.settled.get(&(client_id.to_string(), seq)).cloned()
    }

    /// Runs a local query over the replica (see [`crate::query`]).
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<ResultSet, SyncError> {
        let query = LocalQuery::parse(sql, params)?;
        Ok(query.plan(&self.replica)?.run(&self.replica)?)
    }
}

impl SyncEngine {
    // ---- several sessions on one store (browser tabs) -------------------------------------

    /// Store operations another session committed to the shared store: applied to the replica
    /// without committing them again. Online, subscriptions and outbox entries new to this
    /// replica go to the server (the tab leading sync sends the writes of the others).
    pub fn apply_remote(&mut self, ops: Vec<StoreOp>) -> Effects {
        let before = self.shape();
        let mut fx = Effects::default();
        let mut subs: HashSet<&SubscriptionId> = HashSet::new();
        for op in &ops {
            match op {
                StoreOp::PutSubscription(rec) => {
                    fx.touched.insert(rec.table.clone());
                }
                StoreOp::DeleteSubscription(id)
                | StoreOp::ClearRows(id)
                | StoreOp::PutRow { sub: id, .. }
                | StoreOp::DeleteRow { sub: id, .. } => {
                    subs.insert(id);
                }
                StoreOp::PutOutbox(e) => fx.touched.extend(e.ops.iter().map(|o| o.table.clone())),
                StoreOp::DeleteOutbox { client_id, seq } => {
                    let entry = self.replica.outbox().get(client_id, *seq);
                    if let Some(e) = entry {
                        fx.touched.extend(e.ops.iter().map(|o| o.table.clone()));
                        // The leader posts the outcome right after this commit; until it
                        // arrives the write still counts as pending, not as unknown.
                        self.settled.entry((client_id.clone(), *seq)).or_insert(MutationState::Pending);
                    }
                }
                StoreOp::PutMeta { .. } => {}
            }
        }
        // Looked up before applying, so the table of a deleted subscription counts too.
        for id in subs {
            if let Some(rec) = self.replica.subscription(id).and_then(|d| d.record.as_ref()) {
                fx.touched.insert(rec.table.clone());
            }
        }
        fx.changes.absorb(self.replica.apply(&ops));
        self.after_remote_change(before, &mut fx);
        if !ops.is_empty() {
            self.status_changed(&mut fx);
        }
        fx
    }

    /// Replaces the replica with a fresh snapshot of the shared store (a tab about to lead
    /// sync reloads what the previous leader committed). Keeps this session's client id.
    pub fn reload(&mut self, snapshot: Snapshot) -> Effects {
        let before = self.shape();
        let mut fx = Effects::default();
        fx.touched.extend(self.tables());
        self.replica = Replica::from_snapshot(snapshot);
        let stored = match self.session_id {
            true => 1,
            false => self.replica.meta(META_NEXT_SEQ).and_then(Value::as_u64).unwrap_or(1),
        };
        self.next_seq = self.next_seq.max(own_next_seq(&self.replica, &self.client_id, stored));
        fx.touched.extend(self.tables());
        self.after_remote_change(before, &mut fx);
        self.status_changed(&mut fx);
        fx
    }

    /// The outcome of a mutation another session settled with the server (the leading tab,
    /// for a write of this one): kept for [`Self::mutation_state`] and reported.
    pub fn settle_remote(&mut self, client_id: String, seq: u64, state: MutationState) -> Effects {
        let mut fx = Effects::default();
        let key = (client_id, seq);
        if self.settled.get(&key) == Some(&state) {
            return fx;
        }
        self.settled.insert(key.clone(), state.clone());
        while self.settled.len() > SETTLED_KEPT {
            self.settled.pop_first();
        }
        fx.events.push(SyncEvent::Mutation { client_id: key.0, seq: key.1, state });
        fx
    }

    /// Follows another session that leads sync: reports `leader`'s status as this one's
    /// (`None`: this engine's own again, once it leads).
    pub fn follow(&mut self, leader: Option<SyncStatus>) -> Effects {
        let mut fx = Effects::default();
        if self.leader_status != leader {
            self.leader_status = leader;
            self.status_changed(&mut fx);
        }
        fx
    }

    /// Subscriptions and outbox entries present now, to see what a remote change added.
    fn shape(&self) -> (HashSet<SubscriptionId>, HashSet<(String, u64)>) {
        (
            self.replica.subscriptions().map(|r| r.id.clone()).collect(),
            self.replica.outbox().iter().map(|e| (e.client_id.clone(), e.seq)).collect(),
        )
    }

    /// Every table the replica shows: synced ones and those with pending writes.
    fn tables(&self) -> HashSet<String> {
        let synced = self.replica.subscriptions().map(|r| r.table.clone());
        synced.chain(self.replica.outbox().iter().flat_map(|e| e.ops.iter().map(|o| o.table.clone()))).collect()
    }

    /// Online, tells the server what a remote change or a reload added or removed.
    fn after_remote_change(
        &mut self,
        (subs, outbox): (HashSet<SubscriptionId>, HashSet<(String, u64)>),
        fx: &mut Effects,
    ) {
        let now = self.shape();
        if self.link == Link::Online && (now.0 != subs || now.1 != outbox) {
            for id in subs.difference(&now.0) {
                self.loading.remove(id);
                fx.send.push(ClientMessage::Unsubscribe { id: id.0.clone() });
            }
            for rec in self.replica.subscriptions().filter(|r| !subs.contains(&r.id)) {
                self.loading.insert(rec.id.clone());
                fx.send.push(Self::subscribe_frame(rec));
            }
            for e in self.replica.outbox().iter().filter(|e| !outbox.contains(&(e.client_id.clone(), e.seq))) {
                fx.send.push(Self::mutate_frame(e));
            }
        }
    }
}

/// Next sequence number of `client_id`: after its entries in the outbox, at least `stored`.
fn own_next_seq(replica: &Replica, client_id: &str, stored: u64) -> u64 {
    let outbox_max = replica.outbox().iter().filter(|e| e.client_id == client_id).map(|e| e.seq + 1).max();
    stored.max(outbox_max.unwrap_or(1))
}

fn pk_index(rec: &SubscriptionRecord) -> Option<usize> {
    let pk = rec.primary_key.as_deref()?;
    rec.schema.iter().position(|c| c.name == pk)
}

/// Makes the put ops of rows of one subscription's frame: rows as the server sends them, values
/// aligned to the subscription's schema.
struct RowPut<'a> {
    sub: &'a SubscriptionId,
    schema: &'a [ColumnInfo],
    pk_index: Option<usize>,
    /// The columns the replica types the table's rows to, when they are the schema's columns in
    /// its order and none is CRDT_TEXT: then a row is typed from its values by position, with
    /// no JSON map made of it (see [`OpRow`]).
    typed: Option<RowColumns>,
}

impl<'a> RowPut<'a> {
    fn new(replica: &Replica, sub: &'a SubscriptionId, rec: &'a SubscriptionRecord) -> RowPut<'a> {
        let aligned = |columns: &&RowColumns| {
            columns.len() == rec.schema.len()
                && columns.iter().zip(&rec.schema).all(|(c, s)| c.name == s.name && c.ty != DataType::CrdtText)
        };
        RowPut {
            sub,
            schema: &rec.schema,
            pk_index: pk_index(rec),
            typed: replica.row_columns(&rec.table).filter(aligned).cloned(),
        }
    }

    /// The ops that put `rows`, in order (a row without a primary key is skipped).
    ///
    /// Every row is typed before the first key text is made: the typed rows of a frame, which
    /// the replica keeps, then lie together in memory instead of between the key texts and ids
    /// of the ops, which are dropped after the commit; scans of the table read less memory.
    fn push_ops(&self, rows: Vec<Vec<Value>>, ops: &mut Vec<StoreOp>) {
        let mut typed = Vec::with_capacity(rows.len());
        for values in &rows {
            typed.push(self.typed(values));
        }
        for (values, typed) in rows.into_iter().zip(typed) {
            if let Some(op) = self.op(values, typed) {
                ops.push(op);
            }
        }
    }

    /// The row of `values` typed by position, if rows of this frame are typed and its values
    /// read as their columns' types.
    fn typed(&self, values: &[Value]) -> Option<OpRow> {
        let columns = self.typed.as_ref()?;
        // A value that does not read is reported by the replica, which types the JSON again.
        let row = typed_values("", columns, &|i| values.get(i).unwrap_or(&Value::Null)).ok()?;
        Some(OpRow::Typed { columns: Arc::clone(columns), row })
    }

    /// The op that puts the row of `values`, `typed` if it is; none without a primary key.
    fn op(&self, values: Vec<Value>, typed: Option<OpRow>) -> Option<StoreOp> {
        let pk = pk_key(values.get(self.pk_index?)?);
        // Not typed (a value that does not read as its column's type, columns that do not line
        // up): the row goes as JSON, for the replica to type or keep and report.
        let row = typed.unwrap_or_else(|| {
            // `extend`, not `collect`: collecting into a map compiles in a sort (~3 KB of wasm).
            let mut row = Row::new();
            row.extend(self.schema.iter().map(|c| c.name.clone()).zip(values));
            OpRow::Json(row)
        });
        Some(StoreOp::PutRow { sub: self.sub.clone(), pk, row })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ws::ChangeOp;
    use serde_json::json;

    fn auth_ok() -> ServerMessage {
        ServerMessage::AuthOk {
            user: crate::protocol::UserInfo { id: "2".into(), username: "u".into(), role: crate::protocol::Role::User },
            expires_at: "2030-01-01T00:00:00Z".into(),
        }
    }

    fn online_engine() -> SyncEngine {
        let (mut e, _) = SyncEngine::new(Snapshot::default(), || "c1".into());
        e.subscribe(SubscriptionId("s".into()), "SELECT * FROM app.t".into()).unwrap();
        e.on_open("tok".into());
        let fx = e.on_message(auth_ok(), 0.0);
        assert!(matches!(&fx.send[0], ClientMessage::Subscribe(s) if s.since.is_none()));
        e.on_message(
            ServerMessage::Subscribed {
                id: "s".into(),
                live_id: "l".into(),
                schema: vec![ColumnInfo::new("id", "TEXT"), ColumnInfo::new("v", "BIGINT")],
                primary_key: "id".into(),
            },
            0.0,
        );
        e
    }

    /// The user the server names at sign-in is `current_user()` in local queries, and is kept
    /// with the replica (an offline start knows it); an unchanged name writes nothing.
    #[test]
    fn the_signed_in_user_is_current_user_in_local_queries() {
        let (mut e, _) = SyncEngine::new(Snapshot::default(), || "c1".into());
        let refused = e.query("SELECT current_user()", &[]).unwrap_err().to_string();
        assert!(refused.contains("no signed-in user is known"), "{refused}");
        e.on_open("tok".into());
        let fx = e.on_message(auth_ok(), 0.0);
        let kept = fx.commit.iter().find_map(|op| match op {
            StoreOp::PutMeta { key, value } if key == META_USER => Some(value.clone()),
            _ => None,
        });
        assert_eq!(kept, Some(json!("u")));
        assert_eq!(e.query("SELECT current_user() AS me", &[]).unwrap().rows, vec![vec![json!("u")]]);
        e.on_close(None);
        e.on_open("tok".into());
        let fx = e.on_message(auth_ok(), 2.0);
        assert!(!fx.commit.iter().any(|op| matches!(op, StoreOp::PutMeta { .. })), "{:?}", fx.commit);
    }

    fn batch(rows: Vec<Value>, deleted: Vec<Value>, cursor: i64, reset: bool) -> ServerMessage {
        ServerMessage::Batch {
            id: "s".into(),
            rows: rows.into_iter().map(|r| r.as_array().unwrap().clone()).collect(),
            deleted,
            cursor,
            reset,
            last: true,
        }
    }

    fn ids(e: &SyncEngine) -> Vec<Value> {
        e.query("SELECT id, v FROM app.t ORDER BY id", &[]).unwrap().rows.into_iter().map(Value::Array).collect()
    }

    #[test]
    fn batches_commit_rows_with_their_cursor_and_resets_replace() {
        let mut e = online_engine();
        let fx = e.on_message(batch(vec![json!(["a", 1]), json!(["b", 2])], vec![], 10, false), 0.0);
        assert!(
            fx.commit.iter().any(|op| matches!(op, StoreOp::PutSubscription(r) if r.cursor == Some(10) && r.complete))
        );
        assert_eq!(ids(&e), vec![json!(["a", 1]), json!(["b", 2])]);
        e.on_message(batch(vec![json!(["c", 3])], vec![json!("a")], 20, false), 0.0);
        assert_eq!(ids(&e), vec![json!(["b", 2]), json!(["c", 3])]);
        e.on_message(batch(vec![json!(["z", 9])], vec![], 30, true), 0.0);
        assert_eq!(ids(&e), vec![json!(["z", 9])]);
    }

    /// Synced rows are typed as the frame is read, by position, and the op carries that row;
    /// a row with a value that does not read goes as JSON, for the replica to keep and report.
    /// Either form serialises as the row's JSON by column name (what tabs send each other).
    #[test]
    fn synced_rows_are_typed_from_the_frame_and_bad_ones_stay_json() {
        let mut e = online_engine();
        let fx = e.on_message(batch(vec![json!(["a", 1]), json!(["b", "two"])], vec![], 10, false), 0.0);
        let puts: Vec<&OpRow> = fx
            .commit
            .iter()
            .filter_map(|op| match op {
                StoreOp::PutRow { row, .. } => Some(row),
                _ => None,
            })
            .collect();
        assert!(matches!(puts[..], [OpRow::Typed { .. }, OpRow::Json(_)]), "{puts:?}");
        let typed = e.replica.subscription(&SubscriptionId("s".into())).unwrap().rows.get("\"a\"").unwrap();
        assert!(
            matches!(puts[0], OpRow::Typed { row, .. } if Arc::ptr_eq(row, typed)),
            "the replica keeps the op's row"
        );
        assert_eq!(serde_json::to_value(puts[0]).unwrap(), json!({"id": "a", "v": 1}));
        assert_eq!(serde_json::to_value(puts[1]).unwrap(), json!({"id": "b", "v": "two"}));
        let back: OpRow = serde_json::from_value(json!({"id": "a", "v": 1})).unwrap();
        assert_eq!(&back, puts[0]);
        let err = e.query("SELECT id FROM app.t", &[]).unwrap_err().to_string();
        assert!(err.contains("column 'v'"), "{err}");
        e.on_message(batch(vec![json!(["b", 2])], vec![], 20, false), 0.0);
        assert_eq!(ids(&e), vec![json!(["a", 1]), json!(["b", 2])]);
    }

    /// Rows of a table with a CRDT_TEXT column travel as JSON (their cells carry the Yjs
    /// state, which a typed row has no place for), and the replica keeps the state.
    #[test]
    fn rows_with_crdt_cells_stay_json_with_their_state() {
        let (mut e, _) = SyncEngine::new(Snapshot::default(), || "c1".into());
        e.subscribe(SubscriptionId("d".into()), "SELECT * FROM app.docs".into()).unwrap();
        e.on_open("tok".into());
        e.on_message(auth_ok(), 0.0);
        let schema = vec![ColumnInfo::new("id", "TEXT"), ColumnInfo::new("body", "CRDT_TEXT")];
        e.on_message(
            ServerMessage::Subscribed { id: "d".into(), live_id: "l".into(), schema, primary_key: "id".into() },
            0.0,
        );
        let doc = json!({"text": "hi", "state": "AQ=="});
        let rows = vec![vec![json!("a"), doc.clone()]];
        let frame = ServerMessage::Batch { id: "d".into(), rows, deleted: vec![], cursor: 1, reset: false, last: true };
        let fx = e.on_message(frame, 0.0);
        assert!(fx.commit.iter().any(|op| matches!(op, StoreOp::PutRow { row: OpRow::Json(_), .. })));
        assert_eq!(e.replica.crdt_cell("app.docs", &json!("a"), "body").unwrap(), doc);
        assert_eq!(e.query("SELECT body FROM app.docs", &[]).unwrap().rows, vec![vec![json!("hi")]]);
    }

    #[test]
    fn a_schema_change_resubscribes_from_the_cursor_and_keeps_the_rows() {
        let mut e = online_engine();
        e.on_message(batch(vec![json!(["a", 1]), json!(["b", 2])], vec![], 10, false), 0.0);
        let fx = e.on_message(ServerMessage::SchemaChanged { id: "s".into(), schema_version: 2 }, 0.0);
        assert!(matches!(&fx.send[..], [ClientMessage::Subscribe(s)] if s.since == Some(10)));
        // `v` renamed to `n` (matched by name: the test's first schema has no ids) and a
        // column `flag` added with a default.
        let mut flag = ColumnInfo::new("flag", "BOOLEAN");
        flag.default = Some(json!(false));
        let fx = e.on_message(
            ServerMessage::Subscribed {
                id: "s".into(),
                live_id: "l2".into(),
                schema: vec![ColumnInfo::new("id", "TEXT"), ColumnInfo::new("v", "BIGINT"), flag],
                primary_key: "id".into(),
            },
            0.0,
        );
        assert_eq!(fx.commit.iter().filter(|op| matches!(op, StoreOp::PutRow { .. })).count(), 2);
        let rows = e.query("SELECT id, v, flag FROM app.t ORDER BY id", &[]).unwrap().rows;
        assert_eq!(rows, vec![vec![json!("a"), json!(1), json!(false)], vec![json!("b"), json!(2), json!(false)]]);
        assert_eq!(e.replica.subscriptions().next().unwrap().cursor, Some(10));
    }

    /// A column renamed on the server (matched by its stable id) keeps its values in the
    /// replica's typed rows, a column whose type widened is typed again, and live state built
    /// before the change sees a new generation of the table.
    #[test]
    fn a_renamed_column_keeps_its_values_in_the_typed_rows() {
        let (mut e, _) = SyncEngine::new(Snapshot::default(), || "c1".into());
        e.subscribe(SubscriptionId("s".into()), "SELECT * FROM app.t".into()).unwrap();
        e.on_open("tok".into());
        e.on_message(auth_ok(), 0.0);
        let column = |name: &str, ty: &str, id: u16| ColumnInfo { id: Some(id), ..ColumnInfo::new(name, ty) };
        let subscribed = |schema| ServerMessage::Subscribed {
            id: "s".into(),
            live_id: "l".into(),
            schema,
            primary_key: "id".into(),
        };
        e.on_message(subscribed(vec![column("id", "TEXT", 1), column("v", "INT", 2)]), 0.0);
        e.on_message(batch(vec![json!(["a", 1]), json!(["b", 2])], vec![], 10, false), 0.0);
        assert_eq!(e.query("SELECT id, v FROM app.t ORDER BY id", &[]).unwrap().rows.len(), 2);
        let generation = e.replica().typed_generation("app.t");
        e.on_message(subscribed(vec![column("id", "TEXT", 1), column("n", "BIGINT", 2)]), 0.0);
        assert_ne!(e.replica().typed_generation("app.t"), generation);
        let rows = e.query("SELECT id, n FROM app.t ORDER BY id", &[]).unwrap().rows;
        assert_eq!(rows, vec![vec![json!("a"), json!(1)], vec![json!("b"), json!(2)]]);
        let types = e.query("SELECT n FROM app.t", &[]).unwrap().types;
        assert_eq!(types, vec!["BIGINT".to_string()]);
    }

    #[test]
    fn changes_never_move_the_cursor_backwards() {
        let mut e = online_engine();
        e.on_message(batch(vec![json!(["a", 1])], vec![], 10, false), 0.0);
        let old = ServerMessage::Change {
            id: "s".into(),
            op: ChangeOp::Update,
            row: vec![json!("a"), json!(0)],
            old: None,
            cursor: 5,
        };
        assert!(e.on_message(old, 0.0).commit.is_empty());
        let del = ServerMessage::Change {
            id: "s".into(),
            op: ChangeOp::Delete,
            row: vec![json!("a"), json!(1)],
            old: None,
            cursor: 11,
        };
        e.on_message(del, 0.0);
        assert!(ids(&e).is_empty());
        let cursor = e.replica().subscriptions().next().unwrap().cursor;
        assert_eq!(cursor, Some(11));
    }

    #[test]
    fn pending_writes_overlay_confirmed_rows_and_rejections_roll_back() {
        let mut e = online_engine();
        e.on_message(batch(vec![json!(["a", 1])], vec![], 10, false), 0.0);
        let op = |kind, row: Option<Value>, pk: Option<Value>| MutationOp {
            table: "app.t".into(),
            op: kind,
            row: row.map(|r| r.as_object().unwrap().clone()),
            pk,
        };
        let (s1, fx) = e
            .write(vec![op(MutationKind::Update, Some(json!({"v": 5})), Some(json!("a")))], 0.0, || "k".into())
            .unwrap();
        assert!(matches!(&fx.send[0], ClientMessage::Mutate(m) if m.seq == s1 && m.client_id == "c1"));
        let (s2, _) =
            e.write(vec![op(MutationKind::Insert, Some(json!({"v": 7})), None)], 0.0, || "gen".into()).unwrap();
        assert_eq!(ids(&e), vec![json!(["a", 5]), json!(["gen", 7])]);
        assert_eq!(e.mutation_state("c1", s2), Some(MutationState::Pending));
        e.on_message(
            ServerMessage::MutateResult(MutateResult {
                client_id: "c1".into(),
                seq: s2,
                status: MutationStatus::Rejected,
                code: Some(ErrorCode::DuplicateKey),
                reason: Some("exists".into()),
                cursor: None,
                tables: BTreeMap::new(),
            }),
            0.0,
        );
        assert_eq!(ids(&e), vec![json!(["a", 5])]);
        assert!(matches!(
            e.mutation_state("c1", s2),
            Some(MutationState::Rejected { code: ErrorCode::DuplicateKey, .. })
        ));
        assert!(e.write(vec![op(MutationKind::Delete, None, None)], 0.0, || "k".into()).is_err());
        assert!(e.write(vec![op(MutationKind::Update, None, Some(json!("a")))], 0.0, || "k".into()).is_err());
        assert!(e.subscribe(SubscriptionId("s".into()), "SELECT id FROM app.t".into()).is_err());
        assert!(e.subscribe(SubscriptionId("u".into()), "SELECT * FROM t".into()).is_err());
    }

    #[test]
    fn writes_are_checked_against_the_column_types() {
        let mut e = online_engine();
        e.on_message(batch(vec![json!(["a", 1])], vec![], 10, false), 0.0);
        let update = |v: Value| MutationOp {
            table: "app.t".into(),
            op: MutationKind::Update,
            row: Some(json!({ "v": v }).as_object().unwrap().clone()),
            pk: Some(json!("a")),
        };
        let err = e.write(vec![update(json!("abc"))], 0.0, || "k".into()).unwrap_err();
        assert_eq!(err.to_string(), "invalid write: column 'v' of app.t: \"abc\" is not a valid BIGINT value");
        assert!(e.replica().outbox().is_empty(), "nothing queued");
        // What the server would store: text holding an integer is that integer.
        e.write(vec![update(json!("12"))], 0.0, || "k".into()).unwrap();
        assert_eq!(ids(&e), vec![json!(["a", 12])]);
        // Columns the replica has no type for are the server's to judge.
        let other = MutationOp {
            table: "app.t".into(),
            op: MutationKind::Update,
            row: Some(json!({"unknown": [1]}).as_object().unwrap().clone()),
            pk: Some(json!("a")),
        };
        assert!(e.write(vec![other], 0.0, || "k".into()).is_ok());
    }

    #[test]
    fn sequence_numbers_survive_a_restart() {
        let mut e = online_engine();
        let w = || MutationOp { table: "app.t".into(), op: MutationKind::Delete, row: None, pk: Some(json!("a")) };
        let (s1, fx1) = e.write(vec![w()], 0.0, || "k".into()).unwrap();
        let mut snapshot = Snapshot::default();
        let mut replica_ops = Vec::new();
        replica_ops.extend(fx1.commit);
        for op in replica_ops {
            match op {
                StoreOp::PutOutbox(o) => snapshot.outbox.push(o),
                StoreOp::PutMeta { key, value } => snapshot.meta.push((key, value)),
                _ => {}
            }
        }
        snapshot.meta.push((META_CLIENT_ID.into(), json!("c1")));
        let (mut e2, init) = SyncEngine::new(snapshot, || unreachable!("the stored client id is kept"));
        assert!(init.is_empty());
        let (s2, _) = e2.write(vec![w()], 0.0, || "k".into()).unwrap();
        assert!(s2 > s1);
    }

    #[test]
    fn sessions_on_one_store_share_writes_without_sending_twice() {
        let w = || MutationOp { table: "app.t".into(), op: MutationKind::Delete, row: None, pk: Some(json!("a")) };
        let mut leader = online_engine();
        let mut tab = SyncEngine::with_session_client_id(Snapshot::default(), "tab".into());
        let (seq, fx) = tab.write(vec![w()], 0.0, || "k".into()).unwrap();
        assert!(fx.send.is_empty(), "an offline tab sends nothing");
        assert!(fx.commit.iter().all(|op| !matches!(op, StoreOp::PutMeta { .. })), "session ids stay out of meta");

        // The leader sends the tab's write once, however often it hears of it.
        let fx = leader.apply_remote(fx.commit.clone());
        assert!(matches!(&fx.send[..], [ClientMessage::Mutate(m)] if m.client_id == "tab" && m.seq == seq));
        assert!(fx.touched.contains("app.t"));
        let again = leader.replica().outbox().iter().next().unwrap().clone();
        assert!(leader.apply_remote(vec![StoreOp::PutOutbox(again)]).send.is_empty());

        // The leader settles it; the tab learns the deletion, then the outcome.
        let result = MutateResult {
            client_id: "tab".into(),
            seq,
            status: MutationStatus::Applied,
            code: None,
            reason: None,
            cursor: Some(9),
            tables: BTreeMap::from([("app.t".to_string(), 9)]),
        };
        let fx = leader.on_message(ServerMessage::MutateResult(result), 0.0);
        tab.apply_remote(fx.commit);
        let applied = MutationState::Applied { cursor: Some(9) };
        assert_eq!(tab.status().pending_writes, 1, "confirmed, its change still to come");
        assert_eq!(tab.mutation_state("tab", seq), Some(applied.clone()));
        let fx = leader.on_message(change("a", 9), 0.0);
        tab.apply_remote(fx.commit);
        assert_eq!(tab.status().pending_writes, 0);
        assert_eq!(tab.mutation_state("tab", seq), Some(MutationState::Pending), "until the leader posts it");
        let fx = tab.settle_remote("tab".into(), seq, applied.clone());
        assert!(matches!(&fx.events[..], [SyncEvent::Mutation { .. }]));
        assert_eq!(tab.mutation_state("tab", seq), Some(applied));

        // A follower reports the leader's status; a reload keeps its client id and numbering.
        tab.follow(Some(leader.status()));
        assert!(tab.status().online);
        tab.follow(None);
        assert!(!tab.status().online);
        tab.reload(Snapshot::default());
        assert_eq!(tab.client_id(), "tab");
        assert_eq!(tab.write(vec![w()], 0.0, || "k".into()).unwrap().0, seq + 1);
    }

    fn change(id: &str, cursor: i64) -> ServerMessage {
        ServerMessage::Change {
            id: "s".into(),
            op: ChangeOp::Insert,
            row: vec![json!(id), json!(1)],
            old: None,
            cursor,
        }
    }

    fn applied(seq: u64, cursor: i64) -> ServerMessage {
        ServerMessage::MutateResult(MutateResult {
            client_id: "c1".into(),
            seq,
            status: MutationStatus::Applied,
            code: None,
            reason: None,
            cursor: Some(cursor),
            tables: BTreeMap::from([("app.t".to_string(), cursor)]),
        })
    }

    #[test]
    fn a_confirmed_write_shows_until_its_change_arrives() {
        let mut e = online_engine();
        e.on_message(batch(vec![], vec![], 5, false), 0.0);
        let insert = |id: &str| MutationOp {
            table: "app.t".into(),
            op: MutationKind::Insert,
            row: Some(json!({"id": id, "v": 1}).as_object().unwrap().clone()),
            pk: None,
        };
        let ids = |e: &SyncEngine| -> Vec<Value> {
            e.query("SELECT id FROM app.t ORDER BY id", &[]).unwrap().rows.into_iter().map(|r| r[0].clone()).collect()
        };
        let (seq, _) = e.write(vec![insert("a")], 0.0, || "k".into()).unwrap();

        // The answer comes before the change: the row stays, and so does the entry. (The
        // write's last row is in a table with no subscription here.)
        let mut answer = applied(seq, 10);
        if let ServerMessage::MutateResult(r) = &mut answer {
            r.tables = BTreeMap::from([("app.t".to_string(), 9), ("app.log".to_string(), 10)]);
        }
        let fx = e.on_message(answer, 10.0);
        assert_eq!(ids(&e), vec![json!("a")]);
        assert!(fx.send.is_empty());
        assert_eq!(e.status().pending_writes, 1);
        assert_eq!(e.mutation_state("c1", seq), Some(MutationState::Applied { cursor: Some(10) }));
        // Not sent again on a reconnect: the server has it.
        e.on_close(None);
        e.on_open("tok".into());
        let fx = e.on_message(auth_ok(), 20.0);
        assert!(fx.send.iter().all(|m| !matches!(m, ClientMessage::Mutate(_))));

        // A change before the write's cursor keeps it; the change at it releases it.
        e.on_message(change("b", 8), 30.0);
        assert_eq!(e.status().pending_writes, 1);
        let fx = e.on_message(change("a", 9), 40.0);
        assert_eq!(e.status().pending_writes, 0);
        assert!(fx.touched.contains("app.t"));
        assert_eq!(ids(&e), vec![json!("a"), json!("b")]);

        // A write whose change never comes (the subscription's filter does not match it) is
        // released after a while, at the next frame.
        let (seq, _) = e.write(vec![insert("c")], 50.0, || "k".into()).unwrap();
        e.on_message(applied(seq, 12), 60.0);
        e.on_message(ServerMessage::Pong { nonce: None }, 60.0 + CHANGE_WAIT_MS - 1.0);
        assert_eq!(e.status().pending_writes, 1);
        e.on_message(ServerMessage::Pong { nonce: None }, 60.0 + CHANGE_WAIT_MS);
        assert_eq!(e.status().pending_writes, 0);
        assert_eq!(ids(&e), vec![json!("a"), json!("b")]);
    }
}
