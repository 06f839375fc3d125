//! Background jobs: every flush, cleanup, drop, backup and restore runs as a
//! job persisted in the `catalog` column family under `job/{n}` and listed by
//! `system.jobs`. A job is `queued`, then `running`, then `completed`, `failed` or
//! `cancelled`. `KILL JOB` sets a job's cancel flag; the job checks it between steps and
//! stops at the next safe point. Jobs a crash left queued or running are marked failed
//! (`interrupted by restart`) when the server starts.

use crate::clock::now_micros;
use crate::error::{KalamError, Result};
use crate::schema::TableDef;
use crate::storage::{CF_CATALOG, Store};
use parking_lot::Mutex;
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Job records kept; older finished ones are deleted as new jobs are created.
const MAX_JOB_RECORDS: usize = 10_000;
const SEQ_KEY: &[u8] = b"seq/job";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum JobType {
    Flush,
    Backup,
    Restore,
    /// Removing a dropped table's data.
    Drop,
    /// Purging expired tombstones and compacting a table's files.
    Cleanup,
}

impl JobType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            JobType::Flush => "flush",
            JobType::Backup => "backup",
            JobType::Restore => "restore",
            JobType::Drop => "drop",
            JobType::Cleanup => "cleanup",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum JobStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub(crate) fn is_finished(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled)
    }
}

/// A job as persisted and shown in `system.jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Job {
    pub id: String,
    pub job_type: JobType,
    pub status: JobStatus,
    /// What the job covers: a namespace (all its tables) or one table; neither for all.
    pub namespace: Option<String>,
    pub table: Option<String>,
    /// `manual` (a statement) or `policy` (the flush scheduler).
    pub trigger: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub rows: u64,
    pub bytes: u64,
    pub files: u64,
    pub error: Option<String>,
}

/// How a job's work ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JobEnd {
    Completed,
    /// Stopped at a safe point after `KILL JOB`.
    Cancelled,
}

/// Creates, tracks and persists jobs.
pub(crate) struct JobManager {
    store: Arc<Store>,
    /// The cluster node this is, named in job ids; `None` on a single node.
    node: Option<u64>,
    state: Mutex<State>,
    /// One turn at a time per scope (see [`JobManager::turn`]).
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

struct State {
    next: u64,
    jobs: BTreeMap<u64, Job>,
    cancel_flags: HashMap<u64, Arc<AtomicBool>>,
}

impl std::fmt::Debug for JobManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobManager")
    }
}

fn job_key(n: u64) -> String {
    format!("job/{n:016x}")
}

/// Runs `round` every `period` (the first time after `first`) on a background thread, one round
/// at a time, until `target` is dropped: the loop of the policy schedulers.
pub(crate) fn schedule<T, Round, Fut>(
    target: Weak<T>,
    first: Duration,
    period: Duration,
    what: &'static str,
    round: Round,
) where
    T: Send + Sync + 'static,
    Round: Fn(Arc<T>) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = ()>,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + first, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(target) = target.upgrade() else { return };
            // This loop runs on the runtime that serves requests (started by the server).
            let requests = tokio::runtime::Handle::current();
            if let Err(e) = crate::budget::spawn_background(&requests, what, move || round(target)).await {
                tracing::error!("{what} scheduler round failed: {}", e.report());
            }
        }
    });
}

/// Runs `work` as a job of `job_type` over `table` with trigger `policy`. Fails only if the
/// job cannot be recorded; the work's own outcome goes to the job record.
pub(crate) async fn run_policy_job(
    jobs: &Arc<JobManager>,
    job_type: JobType,
    table: &TableDef,
    work: impl AsyncFnOnce(&JobHandle) -> Result<JobEnd>,
) -> Result<()> {
    let job = jobs.create(job_type, Some(table.namespace.to_string()), Some(table.name.clone()), "policy")?;
    job.finish(work(&job).await);
    Ok(())
}

/// The sequence number of a job id (`flush-42` → 42, `flush-node2-42` → 42).
fn job_number(id: &str) -> Option<u64> {
    id.rsplit_once('-')?.1.parse().ok()
}

/// The cluster node a job id names (`flush-node2-42` → 2); `None` for a single node's id.
fn job_node(id: &str) -> Option<u64> {
    id.split('-').find_map(|part| part.strip_prefix("node")?.parse().ok())
}

impl JobManager {
    /// Loads the job records; those a crash left queued or running become failed. On cluster
    /// node `node`, job ids name the node (`flush-node2-7`: unique across the cluster, and
    /// `KILL JOB` anywhere finds the job), and records of other nodes' jobs, which a
    /// snapshot copies in with the rest of the database, are dropped.
    pub(crate) fn open(store: Arc<Store>, node: Option<u64>) -> Result<JobManager> {
        let mut jobs = BTreeMap::new();
        let mut batch = WriteBatch::default();
        let cf = store.cf(CF_CATALOG);
        for (k, v) in store.scan_prefix(CF_CATALOG, b"job/")? {
            let mut job: Job = serde_json::from_slice(&v)
                .map_err(|e| KalamError::Corrupt(format!("job record {}: {e}", String::from_utf8_lossy(&k))))?;
            if node.is_some() && job_node(&job.id) != node {
                batch.delete_cf(&cf, &k);
                continue;
            }
            if !job.status.is_finished() {
                job.status = JobStatus::Failed;
                job.error = Some("interrupted by restart".into());
                job.finished_at = Some(now_micros());
                batch.put_cf(&cf, &k, serde_json::to_vec(&job).expect("jobs serialise"));
            }
            if let Some(n) = job_number(&job.id) {
                jobs.insert(n, job);
            }
        }
        drop(cf);
        if !batch.is_empty() {
            store.write(batch)?;
        }
        let next = match store.get(CF_CATALOG, SEQ_KEY)? {
            Some(b) => serde_json::from_slice(&b).map_err(|_| KalamError::Corrupt("job sequence".into()))?,
            None => 1,
        };
        Ok(JobManager {
            store,
            node,
            state: Mutex::new(State { next, jobs, cancel_flags: HashMap::new() }),
            turns: Mutex::new(HashMap::new()),
        })
    }

    fn persist(&self, batch: &mut WriteBatch, n: u64, job: &Job) {
        batch.put_cf(&self.store.cf(CF_CATALOG), job_key(n), serde_json::to_vec(job).expect("jobs serialise"));
    }

    /// Records a new queued job.
    pub(crate) fn create(
        self: &Arc<Self>,
        job_type: JobType,
        namespace: Option<String>,
        table: Option<String>,
        trigger: &str,
    ) -> Result<JobHandle> {
        let mut state = self.state.lock();
        let n = state.next;
        let job = Job {
            id: match self.node {
                Some(node) => format!("{}-node{node}-{n}", job_type.as_str()),
                None => format!("{}-{n}", job_type.as_str()),
            },
            job_type,
            status: JobStatus::Queued,
            namespace,
            table,
            trigger: trigger.to_string(),
            created_at: now_micros(),
            started_at: None,
            finished_at: None,
            rows: 0,
            bytes: 0,
            files: 0,
            error: None,
        };
        let mut batch = WriteBatch::default();
        self.persist(&mut batch, n, &job);
        batch.put_cf(&self.store.cf(CF_CATALOG), SEQ_KEY, serde_json::to_vec(&(n + 1)).expect("serialises"));
        // Keep the record count bounded: the oldest finished jobs go first.
        let excess = (state.jobs.len() + 1).saturating_sub(MAX_JOB_RECORDS);
        let old: Vec<u64> =
            state.jobs.iter().filter(|(_, j)| j.status.is_finished()).map(|(k, _)| *k).take(excess).collect();
        for k in &old {
            batch.delete_cf(&self.store.cf(CF_CATALOG), job_key(*k));
        }
        self.store.write(batch)?;
        for k in old {
            state.jobs.remove(&k);
        }
        state.next = n + 1;
        let cancel = Arc::new(AtomicBool::new(false));
        state.cancel_flags.insert(n, cancel.clone());
        state.jobs.insert(n, job.clone());
        Ok(JobHandle { id: job.id, n, cancel, manager: self.clone() })
    }

    /// The id of a queued or running job of `job_type` on `namespace`, if there is one.
    pub(crate) fn active(&self, job_type: JobType, namespace: &str) -> Option<String> {
        self.state
            .lock()
            .jobs
            .values()
            .find(|j| j.job_type == job_type && !j.status.is_finished() && j.namespace.as_deref() == Some(namespace))
            .map(|j| j.id.clone())
    }

    /// Waits, without holding a thread, until no other job holding `scope`'s turn runs; the
    /// turn is held until the guard is dropped. Jobs that would only wait for each other's
    /// locks (flushes of one table) take turns here, so that they do not hold background
    /// threads while they wait, and stay `queued` until their turn.
    pub(crate) async fn turn(&self, scope: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let gate = {
            let mut turns = self.turns.lock();
            // Forget the gates nobody holds or waits for (scopes of dropped tables included).
            turns.retain(|_, gate| Arc::strong_count(gate) > 1);
            turns.entry(scope.to_string()).or_default().clone()
        };
        gate.lock_owned().await
    }

    /// A job of `job_type` over exactly this scope that has not started yet.
    pub(crate) fn queued(&self, job_type: JobType, namespace: Option<&str>, table: Option<&str>) -> Option<String> {
        self.state
            .lock()
            .jobs
            .values()
            .find(|j| {
                j.job_type == job_type
                    && j.status == JobStatus::Queued
                    && j.namespace.as_deref() == namespace
                    && j.table.as_deref() == table
            })
            .map(|j| j.id.clone())
    }

    /// All job records, oldest first.
    pub(crate) fn list(&self) -> Vec<Job> {
        self.state.lock().jobs.values().cloned().collect()
    }

    /// Asks a queued or running job to stop.
    /// Whether this node has (or had) job `id`.
    pub(crate) fn has(&self, id: &str) -> bool {
        job_number(id).is_some_and(|n| self.state.lock().jobs.get(&n).is_some_and(|j| j.id == id))
    }

    pub(crate) fn kill(&self, id: &str) -> Result<()> {
        let not_found = || KalamError::Validation(format!("no job '{id}'"));
        let n = job_number(id).ok_or_else(not_found)?;
        let state = self.state.lock();
        let job = state.jobs.get(&n).filter(|j| j.id == id).ok_or_else(not_found)?;
        if job.status.is_finished() {
            return Err(KalamError::Validation(format!("job '{id}' has already finished ({})", job.status.as_str())));
        }
        if let Some(flag) = state.cancel_flags.get(&n) {
            flag.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    fn update(&self, n: u64, f: impl FnOnce(&mut Job)) -> Result<()> {
        let mut state = self.state.lock();
        let Some(job) = state.jobs.get_mut(&n) else { return Ok(()) };
        f(job);
        let job = job.clone();
        if job.status.is_finished() {
            state.cancel_flags.remove(&n);
        }
        let mut batch = WriteBatch::default();
        self.persist(&mut batch, n, &job);
        self.store.write(batch)
    }
}

/// The running side of a job: progress, cancellation checks and the final status.
pub(crate) struct JobHandle {
    pub id: String,
    n: u64,
    cancel: Arc<AtomicBool>,
    manager: Arc<JobManager>,
}

impl JobHandle {
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    pub(crate) fn start(&self) -> Result<()> {
        self.manager.update(self.n, |j| {
            j.status = JobStatus::Running;
            j.started_at = Some(now_micros());
        })
    }

    /// Adds to the job's row, byte and file counts.
    pub(crate) fn progress(&self, rows: u64, bytes: u64, files: u64) -> Result<()> {
        self.manager.update(self.n, |j| {
            j.rows += rows;
            j.bytes += bytes;
            j.files += files;
        })
    }

    /// Records how the job ended.
    pub(crate) fn finish(&self, outcome: Result<JobEnd>) {
        let (status, error) = match outcome {
            Ok(JobEnd::Completed) => (JobStatus::Completed, None),
            Ok(JobEnd::Cancelled) => (JobStatus::Cancelled, None),
            Err(e) => {
                // The log gets the details; `system.jobs` what a client may see (no paths or
                // storage internals).
                tracing::warn!(job = %self.id, "job failed: {}", e.report());
                (JobStatus::Failed, Some(e.public_message()))
            }
        };
        let result = self.manager.update(self.n, |j| {
            j.status = status;
            j.error = error;
            j.finished_at = Some(now_micros());
        });
        if let Err(e) = result {
            tracing::error!(job = %self.id, "cannot record the end of the job: {}", e.report());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &std::path::Path) -> Arc<JobManager> {
        Arc::new(JobManager::open(Arc::new(Store::open(dir, false).unwrap()), None).unwrap())
    }

    fn status(jobs: &JobManager, id: &str) -> Job {
        jobs.list().into_iter().find(|j| j.id == id).unwrap()
    }

    #[test]
    fn a_job_runs_is_killed_and_fails_without_internals() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = open(dir.path());
        let job = jobs.create(JobType::Flush, Some("app".into()), Some("t".into()), "manual").unwrap();
        assert_eq!(jobs.active(JobType::Flush, "app").as_deref(), Some(job.id.as_str()));
        job.start().unwrap();
        job.progress(10, 100, 1).unwrap();
        job.progress(5, 50, 0).unwrap();
        jobs.kill(&job.id).unwrap();
        assert!(job.is_cancelled());
        job.finish(Ok(JobEnd::Cancelled));
        let record = status(&jobs, &job.id);
        assert_eq!((record.status, record.rows, record.bytes, record.files), (JobStatus::Cancelled, 15, 150, 1));
        assert!(jobs.kill(&job.id).is_err(), "a finished job cannot be killed");
        assert!(jobs.active(JobType::Flush, "app").is_none());

        let failing = jobs.create(JobType::Flush, Some("app".into()), None, "policy").unwrap();
        let denied = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        failing.finish(Err(KalamError::io("open", "/secret/path/batch-1.parquet")(denied)));
        let record = status(&jobs, &failing.id);
        assert_eq!(record.status, JobStatus::Failed);
        assert_eq!(record.error.as_deref(), Some("internal server error"), "no paths in system.jobs");
    }

    #[test]
    fn a_restart_fails_unfinished_jobs_and_keeps_numbering() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = open(dir.path());
        let done = jobs.create(JobType::Flush, None, None, "manual").unwrap();
        done.finish(Ok(JobEnd::Completed));
        let running = jobs.create(JobType::Flush, None, None, "manual").unwrap();
        running.start().unwrap();
        let ids = (done.id.clone(), running.id.clone());
        // The handles hold the manager, and with it the store, open.
        drop((done, running, jobs));
        let (done, running) = ids;
        let jobs = open(dir.path());
        assert_eq!(status(&jobs, &done).status, JobStatus::Completed);
        let interrupted = status(&jobs, &running);
        assert_eq!(
            (interrupted.status, interrupted.error.as_deref()),
            (JobStatus::Failed, Some("interrupted by restart"))
        );
        let next = jobs.create(JobType::Flush, None, None, "manual").unwrap();
        assert!(job_number(&next.id) > job_number(&running));
    }

    #[tokio::test]
    async fn jobs_of_one_scope_take_turns_and_idle_scopes_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = open(dir.path());
        let first = jobs.turn("flush/app.a").await;
        // Another scope is not held back.
        drop(tokio::time::timeout(std::time::Duration::from_secs(1), jobs.turn("flush/app.b")).await.unwrap());
        let waiting = {
            let jobs = jobs.clone();
            tokio::spawn(async move { drop(jobs.turn("flush/app.a").await) })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the second job of a scope waits for the first");
        drop(first);
        tokio::time::timeout(std::time::Duration::from_secs(1), waiting).await.unwrap().unwrap();
        drop(jobs.turn("flush/app.c").await);
        assert_eq!(jobs.turns.lock().len(), 1, "only the last scope's gate is left");
    }

    #[test]
    fn on_a_cluster_node_job_ids_name_the_node_and_other_nodes_records_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), false).unwrap());
        // As a snapshot from node 1 would leave them: node 1's records in node 2's database.
        let one = JobManager::open(store.clone(), Some(1)).unwrap();
        let theirs = Arc::new(one).create(JobType::Flush, None, None, "manual").unwrap().id.clone();
        assert_eq!((job_node(&theirs), job_number(&theirs)), (Some(1), Some(1)));
        let two = Arc::new(JobManager::open(store.clone(), Some(2)).unwrap());
        assert!(two.list().is_empty(), "node 1's job is not node 2's");
        let ours = two.create(JobType::Flush, None, None, "manual").unwrap().id.clone();
        assert!(ours.starts_with("flush-node2-"), "{ours}");
        assert!(two.has(&ours) && !two.has(&theirs));
        assert_eq!(job_node("flush-7"), None);
    }
}
