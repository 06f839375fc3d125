//! CREATE / ALTER / DROP / SHOW NAMESPACES, USE.

use crate::error::Result;
use crate::ids::NamespaceId;
use crate::sql::ast::OptionSpec;
use crate::sql::commands::literal_json;
use crate::sql::{ExecContext, results};
use kalamdb_client_core::protocol::{ColumnInfo, QueryResult, Role};
use std::collections::BTreeMap;

pub(crate) fn create(cx: &ExecContext<'_>, name: &str, if_not_exists: bool) -> Result<QueryResult> {
    cx.principal.require(Role::Dba, "CREATE NAMESPACE")?;
    let ns = NamespaceId::new(name)?;
    let created = cx.db.catalog.create_namespace(&ns, if_not_exists, cx.now())?;
    Ok(results::message(
        0,
        if created { format!("Namespace '{ns}' created") } else { format!("Namespace '{ns}' already exists") },
    ))
}

pub(crate) fn alter(cx: &ExecContext<'_>, name: &str, options: &[OptionSpec]) -> Result<QueryResult> {
    cx.principal.require(Role::Dba, "ALTER NAMESPACE")?;
    let ns = NamespaceId::new(name)?;
    let mut map = BTreeMap::new();
    for o in options {
        map.insert(o.key.clone(), literal_json(&o.value)?);
    }
    cx.db.catalog.alter_namespace(&ns, map)?;
    Ok(results::message(0, format!("Namespace '{ns}' altered")))
}

pub(crate) async fn drop(cx: &ExecContext<'_>, name: &str, if_exists: bool, cascade: bool) -> Result<QueryResult> {
    cx.principal.require(Role::Dba, "DROP NAMESPACE")?;
    let ns = NamespaceId::new(name)?;
    if if_exists && cx.db.catalog.namespace(&ns).is_none() {
        return Ok(results::message(0, format!("Namespace '{ns}' does not exist")));
    }
    if cx.may_refuse_for_local_state() {
        super::backup::check_no_backup(cx, &ns)?;
        for t in cx.db.catalog.tables(Some(&ns)) {
            if cx.db.live.count_on_table(t.id) > 0 {
                return Err(crate::error::KalamError::InUse(format!(
                    "table '{}' has live subscriptions; end them (KILL LIVE QUERY) first",
                    t.qualified_name()
                )));
            }
        }
    }
    let dropped = cx.db.committer.drop_tables(|| cx.db.catalog.drop_namespace(&ns, cascade))?;
    for t in &dropped {
        super::table::end_subscriptions(cx, t);
        cx.db.drop_table_data(t).await;
    }
    Ok(results::message(0, format!("Namespace '{ns}' dropped ({} tables)", dropped.len())))
}

pub(crate) fn show(cx: &ExecContext<'_>) -> Result<QueryResult> {
    let rows: Vec<Vec<serde_json::Value>> = cx
        .db
        .catalog
        .namespaces()
        .into_iter()
        .map(|n| {
            let count = cx.db.catalog.tables(Some(&n.name)).len();
            vec![serde_json::json!(n.name.as_str()), serde_json::json!(count)]
        })
        .collect();
    Ok(QueryResult {
        schema: vec![ColumnInfo::new("namespace", "TEXT"), ColumnInfo::new("table_count", "BIGINT")],
        row_count: rows.len() as u64,
        rows,
        message: None,
    })
}

/// `USE ns`: later statements of the same request resolve unqualified names in `ns`.
pub(crate) fn use_namespace(cx: &mut ExecContext<'_>, name: &str) -> Result<QueryResult> {
    let ns = NamespaceId::new(name)?;
    if cx.db.catalog.namespace(&ns).is_none() {
        return Err(crate::error::KalamError::NamespaceNotFound(ns.to_string()));
    }
    let msg = format!("Using namespace '{ns}'");
    cx.namespace = Some(ns);
    Ok(results::message(0, msg))
}
