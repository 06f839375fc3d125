//! Values in KalamDB's JSON encoding (feature `json`): the form rows take in HTTP results, in
//! sync frames and in the client's replica (`docs/http-api.md`).
//!
//! | type | JSON |
//! |---|---|
//! | BOOLEAN | `true` / `false` |
//! | SMALLINT, INT, BIGINT | a number (a BIGINT beyond 2^53 keeps all its digits in the text) |
//! | FLOAT, DOUBLE | a number; NaN and the infinities as the strings `"NaN"`, `"inf"`, `"-inf"` |
//! | DECIMAL(p,s) | a string with exactly `s` fraction digits: `"9.50"` |
//! | TEXT, CRDT_TEXT | a string |
//! | BYTES | a base64 string |
//! | DATE | `"YYYY-MM-DD"` |
//! | TIMESTAMP | RFC 3339 in UTC with microseconds: `"2024-03-15T10:20:30.000000Z"` |
//! | JSON | the JSON value itself |
//!
//! [`from_json`] reads a value for a column as the server stores a written value (its `coerce`),
//! so a pending local write reads locally as the server will store it: integers also from
//! integral floats and from decimal text, DECIMAL from numbers, TIMESTAMP also from a number of
//! microseconds. [`to_json`] writes what the server's results carry.

use crate::types::DataType;
use crate::value::{
    MICROS_PER_DAY, Value, civil_from_days, float_to_decimal, format_date, format_decimal, parse_date, parse_decimal,
    parse_timestamp, pow10,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value as Json;

/// A JSON value that is not a value of the column's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{found} is not a valid {ty} value{}", if .why.is_empty() { String::new() } else { format!(" ({})", .why) })]
pub struct JsonValueError {
    /// The type asked for.
    pub ty: DataType,
    /// The JSON text found (shortened when long).
    pub found: String,
    /// What is wrong, when more can be said than the type ("out of range").
    pub why: String,
}

impl JsonValueError {
    fn new(ty: DataType, json: &Json, why: &str) -> Self {
        let mut found = json.to_string();
        if found.chars().count() > 60 {
            found = format!("{}…", found.chars().take(60).collect::<String>());
        }
        JsonValueError { ty, found, why: why.to_string() }
    }
}

/// Reads `json` as a value of type `ty`. `null` is NULL for every type.
pub fn from_json(json: &Json, ty: DataType) -> Result<Value, JsonValueError> {
    if json.is_null() {
        return Ok(Value::Null);
    }
    let bad = |why: &str| JsonValueError::new(ty, json, why);
    Ok(match ty {
        DataType::Null => return Err(bad("only null has the type of a bare NULL")),
        DataType::Boolean => match json {
            Json::Bool(b) => Value::Boolean(*b),
            Json::String(s) if s.eq_ignore_ascii_case("true") => Value::Boolean(true),
            Json::String(s) if s.eq_ignore_ascii_case("false") => Value::Boolean(false),
            _ => return Err(bad("")),
        },
        DataType::SmallInt | DataType::Int | DataType::BigInt => {
            let i = match json {
                Json::Number(n) => match (n.as_i64(), n.as_f64()) {
                    (Some(i), _) => i,
                    // An integral float, as the server stores it (below 9e18, inside i64).
                    (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e18 => f as i64,
                    _ => return Err(bad("out of range")),
                },
                Json::String(s) => s.trim().parse::<i64>().map_err(|_| bad(""))?,
                _ => return Err(bad("")),
            };
            let (min, max) = match ty {
                DataType::SmallInt => (i16::MIN as i64, i16::MAX as i64),
                DataType::Int => (i32::MIN as i64, i32::MAX as i64),
                _ => (i64::MIN, i64::MAX),
            };
            if !(min..=max).contains(&i) {
                return Err(bad("out of range"));
            }
            Value::Int64(i)
        }
        DataType::Float | DataType::Double => {
            let f = match json {
                Json::Number(n) => n.as_f64().ok_or_else(|| bad(""))?,
                // "NaN", "inf", "-inf" (and any other number as text).
                Json::String(s) => s.trim().parse::<f64>().map_err(|_| bad(""))?,
                _ => return Err(bad("")),
            };
            // A FLOAT holds what an f32 can: the same number every read path returns.
            Value::Float64(if ty == DataType::Float { f as f32 as f64 } else { f })
        }
        DataType::Decimal { precision, scale } => {
            let digits = match json {
                Json::String(s) => parse_decimal(s, scale),
                Json::Number(n) => match (n.as_i64(), n.as_f64()) {
                    (Some(i), _) => pow10(scale.max(0) as u32).and_then(|p| (i as i128).checked_mul(p)),
                    (None, Some(f)) => float_to_decimal(f, scale),
                    _ => None,
                },
                _ => None,
            }
            .ok_or_else(|| bad(""))?;
            if pow10(precision as u32).is_some_and(|limit| digits.unsigned_abs() >= limit.unsigned_abs()) {
                return Err(bad("too many digits"));
            }
            Value::decimal(digits, scale)
        }
        DataType::Text | DataType::CrdtText => match json {
            Json::String(s) => Value::Text(s.as_str().into()),
            _ => return Err(bad("")),
        },
        DataType::Bytes => match json {
            Json::String(s) => Value::Bytes(BASE64.decode(s).map_err(|_| bad("not base64"))?.into()),
            _ => return Err(bad("")),
        },
        DataType::Date => match json {
            Json::String(s) => Value::Date(parse_date(s).ok_or_else(|| bad("not YYYY-MM-DD"))?),
            _ => return Err(bad("")),
        },
        DataType::Timestamp => match json {
            Json::String(s) => Value::Timestamp(parse_timestamp(s).ok_or_else(|| bad(""))?),
            Json::Number(n) => Value::Timestamp(n.as_i64().ok_or_else(|| bad("microseconds must be an integer"))?),
            _ => return Err(bad("")),
        },
        // SQL sees a JSON column as its text.
        DataType::Json => Value::Json(json.to_string().into()),
    })
}

/// Reads a query parameter: its type is its JSON type (integers BIGINT, other numbers DOUBLE,
/// strings TEXT, arrays and objects JSON). A text parameter next to a typed value is read as
/// that type when the query is planned (`created >= $1` with `"2024-01-01"`), see the crate's
/// semantics. Integers beyond the BIGINT range become DOUBLE, as on the server.
pub fn param_from_json(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int64(i),
            None => Value::Float64(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::Text(s.as_str().into()),
        Json::Array(_) | Json::Object(_) => Value::Json(json.to_string().into()),
    }
}

/// Writes `value` of type `ty` as the server's results carry it.
pub fn to_json(value: &Value, ty: DataType) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Int64(i) => Json::from(*i),
        // JSON has no NaN or infinities: those become their Rust names, as on the server.
        Value::Float64(f) => serde_json::Number::from_f64(*f).map_or_else(|| Json::String(f.to_string()), Json::Number),
        Value::Decimal(d) => Json::String(format_decimal(d.value, d.scale)),
        Value::Text(s) => Json::String(s.to_string()),
        Value::Json(text) if ty == DataType::Json => {
            serde_json::from_str(text).unwrap_or_else(|_| Json::String(text.to_string()))
        }
        Value::Json(text) => Json::String(text.to_string()),
        Value::Bytes(b) => Json::String(BASE64.encode(b)),
        Value::Date(d) => Json::String(format_date(*d)),
        Value::Timestamp(t) => Json::String(format_timestamp_rfc3339(*t)),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`: the wire form of a TIMESTAMP (always six fraction digits).
pub fn format_timestamp_rfc3339(micros: i64) -> String {
    let (y, m, d) = civil_from_days(micros.div_euclid(MICROS_PER_DAY));
    let of_day = micros.rem_euclid(MICROS_PER_DAY);
    let secs = of_day / 1_000_000;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z", secs / 3600, secs / 60 % 60, secs % 60, of_day % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(j: Json, ty: DataType) -> Result<Value, JsonValueError> {
        from_json(&j, ty)
    }

    const DEC: DataType = DataType::Decimal { precision: 10, scale: 2 };

    #[test]
    fn reads_each_type_as_the_server_encodes_it() {
        assert_eq!(read(json!(null), DataType::BigInt), Ok(Value::Null));
        assert_eq!(read(json!(true), DataType::Boolean), Ok(Value::Boolean(true)));
        assert_eq!(read(json!(9007199254740993i64), DataType::BigInt), Ok(Value::Int64(9007199254740993)));
        assert_eq!(read(json!(1.5), DataType::Double), Ok(Value::Float64(1.5)));
        assert_eq!(
            read(json!("NaN"), DataType::Double).map(|v| matches!(v, Value::Float64(f) if f.is_nan())),
            Ok(true)
        );
        assert_eq!(read(json!("-inf"), DataType::Double), Ok(Value::Float64(f64::NEG_INFINITY)));
        assert_eq!(read(json!(0.1), DataType::Float), Ok(Value::Float64(0.1f32 as f64)));
        assert_eq!(read(json!("9.50"), DEC), Ok(Value::decimal(950, 2)));
        assert_eq!(read(json!("a text"), DataType::Text), Ok(Value::Text("a text".into())));
        assert_eq!(read(json!("AAEC"), DataType::Bytes), Ok(Value::Bytes(vec![0, 1, 2].into())));
        assert_eq!(read(json!("2024-02-29"), DataType::Date), Ok(Value::Date(19782)));
        assert_eq!(
            read(json!("2024-03-15T10:20:30.000001Z"), DataType::Timestamp),
            Ok(Value::Timestamp(parse_timestamp("2024-03-15 10:20:30.000001").unwrap()))
        );
        assert_eq!(
            read(json!({"b": [1, 2], "a": null}), DataType::Json),
            Ok(Value::Json(r#"{"a":null,"b":[1,2]}"#.into()))
        );
    }

    #[test]
    fn reads_written_values_as_the_server_coerces_them() {
        assert_eq!(read(json!(5.0), DataType::Int), Ok(Value::Int64(5)));
        assert_eq!(read(json!(" 42 "), DataType::SmallInt), Ok(Value::Int64(42)));
        assert_eq!(read(json!("FALSE"), DataType::Boolean), Ok(Value::Boolean(false)));
        assert_eq!(read(json!(9.5), DEC), Ok(Value::decimal(950, 2)));
        assert_eq!(read(json!(7), DEC), Ok(Value::decimal(700, 2)));
        assert_eq!(read(json!("2.345"), DEC), Ok(Value::decimal(235, 2)));
        assert_eq!(read(json!(1_000_000), DataType::Timestamp), Ok(Value::Timestamp(1_000_000)));
    }

    #[test]
    fn refuses_what_the_server_refuses() {
        let err = read(json!(40000), DataType::SmallInt).unwrap_err();
        assert_eq!(err.to_string(), "40000 is not a valid SMALLINT value (out of range)");
        assert!(read(json!(1.5), DataType::BigInt).is_err());
        assert!(read(json!("abc"), DataType::Int).is_err());
        assert!(read(json!(3), DataType::Text).is_err());
        assert!(read(json!("yes"), DataType::Boolean).is_err());
        assert!(read(json!("123456789.00"), DEC).is_err(), "beyond DECIMAL(10,2)");
        assert!(read(json!("not base64!"), DataType::Bytes).is_err());
        assert!(read(json!("2024-02-30"), DataType::Date).is_err());
        assert!(read(json!([1]), DataType::Timestamp).is_err());
        let long = read(json!("x".repeat(100)), DataType::Int).unwrap_err();
        assert!(long.found.ends_with('…') && long.found.chars().count() == 61);
    }

    #[test]
    fn writes_what_the_server_sends() {
        assert_eq!(to_json(&Value::Int64(i64::MAX), DataType::BigInt).to_string(), "9223372036854775807");
        assert_eq!(to_json(&Value::decimal(900, 2), DEC), json!("9.00"));
        assert_eq!(to_json(&Value::Float64(f64::NAN), DataType::Double), json!("NaN"));
        assert_eq!(to_json(&Value::Float64(f64::INFINITY), DataType::Double), json!("inf"));
        assert_eq!(to_json(&Value::Float64(0.1f32 as f64), DataType::Float), json!(0.10000000149011612));
        assert_eq!(to_json(&Value::Bytes(vec![0, 1, 2].into()), DataType::Bytes), json!("AAEC"));
        assert_eq!(to_json(&Value::Date(19782), DataType::Date), json!("2024-02-29"));
        assert_eq!(to_json(&Value::Timestamp(-1), DataType::Timestamp), json!("1969-12-31T23:59:59.999999Z"));
        assert_eq!(to_json(&Value::Timestamp(0), DataType::Timestamp), json!("1970-01-01T00:00:00.000000Z"));
        assert_eq!(to_json(&Value::Json(r#"{"a":[1]}"#.into()), DataType::Json), json!({"a": [1]}));
        assert_eq!(to_json(&Value::Null, DataType::Text), Json::Null);
        // What the server sends reads back as the same value.
        for (v, ty) in [
            (Value::decimal(-5, 2), DEC),
            (Value::Timestamp(1_710_498_030_123_456), DataType::Timestamp),
            (Value::Int64(-9007199254740993), DataType::BigInt),
            (Value::Float64(f64::NEG_INFINITY), DataType::Double),
        ] {
            assert_eq!(from_json(&to_json(&v, ty), ty), Ok(v));
        }
    }

    #[test]
    fn parameters_keep_their_json_type() {
        assert_eq!(param_from_json(&json!(9007199254740993i64)), Value::Int64(9007199254740993));
        assert_eq!(param_from_json(&json!(2.5)), Value::Float64(2.5));
        assert_eq!(param_from_json(&json!("9.50")), Value::Text("9.50".into()));
        assert_eq!(param_from_json(&json!(u64::MAX)), Value::Float64(u64::MAX as f64));
        assert_eq!(param_from_json(&json!([1, 2])), Value::Json("[1,2]".into()));
        assert_eq!(param_from_json(&json!(null)), Value::Null);
    }
}
