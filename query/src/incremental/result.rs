//! The top of a maintained query: its rows ordered by the ORDER BY keys, ties broken by the
//! row's values (as [`crate::execute`] sorts), or by the row's values alone without ORDER BY.
//! OFFSET and LIMIT are applied when the result is read, so the window moves by itself as rows
//! come and go; reading it costs O(log n + offset + limit).

use super::{IncrementalError, Sink, Top};
use crate::error::QueryError;
use crate::eval::eval;
use crate::exec::{Row, compare_keys, compare_rows};
use crate::plan::{SortKey, TypedExpr};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::rc::Rc;

#[derive(Debug)]
pub(super) struct OrderedResult {
    keys: Rc<[SortKey]>,
    offset: usize,
    limit: Option<usize>,
    /// The outer projection that drops columns added only to sort by.
    output: Option<Vec<TypedExpr>>,
    /// Every row of the result before OFFSET/LIMIT, with its multiplicity.
    rows: BTreeMap<OrderedRow, i64>,
}

impl OrderedResult {
    pub(super) fn new(top: &Top<'_>) -> OrderedResult {
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
        // Summed first, so a row retracted and added again in one step is no change.
        let mut net: BTreeMap<OrderedRow, i64> = BTreeMap::new();
        let keys = &self.keys;
        feed(&mut |row, weight| {
            let key = keys.iter().map(|k| eval(&k.expr, row)).collect::<Result<Vec<_>, _>>()?;
            *net.entry(OrderedRow { key, row: row.to_vec(), keys: keys.clone() }).or_insert(0) += weight;
            Ok(())
        })?;
        let mut changed = false;
        for (row, weight) in net.into_iter().filter(|(_, w)| *w != 0) {
            changed = true;
            let count = self.rows.entry(row.clone()).or_insert(0);
            *count += weight;
            match *count {
                0 => {
                    self.rows.remove(&row);
                }
                n if n < 0 => return Err(IncrementalError::NotRetractable("a result row was retracted twice")),
                _ => {}
            }
        }
        Ok(changed)
    }

    pub(super) fn rows(&self) -> Result<Vec<Row>, QueryError> {
        let all = self.rows.iter().flat_map(|(row, n)| std::iter::repeat_n(&row.row, usize::try_from(*n).unwrap_or(0)));
        let window = all.skip(self.offset).take(self.limit.unwrap_or(usize::MAX));
        match &self.output {
            None => Ok(window.cloned().collect()),
            Some(exprs) => window.map(|row| exprs.iter().map(|e| eval(e, row)).collect()).collect(),
        }
    }
}

/// A result row with its sort key values, ordered as the result shows it.
#[derive(Debug, Clone)]
struct OrderedRow {
    key: Vec<crate::value::Value>,
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
