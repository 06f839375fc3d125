//! Spreading the data groups' leadership over the nodes.
//!
//! Raft elects whichever node asks first, and the node that creates a cluster starts as the
//! leader of every group; left alone, one node would take every write. Each data group has a
//! *preferred leader* instead: its voters in id order, taken in turn by group number
//! ([`preferred_leader`]), so the data groups' leadership spreads evenly, and alike on every
//! node without any coordination. Every node checks the data groups it leads every
//! [`BALANCE_EVERY`] and hands a group over to its preferred leader once that node is a
//! healthy voter holding the whole log. The metadata group stays where its elections put it.
//!
//! openraft 0.9 has no leadership transfer, so a handover is built from what it has
//! ([`Cluster::hand_over`]):
//!
//! 1. the leader lets the group's writes in flight finish and holds new ones (they then find
//!    it no longer leads and go to the new leader: [`crate::replication::on_leader`]);
//! 2. the other members hold their elections for the group, so none but the target campaigns;
//! 3. the leader stops its heartbeats until the members' leader lease (openraft's
//!    `election_timeout_max`) has passed, so they grant another node their vote;
//! 4. the target campaigns (again after each `election_timeout_min_ms` while the group has no
//!    leader, [`CAMPAIGNS`] times at most); its log is as long as any, so it wins;
//! 5. heartbeats and elections resume. A handover that fails changes nothing: the old leader
//!    goes on, and the members resume their elections at the latest after [`MAX_HOLD`].
//!
//! The group takes no writes for about `election_timeout_max` plus a heartbeat (1.1 s with the
//! defaults); they wait, and are not refused.

use super::{Cluster, service};
use crate::error::{KalamError, Result};
use crate::replication::Replication;
use crate::replication::{GroupId, METADATA};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// How often a node checks whether it leads groups it should hand over.
const BALANCE_EVERY: Duration = Duration::from_secs(2);
/// After a handover of a group fails, how long before the next try (doubling with each
/// failure in a row, up to [`RETRY_AT_MOST`]).
const RETRY_AFTER: Duration = Duration::from_secs(4);
const RETRY_AT_MOST: Duration = Duration::from_secs(60);
/// How long a node holds its elections for a handover at most, whatever it is told.
const MAX_HOLD: Duration = Duration::from_secs(30);
/// How long a handover waits for the writes in flight to finish.
const WRITES_IN_FLIGHT: Duration = Duration::from_secs(2);
/// How many times a handover's target campaigns at most (once at once, then again after
/// each `election_timeout_min_ms` while the group has no leader).
const CAMPAIGNS: usize = 3;
/// How many entries a target may be behind for a handover to be tried (it must then catch
/// up while writes are held).
const NEARLY_CAUGHT_UP: u64 = 16;

/// The node that should lead data group `group` among its `voters`; `None` for the metadata
/// group, or without voters. Group `g` goes to the voter at `g mod n` in id order, so that
/// with the metadata group led by the lowest id (where a cluster is usually created), the
/// data groups lean to the others.
pub(super) fn preferred_leader(group: GroupId, voters: &BTreeSet<u64>) -> Option<u64> {
    if group == METADATA || voters.is_empty() {
        return None;
    }
    voters.iter().nth(group.0 as usize % voters.len()).copied()
}

/// A step of a handover another node asks of this one, for one group.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(super) enum LeadershipStep {
    /// Start no election for the group for this many milliseconds (at most [`MAX_HOLD`]).
    Hold { millis: u64 },
    /// Elections as usual again.
    Resume,
    /// Campaign at once: the leader is handing the group over to this node.
    Campaign,
}

/// Until when this node holds its elections in each group (a handover's step 2).
#[derive(Default)]
pub(super) struct ElectionHolds {
    until: std::sync::Mutex<HashMap<GroupId, Instant>>,
}

impl ElectionHolds {
    fn until(&self) -> std::sync::MutexGuard<'_, HashMap<GroupId, Instant>> {
        // The map stays valid whatever a panicking holder did.
        self.until.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Cluster {
    /// Takes a handover step another node (the group's leader) asks for.
    pub(super) async fn take_leadership_step(self: &Arc<Self>, group: GroupId, step: LeadershipStep) -> Result<()> {
        let raft = self.raft(group);
        match step {
            LeadershipStep::Hold { millis } => {
                let hold = Duration::from_millis(millis).min(MAX_HOLD);
                let until = Instant::now() + hold;
                self.holds.until().insert(group, until);
                raft.runtime_config().elect(false);
                let cluster = Arc::downgrade(self);
                tokio::spawn(async move {
                    tokio::time::sleep_until(until).await;
                    if let Some(cluster) = cluster.upgrade() {
                        cluster.end_hold(group, Some(until));
                    }
                });
            }
            LeadershipStep::Resume => self.end_hold(group, None),
            LeadershipStep::Campaign => {
                tracing::info!(group = group.0, "campaigning: the leader hands this group over");
                raft.trigger().elect().await.map_err(KalamError::internal)?;
                // A member whose lease on the old leader has not quite run out (a late
                // heartbeat) refuses the first vote: campaign again a few times, as the
                // held elections would not.
                let cluster = Arc::downgrade(self);
                let every = Duration::from_millis(self.config.election_timeout_min_ms);
                tokio::spawn(async move {
                    for _ in 0..CAMPAIGNS {
                        tokio::time::sleep(every).await;
                        let Some(cluster) = cluster.upgrade() else { return };
                        let this = cluster.group(group);
                        let leader = this.metrics.borrow().current_leader;
                        if leader.is_some() || this.raft.trigger().elect().await.is_err() {
                            return;
                        }
                    }
                });
            }
        }
        Ok(())
    }

    /// Resumes elections in `group`, unless a later hold than `ended` (the hold whose time
    /// is up; `None`: any) is on.
    fn end_hold(&self, group: GroupId, ended: Option<Instant>) {
        let mut holds = self.holds.until();
        if ended.is_some_and(|ended| holds.get(&group).is_some_and(|until| *until > ended)) {
            return;
        }
        holds.remove(&group);
        self.raft(group).runtime_config().elect(true);
    }

    /// The node this node should hand `group` over to now, if it leads the group, another
    /// voter is preferred, and that voter is healthy and (nearly) holds the whole log.
    fn handover_target(&self, group: GroupId) -> Option<(u64, String)> {
        let m = self.group(group).metrics.borrow();
        if m.current_leader != Some(self.node_id) || m.running_state.is_err() {
            return None;
        }
        let membership = m.membership_config.membership();
        if membership.get_joint_config().len() > 1 {
            // A membership change is under way: its voters are about to change.
            return None;
        }
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let target = preferred_leader(group, &voters).filter(|t| *t != self.node_id)?;
        if self.problems.peer_stopped_in(target, group) {
            return None;
        }
        let matched = m.replication.as_ref()?.get(&target)?.as_ref().map_or(0, |l| l.index);
        let last = m.last_log_index.unwrap_or(0);
        if matched + NEARLY_CAUGHT_UP < last {
            return None;
        }
        membership.get_node(&target).map(|node| (target, node.addr.clone()))
    }

    /// Hands the leadership of `group` over to node `target` (at `address`); the steps are in
    /// the module's doc. `Ok` once another node leads the group.
    async fn hand_over(self: &Arc<Self>, group: GroupId, target: u64, address: &str) -> Result<()> {
        let refused =
            |why: String| KalamError::Unavailable(format!("handover of group {} to node {target}: {why}", group.0));
        let this = self.group(group);
        // Not during a change of the group's members (which runs on its leader), and none
        // starts meanwhile.
        let Ok(_no_member_change) = this.membership.try_lock() else {
            return Err(refused("the group's members are changing".into()));
        };
        let _writes_held = tokio::time::timeout(WRITES_IN_FLIGHT, this.handover.write())
            .await
            .map_err(|_| refused("the writes in flight did not finish in time".into()))?;
        // With no write appended now, the target must hold the whole log before it campaigns.
        let caught_up = async {
            let mut metrics = this.metrics.clone();
            loop {
                {
                    let m = metrics.borrow_and_update();
                    let matched = m.replication.as_ref().and_then(|r| r.get(&target).cloned()).flatten();
                    if m.current_leader != Some(self.node_id) {
                        return false;
                    }
                    if matched.map(|l| l.index) == m.last_log_index {
                        return true;
                    }
                }
                if metrics.changed().await.is_err() {
                    return false;
                }
            }
        };
        if !tokio::time::timeout(WRITES_IN_FLIGHT, caught_up).await.unwrap_or(false) {
            return Err(refused("it did not catch up with the log".into()));
        }
        let members = self.others_in(group);
        let lease = Duration::from_millis(self.config.election_timeout_max_ms);
        let heartbeat = Duration::from_millis(self.config.heartbeat_ms);
        // Long enough for the steps below (each bounded), short enough that a node whose
        // leader died meanwhile is not long without elections.
        let campaigning = Duration::from_millis(self.config.election_timeout_min_ms) * (CAMPAIGNS as u32 + 1);
        let hold =
            LeadershipStep::Hold { millis: (lease + heartbeat * 4 + campaigning).min(MAX_HOLD).as_millis() as u64 };
        for (id, address) in &members {
            if self.ask_peer_in::<_, ()>(address, Some(group), service::LEADERSHIP, &hold).await.is_none() {
                self.resume_elections(group, &members).await;
                return Err(refused(format!("node {id} did not hold its elections")));
            }
        }
        // This node must not campaign either once it has stepped down.
        self.take_leadership_step(group, hold).await?;
        // However this ends (a statement's deadline can drop a handover of the metadata group
        // midway), this node's heartbeats and elections resume.
        let heartbeats_off = HeartbeatsOff::start(self, group);
        tokio::time::sleep(lease + heartbeat * 2).await;
        let asked =
            self.ask_peer_in::<_, ()>(address, Some(group), service::LEADERSHIP, &LeadershipStep::Campaign).await;
        let moved = match asked {
            Some(()) => {
                let mut metrics = this.metrics.clone();
                let wait = metrics.wait_for(|m| m.current_leader.is_some_and(|l| l != self.node_id));
                let campaigning = Duration::from_millis(self.config.election_timeout_min_ms) * (CAMPAIGNS as u32 + 1);
                tokio::time::timeout(campaigning, wait).await.is_ok_and(|r| r.is_ok())
            }
            None => false,
        };
        drop(heartbeats_off);
        self.resume_elections(group, &members).await;
        if !moved {
            // Lead again rather than leave the group to an election timeout: this node's log
            // is as long as any.
            let _ = this.raft.trigger().elect().await;
            return Err(refused("it did not win the election".into()));
        }
        Ok(())
    }

    /// On the metadata group's leader, which is to leave the cluster: hands the group's
    /// leadership to another of its voters (`members`) first. (Demoted while it leads, a
    /// leader goes on leading as a learner in openraft 0.9, and takes no membership change.)
    pub(super) async fn hand_over_metadata(&self, members: &BTreeSet<u64>) -> Result<()> {
        let me = self.me.upgrade().ok_or_else(|| KalamError::Unavailable("the node is shutting down".into()))?;
        let mut last = None;
        for target in members.iter().copied().filter(|m| *m != self.node_id) {
            let Some(address) = self.address_of(target) else { continue };
            match me.hand_over(METADATA, target, &address).await {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| KalamError::Validation("the last node of a cluster cannot be removed".into())))
    }

    /// Asks `members` to resume their elections in `group` (best effort: each resumes at the
    /// end of its hold anyway).
    async fn resume_elections(&self, group: GroupId, members: &[(u64, String)]) {
        for (_, address) in members {
            let _ = self.ask_peer_in::<_, ()>(address, Some(group), service::LEADERSHIP, &LeadershipStep::Resume).await;
        }
    }
}

/// A leader's heartbeats of one group switched off for a handover; dropping it switches
/// them on again and ends this node's hold of the group's elections.
struct HeartbeatsOff<'a> {
    cluster: &'a Cluster,
    group: GroupId,
}

impl<'a> HeartbeatsOff<'a> {
    fn start(cluster: &'a Cluster, group: GroupId) -> HeartbeatsOff<'a> {
        cluster.raft(group).runtime_config().heartbeat(false);
        HeartbeatsOff { cluster, group }
    }
}

impl Drop for HeartbeatsOff<'_> {
    fn drop(&mut self) {
        self.cluster.raft(self.group).runtime_config().heartbeat(true);
        self.cluster.end_hold(self.group, None);
    }
}

/// Runs on every node for as long as its cluster does. For the data groups it leads: keeps
/// their voters where the cluster's members place them ([`Cluster::reconcile_voters`]), and
/// (with `cluster.balance_leaders`) hands them over to their preferred leaders (all due
/// groups at once, each held for its own handover).
pub(super) async fn balance(cluster: Weak<Cluster>) {
    // Per group: when to try a handover again, and how many failed in a row.
    let mut retry_at: HashMap<GroupId, (Instant, u32)> = HashMap::new();
    loop {
        tokio::time::sleep(BALANCE_EVERY).await;
        let Some(cluster) = cluster.upgrade() else { return };
        let (members, known) = cluster.cluster_members();
        for group in cluster.groups.iter().map(|g| g.id).filter(|g| *g != METADATA) {
            if cluster.leads(group)
                && let Err(e) = cluster.reconcile_voters(group, &members, &known, Duration::ZERO).await
            {
                tracing::debug!(group = group.0, "the group's voters stay as they are for now: {e}");
            }
        }
        cluster.note_left_groups().await;
        if !cluster.config.balance_leaders {
            continue;
        }
        let now = Instant::now();
        let due: Vec<(GroupId, u64, String)> = cluster
            .groups
            .iter()
            .filter(|g| retry_at.get(&g.id).is_none_or(|(at, _)| *at <= now))
            .filter_map(|g| cluster.handover_target(g.id).map(|(target, address)| (g.id, target, address)))
            .collect();
        let handovers = due.iter().map(|(group, target, address)| {
            let cluster = cluster.clone();
            async move { (*group, *target, cluster.hand_over(*group, *target, address).await) }
        });
        for (group, target, outcome) in futures::future::join_all(handovers).await {
            match outcome {
                Ok(()) => {
                    let failed = retry_at.remove(&group).map_or(0, |(_, n)| n);
                    tracing::info!(group = group.0, to = target, failed, "handed the group's leadership over");
                }
                Err(e) => {
                    let failures = retry_at.get(&group).map_or(1, |(_, n)| n + 1);
                    let wait = RETRY_AFTER.saturating_mul(1 << (failures - 1).min(8)).min(RETRY_AT_MOST);
                    // Once per run of failures: while a member is down, every retry fails
                    // alike and would fill the log.
                    match failures {
                        1 => tracing::warn!(group = group.0, "{e}; trying again in {} s", wait.as_secs()),
                        _ => tracing::debug!(group = group.0, failures, "{e}; trying again in {} s", wait.as_secs()),
                    }
                    retry_at.insert(group, (Instant::now() + wait, failures));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_groups_spread_evenly_over_the_voters_and_the_metadata_group_is_left_alone() {
        let voters: BTreeSet<u64> = [1, 2, 3].into();
        assert_eq!(preferred_leader(METADATA, &voters), None);
        let mut led: HashMap<u64, usize> = HashMap::new();
        for g in 1..=8 {
            *led.entry(preferred_leader(GroupId(g), &voters).unwrap()).or_default() += 1;
        }
        // Node 1, which usually leads the metadata group, leads fewer data groups.
        assert_eq!(led, HashMap::from([(1, 2), (2, 3), (3, 3)]));
        // Alike whatever order the voters were learnt in, and none without voters.
        let same: BTreeSet<u64> = [3, 1, 2].into();
        assert_eq!(preferred_leader(GroupId(5), &same), preferred_leader(GroupId(5), &voters));
        assert_eq!(preferred_leader(GroupId(1), &BTreeSet::new()), None);
        // A lone voter leads everything.
        assert_eq!(preferred_leader(GroupId(7), &[4].into()), Some(4));
    }
}
