//! The SQL front end: one tokenizer and one parser for every statement a request holds.
//!
//! Built the way DataFusion's `DFParser` extends sqlparser: [`KalamParser`] wraps sqlparser's
//! `Parser`, recognises the statements KalamDB defines itself (see [`super::ast`]) by their
//! first words and parses them with the same tokens, and hands queries and data changes
//! (SELECT, WITH, INSERT, UPDATE, DELETE, EXPLAIN, VALUES) to sqlparser's own grammar.
//!
//! A request is tokenized once ([`Script::tokenize`], with [`KalamDialect`]) and split into
//! statements at `;` tokens, so quotes, comments and dollar quoting are the tokenizer's
//! business. Each statement is parsed when it is about to run ([`Script::statement`]): a
//! syntax error names its statement, and the statements before it keep their effect.
//!
//! Names follow DataFusion's rule: an unquoted identifier is lower-cased, a quoted one is
//! taken as written. KalamDB's names are lower-case, so a quoted name with capitals
//! (`"Items"`) names nothing; statements that create a name refuse it. User names,
//! passwords, emails and job / live-query ids are values, not names, and keep their case.

use super::ast::*;
use super::dialect::{KalamDialect, RECURSION_LIMIT, check_limits};
use crate::error::{KalamError, Result};
use datafusion::sql::sqlparser::ast::{Ident, Statement as SqlStatement};
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, TokenizerError, Word};
use std::ops::Range;

/// A request's SQL text, tokenized once and split into statements.
pub(crate) struct Script {
    tokens: Vec<TokenWithSpan>,
    /// Token ranges of the statements, without their `;`; statements made only of
    /// whitespace and comments are left out.
    statements: Vec<Range<usize>>,
}

impl Script {
    /// Tokenizes `sql`. Fails only on text that cannot be tokenized (an unterminated
    /// string, quoted name or comment); syntax is checked per statement.
    pub(crate) fn tokenize(sql: &str) -> Result<Script> {
        let tokens = Tokenizer::new(&KalamDialect, sql).tokenize_with_location().map_err(tokenizer_error)?;
        let mut statements = Vec::new();
        let mut start = 0;
        for end in 0..=tokens.len() {
            if end == tokens.len() || tokens[end].token == Token::SemiColon {
                if tokens[start..end].iter().any(|t| !matches!(t.token, Token::Whitespace(_))) {
                    statements.push(start..end);
                }
                start = end + 1;
            }
        }
        Ok(Script { tokens, statements })
    }

    /// How many statements the text holds.
    pub(crate) fn len(&self) -> usize {
        self.statements.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// Parses statement `i` (0-based), within the limits of [`check_limits`].
    pub(crate) fn statement(&self, i: usize) -> Result<Statement> {
        let tokens = &self.tokens[self.statements[i].clone()];
        check_limits(tokens)?;
        KalamParser::new(tokens.to_vec()).statement()
    }

    /// Parses every statement.
    #[cfg(test)]
    pub(crate) fn statements(&self) -> Result<Vec<Statement>> {
        (0..self.len()).map(|i| self.statement(i)).collect()
    }

    /// The text's one statement; an error if it holds none or several.
    pub(crate) fn single(&self) -> Result<Statement> {
        match self.len() {
            1 => self.statement(0),
            0 => Err(KalamError::Parse("expected a statement".into())),
            _ => Err(KalamError::Parse("expected one statement".into())),
        }
    }
}

/// sqlparser's tokenizer messages, said the way the rest of the front end says things.
fn tokenizer_error(e: TokenizerError) -> KalamError {
    let what = match e.message.as_str() {
        "Unterminated string literal" => "unterminated string literal (missing closing ')",
        "Expected close delimiter '\"' before EOF." => "unterminated quoted name (missing closing \")",
        "Unexpected EOF while in a multi-line comment" => "unterminated block comment (missing closing */)",
        other => other,
    };
    KalamError::Parse(format!("{what} at line {}, column {}", e.location.line, e.location.column))
}

/// Parses text that must be one query or data change (subscriptions, internal queries).
pub(crate) fn parse_sql(sql: &str) -> Result<SqlStatement> {
    match Script::tokenize(sql)?.single()? {
        Statement::Sql(statement) => Ok(*statement),
        other => Err(KalamError::NotSupported(format!("expected a query, found {}", first_words(&other.to_string())))),
    }
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

/// The name an identifier stands for, by DataFusion's rule (see the module docs).
pub(crate) fn ident_name(ident: &Ident) -> String {
    match ident.quote_style {
        None => ident.value.to_ascii_lowercase(),
        Some(_) => ident.value.clone(),
    }
}

/// Leading keywords of the statements sqlparser parses.
const SQL_STATEMENTS: &[&str] = &["select", "with", "insert", "update", "delete", "explain", "values"];

/// sqlparser's `Parser` plus the grammar of KalamDB's own statements.
pub(crate) struct KalamParser<'a> {
    parser: Parser<'a>,
    /// Inside `EXECUTE AS USER '...' (...)`, where a statement ends at `)`.
    nested: bool,
}

type PResult<T> = std::result::Result<T, KalamError>;

fn err<T>(message: impl Into<String>) -> PResult<T> {
    Err(KalamError::Parse(message.into()))
}

fn parser_error(e: ParserError) -> KalamError {
    match e {
        ParserError::RecursionLimitExceeded => KalamError::TooLarge(format!(
            "the statement nests expressions too deeply (more than {RECURSION_LIMIT} levels)"
        )),
        other => KalamError::Parse(other.to_string()),
    }
}

fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

impl<'a> KalamParser<'a> {
    /// A parser over one statement's tokens.
    pub(crate) fn new(tokens: Vec<TokenWithSpan>) -> Self {
        let parser = Parser::new(&KalamDialect)
            .with_recursion_limit(RECURSION_LIMIT)
            .with_tokens_with_locations(normalize_current_user(tokens));
        KalamParser { parser, nested: false }
    }

    // ---- token helpers ----

    fn peek(&self) -> &Token {
        &self.parser.peek_token_ref().token
    }

    fn peek_nth(&self, n: usize) -> &Token {
        &self.parser.peek_nth_token_ref(n).token
    }

    fn advance(&mut self) -> Token {
        self.parser.next_token().token
    }

    fn peek_word(&self, word: &str) -> bool {
        is_word(self.peek(), word)
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self.peek_word(word);
        if found {
            self.advance();
        }
        found
    }

    fn eat(&mut self, token: &Token) -> bool {
        self.parser.consume_token(token)
    }

    /// How a token is shown in messages: `'x'`, `string 'abc'` or `end of input`.
    fn describe(token: &Token) -> String {
        const MAX: usize = 40;
        let text = token.to_string();
        let text = match text.char_indices().nth(MAX) {
            Some((cut, _)) => format!("{}...", &text[..cut]),
            None => text,
        };
        match token {
            Token::EOF => "end of input".to_string(),
            Token::SingleQuotedString(_) => format!("string {text}"),
            _ => format!("'{text}'"),
        }
    }

    /// `expected <what>, found <next token>`.
    fn expected(&self, what: &str) -> KalamError {
        KalamError::Parse(format!("expected {what}, found {}", Self::describe(self.peek())))
    }

    fn expect_word(&mut self, word: &str, context: &str) -> PResult<()> {
        if self.eat_word(word) {
            Ok(())
        } else {
            Err(self.expected(&format!("{} {context}", word.to_ascii_uppercase())))
        }
    }

    fn expect(&mut self, token: Token, context: &str) -> PResult<()> {
        if self.eat(&token) { Ok(()) } else { Err(self.expected(&format!("'{token}' {context}"))) }
    }

    fn at_end(&self) -> bool {
        match self.peek() {
            Token::EOF => true,
            Token::RParen => self.nested,
            _ => false,
        }
    }

    /// Requires the end of the statement.
    fn expect_end(&mut self, statement: &str) -> PResult<()> {
        if self.at_end() {
            return Ok(());
        }
        err(format!("unexpected {} after the end of the {statement} statement", Self::describe(self.peek())))
    }

    /// "unsupported statement: CREATE VIEW" for an unknown word, else `expected ...`.
    fn unsupported(&self, prefix: &str, choices: &str) -> KalamError {
        match self.peek() {
            Token::Word(w) if w.quote_style.is_none() => {
                KalamError::Parse(format!("unsupported statement: {prefix} {}", w.value.to_ascii_uppercase()))
            }
            _ => self.expected(&format!("{choices} after {prefix}")),
        }
    }

    /// A name: see the module docs for the rule.
    fn ident(&mut self, what: &str) -> PResult<String> {
        let Token::Word(word) = self.peek() else { return Err(self.expected(what)) };
        let name = word_name(word)?;
        self.advance();
        Ok(name)
    }

    fn table_ref(&mut self, what: &str) -> PResult<TableRef> {
        let first = self.ident(what)?;
        if !self.eat(&Token::Period) {
            return Ok(TableRef { namespace: None, name: first });
        }
        let name = self.ident(&format!("a table name after '{first}.'"))?;
        if self.peek() == &Token::Period {
            return err(format!("table name '{first}.{name}.' has too many parts; use namespace.table or table"));
        }
        Ok(TableRef { namespace: Some(first), name })
    }

    /// Consumes `word` when it is followed by a name, so that a lone word such as
    /// `DESCRIBE table` still works as a name.
    fn eat_optional_word(&mut self, word: &str) {
        if self.peek_word(word) && matches!(self.peek_nth(1), Token::Word(_)) {
            self.advance();
        }
    }

    fn if_not_exists(&mut self) -> PResult<bool> {
        if !self.peek_word("if") || self.peek_nth(1) == &Token::EOF {
            return Ok(false);
        }
        self.advance();
        self.expect_word("not", "after IF")?;
        self.expect_word("exists", "after IF NOT")?;
        Ok(true)
    }

    fn if_exists(&mut self) -> PResult<bool> {
        if !self.peek_word("if") || self.peek_nth(1) == &Token::EOF {
            return Ok(false);
        }
        self.advance();
        self.expect_word("exists", "after IF")?;
        Ok(true)
    }

    fn string(&mut self, what: &str) -> PResult<String> {
        match self.peek() {
            Token::SingleQuotedString(s) => {
                let s = s.clone();
                self.advance();
                Ok(s)
            }
            _ => Err(self.expected(what)),
        }
    }

    /// A number with an optional leading `-`, as written.
    fn number(&mut self) -> Option<String> {
        let negative = self.peek() == &Token::Minus && matches!(self.peek_nth(1), Token::Number(..));
        if negative {
            self.advance();
        }
        match self.peek() {
            Token::Number(n, _) => {
                let text = if negative { format!("-{n}") } else { n.clone() };
                self.advance();
                Some(text)
            }
            _ => None,
        }
    }

    fn integer(&mut self, what: &str) -> PResult<i64> {
        let at = self.parser.index();
        if let Some(value) = self.number().and_then(|n| n.parse::<i64>().ok()) {
            return Ok(value);
        }
        while self.parser.index() > at {
            self.parser.prev_token();
        }
        Err(self.expected(&format!("{what} (an integer)")))
    }

    // ---- statements ----

    /// Parses the whole statement.
    pub(crate) fn statement(mut self) -> Result<Statement> {
        let statement = self.next_statement()?;
        self.expect_end(&statement_name(&statement))?;
        Ok(statement)
    }

    fn next_statement(&mut self) -> PResult<Statement> {
        let token = self.peek().clone();
        let word = match &token {
            Token::EOF => return err("empty statement"),
            Token::LParen => return self.sql_statement(),
            Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_lowercase(),
            _ => {
                return err(format!(
                    "expected a statement such as SELECT or CREATE TABLE, found {}",
                    Self::describe(&token)
                ));
            }
        };
        if SQL_STATEMENTS.contains(&word.as_str()) {
            return self.sql_statement();
        }
        self.advance();
        match word.as_str() {
            "create" => self.create(),
            "alter" => self.alter(),
            "drop" => self.drop(),
            "show" => self.show(),
            "use" => {
                self.eat_optional_word("namespace");
                let namespace = self.ident("a namespace name after USE")?;
                Ok(Statement::Use { namespace })
            }
            "describe" | "desc" => {
                self.eat_optional_word("table");
                let table = self.table_ref("a table name after DESCRIBE")?;
                let history = self.eat_word("history");
                Ok(Statement::DescribeTable { table, history })
            }
            "flush" => self.flush(),
            "kill" => self.kill(),
            "backup" | "restore" => self.backup_or_restore(word == "restore"),
            "execute" => self.execute_as(),
            _ => err(format!("unsupported statement: {}", word.to_ascii_uppercase())),
        }
    }

    /// A query or data change, by sqlparser's grammar.
    fn sql_statement(&mut self) -> PResult<Statement> {
        let mut statement = self.parser.parse_statement().map_err(parser_error)?;
        super::rewrite::apply(&mut statement);
        Ok(Statement::Sql(Box::new(statement)))
    }

    fn create(&mut self) -> PResult<Statement> {
        if self.eat_word("namespace") {
            let if_not_exists = self.if_not_exists()?;
            let name = self.ident("a namespace name after CREATE NAMESPACE")?;
            return Ok(Statement::CreateNamespace { name, if_not_exists });
        }
        if self.eat_word("table") {
            return self.create_table(TableKind::User);
        }
        for (word, kind) in [("shared", TableKind::Shared), ("stream", TableKind::Stream)] {
            if self.eat_word(word) {
                self.expect_word("table", &format!("after CREATE {}", word.to_ascii_uppercase()))?;
                return self.create_table(kind);
            }
        }
        if self.eat_word("user") {
            if self.eat_word("table") {
                return self.create_table(TableKind::User);
            }
            return self.create_user();
        }
        if self.eat_word("storage") {
            return self.create_storage();
        }
        Err(self.unsupported("CREATE", "NAMESPACE, TABLE, USER or STORAGE"))
    }

    fn create_storage(&mut self) -> PResult<Statement> {
        let if_not_exists = self.if_not_exists()?;
        let id = self.ident("a storage id after CREATE STORAGE")?;
        self.expect_word("type", &format!("after CREATE STORAGE {id}"))?;
        let storage_type = match self.peek() {
            Token::SingleQuotedString(s) | Token::Word(Word { value: s, .. }) => s.to_ascii_lowercase(),
            _ => return Err(self.expected("a storage type ('filesystem' or 's3') after TYPE")),
        };
        self.advance();
        const KEYS: [&str; 7] =
            ["path", "bucket", "prefix", "region", "endpoint", "access_key_id", "secret_access_key"];
        let mut settings = Vec::new();
        loop {
            if let Some(flag) = ["allow_http", "shared"].into_iter().find(|w| self.peek_word(w)) {
                self.advance();
                add_option(&mut settings, OptionSpec { key: flag.into(), value: Literal::Bool(true) })?;
                continue;
            }
            let Some(key) = KEYS.iter().find(|k| self.peek_word(k)) else { break };
            self.advance();
            let value = self.string(&format!("a string after {}", key.to_ascii_uppercase()))?;
            add_option(&mut settings, OptionSpec { key: key.to_string(), value: Literal::String(value) })?;
        }
        if !self.at_end() {
            return Err(self.expected(
                "PATH, SHARED, BUCKET, PREFIX, REGION, ENDPOINT, ACCESS_KEY_ID, SECRET_ACCESS_KEY or ALLOW_HTTP",
            ));
        }
        Ok(Statement::CreateStorage(CreateStorage { id, if_not_exists, storage_type, settings }))
    }

    fn create_table(&mut self, kind: TableKind) -> PResult<Statement> {
        let if_not_exists = self.if_not_exists()?;
        let table = self.table_ref("a table name after CREATE TABLE")?;
        self.expect(Token::LParen, &format!("to start the column list of table '{table}'"))?;

        let mut columns: Vec<ColumnSpec> = Vec::new();
        let mut primary_key: Option<String> = None;
        if !self.eat(&Token::RParen) {
            loop {
                let item = if self.peek_word("primary") && is_word(self.peek_nth(1), "key") {
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
                        return err(format!("duplicate column name '{}' in table '{table}'", column.name));
                    }
                    let item = format!("column '{}'", column.name);
                    columns.push(column);
                    item
                };
                if self.eat(&Token::Comma) {
                    continue;
                }
                if self.eat(&Token::RParen) {
                    break;
                }
                if self.peek() == &Token::EOF {
                    return Err(self.expected("')' to close the column list"));
                }
                return Err(self.expected(&format!("',' or ')' after {item}")));
            }
        }
        if columns.is_empty() {
            return err(format!("table '{table}' needs at least one column"));
        }

        let mut declared: Vec<&str> = columns.iter().filter(|c| c.primary_key).map(|c| c.name.as_str()).collect();
        if let Some(pk) = &primary_key {
            if !columns.iter().any(|c| &c.name == pk) {
                return err(format!("PRIMARY KEY column '{pk}' is not defined in table '{table}'"));
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
            if self.eat_word("with") {
                if saw_with {
                    return err("WITH (...) is given more than once");
                }
                saw_with = true;
                for option in self.option_list("WITH")? {
                    add_option(&mut options, option)?;
                }
            } else if self.eat_word("flush") {
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
        Ok(Statement::CreateTable(CreateTable { kind, if_not_exists, table, columns, primary_key, options }))
    }

    /// The column list of a table-level `PRIMARY KEY (...)`, after `PRIMARY KEY`.
    fn table_primary_key(&mut self) -> PResult<String> {
        self.expect(Token::LParen, "after PRIMARY KEY")?;
        let mut names = vec![self.ident("a column name in PRIMARY KEY (...)")?];
        while self.eat(&Token::Comma) {
            names.push(self.ident("a column name in PRIMARY KEY (...)")?);
        }
        self.expect(Token::RParen, "to close PRIMARY KEY (...)")?;
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
            let not_null = if self.eat_word("not") {
                self.expect_word("null", "after NOT")?;
                true
            } else if self.eat_word("null") {
                false
            } else if self.eat_word("primary") {
                self.expect_word("key", "after PRIMARY")?;
                if column.primary_key {
                    return err(format!("column '{}' declares PRIMARY KEY twice", column.name));
                }
                column.primary_key = true;
                continue;
            } else if self.eat_word("default") {
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
        let Token::Word(word) = self.peek() else {
            return Err(self.expected(&format!("a column type after '{column}'")));
        };
        let (lower, raw) = (word.value.to_ascii_lowercase(), word.value.clone());
        self.advance();
        let data_type = match lower.as_str() {
            "boolean" | "bool" => DataType::Boolean,
            "smallint" | "int2" => DataType::SmallInt,
            "int" | "integer" | "int4" => DataType::Int,
            "bigint" | "int8" => DataType::BigInt,
            "float" | "real" | "float4" => DataType::Float,
            "double" => {
                self.eat_word("precision");
                DataType::Double
            }
            "float8" => DataType::Double,
            "decimal" | "numeric" => self.decimal_args(column)?,
            "text" | "string" | "varchar" | "char" => {
                if self.eat(&Token::LParen) {
                    let shown = raw.to_ascii_uppercase();
                    self.integer(&format!("a length in {shown}(n)"))?;
                    self.expect(Token::RParen, &format!("to close {shown}(n)"))?;
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
        if !self.eat(&Token::LParen) {
            return Ok(DataType::Decimal { precision: 38, scale: 10 });
        }
        let precision = self.integer("a DECIMAL precision")?;
        let scale = if self.eat(&Token::Comma) { self.integer("a DECIMAL scale")? } else { 0 };
        self.expect(Token::RParen, "to close DECIMAL(p, s)")?;
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

    fn default_value(&mut self, column: &str) -> PResult<DefaultSpec> {
        if let Token::SingleQuotedString(s) = self.peek() {
            let s = s.clone();
            self.advance();
            return Ok(DefaultSpec::Literal(Literal::String(s)));
        }
        if let Some(n) = self.number() {
            return Ok(DefaultSpec::Literal(Literal::Number(n)));
        }
        let Token::Word(word) = self.peek() else {
            return Err(self.expected(&format!("a DEFAULT value for column '{column}'")));
        };
        let (lower, raw, quoted) = (word.value.to_ascii_lowercase(), word.value.clone(), word.quote_style.is_some());
        self.advance();
        let call = self.peek() == &Token::LParen;
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
            if !self.eat(&Token::RParen) {
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
        self.expect(Token::LParen, &format!("after {context}"))?;
        let mut options = Vec::new();
        loop {
            let key = self.ident("an option name")?;
            self.expect(Token::Eq, &format!("after option '{key}'"))?;
            let value = self.option_value(&key)?;
            add_option(&mut options, OptionSpec { key, value })?;
            if self.eat(&Token::Comma) {
                continue;
            }
            if self.eat(&Token::RParen) {
                return Ok(options);
            }
            return Err(self.expected(&format!("',' or ')' in the {context} option list")));
        }
    }

    /// A literal; bare names count as strings, e.g. `storage = local`.
    fn option_value(&mut self, key: &str) -> PResult<Literal> {
        if let Some(n) = self.number() {
            return Ok(Literal::Number(n));
        }
        let value = match self.peek() {
            Token::SingleQuotedString(s) => Literal::String(s.clone()),
            Token::Word(w) => match (w.value.to_ascii_lowercase().as_str(), w.quote_style) {
                ("true", None) => Literal::Bool(true),
                ("false", None) => Literal::Bool(false),
                ("null", None) => Literal::Null,
                _ => Literal::String(word_name(w)?),
            },
            _ => return Err(self.expected(&format!("a value for option '{key}'"))),
        };
        self.advance();
        Ok(value)
    }

    /// `POLICY ROWS n [INTERVAL 'dur']` after FLUSH, as `flush_policy = 'rows:n[,interval:s]'`.
    fn flush_policy(&mut self) -> PResult<OptionSpec> {
        self.expect_word("policy", "after FLUSH")?;
        self.expect_word("rows", "after FLUSH POLICY")?;
        let rows = match self.peek() {
            Token::Number(n, _) => n.parse::<u64>().ok().filter(|&rows| rows > 0),
            _ => None,
        };
        let Some(rows) = rows else {
            return Err(self.expected("a positive whole number of rows after FLUSH POLICY ROWS"));
        };
        self.advance();
        let mut policy = format!("rows:{rows}");
        if self.eat_word("interval") {
            let text = match self.peek() {
                Token::SingleQuotedString(s) | Token::Number(s, _) => s.clone(),
                _ => return Err(self.expected("a duration such as '300s', '5m', '2h' or '1d' after INTERVAL")),
            };
            self.advance();
            policy.push_str(&format!(",interval:{}", parse_duration(&text)?));
        }
        Ok(OptionSpec { key: "flush_policy".to_string(), value: Literal::String(policy) })
    }

    fn alter(&mut self) -> PResult<Statement> {
        if self.eat_word("namespace") {
            let name = self.ident("a namespace name after ALTER NAMESPACE")?;
            self.expect_word("set", &format!("OPTIONS (...) after ALTER NAMESPACE {name}"))?;
            self.expect_word("options", "after ALTER NAMESPACE ... SET")?;
            let options = self.option_list("SET OPTIONS")?;
            return Ok(Statement::AlterNamespace { name, options });
        }
        if self.eat_word("table") {
            return self.alter_table();
        }
        if self.eat_word("user") {
            let name = self.user_name("a user name after ALTER USER")?;
            self.expect_word("set", "PASSWORD, ROLE or EMAIL after ALTER USER ...")?;
            let action = if self.eat_word("password") {
                AlterUserAction::Password(Secret(self.string("a password string after SET PASSWORD")?))
            } else if self.eat_word("role") {
                AlterUserAction::Role(self.role()?)
            } else if self.eat_word("email") {
                AlterUserAction::Email(self.string("an email string after SET EMAIL")?)
            } else {
                return Err(self.expected("PASSWORD, ROLE or EMAIL after ALTER USER ... SET"));
            };
            return Ok(Statement::AlterUser { name, action });
        }
        if self.eat_word("cluster") {
            let add = self.eat_word("add");
            if !add && !self.eat_word("remove") {
                return Err(self.expected("ADD NODE or REMOVE NODE after ALTER CLUSTER"));
            }
            let verb = if add { "ADD" } else { "REMOVE" };
            self.expect_word("node", &format!("after ALTER CLUSTER {verb}"))?;
            let id = match self.peek() {
                Token::Number(n, _) => n.parse::<u64>().ok().filter(|id| (1..=1023).contains(id)),
                _ => None,
            };
            let Some(id) = id else {
                return Err(self.expected(&format!("a node id (1-1023) after ALTER CLUSTER {verb} NODE")));
            };
            self.advance();
            return Ok(Statement::AlterCluster(if add {
                let address = self.string(&format!("the node's cluster address ('host:port') after ADD NODE {id}"))?;
                ClusterChange::AddNode { id, address }
            } else {
                ClusterChange::RemoveNode { id }
            }));
        }
        Err(self.unsupported("ALTER", "NAMESPACE, TABLE, USER or CLUSTER"))
    }

    fn alter_table(&mut self) -> PResult<Statement> {
        let table = self.table_ref("a table name after ALTER TABLE")?;
        let action = if self.eat_word("add") {
            self.eat_optional_word("column");
            let column = self.column_spec()?;
            if !self.at_end() {
                return Err(self.expected(&format!(
                    "NOT NULL, NULL, PRIMARY KEY, DEFAULT or the end of the statement in the definition of column '{}'",
                    column.name
                )));
            }
            AlterTableAction::AddColumn(column)
        } else if self.eat_word("drop") {
            self.eat_optional_word("column");
            AlterTableAction::DropColumn(self.ident("a column name after DROP COLUMN")?)
        } else if self.eat_word("rename") {
            self.expect_word("column", "after RENAME")?;
            let from = self.ident("a column name after RENAME COLUMN")?;
            self.expect_word("to", &format!("after RENAME COLUMN {from}"))?;
            let to = self.ident(&format!("a new column name after RENAME COLUMN {from} TO"))?;
            AlterTableAction::RenameColumn { from, to }
        } else if self.eat_word("modify") {
            self.eat_optional_word("column");
            let name = self.ident("a column name after MODIFY")?;
            self.eat_word("type");
            let data_type = self.column_type(&name)?;
            AlterTableAction::ModifyColumn { name, data_type }
        } else if self.eat_word("alter") {
            self.expect_word("column", "after ALTER TABLE ... ALTER")?;
            let name = self.ident("a column name after ALTER COLUMN")?;
            self.expect_word("type", &format!("after ALTER COLUMN {name}"))?;
            let data_type = self.column_type(&name)?;
            AlterTableAction::ModifyColumn { name, data_type }
        } else if self.eat_word("set") {
            self.expect_word("access", "after ALTER TABLE ... SET")?;
            self.expect_word("level", "after SET ACCESS")?;
            let level = match self.peek() {
                Token::Word(w) => word_name(w)?,
                Token::SingleQuotedString(s) => s.to_lowercase(),
                _ => return Err(self.expected("an access level after SET ACCESS LEVEL")),
            };
            self.advance();
            AlterTableAction::SetAccessLevel(level)
        } else {
            return Err(self.expected(&format!(
                "ADD, DROP, RENAME COLUMN, MODIFY, ALTER COLUMN or SET ACCESS LEVEL after ALTER TABLE {table}"
            )));
        };
        Ok(Statement::AlterTable { table, action })
    }

    fn drop(&mut self) -> PResult<Statement> {
        if self.eat_word("namespace") {
            let if_exists = self.if_exists()?;
            let name = self.ident("a namespace name after DROP NAMESPACE")?;
            let cascade = self.eat_word("cascade");
            return Ok(Statement::DropNamespace { name, if_exists, cascade });
        }
        let kind = if self.eat_word("table") {
            None
        } else if self.eat_word("shared") {
            self.expect_word("table", "after DROP SHARED")?;
            Some(TableKind::Shared)
        } else if self.eat_word("stream") {
            self.expect_word("table", "after DROP STREAM")?;
            Some(TableKind::Stream)
        } else if self.eat_word("user") {
            if !self.eat_word("table") {
                let if_exists = self.if_exists()?;
                let name = self.user_name("a user name after DROP USER")?;
                return Ok(Statement::DropUser { name, if_exists });
            }
            Some(TableKind::User)
        } else if self.eat_word("storage") {
            let if_exists = self.if_exists()?;
            let id = self.ident("a storage id after DROP STORAGE")?;
            return Ok(Statement::DropStorage { id, if_exists });
        } else {
            return Err(self.unsupported("DROP", "NAMESPACE, TABLE, USER or STORAGE"));
        };
        let if_exists = self.if_exists()?;
        let table = self.table_ref("a table name after DROP TABLE")?;
        Ok(Statement::DropTable { kind, table, if_exists })
    }

    fn show(&mut self) -> PResult<Statement> {
        let statement = if self.eat_word("namespaces") {
            Statement::ShowNamespaces
        } else if self.eat_word("tables") {
            let namespace = if self.eat_word("in") || self.eat_word("from") {
                Some(self.ident("a namespace name after SHOW TABLES IN")?)
            } else {
                None
            };
            Statement::ShowTables { namespace }
        } else if self.eat_word("stats") {
            self.expect_word("for", "after SHOW STATS")?;
            self.expect_word("table", "after SHOW STATS FOR")?;
            Statement::ShowStats { table: self.table_ref("a table name after SHOW STATS FOR TABLE")? }
        } else if self.eat_word("storages") {
            Statement::ShowStorages
        } else if self.eat_word("backup") {
            Statement::ShowBackup { path: self.string("a path string after SHOW BACKUP")? }
        } else {
            return Err(self.unsupported("SHOW", "NAMESPACES, TABLES, STATS, STORAGES or BACKUP"));
        };
        Ok(statement)
    }

    fn flush(&mut self) -> PResult<Statement> {
        if self.eat_word("table") {
            return Ok(Statement::FlushTable { table: self.table_ref("a table name after FLUSH TABLE")? });
        }
        if self.eat_word("all") {
            self.expect_word("tables", "after FLUSH ALL")?;
            let namespace = if self.eat_word("in") {
                Some(self.ident("a namespace name after FLUSH ALL TABLES IN")?)
            } else {
                None
            };
            return Ok(Statement::FlushAllTables { namespace });
        }
        Err(self.expected("TABLE or ALL TABLES after FLUSH"))
    }

    fn kill(&mut self) -> PResult<Statement> {
        if self.eat_word("job") {
            return Ok(Statement::KillJob { job_id: self.opaque_id("a job id after KILL JOB")? });
        }
        if self.eat_word("live") {
            self.expect_word("query", "after KILL LIVE")?;
            return Ok(Statement::KillLiveQuery { live_id: self.opaque_id("a live query id after KILL LIVE QUERY")? });
        }
        Err(self.expected("JOB or LIVE QUERY after KILL"))
    }

    fn backup_or_restore(&mut self, restore: bool) -> PResult<Statement> {
        let verb = if restore { "RESTORE" } else { "BACKUP" };
        self.expect_word("database", &format!("after {verb}"))?;
        let namespace = self.ident(&format!("a namespace name after {verb} DATABASE"))?;
        let preposition = if restore { "from" } else { "to" };
        self.expect_word(preposition, &format!("after {verb} DATABASE {namespace}"))?;
        let path = self
            .string(&format!("a path string after {verb} DATABASE {namespace} {}", preposition.to_ascii_uppercase()))?;
        Ok(if restore {
            Statement::RestoreDatabase { namespace, path }
        } else {
            Statement::BackupDatabase { namespace, path }
        })
    }

    /// `AS USER 'name' ( <statement> )` after EXECUTE.
    fn execute_as(&mut self) -> PResult<Statement> {
        self.expect_word("as", "after EXECUTE")?;
        self.expect_word("user", "after EXECUTE AS")?;
        let user = self.user_name("a user name after EXECUTE AS USER")?;
        if !self.eat(&Token::LParen) {
            return Err(self.expected(&format!("'(' before the statement to run as user '{user}'")));
        }
        if self.peek() == &Token::RParen {
            return err(format!("EXECUTE AS USER '{user}' needs a statement inside the parentheses"));
        }
        let outer = std::mem::replace(&mut self.nested, true);
        let statement = self.next_statement();
        self.nested = outer;
        let statement = statement?;
        if !self.eat(&Token::RParen) {
            return Err(match self.peek() {
                Token::EOF => self.expected("')' to close EXECUTE AS USER (...)"),
                _ => KalamError::Parse(format!(
                    "unexpected {} after the end of the {} statement inside EXECUTE AS USER (...)",
                    Self::describe(self.peek()),
                    statement_name(&statement)
                )),
            });
        }
        Ok(Statement::ExecuteAs { user, statement: Box::new(statement) })
    }

    fn create_user(&mut self) -> PResult<Statement> {
        // `CREATE USER WITH PASSWORD ...` is a forgotten name, not a user called "with".
        if self.peek_word("with") {
            return Err(self.expected("a user name after CREATE USER"));
        }
        let name = self.user_name("a user name after CREATE USER")?;
        self.eat_word("with");
        let (mut password, mut role, mut email) = (None, None, None);
        loop {
            if self.eat_word("password") {
                if password.is_some() {
                    return err("PASSWORD is given more than once");
                }
                password = Some(Secret(self.string("a password string after PASSWORD")?));
            } else if self.eat_word("role") {
                if role.is_some() {
                    return err("ROLE is given more than once");
                }
                role = Some(self.role()?);
            } else if self.eat_word("email") {
                if email.is_some() {
                    return err("EMAIL is given more than once");
                }
                email = Some(self.string("an email string after EMAIL")?);
            } else {
                break;
            }
        }
        let Some(password) = password else {
            if self.at_end() {
                return err(format!("CREATE USER '{name}' requires WITH PASSWORD '...'"));
            }
            return Err(self.expected("PASSWORD, ROLE or EMAIL"));
        };
        Ok(Statement::CreateUser { name, password, role, email })
    }

    /// A user name as a string or bare word, case preserved.
    fn user_name(&mut self, what: &str) -> PResult<String> {
        let name = match self.peek() {
            Token::SingleQuotedString(s) | Token::Word(Word { value: s, .. }) => s.clone(),
            _ => return Err(self.expected(what)),
        };
        if name.is_empty() {
            return err("user name must not be empty");
        }
        self.advance();
        Ok(name)
    }

    /// A job or live-query id: a string, bare word or number, case preserved.
    fn opaque_id(&mut self, what: &str) -> PResult<String> {
        let id = match self.peek() {
            Token::SingleQuotedString(s) | Token::Word(Word { value: s, .. }) | Token::Number(s, _) => s.clone(),
            _ => return Err(self.expected(what)),
        };
        if id.is_empty() {
            return Err(self.expected(what));
        }
        self.advance();
        Ok(id)
    }

    fn role(&mut self) -> PResult<Role> {
        let text = match self.peek() {
            Token::SingleQuotedString(s) | Token::Word(Word { value: s, .. }) => s.to_lowercase(),
            _ => return Err(self.expected("a role (user, service, dba or system)")),
        };
        let role = text
            .parse::<Role>()
            .map_err(|_| KalamError::Parse(format!("unknown role '{text}' (expected user, service, dba or system)")))?;
        self.advance();
        Ok(role)
    }
}

/// The name a word stands for; a quoted name with capitals is refused (see the module docs).
fn word_name(word: &Word) -> PResult<String> {
    match word.quote_style {
        None => Ok(word.value.to_ascii_lowercase()),
        Some(_) if word.value.is_empty() => err("empty quoted name \"\""),
        Some(_) if word.value.chars().any(char::is_uppercase) => err(format!(
            "quoted name \"{0}\" has capital letters, but KalamDB names are lower-case: quoted names are \
             taken as written, unquoted ones are lower-cased (write {0} without quotes)",
            word.value
        )),
        Some(_) => Ok(word.value.clone()),
    }
}

/// What a statement is called in messages: `CREATE TABLE`, `SELECT`, ...
fn statement_name(statement: &Statement) -> String {
    let name = match statement {
        Statement::CreateNamespace { .. } => "CREATE NAMESPACE",
        Statement::AlterNamespace { .. } => "ALTER NAMESPACE",
        Statement::DropNamespace { .. } => "DROP NAMESPACE",
        Statement::ShowNamespaces => "SHOW NAMESPACES",
        Statement::Use { .. } => "USE",
        Statement::CreateTable(_) => "CREATE TABLE",
        Statement::AlterTable { .. } => "ALTER TABLE",
        Statement::DropTable { .. } => "DROP TABLE",
        Statement::ShowTables { .. } => "SHOW TABLES",
        Statement::DescribeTable { .. } => "DESCRIBE",
        Statement::ShowStats { .. } => "SHOW STATS",
        Statement::CreateUser { .. } => "CREATE USER",
        Statement::AlterUser { .. } => "ALTER USER",
        Statement::DropUser { .. } => "DROP USER",
        Statement::ExecuteAs { .. } => "EXECUTE AS USER",
        Statement::FlushTable { .. } => "FLUSH TABLE",
        Statement::FlushAllTables { .. } => "FLUSH ALL TABLES",
        Statement::KillJob { .. } => "KILL JOB",
        Statement::KillLiveQuery { .. } => "KILL LIVE QUERY",
        Statement::CreateStorage(_) => "CREATE STORAGE",
        Statement::DropStorage { .. } => "DROP STORAGE",
        Statement::ShowStorages => "SHOW STORAGES",
        Statement::AlterCluster(_) => "ALTER CLUSTER",
        Statement::BackupDatabase { .. } => "BACKUP DATABASE",
        Statement::RestoreDatabase { .. } => "RESTORE DATABASE",
        Statement::ShowBackup { .. } => "SHOW BACKUP",
        Statement::Sql(sql) => return sql.to_string().split_whitespace().next().unwrap_or("SQL").to_ascii_uppercase(),
    };
    name.to_string()
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
        KalamError::Parse(format!(
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

/// sqlparser reads `CURRENT_USER` as a keyword that takes no parentheses; KalamDB documents
/// `CURRENT_USER()`, so the empty parentheses are dropped before parsing.
fn normalize_current_user(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let significant = |t: &TokenWithSpan| !matches!(t.token, Token::Whitespace(_));
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        out.push(tokens[i].clone());
        i += 1;
        if is_word(&out[out.len() - 1].token, "current_user") {
            let mut rest = (i..tokens.len()).filter(|&j| significant(&tokens[j]));
            if let (Some(open), Some(close)) = (rest.next(), rest.next())
                && tokens[open].token == Token::LParen
                && tokens[close].token == Token::RParen
            {
                i = close + 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use datafusion::sql::sqlparser::dialect::GenericDialect;

    fn parse(sql: &str) -> Result<Statement> {
        Script::tokenize(sql)?.single()
    }

    fn p(sql: &str) -> Statement {
        let statement = parse(sql).unwrap_or_else(|e| panic!("{sql:?} failed: {e}"));
        // Every statement prints back to SQL that parses to the same statement.
        let printed = statement.to_string();
        assert_eq!(parse(&printed).unwrap_or_else(|e| panic!("{printed:?} failed: {e}")), statement, "{printed}");
        statement
    }

    fn e(sql: &str) -> String {
        match parse(sql) {
            Ok(stmt) => panic!("{sql:?} unexpectedly parsed as {stmt:?}"),
            Err(KalamError::Parse(message)) => message,
            Err(other) => panic!("{sql:?}: not a parse error: {other:?}"),
        }
    }

    fn sql(text: &str) -> Statement {
        let statement = datafusion::sql::sqlparser::parser::Parser::parse_sql(&GenericDialect, text).unwrap().remove(0);
        Statement::Sql(Box::new(statement))
    }

    fn count(text: &str) -> usize {
        Script::tokenize(text).unwrap().len()
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

    // ---- scripts ----

    #[test]
    fn scripts_split_at_semicolon_tokens() {
        assert_eq!(count("SELECT 1; SELECT 2;"), 2);
        assert_eq!(count("  SELECT 1 ;; ; SELECT 2  "), 2);
        assert_eq!(count(""), 0);
        assert_eq!(count(" ; \n ; "), 0);
        assert_eq!(count("-- just a comment; really\n/* and ; another */"), 0);
        // Quotes, comments and dollar quoting are the tokenizer's.
        let script = Script::tokenize(
            "INSERT INTO t VALUES ('a;b', 'it''s; ok'); SELECT \"we;ird\" FROM t -- a; b\n; /* c; d */ SELECT $$;$$",
        )
        .unwrap();
        assert_eq!(
            script.statements().unwrap(),
            vec![
                sql("INSERT INTO t VALUES ('a;b', 'it''s; ok')"),
                sql("SELECT \"we;ird\" FROM t"),
                sql("SELECT $$;$$"),
            ]
        );
        assert_eq!(
            Script::tokenize("CREATE NAMESPACE app; USE app; SELECT * FROM t;").unwrap().statements().unwrap(),
            vec![
                Statement::CreateNamespace { name: "app".into(), if_not_exists: false },
                Statement::Use { namespace: "app".into() },
                sql("SELECT * FROM t"),
            ]
        );
    }

    #[test]
    fn a_syntax_error_stays_in_its_statement() {
        let script = Script::tokenize("SELECT 1; SELEC 2; SELECT 3").unwrap();
        assert_eq!(script.len(), 3);
        assert!(script.statement(0).is_ok());
        assert!(script.statement(1).is_err());
        assert!(script.statement(2).is_ok());
    }

    #[test]
    fn unterminated_text_fails_to_tokenize() {
        for text in ["SELECT 'abc; SELECT 2", "SELECT \"abc; x", "SELECT 1 /* x; y"] {
            let message = Script::tokenize(text).err().unwrap_or_else(|| panic!("{text}")).to_string();
            assert!(message.contains("unterminated") && message.contains("column"), "{text}: {message}");
        }
    }

    // ---- pass-through and dispatch ----

    #[test]
    fn passthrough_sql() {
        for text in [
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
            "-- hello\nSELECT 1",
            "/* c */ insert into t values (1)",
        ] {
            assert_eq!(p(text), sql(text), "{text}");
        }
        assert_eq!(p("  SELECT 1 ;  "), sql("SELECT 1"));
        assert_eq!(e("SELECT 1 2"), "unexpected '2' after the end of the SELECT statement");
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
        assert_eq!(e(""), "expected a statement");
        assert_eq!(e("-- only a comment"), "expected a statement");
    }

    #[test]
    fn trailing_tokens_and_semicolons() {
        assert_eq!(p("SHOW NAMESPACES;"), Statement::ShowNamespaces);
        assert_eq!(p("SHOW NAMESPACES;;"), Statement::ShowNamespaces);
        assert_eq!(e("SHOW NAMESPACES extra"), "unexpected 'extra' after the end of the SHOW NAMESPACES statement");
        assert_eq!(e("USE app; SELECT 1"), "expected one statement");
        assert_err("CREATE NAMESPACE a b", "unexpected 'b' after the end of the CREATE NAMESPACE statement");
    }

    // ---- namespaces ----

    #[test]
    fn namespaces() {
        assert_eq!(p("CREATE NAMESPACE App"), Statement::CreateNamespace { name: "app".into(), if_not_exists: false });
        assert_eq!(
            p("create namespace if not exists \"my_ns\""),
            Statement::CreateNamespace { name: "my_ns".into(), if_not_exists: true }
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
        let ct = create_table("CREATE TABLE MyTable (\"col\" INT)");
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
        assert_err("CREATE TABLE t (a INT UNIQUE)", "expected ',' or ')' after column 'a', found 'UNIQUE'");
        assert_err("CREATE TABLE t (a INT, A TEXT)", "duplicate column name 'a'");
        assert_err("CREATE TABLE t (a INT, \"a\" TEXT)", "duplicate column name 'a'");
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
        assert_err("CREATE TABLE t (c INT DEFAULT - x)", "expected a DEFAULT value for column 'c', found '-'");
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
                password: Secret("S3cr'et".into()),
                role: Some(Role::Dba),
                email: Some("Alice@Example.com".into()),
            }
        );
        assert_eq!(
            p("create user Bob with password 'pw' email 'b@x.io' role 'SERVICE';"),
            Statement::CreateUser {
                name: "Bob".into(),
                password: Secret("pw".into()),
                role: Some(Role::Service),
                email: Some("b@x.io".into()),
            }
        );
        assert_eq!(
            p("CREATE USER \"Carol\" WITH PASSWORD 'pw' ROLE System"),
            Statement::CreateUser {
                name: "Carol".into(),
                password: Secret("pw".into()),
                role: Some(Role::System),
                email: None
            }
        );
        assert_eq!(
            p("CREATE USER dave WITH PASSWORD 'pw' ROLE User"),
            Statement::CreateUser {
                name: "dave".into(),
                password: Secret("pw".into()),
                role: Some(Role::User),
                email: None
            }
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
            Statement::AlterUser { name: "Alice".into(), action: AlterUserAction::Password(Secret("NewPw".into())) }
        );
        assert_eq!(
            p("alter user Alice set role DBA"),
            Statement::AlterUser { name: "Alice".into(), action: AlterUserAction::Role(Role::Dba) }
        );
        assert_eq!(
            p("ALTER USER 'alice' SET EMAIL 'A@b.c'"),
            Statement::AlterUser { name: "alice".into(), action: AlterUserAction::Email("A@b.c".into()) }
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
                statement: Box::new(sql("SELECT * FROM t WHERE x = ')' AND f(a, (b)) > 1")),
            }
        );
        assert_eq!(
            p("execute as user bob (INSERT INTO t VALUES (1) /* ) */ -- )\n);"),
            Statement::ExecuteAs { user: "bob".into(), statement: Box::new(sql("INSERT INTO t VALUES (1)")) }
        );
        // KalamDB's own statements parse inside too (the executor refuses them).
        assert_eq!(
            p("EXECUTE AS USER bob (CREATE NAMESPACE x)"),
            Statement::ExecuteAs {
                user: "bob".into(),
                statement: Box::new(Statement::CreateNamespace { name: "x".into(), if_not_exists: false }),
            }
        );
        assert_err("EXECUTE AS USER 'a' ()", "EXECUTE AS USER 'a' needs a statement inside the parentheses");
        assert_err("EXECUTE AS USER 'a' (  -- nothing\n )", "needs a statement");
        assert_err(
            "EXECUTE AS USER 'a' (SELECT (1)",
            "expected ')' to close EXECUTE AS USER (...), found end of input",
        );
        assert_err("EXECUTE AS USER 'a' (SELECT 1) x", "unexpected 'x' after the end of the EXECUTE AS USER statement");
        assert_err(
            "EXECUTE AS USER 'a' (CREATE NAMESPACE x y)",
            "unexpected 'y' after the end of the CREATE NAMESPACE",
        );
        assert_err(
            "EXECUTE AS USER 'a' SELECT 1",
            "expected '(' before the statement to run as user 'a', found 'SELECT'",
        );
        assert_err("EXECUTE AS 'a' (SELECT 1)", "expected USER after EXECUTE AS, found string 'a'");
        assert_err("EXECUTE AS USER 'a' (SELECT 1 /* ) */", "expected ')' to close EXECUTE AS USER");
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
        let shared = p("CREATE STORAGE nfs TYPE 'filesystem' PATH '/mnt/cold' SHARED");
        let Statement::CreateStorage(c) = &shared else { panic!("not CREATE STORAGE") };
        assert_eq!(c.settings, vec![opt("path", s("/mnt/cold")), opt("shared", Literal::Bool(true))]);
        assert_eq!(p(&shared.to_string()), shared, "printed back for the cluster log, it reads the same");
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
        assert_eq!(
            p("alter cluster add node 4 '10.0.0.4:9090'"),
            Statement::AlterCluster(ClusterChange::AddNode { id: 4, address: "10.0.0.4:9090".into() })
        );
        assert_eq!(p("ALTER CLUSTER REMOVE NODE 2"), Statement::AlterCluster(ClusterChange::RemoveNode { id: 2 }));
        assert!(parse("ALTER CLUSTER ADD NODE 0 'a:1'").is_err());
        assert!(parse("ALTER CLUSTER DROP NODE 2").is_err());
        assert_err("CREATE STORAGE x", "expected TYPE after CREATE STORAGE x");
        assert_err("CREATE STORAGE x TYPE 's3' BUCKET b", "expected a string after BUCKET");
        assert_err("CREATE STORAGE x TYPE 's3' BUCKET 'a' BUCKET 'b'", "option 'bucket' is given more than once");
        assert_err("CREATE STORAGE x TYPE 'filesystem' PATH '/a' COLOR 'red'", "expected PATH, SHARED, BUCKET");
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

    // ---- names ----

    #[test]
    fn names_follow_datafusion() {
        // Unquoted names are lower-cased; quoted ones are taken as written.
        assert_eq!(
            p("CREATE NAMESPACE \"a\"\"b\""),
            Statement::CreateNamespace { name: "a\"b".into(), if_not_exists: false }
        );
        assert_eq!(
            p("DROP TABLE \"app\".\"items\""),
            Statement::DropTable { kind: None, table: tref(Some("app"), "items"), if_exists: false }
        );
        for text in ["CREATE NAMESPACE \"MyNs\"", "CREATE TABLE \"Items\" (a INT)", "CREATE TABLE t (\"Col\" INT)"] {
            assert_err(text, "has capital letters, but KalamDB names are lower-case");
        }
        assert_err("CREATE NAMESPACE \"\"", "empty quoted name");
        assert_err("CREATE NAMESPACE €", "expected a namespace name after CREATE NAMESPACE, found '€'");
        // Quoted keywords are plain names; so are unquoted ones where a name is expected.
        assert_eq!(
            p("CREATE NAMESPACE \"if\""),
            Statement::CreateNamespace { name: "if".into(), if_not_exists: false }
        );
        assert_eq!(p("CREATE NAMESPACE if"), Statement::CreateNamespace { name: "if".into(), if_not_exists: false });
        assert_eq!(default_of("'multi\nline €'"), DefaultSpec::Literal(s("multi\nline €")));
        assert_eq!(
            p("/* c */ CrEaTe -- x\n NameSpace a"),
            Statement::CreateNamespace { name: "a".into(), if_not_exists: false }
        );
    }

    #[test]
    fn ident_names() {
        assert_eq!(ident_name(&Ident::new("Title")), "title");
        assert_eq!(ident_name(&Ident::with_quote('"', "Title")), "Title");
    }

    #[test]
    fn passwords_stay_out_of_debug_output() {
        let statement = p("CREATE USER a WITH PASSWORD 'hunter2'");
        assert!(!format!("{statement:?}").contains("hunter2"));
        let statement = p("ALTER USER a SET PASSWORD 'hunter2'");
        assert!(!format!("{statement:?}").contains("hunter2"));
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
                let _ = Script::tokenize(&sample[..i]).and_then(|s| s.statements());
                let _ = Script::tokenize(&sample[i..]).and_then(|s| s.statements());
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
            let _ = Script::tokenize(&sql).and_then(|s| s.statements());
        }
    }
}
