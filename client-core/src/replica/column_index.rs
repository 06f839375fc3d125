//! Hash indexes on the columns local queries filter by equality (`WHERE column = value`),
//! made automatically the first time a query asks for one.
//!
//! An index covers a table's rows as local queries see them ([`Replica::typed_view`]:
//! subscriptions merged, pending writes replayed), so a look-up returns what a scan would.
//! It is dropped by any change to the replica's rows or pending writes. The first query after a
//! change that asks for a column scans as if there were no index; the second one makes the
//! index (one pass over the table and a sort) and it and every query after it, until the next
//! change, find their rows by value. So an app that writes between every query pays no more
//! than a scan, and one that reads the same column again pays one pass. (Keeping indexes up
//! to date row by row is what incremental live queries do with their own state.)
//!
//! [`Replica::typed_view`]: super::Replica::typed_view

use super::{ReplicaError, TypedRow};
use kalamdb_query::{ColumnDef, DataType, Value};
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

/// Whether a column of type `ty` can be indexed: the types whose SQL equality is equality of
/// the value (no float or decimal rounding, no time-zone conversion).
fn indexable(ty: &DataType) -> bool {
    matches!(ty, DataType::SmallInt | DataType::Int | DataType::BigInt | DataType::Text | DataType::Boolean)
}

/// The hash a value is indexed under; `None` for NULL and values of other types.
fn hash_of(value: &Value) -> Option<u64> {
    let mut h = std::hash::DefaultHasher::new();
    match value {
        Value::Int64(i) => (0u8, i).hash(&mut h),
        Value::Text(s) => (1u8, s).hash(&mut h),
        Value::Boolean(b) => (2u8, b).hash(&mut h),
        _ => return None,
    }
    Some(h.finish())
}

/// One column's index: the rows of the view it was made from, and the rows' positions sorted
/// by the hash of their value (16 bytes a row; values are compared when looked up, so hash
/// collisions cost a comparison, never a wrong row).
#[derive(Debug, Clone)]
struct ColumnIndex {
    /// The columns the rows are aligned to (a query with other columns makes its own).
    columns: Vec<ColumnDef>,
    rows: Vec<TypedRow>,
    /// `(hash, position in rows)`, sorted; NULLs are left out (`= NULL` is never true).
    by_hash: Vec<(u64, u32)>,
}

impl ColumnIndex {
    fn new(columns: &[ColumnDef], column: usize, rows: Vec<TypedRow>) -> ColumnIndex {
        let mut by_hash: Vec<(u64, u32)> =
            rows.iter().enumerate().filter_map(|(i, row)| Some((hash_of(row.get(column)?)?, i as u32))).collect();
        by_hash.sort_unstable();
        ColumnIndex { columns: columns.to_vec(), rows, by_hash }
    }

    /// The rows whose column `column` equals `value`.
    fn rows_equal(&self, column: usize, hash: u64, value: &Value) -> Vec<TypedRow> {
        let from = self.by_hash.partition_point(|(h, _)| *h < hash);
        self.by_hash[from..]
            .iter()
            .take_while(|(h, _)| *h == hash)
            .map(|(_, i)| &self.rows[*i as usize])
            .filter(|row| row.get(column) == Some(value))
            .cloned()
            .collect()
    }
}

/// The indexes of a replica, by table and column position.
#[derive(Debug, Clone, Default)]
pub(super) struct ColumnIndexes {
    indexes: HashMap<(String, usize), ColumnIndex>,
    /// The columns a query asked for since the last change, without an index yet.
    asked: HashSet<(String, usize)>,
}

impl ColumnIndexes {
    /// Forgets every index: the rows or pending writes changed.
    pub(super) fn clear(&mut self) {
        if !self.indexes.is_empty() {
            self.indexes.clear();
        }
        if !self.asked.is_empty() {
            self.asked.clear();
        }
    }

    /// The rows of `table` (aligned to `columns`) whose column `column` equals `value`, from
    /// the column's index, made first from `view` if the column was asked for before since the
    /// last change: `None` when the caller should scan (the first ask after a change, or a
    /// column or value whose type is not indexed).
    pub(super) fn rows_equal(
        &mut self,
        table: &str,
        columns: &[ColumnDef],
        column: usize,
        value: &Value,
        view: impl FnOnce() -> Result<Vec<TypedRow>, ReplicaError>,
    ) -> Result<Option<Vec<TypedRow>>, ReplicaError> {
        if !columns.get(column).is_some_and(|c| indexable(&c.ty)) {
            return Ok(None);
        }
        if matches!(value, Value::Null) {
            return Ok(Some(Vec::new()));
        }
        let Some(hash) = hash_of(value) else { return Ok(None) };
        let slot = (table.to_string(), column);
        if self.indexes.get(&slot).is_none_or(|index| index.columns != columns) {
            if self.asked.insert(slot.clone()) {
                return Ok(None);
            }
            let index = ColumnIndex::new(columns, column, view()?);
            self.indexes.insert(slot.clone(), index);
        }
        Ok(Some(self.indexes[&slot].rows_equal(column, hash, value)))
    }
}
