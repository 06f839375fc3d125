//! Tab completion and multi-line input for the shell (a rustyline helper).
//!
//! Completes SQL keywords, meta-commands, and the namespaces, tables and columns of the
//! catalog, and of the tables a statement makes itself: CTEs (`WITH open AS (SELECT ...)`)
//! and subqueries or `VALUES` in FROM (`(SELECT ...) s`), whose columns are the names their
//! select list gives, renamed by a column list (`AS s(a, b)`, also a table alias's:
//! `app.todos t(a, b)`). Names follow SQL's scopes: at the caret, the tables (and aliases) of
//! the query it is in and of the queries around it that it may read (a correlated subquery
//! reads its outer query's, a LATERAL one in FROM the tables before it), and the CTEs defined
//! before it in those (anywhere in them for `WITH RECURSIVE`); an alias hides its table's own
//! name. Each branch of a UNION, INTERSECT or EXCEPT is a query of its own. In ORDER BY, GROUP
//! BY and HAVING, the names the query's select list gives complete too (in GROUP BY not those
//! of aggregates); after the last branch, only those of the first branch. In a quoted name,
//! names complete quoted.
//!
//! The rules are the cases of tests/completion-cases.json, which the console's SQL editor
//! (admin/src/completion.ts) runs too: a change to them starts there, with a case, and is made
//! in both.
//!
//! The catalog loads in the background when the shell starts (the prompt does not wait for
//! it) and again after DDL; the first Tab waits briefly for a load under way.

use crate::connect::Server;
use crate::lexer;
use crate::meta::COMMANDS;
use crate::statements::is_complete;
use kalamdb_client_core::protocol::{QueryResult, SqlRequest};
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::line_buffer::LineBuffer;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Changeset, Context, Helper};
use std::ops::Range;
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
    "EXCEPT",
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
    "INTERSECT",
    "INTO",
    "IS",
    "JOB",
    "JOIN",
    "JSON",
    "KEY",
    "KILL",
    "LATERAL",
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
    "RECURSIVE",
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
/// Words after which a namespace name comes (and `IN` after `SHOW TABLES`).
const BEFORE_NAMESPACE: &[&str] = &["NAMESPACE", "USE", "DATABASE", "\\DT"];
/// The namespace of unqualified names when the session has none: the server's
/// (server/src/sql/session.rs).
const DEFAULT_NAMESPACE: &str = "default";

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
    fn resolve<'a>(&'a self, name: &str, current: &str) -> Vec<&'a (String, String)> {
        let (ns, t) = name.split_once('.').unwrap_or((current, name));
        self.tables.iter().filter(|(n, tn)| tn.eq_ignore_ascii_case(t) && n.eq_ignore_ascii_case(ns)).collect()
    }

    fn columns_of<'a>(&'a self, table: &(String, String)) -> impl Iterator<Item = &'a str> {
        let (ns, t) = (table.0.clone(), table.1.clone());
        self.columns.iter().filter(move |(n, tn, _)| *n == ns && *tn == t).map(|(_, _, c)| c.as_str())
    }
}

/// The candidates for the word before `pos` in `line`: where it starts and what may replace it.
pub(crate) fn candidates(catalog: &Catalog, current: Option<&str>, line: &str, pos: usize) -> (usize, Vec<String>) {
    let (start, offered) = offer(catalog, current, line, pos);
    (start, sorted(offered.all()))
}

/// What completes the word before the caret, the columns and the keywords apart from the rest
/// (tables, namespaces, meta-commands): the shared cases (tests/completion-cases.json) assert
/// which columns are offered, and a quoted name completes with names only.
#[derive(Debug, Default)]
struct Offered {
    columns: Vec<String>,
    keywords: Vec<String>,
    others: Vec<String>,
}

impl Offered {
    fn all(self) -> Vec<String> {
        self.columns.into_iter().chain(self.keywords).chain(self.others).collect()
    }

    /// Those that start with `word`, in any case.
    fn starting_with(mut self, word: &str) -> Offered {
        let word = word.to_lowercase();
        for names in [&mut self.columns, &mut self.keywords, &mut self.others] {
            names.retain(|name| name.to_lowercase().starts_with(&word));
        }
        self
    }
}

/// Where the word before `pos` in `line` starts, and what may replace it; in a quoted name
/// (`"ti`), names, quoted (see `offer_quoted`).
fn offer(catalog: &Catalog, current: Option<&str>, line: &str, pos: usize) -> (usize, Offered) {
    match quoted_name_at(line, pos) {
        Some(quoted) => offer_quoted(catalog, current, line, pos, quoted),
        None => offer_word(catalog, current, line, pos),
    }
}

/// The quoted name the caret at `pos` is in, after its opening quote: from that quote to its
/// closing one or, where it is not closed (the rest of the line is in it), to the end of the
/// word at the caret.
fn quoted_name_at(line: &str, pos: usize) -> Option<Range<usize>> {
    let mut before_caret = lexer::tokens(line).take_while(|t| t.start < pos);
    let name = before_caret.find(|t| t.kind == lexer::Kind::QuotedName && (pos < t.end() || !t.closed))?;
    let end = if name.closed {
        name.end()
    } else {
        let rest = line.get(pos..).unwrap_or_default();
        pos + rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len())
    };
    Some(name.start..end)
}

/// In the quoted name `quoted` (`"ti`, the caret at `pos` after its opening quote): the names
/// the same place offers without it that go on with what is typed there (in any case), quoted
/// (`"title"`, `t."title"`, with `""` for a quote in a name); no keyword, nor a dotted name
/// (`app.`). They replace the name to its end (see `ShellHelper::update`).
fn offer_quoted(
    catalog: &Catalog,
    current: Option<&str>,
    line: &str,
    pos: usize,
    quoted: Range<usize>,
) -> (usize, Offered) {
    // What the place offers, read with the quoted name taken out.
    let bare = format!("{}{}", &line[..quoted.start], &line[quoted.end..]);
    let (start, around) = offer_word(catalog, current, &bare, quoted.start);
    let qualifier = &bare[start..quoted.start];
    let typed = line.get(quoted.start + 1..pos).unwrap_or_default().replace("\"\"", "\"").to_lowercase();
    let quote = |names: Vec<String>| -> Vec<String> {
        let name_of = |n: &str| -> Option<String> {
            // After a qualifier (`t.`, `app.`), what follows its dot.
            let name =
                if qualifier.is_empty() { Some(n).filter(|n| !n.contains('.')) } else { Some(n.rsplit_once('.')?.1) };
            name.filter(|name| !name.is_empty() && name.to_lowercase().starts_with(&typed)).map(str::to_string)
        };
        let quoted = |name: String| format!("{qualifier}\"{}\"", name.replace('"', "\"\""));
        names.iter().filter_map(|n| name_of(n)).map(quoted).collect()
    };
    (start, Offered { columns: quote(around.columns), keywords: Vec::new(), others: quote(around.others) })
}

/// Where the word before `pos` in `line` starts, and what may replace it, outside quotes.
fn offer_word(catalog: &Catalog, current: Option<&str>, line: &str, pos: usize) -> (usize, Offered) {
    let current = current.unwrap_or(DEFAULT_NAMESPACE);
    let before = &line[..pos];
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '\\' | '"')))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let word = &before[start..];
    let mut out = Offered::default();

    if word.starts_with('\\') && before[..start].trim().is_empty() {
        out.others.extend(COMMANDS.iter().map(|(name, _, _)| name.to_string()).filter(|n| n.starts_with(word)));
        return (start, out);
    }
    let mut words_before = before[..start].split_whitespace().rev().map(str::to_uppercase);
    let previous = words_before.next().unwrap_or_default();
    let before_namespace = BEFORE_NAMESPACE.contains(&previous.as_str())
        || (previous == "IN" && words_before.next().as_deref() == Some("TABLES"));
    // The statement around the caret, the tables it makes itself (CTEs, subqueries in FROM),
    // and the query the caret is in: it reads the tables in its FROM and in those of the
    // queries around it, not those of the queries inside it or beside it.
    let tokens = tokenize(line);
    let statement = Statement::new(catalog, current, statement_at(&tokens, pos));
    let derived = derived_tables(&statement);
    let (caret, level) = statement.caret(pos);
    let ctes = derived.iter().filter(|d| statement.cte_visible(d, caret, level)).map(|d| d.name.clone());
    // The ORDER BY, LIMIT and OFFSET after a query's last branch read no table: they name
    // only the columns the branches return, by the names the first branch gives them.
    let clause = statement.query_clause(caret);
    let after_branches = statement.has_branches(level) && AFTER_BRANCHES.contains(&clause);
    // The names of the tables the caret's query and the queries around it read, innermost first.
    let scopes: Vec<Vec<(String, Option<Source>)>> =
        statement.readable(level).map(|(l, until)| statement.named(&derived, l, until)).collect();

    if let Some((qualifier, _)) = word.rsplit_once('.') {
        if after_branches {
            return (start, out);
        }
        // `ns.<table>` or `table.<column>`.
        let qualifier = qualifier.trim_matches('"');
        if catalog.has_namespace(qualifier) {
            out.others.extend(
                catalog
                    .tables
                    .iter()
                    .filter(|(ns, _)| ns.eq_ignore_ascii_case(qualifier))
                    .map(|(ns, t)| format!("{ns}.{t}")),
            );
        }
        // A name the statement gives (an alias, a CTE) comes before a catalog table's name.
        let sources = match qualified(&scopes, qualifier) {
            Some(sources) => sources,
            None => catalog.resolve(qualifier, current).into_iter().map(Source::catalog).collect(),
        };
        for source in sources {
            out.columns.extend(source.columns(catalog).into_iter().map(|c| format!("{qualifier}.{c}")));
        }
        return (start, out.starting_with(word));
    }

    // Namespaces (`ns.` goes on with their tables), the current namespace's tables by their
    // bare name, and the CTEs the caret may read.
    let namespaces = catalog.namespaces.iter().map(|ns| format!("{ns}."));
    let bare_tables = catalog.tables.iter().filter(|(ns, _)| ns == current).map(|(_, t)| t.clone());
    let tables = namespaces.chain(bare_tables).chain(ctes);
    if before_namespace {
        out.others.extend(catalog.namespaces.iter().cloned());
    } else if BEFORE_TABLE.contains(&previous.as_str()) {
        out.others.extend(tables);
    } else {
        let lower = !word.is_empty() && word.chars().all(|c| !c.is_uppercase());
        out.keywords.extend(KEYWORDS.iter().map(|k| if lower { k.to_lowercase() } else { k.to_string() }));
        // Columns of the tables the caret's query and the queries around it read and, in its
        // ORDER BY, GROUP BY and HAVING, the names its select list gives (`CASE ... END AS x`),
        // as DataFusion resolves them there, in expressions too; after a query's last branch,
        // only the names its first branch gives. Where no table is named yet, every column.
        let read: Vec<Source> =
            if after_branches { Vec::new() } else { scopes.iter().flatten().filter_map(|(_, s)| *s).collect() };
        let select_list_names = after_branches || matches!(clause, "ORDER" | "GROUP" | "HAVING");
        let outputs = if select_list_names { statement.outputs(&derived, level) } else { Vec::new() };
        // Not in GROUP BY the name of an aggregate's value: nothing can be grouped by it.
        let given: Vec<String> =
            outputs.into_iter().filter(|o| !(o.aggregate && clause == "GROUP")).filter_map(|o| o.name).collect();
        if read.is_empty() && given.is_empty() {
            out.columns.extend(catalog.columns.iter().map(|(_, _, c)| c.clone()));
        }
        out.columns.extend(given);
        for source in read {
            out.columns.extend(source.columns(catalog));
        }
        // Tables as qualifiers, but not one by a name its alias hides.
        out.others.extend(tables.filter(|t| qualified(&scopes, t).is_none_or(|found| !found.is_empty())));
    }
    (start, out.starting_with(word))
}

/// The tables `qualifier` names, given the names of the queries the caret may read (innermost
/// first): those of the innermost query that names it; none where an alias hides the name
/// (`todos` after `FROM app.todos t`), and `None` where no query there names it.
fn qualified<'s>(scopes: &[Vec<(String, Option<Source<'s>>)>], qualifier: &str) -> Option<Vec<Source<'s>>> {
    let mut hidden = false;
    for scope in scopes {
        let named = scope.iter().filter(|(name, _)| name.eq_ignore_ascii_case(qualifier));
        let found: Vec<Source> = named.clone().filter_map(|(_, source)| *source).collect();
        if !found.is_empty() {
            return Some(found);
        }
        hidden |= named.count() > 0;
    }
    hidden.then(Vec::new)
}

/// A piece of SQL as completion reads it: a token of the lexer's, but no blank or comment,
/// and a dotted name as one (`app.todos`, `t.`, `"Title"`, `t."Title"`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Token<'a> {
    text: &'a str,
    /// Where it starts in the line, in bytes.
    start: usize,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// A name, dotted or quoted, a keyword or a number.
    Word,
    /// A string literal (`'it''s'`).
    Literal,
    /// Any other character: `(`, `)`, `,`, `*`, `;`, ...
    Punct,
}

impl Token<'_> {
    fn is(&self, word: &str) -> bool {
        self.text.eq_ignore_ascii_case(word)
    }

    /// Whether the token can be a name the statement gives: an alias or a CTE's name.
    fn is_name(&self) -> bool {
        self.kind == Kind::Word
            && !self.text.contains('.')
            && !self.text.starts_with(|c: char| c.is_ascii_digit())
            && !KEYWORDS.iter().any(|k| self.is(k))
    }

    /// The name without its quotes.
    fn name(&self) -> String {
        self.text.replace('"', "")
    }
}

/// The tokens of `line` as completion reads them.
fn tokenize(line: &str) -> Vec<Token<'_>> {
    let mut tokens: Vec<Token> = Vec::new();
    for t in lexer::tokens(line) {
        let kind = match t.kind {
            lexer::Kind::Space | lexer::Kind::Comment => continue,
            lexer::Kind::String => Kind::Literal,
            lexer::Kind::Word | lexer::Kind::QuotedName | lexer::Kind::Number => Kind::Word,
            lexer::Kind::Punct if t.text == "." => Kind::Word,
            lexer::Kind::Punct => Kind::Punct,
        };
        match tokens.last_mut() {
            // The next part of a dotted name.
            Some(name) if kind == Kind::Word && name.kind == Kind::Word && name.start + name.text.len() == t.start => {
                name.text = &line[name.start..t.end()];
            }
            _ => tokens.push(Token { text: t.text, start: t.start, kind }),
        }
    }
    tokens
}

/// The tokens of the statement the caret at byte `pos` is in: statements end at a `;`, not at
/// one in a string or comment.
fn statement_at<'t, 'a>(tokens: &'t [Token<'a>], pos: usize) -> &'t [Token<'a>] {
    let end_of_statement = |t: &Token| t.kind == Kind::Punct && t.text == ";";
    let start = tokens.iter().rposition(|t| end_of_statement(t) && t.start < pos).map_or(0, |i| i + 1);
    let rest = tokens.get(start..).unwrap_or_default();
    &rest[..rest.iter().position(end_of_statement).unwrap_or(rest.len())]
}

/// Words that start a part of a query; a subquery after FROM or JOIN is a table.
const CLAUSES: &[&str] = &[
    "WITH",
    "SELECT",
    "FROM",
    "JOIN",
    "ON",
    "WHERE",
    "GROUP",
    "HAVING",
    "ORDER",
    "LIMIT",
    "OFFSET",
    "UNION",
    "INTERSECT",
    "EXCEPT",
];
/// Words that join the branches of a query: `SELECT ... UNION ALL SELECT ...`.
const SET_OPERATIONS: &[&str] = &["UNION", "INTERSECT", "EXCEPT"];
/// The clauses after a query's last branch that are the whole query's, not the branch's.
const AFTER_BRANCHES: &[&str] = &["ORDER", "LIMIT", "OFFSET"];

/// For each `(` among `tokens`, the index of its `)` (the end if it is not closed yet).
fn matching_parentheses(tokens: &[Token]) -> Vec<usize> {
    let mut close = vec![tokens.len(); tokens.len()];
    let mut open = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if t.text == "(" {
            open.push(i);
        } else if t.text == ")"
            && let Some(c) = open.pop().and_then(|at| close.get_mut(at))
        {
            *c = i;
        }
    }
    close
}

/// For each token, whether it is a `(` that opens a query in parentheses: `(SELECT ...`,
/// `(WITH ...`, `(VALUES ...`, or one whose first branch is in parentheses of its own,
/// `((SELECT ...) UNION (SELECT ...))`: then a set operation, ORDER BY, LIMIT, OFFSET or the
/// `)` follows the branch (in `((SELECT ...) s JOIN ...)` the parentheses hold a join). Read
/// from the end, each `(` from the one after it, so that a pasted run of many `(` is read
/// once, in a loop.
fn query_openings(tokens: &[Token], close: &[usize]) -> Vec<bool> {
    let mut opens = vec![false; tokens.len()];
    for i in (0..tokens.len()).rev() {
        if tokens[i].text != "(" {
            continue;
        }
        opens[i] = match tokens.get(i + 1) {
            Some(next) if next.is("SELECT") || next.is("WITH") || next.is("VALUES") => true,
            Some(next) if next.text == "(" && opens[i + 1] => {
                // Nothing after the branch is a query being typed.
                let after_branch = close.get(i + 1).and_then(|&end| tokens.get(end + 1));
                after_branch
                    .is_none_or(|t| t.text == ")" || SET_OPERATIONS.iter().chain(AFTER_BRANCHES).any(|w| t.is(w)))
            }
            _ => false,
        };
    }
    opens
}

/// A statement's tokens and how they nest, to know which tables each part of it may read.
struct Statement<'a> {
    catalog: &'a Catalog,
    current: &'a str,
    tokens: &'a [Token<'a>],
    /// For each `(`, the index of its `)` (the end if it is not closed yet).
    close: Vec<usize>,
    /// For each `(`, the query it opens, if any (an index into `levels`).
    opens: Vec<Option<usize>>,
    /// For each token, the clause it is in: the last of CLAUSES before it in its parentheses;
    /// then the clause after the last token.
    clause: Vec<&'static str>,
    /// For each token, the query it is in (an index into `levels`).
    level: Vec<usize>,
    /// The statement's own query, then each query in parentheses and each branch.
    levels: Vec<Level>,
    /// For each query, its own tokens (not those of the queries inside it), so that finding
    /// what one query names does not read the whole statement.
    own: Vec<Vec<usize>>,
}

/// A query of a statement: the statement's own, one in parentheses, or one branch of a query
/// whose branches UNION, INTERSECT or EXCEPT join.
struct Level {
    /// Where its `(` is; none for the statement's own and for a branch.
    open: Option<usize>,
    /// The query it is in (a branch's is the query it is a branch of); none for the
    /// statement's own.
    around: Option<usize>,
    /// Whether it may read the tables of the query it is in: a subquery in WHERE or in the
    /// select list may (it is correlated), a CTE's body or a subquery in FROM may not, unless
    /// LATERAL. A branch may: it reads what its query reads (the CTEs of its WITH, an outer
    /// query).
    reads_around: bool,
    /// Whether it is a LATERAL subquery in FROM: of its query's tables, it reads those before
    /// it.
    lateral: bool,
    /// Whether it is a branch of `around` (`SELECT ... UNION SELECT ...` without parentheses):
    /// its FROM and aliases are its own; the ORDER BY, LIMIT and OFFSET after the last branch
    /// are `around`'s.
    branch: bool,
    /// Its first branch, if branches UNION, INTERSECT or EXCEPT join in it, and where the first
    /// of those words is: its tokens from its body to there are the first branch's.
    first_branch: Option<usize>,
    first_set_operation: Option<usize>,
    /// Whether its WITH is `WITH RECURSIVE`: then its CTEs are visible in all of it, their own
    /// bodies included (`WITH RECURSIVE r AS (... UNION ALL SELECT ... FROM r)`).
    recursive: bool,
    /// How many parentheses its own tokens are in.
    depth: usize,
    /// Where the query that names its columns starts: its first SELECT or VALUES, or the `(`
    /// of a first branch in parentheses.
    body: Option<usize>,
}

impl Level {
    fn new(open: Option<usize>, around: Option<usize>, reads_around: bool, depth: usize) -> Level {
        Level {
            open,
            around,
            reads_around,
            lateral: false,
            branch: false,
            first_branch: None,
            first_set_operation: None,
            recursive: false,
            depth,
            body: None,
        }
    }
}

impl<'a> Statement<'a> {
    fn new(catalog: &'a Catalog, current: &'a str, tokens: &'a [Token<'a>]) -> Statement<'a> {
        let close = matching_parentheses(tokens);
        let opens_query = query_openings(tokens, &close);
        let mut opens = vec![None; tokens.len()];
        let mut clause = Vec::with_capacity(tokens.len() + 1);
        let mut level = Vec::with_capacity(tokens.len());
        let mut levels = vec![Level::new(None, None, false, 0)];
        // The `(`s not closed yet: the clause and query around each.
        let mut open: Vec<(&'static str, usize)> = Vec::new();
        let (mut now, mut query) = ("", 0);
        for (i, t) in tokens.iter().enumerate() {
            clause.push(now);
            // A `(` and its `)` belong to the query around them.
            level.push(query);
            // Whether the token is the query's own, not in parentheses inside it.
            let own = levels[query].depth == open.len();
            let cte_body = i.checked_sub(1).and_then(|p| tokens.get(p)).is_some_and(|p| p.is("AS"));
            let starts_body = t.is("SELECT") || t.is("VALUES") || (opens_query[i] && !cte_body);
            if own && starts_body && levels[query].body.is_none() {
                levels[query].body = Some(i);
            }
            if t.text == "(" {
                if opens_query[i] {
                    let lateral = i.checked_sub(1).and_then(|p| tokens.get(p)).is_some_and(|p| p.is("LATERAL"));
                    let reads_around = lateral || !matches!(now, "WITH" | "FROM" | "JOIN");
                    levels.push(Level { lateral, ..Level::new(Some(i), Some(query), reads_around, open.len() + 1) });
                    query = levels.len() - 1;
                    opens[i] = Some(query);
                }
                open.push((now, level.last().copied().unwrap_or(0)));
                now = "";
            } else if t.text == ")" {
                if let Some((outer_clause, outer_query)) = open.pop() {
                    now = outer_clause;
                    query = outer_query;
                    if let Some(l) = level.last_mut() {
                        *l = query;
                    }
                }
            } else if let Some(c) = CLAUSES.iter().find(|c| t.is(c)) {
                now = c;
                if own && SET_OPERATIONS.contains(c) {
                    query = next_branch(&mut levels, query, i);
                    if let Some(l) = level.last_mut() {
                        *l = query;
                    }
                } else if own && AFTER_BRANCHES.contains(c) && levels[query].branch {
                    query = levels[query].around.unwrap_or(0);
                    if let Some(l) = level.last_mut() {
                        *l = query;
                    }
                } else if *c == "WITH" && tokens.get(i + 1).is_some_and(|n| n.is("RECURSIVE")) {
                    levels[query].recursive = true;
                }
            }
        }
        clause.push(now);
        // The tokens of a query from its body to its first UNION, INTERSECT or EXCEPT, and the
        // queries in parentheses among them, are its first branch's: moved once, after the
        // walk, as moving them at each first set operation takes time in the number of nested
        // queries squared.
        for (at, l) in level.iter_mut().enumerate() {
            *l = first_branch_at(&levels, *l, at);
        }
        for inner in 0..levels.len() {
            if let (Some(open), Some(around)) = (levels[inner].open, levels[inner].around) {
                levels[inner].around = Some(first_branch_at(&levels, around, open));
            }
        }
        let mut own = vec![Vec::new(); levels.len()];
        for (i, &l) in level.iter().enumerate() {
            own[l].push(i);
        }
        Statement { catalog, current, tokens, close, opens, clause, level, levels, own }
    }

    /// The `)` of the `(` at `open` (the end if it is not closed yet).
    fn close_of(&self, open: usize) -> usize {
        self.close.get(open).copied().unwrap_or(self.tokens.len())
    }

    /// The query the token at `i` opens, if it is a `(` that opens one (see `query_openings`).
    fn opened(&self, i: usize) -> Option<usize> {
        self.opens.get(i).copied().flatten()
    }

    /// The clause of its query the token at `at` is in: outside the parentheses around it that
    /// open no query (`ORDER BY lower(x)`: ORDER; `SELECT array_agg(x ORDER BY y)`: SELECT).
    /// Out of one `(` at a time, in a loop: pasted parentheses may nest deeper than a stack
    /// goes.
    fn query_clause(&self, mut at: usize) -> &'static str {
        for open in (0..at.min(self.tokens.len())).rev() {
            if self.tokens[open].text != "(" || self.close_of(open) < at {
                continue;
            }
            if self.opened(open).is_some() {
                break;
            }
            at = open;
        }
        self.clause.get(at).copied().unwrap_or("")
    }

    /// Where the caret at byte `pos` is: the index of the first token from it on, and the
    /// innermost query it is in: the query of the token before it, or the one that token
    /// opens.
    fn caret(&self, pos: usize) -> (usize, usize) {
        let at = self.tokens.iter().take_while(|t| t.start < pos).count();
        let level = at
            .checked_sub(1)
            .map_or(0, |before| self.opened(before).or_else(|| self.level.get(before).copied()).unwrap_or(0));
        (at, level)
    }

    /// `level` and the queries it is in, innermost first.
    fn enclosing(&self, level: usize) -> impl Iterator<Item = usize> + '_ {
        std::iter::successors(Some(level), |&l| self.levels.get(l)?.around)
    }

    /// `level` and the queries whose tables it may read, innermost first: those it is in,
    /// but not the one whose FROM or WITH it is in; each with where its tables must be named
    /// before (a LATERAL subquery reads those before it in the FROM around it).
    fn readable(&self, level: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let next = |mut l: usize| loop {
            let query = self.levels.get(l)?;
            let around = query.around?;
            if query.reads_around {
                let until = query.open.filter(|_| query.lateral).unwrap_or(usize::MAX);
                return Some((around, until));
            }
            l = around;
        };
        std::iter::successors(Some((level, usize::MAX)), move |&(l, _)| next(l))
    }

    /// Whether `level` is a query whose branches UNION, INTERSECT or EXCEPT join.
    fn has_branches(&self, level: usize) -> bool {
        self.levels.get(level).is_some_and(|l| l.first_branch.is_some())
    }

    /// The columns the query `level` returns, in order (see `output_names`; its `*` stands for
    /// the tables in its own FROM): for a query with branches, those of the first branch, as in
    /// PostgreSQL; for `VALUES`, the names the server gives.
    fn outputs(&self, derived: &[Derived], level: usize) -> Vec<Output> {
        let first_of = |l: usize| self.levels.get(l).and_then(|q| q.first_branch).unwrap_or(l);
        let mut first = first_of(level);
        // A first branch in parentheses: its query's, in a loop, as pasted parentheses may nest
        // deeper than a stack goes.
        let body = loop {
            let Some(body) = self.levels.get(first).and_then(|l| l.body) else {
                return Vec::new();
            };
            match self.opened(body) {
                Some(inner) => first = first_of(inner),
                None => break body,
            }
        };
        let open = self.enclosing(first).find_map(|l| self.levels.get(l)?.open);
        let end = open.map_or(self.tokens.len(), |open| self.close_of(open));
        let query = self.tokens.get(body..end).unwrap_or_default();
        if query.first().is_some_and(|t| t.is("VALUES")) {
            return values_columns(query).into_iter().map(Output::column).collect();
        }
        output_names(self.catalog, query, &self.named(derived, first, usize::MAX))
    }

    /// Whether `d` is a CTE that the token at `at`, in the query `level`, may read: it comes
    /// after the CTE (in the main query or a later CTE), or anywhere for `WITH RECURSIVE`, in
    /// a query the CTE's WITH is in.
    fn cte_visible(&self, d: &Derived, at: usize, level: usize) -> bool {
        let defined_in = self.level.get(d.open).copied().unwrap_or(0);
        d.cte && (d.recursive || at > d.end) && self.enclosing(level).any(|l| l == defined_in)
    }

    /// The tables the query `level` reads, by the names it may use for them: a table or CTE in
    /// its FROM (after FROM, JOIN, a comma in FROM, a `(` of a join in parentheses, ...) by its name and alias (`FROM
    /// app.todos t`, `JOIN open AS o`, with the column list an alias may give: `t(a, b)`), and
    /// its subqueries in FROM by their alias. Not those of the queries inside it, nor those
    /// named from the token `until` on. An alias hides the table's own names: they name `None`
    /// (in SQL, `FROM app.todos t` reads the table as `t` only), unless the table comes again
    /// without one.
    fn named<'s>(&'s self, derived: &'s [Derived], level: usize, until: usize) -> Vec<(String, Option<Source<'s>>)> {
        let own = self.own.get(level).map_or(&[][..], Vec::as_slice);
        let own = &own[..own.partition_point(|&i| i < until)];
        let subqueries = own.iter().filter_map(|&open| derived_at(derived, open, self.close_of(open)));
        let mut out: Vec<(String, Option<Source<'s>>)> =
            subqueries.filter(|d| !d.cte).map(|d| (d.name.clone(), Some(Source::derived(d)))).collect();
        for &at in own {
            let Some(i) = at.checked_sub(1) else { continue };
            let (before, table) = (&self.tokens[i], &self.tokens[at]);
            let in_from_list = before.text == "," && self.clause.get(at) == Some(&"FROM");
            // `FROM (app.todos t JOIN app.lists l ON ...)`: a join in parentheses.
            let in_join =
                before.text == "(" && matches!(self.clause.get(i), Some(&"FROM" | &"JOIN")) && self.opened(i).is_none();
            let before_table = in_from_list || in_join || BEFORE_TABLE.iter().any(|w| before.is(w));
            if !before_table || table.kind != Kind::Word {
                continue;
            }
            let name = table.name();
            let cte = derived
                .iter()
                .find(|d| d.name.eq_ignore_ascii_case(&name) && self.cte_visible(d, at, level))
                .map(Source::derived);
            let catalogs = || self.catalog.resolve(&name, self.current).first().copied().map(Source::catalog);
            let Some(mut source) = cte.or_else(catalogs) else {
                continue;
            };
            // In `INSERT INTO app.todos (id, title)` the word after the table is `(`, no alias.
            let alias_at = if self.tokens.get(at + 1).is_some_and(|w| w.is("AS")) { at + 2 } else { at + 1 };
            let alias = self.tokens.get(alias_at).filter(|a| a.is_name());
            if alias.is_some() && self.tokens.get(alias_at + 1).is_some_and(|t| t.text == "(") {
                source.renames = self.column_list(alias_at + 1);
            }
            // `app.todos` also goes by `todos`, as the server reads a partly qualified name.
            let by_its_names = alias.is_none().then_some(source);
            if let Table::Catalog((_, table)) = source.table {
                out.push((table.clone(), by_its_names));
            }
            out.push((name, by_its_names));
            if let Some(alias) = alias {
                out.push((alias.name(), Some(source)));
            }
        }
        out
    }

    /// The tokens of the column list whose `(` is at `open`: `x(a, b)`.
    fn column_list(&self, open: usize) -> &'a [Token<'a>] {
        self.tokens.get(open + 1..self.close_of(open)).unwrap_or_default()
    }
}

/// Starts the next branch of `query` at the UNION, INTERSECT or EXCEPT at `at` and returns it.
/// At the first one, its first branch too: what is in it since the query's body started
/// becomes that branch's when `Statement::new` is done.
fn next_branch(levels: &mut Vec<Level>, query: usize, at: usize) -> usize {
    let depth = levels[query].depth;
    let branch = |around: usize| Level { branch: true, ..Level::new(None, Some(around), true, depth) };
    let compound = if levels[query].branch {
        levels[query].around.unwrap_or(0)
    } else {
        let body = levels[query].body;
        levels[query].first_branch = Some(levels.len());
        levels[query].first_set_operation = Some(at);
        levels.push(Level { body, ..branch(query) });
        query
    };
    levels.push(branch(compound));
    levels.len() - 1
}

/// The query that the token at `at`, of the query `level` as the walk over a statement found
/// it, is in: `level`'s first branch from its body to its first UNION, INTERSECT or EXCEPT.
fn first_branch_at(levels: &[Level], level: usize, at: usize) -> usize {
    let Some(query) = levels.get(level) else { return level };
    match (query.first_branch, query.body, query.first_set_operation) {
        (Some(first), Some(body), Some(until)) if (body..until).contains(&at) => first,
        _ => level,
    }
}

/// A table a statement makes for itself: a CTE (`WITH name AS (SELECT ...)`) or a subquery
/// in FROM (`(SELECT ...) AS name`), with the names of its columns.
#[derive(Debug)]
struct Derived {
    name: String,
    cte: bool,
    columns: Vec<String>,
    /// Where its body's `(` and `)` are among the statement's tokens (to know which query it
    /// is in and what comes after it).
    open: usize,
    end: usize,
    /// Whether it is a CTE of `WITH RECURSIVE`, visible in its own body.
    recursive: bool,
}

/// The table in `derived` (in the order of their ends) whose body's `(` is at `open` and its
/// `)` at `end`, if any: found without reading them all, as a query may hold many.
fn derived_at(derived: &[Derived], open: usize, end: usize) -> Option<&Derived> {
    let from = derived.partition_point(|d| d.end < end);
    derived.get(from..)?.iter().take_while(|d| d.end == end).find(|d| d.open == open)
}

/// A CTE or subquery as found, before its columns are known.
struct Found {
    name: String,
    cte: bool,
    /// The names of its column list (`WITH x(a, b) AS ...`, `(SELECT ...) AS x(a, b)`); none
    /// without one.
    listed: Vec<String>,
    /// Where its body's `(` and `)` are.
    open: usize,
    end: usize,
}

/// The CTEs and subqueries in FROM of a statement, found by matching parentheses. Inner ones
/// come first, so that `SELECT *` over one of them knows its columns.
fn derived_tables(statement: &Statement) -> Vec<Derived> {
    let tokens = statement.tokens;
    let word = |i: usize| tokens.get(i).map_or("", |t| t.text);
    let mut found: Vec<Found> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let previous = i.checked_sub(1).and_then(|p| tokens.get(p));
        let clause = statement.clause.get(i).copied().unwrap_or("");
        // `WITH name [(a, b)] AS (SELECT ...)`, or `, name ...` for the next one.
        let after_with = previous.is_some_and(|p| p.is("WITH") || p.is("RECURSIVE") || p.text == ",");
        if after_with && clause == "WITH" && t.is_name() {
            let mut at = i + 1;
            let mut listed = Vec::new();
            if word(at) == "(" {
                listed = names_in(statement.column_list(at));
                at = statement.close_of(at) + 1;
            }
            if tokens.get(at).is_some_and(|t| t.is("AS")) && statement.opened(at + 1).is_some() {
                let end = statement.close_of(at + 1);
                found.push(Found { end, name: t.name(), listed, open: at + 1, cte: true });
            }
        }
        // `FROM (SELECT ...) [AS] name [(a, b)]`, also after JOIN or a comma in FROM, and
        // `(VALUES ...)` there.
        if statement.opened(i).is_some() && matches!(clause, "FROM" | "JOIN") {
            let end = statement.close_of(i);
            let at = if word(end + 1).eq_ignore_ascii_case("AS") { end + 2 } else { end + 1 };
            if let Some(alias) = tokens.get(at).filter(|t| t.is_name()) {
                let listed = if word(at + 1) == "(" { names_in(statement.column_list(at + 1)) } else { Vec::new() };
                found.push(Found { end, name: alias.name(), listed, open: i, cte: false });
            }
        }
    }

    found.sort_by_key(|f| f.end);
    let mut done: Vec<Derived> = Vec::new();
    for Found { end, name, listed, open, cte } in found {
        let body = statement.opened(open).unwrap_or(0);
        let columns = renamed(statement.outputs(&done, body).into_iter().map(|o| o.name).collect(), listed);
        let defined_in = statement.level.get(open).and_then(|&l| statement.levels.get(l));
        let recursive = cte && defined_in.is_some_and(|l| l.recursive);
        done.push(Derived { name, cte, columns, open, end, recursive });
    }
    done
}

/// The names in a column list's tokens: `a, b` of `x(a, b)`.
fn names_in(list: &[Token]) -> Vec<String> {
    list.iter().filter(|t| t.kind == Kind::Word).map(Token::name).collect()
}

/// The names of a table's columns, given the names in a column list (`AS x(a, b)`): those
/// replace the first ones and the others keep theirs, as in PostgreSQL. A column without a
/// name (an expression without an alias) has one only from the list.
fn renamed(columns: Vec<Option<String>>, list: Vec<String>) -> Vec<String> {
    let listed = list.len();
    list.into_iter().chain(columns.into_iter().skip(listed).flatten()).collect()
}

/// The names the server gives the columns of `VALUES (1, 'a'), ...`: `column1`, `column2`,
/// ..., one for each value of the first row.
fn values_columns(values: &[Token]) -> Vec<String> {
    let (mut depth, mut count) = (0usize, 0);
    for t in values.get(1..).unwrap_or_default() {
        match t.text {
            "(" => {
                depth += 1;
                count = count.max(1);
            }
            ")" => depth = depth.saturating_sub(1),
            "," if depth == 1 => count += 1,
            _ => {}
        }
        if depth == 0 {
            break;
        }
    }
    (1..=count).map(|i| format!("column{i}")).collect()
}

/// A table a statement reads, and the column list its alias gives it, if any: `FROM
/// app.todos t(a, b)` (empty without one).
#[derive(Debug, Clone, Copy)]
struct Source<'a> {
    table: Table<'a>,
    renames: &'a [Token<'a>],
}

/// A table of the catalog's, or one a statement makes itself.
#[derive(Debug, Clone, Copy)]
enum Table<'a> {
    Catalog(&'a (String, String)),
    Derived(&'a Derived),
}

impl<'a> Source<'a> {
    fn catalog(table: &'a (String, String)) -> Source<'a> {
        Source { table: Table::Catalog(table), renames: &[] }
    }

    fn derived(table: &'a Derived) -> Source<'a> {
        Source { table: Table::Derived(table), renames: &[] }
    }

    fn columns(&self, catalog: &Catalog) -> Vec<String> {
        let columns = match self.table {
            Table::Catalog(t) => catalog.columns_of(t).map(str::to_string).collect(),
            Table::Derived(d) => d.columns.clone(),
        };
        renamed(columns.into_iter().map(Some).collect(), names_in(self.renames))
    }
}

/// A column a query returns: its name (none for an expression without an alias), and whether
/// its value is an aggregate's or a window function's, which GROUP BY cannot name.
struct Output {
    name: Option<String>,
    aggregate: bool,
}

impl Output {
    fn column(name: String) -> Output {
        Output { name: Some(name), aggregate: false }
    }
}

/// The columns a query (`SELECT ...`, maybe after a WITH) returns, in order, named: a column's
/// name (`t.title` is `title`), an alias (`count(*) AS n`, `count(*) n`), the columns of every
/// table `*` stands for, or of `t` for `t.*`. An expression without an alias gets none (the
/// server would name it after the expression), but keeps its place.
fn output_names(catalog: &Catalog, query: &[Token], named: &[(String, Option<Source>)]) -> Vec<Output> {
    // The select list: from the first SELECT outside parentheses to FROM (or the end), split
    // at its commas.
    let mut items: Vec<Vec<Token>> = Vec::new();
    let mut depth = 0usize;
    let mut in_list = false;
    for t in query {
        if depth == 0 && !in_list && t.is("SELECT") {
            in_list = true;
            items.push(Vec::new());
            continue;
        }
        if depth == 0 && in_list && CLAUSES.iter().any(|c| t.is(c)) {
            break;
        }
        if in_list {
            match items.last_mut() {
                Some(item) if !(depth == 0 && t.text == ",") => item.push(*t),
                _ => items.push(Vec::new()),
            }
        }
        if t.text == "(" {
            depth += 1;
        } else if t.text == ")" {
            depth = depth.saturating_sub(1);
        }
    }

    let mut outputs = Vec::new();
    for item in &items {
        let item = match item.as_slice() {
            [first, rest @ ..] if first.is("DISTINCT") || first.is("ALL") => rest,
            all => all,
        };
        let name = match item {
            [star] if star.text == "*" => {
                let mut seen: Vec<Source> = Vec::new();
                for source in named.iter().filter_map(|(_, source)| source.as_ref()) {
                    if !seen.iter().any(|s| same(s, source)) {
                        seen.push(*source);
                        outputs.extend(source.columns(catalog).into_iter().map(Output::column));
                    }
                }
                continue;
            }
            [table, star] if star.text == "*" => {
                let table = table.text.trim_end_matches('.').replace('"', "");
                if let Some((_, Some(source))) =
                    named.iter().find(|(n, s)| s.is_some() && n.eq_ignore_ascii_case(&table))
                {
                    outputs.extend(source.columns(catalog).into_iter().map(Output::column));
                }
                continue;
            }
            [.., last_but_one, alias] if last_but_one.is("AS") && alias.kind == Kind::Word => Some(alias.name()),
            [column] if column.kind == Kind::Word && !LITERALS.iter().any(|l| column.is(l)) => {
                let name = column.name();
                let name =
                    name.rsplit('.').next().filter(|n| !n.is_empty() && !n.starts_with(|c: char| c.is_ascii_digit()));
                name.map(str::to_string)
            }
            [value @ .., alias] if alias.is_name() && ends_value(value) => Some(alias.name()),
            _ => None,
        };
        outputs.push(Output { name, aggregate: aggregates(item) });
    }
    outputs
}

/// Whether a select list item calls an aggregate (`count(*) + 1`) or window function (`...
/// OVER (...)`) outside the queries in it (`(SELECT count(*) ...)` is one value per row).
fn aggregates(item: &[Token]) -> bool {
    // For each `(` the item is in at a token, whether it is in a query there.
    let mut in_query: Vec<bool> = Vec::new();
    for (i, t) in item.iter().enumerate() {
        let next = item.get(i + 1);
        if t.text == "(" {
            let opens_query = next.is_some_and(|n| n.is("SELECT") || n.is("WITH") || n.is("VALUES"));
            in_query.push(in_query.last() == Some(&true) || opens_query);
        } else if t.text == ")" {
            in_query.pop();
        } else if in_query.last() != Some(&true) {
            let calls_aggregate = next.is_some_and(|n| n.text == "(") && AGGREGATES.iter().any(|a| t.is(a));
            if t.is("OVER") || calls_aggregate {
                return true;
            }
        }
    }
    false
}

/// Whether a select list item `value` ends with a value, so that a name after it is its alias
/// given without AS: `count(*) n`, `t.title name`, `'x' label`, `1 one`, `CASE ... END x`,
/// `done::int n`.
fn ends_value(value: &[Token]) -> bool {
    match value {
        [.., colon, cast_to] if colon.text == ":" => cast_to.kind == Kind::Word,
        [.., last] => {
            let keyword = KEYWORDS.iter().any(|k| last.is(k));
            last.text == ")" || last.kind == Kind::Literal || (last.kind == Kind::Word && (!keyword || last.is("END")))
        }
        [] => false,
    }
}

/// Words that are values, not columns.
const LITERALS: &[&str] = &["NULL", "TRUE", "FALSE", "CURRENT_USER"];
/// The server's aggregate functions, as its `information_schema.routines` lists them.
const AGGREGATES: &[&str] = &[
    "ANY_VALUE",
    "APPROX_DISTINCT",
    "APPROX_MEDIAN",
    "APPROX_PERCENTILE_CONT",
    "APPROX_PERCENTILE_CONT_WITH_WEIGHT",
    "ARRAY_AGG",
    "AVG",
    "BIT_AND",
    "BIT_OR",
    "BIT_XOR",
    "BOOL_AND",
    "BOOL_OR",
    "CORR",
    "COUNT",
    "COVAR",
    "COVAR_POP",
    "COVAR_SAMP",
    "FIRST_VALUE",
    "GROUPING",
    "LAST_VALUE",
    "MAX",
    "MEAN",
    "MEDIAN",
    "MIN",
    "NTH_VALUE",
    "PERCENTILE_CONT",
    "QUANTILE_CONT",
    "REGR_AVGX",
    "REGR_AVGY",
    "REGR_COUNT",
    "REGR_INTERCEPT",
    "REGR_R2",
    "REGR_SLOPE",
    "REGR_SXX",
    "REGR_SXY",
    "REGR_SYY",
    "STDDEV",
    "STDDEV_POP",
    "STDDEV_SAMP",
    "STRING_AGG",
    "SUM",
    "VAR",
    "VAR_POP",
    "VAR_POPULATION",
    "VAR_SAMP",
    "VAR_SAMPLE",
];

/// Whether two sources are the same table.
fn same(a: &Source, b: &Source) -> bool {
    match (a.table, b.table) {
        (Table::Catalog(a), Table::Catalog(b)) => a == b,
        (Table::Derived(a), Table::Derived(b)) => std::ptr::eq(a, b),
        _ => false,
    }
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

/// Where a completion taken at the caret `pos` ends what it replaces: the caret, or the end of
/// the quoted name the caret is in.
fn replaced_until(line: &str, pos: usize) -> usize {
    quoted_name_at(line, pos).map_or(pos, |quoted| quoted.end.max(pos))
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

    /// Replaces the word before the caret and, in a quoted name, the rest of it, so that
    /// `"ti|tle"` becomes `"title"`, not `"title"tle"`.
    fn update(&self, line: &mut LineBuffer, start: usize, elected: &str, cl: &mut Changeset) {
        let end = replaced_until(line.as_str(), line.pos());
        line.replace(start..end, elected, cl);
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
    use serde::Deserialize;

    /// The cases the shell's and the console's completion share (their `about` says what a
    /// case asserts).
    const SHARED_CASES: &str = include_str!("../tests/completion-cases.json");

    #[derive(Deserialize)]
    struct SharedCases {
        catalog: CaseCatalog,
        cases: Vec<Case>,
        unfinished: Vec<String>,
        pasted: Vec<Pasted>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct CaseCatalog {
        namespaces: Vec<String>,
        tables: Vec<CaseTable>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct CaseTable {
        namespace: String,
        name: String,
        columns: Vec<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Case {
        name: String,
        sql: String,
        namespace: Option<String>,
        columns: Option<Vec<String>>,
        exactly: Option<Vec<String>>,
        #[serde(default)]
        offered: Vec<String>,
        #[serde(default)]
        not_offered: Vec<String>,
    }

    /// An input too long to write out: its parts, each a text and how many times it repeats.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Pasted {
        name: String,
        parts: Vec<(String, usize)>,
        offered: Vec<String>,
    }

    fn shared_cases() -> SharedCases {
        serde_json::from_str(SHARED_CASES).expect("tests/completion-cases.json")
    }

    /// The shared cases' catalog, as the shell loads one.
    fn catalog() -> Catalog {
        let shared = shared_cases().catalog;
        let table = |t: &CaseTable| (t.namespace.clone(), t.name.clone());
        Catalog {
            namespaces: shared.namespaces,
            tables: shared.tables.iter().map(table).collect(),
            columns: shared
                .tables
                .iter()
                .flat_map(|t| t.columns.iter().map(|c| (t.namespace.clone(), t.name.clone(), c.clone())))
                .collect(),
        }
    }

    /// What fails in `case`, if anything.
    fn check(catalog: &Catalog, case: &Case) -> Vec<String> {
        let Some(pos) = case.sql.find('|').filter(|&p| case.sql.rfind('|') == Some(p)) else {
            return vec!["the sql has no caret, or more than one `|`".to_string()];
        };
        let line = case.sql.replacen('|', "", 1);
        let (_, offered) = offer(catalog, case.namespace.as_deref(), &line, pos);
        let columns = sorted(offered.columns.clone());
        let all = sorted(offered.all());
        let mut failed = Vec::new();
        if let Some(expected) = case.columns.clone().map(sorted)
            && expected != columns
        {
            failed.push(format!("columns {columns:?}, expected {expected:?}"));
        }
        if let Some(expected) = case.exactly.clone().map(sorted)
            && expected != all
        {
            failed.push(format!("offered {all:?}, expected exactly {expected:?}"));
        }
        let missing: Vec<&String> = case.offered.iter().filter(|o| !all.contains(o)).collect();
        if !missing.is_empty() {
            failed.push(format!("{missing:?} not offered"));
        }
        let unwanted: Vec<&String> = case.not_offered.iter().filter(|o| all.contains(o)).collect();
        if !unwanted.is_empty() {
            failed.push(format!("{unwanted:?} offered"));
        }
        failed
    }

    #[test]
    fn the_shared_cases() {
        let shared = shared_cases();
        let catalog = catalog();
        let failures: Vec<String> = shared
            .cases
            .iter()
            .flat_map(|case| check(&catalog, case).into_iter().map(|f| format!("{}: {}\n  {}", case.name, case.sql, f)))
            .collect();
        assert!(failures.is_empty(), "{} failed:\n{}", failures.len(), failures.join("\n"));
    }

    #[test]
    fn unfinished_statements_never_panic() {
        let catalog = catalog();
        for line in shared_cases().unfinished {
            for pos in (0..=line.len()).filter(|&p| line.is_char_boundary(p)) {
                candidates(&catalog, Some("app"), &line, pos);
            }
        }
    }

    /// On a test's thread, whose stack is smaller than the shell's (2 MiB, not 8).
    #[test]
    fn pasted_inputs_complete_without_exhausting_the_stack() {
        let catalog = catalog();
        for pasted in shared_cases().pasted {
            let line: String = pasted.parts.iter().map(|(part, times)| part.repeat(*times)).collect();
            let (_, offered) = candidates(&catalog, Some("app"), &line, line.len());
            let missing: Vec<&String> = pasted.offered.iter().filter(|o| !offered.contains(o)).collect();
            assert!(missing.is_empty(), "{}: {missing:?} not offered", pasted.name);
        }
    }

    #[test]
    fn a_quoted_name_is_replaced_whole_its_closing_quote_included() {
        // What the line becomes when the first candidate at the caret (at `|`) is taken.
        let taken = |sql: &str| {
            let pos = sql.find('|').expect("a caret");
            let line = sql.replacen('|', "", 1);
            let (start, found) = candidates(&catalog(), Some("app"), &line, pos);
            format!("{}{}{}", &line[..start], found[0], &line[replaced_until(&line, pos)..])
        };
        assert_eq!(taken("SELECT \"ti| FROM app.todos"), "SELECT \"title\" FROM app.todos");
        assert_eq!(taken("SELECT \"ti|\" FROM app.todos"), "SELECT \"title\" FROM app.todos");
        assert_eq!(taken("SELECT \"ti|tl\" FROM app.todos"), "SELECT \"title\" FROM app.todos");
        assert_eq!(taken("SELECT t.\"ti|, t.id FROM app.todos t"), "SELECT t.\"title\", t.id FROM app.todos t");
        assert_eq!(taken("SELECT titl| FROM app.todos"), "SELECT title FROM app.todos");
    }

    fn complete(line: &str, current: Option<&str>) -> Vec<String> {
        let (start, c) = candidates(&catalog(), current, line, line.len());
        assert!(start <= line.len());
        c
    }

    #[test]
    fn the_word_completed_starts_after_the_last_blank_or_punctuation() {
        assert_eq!(candidates(&catalog(), None, "SELECT * FROM app.to", 20), (14, vec!["app.todos".to_string()]));
        assert_eq!(candidates(&catalog(), None, "SELECT count(ti", 15).0, 13);
    }

    #[test]
    fn meta_commands_and_their_tables_complete() {
        assert_eq!(complete("\\ti", None), ["\\timing"]);
        assert!(complete("\\d", None).starts_with(&["\\d".to_string(), "\\dn".to_string()]));
        assert_eq!(complete("\\d app.e", None), Vec::<String>::new());
        assert_eq!(complete("\\d analytics.e", None), ["analytics.events"]);
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
