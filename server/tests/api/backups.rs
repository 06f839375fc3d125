//! BACKUP DATABASE / SHOW BACKUP / RESTORE DATABASE: a round trip through DROP NAMESPACE
//! returns identical query and catch-up results; corruption is detected before anything is
//! restored; only dba+ may run them.

use crate::common::*;
use crate::flush::{flush_and_wait, load, wait_for_job};
use serde_json::{Value, json};

const USER_CORPUS: &[&str] = &[
    "SELECT * FROM app.items ORDER BY id",
    "SELECT id, name, qty, _updated, _deleted FROM app.items ORDER BY id",
    "SELECT id, _updated FROM app.items WHERE _deleted = true ORDER BY id",
    "SELECT count(*), sum(qty), max(_updated) FROM app.items",
    "SELECT name FROM app.items WHERE id = 3",
    "SELECT id FROM app.items WHERE qty > 50 ORDER BY id",
];

const SHARED_CORPUS: &[&str] = &[
    "SELECT * FROM app.prices ORDER BY sku",
    "SELECT sku, price, _updated, _deleted FROM app.prices ORDER BY sku",
    "SELECT count(*) FROM app.prices",
];

async fn corpus(s: &TestServer, auth: &Auth, queries: &[&str]) -> Vec<Value> {
    let mut out = vec![];
    for q in queries {
        out.push(json!({"q": q, "rows": s.sql_ok(auth, q).await.rows(0).clone()}));
    }
    out
}

async fn fill(s: &TestServer, auth: &Auth, from: i64, to: i64, tag: &str) {
    let values: Vec<String> = (from..to).map(|i| format!("({i}, 'item-{i}-{tag}', {})", (i * 7) % 100)).collect();
    s.sql_ok(auth, &format!("INSERT INTO app.items (id, name, qty) VALUES {}", values.join(", "))).await;
}

/// Runs BACKUP or RESTORE and waits for its job; returns `[job_id, status, rows, files, error]`.
async fn run_job(s: &TestServer, sql: &str) -> Vec<Value> {
    let r = s.sql_ok(&Auth::root(), sql).await;
    let job_id = r.rows(0)[0][0].as_str().expect("job id").to_string();
    wait_for_job(s, &job_id).await
}

/// Everything the test compares before the backup and after the restore.
async fn observe(s: &TestServer, users: &[(&str, &Auth)], since: i64) -> Vec<Value> {
    let mut out = vec![];
    for (name, auth) in users {
        out.push(json!(corpus(s, auth, USER_CORPUS).await));
        let mut ws = WsClient::connect_as(s, name, &format!("{name}-password")).await;
        let (mut rows, ..) = load(&mut ws, "all", "SELECT id, name, qty FROM app.items", json!({})).await;
        rows.sort_by_key(|r| r[0].as_i64());
        let (mut changed, mut deleted, _) =
            load(&mut ws, "since", "SELECT id, name FROM app.items", json!({"since": since})).await;
        changed.sort_by_key(|r| r[0].as_i64());
        deleted.sort_by_key(|d| d.as_i64());
        out.push(json!({"catch_up": rows, "changed": changed, "deleted": deleted}));
    }
    out.push(json!(corpus(s, &Auth::root(), SHARED_CORPUS).await));
    out
}

#[tokio::test]
async fn backup_then_restore_after_drop_returns_identical_results() {
    let s = TestServer::start().await;
    let root = Auth::root();
    s.sql_ok(
        &root,
        "CREATE NAMESPACE app; \
         CREATE USER TABLE app.items (id BIGINT PRIMARY KEY, name TEXT, qty INT) WITH (flush_policy = 'rows:100000'); \
         CREATE SHARED TABLE app.prices (sku TEXT PRIMARY KEY, price DOUBLE) WITH (access_level = 'public'); \
         CREATE STREAM TABLE app.events (id BIGINT PRIMARY KEY, kind TEXT) WITH (ttl_seconds = 60)",
    )
    .await;
    s.sql_ok(&root, "ALTER NAMESPACE app SET OPTIONS (owner = 'team-a')").await;
    let (alice, bob) = (s.create_user("alice").await, s.create_user("bob").await);
    for (auth, tag) in [(&alice, "a"), (&bob, "b")] {
        fill(&s, auth, 0, 40, tag).await;
        s.sql_ok(auth, "DELETE FROM app.items WHERE id % 9 = 4").await;
    }
    s.sql_ok(&root, "INSERT INTO app.prices (sku, price) VALUES ('a', 1.5), ('b', 2.5), ('c', 3.5)").await;
    // Part of the data cold, part hot, some hot versions superseding cold ones.
    assert_eq!(flush_and_wait(&s, "FLUSH ALL TABLES IN app").await[1], "completed");
    // A cursor between the two rounds of writes: catch-up from it is compared too.
    let since = {
        let mut ws = WsClient::connect_as(&s, "alice", "alice-password").await;
        let (_, _, cursors) = load(&mut ws, "now", "SELECT id FROM app.items WHERE id < 0", json!({})).await;
        *cursors.last().unwrap()
    };
    for (auth, tag) in [(&alice, "a2"), (&bob, "b2")] {
        fill(&s, auth, 40, 55, tag).await;
        s.sql_ok(auth, "UPDATE app.items SET qty = qty + 1, name = 'updated' WHERE id % 4 = 0").await;
        s.sql_ok(auth, "DELETE FROM app.items WHERE id IN (1, 41)").await;
    }
    s.sql_ok(&root, "UPDATE app.prices SET price = 9.5 WHERE sku = 'a'; DELETE FROM app.prices WHERE sku = 'b'").await;
    let users = [("alice", &alice), ("bob", &bob)];
    let before = observe(&s, &users, since).await;
    assert!(!before[0][2]["rows"].as_array().unwrap().is_empty(), "tombstones are in the corpus");
    assert!(
        !before[1]["changed"].as_array().unwrap().is_empty() && !before[1]["deleted"].as_array().unwrap().is_empty()
    );

    let job = run_job(&s, "BACKUP DATABASE app TO 'nightly'").await;
    assert_eq!(job[1], "completed", "{job:?}");
    assert!(job[3].as_i64().unwrap() >= 4, "cold and hot files of 3 partitions: {job:?}");
    let dir = s.data_dir().join("backups/nightly");
    assert!(dir.join("backup.json").exists());
    let shown = s.sql_ok(&root, "SHOW BACKUP 'nightly'").await;
    let row = &shown.rows(0)[0];
    assert_eq!(row[0], "app");
    assert_eq!(row[1], "events, items, prices");
    assert_eq!(row[2], 3);
    assert_eq!(row[3], job[3], "the manifest lists the files the job wrote");
    assert!(row[4].as_i64().unwrap() > 0);
    assert_eq!(row[6], true, "{row:?}");
    assert_eq!(row[7], Value::Null);
    // An absolute path works the same.
    let abs = s.sql_ok(&root, &format!("SHOW BACKUP '{}'", dir.display())).await;
    assert_eq!(abs.rows(0)[0][6], true);
    s.sql_err(&root, "BACKUP DATABASE app TO 'nightly'", 409, "ALREADY_EXISTS").await;
    s.sql_err(&root, "BACKUP DATABASE nope TO 'other'", 404, "NAMESPACE_NOT_FOUND").await;
    s.sql_err(&root, "BACKUP DATABASE app TO '../escape'", 400, "VALIDATION_ERROR").await;
    s.sql_err(&root, "RESTORE DATABASE app FROM 'nightly'", 409, "ALREADY_EXISTS").await;
    s.sql_err(&root, "RESTORE DATABASE other FROM 'missing'", 400, "VALIDATION_ERROR").await;
    for role in ["user", "service"] {
        let auth = s.create_user_with_role(&format!("{role}1"), role).await;
        s.sql_err(&auth, "BACKUP DATABASE app TO 'mine'", 403, "FORBIDDEN").await;
        s.sql_err(&auth, "SHOW BACKUP 'nightly'", 403, "FORBIDDEN").await;
        s.sql_err(&auth, "RESTORE DATABASE other FROM 'nightly'", 403, "FORBIDDEN").await;
    }

    s.sql_ok(&root, "DROP NAMESPACE app CASCADE").await;
    let job = run_job(&s, "RESTORE DATABASE app FROM 'nightly'").await;
    assert_eq!(job[1], "completed", "{job:?}");
    let after = observe(&s, &users, since).await;
    assert_eq!(after, before, "restored data reads the same through SQL and catch-up");
    let r = s.sql_ok(&root, "SELECT options FROM system.namespaces WHERE name = 'app'").await;
    assert!(r.rows(0)[0][0].to_string().contains("team-a"), "{}", r.body);
    let r = s
        .sql_ok(&root, "SELECT table_name, table_type FROM system.tables WHERE namespace = 'app' ORDER BY table_name")
        .await;
    assert_eq!(r.rows(0).len(), 3, "{:?}", r.rows(0));
    s.sql_ok(&alice, "INSERT INTO app.events (id, kind) VALUES (1, 'x')").await;

    // New writes after the restore are newer than every restored version.
    let max_before = s.sql_ok(&alice, "SELECT max(_updated) FROM app.items").await.rows(0)[0][0].clone();
    s.sql_ok(&alice, "UPDATE app.items SET name = 'after' WHERE id = 3").await;
    let r = s.sql_ok(&alice, "SELECT name, _updated FROM app.items WHERE id = 3").await;
    assert_eq!(r.rows(0)[0][0], "after");
    assert!(r.rows(0)[0][1].as_str().unwrap() > max_before.as_str().unwrap());
    assert_eq!(flush_and_wait(&s, "FLUSH TABLE app.items").await[1], "completed");
    let r = s.sql_ok(&alice, "SELECT name FROM app.items WHERE id = 3").await;
    assert_eq!(r.rows(0), &vec![json!(["after"])]);

    // Corruption: one flipped byte in one file is reported and blocks the restore.
    let corrupt = s.data_dir().join("backups/corrupt");
    copy_dir(&dir, &corrupt);
    let manifest: Value = serde_json::from_slice(&std::fs::read(corrupt.join("backup.json")).unwrap()).unwrap();
    let victim = manifest["files"][0]["path"].as_str().unwrap().to_string();
    let mut bytes = std::fs::read(corrupt.join(&victim)).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(corrupt.join(&victim), bytes).unwrap();
    let shown = s.sql_ok(&root, "SHOW BACKUP 'corrupt'").await;
    assert_eq!(shown.rows(0)[0][6], false);
    assert!(shown.rows(0)[0][7].as_str().unwrap().contains(&victim), "{}", shown.body);
    let job = run_job(&s, "RESTORE DATABASE copy FROM 'corrupt'").await;
    assert_eq!(job[1], "failed", "{job:?}");
    assert!(job[4].as_str().unwrap().contains("is corrupt"), "{job:?}");
    s.sql_err(&root, "SHOW TABLES IN copy", 404, "NAMESPACE_NOT_FOUND").await;
    // An altered manifest (a listed checksum replaced to hide the flipped byte) is refused by
    // its own checksum, before any listed file is trusted.
    let mut altered: Value = manifest.clone();
    altered["files"][0]["sha256"] = json!(sha256_of(&std::fs::read(corrupt.join(&victim)).unwrap()));
    std::fs::write(corrupt.join("backup.json"), serde_json::to_vec_pretty(&altered).unwrap()).unwrap();
    let r = s.sql_err(&root, "SHOW BACKUP 'corrupt'", 400, "VALIDATION_ERROR").await;
    assert!(r.body["error"]["message"].as_str().unwrap().contains("backup.json.sha256"), "{}", r.body);
    s.sql_err(&root, "RESTORE DATABASE copy FROM 'corrupt'", 400, "VALIDATION_ERROR").await;
    std::fs::remove_file(corrupt.join("backup.json.sha256")).unwrap();
    s.sql_err(&root, "SHOW BACKUP 'corrupt'", 400, "VALIDATION_ERROR").await;
    // The intact backup restores under another name next to the original.
    assert_eq!(run_job(&s, "RESTORE DATABASE copy FROM 'nightly'").await[1], "completed");
    let r = s.sql_ok(&bob, "SELECT count(*) FROM copy.items").await;
    let original = s.sql_ok(&bob, "SELECT count(*) FROM app.items").await;
    assert_eq!(r.rows(0), original.rows(0));
}

fn sha256_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A backup taken while inserts and flushes run holds exactly the rows committed up to its
/// watermark: none lost, none duplicated, whichever tier each was in.
#[tokio::test]
async fn a_backup_during_writes_and_flushes_is_one_consistent_state() {
    let s = std::sync::Arc::new(TestServer::start().await);
    let root = Auth::root();
    s.sql_ok(
        &root,
        "CREATE NAMESPACE app; \
         CREATE USER TABLE app.items (id BIGINT PRIMARY KEY, name TEXT, qty INT) WITH (flush_policy = 'rows:40')",
    )
    .await;
    let alice = s.create_user("alice").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (s2, alice, stop) = (s.clone(), alice.clone(), stop.clone());
        tokio::spawn(async move {
            let mut next = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let values: Vec<String> = (next..next + 10).map(|i| format!("({i}, 'n{i}', {})", i % 7)).collect();
                s2.sql_ok(&alice, &format!("INSERT INTO app.items (id, name, qty) VALUES {}", values.join(", "))).await;
                next += 10;
            }
            next
        })
    };
    let flusher = {
        let (s2, stop) = (s.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                s2.sql_ok(&Auth::root(), "FLUSH TABLE app.items").await;
                tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let job = run_job(&s, "BACKUP DATABASE app TO 'during'").await;
    assert_eq!(job[1], "completed", "{job:?}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = writer.await.unwrap();
    flusher.await.unwrap();

    let manifest: Value =
        serde_json::from_slice(&std::fs::read(s.data_dir().join("backups/during/backup.json")).unwrap()).unwrap();
    let watermark = manifest["watermark"].as_i64().unwrap();
    assert!(manifest["files"].as_array().unwrap().len() >= 2, "cold files and hot rows: {}", manifest["files"]);
    assert_eq!(run_job(&s, "RESTORE DATABASE copy FROM 'during'").await[1], "completed");
    let query = |ns: &str| format!("SELECT id, CAST(_updated AS BIGINT) FROM {ns}.items ORDER BY id");
    let original = s.sql_ok(&alice, &query("app")).await.rows(0).clone();
    assert_eq!(original.len() as i64, written, "every insert is acknowledged and readable");
    let expected: Vec<Value> = original.into_iter().filter(|r| r[1].as_i64().unwrap() <= watermark).collect();
    let restored = s.sql_ok(&alice, &query("copy")).await.rows(0).clone();
    assert!(!expected.is_empty() && (expected.len() as i64) < written, "the backup was taken mid-way");
    assert_eq!(restored, expected, "the backup holds exactly the rows committed up to its watermark");
}
