//! Per-user limits on how much runs at once: statements (HTTP requests and WebSocket
//! mutations) and WebSocket connections. A user over a limit gets 429 `RATE_LIMITED`; the
//! other users do not notice.

use crate::error::{KalamError, Result};
use crate::ids::UserId;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Entries kept before idle users' gates are dropped.
const PRUNE_AT: usize = 10_000;

#[derive(Debug)]
pub(crate) struct Admission {
    statements_per_user: usize,
    queued_per_user: usize,
    connections_per_user: usize,
    gates: Mutex<HashMap<UserId, Arc<UserGate>>>,
}

#[derive(Debug)]
struct UserGate {
    running: Arc<Semaphore>,
    queued: AtomicUsize,
    connections: AtomicUsize,
}

/// Held while a statement runs.
#[derive(Debug)]
pub(crate) struct StatementPermit {
    _permit: OwnedSemaphorePermit,
}

/// Held while a WebSocket connection is open.
#[derive(Debug)]
pub(crate) struct ConnectionPermit {
    gate: Arc<UserGate>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.gate.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Admission {
    pub(crate) fn new(statements_per_user: usize, queued_per_user: usize, connections_per_user: usize) -> Admission {
        Admission {
            statements_per_user: statements_per_user.max(1),
            queued_per_user,
            connections_per_user: connections_per_user.max(1),
            gates: Mutex::new(HashMap::new()),
        }
    }

    fn gate(&self, user: UserId) -> Arc<UserGate> {
        let mut gates = self.gates.lock();
        if gates.len() > PRUNE_AT {
            let full = self.statements_per_user;
            gates.retain(|_, g| Arc::strong_count(g) > 1 || g.running.available_permits() < full);
        }
        gates
            .entry(user)
            .or_insert_with(|| {
                Arc::new(UserGate {
                    running: Arc::new(Semaphore::new(self.statements_per_user)),
                    queued: AtomicUsize::new(0),
                    connections: AtomicUsize::new(0),
                })
            })
            .clone()
    }

    /// Waits until the user runs fewer than `statements_per_user` statements; refuses at
    /// once when `queued_per_user` of theirs are already waiting.
    pub(crate) async fn statement(&self, user: UserId) -> Result<StatementPermit> {
        let gate = self.gate(user);
        if let Ok(permit) = gate.running.clone().try_acquire_owned() {
            return Ok(StatementPermit { _permit: permit });
        }
        if gate.queued.fetch_add(1, Ordering::Relaxed) >= self.queued_per_user {
            gate.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(KalamError::RateLimited(format!(
                "too many requests at once: {} running and {} waiting for this user (limits.statements_per_user, \
                 limits.queued_statements_per_user)",
                self.statements_per_user, self.queued_per_user
            )));
        }
        let queued = QueuedGuard(&gate.queued);
        let permit = gate.running.clone().acquire_owned().await.map_err(KalamError::internal)?;
        drop(queued);
        Ok(StatementPermit { _permit: permit })
    }

    /// Waits until the user runs fewer than `statements_per_user` statements, however many
    /// wait (for work that must not be refused, such as a client's queued mutations).
    pub(crate) async fn wait_for_statement(&self, user: UserId) -> StatementPermit {
        let gate = self.gate(user);
        let permit = gate.running.clone().acquire_owned().await.expect("the semaphore is never closed");
        StatementPermit { _permit: permit }
    }

    /// Counts a new WebSocket connection of `user`, or refuses it over the limit.
    pub(crate) fn connection(&self, user: UserId) -> Result<ConnectionPermit> {
        let gate = self.gate(user);
        if gate.connections.fetch_add(1, Ordering::Relaxed) >= self.connections_per_user {
            gate.connections.fetch_sub(1, Ordering::Relaxed);
            return Err(KalamError::RateLimited(format!(
                "too many WebSocket connections for this user (live.max_connections_per_user = {})",
                self.connections_per_user
            )));
        }
        Ok(ConnectionPermit { gate })
    }
}

struct QueuedGuard<'a>(&'a AtomicUsize);

impl Drop for QueuedGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn statements_wait_then_are_refused() {
        let a = Arc::new(Admission::new(1, 1, 2));
        let first = a.statement(UserId(1)).await.unwrap();
        let waiting = tokio::spawn({
            let a = a.clone();
            async move { a.statement(UserId(1)).await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let e = a.statement(UserId(1)).await.unwrap_err();
        assert!(matches!(e, KalamError::RateLimited(_)), "{e}");
        // Another user is not affected.
        a.statement(UserId(2)).await.unwrap();
        drop(first);
        waiting.await.unwrap().unwrap();
    }

    #[test]
    fn connections_are_counted_per_user() {
        let a = Admission::new(1, 1, 2);
        let c1 = a.connection(UserId(1)).unwrap();
        let _c2 = a.connection(UserId(1)).unwrap();
        assert!(a.connection(UserId(1)).is_err());
        a.connection(UserId(2)).unwrap();
        drop(c1);
        a.connection(UserId(1)).unwrap();
    }
}
