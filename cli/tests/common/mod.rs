//! Test harness: starts the real `kalamdb-server` binary on an ephemeral loopback port with
//! a temporary data directory, prepares data over HTTP (independently of `kalam`), and runs
//! `kalam` with a private home directory, either with pipes or in a pseudo-terminal.
//!
//! The server binary: a test of another package cannot use `CARGO_BIN_EXE_kalamdb-server`,
//! so it is looked up next to this test's own target directory (`target/debug/`), where
//! `cargo test --workspace` puts it (the server's own integration tests need it, and cargo
//! builds every test target before running any). `cargo test -p kalamdb-cli` alone does not
//! build it: then the harness runs `cargo build -p kalamdb-server` once, into the same target
//! directory. `KALAMDB_SERVER_BIN` overrides the path. A binary that is present is used as
//! is; building it again from inside a workspace run could choose other features and
//! recompile half the dependency tree.

#![allow(dead_code)] // each test file uses its own part of the harness

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

pub(crate) const ROOT_PASSWORD: &str = "root-test-password";
/// The longest any single `kalam` run or expectation may take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(60);

/// The `kalamdb-server` binary, built if missing.
fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("KALAMDB_SERVER_BIN") {
        return PathBuf::from(path);
    }
    static BUILD: Mutex<()> = Mutex::new(());
    let _one_build_at_a_time = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    // <target>/<profile>/deps/<this test> -> <target>/<profile>/kalamdb-server
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
    let bin = profile_dir.join(format!("kalamdb-server{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let target_dir = profile_dir.parent().expect("target dir");
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "-p", "kalamdb-server", "--target-dir"]).arg(target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.current_dir(env!("CARGO_MANIFEST_DIR")).status().expect("run cargo build");
        assert!(status.success(), "cargo build -p kalamdb-server failed");
    }
    bin
}

/// A running server; killed when dropped.
pub(crate) struct TestServer {
    child: Child,
    /// `http://127.0.0.1:PORT` (`https://` with TLS)
    pub(crate) url: String,
    _data: tempfile::TempDir,
    /// With TLS: the CA file that signed the server's certificate, which `kalam` is told to
    /// trust (`SSL_CERT_FILE`).
    ca: Option<PathBuf>,
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl TestServer {
    pub(crate) fn start() -> TestServer {
        Self::start_with_config("")
    }

    /// Starts with `toml` as the server's configuration file.
    pub(crate) fn start_with_config(toml: &str) -> TestServer {
        Self::start_with(toml, &[])
    }

    /// Starts with `toml` as the configuration file and extra environment variables (such as
    /// `FAILPOINTS`, which debug server builds read).
    pub(crate) fn start_with(toml: &str, env: &[(&str, &str)]) -> TestServer {
        Self::start_in(tempfile::tempdir().expect("temp dir"), toml, env, None)
    }

    /// Serves HTTPS and WSS with a certificate for 127.0.0.1 signed by a CA of its own,
    /// which this harness's HTTP client and the `kalam` it starts trust.
    pub(crate) fn start_tls() -> TestServer {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let data = tempfile::tempdir().expect("temp dir");
        let ca_key = KeyPair::generate().expect("a key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("the CA");
        let key = KeyPair::generate().expect("a key");
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .expect("parameters")
            .signed_by(&key, &ca, &ca_key)
            .expect("the certificate");
        let [ca_file, cert_file, key_file] = ["ca.pem", "server.pem", "server.key"].map(|f| data.path().join(f));
        std::fs::write(&ca_file, ca.pem()).expect("write the CA");
        std::fs::write(&cert_file, cert.pem()).expect("write the certificate");
        std::fs::write(&key_file, key.serialize_pem()).expect("write the key");
        let toml = format!(
            "[server]\ntls_cert = {:?}\ntls_key = {:?}\n",
            cert_file.display().to_string(),
            key_file.display().to_string()
        );
        Self::start_in(data, &toml, &[], Some(ca_file))
    }

    fn start_in(data: tempfile::TempDir, toml: &str, env: &[(&str, &str)], ca: Option<PathBuf>) -> TestServer {
        let config = data.path().join("kalamdb.toml");
        std::fs::write(&config, toml).expect("write the config");
        let mut child = Command::new(server_binary())
            .args(["--listen", "127.0.0.1:0", "--bcrypt-cost", "4", "--log", "warn,openraft=off"])
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(data.path().join("data"))
            .env("KALAMDB_ROOT_PASSWORD", ROOT_PASSWORD)
            .env("KALAMDB_JWT_SECRET", "test-secret-test-secret-test-secret-0123")
            .env_remove("KALAMDB_CONFIG")
            .env_remove("KALAMDB_LISTEN")
            .env_remove("FAILPOINTS")
            .envs(env.iter().copied())
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
        let url = match rx.recv_timeout(TIMEOUT) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("kalamdb-server did not start within {TIMEOUT:?}");
            }
        };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let mut http = reqwest::Client::builder().timeout(TIMEOUT);
        if let Some(ca) = &ca {
            let pem = std::fs::read(ca).expect("read the CA");
            http = http.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a PEM certificate"));
        }
        let http = http.build().expect("http client");
        TestServer { child, url, _data: data, runtime, http, ca }
    }

    /// `host:port`, as the shell's prompt shows it.
    pub(crate) fn host(&self) -> &str {
        self.url.trim_start_matches("http://").trim_start_matches("https://")
    }

    /// Runs SQL as `user` over HTTP; returns the response body (asserting success).
    pub(crate) fn sql_as(&self, user: &str, password: &str, sql: &str) -> Value {
        let request = self
            .http
            .post(format!("{}/v1/api/sql", self.url))
            .basic_auth(user, Some(password))
            .json(&serde_json::json!({ "sql": sql }));
        let body: Value = self.runtime.block_on(async { request.send().await?.json().await }).expect("HTTP request");
        assert_eq!(body["status"], "success", "{sql}: {body}");
        body
    }

    /// Runs SQL as root over HTTP.
    pub(crate) fn sql(&self, sql: &str) -> Value {
        self.sql_as("root", ROOT_PASSWORD, sql)
    }

    /// The rows of the last statement of `sql` (as root).
    pub(crate) fn rows(&self, sql: &str) -> Vec<Value> {
        let body = self.sql(sql);
        let results = body["results"].as_array().expect("results");
        results.last().expect("a result")["rows"].as_array().expect("rows").clone()
    }

    /// An access token for `user`.
    pub(crate) fn token(&self, user: &str, password: &str) -> String {
        let request = self
            .http
            .post(format!("{}/v1/api/auth/login", self.url))
            .json(&serde_json::json!({ "username": user, "password": password }));
        let body: Value = self.runtime.block_on(async { request.send().await?.json().await }).expect("login");
        body["access_token"].as_str().unwrap_or_else(|| panic!("no token: {body}")).to_string()
    }

    /// `kalam` pointed at this server, with its profiles and history in `home`, and no
    /// `KALAM_*` settings from the environment the tests run in.
    pub(crate) fn kalam(&self, home: &Home) -> Command {
        let mut cmd = kalam(home);
        cmd.env("KALAM_URL", &self.url);
        if let Some(ca) = &self.ca {
            cmd.env("SSL_CERT_FILE", ca);
        }
        cmd
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private home for one test: profiles, history, XDG directories.
pub(crate) struct Home(tempfile::TempDir);

impl Home {
    pub(crate) fn new() -> Home {
        Home(tempfile::tempdir().expect("temp dir"))
    }

    pub(crate) fn path(&self) -> &Path {
        self.0.path()
    }

    pub(crate) fn profiles(&self) -> PathBuf {
        self.path().join("config").join("profiles.toml")
    }

    pub(crate) fn history(&self) -> PathBuf {
        self.path().join("history")
    }
}

/// `kalam` with a private home and a clean environment.
pub(crate) fn kalam(home: &Home) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kalam"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("KALAM_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("xdg-config"))
        .env("XDG_DATA_HOME", home.path().join("xdg-data"))
        .env("KALAM_CONFIG_DIR", home.path().join("config"))
        .env("KALAM_HISTORY", home.history())
        .env("TERM", "xterm");
    cmd
}

/// How a non-interactive run ended.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `cmd` with `stdin` piped in, at most [`TIMEOUT`].
pub(crate) fn run(mut cmd: Command, stdin: &str) -> Run {
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start kalam");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_string();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = read(Box::new(child.stdout.take().expect("stdout")));
    let err = read(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for kalam") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("kalam did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// `kalam` signed in as root (password from `KALAM_PASSWORD`) running `args`.
pub(crate) fn root(server: &TestServer, home: &Home, args: &[&str]) -> Run {
    let mut cmd = server.kalam(home);
    cmd.args(["--user", "root"]).env("KALAM_PASSWORD", ROOT_PASSWORD).args(args);
    run(cmd, "")
}
