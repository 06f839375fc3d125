//! Row values: the in-memory form of one cell, coercion of client input (JSON params, SQL
//! literals) to a column type, and conversion to Arrow arrays and JSON output.
//!
//! CRDT_TEXT cells are Yjs documents ([`kalamdb_client_core::crdt`]). SQL and Arrow see their
//! text; sync frames carry `{"text", "state"}`. A write to such a column is either text
//! (replace the text with a minimal edit) or a Yjs update (merge); [`merge_crdt`] turns it
//! into the stored document, in the committer, against the version it is about to replace.

use crate::error::{KalamError, Result};
use crate::types::DataType;
use base64::Engine;
use datafusion::arrow::array::{
    Array, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder,
    Int16Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::DataType as ArrowType;
use kalamdb_client_core::crdt::{self, CrdtText, CrdtValue, CrdtWrite};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One cell. Integer types share `Int` and floating types share `Float`; the column's
/// [`DataType`] says how wide it is. JSON and text columns hold `Text`; stored CRDT_TEXT
/// cells hold `Crdt`, while a write to one holds `Text` (the new text) or `CrdtUpdate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Unscaled value; the scale comes from the column type.
    Decimal(i128),
    Text(String),
    Bytes(Vec<u8>),
    /// Days since the Unix epoch.
    Date(i32),
    /// Microseconds since the Unix epoch (UTC).
    Timestamp(i64),
    /// A CRDT_TEXT document (boxed: larger than every other variant, and rarer).
    Crdt(Box<CrdtCell>),
    /// A Yjs v1 update to merge into a CRDT_TEXT cell. Only ever part of a write: the
    /// committer merges it into the stored document, so it is never stored itself.
    CrdtUpdate(Vec<u8>),
}

/// A stored CRDT_TEXT cell: the whole Yjs document (v1 update) and, so that reads never
/// decode the document, its text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CrdtCell {
    pub text: String,
    pub state: Vec<u8>,
}

impl CrdtCell {
    pub(crate) fn of(doc: &CrdtText) -> CrdtCell {
        CrdtCell { text: doc.text(), state: doc.state() }
    }

    /// The document standing for plain text stored in a CRDT_TEXT column before cells were
    /// documents. It is deterministic (fixed client id 0), so every read of the same text
    /// yields the same state and replicas that merge two reads get the text once.
    pub(crate) fn from_legacy_text(text: &str) -> CrdtCell {
        let mut doc = CrdtText::with_client_id(0);
        doc.replace_text(text);
        CrdtCell::of(&doc)
    }

    /// The document, with a fresh client id for the edits about to be made through it.
    fn doc(&self) -> Result<CrdtText> {
        CrdtText::from_state(&self.state).map_err(|e| KalamError::Corrupt(format!("CRDT_TEXT state: {e}")))
    }
}

impl Value {
    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

fn type_error(column: &str, dt: DataType, got: &str) -> KalamError {
    KalamError::Validation(format!("column '{column}' has type {}, cannot store {got}", dt.sql_name()))
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Int(i) => format!("integer {i}"),
        Value::Float(f) => format!("number {f}"),
        Value::Decimal(d) => format!("decimal {d}"),
        Value::Text(s) if s.len() > 40 => format!("text '{}...'", &s[..s.floor_char_boundary(40)]),
        Value::Text(s) => format!("text '{s}'"),
        Value::Bytes(b) => format!("{} bytes", b.len()),
        Value::Date(_) => "a date".into(),
        Value::Timestamp(_) => "a timestamp".into(),
        Value::Crdt(_) => "a CRDT_TEXT document".into(),
        Value::CrdtUpdate(_) => "a CRDT update".into(),
    }
}

/// Converts a value to the column's type, or explains why it cannot be stored.
pub(crate) fn coerce(value: Value, dt: DataType, column: &str) -> Result<Value> {
    let err = |v: &Value| type_error(column, dt, &describe(v));
    Ok(match (dt, value) {
        (_, Value::Null) => Value::Null,
        (DataType::Boolean, Value::Bool(b)) => Value::Bool(b),
        (DataType::Boolean, Value::Text(s)) if matches!(s.to_ascii_lowercase().as_str(), "true" | "false") => {
            Value::Bool(s.eq_ignore_ascii_case("true"))
        }
        (DataType::SmallInt | DataType::Int | DataType::BigInt, v) => {
            let i = match &v {
                Value::Int(i) => *i,
                Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => *f as i64,
                Value::Text(s) => s.trim().parse::<i64>().map_err(|_| err(&v))?,
                _ => return Err(err(&v)),
            };
            let (min, max) = match dt {
                DataType::SmallInt => (i16::MIN as i64, i16::MAX as i64),
                DataType::Int => (i32::MIN as i64, i32::MAX as i64),
                _ => (i64::MIN, i64::MAX),
            };
            if i < min || i > max {
                return Err(KalamError::Validation(format!(
                    "value {i} is out of range for column '{column}' of type {}",
                    dt.sql_name()
                )));
            }
            Value::Int(i)
        }
        (DataType::Float | DataType::Double, v) => {
            let f = match v {
                Value::Float(f) => f,
                Value::Int(i) => i as f64,
                Value::Text(ref s) => s.trim().parse::<f64>().map_err(|_| err(&v))?,
                _ => return Err(err(&v)),
            };
            // FLOAT is single precision: store what a FLOAT column can hold, so every read
            // path (SQL results, sync frames) returns the same number.
            Value::Float(if dt == DataType::Float { f as f32 as f64 } else { f })
        }
        (DataType::Decimal { precision, scale }, v) => {
            let unscaled = match &v {
                Value::Int(i) => (*i as i128).checked_mul(10i128.pow(scale.max(0) as u32)),
                Value::Float(f) => Some((f * 10f64.powi(scale as i32)).round() as i128),
                Value::Decimal(d) => Some(*d),
                Value::Text(s) => parse_decimal(s.trim(), scale),
                _ => None,
            }
            .ok_or_else(|| err(&v))?;
            if unscaled.unsigned_abs() >= 10u128.pow(precision as u32) {
                return Err(KalamError::Validation(format!(
                    "value does not fit column '{column}' of type {}",
                    dt.sql_name()
                )));
            }
            Value::Decimal(unscaled)
        }
        (DataType::Text | DataType::CrdtText, Value::Text(s)) => Value::Text(s),
        (DataType::CrdtText, v @ (Value::Crdt(_) | Value::CrdtUpdate(_))) => v,
        (DataType::Json, Value::Text(s)) => {
            serde_json::from_str::<serde_json::Value>(&s)
                .map_err(|e| KalamError::Validation(format!("column '{column}' expects JSON text: {e}")))?;
            Value::Text(s)
        }
        (DataType::Bytes, Value::Bytes(b)) => Value::Bytes(b),
        (DataType::Date, v) => match &v {
            Value::Date(d) => Value::Date(*d),
            Value::Text(s) => Value::Date(parse_date(s.trim()).ok_or_else(|| err(&v))?),
            Value::Timestamp(t) => Value::Date(t.div_euclid(86_400_000_000) as i32),
            _ => return Err(err(&v)),
        },
        (DataType::Timestamp, v) => match &v {
            Value::Timestamp(t) => Value::Timestamp(*t),
            Value::Int(i) => Value::Timestamp(*i),
            Value::Text(s) => Value::Timestamp(parse_timestamp(s.trim()).ok_or_else(|| err(&v))?),
            Value::Date(d) => Value::Timestamp(*d as i64 * 86_400_000_000),
            _ => return Err(err(&v)),
        },
        (_, v) => return Err(err(&v)),
    })
}

/// Reads a JSON request parameter as a value for a column of type `dt`.
pub(crate) fn from_json(json: &serde_json::Value, dt: Option<DataType>, column: &str) -> Result<Value> {
    use serde_json::Value as J;
    let v = match json {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => match dt {
            Some(DataType::Bytes) => {
                Value::Bytes(base64::engine::general_purpose::STANDARD.decode(s).map_err(|_| {
                    KalamError::Validation(format!("column '{column}' is BYTES: pass parameters as base64 strings"))
                })?)
            }
            _ => Value::Text(s.clone()),
        },
        J::Array(_) | J::Object(_) => match dt {
            Some(DataType::Json) | None => Value::Text(json.to_string()),
            Some(other) => return Err(type_error(column, other, "a JSON array or object")),
        },
    };
    match (dt, &v) {
        (Some(DataType::Json), Value::Text(_)) if !matches!(json, J::String(_)) => Ok(v),
        // A JSON column given a scalar stores that scalar as JSON (a string becomes "...").
        (Some(DataType::Json), _) => Ok(Value::Text(json.to_string())),
        (Some(dt), _) => coerce(v, dt, column),
        (None, _) => Ok(v),
    }
}

/// Parses a decimal literal into an unscaled integer with `scale` digits after the point,
/// rounding half away from zero (as SQL databases do).
fn parse_decimal(s: &str, scale: i8) -> Option<i128> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.chars().all(|c| c.is_ascii_digit()) || !frac_part.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let scale = scale.max(0) as usize;
    let mut frac: String = frac_part.chars().take(scale).collect();
    while frac.len() < scale {
        frac.push('0');
    }
    let round_up = frac_part.as_bytes().get(scale).is_some_and(|d| *d >= b'5');
    let joined = format!("{int_part}{frac}");
    let mut v: i128 = if joined.is_empty() { 0 } else { joined.parse().ok()? };
    if round_up {
        v = v.checked_add(1)?;
    }
    Some(if neg { -v } else { v })
}

/// `YYYY-MM-DD` → days since epoch.
pub(crate) fn parse_date(s: &str) -> Option<i32> {
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some((d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days() as i32)
}

/// RFC 3339 (`2024-01-02T03:04:05.123Z`), or `YYYY-MM-DD[ HH:MM:SS[.ffffff]]` taken as UTC.
pub(crate) fn parse_timestamp(s: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    parse_date(s).map(|d| d as i64 * 86_400_000_000)
}

/// RFC 3339 with microseconds and `Z`.
pub(crate) fn format_timestamp(micros: i64) -> String {
    match chrono::DateTime::from_timestamp_micros(micros) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        None => micros.to_string(),
    }
}

pub(crate) fn format_date(days: i32) -> String {
    match chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|e| e.checked_add_signed(chrono::Duration::days(days as i64)))
    {
        Some(d) => d.format("%Y-%m-%d").to_string(),
        None => days.to_string(),
    }
}

/// Builds an Arrow array of type `dt` from already-coerced values.
pub(crate) fn to_arrow(dt: DataType, values: &[&Value]) -> Result<ArrayRef> {
    macro_rules! build {
        ($builder:expr, $pat:pat => $out:expr) => {{
            let mut b = $builder;
            for v in values {
                match v {
                    $pat => b.append_value($out),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    Ok(match dt {
        DataType::Null => Arc::new(datafusion::arrow::array::NullArray::new(values.len())) as ArrayRef,
        DataType::Boolean => build!(BooleanBuilder::with_capacity(values.len()), Value::Bool(x) => *x),
        DataType::SmallInt => build!(Int16Builder::with_capacity(values.len()), Value::Int(x) => *x as i16),
        DataType::Int => build!(Int32Builder::with_capacity(values.len()), Value::Int(x) => *x as i32),
        DataType::BigInt => build!(Int64Builder::with_capacity(values.len()), Value::Int(x) => *x),
        DataType::Float => build!(Float32Builder::with_capacity(values.len()), Value::Float(x) => *x as f32),
        DataType::Double => build!(Float64Builder::with_capacity(values.len()), Value::Float(x) => *x),
        DataType::Decimal { precision, scale } => {
            let mut b = Decimal128Builder::with_capacity(values.len())
                .with_precision_and_scale(precision, scale)
                .map_err(KalamError::internal)?;
            for v in values {
                match v {
                    Value::Decimal(x) => b.append_value(*x),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Text | DataType::Json => {
            build!(StringBuilder::with_capacity(values.len(), values.len() * 16), Value::Text(x) => x)
        }
        DataType::CrdtText => {
            let mut b = StringBuilder::with_capacity(values.len(), values.len() * 16);
            for v in values {
                match v {
                    Value::Crdt(c) => b.append_value(&c.text),
                    Value::Text(x) => b.append_value(x),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Bytes => build!(BinaryBuilder::with_capacity(values.len(), values.len() * 16), Value::Bytes(x) => x),
        DataType::Date => build!(Date32Builder::with_capacity(values.len()), Value::Date(x) => *x),
        DataType::Timestamp => {
            build!(TimestampMicrosecondBuilder::with_capacity(values.len()), Value::Timestamp(x) => *x)
        }
    })
}

/// Reads row `i` of an Arrow array as a [`Value`] (for INSERT ... SELECT and UPDATE).
pub(crate) fn from_arrow(array: &dyn Array, i: usize) -> Result<Value> {
    use datafusion::arrow::array::*;
    use datafusion::arrow::datatypes::TimeUnit;
    // A NullArray has no validity buffer: `is_null` says false for its rows.
    if array.is_null(i) || array.data_type().is_null() {
        return Ok(Value::Null);
    }
    macro_rules! get {
        ($t:ty) => {
            array.as_any().downcast_ref::<$t>().map(|a| a.value(i))
        };
    }
    let missing = || KalamError::internal("array type mismatch");
    Ok(match array.data_type() {
        ArrowType::Boolean => Value::Bool(get!(BooleanArray).ok_or_else(missing)?),
        ArrowType::Int8 => Value::Int(get!(Int8Array).ok_or_else(missing)? as i64),
        ArrowType::Int16 => Value::Int(get!(Int16Array).ok_or_else(missing)? as i64),
        ArrowType::Int32 => Value::Int(get!(Int32Array).ok_or_else(missing)? as i64),
        ArrowType::Int64 => Value::Int(get!(Int64Array).ok_or_else(missing)?),
        ArrowType::UInt8 => Value::Int(get!(UInt8Array).ok_or_else(missing)? as i64),
        ArrowType::UInt16 => Value::Int(get!(UInt16Array).ok_or_else(missing)? as i64),
        ArrowType::UInt32 => Value::Int(get!(UInt32Array).ok_or_else(missing)? as i64),
        ArrowType::UInt64 => {
            let v = get!(UInt64Array).ok_or_else(missing)?;
            Value::Int(i64::try_from(v).map_err(|_| KalamError::Validation(format!("{v} is too large for BIGINT")))?)
        }
        ArrowType::Float16 => Value::Float(get!(Float16Array).ok_or_else(missing)?.to_f64()),
        ArrowType::Float32 => Value::Float(get!(Float32Array).ok_or_else(missing)? as f64),
        ArrowType::Float64 => Value::Float(get!(Float64Array).ok_or_else(missing)?),
        ArrowType::Decimal128(_, scale) => {
            let v = get!(Decimal128Array).ok_or_else(missing)?;
            // Carried as text so `coerce` rescales it to the target column.
            Value::Text(format_decimal(v, *scale))
        }
        ArrowType::Utf8 => Value::Text(get!(StringArray).ok_or_else(missing)?.to_string()),
        ArrowType::LargeUtf8 => Value::Text(get!(LargeStringArray).ok_or_else(missing)?.to_string()),
        ArrowType::Utf8View => Value::Text(get!(StringViewArray).ok_or_else(missing)?.to_string()),
        ArrowType::Binary => Value::Bytes(get!(BinaryArray).ok_or_else(missing)?.to_vec()),
        ArrowType::LargeBinary => Value::Bytes(get!(LargeBinaryArray).ok_or_else(missing)?.to_vec()),
        ArrowType::BinaryView => Value::Bytes(get!(BinaryViewArray).ok_or_else(missing)?.to_vec()),
        ArrowType::Date32 => Value::Date(get!(Date32Array).ok_or_else(missing)?),
        ArrowType::Timestamp(unit, _) => {
            let raw = match unit {
                TimeUnit::Second => get!(TimestampSecondArray).map(|v| v * 1_000_000),
                TimeUnit::Millisecond => get!(TimestampMillisecondArray).map(|v| v * 1_000),
                TimeUnit::Microsecond => get!(TimestampMicrosecondArray),
                TimeUnit::Nanosecond => get!(TimestampNanosecondArray).map(|v| v / 1_000),
            };
            Value::Timestamp(raw.ok_or_else(missing)?)
        }
        other => {
            return Err(KalamError::Validation(format!("cannot store a value of type {other}")));
        }
    })
}

/// A value as it appears in JSON results and sync frames: numbers as numbers (NaN and
/// infinities as strings), DECIMAL as exact text, TIMESTAMP as RFC 3339 (µs, `Z`), DATE as
/// `YYYY-MM-DD`, BYTES as base64, JSON columns as the JSON value itself.
pub(crate) fn to_json(v: &Value, dt: DataType) -> serde_json::Value {
    use serde_json::{Value as J, json};
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map(J::Number).unwrap_or_else(|| json!(f.to_string())),
        Value::Decimal(d) => match dt {
            DataType::Decimal { scale, .. } => json!(format_decimal(*d, scale)),
            _ => json!(d.to_string()),
        },
        Value::Text(s) if dt == DataType::Json => serde_json::from_str(s).unwrap_or_else(|_| json!(s)),
        Value::Text(s) => json!(s),
        Value::Bytes(b) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::Date(d) => json!(format_date(*d)),
        Value::Timestamp(t) => json!(format_timestamp(*t)),
        Value::Crdt(c) => json!(c.text),
        // Never stored, hence never read.
        Value::CrdtUpdate(_) => J::Null,
    }
}

/// A value as sync frames carry it: as [`to_json`], except that a CRDT_TEXT cell is the
/// document, `{"text": "...", "state": "<base64 Yjs v1 update>"}` (NULL stays `null`).
pub(crate) fn to_sync_json(v: &Value, dt: DataType) -> serde_json::Value {
    let doc = |c: &CrdtCell| serde_json::json!(CrdtValue::new(c.text.clone(), &c.state));
    match (dt, v) {
        (DataType::CrdtText, Value::Crdt(c)) => doc(c),
        (DataType::CrdtText, Value::Text(s)) => doc(&CrdtCell::from_legacy_text(s)),
        _ => to_json(v, dt),
    }
}

/// Reads what a sync client writes to a CRDT_TEXT column: `null`, a string (the new text) or
/// `{"update": "<base64 Yjs v1 update>"}` (checked to decode; merged at commit).
pub(crate) fn crdt_write_from_json(json: &serde_json::Value, column: &str) -> Result<Value> {
    if json.is_null() {
        return Ok(Value::Null);
    }
    let invalid = |why: String| {
        KalamError::Validation(format!(
            "column '{column}' is CRDT_TEXT: send a string (the new text) or {{\"update\": \"<base64 Yjs v1 update>\"}}{why}"
        ))
    };
    match CrdtWrite::from_json(json) {
        Some(CrdtWrite::Text(s)) => Ok(Value::Text(s)),
        Some(CrdtWrite::Update(u)) => {
            let bytes = crdt::decode_base64(&u.update).map_err(|e| invalid(format!(" ({e})")))?;
            crdt::validate_update(&bytes).map_err(|e| invalid(format!(" ({e})")))?;
            Ok(Value::CrdtUpdate(bytes))
        }
        None => Err(invalid(String::new())),
    }
}

/// The cell a write to a CRDT_TEXT column leaves, given the `current` stored value: text
/// replaces the document's text with a minimal edit (a new document if there is none), so
/// concurrent edits elsewhere in the text survive; an update is merged (into an empty document
/// if there is none). Called under the commit lock, so no other write to the row interleaves.
pub(crate) fn merge_crdt(current: Option<&Value>, write: Value, column: &str) -> Result<Value> {
    let current_doc = || -> Result<Option<CrdtText>> {
        match current {
            Some(Value::Crdt(c)) => c.doc().map(Some),
            Some(Value::Text(s)) => CrdtCell::from_legacy_text(s).doc().map(Some),
            _ => Ok(None),
        }
    };
    let cell = |doc: &CrdtText| Value::Crdt(Box::new(CrdtCell::of(doc)));
    match write {
        Value::Null => Ok(Value::Null),
        v @ Value::Crdt(_) => Ok(v),
        Value::Text(s) => {
            if let Some(Value::Crdt(c)) = current
                && c.text == s
            {
                return Ok(Value::Crdt(c.clone()));
            }
            Ok(match current_doc()? {
                Some(mut doc) => {
                    doc.replace_text(&s);
                    cell(&doc)
                }
                None => cell(&CrdtText::from_text(&s)),
            })
        }
        Value::CrdtUpdate(update) => {
            let mut doc = current_doc()?.unwrap_or_default();
            doc.apply_update(&update)
                .map_err(|e| KalamError::Validation(format!("column '{column}' cannot merge the update: {e}")))?;
            if doc.has_pending() {
                return Err(KalamError::Validation(format!(
                    "column '{column}': the update builds on edits the stored document does not have \
                     (was the row re-created?); send the whole document state as the update"
                )));
            }
            Ok(cell(&doc))
        }
        other => Err(type_error(column, DataType::CrdtText, &describe(&other))),
    }
}

pub(crate) fn format_decimal(unscaled: i128, scale: i8) -> String {
    if scale <= 0 {
        return (unscaled * 10i128.pow((-scale) as u32)).to_string();
    }
    let s = unscaled.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = if s.len() <= scale { format!("{}{}", "0".repeat(scale - s.len() + 1), s) } else { s };
    let (int_part, frac) = padded.split_at(padded.len() - scale);
    format!("{}{int_part}.{frac}", if unscaled < 0 { "-" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_round_trip_through_text() {
        assert_eq!(parse_decimal("12.345", 2), Some(1235));
        assert_eq!(parse_decimal("12.344", 2), Some(1234));
        assert_eq!(parse_decimal("-0.005", 2), Some(-1));
        assert_eq!(parse_decimal("-0.5", 3), Some(-500));
        assert_eq!(format_decimal(-500, 3), "-0.500");
        assert_eq!(format_decimal(1234, 2), "12.34");
        assert_eq!(parse_decimal("abc", 2), None);
    }

    #[test]
    fn integer_ranges_are_checked() {
        assert!(coerce(Value::Int(40_000), DataType::SmallInt, "c").is_err());
        assert_eq!(coerce(Value::Int(7), DataType::Double, "c").unwrap(), Value::Float(7.0));
        assert!(coerce(Value::Text("x".into()), DataType::BigInt, "c").is_err());
    }

    #[test]
    fn timestamps_parse_and_format() {
        let t = parse_timestamp("2024-01-02T03:04:05.123456Z").unwrap();
        assert_eq!(format_timestamp(t), "2024-01-02T03:04:05.123456Z");
        assert_eq!(parse_timestamp("2024-01-02 03:04:05.123456"), Some(t));
        assert_eq!(format_date(parse_date("2024-02-29").unwrap()), "2024-02-29");
    }

    #[test]
    fn crdt_writes_merge_into_the_stored_document() {
        let stored = merge_crdt(None, Value::Text("hello world".into()), "c").unwrap();
        let Value::Crdt(base) = &stored else { panic!("{stored:?}") };
        // A device edits the stored state while SQL rewrites the text.
        let mut device = CrdtText::from_state(&base.state).unwrap();
        device.insert(6, "big ");
        let after_sql = merge_crdt(Some(&stored), Value::Text("hello world!".into()), "c").unwrap();
        let merged = merge_crdt(Some(&after_sql), Value::CrdtUpdate(device.state()), "c").unwrap();
        assert_eq!(to_json(&merged, DataType::CrdtText), serde_json::json!("hello big world!"));
        let sync = to_sync_json(&merged, DataType::CrdtText);
        assert_eq!(sync["text"], "hello big world!");
        assert!(sync["state"].is_string());
        assert_eq!(merge_crdt(Some(&merged), Value::Null, "c").unwrap(), Value::Null);
        assert!(merge_crdt(Some(&merged), Value::Int(1), "c").is_err());
        assert!(merge_crdt(Some(&merged), Value::CrdtUpdate(vec![1, 2, 3]), "c").is_err());
    }

    #[test]
    fn crdt_legacy_text_reads_the_same_every_time() {
        assert_eq!(CrdtCell::from_legacy_text("héllo 👋"), CrdtCell::from_legacy_text("héllo 👋"));
        let cell = CrdtCell::from_legacy_text("héllo 👋");
        assert_eq!(CrdtText::from_state(&cell.state).unwrap().text(), "héllo 👋");
    }

    #[test]
    fn crdt_writes_from_json() {
        assert_eq!(crdt_write_from_json(&serde_json::json!("x"), "c").unwrap(), Value::Text("x".into()));
        assert_eq!(crdt_write_from_json(&serde_json::Value::Null, "c").unwrap(), Value::Null);
        let state = CrdtText::from_text("x").state();
        let update = serde_json::json!({ "update": crdt::encode_base64(&state) });
        assert_eq!(crdt_write_from_json(&update, "c").unwrap(), Value::CrdtUpdate(state));
        for bad in [serde_json::json!(1), serde_json::json!({ "update": "%%" }), serde_json::json!({ "text": "x" })] {
            let err = crdt_write_from_json(&bad, "c").unwrap_err();
            assert!(matches!(&err, KalamError::Validation(m) if m.contains("'c' is CRDT_TEXT")), "{err:?}");
        }
    }

    #[test]
    fn json_params_into_bytes_are_base64() {
        let v = from_json(&serde_json::json!("aGk="), Some(DataType::Bytes), "b").unwrap();
        assert_eq!(v, Value::Bytes(b"hi".to_vec()));
        assert!(from_json(&serde_json::json!("%%"), Some(DataType::Bytes), "b").is_err());
    }
}
