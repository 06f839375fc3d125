//! The hybrid clock behind `_updated`: wall-clock microseconds, but never repeating and
//! never going backwards (`max(now, last + 1µs)`), also across restarts (the commit path
//! persists the last value handed out).

use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug)]
pub struct HybridClock {
    last: i64,
}

impl HybridClock {
    /// A clock that will only hand out values greater than `last`.
    pub fn starting_after(last: i64) -> Self {
        HybridClock { last }
    }

    /// The next timestamp in microseconds since the Unix epoch.
    pub fn tick(&mut self) -> i64 {
        let now = now_micros();
        self.last = now.max(self.last + 1);
        self.last
    }

    pub fn last(&self) -> i64 {
        self.last
    }
}

/// Wall-clock microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// Length of the hour `deleted_retention_hours` counts in, in microseconds. Debug builds
/// read `KALAMDB_HOUR_MS` so that retention can be tested in seconds; release builds always
/// use a real hour.
pub fn retention_hour_micros() -> i64 {
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
        let mut clock = HybridClock::starting_after(future);
        let a = clock.tick();
        let b = clock.tick();
        assert_eq!(a, future + 1);
        assert_eq!(b, future + 2);
    }

    #[test]
    fn follows_wall_clock() {
        let mut clock = HybridClock::starting_after(0);
        let t = clock.tick();
        assert!((t - now_micros()).abs() < 5_000_000);
    }
}
