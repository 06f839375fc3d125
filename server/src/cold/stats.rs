//! Per-column min/max statistics of a cold file, and the value order they rely on.

use crate::cold::manifest::ColumnStats;
use crate::schema::{ColumnId, TableDef};
use crate::types::DataType;
use crate::values::Value;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Orders two stored values of one column type; `None` when they are not comparable
/// (different kinds, NaN), which disables pruning on that column.
pub(crate) fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Int(x), Value::Float(y)) => (*x as f64).partial_cmp(y),
        (Value::Float(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Decimal(x), Value::Decimal(y)) => Some(x.cmp(y)),
        (Value::Text(x), Value::Text(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        (Value::Timestamp(x), Value::Timestamp(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Whether statistics are kept for a column type (types with a total order that SQL
/// comparisons follow).
fn has_stats(dt: DataType) -> bool {
    !matches!(dt, DataType::Bytes | DataType::Json | DataType::CrdtText)
}

struct Column {
    id: ColumnId,
    min: Option<Value>,
    max: Option<Value>,
    nulls: u64,
    /// Set when two values could not be compared: no statistics for this column.
    unordered: bool,
}

/// Accumulates statistics while a file is written.
pub(crate) struct StatsBuilder {
    /// Index into the row's values, and the running statistics.
    columns: Vec<(usize, Column)>,
}

impl StatsBuilder {
    pub(crate) fn new(table: &TableDef) -> StatsBuilder {
        StatsBuilder {
            columns: table
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| has_stats(c.data_type))
                .map(|(i, c)| (i, Column { id: c.id, min: None, max: None, nulls: 0, unordered: false }))
                .collect(),
        }
    }

    pub(crate) fn add(&mut self, values: &[Value]) {
        for (i, col) in &mut self.columns {
            let v = &values[*i];
            if v.is_null() {
                col.nulls += 1;
                continue;
            }
            if col.unordered {
                continue;
            }
            for (bound, keep) in [(&mut col.min, Ordering::Less), (&mut col.max, Ordering::Greater)] {
                match bound {
                    None => *bound = Some(v.clone()),
                    Some(b) => match compare(v, b) {
                        Some(o) if o == keep => *bound = Some(v.clone()),
                        Some(_) => {}
                        None => col.unordered = true,
                    },
                }
            }
            if matches!(v, Value::Float(f) if f.is_nan()) {
                col.unordered = true;
            }
        }
    }

    pub(crate) fn finish(self) -> BTreeMap<ColumnId, ColumnStats> {
        self.columns
            .into_iter()
            .map(|(_, c)| {
                let (min, max) = if c.unordered { (None, None) } else { (c.min, c.max) };
                (c.id, ColumnStats { min, max, nulls: c.nulls })
            })
            .collect()
    }
}
