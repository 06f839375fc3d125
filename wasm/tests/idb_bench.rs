//! Catch-up into IndexedDB in headless Chromium: 100,000 rows in batches of 1,000, each batch
//! committed together with its cursor, as the sync driver does. Prints rows/s for the store
//! alone and for the whole client side of a catch-up (frame parsing, engine, store), plus the
//! time to load the replica back.
//!
//! Ignored in normal test runs; `scripts/bench-wasm-idb.sh` runs it in release mode.

use kalamdb_client_core::protocol::ws::ServerMessage;
use kalamdb_client_core::protocol::{ColumnInfo, Role, UserInfo};
use kalamdb_client_core::store::{OpRow, ReplicaStore, StoreOp, SubscriptionId, SubscriptionRecord, pk_key};
use kalamdb_client_core::sync::SyncEngine;
use kalamdb_wasm::idb::IndexedDbStore;
use kalamdb_wasm::tabs::{self, BroadcastingStore};
use serde_json::{Value, json};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const ROWS: usize = 100_000;
const BATCH: usize = 1_000;

fn now_ms() -> f64 {
    js_sys::Date::now()
}

fn schema() -> Vec<ColumnInfo> {
    [("id", "TEXT"), ("title", "TEXT"), ("done", "BOOLEAN"), ("priority", "INT"), ("created", "TIMESTAMP")]
        .iter()
        .map(|(n, t)| ColumnInfo::new(*n, *t))
        .collect()
}

/// A todo-like row: a UUID-sized key, a short title, a flag, a number and a timestamp.
fn values(i: usize) -> Vec<Value> {
    vec![
        json!(format!("0190a1b2-c3d4-7e5f-8a9b-{i:012}")),
        json!(format!("Buy groceries for the week, item {i}")),
        json!(i.is_multiple_of(3)),
        json!(i % 5),
        json!("2026-03-01T12:34:56.789012Z"),
    ]
}

fn batch_frame(b: usize) -> String {
    let rows: Vec<Vec<Value>> = (b * BATCH..(b + 1) * BATCH).map(values).collect();
    let msg = ServerMessage::Batch {
        id: "todos".into(),
        rows,
        deleted: vec![],
        cursor: 1_770_000_000_000_000 + b as i64,
        reset: false,
        last: (b + 1) * BATCH == ROWS,
    };
    serde_json::to_string(&msg).unwrap()
}

fn print(what: &str, rows: usize, ms: f64) {
    console_log!("{what}: {rows} rows in {ms:.0} ms = {:.0} rows/s", rows as f64 / ms * 1000.0);
}

/// The store alone: the commits a catch-up makes, built beforehand.
#[wasm_bindgen_test]
#[ignore = "benchmark: scripts/bench-wasm-idb.sh"]
async fn bench_store_commits() {
    let name = format!("kalamdb-bench:store:{}", js_sys::Math::random());
    let store = IndexedDbStore::open(&name).await.unwrap();
    let sub = SubscriptionId("todos".into());
    let columns: Vec<String> = schema().into_iter().map(|c| c.name).collect();
    let mut rec = SubscriptionRecord {
        id: sub.clone(),
        sql: "SELECT * FROM app.todos".into(),
        table: "app.todos".into(),
        cursor: None,
        schema: schema(),
        primary_key: Some("id".into()),
        complete: false,
        rows_loaded: 0,
        last_synced_ms: None,
    };
    let commits: Vec<Vec<StoreOp>> = (0..ROWS / BATCH)
        .map(|b| {
            let mut ops: Vec<StoreOp> = (b * BATCH..(b + 1) * BATCH)
                .map(|i| {
                    let v = values(i);
                    StoreOp::PutRow {
                        sub: sub.clone(),
                        pk: pk_key(&v[0]),
                        row: OpRow::Json(columns.iter().cloned().zip(v).collect()),
                    }
                })
                .collect();
            rec.cursor = Some(b as i64 + 1);
            rec.rows_loaded += BATCH as u64;
            ops.push(StoreOp::PutSubscription(rec.clone()));
            ops
        })
        .collect();
    let start = now_ms();
    for ops in commits {
        store.commit(ops).await.unwrap();
    }
    print("IndexedDbStore::commit, 1,000 rows + cursor per commit", ROWS, now_ms() - start);

    let start = now_ms();
    let snapshot = store.load().await.unwrap();
    assert_eq!(snapshot.row_count(), ROWS);
    print("IndexedDbStore::load from the row log", ROWS, now_ms() - start);

    // Folding the log into chunks (normally once the log outgrows 32 MB and the chunks).
    store.set_compaction_threshold(0);
    let start = now_ms();
    let (pk, row) = snapshot.rows[&sub].json_rows().next().unwrap();
    store.commit(vec![StoreOp::PutRow { sub: sub.clone(), pk, row: row.into() }]).await.unwrap();
    assert_eq!(store.compactions(), 1);
    print("commit with a compaction of everything", ROWS, now_ms() - start);
    let start = now_ms();
    assert_eq!(store.load().await.unwrap().row_count(), ROWS);
    print("IndexedDbStore::load from chunks", ROWS, now_ms() - start);
    drop(store);
    IndexedDbStore::delete(&name).await.unwrap();
}

/// Everything on the client side of a catch-up: frame text → engine → IndexedDB, with the
/// plain store and with the store of a tab sharing its replica (which also posts every commit
/// to the other tabs).
#[wasm_bindgen_test]
#[ignore = "benchmark: scripts/bench-wasm-idb.sh"]
async fn bench_catch_up_into_indexeddb() {
    let name = format!("kalamdb-bench:catch-up:{}", js_sys::Math::random());
    catch_up("catch-up (parse frame, engine, IndexedDB commit)", IndexedDbStore::open(&name).await.unwrap()).await;
    IndexedDbStore::delete(&name).await.unwrap();

    let name = format!("kalamdb-bench:catch-up-tabs:{}", js_sys::Math::random());
    let store = BroadcastingStore::new(IndexedDbStore::open(&name).await.unwrap(), tabs::channel(&name).unwrap());
    // Another tab listening, so the posts are delivered somewhere.
    let follower = tabs::channel(&name).unwrap();
    let received = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let count = received.clone();
    let on_message = Closure::<dyn FnMut(JsValue)>::new(move |_| count.set(count.get() + 1));
    follower.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    catch_up("catch-up, shared with other tabs (also posts each commit)", store).await;
    assert!(received.get() > 0);
    follower.close();
    IndexedDbStore::delete(&name).await.unwrap();
}

async fn catch_up(what: &str, store: impl ReplicaStore) {
    let (mut engine, init) = SyncEngine::new(store.load().await.unwrap(), || "bench-client".into());
    store.commit(init).await.unwrap();
    store
        .commit(engine.subscribe(SubscriptionId("todos".into()), "SELECT * FROM app.todos".into()).unwrap().commit)
        .await
        .unwrap();
    let _ = engine.on_open("token".into());
    let auth_ok = ServerMessage::AuthOk {
        user: UserInfo { id: "u1".into(), username: "bench".into(), role: Role::User },
        expires_at: "2099-01-01T00:00:00Z".into(),
    };
    store.commit(engine.on_message(auth_ok, 0.0).commit).await.unwrap();
    let subscribed = ServerMessage::Subscribed {
        id: "todos".into(),
        live_id: "l1".into(),
        schema: schema(),
        primary_key: "id".into(),
    };
    store.commit(engine.on_message(subscribed, 0.0).commit).await.unwrap();
    // Frames as they arrive from the socket (text); building them is not timed.
    let frames: Vec<String> = (0..ROWS / BATCH).map(batch_frame).collect();

    let start = now_ms();
    for text in frames {
        let msg: ServerMessage = serde_json::from_str(&text).unwrap();
        let fx = engine.on_message(msg, 0.0);
        store.commit(fx.commit).await.unwrap();
    }
    print(what, ROWS, now_ms() - start);
    let loaded = engine.replica().subscription(&SubscriptionId("todos".into())).unwrap();
    assert_eq!(loaded.rows.len(), ROWS);
    assert!(loaded.record.as_ref().unwrap().complete);
}
