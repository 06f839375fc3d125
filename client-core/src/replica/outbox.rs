//! The outbox of local writes not yet confirmed, in the order they were made, indexed by the
//! rows its operations change.
//!
//! Reading one row as queries see it replays the pending writes to that row's key. A client
//! offline for a while holds thousands of pending writes, and every local write or synced
//! batch reads each row it changes (see `Replica::apply`): scanning the whole outbox per row
//! made a local write cost ~1.5 ms with 10,000 pending writes. The index finds a row's pending
//! operations with one hash look-up (and a binary search for each operation's entry), whatever
//! else is pending. Removing an entry from the middle (a write confirmed out of order) shifts
//! the shorter end of the queue; confirmations in order take the front.
//!
//! An insert names its row's key in the primary-key column, which the replica learns from the
//! server, possibly after the write was made. So a table is indexed on first use by the key
//! column the caller names, indexed again if that column changes, and from then on its index
//! is updated with every entry put into or removed from the outbox.

use crate::protocol::ws::{MutationKind, MutationOp};
use crate::store::{OutboxEntry, pk_key};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

/// The pending local writes, in order, with their operations indexed by (table, primary key).
///
/// Few collection types on purpose: every map type is compiled again for each key and value
/// type, and the wasm bundle pays for each.
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    /// The entries in order. Confirmations mostly take the oldest, from the front.
    entries: VecDeque<OutboxEntry>,
    /// The place of each entry of `entries`, increasing: the order they were first put in (a
    /// replaced entry keeps its place).
    places: VecDeque<u64>,
    /// The place of each entry, by client id and sequence number.
    place_of: HashMap<(String, u64), u64>,
    /// The place the next new entry gets.
    next_place: u64,
    /// The operations on each row, by (table, primary-key text), in outbox order. Only tables
    /// whose rows were looked up are indexed (see [`Outbox::ops_on_row`]).
    rows: RefCell<RowIndex>,
    /// How many entries the server confirmed (they wait for their change).
    confirmed: usize,
}

/// The pending operations of the indexed tables, by the row each changes.
#[derive(Debug, Clone, Default)]
struct RowIndex {
    /// The indexed tables, with the primary-key column their inserts' keys were read from.
    tables: Vec<(String, String)>,
    /// By (table, primary-key text): the operations on that row, in outbox order.
    ops: HashMap<(String, String), Vec<OpPlace>>,
}

/// Where one operation is: the place of its entry and its index among the entry's operations.
/// Ordered as the outbox replays them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct OpPlace {
    entry: u64,
    op: usize,
}

impl Outbox {
    /// An outbox holding `entries`, in that order.
    pub fn from_entries(entries: Vec<OutboxEntry>) -> Outbox {
        let mut outbox = Outbox::default();
        for entry in entries {
            outbox.put(entry);
        }
        outbox
    }

    /// The entries, in order.
    pub fn iter(&self) -> std::collections::vec_deque::Iter<'_, OutboxEntry> {
        self.entries.iter()
    }

    /// How many entries are pending.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many entries the server confirmed and still wait for their change.
    pub fn confirmed_len(&self) -> usize {
        self.confirmed
    }

    /// The entry of `client_id` with sequence number `seq`, if pending.
    pub fn get(&self, client_id: &str, seq: u64) -> Option<&OutboxEntry> {
        let place = self.place_of.get(&(client_id.to_string(), seq))?;
        self.entries.get(self.position(*place)?)
    }

    /// Where the entry at `place` is in `entries`.
    fn position(&self, place: u64) -> Option<usize> {
        self.places.binary_search(&place).ok()
    }

    /// Adds `entry` at the end, or replaces the pending entry with its client id and sequence
    /// number in place.
    pub fn put(&mut self, entry: OutboxEntry) {
        let id = (entry.client_id.clone(), entry.seq);
        let replaced = self.place_of.get(&id).and_then(|place| Some((*place, self.position(*place)?)));
        self.confirmed += usize::from(entry.confirmed.is_some());
        match replaced {
            Some((place, i)) => {
                let old = std::mem::replace(&mut self.entries[i], entry);
                self.confirmed -= usize::from(old.confirmed.is_some());
                self.rows.get_mut().remove(place, &old);
                self.rows.get_mut().add(place, &self.entries[i]);
            }
            None => {
                let place = self.next_place;
                self.next_place += 1;
                self.place_of.insert(id, place);
                self.rows.get_mut().add(place, &entry);
                self.entries.push_back(entry);
                self.places.push_back(place);
            }
        }
    }

    /// Removes the entry of `client_id` with sequence number `seq` (confirmed or rejected).
    pub fn remove(&mut self, client_id: &str, seq: u64) -> Option<OutboxEntry> {
        let place = self.place_of.remove(&(client_id.to_string(), seq))?;
        let i = self.position(place)?;
        self.places.remove(i);
        let entry = self.entries.remove(i)?;
        self.rows.get_mut().remove(place, &entry);
        self.confirmed -= usize::from(entry.confirmed.is_some());
        Some(entry)
    }

    /// The pending operations on the row of `table` whose primary key (column `pk_col`) reads
    /// as `key`, in the order they replay.
    pub fn ops_on_row(&self, table: &str, pk_col: &str, key: &str) -> Vec<&MutationOp> {
        self.index(table, pk_col);
        let rows = self.rows.borrow();
        let places = rows.ops.get(&(table.to_string(), key.to_string())).map_or(&[][..], Vec::as_slice);
        places.iter().map(|at| self.op(*at)).collect()
    }

    /// The pending operations on `table` that name a row (primary key in column `pk_col`): the
    /// operations on each row in the order they replay, rows one after another. Operations on
    /// different rows are independent, so replaying row by row gives what replaying the whole
    /// outbox in order gives.
    pub fn ops_on_table(&self, table: &str, pk_col: &str) -> Vec<&MutationOp> {
        self.index(table, pk_col);
        let rows = self.rows.borrow();
        let of_table = rows.ops.iter().filter(|((t, _), _)| t == table);
        of_table.flat_map(|(_, places)| places).map(|at| self.op(*at)).collect()
    }

    fn op(&self, at: OpPlace) -> &MutationOp {
        let i = self.position(at.entry).expect("the index names pending entries only");
        &self.entries[i].ops[at.op]
    }

    /// Indexes `table` by `pk_col`, unless it already is; an index built for another key
    /// column is made again.
    fn index(&self, table: &str, pk_col: &str) {
        let mut rows = self.rows.borrow_mut();
        match rows.tables.iter().position(|(t, _)| t == table) {
            Some(i) if rows.tables[i].1 == pk_col => return,
            Some(i) => {
                rows.tables.remove(i);
                rows.ops.retain(|(t, _), _| t != table);
            }
            None => {}
        }
        // Only this table: the others are indexed already.
        let mut this_table = RowIndex { tables: vec![(table.to_string(), pk_col.to_string())], ops: HashMap::new() };
        for (place, entry) in self.places.iter().zip(&self.entries) {
            this_table.add(*place, entry);
        }
        rows.tables.append(&mut this_table.tables);
        rows.ops.extend(this_table.ops);
    }
}

impl<'a> IntoIterator for &'a Outbox {
    type Item = &'a OutboxEntry;
    type IntoIter = std::collections::vec_deque::Iter<'a, OutboxEntry>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

impl RowIndex {
    /// The rows of indexed tables the operations of `entry` (at `place`) change: (table, key)
    /// with the operation's place.
    fn keyed_ops(&self, place: u64, entry: &OutboxEntry) -> Vec<((String, String), OpPlace)> {
        let mut out = Vec::new();
        for (i, op) in entry.ops.iter().enumerate() {
            let Some((table, pk_col)) = self.tables.iter().find(|(t, _)| *t == op.table) else { continue };
            if let Some(key) = pending_key(pk_col, op) {
                out.push(((table.clone(), key), OpPlace { entry: place, op: i }));
            }
        }
        out
    }

    fn add(&mut self, place: u64, entry: &OutboxEntry) {
        for (row, at) in self.keyed_ops(place, entry) {
            let ops = self.ops.entry(row).or_default();
            // Usually the last place; a replaced entry keeps an earlier one.
            let i = ops.partition_point(|other| *other < at);
            ops.insert(i, at);
        }
    }

    fn remove(&mut self, place: u64, entry: &OutboxEntry) {
        for (row, at) in self.keyed_ops(place, entry) {
            if let Some(ops) = self.ops.get_mut(&row) {
                ops.retain(|other| *other != at);
                if ops.is_empty() {
                    self.ops.remove(&row);
                }
            }
        }
    }
}

/// The primary-key text of the row a pending write changes: an insert's key column, or the
/// key an update or delete names.
pub(super) fn pending_key(pk_col: &str, op: &MutationOp) -> Option<String> {
    match op.op {
        MutationKind::Insert => op.row.as_ref()?.get(pk_col).map(pk_key),
        MutationKind::Update | MutationKind::Delete => op.pk.as_ref().map(pk_key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// The outbox as a plain list, as it was kept before it had an index: the reference the
    /// indexed outbox is compared with.
    #[derive(Default)]
    struct Model {
        entries: Vec<OutboxEntry>,
    }

    impl Model {
        fn put(&mut self, entry: OutboxEntry) {
            match self.entries.iter_mut().find(|x| x.client_id == entry.client_id && x.seq == entry.seq) {
                Some(x) => *x = entry,
                None => self.entries.push(entry),
            }
        }

        fn remove(&mut self, client_id: &str, seq: u64) {
            self.entries.retain(|x| !(x.client_id == client_id && x.seq == seq));
        }

        /// The operations on one row, found by scanning every entry.
        fn ops_on_row(&self, table: &str, pk_col: &str, key: &str) -> Vec<&MutationOp> {
            self.entries
                .iter()
                .flat_map(|e| &e.ops)
                .filter(|op| op.table == table && pending_key(pk_col, op).as_deref() == Some(key))
                .collect()
        }
    }

    /// Indexed look-ups always return what a scan of the whole outbox returns: a seeded random
    /// sequence of new writes from two clients, entries replaced in place, confirmations and
    /// rejections (entries removed, also ones not pending), resets (every entry removed) and
    /// reloads from the stored entries, on two tables, looked up by two primary-key columns
    /// (the key column of a table is learnt from the server and may change).
    #[test]
    fn indexed_lookups_match_a_scan_of_the_outbox() {
        let mut next = crate::test_support::seeded_random(0x9e37_79b9_7f4a_7c15u64);
        let tables = ["app.a", "app.b"];
        let pk_cols = ["id", "code"];
        let keys: Vec<Value> = (0..6).map(|k| json!(format!("k{k}"))).collect();
        let mut outbox = Outbox::default();
        let mut model = Model::default();
        let mut next_seq = [1u64, 1];
        for step in 0..3000 {
            match next(20) {
                // A new write (or, 0..=1, a replacement of a pending entry) of 1 to 3 operations.
                0..=10 => {
                    let client = next(2) as usize;
                    let seq = match next(6) {
                        0 if next_seq[client] > 1 => 1 + next(next_seq[client] - 1),
                        _ => {
                            next_seq[client] += 1;
                            next_seq[client] - 1
                        }
                    };
                    let ops = (0..1 + next(3))
                        .map(|i| {
                            let table = tables[next(2) as usize].to_string();
                            let key = keys[next(keys.len() as u64) as usize].clone();
                            let value = json!(format!("step {step} op {i}"));
                            match next(4) {
                                0 => MutationOp {
                                    table,
                                    op: MutationKind::Insert,
                                    // Sometimes named by the other key column only.
                                    row: Some(
                                        json!({pk_cols[next(2) as usize]: key, "v": value})
                                            .as_object()
                                            .unwrap()
                                            .clone(),
                                    ),
                                    pk: None,
                                },
                                1 | 2 => MutationOp {
                                    table,
                                    op: MutationKind::Update,
                                    row: Some(json!({ "v": value }).as_object().unwrap().clone()),
                                    pk: Some(key),
                                },
                                _ => MutationOp { table, op: MutationKind::Delete, row: None, pk: Some(key) },
                            }
                        })
                        .collect();
                    let entry = OutboxEntry {
                        client_id: format!("client{client}"),
                        seq,
                        ops,
                        created_ms: 0.0,
                        confirmed: None,
                    };
                    outbox.put(entry.clone());
                    model.put(entry);
                }
                // A confirmation or rejection: the entry leaves the outbox.
                11..=16 => {
                    let client = next(2) as usize;
                    let seq = 1 + next(next_seq[client]);
                    let client_id = format!("client{client}");
                    let removed = outbox.remove(&client_id, seq);
                    let pending = model.entries.iter().find(|e| e.client_id == client_id && e.seq == seq).cloned();
                    assert_eq!(removed, pending, "step {step}: removed entry");
                    model.remove(&client_id, seq);
                }
                // A reset: everything pending is settled.
                17 => {
                    for e in std::mem::take(&mut model.entries) {
                        outbox.remove(&e.client_id, e.seq);
                    }
                }
                // A reload from the store.
                _ => outbox = Outbox::from_entries(model.entries.clone()),
            }
            assert_eq!(outbox.iter().collect::<Vec<_>>(), model.entries.iter().collect::<Vec<_>>(), "step {step}");
            assert_eq!(outbox.len(), model.entries.len());
            for e in &model.entries {
                assert_eq!(outbox.get(&e.client_id, e.seq), Some(e), "step {step}");
            }
            // Most steps look up by the first key column; some by the second, which rebuilds
            // the index of the table.
            let pk_col = pk_cols[usize::from(next(10) == 0)];
            for table in tables {
                let mut by_rows = Vec::new();
                for key in &keys {
                    let key = pk_key(key);
                    let expected = model.ops_on_row(table, pk_col, &key);
                    assert_eq!(outbox.ops_on_row(table, pk_col, &key), expected, "step {step}: {table} {key}");
                    by_rows.extend(expected);
                }
                let mut all = outbox.ops_on_table(table, pk_col);
                // Rows come in any order; compare as sets of (row, ops in order).
                let row_of = |op: &&MutationOp| pending_key(pk_col, op);
                all.sort_by_key(row_of);
                by_rows.sort_by_key(row_of);
                assert_eq!(all, by_rows, "step {step}: {table}");
            }
        }
    }
}
