//! The syntax tree of a query, as written. `Display` prints it back as SQL that parses to the
//! same tree (and that DataFusion reads the same way: operands are parenthesised unless they
//! are a left-associative chain of one operator class).

use crate::types::DataType;
use crate::value::{format_date, format_timestamp};
use std::fmt::{self, Display, Formatter, Write};

/// `SELECT ...`: the only statement of the language.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// `SELECT DISTINCT`.
    pub distinct: bool,
    /// The select list.
    pub projection: Vec<SelectItem>,
    /// `FROM` (absent for `SELECT 1`).
    pub from: Option<FromClause>,
    /// `WHERE`.
    pub selection: Option<Expr>,
    /// `GROUP BY`.
    pub group_by: Vec<Expr>,
    /// `HAVING`.
    pub having: Option<Expr>,
    /// `ORDER BY`.
    pub order_by: Vec<OrderByItem>,
    /// `LIMIT n`.
    pub limit: Option<u64>,
    /// `OFFSET n`.
    pub offset: Option<u64>,
}

/// One entry of the select list.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// `*`.
    Wildcard,
    /// `t.*`.
    QualifiedWildcard(String),
    /// `expr [AS alias]`.
    Expr {
        /// The expression.
        expr: Expr,
        /// Its output name.
        alias: Option<String>,
    },
}

/// `FROM t [JOIN u ON ...]...`.
#[derive(Debug, Clone, PartialEq)]
pub struct FromClause {
    /// The first table.
    pub base: TableRef,
    /// Joined tables, in order (each joins the result so far).
    pub joins: Vec<Join>,
}

/// `[namespace.]table [AS alias]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRef {
    /// The namespace, if written.
    pub namespace: Option<String>,
    /// The table name.
    pub name: String,
    /// The alias, if any.
    pub alias: Option<String>,
}

impl TableRef {
    /// The name columns are qualified with: the alias, else the table name.
    pub fn visible_name(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }
}

/// Join kinds of the language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// `[INNER] JOIN`.
    Inner,
    /// `LEFT [OUTER] JOIN`.
    Left,
}

/// `... JOIN table ON condition`.
#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    /// INNER or LEFT.
    pub kind: JoinKind,
    /// The joined table.
    pub table: TableRef,
    /// The `ON` condition (the planner requires an AND of equalities).
    pub on: Expr,
}

/// `expr [ASC|DESC] [NULLS FIRST|LAST]`.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderByItem {
    /// The sort key: an expression, an output alias or a 1-based ordinal.
    pub expr: Expr,
    /// `DESC`.
    pub desc: bool,
    /// `NULLS FIRST` (`Some(true)`) / `NULLS LAST` (`Some(false)`); unset means NULLs sort as
    /// the largest value (last ascending, first descending).
    pub nulls_first: Option<bool>,
}

/// How a parameter was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamStyle {
    /// `$n`.
    Dollar,
    /// `?` (the k-th `?` is parameter k).
    Question,
}

/// A literal as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `NULL`.
    Null,
    /// `TRUE` / `FALSE`.
    Boolean(bool),
    /// An integer (BIGINT).
    Int(i64),
    /// A number with a point or exponent (DOUBLE, as DataFusion's default).
    Float(f64),
    /// `'text'`.
    String(String),
    /// `DATE 'YYYY-MM-DD'`, as days.
    Date(i32),
    /// `TIMESTAMP '...'`, as microseconds UTC.
    Timestamp(i64),
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `NOT`.
    Not,
    /// `-`.
    Neg,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `OR`.
    Or,
    /// `AND`.
    And,
    /// `=`.
    Eq,
    /// `<>` (also written `!=`).
    NotEq,
    /// `<`.
    Lt,
    /// `<=`.
    LtEq,
    /// `>`.
    Gt,
    /// `>=`.
    GtEq,
    /// `||`.
    Concat,
    /// `+`.
    Plus,
    /// `-`.
    Minus,
    /// `*`.
    Multiply,
    /// `/`.
    Divide,
    /// `%`.
    Modulo,
}

impl BinaryOp {
    /// The operator's SQL text.
    pub fn symbol(&self) -> &'static str {
        match self {
            BinaryOp::Or => "OR",
            BinaryOp::And => "AND",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::Concat => "||",
            BinaryOp::Plus => "+",
            BinaryOp::Minus => "-",
            BinaryOp::Multiply => "*",
            BinaryOp::Divide => "/",
            BinaryOp::Modulo => "%",
        }
    }

    /// Binding strength (higher binds tighter).
    pub(crate) fn precedence(&self) -> u8 {
        match self {
            BinaryOp::Or => PREC_OR,
            BinaryOp::And => PREC_AND,
            BinaryOp::Eq | BinaryOp::NotEq | BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq => PREC_CMP,
            BinaryOp::Plus | BinaryOp::Minus => PREC_ADD,
            // `||` binds like `*` (sqlparser's precedence, so DataFusion reads text the same way).
            BinaryOp::Concat | BinaryOp::Multiply | BinaryOp::Divide | BinaryOp::Modulo => PREC_MUL,
        }
    }

    /// `=`, `<>`, `<`, `<=`, `>`, `>=`.
    pub fn is_comparison(&self) -> bool {
        self.precedence() == PREC_CMP
    }
}

pub(crate) const PREC_OR: u8 = 1;
pub(crate) const PREC_AND: u8 = 2;
pub(crate) const PREC_NOT: u8 = 3;
pub(crate) const PREC_CMP: u8 = 4;
pub(crate) const PREC_ADD: u8 = 6;
pub(crate) const PREC_MUL: u8 = 7;
pub(crate) const PREC_UNARY: u8 = 8;
pub(crate) const PREC_ATOM: u8 = 9;

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A column: `col`, `t.col` or `ns.t.col` (the last part is the column).
    Column(Vec<String>),
    /// A literal.
    Literal(Literal),
    /// A parameter, 1-based.
    Param {
        /// Position in the parameter list, from 1.
        index: usize,
        /// `$n` or `?`.
        style: ParamStyle,
    },
    /// `NOT e`, `-e`.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// The operand.
        expr: Box<Expr>,
    },
    /// `l op r`.
    Binary {
        /// Left operand.
        left: Box<Expr>,
        /// The operator.
        op: BinaryOp,
        /// Right operand.
        right: Box<Expr>,
    },
    /// `e IS [NOT] NULL`.
    IsNull {
        /// The operand.
        expr: Box<Expr>,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `e [NOT] IN (a, b, ...)`.
    InList {
        /// The operand.
        expr: Box<Expr>,
        /// The list (non-empty).
        list: Vec<Expr>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `e [NOT] BETWEEN low AND high`.
    Between {
        /// The operand.
        expr: Box<Expr>,
        /// Lower bound (inclusive).
        low: Box<Expr>,
        /// Upper bound (inclusive).
        high: Box<Expr>,
        /// `NOT BETWEEN`.
        negated: bool,
    },
    /// `e [NOT] LIKE|ILIKE pattern`.
    Like {
        /// The operand.
        expr: Box<Expr>,
        /// The pattern (`%`, `_`, `\` escapes).
        pattern: Box<Expr>,
        /// `NOT LIKE`.
        negated: bool,
        /// `ILIKE`.
        case_insensitive: bool,
    },
    /// `CAST(e AS type)` (also written `e::type`).
    Cast {
        /// The operand.
        expr: Box<Expr>,
        /// The target type.
        ty: DataType,
    },
    /// `name([DISTINCT] args)` or `count(*)`.
    Function {
        /// Lower-cased name.
        name: String,
        /// Arguments.
        args: Vec<Expr>,
        /// `f(DISTINCT x)`.
        distinct: bool,
        /// `count(*)`.
        star: bool,
    },
}

impl Expr {
    /// Visit every sub-expression (pre-order).
    pub fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Column(_) | Expr::Literal(_) | Expr::Param { .. } => {}
            Expr::Unary { expr, .. } | Expr::IsNull { expr, .. } | Expr::Cast { expr, .. } => expr.walk(f),
            Expr::Binary { left, right, .. } => {
                left.walk(f);
                right.walk(f);
            }
            Expr::InList { expr, list, .. } => {
                expr.walk(f);
                list.iter().for_each(|e| e.walk(f));
            }
            Expr::Between { expr, low, high, .. } => {
                expr.walk(f);
                low.walk(f);
                high.walk(f);
            }
            Expr::Like { expr, pattern, .. } => {
                expr.walk(f);
                pattern.walk(f);
            }
            Expr::Function { args, .. } => args.iter().for_each(|e| e.walk(f)),
        }
    }

    /// Binding strength of this node, for printing.
    pub(crate) fn precedence(&self) -> u8 {
        match self {
            Expr::Binary { op, .. } => op.precedence(),
            Expr::Unary { op: UnaryOp::Not, .. } => PREC_NOT,
            Expr::Unary { op: UnaryOp::Neg, .. } => PREC_UNARY,
            Expr::Literal(Literal::Int(i)) if *i < 0 => PREC_UNARY,
            Expr::Literal(Literal::Float(f)) if f.is_sign_negative() => PREC_UNARY,
            Expr::IsNull { .. } | Expr::InList { .. } | Expr::Between { .. } | Expr::Like { .. } => PREC_CMP,
            _ => PREC_ATOM,
        }
    }
}

/// Words that must be quoted when used as identifiers.
pub(crate) const RESERVED: &[&str] = &[
    "all",
    "and",
    "as",
    "asc",
    "between",
    "by",
    "case",
    "cast",
    "cross",
    "date",
    "desc",
    "distinct",
    "else",
    "end",
    "except",
    "exists",
    "false",
    "first",
    "from",
    "full",
    "group",
    "having",
    "ilike",
    "in",
    "inner",
    "intersect",
    "interval",
    "is",
    "join",
    "last",
    "left",
    "like",
    "limit",
    "natural",
    "not",
    "null",
    "nulls",
    "offset",
    "on",
    "or",
    "order",
    "outer",
    "over",
    "right",
    "select",
    "then",
    "timestamp",
    "true",
    "union",
    "using",
    "when",
    "where",
    "with",
];

/// An identifier as SQL: bare when it is a plain lower-case word, quoted otherwise.
pub(crate) struct Ident<'a>(pub &'a str);

impl Display for Ident<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let plain = s.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !RESERVED.contains(&s);
        if plain {
            f.write_str(s)
        } else {
            f.write_char('"')?;
            f.write_str(&s.replace('"', "\"\""))?;
            f.write_char('"')
        }
    }
}

fn quote_str(s: &str, f: &mut Formatter<'_>) -> fmt::Result {
    f.write_char('\'')?;
    f.write_str(&s.replace('\'', "''"))?;
    f.write_char('\'')
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("NULL"),
            Literal::Boolean(true) => f.write_str("TRUE"),
            Literal::Boolean(false) => f.write_str("FALSE"),
            Literal::Int(i) => write!(f, "{i}"),
            Literal::Float(x) => write!(f, "{x:?}"),
            Literal::String(s) => quote_str(s, f),
            Literal::Date(d) => write!(f, "DATE '{}'", format_date(*d)),
            Literal::Timestamp(t) => write!(f, "TIMESTAMP '{}'", format_timestamp(*t)),
        }
    }
}

/// Print `e`, in parentheses when `paren` is true.
fn wrap(e: &Expr, paren: bool, f: &mut Formatter<'_>) -> fmt::Result {
    if paren { write!(f, "({e})") } else { write!(f, "{e}") }
}

fn comma_list<T: Display>(items: &[T], f: &mut Formatter<'_>) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column(parts) => {
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_char('.')?;
                    }
                    write!(f, "{}", Ident(p))?;
                }
                Ok(())
            }
            Expr::Literal(l) => write!(f, "{l}"),
            Expr::Param { index, style: ParamStyle::Dollar } => write!(f, "${index}"),
            Expr::Param { style: ParamStyle::Question, .. } => f.write_char('?'),
            Expr::Unary { op: UnaryOp::Not, expr } => {
                f.write_str("NOT ")?;
                wrap(expr, expr.precedence() < PREC_NOT, f)
            }
            Expr::Unary { op: UnaryOp::Neg, expr } => {
                f.write_char('-')?;
                let bare =
                    matches!(**expr, Expr::Column(_) | Expr::Param { .. } | Expr::Function { .. } | Expr::Cast { .. });
                wrap(expr, !bare, f)
            }
            Expr::Binary { left, op, right } => {
                let p = op.precedence();
                // Left-associative chains of one class print bare; everything else is explicit.
                let left_paren = left.precedence() < p || (p == PREC_CMP && left.precedence() == p);
                wrap(left, left_paren, f)?;
                write!(f, " {} ", op.symbol())?;
                wrap(right, right.precedence() <= p, f)
            }
            Expr::IsNull { expr, negated } => {
                wrap(expr, expr.precedence() <= PREC_CMP, f)?;
                f.write_str(if *negated { " IS NOT NULL" } else { " IS NULL" })
            }
            Expr::InList { expr, list, negated } => {
                wrap(expr, expr.precedence() <= PREC_CMP, f)?;
                f.write_str(if *negated { " NOT IN (" } else { " IN (" })?;
                comma_list(list, f)?;
                f.write_char(')')
            }
            Expr::Between { expr, low, high, negated } => {
                wrap(expr, expr.precedence() <= PREC_CMP, f)?;
                f.write_str(if *negated { " NOT BETWEEN " } else { " BETWEEN " })?;
                wrap(low, low.precedence() <= PREC_CMP, f)?;
                f.write_str(" AND ")?;
                wrap(high, high.precedence() <= PREC_CMP, f)
            }
            Expr::Like { expr, pattern, negated, case_insensitive } => {
                wrap(expr, expr.precedence() <= PREC_CMP, f)?;
                f.write_str(if *negated { " NOT" } else { "" })?;
                f.write_str(if *case_insensitive { " ILIKE " } else { " LIKE " })?;
                wrap(pattern, pattern.precedence() <= PREC_CMP, f)
            }
            Expr::Cast { expr, ty } => write!(f, "CAST({expr} AS {})", ty.sql_name()),
            Expr::Function { name, args, distinct, star } => {
                write!(f, "{}(", Ident(name))?;
                if *star {
                    f.write_char('*')?;
                } else {
                    if *distinct {
                        f.write_str("DISTINCT ")?;
                    }
                    comma_list(args, f)?;
                }
                f.write_char(')')
            }
        }
    }
}

impl Display for TableRef {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if let Some(ns) = &self.namespace {
            write!(f, "{}.", Ident(ns))?;
        }
        write!(f, "{}", Ident(&self.name))?;
        if let Some(a) = &self.alias {
            write!(f, " AS {}", Ident(a))?;
        }
        Ok(())
    }
}

impl Display for SelectItem {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            SelectItem::Wildcard => f.write_char('*'),
            SelectItem::QualifiedWildcard(t) => write!(f, "{}.*", Ident(t)),
            SelectItem::Expr { expr, alias: None } => write!(f, "{expr}"),
            SelectItem::Expr { expr, alias: Some(a) } => write!(f, "{expr} AS {}", Ident(a)),
        }
    }
}

impl Display for OrderByItem {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.expr)?;
        if self.desc {
            f.write_str(" DESC")?;
        }
        match self.nulls_first {
            Some(true) => f.write_str(" NULLS FIRST"),
            Some(false) => f.write_str(" NULLS LAST"),
            None => Ok(()),
        }
    }
}

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(if self.distinct { "SELECT DISTINCT " } else { "SELECT " })?;
        comma_list(&self.projection, f)?;
        if let Some(from) = &self.from {
            write!(f, " FROM {}", from.base)?;
            for j in &from.joins {
                let kw = match j.kind {
                    JoinKind::Inner => "JOIN",
                    JoinKind::Left => "LEFT JOIN",
                };
                write!(f, " {kw} {} ON {}", j.table, j.on)?;
            }
        }
        if let Some(w) = &self.selection {
            write!(f, " WHERE {w}")?;
        }
        if !self.group_by.is_empty() {
            f.write_str(" GROUP BY ")?;
            comma_list(&self.group_by, f)?;
        }
        if let Some(h) = &self.having {
            write!(f, " HAVING {h}")?;
        }
        if !self.order_by.is_empty() {
            f.write_str(" ORDER BY ")?;
            comma_list(&self.order_by, f)?;
        }
        if let Some(l) = self.limit {
            write!(f, " LIMIT {l}")?;
        }
        if let Some(o) = self.offset {
            write!(f, " OFFSET {o}")?;
        }
        Ok(())
    }
}
