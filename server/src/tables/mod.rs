//! Table data: the commit path that writes rows, and the DataFusion providers that read them.
//!
//! - [`commit`]: [`Committer`] applies inserts/updates/soft deletes, assigning `_updated`.
//! - [`provider`]: scans of one partition for DataFusion.
//! - [`stream`]: STREAM tables' in-memory event buffers and their provider.
//!
//! The `system.*` tables are the SQL layer's ([`crate::sql::system_tables`]).

pub mod commit;
pub mod provider;
pub mod stream;

pub use commit::{ChangeKind, ChangeSink, CommitResult, Committer, RowChange, RowOp, TableWrite};
pub use provider::{PartitionTableProvider, SystemColumns};
pub use stream::{StreamBuffers, StreamTableProvider};
