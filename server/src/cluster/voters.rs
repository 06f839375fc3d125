//! Which members vote in each data group.
//!
//! Every member of the cluster (a voter of the metadata group) is a member of every data
//! group, so that it applies every group's log and serves every user's reads and live
//! queries. Only `cluster.replicas` of them (default 3) *vote* in a data group: they hold
//! its elections and its majority, so a write waits for 2 of 3 whatever the cluster's size.
//! The others are learners of the group. Which members vote is decided by rendezvous
//! hashing of (group, node) ([`voters_for`]): the same on every node, spread evenly, and a
//! node joining or leaving changes only the groups it wins or held.
//!
//! With `cluster.spread_storage` a data group's members are its voters alone (a node joining
//! the cluster is a learner of every group until it has caught up, then stays only in the
//! groups it votes in), except the SHARED tables' group, which every member keeps
//! (`spread`).
//!
//! The leader of each data group keeps its voters as [`voters_for`] says
//! ([`Cluster::reconcile_voters`]): when `ALTER CLUSTER` adds or removes a node, and every
//! few seconds (so that a cluster created with more peers than replicas, or a change that
//! failed midway, ends right). A node becomes a voter only once it has caught up with the
//! group's log.

use super::{Cluster, LEARNER_POLL};
use crate::error::{KalamError, Result};
use crate::replication::{GroupId, METADATA};
use openraft::ChangeMembers;
use std::collections::BTreeSet;
use std::time::Duration;

/// The voters of `group` among the cluster's `members`: all of them for the metadata group;
/// for a data group, the `replicas` members with the highest rendezvous score.
pub(super) fn voters_for(group: GroupId, members: &BTreeSet<u64>, replicas: usize) -> BTreeSet<u64> {
    if group == METADATA {
        return members.clone();
    }
    let mut ranked: Vec<u64> = members.iter().copied().collect();
    ranked.sort_by_key(|node| std::cmp::Reverse((score(group, *node), *node)));
    ranked.into_iter().take(replicas.max(1)).collect()
}

/// FNV-1a of the group and node ids: fixed, so that placement never changes between versions.
fn score(group: GroupId, node: u64) -> u64 {
    let hash = crate::ids::fnv1a(&[&group.0.to_le_bytes()[..], &node.to_le_bytes()].concat());
    // FNV-1a's low bits mix poorly for inputs this short: finish with a multiply-xorshift.
    let mixed = (hash ^ (hash >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    mixed ^ (mixed >> 33)
}

impl Cluster {
    /// On the leader of data group `group`: makes its voters [`voters_for`] the cluster's
    /// `members`, and removes from the group any node not in `keep` (the members and the
    /// nodes being added, which are learners everywhere first). A node becomes
    /// a voter only once it is a member of the group that has caught up with its log; this
    /// waits up to `patience` for that (with none, a node not caught up yet is left for the
    /// next call). Does nothing when the group is as it should be.
    pub(super) async fn reconcile_voters(
        &self,
        group: GroupId,
        members: &BTreeSet<u64>,
        keep: &BTreeSet<u64>,
        patience: Duration,
    ) -> Result<()> {
        let this = self.group(group);
        let _one_change_at_a_time = this.membership.lock().await;
        let (voters, nodes) = {
            let m = this.metrics.borrow();
            let membership = m.membership_config.membership();
            let voters: BTreeSet<u64> = membership.voter_ids().collect();
            let nodes: Vec<(u64, String)> = membership.nodes().map(|(id, n)| (*id, n.addr.clone())).collect();
            (voters, nodes)
        };
        if !voters.contains(&self.node_id) {
            // Demoted by its last change, this leader steps down: openraft must not be asked
            // for another change meanwhile (it panics); the next leader goes on.
            return Err(KalamError::NotLeader(group.0));
        }
        let desired = voters_for(group, members, self.config.replicas);
        if desired != voters {
            let deadline = tokio::time::Instant::now() + patience;
            for node in desired.difference(&voters) {
                let address = match nodes.iter().find(|(id, _)| id == node) {
                    Some((_, address)) => address.clone(),
                    // With spread storage a node is a member of the groups it is placed in
                    // only: one a change of the members places here joins as a learner first.
                    None if self.placement.shared_apart() => self.join_as_learner(group, *node).await?,
                    // Added to the group first (as a learner, by ALTER CLUSTER ADD NODE).
                    None => {
                        return Err(KalamError::Unavailable(format!(
                            "node {node} is to vote in group {} but is not a member of it yet",
                            group.0
                        )));
                    }
                };
                let address = &address;
                let target = self.catch_up_target(group);
                loop {
                    if self.caught_up(group, *node, address, target).await? {
                        break;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(KalamError::Unavailable(format!(
                            "node {node} has not caught up with the log of group {} within {} s; its voters \
                             change once it has",
                            group.0,
                            patience.as_secs()
                        )));
                    }
                    tokio::time::sleep(LEARNER_POLL).await;
                }
            }
            // Voters that lose their place stay learners, and apply the group's log (with
            // spread storage they then leave the group, below).
            self.change_membership_within(group, ChangeMembers::ReplaceAllVoters(desired.clone()), true).await?;
            tracing::info!(group = group.0, ?desired, "the group's voters changed");
            if !desired.contains(&self.node_id) {
                // This node no longer votes: it steps down, and the next leader removes the
                // nodes that have no place in the group.
                return Ok(());
            }
        }
        // With spread storage a data group keeps only its voters (and the nodes being added,
        // learners until they have caught up); the SHARED tables' group keeps every member.
        let spread = self.placement.shared_apart()
            && group != crate::replication::raft_group(crate::ids::Placement::SHARED_GROUP);
        // This node never removes itself (it is a voter here, see above).
        let stays = |id: &u64| match spread {
            true => desired.contains(id) || (keep.contains(id) && !members.contains(id)) || *id == self.node_id,
            false => keep.contains(id),
        };
        let gone: BTreeSet<u64> = nodes.iter().map(|(id, _)| *id).filter(|id| !stays(id)).collect();
        if !gone.is_empty() {
            self.change_membership_within(group, ChangeMembers::RemoveNodes(gone.clone()), false).await?;
            tracing::info!(group = group.0, ?gone, "nodes left the group");
        }
        Ok(())
    }

    /// On the leader of `group`: adds cluster member `node` to the group as a learner (it
    /// catches up from the leader's log or snapshot); its cluster address.
    async fn join_as_learner(&self, group: GroupId, node: u64) -> Result<String> {
        let address = self.address_of(node).ok_or_else(|| {
            KalamError::Unavailable(format!("node {node} is to vote in group {} but its address is unknown", group.0))
        })?;
        let learner = [(node, openraft::BasicNode { addr: address.clone() })].into_iter().collect();
        self.change_membership_within(group, ChangeMembers::AddNodes(learner), true).await?;
        tracing::info!(group = group.0, node, "a node placed in the group joined it as a learner");
        Ok(address)
    }

    /// The log index a learner of `group` must have applied to count as caught up: this
    /// node's last one now. Taken once, when the wait starts: under a steady load of writes
    /// a learner applying them a little behind would never reach a moving end.
    pub(super) fn catch_up_target(&self, group: GroupId) -> u64 {
        self.group(group).metrics.borrow().last_log_index.unwrap_or(0)
    }

    /// Whether member `node` (at `address`) of `group` has applied its log up to `target`
    /// ([`Cluster::catch_up_target`]), as it answers itself; an error if its Raft has stopped.
    /// All of it: a learner some entries short of a short log has applied little of it, and
    /// since the target does not move, a learner that keeps up reaches it.
    pub(super) async fn caught_up(&self, group: GroupId, node: u64, address: &str, target: u64) -> Result<bool> {
        let last = target;
        let asked_at = std::time::Instant::now();
        let health = self.peer_health(address).await;
        if health.as_ref().is_some_and(|h| h.metadata.stopped) || self.problems.peer_stopped(node) {
            // Shown in system.cluster at once, before a Raft RPC answers so too.
            for stopped in health.iter().flat_map(|h| &h.groups).filter(|g| g.stopped) {
                self.problems.peer_answered(node, GroupId(stopped.group), true, asked_at);
            }
            return Err(KalamError::Unavailable(format!(
                "node {node} was added as a learner, but its Raft has stopped; see that node's log, restart it \
                 once fixed, then run ALTER CLUSTER ADD NODE again"
            )));
        }
        let applied = health.and_then(|h| h.groups.into_iter().find(|g| g.group == group.0));
        Ok(applied.and_then(|g| g.last_applied).is_some_and(|applied| applied >= last))
    }

    /// The cluster's members (the metadata group's voters), and the nodes it knows (its
    /// voters and learners), as this node knows them.
    pub(super) fn cluster_members(&self) -> (BTreeSet<u64>, BTreeSet<u64>) {
        let m = self.group(METADATA).metrics.borrow();
        let membership = m.membership_config.membership();
        (membership.voter_ids().collect(), membership.nodes().map(|(id, _)| *id).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn each_data_group_has_replicas_voters_spread_over_the_members_and_a_new_member_moves_few() {
        let three: BTreeSet<u64> = [1, 2, 3].into();
        let five: BTreeSet<u64> = [1, 2, 3, 4, 5].into();
        // The metadata group: everyone; up to `replicas` members: everyone.
        assert_eq!(voters_for(METADATA, &five, 3), five);
        assert_eq!(voters_for(GroupId(4), &three, 3), three);
        assert_eq!(voters_for(GroupId(4), &[7].into(), 3), [7].into());
        // Five members, 3 replicas, 64 groups: 3 voters each, every member voting in about
        // 3/5 of the groups.
        let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
        for g in 1..=64 {
            let voters = voters_for(GroupId(g), &five, 3);
            assert_eq!(voters.len(), 3);
            assert!(voters.is_subset(&five));
            for v in voters {
                *votes.entry(v).or_default() += 1;
            }
        }
        assert!(votes.values().all(|n| (25..=52).contains(n)), "uneven: {votes:?}");
        // A sixth member takes a place in some groups; no other group changes, and in a group
        // that changes only one voter leaves.
        let six: BTreeSet<u64> = [1, 2, 3, 4, 5, 6].into();
        let mut changed = 0;
        for g in 1..=64 {
            let (before, after) = (voters_for(GroupId(g), &five, 3), voters_for(GroupId(g), &six, 3));
            if before != after {
                changed += 1;
                assert!(after.contains(&6));
                assert_eq!(before.difference(&after).count(), 1);
            }
        }
        // About half: a sixth member is among the top 3 of 6 in half the groups.
        assert!((20..=44).contains(&changed), "{changed} groups changed");
        // Alike whatever order the members are known in.
        let shuffled: BTreeSet<u64> = [5, 3, 1, 4, 2].into_iter().collect();
        assert_eq!(voters_for(GroupId(9), &shuffled, 3), voters_for(GroupId(9), &five, 3));
    }
}
