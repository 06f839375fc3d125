//! Local queries over the replica, in the sync engine, without a server: the time of one
//! query (what a live query pays again after every change) on tables of 1,000 and 100,000
//! rows, of the first query of a table (once the first to make a typed copy of its rows), of
//! a local write followed by that query, and of a join with 1,000 lists plus a GROUP BY (lists
//! with their open-item counts).
//!
//! Then "one local write → live result" for a filter, a top-10 and a GROUP BY count query:
//! the write plus what brings a live query's result up to date, before (the query run again
//! from scratch, as live queries did) and after (the incremental dataflow fed the write's row
//! changes, `LiveView::refresh`), in the same run.
//!
//! Then the same with 10,000 local writes already pending (offline for a while): each changed
//! row's value is read with the pending writes to its key replayed.
//!
//! Then 50 live queries open on one table (filters, top-10s and GROUP BY counts with different
//! constants): one local write → all 50 results, and one synced batch of 1,000 changed rows →
//! all 50 results, re-run versus maintained, in the same run.
//!
//! Run: `cargo bench -p kalamdb-client-core --bench local_query`; with an argument
//! (`-- queries`, `-- live`, `-- pending` or `-- fifty`) only that group of cases runs.

use kalamdb_client_core::live::{LiveMode, LiveView};
use kalamdb_client_core::protocol::ws::{MutationKind, MutationOp, ServerMessage};
use kalamdb_client_core::protocol::{ColumnInfo, Role, UserInfo};
use kalamdb_client_core::query::LocalQuery;
use kalamdb_client_core::store::{Snapshot, SubscriptionId};
use kalamdb_client_core::sync::SyncEngine;
use kalamdb_client_core::sync::engine::Effects;
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
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let run = |group: &str| only.as_deref().is_none_or(|o| o == group);
    // `LOCAL_QUERY_ROWS=100000` runs one table size only; `LOCAL_QUERY_SAMPLES=n` takes n
    // samples of each maintained case of `fifty` (for a profiler: `perf record` of a long run).
    let only_rows: Option<usize> = std::env::var("LOCAL_QUERY_ROWS").ok().and_then(|v| v.parse().ok());
    let fifty_samples = std::env::var("LOCAL_QUERY_SAMPLES").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    for (todos, runs) in [(1_000, 300), (100_000, 30)] {
        if only_rows.is_some_and(|rows| rows != todos) {
            continue;
        }
        if run("queries") {
            queries(todos, runs);
        }
        if run("live") {
            live_write_to_result(todos, runs.max(100));
        }
        if run("pending") {
            live_write_with_pending_writes(todos, 10_000, 100);
        }
        if run("fifty") {
            fifty_live_queries(todos, if todos > 10_000 { 10 } else { 100 }, fifty_samples);
        }
    }
}

/// One query over the table (what a re-run costs), the first query of a table, a join with
/// GROUP BY, and a local write followed by the query again.
fn queries(todos: usize, runs: usize) {
    {
        let (mut e, table) = engine_with(todos);
        let top10 = format!("SELECT id, title FROM {table} WHERE done = false ORDER BY n DESC LIMIT 10");
        // (Before the replica stored typed rows, the first query of a table made a typed copy.)
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
    }
}

/// A local insert into `table` (list 7, open, the largest `n` so far): it changes the result of
/// every query shape the benches use.
fn insert(e: &mut SyncEngine, table: &str, id: String, n: usize) -> Effects {
    insert_into_list(e, table, id, n, 7)
}

fn insert_into_list(e: &mut SyncEngine, table: &str, id: String, n: usize, list_id: usize) -> Effects {
    let row = json!({"id": id, "list_id": list_id, "title": "new", "done": false, "n": 1_000_000 + n, "price": "1.00"});
    let op = MutationOp {
        table: table.to_string(),
        op: MutationKind::Insert,
        row: Some(row.as_object().unwrap().clone()),
        pk: None,
    };
    e.write(vec![op], 0.0, || "unused".into()).unwrap().1
}

/// One local write → the live filter result when `pending` writes to other rows of the table
/// are already in the outbox (nothing confirms them: there is no server). They go to another
/// list, so the result stays as small as without them.
fn live_write_with_pending_writes(todos: usize, pending: usize, samples: usize) {
    let (mut e, table) = engine_with(todos);
    for i in 0..pending {
        insert_into_list(&mut e, &table, format!("pending{i:06}"), i, 8);
    }
    let sql = format!("SELECT id, title, price FROM {table} WHERE list_id = 7");
    let (mut view, _) = LiveView::start(LocalQuery::parse(&sql, &[]).unwrap(), e.replica()).unwrap();
    assert_eq!(view.mode(), LiveMode::Incremental, "{sql}");
    let maintained = (0..samples)
        .map(|i| {
            let t = Instant::now();
            let fx = insert(&mut e, &table, format!("live{i:06}"), pending + i);
            std::hint::black_box(view.refresh(e.replica(), &fx.touched, &fx.changes).expect("the result changes"));
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    report(
        &format!("{todos} rows, {pending} pending writes: local write -> live filter result, incremental"),
        maintained,
    );
}

/// 50 live queries on one table: a third filters, a third top-10s, a third GROUP BY counts,
/// each with its own constant.
fn fifty_queries(table: &str) -> Vec<String> {
    (0..50)
        .map(|i| match i % 3 {
            0 => format!("SELECT id, title, price FROM {table} WHERE list_id = {}", 7 + i),
            1 => format!(
                "SELECT id, title, n FROM {table} WHERE done = false AND list_id >= {i} ORDER BY n DESC LIMIT 10"
            ),
            _ => format!("SELECT list_id, count(*) AS todos FROM {table} WHERE n >= {i} GROUP BY list_id"),
        })
        .collect()
}

/// A synced batch of 1,000 rows changed on the server: the first 1,000 rows of the table get a
/// new `n`, `done` and `list_id`.
fn synced_batch(e: &mut SyncEngine, round: usize, cursor: i64) -> Effects {
    let rows = (0..1000)
        .map(|i| {
            vec![
                json!(format!("k{i:07}")),
                json!((i + round) % 1000),
                json!(format!("item {i}")),
                json!((i + round).is_multiple_of(2)),
                json!(2_000_000 + round * 1000 + i),
                json!("3.00"),
            ]
        })
        .collect();
    let batch = ServerMessage::Batch { id: "todos".into(), rows, deleted: vec![], cursor, reset: false, last: true };
    e.on_message(batch, 0.0)
}

/// 50 live queries open on one table: one local write → all 50 results, and one synced batch
/// of 1,000 changes → all 50 results; re-run (`rerun_samples`) versus maintained.
fn fifty_live_queries(todos: usize, rerun_samples: usize, samples: usize) {
    // `LOCAL_QUERY_NO_RERUN=1` skips the re-run cases (slow on 100,000 rows) while working on
    // the maintained ones.
    if std::env::var_os("LOCAL_QUERY_NO_RERUN").is_none() {
        fifty_rerun(todos, rerun_samples);
    }
    fifty_maintained(todos, samples);
}

fn fifty_rerun(todos: usize, rerun_samples: usize) {
    // Re-run: every live query on the touched table runs again.
    let (mut e, table) = engine_with(todos);
    let queries = fifty_queries(&table);
    let rerun_all = |e: &SyncEngine| {
        for sql in &queries {
            std::hint::black_box(e.query(sql, &[]).unwrap());
        }
    };
    let local = (0..rerun_samples)
        .map(|i| {
            let t = Instant::now();
            insert(&mut e, &table, format!("live{i:06}"), i);
            rerun_all(&e);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    report(&format!("{todos} rows, 50 live queries: local write -> 50 results, re-run"), local);
    let synced = (0..rerun_samples)
        .map(|i| {
            let t = Instant::now();
            synced_batch(&mut e, i, 2 + i as i64);
            rerun_all(&e);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    report(&format!("{todos} rows, 50 live queries: synced batch of 1,000 changes -> 50 results, re-run"), synced);
}

fn fifty_maintained(todos: usize, samples: usize) {
    // Maintained: every live query is fed the commit's row changes.
    let (mut e, table) = engine_with(todos);
    let started = Instant::now();
    let mut views: Vec<LiveView> = fifty_queries(&table)
        .iter()
        .map(|sql| {
            let (view, _) = LiveView::start(LocalQuery::parse(sql, &[]).unwrap(), e.replica()).unwrap();
            assert_eq!(view.mode(), LiveMode::Incremental, "{sql}");
            view
        })
        .collect();
    println!(
        "{todos} rows, 50 live queries: started (first results) in {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    // Time of the refreshes by query kind (the index modulo 3 in `fifty_queries`), summed over
    // the samples of the current case.
    let mut by_kind = [0.0f64; 3];
    let mut refresh_all = |e: &SyncEngine, fx: &Effects, by_kind: &mut [f64; 3]| {
        for (i, view) in views.iter_mut().enumerate() {
            let t = Instant::now();
            std::hint::black_box(view.refresh(e.replica(), &fx.touched, &fx.changes));
            by_kind[i % 3] += t.elapsed().as_secs_f64() * 1e6;
        }
    };
    let report_kinds = |what: &str, by_kind: &mut [f64; 3]| {
        let [filters, top_tens, group_bys] = by_kind.map(|t| t / samples as f64);
        println!(
            "{todos} rows, 50 live queries:   {what} refreshes by kind, mean: 17 filters {filters:.0} µs, \
             17 top-10s {top_tens:.0} µs, 16 GROUP BYs {group_bys:.0} µs"
        );
        *by_kind = [0.0; 3];
    };
    // The commit (the engine applying the write or batch, which also reads the changed rows)
    // and the 50 refreshes are timed apart too, to show where the time goes.
    let (mut local, mut local_commit, mut local_refresh) = (vec![], vec![], vec![]);
    for i in 0..samples {
        let t = Instant::now();
        let fx = insert(&mut e, &table, format!("live{i:06}"), i);
        let committed = t.elapsed().as_secs_f64() * 1e6;
        refresh_all(&e, &fx, &mut by_kind);
        let total = t.elapsed().as_secs_f64() * 1e6;
        local.push(total);
        local_commit.push(committed);
        local_refresh.push(total - committed);
    }
    report(&format!("{todos} rows, 50 live queries: local write -> 50 results, incremental"), local);
    report(&format!("{todos} rows, 50 live queries:   of which the local write"), local_commit);
    report(&format!("{todos} rows, 50 live queries:   of which the 50 refreshes"), local_refresh);
    report_kinds("local write:", &mut by_kind);
    let (mut synced, mut synced_commit, mut synced_refresh) = (vec![], vec![], vec![]);
    for i in 0..samples {
        let t = Instant::now();
        let fx = synced_batch(&mut e, i, 2 + i as i64);
        let committed = t.elapsed().as_secs_f64() * 1e6;
        refresh_all(&e, &fx, &mut by_kind);
        let total = t.elapsed().as_secs_f64() * 1e6;
        synced.push(total);
        synced_commit.push(committed);
        synced_refresh.push(total - committed);
    }
    report(&format!("{todos} rows, 50 live queries: synced batch of 1,000 changes -> 50 results, incremental"), synced);
    report(&format!("{todos} rows, 50 live queries:   of which the batch"), synced_commit);
    report(&format!("{todos} rows, 50 live queries:   of which the 50 refreshes"), synced_refresh);
    report_kinds("synced batch:", &mut by_kind);
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
    let write = |e: &mut SyncEngine, table: &str, i: usize| insert(e, table, format!("live{i:06}"), i);
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
