//! BACKUP DATABASE, RESTORE DATABASE (jobs), SHOW BACKUP.

use crate::backup;
// Backup statements read the target directory and manifests off the request threads.
use crate::cold::location::blocking;
use crate::error::{KalamError, Result};
use crate::ids::NamespaceId;
use crate::jobs::JobType;
use crate::sql::{ExecContext, results};
use crate::values::format_timestamp;
use kalamdb_client_core::protocol::{ColumnInfo, QueryResult, Role};
use serde_json::json;

/// Refuses to drop from `namespace` while a backup of it is queued or running: the drop
/// would make the backup fail and remove what it wrote.
pub(crate) fn check_no_backup(cx: &ExecContext<'_>, namespace: &NamespaceId) -> Result<()> {
    match cx.db.jobs.active(JobType::Backup, namespace.as_str()) {
        Some(job) => Err(KalamError::InUse(format!(
            "a backup of namespace '{namespace}' is in progress (job '{job}'); wait for it to finish or stop it \
             with KILL JOB '{job}'"
        ))),
        None => Ok(()),
    }
}

/// Starts a job writing a backup of one namespace (dba+).
pub(crate) async fn backup(cx: &ExecContext<'_>, namespace: &str, path: &str) -> Result<QueryResult> {
    cx.principal.require(Role::Dba, "BACKUP DATABASE")?;
    let ns = NamespaceId::new(namespace)?;
    if cx.db.catalog.namespace(&ns).is_none() {
        return Err(KalamError::NamespaceNotFound(ns.to_string()));
    }
    let target = backup::resolve_path(cx.db, path)?;
    let checked = target.clone();
    blocking(move || backup::check_target_empty(&checked)).await?;
    let job = cx.db.jobs.create(JobType::Backup, Some(ns.to_string()), None, "manual")?;
    let result =
        results::job_started(&job.id, format!("Backup job '{}' started for '{ns}' to {}", job.id, target.display()));
    let db = cx.db.clone();
    drop(crate::budget::spawn_background(cx.db.runtime.requests(), "backup", move || async move {
        let outcome = backup::run_backup(&db, &job, &ns, &target).await;
        job.finish(outcome);
    }));
    Ok(result)
}

/// Starts a job restoring a backup as a new namespace (dba+). What can be checked cheaply
/// (the manifest, the namespace, the storages) is checked here; the checksums by the job,
/// before it changes anything.
pub(crate) async fn restore(cx: &ExecContext<'_>, namespace: &str, path: &str) -> Result<QueryResult> {
    cx.principal.require(Role::Dba, "RESTORE DATABASE")?;
    let ns = NamespaceId::new(namespace)?;
    if cx.db.catalog.namespace(&ns).is_some() {
        return Err(KalamError::AlreadyExists(format!(
            "namespace '{ns}' already exists; drop it or restore under another name"
        )));
    }
    let source = backup::resolve_path(cx.db, path)?;
    let (db, dir) = (cx.db.clone(), source.clone());
    let manifest = blocking(move || backup::read_manifest(&dir, &db.backup_signer)).await?;
    for t in &manifest.tables {
        cx.db.catalog.require_storage(&t.table.options.storage)?;
    }
    if cx.db.replication().is_some() {
        backup::check_shared_storages(cx.db, &manifest.tables)?;
    }
    let job = cx.db.jobs.create(JobType::Restore, Some(ns.to_string()), None, "manual")?;
    let result =
        results::job_started(&job.id, format!("Restore job '{}' started for '{ns}' from {}", job.id, source.display()));
    let db = cx.db.clone();
    drop(crate::budget::spawn_background(cx.db.runtime.requests(), "restore", move || async move {
        let outcome = backup::run_restore(&db, &job, &ns, &source, &manifest).await;
        job.finish(outcome);
    }));
    Ok(result)
}

/// Reads a backup's manifest and verifies its files (dba+).
pub(crate) async fn show(cx: &ExecContext<'_>, path: &str) -> Result<QueryResult> {
    cx.principal.require(Role::Dba, "SHOW BACKUP")?;
    let dir = backup::resolve_path(cx.db, path)?;
    let db = cx.db.clone();
    let summary = blocking(move || backup::inspect(&dir, &db.backup_signer)).await?;
    let m = &summary.manifest;
    let tables: Vec<String> = m.tables.iter().map(|t| t.table.name.clone()).collect();
    let bytes: u64 = m.files.iter().map(|f| f.bytes).sum();
    let columns = [
        ("namespace", "TEXT"),
        ("tables", "TEXT"),
        ("table_count", "BIGINT"),
        ("files", "BIGINT"),
        ("bytes", "BIGINT"),
        ("created_at", "TIMESTAMP"),
        ("verified", "BOOLEAN"),
        ("error", "TEXT"),
    ];
    let row = vec![
        json!(m.namespace.name.as_str()),
        json!(tables.join(", ")),
        json!(tables.len()),
        json!(m.files.len()),
        json!(bytes),
        json!(format_timestamp(m.created_at)),
        json!(summary.problem.is_none()),
        json!(summary.problem),
    ];
    Ok(QueryResult {
        schema: columns.iter().map(|(n, t)| ColumnInfo::new(*n, *t)).collect(),
        rows: vec![row],
        row_count: 1,
        message: None,
    })
}
