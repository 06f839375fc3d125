//! `POST /v1/api/auth/login` and `POST /v1/api/auth/refresh`.

use crate::api::body::JsonBody;
use crate::api::{AppState, Metrics};
use crate::error::StatementError;
use crate::schema::User;
use axum::Json;
use axum::extract::State;
use kalamdb_client_core::protocol::{LoginRequest, RefreshRequest, TokenResponse};

pub(crate) async fn login(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Json<TokenResponse>, StatementError> {
    let user = check_credentials(&state, &req).await?;
    Ok(Json(state.db.auth.issue(&user)?))
}

/// The password check of every sign-in (lockout included), counted in the metrics: the
/// user, if the credentials are right.
pub(crate) async fn check_credentials(state: &AppState, req: &LoginRequest) -> Result<User, StatementError> {
    match state.db.auth.login(&req.username, &req.password).await {
        Ok(user) => {
            Metrics::inc(&state.metrics.logins, 1);
            Ok(user)
        }
        Err(e) => {
            Metrics::inc(&state.metrics.failed_logins, 1);
            Err(e.into())
        }
    }
}

pub(crate) async fn refresh(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<RefreshRequest>,
) -> Result<Json<TokenResponse>, StatementError> {
    Ok(Json(state.db.auth.refresh(&req.refresh_token)?))
}
