//! The top of a maintained query: its rows ordered by the ORDER BY keys, ties broken by the
//! row's values (as [`crate::execute`] sorts), or by the row's values alone without ORDER BY.
//! OFFSET and LIMIT are applied when the result is read, so the window moves by itself as rows
//! come and go; reading it costs O(log n + offset + limit).
//!
//! With LIMIT only the first rows are kept: the window and as many again (at least
//! [`TOP_K_SLACK`] more), so a top-10 over 100,000 rows holds ~74 of them, and a changed row
//! that orders after the kept ones is counted, not stored. The rows not kept all order after
//! the kept ones. When deletions leave fewer kept rows than the window while rows were
//! dropped, the step fails with [`IncrementalError::Exhausted`] and the caller computes the
//! result again from scratch (which keeps a full set again).
//!
//! Rows at or after the first row not kept (`bound`) are only counted, never sorted or stored,
//! and behind a projection of columns they are recognised before the projected row is made.
//!
//! Each row also holds the caller's rendering of it (e.g. as JSON), made the first time the row
//! is read and kept while the row stays: a row that changes is another row, so it is rendered
//! again, and a result of many rows of which few changed costs few renderings.

use super::{IncrementalError, Sink, Top};
use crate::error::QueryError;
use crate::eval::eval;
use crate::exec::{Row, compare_key, compare_keys, compare_rows};
use crate::plan::{ExprKind, SortKey, TypedExpr};
use crate::value::Value;
use std::borrow::Cow;
use std::cell::OnceCell;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::rc::Rc;

#[derive(Debug)]
pub(super) struct OrderedResult<R> {
    order: Rc<Order>,
    offset: usize,
    limit: Option<usize>,
    /// The outer projection that drops columns added only to sort by.
    output: Option<Vec<TypedExpr>>,
    /// The first rows of the result before OFFSET/LIMIT (all of them without LIMIT), with
    /// their multiplicities.
    rows: BTreeMap<OrderedRow, Entry<R>>,
    /// The multiplicities in `rows`, summed.
    kept: usize,
    /// How many rows `rows` may hold (counted with multiplicity) before the last ones are
    /// dropped: unbounded without LIMIT.
    capacity: usize,
    /// Rows of the result not kept (with multiplicity): all order at or after `bound`, and
    /// every kept row before it.
    dropped: i64,
    bound: Option<OrderedRow>,
}

/// Rows kept beyond a LIMIT's window (at least; as many as the window if that is more), so
/// that deleting rows in the window rarely exhausts what is kept.
pub const TOP_K_SLACK: usize = 64;

/// A result row's multiplicity and, once read, its rendering.
#[derive(Debug)]
struct Entry<R> {
    count: i64,
    rendered: OnceCell<R>,
}

impl<R: Clone> OrderedResult<R> {
    /// `slack`: rows kept beyond a LIMIT's window (`None`: the default, see [`TOP_K_SLACK`]).
    pub(super) fn new(top: &Top<'_>, slack: Option<usize>) -> OrderedResult<R> {
        let offset = usize::try_from(top.offset).unwrap_or(usize::MAX);
        let limit = top.limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let capacity = match limit {
            Some(limit) => {
                let window = offset.saturating_add(limit);
                window.saturating_add(slack.unwrap_or(window.max(TOP_K_SLACK)))
            }
            None => usize::MAX,
        };
        // Keys that are columns of the row (what the planner makes of `ORDER BY n` when `n` is
        // shown) are compared in place: a changed row costs no evaluated copy of its key.
        let columns = top
            .keys
            .iter()
            .map(|k| match k.expr.kind {
                ExprKind::Column(i) => Some(i),
                _ => None,
            })
            .collect();
        OrderedResult {
            order: Rc::new(Order { keys: top.keys.to_vec(), columns }),
            offset,
            limit,
            output: top.output.map(<[TypedExpr]>::to_vec),
            rows: BTreeMap::new(),
            kept: 0,
            capacity,
            dropped: 0,
            bound: None,
        }
    }

    /// Applies the change of the result's input; returns whether any row's count changed.
    /// `feed` passes the change row by row to the sink it is given. With `projection`, the
    /// fed rows are the input of a projection picking those columns, which is applied here.
    pub(super) fn apply(
        &mut self,
        projection: Option<&[usize]>,
        // `dyn`: a generic `feed` would compile this method once per caller.
        feed: &mut dyn FnMut(&mut Sink<'_>) -> Result<(), IncrementalError>,
    ) -> Result<bool, IncrementalError> {
        // Summed first, so a row retracted and added again in one step is no change: sorted,
        // then equal rows merged (the first one kept, as a map would keep it).
        let mut net: Vec<(OrderedRow, i64)> = Vec::new();
        let order = &self.order;
        // Rows at or after the bound (of the rows not kept) are only counted (see below);
        // through a projection they are recognised before the projected row is made.
        let bound = self.bound.as_ref();
        let mut beyond_unprojected = 0;
        let mut any_beyond_unprojected = false;
        feed(&mut |row, weight| {
            let row = match projection {
                Some(columns) => {
                    if let Some(c) = columns.iter().find(|c| **c >= row.len()) {
                        return Err(QueryError::eval(format!("row has no column {c}")).into());
                    }
                    if bound.is_some_and(|bound| order.at_or_after(&row, columns, bound)) {
                        beyond_unprojected += weight;
                        any_beyond_unprojected = true;
                        return Ok(());
                    }
                    Cow::Owned(columns.iter().map(|&c| row[c].clone()).collect())
                }
                None => row,
            };
            let key = match &order.columns {
                Some(columns) => {
                    if let Some(c) = columns.iter().find(|c| **c >= row.len()) {
                        return Err(QueryError::eval(format!("row has no column {c}")).into());
                    }
                    Vec::new()
                }
                None => order.keys.iter().map(|k| eval(&k.expr, &row)).collect::<Result<Vec<_>, _>>()?,
            };
            net.push((OrderedRow { key, row: row.into_owned(), order: order.clone() }, weight));
            Ok(())
        })?;
        let mut changed = any_beyond_unprojected;
        // Rows at or after the bound are not kept, before this step or after it: they are
        // only counted, so they need not be sorted (a batch that moves a top-10's rows retracts
        // hundreds of them).
        if let Some(bound) = &self.bound {
            let mut beyond = beyond_unprojected;
            net.retain(|(row, weight)| {
                let keep = *row < *bound;
                if !keep {
                    beyond += weight;
                    changed = true;
                }
                keep
            });
            self.dropped += beyond;
            if self.dropped < 0 {
                return Err(IncrementalError::NotRetractable("a result row was retracted twice"));
            }
            if self.dropped == 0 {
                self.bound = None;
            }
        }
        sort_net(&mut net);
        let mut net = net.into_iter().peekable();
        while let Some((row, mut weight)) = net.next() {
            while let Some((_, w)) = net.next_if(|(next, _)| *next == row) {
                weight += w;
            }
            if weight == 0 {
                continue;
            }
            changed = true;
            if let Some(entry) = self.rows.get_mut(&row) {
                entry.count += weight;
                match entry.count {
                    0 => {
                        self.rows.remove(&row);
                    }
                    n if n < 0 => return Err(IncrementalError::NotRetractable("a result row was retracted twice")),
                    _ => {}
                }
                self.kept = add_count(self.kept, weight);
            } else if self.bound.as_ref().is_some_and(|bound| row >= *bound) {
                // Among the rows not kept.
                self.dropped += weight;
                if self.dropped < 0 {
                    return Err(IncrementalError::NotRetractable("a result row was retracted twice"));
                }
                if self.dropped == 0 {
                    self.bound = None;
                }
            } else if weight > 0
                && self.kept >= self.capacity
                && self.rows.last_key_value().is_some_and(|(l, _)| row > *l)
            {
                // After every kept row while they fill the capacity: inserted, it would be the
                // last and dropped at once (as below). A batch that moves many rows to the top
                // of a top-10 costs no insertion for most of them.
                self.dropped += weight;
                self.bound = Some(row);
            } else if weight > 0 {
                self.rows.insert(row, Entry { count: weight, rendered: OnceCell::new() });
                self.kept = add_count(self.kept, weight);
                // The last rows go while as many as the capacity stay (a row held many times
                // stays whole, so the kept rows never fall below the window by dropping).
                while let Some(entry) = self.rows.last_entry() {
                    let count = entry.get().count;
                    if add_count(self.kept, -count) < self.capacity {
                        break;
                    }
                    let (last, _) = entry.remove_entry();
                    self.kept = add_count(self.kept, -count);
                    self.dropped += count;
                    self.bound = Some(last);
                }
            } else {
                return Err(IncrementalError::NotRetractable("a result row was retracted twice"));
            }
        }
        let window = self.offset.saturating_add(self.limit.unwrap_or(0));
        if self.dropped > 0 && self.kept < window {
            return Err(IncrementalError::Exhausted);
        }
        Ok(changed)
    }

    /// The rows of the window, each with the entry that holds it.
    fn window(&self) -> impl Iterator<Item = (&OrderedRow, &Entry<R>)> {
        let all =
            self.rows.iter().flat_map(|(row, e)| std::iter::repeat_n((row, e), usize::try_from(e.count).unwrap_or(0)));
        all.skip(self.offset).take(self.limit.unwrap_or(usize::MAX))
    }

    /// A stored row as the result shows it (the outer projection applied).
    fn output_row(&self, row: &OrderedRow) -> Result<Row, QueryError> {
        match &self.output {
            None => Ok(row.row.clone()),
            Some(exprs) => exprs.iter().map(|e| eval(e, &row.row)).collect(),
        }
    }

    pub(super) fn rows(&self) -> Result<Vec<Row>, QueryError> {
        self.window().map(|(row, _)| self.output_row(row)).collect()
    }

    pub(super) fn rendered<E: From<QueryError>>(
        &self,
        render: &mut dyn FnMut(&[Value]) -> Result<R, E>,
    ) -> Result<Vec<R>, E> {
        let (mut skip, mut take) = (self.offset, self.limit.unwrap_or(usize::MAX));
        let mut out = Vec::with_capacity(take.min(self.rows.len()));
        for (row, entry) in &self.rows {
            if take == 0 {
                break;
            }
            let count = usize::try_from(entry.count).unwrap_or(0);
            if count <= skip {
                skip -= count;
                continue;
            }
            let shown = match entry.rendered.get() {
                Some(shown) => shown.clone(),
                None => {
                    let shown = render(&self.output_row(row)?)?;
                    // Set once: the row (the map's key) does not change while the entry lives.
                    let _ = entry.rendered.set(shown.clone());
                    shown
                }
            };
            let n = (count - skip).min(take);
            (skip, take) = (0, take - n);
            out.extend(std::iter::repeat_n(shown, n));
        }
        Ok(out)
    }
}

/// Sorts a change's net rows (outside the generic `apply`: each instance of it would compile
/// the sort again).
fn sort_net(net: &mut [(OrderedRow, i64)]) {
    net.sort_by(|a, b| a.0.cmp(&b.0));
}

/// `kept` changed by `weight` (a count of kept rows never goes below zero: a retraction of a
/// row not held fails before this).
fn add_count(kept: usize, weight: i64) -> usize {
    let magnitude = usize::try_from(weight.unsigned_abs()).unwrap_or(usize::MAX);
    if weight >= 0 { kept.saturating_add(magnitude) } else { kept.saturating_sub(magnitude) }
}

/// How the result is ordered: the ORDER BY keys and, when every key is a column of the row,
/// their positions (the keys are then read from the row, not stored with it).
#[derive(Debug)]
struct Order {
    keys: Vec<SortKey>,
    columns: Option<Vec<usize>>,
}

impl Order {
    /// Whether the row that picking `columns` of `input` makes orders at or after `bound`,
    /// compared without making it (false when the keys are not columns: then it is made).
    /// The caller checked that `columns` are within `input`.
    fn at_or_after(&self, input: &[Value], columns: &[usize], bound: &OrderedRow) -> bool {
        let Some(key_columns) = &self.columns else { return false };
        let picked = |i: usize| columns.get(i).and_then(|&c| input.get(c));
        let mut by_keys = Ordering::Equal;
        for (k, &c) in self.keys.iter().zip(key_columns) {
            let (Some(x), Some(y)) = (picked(c), bound.row.get(c)) else { return false };
            by_keys = compare_key(k, x, y);
            if by_keys.is_ne() {
                break;
            }
        }
        let whole = by_keys.then_with(|| {
            (0..columns.len().min(bound.row.len()))
                .filter_map(|i| Some(picked(i)?.sort_cmp(&bound.row[i])))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        });
        whole.is_ge()
    }
}

/// A result row with its sort key values (none when they are columns of the row), ordered as
/// the result shows it.
#[derive(Debug, Clone)]
struct OrderedRow {
    key: Vec<Value>,
    row: Row,
    order: Rc<Order>,
}

impl Ord for OrderedRow {
    fn cmp(&self, other: &Self) -> Ordering {
        let keys = &self.order.keys;
        let by_keys = match &self.order.columns {
            // The positions were checked against every row when it entered the result.
            Some(columns) => keys
                .iter()
                .zip(columns)
                .map(|(k, &c)| compare_key(k, &self.row[c], &other.row[c]))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal),
            None => compare_keys(&self.key, &other.key, keys),
        };
        by_keys.then_with(|| compare_rows(&self.row, &other.row))
    }
}

impl PartialOrd for OrderedRow {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for OrderedRow {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for OrderedRow {}
