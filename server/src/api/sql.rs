//! `POST /v1/api/sql`.

use crate::api::body::JsonBody;
use crate::api::{AppState, Metrics};
use crate::auth::Principal;
use crate::error::StatementError;
use crate::sql::execute_request;
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::{header, request::Parts};
use kalamdb_client_core::protocol::{SqlRequest, SqlResponse};
use std::time::Instant;

/// The caller, from the `Authorization` header. Runs before the body is read, so bad
/// credentials are answered 401 whatever the body holds.
pub struct Authenticated(pub Principal);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = StatementError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        match state.db.auth.authenticate_header(header).await {
            Ok(p) => Ok(Authenticated(p)),
            Err(e) => {
                Metrics::inc(&state.metrics.sql_errors, 1);
                Err(e.into())
            }
        }
    }
}

pub async fn handle(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    JsonBody(req): JsonBody<SqlRequest>,
) -> Result<Json<SqlResponse>, StatementError> {
    let started = Instant::now();
    Metrics::inc(&state.metrics.sql_requests, 1);
    match execute_request(&state.db, &principal, &req).await {
        Ok(results) => {
            Metrics::inc(&state.metrics.sql_statements, results.len() as u64);
            Ok(Json(SqlResponse::Success { results, took_ms: started.elapsed().as_secs_f64() * 1000.0 }))
        }
        Err(e) => {
            Metrics::inc(&state.metrics.sql_errors, 1);
            Err(e)
        }
    }
}
