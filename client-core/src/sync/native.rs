//! The native platform: tokio + tungstenite. [`start_native`] runs the driver on its own
//! thread (a current-thread runtime), so the returned [`Client`] is `Send` and usable from
//! any tokio runtime or plain thread.

use super::client::Client;
use super::driver::{ClientConfig, run};
use super::platform::{ConnectError, Platform, Socket, SocketEvent, TokenSource};
use crate::store::ReplicaStore;
use futures::channel::mpsc::{self, UnboundedSender};
use futures::future::{BoxFuture, LocalBoxFuture};
use futures::{FutureExt, SinkExt, StreamExt};
use std::rc::Rc;
use tokio_tungstenite::tungstenite::Message;

/// Tokio-based [`Platform`]; must run inside a `LocalSet`.
pub struct NativePlatform;

struct NativeSocket {
    out: mpsc::UnboundedSender<Message>,
}

impl Socket for NativeSocket {
    fn send(&self, text: String) -> Result<(), String> {
        self.out.unbounded_send(Message::text(text)).map_err(|_| "socket closed".to_string())
    }

    fn close(&self) {
        let _ = self.out.unbounded_send(Message::Close(None));
        self.out.close_channel();
    }
}

impl Platform for NativePlatform {
    fn connect(
        &self,
        url: &str,
        conn: u64,
        events: UnboundedSender<SocketEvent>,
    ) -> LocalBoxFuture<'static, Result<Box<dyn Socket>, String>> {
        let url = url.to_string();
        Box::pin(async move {
            let (ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.map_err(|e| e.to_string())?;
            let _ = ws.get_ref(); // the stream is split below; nothing else needs the handshake
            let (mut sink, mut stream) = ws.split();
            let (out, mut out_rx) = mpsc::unbounded::<Message>();
            tokio::task::spawn_local(async move {
                while let Some(m) = out_rx.next().await {
                    let closing = matches!(m, Message::Close(_));
                    if sink.send(m).await.is_err() || closing {
                        break;
                    }
                }
                let _ = sink.close().await;
            });
            tokio::task::spawn_local(async move {
                let reason = loop {
                    match stream.next().await {
                        Some(Ok(Message::Text(t))) => {
                            if events.unbounded_send(SocketEvent::Frame { conn, text: t.to_string() }).is_err() {
                                break None;
                            }
                        }
                        Some(Ok(Message::Close(frame))) => break frame.map(|f| f.reason.to_string()),
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break Some(e.to_string()),
                        None => break None,
                    }
                };
                let _ = events.unbounded_send(SocketEvent::Closed { conn, reason });
            });
            Ok(Box::new(NativeSocket { out }) as Box<dyn Socket>)
        })
    }

    fn spawn(&self, task: LocalBoxFuture<'static, ()>) {
        tokio::task::spawn_local(task);
    }

    fn sleep(&self, ms: u64) -> LocalBoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(std::time::Duration::from_millis(ms)))
    }

    fn now_ms(&self) -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    }

    fn random_u32(&self) -> u32 {
        rand::random()
    }
}

/// Starts a sync client on a dedicated thread. `tokens` is called for every connection and
/// renewal; it may run on any thread.
pub fn start_native<S, F>(config: ClientConfig, store: S, tokens: F) -> Client
where
    S: ReplicaStore + Send + 'static,
    F: Fn() -> BoxFuture<'static, Result<String, String>> + Send + Sync + 'static,
{
    let (tx, rx) = mpsc::unbounded();
    std::thread::Builder::new()
        .name("kalamdb-sync".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
            let local = tokio::task::LocalSet::new();
            let tokens = std::sync::Arc::new(tokens);
            let source: TokenSource = Box::new(move || {
                let tokens = tokens.clone();
                async move { tokens().await.map_err(|message| ConnectError { code: "SIGN_IN_FAILED".into(), message }) }
                    .boxed_local()
            });
            local.block_on(&rt, run(config, Rc::new(NativePlatform), store, source, rx));
        })
        .expect("spawn the sync thread");
    Client::new(tx)
}
