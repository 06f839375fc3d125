use crate::api::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use kalamdb_client_core::protocol::HealthResponse;

pub(crate) async fn health() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok".into(), version: env!("CARGO_PKG_VERSION").into() })
}

/// Cluster mode: this node's view of the cluster (its role, the leader, term, log and
/// applied positions, members). 404 on a single node.
pub(crate) async fn cluster(State(state): State<AppState>) -> axum::response::Response {
    match state.db.replication() {
        Some(r) => Json(r.health()).into_response(),
        None => (axum::http::StatusCode::NOT_FOUND, "not a cluster node").into_response(),
    }
}

pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
