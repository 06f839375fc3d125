//! Process counters exported in Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

pub(crate) struct Metrics {
    started: Instant,
    pub sql_requests: AtomicU64,
    pub sql_errors: AtomicU64,
    pub sql_statements: AtomicU64,
    pub logins: AtomicU64,
    pub failed_logins: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            sql_requests: AtomicU64::new(0),
            sql_errors: AtomicU64::new(0),
            sql_statements: AtomicU64::new(0),
            logins: AtomicU64::new(0),
            failed_logins: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub(crate) fn inc(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter("kalamdb_sql_requests_total", "SQL requests received.", self.sql_requests.load(Ordering::Relaxed));
        counter("kalamdb_sql_errors_total", "SQL requests that failed.", self.sql_errors.load(Ordering::Relaxed));
        counter(
            "kalamdb_sql_statements_total",
            "SQL statements executed.",
            self.sql_statements.load(Ordering::Relaxed),
        );
        counter("kalamdb_logins_total", "Successful logins.", self.logins.load(Ordering::Relaxed));
        counter("kalamdb_failed_logins_total", "Failed logins.", self.failed_logins.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "# HELP kalamdb_uptime_seconds Seconds since start.\n# TYPE kalamdb_uptime_seconds gauge\nkalamdb_uptime_seconds {}",
            self.started.elapsed().as_secs()
        );
        out
    }
}
