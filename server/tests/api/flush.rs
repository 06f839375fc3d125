//! The cold tier: FLUSH jobs, queries over both tiers, isolation of flushed data, writes
//! after a flush, policies, KILL JOB, catch-up across a flush, and kill -9 at every fault
//! point of the flush protocol.

use crate::common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Runs a FLUSH statement and waits until its job has finished; returns the job row
/// `[job_id, status, rows, files, error]`.
/// Runs a FLUSH statement and waits for its jobs (one; in a cluster, one per node that
/// leads a group the table's partitions are in): the first job's row.
pub(crate) async fn flush_and_wait(s: &TestServer, sql: &str) -> Vec<Value> {
    let r = s.sql_ok(&Auth::root(), sql).await;
    let mut first = None;
    for row in r.rows(0) {
        let done = wait_for_job(s, row[0].as_str().expect("job id")).await;
        first.get_or_insert(done);
    }
    first.expect("a job started")
}

pub(crate) async fn wait_for_job(s: &TestServer, job_id: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = s
            .sql_ok(
                &Auth::root(),
                &format!("SELECT job_id, status, rows, files, error FROM system.jobs WHERE job_id = '{job_id}'"),
            )
            .await;
        let row = r.rows(0)[0].as_array().unwrap().clone();
        if !matches!(row[1].as_str(), Some("queued" | "running")) {
            return row;
        }
        assert!(Instant::now() < deadline, "job {job_id} did not finish: {row:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Files (`batch-*.parquet`) under `dir`, recursively, as paths relative to it.
pub(crate) fn parquet_files(dir: &std::path::Path) -> Vec<String> {
    let mut out = vec![];
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            for f in parquet_files(&p) {
                out.push(format!("{}/{f}", e.file_name().to_string_lossy()));
            }
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(e.file_name().to_string_lossy().to_string());
        }
    }
    out.sort();
    out
}

const CORPUS: &[&str] = &[
    "SELECT * FROM app.items ORDER BY id",
    "SELECT id, qty FROM app.items WHERE qty > 50 ORDER BY id",
    "SELECT id FROM app.items WHERE qty = 7 ORDER BY id",
    "SELECT id, name FROM app.items WHERE name LIKE 'item-1%' ORDER BY id",
    "SELECT count(*), sum(qty), min(qty), max(qty), avg(price) FROM app.items",
    "SELECT qty % 5 AS k, count(*) FROM app.items GROUP BY qty % 5 ORDER BY k",
    "SELECT id, qty FROM app.items ORDER BY qty DESC, id LIMIT 5",
    "SELECT a.id, b.id FROM app.items a JOIN app.items b ON a.qty = b.qty AND a.id < b.id ORDER BY a.id, b.id",
    "SELECT id, _deleted FROM app.items ORDER BY id",
    "SELECT id, _updated FROM app.items ORDER BY id",
    "SELECT id FROM app.items WHERE _updated > '2000-01-01T00:00:00Z' ORDER BY id",
    "SELECT * FROM app.items WHERE id = 3",
    "SELECT * FROM app.items WHERE id = 4",
    "SELECT name FROM app.items WHERE id = 10",
    "SELECT count(*) FROM app.items WHERE id IN (1, 2, 3, 4, 5, 40)",
    "SELECT id FROM app.items LIMIT 3",
];

async fn corpus(s: &TestServer, auth: &Auth) -> Vec<Value> {
    let mut out = vec![];
    for q in CORPUS {
        let r = s.sql_ok(auth, q).await;
        let mut rows = r.rows(0).clone();
        if q.contains("LIMIT 3") {
            rows = vec![json!(rows.len())];
        }
        out.push(json!({"q": q, "rows": rows}));
    }
    out
}

pub(crate) async fn items_table(s: &TestServer, extra: &str) {
    s.sql_ok(
        &Auth::root(),
        &format!(
            "CREATE NAMESPACE app; CREATE USER TABLE app.items (id BIGINT PRIMARY KEY, name TEXT, qty INT, price DOUBLE, note CRDT_TEXT) {extra}"
        ),
    )
    .await;
}

pub(crate) async fn fill(s: &TestServer, auth: &Auth, from: i64, to: i64, tag: &str) {
    let values: Vec<String> =
        (from..to).map(|i| format!("({i}, 'item-{i}-{tag}', {}, {}.5, 'note {i}')", (i * 7) % 100, i % 13)).collect();
    s.sql_ok(auth, &format!("INSERT INTO app.items (id, name, qty, price, note) VALUES {}", values.join(", "))).await;
}

#[tokio::test]
async fn queries_return_the_same_rows_before_and_after_flushes() {
    let s = TestServer::start().await;
    items_table(&s, "").await;
    let users = [s.create_user("alice").await, s.create_user("bob").await, s.create_user("carol").await];
    for (u, auth) in users.iter().enumerate() {
        fill(&s, auth, 0, 60, &format!("u{u}")).await;
        s.sql_ok(auth, "UPDATE app.items SET qty = qty + 1 WHERE id % 4 = 0").await;
        s.sql_ok(auth, "DELETE FROM app.items WHERE id % 9 = 4").await;
    }
    let mut before = vec![];
    for auth in &users {
        before.push(corpus(&s, auth).await);
    }
    let job = flush_and_wait(&s, "FLUSH TABLE app.items").await;
    assert_eq!(job[1], "completed", "{job:?}");
    assert_eq!(job[2], 180, "every row version of the three users is flushed: {job:?}");
    assert_eq!(job[3], 3, "one file per user partition");
    for (auth, expected) in users.iter().zip(&before) {
        assert_eq!(&corpus(&s, auth).await, expected, "results changed after the first flush");
    }
    let r = s.sql_ok(&Auth::root(), "SHOW STATS FOR TABLE app.items").await;
    let stats = &r.rows(0)[0];
    assert_eq!(
        (stats[0].as_i64(), stats[3].as_i64(), stats[4].as_i64()),
        (Some(0), Some(180), Some(3)),
        "no hot rows remain, 180 row versions in 3 files: {}",
        r.body
    );
    assert!(stats[6].is_string(), "last flush time: {}", r.body);

    // Writes after the flush: updates and deletes of cold rows, inserts of new and of
    // cold-deleted keys, duplicate checks against cold rows.
    for (u, auth) in users.iter().enumerate() {
        s.sql_ok(auth, "UPDATE app.items SET name = name || '-upd', note = 'changed' WHERE id % 5 = 0").await;
        s.sql_ok(auth, "DELETE FROM app.items WHERE id % 11 = 1").await;
        s.sql_ok(auth, "UPDATE app.items SET qty = 1000 WHERE id = 3").await;
        s.sql_ok(auth, "INSERT INTO app.items (id, name, qty, price) VALUES (4, 'again', 4, 0.5)").await;
        fill(&s, auth, 60, 70, &format!("u{u}")).await;
        let r = s.sql(auth, "INSERT INTO app.items (id, name) VALUES (2, 'dup')").await;
        assert_eq!(r.code(), "DUPLICATE_KEY", "a flushed row still counts as existing: {}", r.body);
        let r = s.sql(auth, "INSERT INTO app.items (id, name) VALUES (6, 'dup')").await;
        assert_eq!(r.code(), "DUPLICATE_KEY", "{}", r.body);
    }
    let mut before = vec![];
    for auth in &users {
        before.push(corpus(&s, auth).await);
    }
    // Row 3 was updated in the hot tier over its cold version.
    let r = s.sql_ok(&users[0], "SELECT qty FROM app.items WHERE id = 3").await;
    assert_eq!(r.rows(0), &vec![json!([1000])]);
    let job = flush_and_wait(&s, "FLUSH ALL TABLES IN app").await;
    assert_eq!(job[1], "completed", "{job:?}");
    for (auth, expected) in users.iter().zip(&before) {
        assert_eq!(&corpus(&s, auth).await, expected, "results changed after the second flush");
    }
    // Isolation on cold data: each user sees only their rows.
    for (u, auth) in users.iter().enumerate() {
        let r = s
            .sql_ok(auth, "SELECT DISTINCT substr(name, strpos(name, '-u'), 3) FROM app.items WHERE name LIKE 'item-%'")
            .await;
        assert_eq!(r.rows(0), &vec![json!([format!("-u{u}")])], "user {u} sees another partition's rows");
    }
    // The files: one directory per user, two batches each, plus manifests.
    let storage = s.data_dir().join("storage/app/items");
    let files = parquet_files(&storage);
    assert_eq!(files.len(), 6, "{files:?}");
    assert!(files.iter().all(|f| f.ends_with("batch-1.parquet") || f.ends_with("batch-2.parquet")), "{files:?}");
    // Restart: the cold tier is read back from the manifests.
    let mut s = s;
    s.restart();
    for (auth, expected) in users.iter().zip(&before) {
        assert_eq!(&corpus(&s, auth).await, expected, "results changed after a restart");
    }
    // A dropped table takes its files; a new table of that name starts empty.
    let r = s.sql_ok(&Auth::root(), "DROP TABLE app.items").await;
    assert!(parquet_files(&storage).is_empty());
    // The cleanup is a job: every file and bytes of it, in system.jobs.
    let message = r.body["results"][0]["message"].as_str().unwrap();
    let job_id = message.split('\'').nth(3).expect("job id in the message");
    let job = s
        .sql_ok(
            &Auth::root(),
            &format!(
                "SELECT job_type, status, table_name, files, bytes > 0 FROM system.jobs WHERE job_id = '{job_id}'"
            ),
        )
        .await;
    assert_eq!(job.rows(0), &vec![json!(["drop", "completed", "items", 6, true])]);
    s.sql_ok(
        &Auth::root(),
        "CREATE USER TABLE app.items (id BIGINT PRIMARY KEY, name TEXT, qty INT, price DOUBLE, note CRDT_TEXT)",
    )
    .await;
    assert_eq!(s.sql_ok(&users[0], "SELECT count(*) FROM app.items").await.rows(0), &vec![json!([0])]);
}

#[tokio::test]
async fn jobs_are_listed_and_can_be_killed() {
    let s = TestServer::start().await;
    items_table(&s, "").await;
    let alice = s.create_user("alice").await;
    fill(&s, &alice, 0, 20, "a").await;
    let job = flush_and_wait(&s, "FLUSH TABLE app.items").await;
    let id = job[0].as_str().unwrap().to_string();
    let r = s
        .sql_ok(
            &Auth::root(),
            &format!("SELECT job_type, status, namespace, table_name, trigger, rows, files, started_at IS NOT NULL, finished_at >= started_at, error FROM system.jobs WHERE job_id = '{id}'"),
        )
        .await;
    assert_eq!(r.rows(0)[0], json!(["flush", "completed", "app", "items", "manual", 20, 1, true, true, null]));
    // A flush with nothing hot completes with no file.
    let job = flush_and_wait(&s, "FLUSH ALL TABLES").await;
    assert_eq!((job[1].as_str(), job[3].as_i64()), (Some("completed"), Some(0)));
    // Users cannot flush or read jobs; only dba+ may kill.
    s.sql_err(&alice, "FLUSH TABLE app.items", 403, "FORBIDDEN").await;
    s.sql_err(&alice, "SELECT * FROM system.jobs", 403, "FORBIDDEN").await;
    s.sql_err(&alice, &format!("KILL JOB '{id}'"), 403, "FORBIDDEN").await;
    s.sql_err(&Auth::root(), &format!("KILL JOB '{id}'"), 400, "VALIDATION_ERROR").await;
    s.sql_err(&Auth::root(), "KILL JOB 'flush-999999'", 400, "VALIDATION_ERROR").await;
    // KILL of a running flush: many partitions, killed at once.
    for u in 0..30 {
        let auth = s.create_user(&format!("k{u}")).await;
        fill(&s, &auth, 0, 50, "k").await;
    }
    let r = s.sql_ok(&Auth::root(), "FLUSH TABLE app.items").await;
    let id = r.rows(0)[0][0].as_str().unwrap().to_string();
    let killed = s.sql(&Auth::root(), &format!("KILL JOB '{id}'")).await;
    let job = wait_for_job(&s, &id).await;
    if killed.status == 200 {
        assert_eq!(job[1], "cancelled", "{job:?}");
        assert!(job[3].as_i64().unwrap() < 30, "a cancelled job stops before flushing every partition: {job:?}");
    } else {
        // It finished before the KILL arrived.
        assert_eq!(job[1], "completed");
    }
    // Whatever was or was not flushed, every row is still there exactly once.
    for u in 0..30 {
        let auth = Auth::basic(&format!("k{u}"), &format!("k{u}-password"));
        let r = s.sql_ok(&auth, "SELECT count(*), count(DISTINCT id) FROM app.items").await;
        assert_eq!(r.rows(0), &vec![json!([50, 50])]);
    }
    let job = flush_and_wait(&s, "FLUSH TABLE app.items").await;
    assert_eq!(job[1], "completed");
    // STREAM tables are never flushed.
    s.sql_ok(&Auth::root(), "CREATE STREAM TABLE app.ev (id BIGINT PRIMARY KEY, v INT)").await;
    s.sql_err(&Auth::root(), "FLUSH TABLE app.ev", 400, "VALIDATION_ERROR").await;
}

#[tokio::test]
async fn policies_flush_partitions_by_row_count_and_by_age() {
    let s = TestServer::start().await;
    items_table(&s, "WITH (flush_policy = 'rows:25')").await;
    s.sql_ok(
        &Auth::root(),
        "CREATE SHARED TABLE app.aged (id BIGINT PRIMARY KEY, v INT) FLUSH POLICY ROWS 1000000 INTERVAL '1s'",
    )
    .await;
    let alice = s.create_user("alice").await;
    let bob = s.create_user("bob").await;
    fill(&s, &alice, 0, 30, "a").await; // over the threshold
    fill(&s, &bob, 0, 10, "b").await; // under it
    s.sql_ok(&Auth::root(), "INSERT INTO app.aged VALUES (1, 1), (2, 2)").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = s
            .sql_ok(&Auth::root(), "SELECT table_name, sum(rows) FROM system.jobs WHERE trigger = 'policy' AND status = 'completed' GROUP BY table_name ORDER BY table_name")
            .await;
        if r.rows(0) == &vec![json!(["aged", 2]), json!(["items", 30])] {
            break;
        }
        assert!(Instant::now() < deadline, "policy flushes did not happen: {}", r.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let files = parquet_files(&s.data_dir().join("storage/app"));
    assert_eq!(files, vec!["aged/shared/batch-1.parquet".to_string(), "items/2/batch-1.parquet".to_string()]);
    assert_eq!(s.sql_ok(&alice, "SELECT count(*) FROM app.items").await.rows(0), &vec![json!([30])]);
    assert_eq!(s.sql_ok(&bob, "SELECT count(*) FROM app.items").await.rows(0), &vec![json!([10])]);
    assert_eq!(s.sql_ok(&Auth::root(), "SELECT sum(v) FROM app.aged").await.rows(0), &vec![json!([3])]);
}

/// Subscribes and collects the load: (rows, deleted keys, cursor after each batch).
pub(crate) async fn load(ws: &mut WsClient, id: &str, sql: &str, extra: Value) -> (Vec<Value>, Vec<Value>, Vec<i64>) {
    use kalamdb_client_core::protocol::ws::ServerMessage;
    let mut msg = json!({"type": "subscribe", "id": id, "sql": sql});
    for (k, v) in extra.as_object().unwrap() {
        msg[k] = v.clone();
    }
    ws.send_json(msg).await;
    assert!(matches!(ws.recv().await, ServerMessage::Subscribed { .. }));
    let (mut rows, mut deleted, mut cursors) = (vec![], vec![], vec![]);
    loop {
        match ws.recv().await {
            ServerMessage::Batch { rows: r, deleted: d, cursor, last, reset, .. } => {
                assert!(!reset, "no reset expected");
                rows.extend(r.into_iter().map(Value::Array));
                deleted.extend(d);
                cursors.push(cursor);
                if last {
                    return (rows, deleted, cursors);
                }
            }
            other => panic!("expected a batch, got {other:?}"),
        }
    }
}

/// The current cursor (the watermark a new subscription loads up to).
pub(crate) async fn cursor_now(ws: &mut WsClient, id: &str) -> i64 {
    let (_, _, cursors) = load(ws, id, "SELECT id FROM app.items WHERE id < 0", json!({})).await;
    *cursors.last().unwrap()
}

pub(crate) fn ids(rows: &[Value]) -> Vec<i64> {
    let mut v: Vec<i64> = rows.iter().map(|r| r.as_i64().or_else(|| r[0].as_i64()).unwrap()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn catch_up_reads_flushed_rows_exactly_once() {
    let s = TestServer::start().await;
    items_table(&s, "").await;
    let alice = s.create_user("alice").await;
    let bob = s.create_user("bob").await;
    fill(&s, &alice, 0, 100, "a").await;
    fill(&s, &bob, 0, 100, "b").await;
    let mut ws = WsClient::connect_as(&s, "alice", "alice-password").await;
    let c1 = cursor_now(&mut ws, "c1").await;
    s.sql_ok(&alice, "UPDATE app.items SET qty = -1 WHERE id < 10").await;
    s.sql_ok(&alice, "DELETE FROM app.items WHERE id >= 10 AND id < 20").await;
    fill(&s, &alice, 100, 110, "a").await;
    let note_sql = "SELECT id, note FROM app.items WHERE id = 50";
    let (note_hot, _, _) = load(&mut ws, "note-hot", note_sql, json!({})).await;
    assert_eq!(flush_and_wait(&s, "FLUSH TABLE app.items").await[1], "completed");
    let (note_cold, _, _) = load(&mut ws, "note-cold", note_sql, json!({})).await;
    assert_eq!(note_cold, note_hot, "a CRDT_TEXT document reads back the same from a file");
    let c2 = cursor_now(&mut ws, "c2").await;
    // Changes after the flush: cold rows updated and deleted in the hot tier.
    s.sql_ok(&alice, "UPDATE app.items SET qty = -2 WHERE id >= 20 AND id < 25").await;
    s.sql_ok(&alice, "DELETE FROM app.items WHERE id = 0 OR id = 30").await;
    s.sql_ok(&bob, "UPDATE app.items SET qty = -3").await;
    let sql = "SELECT id, name, qty FROM app.items";
    let truth = s.sql_ok(&alice, &format!("{sql} ORDER BY id")).await.rows(0).clone();
    for batch_size in [1000, 7] {
        // From scratch: every live row once.
        let (rows, deleted, cursors) =
            load(&mut ws, &format!("full{batch_size}"), sql, json!({"batch_size": batch_size})).await;
        let mut sorted = rows.clone();
        sorted.sort_by_key(|r| r[0].as_i64());
        assert_eq!(sorted, truth, "full load");
        assert!(deleted.is_empty());
        assert!(cursors.windows(2).all(|w| w[0] <= w[1]), "cursors never go back");
        // From c1 (before the flush): the rows changed since, current values, and the deletes.
        let (rows, deleted, _) =
            load(&mut ws, &format!("c1-{batch_size}"), sql, json!({"since": c1, "batch_size": batch_size})).await;
        let mut expected: Vec<i64> = (1..10).chain(20..25).chain(100..110).collect();
        expected.sort();
        assert_eq!(ids(&rows), expected, "changed rows since c1, each once");
        assert_eq!(ids(&deleted), (0..1).chain(10..20).chain(30..31).collect::<Vec<_>>(), "deletes since c1");
        for r in &rows {
            assert!(truth.contains(r), "row {r} is not the current version");
        }
        // From c2 (after the flush): only the hot changes.
        let (rows, deleted, _) =
            load(&mut ws, &format!("c2-{batch_size}"), sql, json!({"since": c2, "batch_size": batch_size})).await;
        assert_eq!(ids(&rows), (20..25).collect::<Vec<_>>());
        assert_eq!(ids(&deleted), vec![0, 30]);
        // The newest rows only.
        let (rows, _, _) =
            load(&mut ws, &format!("last{batch_size}"), sql, json!({"last_rows": 3, "batch_size": batch_size})).await;
        assert_eq!(ids(&rows), vec![22, 23, 24], "last_rows spans both tiers");
    }
    // Everything flushed: the same answers from the cold tier alone.
    assert_eq!(flush_and_wait(&s, "FLUSH TABLE app.items").await[1], "completed");
    let (rows, deleted, _) = load(&mut ws, "c1-cold", sql, json!({"since": c1, "batch_size": 5})).await;
    assert_eq!(ids(&rows).len(), 24);
    assert_eq!(deleted.len(), 12);
    let (rows, _, _) = load(&mut ws, "full-cold", sql, json!({})).await;
    assert_eq!(rows.len(), truth.len());
}

/// Random writes for three users, tracked in a model of acknowledged state:
/// `(user, id) -> qty` for live rows.
pub(crate) async fn random_writes(
    s: &TestServer,
    rng: &mut u64,
    model: &mut std::collections::BTreeMap<(usize, i64), i64>,
    n: usize,
) {
    let mut next = || {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    };
    for _ in 0..n {
        let u = (next() % 3) as usize;
        let auth = Auth::basic(&format!("w{u}"), &format!("w{u}-password"));
        let id = (next() % 40) as i64;
        let qty = (next() % 1000) as i64;
        match next() % 4 {
            0 | 1 => {
                let r =
                    s.sql(&auth, &format!("INSERT INTO app.items (id, name, qty) VALUES ({id}, 'n{id}', {qty})")).await;
                if r.status == 200 {
                    assert!(model.insert((u, id), qty).is_none(), "insert of an existing key succeeded: {u}/{id}");
                } else {
                    assert_eq!(r.code(), "DUPLICATE_KEY", "{}", r.body);
                    assert!(model.contains_key(&(u, id)), "insert of an absent key refused: {u}/{id}");
                }
            }
            2 => {
                let r = s.sql_ok(&auth, &format!("UPDATE app.items SET qty = {qty} WHERE id = {id}")).await;
                let expected = u64::from(model.contains_key(&(u, id)));
                assert_eq!(r.row_count(0), expected, "update of {u}/{id}");
                if let Some(v) = model.get_mut(&(u, id)) {
                    *v = qty;
                }
            }
            _ => {
                let r = s.sql_ok(&auth, &format!("DELETE FROM app.items WHERE id = {id}")).await;
                assert_eq!(r.row_count(0), u64::from(model.remove(&(u, id)).is_some()), "delete of {u}/{id}");
            }
        }
    }
}

pub(crate) async fn check_model(s: &TestServer, model: &std::collections::BTreeMap<(usize, i64), i64>, context: &str) {
    for u in 0..3 {
        let auth = Auth::basic(&format!("w{u}"), &format!("w{u}-password"));
        let r = s.sql_ok(&auth, "SELECT id, qty FROM app.items ORDER BY id").await;
        let expected: Vec<Value> =
            model.iter().filter(|((mu, _), _)| *mu == u).map(|((_, id), q)| json!([id, q])).collect();
        assert_eq!(r.rows(0), &expected, "{context}: user w{u} rows differ from the acknowledged writes");
        let r = s.sql_ok(&auth, "SELECT count(*) - count(DISTINCT id) FROM app.items").await;
        assert_eq!(r.rows(0), &vec![json!([0])], "{context}: duplicated rows");
    }
}

/// Every `batch-*.parquet` file on disk is listed by its directory's manifest.
pub(crate) fn assert_no_orphans(storage: &std::path::Path) {
    for scope in std::fs::read_dir(storage).into_iter().flatten().flatten() {
        let dir = scope.path();
        let manifest: Value = match std::fs::read(dir.join("manifest.json")) {
            Ok(b) => serde_json::from_slice(&b).unwrap(),
            Err(_) => json!({"files": []}),
        };
        let listed: Vec<&str> =
            manifest["files"].as_array().unwrap().iter().map(|f| f["file"].as_str().unwrap()).collect();
        for f in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().to_string();
            assert!(!name.ends_with(".tmp"), "temp file left: {}", f.path().display());
            if name != "manifest.json" {
                assert!(listed.contains(&name.as_str()), "orphan file {}", f.path().display());
            }
        }
    }
}

#[tokio::test]
async fn kill_9_at_each_flush_fault_point_loses_and_duplicates_nothing() {
    // More seeds: KALAMDB_FLUSH_CRASH_SEEDS=20 cargo test ... kill_9_at_each
    let seeds: u64 = std::env::var("KALAMDB_FLUSH_CRASH_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let points =
        ["flush:after_write", "flush:after_rename", "flush:after_manifest", "flush:mid_delete", "flush:after_delete"];
    for seed in 1..=seeds {
        for point in points {
            // Crash while flushing the first or a later partition.
            // `n*off->return`: pass n times, abort the next.
            let fault = match seed % 3 {
                0 => format!("{point}=return"),
                n => format!("{point}={n}*off->return"),
            };
            let mut s = TestServer::start_with_env(&[("FAILPOINTS", &fault)]).await;
            items_table(&s, "").await;
            for u in 0..3 {
                s.create_user(&format!("w{u}")).await;
            }
            let mut rng = seed * 7919 + 1;
            let mut model = std::collections::BTreeMap::new();
            random_writes(&s, &mut rng, &mut model, 120).await;
            let context = format!("seed {seed}, {fault}");
            // A first flush, then more writes over flushed rows, then the crashing flush
            // (the fault counts hits across both, so it strikes in either).
            let r = s.sql_ok(&Auth::root(), "FLUSH TABLE app.items").await;
            let job = r.rows(0)[0][0].as_str().unwrap().to_string();
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut crashed = false;
            while Instant::now() < deadline {
                if !s.is_running() {
                    crashed = true;
                    break;
                }
                // The server may die under this request: a failed request is not an error here.
                let body = json!({"sql": format!("SELECT status FROM system.jobs WHERE job_id = '{job}'")});
                let resp = s
                    .client
                    .post(format!("{}/v1/api/sql", s.base))
                    .basic_auth("root", Some(ROOT_PASSWORD))
                    .json(&body)
                    .send()
                    .await;
                if let Ok(r) = resp {
                    let v: Value = r.json().await.unwrap_or(Value::Null);
                    if v["results"][0]["rows"][0][0] == "completed" {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if !crashed {
                random_writes(&s, &mut rng, &mut model, 60).await;
                s.sql_ok(&Auth::root(), "FLUSH TABLE app.items").await;
                s.wait_for_fault(&context).await;
            }
            s.kill9();
            s.set_env(&[]);
            s.start_again();
            check_model(&s, &model, &context).await;
            assert_no_orphans(&s.data_dir().join("storage/app/items"));
            let r = s
                .sql_ok(&Auth::root(), "SELECT count(*) FROM system.jobs WHERE error = 'interrupted by restart'")
                .await;
            assert_eq!(r.rows(0), &vec![json!([1])], "{context}: the interrupted job is marked");
            // Life goes on: more writes, a clean flush, a restart.
            random_writes(&s, &mut rng, &mut model, 60).await;
            check_model(&s, &model, &context).await;
            assert_eq!(flush_and_wait(&s, "FLUSH TABLE app.items").await[1], "completed", "{context}");
            check_model(&s, &model, &context).await;
            s.restart();
            check_model(&s, &model, &context).await;
            assert_no_orphans(&s.data_dir().join("storage/app/items"));
        }
    }
}

#[tokio::test]
async fn no_acknowledged_write_is_lost_when_killed_during_flushes_under_load() {
    let mut s = TestServer::start().await;
    s.sql_ok(
        &Auth::root(),
        "CREATE NAMESPACE app; CREATE SHARED TABLE app.log (id BIGINT PRIMARY KEY, v INT) WITH (flush_policy = 'rows:150')",
    )
    .await;
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(i64, i64)>::new()));
    let mut tasks = vec![];
    for w in 0..3i64 {
        let (base, client, acked) = (s.base.clone(), s.client.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..100_000i64 {
                let id = w * 1_000_000 + i;
                // Every third write updates an earlier row, which may be cold by then.
                let (sql, params, row) = if i % 3 == 2 {
                    let target = id - 2;
                    ("UPDATE app.log SET v = $2 WHERE id = $1", json!([target, i]), (target, i))
                } else {
                    ("INSERT INTO app.log VALUES ($1, $2)", json!([id, 0]), (id, 0))
                };
                let resp = client
                    .post(format!("{base}/v1/api/sql"))
                    .basic_auth("root", Some(ROOT_PASSWORD))
                    .json(&json!({"sql": sql, "params": params}))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status() == 200 => acked.lock().unwrap().push(row),
                    _ => return,
                }
            }
        }));
    }
    let flusher = {
        let (base, client) = (s.base.clone(), s.client.clone());
        tokio::spawn(async move {
            loop {
                let _ = client
                    .post(format!("{base}/v1/api/sql"))
                    .basic_auth("root", Some(ROOT_PASSWORD))
                    .json(&json!({"sql": "FLUSH TABLE app.log"}))
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(2500)).await;
    s.kill9();
    flusher.abort();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(acked.len() > 100, "the load should have committed writes, got {}", acked.len());
    s.start_again();
    let r = s.sql_ok(&Auth::root(), "SELECT id, v FROM app.log").await;
    let rows: Vec<(i64, i64)> = r.rows(0).iter().map(|r| (r[0].as_i64().unwrap(), r[1].as_i64().unwrap())).collect();
    let present: std::collections::HashMap<i64, i64> = rows.iter().copied().collect();
    assert_eq!(present.len(), rows.len(), "a row is duplicated");
    // Acknowledged writes per id, in order: the last one is what the row must hold (an
    // unacknowledged later write may have landed too, so only ids whose last write is
    // acknowledged and followed by none in flight are exact; every acknowledged insert exists).
    let mut last: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
    for (id, v) in &acked {
        last.insert(*id, *v);
    }
    for (id, v) in &last {
        let got = present.get(id).unwrap_or_else(|| panic!("acknowledged row {id} lost"));
        // The update of a row is the writer's only later write to it; a writer stops at its
        // first unacknowledged request, so an acknowledged value is final unless that
        // request was this row's update.
        assert!(got == v || *v == 0, "row {id} holds {got}, its last acknowledged value is {v}");
    }
    let r = s.sql_ok(&Auth::root(), "SELECT count(*) FROM system.jobs WHERE rows > 0").await;
    assert!(r.rows(0)[0][0].as_i64().unwrap() > 0, "flushes ran during the load");
}

/// A DROP TABLE while a flush of the table is writing waits for it, then deletes every file:
/// nothing is left in the dropped table's directory, and a new table of the same name starts
/// empty.
#[tokio::test]
async fn drop_table_during_a_flush_leaves_no_file_behind() {
    // Flushes pause while holding the partition's lock, before writing.
    let s = TestServer::start_with_env(&[("FAILPOINTS", "flush:locked=sleep(700)")]).await;
    items_table(&s, "").await;
    let alice = s.create_user("alice").await;
    fill(&s, &alice, 0, 50, "a").await;
    let r = s.sql_ok(&Auth::root(), "FLUSH TABLE app.items").await;
    let job = r.rows(0)[0][0].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.sql_ok(&Auth::root(), "DROP TABLE app.items").await;
    let ended = wait_for_job(&s, &job).await;
    assert_eq!(ended[1], "completed", "the flush had started writing, so it finished first: {ended:?}");
    let dir = s.data_dir().join("storage/app/items");
    assert!(parquet_files(&dir).is_empty(), "files left after DROP TABLE: {:?}", parquet_files(&dir));
    assert!(!dir.exists(), "the table directory is gone");
    s.sql_ok(&Auth::root(), "CREATE USER TABLE app.items (id BIGINT PRIMARY KEY, name TEXT)").await;
    assert_eq!(s.sql_ok(&alice, "SELECT count(*) FROM app.items").await.rows(0), &vec![json!([0])]);
}

#[tokio::test]
async fn repeated_flush_statements_queue_one_job_per_table() {
    // Flushes pause while holding the partition's lock, so that the first one is still
    // running while the next statements arrive.
    let s = TestServer::start_with_env(&[("FAILPOINTS", "flush:locked=sleep(700)")]).await;
    items_table(&s, "").await;
    let alice = s.create_user("alice").await;
    fill(&s, &alice, 0, 50, "a").await;
    let flush = || async { s.sql_ok(&Auth::root(), "FLUSH TABLE app.items").await.rows(0)[0][0].clone() };
    let running = flush().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let queued = flush().await;
    assert_ne!(queued, running, "a flush after the running one starts is queued");
    for _ in 0..20 {
        assert_eq!(flush().await, queued, "later statements join the queued flush");
    }
    // Rows written meanwhile are flushed by the queued job.
    fill(&s, &alice, 50, 60, "b").await;
    for job in [&running, &queued] {
        assert_eq!(wait_for_job(&s, job.as_str().unwrap()).await[1], "completed");
    }
    // Two jobs in all, which together flushed every row.
    let jobs = s.sql_ok(&Auth::root(), "SELECT count(*), sum(rows) FROM system.jobs WHERE job_type = 'flush'").await;
    assert_eq!(jobs.rows(0)[0], json!([2, 60]));
    assert_eq!(s.sql_ok(&alice, "SELECT count(*) FROM app.items").await.rows(0)[0], json!([60]));
}

#[tokio::test]
async fn a_missing_parquet_file_fails_reads_at_once_with_an_internal_error() {
    let s = TestServer::start().await;
    let root = Auth::root();
    s.sql_ok(&root, "CREATE NAMESPACE app; CREATE SHARED TABLE app.t (id BIGINT PRIMARY KEY, v TEXT)").await;
    s.sql_ok(&root, "INSERT INTO app.t (id, v) VALUES (1, 'a'), (2, 'b')").await;
    flush_and_wait(&s, "FLUSH TABLE app.t").await;
    let storage = s.data_dir().join("storage");
    let files = parquet_files(&storage);
    assert_eq!(files.len(), 1, "{files:?}");
    std::fs::remove_file(storage.join(&files[0])).unwrap();
    let started = Instant::now();
    for sql in ["SELECT * FROM app.t", "SELECT v FROM app.t WHERE id = 1"] {
        s.sql_err(&root, sql, 500, "INTERNAL_ERROR").await;
    }
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}
