//! The context one statement runs in.

use crate::auth::Principal;
use crate::database::Database;
use crate::error::{KalamError, Result};
use crate::ids::{NamespaceId, Partition};
use crate::schema::{AccessLevel, TableDef, TableKind};
use crate::sql::ast::TableRef;
use kalamdb_client_core::protocol::Role;
use std::sync::Arc;

pub(crate) struct ExecContext<'a> {
    pub db: &'a Arc<Database>,
    /// Who the statement runs as: the caller, or the target of `EXECUTE AS USER`.
    pub principal: Principal,
    /// Default namespace for unqualified names (request `namespace`, changed by `USE`).
    pub namespace: Option<NamespaceId>,
    /// Values of `$1..$n`.
    pub params: &'a [serde_json::Value],
    /// Where the statement comes from (cluster mode routes it by this).
    pub origin: Origin,
}

impl<'a> ExecContext<'a> {
    /// This context with `principal` as who the statement runs as (`EXECUTE AS USER`).
    pub(crate) fn acting_as(&self, principal: Principal) -> ExecContext<'a> {
        ExecContext {
            db: self.db,
            principal,
            namespace: self.namespace.clone(),
            params: self.params,
            origin: self.origin.clone(),
        }
    }

    /// This context for running its statement here as the leader of its group.
    pub(crate) fn on_leader(&self) -> ExecContext<'a> {
        ExecContext {
            db: self.db,
            principal: self.principal.clone(),
            namespace: self.namespace.clone(),
            params: self.params,
            origin: Origin::OnLeader,
        }
    }
}

/// Where a statement comes from.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    /// A client of this node.
    Client,
    /// It runs on this node as the leader of its group, never forwarded on: another node
    /// forwarded it here, or this node's client sent it while this node leads.
    OnLeader,
    /// A catalog statement applied from the replicated log.
    Log(Applying),
}

/// What a catalog statement applied from the replicated log takes from its entry instead
/// of this node, so that every replica makes the same change.
#[derive(Debug, Clone)]
pub(crate) struct Applying {
    /// The leader's time when it proposed the statement.
    pub at: i64,
    /// The hash of the password the statement sets (hashed once, by the leader).
    pub password_hash: Option<String>,
}

impl ExecContext<'_> {
    /// The time a catalog statement records: its proposal time when applied from the log.
    pub(crate) fn now(&self) -> i64 {
        match &self.origin {
            Origin::Log(applying) => applying.at,
            _ => crate::clock::now_micros(),
        }
    }

    /// Whether this node's own state (its live subscriptions, its jobs) may refuse the
    /// statement: not when it is applied from the replicated log, where every node must make
    /// the same change whatever it alone holds (refusing on one node would make it diverge).
    pub(crate) fn may_refuse_for_local_state(&self) -> bool {
        !matches!(self.origin, Origin::Log(_))
    }

    /// Resolves `ns.t` or `t` (against the current namespace) to an existing table.
    pub(crate) fn resolve_table(&self, table: &TableRef) -> Result<Arc<TableDef>> {
        let ns = self.namespace_for(table.namespace.as_deref())?;
        self.db.catalog.require_table(&ns, &table.name)
    }

    /// The namespace an explicitly named or implicit (current) namespace refers to.
    pub(crate) fn namespace_for(&self, explicit: Option<&str>) -> Result<NamespaceId> {
        match explicit {
            Some(ns) => NamespaceId::new(ns),
            None => self.namespace.clone().ok_or_else(|| {
                KalamError::Validation(
                    "no namespace selected: qualify the table name (ns.table), run USE ns, or send \"namespace\" with the request"
                        .into(),
                )
            }),
        }
    }

    /// `IN ns` of a listing statement: `None` for all namespaces, else `ns`, which must exist.
    pub(crate) fn existing_namespace(&self, name: Option<&str>) -> Result<Option<NamespaceId>> {
        let Some(name) = name else { return Ok(None) };
        let ns = self.namespace_for(Some(name))?;
        if self.db.catalog.namespace(&ns).is_none() {
            return Err(KalamError::NamespaceNotFound(ns.to_string()));
        }
        Ok(Some(ns))
    }

    /// The partition this statement reads and writes in `table`.
    pub(crate) fn partition(&self, table: &TableDef) -> Partition {
        match table.kind {
            TableKind::Shared => Partition::Shared,
            TableKind::User | TableKind::Stream => Partition::User(self.principal.user_id),
        }
    }

    /// Checks read access: USER and STREAM tables are always readable (own partition only); SHARED
    /// tables need `public` access or role service+.
    pub(crate) fn check_read(&self, table: &TableDef) -> Result<()> {
        match table.kind {
            TableKind::User | TableKind::Stream => Ok(()),
            TableKind::Shared => {
                if table.options.access_level == Some(AccessLevel::Public) || self.principal.role >= Role::Service {
                    Ok(())
                } else {
                    Err(KalamError::Forbidden(format!(
                        "table '{}' is {}: only service, dba and system roles may read it",
                        table.qualified_name(),
                        table.options.access_level.unwrap_or(AccessLevel::Private).as_str()
                    )))
                }
            }
        }
    }

    /// Checks write access: USER and STREAM tables are writable (own partition only); SHARED tables
    /// need role service+.
    pub(crate) fn check_write(&self, table: &TableDef) -> Result<()> {
        match table.kind {
            TableKind::User | TableKind::Stream => Ok(()),
            TableKind::Shared => {
                self.principal.require(Role::Service, &format!("writing shared table '{}'", table.qualified_name()))
            }
        }
    }
}
