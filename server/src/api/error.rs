//! The one place errors become HTTP responses.

use crate::error::KalamError;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kalamdb_client_core::protocol::{ErrorBody, ErrorCode, SqlResponse};

/// An error response: `{"status":"error","error":{"code","message","statement"?}}`.
#[derive(Debug)]
pub struct ApiError {
    pub error: KalamError,
    pub statement: Option<usize>,
}

impl From<KalamError> for ApiError {
    fn from(error: KalamError) -> Self {
        ApiError { error, statement: None }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let error = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            KalamError::TooLarge("request body exceeds the size limit".into())
        } else {
            KalamError::InvalidRequest(format!("invalid request body: {}", r.body_text()))
        };
        ApiError { error, statement: None }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.error.code();
        if code == ErrorCode::InternalError {
            tracing::error!(error = %self.error, "internal error");
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

pub async fn not_found() -> ApiError {
    KalamError::InvalidRequest("no such endpoint".into()).into()
}

/// Response for a handler that panicked (logged; the client gets a plain internal error).
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::from(KalamError::internal("a request handler panicked")).into_response()
}
