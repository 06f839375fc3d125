//! The live-query registry and fan-out.
//!
//! Committed changes arrive from the [`Committer`](crate::tables::Committer) under its lock
//! and are only enqueued there, in commit order, on one channel. Registrations travel the
//! same channel (also enqueued under the commit lock, together with the watermark the
//! initial load reads up to), so every subscription sees exactly the changes committed after
//! its watermark. A fan-out task drains the channel: for each change it looks up only the
//! subscriptions on that table and partition, evaluates their predicates against the row
//! (once per change, shared by all of them) and hands events to each connection's bounded
//! queue without waiting. A full queue marks the connection as too slow: it is closed, and
//! the client resumes from its cursor.

use crate::ids::{Partition, TableId, UserId};
use crate::live::query::{LiveQuery, to_batch};
use crate::storage::row_codec::StoredRow;
use crate::tables::{ChangeKind, ChangeSink, RowChange};
use datafusion::arrow::array::RecordBatch;
use kalamdb_client_core::protocol::ws::{ChangeOp, ServerMessage};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use tokio::sync::{Notify, mpsc};

/// What a connection's writer task receives.
#[derive(Debug)]
pub enum Outgoing {
    Frame(ServerMessage),
    /// The subscription was killed (`KILL LIVE QUERY`): forget it and tell the client.
    Killed {
        id: String,
        reason: String,
    },
    /// The subscription's table was altered: it has left the fan-out; the connection drops
    /// it and tells the client to subscribe again.
    SchemaChanged {
        sub: Arc<LiveSubscription>,
        schema_version: u32,
    },
}

/// State a connection shares with the fan-out.
#[derive(Debug, Default)]
pub struct ConnectionSignal {
    /// Set when the connection's queue overflowed; the connection closes itself.
    pub overflowed: AtomicBool,
    pub notify: Notify,
}

/// One registered subscription.
#[derive(Debug)]
pub struct LiveSubscription {
    pub live_id: String,
    /// The client's id for the subscription (unique per connection).
    pub id: String,
    pub connection_id: String,
    pub user_id: UserId,
    pub username: String,
    pub sql: String,
    pub options: serde_json::Value,
    pub created_at: i64,
    pub updated_at: AtomicI64,
    pub changes: AtomicU64,
    pub query: LiveQuery,
    pub sender: mpsc::Sender<Outgoing>,
    pub signal: Arc<ConnectionSignal>,
}

enum FanoutEvent {
    Register(Arc<LiveSubscription>),
    Unregister(String),
    Changes(Vec<RowChange>),
    SchemaChanged(TableId, u32),
}

pub struct LiveRegistry {
    tx: mpsc::UnboundedSender<FanoutEvent>,
    /// Every live subscription by live id (for `system.live_queries` and KILL).
    all: RwLock<HashMap<String, Arc<LiveSubscription>>>,
    /// Number of subscriptions per watched table partition.
    watched: RwLock<HashMap<(TableId, Partition), usize>>,
}

impl ChangeSink for LiveRegistry {
    /// Forwards only changes to partitions someone watches, so writes to unwatched
    /// partitions cost one map lookup here and nothing in the fan-out.
    fn publish(&self, changes: &[RowChange]) {
        let watched = self.watched.read();
        let relevant: Vec<RowChange> =
            changes.iter().filter(|c| watched.contains_key(&(c.table, c.partition))).cloned().collect();
        drop(watched);
        if !relevant.is_empty() {
            let _ = self.tx.send(FanoutEvent::Changes(relevant));
        }
    }

    /// Enqueued like a change, so subscribers get every earlier change first.
    fn schema_changed(&self, table: TableId, schema_version: u32) {
        let _ = self.tx.send(FanoutEvent::SchemaChanged(table, schema_version));
    }
}

impl LiveRegistry {
    /// Creates the registry and starts its fan-out task on the current runtime.
    pub fn start() -> Arc<LiveRegistry> {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(fan_out(rx));
        Arc::new(LiveRegistry { tx, all: RwLock::new(HashMap::new()), watched: RwLock::new(HashMap::new()) })
    }

    /// Registers a subscription. Call under the commit lock (`Committer::at_watermark`), so
    /// its position in the change stream matches the watermark of its initial load.
    pub fn register(&self, sub: Arc<LiveSubscription>) {
        *self.watched.write().entry((sub.query.table.id, sub.query.partition)).or_default() += 1;
        self.all.write().insert(sub.live_id.clone(), sub.clone());
        let _ = self.tx.send(FanoutEvent::Register(sub));
    }

    pub fn unregister(&self, live_id: &str) -> Option<Arc<LiveSubscription>> {
        let removed = self.all.write().remove(live_id);
        if let Some(sub) = &removed {
            let key = (sub.query.table.id, sub.query.partition);
            let mut watched = self.watched.write();
            if let Some(n) = watched.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    watched.remove(&key);
                }
            }
            drop(watched);
            let _ = self.tx.send(FanoutEvent::Unregister(live_id.to_string()));
        }
        removed
    }

    pub fn get(&self, live_id: &str) -> Option<Arc<LiveSubscription>> {
        self.all.read().get(live_id).cloned()
    }

    pub fn snapshot(&self) -> Vec<Arc<LiveSubscription>> {
        self.all.read().values().cloned().collect()
    }

    /// Whether anyone subscribes to this table partition (ephemeral streams drop events
    /// nobody would receive).
    pub fn has_subscribers(&self, table: TableId, partition: Partition) -> bool {
        self.watched.read().contains_key(&(table, partition))
    }

    /// Number of live subscriptions on a table (any partition).
    pub fn count_on_table(&self, table: TableId) -> usize {
        self.all.read().values().filter(|s| s.query.table.id == table).count()
    }
}

async fn fan_out(mut rx: mpsc::UnboundedReceiver<FanoutEvent>) {
    let mut by_partition: HashMap<(TableId, Partition), Vec<Arc<LiveSubscription>>> = HashMap::new();
    while let Some(event) = rx.recv().await {
        match event {
            FanoutEvent::Register(sub) => {
                by_partition.entry((sub.query.table.id, sub.query.partition)).or_default().push(sub);
            }
            FanoutEvent::Unregister(live_id) => {
                by_partition.retain(|_, subs| {
                    subs.retain(|s| s.live_id != live_id);
                    !subs.is_empty()
                });
            }
            FanoutEvent::SchemaChanged(table, schema_version) => {
                by_partition.retain(|(t, _), subs| {
                    if *t != table {
                        return true;
                    }
                    for sub in subs.drain(..) {
                        let out = Outgoing::SchemaChanged { sub: sub.clone(), schema_version };
                        if sub.sender.try_send(out).is_err() {
                            // Too slow or gone: it closes, and the client resumes either way.
                            sub.signal.overflowed.store(true, Ordering::Relaxed);
                            sub.signal.notify.notify_one();
                        }
                    }
                    false
                });
            }
            FanoutEvent::Changes(changes) => {
                for change in &changes {
                    if let Some(subs) = by_partition.get(&(change.table, change.partition)) {
                        deliver(change, subs);
                    }
                }
            }
        }
    }
}

/// What one query makes of one change.
struct Event {
    op: ChangeOp,
    row: Vec<serde_json::Value>,
    old: Option<Vec<serde_json::Value>>,
}

/// Evaluates one change against the subscriptions of its partition. The row (and for
/// updates the old row) is converted to a one-row batch once and shared by all predicates.
fn deliver(change: &RowChange, subs: &[Arc<LiveSubscription>]) {
    let table = &subs[0].query.table;
    let new = &change.new;
    let old =
        change.old.as_ref().map(|values| StoredRow { updated: new.updated, deleted: false, values: values.clone() });
    let Ok(new_batch) = to_batch(table, &[new]) else { return };
    let old_batch = old.as_ref().and_then(|o| to_batch(table, &[o]).ok());
    // Subscriptions with the same SQL (several tabs or devices of one user) share one
    // evaluation: the event is computed once per distinct query.
    let mut evaluated: HashMap<&str, Option<Event>> = HashMap::new();
    for sub in subs {
        // Once a connection has dropped a frame it must not receive later ones (its client
        // would skip the gap when it resumes); it is closing.
        if sub.signal.overflowed.load(Ordering::Relaxed) {
            continue;
        }
        let q = &sub.query;
        let event = evaluated.entry(sub.sql.as_str()).or_insert_with(|| {
            let is = |batch: &RecordBatch| q.matches_batch(batch).map(|m| m[0]).unwrap_or(false);
            let was = old_batch.as_ref().is_some_and(is);
            let (op, row, old_values) = match change.kind {
                ChangeKind::Insert if is(&new_batch) => (ChangeOp::Insert, &new.values, None),
                ChangeKind::Update => match (was, is(&new_batch)) {
                    (true, true) => (ChangeOp::Update, &new.values, old.as_ref().map(|o| q.project(&o.values))),
                    (false, true) => (ChangeOp::Insert, &new.values, None),
                    (true, false) => (ChangeOp::Delete, &old.as_ref().expect("matched").values, None),
                    (false, false) => return None,
                },
                ChangeKind::Delete if was => (ChangeOp::Delete, &new.values, None),
                _ => return None,
            };
            Some(Event { op, row: q.project(row), old: old_values })
        });
        let Some(event) = event else { continue };
        let frame = ServerMessage::Change {
            id: sub.id.clone(),
            op: event.op,
            row: event.row.clone(),
            old: event.old.clone(),
            cursor: new.updated,
        };
        match sub.sender.try_send(Outgoing::Frame(frame)) {
            Ok(()) => {
                sub.changes.fetch_add(1, Ordering::Relaxed);
                sub.updated_at.store(crate::clock::now_micros(), Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                sub.signal.overflowed.store(true, Ordering::Relaxed);
                sub.signal.notify.notify_one();
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}
