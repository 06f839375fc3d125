//! What `system.live_queries` shows and what `KILL LIVE QUERY` does, for this node's
//! subscriptions. In a cluster a node also answers these for the others (each serves its
//! own WebSocket sessions, relayed ones included), so both work from any node.

use crate::ids::UserId;
use crate::live::registry::{LiveRegistry, Outgoing};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;

/// One live query as `system.live_queries` shows it (without the node serving it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LiveQueryInfo {
    pub live_id: String,
    pub connection_id: String,
    /// The client's id for the subscription.
    pub subscription_id: String,
    pub user_id: UserId,
    pub username: String,
    pub namespace: String,
    pub table_name: String,
    pub query: String,
    pub options: serde_json::Value,
    pub created_at: i64,
    pub updated_at: i64,
    pub changes: u64,
}

/// A `KILL LIVE QUERY` as the node that runs it passes it on: `owner` is set when the
/// caller may end only their own live queries (below dba).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LiveKill {
    pub live_id: String,
    pub owner: Option<UserId>,
    /// Who asked, for the reason the client is told.
    pub by: String,
}

impl LiveRegistry {
    /// The live queries of `owner`, or all of them (`None`).
    pub(crate) fn describe(&self, owner: Option<UserId>) -> Vec<LiveQueryInfo> {
        self.snapshot()
            .into_iter()
            .filter(|s| owner.is_none_or(|u| s.user_id == u))
            .map(|s| LiveQueryInfo {
                live_id: s.live_id.clone(),
                connection_id: s.connection_id.clone(),
                subscription_id: s.id.clone(),
                user_id: s.user_id,
                username: s.username.clone(),
                namespace: s.query.table.namespace.to_string(),
                table_name: s.query.table.name.clone(),
                query: s.sql.clone(),
                options: s.options.clone(),
                created_at: s.created_at,
                updated_at: s.updated_at.load(Ordering::Relaxed),
                changes: s.changes.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Ends the live query `kill.live_id` if this node serves it and the caller may end it;
    /// its client is told who ended it. `false` if not (another user's live query is
    /// treated as unknown, so that its existence is not revealed).
    pub(crate) fn kill(&self, kill: &LiveKill) -> bool {
        let Some(sub) = self.get(&kill.live_id) else { return false };
        if kill.owner.is_some_and(|u| u != sub.user_id) {
            return false;
        }
        self.unregister(&kill.live_id);
        let reason = format!("killed by {}", kill.by);
        if sub.sender.try_send(Outgoing::Killed { sub: sub.clone(), reason }).is_err() {
            // The connection is gone or too slow to hear it; it is unregistered either way.
            sub.signal.overflow();
        }
        true
    }
}
