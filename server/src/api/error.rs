//! The one place errors become HTTP responses.

use crate::error::{KalamError, StatementError};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kalamdb_client_core::protocol::{ErrorBody, ErrorCode, SqlResponse};

/// An error response: `{"status":"error","error":{"code","message","statement"?}}`.
impl IntoResponse for StatementError {
    fn into_response(self) -> Response {
        let code = self.error.code();
        if code == ErrorCode::InternalError {
            tracing::error!(error = %self.error.report(), "internal error");
        }
        let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = SqlResponse::Error {
            error: ErrorBody { code, message: self.error.public_message(), statement: self.statement },
        };
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer, Basic realm=\"kalamdb\""),
            );
        }
        resp
    }
}

pub(crate) async fn not_found() -> StatementError {
    KalamError::NoSuchEndpoint("no such endpoint".into()).into()
}

/// Response for a handler that panicked (logged; the client gets a plain internal error).
pub(crate) fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    StatementError::from(KalamError::internal("a request handler panicked")).into_response()
}
