//! The in-memory store: for native clients, Node and tests.
//!
//! Clones share one state, so a test can "reload the app" by starting a new client on a
//! clone of the store it used before.

use super::{OutboxEntry, ReplicaStore, Row, Snapshot, StoreError, StoreOp, SubscriptionId, SubscriptionRecord};
use crate::replica::empty_rows_of;
use futures::future::LocalBoxFuture;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct State {
    subs: BTreeMap<SubscriptionId, SubscriptionRecord>,
    rows: BTreeMap<SubscriptionId, BTreeMap<String, Row>>,
    outbox: BTreeMap<(String, u64), OutboxEntry>,
    meta: BTreeMap<String, Value>,
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
}

impl ReplicaStore for MemoryStore {
    fn load(&self) -> LocalBoxFuture<'_, Result<Snapshot, StoreError>> {
        let s = self.state.lock().expect("memory store poisoned");
        let mut outbox: Vec<OutboxEntry> = s.outbox.values().cloned().collect();
        outbox.sort_by(|a, b| {
            a.created_ms.total_cmp(&b.created_ms).then_with(|| (&a.client_id, a.seq).cmp(&(&b.client_id, b.seq)))
        });
        let records: Vec<&SubscriptionRecord> = s.subs.values().collect();
        let mut rows = empty_rows_of(&records);
        for (sub, stored) in &s.rows {
            let typed = rows.entry(sub.clone()).or_default();
            for (pk, row) in stored {
                typed.put(pk.clone(), row.clone());
            }
        }
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
        // Holding the lock for the whole list makes the commit atomic for every reader.
        let mut s = self.state.lock().expect("memory store poisoned");
        for op in ops {
            match op {
                StoreOp::PutSubscription(r) => {
                    s.subs.insert(r.id.clone(), r);
                }
                StoreOp::DeleteSubscription(id) => {
                    s.subs.remove(&id);
                    s.rows.remove(&id);
                }
                StoreOp::PutRow { sub, pk, row } => {
                    s.rows.entry(sub).or_default().insert(pk, row);
                }
                StoreOp::DeleteRow { sub, pk } => {
                    if let Some(rows) = s.rows.get_mut(&sub) {
                        rows.remove(&pk);
                    }
                }
                StoreOp::ClearRows(sub) => {
                    s.rows.remove(&sub);
                }
                StoreOp::PutOutbox(e) => {
                    s.outbox.insert((e.client_id.clone(), e.seq), e);
                }
                StoreOp::DeleteOutbox { client_id, seq } => {
                    s.outbox.remove(&(client_id, seq));
                }
                StoreOp::PutMeta { key, value } => {
                    s.meta.insert(key, value);
                }
            }
        }
        Box::pin(async { Ok(()) })
    }
}
