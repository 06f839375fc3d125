//! What the sync engine reports: connection status, mutation outcomes, errors.

use crate::protocol::ErrorCode;
use crate::protocol::ws::Cursor;
use crate::store::SubscriptionId;
use serde::{Deserialize, Serialize};

/// A snapshot of the replica's sync state, reported on every change.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct SyncStatus {
    /// Connected and authenticated.
    pub online: bool,
    /// An initial load or catch-up is running.
    pub syncing: bool,
    /// Local writes the server has not confirmed, or whose change has not reached the replica yet.
    pub pending_writes: usize,
    /// Wall-clock time (ms since the Unix epoch) the replica last received data.
    pub last_synced_ms: Option<f64>,
    /// Rows received so far by subscriptions still in their first sync.
    pub first_sync_rows: u64,
    /// The last connection or authentication problem, cleared once online again.
    pub last_error: Option<String>,
}

/// Where one local write stands.
// Deserialize: below, by `crate::tagged` (no buffering of the object).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum MutationState {
    /// In the outbox; shown optimistically.
    Pending,
    /// The server applied it (now or, after a retry, earlier).
    Applied { cursor: Option<Cursor> },
    /// The server refused it; its optimistic effect was rolled back.
    Rejected { code: ErrorCode, reason: String },
}

/// [`MutationState`] externally tagged, for [`crate::tagged`].
#[derive(Deserialize)]
#[serde(remote = "MutationState", rename_all = "snake_case")]
enum MutationStateFields {
    Pending,
    Applied { cursor: Option<Cursor> },
    Rejected { code: ErrorCode, reason: String },
}

crate::decode_tag_first!(MutationState, MutationStateFields, "status");

/// Notifications from the sync engine.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SyncEvent {
    Status(SyncStatus),
    /// A mutation settled.
    Mutation {
        client_id: String,
        seq: u64,
        state: MutationState,
    },
    /// The server refused or ended a subscription (bad SQL, no access, KILL LIVE QUERY).
    SubscriptionError {
        #[cfg_attr(test, ts(type = "string"))]
        id: SubscriptionId,
        code: ErrorCode,
        message: String,
    },
    /// A connection-level error frame (auth failure, rate limit, ...).
    Error {
        code: ErrorCode,
        message: String,
    },
    /// An attempt to connect failed: signing in or opening the socket (once per kind of
    /// failure while it keeps failing; retries go on with backoff).
    ConnectionFailed {
        /// The server's error code, or `NETWORK_ERROR` / `SIGN_IN_FAILED`.
        code: String,
        message: String,
    },
}
