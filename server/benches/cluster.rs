//! Cluster benchmarks over loopback: three release nodes against one node, in one run.
//! - single-row INSERT latency: one node; the cluster's leader; a follower (forwarded);
//! - a write on one node → the change event at a subscriber on another node;
//! - flushing `BENCH_FLUSH_ROWS` (default 100,000; 0 skips it) rows of a SHARED table: on the
//!   `local` storage, where every node flushes its own replica, and on an S3 storage (a
//!   local `moto_server`, skipped when it is not installed), where the leader writes one
//!   file and every node applies it through the log;
//! - `BACKUP DATABASE` of `BENCH_BACKUP_ROWS` (default 100,000; 0 skips it) rows of 12 users
//!   through each node (with spread storage, a node not storing every group gathers the
//!   others from their leaders);
//! - failover: `kill -9` of the leader → the first acknowledged write through another
//!   node, over several trials (the killed node restarts between trials).
//!
//! "The leader" is the leader of the data group the writes go to (the bench user's; a SHARED
//! table's for the S3 flush), once the leadership has spread over the nodes.
//!
//! Run: `cargo bench -p kalamdb-server --bench cluster`.
//! Environment: `BENCH_WRITES` (samples per latency case, default 1000), `BENCH_TRIALS`
//! (failover trials, default 10), `BENCH_CLUSTER_TLS=1` (the nodes talk mutual TLS:
//! `[cluster] tls_*` with certificates of a CA made for the run), `BENCH_DATA_GROUPS`
//! (`[cluster] data_groups`, default 8), `BENCH_BALANCE_LEADERS=0` (`balance_leaders = false`),
//! `BENCH_SPREAD=1` (`spread_storage = true` with `replicas = 2`: each user on two of the three
//! nodes; adds the cases through the node that does not store the bench user, whose reads and
//! sessions it hands to the user's group's leader).

mod common;

use common::{Server, connect, percentiles, query, recv, send, subscribe, wait_for_job};
use kalamdb_client_core::protocol::ws::ServerMessage;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const SECRET: &str = "bench-cluster-secret-bench-cluster-secret";
const SETUP: &str = "CREATE NAMESPACE bench; CREATE USER TABLE bench.t (id BIGINT PRIMARY KEY, n INT); \
                     CREATE USER 'bencher' WITH PASSWORD 'bencher-password'";

/// One node of the cluster: restartable on its data directory and cluster port.
struct Node {
    server: Option<Server>,
    base: String,
    dir: std::path::PathBuf,
    config: std::path::PathBuf,
    args: Vec<String>,
}

impl Node {
    fn start(&mut self) {
        let env = [("KALAMDB_CLUSTER_SECRET", SECRET)];
        let server = Server::start_with(&self.dir, Some(&self.config), &self.args, &env);
        self.base = server.base.clone();
        self.server = Some(server);
    }

    fn kill(&mut self) {
        self.server = None;
    }
}

/// The `[cluster]` settings (without the header) of mutual TLS with a CA and a certificate for 127.0.0.1 (every
/// node) made in `root`.
fn cluster_tls(root: &std::path::Path) -> String {
    let (ca_file, cert_file, key_file) = common::tls_files(root);
    println!("the nodes talk mutual TLS");
    format!("tls_cert = {cert_file:?}\ntls_key = {key_file:?}\ntls_ca = {ca_file:?}\n")
}

fn start_cluster(root: &std::path::Path) -> Vec<Node> {
    let listeners: Vec<_> = (0..3).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().unwrap().port()).collect();
    drop(listeners);
    let peers = ports.iter().enumerate().map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1)).collect::<Vec<_>>().join(",");
    let config = root.join("kalamdb.toml");
    let mut settings = "[auth]\nbcrypt_cost = 4\n[cluster]\n".to_string();
    if std::env::var("BENCH_CLUSTER_TLS").is_ok_and(|v| v == "1") {
        settings.push_str(&cluster_tls(root));
    }
    if let Ok(groups) = std::env::var("BENCH_DATA_GROUPS") {
        settings.push_str(&format!("data_groups = {groups}\n"));
    }
    if std::env::var("BENCH_BALANCE_LEADERS").is_ok_and(|v| v == "0") {
        settings.push_str("balance_leaders = false\n");
    }
    if spread() {
        settings.push_str("spread_storage = true\nreplicas = 2\n");
    }
    std::fs::write(&config, settings).unwrap();
    let mut nodes: Vec<Node> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let mut args = vec![
                "--node-id".to_string(),
                (i + 1).to_string(),
                "--cluster-listen".into(),
                format!("127.0.0.1:{port}"),
                "--cluster-peers".into(),
                peers.clone(),
            ];
            if i == 0 {
                args.push("--cluster-bootstrap".into());
            }
            Node {
                server: None,
                base: String::new(),
                dir: root.join(format!("node-{}", i + 1)),
                config: config.clone(),
                args,
            }
        })
        .collect();
    for n in &mut nodes {
        n.start();
    }
    nodes
}

/// Whether the cluster spreads storage (`BENCH_SPREAD=1`).
fn spread() -> bool {
    std::env::var("BENCH_SPREAD").is_ok_and(|v| v == "1")
}

/// One group on one node: its leader, last log index and last applied index; `None` for a
/// group the node does not store (spread storage), whose view is old.
type GroupView = Option<(Option<u64>, Option<u64>, Option<u64>)>;

/// The leader of Raft group `group` (0 is the metadata group), once all running nodes agree
/// on every group's leader and have applied each group's log as far as it goes, and `group`'s
/// leader has stayed the same for 5 s (a node hands the data groups it should not lead
/// to their preferred leader every 2 s, see docs/cluster.md).
async fn settled_leader(client: &reqwest::Client, nodes: &[Node], group: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut same_since: Option<(usize, Instant)> = None;
    loop {
        let mut views: Vec<Option<Vec<GroupView>>> = Vec::new();
        for n in nodes.iter().filter(|n| n.server.is_some()) {
            let h: Option<Value> = match client.get(format!("{}/v1/api/cluster/health", n.base)).send().await {
                Ok(r) => r.json().await.ok(),
                Err(_) => None,
            };
            views.push(h.and_then(|h| {
                let groups = h["groups"].as_array()?.iter();
                Some(
                    groups
                        .map(|g| {
                            (g["stored"] != json!(false)).then(|| {
                                (g["leader"].as_u64(), g["last_log_index"].as_u64(), g["last_applied"].as_u64())
                            })
                        })
                        .collect(),
                )
            }));
        }
        // Per group, the nodes storing it agree on its leader and have applied its whole log.
        let groups = views.first().cloned().flatten().map_or(0, |v| v.len());
        let mut leaders: Vec<Option<u64>> = Vec::with_capacity(groups);
        let mut agreed = groups > 0 && views.iter().all(|v| v.as_ref().is_some_and(|v| v.len() == groups));
        for g in 0..groups {
            let seen: Vec<_> = views.iter().filter_map(|v| v.as_ref()?.get(g).copied().flatten()).collect();
            let first = seen.first().copied();
            agreed &=
                first.is_some_and(|f| seen.iter().all(|s| s.0.is_some() && s.0 == f.0 && s.2 == s.1 && s.2 == f.2));
            leaders.push(first.and_then(|f| f.0));
        }
        if agreed && let Some(Some(leader)) = leaders.get(group) {
            let leader = *leader as usize - 1;
            match same_since {
                Some((l, since)) if l == leader => {
                    if since.elapsed() >= Duration::from_secs(5) {
                        return leader;
                    }
                }
                _ => same_since = Some((leader, Instant::now())),
            }
        } else {
            same_since = None;
        }
        assert!(Instant::now() < deadline, "the cluster did not settle: {views:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The leader of Raft group `group` as `node` sees it (its index in the nodes), if it knows one.
async fn leader_seen_by(client: &reqwest::Client, node: &Node, group: usize) -> Option<usize> {
    let h: Value = client.get(format!("{}/v1/api/cluster/health", node.base)).send().await.ok()?.json().await.ok()?;
    Some(h["groups"].get(group)?["leader"].as_u64()? as usize - 1)
}

async fn insert(client: &reqwest::Client, base: &str, token: &str, id: i64) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{base}/v1/api/sql"))
        .bearer_auth(token)
        .json(&json!({ "sql": format!("INSERT INTO bench.t (id, n) VALUES ({id}, 1)") }))
        .send()
        .await
}

/// p50 and p99 of `writes` sequential single-row INSERTs through `base`.
async fn insert_latency(client: &reqwest::Client, base: &str, token: &str, first: i64, writes: usize) -> (u128, u128) {
    let mut samples = Vec::with_capacity(writes);
    for i in 0..writes as i64 {
        let t = Instant::now();
        let r = insert(client, base, token, first + i).await.unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
        samples.push(t.elapsed());
    }
    percentiles(samples)
}

/// p50 and p99 of `reads` sequential primary-key SELECTs (of rows the INSERT cases wrote)
/// through `base`.
async fn select_latency(client: &reqwest::Client, base: &str, token: &str, reads: usize) -> (u128, u128) {
    let mut samples = Vec::with_capacity(reads);
    for i in 0..reads as i64 {
        let t = Instant::now();
        let r = client
            .post(format!("{base}/v1/api/sql"))
            .bearer_auth(token)
            .json(&json!({ "sql": format!("SELECT id, n FROM bench.t WHERE id = {i}") }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
        samples.push(t.elapsed());
    }
    percentiles(samples)
}

/// A `moto_server` on an ephemeral port (killed on drop), if installed.
struct Moto(std::process::Child, String);

impl Moto {
    async fn start(client: &reqwest::Client) -> Option<Moto> {
        let home = std::env::var("HOME").unwrap_or_default();
        let bin = std::path::Path::new(&home).join(".cache/kalamdb-venv/bin/moto_server");
        if !bin.exists() {
            println!("(no {}: the S3 flush case is skipped)", bin.display());
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let moto = Moto(child, format!("http://127.0.0.1:{port}"));
        while client.get(&moto.1).send().await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        client.put(format!("{}/flushes", moto.1)).send().await.unwrap();
        Some(moto)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Hot rows of `table` on `node` (`SHOW STATS`).
async fn hot_rows(client: &reqwest::Client, node: &Node, token: &str, table: &str) -> i64 {
    let r = query(node.server.as_ref().unwrap(), client, token, &format!("SHOW STATS FOR TABLE {table}")).await;
    r["results"][0]["rows"][0][0].as_i64().unwrap()
}

/// Writes `rows` rows into `table` through `node`, 1,000 per statement.
async fn fill(client: &reqwest::Client, node: &Node, token: &str, table: &str, rows: usize) {
    for chunk in (0..rows).collect::<Vec<_>>().chunks(1000) {
        let values: Vec<String> = chunk.iter().map(|i| format!("({i}, {i}, 'row {i} of the flush bench')")).collect();
        let sql = format!("INSERT INTO {table} (id, n, s) VALUES {}", values.join(", "));
        node.server.as_ref().unwrap().sql(client, token, &sql, json!([])).await;
    }
}

/// Flushes `table` (FLUSH on each of `on`), returns once every node holds no hot row of it:
/// (ms until then, bytes the jobs wrote).
async fn flush_everywhere(
    client: &reqwest::Client,
    nodes: &[Node],
    on: &[usize],
    token: &str,
    table: &str,
) -> (u128, u64) {
    let started = Instant::now();
    let mut jobs = Vec::new();
    for &i in on {
        let r = query(nodes[i].server.as_ref().unwrap(), client, token, &format!("FLUSH TABLE {table}")).await;
        jobs.push((i, r["results"][0]["rows"][0][0].as_str().unwrap().to_string()));
    }
    let mut bytes = 0;
    for (i, job) in &jobs {
        bytes += wait_for_job(nodes[*i].server.as_ref().unwrap(), client, token, job).await.1;
    }
    for node in nodes {
        while hot_rows(client, node, token, table).await > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    (started.elapsed().as_millis(), bytes)
}

fn main() {
    let writes = common::env_or("BENCH_WRITES", 1000);
    let trials = common::env_or("BENCH_TRIALS", 10);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        println!("single-row INSERT over HTTP, {writes} sequential writes per case");
        println!("{:>28} {:>10} {:>10}", "case", "p50 (µs)", "p99 (µs)");

        let single_dir = tempfile::tempdir().unwrap();
        let single = Server::with_config(single_dir.path(), "[auth]\nbcrypt_cost = 4\n");
        let root = single.token(&client, "root", common::ROOT_PASSWORD).await;
        single.sql(&client, &root, SETUP, json!([])).await;
        let token = single.token(&client, "bencher", "bencher-password").await;
        insert_latency(&client, &single.base, &token, 1_000_000, 100).await;
        let (p50, p99) = insert_latency(&client, &single.base, &token, 0, writes).await;
        println!("{:>28} {p50:>10} {p99:>10}", "one node");
        drop(single);

        let dir = tempfile::tempdir().unwrap();
        let mut nodes = start_cluster(dir.path());
        settled_leader(&client, &nodes, 0).await;
        let root = nodes[0].server.as_ref().unwrap().token(&client, "root", common::ROOT_PASSWORD).await;
        nodes[0].server.as_ref().unwrap().sql(&client, &root, SETUP, json!([])).await;
        // The writes go to the data group of bencher's partition: "the leader" below is its.
        let group = "SELECT data_group FROM system.users WHERE username = 'bencher'";
        let group = query(nodes[0].server.as_ref().unwrap(), &client, &root, group).await;
        let group = group["results"][0]["rows"][0][0].as_u64().expect("a data group") as usize;
        let leader = settled_leader(&client, &nodes, group).await;
        // With spread storage, the other node storing the user, and the one that does not.
        let mut stores = Vec::new();
        for n in &nodes {
            let h: Value = client.get(format!("{}/v1/api/cluster/health", n.base)).send().await.unwrap().json().await.unwrap();
            stores.push(h["groups"][group]["stored"] != json!(false));
        }
        let follower = (1..3).map(|d| (leader + d) % 3).find(|n| stores[*n]).unwrap();
        let outside = stores.iter().position(|s| !s);
        // The follower signs in from its own replica, which applies the new user a moment
        // after the leader answered.
        let token = loop {
            let server = nodes[follower].server.as_ref().unwrap();
            if let Some(token) = server.try_token(&client, "bencher", "bencher-password").await {
                break token;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        insert_latency(&client, &nodes[leader].base, &token, 1_000_000, 100).await;
        let (p50, p99) = insert_latency(&client, &nodes[leader].base, &token, 0, writes).await;
        println!("{:>28} {p50:>10} {p99:>10}", "3 nodes, via the leader");
        let (p50, p99) = insert_latency(&client, &nodes[follower].base, &token, 10_000_000, writes).await;
        println!("{:>28} {p50:>10} {p99:>10}", "3 nodes, via a follower");
        if let Some(outside) = outside {
            let (p50, p99) = insert_latency(&client, &nodes[outside].base, &token, 30_000_000, writes).await;
            println!("{:>28} {p50:>10} {p99:>10}", "via a node not storing");
            println!("primary-key SELECT over HTTP, {writes} sequential reads per case");
            for (case, node) in [("via the leader", leader), ("via a follower", follower), ("via a node not storing", outside)] {
                let (p50, p99) = select_latency(&client, &nodes[node].base, &token, writes).await;
                println!("{case:>28} {p50:>10} {p99:>10}");
            }
        }

        // A write through the leader, seen by a subscriber on a follower.
        let mut ws = connect(&nodes[follower].base, &token).await;
        subscribe(&mut ws, "s", "SELECT id FROM bench.t WHERE n = 2").await;
        let mut samples = Vec::with_capacity(writes);
        for i in 0..writes as i64 {
            let t = Instant::now();
            let r = client
                .post(format!("{}/v1/api/sql", nodes[leader].base))
                .bearer_auth(&token)
                .json(&json!({ "sql": format!("INSERT INTO bench.t (id, n) VALUES ({}, 2)", 20_000_000 + i) }))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            loop {
                if let ServerMessage::Change { .. } = recv(&mut ws).await {
                    break;
                }
            }
            samples.push(t.elapsed());
        }
        let (p50, p99) = percentiles(samples);
        println!("write on the leader -> change event on a follower: p50 {p50} µs, p99 {p99} µs");
        send(&mut ws, json!({"type": "unsubscribe", "id": "s"})).await;
        drop(ws);
        if let Some(outside) = outside {
            // The session through the node not storing the user is relayed to the leader.
            let mut ws = connect(&nodes[outside].base, &token).await;
            subscribe(&mut ws, "r", "SELECT id FROM bench.t WHERE n = 3").await;
            let mut samples = Vec::with_capacity(writes);
            for i in 0..writes as i64 {
                let t = Instant::now();
                let sql = format!("INSERT INTO bench.t (id, n) VALUES ({}, 3)", 40_000_000 + i);
                let r = client
                    .post(format!("{}/v1/api/sql", nodes[leader].base))
                    .bearer_auth(&token)
                    .json(&json!({ "sql": sql }))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
                while !matches!(recv(&mut ws).await, ServerMessage::Change { .. }) {}
                samples.push(t.elapsed());
            }
            let (p50, p99) = percentiles(samples);
            println!("write on the leader -> change event, session relayed by another node: p50 {p50} µs, p99 {p99} µs");
            drop(ws);
        }

        let flush_rows = common::env_or("BENCH_FLUSH_ROWS", 100_000);
        if flush_rows > 0 {
            let leader = settled_leader(&client, &nodes, 0).await;
            let columns = "(id BIGINT PRIMARY KEY, n INT, s TEXT)";
            let never = "flush_policy = 'rows:1000000000'";
            let sql = format!("CREATE SHARED TABLE bench.on_local {columns} WITH ({never})");
            nodes[leader].server.as_ref().unwrap().sql(&client, &root, &sql, json!([])).await;
            fill(&client, &nodes[leader], &root, "bench.on_local", flush_rows).await;
            settled_leader(&client, &nodes, 0).await;
            let (ms, bytes) = flush_everywhere(&client, &nodes, &[0, 1, 2], &root, "bench.on_local").await;
            println!("flush of {flush_rows} rows, local storage (every node flushes its own): {ms} ms, {bytes} bytes written");
            if let Some(moto) = Moto::start(&client).await {
                let sql = format!(
                    "CREATE STORAGE lake TYPE 's3' BUCKET 'flushes' ENDPOINT '{}' ACCESS_KEY_ID 'k' \
                     SECRET_ACCESS_KEY 's' ALLOW_HTTP; \
                     CREATE SHARED TABLE bench.on_s3 {columns} WITH (storage = 'lake', {never})",
                    moto.1
                );
                nodes[leader].server.as_ref().unwrap().sql(&client, &root, &sql, json!([])).await;
                // On a shared storage the leader of the table's data group flushes it.
                let group = "SELECT data_group FROM system.tables WHERE table_name = 'on_s3'";
                let group = query(nodes[leader].server.as_ref().unwrap(), &client, &root, group).await;
                let group = group["results"][0]["rows"][0][0].as_u64().expect("a data group") as usize;
                let flusher = settled_leader(&client, &nodes, group).await;
                fill(&client, &nodes[flusher], &root, "bench.on_s3", flush_rows).await;
                settled_leader(&client, &nodes, group).await;
                let (ms, bytes) = flush_everywhere(&client, &nodes, &[flusher], &root, "bench.on_s3").await;
                println!(
                    "flush of {flush_rows} rows, shared S3 storage (moto; the leader writes, every node applies): \
                     {ms} ms, {bytes} bytes written"
                );
            }
        }

        // BACKUP DATABASE through each node: with spread storage a node not storing every
        // group gathers those groups' parts from their leaders over the cluster port.
        let backup_rows = common::env_or("BENCH_BACKUP_ROWS", 100_000);
        if backup_rows > 0 {
            let users = 12;
            let sql = "CREATE NAMESPACE bk; CREATE USER TABLE bk.notes (id BIGINT PRIMARY KEY, n INT, s TEXT) \
                       WITH (flush_policy = 'rows:1000000000')";
            nodes[0].server.as_ref().unwrap().sql(&client, &root, sql, json!([])).await;
            for u in 0..users {
                let (name, password) = (format!("backup{u}"), format!("backup{u}-password"));
                let sql = format!("CREATE USER '{name}' WITH PASSWORD '{password}'");
                nodes[0].server.as_ref().unwrap().sql(&client, &root, &sql, json!([])).await;
                let token = nodes[0].server.as_ref().unwrap().token(&client, &name, &password).await;
                fill(&client, &nodes[0], &token, "bk.notes", backup_rows / users).await;
            }
            settled_leader(&client, &nodes, 0).await;
            let total = backup_rows / users * users;
            for (i, node) in nodes.iter().enumerate() {
                let held = hot_rows(&client, node, &root, "bk.notes").await;
                let target = dir.path().join(format!("backup-through-{}", i + 1));
                let sql = format!("BACKUP DATABASE bk TO '{}'", target.display());
                let r = query(node.server.as_ref().unwrap(), &client, &root, &sql).await;
                let job = r["results"][0]["rows"][0][0].as_str().expect("a backup job").to_string();
                // The job's own duration, from its start to its end.
                let (_, bytes, seconds) = wait_for_job(node.server.as_ref().unwrap(), &client, &root, &job).await;
                println!(
                    "backup of {total} rows of {users} users through node {} (storing {held} of them): {:.0} ms, \
                     {bytes} bytes",
                    i + 1,
                    seconds * 1000.0
                );
            }
        }

        // Failover: kill -9 the leader while one writer writes through another node. (Not
        // with spread storage's two voters per group: one left is no majority.)
        let trials = if spread() { 0 } else { trials };
        let mut failovers = Vec::new();
        let mut skipped = 0;
        for trial in 0.. {
            if failovers.len() == trials {
                break;
            }
            let leader = settled_leader(&client, &nodes, group).await;
            let via = (leader + 1) % 3;
            let base = nodes[via].base.clone();
            let (token, writer_client) = (token.clone(), client.clone());
            let killed_at = std::sync::Arc::new(std::sync::Mutex::new(None::<Instant>));
            let seen = killed_at.clone();
            let writer = tokio::spawn(async move {
                for i in 0.. {
                    let sent_at = Instant::now();
                    let ok = insert(&writer_client, &base, &token, 100_000_000 * (trial as i64 + 1) + i)
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    // Only a write sent after the kill shows that writes resumed.
                    if let (true, Some(at)) = (ok, *seen.lock().unwrap())
                        && sent_at > at
                    {
                        return at.elapsed();
                    }
                    if !ok {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                unreachable!()
            });
            tokio::time::sleep(Duration::from_millis(300)).await;
            // A handover back to a restarted node can still move the group after it settled:
            // such a trial would kill a node that no longer leads it.
            if leader_seen_by(&client, &nodes[via], group).await != Some(leader) {
                writer.abort();
                skipped += 1;
                continue;
            }
            *killed_at.lock().unwrap() = Some(Instant::now());
            nodes[leader].kill();
            let took = tokio::time::timeout(Duration::from_secs(30), writer).await.expect("writes resumed").unwrap();
            failovers.push(took);
            nodes[leader].start();
        }
        failovers.sort();
        let ms = |d: &Duration| d.as_millis();
        if failovers.is_empty() {
            return;
        }
        println!(
            "failover (kill -9 of the leader -> first acknowledged write), {trials} trials: p50 {} ms, max {} ms, all {:?} \
             ({skipped} skipped: the leadership moved before the kill)",
            ms(&failovers[failovers.len() / 2]),
            ms(failovers.last().unwrap()),
            failovers.iter().map(ms).collect::<Vec<_>>()
        );
    });
}
