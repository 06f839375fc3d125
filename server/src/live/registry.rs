//! The live-query registry and fan-out.
//!
//! Committed changes arrive from the [`Committer`](crate::tables::Committer) under its lock
//! and are only enqueued there, in commit order, on one channel. Registrations travel the
//! same channel (also enqueued under the commit lock, together with the watermark the
//! initial load reads up to), so every subscription sees exactly the changes committed after
//! its watermark.
//!
//! The router task drains that channel but evaluates nothing: it hands each change to the
//! [`FilterGroup`]s of its table partition. A group is the subscriptions that share one
//! compiled filter — the same SQL on the same partition, and the same user when the filter
//! depends on who asks (`CURRENT_USER()`). Each group is its own task with a bounded queue:
//! it evaluates the filter once per change and hands events to each connection's bounded
//! queue without waiting. The router and the groups run on the server's I/O runtime, beside
//! the commits that feed them and the socket writers they feed, so that an event is not
//! delayed by other users' queries: a filter that is cheap (it took under
//! [`SMALL_WORK`] last time, or calls no functions and has not run yet) of an owner who has
//! used little ([`FairScheduler::try_small`]) is evaluated in place and charged to its
//! owner; any other evaluation is sent to the query runtime, where it waits for a slot of
//! the fair scheduler like a query. So one costly filter delays only its own subscribers:
//!
//! - a group whose queue fills (its filter is slower than the changes arrive) is dissolved
//!   and its connections closed as slow consumers — clients resume from their cursors;
//! - a group that spends more than its CPU budget (`live.filter_budget_ms` per second, in
//!   bursts up to ten times that) or whose filter fails is ended with a `KILLED` error
//!   that says why.
//!
//! A full connection queue marks that connection as too slow: it is closed, and the client
//! resumes from its cursor.

use crate::budget::{FairScheduler, SMALL_WORK};
use crate::error::KalamError;
use crate::ids::{Partition, TableId, UserId};
use crate::live::query::{LiveQuery, to_batch};
use crate::storage::row_codec::StoredRow;
use crate::tables::{ChangeKind, ChangeSink, RowChange};
use datafusion::arrow::array::RecordBatch;
use kalamdb_client_core::protocol::ws::{ChangeOp, ServerMessage};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::sync::{Notify, mpsc};

/// What a connection's socket writer receives from the fan-out.
///
/// Each names the subscription it is for, not only its client-chosen id: by the time it is
/// read the client may have ended that subscription and reused the id, and a stale message
/// must then be dropped, not applied to the new one.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A change event of `sub`.
    Change { sub: Arc<LiveSubscription>, frame: ServerMessage },
    /// The subscription was ended (`KILL LIVE QUERY`, or its filter was too costly): forget
    /// it and tell the client.
    Killed { sub: Arc<LiveSubscription>, reason: String },
    /// The subscription's table was altered: it has left the fan-out; the connection drops
    /// it and tells the client to subscribe again.
    SchemaChanged { sub: Arc<LiveSubscription>, schema_version: u32 },
}

/// State a connection shares with the fan-out and the account commands.
#[derive(Debug, Default)]
pub(crate) struct ConnectionSignal {
    /// Set when the connection's queue overflowed; its socket writer closes it.
    pub overflowed: AtomicBool,
    /// Wakes the socket writer after `overflowed` was set.
    pub overflow_notify: Notify,
    /// Set when the connection's user was altered or dropped; the connection checks its
    /// credentials and privileges again.
    pub account_changed: AtomicBool,
    /// Wakes the connection after `account_changed` was set.
    pub account_notify: Notify,
}

impl ConnectionSignal {
    /// Marks the connection as too slow: it closes, and its client resumes from its cursors.
    pub(crate) fn overflow(&self) {
        self.overflowed.store(true, Ordering::Relaxed);
        self.overflow_notify.notify_one();
    }
}

/// One registered subscription.
#[derive(Debug)]
pub(crate) struct LiveSubscription {
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
    /// True until the connection has sent the initial load: its changes wait until then.
    pub loading: AtomicBool,
    /// Set once the connection has ended this subscription; messages still queued for it
    /// are dropped (the client may have reused its id for a new one).
    pub ended: AtomicBool,
    pub query: LiveQuery,
    pub sender: mpsc::Sender<Outgoing>,
    pub signal: Arc<ConnectionSignal>,
}

impl LiveSubscription {
    /// Whether the connection still serves this subscription.
    pub(crate) fn is_current(&self) -> bool {
        !self.ended.load(Ordering::Acquire)
    }

    /// Marks the subscription as ended by its connection; later messages for it are dropped.
    pub(crate) fn end(&self) {
        self.ended.store(true, Ordering::Release);
    }
}

/// Limits of subscription filter evaluation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FilterLimits {
    /// Changes queued for one group before it counts as too slow.
    pub queue: usize,
    /// CPU time a group may spend per second on average.
    pub budget_per_second: Duration,
}

enum FanoutEvent {
    Register(Arc<LiveSubscription>),
    Unregister(String),
    Changes(Vec<RowChange>),
    SchemaChanged(TableId, u32),
}

pub(crate) struct LiveRegistry {
    tx: mpsc::UnboundedSender<FanoutEvent>,
    /// Every live subscription by live id (for `system.live_queries` and KILL).
    all: RwLock<HashMap<String, Arc<LiveSubscription>>>,
    /// Number of subscriptions per watched table partition.
    watched: RwLock<HashMap<(TableId, Partition), usize>>,
    /// Open connections by user, told when their account changes.
    sessions: parking_lot::Mutex<HashMap<UserId, Vec<Weak<ConnectionSignal>>>>,
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
    /// Creates the registry; its router and filter groups run on `runtime`, and costly
    /// filter evaluations on `query_runtime`.
    pub(crate) fn start(
        runtime: Handle,
        query_runtime: Handle,
        scheduler: Arc<FairScheduler>,
        limits: FilterLimits,
    ) -> Arc<LiveRegistry> {
        let (tx, rx) = mpsc::unbounded_channel();
        let router = Router {
            runtime: runtime.clone(),
            query_runtime,
            scheduler,
            limits,
            groups: HashMap::new(),
            member_of: HashMap::new(),
        };
        runtime.spawn(router.run(rx));
        Arc::new(LiveRegistry {
            tx,
            all: RwLock::new(HashMap::new()),
            watched: RwLock::new(HashMap::new()),
            sessions: parking_lot::Mutex::new(HashMap::new()),
        })
    }

    /// Registers a subscription. Call under the commit lock (`Committer::at_watermark`), so
    /// its position in the change stream matches the watermark of its initial load.
    pub(crate) fn register(&self, sub: Arc<LiveSubscription>) {
        *self.watched.write().entry((sub.query.table.id, sub.query.partition)).or_default() += 1;
        self.all.write().insert(sub.live_id.clone(), sub.clone());
        let _ = self.tx.send(FanoutEvent::Register(sub));
    }

    /// Removes a subscription (a no-op if it is already gone).
    pub(crate) fn unregister(&self, live_id: &str) -> Option<Arc<LiveSubscription>> {
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

    /// Tells `signal` when `user`'s account changes (until the connection is dropped).
    pub(crate) fn watch_account(&self, user: UserId, signal: &Arc<ConnectionSignal>) {
        let mut sessions = self.sessions.lock();
        let signals = sessions.entry(user).or_default();
        signals.retain(|s| s.strong_count() > 0);
        signals.push(Arc::downgrade(signal));
    }

    /// A user's role, password or existence changed: their open connections check again at
    /// once (and close, or end the subscriptions they may no longer have).
    pub(crate) fn account_changed(&self, user: UserId) {
        let mut sessions = self.sessions.lock();
        let Some(signals) = sessions.get_mut(&user) else { return };
        signals.retain(|weak| match weak.upgrade() {
            Some(signal) => {
                signal.account_changed.store(true, Ordering::SeqCst);
                signal.account_notify.notify_one();
                true
            }
            None => false,
        });
        if signals.is_empty() {
            sessions.remove(&user);
        }
    }

    pub(crate) fn get(&self, live_id: &str) -> Option<Arc<LiveSubscription>> {
        self.all.read().get(live_id).cloned()
    }

    pub(crate) fn snapshot(&self) -> Vec<Arc<LiveSubscription>> {
        self.all.read().values().cloned().collect()
    }

    /// Whether anyone subscribes to this table partition (ephemeral streams drop events
    /// nobody would receive).
    pub(crate) fn has_subscribers(&self, table: TableId, partition: Partition) -> bool {
        self.watched.read().contains_key(&(table, partition))
    }

    /// Number of live subscriptions on a table (any partition).
    pub(crate) fn count_on_table(&self, table: TableId) -> usize {
        self.all.read().values().filter(|s| s.query.table.id == table).count()
    }
}

/// Which subscriptions share one filter evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    table: TableId,
    partition: Partition,
    sql: Arc<str>,
    /// Set when the filter depends on the user evaluating it.
    user: Option<UserId>,
}

impl GroupKey {
    fn of(sub: &LiveSubscription) -> GroupKey {
        GroupKey {
            table: sub.query.table.id,
            partition: sub.query.partition,
            sql: Arc::from(sub.sql.as_str()),
            user: sub.query.user_dependent.then_some(sub.user_id),
        }
    }
}

/// The router's view of a group.
struct GroupHandle {
    tx: mpsc::Sender<GroupEvent>,
    members: Vec<Arc<LiveSubscription>>,
}

/// What a group task receives, in commit order.
enum GroupEvent {
    Join(Arc<LiveSubscription>),
    Leave(String),
    Change(Arc<PreparedChange>),
    SchemaChanged(u32),
}

/// A change with its row (and old row) as one-row batches, built once for all groups.
struct PreparedChange {
    change: RowChange,
    old: Option<StoredRow>,
    new_batch: RecordBatch,
    old_batch: Option<RecordBatch>,
}

struct Router {
    runtime: Handle,
    query_runtime: Handle,
    scheduler: Arc<FairScheduler>,
    limits: FilterLimits,
    groups: HashMap<GroupKey, GroupHandle>,
    member_of: HashMap<String, GroupKey>,
}

impl Router {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<FanoutEvent>) {
        // Groups by table partition, for routing changes.
        let mut by_partition: HashMap<(TableId, Partition), Vec<GroupKey>> = HashMap::new();
        while let Some(event) = rx.recv().await {
            match event {
                FanoutEvent::Register(sub) => {
                    let key = GroupKey::of(&sub);
                    self.member_of.insert(sub.live_id.clone(), key.clone());
                    if !self.groups.contains_key(&key) {
                        let (tx, group_rx) = mpsc::channel(self.limits.queue);
                        let owner = sub.user_id;
                        let group =
                            FilterGroup::new(self.query_runtime.clone(), self.scheduler.clone(), owner, self.limits);
                        self.runtime.spawn(group.run(group_rx));
                        self.groups.insert(key.clone(), GroupHandle { tx, members: vec![] });
                        by_partition.entry((key.table, key.partition)).or_default().push(key.clone());
                    }
                    let handle = self.groups.get_mut(&key).expect("inserted above");
                    handle.members.push(sub.clone());
                    if !self.send(&key, GroupEvent::Join(sub)) {
                        self.dissolve(&key, &mut by_partition);
                    }
                }
                FanoutEvent::Unregister(live_id) => {
                    let Some(key) = self.member_of.remove(&live_id) else { continue };
                    let Some(handle) = self.groups.get_mut(&key) else { continue };
                    handle.members.retain(|s| s.live_id != live_id);
                    if handle.members.is_empty() {
                        // Dropping the sender ends the group task once it has drained.
                        self.remove(&key, &mut by_partition);
                    } else if !self.send(&key, GroupEvent::Leave(live_id)) {
                        self.dissolve(&key, &mut by_partition);
                    }
                }
                FanoutEvent::SchemaChanged(table, schema_version) => {
                    let keys: Vec<GroupKey> = self.groups.keys().filter(|k| k.table == table).cloned().collect();
                    for key in keys {
                        if !self.send(&key, GroupEvent::SchemaChanged(schema_version)) {
                            // Too far behind to tell its members in order: they reconnect.
                            self.dissolve(&key, &mut by_partition);
                        } else {
                            self.remove(&key, &mut by_partition);
                        }
                    }
                }
                FanoutEvent::Changes(changes) => {
                    for change in changes {
                        let Some(keys) = by_partition.get(&(change.table, change.partition)) else { continue };
                        let Some(member) =
                            keys.first().and_then(|k| self.groups.get(k)).and_then(|g| g.members.first())
                        else {
                            continue;
                        };
                        let Some(prepared) = prepare(change, &member.query) else { continue };
                        let prepared = Arc::new(prepared);
                        let mut slow = vec![];
                        for key in keys {
                            if !self.send(key, GroupEvent::Change(prepared.clone())) {
                                slow.push(key.clone());
                            }
                        }
                        for key in slow {
                            self.dissolve(&key, &mut by_partition);
                        }
                    }
                }
            }
        }
    }

    /// Enqueues for a group without waiting; false if the group is full or gone.
    fn send(&self, key: &GroupKey, event: GroupEvent) -> bool {
        self.groups.get(key).is_some_and(|g| g.tx.try_send(event).is_ok())
    }

    fn remove(&mut self, key: &GroupKey, by_partition: &mut HashMap<(TableId, Partition), Vec<GroupKey>>) {
        if let Some(handle) = self.groups.remove(key) {
            for member in &handle.members {
                self.member_of.remove(&member.live_id);
            }
        }
        let partition = (key.table, key.partition);
        if let Some(keys) = by_partition.get_mut(&partition) {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                by_partition.remove(&partition);
            }
        }
    }

    /// A group that cannot keep up: its connections close as slow consumers, so no
    /// subscriber misses a change without knowing.
    fn dissolve(&mut self, key: &GroupKey, by_partition: &mut HashMap<(TableId, Partition), Vec<GroupKey>>) {
        if let Some(handle) = self.groups.get(key) {
            for member in &handle.members {
                member.signal.overflow();
            }
        }
        self.remove(key, by_partition);
    }
}

fn prepare(change: RowChange, query: &LiveQuery) -> Option<PreparedChange> {
    let table = &query.table;
    let old = change.old.as_ref().map(|values| StoredRow {
        updated: change.new.updated,
        deleted: false,
        values: values.clone(),
    });
    let new_batch = to_batch(table, &[&change.new]).ok()?;
    let old_batch = old.as_ref().and_then(|o| to_batch(table, &[o]).ok());
    Some(PreparedChange { change, old, new_batch, old_batch })
}

/// Subscriptions sharing one filter, evaluated by one task (see the module docs).
struct FilterGroup {
    /// Where evaluations that are not cheap run, under a slot.
    query_runtime: Handle,
    scheduler: Arc<FairScheduler>,
    owner: UserId,
    members: Vec<Arc<LiveSubscription>>,
    /// CPU time left, refilled at `budget_per_second`; negative means over budget.
    budget: f64,
    refilled: Instant,
    limits: FilterLimits,
    /// CPU time of the last evaluation (none yet: the first queues for a slot, unless the
    /// filter calls no functions).
    last_cost: Option<Duration>,
}

/// Bursts a group may spend, in seconds of its per-second budget.
const BUDGET_BURST: f64 = 10.0;

impl FilterGroup {
    fn new(query_runtime: Handle, scheduler: Arc<FairScheduler>, owner: UserId, limits: FilterLimits) -> FilterGroup {
        let burst = limits.budget_per_second.as_secs_f64() * BUDGET_BURST;
        FilterGroup {
            query_runtime,
            scheduler,
            owner,
            members: vec![],
            budget: burst,
            refilled: Instant::now(),
            limits,
            last_cost: None,
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<GroupEvent>) {
        while let Some(event) = rx.recv().await {
            match event {
                GroupEvent::Join(sub) => {
                    // The first member's filter is the group's: if it calls no functions it
                    // is cheap from the start and need not queue for a slot (under load, a
                    // new subscription's first event would otherwise wait behind long polls).
                    if self.members.is_empty() && self.last_cost.is_none() && sub.query.is_function_free() {
                        self.last_cost = Some(Duration::ZERO);
                    }
                    self.members.push(sub);
                }
                GroupEvent::Leave(live_id) => self.members.retain(|s| s.live_id != live_id),
                GroupEvent::SchemaChanged(schema_version) => {
                    for sub in self.members.drain(..) {
                        let out = Outgoing::SchemaChanged { sub: sub.clone(), schema_version };
                        if sub.sender.try_send(out).is_err() {
                            // Too slow or gone: it closes, and the client resumes either way.
                            sub.signal.overflow();
                        }
                    }
                    return;
                }
                GroupEvent::Change(prepared) => {
                    if self.members.iter().all(|s| s.signal.overflowed.load(Ordering::Relaxed)) {
                        continue;
                    }
                    let (event, spent) = self.evaluate(&prepared).await;
                    self.last_cost = Some(spent);
                    let event = match event {
                        Ok(event) => event,
                        Err(e) => {
                            return self.end(&format!("the subscription's filter failed: {}", e.public_message()));
                        }
                    };
                    if !self.charge(spent) {
                        return self.end(&format!(
                            "the subscription's filter costs more CPU than allowed ({} ms per second, \
                             live.filter_budget_ms); simplify its WHERE clause",
                            self.limits.budget_per_second.as_millis()
                        ));
                    }
                    if let Some(event) = event {
                        self.deliver(&event, prepared.change.new.updated);
                    }
                }
            }
        }
    }

    /// Evaluates a change: in place if the filter is cheap and its owner has used little,
    /// else on the query runtime under a slot. Returns the outcome and the CPU time spent.
    async fn evaluate(&self, prepared: &Arc<PreparedChange>) -> (crate::error::Result<Option<Event>>, Duration) {
        let cheap = self.last_cost.is_some_and(|c| c < SMALL_WORK);
        if let Some(_charge) = cheap.then(|| self.scheduler.try_small(self.owner)).flatten() {
            let started = Instant::now();
            return (evaluate(&self.members[0].query, prepared), started.elapsed());
        }
        let (scheduler, owner, sub, prepared) =
            (self.scheduler.clone(), self.owner, self.members[0].clone(), prepared.clone());
        let costly = self.query_runtime.spawn(async move {
            let _slot = scheduler.acquire(owner).await;
            let started = Instant::now();
            (evaluate(&sub.query, &prepared), started.elapsed())
        });
        match costly.await {
            Ok(outcome) => outcome,
            Err(_) => (Err(KalamError::internal("the filter's evaluation panicked")), Duration::ZERO),
        }
    }

    /// Takes `spent` from the budget; false once it is exhausted.
    fn charge(&mut self, spent: Duration) -> bool {
        let rate = self.limits.budget_per_second.as_secs_f64();
        let now = Instant::now();
        let refill = now.duration_since(self.refilled).as_secs_f64() * rate;
        self.budget = (self.budget + refill).min(rate * BUDGET_BURST) - spent.as_secs_f64();
        self.refilled = now;
        self.budget >= 0.0
    }

    /// Ends every subscription of the group with `reason` (their connections unregister them).
    fn end(&self, reason: &str) {
        tracing::info!(owner = self.owner.0, "ending subscriptions: {reason}");
        for sub in &self.members {
            let out = Outgoing::Killed { sub: sub.clone(), reason: reason.to_string() };
            if sub.sender.try_send(out).is_err() {
                sub.signal.overflow();
            }
        }
    }

    fn deliver(&self, event: &Event, cursor: i64) {
        for sub in &self.members {
            // Once a connection has dropped a frame it must not receive later ones (its client
            // would skip the gap when it resumes); it is closing.
            if sub.signal.overflowed.load(Ordering::Relaxed) {
                continue;
            }
            let frame = ServerMessage::Change {
                id: sub.id.clone(),
                op: event.op,
                row: event.row.clone(),
                old: event.old.clone(),
                cursor,
            };
            match sub.sender.try_send(Outgoing::Change { sub: sub.clone(), frame }) {
                Ok(()) => {
                    sub.changes.fetch_add(1, Ordering::Relaxed);
                    sub.updated_at.store(crate::clock::now_micros(), Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Full(_)) => sub.signal.overflow(),
                Err(mpsc::error::TrySendError::Closed(_)) => {}
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

/// Evaluates one change against a group's filter: `None` when its subscribers see nothing.
fn evaluate(q: &LiveQuery, prepared: &PreparedChange) -> crate::error::Result<Option<Event>> {
    let is = |batch: &RecordBatch| q.matches_batch(batch).map(|m| m[0]);
    let was = match &prepared.old_batch {
        Some(batch) => is(batch)?,
        None => false,
    };
    let new = &prepared.change.new;
    let old = prepared.old.as_ref();
    let (op, row, old_values) = match prepared.change.kind {
        ChangeKind::Insert if is(&prepared.new_batch)? => (ChangeOp::Insert, &new.values, None),
        ChangeKind::Update => match (was, is(&prepared.new_batch)?) {
            (true, true) => (ChangeOp::Update, &new.values, old.map(|o| q.project(&o.values))),
            (false, true) => (ChangeOp::Insert, &new.values, None),
            (true, false) => (ChangeOp::Delete, &old.expect("matched").values, None),
            (false, false) => return Ok(None),
        },
        ChangeKind::Delete if was => (ChangeOp::Delete, &new.values, None),
        _ => return Ok(None),
    };
    Ok(Some(Event { op, row: q.project(row), old: old_values }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::test_table;
    use crate::types::DataType;
    use crate::values::Value;

    fn registry(queue: usize) -> Arc<LiveRegistry> {
        let limits = FilterLimits { queue, budget_per_second: Duration::from_millis(100) };
        LiveRegistry::start(Handle::current(), Handle::current(), FairScheduler::new(2), limits)
    }

    fn subscribe(user: u64, live_id: &str) -> (Arc<LiveSubscription>, mpsc::Receiver<Outgoing>) {
        let table = test_table(&[("id", DataType::BigInt)]);
        let (sender, receiver) = mpsc::channel(1_000);
        let sub = LiveSubscription {
            live_id: live_id.into(),
            id: "s".into(),
            connection_id: format!("c-{live_id}"),
            user_id: UserId(user),
            username: format!("u{user}"),
            sql: "SELECT * FROM app.t".into(),
            options: serde_json::Value::Null,
            created_at: 0,
            updated_at: AtomicI64::new(0),
            changes: AtomicU64::new(0),
            loading: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            query: LiveQuery::unfiltered(table, Partition::User(UserId(user))),
            sender,
            signal: Arc::new(ConnectionSignal::default()),
        };
        (Arc::new(sub), receiver)
    }

    fn insert(user: u64, id: i64, updated: i64) -> RowChange {
        RowChange {
            table: TableId(1),
            partition: Partition::User(UserId(user)),
            kind: ChangeKind::Insert,
            old: None,
            new: StoredRow { updated, deleted: false, values: vec![Value::Int(id)] },
        }
    }

    /// The cursors of the change events `receiver` gets within a short wait.
    async fn received(receiver: &mut mpsc::Receiver<Outgoing>) -> Vec<i64> {
        let mut out = Vec::new();
        while let Ok(Some(message)) = tokio::time::timeout(Duration::from_millis(300), receiver.recv()).await {
            match message {
                Outgoing::Change { frame: ServerMessage::Change { cursor, .. }, .. } => out.push(cursor),
                other => panic!("unexpected {other:?}"),
            }
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changes_reach_their_partitions_subscribers_in_commit_order_and_no_one_else() {
        let registry = registry(1_000);
        let (alice, mut to_alice) = subscribe(10, "live-a");
        let (bob, mut to_bob) = subscribe(11, "live-b");
        registry.register(alice.clone());
        registry.register(bob);
        assert!(registry.has_subscribers(TableId(1), Partition::User(UserId(10))));
        assert!(!registry.has_subscribers(TableId(1), Partition::User(UserId(12))));
        // Commits as the commit path publishes them: in `_updated` order, in batches.
        for first in (1..=200).step_by(20) {
            let batch: Vec<RowChange> = (first..first + 20).map(|u| insert(10 + (u % 2) as u64, u, u)).collect();
            registry.publish(&batch);
        }
        let (a, b) = (received(&mut to_alice).await, received(&mut to_bob).await);
        assert_eq!(a, (1..=200).filter(|u| u % 2 == 0).collect::<Vec<i64>>());
        assert_eq!(b, (1..=200).filter(|u| u % 2 == 1).collect::<Vec<i64>>());
        assert!(!alice.signal.overflowed.load(Ordering::Relaxed));

        // After unregistering, nothing more arrives, and the partition is no longer watched.
        assert!(registry.unregister("live-a").is_some());
        assert!(registry.unregister("live-a").is_none());
        registry.publish(&[insert(10, 1_000, 1_000), insert(11, 1_001, 1_001)]);
        assert_eq!(received(&mut to_alice).await, Vec::<i64>::new());
        assert_eq!(received(&mut to_bob).await, [1_001]);
        assert!(!registry.has_subscribers(TableId(1), Partition::User(UserId(10))));
        assert_eq!(registry.count_on_table(TableId(1)), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_that_falls_behind_closes_its_connections_instead_of_skipping_changes() {
        let registry = registry(8);
        let (alice, mut to_alice) = subscribe(10, "live-a");
        registry.register(alice.clone());
        for u in 1..=2_000 {
            registry.publish(&[insert(10, u, u)]);
        }
        let got = received(&mut to_alice).await;
        // Whatever arrived is a gapless prefix; the rest is left to the client's resume.
        assert_eq!(got, (1..=got.len() as i64).collect::<Vec<i64>>());
        if got.len() < 2_000 {
            assert!(alice.signal.overflowed.load(Ordering::Relaxed), "a gap must close the connection");
        }
    }
}
