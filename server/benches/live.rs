//! Live-query benchmarks over loopback against the release server:
//! - write → subscriber change-event latency with 1, 100 and 1,000 subscriptions on the table;
//! - catch-up throughput from cursor 0 over 100,000 rows;
//! - server memory per subscription at 10,000 subscriptions.
//!
//! Run: `cargo bench -p kalamdb-server --bench live`.
//! Environment: `BENCH_WRITES` (latency samples per case, default 500).

mod common;

use common::{Server, Ws, connect, recv, send, subscribe};
use futures::StreamExt;
use kalamdb_client_core::protocol::ws::ServerMessage;
use serde_json::json;
use std::time::{Duration, Instant};

fn main() {
    let writes = common::env_or("BENCH_WRITES", 500);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::with_config(
        dir.path(),
        "[auth]\nbcrypt_cost = 4\n[live]\nmax_subscriptions_per_connection = 1000\nmax_messages_per_second = 100000\n",
    );
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let client = reqwest::Client::new();
        let root = server.token(&client, "root", common::ROOT_PASSWORD).await;
        server
            .sql(
                &client,
                &root,
                "CREATE NAMESPACE bench; CREATE USER TABLE bench.events (id BIGINT PRIMARY KEY, kind TEXT, n INT); \
                 CREATE USER 'bencher' WITH PASSWORD 'bencher-password'",
                json!([]),
            )
            .await;
        let token = server.token(&client, "bencher", "bencher-password").await;

        // Memory per subscription at 10,000 subscriptions (10 connections x 1000).
        // Measured first, on a fresh server, so memory freed by other phases can't hide it.
        let before = server.rss_bytes();
        let mut held = vec![];
        for c in 0..10 {
            let mut ws = connect(&server.base, &token).await;
            for i in 0..1000 {
                send(&mut ws, json!({"type": "subscribe", "id": format!("m{c}-{i}"), "sql": "SELECT id FROM bench.events WHERE n = -1", "last_rows": 0})).await;
            }
            let mut done = 0;
            while done < 1000 {
                if let ServerMessage::Batch { last: true, .. } = recv(&mut ws).await {
                    done += 1;
                }
            }
            held.push(ws);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = server.rss_bytes();
        println!(
            "memory: RSS {:.1} MiB -> {:.1} MiB with 10,000 subscriptions = {:.0} bytes per subscription",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            (after.saturating_sub(before)) as f64 / 10_000.0
        );
        drop(held);
        tokio::time::sleep(Duration::from_millis(500)).await;

        println!("write -> change event latency ({writes} sequential single-row INSERTs over HTTP per case)");
        println!("{:>14} {:>10} {:>10}", "subscriptions", "p50 (µs)", "p99 (µs)");
        let mut next_id = 0i64;
        let mut conns: Vec<Ws> = vec![];
        let mut subs = 0usize;
        for target in [1usize, 100, 1000] {
            while subs < target {
                if conns.last().is_none() || subs.is_multiple_of(500) {
                    conns.push(connect(&server.base, &token).await);
                }
                let ws = conns.last_mut().unwrap();
                subscribe(ws, &format!("s{subs}"), "SELECT id, kind, n FROM bench.events WHERE n >= 0").await;
                subs += 1;
            }
            // The probe: the connection holding the newest subscription. All subscriptions
            // match every write; frames for the others are drained in the background.
            let mut probe = conns.pop().unwrap();
            let mut drains = vec![];
            for mut ws in conns.drain(..) {
                drains.push(tokio::spawn(async move {
                    while let Some(Ok(_)) = ws.next().await {}
                }));
            }
            let per_probe = subs - (subs / 500) * 500;
            let per_probe = if per_probe == 0 { 500.min(subs) } else { per_probe };
            let mut samples = Vec::with_capacity(writes);
            for _ in 0..writes {
                next_id += 1;
                let t0 = Instant::now();
                server.sql(&client, &token, "INSERT INTO bench.events (id, kind, n) VALUES ($1, 'click', 1)", json!([next_id])).await;
                // Wait for the first event of this write on the probe connection.
                let mut seen = 0;
                loop {
                    if let ServerMessage::Change { cursor: _, .. } = recv(&mut probe).await {
                        if seen == 0 {
                            samples.push(t0.elapsed());
                        }
                        seen += 1;
                        if seen == per_probe {
                            break;
                        }
                    }
                }
            }
            let (p50, p99) = common::percentiles(samples);
            println!("{target:>14} {p50:>10} {p99:>10}   (all on the written partition, all matching)");
            for d in drains {
                d.abort();
            }
            // Fresh connections for the next case (the drained ones are gone).
            drop(probe);
            subs = 0;
            conns.clear();
            // Let the server notice the disconnects.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }

        // The common shape: 1,000 subscriptions on the table, one per user; a write reaches
        // only the subscriptions on its own partition.
        let mut others = vec![];
        for chunk in 0..10 {
            let stmts: Vec<String> =
                (0..100).map(|i| format!("CREATE USER 'u{}' WITH PASSWORD 'user-password'", chunk * 100 + i)).collect();
            server.sql(&client, &root, &stmts.join("; "), json!([])).await;
        }
        for i in 0..999 {
            let t = server.token(&client, &format!("u{i}"), "user-password").await;
            let mut ws = connect(&server.base, &t).await;
            subscribe(&mut ws, "s", "SELECT id, kind, n FROM bench.events WHERE n >= 0").await;
            others.push(ws);
        }
        let mut probe = connect(&server.base, &token).await;
        subscribe(&mut probe, "s", "SELECT id, kind, n FROM bench.events WHERE n >= 0").await;
        let mut samples = Vec::with_capacity(writes);
        for _ in 0..writes {
            next_id += 1;
            let t0 = Instant::now();
            server.sql(&client, &token, "INSERT INTO bench.events (id, kind, n) VALUES ($1, 'click', 1)", json!([next_id])).await;
            loop {
                if let ServerMessage::Change { .. } = recv(&mut probe).await {
                    samples.push(t0.elapsed());
                    break;
                }
            }
        }
        let (p50, p99) = common::percentiles(samples);
        println!("{:>14} {p50:>10} {p99:>10}   (1,000 users, one subscription each; writes reach one)", 1000);
        drop(probe);
        drop(others);
        tokio::time::sleep(Duration::from_millis(500)).await;

        // Subscribe plus the initial load of 1,000 rows.
        server
            .sql(&client, &root, "CREATE USER TABLE bench.small (id BIGINT PRIMARY KEY, title TEXT, done BOOLEAN)", json!([]))
            .await;
        let values: Vec<String> = (0..1000).map(|i| format!("({i}, 'todo {i}', {})", i % 2 == 0)).collect();
        server.sql(&client, &token, &format!("INSERT INTO bench.small VALUES {}", values.join(",")), json!([])).await;
        let mut ws = connect(&server.base, &token).await;
        let mut samples = vec![];
        for i in 0..50 {
            let t0 = Instant::now();
            subscribe(&mut ws, &format!("load{i}"), "SELECT * FROM bench.small").await;
            samples.push(t0.elapsed());
        }
        let (p50, p99) = common::percentiles(samples);
        println!("\nsubscribe + initial load of 1,000 rows (one batch): p50 {p50} µs, p99 {p99} µs (50 runs)");
        drop(ws);

        // Catch-up throughput from cursor 0.
        let rows = 100_000i64;
        for chunk in 0..(rows / 1000) {
            let values: Vec<String> =
                (0..1000).map(|i| format!("({}, 'bulk', {})", 10_000_000 + chunk * 1000 + i, i)).collect();
            server.sql(&client, &token, &format!("INSERT INTO bench.events VALUES {}", values.join(",")), json!([])).await;
        }
        let mut ws = connect(&server.base, &token).await;
        let t0 = Instant::now();
        send(&mut ws, json!({"type": "subscribe", "id": "catchup", "sql": "SELECT * FROM bench.events", "since": 0, "batch_size": 5000})).await;
        let mut received = 0usize;
        loop {
            match recv(&mut ws).await {
                ServerMessage::Batch { rows, last, .. } => {
                    received += rows.len();
                    if last {
                        break;
                    }
                }
                ServerMessage::Subscribed { .. } => {}
                other => panic!("{other:?}"),
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "\ncatch-up from cursor 0: {received} rows in {:.3} s = {:.0} rows/s (batch_size 5000, JSON over loopback)",
            secs,
            received as f64 / secs
        );
        drop(ws);

    });
}
