//! The column types of the SQL surface, and their Arrow form. The bottom of the server's
//! layers: values, the table schema and both tiers build on it.
//!
//! The types themselves are the query language's ([`kalamdb_query::DataType`], one definition
//! for the server and the client); the server adds how each is held in Arrow and Parquet.

use datafusion::arrow::datatypes::{DataType as ArrowType, Field, TimeUnit};
use std::collections::HashMap;

pub(crate) use kalamdb_query::DataType;

/// Field metadata key carrying the KalamDB type name where Arrow's type is ambiguous
/// (JSON and CRDT_TEXT are both Utf8).
pub(crate) const TYPE_METADATA_KEY: &str = "kalamdb.type";

/// How a column type is held in Arrow (and so in Parquet and DataFusion).
pub(crate) trait ArrowForm {
    /// The Arrow type of a column of this type.
    fn arrow(&self) -> ArrowType;

    /// An Arrow field for a column of this type, tagged with the KalamDB type name.
    fn field(&self, name: &str, nullable: bool) -> Field;
}

impl ArrowForm for DataType {
    fn arrow(&self) -> ArrowType {
        match self {
            DataType::Null => ArrowType::Null,
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

    fn field(&self, name: &str, nullable: bool) -> Field {
        let meta = HashMap::from([(TYPE_METADATA_KEY.to_string(), self.sql_name())]);
        Field::new(name, self.arrow(), nullable).with_metadata(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Catalogs written by earlier builds name column types this way: the encoding must not
    /// change with the type's definition.
    #[test]
    fn column_types_keep_their_stored_form() {
        let stored = serde_json::to_string(&[DataType::BigInt, DataType::Decimal { precision: 10, scale: 2 }]).unwrap();
        assert_eq!(stored, r#"["BigInt",{"Decimal":{"precision":10,"scale":2}}]"#);
        let read: Vec<DataType> = serde_json::from_str(r#"["CrdtText","Timestamp","Json"]"#).unwrap();
        assert_eq!(read, [DataType::CrdtText, DataType::Timestamp, DataType::Json]);
    }
}
