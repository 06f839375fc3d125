//! Column and expression types: the column types of the SQL surface (the server's and the
//! client's) plus the type of a bare `NULL`.

use std::fmt;
use std::str::FromStr;

/// Largest DECIMAL precision (Arrow's Decimal128, as on the server).
pub const MAX_DECIMAL_PRECISION: u8 = 38;

/// The type of a column or of an expression.
///
/// The server's column types (the one definition of them: the server stores them in its
/// catalog through the `serde` feature), plus [`DataType::Null`] for an untyped `NULL`
/// literal, which is never a column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum DataType {
    /// `NULL` with no other type information (a bare `NULL` literal).
    Null,
    /// `BOOLEAN`.
    Boolean,
    /// `SMALLINT`: 16-bit signed; arithmetic wraps at 16 bits as in DataFusion.
    SmallInt,
    /// `INT`: 32-bit signed; arithmetic wraps at 32 bits as in DataFusion.
    Int,
    /// `BIGINT`: 64-bit signed.
    BigInt,
    /// `FLOAT`: 32-bit IEEE (held as an `f64` that is always exactly an `f32`).
    Float,
    /// `DOUBLE`: 64-bit IEEE.
    Double,
    /// `DECIMAL(precision, scale)`: exact, a scaled 128-bit integer.
    Decimal {
        /// Total digits, 1..=38.
        precision: u8,
        /// Digits after the point.
        scale: i8,
    },
    /// `TEXT`.
    Text,
    /// `BYTES`.
    Bytes,
    /// `DATE`: days since 1970-01-01.
    Date,
    /// `TIMESTAMP`: microseconds since 1970-01-01T00:00:00 UTC, no time zone.
    Timestamp,
    /// `JSON`: text on the SQL side (compared and returned as its text, as DataFusion sees Utf8).
    Json,
    /// `CRDT_TEXT`: read as plain text by SQL.
    CrdtText,
}

impl DataType {
    /// The SQL name, as the server spells it.
    pub fn sql_name(&self) -> String {
        match self {
            DataType::Null => "NULL".into(),
            DataType::Boolean => "BOOLEAN".into(),
            DataType::SmallInt => "SMALLINT".into(),
            DataType::Int => "INT".into(),
            DataType::BigInt => "BIGINT".into(),
            DataType::Float => "FLOAT".into(),
            DataType::Double => "DOUBLE".into(),
            DataType::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
            DataType::Text => "TEXT".into(),
            DataType::Bytes => "BYTES".into(),
            DataType::Date => "DATE".into(),
            DataType::Timestamp => "TIMESTAMP".into(),
            DataType::Json => "JSON".into(),
            DataType::CrdtText => "CRDT_TEXT".into(),
        }
    }

    /// SMALLINT, INT or BIGINT.
    pub fn is_integer(&self) -> bool {
        matches!(self, DataType::SmallInt | DataType::Int | DataType::BigInt)
    }

    /// FLOAT or DOUBLE.
    pub fn is_float(&self) -> bool {
        matches!(self, DataType::Float | DataType::Double)
    }

    /// Integers, floats and decimals.
    pub fn is_numeric(&self) -> bool {
        self.is_integer() || self.is_float() || matches!(self, DataType::Decimal { .. })
    }

    /// Types SQL reads as a string: TEXT, JSON and CRDT_TEXT (all Utf8 on the server).
    pub fn is_string(&self) -> bool {
        matches!(self, DataType::Text | DataType::Json | DataType::CrdtText)
    }

    /// Types allowed as a primary key (they have an order-preserving key encoding).
    pub fn can_be_primary_key(&self) -> bool {
        matches!(self, DataType::SmallInt | DataType::Int | DataType::BigInt | DataType::Text)
    }

    /// DATE or TIMESTAMP.
    pub fn is_temporal(&self) -> bool {
        matches!(self, DataType::Date | DataType::Timestamp)
    }

    /// The DECIMAL an integer type converts to in decimal arithmetic (DataFusion's rule).
    pub(crate) fn integer_as_decimal(&self) -> Option<(u8, i8)> {
        match self {
            DataType::SmallInt => Some((5, 0)),
            DataType::Int => Some((10, 0)),
            DataType::BigInt => Some((20, 0)),
            DataType::Decimal { precision, scale } => Some((*precision, *scale)),
            _ => None,
        }
    }
}

/// A type name [`DataType::sql_name`] does not produce (and so neither does the server).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown type name '{0}'")]
pub struct UnknownTypeName(pub String);

/// The inverse of [`DataType::sql_name`]: reads the type names the server puts in result and
/// sync schemas (`BIGINT`, `DECIMAL(10,2)`, `CRDT_TEXT`, ...), case-insensitively. This is not
/// the SQL grammar of `CAST` (which also takes aliases such as `int8` or `varchar(20)`).
impl FromStr for DataType {
    type Err = UnknownTypeName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownTypeName(name.to_string());
        let upper = name.trim().to_ascii_uppercase();
        Ok(match upper.as_str() {
            "NULL" => DataType::Null,
            "BOOLEAN" => DataType::Boolean,
            "SMALLINT" => DataType::SmallInt,
            "INT" => DataType::Int,
            "BIGINT" => DataType::BigInt,
            "FLOAT" => DataType::Float,
            "DOUBLE" => DataType::Double,
            "TEXT" => DataType::Text,
            "BYTES" => DataType::Bytes,
            "DATE" => DataType::Date,
            "TIMESTAMP" => DataType::Timestamp,
            "JSON" => DataType::Json,
            "CRDT_TEXT" => DataType::CrdtText,
            other => {
                let args = other.strip_prefix("DECIMAL(").and_then(|r| r.strip_suffix(')')).ok_or_else(unknown)?;
                let (p, s) = args.split_once(',').ok_or_else(unknown)?;
                let precision: u8 = p.trim().parse().map_err(|_| unknown())?;
                let scale: i8 = s.trim().parse().map_err(|_| unknown())?;
                if precision == 0 || precision > MAX_DECIMAL_PRECISION || scale.unsigned_abs() > precision {
                    return Err(unknown());
                }
                DataType::Decimal { precision, scale }
            }
        })
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sql_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_names_read_back() {
        let all = [
            DataType::Null,
            DataType::Boolean,
            DataType::SmallInt,
            DataType::Int,
            DataType::BigInt,
            DataType::Float,
            DataType::Double,
            DataType::Decimal { precision: 10, scale: 2 },
            DataType::Decimal { precision: 38, scale: 0 },
            DataType::Text,
            DataType::Bytes,
            DataType::Date,
            DataType::Timestamp,
            DataType::Json,
            DataType::CrdtText,
        ];
        for ty in all {
            assert_eq!(ty.sql_name().parse::<DataType>(), Ok(ty));
        }
        assert_eq!("decimal( 5 , 1 )".parse(), Ok(DataType::Decimal { precision: 5, scale: 1 }));
        for bad in ["VARCHAR", "DECIMAL", "DECIMAL(0,0)", "DECIMAL(39,2)", "DECIMAL(5,6)", "DECIMAL(5)", ""] {
            assert_eq!(bad.parse::<DataType>(), Err(UnknownTypeName(bad.to_string())), "{bad}");
        }
    }
}
