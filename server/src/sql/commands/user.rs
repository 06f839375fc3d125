//! CREATE / ALTER / DROP USER.

use crate::auth::bootstrap::ROOT_USERNAME;
use crate::auth::{Principal, password};
use crate::error::{KalamError, Result};
use crate::sql::ast::AlterUserAction;
use crate::sql::context::{Applying, Origin};
use crate::sql::{ExecContext, results};
use kalamdb_client_core::protocol::{QueryResult, Role};

/// Only a system user may create or promote to `system`.
fn check_grant(principal: &Principal, granted: Role) -> Result<()> {
    if granted > principal.role {
        return Err(KalamError::Forbidden(format!("a {} cannot grant role {granted}", principal.role)));
    }
    Ok(())
}

fn validate_email(email: &str) -> Result<()> {
    let ok = email.len() <= 254 && email.split_once('@').is_some_and(|(a, b)| !a.is_empty() && b.contains('.'));
    if ok { Ok(()) } else { Err(KalamError::Validation(format!("invalid email '{email}'"))) }
}

/// The hash of the password a statement sets: the one its replicated log entry carries, or
/// a new one (after checking the password's strength).
pub(crate) async fn password_hash(cx: &ExecContext<'_>, pw: &str) -> Result<String> {
    if let Origin::Log(Applying { password_hash: Some(hash), .. }) = &cx.origin {
        return Ok(hash.clone());
    }
    password::validate(pw)?;
    password::hash(pw.to_string(), cx.db.auth.bcrypt_cost()).await
}

pub(crate) async fn create(
    cx: &ExecContext<'_>,
    name: &str,
    pw: &str,
    role_spec: Option<Role>,
    email: Option<&str>,
) -> Result<QueryResult> {
    cx.principal.require(Role::Dba, "CREATE USER")?;
    let role = role_spec.unwrap_or(Role::User);
    check_grant(&cx.principal, role)?;
    crate::catalog::validate_username(name)?;
    if let Some(e) = email {
        validate_email(e)?;
    }
    if cx.db.catalog.user_by_name(name).is_some() {
        return Err(KalamError::AlreadyExists(format!("user '{name}' already exists")));
    }
    let hash = password_hash(cx, pw).await?;
    let user = cx.db.catalog.create_user(None, name, hash, role, email.map(str::to_string), cx.now())?;
    Ok(results::message(1, format!("User '{}' created with role {} (id {})", user.username, user.role, user.id)))
}

pub(crate) async fn alter(cx: &ExecContext<'_>, name: &str, action: &AlterUserAction) -> Result<QueryResult> {
    let mut user = cx.db.catalog.user_by_name(name).ok_or_else(|| KalamError::UserNotFound(name.to_string()))?;
    let is_self = user.id == cx.principal.user_id;
    match action {
        AlterUserAction::Password(pw) => {
            if !is_self {
                cx.principal.require(Role::Dba, "changing another user's password")?;
                check_grant(&cx.principal, user.role)?;
            }
            user.password_hash = password_hash(cx, pw.expose()).await?;
            user.failed_logins = 0;
            user.locked_until = None;
        }
        AlterUserAction::Role(r) => {
            cx.principal.require(Role::Dba, "ALTER USER ... SET ROLE")?;
            let r = *r;
            check_grant(&cx.principal, r)?;
            check_grant(&cx.principal, user.role)?;
            if user.username == ROOT_USERNAME && r != Role::System {
                return Err(KalamError::Validation("the root user's role cannot be changed".into()));
            }
            user.role = r;
        }
        AlterUserAction::Email(e) => {
            if !is_self {
                cx.principal.require(Role::Dba, "changing another user's email")?;
            }
            validate_email(e)?;
            user.email = Some(e.clone());
        }
    }
    user.updated_at = cx.now();
    cx.db.catalog.update_user(&user)?;
    if !matches!(action, AlterUserAction::Email(_)) {
        // Open WebSockets of the user check their credentials and privileges again now.
        cx.db.live.account_changed(user.id);
    }
    Ok(results::message(1, format!("User '{}' altered", user.username)))
}

pub(crate) fn drop(cx: &ExecContext<'_>, name: &str, if_exists: bool) -> Result<QueryResult> {
    cx.principal.require(Role::Dba, "DROP USER")?;
    let Some(user) = cx.db.catalog.user_by_name(name) else {
        return if if_exists {
            Ok(results::message(0, format!("User '{name}' does not exist")))
        } else {
            Err(KalamError::UserNotFound(name.to_string()))
        };
    };
    if user.username == ROOT_USERNAME {
        return Err(KalamError::Validation("the root user cannot be dropped".into()));
    }
    if user.id == cx.principal.user_id {
        return Err(KalamError::Validation("you cannot drop yourself".into()));
    }
    check_grant(&cx.principal, user.role)?;
    cx.db.catalog.drop_user(name)?;
    cx.db.live.account_changed(user.id);
    Ok(results::message(1, format!("User '{name}' dropped")))
}
