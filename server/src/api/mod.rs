//! HTTP API (SPEC §5): routes, request limits and the single mapping of errors to
//! HTTP statuses.
//!
//! - [`sql`]: `POST /v1/api/sql`
//! - [`auth`]: `POST /v1/api/auth/login`, `POST /v1/api/auth/refresh`
//! - [`ws`]: `GET /v1/ws`, the live/sync WebSocket (see [`crate::live`])
//! - [`health`]: `GET /health`, `GET /metrics`
//! - [`body`]: the JSON body extractor (limits, object-only)
//! - [`error`]: how a [`crate::error::StatementError`] becomes the JSON error response

pub mod auth;
pub mod body;
pub mod error;
pub mod health;
pub mod metrics;
pub mod sql;
pub mod ws;

pub use metrics::Metrics;

use crate::database::Database;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;

/// State shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    pub db: Arc<Database>,
    pub metrics: Arc<Metrics>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/api/sql", post(sql::handle))
        .route("/v1/api/auth/login", post(auth::login))
        .route("/v1/api/auth/refresh", post(auth::refresh))
        .route("/v1/ws", get(ws::upgrade))
        .route("/health", get(health::health))
        .route("/metrics", get(health::metrics))
        .fallback(error::not_found)
        // JsonBody enforces the configured limit itself (and drains oversized bodies).
        .layer(DefaultBodyLimit::disable())
        // A bug must cost one request, not the connection: answer 500 and keep serving.
        .layer(CatchPanicLayer::custom(error::panic_response))
        .with_state(state)
}
