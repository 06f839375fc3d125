//! INSERT latency while the cold tier works: does a user's single-row write wait for another
//! user's flush, or for a scan of Parquet files?
//!
//! Single-row INSERTs at concurrency 1, one after another, by one user (into a table that
//! never flushes by itself), in phases:
//! 1. `quiet`: nothing else runs (`BENCH_SECONDS`, default 10);
//! 2. `flush`: another user's 200,000 hot rows (`BENCH_FLUSH_ROWS`) are flushed with FLUSH
//!    TABLE; latencies are counted while the flush job runs, `BENCH_CYCLES` (3) times;
//! 3. `flush + cold scan`: the same while that user also runs an aggregate over all their
//!    rows (more of them cold with each cycle) in a loop;
//! 4. `default policy`: INSERTs into a table with the default flush policy
//!    (`rows:10000,interval:300`) for `BENCH_POLICY_SECONDS` (60), so that policy flushes of
//!    the written partition run during the phase.
//!
//! Run: `cargo bench -p kalamdb-server --bench flush_load`. Figures: BENCHMARKS.md.

mod common;

use common::{Server, env_or, query};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Single-row INSERTs into `table` until `stop`, starting at id `first`; their latencies.
async fn inserts(base: String, token: String, table: &'static str, first: u64, stop: Arc<AtomicBool>) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let url = format!("{base}/v1/api/sql");
    let sql = format!("INSERT INTO {table} (id, name, qty) VALUES ($1, $2, $3)");
    let mut latencies = Vec::new();
    let mut id = first;
    while !stop.load(Ordering::Relaxed) {
        let body = json!({"sql": sql, "params": [id, format!("item-{id}"), id % 100]});
        let t0 = Instant::now();
        let r = client.post(&url).bearer_auth(&token).json(&body).send().await.expect("send");
        let status = r.status();
        let _ = r.bytes().await;
        assert!(status.is_success(), "INSERT failed: {status}");
        latencies.push(t0.elapsed());
        id += 1;
    }
    latencies
}

fn report(phase: &str, mut v: Vec<Duration>, extra: &str) {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    println!(
        "{phase:<18} {:>8} {:>9.0} {:>9.0} {:>10.0} {:>10.0}  {extra}",
        v.len(),
        at(0.5),
        at(0.99),
        at(0.999),
        at(1.0)
    );
}

fn main() {
    let seconds = env_or("BENCH_SECONDS", 10) as u64;
    let flush_rows = env_or("BENCH_FLUSH_ROWS", 200_000);
    let cycles = env_or("BENCH_CYCLES", 3);
    let policy_seconds = env_or("BENCH_POLICY_SECONDS", 60) as u64;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::with_config(dir.path(), "[auth]\nbcrypt_cost = 4\n[limits]\nmax_body_bytes = 16777216\n");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let root = server.token(&client, "root", common::ROOT_PASSWORD).await;
        query(
            &server,
            &client,
            &root,
            "CREATE NAMESPACE bench; \
             CREATE USER TABLE bench.writes (id BIGINT PRIMARY KEY, name TEXT, qty INT) \
               WITH (flush_policy = 'rows:100000000'); \
             CREATE USER TABLE bench.big (id BIGINT PRIMARY KEY, name TEXT, qty INT) \
               WITH (flush_policy = 'rows:100000000'); \
             CREATE USER TABLE bench.policy (id BIGINT PRIMARY KEY, name TEXT, qty INT); \
             CREATE USER 'other' WITH PASSWORD 'other-password' ROLE user",
        )
        .await;
        let other = server.token(&client, "other", "other-password").await;
        println!(
            "{:<18} {:>8} {:>9} {:>9} {:>10} {:>10}",
            "phase", "inserts", "p50 µs", "p99 µs", "p99.9 µs", "max µs"
        );

        let stop = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn(inserts(server.base.clone(), root.clone(), "bench.writes", 0, stop.clone()));
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        report("quiet", writer.await.unwrap(), "");

        for (phase, scan) in [("flush", false), ("flush + cold scan", true)] {
            let mut during = Vec::new();
            let mut flush_secs = Vec::new();
            let mut scans = 0usize;
            for cycle in 0..cycles {
                // The other user's rows, hot, in statements of 5,000 rows.
                let base = (cycle + if scan { cycles } else { 0 }) * flush_rows;
                for chunk in (0..flush_rows).collect::<Vec<_>>().chunks(5_000) {
                    let values: Vec<String> =
                        chunk.iter().map(|i| format!("({}, 'row-{i}', {})", base + i, i % 100)).collect();
                    query(&server, &client, &other, &format!("INSERT INTO bench.big VALUES {}", values.join(", ")))
                        .await;
                }
                let stop = Arc::new(AtomicBool::new(false));
                let first = 1_000_000_000 + (base as u64) * 100;
                let writer =
                    tokio::spawn(inserts(server.base.clone(), root.clone(), "bench.writes", first, stop.clone()));
                let scanner = {
                    let (stop, base, other) = (stop.clone(), server.base.clone(), other.clone());
                    tokio::spawn(async move {
                        let client = reqwest::Client::new();
                        let mut n = 0usize;
                        while scan && !stop.load(Ordering::Relaxed) {
                            let r = client
                                .post(format!("{base}/v1/api/sql"))
                                .bearer_auth(&other)
                                .json(&json!({"sql": "SELECT count(*), sum(qty), max(name) FROM bench.big"}))
                                .send()
                                .await
                                .expect("send");
                            assert!(r.status().is_success(), "scan failed: {}", r.status());
                            let _ = r.bytes().await;
                            n += 1;
                        }
                        n
                    })
                };
                let r = query(&server, &client, &root, "FLUSH TABLE bench.big").await;
                let id = r["results"][0]["rows"][0][0].as_str().unwrap().to_string();
                let (_, _, secs) = common::wait_for_job(&server, &client, &root, &id).await;
                stop.store(true, Ordering::Relaxed);
                during.extend(writer.await.unwrap());
                scans += scanner.await.unwrap();
                flush_secs.push(format!("{secs:.1}"));
            }
            report(
                phase,
                during,
                &format!("{cycles} flushes of {flush_rows} rows ({} s), {scans} cold scans", flush_secs.join(", ")),
            );
        }

        let stop = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn(inserts(server.base.clone(), root.clone(), "bench.policy", 0, stop.clone()));
        tokio::time::sleep(Duration::from_secs(policy_seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let latencies = writer.await.unwrap();
        let flushes = query(
            &server,
            &client,
            &root,
            "SELECT count(*) FROM system.jobs WHERE job_type = 'flush' AND table_name = 'policy' \
             AND status = 'completed'",
        )
        .await;
        let flushes = flushes["results"][0]["rows"][0][0].as_u64().unwrap_or(0);
        report("default policy", latencies, &format!("{policy_seconds} s, {flushes} policy flushes"));
    });
}
