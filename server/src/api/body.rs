//! [`JsonBody`]: the request-body extractor of every POST endpoint.

use crate::api::AppState;
use crate::error::{KalamError, StatementError};
use axum::extract::{FromRequest, Request};
use axum::http::header;
use futures::StreamExt;
use serde::de::DeserializeOwned;

/// A JSON object body deserialised into `T`. Unlike axum's `Json`, it reads the whole body
/// before judging it — an oversized one is drained (up to [`DRAIN_FACTOR`] times the limit)
/// so the client receives the 413 instead of a reset connection — and accepts only a JSON
/// object (serde would otherwise take an array for a struct).
pub(crate) struct JsonBody<T>(pub T);

/// How far past the limit an oversized body is still read and discarded.
pub(crate) const DRAIN_FACTOR: usize = 16;

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = StatementError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let is_json =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
                ct.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        let limit = state.db.config.limits.max_body_bytes;
        let mut stream = req.into_body().into_data_stream();
        let mut body = Vec::new();
        let mut total = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| KalamError::InvalidRequest(format!("cannot read the request body: {e}")))?;
            total += chunk.len();
            if total <= limit {
                body.extend_from_slice(&chunk);
            } else if total > limit.saturating_mul(DRAIN_FACTOR) {
                break;
            }
        }
        if total > limit {
            return Err(KalamError::TooLarge(format!("request body exceeds the limit of {limit} bytes")).into());
        }
        let bytes = body;
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
