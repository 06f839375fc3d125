//! The binary record format a store keeps rows in (IndexedDB's `rows` chunks and `row_log`
//! records, see `docs/client.md` "IndexedDB store").
//!
//! A record holds row operations with the rows already in the replica's typed layout, so
//! loading one copies values into [`TypedRow`]s instead of parsing and typing JSON (the most
//! expensive part of opening a large replica). Layout, all integers little-endian, lengths and
//! counts LEB128 (`varint`), signed values zigzag-encoded (`zigzag`):
//!
//! ```text
//! record  := "KDR" VERSION op*                   (VERSION = 1)
//! op      := 0x01 sub:str ncols:varint (name:str type:str)*
//!                                                 the ops that follow are of subscription `sub`,
//!                                                 typed rows aligned to these columns
//!          | 0x02 key:str cell{ncols}             put a typed row
//!          | 0x03 key:str json:str                put a row as the server's JSON (rows that
//!                                                 are not typed, rows with CRDT state)
//!          | 0x04 key:str                         delete a row
//!          | 0x05                                 delete every row of the subscription
//! str     := len:varint UTF-8 bytes
//! cell    := 0x00 (NULL) | 0x01 value             the value in its column's type:
//!            BOOLEAN 1 byte; SMALLINT, INT, BIGINT, DATE, TIMESTAMP zigzag; FLOAT, DOUBLE
//!            8 bytes (IEEE); DECIMAL zigzag of the unscaled 128-bit digits (the scale is the
//!            column's); TEXT, CRDT_TEXT, JSON str; BYTES len:varint bytes
//! ```
//!
//! A type is written as its SQL name ([`DataType::sql_name`]). Rows typed to columns other
//! than the subscription's current ones (its schema changed after the record was written) are
//! read back through their JSON, by column name. Decoding checks every length and count
//! against the bytes left, so a truncated or corrupt record is an error, never a panic or an
//! allocation larger than the record.

use super::{OpRow, Row, RowsBySubscription, StoreError, SubscriptionId};
use crate::replica::{RowColumns, SubscriptionRows, TypedRow, same_columns};
use kalamdb_query::json::to_json;
use kalamdb_query::{ColumnDef, DataType, Value};
use serde::de::DeserializeSeed;
use std::sync::Arc;

/// The first bytes of every record: a name and the format version.
const MAGIC: [u8; 4] = *b"KDR\x01";

const OP_USE: u8 = 0x01;
const OP_PUT_TYPED: u8 = 0x02;
const OP_PUT_JSON: u8 = 0x03;
const OP_DELETE: u8 = 0x04;
const OP_CLEAR: u8 = 0x05;

/// Builds one record of row operations.
pub struct RecordWriter {
    buf: Vec<u8>,
    /// The subscription and columns the last `use` op selected.
    current: Option<(SubscriptionId, Option<RowColumns>)>,
    /// Row operations written (`use` ops do not count: a record of only those changes nothing).
    ops: usize,
}

impl Default for RecordWriter {
    fn default() -> Self {
        RecordWriter { buf: MAGIC.to_vec(), current: None, ops: 0 }
    }
}

impl RecordWriter {
    /// An empty record.
    pub fn new() -> Self {
        RecordWriter::default()
    }

    /// The record's bytes so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no operation was written.
    pub fn is_empty(&self) -> bool {
        self.ops == 0
    }

    /// The record.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    /// Puts the row `key` of `sub`: `row` itself if it is typed, else the typed row `rows`
    /// holds under `key` when there is one (they are the rows of `sub` in a replica that
    /// applied this put, see [`super::ReplicaStore::commit_applied`]), else `row` as JSON.
    pub fn put(
        &mut self,
        sub: &SubscriptionId,
        key: &str,
        row: &OpRow,
        rows: Option<&SubscriptionRows>,
    ) -> Result<(), StoreError> {
        if let OpRow::Typed { columns, row } = row
            && self.put_typed(sub, columns, key, row)
        {
            return Ok(());
        }
        let typed = rows.and_then(|rows| Some((rows.columns()?, rows.get(key)?)).filter(|_| !rows.has_crdt_cells(key)));
        match typed {
            Some((columns, typed)) if self.put_typed(sub, columns, key, typed) => Ok(()),
            _ => self.put_json(sub, key, &row.json()),
        }
    }

    /// Deletes the row `key` of `sub`.
    pub fn delete(&mut self, sub: &SubscriptionId, key: &str) {
        self.select(sub, None);
        self.buf.push(OP_DELETE);
        put_str(&mut self.buf, key);
        self.ops += 1;
    }

    /// Deletes every row of `sub`.
    pub fn clear(&mut self, sub: &SubscriptionId) {
        self.select(sub, None);
        self.buf.push(OP_CLEAR);
        self.ops += 1;
    }

    /// Puts every row of `rows` (the rows of `sub`), typed where they are.
    pub fn put_all(
        &mut self,
        sub: &SubscriptionId,
        rows: &SubscriptionRows,
        keys: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<(), StoreError> {
        for key in keys {
            let key = key.as_ref();
            let typed = rows.columns().zip(rows.get(key)).filter(|_| !rows.has_crdt_cells(key));
            if let Some((columns, typed)) = typed
                && self.put_typed(sub, columns, key, typed)
            {
                continue;
            }
            if let Some(row) = rows.json_row(key) {
                self.put_json(sub, key, &row)?;
            }
        }
        Ok(())
    }

    /// Writes the typed row; false (and nothing written) if a value is not of its column's
    /// type, which the replica's typing never makes.
    fn put_typed(&mut self, sub: &SubscriptionId, columns: &RowColumns, key: &str, row: &TypedRow) -> bool {
        if row.len() != columns.len() {
            return false;
        }
        self.select(sub, Some(columns));
        let start = self.buf.len();
        self.buf.push(OP_PUT_TYPED);
        put_str(&mut self.buf, key);
        for (c, v) in columns.iter().zip(row.iter()) {
            if !put_cell(&mut self.buf, c.ty, v) {
                self.buf.truncate(start);
                return false;
            }
        }
        self.ops += 1;
        true
    }

    fn put_json(&mut self, sub: &SubscriptionId, key: &str, row: &Row) -> Result<(), StoreError> {
        self.select(sub, None);
        let json = serde_json::to_vec(row).map_err(|e| StoreError(format!("cannot serialise a row: {e}")))?;
        self.buf.push(OP_PUT_JSON);
        put_str(&mut self.buf, key);
        put_bytes(&mut self.buf, &json);
        self.ops += 1;
        Ok(())
    }

    /// Writes a `use` op unless `sub` is selected already (with `columns`, when given: ops
    /// other than typed puts do not care which columns are selected).
    fn select(&mut self, sub: &SubscriptionId, columns: Option<&RowColumns>) {
        if let Some((current, current_columns)) = &self.current
            && current == sub
            && columns.is_none_or(|c| current_columns.as_ref().is_some_and(|cur| Arc::ptr_eq(cur, c) || cur == c))
        {
            return;
        }
        self.buf.push(OP_USE);
        put_str(&mut self.buf, &sub.0);
        let defs: &[ColumnDef] = columns.map_or(&[], |c| c);
        put_varint(&mut self.buf, defs.len() as u128);
        for c in defs {
            put_str(&mut self.buf, &c.name);
            put_str(&mut self.buf, &c.ty.sql_name());
        }
        self.current = Some((sub.clone(), columns.cloned()));
    }
}

/// Applies the row operations of `record` to `rows` (by subscription; a subscription not there
/// gets rows without columns, as JSON). Fails, naming the byte, on a record that is truncated,
/// corrupt or of another version; operations before the fault stay applied.
pub fn replay(record: &[u8], rows: &mut RowsBySubscription) -> Result<(), StoreError> {
    replay_ops(record, rows, false)
}

/// Applies a compacted chunk as [`replay`] does, for a record whose keys are new to `rows`
/// (a compaction writes each row once, in chunks of distinct keys): its typed rows are added
/// without probing the key index, and [`SubscriptionRows::index_appended`] indexes them all
/// at once afterwards (the next change to a subscription's rows does too). A key that was not
/// new still gets the result of a put, more slowly.
pub fn replay_chunk(record: &[u8], rows: &mut RowsBySubscription) -> Result<(), StoreError> {
    replay_ops(record, rows, true)
}

fn replay_ops(record: &[u8], rows: &mut RowsBySubscription, chunk: bool) -> Result<(), StoreError> {
    let mut r = Reader { bytes: record, pos: 0 };
    let magic = r.take(MAGIC.len())?;
    if magic[..3] != MAGIC[..3] {
        return Err(r.fail("not a replica record"));
    }
    if magic[3] != MAGIC[3] {
        return Err(r.fail(&format!("format version {} is not known to this client (it reads {})", magic[3], MAGIC[3])));
    }
    // The selected subscription, the record's columns for it, and whether they are the
    // columns its rows are typed to now (then typed rows are moved in as they are).
    let mut current: Option<(SubscriptionId, Vec<ColumnDef>, bool)> = None;
    while r.pos < r.bytes.len() {
        let op = r.byte()?;
        if op == OP_USE {
            let sub = SubscriptionId(r.str()?.to_string());
            let n = r.count(2)?;
            let mut columns = Vec::with_capacity(n);
            for _ in 0..n {
                let name = r.str()?.to_string();
                let ty = r.str()?;
                let ty: DataType = ty.parse().map_err(|_| r.fail(&format!("unknown column type '{ty}'")))?;
                columns.push(ColumnDef::new(name, ty, true));
            }
            let same = rows.entry(sub.clone()).or_default().columns().is_some_and(|c| same_columns(c, &columns));
            current = Some((sub, columns, same));
            continue;
        }
        let Some((sub, columns, same)) = &current else {
            return Err(r.fail("a row operation before any subscription"));
        };
        // Made by the `use` op above; looked up by reference, not cloned, per row.
        let Some(target) = rows.get_mut(sub) else { return Err(r.fail("the subscription vanished")) };
        match op {
            OP_PUT_TYPED => {
                // Read as bytes: nearly every key is its row's own key value, which the rows
                // recognise without a text (`put_typed_own_key`); the others are read below.
                let key_at = r.pos;
                let key = r.bytes()?;
                // Built in place, one allocation (the length is known); the first fault is
                // kept and reported once the row is built.
                let mut fault = None;
                let values: TypedRow = columns
                    .iter()
                    .map(|c| match fault {
                        None => r.cell(c).unwrap_or_else(|e| {
                            fault = Some(e);
                            Value::Null
                        }),
                        Some(_) => Value::Null,
                    })
                    .collect();
                if let Some(e) = fault {
                    return Err(e);
                }
                let values = if *same {
                    match target.put_typed_own_key(key, values, chunk) {
                        Ok(()) => continue,
                        Err(values) => values,
                    }
                } else {
                    values
                };
                let key = std::str::from_utf8(key)
                    .map_err(|_| Reader { bytes: r.bytes, pos: key_at }.fail("a key that is not UTF-8"))?;
                if *same {
                    target.put_typed(key, values);
                } else {
                    // Typed to other columns: carried over by name, as a schema change does.
                    let mut json = Row::new();
                    for (c, v) in columns.iter().zip(values.iter()) {
                        json.insert(c.name.clone(), to_json(v, c.ty));
                    }
                    target.put(key.to_string(), &json);
                }
            }
            OP_PUT_JSON => {
                let key = r.str()?.to_string();
                // As text: the one JSON reader (`StrRead`) the client compiles in.
                let json = r.str()?;
                let mut de = serde_json::Deserializer::from_str(json);
                target
                    .put_seed(key)
                    .deserialize(&mut de)
                    .and_then(|()| de.end())
                    .map_err(|e| r.fail(&format!("a row's JSON does not read: {e}")))?;
            }
            OP_DELETE => target.remove(r.str()?),
            OP_CLEAR => target.clear(),
            other => return Err(r.fail(&format!("unknown operation {other:#04x}"))),
        }
    }
    Ok(())
}

/// Writes `v`, of a column of type `ty`; false if it is not of that type.
fn put_cell(buf: &mut Vec<u8>, ty: DataType, v: &Value) -> bool {
    if v.is_null() {
        buf.push(0);
        return true;
    }
    let start = buf.len();
    buf.push(1);
    let ok = match (ty, v) {
        (DataType::Boolean, Value::Boolean(b)) => {
            buf.push(u8::from(*b));
            true
        }
        (DataType::SmallInt | DataType::Int | DataType::BigInt, Value::Int64(i))
        | (DataType::Timestamp, Value::Timestamp(i)) => {
            put_varint(buf, zigzag(i128::from(*i)));
            true
        }
        (DataType::Date, Value::Date(d)) => {
            put_varint(buf, zigzag(i128::from(*d)));
            true
        }
        (DataType::Float | DataType::Double, Value::Float64(f)) => {
            buf.extend_from_slice(&f.to_le_bytes());
            true
        }
        (DataType::Decimal { scale, .. }, Value::Decimal(d)) if scale == d.scale => {
            put_varint(buf, zigzag(d.value));
            true
        }
        (DataType::Text | DataType::CrdtText, Value::Text(s)) | (DataType::Json, Value::Json(s)) => {
            put_str(buf, s);
            true
        }
        (DataType::Bytes, Value::Bytes(b)) => {
            put_bytes(buf, b);
            true
        }
        _ => false,
    };
    if !ok {
        buf.truncate(start);
    }
    ok
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_bytes(buf, s.as_bytes());
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_varint(buf, b.len() as u128);
    buf.extend_from_slice(b);
}

fn put_varint(buf: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn zigzag(v: i128) -> u128 {
    ((v << 1) ^ (v >> 127)) as u128
}

fn unzigzag(v: u128) -> i128 {
    ((v >> 1) as i128) ^ -((v & 1) as i128)
}

/// A position in a record being read; every read checks the bytes left.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn fail(&self, why: &str) -> StoreError {
        StoreError(format!("corrupt replica record ({} bytes): {why} at byte {}", self.bytes.len(), self.pos))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self.pos.checked_add(n).filter(|end| *end <= self.bytes.len());
        let end = end.ok_or_else(|| self.fail(&format!("truncated ({n} bytes wanted)")))?;
        let taken = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    /// A LEB128 number of at most 128 bits.
    fn varint(&mut self) -> Result<u128, StoreError> {
        let mut v: u128 = 0;
        for shift in (0..128).step_by(7) {
            let b = self.byte()?;
            v |= u128::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.fail("a number longer than 128 bits"))
    }

    /// A LEB128 number of at most 64 bits: lengths, counts and every integer but a DECIMAL's
    /// digits. The same bytes as [`Self::varint`] writes for them, read without 128-bit
    /// arithmetic, which wasm32 does in pairs of 64-bit operations (a load reads several
    /// numbers per row).
    fn varint64(&mut self) -> Result<u64, StoreError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            // The tenth byte holds the top bit alone.
            if shift == 63 && b > 1 {
                break;
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.fail("a number longer than 64 bits"))
    }

    fn signed(&mut self, min: i128, max: i128) -> Result<i128, StoreError> {
        let v = unzigzag(self.varint()?);
        if (min..=max).contains(&v) { Ok(v) } else { Err(self.fail(&format!("{v} out of range"))) }
    }

    /// A zigzag-encoded integer within `min..=max` (of at most 64 bits).
    fn signed64(&mut self, min: i64, max: i64) -> Result<i64, StoreError> {
        let z = self.varint64()?;
        let v = (z >> 1) as i64 ^ -((z & 1) as i64);
        if (min..=max).contains(&v) { Ok(v) } else { Err(self.fail(&format!("{v} out of range"))) }
    }

    /// A count of items of at least `min_bytes` each: no more than the bytes left could hold.
    fn count(&mut self, min_bytes: usize) -> Result<usize, StoreError> {
        let n = self.varint64()?;
        let left = (self.bytes.len() - self.pos) / min_bytes.max(1);
        usize::try_from(n).ok().filter(|n| *n <= left).ok_or_else(|| self.fail(&format!("count {n} beyond the record")))
    }

    fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let n = self.count(1)?;
        self.take(n)
    }

    fn str(&mut self) -> Result<&'a str, StoreError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| self.fail("text that is not UTF-8"))
    }

    /// One cell of column `c`.
    fn cell(&mut self, c: &ColumnDef) -> Result<Value, StoreError> {
        match self.byte()? {
            0 => return Ok(Value::Null),
            1 => {}
            other => return Err(self.fail(&format!("cell tag {other} of column '{}'", c.name))),
        }
        Ok(match c.ty {
            DataType::Boolean => match self.byte()? {
                0 => Value::Boolean(false),
                1 => Value::Boolean(true),
                _ => return Err(self.fail("a BOOLEAN that is neither 0 nor 1")),
            },
            DataType::SmallInt => Value::Int64(self.signed64(i16::MIN.into(), i16::MAX.into())?),
            DataType::Int => Value::Int64(self.signed64(i32::MIN.into(), i32::MAX.into())?),
            DataType::BigInt => Value::Int64(self.signed64(i64::MIN, i64::MAX)?),
            DataType::Timestamp => Value::Timestamp(self.signed64(i64::MIN, i64::MAX)?),
            DataType::Date => Value::Date(self.signed64(i32::MIN.into(), i32::MAX.into())? as i32),
            DataType::Float | DataType::Double => {
                let mut b = [0u8; 8];
                b.copy_from_slice(self.take(8)?);
                let f = f64::from_le_bytes(b);
                // A FLOAT holds what an f32 can (see `kalamdb_query::json::from_json`).
                Value::Float64(if c.ty == DataType::Float { f as f32 as f64 } else { f })
            }
            DataType::Decimal { precision, scale } => {
                let limit = 10i128.checked_pow(u32::from(precision)).unwrap_or(i128::MAX);
                Value::decimal(self.signed(-limit + 1, limit - 1)?, scale)
            }
            DataType::Text | DataType::CrdtText => Value::Text(self.str()?.into()),
            DataType::Json => Value::Json(self.str()?.into()),
            DataType::Bytes => Value::Bytes(self.bytes()?.into()),
            DataType::Null => return Err(self.fail(&format!("a value in column '{}' of type NULL", c.name))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn columns(defs: &[(&str, DataType)]) -> RowColumns {
        defs.iter().map(|(name, ty)| ColumnDef::new(*name, *ty, true)).collect()
    }

    fn row(v: serde_json::Value) -> Row {
        v.as_object().cloned().unwrap_or_default()
    }

    fn sub(id: &str) -> SubscriptionId {
        SubscriptionId(id.into())
    }

    /// Every column type, at the edges of its range.
    fn all_types() -> RowColumns {
        columns(&[
            ("id", DataType::Text),
            ("b", DataType::Boolean),
            ("s", DataType::SmallInt),
            ("i", DataType::Int),
            ("big", DataType::BigInt),
            ("f", DataType::Float),
            ("d", DataType::Double),
            ("dec", DataType::Decimal { precision: 38, scale: 4 }),
            ("bytes", DataType::Bytes),
            ("day", DataType::Date),
            ("ts", DataType::Timestamp),
            ("j", DataType::Json),
            ("doc", DataType::CrdtText),
        ])
    }

    fn all_type_rows() -> SubscriptionRows {
        let mut rows = SubscriptionRows::new(Some(all_types()));
        rows.put(
            "\"max\"".into(),
            &row(json!({"id": "żółw 🐢 漢字 \"q\"", "b": true, "s": 32767, "i": -2147483648_i64,
                "big": 9007199254740993_i64, "f": 1.5, "d": -1e-300, "dec": "-9999999999999999999999999999999999.9999",
                "bytes": "AAH/", "day": "1969-12-31", "ts": "1900-01-01T00:00:00.000001Z",
                "j": {"a": [1, "x"]}, "doc": "plain text"})),
        );
        rows.put(
            "\"min\"".into(),
            &row(json!({"id": "", "b": false, "s": -32768, "i": 0, "big": i64::MIN, "f": -0.0,
                "d": "inf", "dec": "0.0001", "bytes": "", "day": "9999-12-31",
                "ts": "2026-03-01T12:34:56.789012Z", "j": "text", "doc": ""})),
        );
        rows.put("\"max big\"".into(), &row(json!({"id": "m", "big": i64::MAX, "d": "NaN"})));
        rows.put("\"nulls\"".into(), &row(json!({})));
        // CRDT state does not fit a typed row: it goes as JSON.
        rows.put("\"crdt\"".into(), &row(json!({"id": "c", "doc": {"text": "hi", "state": "AQID"}})));
        // A value that does not read as its type: the row stays JSON.
        rows.put("\"bad\"".into(), &row(json!({"id": "x", "big": "not a number"})));
        rows
    }

    fn encode(id: &str, rows: &SubscriptionRows) -> Vec<u8> {
        let mut w = RecordWriter::new();
        w.put_all(&sub(id), rows, rows.keys()).unwrap();
        w.finish()
    }

    fn decode(record: &[u8], columns: Option<RowColumns>) -> Result<SubscriptionRows, StoreError> {
        let mut rows = RowsBySubscription::from_iter([(sub("s"), SubscriptionRows::new(columns))]);
        replay(record, &mut rows)?;
        Ok(rows.remove(&sub("s")).unwrap_or_default())
    }

    /// Numbers of up to 64 bits read back exactly without 128-bit arithmetic; a longer one is
    /// an error.
    #[test]
    fn numbers_of_64_bits_read_back_and_longer_ones_fail() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX >> 1, u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, u128::from(v));
            let mut r = Reader { bytes: &buf, pos: 0 };
            assert_eq!(r.varint64().unwrap(), v);
            assert_eq!(r.pos, buf.len());
        }
        for i in [0, -1, 1, i64::MIN, i64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, zigzag(i128::from(i)));
            assert_eq!(Reader { bytes: &buf, pos: 0 }.signed64(i64::MIN, i64::MAX).unwrap(), i);
        }
        let mut buf = Vec::new();
        put_varint(&mut buf, 1u128 << 64);
        assert!(Reader { bytes: &buf, pos: 0 }.varint64().is_err());
    }

    /// What compares rows with NaN: their JSON (NaN != NaN as a value).
    fn as_json(rows: &SubscriptionRows) -> Vec<(String, Row)> {
        let mut all: Vec<_> = rows.json_rows().collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Every type reads back as it was typed: BIGINT beyond 2^53, DECIMAL's 38 digits, times
    /// before 1970, multi-byte text, NULLs, NaN and -0.0, CRDT state and rows that stay JSON.
    #[test]
    fn every_type_round_trips() {
        let rows = all_type_rows();
        assert_eq!(rows.len(), 6);
        let back = decode(&encode("s", &rows), Some(all_types())).unwrap();
        assert_eq!(as_json(&back), as_json(&rows));
        for key in ["\"max\"", "\"min\"", "\"nulls\""] {
            assert_eq!(back.get(key), rows.get(key), "{key}");
        }
        let big = back.get("\"max\"").map(|r| r[4].clone());
        assert_eq!(big, Some(Value::Int64(9007199254740993)));
        assert_eq!(back.get("\"max big\"").map(|r| r[4].clone()), Some(Value::Int64(i64::MAX)));
        assert!(back.get("\"max big\"").is_some_and(|r| matches!(r[6], Value::Float64(f) if f.is_nan())));
        assert!(
            back.get("\"min\"").is_some_and(|r| matches!(r[5], Value::Float64(f) if f == 0.0 && f.is_sign_negative()))
        );
        assert!(back.has_crdt_cells("\"crdt\"") && back.get("\"bad\"").is_none() && back.contains("\"bad\""));

        // Rows of a table whose columns are not known (yet) go as JSON and stay JSON.
        let mut untyped = SubscriptionRows::new(None);
        untyped.put("1".into(), &row(json!({"id": 1, "t": "é"})));
        assert_eq!(decode(&encode("s", &untyped), None).unwrap(), untyped);
    }

    /// The operations of a commit replay in order; a put takes the typed row of the replica
    /// that applied it, or the JSON when the replica has none (deleted later in the commit).
    #[test]
    fn a_log_record_replays_its_operations_in_order() {
        let cols = columns(&[("id", DataType::BigInt), ("n", DataType::BigInt)]);
        let mut replica = SubscriptionRows::new(Some(cols.clone()));
        replica.put("1".into(), &row(json!({"id": 1, "n": 10})));
        let mut w = RecordWriter::new();
        w.put(&sub("s"), "1", &row(json!({"id": 1, "n": 10})).into(), Some(&replica)).unwrap();
        w.put(&sub("s"), "2", &row(json!({"id": 2, "n": 20})).into(), Some(&replica)).unwrap();
        w.delete(&sub("s"), "2");
        w.put(&sub("t"), "9", &row(json!({"id": 9})).into(), None).unwrap();
        w.clear(&sub("t"));
        w.put(&sub("t"), "8", &row(json!({"id": 8, "n": "8"})).into(), None).unwrap();
        let mut rows = RowsBySubscription::from_iter([
            (sub("s"), SubscriptionRows::new(Some(cols.clone()))),
            (sub("t"), SubscriptionRows::new(Some(cols.clone()))),
        ]);
        rows.get_mut(&sub("s")).unwrap().put("2".into(), &row(json!({"id": 2, "n": 0})));
        replay(&w.finish(), &mut rows).unwrap();
        let s = &rows[&sub("s")];
        assert_eq!(s.len(), 1);
        assert!(
            Arc::ptr_eq(s.columns().unwrap(), &cols)
                && s.get("1").unwrap().to_vec() == [Value::Int64(1), Value::Int64(10)]
        );
        let t = &rows[&sub("t")];
        assert_eq!(t.keys().collect::<Vec<_>>(), ["8"]);
        assert_eq!(t.get("8").unwrap().to_vec(), [Value::Int64(8), Value::Int64(8)]);
    }

    /// Rows typed to columns the subscription no longer has are carried over by name.
    #[test]
    fn rows_typed_to_old_columns_are_read_by_name() {
        let old = columns(&[("id", DataType::BigInt), ("n", DataType::Int), ("gone", DataType::Text)]);
        let mut rows = SubscriptionRows::new(Some(old));
        rows.put("1".into(), &row(json!({"id": 1, "n": 5, "gone": "x"})));
        let new = columns(&[("n", DataType::Double), ("id", DataType::BigInt), ("added", DataType::Text)]);
        let back = decode(&encode("s", &rows), Some(new.clone())).unwrap();
        assert!(Arc::ptr_eq(back.columns().unwrap(), &new));
        assert_eq!(back.get("1").unwrap().to_vec(), [Value::Float64(5.0), Value::Int64(1), Value::Null]);
    }

    /// A record cut anywhere but between two operations is an error naming the fault; cut
    /// between two operations, it holds the rows put before the cut.
    #[test]
    fn a_truncated_record_is_an_error() {
        let rows = all_type_rows();
        let mut w = RecordWriter::new();
        let mut boundaries = vec![w.len()];
        for key in rows.keys() {
            w.put_all(&sub("s"), &rows, [key]).unwrap();
            boundaries.push(w.len());
        }
        let record = w.finish();
        let mut whole = 0;
        for cut in 0..record.len() {
            match decode(&record[..cut], Some(all_types())) {
                Ok(read) => {
                    whole += 1;
                    assert_eq!(read.len(), boundaries.iter().filter(|b| **b <= cut).count() - 1, "cut at {cut}");
                }
                Err(e) => {
                    assert!(!boundaries.contains(&cut), "cut at {cut}: {e}");
                    assert!(e.0.starts_with("corrupt replica record"), "cut at {cut}: {e}");
                }
            }
        }
        // Whole operations: the empty record, the six puts but the last, and the `use` op
        // before the first.
        assert_eq!(whole, boundaries.len() - 1 + 1);
    }

    /// Bytes changed anywhere give rows or an error, never a panic; lengths and counts beyond
    /// the record, unknown versions and types are errors that say so.
    #[test]
    fn a_corrupt_record_is_an_error_not_a_panic() {
        let record = encode("s", &all_type_rows());
        for i in 0..record.len() {
            for b in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut bad = record.clone();
                bad[i] = b;
                let _ = decode(&bad, Some(all_types()));
            }
        }
        let error = |bytes: &[u8]| decode(bytes, None).err().map(|e| e.0).unwrap_or_default();
        assert!(error(b"KDR\x02").contains("format version 2 is not known"));
        assert!(error(b"JSON").contains("not a replica record"));
        assert!(error(b"KDR\x01\x02").contains("before any subscription"));
        // A string of 2^62 bytes in a 14-byte record.
        assert!(error(b"KDR\x01\x01\xff\xff\xff\xff\xff\xff\xff\xff\x3f").contains("beyond the record"));
        // A billion columns.
        assert!(error(b"KDR\x01\x01\x01s\x80\x94\xeb\xdc\x03").contains("count 1000000000 beyond the record"));
        assert!(error(b"KDR\x01\x01\x01s\x01\x01n\x04BLOB").contains("unknown column type 'BLOB'"));
        assert!(error(b"KDR\x01\x01\x01s\x01\x01n\x03INT\x02\x01k\x01\x80\x80\x80\x80\x10").contains("out of range"));
        assert!(error(b"KDR\x01\x01\x01s\x01\x01b\x07BOOLEAN\x02\x01k\x01\x02").contains("neither 0 nor 1"));
        assert!(error(b"KDR\x01\x01\x01s\x01\x01n\x03INT\x02\x01k\x07").contains("cell tag 7 of column 'n'"));
        assert!(error(b"KDR\x01\x01\x01s\x00\x09").contains("unknown operation 0x09"));
        let long = [&b"KDR\x01\x01\x01s\x01\x01n\x06BIGINT\x02\x01k\x01"[..], &[0xff; 20]].concat();
        assert!(error(&long).contains("longer than 64 bits"));
        let long = [&b"KDR\x01\x01\x01s\x01\x01n\x0dDECIMAL(38,4)\x02\x01k\x01"[..], &[0xff; 20]].concat();
        assert!(error(&long).contains("longer than 128 bits"));
    }
}
