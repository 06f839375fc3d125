//! Reconnect delays: exponential with full jitter, so many clients dropped at once do not
//! come back in lockstep.

/// Exponential backoff with jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    base_ms: f64,
    max_ms: f64,
    attempt: u32,
}

impl Backoff {
    pub fn new(base_ms: u64, max_ms: u64) -> Self {
        Backoff { base_ms: base_ms as f64, max_ms: max_ms as f64, attempt: 0 }
    }

    /// Delay before the next attempt; `random` is uniform in `[0, 1)`.
    /// The ceiling doubles per failure up to `max_ms`; the delay is drawn in `[ceiling/2, ceiling)`.
    pub fn next_delay_ms(&mut self, random: f64) -> u64 {
        let ceiling = (self.base_ms * 2f64.powi(self.attempt.min(30) as i32)).min(self.max_ms);
        self.attempt = self.attempt.saturating_add(1);
        (ceiling / 2.0 + ceiling / 2.0 * random.clamp(0.0, 1.0)) as u64
    }

    /// A connection succeeded: start from the base again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::Backoff;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(100, 1000);
        assert_eq!(b.next_delay_ms(0.0), 50);
        assert_eq!(b.next_delay_ms(0.999), 199);
        assert_eq!(b.next_delay_ms(0.5), 300);
        for _ in 0..10 {
            let d = b.next_delay_ms(0.5);
            assert!((500..=1000).contains(&d), "{d}");
        }
        b.reset();
        assert_eq!(b.next_delay_ms(1.0), 100);
    }
}
