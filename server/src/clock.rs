//! Time in the engine.
//!
//! - [`Clock`]: the wall clock the engine reads for `_updated`, flush intervals, tombstone
//!   horizons and stream TTLs. The server uses [`SystemClock`]; in-process tests inject a
//!   [`ManualClock`] and move time by hand (`Database::open_with_clock`).
//! - [`HybridClock`]: the clock behind `_updated`: wall-clock microseconds, but never
//!   repeating and never going backwards (`max(now, last + 1µs)`), also across restarts (the
//!   commit path persists the last value handed out).

use std::sync::Arc;
#[cfg(test)]
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time, in microseconds since the Unix epoch.
pub(crate) trait Clock: Send + Sync + std::fmt::Debug {
    fn now_micros(&self) -> i64;
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now_micros(&self) -> i64 {
        now_micros()
    }
}

/// A clock that stands still until moved, for tests.
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct ManualClock(AtomicI64);

#[cfg(test)]
impl ManualClock {
    pub(crate) fn new(now_micros: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicI64::new(now_micros)))
    }

    pub(crate) fn advance(&self, micros: i64) {
        self.0.fetch_add(micros, Ordering::SeqCst);
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn now_micros(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
pub(crate) struct HybridClock {
    last: i64,
    wall: Arc<dyn Clock>,
}

impl HybridClock {
    /// A clock that will only hand out values greater than `last`.
    pub(crate) fn starting_after(last: i64, wall: Arc<dyn Clock>) -> Self {
        HybridClock { last, wall }
    }

    /// The timestamp [`HybridClock::tick`] would hand out now, without handing it out.
    pub(crate) fn next(&self) -> i64 {
        self.wall.now_micros().max(self.last + 1)
    }

    /// The first stamp of a commit proposed at `at` and applied from a replicated log: after
    /// every stamp handed out, and never before `at`. It depends only on `at` and the stamps
    /// handed out (not on this node's wall clock), so every replica computes the same.
    pub(crate) fn next_not_before(&self, at: i64) -> i64 {
        at.max(self.last + 1)
    }

    /// Records that timestamps up to `last` were handed out (by a commit that numbered its
    /// changes itself, from [`HybridClock::next`] on).
    pub(crate) fn advance_to(&mut self, last: i64) {
        self.last = self.last.max(last);
    }

    /// The next timestamp in microseconds since the Unix epoch.
    pub(crate) fn tick(&mut self) -> i64 {
        let now = self.wall.now_micros();
        self.last = now.max(self.last + 1);
        self.last
    }

    pub(crate) fn last(&self) -> i64 {
        self.last
    }
}

/// The system's wall-clock microseconds since the Unix epoch (records' creation times and
/// the like; what the engine decides by goes through a [`Clock`]).
pub(crate) fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// Length of the hour `deleted_retention_hours` counts in, in microseconds. Debug builds
/// read `KALAMDB_HOUR_MS` so that retention can be tested in seconds; release builds always
/// use a real hour.
pub(crate) fn retention_hour_micros() -> i64 {
    const HOUR: i64 = 3_600_000_000;
    #[cfg(debug_assertions)]
    {
        static OVERRIDE: std::sync::OnceLock<Option<i64>> = std::sync::OnceLock::new();
        if let Some(ms) = OVERRIDE.get_or_init(|| {
            std::env::var("KALAMDB_HOUR_MS").ok().and_then(|v| v.parse::<i64>().ok()).filter(|ms| *ms > 0)
        }) {
            return ms * 1000;
        }
    }
    HOUR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictly_increasing_even_when_last_is_in_the_future() {
        let future = now_micros() + 10_000_000;
        let mut clock = HybridClock::starting_after(future, Arc::new(SystemClock));
        let a = clock.tick();
        let b = clock.tick();
        assert_eq!(a, future + 1);
        assert_eq!(b, future + 2);
    }

    #[test]
    fn follows_wall_clock() {
        let mut clock = HybridClock::starting_after(0, Arc::new(SystemClock));
        let t = clock.tick();
        assert!((t - now_micros()).abs() < 5_000_000);
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let wall = ManualClock::new(1_000);
        let mut clock = HybridClock::starting_after(0, wall.clone());
        assert_eq!((clock.tick(), clock.tick()), (1_000, 1_001));
        wall.advance(10_000);
        assert_eq!(clock.tick(), 11_000);
    }
}
