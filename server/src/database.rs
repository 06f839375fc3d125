//! [`Database`]: the shared state of a running server — storage, catalog, commit path,
//! authentication — opened once and handed to every request.

use crate::auth::{Authenticator, ManifestSigner, bootstrap};
use crate::budget::{Admission, FairScheduler, MeterFunctions, QueryMemory, QueryRuntime};
use crate::catalog::Catalog;
use crate::clock::{Clock, SystemClock};
use crate::cold::ColdStore;
use crate::config::Config;
use crate::error::{KalamError, Result};
use crate::ids::{Partition, SnowflakeGenerator, TableId, UlidGenerator, UserId};
use crate::jobs::{JobEnd, JobManager, JobType};
use crate::live::LiveRegistry;
use crate::live::registry::FilterLimits;
use crate::replication::{Command, MutationKey, Outcome, ReplicatedCommit, ReplicatedWrite, Replication};
use crate::storage::Store;
use crate::tables::{Committer, StreamBuffers, TableWrite};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::prelude::SessionConfig;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// Name of the DataFusion catalog that holds all namespaces.
pub(crate) const DF_CATALOG: &str = "kalam";

pub(crate) struct Database {
    pub config: Config,
    /// The wall clock the engine decides by (`_updated`, flush intervals, retention, TTLs).
    pub clock: Arc<dyn Clock>,
    pub store: Arc<Store>,
    pub catalog: Arc<Catalog>,
    /// Parquet files in the tables' storages.
    pub cold: Arc<ColdStore>,
    pub committer: Arc<Committer>,
    pub jobs: Arc<JobManager>,
    pub auth: Authenticator,
    pub snowflake: Arc<SnowflakeGenerator>,
    pub ulids: Arc<UlidGenerator>,
    /// Held by statements that read and then write a partition (UPDATE, DELETE), so
    /// concurrent read-modify-write statements on one partition cannot lose updates.
    pub partition_locks: LockTable<(TableId, Partition)>,
    /// Held while a client's `mutate` message is checked and applied.
    pub client_locks: LockTable<(UserId, String)>,
    pub live: Arc<LiveRegistry>,
    pub streams: Arc<StreamBuffers>,
    /// Where statements and subscription filters run (see [`crate::budget`]).
    pub runtime: QueryRuntime,
    /// CPU slots on [`Database::runtime`], shared fairly among users.
    pub scheduler: Arc<FairScheduler>,
    /// Per-user limits on statements and connections at once.
    pub admission: Admission,
    /// The memory statements reserve from (per statement, per user, shared and reserve).
    pub query_memory: Arc<QueryMemory>,
    /// Signs the backups this server writes and checks those it reads.
    pub backup_signer: ManifestSigner,
    /// Read by flushes, which decode a partition's rows through one table definition;
    /// written by ALTER TABLE, so no flush straddles a schema change. Async: ALTER TABLE
    /// waits for a running flush without holding up a request thread.
    pub schema_lock: tokio::sync::RwLock<()>,
    /// Set in cluster mode: writes go through the replicated log (see [`Database::commit`]).
    pub replication: std::sync::OnceLock<Arc<dyn Replication>>,
    base_state: SessionState,
}

/// Async mutexes created on demand per key.
pub(crate) struct LockTable<K> {
    locks: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

impl<K: std::hash::Hash + Eq> Default for LockTable<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: std::hash::Hash + Eq> LockTable<K> {
    pub(crate) fn new() -> Self {
        LockTable { locks: Mutex::new(HashMap::new()) }
    }

    pub(crate) fn get(&self, key: K) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock();
        if locks.len() > 100_000 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(key).or_default().clone()
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Database")
    }
}

impl Database {
    /// Opens the data directory, loads the catalog, creates `root` on first start, finishes
    /// or rolls back flushes a crash interrupted, and starts the flush scheduler.
    pub(crate) async fn open(config: Config) -> Result<Arc<Database>> {
        Self::open_with_clock(config, Arc::new(SystemClock)).await
    }

    /// [`Database::open`] with another wall clock (in-process tests move time by hand).
    pub(crate) async fn open_with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<Arc<Database>> {
        let data_dir = &config.server.data_dir;
        std::fs::create_dir_all(data_dir).map_err(KalamError::io("create", data_dir))?;
        let store = Arc::new(Store::open(&data_dir.join("rocksdb"), config.storage.sync_writes)?);
        let catalog = Arc::new(Catalog::open(store.clone())?);
        let cluster_secret = config.cluster.secret.as_deref().filter(|_| config.cluster.enabled());
        bootstrap::ensure_root(&catalog, data_dir, config.auth.bcrypt_cost, cluster_secret).await?;
        let secret = match (&config.auth.jwt_secret, &config.cluster.secret) {
            // Every node must accept every node's tokens: derive one secret for all.
            (None, Some(cluster)) if config.cluster.enabled() => bootstrap::derived_secret(cluster, "jwt").to_vec(),
            _ => bootstrap::jwt_secret(config.auth.jwt_secret.as_deref(), data_dir)?,
        };
        let backup_signer = ManifestSigner::new(bootstrap::backup_key(config.storage.backup_key.as_deref(), data_dir)?);
        let auth = Authenticator::new(catalog.clone(), config.auth.clone(), &secret)?;
        let replicated_manifests = config.cluster.enabled().then(|| store.clone());
        let cold = Arc::new(ColdStore::new(data_dir.join("storage"), replicated_manifests));
        for storage in catalog.storages() {
            // A storage that cannot be opened only affects its own tables, whose reads fail.
            if let Err(e) = cold.add_storage(&storage) {
                tracing::error!(storage = %storage.id, "cannot open storage: {}", e.report());
            }
        }
        let committer =
            Arc::new(Committer::open(store.clone(), cold.clone(), clock.clone(), config.cluster.placement()?)?);
        let jobs = Arc::new(JobManager::open(store.clone(), config.cluster.node_id)?);
        let query_threads = config.query_threads();
        let query_runtime = QueryRuntime::start(query_threads)?;
        let scheduler = FairScheduler::new(query_threads);
        let filter_limits = FilterLimits {
            queue: config.live.filter_queue,
            budget_per_second: std::time::Duration::from_millis(config.live.filter_budget_ms),
        };
        // The fan-out runs on this (the I/O) runtime; costly filters on the query runtime.
        let live = LiveRegistry::start(
            tokio::runtime::Handle::current(),
            query_runtime.handle().clone(),
            scheduler.clone(),
            filter_limits,
        );
        committer.set_sink(live.clone());
        let streams = Arc::new(StreamBuffers::new(clock.clone()));
        let sweeper = Arc::downgrade(&streams);
        tokio::spawn(async move {
            // Evicts expired stream events even from partitions nobody writes to any more.
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                match sweeper.upgrade() {
                    Some(s) => s.sweep(),
                    None => return,
                }
            }
        });
        // One partition per plan: all of a statement's work then happens when its result
        // stream is polled, where the fair scheduler hands out CPU (no DataFusion tasks
        // running on their own). Statements of different users still run in parallel.
        let session_config = SessionConfig::new()
            .with_default_catalog_and_schema(DF_CATALOG, "default")
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true)
            .with_target_partitions(1);
        // The server-wide pool; each statement gets its own pool in front of it
        // (`crate::budget::StatementPool`).
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(config.limits.query_memory_bytes, 1.0)
            .build_arc()
            .map_err(KalamError::from)?;
        let base_state = SessionStateBuilder::new()
            .with_config(session_config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_analyzer_rule(Arc::new(MeterFunctions))
            .with_optimizer_rule(Arc::new(MeterFunctions))
            .build();
        let query_memory = Arc::new(QueryMemory::new(
            base_state.runtime_env().memory_pool.clone(),
            config.limits.reserved_memory_bytes,
            config.limits.user_memory_bytes,
            crate::budget::LIGHT_USER_BYTES,
        ));
        let admission = Admission::new(
            config.limits.statements_per_user,
            config.limits.queued_statements_per_user,
            config.live.max_connections_per_user,
        );
        let node_id = config.cluster.node_id.map_or(1, |id| id as u16);
        let db = Arc::new(Database {
            config,
            clock,
            store,
            catalog,
            cold,
            committer,
            jobs,
            auth,
            // Ids a node makes must not collide with another node's.
            snowflake: Arc::new(SnowflakeGenerator::new(node_id)),
            ulids: Arc::default(),
            partition_locks: LockTable::new(),
            client_locks: LockTable::new(),
            live,
            streams,
            schema_lock: tokio::sync::RwLock::new(()),
            replication: std::sync::OnceLock::new(),
            runtime: query_runtime,
            scheduler,
            admission,
            query_memory,
            backup_signer,
            base_state,
        });
        Ok(db)
    }

    /// Forgets what a dropped table kept outside the catalog: stream buffers, hot-tier
    /// counts and its Parquet files (the catalog drop already removed its hot rows).
    ///
    /// Runs as a `drop` job (rows: hot and cold row versions removed; files and bytes: the
    /// Parquet files), so the cleanup is visible in `system.jobs`. Returns the job id.
    pub(crate) async fn drop_table_data(&self, table: &crate::schema::TableDef) -> Option<String> {
        let job = self
            .jobs
            .create(JobType::Drop, Some(table.namespace.to_string()), Some(table.name.clone()), "drop")
            .inspect_err(|e| tracing::warn!("cannot record a drop job: {e}"))
            .ok();
        if let Some(job) = &job {
            let _ = job.start();
        }
        let hot_rows: u64 = self.committer.hot_stats().partitions_of(table.id).iter().map(|(_, p)| p.rows).sum();
        let (mut rows, mut files, mut bytes) = (hot_rows, 0, 0);
        for partition in self.cold.partitions_on_disk(table).await.unwrap_or_default() {
            if let Ok(cold) = self.cold.partition(table, partition).await {
                for f in cold.files() {
                    rows += f.rows;
                    files += 1;
                    bytes += f.bytes;
                }
            }
        }
        self.streams.drop_table(table.id);
        self.committer.hot_stats().drop_table(table.id);
        let outcome = self.cold.drop_table(table).await;
        if let Err(e) = &outcome {
            tracing::warn!(table = %table.qualified_name(), "cannot remove the dropped table's files: {}", e.report());
        }
        let job = job?;
        let _ = job.progress(rows, bytes, files);
        job.finish(outcome.map(|_| JobEnd::Completed));
        Some(job.id.clone())
    }

    /// The cluster this node belongs to, if any.
    pub(crate) fn replication(&self) -> Option<&Arc<dyn Replication>> {
        self.replication.get()
    }

    /// Whether this node flushes and compacts `table`: always on a single node and for a
    /// node's own storage; for a shared storage in a cluster, only the leader of a SHARED
    /// table's data group, or for a USER table a node that leads a data group (through the
    /// log, the partitions of the groups it leads), so that other nodes' schedulers make no
    /// jobs for it.
    pub(crate) fn does_cold_work_of(&self, table: &crate::schema::TableDef) -> bool {
        if !self.cold.is_replicated(&table.options.storage) {
            return true;
        }
        let Some(r) = self.replication() else { return true };
        match table.kind {
            crate::schema::TableKind::Shared => r.leads(r.group_of(table.id, crate::ids::Partition::Shared)),
            _ => self.committer.placement().all().any(|g| r.leads(crate::replication::raft_group(g))),
        }
    }

    /// Commits a statement's (or, with `mutation`, a client mutation message's) writes:
    /// here on the single node, through the replicated log in cluster mode (where only the
    /// leader plans writes; followers forward statements to it).
    pub(crate) async fn commit(
        &self,
        writes: Vec<TableWrite<'_>>,
        mutation: Option<MutationKey>,
    ) -> Result<crate::tables::Committed> {
        let Some(replication) = self.replication() else {
            return self.committer.commit_writes(writes, mutation.as_ref(), None, |_| {}).await;
        };
        let writes = writes
            .into_iter()
            .map(|w| ReplicatedWrite {
                table: w.table.id,
                schema_version: w.table.schema_version,
                partition: w.partition,
                ops: w.ops,
            })
            .collect();
        let command = Command::Commit(ReplicatedCommit { writes, proposed_at: self.clock.now_micros(), mutation });
        match replication.propose(command).await? {
            Outcome::Committed(committed) => Ok(committed),
            other => Err(KalamError::internal(format!("a commit entry was applied as {other:?}"))),
        }
    }

    /// A fresh DataFusion session state with the server's configuration and functions.
    pub(crate) fn session_state(&self) -> SessionState {
        self.base_state.clone()
    }
}
