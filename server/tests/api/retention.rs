//! Tombstone retention and compaction: expired tombstones leave both tiers, old cursors get
//! a reset, compactions racing reads, writes and flushes lose nothing, and kill -9 during a
//! compaction leaves no orphan and loses nothing. The servers run with `KALAMDB_HOUR_MS`,
//! so that `deleted_retention_hours = 1` lasts seconds, and check for due partitions every
//! second.

use crate::common::*;
use crate::flush::{
    assert_no_orphans, check_model, cursor_now, fill, flush_and_wait, ids, items_table, parquet_files, random_writes,
};
use kalamdb_client_core::protocol::ws::ServerMessage;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const EVERY_SECOND: (&str, &str) = ("KALAMDB_CLEANUP_INTERVAL_SECS", "1");
const RETAINED: &str = "WITH (deleted_retention_hours = 1, flush_policy = 'rows:1000000')";

/// Subscribes with `since` and collects the load: (rows, deleted keys, whether it was a reset).
async fn load_since(ws: &mut WsClient, id: &str, sql: &str, since: i64) -> (Vec<Value>, Vec<Value>, bool) {
    ws.send_json(json!({"type": "subscribe", "id": id, "sql": sql, "since": since})).await;
    assert!(matches!(ws.recv().await, ServerMessage::Subscribed { .. }));
    let (mut rows, mut deleted, mut reset_seen) = (vec![], vec![], false);
    let mut first = true;
    loop {
        match ws.recv().await {
            ServerMessage::Batch { rows: r, deleted: d, last, reset, .. } => {
                assert!(first || !reset, "only the first batch may be a reset");
                reset_seen |= reset;
                first = false;
                rows.extend(r.into_iter().map(Value::Array));
                deleted.extend(d);
                if last {
                    return (rows, deleted, reset_seen);
                }
            }
            other => panic!("expected a batch, got {other:?}"),
        }
    }
}

/// Waits (bounded) until `done` holds for the server's answers.
async fn wait_until<F, Fut>(what: &str, secs: u64, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (bounded) until a cleanup job has completed having removed row versions.
async fn wait_for_cleanup_that_removed_rows(s: &TestServer) {
    wait_until("a completed cleanup that removed rows", 60, || async {
        let r = s
            .sql_ok(
                &Auth::root(),
                "SELECT count(*) FROM system.jobs WHERE job_type = 'cleanup' AND status = 'completed' AND rows > 0",
            )
            .await;
        r.rows(0)[0][0].as_i64().unwrap() > 0
    })
    .await;
}

/// The parsed manifest of one partition (`scope`: a user id) of `app.items`.
fn manifest_of(s: &TestServer, scope: &str) -> Value {
    let path = s.data_dir().join(format!("storage/app/items/{scope}/manifest.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

async fn tombstones(s: &TestServer, auth: &Auth) -> Value {
    s.sql_ok(auth, "SELECT count(*) FROM app.items WHERE _deleted = true").await.rows(0)[0][0].clone()
}

#[tokio::test]
async fn expired_tombstones_leave_both_tiers_and_older_cursors_reset() {
    let mut s = TestServer::start_with_env(&[("KALAMDB_HOUR_MS", "4000"), EVERY_SECOND]).await;
    items_table(&s, RETAINED).await;
    let alice = s.create_user("alice").await;
    let bob = s.create_user("bob").await;
    fill(&s, &alice, 0, 60, "a").await;
    fill(&s, &bob, 0, 10, "b").await;
    let mut ws = WsClient::connect_as(&s, "alice", "alice-password").await;
    let before_deletes = cursor_now(&mut ws, "c0").await;
    assert_eq!(flush_and_wait(&s, "FLUSH TABLE app.items").await[1], "completed");
    // Cold tombstones, hot tombstones, and hot updates of flushed rows.
    s.sql_ok(&alice, "DELETE FROM app.items WHERE id < 20").await;
    assert_eq!(flush_and_wait(&s, "FLUSH TABLE app.items").await[1], "completed");
    s.sql_ok(&alice, "DELETE FROM app.items WHERE id >= 20 AND id < 30").await;
    s.sql_ok(&alice, "UPDATE app.items SET qty = 999 WHERE id >= 30 AND id < 40").await;
    s.sql_ok(&bob, "DELETE FROM app.items WHERE id = 9").await;
    assert_eq!(tombstones(&s, &alice).await, json!(30));
    let expected: Vec<Value> = (30..60).map(|i| json!([i, if i < 40 { 999 } else { (i * 7) % 100 }])).collect();

    // The cleanup job flushes the old hot rows, then purges every expired tombstone.
    wait_until("the tombstones to be purged", 60, || async {
        tombstones(&s, &alice).await == json!(0) && tombstones(&s, &bob).await == json!(0)
    })
    .await;
    let r = s.sql_ok(&alice, "SELECT id, qty FROM app.items ORDER BY id").await;
    assert_eq!(r.rows(0), &expected, "no live row is lost");
    let r = s.sql_ok(&bob, "SELECT id FROM app.items ORDER BY id").await;
    assert_eq!(r.rows(0), &(0..9).map(|i| json!([i])).collect::<Vec<_>>());
    let r = s
        .sql_ok(
            &Auth::root(),
            "SELECT status, namespace, table_name, trigger FROM system.jobs WHERE job_type = 'cleanup' AND rows > 0",
        )
        .await;
    assert!(!r.rows(0).is_empty(), "a cleanup job with rows removed is listed: {}", r.body);
    assert!(r.rows(0).iter().all(|j| j == &json!(["completed", "app", "items", "policy"])), "{}", r.body);
    // One file per partition is left once the replaced files are swept.
    let scope_of = |f: &String| f.split('/').next().unwrap().to_string();
    wait_until("the replaced files to be deleted", 30, || async {
        let files = parquet_files(&s.data_dir().join("storage/app/items"));
        let mut scopes: Vec<String> = files.iter().map(scope_of).collect();
        scopes.dedup();
        files.len() == 2 && scopes.len() == 2
    })
    .await;
    let alice_scope =
        s.sql_ok(&Auth::root(), "SELECT user_id FROM system.users WHERE username = 'alice'").await.rows(0)[0][0]
            .to_string()
            .trim_matches('"')
            .to_string();
    let m = manifest_of(&s, &alice_scope);
    assert_eq!(m["files"][0]["tombstones"], json!(0));
    assert_eq!(m["files"][0]["rows"], json!(30));
    assert!(m["obsolete"].is_null(), "nothing left to delete: {m}");
    let purged_through = m["purged_through"].as_i64().unwrap();
    assert!(purged_through > before_deletes, "{m}");
    assert_no_orphans(&s.data_dir().join("storage/app/items"));

    // A purged key is free again, and a cursor from after the purge catches up incrementally.
    let mut ws = WsClient::connect_as(&s, "alice", "alice-password").await;
    let after_purge = cursor_now(&mut ws, "c1").await;
    s.sql_ok(&alice, "INSERT INTO app.items (id, name, qty) VALUES (5, 'again', 1)").await;
    let (rows, deleted, reset) = load_since(&mut ws, "inc", "SELECT id FROM app.items", after_purge).await;
    assert!(!reset);
    assert_eq!((ids(&rows), deleted), (vec![5], vec![]));

    // A cursor from before the deletes cannot learn of them: it is reset to the full state,
    // also after a restart under a longer retention (the purge horizon is kept).
    let full: Vec<i64> = std::iter::once(5).chain(30..60).collect();
    let (rows, _, reset) = load_since(&mut ws, "old", "SELECT id FROM app.items", before_deletes).await;
    assert!(reset, "a cursor older than the purge is reset");
    assert_eq!(ids(&rows), full);
    s.set_env(&[("KALAMDB_HOUR_MS", "3600000"), EVERY_SECOND]);
    s.restart();
    let mut ws = WsClient::connect_as(&s, "alice", "alice-password").await;
    let (rows, _, reset) = load_since(&mut ws, "old", "SELECT id FROM app.items", before_deletes).await;
    assert!(reset, "a cursor older than the purge is reset even within the retention");
    assert_eq!(ids(&rows), full);
    let (rows, _, reset) = load_since(&mut ws, "new", "SELECT id FROM app.items", after_purge).await;
    assert!(!reset);
    assert_eq!(ids(&rows), vec![5]);
    assert_eq!(tombstones(&s, &alice).await, json!(0));
}

#[tokio::test]
async fn compactions_racing_reads_writes_and_flushes_lose_nothing() {
    // Scans pause between listing the files and reading them, so that compactions land in
    // between: the files they replace must stay readable.
    let env = [("KALAMDB_HOUR_MS", "2500"), EVERY_SECOND, ("FAILPOINTS", "scan:after_listing=sleep(100)")];
    let mut s = TestServer::start_with_env(&env).await;
    items_table(&s, RETAINED).await;
    for u in 0..3 {
        s.create_user(&format!("w{u}")).await;
    }
    let mut rng = 4242u64;
    let mut model = std::collections::BTreeMap::new();
    // Readers run all along; a read that fails (e.g. on a file a compaction deleted) or
    // shows a key twice fails the test.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (stop, base, client) = (stop.clone(), s.base.clone(), s.client.clone());
        tokio::spawn(async move {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for u in 0..3 {
                    let body = json!({"sql": "SELECT count(*) - count(DISTINCT id), count(*) FROM app.items"});
                    let r = client
                        .post(format!("{base}/v1/api/sql"))
                        .basic_auth(format!("w{u}"), Some(format!("w{u}-password")))
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    let status = r.status();
                    let v: Value = r.json().await.unwrap();
                    assert_eq!(status, 200, "read failed during compactions: {v}");
                    assert_eq!(v["results"][0]["rows"][0][0], json!(0), "a key read twice: {v}");
                    reads += 1;
                }
            }
            reads
        })
    };
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut rounds = 0;
    while Instant::now() < deadline {
        random_writes(&s, &mut rng, &mut model, 40).await;
        s.sql_ok(&Auth::root(), "FLUSH TABLE app.items").await;
        rounds += 1;
        // A scan that a flush overtakes starts again: leave the 100 ms scans windows without
        // a flush, or they would retry for as long as this loop flushes.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let reads = reader.await.unwrap();
    assert!(reads > 10, "the readers ran ({reads} reads)");
    let r = s.sql_ok(&Auth::root(), "SELECT count(*) FROM system.jobs WHERE job_type = 'cleanup' AND files > 0").await;
    assert!(r.rows(0)[0][0].as_i64().unwrap() >= 2, "compactions ran among the reads: {}", r.body);
    check_model(&s, &model, &format!("after {rounds} rounds")).await;
    wait_for_cleanup_that_removed_rows(&s).await;
    let failed = s.sql_ok(&Auth::root(), "SELECT job_id, error FROM system.jobs WHERE status = 'failed'").await;
    assert!(failed.rows(0).is_empty(), "no job failed: {}", failed.body);
    check_model(&s, &model, "after the cleanups").await;
    // A full load over the compacted tiers matches too.
    let mut ws = WsClient::connect_as(&s, "w1", "w1-password").await;
    let (rows, _, _) = crate::flush::load(&mut ws, "all", "SELECT id FROM app.items", json!({})).await;
    let expected: Vec<i64> = model.keys().filter(|(u, _)| *u == 1).map(|(_, id)| *id).collect();
    assert_eq!(ids(&rows), expected);
    s.restart();
    check_model(&s, &model, "after a restart").await;
}

#[tokio::test]
async fn kill_9_during_a_compaction_loses_nothing_and_leaves_no_file_behind() {
    // Long enough for the writes and flushes below to finish before the first compaction.
    const HOUR_MS: &str = "6000";
    for point in ["cleanup:after_write=return", "cleanup:after_manifest=return"] {
        let mut s =
            TestServer::start_with_env(&[("FAILPOINTS", point), ("KALAMDB_HOUR_MS", HOUR_MS), EVERY_SECOND]).await;
        items_table(&s, RETAINED).await;
        for u in 0..3 {
            s.create_user(&format!("w{u}")).await;
        }
        let mut rng = 77u64;
        let mut model = std::collections::BTreeMap::new();
        random_writes(&s, &mut rng, &mut model, 150).await;
        flush_and_wait(&s, "FLUSH TABLE app.items").await;
        random_writes(&s, &mut rng, &mut model, 150).await;
        flush_and_wait(&s, "FLUSH TABLE app.items").await;
        // The first compaction (once the tombstones expire) crashes the server.
        s.wait_for_fault(point).await;
        s.kill9();
        // Restarted with real hours: recovery alone must clean up.
        s.set_env(&[]);
        s.start_again();
        let context = format!("killed at {point}");
        check_model(&s, &model, &context).await;
        assert_no_orphans(&s.data_dir().join("storage/app/items"));
        // Then compactions run again, and finish.
        s.set_env(&[("KALAMDB_HOUR_MS", HOUR_MS), EVERY_SECOND]);
        s.restart();
        wait_for_cleanup_that_removed_rows(&s).await;
        check_model(&s, &model, &context).await;
        wait_until("the replaced files to be deleted", 30, || async {
            std::fs::read_dir(s.data_dir().join("storage/app/items")).unwrap().flatten().all(|d| {
                let m: Value = serde_json::from_slice(&std::fs::read(d.path().join("manifest.json")).unwrap()).unwrap();
                m["obsolete"].is_null()
            })
        })
        .await;
        assert_no_orphans(&s.data_dir().join("storage/app/items"));
    }
}
