//! The server's error type. Every layer returns [`KalamError`]; the API layer maps it to
//! an HTTP status and error body once, through [`KalamError::code`].

use kalamdb_client_core::protocol::ErrorCode;
use std::path::PathBuf;
use std::sync::Arc;

pub type Result<T, E = KalamError> = std::result::Result<T, E>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum KalamError {
    #[error("{0}")]
    InvalidRequest(String),
    /// The path is not an endpoint of this server.
    #[error("{0}")]
    NoSuchEndpoint(String),
    #[error("{0}")]
    Parse(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    NotSupported(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    AccountLocked(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("namespace '{0}' does not exist")]
    NamespaceNotFound(String),
    #[error("table '{0}' does not exist")]
    TableNotFound(String),
    #[error("user '{0}' does not exist")]
    UserNotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    DuplicateKey(String),
    #[error("{0}")]
    InUse(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    TooManyStatements(String),
    #[error("{0}")]
    RateLimited(String),
    #[error("{0}")]
    Timeout(String),
    /// A write was prepared on a table definition an ALTER TABLE has since replaced; the
    /// statement is retried on the new definition.
    #[error("table '{0}' changed its schema during the write; retry it")]
    SchemaChanged(String),
    /// Cluster mode: no leader with a quorum took the write (see [`ErrorCode::Unavailable`]).
    #[error("{0}")]
    Unavailable(String),
    /// Cluster mode: this node stopped leading the write's group before the write entered
    /// the group's log, so nothing of it was applied; it is run again on the new leader
    /// ([`crate::replication::on_leader`]). Reaches a client as `UNAVAILABLE` only when no
    /// leader takes it in time.
    #[error(
        "leadership of group {0} moved to another node before the write entered its log; nothing was applied, retry"
    )]
    NotLeader(u32),
    /// An error another node of the cluster answered with (a forwarded statement, or a
    /// replicated write that failed when it was applied).
    #[error("{message}")]
    Remote { code: ErrorCode, message: String },
    /// Storage failures: logged in full, answered as a generic internal error.
    #[error("storage error: {0}")]
    Storage(#[from] rocksdb::Error),
    /// A file or directory operation failed; the OS error is its source.
    #[error("cannot {op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Stored bytes that do not decode as what was written (a damaged disk or a bug).
    #[error("corrupt {0}")]
    Corrupt(String),
    /// A lower layer's own error (such as the cold tier's), kept whole for the log.
    #[error(transparent)]
    Source(Arc<dyn std::error::Error + Send + Sync>),
    #[error("internal error: {0}")]
    Internal(String),
}

/// An error, and for `/v1/api/sql` the 1-based index of the statement that failed
/// (the statements before it were applied).
#[derive(Debug)]
pub struct StatementError {
    pub error: KalamError,
    pub statement: Option<usize>,
}

impl From<KalamError> for StatementError {
    fn from(error: KalamError) -> Self {
        StatementError { error, statement: None }
    }
}

impl KalamError {
    pub fn code(&self) -> ErrorCode {
        use KalamError::*;
        match self {
            InvalidRequest(_) => ErrorCode::InvalidRequest,
            NoSuchEndpoint(_) => ErrorCode::NotFound,
            Parse(_) => ErrorCode::ParseError,
            Validation(_) => ErrorCode::ValidationError,
            NotSupported(_) => ErrorCode::NotSupported,
            Unauthorized(_) => ErrorCode::Unauthorized,
            AccountLocked(_) => ErrorCode::AccountLocked,
            Forbidden(_) => ErrorCode::Forbidden,
            NamespaceNotFound(_) => ErrorCode::NamespaceNotFound,
            TableNotFound(_) => ErrorCode::TableNotFound,
            UserNotFound(_) => ErrorCode::UserNotFound,
            AlreadyExists(_) => ErrorCode::AlreadyExists,
            DuplicateKey(_) => ErrorCode::DuplicateKey,
            InUse(_) | SchemaChanged(_) => ErrorCode::InUse,
            TooLarge(_) => ErrorCode::TooLarge,
            TooManyStatements(_) => ErrorCode::TooManyStatements,
            RateLimited(_) => ErrorCode::RateLimited,
            Timeout(_) => ErrorCode::Timeout,
            Unavailable(_) | NotLeader(_) => ErrorCode::Unavailable,
            Remote { code, .. } => *code,
            Storage(_) | Io { .. } | Corrupt(_) | Source(_) | Internal(_) => ErrorCode::InternalError,
        }
    }

    /// The message safe to show a client: internal errors are replaced by a generic text
    /// (the details go to the log).
    pub fn public_message(&self) -> String {
        match self.code() {
            ErrorCode::InternalError => "internal server error".to_string(),
            _ => self.to_string(),
        }
    }

    pub fn internal(msg: impl std::fmt::Display) -> Self {
        KalamError::Internal(msg.to_string())
    }

    /// For `map_err`: a failed file operation `op` ("read", "create", ...) on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> KalamError {
        let path = path.into();
        move |source| KalamError::Io { op, path, source: Arc::new(source) }
    }

    /// The error and each of its sources, for the log: `cannot read x: permission denied`.
    pub fn report(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            out.push_str(": ");
            out.push_str(&s.to_string());
            source = s.source();
        }
        out
    }

    /// Wrap for returning through DataFusion traits.
    pub fn into_datafusion(self) -> datafusion::error::DataFusionError {
        datafusion::error::DataFusionError::External(Box::new(self))
    }
}

impl From<datafusion::error::DataFusionError> for KalamError {
    fn from(err: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as D;
        // Errors raised by our own providers travel through DataFusion boxed; unwrap them so
        // a forbidden system table or a missing namespace keeps its code.
        let root = err.find_root();
        if let D::External(inner) = root {
            if let Some(k) = inner.downcast_ref::<KalamError>() {
                return k.clone();
            }
            // A pattern the user wrote (`regexp_like(s, '(')`): their mistake, not ours.
            // (The planner's simplifier reports a regex_syntax error, execution a regex one.)
            if let Some(e) = inner.downcast_ref::<regex::Error>() {
                return KalamError::Validation(format!("invalid regular expression: {e}"));
            }
            if let Some(e) = inner.downcast_ref::<regex_syntax::Error>() {
                return KalamError::Validation(format!("invalid regular expression: {e}"));
            }
            if let Some(e) = inner.downcast_ref::<datafusion::arrow::error::ArrowError>() {
                return KalamError::Validation(e.to_string());
            }
        }
        match root {
            D::SQL(e, _) => KalamError::Parse(e.to_string()),
            D::Plan(msg) => plan_error(msg),
            D::SchemaError(e, _) => KalamError::Validation(e.to_string()),
            D::NotImplemented(msg) => KalamError::NotSupported(msg.clone()),
            D::ArrowError(e, _) => KalamError::Validation(e.to_string()),
            D::Execution(msg) => KalamError::Validation(msg.clone()),
            D::ResourcesExhausted(msg) => KalamError::TooLarge(msg.clone()),
            other => KalamError::Internal(other.to_string()),
        }
    }
}

/// DataFusion reports unknown tables as plan errors (a schema provider cannot refuse them
/// itself: the name may still be a table function); give them their own code.
fn plan_error(msg: &str) -> KalamError {
    if let Some(rest) = msg.strip_prefix("table '")
        && let Some(end) = rest.find("' not found")
    {
        let name = rest[..end].trim_start_matches("kalam.");
        return KalamError::TableNotFound(name.to_string());
    }
    KalamError::Validation(msg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_failures_keep_their_source_for_the_log_only() {
        let denied = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied");
        let e = KalamError::io("read", "/data/x")(denied);
        assert_eq!(e.report(), "cannot read /data/x: permission denied");
        assert_eq!(e.code(), ErrorCode::InternalError);
        assert_eq!(e.public_message(), "internal server error");
        let e = KalamError::Corrupt("row: truncated".into());
        assert_eq!(
            (e.report().as_str(), e.public_message().as_str()),
            ("corrupt row: truncated", "internal server error")
        );
    }
}
