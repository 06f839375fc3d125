//! How a statement reads: its tokens as completion sees them, the queries in it and how they
//! nest, the tables each query names (with their aliases and column lists), and the tables
//! the statement makes itself (CTEs, subqueries and `VALUES` in FROM) with their columns.
//! Nesting is followed in loops, not by recursion: a pasted line may hold 200,000 `(`.

use crate::catalog::{Catalog, Table};
use crate::lexer;
use crate::words::{AGGREGATES, BEFORE_TABLE, KEYWORDS, LITERALS};

/// The tables `qualifier` names, given the names of the queries the caret may read (innermost
/// first): those of the innermost query that names it; none where an alias hides the name
/// (`todos` after `FROM app.todos t`), and `None` where no query there names it.
pub(crate) fn qualified<'s>(scopes: &[Vec<(String, Option<Source<'s>>)>], qualifier: &str) -> Option<Vec<Source<'s>>> {
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
pub(crate) struct Token<'a> {
    pub(crate) text: &'a str,
    /// Where it starts in the line, in bytes.
    pub(crate) start: usize,
    pub(crate) kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    /// A name, dotted or quoted, a keyword or a number.
    Word,
    /// A string literal (`'it''s'`).
    Literal,
    /// Any other character: `(`, `)`, `,`, `*`, `;`, ...
    Punct,
}

impl Token<'_> {
    pub(crate) fn is(&self, word: &str) -> bool {
        self.text.eq_ignore_ascii_case(word)
    }

    /// Whether the token can be a name the statement gives: an alias or a CTE's name.
    fn is_name(&self) -> bool {
        self.kind == Kind::Word
            && !self.text.contains('.')
            && !self.text.starts_with(|c: char| c.is_ascii_digit())
            && !KEYWORDS.iter().any(|k| self.is(k))
    }

    /// The name as the server reads it: without its quotes (`""` in them is a `"`).
    pub(crate) fn name(&self) -> String {
        unquoted(self.text)
    }
}

/// The tokens of `line` as completion reads them.
pub(crate) fn tokenize(line: &str) -> Vec<Token<'_>> {
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
pub(crate) fn statement_at<'t, 'a>(tokens: &'t [Token<'a>], pos: usize) -> &'t [Token<'a>] {
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
pub(crate) const AFTER_BRANCHES: &[&str] = &["ORDER", "LIMIT", "OFFSET"];

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
pub(crate) struct Statement<'a> {
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
    pub(crate) fn new(catalog: &'a Catalog, current: &'a str, tokens: &'a [Token<'a>]) -> Statement<'a> {
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
    pub(crate) fn query_clause(&self, mut at: usize) -> &'static str {
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
    pub(crate) fn caret(&self, pos: usize) -> (usize, usize) {
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
    pub(crate) fn readable(&self, level: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
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
    pub(crate) fn has_branches(&self, level: usize) -> bool {
        self.levels.get(level).is_some_and(|l| l.first_branch.is_some())
    }

    /// The columns the query `level` returns, in order (see `output_names`; its `*` stands for
    /// the tables in its own FROM): for a query with branches, those of the first branch, as in
    /// PostgreSQL; for `VALUES`, the names the server gives.
    pub(crate) fn outputs(&self, derived: &[Derived], level: usize) -> Vec<Output> {
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
        output_names(query, &self.named(derived, first, usize::MAX))
    }

    /// Whether `d` is a CTE that the token at `at`, in the query `level`, may read: it comes
    /// after the CTE (in the main query or a later CTE), or anywhere for `WITH RECURSIVE`, in
    /// a query the CTE's WITH is in.
    pub(crate) fn cte_visible(&self, d: &Derived, at: usize, level: usize) -> bool {
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
    pub(crate) fn named<'s>(
        &'s self,
        derived: &'s [Derived],
        level: usize,
        until: usize,
    ) -> Vec<(String, Option<Source<'s>>)> {
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
            if let TableRef::Catalog(table) = source.table {
                out.push((table.name.clone(), by_its_names));
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
pub(crate) struct Derived {
    pub(crate) name: String,
    pub(crate) cte: bool,
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
pub(crate) fn derived_tables(statement: &Statement) -> Vec<Derived> {
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
        let outputs = statement.outputs(&done, body).into_iter().map(|o| (o.name, ())).collect();
        let columns = renamed(outputs, listed, ()).into_iter().map(|(name, ())| name).collect();
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
/// Each column comes with `T` (what is shown beside it), which a listed name keeps; a listed
/// name beyond the columns gets `extra`.
fn renamed<T: Clone>(columns: Vec<(Option<String>, T)>, list: Vec<String>, extra: T) -> Vec<(String, T)> {
    let listed = list.len();
    let with: Vec<(String, T)> = list
        .into_iter()
        .enumerate()
        .map(|(i, name)| (name, columns.get(i).map_or_else(|| extra.clone(), |(_, t)| t.clone())))
        .collect();
    let rest = columns.into_iter().skip(listed).filter_map(|(name, t)| Some((name?, t)));
    with.into_iter().chain(rest).collect()
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
pub(crate) struct Source<'a> {
    table: TableRef<'a>,
    renames: &'a [Token<'a>],
}

/// A table of the catalog's, or one a statement makes itself.
#[derive(Debug, Clone, Copy)]
enum TableRef<'a> {
    Catalog(&'a Table),
    Derived(&'a Derived),
}

/// A column of a table a statement reads: its name, and what the console shows beside it
/// (a catalog column's table and type, a CTE's or subquery's name).
pub(crate) struct SourceColumn {
    pub(crate) name: String,
    pub(crate) detail: String,
}

impl<'a> Source<'a> {
    pub(crate) fn catalog(table: &'a Table) -> Source<'a> {
        Source { table: TableRef::Catalog(table), renames: &[] }
    }

    fn derived(table: &'a Derived) -> Source<'a> {
        Source { table: TableRef::Derived(table), renames: &[] }
    }

    /// Whether it is a table the statement makes itself (its columns rank first).
    pub(crate) fn is_derived(&self) -> bool {
        matches!(self.table, TableRef::Derived(_))
    }

    /// Its columns, renamed by its column list.
    pub(crate) fn columns(&self) -> Vec<SourceColumn> {
        let columns: Vec<(Option<String>, String)> = match self.table {
            TableRef::Catalog(t) => {
                let detail = |c: &crate::catalog::Column| format!("{}.{} {}", t.namespace, t.name, c.data_type);
                t.columns.iter().map(|c| (Some(c.name.clone()), detail(c).trim_end().to_string())).collect()
            }
            TableRef::Derived(d) => d.columns.iter().map(|c| (Some(c.clone()), d.name.clone())).collect(),
        };
        let extra = match self.table {
            TableRef::Catalog(t) => format!("{}.{}", t.namespace, t.name),
            TableRef::Derived(d) => d.name.clone(),
        };
        renamed(columns, names_in(self.renames), extra)
            .into_iter()
            .map(|(name, detail)| SourceColumn { name, detail })
            .collect()
    }

    /// Its columns' names, renamed by its column list.
    fn column_names(&self) -> Vec<String> {
        self.columns().into_iter().map(|c| c.name).collect()
    }
}

/// A column a query returns: its name (none for an expression without an alias), and whether
/// its value is an aggregate's or a window function's, which GROUP BY cannot name.
pub(crate) struct Output {
    pub(crate) name: Option<String>,
    pub(crate) aggregate: bool,
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
fn output_names(query: &[Token], named: &[(String, Option<Source>)]) -> Vec<Output> {
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
                        outputs.extend(source.column_names().into_iter().map(Output::column));
                    }
                }
                continue;
            }
            [table, star] if star.text == "*" => {
                let table = table.text.trim_end_matches('.').replace('"', "");
                if let Some((_, Some(source))) =
                    named.iter().find(|(n, s)| s.is_some() && n.eq_ignore_ascii_case(&table))
                {
                    outputs.extend(source.column_names().into_iter().map(Output::column));
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

/// Whether two sources are the same table.
fn same(a: &Source, b: &Source) -> bool {
    match (a.table, b.table) {
        (TableRef::Catalog(a), TableRef::Catalog(b)) => std::ptr::eq(a, b),
        (TableRef::Derived(a), TableRef::Derived(b)) => std::ptr::eq(a, b),
        _ => false,
    }
}

/// `name` as SQL text the server reads back as `name`: as it is where it would be read so
/// unquoted (lower-case letters, digits and `_`, not starting with a digit), else quoted,
/// with a `"` in it doubled (`Name` is `"Name"`: unquoted, it would be read as `name`).
pub(crate) fn written(name: &str) -> String {
    let lower = |c: char| c == '_' || (c.is_alphabetic() && !c.is_uppercase());
    let plain = name.chars().next().is_some_and(lower) && name.chars().all(|c| lower(c) || c.is_ascii_digit());
    match plain {
        true => name.to_string(),
        false => format!("\"{}\"", name.replace('"', "\"\"")),
    }
}

/// `text` as the server reads a name: quotes taken out, `""` in them a `"` (`app."My ""t"""`
/// is `app.My "t"`).
pub(crate) fn unquoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if c != '"' {
            out.push(c);
        } else if quoted && chars.peek() == Some(&'"') {
            out.push('"');
            chars.next();
        } else {
            quoted = !quoted;
        }
    }
    out
}
