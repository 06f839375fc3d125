//! The native client-core sync engine against the real server: initial load and live tail,
//! optimistic offline writes through the outbox, rejection rollback, resume after an
//! interrupted first sync, reconnect after a server crash, and a convergence property test.

use crate::common::*;
use futures::FutureExt;
use futures::future::LocalBoxFuture;
use kalamdb_client_core::protocol::ErrorCode;
use kalamdb_client_core::protocol::ws::{MutationKind, MutationOp};
use kalamdb_client_core::store::{MemoryStore, ReplicaStore, Row, Snapshot, StoreError, StoreOp};
use kalamdb_client_core::sync::{Client, ClientConfig, MutationState, SyncError, SyncEvent, start_native};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const ITEMS: &str = "CREATE NAMESPACE app; \
    CREATE USER TABLE app.items (id TEXT PRIMARY KEY, title TEXT, n INT); \
    CREATE USER TABLE app.log (id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), tag TEXT)";

fn client_for<S: ReplicaStore + Send + 'static>(s: &TestServer, user: &str, store: S, online: bool) -> Client {
    let mut config = ClientConfig::new(s.ws_url());
    config.online = online;
    config.backoff_base_ms = 50;
    config.backoff_max_ms = 400;
    config.ping_interval_ms = 2_000;
    start_native(config, store, login_as(s, user, Arc::new(AtomicU64::new(0))))
}

/// A token source that logs in as `user` (password `<user>-password`), counting logins.
pub(crate) fn login_as(
    s: &TestServer,
    user: &str,
    logins: Arc<AtomicU64>,
) -> impl Fn() -> futures::future::BoxFuture<'static, Result<String, String>> + Send + Sync + 'static {
    let (base, user, password) = (s.base.clone(), user.to_string(), format!("{user}-password"));
    move || {
        let (base, user, password, logins) = (base.clone(), user.clone(), password.clone(), logins.clone());
        async move {
            logins.fetch_add(1, Ordering::SeqCst);
            let r = reqwest::Client::new()
                .post(format!("{base}/v1/api/auth/login"))
                .json(&json!({"username": user, "password": password}))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let body: Value = r.json().await.map_err(|e| e.to_string())?;
            body["access_token"].as_str().map(str::to_string).ok_or_else(|| format!("login refused: {body}"))
        }
        .boxed()
    }
}

/// Waits until `c` is settled. A client that has not connected yet (it started while the
/// server was restarting) fails `settled()` while its attempts fail; it is asked again.
async fn settle(c: &Client) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, c.settled()).await.expect("client did not settle in 30 s") {
            Ok(()) => return,
            Err(SyncError::Connection { .. }) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("settled: {e}"),
        }
    }
}

fn obj(v: Value) -> Row {
    v.as_object().unwrap().clone()
}

/// Rows of the server's view of `sql` for `auth`, as sorted JSON arrays.
async fn server_rows(s: &TestServer, auth: &Auth, sql: &str) -> Vec<Value> {
    let mut rows: Vec<Value> = s.sql_ok(auth, sql).await.rows(0).clone();
    rows.sort_by_key(|r| r.to_string());
    rows
}

async fn local_rows(c: &Client, sql: &str) -> Vec<Value> {
    let rs = c.query(sql, vec![]).await.unwrap();
    let mut rows: Vec<Value> = rs.rows.into_iter().map(Value::Array).collect();
    rows.sort_by_key(|r| r.to_string());
    rows
}

#[tokio::test]
async fn client_loads_rows_then_follows_live_changes() {
    let s = TestServer::start().await;
    s.sql_ok(&Auth::root(), ITEMS).await;
    let alice = s.create_user("alice").await;
    let bob = s.create_user("bob").await;
    s.sql_ok(
        &alice,
        "INSERT INTO app.items (id, title, n) VALUES ('a', 'apple', 1), ('b', 'banana', 2), ('c', 'cherry', 3)",
    )
    .await;
    s.sql_ok(&bob, "INSERT INTO app.items (id, title, n) VALUES ('x', 'bob-only', 9)").await;

    let c = client_for(&s, "alice", MemoryStore::new(), true);
    c.sync("items", "SELECT * FROM app.items").await.unwrap();
    settle(&c).await;
    let rs = c.query("SELECT id, title FROM app.items WHERE n >= 2 ORDER BY n DESC", vec![]).await.unwrap();
    assert_eq!(rs.rows, vec![vec![json!("c"), json!("cherry")], vec![json!("b"), json!("banana")]]);
    assert_eq!(local_rows(&c, "SELECT id, title, n FROM app.items").await.len(), 3, "bob's row must not reach alice");

    let mut live = c.live("SELECT title FROM app.items WHERE n > 1 ORDER BY title", vec![]).await.unwrap();
    assert_eq!(live.next().await.unwrap().rows.len(), 2);
    s.sql_ok(&alice, "INSERT INTO app.items (id, title, n) VALUES ('d', 'date', 4)").await;
    let rs = tokio::time::timeout(Duration::from_secs(5), live.next()).await.unwrap().unwrap();
    assert_eq!(rs.rows, vec![vec![json!("banana")], vec![json!("cherry")], vec![json!("date")]]);
    s.sql_ok(&alice, "DELETE FROM app.items WHERE id = 'b'").await;
    s.sql_ok(&alice, "UPDATE app.items SET n = 0 WHERE id = 'c'").await;
    let mut last = None;
    while let Ok(Some(rs)) = tokio::time::timeout(Duration::from_secs(5), live.next()).await {
        let done = rs.rows == vec![vec![json!("date")]];
        last = Some(rs);
        if done {
            break;
        }
    }
    assert_eq!(last.unwrap().rows, vec![vec![json!("date")]]);
    assert_eq!(
        local_rows(&c, "SELECT id, title, n FROM app.items").await,
        server_rows(&s, &alice, "SELECT id, title, n FROM app.items").await
    );
    let status = c.status().await.unwrap();
    assert!(status.online && !status.syncing && status.pending_writes == 0, "{status:?}");
    assert!(status.last_synced_ms.is_some());
    c.close().await;
}

#[tokio::test]
async fn offline_writes_show_at_once_and_reach_the_server_exactly_once() {
    let s = TestServer::start().await;
    s.sql_ok(&Auth::root(), ITEMS).await;
    let alice = s.create_user("alice").await;
    s.sql_ok(&alice, "INSERT INTO app.items (id, title, n) VALUES ('a', 'apple', 1), ('b', 'banana', 2)").await;
    let store = MemoryStore::new();
    let c = client_for(&s, "alice", store.clone(), true);
    c.sync("items", "SELECT * FROM app.items").await.unwrap();
    settle(&c).await;

    c.set_online(false);
    let inserted = c.insert("app.items", obj(json!({"title": "offline", "n": 7}))).await.unwrap();
    let generated = inserted.inserted_keys[0].as_str().unwrap().to_string();
    assert_eq!(generated.len(), 36, "a UUIDv7 key is generated offline");
    let updated = c.update("app.items", json!("a"), obj(json!({"title": "apricot"}))).await.unwrap();
    c.delete("app.items", json!("b")).await.unwrap();
    assert!(c.mutate(vec![]).await.is_err(), "an empty mutation is refused locally");

    let local = local_rows(&c, "SELECT id, title, n FROM app.items").await;
    let mut expected = vec![json!(["a", "apricot", 1]), json!([generated.clone(), "offline", 7])];
    expected.sort_by_key(|r| r.to_string());
    assert_eq!(local, expected);
    let status = c.status().await.unwrap();
    assert_eq!(status.pending_writes, 3);
    assert!(!status.online);
    assert_eq!(c.mutation_state(&updated).await.unwrap(), Some(MutationState::Pending));
    assert_eq!(server_rows(&s, &alice, "SELECT id FROM app.items").await.len(), 2, "nothing sent while offline");

    // Reload the app while offline: the outbox and the optimistic view survive.
    c.close().await;
    let c = client_for(&s, "alice", store.clone(), false);
    assert_eq!(local_rows(&c, "SELECT id, title, n FROM app.items").await, local);
    assert_eq!(c.status().await.unwrap().pending_writes, 3);

    c.set_online(true);
    settle(&c).await;
    assert_eq!(server_rows(&s, &alice, "SELECT id, title, n FROM app.items").await, local);
    assert_eq!(local_rows(&c, "SELECT id, title, n FROM app.items").await, local);
    assert!(matches!(c.mutation_state(&updated).await.unwrap(), Some(MutationState::Applied { .. })));

    // Going offline and online again resends nothing twice.
    c.set_online(false);
    c.set_online(true);
    settle(&c).await;
    assert_eq!(server_rows(&s, &alice, "SELECT id, title, n FROM app.items").await, local);
    c.close().await;
}

/// An insert made right after the first `sync()`, before the server described the table,
/// cannot know which column is the key: online, it waits for the columns and gets its
/// generated key (instead of reaching the server without one and vanishing), and writes made
/// after it wait behind it. Offline it is queued as is: one with its key is applied once
/// online, one without is refused by the server with the reason.
#[tokio::test]
async fn an_insert_before_the_first_schema_waits_for_it_online() {
    let s = TestServer::start().await;
    s.sql_ok(&Auth::root(), ITEMS).await;
    let alice = s.create_user("alice").await;

    let c = client_for(&s, "alice", MemoryStore::new(), true);
    c.sync("items", "SELECT * FROM app.items").await.unwrap();
    let (first, second) = futures::join!(
        c.insert("app.items", obj(json!({"title": "early", "n": 1}))),
        c.update("app.items", json!("later"), obj(json!({"n": 2}))),
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    let key = first.inserted_keys.first().and_then(Value::as_str).expect("a generated key").to_string();
    assert_eq!(second.seq, first.seq + 1, "a later write stays behind the held one");
    settle(&c).await;
    assert!(matches!(c.mutation_state(&first).await.unwrap(), Some(MutationState::Applied { .. })));
    assert_eq!(server_rows(&s, &alice, "SELECT id, title FROM app.items").await, vec![json!([key.clone(), "early"])]);
    assert_eq!(local_rows(&c, "SELECT id, title FROM app.items").await, vec![json!([key, "early"])]);
    c.close().await;

    let c = client_for(&s, "alice", MemoryStore::new(), false);
    c.sync("items", "SELECT * FROM app.items").await.unwrap();
    let keyed = c.insert("app.items", obj(json!({"id": "k1", "title": "with a key"}))).await.unwrap();
    let keyless = c.insert("app.items", obj(json!({"title": "without"}))).await.unwrap();
    assert!(keyless.inserted_keys.is_empty());
    c.set_online(true);
    settle(&c).await;
    assert!(matches!(c.mutation_state(&keyed).await.unwrap(), Some(MutationState::Applied { .. })));
    let refused = c.mutation_state(&keyless).await.unwrap();
    assert!(
        matches!(&refused, Some(MutationState::Rejected { reason, .. }) if reason.contains("column 'id'")),
        "{refused:?}"
    );
    c.close().await;
}

#[tokio::test]
async fn a_rejected_write_rolls_back_and_is_reported() {
    let s = TestServer::start().await;
    s.sql_ok(&Auth::root(), ITEMS).await;
    let alice = s.create_user("alice").await;
    s.sql_ok(&alice, "INSERT INTO app.items (id, title, n) VALUES ('a', 'apple', 1)").await;
    let c = client_for(&s, "alice", MemoryStore::new(), true);
    let mut events = c.events();
    c.sync("items", "SELECT * FROM app.items").await.unwrap();
    settle(&c).await;

    c.set_online(false);
    let dup = c.insert("app.items", obj(json!({"id": "a", "title": "impostor", "n": 2}))).await.unwrap();
    assert_eq!(local_rows(&c, "SELECT id, title FROM app.items").await, vec![json!(["a", "impostor"])]);
    c.set_online(true);
    settle(&c).await;
    assert_eq!(local_rows(&c, "SELECT id, title FROM app.items").await, vec![json!(["a", "apple"])]);
    match c.mutation_state(&dup).await.unwrap() {
        Some(MutationState::Rejected { code, .. }) => assert_eq!(code, ErrorCode::DuplicateKey),
        other => panic!("expected a rejection, got {other:?}"),
    }
    let mut saw = false;
    while let Ok(ev) = events.try_recv() {
        if let SyncEvent::Mutation { seq, state: MutationState::Rejected { reason, .. }, .. } = ev {
            assert_eq!(seq, dup.seq);
            assert!(!reason.is_empty());
            saw = true;
        }
    }
    assert!(saw, "the rejection is reported as an event");

    // A write to a table that does not exist is rejected too, and local validation catches
    // what the server would refuse anyway.
    let bad = c.insert("app.nope", obj(json!({"id": "z"}))).await.unwrap();
    settle(&c).await;
    assert!(matches!(c.mutation_state(&bad).await.unwrap(), Some(MutationState::Rejected { .. })));
    assert!(c.insert("items", obj(json!({"id": "q"}))).await.is_err(), "unqualified table");
    assert!(c.query("SELECT * FROM app.nope", vec![]).await.is_err(), "not synced");
    assert!(c.query("SELECT nope FROM app.items", vec![]).await.is_err(), "unknown column");
    c.close().await;
}

/// Wraps a store and fails every commit after the first `ok_commits` that carry rows.
#[derive(Clone)]
struct FlakyStore {
    inner: MemoryStore,
    ok_commits: u64,
    row_commits: Arc<AtomicU64>,
    rows_put: Arc<AtomicU64>,
}

impl ReplicaStore for FlakyStore {
    fn load(&self) -> LocalBoxFuture<'_, Result<Snapshot, StoreError>> {
        self.inner.load()
    }

    fn commit(&self, ops: Vec<StoreOp>) -> LocalBoxFuture<'_, Result<(), StoreError>> {
        let rows = ops.iter().filter(|o| matches!(o, StoreOp::PutRow { .. })).count() as u64;
        if rows > 0 && self.row_commits.fetch_add(1, Ordering::SeqCst) >= self.ok_commits {
            return Box::pin(async { Err(StoreError("disk full (injected)".into())) });
        }
        self.rows_put.fetch_add(rows, Ordering::SeqCst);
        self.inner.commit(ops)
    }
}

#[tokio::test]
async fn an_interrupted_first_sync_resumes_where_it_stopped() {
    let s = TestServer::start().await;
    s.sql_ok(&Auth::root(), ITEMS).await;
    let alice = s.create_user("alice").await;
    for chunk in 0..10 {
        let values: Vec<String> = (0..500).map(|i| format!("('k{:05}', 't', {})", chunk * 500 + i, i)).collect();
        s.sql_ok(&alice, &format!("INSERT INTO app.items (id, title, n) VALUES {}", values.join(","))).await;
    }
    let inner = MemoryStore::new();
    let flaky = FlakyStore {
        inner: inner.clone(),
        ok_commits: 1,
        row_commits: Arc::new(AtomicU64::new(0)),
        rows_put: Arc::new(AtomicU64::new(0)),
    };
    let c = client_for(&s, "alice", flaky.clone(), true);
    let mut events = c.events();
    c.sync("items", "SELECT * FROM app.items").await.unwrap();
    // The second commit with rows fails: the client reports it and stops syncing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, futures::StreamExt::next(&mut events)).await {
            Ok(Some(SyncEvent::Error { message, .. })) if message.contains("disk full") => break,
            Ok(Some(_)) => {}
            other => panic!("expected the injected store error, got {other:?}"),
        }
    }
    c.close().await;
    let kept = flaky.rows_put.load(Ordering::SeqCst);
    assert!((1000..5000).contains(&kept), "the first commit kept {kept} rows");

    // A new client on the same store asks only for what came after the stored cursor.
    let resumed = FlakyStore {
        inner: inner.clone(),
        ok_commits: u64::MAX,
        row_commits: Arc::new(AtomicU64::new(0)),
        rows_put: Arc::new(AtomicU64::new(0)),
    };
    let c = client_for(&s, "alice", resumed.clone(), true);
    c.sync("items", "SELECT * FROM app.items").await.unwrap();
    settle(&c).await;
    assert_eq!(resumed.rows_put.load(Ordering::SeqCst), 5000 - kept, "rows fetched again after resuming");
    let count = c.query("SELECT id FROM app.items", vec![]).await.unwrap().rows.len();
    assert_eq!(count, 5000);
    c.close().await;
}

#[tokio::test]
async fn the_client_reconnects_after_a_server_crash_and_catches_up() {
    let mut s = TestServer::start().await;
    s.sql_ok(&Auth::root(), ITEMS).await;
    let alice = s.create_user("alice").await;
    let c = client_for(&s, "alice", MemoryStore::new(), true);
    c.sync("items", "SELECT * FROM app.items").await.unwrap();
    settle(&c).await;
    c.insert("app.items", obj(json!({"id": "before", "title": "t", "n": 1}))).await.unwrap();
    settle(&c).await;

    s.kill9();
    c.insert("app.items", obj(json!({"id": "during", "title": "t", "n": 2}))).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while c.status().await.unwrap().online {
        assert!(tokio::time::Instant::now() < deadline, "the client never noticed the crash");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.start_again_same_port();
    // Written by another device while this client was away.
    s.sql_ok(&alice, "INSERT INTO app.items (id, title, n) VALUES ('elsewhere', 't', 3)").await;
    settle(&c).await;
    let mut local = Vec::new();
    for _ in 0..100 {
        local = local_rows(&c, "SELECT id FROM app.items").await;
        if local.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(local, vec![json!(["before"]), json!(["during"]), json!(["elsewhere"])]);
    assert_eq!(server_rows(&s, &alice, "SELECT id FROM app.items").await, local);
    c.close().await;
}

/// One device in the convergence test: a client, its store, and the tags of its mutations.
struct Device {
    client: Client,
    events: futures::channel::mpsc::UnboundedReceiver<SyncEvent>,
    tags: Vec<String>,
    online: bool,
}

/// Random offline writes from two devices of one user, random disconnects and server
/// crashes; afterwards both replicas equal the server and every mutation was applied once.
#[tokio::test]
async fn replicas_converge_under_random_disconnects_restarts_and_concurrent_devices() {
    let seeds: u64 = std::env::var("KALAMDB_CONVERGENCE_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(50);
    convergence_run(seeds, false).await;
}

/// The same with flushes started at random steps: rows move to the cold tier while
/// devices sync, reconnect and catch up.
#[tokio::test]
async fn replicas_converge_while_flushes_run() {
    let seeds: u64 = std::env::var("KALAMDB_CONVERGENCE_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(15);
    convergence_run(seeds, true).await;
}

async fn convergence_run(seeds: u64, flushes: bool) {
    let mut s = TestServer::start().await;
    s.sql_ok(&Auth::root(), ITEMS).await;
    for seed in 0..seeds {
        let mut rng = StdRng::seed_from_u64(seed);
        let name = format!("user{seed}");
        let auth = s.create_user(&name).await;
        let mut devices: Vec<Device> = (0..2)
            .map(|_| {
                let client = client_for(&s, &name, MemoryStore::new(), true);
                Device { events: client.events(), client, tags: Vec::new(), online: true }
            })
            .collect();
        for d in &devices {
            d.client.sync("items", "SELECT * FROM app.items").await.unwrap();
        }
        let mut keys: Vec<String> = Vec::new();
        let steps = rng.random_range(15..40);
        for step in 0..steps {
            let di = rng.random_range(0..devices.len());
            let roll = rng.random_range(0..100);
            if roll < 12 {
                let d = &mut devices[di];
                d.online = !d.online;
                d.client.set_online(d.online);
                continue;
            }
            if roll < 14 && seed % 5 == 0 {
                s.kill9();
                s.start_again_same_port();
                continue;
            }
            if flushes && roll < 24 {
                s.sql_ok(&Auth::root(), "FLUSH ALL TABLES IN app").await;
            }
            let tag = format!("{seed}-{di}-{step}");
            let op = if keys.is_empty() || roll < 50 {
                let id = format!("{seed}-{step}");
                keys.push(id.clone());
                MutationOp {
                    table: "app.items".into(),
                    op: MutationKind::Insert,
                    row: Some(obj(json!({"id": id, "title": tag, "n": step}))),
                    pk: None,
                }
            } else if roll < 85 {
                let id = keys[rng.random_range(0..keys.len())].clone();
                let col = if rng.random_bool(0.5) { "title" } else { "n" };
                let v = if col == "title" { json!(tag) } else { json!(rng.random_range(0..1000)) };
                MutationOp {
                    table: "app.items".into(),
                    op: MutationKind::Update,
                    row: Some(obj(json!({ col: v }))),
                    pk: Some(json!(id)),
                }
            } else {
                let id = keys[rng.random_range(0..keys.len())].clone();
                MutationOp { table: "app.items".into(), op: MutationKind::Delete, row: None, pk: Some(json!(id)) }
            };
            let log = MutationOp {
                table: "app.log".into(),
                op: MutationKind::Insert,
                row: Some(obj(json!({"tag": tag}))),
                pk: None,
            };
            let d = &mut devices[di];
            d.client.mutate(vec![op, log]).await.unwrap();
            d.tags.push(tag);
            if rng.random_bool(0.3) {
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..15))).await;
            }
        }
        for d in &mut devices {
            d.client.set_online(true);
        }
        for d in &devices {
            settle(&d.client).await;
        }
        // Live changes from the other device may still be in flight after settling.
        let expected = server_rows(&s, &auth, "SELECT id, title, n FROM app.items").await;
        for (i, d) in devices.iter().enumerate() {
            let mut local = Vec::new();
            for _ in 0..200 {
                local = local_rows(&d.client, "SELECT id, title, n FROM app.items").await;
                if local == expected {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            assert_eq!(local, expected, "seed {seed}: device {i} diverged from the server");
        }
        // Exactly once: every tag is in the log once; no mutation was rejected.
        let logged: Vec<Value> = s.sql_ok(&auth, "SELECT tag FROM app.log").await.rows(0).clone();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for r in &logged {
            *counts.entry(r[0].as_str().unwrap().to_string()).or_default() += 1;
        }
        let all_tags: BTreeSet<String> = devices.iter().flat_map(|d| d.tags.iter().cloned()).collect();
        assert_eq!(counts.keys().cloned().collect::<BTreeSet<_>>(), all_tags, "seed {seed}: logged tags");
        assert!(counts.values().all(|&n| n == 1), "seed {seed}: a mutation was applied twice: {counts:?}");
        for d in &mut devices {
            while let Ok(ev) = d.events.try_recv() {
                if let SyncEvent::Mutation { state: MutationState::Rejected { reason, .. }, .. } = ev {
                    panic!("seed {seed}: unexpected rejection: {reason}");
                }
            }
            d.client.close().await;
        }
    }
}

#[tokio::test]
async fn tokens_are_renewed_in_band_without_dropping_the_connection() {
    let s = TestServer::start_with_config("[auth]\naccess_token_ttl_secs = 3\n[live]\nheartbeat_secs = 1\n").await;
    s.sql_ok(&Auth::root(), ITEMS).await;
    let alice = s.create_user("alice").await;
    let logins = Arc::new(AtomicU64::new(0));
    let mut config = ClientConfig::new(s.ws_url());
    config.backoff_base_ms = 50;
    let c = start_native(config, MemoryStore::new(), login_as(&s, "alice", logins.clone()));
    let mut events = c.events();
    c.sync("items", "SELECT * FROM app.items").await.unwrap();
    settle(&c).await;
    // Three token lifetimes: without renewal the server closes the socket after the first.
    for i in 0..9 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        s.sql_ok(&alice, &format!("INSERT INTO app.items (id, title, n) VALUES ('r{i}', 't', {i})")).await;
    }
    let mut rows = 0;
    for _ in 0..100 {
        rows = c.query("SELECT id FROM app.items", vec![]).await.unwrap().rows.len();
        if rows == 9 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rows, 9, "live changes kept flowing");
    let mut was_online = false;
    while let Ok(ev) = events.try_recv() {
        if let SyncEvent::Status(st) = ev {
            assert!(!was_online || st.online, "the connection dropped: {st:?}");
            was_online |= st.online;
        }
    }
    assert!(was_online);
    assert!(logins.load(Ordering::SeqCst) >= 3, "the token was renewed ({} logins)", logins.load(Ordering::SeqCst));
    c.close().await;
}
