//! What a cluster replicates, and the seam through which the SQL layer and the WebSocket
//! mutations reach it ([`Replication`]). With no cluster settings nothing is set here and
//! writes commit locally, as on the single node; `crate::cluster` implements the seam on
//! openraft.
//!
//! A write becomes one log entry, a [`Command`], applied in log order by every node:
//! - a data change is replicated as the rows the leader planned ([`ReplicatedCommit`]),
//!   never as SQL to run again, so that every replica writes the same rows whatever its
//!   clock, its budgets or its timing; the stamps come from the entry
//!   ([`crate::tables::Committer`]'s replicated stamp rule);
//! - a catalog statement (namespaces, tables, users, storages) is replicated as its SQL
//!   ([`ReplicatedStatement`]), which is deterministic given the catalog it runs on: ids come
//!   from the catalog's counters and times from the entry. Passwords travel hashed.

use crate::auth::Principal;
use crate::error::{KalamError, Result};
use crate::ids::{DataGroup, Partition, Placement, TableId, UserId};
use crate::live::listing::{LiveKill, LiveQueryInfo};
pub(crate) use crate::tables::MutationKey;
use crate::tables::RowOp;
use kalamdb_client_core::protocol::ws::{Mutate, MutateResult};
use kalamdb_client_core::protocol::{ErrorCode, QueryResult, Role};
pub(crate) use kalamdb_raft::GroupId;
use serde::{Deserialize, Serialize};

/// The Raft group of the catalog, users, storages and login records.
pub(crate) const METADATA: GroupId = GroupId(0);

/// What the other members answer a `KILL` (of a job or a live query) this node cannot do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KilledElsewhere {
    /// The one running it ended it.
    Killed,
    /// Every other member answered, and none knows it.
    Unknown,
    /// None that answered knows it; these members did not answer, and it may run there.
    Unanswered(Vec<u64>),
}

impl KilledElsewhere {
    /// No member that answered could do it: unknown, unless some (`unanswered`) did not answer.
    pub(crate) fn nowhere(unanswered: Vec<u64>) -> KilledElsewhere {
        match unanswered.is_empty() {
            true => KilledElsewhere::Unknown,
            false => KilledElsewhere::Unanswered(unanswered),
        }
    }

    /// The answer to `KILL {what}` (e.g. "job 'x'") when this node does not run it either.
    pub(crate) fn refusal(&self, what: &str) -> KalamError {
        match self {
            KilledElsewhere::Unanswered(nodes) => {
                let nodes: Vec<String> = nodes.iter().map(u64::to_string).collect();
                KalamError::Unavailable(format!(
                    "no node that answered runs {what}; node {} did not answer, and it may run there: retry",
                    nodes.join(", ")
                ))
            }
            KilledElsewhere::Killed | KilledElsewhere::Unknown => KalamError::Validation(format!("no {what}")),
        }
    }
}

/// The Raft group that replicates data group `group` (groups 1 to N).
pub(crate) fn raft_group(group: DataGroup) -> GroupId {
    GroupId(u32::from(group.0) + 1)
}

/// The Raft group of `table`'s partition `partition`.
pub(crate) fn group_of(placement: Placement, table: TableId, partition: Partition) -> GroupId {
    raft_group(placement.group_of(table, partition))
}

/// One entry of a group's log: a command, and how far the proposer had applied the
/// metadata group's log when it planned it. A data group applies an entry only once its
/// node has applied the metadata log that far, so that the tables and the schema versions
/// the entry names are known there (the groups' logs are not ordered with each other).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Proposal {
    pub command: Command,
    pub catalog_index: u64,
}

/// One entry of the replicated log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Command {
    Commit(ReplicatedCommit),
    Statement(ReplicatedStatement),
    /// A login's outcome for an existing account: every node counts every node's failures.
    Login(crate::auth::LoginRecord),
    /// A file the leader flushed to a shared storage (see [`ReplicatedFlush`]).
    Flush(ReplicatedFlush),
    /// A compaction of a partition on a shared storage (see [`ReplicatedCompaction`]).
    Compaction(ReplicatedCompaction),
    /// Replaced files the leader deleted from a shared storage (see [`DeletedFiles`]).
    DeletedFiles(DeletedFiles),
    /// A namespace restored from a backup whose files are on shared storages already (see
    /// [`ReplicatedRestore`]).
    Restore(ReplicatedRestore),
    /// A data group's row clock moved past restored rows (see [`AdvanceClock`]).
    AdvanceClock(AdvanceClock),
}

impl Command {
    /// The group whose log carries the command: the metadata group for catalog statements
    /// and logins, the data group of the partition it writes otherwise (a commit writes one
    /// group: the commit path refuses one that spans several).
    pub(crate) fn group(&self, placement: Placement) -> GroupId {
        let at = |table: TableId, partition: Partition| group_of(placement, table, partition);
        match self {
            Command::Statement(_) | Command::Login(_) | Command::Restore(_) => METADATA,
            Command::Commit(c) => c.writes.first().map_or(METADATA, |w| at(w.table, w.partition)),
            Command::Flush(f) => at(f.table, f.partition),
            Command::Compaction(c) => at(c.table, c.partition),
            Command::DeletedFiles(d) => at(d.table, d.partition),
            Command::AdvanceClock(a) => raft_group(a.group),
        }
    }

    /// Whether a node may hand the command to its group's leader to propose
    /// ([`Replication::propose_on_leader`]). The others are planned by the leader itself.
    pub(crate) fn forwardable(&self) -> bool {
        matches!(self, Command::Restore(_) | Command::AdvanceClock(_))
    }
}

/// RESTORE DATABASE in a cluster: the node running the restore has copied the backup's files
/// into the tables' shared storages; every node then registers the namespace and its tables
/// and records each partition's file list, as one write (`backup::apply_replicated_restore`).
/// The tables take the catalog's next ids there, which are the same on every node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReplicatedRestore {
    pub namespace: crate::schema::Namespace,
    pub tables: Vec<RestoredTable>,
}

/// One table of a [`ReplicatedRestore`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RestoredTable {
    pub table: crate::schema::TableDef,
    /// Every schema version, oldest first.
    pub schema_versions: Vec<crate::schema::SchemaVersion>,
    /// Each partition's files, as its manifest lists them (its `table_id` becomes the id the
    /// table takes when the entry is applied).
    pub partitions: Vec<(Partition, crate::cold::manifest::Manifest)>,
}

/// Moves data group `group`'s row clock past `after`, at one point of the group's log on
/// every replica, so that a write stamped later in that log is newer than every restored row
/// (and every replica stamps it alike).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AdvanceClock {
    pub group: DataGroup,
    pub after: i64,
}

/// The leader's compaction of a partition on a shared storage: `file` (absent when nothing
/// was kept) replaces every file the partition listed at `base` (its manifest's
/// `next_batch` then), which are `replaced`. Every node lists `file` instead and keeps the
/// replaced files as obsolete, readable by listings taken before, until the leader deletes
/// them ([`DeletedFiles`]). Refused, like a flush, if the partition's files changed since.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReplicatedCompaction {
    pub table: TableId,
    pub partition: Partition,
    pub base: u64,
    pub replaced: Vec<String>,
    pub file: Option<crate::cold::manifest::FileEntry>,
    /// `_updated` of the newest tombstone purged so far (the manifest's `purged_through`).
    pub purged_through: i64,
}

/// Obsolete files of a partition on a shared storage that the leader deleted, once every
/// node's reads had had `storage.replaced_file_grace_secs` to finish: every node forgets them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeletedFiles {
    pub table: TableId,
    pub partition: Partition,
    pub files: Vec<String>,
}

/// A partition's hot rows flushed by the leader into one file on a shared storage. Every
/// node applies it alike ([`crate::flush::apply_replicated`]): it lists the file and removes
/// the hot rows the file holds — every hot version of the partition with `_updated` up to
/// `through`, since the leader flushed all it had at one point of the log and later writes
/// are stamped later. Refused (the file is then not listed, and the leader deletes it) unless
/// the partition still lists what the leader read: `base` is the manifest's `next_batch` then.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReplicatedFlush {
    pub table: TableId,
    pub partition: Partition,
    pub base: u64,
    pub file: crate::cold::manifest::FileEntry,
    pub through: i64,
}

/// The writes of one statement or one mutation message, planned by the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReplicatedCommit {
    pub writes: Vec<ReplicatedWrite>,
    /// The leader's wall clock when it proposed the entry: the earliest first `_updated`.
    pub proposed_at: i64,
    /// A client mutation's dedupe record, written in the same batch as its rows on every
    /// replica, so exactly-once holds across a failover.
    pub mutation: Option<MutationKey>,
}

/// The ops on one table partition, planned on `schema_version` of the table. A replica
/// whose catalog holds another version at that point of the log refuses the write
/// ([`KalamError::SchemaChanged`]), and the leader plans it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReplicatedWrite {
    pub table: TableId,
    pub schema_version: u32,
    pub partition: Partition,
    pub ops: Vec<RowOp>,
}

/// A catalog statement, run by every replica as `principal` at time `at`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReplicatedStatement {
    /// The statement printed back to SQL; a password in it is replaced by `''`.
    pub sql: String,
    /// The hash of the password the statement sets, computed once by the leader.
    pub password_hash: Option<String>,
    pub principal: WirePrincipal,
    pub namespace: Option<String>,
    pub at: i64,
}

/// Who a replicated or forwarded statement runs as.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WirePrincipal {
    pub user_id: UserId,
    pub username: String,
    pub role: Role,
}

impl From<&Principal> for WirePrincipal {
    fn from(p: &Principal) -> Self {
        WirePrincipal { user_id: p.user_id, username: p.username.clone(), role: p.role }
    }
}

impl From<WirePrincipal> for Principal {
    fn from(p: WirePrincipal) -> Self {
        Principal { user_id: p.user_id, username: p.username, role: p.role }
    }
}

/// What applying an entry produced, handed back to the node that proposed it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Outcome {
    /// Entries that are not ours (openraft's blank and membership entries).
    Nothing,
    Committed(crate::tables::Committed),
    Statement(QueryResult),
}

/// An error as it crosses between nodes: a client-facing code and message (internal details
/// stay in the log of the node where they happened).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Failure {
    /// The write was planned on an older table definition: plan it again.
    SchemaChanged(String),
    Error {
        code: ErrorCode,
        message: String,
    },
}

impl From<&KalamError> for Failure {
    fn from(e: &KalamError) -> Self {
        match e {
            KalamError::SchemaChanged(t) => Failure::SchemaChanged(t.clone()),
            e => Failure::Error { code: e.code(), message: e.public_message() },
        }
    }
}

impl From<Failure> for KalamError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::SchemaChanged(t) => KalamError::SchemaChanged(t),
            Failure::Error { code: ErrorCode::Unavailable, message } => KalamError::Unavailable(message),
            Failure::Error { code, message } => KalamError::Remote { code, message },
        }
    }
}

/// STREAM events the leader took, relayed to the other nodes for their subscribers
/// (STREAM tables are not replicated through the log: they live in memory).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StreamEvents {
    pub table: TableId,
    pub schema_version: u32,
    pub partition: Partition,
    pub events: Vec<crate::storage::row_codec::StoredRow>,
}

/// A write statement a follower hands to the leader, which plans and proposes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ForwardedStatement {
    pub sql: String,
    pub params: Vec<serde_json::Value>,
    pub principal: WirePrincipal,
    pub namespace: Option<String>,
    /// A membership change, which waits for a new node to catch up: the follower waits
    /// longer for its answer.
    #[serde(default)]
    pub membership: bool,
    /// The index of the group's log the leader must have applied before it runs the
    /// statement: the last write the sender forwarded there, for a group the sender does
    /// not store (so that its client reads its own writes; see `cluster::spread`).
    #[serde(default)]
    pub read_after: u64,
}

/// A client's mutation message a follower hands to the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ForwardedMutation {
    pub mutate: Mutate,
    pub principal: WirePrincipal,
}

/// The leader's answer to a forwarded request, and the index of the group's log the
/// follower must apply before it answers its client (so that the client reads its own
/// write there).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Forwarded<T> {
    pub result: std::result::Result<T, Failure>,
    pub applied: u64,
}

/// How far a node has applied each group's log, by group (the metadata group first): what
/// a client carries from one answer to its next request, on any node, to read what it saw
/// or wrote (`x-kalamdb-applied-index`, `a,b,c,...`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct AppliedPosition(pub Vec<u64>);

impl std::fmt::Display for AppliedPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, index) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{index}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for AppliedPosition {
    type Err = KalamError;

    /// At most one index per group ([`crate::ids::Placement::MAX_GROUPS`] data groups and
    /// the metadata group); a shorter list leaves the other groups unconstrained.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || KalamError::InvalidRequest("a position is log indexes separated by commas".into());
        let indexes = s.split(',').map(|i| i.trim().parse::<u64>().map_err(|_| bad())).collect::<Result<Vec<_>>>()?;
        if indexes.len() > usize::from(Placement::MAX_GROUPS) + 1 {
            return Err(bad());
        }
        Ok(AppliedPosition(indexes))
    }
}

/// A socket to another node's cluster port, plain or TLS.
pub(crate) trait NodeIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> NodeIo for T {}

/// A client's WebSocket session opened on the node that stores its user's group.
pub(crate) type Upstream = tokio_tungstenite::WebSocketStream<Box<dyn NodeIo>>;

/// A cluster as the layers that write see it (implemented by `crate::cluster`).
#[async_trait::async_trait]
pub(crate) trait Replication: Send + Sync {
    /// The group whose log carries the writes of `table`'s partition `partition`.
    fn group_of(&self, table: TableId, partition: Partition) -> GroupId;
    /// Whether this node leads `group` (then its writes are planned and proposed here).
    fn leads(&self, group: GroupId) -> bool;
    /// Whether this node stores `group` and answers reads of it: every group, unless the
    /// cluster spreads storage (`cluster.spread_storage`).
    fn stores(&self, group: GroupId) -> bool;
    /// Opens a client's WebSocket session on a node that stores `group` (for a client
    /// whose user's group this node does not store).
    async fn open_session(&self, group: GroupId) -> Result<Upstream>;
    /// The node leading `group`, as far as this node knows.
    fn leader_of(&self, group: GroupId) -> Option<u64>;
    /// Appends `command` to its group's log (this node must lead the group) and waits
    /// until it is committed and applied here; returns what applying it produced.
    async fn propose(&self, command: Command) -> Result<Outcome>;
    /// [`Replication::propose`] on the leader of the command's group, wherever it is (only
    /// for a [`Command::forwardable`] command); waits until this node has applied it too
    /// (for a group this node stores).
    async fn propose_on_leader(&self, command: Command) -> Result<Outcome>;
    /// Runs a write statement on the leader of `group` and waits until this node has
    /// applied it; `None` if this node leads the group (it runs the statement itself).
    async fn forward_statement(&self, group: GroupId, statement: &ForwardedStatement) -> Result<Option<QueryResult>>;
    /// Applies a mutation message on the leader of `group` and waits until this node has
    /// applied it; `None` if this node leads the group.
    async fn forward_mutation(&self, group: GroupId, mutation: &ForwardedMutation) -> Result<Option<MutateResult>>;
    /// On a group's leader: hands STREAM events to the other nodes, in order, without
    /// waiting (dropped for a node that cannot keep up: stream events are ephemeral).
    fn relay_stream(&self, events: StreamEvents);
    /// How far this node has applied each group's log.
    fn applied_position(&self) -> AppliedPosition;
    /// Waits until this node has applied every write committed before the call, in every
    /// group, as each group's leader confirms with a majority (openraft's read index): a
    /// read after it is linearizable. `UNAVAILABLE` if a group's leader with a majority does
    /// not answer in time.
    async fn read_barrier(&self) -> Result<()>;
    /// [`Replication::read_barrier`] for the metadata group alone: afterwards this node's
    /// catalog holds every table created before the call (a write naming a table this node
    /// does not know yet waits for it, rather than go to the wrong group's leader).
    async fn catalog_barrier(&self) -> Result<()>;
    /// [`Replication::read_barrier`] for one group: a read of its partitions afterwards sees
    /// every write to them acknowledged before the call, through whichever node.
    async fn group_barrier(&self, group: GroupId) -> Result<()>;
    /// Waits (a few seconds at most) until this node has applied `position`; `false` if it
    /// has not by then.
    async fn wait_applied(&self, position: &AppliedPosition) -> bool;
    /// This node's view of the cluster, for `/v1/api/cluster/health`.
    fn health(&self) -> serde_json::Value;
    /// The members of every group as this node sees them (`system.cluster`); those of a
    /// group this node does not store as its leader sees them (left out if it does not
    /// answer within a couple of seconds).
    async fn members(&self) -> Vec<Member>;
    /// On the metadata group's leader: adds a node to every group (it catches up as a
    /// learner first, then votes) or removes one. Answers what was done.
    async fn change_members(&self, change: MembershipChange) -> Result<String>;
    /// The jobs of the other members (each runs its own flushes), by node id; a node that
    /// does not answer within a couple of seconds is left out.
    async fn jobs_elsewhere(&self) -> Vec<(u64, Vec<crate::jobs::Job>)>;
    /// Asks the other members to cancel job `job_id` (`KILL JOB` on any node finds the job
    /// where it runs); an error if the one running it refuses.
    async fn kill_job_elsewhere(&self, job_id: &str) -> Result<KilledElsewhere>;
    /// The live queries the other members serve (of `owner` only, or all), by node id; a
    /// node that does not answer within a couple of seconds is left out.
    async fn live_queries_elsewhere(&self, owner: Option<UserId>) -> Vec<(u64, Vec<LiveQueryInfo>)>;
    /// Asks the other members to end a live query.
    async fn kill_live_query_elsewhere(&self, kill: &LiveKill) -> KilledElsewhere;
    /// The data groups this node does not store (spread storage); none otherwise.
    fn groups_elsewhere(&self) -> Vec<GroupId>;
    /// Has the leader of `group` write its part of a backup: the backup layer's request and
    /// answer (`backup::gather`), which this layer carries as JSON without reading them.
    async fn backup_part(&self, group: GroupId, request: serde_json::Value) -> Result<serde_json::Value>;
    /// Up to a chunk of the file `path` of backup part `part` on node `node`, from `offset`.
    async fn backup_chunk(&self, node: u64, part: &str, path: &str, offset: u64) -> Result<Vec<u8>>;
    /// Tells node `node` that its backup part `part` is fetched (or abandoned): it removes it.
    async fn backup_part_done(&self, node: u64, part: &str);
}

/// Runs a write on the leader of `group`: `here` while this node leads it, else `there`
/// (which forwards it, answering `None` if this node turned out to lead). A write `here`
/// that finds leadership moved before it entered the log ([`KalamError::NotLeader`]: nothing
/// applied) goes to the new leader, so a failover or a handover of leadership is not the
/// client's error. Gives up with `UNAVAILABLE` after [`LEADER_PATIENCE`].
pub(crate) async fn on_leader<T, Here, HereFut, There, ThereFut>(
    replication: &dyn Replication,
    group: GroupId,
    mut here: Here,
    mut there: There,
) -> Result<T>
where
    Here: FnMut() -> HereFut,
    HereFut: std::future::Future<Output = Result<T>>,
    There: FnMut() -> ThereFut,
    ThereFut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + LEADER_PATIENCE;
    loop {
        if replication.leads(group) {
            match here().await {
                // This node's view of who leads catches up within a heartbeat or so.
                Err(KalamError::NotLeader(_)) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                other => return other,
            }
        } else if let Some(answer) = there().await? {
            return Ok(answer);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(KalamError::Unavailable(format!("group {} has had no stable leader; retry", group.0)));
        }
    }
}

/// How long [`on_leader`] keeps following a group's leadership as it moves.
pub(crate) const LEADER_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// A change of the cluster's members (`ALTER CLUSTER`).
#[derive(Debug, Clone)]
pub(crate) enum MembershipChange {
    Add { id: u64, address: String },
    Remove { id: u64 },
}

/// One member of one group as a node sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Member {
    /// The Raft group (0: metadata; 1 to N: the data groups).
    pub group: GroupId,
    pub node_id: u64,
    /// Its cluster address.
    pub address: String,
    /// Votes (a learner catching up does not).
    pub voter: bool,
    pub leader: bool,
    /// The node answering.
    pub this_node: bool,
    /// The answering node's term.
    pub term: u64,
    /// The node's last log index: its own for this node; as acknowledged to the leader for
    /// the others when this node leads; unknown otherwise.
    pub log_index: Option<u64>,
    /// The answering node's last applied index (on its own row).
    pub applied_index: Option<u64>,
    /// Entries the node is behind the leader (known on the leader).
    pub lag: Option<u64>,
    /// The last log index in the answering node's latest snapshot (on its own row).
    pub snapshot_index: Option<u64>,
    /// The answering node's log is purged up to this index (on its own row).
    pub purged_index: Option<u64>,
    /// How far the log is committed (on the leader's own row; others do not know it).
    pub committed_index: Option<u64>,
    /// What is wrong with the node, as the answering node knows it: on its own row, a failed
    /// snapshot; on another's, that its Raft answered it has stopped.
    pub problem: Option<String>,
}
