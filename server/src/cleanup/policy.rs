//! The cleanup scheduler: every `storage.cleanup_interval_secs` (default 300) it looks at
//! each USER and SHARED table's partitions and runs one `cleanup` job per table (trigger
//! `policy`) over those due — files holding tombstones older than the table's horizon, at
//! least [`COMPACT_AT_FILES`](super::COMPACT_AT_FILES) files, or hot rows older than the
//! horizon. Partitions whose replaced files no reader holds any more are swept on the way.

use super::{compaction_due, delete_retired};
use crate::catalog::TableDef;
use crate::clock::now_micros;
use crate::database::Database;
use crate::flush;
use crate::ids::Partition;
use crate::jobs::JobType;
use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Starts the scheduler; it stops when the database is dropped.
pub fn start(db: Weak<Database>) {
    let Some(every) = db.upgrade().map(|d| Duration::from_secs(d.config.storage.cleanup_interval_secs)) else {
        return;
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick completes at once: start one period later.
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(db) = db.upgrade() else { return };
            let round = tokio::task::spawn_blocking(move || run_due(&db)).await;
            if let Err(e) = round {
                tracing::error!("cleanup scheduler round failed: {e}");
            }
        }
    });
}

/// Cleans every due partition, one job per table.
fn run_due(db: &Arc<Database>) {
    for table in flush::flushable(db.catalog.tables(None)) {
        let due = match due_partitions(db, &table) {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(table = %table.qualified_name(), "cannot check partitions for cleanup: {e}");
                continue;
            }
        };
        if due.is_empty() {
            continue;
        }
        let job = match db.jobs.create(
            JobType::Cleanup,
            Some(table.namespace.to_string()),
            Some(table.name.clone()),
            "policy",
        ) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!("cannot create a cleanup job: {e}");
                return;
            }
        };
        let outcome = super::run_job(db, &job, &[(table.clone(), due)]);
        job.finish(outcome);
    }
}

/// Partitions of `table` due for cleanup; partitions with only unread replaced files are
/// swept here.
fn due_partitions(db: &Database, table: &TableDef) -> crate::error::Result<Vec<Partition>> {
    let horizon = table.options.tombstone_horizon(now_micros());
    let mut due = BTreeSet::new();
    for (p, hot) in db.committer.hot_stats().partitions_of(table.id) {
        if hot.rows > 0 && hot.oldest < horizon {
            due.insert(p);
        }
    }
    for p in db.cold.partitions_on_disk(table)? {
        if due.contains(&p) {
            continue;
        }
        let cold = db.cold.partition(table, p)?;
        if compaction_due(&cold.manifest(), horizon) {
            due.insert(p);
        } else if cold.has_retired() {
            // Busy with a flush: swept next time.
            if let Some(flushing) = cold.flush_lock.try_lock() {
                delete_retired(&cold, &flushing)?;
            }
        }
    }
    Ok(due.into_iter().collect())
}
