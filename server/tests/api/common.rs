//! Test harness: starts the real `kalamdb-server` binary on an ephemeral loopback port with
//! a temporary data directory, and talks HTTP to it.

use kalamdb_client_core::protocol::ws::{ChangeOp, ServerMessage};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub(crate) const ROOT_PASSWORD: &str = "root-test-password";

pub(crate) struct TestServer {
    child: Option<Child>,
    pub base: String,
    data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub client: reqwest::Client,
    extra_args: Vec<String>,
    /// Extra environment variables of the server process (e.g. `FAILPOINTS`).
    env: Vec<(String, String)>,
}

/// Credentials for a request.
#[derive(Clone, Debug)]
pub(crate) enum Auth {
    Basic(String, String),
    Bearer(String),
    None,
}

impl Auth {
    pub(crate) fn root() -> Auth {
        Auth::Basic("root".into(), ROOT_PASSWORD.into())
    }
    pub(crate) fn basic(user: &str, pw: &str) -> Auth {
        Auth::Basic(user.into(), pw.into())
    }
}

/// A response: HTTP status and JSON body.
#[derive(Debug)]
pub(crate) struct Resp {
    pub status: StatusCode,
    pub body: Value,
}

impl Resp {
    /// The error code of an error response.
    pub(crate) fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    /// Rows of result `i`.
    pub(crate) fn rows(&self, i: usize) -> &Vec<Value> {
        self.body["results"][i]["rows"].as_array().unwrap_or_else(|| panic!("no rows in {}", self.body))
    }
    pub(crate) fn row_count(&self, i: usize) -> u64 {
        self.body["results"][i]["row_count"].as_u64().unwrap_or_else(|| panic!("no row_count in {}", self.body))
    }
}

fn spawn(data_dir: &Path, extra: &[String], env: &[(String, String)]) -> (Child, String) {
    spawn_at(data_dir, extra, env, "127.0.0.1:0")
}

fn spawn_at(data_dir: &Path, extra: &[String], env: &[(String, String)], listen: &str) -> (Child, String) {
    // KALAMDB_TEST_SERVER_LOG overrides the servers' log filter while chasing a failure.
    let log = std::env::var("KALAMDB_TEST_SERVER_LOG").unwrap_or_else(|_| "warn,openraft=off".into());
    let mut child = Command::new(env!("CARGO_BIN_EXE_kalamdb-server"))
        .args(["--listen", listen, "--bcrypt-cost", "4", "--log", &log])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("KALAMDB_ROOT_PASSWORD", ROOT_PASSWORD)
        .env("KALAMDB_JWT_SECRET", "test-secret-test-secret-test-secret-0123")
        .env_remove("KALAMDB_CONFIG")
        .env_remove("FAILPOINTS")
        .env_remove("KALAMDB_HOUR_MS")
        .env_remove("KALAMDB_CLEANUP_INTERVAL_SECS")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start kalamdb-server");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("kalamdb-server listening on ") {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let base = rx.recv_timeout(Duration::from_secs(60)).expect("server did not start within 60 s");
    (child, base)
}

impl TestServer {
    pub(crate) async fn start() -> TestServer {
        Self::start_with(&[]).await
    }

    /// Starts with a config file holding `toml`.
    pub(crate) async fn start_with_config(toml: &str) -> TestServer {
        let tmp = tempfile::tempdir().expect("temp dir");
        let path = tmp.path().join("kalamdb.toml");
        std::fs::write(&path, toml).expect("write config");
        let mut s = Self::start_in(tmp, &["--config", path.to_str().unwrap()], &[]).await;
        s.extra_args = vec!["--config".into(), path.to_str().unwrap().into()];
        s
    }

    /// Starts with extra command-line flags.
    pub(crate) async fn start_with(extra: &[&str]) -> TestServer {
        Self::start_in(tempfile::tempdir().expect("temp dir"), extra, &[]).await
    }

    /// Starts with extra environment variables (kept for restarts until [`TestServer::set_env`]).
    pub(crate) async fn start_with_env(env: &[(&str, &str)]) -> TestServer {
        Self::start_in(tempfile::tempdir().expect("temp dir"), &[], env).await
    }

    /// Starts with extra flags and environment variables (both kept for restarts).
    pub(crate) async fn start_with_args_env(extra: &[&str], env: &[(&str, &str)]) -> TestServer {
        Self::start_in(tempfile::tempdir().expect("temp dir"), extra, env).await
    }

    /// Replaces the extra command-line flags used by the next start.
    pub(crate) fn set_args(&mut self, extra: &[&str]) {
        self.extra_args = extra.iter().map(|s| s.to_string()).collect();
    }

    /// Replaces the environment variables used by the next start.
    pub(crate) fn set_env(&mut self, env: &[(&str, &str)]) {
        self.env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    }

    async fn start_in(tmp: tempfile::TempDir, extra: &[&str], env: &[(&str, &str)]) -> TestServer {
        let data_dir = tmp.path().join("data");
        let extra_args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let (child, base) = spawn(&data_dir, &extra_args, &env);
        TestServer {
            child: Some(child),
            base,
            data_dir,
            _tmp: Some(tmp),
            client: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap(),
            extra_args,
            env,
        }
    }

    /// Stops the process with SIGKILL (no graceful shutdown).
    pub(crate) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops gracefully (SIGTERM) and waits for exit.
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_sigterm(c.id());
            for _ in 0..200 {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same data directory (new port).
    pub(crate) fn restart(&mut self) {
        self.stop();
        let (child, base) = spawn(&self.data_dir, &self.extra_args, &self.env);
        self.child = Some(child);
        self.base = base;
        self.reset_client();
    }

    /// Starts again on the same port (the previous process must be gone), so clients
    /// configured with the old address reconnect to the new process.
    pub(crate) fn start_again_same_port(&mut self) {
        assert!(self.child.is_none(), "server still running");
        let listen = self.base.trim_start_matches("http://").to_string();
        let (child, base) = spawn_at(&self.data_dir, &self.extra_args, &self.env, &listen);
        self.child = Some(child);
        self.base = base;
        self.reset_client();
    }

    /// `ws://` address of the sync endpoint.
    pub(crate) fn ws_url(&self) -> String {
        format!("{}/v1/ws", self.base.replacen("http://", "ws://", 1))
    }

    /// Starts again after a `kill9`.
    pub(crate) fn start_again(&mut self) {
        assert!(self.child.is_none(), "server still running");
        let (child, base) = spawn(&self.data_dir, &self.extra_args, &self.env);
        self.child = Some(child);
        self.base = base;
        self.reset_client();
    }

    /// Drops pooled keep-alive connections: they belonged to the previous process, and one
    /// still looking open would fail the next request.
    fn reset_client(&mut self) {
        self.client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    }

    /// Whether the process was started and not killed or stopped since.
    pub(crate) fn is_running_quiet(&self) -> bool {
        self.child.is_some()
    }

    /// The server's data directory.
    pub(crate) fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// Peak resident memory of the server process so far, in bytes (Linux `VmHWM`).
    pub(crate) fn peak_rss_bytes(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:") * 1024
    }

    /// CPU time (user + system) the server process has used so far.
    pub(crate) fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("read /proc/pid/stat");
        // Fields after the command name, which is in parentheses and may contain spaces.
        let fields: Vec<&str> = stat.rsplit_once(')').expect("stat format").1.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 10)
    }

    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Waits (at most 60 s) until the process has stopped at an injected fault.
    pub(crate) async fn wait_for_fault(&mut self, context: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while self.is_running() {
            assert!(std::time::Instant::now() < deadline, "{context}: the fault never struck");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn with_auth(&self, req: reqwest::RequestBuilder, auth: &Auth) -> reqwest::RequestBuilder {
        match auth {
            Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::None => req,
        }
    }

    /// POSTs a raw body to a path.
    pub(crate) async fn post_raw(
        &self,
        path: &str,
        auth: &Auth,
        body: impl Into<reqwest::Body>,
        content_type: &str,
    ) -> Resp {
        let req = self.client.post(format!("{}{}", self.base, path)).header("content-type", content_type).body(body);
        let resp = self.with_auth(req, auth).send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        Resp { status, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
    }

    pub(crate) async fn post(&self, path: &str, auth: &Auth, body: &Value) -> Resp {
        self.post_raw(path, auth, body.to_string(), "application/json").await
    }

    /// Runs SQL with parameters.
    pub(crate) async fn sql_params(&self, auth: &Auth, sql: &str, params: Value) -> Resp {
        self.post("/v1/api/sql", auth, &json!({ "sql": sql, "params": params })).await
    }

    pub(crate) async fn sql(&self, auth: &Auth, sql: &str) -> Resp {
        self.post("/v1/api/sql", auth, &json!({ "sql": sql })).await
    }

    /// Runs SQL that must succeed.
    pub(crate) async fn sql_ok(&self, auth: &Auth, sql: &str) -> Resp {
        let r = self.sql(auth, sql).await;
        assert_eq!(r.status, StatusCode::OK, "SQL failed: {sql}\n{}", r.body);
        r
    }

    /// Runs SQL that must fail with `status` and `code`.
    pub(crate) async fn sql_err(&self, auth: &Auth, sql: &str, status: u16, code: &str) -> Resp {
        let r = self.sql(auth, sql).await;
        assert_eq!(r.status.as_u16(), status, "unexpected status for: {sql}\n{}", r.body);
        assert_eq!(r.code(), code, "unexpected code for: {sql}\n{}", r.body);
        r
    }

    /// Creates a user with role `user` (as root) and returns Basic credentials for it.
    pub(crate) async fn create_user(&self, name: &str) -> Auth {
        self.create_user_with_role(name, "user").await
    }

    pub(crate) async fn create_user_with_role(&self, name: &str, role: &str) -> Auth {
        let pw = format!("{name}-password");
        self.sql_ok(&Auth::root(), &format!("CREATE USER '{name}' WITH PASSWORD '{pw}' ROLE {role}")).await;
        Auth::basic(name, &pw)
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, String) {
        let resp = self.client.get(format!("{}{}", self.base, path)).send().await.expect("request");
        let status = resp.status();
        (status, resp.text().await.unwrap_or_default())
    }
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/pid/status");
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field} in status"));
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().expect("a number of kB")
}

fn unsafe_sigterm(pid: u32) {
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A WebSocket client speaking the sync protocol, for tests.
pub(crate) struct WsClient {
    stream: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl WsClient {
    /// Connects to `/v1/ws` without authenticating.
    pub(crate) async fn connect(s: &TestServer) -> WsClient {
        let url = format!("{}/v1/ws", s.base.replacen("http://", "ws://", 1));
        let (stream, _) = tokio_tungstenite::connect_async(url).await.expect("ws connect");
        WsClient { stream }
    }

    /// Connects and authenticates with a fresh access token for `user`.
    pub(crate) async fn connect_as(s: &TestServer, user: &str, password: &str) -> WsClient {
        let token = s.login(user, password).await;
        let mut ws = WsClient::connect(s).await;
        ws.send_json(json!({"type": "auth", "token": token})).await;
        match ws.recv().await {
            ServerMessage::AuthOk { .. } => ws,
            other => panic!("auth failed: {other:?}"),
        }
    }

    pub(crate) async fn send_json(&mut self, v: Value) {
        use futures::SinkExt;
        self.stream.send(tokio_tungstenite::tungstenite::Message::Text(v.to_string().into())).await.expect("ws send");
    }

    pub(crate) async fn send_raw(&mut self, msg: tokio_tungstenite::tungstenite::Message) {
        use futures::SinkExt;
        self.stream.send(msg).await.expect("ws send");
    }

    /// The next protocol frame (skipping pings), or a panic after 20 s.
    pub(crate) async fn recv(&mut self) -> ServerMessage {
        self.try_recv(Duration::from_secs(20)).await.expect("no frame within 20 s")
    }

    /// The next frame within `wait`, `None` on timeout or when the socket closes.
    pub(crate) async fn try_recv(&mut self, wait: Duration) -> Option<ServerMessage> {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next()).await.ok()??.ok()?;
            match msg {
                Message::Text(t) => return Some(serde_json::from_str(t.as_str()).expect("valid server frame")),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// The next frame within `wait`: `Ok(None)` if none came, `Err(())` if the socket closed.
    pub(crate) async fn next_frame(&mut self, wait: Duration) -> Result<Option<ServerMessage>, ()> {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Ok(None),
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return Err(()),
                Ok(Some(Ok(Message::Text(t)))) => {
                    return Ok(Some(serde_json::from_str(t.as_str()).expect("valid server frame")));
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// True if the server closes the connection within `wait`.
    pub(crate) async fn closed_within(&mut self, wait: Duration) -> bool {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }
}

impl TestServer {
    /// Logs in and returns an access token.
    pub(crate) async fn login(&self, user: &str, password: &str) -> String {
        let r = self.post("/v1/api/auth/login", &Auth::None, &json!({"username": user, "password": password})).await;
        assert_eq!(r.status, 200, "login failed: {}", r.body);
        r.body["access_token"].as_str().unwrap().to_string()
    }
}

/// Subscribes and collects the initial load: (rows, deleted pks, final cursor, batch count).
pub(crate) async fn subscribe(
    ws: &mut WsClient,
    id: &str,
    sql: &str,
    extra: Value,
) -> (Vec<Value>, Vec<Value>, i64, usize) {
    let mut msg = json!({"type": "subscribe", "id": id, "sql": sql});
    for (k, v) in extra.as_object().unwrap() {
        msg[k] = v.clone();
    }
    ws.send_json(msg).await;
    match ws.recv().await {
        ServerMessage::Subscribed { id: got, .. } => assert_eq!(got, id),
        other => panic!("expected subscribed, got {other:?}"),
    }
    let (mut rows, mut deleted, mut batches) = (vec![], vec![], 0);
    loop {
        match ws.recv().await {
            ServerMessage::Batch { id: got, rows: r, deleted: d, cursor, last, .. } => {
                assert_eq!(got, id);
                rows.extend(r.into_iter().map(Value::Array));
                deleted.extend(d);
                batches += 1;
                if last {
                    return (rows, deleted, cursor, batches);
                }
            }
            other => panic!("expected batch, got {other:?}"),
        }
    }
}

pub(crate) async fn next_change(ws: &mut WsClient) -> (ChangeOp, Vec<Value>, Option<Vec<Value>>, i64) {
    match ws.recv().await {
        ServerMessage::Change { op, row, old, cursor, .. } => (op, row, old, cursor),
        other => panic!("expected change, got {other:?}"),
    }
}

/// A CA and one certificate for 127.0.0.1 signed by it (every test node listens there), as
/// PEM files in `dir`: `(ca, cert, key)` paths.
pub(crate) fn tls_files(
    dir: &std::path::Path,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let node_key = KeyPair::generate().unwrap();
    let node =
        CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&node_key, &ca, &ca_key).unwrap();
    let paths = (
        dir.join(format!("{name}-ca.pem")),
        dir.join(format!("{name}-node.pem")),
        dir.join(format!("{name}-node.key")),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, node.pem()).unwrap();
    std::fs::write(&paths.2, node_key.serialize_pem()).unwrap();
    paths
}
