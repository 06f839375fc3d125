//! The outcome of every client mutation message, kept in the `mutations` column family by
//! `(data group, user, client_id, seq)`: written in the same RocksDB batch as the message's
//! rows (or, for a rejected message, on its own), so a retry after a reconnect, a restart or,
//! in a cluster, a failover gets the original outcome back instead of applying twice. The
//! group is the one the message commits in (its first write's): a message to a SHARED table
//! commits in the table's group, not its user's, and a group's snapshot must carry exactly
//! the records its log wrote.

use crate::error::Result;
use crate::ids::{DataGroup, Partition, Placement, TableId, UserId};
use crate::storage::{CF_MUTATIONS, Store, keys};
use kalamdb_client_core::protocol::ErrorCode;
use kalamdb_client_core::protocol::ws::{MutateResult, MutationStatus};
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

/// Identifies a client's mutation message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MutationKey {
    pub user: UserId,
    pub client_id: String,
    pub seq: u64,
}

/// Moves records kept by user alone (before records were keyed by group) under the group of
/// their user, which is where they were taken to be. Runs at open; finds nothing once done.
pub(crate) fn key_records_by_group(store: &Store, placement: Placement) -> Result<usize> {
    let mut batch = WriteBatch::default();
    let cf = store.cf(CF_MUTATIONS);
    let mut moved = 0;
    for (key, value) in store.scan_prefix(CF_MUTATIONS, &[0])? {
        let Some(user) = key.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes) else { continue };
        let group = placement.group_of(TableId(0), Partition::User(UserId(user)));
        batch.put_cf(&cf, [&[keys::MUTATION_KEYED_BY_GROUP][..], &group.0.to_be_bytes(), &key].concat(), value);
        batch.delete_cf(&cf, &key);
        moved += 1;
    }
    if moved > 0 {
        store.write(batch)?;
        tracing::info!(records = moved, "mutation outcome records keyed by their data group");
    }
    Ok(moved)
}

impl MutationKey {
    fn record_key(&self, group: DataGroup) -> Vec<u8> {
        keys::mutation_key(group, self.user, &self.client_id, self.seq)
    }

    /// The outcome of this message as answered to the client.
    pub(crate) fn outcome(
        &self,
        status: MutationStatus,
        error: Option<(ErrorCode, String)>,
        cursor: Option<i64>,
    ) -> MutateResult {
        let (code, reason) = error.map_or((None, None), |(c, r)| (Some(c), Some(r)));
        MutateResult {
            client_id: self.client_id.clone(),
            seq: self.seq,
            status,
            code,
            reason,
            cursor,
            tables: Default::default(),
        }
    }

    /// The recorded outcome of this message, committed in data group `group`, if it was
    /// applied or rejected before.
    pub(crate) fn recorded(&self, store: &Store, group: DataGroup) -> Result<Option<MutateResult>> {
        Ok(store.get(CF_MUTATIONS, &self.record_key(group))?.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    /// Adds `outcome` as this message's record in data group `group` to `batch`.
    pub(crate) fn record(&self, store: &Store, batch: &mut WriteBatch, group: DataGroup, outcome: &MutateResult) {
        batch.put_cf(&store.cf(CF_MUTATIONS), self.record_key(group), serde_json::to_vec(outcome).expect("serialises"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_kept_by_user_alone_move_under_their_users_group_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let placement = Placement::new(8).unwrap();
        let key = MutationKey { user: UserId(42), client_id: "tab-1".into(), seq: 7 };
        let outcome = key.outcome(MutationStatus::Applied, None, Some(99));
        // A record as written before records were keyed by group.
        let old = [&42u64.to_be_bytes()[..], b"tab-1\0", &7u64.to_be_bytes()].concat();
        let mut batch = WriteBatch::default();
        batch.put_cf(&store.cf(CF_MUTATIONS), &old, serde_json::to_vec(&outcome).unwrap());
        store.write(batch).unwrap();

        assert_eq!(key_records_by_group(&store, placement).unwrap(), 1);
        let users_group = placement.group_of(TableId(0), Partition::User(UserId(42)));
        assert_eq!(key.recorded(&store, users_group).unwrap(), Some(outcome.clone()));
        assert_eq!(store.get(CF_MUTATIONS, &old).unwrap(), None, "the old key is gone");
        assert_eq!(key_records_by_group(&store, placement).unwrap(), 0, "nothing left to move");

        // Another group's record of the same message is another record.
        let other = DataGroup((users_group.0 + 1) % 8);
        assert_eq!(key.recorded(&store, other).unwrap(), None);
        let mut batch = WriteBatch::default();
        key.record(&store, &mut batch, other, &outcome);
        store.write(batch).unwrap();
        assert_eq!(key.recorded(&store, other).unwrap(), Some(outcome));
        assert_eq!(keys::mutation_key_group(&key.record_key(other)), Some(other));
        assert_eq!(keys::mutation_key_group(&old), None);
    }
}
