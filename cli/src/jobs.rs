//! Following the jobs FLUSH, BACKUP and RESTORE start: `system.jobs` is polled until the
//! job ends, with a progress bar on a terminal.
//!
//! The server counts a job's rows, bytes and files as it goes but knows no total, so the
//! shell looks one up before the statement runs: a table's hot rows for FLUSH TABLE (what a
//! flush writes), every table's row versions for BACKUP, and the backup's file count for
//! RESTORE (`SHOW BACKUP`). Without one (FLUSH ALL TABLES, or a role that may not read the
//! statistics) the bar is a spinner with the counts.

use crate::error::CliError;
use crate::render::bytes;
use crate::session::{Session, interruptible};
use crate::statements::quote_literal;
use indicatif::{ProgressBar, ProgressStyle};
use kalamdb_client_core::protocol::{ErrorCode, QueryResult};
use serde_json::Value;
use std::time::{Duration, Instant};

/// How often `system.jobs` is read while a job runs.
const POLL: Duration = Duration::from_millis(200);
/// Above this many tables BACKUP shows a spinner rather than reading every table's statistics.
const MAX_TABLES_TO_ESTIMATE: usize = 64;

/// A statement that starts a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JobStatement {
    /// `FLUSH TABLE t`.
    FlushTable { table: String },
    /// `FLUSH ALL TABLES [IN ns]`.
    FlushAll,
    /// `BACKUP DATABASE ns TO '...'`.
    Backup { namespace: String },
    /// `RESTORE DATABASE ns FROM '...'` (`path` as written, quotes included).
    Restore { path: String },
}

/// What the progress bar counts up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Total {
    pub(crate) amount: u64,
    pub(crate) unit: Unit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Rows,
    Files,
}

impl JobStatement {
    /// The job statement `sql` is, if it is one.
    pub(crate) fn recognise(sql: &str) -> Option<JobStatement> {
        let words: Vec<&str> = sql.split_whitespace().collect();
        let is = |i: usize, w: &str| words.get(i).is_some_and(|x| x.eq_ignore_ascii_case(w));
        if is(0, "FLUSH") && is(1, "TABLE") {
            return words.get(2).map(|t| JobStatement::FlushTable { table: t.to_string() });
        }
        if is(0, "FLUSH") && is(1, "ALL") {
            return Some(JobStatement::FlushAll);
        }
        if is(0, "BACKUP") && is(1, "DATABASE") {
            return words.get(2).map(|ns| JobStatement::Backup { namespace: ns.to_string() });
        }
        if is(0, "RESTORE") && is(1, "DATABASE") && is(3, "FROM") && words.len() > 4 {
            // The path literal may hold spaces: everything after FROM.
            let from = sql.to_ascii_uppercase().find(" FROM ")? + " FROM ".len();
            return Some(JobStatement::Restore { path: sql[from..].trim().to_string() });
        }
        None
    }

    fn kind(&self) -> &'static str {
        match self {
            JobStatement::FlushTable { .. } | JobStatement::FlushAll => "flush",
            JobStatement::Backup { .. } => "backup",
            JobStatement::Restore { .. } => "restore",
        }
    }
}

/// The `job_id` a job statement returned.
pub(crate) fn job_id(results: &[QueryResult]) -> Option<String> {
    let r = results.first()?;
    let i = r.schema.iter().position(|c| c.name == "job_id")?;
    r.rows.first()?.get(i)?.as_str().map(str::to_string)
}

/// Column `name` of the first row of `r` as a number.
fn number(r: &QueryResult, name: &str) -> Option<u64> {
    let i = r.schema.iter().position(|c| c.name == name)?;
    r.rows.first()?.get(i)?.as_u64()
}

fn text(r: &QueryResult, name: &str) -> Option<String> {
    let i = r.schema.iter().position(|c| c.name == name)?;
    r.rows.first()?.get(i)?.as_str().map(str::to_string)
}

/// A statistics query that failed on the server means "no total", not a failed statement.
fn optional(r: Result<QueryResult, CliError>) -> Result<Option<QueryResult>, CliError> {
    match r {
        Ok(r) => Ok(Some(r)),
        Err(CliError::Sql { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Hot rows (tombstones included) and cold row versions of one table.
async fn table_rows(session: &mut Session, table: &str, cold: bool) -> Result<Option<u64>, CliError> {
    let Some(stats) = optional(session.query(&format!("SHOW STATS FOR TABLE {table}")).await)? else {
        return Ok(None);
    };
    let hot = number(&stats, "hot_rows").unwrap_or(0) + number(&stats, "hot_tombstones").unwrap_or(0);
    Ok(Some(if cold { hot + number(&stats, "cold_rows").unwrap_or(0) } else { hot }))
}

/// The total the job's progress counts up to, looked up before the job starts.
pub(crate) async fn estimate(session: &mut Session, job: &JobStatement) -> Result<Option<Total>, CliError> {
    let rows = |amount| Total { amount, unit: Unit::Rows };
    match job {
        JobStatement::FlushTable { table } => Ok(table_rows(session, table, false).await?.map(rows)),
        JobStatement::FlushAll => Ok(None),
        JobStatement::Backup { namespace } => {
            let Some(tables) = optional(session.query(&format!("SHOW TABLES IN {namespace}")).await)? else {
                return Ok(None);
            };
            if tables.rows.len() > MAX_TABLES_TO_ESTIMATE {
                return Ok(None);
            }
            let mut total = 0;
            for row in &tables.rows {
                // SHOW TABLES: namespace, table_name, table_type, ...; STREAM tables keep no rows.
                if let [Value::String(ns), Value::String(t), Value::String(kind), ..] = row.as_slice()
                    && kind != "STREAM"
                {
                    match table_rows(session, &format!("\"{ns}\".\"{t}\""), true).await? {
                        Some(n) => total += n,
                        None => return Ok(None),
                    }
                }
            }
            Ok(Some(rows(total)))
        }
        JobStatement::Restore { path } => {
            let Some(backup) = optional(session.query(&format!("SHOW BACKUP {path}")).await)? else {
                return Ok(None);
            };
            Ok(number(&backup, "files").map(|amount| Total { amount, unit: Unit::Files }))
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ")
}

/// Follows job `job_id` until it ends; a job that fails or is cancelled is an error (a
/// script exits 1). Ctrl-C stops following, not the job.
pub(crate) async fn follow(
    session: &mut Session,
    job_id: &str,
    job: &JobStatement,
    total: Option<Total>,
) -> Result<(), CliError> {
    let started = Instant::now();
    let bar = match total {
        Some(t) => {
            let unit = if t.unit == Unit::Rows { "rows" } else { "files" };
            ProgressBar::new(t.amount)
                .with_style(style(&format!("{{prefix}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}} ({{elapsed}})")))
        }
        None => ProgressBar::new_spinner().with_style(style("{prefix} {spinner} {msg} ({elapsed})")),
    };
    bar.set_prefix(format!("{} {job_id}", job.kind()));
    bar.enable_steady_tick(Duration::from_millis(120));
    let sql =
        format!("SELECT status, rows, bytes, files, error FROM system.jobs WHERE job_id = {}", quote_literal(job_id));
    loop {
        let r = match interruptible(session.query(&sql)).await {
            Ok(r) => r,
            Err(CliError::Sql { code: ErrorCode::Forbidden, .. }) => {
                bar.finish_and_clear();
                eprintln!("Job {job_id} started (following its progress needs the dba role; see system.jobs)");
                return Ok(());
            }
            Err(CliError::Interrupted) => {
                bar.abandon();
                eprintln!("Stopped following job {job_id}; it goes on (\\jobs shows it)");
                return Err(CliError::Interrupted);
            }
            Err(e) => {
                bar.finish_and_clear();
                return Err(e);
            }
        };
        let Some(status) = text(&r, "status") else {
            bar.finish_and_clear();
            eprintln!("Job {job_id} is not in system.jobs");
            return Ok(());
        };
        let (rows, bytes_done, files) =
            (number(&r, "rows").unwrap_or(0), number(&r, "bytes").unwrap_or(0), number(&r, "files").unwrap_or(0));
        let files_word = if files == 1 { "file" } else { "files" };
        let position = if total.is_some_and(|t| t.unit == Unit::Files) { files } else { rows };
        if bar.length().is_some_and(|len| position > len) {
            bar.set_length(position);
        }
        bar.set_position(position);
        bar.set_message(format!("{status}: {rows} rows, {files} {files_word}, {}", bytes(bytes_done)));
        // Draw now: a job shorter than the refresh interval is still shown once.
        bar.tick();
        if matches!(status.as_str(), "completed" | "failed" | "cancelled") {
            bar.finish_and_clear();
            let line = format!(
                "Job {job_id} {status}: {rows} rows, {files} {files_word}, {} in {:.1} s",
                bytes(bytes_done),
                started.elapsed().as_secs_f64()
            );
            session.print_line(&line)?;
            return match status.as_str() {
                "completed" => Ok(()),
                _ => Err(CliError::Job { job_id: job_id.to_string(), status, error: text(&r, "error") }),
            };
        }
        interruptible(async {
            tokio::time::sleep(POLL).await;
            Ok(())
        })
        .await
        .inspect_err(|_| {
            bar.abandon();
            eprintln!("Stopped following job {job_id}; it goes on (\\jobs shows it)");
        })?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kalamdb_client_core::protocol::ColumnInfo;
    use serde_json::json;

    #[test]
    fn job_statements_are_recognised() {
        assert_eq!(
            JobStatement::recognise("flush table app.todos"),
            Some(JobStatement::FlushTable { table: "app.todos".into() })
        );
        assert_eq!(JobStatement::recognise("FLUSH ALL TABLES IN app"), Some(JobStatement::FlushAll));
        assert_eq!(
            JobStatement::recognise("BACKUP DATABASE app TO 'nightly 1'"),
            Some(JobStatement::Backup { namespace: "app".into() })
        );
        assert_eq!(
            JobStatement::recognise("RESTORE DATABASE app2 FROM 'nightly 1'"),
            Some(JobStatement::Restore { path: "'nightly 1'".into() })
        );
        assert_eq!(JobStatement::recognise("SELECT * FROM system.jobs"), None);
        assert_eq!(JobStatement::recognise("FLUSH"), None);
    }

    #[test]
    fn the_job_id_comes_from_the_result() {
        let r = QueryResult {
            schema: vec![ColumnInfo::new("job_id", "TEXT")],
            rows: vec![vec![json!("flush-7")]],
            row_count: 1,
            message: None,
        };
        assert_eq!(job_id(&[r]), Some("flush-7".into()));
        assert_eq!(job_id(&[QueryResult::default()]), None);
    }
}
