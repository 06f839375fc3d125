//! Tab completion and multi-line input for the shell (a rustyline helper). What completes is
//! the crate kalamdb-complete's (the console's SQL editor runs the same, as WebAssembly); the
//! shell adds its meta-commands (`\\d`, `\\timing`, ...), loads the catalog, and keeps the
//! entries that extend the word typed, sorted, as a line editor completes.
//!
//! The catalog loads in the background when the shell starts (the prompt does not wait for
//! it) and again after DDL; the first Tab waits briefly for a load under way.

use crate::connect::Server;
use crate::meta::COMMANDS;
use crate::statements::is_complete;
use kalamdb_client_core::protocol::{QueryResult, SqlRequest};
use kalamdb_complete::{Catalog, Column, Table, complete};
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::line_buffer::LineBuffer;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Changeset, Context, Helper};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long the first Tab waits for the catalog to arrive.
const FIRST_LOAD_WAIT: Duration = Duration::from_secs(5);

/// The columns `names` of every row of `r` as text (rows with a non-text value are skipped).
fn texts(r: &QueryResult, names: &[&str]) -> Vec<Vec<String>> {
    let idx: Option<Vec<usize>> = names.iter().map(|n| r.schema.iter().position(|c| c.name == *n)).collect();
    let Some(idx) = idx else { return Vec::new() };
    r.rows.iter().filter_map(|row| idx.iter().map(|&i| row.get(i)?.as_str().map(str::to_string)).collect()).collect()
}

/// Reads the catalog the user may see: `SHOW NAMESPACES` and DataFusion's `information_schema`
/// (tables and columns the caller may read, `system.*` included for dba). A failed query
/// leaves its part empty: completion is a help, not a requirement.
async fn load(server: &Server, token: &str) -> Catalog {
    let query = |sql: &str| {
        let request = SqlRequest { sql: sql.to_string(), params: Vec::new(), namespace: None };
        async move {
            match server.sql(token, &request).await {
                Ok(Ok(mut ok)) if !ok.results.is_empty() => Some(ok.results.swap_remove(0)),
                _ => None,
            }
        }
    };
    let mut catalog = Catalog::default();
    if let Some(r) = query("SHOW NAMESPACES").await {
        catalog.namespaces = texts(&r, &["namespace"]).into_iter().flatten().collect();
    }
    // Each table's place in `catalog.tables`, by (namespace, name).
    let mut place: HashMap<(String, String), usize> = HashMap::new();
    if let Some(r) = query("SELECT table_schema, table_name FROM information_schema.tables").await {
        for row in texts(&r, &["table_schema", "table_name"]) {
            let [namespace, name] = <[String; 2]>::try_from(row).unwrap_or_default();
            place.insert((namespace.clone(), name.clone()), catalog.tables.len());
            catalog.tables.push(Table { namespace, name, ..Table::default() });
        }
    }
    let columns = "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns";
    if let Some(r) = query(columns).await {
        for row in texts(&r, &["table_schema", "table_name", "column_name", "data_type"]) {
            let [namespace, table, name, data_type] = <[String; 4]>::try_from(row).unwrap_or_default();
            if let Some(&at) = place.get(&(namespace, table)) {
                catalog.tables[at].columns.push(Column { name, data_type });
            }
        }
    }
    // `system` and `information_schema` are no namespaces of SHOW NAMESPACES, but their
    // tables complete like any other.
    for t in &catalog.tables {
        if !catalog.namespaces.contains(&t.namespace) {
            catalog.namespaces.push(t.namespace.clone());
        }
    }
    catalog
}

/// The catalog as the shell's helper sees it: replaced by background loads.
#[derive(Clone, Default)]
pub(crate) struct SharedCatalog {
    inner: Arc<(Mutex<CatalogState>, Condvar)>,
}

#[derive(Default)]
struct CatalogState {
    catalog: Arc<Catalog>,
    loading: bool,
    loaded: bool,
    /// When the last load started.
    asked_at: Option<Instant>,
}

/// How old the catalog may get before the next command reads it again in the background, so
/// that tables made by other clients complete without restarting the shell.
pub(crate) const CATALOG_MAX_AGE: Duration = Duration::from_secs(5);

impl SharedCatalog {
    fn state(&self) -> MutexGuard<'_, CatalogState> {
        // A panic elsewhere while holding the lock leaves a usable catalog behind.
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads the catalog on `runtime` without blocking the caller.
    pub(crate) fn reload(&self, runtime: &tokio::runtime::Handle, server: Server, token: String) {
        {
            let mut state = self.state();
            state.loading = true;
            state.asked_at = Some(Instant::now());
        }
        let shared = self.clone();
        runtime.spawn(async move {
            let catalog = load(&server, &token).await;
            let mut state = shared.state();
            state.catalog = Arc::new(catalog);
            state.loading = false;
            state.loaded = true;
            shared.inner.1.notify_all();
        });
    }

    /// Whether the catalog was last asked for over `age` ago (and is not being loaded).
    pub(crate) fn older_than(&self, age: Duration) -> bool {
        let state = self.state();
        !state.loading && state.asked_at.is_none_or(|at| at.elapsed() > age)
    }

    /// The catalog; before the first load has finished, waits up to `wait` for it.
    pub(crate) fn get(&self, wait: Duration) -> Arc<Catalog> {
        let deadline = Instant::now() + wait;
        let mut state = self.state();
        while state.loading && !state.loaded {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = match self.inner.1.wait_timeout(state, left) {
                Ok((s, _)) => s,
                Err(e) => e.into_inner().0,
            };
        }
        state.catalog.clone()
    }
}

/// The rustyline helper: completion and the multi-line rule.
pub(crate) struct ShellHelper {
    pub(crate) catalog: SharedCatalog,
    /// The session's namespace (unqualified table names complete in it).
    pub(crate) namespace: Option<String>,
    /// Where the word the last completion was for starts and ends: taking an entry replaces
    /// it to its end (in a quoted name, its closing quote included).
    replaced: Mutex<Option<(usize, usize)>>,
}

impl ShellHelper {
    pub(crate) fn new(catalog: SharedCatalog, namespace: Option<String>) -> ShellHelper {
        ShellHelper { catalog, namespace, replaced: Mutex::new(None) }
    }
}

/// The meta-commands that go on with the word before `pos`, if it is one: a `\\` word that
/// starts the line.
fn meta_commands(line: &str, pos: usize) -> Option<(usize, Vec<String>)> {
    let before = line.get(..pos)?;
    let start = before.rfind('\\')?;
    let word = &before[start..];
    if !line[..start].trim().is_empty() || !word[1..].chars().all(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    let mut names: Vec<String> =
        COMMANDS.iter().map(|(name, _, _)| name.to_string()).filter(|n| n.starts_with(word)).collect();
    names.sort();
    Some((start, names))
}

/// What completes the word before `pos` in `line`: where it starts, where what is taken
/// replaces it to, and the entries that extend what is typed (in any case), sorted.
pub(crate) fn candidates(
    catalog: &Catalog,
    namespace: Option<&str>,
    line: &str,
    pos: usize,
) -> (usize, usize, Vec<String>) {
    if let Some((start, commands)) = meta_commands(line, pos) {
        return (start, pos, commands);
    }
    let Some(found) = complete(catalog, line, pos, namespace, true) else { return (pos, pos, Vec::new()) };
    let typed = line.get(found.from..pos).unwrap_or_default().to_lowercase();
    let mut texts: Vec<String> =
        found.items.into_iter().map(|c| c.text).filter(|t| t.to_lowercase().starts_with(&typed)).collect();
    texts.sort();
    texts.dedup();
    (found.from, found.to.max(pos), texts)
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let catalog = self.catalog.get(FIRST_LOAD_WAIT);
        let (start, end, found) = candidates(&catalog, self.namespace.as_deref(), line, pos);
        *self.replaced.lock().unwrap_or_else(|e| e.into_inner()) = Some((start, end));
        Ok((start, found.into_iter().map(|c| Pair { display: c.clone(), replacement: c }).collect()))
    }

    /// Replaces the word at the caret to its end and, in a quoted name, to its closing quote,
    /// so that `"ti|tle"` becomes `"title"`, not `"title"tle"`.
    fn update(&self, line: &mut LineBuffer, start: usize, elected: &str, cl: &mut Changeset) {
        let replaced = self.replaced.lock().unwrap_or_else(|e| e.into_inner()).take();
        let end = match replaced {
            Some((from, to)) if from == start && to <= line.len() => to,
            _ => line.pos(),
        };
        line.replace(start..end.max(line.pos()), elected, cl);
    }
}

impl Validator for ShellHelper {
    /// Enter runs the input once every statement has its `;` (or it is a meta-command);
    /// before that it starts a new line of the same statement.
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if is_complete(ctx.input()) { ValidationResult::Valid(None) } else { ValidationResult::Incomplete })
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {}

impl Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The catalog of kalamdb-complete's cases (complete/tests/completion-cases.json), in short.
    fn catalog() -> Catalog {
        let table = |namespace: &str, name: &str, columns: &[&str]| Table {
            namespace: namespace.to_string(),
            name: name.to_string(),
            kind: String::new(),
            columns: columns.iter().map(|c| Column { name: c.to_string(), data_type: String::new() }).collect(),
        };
        Catalog {
            namespaces: vec!["app".into(), "analytics".into(), "default".into()],
            tables: vec![
                table("app", "todos", &["id", "title", "done", "list_id"]),
                table("app", "lists", &["id", "name"]),
                table("analytics", "events", &["tenant"]),
            ],
        }
    }

    fn complete(line: &str, current: Option<&str>) -> Vec<String> {
        let (start, end, c) = candidates(&catalog(), current, line, line.len());
        assert!(start <= end && end <= line.len());
        c
    }

    #[test]
    fn the_word_completed_starts_after_the_last_blank_or_punctuation() {
        assert_eq!(candidates(&catalog(), None, "SELECT * FROM app.to", 20), (14, 20, vec!["app.todos".to_string()]));
        assert_eq!(candidates(&catalog(), None, "SELECT count(ti", 15).0, 13);
    }

    #[test]
    fn entries_extend_the_word_typed_and_are_sorted() {
        // Not `app.todos` for `tod`: a line editor extends what is typed.
        assert_eq!(complete("SELECT * FROM tod", Some("app")), ["todos"]);
        assert_eq!(complete("SELECT * FROM app.todos WHERE ti", None), ["timestamp", "title"]);
    }

    #[test]
    fn meta_commands_and_their_tables_complete() {
        assert_eq!(complete("\\ti", None), ["\\timing"]);
        assert!(complete("\\d", None).starts_with(&["\\d".to_string(), "\\dn".to_string()]));
        assert_eq!(complete("\\d app.e", None), Vec::<String>::new());
        assert_eq!(complete("\\d analytics.e", None), ["analytics.events"]);
    }

    #[test]
    fn a_quoted_name_is_replaced_whole_its_closing_quote_included() {
        // What the line becomes when the first candidate at the caret (at `|`) is taken.
        let taken = |sql: &str| {
            let pos = sql.find('|').expect("a caret");
            let line = sql.replacen('|', "", 1);
            let (start, end, found) = candidates(&catalog(), Some("app"), &line, pos);
            format!("{}{}{}", &line[..start], found[0], &line[end..])
        };
        assert_eq!(taken("SELECT \"ti| FROM app.todos"), "SELECT \"title\" FROM app.todos");
        assert_eq!(taken("SELECT \"ti|\" FROM app.todos"), "SELECT \"title\" FROM app.todos");
        assert_eq!(taken("SELECT \"ti|tl\" FROM app.todos"), "SELECT \"title\" FROM app.todos");
        assert_eq!(taken("SELECT t.\"ti|, t.id FROM app.todos t"), "SELECT t.\"title\", t.id FROM app.todos t");
        assert_eq!(taken("SELECT titl| FROM app.todos"), "SELECT title FROM app.todos");
    }

    #[test]
    fn the_first_tab_waits_for_a_load_under_way_but_not_forever() {
        let shared = SharedCatalog::default();
        shared.state().loading = true;
        let started = Instant::now();
        assert_eq!(*shared.get(Duration::from_millis(50)), Catalog::default());
        assert!(started.elapsed() >= Duration::from_millis(50));
        let other = shared.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let mut s = other.state();
            s.catalog = Arc::new(catalog());
            s.loading = false;
            s.loaded = true;
            other.inner.1.notify_all();
        });
        assert_eq!(*shared.get(Duration::from_secs(5)), catalog());
        t.join().unwrap();
    }
}
