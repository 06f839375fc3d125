//! Table data: the commit path that writes rows, and the DataFusion providers that read them.
//!
//! - [`commit`]: [`Committer`] applies inserts/updates/soft deletes, assigning `_updated`.
//! - [`mutation_outcomes`]: the recorded outcome of each client mutation message.
//! - [`provider`]: scans of one partition for DataFusion.
//! - [`stream`]: STREAM tables' in-memory event buffers and their provider.
//!
//! The `system.*` tables are the SQL layer's ([`crate::sql::system_tables`]).

pub(crate) mod commit;
pub(crate) mod mutation_outcomes;
pub(crate) mod provider;
pub(crate) mod stream;

pub(crate) use commit::{ChangeKind, ChangeSink, Committed, Committer, RowChange, RowOp, TableWrite, realign};
pub(crate) use mutation_outcomes::MutationKey;
pub(crate) use provider::{PartitionTableProvider, SystemColumns};
pub(crate) use stream::{StreamBuffers, StreamTableProvider};
