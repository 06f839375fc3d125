//! What went wrong on this node, or on a node it replicates to, that the cluster goes on
//! despite: reported by `/v1/api/cluster/health` and `system.cluster`, and what lets
//! `ALTER CLUSTER ADD NODE` give up at once on a node that cannot join.

use kalamdb_raft::GroupId;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

#[derive(Default)]
struct State {
    /// The last failed snapshot of each group: the applied index when it failed, and why.
    snapshot: BTreeMap<GroupId, (u64, String)>,
    /// Nodes whose Raft group answered that it has stopped (a fatal error there; its log
    /// says why), with the group, and when that was noted.
    stopped: BTreeMap<(u64, GroupId), Instant>,
}

/// Shared by the state machine, the network and the cluster handle of one node.
#[derive(Clone, Default)]
pub(super) struct Problems(Arc<Mutex<State>>);

impl Problems {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few values written whole: one left by a panicking writer is fine.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A snapshot of `group` taken at applied index `applied` failed.
    pub(super) fn snapshot_failed(&self, group: GroupId, applied: u64, why: String) {
        self.state().snapshot.insert(group, (applied, why));
    }

    pub(super) fn snapshot_taken(&self, group: GroupId) {
        self.state().snapshot.remove(&group);
    }

    /// Whether a snapshot of `group` failed and fewer than `every` entries were applied
    /// since (`applied` now): the next attempt waits as long as a snapshot normally does.
    pub(super) fn snapshot_recently_failed(&self, group: GroupId, applied: u64, every: u64) -> bool {
        self.state().snapshot.get(&group).is_some_and(|(at, _)| applied < at.saturating_add(every))
    }

    /// Why the last snapshot of a group failed, if the last attempt did (the first such
    /// group's).
    pub(super) fn snapshot_error(&self) -> Option<String> {
        self.state().snapshot.iter().next().map(|(group, (_, why))| match group.0 {
            0 => why.clone(),
            g => format!("group {g}: {why}"),
        })
    }

    /// Why the last snapshot of `group` failed, if the last attempt did.
    pub(super) fn snapshot_error_of(&self, group: GroupId) -> Option<String> {
        self.state().snapshot.get(&group).map(|(_, why)| why.clone())
    }

    /// Node `node`'s Raft group `group` answered a request sent at `sent_at` that it has
    /// stopped (`stopped`), or answered normally.
    ///
    /// A stopped Raft stays stopped until its node restarts, so only a normal answer to a
    /// request sent after the stop was noted clears it: requests of one group run
    /// concurrently (heartbeats beside appends), and one sent before the stop can answer
    /// normally after another answered that it stopped.
    pub(super) fn peer_answered(&self, node: u64, group: GroupId, stopped: bool, sent_at: Instant) {
        let mut state = self.state();
        match stopped {
            true => {
                if state.stopped.insert((node, group), Instant::now()).is_none() {
                    tracing::warn!(node, group = group.0, "node {node} answers that its Raft has stopped; see its log");
                }
            }
            false => {
                if state.stopped.get(&(node, group)).is_some_and(|noted| sent_at > *noted) {
                    state.stopped.remove(&(node, group));
                }
            }
        }
    }

    /// Whether one of node `node`'s groups last answered that it has stopped.
    pub(super) fn peer_stopped(&self, node: u64) -> bool {
        self.state().stopped.keys().any(|(n, _)| *n == node)
    }

    /// Whether node `node`'s group `group` last answered that it has stopped.
    pub(super) fn peer_stopped_in(&self, node: u64, group: GroupId) -> bool {
        self.state().stopped.contains_key(&(node, group))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_snapshot_is_retried_after_as_many_entries_as_a_snapshot_takes() {
        let problems = Problems::default();
        let (metadata, data) = (GroupId(0), GroupId(3));
        assert!(!problems.snapshot_recently_failed(metadata, 500, 100));
        problems.snapshot_failed(metadata, 500, "No space left on device".into());
        assert!(problems.snapshot_recently_failed(metadata, 599, 100));
        assert!(!problems.snapshot_recently_failed(metadata, 600, 100));
        assert!(!problems.snapshot_recently_failed(data, 599, 100));
        assert_eq!(problems.snapshot_error().as_deref(), Some("No space left on device"));
        problems.snapshot_taken(metadata);
        assert_eq!(problems.snapshot_error(), None);
        problems.snapshot_failed(data, 10, "No space left on device".into());
        assert_eq!(problems.snapshot_error().as_deref(), Some("group 3: No space left on device"));
    }

    #[test]
    fn a_peer_is_stopped_until_it_answers_a_later_request_normally() {
        let problems = Problems::default();
        let (metadata, data) = (GroupId(0), GroupId(2));
        let before = Instant::now();
        problems.peer_answered(4, data, true, Instant::now());
        problems.peer_answered(4, metadata, false, Instant::now());
        assert!(problems.peer_stopped(4) && problems.peer_stopped_in(4, data));
        assert!(!problems.peer_stopped_in(4, metadata));
        assert!(!problems.peer_stopped(3));
        // An answer to a request sent before the stop was noted (a heartbeat in flight).
        problems.peer_answered(4, data, false, before);
        assert!(problems.peer_stopped_in(4, data));
        // The node restarted: a request sent now answers normally.
        std::thread::sleep(std::time::Duration::from_millis(1));
        problems.peer_answered(4, data, false, Instant::now());
        assert!(!problems.peer_stopped(4));
    }
}
