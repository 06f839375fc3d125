//! openraft's RPCs to the other nodes: JSON over HTTP to their cluster port, each request
//! carrying the cluster token ([`ClusterToken`]) and bounded in time.

use super::TypeConfig;
use super::problems::Problems;
use super::service::{APPEND, SNAPSHOT, VOTE};
use hmac::{Hmac, Mac};
use kalamdb_raft::GroupId;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{AnyError, BasicNode, LogId, RPCTypes, Vote};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;
use std::time::Duration;

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
            link: PeerLink {
                group: self.group,
                client: self.client.clone(),
                token: self.token.clone(),
                node_id: self.node_id,
                target,
                url: format!("{}://{}", self.scheme, node.addr),
                problems: self.problems.clone(),
            },
            sent: None,
        }
    }
}

/// How long an append (or heartbeat) may take to be answered once openraft has stopped
/// waiting for it.
const APPEND_PATIENCE: Duration = Duration::from_secs(10);

/// Sends one node's RPCs of one group.
///
/// openraft waits one heartbeat interval for an append (or heartbeat) to be answered and
/// then sends it again. A follower that takes longer (a large batch, a busy machine) would
/// never get an append through, nor its leader learn that it did: the request would be
/// dropped each time before it arrived, or its answer before it came back. So an append
/// goes on after openraft has stopped waiting ([`SentAppend`]), one at a time per follower,
/// and its answer serves the next call it covers.
pub(super) struct PeerClient {
    link: PeerLink,
    /// The append still on its way, if openraft stopped waiting for it.
    sent: Option<SentAppend>,
}

/// An append or heartbeat sent to a follower, which goes on after openraft's time for it.
struct SentAppend {
    /// The leader's vote it was sent with, and the last entry it carries.
    vote: Vote<u64>,
    last: Option<LogId<u64>>,
    answer: tokio::task::JoinHandle<AppendResult>,
}

type AppendResult = Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>>;

impl SentAppend {
    /// What `answer` (this append's) says about `rpc`, a later append of the same leader,
    /// if enough: the follower holds the leader's log up to `rpc`'s last entry (or a part
    /// of it), or has seen a higher vote. `None` if `rpc` must be sent.
    fn answers(&self, answer: &AppendResult, rpc: &AppendEntriesRequest<TypeConfig>) -> Option<AppendResult> {
        if self.vote != rpc.vote || rpc.entries.is_empty() {
            return None;
        }
        let held = match answer {
            Ok(AppendEntriesResponse::Success) => self.last,
            Ok(AppendEntriesResponse::PartialSuccess(matched)) => *matched,
            // A follower's vote only grows: it still refuses this leader.
            Ok(AppendEntriesResponse::HigherVote(vote)) => return Some(Ok(AppendEntriesResponse::HigherVote(*vote))),
            Ok(AppendEntriesResponse::Conflict) | Err(_) => return None,
        };
        // The same leader's log ids name the same entries, so holding `held` means holding
        // every entry of the leader's log up to it.
        let last = rpc.entries.last().map(|e| e.log_id);
        match held {
            Some(held) if Some(held) >= last => Some(Ok(AppendEntriesResponse::Success)),
            Some(held) if Some(held) > rpc.prev_log_id => Some(Ok(AppendEntriesResponse::PartialSuccess(Some(held)))),
            _ => None,
        }
    }
}

/// Where one node's RPCs of one group go.
#[derive(Clone)]
struct PeerLink {
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

impl PeerLink {
    /// Posts `body` to `path` and decodes the node's `Result` (within `patience`): its Raft
    /// error comes back as a remote error, a node that cannot be reached as `Unreachable`
    /// (openraft backs off), anything else as a network error (openraft retries).
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        body: &Req,
        patience: Duration,
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
            .timeout(patience)
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

impl PeerClient {
    /// The error openraft gets for an append not answered within `ttl` (it sends again).
    fn timed_out(&self, ttl: Duration) -> RPCError<u64, BasicNode, RaftError<u64>> {
        RPCError::Timeout(Timeout {
            action: RPCTypes::AppendEntries,
            id: self.link.node_id,
            target: self.link.target,
            timeout: ttl,
        })
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let ttl = option.hard_ttl();
        let deadline = tokio::time::Instant::now() + ttl;
        // openraft may drop this future at its deadline: whatever was sent stays in
        // `self.sent`, to be waited for by the next call.
        if let Some(sent) = self.sent.as_mut() {
            let Ok(joined) = tokio::time::timeout_at(deadline, &mut sent.answer).await else {
                return Err(self.timed_out(ttl));
            };
            let answer = match joined {
                Ok(answer) => answer,
                Err(e) => Err(NetworkError::new(&e).into()),
            };
            let answered = self.sent.take().and_then(|sent| sent.answers(&answer, &rpc));
            if let Some(answered) = answered {
                return answered;
            }
        }
        let link = self.link.clone();
        let (vote, last) = (rpc.vote, rpc.entries.last().map(|e| e.log_id));
        let answer = tokio::spawn(async move { link.call(APPEND, &rpc, APPEND_PATIENCE).await });
        let sent = self.sent.insert(SentAppend { vote, last, answer });
        match tokio::time::timeout_at(deadline, &mut sent.answer).await {
            Ok(joined) => {
                self.sent = None;
                match joined {
                    Ok(answer) => answer,
                    Err(e) => Err(NetworkError::new(&e).into()),
                }
            }
            Err(_) => Err(self.timed_out(ttl)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>> {
        self.link.call(SNAPSHOT, &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.link.call(VOTE, &rpc, option.hard_ttl()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(term: u64, index: u64) -> openraft::Entry<TypeConfig> {
        openraft::Entry { log_id: log_id(term, index), payload: openraft::EntryPayload::Blank }
    }

    fn log_id(term: u64, index: u64) -> LogId<u64> {
        LogId::new(openraft::CommittedLeaderId::new(term, 1), index)
    }

    /// An append of `indexes` after `prev`, by node 1 leading term 3.
    fn append(prev: Option<u64>, indexes: std::ops::RangeInclusive<u64>) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(3, 1),
            prev_log_id: prev.map(|i| log_id(3, i)),
            leader_commit: None,
            entries: indexes.map(|i| entry(3, i)).collect(),
        }
    }

    #[tokio::test]
    async fn an_earlier_appends_answer_serves_the_appends_it_covers_only() {
        let sent = SentAppend {
            vote: Vote::new_committed(3, 1),
            last: Some(log_id(3, 20)),
            answer: tokio::spawn(async { Ok(AppendEntriesResponse::Success) }),
        };
        let success: AppendResult = Ok(AppendEntriesResponse::Success);
        let answers = |answer: &AppendResult, rpc| sent.answers(answer, &rpc).map(|a| a.ok());
        // The follower holds 1..=20: an append within that is done, one beyond it done in part.
        assert_eq!(answers(&success, append(Some(4), 5..=20)), Some(Some(AppendEntriesResponse::Success)));
        assert_eq!(answers(&success, append(Some(10), 11..=15)), Some(Some(AppendEntriesResponse::Success)));
        assert_eq!(
            answers(&success, append(Some(4), 5..=30)),
            Some(Some(AppendEntriesResponse::PartialSuccess(Some(log_id(3, 20)))))
        );
        // Nothing new for an append starting at or past what it holds; heartbeats are sent.
        assert_eq!(answers(&success, append(Some(20), 21..=30)), None);
        let mut heartbeat = append(Some(20), 21..=21);
        heartbeat.entries.clear();
        assert_eq!(answers(&success, heartbeat), None);
        // A part of the earlier append: what it held.
        let part: AppendResult = Ok(AppendEntriesResponse::PartialSuccess(Some(log_id(3, 12))));
        assert_eq!(
            answers(&part, append(Some(4), 5..=20)),
            Some(Some(AppendEntriesResponse::PartialSuccess(Some(log_id(3, 12)))))
        );
        // A higher vote stays higher; a conflict or an error says nothing about another append.
        let higher: AppendResult = Ok(AppendEntriesResponse::HigherVote(Vote::new(4, 2)));
        assert_eq!(
            answers(&higher, append(Some(4), 5..=20)),
            Some(Some(AppendEntriesResponse::HigherVote(Vote::new(4, 2))))
        );
        assert_eq!(answers(&Ok(AppendEntriesResponse::Conflict), append(Some(4), 5..=20)), None);
        let failed: AppendResult = Err(NetworkError::new(&AnyError::error("gone")).into());
        assert_eq!(answers(&failed, append(Some(4), 5..=20)), None);
        // Another leader's append is sent.
        let mut other = append(Some(4), 5..=20);
        other.vote = Vote::new_committed(4, 2);
        assert_eq!(answers(&success, other), None);
    }

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
