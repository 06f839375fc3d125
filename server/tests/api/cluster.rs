//! Cluster mode: three real server processes on 127.0.0.1 replicating through openraft.

use crate::common::{Auth, TestServer};
use hmac::Mac;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "cluster-test-secret-cluster-test-secret";

struct TestCluster {
    nodes: Vec<TestServer>,
    cluster_ports: Vec<u16>,
    config: std::path::PathBuf,
}

/// Relays in front of the nodes' cluster ports that can cut nodes off: a request to a cut
/// node, or from one (by its `x-kalamdb-node` header), is answered 503 instead of delivered.
struct Partition {
    cut: Arc<Mutex<BTreeSet<u64>>>,
}

impl Partition {
    /// One relay per node (node `i + 1` listens on `targets[i]`); returns their ports.
    async fn start(targets: &[u16]) -> (Partition, Vec<u16>) {
        let cut = Arc::new(Mutex::new(BTreeSet::new()));
        let mut ports = Vec::new();
        for (i, target) in targets.iter().copied().enumerate() {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            ports.push(listener.local_addr().unwrap().port());
            let (cut, node, client) = (cut.clone(), i as u64 + 1, reqwest::Client::new());
            let relay = axum::Router::new().fallback(move |request: axum::extract::Request| {
                let (cut, client) = (cut.clone(), client.clone());
                async move { relay(request, node, target, &cut, &client).await }
            });
            tokio::spawn(async move { axum::serve(listener, relay).await });
        }
        (Partition { cut }, ports)
    }

    fn cut_off(&self, node: u64) {
        self.cut.lock().unwrap().insert(node);
    }

    fn heal(&self) {
        self.cut.lock().unwrap().clear();
    }
}

async fn relay(
    request: axum::extract::Request,
    node: u64,
    target: u16,
    cut: &Mutex<BTreeSet<u64>>,
    client: &reqwest::Client,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let from = request.headers().get("x-kalamdb-node").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    {
        let cut = cut.lock().unwrap();
        if cut.contains(&node) || from.is_some_and(|f| cut.contains(&f)) {
            return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let mut forwarded = client.request(parts.method, format!("http://127.0.0.1:{target}{}", parts.uri.path()));
    for (name, value) in &parts.headers {
        if name != axum::http::header::HOST && name != axum::http::header::CONTENT_LENGTH {
            forwarded = forwarded.header(name, value);
        }
    }
    match forwarded.body(body).send().await {
        Ok(r) => {
            let status = r.status();
            let content_type = r.headers().get(axum::http::header::CONTENT_TYPE).cloned();
            let bytes = r.bytes().await.unwrap_or_default();
            let mut response = (status, bytes).into_response();
            if let Some(ct) = content_type {
                response.headers_mut().insert(axum::http::header::CONTENT_TYPE, ct);
            }
            response
        }
        Err(_) => axum::http::StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// `sql` as root with `x-kalamdb-consistency: linearizable`.
async fn linearizable_read(node: &TestServer, sql: &str) -> crate::common::Resp {
    let r = node
        .client
        .post(format!("{}/v1/api/sql", node.base))
        .basic_auth("root", Some(crate::common::ROOT_PASSWORD))
        .header("x-kalamdb-consistency", "linearizable")
        .json(&json!({ "sql": sql }))
        .send()
        .await
        .unwrap();
    let status = r.status();
    crate::common::Resp { status, body: r.json().await.unwrap_or_default() }
}

/// Ports for the nodes' cluster addresses, held open together so that none repeats.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

impl TestCluster {
    /// Starts `n` nodes (node 1 creates the cluster) and waits for a leader that all see.
    async fn start(n: usize) -> TestCluster {
        let ports = free_ports(n);
        TestCluster::start_at(ports.clone(), ports, "", &[], &[]).await
    }

    /// `n` nodes with `settings` added to their `[cluster]` section.
    async fn start_with(n: usize, settings: &str) -> TestCluster {
        let ports = free_ports(n);
        TestCluster::start_at(ports.clone(), ports, settings, &[], &[]).await
    }

    /// Like [`TestCluster::start_with`], with `FAILPOINTS` set on some nodes: `(index, points)`.
    async fn start_with_faults(n: usize, settings: &str, faults: &[(usize, &str)]) -> TestCluster {
        let ports = free_ports(n);
        TestCluster::start_at(ports.clone(), ports, settings, faults, &[]).await
    }

    /// Three nodes with the table `app.log (id, w)` the [`Writers`] write to.
    async fn with_log_table() -> TestCluster {
        let cluster = TestCluster::start(3).await;
        let sql = "CREATE NAMESPACE app; CREATE SHARED TABLE app.log (id BIGINT PRIMARY KEY, w INT)";
        cluster.nodes[0].sql_ok(&Auth::root(), sql).await;
        cluster.settle().await;
        cluster
    }

    /// Three nodes, the tables of `ddl` and the user `alice` (password `alice-password`).
    async fn with_alice(ddl: &str) -> TestCluster {
        let cluster = TestCluster::start(3).await;
        cluster.nodes[0].sql_ok(&Auth::root(), ddl).await;
        cluster.nodes[1].create_user("alice").await;
        cluster.settle().await;
        cluster
    }

    /// Starts `n` nodes whose traffic to each other goes through a [`Partition`].
    async fn start_partitionable(n: usize) -> (TestCluster, Partition) {
        let listen = free_ports(n);
        let (partition, reached_at) = Partition::start(&listen).await;
        (TestCluster::start_at(listen, reached_at, "", &[], &[]).await, partition)
    }

    /// Nodes listening on `cluster_ports` for each other, reached by the others at `reached_at`.
    async fn start_at(
        cluster_ports: Vec<u16>,
        reached_at: Vec<u16>,
        settings: &str,
        faults: &[(usize, &str)],
        env_all: &[(&str, &str)],
    ) -> TestCluster {
        let peers = reached_at
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("cluster.toml");
        // Short timeouts keep the failure tests quick.
        let timeouts =
            "write_timeout_ms = 4000\nheartbeat_ms = 50\nelection_timeout_min_ms = 300\nelection_timeout_max_ms = 600";
        std::fs::write(&config, format!("[cluster]\n{timeouts}\n{settings}\n")).unwrap();
        let mut nodes = Vec::new();
        for (i, port) in cluster_ports.iter().enumerate() {
            let id = (i + 1).to_string();
            let listen = format!("127.0.0.1:{port}");
            let mut args = vec![
                "--config",
                config.to_str().unwrap(),
                "--node-id",
                &id,
                "--cluster-listen",
                &listen,
                "--cluster-peers",
                &peers,
            ];
            if i == 0 {
                args.push("--cluster-bootstrap");
            }
            let mut env = vec![("KALAMDB_CLUSTER_SECRET", SECRET)];
            env.extend(env_all);
            env.extend(faults.iter().filter(|(node, _)| *node == i).map(|(_, points)| ("FAILPOINTS", *points)));
            nodes.push(TestServer::start_with_args_env(&args, &env).await);
        }
        // The config file must outlive the nodes' restarts.
        std::mem::forget(dir);
        let cluster = TestCluster { nodes, cluster_ports, config };
        cluster.leader().await;
        cluster
    }

    /// Starts node `id`, not a member until `ALTER CLUSTER ADD NODE` makes it one; returns
    /// its cluster address.
    async fn start_outside_node(&mut self, id: usize) -> String {
        self.start_outside_node_with(id, &[]).await
    }

    /// [`TestCluster::start_outside_node`] with `settings` added to the cluster's config.
    async fn start_outside_node_with_settings(&mut self, id: usize, settings: &str) -> String {
        let config = std::fs::read_to_string(&self.config).unwrap();
        let own = self.config.with_file_name(format!("node-{id}.toml"));
        std::fs::write(&own, format!("{config}{settings}\n")).unwrap();
        let shared = std::mem::replace(&mut self.config, own);
        let address = self.start_outside_node_with(id, &[]).await;
        self.config = shared;
        address
    }

    /// [`TestCluster::start_outside_node`] with extra environment variables.
    async fn start_outside_node_with(&mut self, id: usize, env: &[(&str, &str)]) -> String {
        let port = free_ports(1)[0];
        let address = format!("127.0.0.1:{port}");
        let peers = format!("{id}={address}");
        let id_text = id.to_string();
        let args = [
            "--config",
            self.config.to_str().unwrap(),
            "--node-id",
            &id_text,
            "--cluster-listen",
            &address,
            "--cluster-peers",
            &peers,
        ];
        let mut env = env.to_vec();
        env.push(("KALAMDB_CLUSTER_SECRET", SECRET));
        self.nodes.push(TestServer::start_with_args_env(&args, &env).await);
        self.cluster_ports.push(port);
        address
    }

    /// A node's `/v1/api/cluster/health`, `None` if it does not answer.
    async fn health(node: &TestServer) -> Option<Value> {
        let r = node.client.get(format!("{}/v1/api/cluster/health", node.base)).send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    /// The index of the node every running node sees as the metadata group's leader, once
    /// every group has a leader all running nodes agree on (waits up to 30 s).
    async fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Per group, the leaders the nodes storing it see (with spread storage a node's
            // view of a group it does not store is old).
            let mut seen: std::collections::BTreeMap<u64, BTreeSet<Option<u64>>> = Default::default();
            for node in &self.nodes {
                if node.is_running_quiet()
                    && let Some(h) = Self::health(node).await
                {
                    for g in h["groups"].as_array().unwrap().iter().filter(|g| g["stored"] != json!(false)) {
                        seen.entry(g["group"].as_u64().unwrap()).or_default().insert(g["leader"].as_u64());
                    }
                }
            }
            let agreed: Vec<Option<u64>> =
                seen.values().map(|views| if views.len() == 1 { *views.first().unwrap() } else { None }).collect();
            if !agreed.is_empty()
                && agreed.iter().all(Option::is_some)
                && let Some(Some(leader)) = agreed.first()
            {
                return *leader as usize - 1;
            }
            assert!(Instant::now() < deadline, "no leaders all nodes agree on within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The index of the node leading the data group `group_sql` names (a query of one
    /// `data_group` value), as node 1 sees it in `system.cluster`.
    async fn leader_of(&self, auth: &Auth, group_sql: &str) -> usize {
        let sql = format!("SELECT node_id FROM system.cluster WHERE leader AND group_id = ({group_sql})");
        let r = self.nodes[0].sql_ok(auth, &sql).await;
        let node_id = r.rows(0)[0][0].as_u64().expect("the group has a leader");
        node_id as usize - 1
    }

    /// Waits until every running node has applied as far as each group's log goes.
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Per node and group: its last log index and applied index, `None` for a group
            // the node does not store (spread storage).
            type Position = Option<(Option<u64>, Option<u64>)>;
            let mut positions: Vec<Vec<Position>> = Vec::new();
            let mut healths = Vec::new();
            for (i, node) in self.nodes.iter().enumerate().filter(|(_, n)| n.is_running_quiet()) {
                let h = Self::health(node).await.unwrap_or_else(|| panic!("node {} does not answer", i + 1));
                let groups = h["groups"].as_array().unwrap().clone();
                positions.push(
                    groups
                        .iter()
                        .map(|g| {
                            (g["stored"] != json!(false))
                                .then(|| (g["last_log_index"].as_u64(), g["last_applied"].as_u64()))
                        })
                        .collect(),
                );
                healths.push((i + 1, groups));
            }
            let groups = positions.first().map_or(0, Vec::len);
            let behind: Vec<usize> = (0..groups)
                .filter(|g| {
                    let top = positions.iter().filter_map(|p| p[*g].and_then(|(last, _)| last)).max();
                    !positions.iter().filter_map(|p| p[*g]).all(|(_, applied)| applied == top)
                })
                .collect();
            if behind.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                // Every node's view of the groups that did not settle, to tell a stuck
                // follower from one the leader no longer counts as a member.
                let views: Vec<String> = behind
                    .iter()
                    .flat_map(|g| healths.iter().map(move |(node, groups)| format!("node {node}: {}", groups[*g])))
                    .collect();
                panic!("nodes did not catch up within 30 s: {positions:?}\n{}", views.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (up to 30 s) until every running node answers `sql` with `expected`. Unlike
    /// [`TestCluster::same_everywhere`] this needs no quiet moment, so it works under load.
    async fn until_everywhere(&self, auth: &Auth, sql: &str, expected: &[Value]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for (i, node) in self.nodes.iter().enumerate().filter(|(_, n)| n.is_running_quiet()) {
            loop {
                let rows = node.sql_ok(auth, sql).await.rows(0).clone();
                if rows == expected {
                    break;
                }
                assert!(Instant::now() < deadline, "node {} still answers {sql} with {rows:?}", i + 1);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// `sql` on every running node once they have caught up: their answers, which must all
    /// be equal.
    async fn same_everywhere(&self, auth: &Auth, sql: &str) -> Vec<Value> {
        self.settle().await;
        let mut answers = Vec::new();
        for (i, node) in self.nodes.iter().enumerate().filter(|(_, n)| n.is_running_quiet()) {
            let r = node.sql_ok(auth, sql).await;
            answers.push((i, r.rows(0).clone()));
        }
        for (i, rows) in &answers[1..] {
            assert_eq!(rows, &answers[0].1, "node {} and node {} answer {sql} differently", answers[0].0 + 1, i + 1);
        }
        answers.swap_remove(0).1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_and_writes_through_any_node_reach_every_node_alike() {
    let cluster = TestCluster::start(3).await;
    let root = Auth::root();
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let [a, b, c] = [&cluster.nodes[leader], &cluster.nodes[follower], &cluster.nodes[other]];

    // Catalog statements through a follower, used at once through that follower.
    b.sql_ok(
        &root,
        "CREATE NAMESPACE app; CREATE USER TABLE app.items (id BIGINT PRIMARY KEY, v TEXT, n INT DEFAULT 0)",
    )
    .await;
    let alice = c.create_user("alice").await;
    // Signed in on another node than the one that created the account.
    a.sql_ok(&alice, "SELECT 1").await;

    // Writes through every node; each node reads its own write at once.
    for i in 1..=30 {
        let node = &cluster.nodes[i % 3];
        node.sql_ok(&alice, &format!("INSERT INTO app.items (id, v) VALUES ({i}, 'v{i}')")).await;
        let r = node.sql_ok(&alice, &format!("SELECT v FROM app.items WHERE id = {i}")).await;
        assert_eq!(r.rows(0), &vec![json!([format!("v{i}")])], "node {} reads its own write", i % 3 + 1);
    }
    b.sql_ok(&alice, "UPDATE app.items SET n = n + 1 WHERE id <= 10").await;
    c.sql_ok(&alice, "DELETE FROM app.items WHERE id > 25").await;
    let r = c.sql_params(&alice, "UPDATE app.items SET v = $1 WHERE id = $2", json!(["changed", 3])).await;
    assert!(r.status.is_success(), "{}", r.body);
    // A refused write is refused through a follower with the leader's error.
    b.sql_err(&alice, "INSERT INTO app.items (id, v) VALUES (1, 'again')", 409, "DUPLICATE_KEY").await;
    // ALTER TABLE through a follower, then a write on the new definition.
    c.sql_ok(&root, "ALTER TABLE app.items ADD COLUMN note TEXT").await;
    a.sql_ok(&alice, "INSERT INTO app.items (id, v, note) VALUES (100, 'late', 'after alter')").await;

    let rows = cluster.same_everywhere(&alice, "SELECT id, v, n, note, _updated FROM app.items ORDER BY id").await;
    assert_eq!(rows.len(), 26, "{rows:?}");
    assert_eq!(rows[0][2], json!(1), "UPDATE ... n = n + 1 applied once: {:?}", rows[0]);
    assert_eq!(rows[2][1], json!("changed"));
    assert_eq!(rows[25][3], json!("after alter"));
    // Read-your-writes on another node: the write's answer names the log index it was
    // applied at; a read naming it waits for the node to get there.
    let write = c
        .client
        .post(format!("{}/v1/api/sql", c.base))
        .basic_auth("alice", Some("alice-password"))
        .json(&json!({"sql": "INSERT INTO app.items (id, v) VALUES (200, 'ryw')"}))
        .send()
        .await
        .unwrap();
    assert!(write.status().is_success());
    let index = write.headers()["x-kalamdb-applied-index"].to_str().unwrap().to_string();
    let read = |node: &TestServer, index: String| {
        node.client
            .post(format!("{}/v1/api/sql", node.base))
            .basic_auth("alice", Some("alice-password"))
            .header("x-kalamdb-after-index", index)
            .json(&json!({"sql": "SELECT v FROM app.items WHERE id = 200"}))
            .send()
    };
    // One index per Raft group, the metadata group's first.
    let position: Vec<u64> = index.split(',').map(|i| i.parse().unwrap()).collect();
    assert!(position.len() > 1, "{index}");
    let r: Value = read(a, index.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(r["results"][0]["rows"], json!([["ryw"]]), "{r}");
    // A position the node cannot reach in time: a clear refusal, not a stale answer.
    let started = Instant::now();
    let far: Vec<String> = position.iter().map(|i| (i + 1_000_000).to_string()).collect();
    let r = read(b, far.join(",")).await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], json!("UNAVAILABLE"), "{body}");
    assert!(started.elapsed() >= Duration::from_secs(4), "it waited before refusing");
    // A restore reads the backup on the node it is sent to.
    let r =
        b.sql_err(&root, "RESTORE DATABASE app2 FROM '/tmp/kalamdb-no-cluster-backup'", 400, "VALIDATION_ERROR").await;
    assert!(r.body["error"]["message"].as_str().unwrap().contains("no backup at"), "{}", r.body);
    // The catalog is the same everywhere too.
    b.sql_ok(&root, "CREATE SHARED TABLE app.notes (id BIGINT PRIMARY KEY)").await;
    cluster.same_everywhere(&root, "SELECT username, role, data_group FROM system.users ORDER BY username").await;
    // Every user's partitions, and every SHARED table, belong to one of the 8 data groups.
    let placed = "SELECT (SELECT count(*) FROM system.users WHERE data_group NOT BETWEEN 1 AND 8 OR data_group IS NULL) AS a, \
                  (SELECT count(*) FROM system.tables WHERE table_type = 'shared' AND (data_group NOT BETWEEN 1 AND 8 OR data_group IS NULL)) AS b, \
                  (SELECT count(*) FROM system.tables WHERE table_type <> 'shared' AND data_group IS NOT NULL) AS c, \
                  (SELECT count(*) FROM system.tables WHERE table_type = 'shared') AS d";
    let r = b.sql_ok(&root, placed).await;
    assert_eq!(r.rows(0)[0].as_array().unwrap()[..3], [json!(0), json!(0), json!(0)], "placed: {}", r.body);
    assert!(r.rows(0)[0][3].as_u64().unwrap() > 0, "the test has a SHARED table: {}", r.body);
    cluster.same_everywhere(&root, "SELECT * FROM system.tables ORDER BY table_name").await;
    cluster.same_everywhere(&root, "SELECT * FROM system.table_schemas ORDER BY table_id, version").await;
    cluster.same_everywhere(&root, "SELECT * FROM system.namespaces ORDER BY 1").await;
    // The leader knows how far the log is committed: all of it, once every node holds it;
    // the followers do not know.
    let leader = cluster.leader().await;
    let own = "SELECT committed_index = log_index, committed_index IS NULL FROM system.cluster WHERE this_node AND group_id = 0";
    for (i, node) in cluster.nodes.iter().enumerate() {
        let expected = if i == leader { json!([true, false]) } else { json!([null, true]) };
        assert_eq!(node.sql_ok(&root, own).await.rows(0), &vec![expected], "node {}", i + 1);
    }
}

const ROOT: (&str, &str) = ("root", crate::common::ROOT_PASSWORD);

/// Inserts row `writer * 1_000_000 + k` into `app.log (id, w)`.
fn insert_log(w: u64, k: u64) -> String {
    format!("INSERT INTO app.log (id, w) VALUES ({}, {w})", w * 1_000_000 + k)
}

/// Four writers running `statement(writer, k)` for k = 0, 1, ... as `user` through the given
/// nodes, moving to the next node when one cannot be reached; they keep which were
/// acknowledged (as `writer * 1_000_000 + k`), and when.
struct Writers {
    acknowledged: Arc<Mutex<BTreeSet<u64>>>,
    acknowledged_at: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    fn start(bases: Vec<String>, user: (&str, &str), statement: fn(u64, u64) -> String) -> Writers {
        let (user, password) = (user.0.to_string(), user.1.to_string());
        let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
        let acknowledged_at = Arc::new(Mutex::new(Vec::<Instant>::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..4u64 {
            let (bases, acknowledged, acknowledged_at, stop) =
                (bases.clone(), acknowledged.clone(), acknowledged_at.clone(), stop.clone());
            let (user, password) = (user.clone(), password.clone());
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
                let mut node = w as usize % bases.len();
                for k in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let sent = client
                        .post(format!("{}/v1/api/sql", bases[node]))
                        .basic_auth(&user, Some(&password))
                        .json(&json!({ "sql": statement(w, k) }))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().is_success() => {
                            acknowledged.lock().unwrap().insert(w * 1_000_000 + k);
                            acknowledged_at.lock().unwrap().push(Instant::now());
                        }
                        Ok(r) => {
                            let status = r.status();
                            let body: Value = r.json().await.unwrap_or_default();
                            // While a leader is elected, writes are refused as unavailable.
                            assert!(status == 503 || status == 408, "unexpected answer {status}: {body}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(_) => {
                            // The node is gone: use another.
                            node = (node + 1) % bases.len();
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }));
        }
        Writers { acknowledged, acknowledged_at, stop, tasks }
    }

    /// Stops the writers: the ids acknowledged, and the times of the acknowledgements.
    async fn stop(self) -> (BTreeSet<u64>, Vec<Instant>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        let acknowledged = self.acknowledged.lock().unwrap().clone();
        let times = self.acknowledged_at.lock().unwrap().clone();
        (acknowledged, times)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leader_loses_no_acknowledged_write() {
    let mut cluster = TestCluster::with_log_table().await;
    let root = Auth::root();
    // The node to kill leads the data group of the table written (group g is led by node
    // g mod 3 + 1 once the leadership has spread).
    until_data_groups_led(&cluster, |g| g % 3 + 1).await;
    let leader = cluster.leader_of(&root, "SELECT data_group FROM system.tables WHERE table_name = 'log'").await;

    let bases: Vec<String> = cluster.nodes.iter().map(|n| n.base.clone()).collect();
    let writers = Writers::start(bases, ROOT, insert_log);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = writers.acknowledged.lock().unwrap().len();
    assert!(before > 10, "writers made progress before the kill: {before}");
    let killed_at = Instant::now();
    cluster.nodes[leader].kill9();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (acknowledged, times) = writers.stop().await;
    let first_after = times.iter().copied().filter(|t| *t > killed_at).min();
    let failover = first_after.expect("writes resumed after the leader was killed") - killed_at;
    // The longest pause between acknowledgements around the kill: the election.
    let mut around: Vec<Instant> = times.iter().copied().filter(|t| *t > killed_at - Duration::from_secs(1)).collect();
    around.sort();
    let pause = around.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    eprintln!("failover: first acknowledged write {failover:?} after the kill, longest pause {pause:?}");
    assert!(pause > Duration::from_millis(200), "the killed node led the table's group: writes paused ({pause:?})");
    assert!(acknowledged.len() > before, "writes acknowledged after the kill");
    // A KILL no running node can do is not answered "unknown" while a member is down: the
    // job or live query may run there.
    let other = (leader + 1) % 3;
    for kill in ["KILL JOB 'none-such'", "KILL LIVE QUERY 'none-such'"] {
        let r = cluster.nodes[other].sql_err(&root, kill, 503, "UNAVAILABLE").await;
        assert!(r.body.to_string().contains(&format!("node {} did not answer", leader + 1)), "{}", r.body);
    }

    // The killed node comes back, catches up, and holds every acknowledged write.
    cluster.nodes[leader].start_again();
    cluster.leader().await;
    let rows = cluster.same_everywhere(&root, "SELECT id FROM app.log ORDER BY id").await;
    let stored: BTreeSet<u64> = rows.iter().map(|r| r[0].as_u64().unwrap()).collect();
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "{} acknowledged writes lost: {:?}", lost.len(), &lost[..lost.len().min(10)]);
    let _ = &cluster.cluster_ports;
}

/// Every group's leader (metadata group first) if all running nodes agree on them.
async fn agreed_leaders(cluster: &TestCluster) -> Option<Vec<Option<u64>>> {
    let mut seen = BTreeSet::new();
    for node in cluster.nodes.iter().filter(|n| n.is_running_quiet()) {
        let h = TestCluster::health(node).await?;
        seen.insert(h["groups"].as_array()?.iter().map(|g| g["leader"].as_u64()).collect::<Vec<_>>());
    }
    (seen.len() == 1).then(|| seen.into_iter().next()).flatten()
}

/// Waits (up to 30 s) until every running node sees data group `g` (1..=8) led as
/// `expected(g)` says; answers how long that took.
async fn until_data_groups_led(cluster: &TestCluster, expected: impl Fn(u64) -> u64) -> Duration {
    let started = Instant::now();
    loop {
        let leaders = agreed_leaders(cluster).await;
        if let Some(leaders) = &leaders
            && (1..=8u64).all(|g| leaders[g as usize] == Some(expected(g)))
        {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "data groups still led as {leaders:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn data_group_leadership_spreads_over_the_nodes_and_moves_without_refusing_a_write() {
    let mut cluster = TestCluster::start(3).await;
    let root = Auth::root();
    cluster.nodes[0]
        .sql_ok(&root, "CREATE NAMESPACE app; CREATE USER TABLE app.items (id BIGINT PRIMARY KEY, w INT)")
        .await;
    let mut users = Vec::new();
    for w in 0..4 {
        users.push(cluster.nodes[0].create_user(&format!("writer{w}")).await);
    }
    cluster.settle().await;

    // Four users (so several data groups) write through every node while the leadership
    // of the data groups moves: no write may be refused or lost.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..4usize {
        let (base, stop) = (cluster.nodes[w % 3].base.clone(), stop.clone());
        let name = format!("writer{w}");
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
            let (mut acknowledged, mut refused) = (BTreeSet::new(), Vec::new());
            for k in 0u64.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let r = client
                    .post(format!("{base}/v1/api/sql"))
                    .basic_auth(&name, Some(format!("{name}-password")))
                    .json(&json!({ "sql": format!("INSERT INTO app.items (id, w) VALUES ({k}, {w})") }))
                    .send()
                    .await
                    .unwrap();
                match r.status().is_success() {
                    true => _ = acknowledged.insert(k),
                    false => refused.push(format!("{}: {}", r.status(), r.text().await.unwrap_or_default())),
                }
            }
            (acknowledged, refused)
        }));
    }

    // Data group g goes to the voter at g mod 3: node 2 leads 1, 4 and 7, node 3 leads 2, 5
    // and 8, node 1 (which created the cluster and led everything) 3 and 6.
    let preferred = |g: u64| g % 3 + 1;
    let took = until_data_groups_led(&cluster, preferred).await;
    eprintln!("leadership spread {took:?} after the cluster was up");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for (w, task) in tasks.into_iter().enumerate() {
        let (acknowledged, refused) = task.await.unwrap();
        assert!(refused.is_empty(), "writer {w} was refused: {refused:?}");
        assert!(!acknowledged.is_empty(), "writer {w} made progress");
        let rows = cluster.same_everywhere(&users[w], "SELECT id FROM app.items ORDER BY id").await;
        let stored: BTreeSet<u64> = rows.iter().map(|r| r[0].as_u64().unwrap()).collect();
        assert_eq!(stored, acknowledged, "writer {w}'s rows are exactly its acknowledged writes");
    }

    // Node 2 dies: the others take its groups. Back, it leads them again once caught up.
    cluster.nodes[1].kill9();
    // (Which survivor takes which of node 2's groups is the elections' choice.)
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leaders = agreed_leaders(&cluster).await;
        if leaders.as_ref().is_some_and(|l| l.iter().all(|g| g.is_some_and(|n| n != 2))) {
            break;
        }
        assert!(Instant::now() < deadline, "groups without a leader after node 2 died: {leaders:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.nodes[1].start_again();
    let took = until_data_groups_led(&cluster, preferred).await;
    eprintln!("node 2 led its groups again {took:?} after its restart");
    cluster.nodes[0].sql_ok(&users[1], "INSERT INTO app.items (id, w) VALUES (1000000, 1)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_fewer_replicas_than_nodes_each_data_group_has_that_many_voters_and_every_node_serves_reads() {
    let mut cluster = TestCluster::start_with(3, "replicas = 2").await;
    let root = Auth::root();
    // Created with three voters in every group, the cluster keeps two per data group (each
    // group's leader demotes one to a learner): all three nodes stay members of every group.
    let voters = "SELECT group_id, sum(CASE WHEN voter THEN 1 ELSE 0 END), count(*) FROM system.cluster \
                  GROUP BY group_id ORDER BY group_id";
    let expected: Vec<Value> = (0..=8).map(|g| if g == 0 { json!([0, 3, 3]) } else { json!([g, 2, 3]) }).collect();
    cluster.until_everywhere(&root, voters, &expected).await;
    // Spread: every node votes in some data groups and not in others.
    let per_node = cluster.nodes[0]
        .sql_ok(&root, "SELECT node_id, count(*) FROM system.cluster WHERE voter AND group_id > 0 GROUP BY node_id ORDER BY node_id")
        .await;
    let votes: Vec<u64> = per_node.rows(0).iter().map(|r| r[1].as_u64().unwrap()).collect();
    assert_eq!(votes.len(), 3, "{votes:?}");
    assert!(votes.iter().all(|v| (1..8).contains(v)), "votes per node: {votes:?}");
    assert_eq!(votes.iter().sum::<u64>(), 16);

    // Writes of several users (so several groups) through every node read back alike
    // everywhere, learners included.
    cluster.nodes[0].sql_ok(&root, "CREATE NAMESPACE app; CREATE USER TABLE app.items (id BIGINT PRIMARY KEY)").await;
    let mut users = Vec::new();
    for u in 0..6 {
        users.push(cluster.nodes[0].create_user(&format!("reader{u}")).await);
    }
    cluster.settle().await;
    for (u, user) in users.iter().enumerate() {
        for node in 0..3 {
            cluster.nodes[node].sql_ok(user, &format!("INSERT INTO app.items (id) VALUES ({})", u * 10 + node)).await;
        }
    }
    for (u, user) in users.iter().enumerate() {
        let rows = cluster.same_everywhere(user, "SELECT id FROM app.items ORDER BY id").await;
        let expected: Vec<Value> = (0..3).map(|n| json!([u * 10 + n])).collect();
        assert_eq!(rows, expected, "reader{u}");
    }
    // The leadership spread over each group's voters.
    let leaders = agreed_leaders(&cluster).await.unwrap();
    let led: BTreeSet<u64> = leaders[1..].iter().flatten().copied().collect();
    assert!(led.len() >= 2, "data groups led by {led:?}");

    // A node restarted catches up in the groups it votes in and those it only learns.
    // (With 2 voters, a group that node 3 votes in has no majority while it is down: the
    // write below is taken, or refused as UNAVAILABLE, depending on reader0's group.)
    cluster.nodes[2].kill9();
    let r = cluster.nodes[0].sql(&users[0], "INSERT INTO app.items (id) VALUES (99)").await;
    assert!(r.status == 200 || r.status == 503, "{}: {}", r.status, r.body);
    cluster.nodes[2].start_again();
    cluster.until_everywhere(&root, voters, &expected).await;
    let rows = cluster.same_everywhere(&users[0], "SELECT count(*) FROM app.items").await;
    assert!(rows == vec![json!([3])] || rows == vec![json!([4])], "{rows:?}");
    assert_eq!(cluster.same_everywhere(&users[1], "SELECT count(*) FROM app.items").await, vec![json!([3])]);
}

/// With `spread_storage` each user's rows are stored by their group's voters alone, and
/// every node still serves every user: a read is handed to a node that stores the user, a
/// WebSocket session relayed there. A subscriber relayed through a node that does not store
/// its user survives the kill of the node serving it: it reconnects and resumes from its
/// cursor, missing and repeating nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_spread_storage_each_user_is_stored_by_its_voters_and_served_by_every_node() {
    use crate::common::WsClient;
    const KEY: &str = "spread-backup-key-spread-backup-key-012345";
    let config = format!("replicas = 3\nspread_storage = true\ndata_groups = 4\n[storage]\nbackup_key = \"{KEY}\"");
    let mut cluster = TestCluster::start_with(4, &config).await;
    let root = Auth::root();
    // The metadata group and the SHARED tables' group (1) on every node; each users' group
    // on its three voters only.
    let members = "SELECT group_id, count(*), sum(CASE WHEN voter THEN 1 ELSE 0 END) FROM system.cluster \
                   GROUP BY group_id ORDER BY group_id";
    let membership = [json!([0, 4, 4]), json!([1, 4, 3]), json!([2, 3, 3]), json!([3, 3, 3]), json!([4, 3, 3])];
    cluster.until_everywhere(&root, members, &membership).await;

    let ddl = "CREATE NAMESPACE app; CREATE USER TABLE app.items (id BIGINT PRIMARY KEY, v TEXT); \
               CREATE USER TABLE app.marks (id BIGINT PRIMARY KEY); \
               CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT); \
               CREATE SHARED TABLE app.tags (id BIGINT PRIMARY KEY, name TEXT) WITH (access_level = 'public'); \
               INSERT INTO app.tags (id, name) VALUES (1, 'one')";
    cluster.nodes[1].sql_ok(&root, ddl).await;
    let mut users = Vec::new();
    for u in 0..6 {
        users.push(cluster.nodes[0].create_user(&format!("spread{u}")).await);
    }
    cluster.settle().await;
    // Each user writes through every node and reads the write back at once there.
    for (u, user) in users.iter().enumerate() {
        for node in 0..4 {
            let id = u * 10 + node;
            let sql = format!(
                "INSERT INTO app.items (id, v) VALUES ({id}, 'x'); SELECT count(*) FROM app.items WHERE id = {id}"
            );
            let r = cluster.nodes[node].sql_ok(user, &sql).await;
            assert_eq!(r.rows(1), &vec![json!([1])], "spread{u} through node {}", node + 1);
        }
    }
    // Every node answers every user alike, SHARED tables joined in.
    for (u, user) in users.iter().enumerate() {
        let sql = "SELECT i.id, t.name FROM app.items i JOIN app.tags t ON t.id = 1 ORDER BY i.id";
        let expected: Vec<Value> = (0..4).map(|n| json!([u * 10 + n, "one"])).collect();
        assert_eq!(cluster.same_everywhere(user, sql).await, expected, "spread{u}");
    }
    // Stored three times over, and not on every node.
    let mut held = Vec::new();
    for node in &cluster.nodes {
        held.push(table_stats(node, "app.items").await.0);
    }
    assert_eq!(held.iter().sum::<i64>(), 24 * 3, "hot rows per node: {held:?}");
    assert!(held.iter().any(|rows| *rows < 24), "every node stores every user: {held:?}");
    // A backup through a node that does not store every group gathers the other groups'
    // partitions from their leaders; it restores on a single node with every user's rows.
    let flushed = crate::flush::flush_and_wait(&cluster.nodes[1], "FLUSH TABLE app.items").await;
    assert_eq!(flushed[1], json!("completed"), "{flushed:?}");
    let target = tempfile::tempdir().unwrap();
    let path = target.path().join("spread-backup");
    let partial = (0..4).find(|n| held[*n] < 24).unwrap();
    let r = cluster.nodes[partial].sql_ok(&root, &format!("BACKUP DATABASE app TO '{}'", path.display())).await;
    let job = r.rows(0)[0][0].as_str().unwrap().to_string();
    let done = crate::flush::wait_for_job(&cluster.nodes[partial], &job).await;
    assert_eq!(done[1], json!("completed"), "{done:?}");
    let manifest: Value = serde_json::from_slice(&std::fs::read(path.join("backup.json")).unwrap()).unwrap();
    let items = manifest["tables"].as_array().unwrap().iter().find(|t| t["table"]["name"] == "items").unwrap();
    assert_eq!(items["partitions"].as_array().unwrap().len(), 6, "one partition per user: {items}");
    let single = TestServer::start_with_env(&[("KALAMDB_BACKUP_KEY", KEY)]).await;
    let r = single.sql_ok(&root, &format!("RESTORE DATABASE app FROM '{}'", path.display())).await;
    let job = r.rows(0)[0][0].as_str().unwrap().to_string();
    let done = crate::flush::wait_for_job(&single, &job).await;
    assert_eq!(done[1], json!("completed"), "{done:?}");
    assert_eq!(table_stats(&single, "app.items").await.1, 24, "every user's rows, once");
    assert_eq!(table_stats(&single, "app.tags").await.1, 1);
    // The parts the other nodes wrote for it are gone.
    for node in &cluster.nodes {
        let parts = node.data_dir().join("backups").join(".parts");
        let left = std::fs::read_dir(&parts).map(|d| d.count()).unwrap_or(0);
        assert_eq!(left, 0, "parts left in {}", parts.display());
    }

    // A node that does not store alice, and the leader of alice's group.
    let alice = cluster.nodes[0].create_user("alice").await;
    cluster.nodes[0].sql_ok(&alice, "INSERT INTO app.marks (id) VALUES (1)").await;
    cluster.settle().await;
    let mut storing = BTreeSet::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        if table_stats(node, "app.marks").await.0 == 1 {
            storing.insert(i as u64 + 1);
        }
    }
    assert_eq!(storing.len(), 3, "alice stored on {storing:?}");
    let outside = (0..4).find(|i| !storing.contains(&(*i as u64 + 1))).unwrap();
    let in_group = |group: u64| format!("SELECT node_id FROM system.cluster WHERE group_id = {group} ORDER BY node_id");
    let mut group = None;
    for g in 2..=4 {
        let nodes = cluster.nodes[outside].sql_ok(&root, &in_group(g)).await;
        let nodes: BTreeSet<u64> = nodes.rows(0).iter().map(|r| r[0].as_u64().unwrap()).collect();
        if nodes == storing {
            group = Some(g);
        }
    }
    let group = group.expect("a group stored where alice is");

    // Four writers of alice through every node; her subscriber through the node outside.
    let bases: Vec<String> = cluster.nodes.iter().map(|n| n.base.clone()).collect();
    let writers = Writers::start(bases, ("alice", "alice-password"), mixed_item_writes);
    let mut replica = Replica::default();
    let sql = "SELECT id, v FROM app.items";
    let mut ws = WsClient::connect_as(&cluster.nodes[outside], "alice", "alice-password").await;
    ws.send_json(json!({"type": "subscribe", "id": "s", "sql": sql})).await;
    assert!(replica.follow(&mut ws, Duration::from_millis(1500)).await, "the relayed session closed");
    assert!(replica.cursor > 0, "changes reach a subscriber relayed through node {}", outside + 1);
    let serving = cluster.leader_of(&root, &group.to_string()).await;
    assert_ne!(serving, outside);
    cluster.nodes[serving].kill9();
    assert!(!replica.follow(&mut ws, Duration::from_secs(10)).await, "the relayed socket closes with its node");
    let moved_at = replica.cursor;
    // Through the same node again: it relays the session to the group's new leader.
    let mut ws = WsClient::connect_as(&cluster.nodes[outside], "alice", "alice-password").await;
    ws.send_json(json!({"type": "subscribe", "id": "s", "sql": sql, "since": moved_at})).await;
    assert!(replica.follow(&mut ws, Duration::from_secs(3)).await);
    writers.stop().await;
    cluster.settle().await;
    assert!(replica.follow(&mut ws, Duration::from_secs(1)).await);
    assert!(replica.cursor > moved_at, "changes arrived after the move");
    assert_eq!(replica.resets, 0, "the move cost the subscriber a full reload");
    let rows = cluster.nodes[outside].sql_ok(&alice, "SELECT id, v FROM app.items ORDER BY id").await;
    let expected: std::collections::BTreeMap<i64, Value> =
        rows.rows(0).iter().map(|r| (r[0].as_i64().unwrap(), r[1].clone())).collect();
    assert!(replica.rows == expected, "the subscriber's copy differs from the table");

    // system.live_queries on any node lists the relayed session's live query where it is
    // served; a user sees only their own; KILL LIVE QUERY on any node ends it.
    let listed = "SELECT live_id, username, subscription_id, node FROM system.live_queries";
    let mut live_id = String::new();
    for node in cluster.nodes.iter().filter(|n| n.is_running_quiet()) {
        let rows = node.sql_ok(&root, listed).await.rows(0).clone();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!((&rows[0][1], &rows[0][2]), (&json!("alice"), &json!("s")));
        // Served by a node storing alice (the group's leader when the session was opened).
        let node_name = rows[0][3].as_str().unwrap();
        assert!(storing.iter().any(|n| node_name == format!("node-{n}")), "served on {node_name}");
        live_id = rows[0][0].as_str().unwrap().to_string();
        assert_eq!(node.sql_ok(&alice, listed).await.rows(0), &rows);
        assert!(node.sql_ok(&users[0], listed).await.rows(0).is_empty(), "another user's live query is listed");
    }
    let kill = format!("KILL LIVE QUERY '{live_id}'");
    // Node `serving` is down: it might serve the live query, so another user's KILL is not
    // answered "no such live query" (which would tell nothing either way).
    let r = cluster.nodes[outside].sql_err(&users[0], &kill, 503, "UNAVAILABLE").await;
    assert!(r.body.to_string().contains(&format!("node {} did not answer", serving + 1)), "{}", r.body);
    cluster.nodes[outside].sql_ok(&alice, &kill).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        use kalamdb_client_core::protocol::{ErrorCode, ws::ServerMessage};
        let left = deadline.checked_duration_since(Instant::now()).expect("no KILLED frame within 5 s");
        match ws.next_frame(left).await {
            Ok(Some(ServerMessage::Error { id, code, .. })) => {
                assert_eq!((id.as_deref(), code), (Some("s"), ErrorCode::Killed));
                break;
            }
            Ok(Some(_)) => {}
            other => panic!("the relayed session ended without a KILLED frame: {:?}", other.map(|_| ())),
        }
    }
    assert!(cluster.nodes[outside].sql_ok(&root, listed).await.rows(0).is_empty());
    cluster.nodes[outside].sql_err(&alice, &kill, 503, "UNAVAILABLE").await;

    // A frame larger than a client may send (1 MiB) is relayed whole: an initial load of
    // 12 rows of 120 KB comes as one batch of ~1.4 MB.
    let body = "n".repeat(120_000);
    for id in 0..12 {
        cluster.nodes[outside]
            .sql_ok(&alice, &format!("INSERT INTO app.notes (id, body) VALUES ({id}, '{body}')"))
            .await;
    }
    ws.send_json(json!({"type": "subscribe", "id": "big", "sql": "SELECT id, body FROM app.notes"})).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        use kalamdb_client_core::protocol::ws::ServerMessage;
        let left = deadline.checked_duration_since(Instant::now()).expect("no batch within 10 s");
        match ws.next_frame(left).await {
            Ok(Some(ServerMessage::Batch { rows, .. })) => {
                assert_eq!(rows.len(), 12, "the load came in more than one batch");
                assert!(rows.iter().all(|r| r[1].as_str() == Some(body.as_str())));
                break;
            }
            Ok(Some(_)) => {}
            other => panic!("the relayed session ended before the large batch: {:?}", other.map(|_| ())),
        }
    }

    // The killed node comes back and catches up in its groups; the node that created the
    // cluster (`--cluster-bootstrap`) restarts without creating again a group it left.
    cluster.nodes[serving].start_again();
    cluster.until_everywhere(&root, members, &membership).await;
    if serving != 0 {
        cluster.nodes[0].kill9();
        cluster.nodes[0].start_again();
        cluster.until_everywhere(&root, members, &membership).await;
    }
    let count = "SELECT count(*) FROM app.items";
    let n = cluster.same_everywhere(&alice, count).await;
    assert_eq!(n, vec![json!([expected.len()])]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_majority_refuses_writes_clearly() {
    let mut cluster = TestCluster::start(3).await;
    let root = Auth::root();
    cluster.nodes[0].sql_ok(&root, "CREATE NAMESPACE app; CREATE SHARED TABLE app.t (id BIGINT PRIMARY KEY)").await;
    cluster.settle().await;
    let survivor = cluster.leader().await;
    for i in 0..3 {
        if i != survivor {
            cluster.nodes[i].kill9();
        }
    }
    let started = Instant::now();
    let r = cluster.nodes[survivor].sql(&root, "INSERT INTO app.t (id) VALUES (1)").await;
    assert_eq!(r.status.as_u16(), 503, "{}", r.body);
    assert_eq!(r.code(), "UNAVAILABLE", "{}", r.body);
    assert!(started.elapsed() < Duration::from_secs(10), "answered within the write timeout");
    // Reads still work on what the node has.
    cluster.nodes[survivor].sql_ok(&root, "SELECT count(*) FROM app.t").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_port_refuses_forged_and_malformed_messages() {
    let cluster = TestCluster::start(3).await;
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/cluster/v1/raft/vote", cluster.cluster_ports[1]);
    let vote = json!({"vote": {"leader_id": {"term": 99, "node_id": 9}, "committed": false}, "last_log_id": null});
    // No token, and a token of another cluster: refused before anything is read.
    let r = client.post(&url).json(&vote).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let forged = token_of(b"another-cluster-secret-of-32-chars!!");
    let r = client.post(&url).header("x-kalamdb-cluster-token", &forged).json(&vote).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // The right token from a node started with other cluster settings: refused, with why.
    let token = token_of(SECRET.as_bytes());
    let settings = "data_groups=8 spread_storage=false replicas=3";
    let r = client.post(&url).header("x-kalamdb-cluster-token", &token).json(&vote).send().await.unwrap();
    assert_eq!(r.status(), 409);
    let other = "data_groups=8 spread_storage=false replicas=2";
    let r = client
        .post(&url)
        .header("x-kalamdb-cluster-token", &token)
        .header("x-kalamdb-cluster-settings", other)
        .header("x-kalamdb-node", "9")
        .json(&vote)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.text().await.unwrap(),
        format!(
            "cluster settings differ: node 2 runs with {settings}, node 9 with {other}; start every node of a \
             cluster with the same cluster.data_groups, cluster.spread_storage and cluster.replicas"
        )
    );
    // The right token and settings with a malformed body: refused, and the cluster goes on.
    let r = client
        .post(&url)
        .header("x-kalamdb-cluster-token", &token)
        .header("x-kalamdb-cluster-settings", settings)
        .body("{\"vote\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // The client port does not serve cluster messages.
    let client_url = format!("{}/cluster/v1/raft/vote", cluster.nodes[1].base);
    let r = client.post(&client_url).header("x-kalamdb-cluster-token", &token).json(&vote).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["message"], json!("no such endpoint"), "{body}");
    cluster.nodes[0].sql_ok(&Auth::root(), "CREATE NAMESPACE still_works").await;
}

/// A subscriber's copy of `SELECT id, v FROM app.items`, fed from sync frames. Panics on a
/// change it has already seen (a cursor not above the last one).
#[derive(Default)]
struct Replica {
    rows: std::collections::BTreeMap<i64, Value>,
    cursor: i64,
    resets: usize,
}

impl Replica {
    /// Applies frames for `period` (then `true`) or until the socket closes (`false`).
    async fn follow(&mut self, ws: &mut crate::common::WsClient, period: Duration) -> bool {
        use kalamdb_client_core::protocol::ws::{ChangeOp, ServerMessage};
        let until = Instant::now() + period;
        loop {
            let Some(left) = until.checked_duration_since(Instant::now()) else { return true };
            let frame = match ws.next_frame(left).await {
                Err(()) => return false,
                Ok(None) => return true,
                Ok(Some(frame)) => frame,
            };
            match frame {
                ServerMessage::Change { op, row, cursor, .. } => {
                    assert!(cursor > self.cursor, "change at {cursor} after {}: a duplicate", self.cursor);
                    self.cursor = cursor;
                    let id = row[0].as_i64().unwrap();
                    match op {
                        ChangeOp::Delete => self.rows.remove(&id),
                        _ => self.rows.insert(id, row[1].clone()),
                    };
                }
                ServerMessage::Batch { rows, deleted, cursor, reset, .. } => {
                    // A reset replaces the subscriber's copy (it would also pass the test).
                    if reset {
                        self.rows.clear();
                        self.cursor = 0;
                        self.resets += 1;
                    }
                    for row in rows {
                        self.rows.insert(row[0].as_i64().unwrap(), row[1].clone());
                    }
                    for pk in deleted {
                        self.rows.remove(&pk.as_i64().unwrap());
                    }
                    self.cursor = self.cursor.max(cursor);
                }
                ServerMessage::Subscribed { .. } | ServerMessage::Pong { .. } => {}
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }
}

/// Writer `w`'s `k`th statement on `app.items (id, v)`: inserts, and updates and deletes of
/// its earlier rows.
fn mixed_item_writes(w: u64, k: u64) -> String {
    let id = w * 1_000_000 + k;
    match k % 5 {
        3 => format!("UPDATE app.items SET v = 'u{k}' WHERE id = {}", id - 2),
        4 => format!("DELETE FROM app.items WHERE id = {}", id - 3),
        _ => format!("INSERT INTO app.items (id, v) VALUES ({id}, 'i{k}')"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_moved_to_another_node_after_a_kill_misses_and_repeats_nothing() {
    use crate::common::WsClient;
    let mut cluster =
        TestCluster::with_alice("CREATE NAMESPACE app; CREATE USER TABLE app.items (id BIGINT PRIMARY KEY, v TEXT)")
            .await;

    // Four writers through every node: inserts, and updates and deletes of earlier rows.
    let bases: Vec<String> = cluster.nodes.iter().map(|n| n.base.clone()).collect();
    let writers = Writers::start(bases, ("alice", "alice-password"), mixed_item_writes);

    // The subscriber starts on the leader, which is then killed.
    let leader = cluster.leader().await;
    let mut replica = Replica::default();
    let mut ws = WsClient::connect_as(&cluster.nodes[leader], "alice", "alice-password").await;
    ws.send_json(json!({"type": "subscribe", "id": "s", "sql": "SELECT id, v FROM app.items"})).await;
    assert!(replica.follow(&mut ws, Duration::from_millis(1500)).await, "the leader closed the subscription");
    cluster.nodes[leader].kill9();
    assert!(!replica.follow(&mut ws, Duration::from_secs(10)).await, "the killed node's socket closes");
    let moved_at = replica.cursor;
    assert!(moved_at > 0, "the subscriber saw changes before the kill");

    // It resumes on another node from its cursor.
    let next = (leader + 1) % 3;
    let mut ws = WsClient::connect_as(&cluster.nodes[next], "alice", "alice-password").await;
    ws.send_json(json!({"type": "subscribe", "id": "s", "sql": "SELECT id, v FROM app.items", "since": moved_at}))
        .await;
    assert!(replica.follow(&mut ws, Duration::from_secs(3)).await);
    writers.stop().await;
    cluster.settle().await;
    assert!(replica.follow(&mut ws, Duration::from_secs(1)).await);
    assert!(replica.cursor > moved_at, "changes arrived after the move");
    assert_eq!(replica.resets, 0, "the move cost the subscriber a full reload");

    let alice = Auth::basic("alice", "alice-password");
    let rows = cluster.nodes[next].sql_ok(&alice, "SELECT id, v FROM app.items ORDER BY id").await;
    let expected: std::collections::BTreeMap<i64, Value> =
        rows.rows(0).iter().map(|r| (r[0].as_i64().unwrap(), r[1].clone())).collect();
    assert_eq!(replica.rows.len(), expected.len());
    assert!(replica.rows == expected, "the subscriber's copy differs from the node's table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adding_a_node_and_removing_the_first_under_load_loses_nothing() {
    let mut cluster = TestCluster::with_log_table().await;
    let root = Auth::root();
    // Node 1 leaves below: the writers write through nodes 2 and 3.
    let writers = Writers::start(vec![cluster.nodes[1].base.clone(), cluster.nodes[2].base.clone()], ROOT, insert_log);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Through a follower: the statement runs on the leader.
    let via = (cluster.leader().await + 1) % 3;
    let address = cluster.start_outside_node(4).await;
    let r = cluster.nodes[via].sql_ok(&root, &format!("ALTER CLUSTER ADD NODE 4 '{address}'")).await;
    assert!(r.body.to_string().contains("added"), "{}", r.body);
    // The writers go on meanwhile, so no moment is quiet enough to compare whole nodes.
    let four = [json!([1, true]), json!([2, true]), json!([3, true]), json!([4, true])];
    cluster
        .until_everywhere(&root, "SELECT node_id, voter FROM system.cluster WHERE group_id = 0 ORDER BY node_id", &four)
        .await;
    // Each data group keeps 3 voters (`replicas`): node 4 votes in the groups it is placed
    // in, and learns the others.
    let data_voters = "SELECT group_id, sum(CASE WHEN voter THEN 1 ELSE 0 END), count(*) FROM system.cluster \
                       WHERE group_id > 0 GROUP BY group_id ORDER BY group_id";
    let expected: Vec<Value> = (1..=8).map(|g| json!([g, 3, 4])).collect();
    cluster.until_everywhere(&root, data_voters, &expected).await;

    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.nodes[2].sql_ok(&root, "ALTER CLUSTER REMOVE NODE 1").await;
    cluster.nodes[0].kill9();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (acknowledged, _) = writers.stop().await;
    assert!(acknowledged.len() > 20, "writers made progress: {}", acknowledged.len());

    cluster.leader().await;
    let members = cluster
        .same_everywhere(&root, "SELECT node_id, voter FROM system.cluster WHERE group_id = 0 ORDER BY node_id")
        .await;
    assert_eq!(members, vec![json!([2, true]), json!([3, true]), json!([4, true])]);
    let expected: Vec<Value> = (1..=8).map(|g| json!([g, 3, 3])).collect();
    cluster.until_everywhere(&root, data_voters, &expected).await;
    let rows = cluster.same_everywhere(&root, "SELECT id FROM app.log ORDER BY id").await;
    let stored: BTreeSet<u64> = rows.iter().map(|r| r[0].as_u64().unwrap()).collect();
    assert!(acknowledged.is_subset(&stored), "{} acknowledged writes lost", acknowledged.difference(&stored).count());

    // The new node holds what was written before it joined too.
    let r = cluster.nodes[3].sql_ok(&root, "SELECT count(*) FROM app.log").await;
    assert_eq!(r.rows(0)[0][0].as_u64().unwrap(), stored.len() as u64);
    // Only a system user changes the members, and not on a single node.
    let single = TestServer::start().await;
    single.sql_err(&root, "ALTER CLUSTER REMOVE NODE 2", 400, "NOT_SUPPORTED").await;
}

/// Writer `w`'s `k`th insert into `app.items (id, v)`.
fn insert_item(w: u64, k: u64) -> String {
    format!("INSERT INTO app.items (id, v) VALUES ({}, 'i{k}')", w * 1_000_000 + k)
}

/// With spread storage, a node added and a node removed under load move users' groups
/// between nodes (each group on `replicas` nodes, no learners left behind), and no
/// acknowledged write is lost; every node still answers every user alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_spread_storage_adding_and_removing_a_node_moves_groups_and_loses_nothing() {
    // (A heartbeat a second: sessions learn soon that their node stopped storing their user.)
    let settings = "replicas = 2\nspread_storage = true\ndata_groups = 8\n[live]\nheartbeat_secs = 1";
    let mut cluster = TestCluster::start_with(3, settings).await;
    let root = Auth::root();
    let ddl = "CREATE NAMESPACE app; CREATE USER TABLE app.items (id BIGINT PRIMARY KEY, v TEXT)";
    cluster.nodes[0].sql_ok(&root, ddl).await;
    let alice = cluster.nodes[0].create_user("alice").await;
    // Rows of several users, so of most groups, before the members change.
    let mut others = Vec::new();
    for u in 0..8 {
        let user = cluster.nodes[0].create_user(&format!("other{u}")).await;
        let values: Vec<String> = (0..5).map(|i| format!("({i}, 'o')")).collect();
        cluster.nodes[u % 3]
            .sql_ok(&user, &format!("INSERT INTO app.items (id, v) VALUES {}", values.join(", ")))
            .await;
        others.push(user);
    }
    cluster.settle().await;
    // Each other user's subscriber through nodes 2 and 3 (node 1 leaves below).
    let mut sessions = Vec::new();
    for u in 0..8 {
        for node in [1, 2] {
            let name = format!("other{u}");
            let mut ws =
                crate::common::WsClient::connect_as(&cluster.nodes[node], &name, &format!("{name}-password")).await;
            ws.send_json(json!({"type": "subscribe", "id": "s", "sql": "SELECT id FROM app.items"})).await;
            while let Ok(Some(_)) = ws.next_frame(Duration::from_millis(300)).await {}
            sessions.push((u, ws));
        }
    }
    let bases = vec![cluster.nodes[1].base.clone(), cluster.nodes[2].base.clone()];
    let writers = Writers::start(bases, ("alice", "alice-password"), insert_item);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let address = cluster.start_outside_node(4).await;
    cluster.nodes[1].sql_ok(&root, &format!("ALTER CLUSTER ADD NODE 4 '{address}'")).await;
    // Members per group (and voters): every node in the metadata and the SHARED tables'
    // groups; each users' group on two nodes, both voters.
    let members = "SELECT group_id, count(*), sum(CASE WHEN voter THEN 1 ELSE 0 END) FROM system.cluster \
                   GROUP BY group_id ORDER BY group_id";
    let spread = |nodes: u64| -> Vec<Value> {
        [json!([0, nodes, nodes]), json!([1, nodes, 2])].into_iter().chain((2..=8).map(|g| json!([g, 2, 2]))).collect()
    };
    let four = spread(4);
    cluster.until_everywhere(&root, members, &four).await;
    let on_four = cluster.nodes[3].sql_ok(&root, "SELECT count(*) FROM system.cluster WHERE this_node").await;
    assert!(on_four.rows(0)[0][0].as_u64().unwrap() < 9, "node 4 is a member of every group");

    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.nodes[2].sql_ok(&root, "ALTER CLUSTER REMOVE NODE 1").await;
    cluster.nodes[0].kill9();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (acknowledged, _) = writers.stop().await;
    assert!(acknowledged.len() > 20, "writers made progress: {}", acknowledged.len());

    let three = spread(3);
    cluster.until_everywhere(&root, members, &three).await;
    let rows = cluster.same_everywhere(&alice, "SELECT id FROM app.items ORDER BY id").await;
    let stored: BTreeSet<u64> = rows.iter().map(|r| r[0].as_u64().unwrap()).collect();
    assert!(acknowledged.is_subset(&stored), "{} acknowledged writes lost", acknowledged.difference(&stored).count());

    // No subscriber silently stops getting changes: each gets the next write of its user,
    // or its socket was closed (its node stopped storing the user, or the node serving its
    // relayed session left) and it would reconnect.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (mut served, mut closed) = (0, 0);
    for user in &others {
        cluster.nodes[3].sql_ok(user, "INSERT INTO app.items (id, v) VALUES (1000, 'n')").await;
    }
    for (u, ws) in &mut sessions {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.checked_duration_since(Instant::now()).unwrap_or_default();
            match ws.next_frame(left).await {
                Ok(Some(kalamdb_client_core::protocol::ws::ServerMessage::Change { row, .. }))
                    if row[0] == json!(1000) =>
                {
                    served += 1;
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) => panic!("other{u}'s subscriber got neither the change nor a close"),
                Err(()) => {
                    closed += 1;
                    break;
                }
            }
        }
    }
    eprintln!("subscribers after the members changed: {served} served, {closed} closed");
    assert!(closed > 0, "no subscriber's node stopped storing its user (the test lost its point)");

    // A node frees the groups it left when it restarts: then each row is on two nodes.
    for node in 1..4 {
        cluster.nodes[node].kill9();
        cluster.nodes[node].start_again();
        cluster.until_everywhere(&root, members, &three).await;
    }
    let mut held = Vec::new();
    for node in &cluster.nodes[1..] {
        held.push(table_stats(node, "app.items").await.0);
    }
    assert_eq!(held.iter().sum::<i64>(), 2 * (stored.len() as i64 + 48), "hot rows per node: {held:?}");
    assert_eq!(cluster.same_everywhere(&alice, "SELECT id FROM app.items ORDER BY id").await, rows);
    for user in &others {
        assert_eq!(cluster.same_everywhere(user, "SELECT count(*) FROM app.items").await, vec![json!([6])]);
    }
}

#[tokio::test]
async fn a_single_nodes_data_directory_is_refused_unless_it_creates_the_cluster() {
    let mut single = TestServer::start().await;
    single.sql_ok(&Auth::root(), "CREATE NAMESPACE app; CREATE SHARED TABLE app.t (id BIGINT PRIMARY KEY)").await;
    single.stop();
    let port = free_ports(1)[0];
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kalamdb-server"))
        .args(["--listen", "127.0.0.1:0", "--node-id", "2"])
        .args(["--cluster-listen", &format!("127.0.0.1:{port}"), "--cluster-peers", &format!("2=127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(single.data_dir())
        .env("KALAMDB_CLUSTER_SECRET", SECRET)
        .env("KALAMDB_ROOT_PASSWORD", crate::common::ROOT_PASSWORD)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("only the node that creates the cluster"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_nodes_data_becomes_a_three_node_cluster() {
    let mut single = TestServer::start().await;
    let root = Auth::root();
    single.sql_ok(&root, "CREATE NAMESPACE app; CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT)").await;
    let alice = single.create_user("alice").await;
    let insert = |id: usize| format!("INSERT INTO app.notes (id, body) VALUES ({id}, 'note {id}')");
    for id in 0..20 {
        single.sql_ok(&alice, &insert(id)).await;
    }
    crate::flush::flush_and_wait(&single, "FLUSH TABLE app.notes").await;
    for id in 20..30 {
        single.sql_ok(&alice, &insert(id)).await;
    }
    single.sql_ok(&alice, "UPDATE app.notes SET body = 'edited' WHERE id = 0").await;
    let sql = "SELECT id, body, _updated FROM app.notes ORDER BY id";
    let expected = single.sql_ok(&alice, sql).await.rows(0).clone();
    // A table on an S3 storage too (when moto is installed): its files stay in the bucket,
    // and the cluster adopts the manifest the single node left there.
    let moto = crate::storages::Moto::start().await;
    let lake_sql = "SELECT id, body, _updated FROM app.lake_notes ORDER BY id";
    let mut lake_expected = None;
    if let Some(moto) = &moto {
        moto.create_bucket("seed").await;
        let ddl = format!(
            "CREATE STORAGE lake TYPE 's3' BUCKET 'seed' ENDPOINT '{}' ACCESS_KEY_ID 'k' SECRET_ACCESS_KEY 's' \
             ALLOW_HTTP; CREATE USER TABLE app.lake_notes (id BIGINT PRIMARY KEY, body TEXT) WITH (storage = 'lake')",
            moto.endpoint
        );
        single.sql_ok(&root, &ddl).await;
        for id in 0..10 {
            single.sql_ok(&alice, &format!("INSERT INTO app.lake_notes (id, body) VALUES ({id}, 'lake {id}')")).await;
        }
        crate::flush::flush_and_wait(&single, "FLUSH TABLE app.lake_notes").await;
        single.sql_ok(&alice, "INSERT INTO app.lake_notes (id, body) VALUES (10, 'hot')").await;
        lake_expected = Some(single.sql_ok(&alice, lake_sql).await.rows(0).clone());
    }
    single.stop();

    // The same data directory creates the cluster; the two others start empty.
    let ports = free_ports(3);
    let peers = ports.iter().enumerate().map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1)).collect::<Vec<_>>().join(",");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cluster.toml");
    std::fs::write(&config, "[cluster]\nwrite_timeout_ms = 4000\nheartbeat_ms = 50\nelection_timeout_min_ms = 300\nelection_timeout_max_ms = 600\n").unwrap();
    let node_args = |id: usize| -> Vec<String> {
        let mut args =
            vec!["--config".to_string(), config.to_str().unwrap().to_string(), "--node-id".into(), id.to_string()];
        args.extend([
            "--cluster-listen".into(),
            format!("127.0.0.1:{}", ports[id - 1]),
            "--cluster-peers".into(),
            peers.clone(),
        ]);
        args
    };
    let mut first = node_args(1);
    first.push("--cluster-bootstrap".into());
    // A first snapshot that cannot be written (a full disk): the start fails, saying why,
    // and the data stays marked for seeding, which the next start does.
    let failed = std::process::Command::new(env!("CARGO_BIN_EXE_kalamdb-server"))
        .args(["--listen", "127.0.0.1:0", "--log", "warn,openraft=off"])
        .args(&first)
        .arg("--data-dir")
        .arg(single.data_dir())
        .env("KALAMDB_CLUSTER_SECRET", SECRET)
        .env("KALAMDB_ROOT_PASSWORD", crate::common::ROOT_PASSWORD)
        .env("FAILPOINTS", "cluster:snapshot_write=return")
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("cannot take the first snapshot: cannot write a snapshot file: fault injected"),
        "{stderr}"
    );
    single.set_args(&first.iter().map(String::as_str).collect::<Vec<_>>());
    single.set_env(&[("KALAMDB_CLUSTER_SECRET", SECRET)]);
    single.start_again();
    let mut nodes = vec![single];
    for id in 2..=3 {
        let args = node_args(id);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        nodes.push(TestServer::start_with_args_env(&args, &[("KALAMDB_CLUSTER_SECRET", SECRET)]).await);
    }
    let cluster = TestCluster { nodes, cluster_ports: ports, config };
    std::mem::forget(dir);

    // The others join once they installed the first node's snapshot (and restarted into it).
    let three = [json!([1, true]), json!([2, true]), json!([3, true])];
    let deadline = Instant::now() + Duration::from_secs(60);
    for node in &cluster.nodes {
        loop {
            let health = TestCluster::health(node).await;
            if health.as_ref().and_then(|h| h["members"].as_array()).is_some_and(|m| m.len() == 3) {
                break;
            }
            assert!(Instant::now() < deadline, "{} did not see three members: {health:?}", node.base);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    cluster
        .until_everywhere(
            &root,
            "SELECT node_id, voter FROM system.cluster WHERE group_id = 0 ORDER BY node_id",
            &three,
        )
        .await;
    assert_eq!(cluster.same_everywhere(&alice, sql).await, expected);
    let flushed = crate::flush::parquet_files(&cluster.nodes[2].data_dir().join("storage"));
    assert!(!flushed.is_empty(), "node 3 got the cold files too");

    // And it goes on as a cluster.
    cluster.nodes[2].sql_ok(&alice, &insert(100)).await;
    assert_eq!(cluster.same_everywhere(&alice, "SELECT count(*) FROM app.notes").await, vec![json!([31])]);

    if let Some(lake_expected) = &lake_expected {
        let rows = cluster.same_everywhere(&alice, lake_sql).await;
        assert_eq!(&rows, lake_expected, "every node reads the S3 table's cold rows");
        // Flushed through the log from now on: the leader's file joins the single node's.
        // (Once the leadership has spread: a flush whose group changes leader meanwhile
        // fails, and is left to the new leader.)
        until_data_groups_led(&cluster, |g| g % 3 + 1).await;
        let leader = cluster.leader().await;
        crate::flush::flush_and_wait(&cluster.nodes[leader], "FLUSH TABLE app.lake_notes").await;
        cluster.settle().await;
        for node in &cluster.nodes {
            assert_eq!(table_stats(node, "app.lake_notes").await, (0, 11, 2), "{}", node.base);
        }
        assert_eq!(&cluster.same_everywhere(&alice, lake_sql).await, lake_expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_cut_off_refuses_writes_and_the_cluster_converges_after_healing() {
    let (cluster, partition) = TestCluster::start_partitionable(3).await;
    let root = Auth::root();
    cluster.nodes[0].sql_ok(&root, "CREATE NAMESPACE app; CREATE SHARED TABLE app.t (id BIGINT PRIMARY KEY)").await;
    cluster.settle().await;
    let cut = cluster.leader().await;
    partition.cut_off(cut as u64 + 1);

    // The cut-off leader cannot reach a majority: its write is refused, clearly; so is a
    // linearizable read, which it cannot vouch for, while a plain read answers from its replica.
    let r = cluster.nodes[cut].sql(&root, "INSERT INTO app.t (id) VALUES (999)").await;
    assert_eq!((r.status.as_u16(), r.code()), (503, "UNAVAILABLE"), "{}", r.body);
    let r = linearizable_read(&cluster.nodes[cut], "SELECT count(*) FROM app.t").await;
    assert_eq!((r.status.as_u16(), r.code()), (503, "UNAVAILABLE"), "{}", r.body);
    cluster.nodes[cut].sql_ok(&root, "SELECT count(*) FROM app.t").await;

    // The majority elects another leader and goes on.
    let majority = (cut + 1) % 3;
    let deadline = Instant::now() + Duration::from_secs(20);
    for id in 1..=20 {
        let mut unanswered = false;
        loop {
            let r = cluster.nodes[majority].sql(&root, &format!("INSERT INTO app.t (id) VALUES ({id})")).await;
            // A try answered UNAVAILABLE may have been applied all the same (as that answer
            // says): trying again then finds its row.
            if r.status.is_success() || (unanswered && r.code() == "DUPLICATE_KEY") {
                break;
            }
            assert_eq!(r.code(), "UNAVAILABLE", "{}", r.body);
            unanswered = true;
            assert!(Instant::now() < deadline, "the majority took no write within 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Healed: every node holds the majority's writes, and not the refused one.
    partition.heal();
    cluster.leader().await;
    // A linearizable read on the node that was cut off sees the majority's last write.
    let r = linearizable_read(&cluster.nodes[cut], "SELECT max(id) FROM app.t").await;
    assert_eq!(r.rows(0), &vec![json!([20])], "{}", r.body);
    let rows = cluster.same_everywhere(&root, "SELECT id FROM app.t ORDER BY id").await;
    let ids: Vec<i64> = rows.iter().map(|r| r[0].as_i64().unwrap()).collect();
    assert_eq!(ids, (1..=20).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_events_reach_subscribers_on_every_node_in_order() {
    use crate::common::WsClient;
    use kalamdb_client_core::protocol::ws::ServerMessage;
    let cluster =
        TestCluster::with_alice("CREATE NAMESPACE app; CREATE STREAM TABLE app.ev (id BIGINT PRIMARY KEY, v INT)")
            .await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let mut ws = WsClient::connect_as(&cluster.nodes[follower], "alice", "alice-password").await;
    crate::common::subscribe(&mut ws, "s", "SELECT id, v FROM app.ev", json!({})).await;
    // Inserted through the other follower: forwarded to the leader, relayed to every node.
    let alice = Auth::basic("alice", "alice-password");
    for i in 0..20 {
        cluster.nodes[(leader + 2) % 3].sql_ok(&alice, &format!("INSERT INTO app.ev (id, v) VALUES ({i}, {i})")).await;
    }
    let mut seen = Vec::new();
    let mut last = 0;
    while seen.len() < 20 {
        match ws.recv().await {
            ServerMessage::Change { row, cursor, .. } => {
                assert!(cursor > last, "events arrive in order");
                last = cursor;
                seen.push(row[0].as_i64().unwrap());
            }
            ServerMessage::Pong { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, (0..20).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_applies_once_whichever_nodes_it_is_sent_to_and_across_a_failover() {
    use crate::common::WsClient;
    use kalamdb_client_core::protocol::ws::{MutationStatus, ServerMessage};
    let mut cluster = TestCluster::with_alice(
        "CREATE NAMESPACE app; CREATE USER TABLE app.todos (id BIGINT PRIMARY KEY, n INT); \
             CREATE SHARED TABLE app.board (id BIGINT PRIMARY KEY, n INT)",
    )
    .await;
    let message = |seq: u64| {
        json!({"type": "mutate", "client_id": "phone", "seq": seq, "ops": [
            {"table": "app.todos", "op": "insert", "row": {"id": seq, "n": 0}},
            {"table": "app.todos", "op": "update", "pk": 1, "row": {"n": seq}}
        ]})
    };
    async fn send(node: &TestServer, message: Value) -> MutationStatus {
        send_as(node, "alice", message).await
    }
    async fn send_as(node: &TestServer, user: &str, message: Value) -> MutationStatus {
        let mut ws = WsClient::connect_as(node, user, &format!("{user}-password")).await;
        ws.send_json(message).await;
        loop {
            match ws.recv().await {
                ServerMessage::MutateResult(r) => return r.status,
                ServerMessage::Pong { .. } => {}
                other => panic!("expected mutate_result, got {other:?}"),
            }
        }
    }
    // The leader of alice's data group, once the leadership has spread (group g is led by
    // node g mod 3 + 1).
    until_data_groups_led(&cluster, |g| g % 3 + 1).await;
    let leader = cluster.leader_of(&Auth::root(), "SELECT data_group FROM system.users WHERE username = 'alice'").await;
    let [a, b] = [(leader + 1) % 3, (leader + 2) % 3];
    // Through a follower, then the same message again through the other follower and the
    // leader: applied once.
    assert_eq!(send(&cluster.nodes[a], message(1)).await, MutationStatus::Applied);
    assert_eq!(send(&cluster.nodes[b], message(1)).await, MutationStatus::Duplicate);
    assert_eq!(send(&cluster.nodes[leader], message(1)).await, MutationStatus::Duplicate);
    assert_eq!(send(&cluster.nodes[a], message(2)).await, MutationStatus::Applied);
    // A message to a SHARED table commits in the table's group, which keeps its record.
    cluster.nodes[0].create_user_with_role("svc", "service").await;
    cluster.settle().await;
    let shared = json!({"type": "mutate", "client_id": "phone", "seq": 10, "ops": [
        {"table": "app.board", "op": "insert", "row": {"id": 1, "n": 0}}
    ]});
    assert_eq!(send_as(&cluster.nodes[a], "svc", shared.clone()).await, MutationStatus::Applied);
    assert_eq!(send_as(&cluster.nodes[b], "svc", shared.clone()).await, MutationStatus::Duplicate);
    // The leader of alice's group dies; its successor knows both messages.
    cluster.nodes[leader].kill9();
    assert_eq!(send(&cluster.nodes[b], message(2)).await, MutationStatus::Duplicate);
    assert_eq!(send(&cluster.nodes[b], message(3)).await, MutationStatus::Applied);
    assert_eq!(send_as(&cluster.nodes[a], "svc", shared).await, MutationStatus::Duplicate);
    let alice = Auth::basic("alice", "alice-password");
    let rows = cluster.same_everywhere(&alice, "SELECT id, n FROM app.todos ORDER BY id").await;
    assert_eq!(rows, vec![json!([1, 3]), json!([2, 0]), json!([3, 0])]);
    let svc = Auth::basic("svc", "svc-password");
    assert_eq!(cluster.same_everywhere(&svc, "SELECT id, n FROM app.board").await, vec![json!([1, 0])]);
}

/// openraft gives an append (and a heartbeat) one heartbeat's time to be answered. A
/// follower slower than that (a large batch, a busy machine) must still get every entry, and
/// its leader learn that it did: here node 3 answers each append 120 ms late, with heartbeats
/// every 50 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_slower_than_a_heartbeat_still_follows_the_log() {
    let cluster = TestCluster::start_with_faults(3, "", &[(2, "cluster:append=return(120)")]).await;
    let root = Auth::root();
    cluster.nodes[0]
        .sql_ok(&root, "CREATE NAMESPACE app; CREATE SHARED TABLE app.log (id BIGINT PRIMARY KEY, w INT)")
        .await;
    for id in 0..30 {
        let sql = format!("INSERT INTO app.log (id, w) VALUES ({id}, {})", id % 3);
        cluster.nodes[id % 3].sql_ok(&root, &sql).await;
    }
    let counted = cluster.same_everywhere(&root, "SELECT count(*), sum(w) FROM app.log").await;
    assert_eq!(counted, vec![json!([30, 30])]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_added_after_the_log_was_purged_installs_a_snapshot() {
    // A snapshot every 40 entries, keeping 20 before it (enough for the members, which
    // are never that far behind here): the start of the log, which a new node needs, is gone.
    let mut cluster = TestCluster::start_with(3, "snapshot_every_entries = 40\nsnapshot_keep_entries = 20").await;
    let root = Auth::root();
    let ddl = "CREATE NAMESPACE app; CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT)";
    cluster.nodes[0].sql_ok(&root, ddl).await;
    let alice = cluster.nodes[1].create_user("alice").await;
    let insert = |id: usize| format!("INSERT INTO app.notes (id, body) VALUES ({id}, 'note {id}')");
    for id in 0..50 {
        cluster.nodes[id % 3].sql_ok(&alice, &insert(id)).await;
    }
    // The snapshot holds cold files as well as hot rows, and changes on top of flushed rows.
    cluster.settle().await;
    for node in &cluster.nodes {
        crate::flush::flush_and_wait(node, "FLUSH TABLE app.notes").await;
    }
    for id in 50..100 {
        cluster.nodes[id % 3].sql_ok(&alice, &insert(id)).await;
    }
    for id in 0..10 {
        cluster.nodes[0].sql_ok(&alice, &format!("UPDATE app.notes SET body = 'edited' WHERE id = {id}")).await;
    }
    cluster.nodes[1].sql_ok(&alice, "DELETE FROM app.notes WHERE id >= 90").await;
    let expected = cluster.same_everywhere(&alice, "SELECT id, body, _updated FROM app.notes ORDER BY id").await;
    assert_eq!(expected.len(), 90);

    // Alice's rows are in one data group, whose log the leader has purged.
    let leader = cluster.leader().await;
    let health = TestCluster::health(&cluster.nodes[leader]).await.unwrap();
    let (group, purged) = health["groups"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(g, h)| (g, h["purged_index"].as_u64().unwrap_or(0)))
        .max_by_key(|(_, purged)| *purged)
        .unwrap();
    assert!(purged > 20, "the leader's log of alice's group is purged: {health}");

    // The new node cannot catch up from the log: it gets the snapshot, restarts into it
    // (keeping its client address), then follows the log from there.
    let address = cluster.start_outside_node(4).await;
    cluster.nodes[0].sql_ok(&root, &format!("ALTER CLUSTER ADD NODE 4 '{address}'")).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let installed =
            TestCluster::health(&cluster.nodes[3]).await.and_then(|h| h["groups"][group]["snapshot_index"].as_u64());
        if installed.is_some_and(|i| i >= purged) {
            break;
        }
        assert!(Instant::now() < deadline, "node 4 did not install a snapshot: {installed:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let four = [json!([1, true]), json!([2, true]), json!([3, true]), json!([4, true])];
    cluster
        .until_everywhere(&root, "SELECT node_id, voter FROM system.cluster WHERE group_id = 0 ORDER BY node_id", &four)
        .await;
    let rows = cluster.same_everywhere(&alice, "SELECT id, body, _updated FROM app.notes ORDER BY id").await;
    assert_eq!(rows, expected);
    let flushed = crate::flush::parquet_files(&cluster.nodes[3].data_dir().join("storage"));
    assert!(!flushed.is_empty(), "node 4 got the cold files too");

    // It goes on from there: a write through it reaches every node.
    cluster.nodes[3].sql_ok(&alice, "INSERT INTO app.notes (id, body) VALUES (100, 'after')").await;
    let rows = cluster.same_everywhere(&alice, "SELECT count(*) FROM app.notes").await;
    assert_eq!(rows, vec![json!([91])]);
}

/// A node that cannot take a snapshot (here a fault as a full disk would give) goes on:
/// it keeps its log, says why in its health and `system.cluster`, leaves no partial files,
/// and the other nodes take theirs.
#[tokio::test]
async fn a_node_that_cannot_take_a_snapshot_keeps_running_and_its_log() {
    let settings = "snapshot_every_entries = 20\nsnapshot_keep_entries = 5";
    let cluster = TestCluster::start_with_faults(3, settings, &[(1, "cluster:snapshot_write=return")]).await;
    let root = Auth::root();
    cluster.nodes[0].sql_ok(&root, "CREATE NAMESPACE app; CREATE SHARED TABLE app.log (id BIGINT PRIMARY KEY)").await;
    for id in 0..60 {
        cluster.nodes[id % 3].sql_ok(&root, &format!("INSERT INTO app.log (id) VALUES ({id})")).await;
    }
    let rows = cluster.same_everywhere(&root, "SELECT count(*) FROM app.log").await;
    assert_eq!(rows, vec![json!([60])]);

    // The table's rows are in one data group: the one with the longest log.
    let health = TestCluster::health(&cluster.nodes[0]).await.unwrap();
    let group = (0..health["groups"].as_array().unwrap().len())
        .max_by_key(|g| health["groups"][g]["last_log_index"].as_u64().unwrap_or(0))
        .unwrap();
    for i in [0, 2] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = TestCluster::health(&cluster.nodes[i]).await.unwrap();
            if health["groups"][group]["purged_index"].as_u64().is_some_and(|p| p > 0) {
                assert!(health["snapshot_error"].is_null(), "{health}");
                break;
            }
            assert!(Instant::now() < deadline, "node {} took no snapshot: {health}", i + 1);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let failing = &cluster.nodes[1];
    let health = TestCluster::health(failing).await.unwrap();
    let expected = format!("group {group}: cannot write a snapshot file: fault injected");
    assert_eq!(health["snapshot_error"], json!(expected), "{health}");
    let own = &health["groups"][group];
    assert!(own["snapshot_index"].is_null() && own["purged_index"].is_null(), "log kept: {health}");
    assert_eq!(own["state"], json!("Follower"), "{health}");
    let sql = format!("SELECT problem FROM system.cluster WHERE this_node AND group_id = {group}");
    let problem = failing.sql_ok(&root, &sql).await;
    assert_eq!(
        problem.rows(0),
        &vec![json!(["the last snapshot failed: cannot write a snapshot file: fault injected"])]
    );
    let snapshots = failing.data_dir().join("raft-snapshots");
    let left: Vec<_> = std::fs::read_dir(&snapshots)
        .unwrap()
        .flat_map(|g| std::fs::read_dir(g.unwrap().path()).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "a failed snapshot leaves nothing behind: {left:?}");

    // It still takes writes and applies everyone's.
    failing.sql_ok(&root, "INSERT INTO app.log (id) VALUES (60)").await;
    let rows = cluster.same_everywhere(&root, "SELECT count(*) FROM app.log").await;
    assert_eq!(rows, vec![json!([61])]);
}

/// `ALTER CLUSTER ADD NODE` gives up at once, saying why, when the new node's Raft stops
/// (here it cannot apply a commit), instead of waiting minutes for it to catch up.
#[tokio::test]
async fn adding_a_node_that_stops_fails_at_once_and_says_why() {
    let mut cluster = TestCluster::start(1).await;
    let root = Auth::root();
    cluster.nodes[0].sql_ok(&root, "CREATE NAMESPACE app; CREATE SHARED TABLE app.log (id BIGINT PRIMARY KEY)").await;
    cluster.nodes[0].sql_ok(&root, "INSERT INTO app.log (id) VALUES (1)").await;
    let address = cluster.start_outside_node_with(2, &[("FAILPOINTS", "cluster:apply_commit=return")]).await;
    let started = Instant::now();
    let r = cluster.nodes[0].sql(&root, &format!("ALTER CLUSTER ADD NODE 2 '{address}'")).await;
    assert_eq!(r.code(), "UNAVAILABLE", "{:?}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("node 2 was added as a learner, but its Raft has stopped"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    // A member of every group (a voter of those it caught up with before the failure
    // showed, which may include the group whose log was short enough), shown as stopped in
    // the group it could not apply.
    let sql = "SELECT count(*), sum(CASE WHEN problem IS NOT NULL THEN 1 ELSE 0 END) \
               FROM system.cluster WHERE node_id = 2";
    let rows = cluster.nodes[0].sql_ok(&root, sql).await;
    let detail = "SELECT group_id, voter, problem FROM system.cluster WHERE node_id = 2 ORDER BY group_id";
    let detail = cluster.nodes[0].sql_ok(&root, detail).await;
    assert_eq!(rows.rows(0), &vec![json!([9, 1])], "{:?}", detail.rows(0));
    // The cluster goes on without it.
    cluster.nodes[0].sql_ok(&root, "INSERT INTO app.log (id) VALUES (2)").await;
}

/// A node started with other cluster settings (here `replicas`) than the cluster's is not
/// added: it would place voters its own way and undo the others' placement.
#[tokio::test]
async fn a_node_with_other_cluster_settings_is_not_added_and_says_why() {
    let mut cluster = TestCluster::start(1).await;
    let root = Auth::root();
    let address = cluster.start_outside_node_with_settings(2, "replicas = 2").await;
    let started = Instant::now();
    let r = cluster.nodes[0].sql(&root, &format!("ALTER CLUSTER ADD NODE 2 '{address}'")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap_or_default().to_string();
    assert!(
        message.starts_with("node 2 cannot join: cluster settings differ: node 2 runs with data_groups=8 spread_storage=false replicas=2, node 1 with data_groups=8 spread_storage=false replicas=3"),
        "{message}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let members = cluster.nodes[0].sql_ok(&root, "SELECT count(*) FROM system.cluster WHERE node_id = 2").await;
    assert_eq!(members.rows(0), &vec![json!([0])]);
}

/// A node that cannot apply a catalog statement the others applied stops (rather than go on
/// with a different catalog), is reported as stopped, and applies it when restarted.
#[tokio::test]
async fn a_node_that_cannot_apply_a_statement_stops_and_applies_it_after_a_restart() {
    let mut cluster = TestCluster::start_with_faults(3, "", &[(2, "cluster:apply_statement=return")]).await;
    let root = Auth::root();
    cluster.nodes[0].sql_ok(&root, "CREATE NAMESPACE app").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let health = TestCluster::health(&cluster.nodes[2]).await.unwrap();
        if health["stopped"] == json!(true) {
            break;
        }
        assert!(Instant::now() < deadline, "node 3 went on: {health}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The leader among the two running ones, as node 1 sees it.
    let deadline = Instant::now() + Duration::from_secs(15);
    let leader = loop {
        let seen = TestCluster::health(&cluster.nodes[0]).await.unwrap()["leader"].as_u64();
        if let Some(id @ (1 | 2)) = seen {
            break id as usize - 1;
        }
        assert!(Instant::now() < deadline, "no leader among nodes 1 and 2: {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let problem = "SELECT problem FROM system.cluster WHERE node_id = 3 AND group_id = 0";
    let deadline = Instant::now() + Duration::from_secs(15);
    while cluster.nodes[leader].sql_ok(&root, problem).await.rows(0)
        != &vec![json!(["its Raft has stopped (see its log)"])]
    {
        assert!(Instant::now() < deadline, "the leader does not report node 3 as stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The other two go on.
    cluster.nodes[1].sql_ok(&root, "CREATE SHARED TABLE app.t (id BIGINT PRIMARY KEY)").await;

    cluster.nodes[2].set_env(&[("KALAMDB_CLUSTER_SECRET", SECRET)]);
    cluster.nodes[2].restart();
    let rows = cluster.same_everywhere(&root, "SELECT table_name FROM system.tables WHERE namespace = 'app'").await;
    assert_eq!(rows, vec![json!(["t"])]);
    let health = TestCluster::health(&cluster.nodes[2]).await.unwrap();
    assert_eq!(health["stopped"], json!(false), "{health}");
}

/// Each node runs its own flushes; `system.jobs` on any node lists every node's jobs with the
/// node that runs it, and `KILL JOB` on any node cancels the job where it runs.
#[tokio::test]
async fn system_jobs_lists_every_nodes_jobs_and_kill_job_reaches_the_node_running_it() {
    let cluster = TestCluster::start_with_faults(3, "", &[(2, "flush:locked=sleep(3000)")]).await;
    let root = Auth::root();
    cluster.nodes[0].sql_ok(&root, "CREATE NAMESPACE app; CREATE SHARED TABLE app.log (id BIGINT PRIMARY KEY)").await;
    cluster.nodes[0].sql_ok(&root, "INSERT INTO app.log (id) VALUES (1), (2), (3)").await;
    cluster.settle().await;

    let done = crate::flush::flush_and_wait(&cluster.nodes[1], "FLUSH TABLE app.log").await;
    let on_two = done[0].as_str().unwrap().to_string();
    assert!(on_two.starts_with("flush-node2-"), "{on_two}");
    assert_eq!(done[1], json!("completed"));
    // Node 3's flush is held at its start for 3 s.
    let r = cluster.nodes[2].sql_ok(&root, "FLUSH TABLE app.log").await;
    let on_three = r.rows(0)[0][0].as_str().unwrap().to_string();

    let listed = cluster.nodes[0].sql_ok(&root, "SELECT job_id, node FROM system.jobs ORDER BY job_id").await;
    assert_eq!(listed.rows(0), &vec![json!([on_two, "node-2"]), json!([on_three, "node-3"])]);

    cluster.nodes[0].sql_ok(&root, &format!("KILL JOB '{on_three}'")).await;
    let status = format!("SELECT status FROM system.jobs WHERE job_id = '{on_three}'");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rows = cluster.nodes[0].sql_ok(&root, &status).await.rows(0).clone();
        if rows == vec![json!(["cancelled"])] {
            break;
        }
        assert!(Instant::now() < deadline, "node 3's job did not end cancelled: {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.nodes[0].sql_err(&root, &format!("KILL JOB '{on_two}'"), 400, "VALIDATION_ERROR").await;
    cluster.nodes[0].sql_err(&root, "KILL JOB 'flush-node3-999'", 400, "VALIDATION_ERROR").await;
}

/// The cluster token a node derives from `secret` (an HMAC of a fixed label).
fn token_of(secret: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(b"kalamdb cluster v1");
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// With `cluster.tls_*` the nodes talk mutual TLS: the cluster works as usual, and the
/// cluster port refuses plain HTTP, a client without a certificate, and one whose
/// certificate another CA signed, even with the cluster token.
#[tokio::test]
async fn with_tls_nodes_talk_mutual_tls_and_refuse_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = crate::common::tls_files(dir.path(), "cluster");
    let settings = format!(
        "tls_cert = {:?}\ntls_key = {:?}\ntls_ca = {:?}\nspread_storage = true\nreplicas = 2\ndata_groups = 4",
        cert.display().to_string(),
        key.display().to_string(),
        ca.display().to_string()
    );
    let cluster = TestCluster::start_with(3, &settings).await;
    let root = Auth::root();
    cluster.nodes[1].sql_ok(&root, "CREATE NAMESPACE app; CREATE SHARED TABLE app.t (id BIGINT PRIMARY KEY)").await;
    for i in 0..6 {
        cluster.nodes[i % 3].sql_ok(&root, &format!("INSERT INTO app.t (id) VALUES ({i})")).await;
    }
    assert_eq!(cluster.same_everywhere(&root, "SELECT count(*) FROM app.t").await, vec![json!([6])]);
    // Storage spread (each user on 2 of the 3 nodes): a session through the node that does
    // not store its user is relayed over mutual TLS too, and sees changes made elsewhere.
    cluster.nodes[0].sql_ok(&root, "CREATE USER TABLE app.u (id BIGINT PRIMARY KEY)").await;
    let bob = cluster.nodes[0].create_user("bob").await;
    cluster.settle().await;
    for node in 0..3 {
        let mut ws = crate::common::WsClient::connect_as(&cluster.nodes[node], "bob", "bob-password").await;
        ws.send_json(json!({"type": "subscribe", "id": "s", "sql": "SELECT id FROM app.u"})).await;
        cluster.nodes[(node + 1) % 3].sql_ok(&bob, &format!("INSERT INTO app.u (id) VALUES ({node})")).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.checked_duration_since(Instant::now()).expect("no change through the session");
            use kalamdb_client_core::protocol::ws::ServerMessage;
            // A change, or the initial load if the write came first.
            match ws.next_frame(left).await {
                Ok(Some(ServerMessage::Change { row, .. })) if row[0] == json!(node) => break,
                Ok(Some(ServerMessage::Batch { rows, .. })) if rows.iter().any(|r| r[0] == json!(node)) => break,
                Ok(_) => {}
                Err(()) => panic!("the session through node {} closed", node + 1),
            }
        }
    }
    cluster.settle().await;
    let mut held = Vec::new();
    for node in &cluster.nodes {
        held.push(table_stats(node, "app.u").await.0);
    }
    assert_eq!(held.iter().filter(|rows| **rows == 3).count(), 2, "bob's rows on two nodes: {held:?}");

    let token = token_of(SECRET.as_bytes());
    let port = cluster.cluster_ports[0];
    let status = |client: reqwest::Client, scheme: &'static str| {
        let token = token.clone();
        async move {
            client
                .post(format!("{scheme}://127.0.0.1:{port}/cluster/v1/status"))
                .header("x-kalamdb-cluster-token", token)
                .header("x-kalamdb-cluster-settings", "data_groups=4 spread_storage=true replicas=2")
                .json(&())
                .timeout(Duration::from_secs(5))
                .send()
                .await
        }
    };
    let builder = || {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
    };
    let identity = |cert: &std::path::Path, key: &std::path::Path| {
        let mut pem = std::fs::read(cert).unwrap();
        pem.extend(std::fs::read(key).unwrap());
        reqwest::Identity::from_pem(&pem).unwrap()
    };
    // A node's own certificate gets an answer (what the other nodes do).
    let ours = status(builder().identity(identity(&cert, &key)).build().unwrap(), "https").await.unwrap();
    assert!(ours.status().is_success(), "{}", ours.status());
    // Plain HTTP, no client certificate, or another CA's certificate: no answer.
    let plain = status(reqwest::Client::new(), "http").await;
    assert!(!plain.as_ref().is_ok_and(|r| r.status().is_success()), "plain HTTP: {plain:?}");
    assert!(status(builder().build().unwrap(), "https").await.is_err(), "a client without a certificate");
    let (_, other_cert, other_key) = crate::common::tls_files(dir.path(), "other");
    let other = builder().identity(identity(&other_cert, &other_key)).build().unwrap();
    assert!(status(other, "https").await.is_err(), "a certificate of another CA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_count_on_every_node_whichever_node_they_reach() {
    let cluster = TestCluster::with_alice("CREATE NAMESPACE app").await;
    let login = async |node: usize, password: &str| {
        cluster.nodes[node]
            .post("/v1/api/auth/login", &Auth::None, &json!({"username": "alice", "password": password}))
            .await
    };
    // A right password clears the failures counted so far, wherever they were counted.
    for node in [0, 1] {
        assert_eq!(login(node, "wrong").await.status, 401);
    }
    assert_eq!(login(2, "alice-password").await.status, 200);
    // Five failures spread over three nodes (none sees more than two) lock the account...
    for (i, node) in [0, 1, 2, 0, 1].into_iter().enumerate() {
        let r = login(node, "wrong").await;
        assert_eq!((r.status.as_u16(), r.code() == "ACCOUNT_LOCKED"), (401, false), "failure {i}: {}", r.body);
    }
    // ...on every node, for the right password too.
    for node in 0..3 {
        let r = login(node, "alice-password").await;
        assert_eq!((r.status.as_u16(), r.code()), (401, "ACCOUNT_LOCKED"), "node {}: {}", node + 1, r.body);
    }
    let locked = cluster
        .same_everywhere(&Auth::root(), "SELECT locked_until IS NOT NULL FROM system.users WHERE username = 'alice'")
        .await;
    assert_eq!(locked, vec![json!([true])]);
}

/// A node's own state (its live subscriptions) must not decide whether it applies a
/// replicated statement: every node applies it, and subscriptions it invalidates end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_changes_apply_on_every_node_whatever_their_subscriptions() {
    use crate::common::WsClient;
    use kalamdb_client_core::protocol::ws::ServerMessage;
    let cluster = TestCluster::with_alice(
        "CREATE NAMESPACE app; CREATE USER TABLE app.t (id BIGINT PRIMARY KEY, a INT, b INT); \
         CREATE USER TABLE app.u (id BIGINT PRIMARY KEY)",
    )
    .await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let mut ws = WsClient::connect_as(&cluster.nodes[follower], "alice", "alice-password").await;
    crate::common::subscribe(&mut ws, "t", "SELECT id, b FROM app.t", json!({})).await;
    crate::common::subscribe(&mut ws, "u", "SELECT id FROM app.u", json!({})).await;
    let root = Auth::root();
    cluster.nodes[leader].sql_ok(&root, "ALTER TABLE app.t DROP COLUMN b").await;
    cluster.nodes[leader].sql_ok(&root, "DROP TABLE app.u").await;
    cluster.settle().await;
    let columns = cluster
        .same_everywhere(&root, "SELECT column_name FROM system.columns WHERE table_name = 't' ORDER BY column_name")
        .await;
    assert_eq!(columns, vec![json!(["_deleted"]), json!(["_updated"]), json!(["a"]), json!(["id"])]);
    let tables =
        cluster.same_everywhere(&root, "SELECT table_name FROM system.tables WHERE namespace = 'app' ORDER BY 1").await;
    assert_eq!(tables, vec![json!(["t"])]);
    // The follower's subscriptions to them ended, saying why.
    let mut ended = BTreeSet::new();
    while ended.len() < 2 {
        match ws.recv().await {
            ServerMessage::SchemaChanged { id, .. } => {
                ended.insert(id);
            }
            ServerMessage::Pong { .. } | ServerMessage::Change { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // Writes after the change apply on every node.
    let alice = Auth::basic("alice", "alice-password");
    cluster.nodes[follower].sql_ok(&alice, "INSERT INTO app.t (id, a) VALUES (1, 1)").await;
    cluster.settle().await;
    assert_eq!(cluster.same_everywhere(&alice, "SELECT id, a FROM app.t").await, vec![json!([1, 1])]);
}

/// A backup taken on any node (of its replica) restores on a single node, which can then
/// grow into a cluster again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_on_a_follower_restores_on_a_single_node() {
    const KEY: &str = "cluster-backup-key-cluster-backup-key-0123";
    let cluster = TestCluster::start_with(3, &format!("\n[storage]\nbackup_key = \"{KEY}\"")).await;
    let root = Auth::root();
    cluster.nodes[0]
        .sql_ok(&root, "CREATE NAMESPACE app; CREATE SHARED TABLE app.prices (sku BIGINT PRIMARY KEY, price INT)")
        .await;
    for node in 0..3 {
        let values: Vec<String> = (0..50).map(|i| format!("({}, {i})", node * 100 + i)).collect();
        cluster.nodes[node]
            .sql_ok(&root, &format!("INSERT INTO app.prices (sku, price) VALUES {}", values.join(", ")))
            .await;
    }
    cluster.settle().await;
    let follower = (cluster.leader().await + 1) % 3;
    // Some rows cold on the follower, the rest hot.
    let flush = cluster.nodes[follower].sql_ok(&root, "FLUSH TABLE app.prices").await;
    let flush_job = flush.rows(0)[0][0].as_str().unwrap().to_string();
    assert_eq!(crate::flush::wait_for_job(&cluster.nodes[follower], &flush_job).await[1], json!("completed"));
    cluster.nodes[1]
        .sql_ok(&root, "UPDATE app.prices SET price = -1 WHERE sku < 10; DELETE FROM app.prices WHERE sku >= 240")
        .await;
    cluster.settle().await;
    let query = "SELECT sku, price, _updated, _deleted FROM app.prices ORDER BY sku";
    let expected = cluster.same_everywhere(&root, query).await;
    let target = tempfile::tempdir().unwrap();
    let path = target.path().join("app-backup");
    let r = cluster.nodes[follower].sql_ok(&root, &format!("BACKUP DATABASE app TO '{}'", path.display())).await;
    let job = r.rows(0)[0][0].as_str().unwrap().to_string();
    assert_eq!(crate::flush::wait_for_job(&cluster.nodes[follower], &job).await[1], json!("completed"));

    let single = TestServer::start_with_env(&[("KALAMDB_BACKUP_KEY", KEY)]).await;
    let r = single.sql_ok(&root, &format!("RESTORE DATABASE app FROM '{}'", path.display())).await;
    let job = r.rows(0)[0][0].as_str().unwrap().to_string();
    let done = crate::flush::wait_for_job(&single, &job).await;
    assert_eq!(done[1], json!("completed"), "{done:?}");
    let restored = single.sql_ok(&root, query).await;
    assert_eq!(restored.rows(0), &expected, "the restored rows are the cluster's, versions included");
    // Its table is on the `local` storage, which each node keeps apart: the cluster itself
    // refuses to restore it, and says what to do.
    let sql = format!("RESTORE DATABASE app2 FROM '{}'", path.display());
    let r = cluster.nodes[follower].sql_err(&root, &sql, 400, "VALIDATION_ERROR").await;
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("'local'") && message.contains("single node"), "{message}");
}

/// A backup of tables on a shared storage restores into the cluster itself, sent to a node
/// that does not lead the metadata group: the files go to the bucket once, every node lists
/// them and answers every user alike (versions and tombstones included), later writes are
/// newer than every restored row, flushes of the restored tables go on, and a second
/// restore under the same name is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_on_a_shared_storage_restores_into_the_cluster_through_any_node() {
    const KEY: &str = "cluster-restore-key-cluster-restore-key-01";
    let Some(moto) = crate::storages::Moto::start().await else { return };
    moto.create_bucket("shared").await;
    let cluster = TestCluster::start_with(3, &format!("\n[storage]\nbackup_key = \"{KEY}\"")).await;
    let root = Auth::root();
    let lake = format!(
        "CREATE STORAGE lake TYPE 's3' BUCKET 'shared' PREFIX 'kalam/' ENDPOINT '{}' \
         ACCESS_KEY_ID 'test-key' SECRET_ACCESS_KEY 'test-secret' ALLOW_HTTP",
        moto.endpoint
    );
    cluster.nodes[0].sql_ok(&root, &lake).await;
    cluster.nodes[1]
        .sql_ok(
            &root,
            "CREATE NAMESPACE app; \
             CREATE USER TABLE app.items (id BIGINT PRIMARY KEY, v TEXT) WITH (storage = 'lake'); \
             CREATE SHARED TABLE app.tags (id BIGINT PRIMARY KEY, name TEXT) WITH (storage = 'lake', access_level = 'public')",
        )
        .await;
    let users = [cluster.nodes[0].create_user("alice").await, cluster.nodes[0].create_user("bob").await];
    cluster.nodes[2].sql_ok(&root, "INSERT INTO app.tags (id, name) VALUES (1, 'one'), (2, 'two')").await;
    for (u, user) in users.iter().enumerate() {
        for node in 0..3 {
            let values: Vec<String> = (0..10).map(|i| format!("({}, 'v{u}')", node * 10 + i)).collect();
            cluster.nodes[node]
                .sql_ok(user, &format!("INSERT INTO app.items (id, v) VALUES {}", values.join(", ")))
                .await;
        }
    }
    // Some rows cold, then changed while hot: the backup holds files and hot versions.
    cluster.settle().await;
    crate::flush::flush_and_wait(&cluster.nodes[0], "FLUSH TABLE app.items").await;
    crate::flush::flush_and_wait(&cluster.nodes[0], "FLUSH TABLE app.tags").await;
    for user in &users {
        cluster.nodes[1]
            .sql_ok(user, "UPDATE app.items SET v = 'changed' WHERE id < 5; DELETE FROM app.items WHERE id = 29")
            .await;
        cluster.nodes[2].sql_ok(user, "INSERT INTO app.items (id, v) VALUES (100, 'hot')").await;
    }
    let items = |ns: &str| format!("SELECT id, v, _updated, _deleted FROM {ns}.items ORDER BY id");
    let tags = |ns: &str| format!("SELECT id, name, _updated FROM {ns}.tags ORDER BY id");
    let mut expected = Vec::new();
    for user in &users {
        expected.push(cluster.same_everywhere(user, &items("app")).await);
    }
    assert_eq!(expected[0].len(), 31, "30 rows (id 29 now a tombstone) and a hot one: {:?}", expected[0]);
    let expected_tags = cluster.same_everywhere(&root, &tags("app")).await;

    let target = tempfile::tempdir().unwrap();
    let path = target.path().join("lake-backup");
    let r = cluster.nodes[1].sql_ok(&root, &format!("BACKUP DATABASE app TO '{}'", path.display())).await;
    let job = r.rows(0)[0][0].as_str().unwrap().to_string();
    assert_eq!(crate::flush::wait_for_job(&cluster.nodes[1], &job).await[1], json!("completed"));

    // As if it came from a server whose clock ran a day ahead: later writes must still be
    // stamped after everything it holds.
    let ahead = chrono::Utc::now().timestamp_micros() + 86_400_000_000;
    crate::hostile::rewrite_manifest(&path, KEY, |m| m["watermark"] = json!(ahead));
    // What an earlier restore under that name whose last entry got no answer left (it may
    // still commit, listing it): this restore neither removes nor replaces it.
    let earlier = "kalam/copy/tags/shared/batch-7-00000000000000bb.parquet";
    moto.put("shared", earlier, b"copied by a restore whose entry got no answer").await;
    // Restored under another name, through a node that does not lead the metadata group.
    let restoring = (cluster.leader().await + 1) % 3;
    let sql = format!("RESTORE DATABASE copy FROM '{}'", path.display());
    let r = cluster.nodes[restoring].sql_ok(&root, &sql).await;
    let job = r.rows(0)[0][0].as_str().unwrap().to_string();
    let done = crate::flush::wait_for_job(&cluster.nodes[restoring], &job).await;
    assert_eq!(done[1], json!("completed"), "{done:?}");
    let copied: Vec<String> = moto.keys("shared").await.into_iter().filter(|k| k.starts_with("kalam/copy/")).collect();
    assert!(copied.iter().any(|k| k.starts_with("kalam/copy/items/")), "{copied:?}");
    assert!(copied.iter().any(|k| k.starts_with("kalam/copy/tags/shared/")), "{copied:?}");
    assert!(copied.iter().any(|k| k == earlier), "{copied:?}");
    // Each copy has a name of its own, none the backup's.
    let manifest: Value = serde_json::from_slice(&std::fs::read(path.join("backup.json")).unwrap()).unwrap();
    let backed_up: Vec<&str> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    assert!(backed_up.len() >= 2, "{manifest}");
    for key in copied.iter().filter(|k| k.ends_with(".parquet") && *k != earlier) {
        let name = key.rsplit('/').next().unwrap();
        let tag = name.strip_suffix(".parquet").and_then(|n| n.rsplit_once('-')).map(|(_, tag)| tag);
        assert!(tag.is_some_and(|t| t.len() == 16 && t.bytes().all(|b| b.is_ascii_hexdigit())), "{key}");
        assert!(!backed_up.contains(&name), "{key} has a name from the backup: {backed_up:?}");
    }
    for (user, expected) in users.iter().zip(&expected) {
        assert_eq!(&cluster.same_everywhere(user, &items("copy")).await, expected, "restored rows on every node");
    }
    assert_eq!(cluster.same_everywhere(&root, &tags("copy")).await, expected_tags);
    for node in &cluster.nodes {
        let (hot, _, files) = table_stats(node, "copy.items").await;
        assert_eq!(hot, 0, "restored rows are cold");
        assert!(files >= 2, "every node lists the restored files: {files}");
    }

    // A write after the restore is newer than every restored row, on every node alike; the
    // restored tables flush like any other.
    cluster.nodes[restoring].sql_ok(&users[0], "INSERT INTO copy.items (id, v) VALUES (500, 'after')").await;
    let newest = "SELECT id, _deleted FROM copy.items \
                  WHERE _updated >= (SELECT _updated FROM copy.items WHERE id = 500)";
    assert_eq!(cluster.same_everywhere(&users[0], newest).await, vec![json!([500, false])]);
    let after_watermark = format!("SELECT CAST(_updated AS BIGINT) > {ahead} FROM copy.items WHERE id = 500");
    assert_eq!(cluster.same_everywhere(&users[0], &after_watermark).await, vec![json!([true])]);
    let flushed = crate::flush::flush_and_wait(&cluster.nodes[0], "FLUSH TABLE copy.items").await;
    assert_eq!(flushed[1], json!("completed"), "{flushed:?}");
    let after = cluster.same_everywhere(&users[0], &items("copy")).await;
    assert_eq!(after.len(), expected[0].len() + 1);
    assert_eq!(&after[..after.len() - 1], &expected[0][..], "the restored rows unchanged by the flush");

    // The same name again: refused on any node, and nothing changes.
    for node in &cluster.nodes {
        node.sql_err(&root, &sql, 409, "ALREADY_EXISTS").await;
    }
    // The original namespace is untouched.
    assert_eq!(cluster.same_everywhere(&users[1], &items("app")).await, expected[1]);
}

/// Root is made by every node on its first start, alike: one record everywhere (it differed
/// in its creation time, which also made a node started later refuse root tokens issued
/// before by another as older than root's password), and a root token works on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_reads_the_same_on_every_node_and_its_tokens_work_on_every_node() {
    let cluster = TestCluster::start(3).await;
    let root = Auth::root();
    let rows = cluster.same_everywhere(&root, "SELECT user_id, username, role, created_at FROM system.users").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let token = cluster.nodes[0].login("root", crate::common::ROOT_PASSWORD).await;
    for node in &cluster.nodes {
        node.sql_ok(&Auth::Bearer(token.clone()), "SELECT count(*) FROM system.users").await;
    }
}

/// `SHOW STATS FOR TABLE` on one node: (hot rows, cold row versions, cold files).
/// The index of the node that runs job `job` (its id names the node: `flush-node2-7`).
fn node_of_job(job: &str) -> usize {
    let node = job.split('-').find_map(|part| part.strip_prefix("node")?.parse::<usize>().ok());
    node.unwrap_or_else(|| panic!("no node in the job id {job}")) - 1
}

async fn table_stats(node: &TestServer, table: &str) -> (i64, i64, i64) {
    let r = node.sql_ok(&Auth::root(), &format!("SHOW STATS FOR TABLE {table}")).await;
    let s = &r.rows(0)[0];
    (s[0].as_i64().unwrap(), s[3].as_i64().unwrap(), s[4].as_i64().unwrap())
}

/// The Parquet files of `app.items` in the bucket.
async fn shared_files(moto: &crate::storages::Moto) -> Vec<String> {
    moto.keys("shared").await.into_iter().filter(|k| k.ends_with(".parquet")).collect()
}

/// A table on a shared storage (S3, here moto) is flushed once, by the leader, through the
/// log: one file per flush in the bucket, which every node lists while it drops the hot rows
/// the file holds; every node answers alike, also after the leader is killed, a new one
/// flushes, and the killed node comes back. A storage the nodes cannot share is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushes_to_a_shared_storage_are_written_once_and_listed_by_every_node() {
    let Some(moto) = crate::storages::Moto::start().await else { return };
    moto.create_bucket("shared").await;
    let mut cluster = TestCluster::start(3).await;
    let root = Auth::root();
    let r = cluster.nodes[1]
        .sql_err(&root, "CREATE STORAGE mine TYPE 'filesystem' PATH '/tmp/kalamdb-not-shared'", 400, "VALIDATION_ERROR")
        .await;
    assert!(r.body["error"]["message"].as_str().unwrap().contains("SHARED"), "{}", r.body);
    cluster.nodes[1]
        .sql_ok(
            &root,
            &format!(
                "CREATE STORAGE lake TYPE 's3' BUCKET 'shared' PREFIX 'kalam/' ENDPOINT '{}' \
                 ACCESS_KEY_ID 'test-key' SECRET_ACCESS_KEY 'test-secret' ALLOW_HTTP",
                moto.endpoint
            ),
        )
        .await;
    cluster.nodes[2]
        .sql_ok(
            &root,
            "CREATE NAMESPACE app; \
             CREATE SHARED TABLE app.items (id BIGINT PRIMARY KEY, v INT) WITH (storage = 'lake')",
        )
        .await;
    for node in 0..3 {
        let values: Vec<String> = (0..50).map(|i| format!("({}, {i})", node * 100 + i)).collect();
        cluster.nodes[node].sql_ok(&root, &format!("INSERT INTO app.items (id, v) VALUES {}", values.join(", "))).await;
    }
    cluster.nodes[0].sql_ok(&root, "UPDATE app.items SET v = -1 WHERE id < 10").await;
    let query = "SELECT id, v, _updated, _deleted FROM app.items ORDER BY id";
    let before = cluster.same_everywhere(&root, query).await;

    // FLUSH on any node is carried out by the leader of the table's data group (once the
    // leadership has spread, so that it stays put).
    until_data_groups_led(&cluster, |g| g % 3 + 1).await;
    let mut jobs = Vec::new();
    for node in &cluster.nodes {
        let r = node.sql_ok(&root, "FLUSH TABLE app.items").await;
        jobs.push(r.rows(0)[0][0].as_str().unwrap().to_string());
    }
    let leader = node_of_job(&jobs[0]);
    let follower = (leader + 1) % 3;
    for job in &jobs {
        assert_eq!(node_of_job(job), leader, "every FLUSH ran on the leader: {jobs:?}");
        let done = crate::flush::wait_for_job(&cluster.nodes[follower], job).await;
        assert_eq!(done[1], json!("completed"), "{done:?}");
    }
    cluster.settle().await;
    for node in &cluster.nodes {
        assert_eq!(table_stats(node, "app.items").await, (0, 150, 1), "every node lists the file, no row stays hot");
    }
    let files = shared_files(&moto).await;
    assert_eq!(files.len(), 1, "one file written, once: {files:?}");
    assert!(files[0].starts_with("kalam/app/items/shared/batch-1-"), "{files:?}");
    assert!(!moto.keys("shared").await.iter().any(|k| k.ends_with("manifest.json")), "manifests stay in the nodes");
    assert_eq!(cluster.same_everywhere(&root, query).await, before, "the same rows and versions, now cold");

    // The leader dies; the new one flushes changes of cold and new rows.
    cluster.nodes[leader].kill9();
    let next = follower;
    cluster.nodes[next]
        .sql_ok(&root, "UPDATE app.items SET v = 7 WHERE id >= 200; DELETE FROM app.items WHERE id = 1")
        .await;
    cluster.nodes[next].sql_ok(&root, "INSERT INTO app.items (id, v) VALUES (1000, 1), (1001, 2)").await;
    let r = cluster.nodes[next].sql_ok(&root, "FLUSH TABLE app.items").await;
    let job = r.rows(0)[0][0].as_str().unwrap().to_string();
    assert_eq!(crate::flush::wait_for_job(&cluster.nodes[next], &job).await[1], json!("completed"));
    cluster.settle().await;
    let changed = cluster.same_everywhere(&root, query).await;
    assert_eq!(changed.len(), 152, "151 rows and the tombstone of id 1: {changed:?}");
    assert_eq!(shared_files(&moto).await.len(), 2);
    // Point reads and duplicate checks find the newest cold version (through each node's
    // key index, extended by the flush it applied).
    for (i, node) in cluster.nodes.iter().enumerate().filter(|(i, _)| *i != leader) {
        let r = node.sql_ok(&root, "SELECT v FROM app.items WHERE id = 205").await;
        assert_eq!(r.rows(0), &vec![json!([7])], "node {}", i + 1);
        node.sql_err(&root, "INSERT INTO app.items (id, v) VALUES (205, 0)", 409, "DUPLICATE_KEY").await;
    }

    // The killed node comes back, applies the flush it missed and lists both files.
    cluster.nodes[leader].start_again();
    cluster.leader().await;
    assert_eq!(cluster.same_everywhere(&root, query).await, changed);
    for node in &cluster.nodes {
        assert_eq!(table_stats(node, "app.items").await, (0, 150 + 53, 2), "both files listed everywhere");
    }

    cluster.nodes[follower].sql_ok(&root, "DROP TABLE app.items").await;
    cluster.settle().await;
    assert!(shared_files(&moto).await.is_empty(), "DROP TABLE removes the shared files");
}

/// Compactions of a table on a shared storage run on the leader, through the log: expired
/// tombstones leave every node's files at once, the replaced objects leave the bucket once
/// the grace period has passed, and an object no manifest can come to list is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compactions_of_a_shared_storage_go_through_the_log() {
    let Some(moto) = crate::storages::Moto::start().await else { return };
    moto.create_bucket("shared").await;
    // An "hour" of tombstone retention lasts a second; cleanups every second. Each flush
    // waits a second once it holds its partition: long enough for every node's flush
    // scheduler to see the partition due while the leader flushes it.
    let settings = "\n[storage]\ncleanup_interval_secs = 1\nreplaced_file_grace_secs = 2";
    let ports = free_ports(3);
    let slow_flushes: Vec<(usize, &str)> = (0..3).map(|i| (i, "flush:locked=sleep(1000)")).collect();
    let cluster =
        TestCluster::start_at(ports.clone(), ports, settings, &slow_flushes, &[("KALAMDB_HOUR_MS", "1000")]).await;
    let root = Auth::root();
    // The table's group must keep its leader: only it runs flushes and cleanups.
    until_data_groups_led(&cluster, |g| g % 3 + 1).await;
    cluster.nodes[0]
        .sql_ok(
            &root,
            &format!(
                "CREATE STORAGE lake TYPE 's3' BUCKET 'shared' PREFIX 'kalam/' ENDPOINT '{}' \
                 ACCESS_KEY_ID 'test-key' SECRET_ACCESS_KEY 'test-secret' ALLOW_HTTP; \
                 CREATE NAMESPACE app; \
                 CREATE SHARED TABLE app.items (id BIGINT PRIMARY KEY, v INT) \
                 WITH (storage = 'lake', deleted_retention_hours = 1, flush_policy = 'rows:50')",
                moto.endpoint
            ),
        )
        .await;
    let values: Vec<String> = (0..100).map(|i| format!("({i}, {i})")).collect();
    cluster.nodes[1].sql_ok(&root, &format!("INSERT INTO app.items (id, v) VALUES {}", values.join(", "))).await;
    cluster.nodes[2].sql_ok(&root, "DELETE FROM app.items WHERE id < 30").await;
    // A file of a batch the partition has passed, which no manifest can list.
    moto.put("shared", "kalam/app/items/shared/batch-0-00000000000000aa.parquet", b"left by a deposed leader").await;
    let r = cluster.nodes[0].sql_ok(&root, "FLUSH TABLE app.items").await;
    let job = r.rows(0)[0][0].as_str().unwrap().to_string();
    let leader = node_of_job(&job);
    assert_eq!(crate::flush::wait_for_job(&cluster.nodes[leader], &job).await[1], json!("completed"));

    // Once the tombstones expire, the leader's cleanup compacts: 70 live rows in one file,
    // on every node.
    let deadline = Instant::now() + Duration::from_secs(60);
    for node in &cluster.nodes {
        loop {
            let stats = table_stats(node, "app.items").await;
            if stats == (0, 70, 1) {
                break;
            }
            assert!(Instant::now() < deadline, "no compaction reached {}: {stats:?}", node.base);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let rows = cluster.same_everywhere(&root, "SELECT id, _deleted FROM app.items ORDER BY id").await;
    let expected: Vec<Value> = (30..100).map(|i| json!([i, false])).collect();
    assert_eq!(rows, expected, "the tombstones are purged everywhere, the live rows kept");

    // The replaced file and the stray one leave the bucket; the compacted file stays.
    loop {
        let files = shared_files(&moto).await;
        if files.len() == 1 && files[0].starts_with("kalam/app/items/shared/batch-2-") {
            break;
        }
        assert!(Instant::now() < deadline, "the bucket still holds {files:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(cluster.same_everywhere(&root, "SELECT count(*) FROM app.items").await, vec![json!([70])]);
    // Policy flushes and cleanups ran on the leader only: the followers made no jobs.
    let nodes = cluster.nodes[0].sql_ok(&root, "SELECT DISTINCT node FROM system.jobs").await;
    assert_eq!(nodes.rows(0), &vec![json!([format!("node-{}", leader + 1)])]);
}

/// Live queries and catch-up stay exact while the leader's policy flushes move rows into a
/// shared storage under them: a subscriber on a follower, moved to the other follower midway
/// (it resumes from its cursor, partly from files the leader wrote), ends with exactly the
/// table's rows, without a reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_stay_exact_while_flushes_to_a_shared_storage_run() {
    use crate::common::WsClient;
    let Some(moto) = crate::storages::Moto::start().await else { return };
    moto.create_bucket("shared").await;
    let cluster = TestCluster::start(3).await;
    let root = Auth::root();
    // Counted below: flushes that a move of their group's leadership does not interrupt.
    until_data_groups_led(&cluster, |g| g % 3 + 1).await;
    cluster.nodes[0]
        .sql_ok(
            &root,
            &format!(
                "CREATE STORAGE lake TYPE 's3' BUCKET 'shared' ENDPOINT '{}' \
                 ACCESS_KEY_ID 'test-key' SECRET_ACCESS_KEY 'test-secret' ALLOW_HTTP; \
                 CREATE NAMESPACE app; \
                 CREATE USER TABLE app.items (id BIGINT PRIMARY KEY, v TEXT) \
                 WITH (storage = 'lake', flush_policy = 'rows:150')",
                moto.endpoint
            ),
        )
        .await;
    cluster.nodes[1].create_user("alice").await;
    cluster.settle().await;

    let bases: Vec<String> = cluster.nodes.iter().map(|n| n.base.clone()).collect();
    let writers = Writers::start(bases, ("alice", "alice-password"), mixed_item_writes);
    let leader = cluster.leader().await;
    let (first, second) = ((leader + 1) % 3, (leader + 2) % 3);
    let mut replica = Replica::default();
    let sql = "SELECT id, v FROM app.items";
    let mut ws = WsClient::connect_as(&cluster.nodes[first], "alice", "alice-password").await;
    ws.send_json(json!({"type": "subscribe", "id": "s", "sql": sql})).await;
    assert!(replica.follow(&mut ws, Duration::from_secs(3)).await, "the subscription ended");
    drop(ws);
    let moved_at = replica.cursor;
    assert!(moved_at > 0, "changes arrived before the move");
    // Away for a while: the rows written meanwhile are caught up, some from the files.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut ws = WsClient::connect_as(&cluster.nodes[second], "alice", "alice-password").await;
    ws.send_json(json!({"type": "subscribe", "id": "s", "sql": sql, "since": moved_at})).await;
    assert!(replica.follow(&mut ws, Duration::from_secs(2)).await);
    // The writers go on (following all the while) until the leader's policy flushes have
    // run at least twice: how long that takes depends on the machine's load.
    let flushes = "SELECT count(*) FROM system.jobs WHERE job_type = 'flush' AND status = 'completed' AND rows > 0";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = cluster.nodes[0].sql_ok(&root, flushes).await.rows(0)[0][0].as_i64().unwrap();
        if done >= 2 {
            break;
        }
        let jobs = cluster.nodes[0].sql_ok(&root, "SELECT node, job_type, status, rows, error FROM system.jobs").await;
        assert!(Instant::now() < deadline, "the leader's policy flushes ran meanwhile: {done} {:?}", jobs.rows(0));
        assert!(replica.follow(&mut ws, Duration::from_millis(500)).await);
    }
    writers.stop().await;
    cluster.settle().await;
    assert!(replica.follow(&mut ws, Duration::from_secs(1)).await);
    assert_eq!(replica.resets, 0, "the move cost the subscriber a full reload");
    let alice = Auth::basic("alice", "alice-password");
    let rows = cluster.nodes[second].sql_ok(&alice, "SELECT id, v FROM app.items ORDER BY id").await;
    let expected: std::collections::BTreeMap<i64, Value> =
        rows.rows(0).iter().map(|r| (r[0].as_i64().unwrap(), r[1].clone())).collect();
    assert!(!expected.is_empty());
    assert_eq!(replica.rows.len(), expected.len());
    assert!(replica.rows == expected, "the subscriber's copy differs from the node's table");
}
