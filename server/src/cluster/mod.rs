//! Cluster mode: the nodes replicate every write through one Raft group on openraft
//! (docs/cluster.md says what is built and what comes next).
//!
//! - [`state_machine`]: applies committed entries ([`Command`]) to this node's database, in
//!   log order, through the same commit path as the single node.
//! - [`snapshot`]: snapshots of the state machine, so that the log can be purged and a node
//!   far behind installs one instead of replaying the log.
//! - [`seeding`]: a cluster created from a single node's data starts from a snapshot of it.
//! - [`network`]: openraft's RPCs to the other nodes, over HTTP on the cluster port.
//! - [`service`]: the cluster port's endpoints (Raft RPCs and forwarded writes), open only
//!   to nodes holding the cluster secret.
//! - [`Cluster`]: the running node, which the SQL layer and the WebSocket mutations reach
//!   through [`Replication`]: the leader proposes, followers forward to the leader.

mod network;
mod problems;
mod seeding;
mod service;
mod snapshot;
mod state_machine;
mod stream_relay;

use crate::api::ws::mutations;
use crate::auth::{LoginLedger, LoginRecord};
use crate::config::ClusterConfig;
use crate::database::Database;
use crate::error::{KalamError, Result};
use crate::replication::{
    Command, Failure, Forwarded, ForwardedMutation, ForwardedStatement, Member, MembershipChange, Outcome, Replication,
    StreamEvents,
};
use crate::sql::executor;
use kalamdb_client_core::protocol::QueryResult;
use kalamdb_client_core::protocol::ws::MutateResult;
use kalamdb_raft::{Durability, GroupId, RaftLogs};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Raft};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

pub(crate) use network::ClusterToken;
pub(crate) use snapshot::install_pending as install_pending_snapshot;

openraft::declare_raft_types!(
    /// The replicated log of the cluster: entries are [`Command`]s, applying one gives an
    /// [`Applied`].
    pub(crate) TypeConfig:
        D = Command,
        R = Applied,
        NodeId = u64,
        Node = BasicNode,
        SnapshotData = tokio::fs::File,
);

/// What applying an entry answers: the proposer's statement or mutation outcome.
pub(crate) type Applied = std::result::Result<Outcome, Failure>;

/// The only group of this stage: it replicates the catalog and every table.
const GROUP: GroupId = GroupId(0);

/// How long a read may wait for this node to apply the index its client names.
const READ_AFTER_WAIT: Duration = Duration::from_secs(5);

/// A running cluster node.
pub(crate) struct Cluster {
    node_id: u64,
    raft: Raft<TypeConfig>,
    db: Weak<Database>,
    client: reqwest::Client,
    token: ClusterToken,
    /// openraft's view of this node: who leads, what is applied. Read from one place, so
    /// that "am I the leader" never disagrees with "who is the leader".
    metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, BasicNode>>,
    config: ClusterConfig,
    streams: stream_relay::StreamRelay,
    /// Where this node serves clients, once bound: a restart into a snapshot keeps it.
    client_address: Arc<OnceLock<SocketAddr>>,
    problems: problems::Problems,
    /// `https` with cluster TLS, else `http`: how other nodes are reached.
    scheme: &'static str,
}

impl Cluster {
    /// Starts this node: opens its Raft log, listens on the cluster port, creates the
    /// cluster if asked to, and hands the database its [`Replication`].
    pub(crate) async fn start(db: &Arc<Database>) -> Result<Arc<Cluster>> {
        let config = db.config.cluster.clone();
        let node_id = config.node_id.ok_or_else(|| KalamError::internal("cluster mode without a node id"))?;
        let listen = config.listen.ok_or_else(|| KalamError::internal("cluster mode without a cluster address"))?;
        let secret = config.secret.clone().ok_or_else(|| KalamError::internal("cluster mode without a secret"))?;
        let token = ClusterToken::new(secret.as_bytes());
        db.committer.replicated();

        // The log is as durable as the node's commits (`storage.sync_writes`).
        let durability = if db.config.storage.sync_writes { Durability::Synced } else { Durability::Buffered };
        let logs = RaftLogs::open(&db.config.server.data_dir.join("raft"), durability)
            .map_err(|e| KalamError::Source(Arc::new(e)))?;
        let log_store = logs.group::<TypeConfig>(GROUP);
        let client_address = Arc::new(OnceLock::new());
        let problems = problems::Problems::default();
        let machine = state_machine::StateMachine::open(db.clone(), client_address.clone(), problems.clone())?;
        let outside_data =
            !machine.has_applied() && (!db.catalog.tables(None).is_empty() || db.catalog.users().len() > 1);
        if outside_data && !config.bootstrap {
            // Its data is not in the log: other nodes would never get it, and replaying the
            // log over it would diverge.
            return Err(KalamError::InvalidRequest(format!(
                "{} holds tables or users written outside cluster mode; only the node that creates \
                 the cluster (--cluster-bootstrap) may start from a single node's data, others \
                 start from an empty data directory",
                db.config.server.data_dir.display()
            )));
        }
        if outside_data {
            seeding::mark_pending(db)?;
        }
        let raft_config = openraft::Config {
            cluster_name: "kalamdb".into(),
            heartbeat_interval: config.heartbeat_ms,
            election_timeout_min: config.election_timeout_min_ms,
            election_timeout_max: config.election_timeout_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_every_entries),
            max_in_snapshot_log_to_keep: config.snapshot_keep_entries,
            // Chunks are JSON in a request body, bounded by the cluster port's body limit.
            snapshot_max_chunk_size: 1024 * 1024,
            install_snapshot_timeout: config.write_timeout_ms,
            max_payload_entries: 16,
            ..Default::default()
        }
        .validate()
        .map_err(|e| KalamError::InvalidRequest(format!("cluster settings: {e}")))?;
        let tls = match (&config.tls_cert, &config.tls_key, &config.tls_ca) {
            (Some(cert), Some(key), Some(ca)) => Some(crate::tls::MutualTls::load(cert, key, ca)?),
            _ => None,
        };
        let mut client = reqwest::Client::builder().connect_timeout(Duration::from_secs(2)).tcp_nodelay(true);
        if let Some(tls) = &tls {
            client = client.use_preconfigured_tls(tls.client.clone());
        }
        let client = client.build().map_err(KalamError::internal)?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let tls_acceptor = tls.map(|tls| tls.acceptor);
        let network = network::Network::new(client.clone(), token.clone(), node_id, problems.clone(), scheme);
        let raft = Raft::new(node_id, Arc::new(raft_config), network, log_store, machine)
            .await
            .map_err(|e| KalamError::internal(format!("cannot start Raft: {e}")))?;

        let metrics = raft.metrics();
        let cluster = Arc::new(Cluster {
            node_id,
            raft,
            db: Arc::downgrade(db),
            client,
            token,
            metrics,
            config: config.clone(),
            streams: stream_relay::StreamRelay::default(),
            client_address,
            problems,
            scheme,
        });
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| KalamError::internal(format!("cannot listen on the cluster address {listen}: {e}")))?;
        let app = service::router(cluster.clone(), config.max_entry_bytes);
        // Few connections: the other nodes', pooled.
        let limits = crate::api::serve::ConnectionLimits {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(db.config.server.header_read_timeout_secs),
        };
        tokio::spawn(crate::api::serve::serve(listener, app, limits, tls_acceptor, std::future::pending()));
        tracing::info!(node = node_id, %listen, "cluster node listening for other nodes");

        // Only the node that creates the cluster seeds it (the first snapshot, which other
        // nodes install, carries the marker too).
        let seeding = match config.bootstrap {
            true => seeding::is_pending(db)?,
            false => {
                seeding::clear(db)?;
                false
            }
        };
        if config.bootstrap {
            let initialised = cluster.raft.is_initialized().await.map_err(KalamError::internal)?;
            if !initialised {
                let mut members: BTreeMap<u64, BasicNode> =
                    config.peer_addresses()?.into_iter().map(|(id, addr)| (id, BasicNode { addr })).collect();
                if seeding {
                    // Alone first: the others join once a snapshot holds the data (below).
                    members.retain(|id, _| *id == node_id);
                }
                cluster.raft.initialize(members).await.map_err(|e| KalamError::internal(format!("bootstrap: {e}")))?;
                tracing::info!(node = node_id, "created the cluster");
            }
        }
        if seeding {
            seeding::seed(&cluster, db).await?;
            let others: Vec<(u64, String)> =
                config.peer_addresses()?.into_iter().filter(|(id, _)| *id != node_id).collect();
            tokio::spawn(seeding::add_peers(Arc::downgrade(&cluster), others));
        }
        db.replication
            .set(cluster.clone())
            .map_err(|_| KalamError::internal("the database already belongs to a cluster"))?;
        db.auth.set_ledger(cluster.clone());
        Ok(cluster)
    }

    /// How long a write waits for a majority (`cluster.write_timeout_ms`).
    fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.config.write_timeout_ms)
    }

    /// Records the address this node serves clients on (kept by a restart into a snapshot).
    pub(crate) fn serving_clients_on(&self, address: SocketAddr) {
        let _ = self.client_address.set(address);
    }

    /// Stops Raft (its tasks hold the database).
    pub(crate) async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("stopping Raft: {e}");
        }
    }

    fn database(&self) -> Result<Arc<Database>> {
        self.db.upgrade().ok_or_else(|| KalamError::Unavailable("the node is shutting down".into()))
    }

    /// The last log index this node applied.
    fn applied(&self) -> u64 {
        self.raft.metrics().borrow().last_applied.map_or(0, |l| l.index)
    }

    /// Waits until this node has applied `index`, for at most `timeout`.
    async fn applied_within(&self, index: u64, timeout: Duration) -> bool {
        let wait = self.raft.wait(Some(timeout));
        wait.applied_index_at_least(Some(index), "a client's read after its write").await.is_ok()
    }

    /// The current leader's cluster address, waiting (until `deadline`) for one to exist.
    async fn leader(&self, deadline: tokio::time::Instant) -> Result<(u64, String)> {
        let mut metrics = self.raft.metrics();
        loop {
            {
                let m = metrics.borrow_and_update();
                if let Some(leader) = m.current_leader
                    && let Some(node) = m.membership_config.membership().get_node(&leader)
                {
                    return Ok((leader, node.addr.clone()));
                }
            }
            if tokio::time::timeout_at(deadline, metrics.changed()).await.is_err() {
                return Err(KalamError::Unavailable(
                    "no cluster leader: a majority of the nodes cannot be reached; retry".into(),
                ));
            }
        }
    }

    /// Sends a write to the leader and relays its answer once this node has applied it;
    /// `None` if this node became the leader meanwhile (the caller runs the write here).
    /// Retries only where the leader did nothing (no leader yet, a node that is no longer
    /// the leader, a refused connection); a request lost in flight is answered UNAVAILABLE
    /// with a warning that it may have been applied. The leader answers within
    /// `answer_within`, or is taken for lost after 5 s more.
    async fn forward<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        answer_within: Duration,
    ) -> Result<Option<T>> {
        // As long as a write waits for a majority on the leader: a leader must exist first.
        let patience = self.write_timeout();
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let (leader, addr) = self.leader(deadline).await?;
            if leader == self.node_id {
                return Ok(None);
            }
            let sent = self
                .client
                .post(format!("{}://{addr}{path}", self.scheme))
                .header(network::TOKEN_HEADER, self.token.header())
                .header(network::NODE_HEADER, self.node_id)
                .timeout(answer_within + Duration::from_secs(5))
                .json(body)
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                Err(e) if e.is_connect() => {
                    tracing::debug!(leader, "leader unreachable, waiting for another: {e}");
                    if tokio::time::Instant::now() >= deadline {
                        return Err(KalamError::Unavailable("the cluster leader cannot be reached; retry".into()));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(leader, "a forwarded write got no answer: {e}");
                    return Err(KalamError::Unavailable(
                        "the leader did not answer; the write may or may not have been applied".into(),
                    ));
                }
            };
            if response.status() == reqwest::StatusCode::MISDIRECTED_REQUEST {
                // Not the leader any more, and it did nothing: ask again.
                if tokio::time::Instant::now() >= deadline {
                    return Err(KalamError::Unavailable("the cluster has no stable leader; retry".into()));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            if !response.status().is_success() {
                // Not an answer of a node (they answer 200 or 421): something between the
                // nodes failed, maybe after the leader had the write.
                tracing::warn!(leader, status = %response.status(), "a forwarded write was answered by something else");
                return Err(KalamError::Unavailable(format!(
                    "the way to the leader failed ({}); the write may or may not have been applied",
                    response.status()
                )));
            }
            let answer: Forwarded<T> = response.json().await.map_err(|e| {
                KalamError::Unavailable(format!(
                    "the leader's answer was cut off ({e}); the write may or may not have been applied"
                ))
            })?;
            if !self.applied_within(answer.applied, patience).await {
                tracing::warn!(index = answer.applied, "a forwarded write is answered before this node applied it");
            }
            return answer.result.map(Some).map_err(KalamError::from);
        }
    }

    /// On the leader: the log index a linearizable read must wait for, once a majority has
    /// confirmed this node still leads.
    async fn read_index_here(&self) -> Result<u64> {
        let patience = self.write_timeout();
        match tokio::time::timeout(patience, self.raft.get_read_log_id()).await {
            Ok(Ok((read, _applied))) => Ok(read.map_or(0, |l| l.index)),
            Ok(Err(e)) => Err(KalamError::Unavailable(format!("this node cannot confirm it leads: {e}; retry"))),
            Err(_) => {
                Err(KalamError::Unavailable("no majority confirmed the leader in time (a node cut off?); retry".into()))
            }
        }
    }

    /// On the leader: runs a write another node forwarded and answers with its outcome and
    /// the index this node has applied; `None` if this node is not the leader.
    async fn run_forwarded<T, F>(&self, run: impl FnOnce(Arc<Database>) -> F) -> Option<Forwarded<T>>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        if !self.is_leader() {
            return None;
        }
        let result = match self.database() {
            Ok(db) => run(db).await.map_err(|e| Failure::from(&e)),
            Err(e) => Err(Failure::from(&e)),
        };
        Some(Forwarded { result, applied: self.applied() })
    }

    /// Takes STREAM events the leader relayed: into this node's buffers and to its
    /// subscribers (an ephemeral stream's only if it has some here).
    fn take_stream_events(&self, batch: Vec<StreamEvents>) {
        let Ok(db) = self.database() else { return };
        for relayed in batch {
            let Some(table) = db.catalog.table_by_id(relayed.table) else { continue };
            if table.schema_version != relayed.schema_version {
                continue;
            }
            let ephemeral = table.options.stream.is_some_and(|s| s.ephemeral);
            if ephemeral && !db.live.has_subscribers(table.id, relayed.partition) {
                continue;
            }
            db.committer.publish_stream(&table, relayed.partition, &relayed.events, |events| {
                db.streams.append(&table, relayed.partition, events)
            });
        }
    }
}

impl Cluster {
    /// On the leader: proposes a login's outcome and waits until it is applied here.
    async fn record_here(&self, record: LoginRecord) -> Result<()> {
        self.propose(Command::Login(record)).await.map(|_| ())
    }
}

/// Logins count failures cluster-wide: each outcome goes through the log (forwarded to the
/// leader from another node), and every node applies it to the account's counters.
#[async_trait::async_trait]
impl LoginLedger for Cluster {
    async fn record(&self, record: LoginRecord) -> Result<()> {
        match self.forward::<_, ()>(service::FORWARD_LOGIN, &record, self.write_timeout()).await? {
            Some(()) => Ok(()),
            None => self.record_here(record).await,
        }
    }
}

#[async_trait::async_trait]
impl Replication for Cluster {
    fn is_leader(&self) -> bool {
        self.metrics.borrow().current_leader == Some(self.node_id)
    }

    async fn propose(&self, command: Command) -> Result<Outcome> {
        let size = serde_json::to_vec(&command).map_err(KalamError::internal)?.len();
        if size > self.config.max_entry_bytes {
            return Err(KalamError::TooLarge(format!(
                "this write is {size} bytes encoded, more than a cluster log entry carries \
                 (cluster.max_entry_bytes = {}); split it into smaller statements",
                self.config.max_entry_bytes
            )));
        }
        let timeout = self.write_timeout();
        match tokio::time::timeout(timeout, self.raft.client_write(command)).await {
            Err(_) => Err(KalamError::Unavailable(format!(
                "no majority of the cluster acknowledged the write within {} ms; it may or may not be applied",
                self.config.write_timeout_ms
            ))),
            Ok(Ok(response)) => response.data.map_err(KalamError::from),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                Err(KalamError::Unavailable("leadership moved to another node; nothing was applied, retry".into()))
            }
            Ok(Err(e)) => Err(KalamError::Unavailable(format!("the cluster cannot take writes: {e}"))),
        }
    }

    async fn forward_statement(&self, statement: ForwardedStatement) -> Result<QueryResult> {
        let answer_within = match statement.membership {
            true => LEARNER_CATCH_UP,
            false => Duration::ZERO,
        } + self.write_timeout();
        match self.forward(service::FORWARD_STATEMENT, &statement, answer_within).await? {
            Some(result) => Ok(result),
            None => executor::execute_forwarded(&self.database()?, statement).await,
        }
    }

    async fn forward_mutation(&self, mutation: ForwardedMutation) -> Result<MutateResult> {
        match self.forward(service::FORWARD_MUTATION, &mutation, self.write_timeout()).await? {
            Some(result) => Ok(result),
            None => Ok(mutations::apply_here(&self.database()?, &mutation.principal.into(), mutation.mutate).await),
        }
    }

    fn health(&self) -> serde_json::Value {
        serde_json::to_value(self.node_health()).unwrap_or_default()
    }

    fn applied_index(&self) -> u64 {
        self.applied()
    }

    async fn read_barrier(&self) -> Result<()> {
        let index = match self.is_leader() {
            true => None,
            false => self.forward::<(), u64>(service::READ_INDEX, &(), self.write_timeout()).await?,
        };
        let index = match index {
            Some(index) => index,
            // The leader (or this node became it while asking).
            None => self.read_index_here().await?,
        };
        match self.applied_within(index, self.write_timeout()).await {
            true => Ok(()),
            false => {
                Err(KalamError::Unavailable(format!("this node has not applied log index {index} in time; retry")))
            }
        }
    }

    fn relay_stream(&self, events: StreamEvents) {
        self.streams.send(&self.others(), events, &self.client, &self.token, self.node_id, self.scheme);
    }

    async fn wait_applied(&self, index: u64) -> bool {
        self.applied_within(index, READ_AFTER_WAIT).await
    }

    fn members(&self) -> Vec<Member> {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let leading = m.current_leader == Some(self.node_id);
        let last = m.last_log_index;
        let committed = majority_index(&m);
        membership
            .nodes()
            .map(|(id, node)| {
                let this_node = *id == self.node_id;
                let matched = match (&m.replication, this_node) {
                    (_, true) => last,
                    (Some(r), false) if leading => r.get(id).and_then(|l| l.map(|l| l.index)),
                    _ => None,
                };
                Member {
                    node_id: *id,
                    address: node.addr.clone(),
                    voter: voters.contains(id),
                    leader: m.current_leader == Some(*id),
                    this_node,
                    term: m.current_term,
                    log_index: matched,
                    applied_index: if this_node { m.last_applied.map(|l| l.index) } else { None },
                    lag: match (leading, last, matched) {
                        (true, Some(last), Some(matched)) => Some(last.saturating_sub(matched)),
                        (true, Some(last), None) => Some(last),
                        _ => None,
                    },
                    snapshot_index: if this_node { m.snapshot.map(|l| l.index) } else { None },
                    purged_index: if this_node { m.purged.map(|l| l.index) } else { None },
                    committed_index: if this_node { committed } else { None },
                    problem: match this_node {
                        true => self.problems.snapshot_error().map(|e| format!("the last snapshot failed: {e}")),
                        false if self.problems.peer_stopped(*id) => Some("its Raft has stopped (see its log)".into()),
                        false => None,
                    },
                }
            })
            .collect()
    }

    async fn jobs_elsewhere(&self) -> Vec<(u64, Vec<crate::jobs::Job>)> {
        let asked = self.others().into_iter().map(|(id, address)| async move {
            let jobs = self.ask_peer::<(), Vec<crate::jobs::Job>>(&address, service::JOBS, &()).await;
            jobs.map(|jobs| (id, jobs))
        });
        futures::future::join_all(asked).await.into_iter().flatten().collect()
    }

    async fn kill_job_elsewhere(&self, job_id: &str) -> Result<bool> {
        for (id, address) in self.others() {
            let job = job_id.to_string();
            match self.ask_peer::<String, service::KillAnswer>(&address, service::KILL_JOB, &job).await {
                Some(service::KillAnswer::Cancelling) => return Ok(true),
                Some(service::KillAnswer::Refused(why)) => return Err(KalamError::Validation(why)),
                Some(service::KillAnswer::Unknown) => {}
                None => tracing::warn!(node = id, "KILL JOB: node {id} did not answer"),
            }
        }
        Ok(false)
    }

    async fn change_members(&self, change: MembershipChange) -> Result<String> {
        if seeding::is_pending(&*self.database()?)? {
            return Err(KalamError::Unavailable(
                "the cluster is still taking the snapshot of its first node's data; retry".into(),
            ));
        }
        let unavailable =
            |e: &dyn std::fmt::Display| KalamError::Unavailable(format!("the membership change failed: {e}"));
        let voters: BTreeSet<u64> = self.raft.metrics().borrow().membership_config.membership().voter_ids().collect();
        match change {
            MembershipChange::Add { id, address } => {
                if voters.contains(&id) {
                    return Err(KalamError::AlreadyExists(format!("node {id} is already a member")));
                }
                self.raft
                    .add_learner(id, BasicNode { addr: address.clone() }, false)
                    .await
                    .map_err(|e| unavailable(&e))?;
                // It votes (and counts towards a majority) only once it holds the data: it
                // has applied as far as the log goes, less a few entries.
                // (openraft's own blocking add gives up waiting after half a second, and
                // counts entries the learner has stored, not applied.)
                let deadline = tokio::time::Instant::now() + LEARNER_CATCH_UP;
                loop {
                    let last = self.metrics.borrow().last_log_index.unwrap_or(0);
                    let learner = self.peer_health(&address).await;
                    if learner.as_ref().is_some_and(|h| h.stopped) || self.problems.peer_stopped(id) {
                        // Shown in system.cluster at once, before a Raft RPC answers so too.
                        self.problems.peer_answered(id, true);
                        return Err(KalamError::Unavailable(format!(
                            "node {id} was added as a learner, but its Raft has stopped; see that node's \
                             log, restart it once fixed, then run ALTER CLUSTER ADD NODE again"
                        )));
                    }
                    if learner.and_then(|h| h.last_applied).is_some_and(|applied| applied + LEARNER_LAG >= last) {
                        break;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(KalamError::Unavailable(format!(
                            "node {id} was added as a learner but has not caught up with the log within {} s; \
                             run ALTER CLUSTER ADD NODE again to make it a voter once it has",
                            LEARNER_CATCH_UP.as_secs()
                        )));
                    }
                    tokio::time::sleep(LEARNER_POLL).await;
                }
                let mut next = voters;
                next.insert(id);
                self.change_membership_within(next).await?;
                Ok(format!("Node {id} ({address}) added to the cluster"))
            }
            MembershipChange::Remove { id } => {
                if !voters.contains(&id) {
                    return Err(KalamError::Validation(format!("node {id} is not a member")));
                }
                if voters.len() == 1 {
                    return Err(KalamError::Validation("the last node of a cluster cannot be removed".into()));
                }
                let next: BTreeSet<u64> = voters.into_iter().filter(|n| *n != id).collect();
                self.change_membership_within(next).await?;
                Ok(format!("Node {id} removed from the cluster"))
            }
        }
    }
}

/// How long `ALTER CLUSTER ADD NODE` waits for the new node to catch up (a whole snapshot,
/// perhaps) before it makes it a voter.
const LEARNER_CATCH_UP: Duration = Duration::from_secs(120);
/// How often that wait asks the new node how far it has applied.
const LEARNER_POLL: Duration = Duration::from_millis(500);
/// A learner this many entries behind the leader's log counts as caught up.
const LEARNER_LAG: u64 = 16;
/// How long a question to another node's cluster port (its health, its jobs) may take.
const PEER_ANSWER: Duration = Duration::from_secs(2);

/// On the leader: the highest log index a majority of the voters hold (the leader itself
/// included), which is how far the log is committed; `None` on other nodes, which do not
/// know it.
fn majority_index(m: &openraft::RaftMetrics<u64, BasicNode>) -> Option<u64> {
    let replication = m.replication.as_ref()?;
    let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
    let mut held: Vec<u64> = voters
        .iter()
        .map(|id| match *id == m.id {
            true => m.last_log_index.unwrap_or(0),
            false => replication.get(id).cloned().flatten().map_or(0, |l| l.index),
        })
        .collect();
    held.sort_unstable_by(|a, b| b.cmp(a));
    held.get(voters.len() / 2).copied()
}

/// What `/v1/api/cluster/health` reports about this node (and the cluster port's status
/// request, which `ALTER CLUSTER ADD NODE` asks the new node).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct NodeHealth {
    pub node_id: u64,
    pub state: String,
    pub leader: Option<u64>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub last_applied: Option<u64>,
    /// The last log index in this node's latest snapshot.
    pub snapshot_index: Option<u64>,
    /// The log is purged up to this index (covered by the snapshot).
    pub purged_index: Option<u64>,
    /// On the leader: how far the log is committed (held by a majority of the voters).
    pub committed_index: Option<u64>,
    /// Why the last attempt to take a snapshot failed, if it did (the log is then kept).
    pub snapshot_error: Option<String>,
    /// This node's Raft has stopped after an error it cannot go on from (its log says
    /// which); it must be restarted once that is fixed.
    pub stopped: bool,
    pub members: Vec<u64>,
}

impl Cluster {
    /// Node `address`'s own health, asked on its cluster port; `None` if it does not answer.
    async fn peer_health(&self, address: &str) -> Option<NodeHealth> {
        self.ask_peer(address, service::STATUS, &()).await
    }

    /// Posts `body` to `path` on the cluster port at `address`; its answer, or `None` if it
    /// does not give one within [`PEER_ANSWER`].
    async fn ask_peer<B: Serialize, T: DeserializeOwned>(&self, address: &str, path: &str, body: &B) -> Option<T> {
        let sent = self
            .client
            .post(format!("{}://{address}{path}", self.scheme))
            .header(network::TOKEN_HEADER, self.token.header())
            .header(network::NODE_HEADER, self.node_id)
            .timeout(PEER_ANSWER)
            .json(body)
            .send()
            .await
            .ok()?;
        sent.status().is_success().then_some(())?;
        sent.json().await.ok()
    }

    /// The other members (voters and learners) and their cluster addresses.
    fn others(&self) -> Vec<(u64, String)> {
        let m = self.metrics.borrow();
        m.membership_config
            .membership()
            .nodes()
            .filter(|(id, _)| **id != self.node_id)
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect()
    }

    /// Makes `voters` the voters, waiting as long as a write does for the change to commit.
    async fn change_membership_within(&self, voters: BTreeSet<u64>) -> Result<()> {
        match tokio::time::timeout(self.write_timeout(), self.raft.change_membership(voters, false)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(KalamError::Unavailable(format!("the membership change failed: {e}"))),
            Err(_) => Err(KalamError::Unavailable(format!(
                "the membership change was proposed but no majority of the old and the new members \
                 acknowledged it within {} ms; it completes once they do (see system.cluster)",
                self.config.write_timeout_ms
            ))),
        }
    }

    /// This node's view of the cluster.
    pub(crate) fn node_health(&self) -> NodeHealth {
        let m = self.raft.metrics().borrow().clone();
        NodeHealth {
            node_id: self.node_id,
            state: format!("{:?}", m.state),
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index,
            last_applied: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            committed_index: majority_index(&m),
            snapshot_error: self.problems.snapshot_error(),
            stopped: m.running_state.is_err(),
            members: m.membership_config.membership().voter_ids().collect(),
        }
    }
}
