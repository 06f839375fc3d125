//! FLUSH TABLE, FLUSH ALL TABLES [IN ns], KILL JOB.

use crate::error::{KalamError, Result};
use crate::flush;
use crate::jobs::JobType;
use crate::replication::KilledElsewhere;
use crate::schema::TableKind;
use crate::sql::ast::TableRef;
use crate::sql::{ExecContext, results};
use kalamdb_client_core::protocol::{QueryResult, Role};

/// Starts a job flushing every partition of one table (service+).
pub(crate) fn table(cx: &ExecContext<'_>, table: &TableRef) -> Result<QueryResult> {
    cx.principal.require(Role::Service, "FLUSH")?;
    let def = cx.resolve_table(table)?;
    if def.kind == TableKind::Stream {
        return Err(KalamError::Validation(format!(
            "'{}' is a STREAM table: its events are never flushed",
            def.qualified_name()
        )));
    }
    let (namespace, name) = (def.namespace.to_string(), def.name.clone());
    // A flush that has not started yet will flush everything this one would: one queued
    // flush per table at most, however many FLUSH statements arrive (they would otherwise
    // queue without bound and hold back every other background job).
    if let Some(id) = cx.db.jobs.queued(JobType::Flush, Some(&namespace), Some(&name)) {
        return Ok(results::job_started(
            &id,
            format!("Flush job '{id}' for table '{}' is already queued", def.qualified_name()),
        ));
    }
    let job = cx.db.jobs.create(JobType::Flush, Some(namespace), Some(name), "manual")?;
    let result =
        results::job_started(&job.id, format!("Flush job '{}' started for table '{}'", job.id, def.qualified_name()));
    let scope = def.qualified_name();
    flush::spawn_job(cx.db.clone(), job, scope, vec![(def, None)]);
    Ok(result)
}

/// Starts one job flushing every USER and SHARED table, of one namespace or all (service+).
pub(crate) fn all_tables(cx: &ExecContext<'_>, namespace: Option<&str>) -> Result<QueryResult> {
    cx.principal.require(Role::Service, "FLUSH")?;
    let ns = cx.existing_namespace(namespace)?;
    let tables = flush::flushable(cx.db.catalog.tables(ns.as_ref()));
    let what = match &ns {
        Some(n) => format!("all tables in '{n}'"),
        None => "all tables".into(),
    };
    let scope = ns.as_ref().map(|n| n.to_string());
    if let Some(id) = cx.db.jobs.queued(JobType::Flush, scope.as_deref(), None) {
        return Ok(results::job_started(&id, format!("Flush job '{id}' for {what} is already queued")));
    }
    let job = cx.db.jobs.create(JobType::Flush, scope, None, "manual")?;
    let result = results::job_started(&job.id, format!("Flush job '{}' started for {what}", job.id));
    let scope = format!("all/{}", ns.as_ref().map_or("*", |n| n.as_str()));
    flush::spawn_job(cx.db.clone(), job, scope, tables.into_iter().map(|t| (t, None)).collect());
    Ok(result)
}

/// Asks a queued or running job to stop (dba+); it stops at its next safe point.
/// `KILL JOB`: cancels the job here, or (in cluster mode) on the node that runs it.
pub(crate) async fn kill_job(cx: &ExecContext<'_>, job_id: &str) -> Result<QueryResult> {
    cx.principal.require(Role::Dba, "KILL JOB")?;
    let cancelled = Ok(results::message(1, format!("Job '{job_id}' is being cancelled")));
    if cx.db.jobs.has(job_id) {
        cx.db.jobs.kill(job_id)?;
        return cancelled;
    }
    let elsewhere = match cx.db.replication() {
        Some(replication) => replication.kill_job_elsewhere(job_id).await?,
        None => KilledElsewhere::Unknown,
    };
    match elsewhere {
        KilledElsewhere::Killed => cancelled,
        other => Err(other.refusal(&format!("job '{job_id}'"))),
    }
}
