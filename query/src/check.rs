//! Name resolution and type checking: [`Query`] + [`Catalog`] + parameters → [`Plan`].
//!
//! The plan's shape for one SELECT is fixed:
//! `Scan (Join Scan)* → Filter(WHERE) → [Aggregate → Filter(HAVING)] → Project(select list +
//! hidden ORDER BY keys) → [Distinct] → [Sort] → [Limit] → [Project(drop hidden keys)]`.

use crate::ast::*;
use crate::error::{QueryError, Result};
use crate::plan::*;
use crate::schema::{Catalog, TableSchema};
use crate::types::{DataType, MAX_DECIMAL_PRECISION};
use crate::value::{Value, parse_date, parse_decimal, parse_timestamp};

/// Resolve, type-check and plan a parsed query. `params` are bound by position (`$1` is
/// `params[0]`; the k-th `?` is `params[k-1]`); a parameter's type is its value's type.
pub fn plan(query: &Query, catalog: &dyn Catalog, params: &[Value]) -> Result<Plan> {
    Binder { params, user: catalog.current_user() }.query(query, catalog)
}

/// `current_user()` (or `CURRENT_USER`, as SQL spells it): the signed-in user, known when the
/// query is planned.
const USER_FUNCTIONS: [&str; 1] = ["current_user"];

/// Where an expression is bound, for error messages about aggregates.
#[derive(Clone, Copy, PartialEq)]
enum Clause {
    Where,
    On,
    GroupBy,
    AggArg,
    Select,
}

impl Clause {
    fn no_aggregates(self) -> QueryError {
        QueryError::ty(match self {
            Clause::Where => "aggregate functions are not allowed in WHERE (use HAVING)",
            Clause::On => "aggregate functions are not allowed in JOIN ... ON",
            Clause::GroupBy => "aggregate functions are not allowed in GROUP BY",
            Clause::AggArg => "aggregate function calls cannot be nested",
            Clause::Select => "aggregate functions are not allowed here",
        })
    }
}

/// Aggregation in progress: the group keys and the aggregates found so far.
struct AggState {
    group: Vec<TypedExpr>,
    aggs: Vec<AggCall>,
}

struct Binder<'a> {
    params: &'a [Value],
    /// The user `current_user()` names (see [`Catalog::current_user`]).
    user: Option<String>,
}

const AGGREGATES: [&str; 5] = ["count", "sum", "avg", "min", "max"];

fn is_aggregate(e: &Expr) -> bool {
    matches!(e, Expr::Function { name, .. } if AGGREGATES.contains(&name.as_str()))
}

/// Whether an aggregate call occurs anywhere in `e`.
pub(crate) fn contains_aggregate(e: &Expr) -> bool {
    let mut found = false;
    e.walk(&mut |x| found |= is_aggregate(x));
    found
}

fn field_of(name: String, ty: DataType) -> Field {
    Field { namespace: None, qualifier: None, name, ty, nullable: true }
}

impl Binder<'_> {
    // -----------------------------------------------------------------------------------------
    // Statement

    fn query(&self, q: &Query, catalog: &dyn Catalog) -> Result<Plan> {
        let mut input = match &q.from {
            None => Plan { node: Node::Empty, schema: Schema::default() },
            Some(from) => self.from(from, catalog)?,
        };
        if let Some(w) = &q.selection {
            let predicate = self.bind(w, &input.schema, None, Clause::Where)?;
            expect_boolean(&predicate, "WHERE")?;
            let schema = input.schema.clone();
            input = Plan { node: Node::Filter { input: Box::new(input), predicate }, schema };
        }

        let select_exprs: Vec<&Expr> = q
            .projection
            .iter()
            .filter_map(|i| match i {
                SelectItem::Expr { expr, .. } => Some(expr),
                _ => None,
            })
            .collect();
        let aggregating = !q.group_by.is_empty()
            || select_exprs.iter().any(|e| contains_aggregate(e))
            || q.having.as_ref().is_some_and(contains_aggregate)
            || q.order_by.iter().any(|o| contains_aggregate(&o.expr));
        if q.having.is_some() && !aggregating {
            return Err(QueryError::ty("HAVING requires GROUP BY or an aggregate function"));
        }

        // The select list, over the input (or over the aggregate's output).
        let mut agg = if aggregating {
            let mut group = Vec::with_capacity(q.group_by.len());
            for g in &q.group_by {
                group.push(self.group_key(g, q, &input.schema)?);
            }
            Some(AggState { group, aggs: Vec::new() })
        } else {
            None
        };
        let mut outputs: Vec<(TypedExpr, Field)> = Vec::new();
        let mut aliases: Vec<(String, usize)> = Vec::new();
        for item in &q.projection {
            match item {
                SelectItem::Wildcard | SelectItem::QualifiedWildcard(_) => {
                    if agg.is_some() {
                        return Err(QueryError::ty("SELECT * cannot be combined with GROUP BY or aggregates"));
                    }
                    let want = match item {
                        SelectItem::QualifiedWildcard(t) => Some(t.as_str()),
                        _ => None,
                    };
                    let before = outputs.len();
                    for (i, f) in input.schema.fields.iter().enumerate() {
                        if want.is_none() || f.qualifier.as_deref() == want {
                            outputs.push((TypedExpr::column(i, f.ty), f.clone()));
                        }
                    }
                    if let (Some(t), true) = (want, outputs.len() == before) {
                        return Err(QueryError::UnknownTable(t.to_string()));
                    }
                }
                SelectItem::Expr { expr, alias } => {
                    let te = self.bind(expr, &input.schema, agg.as_mut(), Clause::Select)?;
                    let field = self.output_field(expr, alias.as_deref(), &te, &input.schema, agg.as_ref());
                    if let Some(a) = alias {
                        aliases.push((a.clone(), outputs.len()));
                    }
                    outputs.push((te, field));
                }
            }
        }

        let mut having = None;
        if let Some(h) = &q.having {
            let te = self.bind(h, &input.schema, agg.as_mut(), Clause::Select)?;
            expect_boolean(&te, "HAVING")?;
            having = Some(te);
        }

        // ORDER BY: an ordinal, an output alias, an output expression, or a hidden extra column.
        let mut hidden: Vec<TypedExpr> = Vec::new();
        let mut keys = Vec::new();
        for o in &q.order_by {
            let index = match &o.expr {
                Expr::Literal(Literal::Int(k)) => match usize::try_from(*k) {
                    Ok(n) if (1..=outputs.len()).contains(&n) => n - 1,
                    _ => return Err(QueryError::ty(format!("ORDER BY position {k} is not in the select list"))),
                },
                Expr::Column(parts) if parts.len() == 1 && aliases.iter().any(|(a, _)| *a == parts[0]) => {
                    aliases.iter().find(|(a, _)| *a == parts[0]).map_or(0, |(_, i)| *i)
                }
                e => {
                    let te = self.bind(e, &input.schema, agg.as_mut(), Clause::Select)?;
                    if let Some(i) = outputs.iter().position(|(o, _)| *o == te) {
                        i
                    } else if let Some(i) = hidden.iter().position(|h| *h == te) {
                        outputs.len() + i
                    } else {
                        if q.distinct {
                            return Err(QueryError::ty(
                                "for SELECT DISTINCT, ORDER BY expressions must appear in the select list",
                            ));
                        }
                        hidden.push(te);
                        outputs.len() + hidden.len() - 1
                    }
                }
            };
            keys.push((index, o.desc, o.nulls_first.unwrap_or(o.desc)));
        }

        // Assemble.
        if let Some(state) = agg {
            let mut fields: Vec<Field> = state
                .group
                .iter()
                .enumerate()
                .map(|(i, g)| match &g.kind {
                    ExprKind::Column(c) => input.schema.fields[*c].clone(),
                    _ => field_of(format!("group_{i}"), g.ty),
                })
                .collect();
            fields.extend(state.aggs.iter().enumerate().map(|(i, a)| field_of(format!("agg_{i}"), a.ty)));
            input = Plan {
                node: Node::Aggregate { input: Box::new(input), group_by: state.group, aggregates: state.aggs },
                schema: Schema { fields },
            };
            if let Some(predicate) = having {
                let schema = input.schema.clone();
                input = Plan { node: Node::Filter { input: Box::new(input), predicate }, schema };
            }
        }
        let n_out = outputs.len();
        let mut fields: Vec<Field> = outputs.iter().map(|(_, f)| f.clone()).collect();
        fields.extend(hidden.iter().enumerate().map(|(i, h)| field_of(format!("__sort_{i}"), h.ty)));
        let mut exprs: Vec<TypedExpr> = outputs.into_iter().map(|(e, _)| e).collect();
        exprs.extend(hidden);
        let mut plan = Plan { node: Node::Project { input: Box::new(input), exprs }, schema: Schema { fields } };
        if q.distinct {
            let schema = plan.schema.clone();
            plan = Plan { node: Node::Distinct { input: Box::new(plan) }, schema };
        }
        if !keys.is_empty() {
            let keys = keys
                .into_iter()
                .map(|(i, desc, nulls_first)| SortKey {
                    expr: TypedExpr::column(i, plan.schema.fields[i].ty),
                    desc,
                    nulls_first,
                })
                .collect();
            let schema = plan.schema.clone();
            plan = Plan { node: Node::Sort { input: Box::new(plan), keys }, schema };
        }
        if q.limit.is_some() || q.offset.is_some() {
            let schema = plan.schema.clone();
            plan = Plan {
                node: Node::Limit { input: Box::new(plan), offset: q.offset.unwrap_or(0), limit: q.limit },
                schema,
            };
        }
        if plan.schema.fields.len() > n_out {
            let fields: Vec<Field> = plan.schema.fields[..n_out].to_vec();
            let exprs = fields.iter().enumerate().map(|(i, f)| TypedExpr::column(i, f.ty)).collect();
            plan = Plan { node: Node::Project { input: Box::new(plan), exprs }, schema: Schema { fields } };
        }
        Ok(plan)
    }

    /// A GROUP BY item: an input expression, else a select-list alias, else an ordinal.
    fn group_key(&self, g: &Expr, q: &Query, scope: &Schema) -> Result<TypedExpr> {
        let select_expr = |k: usize| -> Option<&Expr> {
            match q.projection.get(k) {
                Some(SelectItem::Expr { expr, .. }) => Some(expr),
                _ => None,
            }
        };
        let target = match g {
            Expr::Literal(Literal::Int(k)) => Some(
                select_expr(usize::try_from(k.wrapping_sub(1)).unwrap_or(usize::MAX))
                    .ok_or_else(|| QueryError::ty(format!("GROUP BY position {k} is not in the select list")))?,
            ),
            Expr::Column(parts) if parts.len() == 1 && self.resolve(parts, scope).is_err() => {
                q.projection.iter().find_map(|i| match i {
                    SelectItem::Expr { expr, alias: Some(a) } if *a == parts[0] => Some(expr),
                    _ => None,
                })
            }
            _ => None,
        };
        let e = target.unwrap_or(g);
        if contains_aggregate(e) {
            return Err(Clause::GroupBy.no_aggregates());
        }
        self.bind(e, scope, None, Clause::GroupBy)
    }

    fn output_field(
        &self,
        expr: &Expr,
        alias: Option<&str>,
        te: &TypedExpr,
        scope: &Schema,
        agg: Option<&AggState>,
    ) -> Field {
        let source = match (&te.kind, agg) {
            (ExprKind::Column(i), None) => scope.fields.get(*i),
            (ExprKind::Column(i), Some(state)) => match state.group.get(*i).map(|g| &g.kind) {
                Some(ExprKind::Column(c)) => scope.fields.get(*c),
                _ => None,
            },
            _ => None,
        };
        match (alias, source) {
            (Some(a), _) => Field { namespace: None, qualifier: None, name: a.to_string(), ty: te.ty, nullable: true },
            (None, Some(f)) => Field { ty: te.ty, ..f.clone() },
            (None, None) => {
                let name = match expr {
                    Expr::Column(parts) => parts.last().cloned().unwrap_or_default(),
                    e => e.to_string(),
                };
                Field { namespace: None, qualifier: None, name, ty: te.ty, nullable: true }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // FROM and JOIN

    fn scan(&self, t: &TableRef, catalog: &dyn Catalog) -> Result<Plan> {
        let table: TableSchema = catalog.table(t.namespace.as_deref(), &t.name).ok_or_else(|| {
            QueryError::UnknownTable(match &t.namespace {
                Some(ns) => format!("{ns}.{}", t.name),
                None => t.name.clone(),
            })
        })?;
        let qualifier = t.visible_name().to_string();
        let namespace = if t.alias.is_some() { None } else { Some(table.namespace.clone()) };
        let fields = table
            .columns
            .iter()
            .map(|c| Field {
                namespace: namespace.clone(),
                qualifier: Some(qualifier.clone()),
                name: c.name.clone(),
                ty: c.ty,
                nullable: c.nullable,
            })
            .collect();
        Ok(Plan { node: Node::Scan { table }, schema: Schema { fields } })
    }

    fn from(&self, from: &FromClause, catalog: &dyn Catalog) -> Result<Plan> {
        let mut plan = self.scan(&from.base, catalog)?;
        let mut seen = vec![from.base.visible_name().to_string()];
        for j in &from.joins {
            let name = j.table.visible_name().to_string();
            if seen.contains(&name) {
                return Err(QueryError::ty(format!(
                    "table name '{name}' appears more than once in FROM (give one an alias)"
                )));
            }
            seen.push(name);
            let mut right = self.scan(&j.table, catalog)?;
            let left_len = plan.schema.fields.len();
            let mut fields = plan.schema.fields.clone();
            fields.extend(
                right
                    .schema
                    .fields
                    .iter()
                    .map(|f| Field { nullable: f.nullable || j.kind == JoinKind::Left, ..f.clone() }),
            );
            let schema = Schema { fields };
            let cond = self.bind(&j.on, &schema, None, Clause::On)?;
            expect_boolean(&cond, "JOIN ... ON")?;
            let mut conjuncts = Vec::new();
            split_and(cond, &mut conjuncts);
            let (mut on, mut rest) = (Vec::new(), Vec::new());
            for c in conjuncts {
                if let Some((l, r)) = equi_pair(&c, left_len) {
                    let common = join_key_type(l.ty, r.ty)?;
                    let r = r.remap(&|i| i - left_len);
                    on.push((coerce(l, common), coerce(r, common)));
                } else if c.columns().iter().all(|i| *i >= left_len) {
                    // A condition on the joined table alone filters it before the join (the
                    // same for INNER and LEFT: unmatched left rows are still NULL-extended).
                    let predicate = c.remap(&|i| i - left_len);
                    let rs = right.schema.clone();
                    right = Plan { node: Node::Filter { input: Box::new(right), predicate }, schema: rs };
                } else {
                    rest.push(c);
                }
            }
            if on.is_empty() {
                return Err(QueryError::unsupported(
                    "joins without an equality between the joined tables (cross joins)",
                    None,
                ));
            }
            let filter = rest.into_iter().reduce(|a, b| {
                TypedExpr::new(
                    ExprKind::Binary { op: BinaryOp::And, left: Box::new(a), right: Box::new(b) },
                    DataType::Boolean,
                )
            });
            plan = Plan {
                node: Node::Join { left: Box::new(plan), right: Box::new(right), kind: j.kind, on, filter },
                schema,
            };
        }
        Ok(plan)
    }

    // -----------------------------------------------------------------------------------------
    // Expressions

    fn resolve(&self, parts: &[String], scope: &Schema) -> Result<(usize, DataType)> {
        let (ns, qual, name) = match parts {
            [c] => (None, None, c),
            [t, c] => (None, Some(t), c),
            [n, t, c] => (Some(n), Some(t), c),
            _ => return Err(QueryError::UnknownColumn(parts.join("."))),
        };
        let mut found = None;
        for (i, f) in scope.fields.iter().enumerate() {
            let ok = f.name == *name
                && qual.is_none_or(|q| f.qualifier.as_deref() == Some(q.as_str()))
                && ns.is_none_or(|n| f.namespace.as_deref() == Some(n.as_str()));
            if ok {
                if found.is_some() {
                    return Err(QueryError::AmbiguousColumn(parts.join(".")));
                }
                found = Some((i, f.ty));
            }
        }
        found.ok_or_else(|| QueryError::UnknownColumn(parts.join(".")))
    }

    /// Bind `e` over `scope`. With `agg`, `e` is bound over the aggregate's output: aggregate
    /// calls become its columns, expressions equal to a group key become that key's column,
    /// and any other column reference is an error.
    fn bind(&self, e: &Expr, scope: &Schema, mut agg: Option<&mut AggState>, clause: Clause) -> Result<TypedExpr> {
        if let Some(state) = agg.as_deref_mut() {
            if is_aggregate(e) {
                return self.aggregate(e, scope, state);
            }
            // Literals too: `SELECT -0.0 ... GROUP BY -0.0` shows the group key (0.0).
            if !contains_aggregate(e) {
                let te = self.bind(e, scope, None, clause)?;
                if let Some(i) = state.group.iter().position(|g| *g == te) {
                    return Ok(TypedExpr::column(i, te.ty));
                }
                if let Expr::Column(parts) = e {
                    return Err(QueryError::ty(format!(
                        "column '{}' must appear in GROUP BY or be used in an aggregate function",
                        parts.join(".")
                    )));
                }
            }
        } else if is_aggregate(e) {
            return Err(clause.no_aggregates());
        }
        let mut sub = |x: &Expr| self.bind(x, scope, agg.as_deref_mut(), clause);
        Ok(match e {
            Expr::Column(parts) => match (self.resolve(parts, scope), parts.as_slice()) {
                (Ok((i, ty)), _) => TypedExpr::column(i, ty),
                // `CURRENT_USER` without parentheses, as SQL spells it (a column of that name wins).
                (Err(QueryError::UnknownColumn(_)), [name]) if USER_FUNCTIONS.contains(&name.as_str()) => {
                    self.current_user(name)?
                }
                (Err(e), _) => return Err(e),
            },
            Expr::Literal(l) => literal(l),
            Expr::Param { index, .. } => {
                let v = index.checked_sub(1).and_then(|i| self.params.get(i)).ok_or_else(|| {
                    QueryError::ty(format!(
                        "the query uses parameter ${index} but {} parameter(s) were given",
                        self.params.len()
                    ))
                })?;
                TypedExpr::new(ExprKind::Literal(v.clone()), value_type(v))
            }
            Expr::Unary { op: UnaryOp::Not, expr } => {
                let inner = sub(expr)?;
                expect_boolean(&inner, "NOT")?;
                TypedExpr::new(ExprKind::Not(Box::new(inner)), DataType::Boolean)
            }
            Expr::Unary { op: UnaryOp::Neg, expr } => {
                let inner = sub(expr)?;
                if !(inner.ty.is_numeric() || inner.ty == DataType::Null) {
                    return Err(QueryError::ty(format!("cannot negate a value of type {}", inner.ty)));
                }
                let ty = inner.ty;
                TypedExpr::new(ExprKind::Neg(Box::new(inner)), ty)
            }
            Expr::Binary { left, op, right } => {
                let (l, r) = (sub(left)?, sub(right)?);
                binary(*op, l, r)?
            }
            Expr::IsNull { expr, negated } => {
                TypedExpr::new(ExprKind::IsNull { expr: Box::new(sub(expr)?), negated: *negated }, DataType::Boolean)
            }
            Expr::InList { expr, list, negated } => {
                let mut x = sub(expr)?;
                let mut items = Vec::with_capacity(list.len());
                for item in list {
                    let (a, b) = comparable(x, sub(item)?, "IN")?;
                    x = a;
                    items.push(b);
                }
                TypedExpr::new(
                    ExprKind::InList { expr: Box::new(x), list: items, negated: *negated },
                    DataType::Boolean,
                )
            }
            Expr::Between { expr, low, high, negated } => {
                // `x BETWEEN a AND b` is `x >= a AND x <= b` (as DataFusion rewrites it).
                let x = sub(expr)?;
                let (lo, hi) = (sub(low)?, sub(high)?);
                let ge = binary(BinaryOp::GtEq, x.clone(), lo)?;
                let le = binary(BinaryOp::LtEq, x, hi)?;
                let both = binary(BinaryOp::And, ge, le)?;
                if *negated { TypedExpr::new(ExprKind::Not(Box::new(both)), DataType::Boolean) } else { both }
            }
            Expr::Like { expr, pattern, negated, case_insensitive } => {
                let (x, p) = (sub(expr)?, sub(pattern)?);
                for (t, what) in [(&x, "operand"), (&p, "pattern")] {
                    if !(t.ty.is_string() || t.ty == DataType::Null) {
                        return Err(QueryError::ty(format!("LIKE {what} must be text, not {}", t.ty)));
                    }
                }
                TypedExpr::new(
                    ExprKind::Like {
                        expr: Box::new(x),
                        pattern: Box::new(p),
                        negated: *negated,
                        case_insensitive: *case_insensitive,
                    },
                    DataType::Boolean,
                )
            }
            Expr::Cast { expr, ty } => {
                let inner = sub(expr)?;
                check_cast(inner.ty, *ty)?;
                TypedExpr::new(ExprKind::Cast(Box::new(inner)), *ty)
            }
            Expr::Function { name, args, distinct, star } => {
                if *distinct || *star {
                    return Err(QueryError::ty(format!("{name}() is not an aggregate function")));
                }
                if USER_FUNCTIONS.contains(&name.as_str()) {
                    if !args.is_empty() {
                        return Err(QueryError::ty(format!("{name}() takes no arguments")));
                    }
                    return self.current_user(name);
                }
                let mut bound = Vec::with_capacity(args.len());
                for a in args {
                    bound.push(sub(a)?);
                }
                scalar_function(name, args, bound)?
            }
        })
    }

    /// `current_user()`: the signed-in user's name, a constant of the query.
    fn current_user(&self, name: &str) -> Result<TypedExpr> {
        let user = self.user.clone().ok_or_else(|| {
            QueryError::unsupported(format!("{name}() (no signed-in user is known where this query runs)"), None)
        })?;
        Ok(TypedExpr::new(ExprKind::Literal(Value::Text(user.into())), DataType::Text))
    }

    fn aggregate(&self, e: &Expr, scope: &Schema, state: &mut AggState) -> Result<TypedExpr> {
        let Expr::Function { name, args, distinct, star } = e else {
            return Err(QueryError::ty("expected an aggregate call"));
        };
        let (func, arg) = if *star {
            if name != "count" {
                return Err(QueryError::ty(format!("{name}(*) is not valid; only count(*) takes '*'")));
            }
            (AggFunc::CountStar, None)
        } else {
            if args.len() != 1 {
                return Err(QueryError::ty(format!("{name}() takes exactly one argument, {} given", args.len())));
            }
            let arg = self.bind(&args[0], scope, None, Clause::AggArg)?;
            let func = match name.as_str() {
                "count" => AggFunc::Count,
                "sum" => AggFunc::Sum,
                "avg" => AggFunc::Avg,
                "min" => AggFunc::Min,
                _ => AggFunc::Max,
            };
            (func, Some(arg))
        };
        let in_ty = arg.as_ref().map_or(DataType::Null, |a| a.ty);
        let ty = match func {
            AggFunc::CountStar | AggFunc::Count => DataType::BigInt,
            AggFunc::Sum => match in_ty {
                t if t.is_integer() || t == DataType::Null => DataType::BigInt,
                t if t.is_float() => DataType::Double,
                DataType::Decimal { precision, scale } => {
                    DataType::Decimal { precision: (precision + 10).min(MAX_DECIMAL_PRECISION), scale }
                }
                t => return Err(QueryError::ty(format!("sum() needs a numeric argument, not {t}"))),
            },
            AggFunc::Avg => match in_ty {
                t if t.is_integer() || t.is_float() || t == DataType::Null => DataType::Double,
                DataType::Decimal { precision, scale } => DataType::Decimal {
                    precision: (precision + 4).min(MAX_DECIMAL_PRECISION),
                    scale: (scale + 4).min(MAX_DECIMAL_PRECISION as i8),
                },
                t => return Err(QueryError::ty(format!("avg() needs a numeric argument, not {t}"))),
            },
            AggFunc::Min | AggFunc::Max => in_ty,
        };
        let call = AggCall { func, arg, distinct: *distinct && func != AggFunc::CountStar, ty };
        let i = match state.aggs.iter().position(|a| *a == call) {
            Some(i) => i,
            None => {
                state.aggs.push(call);
                state.aggs.len() - 1
            }
        };
        Ok(TypedExpr::column(state.group.len() + i, ty))
    }
}

// ---------------------------------------------------------------------------------------------
// Typing rules

fn expect_boolean(e: &TypedExpr, what: &str) -> Result<()> {
    if matches!(e.ty, DataType::Boolean | DataType::Null) {
        Ok(())
    } else {
        Err(QueryError::ty(format!("{what} needs a BOOLEAN expression, not {}", e.ty)))
    }
}

fn literal(l: &Literal) -> TypedExpr {
    let (v, ty) = match l {
        Literal::Null => (Value::Null, DataType::Null),
        Literal::Boolean(b) => (Value::Boolean(*b), DataType::Boolean),
        Literal::Int(i) => (Value::Int64(*i), DataType::BigInt),
        Literal::Float(f) => (Value::Float64(*f), DataType::Double),
        Literal::String(s) => (Value::Text(s.as_str().into()), DataType::Text),
        Literal::Date(d) => (Value::Date(*d), DataType::Date),
        Literal::Timestamp(t) => (Value::Timestamp(*t), DataType::Timestamp),
    };
    TypedExpr::new(ExprKind::Literal(v), ty)
}

/// The type of a parameter value.
pub(crate) fn value_type(v: &Value) -> DataType {
    match v {
        Value::Null => DataType::Null,
        Value::Boolean(_) => DataType::Boolean,
        Value::Int64(_) => DataType::BigInt,
        Value::Float64(_) => DataType::Double,
        Value::Decimal(d) => DataType::Decimal { precision: MAX_DECIMAL_PRECISION, scale: d.scale },
        Value::Text(_) => DataType::Text,
        Value::Bytes(_) => DataType::Bytes,
        Value::Date(_) => DataType::Date,
        Value::Timestamp(_) => DataType::Timestamp,
        Value::Json(_) => DataType::Json,
    }
}

/// Wrap `e` in a cast to `ty` unless it already has that type.
fn coerce(e: TypedExpr, ty: DataType) -> TypedExpr {
    if e.ty == ty || e.ty == DataType::Null && ty == DataType::Null {
        e
    } else {
        TypedExpr::new(ExprKind::Cast(Box::new(e)), ty)
    }
}

/// A text literal next to a value of type `ty` is read as that type (`ts > '2024-01-01'`,
/// `price = '9.50'`), at plan time.
fn retype_literal(e: TypedExpr, ty: DataType) -> Result<TypedExpr> {
    let ExprKind::Literal(Value::Text(s)) = &e.kind else { return Ok(e) };
    let bad = || QueryError::ty(format!("cannot read '{s}' as {ty}"));
    let v = match ty {
        // As CAST: a timestamp text reads as its date.
        DataType::Date => Value::Date(
            parse_date(s)
                .or_else(|| parse_timestamp(s).map(|t| t.div_euclid(crate::value::MICROS_PER_DAY) as i32))
                .ok_or_else(bad)?,
        ),
        DataType::Timestamp => Value::Timestamp(parse_timestamp(s).ok_or_else(bad)?),
        t if t.is_integer() => Value::Int64(s.trim().parse().map_err(|_| bad())?),
        t if t.is_float() => Value::Float64(s.trim().parse().map_err(|_| bad())?),
        // As DataFusion: the text is cast to the column's decimal type (rounded half up).
        DataType::Decimal { scale, .. } => Value::decimal(parse_decimal(s, scale).ok_or_else(bad)?, scale),
        DataType::Boolean => Value::Boolean(parse_bool(s).ok_or_else(bad)?),
        _ => return Ok(e),
    };
    let vt = match &v {
        Value::Decimal(d) => DataType::Decimal { precision: MAX_DECIMAL_PRECISION, scale: d.scale },
        _ => ty,
    };
    Ok(TypedExpr::new(ExprKind::Literal(v), vt))
}

pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "on" | "1" => Some(true),
        "false" | "f" | "no" | "n" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// Check that `l` and `r` may be compared, reading text literals as the other side's type.
fn comparable(l: TypedExpr, r: TypedExpr, what: &str) -> Result<(TypedExpr, TypedExpr)> {
    let is_text_lit = |e: &TypedExpr| matches!(e.kind, ExprKind::Literal(Value::Text(_)));
    let (l, r) = if is_text_lit(&r) && !l.ty.is_string() {
        let ty = l.ty;
        (l, retype_literal(r, ty)?)
    } else if is_text_lit(&l) && !r.ty.is_string() {
        let ty = r.ty;
        (retype_literal(l, ty)?, r)
    } else {
        (l, r)
    };
    let ok = l.ty == DataType::Null
        || r.ty == DataType::Null
        || (l.ty.is_numeric() && r.ty.is_numeric())
        || (l.ty.is_string() && r.ty.is_string())
        || (l.ty.is_temporal() && r.ty.is_temporal())
        || l.ty == r.ty;
    if ok { Ok((l, r)) } else { Err(QueryError::ty(format!("cannot compare {} with {} in {what}", l.ty, r.ty))) }
}

/// The type both sides of a join key are converted to, so equal keys hash alike.
fn join_key_type(a: DataType, b: DataType) -> Result<DataType> {
    use DataType::*;
    if a == b {
        return Ok(a);
    }
    Ok(match (a, b) {
        (x, y) if x.is_string() && y.is_string() => Text,
        (x, y) if (x.is_float() || y.is_float()) && x.is_numeric() && y.is_numeric() => Double,
        (x, y) if x.is_integer() && y.is_integer() => BigInt,
        (x, y) if x.is_numeric() && y.is_numeric() => wider_decimal(x, y),
        (Date | Timestamp, Date | Timestamp) => Timestamp,
        _ => return Err(QueryError::ty(format!("cannot join {a} with {b}"))),
    })
}

/// The decimal that holds both (integer or decimal) types exactly.
fn wider_decimal(a: DataType, b: DataType) -> DataType {
    let (p1, s1) = a.integer_as_decimal().unwrap_or((MAX_DECIMAL_PRECISION, 0));
    let (p2, s2) = b.integer_as_decimal().unwrap_or((MAX_DECIMAL_PRECISION, 0));
    let scale = s1.max(s2);
    let int_digits = (p1 as i16 - s1 as i16).max(p2 as i16 - s2 as i16);
    DataType::Decimal { precision: ((int_digits + scale as i16) as u8).min(MAX_DECIMAL_PRECISION), scale }
}

/// The common type of `coalesce` arguments.
fn supertype(a: DataType, b: DataType) -> Option<DataType> {
    use DataType::*;
    Some(match (a, b) {
        (Null, t) | (t, Null) => t,
        (x, y) if x == y => x,
        (x, y) if x.is_string() && y.is_string() => Text,
        (x, y) if x.is_integer() && y.is_integer() => {
            if x == BigInt || y == BigInt {
                BigInt
            } else if x == Int || y == Int {
                Int
            } else {
                SmallInt
            }
        }
        (Double, y) | (y, Double) if y.is_numeric() => Double,
        (Float, y) | (y, Float) if y.is_numeric() => {
            if y.is_integer() || y == Float {
                Float
            } else {
                Double
            }
        }
        (x, y) if x.is_numeric() && y.is_numeric() => wider_decimal(x, y),
        (Date | Timestamp, Date | Timestamp) => Timestamp,
        _ => return None,
    })
}

/// The result type of arithmetic, following DataFusion (and Arrow's decimal rules).
fn arithmetic_type(op: BinaryOp, a: DataType, b: DataType) -> Result<DataType> {
    use DataType::*;
    let err = || {
        if a.is_temporal() || b.is_temporal() {
            QueryError::unsupported("date and time arithmetic", None)
        } else {
            QueryError::ty(format!("cannot apply '{}' to {a} and {b}", op.symbol()))
        }
    };
    Ok(match (a, b) {
        (Null, Null) => Null,
        (Null, t) | (t, Null) if t.is_numeric() => t,
        (x, y) if x.is_integer() && y.is_integer() => supertype(x, y).ok_or_else(err)?,
        (Double, y) | (y, Double) if y.is_numeric() => Double,
        (Float, y) | (y, Float) if y.is_numeric() => Float,
        (x, y) if x.is_numeric() && y.is_numeric() => {
            let (p1, s1) = x.integer_as_decimal().ok_or_else(err)?;
            let (p2, s2) = y.integer_as_decimal().ok_or_else(err)?;
            let (p1, s1, p2, s2) = (p1 as i32, s1 as i32, p2 as i32, s2 as i32);
            let max_p = MAX_DECIMAL_PRECISION as i32;
            let (p, s) = match op {
                BinaryOp::Plus | BinaryOp::Minus => {
                    let s = s1.max(s2);
                    ((p1 - s1).max(p2 - s2) + s + 1, s)
                }
                BinaryOp::Multiply => {
                    if s1 + s2 > max_p {
                        return Err(QueryError::ty(format!("the scale of {a} * {b} would exceed {max_p}")));
                    }
                    (p1 + p2 + 1, s1 + s2)
                }
                BinaryOp::Divide => {
                    let s = (s1 + 4).min(max_p);
                    (s - s1 + s2 + p1, s)
                }
                _ => {
                    let s = s1.max(s2);
                    ((p1 - s1).min(p2 - s2) + s, s)
                }
            };
            Decimal { precision: p.clamp(1, max_p) as u8, scale: s as i8 }
        }
        _ => return Err(err()),
    })
}

fn binary(op: BinaryOp, l: TypedExpr, r: TypedExpr) -> Result<TypedExpr> {
    let mk = |l, r, ty| Ok(TypedExpr::new(ExprKind::Binary { op, left: Box::new(l), right: Box::new(r) }, ty));
    match op {
        BinaryOp::And | BinaryOp::Or => {
            expect_boolean(&l, op.symbol())?;
            expect_boolean(&r, op.symbol())?;
            mk(l, r, DataType::Boolean)
        }
        BinaryOp::Eq | BinaryOp::NotEq | BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq => {
            let (l, r) = comparable(l, r, &format!("'{}'", op.symbol()))?;
            mk(l, r, DataType::Boolean)
        }
        BinaryOp::Concat => {
            // As DataFusion: one operand must be text; the other (not BYTES) is read as text.
            if !(l.ty.is_string() || r.ty.is_string()) || l.ty == DataType::Bytes || r.ty == DataType::Bytes {
                return Err(QueryError::ty(format!(
                    "'||' needs a text operand (and no BYTES), not {} and {}",
                    l.ty, r.ty
                )));
            }
            let (l, r) = (coerce(l, DataType::Text), coerce(r, DataType::Text));
            mk(l, r, DataType::Text)
        }
        _ => {
            let ty = arithmetic_type(op, l.ty, r.ty)?;
            mk(l, r, ty)
        }
    }
}

/// Which casts exist.
fn check_cast(from: DataType, to: DataType) -> Result<()> {
    use DataType::*;
    let ok = from == to
        || from == Null
        || to.is_string()
        || (from.is_numeric() && to.is_numeric())
        || (from.is_string() && matches!(to, Boolean | Date | Timestamp | Json) || from.is_string() && to.is_numeric())
        || (from.is_temporal() && to.is_temporal())
        || (from == Boolean && to.is_integer())
        || (from.is_integer() && to == Boolean);
    if ok && to != Null && to != Bytes || from == to {
        Ok(())
    } else {
        Err(QueryError::ty(format!("cannot cast {from} to {to}")))
    }
}

fn scalar_function(name: &str, args: &[Expr], mut bound: Vec<TypedExpr>) -> Result<TypedExpr> {
    let arity = |n: usize| -> Result<()> {
        if bound.len() == n {
            Ok(())
        } else {
            Err(QueryError::ty(format!("{name}() takes {n} argument(s), {} given", bound.len())))
        }
    };
    let text_arg = |t: DataType| -> Result<()> {
        if t.is_string() || t == DataType::Null {
            Ok(())
        } else {
            Err(QueryError::ty(format!("{name}() needs a text argument, not {t}")))
        }
    };
    let (func, ty) = match name {
        "lower" | "upper" => {
            arity(1)?;
            text_arg(bound[0].ty)?;
            (if name == "lower" { ScalarFunc::Lower } else { ScalarFunc::Upper }, DataType::Text)
        }
        "length" | "char_length" | "character_length" => {
            arity(1)?;
            text_arg(bound[0].ty)?;
            (ScalarFunc::Length, DataType::Int)
        }
        "coalesce" => {
            if bound.is_empty() {
                return Err(QueryError::ty("coalesce() needs at least one argument"));
            }
            let mut ty = DataType::Null;
            for b in &bound {
                ty = supertype(ty, b.ty).ok_or_else(|| {
                    QueryError::ty(format!("coalesce() arguments have incompatible types {ty} and {}", b.ty))
                })?;
            }
            bound = bound.into_iter().map(|b| coerce(b, ty)).collect();
            (ScalarFunc::Coalesce, ty)
        }
        "abs" => {
            arity(1)?;
            if !(bound[0].ty.is_numeric() || bound[0].ty == DataType::Null) {
                return Err(QueryError::ty(format!("abs() needs a numeric argument, not {}", bound[0].ty)));
            }
            (ScalarFunc::Abs, bound[0].ty)
        }
        "round" => {
            if bound.is_empty() || bound.len() > 2 {
                return Err(QueryError::ty("round() takes 1 or 2 arguments"));
            }
            let places = match args.get(1) {
                None => 0,
                Some(Expr::Literal(Literal::Int(n))) => {
                    i32::try_from(*n).map_err(|_| QueryError::ty("round(): the number of places is out of range"))?
                }
                Some(_) => {
                    return Err(QueryError::unsupported("a non-literal number of places in round()", None));
                }
            };
            bound.truncate(1);
            let ty = match bound[0].ty {
                t if t.is_integer() || t.is_float() => t,
                DataType::Null => DataType::Double,
                DataType::Decimal { precision, scale } => {
                    let new_scale = if scale < 0 { scale } else { (scale as i32).min(places.max(0)) as i8 };
                    let precision = if scale == 0 && places < 0 && places.unsigned_abs() <= precision as u32 {
                        (precision + 1).min(MAX_DECIMAL_PRECISION)
                    } else {
                        precision
                    };
                    DataType::Decimal { precision, scale: new_scale }
                }
                t => return Err(QueryError::ty(format!("round() needs a numeric argument, not {t}"))),
            };
            (ScalarFunc::Round(places), ty)
        }
        "date_trunc" => {
            arity(2)?;
            let unit = match &args[0] {
                Expr::Literal(Literal::String(s)) => {
                    DateUnit::parse(s).ok_or_else(|| QueryError::ty(format!("date_trunc(): unknown unit '{s}'")))?
                }
                _ => return Err(QueryError::ty("date_trunc() needs a literal unit such as 'day'")),
            };
            let ts = bound.remove(1);
            let ts = match ts.ty {
                DataType::Timestamp => ts,
                DataType::Date | DataType::Null => coerce(ts, DataType::Timestamp),
                t => return Err(QueryError::ty(format!("date_trunc() needs a TIMESTAMP, not {t}"))),
            };
            bound = vec![ts];
            (ScalarFunc::DateTrunc(unit), DataType::Timestamp)
        }
        "now" | "current_timestamp" | "current_date" | "random" | "uuid" => {
            return Err(QueryError::unsupported(
                format!("the function {name}() (its value would differ between server and client)"),
                None,
            ));
        }
        "row_number" | "rank" | "dense_rank" | "lag" | "lead" | "ntile" | "first_value" | "last_value" => {
            return Err(QueryError::unsupported("window functions", None));
        }
        other => return Err(QueryError::unsupported(format!("the function {other}()"), None)),
    };
    Ok(TypedExpr::new(ExprKind::Func(func, bound), ty))
}

/// Split a conjunction into its parts.
fn split_and(e: TypedExpr, out: &mut Vec<TypedExpr>) {
    match e.kind {
        ExprKind::Binary { op: BinaryOp::And, left, right } => {
            split_and(*left, out);
            split_and(*right, out);
        }
        kind => out.push(TypedExpr { kind, ty: e.ty }),
    }
}

/// `l = r` with one side over the left input and the other over the right: (left key, right key).
fn equi_pair(e: &TypedExpr, left_len: usize) -> Option<(TypedExpr, TypedExpr)> {
    let ExprKind::Binary { op: BinaryOp::Eq, left, right } = &e.kind else { return None };
    let side = |x: &TypedExpr| {
        let cols = x.columns();
        if cols.is_empty() {
            None
        } else if cols.iter().all(|c| *c < left_len) {
            Some(false)
        } else if cols.iter().all(|c| *c >= left_len) {
            Some(true)
        } else {
            None
        }
    };
    match (side(left)?, side(right)?) {
        (false, true) => Some(((**left).clone(), (**right).clone())),
        (true, false) => Some(((**right).clone(), (**left).clone())),
        _ => None,
    }
}
