use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// Declares [`ErrorCode`] from one list of codes and wire names: the enum, [`ErrorCode::ALL`]
/// and [`ErrorCode::as_str`]. (Serde's derive is not used for the names: it compiles every
/// name twice, as text and as bytes, a few KB of the wasm bundle.)
macro_rules! error_codes {
    ($($(#[$doc:meta])* $code:ident = $name:literal,)*) => {
        /// Machine-readable error codes. The HTTP status for each is fixed by
        /// [`ErrorCode::http_status`], so every endpoint maps errors the same way.
        // On the wire a code is its name in SCREAMING_SNAKE_CASE (`as_str`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[cfg_attr(test, derive(ts_rs::TS), ts(rename_all = "SCREAMING_SNAKE_CASE"))]
        pub enum ErrorCode {
            $($(#[$doc])* $code,)*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$code,)*];

            /// The wire name, e.g. `VALIDATION_ERROR`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$code => $name,)*
                }
            }
        }
    };
}

error_codes! {
    /// The request body is not the expected JSON shape.
    InvalidRequest = "INVALID_REQUEST",
    /// HTTP only: the path is not an endpoint of this server (or one turned off, such as a
    /// disabled admin console).
    NotFound = "NOT_FOUND",
    /// The SQL text does not parse.
    ParseError = "PARSE_ERROR",
    /// The statement parses but is invalid: wrong types, missing NOT NULL values, bad options.
    ValidationError = "VALIDATION_ERROR",
    /// The statement is valid SQL but not supported by KalamDB.
    NotSupported = "NOT_SUPPORTED",
    /// No credentials, or bad credentials, or an expired token.
    Unauthorized = "UNAUTHORIZED",
    /// Too many failed logins: the account is locked for a while.
    AccountLocked = "ACCOUNT_LOCKED",
    /// Authenticated, but the role does not allow this.
    Forbidden = "FORBIDDEN",
    NamespaceNotFound = "NAMESPACE_NOT_FOUND",
    TableNotFound = "TABLE_NOT_FOUND",
    UserNotFound = "USER_NOT_FOUND",
    /// Something with that name already exists.
    AlreadyExists = "ALREADY_EXISTS",
    /// A row with that primary key already exists.
    DuplicateKey = "DUPLICATE_KEY",
    /// The object is in use (a namespace with tables, a storage used by tables, ...).
    InUse = "IN_USE",
    /// The request body, SQL text or result exceeds a configured limit.
    TooLarge = "TOO_LARGE",
    /// More statements in one request than allowed.
    TooManyStatements = "TOO_MANY_STATEMENTS",
    /// Too many requests, connections or frames from one user at once.
    RateLimited = "RATE_LIMITED",
    /// The request ran longer than the server's `limits.query_timeout_secs` and was
    /// cancelled.
    Timeout = "TIMEOUT",
    /// WebSocket only: the client did not read its frames fast enough; the connection is
    /// closed and the client resumes from its cursors.
    SlowConsumer = "SLOW_CONSUMER",
    /// WebSocket only: the subscription was ended by `KILL LIVE QUERY`.
    Killed = "KILLED",
    /// Cluster mode: the write could not reach a leader with a quorum (a node is cut off, or
    /// a new leader is being elected). Nothing was applied unless the message says it may
    /// have been; retry.
    Unavailable = "UNAVAILABLE",
    /// An unexpected server-side failure; details are logged, not returned.
    InternalError = "INTERNAL_ERROR",
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
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == name).ok_or_else(|| {
            // The message serde's derive gave.
            let expected: Vec<String> = ErrorCode::ALL.iter().map(|c| format!("`{c}`")).collect();
            de::Error::custom(format_args!("unknown variant `{name}`, expected one of {}", expected.join(", ")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_travel_by_their_screaming_snake_case_names() {
        assert_eq!(ErrorCode::ALL.len(), ErrorCode::InternalError as usize + 1, "ALL lists every code");
        for (i, &code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(code as usize, i, "ALL is in declaration order");
            let debug = format!("{code:?}");
            let mut name = String::new();
            for (j, ch) in debug.chars().enumerate() {
                if ch.is_ascii_uppercase() && j > 0 {
                    name.push('_');
                }
                name.push(ch.to_ascii_uppercase());
            }
            assert_eq!(code.as_str(), name);
            assert_eq!(code.to_string(), name);
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
        let err = serde_json::from_str::<ErrorCode>("\"NOPE\"").unwrap_err().to_string();
        assert!(err.starts_with("unknown variant `NOPE`, expected one of `INVALID_REQUEST`, `NOT_FOUND`"), "{err}");
        assert!(serde_json::from_str::<ErrorCode>("3").is_err());
    }
}
