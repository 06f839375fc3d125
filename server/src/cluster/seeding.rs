//! A cluster created from a single node's data.
//!
//! That data was never written through the log, so replaying the log would not give it to
//! another node. The node that creates the cluster (`--cluster-bootstrap`) therefore starts
//! as its only member, takes a snapshot of its data, purges the log before it, and only then
//! adds the other peers: the log they would need is gone, so each starts from that snapshot.
//! A marker in the database records that this is not done yet, so a crash midway resumes it
//! at the next start, and no other node is added meanwhile. Tables on a shared storage keep
//! their files where they are; their manifests become the node's records first
//! (`ColdStore::adopt_storage_manifests`), so the snapshot carries them.

use super::Cluster;
use crate::database::Database;
use crate::error::{KalamError, Result};
use crate::replication::{MembershipChange, Replication};
use crate::storage::CF_CATALOG;
use rocksdb::WriteBatch;
use std::sync::Weak;
use std::time::Duration;

const SEEDING_KEY: &[u8] = b"raft/seeding";
/// How long each step of seeding (leading alone, the snapshot, the purge) may take.
const STEP: Duration = Duration::from_secs(600);
/// How often the wait for the first snapshot looks whether it failed.
const POLL: Duration = Duration::from_millis(200);

/// Records that this node's data must become the cluster's first snapshot.
pub(super) fn mark_pending(db: &Database) -> Result<()> {
    let mut batch = WriteBatch::default();
    batch.put_cf(&db.store.cf(CF_CATALOG), SEEDING_KEY, b"pending");
    db.store.write(batch)
}

/// Whether the snapshot of the first node's data is still to be taken.
pub(super) fn is_pending(db: &Database) -> Result<bool> {
    Ok(db.store.get(CF_CATALOG, SEEDING_KEY)?.is_some())
}

/// Removes the marker.
pub(super) fn clear(db: &Database) -> Result<()> {
    let mut batch = WriteBatch::default();
    batch.delete_cf(&db.store.cf(CF_CATALOG), SEEDING_KEY);
    db.store.write(batch)
}

/// Makes this node's data the start of every group's log: a snapshot of each group, then
/// its log before it purged.
pub(super) async fn seed(cluster: &Cluster, db: &Database) -> Result<()> {
    let failed =
        |e: &dyn std::fmt::Display| KalamError::internal(format!("seeding the cluster with this node's data: {e}"));
    for group in &cluster.groups {
        let wait = || group.raft.wait(Some(STEP));
        wait().current_leader(cluster.node_id, "leads alone").await.map_err(|e| failed(&e))?;
    }
    // Before the snapshots, so that they carry them.
    for table in db.catalog.tables(None).iter().filter(|t| t.kind != crate::schema::TableKind::Stream) {
        db.cold.adopt_storage_manifests(table).await.map_err(|e| failed(&e.report()))?;
    }
    for group in &cluster.groups {
        let raft = &group.raft;
        let applied = raft.metrics().borrow().last_applied;
        raft.trigger().snapshot().await.map_err(|e| failed(&e))?;
        let deadline = tokio::time::Instant::now() + STEP;
        let snapshot = loop {
            let taken =
                |m: &openraft::RaftMetrics<u64, openraft::BasicNode>| m.snapshot.is_some() && m.snapshot >= applied;
            match raft.wait(Some(POLL)).metrics(taken, "snapshot of the data").await {
                Ok(m) => break m.snapshot.ok_or_else(|| failed(&"no snapshot"))?,
                Err(openraft::metrics::WaitError::Timeout(..)) if tokio::time::Instant::now() < deadline => {}
                Err(e) => return Err(failed(&e)),
            }
            // The marker stays: the next start tries again.
            if let Some(why) = cluster.problems.snapshot_error() {
                return Err(failed(&format!("cannot take the first snapshot: {why}")));
            }
        };
        raft.trigger().purge_log(snapshot.index).await.map_err(|e| failed(&e))?;
        let purged = raft.wait(Some(STEP)).purged(Some(snapshot), "log purged up to the snapshot").await;
        purged.map_err(|e| failed(&e))?;
        tracing::info!(group = group.id.0, index = snapshot.index, "this node's data is the group's first snapshot");
    }
    clear(db)?;
    Ok(())
}

/// Adds `peers` as members, each once it is reachable and has installed the snapshot
/// (retrying until then, for as long as the node runs).
pub(super) async fn add_peers(cluster: Weak<Cluster>, peers: Vec<(u64, String)>) {
    for (id, address) in peers {
        loop {
            let Some(cluster) = cluster.upgrade() else { return };
            match cluster.change_members(MembershipChange::Add { id, address: address.clone() }).await {
                Ok(_) | Err(KalamError::AlreadyExists(_)) => break,
                Err(e) => tracing::warn!(node = id, "cannot add the peer yet, retrying: {}", e.report()),
            }
            drop(cluster);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
