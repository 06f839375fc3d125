//! The HTTP server loop of the client port and the cluster port, on hyper directly because
//! `axum::serve` bounds neither the number of connections nor the time a client may take to
//! send a request's headers: a client opening connections without end, or trickling its
//! headers a byte at a time, would hold sockets (and file descriptors) for ever.
//!
//! - At most `max_connections` connections at once (a WebSocket counts until it closes): one
//!   more is closed as it is accepted.
//! - A request's headers must arrive within `header_read_timeout`, or the connection closes
//!   (WebSockets, once upgraded, have their own heartbeat and idle timeout).
//! - On shutdown it stops accepting and lets requests in flight finish (up to 30 s);
//!   WebSockets are not waited for (as before).
//! - With a TLS acceptor (the cluster port with `cluster.tls_*`), the handshake must also
//!   finish within `header_read_timeout`.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// A connection's place among the `max_connections`, in its requests' extensions: a
/// WebSocket keeps it after the upgrade, for as long as it is open.
#[derive(Clone)]
pub(crate) struct ConnectionSlot {
    _permit: Arc<tokio::sync::OwnedSemaphorePermit>,
}

/// How many connections a port takes at once, and how fast they must send headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` completes; over TLS with `tls`.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // Held by each connection's HTTP serving (not by a WebSocket after its upgrade, which
    // shutdown does not wait for): all back means no request is in flight.
    let serving = Arc::new(Semaphore::new(limits.max_connections));
    // Tells every connection to finish its request in flight and close.
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let mut last_refusal_logged: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or the peer left before the accept: wait a
                    // little rather than spin.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if last_refusal_logged.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
                tracing::warn!(
                    %peer,
                    max = limits.max_connections,
                    "refusing connections over the limit (server.max_connections)"
                );
                last_refusal_logged = Some(Instant::now());
            }
            continue;
        };
        // Small frames (sync events, short responses) must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let slot = ConnectionSlot { _permit: Arc::new(permit) };
        let Ok(serving) = serving.clone().try_acquire_owned() else { continue };
        let held = slot.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(held.clone());
            let mut router = router.clone();
            tower_service::Service::call(&mut router, request)
        });
        let stop = stop.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let (_slot, _serving) = (slot, serving);
            let timeout = limits.header_read_timeout;
            let ended = match tls {
                None => serve_connection(stream, service, timeout, stop).await,
                Some(acceptor) => match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => serve_connection(stream, service, timeout, stop).await,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake not finished in time");
                        return;
                    }
                },
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(Duration::from_secs(30), serving.acquire_many(all)).await.is_err() {
        tracing::warn!("requests still running 30 s after shutdown began; stopping anyway");
    }
}

/// Serves the requests of one connection (plain or TLS) until it closes, or until `stop`
/// asks it to finish the request in flight.
async fn serve_connection<I, S>(
    io: I,
    service: S,
    header_read_timeout: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> hyper::Result<()>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = axum::body::Body>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        ended = connection.as_mut() => ended,
        _ = stop.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    }
}
