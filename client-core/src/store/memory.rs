//! The in-memory store: for native clients, Node and tests.
//!
//! Clones share one state, so a test can "reload the app" by starting a new client on a
//! clone of the store it used before.
//!
//! Rows are kept typed, as the replica keeps them ([`SubscriptionRows`]), and shared with it:
//! a commit through [`ReplicaStore::commit_applied`] takes the replica's typed rows instead of
//! typing them again, and a snapshot hands out the store's rows, so a replica and its memory
//! store hold one copy of each row.

use super::{
    OutboxEntry, ReplicaStore, RowsBySubscription, Snapshot, StoreError, StoreOp, SubscriptionId, SubscriptionRecord,
    sort_outbox,
};
use crate::replica::{Outbox, Replica, SubscriptionRows, table_row_columns};
use futures::future::LocalBoxFuture;
use litemap::{Entry, LiteMap};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct State {
    subs: LiteMap<SubscriptionId, SubscriptionRecord>,
    rows: RowsBySubscription,
    /// The replica's own outbox type (not a map by `(client_id, seq)`: one B-tree type less
    /// in the wasm bundle, ~10 KB).
    outbox: Outbox,
    meta: BTreeMap<String, Value>,
}

impl State {
    /// Types the rows of every subscription of `table` to its columns (they changed).
    fn refresh_table(&mut self, table: &str) {
        let columns = table_row_columns(self.subs.values(), table);
        for (id, rows) in self.rows.iter_mut() {
            if self.subs.get(id).is_some_and(|r| r.table == table) {
                rows.set_columns(columns.clone());
            }
        }
    }

    /// The rows of `sub`, made typed to its table's columns if it has none yet.
    fn rows_of(&mut self, sub: SubscriptionId) -> &mut SubscriptionRows {
        let subs = &self.subs;
        match self.rows.entry(sub) {
            Entry::Occupied(rows) => rows.into_mut(),
            Entry::Vacant(e) => {
                let columns = subs.get(e.key()).and_then(|r| table_row_columns(subs.values(), &r.table));
                e.insert(SubscriptionRows::new(columns))
            }
        }
    }

    fn apply(&mut self, op: StoreOp, replica: Option<&Replica>) {
        match op {
            StoreOp::PutSubscription(r) => {
                let (table, old) = (r.table.clone(), self.subs.insert(r.id.clone(), r));
                self.refresh_table(&table);
                if let Some(old) = old.filter(|o| o.table != table) {
                    self.refresh_table(&old.table);
                }
            }
            StoreOp::DeleteSubscription(id) => {
                self.rows.remove(&id);
                if let Some(old) = self.subs.remove(&id) {
                    self.refresh_table(&old.table);
                }
            }
            StoreOp::PutRow { sub, pk, row } => {
                let shared = replica.and_then(|r| r.subscription(&sub)).map(|d| &d.rows);
                let rows = self.rows_of(sub);
                match (row.typed_to(rows.columns()), shared) {
                    // A row the engine typed is the replica's row itself: kept without a look-up.
                    (Some(typed), _) => rows.put_typed(&pk, Arc::clone(typed)),
                    (None, Some(shared)) => rows.put_shared(pk, &row.json(), shared),
                    (None, None) => rows.put(pk, &row.json()),
                }
            }
            StoreOp::DeleteRow { sub, pk } => {
                if let Some(rows) = self.rows.get_mut(&sub) {
                    rows.remove(&pk);
                }
            }
            StoreOp::ClearRows(sub) => {
                if let Some(rows) = self.rows.get_mut(&sub) {
                    rows.clear();
                }
            }
            StoreOp::PutOutbox(e) => {
                self.outbox.put(e);
            }
            StoreOp::DeleteOutbox { client_id, seq } => {
                self.outbox.remove(&client_id, seq);
            }
            StoreOp::PutMeta { key, value } => {
                self.meta.insert(key, value);
            }
        }
    }
}

/// A [`ReplicaStore`] kept in memory.
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn commit_ops(&self, ops: Vec<StoreOp>, replica: Option<&Replica>) -> LocalBoxFuture<'_, Result<(), StoreError>> {
        // Holding the lock for the whole list makes the commit atomic for every reader.
        let mut s = self.state.lock().expect("memory store poisoned");
        for op in ops {
            s.apply(op, replica);
        }
        Box::pin(async { Ok(()) })
    }
}

impl ReplicaStore for MemoryStore {
    fn load(&self) -> LocalBoxFuture<'_, Result<Snapshot, StoreError>> {
        let s = self.state.lock().expect("memory store poisoned");
        let mut outbox: Vec<OutboxEntry> = s.outbox.iter().cloned().collect();
        sort_outbox(&mut outbox);
        // The rows themselves are shared, not copied (only the keys and their index are).
        let mut rows = s.rows.clone();
        rows.retain(|_, rows| !rows.is_empty());
        let snapshot = Snapshot {
            subscriptions: s.subs.values().cloned().collect(),
            rows,
            outbox,
            meta: s.meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        Box::pin(async move { Ok(snapshot) })
    }

    fn commit(&self, ops: Vec<StoreOp>) -> LocalBoxFuture<'_, Result<(), StoreError>> {
        self.commit_ops(ops, None)
    }

    fn commit_applied(&self, ops: Vec<StoreOp>, replica: &Replica) -> LocalBoxFuture<'_, Result<(), StoreError>> {
        self.commit_ops(ops, Some(replica))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ColumnInfo;
    use crate::protocol::ws::ServerMessage;
    use crate::sync::SyncEngine;
    use futures::FutureExt;
    use serde_json::json;

    /// The rows a replica applied and its memory store committed are one copy: the same
    /// allocation in both, and in a replica loaded again from the store.
    #[test]
    fn the_store_and_its_replica_share_one_copy_of_each_row() {
        let store = MemoryStore::new();
        let (mut e, init) = SyncEngine::new(Snapshot::default(), || "c1".into());
        let commit = |ops, e: &SyncEngine| store.commit_applied(ops, e.replica()).now_or_never().unwrap().unwrap();
        commit(init, &e);
        let fx = e.subscribe(SubscriptionId("s".into()), "SELECT * FROM app.t".into()).unwrap();
        commit(fx.commit, &e);
        let schema = vec![ColumnInfo::new("id", "TEXT"), ColumnInfo::new("n", "BIGINT")];
        for msg in [
            ServerMessage::Subscribed { id: "s".into(), live_id: "l".into(), schema, primary_key: "id".into() },
            ServerMessage::Batch {
                id: "s".into(),
                rows: vec![vec![json!("a"), json!(1)], vec![json!("b"), json!(2)]],
                deleted: vec![],
                cursor: 1,
                reset: false,
                last: true,
            },
        ] {
            let fx = e.on_message(msg, 0.0);
            commit(fx.commit, &e);
        }
        let stored = store.load().now_or_never().unwrap().unwrap();
        let sub = SubscriptionId("s".into());
        let in_replica =
            |e: &SyncEngine, key: &str| Arc::clone(e.replica().subscription(&sub).unwrap().rows.get(key).unwrap());
        for key in ["\"a\"", "\"b\""] {
            assert!(Arc::ptr_eq(stored.rows[&sub].get(key).unwrap(), &in_replica(&e, key)), "{key}");
        }
        let (reloaded, _) = SyncEngine::new(stored, || unreachable!("the client id is stored"));
        assert!(Arc::ptr_eq(&in_replica(&reloaded, "\"a\""), &in_replica(&e, "\"a\"")));
        assert_eq!(reloaded.query("SELECT sum(n) AS total FROM app.t", &[]).unwrap().rows, vec![vec![json!(3)]]);
    }
}
