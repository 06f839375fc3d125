//! KILL LIVE QUERY.

use crate::error::{KalamError, Result};
use crate::live::registry::Outgoing;
use crate::sql::{ExecContext, results};
use kalamdb_client_core::protocol::{QueryResult, Role};

/// Ends a subscription: the client gets an error frame with code `KILLED` for it. Users may
/// kill their own; dba and system any. Another user's live id is reported as not found.
pub(crate) fn live_query(cx: &ExecContext<'_>, live_id: &str) -> Result<QueryResult> {
    let not_found = || KalamError::Validation(format!("no live query '{live_id}'"));
    let sub = cx.db.live.get(live_id).ok_or_else(not_found)?;
    if sub.user_id != cx.principal.user_id && cx.principal.role < Role::Dba {
        return Err(not_found());
    }
    cx.db.live.unregister(live_id);
    let reason = format!("killed by {}", cx.principal.username);
    if sub.sender.try_send(Outgoing::Killed { sub: sub.clone(), reason }).is_err() {
        // The connection is gone or too slow to hear it; it is unregistered either way.
        sub.signal.overflow();
    }
    Ok(results::message(1, format!("Live query '{live_id}' killed")))
}
