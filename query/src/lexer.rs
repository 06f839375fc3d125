//! SQL text → tokens, each with its byte position.

use crate::error::{QueryError, Result};

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// An unquoted identifier or keyword, lower-cased (identifiers are case-insensitive).
    Word(String),
    /// A `"quoted"` identifier, case kept.
    Quoted(String),
    /// A `'string'` literal.
    Str(String),
    /// A number without `.` or exponent.
    Int(String),
    /// A number with a `.` or an exponent.
    Float(String),
    /// `$n` (`Some(n)`) or `?` (`None`).
    Param(Option<usize>),
    /// Punctuation and operators.
    Sym(&'static str),
    /// End of input.
    Eof,
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

const SYMBOLS: [&str; 20] =
    ["<>", "!=", "<=", ">=", "||", "::", "(", ")", ",", ".", "*", "+", "-", "/", "%", "=", "<", ">", ";", "["];

/// Split SQL into tokens. Comments (`-- ...` and `/* ... */`) and whitespace are skipped.
pub(crate) fn tokenize(sql: &str) -> Result<Vec<Token>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
        } else if sql[i..].starts_with("--") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if sql[i..].starts_with("/*") {
            match sql[i + 2..].find("*/") {
                Some(end) => i += end + 4,
                None => return Err(QueryError::syntax(i, "unterminated /* comment")),
            }
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80) {
                i += 1;
            }
            out.push(Token { tok: Tok::Word(sql[start..i].to_lowercase()), pos: start });
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let mut float = false;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i < b.len() && b[i] == b'.' {
                float = true;
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                let mut j = i + 1;
                if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    float = true;
                    i = j;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            if i < b.len() && (b[i].is_ascii_alphabetic() || b[i] == b'_') {
                return Err(QueryError::syntax(start, format!("malformed number '{}'", &sql[start..=i])));
            }
            let text = sql[start..i].to_string();
            out.push(Token { tok: if float { Tok::Float(text) } else { Tok::Int(text) }, pos: start });
        } else if c == b'\'' || c == b'"' {
            let mut s = String::new();
            i += 1;
            loop {
                let Some(rel) = sql[i..].find(c as char) else {
                    let what = if c == b'\'' { "string literal" } else { "quoted identifier" };
                    return Err(QueryError::syntax(start, format!("unterminated {what}")));
                };
                s.push_str(&sql[i..i + rel]);
                i += rel + 1;
                if b.get(i) == Some(&c) {
                    s.push(c as char);
                    i += 1;
                } else {
                    break;
                }
            }
            out.push(Token { tok: if c == b'\'' { Tok::Str(s) } else { Tok::Quoted(s) }, pos: start });
        } else if c == b'$' {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let n: usize = sql[start + 1..i]
                .parse()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| QueryError::syntax(start, "a parameter is $1, $2, ... (1-based)"))?;
            out.push(Token { tok: Tok::Param(Some(n)), pos: start });
        } else if c == b'?' {
            i += 1;
            out.push(Token { tok: Tok::Param(None), pos: start });
        } else if let Some(sym) = SYMBOLS.iter().find(|s| sql[i..].starts_with(**s)) {
            i += sym.len();
            out.push(Token { tok: Tok::Sym(sym), pos: start });
        } else {
            let ch = sql[i..].chars().next().unwrap_or('?');
            return Err(QueryError::syntax(start, format!("unexpected character '{ch}'")));
        }
    }
    out.push(Token { tok: Tok::Eof, pos: sql.len() });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(sql: &str) -> Vec<Tok> {
        tokenize(sql).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn words_numbers_strings_params() {
        assert_eq!(
            toks("SELECT a.\"B\", 'it''s', 1.50, 7, 1e3, $2, ? -- c\n<> !="),
            vec![
                Tok::Word("select".into()),
                Tok::Word("a".into()),
                Tok::Sym("."),
                Tok::Quoted("B".into()),
                Tok::Sym(","),
                Tok::Str("it's".into()),
                Tok::Sym(","),
                Tok::Float("1.50".into()),
                Tok::Sym(","),
                Tok::Int("7".into()),
                Tok::Sym(","),
                Tok::Float("1e3".into()),
                Tok::Sym(","),
                Tok::Param(Some(2)),
                Tok::Sym(","),
                Tok::Param(None),
                Tok::Sym("<>"),
                Tok::Sym("!="),
                Tok::Eof,
            ]
        );
    }

    #[test]
    fn positions_and_errors() {
        let t = tokenize("a  'x").unwrap_err();
        assert_eq!(t, QueryError::syntax(3, "unterminated string literal"));
        assert!(matches!(tokenize("a # b"), Err(QueryError::Syntax { pos: 2, .. })));
        assert!(matches!(tokenize("$0"), Err(QueryError::Syntax { pos: 0, .. })));
        assert_eq!(tokenize("  b").unwrap()[0].pos, 2);
    }
}
