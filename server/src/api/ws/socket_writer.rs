//! [`SocketWriter`]: the half of a WebSocket connection that writes.
//!
//! It runs on the server's main (I/O) runtime, not on the query runtime where the
//! connection plans subscriptions, reads initial loads and applies mutations: change events
//! then reach the socket without queueing behind the polls of other users' costly statements
//! (measured under hostile load, that queueing was most of an event's latency).
//!
//! It takes frames from two queues: the connection's own (replies, initial-load batches,
//! pings, the close), in order, and the fan-out's (changes, kills, schema changes). A
//! subscription's fan-out messages wait here until the connection has sent its initial load
//! (its `Loaded` marker), so a client always sees the load before the changes that follow it.
//! Messages for a subscription the connection has since ended are dropped.

use crate::live::LiveRegistry;
use crate::live::registry::{ConnectionSignal, LiveSubscription, Outgoing};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::SinkExt;
use futures::stream::SplitSink;
use kalamdb_client_core::protocol::ErrorCode;
use kalamdb_client_core::protocol::ws::ServerMessage;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

/// A client that accepts no data for this long is treated as gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Most queued frames written (and flushed) together.
const MAX_FRAMES_PER_WRITE: usize = 256;

/// What the connection asks its writer to do, in order.
pub(crate) enum WriterCommand {
    /// A frame, already serialized (large ones are built on the query runtime).
    Frame(String),
    /// A WebSocket ping (the heartbeat).
    Ping,
    /// The subscription's initial load has been sent; its changes may follow.
    Loaded(Arc<LiveSubscription>),
    /// Close with this WebSocket code and reason.
    Close(u16, &'static str),
}

/// The WebSocket close code for a connection a policy ends (authentication, limits).
pub(crate) const POLICY: u16 = 1008;
/// The WebSocket close code telling the client to reconnect ("service restart").
pub(crate) const RECONNECT: u16 = 1012;

pub(crate) struct SocketWriter {
    sink: SplitSink<WebSocket, Message>,
    commands: mpsc::Receiver<WriterCommand>,
    fanout: mpsc::Receiver<Outgoing>,
    signal: Arc<ConnectionSignal>,
    live: Arc<LiveRegistry>,
    /// Fan-out messages of subscriptions still loading, in arrival order.
    waiting: Vec<Outgoing>,
    /// Most messages that may wait (the fan-out queue's size).
    max_waiting: usize,
}

impl SocketWriter {
    pub(crate) fn new(
        sink: SplitSink<WebSocket, Message>,
        commands: mpsc::Receiver<WriterCommand>,
        fanout: mpsc::Receiver<Outgoing>,
        signal: Arc<ConnectionSignal>,
        live: Arc<LiveRegistry>,
        max_waiting: usize,
    ) -> SocketWriter {
        SocketWriter { sink, commands, fanout, signal, live, waiting: Vec::new(), max_waiting }
    }

    /// Writes until the connection closes, the client stops reading, or it falls too far
    /// behind. Dropping the writer tells the connection (its command queue closes).
    pub(crate) async fn run(mut self) {
        let close = loop {
            tokio::select! {
                // The connection's own frames first: they are replies the client waits for.
                biased;
                command = self.commands.recv() => match command {
                    None => break None,
                    Some(WriterCommand::Frame(text)) => {
                        if self.write(vec![text]).await.is_err() { break None; }
                    }
                    Some(WriterCommand::Ping) => {
                        let ping = tokio::time::timeout(SEND_TIMEOUT, self.sink.send(Message::Ping(Default::default())));
                        if !matches!(ping.await, Ok(Ok(()))) { break None; }
                    }
                    Some(WriterCommand::Loaded(sub)) => {
                        sub.loading.store(false, Ordering::Release);
                        let (ready, still) = std::mem::take(&mut self.waiting).into_iter().partition(|out| Arc::ptr_eq(subscription(out), &sub));
                        self.waiting = still;
                        let frames: Vec<String> = ready.into_iter().filter_map(|out| self.frame(out)).collect();
                        if !frames.is_empty() && self.write(frames).await.is_err() { break None; }
                    }
                    Some(WriterCommand::Close(code, reason)) => break Some((code, reason)),
                },
                _ = self.signal.overflow_notify.notified() => {
                    if self.signal.overflowed.load(Ordering::Relaxed) {
                        break Some((POLICY, self.slow_consumer().await));
                    }
                }
                Some(out) = self.fanout.recv() => {
                    if self.signal.overflowed.load(Ordering::Relaxed) {
                        break Some((POLICY, self.slow_consumer().await));
                    }
                    // Everything already queued goes out in one write.
                    let mut frames: Vec<String> = self.accept(out).into_iter().collect();
                    while frames.len() < MAX_FRAMES_PER_WRITE {
                        match self.fanout.try_recv() {
                            Ok(more) => frames.extend(self.accept(more)),
                            Err(_) => break,
                        }
                    }
                    if self.waiting.len() > self.max_waiting {
                        break Some((POLICY, self.slow_consumer().await));
                    }
                    if !frames.is_empty() && self.write(frames).await.is_err() { break None; }
                }
            }
        };
        if let Some((code, reason)) = close {
            let frame = CloseFrame { code, reason: reason.into() };
            let _ = tokio::time::timeout(SEND_TIMEOUT, self.sink.send(Message::Close(Some(frame)))).await;
        }
    }

    /// A fan-out message to write now, or none if it must wait for its subscription's load
    /// (kept in `waiting`) or is for an ended subscription (dropped).
    fn accept(&mut self, out: Outgoing) -> Option<String> {
        if subscription(&out).loading.load(Ordering::Acquire) {
            self.waiting.push(out);
            return None;
        }
        self.frame(out)
    }

    /// The text of a fan-out message, or none if its subscription has ended. A kill or
    /// schema change ends the subscription here.
    fn frame(&self, out: Outgoing) -> Option<String> {
        let message = match out {
            Outgoing::Change { sub, frame } => sub.is_current().then_some(frame)?,
            Outgoing::Killed { sub, reason } => {
                self.finish(&sub)?;
                ServerMessage::Error { id: Some(sub.id.clone()), code: ErrorCode::Killed, message: reason }
            }
            Outgoing::SchemaChanged { sub, schema_version } => {
                self.finish(&sub)?;
                ServerMessage::SchemaChanged { id: sub.id.clone(), schema_version }
            }
        };
        serde_json::to_string(&message).ok()
    }

    /// Ends a subscription the server ended; none if the connection already had.
    fn finish(&self, sub: &LiveSubscription) -> Option<()> {
        if sub.ended.swap(true, Ordering::AcqRel) {
            return None;
        }
        self.live.unregister(&sub.live_id);
        Some(())
    }

    async fn slow_consumer(&mut self) -> &'static str {
        let message = ServerMessage::Error {
            id: None,
            code: ErrorCode::SlowConsumer,
            message: "the connection fell too far behind; reconnect and resume from your cursors".into(),
        };
        if let Ok(text) = serde_json::to_string(&message) {
            let _ = self.write(vec![text]).await;
        }
        "slow consumer"
    }

    /// Writes frames with one flush at the end, so a burst of changes costs one syscall.
    async fn write(&mut self, frames: Vec<String>) -> Result<(), ()> {
        let sink = &mut self.sink;
        let write = async {
            for text in frames {
                sink.feed(Message::Text(text.into())).await.map_err(|_| ())?;
            }
            sink.flush().await.map_err(|_| ())
        };
        tokio::time::timeout(SEND_TIMEOUT, write).await.unwrap_or(Err(()))
    }
}

fn subscription(out: &Outgoing) -> &Arc<LiveSubscription> {
    match out {
        Outgoing::Change { sub, .. } | Outgoing::Killed { sub, .. } | Outgoing::SchemaChanged { sub, .. } => sub,
    }
}
