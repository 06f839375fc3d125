//! Commit ordering under concurrent writers, and no acknowledged write lost to `kill -9`.

use crate::common::*;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test]
async fn updated_is_unique_and_follows_commit_order_under_concurrent_writers() {
    let s = Arc::new(TestServer::start().await);
    s.sql_ok(&Auth::root(), "CREATE NAMESPACE app; CREATE USER TABLE app.events (id BIGINT PRIMARY KEY, writer INT)")
        .await;
    let users = [s.create_user("u1").await, s.create_user("u2").await];
    let start = Instant::now();
    let mut tasks = vec![];
    for w in 0..8i64 {
        let s = s.clone();
        let auth = users[(w % 2) as usize].clone();
        tasks.push(tokio::spawn(async move {
            // (id, sent_at, acked_at) in microseconds since `start`.
            let mut log = vec![];
            for i in 0..40i64 {
                let id = w * 1000 + i;
                let sent = start.elapsed().as_micros();
                let r =
                    s.sql_params(&auth, "INSERT INTO app.events (id, writer) VALUES ($1, $2)", json!([id, w])).await;
                assert_eq!(r.status, 200, "{}", r.body);
                log.push((id, sent, start.elapsed().as_micros()));
            }
            (w, log)
        }));
    }
    let mut logs = vec![];
    for t in tasks {
        logs.push(t.await.unwrap());
    }
    // Read back each user's _updated values (as microsecond strings, which sort like numbers
    // since they share one format).
    let mut updated = std::collections::HashMap::new();
    for auth in &users {
        let r = s.sql_ok(auth, "SELECT id, _updated FROM app.events").await;
        for row in r.rows(0) {
            updated.insert(row[0].as_i64().unwrap(), row[1].as_str().unwrap().to_string());
        }
    }
    assert_eq!(updated.len(), 8 * 40);
    let mut all: Vec<&String> = updated.values().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 8 * 40, "_updated never repeats");
    // If A was acknowledged before B was sent, A committed first and must have the smaller
    // _updated (in particular within one writer's sequence).
    let entries: Vec<(i64, u128, u128)> = logs.iter().flat_map(|(_, l)| l.iter().copied()).collect();
    for a in &entries {
        for b in &entries {
            if a.2 < b.1 {
                assert!(
                    updated[&a.0] < updated[&b.0],
                    "write {} acked before {} was sent, but has a later _updated",
                    a.0,
                    b.0
                );
            }
        }
    }
}

#[tokio::test]
async fn no_acknowledged_write_is_lost_on_kill_9() {
    let mut s = TestServer::start().await;
    s.sql_ok(&Auth::root(), "CREATE NAMESPACE app; CREATE SHARED TABLE app.log (id BIGINT PRIMARY KEY, payload TEXT)")
        .await;
    let base = s.base.clone();
    let client = s.client.clone();
    let acked = Arc::new(AckLog::default());
    let mut tasks = vec![];
    for w in 0..4i64 {
        let (base, client, acked) = (base.clone(), client.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..100_000i64 {
                let id = w * 1_000_000 + i;
                let body =
                    json!({"sql": "INSERT INTO app.log VALUES ($1, $2)", "params": [id, format!("payload-{id}")]});
                let resp = client
                    .post(format!("{base}/v1/api/sql"))
                    .basic_auth("root", Some(ROOT_PASSWORD))
                    .json(&body)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status() == 200 => acked.push(id),
                    // The server died mid-request: this write was never acknowledged.
                    _ => return,
                }
            }
        }));
    }
    // Let the load run, then kill the server while writes are in flight.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.kill9();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.take();
    assert!(acked.len() > 50, "the load should have committed writes before the kill, got {}", acked.len());
    s.start_again();
    let r = s.sql_ok(&Auth::root(), "SELECT id FROM app.log").await;
    let present: std::collections::HashSet<i64> = r.rows(0).iter().map(|row| row[0].as_i64().unwrap()).collect();
    let lost: Vec<_> = acked.iter().filter(|id| !present.contains(id)).collect();
    assert!(lost.is_empty(), "{} acknowledged writes lost, e.g. {:?}", lost.len(), &lost[..lost.len().min(5)]);
}

/// Ids of acknowledged writes, shared by the writer tasks.
#[derive(Default)]
struct AckLog(std::sync::Mutex<Vec<i64>>);

impl AckLog {
    fn push(&self, id: i64) {
        self.0.lock().unwrap().push(id);
    }
    fn take(&self) -> Vec<i64> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}
