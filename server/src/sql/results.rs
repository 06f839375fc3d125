//! Arrow record batches → the JSON rows of a [`QueryResult`].

use crate::error::{KalamError, Result};
use crate::types::TYPE_METADATA_KEY;
use crate::values;
use base64::Engine;
use datafusion::arrow::array::*;
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use kalamdb_client_core::protocol::{ColumnInfo, QueryResult};
use serde_json::{Value as Json, json};

/// The KalamDB type name of a result column.
pub(crate) fn type_name(field: &Field) -> String {
    // The KalamDB type tells apart what Arrow stores alike (TEXT, JSON and CRDT_TEXT are all
    // strings). DataFusion keeps a column's metadata through CAST and unary minus, so it is
    // only taken where it names a string type for a string result: `CAST(prio AS TEXT)` is
    // TEXT, not prio's SMALLINT. (A JSON column cast to TEXT still says JSON.)
    if let Some(t) = field.metadata().get(TYPE_METADATA_KEY)
        && matches!(t.as_str(), "TEXT" | "JSON" | "CRDT_TEXT")
        && matches!(field.data_type(), ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View)
    {
        return t.clone();
    }
    match field.data_type() {
        ArrowType::Boolean => "BOOLEAN".into(),
        ArrowType::Int8 | ArrowType::Int16 | ArrowType::UInt8 => "SMALLINT".into(),
        ArrowType::Int32 | ArrowType::UInt16 => "INT".into(),
        ArrowType::Int64 | ArrowType::UInt32 | ArrowType::UInt64 => "BIGINT".into(),
        ArrowType::Float16 | ArrowType::Float32 => "FLOAT".into(),
        ArrowType::Float64 => "DOUBLE".into(),
        ArrowType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => "TEXT".into(),
        ArrowType::Binary | ArrowType::LargeBinary | ArrowType::BinaryView => "BYTES".into(),
        ArrowType::Date32 | ArrowType::Date64 => "DATE".into(),
        ArrowType::Timestamp(_, _) => "TIMESTAMP".into(),
        ArrowType::Null => "NULL".into(),
        other => other.to_string().to_uppercase(),
    }
}

/// Builds a result batch by batch (so that each batch can be converted in its own slice of
/// CPU), within a size budget for its JSON.
pub(crate) struct ResultBuilder<'a> {
    schema: &'a datafusion::arrow::datatypes::Schema,
    columns: Vec<ColumnInfo>,
    rows: Vec<Vec<Json>>,
    bytes: usize,
    max_bytes: usize,
}

impl<'a> ResultBuilder<'a> {
    pub(crate) fn new(schema: &'a datafusion::arrow::datatypes::Schema, max_bytes: usize) -> Self {
        let columns = schema.fields().iter().map(|f| ColumnInfo::new(f.name().clone(), type_name(f))).collect();
        ResultBuilder { schema, columns, rows: vec![], bytes: 0, max_bytes }
    }

    pub(crate) fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut batch_rows: Vec<Vec<Json>> =
            (0..batch.num_rows()).map(|_| Vec::with_capacity(self.columns.len())).collect();
        // Field metadata (the KalamDB type) lives on the plan's schema; batches may not carry it.
        for (c, field) in self.schema.fields().iter().enumerate() {
            let is_json = field.metadata().get(TYPE_METADATA_KEY).is_some_and(|t| t == "JSON");
            let array = batch.column(c);
            for (r, row) in batch_rows.iter_mut().enumerate() {
                let value = cell(array.as_ref(), r, is_json)?;
                self.bytes += json_len(&value) + 1;
                if self.bytes > self.max_bytes {
                    return Err(response_too_large(self.max_bytes));
                }
                row.push(value);
            }
        }
        self.rows.extend(batch_rows);
        Ok(())
    }

    pub(crate) fn finish(self) -> QueryResult {
        let row_count = self.rows.len() as u64;
        QueryResult { schema: self.columns, rows: self.rows, row_count, message: None }
    }
}

/// The error for a response over `limits.max_response_bytes`.
pub(crate) fn response_too_large(max_bytes: usize) -> KalamError {
    KalamError::TooLarge(format!(
        "the response would be larger than {} (limits.max_response_bytes); add a LIMIT or select fewer columns",
        crate::budget::human_bytes(max_bytes)
    ))
}

/// About how many bytes a result takes as JSON (string escapes not counted).
pub(crate) fn result_json_len(result: &QueryResult) -> usize {
    let cells: usize = result.rows.iter().map(|row| row.iter().map(|v| json_len(v) + 1).sum::<usize>() + 2).sum();
    cells + result.schema.len() * 48 + 64
}

fn json_len(value: &Json) -> usize {
    match value {
        Json::Null => 4,
        Json::Bool(_) => 5,
        Json::Number(_) => 20,
        Json::String(s) => s.len() + 2,
        Json::Array(items) => items.iter().map(|v| json_len(v) + 1).sum::<usize>() + 2,
        Json::Object(map) => map.iter().map(|(k, v)| k.len() + 4 + json_len(v)).sum::<usize>() + 2,
    }
}

fn cell(array: &dyn Array, i: usize, is_json: bool) -> Result<Json> {
    // A NullArray (`SELECT NULL`) has no validity buffer: `is_null` says false for its rows.
    if array.is_null(i) || array.data_type().is_null() {
        return Ok(Json::Null);
    }
    macro_rules! get {
        ($t:ty) => {
            array.as_any().downcast_ref::<$t>().expect("type checked").value(i)
        };
    }
    Ok(match array.data_type() {
        ArrowType::Boolean => json!(get!(BooleanArray)),
        ArrowType::Int8 => json!(get!(Int8Array)),
        ArrowType::Int16 => json!(get!(Int16Array)),
        ArrowType::Int32 => json!(get!(Int32Array)),
        ArrowType::Int64 => json!(get!(Int64Array)),
        ArrowType::UInt8 => json!(get!(UInt8Array)),
        ArrowType::UInt16 => json!(get!(UInt16Array)),
        ArrowType::UInt32 => json!(get!(UInt32Array)),
        ArrowType::UInt64 => json!(get!(UInt64Array)),
        ArrowType::Float32 => float(get!(Float32Array) as f64),
        ArrowType::Float64 => float(get!(Float64Array)),
        ArrowType::Utf8 if is_json => {
            serde_json::from_str(get!(StringArray)).unwrap_or_else(|_| json!(get!(StringArray)))
        }
        ArrowType::Utf8 => json!(get!(StringArray)),
        ArrowType::LargeUtf8 => json!(get!(LargeStringArray)),
        ArrowType::Utf8View => json!(get!(StringViewArray)),
        ArrowType::Binary => json!(b64(get!(BinaryArray))),
        ArrowType::LargeBinary => json!(b64(get!(LargeBinaryArray))),
        ArrowType::BinaryView => json!(b64(get!(BinaryViewArray))),
        ArrowType::Date32 => json!(values::format_date(get!(Date32Array))),
        ArrowType::Decimal128(_, s) => json!(values::format_decimal(get!(Decimal128Array), *s)),
        ArrowType::Timestamp(unit, _) => {
            let micros = match unit {
                TimeUnit::Second => get!(TimestampSecondArray) * 1_000_000,
                TimeUnit::Millisecond => get!(TimestampMillisecondArray) * 1_000,
                TimeUnit::Microsecond => get!(TimestampMicrosecondArray),
                TimeUnit::Nanosecond => get!(TimestampNanosecondArray) / 1_000,
            };
            json!(values::format_timestamp(micros))
        }
        _ => {
            // Lists, structs, intervals...: their Arrow display form.
            let opts = FormatOptions::default();
            let f = ArrayFormatter::try_new(array, &opts).map_err(KalamError::internal)?;
            json!(f.value(i).to_string())
        }
    })
}

/// JSON has no NaN/Infinity: those become strings.
fn float(f: f64) -> Json {
    serde_json::Number::from_f64(f).map(Json::Number).unwrap_or_else(|| json!(f.to_string()))
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// The result of a statement that starts a job: the job id as a one-row result, and `message`.
pub(crate) fn job_started(job_id: &str, message: String) -> QueryResult {
    QueryResult {
        schema: vec![ColumnInfo::new("job_id", "TEXT")],
        rows: vec![vec![serde_json::json!(job_id)]],
        row_count: 1,
        message: Some(message),
    }
}

/// A result for a statement that returns no rows.
pub(crate) fn message(row_count: u64, message: impl Into<String>) -> QueryResult {
    QueryResult { schema: vec![], rows: vec![], row_count, message: Some(message.into()) }
}
