//! Storages: CREATE / DROP / SHOW STORAGES, `system.storages`, tables whose cold files live
//! in a filesystem storage at a custom path or in S3 (a local `moto_server`).

use crate::common::*;
use crate::flush::{flush_and_wait, load};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `batch-*.parquet` and `manifest.json` files under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = vec![];
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if e.path().is_dir() {
            out.extend(files_under(&e.path()).into_iter().map(|f| format!("{name}/{f}")));
        } else {
            out.push(name);
        }
    }
    out.sort();
    out
}

async fn user_id(s: &TestServer, name: &str) -> String {
    let r = s.sql_ok(&Auth::root(), &format!("SELECT user_id FROM system.users WHERE username = '{name}'")).await;
    r.rows(0)[0][0].as_str().unwrap().to_string()
}

const CORPUS: &[&str] = &[
    "SELECT * FROM app.items ORDER BY id",
    "SELECT id, _updated, _deleted FROM app.items ORDER BY id",
    "SELECT count(*), sum(qty) FROM app.items",
    "SELECT name FROM app.items WHERE id = 3",
    "SELECT id FROM app.items WHERE qty > 20 ORDER BY id",
];

async fn corpus(s: &TestServer, auth: &Auth) -> Vec<Value> {
    let mut out = vec![];
    for q in CORPUS {
        out.push(json!({"q": q, "rows": s.sql_ok(auth, q).await.rows(0).clone()}));
    }
    out
}

async fn fill(s: &TestServer, auth: &Auth, tag: &str) {
    let values: Vec<String> = (0..20).map(|i| format!("({i}, 'item-{i}-{tag}', {})", (i * 7) % 40)).collect();
    s.sql_ok(auth, &format!("INSERT INTO app.items (id, name, qty) VALUES {}", values.join(", "))).await;
    s.sql_ok(auth, "UPDATE app.items SET qty = qty + 100 WHERE id % 5 = 0").await;
    s.sql_ok(auth, "DELETE FROM app.items WHERE id = 7").await;
}

#[tokio::test]
async fn filesystem_storage_keeps_files_at_its_path_across_restarts() {
    let mut s = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cold");
    s.sql_ok(&Auth::root(), &format!("CREATE STORAGE archive TYPE 'filesystem' PATH '{}'", path.display())).await;
    let shown = s.sql_ok(&Auth::root(), "SHOW STORAGES").await;
    let ids: Vec<&str> = shown.rows(0).iter().map(|r| r[0].as_str().unwrap()).collect();
    assert_eq!(ids, ["local", "archive"]);
    assert_eq!(shown.rows(0)[1][1], "filesystem");
    assert_eq!(shown.rows(0)[1][2], path.display().to_string());

    s.sql_ok(
        &Auth::root(),
        "CREATE NAMESPACE app; CREATE TABLE app.items (id BIGINT PRIMARY KEY, name TEXT, qty INT) WITH (storage = 'archive')",
    )
    .await;
    let alice = s.create_user("alice").await;
    fill(&s, &alice, "a").await;
    let before = corpus(&s, &alice).await;
    let job = flush_and_wait(&s, "FLUSH TABLE app.items").await;
    assert_eq!(job[1], "completed", "{job:?}");
    let uid = user_id(&s, "alice").await;
    assert_eq!(
        files_under(&path),
        [format!("app/items/{uid}/batch-1.parquet"), format!("app/items/{uid}/manifest.json")]
    );
    assert!(files_under(&s.data_dir().join("storage")).is_empty(), "nothing goes to the local storage");
    assert_eq!(corpus(&s, &alice).await, before);

    s.restart();
    assert_eq!(corpus(&s, &alice).await, before, "the storage is reopened after a restart");
    s.sql_ok(&alice, "UPDATE app.items SET name = 'renamed' WHERE id = 3").await;
    let r = s.sql_ok(&alice, "SELECT name FROM app.items WHERE id = 3").await;
    assert_eq!(r.rows(0), &vec![json!(["renamed"])]);

    let r = s.sql_ok(&Auth::root(), "SELECT storage_id, table_count FROM system.storages ORDER BY storage_id").await;
    assert_eq!(r.rows(0), &vec![json!(["archive", 1]), json!(["local", 0])]);
    let r = s.sql_err(&Auth::root(), "DROP STORAGE archive", 409, "IN_USE").await;
    assert!(r.body["error"]["message"].as_str().unwrap().contains("app.items"), "{}", r.body);
    s.sql_ok(&Auth::root(), "DROP TABLE app.items").await;
    assert!(files_under(&path.join("app")).is_empty(), "DROP TABLE removes the files: {:?}", files_under(&path));
    s.sql_ok(&Auth::root(), "DROP STORAGE archive").await;
    let shown = s.sql_ok(&Auth::root(), "SHOW STORAGES").await;
    assert_eq!(shown.row_count(0), 1);
}

#[tokio::test]
async fn storage_statements_are_checked() {
    let s = TestServer::start().await;
    let root = Auth::root();
    let dir = tempfile::tempdir().unwrap();
    let create = format!("CREATE STORAGE archive TYPE 'filesystem' PATH '{}'", dir.path().display());
    s.sql_ok(&root, &create).await;
    s.sql_err(&root, &create, 409, "ALREADY_EXISTS").await;
    s.sql_ok(&root, &create.replace("STORAGE archive", "STORAGE IF NOT EXISTS archive")).await;
    s.sql_err(&root, "CREATE STORAGE local TYPE 'filesystem' PATH '/tmp/x'", 409, "ALREADY_EXISTS").await;
    let r = s.sql_err(&root, "CREATE STORAGE x TYPE 'ftp' PATH '/tmp/x'", 400, "VALIDATION_ERROR").await;
    assert!(r.body["error"]["message"].as_str().unwrap().contains("unknown storage type 'ftp'"), "{}", r.body);
    s.sql_err(&root, "CREATE STORAGE x TYPE 'filesystem' PATH 'relative/dir'", 400, "VALIDATION_ERROR").await;
    s.sql_err(&root, "CREATE STORAGE x TYPE 'filesystem' BUCKET 'b'", 400, "VALIDATION_ERROR").await;
    s.sql_err(&root, "CREATE STORAGE x TYPE 's3' REGION 'eu-west-1'", 400, "VALIDATION_ERROR").await;
    s.sql_err(&root, "CREATE STORAGE x TYPE 's3' BUCKET 'b' ACCESS_KEY_ID 'k'", 400, "VALIDATION_ERROR").await;
    s.sql_err(&root, "CREATE STORAGE x TYPE 's3' BUCKET 'b' ENDPOINT 'localhost:9000'", 400, "VALIDATION_ERROR").await;
    s.sql_err(&root, "CREATE STORAGE x TYPE", 400, "PARSE_ERROR").await;
    s.sql_err(&root, "DROP STORAGE local", 400, "VALIDATION_ERROR").await;
    s.sql_err(&root, "DROP STORAGE nope", 400, "VALIDATION_ERROR").await;
    s.sql_ok(&root, "DROP STORAGE IF EXISTS nope").await;

    s.sql_ok(&root, "CREATE NAMESPACE app").await;
    let r = s
        .sql_err(&root, "CREATE TABLE app.t (id INT PRIMARY KEY) WITH (storage = 'nowhere')", 400, "VALIDATION_ERROR")
        .await;
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("storage 'nowhere' does not exist (available: local, archive)"), "{message}");

    for role in ["user", "service"] {
        let auth = s.create_user_with_role(&format!("{role}1"), role).await;
        s.sql_err(&auth, "CREATE STORAGE y TYPE 'filesystem' PATH '/tmp/y'", 403, "FORBIDDEN").await;
        s.sql_err(&auth, "DROP STORAGE archive", 403, "FORBIDDEN").await;
        s.sql_err(&auth, "SHOW STORAGES", 403, "FORBIDDEN").await;
        s.sql_err(&auth, "SELECT * FROM system.storages", 403, "FORBIDDEN").await;
    }
    let dba = s.create_user_with_role("dba1", "dba").await;
    s.sql_ok(&dba, "DROP STORAGE archive").await;
}

/// A `moto_server` on an ephemeral port, killed on drop.
pub(crate) struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_binary() -> PathBuf {
    let venv = std::env::var_os("KALAMDB_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/kalamdb-venv"));
    venv.join("bin/moto_server")
}

impl Moto {
    /// Starts moto, or returns `None` (after a loud message) when it is not installed.
    pub(crate) async fn start() -> Option<Moto> {
        let bin = moto_binary();
        if !bin.exists() {
            eprintln!(
                "\n*** SKIPPED: {} not found; run scripts/prerequisites.sh to install moto and test S3 storages ***\n",
                bin.display()
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if client.get(&moto.endpoint).send().await.is_ok() {
                return Some(moto);
            }
            assert!(Instant::now() < deadline, "moto_server did not answer within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn create_bucket(&self, bucket: &str) {
        let r = reqwest::Client::new().put(format!("{}/{bucket}", self.endpoint)).send().await.unwrap();
        assert!(r.status().is_success(), "create bucket: {}", r.status());
    }

    /// Puts an object into `bucket` (unsigned; moto allows it).
    pub(crate) async fn put(&self, bucket: &str, key: &str, body: &'static [u8]) {
        let r =
            reqwest::Client::new().put(format!("{}/{bucket}/{key}", self.endpoint)).body(body).send().await.unwrap();
        assert!(r.status().is_success(), "put {key}: {}", r.status());
    }

    /// Keys of the objects in `bucket` (unsigned list; moto allows it).
    pub(crate) async fn keys(&self, bucket: &str) -> Vec<String> {
        let body = reqwest::Client::new()
            .get(format!("{}/{bucket}?list-type=2", self.endpoint))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut keys: Vec<String> =
            body.split("<Key>").skip(1).map(|k| k.split("</Key>").next().unwrap().to_string()).collect();
        keys.sort();
        keys
    }
}

#[tokio::test]
async fn s3_storage_holds_flushed_files_in_a_bucket() {
    let Some(moto) = Moto::start().await else { return };
    moto.create_bucket("lake").await;
    let mut s = TestServer::start().await;
    let root = Auth::root();
    s.sql_ok(
        &root,
        &format!(
            "CREATE STORAGE lake TYPE 's3' BUCKET 'lake' PREFIX 'kalam/' REGION 'us-east-1' ENDPOINT '{}' \
             ACCESS_KEY_ID 'test-key' SECRET_ACCESS_KEY 'very-secret-value' ALLOW_HTTP",
            moto.endpoint
        ),
    )
    .await;
    let r = s
        .sql_err(
            &root,
            &format!(
                "CREATE STORAGE nobucket TYPE 's3' BUCKET 'missing' ENDPOINT '{}' ALLOW_HTTP \
                 ACCESS_KEY_ID 'k' SECRET_ACCESS_KEY 'other-secret'",
                moto.endpoint
            ),
            400,
            "VALIDATION_ERROR",
        )
        .await;
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("storage 'nobucket' cannot be used"), "{message}");
    assert!(!message.contains("other-secret"), "{message}");
    let shown = s.sql_ok(&root, "SHOW STORAGES").await;
    assert!(!shown.body.to_string().contains("very-secret-value"), "the secret is never shown: {}", shown.body);
    let lake = &shown.rows(0)[1];
    assert_eq!(lake[0], "lake");
    assert_eq!(lake[1], "s3");
    assert_eq!(lake[2], "s3://lake/kalam");
    assert_eq!(lake[6], "***");
    let r = s.sql_ok(&root, "SELECT * FROM system.storages").await;
    assert!(!r.body.to_string().contains("very-secret-value"));

    s.sql_ok(
        &root,
        "CREATE NAMESPACE app; CREATE TABLE app.items (id BIGINT PRIMARY KEY, name TEXT, qty INT) WITH (storage = 'lake')",
    )
    .await;
    let (alice, bob) = (s.create_user("alice").await, s.create_user("bob").await);
    fill(&s, &alice, "a").await;
    fill(&s, &bob, "b").await;
    let before = (corpus(&s, &alice).await, corpus(&s, &bob).await);
    let job = flush_and_wait(&s, "FLUSH TABLE app.items").await;
    assert_eq!(job[1], "completed", "{job:?}");
    let (a, b) = (user_id(&s, "alice").await, user_id(&s, "bob").await);
    let mut expected = vec![];
    for u in [&a, &b] {
        expected.push(format!("kalam/app/items/{u}/batch-1.parquet"));
        expected.push(format!("kalam/app/items/{u}/manifest.json"));
    }
    expected.sort();
    assert_eq!(moto.keys("lake").await, expected);
    assert!(files_under(&s.data_dir().join("storage")).is_empty());
    assert_eq!((corpus(&s, &alice).await, corpus(&s, &bob).await), before, "reads from S3 match");

    // Writes over flushed rows, then a second flush and a catch-up from cursor 0.
    s.sql_ok(&alice, "UPDATE app.items SET name = 'again' WHERE id < 3").await;
    s.sql_ok(&alice, "INSERT INTO app.items (id, name, qty) VALUES (100, 'new', 1)").await;
    let r = s.sql_ok(&alice, "SELECT id, name FROM app.items WHERE id <= 3 ORDER BY id").await;
    assert_eq!(r.rows(0), &vec![json!([0, "again"]), json!([1, "again"]), json!([2, "again"]), json!([3, "item-3-a"])]);
    let mut ws = WsClient::connect_as(&s, "alice", "alice-password").await;
    let (rows_before, ..) = load(&mut ws, "c1", "SELECT id, name, qty FROM app.items", json!({})).await;
    assert_eq!(rows_before.len(), 20, "19 live rows plus the new one");
    assert_eq!(flush_and_wait(&s, "FLUSH TABLE app.items").await[1], "completed");
    assert!(moto.keys("lake").await.contains(&format!("kalam/app/items/{a}/batch-2.parquet")));
    let (rows_after, ..) = load(&mut ws, "c2", "SELECT id, name, qty FROM app.items", json!({})).await;
    let sorted = |mut v: Vec<Value>| {
        v.sort_by_key(|r| r[0].as_i64());
        v
    };
    assert_eq!(sorted(rows_after), sorted(rows_before), "catch-up over S3 files matches");
    drop(ws);

    s.restart();
    let r = s.sql_ok(&bob, "SELECT count(*) FROM app.items").await;
    assert_eq!(r.rows(0), &vec![json!([19])], "the S3 storage is reopened after a restart");

    // A backup reads the files from S3; a restore writes them back there.
    let before = (corpus(&s, &alice).await, corpus(&s, &bob).await);
    let keys = moto.keys("lake").await;
    let r = s.sql_ok(&root, "BACKUP DATABASE app TO 'lake-backup'").await;
    let job = crate::flush::wait_for_job(&s, r.rows(0)[0][0].as_str().unwrap()).await;
    assert_eq!(job[1], "completed", "{job:?}");
    s.sql_ok(&root, "DROP NAMESPACE app CASCADE").await;
    assert!(moto.keys("lake").await.is_empty(), "DROP NAMESPACE removes the objects");
    let r = s.sql_ok(&root, "RESTORE DATABASE app FROM 'lake-backup'").await;
    let job = crate::flush::wait_for_job(&s, r.rows(0)[0][0].as_str().unwrap()).await;
    assert_eq!(job[1], "completed", "{job:?}");
    assert_eq!(moto.keys("lake").await, keys, "the same files are back in the bucket");
    assert_eq!((corpus(&s, &alice).await, corpus(&s, &bob).await), before, "restored from S3 into S3");

    let r = s.sql_err(&root, "DROP STORAGE lake", 409, "IN_USE").await;
    assert!(r.body["error"]["message"].as_str().unwrap().contains("app.items"), "{}", r.body);
    s.sql_ok(&root, "DROP TABLE app.items").await;
    assert!(moto.keys("lake").await.is_empty(), "DROP TABLE removes the objects: {:?}", moto.keys("lake").await);
    s.sql_ok(&root, "DROP STORAGE lake").await;
}

/// A flush into S3 killed at each fault point recovers at restart: no row lost or
/// duplicated, no object left that the manifest does not list.
#[tokio::test]
async fn s3_flush_killed_at_each_fault_point_recovers() {
    let Some(moto) = Moto::start().await else { return };
    for (n, point) in
        ["flush:after_write", "flush:after_rename", "flush:after_manifest", "flush:mid_delete"].into_iter().enumerate()
    {
        let bucket = format!("crash{n}");
        moto.create_bucket(&bucket).await;
        let mut s = TestServer::start_with_env(&[("FAILPOINTS", &format!("{point}=return"))]).await;
        s.sql_ok(
            &Auth::root(),
            &format!(
                "CREATE STORAGE lake TYPE 's3' BUCKET '{bucket}' ENDPOINT '{}' ACCESS_KEY_ID 'k' \
                 SECRET_ACCESS_KEY 's' ALLOW_HTTP; CREATE NAMESPACE app; \
                 CREATE TABLE app.items (id BIGINT PRIMARY KEY, name TEXT, qty INT) WITH (storage = 'lake')",
                moto.endpoint
            ),
        )
        .await;
        let alice = s.create_user("alice").await;
        fill(&s, &alice, "a").await;
        let expected = corpus(&s, &alice).await;
        // The process may abort before it answers: a failed request is not an error here.
        let _ = s
            .client
            .post(format!("{}/v1/api/sql", s.base))
            .basic_auth("root", Some(ROOT_PASSWORD))
            .json(&json!({"sql": "FLUSH TABLE app.items"}))
            .send()
            .await;
        s.wait_for_fault(point).await;
        s.kill9();
        s.set_env(&[]);
        s.start_again();
        assert_eq!(corpus(&s, &alice).await, expected, "{point}: rows after recovery");
        let keys = moto.keys(&bucket).await;
        let parquet: Vec<&String> = keys.iter().filter(|k| k.ends_with(".parquet")).collect();
        match point {
            "flush:after_write" | "flush:after_rename" => assert!(parquet.is_empty(), "{point}: orphan {keys:?}"),
            _ => assert_eq!(parquet.len(), 1, "{point}: the committed file stays: {keys:?}"),
        }
        assert_eq!(flush_and_wait(&s, "FLUSH TABLE app.items").await[1], "completed", "{point}");
        assert_eq!(corpus(&s, &alice).await, expected, "{point}: rows after a clean flush");
        s.restart();
        assert_eq!(corpus(&s, &alice).await, expected, "{point}: rows after a restart");
    }
}

/// Cleanup in an S3 storage: expired tombstones are purged and the replaced objects deleted.
#[tokio::test]
async fn s3_cleanup_purges_tombstones_and_replaced_objects() {
    let Some(moto) = Moto::start().await else { return };
    moto.create_bucket("purge").await;
    let s = TestServer::start_with_env(&[("KALAMDB_HOUR_MS", "3000"), ("KALAMDB_CLEANUP_INTERVAL_SECS", "1")]).await;
    s.sql_ok(
        &Auth::root(),
        &format!(
            "CREATE STORAGE lake TYPE 's3' BUCKET 'purge' ENDPOINT '{}' ACCESS_KEY_ID 'k' SECRET_ACCESS_KEY 's' \
             ALLOW_HTTP; CREATE NAMESPACE app; CREATE TABLE app.items (id BIGINT PRIMARY KEY, name TEXT, qty INT) \
             WITH (storage = 'lake', deleted_retention_hours = 1, flush_policy = 'rows:1000000')",
            moto.endpoint
        ),
    )
    .await;
    let alice = s.create_user("alice").await;
    fill(&s, &alice, "a").await;
    assert_eq!(flush_and_wait(&s, "FLUSH TABLE app.items").await[1], "completed");
    s.sql_ok(&alice, "DELETE FROM app.items WHERE id >= 15").await;
    assert_eq!(flush_and_wait(&s, "FLUSH TABLE app.items").await[1], "completed");
    let live = "SELECT id, name, qty FROM app.items ORDER BY id";
    let expected = s.sql_ok(&alice, live).await.rows(0).clone();
    assert_eq!(expected.len(), 14);
    let all_versions = "SELECT count(*) FROM app.items WHERE _deleted = true";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tombstones = s.sql_ok(&alice, all_versions).await.rows(0)[0][0].clone();
        let parquet = moto.keys("purge").await.into_iter().filter(|k| k.ends_with(".parquet")).count();
        if tombstones == json!(0) && parquet == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "not purged: {tombstones} tombstones, {parquet} objects");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(s.sql_ok(&alice, live).await.rows(0), &expected, "no live row lost");
    let a = user_id(&s, "alice").await;
    let keys = moto.keys("purge").await;
    // The two flushed files are gone, replaced by one (batch-3, or batch-4 when a compaction
    // ran before the tombstones expired and a purge rewrote its file after: timing).
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[1], format!("app/items/{a}/manifest.json"));
    let replaced = [format!("app/items/{a}/batch-1.parquet"), format!("app/items/{a}/batch-2.parquet")];
    assert!(keys[0].starts_with(&format!("app/items/{a}/batch-")) && !replaced.contains(&keys[0]), "{keys:?}");
}
