//! A small recursive-descent parser for the subscription subset of SQL.
//!
//! Hand-written rather than sqlparser: the subset is tiny and the wasm bundle has a size budget.

use super::{CmpOp, Expr, LocalQuery, OrderBy, Projection, QueryError};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// Unquoted identifiers and keywords, lower-cased.
    Word(String),
    /// `"quoted"` identifiers, case kept.
    Quoted(String),
    Str(String),
    Number(String),
    /// `$n` (1-based) or `?` (next position).
    Param(Option<usize>),
    Symbol(&'static str),
}

fn tokenize(sql: &str) -> Result<Vec<Token>, QueryError> {
    let mut out = Vec::new();
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect::<String>().to_lowercase()));
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                i += 1;
                if i < chars.len() && (chars[i] == '+' || chars[i] == '-') {
                    i += 1;
                }
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            out.push(Token::Number(chars[start..i].iter().collect()));
        } else if c == '\'' || c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(QueryError::Syntax("unterminated quoted string".into())),
                    Some(&q) if q == c && chars.get(i + 1) == Some(&c) => {
                        s.push(c);
                        i += 2;
                    }
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            out.push(if c == '\'' { Token::Str(s) } else { Token::Quoted(s) });
        } else if c == '$' {
            let start = i + 1;
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let n: usize = chars[start..i]
                .iter()
                .collect::<String>()
                .parse()
                .map_err(|_| QueryError::Syntax("expected a parameter number after '$'".into()))?;
            if n == 0 {
                return Err(QueryError::Syntax("parameters are numbered from $1".into()));
            }
            out.push(Token::Param(Some(n)));
        } else if c == '?' {
            out.push(Token::Param(None));
            i += 1;
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let sym = match two.as_str() {
                "<=" => Some("<="),
                ">=" => Some(">="),
                "<>" | "!=" => Some("<>"),
                _ => None,
            };
            if let Some(s) = sym {
                out.push(Token::Symbol(s));
                i += 2;
                continue;
            }
            let s = match c {
                '=' => "=",
                '<' => "<",
                '>' => ">",
                '(' => "(",
                ')' => ")",
                ',' => ",",
                '.' => ".",
                '*' => "*",
                ';' => ";",
                '-' => "-",
                _ => return Err(QueryError::Syntax(format!("unexpected character '{c}'"))),
            };
            out.push(Token::Symbol(s));
            i += 1;
        }
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    params: &'a [Value],
    next_param: usize,
}

const RESERVED: &[&str] =
    &["select", "from", "where", "order", "by", "limit", "offset", "and", "or", "not", "in", "like", "is", "between"];

/// Parses `sql` (binding `params` to `$n`/`?`) into a [`LocalQuery`].
pub fn parse(sql: &str, params: &[Value]) -> Result<LocalQuery, QueryError> {
    let mut p = Parser { tokens: tokenize(sql)?, pos: 0, params, next_param: 0 };
    let q = p.query()?;
    p.eat_symbol(";");
    if p.pos < p.tokens.len() {
        return Err(QueryError::Syntax(format!("unexpected {} after the query", p.describe())));
    }
    Ok(q)
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn describe(&self) -> String {
        match self.peek() {
            None => "end of input".into(),
            Some(Token::Word(w)) => format!("'{w}'"),
            Some(Token::Quoted(w)) => format!("\"{w}\""),
            Some(Token::Str(s)) => format!("string '{s}'"),
            Some(Token::Number(n)) => format!("number {n}"),
            Some(Token::Param(_)) => "a parameter".into(),
            Some(Token::Symbol(s)) => format!("'{s}'"),
        }
    }

    fn is_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w == kw)
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        if self.is_keyword(kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, kw: &str) -> Result<(), QueryError> {
        if self.eat_keyword(kw) {
            Ok(())
        } else {
            Err(QueryError::Syntax(format!("expected {} but found {}", kw.to_uppercase(), self.describe())))
        }
    }

    fn eat_symbol(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Some(Token::Symbol(x)) if *x == s) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_symbol(&mut self, s: &str) -> Result<(), QueryError> {
        if self.eat_symbol(s) {
            Ok(())
        } else {
            Err(QueryError::Syntax(format!("expected '{s}' but found {}", self.describe())))
        }
    }

    fn identifier(&mut self) -> Result<String, QueryError> {
        match self.peek().cloned() {
            Some(Token::Word(w)) if !RESERVED.contains(&w.as_str()) => {
                self.pos += 1;
                Ok(w)
            }
            Some(Token::Quoted(w)) => {
                self.pos += 1;
                Ok(w)
            }
            _ => Err(QueryError::Syntax(format!("expected a name but found {}", self.describe()))),
        }
    }

    fn query(&mut self) -> Result<LocalQuery, QueryError> {
        self.expect_keyword("select")?;
        let projection = if self.eat_symbol("*") {
            Projection::All
        } else {
            let mut cols = vec![self.identifier()?];
            while self.eat_symbol(",") {
                cols.push(self.identifier()?);
            }
            Projection::Columns(cols)
        };
        self.expect_keyword("from")?;
        let mut table = self.identifier()?;
        if self.eat_symbol(".") {
            table = format!("{table}.{}", self.identifier()?);
        }
        let filter = if self.eat_keyword("where") { Some(self.or_expr()?) } else { None };
        let mut order_by = Vec::new();
        if self.eat_keyword("order") {
            self.expect_keyword("by")?;
            loop {
                let column = self.identifier()?;
                let descending = if self.eat_keyword("desc") {
                    true
                } else {
                    self.eat_keyword("asc");
                    false
                };
                order_by.push(OrderBy { column, descending });
                if !self.eat_symbol(",") {
                    break;
                }
            }
        }
        let limit = if self.eat_keyword("limit") { Some(self.count("LIMIT")?) } else { None };
        let offset = if self.eat_keyword("offset") { self.count("OFFSET")? } else { 0 };
        Ok(LocalQuery { table, projection, filter, order_by, limit, offset })
    }

    fn count(&mut self, what: &str) -> Result<usize, QueryError> {
        let v = self.literal()?;
        v.as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| QueryError::Syntax(format!("{what} takes a non-negative integer, not {v}")))
    }

    fn or_expr(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.and_expr()?;
        while self.eat_keyword("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and_expr()?));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.not_expr()?;
        while self.eat_keyword("and") {
            left = Expr::And(Box::new(left), Box::new(self.not_expr()?));
        }
        Ok(left)
    }

    fn not_expr(&mut self) -> Result<Expr, QueryError> {
        if self.eat_keyword("not") {
            return Ok(Expr::Not(Box::new(self.not_expr()?)));
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Expr, QueryError> {
        if self.eat_symbol("(") {
            let e = self.or_expr()?;
            self.expect_symbol(")")?;
            return Ok(e);
        }
        let left = self.operand()?;
        if self.eat_keyword("is") {
            let negated = self.eat_keyword("not");
            self.expect_keyword("null")?;
            let e = Expr::IsNull(Box::new(left));
            return Ok(if negated { Expr::Not(Box::new(e)) } else { e });
        }
        let negated = self.eat_keyword("not");
        if self.eat_keyword("in") {
            self.expect_symbol("(")?;
            let mut list = vec![self.operand()?];
            while self.eat_symbol(",") {
                list.push(self.operand()?);
            }
            self.expect_symbol(")")?;
            return Ok(Expr::In { expr: Box::new(left), list, negated });
        }
        if self.eat_keyword("like") {
            let pattern = self.operand()?;
            return Ok(Expr::Like { expr: Box::new(left), pattern: Box::new(pattern), negated });
        }
        if self.eat_keyword("between") {
            let low = self.operand()?;
            self.expect_keyword("and")?;
            let high = self.operand()?;
            let e = Expr::And(
                Box::new(Expr::Cmp(Box::new(left.clone()), CmpOp::GtEq, Box::new(low))),
                Box::new(Expr::Cmp(Box::new(left), CmpOp::LtEq, Box::new(high))),
            );
            return Ok(if negated { Expr::Not(Box::new(e)) } else { e });
        }
        if negated {
            return Err(QueryError::Syntax(format!(
                "expected IN, LIKE or BETWEEN after NOT, found {}",
                self.describe()
            )));
        }
        let op = match self.peek() {
            Some(Token::Symbol("=")) => CmpOp::Eq,
            Some(Token::Symbol("<>")) => CmpOp::NotEq,
            Some(Token::Symbol("<")) => CmpOp::Lt,
            Some(Token::Symbol("<=")) => CmpOp::LtEq,
            Some(Token::Symbol(">")) => CmpOp::Gt,
            Some(Token::Symbol(">=")) => CmpOp::GtEq,
            _ => {
                // A bare boolean column or literal (`WHERE done`).
                return Ok(match left {
                    Expr::Column(_) | Expr::Literal(Value::Bool(_)) => left,
                    _ => {
                        return Err(QueryError::Syntax(format!("expected a comparison but found {}", self.describe())));
                    }
                });
            }
        };
        self.pos += 1;
        let right = self.operand()?;
        Ok(Expr::Cmp(Box::new(left), op, Box::new(right)))
    }

    fn operand(&mut self) -> Result<Expr, QueryError> {
        match self.peek() {
            Some(Token::Word(w)) if matches!(w.as_str(), "true" | "false" | "null") => {
                Ok(Expr::Literal(self.literal()?))
            }
            Some(Token::Word(_) | Token::Quoted(_)) => Ok(Expr::Column(self.identifier()?)),
            _ => Ok(Expr::Literal(self.literal()?)),
        }
    }

    fn literal(&mut self) -> Result<Value, QueryError> {
        let negative = self.eat_symbol("-");
        let tok = self.peek().cloned();
        self.pos += 1;
        let v = match tok {
            Some(Token::Number(n)) => {
                let text = if negative { format!("-{n}") } else { n.clone() };
                if let Ok(i) = text.parse::<i64>() {
                    Value::from(i)
                } else {
                    let f: f64 = text.parse().map_err(|_| QueryError::Syntax(format!("bad number {n}")))?;
                    Value::from(f)
                }
            }
            _ if negative => {
                self.pos -= 1;
                return Err(QueryError::Syntax(format!("expected a number after '-', found {}", self.describe())));
            }
            Some(Token::Str(s)) => Value::String(s),
            Some(Token::Word(w)) if w == "true" => Value::Bool(true),
            Some(Token::Word(w)) if w == "false" => Value::Bool(false),
            Some(Token::Word(w)) if w == "null" => Value::Null,
            Some(Token::Param(n)) => {
                let idx = match n {
                    Some(n) => n - 1,
                    None => {
                        self.next_param += 1;
                        self.next_param - 1
                    }
                };
                self.params.get(idx).cloned().ok_or_else(|| {
                    QueryError::Syntax(format!("parameter ${} has no value ({} given)", idx + 1, self.params.len()))
                })?
            }
            _ => {
                self.pos -= 1;
                return Err(QueryError::Syntax(format!("expected a value but found {}", self.describe())));
            }
        };
        Ok(v)
    }
}
