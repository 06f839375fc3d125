//! Binary encoding of a stored row version.
//!
//! ```text
//! format (1) | _updated (8, LE) | _deleted (1) | n (2) | n × (column id (2) | tag (1) | payload)
//! ```
//! Values are keyed by column id, not position, so a row written under an old schema
//! version reads through the current one (dropped columns are skipped, new ones are NULL).
//!
//! A CRDT_TEXT cell (tag 9) is `text len (4) | text | state len (4) | state`: the text is
//! derived from the Yjs state but stored too, so SQL reads never decode documents.

use crate::error::{KalamError, Result};
use crate::schema::{ColumnDef, ColumnId, TableDef};
use crate::types::DataType;
use crate::values::{self, CrdtCell, Value};
use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, TimestampMicrosecondArray};
use std::sync::Arc;

const FORMAT: u8 = 1;

/// A stored row version.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredRow {
    pub updated: i64,
    pub deleted: bool,
    /// Values aligned to the table's current columns.
    pub values: Vec<Value>,
}

pub(crate) fn encode(table: &TableDef, row: &StoredRow) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + row.values.len() * 12);
    out.push(FORMAT);
    out.extend_from_slice(&row.updated.to_le_bytes());
    out.push(row.deleted as u8);
    out.extend_from_slice(&(row.values.len() as u16).to_le_bytes());
    for (col, v) in table.columns.iter().zip(&row.values) {
        out.extend_from_slice(&col.id.to_le_bytes());
        encode_value(&mut out, v);
    }
    out
}

fn encode_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(0),
        Value::Bool(b) => out.extend_from_slice(&[1, *b as u8]),
        Value::Int(i) => {
            out.push(2);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Float(f) => {
            out.push(3);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Decimal(d) => {
            out.push(4);
            out.extend_from_slice(&d.to_le_bytes());
        }
        Value::Text(s) => {
            out.push(5);
            put_bytes(out, s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(6);
            put_bytes(out, b);
        }
        Value::Date(d) => {
            out.push(7);
            out.extend_from_slice(&d.to_le_bytes());
        }
        Value::Timestamp(t) => {
            out.push(8);
            out.extend_from_slice(&t.to_le_bytes());
        }
        Value::Crdt(c) => {
            out.push(9);
            put_bytes(out, c.text.as_bytes());
            put_bytes(out, &c.state);
        }
        // The committer merges updates into documents before encoding; should one slip
        // through, store what it describes rather than lose it.
        Value::CrdtUpdate(u) => {
            debug_assert!(false, "a CRDT update reached the row codec");
            match kalamdb_client_core::crdt::CrdtText::from_state(u) {
                Ok(doc) => encode_value(out, &Value::Crdt(Box::new(CrdtCell::of(&doc)))),
                Err(_) => out.push(0),
            }
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(KalamError::Corrupt("row: truncated".into()));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }
    fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        self.take(len)
    }
}

/// Reads only `_updated` and `_deleted` (cheap: no value decoding).
pub(crate) fn decode_header(bytes: &[u8]) -> Result<(i64, bool)> {
    let mut r = Reader { buf: bytes };
    if r.take(1)?[0] != FORMAT {
        return Err(KalamError::Corrupt("row: unknown format".into()));
    }
    let updated = i64::from_le_bytes(r.array()?);
    let deleted = r.take(1)?[0] != 0;
    Ok((updated, deleted))
}

/// Decodes a row through the table's current columns; columns added since the row was
/// written read as their fill value ([`crate::schema::ColumnDef::fill`]).
pub(crate) fn decode(table: &TableDef, bytes: &[u8]) -> Result<StoredRow> {
    let (updated, deleted) = decode_header(bytes)?;
    let mut r = Reader { buf: &bytes[10..] };
    let n = u16::from_le_bytes(r.array()?) as usize;
    let mut values = vec![Value::Null; table.columns.len()];
    // Only tables with a literal DEFAULT track which columns the row holds.
    let mut held = table.columns.iter().any(ColumnDef::has_fill).then(|| vec![false; values.len()]);
    for _ in 0..n {
        let id = ColumnId::from_le_bytes(r.array()?);
        let v = decode_value(&mut r)?;
        if let Some(pos) = table.columns.iter().position(|c| c.id == id) {
            if let Some(held) = held.as_mut() {
                held[pos] = true;
            }
            values[pos] = match v {
                // Plain text from before CRDT_TEXT cells were documents.
                Value::Text(s) if table.columns[pos].data_type == DataType::CrdtText => {
                    Value::Crdt(Box::new(CrdtCell::from_legacy_text(&s)))
                }
                v => v,
            };
        }
    }
    for (pos, _) in held.iter().flatten().enumerate().filter(|(_, held)| !**held) {
        values[pos] = table.columns[pos].fill();
    }
    Ok(StoredRow { updated, deleted, values })
}

fn decode_value(r: &mut Reader<'_>) -> Result<Value> {
    let tag = r.take(1)?[0];
    Ok(match tag {
        0 => Value::Null,
        1 => Value::Bool(r.take(1)?[0] != 0),
        2 => Value::Int(i64::from_le_bytes(r.array()?)),
        3 => Value::Float(f64::from_le_bytes(r.array()?)),
        4 => Value::Decimal(i128::from_le_bytes(r.array()?)),
        5 => Value::Text(utf8(r.bytes()?)?),
        6 => Value::Bytes(r.bytes()?.to_vec()),
        7 => Value::Date(i32::from_le_bytes(r.array()?)),
        8 => Value::Timestamp(i64::from_le_bytes(r.array()?)),
        9 => {
            let text = utf8(r.bytes()?)?;
            Value::Crdt(Box::new(CrdtCell { text, state: r.bytes()?.to_vec() }))
        }
        _ => return Err(KalamError::Corrupt("row: unknown value tag".into())),
    })
}

fn utf8(raw: &[u8]) -> Result<String> {
    String::from_utf8(raw.to_vec()).map_err(|_| KalamError::Corrupt("row: bad utf-8".into()))
}
/// Rows of `table` as a record batch: the user columns, then `_updated` and `_deleted` when
/// `with_system` (never for STREAM tables), keeping only `projection` (indexes into that
/// schema) if given.
pub(crate) fn rows_to_batch(
    table: &TableDef,
    rows: &[&StoredRow],
    with_system: bool,
    projection: Option<&[usize]>,
) -> Result<RecordBatch> {
    let full = table.arrow_schema(with_system);
    let n_user = table.columns.len();
    let all: Vec<usize> = (0..full.fields().len()).collect();
    let indices = projection.unwrap_or(&all);
    let schema = Arc::new(full.project(indices).map_err(KalamError::internal)?);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(indices.len());
    for &i in indices {
        let array: ArrayRef = if i < n_user {
            let vals: Vec<&Value> = rows.iter().map(|r| &r.values[i]).collect();
            values::to_arrow(table.columns[i].data_type, &vals)?
        } else if i == n_user {
            Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.updated)))
        } else {
            Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.deleted))))
        };
        columns.push(array);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
    RecordBatch::try_new_with_options(schema, columns, &options).map_err(KalamError::internal)
}
