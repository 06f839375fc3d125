//! `POST /v1/api/sql`.

use crate::api::{AppState, Metrics};
use crate::error::StatementError;
use crate::sql::execute_request;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, header};
use kalamdb_client_core::protocol::{SqlRequest, SqlResponse};
use std::time::Instant;

pub async fn handle(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<SqlRequest>, JsonRejection>,
) -> Result<Json<SqlResponse>, StatementError> {
    let started = Instant::now();
    Metrics::inc(&state.metrics.sql_requests, 1);
    let result = async {
        let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let principal = state.db.auth.authenticate_header(auth).await?;
        let Json(req) = body?;
        execute_request(&state.db, &principal, &req)
            .await
            .map_err(|e| StatementError { error: e.error, statement: e.statement })
    }
    .await;
    match result {
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
