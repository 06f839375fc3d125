//! The logs of the Raft groups a node replicates, in one RocksDB instance of its own
//! (`{data_dir}/raft`), apart from the data they are applied to.
//!
//! Keys start with the group id (4 bytes, big-endian), so each group's records are one
//! contiguous range:
//! - column family `entries`: `group ‖ index` (8 bytes, big-endian) → the entry (JSON);
//! - column family `state`: `group ‖ "vote"`, `group ‖ "committed"`, `group ‖ "purged"` →
//!   the vote, the last committed log id and the last purged log id (JSON).
//!
//! A vote is synced to RocksDB's write-ahead log before it is acknowledged (a node must never
//! vote twice in a term, even after losing power), on tokio's blocking pool so that no async
//! worker waits for the disk. Appends, truncations and purges are synced too when the log
//! is opened with [`Durability::Synced`]; with [`Durability::Buffered`] they reach the
//! operating system before they are acknowledged (they survive the process being killed, not
//! the machine losing power), like the server's commits without `storage.sync_writes`.

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogId, RaftLogReader, RaftTypeConfig, StorageError,
    StorageIOError, Vote,
};
use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const CF_ENTRIES: &str = "entries";
const CF_STATE: &str = "state";
const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const PURGED: &[u8] = b"purged";

/// A Raft group: 0 is the metadata group, 1..=N the data groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupId(pub u32);

impl GroupId {
    fn prefix(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }

    fn entry_key(self, index: u64) -> [u8; 12] {
        let mut key = [0; 12];
        key[..4].copy_from_slice(&self.prefix());
        key[4..].copy_from_slice(&index.to_be_bytes());
        key
    }

    fn state_key(self, name: &[u8]) -> Vec<u8> {
        [&self.prefix()[..], name].concat()
    }
}

/// The log store could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the Raft log store at {}: {source}", path.display())]
pub struct OpenError {
    path: PathBuf,
    #[source]
    source: rocksdb::Error,
}

/// When an append counts as written (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Synced to disk (fsync) before it is acknowledged: survives power loss.
    Synced,
    /// Handed to the operating system before it is acknowledged: survives the process
    /// being killed; a power loss of a majority can lose acknowledged writes.
    Buffered,
}

/// The RocksDB instance holding the logs of every group of a node.
pub struct RaftLogs {
    db: Arc<DB>,
    durability: Durability,
}

impl RaftLogs {
    /// Opens (or creates) the log store at `path`.
    pub fn open(path: &Path, durability: Durability) -> Result<RaftLogs, OpenError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let families = [CF_ENTRIES, CF_STATE].map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&options, path, families)
            .map_err(|source| OpenError { path: path.to_path_buf(), source })?;
        Ok(RaftLogs { db: Arc::new(db), durability })
    }

    /// The log of `group`, for a Raft instance of type config `C`.
    pub fn group<C: RaftTypeConfig>(&self, group: GroupId) -> LogStore<C> {
        LogStore { db: self.db.clone(), group, durability: self.durability, _config: PhantomData }
    }

    /// Forgets everything of `group` (its entries, vote, committed and purged marks), synced:
    /// for a node that has left the group, so that if it ever joins it again it starts from
    /// nothing (the leader's snapshot). Only for a group the node does not vote in (a voter
    /// must never forget its vote or what it acknowledged), and with no Raft instance of the
    /// group running.
    pub fn forget_group(&self, group: GroupId) -> Result<(), rocksdb::Error> {
        let (entries, state) = (self.db.cf_handle(CF_ENTRIES), self.db.cf_handle(CF_STATE));
        let (Some(entries), Some(state)) = (entries, state) else { return Ok(()) };
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(entries, group.entry_key(0), GroupId(group.0.saturating_add(1)).entry_key(0));
        for name in [VOTE, COMMITTED, PURGED] {
            batch.delete_cf(state, group.state_key(name));
        }
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(batch, &options)
    }
}

/// One group's log: openraft's `RaftLogStorage` (and its own log reader).
pub struct LogStore<C> {
    db: Arc<DB>,
    group: GroupId,
    durability: Durability,
    _config: PhantomData<fn() -> C>,
}

impl<C> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        LogStore { db: self.db.clone(), group: self.group, durability: self.durability, _config: PhantomData }
    }
}

type StorageResult<T, C> = Result<T, StorageError<<C as RaftTypeConfig>::NodeId>>;

fn io_error<C: RaftTypeConfig>(
    subject: ErrorSubject<C::NodeId>,
    verb: ErrorVerb,
    error: &(impl std::error::Error + 'static),
) -> StorageError<C::NodeId> {
    StorageError::IO { source: StorageIOError::new(subject, verb, AnyError::new(error)) }
}

impl<C: RaftTypeConfig> LogStore<C> {
    fn cf(&self, name: &str) -> &ColumnFamily {
        self.db.cf_handle(name).expect("the log store is opened with its column families")
    }

    fn read_state<T: DeserializeOwned>(
        &self,
        name: &[u8],
        subject: ErrorSubject<C::NodeId>,
    ) -> StorageResult<Option<T>, C> {
        let bytes = self
            .db
            .get_cf(self.cf(CF_STATE), self.group.state_key(name))
            .map_err(|e| io_error::<C>(subject.clone(), ErrorVerb::Read, &e))?;
        bytes.map(|b| serde_json::from_slice(&b)).transpose().map_err(|e| io_error::<C>(subject, ErrorVerb::Read, &e))
    }

    fn put_state(&self, batch: &mut WriteBatch, name: &[u8], value: &impl Serialize) {
        let bytes = serde_json::to_vec(value).expect("log ids and votes serialise");
        batch.put_cf(self.cf(CF_STATE), self.group.state_key(name), bytes);
    }

    /// Writes `batch` synced to the write-ahead log (on the blocking pool) if `sync`, or
    /// else here: an unsynced RocksDB write only copies into memory and the OS.
    async fn write(&self, batch: WriteBatch, sync: bool, subject: ErrorSubject<C::NodeId>) -> StorageResult<(), C> {
        if !sync {
            return self.db.write(batch).map_err(|e| io_error::<C>(subject, ErrorVerb::Write, &e));
        }
        let db = self.db.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut options = WriteOptions::default();
            options.set_sync(sync);
            db.write_opt(batch, &options)
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(io_error::<C>(subject, ErrorVerb::Write, &e)),
            Err(e) => Err(io_error::<C>(subject, ErrorVerb::Write, &e)),
        }
    }

    fn synced(&self) -> bool {
        self.durability == Durability::Synced
    }

    /// The id of the last entry in the log (not counting purged ones).
    fn last_entry_id(&self) -> StorageResult<Option<LogId<C::NodeId>>, C> {
        let mut it = self.db.raw_iterator_cf(self.cf(CF_ENTRIES));
        it.seek_for_prev(self.group.entry_key(u64::MAX));
        let last = match (it.key(), it.value()) {
            (Some(key), Some(value)) if key.starts_with(&self.group.prefix()) => {
                let entry: C::Entry = serde_json::from_slice(value)
                    .map_err(|e| io_error::<C>(ErrorSubject::Logs, ErrorVerb::Read, &e))?;
                Some(entry.get_log_id().clone())
            }
            _ => None,
        };
        it.status().map_err(|e| io_error::<C>(ErrorSubject::Logs, ErrorVerb::Seek, &e))?;
        Ok(last)
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for LogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<C::Entry>, C> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let from = self.group.entry_key(start);
        let mut entries = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_ENTRIES), IteratorMode::From(&from, Direction::Forward)) {
            let (key, value) = item.map_err(|e| io_error::<C>(ErrorSubject::Logs, ErrorVerb::Read, &e))?;
            let index = match key.strip_prefix(&self.group.prefix()) {
                Some(index) => u64::from_be_bytes(index.try_into().expect("entry keys are 12 bytes")),
                None => break,
            };
            if !range.contains(&index) {
                break;
            }
            entries.push(
                serde_json::from_slice(&value).map_err(|e| io_error::<C>(ErrorSubject::Logs, ErrorVerb::Read, &e))?,
            );
        }
        Ok(entries)
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for LogStore<C> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<C>, C> {
        let last_purged_log_id: Option<LogId<C::NodeId>> = self.read_state(PURGED, ErrorSubject::Store)?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id.clone());
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> StorageResult<(), C> {
        let mut batch = WriteBatch::default();
        self.put_state(&mut batch, VOTE, vote);
        self.write(batch, true, ErrorSubject::Vote).await
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<C::NodeId>>, C> {
        self.read_state(VOTE, ErrorSubject::Vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<C::NodeId>>) -> StorageResult<(), C> {
        // Not synced: a committed marker lost in a crash only means re-applying entries
        // that the state machine will report as applied already.
        let mut batch = WriteBatch::default();
        self.put_state(&mut batch, COMMITTED, &committed);
        self.write(batch, false, ErrorSubject::Store).await
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<C::NodeId>>, C> {
        Ok(self.read_state::<Option<LogId<C::NodeId>>>(COMMITTED, ErrorSubject::Store)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<C>) -> StorageResult<(), C>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        for entry in entries {
            let bytes =
                serde_json::to_vec(&entry).map_err(|e| io_error::<C>(ErrorSubject::Logs, ErrorVerb::Write, &e))?;
            batch.put_cf(self.cf(CF_ENTRIES), self.group.entry_key(entry.get_log_id().index), bytes);
        }
        let written = self.write(batch, self.synced(), ErrorSubject::Logs).await;
        callback.log_io_completed(match &written {
            Ok(()) => Ok(()),
            Err(e) => Err(std::io::Error::other(e.to_string())),
        });
        written
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> StorageResult<(), C> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.cf(CF_ENTRIES), self.group.entry_key(log_id.index), self.group.entry_key(u64::MAX));
        self.write(batch, self.synced(), ErrorSubject::Logs).await
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> StorageResult<(), C> {
        // The marker and the deletion in one batch: a crash leaves both or neither.
        let mut batch = WriteBatch::default();
        self.put_state(&mut batch, PURGED, &log_id);
        batch.delete_range_cf(
            self.cf(CF_ENTRIES),
            self.group.entry_key(0),
            self.group.entry_key(log_id.index.saturating_add(1)),
        );
        self.write(batch, self.synced(), ErrorSubject::Logs).await
    }
}

#[cfg(test)]
mod tests;
