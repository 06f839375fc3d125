//! The native client-core sync engine against the release server:
//! - catch-up from cursor 0 of 100,000 rows into a memory-store replica (rows/s);
//! - local live-query latency: a local write until the live query's callback, on tables of
//!   1,000 and 100,000 rows;
//! - a remote write (HTTP INSERT by another device) until the local live query updates.
//!
//! Run: `cargo bench -p kalamdb-server --bench client`.

mod common;

use common::{ROOT_PASSWORD, Server};
use futures::FutureExt;
use kalamdb_client_core::store::MemoryStore;
use kalamdb_client_core::sync::{Client, ClientConfig, start_native};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn client(server: &Server, user: &str, password: &str) -> Client {
    let (base, user, password) = (server.base.clone(), user.to_string(), password.to_string());
    let config = ClientConfig::new(format!("{}/v1/ws", base.replacen("http://", "ws://", 1)));
    start_native(config, MemoryStore::new(), move || {
        let (base, user, password) = (base.clone(), user.clone(), password.clone());
        async move {
            let body: Value = reqwest::Client::new()
                .post(format!("{base}/v1/api/auth/login"))
                .json(&json!({"username": user, "password": password}))
                .send()
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            body["access_token"].as_str().map(str::to_string).ok_or_else(|| body.to_string())
        }
        .boxed()
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(what: &str, mut samples: Vec<f64>) {
    samples.sort_by(f64::total_cmp);
    println!(
        "{what}: p50 {:.0} µs, p99 {:.0} µs ({} samples)",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.len()
    );
}

async fn fill(server: &Server, http: &reqwest::Client, token: &str, table: &str, rows: usize) {
    for chunk in 0..rows.div_ceil(1000) {
        let values: Vec<String> = (chunk * 1000..((chunk + 1) * 1000).min(rows))
            .map(|i| format!("('k{i:07}', 'item number {i}', {i}, {})", i % 2 == 0))
            .collect();
        server
            .sql(
                http,
                token,
                &format!("INSERT INTO {table} (id, title, n, done) VALUES {}", values.join(",")),
                json!([]),
            )
            .await;
    }
}

/// Local write → live callback, `n` times.
async fn local_write_latency(c: &Client, table: &str, n: usize) -> Vec<f64> {
    let mut live = c
        .live(&format!("SELECT id, title FROM {table} WHERE done = false ORDER BY n DESC LIMIT 10"), vec![])
        .await
        .unwrap();
    live.next().await.unwrap();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let row = json!({"id": format!("local{i:05}"), "title": "new", "n": 10_000_000 + i, "done": false});
        let t = Instant::now();
        c.insert(table, row.as_object().unwrap().clone()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), live.next()).await.expect("live update").unwrap();
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    c.settled().await.unwrap();
    samples
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path(), None);
        let http = reqwest::Client::new();
        let root = server.token(&http, "root", ROOT_PASSWORD).await;
        server
            .sql(
                &http,
                &root,
                "CREATE NAMESPACE bench; \
                 CREATE USER TABLE bench.big (id TEXT PRIMARY KEY, title TEXT, n BIGINT, done BOOLEAN); \
                 CREATE USER TABLE bench.small (id TEXT PRIMARY KEY, title TEXT, n BIGINT, done BOOLEAN); \
                 CREATE USER alice WITH PASSWORD 'alice-password'",
                json!([]),
            )
            .await;
        let alice = server.token(&http, "alice", "alice-password").await;
        fill(&server, &http, &alice, "bench.big", 100_000).await;
        fill(&server, &http, &alice, "bench.small", 1_000).await;

        let mut rates = Vec::new();
        for _ in 0..3 {
            let c = client(&server, "alice", "alice-password");
            let t = Instant::now();
            c.sync("big", "SELECT * FROM bench.big").await.unwrap();
            c.settled().await.unwrap();
            let secs = t.elapsed().as_secs_f64();
            let rows = c.query("SELECT id FROM bench.big", vec![]).await.unwrap().rows.len();
            assert_eq!(rows, 100_000);
            rates.push(rows as f64 / secs);
            c.close().await;
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "catch-up from cursor 0 into a native memory replica: {:.0} rows/s (median of 3; min {:.0}, max {:.0})",
            rates[1], rates[0], rates[2]
        );

        let c = client(&server, "alice", "alice-password");
        c.sync("small", "SELECT * FROM bench.small").await.unwrap();
        c.sync("big", "SELECT * FROM bench.big").await.unwrap();
        c.settled().await.unwrap();
        report("local write -> live query update, 1,000-row table", local_write_latency(&c, "bench.small", 300).await);
        report("local write -> live query update, 100,000-row table", local_write_latency(&c, "bench.big", 30).await);

        let mut live = c.live("SELECT id FROM bench.small WHERE n < 0", vec![]).await.unwrap();
        live.next().await.unwrap();
        let mut samples = Vec::new();
        for i in 0..300 {
            let t = Instant::now();
            server
                .sql(
                    &http,
                    &alice,
                    "INSERT INTO bench.small (id, title, n, done) VALUES ($1, 'remote', -1, true)",
                    json!([format!("remote{i}")]),
                )
                .await;
            tokio::time::timeout(Duration::from_secs(10), live.next()).await.expect("remote change").unwrap();
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
        report("remote HTTP INSERT -> local live query update (1,000-row table, incl. the ~130 µs INSERT)", samples);
        c.close().await;
    });
}
