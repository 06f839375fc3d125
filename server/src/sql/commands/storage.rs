//! CREATE STORAGE, DROP STORAGE, SHOW STORAGES.

use crate::cold::location::Location;
use crate::error::{KalamError, Result};
use crate::ids::StorageId;
use crate::schema::{StorageDef, StorageLocation};
use crate::sql::ast::{CreateStorage, Literal};
use crate::sql::system_tables::{STORAGE_COLUMNS, storage_rows};
use crate::sql::{ExecContext, results};
use crate::values;
use kalamdb_client_core::protocol::{ColumnInfo, QueryResult, Role};
use std::collections::HashMap;

/// The storage a statement describes, with its settings checked against its type.
fn location(stmt: &CreateStorage) -> Result<StorageLocation> {
    let mut settings: HashMap<&str, Option<String>> = HashMap::new();
    for o in &stmt.settings {
        let value = match &o.value {
            Literal::String(s) => Some(s.clone()),
            _ => None,
        };
        settings.insert(o.key.as_str(), value);
    }
    let allowed: &[&str] = match stmt.storage_type.as_str() {
        "filesystem" => &["path", "shared"],
        "s3" => &["bucket", "prefix", "region", "endpoint", "access_key_id", "secret_access_key", "allow_http"],
        other => {
            return Err(KalamError::Validation(format!("unknown storage type '{other}': use 'filesystem' or 's3'")));
        }
    };
    if let Some(key) = settings.keys().find(|k| !allowed.contains(k)) {
        return Err(KalamError::Validation(format!(
            "{} does not apply to a storage of type '{}'",
            key.to_ascii_uppercase(),
            stmt.storage_type
        )));
    }
    let allow_http = settings.contains_key("allow_http");
    let shared = settings.contains_key("shared");
    let mut take = |key: &str| settings.remove(key).flatten().filter(|v| !v.is_empty());
    Ok(match stmt.storage_type.as_str() {
        "filesystem" => {
            let path = take("path")
                .ok_or_else(|| KalamError::Validation("a filesystem storage needs PATH '/absolute/dir'".into()))?;
            let path = std::path::PathBuf::from(path);
            if !path.is_absolute() {
                return Err(KalamError::Validation(format!(
                    "storage PATH '{}' is not an absolute path",
                    path.display()
                )));
            }
            StorageLocation::Filesystem { path, shared }
        }
        _ => {
            let bucket =
                take("bucket").ok_or_else(|| KalamError::Validation("an s3 storage needs BUCKET '...'".into()))?;
            let access_key_id = take("access_key_id");
            let secret_access_key = take("secret_access_key");
            if access_key_id.is_some() != secret_access_key.is_some() {
                return Err(KalamError::Validation(
                    "ACCESS_KEY_ID and SECRET_ACCESS_KEY are given together or not at all".into(),
                ));
            }
            let endpoint = take("endpoint");
            if let Some(e) = &endpoint
                && !(e.starts_with("http://") || e.starts_with("https://"))
            {
                return Err(KalamError::Validation(format!("ENDPOINT '{e}' must start with http:// or https://")));
            }
            StorageLocation::S3 {
                bucket,
                prefix: take("prefix"),
                region: take("region"),
                endpoint,
                access_key_id,
                secret_access_key,
                allow_http,
            }
        }
    })
}

/// The storage `stmt` makes, checked: its settings, that a cluster can share it, and that it
/// can be reached (a directory that cannot be created, bad S3 settings or a missing bucket
/// is refused). In a cluster the leader checks before it replicates the statement.
pub(crate) async fn check(cx: &ExecContext<'_>, stmt: &CreateStorage) -> Result<StorageDef> {
    cx.principal.require(Role::Dba, "CREATE STORAGE")?;
    let id = StorageId::new(&stmt.id)?;
    let def = StorageDef { id: id.clone(), location: location(stmt)?, created_at: cx.now() };
    if cx.db.replication().is_some() && !def.location.is_shared() {
        return Err(KalamError::Validation(format!(
            "storage '{id}': in a cluster every node must reach the same files: use an s3 storage, \
             or a PATH that every node mounts, marked SHARED"
        )));
    }
    if cx.may_refuse_for_local_state() {
        let root = Location::open(&def.location)?;
        if root.local_dir().is_none() {
            root.list(false).await.map_err(|e| {
                let detail = match e {
                    KalamError::Internal(m) => m,
                    other => other.to_string(),
                };
                KalamError::Validation(format!("storage '{id}' cannot be used: {detail}"))
            })?;
        }
    }
    Ok(def)
}

pub(crate) async fn create(cx: &ExecContext<'_>, stmt: &CreateStorage) -> Result<QueryResult> {
    // A node applying the statement from the log does not list the bucket again: what it
    // alone cannot reach must not make it refuse what the others applied.
    let def = check(cx, stmt).await?;
    let id = def.id.clone();
    if id.is_local() || cx.db.catalog.storage(&id).is_some() {
        if stmt.if_not_exists {
            return Ok(results::message(0, format!("Storage '{id}' already exists")));
        }
        return Err(KalamError::AlreadyExists(format!("storage '{id}' already exists")));
    }
    cx.db.cold.add_storage(&def)?;
    match cx.db.catalog.create_storage(def, stmt.if_not_exists) {
        Ok(true) => Ok(results::message(0, format!("Storage '{id}' created"))),
        Ok(false) => Ok(results::message(0, format!("Storage '{id}' already exists"))),
        Err(e) => Err(e),
    }
}

pub(crate) fn drop(cx: &ExecContext<'_>, id: &str, if_exists: bool) -> Result<QueryResult> {
    cx.principal.require(Role::Dba, "DROP STORAGE")?;
    let id = StorageId::new(id)?;
    if if_exists && !id.is_local() && cx.db.catalog.storage(&id).is_none() {
        return Ok(results::message(0, format!("Storage '{id}' does not exist")));
    }
    cx.db.catalog.drop_storage(&id)?;
    cx.db.cold.remove_storage(&id);
    Ok(results::message(0, format!("Storage '{id}' dropped")))
}

pub(crate) fn show(cx: &ExecContext<'_>) -> Result<QueryResult> {
    cx.principal.require(Role::Dba, "SHOW STORAGES")?;
    let rows: Vec<Vec<serde_json::Value>> = storage_rows(cx.db)
        .iter()
        .map(|r| r.iter().zip(STORAGE_COLUMNS).map(|(v, (_, t))| values::to_json(v, t)).collect())
        .collect();
    Ok(QueryResult {
        schema: STORAGE_COLUMNS.iter().map(|(n, t)| ColumnInfo::new(*n, t.sql_name())).collect(),
        row_count: rows.len() as u64,
        rows,
        message: None,
    })
}
