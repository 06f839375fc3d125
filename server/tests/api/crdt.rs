//! CRDT_TEXT columns: Yjs documents that SQL reads and writes as text, sync frames carry as
//! `{"text", "state"}`, and `mutate` updates merge into without losing concurrent edits.

use crate::common::*;
use kalamdb_client_core::crdt::{CrdtText, CrdtValue, encode_base64};
use kalamdb_client_core::protocol::ErrorCode;
use kalamdb_client_core::protocol::ws::{ChangeOp, MutateResult, MutationStatus, ServerMessage};
use serde_json::{Value, json};

async fn setup(s: &TestServer) -> (Auth, WsClient) {
    s.sql_ok(
        &Auth::root(),
        "CREATE NAMESPACE app; CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body CRDT_TEXT)",
    )
    .await;
    let alice = s.create_user("alice").await;
    let ws = WsClient::connect_as(s, "alice", "alice-password").await;
    (alice, ws)
}

async fn body(s: &TestServer, auth: &Auth, id: i64) -> Value {
    let r = s.sql_ok(auth, &format!("SELECT body FROM app.notes WHERE id = {id}")).await;
    r.rows(0).first().map(|row| row[0].clone()).unwrap_or(Value::Null)
}

/// Subscribes and returns the rows of the initial load.
async fn subscribe(ws: &mut WsClient, id: &str, sql: &str) -> Vec<Vec<Value>> {
    ws.send_json(json!({"type": "subscribe", "id": id, "sql": sql})).await;
    assert!(matches!(ws.recv().await, ServerMessage::Subscribed { .. }));
    let mut rows = Vec::new();
    loop {
        match ws.recv().await {
            ServerMessage::Batch { rows: r, last, .. } => {
                rows.extend(r);
                if last {
                    return rows;
                }
            }
            other => panic!("expected batch, got {other:?}"),
        }
    }
}

async fn next_change(ws: &mut WsClient) -> Change {
    match ws.recv().await {
        ServerMessage::Change { op, row, old, .. } => (op, row, old),
        other => panic!("expected change, got {other:?}"),
    }
}

type Change = (ChangeOp, Vec<Value>, Option<Vec<Value>>);

/// Sends a `mutate` and waits for its result, keeping the change frames that arrive first.
async fn mutate(ws: &mut WsClient, client_id: &str, seq: u64, ops: Value) -> (MutateResult, Vec<Change>) {
    ws.send_json(json!({"type": "mutate", "client_id": client_id, "seq": seq, "ops": ops})).await;
    let mut changes = Vec::new();
    loop {
        match ws.recv().await {
            ServerMessage::MutateResult(r) => return (r, changes),
            ServerMessage::Change { op, row, old, .. } => changes.push((op, row, old)),
            other => panic!("expected mutate_result, got {other:?}"),
        }
    }
}

/// A sync-frame CRDT value: checks its shape and that its state decodes to its text.
fn decode(v: &Value) -> CrdtText {
    let value: CrdtValue =
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("not {{text,state}}: {v} ({e})"));
    let doc = value.to_doc().expect("state decodes");
    assert_eq!(doc.text(), value.text, "state and text disagree");
    doc
}

fn update_op(id: i64, update: &[u8]) -> Value {
    json!({"table": "app.notes", "op": "update", "pk": id, "row": {"body": {"update": encode_base64(update)}}})
}

#[tokio::test]
async fn crdt_sql_writes_read_back_as_text() {
    let mut s = TestServer::start().await;
    let (alice, _ws) = setup(&s).await;
    s.sql_ok(&alice, "INSERT INTO app.notes (id, body) VALUES (1, 'hello world'), (2, NULL)").await;
    let r = s.sql_params(&alice, "INSERT INTO app.notes (id, body) VALUES (3, $1)", json!(["héllo 👋 wörld"])).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(body(&s, &alice, 1).await, json!("hello world"));
    assert_eq!(body(&s, &alice, 2).await, Value::Null);
    assert_eq!(body(&s, &alice, 3).await, json!("héllo 👋 wörld"));

    // Point update, parameter update, expression update (planned path) and NULL.
    s.sql_ok(&alice, "UPDATE app.notes SET body = 'hello there world' WHERE id = 1").await;
    assert_eq!(body(&s, &alice, 1).await, json!("hello there world"));
    let r = s.sql_params(&alice, "UPDATE app.notes SET body = $1 WHERE id = 3", json!(["héllo 👍 wörld"])).await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.sql_ok(&alice, "UPDATE app.notes SET body = body || '!' WHERE body LIKE 'hello%'").await;
    assert_eq!(body(&s, &alice, 1).await, json!("hello there world!"));
    s.sql_ok(&alice, "UPDATE app.notes SET body = 'now set' WHERE id = 2").await;
    assert_eq!(body(&s, &alice, 2).await, json!("now set"));

    // DataFusion sees plain text: WHERE, LIKE, functions, ORDER BY.
    let r = s.sql_ok(&alice, "SELECT id, upper(body) FROM app.notes WHERE body LIKE '%w_rld%' ORDER BY id").await;
    assert_eq!(r.rows(0), &vec![json!([1, "HELLO THERE WORLD!"]), json!([3, "HÉLLO 👍 WÖRLD"])]);
    let r = s.sql_ok(&alice, "SELECT body FROM app.notes WHERE body = 'now set'").await;
    assert_eq!(r.rows(0), &vec![json!(["now set"])]);
    let r = s.sql_ok(&alice, "SELECT * FROM app.notes WHERE id = 3").await;
    assert_eq!(r.rows(0), &vec![json!([3, "héllo 👍 wörld"])]);
    s.sql_ok(&alice, "UPDATE app.notes SET body = NULL WHERE id = 2").await;
    assert_eq!(body(&s, &alice, 2).await, Value::Null);

    // Documents survive a restart.
    s.restart();
    assert_eq!(body(&s, &alice, 1).await, json!("hello there world!"));
    assert_eq!(body(&s, &alice, 3).await, json!("héllo 👍 wörld"));
}

#[tokio::test]
async fn crdt_sync_frames_carry_text_and_state() {
    let s = TestServer::start().await;
    let (alice, mut ws) = setup(&s).await;
    s.sql_ok(&alice, "INSERT INTO app.notes (id, body) VALUES (1, 'alpha'), (2, NULL), (3, 'beta')").await;
    // The WHERE of a live query sees the plain text.
    let rows = subscribe(&mut ws, "n", "SELECT id, body FROM app.notes WHERE body LIKE 'al%' OR body IS NULL").await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][0], json!(1));
    assert_eq!(decode(&rows[0][1]).text(), "alpha");
    assert_eq!(rows[1], vec![json!(2), Value::Null]);

    s.sql_ok(&alice, "UPDATE app.notes SET body = 'alphabet' WHERE id = 1").await;
    let (op, row, old) = next_change(&mut ws).await;
    assert_eq!(op, ChangeOp::Update);
    assert_eq!(decode(&row[1]).text(), "alphabet");
    let old = old.expect("old");
    let old_doc = decode(&old[1]);
    assert_eq!(old_doc.text(), "alpha");
    // The new state is the old document plus an edit: a replica holding the old state
    // reaches the new text by merging.
    let mut replica = old_doc;
    replica.apply_update(&decode(&row[1]).state()).unwrap();
    assert_eq!(replica.text(), "alphabet");

    // A change that makes a row match arrives as an insert; text-only writes work over mutate too.
    let (r, mut changes) = mutate(
        &mut ws,
        "dev",
        1,
        json!([{"table": "app.notes", "op": "update", "pk": 3, "row": {"body": "alpha beta"}},
               {"table": "app.notes", "op": "insert", "row": {"id": 4, "body": "almost"}}]),
    )
    .await;
    assert_eq!(r.status, MutationStatus::Applied, "{r:?}");
    while changes.len() < 2 {
        changes.push(next_change(&mut ws).await);
    }
    let (op, row, _) = &changes[0];
    assert_eq!((*op, &row[0]), (ChangeOp::Insert, &json!(3)));
    assert_eq!(decode(&row[1]).text(), "alpha beta");
    let (op, row, _) = &changes[1];
    assert_eq!((*op, &row[0]), (ChangeOp::Insert, &json!(4)));
    assert_eq!(decode(&row[1]).text(), "almost");
    s.sql_ok(&alice, "UPDATE app.notes SET body = 'gone' WHERE id = 4").await;
    let (op, row, _) = next_change(&mut ws).await;
    assert_eq!((op, &row[0]), (ChangeOp::Delete, &json!(4)));
    assert_eq!(decode(&row[1]).text(), "almost");
}

#[tokio::test]
async fn crdt_concurrent_mutate_updates_both_survive() {
    let s = TestServer::start().await;
    let (alice, mut ws) = setup(&s).await;
    s.sql_ok(&alice, "INSERT INTO app.notes (id, body) VALUES (1, 'hello world')").await;
    let rows = subscribe(&mut ws, "n", "SELECT * FROM app.notes").await;
    let base = decode(&rows[0][1]).state();

    // Two devices edit the same base offline, each with its own yrs document.
    let mut a = CrdtText::from_state(&base).unwrap();
    let mut b = CrdtText::from_state(&base).unwrap();
    assert_ne!(a.client_id(), b.client_id());
    let base_sv = a.state_vector();
    a.insert(0, "A: ");
    b.insert(11, " (B)");
    // Device A sends only its edits (a diff); device B sends its whole state.
    let (r, mut changes) = mutate(&mut ws, "dev-a", 1, json!([update_op(1, &a.diff(&base_sv).unwrap())])).await;
    assert_eq!(r.status, MutationStatus::Applied, "{r:?}");
    let (r, more) = mutate(&mut ws, "dev-b", 1, json!([update_op(1, &b.state())])).await;
    assert_eq!(r.status, MutationStatus::Applied, "{r:?}");
    changes.extend(more);
    assert_eq!(body(&s, &alice, 1).await, json!("A: hello world (B)"));

    // Subscribers see the merged document; it converges with both devices.
    while changes.len() < 2 {
        changes.push(next_change(&mut ws).await);
    }
    assert_eq!(decode(&changes[0].1[1]).text(), "A: hello world");
    let merged = decode(&changes[1].1[1]);
    assert_eq!(merged.text(), "A: hello world (B)");
    a.apply_update(&merged.state()).unwrap();
    assert_eq!(a.text(), "A: hello world (B)");

    // Insert with an update builds a new document from it.
    let fresh = CrdtText::from_text("from a device");
    let (r, _) = mutate(
        &mut ws,
        "dev-a",
        2,
        json!([{"table": "app.notes", "op": "insert", "row": {"id": 2, "body": {"update": encode_base64(&fresh.state())}}}]),
    )
    .await;
    assert_eq!(r.status, MutationStatus::Applied, "{r:?}");
    assert_eq!(body(&s, &alice, 2).await, json!("from a device"));
}

#[tokio::test]
async fn crdt_sql_update_merges_with_a_concurrent_crdt_update() {
    let s = TestServer::start().await;
    let (alice, mut ws) = setup(&s).await;
    s.sql_ok(&alice, "INSERT INTO app.notes (id, body) VALUES (1, 'hello world')").await;
    let rows = subscribe(&mut ws, "n", "SELECT id, body FROM app.notes").await;
    let mut device = decode(&rows[0][1]);
    let base_sv = device.state_vector();
    device.insert(6, "big ");
    // SQL rewrites the text while the device's edit is in flight; both survive.
    s.sql_ok(&alice, "UPDATE app.notes SET body = 'hello world!' WHERE id = 1").await;
    s.sql_ok(&alice, "UPDATE app.notes SET body = 'Hello world!' WHERE id = 1").await;
    let (r, _) = mutate(&mut ws, "dev", 1, json!([update_op(1, &device.diff(&base_sv).unwrap())])).await;
    assert_eq!(r.status, MutationStatus::Applied, "{r:?}");
    assert_eq!(body(&s, &alice, 1).await, json!("Hello big world!"));
}

#[tokio::test]
async fn crdt_malformed_updates_are_rejected_and_write_nothing() {
    let s = TestServer::start().await;
    let (alice, mut ws) = setup(&s).await;
    s.sql_ok(&alice, "INSERT INTO app.notes (id, body) VALUES (1, 'keep me')").await;
    // A diff whose base the server never had (another document's history).
    let mut elsewhere = CrdtText::from_text("unrelated");
    let sv = elsewhere.state_vector();
    elsewhere.insert(0, "x");
    let orphan = elsewhere.diff(&sv).unwrap();
    let bad_bodies = [
        json!({"update": "%%% not base64"}),
        json!({"update": encode_base64(b"definitely not a yjs update")}),
        json!({"update": ""}),
        json!({"update": encode_base64(&orphan)}),
        json!({"text": "x", "state": ""}),
        json!({"update": encode_base64(&CrdtText::from_text("x").state()), "extra": 1}),
        json!(42),
        json!(["a"]),
    ];
    for (seq, bad) in bad_bodies.into_iter().enumerate() {
        // A valid op first: the message is atomic, so it must not be written either.
        let ops = json!([
            {"table": "app.notes", "op": "insert", "row": {"id": 100 + seq, "body": "should not exist"}},
            {"table": "app.notes", "op": "update", "pk": 1, "row": {"body": bad.clone()}},
        ]);
        let (r, _) = mutate(&mut ws, "dev", seq as u64 + 1, ops).await;
        assert_eq!((r.status, r.code), (MutationStatus::Rejected, Some(ErrorCode::ValidationError)), "{bad}: {r:?}");
        let reason = r.reason.unwrap_or_default();
        assert!(reason.contains("body"), "{bad}: {reason}");
    }
    // An insert with a malformed update is rejected the same way.
    let (r, _) = mutate(
        &mut ws,
        "dev",
        50,
        json!([{"table": "app.notes", "op": "insert", "row": {"id": 7, "body": {"update": encode_base64(&[0xff; 8])}}}]),
    )
    .await;
    assert_eq!((r.status, r.code), (MutationStatus::Rejected, Some(ErrorCode::ValidationError)), "{r:?}");
    let r = s.sql_ok(&alice, "SELECT id, body FROM app.notes ORDER BY id").await;
    assert_eq!(r.rows(0), &vec![json!([1, "keep me"])]);
    // SQL takes text only.
    s.sql_err(&alice, "UPDATE app.notes SET body = 5 WHERE id = 1", 400, "VALIDATION_ERROR").await;
    let r = s.sql_params(&alice, "UPDATE app.notes SET body = $1 WHERE id = 1", json!([{"update": "AAAA"}])).await;
    assert_eq!(r.code(), "VALIDATION_ERROR", "{}", r.body);
    assert_eq!(body(&s, &alice, 1).await, json!("keep me"));
}
