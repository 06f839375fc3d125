//! Incremental maintenance of a query's result: a live query's [`Plan`] turned into a small
//! dataflow that is fed the *changes* of its tables instead of being run again.
//!
//! Changes travel as a [`Delta`]: rows with signed multiplicities (a Z-set, as in DBSP and
//! differential dataflow). An insert is `(new, +1)`, a delete `(old, -1)`, an update both.
//! Each operator turns the delta of its input into the delta of its output and keeps the state
//! it needs for that:
//!
//! | plan node | state | per changed row |
//! |---|---|---|
//! | Scan | none | the table's delta |
//! | Filter, Project | none | evaluate the row, keep its weight |
//! | Join (INNER, LEFT) | every row of each side, indexed by join key | probe the other side's index |
//! | Aggregate | per group: row count and one retractable accumulator per aggregate | update the group, emit its old and new row |
//! | Distinct | row → count | emit on 0 → n and n → 0 |
//! | Sort + Limit (the top of the plan) | the result, ordered by sort key then row (with LIMIT its first rows) | O(log n) |
//!
//! The first result comes from the same code: a step that inserts every row of every table.
//! The invariant, checked by `tests/incremental.rs`: after every step, [`Dataflow::rows`]
//! equals [`crate::execute`] of the plan over the tables as they now are (in the same order
//! where ORDER BY is total).
//!
//! What is not maintained is decided by [`check_supported`] alone; the caller runs such plans
//! from scratch. A step that cannot be applied exactly (an evaluation error, a float sum that
//! overflowed, a top-k whose kept rows ran out) fails with an [`IncrementalError`]: the
//! dataflow is then invalid and the caller must run the plan from scratch, which gives the
//! right answer or the right error.

mod aggregate;
mod join;
mod result;

use crate::error::QueryError;
use crate::eval::eval;
use crate::exec::{DataSource, HashMap, Row};
use crate::plan::{ExprKind, Node, Plan, SortKey, TypedExpr};
use crate::value::Value;
use aggregate::AggregateOperator;
use join::JoinOperator;
use result::OrderedResult;
pub use result::TOP_K_SLACK;
use std::borrow::Cow;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

/// Rows with signed multiplicities: `+n` adds `n` copies of the row, `-n` removes them.
pub type Delta = Vec<(Row, i64)>;

/// A changed row as a step's changes hold it: shared, so the caller can hand over rows it
/// keeps itself (the client's replica keeps its typed rows as these) without copying them.
/// Atomically counted so that a holder may be sent to another thread (the client's in-memory
/// store keeps the replica's rows); on wasm32 the count is a plain integer all the same.
pub type SharedRow = std::sync::Arc<[Value]>;

/// The changes of one step, by table (`namespace.table`): rows aligned to the table's columns.
/// Each table's rows are shared, not owned: a commit builds them once and every dataflow
/// reading the table borrows the same copy, whose operators copy only the rows they keep.
pub type TableDeltas = std::collections::HashMap<String, Rc<[(SharedRow, i64)]>>;

/// A table's changes for [`TableDeltas`] from owned rows.
pub fn shared_delta(delta: Delta) -> Rc<[(SharedRow, i64)]> {
    delta.into_iter().map(|(row, weight)| (SharedRow::from(row), weight)).collect()
}

/// Why a plan is not maintained incrementally. The caller runs it from scratch instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    /// `SELECT` without `FROM`: no table changes, so there is nothing to maintain.
    #[error("a query without FROM reads no table")]
    NoTable,
    /// `LIMIT`/`OFFSET` without `ORDER BY` keeps whichever rows come first in storage order, an
    /// order a dataflow does not have.
    #[error("LIMIT or OFFSET without ORDER BY")]
    LimitWithoutOrder,
    /// A sort or limit below the top of the plan (the planner does not make such plans).
    #[error("ORDER BY or LIMIT below the top of the plan")]
    NestedSortOrLimit,
}

/// Why a dataflow cannot give the result of a step.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IncrementalError {
    /// The plan has a shape the dataflow does not maintain (see [`check_supported`]).
    #[error("not maintained incrementally: {0}")]
    Unsupported(#[from] Unsupported),
    /// Evaluating a changed row failed, as it would in a run from scratch.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The step cannot be applied exactly (a float sum that overflowed cannot be retracted,
    /// or a retraction of a row the state does not hold).
    #[error("the result must be computed from scratch: {0}")]
    NotRetractable(&'static str),
    /// Deletions left fewer rows than `ORDER BY ... LIMIT` shows among the rows it keeps, and
    /// the next ones were not kept (see [`TOP_K_SLACK`]).
    #[error("the result must be computed from scratch: the rows kept for ORDER BY ... LIMIT ran out")]
    Exhausted,
}

/// Decides whether `plan` is maintained incrementally; `Err` says why not. This is the only
/// place that decides: [`Dataflow::new`] refuses exactly these plans.
///
/// Maintained: any tree of Scan, Filter, Project, Join (INNER and LEFT equi-joins of any
/// number of tables, with extra ON conditions), Aggregate (count, count(DISTINCT), sum, avg,
/// min, max, with or without GROUP BY, and HAVING), Distinct, topped by an optional Sort and
/// Limit (`ORDER BY ... [LIMIT n] [OFFSET m]`).
pub fn check_supported(plan: &Plan) -> Result<(), Unsupported> {
    let top = Top::of(plan)?;
    check_body(top.body)
}

fn check_body(plan: &Plan) -> Result<(), Unsupported> {
    match &plan.node {
        Node::Empty => Err(Unsupported::NoTable),
        Node::Scan { .. } => Ok(()),
        Node::Filter { input, .. }
        | Node::Project { input, .. }
        | Node::Aggregate { input, .. }
        | Node::Distinct { input } => check_body(input),
        Node::Join { left, right, .. } => {
            check_body(left)?;
            check_body(right)
        }
        Node::Sort { .. } | Node::Limit { .. } => Err(Unsupported::NestedSortOrLimit),
    }
}

/// The top of a plan as the planner builds it: `[Project] [Limit] [Sort] body`, where the
/// outer Project drops columns added only to sort by.
struct Top<'a> {
    body: &'a Plan,
    keys: &'a [SortKey],
    offset: u64,
    limit: Option<u64>,
    output: Option<&'a [TypedExpr]>,
}

impl<'a> Top<'a> {
    fn of(plan: &'a Plan) -> Result<Top<'a>, Unsupported> {
        let mut p = plan;
        let mut output = None;
        if let Node::Project { input, exprs } = &p.node
            && matches!(input.node, Node::Sort { .. } | Node::Limit { .. })
        {
            output = Some(exprs.as_slice());
            p = input;
        }
        let (mut offset, mut limit, mut limited) = (0, None, false);
        if let Node::Limit { input, offset: o, limit: l } = &p.node {
            (offset, limit, limited) = (*o, *l, true);
            p = input;
        }
        let mut keys: &[SortKey] = &[];
        if let Node::Sort { input, keys: k } = &p.node {
            keys = k;
            p = input;
        } else if limited {
            return Err(Unsupported::LimitWithoutOrder);
        }
        Ok(Top { body: p, keys, offset, limit, output })
    }
}

/// A plan maintained incrementally: apply each step's table changes, read the result.
///
/// `R` is what the caller makes of a result row to show it ([`Dataflow::rendered`]), kept with
/// the row while it stays in the result.
#[derive(Debug)]
pub struct Dataflow<R = Row> {
    root: Operator,
    /// The columns the root picks when it is a projection of columns only: the result then
    /// takes the projection's input and makes the projected row itself.
    root_columns: Option<Vec<usize>>,
    result: OrderedResult<R>,
    tables: Vec<String>,
}

impl<R: Clone> Dataflow<R> {
    /// Builds the dataflow of `plan` and feeds it every row of its tables from `source` (the
    /// first result). Fails with [`IncrementalError::Unsupported`] for the plans
    /// [`check_supported`] refuses, and with the evaluation error a run from scratch would give.
    pub fn new(plan: &Plan, source: &dyn DataSource) -> Result<Dataflow<R>, IncrementalError> {
        Dataflow::with_top_k_slack(plan, source, None)
    }

    /// [`Dataflow::new`], keeping `slack` rows beyond a LIMIT's window instead of the default
    /// (see [`TOP_K_SLACK`]); tests use a small one to make the kept rows run out.
    pub fn with_top_k_slack(
        plan: &Plan,
        source: &dyn DataSource,
        slack: Option<usize>,
    ) -> Result<Dataflow<R>, IncrementalError> {
        let top = Top::of(plan)?;
        check_body(top.body)?;
        let mut tables: Vec<String> = Vec::new();
        let mut initial = TableDeltas::new();
        for table in plan.tables() {
            let name = table.qualified_name();
            if !tables.contains(&name) {
                let rows: Rc<[_]> = match source.scan_shared(table)? {
                    Some(rows) => rows.into_iter().map(|row| (row, 1)).collect(),
                    None => source.scan(table)?.map(|row| (SharedRow::from(row), 1)).collect(),
                };
                initial.insert(name.clone(), rows);
                tables.push(name);
            }
        }
        let root = Operator::build(top.body)?;
        let root_columns = match &root {
            Operator::Project { exprs, .. } => column_positions(exprs),
            _ => None,
        };
        let mut dataflow = Dataflow { root, root_columns, result: OrderedResult::new(&top, slack), tables };
        // Not `apply`: that skips steps without changes, and an aggregate without GROUP BY
        // has a row even over empty tables.
        dataflow.step(&initial)?;
        Ok(dataflow)
    }

    /// `namespace.table` of every table the dataflow reads, each once.
    pub fn tables(&self) -> &[String] {
        &self.tables
    }

    /// Applies one step: the changes of the tables (tables not in `changes` did not change).
    /// Returns whether the result may have changed. After an error the dataflow is invalid:
    /// drop it and run the plan from scratch.
    pub fn apply(&mut self, changes: &TableDeltas) -> Result<bool, IncrementalError> {
        if !self.tables.iter().any(|t| changes.get(t).is_some_and(|d| !d.is_empty())) {
            return Ok(false);
        }
        self.step(changes)
    }

    /// Feeds one step's changes through the operators into the result. A projection of
    /// columns at the root is left to the result, which makes the projected row only for rows
    /// it may keep (most rows a batch moves in or out of a top-10 are only counted).
    fn step(&mut self, changes: &TableDeltas) -> Result<bool, IncrementalError> {
        let Dataflow { root, result, root_columns, .. } = self;
        match (root, root_columns) {
            (Operator::Project { input, .. }, Some(columns)) => {
                result.apply(Some(columns), &mut |sink| input.stream(changes, sink))
            }
            (root, _) => result.apply(None, &mut |sink| root.stream(changes, sink)),
        }
    }

    /// The current result, as [`crate::execute`] gives it: in ORDER BY order (ties broken by
    /// the row's values), or in the order of the rows' values without ORDER BY.
    pub fn rows(&self) -> Result<Vec<Row>, QueryError> {
        self.result.rows()
    }

    /// The current result as [`Dataflow::rows`] gives it, each row as `render` makes it. A row
    /// is rendered the first time it is read and not again while it stays in the result (a
    /// changed row is a new row), so reading a large result after a small change renders few
    /// rows; the cost is then a clone of `R` per row.
    pub fn rendered<E: From<QueryError>>(&self, mut render: impl FnMut(&[Value]) -> Result<R, E>) -> Result<Vec<R>, E> {
        self.result.rendered(&mut render)
    }
}

/// One operator of the dataflow, mirroring a plan node.
#[derive(Debug)]
enum Operator {
    Scan {
        table: String,
        width: usize,
    },
    Filter {
        input: Box<Operator>,
        predicate: TypedExpr,
    },
    Project {
        input: Box<Operator>,
        exprs: Vec<TypedExpr>,
    },
    Join(Box<JoinOperator>),
    Aggregate(Box<AggregateOperator>),
    /// Rows as DISTINCT keeps them (floats' -0.0 as 0.0) with how many input rows each stands for.
    Distinct {
        input: Box<Operator>,
        counts: HashMap<Row, i64>,
    },
}

impl Operator {
    fn build(plan: &Plan) -> Result<Operator, Unsupported> {
        Ok(match &plan.node {
            Node::Scan { table } => Operator::Scan { table: table.qualified_name(), width: table.columns.len() },
            Node::Filter { input, predicate } => {
                Operator::Filter { input: Box::new(Operator::build(input)?), predicate: predicate.clone() }
            }
            Node::Project { input, exprs } => {
                Operator::Project { input: Box::new(Operator::build(input)?), exprs: exprs.clone() }
            }
            Node::Join { left, right, kind, on, filter } => Operator::Join(Box::new(JoinOperator::new(
                Operator::build(left)?,
                Operator::build(right)?,
                *kind,
                on,
                filter.clone(),
                right.schema.fields.len(),
            ))),
            Node::Aggregate { input, group_by, aggregates } => Operator::Aggregate(Box::new(AggregateOperator::new(
                Operator::build(input)?,
                group_by.clone(),
                aggregates.clone(),
            ))),
            Node::Distinct { input } => {
                Operator::Distinct { input: Box::new(Operator::build(input)?), counts: HashMap::default() }
            }
            Node::Empty => return Err(Unsupported::NoTable),
            Node::Sort { .. } | Node::Limit { .. } => return Err(Unsupported::NestedSortOrLimit),
        })
    }

    /// The change of this operator's output for one step of table changes, as owned rows.
    fn step(&mut self, changes: &TableDeltas) -> Result<Delta, IncrementalError> {
        let mut out = Vec::new();
        self.stream(changes, &mut |row, weight| {
            out.push((row.into_owned(), weight));
            Ok(())
        })?;
        Ok(out)
    }

    /// The change of this operator's output for one step, passed to `sink` row by row. Scans
    /// and filters pass rows on borrowed, projections and stateful operators the rows they
    /// made: a synced batch's rows are not copied on their way to the operator that keeps them
    /// (an aggregate keeps none of them), and a row made on the way is moved, not copied.
    fn stream(&mut self, changes: &TableDeltas, sink: &mut Sink<'_>) -> Result<(), IncrementalError> {
        match self {
            Operator::Scan { table, width } => {
                for (row, weight) in scanned(table, *width, changes)? {
                    sink(Cow::Borrowed(&row[..]), *weight)?;
                }
                Ok(())
            }
            Operator::Filter { input, predicate } => {
                input.stream(changes, &mut |row, weight| match eval(predicate, &row)? {
                    Value::Boolean(true) => sink(row, weight),
                    _ => Ok(()),
                })
            }
            Operator::Project { input, exprs } => input.stream(changes, &mut |row, weight| {
                let projected = exprs.iter().map(|e| eval(e, &row)).collect::<Result<Row, _>>()?;
                sink(Cow::Owned(projected), weight)
            }),
            Operator::Join(join) => emit(join.step(changes)?, sink),
            Operator::Aggregate(aggregate) => emit(aggregate.step(changes)?, sink),
            Operator::Distinct { input, counts } => {
                let mut out = Vec::new();
                input.stream(changes, &mut |row, weight| {
                    let row: Row = row.into_owned().into_iter().map(Value::grouped).collect();
                    let count = counts.entry(row.clone()).or_insert(0);
                    let before = *count;
                    *count += weight;
                    let after = *count;
                    if after < 0 {
                        return Err(IncrementalError::NotRetractable("DISTINCT lost a row it did not hold"));
                    }
                    if after == 0 {
                        counts.remove(&row);
                    }
                    match (before > 0, after > 0) {
                        (false, true) => out.push((row, 1)),
                        (true, false) => out.push((row, -1)),
                        _ => {}
                    }
                    Ok(())
                })?;
                emit(out, sink)
            }
        }
    }
}

/// The column each expression picks, if every one is a plain column reference.
fn column_positions(exprs: &[TypedExpr]) -> Option<Vec<usize>> {
    exprs
        .iter()
        .map(|e| match e.kind {
            ExprKind::Column(i) => Some(i),
            _ => None,
        })
        .collect()
}

/// Where an operator's output rows go, one at a time: a row (borrowed from the step's changes,
/// or made by the operator and given away) and its weight.
type Sink<'a> = dyn FnMut(Cow<'_, [Value]>, i64) -> Result<(), IncrementalError> + 'a;

fn emit(delta: Delta, sink: &mut Sink<'_>) -> Result<(), IncrementalError> {
    for (row, weight) in delta {
        sink(Cow::Owned(row), weight)?;
    }
    Ok(())
}

/// The changes of `table` in this step, borrowed; fails if a row does not have the table's
/// `width` columns.
fn scanned<'a>(table: &str, width: usize, changes: &'a TableDeltas) -> Result<&'a [(SharedRow, i64)], QueryError> {
    let delta = changes.get(table).map_or(&[][..], |rows| &rows[..]);
    match delta.iter().find(|(row, _)| row.len() != width) {
        Some((row, _)) => {
            Err(QueryError::eval(format!("a row of {table} has {} values; the table has {width} columns", row.len())))
        }
        None => Ok(delta),
    }
}

/// Whether two rows hold the same values bit for bit (floats by their bits, so `-0.0` and
/// `0.0` differ): what decides that a row shown did not change. [`Value`]'s own equality merges
/// what GROUP BY merges, which is too coarse for that.
pub fn same_row(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(x, y))
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float64(x), Value::Float64(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

/// A row as a member of a multiset: equal only to the same values bit for bit ([`same_row`]),
/// so a retraction takes out exactly the row that was added.
#[derive(Debug, Clone)]
struct ExactRow(Row);

impl PartialEq for ExactRow {
    fn eq(&self, other: &Self) -> bool {
        same_row(&self.0, &other.0)
    }
}

impl Eq for ExactRow {}

impl Hash for ExactRow {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for v in &self.0 {
            match v {
                Value::Float64(f) => f.to_bits().hash(state),
                v => v.hash(state),
            }
        }
    }
}

/// Adds `weight` copies of `row` to a multiset; fails if a count would go below zero.
fn add_to_multiset(set: &mut HashMap<ExactRow, i64>, row: Row, weight: i64) -> Result<(), IncrementalError> {
    let row = ExactRow(row);
    let count = set.entry(row.clone()).or_insert(0);
    *count += weight;
    match *count {
        0 => {
            set.remove(&row);
            Ok(())
        }
        n if n < 0 => Err(IncrementalError::NotRetractable("a row was retracted that was never added")),
        _ => Ok(()),
    }
}
