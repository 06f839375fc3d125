//! Evaluation of one [`TypedExpr`] over one row, with SQL's three-valued logic.

use crate::ast::BinaryOp;
use crate::check::parse_bool;
use crate::error::{QueryError, Result};
use crate::plan::{ExprKind, ScalarFunc, TypedExpr};
use crate::types::DataType;
use crate::value::{
    Decimal, MICROS_PER_DAY, Value, date_trunc, decimal_to_f64, digits, float_to_decimal, format_float, parse_date,
    parse_decimal, parse_timestamp, pow10, rescale,
};
use std::borrow::Cow;
use std::cmp::Ordering;

/// Evaluate `e` over `row` (values aligned to the expression's input schema).
pub fn eval(e: &TypedExpr, row: &[Value]) -> Result<Value> {
    Ok(match &e.kind {
        ExprKind::Column(i) => {
            row.get(*i).cloned().ok_or_else(|| QueryError::eval(format!("row has no column {i}")))?
        }
        ExprKind::Literal(v) => v.clone(),
        ExprKind::Not(x) => match eval(x, row)? {
            Value::Boolean(b) => Value::Boolean(!b),
            _ => Value::Null,
        },
        ExprKind::Neg(x) => match eval(x, row)? {
            Value::Int64(i) => Value::Int64(wrap_int(i.wrapping_neg(), e.ty)),
            Value::Float64(f) => Value::Float64(-f),
            Value::Decimal(d) => Value::decimal(-d.value, d.scale),
            _ => Value::Null,
        },
        ExprKind::Binary { op: BinaryOp::And, left, right } => {
            // FALSE wins over NULL; the right side is not evaluated after FALSE.
            let l = eval(left, row)?;
            if matches!(l, Value::Boolean(false)) {
                return Ok(l);
            }
            match (l, eval(right, row)?) {
                (_, Value::Boolean(false)) => Value::Boolean(false),
                (Value::Boolean(true), Value::Boolean(true)) => Value::Boolean(true),
                _ => Value::Null,
            }
        }
        ExprKind::Binary { op: BinaryOp::Or, left, right } => {
            let l = eval(left, row)?;
            if matches!(l, Value::Boolean(true)) {
                return Ok(l);
            }
            match (l, eval(right, row)?) {
                (_, Value::Boolean(true)) => Value::Boolean(true),
                (Value::Boolean(false), Value::Boolean(false)) => Value::Boolean(false),
                _ => Value::Null,
            }
        }
        ExprKind::Binary { op, left, right } if op.is_comparison() => {
            // Compared in place: a column or a literal is not copied (a live query's filter
            // runs on every changed row of every batch).
            let (l, r) = (operand(left, row)?, operand(right, row)?);
            compare(*op, &l, &r)
        }
        ExprKind::Binary { op, left, right } => {
            let (l, r) = (eval(left, row)?, eval(right, row)?);
            if l.is_null() || r.is_null() {
                return Ok(Value::Null);
            }
            binary(*op, l, r, e.ty)?
        }
        ExprKind::IsNull { expr, negated } => Value::Boolean(eval(expr, row)?.is_null() != *negated),
        ExprKind::InList { expr, list, negated } => {
            let x = eval(expr, row)?;
            if x.is_null() {
                return Ok(Value::Null);
            }
            let mut saw_null = false;
            for item in list {
                match x.sql_cmp(&eval(item, row)?) {
                    Some(Ordering::Equal) => return Ok(Value::Boolean(!negated)),
                    None => saw_null = true,
                    _ => {}
                }
            }
            if saw_null { Value::Null } else { Value::Boolean(*negated) }
        }
        ExprKind::Like { expr, pattern, negated, case_insensitive } => {
            let (x, p) = (eval(expr, row)?, eval(pattern, row)?);
            match (x, p) {
                (Value::Text(s) | Value::Json(s), Value::Text(p) | Value::Json(p)) => {
                    let m = if *case_insensitive { like(&s.to_lowercase(), &p.to_lowercase()) } else { like(&s, &p) };
                    Value::Boolean(m != *negated)
                }
                _ => Value::Null,
            }
        }
        ExprKind::Cast(x) => cast_from(eval(x, row)?, x.ty, e.ty)?,
        ExprKind::Func(f, args) => func(*f, args, row, e.ty)?,
    })
}

/// Wrap an integer to the width of its type, as fixed-width arithmetic would.
fn wrap_int(i: i64, ty: DataType) -> i64 {
    match ty {
        DataType::SmallInt => i as i16 as i64,
        DataType::Int => i as i32 as i64,
        _ => i,
    }
}

fn fits_int(i: i64, ty: DataType) -> bool {
    wrap_int(i, ty) == i
}

fn overflow(what: &str, ty: DataType) -> QueryError {
    QueryError::eval(format!("{what} overflows {ty}"))
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Int64(i) => Some(*i as f64),
        Value::Float64(f) => Some(*f),
        Value::Decimal(d) => Some(decimal_to_f64(d.value, d.scale)),
        _ => None,
    }
}

fn as_decimal(v: &Value) -> Option<(i128, i8)> {
    match v {
        Value::Int64(i) => Some((*i as i128, 0)),
        Value::Decimal(d) => Some((d.value, d.scale)),
        _ => None,
    }
}

fn div_zero() -> QueryError {
    QueryError::eval("division by zero")
}

/// Comparison, concatenation and arithmetic on two non-NULL values; `ty` is the result type.
/// The value of a column or a literal, borrowed; any other expression evaluated.
fn operand<'a>(e: &'a TypedExpr, row: &'a [Value]) -> Result<Cow<'a, Value>> {
    match &e.kind {
        ExprKind::Column(i) => {
            row.get(*i).map(Cow::Borrowed).ok_or_else(|| QueryError::eval(format!("row has no column {i}")))
        }
        ExprKind::Literal(v) => Ok(Cow::Borrowed(v)),
        _ => eval(e, row).map(Cow::Owned),
    }
}

/// A comparison operator applied: NULL if either side is NULL or they do not compare.
fn compare(op: BinaryOp, l: &Value, r: &Value) -> Value {
    let Some(ord) = l.sql_cmp(r) else { return Value::Null };
    Value::Boolean(match op {
        BinaryOp::Eq => ord == Ordering::Equal,
        BinaryOp::NotEq => ord != Ordering::Equal,
        BinaryOp::Lt => ord == Ordering::Less,
        BinaryOp::LtEq => ord != Ordering::Greater,
        BinaryOp::Gt => ord == Ordering::Greater,
        _ => ord != Ordering::Less,
    })
}

fn binary(op: BinaryOp, l: Value, r: Value, ty: DataType) -> Result<Value> {
    if op.is_comparison() {
        return Ok(compare(op, &l, &r));
    }
    if op == BinaryOp::Concat {
        return Ok(Value::Text(format!("{l}{r}").into()));
    }
    match ty {
        t if t.is_integer() => {
            let (Value::Int64(a), Value::Int64(b)) = (&l, &r) else {
                return Err(QueryError::eval(format!("integer arithmetic on {l} and {r}")));
            };
            let (a, b) = (*a, *b);
            // + - * wrap like DataFusion's default kernels; / and % fail on zero and overflow.
            let v = match op {
                BinaryOp::Plus => a.wrapping_add(b),
                BinaryOp::Minus => a.wrapping_sub(b),
                BinaryOp::Multiply => a.wrapping_mul(b),
                BinaryOp::Divide | BinaryOp::Modulo => {
                    if b == 0 {
                        return Err(div_zero());
                    }
                    // Arrow: `/` is checked (i64::MIN / -1 fails), `%` wraps (i64::MIN % -1 = 0).
                    let v = if op == BinaryOp::Divide { a.checked_div(b) } else { Some(a.wrapping_rem(b)) };
                    let v = v.ok_or_else(|| overflow(op.symbol(), t))?;
                    if !fits_int(v, t) {
                        return Err(overflow(op.symbol(), t));
                    }
                    v
                }
                _ => return Err(QueryError::eval(format!("'{}' is not arithmetic", op.symbol()))),
            };
            Ok(Value::Int64(wrap_int(v, t)))
        }
        DataType::Float | DataType::Double => {
            let (Some(mut a), Some(mut b)) = (as_f64(&l), as_f64(&r)) else {
                return Err(QueryError::eval(format!("float arithmetic on {l} and {r}")));
            };
            if ty == DataType::Float {
                (a, b) = (a as f32 as f64, b as f32 as f64);
            }
            // IEEE semantics: x / 0.0 is ±inf or NaN, as Arrow's float kernels.
            let v = match op {
                BinaryOp::Plus => a + b,
                BinaryOp::Minus => a - b,
                BinaryOp::Multiply => a * b,
                BinaryOp::Divide => a / b,
                _ => a % b,
            };
            Ok(Value::Float64(if ty == DataType::Float { v as f32 as f64 } else { v }))
        }
        DataType::Decimal { scale, .. } => {
            let (Some((a, sa)), Some((b, sb))) = (as_decimal(&l), as_decimal(&r)) else {
                return Err(QueryError::eval(format!("decimal arithmetic on {l} and {r}")));
            };
            let of = || overflow(op.symbol(), ty);
            let v = match op {
                BinaryOp::Plus | BinaryOp::Minus | BinaryOp::Modulo => {
                    let a = rescale(a, sa, scale).ok_or_else(of)?;
                    let b = rescale(b, sb, scale).ok_or_else(of)?;
                    match op {
                        BinaryOp::Plus => a.checked_add(b),
                        BinaryOp::Minus => a.checked_sub(b),
                        _ => {
                            if b == 0 {
                                return Err(div_zero());
                            }
                            a.checked_rem(b)
                        }
                    }
                    .ok_or_else(of)?
                }
                BinaryOp::Multiply => a.checked_mul(b).ok_or_else(of)?,
                _ => {
                    if b == 0 {
                        return Err(div_zero());
                    }
                    // Arrow: scale the dividend so the truncated quotient has the result scale.
                    let mul_pow = scale as i32 - sa as i32 + sb as i32;
                    if mul_pow >= 0 {
                        a.checked_mul(pow10(mul_pow as u32).ok_or_else(of)?).ok_or_else(of)?.checked_div(b)
                    } else {
                        a.checked_div(b.checked_mul(pow10((-mul_pow) as u32).ok_or_else(of)?).ok_or_else(of)?)
                    }
                    .ok_or_else(of)?
                }
            };
            Ok(Value::decimal(v, scale))
        }
        other => Err(QueryError::eval(format!("no arithmetic on {other}"))),
    }
}

/// `LIKE`: `%` any run, `_` one character, `\` escapes the next character.
pub(crate) fn like(s: &str, pattern: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum P {
        Lit(char),
        One,
        Any,
    }
    let mut pat = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        pat.push(match c {
            '%' => P::Any,
            '_' => P::One,
            '\\' => P::Lit(it.next().unwrap_or('\\')),
            c => P::Lit(c),
        });
    }
    let s: Vec<char> = s.chars().collect();
    // Greedy matching with one backtrack point (the last `%`): linear in practice.
    let (mut si, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match pat.get(pi) {
            Some(P::Any) => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(P::One) => {
                si += 1;
                pi += 1;
            }
            Some(P::Lit(c)) if *c == s[si] => {
                si += 1;
                pi += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    pat[pi..].iter().all(|p| *p == P::Any)
}

fn bad_cast(v: &Value, to: DataType) -> QueryError {
    QueryError::eval(format!("cannot cast '{v}' to {to}"))
}

/// Convert a value to `to` (explicit CAST and implicit coercions). Narrowing that does not fit
/// is an error, as DataFusion's (non-`TRY_`) CAST.
pub fn cast(v: Value, to: DataType) -> Result<Value> {
    cast_from(v, DataType::Null, to)
}

/// [`cast`] knowing the value's type `from` (a FLOAT prints as an `f32`).
pub fn cast_from(v: Value, from: DataType, to: DataType) -> Result<Value> {
    use DataType as T;
    if v.is_null() {
        return Ok(Value::Null);
    }
    if let (Value::Float64(x), T::Float, t) = (&v, from, to)
        && t.is_string()
    {
        let text = format_float(*x, true);
        return Ok(if t == T::Json { Value::Json(text.into()) } else { Value::Text(text.into()) });
    }
    Ok(match to {
        T::Null => Value::Null,
        T::Boolean => match &v {
            Value::Boolean(_) => v,
            Value::Int64(i) => Value::Boolean(*i != 0),
            Value::Text(s) | Value::Json(s) => Value::Boolean(parse_bool(s).ok_or_else(|| bad_cast(&v, to))?),
            _ => return Err(bad_cast(&v, to)),
        },
        t if t.is_integer() => {
            let i: i64 = match &v {
                Value::Int64(i) => *i,
                Value::Boolean(b) => *b as i64,
                Value::Float64(f) => {
                    let tr = f.trunc();
                    if !tr.is_finite() || tr < i64::MIN as f64 || tr >= i64::MAX as f64 {
                        return Err(bad_cast(&v, to));
                    }
                    tr as i64
                }
                Value::Decimal(d) => {
                    let int = rescale(d.value, d.scale, 0).ok_or_else(|| bad_cast(&v, to))?;
                    i64::try_from(int).map_err(|_| bad_cast(&v, to))?
                }
                Value::Text(s) | Value::Json(s) => s.trim().parse().map_err(|_| bad_cast(&v, to))?,
                _ => return Err(bad_cast(&v, to)),
            };
            if !fits_int(i, t) {
                return Err(bad_cast(&v, to));
            }
            Value::Int64(i)
        }
        T::Float | T::Double => {
            let f = match &v {
                Value::Text(s) | Value::Json(s) => s.trim().parse::<f64>().map_err(|_| bad_cast(&v, to))?,
                Value::Boolean(b) => *b as i64 as f64,
                other => as_f64(other).ok_or_else(|| bad_cast(&v, to))?,
            };
            Value::Float64(if to == T::Float { f as f32 as f64 } else { f })
        }
        T::Decimal { precision, scale } => {
            let d = match &v {
                Value::Int64(i) => rescale(*i as i128, 0, scale),
                Value::Float64(f) => float_to_decimal(*f, scale),
                Value::Decimal(d) => round_rescale(d.value, d.scale, scale),
                Value::Text(s) | Value::Json(s) => parse_decimal(s, scale),
                _ => None,
            }
            .ok_or_else(|| bad_cast(&v, to))?;
            if digits(d) > precision as u32 && d != 0 {
                return Err(QueryError::eval(format!("value {v} does not fit {to}")));
            }
            Value::decimal(d, scale)
        }
        T::Text | T::CrdtText => match v {
            Value::Text(_) => v,
            Value::Json(s) => Value::Text(s),
            other => Value::Text(other.to_string().into()),
        },
        T::Json => match v {
            Value::Text(s) | Value::Json(s) => Value::Json(s),
            other => Value::Json(other.to_string().into()),
        },
        T::Date => match &v {
            Value::Date(_) => v,
            Value::Timestamp(t) => Value::Date(t.div_euclid(MICROS_PER_DAY) as i32),
            Value::Text(s) => Value::Date(
                parse_date(s)
                    .or_else(|| parse_timestamp(s).map(|t| t.div_euclid(MICROS_PER_DAY) as i32))
                    .ok_or_else(|| bad_cast(&v, to))?,
            ),
            _ => return Err(bad_cast(&v, to)),
        },
        T::Timestamp => match &v {
            Value::Timestamp(_) => v,
            Value::Date(d) => Value::Timestamp(*d as i64 * MICROS_PER_DAY),
            Value::Text(s) => Value::Timestamp(parse_timestamp(s).ok_or_else(|| bad_cast(&v, to))?),
            _ => return Err(bad_cast(&v, to)),
        },
        T::Bytes => match v {
            Value::Bytes(_) => v,
            other => return Err(bad_cast(&other, to)),
        },
        _ => return Err(bad_cast(&v, to)),
    })
}

/// Rescale, rounding half away from zero when digits are dropped.
fn round_rescale(value: i128, from: i8, to: i8) -> Option<i128> {
    if to >= from {
        return rescale(value, from, to);
    }
    let Some(factor) = pow10((from as i32 - to as i32) as u32) else { return Some(0) };
    let (q, r) = (value / factor, value % factor);
    let half = factor / 2;
    Some(if r >= half && r > 0 {
        q + 1
    } else if r <= -half && r < 0 {
        q - 1
    } else {
        q
    })
}

fn func(f: ScalarFunc, args: &[TypedExpr], row: &[Value], ty: DataType) -> Result<Value> {
    if f == ScalarFunc::Coalesce {
        for a in args {
            let v = eval(a, row)?;
            if !v.is_null() {
                return Ok(v);
            }
        }
        return Ok(Value::Null);
    }
    let Some(first) = args.first() else { return Err(QueryError::eval("function call without arguments")) };
    let x = eval(first, row)?;
    if x.is_null() {
        return Ok(Value::Null);
    }
    Ok(match (f, x) {
        (ScalarFunc::Lower, Value::Text(s) | Value::Json(s)) => Value::Text(s.to_lowercase().into()),
        (ScalarFunc::Upper, Value::Text(s) | Value::Json(s)) => Value::Text(s.to_uppercase().into()),
        (ScalarFunc::Length, Value::Text(s) | Value::Json(s)) => Value::Int64(s.chars().count() as i64),
        (ScalarFunc::Abs, Value::Int64(i)) => {
            let a = i.checked_abs().filter(|a| fits_int(*a, ty)).ok_or_else(|| overflow("abs", ty))?;
            Value::Int64(a)
        }
        (ScalarFunc::Abs, Value::Float64(x)) => Value::Float64(x.abs()),
        (ScalarFunc::Abs, Value::Decimal(d)) => Value::decimal(d.value.abs(), d.scale),
        (ScalarFunc::Round(n), Value::Int64(i)) => Value::Int64(round_int(i, n, ty)?),
        (ScalarFunc::Round(n), Value::Float64(x)) => {
            if ty == DataType::Float {
                let factor = 10f32.powi(n);
                Value::Float64(((x as f32 * factor).round() / factor) as f64)
            } else {
                let factor = 10f64.powi(n);
                Value::Float64((x * factor).round() / factor)
            }
        }
        (ScalarFunc::Round(n), Value::Decimal(d)) => {
            let Decimal { value, scale } = *d;
            let DataType::Decimal { scale: out_scale, .. } = ty else {
                return Err(QueryError::eval("round(): decimal result expected"));
            };
            let rounded = if (scale as i64) <= n as i64 {
                value
            } else {
                // Round at `n` places (n may be negative), then express at the output scale.
                let at_n = round_rescale(value, scale, n.clamp(-38, 38) as i8).ok_or_else(|| overflow("round", ty))?;
                rescale(at_n, n.clamp(-38, 38) as i8, out_scale).ok_or_else(|| overflow("round", ty))?
            };
            Value::decimal(rounded, out_scale)
        }
        (ScalarFunc::DateTrunc(unit), Value::Timestamp(t)) => Value::Timestamp(date_trunc(unit.name(), t)?),
        (_, x) => return Err(QueryError::eval(format!("function not defined for '{x}'"))),
    })
}

/// DataFusion's integer round: a no-op for `n >= 0`, else half away from zero at 10^-n.
fn round_int(i: i64, n: i32, ty: DataType) -> Result<i64> {
    if n >= 0 || i == 0 {
        return Ok(i);
    }
    let Some(factor) = 10i64.checked_pow(n.unsigned_abs()) else { return Ok(0) };
    let (q, r) = (i / factor, i % factor);
    let half = factor / 2;
    let q = if r >= half {
        q.checked_add(1)
    } else if r <= -half {
        q.checked_sub(1)
    } else {
        Some(q)
    };
    q.and_then(|q| q.checked_mul(factor)).filter(|v| fits_int(*v, ty)).ok_or_else(|| overflow("round", ty))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns() {
        assert!(like("hello", "h%o"));
        assert!(like("hello", "%"));
        assert!(like("", "%"));
        assert!(!like("", "_"));
        assert!(like("hello", "h_llo"));
        assert!(!like("hello", "h_lo"));
        assert!(like("a%b", "a\\%b"));
        assert!(!like("axb", "a\\%b"));
        assert!(like("mississippi", "%iss%ppi"));
        assert!(!like("Hello", "hello"));
        assert!(like("ünïcode", "_n_code"));
    }

    #[test]
    fn casts() {
        assert_eq!(cast(Value::Float64(2.9), DataType::Int).unwrap(), Value::Int64(2));
        assert!(cast(Value::Int64(70000), DataType::SmallInt).is_err());
        assert_eq!(
            cast(Value::decimal(12345, 3), DataType::Decimal { precision: 10, scale: 2 }).unwrap(),
            Value::decimal(1235, 2)
        );
        assert!(cast(Value::Int64(1000), DataType::Decimal { precision: 4, scale: 2 }).is_err());
        assert_eq!(cast(Value::Text("12".into()), DataType::BigInt).unwrap(), Value::Int64(12));
        assert!(cast(Value::Text("x".into()), DataType::BigInt).is_err());
        assert_eq!(cast(Value::decimal(-150, 2), DataType::Text).unwrap(), Value::Text("-1.50".into()));
    }
}
