//! KILL LIVE QUERY.

use crate::error::Result;
use crate::live::listing::LiveKill;
use crate::replication::KilledElsewhere;
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
    let elsewhere = match (cx.db.live.kill(&kill), cx.db.replication()) {
        (true, _) => KilledElsewhere::Killed,
        (false, Some(replication)) => replication.kill_live_query_elsewhere(&kill).await,
        (false, None) => KilledElsewhere::Unknown,
    };
    match elsewhere {
        KilledElsewhere::Killed => Ok(results::message(1, format!("Live query '{live_id}' killed"))),
        other => Err(other.refusal(&format!("live query '{live_id}'"))),
    }
}
