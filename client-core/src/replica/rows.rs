//! The confirmed rows of one subscription, stored once, typed and aligned to the columns of its
//! table.
//!
//! Rows arrive as the server's JSON (a map by column name). Each is converted once, when it is
//! stored, into a [`TypedRow`]: one `kalamdb_query::Value` per column of the table, shared
//! (reference-counted) with every query, live-query step and row change that reads it, and
//! with the in-memory store. No per-row name map is kept. The rows are held in a
//! [`RowsByKey`] by primary key, which keeps a key's text only when the row's own key value
//! does not give it: a point look-up by key is one hash probe (the outbox replay and every
//! synced change look rows up by key), a scan walks a dense array in the order rows arrived (a
//! first sync in the order the server sends it), and a delete moves the last row into the
//! freed place (O(1)). Queries without ORDER BY therefore see rows in arrival order, not key
//! order; the language leaves that order unspecified.
//!
//! Two things do not fit a typed row and are kept beside it:
//! - the Yjs state of CRDT_TEXT cells (`{"text", "state"}`): queries read the text, which is in
//!   the row; the state is needed only to merge a pending edit or to show the cell;
//! - rows that cannot be typed: their table's columns are not known yet (rows that arrive
//!   before their subscription's schema), or a value does not read as its column's type. They
//!   stay JSON, are typed again when the columns change, and a query of the table reports them.

use super::rows_by_key::{RowKey, RowsByKey};
use super::{NULL, ReplicaError, TypedRow, typed_row, typed_values};
use crate::protocol::ColumnInfo;
use crate::store::{Row, RowsBySubscription, SubscriptionRecord};
use kalamdb_query::json::to_json;
use kalamdb_query::{ColumnDef, DataType};
use serde::de::DeserializeSeed;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The columns a table's rows are typed to: the table's columns, each with its type. Shared
/// by every subscription of the table.
pub type RowColumns = Arc<[ColumnDef]>;

/// The confirmed rows of one subscription (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscriptionRows {
    /// The columns `typed` rows are aligned to; `None` while they are not known.
    columns: Option<RowColumns>,
    /// The rows, by primary key, in the order they arrived.
    typed: RowsByKey,
    /// The CRDT_TEXT cells of the typed rows as the server sent them, by primary-key text:
    /// only rows of tables with such columns. (A B-tree: the wasm bundle has this map type
    /// already.)
    crdt_cells: BTreeMap<String, Row>,
    /// Rows that could not be typed, by primary-key text.
    untyped: BTreeMap<String, Row>,
}

impl SubscriptionRows {
    /// No rows; rows put later are typed to `columns`.
    pub fn new(columns: Option<RowColumns>) -> SubscriptionRows {
        SubscriptionRows { columns, ..SubscriptionRows::default() }
    }

    /// How many rows there are.
    pub fn len(&self) -> usize {
        self.typed.len() + self.untyped.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the row `key` is here.
    pub fn contains(&self, key: &str) -> bool {
        self.contains_key(RowKey::of_text(key))
    }

    /// Whether the row `key` is here: [`Self::contains`] for a key a scan gave.
    pub fn contains_key(&self, key: RowKey<'_>) -> bool {
        self.typed.get(key).is_some() || (!self.untyped.is_empty() && self.untyped.contains_key(key.text().as_ref()))
    }

    /// The typed row `key`, if it is here and typed.
    pub fn get(&self, key: &str) -> Option<&TypedRow> {
        self.typed.get(RowKey::of_text(key))
    }

    /// Makes room for `additional` more typed rows: a store that knows how many rows it is
    /// about to load saves the index's growth (copies, and memory that stays allocated). Exact:
    /// the rows' array gets no more room than asked for.
    pub fn reserve(&mut self, additional: usize) {
        self.typed.reserve_exact(additional);
    }

    /// The columns the rows are typed to, if they are known.
    pub fn columns(&self) -> Option<&RowColumns> {
        self.columns.as_ref()
    }

    /// The primary-key text of every row: the typed rows in the order they arrived, then the
    /// rows that stay JSON.
    pub fn keys(&self) -> impl Iterator<Item = Cow<'_, str>> {
        self.typed.iter().map(|(key, _)| key.text()).chain(self.untyped.keys().map(|key| Cow::Borrowed(key.as_str())))
    }

    /// Whether the row `key` has CRDT_TEXT cells with their state, which its typed row lacks.
    pub fn has_crdt_cells(&self, key: &str) -> bool {
        self.crdt_cells.contains_key(key)
    }

    /// Stores `row`, typed to [`Self::columns`] already (a store read it so), under `key`,
    /// replacing the row there.
    pub(crate) fn put_typed(&mut self, key: &str, row: TypedRow) {
        if !self.crdt_cells.is_empty() {
            self.crdt_cells.remove(key);
        }
        if !self.untyped.is_empty() {
            self.untyped.remove(key);
        }
        self.typed.insert(key, row);
    }

    /// Stores `row` as [`Self::put_typed`] does, when `key` (the bytes of the key's text) is
    /// the JSON of the row's own primary-key value and the subscription has no rows beside the
    /// typed ones; else gives the row back (then the caller reads the key's text and puts the
    /// row with it). What a store's load does for each row: no key text is checked or made.
    /// With `append`, for a key that no row has yet (a store's compacted chunk holds each key
    /// once), the row is added last and indexed by key later, with the others added so, by
    /// [`Self::index_appended`] or the next change; look-ups by key find it meanwhile, more
    /// slowly, and a key that was there after all gets the result of a put.
    pub(crate) fn put_typed_own_key(&mut self, key: &[u8], row: TypedRow, append: bool) -> Result<(), TypedRow> {
        if !self.crdt_cells.is_empty() || !self.untyped.is_empty() {
            return Err(row);
        }
        self.typed.insert_own_key(key, row, append)
    }

    /// The typed rows with their primary keys, in the order they arrived.
    pub fn typed(&self) -> impl Iterator<Item = (RowKey<'_>, &TypedRow)> {
        self.typed.iter()
    }

    /// Indexes by key the rows a store's load appended (see `store::binary::replay_chunk`):
    /// all at once, filling the key index front to back, which is faster than a probe at a
    /// random place per row.
    pub fn index_appended(&mut self) {
        self.typed.index_appended();
    }

    /// The typed rows, in the order they arrived.
    pub fn typed_rows(&self) -> impl Iterator<Item = &TypedRow> {
        self.typed.rows()
    }

    /// Stores `row` (the server's JSON) under `key`, replacing the row there. The row is read,
    /// not kept (unless it cannot be typed).
    pub fn put(&mut self, key: String, row: &Row) {
        let Some(columns) = &self.columns else {
            self.untyped.insert(key, row.clone());
            return;
        };
        let columns = Arc::clone(columns);
        self.put_aligned(key, &|i| row.get(&columns[i].name).unwrap_or(&NULL), || row.clone());
    }

    /// Stores the row whose value of the `i`th column rows are typed to is `value(i)`; `row`
    /// makes it as JSON by column name, if it must stay JSON (the columns are not known, or a
    /// value does not read as its column's type).
    fn put_aligned<'v>(&mut self, key: String, value: &dyn Fn(usize) -> &'v Value, row: impl FnOnce() -> Row) {
        let Some(columns) = self.columns.clone() else {
            self.untyped.insert(key, row());
            return;
        };
        let typed = match typed_values("", &columns, value) {
            Ok(typed) => typed,
            Err(_) => {
                self.remove(&key);
                self.untyped.insert(key, row());
                return;
            }
        };
        let mut cells = Row::new();
        for (i, c) in columns.iter().enumerate() {
            if c.ty == DataType::CrdtText && value(i).is_object() {
                cells.insert(c.name.clone(), value(i).clone());
            }
        }
        if !cells.is_empty() {
            self.crdt_cells.insert(key.clone(), cells);
        } else if !self.crdt_cells.is_empty() {
            self.crdt_cells.remove(&key);
        }
        if !self.untyped.is_empty() {
            self.untyped.remove(&key);
        }
        self.typed.insert(&key, typed);
    }

    /// Reads one row object from a deserializer and puts it under `key`, typed as it is read
    /// (see [`Self::put_json_text`]): for stores that keep rows in JSON of their own shape.
    pub fn put_seed(&mut self, key: String) -> de::RowSeed<'_> {
        de::RowSeed { rows: self, key }
    }

    /// Puts every row of `text`, rows as a store keeps them in JSON text:
    /// `[[key, {column: value, ...}], ...]`. Each row is typed as it is read, without making
    /// a map of it, which is most of the cost of loading a large replica.
    pub fn put_json_text(&mut self, text: &str) -> Result<(), serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        de::Rows(self).deserialize(&mut de)?;
        de.end()
    }

    /// Stores `row` under `key` like [`Self::put`], sharing the typed row `replica` holds under
    /// that key when it is typed to the same columns, instead of typing it again: `replica` are
    /// the rows of this subscription in a replica that applied this put (and possibly later
    /// changes to the row, which follow here too). So a store in memory and the replica hold
    /// one copy of each row.
    pub fn put_shared(&mut self, key: String, row: &Row, replica: &SubscriptionRows) {
        let same_columns = match (&self.columns, &replica.columns) {
            (Some(ours), Some(theirs)) => Arc::ptr_eq(ours, theirs) || ours == theirs,
            _ => false,
        };
        let Some(typed) = replica.get(&key).filter(|_| same_columns) else {
            return self.put(key, row);
        };
        match replica.crdt_cells.get(&key) {
            Some(cells) => self.crdt_cells.insert(key.clone(), cells.clone()),
            None => self.crdt_cells.remove(&key),
        };
        self.untyped.remove(&key);
        self.typed.insert(&key, Arc::clone(typed));
    }

    /// Removes the row `key`, if any.
    pub fn remove(&mut self, key: &str) {
        self.typed.swap_remove(RowKey::of_text(key));
        self.crdt_cells.remove(key);
        self.untyped.remove(key);
    }

    /// Removes every row.
    pub fn clear(&mut self) {
        *self = SubscriptionRows::new(self.columns.take());
    }

    /// The row `key` as the server sent it (JSON by column name): the columns the rows are
    /// typed to, CRDT_TEXT cells with their state. Made from the typed row.
    pub fn json_row(&self, key: &str) -> Option<Cow<'_, Row>> {
        if let Some(row) = self.untyped.get(key) {
            return Some(Cow::Borrowed(row));
        }
        let (columns, typed) = (self.columns.as_ref()?, self.get(key)?);
        Some(Cow::Owned(self.to_json(columns, key, typed)))
    }

    /// Every row as [`Self::json_row`] gives it, with its key.
    pub fn json_rows(&self) -> impl Iterator<Item = (String, Row)> + '_ {
        let typed = self.columns.iter().flat_map(move |columns| {
            self.typed.iter().map(move |(key, row)| {
                let key = key.text().into_owned();
                let json = self.to_json(columns, &key, row);
                (key, json)
            })
        });
        typed.chain(self.untyped.iter().map(|(key, row)| (key.clone(), row.clone())))
    }

    fn to_json(&self, columns: &[ColumnDef], key: &str, row: &[kalamdb_query::Value]) -> Row {
        let cells = self.crdt_cells.get(key);
        // Inserted one by one: collecting into a map costs the wasm bundle a sort per call site.
        let mut json = Row::new();
        for (c, v) in columns.iter().zip(row) {
            let cell = cells.and_then(|cells| cells.get(&c.name)).cloned();
            json.insert(c.name.clone(), cell.unwrap_or_else(|| to_json(v, c.ty)));
        }
        json
    }

    /// Types the rows to `columns` instead (the table's columns changed): each row is read
    /// back as JSON and typed again, so values keep their column by name.
    pub fn set_columns(&mut self, columns: Option<RowColumns>) {
        if self.columns == columns {
            self.columns = columns;
            return;
        }
        let rows: Vec<(String, Row)> = self.json_rows().collect();
        *self = SubscriptionRows::new(columns);
        for (key, row) in rows {
            self.put(key, &row);
        }
    }

    /// Fails with the reason the first untyped row cannot be read, if there is one.
    pub(crate) fn check_readable(&self, table: &str) -> Result<(), ReplicaError> {
        let Some((_, row)) = self.untyped.iter().next() else { return Ok(()) };
        match &self.columns {
            None => Err(ReplicaError::SchemaPending(table.to_string())),
            Some(columns) => typed_row(table, row, columns).map(|_| ()),
        }
    }
}

/// The columns of a table whose subscriptions have these schemas (in subscription id order).
/// Several subscriptions on one table may select different columns: the table has their union,
/// in the order of the widest schema (a `SELECT *` subscription gives the table's own order),
/// then the columns only the others have, in subscription id order. A column keeps the type of
/// the schema that contributed it. Empty when no schema is known yet.
pub(crate) fn union_columns<'a>(schemas: &[&'a [ColumnInfo]]) -> Vec<&'a ColumnInfo> {
    // The first of the widest.
    let Some(widest) = schemas.iter().enumerate().max_by_key(|(i, s)| (s.len(), std::cmp::Reverse(*i))) else {
        return Vec::new();
    };
    let mut columns: Vec<&ColumnInfo> = Vec::new();
    for c in std::iter::once(*widest.1).chain(schemas.iter().copied()).flatten() {
        if !columns.iter().any(|known| known.name == c.name) {
            columns.push(c);
        }
    }
    columns
}

/// `columns` with their types, as rows are typed to them: `None` when there are none yet or
/// one has a type this client does not know (its rows stay JSON; queries report the type).
fn row_columns(columns: &[&ColumnInfo]) -> Option<RowColumns> {
    if columns.is_empty() {
        return None;
    }
    columns.iter().map(|c| Some(ColumnDef::new(c.name.clone(), c.data_type.parse().ok()?, true))).collect()
}

/// Whether rows typed to `stored` read as rows of `columns` (same names and types, in order).
pub(crate) fn same_columns(stored: &[ColumnDef], columns: &[ColumnDef]) -> bool {
    stored.len() == columns.len() && stored.iter().zip(columns).all(|(a, b)| a.name == b.name && a.ty == b.ty)
}

/// The columns rows of `table` are typed to, from the records of the subscriptions (given in
/// subscription id order): the union of their schemas ([`union_columns`]) with their types.
pub fn table_row_columns<'a>(
    records: impl IntoIterator<Item = &'a SubscriptionRecord>,
    table: &str,
) -> Option<RowColumns> {
    let schemas: Vec<&[ColumnInfo]> =
        records.into_iter().filter(|r| r.table == table).map(|r| r.schema.as_slice()).collect();
    row_columns(&union_columns(&schemas))
}

/// Empty rows for each subscription of `records` (in subscription id order), typed to its
/// table's columns as the replica types them: what a store fills while it loads, so that rows
/// are typed as they are read.
pub fn empty_rows_of(records: &[&SubscriptionRecord]) -> RowsBySubscription {
    // A list, not a map: a few tables, and each map type costs the wasm bundle KBs.
    let mut by_table: Vec<(&str, Option<RowColumns>)> = Vec::new();
    let mut rows = RowsBySubscription::new();
    for rec in records {
        let columns = match by_table.iter().find(|(t, _)| *t == rec.table) {
            Some((_, columns)) => columns.clone(),
            None => {
                let columns = table_row_columns(records.iter().copied(), &rec.table);
                by_table.push((&rec.table, columns.clone()));
                columns
            }
        };
        rows.insert(rec.id.clone(), SubscriptionRows::new(columns));
    }
    rows
}

/// A CRDT_TEXT cell's text, as queries read it.
pub(crate) fn crdt_text(cell: &Value) -> &Value {
    match cell {
        Value::Object(doc) => doc.get("text").unwrap_or(&Value::Null),
        other => other,
    }
}

/// Reading rows from JSON text straight into [`SubscriptionRows`] (see
/// [`SubscriptionRows::put_json_text`] and [`SubscriptionRows::put_seed`]).
pub(super) mod de {
    use super::{NULL, SubscriptionRows};
    use crate::store::Row;
    use serde::Deserialize;
    use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
    use serde_json::Value;
    use std::fmt;

    /// `[[key, row], ...]`, each put into the rows.
    pub(super) struct Rows<'a>(pub(super) &'a mut SubscriptionRows);

    impl<'de> DeserializeSeed<'de> for Rows<'_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for Rows<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of [key, row] pairs")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Entry(&mut *self.0))?.is_some() {}
            Ok(())
        }
    }

    /// One `[key, row]`.
    struct Entry<'a>(&'a mut SubscriptionRows);

    impl<'de> DeserializeSeed<'de> for Entry<'_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for Entry<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a [key, row] pair")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let key: String = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
            seq.next_element_seed(RowSeed { rows: self.0, key })?
                .ok_or_else(|| de::Error::invalid_length(1, &"a [key, row] pair"))
        }
    }

    /// One row object, put under `key` (see [`SubscriptionRows::put_seed`]).
    pub struct RowSeed<'a> {
        pub(super) rows: &'a mut SubscriptionRows,
        pub(super) key: String,
    }

    impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            let RowSeed { rows, key } = self;
            let Some(columns) = rows.columns.clone() else {
                let row = Row::deserialize(d)?;
                rows.put(key, &row);
                return Ok(());
            };
            let aligned = Aligned(rows).deserialize(d)?;
            // The row as it was stored, should it stay JSON.
            let row = || {
                let mut row = Row::new();
                for (c, v) in columns.iter().zip(&aligned.values) {
                    if let Some(v) = v {
                        row.insert(c.name.clone(), v.clone());
                    }
                }
                for (name, v) in &aligned.others {
                    row.insert(name.clone(), v.clone());
                }
                row
            };
            rows.put_aligned(key, &|i| aligned.values[i].as_ref().unwrap_or(&NULL), row);
            Ok(())
        }
    }

    /// A row object's members: the value of each column rows are typed to (`None`: absent),
    /// and the other members.
    struct AlignedRow {
        values: Vec<Option<Value>>,
        others: Vec<(String, Value)>,
    }

    /// A row object read as an [`AlignedRow`].
    struct Aligned<'a>(&'a SubscriptionRows);

    impl<'de> DeserializeSeed<'de> for Aligned<'_> {
        type Value = AlignedRow;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<AlignedRow, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Aligned<'_> {
        type Value = AlignedRow;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a row object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AlignedRow, A::Error> {
            let columns = self.0.columns.as_deref().unwrap_or_default();
            let mut row = AlignedRow { values: vec![None; columns.len()], others: Vec::new() };
            while let Some(member) = map.next_key_seed(ColumnIndex(columns))? {
                match member {
                    Ok(i) => row.values[i] = Some(map.next_value()?),
                    Err(name) => row.others.push((name, map.next_value()?)),
                }
            }
            Ok(row)
        }
    }

    /// A member name read as the index of its column, or as itself if it names none.
    struct ColumnIndex<'a>(&'a [kalamdb_query::ColumnDef]);

    impl<'de> DeserializeSeed<'de> for ColumnIndex<'_> {
        type Value = Result<usize, String>;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl<'de> Visitor<'de> for ColumnIndex<'_> {
        type Value = Result<usize, String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a column name")
        }
        fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
            Ok(self.0.iter().position(|c| c.name == name).ok_or_else(|| name.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kalamdb_query::Value as Typed;
    use serde_json::json;

    fn columns(defs: &[(&str, DataType)]) -> Option<RowColumns> {
        Some(defs.iter().map(|(name, ty)| ColumnDef::new(*name, *ty, true)).collect())
    }

    fn row(v: Value) -> Row {
        v.as_object().unwrap().clone()
    }

    /// Look-ups go by key through the hash index, which stays right while deletes move the
    /// last row into the place of the deleted one.
    #[test]
    fn rows_are_found_by_key_after_deletes_move_others() {
        let mut rows = SubscriptionRows::new(columns(&[("id", DataType::BigInt), ("n", DataType::BigInt)]));
        for i in 0..1000 {
            rows.put(i.to_string(), &row(json!({"id": i, "n": i * 10})));
        }
        for i in (0..1000).step_by(3) {
            rows.remove(&i.to_string());
        }
        assert_eq!(rows.len(), 666);
        for i in 0..1000 {
            let found = rows.get(&i.to_string()).map(|r| r.to_vec());
            let expected = (i % 3 != 0).then(|| vec![Typed::Int64(i), Typed::Int64(i * 10)]);
            assert_eq!(found, expected, "key {i}");
        }
        // Scans see each remaining row once.
        assert_eq!(rows.typed().count(), 666);
    }

    /// A row is typed once, to the table's columns (a column the row lacks is NULL), and reads
    /// back as the server's JSON; a CRDT_TEXT cell reads as its text and keeps its state.
    #[test]
    fn a_typed_row_reads_back_as_json_with_its_crdt_state() {
        let defs = [
            ("id", DataType::Text),
            ("price", DataType::Decimal { precision: 10, scale: 2 }),
            ("doc", DataType::CrdtText),
            ("note", DataType::Text),
        ];
        let mut rows = SubscriptionRows::new(columns(&defs));
        let doc = json!({"text": "hello", "state": "AQID"});
        rows.put("\"a\"".into(), &row(json!({"id": "a", "price": "9.50", "doc": doc})));
        let typed = rows.get("\"a\"").unwrap();
        let price = Typed::decimal(950, 2);
        assert_eq!(typed.to_vec(), vec![Typed::Text("a".into()), price, Typed::Text("hello".into()), Typed::Null]);
        let json = rows.json_row("\"a\"").unwrap().into_owned();
        assert_eq!(json, row(json!({"id": "a", "price": "9.50", "doc": doc, "note": null})));
        rows.put("\"a\"".into(), &row(json!({"id": "a", "doc": "plain"})));
        assert_eq!(rows.json_row("\"a\"").unwrap()["doc"], json!("plain"), "the old state went with the old row");
    }

    /// Rows that arrive before their table's columns are known stay JSON, make reads report
    /// the schema as pending, and are typed once the columns arrive; a value that does not
    /// read as its column's type is reported by name.
    #[test]
    fn rows_without_columns_or_with_bad_values_stay_json_until_they_read() {
        let mut rows = SubscriptionRows::new(None);
        rows.put("1".into(), &row(json!({"id": 1, "n": "7"})));
        assert!(rows.get("1").is_none() && rows.contains("1"));
        assert_eq!(rows.check_readable("app.t"), Err(ReplicaError::SchemaPending("app.t".into())));
        rows.set_columns(columns(&[("id", DataType::BigInt), ("n", DataType::BigInt)]));
        assert_eq!(rows.get("1").unwrap().to_vec(), vec![Typed::Int64(1), Typed::Int64(7)]);
        assert_eq!(rows.check_readable("app.t"), Ok(()));

        rows.put("2".into(), &row(json!({"id": 2, "n": "seven"})));
        assert!(matches!(rows.check_readable("app.t"), Err(ReplicaError::BadValue { column, .. }) if column == "n"));
        rows.put("2".into(), &row(json!({"id": 2, "n": 8})));
        assert_eq!(rows.check_readable("app.t"), Ok(()));
        assert_eq!(rows.len(), 2);
    }

    /// A store that puts a row the replica applied takes the replica's typed row (one copy),
    /// unless the two type rows to different columns.
    #[test]
    fn a_put_shares_the_replicas_row_when_the_columns_agree() {
        let cols = columns(&[("id", DataType::BigInt), ("n", DataType::BigInt)]);
        let mut replica = SubscriptionRows::new(cols.clone());
        replica.put("1".into(), &row(json!({"id": 1, "n": 2})));
        let mut store = SubscriptionRows::new(cols);
        store.put_shared("1".into(), &row(json!({"id": 1, "n": 2})), &replica);
        assert!(Arc::ptr_eq(store.get("1").unwrap(), replica.get("1").unwrap()));

        let mut other = SubscriptionRows::new(columns(&[("id", DataType::BigInt), ("n", DataType::Double)]));
        other.put_shared("1".into(), &row(json!({"id": 1, "n": 2})), &replica);
        assert_eq!(other.get("1").unwrap().to_vec(), vec![Typed::Int64(1), Typed::Float64(2.0)]);
    }

    /// Rows read from a store's JSON text are the rows `put` makes of the parsed rows: other
    /// members skipped, absent columns NULL, escaped names, CRDT state, values that do not read
    /// and rows of unknown columns kept as JSON.
    #[test]
    fn rows_read_from_json_text_are_the_rows_put_makes() {
        let text = r#"[["1", {"id": 1, "doc": {"text": "t", "state": "AQ=="}, "extra": [1, {"a": 2}]}],
                      ["2", {"i\u0064": 2, "n": 5}],
                      ["3", {"id": 3, "n": "five"}]]"#;
        let defs = columns(&[("id", DataType::BigInt), ("n", DataType::BigInt), ("doc", DataType::CrdtText)]);
        let parsed: Vec<(String, Row)> = serde_json::from_str(text).unwrap();
        for defs in [defs, None] {
            let mut read = SubscriptionRows::new(defs.clone());
            read.put_json_text(text).unwrap();
            let mut put = SubscriptionRows::new(defs);
            for (key, row) in &parsed {
                put.put(key.clone(), row);
            }
            assert_eq!(read, put);
            assert_eq!(read.len(), 3);
        }
        assert!(SubscriptionRows::default().put_json_text("[[1, {}]]").is_err(), "keys are text");
    }
}
