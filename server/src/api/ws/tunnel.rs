//! A client's WebSocket session relayed to the node that stores its user's data.
//!
//! With spread storage (`cluster.spread_storage`) a node stores only some users' groups. A
//! client may still connect to any node: when its `auth` frame names a user whose group this
//! node does not store, the node opens a session on a node that does (over the cluster
//! port, see `crate::cluster`), sends it that frame, and relays every frame both ways
//! unchanged until either side closes. The other node authenticates the client, applies
//! its limits, serves its subscriptions and mutations, and keeps its cursors: to the client
//! it is one session. If that node goes away, the client is disconnected (close code 1012,
//! "service restart") and reconnects, here or elsewhere, resuming from its cursors.

use super::socket_writer::RECONNECT;
use crate::database::Database;
use crate::ids::Partition;
use crate::replication::GroupId;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};
use kalamdb_client_core::protocol::ws::{ClientMessage, ServerMessage};
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Message as NodeMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as NodeCloseFrame;

/// The group of the user a first frame authenticates, when this node does not store it.
/// `None` for anything else (this node then serves the connection, and answers a bad
/// frame or token as always).
pub(super) fn group_elsewhere(db: &Database, first: &Message) -> Option<GroupId> {
    let replication = db.replication()?;
    let Message::Text(text) = first else { return None };
    let ClientMessage::Auth { token } = serde_json::from_str(text.as_str()).ok()? else { return None };
    let principal = db.auth.grant(&token).ok()?.principal;
    // Which table does not matter: a user's partitions of every table are in one group.
    let group = replication.group_of(crate::ids::TableId(0), Partition::User(principal.user_id));
    (!replication.stores(group)).then_some(group)
}

/// Relays `client` to a node storing `group`, `first` (its `auth` frame) first. Frames are
/// converted between the two WebSocket libraries' types (axum's for the client, tungstenite's
/// for the node), each as it is.
pub(super) async fn relay(db: &Arc<Database>, mut client: WebSocket, first: Message, group: GroupId) {
    let Some(replication) = db.replication() else { return };
    let upstream = match replication.open_session(group).await {
        Ok(upstream) => upstream,
        Err(e) => {
            let frame = ServerMessage::Error { id: None, code: e.code(), message: e.public_message() };
            if let Ok(text) = serde_json::to_string(&frame) {
                let _ = client.send(Message::Text(text.into())).await;
            }
            let _ = client.send(Message::Close(Some(CloseFrame { code: RECONNECT, reason: "retry".into() }))).await;
            return;
        }
    };
    let (mut to_node, mut from_node) = upstream.split();
    let (mut to_client, mut from_client) = client.split();
    if to_node.send(to_node_message(first)).await.is_err() {
        let _ = to_client.send(going_away()).await;
        return;
    }
    let upward = async {
        while let Some(Ok(message)) = from_client.next().await {
            let message = to_node_message(message);
            let closing = matches!(message, NodeMessage::Close(_));
            if to_node.send(message).await.is_err() || closing {
                break;
            }
        }
        let _ = to_node.close().await;
    };
    let downward = async {
        let mut closed = false;
        while let Some(Ok(message)) = from_node.next().await {
            let Some(message) = to_client_message(message) else { continue };
            closed = matches!(message, Message::Close(_));
            if to_client.send(message).await.is_err() || closed {
                break;
            }
        }
        if !closed {
            // The other node went away without closing: the client reconnects and resumes.
            let _ = to_client.send(going_away()).await;
        }
    };
    tokio::select! {
        _ = upward => {}
        _ = downward => {}
    }
}

fn going_away() -> Message {
    Message::Close(Some(CloseFrame { code: RECONNECT, reason: "the node serving this session went away".into() }))
}

fn to_node_message(message: Message) -> NodeMessage {
    match message {
        Message::Text(t) => NodeMessage::Text(t.as_str().into()),
        Message::Binary(b) => NodeMessage::Binary(b),
        Message::Ping(p) => NodeMessage::Ping(p),
        Message::Pong(p) => NodeMessage::Pong(p),
        Message::Close(frame) => {
            NodeMessage::Close(frame.map(|f| NodeCloseFrame { code: f.code.into(), reason: f.reason.as_str().into() }))
        }
    }
}

fn to_client_message(message: NodeMessage) -> Option<Message> {
    Some(match message {
        NodeMessage::Text(t) => Message::Text(t.as_str().into()),
        NodeMessage::Binary(b) => Message::Binary(b),
        NodeMessage::Ping(p) => Message::Ping(p),
        NodeMessage::Pong(p) => Message::Pong(p),
        NodeMessage::Close(frame) => {
            Message::Close(frame.map(|f| CloseFrame { code: f.code.into(), reason: f.reason.as_str().into() }))
        }
        NodeMessage::Frame(_) => return None,
    })
}
