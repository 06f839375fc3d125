//! KILL LIVE QUERY.

use crate::error::{KalamError, Result};
use crate::live::listing::LiveKill;
use crate::sql::{ExecContext, results};
use kalamdb_client_core::protocol::{QueryResult, Role};

/// Ends a subscription: the client gets an error frame with code `KILLED` for it. Users may
/// kill their own; dba and system any. Another user's live id is reported as not found. In a
/// cluster the live query may be served by any node (each serves its own WebSocket
/// sessions): the others are asked when this one does not serve it.
pub(crate) async fn live_query(cx: &ExecContext<'_>, live_id: &str) -> Result<QueryResult> {
    let kill = LiveKill {
        live_id: live_id.to_string(),
        owner: (cx.principal.role < Role::Dba).then_some(cx.principal.user_id),
        by: cx.principal.username.clone(),
    };
    let killed = cx.db.live.kill(&kill)
        || match cx.db.replication() {
            Some(replication) => replication.kill_live_query_elsewhere(&kill).await,
            None => false,
        };
    match killed {
        true => Ok(results::message(1, format!("Live query '{live_id}' killed"))),
        false => Err(KalamError::Validation(format!("no live query '{live_id}'"))),
    }
}
