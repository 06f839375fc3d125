//! A large replica in the native sync engine, without a server: the rows of the start-up
//! measurement of `scripts/measure-idb-startup.mjs` (5 columns: `id TEXT` key, `title TEXT`,
//! `done BOOLEAN`, `priority INT`, `created TIMESTAMP`; ~110 bytes of JSON per row).
//!
//! - **catch-up:** `Batch` frames of 1,000 rows, each parsed from its JSON text, applied by the
//!   engine and committed to a [`MemoryStore`] as the sync driver does (rows/s);
//! - **open:** a new engine from that store's snapshot, then the first local query
//!   (`SELECT count(*)`) and a top-10 query after it (the start-up of an app on a large
//!   replica);
//! - **point query:** `WHERE id = $1` on the primary key, through its index and through a
//!   scan; `WHERE title = $1` through the column index the first such query makes, and
//!   through a scan;
//! - **store format:** the rows in chunks of 2,000 as the IndexedDB store writes them, in its
//!   binary record format and in the JSON of its schema version 2, each read back into typed
//!   rows (the decoding part of opening an IndexedDB replica);
//! - **memory:** bytes held (a counting allocator) by the store alone, and by the opened
//!   engine on top of it, against the rows' JSON text.
//!
//! Run: `cargo bench -p kalamdb-client-core --bench replica` (`REPLICA_ROWS=100000` for
//! another size; 1,000,000 by default; `REPLICA_CATCHUP_ONLY=1` stops after the catch-up, to
//! profile it alone).

use futures::FutureExt;
use kalamdb_client_core::protocol::ws::ServerMessage;
use kalamdb_client_core::protocol::{ColumnInfo, Role, UserInfo};
use kalamdb_client_core::replica::SubscriptionRows;
use kalamdb_client_core::store::binary::{self, RecordWriter};
use kalamdb_client_core::store::{MemoryStore, ReplicaStore, Row, RowsBySubscription, Snapshot, SubscriptionId};
use kalamdb_client_core::sync::SyncEngine;
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocated_mb() -> f64 {
    ALLOCATED.load(Ordering::Relaxed) as f64 / 1e6
}

const TABLE: &str = "app.todos";

/// An engine online with its subscription to `app.todos` accepted.
fn online_engine(snapshot: Snapshot) -> SyncEngine {
    let (mut e, _) = SyncEngine::new(snapshot, || "bench".into());
    e.subscribe(SubscriptionId("todos".into()), format!("SELECT * FROM {TABLE}")).unwrap();
    e.on_open("token".into());
    let user = UserInfo { id: "1".into(), username: "bench".into(), role: Role::User };
    e.on_message(ServerMessage::AuthOk { user, expires_at: "2030-01-01T00:00:00Z".into() }, 0.0);
    let schema = vec![
        ColumnInfo::new("id", "TEXT"),
        ColumnInfo::new("title", "TEXT"),
        ColumnInfo::new("done", "BOOLEAN"),
        ColumnInfo::new("priority", "INT"),
        ColumnInfo::new("created", "TIMESTAMP"),
    ];
    e.on_message(
        ServerMessage::Subscribed { id: "todos".into(), live_id: "l".into(), schema, primary_key: "id".into() },
        0.0,
    );
    e
}

/// The `Batch` frames of a first sync of `rows` rows, as JSON text, and the rows' JSON size.
fn frames(rows: usize) -> (Vec<String>, usize) {
    let mut raw = 0;
    let frames = (0..rows.div_ceil(1000))
        .map(|chunk| {
            let batch_rows: Vec<Vec<serde_json::Value>> = (chunk * 1000..((chunk + 1) * 1000).min(rows))
                .map(|i| {
                    let row = vec![
                        json!(format!("0190a1b2-c3d4-7e5f-8a9b-{i:012}")),
                        json!(format!("Buy groceries for the week, item {i}")),
                        json!(i % 3 == 0),
                        json!(i % 5),
                        json!("2026-03-01T12:34:56.789012Z"),
                    ];
                    raw += serde_json::to_string(&row).unwrap().len();
                    row
                })
                .collect();
            let last = (chunk + 1) * 1000 >= rows;
            let batch = ServerMessage::Batch {
                id: "todos".into(),
                rows: batch_rows,
                deleted: vec![],
                cursor: chunk as i64 + 1,
                reset: false,
                last,
            };
            serde_json::to_string(&batch).unwrap()
        })
        .collect();
    (frames, raw)
}

/// The rows as the IndexedDB store keeps them on disk, in chunks of 2,000: written and read
/// back in the binary record format (`kalamdb_client_core::store::binary`) and in the JSON
/// text of schema version 2 (the rows typed from it as the store does).
fn store_formats(snapshot: &Snapshot) {
    const CHUNK: usize = 2_000;
    let sub = SubscriptionId("todos".into());
    let rows = &snapshot.rows[&sub];
    let keys: Vec<_> = rows.keys().collect();
    let t = Instant::now();
    let binary: Vec<Vec<u8>> = keys
        .chunks(CHUNK)
        .map(|chunk| {
            let mut w = RecordWriter::new();
            w.put_all(&sub, rows, chunk).unwrap();
            w.finish()
        })
        .collect();
    let written = t.elapsed().as_secs_f64();
    let json: Vec<String> = keys
        .chunks(CHUNK)
        .map(|chunk| {
            let chunk: Vec<(&str, Row)> =
                chunk.iter().map(|k| (&**k, rows.json_row(k).unwrap().into_owned())).collect();
            serde_json::to_string(&chunk).unwrap()
        })
        .collect();
    let size = |n: usize| n as f64 / 1e6;
    let empty = || RowsBySubscription::from_iter([(sub.clone(), SubscriptionRows::new(rows.columns().cloned()))]);
    let t = Instant::now();
    let mut from_binary = empty();
    for record in &binary {
        binary::replay(record, &mut from_binary).unwrap();
    }
    let read_binary = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut from_json = empty();
    for text in &json {
        from_json.get_mut(&sub).unwrap().put_json_text(text).unwrap();
    }
    let read_json = t.elapsed().as_secs_f64();
    assert!(from_binary[&sub] == *rows && from_json[&sub] == *rows);
    println!(
        "store format: binary chunks {:.1} MB, written in {:.0} ms, read in {:.0} ms; JSON chunks (schema 2) {:.1} MB, read in {:.0} ms",
        size(binary.iter().map(Vec::len).sum()),
        written * 1e3,
        read_binary * 1e3,
        size(json.iter().map(String::len).sum()),
        read_json * 1e3,
    );
}

fn main() {
    let rows: usize = std::env::var("REPLICA_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let (frames, raw) = frames(rows);
    println!("{rows} rows, {:.1} MB of JSON row text ({} B per row)", raw as f64 / 1e6, raw / rows);

    let store = MemoryStore::new();
    let base = allocated_mb();
    {
        let mut e = online_engine(Snapshot::default());
        // The time of each step, summed over the frames: parsing, the engine, the store.
        let mut steps = [0.0; 3];
        let t = Instant::now();
        for frame in &frames {
            let step = Instant::now();
            let msg: ServerMessage = serde_json::from_str(frame).unwrap();
            steps[0] += step.elapsed().as_secs_f64();
            let step = Instant::now();
            let fx = e.on_message(msg, 0.0);
            steps[1] += step.elapsed().as_secs_f64();
            let step = Instant::now();
            // As the sync driver commits: told the replica, so the store shares its rows.
            store.commit_applied(fx.commit, e.replica()).now_or_never().unwrap().unwrap();
            steps[2] += step.elapsed().as_secs_f64();
        }
        let secs = t.elapsed().as_secs_f64();
        println!("catch-up into engine + memory store: {:.0} rows/s ({:.2} s)", rows as f64 / secs, secs);
        let [parse, engine, commit] = steps.map(|s| s * 1e3);
        println!("catch-up steps: parse {parse:.0} ms, engine {engine:.0} ms, store commit {commit:.0} ms");
        println!("memory: engine + store after catch-up {:.0} MB", allocated_mb() - base);
    }
    if std::env::var_os("REPLICA_CATCHUP_ONLY").is_some() {
        return;
    }
    let store_mb = allocated_mb() - base;
    println!("memory: store alone {store_mb:.0} MB");

    store_formats(&store.load().now_or_never().unwrap().unwrap());

    let t = Instant::now();
    let snapshot = store.load().now_or_never().unwrap().unwrap();
    let loaded = t.elapsed();
    let (e, _) = SyncEngine::new(snapshot, || "bench".into());
    let opened = t.elapsed();
    let count = e.query(&format!("SELECT count(*) FROM {TABLE}"), &[]).unwrap();
    let first = t.elapsed();
    assert_eq!(count.rows[0][0], json!(rows));
    let top = format!("SELECT id, title FROM {TABLE} WHERE done = false ORDER BY priority DESC, id LIMIT 10");
    let t2 = Instant::now();
    std::hint::black_box(e.query(&top, &[]).unwrap());
    let next = t2.elapsed();
    println!(
        "open: store load {:.0} ms, engine from snapshot {:.0} ms, first query answered at {:.0} ms; next (top-10) query {:.0} ms",
        loaded.as_secs_f64() * 1e3,
        (opened - loaded).as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3,
        next.as_secs_f64() * 1e3
    );
    // A point query by primary key: through the key's index, and through a scan (`id || ''`
    // is not the bare column, so it cannot use the index), p50 of 50 runs each.
    let id = format!("0190a1b2-c3d4-7e5f-8a9b-{:012}", rows / 2);
    for (how, sql) in [
        ("by key", format!("SELECT title FROM {TABLE} WHERE id = $1")),
        ("scan", format!("SELECT title FROM {TABLE} WHERE id || '' = $1")),
    ] {
        let mut times: Vec<f64> = (0..50)
            .map(|_| {
                let t = Instant::now();
                let rs = e.query(&sql, &[json!(id)]).unwrap();
                assert_eq!(rs.rows.len(), 1);
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!("point query {how}: p50 {:.0} µs ({sql})", times[times.len() / 2]);
    }
    let engine_mb = allocated_mb() - base - store_mb;
    println!(
        "memory: opened engine {engine_mb:.0} MB on top of the store ({:.1}x the JSON text, {} B per row)",
        engine_mb * 1e6 / raw as f64,
        (engine_mb * 1e6) as usize / rows
    );
    // A query by another column's value (titles are unique): the first one after a change
    // scans, the second makes the column's index in one pass over the table, later ones read
    // through it; and the same by a scan.
    let title = format!("Buy groceries for the week, item {}", rows / 2);
    let by_title = format!("SELECT id FROM {TABLE} WHERE title = $1");
    let timed = || {
        let t = Instant::now();
        assert_eq!(e.query(&by_title, &[json!(title)]).unwrap().rows.len(), 1);
        t.elapsed().as_secs_f64() * 1e3
    };
    let first = timed();
    let before_index = allocated_mb();
    let second = timed();
    let index_mb = allocated_mb() - before_index;
    let p50 = |sql: &str, runs: usize| {
        let mut times: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                assert_eq!(e.query(sql, &[json!(title)]).unwrap().rows.len(), 1);
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let indexed = p50(&by_title, 50);
    let scanned = p50(&format!("SELECT id FROM {TABLE} WHERE title || '' = $1"), 10);
    println!(
        "query by column value (title = $1): first {first:.0} ms (scans), second {second:.0} ms \
         (makes the index, {index_mb:.0} MB), then p50 {indexed:.0} µs; by a scan p50 {scanned:.0} µs"
    );
    drop(e);
}
