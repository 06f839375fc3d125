//! From-scratch evaluation of a [`Plan`] over rows held in memory.
//!
//! Every operator materialises its output; rows are `Vec<Value>` aligned to the operator's
//! schema. This is the reference evaluator: the incremental engine (live queries) must agree
//! with it after every change.

use crate::ast::{BinaryOp, JoinKind};
use crate::error::{QueryError, Result};
use crate::eval::{cast, eval};
use crate::plan::{AggCall, AggFunc, ExprKind, Node, Plan, SortKey, TypedExpr};
use crate::schema::TableSchema;
use crate::types::DataType;
use crate::value::{Value, decimal_to_f64, rescale};
use std::cmp::Ordering;
use std::hash::{BuildHasherDefault, Hasher};

/// The FxHash function (rustc's): much faster than SipHash for short keys, and there is no
/// hash-flooding concern in a query over the caller's own rows.
#[derive(Default)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
        }
        for b in chunks.remainder() {
            self.add(*b as u64);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FxHasher>>;
pub(crate) type HashSet<K> = std::collections::HashSet<K, BuildHasherDefault<FxHasher>>;

/// One row: values aligned to a schema's columns.
pub type Row = Vec<Value>;

/// Supplies the rows of tables. Rows must be aligned to the table's [`TableSchema::columns`].
pub trait DataSource {
    /// All rows of `table`.
    fn scan<'a>(&'a self, table: &TableSchema) -> Result<Box<dyn Iterator<Item = &'a [Value]> + 'a>>;

    /// All rows of `table` as shared rows, when the source keeps them so: a dataflow's first
    /// step then takes them as they are instead of copying each one. `None` (the default): the
    /// rows of [`DataSource::scan`] are copied.
    fn scan_shared(&self, _table: &TableSchema) -> Result<Option<Vec<crate::incremental::SharedRow>>> {
        Ok(None)
    }

    /// The rows of `table` whose column `column` equals `value` (a value of the column's type,
    /// not NULL), when the source finds them without a scan, by an index: a `WHERE` with such
    /// an equality among its `AND`ed conditions reads these instead of the table, and evaluates
    /// the whole `WHERE` on each. A source may return more rows than match, never fewer.
    /// `None` (the default): scan.
    fn rows_equal(
        &self,
        _table: &TableSchema,
        _column: usize,
        _value: &Value,
    ) -> Result<Option<Vec<crate::incremental::SharedRow>>> {
        Ok(None)
    }
}

/// Run `plan` to completion.
pub fn execute(plan: &Plan, source: &dyn DataSource) -> Result<Vec<Row>> {
    match &plan.node {
        Node::Empty => Ok(vec![Vec::new()]),
        Node::Scan { table } => {
            let mut out = Vec::new();
            scan_where(source, table, None, &mut |r| {
                out.push(r.to_vec());
                Ok(())
            })?;
            Ok(out)
        }
        Node::Filter { input, predicate } => {
            let mut out = Vec::new();
            if let Node::Scan { table } = &input.node {
                // Right over a scan: test the stored rows and copy only those that pass.
                scan_where(source, table, Some(predicate), &mut |r| {
                    out.push(r.to_vec());
                    Ok(())
                })?;
                return Ok(out);
            }
            for r in execute(input, source)? {
                if matches!(eval(predicate, &r)?, Value::Boolean(true)) {
                    out.push(r);
                }
            }
            Ok(out)
        }
        Node::Project { input, exprs } => {
            let project = |r: &[Value]| exprs.iter().map(|e| eval(e, r)).collect::<Result<Row>>();
            // Over a (filtered) scan: compute the output from the stored rows, copying nothing else.
            let scanned = scan_with_filter(input);
            if let Some((table, predicate)) = scanned {
                let mut out = Vec::new();
                scan_where(source, table, predicate, &mut |r| {
                    out.push(project(r)?);
                    Ok(())
                })?;
                return Ok(out);
            }
            execute(input, source)?.iter().map(|r| project(r)).collect()
        }
        Node::Join { left, right, kind, on, filter } => {
            let (l, r) = (execute(left, source)?, execute(right, source)?);
            hash_join(l, r, *kind, on, filter.as_ref(), right.schema.fields.len())
        }
        Node::Aggregate { input, group_by, aggregates } => {
            // Over a (filtered) scan: aggregate the stored rows, copying none of them.
            let scanned = scan_with_filter(input);
            match scanned {
                Some((table, predicate)) => {
                    aggregate(&mut |add| scan_where(source, table, predicate, add), group_by, aggregates)
                }
                None => {
                    let rows = execute(input, source)?;
                    aggregate(&mut |add| rows.iter().try_for_each(|r| add(r)), group_by, aggregates)
                }
            }
        }
        Node::Distinct { input } => {
            let mut seen = HashSet::default();
            Ok(execute(input, source)?
                .into_iter()
                .map(|r| r.into_iter().map(Value::grouped).collect::<Row>())
                .filter(|r| seen.insert(r.clone()))
                .collect())
        }
        Node::Sort { input, keys } => sort(execute(input, source)?, keys, None),
        Node::Limit { input, offset, limit } => {
            let skip = usize::try_from(*offset).unwrap_or(usize::MAX);
            // ORDER BY ... LIMIT: only the first offset + limit rows need sorting.
            let rows = match (&input.node, limit) {
                (Node::Sort { input, keys }, Some(n)) => {
                    let keep = skip.saturating_add(usize::try_from(*n).unwrap_or(usize::MAX));
                    sort(execute(input, source)?, keys, Some(keep))?
                }
                _ => execute(input, source)?,
            };
            let rows = rows.into_iter().skip(skip);
            Ok(match limit {
                Some(n) => rows.take(usize::try_from(*n).unwrap_or(usize::MAX)).collect(),
                None => rows.collect(),
            })
        }
    }
}

/// `Scan` or `Filter` over a `Scan`: the table and the filter, so that the step above can
/// read the stored rows in place instead of copying them.
fn scan_with_filter(plan: &Plan) -> Option<(&TableSchema, Option<&TypedExpr>)> {
    match &plan.node {
        Node::Scan { table } => Some((table, None)),
        Node::Filter { input, predicate } => match &input.node {
            Node::Scan { table } => Some((table, Some(predicate))),
            _ => None,
        },
        _ => None,
    }
}

/// Calls `f` with every stored row of `table` for which `predicate` (if any) is TRUE, borrowed
/// from the source: what a filter or projection right over a scan needs, without copying rows
/// it drops.
fn scan_where(
    source: &dyn DataSource,
    table: &TableSchema,
    predicate: Option<&TypedExpr>,
    f: &mut dyn FnMut(&[Value]) -> Result<()>,
) -> Result<()> {
    let width = table.columns.len();
    let found = match predicate.and_then(column_equals) {
        Some((column, value)) => source.rows_equal(table, column, value)?,
        None => None,
    };
    let rows: Box<dyn Iterator<Item = &[Value]>> = match &found {
        Some(rows) => Box::new(rows.iter().map(|r| &r[..])),
        None => source.scan(table)?,
    };
    for r in rows {
        if r.len() != width {
            return Err(QueryError::eval(format!(
                "a row of {} has {} values; the table has {width} columns",
                table.qualified_name(),
                r.len()
            )));
        }
        let keep = match predicate {
            None => true,
            Some(p) => matches!(eval(p, r)?, Value::Boolean(true)),
        };
        if keep {
            f(r)?;
        }
    }
    Ok(())
}

/// A condition `column = constant` (either way round, the constant of the column's type and not
/// NULL) that `predicate` requires: the predicate itself or one of its `AND`ed conditions.
fn column_equals(predicate: &TypedExpr) -> Option<(usize, &Value)> {
    match &predicate.kind {
        ExprKind::Binary { op: BinaryOp::Eq, left, right } if left.ty == right.ty => match (&left.kind, &right.kind) {
            (ExprKind::Column(c), ExprKind::Literal(v)) | (ExprKind::Literal(v), ExprKind::Column(c))
                if !v.is_null() =>
            {
                Some((*c, v))
            }
            _ => None,
        },
        ExprKind::Binary { op: BinaryOp::And, left, right } => column_equals(left).or_else(|| column_equals(right)),
        _ => None,
    }
}

/// Key values of a row, or `None` if any is NULL (NULL keys never match).
pub(crate) fn key_of(exprs: &[TypedExpr], row: &[Value]) -> Result<Option<Vec<Value>>> {
    let mut key = Vec::with_capacity(exprs.len());
    for e in exprs {
        let v = eval(e, row)?;
        if v.is_null() {
            return Ok(None);
        }
        key.push(v);
    }
    Ok(Some(key))
}

fn hash_join(
    left: Vec<Row>,
    right: Vec<Row>,
    kind: JoinKind,
    on: &[(TypedExpr, TypedExpr)],
    filter: Option<&TypedExpr>,
    right_width: usize,
) -> Result<Vec<Row>> {
    let (lk, rk): (Vec<TypedExpr>, Vec<TypedExpr>) = on.iter().cloned().unzip();
    let mut table: HashMap<Vec<Value>, Vec<usize>> = HashMap::default();
    for (i, r) in right.iter().enumerate() {
        if let Some(k) = key_of(&rk, r)? {
            table.entry(k).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    for l in left {
        let matches = match key_of(&lk, &l)? {
            Some(k) => table.get(&k).map(Vec::as_slice).unwrap_or(&[]),
            None => &[],
        };
        let mut matched = false;
        let mut left_row = Some(l);
        for (n, &i) in matches.iter().enumerate() {
            // The last match takes the left row instead of a copy (usually the only match).
            let base = if n + 1 == matches.len() { left_row.take() } else { left_row.clone() };
            let Some(mut row) = base else { break };
            row.extend(right[i].iter().cloned());
            if let Some(f) = filter
                && !matches!(eval(f, &row)?, Value::Boolean(true))
            {
                if let (None, true) = (&left_row, n + 1 == matches.len()) {
                    row.truncate(row.len() - right_width);
                    left_row = Some(row);
                }
                continue;
            }
            matched = true;
            out.push(row);
        }
        if !matched
            && kind == JoinKind::Left
            && let Some(mut row) = left_row
        {
            row.extend(std::iter::repeat_n(Value::Null, right_width));
            out.push(row);
        }
    }
    Ok(out)
}

/// The running state of one aggregate in one group.
#[derive(Debug, Clone)]
pub(crate) enum Acc {
    Count(i64),
    SumInt(Option<i64>),
    SumFloat(Option<ExactSum>),
    SumDecimal(Option<i128>, i8),
    AvgFloat(ExactSum, i64),
    AvgDecimal(i128, i8, i64),
    Min(Value),
    Max(Value),
}

impl Acc {
    pub(crate) fn new(call: &AggCall) -> Acc {
        let in_ty = call.arg.as_ref().map_or(DataType::Null, |a| a.ty);
        match call.func {
            AggFunc::CountStar | AggFunc::Count => Acc::Count(0),
            AggFunc::Sum => match call.ty {
                DataType::Double => Acc::SumFloat(None),
                DataType::Decimal { scale, .. } => Acc::SumDecimal(None, scale),
                _ => Acc::SumInt(None),
            },
            AggFunc::Avg => match in_ty {
                DataType::Decimal { scale, .. } => Acc::AvgDecimal(0, scale, 0),
                _ => Acc::AvgFloat(ExactSum::default(), 0),
            },
            AggFunc::Min => Acc::Min(Value::Null),
            AggFunc::Max => Acc::Max(Value::Null),
        }
    }

    /// Add one value (already evaluated; `count(*)` passes a non-NULL marker).
    pub(crate) fn update(&mut self, v: &Value) -> Result<()> {
        if v.is_null() {
            return Ok(());
        }
        let of = || QueryError::eval("sum overflows DECIMAL");
        match (self, v) {
            (Acc::Count(n), _) => *n += 1,
            // Integer sums wrap, as DataFusion's sum accumulator (add_wrapping).
            (Acc::SumInt(s), Value::Int64(i)) => *s = Some(s.unwrap_or(0).wrapping_add(*i)),
            (Acc::SumFloat(s), x) => s.get_or_insert_with(ExactSum::default).add(to_f64(x)),
            (Acc::SumDecimal(s, scale), Value::Decimal(d)) => {
                let x = rescale(d.value, d.scale, *scale).ok_or_else(of)?;
                *s = Some(s.unwrap_or(0).checked_add(x).ok_or_else(of)?);
            }
            (Acc::AvgFloat(s, n), x) => {
                s.add(to_f64(x));
                *n += 1;
            }
            (Acc::AvgDecimal(s, scale, n), Value::Decimal(d)) => {
                *s = s.checked_add(rescale(d.value, d.scale, *scale).ok_or_else(of)?).ok_or_else(of)?;
                *n += 1;
            }
            (Acc::Min(m), x) => {
                if m.is_null() || x.sort_cmp(m) == Ordering::Less {
                    *m = x.clone();
                }
            }
            (Acc::Max(m), x) => {
                if m.is_null() || x.sort_cmp(m) == Ordering::Greater {
                    *m = x.clone();
                }
            }
            (_, x) => return Err(QueryError::eval(format!("cannot aggregate '{x}' here"))),
        }
        Ok(())
    }

    /// The aggregate's value, of type `ty`.
    pub(crate) fn finish(&self, ty: DataType) -> Result<Value> {
        Ok(match self {
            Acc::Count(n) => Value::Int64(*n),
            Acc::SumInt(s) => s.map_or(Value::Null, Value::Int64),
            Acc::SumFloat(s) => s.as_ref().map_or(Value::Null, |s| Value::Float64(s.value())),
            Acc::SumDecimal(s, scale) => s.map_or(Value::Null, |v| Value::decimal(v, *scale)),
            Acc::AvgFloat(_, 0) | Acc::AvgDecimal(_, _, 0) => Value::Null,
            Acc::AvgFloat(s, n) => Value::Float64(s.value() / *n as f64),
            Acc::AvgDecimal(s, scale, n) => {
                // DataFusion: the sum rescaled to the result scale, divided (truncating) by n.
                let DataType::Decimal { scale: out, .. } = ty else {
                    return Err(QueryError::eval("avg(): decimal result expected"));
                };
                let v = rescale(*s, *scale, out).ok_or_else(|| QueryError::eval("avg overflows DECIMAL"))?;
                Value::decimal(v / *n as i128, out)
            }
            Acc::Min(m) | Acc::Max(m) => m.clone(),
        })
    }
}

/// An exact, order-independent float sum (Shewchuk's partials, as Python's `math.fsum`): the
/// result is the true sum of the added values rounded once. Adding `-x` removes `x` exactly,
/// which incremental aggregation needs; DataFusion's own float sums are accurate but not exact,
/// so they may differ in the last bit.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExactSum {
    partials: Vec<f64>,
    pos_inf: i64,
    neg_inf: i64,
    nan: i64,
    /// A finite sum that overflowed f64: its sign (the result is then ±inf).
    overflow: f64,
}

impl ExactSum {
    pub(crate) fn add(&mut self, mut x: f64) {
        if !x.is_finite() {
            if x.is_nan() {
                self.nan += 1;
            } else if x > 0.0 {
                self.pos_inf += 1;
            } else {
                self.neg_inf += 1;
            }
            return;
        }
        let mut i = 0;
        for j in 0..self.partials.len() {
            let mut y = self.partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            if !hi.is_finite() {
                self.overflow = hi;
                return;
            }
            let lo = y - (hi - x);
            if lo != 0.0 {
                self.partials[i] = lo;
                i += 1;
            }
            x = hi;
        }
        self.partials.truncate(i);
        self.partials.push(x);
    }

    /// Takes `x` out of the sum again (it must have been added). `None` when that cannot be
    /// exact: once a partial sum has overflowed, the partials no longer hold the added values.
    pub(crate) fn remove(&mut self, x: f64) -> Option<()> {
        if x.is_nan() {
            self.nan -= 1;
        } else if x == f64::INFINITY {
            self.pos_inf -= 1;
        } else if x == f64::NEG_INFINITY {
            self.neg_inf -= 1;
        } else if self.overflow != 0.0 {
            return None;
        } else {
            self.add(-x);
        }
        Some(())
    }

    /// Whether a partial sum overflowed f64 (the sum is then ±inf and cannot be retracted).
    pub(crate) fn overflowed(&self) -> bool {
        self.overflow != 0.0
    }

    pub(crate) fn value(&self) -> f64 {
        if self.nan > 0 || (self.pos_inf > 0 && self.neg_inf > 0) {
            return f64::NAN;
        }
        if self.pos_inf > 0 {
            return f64::INFINITY;
        }
        if self.neg_inf > 0 {
            return f64::NEG_INFINITY;
        }
        if self.overflow != 0.0 {
            return self.overflow;
        }
        // Sum the partials from the top, then correct for half-even rounding across partials.
        let p = &self.partials;
        let mut n = p.len();
        if n == 0 {
            return 0.0;
        }
        n -= 1;
        let mut hi = p[n];
        let mut lo = 0.0;
        while n > 0 {
            let x = hi;
            n -= 1;
            let y = p[n];
            hi = x + y;
            let yr = hi - x;
            lo = y - yr;
            if lo != 0.0 {
                break;
            }
        }
        if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            if y == x - hi {
                hi = x;
            }
        }
        // A sum starts from +0.0, so a sum of zeros is +0.0 even when they are all -0.0.
        hi + 0.0
    }
}

pub(crate) fn to_f64(v: &Value) -> f64 {
    match v {
        Value::Int64(i) => *i as f64,
        Value::Float64(f) => *f,
        Value::Decimal(d) => decimal_to_f64(d.value, d.scale),
        _ => f64::NAN,
    }
}

/// The value an aggregate sees for a row: its argument, cast for the accumulator.
pub(crate) fn agg_input(call: &AggCall, row: &[Value]) -> Result<Value> {
    match &call.arg {
        None => Ok(Value::Boolean(true)),
        Some(arg) => {
            let v = eval(arg, row)?;
            // avg over integers works in DOUBLE; sum over FLOAT accumulates in DOUBLE.
            match (call.func, arg.ty) {
                (AggFunc::Avg, t) if t.is_integer() => cast(v, DataType::Double),
                _ => Ok(v),
            }
        }
    }
}

struct Group {
    key: Vec<Value>,
    accs: Vec<Acc>,
    seen: Vec<Option<HashSet<Value>>>,
}

/// Where rows go one at a time (borrowed).
type RowSink<'a> = dyn FnMut(&[Value]) -> Result<()> + 'a;

/// GROUP BY and aggregates over the rows `feed` passes to the function it is given, in order.
fn aggregate(
    feed: &mut dyn FnMut(&mut RowSink<'_>) -> Result<()>,
    group_by: &[TypedExpr],
    aggs: &[AggCall],
) -> Result<Vec<Row>> {
    let new_group = |key: Vec<Value>| Group {
        key,
        accs: aggs.iter().map(Acc::new).collect(),
        seen: aggs.iter().map(|a| a.distinct.then(HashSet::default)).collect(),
    };
    let mut index: HashMap<Vec<Value>, usize> = HashMap::default();
    let mut groups: Vec<Group> = Vec::new();
    if group_by.is_empty() {
        groups.push(new_group(Vec::new()));
        index.insert(Vec::new(), 0);
    }
    feed(&mut |r| {
        let key = group_by.iter().map(|g| eval(g, r).map(Value::grouped)).collect::<Result<Vec<_>>>()?;
        let gi = match index.get(&key) {
            Some(i) => *i,
            None => {
                groups.push(new_group(key.clone()));
                index.insert(key, groups.len() - 1);
                groups.len() - 1
            }
        };
        let g = &mut groups[gi];
        for (i, call) in aggs.iter().enumerate() {
            let v = agg_input(call, r)?;
            if let Some(seen) = &mut g.seen[i]
                && (v.is_null() || !seen.insert(v.clone().grouped()))
            {
                continue;
            }
            g.accs[i].update(&v)?;
        }
        Ok(())
    })?;
    groups
        .into_iter()
        .map(|g| {
            let mut row = g.key;
            for (acc, call) in g.accs.iter().zip(aggs) {
                row.push(acc.finish(call.ty)?);
            }
            Ok(row)
        })
        .collect()
}

/// Compare two values as one sort key orders them (direction, NULLs first or last).
pub(crate) fn compare_key(k: &SortKey, x: &Value, y: &Value) -> Ordering {
    match (x.is_null(), y.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) => {
            if k.nulls_first {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }
        (false, true) => {
            if k.nulls_first {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        (false, false) => {
            let o = x.sort_cmp(y);
            if k.desc { o.reverse() } else { o }
        }
    }
}

/// Compare two rows' key values by the sort keys.
pub(crate) fn compare_keys(a: &[Value], b: &[Value], keys: &[SortKey]) -> Ordering {
    keys.iter()
        .zip(a.iter().zip(b))
        .map(|(k, (x, y))| compare_key(k, x, y))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// Total order on whole rows: column by column, NULLs last.
pub(crate) fn compare_rows(a: &[Value], b: &[Value]) -> Ordering {
    a.iter().zip(b).map(|(x, y)| x.sort_cmp(y)).find(|o| *o != Ordering::Equal).unwrap_or(Ordering::Equal)
}

/// Sorts `rows` by `keys`; with `keep`, returns only the first `keep` rows of that order
/// (selected in linear time, then sorted: a top-k for ORDER BY ... LIMIT).
///
/// Ties are broken by the whole row, so the order does not depend on how the replica happens
/// to store rows (and an incremental top-k can reproduce it). The order is total, so selecting
/// the first `keep` rows, then sorting them, gives the same rows in the same order as sorting
/// everything.
fn sort(mut rows: Vec<Row>, keys: &[SortKey], keep: Option<usize>) -> Result<Vec<Row>> {
    // The planner's keys are usually output columns: compared in place. Other keys are
    // evaluated once per row.
    let columns: Option<Vec<usize>> = keys
        .iter()
        .map(|k| match k.expr.kind {
            ExprKind::Column(i) => Some(i),
            _ => None,
        })
        .collect();
    let evaluated: Vec<Vec<Value>> = match columns {
        Some(_) => Vec::new(),
        None => rows
            .iter()
            .map(|r| keys.iter().map(|k| eval(&k.expr, r)).collect::<Result<Vec<_>>>())
            .collect::<Result<Vec<_>>>()?,
    };
    let by_keys = |a: usize, b: usize| match &columns {
        Some(cols) => keys
            .iter()
            .zip(cols)
            .map(|(k, &c)| compare_key(k, &rows[a][c], &rows[b][c]))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal),
        None => compare_keys(&evaluated[a], &evaluated[b], keys),
    };
    // Indices are sorted rather than rows, through one comparator type: the sort code is
    // instantiated once however many key shapes there are (it is large in the wasm bundle).
    let order: &dyn Fn(&usize, &usize) -> Ordering =
        &|&a, &b| by_keys(a, b).then_with(|| compare_rows(&rows[a], &rows[b]));
    let mut indices: Vec<usize> = (0..rows.len()).collect();
    if let Some(k) = keep.filter(|k| *k < indices.len()) {
        if k == 0 {
            return Ok(Vec::new());
        }
        indices.select_nth_unstable_by(k - 1, order);
        indices.truncate(k);
    }
    indices.sort_unstable_by(order);
    Ok(indices.into_iter().map(|i| std::mem::take(&mut rows[i])).collect())
}

#[cfg(test)]
mod tests {
    use super::ExactSum;

    fn sum(xs: &[f64]) -> f64 {
        let mut s = ExactSum::default();
        xs.iter().for_each(|x| s.add(*x));
        s.value()
    }

    #[test]
    fn exact_sums() {
        assert_eq!(sum(&[0.1; 10]), 1.0);
        assert_eq!(sum(&[1e100, 1.0, -1e100]), 1.0);
        assert_eq!(sum(&[9.9, 11.0, 0.55, 11.0, 2.475]), 34.925);
        assert_eq!(sum(&[0.1, 0.2, -0.1]), 0.2);
        assert_eq!(sum(&[]), 0.0);
        assert!(sum(&[-0.0, -0.0]).is_sign_positive());
        assert!(sum(&[f64::INFINITY, f64::NEG_INFINITY]).is_nan());
        assert_eq!(sum(&[f64::INFINITY, 1.0]), f64::INFINITY);
        assert_eq!(sum(&[f64::MAX, f64::MAX]), f64::INFINITY);
        // Order does not matter.
        let xs = [1e-3, 7.1, -3.3e5, 2.2e-9, 4.4e5, 0.3];
        let mut rev = xs;
        rev.reverse();
        assert_eq!(sum(&xs).to_bits(), sum(&rev).to_bits());
    }
}
