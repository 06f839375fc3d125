//! [`FairScheduler`]: CPU slots on the query runtime, handed out poll by poll, first to the
//! users who have used the least.
//!
//! A statement holds a slot while it plans and during each poll of its result stream
//! ([`FairStream`]; DataFusion's cooperative scheduling ends a poll after a bounded amount of
//! input, so even a sort or an aggregate over a huge input gives its slot back often); a
//! subscription group holds one while it evaluates a change. Work never queues inside the
//! runtime: it queues here, where the order is chosen.
//!
//! There are two pools of slots. Quiet users — up to 0.2 s of recent usage (slot time,
//! halving every [`USAGE_HALF_LIFE`]) — take slots of the quiet pool, one per CPU; busy
//! users take slots of the busy pool, one fewer, and their statements run on threads of the
//! lowest priority ([`Lane::Busy`]). So however much busy users compute, quiet users' short
//! work never waits for a slot behind it, and the kernel runs it first. Within a pool, a
//! freed slot goes to the waiting user with the least recent usage, and among one user's
//! waiters to the first to arrive: a user who queues many requests waits behind everyone
//! else. Nobody waits for ever: while a user waits, their usage decays until it is the least.

use super::runtime::Lane;
use crate::ids::UserId;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::Result as DfResult;
use datafusion::physical_plan::{RecordBatchStream, SendableRecordBatchStream};
use futures::Stream;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Recent usage halves over this period.
pub const USAGE_HALF_LIFE: Duration = Duration::from_secs(10);

/// A user whose recent usage is above this (0.2 s of slot time, decaying) is busy.
const BUSY_USAGE_MICROS: f64 = 200_000.0;

/// Usage records kept before idle users are forgotten.
const MAX_TRACKED_USERS: usize = 10_000;

#[derive(Debug)]
pub struct FairScheduler {
    slots: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    quiet: Pool,
    busy: Pool,
    usage: HashMap<UserId, Usage>,
}

/// Slots of one lane.
#[derive(Debug)]
struct Pool {
    free: usize,
    /// Waiters per user, in arrival order.
    waiting: HashMap<UserId, VecDeque<(oneshot::Sender<Slot>, Work)>>,
}

impl Pool {
    fn new(slots: usize) -> Pool {
        Pool { free: slots, waiting: HashMap::new() }
    }
}

impl State {
    fn usage_of(&self, user: UserId, now: Instant) -> f64 {
        self.usage.get(&user).map_or(0.0, |u| u.now(now))
    }

    fn lane_of(&self, user: UserId, now: Instant) -> Lane {
        if self.usage_of(user, now) > BUSY_USAGE_MICROS { Lane::Busy } else { Lane::Quiet }
    }

    fn pool(&mut self, lane: Lane) -> &mut Pool {
        match lane {
            Lane::Quiet => &mut self.quiet,
            Lane::Busy => &mut self.busy,
        }
    }

    /// The waiting user of `lane` with the least recent usage.
    fn next_waiter(&self, lane: Lane, now: Instant) -> Option<UserId> {
        let pool = match lane {
            Lane::Quiet => &self.quiet,
            Lane::Busy => &self.busy,
        };
        pool.waiting
            .keys()
            .map(|u| (*u, self.usage_of(*u, now)))
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
            .map(|(u, _)| u)
    }
}

#[derive(Debug, Clone, Copy)]
struct Usage {
    micros: f64,
    at: Instant,
}

impl Usage {
    fn now(&self, now: Instant) -> f64 {
        let halvings = now.saturating_duration_since(self.at).as_secs_f64() / USAGE_HALF_LIFE.as_secs_f64();
        self.micros * 0.5f64.powf(halvings)
    }
}

/// What a slot is taken for (named in the log when a slot is held long).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Planning a statement.
    Plan,
    /// One poll of a statement's result stream.
    Execute,
    /// Turning results into JSON.
    Render,
    /// Evaluating a subscription filter on a change.
    Filter,
    /// Reading and filtering one batch of a catch-up.
    CatchUp,
}

/// A held slot; released (and its time charged to its user) when dropped.
#[derive(Debug)]
pub struct Slot {
    scheduler: Arc<FairScheduler>,
    user: UserId,
    lane: Lane,
    work: Work,
    started: Instant,
    armed: bool,
}

/// Slots held longer than this are logged (at debug level): they delay everyone waiting.
const LONG_SLOT: Duration = Duration::from_millis(20);

impl Drop for Slot {
    fn drop(&mut self) {
        if self.armed {
            let used = self.started.elapsed();
            if used > LONG_SLOT {
                let (user, work, ms) = (self.user.0, self.work, used.as_millis() as u64);
                tracing::debug!(user, ?work, ms, "a CPU slot was held long");
            }
            self.scheduler.release(self.user, self.lane, used);
        }
    }
}

impl FairScheduler {
    /// `slots` quiet slots (one per query thread) and one fewer busy ones (at least one).
    pub fn new(slots: usize) -> Arc<FairScheduler> {
        let slots = slots.max(1);
        Arc::new(FairScheduler {
            slots,
            state: Mutex::new(State {
                quiet: Pool::new(slots),
                busy: Pool::new((slots - 1).max(1)),
                usage: HashMap::new(),
            }),
        })
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Waits for a slot of the user's lane. Cancel-safe: a slot granted to a waiter that has
    /// gone away passes on.
    pub async fn acquire(self: &Arc<Self>, user: UserId, work: Work) -> Slot {
        let (lane, rx) = {
            let mut state = self.state.lock();
            let now = Instant::now();
            let lane = state.lane_of(user, now);
            // Served at once if a slot is free and no quieter user of the lane waits.
            let mine = state.usage_of(user, now);
            let quieter_waits =
                state.next_waiter(lane, now).is_some_and(|w| w != user && state.usage_of(w, now) <= mine);
            let pool = state.pool(lane);
            if pool.free > 0 && !quieter_waits {
                pool.free -= 1;
                return self.slot(user, lane, work);
            }
            let (tx, rx) = oneshot::channel();
            pool.waiting.entry(user).or_default().push_back((tx, work));
            (lane, rx)
        };
        match rx.await {
            Ok(slot) => slot,
            // The scheduler went away (shutdown): run without a slot.
            Err(_) => Slot { scheduler: self.clone(), user, lane, work, started: Instant::now(), armed: false },
        }
    }

    /// The threads a statement of `user` starting now runs on.
    pub fn lane(&self, user: UserId) -> Lane {
        self.state.lock().lane_of(user, Instant::now())
    }

    /// The recent usage of a user, in seconds of slot time.
    pub fn usage_secs(&self, user: UserId) -> f64 {
        self.state.lock().usage_of(user, Instant::now()) / 1e6
    }

    fn slot(self: &Arc<Self>, user: UserId, lane: Lane, work: Work) -> Slot {
        Slot { scheduler: self.clone(), user, lane, work, started: Instant::now(), armed: true }
    }

    fn release(self: &Arc<Self>, user: UserId, lane: Lane, used: Duration) {
        let mut state = self.state.lock();
        let now = Instant::now();
        let usage = state.usage_of(user, now) + used.as_micros() as f64;
        state.usage.insert(user, Usage { micros: usage, at: now });
        if state.usage.len() > MAX_TRACKED_USERS {
            state.usage.retain(|_, u| u.now(now) > 1_000.0);
        }
        state.pool(lane).free += 1;
        while let Some(next) = state.next_waiter(lane, now) {
            let pool = state.pool(lane);
            let queue = pool.waiting.get_mut(&next).expect("a waiting user");
            let (tx, work) = queue.pop_front().expect("queues are never left empty");
            if queue.is_empty() {
                pool.waiting.remove(&next);
            }
            pool.free -= 1;
            match tx.send(self.slot(next, lane, work)) {
                Ok(()) => return,
                // The waiter gave up; its slot must not release again.
                Err(mut slot) => {
                    slot.armed = false;
                    state.pool(lane).free += 1;
                }
            }
        }
    }
}

/// A result stream that only computes while it holds a slot: a slot is taken before each
/// poll and given back after it, charged to `user`.
pub struct FairStream {
    inner: SendableRecordBatchStream,
    scheduler: Arc<FairScheduler>,
    user: UserId,
    acquiring: Option<BoxFuture<'static, Slot>>,
}

impl FairStream {
    pub fn new(inner: SendableRecordBatchStream, scheduler: Arc<FairScheduler>, user: UserId) -> FairStream {
        FairStream { inner, scheduler, user, acquiring: None }
    }
}

impl Stream for FairStream {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let acquiring = this.acquiring.get_or_insert_with(|| {
            let (scheduler, user) = (this.scheduler.clone(), this.user);
            Box::pin(async move { scheduler.acquire(user, Work::Execute).await })
        });
        let Poll::Ready(slot) = acquiring.as_mut().poll(cx) else { return Poll::Pending };
        this.acquiring = None;
        let polled = this.inner.as_mut().poll_next(cx);
        drop(slot);
        polled
    }
}

impl RecordBatchStream for FairStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: u64) -> UserId {
        UserId(n)
    }

    #[tokio::test]
    async fn slots_are_limited_and_passed_on() {
        let s = FairScheduler::new(2);
        let a = s.acquire(user(1), Work::Execute).await;
        let b = s.acquire(user(2), Work::Execute).await;
        let waiting = tokio::spawn({
            let s = s.clone();
            async move { s.acquire(user(3), Work::Execute).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        drop(a);
        let c = tokio::time::timeout(Duration::from_secs(1), waiting).await.unwrap().unwrap();
        drop((b, c));
        assert_eq!(s.state.lock().quiet.free, 2);
    }

    #[tokio::test]
    async fn quiet_users_go_before_heavy_ones() {
        let s = FairScheduler::new(1);
        // User 1 has used the slot for a while.
        let heavy = s.acquire(user(1), Work::Execute).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(heavy);
        let holder = s.acquire(user(9), Work::Execute).await;
        // User 1 queues first, user 2 (no usage) later: user 2 is served first.
        let order = Arc::new(Mutex::new(Vec::new()));
        let spawn = |u: u64| {
            let (s, order) = (s.clone(), order.clone());
            tokio::spawn(async move {
                let _slot = s.acquire(user(u), Work::Execute).await;
                order.lock().push(u);
            })
        };
        let first = spawn(1);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let second = spawn(2);
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(holder);
        first.await.unwrap();
        second.await.unwrap();
        assert_eq!(*order.lock(), vec![2, 1]);
        assert!(s.usage_secs(user(1)) >= 0.04);
    }

    #[tokio::test]
    async fn a_user_with_many_waiters_does_not_hold_up_others() {
        let s = FairScheduler::new(1);
        let holder = s.acquire(user(1), Work::Execute).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(holder);
        let holder = s.acquire(user(1), Work::Execute).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = vec![];
        for u in [1, 1, 1, 1, 1, 2] {
            let (s, order) = (s.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = s.acquire(user(u), Work::Execute).await;
                order.lock().push(u);
            }));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        drop(holder);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(order.lock()[0], 2, "{:?}", order.lock());
    }

    #[tokio::test]
    async fn busy_users_take_busy_slots_and_never_hold_up_quiet_ones() {
        let s = FairScheduler::new(2);
        // User 1 becomes busy (over 0.2 s of recent usage).
        let first = s.acquire(user(1), Work::Execute).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        drop(first);
        assert_eq!(s.lane(user(1)), Lane::Busy);
        // One busy slot: the busy user's second acquire waits...
        let held = s.acquire(user(1), Work::Execute).await;
        let second = tokio::spawn({
            let s = s.clone();
            async move { s.acquire(user(1), Work::Execute).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!second.is_finished(), "a busy user took a second slot");
        // ...while both quiet slots stay free for quiet users.
        let quiet = tokio::time::timeout(Duration::from_millis(100), async {
            (s.acquire(user(2), Work::Execute).await, s.acquire(user(3), Work::Execute).await)
        })
        .await;
        assert!(quiet.is_ok(), "a quiet user waited");
        drop(quiet);
        drop(held);
        let second = tokio::time::timeout(Duration::from_secs(1), second).await;
        assert!(second.is_ok(), "the busy user's waiter was never served");
    }

    #[tokio::test]
    async fn a_cancelled_waiter_does_not_lose_the_slot() {
        let s = FairScheduler::new(1);
        let holder = s.acquire(user(1), Work::Execute).await;
        let cancelled = tokio::spawn({
            let s = s.clone();
            async move { s.acquire(user(2), Work::Execute).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        cancelled.abort();
        let _ = cancelled.await;
        drop(holder);
        let again = tokio::time::timeout(Duration::from_secs(1), s.acquire(user(3), Work::Execute)).await;
        assert!(again.is_ok(), "the slot was lost");
    }
}
