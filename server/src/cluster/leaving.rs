//! Freeing what a node holds of the data groups it has left (spread storage).
//!
//! With `cluster.spread_storage` a node stores only the groups it votes in. When the
//! cluster's members change, a node may lose its place in a group: it stops applying the
//! group's log, and its copy of the group's data is never read again (see `spread`). That
//! copy is freed at the node's next start, before its database and Raft open, as a snapshot
//! is installed ([`super::snapshot`]): nothing else holds the group then.
//!
//! A group is freed only when nothing in it can still count on this node: the node is not a
//! voter of the group in the membership it last applied, nor in any membership entry of its
//! log it has not applied yet (a voter must never forget its vote or what it acknowledged),
//! and placement (the metadata group's members, as last applied) does not make it one. The
//! group's log and vote go first, then its rows, records and clock, its partition
//! directories on the node's own storage and its snapshots: a crash midway leaves a group
//! this check still finds, and the next start finishes. The group's Raft then starts
//! pristine; if the node is ever placed in it again, the leader sends it a snapshot.

use super::TypeConfig;
use super::snapshot;
use super::voters::voters_for;
use crate::config::Config;
use crate::error::{KalamError, Result};
use crate::ids::Placement;
use crate::replication::{GroupId, METADATA, raft_group};
use crate::storage::Store;
use crate::storage::ownership::{Owner, delete_owned};
use kalamdb_raft::{Durability, RaftLogs};
use openraft::{EntryPayload, RaftLogReader};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The key marking a data group this node left and freed: a node that creates the cluster
/// (`--cluster-bootstrap`) must not initialise such a group again when it restarts.
pub(super) fn left_key(group: GroupId) -> Vec<u8> {
    format!("raft/left/{:04x}", group.0).into_bytes()
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
        let known = membership.membership();
        if membership.log_id().is_none()
            || known.voter_ids().any(|v| v == node)
            || voters_for(group, &members, config.cluster.replicas).contains(&node)
        {
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
        let started = std::time::Instant::now();
        logs.forget_group(group).map_err(|e| KalamError::Source(Arc::new(e)))?;
        let deleted = delete_owned(&store, placement, |owner| match owner {
            Owner::Data(d) => raft_group(d) == group,
            Owner::RaftState(g) => g == group,
            Owner::Catalog | Owner::Node => false,
        })?;
        snapshot::remove_group_files(data_dir, group, placement)?;
        let mut batch = rocksdb::WriteBatch::default();
        batch.put_cf(&store.cf(crate::storage::CF_CATALOG), left_key(group), b"1");
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
