//! Table data: the commit path that writes rows, and the DataFusion providers that read them.
//!
//! - [`commit`]: [`Committer`] applies inserts/updates/soft deletes, assigning `_updated`.
//! - [`provider`]: [`UserTableProvider`]-style scans of one partition for DataFusion.
//! - [`stream`]: STREAM tables' in-memory event buffers and their provider.
//! - [`system`]: the `system.*` tables built from the catalog.

pub mod commit;
pub mod provider;
pub mod stream;
pub mod system;

pub use commit::{ChangeKind, ChangeSink, CommitResult, Committer, RowChange, RowOp, TableWrite};
pub use provider::{PartitionTableProvider, SystemColumns};
pub use stream::{StreamBuffers, StreamTableProvider};
