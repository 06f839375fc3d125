//! [`JsonBody`]: the request-body extractor of every POST endpoint.

use crate::error::{KalamError, StatementError};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

/// A JSON object body deserialised into `T`. Unlike axum's `Json`, it reads the whole body
/// before judging it (so the connection stays usable after an error) and accepts only a
/// JSON object (serde would otherwise take an array for a struct).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = StatementError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
                ct.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                KalamError::TooLarge("request body exceeds the size limit".into())
            } else {
                KalamError::InvalidRequest(format!("cannot read the request body: {}", r.body_text()))
            }
        })?;
        if !is_json {
            return Err(KalamError::InvalidRequest("expected Content-Type: application/json".into()).into());
        }
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(KalamError::InvalidRequest("the request body must be a JSON object".into()).into());
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| KalamError::InvalidRequest(format!("invalid request body: {e}")).into())
    }
}
