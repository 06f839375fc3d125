//! Freeing what a node holds of the data groups it has left (spread storage).
//!
//! With `cluster.spread_storage` a node stores only the groups it votes in. When the
//! cluster's members change, a node may lose its place in a group: it stops applying the
//! group's log, and its copy of the group's data is never read again (see `spread`). That
//! copy is freed at the node's next start, before its database and Raft open, as a snapshot
//! is installed ([`super::snapshot`]): nothing else holds the group then.
//!
//! A group is freed only when nothing in it can still count on this node (a voter must never
//! forget its vote or what it acknowledged), and placement (the metadata group's members, as
//! last applied) does not place it there. Nothing can count on it when either
//! - while it ran, the group's leader answered that the node is no longer a member at all
//!   (voter or learner) of the group: [`Cluster::note_left_groups`] records that; a node
//!   that leaves a group often never hears of the last change that removes it, so its own
//!   log may still show it in a joint configuration; or
//! - it is not a voter in the membership it applied last, nor in any membership entry of its
//!   log it has not applied yet.
//!
//! The group's log and vote go first, then its rows, records and clock, its partition
//! directories on the node's own storage and its snapshots: a crash midway leaves a group
//! these checks still find, and the next start finishes. The group's Raft then starts
//! pristine; if the node is ever placed in it again, the leader sends it a snapshot.

use super::voters::voters_for;
use super::{Cluster, PEER_ANSWER, TypeConfig, service, snapshot};
use crate::config::Config;
use crate::error::{KalamError, Result};
use crate::ids::Placement;
use crate::replication::{GroupId, METADATA, Member, raft_group};
use crate::storage::ownership::{Owner, delete_owned};
use crate::storage::{CF_CATALOG, Store};
use kalamdb_raft::{Durability, RaftLogs};
use openraft::{EntryPayload, RaftLogReader};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The key marking a data group this node left and freed: a node that creates the cluster
/// (`--cluster-bootstrap`) must not initialise such a group again when it restarts.
pub(super) fn left_key(group: GroupId) -> Vec<u8> {
    format!("raft/left/{:04x}", group.0).into_bytes()
}

/// The key marking a data group whose leader answered that this node is no longer a member:
/// freed at the next start.
fn to_free_key(group: GroupId) -> Vec<u8> {
    format!("raft/free/{:04x}", group.0).into_bytes()
}

impl Cluster {
    /// With spread storage: for each data group this node is not placed in and does not
    /// store, asks the group's leader whether this node is still a member, and records the
    /// group for freeing at the next start once it is not (see the module docs). Called
    /// every few seconds; a group once recorded is not asked about again.
    pub(super) async fn note_left_groups(&self) {
        if !self.placement.shared_apart() {
            return;
        }
        let Ok(db) = self.database() else { return };
        let (members, _) = self.cluster_members();
        let unasked: Vec<GroupId> = self
            .groups
            .iter()
            .map(|g| g.id)
            .filter(|g| *g != METADATA && !self.stores_on(*g, self.node_id, &members))
            .filter(|g| matches!(db.store.get(CF_CATALOG, &to_free_key(*g)), Ok(None)))
            .collect();
        // All at once, each within a couple of seconds: this runs in the loop that keeps
        // the groups' voters and leaders where they belong.
        let asked = unasked.into_iter().map(|group| async move {
            let members = self.forward::<(), Vec<Member>>(group, service::MEMBERS, &(), PEER_ANSWER);
            match tokio::time::timeout(PEER_ANSWER, members).await {
                Ok(Ok(Some(current))) => {
                    (group, !current.is_empty() && current.iter().all(|m| m.node_id != self.node_id))
                }
                _ => (group, false),
            }
        });
        for (group, left) in futures::future::join_all(asked).await {
            if !left {
                continue;
            }
            let mut batch = rocksdb::WriteBatch::default();
            batch.put_cf(&db.store.cf(CF_CATALOG), to_free_key(group), b"1");
            if db.store.write(batch).is_ok() {
                tracing::info!(group = group.0, "this node left the group: its data is freed at the next start");
            }
        }
    }
}

/// Frees the data groups this node has left (see the module docs). Call before the database
/// opens; does nothing without spread storage.
pub(crate) async fn free_left_groups(config: &Config) -> Result<()> {
    let placement = config.cluster.placement()?;
    let Some(node) = config.cluster.node_id else { return Ok(()) };
    let data_dir = &config.server.data_dir;
    if !placement.shared_apart() || !data_dir.join(snapshot::ROCKSDB).join("CURRENT").exists() {
        return Ok(());
    }
    let store = Store::open(&data_dir.join(snapshot::ROCKSDB), true)?;
    let members: BTreeSet<u64> =
        super::state_machine::stored_membership(&store, METADATA)?.membership().voter_ids().collect();
    if members.is_empty() {
        return Ok(());
    }
    let logs =
        RaftLogs::open(&data_dir.join("raft"), Durability::Synced).map_err(|e| KalamError::Source(Arc::new(e)))?;
    for group in placement.all().filter(|g| *g != Placement::SHARED_GROUP).map(raft_group) {
        let (applied, membership) = super::state_machine::stored_position_in(&store, group)?;
        if membership.log_id().is_none() || voters_for(group, &members, config.cluster.replicas).contains(&node) {
            continue;
        }
        let told = store.get(CF_CATALOG, &to_free_key(group))?.is_some();
        if !told {
            if membership.membership().voter_ids().any(|v| v == node) {
                continue;
            }
            let mut log = logs.group::<TypeConfig>(group);
            let after = applied.map_or(0, |l| l.index + 1);
            let pending = log.try_get_log_entries(after..).await.map_err(KalamError::internal)?;
            let voter_later = pending.iter().any(|e| match &e.payload {
                EntryPayload::Membership(m) => m.voter_ids().any(|v| v == node),
                _ => false,
            });
            if voter_later {
                continue;
            }
        }
        let started = std::time::Instant::now();
        logs.forget_group(group).map_err(|e| KalamError::Source(Arc::new(e)))?;
        let deleted = delete_owned(&store, placement, |owner| match owner {
            Owner::Data(d) => raft_group(d) == group,
            Owner::RaftState(g) => g == group,
            Owner::Catalog | Owner::Node => false,
        })?;
        snapshot::remove_group_files(data_dir, group, placement)?;
        let mut batch = rocksdb::WriteBatch::default();
        batch.put_cf(&store.cf(CF_CATALOG), left_key(group), b"1");
        batch.delete_cf(&store.cf(CF_CATALOG), to_free_key(group));
        store.write(batch)?;
        store.flush_memtables()?;
        tracing::info!(
            group = group.0,
            keys = deleted,
            ms = started.elapsed().as_millis() as u64,
            "freed the data of a group this node no longer stores"
        );
    }
    Ok(())
}
