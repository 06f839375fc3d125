//! HTTP latency benchmark: single-row INSERT and primary-key SELECT over loopback at
//! concurrency 1 and 16, reporting p50/p99 latency and throughput.
//!
//! Run: `cargo bench -p kalamdb-server --bench http` (builds the release server).
//! Options via environment: `BENCH_REQUESTS` (per concurrency level, default 20000).

use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROOT_PASSWORD: &str = "bench-root-password";

struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(dir: &std::path::Path) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kalamdb-server"))
        .args(["--listen", "127.0.0.1:0", "--log", "warn"])
        .arg("--data-dir")
        .arg(dir)
        .env("KALAMDB_ROOT_PASSWORD", ROOT_PASSWORD)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start server");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines.next().expect("server exited").expect("read");
        if let Some(addr) = line.strip_prefix("kalamdb-server listening on ") {
            break addr.to_string();
        }
    };
    (Server(child), base)
}

struct Stats {
    p50: Duration,
    p99: Duration,
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
    all.sort();
    Stats {
        p50: all[all.len() / 2],
        p99: all[(all.len() * 99) / 100],
        per_sec: all.len() as f64 / elapsed.as_secs_f64(),
    }
}

fn main() {
    let total: usize = std::env::var("BENCH_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let (_server, base) = start_server(dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
        let login: serde_json::Value = client
            .post(format!("{base}/v1/api/auth/login"))
            .json(&json!({"username": "root", "password": ROOT_PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["access_token"].as_str().unwrap().to_string();
        let url = format!("{base}/v1/api/sql");
        let setup = json!({"sql": "CREATE NAMESPACE bench; CREATE USER TABLE bench.items (id BIGINT PRIMARY KEY, name TEXT, qty INT)"});
        let r = client.post(&url).bearer_auth(&token).json(&setup).send().await.unwrap();
        assert!(r.status().is_success());

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
    });
}

fn report(case: &str, concurrency: usize, s: &Stats) {
    println!("{:<22} {:>5} {:>10} {:>10} {:>12.0}", case, concurrency, s.p50.as_micros(), s.p99.as_micros(), s.per_sec);
}
