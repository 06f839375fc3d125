//! Starting and stopping the server: bind, serve, drain on shutdown.

use crate::api::serve::ConnectionLimits;
use crate::api::{self, AppState, Metrics};
use crate::config::Config;
use crate::database::Database;
use crate::error::{KalamError, Result};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Opens the database, binds `config.server.listen`, calls `on_listening` with the URL it
/// serves (`http://` or, with `server.tls_*`, `https://`, and the bound port, useful with
/// port 0), and serves until `shutdown` completes. In-flight requests
/// finish before the database is closed.
pub async fn run(
    config: Config,
    on_listening: impl FnOnce(&str),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    if config.cluster.enabled() {
        // A snapshot received from the leader before a restart replaces the database first.
        crate::cluster::install_pending_snapshot(&config.server.data_dir, config.cluster.placement()?)?;
        // With spread storage, the data of groups this node has left is freed.
        crate::cluster::free_left_groups(&config).await?;
    }
    // Read before anything starts, so a wrong file is one clear error at start.
    let tls = match (&config.server.tls_cert, &config.server.tls_key) {
        (Some(cert), Some(key)) => Some(crate::tls::client_port(cert, key)?),
        _ => None,
    };
    let db = Database::open(config).await?;
    // Before any request: finish or undo what a crash interrupted, then start the policies.
    crate::recovery::recover(&db).await?;
    if db.config.cluster.enabled() {
        // Parts this node wrote for other nodes' backups before it stopped: never fetched now.
        crate::backup::gather::remove_all_parts(&db);
    }
    // A cluster node joins before it serves clients (nothing extra listens otherwise).
    let cluster = match db.config.cluster.enabled() {
        true => Some(crate::cluster::Cluster::start(&db).await?),
        false => None,
    };
    crate::flush::policy::start(Arc::downgrade(&db));
    crate::cleanup::policy::start(Arc::downgrade(&db));
    let listener = TcpListener::bind(db.config.server.listen)
        .await
        .map_err(|e| KalamError::internal(format!("cannot listen on {}: {e}", db.config.server.listen)))?;
    let addr = listener.local_addr().map_err(KalamError::internal)?;
    if let Some(cluster) = &cluster {
        cluster.serving_clients_on(addr);
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    on_listening(&format!("{scheme}://{addr}"));
    let app = api::router(AppState { db: db.clone(), metrics: Arc::new(Metrics::default()) });
    let limits = ConnectionLimits {
        max_connections: db.config.server.max_connections,
        header_read_timeout: Duration::from_secs(db.config.server.header_read_timeout_secs),
    };
    api::serve::serve(listener, app, limits, tls, shutdown).await;
    if let Some(cluster) = cluster {
        cluster.shutdown().await;
    }
    // No thread may still be using RocksDB when the process exits (its static state is torn
    // down then): let background work and the query threads finish, within bounds.
    if !crate::budget::stop_background(Duration::from_secs(30)).await {
        tracing::warn!("background work still running after 30 s; stopping anyway");
    }
    let stopping = db.clone();
    let _ = tokio::task::spawn_blocking(move || stopping.runtime.shutdown(Duration::from_secs(10))).await;
    tracing::info!("server stopped");
    Ok(())
}

/// The runtime that serves requests (`main` runs [`run`] on it): large stacks, because query
/// planning recurses over expression trees (statements are also capped in nesting and
/// complexity, see `sql::dialect`), and threads that the kernel lets preempt the server's
/// background and query threads as soon as they wake.
pub fn request_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 * 1024 * 1024)
        .max_blocking_threads(64)
        .on_thread_start(crate::budget::request_thread_started)
        .build()
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
