//! The flush scheduler: once a second it checks every USER and SHARED table's partitions
//! against the table's flush policy — `rows:N` (hot rows in the partition) and/or
//! `interval:S` (age of the oldest hot row), whichever is reached first — and flushes the
//! due partitions of each table as one job (trigger `policy`).

use crate::clock::now_micros;
use crate::database::Database;
use crate::flush;
use crate::ids::Partition;
use crate::jobs::JobType;
use std::sync::{Arc, Weak};
use std::time::Duration;

const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Starts the scheduler; it stops when the database is dropped.
pub fn start(db: Weak<Database>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(db) = db.upgrade() else { return };
            // One round at a time: the next check starts after these flushes end.
            let round = tokio::task::spawn_blocking(move || run_due(&db)).await;
            if let Err(e) = round {
                tracing::error!("flush scheduler round failed: {e}");
            }
        }
    });
}

/// Flushes every partition whose policy is due now.
fn run_due(db: &Arc<Database>) {
    let now = now_micros();
    for table in flush::flushable(db.catalog.tables(None)) {
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
        let job =
            match db.jobs.create(JobType::Flush, Some(table.namespace.to_string()), Some(table.name.clone()), "policy")
            {
                Ok(j) => j,
                Err(e) => {
                    tracing::error!("cannot create a flush job: {e}");
                    return;
                }
            };
        let outcome = flush::run_job(db, &job, &[(table.clone(), Some(due))]);
        job.finish(outcome);
    }
}
