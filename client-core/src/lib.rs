//! KalamDB client core.
//!
//! - [`protocol`]: the wire types of the HTTP API and the WebSocket sync protocol. The
//!   server serialises exactly these types, so a client built on this crate cannot drift
//!   from the server.
//! - [`sync`]: the sync engine — subscriptions with cursors, catch-up then live tail, the
//!   outbox of optimistic writes, reconnects, status — and the [`sync::Client`] handle.
//! - [`replica`]: the in-memory working copy and the table views local queries read.
//! - [`store`]: durable replica storage ([`store::ReplicaStore`]; memory here, IndexedDB in
//!   the `wasm` crate).
//! - [`query`]: local SQL over the replica, in KalamDB's query language (the `kalamdb-query`
//!   crate: joins, aggregates, typed values), and the check of a subscription's SQL.
//! - [`live`]: live queries, maintained from the row changes of each write and batch.
//! - [`crdt`] (feature `crdt`): CRDT_TEXT values as Yjs documents, shared with the server.

#[cfg(feature = "crdt")]
pub mod crdt;
pub mod live;
pub mod protocol;
pub mod query;
pub mod replica;
pub mod store;
pub mod sync;
pub mod tagged;

#[cfg(test)]
mod typescript;

#[cfg(test)]
pub(crate) mod test_support {
    //! What the unit tests of several modules share.

    use crate::protocol::ColumnInfo;
    use crate::protocol::ws::MutationOp;
    use crate::store::{OutboxEntry, StoreOp, SubscriptionId, SubscriptionRecord};

    /// A local write of client `c` with sequence number `seq`, pending in the outbox.
    pub(crate) fn pending_write(seq: u64, ops: Vec<MutationOp>) -> StoreOp {
        StoreOp::PutOutbox(OutboxEntry { client_id: "c".into(), seq, ops, created_ms: 0.0, confirmed: None })
    }

    /// A seeded random source for the property tests: `next(n)` is in `0..n`, the same
    /// sequence for the same seed (xorshift64).
    pub(crate) fn seeded_random(mut seed: u64) -> impl FnMut(u64) -> u64 {
        move |n| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        }
    }

    /// A complete subscription `id` to all of `table`, with these (name, type) columns and
    /// primary key `pk`, as the store records it.
    pub(crate) fn subscription(id: &str, table: &str, columns: &[(&str, &str)], pk: &str) -> StoreOp {
        StoreOp::PutSubscription(SubscriptionRecord {
            id: SubscriptionId(id.into()),
            sql: format!("SELECT * FROM {table}"),
            table: table.into(),
            cursor: Some(1),
            schema: columns.iter().map(|(name, ty)| ColumnInfo::new(*name, *ty)).collect(),
            primary_key: Some(pk.into()),
            complete: true,
            rows_loaded: 0,
            last_synced_ms: None,
        })
    }
}
