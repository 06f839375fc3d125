//! [`FairScheduler`]: CPU slots on the query runtime, handed out poll by poll, first to the
//! users who have used the least.
//!
//! A statement holds a slot while it plans and during each poll of its result stream
//! ([`FairStream`]; DataFusion's cooperative scheduling ends a poll after a bounded amount of
//! input, so even a sort or an aggregate over a huge input gives its slot back often); a
//! subscription group holds one while it evaluates a change. There is one slot per CPU (the
//! runtime has one spare thread), so work never queues inside the runtime: it queues here,
//! where the order is chosen: a freed slot goes to the waiting user with the least recent usage (slot time,
//! halving every [`USAGE_HALF_LIFE`]), and among one user's waiters to the first to arrive.
//! A user who keeps every slot busy therefore waits behind everyone else, however many
//! requests they queue; a quiet user is served next. Nobody waits for ever: while a user
//! waits, their usage decays until it is the least.
//!
//! Small work — a live filter whose last evaluation took under [`SMALL_WORK`] — of a user
//! with under [`SMALL_WORK_USAGE`] of recent usage does not queue at all
//! ([`FairScheduler::try_small`]; the fan-out runs it where it is, off the query runtime):
//! behind another user's poll of up to tens of milliseconds it would wait a thousand times
//! longer than it runs. It is charged all the same, so a user who sends much of it soon
//! queues like everyone else.

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
pub(super) const USAGE_HALF_LIFE: Duration = Duration::from_secs(10);

/// Work that took less than this last time is small (see the module docs).
pub(crate) const SMALL_WORK: Duration = Duration::from_millis(1);

/// Users with less recent usage than this (in seconds of slot time) run small work at once.
pub(super) const SMALL_WORK_USAGE: f64 = 0.2;

/// Usage records kept before idle users are forgotten.
const MAX_TRACKED_USERS: usize = 10_000;

#[derive(Debug)]
pub(crate) struct FairScheduler {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    free: usize,
    /// Waiters per user, in arrival order.
    waiting: HashMap<UserId, VecDeque<oneshot::Sender<Slot>>>,
    usage: HashMap<UserId, Usage>,
}

impl State {
    fn usage_of(&self, user: UserId, now: Instant) -> f64 {
        self.usage.get(&user).map_or(0.0, |u| u.now(now))
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

/// A held slot; released (and its time charged to its user) when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    scheduler: Arc<FairScheduler>,
    user: UserId,
    started: Instant,
    hold: Hold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// One of the scheduler's slots: passed on when dropped.
    Slot,
    /// Small work run without a slot: only charged.
    Small,
    /// Nothing to release or charge (the scheduler shut down, or the slot already passed on).
    Nothing,
}

impl Drop for Slot {
    fn drop(&mut self) {
        match self.hold {
            Hold::Slot => self.scheduler.release(self.user, self.started.elapsed()),
            Hold::Small => self.scheduler.charge(self.user, self.started.elapsed()),
            Hold::Nothing => {}
        }
    }
}

impl FairScheduler {
    pub(crate) fn new(slots: usize) -> Arc<FairScheduler> {
        Arc::new(FairScheduler {
            state: Mutex::new(State { free: slots.max(1), waiting: HashMap::new(), usage: HashMap::new() }),
        })
    }

    /// Waits for a slot. Cancel-safe: a slot granted to a waiter that has gone away passes on.
    pub(crate) async fn acquire(self: &Arc<Self>, user: UserId) -> Slot {
        let rx = {
            let mut state = self.state.lock();
            if state.free > 0 && state.waiting.is_empty() {
                state.free -= 1;
                return self.slot(user);
            }
            let (tx, rx) = oneshot::channel();
            state.waiting.entry(user).or_default().push_back(tx);
            rx
        };
        match rx.await {
            Ok(slot) => slot,
            // The scheduler went away (shutdown): run without a slot.
            Err(_) => Slot { scheduler: self.clone(), user, started: Instant::now(), hold: Hold::Nothing },
        }
    }

    /// Lets small work (see the module docs) of `user` start at once without a slot (it is
    /// charged when the returned guard drops), or none if the user has used too much lately
    /// and must [`acquire`](Self::acquire) a slot like any other work.
    pub(crate) fn try_small(self: &Arc<Self>, user: UserId) -> Option<Slot> {
        (self.usage_secs(user) < SMALL_WORK_USAGE).then(|| Slot {
            scheduler: self.clone(),
            user,
            started: Instant::now(),
            hold: Hold::Small,
        })
    }

    /// The recent usage of a user, in seconds of slot time.
    pub(crate) fn usage_secs(&self, user: UserId) -> f64 {
        self.state.lock().usage.get(&user).map_or(0.0, |u| u.now(Instant::now())) / 1e6
    }

    fn slot(self: &Arc<Self>, user: UserId) -> Slot {
        Slot { scheduler: self.clone(), user, started: Instant::now(), hold: Hold::Slot }
    }

    /// Adds `used` to the user's recent usage.
    fn charge(&self, user: UserId, used: Duration) {
        let mut state = self.state.lock();
        Self::charge_locked(&mut state, user, used, Instant::now());
    }

    fn charge_locked(state: &mut State, user: UserId, used: Duration, now: Instant) {
        let usage = state.usage_of(user, now) + used.as_micros() as f64;
        state.usage.insert(user, Usage { micros: usage, at: now });
        if state.usage.len() > MAX_TRACKED_USERS {
            state.usage.retain(|_, u| u.now(now) > 1_000.0);
        }
    }

    fn release(self: &Arc<Self>, user: UserId, used: Duration) {
        let mut state = self.state.lock();
        let now = Instant::now();
        Self::charge_locked(&mut state, user, used, now);
        loop {
            // The waiting user who has used the least.
            let next = state
                .waiting
                .keys()
                .map(|u| (*u, state.usage_of(*u, now)))
                .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
                .map(|(u, _)| u);
            let Some(next) = next else { break };
            let queue = state.waiting.get_mut(&next).expect("a waiting user");
            let tx = queue.pop_front().expect("queues are never left empty");
            if queue.is_empty() {
                state.waiting.remove(&next);
            }
            match tx.send(self.slot(next)) {
                Ok(()) => return,
                // The waiter gave up; its slot must not release again.
                Err(mut slot) => slot.hold = Hold::Nothing,
            }
        }
        state.free += 1;
    }
}

/// A result stream that only computes while it holds a slot: a slot is taken before each
/// poll and given back after it, charged to `user`.
pub(crate) struct FairStream {
    inner: SendableRecordBatchStream,
    scheduler: Arc<FairScheduler>,
    user: UserId,
    acquiring: Option<BoxFuture<'static, Slot>>,
}

impl FairStream {
    pub(crate) fn new(inner: SendableRecordBatchStream, scheduler: Arc<FairScheduler>, user: UserId) -> FairStream {
        FairStream { inner, scheduler, user, acquiring: None }
    }
}

impl Stream for FairStream {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let acquiring = this.acquiring.get_or_insert_with(|| {
            let (scheduler, user) = (this.scheduler.clone(), this.user);
            Box::pin(async move { scheduler.acquire(user).await })
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
        let a = s.acquire(user(1)).await;
        let b = s.acquire(user(2)).await;
        let waiting = tokio::spawn({
            let s = s.clone();
            async move { s.acquire(user(3)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        drop(a);
        let c = tokio::time::timeout(Duration::from_secs(1), waiting).await.unwrap().unwrap();
        drop((b, c));
        assert_eq!(s.state.lock().free, 2);
    }

    #[tokio::test]
    async fn quiet_users_go_before_heavy_ones() {
        let s = FairScheduler::new(1);
        // User 1 has used the slot for a while.
        let heavy = s.acquire(user(1)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(heavy);
        let holder = s.acquire(user(9)).await;
        // User 1 queues first, user 2 (no usage) later: user 2 is served first.
        let order = Arc::new(Mutex::new(Vec::new()));
        let spawn = |u: u64| {
            let (s, order) = (s.clone(), order.clone());
            tokio::spawn(async move {
                let _slot = s.acquire(user(u)).await;
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
    async fn small_work_of_quiet_users_skips_the_queue_and_is_charged() {
        let s = FairScheduler::new(1);
        let holder = s.acquire(user(1)).await;
        // Every slot is taken, yet a quiet user's small work starts at once.
        let small = s.try_small(user(2)).expect("a quiet user runs small work at once");
        tokio::time::sleep(Duration::from_millis(250)).await;
        drop(small);
        assert!(s.usage_secs(user(2)) >= 0.2, "small work is charged");
        assert_eq!(s.state.lock().free, 0, "small work took no slot");
        // Now over the allowance: user 2's small work must wait for a slot like any other.
        assert!(s.try_small(user(2)).is_none());
        assert!(s.try_small(user(3)).is_some(), "other users are not affected");
        drop(holder);
        assert_eq!(s.state.lock().free, 1);
    }

    #[tokio::test]
    async fn a_user_with_many_waiters_does_not_hold_up_others() {
        let s = FairScheduler::new(1);
        let holder = s.acquire(user(1)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(holder);
        let holder = s.acquire(user(1)).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = vec![];
        for u in [1, 1, 1, 1, 1, 2] {
            let (s, order) = (s.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = s.acquire(user(u)).await;
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
    async fn a_cancelled_waiter_does_not_lose_the_slot() {
        let s = FairScheduler::new(1);
        let holder = s.acquire(user(1)).await;
        let cancelled = tokio::spawn({
            let s = s.clone();
            async move { s.acquire(user(2)).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        cancelled.abort();
        let _ = cancelled.await;
        drop(holder);
        let again = tokio::time::timeout(Duration::from_secs(1), s.acquire(user(3))).await;
        assert!(again.is_ok(), "the slot was lost");
    }
}
