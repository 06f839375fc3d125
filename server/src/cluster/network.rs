//! openraft's RPCs to the other nodes: JSON over HTTP to their cluster port, each request
//! carrying the cluster token ([`ClusterToken`]) and bounded in time.

use super::TypeConfig;
use super::problems::Problems;
use super::service::{APPEND, SNAPSHOT, VOTE};
use hmac::{Hmac, Mac};
use kalamdb_raft::GroupId;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{AnyError, BasicNode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;

/// The header holding the cluster token.
pub(super) const TOKEN_HEADER: &str = "x-kalamdb-cluster-token";
/// The header naming the sending node (for the receiver's logs).
pub(super) const NODE_HEADER: &str = "x-kalamdb-node";
/// The header naming the Raft group a request is for (Raft RPCs, forwarded writes).
pub(super) const GROUP_HEADER: &str = "x-kalamdb-group";
/// The header carrying the sender's [`ClusterSettings`]: a node started with other settings
/// than the cluster's is refused, rather than place partitions and voters its own way.
pub(super) const SETTINGS_HEADER: &str = "x-kalamdb-cluster-settings";

/// The settings every node of a cluster must share: where partitions live and who votes
/// in each group follow from them, and two nodes that disagree would undo each other's
/// placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ClusterSettings(String);

impl ClusterSettings {
    pub(super) fn new(data_groups: u16, spread_storage: bool, replicas: usize) -> ClusterSettings {
        ClusterSettings(format!("data_groups={data_groups} spread_storage={spread_storage} replicas={replicas}"))
    }

    pub(super) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Proves a request comes from a node holding the cluster secret: an HMAC-SHA256 of a fixed
/// label under the secret, so the secret itself never crosses the network. Checked in
/// constant time.
#[derive(Clone)]
pub(crate) struct ClusterToken {
    mac: Hmac<Sha256>,
    header: String,
}

impl ClusterToken {
    const LABEL: &'static [u8] = b"kalamdb cluster v1";

    pub(crate) fn new(secret: &[u8]) -> ClusterToken {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(Self::LABEL);
        let header = hex::encode(mac.clone().finalize().into_bytes());
        ClusterToken { mac, header }
    }

    pub(super) fn header(&self) -> &str {
        &self.header
    }

    /// Whether `presented` (the header's value) is this cluster's token.
    pub(super) fn verify(&self, presented: &str) -> bool {
        let Some(bytes) = decode_hex(presented) else { return false };
        self.mac.clone().verify_slice(&bytes).is_ok()
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Makes a [`PeerClient`] per target node, for one Raft group.
pub(super) struct Network {
    group: GroupId,
    client: reqwest::Client,
    token: ClusterToken,
    node_id: u64,
    problems: Problems,
    /// `http`, or `https` with cluster TLS.
    scheme: &'static str,
}

impl Network {
    pub(super) fn new(
        group: GroupId,
        client: reqwest::Client,
        token: ClusterToken,
        node_id: u64,
        problems: Problems,
        scheme: &'static str,
    ) -> Network {
        Network { group, client, token, node_id, problems, scheme }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        PeerClient {
            group: self.group,
            client: self.client.clone(),
            token: self.token.clone(),
            node_id: self.node_id,
            target,
            url: format!("{}://{}", self.scheme, node.addr),
            problems: self.problems.clone(),
        }
    }
}

/// Sends one node's RPCs of one group.
pub(super) struct PeerClient {
    group: GroupId,
    client: reqwest::Client,
    token: ClusterToken,
    node_id: u64,
    target: u64,
    /// `scheme://host:port` of the node's cluster port.
    url: String,
    /// Where a node that answers that its Raft has stopped is noted.
    problems: Problems,
}

impl PeerClient {
    /// Posts `body` to `path` and decodes the node's `Result`: its Raft error comes back
    /// as a remote error, a node that cannot be reached as `Unreachable` (openraft backs
    /// off), anything else as a network error (openraft retries).
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        body: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<u64, BasicNode, RaftError<u64, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let sent_at = std::time::Instant::now();
        let sent = self
            .client
            .post(format!("{}{path}", self.url))
            .header(TOKEN_HEADER, self.token.header())
            .header(NODE_HEADER, self.node_id)
            .header(GROUP_HEADER, self.group.0)
            .timeout(option.hard_ttl())
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Err(Unreachable::new(&e).into()),
            Err(e) => return Err(NetworkError::new(&e).into()),
        };
        if !response.status().is_success() {
            let status = response.status();
            return Err(NetworkError::new(&AnyError::error(format!("node {} answered {status}", self.target))).into());
        }
        let answer: Result<Resp, RaftError<u64, E>> =
            response.json().await.map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.problems.peer_answered(self.target, self.group, matches!(answer, Err(RaftError::Fatal(_))), sent_at);
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(APPEND, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>> {
        self.call(SNAPSHOT, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(VOTE, &rpc, &option).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_clusters_own_token_is_accepted() {
        let token = ClusterToken::new(b"a-cluster-secret-of-at-least-32-chars");
        assert!(token.verify(token.header()));
        let other = ClusterToken::new(b"another-cluster-secret-of-32-chars!!");
        assert!(!token.verify(other.header()));
        assert!(!token.verify(""));
        assert!(!token.verify(&token.header()[..63]));
        assert!(!token.verify(&"zz".repeat(32)));
    }
}
