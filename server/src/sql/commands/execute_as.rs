//! `EXECUTE AS USER 'name' (statement)`: who may act as whom.

use crate::auth::Principal;
use crate::error::{KalamError, Result};
use crate::sql::ExecContext;
use kalamdb_client_core::protocol::Role;

/// The principal the inner statement runs as. Service and above may act as users and
/// services; dba and system also as roles up to their own. Plain users may not.
pub(crate) fn target(cx: &ExecContext<'_>, username: &str) -> Result<Principal> {
    cx.principal.require(Role::Service, "EXECUTE AS USER")?;
    let user = cx.db.catalog.user_by_name(username).ok_or_else(|| KalamError::UserNotFound(username.to_string()))?;
    if user.role > cx.principal.role {
        return Err(KalamError::Forbidden(format!(
            "a {} cannot act as '{}' (role {})",
            cx.principal.role, user.username, user.role
        )));
    }
    Ok(Principal::from_user(&user))
}
