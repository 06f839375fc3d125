//! A statement's share of the server's query memory.
//!
//! Every statement runs with its own [`StatementPool`], a DataFusion memory pool that
//! admits at most `limits.statement_memory_bytes` and then asks the server-wide pool
//! (`limits.query_memory_bytes`). Sorts, joins and aggregates reserve from it as DataFusion
//! does; the outputs of scalar functions, which DataFusion does not account, are charged to
//! it by [`StatementBudget::charge_output`] for as long as they live.

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation};
use parking_lot::Mutex;
use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

/// A memory pool with a per-statement limit in front of the server's pool.
#[derive(Debug)]
pub struct StatementPool {
    server: Arc<dyn MemoryPool>,
    used: AtomicUsize,
    limit: usize,
}

impl StatementPool {
    pub fn new(server: Arc<dyn MemoryPool>, limit: usize) -> StatementPool {
        StatementPool { server, used: AtomicUsize::new(0), limit }
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
        self.server.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.server.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        self.server.grow(reservation, additional)
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        self.server.shrink(reservation, shrink)
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> DfResult<()> {
        let before = self.used.fetch_add(additional, Ordering::Relaxed);
        if before.saturating_add(additional) > self.limit {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(DataFusionError::ResourcesExhausted(format!(
                "the statement needs more than its memory limit of {} (limits.statement_memory_bytes)",
                human_bytes(self.limit)
            )));
        }
        if let Err(e) = self.server.try_grow(reservation, additional) {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(match e {
                DataFusionError::ResourcesExhausted(_) => DataFusionError::ResourcesExhausted(
                    "the server's query memory (limits.query_memory_bytes) is exhausted by the statements running now; \
                     try again later"
                        .into(),
                ),
                other => other,
            });
        }
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
pub struct StatementBudget {
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
    pub fn new(pool: Arc<dyn MemoryPool>, max_value_bytes: usize) -> StatementBudget {
        let reservation = MemoryConsumer::new("scalar function outputs").register(&pool);
        StatementBudget { pool, max_value_bytes, outputs: Mutex::new(ChargedOutputs { reservation, live: vec![] }) }
    }

    /// The pool DataFusion operators of this statement reserve from.
    pub fn pool(&self) -> Arc<dyn MemoryPool> {
        self.pool.clone()
    }

    /// Reserves `bytes` before a function computes an output of about that size, so an
    /// oversized output fails before it is allocated. Returns the reservation to drop once
    /// the output exists (and is charged by [`StatementBudget::charge_output`]).
    pub fn reserve(&self, bytes: usize) -> DfResult<MemoryReservation> {
        self.release_dead();
        let reservation = MemoryConsumer::new("scalar function (pending output)").register(&self.pool);
        reservation.try_grow(bytes)?;
        Ok(reservation)
    }

    /// Charges a function's output to the statement until the array is dropped.
    pub fn charge_output(&self, array: &ArrayRef) -> DfResult<()> {
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

    fn release_dead(&self) {
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
pub struct BudgetOption(pub Arc<StatementBudget>);

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
pub fn human_bytes(bytes: usize) -> String {
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
    use datafusion::execution::memory_pool::GreedyMemoryPool;

    fn budget(statement_limit: usize, server_limit: usize) -> (Arc<dyn MemoryPool>, StatementBudget) {
        let server: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(server_limit));
        let pool: Arc<dyn MemoryPool> = Arc::new(StatementPool::new(server.clone(), statement_limit));
        (server, StatementBudget::new(pool, 1024))
    }

    #[test]
    fn the_statement_limit_comes_before_the_server_limit() {
        let (server, budget) = budget(1000, 10_000);
        let r = MemoryConsumer::new("t").register(&budget.pool());
        r.try_grow(900).unwrap();
        let e = r.try_grow(200).unwrap_err();
        assert!(e.to_string().contains("statement_memory_bytes"), "{e}");
        assert_eq!(server.reserved(), 900);
        drop(r);
        assert_eq!(server.reserved(), 0);
    }

    #[test]
    fn the_server_limit_is_shared() {
        let (server, a) = budget(1000, 1500);
        let b = StatementBudget::new(Arc::new(StatementPool::new(server.clone(), 1000)), 1024);
        let ra = MemoryConsumer::new("a").register(&a.pool());
        ra.try_grow(1000).unwrap();
        let rb = MemoryConsumer::new("b").register(&b.pool());
        let e = rb.try_grow(600).unwrap_err();
        assert!(e.to_string().contains("query_memory_bytes"), "{e}");
        rb.try_grow(500).unwrap();
    }

    #[test]
    fn outputs_are_charged_while_they_live() {
        let (server, budget) = budget(1 << 20, 1 << 30);
        let big: ArrayRef = Arc::new(StringArray::from(vec!["x".repeat(300_000)]));
        budget.charge_output(&big).unwrap();
        let charged = server.reserved();
        assert!(charged >= 300_000, "{charged}");
        // Three more live 300 KB outputs do not all fit in 1 MiB...
        let more: Vec<ArrayRef> =
            (0..3).map(|_| Arc::new(StringArray::from(vec!["y".repeat(300_000)])) as ArrayRef).collect();
        let results: Vec<_> = more.iter().map(|a| budget.charge_output(a)).collect();
        assert!(results.iter().any(|r| r.is_err()), "the fourth 300 KB output exceeds 1 MiB");
        // ...but once the outputs are dropped their memory is released.
        drop(more);
        drop(big);
        budget.reserve(0).unwrap();
        assert_eq!(server.reserved(), 0);
    }
}
