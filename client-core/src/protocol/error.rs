use serde::{Deserialize, Serialize};

/// Machine-readable error codes. The HTTP status for each is fixed by
/// [`ErrorCode::http_status`], so every endpoint maps errors the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The request body is not the expected JSON shape.
    InvalidRequest,
    /// HTTP only: the path is not an endpoint of this server (or one turned off, such as a
    /// disabled admin console).
    NotFound,
    /// The SQL text does not parse.
    ParseError,
    /// The statement parses but is invalid: wrong types, missing NOT NULL values, bad options.
    ValidationError,
    /// The statement is valid SQL but not supported by KalamDB.
    NotSupported,
    /// No credentials, or bad credentials, or an expired token.
    Unauthorized,
    /// Too many failed logins: the account is locked for a while.
    AccountLocked,
    /// Authenticated, but the role does not allow this.
    Forbidden,
    NamespaceNotFound,
    TableNotFound,
    UserNotFound,
    /// Something with that name already exists.
    AlreadyExists,
    /// A row with that primary key already exists.
    DuplicateKey,
    /// The object is in use (a namespace with tables, a storage used by tables, ...).
    InUse,
    /// The request body, SQL text or result exceeds a configured limit.
    TooLarge,
    /// More statements in one request than allowed.
    TooManyStatements,
    /// Too many requests, connections or frames from one user at once.
    RateLimited,
    /// The request ran longer than the server's `limits.query_timeout_secs` and was
    /// cancelled.
    Timeout,
    /// WebSocket only: the client did not read its frames fast enough; the connection is
    /// closed and the client resumes from its cursors.
    SlowConsumer,
    /// WebSocket only: the subscription was ended by `KILL LIVE QUERY`.
    Killed,
    /// Cluster mode: the write could not reach a leader with a quorum (a node is cut off, or
    /// a new leader is being elected). Nothing was applied unless the message says it may
    /// have been; retry.
    Unavailable,
    /// An unexpected server-side failure; details are logged, not returned.
    InternalError,
}

impl ErrorCode {
    /// The HTTP status this error is answered with.
    pub fn http_status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidRequest | ParseError | ValidationError | NotSupported | TooManyStatements => 400,
            Unauthorized | AccountLocked => 401,
            Forbidden => 403,
            NotFound | NamespaceNotFound | TableNotFound | UserNotFound => 404,
            AlreadyExists | DuplicateKey | InUse => 409,
            TooLarge => 413,
            Timeout => 408,
            RateLimited => 429,
            Killed => 410,
            SlowConsumer | Unavailable => 503,
            InternalError => 500,
        }
    }
}

/// The `error` object of an error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// 1-based index of the statement that failed, for `/v1/api/sql`. Statements before it
    /// were applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<usize>,
}

impl std::fmt::Display for ErrorCode {
    /// The wire name, e.g. `VALIDATION_ERROR`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(s)) => f.write_str(&s),
            _ => write!(f, "{self:?}"),
        }
    }
}
