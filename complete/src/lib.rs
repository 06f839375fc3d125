//! SQL completion for KalamDB, one implementation for the shell (`kalam`, natively) and the
//! admin console's SQL editor (as WebAssembly, see `wasm`): a text, a caret, the catalog and
//! the session's namespace in; what may replace the word at the caret out. No I/O.
//!
//! Completes SQL keywords and functions, and the namespaces, tables and columns of the
//! catalog and of the tables a statement makes itself: CTEs (`WITH open AS (SELECT ...)`) and
//! subqueries or `VALUES` in FROM (`(SELECT ...) s`), whose columns are the names their select
//! list gives, renamed by a column list (`AS s(a, b)`, also a table alias's: `app.todos t(a,
//! b)`). Names follow SQL's scopes: at the caret, the tables (and aliases) of the query it is
//! in and of the queries around it that it may read (a correlated subquery reads its outer
//! query's, a LATERAL one in FROM the tables before it), and the CTEs defined before it in
//! those (anywhere in them for `WITH RECURSIVE`); an alias hides its table's own name. Each
//! branch of a UNION, INTERSECT or EXCEPT is a query of its own. In ORDER BY, GROUP BY and
//! HAVING, the names the query's select list gives come first (in GROUP BY not those of
//! aggregates); after the last branch, only those of the first branch. In a quoted name, names
//! complete quoted; a quoted qualifier (`"t".`) qualifies as a bare one does.
//!
//! The rules are the cases of tests/completion-cases.json: a change to them starts there.

mod catalog;
pub mod lexer;
mod statement;
#[cfg(target_arch = "wasm32")]
pub mod wasm;
mod words;

pub use catalog::{Catalog, Column, Table};

use lexer::Kind as TokenKind;
use statement::{
    AFTER_BRANCHES, Source, Statement, derived_tables, qualified, statement_at, tokenize, unquoted, written,
};
use std::collections::HashSet;
use words::{BEFORE_NAMESPACE, BEFORE_TABLE, FUNCTIONS, KEYWORDS};

/// The namespace of unqualified names when the session has none: the server's
/// (server/src/sql/session.rs).
const DEFAULT_NAMESPACE: &str = "default";

/// What may replace the word at the caret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completions {
    /// The word being completed is `text[from..to]` (bytes); the caret is in it or at its end.
    /// In a quoted name, `to` is past its closing quote.
    pub from: usize,
    /// See `from`.
    pub to: usize,
    /// The entries, best first: the query's own names (its select list's, its CTEs' and
    /// subqueries'), the columns of the tables it reads, keywords, functions, tables,
    /// namespaces.
    pub items: Vec<Completion>,
}

/// One entry: the text that replaces the word, what it is, and what is shown beside it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Completion {
    /// What replaces `text[from..to]`.
    pub text: String,
    /// What it names.
    pub kind: CompletionKind,
    /// A column's table and type, a table's kind, `keyword`, ...
    pub detail: String,
}

/// What a completion names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CompletionKind {
    /// A column of a table or a name a select list gives.
    Column,
    /// A keyword, in the case the word is typed in.
    Keyword,
    /// A function's name.
    Function,
    /// A table, bare (the session namespace's, a CTE) or `ns.table`.
    Table,
    /// A namespace: `ns.` where a table follows, bare where a namespace does.
    Namespace,
}

/// The completions for the word at `caret` (a byte offset) in `text`, or `None` where nothing
/// is completed: inside a string or comment, in a number, right after a quoted name.
/// `session` is the session's namespace (the server's `default` if none): its tables also
/// complete unqualified. Unless `explicit` (the shell's Tab, the console's Ctrl+Space), an
/// empty word gets nothing and an entry equal to the word is left out (it would change
/// nothing). A table also matches by its own name (`tod` offers `app.todos`); the shell, which
/// extends the word, keeps those that start with it.
pub fn complete(
    catalog: &Catalog,
    text: &str,
    caret: usize,
    session: Option<&str>,
    explicit: bool,
) -> Option<Completions> {
    let mut caret = caret.min(text.len());
    while !text.is_char_boundary(caret) {
        caret -= 1;
    }
    let tokens: Vec<lexer::Token> = lexer::tokens(text).collect();
    let quoted = tokens.iter().find(|t| t.kind == TokenKind::QuotedName && t.start < caret && t.holds(caret));
    match quoted {
        Some(name) => in_quoted_name(catalog, text, caret, name, session, explicit),
        None => complete_word(catalog, text, &tokens, caret, session, explicit),
    }
}

/// Whether `c` may be part of a name, in any script, as the server reads names.
fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Where the name at `at` ends: the first character from `at` that is no name character.
fn name_end(text: &str, at: usize) -> usize {
    let rest = text.get(at..).unwrap_or_default();
    at + rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len())
}

/// The completions in the quoted name `name` (`"ti`), the caret after its opening quote: the
/// names the same place offers without it that go on with what is typed there (in any case),
/// quoted (`"title"`, `t."title"`, with `""` for a quote in a name); no keyword or function,
/// nor a dotted name (`app.todos`, `app.`). They replace the name to its closing quote or,
/// where it is not closed, to the end of the word at the caret.
fn in_quoted_name(
    catalog: &Catalog,
    text: &str,
    caret: usize,
    name: &lexer::Token,
    session: Option<&str>,
    explicit: bool,
) -> Option<Completions> {
    let end = if name.closed { name.end() } else { name_end(text, caret) };
    let typed = text.get(name.start + 1..caret).unwrap_or_default().replace("\"\"", "\"").to_lowercase();
    if typed.is_empty() && !explicit {
        return None;
    }
    // What the place offers, read with the quoted name taken out.
    let bare = format!("{}{}", &text[..name.start], &text[end..]);
    let bare_tokens: Vec<lexer::Token> = lexer::tokens(&bare).collect();
    let around = complete_word(catalog, &bare, &bare_tokens, name.start, session, true)?;
    let qualifier = &bare[around.from..name.start];
    let replaced = &text[around.from..end];
    let items = around
        .items
        .into_iter()
        .filter(|c| !matches!(c.kind, CompletionKind::Keyword | CompletionKind::Function))
        .filter_map(|c| {
            let name = unquoted(c.text.get(qualifier.len()..)?);
            let fits = !name.is_empty() && !name.contains('.') && name.to_lowercase().starts_with(&typed);
            let text = format!("{qualifier}\"{}\"", name.replace('"', "\"\""));
            (fits && (explicit || text != replaced)).then_some(Completion { text, ..c })
        })
        .collect();
    Some(Completions { from: around.from, to: end, items })
}

/// Where the word before `caret` starts: back over name characters and dots, and over a
/// quoted name before a dot (`"t".ti`, a quoted qualifier).
fn word_start(text: &str, tokens: &[lexer::Token], caret: usize) -> usize {
    let mut from = caret;
    while let Some(c) = text[..from].chars().next_back() {
        if is_name_char(c) || c == '.' {
            from -= c.len_utf8();
        } else if c == '"' && text[from..].starts_with('.') {
            let qualifier = tokens.iter().find(|t| t.kind == TokenKind::QuotedName && t.closed && t.end() == from);
            match qualifier {
                Some(q) => from = q.start,
                None => break,
            }
        } else {
            break;
        }
    }
    from
}

/// Builds the entries of one kind: `text` and `detail` for each.
fn entries(
    kind: CompletionKind,
    found: impl IntoIterator<Item = (String, String)>,
) -> impl Iterator<Item = Completion> {
    found.into_iter().map(move |(text, detail)| Completion { text, kind, detail })
}

/// The completions for the word at `caret` in `text`, outside quotes (see `complete`).
fn complete_word(
    catalog: &Catalog,
    text: &str,
    tokens: &[lexer::Token],
    caret: usize,
    session: Option<&str>,
    explicit: bool,
) -> Option<Completions> {
    let current = session.unwrap_or(DEFAULT_NAMESPACE);
    if tokens.iter().any(|t| t.holds(caret)) {
        return None;
    }
    // Right after a quoted name there is nothing to add to it: names complete unquoted.
    if tokens.iter().any(|t| t.kind == TokenKind::QuotedName && t.end() == caret) {
        return None;
    }
    let from = word_start(text, tokens, caret);
    let to = name_end(text, caret);
    let word = &text[from..caret];
    if word.starts_with(|c: char| c.is_ascii_digit()) || (word.is_empty() && !explicit) {
        return None;
    }

    // The statement around the caret, the tables it makes itself (CTEs, subqueries in FROM),
    // and the query the caret is in: it reads the tables in its FROM and in those of the
    // queries around it, not those of the queries inside it or beside it.
    let all = tokenize(text);
    let tokens = statement_at(&all, caret);
    let statement = Statement::new(catalog, current, tokens);
    let derived = derived_tables(&statement);
    let (statement, derived) = (&statement, &derived);
    let (at, level) = statement.caret(caret);
    // The word before the word at the caret, upper case; a meta-command's with its `\`.
    let before: Vec<&statement::Token> = tokens.iter().take_while(|t| t.start < from).collect();
    let word_before = |back: usize| -> String {
        let Some(i) = before.len().checked_sub(back + 1) else { return String::new() };
        let t = before[i];
        let backslash = i.checked_sub(1).map(|p| before[p]).is_some_and(|p| p.text == "\\" && p.start + 1 == t.start);
        format!("{}{}", if backslash { "\\" } else { "" }, t.text.to_uppercase())
    };
    let previous = word_before(0);
    let before_namespace =
        BEFORE_NAMESPACE.contains(&previous.as_str()) || (previous == "IN" && word_before(1) == "TABLES");
    // The ORDER BY, LIMIT and OFFSET after a query's last branch read no table: they name
    // only the columns the branches return, by the names the first branch gives them.
    let clause = statement.query_clause(at);
    let after_branches = statement.has_branches(level) && AFTER_BRANCHES.contains(&clause);
    // The names of the tables the caret's query and the queries around it read, innermost first.
    let scopes: Vec<Vec<(String, Option<Source>)>> =
        statement.readable(level).map(|(l, until)| statement.named(derived, l, until)).collect();

    let table = |t: &Table, text: String| Completion { text, kind: CompletionKind::Table, detail: t.kind.clone() };
    // The CTEs the caret may read, then the catalog's tables, the session namespace's also by
    // their bare name.
    let tables = move || {
        let ctes = derived.iter().filter(move |d| statement.cte_visible(d, at, level)).map(|d| Completion {
            text: written(&d.name),
            kind: CompletionKind::Table,
            detail: "cte".to_string(),
        });
        let catalog_tables = catalog.tables.iter().flat_map(move |t| {
            let bare = (t.namespace == current).then(|| table(t, written(&t.name)));
            bare.into_iter().chain([table(t, format!("{}.{}", written(&t.namespace), written(&t.name)))])
        });
        ctes.chain(catalog_tables)
    };
    let namespaces = move || {
        entries(
            CompletionKind::Namespace,
            catalog.namespaces.iter().map(|ns| (format!("{}.", written(ns)), "namespace".into())),
        )
    };
    let columns_of = |source: &Source, prefix: &str| {
        entries(
            CompletionKind::Column,
            source.columns().into_iter().map(|c| (format!("{prefix}{}", written(&c.name)), c.detail)),
        )
        .collect::<Vec<_>>()
    };

    let mut out: Vec<Completion> = Vec::new();
    if let Some(dot) = word.rfind('.') {
        if after_branches {
            return Some(Completions { from, to, items: Vec::new() });
        }
        // `ns.<table>` or `table.<column>` (`"t".<column>` too).
        let qualifier = unquoted(&word[..dot]);
        let in_namespace = catalog.tables.iter().filter(|t| t.namespace.eq_ignore_ascii_case(&qualifier));
        // As typed: `APP.to` goes on as `APP.todos`, `"app".to` as `"app".todos`.
        out.extend(in_namespace.map(|t| table(t, format!("{}{}", &word[..=dot], written(&t.name)))));
        // A name the statement gives (an alias, a CTE) comes before a catalog table's name.
        let sources = match qualified(&scopes, &qualifier) {
            Some(sources) => sources,
            None => catalog.resolve(&qualifier, current).into_iter().map(Source::catalog).collect(),
        };
        for source in &sources {
            out.extend(columns_of(source, &word[..=dot]));
        }
    } else if before_namespace {
        out.extend(entries(
            CompletionKind::Namespace,
            catalog.namespaces.iter().map(|ns| (written(ns), "namespace".into())),
        ));
    } else if BEFORE_TABLE.contains(&previous.as_str()) {
        out.extend(tables());
        out.extend(namespaces());
    } else {
        // In ORDER BY, GROUP BY and HAVING, the names the query's select list gives (`CASE ...
        // END AS x`) first, as DataFusion resolves them there, in expressions too; after a
        // query's last branch, only the names its first branch gives.
        let select_list_names = after_branches || matches!(clause, "ORDER" | "GROUP" | "HAVING");
        let outputs = if select_list_names { statement.outputs(derived, level) } else { Vec::new() };
        // Not in GROUP BY the name of an aggregate's value: nothing can be grouped by it.
        let given: Vec<String> =
            outputs.into_iter().filter(|o| !(o.aggregate && clause == "GROUP")).filter_map(|o| o.name).collect();
        out.extend(entries(CompletionKind::Column, given.iter().map(|name| (written(name), "select list".into()))));
        // Then the columns of the tables the query reads, the statement's own (CTEs,
        // subqueries) first.
        let mut read: Vec<Source> =
            if after_branches { Vec::new() } else { scopes.iter().flatten().filter_map(|(_, s)| *s).collect() };
        read.sort_by_key(|s| !s.is_derived());
        for source in &read {
            out.extend(columns_of(source, ""));
        }
        let lower = !word.is_empty() && word.chars().all(|c| !c.is_uppercase());
        let cased = |w: &&str| if lower { w.to_lowercase() } else { w.to_string() };
        out.extend(entries(CompletionKind::Keyword, KEYWORDS.iter().map(|k| (cased(k), "keyword".into()))));
        out.extend(entries(CompletionKind::Function, FUNCTIONS.iter().map(|f| (cased(f), "function".into()))));
        // Tables as qualifiers, but not one by a name its alias hides.
        out.extend(tables().filter(|t| qualified(&scopes, &t.text).is_none_or(|found| !found.is_empty())));
        out.extend(namespaces());
        // Before the statement names a table, the columns of every table.
        if read.is_empty() && given.is_empty() {
            for t in &catalog.tables {
                out.extend(columns_of(&Source::catalog(t), ""));
            }
        }
    }

    // Names are matched as the server reads them, quotes taken out.
    let needle = unquoted(word).to_lowercase();
    let mut seen = HashSet::new();
    let items = out
        .into_iter()
        .filter(|c| {
            let text = unquoted(&c.text).to_lowercase();
            // A table also matches by its own name: `tod` offers `app.todos`.
            let own_name = c.kind == CompletionKind::Table
                && text.split_once('.').is_some_and(|(_, name)| name.starts_with(&needle));
            let matches = text.starts_with(&needle) || own_name;
            if !matches || (!explicit && text == needle) {
                return false;
            }
            // Entries are one per name whatever its case, except quoted names, which differ
            // by case only where the quotes are needed to tell them apart.
            seen.insert(if c.text.contains('"') { c.text.clone() } else { text })
        })
        .collect();
    Some(Completions { from, to, items })
}
