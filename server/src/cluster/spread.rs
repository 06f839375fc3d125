//! Spread storage (`cluster.spread_storage`): each node stores only the data groups it votes
//! in, and hands what needs another group to a node that stores it.
//!
//! Every statement and WebSocket session reads at most one user's partitions (no role reads
//! another user's, outside `EXECUTE AS`) and SHARED tables, which are then all in one group
//! that every node stores ([`Placement::SHARED_GROUP`]). So a node answers whatever does not
//! touch a user whose group it lacks, and hands the rest whole to that group's leader: a
//! statement through [`Cluster::forward`], a WebSocket session through a tunnel
//! (`crate::api::ws::tunnel`).
//!
//! A node that is not a member of a group has no fresh view of who leads it (its Raft for
//! the group hears nothing once the node has left). It learns the leader from the nodes it
//! asks: a node that does not lead a group answers a forwarded request with the leader it
//! knows ([`LeaderHint`]), and one that cannot be reached makes the sender ask the group's
//! voters as placement names them, one after the other.
//!
//! Read-your-writes: a write this node forwarded for a group it does not store is answered
//! once the leader has applied it; the index is kept ([`Spread::acked`]) and every statement
//! this node forwards to that group afterwards carries it, so the node answering waits
//! until it has applied that far before it reads.

use super::voters::voters_for;
use super::{Cluster, network, service};
use crate::error::{KalamError, Result};
use crate::ids::Placement;
use crate::replication::{GroupId, METADATA, NodeIo, Upstream, raft_group};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The leader of a group as the node answering a misdirected request knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct LeaderHint {
    pub node: u64,
    pub address: String,
}

/// What a node keeps about the groups it does not store.
pub(super) struct Spread {
    /// Per group: the leader learnt from other nodes, tried before this node's own view.
    hints: parking_lot::Mutex<Vec<Option<LeaderHint>>>,
    /// Per group: the highest log index a write forwarded from here was applied at.
    acked: Vec<AtomicU64>,
}

impl Spread {
    pub(super) fn new(groups: usize) -> Spread {
        Spread {
            hints: parking_lot::Mutex::new(vec![None; groups]),
            acked: (0..groups).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The index every statement forwarded to `group` waits for on the node answering it.
    pub(super) fn acked(&self, group: GroupId) -> u64 {
        self.acked.get(group.0 as usize).map_or(0, |a| a.load(Ordering::Acquire))
    }

    /// Raises the index statements forwarded to `group` wait for.
    pub(super) fn note_acked(&self, group: GroupId, index: u64) {
        if let Some(a) = self.acked.get(group.0 as usize) {
            a.fetch_max(index, Ordering::AcqRel);
        }
    }

    fn hint(&self, group: GroupId) -> Option<LeaderHint> {
        self.hints.lock().get(group.0 as usize).cloned().flatten()
    }

    fn set_hint(&self, group: GroupId, hint: Option<LeaderHint>) {
        if let Some(slot) = self.hints.lock().get_mut(group.0 as usize) {
            *slot = hint;
        }
    }
}

impl Cluster {
    /// Whether this node stores `group` and answers reads of it. Every group, unless storage
    /// is spread; then the metadata group, the SHARED tables' group, and the data groups
    /// placement makes this node a voter of *and* whose log makes it one: not a node still
    /// catching up with a group it joins, nor one that has left a group (its data of it
    /// stops where it left).
    ///
    /// It reads the group's metrics: never call it while holding a borrow of them (a second
    /// read of a watch channel while openraft waits to write it blocks both for good).
    pub(super) fn stores_group(&self, group: GroupId) -> bool {
        if !self.has_group(group) {
            return false;
        }
        if !self.placement.shared_apart() || group == METADATA || group == raft_group(Placement::SHARED_GROUP) {
            return true;
        }
        let (members, _) = self.cluster_members();
        if !self.stores_on(group, self.node_id, &members) {
            return false;
        }
        let m = self.group(group).metrics.borrow();
        m.membership_config.membership().voter_ids().any(|v| v == self.node_id)
    }

    /// Whether node `node` stores `group` once the cluster's members are `members` (as
    /// placement says; whether it has caught up is another matter).
    pub(super) fn stores_on(&self, group: GroupId, node: u64, members: &BTreeSet<u64>) -> bool {
        !self.placement.shared_apart()
            || group == METADATA
            || group == raft_group(Placement::SHARED_GROUP)
            || voters_for(group, members, self.config.replicas).contains(&node)
    }

    /// The groups node `node` stores once the cluster's members are `members`: every group,
    /// unless storage is spread.
    pub(super) fn groups_placed_on(&self, node: u64, members: &BTreeSet<u64>) -> Vec<GroupId> {
        self.groups.iter().map(|g| g.id).filter(|g| self.stores_on(*g, node, members)).collect()
    }

    /// The node to try at `turn` of a search for the leader of `group`, a group this node
    /// does not store (see [`Cluster::leader_candidates`]); `None` if it knows no node.
    pub(super) fn candidate(&self, group: GroupId, turn: usize) -> Option<(u64, String)> {
        let candidates = self.leader_candidates(group);
        candidates.get(turn % candidates.len().max(1)).cloned()
    }

    /// After node `tried` took a request for `group`: it leads, as far as this node knows.
    pub(super) fn found_leader(&self, group: GroupId, tried: u64, address: String) {
        self.spread.set_hint(group, Some(LeaderHint { node: tried, address }));
    }

    /// After node `tried` did not take a request for `group` (it does not lead it, or could
    /// not be reached): the search follows the leader it `named`, if another node, else goes
    /// on to the next candidate.
    pub(super) fn missed_leader(&self, group: GroupId, turn: &mut usize, tried: u64, named: Option<LeaderHint>) {
        match named {
            Some(hint) if hint.node != tried && hint.node != self.node_id => {
                self.spread.set_hint(group, Some(hint));
                *turn = 0;
            }
            _ => {
                self.spread.set_hint(group, None);
                *turn += 1;
            }
        }
    }

    /// The nodes to try, in order, for a request to `group`'s leader from a node that does
    /// not store the group: the leader another node named, this node's own (possibly old)
    /// view, then the voters placement names (each answers with the leader it knows).
    fn leader_candidates(&self, group: GroupId) -> Vec<(u64, String)> {
        let mut out: Vec<(u64, String)> = Vec::new();
        if let Some(hint) = self.spread.hint(group) {
            out.push((hint.node, hint.address));
        }
        let addresses = self.metadata_addresses();
        let known = self.group(group).metrics.borrow().current_leader;
        let (members, _) = self.cluster_members();
        let voters = voters_for(group, &members, self.config.replicas);
        for node in known.into_iter().chain(voters) {
            if node != self.node_id
                && !out.iter().any(|(n, _)| *n == node)
                && let Some((_, address)) = addresses.iter().find(|(id, _)| *id == node)
            {
                out.push((node, address.clone()));
            }
        }
        out
    }

    /// Every node of the cluster and its cluster address, as the metadata group knows them
    /// (every node applies its log, so this view is current).
    fn metadata_addresses(&self) -> Vec<(u64, String)> {
        let m = self.group(METADATA).metrics.borrow();
        m.membership_config.membership().nodes().map(|(id, node)| (*id, node.addr.clone())).collect()
    }

    /// The cluster address of node `node`, as the metadata group knows it.
    pub(super) fn address_of(&self, node: u64) -> Option<String> {
        self.metadata_addresses().into_iter().find(|(id, _)| *id == node).map(|(_, address)| address)
    }

    /// What this node answers a request for `group` it cannot take: the leader it knows.
    pub(super) fn leader_hint(&self, group: GroupId) -> Option<LeaderHint> {
        // A node that does not follow the group would name an old leader.
        if !self.stores_group(group) {
            return None;
        }
        let m = self.group(group).metrics.borrow();
        let leader = m.current_leader?;
        let address = m.membership_config.membership().get_node(&leader)?.addr.clone();
        Some(LeaderHint { node: leader, address })
    }
}

/// Why opening a session on one node failed.
enum Refusal {
    /// It does not store the group; it named the leader it knows, if any.
    NotHere(Option<LeaderHint>),
    /// It could not be reached, or answered something else.
    Failed(String),
}

impl Cluster {
    /// Opens a WebSocket session for a client of this node whose user's group (`group`)
    /// this node does not store, on a node that does: the group's leader if it can be found,
    /// within the write timeout.
    pub(super) async fn open_session(&self, group: GroupId) -> Result<Upstream> {
        let deadline = tokio::time::Instant::now() + self.write_timeout();
        let mut turn = 0usize;
        loop {
            let Some((node, address)) = self.candidate(group, turn) else {
                return Err(KalamError::Unavailable(format!("no node of group {} is known; retry", group.0)));
            };
            match self.connect_session(group, &address).await {
                Ok(upstream) => {
                    self.found_leader(group, node, address);
                    return Ok(upstream);
                }
                Err(Refusal::NotHere(named)) => self.missed_leader(group, &mut turn, node, named),
                Err(Refusal::Failed(why)) => {
                    tracing::debug!(node, group = group.0, "cannot open a session there: {why}");
                    self.missed_leader(group, &mut turn, node, None);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(KalamError::Unavailable(format!(
                    "no node storing this user's data (group {}) can be reached; retry",
                    group.0
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn connect_session(&self, group: GroupId, address: &str) -> std::result::Result<Upstream, Refusal> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let failed = |e: &dyn std::fmt::Display| Refusal::Failed(e.to_string());
        let tcp = tokio::time::timeout(CONNECT, tokio::net::TcpStream::connect(address))
            .await
            .map_err(|_| Refusal::Failed("connect timed out".into()))?
            .map_err(|e| failed(&e))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn NodeIo> = match &self.tls_client {
            None => Box::new(tcp),
            Some(config) => {
                let host = address.rsplit_once(':').map_or(address, |(h, _)| h).trim_matches(['[', ']']);
                let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| failed(&e))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone());
                let stream = tokio::time::timeout(CONNECT, tls.connect(name, tcp))
                    .await
                    .map_err(|_| Refusal::Failed("TLS handshake timed out".into()))?
                    .map_err(|e| failed(&e))?;
                Box::new(stream)
            }
        };
        let scheme = if self.tls_client.is_some() { "wss" } else { "ws" };
        let mut request =
            format!("{scheme}://{address}{}", service::SESSION).into_client_request().map_err(|e| failed(&e))?;
        let headers = request.headers_mut();
        for (name, value) in [
            (network::TOKEN_HEADER, self.token.header().to_string()),
            (network::NODE_HEADER, self.node_id.to_string()),
            (network::GROUP_HEADER, group.0.to_string()),
            (network::SETTINGS_HEADER, self.settings.as_str().to_string()),
        ] {
            headers.insert(name, value.parse().map_err(|e| failed(&e))?);
        }
        // The client's frames were bounded where they came in; the serving node's (a
        // catch-up batch holds up to 10,000 rows) as a native client bounds them, in one frame.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(RELAYED_MESSAGE_BYTES))
            .max_frame_size(Some(RELAYED_MESSAGE_BYTES));
        let handshake = tokio_tungstenite::client_async_with_config(request, io, Some(config));
        match tokio::time::timeout(CONNECT, handshake).await {
            Err(_) => Err(Refusal::Failed("WebSocket handshake timed out".into())),
            Ok(Ok((upstream, _))) => Ok(upstream),
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response)))
                if response.status() == tokio_tungstenite::tungstenite::http::StatusCode::MISDIRECTED_REQUEST =>
            {
                let hint = response.body().as_deref().and_then(|b| serde_json::from_slice(b).ok()).flatten();
                Err(Refusal::NotHere(hint))
            }
            Ok(Err(e)) => Err(failed(&e)),
        }
    }
}

/// How long connecting to another node (and each handshake) may take.
const CONNECT: Duration = Duration::from_secs(2);

/// The largest frame a relayed session takes from the node serving it (tungstenite's
/// default message limit, which the native client keeps).
const RELAYED_MESSAGE_BYTES: usize = 64 << 20;
