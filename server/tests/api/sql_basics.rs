//! Namespaces, tables, defaults, primary keys, DML, soft delete, system columns, restart.

use crate::common::*;
use serde_json::json;

async fn setup(s: &TestServer) {
    s.sql_ok(
        &Auth::root(),
        "CREATE NAMESPACE app; CREATE USER TABLE app.todos (id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), \
         title TEXT NOT NULL, done BOOLEAN DEFAULT FALSE, owner TEXT DEFAULT CURRENT_USER(), \
         created_at TIMESTAMP DEFAULT NOW())",
    )
    .await;
}

#[tokio::test]
async fn health_and_metrics() {
    let s = TestServer::start().await;
    let (status, body) = s.get("/health").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "ok");
    assert!(v["version"].is_string());
    let (status, body) = s.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("kalamdb_sql_requests_total"));
}

#[tokio::test]
async fn insert_select_defaults_and_soft_delete() {
    let s = TestServer::start().await;
    setup(&s).await;
    let alice = s.create_user("alice").await;
    let r = s
        .sql_ok(&alice, "INSERT INTO app.todos (title) VALUES ('a'), ('b'); SELECT * FROM app.todos ORDER BY title")
        .await;
    assert_eq!(r.row_count(0), 2);
    assert_eq!(r.body["results"][0]["message"], "Inserted 2 row(s)");
    let schema: Vec<&str> =
        r.body["results"][1]["schema"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(schema, ["id", "title", "done", "owner", "created_at"], "SELECT * hides system columns");
    let rows = r.rows(1);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][1], "a");
    assert_eq!(rows[0][2], false);
    assert_eq!(rows[0][3], "alice");
    assert!(rows[0][0].as_i64().unwrap() > 0, "snowflake id assigned");
    assert!(rows[0][4].as_str().unwrap().ends_with('Z'), "NOW() timestamp");

    // Soft delete hides the row, but it stays as a tombstone visible through _deleted.
    let r = s.sql_ok(&alice, "DELETE FROM app.todos WHERE title = 'a'; SELECT title FROM app.todos").await;
    assert_eq!(r.row_count(0), 1);
    assert_eq!(r.rows(1), &vec![json!(["b"])]);
    let r = s.sql_ok(&alice, "SELECT title, _deleted FROM app.todos ORDER BY title").await;
    assert_eq!(r.rows(0), &vec![json!(["a", true]), json!(["b", false])]);
    // Deleting again affects nothing; updating a tombstone affects nothing.
    let r = s.sql_ok(&alice, "DELETE FROM app.todos WHERE title = 'a'").await;
    assert_eq!(r.row_count(0), 0);
}

#[tokio::test]
async fn primary_keys_and_duplicates() {
    let s = TestServer::start().await;
    s.sql_ok(
        &Auth::root(),
        "CREATE NAMESPACE app; CREATE SHARED TABLE app.items (sku TEXT PRIMARY KEY, qty INT NOT NULL DEFAULT 0)",
    )
    .await;
    let root = Auth::root();
    s.sql_ok(&root, "INSERT INTO app.items (sku) VALUES ('x')").await;
    let r = s.sql_err(&root, "INSERT INTO app.items (sku, qty) VALUES ('y', 1), ('x', 2)", 409, "DUPLICATE_KEY").await;
    assert_eq!(r.body["error"]["statement"], 1);
    // The failed statement wrote nothing (atomic per statement).
    let r = s.sql_ok(&root, "SELECT sku FROM app.items ORDER BY sku").await;
    assert_eq!(r.rows(0), &vec![json!(["x"])]);
    // A deleted key can be inserted again.
    s.sql_ok(&root, "DELETE FROM app.items WHERE sku = 'x'; INSERT INTO app.items VALUES ('x', 5)").await;
    let r = s.sql_ok(&root, "SELECT qty FROM app.items WHERE sku = 'x'").await;
    assert_eq!(r.rows(0), &vec![json!([5])]);
    // Without a declared key an id column is added.
    s.sql_ok(&root, "CREATE USER TABLE app.notes (body TEXT)").await;
    let r = s.sql_ok(&root, "DESCRIBE TABLE app.notes").await;
    assert_eq!(r.rows(0)[0][0], "id");
    assert_eq!(r.rows(0)[0][4], true, "id is the primary key");
    let names: Vec<&str> = r.rows(0).iter().map(|row| row[0].as_str().unwrap()).collect();
    assert_eq!(names, ["id", "body", "_updated", "_deleted"]);
}

#[tokio::test]
async fn updates_params_and_updated_column() {
    let s = TestServer::start().await;
    setup(&s).await;
    let bob = s.create_user("bob").await;
    s.sql_params(&bob, "INSERT INTO app.todos (id, title) VALUES ($1, $2)", json!([1, "one"])).await;
    let before = s.sql_ok(&bob, "SELECT _updated FROM app.todos WHERE id = 1").await.rows(0)[0][0].clone();
    let r = s.sql_params(&bob, "UPDATE app.todos SET done = $1 WHERE id = $2", json!([true, 1])).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.row_count(0), 1);
    let r = s.sql_ok(&bob, "UPDATE app.todos SET title = title || '!' WHERE done = true").await;
    assert_eq!(r.row_count(0), 1);
    let r = s.sql_ok(&bob, "SELECT title, done, _updated FROM app.todos").await;
    assert_eq!(r.rows(0)[0][0], "one!");
    assert_eq!(r.rows(0)[0][1], true);
    assert!(r.rows(0)[0][2].as_str().unwrap() > before.as_str().unwrap(), "_updated moves forward");
    // System columns are not writable.
    s.sql_err(&bob, "UPDATE app.todos SET _updated = NOW()", 400, "VALIDATION_ERROR").await;
    s.sql_err(&bob, "INSERT INTO app.todos (title, _deleted) VALUES ('x', true)", 400, "VALIDATION_ERROR").await;
    s.sql_err(&bob, "UPDATE app.todos SET id = 5 WHERE id = 1", 400, "VALIDATION_ERROR").await;
}

#[tokio::test]
async fn catalog_commands_and_system_tables() {
    let s = TestServer::start().await;
    setup(&s).await;
    let root = Auth::root();
    let r = s.sql_ok(&root, "SHOW NAMESPACES").await;
    assert_eq!(r.rows(0), &vec![json!(["app", 1])]);
    let r = s.sql_ok(&root, "SHOW TABLES IN app").await;
    assert_eq!(r.rows(0)[0][1], "todos");
    assert_eq!(r.rows(0)[0][2], "USER");
    let r = s.sql_ok(&root, "SELECT namespace, table_name, table_type FROM system.tables").await;
    assert_eq!(r.rows(0), &vec![json!(["app", "todos", "user"])]);
    let r = s.sql_ok(&root, "SELECT column_name FROM system.columns WHERE table_name = 'todos' AND is_system").await;
    assert_eq!(r.rows(0).len(), 2);
    let r = s.sql_ok(&root, "SELECT username, role FROM system.users ORDER BY username").await;
    assert_eq!(r.rows(0), &vec![json!(["root", "system"])]);
    let r = s.sql_ok(&root, "SELECT version, changes FROM system.table_schemas").await;
    assert_eq!(r.rows(0), &vec![json!([1, "CREATE TABLE"])]);
    let r = s.sql_ok(&root, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'app'").await;
    assert_eq!(r.rows(0), &vec![json!(["todos"])]);
    let r = s.sql_ok(&root, "USE app; SELECT count(*) AS n FROM todos").await;
    assert_eq!(r.rows(1), &vec![json!([0])]);
    // DROP NAMESPACE refuses while tables exist, naming them.
    let r = s.sql_err(&root, "DROP NAMESPACE app", 409, "IN_USE").await;
    assert!(r.body["error"]["message"].as_str().unwrap().contains("app.todos"));
    s.sql_ok(&root, "DROP NAMESPACE app CASCADE").await;
    s.sql_err(&root, "SELECT * FROM app.todos", 404, "TABLE_NOT_FOUND").await;
}

#[tokio::test]
async fn data_survives_restart() {
    let mut s = TestServer::start().await;
    setup(&s).await;
    let carol = s.create_user("carol").await;
    s.sql_ok(&carol, "INSERT INTO app.todos (id, title) VALUES (1, 'persist me')").await;
    let before = s.sql_ok(&carol, "SELECT _updated FROM app.todos").await.rows(0)[0][0].clone();
    s.restart();
    let r = s.sql_ok(&carol, "SELECT title FROM app.todos").await;
    assert_eq!(r.rows(0), &vec![json!(["persist me"])]);
    // The clock resumes after the last value handed out.
    s.sql_ok(&carol, "UPDATE app.todos SET done = true WHERE id = 1").await;
    let after = s.sql_ok(&carol, "SELECT _updated FROM app.todos").await.rows(0)[0][0].clone();
    assert!(after.as_str().unwrap() > before.as_str().unwrap());
    let r = s.sql_ok(&Auth::root(), "DESCRIBE TABLE app.todos").await;
    assert_eq!(r.rows(0).len(), 7);
}

#[tokio::test]
async fn column_types_round_trip() {
    let s = TestServer::start().await;
    let root = Auth::root();
    s.sql_ok(
        &root,
        "CREATE NAMESPACE t; CREATE SHARED TABLE t.all_types (k TEXT PRIMARY KEY DEFAULT UUID_V7(), u TEXT DEFAULT ULID(), \
         b BOOLEAN, s SMALLINT, i INT, g BIGINT, f FLOAT, d DOUBLE, m DECIMAL(10,2), x BYTES, dt DATE, ts TIMESTAMP, j JSON, c CRDT_TEXT)",
    )
    .await;
    let r = s
        .sql_params(
            &root,
            "INSERT INTO t.all_types (k, b, s, i, g, f, d, m, x, dt, ts, j, c) VALUES ('k1', TRUE, -5, 70000, 9007199254740993, 1.5, -2.25, \
             12.345, X'DEADBEEF', '2024-02-29', '2024-01-02 03:04:05.123456', $1, 'hello'); \
             INSERT INTO t.all_types (b, m, x, j) VALUES (FALSE, $2, $3, $4)",
            json!([{"a": [1, 2]}, "7.1", "aGk=", "a JSON string"]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.sql_ok(&root, "SELECT k, b, s, i, g, f, d, m, x, dt, ts, j, c FROM t.all_types WHERE k = 'k1'").await;
    assert_eq!(
        r.rows(0)[0],
        json!(["k1", true, -5, 70000, 9007199254740993i64, 1.5, -2.25, "12.35", "3q2+7w==", "2024-02-29",
               "2024-01-02T03:04:05.123456Z", {"a": [1, 2]}, "hello"])
    );
    // The primary-key fast path and the planned query return exactly the same result.
    let planned = s
        .sql_ok(&root, "SELECT k, b, s, i, g, f, d, m, x, dt, ts, j, c FROM t.all_types WHERE k = 'k1' AND TRUE")
        .await;
    assert_eq!(planned.body["results"], r.body["results"]);
    let star = s.sql_ok(&root, "SELECT * FROM t.all_types WHERE k = 'k1'").await;
    let star_planned = s.sql_ok(&root, "SELECT * FROM t.all_types WHERE 'k1' = k OR FALSE").await;
    assert_eq!(star.body["results"], star_planned.body["results"]);
    let none = s.sql_ok(&root, "SELECT k FROM t.all_types WHERE k = 'missing'").await;
    assert_eq!(none.row_count(0), 0);
    let types: Vec<&str> =
        r.body["results"][0]["schema"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "TEXT",
            "BOOLEAN",
            "SMALLINT",
            "INT",
            "BIGINT",
            "FLOAT",
            "DOUBLE",
            "DECIMAL(10,2)",
            "BYTES",
            "DATE",
            "TIMESTAMP",
            "JSON",
            "CRDT_TEXT"
        ]
    );
    let r = s.sql_ok(&root, "SELECT k, u, m, x, j FROM t.all_types WHERE k <> 'k1'").await;
    let row = &r.rows(0)[0];
    assert_eq!(row[0].as_str().unwrap().len(), 36, "UUID v7 default");
    assert_eq!(row[1].as_str().unwrap().len(), 26, "ULID default");
    assert_eq!(row[2], "7.10");
    assert_eq!(row[3], "aGk=");
    assert_eq!(row[4], json!("a JSON string"), "a JSON parameter is stored as that JSON value");
}

#[tokio::test]
async fn functions_insert_select_and_partial_failure() {
    let s = TestServer::start().await;
    setup(&s).await;
    let dave = s.create_user("dave").await;
    let r = s.sql_ok(&dave, "SELECT CURRENT_USER() AS me, CURRENT_USER AS me2, length(ULID()) AS l").await;
    assert_eq!(r.rows(0), &vec![json!(["dave", "dave", 26])]);
    s.sql_ok(&Auth::root(), "CREATE USER TABLE app.archive (id BIGINT PRIMARY KEY, title TEXT)").await;
    let r = s
        .sql_ok(
            &dave,
            "INSERT INTO app.todos (id, title) VALUES (1, 'x'), (2, 'y'), (3, 'z'); \
             INSERT INTO app.archive SELECT id, upper(title) FROM app.todos WHERE id >= 2; \
             SELECT id, title FROM app.archive ORDER BY id",
        )
        .await;
    assert_eq!(r.row_count(1), 2);
    assert_eq!(r.rows(2), &vec![json!([2, "Y"]), json!([3, "Z"])]);
    // Statements before a failing one stay applied; the error names the failing statement.
    let r = s.sql(&dave, "INSERT INTO app.todos (id, title) VALUES (10, 'kept'); SELEC oops; INSERT INTO app.todos (id, title) VALUES (11, 'never')").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "PARSE_ERROR");
    assert_eq!(r.body["error"]["statement"], 2);
    let r = s.sql_ok(&dave, "SELECT id FROM app.todos WHERE id >= 10").await;
    assert_eq!(r.rows(0), &vec![json!([10])]);
    // Expressions in VALUES are evaluated by the query engine.
    s.sql_ok(&dave, "INSERT INTO app.todos (id, title) VALUES (20, concat('a', 'b', 1 + 2))").await;
    let r = s.sql_ok(&dave, "SELECT title FROM app.todos WHERE id = 20").await;
    assert_eq!(r.rows(0), &vec![json!(["ab3"])]);
}

#[tokio::test]
async fn query_engine_cannot_touch_the_file_system() {
    let s = TestServer::start().await;
    let root = Auth::root();
    let target = std::env::temp_dir().join(format!("kalamdb-copy-{}.csv", std::process::id()));
    let path = target.display();
    for sql in [
        format!("COPY (SELECT 1) TO '{path}'"),
        format!("EXPLAIN ANALYZE COPY (SELECT 1) TO '{path}'"),
        format!("CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '{path}'"),
        format!("SELECT * FROM '{path}'"),
    ] {
        let r = s.sql(&root, &sql).await;
        assert!(r.status.is_client_error(), "{sql} should be refused: {}", r.body);
    }
    assert!(!target.exists(), "no file may be written");
}

#[tokio::test]
async fn runaway_queries_stop_at_the_row_limit() {
    let s = TestServer::start().await;
    let started = std::time::Instant::now();
    let r = s.sql_err(&Auth::root(), "SELECT * FROM generate_series(1, 10000000000)", 413, "TOO_LARGE").await;
    assert!(r.body["error"]["message"].as_str().unwrap().contains("LIMIT"));
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "stopped early, not after producing every row");
    let r = s.sql_ok(&Auth::root(), "SELECT count(*) FROM generate_series(1, 200000)").await;
    assert_eq!(r.rows(0), &vec![json!([200000])]);
}

/// Names follow DataFusion's rule on every path: unquoted names are case-insensitive, quoted
/// ones are taken as written.
#[tokio::test]
async fn names_follow_datafusion_rule() {
    let s = TestServer::start().await;
    let root = Auth::root();
    s.sql_ok(&root, "CREATE NAMESPACE App; CREATE SHARED TABLE APP.Items (Id BIGINT PRIMARY KEY, Title TEXT)").await;
    s.sql_ok(&root, "INSERT INTO app.\"items\" (\"id\", TITLE) VALUES (1, 'a'), (2, 'b')").await;
    s.sql_ok(&root, "UPDATE app.items SET \"title\" = upper(title) WHERE \"id\" = 2").await;
    let r = s.sql_ok(&root, "SELECT \"id\", Title FROM \"app\".ITEMS ORDER BY ID").await;
    assert_eq!(r.rows(0), &vec![json!([1, "a"]), json!([2, "B"])]);
    let r = s.sql_ok(&root, "SELECT title FROM app.items WHERE \"id\" = 1").await;
    assert_eq!(r.rows(0), &vec![json!(["a"])]);

    // A quoted name with capitals names nothing, on the query and the write paths.
    let r = s.sql(&root, "SELECT * FROM app.\"Items\"").await;
    assert_eq!(r.status, 404, "{}", r.body);
    for sql in [
        "SELECT \"Title\" FROM app.items",
        "SELECT \"Title\" FROM app.items WHERE id = 1",
        "UPDATE app.items SET \"Title\" = 'x' WHERE id = 1",
        "INSERT INTO app.items (id, \"Title\") VALUES (3, 'x')",
        "DELETE FROM app.items WHERE \"Id\" = 1",
    ] {
        let r = s.sql(&root, sql).await;
        assert_eq!(r.status, 400, "{sql}: {}", r.body);
    }
    // ... and cannot be created.
    let r = s.sql_err(&root, "CREATE SHARED TABLE app.\"Other\" (id INT PRIMARY KEY)", 400, "PARSE_ERROR").await;
    assert!(r.body["error"]["message"].as_str().unwrap_or("").contains("capital letters"), "{}", r.body);
    let r = s.sql_ok(&root, "SELECT id, title FROM app.items ORDER BY id").await;
    assert_eq!(r.rows(0), &vec![json!([1, "a"]), json!([2, "B"])]);
}

#[tokio::test]
async fn computed_columns_are_typed_by_their_value_and_a_bare_null_is_null() {
    let s = TestServer::start().await;
    let root = Auth::root();
    s.sql_ok(&root, "CREATE NAMESPACE t; CREATE SHARED TABLE t.p (id BIGINT PRIMARY KEY, prio SMALLINT, note TEXT)")
        .await;
    s.sql_ok(&root, "INSERT INTO t.p VALUES (1, 3, 'a')").await;
    // INSERT ... SELECT with a bare NULL stores NULL, not an empty value.
    s.sql_ok(&root, "INSERT INTO t.p (id, prio, note) SELECT 2, 4, NULL").await;
    let r = s
        .sql_ok(
            &root,
            "SELECT CAST(prio AS TEXT) AS a, -prio AS b, NULL AS c, prio, note, CAST(id AS DOUBLE) AS d FROM t.p ORDER BY id",
        )
        .await;
    let types: Vec<&str> =
        r.body["results"][0]["schema"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["TEXT", "SMALLINT", "NULL", "SMALLINT", "TEXT", "DOUBLE"]);
    assert_eq!(r.rows(0), &vec![json!(["3", -3, null, 3, "a", 1.0]), json!(["4", -4, null, 4, null, 2.0])]);
}
