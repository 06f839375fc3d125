//! A signed-in session: the server, the tokens (renewed when they expire), the settings the
//! user changes with meta-commands, and running one statement or meta-command.

use crate::connect::{Server, SqlOk, is_unauthorized, sql_error};
use crate::error::CliError;
use crate::profile::{self, Profile};
use crate::render::{self, Format};
use crate::statements::{self, leading_words};
use crate::{jobs, meta};
use kalamdb_client_core::protocol::{QueryResult, SqlRequest};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What the caller does after a piece of input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    /// `\q`.
    Quit,
}

/// A profile to keep up to date when tokens are renewed.
pub(crate) struct SavedProfile {
    pub(crate) path: PathBuf,
    pub(crate) name: String,
    pub(crate) profile: Profile,
}

/// A connection to one server as one user.
pub(crate) struct Session {
    pub(crate) server: Server,
    /// The signed-in user's name (shown in the prompt and banner).
    pub(crate) username: String,
    access_token: String,
    /// Buys a new access token when the current one expires (password and profile sign-ins).
    refresh_token: Option<String>,
    /// Renewed tokens are written back here, so the profile stays signed in.
    saved: Option<SavedProfile>,
    /// Unqualified table names resolve here (`USE`, `-n`); sent with every request.
    pub(crate) namespace: Option<String>,
    pub(crate) format: Format,
    /// Print how long each statement took.
    pub(crate) timing: bool,
    /// Set after DDL, so the shell reloads the names it completes.
    pub(crate) catalog_changed: bool,
}

impl Session {
    pub(crate) fn new(
        server: Server,
        username: String,
        access_token: String,
        refresh_token: Option<String>,
    ) -> Session {
        Session {
            server,
            username,
            access_token,
            refresh_token,
            saved: None,
            namespace: None,
            format: Format::Table,
            timing: false,
            catalog_changed: false,
        }
    }

    /// Keeps `saved` signed in: every renewal of the tokens is written to it.
    pub(crate) fn keep_profile(&mut self, saved: SavedProfile) {
        self.saved = Some(saved);
    }

    /// The current access token (for the WebSocket).
    pub(crate) fn access_token(&self) -> &str {
        &self.access_token
    }

    /// The refresh token, when the session was signed in with a password or a profile.
    pub(crate) fn refresh_token(&self) -> Option<&str> {
        self.refresh_token.as_deref()
    }

    /// Exchanges the refresh token for new tokens. `Ok(false)`: there is no refresh token.
    /// When the server refuses it (a password change revokes every token) and `kalam` runs
    /// in a terminal, the password is asked again; a script gets the error instead.
    pub(crate) async fn renew(&mut self) -> Result<bool, CliError> {
        let Some(refresh) = self.refresh_token.clone() else { return Ok(false) };
        let tokens = match self.server.refresh(&refresh).await {
            Ok(tokens) => tokens,
            Err(CliError::Auth { message, .. }) if std::io::stdin().is_terminal() => {
                eprintln!("The session ended ({message}); sign in again.");
                let password = rpassword::prompt_password(format!("Password for {}: ", self.username))
                    .map_err(|e| CliError::Io { what: "reading the password".into(), source: e })?;
                self.server.login(&self.username, &password).await?
            }
            Err(e) => return Err(e),
        };
        self.access_token = tokens.access_token;
        self.refresh_token = Some(tokens.refresh_token.clone());
        if let Some(saved) = &mut self.saved {
            saved.profile.refresh_token = Some(tokens.refresh_token);
            profile::save(&saved.path, &saved.name, &saved.profile)?;
        }
        Ok(true)
    }

    /// Sends one statement (with the session's namespace). An expired access token is
    /// renewed once and the statement sent again: a 401 means the server ran nothing.
    pub(crate) async fn request(&mut self, sql: &str) -> Result<SqlOk, CliError> {
        let request = SqlRequest { sql: sql.to_string(), params: Vec::new(), namespace: self.namespace.clone() };
        match self.server.sql(&self.access_token, &request).await? {
            Ok(ok) => Ok(ok),
            Err(e) if is_unauthorized(&e) && self.renew().await? => {
                self.server.sql(&self.access_token, &request).await?.map_err(sql_error)
            }
            Err(e) => Err(sql_error(e)),
        }
    }

    /// The first result of a statement the shell sends for itself (catalog, jobs, stats).
    pub(crate) async fn query(&mut self, sql: &str) -> Result<QueryResult, CliError> {
        let ok = self.request(sql).await?;
        ok.results.into_iter().next().ok_or_else(|| CliError::Protocol {
            url: self.server.url().to_string(),
            detail: "a statement without a result".into(),
        })
    }

    /// Runs one piece of input: a meta-command (`\...`) or an SQL statement.
    pub(crate) async fn run(&mut self, piece: &str) -> Result<Flow, CliError> {
        if piece.starts_with('\\') {
            return meta::run(self, piece).await;
        }
        self.run_sql(piece).await?;
        Ok(Flow::Continue)
    }

    /// Runs an SQL statement and prints its result; a statement that starts a job (FLUSH,
    /// BACKUP, RESTORE) is followed to the job's end with a progress bar.
    pub(crate) async fn run_sql(&mut self, sql: &str) -> Result<(), CliError> {
        let job = jobs::JobStatement::recognise(sql);
        // Totals for the progress bar are looked up before the statement changes them, and
        // only when a bar will be drawn.
        let total = match &job {
            Some(job) if std::io::stderr().is_terminal() => interruptible(jobs::estimate(self, job)).await?,
            _ => None,
        };
        let started = Instant::now();
        let ok = interruptible(self.request(sql)).await?;
        let elapsed = started.elapsed();
        self.print_results(&ok.results)?;
        if let Some(ns) = statements::use_target(sql) {
            self.namespace = Some(ns);
        }
        if matches!(leading_words(sql, 1).first().map(String::as_str), Some("CREATE" | "DROP" | "ALTER" | "RESTORE")) {
            self.catalog_changed = true;
        }
        self.print_timing(elapsed, Some(ok.took_ms))?;
        if let (Some(job), Some(job_id)) = (job, jobs::job_id(&ok.results)) {
            jobs::follow(self, &job_id, &job, total).await?;
        }
        Ok(())
    }

    /// Prints results in the session's format.
    pub(crate) fn print_results(&self, results: &[QueryResult]) -> Result<(), CliError> {
        let mut out = std::io::stdout().lock();
        let mut notes = std::io::stderr().lock();
        for r in results {
            render::result(r, self.format, &mut out, &mut notes)?;
        }
        out.flush()?;
        Ok(())
    }

    /// `Time: 1.234 ms (server 0.410 ms)` when `\timing` is on: on stdout in table format,
    /// on stderr otherwise (stdout stays JSON or CSV).
    pub(crate) fn print_timing(&self, elapsed: Duration, server_ms: Option<f64>) -> Result<(), CliError> {
        if !self.timing {
            return Ok(());
        }
        let ms = elapsed.as_secs_f64() * 1000.0;
        let line = match server_ms {
            Some(s) => format!("Time: {ms:.3} ms (server {s:.3} ms)"),
            None => format!("Time: {ms:.3} ms"),
        };
        self.print_line(&line)
    }

    /// A line about what happened (timing, a job's end): on stdout in table format, on
    /// stderr otherwise, so stdout stays JSON or CSV.
    pub(crate) fn print_line(&self, line: &str) -> Result<(), CliError> {
        if self.format == Format::Table {
            writeln!(std::io::stdout().lock(), "{line}")?;
        } else {
            eprintln!("{line}");
        }
        Ok(())
    }
}

/// Runs `fut` unless Ctrl-C comes first ([`CliError::Interrupted`]). The request is
/// abandoned; the server may still finish a statement it had started.
pub(crate) async fn interruptible<T>(fut: impl Future<Output = Result<T, CliError>>) -> Result<T, CliError> {
    tokio::select! {
        r = fut => r,
        () = ctrl_c() => Err(CliError::Interrupted),
    }
}

/// Resolves on Ctrl-C; never, if the handler cannot be installed.
pub(crate) async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
