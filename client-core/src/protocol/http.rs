use crate::protocol::{ErrorBody, Role};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Body of `POST /v1/api/sql`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    /// One or more statements separated by `;`.
    pub sql: String,
    /// Values for the positional parameters `$1..$n`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Value>,
    /// Default namespace for unqualified table names (like a leading `USE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// One column of a result schema. `type` is a KalamDB SQL type name (`BIGINT`, `TEXT`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ColumnInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
    /// Sync schemas only: the column's stable id, which survives `RENAME COLUMN` and is never
    /// reused, so a replica can carry its rows across a schema change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub id: Option<u16>,
    /// Sync schemas only: what rows written before the column existed read as (its literal
    /// `DEFAULT`); absent means NULL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional, type = "unknown"))]
    pub default: Option<Value>,
}

impl ColumnInfo {
    /// A result column: a name and a type.
    pub fn new(name: impl Into<String>, data_type: impl Into<String>) -> ColumnInfo {
        ColumnInfo { name: name.into(), data_type: data_type.into(), id: None, default: None }
    }
}

/// The result of one statement. Queries fill `schema` and `rows`; DDL and DML leave them
/// empty and report affected rows in `row_count` plus a human-readable `message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct QueryResult {
    #[serde(default)]
    pub schema: Vec<ColumnInfo>,
    #[serde(default)]
    pub rows: Vec<Vec<Value>>,
    pub row_count: u64,
    pub message: Option<String>,
}

/// Response of `POST /v1/api/sql`. Decoded by [`crate::tagged`] (the tag first, no
/// buffering of large results).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum SqlResponse {
    Success { results: Vec<QueryResult>, took_ms: f64 },
    Error { error: ErrorBody },
}

/// [`SqlResponse`] externally tagged, for [`crate::tagged`]; the same variants and fields.
#[derive(Deserialize)]
#[serde(remote = "SqlResponse", rename_all = "lowercase")]
enum SqlResponseFields {
    Success { results: Vec<QueryResult>, took_ms: f64 },
    Error { error: ErrorBody },
}

crate::decode_tag_first!(SqlResponse, SqlResponseFields, "status");

/// Body of an error response from any endpoint other than `/v1/api/sql`
/// (`{"status":"error","error":{...}}` — the same shape as [`SqlResponse::Error`]).
pub type ErrorResponse = SqlResponse;

/// Body of `POST /v1/api/auth/login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// Body of `POST /v1/api/auth/refresh`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// The signed-in user as reported by the auth endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct UserInfo {
    /// Stable user id (the partition key of the user's rows).
    pub id: String,
    pub username: String,
    pub role: Role,
}

/// Response of the login and refresh endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Expiry of `access_token`, RFC 3339.
    pub expires_at: String,
    pub refresh_token: String,
    pub user: UserInfo,
}

/// Response of `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResponse {
    pub status: String,
    pub version: String,
}
