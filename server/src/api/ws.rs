//! `GET /v1/ws`: upgrades to the live/sync WebSocket.

use crate::api::AppState;
use crate::live::Connection;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;

pub async fn upgrade(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    let max = state.db.config.live.max_message_bytes;
    let db = state.db.clone();
    ws.max_message_size(max).max_frame_size(max).on_upgrade(move |socket| Connection::new(db).run(socket))
}
