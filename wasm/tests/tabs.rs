//! Several tabs on one IndexedDB replica, in headless Chromium. Two `KalamClient`s in one page
//! on the same database count as two tabs: each has its own BroadcastChannel object and its
//! own Web Lock request. The server is `fake_server.js`, behind a replaced global WebSocket.

use kalamdb_wasm::KalamClient;
use kalamdb_wasm::idb::IndexedDbStore;
use kalamdb_wasm::platform::sleep;
use serde_json::{Value, json};
use std::collections::HashSet;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(module = "/tests/fake_server.js")]
extern "C" {
    type FakeServer;

    #[wasm_bindgen(constructor)]
    fn new() -> FakeServer;
    #[wasm_bindgen(method)]
    fn uninstall(this: &FakeServer);
    #[wasm_bindgen(method, js_name = createTable)]
    fn create_table(this: &FakeServer, name: &str, primary_key: &str, columns: JsValue);
    #[wasm_bindgen(method)]
    fn insert(this: &FakeServer, table: &str, row: JsValue);
    #[wasm_bindgen(method)]
    fn report(this: &FakeServer) -> String;
}

fn js(v: Value) -> JsValue {
    js_sys::JSON::parse(&v.to_string()).unwrap()
}

fn rust(v: &JsValue) -> Value {
    serde_json::from_str(&String::from(js_sys::JSON::stringify(v).unwrap())).unwrap()
}

impl FakeServer {
    fn records(&self) -> Value {
        serde_json::from_str(&self.report()).unwrap()
    }
}

async fn open(db: &str) -> KalamClient {
    let options = js(json!({"url": "ws://fake/v1/ws", "storage": "indexeddb", "dbName": db, "pingIntervalMs": 60000}));
    let token = js_sys::Function::new_no_args("return 'token'");
    KalamClient::open(options, token).await.map_err(JsValue::from).expect("open")
}

/// The ids in `table`, or `None` while the replica cannot answer (not described by the server yet).
async fn try_ids(c: &KalamClient, table: &str) -> Option<Vec<String>> {
    let rs = rust(&c.query(format!("SELECT id FROM {table} ORDER BY id"), JsValue::UNDEFINED).await.ok()?);
    Some(rs["rows"].as_array().unwrap().iter().map(|r| r[0].as_str().unwrap().to_string()).collect())
}

async fn ids(c: &KalamClient, table: &str) -> Vec<String> {
    try_ids(c, table).await.expect("query")
}

async fn status(c: &KalamClient) -> Value {
    rust(&c.status().await.map_err(JsValue::from).unwrap())
}

/// Polls `check` every 20 ms for up to 5 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..250 {
        if check().await {
            return;
        }
        sleep(20).await;
    }
    panic!("timed out waiting for: {what}");
}

async fn insert(c: &KalamClient, table: &str, row: Value) -> Value {
    let receipt = c.mutate(js(json!([{"table": table, "op": "insert", "row": row}]))).await;
    rust(&receipt.map_err(JsValue::from).expect("mutate"))
}

#[wasm_bindgen_test]
async fn tabs_share_one_replica_and_one_connection() {
    let server = FakeServer::new();
    server.create_table("app.items", "id", js(json!([["id", "TEXT"], ["title", "TEXT"]])));
    server.insert("app.items", js(json!({"id": "a0", "title": "on the server"})));
    let db = format!("kalamdb-test:tabs:{}", js_sys::Math::random());

    // The first tab takes the lead and syncs.
    let a = open(&db).await;
    eventually("the first tab leads", async || a.is_leader()).await;
    a.sync("items".into(), "SELECT * FROM app.items".into()).await.map_err(JsValue::from).unwrap();
    a.settled().await.map_err(JsValue::from).unwrap();
    assert_eq!(ids(&a, "app.items").await, ["a0"]);

    // The second follows: the replica without a connection of its own, the leader's status.
    let b = open(&db).await;
    assert!(!b.is_leader());
    assert_eq!(ids(&b, "app.items").await, ["a0"]);
    eventually("the follower reports the leader online", async || status(&b).await["online"] == json!(true)).await;
    assert_eq!(server.records()["connections"], json!(1));

    // A follower's write shows at once, goes out once (through the leader) and settles.
    let receipt = insert(&b, "app.items", json!({"id": "b1", "title": "from b"})).await;
    assert_eq!(ids(&b, "app.items").await, ["a0", "b1"]);
    b.settled().await.map_err(JsValue::from).unwrap();
    let b_id = receipt["clientId"].as_str().unwrap().to_string();
    eventually("the follower learns the outcome", async || {
        let state = b.mutation_state(b_id.clone(), 1).await.map_err(JsValue::from).unwrap();
        !state.is_undefined() && rust(&state)["status"] == json!("applied")
    })
    .await;
    eventually("the leader shows the follower's write", async || ids(&a, "app.items").await.len() == 2).await;

    // The leader's writes and the server's changes reach the follower's live query.
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::<Value>::new()));
    let sink = seen.clone();
    let callback = Closure::<dyn FnMut(JsValue)>::new(move |rs: JsValue| sink.borrow_mut().push(rust(&rs)));
    let live = b
        .live(
            "SELECT id FROM app.items ORDER BY id".into(),
            JsValue::UNDEFINED,
            callback.as_ref().unchecked_ref::<js_sys::Function>().clone(),
        )
        .await
        .map_err(JsValue::from)
        .unwrap();
    insert(&a, "app.items", json!({"id": "a1", "title": "from a"})).await;
    server.insert("app.items", js(json!({"id": "s1", "title": "server side"})));
    let want = json!([["a0"], ["a1"], ["b1"], ["s1"]]);
    eventually("the follower's live query sees both", async || {
        seen.borrow().last().is_some_and(|rs| rs["rows"] == want)
    })
    .await;
    a.settled().await.map_err(JsValue::from).unwrap();

    // A follower's sync() goes through the leader.
    server.create_table("app.notes", "id", js(json!([["id", "TEXT"], ["body", "TEXT"]])));
    server.insert("app.notes", js(json!({"id": "n1", "body": "note"})));
    b.sync("notes".into(), "SELECT * FROM app.notes".into()).await.map_err(JsValue::from).unwrap();
    eventually("the follower has the notes", async || try_ids(&b, "app.notes").await.is_some_and(|ids| ids == ["n1"]))
        .await;
    let records = server.records();
    assert!(records["subscribes"].as_array().unwrap().iter().all(|s| s["conn"] == json!(1)), "{records}");

    // The leader closes: the follower takes over and resumes from the committed cursors.
    let items_cursor = records["sentCursor"]["app.items"].clone();
    a.close().await;
    eventually("the second tab leads", async || b.is_leader()).await;
    eventually("the second tab connects", async || server.records()["connections"] == json!(2)).await;
    b.settled().await.map_err(JsValue::from).unwrap();
    let records = server.records();
    let resumed: Vec<&Value> = records["subscribes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["conn"] == json!(2) && s["id"] == "items")
        .collect();
    assert_eq!(resumed.len(), 1, "{records}");
    assert_eq!(resumed[0]["since"], items_cursor, "resumes from the last cursor the old leader received");
    let receipt = insert(&b, "app.items", json!({"id": "b2", "title": "after the handover"})).await;
    b.settled().await.map_err(JsValue::from).unwrap();
    assert_eq!(ids(&b, "app.items").await, ["a0", "a1", "b1", "b2", "s1"]);

    // Every write was sent exactly once, each tab under a client id of its own.
    let records = server.records();
    let mutates = records["mutates"].as_array().unwrap();
    let keys: HashSet<(String, u64)> =
        mutates.iter().map(|m| (m["client_id"].as_str().unwrap().to_string(), m["seq"].as_u64().unwrap())).collect();
    assert_eq!(keys.len(), mutates.len(), "no write sent twice: {records}");
    assert_eq!(mutates.len(), 3);
    assert_eq!(receipt["clientId"], json!(b_id));
    assert_eq!(mutates.iter().filter(|m| m["client_id"] == json!(b_id)).count(), 2);

    drop(live);
    drop(callback);
    b.close().await;
    server.uninstall();
    IndexedDbStore::delete(&db).await.unwrap();
}
