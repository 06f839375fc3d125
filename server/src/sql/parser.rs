//! Hand-written parser for the statements KalamDB handles itself (see `ast`).
//!
//! Anything that starts like ordinary SQL (SELECT, WITH, INSERT, UPDATE, DELETE,
//! EXPLAIN, VALUES, `(`) is returned untouched as `Statement::Sql` for sqlparser and
//! DataFusion, so this module only needs a small tokenizer and a flat recursive-descent
//! parser. None of the productions nest, so parsing depth cannot grow with the input.
//!
//! Naming rules: identifiers (bare or `"quoted"`) are lower-cased; user names,
//! passwords, emails and job / live-query ids keep their case because they are values,
//! not SQL names.

use super::ast::*;
use std::fmt;

/// A syntax error with a message meant for the end user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
}

impl ParseError {
    fn new(message: impl Into<String>) -> Self {
        ParseError { message: message.into() }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

type PResult<T> = Result<T, ParseError>;

fn err<T>(message: impl Into<String>) -> PResult<T> {
    Err(ParseError::new(message))
}

const UNTERMINATED_STRING: &str = "unterminated string literal (missing closing ')";
const UNTERMINATED_IDENT: &str = "unterminated quoted identifier (missing closing \")";
const UNTERMINATED_COMMENT: &str = "unterminated block comment (missing closing */)";

/// Splits a script into statements on `;` outside quotes and comments.
///
/// Each piece is trimmed. Comments are kept verbatim inside the pieces (the tokenizer
/// skips them); pieces made only of whitespace and comments are dropped. The splitter
/// is not parenthesis-aware, and block comments do not nest.
pub fn split_statements(sql: &str) -> Result<Vec<String>, ParseError> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Normal,
        Single,
        Double,
        Line,
        Block,
    }

    let bytes = sql.as_bytes();
    let mut pieces = Vec::new();
    let mut state = State::Normal;
    let mut start = 0;
    let mut has_content = false;
    let push = |pieces: &mut Vec<String>, text: &str, has_content: bool| {
        let text = text.trim();
        if has_content && !text.is_empty() {
            pieces.push(text.to_string());
        }
    };

    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        match state {
            State::Normal => match b {
                b'\'' => {
                    state = State::Single;
                    has_content = true;
                }
                b'"' => {
                    state = State::Double;
                    has_content = true;
                }
                b'-' if next == Some(b'-') => {
                    state = State::Line;
                    i += 1;
                }
                b'/' if next == Some(b'*') => {
                    state = State::Block;
                    i += 1;
                }
                b';' => {
                    push(&mut pieces, &sql[start..i], has_content);
                    start = i + 1;
                    has_content = false;
                }
                _ if !b.is_ascii_whitespace() => has_content = true,
                _ => {}
            },
            // A doubled quote closes and immediately reopens, which is exactly the escape.
            State::Single if b == b'\'' => state = State::Normal,
            State::Double if b == b'"' => state = State::Normal,
            State::Line if b == b'\n' => state = State::Normal,
            State::Block if b == b'*' && next == Some(b'/') => {
                state = State::Normal;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }

    match state {
        State::Single => err(UNTERMINATED_STRING),
        State::Double => err(UNTERMINATED_IDENT),
        State::Block => err(UNTERMINATED_COMMENT),
        State::Normal | State::Line => {
            push(&mut pieces, &sql[start..], has_content);
            Ok(pieces)
        }
    }
}

/// Leading keywords of statements that are handed to sqlparser/DataFusion unchanged.
const PASSTHROUGH: &[&str] = &["select", "with", "insert", "update", "delete", "explain", "values"];

/// Parses one statement; a single trailing `;` is tolerated.
pub fn parse_statement(sql: &str) -> Result<Statement, ParseError> {
    let text = sql.trim();
    let mut lexer = Lexer { src: text, pos: 0 };
    // Only the first token is needed to recognise pass-through SQL, whose remaining
    // syntax (operators, dollar quoting, ...) this tokenizer does not have to understand.
    let first = lexer.next_token()?;
    match &first.tok {
        Tok::Eof | Tok::Punct(';') => return err("empty statement"),
        Tok::Punct('(') => return Ok(Statement::Sql(strip_semicolon(text))),
        Tok::Ident { lower, quoted: false, .. } if PASSTHROUGH.contains(&lower.as_str()) => {
            return Ok(Statement::Sql(strip_semicolon(text)));
        }
        _ => {}
    }

    let mut tokens = vec![first];
    let eof = loop {
        let token = lexer.next_token()?;
        if token.tok == Tok::Eof {
            break token;
        }
        tokens.push(token);
    };
    Parser { src: text, tokens, pos: 0, eof }.statement()
}

fn strip_semicolon(text: &str) -> String {
    text.strip_suffix(';').map(str::trim_end).unwrap_or(text).to_string()
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// `lower` is used for keyword matching and names; `raw` is the text as written
    /// (without the quotes of a quoted identifier) for case-preserving values.
    Ident {
        lower: String,
        raw: String,
        quoted: bool,
    },
    Str(String),
    Number(String),
    Punct(char),
    /// Any other character; only meaningful inside `EXECUTE AS USER (...)`.
    Other(char),
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// Byte range in the source, used for error excerpts and `EXECUTE AS` bodies.
    start: usize,
    end: usize,
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl Lexer<'_> {
    fn byte(&self, at: usize) -> Option<u8> {
        self.src.as_bytes().get(at).copied()
    }

    fn skip_trivia(&mut self) -> PResult<()> {
        loop {
            match (self.byte(self.pos), self.byte(self.pos + 1)) {
                (Some(b), _) if b.is_ascii_whitespace() => self.pos += 1,
                (Some(b'-'), Some(b'-')) => {
                    self.pos = match self.src[self.pos..].find('\n') {
                        Some(off) => self.pos + off + 1,
                        None => self.src.len(),
                    };
                }
                (Some(b'/'), Some(b'*')) => match self.src[self.pos + 2..].find("*/") {
                    Some(off) => self.pos += 2 + off + 2,
                    None => return err(UNTERMINATED_COMMENT),
                },
                _ => return Ok(()),
            }
        }
    }

    fn next_token(&mut self) -> PResult<Token> {
        self.skip_trivia()?;
        let start = self.pos;
        let Some(b) = self.byte(start) else {
            return Ok(Token { tok: Tok::Eof, start, end: start });
        };
        let tok = if b.is_ascii_alphabetic() || b == b'_' {
            let mut end = start + 1;
            while self.byte(end).is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') {
                end += 1;
            }
            self.pos = end;
            let raw = &self.src[start..end];
            Tok::Ident { lower: raw.to_ascii_lowercase(), raw: raw.to_string(), quoted: false }
        } else if b == b'"' {
            let raw = self.delimited(b'"', UNTERMINATED_IDENT)?;
            if raw.is_empty() {
                return err("empty quoted identifier \"\"");
            }
            Tok::Ident { lower: raw.to_lowercase(), raw, quoted: true }
        } else if b == b'\'' {
            Tok::Str(self.delimited(b'\'', UNTERMINATED_STRING)?)
        } else if b.is_ascii_digit() || (b == b'-' && self.byte(start + 1).is_some_and(|c| c.is_ascii_digit())) {
            Tok::Number(self.number())
        } else if b"(),.=;*".contains(&b) {
            self.pos += 1;
            Tok::Punct(b as char)
        } else {
            let c = self.src[start..].chars().next().unwrap_or('\u{FFFD}');
            self.pos += c.len_utf8().max(1);
            Tok::Other(c)
        };
        Ok(Token { tok, start, end: self.pos })
    }

    /// Reads a `quote`-delimited token where a doubled quote stands for one quote.
    fn delimited(&mut self, quote: u8, unterminated: &str) -> PResult<String> {
        let bytes = self.src.as_bytes();
        let mut out = String::new();
        let mut seg = self.pos + 1;
        let mut i = seg;
        loop {
            let Some(off) = bytes.get(i..).and_then(|rest| rest.iter().position(|&c| c == quote)) else {
                return err(unterminated);
            };
            let j = i + off;
            if bytes.get(j + 1) == Some(&quote) {
                out.push_str(&self.src[seg..=j]);
                i = j + 2;
                seg = i;
            } else {
                out.push_str(&self.src[seg..j]);
                self.pos = j + 1;
                return Ok(out);
            }
        }
    }

    fn number(&mut self) -> String {
        let start = self.pos;
        let digit = |lexer: &Self, at: usize| lexer.byte(at).is_some_and(|c| c.is_ascii_digit());
        let mut i = start;
        if self.byte(i) == Some(b'-') {
            i += 1;
        }
        while digit(self, i) {
            i += 1;
        }
        if self.byte(i) == Some(b'.') && digit(self, i + 1) {
            i += 1;
            while digit(self, i) {
                i += 1;
            }
        }
        if matches!(self.byte(i), Some(b'e' | b'E')) {
            let mut j = i + 1;
            if matches!(self.byte(j), Some(b'+' | b'-')) {
                j += 1;
            }
            if digit(self, j) {
                i = j;
                while digit(self, i) {
                    i += 1;
                }
            }
        }
        self.pos = i;
        self.src[start..i].to_string()
    }
}

fn is_kw(token: &Token, kw: &str) -> bool {
    matches!(&token.tok, Tok::Ident { lower, quoted: false, .. } if lower == kw)
}

fn is_ident(token: &Token) -> bool {
    matches!(token.tok, Tok::Ident { .. })
}

fn is_end(token: &Token) -> bool {
    matches!(token.tok, Tok::Eof | Tok::Punct(';'))
}

fn table_name(table: &TableRef) -> String {
    match &table.namespace {
        Some(ns) => format!("{ns}.{}", table.name),
        None => table.name.clone(),
    }
}

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    eof: Token,
}

impl Parser<'_> {
    fn peek_at(&self, n: usize) -> &Token {
        self.tokens.get(self.pos + n).unwrap_or(&self.eof)
    }

    fn peek(&self) -> &Token {
        self.peek_at(0)
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        token
    }

    fn peek_kw(&self, kw: &str) -> bool {
        is_kw(self.peek(), kw)
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let found = self.peek_kw(kw);
        if found {
            self.advance();
        }
        found
    }

    fn peek_punct(&self, c: char) -> bool {
        self.peek().tok == Tok::Punct(c)
    }

    fn eat_punct(&mut self, c: char) -> bool {
        let found = self.peek_punct(c);
        if found {
            self.advance();
        }
        found
    }

    /// How a token is shown in messages: `'x'`, `string 'abc'` or `end of input`.
    fn describe(&self, token: &Token) -> String {
        const MAX: usize = 40;
        let text = self.src.get(token.start..token.end).unwrap_or("");
        let text = match text.char_indices().nth(MAX) {
            Some((cut, _)) => format!("{}...", &text[..cut]),
            None => text.to_string(),
        };
        match token.tok {
            Tok::Eof => "end of input".to_string(),
            Tok::Str(_) => format!("string {text}"),
            _ => format!("'{text}'"),
        }
    }

    /// `expected <what>, found <next token>`.
    fn expected(&self, what: &str) -> ParseError {
        ParseError::new(format!("expected {what}, found {}", self.describe(self.peek())))
    }

    fn expect_kw(&mut self, kw: &str, context: &str) -> PResult<()> {
        if self.eat_kw(kw) { Ok(()) } else { Err(self.expected(&format!("{} {context}", kw.to_ascii_uppercase()))) }
    }

    fn expect_punct(&mut self, c: char, context: &str) -> PResult<()> {
        if self.eat_punct(c) { Ok(()) } else { Err(self.expected(&format!("'{c}' {context}"))) }
    }

    /// Accepts an optional `;` and then requires the end of input.
    fn expect_end(&mut self, statement: &str) -> PResult<()> {
        let had_semicolon = self.eat_punct(';');
        if self.peek().tok == Tok::Eof {
            return Ok(());
        }
        let found = self.describe(self.peek());
        if had_semicolon {
            err(format!("unexpected {found} after ';' (only one statement can be run here)"))
        } else {
            err(format!("unexpected {found} after the end of the {statement} statement"))
        }
    }

    /// "unsupported statement: CREATE VIEW" for an unknown word, else `expected ...`.
    fn unsupported(&self, prefix: &str, choices: &str) -> ParseError {
        match &self.peek().tok {
            Tok::Ident { raw, quoted: false, .. } => {
                ParseError::new(format!("unsupported statement: {prefix} {}", raw.to_ascii_uppercase()))
            }
            _ => self.expected(&format!("{choices} after {prefix}")),
        }
    }

    fn ident(&mut self, what: &str) -> PResult<String> {
        match &self.peek().tok {
            Tok::Ident { lower, .. } => {
                let name = lower.clone();
                self.advance();
                Ok(name)
            }
            _ => Err(self.expected(what)),
        }
    }

    fn table_ref(&mut self, what: &str) -> PResult<TableRef> {
        let first = self.ident(what)?;
        if !self.eat_punct('.') {
            return Ok(TableRef { namespace: None, name: first });
        }
        let name = self.ident(&format!("a table name after '{first}.'"))?;
        if self.peek_punct('.') {
            return err(format!("table name '{first}.{name}.' has too many parts; use namespace.table or table"));
        }
        Ok(TableRef { namespace: Some(first), name })
    }

    /// Consumes `kw` when it is followed by an identifier, so that a lone word such as
    /// `DESCRIBE table` still works as a name.
    fn eat_optional_kw(&mut self, kw: &str) {
        if self.peek_kw(kw) && is_ident(self.peek_at(1)) {
            self.advance();
        }
    }

    fn if_not_exists(&mut self) -> PResult<bool> {
        if !self.peek_kw("if") || is_end(self.peek_at(1)) {
            return Ok(false);
        }
        self.advance();
        self.expect_kw("not", "after IF")?;
        self.expect_kw("exists", "after IF NOT")?;
        Ok(true)
    }

    fn if_exists(&mut self) -> PResult<bool> {
        if !self.peek_kw("if") || is_end(self.peek_at(1)) {
            return Ok(false);
        }
        self.advance();
        self.expect_kw("exists", "after IF")?;
        Ok(true)
    }

    fn statement(&mut self) -> PResult<Statement> {
        let token = self.advance();
        let Tok::Ident { lower, raw, quoted: false } = &token.tok else {
            return err(format!(
                "expected a statement such as SELECT or CREATE TABLE, found {}",
                self.describe(&token)
            ));
        };
        match lower.as_str() {
            "create" => self.create(),
            "alter" => self.alter(),
            "drop" => self.drop(),
            "show" => self.show(),
            "use" => {
                self.eat_optional_kw("namespace");
                let namespace = self.ident("a namespace name after USE")?;
                self.expect_end("USE")?;
                Ok(Statement::Use { namespace })
            }
            "describe" | "desc" => {
                self.eat_optional_kw("table");
                let table = self.table_ref("a table name after DESCRIBE")?;
                let history = self.eat_kw("history");
                self.expect_end("DESCRIBE")?;
                Ok(Statement::DescribeTable { table, history })
            }
            "flush" => self.flush(),
            "kill" => self.kill(),
            "backup" | "restore" => {
                let restore = lower == "restore";
                let verb = if restore { "RESTORE" } else { "BACKUP" };
                self.expect_kw("database", &format!("after {verb}"))?;
                let namespace = self.ident(&format!("a namespace name after {verb} DATABASE"))?;
                self.expect_kw(if restore { "from" } else { "to" }, &format!("after {verb} DATABASE {namespace}"))?;
                let path = self.string(&format!(
                    "a path string after {verb} DATABASE {namespace} {}",
                    if restore { "FROM" } else { "TO" }
                ))?;
                self.expect_end(&format!("{verb} DATABASE"))?;
                Ok(if restore {
                    Statement::RestoreDatabase { namespace, path }
                } else {
                    Statement::BackupDatabase { namespace, path }
                })
            }
            "execute" => self.execute_as(),
            _ => err(format!("unsupported statement: {}", raw.to_ascii_uppercase())),
        }
    }

    fn create(&mut self) -> PResult<Statement> {
        if self.eat_kw("namespace") {
            let if_not_exists = self.if_not_exists()?;
            let name = self.ident("a namespace name after CREATE NAMESPACE")?;
            self.expect_end("CREATE NAMESPACE")?;
            return Ok(Statement::CreateNamespace { name, if_not_exists });
        }
        if self.eat_kw("table") {
            return self.create_table(TableKind::User);
        }
        if self.eat_kw("shared") {
            self.expect_kw("table", "after CREATE SHARED")?;
            return self.create_table(TableKind::Shared);
        }
        if self.eat_kw("stream") {
            self.expect_kw("table", "after CREATE STREAM")?;
            return self.create_table(TableKind::Stream);
        }
        if self.eat_kw("user") {
            if self.eat_kw("table") {
                return self.create_table(TableKind::User);
            }
            return self.create_user();
        }
        if self.eat_kw("storage") {
            return self.create_storage();
        }
        Err(self.unsupported("CREATE", "NAMESPACE, TABLE, USER or STORAGE"))
    }

    fn create_storage(&mut self) -> PResult<Statement> {
        let if_not_exists = self.if_not_exists()?;
        let id = self.ident("a storage id after CREATE STORAGE")?;
        self.expect_kw("type", &format!("after CREATE STORAGE {id}"))?;
        let storage_type = match &self.peek().tok {
            Tok::Str(s) | Tok::Ident { raw: s, .. } => s.to_ascii_lowercase(),
            _ => return Err(self.expected("a storage type ('filesystem' or 's3') after TYPE")),
        };
        self.advance();
        const KEYS: [&str; 7] =
            ["path", "bucket", "prefix", "region", "endpoint", "access_key_id", "secret_access_key"];
        let mut settings = Vec::new();
        loop {
            if self.eat_kw("allow_http") {
                add_option(&mut settings, OptionSpec { key: "allow_http".into(), value: Literal::Bool(true) })?;
                continue;
            }
            let Some(key) = KEYS.iter().find(|k| self.peek_kw(k)) else { break };
            self.advance();
            let value = self.string(&format!("a string after {}", key.to_ascii_uppercase()))?;
            add_option(&mut settings, OptionSpec { key: key.to_string(), value: Literal::String(value) })?;
        }
        if !is_end(self.peek()) && !self.peek_punct(';') {
            return Err(
                self.expected("PATH, BUCKET, PREFIX, REGION, ENDPOINT, ACCESS_KEY_ID, SECRET_ACCESS_KEY or ALLOW_HTTP")
            );
        }
        self.expect_end("CREATE STORAGE")?;
        Ok(Statement::CreateStorage(CreateStorage { id, if_not_exists, storage_type, settings }))
    }

    fn create_table(&mut self, kind: TableKind) -> PResult<Statement> {
        let if_not_exists = self.if_not_exists()?;
        let table = self.table_ref("a table name after CREATE TABLE")?;
        let shown = table_name(&table);
        self.expect_punct('(', &format!("to start the column list of table '{shown}'"))?;

        let mut columns: Vec<ColumnSpec> = Vec::new();
        let mut primary_key: Option<String> = None;
        if !self.peek_punct(')') {
            loop {
                let item = if self.peek_kw("primary") && is_kw(self.peek_at(1), "key") {
                    self.advance();
                    self.advance();
                    let column = self.table_primary_key()?;
                    if primary_key.is_some() {
                        return err("PRIMARY KEY is declared more than once");
                    }
                    primary_key = Some(column);
                    "PRIMARY KEY (...)".to_string()
                } else {
                    let column = self.column_spec()?;
                    if columns.iter().any(|c| c.name == column.name) {
                        return err(format!("duplicate column name '{}' in table '{shown}'", column.name));
                    }
                    let item = format!("column '{}'", column.name);
                    columns.push(column);
                    item
                };
                if self.eat_punct(',') {
                    continue;
                }
                if self.eat_punct(')') {
                    break;
                }
                if is_end(self.peek()) {
                    return Err(self.expected("')' to close the column list"));
                }
                return Err(self.expected(&format!("',' or ')' after {item}")));
            }
        } else {
            self.advance();
        }
        if columns.is_empty() {
            return err(format!("table '{shown}' needs at least one column"));
        }

        let mut declared: Vec<&str> = columns.iter().filter(|c| c.primary_key).map(|c| c.name.as_str()).collect();
        if let Some(pk) = &primary_key {
            if !columns.iter().any(|c| &c.name == pk) {
                return err(format!("PRIMARY KEY column '{pk}' is not defined in table '{shown}'"));
            }
            declared.push(pk);
        }
        if declared.len() > 1 {
            return err(format!(
                "PRIMARY KEY is declared more than once (on {}); composite primary keys are not supported",
                declared.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(" and ")
            ));
        }

        let mut options: Vec<OptionSpec> = Vec::new();
        let (mut saw_with, mut saw_flush) = (false, false);
        loop {
            if self.eat_kw("with") {
                if saw_with {
                    return err("WITH (...) is given more than once");
                }
                saw_with = true;
                for option in self.option_list("WITH")? {
                    add_option(&mut options, option)?;
                }
            } else if self.eat_kw("flush") {
                if saw_flush {
                    return err("FLUSH POLICY is given more than once");
                }
                saw_flush = true;
                let option = self.flush_policy()?;
                add_option(&mut options, option)?;
            } else {
                break;
            }
        }
        self.expect_end("CREATE TABLE")?;
        Ok(Statement::CreateTable(CreateTable { kind, if_not_exists, table, columns, primary_key, options }))
    }

    /// The column list of a table-level `PRIMARY KEY (...)`, after `PRIMARY KEY`.
    fn table_primary_key(&mut self) -> PResult<String> {
        self.expect_punct('(', "after PRIMARY KEY")?;
        let mut names = vec![self.ident("a column name in PRIMARY KEY (...)")?];
        while self.eat_punct(',') {
            names.push(self.ident("a column name in PRIMARY KEY (...)")?);
        }
        self.expect_punct(')', "to close PRIMARY KEY (...)")?;
        if names.len() > 1 {
            return err(format!("composite primary keys are not supported: PRIMARY KEY ({})", names.join(", ")));
        }
        Ok(names.swap_remove(0))
    }

    /// `name TYPE [NOT NULL | NULL | PRIMARY KEY | DEFAULT x]...`; stops at anything
    /// else, which the caller reports.
    fn column_spec(&mut self) -> PResult<ColumnSpec> {
        let name = self.ident("a column name")?;
        let data_type = self.column_type(&name)?;
        let mut column = ColumnSpec { name, data_type, not_null: false, primary_key: false, default: None };
        let mut nullability: Option<bool> = None;
        loop {
            let not_null = if self.eat_kw("not") {
                self.expect_kw("null", "after NOT")?;
                true
            } else if self.eat_kw("null") {
                false
            } else if self.eat_kw("primary") {
                self.expect_kw("key", "after PRIMARY")?;
                if column.primary_key {
                    return err(format!("column '{}' declares PRIMARY KEY twice", column.name));
                }
                column.primary_key = true;
                continue;
            } else if self.eat_kw("default") {
                if column.default.is_some() {
                    return err(format!("column '{}' has more than one DEFAULT", column.name));
                }
                column.default = Some(self.default_value(&column.name)?);
                continue;
            } else {
                break;
            };
            if nullability.is_some_and(|previous| previous != not_null) {
                return err(format!("column '{}' cannot be both NULL and NOT NULL", column.name));
            }
            nullability = Some(not_null);
            column.not_null = not_null;
        }
        Ok(column)
    }

    fn column_type(&mut self, column: &str) -> PResult<DataType> {
        let (lower, raw) = match &self.peek().tok {
            Tok::Ident { lower, raw, .. } => (lower.clone(), raw.clone()),
            _ => return Err(self.expected(&format!("a column type after '{column}'"))),
        };
        self.advance();
        let data_type = match lower.as_str() {
            "boolean" | "bool" => DataType::Boolean,
            "smallint" | "int2" => DataType::SmallInt,
            "int" | "integer" | "int4" => DataType::Int,
            "bigint" | "int8" => DataType::BigInt,
            "float" | "real" | "float4" => DataType::Float,
            "double" => {
                self.eat_kw("precision");
                DataType::Double
            }
            "float8" => DataType::Double,
            "decimal" | "numeric" => self.decimal_args(column)?,
            "text" | "string" | "varchar" | "char" => {
                if self.eat_punct('(') {
                    self.integer(&format!("a length in {}(n)", raw.to_ascii_uppercase()))?;
                    self.expect_punct(')', &format!("to close {}(n)", raw.to_ascii_uppercase()))?;
                }
                DataType::Text
            }
            "bytes" | "bytea" | "blob" | "binary" => DataType::Bytes,
            "date" => DataType::Date,
            "timestamp" => DataType::Timestamp,
            "json" => DataType::Json,
            "crdt_text" => DataType::CrdtText,
            _ => return err(format!("unknown type '{raw}' for column '{column}'")),
        };
        Ok(data_type)
    }

    /// Optional `(p)` or `(p, s)` after DECIMAL/NUMERIC; the default is (38, 10).
    fn decimal_args(&mut self, column: &str) -> PResult<DataType> {
        if !self.eat_punct('(') {
            return Ok(DataType::Decimal { precision: 38, scale: 10 });
        }
        let precision = self.integer("a DECIMAL precision")?;
        let scale = if self.eat_punct(',') { self.integer("a DECIMAL scale")? } else { 0 };
        self.expect_punct(')', "to close DECIMAL(p, s)")?;
        if !(1..=38).contains(&precision) {
            return err(format!("DECIMAL precision must be between 1 and 38, got {precision} (column '{column}')"));
        }
        if !(0..=precision).contains(&scale) {
            return err(format!(
                "DECIMAL scale must be between 0 and the precision {precision}, got {scale} (column '{column}')"
            ));
        }
        // Both are range-checked above, so the conversions cannot fail.
        Ok(DataType::Decimal {
            precision: u8::try_from(precision).unwrap_or(38),
            scale: i8::try_from(scale).unwrap_or(0),
        })
    }

    fn integer(&mut self, what: &str) -> PResult<i64> {
        if let Tok::Number(text) = &self.peek().tok
            && let Ok(value) = text.parse::<i64>()
        {
            self.advance();
            return Ok(value);
        }
        Err(self.expected(&format!("{what} (an integer)")))
    }

    fn default_value(&mut self, column: &str) -> PResult<DefaultSpec> {
        let token = self.peek().clone();
        let (lower, raw, quoted) = match token.tok {
            Tok::Str(s) => {
                self.advance();
                return Ok(DefaultSpec::Literal(Literal::String(s)));
            }
            Tok::Number(n) => {
                self.advance();
                return Ok(DefaultSpec::Literal(Literal::Number(n)));
            }
            Tok::Ident { lower, raw, quoted } => (lower, raw, quoted),
            _ => return Err(self.expected(&format!("a DEFAULT value for column '{column}'"))),
        };
        self.advance();
        let call = self.peek_punct('(');
        let default = match lower.as_str() {
            "null" if !quoted && !call => DefaultSpec::Literal(Literal::Null),
            "true" if !quoted && !call => DefaultSpec::Literal(Literal::Bool(true)),
            "false" if !quoted && !call => DefaultSpec::Literal(Literal::Bool(false)),
            // SQL spells these without parentheses; the call form is accepted as well.
            "current_timestamp" => DefaultSpec::Now,
            "current_user" => DefaultSpec::CurrentUser,
            "now" if call => DefaultSpec::Now,
            "snowflake_id" if call => DefaultSpec::SnowflakeId,
            "uuid_v7" if call => DefaultSpec::UuidV7,
            "ulid" if call => DefaultSpec::Ulid,
            _ if call => {
                return err(format!(
                    "unsupported DEFAULT function '{raw}()' for column '{column}' (supported: NOW(), \
                     CURRENT_TIMESTAMP, SNOWFLAKE_ID(), UUID_V7(), ULID(), CURRENT_USER())"
                ));
            }
            _ => return err(format!("unsupported DEFAULT value '{raw}' for column '{column}'")),
        };
        if call {
            self.advance();
            if !self.eat_punct(')') {
                return err(format!(
                    "{}() takes no arguments (DEFAULT of column '{column}')",
                    raw.to_ascii_uppercase()
                ));
            }
        }
        Ok(default)
    }

    /// `( key = value, ... )`
    fn option_list(&mut self, context: &str) -> PResult<Vec<OptionSpec>> {
        self.expect_punct('(', &format!("after {context}"))?;
        let mut options = Vec::new();
        loop {
            let key = self.ident("an option name")?;
            self.expect_punct('=', &format!("after option '{key}'"))?;
            let value = self.option_value(&key)?;
            add_option(&mut options, OptionSpec { key, value })?;
            if self.eat_punct(',') {
                continue;
            }
            if self.eat_punct(')') {
                return Ok(options);
            }
            return Err(self.expected(&format!("',' or ')' in the {context} option list")));
        }
    }

    /// A literal; bare identifiers count as (lower-cased) strings, e.g. `storage = local`.
    fn option_value(&mut self, key: &str) -> PResult<Literal> {
        let value = match &self.peek().tok {
            Tok::Str(s) => Literal::String(s.clone()),
            Tok::Number(n) => Literal::Number(n.clone()),
            Tok::Ident { lower, quoted, .. } => match (lower.as_str(), quoted) {
                ("true", false) => Literal::Bool(true),
                ("false", false) => Literal::Bool(false),
                ("null", false) => Literal::Null,
                _ => Literal::String(lower.clone()),
            },
            _ => return Err(self.expected(&format!("a value for option '{key}'"))),
        };
        self.advance();
        Ok(value)
    }

    /// `POLICY ROWS n [INTERVAL 'dur']` after FLUSH, as `flush_policy = 'rows:n[,interval:s]'`.
    fn flush_policy(&mut self) -> PResult<OptionSpec> {
        self.expect_kw("policy", "after FLUSH")?;
        self.expect_kw("rows", "after FLUSH POLICY")?;
        let rows = match &self.peek().tok {
            Tok::Number(n) => n.parse::<u64>().ok().filter(|&rows| rows > 0),
            _ => None,
        };
        let Some(rows) = rows else {
            return Err(self.expected("a positive whole number of rows after FLUSH POLICY ROWS"));
        };
        self.advance();
        let mut policy = format!("rows:{rows}");
        if self.eat_kw("interval") {
            let text = match &self.peek().tok {
                Tok::Str(s) | Tok::Number(s) => s.clone(),
                _ => return Err(self.expected("a duration such as '300s', '5m', '2h' or '1d' after INTERVAL")),
            };
            self.advance();
            policy.push_str(&format!(",interval:{}", parse_duration(&text)?));
        }
        Ok(OptionSpec { key: "flush_policy".to_string(), value: Literal::String(policy) })
    }

    fn alter(&mut self) -> PResult<Statement> {
        if self.eat_kw("namespace") {
            let name = self.ident("a namespace name after ALTER NAMESPACE")?;
            self.expect_kw("set", &format!("OPTIONS (...) after ALTER NAMESPACE {name}"))?;
            self.expect_kw("options", "after ALTER NAMESPACE ... SET")?;
            let options = self.option_list("SET OPTIONS")?;
            self.expect_end("ALTER NAMESPACE")?;
            return Ok(Statement::AlterNamespace { name, options });
        }
        if self.eat_kw("table") {
            return self.alter_table();
        }
        if self.eat_kw("user") {
            let name = self.user_name("a user name after ALTER USER")?;
            self.expect_kw("set", "PASSWORD, ROLE or EMAIL after ALTER USER ...")?;
            let action = if self.eat_kw("password") {
                AlterUserAction::SetPassword(self.string("a password string after SET PASSWORD")?)
            } else if self.eat_kw("role") {
                AlterUserAction::SetRole(self.role()?)
            } else if self.eat_kw("email") {
                AlterUserAction::SetEmail(self.string("an email string after SET EMAIL")?)
            } else {
                return Err(self.expected("PASSWORD, ROLE or EMAIL after ALTER USER ... SET"));
            };
            self.expect_end("ALTER USER")?;
            return Ok(Statement::AlterUser { name, action });
        }
        Err(self.unsupported("ALTER", "NAMESPACE, TABLE or USER"))
    }

    fn alter_table(&mut self) -> PResult<Statement> {
        let table = self.table_ref("a table name after ALTER TABLE")?;
        let action = if self.eat_kw("add") {
            self.eat_optional_kw("column");
            let column = self.column_spec()?;
            if !is_end(self.peek()) {
                return Err(self.expected(&format!(
                    "NOT NULL, NULL, PRIMARY KEY, DEFAULT or the end of the statement in the definition of column '{}'",
                    column.name
                )));
            }
            AlterTableAction::AddColumn(column)
        } else if self.eat_kw("drop") {
            self.eat_optional_kw("column");
            AlterTableAction::DropColumn(self.ident("a column name after DROP COLUMN")?)
        } else if self.eat_kw("rename") {
            self.expect_kw("column", "after RENAME")?;
            let from = self.ident("a column name after RENAME COLUMN")?;
            self.expect_kw("to", &format!("after RENAME COLUMN {from}"))?;
            let to = self.ident(&format!("a new column name after RENAME COLUMN {from} TO"))?;
            AlterTableAction::RenameColumn { from, to }
        } else if self.eat_kw("modify") {
            self.eat_optional_kw("column");
            let name = self.ident("a column name after MODIFY")?;
            self.eat_kw("type");
            let data_type = self.column_type(&name)?;
            AlterTableAction::ModifyColumn { name, data_type }
        } else if self.eat_kw("alter") {
            self.expect_kw("column", "after ALTER TABLE ... ALTER")?;
            let name = self.ident("a column name after ALTER COLUMN")?;
            self.expect_kw("type", &format!("after ALTER COLUMN {name}"))?;
            let data_type = self.column_type(&name)?;
            AlterTableAction::ModifyColumn { name, data_type }
        } else if self.eat_kw("set") {
            self.expect_kw("access", "after ALTER TABLE ... SET")?;
            self.expect_kw("level", "after SET ACCESS")?;
            let level = match &self.peek().tok {
                Tok::Ident { lower, .. } => lower.clone(),
                Tok::Str(s) => s.to_lowercase(),
                _ => return Err(self.expected("an access level after SET ACCESS LEVEL")),
            };
            self.advance();
            AlterTableAction::SetAccessLevel(level)
        } else {
            return Err(self.expected(&format!(
                "ADD, DROP, RENAME COLUMN, MODIFY, ALTER COLUMN or SET ACCESS LEVEL after ALTER TABLE {}",
                table_name(&table)
            )));
        };
        self.expect_end("ALTER TABLE")?;
        Ok(Statement::AlterTable { table, action })
    }

    fn drop(&mut self) -> PResult<Statement> {
        if self.eat_kw("namespace") {
            let if_exists = self.if_exists()?;
            let name = self.ident("a namespace name after DROP NAMESPACE")?;
            let cascade = self.eat_kw("cascade");
            self.expect_end("DROP NAMESPACE")?;
            return Ok(Statement::DropNamespace { name, if_exists, cascade });
        }
        let kind = if self.eat_kw("table") {
            None
        } else if self.eat_kw("shared") {
            self.expect_kw("table", "after DROP SHARED")?;
            Some(TableKind::Shared)
        } else if self.eat_kw("stream") {
            self.expect_kw("table", "after DROP STREAM")?;
            Some(TableKind::Stream)
        } else if self.eat_kw("user") {
            if !self.eat_kw("table") {
                let if_exists = self.if_exists()?;
                let name = self.user_name("a user name after DROP USER")?;
                self.expect_end("DROP USER")?;
                return Ok(Statement::DropUser { name, if_exists });
            }
            Some(TableKind::User)
        } else if self.eat_kw("storage") {
            let if_exists = self.if_exists()?;
            let id = self.ident("a storage id after DROP STORAGE")?;
            self.expect_end("DROP STORAGE")?;
            return Ok(Statement::DropStorage { id, if_exists });
        } else {
            return Err(self.unsupported("DROP", "NAMESPACE, TABLE, USER or STORAGE"));
        };
        let if_exists = self.if_exists()?;
        let table = self.table_ref("a table name after DROP TABLE")?;
        self.expect_end("DROP TABLE")?;
        Ok(Statement::DropTable { kind, table, if_exists })
    }

    fn show(&mut self) -> PResult<Statement> {
        let statement = if self.eat_kw("namespaces") {
            self.expect_end("SHOW NAMESPACES")?;
            Statement::ShowNamespaces
        } else if self.eat_kw("tables") {
            let namespace = if self.eat_kw("in") || self.eat_kw("from") {
                Some(self.ident("a namespace name after SHOW TABLES IN")?)
            } else {
                None
            };
            self.expect_end("SHOW TABLES")?;
            Statement::ShowTables { namespace }
        } else if self.eat_kw("stats") {
            self.expect_kw("for", "after SHOW STATS")?;
            self.expect_kw("table", "after SHOW STATS FOR")?;
            let table = self.table_ref("a table name after SHOW STATS FOR TABLE")?;
            self.expect_end("SHOW STATS")?;
            Statement::ShowStats { table }
        } else if self.eat_kw("storages") {
            self.expect_end("SHOW STORAGES")?;
            Statement::ShowStorages
        } else if self.eat_kw("backup") {
            let path = self.string("a path string after SHOW BACKUP")?;
            self.expect_end("SHOW BACKUP")?;
            Statement::ShowBackup { path }
        } else {
            return Err(self.unsupported("SHOW", "NAMESPACES, TABLES, STATS, STORAGES or BACKUP"));
        };
        Ok(statement)
    }

    fn flush(&mut self) -> PResult<Statement> {
        if self.eat_kw("table") {
            let table = self.table_ref("a table name after FLUSH TABLE")?;
            self.expect_end("FLUSH TABLE")?;
            return Ok(Statement::FlushTable { table });
        }
        if self.eat_kw("all") {
            self.expect_kw("tables", "after FLUSH ALL")?;
            let namespace =
                if self.eat_kw("in") { Some(self.ident("a namespace name after FLUSH ALL TABLES IN")?) } else { None };
            self.expect_end("FLUSH ALL TABLES")?;
            return Ok(Statement::FlushAllTables { namespace });
        }
        Err(self.expected("TABLE or ALL TABLES after FLUSH"))
    }

    fn kill(&mut self) -> PResult<Statement> {
        if self.eat_kw("job") {
            let job_id = self.opaque_id("a job id after KILL JOB")?;
            self.expect_end("KILL JOB")?;
            return Ok(Statement::KillJob { job_id });
        }
        if self.eat_kw("live") {
            self.expect_kw("query", "after KILL LIVE")?;
            let live_id = self.opaque_id("a live query id after KILL LIVE QUERY")?;
            self.expect_end("KILL LIVE QUERY")?;
            return Ok(Statement::KillLiveQuery { live_id });
        }
        Err(self.expected("JOB or LIVE QUERY after KILL"))
    }

    /// `AS USER 'name' ( <statement> )` after EXECUTE; the body is kept as raw text.
    fn execute_as(&mut self) -> PResult<Statement> {
        self.expect_kw("as", "after EXECUTE")?;
        self.expect_kw("user", "after EXECUTE AS")?;
        let user = self.user_name("a user name after EXECUTE AS USER")?;
        if !self.peek_punct('(') {
            return Err(self.expected(&format!("'(' before the statement to run as user '{user}'")));
        }
        let body_start = self.advance().end;
        // Quotes and comments are single tokens, so counting punctuation tokens is
        // enough to find the matching parenthesis.
        let mut depth = 1usize;
        let mut has_tokens = false;
        let body_end = loop {
            let token = self.advance();
            if !matches!(token.tok, Tok::Punct(')') | Tok::Eof) || depth > 1 {
                has_tokens = true;
            }
            match token.tok {
                Tok::Punct('(') => depth += 1,
                Tok::Punct(')') => {
                    depth -= 1;
                    if depth == 0 {
                        break token.start;
                    }
                }
                Tok::Eof => return err("expected ')' to close EXECUTE AS USER (...), found end of input"),
                _ => {}
            }
        };
        let statement = self.src.get(body_start..body_end).unwrap_or("").trim().to_string();
        if !has_tokens || statement.is_empty() {
            return err(format!("EXECUTE AS USER '{user}' needs a statement inside the parentheses"));
        }
        self.expect_end("EXECUTE AS USER")?;
        Ok(Statement::ExecuteAs { user, statement })
    }

    fn create_user(&mut self) -> PResult<Statement> {
        // `CREATE USER WITH PASSWORD ...` is a forgotten name, not a user called "with".
        if self.peek_kw("with") {
            return Err(self.expected("a user name after CREATE USER"));
        }
        let name = self.user_name("a user name after CREATE USER")?;
        self.eat_kw("with");
        let (mut password, mut role, mut email) = (None, None, None);
        loop {
            if self.eat_kw("password") {
                if password.is_some() {
                    return err("PASSWORD is given more than once");
                }
                password = Some(self.string("a password string after PASSWORD")?);
            } else if self.eat_kw("role") {
                if role.is_some() {
                    return err("ROLE is given more than once");
                }
                role = Some(self.role()?);
            } else if self.eat_kw("email") {
                if email.is_some() {
                    return err("EMAIL is given more than once");
                }
                email = Some(self.string("an email string after EMAIL")?);
            } else {
                break;
            }
        }
        let Some(password) = password else {
            if is_end(self.peek()) {
                return err(format!("CREATE USER '{name}' requires WITH PASSWORD '...'"));
            }
            return Err(self.expected("PASSWORD, ROLE or EMAIL"));
        };
        self.expect_end("CREATE USER")?;
        Ok(Statement::CreateUser { name, password, role, email })
    }

    /// A user name as a string or bare identifier, case preserved.
    fn user_name(&mut self, what: &str) -> PResult<String> {
        let name = match &self.peek().tok {
            Tok::Str(s) | Tok::Ident { raw: s, .. } => s.clone(),
            _ => return Err(self.expected(what)),
        };
        if name.is_empty() {
            return err("user name must not be empty");
        }
        self.advance();
        Ok(name)
    }

    /// A job or live-query id: a string, bare identifier or number, case preserved.
    fn opaque_id(&mut self, what: &str) -> PResult<String> {
        let id = match &self.peek().tok {
            Tok::Str(s) | Tok::Ident { raw: s, .. } | Tok::Number(s) => s.clone(),
            _ => return Err(self.expected(what)),
        };
        if id.is_empty() {
            return Err(self.expected(what));
        }
        self.advance();
        Ok(id)
    }

    fn string(&mut self, what: &str) -> PResult<String> {
        match &self.peek().tok {
            Tok::Str(s) => {
                let s = s.clone();
                self.advance();
                Ok(s)
            }
            _ => Err(self.expected(what)),
        }
    }

    fn role(&mut self) -> PResult<Role> {
        let text = match &self.peek().tok {
            Tok::Str(s) | Tok::Ident { raw: s, .. } => s.to_lowercase(),
            _ => return Err(self.expected("a role (user, service, dba or system)")),
        };
        let role = match text.as_str() {
            "user" => Role::User,
            "service" => Role::Service,
            "dba" => Role::Dba,
            "system" => Role::System,
            _ => return err(format!("unknown role '{text}' (expected user, service, dba or system)")),
        };
        self.advance();
        Ok(role)
    }
}

fn add_option(options: &mut Vec<OptionSpec>, option: OptionSpec) -> PResult<()> {
    if options.iter().any(|o| o.key == option.key) {
        return err(format!("option '{}' is given more than once", option.key));
    }
    options.push(option);
    Ok(())
}

/// Seconds in `300`, `300s`, `5m`, `2h` or `1d`.
fn parse_duration(text: &str) -> PResult<u64> {
    let invalid = || {
        ParseError::new(format!(
            "invalid INTERVAL '{text}': expected a whole number of seconds or a value such as '300s', '5m', '2h' or '1d'"
        ))
    };
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let amount: u64 = digits.parse().map_err(|_| invalid())?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(invalid()),
    };
    match amount.checked_mul(factor) {
        Some(0) => err("INTERVAL must be greater than zero"),
        Some(seconds) => Ok(seconds),
        None => err(format!("INTERVAL '{text}' is too large")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(sql: &str) -> Statement {
        parse_statement(sql).unwrap_or_else(|e| panic!("{sql:?} failed: {e}"))
    }

    fn e(sql: &str) -> String {
        match parse_statement(sql) {
            Ok(stmt) => panic!("{sql:?} unexpectedly parsed as {stmt:?}"),
            Err(error) => error.message,
        }
    }

    fn assert_err(sql: &str, needle: &str) {
        let message = e(sql);
        assert!(message.contains(needle), "{sql:?}: message {message:?} does not contain {needle:?}");
    }

    fn tref(ns: Option<&str>, name: &str) -> TableRef {
        TableRef { namespace: ns.map(str::to_string), name: name.to_string() }
    }

    fn create_table(sql: &str) -> CreateTable {
        match p(sql) {
            Statement::CreateTable(ct) => ct,
            other => panic!("{sql:?} parsed as {other:?}"),
        }
    }

    fn col(name: &str, data_type: DataType) -> ColumnSpec {
        ColumnSpec { name: name.into(), data_type, not_null: false, primary_key: false, default: None }
    }

    fn single_type(ty: &str) -> DataType {
        create_table(&format!("CREATE TABLE t (c {ty})")).columns[0].data_type
    }

    fn default_of(default: &str) -> DefaultSpec {
        create_table(&format!("CREATE TABLE t (c TEXT DEFAULT {default})")).columns[0].default.clone().expect("default")
    }

    fn options_of(sql: &str) -> Vec<OptionSpec> {
        create_table(sql).options
    }

    fn opt(key: &str, value: Literal) -> OptionSpec {
        OptionSpec { key: key.into(), value }
    }

    fn s(text: &str) -> Literal {
        Literal::String(text.into())
    }

    // ---- split_statements ----

    #[test]
    fn split_basic() {
        assert_eq!(split_statements("SELECT 1; SELECT 2;").unwrap(), vec!["SELECT 1", "SELECT 2"]);
        assert_eq!(split_statements("  a ;; ; b  ").unwrap(), vec!["a", "b"]);
        assert!(split_statements("").unwrap().is_empty());
        assert!(split_statements(" ; \n ; ").unwrap().is_empty());
    }

    #[test]
    fn split_respects_quotes() {
        assert_eq!(
            split_statements("INSERT INTO t VALUES ('a;b', 'it''s; ok'); SELECT \"we;ird\" FROM t").unwrap(),
            vec!["INSERT INTO t VALUES ('a;b', 'it''s; ok')", "SELECT \"we;ird\" FROM t"]
        );
        assert_eq!(split_statements("SELECT 'x'''; SELECT 2").unwrap(), vec!["SELECT 'x'''", "SELECT 2"]);
    }

    #[test]
    fn split_respects_comments() {
        let pieces = split_statements("SELECT 1 -- a; b\n; /* c; d */ SELECT 2; -- trailing only").unwrap();
        assert_eq!(pieces, vec!["SELECT 1 -- a; b", "/* c; d */ SELECT 2"]);
        assert!(split_statements("-- just a comment; really\n/* and ; another */").unwrap().is_empty());
        assert_eq!(split_statements("SELECT 1 -- end").unwrap(), vec!["SELECT 1 -- end"]);
        // Quotes inside comments do not open strings.
        assert_eq!(split_statements("a -- it's\n; b").unwrap(), vec!["a -- it's", "b"]);
    }

    #[test]
    fn split_unterminated() {
        assert!(split_statements("SELECT 'abc; SELECT 2").unwrap_err().message.contains("unterminated string"));
        assert!(split_statements("SELECT \"abc; x").unwrap_err().message.contains("unterminated quoted identifier"));
        assert!(split_statements("SELECT 1 /* x; y").unwrap_err().message.contains("unterminated block comment"));
    }

    #[test]
    fn split_then_parse() {
        let pieces = split_statements("CREATE NAMESPACE app; USE app; SELECT * FROM t;").unwrap();
        let parsed: Vec<Statement> = pieces.iter().map(|s| p(s)).collect();
        assert_eq!(
            parsed,
            vec![
                Statement::CreateNamespace { name: "app".into(), if_not_exists: false },
                Statement::Use { namespace: "app".into() },
                Statement::Sql("SELECT * FROM t".into()),
            ]
        );
    }

    // ---- pass-through and dispatch ----

    #[test]
    fn passthrough_sql() {
        for sql in [
            "SELECT * FROM t WHERE a <> 1",
            "select 1",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "INSERT INTO t VALUES ($1, 'a''b')",
            "UPDATE t SET a = a + 1",
            "DELETE FROM t WHERE id = 3",
            "EXPLAIN SELECT 1",
            "VALUES (1), (2)",
            "(SELECT 1) UNION (SELECT 2)",
            "SELECT $$it's$$",
        ] {
            assert_eq!(p(sql), Statement::Sql(sql.to_string()));
        }
        assert_eq!(p("  SELECT 1 ;  "), Statement::Sql("SELECT 1".into()));
        assert_eq!(p("-- hello\nSELECT 1;"), Statement::Sql("-- hello\nSELECT 1".into()));
        assert_eq!(p("/* c */ insert into t values (1)"), Statement::Sql("/* c */ insert into t values (1)".into()));
    }

    #[test]
    fn unsupported_statements() {
        assert_eq!(e("GRANT ALL ON t TO bob"), "unsupported statement: GRANT");
        assert_eq!(e("create view v as select 1"), "unsupported statement: CREATE VIEW");
        assert_eq!(e("ALTER INDEX i"), "unsupported statement: ALTER INDEX");
        assert_eq!(e("DROP VIEW v"), "unsupported statement: DROP VIEW");
        assert_eq!(e("SHOW USERS"), "unsupported statement: SHOW USERS");
        assert_err("CREATE", "expected NAMESPACE, TABLE, USER or STORAGE after CREATE, found end of input");
        assert_err("CREATE 'x'", "found string 'x'");
        assert_err("42", "expected a statement");
        assert_err("\"select\" 1", "expected a statement such as SELECT or CREATE TABLE, found '\"select\"'");
        assert_eq!(e(""), "empty statement");
        assert_eq!(e("   ;  "), "empty statement");
        assert_eq!(e("-- only a comment"), "empty statement");
    }

    #[test]
    fn trailing_tokens_and_semicolons() {
        assert_eq!(p("SHOW NAMESPACES;"), Statement::ShowNamespaces);
        assert_eq!(e("SHOW NAMESPACES extra"), "unexpected 'extra' after the end of the SHOW NAMESPACES statement");
        assert_err("SHOW NAMESPACES;;", "unexpected ';' after ';'");
        assert_err("USE app; SELECT 1", "unexpected 'SELECT' after ';'");
        assert_err("CREATE NAMESPACE a b", "unexpected 'b' after the end of the CREATE NAMESPACE statement");
    }

    // ---- namespaces ----

    #[test]
    fn namespaces() {
        assert_eq!(p("CREATE NAMESPACE App"), Statement::CreateNamespace { name: "app".into(), if_not_exists: false });
        assert_eq!(
            p("create namespace if not exists \"MyNs\""),
            Statement::CreateNamespace { name: "myns".into(), if_not_exists: true }
        );
        assert_eq!(
            p("DROP NAMESPACE app"),
            Statement::DropNamespace { name: "app".into(), if_exists: false, cascade: false }
        );
        assert_eq!(
            p("drop namespace IF EXISTS app CASCADE;"),
            Statement::DropNamespace { name: "app".into(), if_exists: true, cascade: true }
        );
        assert_eq!(p("SHOW NAMESPACES"), Statement::ShowNamespaces);
        assert_eq!(p("use App"), Statement::Use { namespace: "app".into() });
        assert_eq!(p("USE NAMESPACE app"), Statement::Use { namespace: "app".into() });
        assert_eq!(p("USE namespace"), Statement::Use { namespace: "namespace".into() });
        assert_err("CREATE NAMESPACE IF EXISTS x", "expected NOT after IF, found 'EXISTS'");
        assert_err("CREATE NAMESPACE", "expected a namespace name after CREATE NAMESPACE, found end of input");
        assert_err("DROP NAMESPACE IF NOT EXISTS x", "expected EXISTS after IF, found 'NOT'");
    }

    #[test]
    fn alter_namespace_options() {
        assert_eq!(
            p("ALTER NAMESPACE app SET OPTIONS (Retention = '7d', max_tables = 10, enabled = TRUE, quota = null, \
               tier = Hot, ratio = -1.5e3, off = false)"),
            Statement::AlterNamespace {
                name: "app".into(),
                options: vec![
                    opt("retention", s("7d")),
                    opt("max_tables", Literal::Number("10".into())),
                    opt("enabled", Literal::Bool(true)),
                    opt("quota", Literal::Null),
                    opt("tier", s("hot")),
                    opt("ratio", Literal::Number("-1.5e3".into())),
                    opt("off", Literal::Bool(false)),
                ],
            }
        );
        assert_err("ALTER NAMESPACE app SET OPTIONS ()", "expected an option name, found ')'");
        assert_err("ALTER NAMESPACE app SET OPTIONS (a 1)", "expected '=' after option 'a', found '1'");
        assert_err(
            "ALTER NAMESPACE app SET OPTIONS (a = 1",
            "expected ',' or ')' in the SET OPTIONS option list, found end of input",
        );
        assert_err("ALTER NAMESPACE app SET OPTIONS (a = 1, A = 2)", "option 'a' is given more than once");
        assert_err("ALTER NAMESPACE app SET OPTIONS (a = )", "expected a value for option 'a', found ')'");
        assert_err("ALTER NAMESPACE app OPTIONS (a = 1)", "expected SET OPTIONS (...) after ALTER NAMESPACE app");
    }

    // ---- CREATE TABLE ----

    #[test]
    fn create_table_full() {
        let ct = create_table(
            "CREATE TABLE IF NOT EXISTS App.Messages (\
               id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), \
               Title TEXT NOT NULL, \
               body varchar(255) NULL DEFAULT 'it''s', \
               created timestamp default now()\
             ) WITH (TTL_SECONDS = 3600, storage = 'local') FLUSH POLICY ROWS 1000 INTERVAL '5m';",
        );
        assert_eq!(ct.kind, TableKind::User);
        assert!(ct.if_not_exists);
        assert_eq!(ct.table, tref(Some("app"), "messages"));
        assert_eq!(ct.primary_key, None);
        assert_eq!(
            ct.columns,
            vec![
                ColumnSpec {
                    name: "id".into(),
                    data_type: DataType::BigInt,
                    not_null: false,
                    primary_key: true,
                    default: Some(DefaultSpec::SnowflakeId),
                },
                ColumnSpec { not_null: true, ..col("title", DataType::Text) },
                ColumnSpec { default: Some(DefaultSpec::Literal(s("it's"))), ..col("body", DataType::Text) },
                ColumnSpec { default: Some(DefaultSpec::Now), ..col("created", DataType::Timestamp) },
            ]
        );
        assert_eq!(
            ct.options,
            vec![
                opt("ttl_seconds", Literal::Number("3600".into())),
                opt("storage", s("local")),
                opt("flush_policy", s("rows:1000,interval:300")),
            ]
        );
    }

    #[test]
    fn create_table_kinds() {
        assert_eq!(create_table("CREATE TABLE t (a INT)").kind, TableKind::User);
        assert_eq!(create_table("create user table t (a INT)").kind, TableKind::User);
        assert_eq!(create_table("CREATE SHARED TABLE t (a INT)").kind, TableKind::Shared);
        assert_eq!(create_table("Create Stream Table t (a INT)").kind, TableKind::Stream);
        let ct = create_table("CREATE TABLE \"MyTable\" (\"Col\" INT)");
        assert_eq!(ct.table, tref(None, "mytable"));
        assert_eq!(ct.columns[0].name, "col");
        assert!(!ct.if_not_exists);
        assert_err("CREATE SHARED t (a INT)", "expected TABLE after CREATE SHARED, found 't'");
        assert_err("CREATE STREAM", "expected TABLE after CREATE STREAM, found end of input");
    }

    #[test]
    fn create_table_primary_keys() {
        let ct = create_table("CREATE TABLE t (a INT, b TEXT, PRIMARY KEY (A))");
        assert_eq!(ct.primary_key.as_deref(), Some("a"));
        assert!(ct.columns.iter().all(|c| !c.primary_key));
        let ct = create_table("CREATE TABLE t (PRIMARY KEY (b), b TEXT)");
        assert_eq!(ct.primary_key.as_deref(), Some("b"));
        // A column may be called `primary`.
        assert_eq!(create_table("CREATE TABLE t (primary INT)").columns[0].name, "primary");

        assert_err("CREATE TABLE t (a INT, b INT, PRIMARY KEY (a, b))", "composite primary keys are not supported");
        assert_err("CREATE TABLE t (a INT PRIMARY KEY, b INT PRIMARY KEY)", "PRIMARY KEY is declared more than once");
        assert_err(
            "CREATE TABLE t (a INT PRIMARY KEY, b INT, PRIMARY KEY (b))",
            "PRIMARY KEY is declared more than once",
        );
        assert_err(
            "CREATE TABLE t (a INT, PRIMARY KEY (a), PRIMARY KEY (a))",
            "PRIMARY KEY is declared more than once",
        );
        assert_err("CREATE TABLE t (a INT PRIMARY KEY PRIMARY KEY)", "declares PRIMARY KEY twice");
        assert_err("CREATE TABLE t (a INT, PRIMARY KEY (z))", "PRIMARY KEY column 'z' is not defined");
        assert_err("CREATE TABLE t (a INT, PRIMARY KEY ())", "expected a column name in PRIMARY KEY (...), found ')'");
        assert_err("CREATE TABLE t (a INT, PRIMARY KEY a)", "expected '(' after PRIMARY KEY, found 'a'");
        assert_err("CREATE TABLE t (a INT PRIMARY)", "expected KEY after PRIMARY, found ')'");
    }

    #[test]
    fn create_table_column_errors() {
        assert_eq!(e("CREATE TABLE t (title, b INT)"), "expected a column type after 'title', found ','");
        assert_eq!(e("CREATE TABLE t (a INT"), "expected ')' to close the column list, found end of input");
        assert_eq!(e("CREATE TABLE t (a INT;"), "expected ')' to close the column list, found ';'");
        assert_err("CREATE TABLE t (a INT UNIQUE)", "expected ',' or ')' after column 'a', found 'UNIQUE'");
        assert_err("CREATE TABLE t (a INT, A TEXT)", "duplicate column name 'a'");
        assert_err("CREATE TABLE t (a INT, \"A\" TEXT)", "duplicate column name 'a'");
        assert_err("CREATE TABLE t ()", "table 't' needs at least one column");
        assert_err("CREATE TABLE t (PRIMARY KEY (a))", "table 't' needs at least one column");
        assert_err("CREATE TABLE t (a INT,)", "expected a column name, found ')'");
        assert_err("CREATE TABLE t a INT", "expected '(' to start the column list of table 't', found 'a'");
        assert_err("CREATE TABLE ns.t", "expected '(' to start the column list of table 'ns.t', found end of input");
        assert_err("CREATE TABLE a.b.c (x INT)", "too many parts");
        assert_err("CREATE TABLE a. (x INT)", "expected a table name after 'a.', found '('");
        assert_eq!(e("CREATE TABLE t (a Widget)"), "unknown type 'Widget' for column 'a'");
        assert_err("CREATE TABLE t (a INT NOT)", "expected NULL after NOT, found ')'");
        assert_err("CREATE TABLE t (a INT NULL NOT NULL)", "cannot be both NULL and NOT NULL");
        assert_err("CREATE TABLE t (a INT DEFAULT 1 DEFAULT 2)", "more than one DEFAULT");
        assert_err("CREATE TABLE t (a INT) extra", "unexpected 'extra' after the end of the CREATE TABLE statement");
        assert_err("CREATE TABLE t (a INT) WITH", "expected '(' after WITH, found end of input");
        assert_err("CREATE TABLE t (a INT) WITH (x = 1) WITH (y = 2)", "WITH (...) is given more than once");
    }

    #[test]
    fn constraints_in_any_order() {
        let ct =
            create_table("CREATE TABLE t (a INT DEFAULT 5 NOT NULL PRIMARY KEY, b INT NULL, c INT NOT NULL NOT NULL)");
        assert_eq!(
            ct.columns[0],
            ColumnSpec {
                name: "a".into(),
                data_type: DataType::Int,
                not_null: true,
                primary_key: true,
                default: Some(DefaultSpec::Literal(Literal::Number("5".into()))),
            }
        );
        assert!(!ct.columns[1].not_null);
        assert!(ct.columns[2].not_null);
    }

    #[test]
    fn column_types_and_aliases() {
        let cases = [
            ("BOOLEAN", DataType::Boolean),
            ("bool", DataType::Boolean),
            ("SMALLINT", DataType::SmallInt),
            ("int2", DataType::SmallInt),
            ("INT", DataType::Int),
            ("Integer", DataType::Int),
            ("INT4", DataType::Int),
            ("BIGINT", DataType::BigInt),
            ("int8", DataType::BigInt),
            ("FLOAT", DataType::Float),
            ("REAL", DataType::Float),
            ("float4", DataType::Float),
            ("DOUBLE", DataType::Double),
            ("double precision", DataType::Double),
            ("FLOAT8", DataType::Double),
            ("DECIMAL", DataType::Decimal { precision: 38, scale: 10 }),
            ("numeric", DataType::Decimal { precision: 38, scale: 10 }),
            ("DECIMAL(10)", DataType::Decimal { precision: 10, scale: 0 }),
            ("NUMERIC( 12 , 4 )", DataType::Decimal { precision: 12, scale: 4 }),
            ("DECIMAL(38, 38)", DataType::Decimal { precision: 38, scale: 38 }),
            ("DECIMAL(1,0)", DataType::Decimal { precision: 1, scale: 0 }),
            ("TEXT", DataType::Text),
            ("STRING", DataType::Text),
            ("VARCHAR", DataType::Text),
            ("varchar(255)", DataType::Text),
            ("CHAR(1)", DataType::Text),
            ("BYTES", DataType::Bytes),
            ("bytea", DataType::Bytes),
            ("BLOB", DataType::Bytes),
            ("BINARY", DataType::Bytes),
            ("DATE", DataType::Date),
            ("TIMESTAMP", DataType::Timestamp),
            ("json", DataType::Json),
            ("CRDT_TEXT", DataType::CrdtText),
        ];
        for (sql_type, expected) in cases {
            assert_eq!(single_type(sql_type), expected, "{sql_type}");
        }
    }

    #[test]
    fn decimal_errors() {
        assert_err("CREATE TABLE t (c DECIMAL(0))", "DECIMAL precision must be between 1 and 38, got 0 (column 'c')");
        assert_err("CREATE TABLE t (c DECIMAL(39, 2))", "between 1 and 38, got 39");
        assert_err(
            "CREATE TABLE t (c DECIMAL(10, 11))",
            "DECIMAL scale must be between 0 and the precision 10, got 11",
        );
        assert_err("CREATE TABLE t (c DECIMAL(10, -1))", "got -1");
        assert_err("CREATE TABLE t (c DECIMAL(1.5))", "expected a DECIMAL precision (an integer), found '1.5'");
        assert_err("CREATE TABLE t (c DECIMAL(10, 2)", "expected ')' to close the column list");
        assert_err("CREATE TABLE t (c DECIMAL(10 2))", "expected ')' to close DECIMAL(p, s), found '2'");
        assert_err("CREATE TABLE t (c DECIMAL(99999999999999999999))", "an integer");
        assert_err("CREATE TABLE t (c VARCHAR(x))", "expected a length in VARCHAR(n) (an integer), found 'x'");
    }

    #[test]
    fn defaults() {
        assert_eq!(default_of("NULL"), DefaultSpec::Literal(Literal::Null));
        assert_eq!(default_of("true"), DefaultSpec::Literal(Literal::Bool(true)));
        assert_eq!(default_of("FALSE"), DefaultSpec::Literal(Literal::Bool(false)));
        assert_eq!(default_of("-42"), DefaultSpec::Literal(Literal::Number("-42".into())));
        assert_eq!(default_of("3.25"), DefaultSpec::Literal(Literal::Number("3.25".into())));
        assert_eq!(default_of("1E-3"), DefaultSpec::Literal(Literal::Number("1E-3".into())));
        assert_eq!(default_of("'O''Brien'"), DefaultSpec::Literal(s("O'Brien")));
        assert_eq!(default_of("''"), DefaultSpec::Literal(s("")));
        assert_eq!(default_of("NOW()"), DefaultSpec::Now);
        assert_eq!(default_of("now( )"), DefaultSpec::Now);
        assert_eq!(default_of("CURRENT_TIMESTAMP"), DefaultSpec::Now);
        assert_eq!(default_of("current_timestamp()"), DefaultSpec::Now);
        assert_eq!(default_of("Snowflake_Id()"), DefaultSpec::SnowflakeId);
        assert_eq!(default_of("UUID_V7()"), DefaultSpec::UuidV7);
        assert_eq!(default_of("ulid()"), DefaultSpec::Ulid);
        assert_eq!(default_of("CURRENT_USER()"), DefaultSpec::CurrentUser);
        assert_eq!(default_of("current_user"), DefaultSpec::CurrentUser);
    }

    #[test]
    fn default_errors() {
        assert_err(
            "CREATE TABLE t (c TEXT DEFAULT random())",
            "unsupported DEFAULT function 'random()' for column 'c'",
        );
        assert_err("CREATE TABLE t (c TEXT DEFAULT NOW(3))", "NOW() takes no arguments");
        assert_err("CREATE TABLE t (c TEXT DEFAULT now)", "unsupported DEFAULT value 'now' for column 'c'");
        assert_err("CREATE TABLE t (c TEXT DEFAULT \"null\")", "unsupported DEFAULT value 'null'");
        assert_err("CREATE TABLE t (c TEXT DEFAULT)", "expected a DEFAULT value for column 'c', found ')'");
        assert_err("CREATE TABLE t (c INT DEFAULT - 1)", "expected a DEFAULT value for column 'c', found '-'");
        assert_err("CREATE TABLE t (c INT DEFAULT 'x)", "unterminated string literal");
    }

    #[test]
    fn flush_policy() {
        let flush = |clause: &str| options_of(&format!("CREATE TABLE t (a INT) {clause}"));
        assert_eq!(flush("FLUSH POLICY ROWS 500"), vec![opt("flush_policy", s("rows:500"))]);
        for (interval, seconds) in [
            ("'300'", 300),
            ("'300s'", 300),
            ("'5m'", 300),
            ("'2h'", 7200),
            ("'1d'", 86400),
            ("60", 60),
            ("'10 M'", 600),
        ] {
            assert_eq!(
                flush(&format!("flush policy rows 100 interval {interval}")),
                vec![opt("flush_policy", s(&format!("rows:100,interval:{seconds}")))],
                "{interval}"
            );
        }
        assert_eq!(
            flush("FLUSH POLICY ROWS 10 WITH (a = 1)"),
            vec![opt("flush_policy", s("rows:10")), opt("a", Literal::Number("1".into()))]
        );
        assert_err("CREATE TABLE t (a INT) FLUSH ROWS 10", "expected POLICY after FLUSH, found 'ROWS'");
        assert_err("CREATE TABLE t (a INT) FLUSH POLICY 10", "expected ROWS after FLUSH POLICY, found '10'");
        assert_err("CREATE TABLE t (a INT) FLUSH POLICY ROWS 0", "positive whole number of rows");
        assert_err("CREATE TABLE t (a INT) FLUSH POLICY ROWS -5", "positive whole number of rows");
        assert_err("CREATE TABLE t (a INT) FLUSH POLICY ROWS 1.5", "positive whole number of rows");
        assert_err("CREATE TABLE t (a INT) FLUSH POLICY ROWS 10 INTERVAL '5w'", "invalid INTERVAL '5w'");
        assert_err("CREATE TABLE t (a INT) FLUSH POLICY ROWS 10 INTERVAL 'm'", "invalid INTERVAL 'm'");
        assert_err("CREATE TABLE t (a INT) FLUSH POLICY ROWS 10 INTERVAL '0s'", "INTERVAL must be greater than zero");
        assert_err("CREATE TABLE t (a INT) FLUSH POLICY ROWS 10 INTERVAL '99999999999999999d'", "too large");
        assert_err("CREATE TABLE t (a INT) FLUSH POLICY ROWS 10 INTERVAL", "expected a duration");
        assert_err(
            "CREATE TABLE t (a INT) WITH (flush_policy = 'x') FLUSH POLICY ROWS 1",
            "option 'flush_policy' is given more than once",
        );
        assert_err(
            "CREATE TABLE t (a INT) FLUSH POLICY ROWS 1 FLUSH POLICY ROWS 2",
            "FLUSH POLICY is given more than once",
        );
    }

    // ---- ALTER / DROP / SHOW TABLE ----

    #[test]
    fn alter_table() {
        let alter = |sql: &str| match p(sql) {
            Statement::AlterTable { table, action } => (table, action),
            other => panic!("{other:?}"),
        };
        let (table, action) = alter("ALTER TABLE App.T ADD COLUMN Age INT NOT NULL DEFAULT 0");
        assert_eq!(table, tref(Some("app"), "t"));
        assert_eq!(
            action,
            AlterTableAction::AddColumn(ColumnSpec {
                not_null: true,
                default: Some(DefaultSpec::Literal(Literal::Number("0".into()))),
                ..col("age", DataType::Int)
            })
        );
        assert_eq!(alter("alter table t add note text").1, AlterTableAction::AddColumn(col("note", DataType::Text)));
        assert_eq!(alter("ALTER TABLE t DROP COLUMN Note").1, AlterTableAction::DropColumn("note".into()));
        assert_eq!(alter("ALTER TABLE t DROP note;").1, AlterTableAction::DropColumn("note".into()));
        assert_eq!(alter("ALTER TABLE t DROP column").1, AlterTableAction::DropColumn("column".into()));
        assert_eq!(
            alter("ALTER TABLE t RENAME COLUMN A TO B").1,
            AlterTableAction::RenameColumn { from: "a".into(), to: "b".into() }
        );
        for sql in [
            "ALTER TABLE t MODIFY c BIGINT",
            "ALTER TABLE t MODIFY COLUMN c BIGINT",
            "ALTER TABLE t MODIFY c TYPE BIGINT",
            "ALTER TABLE t MODIFY COLUMN c TYPE int8",
            "ALTER TABLE t ALTER COLUMN c TYPE BIGINT",
        ] {
            assert_eq!(
                alter(sql).1,
                AlterTableAction::ModifyColumn { name: "c".into(), data_type: DataType::BigInt },
                "{sql}"
            );
        }
        assert_eq!(alter("ALTER TABLE t SET ACCESS LEVEL Public").1, AlterTableAction::SetAccessLevel("public".into()));
        assert_eq!(
            alter("ALTER TABLE t SET ACCESS LEVEL 'RESTRICTED'").1,
            AlterTableAction::SetAccessLevel("restricted".into())
        );

        assert_err(
            "ALTER TABLE t",
            "expected ADD, DROP, RENAME COLUMN, MODIFY, ALTER COLUMN or SET ACCESS LEVEL after ALTER TABLE t, found end of input",
        );
        assert_err("ALTER TABLE t ADD c", "expected a column type after 'c', found end of input");
        assert_err("ALTER TABLE t ADD c INT UNIQUE", "in the definition of column 'c', found 'UNIQUE'");
        assert_err("ALTER TABLE t RENAME a TO b", "expected COLUMN after RENAME, found 'a'");
        assert_err("ALTER TABLE t RENAME COLUMN a b", "expected TO after RENAME COLUMN a, found 'b'");
        assert_err("ALTER TABLE t ALTER COLUMN c BIGINT", "expected TYPE after ALTER COLUMN c, found 'BIGINT'");
        assert_err("ALTER TABLE t MODIFY c TYPE", "expected a column type after 'c', found end of input");
        assert_err(
            "ALTER TABLE t MODIFY c INT NOT NULL",
            "unexpected 'NOT' after the end of the ALTER TABLE statement",
        );
        assert_err("ALTER TABLE t SET ACCESS public", "expected LEVEL after SET ACCESS, found 'public'");
        assert_err("ALTER TABLE t SET ACCESS LEVEL", "expected an access level after SET ACCESS LEVEL");
    }

    #[test]
    fn drop_table() {
        assert_eq!(
            p("DROP TABLE App.T"),
            Statement::DropTable { kind: None, table: tref(Some("app"), "t"), if_exists: false }
        );
        assert_eq!(
            p("drop user table if exists t"),
            Statement::DropTable { kind: Some(TableKind::User), table: tref(None, "t"), if_exists: true }
        );
        assert_eq!(
            p("DROP SHARED TABLE t"),
            Statement::DropTable { kind: Some(TableKind::Shared), table: tref(None, "t"), if_exists: false }
        );
        assert_eq!(
            p("DROP STREAM TABLE IF EXISTS ns.t;"),
            Statement::DropTable { kind: Some(TableKind::Stream), table: tref(Some("ns"), "t"), if_exists: true }
        );
        assert_err("DROP TABLE", "expected a table name after DROP TABLE, found end of input");
        assert_err("DROP STREAM t", "expected TABLE after DROP STREAM, found 't'");
        assert_err("DROP TABLE t CASCADE", "unexpected 'CASCADE' after the end of the DROP TABLE statement");
    }

    #[test]
    fn show_and_describe() {
        assert_eq!(p("SHOW TABLES"), Statement::ShowTables { namespace: None });
        assert_eq!(p("show tables in App"), Statement::ShowTables { namespace: Some("app".into()) });
        assert_eq!(p("SHOW TABLES FROM app"), Statement::ShowTables { namespace: Some("app".into()) });
        assert_eq!(p("DESCRIBE t"), Statement::DescribeTable { table: tref(None, "t"), history: false });
        assert_eq!(p("describe table ns.t"), Statement::DescribeTable { table: tref(Some("ns"), "t"), history: false });
        assert_eq!(p("DESC t HISTORY"), Statement::DescribeTable { table: tref(None, "t"), history: true });
        assert_eq!(
            p("desc TABLE ns.t history;"),
            Statement::DescribeTable { table: tref(Some("ns"), "t"), history: true }
        );
        assert_eq!(p("DESCRIBE table"), Statement::DescribeTable { table: tref(None, "table"), history: false });
        assert_eq!(p("SHOW STATS FOR TABLE ns.T"), Statement::ShowStats { table: tref(Some("ns"), "t") });
        assert_err("SHOW STATS t", "expected FOR after SHOW STATS, found 't'");
        assert_err("SHOW TABLES IN", "expected a namespace name after SHOW TABLES IN, found end of input");
        assert_err("SHOW", "expected NAMESPACES, TABLES, STATS, STORAGES or BACKUP after SHOW, found end of input");
        assert_err("DESCRIBE t x", "unexpected 'x' after the end of the DESCRIBE statement");
    }

    // ---- users ----

    #[test]
    fn create_user() {
        assert_eq!(
            p("CREATE USER 'Alice' WITH PASSWORD 'S3cr''et' ROLE dba EMAIL 'Alice@Example.com'"),
            Statement::CreateUser {
                name: "Alice".into(),
                password: "S3cr'et".into(),
                role: Some(Role::Dba),
                email: Some("Alice@Example.com".into()),
            }
        );
        assert_eq!(
            p("create user Bob with password 'pw' email 'b@x.io' role 'SERVICE';"),
            Statement::CreateUser {
                name: "Bob".into(),
                password: "pw".into(),
                role: Some(Role::Service),
                email: Some("b@x.io".into()),
            }
        );
        assert_eq!(
            p("CREATE USER \"Carol\" WITH PASSWORD 'pw' ROLE System"),
            Statement::CreateUser {
                name: "Carol".into(),
                password: "pw".into(),
                role: Some(Role::System),
                email: None
            }
        );
        assert_eq!(
            p("CREATE USER dave WITH PASSWORD 'pw' ROLE User"),
            Statement::CreateUser { name: "dave".into(), password: "pw".into(), role: Some(Role::User), email: None }
        );
        assert_err(
            "CREATE USER 'a' WITH PASSWORD 'p' ROLE admin",
            "unknown role 'admin' (expected user, service, dba or system)",
        );
        assert_err("CREATE USER 'a'", "CREATE USER 'a' requires WITH PASSWORD '...'");
        assert_err("CREATE USER 'a' WITH ROLE dba", "requires WITH PASSWORD");
        assert_err("CREATE USER 'a' WITH PASWORD 'p'", "expected PASSWORD, ROLE or EMAIL, found 'PASWORD'");
        assert_err("CREATE USER 'a' WITH PASSWORD secret", "expected a password string after PASSWORD, found 'secret'");
        assert_err("CREATE USER 'a' WITH PASSWORD 'p' ROLE dba ROLE user", "ROLE is given more than once");
        assert_err("CREATE USER 'a' WITH PASSWORD 'p' EMAIL 'x' EMAIL 'y'", "EMAIL is given more than once");
        assert_err("CREATE USER '' WITH PASSWORD 'p'", "user name must not be empty");
        assert_err("CREATE USER WITH PASSWORD 'p'", "expected a user name after CREATE USER, found 'WITH'");
        assert_err(
            "CREATE USER 'a' WITH PASSWORD 'p' extra",
            "unexpected 'extra' after the end of the CREATE USER statement",
        );
    }

    #[test]
    fn alter_and_drop_user() {
        assert_eq!(
            p("ALTER USER 'Alice' SET PASSWORD 'NewPw'"),
            Statement::AlterUser { name: "Alice".into(), action: AlterUserAction::SetPassword("NewPw".into()) }
        );
        assert_eq!(
            p("alter user Alice set role DBA"),
            Statement::AlterUser { name: "Alice".into(), action: AlterUserAction::SetRole(Role::Dba) }
        );
        assert_eq!(
            p("ALTER USER 'alice' SET EMAIL 'A@b.c'"),
            Statement::AlterUser { name: "alice".into(), action: AlterUserAction::SetEmail("A@b.c".into()) }
        );
        assert_eq!(p("DROP USER 'Alice'"), Statement::DropUser { name: "Alice".into(), if_exists: false });
        assert_eq!(p("drop user if exists Bob;"), Statement::DropUser { name: "Bob".into(), if_exists: true });
        assert_err(
            "ALTER USER 'a' SET NAME 'b'",
            "expected PASSWORD, ROLE or EMAIL after ALTER USER ... SET, found 'NAME'",
        );
        assert_err(
            "ALTER USER 'a' PASSWORD 'b'",
            "expected SET PASSWORD, ROLE or EMAIL after ALTER USER ..., found 'PASSWORD'",
        );
        assert_err("ALTER USER 'a' SET ROLE root", "unknown role 'root'");
        assert_err("DROP USER", "expected a user name after DROP USER, found end of input");
    }

    // ---- EXECUTE AS, FLUSH, KILL ----

    #[test]
    fn execute_as() {
        assert_eq!(
            p("EXECUTE AS USER 'Alice' ( SELECT * FROM t WHERE x = ')' AND f(a, (b)) > 1 )"),
            Statement::ExecuteAs {
                user: "Alice".into(),
                statement: "SELECT * FROM t WHERE x = ')' AND f(a, (b)) > 1".into(),
            }
        );
        assert_eq!(
            p("execute as user bob (INSERT INTO t VALUES (1) /* ) */ -- )\n);"),
            Statement::ExecuteAs { user: "bob".into(), statement: "INSERT INTO t VALUES (1) /* ) */ -- )".into() }
        );
        assert_err("EXECUTE AS USER 'a' ()", "EXECUTE AS USER 'a' needs a statement inside the parentheses");
        assert_err("EXECUTE AS USER 'a' (  -- nothing\n )", "needs a statement");
        assert_err(
            "EXECUTE AS USER 'a' (SELECT (1)",
            "expected ')' to close EXECUTE AS USER (...), found end of input",
        );
        assert_err("EXECUTE AS USER 'a' (SELECT 1) x", "unexpected 'x' after the end of the EXECUTE AS USER statement");
        assert_err(
            "EXECUTE AS USER 'a' SELECT 1",
            "expected '(' before the statement to run as user 'a', found 'SELECT'",
        );
        assert_err("EXECUTE AS 'a' (SELECT 1)", "expected USER after EXECUTE AS, found string 'a'");
        assert_err("EXECUTE AS USER 'a' (SELECT 1 /* ) */", "expected ')' to close EXECUTE AS USER");
        assert_err("EXECUTE AS USER 'a' (SELECT 'x)", "unterminated string literal");
    }

    #[test]
    fn flush_and_kill() {
        assert_eq!(p("FLUSH TABLE Ns.T"), Statement::FlushTable { table: tref(Some("ns"), "t") });
        assert_eq!(p("flush all tables"), Statement::FlushAllTables { namespace: None });
        assert_eq!(p("FLUSH ALL TABLES IN App;"), Statement::FlushAllTables { namespace: Some("app".into()) });
        assert_eq!(p("KILL JOB 'FL-123abc'"), Statement::KillJob { job_id: "FL-123abc".into() });
        assert_eq!(p("kill job Job_7"), Statement::KillJob { job_id: "Job_7".into() });
        assert_eq!(p("KILL JOB 42"), Statement::KillJob { job_id: "42".into() });
        assert_eq!(p("KILL LIVE QUERY 'u1-conn-q1'"), Statement::KillLiveQuery { live_id: "u1-conn-q1".into() });
        assert_eq!(p("kill live query Lq1;"), Statement::KillLiveQuery { live_id: "Lq1".into() });
        assert_err("FLUSH", "expected TABLE or ALL TABLES after FLUSH, found end of input");
        assert_err("FLUSH ALL t", "expected TABLES after FLUSH ALL, found 't'");
        assert_err("KILL QUERY 'x'", "expected JOB or LIVE QUERY after KILL, found 'QUERY'");
        assert_err("KILL LIVE 'x'", "expected QUERY after KILL LIVE, found string 'x'");
        assert_err("KILL JOB ''", "expected a job id after KILL JOB, found string ''");
        assert_err("KILL JOB", "expected a job id after KILL JOB, found end of input");
    }

    #[test]
    fn storages() {
        let Statement::CreateStorage(c) = p("CREATE STORAGE Archive TYPE 'filesystem' PATH '/srv/Cold'") else {
            panic!("not CREATE STORAGE")
        };
        assert_eq!((c.id.as_str(), c.if_not_exists, c.storage_type.as_str()), ("archive", false, "filesystem"));
        assert_eq!(c.settings, vec![opt("path", s("/srv/Cold"))]);
        let Statement::CreateStorage(c) = p("create storage if not exists lake type s3 bucket 'b' prefix 'p/q' \
             region 'eu-west-1' endpoint 'http://127.0.0.1:9000' access_key_id 'AK' secret_access_key 'SK' allow_http")
        else {
            panic!("not CREATE STORAGE")
        };
        assert!(c.if_not_exists);
        assert_eq!(c.storage_type, "s3");
        let keys: Vec<&str> = c.settings.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(
            keys,
            ["bucket", "prefix", "region", "endpoint", "access_key_id", "secret_access_key", "allow_http"]
        );
        assert_eq!(c.settings[6].value, Literal::Bool(true));
        assert!(!format!("{c:?}").contains("SK"), "Debug must not print secrets");
        assert_eq!(p("DROP STORAGE lake"), Statement::DropStorage { id: "lake".into(), if_exists: false });
        assert_eq!(p("drop storage if exists Lake;"), Statement::DropStorage { id: "lake".into(), if_exists: true });
        assert_eq!(p("SHOW STORAGES"), Statement::ShowStorages);
        assert_err("CREATE STORAGE x", "expected TYPE after CREATE STORAGE x");
        assert_err("CREATE STORAGE x TYPE 's3' BUCKET b", "expected a string after BUCKET");
        assert_err("CREATE STORAGE x TYPE 's3' BUCKET 'a' BUCKET 'b'", "option 'bucket' is given more than once");
        assert_err("CREATE STORAGE x TYPE 'filesystem' PATH '/a' COLOR 'red'", "expected PATH, BUCKET");
        assert_err("DROP STORAGE", "expected a storage id after DROP STORAGE");
    }

    #[test]
    fn backups() {
        assert_eq!(
            p("BACKUP DATABASE App TO '/tmp/Backup-1'"),
            Statement::BackupDatabase { namespace: "app".into(), path: "/tmp/Backup-1".into() }
        );
        assert_eq!(
            p("restore database app from 'nightly';"),
            Statement::RestoreDatabase { namespace: "app".into(), path: "nightly".into() }
        );
        assert_eq!(p("SHOW BACKUP 'nightly'"), Statement::ShowBackup { path: "nightly".into() });
        assert_err("BACKUP app TO 'x'", "expected DATABASE after BACKUP");
        assert_err("BACKUP DATABASE app 'x'", "expected TO after BACKUP DATABASE app");
        assert_err("RESTORE DATABASE app TO 'x'", "expected FROM after RESTORE DATABASE app");
        assert_err("BACKUP DATABASE app TO x", "expected a path string after BACKUP DATABASE app TO");
        assert_err("SHOW BACKUP", "expected a path string after SHOW BACKUP");
        assert_err("BACKUP DATABASE app TO 'x' now", "after the end of the BACKUP DATABASE statement");
    }

    // ---- tokenizer details ----

    #[test]
    fn tokenizer_details() {
        // Comments anywhere, mixed case keywords, quoted identifiers with "" escapes.
        assert_eq!(
            p("/* c */ CrEaTe -- x\n NameSpace \"a\"\"b\""),
            Statement::CreateNamespace { name: "a\"b".into(), if_not_exists: false }
        );
        assert_err("CREATE NAMESPACE \"\"", "empty quoted identifier");
        assert_err("CREATE NAMESPACE \"abc", "unterminated quoted identifier");
        assert_err("CREATE NAMESPACE a /* x", "unterminated block comment");
        assert_err("CREATE NAMESPACE €", "expected a namespace name after CREATE NAMESPACE, found '€'");
        // Quoted keywords are plain names.
        assert_eq!(
            p("CREATE NAMESPACE \"if\""),
            Statement::CreateNamespace { name: "if".into(), if_not_exists: false }
        );
        assert_eq!(p("CREATE NAMESPACE if"), Statement::CreateNamespace { name: "if".into(), if_not_exists: false });
        assert_eq!(default_of("'multi\nline €'"), DefaultSpec::Literal(s("multi\nline €")));
    }

    #[test]
    fn error_type_traits() {
        let error = parse_statement("CREATE VIEW v").unwrap_err();
        assert_eq!(error.to_string(), "unsupported statement: CREATE VIEW");
        let boxed: Box<dyn std::error::Error> = Box::new(error.clone());
        assert_eq!(boxed.to_string(), error.message);
        assert!(format!("{error:?}").contains("CREATE VIEW"));
    }

    /// Every prefix of a set of valid statements, plus pseudo-random token soup, must
    /// produce `Ok` or `Err` without panicking.
    #[test]
    fn never_panics() {
        let samples = [
            "CREATE SHARED TABLE IF NOT EXISTS ns.t (id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), \
             v DECIMAL(10, 2) NOT NULL DEFAULT -1.5, s VARCHAR(3), PRIMARY KEY (id)) \
             WITH (a = 'x''y', b = TRUE) FLUSH POLICY ROWS 10 INTERVAL '5m';",
            "ALTER NAMESPACE n SET OPTIONS (k = v, z = NULL)",
            "ALTER TABLE t ALTER COLUMN c TYPE DOUBLE PRECISION",
            "CREATE USER 'é' WITH PASSWORD 'p€' ROLE dba EMAIL 'e'",
            "EXECUTE AS USER 'a' (SELECT '(' /* ) */, \"x\" -- )\n)",
            "DROP USER IF EXISTS \"x\"",
            "KILL LIVE QUERY 'q'",
            "DESC TABLE a.b HISTORY",
        ];
        for sample in samples {
            for (i, _) in sample.char_indices() {
                let _ = parse_statement(&sample[..i]);
                let _ = split_statements(&sample[..i]);
                let _ = parse_statement(&sample[i..]);
            }
        }
        let alphabet = [
            "CREATE", "TABLE", "USER", "(", ")", ",", ".", "=", ";", "*", "'", "\"", "--", "/*", "*/", "-", "1", "1e",
            "-2.5", "x", "PRIMARY", "KEY", "DEFAULT", "NOW", "IF", "NOT", "EXISTS", "WITH", "FLUSH", "POLICY", "ROWS",
            "INTERVAL", "DECIMAL", "EXECUTE", "AS", "é", "\n", " ", "ALTER", "DROP", "SHOW",
        ];
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..3000 {
            let mut sql = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 12) as usize;
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                sql.push_str(alphabet[(state % alphabet.len() as u64) as usize]);
                if state.is_multiple_of(3) {
                    sql.push(' ');
                }
            }
            let _ = parse_statement(&sql);
            let _ = split_statements(&sql);
        }
    }
}
