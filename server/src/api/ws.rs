//! `GET /v1/ws`: upgrades to the live/sync WebSocket.

use crate::api::AppState;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;

pub async fn upgrade(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    let max = state.db.config.live.max_message_bytes;
    let db = state.db.clone();
    // The connection's work (planning, catch-up, mutations) runs on the query runtime; its
    // socket is written from this one.
    ws.max_message_size(max).max_frame_size(max).on_upgrade(move |socket| crate::live::serve(db, socket))
}
