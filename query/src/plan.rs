//! The logical plan: typed, name-resolved expressions over positional rows, and the operators
//! that combine them. Produced by [`crate::check::plan`], run by [`crate::exec::execute`], and
//! later lowered to DataFusion by the server and to an incremental dataflow by the client.

use crate::ast::{BinaryOp, JoinKind};
use crate::schema::TableSchema;
use crate::types::DataType;
use crate::value::Value;
use std::fmt::{self, Display, Formatter};

/// One column of an operator's output.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The table's namespace, for columns that come straight from a table.
    pub namespace: Option<String>,
    /// The table name or alias that qualifies the column (`t` in `t.col`), if any.
    pub qualifier: Option<String>,
    /// The column's name (output name for computed columns).
    pub name: String,
    /// Its type.
    pub ty: DataType,
    /// Whether it may be NULL.
    pub nullable: bool,
}

/// The columns of an operator's output, in row order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schema {
    /// The fields.
    pub fields: Vec<Field>,
}

/// Scalar functions of the language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarFunc {
    /// `lower(text)`.
    Lower,
    /// `upper(text)`.
    Upper,
    /// `length(text)` / `char_length` / `character_length`: characters, as INT.
    Length,
    /// `coalesce(a, b, ...)`: the first non-NULL argument.
    Coalesce,
    /// `abs(x)`.
    Abs,
    /// `round(x [, n])`; `n` must be an integer literal.
    Round(i32),
    /// `date_trunc('unit', ts)`; the unit is a literal, validated by the planner.
    DateTrunc(DateUnit),
}

/// Units of `date_trunc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateUnit {
    /// `microsecond`.
    Microsecond,
    /// `millisecond`.
    Millisecond,
    /// `second`.
    Second,
    /// `minute`.
    Minute,
    /// `hour`.
    Hour,
    /// `day`.
    Day,
    /// `week` (Monday).
    Week,
    /// `month`.
    Month,
    /// `quarter`.
    Quarter,
    /// `year`.
    Year,
}

impl DateUnit {
    /// Parse a unit name (case-insensitive).
    pub fn parse(s: &str) -> Option<DateUnit> {
        Some(match s.to_ascii_lowercase().as_str() {
            "microsecond" | "microseconds" => DateUnit::Microsecond,
            "millisecond" | "milliseconds" => DateUnit::Millisecond,
            "second" => DateUnit::Second,
            "minute" => DateUnit::Minute,
            "hour" => DateUnit::Hour,
            "day" => DateUnit::Day,
            "week" => DateUnit::Week,
            "month" => DateUnit::Month,
            "quarter" => DateUnit::Quarter,
            "year" => DateUnit::Year,
            _ => return None,
        })
    }

    /// The unit's name.
    pub fn name(&self) -> &'static str {
        match self {
            DateUnit::Microsecond => "microsecond",
            DateUnit::Millisecond => "millisecond",
            DateUnit::Second => "second",
            DateUnit::Minute => "minute",
            DateUnit::Hour => "hour",
            DateUnit::Day => "day",
            DateUnit::Week => "week",
            DateUnit::Month => "month",
            DateUnit::Quarter => "quarter",
            DateUnit::Year => "year",
        }
    }
}

/// A typed expression over the columns of one input row.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedExpr {
    /// What it computes.
    pub kind: ExprKind,
    /// Its result type.
    pub ty: DataType,
}

/// The forms of a typed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// The input column at this index.
    Column(usize),
    /// A constant (literals and bound parameters).
    Literal(Value),
    /// `NOT e`.
    Not(Box<TypedExpr>),
    /// `-e`.
    Neg(Box<TypedExpr>),
    /// `l op r`. Arithmetic computes in the node's type; comparisons compare the values exactly
    /// (see [`Value::sql_cmp`]); AND/OR use three-valued logic.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<TypedExpr>,
        /// Right operand.
        right: Box<TypedExpr>,
    },
    /// `e IS [NOT] NULL`.
    IsNull {
        /// Operand.
        expr: Box<TypedExpr>,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `e [NOT] IN (list)`.
    InList {
        /// Operand.
        expr: Box<TypedExpr>,
        /// Candidates.
        list: Vec<TypedExpr>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `e [NOT] LIKE|ILIKE pattern`.
    Like {
        /// Operand.
        expr: Box<TypedExpr>,
        /// Pattern.
        pattern: Box<TypedExpr>,
        /// `NOT LIKE`.
        negated: bool,
        /// `ILIKE`.
        case_insensitive: bool,
    },
    /// Conversion to the node's type (explicit `CAST` or an implicit coercion).
    Cast(Box<TypedExpr>),
    /// A scalar function call.
    Func(ScalarFunc, Vec<TypedExpr>),
}

impl TypedExpr {
    pub(crate) fn new(kind: ExprKind, ty: DataType) -> Self {
        TypedExpr { kind, ty }
    }

    pub(crate) fn column(i: usize, ty: DataType) -> Self {
        TypedExpr { kind: ExprKind::Column(i), ty }
    }

    /// Visit every sub-expression (pre-order).
    pub fn walk(&self, f: &mut dyn FnMut(&TypedExpr)) {
        f(self);
        match &self.kind {
            ExprKind::Column(_) | ExprKind::Literal(_) => {}
            ExprKind::Not(e) | ExprKind::Neg(e) | ExprKind::Cast(e) | ExprKind::IsNull { expr: e, .. } => e.walk(f),
            ExprKind::Binary { left, right, .. } => {
                left.walk(f);
                right.walk(f);
            }
            ExprKind::InList { expr, list, .. } => {
                expr.walk(f);
                list.iter().for_each(|e| e.walk(f));
            }
            ExprKind::Like { expr, pattern, .. } => {
                expr.walk(f);
                pattern.walk(f);
            }
            ExprKind::Func(_, args) => args.iter().for_each(|e| e.walk(f)),
        }
    }

    /// Input columns this expression reads.
    pub fn columns(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let ExprKind::Column(i) = e.kind {
                out.push(i);
            }
        });
        out
    }

    /// The same expression with every column index `i` replaced by `map(i)`.
    pub(crate) fn remap(&self, map: &dyn Fn(usize) -> usize) -> TypedExpr {
        let b = |e: &TypedExpr| Box::new(e.remap(map));
        let kind = match &self.kind {
            ExprKind::Column(i) => ExprKind::Column(map(*i)),
            ExprKind::Literal(v) => ExprKind::Literal(v.clone()),
            ExprKind::Not(e) => ExprKind::Not(b(e)),
            ExprKind::Neg(e) => ExprKind::Neg(b(e)),
            ExprKind::Cast(e) => ExprKind::Cast(b(e)),
            ExprKind::Binary { op, left, right } => ExprKind::Binary { op: *op, left: b(left), right: b(right) },
            ExprKind::IsNull { expr, negated } => ExprKind::IsNull { expr: b(expr), negated: *negated },
            ExprKind::InList { expr, list, negated } => {
                ExprKind::InList { expr: b(expr), list: list.iter().map(|e| e.remap(map)).collect(), negated: *negated }
            }
            ExprKind::Like { expr, pattern, negated, case_insensitive } => ExprKind::Like {
                expr: b(expr),
                pattern: b(pattern),
                negated: *negated,
                case_insensitive: *case_insensitive,
            },
            ExprKind::Func(f, args) => ExprKind::Func(*f, args.iter().map(|e| e.remap(map)).collect()),
        };
        TypedExpr { kind, ty: self.ty }
    }
}

/// Aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    /// `count(*)`.
    CountStar,
    /// `count(x)`: non-NULL values.
    Count,
    /// `sum(x)`.
    Sum,
    /// `avg(x)`.
    Avg,
    /// `min(x)`.
    Min,
    /// `max(x)`.
    Max,
}

impl AggFunc {
    /// The SQL name.
    pub fn name(&self) -> &'static str {
        match self {
            AggFunc::CountStar | AggFunc::Count => "count",
            AggFunc::Sum => "sum",
            AggFunc::Avg => "avg",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
        }
    }
}

/// One aggregate computed by an [`Node::Aggregate`].
#[derive(Debug, Clone, PartialEq)]
pub struct AggCall {
    /// The function.
    pub func: AggFunc,
    /// Its argument (none for `count(*)`).
    pub arg: Option<TypedExpr>,
    /// `f(DISTINCT x)`.
    pub distinct: bool,
    /// Result type.
    pub ty: DataType,
}

/// One ORDER BY key.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    /// The key.
    pub expr: TypedExpr,
    /// Descending.
    pub desc: bool,
    /// NULLs before non-NULLs (resolved: the default is `desc`).
    pub nulls_first: bool,
}

/// A plan operator and its output schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The operator.
    pub node: Node,
    /// Its output columns.
    pub schema: Schema,
}

/// Plan operators.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// One row with no columns (`SELECT` without `FROM`).
    Empty,
    /// All rows of a table, aligned to its schema.
    Scan {
        /// The table.
        table: TableSchema,
    },
    /// Rows where the predicate is TRUE.
    Filter {
        /// Input.
        input: Box<Plan>,
        /// A BOOLEAN expression.
        predicate: TypedExpr,
    },
    /// One output column per expression.
    Project {
        /// Input.
        input: Box<Plan>,
        /// Output expressions.
        exprs: Vec<TypedExpr>,
    },
    /// Equi-join; output rows are the left columns followed by the right columns. NULL keys
    /// never match. LEFT keeps unmatched left rows with NULLs on the right.
    Join {
        /// Left input.
        left: Box<Plan>,
        /// Right input.
        right: Box<Plan>,
        /// INNER or LEFT.
        kind: JoinKind,
        /// Pairs of (left key over the left row, right key over the right row), of equal types.
        on: Vec<(TypedExpr, TypedExpr)>,
        /// The rest of the ON condition, over the joined row (left columns then right columns):
        /// a key match counts only where it is TRUE.
        filter: Option<TypedExpr>,
    },
    /// Grouping: output rows are the group keys followed by the aggregates. Without group keys
    /// there is exactly one output row, also over empty input.
    Aggregate {
        /// Input.
        input: Box<Plan>,
        /// Group keys.
        group_by: Vec<TypedExpr>,
        /// Aggregates.
        aggregates: Vec<AggCall>,
    },
    /// Removes duplicate rows (NULLs equal), keeping first occurrences.
    Distinct {
        /// Input.
        input: Box<Plan>,
    },
    /// Sort by the keys; rows with equal keys are ordered by their values (column by column,
    /// NULLs last), so the result does not depend on storage order.
    Sort {
        /// Input.
        input: Box<Plan>,
        /// Keys, most significant first.
        keys: Vec<SortKey>,
    },
    /// `OFFSET offset LIMIT limit`.
    Limit {
        /// Input.
        input: Box<Plan>,
        /// Rows skipped.
        offset: u64,
        /// Rows kept after that, if limited.
        limit: Option<u64>,
    },
}

impl Plan {
    /// Tables this plan reads, in plan order.
    pub fn tables(&self) -> Vec<&TableSchema> {
        let mut out = Vec::new();
        self.visit(&mut |p| {
            if let Node::Scan { table } = &p.node {
                out.push(table);
            }
        });
        out
    }

    fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Plan)) {
        f(self);
        match &self.node {
            Node::Empty | Node::Scan { .. } => {}
            Node::Filter { input, .. }
            | Node::Project { input, .. }
            | Node::Aggregate { input, .. }
            | Node::Distinct { input }
            | Node::Sort { input, .. }
            | Node::Limit { input, .. } => input.visit(f),
            Node::Join { left, right, .. } => {
                left.visit(f);
                right.visit(f);
            }
        }
    }

    fn fmt_indent(&self, f: &mut Formatter<'_>, depth: usize) -> fmt::Result {
        let pad = "  ".repeat(depth);
        let input: Vec<&Plan> = match &self.node {
            Node::Empty => {
                writeln!(f, "{pad}Empty")?;
                vec![]
            }
            Node::Scan { table } => {
                writeln!(f, "{pad}Scan {}", table.qualified_name())?;
                vec![]
            }
            Node::Filter { input, .. } => {
                writeln!(f, "{pad}Filter")?;
                vec![input]
            }
            Node::Project { input, exprs } => {
                writeln!(f, "{pad}Project {} columns", exprs.len())?;
                vec![input]
            }
            Node::Join { left, right, kind, on, filter } => {
                let kind = match kind {
                    JoinKind::Inner => "Inner",
                    JoinKind::Left => "Left",
                };
                let extra = if filter.is_some() { " and a filter" } else { "" };
                writeln!(f, "{pad}Join {kind} on {} keys{extra}", on.len())?;
                vec![left, right]
            }
            Node::Aggregate { input, group_by, aggregates } => {
                let funcs: Vec<_> = aggregates.iter().map(|a| a.func.name()).collect();
                writeln!(f, "{pad}Aggregate {} keys [{}]", group_by.len(), funcs.join(", "))?;
                vec![input]
            }
            Node::Distinct { input } => {
                writeln!(f, "{pad}Distinct")?;
                vec![input]
            }
            Node::Sort { input, keys } => {
                writeln!(f, "{pad}Sort {} keys", keys.len())?;
                vec![input]
            }
            Node::Limit { input, offset, limit } => {
                writeln!(f, "{pad}Limit offset={offset} limit={limit:?}")?;
                vec![input]
            }
        };
        for i in input {
            i.fmt_indent(f, depth + 1)?;
        }
        Ok(())
    }
}

/// An indented outline of the operators (for debugging and EXPLAIN-like output).
impl Display for Plan {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.fmt_indent(f, 0)
    }
}
