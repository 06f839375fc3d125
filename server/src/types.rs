//! The column types of the SQL surface, and their Arrow form. The bottom of the server's
//! layers: values, the table schema and both tiers build on it.

use datafusion::arrow::datatypes::{DataType as ArrowType, Field, TimeUnit};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Column types of the SQL surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum DataType {
    Boolean,
    SmallInt,
    Int,
    BigInt,
    Float,
    Double,
    Decimal {
        precision: u8,
        scale: i8,
    },
    Text,
    Bytes,
    Date,
    Timestamp,
    Json,
    /// Collaborative text: read as plain text by SQL.
    CrdtText,
}

/// Field metadata key carrying the KalamDB type name where Arrow's type is ambiguous
/// (JSON and CRDT_TEXT are both Utf8).
pub(crate) const TYPE_METADATA_KEY: &str = "kalamdb.type";

impl DataType {
    pub(crate) fn sql_name(&self) -> String {
        match self {
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

    pub(crate) fn arrow(&self) -> ArrowType {
        match self {
            DataType::Boolean => ArrowType::Boolean,
            DataType::SmallInt => ArrowType::Int16,
            DataType::Int => ArrowType::Int32,
            DataType::BigInt => ArrowType::Int64,
            DataType::Float => ArrowType::Float32,
            DataType::Double => ArrowType::Float64,
            DataType::Decimal { precision, scale } => ArrowType::Decimal128(*precision, *scale),
            DataType::Text | DataType::Json | DataType::CrdtText => ArrowType::Utf8,
            DataType::Bytes => ArrowType::Binary,
            DataType::Date => ArrowType::Date32,
            DataType::Timestamp => ArrowType::Timestamp(TimeUnit::Microsecond, None),
        }
    }

    /// Types allowed as a primary key (they have an order-preserving key encoding).
    pub(crate) fn can_be_primary_key(&self) -> bool {
        matches!(self, DataType::SmallInt | DataType::Int | DataType::BigInt | DataType::Text)
    }

    /// An Arrow field for a column of this type, tagged with the KalamDB type name.
    pub(crate) fn field(&self, name: &str, nullable: bool) -> Field {
        let meta = HashMap::from([(TYPE_METADATA_KEY.to_string(), self.sql_name())]);
        Field::new(name, self.arrow(), nullable).with_metadata(meta)
    }
}
