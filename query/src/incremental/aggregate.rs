//! GROUP BY and aggregates, maintained: per group, a row count and one retractable
//! accumulator per aggregate; a step emits the old and the new row of every group it touched.
//!
//! Retracting is exact for every aggregate of the language: counts and sums subtract (integer
//! sums wrap both ways, decimal sums are exact i128, float sums are [`ExactSum`]s, exact and
//! independent of order as in [`crate::execute`]); avg is a sum and a count; min and max keep
//! the multiset of values in order, so deleting the minimum finds the next; DISTINCT aggregates
//! keep a count per value and feed the inner accumulator on 0 → 1 and 1 → 0.

use super::{Delta, IncrementalError, Operator, TableDeltas, same_value};
use crate::error::QueryError;
use crate::eval::eval;
use crate::exec::{ExactSum, HashMap, Row, agg_input, to_f64};
use crate::plan::{AggCall, AggFunc, TypedExpr};
use crate::types::DataType;
use crate::value::{Value, rescale};
use std::cmp::Ordering;
use std::collections::BTreeMap;

#[derive(Debug)]
pub(super) struct AggregateOperator {
    input: Operator,
    group_by: Vec<TypedExpr>,
    calls: Vec<AggCall>,
    /// Where each group is in `slots`, by its key. A step notes the groups it touches by
    /// place, so a batch touching a thousand groups copies no key and looks none up twice.
    index: HashMap<Vec<Value>, usize>,
    /// The groups; `None` is a place freed by a group that lost its last row, reused next.
    slots: Vec<Option<Group>>,
    free: Vec<usize>,
    /// Without GROUP BY the one group exists before any row arrives; its first row is emitted
    /// by the first step.
    started: bool,
}

#[derive(Debug)]
struct Group {
    /// The GROUP BY values (as GROUP BY compares them).
    key: Vec<Value>,
    /// Input rows in the group (their weights summed).
    rows: i64,
    aggregates: Vec<Aggregate>,
    /// The row this group last emitted, if any: what the next change retracts.
    shown: Option<Row>,
    /// Whether the step under way changed the group (false between steps).
    touched: bool,
}

impl Group {
    fn new(key: Vec<Value>, calls: &[AggCall]) -> Group {
        Group { key, rows: 0, aggregates: calls.iter().map(Aggregate::new).collect(), shown: None, touched: false }
    }
}

/// Adds a group with `key` (not present yet); returns its place.
fn add_group(
    index: &mut HashMap<Vec<Value>, usize>,
    slots: &mut Vec<Option<Group>>,
    free: &mut Vec<usize>,
    key: &[Value],
    calls: &[AggCall],
) -> usize {
    let group = Some(Group::new(key.to_vec(), calls));
    let slot = match free.pop() {
        Some(slot) => {
            slots[slot] = group;
            slot
        }
        None => {
            slots.push(group);
            slots.len() - 1
        }
    };
    index.insert(key.to_vec(), slot);
    slot
}

fn missing_group() -> IncrementalError {
    IncrementalError::NotRetractable("a touched group went missing")
}

impl AggregateOperator {
    pub(super) fn new(input: Operator, group_by: Vec<TypedExpr>, calls: Vec<AggCall>) -> AggregateOperator {
        AggregateOperator {
            input,
            group_by,
            calls,
            index: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            started: false,
        }
    }

    pub(super) fn step(&mut self, changes: &TableDeltas) -> Result<Delta, IncrementalError> {
        let AggregateOperator { input, group_by, calls, index, slots, free, started } = self;
        // The places of the groups this step changes, each once, in the order they were first
        // touched (`Group::touched` marks them).
        let mut touched: Vec<usize> = Vec::new();
        if !*started && group_by.is_empty() {
            let slot = add_group(index, slots, free, &[], calls);
            if let Some(group) = slots[slot].as_mut() {
                group.touched = true;
            }
            touched.push(slot);
        }
        *started = true;
        let mut key: Vec<Value> = Vec::with_capacity(group_by.len());
        input.stream(changes, &mut |row, weight| {
            key.clear();
            for g in group_by.iter() {
                key.push(eval(g, &row)?.grouped());
            }
            let slot = match index.get(&key[..]) {
                Some(slot) => *slot,
                None => add_group(index, slots, free, &key, calls),
            };
            let group = slots.get_mut(slot).and_then(Option::as_mut).ok_or_else(missing_group)?;
            group.rows += weight;
            for (aggregate, call) in group.aggregates.iter_mut().zip(calls.iter()) {
                aggregate.add(agg_input(call, &row)?, weight)?;
            }
            if !group.touched {
                group.touched = true;
                touched.push(slot);
            }
            Ok(())
        })?;
        let mut out = Vec::new();
        for slot in touched {
            let group = slots.get_mut(slot).and_then(Option::as_mut).ok_or_else(missing_group)?;
            group.touched = false;
            if group.rows < 0 {
                return Err(IncrementalError::NotRetractable("a group lost rows it did not have"));
            }
            // With GROUP BY a group exists while it has rows; without, the one row always does.
            let exists = group.rows > 0 || group_by.is_empty();
            // Compared before a row is made: a batch that moves rows between groups touches
            // many groups whose counts end where they began.
            let unchanged = match &group.shown {
                Some(shown) if exists => shows(shown, group.key.len(), &group.aggregates, calls)?,
                None => !exists,
                Some(_) => false,
            };
            if !unchanged {
                let now = match exists {
                    true => {
                        let mut row = group.key.clone();
                        for (aggregate, call) in group.aggregates.iter().zip(calls.iter()) {
                            row.push(aggregate.value(call.ty)?);
                        }
                        Some(row)
                    }
                    false => None,
                };
                if let Some(old) = group.shown.take() {
                    out.push((old, -1));
                }
                if let Some(new) = &now {
                    out.push((new.clone(), 1));
                }
                group.shown = now;
            }
            if group.rows == 0 && !group_by.is_empty() {
                if let Some(gone) = slots[slot].take() {
                    index.remove(&gone.key);
                }
                free.push(slot);
            }
        }
        Ok(out)
    }
}

/// Whether `shown` (a group's key values, then its aggregates) still shows the aggregates'
/// values, bit for bit ([`same_value`]).
fn shows(shown: &[Value], key_len: usize, aggregates: &[Aggregate], calls: &[AggCall]) -> Result<bool, QueryError> {
    let Some(values) = shown.get(key_len..).filter(|v| v.len() == aggregates.len()) else { return Ok(false) };
    for ((aggregate, call), value) in aggregates.iter().zip(calls).zip(values) {
        if !same_value(&aggregate.value(call.ty)?, value) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// One aggregate of one group: its accumulator, and for `f(DISTINCT x)` how many rows hold
/// each value.
#[derive(Debug)]
struct Aggregate {
    accumulator: Accumulator,
    distinct: Option<HashMap<Value, i64>>,
}

impl Aggregate {
    fn new(call: &AggCall) -> Aggregate {
        Aggregate { accumulator: Accumulator::new(call), distinct: call.distinct.then(HashMap::default) }
    }

    /// Adds (`weight > 0`) or retracts (`weight < 0`) `weight` copies of `value`.
    fn add(&mut self, value: Value, weight: i64) -> Result<(), IncrementalError> {
        if value.is_null() {
            return Ok(());
        }
        let Some(counts) = &mut self.distinct else {
            return self.accumulator.add(&value, weight);
        };
        // The value as DISTINCT compares it is what enters the accumulator, so the value a
        // retraction takes out is the one that went in.
        let value = value.grouped();
        let count = counts.entry(value.clone()).or_insert(0);
        let before = *count;
        *count += weight;
        let after = *count;
        if after < 0 {
            return Err(IncrementalError::NotRetractable("a DISTINCT aggregate lost a value it did not have"));
        }
        if after == 0 {
            counts.remove(&value);
        }
        match (before > 0, after > 0) {
            (false, true) => self.accumulator.add(&value, 1),
            (true, false) => self.accumulator.add(&value, -1),
            _ => Ok(()),
        }
    }

    fn value(&self, ty: DataType) -> Result<Value, QueryError> {
        self.accumulator.value(ty)
    }
}

/// A retractable accumulator. `count` is the number of non-NULL values added: a sum or average
/// of none is NULL.
#[derive(Debug)]
enum Accumulator {
    Count(i64),
    SumInt {
        sum: i64,
        count: i64,
    },
    SumFloat {
        sum: ExactSum,
        count: i64,
    },
    SumDecimal {
        sum: i128,
        scale: i8,
        count: i64,
    },
    AvgFloat {
        sum: ExactSum,
        count: i64,
    },
    AvgDecimal {
        sum: i128,
        scale: i8,
        count: i64,
    },
    /// The values in sort order, with how many rows hold each: min is the first, max the last.
    Min(BTreeMap<SortedValue, i64>),
    Max(BTreeMap<SortedValue, i64>),
}

impl Accumulator {
    /// The same accumulator [`crate::execute`] uses for `call` (see `exec::Acc::new`).
    fn new(call: &AggCall) -> Accumulator {
        let input_type = call.arg.as_ref().map_or(DataType::Null, |a| a.ty);
        match call.func {
            AggFunc::CountStar | AggFunc::Count => Accumulator::Count(0),
            AggFunc::Sum => match call.ty {
                DataType::Double => Accumulator::SumFloat { sum: ExactSum::default(), count: 0 },
                DataType::Decimal { scale, .. } => Accumulator::SumDecimal { sum: 0, scale, count: 0 },
                _ => Accumulator::SumInt { sum: 0, count: 0 },
            },
            AggFunc::Avg => match input_type {
                DataType::Decimal { scale, .. } => Accumulator::AvgDecimal { sum: 0, scale, count: 0 },
                _ => Accumulator::AvgFloat { sum: ExactSum::default(), count: 0 },
            },
            AggFunc::Min => Accumulator::Min(BTreeMap::new()),
            AggFunc::Max => Accumulator::Max(BTreeMap::new()),
        }
    }

    /// Adds `weight` copies of a non-NULL value (negative: takes them out).
    fn add(&mut self, value: &Value, weight: i64) -> Result<(), IncrementalError> {
        let overflow = || QueryError::eval("sum overflows DECIMAL");
        match (self, value) {
            (Accumulator::Count(n), _) => *n += weight,
            // Wrapping, as the from-scratch sum (and DataFusion's): wrapping adds are undone by
            // wrapping subtractions.
            (Accumulator::SumInt { sum, count }, Value::Int64(i)) => {
                *sum = sum.wrapping_add(i.wrapping_mul(weight));
                *count += weight;
            }
            (Accumulator::SumFloat { sum, count } | Accumulator::AvgFloat { sum, count }, v) => {
                add_float(sum, to_f64(v), weight)?;
                *count += weight;
            }
            (
                Accumulator::SumDecimal { sum, scale, count } | Accumulator::AvgDecimal { sum, scale, count },
                Value::Decimal(d),
            ) => {
                let x = rescale(d.value, d.scale, *scale).ok_or_else(overflow)?;
                let change = x.checked_mul(i128::from(weight)).ok_or_else(overflow)?;
                *sum = sum.checked_add(change).ok_or_else(overflow)?;
                *count += weight;
            }
            (Accumulator::Min(values) | Accumulator::Max(values), v) => {
                let key = SortedValue(v.clone());
                let n = values.entry(key.clone()).or_insert(0);
                *n += weight;
                if *n < 0 {
                    return Err(IncrementalError::NotRetractable("min/max lost a value it did not have"));
                }
                if *n == 0 {
                    values.remove(&key);
                }
            }
            (_, v) => return Err(QueryError::eval(format!("cannot aggregate '{v}' here")).into()),
        }
        Ok(())
    }

    /// The aggregate's value, of type `ty`, as `exec::Acc::finish` computes it.
    fn value(&self, ty: DataType) -> Result<Value, QueryError> {
        Ok(match self {
            Accumulator::Count(n) => Value::Int64(*n),
            Accumulator::SumInt { count: 0, .. }
            | Accumulator::SumFloat { count: 0, .. }
            | Accumulator::SumDecimal { count: 0, .. }
            | Accumulator::AvgFloat { count: 0, .. }
            | Accumulator::AvgDecimal { count: 0, .. } => Value::Null,
            Accumulator::SumInt { sum, .. } => Value::Int64(*sum),
            Accumulator::SumFloat { sum, .. } => Value::Float64(sum.value()),
            Accumulator::SumDecimal { sum, scale, .. } => Value::decimal(*sum, *scale),
            Accumulator::AvgFloat { sum, count } => Value::Float64(sum.value() / *count as f64),
            Accumulator::AvgDecimal { sum, scale, count } => {
                let DataType::Decimal { scale: out, .. } = ty else {
                    return Err(QueryError::eval("avg(): decimal result expected"));
                };
                let v = rescale(*sum, *scale, out).ok_or_else(|| QueryError::eval("avg overflows DECIMAL"))?;
                Value::decimal(v / *count as i128, out)
            }
            Accumulator::Min(values) => values.keys().next().map_or(Value::Null, |v| v.0.clone()),
            Accumulator::Max(values) => values.keys().next_back().map_or(Value::Null, |v| v.0.clone()),
        })
    }
}

fn add_float(sum: &mut ExactSum, x: f64, weight: i64) -> Result<(), IncrementalError> {
    for _ in 0..weight.unsigned_abs() {
        if weight > 0 {
            sum.add(x);
        } else if sum.remove(x).is_none() {
            return Err(IncrementalError::NotRetractable("a float sum overflowed"));
        }
    }
    if sum.overflowed() {
        // Exact from here on only if nothing is ever taken out; a run from scratch decides.
        return Err(IncrementalError::NotRetractable("a float sum overflowed"));
    }
    Ok(())
}

/// A value ordered as min and max order values (IEEE total order for floats, NULLs last).
#[derive(Debug, Clone)]
struct SortedValue(Value);

impl PartialEq for SortedValue {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for SortedValue {}

impl PartialOrd for SortedValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SortedValue {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.sort_cmp(&other.0)
    }
}
