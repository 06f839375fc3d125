//! Cluster mode: the nodes replicate every write through Raft groups on openraft
//! (docs/cluster.md): one metadata group (the catalog, users, storages, logins) and
//! `cluster.data_groups` data groups, across which USER partitions are placed by user and
//! SHARED tables by table ([`crate::ids::Placement`]). Every node is a member of every group;
//! `cluster.replicas` of them vote in each data group ([`voters`]), and each group's
//! leadership is handed to a preferred voter ([`leadership`]).
//!
//! - [`state_machine`]: applies a group's committed entries ([`Command`]) to this node's
//!   database, in log order, through the same commit path as the single node.
//! - [`snapshot`]: snapshots of the state machine, so that the log can be purged and a node
//!   far behind installs one instead of replaying the log.
//! - [`seeding`]: a cluster created from a single node's data starts from a snapshot of it.
//! - [`network`]: openraft's RPCs to the other nodes, over HTTP on the cluster port.
//! - [`service`]: the cluster port's endpoints (Raft RPCs and forwarded writes), open only
//!   to nodes holding the cluster secret.
//! - [`Cluster`]: the running node, which the SQL layer and the WebSocket mutations reach
//!   through [`Replication`]: a group's leader proposes, other nodes forward to it.

mod leadership;
mod leaving;
mod network;
mod problems;
mod seeding;
mod service;
mod snapshot;
mod spread;
mod state_machine;
mod stream_relay;
mod voters;

use crate::auth::{LoginLedger, LoginRecord};
use crate::backup::gather::ChunkRequest;
use crate::config::ClusterConfig;
use crate::database::Database;
use crate::error::{KalamError, Result};
use crate::ids::{Partition, Placement, TableId, UserId};
use crate::live::listing::{LiveKill, LiveQueryInfo};
use crate::replication::{
    AppliedPosition, Command, Failure, Forwarded, ForwardedMutation, ForwardedStatement, GroupId, KilledElsewhere,
    METADATA, Member, MembershipChange, Outcome, Proposal, Replication, StreamEvents,
};
use kalamdb_client_core::protocol::QueryResult;
use kalamdb_client_core::protocol::ws::MutateResult;
use kalamdb_raft::{Durability, RaftLogs};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, Raft};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

pub(crate) use leaving::free_left_groups;
pub(crate) use network::ClusterToken;
pub(crate) use snapshot::install_pending as install_pending_snapshot;

openraft::declare_raft_types!(
    /// The replicated log of a group: entries are [`Proposal`]s, applying one gives an
    /// [`Applied`].
    pub(crate) TypeConfig:
        D = Proposal,
        R = Applied,
        NodeId = u64,
        Node = BasicNode,
        SnapshotData = tokio::fs::File,
);

/// What applying an entry answers: the proposer's statement or mutation outcome.
pub(crate) type Applied = std::result::Result<Outcome, Failure>;

/// The key recording how many data groups this node's cluster was created with.
const DATA_GROUPS_KEY: &[u8] = b"raft/data_groups";

/// How long a read may wait for this node to apply the index its client names.
const READ_AFTER_WAIT: Duration = Duration::from_secs(5);

/// One Raft group on this node.
struct Group {
    id: GroupId,
    raft: Raft<TypeConfig>,
    /// openraft's view of the group: who leads, what is applied. Read from one place, so
    /// that "am I the leader" never disagrees with "who is the leader".
    metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, BasicNode>>,
    /// Held shared by each proposal here, exclusively by a handover of the group's
    /// leadership to another node ([`leadership`]), so that none is appended meanwhile.
    handover: tokio::sync::RwLock<()>,
    /// Held by a change of the group's members made here, one at a time.
    membership: tokio::sync::Mutex<()>,
}

/// A running cluster node.
pub(crate) struct Cluster {
    /// This node itself, for the work that outlives a call (a handover's timers).
    me: Weak<Cluster>,
    node_id: u64,
    /// Every group, by [`GroupId`]: the metadata group first, then the data groups.
    groups: Vec<Group>,
    placement: Placement,
    db: Weak<Database>,
    client: reqwest::Client,
    token: ClusterToken,
    config: ClusterConfig,
    streams: stream_relay::StreamRelay,
    /// Where this node serves clients, once bound: a restart into a snapshot keeps it.
    client_address: Arc<OnceLock<SocketAddr>>,
    problems: problems::Problems,
    /// `https` with cluster TLS, else `http`: how other nodes are reached.
    scheme: &'static str,
    /// Groups whose elections this node holds for another node's handover.
    holds: leadership::ElectionHolds,
    /// What this node knows of the groups it does not store (spread storage).
    spread: spread::Spread,
    /// With cluster TLS: how this node connects to the others outside `client` (sessions).
    tls_client: Option<Arc<rustls::ClientConfig>>,
    /// What every request to another node carries, and every request from one must match.
    settings: network::ClusterSettings,
    /// When a request with other settings was last logged, per sender: once a minute.
    settings_refused: parking_lot::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// Checks that this node's data was created with the placement it is started with (as many
/// data groups, groups stored apart or not: where partitions live depends on both), and
/// records it on a first start. The record is the number of groups (2 bytes), then `1` if
/// each node stores only its groups (absent in records written before that setting).
fn check_placement(db: &Database, placement: Placement) -> Result<()> {
    let spread = placement.shared_apart();
    let describe =
        |groups: u16, spread: bool| format!("cluster.data_groups = {groups}, cluster.spread_storage = {spread}");
    match db.store.get(crate::storage::CF_CATALOG, DATA_GROUPS_KEY)? {
        Some(stored) => {
            let (groups, stored_spread) = match stored.as_slice() {
                [a, b] => (u16::from_le_bytes([*a, *b]), false),
                [a, b, flag] => (u16::from_le_bytes([*a, *b]), *flag == 1),
                _ => return Err(KalamError::Corrupt("the number of data groups".into())),
            };
            match (groups, stored_spread) == (placement.groups(), spread) {
                true => Ok(()),
                false => Err(KalamError::InvalidRequest(format!(
                    "this node's cluster was created with {}, which cannot change: start it so (not {})",
                    describe(groups, stored_spread),
                    describe(placement.groups(), spread)
                ))),
            }
        }
        None => {
            let mut record = placement.groups().to_le_bytes().to_vec();
            if spread {
                record.push(1);
            }
            let mut batch = rocksdb::WriteBatch::default();
            batch.put_cf(&db.store.cf(crate::storage::CF_CATALOG), DATA_GROUPS_KEY, record);
            db.store.write(batch)
        }
    }
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

        let placement = db.committer.placement();
        check_placement(db, placement)?;

        // The logs are as durable as the node's commits (`storage.sync_writes`).
        let durability = if db.config.storage.sync_writes { Durability::Synced } else { Durability::Buffered };
        let logs = RaftLogs::open(&db.config.server.data_dir.join("raft"), durability)
            .map_err(|e| KalamError::Source(Arc::new(e)))?;
        let client_address = Arc::new(OnceLock::new());
        let problems = problems::Problems::default();
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
        let raft_config = Arc::new(raft_config);
        let tls = match (&config.tls_cert, &config.tls_key, &config.tls_ca) {
            (Some(cert), Some(key), Some(ca)) => Some(crate::tls::MutualTls::load(cert, key, ca)?),
            _ => None,
        };
        let settings = network::ClusterSettings::new(placement.groups(), placement.shared_apart(), config.replicas);
        let mut sent_with = reqwest::header::HeaderMap::new();
        sent_with.insert(network::SETTINGS_HEADER, settings.as_str().parse().map_err(KalamError::internal)?);
        let mut client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .default_headers(sent_with);
        if let Some(tls) = &tls {
            client = client.use_preconfigured_tls(tls.client.clone());
        }
        let client = client.build().map_err(KalamError::internal)?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let tls_client = tls.as_ref().map(|tls| Arc::new(tls.client.clone()));
        let tls_acceptor = tls.map(|tls| tls.acceptor);

        let (catalog_progress, catalog_applied) = tokio::sync::watch::channel(0u64);
        let catalog_progress = Arc::new(catalog_progress);
        let restart = snapshot::InstallRestart::default();
        let mut groups = Vec::with_capacity(usize::from(placement.groups()) + 1);
        for id in std::iter::once(METADATA).chain(placement.all().map(crate::replication::raft_group)) {
            let progress = match id {
                METADATA => state_machine::CatalogProgress::Publishes(catalog_progress.clone()),
                _ => state_machine::CatalogProgress::Follows(catalog_applied.clone()),
            };
            let machine = state_machine::StateMachine::open(
                id,
                db.clone(),
                client_address.clone(),
                problems.clone(),
                progress,
                restart.clone(),
            )?;
            if id == METADATA {
                let outside_data =
                    !machine.has_applied() && (!db.catalog.tables(None).is_empty() || db.catalog.users().len() > 1);
                if outside_data && !config.bootstrap {
                    // Its data is not in the log: other nodes would never get it, and
                    // replaying the log over it would diverge.
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
            }
            let network = network::Network::new(id, client.clone(), token.clone(), node_id, problems.clone(), scheme);
            let raft = Raft::new(node_id, raft_config.clone(), network, logs.group::<TypeConfig>(id), machine)
                .await
                .map_err(|e| KalamError::internal(format!("cannot start Raft group {}: {e}", id.0)))?;
            let metrics = raft.metrics();
            groups.push(Group {
                id,
                raft,
                metrics,
                handover: tokio::sync::RwLock::new(()),
                membership: tokio::sync::Mutex::new(()),
            });
        }

        let group_count = groups.len();
        let cluster = Arc::new_cyclic(|me| Cluster {
            me: me.clone(),
            node_id,
            groups,
            placement,
            db: Arc::downgrade(db),
            client,
            token,
            config: config.clone(),
            streams: stream_relay::StreamRelay::default(),
            client_address,
            problems,
            scheme,
            holds: leadership::ElectionHolds::default(),
            spread: spread::Spread::new(group_count),
            tls_client,
            settings,
            settings_refused: Default::default(),
        });
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| KalamError::internal(format!("cannot listen on the cluster address {listen}: {e}")))?;
        let app = service::router(cluster.clone(), config.max_entry_bytes);
        // Few connections: the other nodes', pooled; with spread storage, also one per
        // client session another node relays here (each counted on that node's client port).
        let relayed = match placement.shared_apart() {
            true => db.config.server.max_connections.saturating_mul(config.peers.len()),
            false => 0,
        };
        let limits = crate::api::serve::ConnectionLimits {
            max_connections: 1024 + relayed,
            header_read_timeout: Duration::from_secs(db.config.server.header_read_timeout_secs),
        };
        tokio::spawn(crate::api::serve::serve(listener, app, limits, tls_acceptor, std::future::pending()));
        tracing::info!(node = node_id, %listen, data_groups = placement.groups(), "cluster node listening for other nodes");

        // Only the node that creates the cluster seeds it (the first snapshots, which other
        // nodes install, carry the marker too).
        let seeding = match config.bootstrap {
            true => seeding::is_pending(db)?,
            false => {
                seeding::clear(db)?;
                false
            }
        };
        if config.bootstrap {
            let mut members: BTreeMap<u64, BasicNode> =
                config.peer_addresses()?.into_iter().map(|(id, addr)| (id, BasicNode { addr })).collect();
            if seeding {
                // Alone first: the others join once snapshots hold the data (below).
                members.retain(|id, _| *id == node_id);
            }
            let ids: BTreeSet<u64> = members.keys().copied().collect();
            for group in &cluster.groups {
                let initialised = group.raft.is_initialized().await.map_err(KalamError::internal)?;
                // A group this node left and freed (spread storage) exists on other nodes.
                let left = db.store.get(crate::storage::CF_CATALOG, &leaving::left_key(group.id))?.is_some();
                if !initialised && !left {
                    // With spread storage, each group only on the nodes that will store it
                    // (and this one, which openraft requires; it leaves the groups it is not
                    // placed in once their other voters lead them).
                    let mut placed = members.clone();
                    placed.retain(|id, _| *id == node_id || cluster.stores_on(group.id, *id, &ids));
                    group
                        .raft
                        .initialize(placed)
                        .await
                        .map_err(|e| KalamError::internal(format!("bootstrap of group {}: {e}", group.id.0)))?;
                }
            }
            tracing::info!(node = node_id, "created the cluster");
        }
        if seeding {
            seeding::seed(&cluster, db).await?;
            let others: Vec<(u64, String)> =
                config.peer_addresses()?.into_iter().filter(|(id, _)| *id != node_id).collect();
            tokio::spawn(seeding::add_peers(Arc::downgrade(&cluster), others));
        }
        tokio::spawn(leadership::balance(Arc::downgrade(&cluster)));
        db.replication
            .set(cluster.clone())
            .map_err(|_| KalamError::internal("the database already belongs to a cluster"))?;
        db.auth.set_ledger(cluster.clone());
        Ok(cluster)
    }

    /// How long a write waits for a majority (`cluster.write_timeout_ms`).
    pub(super) fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.config.write_timeout_ms)
    }

    /// Records the address this node serves clients on (kept by a restart into a snapshot).
    pub(crate) fn serving_clients_on(&self, address: SocketAddr) {
        let _ = self.client_address.set(address);
    }

    /// Stops Raft (its tasks hold the database).
    pub(crate) async fn shutdown(&self) {
        for group in &self.groups {
            if let Err(e) = group.raft.shutdown().await {
                tracing::warn!(group = group.id.0, "stopping Raft: {e}");
            }
        }
    }

    fn database(&self) -> Result<Arc<Database>> {
        self.db.upgrade().ok_or_else(|| KalamError::Unavailable("the node is shutting down".into()))
    }

    /// Whether this node has group `group` (a number another node sent).
    pub(super) fn has_group(&self, group: GroupId) -> bool {
        usize::try_from(group.0).is_ok_and(|g| g < self.groups.len())
    }

    fn group(&self, group: GroupId) -> &Group {
        &self.groups[group.0 as usize]
    }

    /// Group `group`'s Raft (which must exist: see [`Cluster::has_group`]).
    pub(super) fn raft(&self, group: GroupId) -> &Raft<TypeConfig> {
        &self.group(group).raft
    }

    /// The last log index of `group` this node applied.
    fn applied(&self, group: GroupId) -> u64 {
        self.group(group).metrics.borrow().last_applied.map_or(0, |l| l.index)
    }

    /// Waits until this node has applied `index` of `group`, for at most `timeout`.
    pub(super) async fn applied_within(&self, group: GroupId, index: u64, timeout: Duration) -> bool {
        let wait = self.raft(group).wait(Some(timeout));
        wait.applied_index_at_least(Some(index), "a client's read after its write").await.is_ok()
    }

    /// The current leader of `group` and its cluster address, waiting (until `deadline`)
    /// for one to exist.
    async fn leader(&self, group: GroupId, deadline: tokio::time::Instant) -> Result<(u64, String)> {
        let mut metrics = self.group(group).metrics.clone();
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

    /// Sends a write to the leader of `group` and relays its answer once this node has
    /// applied it; `None` if this node became that leader meanwhile (the caller runs the
    /// write here). Retries only where the leader did nothing (no leader yet, a node that is
    /// no longer the leader, a refused connection); a request lost in flight is answered
    /// UNAVAILABLE with a warning that it may have been applied. The leader answers within
    /// `answer_within`, or is taken for lost after 5 s more.
    async fn forward<B: Serialize, T: DeserializeOwned>(
        &self,
        group: GroupId,
        path: &str,
        body: &B,
        answer_within: Duration,
    ) -> Result<Option<T>> {
        self.forward_with(group, path, body, answer_within, Lost::Report).await
    }

    /// [`Cluster::forward`], which sends a request lost in flight again if `lost` says so.
    async fn forward_with<B: Serialize, T: DeserializeOwned>(
        &self,
        group: GroupId,
        path: &str,
        body: &B,
        answer_within: Duration,
        lost: Lost,
    ) -> Result<Option<T>> {
        // As long as a write waits for a majority on the leader: a leader must exist first.
        let patience = self.write_timeout();
        let mut deadline = tokio::time::Instant::now() + patience;
        let resend_until = deadline + answer_within;
        // A request lost in flight, sent again if it may be and time is left.
        let resend = |deadline: &mut tokio::time::Instant, leader: u64, why: &dyn std::fmt::Display| {
            let now = tokio::time::Instant::now();
            if lost != Lost::Resend || now >= resend_until {
                return false;
            }
            tracing::info!(leader, group = group.0, "a forwarded request got no answer, sending it again: {why}");
            *deadline = now + patience;
            true
        };
        // A group this node does not store: its own view of the leader may be old (see
        // `spread`), so it tries the nodes that may know, in turn.
        let elsewhere = !self.stores_group(group);
        let mut turn = 0usize;
        loop {
            if elsewhere && self.leads(group) {
                return Ok(None);
            }
            let candidate = if elsewhere { self.candidate(group, turn) } else { None };
            let (leader, addr) = match candidate {
                Some(candidate) => candidate,
                None => self.leader(group, deadline).await?,
            };
            if leader == self.node_id {
                return Ok(None);
            }
            let sent = self
                .peer_request(&addr, path)
                .header(network::GROUP_HEADER, group.0)
                .timeout(answer_within + Duration::from_secs(5))
                .json(body)
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                Err(e) if e.is_connect() => {
                    tracing::debug!(leader, group = group.0, "leader unreachable, waiting for another: {e}");
                    if elsewhere {
                        self.missed_leader(group, &mut turn, leader, None);
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(KalamError::Unavailable("the cluster leader cannot be reached; retry".into()));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(e) if resend(&mut deadline, leader, &e) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(leader, group = group.0, "a forwarded write got no answer: {e}");
                    return Err(KalamError::Unavailable(
                        "the leader did not answer; the write may or may not have been applied".into(),
                    ));
                }
            };
            if response.status() == reqwest::StatusCode::MISDIRECTED_REQUEST {
                // Not the leader any more, and it did nothing: ask again (the leader it
                // named, for a group this node does not follow).
                if elsewhere {
                    let named = response.json::<Option<spread::LeaderHint>>().await.ok().flatten();
                    self.missed_leader(group, &mut turn, leader, named);
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(KalamError::Unavailable("the cluster has no stable leader; retry".into()));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            if !response.status().is_success() {
                // Not an answer of a node (they answer 200 or 421): something between the
                // nodes failed, maybe after the leader had the write.
                if resend(&mut deadline, leader, &response.status()) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                tracing::warn!(leader, status = %response.status(), "a forwarded write was answered by something else");
                return Err(KalamError::Unavailable(format!(
                    "the way to the leader failed ({}); the write may or may not have been applied",
                    response.status()
                )));
            }
            let answer: Forwarded<T> = match response.json().await {
                Ok(answer) => answer,
                Err(e) if resend(&mut deadline, leader, &e) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Err(e) => {
                    return Err(KalamError::Unavailable(format!(
                        "the leader's answer was cut off ({e}); the write may or may not have been applied"
                    )));
                }
            };
            if elsewhere {
                // Nothing to apply here: later statements sent to the group carry the index.
                self.spread.note_acked(group, answer.applied);
                self.found_leader(group, leader, addr);
            } else if !self.applied_within(group, answer.applied, patience).await {
                tracing::warn!(
                    group = group.0,
                    index = answer.applied,
                    "a forwarded write is answered before this node applied it"
                );
            }
            return answer.result.map(Some).map_err(KalamError::from);
        }
    }

    /// Waits until this node has applied every entry of `group` committed before the call,
    /// as the group's leader confirms with a majority (openraft's read index).
    async fn barrier(&self, group: GroupId) -> Result<()> {
        let index = self.read_index(group).await?;
        match self.applied_within(group, index, self.write_timeout()).await {
            true => Ok(()),
            false => Err(KalamError::Unavailable(format!(
                "this node has not applied index {index} of group {} in time; retry",
                group.0
            ))),
        }
    }

    /// The read index of `group`: this node's if it leads, else the leader's (or this
    /// node's, if it came to lead while asking), each try bounded by what is left of the
    /// write timeout.
    async fn read_index(&self, group: GroupId) -> Result<u64> {
        let deadline = tokio::time::Instant::now() + self.write_timeout();
        loop {
            let attempt = async {
                match self.forward::<(), u64>(group, service::READ_INDEX, &(), self.write_timeout()).await? {
                    Some(index) => Ok(index),
                    None => self.read_index_here(group).await,
                }
            };
            match tokio::time::timeout_at(deadline, attempt).await.unwrap_or_else(|_| Err(unconfirmed_leader())) {
                Ok(index) => return Ok(index),
                // A leader that cannot confirm it leads may just have lost an election it has
                // not heard of (a partition healing): asking again, the new leader, is safe
                // for a read, for as long as a write would wait.
                Err(e) if tokio::time::Instant::now() + Duration::from_millis(50) < deadline => {
                    tracing::debug!(group = group.0, "read index not confirmed, asking again: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// On a group's leader: the log index a linearizable read must wait for, once a majority
    /// has confirmed this node still leads.
    pub(super) async fn read_index_here(&self, group: GroupId) -> Result<u64> {
        let patience = self.write_timeout();
        match tokio::time::timeout(patience, self.raft(group).get_read_log_id()).await {
            Ok(Ok((read, _applied))) => Ok(read.map_or(0, |l| l.index)),
            Ok(Err(e)) => Err(KalamError::Unavailable(format!("this node cannot confirm it leads: {e}; retry"))),
            Err(_) => Err(unconfirmed_leader()),
        }
    }

    /// On a group's leader: runs a write another node forwarded and answers with its
    /// outcome and the index of the group this node has applied; `None` if this node does
    /// not lead the group.
    pub(super) async fn run_forwarded<T, F>(
        &self,
        group: GroupId,
        run: impl FnOnce(Arc<Database>) -> F,
    ) -> Option<Forwarded<T>>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        if !self.leads(group) {
            tracing::debug!(group = group.0, leader = ?self.leader_of(group), "not the leader of a forwarded write's group");
            return None;
        }
        let result = match self.database() {
            Ok(db) => match run(db).await {
                // Leadership moved before the write reached the log: the sender asks the
                // new leader, as if this node had not led to begin with. (A write that turned
                // out to be another group's is answered with the error: asking again would
                // find the same.)
                Err(KalamError::NotLeader(g)) if g == group.0 => {
                    tracing::debug!(group = group.0, leader = ?self.leader_of(group), "a forwarded write found leadership moved");
                    return None;
                }
                result => result.map_err(|e| Failure::from(&e)),
            },
            Err(e) => Err(Failure::from(&e)),
        };
        Some(Forwarded { result, applied: self.applied(group) })
    }

    /// Takes STREAM events a group's leader relayed: into this node's buffers and to its
    /// subscribers (an ephemeral stream's only if it has some here).
    pub(super) fn take_stream_events(&self, batch: Vec<StreamEvents>) {
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

    /// On the metadata group's leader: proposes a login's outcome and waits until it is
    /// applied here.
    pub(super) async fn record_here(&self, record: LoginRecord) -> Result<()> {
        self.propose(Command::Login(record)).await.map(|_| ())
    }

    /// The leader of `group` takes one step of a membership change on it.
    pub(super) async fn change_group_members(&self, group: GroupId, step: MemberStep) -> Result<()> {
        if let MemberStep::Voters { members, keep } = step {
            return self.reconcile_voters(group, &members, &keep, LEARNER_CATCH_UP).await;
        }
        let unavailable = |e: &dyn std::fmt::Display| {
            KalamError::Unavailable(format!("the membership change of group {} failed: {e}", group.0))
        };
        let this = self.group(group);
        let _one_change_at_a_time = this.membership.lock().await;
        let voters: BTreeSet<u64> = this.metrics.borrow().membership_config.membership().voter_ids().collect();
        if !voters.contains(&self.node_id) {
            // A leader its last change demoted steps down: openraft must not be asked for
            // another change meanwhile (it panics); the next leader takes the step.
            return Err(KalamError::NotLeader(group.0));
        }
        match step {
            MemberStep::Learner { id, address } => {
                if !voters.contains(&id) {
                    match this.raft.add_learner(id, BasicNode { addr: address }, false).await {
                        Ok(_) => {}
                        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                            return Err(KalamError::NotLeader(group.0));
                        }
                        Err(e) => return Err(unavailable(&e)),
                    }
                }
                Ok(())
            }
            MemberStep::Voter { id, address } => {
                if voters.contains(&id) {
                    return Ok(());
                }
                // It votes (and counts towards a majority) only once it holds the data: it
                // has applied as far as the log goes, less a few entries.
                // (openraft's own blocking add gives up waiting after half a second, and
                // counts entries the learner has stored, not applied.)
                let deadline = tokio::time::Instant::now() + LEARNER_CATCH_UP;
                let target = self.catch_up_target(group);
                while !self.caught_up(group, id, &address, target).await? {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(KalamError::Unavailable(format!(
                            "node {id} was added as a learner but has not caught up with the log of group {} \
                             within {} s; run ALTER CLUSTER ADD NODE again to make it a voter once it has",
                            group.0,
                            LEARNER_CATCH_UP.as_secs()
                        )));
                    }
                    tokio::time::sleep(LEARNER_POLL).await;
                }
                let mut next = voters;
                next.insert(id);
                self.change_membership_within(group, ChangeMembers::ReplaceAllVoters(next), false).await
            }
            MemberStep::Demote { id } => {
                if !voters.contains(&id) {
                    return Ok(());
                }
                let next: BTreeSet<u64> = voters.into_iter().filter(|n| *n != id).collect();
                self.change_membership_within(group, ChangeMembers::ReplaceAllVoters(next), true).await
            }
            MemberStep::Remove { id } => {
                let member = this.metrics.borrow().membership_config.membership().get_node(&id).is_some();
                if voters.contains(&id) {
                    let next: BTreeSet<u64> = voters.into_iter().filter(|n| *n != id).collect();
                    self.change_membership_within(group, ChangeMembers::ReplaceAllVoters(next), false).await
                } else if member {
                    self.change_membership_within(group, ChangeMembers::RemoveNodes([id].into()), false).await
                } else {
                    Ok(())
                }
            }
            MemberStep::Voters { .. } => Ok(()),
        }
    }
}

/// One step of a membership change, taken on one group by its leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum MemberStep {
    /// Replicate to the node, which does not vote yet.
    Learner {
        id: u64,
        address: String,
    },
    /// Once the node has caught up with the group's log, make it a voter.
    Voter {
        id: u64,
        address: String,
    },
    /// The node stops voting and stays a learner (the metadata group, first when a node
    /// is removed: every node then places data groups without it, while it still applies
    /// the catalog the data groups' entries need).
    Demote {
        id: u64,
    },
    Remove {
        id: u64,
    },
    /// A data group: make its voters those the cluster's `members` place there (each once
    /// caught up), and remove the group's nodes not in `keep`
    /// ([`Cluster::reconcile_voters`]).
    Voters {
        members: BTreeSet<u64>,
        keep: BTreeSet<u64>,
    },
}

/// Logins count failures cluster-wide: each outcome goes through the metadata group's log
/// (forwarded to its leader from another node), and every node applies it to the account's
/// counters.
#[async_trait::async_trait]
impl LoginLedger for Cluster {
    async fn record(&self, record: LoginRecord) -> Result<()> {
        crate::replication::on_leader(
            self,
            METADATA,
            || self.record_here(record.clone()),
            || self.forward::<_, ()>(METADATA, service::FORWARD_LOGIN, &record, self.write_timeout()),
        )
        .await
    }

    /// A read index of the metadata group: without it, a node that has not yet applied the
    /// failures counted through other nodes would take a right password for a first try and
    /// leave those failures standing.
    async fn catch_up(&self) -> Result<()> {
        self.barrier(METADATA).await
    }
}

#[async_trait::async_trait]
impl Replication for Cluster {
    fn group_of(&self, table: TableId, partition: Partition) -> GroupId {
        crate::replication::group_of(self.placement, table, partition)
    }

    fn leads(&self, group: GroupId) -> bool {
        self.leader_of(group) == Some(self.node_id)
    }

    fn stores(&self, group: GroupId) -> bool {
        self.stores_group(group)
    }

    async fn open_session(&self, group: GroupId) -> Result<crate::replication::Upstream> {
        Cluster::open_session(self, group).await
    }

    fn leader_of(&self, group: GroupId) -> Option<u64> {
        match self.has_group(group) {
            true => self.group(group).metrics.borrow().current_leader,
            false => None,
        }
    }

    async fn propose(&self, command: Command) -> Result<Outcome> {
        let group = command.group(self.placement);
        let proposal = Proposal { command, catalog_index: self.applied(METADATA) };
        let size = serde_json::to_vec(&proposal).map_err(KalamError::internal)?.len();
        if size > self.config.max_entry_bytes {
            return Err(KalamError::TooLarge(format!(
                "this write is {size} bytes encoded, more than a cluster log entry carries \
                 (cluster.max_entry_bytes = {}); split it into smaller statements",
                self.config.max_entry_bytes
            )));
        }
        let timeout = self.write_timeout();
        // A leadership handover of the group lets the writes in flight finish and holds new
        // ones until it is done; they then find this node no longer leads (`NotLeader`).
        let _handover = self.group(group).handover.read().await;
        match tokio::time::timeout(timeout, self.raft(group).client_write(proposal)).await {
            Err(_) => Err(KalamError::Unavailable(format!(
                "no majority of the cluster acknowledged the write within {} ms; it may or may not be applied",
                self.config.write_timeout_ms
            ))),
            Ok(Ok(response)) => response.data.map_err(KalamError::from),
            // Either this node did not lead when the write came, or its entry was replaced
            // by a new leader's log: never applied either way.
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => Err(KalamError::NotLeader(group.0)),
            Ok(Err(e)) => Err(KalamError::Unavailable(format!("the cluster cannot take writes: {e}"))),
        }
    }

    async fn forward_statement(&self, group: GroupId, statement: &ForwardedStatement) -> Result<Option<QueryResult>> {
        let answer_within = match statement.membership {
            true => LEARNER_CATCH_UP * (self.groups.len() as u32),
            false => Duration::ZERO,
        } + self.write_timeout();
        if self.stores_group(group) {
            return self.forward(group, service::FORWARD_STATEMENT, statement, answer_within).await;
        }
        let statement = ForwardedStatement { read_after: self.spread.acked(group), ..statement.clone() };
        self.forward(group, service::FORWARD_STATEMENT, &statement, answer_within).await
    }

    async fn propose_on_leader(&self, command: Command) -> Result<Outcome> {
        if !command.forwardable() {
            return Err(KalamError::internal("a command only its group's leader plans was to be forwarded"));
        }
        let group = command.group(self.placement);
        crate::replication::on_leader(
            self,
            group,
            || self.propose(command.clone()),
            || self.forward(group, service::FORWARD_COMMAND, &command, self.write_timeout()),
        )
        .await
    }

    async fn forward_mutation(&self, group: GroupId, mutation: &ForwardedMutation) -> Result<Option<MutateResult>> {
        self.forward(group, service::FORWARD_MUTATION, mutation, self.write_timeout()).await
    }

    fn health(&self) -> serde_json::Value {
        serde_json::to_value(self.node_health()).unwrap_or_default()
    }

    fn applied_position(&self) -> AppliedPosition {
        // For a group this node does not store: how far its forwarded writes were applied.
        let position = |g: GroupId| match self.stores_group(g) {
            true => self.applied(g),
            false => self.applied(g).max(self.spread.acked(g)),
        };
        AppliedPosition(self.groups.iter().map(|g| position(g.id)).collect())
    }

    async fn read_barrier(&self) -> Result<()> {
        futures::future::try_join_all(self.groups.iter().map(|g| async move {
            match self.stores_group(g.id) {
                true => self.barrier(g.id).await,
                // Its reads run on a node that stores it, which applies this far first.
                false => self.read_index(g.id).await.map(|index| self.spread.note_acked(g.id, index)),
            }
        }))
        .await
        .map(|_| ())
    }

    async fn catalog_barrier(&self) -> Result<()> {
        self.barrier(METADATA).await
    }

    async fn group_barrier(&self, group: GroupId) -> Result<()> {
        self.barrier(group).await
    }

    fn relay_stream(&self, events: StreamEvents) {
        self.streams.send(&self.others(), events, &self.client, &self.token, self.node_id, self.scheme);
    }

    async fn wait_applied(&self, position: &AppliedPosition) -> bool {
        let mut waits = Vec::new();
        for (g, index) in position.0.iter().enumerate().filter(|(g, index)| **index > 0 && *g < self.groups.len()) {
            let group = GroupId(g as u32);
            match self.stores_group(group) {
                true => waits.push(self.applied_within(group, *index, READ_AFTER_WAIT)),
                // Reads of it are forwarded: they wait for the index where they run.
                false => self.spread.note_acked(group, *index),
            }
        }
        futures::future::join_all(waits).await.into_iter().all(|reached| reached)
    }

    async fn members(&self) -> Vec<Member> {
        let each = self.groups.iter().map(|g| async move {
            if self.stores_group(g.id) {
                return self.members_of(g);
            }
            // This node's view of a group it left is old: its leader's, with this node's
            // `this_node`.
            let asked = self.forward::<(), Vec<Member>>(g.id, service::MEMBERS, &(), PEER_ANSWER);
            match tokio::time::timeout(PEER_ANSWER, asked).await {
                Ok(Ok(Some(members))) => {
                    members.into_iter().map(|m| Member { this_node: m.node_id == self.node_id, ..m }).collect()
                }
                Ok(Ok(None)) => self.members_of(g),
                _ => {
                    tracing::debug!(group = g.id.0, "system.cluster: the group's leader did not answer");
                    Vec::new()
                }
            }
        });
        futures::future::join_all(each).await.into_iter().flatten().collect()
    }

    async fn jobs_elsewhere(&self) -> Vec<(u64, Vec<crate::jobs::Job>)> {
        let asked = self.others().into_iter().map(|(id, address)| async move {
            let jobs = self.ask_peer::<(), Vec<crate::jobs::Job>>(&address, service::JOBS, &()).await;
            jobs.map(|jobs| (id, jobs))
        });
        futures::future::join_all(asked).await.into_iter().flatten().collect()
    }

    async fn kill_job_elsewhere(&self, job_id: &str) -> Result<KilledElsewhere> {
        let mut unanswered = Vec::new();
        for (id, address) in self.others() {
            let job = job_id.to_string();
            match self.ask_peer::<String, service::KillAnswer>(&address, service::KILL_JOB, &job).await {
                Some(service::KillAnswer::Cancelling) => return Ok(KilledElsewhere::Killed),
                Some(service::KillAnswer::Refused(why)) => return Err(KalamError::Validation(why)),
                Some(service::KillAnswer::Unknown) => {}
                None => unanswered.push(id),
            }
        }
        Ok(KilledElsewhere::nowhere(unanswered))
    }

    async fn live_queries_elsewhere(&self, owner: Option<UserId>) -> Vec<(u64, Vec<LiveQueryInfo>)> {
        let asked = self.others().into_iter().map(|(id, address)| async move {
            let listed = self.ask_peer::<_, Vec<LiveQueryInfo>>(&address, service::LIVE_QUERIES, &owner).await;
            if listed.is_none() {
                tracing::debug!(node = id, "system.live_queries: node {id} did not answer");
            }
            listed.map(|live| (id, live))
        });
        futures::future::join_all(asked).await.into_iter().flatten().collect()
    }

    async fn kill_live_query_elsewhere(&self, kill: &LiveKill) -> KilledElsewhere {
        let asked = self.others().into_iter().map(|(id, address)| async move {
            (id, self.ask_peer::<_, bool>(&address, service::KILL_LIVE_QUERY, kill).await)
        });
        // Live ids are unique (the connection's ULID), so at most one node ends it.
        let answers = futures::future::join_all(asked).await;
        if answers.iter().any(|(_, killed)| *killed == Some(true)) {
            return KilledElsewhere::Killed;
        }
        KilledElsewhere::nowhere(answers.into_iter().filter(|(_, killed)| killed.is_none()).map(|(id, _)| id).collect())
    }

    fn groups_elsewhere(&self) -> Vec<GroupId> {
        self.groups.iter().map(|g| g.id).filter(|g| *g != METADATA && !self.stores_group(*g)).collect()
    }

    async fn backup_part(&self, group: GroupId, request: serde_json::Value) -> Result<serde_json::Value> {
        match self.forward(group, service::BACKUP_PART, &request, BACKUP_PART_PATIENCE).await? {
            Some(written) => Ok(written),
            // Only asked of groups this node does not store, which it cannot lead.
            None => Err(KalamError::Unavailable(format!("no node answered for group {}; retry", group.0))),
        }
    }

    async fn backup_chunk(&self, node: u64, part: &str, path: &str, offset: u64) -> Result<Vec<u8>> {
        let chunk = ChunkRequest { part: part.to_string(), path: path.to_string(), offset };
        let address = self
            .address_of(node)
            .ok_or_else(|| KalamError::Unavailable(format!("node {node} left the cluster during the backup")))?;
        let sent = self
            .peer_request(&address, service::BACKUP_CHUNK)
            .timeout(BACKUP_CHUNK_PATIENCE)
            .json(&chunk)
            .send()
            .await
            .map_err(|e| KalamError::Unavailable(format!("node {node} did not send a backup file: {e}")))?;
        let status = sent.status();
        // A chunk is at most CHUNK_BYTES: a longer answer is not read.
        if sent.content_length().is_some_and(|n| n > crate::backup::gather::CHUNK_BYTES as u64) {
            return Err(KalamError::Unavailable(format!("node {node} sent a backup chunk larger than a chunk")));
        }
        let bytes = sent
            .bytes()
            .await
            .map_err(|e| KalamError::Unavailable(format!("node {node} did not send a backup file: {e}")))?;
        match status.is_success() && bytes.len() <= crate::backup::gather::CHUNK_BYTES {
            true => Ok(bytes.to_vec()),
            false => Err(KalamError::Unavailable(format!(
                "node {node} refused a backup file ({status}): {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(512)])
            ))),
        }
    }

    async fn backup_part_done(&self, node: u64, part: &str) {
        let Some(address) = self.address_of(node) else { return };
        if self.ask_peer::<_, ()>(&address, service::BACKUP_DONE, &part).await.is_none() {
            tracing::warn!(
                node,
                part,
                "a backup part could not be removed on node {node}; it is removed when it restarts"
            );
        }
    }

    async fn change_members(&self, change: MembershipChange) -> Result<String> {
        if seeding::is_pending(&*self.database()?)? {
            return Err(KalamError::Unavailable(
                "the cluster is still taking the snapshot of its first node's data; retry".into(),
            ));
        }
        let (members, known) = self.cluster_members();
        let members_of = |g: &Group| -> BTreeSet<u64> {
            g.metrics.borrow().membership_config.membership().nodes().map(|(id, _)| *id).collect()
        };
        match &change {
            // (A node added to some groups only, by a change that failed midway, is added
            // to the rest by running it again.)
            MembershipChange::Add { id, .. }
                if members.contains(id)
                    && self
                        .groups_placed_on(*id, &members)
                        .into_iter()
                        .all(|g| members_of(self.group(g)).contains(id)) =>
            {
                return Err(KalamError::AlreadyExists(format!("node {id} is already a member")));
            }
            MembershipChange::Remove { id } if !known.contains(id) => {
                return Err(KalamError::Validation(format!("node {id} is not a member")));
            }
            MembershipChange::Remove { .. } if members.len() == 1 => {
                return Err(KalamError::Validation("the last node of a cluster cannot be removed".into()));
            }
            _ => {}
        }
        // Every group, each on its own leader. Adding: the node becomes a learner of every
        // group at once (its snapshots arrive together, installed by one restart), then a
        // member of the cluster (a voter of the metadata group) once it has caught up, then
        // a voter of the data groups it is placed in (`voters`), each once caught up: the
        // metadata group first, since a data group applies nothing before its node has the
        // catalog it names. Removing: the node stops voting in the metadata group (so no
        // leader places a data group's voters on it any more), then the data groups each
        // take another voter in its place, then it leaves the metadata group.
        if let MembershipChange::Add { id, address } = &change {
            self.check_settings_of(*id, address).await?;
        }
        let data_groups: Vec<GroupId> = self.groups.iter().map(|g| g.id).filter(|g| *g != METADATA).collect();
        let steps: Vec<(MemberStep, Vec<GroupId>)> = match &change {
            MembershipChange::Add { id, address } => {
                let (mut members, mut keep) = (members.clone(), known);
                members.insert(*id);
                keep.insert(*id);
                // With spread storage, only the groups it will store.
                let placed = self.groups_placed_on(*id, &members);
                vec![
                    (MemberStep::Learner { id: *id, address: address.clone() }, placed),
                    (MemberStep::Voter { id: *id, address: address.clone() }, vec![METADATA]),
                    (MemberStep::Voters { members, keep }, data_groups),
                ]
            }
            MembershipChange::Remove { id } => {
                if *id == self.node_id {
                    self.hand_over_metadata(&members).await?;
                }
                let members: BTreeSet<u64> = members.iter().copied().filter(|m| m != id).collect();
                let keep: BTreeSet<u64> = known.into_iter().filter(|m| m != id).collect();
                vec![
                    (MemberStep::Demote { id: *id }, vec![METADATA]),
                    (MemberStep::Voters { members, keep }, data_groups),
                    (MemberStep::Remove { id: *id }, vec![METADATA]),
                ]
            }
        };
        for (step, groups) in steps {
            let answer_within = match step {
                MemberStep::Voter { .. } | MemberStep::Voters { .. } => LEARNER_CATCH_UP,
                _ => Duration::ZERO,
            } + self.write_timeout();
            for group in groups {
                // On the group's leader, following it if its leadership moves meanwhile.
                let here = || self.change_group_members(group, step.clone());
                // A step lost in flight (its leader restarting, say, to install a snapshot of
                // another group it is joining) is sent again: each step reads the group's
                // membership first, so running it twice changes nothing.
                let there =
                    || self.forward_with::<_, ()>(group, service::MEMBERSHIP, &step, answer_within, Lost::Resend);
                crate::replication::on_leader(self, group, here, there).await?;
            }
        }
        Ok(match change {
            MembershipChange::Add { id, address } => format!("Node {id} ({address}) added to the cluster"),
            MembershipChange::Remove { id } => format!("Node {id} removed from the cluster"),
        })
    }
}

/// What [`Cluster::forward_with`] does with a request lost in flight (sent, never answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lost {
    /// Answers UNAVAILABLE: the leader may have acted on it.
    Report,
    /// Sends it again (to the group's leader then) until its time is up: for requests that
    /// change nothing the second time.
    Resend,
}

/// A read index no majority confirmed in time.
fn unconfirmed_leader() -> KalamError {
    KalamError::Unavailable("no majority confirmed the leader in time (a node cut off?); retry".into())
}

/// How long `ALTER CLUSTER ADD NODE` waits for the new node to catch up with a group (a
/// whole snapshot, perhaps) before it makes it a voter.
const LEARNER_CATCH_UP: Duration = Duration::from_secs(120);
/// How often that wait asks the new node how far it has applied.
const LEARNER_POLL: Duration = Duration::from_millis(500);
/// How long a question to another node's cluster port (its health, its jobs) may take.
pub(super) const PEER_ANSWER: Duration = Duration::from_secs(2);
/// How long a group's leader may take to write its part of a backup (a copy of the group's
/// partitions in the namespace: long for a large namespace).
const BACKUP_PART_PATIENCE: Duration = Duration::from_secs(3600);
/// How long a chunk of a backup part's file may take to arrive.
const BACKUP_CHUNK_PATIENCE: Duration = Duration::from_secs(60);

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
/// request, which `ALTER CLUSTER ADD NODE` asks the new node): the metadata group's state at
/// the top, every group's in `groups`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct NodeHealth {
    pub node_id: u64,
    /// The metadata group's state (its `group` is 0; its `stopped` is the node's: whether any
    /// of its groups has stopped after an error it cannot go on from, which its log says; the
    /// node must be restarted once that is fixed).
    #[serde(flatten)]
    pub metadata: GroupHealth,
    /// Why the last attempt to take a snapshot failed, if it did (the log is then kept).
    pub snapshot_error: Option<String>,
    /// The metadata group's voters.
    pub members: Vec<u64>,
    /// Every group: the metadata group (0), then the data groups.
    pub groups: Vec<GroupHealth>,
}

fn stored_by_default() -> bool {
    true
}

/// One Raft group's state on a node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GroupHealth {
    pub group: u32,
    /// This node stores the group and answers its reads (always, unless storage is spread;
    /// the other fields of a group it does not store are as they were when it left).
    #[serde(default = "stored_by_default")]
    pub stored: bool,
    pub state: String,
    pub leader: Option<u64>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub last_applied: Option<u64>,
    /// The last log index in this node's latest snapshot of the group.
    pub snapshot_index: Option<u64>,
    /// The log is purged up to this index (covered by the snapshot).
    pub purged_index: Option<u64>,
    /// On the group's leader: how far the log is committed (held by a majority of the voters).
    pub committed_index: Option<u64>,
    /// The group's Raft has stopped on this node.
    pub stopped: bool,
    /// The group's voters and learners as this node last learned them (a node that lags
    /// may not know of a change yet: compare with the leader's).
    #[serde(default)]
    pub voters: Vec<u64>,
    /// The group's learners, likewise.
    #[serde(default)]
    pub learners: Vec<u64>,
}

impl Cluster {
    /// A request to `path` on the cluster port at `address`, with this node's token and id
    /// (its settings go with every request of `client`).
    fn peer_request(&self, address: &str, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}://{address}{path}", self.scheme))
            .header(network::TOKEN_HEADER, self.token.header())
            .header(network::NODE_HEADER, self.node_id)
    }

    /// Refuses to add node `id` (at `address`) if it was started with other cluster settings
    /// than this node, with the reason it gives (it would place partitions and voters its
    /// own way). A node that does not answer is left to the membership change to report.
    async fn check_settings_of(&self, id: u64, address: &str) -> Result<()> {
        let sent = self.peer_request(address, service::STATUS).timeout(PEER_ANSWER).json(&()).send().await;
        match sent {
            Ok(r) if r.status() == reqwest::StatusCode::CONFLICT => {
                let why = r.text().await.unwrap_or_default();
                Err(KalamError::InvalidRequest(format!("node {id} cannot join: {why}")))
            }
            _ => Ok(()),
        }
    }

    /// Node `address`'s own health, asked on its cluster port; `None` if it does not answer.
    async fn peer_health(&self, address: &str) -> Option<NodeHealth> {
        self.ask_peer(address, service::STATUS, &()).await
    }

    /// Posts `body` to `path` on the cluster port at `address`; its answer, or `None` if it
    /// does not give one within [`PEER_ANSWER`].
    async fn ask_peer<B: Serialize, T: DeserializeOwned>(&self, address: &str, path: &str, body: &B) -> Option<T> {
        self.ask_peer_in(address, None, path, body).await
    }

    /// [`Cluster::ask_peer`] about one group.
    async fn ask_peer_in<B: Serialize, T: DeserializeOwned>(
        &self,
        address: &str,
        group: Option<GroupId>,
        path: &str,
        body: &B,
    ) -> Option<T> {
        let mut request = self.peer_request(address, path);
        if let Some(group) = group {
            request = request.header(network::GROUP_HEADER, group.0);
        }
        let sent = request.timeout(PEER_ANSWER).json(body).send().await.ok()?;
        sent.status().is_success().then_some(())?;
        sent.json().await.ok()
    }

    /// The other members (voters and learners of the metadata group) and their cluster
    /// addresses.
    fn others(&self) -> Vec<(u64, String)> {
        self.others_in(METADATA)
    }

    /// The other members of `group` (voters and learners) and their cluster addresses.
    fn others_in(&self, group: GroupId) -> Vec<(u64, String)> {
        let m = self.group(group).metrics.borrow();
        m.membership_config
            .membership()
            .nodes()
            .filter(|(id, _)| **id != self.node_id)
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect()
    }

    /// Makes `voters` the voters of `group`, waiting as long as a write does for the change
    /// to commit.
    async fn change_membership_within(
        &self,
        group: GroupId,
        change: ChangeMembers<u64, BasicNode>,
        retain: bool,
    ) -> Result<()> {
        // Not while the group's leadership is being handed over (an entry appended then
        // could leave the new leader behind).
        let _handover = self.group(group).handover.read().await;
        match tokio::time::timeout(self.write_timeout(), self.raft(group).change_membership(change, retain)).await {
            Ok(Ok(_)) => Ok(()),
            // Nothing changed: the caller asks the new leader.
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => Err(KalamError::NotLeader(group.0)),
            Ok(Err(e)) => Err(KalamError::Unavailable(format!("the membership change failed: {e}"))),
            Err(_) => Err(KalamError::Unavailable(format!(
                "the membership change was proposed but no majority of the old and the new members \
                 acknowledged it within {} ms; it completes once they do (see system.cluster)",
                self.config.write_timeout_ms
            ))),
        }
    }

    /// The members of group `group`, as this node sees them.
    pub(super) fn members_of_group(&self, group: GroupId) -> Vec<Member> {
        self.members_of(self.group(group))
    }

    /// The members of one group, as this node sees them.
    fn members_of(&self, group: &Group) -> Vec<Member> {
        let m = group.metrics.borrow().clone();
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
                    group: group.id,
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
                        true => {
                            self.problems.snapshot_error_of(group.id).map(|e| format!("the last snapshot failed: {e}"))
                        }
                        false if self.problems.peer_stopped_in(*id, group.id) => {
                            Some("its Raft has stopped (see its log)".into())
                        }
                        false => None,
                    },
                }
            })
            .collect()
    }

    /// This node's view of the cluster.
    pub(crate) fn node_health(&self) -> NodeHealth {
        let groups: Vec<GroupHealth> = self
            .groups
            .iter()
            .map(|g| {
                // Asked before the borrow below: it reads the same metrics, and a second read
                // of a watch channel while its sender waits to write would wait forever.
                let stored = self.stores_group(g.id);
                let m = g.metrics.borrow();
                GroupHealth {
                    group: g.id.0,
                    stored,
                    state: format!("{:?}", m.state),
                    leader: m.current_leader,
                    term: m.current_term,
                    last_log_index: m.last_log_index,
                    last_applied: m.last_applied.map(|l| l.index),
                    snapshot_index: m.snapshot.map(|l| l.index),
                    purged_index: m.purged.map(|l| l.index),
                    committed_index: majority_index(&m),
                    stopped: m.running_state.is_err(),
                    voters: m.membership_config.membership().voter_ids().collect(),
                    learners: m.membership_config.membership().learner_ids().collect(),
                }
            })
            .collect();
        let m = self.group(METADATA).metrics.borrow().clone();
        let mut metadata = groups[0].clone();
        metadata.stopped = groups.iter().any(|g| g.stopped);
        NodeHealth {
            node_id: self.node_id,
            metadata,
            snapshot_error: self.problems.snapshot_error(),
            members: m.membership_config.membership().voter_ids().collect(),
            groups,
        }
    }
}
