//! The one error type of `kalam`, and the exit code each kind of failure ends a script with.
//!
//! Every failure reaches the user as one line (`kalam: <error>`); nothing here carries a
//! password or a token, so printing an error never leaks a secret.

use kalamdb_client_core::protocol::ErrorCode;

/// Exit codes, documented in docs/cli.md ("Exit codes").
pub(crate) mod exit {
    /// Every statement succeeded.
    pub(crate) const OK: u8 = 0;
    /// A statement failed on the server (or a job it started failed).
    pub(crate) const SQL: u8 = 1;
    /// The server could not be reached, or refused the credentials.
    pub(crate) const CONNECT: u8 = 2;
    /// A wrong command line, meta-command, profile or unreadable file.
    pub(crate) const USAGE: u8 = 3;
    /// Stopped with Ctrl-C (the shell's convention: 128 + SIGINT).
    pub(crate) const INTERRUPTED: u8 = 130;
}

/// Why something `kalam` was asked to do did not happen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The server could not be reached: refused, unknown host, timeout, TLS, or the
    /// connection broke.
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    /// The server refused the credentials (wrong password, expired or revoked token, locked
    /// account).
    #[error("cannot sign in to {url}{who}: {message}")]
    Auth { url: String, who: String, message: String },
    /// A statement failed on the server; `code` is the server's error code.
    #[error("{code}: {message}")]
    Sql { code: ErrorCode, message: String },
    /// A job started by a statement (FLUSH, BACKUP, RESTORE) did not complete.
    #[error("job {job_id} {status}{}", .error.as_deref().map(|e| format!(": {e}")).unwrap_or_default())]
    Job { job_id: String, status: String, error: Option<String> },
    /// The server answered something that is not KalamDB's API.
    #[error("unexpected answer from {url}: {detail}")]
    Protocol { url: String, detail: String },
    /// A wrong command line, meta-command or profile.
    #[error("{0}")]
    Usage(String),
    /// A local file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Ctrl-C while waiting for the server.
    #[error("cancelled")]
    Interrupted,
}

impl CliError {
    /// The exit code a script ends with after this error.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Sql { code: ErrorCode::Unauthorized | ErrorCode::AccountLocked, .. } => exit::CONNECT,
            CliError::Sql { .. } | CliError::Job { .. } => exit::SQL,
            CliError::Connect { .. } | CliError::Auth { .. } | CliError::Protocol { .. } => exit::CONNECT,
            CliError::Usage(_) | CliError::Io { .. } => exit::USAGE,
            CliError::Interrupted => exit::INTERRUPTED,
        }
    }

    /// An I/O error on `what` (a path or "stdout").
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> CliError {
        CliError::Io { what: what.into(), source }
    }

    /// Whether this is stdout closing under us (`kalam ... | head`): the reader has what it
    /// wanted, so `kalam` stops quietly.
    pub(crate) fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

impl From<std::io::Error> for CliError {
    /// Writing results: the only I/O without a path of its own.
    fn from(source: std::io::Error) -> CliError {
        CliError::io("stdout", source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_failure_has_its_exit_code() {
        let sql = |code| CliError::Sql { code, message: "m".into() };
        assert_eq!(sql(ErrorCode::TableNotFound).exit_code(), exit::SQL);
        // A token that expires in the middle of a script is a sign-in problem, not a bad statement.
        assert_eq!(sql(ErrorCode::Unauthorized).exit_code(), exit::CONNECT);
        let connect = CliError::Connect { url: "http://h:1".into(), reason: "connection refused".into() };
        assert_eq!(connect.exit_code(), exit::CONNECT);
        assert_eq!(connect.to_string(), "cannot connect to http://h:1: connection refused");
        assert_eq!(CliError::Usage("x".into()).exit_code(), exit::USAGE);
        assert_eq!(CliError::Interrupted.exit_code(), exit::INTERRUPTED);
        let job = CliError::Job { job_id: "flush-1".into(), status: "failed".into(), error: Some("disk full".into()) };
        assert_eq!(job.to_string(), "job flush-1 failed: disk full");
        assert_eq!(job.exit_code(), exit::SQL);
        let pipe = CliError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(pipe.is_broken_pipe());
        assert!(!CliError::io("f.sql", std::io::Error::from(std::io::ErrorKind::NotFound)).is_broken_pipe());
    }
}
