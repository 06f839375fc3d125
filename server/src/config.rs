//! Server configuration: built-in defaults, overridden by a TOML file (`--config`), then
//! by `KALAMDB_*` environment variables, then by command-line flags.

use crate::error::{KalamError, Result};
use clap::Parser;
use kalamdb_client_core::protocol::Role;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Command line of `kalamdb-server`. Every flag also reads the environment variable named
/// in its help; flags win over the environment, which wins over the config file.
#[derive(Debug, Parser, Default)]
#[command(
    name = "kalamdb-server",
    version,
    about = "KalamDB: per-user SQL tables with live queries and offline sync.",
    long_about = "KalamDB server. Stores data under --data-dir (RocksDB) and serves SQL over HTTP and \
live queries over WebSocket on --listen.\n\nOn first start, when no users exist, it creates \
the 'root' account (role system). Its password is taken from KALAMDB_ROOT_PASSWORD if set; \
otherwise a random one is generated and written to <data-dir>/root-password.txt (mode 0600). \
The password is never logged."
)]
pub struct Cli {
    /// TOML config file (sections [server], [auth], [limits], [storage], [live], [cluster], [admin]; see docs/configuration.md).
    #[arg(long, short = 'c', env = "KALAMDB_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]. Use 0.0.0.0:PORT to accept remote clients.
    #[arg(long, env = "KALAMDB_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// HTTPS and WSS on the client port: the server's certificate chain (PEM), with --tls-key.
    #[arg(long, env = "KALAMDB_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "KALAMDB_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Data directory [default: ./data].
    #[arg(long, env = "KALAMDB_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Secret for signing JWTs. Default: generated on first start and kept in <data-dir>/jwt-secret.
    #[arg(long, env = "KALAMDB_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Key that signs backup manifests; a server restores only backups signed with its key.
    /// Default: generated on first start and kept in <data-dir>/backup-key.
    #[arg(long, env = "KALAMDB_BACKUP_KEY", hide_env_values = true)]
    pub backup_key: Option<String>,
    /// bcrypt cost for password hashes (4..=31) [default: 12].
    #[arg(long, env = "KALAMDB_BCRYPT_COST")]
    pub bcrypt_cost: Option<u32>,
    /// fsync the write-ahead log on every commit (survives power loss, slower) [default: false].
    #[arg(long, env = "KALAMDB_SYNC_WRITES")]
    pub sync_writes: Option<bool>,
    /// Seconds between checks for partitions due for tombstone purge or compaction
    /// [default: 300].
    #[arg(long, env = "KALAMDB_CLEANUP_INTERVAL_SECS")]
    pub cleanup_interval_secs: Option<u64>,
    /// Log filter, e.g. `info` or `kalamdb_server=debug` [default: info].
    #[arg(long, env = "KALAMDB_LOG")]
    pub log: Option<String>,
    /// Browser origins allowed to call the HTTP API, comma-separated (`https://app.example.com`,
    /// or `*` for any) [default: none — same-origin only].
    #[arg(long, env = "KALAMDB_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Option<Vec<String>>,
    /// Cluster mode: this node's id (1..=1023). Without it the server is a single node.
    #[arg(long, env = "KALAMDB_NODE_ID")]
    pub node_id: Option<u64>,
    /// Cluster mode: the address this node listens on for other nodes (never for clients).
    #[arg(long, env = "KALAMDB_CLUSTER_LISTEN")]
    pub cluster_listen: Option<SocketAddr>,
    /// Cluster mode: every node, this one included, as `id=host:port` (their cluster
    /// addresses), comma-separated.
    #[arg(long, env = "KALAMDB_CLUSTER_PEERS", value_delimiter = ',')]
    pub cluster_peers: Option<Vec<String>>,
    /// Cluster mode: create the cluster from --cluster-peers. Give it to one node, once;
    /// a node whose log is already initialised ignores it. The shared secret nodes
    /// authenticate each other with is read from KALAMDB_CLUSTER_SECRET only (never a flag).
    #[arg(long)]
    pub cluster_bootstrap: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[derive(Default)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub storage: StorageConfig,
    pub live: LiveConfig,
    pub cluster: ClusterConfig,
    pub admin: AdminConfig,
}

/// The admin console at `/admin` (see docs/admin.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Serve the console; when off, `/admin` is an unknown path like any other.
    pub enabled: bool,
    /// Roles that may sign in to the console. Its data still goes through the SQL API and the
    /// WebSocket, which check every statement against the caller's role.
    pub roles: Vec<Role>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { enabled: true, roles: vec![Role::Dba, Role::System] }
    }
}

/// Cluster mode (see docs/cluster.md). Off unless `node_id` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    pub node_id: Option<u64>,
    /// Where other nodes reach this one. Not the client port; loopback unless told otherwise.
    pub listen: Option<SocketAddr>,
    /// Every node as `id=host:port`.
    pub peers: Vec<String>,
    /// Create the cluster from `peers` if this node's log is empty (one node, once).
    pub bootstrap: bool,
    /// Shared by all nodes (at least 32 characters); better set with KALAMDB_CLUSTER_SECRET.
    pub secret: Option<String>,
    /// Milliseconds between the leader's heartbeats.
    pub heartbeat_ms: u64,
    /// A follower that hears no leader for a random time in this range starts an election.
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// The largest replicated write (one statement's or mutation message's rows, encoded).
    pub max_entry_bytes: usize,
    /// How long a write waits for its log entry to commit before it is answered UNAVAILABLE.
    pub write_timeout_ms: u64,
    /// A snapshot of the node's data is taken after this many log entries; the log before it
    /// is then purged (all but `snapshot_keep_entries`). A node too far behind gets the
    /// snapshot instead of the entries.
    pub snapshot_every_entries: u64,
    /// Log entries kept before the last snapshot, so that a node briefly away catches up from
    /// the log rather than the whole snapshot.
    pub snapshot_keep_entries: u64,
    /// This node's certificate chain (PEM) for mutual TLS on the cluster port; with
    /// `tls_key` and `tls_ca`, or none of the three (plain HTTP, token only).
    pub tls_cert: Option<PathBuf>,
    /// This node's private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// The CA (PEM) that signs every node's certificate; the only one trusted.
    pub tls_ca: Option<PathBuf>,
    /// How many data groups (Raft groups) USER partitions and SHARED tables are spread
    /// across, besides the metadata group. Fixed when the cluster is created: every node
    /// must be started with the same number.
    pub data_groups: u16,
    /// Hand each data group's leadership to its preferred node (spread evenly over the
    /// voters) once that node is caught up. Off: each group keeps whichever leader its
    /// elections chose.
    pub balance_leaders: bool,
    /// How many members vote in each data group (its replicas that hold its elections and
    /// majority; the other members are learners that apply its log). Read by each group's
    /// leader when the members change: set it alike on every node. 1–9.
    pub replicas: usize,
    /// Each node stores only the data groups it votes in (`replicas` nodes per group) instead
    /// of every group, so that storage and the work of applying writes spread as the cluster
    /// grows; SHARED tables are then all in one group that every node stores, and a node
    /// hands a statement or WebSocket session of a user whose group it does not store to a
    /// node that does. Fixed when the cluster is created, like `data_groups`.
    pub spread_storage: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: None,
            listen: None,
            peers: Vec::new(),
            bootstrap: false,
            secret: None,
            heartbeat_ms: 100,
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 1000,
            max_entry_bytes: 4 * 1024 * 1024,
            write_timeout_ms: 10_000,
            snapshot_every_entries: 100_000,
            snapshot_keep_entries: 10_000,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            data_groups: 8,
            balance_leaders: true,
            replicas: 3,
            spread_storage: false,
        }
    }
}

impl ClusterConfig {
    /// Where USER partitions and SHARED tables go: the data groups of a cluster, or the one
    /// group of a single node.
    pub(crate) fn placement(&self) -> Result<crate::ids::Placement> {
        match (self.enabled(), self.spread_storage) {
            (true, true) => crate::ids::Placement::with_shared_apart(self.data_groups),
            (true, false) => crate::ids::Placement::new(self.data_groups),
            (false, _) => Ok(crate::ids::Placement::SINGLE),
        }
    }

    /// Whether this server is a node of a cluster.
    pub fn enabled(&self) -> bool {
        self.node_id.is_some()
    }

    /// The peers as `(id, address)`.
    pub fn peer_addresses(&self) -> Result<Vec<(u64, String)>> {
        self.peers
            .iter()
            .map(|p| {
                let (id, addr) = p
                    .split_once('=')
                    .ok_or_else(|| KalamError::InvalidRequest(format!("cluster.peers: '{p}' is not id=host:port")))?;
                let id: u64 = id
                    .trim()
                    .parse()
                    .map_err(|_| KalamError::InvalidRequest(format!("cluster.peers: '{id}' is not a node id")))?;
                Ok((id, addr.trim().to_string()))
            })
            .collect()
    }

    fn validate(&self) -> Result<()> {
        let Some(node_id) = self.node_id else { return Ok(()) };
        let invalid = |m: String| Err(KalamError::InvalidRequest(m));
        if !(1..=1023).contains(&node_id) {
            return invalid(format!("cluster.node_id must be between 1 and 1023, got {node_id}"));
        }
        if self.listen.is_none() {
            return invalid("cluster mode needs cluster.listen (--cluster-listen)".into());
        }
        match &self.secret {
            Some(s) if s.len() >= 32 => {}
            _ => return invalid("cluster mode needs KALAMDB_CLUSTER_SECRET (at least 32 characters)".into()),
        }
        let tls = [&self.tls_cert, &self.tls_key, &self.tls_ca].iter().filter(|p| p.is_some()).count();
        if tls != 0 && tls != 3 {
            return invalid("cluster TLS needs all of cluster.tls_cert, tls_key and tls_ca".into());
        }
        self.placement()
            .map_err(|e| KalamError::InvalidRequest(format!("cluster.data_groups: {}", e.public_message())))?;
        let peers = self.peer_addresses()?;
        if !peers.iter().any(|(id, _)| *id == node_id) {
            return invalid(format!("cluster.peers must list this node ({node_id}) too"));
        }
        if self.heartbeat_ms == 0
            || self.election_timeout_min_ms <= self.heartbeat_ms
            || self.election_timeout_max_ms <= self.election_timeout_min_ms
        {
            return invalid(
                "cluster: need 0 < heartbeat_ms < election_timeout_min_ms < election_timeout_max_ms".into(),
            );
        }
        if !(1..=9).contains(&self.replicas) {
            return invalid(format!("cluster.replicas must be 1-9, not {}", self.replicas));
        }
        if self.max_entry_bytes == 0 || self.write_timeout_ms == 0 || self.snapshot_every_entries == 0 {
            return invalid(
                "cluster.max_entry_bytes, cluster.write_timeout_ms and cluster.snapshot_every_entries must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Limits of the WebSocket endpoint (`/v1/ws`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveConfig {
    pub max_subscriptions_per_connection: usize,
    pub max_message_bytes: usize,
    /// Sustained frames per second a client may send (bursts up to twice that).
    pub max_messages_per_second: u32,
    /// Frames queued for a connection before it counts as too slow and is closed.
    pub send_queue: usize,
    pub heartbeat_secs: u64,
    /// A connection silent for this long is closed.
    pub idle_timeout_secs: u64,
    /// Time allowed for the first `auth` frame.
    pub auth_timeout_secs: u64,
    /// Open connections of one user; more are refused (`RATE_LIMITED`) at sign-in.
    pub max_connections_per_user: usize,
    /// CPU time the subscriptions sharing one filter may spend evaluating it, per second on
    /// average (bursts up to ten times that); past it they end with `KILLED`.
    pub filter_budget_ms: u64,
    /// Changes queued for one filter before its subscribers count as too slow.
    pub filter_queue: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            max_subscriptions_per_connection: 100,
            max_message_bytes: 1024 * 1024,
            max_messages_per_second: 200,
            send_queue: 8192,
            heartbeat_secs: 15,
            idle_timeout_secs: 60,
            auth_timeout_secs: 10,
            max_connections_per_user: 32,
            filter_budget_ms: 200,
            filter_queue: 10_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub log: String,
    /// Origins allowed by CORS (`*` = any). Empty: no CORS headers, so browsers only allow
    /// same-origin pages. WebSocket upgrades are not subject to CORS; `/v1/ws` authenticates
    /// with a token in band.
    pub cors_origins: Vec<String>,
    /// Open client connections (HTTP and WebSocket) at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Seconds a connection may take to send a request's headers before it is closed
    /// (clients trickling headers cannot hold connections open).
    pub header_read_timeout_secs: u64,
    /// The server's certificate chain (PEM) for HTTPS and WSS on the client port, with
    /// `tls_key`; without both, plain HTTP (put a TLS proxy in front, or keep to loopback).
    pub tls_cert: Option<PathBuf>,
    /// The server's private key (PEM).
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 secret; `None` means generate one into the data dir on first start.
    pub jwt_secret: Option<String>,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    pub bcrypt_cost: u32,
    /// Failed logins in a row before the account is locked.
    pub max_failed_logins: u32,
    pub lockout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_body_bytes: usize,
    pub max_sql_bytes: usize,
    pub max_statements: usize,
    pub max_params: usize,
    pub max_result_rows: usize,
    /// Size of one response body (the JSON of all results of a request).
    pub max_response_bytes: usize,
    /// Memory all running statements together may use (sorts, joins, aggregates, function
    /// outputs).
    pub query_memory_bytes: usize,
    /// Memory one statement may use.
    pub statement_memory_bytes: usize,
    /// Memory all statements and live filters of one user may use together.
    pub user_memory_bytes: usize,
    /// Memory kept apart from `query_memory_bytes` for users who use little (under 32 MiB),
    /// so that heavy users filling the shared pool do not stop everyone's queries.
    pub reserved_memory_bytes: usize,
    /// Largest value (string, binary, list) a function may produce.
    pub max_value_bytes: usize,
    /// A request running longer than this (parsing, planning, executing and serializing all
    /// its statements) is cancelled.
    pub query_timeout_secs: u64,
    /// Requests (and WebSocket mutations) of one user that run at once; more wait.
    pub statements_per_user: usize,
    /// Requests of one user that may wait for a turn; more are refused with 429.
    pub queued_statements_per_user: usize,
    /// Statements and subscription filters that compute at once (CPU slots of the fair
    /// scheduler; the query runtime has one thread more); 0 means one per CPU.
    pub query_threads: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// fsync the RocksDB WAL on every commit. Off by default: every commit is still written
    /// to the WAL before it is acknowledged, so a crashed or killed process loses nothing;
    /// only an OS crash or power loss can lose the last moments of writes.
    pub sync_writes: bool,
    /// Seconds between checks for partitions due for cleanup (expired tombstones, too many
    /// files).
    pub cleanup_interval_secs: u64,
    /// In a cluster: seconds a file a compaction replaced stays on a shared storage before the
    /// leader deletes it, so that reads on nodes still using the older listing finish first.
    pub replaced_file_grace_secs: u64,
    /// Key that signs backup manifests (at least 32 characters); `None` means generate one
    /// into the data dir on first start. Restoring a backup needs the key that made it.
    pub backup_key: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            log: "info".into(),
            cors_origins: Vec::new(),
            max_connections: 10_000,
            header_read_timeout_secs: 10,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: None,
            access_token_ttl_secs: 3600,
            refresh_token_ttl_secs: 7 * 24 * 3600,
            bcrypt_cost: 12,
            max_failed_logins: 5,
            lockout_secs: 300,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: 1024 * 1024,
            max_sql_bytes: 256 * 1024,
            max_statements: 100,
            max_params: 1000,
            max_result_rows: 100_000,
            max_response_bytes: 64 * 1024 * 1024,
            query_memory_bytes: 1024 * 1024 * 1024,
            statement_memory_bytes: 256 * 1024 * 1024,
            user_memory_bytes: 512 * 1024 * 1024,
            reserved_memory_bytes: 128 * 1024 * 1024,
            max_value_bytes: 16 * 1024 * 1024,
            query_timeout_secs: 60,
            statements_per_user: 4,
            queued_statements_per_user: 64,
            query_threads: 0,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            sync_writes: false,
            cleanup_interval_secs: 300,
            replaced_file_grace_secs: 900,
            backup_key: None,
        }
    }
}

impl Config {
    /// Defaults, then the TOML file named by `--config` (if any), then flags/environment.
    pub fn load(cli: &Cli) -> Result<Config> {
        let mut config = match &cli.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(v) = cli.listen {
            config.server.listen = v;
        }
        if let Some(v) = &cli.tls_cert {
            config.server.tls_cert = Some(v.clone());
        }
        if let Some(v) = &cli.tls_key {
            config.server.tls_key = Some(v.clone());
        }
        if let Some(v) = &cli.data_dir {
            config.server.data_dir = v.clone();
        }
        if let Some(v) = &cli.log {
            config.server.log = v.clone();
        }
        if let Some(v) = &cli.jwt_secret {
            config.auth.jwt_secret = Some(v.clone());
        }
        if let Some(v) = &cli.backup_key {
            config.storage.backup_key = Some(v.clone());
        }
        if let Some(v) = cli.bcrypt_cost {
            config.auth.bcrypt_cost = v;
        }
        if let Some(v) = cli.sync_writes {
            config.storage.sync_writes = v;
        }
        if let Some(v) = cli.cleanup_interval_secs {
            config.storage.cleanup_interval_secs = v;
        }
        if let Some(v) = &cli.cors_origins {
            config.server.cors_origins = v.iter().map(|o| o.trim().to_string()).filter(|o| !o.is_empty()).collect();
        }
        if let Some(v) = cli.node_id {
            config.cluster.node_id = Some(v);
        }
        if let Some(v) = cli.cluster_listen {
            config.cluster.listen = Some(v);
        }
        if let Some(v) = &cli.cluster_peers {
            config.cluster.peers = v.iter().map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect();
        }
        if cli.cluster_bootstrap {
            config.cluster.bootstrap = true;
        }
        if let Ok(secret) = std::env::var("KALAMDB_CLUSTER_SECRET")
            && !secret.is_empty()
        {
            config.cluster.secret = Some(secret);
        }
        config.validate()?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| KalamError::InvalidRequest(format!("cannot read config file {}: {e}", path.display())))?;
        toml::from_str(&text)
            .map_err(|e| KalamError::InvalidRequest(format!("invalid config file {}: {e}", path.display())))
    }

    fn validate(&self) -> Result<()> {
        self.cluster.validate()?;
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return Err(KalamError::InvalidRequest(
                "TLS on the client port needs both server.tls_cert and server.tls_key".into(),
            ));
        }
        if self.server.max_connections == 0 || self.server.header_read_timeout_secs == 0 {
            return Err(KalamError::InvalidRequest(
                "server.max_connections and server.header_read_timeout_secs must be at least 1".into(),
            ));
        }
        if !(4..=31).contains(&self.auth.bcrypt_cost) {
            return Err(KalamError::InvalidRequest(format!(
                "auth.bcrypt_cost must be between 4 and 31, got {}",
                self.auth.bcrypt_cost
            )));
        }
        for origin in &self.server.cors_origins {
            let scheme_ok = origin.starts_with("http://") || origin.starts_with("https://");
            if origin != "*" && (!scheme_ok || origin.ends_with('/') || origin.contains(char::is_whitespace)) {
                return Err(KalamError::InvalidRequest(format!(
                    "server.cors_origins: '{origin}' is not an origin (scheme://host[:port], no path) or '*'"
                )));
            }
        }
        if let Some(secret) = &self.auth.jwt_secret
            && secret.len() < 32
        {
            return Err(KalamError::InvalidRequest("auth.jwt_secret must be at least 32 characters".into()));
        }
        if self.storage.backup_key.as_ref().is_some_and(|k| k.len() < 32) {
            return Err(KalamError::InvalidRequest("storage.backup_key must be at least 32 characters".into()));
        }
        if self.storage.cleanup_interval_secs == 0 {
            return Err(KalamError::InvalidRequest("storage.cleanup_interval_secs must be at least 1".into()));
        }
        let l = &self.limits;
        if l.max_body_bytes == 0
            || l.max_sql_bytes == 0
            || l.max_statements == 0
            || l.max_result_rows == 0
            || l.query_memory_bytes == 0
            || l.query_timeout_secs == 0
            || l.max_response_bytes == 0
            || l.statement_memory_bytes == 0
            || l.user_memory_bytes == 0
            || l.max_value_bytes == 0
            || l.statements_per_user == 0
        {
            return Err(KalamError::InvalidRequest("limits must be greater than zero".into()));
        }
        if l.statement_memory_bytes > l.query_memory_bytes {
            return Err(KalamError::InvalidRequest(
                "limits.statement_memory_bytes cannot be larger than limits.query_memory_bytes".into(),
            ));
        }
        if self.live.filter_budget_ms == 0 || self.live.filter_queue == 0 {
            return Err(KalamError::InvalidRequest(
                "live.filter_budget_ms and live.filter_queue must be at least 1".into(),
            ));
        }
        if self.admin.enabled && self.admin.roles.is_empty() {
            return Err(KalamError::InvalidRequest(
                "admin.roles must name at least one role (or set admin.enabled = false)".into(),
            ));
        }
        if self.live.max_connections_per_user == 0 {
            return Err(KalamError::InvalidRequest("live.max_connections_per_user must be at least 1".into()));
        }
        Ok(())
    }

    /// CPU slots for statements and filters (`limits.query_threads`, or one per CPU).
    pub fn query_threads(&self) -> usize {
        match self.limits.query_threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> ClusterConfig {
        ClusterConfig {
            node_id: Some(1),
            listen: Some("127.0.0.1:9100".parse().unwrap()),
            peers: vec!["1=127.0.0.1:9100".into()],
            secret: Some("s".repeat(32)),
            ..ClusterConfig::default()
        }
    }

    #[test]
    fn client_port_tls_needs_both_files() {
        let mut config = Config::default();
        config.server.tls_cert = Some("c.pem".into());
        let e = config.validate().unwrap_err().to_string();
        assert!(e.contains("both server.tls_cert and server.tls_key"), "{e}");
        config.server.tls_key = Some("c.key".into());
        assert!(config.validate().is_ok());
    }

    #[test]
    fn cluster_tls_needs_its_three_files_or_none() {
        assert!(node().validate().is_ok());
        let all = ClusterConfig {
            tls_cert: Some("n.pem".into()),
            tls_key: Some("n.key".into()),
            tls_ca: Some("ca.pem".into()),
            ..node()
        };
        assert!(all.validate().is_ok());
        let partial = ClusterConfig { tls_ca: None, ..all };
        let e = partial.validate().unwrap_err().to_string();
        assert!(e.contains("all of cluster.tls_cert, tls_key and tls_ca"), "{e}");
    }
}
