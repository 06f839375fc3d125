//! Tokens → [`Query`]: a hand-written recursive-descent parser with precedence climbing.
//!
//! Limits keep hostile input from exhausting the stack or memory: the SQL text is at most
//! [`MAX_SQL_LEN`] bytes, and both the parser's recursion and the height of any expression tree
//! are at most [`MAX_DEPTH`]. Exceeding either is a syntax error, never a panic.
//!
//! Constructs outside the language are recognised where they start and reported as
//! [`QueryError::Unsupported`] naming them, rather than as a confusing "expected ...".

use crate::ast::*;
use crate::error::{QueryError, Result};
use crate::lexer::{Tok, Token, tokenize};
use crate::types::{DataType, MAX_DECIMAL_PRECISION};
use crate::value::{parse_date, parse_timestamp};

/// Longest SQL text accepted, in bytes.
pub const MAX_SQL_LEN: usize = 256 * 1024;

/// Deepest nesting accepted: parser recursion (parentheses, function arguments) and expression
/// tree height (long `a OR b OR ...` chains count one level per operator).
pub const MAX_DEPTH: usize = 128;

// Binding strengths of the operators looser than arithmetic, as sqlparser's (see `p_sub`).
const BIND_OR: u8 = 5;
const BIND_AND: u8 = 10;
const BIND_NOT: u8 = 15;
const BIND_IS: u8 = 17;
const BIND_LIKE: u8 = 19;
const BIND_CMP: u8 = 20;

/// Parse one `SELECT` statement (an optional trailing `;` is allowed).
pub fn parse(sql: &str) -> Result<Query> {
    if sql.len() > MAX_SQL_LEN {
        return Err(QueryError::syntax(0, format!("query is {} bytes; the limit is {MAX_SQL_LEN}", sql.len())));
    }
    let tokens = tokenize(sql)?;
    let mut p = Parser { tokens, i: 0, depth: 0, questions: 0 };
    let q = p.query()?;
    if p.eat_sym(";") && !matches!(p.peek(), Tok::Eof) {
        return Err(QueryError::unsupported("multiple statements", Some(p.pos())));
    }
    match p.peek() {
        Tok::Eof => Ok(q),
        Tok::Word(w) if matches!(w.as_str(), "union" | "intersect" | "except") => {
            Err(QueryError::unsupported(w.to_uppercase(), Some(p.pos())))
        }
        Tok::Word(w) if w == "window" => Err(QueryError::unsupported("window functions", Some(p.pos()))),
        Tok::Word(w) if w == "fetch" => Err(QueryError::unsupported("FETCH (use LIMIT)", Some(p.pos()))),
        _ => Err(p.unexpected("end of query")),
    }
}

/// An expression and the height of its tree.
struct P {
    e: Expr,
    h: usize,
}

struct Parser {
    tokens: Vec<Token>,
    i: usize,
    depth: usize,
    questions: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.tokens[self.i].tok
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.tokens[(self.i + n).min(self.tokens.len() - 1)].tok
    }

    fn pos(&self) -> usize {
        self.tokens[self.i].pos
    }

    fn advance(&mut self) -> Tok {
        let t = self.tokens[self.i].tok.clone();
        if self.i + 1 < self.tokens.len() {
            self.i += 1;
        }
        t
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Tok::Word(x) if x == w)
    }

    fn is_word_at(&self, n: usize, w: &str) -> bool {
        matches!(self.peek_at(n), Tok::Word(x) if x == w)
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if self.is_word(w) {
            self.advance();
            true
        } else {
            false
        }
    }

    fn eat_sym(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Tok::Sym(x) if *x == s) {
            self.advance();
            true
        } else {
            false
        }
    }

    fn describe(t: &Tok) -> String {
        match t {
            Tok::Word(w) => format!("'{w}'"),
            Tok::Quoted(w) => format!("\"{w}\""),
            Tok::Str(s) => format!("string '{s}'"),
            Tok::Int(n) | Tok::Float(n) => format!("number {n}"),
            Tok::Param(_) => "a parameter".into(),
            Tok::Sym(s) => format!("'{s}'"),
            Tok::Eof => "end of query".into(),
        }
    }

    fn unexpected(&self, expected: &str) -> QueryError {
        QueryError::syntax(self.pos(), format!("expected {expected}, found {}", Self::describe(self.peek())))
    }

    fn expect_word(&mut self, w: &str) -> Result<()> {
        if self.eat_word(w) { Ok(()) } else { Err(self.unexpected(&w.to_uppercase())) }
    }

    fn expect_sym(&mut self, s: &str) -> Result<()> {
        if self.eat_sym(s) { Ok(()) } else { Err(self.unexpected(&format!("'{s}'"))) }
    }

    /// An identifier: a non-reserved word or a quoted name.
    fn ident(&mut self, what: &str) -> Result<String> {
        match self.peek().clone() {
            Tok::Word(w) if !RESERVED.contains(&w.as_str()) => {
                self.advance();
                Ok(w)
            }
            Tok::Quoted(q) => {
                self.advance();
                Ok(q)
            }
            _ => Err(self.unexpected(what)),
        }
    }

    /// `[AS] alias` where a bare alias is any non-reserved word.
    fn alias(&mut self) -> Result<Option<String>> {
        if self.eat_word("as") {
            return self.ident("an alias after AS").map(Some);
        }
        match self.peek() {
            Tok::Word(w) if !RESERVED.contains(&w.as_str()) => self.ident("an alias").map(Some),
            Tok::Quoted(_) => self.ident("an alias").map(Some),
            _ => Ok(None),
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(QueryError::syntax(self.pos(), format!("query nests deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn node(&self, e: Expr, h: usize) -> Result<P> {
        if h > MAX_DEPTH {
            return Err(QueryError::syntax(self.pos(), format!("expression nests deeper than {MAX_DEPTH} levels")));
        }
        Ok(P { e, h })
    }

    // -----------------------------------------------------------------------------------------
    // Statement

    fn query(&mut self) -> Result<Query> {
        match self.peek().clone() {
            Tok::Word(w) if w == "select" => {}
            Tok::Word(w) if w == "with" => {
                return Err(QueryError::unsupported("common table expressions (WITH)", Some(self.pos())));
            }
            Tok::Word(w)
                if matches!(
                    w.as_str(),
                    "insert" | "update" | "delete" | "create" | "drop" | "alter" | "show" | "describe" | "values"
                ) =>
            {
                return Err(QueryError::unsupported(
                    format!("{} statements (only SELECT is allowed here)", w.to_uppercase()),
                    Some(self.pos()),
                ));
            }
            Tok::Sym("(") => return Err(QueryError::unsupported("parenthesised queries", Some(self.pos()))),
            _ => return Err(self.unexpected("SELECT")),
        }
        self.advance();
        let distinct = if self.eat_word("distinct") {
            if self.is_word("on") {
                return Err(QueryError::unsupported("DISTINCT ON", Some(self.pos())));
            }
            true
        } else {
            self.eat_word("all");
            false
        };
        let mut projection = vec![self.select_item()?];
        while self.eat_sym(",") {
            projection.push(self.select_item()?);
        }
        let from = if self.eat_word("from") { Some(self.parse_from()?) } else { None };
        let selection = if self.eat_word("where") { Some(self.expr()?) } else { None };
        let mut group_by = Vec::new();
        if self.eat_word("group") {
            self.expect_word("by")?;
            if self.is_word("rollup") || self.is_word("cube") || self.is_word("grouping") {
                return Err(QueryError::unsupported("ROLLUP, CUBE and GROUPING SETS", Some(self.pos())));
            }
            group_by.push(self.expr()?);
            while self.eat_sym(",") {
                group_by.push(self.expr()?);
            }
        }
        let having = if self.eat_word("having") { Some(self.expr()?) } else { None };
        if self.is_word("window") || self.is_word("qualify") {
            return Err(QueryError::unsupported("window functions", Some(self.pos())));
        }
        let mut order_by = Vec::new();
        if self.eat_word("order") {
            self.expect_word("by")?;
            loop {
                let expr = self.expr()?;
                let desc = if self.eat_word("desc") {
                    true
                } else {
                    self.eat_word("asc");
                    false
                };
                let nulls_first = if self.eat_word("nulls") {
                    if self.eat_word("first") {
                        Some(true)
                    } else {
                        self.expect_word("last")?;
                        Some(false)
                    }
                } else {
                    None
                };
                order_by.push(OrderByItem { expr, desc, nulls_first });
                if !self.eat_sym(",") {
                    break;
                }
            }
        }
        let (mut limit, mut offset) = (None, None);
        for _ in 0..2 {
            if limit.is_none() && self.eat_word("limit") {
                limit = Some(self.count("LIMIT")?);
            } else if offset.is_none() && self.eat_word("offset") {
                offset = Some(self.count("OFFSET")?);
                let _ = self.eat_word("rows") || self.eat_word("row");
            }
        }
        Ok(Query { distinct, projection, from, selection, group_by, having, order_by, limit, offset })
    }

    fn count(&mut self, what: &str) -> Result<u64> {
        match self.peek().clone() {
            Tok::Int(n) => {
                let pos = self.pos();
                self.advance();
                n.parse().map_err(|_| QueryError::syntax(pos, format!("{what} {n} is out of range")))
            }
            Tok::Param(_) => Err(QueryError::unsupported(format!("{what} parameters"), Some(self.pos()))),
            _ => Err(self.unexpected(&format!("a non-negative integer after {what}"))),
        }
    }

    fn select_item(&mut self) -> Result<SelectItem> {
        if self.eat_sym("*") {
            if self.is_word("except") || self.is_word("exclude") || self.is_word("replace") {
                return Err(QueryError::unsupported("wildcard options (EXCLUDE, EXCEPT, REPLACE)", Some(self.pos())));
            }
            return Ok(SelectItem::Wildcard);
        }
        if matches!(self.peek(), Tok::Word(_) | Tok::Quoted(_))
            && matches!(self.peek_at(1), Tok::Sym("."))
            && matches!(self.peek_at(2), Tok::Sym("*"))
        {
            let t = self.ident("a table name")?;
            self.advance();
            self.advance();
            return Ok(SelectItem::QualifiedWildcard(t));
        }
        let expr = self.expr()?;
        let alias = self.alias()?;
        Ok(SelectItem::Expr { expr, alias })
    }

    fn table_ref(&mut self) -> Result<TableRef> {
        if matches!(self.peek(), Tok::Sym("(")) {
            return Err(QueryError::unsupported("subqueries", Some(self.pos())));
        }
        let first = self.ident("a table name")?;
        if matches!(self.peek(), Tok::Sym("(")) {
            return Err(QueryError::unsupported("table functions", Some(self.pos())));
        }
        let (namespace, name) =
            if self.eat_sym(".") { (Some(first), self.ident("a table name after '.'")?) } else { (None, first) };
        if matches!(self.peek(), Tok::Sym(".")) {
            return Err(QueryError::unsupported("three-part table names", Some(self.pos())));
        }
        let alias = self.alias()?;
        Ok(TableRef { namespace, name, alias })
    }

    fn parse_from(&mut self) -> Result<FromClause> {
        let base = self.table_ref()?;
        let mut joins = Vec::new();
        loop {
            let pos = self.pos();
            let kind = if self.eat_word("join") {
                JoinKind::Inner
            } else if self.is_word("inner") {
                self.advance();
                self.expect_word("join")?;
                JoinKind::Inner
            } else if self.is_word("left") {
                self.advance();
                if self.eat_word("semi") || self.eat_word("anti") {
                    return Err(QueryError::unsupported("semi and anti joins", Some(pos)));
                }
                self.eat_word("outer");
                self.expect_word("join")?;
                JoinKind::Left
            } else if self.is_word("right") {
                return Err(QueryError::unsupported("RIGHT JOIN", Some(pos)));
            } else if self.is_word("full") {
                return Err(QueryError::unsupported("FULL JOIN", Some(pos)));
            } else if self.is_word("cross") {
                return Err(QueryError::unsupported("CROSS JOIN", Some(pos)));
            } else if self.is_word("natural") {
                return Err(QueryError::unsupported("NATURAL JOIN", Some(pos)));
            } else if matches!(self.peek(), Tok::Sym(",")) {
                return Err(QueryError::unsupported("comma-separated FROM lists (use JOIN ... ON)", Some(pos)));
            } else {
                break;
            };
            let table = self.table_ref()?;
            if self.is_word("using") {
                return Err(QueryError::unsupported("JOIN ... USING (use JOIN ... ON)", Some(self.pos())));
            }
            if !self.eat_word("on") {
                return Err(self.unexpected("ON after the joined table"));
            }
            let on = self.expr()?;
            joins.push(Join { kind, table, on });
        }
        Ok(FromClause { base, joins })
    }

    // -----------------------------------------------------------------------------------------
    // Expressions

    /// Parse a full expression.
    fn expr(&mut self) -> Result<Expr> {
        Ok(self.p_expr()?.e)
    }

    fn p_expr(&mut self) -> Result<P> {
        self.p_sub(0)
    }

    fn binary(&self, l: P, op: BinaryOp, r: P) -> Result<P> {
        let h = 1 + l.h.max(r.h);
        self.node(Expr::Binary { left: Box::new(l.e), op, right: Box::new(r.e) }, h)
    }

    /// An expression whose operators bind tighter than `prec` (sqlparser's precedence climbing,
    /// with its binding strengths, so that DataFusion reads the same SQL the same way): OR 5,
    /// AND 10, prefix NOT 15, IS 17, LIKE/ILIKE 19, comparisons, IN and BETWEEN 20; arithmetic
    /// and `||` bind tighter still ([`Parser::p_add`]). So `a LIKE b = c` is `a LIKE (b = c)`
    /// and `a = NOT b = c` is `a = (NOT (b = c))`, as in DataFusion.
    fn p_sub(&mut self, prec: u8) -> Result<P> {
        self.enter()?;
        let r = self.p_sub_inner(prec);
        self.depth -= 1;
        r
    }

    fn p_sub_inner(&mut self, prec: u8) -> Result<P> {
        // A leading NOT is read by `primary`, below `p_add`.
        let mut l = self.p_add()?;
        loop {
            let next = self.next_binding();
            if next <= prec {
                return Ok(l);
            }
            l = self.p_infix(l, next)?;
        }
    }

    /// The binding strength of the operator at the cursor (0 if none).
    fn next_binding(&self) -> u8 {
        match self.peek() {
            Tok::Sym("=" | "<>" | "!=" | "<" | "<=" | ">" | ">=") => BIND_CMP,
            Tok::Word(w) => match w.as_str() {
                "or" => BIND_OR,
                "and" => BIND_AND,
                "is" => BIND_IS,
                "in" | "between" => BIND_CMP,
                "like" | "ilike" | "similar" => BIND_LIKE,
                "not" => match self.peek_at(1) {
                    Tok::Word(w) if matches!(w.as_str(), "like" | "ilike" | "similar") => BIND_LIKE,
                    // `NOT IN`, `NOT BETWEEN`, and anything else after an operand (reported by
                    // `p_predicate` as what it is not).
                    _ => BIND_CMP,
                },
                _ => 0,
            },
            _ => 0,
        }
    }

    /// The operator at the cursor, applied to `l`; its right side binds tighter than `prec`.
    fn p_infix(&mut self, l: P, prec: u8) -> Result<P> {
        let op = match self.peek() {
            Tok::Sym("=") => BinaryOp::Eq,
            Tok::Sym("<>") | Tok::Sym("!=") => BinaryOp::NotEq,
            Tok::Sym("<") => BinaryOp::Lt,
            Tok::Sym("<=") => BinaryOp::LtEq,
            Tok::Sym(">") => BinaryOp::Gt,
            Tok::Sym(">=") => BinaryOp::GtEq,
            Tok::Word(w) if w == "or" => BinaryOp::Or,
            Tok::Word(w) if w == "and" => BinaryOp::And,
            Tok::Word(w) if w == "is" => {
                self.advance();
                let negated = self.eat_word("not");
                if self.is_word("true") || self.is_word("false") || self.is_word("unknown") {
                    return Err(QueryError::unsupported("IS TRUE / IS FALSE / IS UNKNOWN", Some(self.pos())));
                }
                if self.is_word("distinct") {
                    return Err(QueryError::unsupported("IS [NOT] DISTINCT FROM", Some(self.pos())));
                }
                self.expect_word("null")?;
                let h = l.h + 1;
                return self.node(Expr::IsNull { expr: Box::new(l.e), negated }, h);
            }
            _ => {
                let negated = self.eat_word("not");
                return self.p_predicate(l, negated);
            }
        };
        self.advance();
        if op.is_comparison() && (self.is_word("any") || self.is_word("all") || self.is_word("some")) {
            return Err(QueryError::unsupported("ANY / ALL comparisons", Some(self.pos())));
        }
        let r = self.p_sub(prec)?;
        self.binary(l, op, r)
    }

    /// After `e [NOT]`: `IN (...)`, `BETWEEN a AND b`, `LIKE p`, `ILIKE p`.
    fn p_predicate(&mut self, l: P, negated: bool) -> Result<P> {
        let pos = self.pos();
        let Tok::Word(w) = self.advance() else { return Err(self.unexpected("IN, BETWEEN, LIKE or ILIKE")) };
        match w.as_str() {
            "in" => {
                self.expect_sym("(")?;
                if self.is_word("select") || self.is_word("with") {
                    return Err(QueryError::unsupported("subqueries", Some(self.pos())));
                }
                self.enter()?;
                let mut h = l.h;
                let mut list = Vec::new();
                loop {
                    let item = self.p_expr()?;
                    h = h.max(item.h);
                    list.push(item.e);
                    if !self.eat_sym(",") {
                        break;
                    }
                }
                self.depth -= 1;
                self.expect_sym(")")?;
                self.node(Expr::InList { expr: Box::new(l.e), list, negated }, h + 1)
            }
            "between" => {
                if self.is_word("symmetric") {
                    return Err(QueryError::unsupported("BETWEEN SYMMETRIC", Some(self.pos())));
                }
                let low = self.p_sub(BIND_CMP)?;
                self.expect_word("and")?;
                let high = self.p_sub(BIND_CMP)?;
                let h = 1 + l.h.max(low.h).max(high.h);
                self.node(
                    Expr::Between { expr: Box::new(l.e), low: Box::new(low.e), high: Box::new(high.e), negated },
                    h,
                )
            }
            "like" | "ilike" => {
                let pattern = self.p_sub(BIND_LIKE)?;
                if self.is_word("escape") {
                    return Err(QueryError::unsupported("LIKE ... ESCAPE", Some(self.pos())));
                }
                let h = 1 + l.h.max(pattern.h);
                self.node(
                    Expr::Like {
                        expr: Box::new(l.e),
                        pattern: Box::new(pattern.e),
                        negated,
                        case_insensitive: w == "ilike",
                    },
                    h,
                )
            }
            "similar" => Err(QueryError::unsupported("SIMILAR TO", Some(pos))),
            _ => Err(QueryError::syntax(pos, format!("expected IN, BETWEEN, LIKE or ILIKE, found '{w}'"))),
        }
    }

    fn p_add(&mut self) -> Result<P> {
        let mut l = self.p_mul()?;
        loop {
            let op = if self.eat_sym("+") {
                BinaryOp::Plus
            } else if self.eat_sym("-") {
                BinaryOp::Minus
            } else {
                break;
            };
            let r = self.p_mul()?;
            l = self.binary(l, op, r)?;
        }
        Ok(l)
    }

    fn p_mul(&mut self) -> Result<P> {
        let mut l = self.p_unary()?;
        loop {
            let op = if self.eat_sym("*") {
                BinaryOp::Multiply
            } else if self.eat_sym("/") {
                BinaryOp::Divide
            } else if self.eat_sym("%") {
                BinaryOp::Modulo
            } else if self.eat_sym("||") {
                BinaryOp::Concat
            } else {
                break;
            };
            let r = self.p_unary()?;
            l = self.binary(l, op, r)?;
        }
        Ok(l)
    }

    fn p_unary(&mut self) -> Result<P> {
        if matches!(self.peek(), Tok::Sym("-") | Tok::Sym("+")) {
            let minus = matches!(self.advance(), Tok::Sym("-"));
            // `-` directly before a number is part of the literal (so i64::MIN is writable).
            if minus && matches!(self.peek(), Tok::Int(_) | Tok::Float(_)) && !matches!(self.peek_at(1), Tok::Sym("::"))
            {
                let pos = self.pos();
                let lit = match self.advance() {
                    Tok::Int(n) => int_literal(&format!("-{n}"), pos)?,
                    Tok::Float(n) => float_literal(&format!("-{n}"), pos)?,
                    _ => return Err(QueryError::syntax(pos, "expected a number")),
                };
                return Ok(P { e: Expr::Literal(lit), h: 1 });
            }
            self.enter()?;
            let inner = self.p_unary();
            self.depth -= 1;
            let inner = inner?;
            if !minus {
                return Ok(inner);
            }
            return self.node(Expr::Unary { op: UnaryOp::Neg, expr: Box::new(inner.e) }, inner.h + 1);
        }
        let mut e = self.p_atom()?;
        loop {
            if self.eat_sym("::") {
                let ty = self.data_type()?;
                let h = e.h + 1;
                e = self.node(Expr::Cast { expr: Box::new(e.e), ty }, h)?;
            } else if matches!(self.peek(), Tok::Sym("[")) {
                return Err(QueryError::unsupported("array and map indexing", Some(self.pos())));
            } else if self.is_word("collate") {
                return Err(QueryError::unsupported("COLLATE", Some(self.pos())));
            } else {
                return Ok(e);
            }
        }
    }

    fn p_atom(&mut self) -> Result<P> {
        let pos = self.pos();
        let leaf = |e| Ok(P { e, h: 1 });
        match self.peek().clone() {
            Tok::Int(n) => {
                self.advance();
                leaf(Expr::Literal(int_literal(&n, pos)?))
            }
            Tok::Float(n) => {
                self.advance();
                leaf(Expr::Literal(float_literal(&n, pos)?))
            }
            Tok::Str(s) => {
                self.advance();
                leaf(Expr::Literal(Literal::String(s)))
            }
            Tok::Param(n) => {
                self.advance();
                let (index, style) = match n {
                    Some(n) => (n, ParamStyle::Dollar),
                    None => {
                        self.questions += 1;
                        (self.questions, ParamStyle::Question)
                    }
                };
                leaf(Expr::Param { index, style })
            }
            Tok::Sym("(") => {
                self.advance();
                if self.is_word("select") || self.is_word("with") {
                    return Err(QueryError::unsupported("subqueries", Some(self.pos())));
                }
                let e = self.p_expr()?;
                if matches!(self.peek(), Tok::Sym(",")) {
                    return Err(QueryError::unsupported("row values (a, b, ...)", Some(pos)));
                }
                self.expect_sym(")")?;
                Ok(e)
            }
            Tok::Sym("*") => Err(QueryError::syntax(pos, "'*' is only allowed as a select item or in count(*)")),
            Tok::Word(w) => self.p_word(w, pos),
            Tok::Quoted(_) => self.column_or_call(pos),
            _ => Err(self.unexpected("an expression")),
        }
    }

    fn p_word(&mut self, w: String, pos: usize) -> Result<P> {
        let leaf = |e| Ok(P { e, h: 1 });
        match w.as_str() {
            "null" => {
                self.advance();
                leaf(Expr::Literal(Literal::Null))
            }
            "true" | "false" => {
                self.advance();
                leaf(Expr::Literal(Literal::Boolean(w == "true")))
            }
            "date" | "timestamp" if matches!(self.peek_at(1), Tok::Str(_)) => {
                self.advance();
                let Tok::Str(s) = self.advance() else { return Err(QueryError::syntax(pos, "expected a string")) };
                let lit = if w == "date" {
                    Literal::Date(parse_date(&s).ok_or_else(|| QueryError::syntax(pos, format!("invalid DATE '{s}'")))?)
                } else {
                    Literal::Timestamp(
                        parse_timestamp(&s)
                            .ok_or_else(|| QueryError::syntax(pos, format!("invalid TIMESTAMP '{s}'")))?,
                    )
                };
                leaf(Expr::Literal(lit))
            }
            "date" | "timestamp" => self.column_or_call(pos),
            "cast" | "try_cast" if matches!(self.peek_at(1), Tok::Sym("(")) => {
                if w == "try_cast" {
                    return Err(QueryError::unsupported("TRY_CAST", Some(pos)));
                }
                self.advance();
                self.advance();
                let inner = self.p_expr()?;
                self.expect_word("as")?;
                let ty = self.data_type()?;
                self.expect_sym(")")?;
                self.node(Expr::Cast { expr: Box::new(inner.e), ty }, inner.h + 1)
            }
            "case" => Err(QueryError::unsupported("CASE expressions", Some(pos))),
            "exists" => Err(QueryError::unsupported("subqueries", Some(pos))),
            // NOT EXISTS; any other NOT in an operand's place is the prefix operator: `a = NOT b`
            // reads as sqlparser reads it, `a = (NOT b)`.
            "not" if self.is_word_at(1, "exists") => Err(QueryError::unsupported("subqueries", Some(pos))),
            "not" => {
                self.advance();
                let inner = self.p_sub(BIND_NOT)?;
                self.node(Expr::Unary { op: UnaryOp::Not, expr: Box::new(inner.e) }, inner.h + 1)
            }
            "interval" => Err(QueryError::unsupported("INTERVAL values", Some(pos))),
            "array" => Err(QueryError::unsupported("arrays", Some(pos))),
            "select" => Err(QueryError::unsupported("subqueries", Some(pos))),
            "extract" if matches!(self.peek_at(1), Tok::Sym("(")) => {
                Err(QueryError::unsupported("EXTRACT (use date_trunc)", Some(pos)))
            }
            _ if RESERVED.contains(&w.as_str()) => Err(self.unexpected("an expression")),
            _ => self.column_or_call(pos),
        }
    }

    /// `name`, `t.name`, `ns.t.name` or `f(args)`.
    fn column_or_call(&mut self, pos: usize) -> Result<P> {
        let first = match self.advance() {
            Tok::Word(w) => w,
            Tok::Quoted(q) => q,
            _ => return Err(QueryError::syntax(pos, "expected a name")),
        };
        if self.eat_sym("(") {
            return self.call(first, pos);
        }
        let mut parts = vec![first];
        while self.eat_sym(".") {
            if matches!(self.peek(), Tok::Sym("*")) {
                return Err(QueryError::syntax(self.pos(), "'t.*' is only allowed as a select item"));
            }
            parts.push(self.ident("a column name after '.'")?);
            if parts.len() > 3 {
                return Err(QueryError::syntax(pos, "a column is written col, table.col or namespace.table.col"));
            }
        }
        if matches!(self.peek(), Tok::Sym("(")) {
            return Err(QueryError::unsupported("qualified function names", Some(pos)));
        }
        Ok(P { e: Expr::Column(parts), h: 1 })
    }

    /// After `name(`.
    fn call(&mut self, name: String, pos: usize) -> Result<P> {
        self.enter()?;
        let (mut args, mut h, mut distinct, mut star) = (Vec::new(), 0, false, false);
        if self.eat_sym("*") {
            star = true;
        } else if !matches!(self.peek(), Tok::Sym(")")) {
            distinct = self.eat_word("distinct");
            if !distinct {
                self.eat_word("all");
            }
            loop {
                let a = self.p_expr()?;
                h = h.max(a.h);
                args.push(a.e);
                if !self.eat_sym(",") {
                    break;
                }
            }
        }
        if self.is_word("order") {
            return Err(QueryError::unsupported("ORDER BY inside aggregate calls", Some(self.pos())));
        }
        self.depth -= 1;
        self.expect_sym(")")?;
        if self.is_word("over") {
            return Err(QueryError::unsupported("window functions", Some(self.pos())));
        }
        if self.is_word("filter") && matches!(self.peek_at(1), Tok::Sym("(")) {
            return Err(QueryError::unsupported("aggregate FILTER clauses", Some(self.pos())));
        }
        if self.is_word("within") {
            return Err(QueryError::unsupported("WITHIN GROUP", Some(self.pos())));
        }
        let _ = pos;
        self.node(Expr::Function { name, args, distinct, star }, h + 1)
    }

    /// A type name, for CAST.
    fn data_type(&mut self) -> Result<DataType> {
        let pos = self.pos();
        let name = match self.advance() {
            Tok::Word(w) => w,
            Tok::Quoted(q) => q.to_lowercase(),
            t => return Err(QueryError::syntax(pos, format!("expected a type name, found {}", Self::describe(&t)))),
        };
        let ty = match name.as_str() {
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
            "decimal" | "numeric" => {
                let (mut precision, mut scale) = (MAX_DECIMAL_PRECISION, 10i8);
                if self.eat_sym("(") {
                    precision = self.small_int()? as u8;
                    scale = if self.eat_sym(",") { self.small_int()? as i8 } else { 0 };
                    self.expect_sym(")")?;
                    if precision == 0 || precision > MAX_DECIMAL_PRECISION || scale as u8 > precision {
                        return Err(QueryError::syntax(pos, format!("invalid DECIMAL({precision},{scale})")));
                    }
                }
                DataType::Decimal { precision, scale }
            }
            "text" | "string" | "varchar" | "char" | "character" => {
                if name == "character" {
                    self.eat_word("varying");
                }
                if self.eat_sym("(") {
                    self.small_int()?;
                    self.expect_sym(")")?;
                }
                DataType::Text
            }
            "bytes" | "bytea" | "blob" | "binary" | "varbinary" => DataType::Bytes,
            "date" => DataType::Date,
            "timestamp" => {
                if self.is_word("with") {
                    return Err(QueryError::unsupported("TIMESTAMP WITH TIME ZONE", Some(self.pos())));
                }
                if self.eat_word("without") {
                    self.expect_word("time")?;
                    self.expect_word("zone")?;
                }
                DataType::Timestamp
            }
            "json" => DataType::Json,
            "crdt_text" => DataType::CrdtText,
            other => return Err(QueryError::unsupported(format!("the type {}", other.to_uppercase()), Some(pos))),
        };
        Ok(ty)
    }

    fn small_int(&mut self) -> Result<u32> {
        let pos = self.pos();
        match self.advance() {
            Tok::Int(n) => {
                n.parse().ok().filter(|v| *v <= 1000).ok_or_else(|| QueryError::syntax(pos, "number out of range"))
            }
            t => Err(QueryError::syntax(pos, format!("expected a number, found {}", Self::describe(&t)))),
        }
    }
}

fn int_literal(text: &str, pos: usize) -> Result<Literal> {
    text.parse::<i64>()
        .map(Literal::Int)
        .map_err(|_| QueryError::unsupported(format!("integer literals beyond the BIGINT range ({text})"), Some(pos)))
}

fn float_literal(text: &str, pos: usize) -> Result<Literal> {
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(Literal::Float(f)),
        _ => Err(QueryError::syntax(pos, format!("number {text} is out of range"))),
    }
}
