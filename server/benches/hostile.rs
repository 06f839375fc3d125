//! Hostile load: do ordinary users notice when some users attack the server?
//!
//! Against the release server with its default limits, `BENCH_USERS` users (default 1,000)
//! each run one HTTP client at about one request a second (INSERT, point SELECT, filtered
//! SELECT) and one WebSocket with `BENCH_SUBS` subscriptions (default 10), for
//! `BENCH_SECONDS` (default 60) — first all quiet, then with `BENCH_HOSTILE` of them (default
//! 100) attacking instead: memory and CPU bombs, parser bombs, request floods, costly
//! subscription filters triggered by their own writes, frame floods and oversized frames.
//! Reports, for the ordinary users in both phases, the HTTP latency, the write → change-event
//! latency (from the start of the write, and from its answer) and the errors, and `/health`
//! latency throughout.
//!
//! The attackers' own client work (building floods, reading refusals) runs on threads of the
//! lowest priority, as if on other machines: on this one machine it would otherwise be
//! charged to the ordinary clients' latencies, which share the bench process and its CPUs.
//!
//! Run: `cargo bench -p kalamdb-server --bench hostile`. Figures: RELIABILITY.md.

mod common;

use common::{Server, Ws, connect, subscribe};
use futures::{SinkExt, StreamExt};
use kalamdb_client_core::protocol::ws::ServerMessage;
use parking_lot::Mutex;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Latencies and errors of the ordinary users in one phase.
#[derive(Default)]
struct Observed {
    http: Mutex<Vec<Duration>>,
    /// From the start of the write to its change event.
    events: Mutex<Vec<Duration>>,
    /// From the write's HTTP answer to its change event (the fan-out alone, roughly).
    events_after_answer: Mutex<Vec<Duration>>,
    health: Mutex<Vec<Duration>>,
    errors: Mutex<Vec<String>>,
}

/// What the hostile users' requests got back, by HTTP status or outcome.
#[derive(Default)]
struct HostileOutcomes {
    by_status: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl HostileOutcomes {
    fn count(&self, what: impl Into<String>) {
        *self.by_status.lock().entry(what.into()).or_default() += 1;
    }
}

fn pct(v: &[Duration], p: usize) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort();
    v[((v.len() - 1) * p) / 100].as_secs_f64() * 1000.0
}

fn main() {
    let users = common::env_or("BENCH_USERS", 1000);
    let hostile = common::env_or("BENCH_HOSTILE", 100).min(users);
    let subs = common::env_or("BENCH_SUBS", 10);
    let seconds = common::env_or("BENCH_SECONDS", 60) as u64;
    let dir = tempfile::tempdir().unwrap();
    // Default limits; only bcrypt is cheap so that a thousand users sign in quickly.
    let server = Server::with_config(dir.path(), "[auth]\nbcrypt_cost = 4\n");
    let base = server.base.clone();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let attack_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(|| {
            // SAFETY: a plain system call on the calling thread.
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::setpriority(libc::PRIO_PROCESS, tid, 19);
            }
        })
        .enable_all()
        .build()
        .unwrap();
    let attackers = attack_rt.handle().clone();
    rt.block_on(async move {
        let client = reqwest::Client::builder().pool_max_idle_per_host(2000).build().unwrap();
        let root = server.token(&client, "root", common::ROOT_PASSWORD).await;
        server
            .sql(
                &client,
                &root,
                "CREATE NAMESPACE app; CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT, n INT); \
                 CREATE SHARED TABLE app.board (id BIGINT PRIMARY KEY, body TEXT) WITH (access_level = 'public')",
                json!([]),
            )
            .await;
        let mut tokens = Vec::with_capacity(users);
        for chunk in (0..users).collect::<Vec<_>>().chunks(100) {
            let creates: Vec<String> =
                chunk.iter().map(|u| format!("CREATE USER 'u{u}' WITH PASSWORD 'password-{u}'")).collect();
            server.sql(&client, &root, &creates.join("; "), json!([])).await;
        }
        for u in 0..users {
            tokens.push(server.token(&client, &format!("u{u}"), &format!("password-{u}")).await);
        }
        // Every user starts with 100 rows of their own.
        let rows: Vec<String> = (0..100).map(|i| format!("({i}, 'note {i}', {})", i % 10)).collect();
        let fill = format!("INSERT INTO app.notes (id, body, n) VALUES {}", rows.join(", "));
        for token in &tokens {
            server.sql(&client, token, &fill, json!([])).await;
        }
        println!(
            "users: {users} (HTTP client + WebSocket with {subs} subscriptions each), hostile in phase 2: {hostile}, \
             {seconds} s per phase"
        );
        let tokens = Arc::new(tokens);
        let quiet = phase(&base, &client, &tokens, subs, 0, seconds, &attackers).await;
        report("quiet", &quiet.0, None);
        let attacked = phase(&base, &client, &tokens, subs, hostile, seconds, &attackers).await;
        report("under attack", &attacked.0, Some(&attacked.1));
        let rss = server.rss_bytes();
        println!("server RSS at the end: {} MiB", rss >> 20);
    });
}

fn report(name: &str, o: &Observed, hostile: Option<&HostileOutcomes>) {
    let http = o.http.lock();
    let events = o.events.lock();
    let after_answer = o.events_after_answer.lock();
    let health = o.health.lock();
    let errors = o.errors.lock();
    println!("== {name}");
    for (label, samples) in [
        ("ordinary HTTP requests", &*http),
        ("ordinary change events (from the write)", &*events),
        ("  of which after the write's answer", &*after_answer),
        ("/health", &*health),
    ] {
        println!(
            "{label}: {} — p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            samples.len(),
            pct(samples, 50),
            pct(samples, 99),
            pct(samples, 100)
        );
    }
    println!("errors for ordinary users: {}", errors.len());
    for e in errors.iter().take(10) {
        println!("  {e}");
    }
    if let Some(h) = hostile {
        println!("hostile outcomes: {:?}", h.by_status.lock());
    }
}

/// Runs one phase: ordinary users everywhere but the first `hostile`, who attack.
async fn phase(
    base: &str,
    client: &reqwest::Client,
    tokens: &Arc<Vec<String>>,
    subs: usize,
    hostile: usize,
    seconds: u64,
    attackers: &tokio::runtime::Handle,
) -> (Arc<Observed>, Arc<HostileOutcomes>) {
    let attack_client = reqwest::Client::builder().pool_max_idle_per_host(2000).build().unwrap();
    let observed = Arc::new(Observed::default());
    let outcomes = Arc::new(HostileOutcomes::default());
    let stop = Arc::new(AtomicBool::new(false));
    let next_id = Arc::new(AtomicU64::new(1_000_000 + hostile as u64 * 10_000_000));
    let mut tasks = vec![];
    // Sockets first: every user's subscriptions are in place before the clock starts.
    let mut sockets = Vec::with_capacity(tokens.len());
    for (u, token) in tokens.iter().enumerate() {
        let mut ws = connect(base, token).await;
        for s in 0..subs {
            let sql = if u < hostile && s % 2 == 0 {
                // Costly filters, each evaluated on every write of the user (until their CPU
                // budget ends them).
                format!("SELECT id FROM app.notes WHERE regexp_like(repeat(body, 200000 + {s}), '(a|b|n)*z')")
            } else if u < hostile {
                // Refused at the first change: a value over the limit.
                "SELECT id FROM app.notes WHERE length(repeat(body, 30000000)) < 0".to_string()
            } else {
                format!("SELECT id, body FROM app.notes WHERE n >= {}", s % 10)
            };
            if u < hostile {
                // Some are refused at once (their initial load already fails the filter).
                let outcome = try_subscribe(&mut ws, &format!("s{s}"), &sql).await;
                outcomes.count(format!("subscribe {outcome}"));
            } else {
                subscribe(&mut ws, &format!("s{s}"), &sql).await;
            }
        }
        sockets.push(ws);
    }
    let started = Instant::now();
    for (u, ws) in sockets.into_iter().enumerate() {
        let token = tokens[u].clone();
        let (base, stop, observed, outcomes, next_id) =
            (base.to_string(), stop.clone(), observed.clone(), outcomes.clone(), next_id.clone());
        if u < hostile {
            let client = attack_client.clone();
            tasks.push(attackers.spawn(async move {
                attacker(u, &client, &base, &token, ws, &stop, &outcomes, &next_id).await;
            }));
        } else {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                ordinary(u, &client, &base, &token, ws, &stop, &observed, &next_id).await;
            }));
        }
    }
    // /health every 20 ms, through its own connection.
    {
        let (client, base, stop, observed) = (client.clone(), base.to_string(), stop.clone(), observed.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                match client.get(format!("{base}/health")).send().await {
                    Ok(r) if r.status().is_success() => observed.health.lock().push(t0.elapsed()),
                    other => observed.errors.lock().push(format!("/health: {other:?}")),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(120), t).await;
    }
    println!("phase took {:.0} s", started.elapsed().as_secs_f64());
    (observed, outcomes)
}

/// An ordinary user: about one request a second, and the change events of its own writes.
#[allow(clippy::too_many_arguments)]
async fn ordinary(
    u: usize,
    client: &reqwest::Client,
    base: &str,
    token: &str,
    mut ws: Ws,
    stop: &AtomicBool,
    observed: &Observed,
    next_id: &AtomicU64,
) {
    let url = format!("{base}/v1/api/sql");
    // Spread the clients over the second.
    tokio::time::sleep(Duration::from_millis((u as u64 * 7919) % 1000)).await;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let tick = Instant::now();
        let (sql, params, expect_event) = match i % 5 {
            0 | 1 => {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                ("INSERT INTO app.notes (id, body, n) VALUES ($1, 'hello', 9)", json!([id]), true)
            }
            2 | 3 => ("SELECT id, body FROM app.notes WHERE id = $1", json!([i % 100]), false),
            _ => ("SELECT count(*), max(id) FROM app.notes WHERE n = $1", json!([i % 10]), false),
        };
        let t0 = Instant::now();
        let mut answered = t0;
        match client.post(&url).bearer_auth(token).json(&json!({"sql": sql, "params": params})).send().await {
            Ok(r) if r.status().is_success() => {
                let _ = r.bytes().await;
                answered = Instant::now();
                observed.http.lock().push(answered - t0);
            }
            Ok(r) => {
                let error = format!("u{u}: {} {}", r.status(), r.text().await.unwrap_or_default());
                observed.errors.lock().push(error);
            }
            Err(e) => observed.errors.lock().push(format!("u{u}: {e}")),
        }
        if expect_event {
            // Every subscription of the user matches the row (n = 9): wait for the first.
            match tokio::time::timeout(Duration::from_secs(10), next_change(&mut ws)).await {
                Ok(Ok(())) => {
                    observed.events.lock().push(t0.elapsed());
                    observed.events_after_answer.lock().push(answered.elapsed());
                }
                Ok(Err(e)) => observed.errors.lock().push(format!("u{u} socket: {e}")),
                Err(_) => observed.errors.lock().push(format!("u{u}: no change event within 10 s")),
            }
        }
        i += 1;
        let next = tick + Duration::from_millis(1000);
        tokio::time::sleep_until(next.into()).await;
    }
    // Drain what is left so the socket closes cleanly.
    let _ = ws.close(None).await;
}

/// Waits for a change frame and skips the ones the write produced on other subscriptions.
async fn next_change(ws: &mut Ws) -> Result<(), String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => match serde_json::from_str::<ServerMessage>(t.as_str()) {
                Ok(ServerMessage::Change { id, .. }) => {
                    if id == "s0" {
                        return Ok(());
                    }
                }
                Ok(ServerMessage::Error { code, message, .. }) => return Err(format!("{code}: {message}")),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            },
            Some(Ok(_)) => {}
            other => return Err(format!("socket ended: {other:?}")),
        }
    }
}

/// A hostile user: cycles through attacks as fast as the server answers.
#[allow(clippy::too_many_arguments)]
async fn attacker(
    u: usize,
    client: &reqwest::Client,
    base: &str,
    token: &str,
    mut ws: Ws,
    stop: &AtomicBool,
    outcomes: &HostileOutcomes,
    next_id: &AtomicU64,
) {
    let url = format!("{base}/v1/api/sql");
    let array_bomb = format!("SELECT {}1{}", "ARRAY[".repeat(50), "]".repeat(50));
    let cast_bomb = format!("SELECT {}1 +{}", "CAST(".repeat(60), " AS INT)".repeat(60));
    let queries: Vec<String> = vec![
        "SELECT cardinality(array_repeat(1, 2000000000))".into(),
        "SELECT length(repeat(repeat('x', 20000), 20000))".into(),
        "SELECT count(*) FROM range(1000000000000)".into(),
        "SELECT max(length(repeat(body, 100000))) FROM app.notes a, app.notes b".into(),
        "SELECT count(*) FROM app.notes a, app.notes b, app.notes c".into(),
        "WITH RECURSIVE r(n, s) AS (SELECT 1, 'xx' UNION ALL SELECT n + 1, s || s FROM r WHERE n < 40) \
         SELECT max(length(s)) FROM r"
            .into(),
        "SELECT regexp_like(repeat('ab', 4000000), '(a|b)*c')".into(),
        "SELECT repeat('x', 1000000) FROM generate_series(1, 100)".into(),
        array_bomb,
        cast_bomb,
    ];
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        match i % 4 {
            // A burst of heavy queries at once.
            0 | 1 => {
                let burst = futures::future::join_all((0..8).map(|k| {
                    let sql = &queries[(i + k + u) % queries.len()];
                    client.post(&url).bearer_auth(token).json(&json!({ "sql": sql })).send()
                }))
                .await;
                for r in burst {
                    match r {
                        Ok(r) => outcomes.count(r.status().as_u16().to_string()),
                        Err(_) => outcomes.count("transport error"),
                    }
                }
            }
            // Writes that every costly filter of this user evaluates.
            2 => {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let sql = "INSERT INTO app.notes (id, body, n) VALUES ($1, 'aaaaaaaaaaaaaaaaaaaa', 1)";
                match client.post(&url).bearer_auth(token).json(&json!({"sql": sql, "params": [id]})).send().await {
                    Ok(r) => outcomes.count(format!("write {}", r.status().as_u16())),
                    Err(_) => outcomes.count("transport error"),
                }
            }
            // Frame floods and an oversized frame on the socket.
            _ => {
                for n in 0..300 {
                    if send_text(&mut ws, json!({"type": "ping", "nonce": n}).to_string()).await.is_err() {
                        break;
                    }
                }
                if i % 16 == 3 && send_text(&mut ws, "x".repeat(2 * 1024 * 1024)).await.is_err() {
                    outcomes.count("socket closed");
                }
                // Whatever the server answered; a closed socket is reopened.
                while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(1), ws.next()).await {
                    if msg.is_err() {
                        break;
                    }
                }
                if send_text(&mut ws, json!({"type": "ping", "nonce": 0}).to_string()).await.is_err() {
                    ws = connect(base, token).await;
                    outcomes.count("reconnected");
                }
            }
        }
        i += 1;
    }
}

/// Subscribes and reads the initial load; `ok` or the error code.
async fn try_subscribe(ws: &mut Ws, id: &str, sql: &str) -> String {
    let _ = send_text(ws, json!({"type": "subscribe", "id": id, "sql": sql}).to_string()).await;
    loop {
        match tokio::time::timeout(Duration::from_secs(60), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<ServerMessage>(t.as_str()) {
                Ok(ServerMessage::Batch { last: true, .. }) => return "ok".into(),
                Ok(ServerMessage::Error { code, .. }) => return code.to_string(),
                _ => {}
            },
            Ok(Some(Ok(_))) => {}
            _ => return "no answer".into(),
        }
    }
}

async fn send_text(ws: &mut Ws, text: String) -> Result<(), ()> {
    ws.send(Message::Text(text.into())).await.map_err(|_| ())
}
