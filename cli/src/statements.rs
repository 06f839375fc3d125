//! Splitting input into statements and meta-commands.
//!
//! `kalam` sends one statement per request, so it can print each result as it arrives, name
//! the statement that failed and stop there; it keeps `USE` itself (see `session`). A `;`
//! ends a statement only outside quotes (`'...'` with `''`, `"..."`) and comments (`--`,
//! `/* */`). A line whose first non-blank character starts a statement with `\` is a
//! meta-command. One that takes SQL (`\live`, `\as`) ends at the end of the line; the others
//! end there too, or at a `;` or at the next `\` (`\dt; \du` and `\dt \du` run both).

use kalamdb_complete::lexer::{self, Kind};

/// A statement or meta-command and the 1-based line of the input it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) text: String,
    pub(crate) line: usize,
}

/// What scanning `text` found: the finished pieces and whatever is left unterminated.
struct Scan {
    pieces: Vec<Piece>,
    /// Text after the last terminator that holds more than blanks and comments, or an
    /// unclosed comment.
    rest: Option<Piece>,
}

/// Meta-commands whose arguments hold SQL, which may contain `;` and `\`.
const SQL_META_COMMANDS: [&str; 2] = ["\\live", "\\as"];

fn scan(text: &str) -> Scan {
    let mut pieces = Vec::new();
    let mut lines = Lines { text, at: 0, line: 1 };
    // Where the statement being read starts (its first token that is no blank or comment: a
    // comment alone is no statement), and on which line.
    let mut statement: Option<(usize, usize)> = None;
    let mut open = false;
    let mut tokens = lexer::tokens(text);
    while let Some(t) = tokens.next() {
        open = !t.closed;
        match t.kind {
            Kind::Space | Kind::Comment => {}
            _ if t.is_punct(";") => {
                if let Some((start, line)) = statement.take() {
                    pieces.push(Piece { text: text[start..t.start].trim().to_string(), line });
                }
            }
            _ if t.is_punct("\\") && statement.is_none() => {
                let end = meta_command_end(text, t.start);
                let meta = text[t.start..end].trim_end().trim_end_matches(';').trim_end();
                pieces.push(Piece { text: meta.to_string(), line: lines.line_at(t.start) });
                tokens.skip_to(end);
            }
            _ if statement.is_none() => statement = Some((t.start, lines.line_at(t.start))),
            _ => {}
        }
    }
    let rest = match statement {
        Some((start, line)) => Some(Piece { text: text[start..].trim().to_string(), line }),
        None => open.then(|| Piece { text: String::new(), line: lines.line_at(text.len()) }),
    };
    Scan { pieces, rest }
}

/// Where the meta-command whose `\` is at `start` ends: at the end of its line, or for one
/// that takes no SQL at a `;` or at a `\` after a blank (where the next one starts).
fn meta_command_end(text: &str, start: usize) -> usize {
    for (i, c) in text[start..].char_indices().skip(1) {
        let meta = &text[start..start + i];
        let takes_sql = meta.split_whitespace().next().is_some_and(|name| SQL_META_COMMANDS.contains(&name));
        let ends_here = c == ';' || (c == '\\' && meta.ends_with(char::is_whitespace));
        if c == '\n' || (!takes_sql && meta.len() > 1 && ends_here) {
            return start + i;
        }
    }
    text.len()
}

/// The 1-based line of byte offsets in a text, counted on from the last one asked for
/// (offsets asked for only grow).
struct Lines<'a> {
    text: &'a str,
    at: usize,
    line: usize,
}

impl Lines<'_> {
    fn line_at(&mut self, at: usize) -> usize {
        let passed = self.text.as_bytes().get(self.at..at).unwrap_or_default();
        self.line += passed.iter().filter(|&&b| b == b'\n').count();
        self.at = self.at.max(at);
        self.line
    }
}

/// The statements and meta-commands of a script. A last statement without `;` counts too
/// (as psql does at the end of a file).
pub(crate) fn split(text: &str) -> Vec<Piece> {
    let mut scan = scan(text);
    scan.pieces.extend(scan.rest.filter(|p| !p.text.is_empty()));
    scan.pieces
}

/// Whether the shell may run what was typed so far: nothing is left open (every statement
/// ended with `;`, no quote or comment open). A meta-command is complete at the end of its
/// line. Until then Enter continues the statement on a new line.
pub(crate) fn is_complete(text: &str) -> bool {
    scan(text).rest.is_none()
}

/// Statements the history file must not keep: they carry a password or a storage secret.
pub(crate) fn holds_secret(text: &str) -> bool {
    let upper = text.to_ascii_uppercase();
    upper.contains("PASSWORD") || upper.contains("SECRET_ACCESS_KEY")
}

/// The words of a statement in upper case, up to `n` of them (for recognising its kind).
pub(crate) fn leading_words(sql: &str, n: usize) -> Vec<String> {
    sql.split(|c: char| c.is_whitespace() || c == '(')
        .filter(|w| !w.is_empty())
        .take(n)
        .map(str::to_uppercase)
        .collect()
}

/// The namespace a `USE [NAMESPACE] name` statement switches to, as the server names it
/// (unquoted names are lower case; a quoted name is taken as written).
pub(crate) fn use_target(sql: &str) -> Option<String> {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let name = match words.as_slice() {
        [u, name] if u.eq_ignore_ascii_case("use") => name,
        [u, ns, name] if u.eq_ignore_ascii_case("use") && ns.eq_ignore_ascii_case("namespace") => name,
        _ => return None,
    };
    Some(match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        Some(quoted) => quoted.to_string(),
        None => name.to_lowercase(),
    })
}

/// `s` as an SQL string literal.
pub(crate) fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(input: &str) -> Vec<String> {
        split(input).into_iter().map(|p| p.text).collect()
    }

    #[test]
    fn semicolons_split_only_outside_quotes_and_comments() {
        assert_eq!(texts("SELECT 1; SELECT 2;"), ["SELECT 1", "SELECT 2"]);
        assert_eq!(texts("SELECT 'a;b', \"c;d\" FROM t; SELECT 2"), ["SELECT 'a;b', \"c;d\" FROM t", "SELECT 2"]);
        assert_eq!(texts("SELECT 'it''s; here';"), ["SELECT 'it''s; here'"]);
        assert_eq!(
            texts("SELECT 1 -- a; comment\n; SELECT /* ; */ 2;"),
            ["SELECT 1 -- a; comment", "SELECT /* ; */ 2"]
        );
        assert_eq!(texts(";;  ;\n-- only a comment\n"), Vec::<String>::new());
        assert_eq!(
            texts("EXECUTE AS USER 'a' (INSERT INTO t VALUES (1));"),
            ["EXECUTE AS USER 'a' (INSERT INTO t VALUES (1))"]
        );
    }

    #[test]
    fn pieces_know_their_line_and_meta_commands_end_at_the_line() {
        let pieces = split("-- setup\nCREATE NAMESPACE a;\n\\dt a;\nSELECT\n  1;\n\\d a.t\nSELECT 2");
        let got: Vec<(&str, usize)> = pieces.iter().map(|p| (p.text.as_str(), p.line)).collect();
        assert_eq!(
            got,
            [("CREATE NAMESPACE a", 2), ("\\dt a", 3), ("SELECT\n  1", 4), ("\\d a.t", 6), ("SELECT 2", 7)]
        );
        // A backslash inside a statement is no meta-command.
        assert_eq!(texts("SELECT '\\dt';"), ["SELECT '\\dt'"]);
        assert_eq!(texts("\\live SELECT * FROM a.t;"), ["\\live SELECT * FROM a.t"]);
        // Several meta-commands on one line, after `;` or before the next `\`.
        assert_eq!(texts("\\dt; \\du"), ["\\dt", "\\du"]);
        assert_eq!(texts("\\dt app \\du\n\\timing on;SELECT 1;"), ["\\dt app", "\\du", "\\timing on", "SELECT 1"]);
        // ... but SQL after `\live` or `\as` keeps its `;` and backslashes.
        assert_eq!(texts("\\as alice SELECT 'a;b\\c' FROM t; \\du"), ["\\as alice SELECT 'a;b\\c' FROM t; \\du"]);
    }

    #[test]
    fn a_meta_commands_arguments_are_no_sql_and_lines_count_past_comments() {
        // A quote in a meta-command's arguments opens no string.
        assert_eq!(texts("\\dt it's\nSELECT 1;"), ["\\dt it's", "SELECT 1"]);
        assert!(is_complete("\\dt it's"));
        let pieces = split("/* a\n; b */ SELECT 'x\ny';\n-- c\n\\du\n\"q;\"\n;");
        let got: Vec<(&str, usize)> = pieces.iter().map(|p| (p.text.as_str(), p.line)).collect();
        assert_eq!(got, [("SELECT 'x\ny'", 2), ("\\du", 5), ("\"q;\"", 6)]);
        assert!(!is_complete("SELECT 1; /* open"));
        assert_eq!(texts("SELECT 1; /* open"), ["SELECT 1"]);
    }

    #[test]
    fn input_is_complete_once_nothing_is_left_open() {
        assert!(is_complete(""));
        assert!(is_complete("   "));
        assert!(is_complete("SELECT 1;"));
        assert!(is_complete("SELECT 1;  -- done"));
        assert!(is_complete("\\dt"));
        assert!(is_complete("\\live SELECT * FROM a.t"));
        assert!(!is_complete("SELECT 1"));
        assert!(!is_complete("SELECT 1;\nSELECT"));
        assert!(!is_complete("SELECT 'a;"));
        assert!(!is_complete("SELECT /* ; "));
        assert!(!is_complete("SELECT \"x;"));
    }

    #[test]
    fn statement_helpers() {
        assert!(holds_secret("create user 'a' with password 'x'"));
        assert!(holds_secret("CREATE STORAGE s TYPE 's3' BUCKET 'b' ACCESS_KEY_ID 'k' SECRET_ACCESS_KEY 'v'"));
        assert!(!holds_secret("SELECT * FROM app.todos"));
        assert_eq!(leading_words("flush  table app.t", 2), ["FLUSH", "TABLE"]);
        assert_eq!(use_target("USE App"), Some("app".into()));
        assert_eq!(use_target("use namespace x"), Some("x".into()));
        assert_eq!(use_target("USE \"app\""), Some("app".into()));
        assert_eq!(use_target("USE NAMESPACE"), Some("namespace".into()));
        assert_eq!(use_target("SELECT 1"), None);
        assert_eq!(quote_literal("o'brien"), "'o''brien'");
    }
}
