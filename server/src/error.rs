//! The server's error type. Every layer returns [`KalamError`]; the API layer maps it to
//! an HTTP status and error body once, through [`KalamError::code`].

use kalamdb_client_core::protocol::ErrorCode;

pub type Result<T, E = KalamError> = std::result::Result<T, E>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum KalamError {
    #[error("{0}")]
    InvalidRequest(String),
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
    /// Storage failures: logged in full, answered as a generic internal error.
    #[error("storage error: {0}")]
    Storage(#[from] rocksdb::Error),
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
            Storage(_) | Internal(_) => ErrorCode::InternalError,
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

/// DataFusion reports unknown tables as plan errors; give them their own code.
fn plan_error(msg: &str) -> KalamError {
    if let Some(rest) = msg.strip_prefix("table '")
        && let Some(end) = rest.find("' not found")
    {
        let name = rest[..end].trim_start_matches("kalam.");
        return KalamError::TableNotFound(name.to_string());
    }
    KalamError::Validation(msg.to_string())
}
