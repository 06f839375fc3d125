//! The top of a maintained query: its rows ordered by the ORDER BY keys, ties broken by the
//! row's values (as [`crate::execute`] sorts), or by the row's values alone without ORDER BY.
//! OFFSET and LIMIT are applied when the result is read, so the window moves by itself as rows
//! come and go; reading it costs O(log n + offset + limit).
//!
//! Each row also holds the caller's rendering of it (e.g. as JSON), made the first time the row
//! is read and kept while the row stays: a row that changes is another row, so it is rendered
//! again, and a result of many rows of which few changed costs few renderings.

use super::{IncrementalError, Sink, Top};
use crate::error::QueryError;
use crate::eval::eval;
use crate::exec::{Row, compare_keys, compare_rows};
use crate::plan::{SortKey, TypedExpr};
use crate::value::Value;
use std::cell::OnceCell;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::rc::Rc;

#[derive(Debug)]
pub(super) struct OrderedResult<R> {
    keys: Rc<[SortKey]>,
    offset: usize,
    limit: Option<usize>,
    /// The outer projection that drops columns added only to sort by.
    output: Option<Vec<TypedExpr>>,
    /// Every row of the result before OFFSET/LIMIT, with its multiplicity.
    rows: BTreeMap<OrderedRow, Entry<R>>,
}

/// A result row's multiplicity and, once read, its rendering.
#[derive(Debug)]
struct Entry<R> {
    count: i64,
    rendered: OnceCell<R>,
}

impl<R: Clone> OrderedResult<R> {
    pub(super) fn new(top: &Top<'_>) -> OrderedResult<R> {
        OrderedResult {
            keys: top.keys.into(),
            offset: usize::try_from(top.offset).unwrap_or(usize::MAX),
            limit: top.limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            output: top.output.map(<[TypedExpr]>::to_vec),
            rows: BTreeMap::new(),
        }
    }

    /// Applies the change of the result's input; returns whether any row's count changed.
    /// `feed` passes the change row by row to the sink it is given.
    pub(super) fn apply(
        &mut self,
        feed: impl FnOnce(&mut Sink<'_>) -> Result<(), IncrementalError>,
    ) -> Result<bool, IncrementalError> {
        // Summed first, so a row retracted and added again in one step is no change: sorted,
        // then equal rows merged (the first one kept, as a map would keep it).
        let mut net: Vec<(OrderedRow, i64)> = Vec::new();
        let keys = &self.keys;
        feed(&mut |row, weight| {
            let key = keys.iter().map(|k| eval(&k.expr, &row)).collect::<Result<Vec<_>, _>>()?;
            net.push((OrderedRow { key, row: row.into_owned(), keys: keys.clone() }, weight));
            Ok(())
        })?;
        net.sort_by(|a, b| a.0.cmp(&b.0));
        let mut changed = false;
        let mut net = net.into_iter().peekable();
        while let Some((row, mut weight)) = net.next() {
            while let Some((_, w)) = net.next_if(|(next, _)| *next == row) {
                weight += w;
            }
            if weight == 0 {
                continue;
            }
            changed = true;
            match self.rows.get_mut(&row) {
                Some(entry) => {
                    entry.count += weight;
                    match entry.count {
                        0 => {
                            self.rows.remove(&row);
                        }
                        n if n < 0 => return Err(IncrementalError::NotRetractable("a result row was retracted twice")),
                        _ => {}
                    }
                }
                None if weight > 0 => {
                    self.rows.insert(row, Entry { count: weight, rendered: OnceCell::new() });
                }
                None => return Err(IncrementalError::NotRetractable("a result row was retracted twice")),
            }
        }
        Ok(changed)
    }

    /// The rows of the window, each with the entry that holds it.
    fn window(&self) -> impl Iterator<Item = (&OrderedRow, &Entry<R>)> {
        let all = self.rows.iter().flat_map(|(row, e)| std::iter::repeat_n((row, e), usize::try_from(e.count).unwrap_or(0)));
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

/// A result row with its sort key values, ordered as the result shows it.
#[derive(Debug, Clone)]
struct OrderedRow {
    key: Vec<Value>,
    row: Row,
    keys: Rc<[SortKey]>,
}

impl Ord for OrderedRow {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_keys(&self.key, &other.key, &self.keys).then_with(|| compare_rows(&self.row, &other.row))
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
