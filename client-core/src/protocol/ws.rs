//! The WebSocket sync protocol (`GET /v1/ws`, JSON text frames). See `docs/protocol.md`.
//!
//! Every frame is one JSON object with a `type` field. Rows travel as arrays aligned to the
//! subscription's `schema`, values encoded as in HTTP results except `CRDT_TEXT`, which
//! travels as `{"text", "state"}` (see `docs/protocol.md`). Cursors are `_updated` values in
//! microseconds since the Unix epoch.

use crate::protocol::{ColumnInfo, ErrorCode, UserInfo};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A position in a partition's change history: the `_updated` (µs) of the last change seen.
/// Resuming with `since = cursor` yields exactly the changes after it.
pub type Cursor = i64;

/// Frames a client sends. Decoded by [`crate::tagged`] (the tag first, no buffering).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// First frame of a connection; sending it again later renews the token in place.
    Auth {
        token: String,
    },
    Subscribe(Subscribe),
    Unsubscribe {
        id: String,
    },
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<u64>,
    },
    Mutate(Mutate),
}

/// [`ClientMessage`] externally tagged, for [`crate::tagged`]; the same variants and fields,
/// and no field beyond them.
#[derive(Deserialize)]
#[serde(remote = "ClientMessage", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessageFields {
    Auth {
        token: String,
    },
    Subscribe(Subscribe),
    Unsubscribe {
        id: String,
    },
    Ping {
        #[serde(default)]
        nonce: Option<u64>,
    },
    Mutate(Mutate),
}

crate::decode_tag_first!(ClientMessage, ClientMessageFields, "type");

/// Start a live query: `SELECT cols FROM t [WHERE ...]` over one table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    /// Client-chosen id, unique per connection; echoed on every frame of this subscription.
    pub id: String,
    pub sql: String,
    /// Only rows changed after this cursor (tombstones included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Cursor>,
    /// Only the last N rows by `_updated` for the initial load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rows: Option<u32>,
    /// Rows per initial batch (default 1000, at most 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
}

/// Writes from a client's outbox, applied atomically and exactly once per
/// `(user, client_id, seq)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mutate {
    pub client_id: String,
    pub seq: u64,
    pub ops: Vec<MutationOp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MutationKind {
    Insert,
    Update,
    Delete,
}

/// One write. `insert` carries the full `row` (column → value); `update` carries `pk` and
/// the changed columns in `row`; `delete` carries `pk`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MutationOp {
    /// `namespace.table`.
    pub table: String,
    pub op: MutationKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<serde_json::Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pk: Option<Value>,
}

/// Frames the server sends. Decoded by [`crate::tagged`] (the tag first, no buffering).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    AuthOk {
        user: UserInfo,
        /// Expiry of the token just accepted (RFC 3339); renew before it.
        expires_at: String,
    },
    /// The subscription is registered; batches follow.
    Subscribed {
        id: String,
        live_id: String,
        /// Columns of every row of this subscription (the primary key is always included).
        schema: Vec<ColumnInfo>,
        primary_key: String,
    },
    /// Initial rows, or rows changed since the requested cursor.
    Batch {
        id: String,
        rows: Vec<Vec<Value>>,
        /// Primary keys of rows deleted since the cursor (only with `since`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        deleted: Vec<Value>,
        /// Resume point after this batch.
        cursor: Cursor,
        /// The first batch of a reset: the client replaces its copy of this subscription.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reset: bool,
        /// The last batch of the initial load; live changes follow.
        last: bool,
    },
    /// A live change matching the subscription.
    Change {
        id: String,
        op: ChangeOp,
        /// The row after the change (for `delete`, the row as it was).
        row: Vec<Value>,
        /// The values before an update (`update` only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        old: Option<Vec<Value>>,
        cursor: Cursor,
    },
    Unsubscribed {
        id: String,
    },
    /// The subscription's table was altered (`ALTER TABLE`) and the subscription has ended;
    /// every change before the schema change was sent. The client subscribes again with
    /// `since` = its cursor, gets the new schema in `subscribed`, and carries its rows over
    /// (columns matched by id).
    SchemaChanged {
        id: String,
        schema_version: u32,
    },
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<u64>,
    },
    MutateResult(MutateResult),
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        code: ErrorCode,
        message: String,
    },
}

/// [`ServerMessage`] externally tagged, for [`crate::tagged`]; the same variants and fields.
#[derive(Deserialize)]
#[serde(remote = "ServerMessage", rename_all = "snake_case")]
enum ServerMessageFields {
    AuthOk {
        user: UserInfo,
        expires_at: String,
    },
    Subscribed {
        id: String,
        live_id: String,
        schema: Vec<ColumnInfo>,
        primary_key: String,
    },
    Batch {
        id: String,
        rows: Vec<Vec<Value>>,
        #[serde(default)]
        deleted: Vec<Value>,
        cursor: Cursor,
        #[serde(default)]
        reset: bool,
        last: bool,
    },
    Change {
        id: String,
        op: ChangeOp,
        row: Vec<Value>,
        #[serde(default)]
        old: Option<Vec<Value>>,
        cursor: Cursor,
    },
    Unsubscribed {
        id: String,
    },
    SchemaChanged {
        id: String,
        schema_version: u32,
    },
    Pong {
        #[serde(default)]
        nonce: Option<u64>,
    },
    MutateResult(MutateResult),
    Error {
        #[serde(default)]
        id: Option<String>,
        code: ErrorCode,
        message: String,
    },
}

crate::decode_tag_first!(ServerMessage, ServerMessageFields, "type");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    Insert,
    Update,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MutationStatus {
    /// Applied now.
    Applied,
    /// Applied earlier (a retry after reconnect); the original outcome is repeated.
    Duplicate,
    /// Not applied; see `code` and `reason`. Nothing of the message was written.
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MutateResult {
    pub client_id: String,
    pub seq: u64,
    pub status: MutationStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `_updated` of the last row written by the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Cursor>,
    /// `_updated` of the last row written in each table (qualified name): a subscription of
    /// that table whose cursor is at or past it has the write's change. Absent on a
    /// duplicate.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tables: BTreeMap<String, Cursor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_as_tagged_json() {
        let msg: ClientMessage =
            serde_json::from_str(r#"{"type":"subscribe","id":"s1","sql":"SELECT * FROM app.todos","since":42}"#)
                .unwrap();
        assert_eq!(
            msg,
            ClientMessage::Subscribe(Subscribe {
                id: "s1".into(),
                sql: "SELECT * FROM app.todos".into(),
                since: Some(42),
                last_rows: None,
                batch_size: None
            })
        );
        let out = serde_json::to_value(ServerMessage::Pong { nonce: Some(7) }).unwrap();
        assert_eq!(out, serde_json::json!({"type": "pong", "nonce": 7}));
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"subscribe","id":"x"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"nope"}"#).is_err());
    }

    #[test]
    fn client_frames_allow_no_unknown_field_wherever_the_tag_is() {
        let parse = |text: &str| serde_json::from_str::<ClientMessage>(text).map_err(|e| e.to_string());
        for text in [
            r#"{"type":"auth","token":"t","extra":1}"#,
            r#"{"token":"t","extra":1,"type":"auth"}"#,
            r#"{"type":"ping","extra":1}"#,
            r#"{"type":"unsubscribe","id":"s","extra":1}"#,
            r#"{"type":"subscribe","id":"s","sql":"SELECT 1","extra":1}"#,
        ] {
            assert!(parse(text).unwrap_err().contains("unknown field `extra`"), "{text}");
        }
        assert_eq!(parse(r#"{"nonce":3,"type":"ping"}"#).unwrap(), ClientMessage::Ping { nonce: Some(3) });
        assert_eq!(parse(r#"{"type":"ping"}"#).unwrap(), ClientMessage::Ping { nonce: None });
    }
}
