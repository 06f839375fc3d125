//! The cluster port: Raft RPCs and writes forwarded to the leader. Only for other nodes: a
//! request without this cluster's token is refused (401) and logged, a body larger than a
//! batch of log entries can be is refused (413), one that does not decode is refused (400)
//! and logged. Clients never reach these endpoints: they listen on another port.

use super::Cluster;
use super::MemberStep;
use super::leadership::LeadershipStep;
use super::network::{GROUP_HEADER, NODE_HEADER, SETTINGS_HEADER, TOKEN_HEADER};
use crate::backup::gather::{self, ChunkRequest, PartRequest, PartWritten};
use crate::ids::UserId;
use crate::live::listing::LiveKill;
use crate::replication::{ForwardedMutation, ForwardedStatement, GroupId};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::sync::Arc;

pub(super) const APPEND: &str = "/cluster/v1/raft/append";
pub(super) const VOTE: &str = "/cluster/v1/raft/vote";
pub(super) const SNAPSHOT: &str = "/cluster/v1/raft/snapshot";
pub(super) const FORWARD_STATEMENT: &str = "/cluster/v1/forward/statement";
pub(super) const FORWARD_MUTATION: &str = "/cluster/v1/forward/mutation";
pub(super) const FORWARD_LOGIN: &str = "/cluster/v1/forward/login";
pub(super) const FORWARD_COMMAND: &str = "/cluster/v1/forward/command";
pub(super) const STREAM: &str = "/cluster/v1/stream";
pub(super) const READ_INDEX: &str = "/cluster/v1/read-index";
pub(super) const STATUS: &str = "/cluster/v1/status";
pub(super) const JOBS: &str = "/cluster/v1/jobs";
pub(super) const KILL_JOB: &str = "/cluster/v1/kill-job";
pub(super) const LIVE_QUERIES: &str = "/cluster/v1/live-queries";
pub(super) const KILL_LIVE_QUERY: &str = "/cluster/v1/kill-live-query";
/// On a data group's leader: write the group's part of a backup run on another node.
pub(super) const BACKUP_PART: &str = "/cluster/v1/backup/part";
pub(super) const BACKUP_CHUNK: &str = "/cluster/v1/backup/chunk";
pub(super) const BACKUP_DONE: &str = "/cluster/v1/backup/done";
pub(super) const MEMBERSHIP: &str = "/cluster/v1/membership";
pub(super) const LEADERSHIP: &str = "/cluster/v1/leadership";
/// A client's WebSocket session another node hands here (spread storage).
pub(super) const SESSION: &str = "/cluster/v1/session";
/// On a group's leader: the group's members as it sees them.
pub(super) const MEMBERS: &str = "/cluster/v1/members";

/// An append request carries at most 16 entries (openraft's `max_payload_entries`), each
/// at most `max_entry_bytes`; the rest of the request is small.
pub(super) fn router(cluster: Arc<Cluster>, max_entry_bytes: usize) -> Router {
    let body_limit = max_entry_bytes.saturating_mul(17).saturating_add(1024 * 1024);
    Router::new()
        .route(APPEND, post(append))
        .route(VOTE, post(vote))
        .route(SNAPSHOT, post(snapshot))
        .route(FORWARD_STATEMENT, post(forward_statement))
        .route(FORWARD_MUTATION, post(forward_mutation))
        .route(FORWARD_LOGIN, post(forward_login))
        .route(FORWARD_COMMAND, post(forward_command))
        .route(STREAM, post(stream_events))
        .route(READ_INDEX, post(read_index))
        .route(STATUS, post(status))
        .route(JOBS, post(jobs))
        .route(KILL_JOB, post(kill_job))
        .route(LIVE_QUERIES, post(live_queries))
        .route(KILL_LIVE_QUERY, post(kill_live_query))
        .route(BACKUP_PART, post(backup_part))
        .route(BACKUP_CHUNK, post(backup_chunk))
        .route(BACKUP_DONE, post(backup_done))
        .route(MEMBERSHIP, post(membership))
        .route(LEADERSHIP, post(leadership))
        .route(SESSION, axum::routing::get(session))
        .route(MEMBERS, post(members))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(cluster.clone(), authenticate))
        .with_state(cluster)
}

async fn authenticate(
    State(cluster): State<Arc<Cluster>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request.headers().get(TOKEN_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !cluster.token.verify(presented) {
        tracing::warn!(%peer, path = %request.uri().path(), "refused a cluster request without this cluster's token");
        return (StatusCode::UNAUTHORIZED, "not a node of this cluster").into_response();
    }
    let theirs = request.headers().get(SETTINGS_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("(none)");
    if theirs != cluster.settings.as_str() {
        let sender = request.headers().get(NODE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("?").to_string();
        let why = format!(
            "cluster settings differ: node {} runs with {}, node {sender} with {theirs}; start every node of a cluster \
             with the same cluster.data_groups, cluster.spread_storage and cluster.replicas",
            cluster.node_id,
            cluster.settings.as_str()
        );
        let mut refused = cluster.settings_refused.lock();
        if refused.len() > 64 {
            refused.clear();
        }
        let now = std::time::Instant::now();
        if refused.get(&sender).is_none_or(|at| now.duration_since(*at) > std::time::Duration::from_secs(60)) {
            tracing::error!(%peer, "refused node {sender}'s requests: {why}");
            refused.insert(sender, now);
        }
        return (StatusCode::CONFLICT, why).into_response();
    }
    next.run(request).await
}

/// Decodes a body; `None` (logged) if it is not the expected message.
fn decode<T: DeserializeOwned>(path: &str, body: &Bytes) -> Option<T> {
    serde_json::from_slice(body).inspect_err(|e| tracing::warn!(path, "refused a malformed cluster message: {e}")).ok()
}

fn malformed() -> Response {
    (StatusCode::BAD_REQUEST, "malformed message").into_response()
}

fn json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => ([(axum::http::header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The group a request names (its [`GROUP_HEADER`]), if this node has it.
fn group_of(cluster: &Cluster, headers: &HeaderMap) -> Option<GroupId> {
    let group = headers.get(GROUP_HEADER)?.to_str().ok()?.parse::<u32>().ok().map(GroupId)?;
    cluster.has_group(group).then_some(group)
}

fn unknown_group() -> Response {
    (StatusCode::BAD_REQUEST, "no such Raft group (are the nodes started with the same cluster.data_groups?)")
        .into_response()
}

async fn append(State(cluster): State<Arc<Cluster>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(group) = group_of(&cluster, &headers) else { return unknown_group() };
    crate::fault::pause(crate::fault::APPEND_SLOWLY).await;
    match decode(APPEND, &body) {
        Some(rpc) => json(&cluster.raft(group).append_entries(rpc).await),
        None => malformed(),
    }
}

async fn vote(State(cluster): State<Arc<Cluster>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(group) = group_of(&cluster, &headers) else { return unknown_group() };
    match decode(VOTE, &body) {
        Some(rpc) => json(&cluster.raft(group).vote(rpc).await),
        None => malformed(),
    }
}

async fn snapshot(State(cluster): State<Arc<Cluster>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(group) = group_of(&cluster, &headers) else { return unknown_group() };
    match decode(SNAPSHOT, &body) {
        Some(rpc) => json(&cluster.raft(group).install_snapshot(rpc).await),
        None => malformed(),
    }
}

/// A node that is not the leader does nothing and answers 421: the sender asks the leader.
/// 421, with the leader this node knows for `group` (JSON; `null` if none), for a node that
/// does not follow the group (see `spread`).
fn not_leader(cluster: &Cluster, group: GroupId) -> Response {
    (StatusCode::MISDIRECTED_REQUEST, axum::Json(cluster.leader_hint(group))).into_response()
}

async fn forward_statement(State(cluster): State<Arc<Cluster>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(group) = group_of(&cluster, &headers) else { return unknown_group() };
    let statement: ForwardedStatement = match decode(FORWARD_STATEMENT, &body) {
        Some(s) => s,
        None => return malformed(),
    };
    tracing::debug!(from = ?headers.get(NODE_HEADER), "forwarded statement");
    let leader = cluster.clone();
    let run = async move |db: Arc<crate::database::Database>| {
        if statement.read_after > 0 && !leader.applied_within(group, statement.read_after, leader.write_timeout()).await
        {
            return Err(crate::error::KalamError::Unavailable(format!(
                "the leader of group {} has not applied index {} in time; retry",
                group.0, statement.read_after
            )));
        }
        crate::sql::executor::execute_forwarded(&db, statement).await
    };
    match cluster.run_forwarded(group, run).await {
        Some(answer) => json(&answer),
        None => not_leader(&cluster, group),
    }
}

/// A client's WebSocket session from a node that does not store its user's group (the
/// group in the header): served here as if the client had connected here, once this node
/// stores the group; otherwise 421 with the leader this node knows. The client's frames
/// come as they were sent, its `auth` frame first.
async fn session(
    State(cluster): State<Arc<Cluster>>,
    headers: HeaderMap,
    ws: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    let Some(group) = group_of(&cluster, &headers) else { return unknown_group() };
    if !cluster.stores_group(group) {
        return not_leader(&cluster, group);
    }
    let db = match cluster.database() {
        Ok(db) => db,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    tracing::debug!(from = ?headers.get(NODE_HEADER), group = group.0, "a client session handed over");
    let max = db.config.live.max_message_bytes;
    ws.max_message_size(max).max_frame_size(max).on_upgrade(move |socket| async move {
        crate::api::ws::connection::serve(db, socket, crate::api::ws::connection::Arrival::HandedOver).await
    })
}

/// On a group's leader: its members, for `system.cluster` on a node that does not store it.
async fn members(State(cluster): State<Arc<Cluster>>, headers: HeaderMap) -> Response {
    let Some(group) = group_of(&cluster, &headers) else { return unknown_group() };
    let leader = cluster.clone();
    let run = async move |_db: Arc<crate::database::Database>| Ok(leader.members_of_group(group));
    match cluster.run_forwarded(group, run).await {
        Some(answer) => json(&answer),
        None => not_leader(&cluster, group),
    }
}

/// On a group's leader: the index a follower's linearizable read waits for.
async fn read_index(State(cluster): State<Arc<Cluster>>, headers: HeaderMap) -> Response {
    let Some(group) = group_of(&cluster, &headers) else { return unknown_group() };
    let leader = cluster.clone();
    let run = async move |_db: Arc<crate::database::Database>| leader.read_index_here(group).await;
    match cluster.run_forwarded(group, run).await {
        Some(answer) => json(&answer),
        None => not_leader(&cluster, group),
    }
}

/// This node's health, as `/v1/api/cluster/health` shows it: how far it has applied, and
/// whether its Raft has stopped.
async fn status(State(cluster): State<Arc<Cluster>>) -> Response {
    json(&cluster.node_health())
}

/// This node's jobs (`system.jobs` on another node shows them).
async fn jobs(State(cluster): State<Arc<Cluster>>) -> Response {
    match cluster.database() {
        Ok(db) => json(&db.jobs.list()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

/// What a node answers to another's `KILL JOB`.
#[derive(Debug, Serialize, serde::Deserialize)]
pub(super) enum KillAnswer {
    /// The job is this node's and is being cancelled.
    Cancelling,
    /// Not a job of this node.
    Unknown,
    /// This node's job, which cannot be cancelled (it has finished): why.
    Refused(String),
}

/// Cancels a job of this node, for `KILL JOB` run on another node (which checked the
/// caller's role).
async fn kill_job(State(cluster): State<Arc<Cluster>>, body: Bytes) -> Response {
    let Some(job_id) = decode::<String>(KILL_JOB, &body) else { return malformed() };
    let db = match cluster.database() {
        Ok(db) => db,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    let answer = match db.jobs.has(&job_id) {
        false => KillAnswer::Unknown,
        true => match db.jobs.kill(&job_id) {
            Ok(()) => KillAnswer::Cancelling,
            Err(e) => KillAnswer::Refused(e.public_message()),
        },
    };
    json(&answer)
}

/// The live queries this node serves (of one user, or all), for `system.live_queries` on
/// another node (which checked the caller's role).
async fn live_queries(State(cluster): State<Arc<Cluster>>, body: Bytes) -> Response {
    let Some(owner) = decode::<Option<UserId>>(LIVE_QUERIES, &body) else { return malformed() };
    match cluster.database() {
        Ok(db) => json(&db.live.describe(owner)),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

/// Ends a live query this node serves, for `KILL LIVE QUERY` run on another node (which
/// says whose live queries the caller may end); answers whether it did.
async fn kill_live_query(State(cluster): State<Arc<Cluster>>, body: Bytes) -> Response {
    let Some(kill) = decode::<LiveKill>(KILL_LIVE_QUERY, &body) else { return malformed() };
    match cluster.database() {
        Ok(db) => json(&db.live.kill(&kill)),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

/// Writes this group's part of a backup another node runs (see `backup::gather`); 421 if
/// this node does not lead the group.
async fn backup_part(State(cluster): State<Arc<Cluster>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(group) = group_of(&cluster, &headers) else { return unknown_group() };
    let Some(request) = decode::<PartRequest>(BACKUP_PART, &body) else { return malformed() };
    let node = cluster.node_id;
    let leader = cluster.clone();
    let run = async move |db: Arc<crate::database::Database>| {
        let part = gather::write_requested(&db, leader.as_ref(), group, &request).await?;
        Ok(PartWritten { node, part })
    };
    match cluster.run_forwarded(group, run).await {
        Some(answer) => json(&answer),
        None => not_leader(&cluster, group),
    }
}

/// A chunk of a file of a backup part this node wrote: the bytes themselves.
async fn backup_chunk(State(cluster): State<Arc<Cluster>>, body: Bytes) -> Response {
    let Some(chunk) = decode::<ChunkRequest>(BACKUP_CHUNK, &body) else { return malformed() };
    let db = match cluster.database() {
        Ok(db) => db,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    match gather::read_chunk(&db, chunk).await {
        Ok(bytes) => bytes.into_response(),
        Err(e) => (StatusCode::NOT_FOUND, e.public_message()).into_response(),
    }
}

/// The node that asked for a backup part has it (or gave up): it is removed.
async fn backup_done(State(cluster): State<Arc<Cluster>>, body: Bytes) -> Response {
    let Some(part) = decode::<String>(BACKUP_DONE, &body) else { return malformed() };
    let db = match cluster.database() {
        Ok(db) => db,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    match gather::remove_part(&db, &part).await {
        Ok(()) => json(&()),
        Err(e) => (StatusCode::BAD_REQUEST, e.public_message()).into_response(),
    }
}

async fn stream_events(State(cluster): State<Arc<Cluster>>, body: Bytes) -> Response {
    match decode(STREAM, &body) {
        Some(batch) => {
            cluster.take_stream_events(batch);
            StatusCode::NO_CONTENT.into_response()
        }
        None => malformed(),
    }
}

async fn forward_mutation(State(cluster): State<Arc<Cluster>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(group) = group_of(&cluster, &headers) else { return unknown_group() };
    let mutation: ForwardedMutation = match decode(FORWARD_MUTATION, &body) {
        Some(m) => m,
        None => return malformed(),
    };
    let principal = mutation.principal.into();
    let run = async |db: Arc<crate::database::Database>| {
        crate::api::ws::mutations::apply_here(&db, &principal, mutation.mutate).await
    };
    match cluster.run_forwarded(group, run).await {
        Some(answer) => json(&answer),
        None => not_leader(&cluster, group),
    }
}

/// On the leader: a login's outcome another node checked, into the log.
async fn forward_login(State(cluster): State<Arc<Cluster>>, body: Bytes) -> Response {
    let record: crate::auth::LoginRecord = match decode(FORWARD_LOGIN, &body) {
        Some(r) => r,
        None => return malformed(),
    };
    let leader = cluster.clone();
    let run = async move |_db: Arc<crate::database::Database>| leader.record_here(record).await;
    match cluster.run_forwarded(crate::replication::METADATA, run).await {
        Some(answer) => json(&answer),
        None => not_leader(&cluster, crate::replication::METADATA),
    }
}

/// On a group's leader: a command another node asks it to propose (only those a node may
/// hand on, such as a restore's: see `Command::forwardable`; the group must be the command's).
async fn forward_command(State(cluster): State<Arc<Cluster>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(group) = group_of(&cluster, &headers) else { return unknown_group() };
    let command: crate::replication::Command = match decode(FORWARD_COMMAND, &body) {
        Some(c) => c,
        None => return malformed(),
    };
    if !command.forwardable() || command.group(cluster.placement) != group {
        tracing::warn!(group = group.0, "refused a forwarded command that may not be forwarded to this group");
        return malformed();
    }
    let leader = cluster.clone();
    let run = async move |_db: Arc<crate::database::Database>| {
        crate::replication::Replication::propose(&*leader, command).await
    };
    match cluster.run_forwarded(group, run).await {
        Some(answer) => json(&answer),
        None => not_leader(&cluster, group),
    }
}

/// On a group's leader: a membership change the metadata group's leader asked for
/// (`ALTER CLUSTER` changes every group).
async fn membership(State(cluster): State<Arc<Cluster>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(group) = group_of(&cluster, &headers) else { return unknown_group() };
    let step: MemberStep = match decode(MEMBERSHIP, &body) {
        Some(s) => s,
        None => return malformed(),
    };
    let leader = cluster.clone();
    let run = async move |_db: Arc<crate::database::Database>| leader.change_group_members(group, step).await;
    match cluster.run_forwarded(group, run).await {
        Some(answer) => json(&answer),
        None => not_leader(&cluster, group),
    }
}

/// A step of a handover of a group's leadership its leader asks of this node.
async fn leadership(State(cluster): State<Arc<Cluster>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(group) = group_of(&cluster, &headers) else { return unknown_group() };
    let Some(step) = decode::<LeadershipStep>(LEADERSHIP, &body) else { return malformed() };
    match cluster.take_leadership_step(group, step).await {
        Ok(()) => json(&()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}
