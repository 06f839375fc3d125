//! A subscription's typed rows by primary key, each key stored once.
//!
//! Rows are keyed by the primary key's JSON text (`"abc"`, `42`, or `"42"` for an integer the
//! server sent as a string). That text is nearly always the JSON of a value the row holds
//! itself, its key column's: then the row keeps no copy of it, and the index hashes and
//! compares the key as that value (a [`RowKey`]), so a look-up by key text allocates nothing.
//! A row whose key text is not its own value's JSON (a key sent in another form, text with
//! characters JSON escapes, a key of another type) keeps its text. On 1,000,000 rows with a
//! UUID key that saves one allocation of ~40 bytes per row.
//!
//! Rows are in a dense array, in the order they arrived, and a hash table of positions into it,
//! each with its key's hash (see [`Slot`]): a look-up is one probe, a scan walks the array, and
//! a delete moves the last row into the freed place (O(1)). Hashing is `foldhash`'s: hashing
//! each key is part of the per-row cost of loading a large replica, and it is several times
//! faster than std's SipHash on short keys.

use super::TypedRow;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use kalamdb_query::Value;
use std::borrow::Cow;
use std::hash::BuildHasher;

/// A primary key as rows are indexed by it: the key's JSON text read as an integer or a
/// string when it is the plain JSON of one, else the text itself. Two key texts are equal
/// exactly when their `RowKey`s are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RowKey<'a> {
    /// An integer key, sent as a JSON number (its text is the number's canonical digits).
    Int(i64),
    /// A text key with no character JSON escapes (its text is the string in quotes).
    Text(&'a str),
    /// Any other key text.
    Other(&'a str),
}

impl<'a> RowKey<'a> {
    /// The key whose JSON text is `text`.
    pub fn of_text(text: &'a str) -> RowKey<'a> {
        if let Some(i) = canonical_int(text) {
            return RowKey::Int(i);
        }
        match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            Some(inner) if is_plain(inner) => RowKey::Text(inner),
            _ => RowKey::Other(text),
        }
    }

    /// The key's JSON text.
    pub fn text(&self) -> Cow<'a, str> {
        match *self {
            RowKey::Int(i) => Cow::Owned(i.to_string()),
            RowKey::Text(s) => Cow::Owned(format!("\"{s}\"")),
            RowKey::Other(text) => Cow::Borrowed(text),
        }
    }
}

/// `text` as an `i64` if it is one written as JSON writes it: digits without a plus
/// sign or leading zeros, `-` only before a non-zero number.
fn canonical_int(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = match digits.as_bytes() {
        [] => false,
        [b'0'] => digits.len() == text.len(),
        [first, rest @ ..] => first.is_ascii_digit() && *first != b'0' && rest.iter().all(u8::is_ascii_digit),
    };
    canonical.then(|| text.parse().ok()).flatten()
}

/// Whether `key` is `s` in quotes.
fn is_quoted(key: &[u8], s: &str) -> bool {
    key.len() == s.len() + 2
        && key.first() == Some(&b'"')
        && key.last() == Some(&b'"')
        && &key[1..key.len() - 1] == s.as_bytes()
}

/// Whether JSON writes `s` in quotes as it is (no `"`, `\` or control character to escape).
fn is_plain(s: &str) -> bool {
    !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

/// Typed rows by primary key (see the module documentation).
#[derive(Debug, Clone, Default)]
pub(crate) struct RowsByKey {
    /// The rows in the order they arrived.
    rows: Vec<KeyedRow>,
    /// Positions in `rows`, by the hash of their key.
    index: HashTable<Slot>,
    /// The column whose value gives the key, found from the first row that has one: the
    /// column whose value's JSON is that row's key.
    key_column: Option<usize>,
    hasher: foldhash::fast::RandomState,
    /// The key hashes of the rows at the end of `rows` that are not in `index` yet, in their
    /// order (see [`RowsByKey::insert_own_key`]).
    appended: Vec<u32>,
}

#[derive(Debug, Clone)]
struct KeyedRow {
    row: TypedRow,
    /// The key's text, when it is not the JSON of the row's value in the key column.
    key: Option<Box<str>>,
    /// The key's hash, where the table's entry has no room for it (see [`Slot`]).
    #[cfg(not(target_pointer_width = "64"))]
    hash: u32,
}

/// An entry of the hash table: the position of a row in the array and the 32-bit hash of its
/// key, kept so that the table's growth does not read every row's key again (a pointer chase
/// to the row and another to its text, per row), and a probe tells keys apart by hash before
/// it reads a row.
///
/// Natively an entry is 8 bytes, like the `usize` it replaces, and holds both: growing the
/// table and probing it read no rows, and a row is 24 bytes instead of 32. (Positions are
/// below 2^32: 4 billion rows would not fit in memory.) In wasm32 a `usize` is 4 bytes and
/// holds the position alone; the hash stays with the row, since 8-byte entries (a table has
/// up to two per row) would cost more memory than the row saves.
#[cfg(target_pointer_width = "64")]
#[derive(Debug, Clone, Copy)]
struct Slot(u64);

#[cfg(target_pointer_width = "64")]
impl Slot {
    fn new(pos: usize, hash: u32) -> Slot {
        debug_assert!(pos <= u32::MAX as usize, "a position takes the low 32 bits");
        Slot(u64::from(hash) << 32 | pos as u64)
    }

    fn pos(self) -> usize {
        self.0 as u32 as usize
    }

    fn hash(self, _rows: &[KeyedRow]) -> u32 {
        (self.0 >> 32) as u32
    }
}

#[cfg(not(target_pointer_width = "64"))]
#[derive(Debug, Clone, Copy)]
struct Slot(usize);

#[cfg(not(target_pointer_width = "64"))]
impl Slot {
    fn new(pos: usize, _hash: u32) -> Slot {
        Slot(pos)
    }

    fn pos(self) -> usize {
        self.0
    }

    fn hash(self, rows: &[KeyedRow]) -> u32 {
        rows[self.0].hash
    }
}

impl RowsByKey {
    /// How many rows there are.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Makes room for exactly `additional` more rows.
    /// Rows appended but not indexed yet count as rows: the index is made with room for them
    /// and `additional` more when they are indexed.
    pub(crate) fn reserve_exact(&mut self, additional: usize) {
        self.rows.reserve_exact(additional);
        let rows = &self.rows;
        self.index.reserve(additional + self.appended.len(), rehash(rows));
    }

    /// The row under `key`.
    pub(crate) fn get(&self, key: RowKey<'_>) -> Option<&TypedRow> {
        self.position(key).map(|i| &self.rows[i].row)
    }

    /// Every row with its key, in the order they arrived.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (RowKey<'_>, &TypedRow)> {
        self.rows.iter().map(|r| (key_of(r, self.key_column), &r.row))
    }

    /// Every row, in the order they arrived.
    pub(crate) fn rows(&self) -> impl Iterator<Item = &TypedRow> {
        self.rows.iter().map(|r| &r.row)
    }

    /// Puts `row` under the key whose text is `key`, in the place of the row there if any.
    pub(crate) fn insert(&mut self, key: &str, row: TypedRow) {
        self.index_appended();
        let form = RowKey::of_text(key);
        if self.key_column.is_none() {
            self.key_column = row.iter().position(|v| is_key(v, form));
        }
        let derived = self.key_column.and_then(|c| row.get(c)).is_some_and(|v| is_key(v, form));
        let hash = self.hash(form);
        self.place(
            hash,
            KeyedRow {
                row,
                key: (!derived).then(|| key.into()),
                #[cfg(not(target_pointer_width = "64"))]
                hash,
            },
        );
    }

    /// Puts `row` as [`Self::insert`] does, when `key` (a key text's bytes, as a stored
    /// record holds them) is the JSON of the row's own value in the key column, which is the
    /// case for nearly every row; else gives the row back. A load takes this path first: the
    /// key is compared with the row's value byte for byte, with no UTF-8 check of the key and
    /// no reading of its form (a 1,000,000-row replica loads that many keys).
    ///
    /// With `append`, for a key known to be new (a compacted chunk of a store holds each key
    /// once), the row is added last and left out of the index for now: the rows appended so
    /// are indexed together, by the next call that needs the index or by
    /// [`Self::index_appended`], in the order of the table's buckets rather than at random
    /// places (on 1,000,000 rows the random probes were the key index's largest cost). A key
    /// that was not new after all is found then, and the rows are indexed again one by one,
    /// with the result [`Self::insert`] gives.
    pub(crate) fn insert_own_key(&mut self, key: &[u8], row: TypedRow, append: bool) -> Result<(), TypedRow> {
        if !append {
            self.index_appended();
        }
        let Some(form) = self.own_key(key, &row) else { return Err(row) };
        let hash = self.hash(form);
        let keyed = KeyedRow {
            row,
            key: None,
            #[cfg(not(target_pointer_width = "64"))]
            hash,
        };
        if append {
            self.rows.push(keyed);
            self.appended.push(hash);
        } else {
            self.place(hash, keyed);
        }
        Ok(())
    }

    /// The key `key` (a key text's bytes) if it is the JSON of the row's own value in the key
    /// column.
    fn own_key<'r>(&self, key: &[u8], row: &'r TypedRow) -> Option<RowKey<'r>> {
        match self.key_column.and_then(|c| row.get(c)) {
            Some(Value::Text(s)) if is_quoted(key, s) && is_plain(s) => Some(RowKey::Text(s)),
            Some(Value::Int64(i)) if std::str::from_utf8(key).ok().and_then(canonical_int) == Some(*i) => {
                Some(RowKey::Int(*i))
            }
            _ => None,
        }
    }

    /// Puts the rows [`Self::insert_own_key`] appended added into the index. They are taken in the
    /// order of the buckets their probes start at (a counting sort into groups of neighbouring
    /// buckets), so that the table is filled front to back instead of at a random place per
    /// row.
    pub(crate) fn index_appended(&mut self) {
        if self.appended.is_empty() {
            return;
        }
        let hashes = std::mem::take(&mut self.appended);
        let start = self.rows.len() - hashes.len();
        let Self { rows, index, key_column, .. } = self;
        index.reserve(hashes.len(), rehash(rows));
        // The table probes from `hash & (buckets - 1)`; its capacity is 7/8 of its buckets.
        let buckets = (index.capacity() / 7 * 8).next_power_of_two();
        // Up to 4,096 groups: a group's buckets then span a few KB of the table at 1,000,000
        // rows, which stay in the cache while its rows go in.
        let shift = buckets.trailing_zeros().saturating_sub(12);
        let group = |hash: u32| (hash as usize & (buckets - 1)) >> shift;
        let mut ends = vec![0usize; (buckets >> shift) + 1];
        for &hash in &hashes {
            ends[group(hash) + 1] += 1;
        }
        for g in 1..ends.len() {
            ends[g] += ends[g - 1];
        }
        // Each row's hash and its place among the appended rows, by group.
        let mut order = vec![0u64; hashes.len()];
        for (i, &hash) in hashes.iter().enumerate() {
            let at = &mut ends[group(hash)];
            order[*at] = u64::from(hash) << 32 | i as u64;
            *at += 1;
        }
        drop(hashes);
        let column = *key_column;
        for entry in order {
            let (hash, pos) = ((entry >> 32) as u32, start + entry as u32 as usize);
            // The row's key is read only when an entry's hash is the same: reading it for
            // every row, in bucket order, is a random read of the rows (it took longer than
            // the random probes saved).
            match entry_of(index, rows, column, hash, &rows[pos]) {
                Entry::Vacant(place) => {
                    place.insert(Slot::new(pos, hash));
                }
                // A key that was there already: index every row again, in order.
                Entry::Occupied(_) => return self.reindex(),
            }
        }
    }

    /// Indexes every row again, one by one in the order of the array, a later row with the
    /// key of an earlier one taking its place.
    fn reindex(&mut self) {
        let rows = std::mem::take(&mut self.rows);
        self.index.clear();
        self.appended.clear();
        self.rows.reserve_exact(rows.len());
        for keyed in rows {
            let hash = self.hash(key_of(&keyed, self.key_column));
            self.place(hash, keyed);
        }
    }

    /// Puts `keyed`, whose key hashes to `hash`, in the place of the row under the same key
    /// if any, else last.
    fn place(&mut self, hash: u32, keyed: KeyedRow) {
        let Self { rows, index, key_column, .. } = self;
        let column = *key_column;
        // One probe finds the row's place or where a new one goes.
        let place = entry_of(index, rows, column, hash, &keyed);
        match place {
            Entry::Occupied(place) => rows[place.get().pos()] = keyed,
            Entry::Vacant(place) => {
                place.insert(Slot::new(rows.len(), hash));
                rows.push(keyed);
            }
        }
    }

    /// Removes the row under `key` and returns it; the last row takes its place.
    pub(crate) fn swap_remove(&mut self, key: RowKey<'_>) -> Option<TypedRow> {
        self.index_appended();
        let hash = self.hash(key);
        let Self { rows, index, key_column, hasher, .. } = self;
        let found = index.find_entry(table_hash(hash), |&slot| has_key(rows, slot, *key_column, hash, key)).ok()?;
        let place = found.remove().0.pos();
        let last = rows.len() - 1;
        if place != last {
            // The last row moves into the freed place: its entry is found by its key's hash.
            let moved = hasher.hash_one(key_of(&rows[last], *key_column)) as u32;
            if let Some(slot) = index.find_mut(table_hash(moved), |slot| slot.pos() == last) {
                *slot = Slot::new(place, moved);
            }
        }
        Some(rows.swap_remove(place).row)
    }

    fn position(&self, key: RowKey<'_>) -> Option<usize> {
        // Rows appended and not indexed yet (a load indexes them before anything looks up):
        // looked through, the latest first, as a later row under a key replaces an earlier one.
        if !self.appended.is_empty() {
            let start = self.rows.len() - self.appended.len();
            let found = (start..self.rows.len()).rev().find(|&i| key_of(&self.rows[i], self.key_column) == key);
            if found.is_some() {
                return found;
            }
        }
        let hash = self.hash(key);
        let found = self.index.find(table_hash(hash), |&slot| has_key(&self.rows, slot, self.key_column, hash, key));
        found.map(|slot| slot.pos())
    }

    fn hash(&self, key: RowKey<'_>) -> u32 {
        self.hasher.hash_one(key) as u32
    }
}

/// How the table rehashes its entries when it grows. One function for every call, so that
/// the table's code is instantiated once in the wasm module.
fn rehash(rows: &[KeyedRow]) -> impl Fn(&Slot) -> u64 + '_ {
    move |slot| table_hash(slot.hash(rows))
}

/// The entry of `index` for the row `keyed` (in `rows` or to be added), whose key hashes to
/// `hash`: the entry of the row with the same key, or the place for a new one. `keyed`'s key
/// is read only when an entry's hash is the same.
fn entry_of<'t>(
    index: &'t mut HashTable<Slot>,
    rows: &[KeyedRow],
    column: Option<usize>,
    hash: u32,
    keyed: &KeyedRow,
) -> Entry<'t, Slot> {
    index.entry(table_hash(hash), |&slot| has_key(rows, slot, column, hash, key_of(keyed, column)), rehash(rows))
}

/// The hash the table places a row by, from the 32 bits a row keeps: the table takes a row's
/// bucket from the low bits and a tag from the top seven (of 32 on wasm32, of 64 natively), so
/// the 32 bits stand in both halves.
fn table_hash(hash: u32) -> u64 {
    u64::from(hash) << 32 | u64::from(hash)
}

/// Whether `value` is the key `key`: the key's text is the value's JSON.
fn is_key(value: &Value, key: RowKey<'_>) -> bool {
    match (value, key) {
        (Value::Int64(i), RowKey::Int(k)) => *i == k,
        // A text key has no character JSON escapes, so neither has a value equal to it.
        (Value::Text(s), RowKey::Text(k)) => **s == *k,
        _ => false,
    }
}

/// Whether the row of `slot` in `rows`, rows whose key column is `key_column`, is under `key`,
/// whose hash is `hash` (compared first: it saves reading the row's key when only the table's
/// tag matched).
fn has_key(rows: &[KeyedRow], slot: Slot, key_column: Option<usize>, hash: u32, key: RowKey<'_>) -> bool {
    if slot.hash(rows) != hash {
        return false;
    }
    let row = &rows[slot.pos()];
    match &row.key {
        Some(text) => RowKey::of_text(text) == key,
        None => key_column.and_then(|c| row.row.get(c)).is_some_and(|v| is_key(v, key)),
    }
}

/// The key of `row`, of rows whose key column is `key_column`.
fn key_of(row: &KeyedRow, key_column: Option<usize>) -> RowKey<'_> {
    match (&row.key, key_column.and_then(|c| row.row.get(c))) {
        (Some(text), _) => RowKey::of_text(text),
        (None, Some(Value::Int64(i))) => RowKey::Int(*i),
        (None, Some(Value::Text(s))) => RowKey::Text(s),
        // Never: a row keeps no text only when its key column gives its key (`is_key`).
        (None, _) => RowKey::Other(""),
    }
}

/// The same rows under the same keys, in any order.
impl PartialEq for RowsByKey {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(key, row)| other.get(key) == Some(row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn row(values: &[Value]) -> TypedRow {
        Arc::from(values.to_vec())
    }

    /// Rows appended without the index are found before and after it takes them, and a key
    /// appended twice ends as a put would leave it: the later row in the earlier one's place.
    #[test]
    fn appended_rows_are_indexed_at_once_and_repeated_keys_act_as_puts() {
        let keyed = |i: i64| row(&[Value::Text(format!("k{i}").into()), Value::Int64(i)]);
        let mut rows = RowsByKey::default();
        rows.insert("\"k0\"", keyed(0));
        for i in 1..5000 {
            let key = format!("\"k{i}\"");
            assert!(rows.insert_own_key(key.as_bytes(), keyed(i), true).is_ok());
        }
        // Not the row's own key: given back.
        assert!(rows.insert_own_key(b"\"other\"", keyed(1), true).is_err());
        assert_eq!(rows.get(RowKey::Text("k4321")).map(|r| r[1].clone()), Some(Value::Int64(4321)));
        rows.index_appended();
        assert!(rows.appended.is_empty() && rows.len() == 5000);
        for i in 0..5000 {
            assert_eq!(rows.get(RowKey::Text(&format!("k{i}"))).map(|r| r[1].clone()), Some(Value::Int64(i)));
        }
        // A repeated key: the same rows as inserting each in turn.
        let mut expected = rows.clone();
        let changed = row(&[Value::Text("k7".into()), Value::Int64(-7)]);
        assert!(rows.insert_own_key(b"\"k5000\"", keyed(5000), true).is_ok());
        assert!(rows.insert_own_key(b"\"k7\"", changed.clone(), true).is_ok());
        assert_eq!(rows.get(RowKey::Text("k7")), Some(&changed), "the latest row before indexing");
        rows.index_appended();
        expected.insert("\"k5000\"", keyed(5000));
        expected.insert("\"k7\"", changed.clone());
        assert_eq!(rows.len(), 5001);
        assert_eq!(rows.rows().collect::<Vec<_>>(), expected.rows().collect::<Vec<_>>(), "same order");
        assert_eq!(rows, expected);
        assert!(rows.swap_remove(RowKey::Text("k7")).is_some() && rows.get(RowKey::Text("k7")).is_none());
    }

    /// Key texts read as the value they are the JSON of, and back, only when that is exact.
    #[test]
    fn key_texts_and_their_forms() {
        for (text, form) in [
            ("42", RowKey::Int(42)),
            ("-7", RowKey::Int(-7)),
            ("0", RowKey::Int(0)),
            ("\"abc\"", RowKey::Text("abc")),
            ("\"\"", RowKey::Text("")),
            ("\"42\"", RowKey::Text("42")),
            ("-0", RowKey::Other("-0")),
            ("007", RowKey::Other("007")),
            ("+1", RowKey::Other("+1")),
            ("1.5", RowKey::Other("1.5")),
            ("99999999999999999999", RowKey::Other("99999999999999999999")),
            ("\"a\\\"b\"", RowKey::Other("\"a\\\"b\"")),
            ("\"", RowKey::Other("\"")),
            ("", RowKey::Other("")),
        ] {
            assert_eq!(RowKey::of_text(text), form, "{text}");
            assert_eq!(form.text(), text, "{text}");
        }
    }

    /// Rows whose key is their own value keep no text; others keep theirs; both are found,
    /// replaced in place and removed by key text.
    #[test]
    fn rows_are_found_whether_their_key_is_kept_or_derived() {
        let mut rows = RowsByKey::default();
        rows.insert("\"a\"", row(&[Value::Text("a".into()), Value::Int64(1)]));
        assert_eq!(rows.key_column, Some(0));
        assert!(rows.rows[0].key.is_none());
        // An integer the server sent as a string, a key that is not the row's value, an
        // escaped text.
        rows.insert("\"5\"", row(&[Value::Int64(5), Value::Int64(2)]));
        rows.insert("\"b\"", row(&[Value::Text("c".into()), Value::Int64(3)]));
        rows.insert("\"q\\\"\"", row(&[Value::Text("q\"".into()), Value::Int64(4)]));
        assert!(rows.rows[1..].iter().all(|r| r.key.is_some()));
        for (key, n) in [("\"a\"", 1), ("\"5\"", 2), ("\"b\"", 3), ("\"q\\\"\"", 4)] {
            assert_eq!(rows.get(RowKey::of_text(key)).map(|r| r[1].clone()), Some(Value::Int64(n)), "{key}");
        }
        assert!(rows.get(RowKey::of_text("\"c\"")).is_none() && rows.get(RowKey::of_text("5")).is_none());
        rows.insert("\"a\"", row(&[Value::Text("a".into()), Value::Int64(10)]));
        assert_eq!(rows.len(), 4);
        assert_eq!(
            rows.iter().next().map(|(k, r)| (k.text().into_owned(), r[1].clone())),
            Some(("\"a\"".into(), Value::Int64(10)))
        );
        assert!(rows.swap_remove(RowKey::of_text("\"a\"")).is_some());
        assert!(rows.swap_remove(RowKey::of_text("\"a\"")).is_none());
        let keys: Vec<String> = rows.iter().map(|(k, _)| k.text().into_owned()).collect();
        assert_eq!(keys, ["\"q\\\"\"", "\"5\"", "\"b\""], "the last row took the removed one's place");
        assert!(rows.get(RowKey::of_text("\"q\\\"\"")).is_some());
    }
}
