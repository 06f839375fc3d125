//! KalamDB's Raft groups, on [openraft](https://docs.rs/openraft) 0.9. `docs/cluster.md`
//! describes the cluster they make: a metadata group and data groups, each replicated on
//! three nodes.
//!
//! - [`RaftLogs`]: the RocksDB instance in which a node keeps the log, vote and markers of
//!   every group it replicates, apart from the data the logs are applied to.
//! - [`LogStore`]: one group's log in it, openraft's `RaftLogStorage`.
//!
//! The state machine over the server's commit path and the network between nodes are the
//! server's (`server/src/cluster`); the placement of several groups is not built yet.

// openraft's `StorageError` is what its storage traits return; boxing it in our own
// helpers would only add conversions.
#![allow(clippy::result_large_err)]

mod log_store;

pub use log_store::{Durability, GroupId, LogStore, OpenError, RaftLogs};
