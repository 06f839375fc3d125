//! HTTP latency benchmark: single-row INSERT, primary-key SELECT and a filtered SELECT
//! (planned by DataFusion) over loopback at concurrency 1 and 16, reporting p50/p99 latency
//! and throughput.
//!
//! Run: `cargo bench -p kalamdb-server --bench http` (builds the release server).
//! Options via environment: `BENCH_REQUESTS` (per concurrency level, default 20000),
//! `BENCH_TLS=1` (HTTPS: the server gets a certificate of a CA made for the run).

use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

mod common;

use common::Server;

struct Stats {
    p50: u128,
    p99: u128,
    per_sec: f64,
}

/// Runs `total` requests split across `concurrency` tasks; `make_body(i)` builds request i.
async fn run(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    concurrency: usize,
    total: usize,
    make_body: Arc<dyn Fn(usize) -> serde_json::Value + Send + Sync>,
) -> Stats {
    let started = Instant::now();
    let mut tasks = vec![];
    for t in 0..concurrency {
        let (client, url, token, make_body) = (client.clone(), url.to_string(), token.to_string(), make_body.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(total / concurrency + 1);
            let mut i = t;
            while i < total {
                let body = make_body(i);
                let t0 = Instant::now();
                let resp = client.post(&url).bearer_auth(&token).json(&body).send().await.expect("send");
                let status = resp.status();
                let _ = resp.bytes().await;
                assert!(status.is_success(), "request failed: {status}");
                lat.push(t0.elapsed());
                i += concurrency;
            }
            lat
        }));
    }
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    let per_sec = all.len() as f64 / elapsed.as_secs_f64();
    let (p50, p99) = common::percentiles(all);
    Stats { p50, p99, per_sec }
}

fn main() {
    let total = common::env_or("BENCH_REQUESTS", 20_000);
    let dir = tempfile::tempdir().unwrap();
    let tls = std::env::var("BENCH_TLS").is_ok_and(|v| v == "1").then(|| common::tls_files(dir.path()));
    let server = match &tls {
        Some((_, cert, key)) => {
            let args = ["--tls-cert".into(), cert.display().to_string(), "--tls-key".into(), key.display().to_string()];
            Server::start_with(&dir.path().join("data"), None, &args, &[])
        }
        None => Server::start(dir.path(), None),
    };
    let base = server.base.clone();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let mut client = reqwest::Client::builder().pool_max_idle_per_host(64);
        if let Some((ca, _, _)) = &tls {
            println!("over HTTPS");
            client = client.add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap());
        }
        let client = client.build().unwrap();
        let token = server.token(&client, "root", common::ROOT_PASSWORD).await;
        let url = format!("{base}/v1/api/sql");
        let setup = "CREATE NAMESPACE bench; CREATE USER TABLE bench.items (id BIGINT PRIMARY KEY, name TEXT, qty INT)";
        server.sql(&client, &token, setup, json!([])).await;

        println!("requests per case: {total}");
        println!("{:<22} {:>5} {:>10} {:>10} {:>12}", "case", "conc", "p50 (µs)", "p99 (µs)", "req/s");
        let mut next_id = 0usize;
        for concurrency in [1usize, 16] {
            let offset = next_id;
            let insert = Arc::new(move |i: usize| {
                json!({"sql": "INSERT INTO bench.items (id, name, qty) VALUES ($1, $2, $3)",
                       "params": [offset + i, format!("item-{i}"), i % 100]})
            });
            let s = run(&client, &url, &token, concurrency, total, insert).await;
            report("INSERT single row", concurrency, &s);
            next_id += total;
            let select = Arc::new(move |i: usize| {
                json!({"sql": "SELECT id, name, qty FROM bench.items WHERE id = $1", "params": [(i * 7919) % (offset + total)]})
            });
            let s = run(&client, &url, &token, concurrency, total, select).await;
            report("SELECT by primary key", concurrency, &s);
        }
        // Planned and executed by DataFusion: a filter over a partition of 1,000 rows.
        let setup = "CREATE USER TABLE bench.small (id BIGINT PRIMARY KEY, name TEXT, qty INT)";
        server.sql(&client, &token, setup, json!([])).await;
        let rows: Vec<String> = (0..1000).map(|i| format!("({i}, 'item-{i}', {})", i % 100)).collect();
        server.sql(&client, &token, &format!("INSERT INTO bench.small VALUES {}", rows.join(", ")), json!([])).await;
        for concurrency in [1usize, 16] {
            let filter = Arc::new(move |i: usize| {
                json!({"sql": "SELECT id, name FROM bench.small WHERE qty = $1 ORDER BY id", "params": [i % 100]})
            });
            let s = run(&client, &url, &token, concurrency, total / 4, filter).await;
            report("SELECT with filter", concurrency, &s);
        }
    });
}

fn report(case: &str, concurrency: usize, s: &Stats) {
    println!("{:<22} {:>5} {:>10} {:>10} {:>12.0}", case, concurrency, s.p50, s.p99, s.per_sec);
}
