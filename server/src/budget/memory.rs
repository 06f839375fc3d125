//! A statement's share of the server's query memory.
//!
//! Every statement (and every subscription filter) runs with its own [`StatementPool`], a
//! DataFusion memory pool that admits at most `limits.statement_memory_bytes`, then at most
//! `limits.user_memory_bytes` for all of its user's statements together, and then asks the
//! server ([`QueryMemory`]). The server's pool (`limits.query_memory_bytes`) is shared by
//! everyone; when heavy users have filled it, a user who uses little (under
//! [`LIGHT_USER_BYTES`]) still gets memory from a reserve (`limits.reserved_memory_bytes`),
//! so ordinary queries keep working while others exhaust the shared pool.
//!
//! Sorts, joins and aggregates reserve as DataFusion does; the outputs of scalar functions,
//! which DataFusion does not account, are charged by [`StatementBudget::charge_output`] for
//! as long as they live.

use crate::ids::UserId;
use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::memory_pool::{
    GreedyMemoryPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use parking_lot::Mutex;
use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

/// A user whose statements together hold less than this may use the reserve.
pub(crate) const LIGHT_USER_BYTES: usize = 32 * 1024 * 1024;

/// The server's query memory: the shared pool, the reserve for light users, and what each
/// user holds.
#[derive(Debug)]
pub(crate) struct QueryMemory {
    shared: Arc<dyn MemoryPool>,
    reserve: GreedyMemoryPool,
    user_limit: usize,
    /// Users holding less than this may use the reserve ([`LIGHT_USER_BYTES`]).
    light_limit: usize,
    users: Mutex<HashMap<UserId, usize>>,
}

impl QueryMemory {
    pub(crate) fn new(
        shared: Arc<dyn MemoryPool>,
        reserve_bytes: usize,
        user_limit: usize,
        light_limit: usize,
    ) -> QueryMemory {
        QueryMemory {
            shared,
            reserve: GreedyMemoryPool::new(reserve_bytes),
            user_limit,
            light_limit,
            users: Mutex::new(HashMap::new()),
        }
    }

    /// Bytes `user`'s statements hold now.
    #[cfg(test)]
    pub(crate) fn held_by(&self, user: UserId) -> usize {
        self.users.lock().get(&user).copied().unwrap_or(0)
    }

    fn add(&self, user: UserId, bytes: usize) {
        *self.users.lock().entry(user).or_default() += bytes;
    }

    /// Adds `bytes` to what `user` holds unless that would pass the user's limit (checked and
    /// added under one lock, so concurrent statements cannot pass it together). Returns what
    /// the user held before.
    fn try_add(&self, user: UserId, bytes: usize) -> Option<usize> {
        let mut users = self.users.lock();
        let held = users.entry(user).or_default();
        let before = *held;
        if before.saturating_add(bytes) > self.user_limit {
            if before == 0 {
                users.remove(&user);
            }
            return None;
        }
        *held += bytes;
        Some(before)
    }

    fn sub(&self, user: UserId, bytes: usize) {
        let mut users = self.users.lock();
        if let Some(held) = users.get_mut(&user) {
            *held = held.saturating_sub(bytes);
            if *held == 0 {
                users.remove(&user);
            }
        }
    }
}

/// A memory pool with a per-statement and a per-user limit in front of the server's memory.
#[derive(Debug)]
pub(crate) struct StatementPool {
    memory: Arc<QueryMemory>,
    user: UserId,
    used: AtomicUsize,
    /// Of `used`, the bytes taken from the reserve.
    from_reserve: AtomicUsize,
    limit: usize,
}

impl StatementPool {
    pub(crate) fn new(memory: Arc<QueryMemory>, user: UserId, limit: usize) -> StatementPool {
        StatementPool { memory, user, used: AtomicUsize::new(0), from_reserve: AtomicUsize::new(0), limit }
    }
}

impl fmt::Display for StatementPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "statement pool ({} of {} bytes used)", self.used.load(Ordering::Relaxed), self.limit)
    }
}

impl MemoryPool for StatementPool {
    fn name(&self) -> &str {
        "statement"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.memory.shared.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.memory.shared.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        self.memory.add(self.user, additional);
        self.memory.shared.grow(reservation, additional)
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        self.memory.sub(self.user, shrink);
        // Give back to the reserve first: it is what light users need most.
        let reserved = self.from_reserve.load(Ordering::Relaxed).min(shrink);
        if reserved > 0 {
            self.from_reserve.fetch_sub(reserved, Ordering::Relaxed);
            self.memory.reserve.shrink(reservation, reserved);
        }
        if shrink > reserved {
            self.memory.shared.shrink(reservation, shrink - reserved)
        }
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> DfResult<()> {
        let exhausted = |what: &str| DataFusionError::ResourcesExhausted(what.to_string());
        let before = self.used.load(Ordering::Relaxed);
        if before.saturating_add(additional) > self.limit {
            return Err(exhausted(&format!(
                "the statement needs more than its memory limit of {} (limits.statement_memory_bytes)",
                human_bytes(self.limit)
            )));
        }
        let Some(held) = self.memory.try_add(self.user, additional) else {
            return Err(exhausted(&format!(
                "your statements and live queries together need more than {} (limits.user_memory_bytes)",
                human_bytes(self.memory.user_limit)
            )));
        };
        if self.memory.shared.try_grow(reservation, additional).is_err() {
            let light = held.saturating_add(additional) <= self.memory.light_limit;
            if !light || self.memory.reserve.try_grow(reservation, additional).is_err() {
                self.memory.sub(self.user, additional);
                return Err(exhausted(
                    "the server's query memory (limits.query_memory_bytes) is taken by the statements running now; \
                     try again later",
                ));
            }
            self.from_reserve.fetch_add(additional, Ordering::Relaxed);
        }
        self.used.fetch_add(additional, Ordering::Relaxed);
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

/// What one statement may spend beyond time: its memory pool and the largest value a
/// function may produce. Reaches scalar functions through the session's config (see
/// [`BudgetOption`]).
#[derive(Debug)]
pub(crate) struct StatementBudget {
    pool: Arc<dyn MemoryPool>,
    /// Largest single value (string, binary, list) a function may produce.
    pub max_value_bytes: usize,
    outputs: Mutex<ChargedOutputs>,
}

/// Function outputs still alive, and the reservation that covers them.
#[derive(Debug)]
struct ChargedOutputs {
    reservation: MemoryReservation,
    live: Vec<(Weak<dyn Array>, usize)>,
}

/// Outputs smaller than this are not tracked one by one: they are bounded by the batch size
/// and by the expressions a statement can hold.
const CHARGE_THRESHOLD: usize = 64 * 1024;

impl StatementBudget {
    pub(crate) fn new(pool: Arc<dyn MemoryPool>, max_value_bytes: usize) -> StatementBudget {
        let reservation = MemoryConsumer::new("scalar function outputs").register(&pool);
        StatementBudget { pool, max_value_bytes, outputs: Mutex::new(ChargedOutputs { reservation, live: vec![] }) }
    }

    /// The pool DataFusion operators of this statement reserve from.
    pub(crate) fn pool(&self) -> Arc<dyn MemoryPool> {
        self.pool.clone()
    }

    /// Reserves `bytes` before a function computes an output of about that size, so an
    /// oversized output fails before it is allocated. Returns the reservation to drop once
    /// the output exists (and is charged by [`StatementBudget::charge_output`]).
    pub(crate) fn reserve(&self, bytes: usize) -> DfResult<MemoryReservation> {
        self.settle();
        let reservation = MemoryConsumer::new("scalar function (pending output)").register(&self.pool);
        reservation.try_grow(bytes)?;
        Ok(reservation)
    }

    /// Charges a function's output to the statement until the array is dropped.
    pub(crate) fn charge_output(&self, array: &ArrayRef) -> DfResult<()> {
        let bytes = array.get_array_memory_size();
        if bytes < CHARGE_THRESHOLD {
            return Ok(());
        }
        let mut outputs = self.outputs.lock();
        outputs.release_dead();
        outputs.reservation.try_grow(bytes)?;
        outputs.live.push((Arc::downgrade(array), bytes));
        Ok(())
    }

    /// Gives back what dead outputs held. A long-lived budget (a subscription's filter) calls
    /// this after each evaluation, so memory is not held between changes.
    pub(crate) fn settle(&self) {
        self.outputs.lock().release_dead();
    }
}

impl ChargedOutputs {
    fn release_dead(&mut self) {
        let mut freed = 0;
        self.live.retain(|(array, bytes)| {
            let alive = array.strong_count() > 0;
            if !alive {
                freed += bytes;
            }
            alive
        });
        self.reservation.shrink(freed.min(self.reservation.size()));
    }
}

/// The statement's budget as a DataFusion config extension, so that scalar functions find it
/// in the `ConfigOptions` they are invoked with. Cloning shares the budget.
#[derive(Debug, Clone)]
pub(crate) struct BudgetOption(pub Arc<StatementBudget>);

impl ConfigExtension for BudgetOption {
    const PREFIX: &'static str = "kalamdb_budget";
}

impl ExtensionOptions for BudgetOption {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, _value: &str) -> DfResult<()> {
        Err(DataFusionError::Configuration(format!("'{key}' cannot be set")))
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        vec![]
    }
}

/// `1.5 GiB`-style sizes for error messages.
pub(crate) fn human_bytes(bytes: usize) -> String {
    const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} bytes") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;

    fn memory(server: usize, reserve: usize, per_user: usize) -> Arc<QueryMemory> {
        Arc::new(QueryMemory::new(Arc::new(GreedyMemoryPool::new(server)), reserve, per_user, 500))
    }

    fn budget(memory: &Arc<QueryMemory>, user: u64, statement_limit: usize) -> StatementBudget {
        StatementBudget::new(Arc::new(StatementPool::new(memory.clone(), UserId(user), statement_limit)), 1024)
    }

    #[test]
    fn the_statement_and_user_limits_come_before_the_server_limit() {
        let m = memory(10_000, 0, 1500);
        let a = budget(&m, 1, 1000);
        let r = MemoryConsumer::new("t").register(&a.pool());
        r.try_grow(900).unwrap();
        let e = r.try_grow(200).unwrap_err();
        assert!(e.to_string().contains("statement_memory_bytes"), "{e}");
        // A second statement of the same user: the user's limit.
        let b = budget(&m, 1, 1000);
        let rb = MemoryConsumer::new("t").register(&b.pool());
        let e = rb.try_grow(700).unwrap_err();
        assert!(e.to_string().contains("user_memory_bytes"), "{e}");
        rb.try_grow(600).unwrap();
        assert_eq!(m.held_by(UserId(1)), 1500);
        drop((r, rb));
        assert_eq!(m.held_by(UserId(1)), 0);
        assert_eq!(m.shared.reserved(), 0);
    }

    #[test]
    fn light_users_use_the_reserve_when_the_shared_pool_is_full() {
        let m = memory(1000, 500, usize::MAX);
        let heavy = budget(&m, 1, usize::MAX);
        let rh = MemoryConsumer::new("heavy").register(&heavy.pool());
        rh.try_grow(1000).unwrap();
        let light = budget(&m, 2, usize::MAX);
        let rl = MemoryConsumer::new("light").register(&light.pool());
        rl.try_grow(400).unwrap();
        assert_eq!(m.reserve.reserved(), 400);
        // The heavy user cannot take the reserve.
        let e = rh.try_grow(1).unwrap_err();
        assert!(e.to_string().contains("query_memory_bytes"), "{e}");
        drop(rl);
        assert_eq!(m.reserve.reserved(), 0);
        drop(rh);
        assert_eq!(m.shared.reserved(), 0);
    }

    #[test]
    fn outputs_are_charged_while_they_live() {
        let m = memory(1 << 30, 0, usize::MAX);
        let budget = budget(&m, 1, 1 << 20);
        let big: ArrayRef = Arc::new(StringArray::from(vec!["x".repeat(300_000)]));
        budget.charge_output(&big).unwrap();
        let charged = m.shared.reserved();
        assert!(charged >= 300_000, "{charged}");
        // Three more live 300 KB outputs do not all fit in 1 MiB...
        let more: Vec<ArrayRef> =
            (0..3).map(|_| Arc::new(StringArray::from(vec!["y".repeat(300_000)])) as ArrayRef).collect();
        let results: Vec<_> = more.iter().map(|a| budget.charge_output(a)).collect();
        assert!(results.iter().any(|r| r.is_err()), "the fourth 300 KB output exceeds 1 MiB");
        // ...but once the outputs are dropped their memory is released.
        drop(more);
        drop(big);
        budget.settle();
        assert_eq!(m.shared.reserved(), 0);
    }
}
