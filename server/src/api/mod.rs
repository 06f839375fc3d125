//! HTTP API (SPEC §5): routes, request limits and the single mapping of errors to
//! HTTP statuses.
//!
//! - [`sql`]: `POST /v1/api/sql`
//! - [`auth`]: `POST /v1/api/auth/login`, `POST /v1/api/auth/refresh`
//! - [`ws`]: `GET /v1/ws`, the live/sync WebSocket: connections, catch-up, mutations (its
//!   subscriptions are [`crate::live`]'s)
//! - [`health`]: `GET /health`, `GET /metrics`
//! - [`admin`]: the admin console at `/admin` (embedded files, role-gated sign-in)
//! - [`body`]: the JSON body extractor (limits, object-only)
//! - [`error`]: how a [`crate::error::StatementError`] becomes the JSON error response

pub(crate) mod admin;
pub(crate) mod auth;
pub(crate) mod body;
pub(crate) mod error;
pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod serve;
pub(crate) mod sql;
pub(crate) mod ws;

pub(crate) use metrics::Metrics;

use crate::database::Database;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::routing::{get, post};
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// State shared by all handlers.
#[derive(Clone)]
pub(crate) struct AppState {
    pub db: Arc<Database>,
    pub metrics: Arc<Metrics>,
}

pub(crate) fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.db.config.server.cors_origins);
    let mut router = Router::new()
        .route("/v1/api/sql", post(sql::handle))
        .route("/v1/api/auth/login", post(auth::login))
        .route("/v1/api/auth/refresh", post(auth::refresh))
        .route("/v1/ws", get(ws::upgrade))
        .route("/health", get(health::health))
        .route("/v1/api/cluster/health", get(health::cluster))
        .route("/metrics", get(health::metrics));
    if state.db.config.admin.enabled {
        router = router.merge(admin::routes());
    }
    let router = router
        .fallback(error::not_found)
        // JsonBody enforces the configured limit itself (and drains oversized bodies).
        .layer(DefaultBodyLimit::disable())
        // A bug must cost one request, not the connection: answer 500 and keep serving.
        .layer(CatchPanicLayer::custom(error::panic_response))
        .with_state(state);
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// CORS for browser apps served from other origins; `None` (no headers) unless configured.
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        // Validated at config load, so every origin is a valid header value.
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static(sql::AFTER_INDEX_HEADER),
                HeaderName::from_static(sql::CONSISTENCY_HEADER),
            ])
            .expose_headers([HeaderName::from_static(sql::APPLIED_INDEX_HEADER)])
            .max_age(std::time::Duration::from_secs(600)),
    )
}
