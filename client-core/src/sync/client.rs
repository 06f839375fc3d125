//! [`Client`]: the handle applications use. Every call is a [`Command`] to the driver task
//! that owns the replica, so the handle is cheap to clone and, natively, `Send`.

use super::engine::SyncError;
use super::status::{MutationState, SyncEvent, SyncStatus};
use crate::protocol::ws::{MutationKind, MutationOp};
use crate::query::ResultSet;
use crate::store::{Row, StoreOp, SubscriptionId};
use futures::StreamExt;
use futures::channel::{mpsc, oneshot};
use serde_json::Value;

/// A write accepted into the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteReceipt {
    pub client_id: String,
    pub seq: u64,
    /// Primary keys of inserted rows, in op order (generated ones included).
    pub inserted_keys: Vec<Value>,
}

/// Requests to the driver.
pub enum Command {
    Sync {
        id: SubscriptionId,
        sql: String,
        reply: oneshot::Sender<Result<(), SyncError>>,
    },
    Unsync {
        id: SubscriptionId,
        reply: oneshot::Sender<()>,
    },
    Query {
        sql: String,
        params: Vec<Value>,
        reply: oneshot::Sender<Result<ResultSet, SyncError>>,
    },
    Live {
        sql: String,
        params: Vec<Value>,
        updates: mpsc::UnboundedSender<ResultSet>,
        reply: oneshot::Sender<Result<u64, SyncError>>,
    },
    StopLive {
        id: u64,
    },
    Write {
        ops: Vec<MutationOp>,
        reply: oneshot::Sender<Result<WriteReceipt, SyncError>>,
    },
    MutationState {
        client_id: String,
        seq: u64,
        reply: oneshot::Sender<Option<MutationState>>,
    },
    CrdtCell {
        table: String,
        pk: Value,
        column: String,
        reply: oneshot::Sender<Result<Value, SyncError>>,
    },
    Status {
        reply: oneshot::Sender<SyncStatus>,
    },
    Events {
        sink: mpsc::UnboundedSender<SyncEvent>,
    },
    SetOnline {
        online: bool,
    },
    /// Resolves once online with every subscription loaded and the outbox empty.
    Settled {
        reply: oneshot::Sender<Result<(), SyncError>>,
    },
    /// Store operations another session (tab) committed to the shared store.
    Remote {
        ops: Vec<StoreOp>,
    },
    /// The outcome of a mutation, settled by the session that leads sync.
    RemoteOutcome {
        client_id: String,
        seq: u64,
        state: MutationState,
    },
    /// Report the leading session's status as this one's (`None`: report its own again).
    Follow {
        leader: Option<SyncStatus>,
    },
    /// Reload the replica from the store.
    Reload {
        reply: oneshot::Sender<Result<(), SyncError>>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
}

/// Handle to a running sync client. Clones share the same replica.
#[derive(Clone)]
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
}

/// A live local query: the first result arrives at once, then one after every change to one
/// of the tables it reads that changes the result. Dropping it stops the query.
pub struct LiveQuery {
    id: u64,
    commands: mpsc::UnboundedSender<Command>,
    updates: mpsc::UnboundedReceiver<ResultSet>,
}

impl LiveQuery {
    /// The next result, or `None` once the client is closed.
    pub async fn next(&mut self) -> Option<ResultSet> {
        self.updates.next().await
    }
}

impl futures::Stream for LiveQuery {
    type Item = ResultSet;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<ResultSet>> {
        self.updates.poll_next_unpin(cx)
    }
}

impl Drop for LiveQuery {
    fn drop(&mut self) {
        let _ = self.commands.unbounded_send(Command::StopLive { id: self.id });
    }
}

impl Client {
    pub(crate) fn new(commands: mpsc::UnboundedSender<Command>) -> Self {
        Client { commands }
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, SyncError> {
        let (tx, rx) = oneshot::channel();
        self.commands.unbounded_send(make(tx)).map_err(|_| SyncError::Closed)?;
        rx.await.map_err(|_| SyncError::Closed)
    }

    /// Declares what to replicate: `sql` is `SELECT ... FROM namespace.table [WHERE ...]`,
    /// kept under `id` across restarts. Idempotent for the same id and SQL.
    pub async fn sync(&self, id: &str, sql: &str) -> Result<(), SyncError> {
        let id = SubscriptionId(id.to_string());
        self.call(|reply| Command::Sync { id, sql: sql.to_string(), reply }).await?
    }

    /// Stops replicating a subscription and drops its rows locally.
    pub async fn unsync(&self, id: &str) -> Result<(), SyncError> {
        self.call(|reply| Command::Unsync { id: SubscriptionId(id.to_string()), reply }).await
    }

    /// Runs a query on the local replica (works offline): any query of KalamDB's query language
    /// over the synced tables (joins, aggregates, ...; see [`crate::query`]), `params` binding
    /// `$1..$n` (or the `?`s).
    pub async fn query(&self, sql: &str, params: Vec<Value>) -> Result<ResultSet, SyncError> {
        self.call(|reply| Command::Query { sql: sql.to_string(), params, reply }).await?
    }

    /// A live local query: its result now, then again after every local write or synced change
    /// to one of the tables it reads that changes the result.
    pub async fn live(&self, sql: &str, params: Vec<Value>) -> Result<LiveQuery, SyncError> {
        let (updates_tx, updates) = mpsc::unbounded();
        let id =
            self.call(|reply| Command::Live { sql: sql.to_string(), params, updates: updates_tx, reply }).await??;
        Ok(LiveQuery { id, commands: self.commands.clone(), updates })
    }

    /// Applies writes locally at once and queues them, as one atomic mutation, for the server.
    pub async fn mutate(&self, ops: Vec<MutationOp>) -> Result<WriteReceipt, SyncError> {
        self.call(|reply| Command::Write { ops, reply }).await?
    }

    /// Inserts a row. A missing TEXT primary key is generated (UUIDv7).
    pub async fn insert(&self, table: &str, row: Row) -> Result<WriteReceipt, SyncError> {
        self.mutate(vec![MutationOp { table: table.into(), op: MutationKind::Insert, row: Some(row), pk: None }]).await
    }

    /// Changes some columns of the row with primary key `pk`.
    pub async fn update(&self, table: &str, pk: Value, changes: Row) -> Result<WriteReceipt, SyncError> {
        self.mutate(vec![MutationOp {
            table: table.into(),
            op: MutationKind::Update,
            row: Some(changes),
            pk: Some(pk),
        }])
        .await
    }

    pub async fn delete(&self, table: &str, pk: Value) -> Result<WriteReceipt, SyncError> {
        self.mutate(vec![MutationOp { table: table.into(), op: MutationKind::Delete, row: None, pk: Some(pk) }]).await
    }

    /// Where a write stands (`None` if unknown: settled long ago or never made here).
    pub async fn mutation_state(&self, receipt: &WriteReceipt) -> Result<Option<MutationState>, SyncError> {
        let (client_id, seq) = (receipt.client_id.clone(), receipt.seq);
        self.call(|reply| Command::MutationState { client_id, seq, reply }).await
    }

    /// A CRDT_TEXT cell with pending local edits merged: `{"text", "state"}` where `state` is
    /// the base64 Yjs v1 update an editor (yrs or JavaScript `yjs`) starts from; null if absent.
    pub async fn crdt_cell(&self, table: &str, pk: Value, column: &str) -> Result<Value, SyncError> {
        let (table, column) = (table.to_string(), column.to_string());
        self.call(|reply| Command::CrdtCell { table, pk, column, reply }).await?
    }

    pub async fn status(&self) -> Result<SyncStatus, SyncError> {
        self.call(|reply| Command::Status { reply }).await
    }

    /// A stream of status changes, mutation outcomes and errors.
    pub fn events(&self) -> mpsc::UnboundedReceiver<SyncEvent> {
        let (sink, rx) = mpsc::unbounded();
        let _ = self.commands.unbounded_send(Command::Events { sink });
        rx
    }

    /// Goes offline (closes the socket, keeps working locally) or back online.
    pub fn set_online(&self, online: bool) {
        let _ = self.commands.unbounded_send(Command::SetOnline { online });
    }

    /// Waits until online, every subscription loaded and every local write confirmed. Until
    /// the server has accepted a connection of this client once, fails with
    /// [`SyncError::Connection`] when connecting fails (signing in, opening the socket, or the
    /// server refusing it), at once if it is already failing; retries go on in the
    /// background. Once connected, outages are waited out.
    pub async fn settled(&self) -> Result<(), SyncError> {
        self.call(|reply| Command::Settled { reply }).await?
    }

    // ---- several sessions (browser tabs) sharing one store, one of them leading sync -------

    /// Applies store operations another session committed to the shared store. The leading
    /// session sends the outbox entries among them to the server.
    pub fn apply_remote(&self, ops: Vec<StoreOp>) {
        let _ = self.commands.unbounded_send(Command::Remote { ops });
    }

    /// Records the outcome of a mutation the leading session settled with the server.
    pub fn settle_remote(&self, client_id: String, seq: u64, state: MutationState) {
        let _ = self.commands.unbounded_send(Command::RemoteOutcome { client_id, seq, state });
    }

    /// Reports the leading session's status as this one's (`None`: its own again).
    pub fn follow(&self, leader: Option<SyncStatus>) {
        let _ = self.commands.unbounded_send(Command::Follow { leader });
    }

    /// Reloads the replica from the store, so what other sessions committed becomes visible
    /// (a session about to lead sync starts from the store's cursors).
    pub async fn reload(&self) -> Result<(), SyncError> {
        self.call(|reply| Command::Reload { reply }).await?
    }

    /// Stops syncing. The store keeps everything for the next start.
    pub async fn close(&self) {
        let _ = self.call(|reply| Command::Close { reply }).await;
    }
}
