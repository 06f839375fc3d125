//! Attacks by an ordinary `user`-role account (and a few by a careless admin): requests that
//! used to stall, starve or crash the server, or keep privileges past their revocation. Each
//! test reproduces one reported defect and checks the server's answer and that it stays
//! responsive.

use crate::common::*;
use kalamdb_client_core::protocol::ws::ServerMessage;
use serde_json::json;
use std::time::{Duration, Instant};

/// `/health` answers within `limit` (and the process is alive).
async fn assert_health_within(s: &mut TestServer, limit: Duration, context: &str) {
    assert!(s.is_running(), "{context}: the server process exited");
    let started = Instant::now();
    let (status, body) = s.get("/health").await;
    assert_eq!(status, 200, "{context}: {body}");
    assert!(started.elapsed() < limit, "{context}: /health took {:?}", started.elapsed());
}

async fn app_with_user(s: &TestServer) -> Auth {
    s.sql_ok(
        &Auth::root(),
        "CREATE NAMESPACE app; CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT); \
         CREATE SHARED TABLE app.board (id BIGINT PRIMARY KEY, owner TEXT, body TEXT) WITH (access_level = 'public')",
    )
    .await;
    s.create_user("mallory").await
}

/// Nested special forms (`ARRAY[`, `CAST(`) made sqlparser backtrack exponentially on a
/// worker thread: two such requests stopped `/health`.
#[tokio::test]
async fn nested_special_forms_are_answered_at_once() {
    let mut s = TestServer::start().await;
    let mallory = app_with_user(&s).await;
    let array = format!("SELECT {}1{}", "ARRAY[".repeat(50), "]".repeat(50));
    let cast = format!("SELECT {}1{}", "CAST(".repeat(60), " AS INT)".repeat(60));
    let broken = format!("SELECT {}1 +{}", "SUBSTRING(".repeat(30), " FROM 1)".repeat(30));
    let started = Instant::now();
    let (a, b, c) = tokio::join!(s.sql(&mallory, &array), s.sql(&mallory, &cast), s.sql(&mallory, &broken));
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    for (r, what) in [(a, "ARRAY"), (b, "CAST"), (c, "SUBSTRING")] {
        assert!(r.status.is_client_error(), "{what}: {} {}", r.status, r.body);
    }
    assert_health_within(&mut s, Duration::from_millis(500), "after nested special forms").await;

    // The same through a subscription.
    let mut ws = WsClient::connect_as(&s, "mallory", "mallory-password").await;
    let sql = format!("SELECT * FROM app.notes WHERE id = {}1{}", "ARRAY[".repeat(50), "]".repeat(50));
    let started = Instant::now();
    ws.send_json(json!({"type": "subscribe", "id": "q", "sql": sql})).await;
    match ws.recv().await {
        ServerMessage::Error { id, code, .. } => {
            assert_eq!(id.as_deref(), Some("q"));
            assert_eq!(serde_json::to_value(code).unwrap(), json!("TOO_LARGE"));
        }
        other => panic!("expected an error frame, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2), "subscribe took {:?}", started.elapsed());
    assert_health_within(&mut s, Duration::from_millis(500), "after the subscription").await;
}

/// `EXECUTE AS` let a service change the target's password or email (403 when asked
/// directly): account takeover. It now runs queries and data changes only.
#[tokio::test]
async fn execute_as_cannot_manage_the_target_account() {
    let s = TestServer::start().await;
    app_with_user(&s).await;
    let svc = s.create_user_with_role("svc", "service").await;
    s.create_user("victim").await;
    s.sql_err(&svc, "ALTER USER 'victim' SET PASSWORD 'taken-over-1'", 403, "FORBIDDEN").await;
    for sql in [
        "EXECUTE AS USER 'victim' (ALTER USER 'victim' SET PASSWORD 'taken-over-1')",
        "EXECUTE AS USER 'victim' (ALTER USER 'victim' SET EMAIL 'evil@example.com')",
        "EXECUTE AS USER 'victim' (DROP USER 'victim')",
        "EXECUTE AS USER 'victim' (CREATE NAMESPACE evil)",
        "EXECUTE AS USER 'victim' (SHOW TABLES)",
    ] {
        s.sql_err(&svc, sql, 403, "FORBIDDEN").await;
    }
    // The victim's password still works; data statements still run as the victim.
    s.login("victim", "victim-password").await;
    let r = s.sql_ok(&svc, "EXECUTE AS USER 'victim' (INSERT INTO app.notes (id, body) VALUES (1, 'hi'))").await;
    assert_eq!(r.row_count(0), 1);
    let victim = Auth::basic("victim", "victim-password");
    let r = s.sql_ok(&victim, "SELECT body FROM app.notes").await;
    assert_eq!(r.rows(0), &vec![json!(["hi"])]);
    let r = s.sql_ok(&Auth::root(), "SELECT email FROM system.users WHERE username = 'victim'").await;
    assert_eq!(r.rows(0), &vec![json!([null])]);
}

/// An invalid regular expression was a 500 logged at error level; it is the user's mistake.
#[tokio::test]
async fn invalid_regular_expressions_are_validation_errors() {
    let s = TestServer::start().await;
    let mallory = app_with_user(&s).await;
    for sql in [
        "SELECT regexp_like('a', '(')",
        "SELECT regexp_replace('a', '[', 'b')",
        "SELECT 'a' ~ '(?<'",
        "SELECT regexp_match('a', '*')",
        "SELECT body FROM app.notes WHERE regexp_like(body, ')')",
    ] {
        let r = s.sql_err(&mallory, sql, 400, "VALIDATION_ERROR").await;
        let message = r.body["error"]["message"].as_str().unwrap_or("");
        assert!(message.to_lowercase().contains("regular expression"), "{sql}: {message}");
    }
}

/// A scalar subquery that finds no row is NULL, also when its column is NOT NULL or a
/// literal (DataFusion took the column's nullability and failed the INSERT).
#[tokio::test]
async fn empty_scalar_subqueries_insert_null() {
    let s = TestServer::start().await;
    let root = Auth::root();
    s.sql_ok(
        &root,
        "CREATE NAMESPACE app; CREATE SHARED TABLE app.t2 (id BIGINT PRIMARY KEY, name TEXT NOT NULL); \
         CREATE SHARED TABLE app.t (id BIGINT PRIMARY KEY, v TEXT, n BIGINT)",
    )
    .await;
    s.sql_ok(
        &root,
        "INSERT INTO app.t (id, v, n) VALUES (1, (SELECT 'x' FROM app.t2 WHERE false), (SELECT id FROM app.t2 WHERE false)); \
         INSERT INTO app.t (id, v) VALUES (2, (SELECT name FROM app.t2 WHERE false)); \
         INSERT INTO app.t (id, v, n) SELECT 3, (SELECT name FROM app.t2), (SELECT max(id) FROM app.t2)",
    )
    .await;
    let r = s.sql_ok(&root, "SELECT id, v, n FROM app.t ORDER BY id").await;
    assert_eq!(r.rows(0), &vec![json!([1, null, null]), json!([2, null, null]), json!([3, null, null])]);
    // Queries get NULL too, and IS NULL is true (it was folded to false).
    let r = s.sql_ok(&root, "SELECT (SELECT 1 WHERE false) AS a, (SELECT id FROM app.t2) IS NULL AS b").await;
    assert_eq!(r.rows(0), &vec![json!([null, true])]);
    // A subquery that finds its row still returns it.
    s.sql_ok(&root, "INSERT INTO app.t2 (id, name) VALUES (7, 'seven')").await;
    s.sql_ok(
        &root,
        "INSERT INTO app.t (id, v, n) VALUES (4, (SELECT name FROM app.t2 WHERE id = 7), (SELECT id FROM app.t2))",
    )
    .await;
    let r = s.sql_ok(&root, "SELECT v, n FROM app.t WHERE id = 4").await;
    assert_eq!(r.rows(0), &vec![json!(["seven", 7])]);
}

/// The ULIDs of one multi-row INSERT follow the insertion order (the spec's monotonic mode).
#[tokio::test]
async fn ulids_of_one_insert_are_monotonic() {
    let s = TestServer::start().await;
    let root = Auth::root();
    s.sql_ok(&root, "CREATE NAMESPACE app; CREATE SHARED TABLE app.u (id TEXT PRIMARY KEY DEFAULT ULID(), n BIGINT)")
        .await;
    let values: Vec<String> = (0..500).map(|i| format!("({i})")).collect();
    s.sql_ok(&root, &format!("INSERT INTO app.u (n) VALUES {}", values.join(", "))).await;
    let r = s.sql_ok(&root, "SELECT n FROM app.u ORDER BY id").await;
    let order: Vec<i64> = r.rows(0).iter().map(|row| row[0].as_i64().unwrap()).collect();
    assert_eq!(order, (0..500).collect::<Vec<_>>());
    // The ULID() function too.
    let r = s.sql_ok(&root, "SELECT ULID() AS a FROM app.u ORDER BY n").await;
    let ids: Vec<&str> = r.rows(0).iter().map(|row| row[0].as_str().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ULID() values are not increasing");
}
