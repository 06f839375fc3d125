//! The cleanup scheduler: every `storage.cleanup_interval_secs` (default 300) it looks at
//! each USER and SHARED table's partitions and runs one `cleanup` job per table (trigger
//! `policy`) over those due — files holding tombstones older than the table's horizon, at
//! least [`COMPACT_AT_FILES`](super::COMPACT_AT_FILES) files, or hot rows older than the
//! horizon. Partitions whose replaced files no reader holds any more are swept on the way.

use super::{compaction_due, delete_retired};
use crate::database::Database;
use crate::flush;
use crate::ids::Partition;
use crate::jobs::{self, JobType};
use crate::schema::TableDef;
use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Starts the scheduler; it stops when the database is dropped.
pub(crate) fn start(db: Weak<Database>) {
    let Some(every) = db.upgrade().map(|d| Duration::from_secs(d.config.storage.cleanup_interval_secs)) else {
        return;
    };
    jobs::schedule(db, every, every, "cleanup", run_due);
}

/// Cleans every due partition, one job per table.
async fn run_due(db: Arc<Database>) {
    for table in flush::flushable(db.catalog.tables(None)) {
        if !db.does_cold_work_of(&table) {
            continue;
        }
        let due = match due_partitions(&db, &table).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(table = %table.qualified_name(), "cannot check partitions for cleanup: {}", e.report());
                continue;
            }
        };
        if due.is_empty() {
            continue;
        }
        let targets = [(table.clone(), due)];
        let clean = async |job: &jobs::JobHandle| super::run_job(&db, job, &targets).await;
        if let Err(e) = jobs::run_policy_job(&db.jobs, JobType::Cleanup, &table, clean).await {
            tracing::error!("cannot create a cleanup job: {e}");
            return;
        }
    }
}

/// Partitions of `table` due for cleanup; partitions with only unread replaced files are
/// swept here.
async fn due_partitions(db: &Database, table: &TableDef) -> crate::error::Result<Vec<Partition>> {
    let horizon = table.options.tombstone_horizon(db.clock.now_micros());
    let mut due = BTreeSet::new();
    for (p, hot) in db.committer.hot_stats().partitions_of(table.id) {
        if hot.has_rows_before(horizon) {
            due.insert(p);
        }
    }
    for p in db.cold.partitions_on_disk(table).await? {
        if due.contains(&p) && !db.cold.is_replicated(&table.options.storage) {
            continue;
        }
        let cold = db.cold.partition(table, p).await?;
        if cold.replicated {
            super::replicated::sweep(db, table, p, &cold).await?;
        }
        if compaction_due(&cold.manifest(), horizon) {
            due.insert(p);
        } else if cold.has_retired() {
            // Busy with a flush: swept next time.
            if let Ok(flushing) = cold.flush_lock.try_lock() {
                delete_retired(&cold, &flushing).await?;
            }
        }
    }
    Ok(due.into_iter().collect())
}
