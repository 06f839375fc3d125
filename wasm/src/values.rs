//! Row values handed to JavaScript.
//!
//! Values are in the server's JSON encoding (DECIMAL as exact text, TIMESTAMP as RFC 3339
//! text, ...) with one exception: an integer beyond ±(2^53 − 1) — a large BIGINT such as a
//! snowflake id — becomes a JavaScript `bigint`, which keeps every digit, where a `number`
//! would silently round it. Integers within that range stay `number`s, so counts, flags and
//! ordinary ids read as before. (serde-wasm-bindgen's JSON-compatible mode refuses such
//! integers instead, and its BigInt mode makes every integer a `bigint`.)

use js_sys::{Array, BigInt, Object, Reflect};
use kalamdb_client_core::query::ResultSet;
use serde_json::Value;
use wasm_bindgen::JsValue;

/// The largest integer a JavaScript `number` holds exactly (`Number.MAX_SAFE_INTEGER`).
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// `value` as a JavaScript value: `null`, booleans, strings, arrays and plain objects as in
/// JSON; numbers as `number`, except integers beyond 2^53 − 1 in magnitude, as `bigint`.
pub fn json_to_js(value: &Value) -> JsValue {
    match value {
        Value::Null => JsValue::NULL,
        Value::Bool(b) => JsValue::from_bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&i) => JsValue::from_f64(i as f64),
            (Some(i), _) => BigInt::from(i).into(),
            (None, Some(u)) => BigInt::from(u).into(),
            (None, None) => JsValue::from_f64(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => JsValue::from_str(s),
        Value::Array(items) => items.iter().map(json_to_js).collect::<Array>().into(),
        Value::Object(map) => {
            let object = Object::new();
            for (k, v) in map {
                // Setting a property on a fresh plain object cannot fail.
                let _ = Reflect::set(&object, &JsValue::from_str(k), &json_to_js(v));
            }
            object.into()
        }
    }
}

/// A local query's result: `{columns, types, rows}` with rows as arrays of values.
pub fn result_to_js(rs: &ResultSet) -> JsValue {
    let strings = |xs: &[String]| xs.iter().map(|x| JsValue::from_str(x)).collect::<Array>();
    let rows: Array = rs.rows.iter().map(|row| row.iter().map(json_to_js).collect::<Array>()).collect();
    let object = Object::new();
    let _ = Reflect::set(&object, &"columns".into(), &strings(&rs.columns));
    let _ = Reflect::set(&object, &"types".into(), &strings(&rs.types));
    let _ = Reflect::set(&object, &"rows".into(), &rows);
    object.into()
}
