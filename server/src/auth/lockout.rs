//! [`LoginThrottle`]: failed-login counting that concurrency cannot outrun, and that answers
//! the same for user names that exist and names that do not.
//!
//! An attempt is counted as a failure *before* its password is checked (it reserves a place),
//! and turned back into a success afterwards if the password was right. So 40 guesses sent at
//! once cannot all be evaluated: once `max_failed_logins` are pending or failed, the rest are
//! refused without a password check, and the lock that follows also refuses the right
//! password. Names without an account are counted the same way (in memory), so `ACCOUNT_LOCKED`
//! does not reveal which names exist. Existing accounts also keep their count and lock in the
//! catalog (see [`crate::auth::Authenticator::login`]), which survives restarts.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Names tracked at most; past this, names that are neither locked nor being checked are
/// forgotten first.
const MAX_TRACKED_NAMES: usize = 100_000;

#[derive(Debug)]
pub(crate) struct LoginThrottle {
    max_failures: u32,
    lockout: Duration,
    names: Mutex<HashMap<String, Attempts>>,
}

#[derive(Debug, Default)]
struct Attempts {
    failures: u32,
    pending: u32,
    locked_until: Option<Instant>,
}

/// What the throttle allows for one attempt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Check the password, then report the outcome with [`LoginThrottle::finish`].
    Check,
    /// Refuse without checking, for about this long.
    Locked(Duration),
}

/// The result of a checked attempt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Succeeded,
    Failed,
    /// This failure locked the name.
    FailedAndLocked,
}

impl LoginThrottle {
    pub(crate) fn new(max_failures: u32, lockout: Duration) -> LoginThrottle {
        LoginThrottle { max_failures: max_failures.max(1), lockout, names: Mutex::new(HashMap::new()) }
    }

    /// Reserves an attempt for `name`, whose persisted state (for an existing account) is
    /// `stored_failures` failures and a lock lasting `stored_lock` more.
    pub(crate) fn begin(&self, name: &str, stored_failures: u32, stored_lock: Option<Duration>) -> Admit {
        let now = Instant::now();
        let mut names = self.names.lock();
        if names.len() >= MAX_TRACKED_NAMES && !names.contains_key(name) {
            names.retain(|_, a| a.pending > 0 || a.locked_until.is_some_and(|u| u > now));
        }
        let a = names.entry(name.to_string()).or_default();
        if let Some(left) = stored_lock.filter(|d| !d.is_zero()) {
            return Admit::Locked(left);
        }
        if let Some(until) = a.locked_until {
            if until > now {
                return Admit::Locked(until - now);
            }
            a.locked_until = None;
            a.failures = 0;
        }
        let failures = a.failures.max(stored_failures);
        if failures + a.pending >= self.max_failures {
            // Enough attempts are already failing or being checked to lock the name.
            return Admit::Locked(self.lockout);
        }
        a.pending += 1;
        Admit::Check
    }

    /// Records the outcome of an attempt [`LoginThrottle::begin`] admitted.
    pub(crate) fn finish(&self, name: &str, password_ok: bool, stored_failures: u32) -> Outcome {
        let mut names = self.names.lock();
        let a = names.entry(name.to_string()).or_default();
        a.pending = a.pending.saturating_sub(1);
        if password_ok {
            a.failures = 0;
            return Outcome::Succeeded;
        }
        a.failures = a.failures.max(stored_failures) + 1;
        if a.failures >= self.max_failures {
            a.failures = 0;
            a.locked_until = Some(Instant::now() + self.lockout);
            return Outcome::FailedAndLocked;
        }
        Outcome::Failed
    }

    /// Whether `name` is locked here (for credentials checked without a password check,
    /// such as remembered Basic auth).
    #[cfg(test)]
    pub(crate) fn is_locked(&self, name: &str) -> bool {
        self.names.lock().get(name).and_then(|a| a.locked_until).is_some_and(|u| u > Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_guesses_beyond_the_limit_are_not_checked() {
        let t = LoginThrottle::new(5, Duration::from_secs(300));
        let admitted = (0..40).filter(|_| t.begin("alice", 0, None) == Admit::Check).count();
        assert_eq!(admitted, 5);
        for _ in 0..4 {
            assert_eq!(t.finish("alice", false, 0), Outcome::Failed);
        }
        assert_eq!(t.finish("alice", false, 0), Outcome::FailedAndLocked);
        // The right password afterwards is refused too.
        assert!(matches!(t.begin("alice", 0, None), Admit::Locked(_)));
        assert!(t.is_locked("alice"));
    }

    #[test]
    fn a_success_among_pending_attempts_resets_the_count() {
        let t = LoginThrottle::new(3, Duration::from_secs(300));
        assert_eq!(t.begin("bob", 0, None), Admit::Check);
        assert_eq!(t.finish("bob", false, 0), Outcome::Failed);
        assert_eq!(t.begin("bob", 0, None), Admit::Check);
        assert_eq!(t.finish("bob", true, 0), Outcome::Succeeded);
        for _ in 0..2 {
            assert_eq!(t.begin("bob", 0, None), Admit::Check);
            assert_eq!(t.finish("bob", false, 0), Outcome::Failed);
        }
    }

    #[test]
    fn persisted_state_counts() {
        let t = LoginThrottle::new(5, Duration::from_secs(300));
        assert!(matches!(t.begin("carol", 0, Some(Duration::from_secs(10))), Admit::Locked(_)));
        assert_eq!(t.begin("carol", 4, None), Admit::Check);
        assert!(matches!(t.begin("carol", 4, None), Admit::Locked(_)));
        assert_eq!(t.finish("carol", false, 4), Outcome::FailedAndLocked);
    }

    #[test]
    fn expired_locks_open_again() {
        let t = LoginThrottle::new(1, Duration::from_millis(20));
        assert_eq!(t.begin("dave", 0, None), Admit::Check);
        assert_eq!(t.finish("dave", false, 0), Outcome::FailedAndLocked);
        assert!(matches!(t.begin("dave", 0, None), Admit::Locked(_)));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(t.begin("dave", 0, None), Admit::Check);
    }
}
