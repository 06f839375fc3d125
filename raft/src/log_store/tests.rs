//! The log store against openraft's own storage test suite, plus what the suite does not
//! cover: several groups in one store, and durability across a reopen.

use super::*;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{BasicNode, EntryPayload, RaftSnapshotBuilder, SnapshotMeta, StoredMembership};
use std::io::Cursor;
use std::sync::Mutex;

openraft::declare_raft_types!(
    TestConfig:
        D = u64,
        R = u64,
        Node = BasicNode,
);

/// The smallest correct state machine: what it applied and the membership. The suite needs
/// one beside the log store; the server's own is the commit path.
#[derive(Clone, Default)]
struct MemoryMachine(Arc<Mutex<MachineState>>);

#[derive(Default)]
struct MachineState {
    applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    sum: u64,
    snapshot: Option<(SnapshotMeta<u64, BasicNode>, Vec<u8>)>,
    snapshots_built: u64,
}

type Image = (Option<LogId<u64>>, StoredMembership<u64, BasicNode>, u64);

impl RaftSnapshotBuilder<TestConfig> for MemoryMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TestConfig>, StorageError<u64>> {
        let mut state = self.0.lock().unwrap();
        state.snapshots_built += 1;
        let meta = SnapshotMeta {
            last_log_id: state.applied,
            last_membership: state.membership.clone(),
            snapshot_id: state.snapshots_built.to_string(),
        };
        let image: Image = (state.applied, state.membership.clone(), state.sum);
        let data = serde_json::to_vec(&image).unwrap();
        state.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TestConfig> for MemoryMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let state = self.0.lock().unwrap();
        Ok((state.applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<u64>, StorageError<u64>>
    where
        I: IntoIterator<Item = openraft::Entry<TestConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = self.0.lock().unwrap();
        let mut replies = Vec::new();
        for entry in entries {
            state.applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(n) => state.sum += n,
                EntryPayload::Membership(m) => state.membership = StoredMembership::new(Some(entry.log_id), m),
            }
            replies.push(state.sum);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let (applied, membership, sum): Image = serde_json::from_slice(&data).unwrap();
        let mut state = self.0.lock().unwrap();
        (state.applied, state.membership, state.sum) = (applied, membership, sum);
        state.snapshot = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TestConfig>>, StorageError<u64>> {
        let state = self.0.lock().unwrap();
        Ok(state.snapshot.clone().map(|(meta, data)| Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}

/// A fresh store in a temp dir for every suite case (the dir lives as long as the case).
struct Builder(Durability);

impl StoreBuilder<TestConfig, LogStore<TestConfig>, MemoryMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore<TestConfig>, MemoryMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().unwrap();
        let logs = RaftLogs::open(dir.path(), self.0).unwrap();
        // A group other than the first, with a neighbour holding entries, so that a range
        // reaching past the group's own keys would show.
        let mut neighbour = logs.group::<TestConfig>(GroupId(8));
        neighbour.save_vote(&Vote::new(9, 9)).await?;
        let store = logs.group(GroupId(7));
        Ok((dir, store, MemoryMachine::default()))
    }
}

#[test]
fn the_log_store_passes_openrafts_storage_suite() {
    Suite::test_all(Builder(Durability::Synced)).unwrap();
}

#[test]
fn the_buffered_log_store_passes_openrafts_storage_suite() {
    Suite::test_all(Builder(Durability::Buffered)).unwrap();
}

fn entry(term: u64, index: u64, n: u64) -> openraft::Entry<TestConfig> {
    openraft::Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(term, 1), index),
        payload: EntryPayload::Normal(n),
    }
}

/// Appends without waiting for openraft's flush notification (the write is synced before
/// `append` returns, which is what the notification reports).
async fn append(store: &mut LogStore<TestConfig>, entries: Vec<openraft::Entry<TestConfig>>) {
    let mut batch = WriteBatch::default();
    for e in &entries {
        batch.put_cf(store.cf(CF_ENTRIES), store.group.entry_key(e.log_id.index), serde_json::to_vec(e).unwrap());
    }
    store.write(batch, true, ErrorSubject::Logs).await.unwrap();
}

#[tokio::test]
async fn groups_share_one_store_without_seeing_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let logs = RaftLogs::open(dir.path(), Durability::Synced).unwrap();
    let (mut a, mut b) = (logs.group::<TestConfig>(GroupId(1)), logs.group::<TestConfig>(GroupId(2)));
    append(&mut a, (1..=5).map(|i| entry(1, i, i)).collect()).await;
    append(&mut b, (1..=3).map(|i| entry(2, i, 10 * i)).collect()).await;
    a.save_vote(&Vote::new(1, 1)).await.unwrap();
    assert_eq!(a.try_get_log_entries(..).await.unwrap().len(), 5);
    assert_eq!(b.try_get_log_entries(..).await.unwrap().iter().map(|e| e.log_id.index).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(b.get_log_state().await.unwrap().last_log_id.map(|l| l.index), Some(3));
    assert_eq!(b.read_vote().await.unwrap(), None);
    // Purging and truncating one group leaves the other whole.
    a.purge(LogId::new(openraft::CommittedLeaderId::new(1, 1), 2)).await.unwrap();
    a.truncate(LogId::new(openraft::CommittedLeaderId::new(1, 1), 5)).await.unwrap();
    assert_eq!(a.try_get_log_entries(..).await.unwrap().iter().map(|e| e.log_id.index).collect::<Vec<_>>(), [3, 4]);
    assert_eq!(b.try_get_log_entries(..).await.unwrap().len(), 3);
}

#[tokio::test]
async fn the_vote_the_log_and_the_purge_marker_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let logs = RaftLogs::open(dir.path(), Durability::Synced).unwrap();
        let mut store = logs.group::<TestConfig>(GroupId(3));
        append(&mut store, (1..=4).map(|i| entry(2, i, i)).collect()).await;
        store.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
        store.purge(LogId::new(openraft::CommittedLeaderId::new(2, 1), 1)).await.unwrap();
    }
    let logs = RaftLogs::open(dir.path(), Durability::Synced).unwrap();
    let mut store = logs.group::<TestConfig>(GroupId(3));
    assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new_committed(2, 1)));
    let state = store.get_log_state().await.unwrap();
    assert_eq!((state.last_purged_log_id.map(|l| l.index), state.last_log_id.map(|l| l.index)), (Some(1), Some(4)));
    let entries = store.try_get_log_entries(2..).await.unwrap();
    assert_eq!(entries.iter().map(|e| e.payload.clone()).collect::<Vec<_>>(), [2, 3, 4].map(EntryPayload::Normal));
}

#[tokio::test]
async fn forgetting_a_group_leaves_it_pristine_and_the_others_whole() {
    let dir = tempfile::tempdir().unwrap();
    let logs = RaftLogs::open(dir.path(), Durability::Synced).unwrap();
    let (mut a, mut b) = (logs.group::<TestConfig>(GroupId(4)), logs.group::<TestConfig>(GroupId(5)));
    append(&mut a, (1..=5).map(|i| entry(1, i, i)).collect()).await;
    append(&mut b, (1..=3).map(|i| entry(2, i, i)).collect()).await;
    for store in [&mut a, &mut b] {
        store.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
        store.save_committed(Some(LogId::new(openraft::CommittedLeaderId::new(1, 1), 2))).await.unwrap();
    }
    a.purge(LogId::new(openraft::CommittedLeaderId::new(1, 1), 2)).await.unwrap();
    logs.forget_group(GroupId(4)).unwrap();
    let state = a.get_log_state().await.unwrap();
    assert_eq!((state.last_purged_log_id, state.last_log_id), (None, None));
    assert_eq!(a.read_vote().await.unwrap(), None);
    assert_eq!(a.read_committed().await.unwrap(), None);
    assert!(a.try_get_log_entries(..).await.unwrap().is_empty());
    assert_eq!(b.try_get_log_entries(..).await.unwrap().len(), 3);
    assert_eq!(b.read_vote().await.unwrap(), Some(Vote::new_committed(2, 1)));
}
