//! SQL as completion and the shell read it: tokens with their place in the text. The shell's
//! splitting of input into statements and completion both read SQL through it, so that they
//! agree on where strings and comments are (a `;` in one ends nothing).
//!
//! Input is read while it is being typed: a string, quoted name or block comment that is not
//! closed yet runs to the end of the text, and its token says so.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A keyword or bare name: a letter or `_`, then letters, digits and `_` (any script).
    Word,
    /// `"a name"`, with `""` for a quote in it.
    QuotedName,
    /// `'text'`, with `''` for a quote in it.
    String,
    /// `12`, `1.5`, `2e-3`.
    Number,
    /// `-- ...` to the end of the line, or `/* ... */` (not nested).
    Comment,
    /// Blanks and line ends.
    Space,
    /// Any other character, alone: `;`, `(`, `.`, `*`, `\`, ...
    Punct,
}

/// A piece of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    /// What it is.
    pub kind: Kind,
    /// Its text, quotes and comment marks included.
    pub text: &'a str,
    /// Where it starts in the text, in bytes.
    pub start: usize,
    /// False for a string, quoted name or block comment whose end is not typed yet.
    pub closed: bool,
}

impl Token<'_> {
    /// Where it ends in the text, in bytes (exclusive).
    pub fn end(&self) -> usize {
        self.start + self.text.len()
    }

    /// Whether it is the punctuation `p` (`;` in a string is no `;`).
    pub fn is_punct(&self, p: &str) -> bool {
        self.kind == Kind::Punct && self.text == p
    }

    /// Whether typing at byte `at` adds to this token's text rather than to the SQL around
    /// it: `at` is inside a string, quoted name or comment, or at the end of one not closed
    /// (a line comment runs to its line's end, typed or not).
    pub fn holds(&self, at: usize) -> bool {
        let quoted = matches!(self.kind, Kind::String | Kind::QuotedName);
        if !(quoted || self.kind == Kind::Comment) || at <= self.start || at > self.end() {
            return false;
        }
        at < self.end() || !self.closed || self.text.starts_with("--")
    }
}

/// The tokens of a text, in order; together they cover it exactly.
pub struct Tokens<'a> {
    text: &'a str,
    at: usize,
}

/// The tokens of `text`, read as they are asked for.
pub fn tokens(text: &str) -> Tokens<'_> {
    Tokens { text, at: 0 }
}

impl Tokens<'_> {
    /// Goes on at byte `at` (a character boundary), for text that is no SQL: a
    /// meta-command's arguments.
    pub fn skip_to(&mut self, at: usize) {
        self.at = self.at.max(at);
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let rest = self.text.get(self.at..)?;
        let c = rest.chars().next()?;
        let (kind, len, closed) = if c.is_whitespace() {
            (Kind::Space, rest.find(|c: char| !c.is_whitespace()).unwrap_or(rest.len()), true)
        } else if rest.starts_with("--") {
            (Kind::Comment, rest.find('\n').unwrap_or(rest.len()), true)
        } else if let Some(comment) = rest.strip_prefix("/*") {
            // The end is looked for after `/*`, so `/*/` does not end the comment.
            match comment.find("*/") {
                Some(i) => (Kind::Comment, i + 4, true),
                None => (Kind::Comment, rest.len(), false),
            }
        } else if c == '\'' {
            let (len, closed) = quoted_len(rest, b'\'');
            (Kind::String, len, closed)
        } else if c == '"' {
            let (len, closed) = quoted_len(rest, b'"');
            (Kind::QuotedName, len, closed)
        } else if c.is_ascii_digit() {
            (Kind::Number, number_len(rest), true)
        } else if c.is_alphabetic() || c == '_' {
            (Kind::Word, rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len()), true)
        } else {
            (Kind::Punct, c.len_utf8(), true)
        };
        let token = Token { kind, text: &rest[..len], start: self.at, closed };
        self.at += len;
        Some(token)
    }
}

/// The length of the quoted text `rest` starts with (`quote` doubled is a quote in it), and
/// whether it is closed.
fn quoted_len(rest: &str, quote: u8) -> (usize, bool) {
    let bytes = rest.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) != Some(&quote) {
                return (i + 1, true);
            }
            i += 1;
        }
        i += 1;
    }
    (rest.len(), false)
}

/// The length of the number `rest` starts with: digits, a fraction, an exponent.
fn number_len(rest: &str) -> usize {
    let bytes = rest.as_bytes();
    let digits = |from: usize| bytes.get(from..).map_or(0, |b| b.iter().take_while(|b| b.is_ascii_digit()).count());
    let mut len = digits(0);
    if bytes.get(len) == Some(&b'.') {
        len += 1 + digits(len + 1);
    }
    if matches!(bytes.get(len), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(bytes.get(len + 1), Some(b'+' | b'-')));
        let exponent = digits(len + 1 + sign);
        if exponent > 0 {
            len += 1 + sign + exponent;
        }
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(text: &str) -> Vec<(Kind, &str, bool)> {
        tokens(text).map(|t| (t.kind, t.text, t.closed)).collect()
    }

    #[test]
    fn tokens_cover_the_text_and_know_their_place() {
        let text = "SELECT t.\"Ti\"\"tle\", 'it''s' -- a; b\n/* c; */ FROM é_1 WHERE x >= 1.5e-3;";
        let all: Vec<Token> = tokens(text).collect();
        assert_eq!(all.iter().map(|t| t.text).collect::<String>(), text);
        assert!(all.iter().all(|t| &text[t.start..t.end()] == t.text));
        let significant: Vec<(Kind, &str)> =
            all.iter().filter(|t| t.kind != Kind::Space).map(|t| (t.kind, t.text)).collect();
        assert_eq!(
            significant,
            [
                (Kind::Word, "SELECT"),
                (Kind::Word, "t"),
                (Kind::Punct, "."),
                (Kind::QuotedName, "\"Ti\"\"tle\""),
                (Kind::Punct, ","),
                (Kind::String, "'it''s'"),
                (Kind::Comment, "-- a; b"),
                (Kind::Comment, "/* c; */"),
                (Kind::Word, "FROM"),
                (Kind::Word, "é_1"),
                (Kind::Word, "WHERE"),
                (Kind::Word, "x"),
                (Kind::Punct, ">"),
                (Kind::Punct, "="),
                (Kind::Number, "1.5e-3"),
                (Kind::Punct, ";"),
            ]
        );
        assert!(all.iter().all(|t| t.closed));
        assert!(all.last().is_some_and(|t| t.is_punct(";")));
    }

    #[test]
    fn what_is_not_closed_runs_to_the_end() {
        assert_eq!(lex("'a;\nb"), [(Kind::String, "'a;\nb", false)]);
        assert_eq!(lex("'it''"), [(Kind::String, "'it''", false)]);
        assert_eq!(lex("\"a\"\""), [(Kind::QuotedName, "\"a\"\"", false)]);
        assert_eq!(lex("/*/ x"), [(Kind::Comment, "/*/ x", false)]);
        assert_eq!(lex("/**/x"), [(Kind::Comment, "/**/", true), (Kind::Word, "x", true)]);
        // A line comment ends at its line, typed or not.
        assert_eq!(lex("-- x"), [(Kind::Comment, "-- x", true)]);
        assert_eq!(lex("1e+"), [(Kind::Number, "1", true), (Kind::Word, "e", true), (Kind::Punct, "+", true)]);
        assert_eq!(lex("'"), [(Kind::String, "'", false)]);
    }

    #[test]
    fn lexing_goes_on_where_it_is_told() {
        let text = "\\echo it's\nSELECT 1";
        let mut all = tokens(text);
        assert_eq!(all.next().map(|t| t.text), Some("\\"));
        all.skip_to(text.find('\n').unwrap_or(0));
        let rest: Vec<&str> = all.map(|t| t.text).collect();
        assert_eq!(rest, ["\n", "SELECT", " ", "1"]);
    }
}
