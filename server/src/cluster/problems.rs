//! What went wrong on this node, or on a node it replicates to, that the cluster goes on
//! despite: reported by `/v1/api/cluster/health` and `system.cluster`, and what lets
//! `ALTER CLUSTER ADD NODE` give up at once on a node that cannot join.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Default)]
struct State {
    /// The last failed snapshot: the applied index when it failed, and why.
    snapshot: Option<(u64, String)>,
    /// Nodes whose Raft answered that it has stopped (a fatal error there; its log says why).
    stopped: BTreeSet<u64>,
}

/// Shared by the state machine, the network and the cluster handle of one node.
#[derive(Clone, Default)]
pub(super) struct Problems(Arc<Mutex<State>>);

impl Problems {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few values written whole: one left by a panicking writer is fine.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A snapshot taken at applied index `applied` failed.
    pub(super) fn snapshot_failed(&self, applied: u64, why: String) {
        self.state().snapshot = Some((applied, why));
    }

    pub(super) fn snapshot_taken(&self) {
        self.state().snapshot = None;
    }

    /// Whether a snapshot failed and fewer than `every` entries were applied since
    /// (`applied` now): the next attempt waits as long as a snapshot normally does.
    pub(super) fn snapshot_recently_failed(&self, applied: u64, every: u64) -> bool {
        self.state().snapshot.as_ref().is_some_and(|(at, _)| applied < at.saturating_add(every))
    }

    /// Why the last snapshot failed, if the last attempt did.
    pub(super) fn snapshot_error(&self) -> Option<String> {
        self.state().snapshot.as_ref().map(|(_, why)| why.clone())
    }

    /// Node `node` answered that its Raft has stopped (`stopped`), or answered normally.
    pub(super) fn peer_answered(&self, node: u64, stopped: bool) {
        let mut state = self.state();
        match stopped {
            true => {
                if state.stopped.insert(node) {
                    tracing::warn!(node, "node {node} answers that its Raft has stopped; see its log");
                }
            }
            false => {
                state.stopped.remove(&node);
            }
        }
    }

    /// Whether node `node`'s last answer said its Raft has stopped.
    pub(super) fn peer_stopped(&self, node: u64) -> bool {
        self.state().stopped.contains(&node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_snapshot_is_retried_after_as_many_entries_as_a_snapshot_takes() {
        let problems = Problems::default();
        assert!(!problems.snapshot_recently_failed(500, 100));
        problems.snapshot_failed(500, "No space left on device".into());
        assert!(problems.snapshot_recently_failed(599, 100));
        assert!(!problems.snapshot_recently_failed(600, 100));
        assert_eq!(problems.snapshot_error().as_deref(), Some("No space left on device"));
        problems.snapshot_taken();
        assert_eq!(problems.snapshot_error(), None);
    }

    #[test]
    fn a_peer_is_stopped_until_it_answers_normally() {
        let problems = Problems::default();
        problems.peer_answered(4, true);
        assert!(problems.peer_stopped(4));
        assert!(!problems.peer_stopped(3));
        problems.peer_answered(4, false);
        assert!(!problems.peer_stopped(4));
    }
}
