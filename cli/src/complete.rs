//! Tab completion and multi-line input for the shell (a rustyline helper).
//!
//! Completes SQL keywords, meta-commands, and the namespaces, tables and columns of the
//! catalog. The catalog loads in the background when the shell starts (the prompt does not
//! wait for it) and again after DDL; the first Tab waits briefly for a load under way.

use crate::connect::Server;
use crate::meta::COMMANDS;
use crate::statements::is_complete;
use kalamdb_client_core::protocol::{QueryResult, SqlRequest};
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long the first Tab waits for the catalog to arrive.
const FIRST_LOAD_WAIT: Duration = Duration::from_secs(5);

/// Keywords of KalamDB's SQL (docs/sql.md) and the common DataFusion query words.
const KEYWORDS: &[&str] = &[
    "ACCESS",
    "ADD",
    "ALL",
    "ALTER",
    "AND",
    "AS",
    "ASC",
    "BACKUP",
    "BETWEEN",
    "BIGINT",
    "BOOLEAN",
    "BY",
    "BYTES",
    "CASCADE",
    "CASE",
    "COLUMN",
    "COUNT",
    "CRDT_TEXT",
    "CREATE",
    "CROSS",
    "CURRENT_USER",
    "DATABASE",
    "DATE",
    "DECIMAL",
    "DEFAULT",
    "DELETE",
    "DESC",
    "DESCRIBE",
    "DISTINCT",
    "DOUBLE",
    "DROP",
    "ELSE",
    "EMAIL",
    "END",
    "EXECUTE",
    "EXISTS",
    "FALSE",
    "FLOAT",
    "FLUSH",
    "FOR",
    "FROM",
    "FULL",
    "GROUP",
    "HAVING",
    "HISTORY",
    "IF",
    "IN",
    "INNER",
    "INSERT",
    "INT",
    "INTO",
    "IS",
    "JOB",
    "JOIN",
    "JSON",
    "KEY",
    "KILL",
    "LEFT",
    "LEVEL",
    "LIKE",
    "LIMIT",
    "LIVE",
    "MODIFY",
    "NAMESPACE",
    "NAMESPACES",
    "NATURAL",
    "NOT",
    "NOW",
    "NULL",
    "OFFSET",
    "ON",
    "OR",
    "ORDER",
    "OUTER",
    "PASSWORD",
    "POLICY",
    "PRIMARY",
    "QUERY",
    "RENAME",
    "RESTORE",
    "RIGHT",
    "ROLE",
    "SELECT",
    "SET",
    "SHARED",
    "SHOW",
    "SMALLINT",
    "STATS",
    "STORAGE",
    "STORAGES",
    "STREAM",
    "TABLE",
    "TABLES",
    "TEXT",
    "THEN",
    "TIMESTAMP",
    "TO",
    "TRUE",
    "TYPE",
    "ULID",
    "UNION",
    "UPDATE",
    "USE",
    "USER",
    "USING",
    "UUID_V7",
    "VALUES",
    "WHEN",
    "WHERE",
    "WITH",
];

/// Words after which a table name comes.
const BEFORE_TABLE: &[&str] = &["FROM", "JOIN", "INTO", "UPDATE", "TABLE", "DESCRIBE", "\\D", "\\FLUSH", "\\STATS"];
/// Words after which a namespace name comes.
const BEFORE_NAMESPACE: &[&str] = &["NAMESPACE", "USE", "IN", "DATABASE", "\\DT"];

/// The names the shell completes.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Catalog {
    pub(crate) namespaces: Vec<String>,
    /// (namespace, table)
    pub(crate) tables: Vec<(String, String)>,
    /// (namespace, table, column)
    pub(crate) columns: Vec<(String, String, String)>,
}

/// The columns `names` of every row of `r` as text (rows with a non-text value are skipped).
fn texts(r: &QueryResult, names: &[&str]) -> Vec<Vec<String>> {
    let idx: Option<Vec<usize>> = names.iter().map(|n| r.schema.iter().position(|c| c.name == *n)).collect();
    let Some(idx) = idx else { return Vec::new() };
    r.rows.iter().filter_map(|row| idx.iter().map(|&i| row.get(i)?.as_str().map(str::to_string)).collect()).collect()
}

impl Catalog {
    /// Reads the catalog the user may see: `SHOW NAMESPACES` and DataFusion's
    /// `information_schema` (tables and columns the caller may read, `system.*` included for
    /// dba). A failed query leaves its part empty: completion is a help, not a requirement.
    pub(crate) async fn load(server: &Server, token: &str) -> Catalog {
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
        if let Some(r) = query("SELECT table_schema, table_name FROM information_schema.tables").await {
            catalog.tables =
                texts(&r, &["table_schema", "table_name"]).into_iter().map(|v| (v[0].clone(), v[1].clone())).collect();
        }
        if let Some(r) = query("SELECT table_schema, table_name, column_name FROM information_schema.columns").await {
            catalog.columns = texts(&r, &["table_schema", "table_name", "column_name"])
                .into_iter()
                .map(|v| (v[0].clone(), v[1].clone(), v[2].clone()))
                .collect();
        }
        // `system` and `information_schema` are no namespaces of SHOW NAMESPACES, but their
        // tables complete like any other.
        for (ns, _) in &catalog.tables {
            if !catalog.namespaces.contains(ns) {
                catalog.namespaces.push(ns.clone());
            }
        }
        catalog
    }

    fn has_namespace(&self, ns: &str) -> bool {
        self.namespaces.iter().any(|n| n.eq_ignore_ascii_case(ns))
    }

    /// The table `name` (`t` or `ns.t`) refers to, given the current namespace.
    fn resolve<'a>(&'a self, name: &str, current: Option<&str>) -> Vec<&'a (String, String)> {
        let (ns, t) = match name.split_once('.') {
            Some((ns, t)) => (Some(ns), t),
            None => (current, name),
        };
        self.tables
            .iter()
            .filter(|(n, tn)| tn.eq_ignore_ascii_case(t) && ns.is_none_or(|ns| n.eq_ignore_ascii_case(ns)))
            .collect()
    }

    fn columns_of<'a>(&'a self, table: &(String, String)) -> impl Iterator<Item = &'a str> {
        let (ns, t) = (table.0.clone(), table.1.clone());
        self.columns.iter().filter(move |(n, tn, _)| *n == ns && *tn == t).map(|(_, _, c)| c.as_str())
    }
}

/// The candidates for the word before `pos` in `line`: where it starts and what may replace it.
pub(crate) fn candidates(catalog: &Catalog, current: Option<&str>, line: &str, pos: usize) -> (usize, Vec<String>) {
    let before = &line[..pos];
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '\\' | '"')))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let word = &before[start..];
    let prefix_matches = |candidate: &str| candidate.to_lowercase().starts_with(&word.to_lowercase());
    let mut out: Vec<String> = Vec::new();

    if word.starts_with('\\') && before[..start].trim().is_empty() {
        out.extend(COMMANDS.iter().map(|(name, _, _)| name.to_string()).filter(|n| n.starts_with(word)));
        return (start, sorted(out));
    }
    let previous = before[..start].split_whitespace().next_back().map(str::to_uppercase).unwrap_or_default();

    if let Some((qualifier, _)) = word.rsplit_once('.') {
        // `ns.<table>` or `table.<column>`.
        let qualifier = qualifier.trim_matches('"');
        if catalog.has_namespace(qualifier) {
            out.extend(
                catalog
                    .tables
                    .iter()
                    .filter(|(ns, _)| ns.eq_ignore_ascii_case(qualifier))
                    .map(|(ns, t)| format!("{ns}.{t}")),
            );
        }
        let aliased = aliases(catalog, current, statement_at(line, pos));
        let by_alias = aliased.iter().filter(|(a, _)| a.eq_ignore_ascii_case(qualifier)).map(|(_, t)| *t);
        for table in catalog.resolve(qualifier, current).into_iter().chain(by_alias) {
            out.extend(catalog.columns_of(table).map(|c| format!("{qualifier}.{c}")));
        }
        out.retain(|c| prefix_matches(c));
        return (start, sorted(out));
    }

    let namespaces = catalog.namespaces.iter().map(|ns| format!("{ns}."));
    if BEFORE_NAMESPACE.contains(&previous.as_str()) {
        out.extend(catalog.namespaces.iter().cloned());
    } else if BEFORE_TABLE.contains(&previous.as_str()) {
        out.extend(namespaces);
        out.extend(catalog.tables.iter().filter(|(ns, _)| Some(ns.as_str()) == current).map(|(_, t)| t.clone()));
    } else {
        let lower = !word.is_empty() && word.chars().all(|c| !c.is_uppercase());
        out.extend(KEYWORDS.iter().map(|k| if lower { k.to_lowercase() } else { k.to_string() }));
        // Columns of the tables the statement names, else of every table.
        let named: Vec<&(String, String)> = line
            .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
            .flat_map(|w| catalog.resolve(w.trim_matches('"'), current))
            .collect();
        if named.is_empty() {
            out.extend(catalog.columns.iter().map(|(_, _, c)| c.clone()));
        } else {
            for table in named {
                out.extend(catalog.columns_of(table).map(str::to_string));
            }
        }
        out.extend(namespaces);
        out.extend(catalog.tables.iter().filter(|(ns, _)| Some(ns.as_str()) == current).map(|(_, t)| t.clone()));
    }
    out.retain(|c| prefix_matches(c));
    (start, sorted(out))
}

/// The statement of `line` that `pos` is in (statements end at `;`).
fn statement_at(line: &str, pos: usize) -> &str {
    let start = line[..pos].rfind(';').map_or(0, |i| i + 1);
    let end = line[pos..].find(';').map_or(line.len(), |i| pos + i);
    &line[start..end]
}

/// The tables `statement` names by an alias, as typed: `FROM app.todos t`, `JOIN tags AS g`.
fn aliases<'a>(catalog: &'a Catalog, current: Option<&str>, statement: &str) -> Vec<(String, &'a (String, String))> {
    // `(` is not a separator: in `INTO app.todos (id, title)` the word after the table is
    // `(id`, no alias.
    let words: Vec<&str> =
        statement.split(|c: char| c.is_whitespace() || matches!(c, ',' | ')')).filter(|w| !w.is_empty()).collect();
    let is_alias = |w: &str| {
        let w = w.trim_matches('"');
        !w.is_empty()
            && w.chars().all(|c| c.is_alphanumeric() || c == '_')
            && !KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(w))
    };
    let mut out = Vec::new();
    for (i, pair) in words.windows(2).enumerate() {
        if !BEFORE_TABLE.contains(&pair[0].to_uppercase().as_str()) {
            continue;
        }
        let Some(table) = catalog.resolve(pair[1].trim_matches('"'), current).into_iter().next() else {
            continue;
        };
        let alias = match words.get(i + 2) {
            Some(w) if w.eq_ignore_ascii_case("AS") => words.get(i + 3),
            other => other,
        };
        if let Some(alias) = alias.filter(|a| is_alias(a)) {
            out.push((alias.trim_matches('"').to_string(), table));
        }
    }
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
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
            let catalog = Catalog::load(&server, &token).await;
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
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let catalog = self.catalog.get(FIRST_LOAD_WAIT);
        let (start, found) = candidates(&catalog, self.namespace.as_deref(), line, pos);
        Ok((start, found.into_iter().map(|c| Pair { display: c.clone(), replacement: c }).collect()))
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

    fn catalog() -> Catalog {
        Catalog {
            namespaces: vec!["app".into(), "analytics".into()],
            tables: vec![
                ("app".into(), "todos".into()),
                ("app".into(), "tags".into()),
                ("analytics".into(), "events".into()),
            ],
            columns: vec![
                ("app".into(), "todos".into(), "title".into()),
                ("app".into(), "todos".into(), "done".into()),
                ("app".into(), "tags".into(), "tag".into()),
                ("analytics".into(), "events".into(), "tenant".into()),
            ],
        }
    }

    fn complete(line: &str, current: Option<&str>) -> Vec<String> {
        let (start, c) = candidates(&catalog(), current, line, line.len());
        assert!(start <= line.len());
        c
    }

    #[test]
    fn tables_complete_after_from_and_in_their_namespace() {
        assert_eq!(complete("SELECT * FROM app.to", None), ["app.todos"]);
        assert_eq!(complete("SELECT * FROM app.t", None), ["app.tags", "app.todos"]);
        assert_eq!(complete("SELECT * FROM a", None), ["analytics.", "app."]);
        assert_eq!(complete("SELECT * FROM t", Some("app")), ["tags", "todos"]);
        assert_eq!(complete("\\d app.e", None), Vec::<String>::new());
        assert_eq!(complete("\\d analytics.e", None), ["analytics.events"]);
        assert_eq!(complete("USE an", None), ["analytics"]);
        let (start, _) = candidates(&catalog(), None, "SELECT * FROM app.to", 20);
        assert_eq!(start, 14);
    }

    #[test]
    fn columns_come_from_the_tables_the_statement_names() {
        let line = "SELECT t FROM app.todos";
        let (_, c) = candidates(&catalog(), None, line, "SELECT t".len());
        assert!(c.contains(&"title".to_string()) && !c.contains(&"tenant".to_string()), "{c:?}");
        // No table named yet: every column.
        let c = complete("SELECT t", None);
        assert!(c.contains(&"title".to_string()) && c.contains(&"tenant".to_string()), "{c:?}");
        assert_eq!(complete("SELECT todos.ti", Some("app")), ["todos.title"]);
    }

    #[test]
    fn an_alias_completes_its_tables_columns() {
        let at = |line: &str, before: &str| candidates(&catalog(), Some("app"), line, before.len()).1;
        let line = "SELECT t. FROM app.todos t JOIN tags AS g ON g.tag = t.title";
        assert_eq!(at(line, "SELECT t."), ["t.done", "t.title"]);
        assert_eq!(
            at("SELECT * FROM app.todos AS t WHERE t.ti", "SELECT * FROM app.todos AS t WHERE t.ti"),
            ["t.title"]
        );
        assert_eq!(at(line, "SELECT t. FROM app.todos t JOIN tags AS g ON g."), ["g.tag"]);
        // Another statement's alias does not count, nor does a keyword or a column list.
        assert!(at("SELECT * FROM app.todos t; SELECT t.", "SELECT * FROM app.todos t; SELECT t.").is_empty());
        assert!(at("SELECT where. FROM app.todos WHERE", "SELECT where.").is_empty());
        assert!(
            at("INSERT INTO app.todos (title) VALUES (title.", "INSERT INTO app.todos (title) VALUES (title.")
                .is_empty()
        );
    }

    #[test]
    fn keywords_follow_the_case_typed_and_meta_commands_complete() {
        assert!(complete("sel", None).contains(&"select".to_string()));
        assert!(complete("SEL", None).contains(&"SELECT".to_string()));
        assert_eq!(complete("\\ti", None), ["\\timing"]);
        assert!(complete("\\d", None).starts_with(&["\\d".to_string(), "\\dn".to_string()]));
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
