//! The outcome of every client mutation message, kept in the `mutations` column family by
//! `(user, client_id, seq)`: written in the same RocksDB batch as the message's rows (or,
//! for a rejected message, on its own), so a retry after a reconnect, a restart or, in a
//! cluster, a failover gets the original outcome back instead of applying twice.

use crate::error::Result;
use crate::ids::UserId;
use crate::storage::{CF_MUTATIONS, Store};
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

impl MutationKey {
    fn record_key(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(8 + self.client_id.len() + 9);
        k.extend_from_slice(&self.user.0.to_be_bytes());
        k.extend_from_slice(self.client_id.as_bytes());
        k.push(0);
        k.extend_from_slice(&self.seq.to_be_bytes());
        k
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

    /// The recorded outcome of this message, if it was applied or rejected before.
    pub(crate) fn recorded(&self, store: &Store) -> Result<Option<MutateResult>> {
        Ok(store.get(CF_MUTATIONS, &self.record_key())?.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    /// Adds `outcome` as this message's record to `batch`.
    pub(crate) fn record(&self, store: &Store, batch: &mut WriteBatch, outcome: &MutateResult) {
        batch.put_cf(&store.cf(CF_MUTATIONS), self.record_key(), serde_json::to_vec(outcome).expect("serialises"));
    }
}
