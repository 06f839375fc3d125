//! Cold-tier benchmarks over loopback against the release server:
//! - flush throughput (MB/s of Parquet written, rows/s) over 20 flushes of 10,000 rows;
//! - SELECT over 200,000 rows in 20 Parquet files (aggregate, filter, top-N, point read);
//! - catch-up rows/s from cursor 0 when every row is in the cold tier;
//! - compaction of the 21 files left after a 10% delete and a 10% update (a restart with
//!   `cleanup_interval_secs = 1` lets the cleanup scheduler pick the partition up), and the
//!   aggregate query again over the one file it leaves.
//!
//! Run: `cargo bench -p kalamdb-server --bench cold`.
//! Environment: `BENCH_QUERIES` (samples per query, default 30).

mod common;

use common::{Server, query};
use futures::{SinkExt, StreamExt};
use kalamdb_client_core::protocol::ws::ServerMessage;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const FILES: usize = 20;
const ROWS_PER_FILE: usize = 10_000;

/// Runs FLUSH TABLE and waits for its job; returns (rows, bytes, seconds the job ran).
async fn flush(server: &Server, client: &reqwest::Client, token: &str) -> (u64, u64, f64) {
    let r = query(server, client, token, "FLUSH TABLE bench.items").await;
    let id = r["results"][0]["rows"][0][0].as_str().unwrap().to_string();
    common::wait_for_job(server, client, token, &id).await
}

fn main() {
    let samples = common::env_or("BENCH_QUERIES", 30);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::with_config(dir.path(), "[auth]\nbcrypt_cost = 4\n[limits]\nmax_body_bytes = 16777216\n");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let token = server.token(&client, "root", common::ROOT_PASSWORD).await;
        query(
            &server,
            &client,
            &token,
            "CREATE NAMESPACE bench; CREATE USER TABLE bench.items (id BIGINT PRIMARY KEY, name TEXT, qty INT, \
             price DOUBLE) WITH (flush_policy = 'rows:100000000')",
        )
        .await;

        // 20 rounds: 10,000 rows inserted, then flushed into one file.
        let (mut rows, mut bytes, mut secs) = (0u64, 0u64, 0f64);
        for f in 0..FILES {
            common::insert_items(&server, &client, &token, f * ROWS_PER_FILE..(f + 1) * ROWS_PER_FILE, 1000).await;
            let (r, b, s) = flush(&server, &client, &token).await;
            rows += r;
            bytes += b;
            secs += s;
        }
        println!("flush: {rows} rows in {FILES} files, {:.1} MB of Parquet", bytes as f64 / 1e6);
        println!(
            "flush throughput: {:.1} MB/s, {:.0} rows/s (job time {:.3} s)",
            bytes as f64 / 1e6 / secs,
            rows as f64 / secs,
            secs
        );

        println!("{:<58} {:>9} {:>9} {:>7}", "query over 200,000 cold rows", "p50 (ms)", "p99 (ms)", "rows");
        for sql in [
            "SELECT count(*), sum(qty), avg(price) FROM bench.items",
            "SELECT id, name, qty FROM bench.items WHERE qty = 7",
            "SELECT id, name FROM bench.items ORDER BY price DESC, id LIMIT 10",
            "SELECT count(*) FROM bench.items WHERE id >= 150000",
            "SELECT * FROM bench.items WHERE id = 123456",
        ] {
            let mut lat = Vec::with_capacity(samples);
            let mut n = 0;
            for _ in 0..samples {
                let t0 = Instant::now();
                let r = query(&server, &client, &token, sql).await;
                lat.push(t0.elapsed());
                n = r["results"][0]["row_count"].as_u64().unwrap();
            }
            let (p50, p99) = common::percentiles(lat);
            println!("{:<58} {:>9.2} {:>9.2} {:>7}", sql, p50 as f64 / 1000.0, p99 as f64 / 1000.0, n);
        }

        // Catch-up from cursor 0 with every row cold.
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("{}/v1/ws", server.base.replacen("http://", "ws://", 1)))
                .await
                .expect("connect");
        let send = |v: Value| Message::Text(v.to_string().into());
        ws.send(send(json!({"type": "auth", "token": token}))).await.unwrap();
        let t0 = Instant::now();
        ws.send(send(
            json!({"type": "subscribe", "id": "all", "sql": "SELECT * FROM bench.items", "batch_size": 10000}),
        ))
        .await
        .unwrap();
        let mut loaded = 0usize;
        loop {
            let Some(Ok(Message::Text(t))) = ws.next().await else { panic!("socket ended") };
            match serde_json::from_str::<ServerMessage>(t.as_str()).unwrap() {
                ServerMessage::Batch { rows, last, .. } => {
                    loaded += rows.len();
                    if last {
                        break;
                    }
                }
                ServerMessage::Error { message, .. } => panic!("{message}"),
                _ => {}
            }
        }
        let took = t0.elapsed();
        assert_eq!(loaded, FILES * ROWS_PER_FILE);
        println!(
            "catch-up from cursor 0 (all cold): {loaded} rows in {:.3} s, {:.0} rows/s",
            took.as_secs_f64(),
            loaded as f64 / took.as_secs_f64()
        );
        // 10% deleted, 10% updated, flushed: 21 files, compacted after the restart below.
        query(&server, &client, &token, "DELETE FROM bench.items WHERE id % 10 = 0").await;
        query(&server, &client, &token, "UPDATE bench.items SET qty = qty + 1 WHERE id % 10 = 5").await;
        flush(&server, &client, &token).await;
    });
    drop(server);
    let server = Server::with_config(
        dir.path(),
        "[auth]\nbcrypt_cost = 4\n[limits]\nmax_body_bytes = 16777216\n[storage]\ncleanup_interval_secs = 1\n",
    );
    rt.block_on(compaction(&server, samples));
}

/// Times the compaction the cleanup scheduler runs over the 21 files, then the aggregate.
async fn compaction(server: &Server, samples: usize) {
    let client = reqwest::Client::new();
    let token = server.token(&client, "root", common::ROOT_PASSWORD).await;
    let deadline = Instant::now() + Duration::from_secs(600);
    let row = loop {
        let r = query(
            server,
            &client,
            &token,
            "SELECT rows, files, bytes, CAST(finished_at AS BIGINT) - CAST(started_at AS BIGINT) FROM system.jobs \
             WHERE job_type = 'cleanup' AND status = 'completed' AND files > 0",
        )
        .await;
        if let Some(row) = r["results"][0]["rows"].get(0) {
            break row.clone();
        }
        assert!(Instant::now() < deadline, "no compaction ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (removed, files, secs) = (row[0].as_u64().unwrap(), row[1].as_u64().unwrap(), row[3].as_f64().unwrap() / 1e6);
    let versions = (FILES * ROWS_PER_FILE) as u64 + 40_000;
    println!(
        "compaction: {files} files, {versions} row versions in, {removed} removed, {:.3} s, {:.0} versions/s, \
         {:.1} MB freed",
        secs,
        versions as f64 / secs,
        row[2].as_u64().unwrap() as f64 / 1e6
    );
    let sql = "SELECT count(*), sum(qty), avg(price) FROM bench.items";
    let mut lat = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t0 = Instant::now();
        let r = query(server, &client, &token, sql).await;
        lat.push(t0.elapsed());
        assert_eq!(r["results"][0]["rows"][0][0], json!(180_000));
    }
    let (p50, p99) = common::percentiles(lat);
    println!(
        "{:<58} {:>9.2} {:>9.2}",
        "after compaction: aggregate over one file",
        p50 as f64 / 1000.0,
        p99 as f64 / 1000.0
    );
    // Point reads of rows spread over the one file (ids ending in 0 were deleted).
    let mut lat = Vec::with_capacity(samples);
    for i in 0..samples {
        let id = (i * 7_919 % (FILES * ROWS_PER_FILE)) / 10 * 10 + 3;
        let t0 = Instant::now();
        let r = query(server, &client, &token, &format!("SELECT * FROM bench.items WHERE id = {id}")).await;
        lat.push(t0.elapsed());
        assert_eq!(r["results"][0]["row_count"], json!(1));
    }
    let (p50, p99) = common::percentiles(lat);
    println!(
        "{:<58} {:>9.2} {:>9.2}",
        "after compaction: point read in that file",
        p50 as f64 / 1000.0,
        p99 as f64 / 1000.0
    );
}
