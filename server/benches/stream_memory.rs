//! Server memory while a large partition streams to a client (the engine-seams bar: RSS stays
//! under idle RSS + 64 MiB):
//! - the first load of a subscription over 2,000,000 rows, all hot, then all cold (one flush);
//! - `SELECT count(*), sum(qty)` over the same cold rows (a full scan through DataFusion).
//!
//! Each phase runs on a freshly started server over the same data; idle RSS is taken after the
//! partition's key index is built (a point read does that), so what is measured is what the
//! stream itself holds. RSS is sampled every 10 ms while each phase runs; the figure is the
//! peak minus idle. The hot load runs twice: the second shows what the first left in
//! RocksDB's block cache.
//!
//! Run: `cargo bench -p kalamdb-server --bench stream_memory`.
//! Environment: `BENCH_ROWS` (default 2,000,000).

mod common;

use common::{Server, query};
use kalamdb_client_core::protocol::ws::ServerMessage;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Samples a process's RSS until dropped, keeping the peak.
struct RssPeak {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssPeak {
    fn start(pid: u32) -> RssPeak {
        let (peak, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let (p, s) = (peak.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(common::rss_of(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        RssPeak { peak, stop, thread: Some(thread) }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Loads the whole table through a subscription; returns (rows, seconds).
async fn first_load(server: &Server, token: &str) -> (usize, f64) {
    let mut ws = common::connect(&server.base, token).await;
    let t0 = Instant::now();
    common::send(
        &mut ws,
        json!({"type": "subscribe", "id": "all", "sql": "SELECT * FROM bench.items", "batch_size": 10000}),
    )
    .await;
    let mut rows = 0;
    loop {
        match common::recv(&mut ws).await {
            ServerMessage::Batch { rows: r, last, .. } => {
                rows += r.len();
                if last {
                    break;
                }
            }
            ServerMessage::Error { message, .. } => panic!("{message}"),
            _ => {}
        }
    }
    (rows, t0.elapsed().as_secs_f64())
}

const CONFIG: &str = "[auth]\nbcrypt_cost = 4\n[limits]\nmax_body_bytes = 16777216\n";

fn phase(name: &str, idle: u64, peak: u64, rows: usize, secs: f64) {
    println!(
        "{name:<44} idle {:>7.1} MiB  peak {:>7.1} MiB  (+{:>6.1} MiB)  {rows} rows in {secs:.2} s = {:.0} rows/s",
        mib(idle),
        mib(peak),
        mib(peak.saturating_sub(idle)),
        rows as f64 / secs
    )
}

/// Restarts the server on the same data (so that memory freed by an earlier phase does not
/// hide what the next one takes), builds the key index with a point read, and waits.
async fn fresh_server(dir: &std::path::Path, client: &reqwest::Client) -> (Server, String) {
    let server = Server::with_config(dir, CONFIG);
    let token = server.token(client, "root", common::ROOT_PASSWORD).await;
    query(&server, client, &token, "SELECT * FROM bench.items WHERE id = 5").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    (server, token)
}

fn main() {
    let total = common::env_or("BENCH_ROWS", 2_000_000);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let server = Server::with_config(dir.path(), CONFIG);
        let token = server.token(&client, "root", common::ROOT_PASSWORD).await;
        query(
            &server,
            &client,
            &token,
            "CREATE NAMESPACE bench; CREATE USER TABLE bench.items (id BIGINT PRIMARY KEY, name TEXT, qty INT, \
             price DOUBLE) WITH (flush_policy = 'rows:100000000')",
        )
        .await;
        let started = Instant::now();
        common::insert_items(&server, &client, &token, 0..total, 5_000).await;
        println!("inserted {total} rows in {:.1} s", started.elapsed().as_secs_f64());
        drop(server);

        let (server, token) = fresh_server(dir.path(), &client).await;
        let idle = server.rss_bytes();
        let sampler = RssPeak::start(server.child.id());
        let (rows, secs) = first_load(&server, &token).await;
        phase("first load, all rows hot", idle, sampler.finish(), rows, secs);
        assert_eq!(rows, total);
        // Again on the same server: what stays is RocksDB's block cache, filled by the first.
        let idle = server.rss_bytes();
        let sampler = RssPeak::start(server.child.id());
        let (rows, secs) = first_load(&server, &token).await;
        phase("first load, all rows hot, again", idle, sampler.finish(), rows, secs);
        assert_eq!(rows, total);
        let r = query(&server, &client, &token, "FLUSH TABLE bench.items").await;
        let job = r["results"][0]["rows"][0][0].as_str().unwrap().to_string();
        let (_, _, flush_secs) = common::wait_for_job(&server, &client, &token, &job).await;
        println!("flush of {total} rows: {flush_secs:.2} s");
        drop(server);

        let (server, token) = fresh_server(dir.path(), &client).await;
        let idle = server.rss_bytes();
        let sampler = RssPeak::start(server.child.id());
        let (rows, secs) = first_load(&server, &token).await;
        phase("first load, all rows cold", idle, sampler.finish(), rows, secs);
        assert_eq!(rows, total);
        drop(server);

        let (server, token) = fresh_server(dir.path(), &client).await;
        let idle = server.rss_bytes();
        let sampler = RssPeak::start(server.child.id());
        let t0 = Instant::now();
        let r = query(&server, &client, &token, "SELECT count(*), sum(qty) FROM bench.items").await;
        let secs = t0.elapsed().as_secs_f64();
        phase("SELECT count(*), sum(qty), all rows cold", idle, sampler.finish(), total, secs);
        assert_eq!(r["results"][0]["rows"][0][0], json!(total), "{r}");
    });
}
