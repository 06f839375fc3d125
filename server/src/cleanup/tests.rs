//! Flush and compaction in process: a real database in a temp dir, its table's files in an
//! in-memory object store, and time moved by hand instead of waiting for retention to pass.

use super::clean_partition;
use crate::auth::Principal;
use crate::clock::{Clock, ManualClock, now_micros};
use crate::cold::location::Location;
use crate::config::Config;
use crate::database::Database;
use crate::flush::{self, PartitionFlush};
use crate::ids::{NamespaceId, Partition, StorageId};
use crate::schema::{StorageDef, StorageLocation, TableDef};
use futures::TryStreamExt;
use kalamdb_client_core::protocol::{QueryResult, SqlRequest};
use object_store::ObjectStore;
use object_store::memory::InMemory;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

const HOUR: i64 = 3_600_000_000;

async fn sql(db: &Arc<Database>, who: &Principal, sql: &str) -> Vec<QueryResult> {
    let req = SqlRequest { sql: sql.into(), params: vec![], namespace: None };
    crate::sql::executor::execute_request(db, who, &req, &AtomicUsize::new(0))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
}

async fn count(db: &Arc<Database>, who: &Principal) -> Value {
    sql(db, who, "SELECT count(*) FROM app.items").await[0].rows[0][0].clone()
}

/// Names of the objects under `prefix`, sorted.
async fn objects(store: &InMemory, prefix: &str) -> Vec<String> {
    let prefix = object_store::path::Path::from(prefix);
    let listed: Vec<_> = store.list(Some(&prefix)).try_collect().await.unwrap();
    let mut names: Vec<String> = listed.iter().filter_map(|o| o.location.filename().map(str::to_string)).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_and_compaction_on_an_object_store_with_time_moved_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.data_dir = dir.path().to_path_buf();
    config.auth.bcrypt_cost = 4;
    let clock = ManualClock::new(now_micros());
    let db = Database::open_with_clock(config, clock.clone()).await.unwrap();
    let store = Arc::new(InMemory::new());
    let mem = StorageId::new("mem").unwrap();
    let location = StorageLocation::S3 {
        bucket: "mem".into(),
        prefix: None,
        region: None,
        endpoint: None,
        access_key_id: None,
        secret_access_key: None,
        allow_http: false,
    };
    db.catalog.create_storage(StorageDef { id: mem.clone(), location, created_at: 0 }, false).unwrap();
    db.cold.use_location(mem, Location::Object { store: store.clone(), prefix: "base".into() });

    let root = Principal::from_user(&db.catalog.user_by_name("root").unwrap());
    sql(&db, &root, "CREATE NAMESPACE app").await;
    sql(
        &db,
        &root,
        "CREATE USER TABLE app.items (id BIGINT PRIMARY KEY, qty INT) \
         WITH (storage = 'mem', deleted_retention_hours = 1, flush_policy = 'rows:1000000')",
    )
    .await;
    sql(&db, &root, "CREATE USER 'alice' WITH PASSWORD 'alice-password' ROLE user").await;
    let alice = Principal::from_user(&db.catalog.user_by_name("alice").unwrap());
    let values: Vec<String> = (1..=100).map(|i| format!("({i}, {i})")).collect();
    sql(&db, &alice, &format!("INSERT INTO app.items VALUES {}", values.join(", "))).await;

    let table: Arc<TableDef> = db.catalog.table(&NamespaceId::new("app").unwrap(), "items").unwrap();
    let partition = Partition::User(alice.user_id);
    let scope = format!("base/app/items/{}", alice.user_id);
    let flush = async |db: &Arc<Database>| flush::flush_partition(db, &table, partition, &|| false).await.unwrap();

    // A flush moves the hot rows into one object and empties the hot tier.
    assert!(matches!(flush(&db).await, PartitionFlush::Flushed(f) if f.rows == 100));
    assert_eq!(objects(&store, &scope).await, ["batch-1.parquet", "manifest.json"]);
    assert!(db.committer.hot_stats().get(table.id, partition).is_none());
    assert_eq!(count(&db, &alice).await, json!(100));

    // Deletes leave tombstones; a second flush writes them to a second file.
    sql(&db, &alice, "DELETE FROM app.items WHERE id <= 50").await;
    assert!(matches!(flush(&db).await, PartitionFlush::Flushed(f) if f.rows == 50));
    assert_eq!(objects(&store, &scope).await, ["batch-1.parquet", "batch-2.parquet", "manifest.json"]);
    assert!(matches!(flush(&db).await, PartitionFlush::Empty));

    // Within the retention hour, two files and fresh tombstones are not due for compaction.
    let clean = async |db: &Arc<Database>| clean_partition(db, &table, partition, &|| false).await.unwrap().unwrap();
    assert_eq!(clean(&db).await, super::Compaction::default());

    // Two hours later the tombstones have expired: one file holds only the live rows.
    clock.advance(2 * HOUR);
    let done = clean(&db).await;
    assert_eq!((done.files, done.purged), (2, 50));
    assert_eq!(objects(&store, &scope).await, ["batch-3.parquet", "manifest.json"]);
    let cold = db.cold.partition(&table, partition).await.unwrap();
    assert_eq!(cold.files().iter().map(|f| f.rows).sum::<u64>(), 50);
    assert!(cold.manifest().purged_through > 0);
    assert_eq!(count(&db, &alice).await, json!(50));
    let ids = sql(&db, &alice, "SELECT min(id), max(id) FROM app.items").await;
    assert_eq!(ids[0].rows[0], vec![json!(51), json!(100)]);

    // Writes after the jump take their `_updated` from the moved clock.
    sql(&db, &alice, "INSERT INTO app.items VALUES (500, 1)").await;
    let updated = sql(&db, &alice, "SELECT CAST(_updated AS BIGINT) FROM app.items WHERE id = 500").await;
    let updated = updated[0].rows[0][0].as_i64().unwrap_or_else(|| panic!("{:?}", updated[0].rows));
    assert!(updated >= clock.now_micros(), "{updated} < {}", clock.now_micros());
}
