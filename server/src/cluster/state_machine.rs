//! Applies the committed entries of the log to this node's database, in log order, on
//! every node alike: a [`ReplicatedCommit`] through the commit path with the leader's
//! proposal time (so every replica stamps the same `_updated`), a catalog statement by
//! running it with the entry's time and password hash, a flush to a shared storage by
//! listing its file and removing the hot rows it holds.
//!
//! The last applied log id is stored in the database itself, in the same RocksDB batch as
//! a commit's rows, so a node that crashes re-applies exactly the entries it had not
//! applied. (A catalog statement writes it just after: one re-applied by a crash in between
//! fails as already done, since catalog statements do not repeat.) An entry this node cannot
//! apply for an internal reason (its disk) stops its Raft rather than let it diverge.

// openraft's `StorageError` is what its state machine trait returns.
#![allow(clippy::result_large_err)]

use super::problems::Problems;
use super::snapshot::{InstallRestart, Snapshots};
use super::{Applied, TypeConfig};
use crate::database::Database;
use crate::error::{KalamError, Result};
use crate::replication::{Command, Failure, GroupId, METADATA, Outcome, ReplicatedCommit};
use crate::sql::executor;
use crate::storage::{CF_CATALOG, Store};
use crate::tables::TableWrite;
use kalamdb_client_core::protocol::ErrorCode;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use rocksdb::WriteBatch;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

/// The key of group `group`'s last applied log id (the metadata group's is the first
/// cluster's, from before data groups).
fn applied_key(group: GroupId) -> Vec<u8> {
    match group {
        METADATA => b"raft/applied".to_vec(),
        g => format!("raft/applied/{:04x}", g.0).into_bytes(),
    }
}

fn membership_key(group: GroupId) -> Vec<u8> {
    match group {
        METADATA => b"raft/membership".to_vec(),
        g => format!("raft/membership/{:04x}", g.0).into_bytes(),
    }
}

type Membership = StoredMembership<u64, BasicNode>;

/// How far this node has applied the metadata group's log: published by its state machine,
/// awaited by the data groups' (see [`crate::replication::Proposal`]).
#[derive(Clone)]
pub(super) enum CatalogProgress {
    Publishes(Arc<tokio::sync::watch::Sender<u64>>),
    Follows(tokio::sync::watch::Receiver<u64>),
}

pub(super) struct StateMachine {
    group: GroupId,
    db: Arc<Database>,
    applied: Option<LogId<u64>>,
    membership: Membership,
    /// Held while an entry is applied: a snapshot is taken between two entries.
    gate: Arc<tokio::sync::Mutex<()>>,
    snapshots: Snapshots,
    /// Where the node serves clients (see [`super::snapshot::restart`]).
    client_address: Arc<OnceLock<SocketAddr>>,
    problems: Problems,
    catalog: CatalogProgress,
    restart: InstallRestart,
}

fn storage_error(e: impl std::fmt::Display) -> StorageError<u64> {
    StorageIOError::write_state_machine(AnyError::error(e.to_string())).into()
}

/// The last applied log id and the membership of `group` stored in `db`.
pub(super) fn stored_position(db: &Database, group: GroupId) -> Result<(Option<LogId<u64>>, Membership)> {
    stored_position_in(&db.store, group)
}

/// The membership of `group` stored in `store`.
pub(super) fn stored_membership(store: &Store, group: GroupId) -> Result<Membership> {
    stored_position_in(store, group).map(|(_, membership)| membership)
}

/// [`stored_position`] in a store of its own (before the database opens).
pub(super) fn stored_position_in(store: &Store, group: GroupId) -> Result<(Option<LogId<u64>>, Membership)> {
    let read = |key: &[u8]| -> Result<Option<Vec<u8>>> { store.get(CF_CATALOG, key) };
    let applied = match read(&applied_key(group))? {
        Some(b) => Some(serde_json::from_slice(&b).map_err(|_| KalamError::Corrupt("applied log id".into()))?),
        None => None,
    };
    let membership = match read(&membership_key(group))? {
        Some(b) => serde_json::from_slice(&b).map_err(|_| KalamError::Corrupt("cluster membership".into()))?,
        None => Membership::default(),
    };
    Ok((applied, membership))
}

impl StateMachine {
    pub(super) fn open(
        group: GroupId,
        db: Arc<Database>,
        client_address: Arc<OnceLock<SocketAddr>>,
        problems: Problems,
        catalog: CatalogProgress,
        restart: InstallRestart,
    ) -> Result<StateMachine> {
        let (applied, membership) = stored_position(&db, group)?;
        if let CatalogProgress::Publishes(progress) = &catalog {
            progress.send_replace(applied.map_or(0, |l| l.index));
        }
        let snapshots = Snapshots::open(&db.config.server.data_dir, group)?;
        Ok(StateMachine {
            group,
            db,
            applied,
            membership,
            gate: Arc::default(),
            snapshots,
            client_address,
            problems,
            catalog,
            restart,
        })
    }

    /// Whether any entry was ever applied to this node's data.
    pub(super) fn has_applied(&self) -> bool {
        self.applied.is_some()
    }

    fn mark(&self, batch: &mut WriteBatch, log_id: &LogId<u64>) {
        let id = serde_json::to_vec(log_id).expect("serialises");
        batch.put_cf(&self.db.store.cf(CF_CATALOG), applied_key(self.group), id);
    }

    fn write_mark(&self, log_id: &LogId<u64>, membership: Option<&Membership>) -> Result<(), StorageError<u64>> {
        let mut batch = WriteBatch::default();
        self.mark(&mut batch, log_id);
        if let Some(m) = membership {
            let m = serde_json::to_vec(m).expect("serialises");
            batch.put_cf(&self.db.store.cf(CF_CATALOG), membership_key(self.group), m);
        }
        self.db.store.write(batch).map_err(storage_error)
    }

    /// After applying a change to the files of a partition on a shared storage: as for a
    /// commit, a refusal (which every node makes alike) is the entry's answer, while a node
    /// that cannot write what it applies stops, and applies the entry again after a restart
    /// (which finishes it: those applies are idempotent).
    fn settle_cold_change(
        &self,
        log_id: &LogId<u64>,
        what: &str,
        applied: Result<()>,
    ) -> Result<Result<Outcome>, StorageError<u64>> {
        match applied {
            Err(e) if e.code() == ErrorCode::InternalError => {
                tracing::error!(index = log_id.index, "cannot apply a replicated {what}: {}", e.report());
                Err(storage_error(e.report()))
            }
            outcome => {
                self.write_mark(log_id, None)?;
                Ok(outcome.map(|()| Outcome::Nothing))
            }
        }
    }

    async fn apply_commit(&self, log_id: LogId<u64>, commit: ReplicatedCommit) -> Result<Outcome> {
        if crate::fault::fails(crate::fault::APPLY_COMMIT) {
            return Err(KalamError::internal("fault injected: cannot apply a commit"));
        }
        let mut tables = Vec::with_capacity(commit.writes.len());
        let mut writes = Vec::with_capacity(commit.writes.len());
        for mut w in commit.writes {
            // Dropped after the leader planned the write. (A node that has not applied the
            // DROP TABLE yet writes the rows, which the DROP then removes: the same end.)
            let table = self
                .db
                .catalog
                .table_by_id(w.table)
                .ok_or_else(|| KalamError::TableNotFound(format!("the table (id {}) written to", w.table.0)))?;
            if w.schema_version > table.schema_version {
                return Err(KalamError::internal(format!(
                    "a write planned on version {} of {} is applied where the catalog has version {}",
                    w.schema_version,
                    table.qualified_name(),
                    table.schema_version
                )));
            }
            if w.schema_version < table.schema_version {
                // Altered since it was planned (the metadata group applied the change
                // first on this node): lands as if committed just before it.
                let history = self.db.catalog.schema_versions(table.id)?;
                let planned_on = history
                    .iter()
                    .find(|v| v.version == w.schema_version)
                    .ok_or_else(|| KalamError::SchemaChanged(table.qualified_name()))?;
                w.ops = crate::tables::realign(w.ops, &planned_on.columns, &table);
            }
            tables.push(table);
            writes.push(w);
        }
        let writes = writes
            .into_iter()
            .zip(&tables)
            .map(|(w, table)| TableWrite { table, partition: w.partition, ops: w.ops })
            .collect();
        let committed = self
            .db
            .committer
            .commit_writes(writes, commit.mutation.as_ref(), Some(commit.proposed_at), |batch| {
                self.mark(batch, &log_id)
            })
            .await?;
        Ok(Outcome::Committed(committed))
    }
}

impl StateMachine {
    /// Waits until this node has applied the metadata log up to `index` (never skipping: every
    /// replica must decide the entry on the same catalog). Logged while it takes long: this
    /// node's metadata group lags or is cut off.
    async fn wait_for_catalog(
        &self,
        mut catalog: tokio::sync::watch::Receiver<u64>,
        index: u64,
        log_id: LogId<u64>,
    ) -> Result<(), StorageError<u64>> {
        let mut waited = 0u64;
        loop {
            let waiting = catalog.wait_for(|applied| *applied >= index);
            let reached = tokio::time::timeout(CATALOG_WAIT_LOG, async { waiting.await.is_ok() }).await;
            match reached {
                Ok(true) => return Ok(()),
                Ok(false) => return Err(storage_error("the metadata group has stopped")),
                Err(_) => {
                    waited += CATALOG_WAIT_LOG.as_secs();
                    tracing::warn!(
                        group = self.group.0,
                        index = log_id.index,
                        catalog_index = index,
                        applied = *catalog.borrow(),
                        "an entry has waited {waited} s for this node's metadata log to catch up"
                    );
                }
            }
        }
    }
}

/// An entry's payload, its command taken out of its proposal.
enum Payload {
    Blank,
    Membership(openraft::Membership<u64, BasicNode>),
    Command(Command),
}

/// How often a data group's entry waiting for the metadata log says so.
const CATALOG_WAIT_LOG: std::time::Duration = std::time::Duration::from_secs(10);

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId<u64>>, Membership), StorageError<u64>> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<u64>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut replies = Vec::new();
        let gate = self.gate.clone();
        for entry in entries {
            let _applying = gate.lock().await;
            let log_id = entry.log_id;
            let payload = match entry.payload {
                EntryPayload::Normal(proposal) => {
                    if let CatalogProgress::Follows(catalog) = &self.catalog {
                        self.wait_for_catalog(catalog.clone(), proposal.catalog_index, log_id).await?;
                    }
                    Payload::Command(proposal.command)
                }
                EntryPayload::Blank => Payload::Blank,
                EntryPayload::Membership(m) => Payload::Membership(m),
            };
            let reply = match payload {
                Payload::Blank => {
                    self.write_mark(&log_id, None)?;
                    Ok(Outcome::Nothing)
                }
                Payload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(log_id), m);
                    self.write_mark(&log_id, Some(&self.membership))?;
                    Ok(Outcome::Nothing)
                }
                Payload::Command(Command::Commit(commit)) => match self.apply_commit(log_id, commit).await {
                    Ok(outcome) => Ok(outcome),
                    // A replica that cannot write what the others wrote must not go on as
                    // if it had: openraft stops this node, and a restart applies the entry
                    // again.
                    Err(e) if e.code() == ErrorCode::InternalError => {
                        tracing::error!(index = log_id.index, "cannot apply a replicated commit: {}", e.report());
                        return Err(storage_error(e.report()));
                    }
                    Err(e) => {
                        self.write_mark(&log_id, None)?;
                        Err(e)
                    }
                },
                Payload::Command(Command::Flush(flush)) => {
                    let applied = crate::flush::apply_replicated(&self.db, flush).await;
                    self.settle_cold_change(&log_id, "flush", applied)?
                }
                Payload::Command(Command::Compaction(compaction)) => {
                    let applied = crate::cleanup::replicated::apply_compaction(&self.db, compaction).await;
                    self.settle_cold_change(&log_id, "compaction", applied)?
                }
                Payload::Command(Command::DeletedFiles(deleted)) => {
                    let applied = crate::cleanup::replicated::apply_deleted(&self.db, deleted).await;
                    self.settle_cold_change(&log_id, "deletion of replaced files", applied)?
                }
                Payload::Command(Command::Restore(restore)) => {
                    // The tables, their file lists and the applied mark in one write.
                    match crate::backup::apply_replicated_restore(&self.db, &restore, |batch| self.mark(batch, &log_id))
                    {
                        Ok(()) => Ok(Outcome::Nothing),
                        Err(e) if e.code() == ErrorCode::InternalError => {
                            tracing::error!(index = log_id.index, "cannot apply a restore: {}", e.report());
                            return Err(storage_error(e.report()));
                        }
                        // A refusal every node makes alike (the namespace exists by now).
                        Err(e) => {
                            self.write_mark(&log_id, None)?;
                            Err(e)
                        }
                    }
                }
                Payload::Command(Command::AdvanceClock(advance)) => {
                    // Idempotent: applied again after a crash before the mark, it changes nothing.
                    if let Err(e) = self.db.committer.advance_clocks(std::iter::once(advance.group), advance.after) {
                        tracing::error!(index = log_id.index, "cannot move a group's clock: {}", e.report());
                        return Err(storage_error(e.report()));
                    }
                    self.write_mark(&log_id, None)?;
                    Ok(Outcome::Nothing)
                }
                Payload::Command(Command::Login(record)) => {
                    // The account's counters and the applied mark in one write: a crash
                    // between them would count the attempt twice.
                    match self.db.auth.apply_login_record(&record, |batch| self.mark(batch, &log_id)) {
                        Ok(written) => {
                            if !written {
                                self.write_mark(&log_id, None)?;
                            }
                            Ok(Outcome::Nothing)
                        }
                        Err(e) => {
                            tracing::error!(index = log_id.index, "cannot apply a login record: {}", e.report());
                            return Err(storage_error(e.report()));
                        }
                    }
                }
                Payload::Command(Command::Statement(statement)) => {
                    let outcome = match crate::fault::fails(crate::fault::APPLY_STATEMENT) {
                        true => Err(KalamError::internal("fault injected: cannot apply a statement")),
                        false => executor::apply_statement(&self.db, statement).await.map(Outcome::Statement),
                    };
                    match outcome {
                        // As for a commit: a node whose catalog cannot take what the others'
                        // took stops rather than diverge, and a restart applies it again. (A
                        // refusal, which every node makes alike, is an answer like any other.)
                        Err(e) if e.code() == ErrorCode::InternalError => {
                            tracing::error!(
                                index = log_id.index,
                                "cannot apply a replicated statement: {}",
                                e.report()
                            );
                            return Err(storage_error(e.report()));
                        }
                        outcome => {
                            self.write_mark(&log_id, None)?;
                            outcome
                        }
                    }
                }
            };
            self.applied = Some(log_id);
            if let CatalogProgress::Publishes(progress) = &self.catalog {
                progress.send_replace(log_id.index);
            }
            replies.push(reply.map_err(|e| Failure::from(&e)));
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            group: self.group,
            db: self.db.clone(),
            gate: self.gate.clone(),
            snapshots: self.snapshots.clone(),
            problems: self.problems.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError<u64>> {
        self.restart.receiving(self.group);
        Ok(Box::new(self.snapshots.receive().await.map_err(storage_error)?))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError<u64>> {
        // The snapshot replaces state the rest of the server holds open: keep it, and restart
        // into it (see the snapshot module), with the other groups' received meanwhile.
        self.snapshots.keep_for_install(*snapshot).await.map_err(storage_error)?;
        tracing::warn!(
            group = self.group.0,
            last = ?meta.last_log_id,
            client_address = ?self.client_address.get(),
            "restarting to install a snapshot from the leader"
        );
        let e = self.restart.kept(self.group, self.client_address.get().copied()).await;
        Err(storage_error(format!("cannot restart to install a snapshot: {e}")))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        self.snapshots.current().await.map_err(storage_error)
    }
}

/// Why a snapshot failed, for the unauthenticated health endpoint: the operating system's
/// reason ("No space left on device") without the paths the log has.
fn without_paths(e: &KalamError) -> String {
    match e {
        KalamError::Io { op, source, .. } => format!("cannot {op} a snapshot file: {source}"),
        KalamError::Storage(_) => "the database cannot make a checkpoint (see the node's log)".into(),
        other => other.public_message(),
    }
}

/// Takes snapshots of this node's database (see the snapshot module).
pub(super) struct SnapshotBuilder {
    group: GroupId,
    db: Arc<Database>,
    gate: Arc<tokio::sync::Mutex<()>>,
    snapshots: Snapshots,
    problems: Problems,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    /// A failed snapshot (a full disk, say) is not a reason to stop the node: openraft would
    /// stop it on a storage error, so it gets a snapshot no newer than the one it has, which it
    /// ignores; the log is not purged, and the next attempt comes after as many entries as a
    /// snapshot normally takes. The error shows in the node's health and `system.cluster`.
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let db = self.db.clone();
        let group = self.group;
        let applied = stored_position(&db, group).ok().and_then(|(applied, _)| applied).map_or(0, |l| l.index);
        let every = db.config.cluster.snapshot_every_entries;
        if self.problems.snapshot_recently_failed(group, applied, every) {
            return self.snapshots.not_newer().await.map_err(storage_error);
        }
        let position = || -> Result<SnapshotMeta<u64, BasicNode>> {
            let (applied, membership) = stored_position(&db, group)?;
            let last = applied.ok_or_else(|| KalamError::internal("a snapshot of a node that applied nothing"))?;
            Ok(SnapshotMeta {
                last_log_id: Some(last),
                last_membership: membership,
                snapshot_id: format!("{}-{}-{}", last.leader_id.term, last.index, crate::clock::now_micros()),
            })
        };
        match self.snapshots.build(&self.db, &self.gate, position).await {
            Ok(snapshot) => {
                self.problems.snapshot_taken(group);
                Ok(snapshot)
            }
            Err(e) => {
                tracing::error!(
                    group = group.0,
                    applied,
                    "cannot take a snapshot; the log is kept and the snapshot tried again after {every} more entries: {}",
                    e.report()
                );
                self.problems.snapshot_failed(group, applied, without_paths(&e));
                self.snapshots.not_newer().await.map_err(storage_error)
            }
        }
    }
}
