//! The IndexedDB replica store in a real browser (headless Chromium via
//! `wasm-bindgen-test-runner`; see `scripts/test-wasm.sh`): every store operation, atomic
//! commits, reopening, resuming an interrupted first sync, and the same behaviour as
//! `MemoryStore` for the same operations.

use kalamdb_client_core::protocol::ws::{ClientMessage, MutationKind, MutationOp, ServerMessage};
use kalamdb_client_core::protocol::{ColumnInfo, Role, UserInfo};
use kalamdb_client_core::store::{
    MemoryStore, OutboxEntry, ReplicaStore, Row, Snapshot, StoreOp, SubscriptionId, SubscriptionRecord, pk_key,
};
use kalamdb_client_core::sync::SyncEngine;
use kalamdb_wasm::idb::IndexedDbStore;
use serde_json::{Value, json};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// A database name no other test (or earlier run) uses.
fn fresh_name(test: &str) -> String {
    format!("kalamdb-test:{test}:{}", js_sys::Math::random())
}

fn row(v: Value) -> Row {
    v.as_object().cloned().expect("a JSON object")
}

fn sub_id(id: &str) -> SubscriptionId {
    SubscriptionId(id.into())
}

fn record(id: &str, cursor: Option<i64>) -> SubscriptionRecord {
    SubscriptionRecord {
        id: sub_id(id),
        sql: format!("SELECT * FROM app.{id}"),
        table: format!("app.{id}"),
        cursor,
        schema: vec![ColumnInfo::new("id", "TEXT"), ColumnInfo::new("n", "BIGINT")],
        primary_key: Some("id".into()),
        complete: false,
        rows_loaded: 0,
        last_synced_ms: Some(1_700_000_000_123.5),
    }
}

fn put_row(sub: &str, id: &str, n: Value) -> StoreOp {
    StoreOp::PutRow { sub: sub_id(sub), pk: pk_key(&json!(id)), row: row(json!({"id": id, "n": n})).into() }
}

fn outbox(client_id: &str, seq: u64, created_ms: f64) -> OutboxEntry {
    OutboxEntry {
        client_id: client_id.into(),
        seq,
        ops: vec![MutationOp {
            table: "app.items".into(),
            op: MutationKind::Insert,
            row: Some(row(json!({"id": format!("{client_id}-{seq}"), "n": seq}))),
            pk: None,
        }],
        created_ms,
        confirmed: None,
    }
}

async fn commit_both(mem: &MemoryStore, idb: &IndexedDbStore, ops: Vec<StoreOp>) {
    mem.commit(ops.clone()).await.unwrap();
    idb.commit(ops).await.unwrap();
}

async fn assert_same(mem: &MemoryStore, idb: &IndexedDbStore) -> Snapshot {
    let (m, i) = (mem.load().await.unwrap(), idb.load().await.unwrap());
    assert_eq!(i, m, "IndexedDB and memory stores disagree");
    i
}

#[wasm_bindgen_test]
async fn every_store_op_round_trips() {
    let name = fresh_name("round-trip");
    let idb = IndexedDbStore::open(&name).await.unwrap();
    let mem = MemoryStore::new();
    assert_eq!(idb.load().await.unwrap(), Snapshot::default());

    // "ab" shares a prefix with "a": clearing "a" must not touch it.
    commit_both(
        &mem,
        &idb,
        vec![
            StoreOp::PutSubscription(record("a", Some(10))),
            StoreOp::PutSubscription(record("ab", None)),
            put_row("a", "r1", json!(1)),
            put_row("a", "r2", json!(i64::MAX)),
            put_row("a", "r3", json!({"nested": [1.5, null, "x"]})),
            put_row("ab", "r1", json!(-7)),
            StoreOp::PutOutbox(outbox("c2", 1, 20.0)),
            StoreOp::PutOutbox(outbox("c1", 2, 10.0)),
            StoreOp::PutOutbox(outbox("c1", 1, 10.0)),
            StoreOp::PutMeta { key: "client_id".into(), value: json!("c1") },
            StoreOp::PutMeta { key: "next_seq".into(), value: json!(3) },
        ],
    )
    .await;
    let s = assert_same(&mem, &idb).await;
    assert_eq!(s.subscriptions.len(), 2);
    assert_eq!(s.row_count(), 4);
    let big = s.rows[&sub_id("a")].json_row("\"r2\"").unwrap();
    assert_eq!(big["n"], json!(i64::MAX), "integers beyond 2^53 survive exactly");
    let order: Vec<(String, u64)> = s.outbox.iter().map(|e| (e.client_id.clone(), e.seq)).collect();
    assert_eq!(
        order,
        [("c1".into(), 1), ("c1".into(), 2), ("c2".into(), 1)],
        "ordered by (created_ms, client_id, seq)"
    );

    commit_both(
        &mem,
        &idb,
        vec![
            StoreOp::DeleteRow { sub: sub_id("a"), pk: pk_key(&json!("r1")) },
            put_row("a", "r3", json!(3)),
            StoreOp::DeleteOutbox { client_id: "c1".into(), seq: 1 },
            StoreOp::PutMeta { key: "next_seq".into(), value: json!(4) },
            StoreOp::PutSubscription(record("a", Some(11))),
        ],
    )
    .await;
    let s = assert_same(&mem, &idb).await;
    assert_eq!(s.row_count(), 3);
    assert_eq!(s.subscriptions[0].cursor, Some(11));
    assert_eq!(s.outbox.len(), 2);

    commit_both(&mem, &idb, vec![StoreOp::ClearRows(sub_id("a"))]).await;
    let s = assert_same(&mem, &idb).await;
    assert_eq!(s.row_count(), 1, "only the rows of 'ab' remain");
    assert_eq!(s.rows.keys().collect::<Vec<_>>(), [&sub_id("ab")]);

    commit_both(&mem, &idb, vec![put_row("a", "r9", json!(9)), StoreOp::DeleteSubscription(sub_id("ab"))]).await;
    let s = assert_same(&mem, &idb).await;
    assert_eq!(s.subscriptions.iter().map(|r| r.id.0.as_str()).collect::<Vec<_>>(), ["a"]);
    assert_eq!(s.row_count(), 1);

    // An empty commit is allowed and changes nothing.
    commit_both(&mem, &idb, vec![]).await;
    assert_same(&mem, &idb).await;
    drop(idb);
    IndexedDbStore::delete(&name).await.unwrap();
}

/// Replaces `IDBObjectStore.prototype.put` so that every call after the first `allowed` fails:
/// `"throw"` throws at once, `"constraint"` turns it into an `add` of an existing key, which
/// fails later, inside the transaction. Returns the function that restores the original.
fn inject_put_failure(allowed: u32, mode: &str) -> js_sys::Function {
    let install = js_sys::Function::new_with_args(
        "allowed, mode",
        "const proto = IDBObjectStore.prototype;
         const original = proto.put;
         let calls = 0;
         proto.put = function (value, key) {
             calls += 1;
             if (calls > allowed) {
                 if (mode === 'throw') throw new DOMException('injected failure', 'QuotaExceededError');
                 return this.add(value, key);
             }
             return original.call(this, value, key);
         };
         return () => { proto.put = original; };",
    );
    install.call2(&JsValue::NULL, &allowed.into(), &mode.into()).unwrap().into()
}

#[wasm_bindgen_test]
async fn a_commit_that_fails_midway_leaves_nothing() {
    let name = fresh_name("atomic");
    let idb = IndexedDbStore::open(&name).await.unwrap();
    let base = vec![StoreOp::PutSubscription(record("a", Some(5))), put_row("a", "r0", json!(0))];
    idb.commit(base).await.unwrap();
    let before = idb.load().await.unwrap();

    for mode in ["throw", "constraint"] {
        // 600 rows (one log record, written first), the cursor after them, an outbox entry;
        // the second put fails. Re-putting the existing subscription is what makes `add`
        // fail in the "constraint" mode.
        let mut ops: Vec<StoreOp> = (1..=600).map(|i| put_row("a", &format!("r{i:03}"), json!(i))).collect();
        ops.push(StoreOp::PutSubscription(record("a", Some(99))));
        ops.push(StoreOp::PutOutbox(outbox("c1", 1, 1.0)));
        ops.push(StoreOp::DeleteRow { sub: sub_id("a"), pk: pk_key(&json!("r0")) });
        let restore = inject_put_failure(1, mode);
        let result = idb.commit(ops).await;
        restore.call0(&JsValue::NULL).unwrap();
        let err = result.expect_err("the injected failure fails the commit");
        let expected = if mode == "throw" { "QuotaExceededError" } else { "ConstraintError" };
        assert!(err.0.contains(expected), "{mode}: {err}");
        assert_eq!(idb.load().await.unwrap(), before, "{mode}: nothing of the failed commit is visible");
    }

    // The store keeps working after failed commits.
    idb.commit(vec![put_row("a", "r1", json!(1))]).await.unwrap();
    assert_eq!(idb.load().await.unwrap().row_count(), 2);
    drop(idb);
    IndexedDbStore::delete(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn reopening_sees_the_committed_state() {
    let name = fresh_name("reopen");
    let idb = IndexedDbStore::open(&name).await.unwrap();
    let mut ops = vec![StoreOp::PutSubscription(record("a", Some(42)))];
    ops.extend((0..50).map(|i| put_row("a", &format!("r{i}"), json!(i))));
    ops.push(StoreOp::PutOutbox(outbox("c1", 7, 3.0)));
    ops.push(StoreOp::PutMeta { key: "client_id".into(), value: json!("c1") });
    idb.commit(ops).await.unwrap();
    let written = idb.load().await.unwrap();
    drop(idb);

    let again = IndexedDbStore::open(&name).await.unwrap();
    assert_eq!(again.name(), name);
    assert_eq!(again.load().await.unwrap(), written);
    drop(again);
    IndexedDbStore::delete(&name).await.unwrap();
    let fresh = IndexedDbStore::open(&name).await.unwrap();
    assert_eq!(fresh.load().await.unwrap(), Snapshot::default(), "a deleted database starts empty");
    drop(fresh);
    IndexedDbStore::delete(&name).await.unwrap();
}

const SUB: &str = "items";

fn schema() -> Vec<ColumnInfo> {
    vec![ColumnInfo::new("id", "TEXT"), ColumnInfo::new("n", "BIGINT")]
}

fn batch(from: usize, to: usize, cursor: i64, last: bool) -> ServerMessage {
    ServerMessage::Batch {
        id: SUB.into(),
        rows: (from..to).map(|i| vec![json!(format!("k{i:05}")), json!(i)]).collect(),
        deleted: vec![],
        cursor,
        reset: false,
        last,
    }
}

fn auth_ok() -> ServerMessage {
    ServerMessage::AuthOk {
        user: UserInfo { id: "u1".into(), username: "alice".into(), role: Role::User },
        expires_at: "2099-01-01T00:00:00Z".into(),
    }
}

/// Starts an engine on `store` and connects it: returns the engine and the frames it sent.
async fn connect(store: &impl ReplicaStore) -> (SyncEngine, Vec<ClientMessage>) {
    let (mut engine, init) = SyncEngine::new(store.load().await.unwrap(), || "client-1".into());
    store.commit(init).await.unwrap();
    let fx = engine.subscribe(sub_id(SUB), "SELECT * FROM app.items".into()).unwrap();
    store.commit(fx.commit).await.unwrap();
    let _ = engine.on_open("token".into());
    let fx = engine.on_message(auth_ok(), 1.0);
    store.commit(fx.commit).await.unwrap();
    (engine, fx.send)
}

/// The first sync of 2,500 rows stops after its second batch (the tab closes before the
/// third batch's commit). Returns the frames the next start sends and what it loaded.
async fn interrupted_first_sync(
    store: impl ReplicaStore,
    reopen: impl AsyncFnOnce() -> Box<dyn ReplicaStore>,
) -> (Vec<ClientMessage>, Snapshot) {
    let (mut engine, sent) = connect(&store).await;
    assert!(sent.iter().any(|m| matches!(m, ClientMessage::Subscribe(s) if s.since.is_none())));
    let subscribed =
        ServerMessage::Subscribed { id: SUB.into(), live_id: "l1".into(), schema: schema(), primary_key: "id".into() };
    store.commit(engine.on_message(subscribed, 2.0).commit).await.unwrap();
    store.commit(engine.on_message(batch(0, 1000, 100, false), 3.0).commit).await.unwrap();
    store.commit(engine.on_message(batch(1000, 2000, 200, false), 4.0).commit).await.unwrap();
    // Handled in memory, never committed: the interruption.
    let _lost = engine.on_message(batch(2000, 2500, 300, true), 5.0);
    drop(engine);
    drop(store);

    let store = reopen().await;
    let loaded = store.load().await.unwrap();
    let (engine, sent) = connect(&store).await;
    assert_eq!(engine.client_id(), "client-1", "the client id survives the restart");
    (sent, loaded)
}

#[wasm_bindgen_test]
async fn an_interrupted_first_sync_resumes_from_its_cursor_like_the_memory_store() {
    let name = fresh_name("resume");
    let idb = IndexedDbStore::open(&name).await.unwrap();
    let reopen_name = name.clone();
    let (idb_sent, idb_loaded) = interrupted_first_sync(idb, async move || {
        Box::new(IndexedDbStore::open(&reopen_name).await.unwrap()) as Box<dyn ReplicaStore>
    })
    .await;
    let mem = MemoryStore::new();
    let same_mem = mem.clone();
    let (mem_sent, mem_loaded) =
        interrupted_first_sync(mem, async move || Box::new(same_mem) as Box<dyn ReplicaStore>).await;

    assert_eq!(idb_loaded.row_count(), 2000, "the two committed batches are kept");
    let rec = &idb_loaded.subscriptions[0];
    assert_eq!((rec.cursor, rec.complete, rec.rows_loaded), (Some(200), false, 2000));
    let since: Vec<Option<i64>> = idb_sent
        .iter()
        .filter_map(|m| match m {
            ClientMessage::Subscribe(s) => Some(s.since),
            _ => None,
        })
        .collect();
    assert_eq!(since, [Some(200)], "the restart asks only for what came after the stored cursor");
    assert_eq!(idb_loaded, mem_loaded);
    assert_eq!(idb_sent, mem_sent);
    IndexedDbStore::delete(&name).await.unwrap();
}

/// A deterministic pseudo-random generator (xorshift), so a failure is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

#[wasm_bindgen_test]
async fn the_same_ops_give_the_same_snapshot_as_the_memory_store() {
    let name = fresh_name("same");
    let idb = IndexedDbStore::open(&name).await.unwrap();
    // Fold the row log into chunks every few commits, so replaying and compacting both count.
    idb.set_compaction_threshold(1_000);
    let mem = MemoryStore::new();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Keys whose order differs between UTF-16 (IndexedDB) and code points (Rust): U+FF5E
    // sorts after U+1F600 in code points, before it in UTF-16.
    let subs = ["s", "s2", "\u{FF5E}", "\u{1F600}"];
    let pks = ["a", "b", "\u{FF5E}", "\u{1F600}", "zz", "0"];
    let clients = ["c1", "c2"];
    for round in 0..40 {
        let mut ops = Vec::new();
        for _ in 0..(1 + rng.next() % 12) {
            let sub = rng.pick(&subs);
            let op = match rng.next() % 10 {
                0 => StoreOp::PutSubscription(record(sub, Some(rng.next() as i64 >> 8))),
                1 if rng.next().is_multiple_of(3) => StoreOp::DeleteSubscription(sub_id(sub)),
                2 if rng.next().is_multiple_of(3) => StoreOp::ClearRows(sub_id(sub)),
                3 => StoreOp::DeleteRow { sub: sub_id(sub), pk: pk_key(&json!(rng.pick(&pks))) },
                4 => StoreOp::PutOutbox(outbox(rng.pick(&clients), rng.next() % 5, (rng.next() % 4) as f64)),
                5 => StoreOp::DeleteOutbox { client_id: rng.pick(&clients).to_string(), seq: rng.next() % 5 },
                6 => StoreOp::PutMeta { key: rng.pick(&pks).to_string(), value: json!({"round": round}) },
                _ => put_row(sub, rng.pick(&pks), json!(rng.next() as i64)),
            };
            ops.push(op);
        }
        commit_both(&mem, &idb, ops).await;
        assert_same(&mem, &idb).await;
    }
    assert!(idb.compactions() >= 3, "compacted {} times", idb.compactions());
    // What a compaction wrote reads back the same in a new connection.
    let reopened = IndexedDbStore::open(&name).await.unwrap();
    assert_eq!(reopened.load().await.unwrap(), mem.load().await.unwrap());
    drop(reopened);
    drop(idb);
    IndexedDbStore::delete(&name).await.unwrap();
}

/// A load reads the rows' records in ranges of keys and types each range while the next are
/// read; chunks' rows go in without probing the key index and are indexed at once before the
/// log. With more chunks and log records than one range holds, and a log that changes and
/// deletes chunk rows, a reopened store loads what the memory store holds.
#[wasm_bindgen_test]
async fn many_chunks_and_log_records_load_like_the_memory_store() {
    let name = fresh_name("ranges");
    let idb = IndexedDbStore::open(&name).await.unwrap();
    let mem = MemoryStore::new();
    let mut ops = vec![StoreOp::PutSubscription(record("a", Some(1)))];
    ops.extend((0..40_000).map(|i| put_row("a", &format!("k{i:05}"), json!(i))));
    commit_both(&mem, &idb, ops).await;
    // The next commit folds that log record into 20 chunks; the later ones stay in the log.
    idb.set_compaction_threshold(1);
    for round in 0..25 {
        let mut ops = vec![put_row("a", &format!("k{:05}", round * 1_000), json!(-round))];
        ops.push(StoreOp::DeleteRow { sub: sub_id("a"), pk: pk_key(&json!(format!("k{:05}", round * 1_000 + 1))) });
        ops.push(put_row("a", &format!("new{round}"), json!(round)));
        commit_both(&mem, &idb, ops).await;
        if round == 0 {
            assert_eq!(idb.compactions(), 1);
            idb.set_compaction_threshold(usize::MAX);
        }
    }
    drop(idb);
    let idb = IndexedDbStore::open(&name).await.unwrap();
    let s = assert_same(&mem, &idb).await;
    assert_eq!(s.row_count(), 40_000);
    assert_eq!(s.rows[&sub_id("a")].json_row("\"k03000\"").unwrap()["n"], json!(-3));
    assert!(s.rows[&sub_id("a")].json_row("\"k03001\"").is_none());
    drop(idb);
    IndexedDbStore::delete(&name).await.unwrap();
}

/// A commit of many rows is one log record of some hundred kilobytes; a reopened store loads
/// it back. Chromium ended a read-only transaction that was committed explicitly before such a
/// record's `getAll` result had arrived, and the load failed ("the request has not finished"):
/// every replica with a large commit could not be opened.
#[wasm_bindgen_test]
async fn a_large_commit_loads_back_after_reopening() {
    let name = fresh_name("large-commit");
    let idb = IndexedDbStore::open(&name).await.unwrap();
    let mut ops = vec![StoreOp::PutSubscription(record("a", Some(1)))];
    let title = "a title long enough to make this commit's log record about 600 KB";
    for i in 0..5_000 {
        let id = format!("k{i:05}");
        ops.push(StoreOp::PutRow {
            sub: sub_id("a"),
            pk: pk_key(&json!(id)),
            row: row(json!({"id": id, "n": i, "title": title})).into(),
        });
    }
    idb.commit(ops).await.unwrap();
    drop(idb);

    let idb = IndexedDbStore::open(&name).await.unwrap();
    let s = idb.load().await.unwrap();
    assert_eq!(s.row_count(), 5_000);
    assert_eq!(s.rows[&sub_id("a")].json_row("\"k04999\"").unwrap()["n"], json!(4_999));
    drop(idb);
    IndexedDbStore::delete(&name).await.unwrap();
}

/// JavaScript helpers for the bodies of [`raw_db`]: `all(store)` reads every record, `put(store,
/// record)` writes one.
const RAW_HELPERS: &str = "
    const all = (store) => new Promise((resolve, reject) => {
        const q = db.transaction(store).objectStore(store).getAll();
        q.onsuccess = () => resolve(q.result);
        q.onerror = () => reject(q.error);
    });
    const put = (store, record) => new Promise((resolve, reject) => {
        const tx = db.transaction(store, 'readwrite');
        tx.objectStore(store).put(record);
        tx.oncomplete = () => resolve();
        tx.onerror = () => reject(tx.error);
    });
    const kinds = (records) => records.map((r) => typeof r.v === 'string' ? 'json' : r.v instanceof Uint8Array ? 'binary' : 'other');";

/// Opens the database `name` at `version` without the store (`upgrade`: JavaScript run on
/// `db` if it must be created or upgraded), runs `body` (the body of an async function of
/// `db` and `arg`) and closes it again: records as another version of the client wrote them,
/// or damaged ones.
async fn raw_db(name: &str, version: u32, upgrade: &str, body: &str, arg: JsValue) -> JsValue {
    let f = js_sys::Function::new_with_args(
        "name, version, arg",
        &format!(
            "return new Promise((resolve, reject) => {{
                const r = indexedDB.open(name, version);
                r.onupgradeneeded = () => {{ const db = r.result; {upgrade} }};
                r.onerror = () => reject(r.error);
                r.onsuccess = async () => {{
                    const db = r.result;
                    {RAW_HELPERS}
                    try {{ resolve(await (async () => {{ {body} }})()); }} catch (e) {{ reject(e); }} finally {{ db.close(); }}
                }};
            }});"
        ),
    );
    let promise: js_sys::Promise = f.call3(&JsValue::NULL, &name.into(), &version.into(), &arg).unwrap().into();
    wasm_bindgen_futures::JsFuture::from(promise).await.unwrap()
}

/// How the `rows` and `row_log` records of `name` (schema version 3) are stored.
async fn record_kinds(name: &str) -> (Vec<String>, Vec<String>) {
    let kinds =
        raw_db(name, 3, "", "return [kinds(await all('rows')), kinds(await all('row_log'))];", JsValue::NULL).await;
    let kinds: js_sys::Array = kinds.into();
    let strings = |v: JsValue| js_sys::Array::from(&v).iter().filter_map(|k| k.as_string()).collect();
    (strings(kinds.get(0)), strings(kinds.get(1)))
}

/// A replica of schema version 2 (rows as JSON text in chunks and in the log) opens with every
/// row, subscription, cursor, pending write and meta value; the first commit after rewrites
/// its rows in the binary form, and they read back the same.
#[wasm_bindgen_test]
async fn a_replica_of_schema_version_2_opens_and_is_rewritten() {
    let name = fresh_name("v2");
    // What version 2 of this store wrote, record by record.
    let sub = serde_json::to_string(&record("a", Some(77))).unwrap();
    let pending = serde_json::to_string(&outbox("c1", 3, 5.0)).unwrap();
    let chunk = r#"[["\"r1\"", {"id": "r1", "n": 1}], ["\"r2\"", {"id": "r2", "n": 9007199254740993}],
                    ["\"r3\"", {"id": "r3", "n": 3}]]"#;
    let log = r#"[{"put": ["a", "\"r4\"", {"id": "r4", "n": 4}]}, {"delete": ["a", "\"r1\""]},
                  {"put": ["a", "\"r3\"", {"id": "r3", "n": 33}]}]"#;
    let texts = js_sys::Array::of5(&sub.into(), &pending.into(), &chunk.into(), &log.into(), &"\"c1\"".into());
    raw_db(
        &name,
        2,
        "for (const s of ['subscriptions', 'outbox', 'meta', 'rows']) db.createObjectStore(s, { keyPath: 'k' });
         db.createObjectStore('row_log', { keyPath: 'k', autoIncrement: true });",
        "const [sub, pending, chunk, log, client] = arg;
         await put('subscriptions', { k: 'a', v: sub });
         await put('outbox', { k: ['c1', 3], v: pending });
         await put('meta', { k: 'client_id', v: client });
         await put('rows', { k: ['a', 0], v: chunk });
         await put('row_log', { v: log });",
        texts.into(),
    )
    .await;

    let mem = MemoryStore::new();
    mem.commit(vec![
        StoreOp::PutSubscription(record("a", Some(77))),
        put_row("a", "r1", json!(1)),
        put_row("a", "r2", json!(9007199254740993_i64)),
        put_row("a", "r3", json!(3)),
        put_row("a", "r4", json!(4)),
        StoreOp::DeleteRow { sub: sub_id("a"), pk: pk_key(&json!("r1")) },
        put_row("a", "r3", json!(33)),
        StoreOp::PutOutbox(outbox("c1", 3, 5.0)),
        StoreOp::PutMeta { key: "client_id".into(), value: json!("c1") },
    ])
    .await
    .unwrap();
    let idb = IndexedDbStore::open(&name).await.unwrap();
    let s = assert_same(&mem, &idb).await;
    assert_eq!((s.row_count(), s.outbox.len(), s.subscriptions[0].cursor), (3, 1, Some(77)));
    assert_eq!(s.rows[&sub_id("a")].json_row("\"r2\"").unwrap()["n"], json!(9007199254740993_i64));
    assert_eq!(idb.compactions(), 0, "a load writes nothing: it may be a tab that does not lead");

    // The next commit rewrites the rows, whatever it holds.
    commit_both(&mem, &idb, vec![StoreOp::PutMeta { key: "next_seq".into(), value: json!(4) }]).await;
    assert_eq!(idb.compactions(), 1);
    drop(idb);
    assert_eq!(record_kinds(&name).await, (vec!["binary".to_string()], vec![]));
    let idb = IndexedDbStore::open(&name).await.unwrap();
    assert_same(&mem, &idb).await;
    // No second rewrite.
    commit_both(&mem, &idb, vec![StoreOp::PutMeta { key: "next_seq".into(), value: json!(5) }]).await;
    assert_eq!(idb.compactions(), 0);
    drop(idb);
    IndexedDbStore::delete(&name).await.unwrap();
}

/// The schema of a table with every column type.
fn all_types_record() -> SubscriptionRecord {
    let types = ["TEXT", "BOOLEAN", "SMALLINT", "INT", "BIGINT", "FLOAT", "DOUBLE", "DECIMAL(20,3)", "BYTES", "DATE"];
    let mut schema: Vec<ColumnInfo> = types
        .iter()
        .enumerate()
        .map(|(i, ty)| ColumnInfo::new(if i == 0 { "id".into() } else { format!("c{i}") }, *ty))
        .collect();
    schema.extend([
        ColumnInfo::new("ts", "TIMESTAMP"),
        ColumnInfo::new("j", "JSON"),
        ColumnInfo::new("doc", "CRDT_TEXT"),
    ]);
    SubscriptionRecord { schema, ..record("t", Some(1)) }
}

/// Rows of every type, committed by a replica that applied them (typed in the log record),
/// read back exactly, before and after a compaction (typed in chunks).
#[wasm_bindgen_test]
async fn rows_of_every_type_read_back_from_the_log_and_from_chunks() {
    use kalamdb_client_core::replica::Replica;
    let name = fresh_name("all-types");
    let idb = IndexedDbStore::open(&name).await.unwrap();
    let rec = all_types_record();
    let mut replica = Replica::from_snapshot(Snapshot::default());
    let put = |id: &str, v: Value| StoreOp::PutRow { sub: sub_id("t"), pk: pk_key(&json!(id)), row: row(v).into() };
    let ops = vec![
        StoreOp::PutSubscription(rec),
        put(
            "max",
            json!({"id": "max", "c1": true, "c2": 32767, "c3": 2147483647, "c4": i64::MAX, "c5": 1.5,
            "c6": 1e300, "c7": "99999999999999999.999", "c8": "AP8=", "c9": "2026-12-06",
            "ts": "2026-12-06T23:59:59.999999Z", "j": {"a": [1, null]}, "doc": "żółw 🐢 漢字"}),
        ),
        put(
            "min",
            json!({"id": "ąę", "c1": false, "c2": -32768, "c3": -2147483648_i64, "c4": i64::MIN,
            "c5": -0.0, "c6": "-inf", "c7": "-0.001", "c8": "", "c9": "1969-12-31",
            "ts": "1901-01-01T00:00:00.000001Z", "j": "\"text\"", "doc": {"text": "crdt", "state": "AQID"}}),
        ),
        put("big", json!({"id": "big", "c4": 9007199254740993_i64})),
        put("nulls", json!({"id": "nulls"})),
    ];
    replica.apply(&ops);
    idb.commit_applied(ops, &replica).await.unwrap();
    let expected = replica.subscription(&sub_id("t")).map(|d| d.rows.clone()).unwrap();
    assert_eq!(expected.len(), 4);
    assert_eq!(expected.json_row("\"big\"").unwrap()["c4"], json!(9007199254740993_i64));
    drop(idb);
    assert_eq!(record_kinds(&name).await, (vec![], vec!["binary".to_string()]));

    let idb = IndexedDbStore::open(&name).await.unwrap();
    assert_eq!(idb.load().await.unwrap().rows[&sub_id("t")], expected, "typed in the log");
    idb.set_compaction_threshold(0);
    idb.commit(vec![StoreOp::PutMeta { key: "k".into(), value: json!(1) }]).await.unwrap();
    idb.commit(vec![StoreOp::DeleteRow { sub: sub_id("t"), pk: pk_key(&json!("nulls")) }]).await.unwrap();
    assert_eq!(idb.compactions(), 1);
    drop(idb);
    assert_eq!(record_kinds(&name).await, (vec!["binary".to_string()], vec!["binary".to_string()]));
    let idb = IndexedDbStore::open(&name).await.unwrap();
    let mut expected = expected;
    expected.remove("\"nulls\"");
    assert_eq!(idb.load().await.unwrap().rows[&sub_id("t")], expected, "typed in chunks");
    drop(idb);
    IndexedDbStore::delete(&name).await.unwrap();
}

/// A damaged row record fails the load with an error that says so (the client reports it)
/// instead of trapping the engine: a truncated chunk, and bytes that are no record at all.
#[wasm_bindgen_test]
async fn a_damaged_row_record_fails_the_load_with_an_error() {
    let name = fresh_name("damaged");
    let idb = IndexedDbStore::open(&name).await.unwrap();
    let mut ops = vec![StoreOp::PutSubscription(record("a", Some(1)))];
    ops.extend((0..100).map(|i| put_row("a", &format!("r{i}"), json!(i))));
    idb.commit(ops).await.unwrap();
    idb.set_compaction_threshold(0);
    idb.commit(vec![StoreOp::PutMeta { key: "k".into(), value: json!(1) }]).await.unwrap();
    assert_eq!(idb.load().await.unwrap().row_count(), 100);
    drop(idb);

    let cut = "const [chunk] = await all('rows'); await put('rows', { k: chunk.k, v: chunk.v.slice(0, chunk.v.length - 3) });";
    raw_db(&name, 3, "", cut, JsValue::NULL).await;
    let idb = IndexedDbStore::open(&name).await.unwrap();
    let error = idb.load().await.expect_err("a truncated chunk does not load").0;
    assert!(error.contains("corrupt replica record") && error.contains("truncated"), "{error}");
    drop(idb);

    IndexedDbStore::delete(&name).await.unwrap();

    let name = fresh_name("junk");
    let idb = IndexedDbStore::open(&name).await.unwrap();
    idb.commit(vec![StoreOp::PutSubscription(record("a", Some(1))), put_row("a", "r1", json!(1))]).await.unwrap();
    drop(idb);
    raw_db(&name, 3, "", "await put('row_log', { v: new Uint8Array([1, 2, 3, 4, 5]) });", JsValue::NULL).await;
    let idb = IndexedDbStore::open(&name).await.unwrap();
    let error = idb.load().await.expect_err("junk does not load").0;
    assert!(error.contains("corrupt replica record") && error.contains("not a replica record"), "{error}");
    drop(idb);
    IndexedDbStore::delete(&name).await.unwrap();
}

#[wasm_bindgen_test]
fn a_failed_compaction_is_tried_again_once_the_log_has_grown() {
    use kalamdb_wasm::idb::compaction_due;
    // Rows in the old form compact at the next commit; otherwise a log over the threshold.
    assert!(compaction_due(true, 10, 100, 0));
    assert!(!compaction_due(false, 100, 100, 0));
    assert!(compaction_due(false, 101, 100, 0));
    // A compaction failed at 101 bytes of log: not again until the log holds 201.
    assert!(!compaction_due(false, 150, 100, 201));
    assert!(!compaction_due(true, 150, 100, 201));
    assert!(compaction_due(false, 201, 100, 201));
}
