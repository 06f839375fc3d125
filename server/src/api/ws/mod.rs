//! `GET /v1/ws`: the live/sync WebSocket (see `docs/protocol.md`).
//!
//! - [`connection`]: one socket — auth and renewal, framing, limits, heartbeat,
//!   subscriptions and catch-up.
//! - [`socket_writer`]: writes a socket's frames and change events, off the query runtime.
//! - [`mutations`]: the `mutate` frame, exactly once per `(user, client_id, seq)`.
//! - [`tunnel`]: with spread storage, relays a session to the node that stores its user's data.

pub(crate) mod connection;
pub(crate) mod mutations;
pub(crate) mod socket_writer;
pub(crate) mod tunnel;

use crate::api::AppState;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;

pub(crate) async fn upgrade(
    State(state): State<AppState>,
    slot: Option<axum::Extension<crate::api::serve::ConnectionSlot>>,
    ws: WebSocketUpgrade,
) -> Response {
    let max = state.db.config.live.max_message_bytes;
    let db = state.db.clone();
    // The connection's work (planning, catch-up, mutations) runs on the query runtime; its
    // socket is written from this one. It keeps its place among the server's connections
    // (`server.max_connections`) for as long as it is open.
    ws.max_message_size(max).max_frame_size(max).on_upgrade(move |socket| async move {
        let _slot = slot;
        connection::serve(db, socket, connection::Arrival::Client).await
    })
}
