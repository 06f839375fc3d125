//! Shared by the benchmark binaries: start the release server and log in.
// Each bench binary uses a subset of these helpers.
#![allow(dead_code)]

use futures::{SinkExt, StreamExt};
use kalamdb_client_core::protocol::ws::ServerMessage;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

pub(crate) const ROOT_PASSWORD: &str = "bench-root-password";

/// The server process; killed on drop.
pub(crate) struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub(crate) fn start(dir: &std::path::Path, config: Option<&std::path::Path>) -> Server {
        Server::start_with(dir, config, &[], &[])
    }

    /// [`Server::start`] with extra flags and environment variables.
    pub(crate) fn start_with(
        dir: &std::path::Path,
        config: Option<&std::path::Path>,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Server {
        // BENCH_SERVER runs another build of the server (an A/B comparison in one run).
        let bin = std::env::var("BENCH_SERVER").unwrap_or_else(|_| env!("CARGO_BIN_EXE_kalamdb-server").into());
        let mut cmd = Command::new(bin);
        // BENCH_LOG sets the server's log filter (default: warnings only).
        let log = std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".into());
        cmd.args(["--listen", "127.0.0.1:0", "--log", &log]).arg("--data-dir").arg(dir);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        cmd.args(args).envs(env.iter().copied());
        let mut child =
            cmd.env("KALAMDB_ROOT_PASSWORD", ROOT_PASSWORD).stdout(Stdio::piped()).spawn().expect("start server");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines.next().expect("server exited").expect("read");
            if let Some(addr) = line.strip_prefix("kalamdb-server listening on ") {
                break addr.to_string();
            }
        };
        Server { child, base }
    }

    /// Starts the server with its data in `dir/data` and `toml` as `dir/kalamdb.toml`
    /// (written again each time, so a restart can change it).
    pub(crate) fn with_config(dir: &std::path::Path, toml: &str) -> Server {
        let config = dir.join("kalamdb.toml");
        std::fs::write(&config, toml).expect("write the config");
        Server::start(&dir.join("data"), Some(&config))
    }

    /// Resident memory of the server process in bytes (Linux).
    pub(crate) fn rss_bytes(&self) -> u64 {
        rss_of(self.child.id())
    }

    pub(crate) async fn token(&self, client: &reqwest::Client, user: &str, password: &str) -> String {
        self.try_token(client, user, password).await.expect("login")
    }

    /// An access token, or `None` if the server refuses the sign-in.
    pub(crate) async fn try_token(&self, client: &reqwest::Client, user: &str, password: &str) -> Option<String> {
        let login: serde_json::Value = client
            .post(format!("{}/v1/api/auth/login", self.base))
            .json(&json!({"username": user, "password": password}))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        login["access_token"].as_str().map(str::to_string)
    }

    pub(crate) async fn sql(&self, client: &reqwest::Client, token: &str, sql: &str, params: serde_json::Value) {
        let r = client
            .post(format!("{}/v1/api/sql", self.base))
            .bearer_auth(token)
            .json(&json!({"sql": sql, "params": params}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        assert!(status.is_success(), "{sql}: {status} {body}");
    }
}

/// A numeric setting of a bench from the environment, or its default.
pub(crate) fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs one request's SQL and returns the response body; panics on an error status.
pub(crate) async fn query(server: &Server, client: &reqwest::Client, token: &str, sql: &str) -> serde_json::Value {
    let r = client
        .post(format!("{}/v1/api/sql", server.base))
        .bearer_auth(token)
        .json(&json!({ "sql": sql }))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(status.is_success(), "{sql}: {status} {body}");
    body
}

/// Waits for a job to complete; returns (rows, bytes, seconds the job ran).
pub(crate) async fn wait_for_job(server: &Server, client: &reqwest::Client, token: &str, id: &str) -> (u64, u64, f64) {
    let sql = format!(
        "SELECT status, rows, bytes, CAST(finished_at AS BIGINT) - CAST(started_at AS BIGINT) \
         FROM system.jobs WHERE job_id = '{id}'"
    );
    loop {
        let r = query(server, client, token, &sql).await;
        let row = &r["results"][0]["rows"][0];
        match row[0].as_str() {
            // Timestamps cast to BIGINT are microseconds.
            Some("completed") => {
                return (row[1].as_u64().unwrap(), row[2].as_u64().unwrap(), row[3].as_f64().unwrap() / 1e6);
            }
            // Not more often: each poll is a statement the measured server runs (every 5 ms
            // made up part of what flush_load counted against the flush). The job's own
            // times give its duration.
            Some("queued" | "running") => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("job {id} ended {other:?}: {r}"),
        }
    }
}

/// p50 and p99 of a sample, in microseconds.
pub(crate) fn percentiles(mut v: Vec<std::time::Duration>) -> (u128, u128) {
    v.sort();
    (v[v.len() / 2].as_micros(), v[(v.len() * 99) / 100].as_micros())
}

pub(crate) type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn connect(base: &str, token: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}/v1/ws", base.replacen("http://", "ws://", 1)))
        .await
        .expect("connect");
    send(&mut ws, json!({"type": "auth", "token": token})).await;
    assert!(matches!(recv(&mut ws).await, ServerMessage::AuthOk { .. }));
    ws
}

pub(crate) async fn send(ws: &mut Ws, v: serde_json::Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

pub(crate) async fn recv(ws: &mut Ws) -> ServerMessage {
    loop {
        match tokio::time::timeout(Duration::from_secs(60), ws.next()).await.expect("frame in time") {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("socket ended: {other:?}"),
        }
    }
}

/// Subscribes and waits for the end of the initial load.
pub(crate) async fn subscribe(ws: &mut Ws, id: &str, sql: &str) {
    send(ws, json!({"type": "subscribe", "id": id, "sql": sql})).await;
    loop {
        match recv(ws).await {
            ServerMessage::Batch { last: true, .. } => return,
            ServerMessage::Error { message, .. } => panic!("{message}"),
            _ => {}
        }
    }
}

/// Resident memory of process `pid` in bytes (Linux).
pub(crate) fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Inserts rows `ids` into `bench.items (id, name, qty, price)`, `chunk` rows per INSERT.
pub(crate) async fn insert_items(
    server: &Server,
    client: &reqwest::Client,
    token: &str,
    ids: std::ops::Range<usize>,
    chunk: usize,
) {
    let mut start = ids.start;
    while start < ids.end {
        let end = (start + chunk).min(ids.end);
        let values: Vec<String> =
            (start..end).map(|id| format!("({id}, 'item-{id}', {}, {}.25)", id % 1000, id % 97)).collect();
        query(server, client, token, &format!("INSERT INTO bench.items VALUES {}", values.join(","))).await;
        start = end;
    }
}

/// A CA and a certificate for 127.0.0.1 signed by it, as PEM files in `dir`: `(ca, cert, key)`.
pub(crate) fn tls_files(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&key, &ca, &ca_key).unwrap();
    let [ca_file, cert_file, key_file] = ["ca.pem", "server.pem", "server.key"].map(|f| dir.join(f));
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    (ca_file, cert_file, key_file)
}
