//! ALTER TABLE: old rows (hot and flushed) read through every later schema version, the
//! history is kept, bad changes are refused, and a synced replica carries its rows across
//! a schema change without downloading them again.

use crate::client_sync::login_as;
use crate::common::*;
use crate::flush::flush_and_wait;
use kalamdb_client_core::store::MemoryStore;
use kalamdb_client_core::sync::{ClientConfig, start_native};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const ITEMS: &str = "CREATE NAMESPACE app; \
    CREATE USER TABLE app.items (id INT PRIMARY KEY, title TEXT, qty SMALLINT, extra TEXT)";

fn insert_sql(from: i64, to: i64) -> String {
    let values: Vec<String> = (from..=to).map(|i| format!("({i}, 't{i}', {}, 'x{i}')", i * 3 % 7)).collect();
    format!("INSERT INTO app.items (id, title, qty, extra) VALUES {}", values.join(", "))
}

/// Every schema change in one place, as the table reads after all of them:
/// `[id, name (was title), qty (widened), note (added with a default)]`.
fn expected(ids: impl Iterator<Item = i64>) -> Vec<Value> {
    ids.map(|i| json!([i, format!("t{i}"), i * 3 % 7, "none"])).collect()
}

const QUERY: &str = "SELECT id, name, qty, note FROM app.items ORDER BY id";

#[tokio::test]
async fn old_rows_read_through_every_later_schema_in_both_tiers() {
    let mut s = TestServer::start().await;
    let root = Auth::root();
    s.sql_ok(&root, ITEMS).await;
    let alice = s.create_user("alice").await;
    s.sql_ok(&alice, &insert_sql(1, 10)).await;
    flush_and_wait(&s, "FLUSH TABLE app.items").await;
    s.sql_ok(&alice, &insert_sql(11, 20)).await;

    let changes = [
        "ALTER TABLE app.items ADD COLUMN note TEXT NOT NULL DEFAULT 'none'",
        "ALTER TABLE app.items RENAME COLUMN title TO name",
        "ALTER TABLE app.items MODIFY COLUMN qty BIGINT",
        "ALTER TABLE app.items DROP COLUMN extra",
    ];
    for (i, sql) in changes.iter().enumerate() {
        let r = s.sql_ok(&root, sql).await;
        let msg = r.body["results"][0]["message"].as_str().unwrap().to_string();
        assert!(msg.contains(&format!("schema version {}", i + 2)), "{msg}");
    }
    assert_eq!(s.sql_ok(&alice, QUERY).await.rows(0), &expected(1..=20));
    // The added column's default is what old rows read as, also for filters and pruning.
    let r = s.sql_ok(&alice, "SELECT count(*) FROM app.items WHERE note = 'none' AND qty >= 0").await;
    assert_eq!(r.rows(0), &vec![json!([20])]);
    let r = s.sql_ok(&alice, "SELECT id, name, qty, note FROM app.items WHERE id = 3").await;
    assert_eq!(r.rows(0), &expected(3..=3));
    s.sql_err(&alice, "SELECT title FROM app.items", 400, "VALIDATION_ERROR").await;
    s.sql_err(&alice, "SELECT extra FROM app.items", 400, "VALIDATION_ERROR").await;

    // Writes under the new schema, to rows of every tier, then a flush of mixed versions.
    s.sql_ok(&alice, "INSERT INTO app.items (id, name, qty) VALUES (21, 't21', 5000000000)").await;
    s.sql_ok(&alice, "UPDATE app.items SET note = 'cold' WHERE id = 2").await;
    s.sql_ok(&alice, "UPDATE app.items SET note = 'hot' WHERE id = 12").await;
    let mut want = expected(1..=20);
    want[1][3] = json!("cold");
    want[11][3] = json!("hot");
    want.push(json!([21, "t21", 5000000000i64, "none"]));
    assert_eq!(s.sql_ok(&alice, QUERY).await.rows(0), &want);
    flush_and_wait(&s, "FLUSH TABLE app.items").await;
    assert_eq!(s.sql_ok(&alice, QUERY).await.rows(0), &want);
    s.restart();
    assert_eq!(s.sql_ok(&alice, QUERY).await.rows(0), &want);

    let history = s.sql_ok(&root, "DESCRIBE TABLE app.items HISTORY").await;
    let versions: Vec<(i64, String)> =
        history.rows(0).iter().map(|r| (r[0].as_i64().unwrap(), r[2].as_str().unwrap().to_string())).collect();
    assert_eq!(
        versions,
        vec![
            (1, "CREATE TABLE".to_string()),
            (2, "ADD COLUMN note TEXT".to_string()),
            (3, "RENAME COLUMN title TO name".to_string()),
            (4, "MODIFY COLUMN qty BIGINT".to_string()),
            (5, "DROP COLUMN extra".to_string()),
        ]
    );
    assert_eq!(history.rows(0)[4][3], json!("id INT, name TEXT, qty BIGINT, note TEXT"));
    let r = s.sql_ok(&root, "SELECT count(*) FROM system.table_schemas WHERE table_name = 'items'").await;
    assert_eq!(r.rows(0), &vec![json!([5])]);
    let r = s.sql_ok(&root, "SHOW TABLES IN app").await;
    assert_eq!(r.rows(0)[0][3], json!(5));
}

#[tokio::test]
async fn bad_schema_changes_are_refused_with_clear_errors() {
    let s = TestServer::start().await;
    let root = Auth::root();
    s.sql_ok(&root, ITEMS).await;
    s.sql_ok(&root, "CREATE STREAM TABLE app.events (id INT PRIMARY KEY, kind TEXT)").await;
    s.sql_ok(&root, "CREATE SHARED TABLE app.config (k TEXT PRIMARY KEY, v TEXT)").await;
    let alice = s.create_user("alice").await;

    s.sql_err(&alice, "ALTER TABLE app.items ADD COLUMN x INT", 403, "FORBIDDEN").await;
    s.sql_err(&root, "ALTER TABLE app.events ADD COLUMN x INT", 400, "NOT_SUPPORTED").await;
    s.sql_err(&root, "ALTER TABLE app.items DROP COLUMN id", 400, "VALIDATION_ERROR").await;
    s.sql_err(&root, "ALTER TABLE app.items DROP COLUMN _updated", 400, "VALIDATION_ERROR").await;
    s.sql_err(&root, "ALTER TABLE app.items DROP COLUMN nope", 400, "VALIDATION_ERROR").await;
    s.sql_err(&root, "ALTER TABLE app.items ADD COLUMN title TEXT", 409, "ALREADY_EXISTS").await;
    s.sql_err(&root, "ALTER TABLE app.items ADD COLUMN x INT NOT NULL", 400, "VALIDATION_ERROR").await;
    s.sql_err(&root, "ALTER TABLE app.items RENAME COLUMN title TO qty", 409, "ALREADY_EXISTS").await;
    s.sql_err(&root, "ALTER TABLE app.items MODIFY COLUMN title INT", 400, "NOT_SUPPORTED").await;
    s.sql_err(&root, "ALTER TABLE app.items MODIFY COLUMN id BIGINT", 400, "VALIDATION_ERROR").await;
    s.sql_err(&root, "ALTER TABLE app.items SET ACCESS LEVEL public", 400, "VALIDATION_ERROR").await;
    s.sql_err(&root, "ALTER TABLE app.nope ADD COLUMN x INT", 404, "TABLE_NOT_FOUND").await;

    // A subscription naming a column pins it; `*` pins none.
    let mut ws = WsClient::connect_as(&s, "alice", "alice-password").await;
    ws.send_json(json!({"type": "subscribe", "id": "q", "sql": "SELECT id FROM app.items WHERE qty > 1"})).await;
    let mut all = WsClient::connect_as(&s, "alice", "alice-password").await;
    all.send_json(json!({"type": "subscribe", "id": "all", "sql": "SELECT * FROM app.items"})).await;
    wait_for_subscriptions(&s, 2).await;
    let r = s.sql_err(&root, "ALTER TABLE app.items DROP COLUMN qty", 409, "IN_USE").await;
    assert!(r.body["error"]["message"].as_str().unwrap().contains("live subscription"), "{}", r.body);
    s.sql_err(&root, "ALTER TABLE app.items RENAME COLUMN qty TO amount", 409, "IN_USE").await;
    s.sql_ok(&root, "ALTER TABLE app.items DROP COLUMN extra").await;
    s.sql_ok(&root, "ALTER TABLE app.config SET ACCESS LEVEL public").await;
    s.sql_ok(&alice, "SELECT * FROM app.config").await;
    // Nothing was half-applied: two successful changes, three versions.
    let r = s.sql_ok(&root, "DESCRIBE TABLE app.items HISTORY").await;
    assert_eq!(r.rows(0).len(), 2);
}

async fn wait_for_subscriptions(s: &TestServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = s.sql_ok(&Auth::root(), "SELECT count(*) FROM system.live_queries").await;
        if r.rows(0)[0][0].as_u64() == Some(n as u64) {
            return;
        }
        assert!(Instant::now() < deadline, "expected {n} live queries");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_live_subscription_hears_of_the_schema_change_after_every_earlier_change() {
    let s = TestServer::start().await;
    let root = Auth::root();
    s.sql_ok(&root, ITEMS).await;
    let alice = s.create_user("alice").await;
    let mut ws = WsClient::connect_as(&s, "alice", "alice-password").await;
    ws.send_json(json!({"type": "subscribe", "id": "all", "sql": "SELECT * FROM app.items"})).await;
    wait_for_subscriptions(&s, 1).await;
    s.sql_ok(&alice, &insert_sql(1, 1)).await;
    s.sql_ok(&root, "ALTER TABLE app.items ADD COLUMN note TEXT DEFAULT 'none'").await;
    s.sql_ok(&alice, &insert_sql(2, 2)).await;
    let mut frames = vec![];
    while let Some(f) = ws.try_recv(Duration::from_secs(2)).await {
        frames.push(serde_json::to_value(&f).unwrap());
    }
    let kinds: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["subscribed", "batch", "change", "schema_changed"], "{frames:?}");
    assert_eq!(frames[3], json!({"type": "schema_changed", "id": "all", "schema_version": 2}));
    let subscribed = &frames[0]["schema"];
    assert_eq!(subscribed[1], json!({"name": "title", "type": "TEXT", "id": 2}));
    // Subscribing again yields the new schema with ids and the fill value.
    ws.send_json(json!({"type": "subscribe", "id": "all", "sql": "SELECT * FROM app.items", "since": 0})).await;
    let f = serde_json::to_value(ws.recv().await).unwrap();
    assert_eq!(f["schema"][4], json!({"name": "note", "type": "TEXT", "id": 5, "default": "none"}));
}

#[tokio::test]
async fn a_synced_replica_keeps_its_rows_across_alter_table() {
    let s = TestServer::start().await;
    let root = Auth::root();
    s.sql_ok(&root, ITEMS).await;
    let alice = s.create_user("alice").await;
    s.sql_ok(&alice, &insert_sql(1, 50)).await;
    let mut config = ClientConfig::new(s.ws_url());
    config.backoff_base_ms = 50;
    let c = start_native(config, MemoryStore::new(), login_as(&s, "alice", Default::default()));
    c.sync("items", "SELECT * FROM app.items").await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), c.settled()).await.unwrap().unwrap();

    s.sql_ok(&root, "ALTER TABLE app.items ADD COLUMN note TEXT NOT NULL DEFAULT 'none'").await;
    s.sql_ok(&root, "ALTER TABLE app.items RENAME COLUMN title TO name").await;
    s.sql_ok(&root, "ALTER TABLE app.items DROP COLUMN extra").await;
    s.sql_ok(&alice, "INSERT INTO app.items (id, name, qty, note) VALUES (51, 't51', 1, 'new')").await;

    let want = {
        let mut w: Vec<Value> = expected(1..=50);
        w.push(json!([51, "t51", 1, "new"]));
        w
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let local = c.query(QUERY, vec![]).await.map(|rs| rs.rows.into_iter().map(Value::Array).collect::<Vec<_>>());
        if local.as_ref().is_ok_and(|l| *l == want) {
            break;
        }
        assert!(Instant::now() < deadline, "replica did not follow the schema change: {local:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The subscription resumed from its cursor rather than loading everything again.
    let r = s.sql_ok(&root, "SELECT options FROM system.live_queries").await;
    let options = match &r.rows(0)[0][0] {
        Value::String(text) => serde_json::from_str(text).unwrap(),
        other => other.clone(),
    };
    assert!(options["since"].as_i64().is_some_and(|c| c > 0), "{options}");
    let local = c.query("SELECT * FROM app.items WHERE id = 1", vec![]).await.unwrap();
    assert_eq!(local.columns, ["id", "name", "qty", "note"]);
    c.close().await;
}

#[tokio::test]
async fn writes_racing_schema_changes_are_all_applied_once() {
    let s = TestServer::start().await;
    let root = Auth::root();
    s.sql_ok(&root, ITEMS).await;
    let alice = s.create_user("alice").await;
    let token = s.login("alice", "alice-password").await;
    let writers: Vec<_> = (0..4i64)
        .map(|w| {
            let (base, token) = (s.base.clone(), token.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for i in 0..60 {
                    let id = w * 1000 + i;
                    let r = http
                        .post(format!("{base}/v1/api/sql"))
                        .bearer_auth(&token)
                        .json(&json!({"sql": format!("INSERT INTO app.items (id, qty) VALUES ({id}, 1)")}))
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success(), "insert {id}: {}", r.text().await.unwrap());
                }
            })
        })
        .collect();
    for i in 0..6 {
        s.sql_ok(&root, &format!("ALTER TABLE app.items ADD COLUMN c{i} INT DEFAULT {i}")).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for w in writers {
        w.await.unwrap();
    }
    let r = s.sql_ok(&alice, "SELECT count(*), count(DISTINCT id), sum(c5) FROM app.items").await;
    assert_eq!(r.rows(0), &vec![json!([240, 240, 1200])]);
}
