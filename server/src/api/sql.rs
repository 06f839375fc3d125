//! `POST /v1/api/sql`.
//!
//! A request waits for the user's turn ([`crate::budget::Admission`]) and runs under one
//! deadline, `limits.query_timeout_secs`, which cancels it wherever it is. Its cheap, bounded
//! parts run here; DataFusion work and the JSON of large responses run on the query runtime.

use crate::api::body::JsonBody;
use crate::api::{AppState, Metrics};
use crate::auth::Principal;
use crate::error::{KalamError, StatementError};
use crate::replication::AppliedPosition;
use crate::sql::{execute_request, results};
use axum::extract::{FromRequestParts, State};
use axum::http::{HeaderValue, header, request::Parts};
use axum::response::{IntoResponse, Response};
use kalamdb_client_core::protocol::SqlResponse;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The caller, from the `Authorization` header. Runs before the body is read, so bad
/// credentials are answered 401 whatever the body holds.
pub(crate) struct Authenticated(pub Principal);

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

/// Cluster mode: a request with this header (a position, as [`APPLIED_INDEX_HEADER`] gave
/// it) runs once the node has applied that far, so a client reads its own write on any node.
pub(crate) const AFTER_INDEX_HEADER: &str = "x-kalamdb-after-index";
/// Cluster mode: `linearizable` makes the node confirm with the leader (and a majority) that
/// it has applied every write committed before the request, before running it.
pub(crate) const CONSISTENCY_HEADER: &str = "x-kalamdb-consistency";
/// Cluster mode: how far the node had applied each Raft group's log when it answered (a
/// write's answer comes after the write was applied there): log indexes separated by commas,
/// the metadata group's first ([`AppliedPosition`]).
pub(crate) const APPLIED_INDEX_HEADER: &str = "x-kalamdb-applied-index";

pub(crate) async fn handle(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    headers: axum::http::HeaderMap,
    JsonBody(req): JsonBody<kalamdb_client_core::protocol::SqlRequest>,
) -> Result<Response, StatementError> {
    Metrics::inc(&state.metrics.sql_requests, 1);
    let after = match headers.get(AFTER_INDEX_HEADER) {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(|v| v.parse::<AppliedPosition>().ok()).ok_or_else(|| {
            StatementError::from(KalamError::InvalidRequest(format!(
                "{AFTER_INDEX_HEADER} must be a position as {APPLIED_INDEX_HEADER} gave it"
            )))
        })?),
    };
    let linearizable = match headers.get(CONSISTENCY_HEADER).map(|v| v.to_str().unwrap_or("")) {
        None => false,
        Some("linearizable") => true,
        Some(other) => {
            return Err(KalamError::InvalidRequest(format!(
                "{CONSISTENCY_HEADER} must be 'linearizable', not '{other}'"
            ))
            .into());
        }
    };
    // A single node is linearizable as it is.
    if let (true, Some(replication)) = (linearizable, state.db.replication()) {
        replication.read_barrier().await?;
    }
    let outcome = match (after, state.db.replication()) {
        (Some(position), Some(replication)) => match replication.wait_applied(&position).await {
            true => run(&state, principal, req).await,
            false => Err(KalamError::Unavailable(format!(
                "this node has not applied position {position} yet (it lags or is cut off from the cluster); retry"
            ))
            .into()),
        },
        _ => run(&state, principal, req).await,
    };
    let outcome = outcome.map(|mut response| {
        if let Some(r) = state.db.replication()
            && let Ok(position) = HeaderValue::from_str(&r.applied_position().to_string())
        {
            response.headers_mut().insert(APPLIED_INDEX_HEADER, position);
        }
        response
    });
    if outcome.is_err() {
        Metrics::inc(&state.metrics.sql_errors, 1);
    }
    outcome
}

async fn run(
    state: &AppState,
    principal: Principal,
    req: kalamdb_client_core::protocol::SqlRequest,
) -> Result<Response, StatementError> {
    let started = Instant::now();
    let timeout_secs = state.db.config.limits.query_timeout_secs;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout_secs);
    let timed_out = |statement: Option<usize>| StatementError {
        error: KalamError::Timeout(format!(
            "the request was cancelled after {timeout_secs} s (limits.query_timeout_secs); \
             statements before the one named were applied"
        )),
        statement,
    };
    let _permit = tokio::time::timeout_at(deadline, state.db.admission.statement(principal.user_id))
        .await
        .map_err(|_| timed_out(None))??;
    let running = AtomicUsize::new(0);
    let results = match tokio::time::timeout_at(deadline, execute_request(&state.db, &principal, &req, &running)).await
    {
        Ok(results) => results?,
        Err(_) => {
            // Dropping the request's future stopped its work (query tasks abort with it).
            let statement = running.load(Ordering::Relaxed);
            return Err(timed_out((statement > 0).then_some(statement)));
        }
    };
    Metrics::inc(&state.metrics.sql_statements, results.len() as u64);
    let large = results.iter().map(results::result_json_len).sum::<usize>() > INLINE_JSON_BYTES;
    let response = SqlResponse::Success { results, took_ms: started.elapsed().as_secs_f64() * 1000.0 };
    let body = if large {
        let (scheduler, user) = (state.db.scheduler.clone(), principal.user_id);
        let serialize = async move {
            let _slot = scheduler.acquire(user).await;
            serde_json::to_vec(&response).map_err(KalamError::internal)
        };
        state.db.runtime.run(serialize).await?
    } else {
        serde_json::to_vec(&response).map_err(KalamError::internal)?
    };
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// Responses larger than this are serialized on the query runtime.
const INLINE_JSON_BYTES: usize = 256 * 1024;
