//! INNER and LEFT equi-joins, maintained: each side's rows indexed by join key.
//!
//! For changes `ΔL` and `ΔR` of one step, the change of `L ⋈ R` is `ΔL ⋈ R_old` plus
//! `L_new ⋈ ΔR` (the left side is updated in between), each pair kept where the rest of the ON
//! condition is TRUE. A LEFT join also shows each left row without a passing match once,
//! NULL-extended: for every join key a step touches, the NULL-extended rows of that key are
//! computed before and after the step and the difference is emitted. Rows with a NULL key never
//! match (as in [`crate::execute`]): on the left they are always NULL-extended, on the right
//! they are dropped.

use super::{Delta, ExactRow, IncrementalError, Operator, TableDeltas, add_to_multiset};
use crate::ast::JoinKind;
use crate::eval::eval;
use crate::exec::{HashMap, HashSet, Row, key_of};
use crate::plan::TypedExpr;
use crate::value::Value;

/// The rows of one side of a join that have one key, with their multiplicities.
type RowsWithKey = HashMap<ExactRow, i64>;

#[derive(Debug)]
pub(super) struct JoinOperator {
    left: Operator,
    right: Operator,
    kind: JoinKind,
    left_keys: Vec<TypedExpr>,
    right_keys: Vec<TypedExpr>,
    /// The rest of the ON condition, over the joined row.
    filter: Option<TypedExpr>,
    right_width: usize,
    /// Left rows with a non-NULL key, by key.
    left_rows: HashMap<Vec<Value>, RowsWithKey>,
    /// Right rows with a non-NULL key, by key.
    right_rows: HashMap<Vec<Value>, RowsWithKey>,
}

impl JoinOperator {
    pub(super) fn new(
        left: Operator,
        right: Operator,
        kind: JoinKind,
        on: &[(TypedExpr, TypedExpr)],
        filter: Option<TypedExpr>,
        right_width: usize,
    ) -> JoinOperator {
        let (left_keys, right_keys) = on.iter().cloned().unzip();
        JoinOperator {
            left,
            right,
            kind,
            left_keys,
            right_keys,
            filter,
            right_width,
            left_rows: HashMap::default(),
            right_rows: HashMap::default(),
        }
    }

    pub(super) fn step(&mut self, changes: &TableDeltas) -> Result<Delta, IncrementalError> {
        let left_delta = keyed(self.left.step(changes)?, &self.left_keys)?;
        let right_delta = keyed(self.right.step(changes)?, &self.right_keys)?;
        let mut out = Vec::new();

        // LEFT: the keys whose NULL-extended rows may change, and those rows before the step.
        let outer = self.kind == JoinKind::Left;
        let touched: HashSet<Vec<Value>> = match outer {
            true => left_delta.iter().chain(&right_delta).filter_map(|(key, _, _)| key.clone()).collect(),
            false => HashSet::default(),
        };
        for (row, weight) in self.unmatched(&touched)? {
            out.push((row, -weight));
        }

        // ΔL ⋈ R_old, then the left side takes ΔL.
        for (key, row, weight) in left_delta {
            match key {
                None if outer => out.push((self.null_extended(&row), weight)),
                None => {}
                Some(key) => {
                    if let Some(matches) = self.right_rows.get(&key) {
                        for (right, right_weight) in matches {
                            if let Some(joined) = self.joined(&row, &right.0)? {
                                out.push((joined, weight * right_weight));
                            }
                        }
                    }
                    add_to_multiset(self.left_rows.entry(key.clone()).or_default(), row, weight)?;
                    if self.left_rows.get(&key).is_some_and(|rows| rows.is_empty()) {
                        self.left_rows.remove(&key);
                    }
                }
            }
        }
        // L_new ⋈ ΔR, then the right side takes ΔR.
        for (key, row, weight) in right_delta {
            let Some(key) = key else { continue };
            if let Some(matches) = self.left_rows.get(&key) {
                for (left, left_weight) in matches {
                    if let Some(joined) = self.joined(&left.0, &row)? {
                        out.push((joined, left_weight * weight));
                    }
                }
            }
            add_to_multiset(self.right_rows.entry(key.clone()).or_default(), row, weight)?;
            if self.right_rows.get(&key).is_some_and(|rows| rows.is_empty()) {
                self.right_rows.remove(&key);
            }
        }

        out.extend(self.unmatched(&touched)?);
        Ok(out)
    }

    /// `left ++ right` if the pair passes the rest of the ON condition.
    fn joined(&self, left: &[Value], right: &[Value]) -> Result<Option<Row>, IncrementalError> {
        let mut row = Vec::with_capacity(left.len() + right.len());
        row.extend_from_slice(left);
        row.extend_from_slice(right);
        match &self.filter {
            Some(f) if !matches!(eval(f, &row)?, Value::Boolean(true)) => Ok(None),
            _ => Ok(Some(row)),
        }
    }

    fn null_extended(&self, left: &[Value]) -> Row {
        let mut row = left.to_vec();
        row.extend(std::iter::repeat_n(Value::Null, self.right_width));
        row
    }

    /// The NULL-extended rows of the left rows with these keys that have no passing match now.
    fn unmatched(&self, keys: &HashSet<Vec<Value>>) -> Result<Delta, IncrementalError> {
        let mut out = Vec::new();
        for key in keys {
            let Some(lefts) = self.left_rows.get(key) else { continue };
            let rights = self.right_rows.get(key);
            for (left, weight) in lefts {
                if !self.has_match(&left.0, rights)? {
                    out.push((self.null_extended(&left.0), *weight));
                }
            }
        }
        Ok(out)
    }

    fn has_match(&self, left: &[Value], rights: Option<&RowsWithKey>) -> Result<bool, IncrementalError> {
        let Some(rights) = rights else { return Ok(false) };
        if self.filter.is_none() {
            return Ok(!rights.is_empty());
        }
        for right in rights.keys() {
            if self.joined(left, &right.0)?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// A changed row with its join key (`None` when a key value is NULL) and its weight.
type KeyedChange = (Option<Vec<Value>>, Row, i64);

/// Each changed row with its join key.
fn keyed(delta: Delta, keys: &[TypedExpr]) -> Result<Vec<KeyedChange>, IncrementalError> {
    delta.into_iter().map(|(row, weight)| Ok((key_of(keys, &row)?, row, weight))).collect()
}
