//! Meta-commands: `\dt`, `\d`, `\live` and the others. Each is a shorthand for SQL the
//! server already answers (listed by `\?`), so the shell needs no access the user lacks.

use crate::error::CliError;
use crate::live;
use crate::render::Format;
use crate::session::{Flow, Session, interruptible};
use crate::statements::quote_literal;
use kalamdb_client_core::protocol::{ColumnInfo, QueryResult};
use serde_json::json;
use std::io::Write;

/// The meta-commands, for `\?` and completion: (name, arguments, what it does).
pub(crate) const COMMANDS: &[(&str, &str, &str)] = &[
    ("\\dn", "", "list namespaces (SHOW NAMESPACES)"),
    ("\\dt", "[NAMESPACE]", "list tables (SHOW TABLES [IN ns])"),
    ("\\d", "[TABLE]", "describe a table (DESCRIBE TABLE); without one, list tables"),
    ("\\du", "", "list users (system.users, dba)"),
    ("\\stats", "[TABLE]", "server statistics; with a table, SHOW STATS FOR TABLE (dba)"),
    ("\\jobs", "[N]", "the last N jobs (system.jobs, dba; default 20)"),
    ("\\as", "USER SQL", "run SQL as another user (EXECUTE AS USER, service+)"),
    ("\\live", "SELECT ...", "stream a live query's rows and changes until Ctrl-C"),
    ("\\flush", "TABLE", "flush a table's hot rows to Parquet and follow the job"),
    ("\\timing", "[on|off]", "print how long each statement takes"),
    ("\\format", "[table|json|csv]", "how results are printed"),
    ("\\?", "", "this help"),
    ("\\q", "", "quit (also Ctrl-D)"),
];

/// Runs meta-command `input` (starting with `\`).
pub(crate) async fn run(session: &mut Session, input: &str) -> Result<Flow, CliError> {
    let (command, args) = match input.split_once(char::is_whitespace) {
        Some((c, a)) => (c, a.trim()),
        None => (input, ""),
    };
    match command {
        "\\q" | "\\quit" => return Ok(Flow::Quit),
        "\\?" | "\\h" | "\\help" => help()?,
        "\\timing" => {
            session.timing = match args.to_ascii_lowercase().as_str() {
                "" => !session.timing,
                "on" => true,
                "off" => false,
                other => return Err(usage(format!("\\timing takes on or off, not '{other}'"))),
            };
            session.print_line(&format!("Timing is {}.", if session.timing { "on" } else { "off" }))?;
        }
        "\\format" => {
            if !args.is_empty() {
                session.format = Format::parse(args)
                    .ok_or_else(|| usage(format!("unknown format '{args}': use table, json or csv")))?;
            }
            session.print_line(&format!("Output format is {}.", session.format.name()))?;
        }
        "\\dn" => session.run_sql("SHOW NAMESPACES").await?,
        "\\dt" => session.run_sql(&one_arg(args, "SHOW TABLES", |ns| format!("SHOW TABLES IN {ns}"))?).await?,
        "\\d" => session.run_sql(&one_arg(args, "SHOW TABLES", |t| format!("DESCRIBE TABLE {t}"))?).await?,
        "\\du" => {
            session
                .run_sql("SELECT username, role, email, created_at, locked_until FROM system.users ORDER BY username")
                .await?
        }
        "\\jobs" => {
            let limit: u32 = if args.is_empty() {
                20
            } else {
                args.parse().map_err(|_| usage(format!("\\jobs takes a number of jobs, not '{args}'")))?
            };
            session
                .run_sql(&format!(
                    "SELECT job_id, job_type, status, namespace, table_name, created_at, finished_at, rows, bytes, \
                     files, error FROM system.jobs ORDER BY created_at DESC LIMIT {limit}"
                ))
                .await?
        }
        "\\stats" if !args.is_empty() => session.run_sql(&format!("SHOW STATS FOR TABLE {}", single(args)?)).await?,
        "\\stats" => server_stats(session).await?,
        "\\as" => {
            let (user, sql) = args
                .split_once(char::is_whitespace)
                .map(|(u, s)| (u, s.trim()))
                .filter(|(_, s)| !s.is_empty())
                .ok_or_else(|| usage("usage: \\as USER SQL".into()))?;
            let user = user.strip_prefix('\'').and_then(|u| u.strip_suffix('\'')).unwrap_or(user);
            session.run_sql(&format!("EXECUTE AS USER {} ({sql})", quote_literal(user))).await?
        }
        "\\live" if args.is_empty() => {
            return Err(usage("usage: \\live SELECT ... FROM namespace.table [WHERE ...]".into()));
        }
        "\\live" => live::run(session, args).await?,
        "\\flush" if args.is_empty() => return Err(usage("usage: \\flush TABLE".into())),
        "\\flush" => session.run_sql(&format!("FLUSH TABLE {}", single(args)?)).await?,
        other => return Err(usage(format!("unknown command {other}: \\? lists the commands"))),
    }
    Ok(Flow::Continue)
}

fn usage(message: String) -> CliError {
    CliError::Usage(message)
}

/// The statement for a command taking at most one name.
fn one_arg(args: &str, without: &str, with: impl Fn(&str) -> String) -> Result<String, CliError> {
    if args.is_empty() { Ok(without.to_string()) } else { Ok(with(single(args)?)) }
}

/// Exactly one name: anything more is refused rather than pasted into SQL.
fn single(args: &str) -> Result<&str, CliError> {
    let name = args.trim();
    if name.split_whitespace().count() != 1 || name.contains(';') {
        return Err(usage(format!("expected one name, got '{name}'")));
    }
    Ok(name)
}

fn help() -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "Meta-commands:")?;
    for (name, args, what) in COMMANDS {
        writeln!(out, "  {:<28} {what}", format!("{name} {args}"))?;
    }
    writeln!(out, "SQL statements end with ';' and may span lines; Tab completes keywords and names.")?;
    writeln!(out, "Ctrl-C cancels the statement being typed or waited for; Ctrl-D quits.")?;
    Ok(())
}

/// `\stats`: the server's version and counters (`/health`, `/metrics`), and the live queries
/// and unfinished jobs the user may see.
async fn server_stats(session: &mut Session) -> Result<(), CliError> {
    let health = interruptible(session.server.health()).await?;
    let metrics = interruptible(session.server.metrics()).await?;
    let mut rows = vec![vec![json!("version"), json!(health.version)], vec![json!("status"), json!(health.status)]];
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        if let Some((name, value)) = line.split_once(' ') {
            let name = name.strip_prefix("kalamdb_").unwrap_or(name);
            rows.push(vec![json!(name), json!(value.trim())]);
        }
    }
    let counts = [
        ("live_queries", "SELECT count(*) AS n FROM system.live_queries"),
        ("unfinished_jobs", "SELECT count(*) AS n FROM system.jobs WHERE status IN ('queued', 'running')"),
    ];
    for (name, sql) in counts {
        // A role that may not read the table gets the other figures.
        match interruptible(session.query(sql)).await {
            Ok(r) => {
                if let Some(n) = r.rows.first().and_then(|row| row.first()) {
                    rows.push(vec![json!(name), json!(n.to_string())]);
                }
            }
            Err(CliError::Sql { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let result = QueryResult {
        schema: vec![ColumnInfo::new("metric", "TEXT"), ColumnInfo::new("value", "TEXT")],
        row_count: rows.len() as u64,
        rows,
        message: None,
    };
    session.print_results(&[result])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_they_reach_sql() {
        assert_eq!(single(" app.todos ").unwrap(), "app.todos");
        assert!(single("app.todos; DROP TABLE x").is_err());
        assert!(single("a b").is_err());
        assert_eq!(one_arg("", "SHOW TABLES", |ns| format!("SHOW TABLES IN {ns}")).unwrap(), "SHOW TABLES");
        assert_eq!(one_arg("app", "SHOW TABLES", |ns| format!("SHOW TABLES IN {ns}")).unwrap(), "SHOW TABLES IN app");
    }

    #[test]
    fn every_command_is_listed_for_help_and_completion() {
        for name in
            ["\\dn", "\\dt", "\\d", "\\du", "\\stats", "\\jobs", "\\as", "\\live", "\\flush", "\\timing", "\\format"]
        {
            assert!(COMMANDS.iter().any(|(n, _, _)| *n == name), "{name}");
        }
    }
}
