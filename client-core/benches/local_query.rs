//! Local queries over the replica, in the sync engine, without a server: the time of one
//! query (what a live query pays again after every change) on tables of 1,000 and 100,000
//! rows, of the first query of a table (which makes the replica's typed copy of its rows), of
//! a local write followed by that query, and of a join with 1,000 lists plus a GROUP BY (lists
//! with their open-item counts).
//!
//! Then "one local write → live result" for a filter, a top-10 and a GROUP BY count query:
//! the write plus what brings a live query's result up to date, before (the query run again
//! from scratch, as live queries did) and after (the incremental dataflow fed the write's row
//! changes, `LiveView::refresh`), in the same run.
//!
//! Run: `cargo bench -p kalamdb-client-core --bench local_query`.

use kalamdb_client_core::live::{LiveMode, LiveView};
use kalamdb_client_core::protocol::ws::{MutationKind, MutationOp, ServerMessage};
use kalamdb_client_core::protocol::{ColumnInfo, Role, UserInfo};
use kalamdb_client_core::query::LocalQuery;
use kalamdb_client_core::store::{Snapshot, SubscriptionId};
use kalamdb_client_core::sync::SyncEngine;
use serde_json::{Value, json};
use std::time::Instant;

/// An online engine whose replica holds `todos` rows of `app.todos_<todos>` and 1,000 rows of
/// `app.lists`.
fn engine_with(todos: usize) -> (SyncEngine, String) {
    let table = format!("app.todos_{todos}");
    let (mut e, _) = SyncEngine::new(Snapshot::default(), || "bench".into());
    e.subscribe(SubscriptionId("todos".into()), format!("SELECT * FROM {table}")).unwrap();
    e.subscribe(SubscriptionId("lists".into()), "SELECT * FROM app.lists".into()).unwrap();
    e.on_open("token".into());
    let user = UserInfo { id: "1".into(), username: "u".into(), role: Role::User };
    e.on_message(ServerMessage::AuthOk { user, expires_at: "2030-01-01T00:00:00Z".into() }, 0.0);
    let schema = vec![
        ColumnInfo::new("id", "TEXT"),
        ColumnInfo::new("list_id", "BIGINT"),
        ColumnInfo::new("title", "TEXT"),
        ColumnInfo::new("done", "BOOLEAN"),
        ColumnInfo::new("n", "BIGINT"),
        ColumnInfo::new("price", "DECIMAL(10,2)"),
    ];
    e.on_message(
        ServerMessage::Subscribed { id: "todos".into(), live_id: "l".into(), schema, primary_key: "id".into() },
        0.0,
    );
    let rows: Vec<Vec<Value>> = (0..todos)
        .map(|i| {
            let price = format!("{}.{:02}", i % 1000, i % 100);
            vec![
                json!(format!("k{i:07}")),
                json!(i % 1000),
                json!(format!("item {i}")),
                json!(i % 2 == 0),
                json!(i),
                json!(price),
            ]
        })
        .collect();
    let batch = ServerMessage::Batch { id: "todos".into(), rows, deleted: vec![], cursor: 1, reset: false, last: true };
    e.on_message(batch, 0.0);
    let schema = vec![ColumnInfo::new("id", "BIGINT"), ColumnInfo::new("name", "TEXT")];
    e.on_message(
        ServerMessage::Subscribed { id: "lists".into(), live_id: "l2".into(), schema, primary_key: "id".into() },
        0.0,
    );
    let rows = (0..1000).map(|i| vec![json!(i), json!(format!("list {i}"))]).collect();
    let batch = ServerMessage::Batch { id: "lists".into(), rows, deleted: vec![], cursor: 1, reset: false, last: true };
    e.on_message(batch, 0.0);
    (e, table)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(what: &str, mut samples: Vec<f64>) {
    samples.sort_by(f64::total_cmp);
    println!(
        "{what}: p50 {:.0} µs, p99 {:.0} µs ({} samples)",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.len()
    );
}

fn time_query(e: &SyncEngine, sql: &str, runs: usize) -> Vec<f64> {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            let rows = e.query(sql, &[]).unwrap().rows.len();
            std::hint::black_box(rows);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

fn main() {
    for (todos, runs) in [(1_000, 300), (100_000, 30)] {
        let (mut e, table) = engine_with(todos);
        let top10 = format!("SELECT id, title FROM {table} WHERE done = false ORDER BY n DESC LIMIT 10");
        // The first query of a table also makes the replica's typed copy of its rows.
        report(&format!("{todos} rows: first query of the table"), time_query(&e, &top10, 1));
        report(&format!("{todos} rows: {top10}"), time_query(&e, &top10, runs));
        let all = format!("SELECT * FROM {table}");
        report(&format!("{todos} rows: {all}"), time_query(&e, &all, runs));
        let open_counts = format!(
            "SELECT l.id, l.name, count(t.id) AS open, sum(t.price) AS total FROM app.lists l \
             LEFT JOIN {table} t ON t.list_id = l.id AND t.done = false GROUP BY l.id, l.name ORDER BY open DESC, l.id LIMIT 10"
        );
        report(
            &format!("{todos} rows: lists with open-item counts (join + GROUP BY)"),
            time_query(&e, &open_counts, runs),
        );

        // A local write, then the query a live query on the table runs again.
        let samples = (0..runs)
            .map(|i| {
                let t = Instant::now();
                let row = json!({"id": format!("w{i:05}"), "list_id": 1, "title": "new", "done": false, "n": -1, "price": "1.00"});
                let op = MutationOp {
                    table: table.clone(),
                    op: MutationKind::Insert,
                    row: Some(row.as_object().unwrap().clone()),
                    pk: None,
                };
                e.write(vec![op], 0.0, || "unused".into()).unwrap();
                std::hint::black_box(e.query(&top10, &[]).unwrap());
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        report(&format!("{todos} rows: local insert, then the top-10 query again"), samples);
        live_write_to_result(todos, runs.max(100));
    }
}

/// One local write → the live result, re-run versus maintained, for three query shapes. Each
/// measurement starts from a fresh engine: the writes stay pending (there is no server), and a
/// longer outbox costs both ways.
fn live_write_to_result(todos: usize, samples: usize) {
    let queries = [
        ("filter", "SELECT id, title, price FROM {table} WHERE list_id = 7"),
        ("top-10", "SELECT id, title, n FROM {table} WHERE done = false ORDER BY n DESC LIMIT 10"),
        ("GROUP BY count", "SELECT list_id, count(*) AS todos FROM {table} GROUP BY list_id"),
    ];
    // Every write changes every result: list 7, open, and the largest `n` so far.
    let write = |e: &mut SyncEngine, table: &str, i: usize| {
        let row = json!({"id": format!("live{i:06}"), "list_id": 7, "title": "new", "done": false,
                         "n": 1_000_000 + i, "price": "1.00"});
        let op = MutationOp {
            table: table.to_string(),
            op: MutationKind::Insert,
            row: Some(row.as_object().unwrap().clone()),
            pk: None,
        };
        e.write(vec![op], 0.0, || "unused".into()).unwrap().1
    };
    for (name, sql) in queries {
        let (mut e, table) = engine_with(todos);
        let sql = sql.replace("{table}", &table);
        let rerun = (0..samples)
            .map(|i| {
                let t = Instant::now();
                write(&mut e, &table, i);
                std::hint::black_box(e.query(&sql, &[]).unwrap());
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        report(&format!("{todos} rows: local write -> live {name} result, re-run"), rerun);

        let (mut e, table) = engine_with(todos);
        let (mut view, _) = LiveView::start(LocalQuery::parse(&sql, &[]).unwrap(), e.replica()).unwrap();
        assert_eq!(view.mode(), LiveMode::Incremental, "{sql}");
        let maintained = (0..samples)
            .map(|i| {
                let t = Instant::now();
                let fx = write(&mut e, &table, i);
                let result = view.refresh(e.replica(), &fx.touched, &fx.changes);
                assert!(result.is_some(), "every write changes the result");
                std::hint::black_box(result);
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        report(&format!("{todos} rows: local write -> live {name} result, incremental"), maintained);
    }
}
