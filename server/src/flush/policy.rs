//! The flush scheduler: once a second it checks every USER and SHARED table's partitions
//! against the table's flush policy — `rows:N` (hot rows in the partition) and/or
//! `interval:S` (age of the oldest hot row), whichever is reached first — and flushes the
//! due partitions of each table as one job (trigger `policy`).

use crate::database::Database;
use crate::flush;
use crate::ids::Partition;
use crate::jobs::{self, JobType};
use std::sync::{Arc, Weak};
use std::time::Duration;

const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Starts the scheduler; it stops when the database is dropped.
pub(crate) fn start(db: Weak<Database>) {
    jobs::schedule(db, Duration::ZERO, CHECK_EVERY, "flush", run_due);
}

/// Flushes every partition whose policy is due now.
async fn run_due(db: Arc<Database>) {
    let now = db.clock.now_micros();
    for table in flush::flushable(db.catalog.tables(None)) {
        if !db.does_cold_work_of(&table) {
            continue;
        }
        let policy = table.options.flush_policy;
        let due: Vec<Partition> = db
            .committer
            .hot_stats()
            .partitions_of(table.id)
            .into_iter()
            .filter(|(_, s)| {
                policy.rows.is_some_and(|n| s.rows >= n)
                    || policy.interval_secs.is_some_and(|i| now.saturating_sub(s.oldest) >= i as i64 * 1_000_000)
            })
            .map(|(p, _)| p)
            .collect();
        if due.is_empty() {
            continue;
        }
        let targets = [(table.clone(), Some(due))];
        let flush = async |job: &jobs::JobHandle| flush::run_job(&db, job, &targets).await;
        if let Err(e) = jobs::run_policy_job(&db.jobs, JobType::Flush, &table, flush).await {
            tracing::error!("cannot create a flush job: {e}");
            return;
        }
    }
}
