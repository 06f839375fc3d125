//! Typed values, their SQL comparison, and the text forms of decimals, dates and timestamps.

use crate::error::{QueryError, Result};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// One SQL value.
///
/// Integers of every width are held as `i64` (the expression's [`crate::DataType`] says the
/// width); a DECIMAL is an exact scaled integer. BIGINT values beyond 2^53 are exact here; the
/// JavaScript binding is to hand them over as `bigint` (or a string where the caller asks for
/// JSON), never as a `number`.
///
/// Kept narrow because the client's replica holds one per cell (a million rows are millions of
/// values): no variant is wider than a pointer pair or an `i64`, so a value is 16 bytes on
/// wasm32 (24 natively) and 8-byte aligned. Text and bytes are boxed slices (no capacity word),
/// and the rare DECIMAL is boxed, since its 128-bit digits would make every value 32 bytes and,
/// on wasm32, 16-byte aligned.
#[derive(Debug, Clone)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// BOOLEAN.
    Boolean(bool),
    /// SMALLINT, INT and BIGINT.
    Int64(i64),
    /// FLOAT and DOUBLE.
    Float64(f64),
    /// DECIMAL.
    Decimal(Box<Decimal>),
    /// TEXT and CRDT_TEXT.
    Text(Box<str>),
    /// BYTES.
    Bytes(Box<[u8]>),
    /// DATE: days since 1970-01-01.
    Date(i32),
    /// TIMESTAMP: microseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// JSON, as its text.
    Json(Box<str>),
}

// Checked when the wasm client is built, since that is where the size matters most.
#[cfg(target_arch = "wasm32")]
const _: () = assert!(std::mem::size_of::<Value>() == 16 && std::mem::align_of::<Value>() == 8);

/// A DECIMAL value: `value / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decimal {
    /// The unscaled digits.
    pub value: i128,
    /// Digits after the point.
    pub scale: i8,
}

impl Value {
    /// The DECIMAL `value / 10^scale`.
    pub fn decimal(value: i128, scale: i8) -> Value {
        Value::Decimal(Box::new(Decimal { value, scale }))
    }

    /// Whether this is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// SQL comparison: `None` when either side is NULL (the result is unknown) or the values are
    /// not comparable. Numbers compare across integer, decimal and float (decimals exactly; a
    /// float against an integer as `f64`); DATE against TIMESTAMP by instant; the string types
    /// byte-wise (UTF-8 order, as Arrow); floats as DataFusion does: `NaN` equals itself and is
    /// the greatest value, `-0.0` equals `0.0`.
    pub fn sql_cmp(&self, other: &Value) -> Option<Ordering> {
        use Value::*;
        Some(match (self, other) {
            (Null, _) | (_, Null) => return None,
            (Boolean(a), Boolean(b)) => a.cmp(b),
            (Int64(a), Int64(b)) => a.cmp(b),
            (Float64(a), Float64(b)) => zero(*a).total_cmp(&zero(*b)),
            (Int64(a), Float64(b)) => (*a as f64).total_cmp(&zero(*b)),
            (Float64(a), Int64(b)) => zero(*a).total_cmp(&(*b as f64)),
            (Decimal(a), Decimal(b)) => decimal_cmp(a.value, a.scale, b.value, b.scale),
            (Decimal(d), Int64(b)) => decimal_cmp(d.value, d.scale, *b as i128, 0),
            (Int64(a), Decimal(d)) => decimal_cmp(*a as i128, 0, d.value, d.scale),
            (Decimal(d), Float64(f)) => decimal_float_cmp(d.value, d.scale, *f),
            (Float64(f), Decimal(d)) => decimal_float_cmp(d.value, d.scale, *f).reverse(),
            (Text(a) | Json(a), Text(b) | Json(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Bytes(a), Bytes(b)) => a.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (Timestamp(a), Timestamp(b)) => a.cmp(b),
            (Date(a), Timestamp(b)) => (*a as i64 * MICROS_PER_DAY).cmp(b),
            (Timestamp(a), Date(b)) => a.cmp(&(*b as i64 * MICROS_PER_DAY)),
            _ => return None,
        })
    }

    /// The order used by ORDER BY, min and max; NULL sorts after everything here (callers place
    /// NULLs themselves). Floats use IEEE total order, so `-0.0` sorts before `0.0` (as Arrow's
    /// sort and min/max kernels).
    pub(crate) fn sort_cmp(&self, other: &Value) -> Ordering {
        match (self, other) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Null, _) => Ordering::Greater,
            (_, Value::Null) => Ordering::Less,
            (Value::Float64(a), Value::Float64(b)) => a.total_cmp(b),
            _ => self.sql_cmp(other).unwrap_or_else(|| self.kind_rank().cmp(&other.kind_rank())),
        }
    }

    /// The value as GROUP BY and DISTINCT keep it: `-0.0` becomes `0.0` (DataFusion's group
    /// keys), anything else unchanged.
    pub(crate) fn grouped(self) -> Value {
        match self {
            // A float pattern compares with `==`: this arm takes -0.0 too.
            Value::Float64(0.0) => Value::Float64(0.0),
            v => v,
        }
    }

    fn kind_rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Boolean(_) => 1,
            Value::Int64(_) | Value::Float64(_) | Value::Decimal(_) => 2,
            Value::Text(_) | Value::Json(_) => 3,
            Value::Bytes(_) => 4,
            Value::Date(_) | Value::Timestamp(_) => 5,
        }
    }
}

/// `-0.0` as `0.0`, for comparisons.
fn zero(f: f64) -> f64 {
    if f == 0.0 { 0.0 } else { f }
}

/// The bits floats are grouped and hashed by: `-0.0` with `0.0`; NaNs by their bits (DataFusion
/// keeps a NaN with the sign bit set in another group than a positive one).
fn float_key(f: f64) -> u64 {
    if f == 0.0 { 0 } else { f.to_bits() }
}

/// Structural equality, used for grouping, DISTINCT and join keys: NULL equal to NULL, floats
/// as DataFusion groups them (`-0.0` with `0.0`, NaNs by bits), decimals by digits and scale
/// (the type checker gives every value of an expression the same scale).
impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Boolean(a), Boolean(b)) => a == b,
            (Int64(a), Int64(b)) => a == b,
            (Float64(a), Float64(b)) => float_key(*a) == float_key(*b),
            (Decimal(a), Decimal(b)) => a == b,
            (Text(a), Text(b)) | (Json(a), Json(b)) => a == b,
            (Bytes(a), Bytes(b)) => a == b,
            (Date(a), Date(b)) => a == b,
            (Timestamp(a), Timestamp(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Value::Null => {}
            Value::Boolean(b) => b.hash(state),
            Value::Int64(i) => i.hash(state),
            Value::Float64(f) => float_key(*f).hash(state),
            Value::Decimal(d) => (d.value, d.scale).hash(state),
            Value::Text(s) | Value::Json(s) => s.hash(state),
            Value::Bytes(b) => b.hash(state),
            Value::Date(d) => d.hash(state),
            Value::Timestamp(t) => t.hash(state),
        }
    }
}

/// SQL-ish text: what `CAST(x AS TEXT)` gives and what tests print.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Int64(i) => write!(f, "{i}"),
            Value::Float64(x) => f.write_str(&format_float(*x, false)),
            Value::Decimal(d) => f.write_str(&format_decimal(d.value, d.scale)),
            Value::Text(s) | Value::Json(s) => f.write_str(s),
            Value::Bytes(b) => {
                for byte in b {
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
            Value::Date(d) => f.write_str(&format_date(*d)),
            Value::Timestamp(t) => f.write_str(&format_timestamp(*t)),
        }
    }
}

/// A float as Arrow prints it (ryu's shortest form): `1.5`, `100.0`, `0.00001`, `1e-7`, `1e16`,
/// `NaN`, `inf`. With `single`, `x` is printed as the `f32` it holds (FLOAT columns).
pub fn format_float(x: f64, single: bool) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // Shortest round-trip digits and exponent, from Rust's `{:e}` (e.g. "-1.25e-3").
    let sci = if single { format!("{:e}", x as f32) } else { format!("{x:e}") };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let n = digits.len() as i32;
    // ryu's layout: decimal notation while the point lands within (min, max] of the digits.
    let (min, max) = if single { (-6, 13) } else { (-5, 16) };
    let kk = exp + 1;
    let body = if n <= kk && kk <= max {
        format!("{digits}{}.0", "0".repeat((kk - n) as usize))
    } else if 0 < kk && kk <= max {
        format!("{}.{}", &digits[..kk as usize], &digits[kk as usize..])
    } else if min < kk && kk <= 0 {
        format!("0.{}{digits}", "0".repeat((-kk) as usize))
    } else if n == 1 {
        format!("{digits}e{exp}")
    } else {
        format!("{}.{}e{exp}", &digits[..1], &digits[1..])
    };
    format!("{sign}{body}")
}

// ---------------------------------------------------------------------------------------------
// Decimals

/// `10^n` as i128, if it fits.
pub(crate) fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

/// `value` at scale `from` rescaled to scale `to` (exact when growing; truncating toward zero
/// when shrinking). `None` on overflow.
pub(crate) fn rescale(value: i128, from: i8, to: i8) -> Option<i128> {
    match to.cmp(&from) {
        Ordering::Equal => Some(value),
        Ordering::Greater => value.checked_mul(pow10((to as i32 - from as i32) as u32)?),
        Ordering::Less => Some(pow10((from as i32 - to as i32) as u32).map_or(0, |p| value / p)),
    }
}

/// Exact comparison of two decimals of any scales.
pub(crate) fn decimal_cmp(a: i128, sa: i8, b: i128, sb: i8) -> Ordering {
    if sa == sb {
        return a.cmp(&b);
    }
    let (a2, b2) = if sa > sb { (Some(a), rescale(b, sb, sa)) } else { (rescale(a, sa, sb), Some(b)) };
    match (a2, b2) {
        (Some(x), Some(y)) => x.cmp(&y),
        // The rescaled side overflowed i128: its magnitude exceeds anything on the other side.
        (None, _) => {
            if a < 0 {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }
        (_, None) => {
            if b < 0 {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
    }
}

/// A decimal against a float, as DataFusion compares them: the float converted to a decimal of
/// scale `max(scale, 15)` (rounded), falling back to float order when it does not fit.
fn decimal_float_cmp(value: i128, scale: i8, f: f64) -> Ordering {
    let target = scale.max(15);
    if let (Some(d), Some(v)) = (float_to_decimal(f, target), rescale(value, scale, target)) {
        return v.cmp(&d);
    }
    decimal_to_f64(value, scale).total_cmp(&f)
}

/// A float as a decimal at `scale`, rounded half away from zero. `None` if not finite or too big.
pub(crate) fn float_to_decimal(f: f64, scale: i8) -> Option<i128> {
    if !f.is_finite() {
        return None;
    }
    let scaled = (f * 10f64.powi(scale as i32)).round();
    if scaled.abs() >= 1e38 {
        return None;
    }
    Some(scaled as i128)
}

/// A decimal as an `f64`, computed as Arrow's cast computes it: the unscaled digits as `f64`,
/// divided by `10^scale`. That is the nearest `f64` while the digits fit in 53 bits; beyond, it
/// rounds twice (and may be 1 ulp from the nearest), which DataFusion shows, so this does too.
pub(crate) fn decimal_to_f64(value: i128, scale: i8) -> f64 {
    value as f64 / 10f64.powi(scale as i32)
}

/// Number of decimal digits of `|v|` (0 has one digit).
pub(crate) fn digits(v: i128) -> u32 {
    let mut n = 1;
    let mut x = v.unsigned_abs();
    while x >= 10 {
        x /= 10;
        n += 1;
    }
    n
}

/// Text of a decimal: `150, 2` → `"1.50"`, `-5, 3` → `"-0.005"`.
pub fn format_decimal(value: i128, scale: i8) -> String {
    if scale <= 0 {
        let mut s = value.to_string();
        if value != 0 {
            s.extend(std::iter::repeat_n('0', scale.unsigned_abs() as usize));
        }
        return s;
    }
    let digits = value.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded =
        if digits.len() <= scale { format!("{}{}", "0".repeat(scale + 1 - digits.len()), digits) } else { digits };
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{}{int}.{frac}", if value < 0 { "-" } else { "" })
}

/// Parse decimal text (`"-12.345"`, `"7"`) into digits at exactly `scale`, rounding half away
/// from zero when the text has more fraction digits. `None` if malformed or out of range.
pub fn parse_decimal(text: &str, scale: i8) -> Option<i128> {
    let t = text.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if (int.is_empty() && frac.is_empty()) || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: i128 = 0;
    for b in int.bytes() {
        v = v.checked_mul(10)?.checked_add((b - b'0') as i128)?;
    }
    let scale_u = scale.max(0) as usize;
    let mut fb = frac.bytes();
    for _ in 0..scale_u {
        let d = fb.next().map_or(0, |b| (b - b'0') as i128);
        v = v.checked_mul(10)?.checked_add(d)?;
    }
    if fb.next().is_some_and(|b| b >= b'5') {
        v = v.checked_add(1)?;
    }
    if scale < 0 {
        v = rescale(v, 0, scale)?;
    }
    Some(if neg { -v } else { v })
}

// ---------------------------------------------------------------------------------------------
// Dates and timestamps (proleptic Gregorian, UTC)

/// Microseconds in a day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of a day number.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn num(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parse `YYYY-MM-DD` into days since the epoch.
pub fn parse_date(text: &str) -> Option<i32> {
    let t = text.trim();
    let mut it = t.splitn(3, '-');
    let (y, m, d) = (num(it.next()?)?, num(it.next()?)?, num(it.next()?)?);
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y as i64, m) {
        return None;
    }
    i32::try_from(days_from_civil(y as i64, m, d)).ok()
}

/// Parse an ISO-8601 timestamp into microseconds since the epoch: `YYYY-MM-DD`, then optionally
/// `T` or a space and `HH:MM[:SS[.ffffff]]`, then optionally `Z` or `±HH[:MM]` (converted to
/// UTC). Digits beyond microseconds are truncated.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let t = text.trim();
    let (date, rest) = match t.find(['T', 't', ' ']) {
        Some(i) => (&t[..i], t[i + 1..].trim_start()),
        None => (t, ""),
    };
    let days = parse_date(date)? as i64;
    if rest.is_empty() {
        return days.checked_mul(MICROS_PER_DAY);
    }
    // Split off a zone suffix.
    let (time, offset_secs) = if let Some(x) = rest.strip_suffix(['Z', 'z']) {
        (x, 0i64)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (time, zone) = (&rest[..i], &rest[i..]);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let zone = &zone[1..];
        let (h, m) = match zone.split_once(':') {
            Some((h, m)) => (num(h)?, num(m)?),
            None if zone.len() == 4 => (num(zone.get(..2)?)?, num(zone.get(2..)?)?),
            None => (num(zone)?, 0),
        };
        (time.trim_end(), sign * (h as i64 * 3600 + m as i64 * 60))
    } else {
        (rest, 0)
    };
    let mut parts = time.splitn(3, ':');
    let h = num(parts.next()?)?;
    let mi = num(parts.next()?)?;
    let (s, micros) = match parts.next() {
        None => (0, 0),
        Some(sec) => {
            let (s, frac) = sec.split_once('.').unwrap_or((sec, ""));
            if !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let mut us = 0i64;
            for i in 0..6 {
                us = us * 10 + frac.as_bytes().get(i).map_or(0, |b| (b - b'0') as i64);
            }
            (num(s)?, us)
        }
    };
    if h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let secs = days * 86_400 + h as i64 * 3600 + mi as i64 * 60 + s as i64 - offset_secs;
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

/// `YYYY-MM-DD`.
pub fn format_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]`, as Arrow prints a timestamp without time zone (chrono's
/// `%.f`: no fraction when zero, milliseconds when that is exact, else microseconds).
pub fn format_timestamp(micros: i64) -> String {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let rem = micros.rem_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let secs = rem / 1_000_000;
    let us = rem % 1_000_000;
    let base = format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if us == 0 {
        base
    } else if us % 1000 == 0 {
        format!("{base}.{:03}", us / 1000)
    } else {
        format!("{base}.{us:06}")
    }
}

/// Truncate a timestamp to `unit`, as DataFusion's `date_trunc` (weeks start on Monday).
pub(crate) fn date_trunc(unit: &str, micros: i64) -> Result<i64> {
    let day = micros.div_euclid(MICROS_PER_DAY);
    let of_day = |d: i64| d * MICROS_PER_DAY;
    let trunc = |m: i64| micros - micros.rem_euclid(m);
    Ok(match unit {
        "microsecond" | "microseconds" => micros,
        "millisecond" | "milliseconds" => trunc(1_000),
        "second" => trunc(1_000_000),
        "minute" => trunc(60_000_000),
        "hour" => trunc(3_600_000_000),
        "day" => of_day(day),
        // 1970-01-01 was a Thursday; Monday-based weeks.
        "week" => of_day(day - (day + 3).rem_euclid(7)),
        "month" | "quarter" | "year" => {
            let (y, m, _) = civil_from_days(day);
            let m = match unit {
                "month" => m,
                "quarter" => (m - 1) / 3 * 3 + 1,
                _ => 1,
            };
            of_day(days_from_civil(y, m, 1))
        }
        other => return Err(QueryError::eval(format!("unsupported date_trunc unit '{other}'"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value is three words natively (two on wasm32, checked at build time above), 8-byte
    /// aligned (see [`Value`]).
    #[test]
    fn values_are_narrow() {
        #[cfg(target_pointer_width = "64")]
        assert_eq!(std::mem::size_of::<Value>(), 24);
        assert_eq!(std::mem::align_of::<Value>(), 8);
    }

    #[test]
    fn decimal_text_round_trip() {
        assert_eq!(format_decimal(150, 2), "1.50");
        assert_eq!(format_decimal(-5, 3), "-0.005");
        assert_eq!(format_decimal(7, 0), "7");
        assert_eq!(parse_decimal("1.5", 2), Some(150));
        assert_eq!(parse_decimal("-0.005", 3), Some(-5));
        assert_eq!(parse_decimal("2.345", 2), Some(235));
        assert_eq!(parse_decimal("abc", 2), None);
    }

    #[test]
    fn decimals_compare_numerically() {
        let a = Value::decimal(900, 2);
        let b = Value::decimal(1000, 2);
        assert_eq!(a.sql_cmp(&b), Some(Ordering::Less));
        assert_eq!(Value::decimal(10, 1).sql_cmp(&Value::Int64(1)), Some(Ordering::Equal));
        assert_eq!(Value::decimal(95, 1).sql_cmp(&Value::Float64(9.5)), Some(Ordering::Equal));
        assert_eq!(Value::Null.sql_cmp(&Value::Int64(1)), None);
    }

    #[test]
    fn dates_and_timestamps() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2024-02-29"), Some(19782));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(format_date(19782), "2024-02-29");
        let t = parse_timestamp("2024-03-15 10:20:30.5").unwrap();
        assert_eq!(format_timestamp(t), "2024-03-15T10:20:30.500");
        assert_eq!(format_timestamp(t + 1), "2024-03-15T10:20:30.500001");
        assert_eq!(parse_timestamp("2024-03-15T12:20:30+02:00"), parse_timestamp("2024-03-15T10:20:30Z"));
        assert_eq!(format_timestamp(-1), "1969-12-31T23:59:59.999999");
        assert_eq!(format_timestamp(date_trunc("month", t).unwrap()), "2024-03-01T00:00:00");
        assert_eq!(format_timestamp(date_trunc("week", t).unwrap()), "2024-03-11T00:00:00");
        assert_eq!(format_timestamp(date_trunc("quarter", t).unwrap()), "2024-01-01T00:00:00");
        assert_eq!(format_timestamp(date_trunc("hour", t).unwrap()), "2024-03-15T10:00:00");
        assert_eq!(parse_timestamp("2024-01-01 10:00+aé1"), None);
        assert_eq!(parse_timestamp("2024-01-01 25:00"), None);
    }

    #[test]
    fn floats_print_as_arrow() {
        let cases = [
            (1.5, "1.5"),
            (100.0, "100.0"),
            (1e-5, "0.00001"),
            (1e-6, "1e-6"),
            (1e-7, "1e-7"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e16"),
            (1.2345678901234568e18, "1.2345678901234568e18"),
            (-0.0, "-0.0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-2.5e-300, "-2.5e-300"),
            (123456.789, "123456.789"),
        ];
        for (x, s) in cases {
            assert_eq!(format_float(x, false), s, "{x}");
        }
        assert_eq!(format_float(0.1f32 as f64, true), "0.1");
        assert_eq!(format_float((2.0f32 / 3.0) as f64, true), "0.6666667");
        assert_eq!(format_float(1e-6f32 as f64, true), "0.000001");
        assert_eq!(format_float(1e13f32 as f64, true), "1e13");
        assert_eq!(format_float(f64::NAN, false), "NaN");
        assert_eq!(format_float(f64::NEG_INFINITY, false), "-inf");
    }

    #[test]
    fn float_equality_as_datafusion() {
        assert_eq!(Value::Float64(-0.0).sql_cmp(&Value::Float64(0.0)), Some(Ordering::Equal));
        assert_eq!(Value::Float64(f64::NAN).sql_cmp(&Value::Float64(f64::NAN)), Some(Ordering::Equal));
        assert_eq!(Value::Float64(f64::NAN).sql_cmp(&Value::Float64(f64::INFINITY)), Some(Ordering::Greater));
        assert_eq!(Value::Float64(-0.0).sort_cmp(&Value::Float64(0.0)), Ordering::Less);
        assert_eq!(Value::Float64(-0.0), Value::Float64(0.0));
        assert!(matches!(Value::Float64(-0.0).grouped(), Value::Float64(z) if z.is_sign_positive()));
    }

    #[test]
    fn extreme_scales_do_not_panic() {
        assert_eq!(format_decimal(5, -128), format!("5{}", "0".repeat(128)));
        assert_eq!(rescale(1, -128, 127), None);
        assert_eq!(rescale(1, 127, -128), Some(0));
        assert_eq!(decimal_cmp(1, -128, 1, 127), Ordering::Greater);
        assert_eq!(decimal_cmp(-1, 127, 1, -128), Ordering::Less);
    }
}
