//! `POST /v1/api/auth/login` and `POST /v1/api/auth/refresh`.

use crate::api::{AppState, Metrics};
use crate::error::StatementError;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use kalamdb_client_core::protocol::{LoginRequest, RefreshRequest, TokenResponse};

pub async fn login(
    State(state): State<AppState>,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Json<TokenResponse>, StatementError> {
    let Json(req) = body?;
    match state.db.auth.login(&req.username, &req.password).await {
        Ok(user) => {
            Metrics::inc(&state.metrics.logins, 1);
            Ok(Json(state.db.auth.issue(&user)?))
        }
        Err(e) => {
            Metrics::inc(&state.metrics.failed_logins, 1);
            Err(e.into())
        }
    }
}

pub async fn refresh(
    State(state): State<AppState>,
    body: Result<Json<RefreshRequest>, JsonRejection>,
) -> Result<Json<TokenResponse>, StatementError> {
    let Json(req) = body?;
    Ok(Json(state.db.auth.refresh(&req.refresh_token)?))
}
