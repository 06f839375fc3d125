//! The replica's working copy in memory: subscriptions with their confirmed rows, and the
//! outbox of local writes not yet confirmed.
//!
//! What the application sees of a table is the server-confirmed rows of every subscription on
//! that table, merged by primary key, with the pending outbox writes replayed on top in order.
//! A rejected write therefore rolls back by simply leaving the outbox; nothing has to be undone
//! in the confirmed rows.
//!
//! Confirmed rows are stored once, typed and aligned to their table's columns, as they arrive
//! ([`SubscriptionRows`]). Local queries and live queries read those rows themselves through
//! [`Replica::typed_view`] (shared, not copied); pending writes, few, are replayed and typed on
//! each read.
//!
//! The outbox indexes its writes by the row they change ([`Outbox`]), so reading one row with
//! its pending writes replayed costs the same with ten or ten thousand writes pending.

mod column_index;
mod outbox;
mod rows;
mod rows_by_key;

pub use outbox::Outbox;
pub use rows::de::RowSeed;
pub use rows::{RowColumns, SubscriptionRows, empty_rows_of, table_row_columns};
pub use rows_by_key::RowKey;

use crate::protocol::ColumnInfo;
use crate::protocol::ws::{MutationKind, MutationOp};
use crate::store::{OutboxEntry, Row, Snapshot, StoreOp, SubscriptionId, SubscriptionRecord, pk_key};
use column_index::ColumnIndexes;
use kalamdb_query::incremental::same_row;
use kalamdb_query::json::{JsonValueError, from_json};
use kalamdb_query::{ColumnDef, DataType};
use litemap::LiteMap;
use outbox::pending_key;
pub(crate) use rows::same_columns;
use rows::union_columns;
use serde_json::Value;
use std::borrow::Cow;
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The meta key holding the replica's user (see [`Replica::user`]).
pub(crate) const META_USER: &str = "user";

/// SQL type name the server uses for CRDT text columns.
pub const CRDT_TEXT: &str = "CRDT_TEXT";

/// What the replica cannot show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaError {
    /// No subscription replicates the table.
    #[error("table '{0}' is not synced to this replica (declare it with sync() first)")]
    NotSynced(String),
    /// The table is declared, but the server has not described its columns yet (that happens
    /// when it accepts the subscription, on the first connection).
    #[error(
        "table '{0}' is not synced yet: its columns arrive when the server accepts the subscription (wait for settled())"
    )]
    SchemaPending(String),
    /// A CRDT cell was asked of a column of another type.
    #[error("column '{column}' of {table} is not a CRDT_TEXT column")]
    NotCrdtText { table: String, column: String },
    /// A value does not read as its column's type: a pending local write made before the
    /// table's schema was known (the server will refuse it too).
    #[error("the value of column '{column}' of {table} in the replica cannot be read: {source}")]
    BadValue {
        table: String,
        column: String,
        #[source]
        source: JsonValueError,
    },
}

/// One row as local queries read it: values aligned to the table's columns. The replica stores
/// its confirmed rows as these, shared with the queries, live queries and changes that read
/// them, and with the in-memory store ([`crate::store::MemoryStore`]).
pub type TypedRow = kalamdb_query::incremental::SharedRow;

/// One subscription: its record and the rows the server confirmed for it.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionData {
    pub record: Option<SubscriptionRecord>,
    pub rows: SubscriptionRows,
}

/// What the replica knows of one synced table besides its rows.
#[derive(Debug, Clone)]
struct TableState {
    /// The columns its subscriptions' rows are typed to (`None`: not known yet).
    columns: Option<RowColumns>,
    /// Changes whenever what queries read of the table changes other than row by row (see
    /// [`Replica::typed_generation`]).
    generation: u64,
    /// Whether a local query has read the table: only then are its row changes recorded.
    read: Cell<bool>,
}

/// Source of [`TableState::generation`]s: process-wide, so a table state made after a reload
/// never reuses the number of one made before it.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    NEXT_GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// How the rows local queries see changed in one [`Replica::apply`] (or several, combined with
/// [`RowChanges::absorb`]): per table, each changed row's value before and after, by primary
/// key. Recorded only for tables local queries have read, and only within one generation of
/// the table: a consumer that built state from generation `g` can apply these changes exactly
/// when [`Replica::typed_generation`] is still `g` (otherwise the columns changed, rows were
/// cleared or a reload happened, and it must read the table again).
#[derive(Debug, Clone, Default)]
pub struct RowChanges {
    /// By table (`namespace.table`). A commit touches few tables, so a list searched in order
    /// serves, and costs the wasm bundle less than another map type.
    tables: Vec<(String, TableRowChanges)>,
}

/// The changed rows of one table, within one generation of the table.
#[derive(Debug, Clone)]
pub struct TableRowChanges {
    /// The generation of the table the rows were read from.
    pub generation: u64,
    /// By primary-key text: the row before and after (`None`: absent).
    rows: BTreeMap<String, RowChange>,
    /// `rows` as a dataflow's delta, made at the first [`TableRowChanges::delta`] and shared
    /// by every live query on the table. Emptied by [`RowChanges::absorb`], the only change to
    /// `rows` after [`Replica::apply`] returns them.
    delta: OnceCell<Rc<[(TypedRow, i64)]>>,
}

/// One row before and after a change, as local queries see it (pending writes applied).
#[derive(Debug, Clone)]
pub struct RowChange {
    pub old: Option<TypedRow>,
    pub new: Option<TypedRow>,
}

impl TableRowChanges {
    fn new(generation: u64) -> TableRowChanges {
        TableRowChanges { generation, rows: BTreeMap::new(), delta: OnceCell::new() }
    }

    /// The changed rows as a dataflow's delta: each row's old value `-1`, its new value `+1`.
    /// Made once and shared, so the live queries of a commit do not each copy its rows; the
    /// rows themselves are the replica's typed rows, shared too.
    pub fn delta(&self) -> &Rc<[(TypedRow, i64)]> {
        self.delta.get_or_init(|| {
            self.rows
                .values()
                .flat_map(|change| {
                    let old = change.old.iter().map(|row| (Arc::clone(row), -1));
                    old.chain(change.new.iter().map(|row| (Arc::clone(row), 1)))
                })
                .collect()
        })
    }
}

impl RowChanges {
    /// The changes of `table`, if local queries read it and any of its rows changed.
    pub fn table(&self, table: &str) -> Option<&TableRowChanges> {
        self.tables.iter().find(|(t, _)| t == table).map(|(_, changes)| changes)
    }

    /// Adds the changes that came after these: a row keeps its first `old` and takes the
    /// later `new`. Changes within another generation of a table replace the earlier
    /// ones (the consumer reads the table again anyway).
    pub fn absorb(&mut self, later: RowChanges) {
        for (table, later) in later.tables {
            match self.tables.iter_mut().find(|(t, _)| *t == table) {
                Some((_, earlier)) if earlier.generation == later.generation => {
                    earlier.delta.take();
                    for (key, change) in later.rows {
                        match earlier.rows.get_mut(&key) {
                            Some(e) => e.new = change.new,
                            None => {
                                earlier.rows.insert(key, change);
                            }
                        }
                    }
                }
                Some((_, earlier)) => *earlier = later,
                None => self.tables.push((table, later)),
            }
        }
    }
}

/// The in-memory replica. Mutated only through [`Replica::apply`], with the same
/// [`StoreOp`]s that are committed to the store, so memory and disk cannot disagree.
#[derive(Debug, Clone, Default)]
pub struct Replica {
    subs: LiteMap<SubscriptionId, SubscriptionData>,
    outbox: Outbox,
    meta: BTreeMap<String, Value>,
    /// Every synced table (`namespace.table`): the columns its rows are typed to, its
    /// generation, whether queries read it. Kept in step with the subscriptions by
    /// [`Replica::refresh_table`].
    tables: LiteMap<String, TableState>,
    /// Indexes on the columns queries filter by equality, until the next change (see
    /// [`Replica::rows_with_value`]).
    indexes: RefCell<ColumnIndexes>,
}

impl Replica {
    /// The replica of a store's snapshot. Its rows are typed already (the store typed them to
    /// the same columns while loading), and are moved into place, not copied.
    pub fn from_snapshot(s: Snapshot) -> Self {
        let mut r = Replica::default();
        for rec in s.subscriptions {
            let id = rec.id.clone();
            r.subs.entry(id).or_default().record = Some(rec);
        }
        for (sub, rows) in s.rows {
            // Rows of a subscription whose record is gone are leftovers; skip them.
            if let Some(d) = r.subs.get_mut(&sub) {
                d.rows = rows;
            }
        }
        let tables: Vec<String> = r.tables().into_iter().map(str::to_string).collect();
        for table in tables {
            r.refresh_table(&table);
        }
        r.outbox = Outbox::from_entries(s.outbox);
        // `extend`, not `collect`: collecting into a map compiles in a sort (~3 KB of wasm).
        r.meta.extend(s.meta);
        r
    }

    /// Applies `ops` (the ones just committed to the store) and returns how the rows of
    /// tables local queries read changed.
    pub fn apply(&mut self, ops: &[StoreOp]) -> RowChanges {
        let mut changes = RowChanges::default();
        if ops.iter().any(|op| !matches!(op, StoreOp::PutMeta { .. })) {
            self.indexes.get_mut().clear();
        }
        for op in ops {
            // Each row's value before the first op that touches it.
            for (table, key) in self.rows_touched_by(op) {
                self.note_old_row(&mut changes, &table, key);
            }
            match op {
                StoreOp::PutSubscription(rec) => {
                    let data = self.subs.entry(rec.id.clone()).or_default();
                    let old = data.record.replace(rec.clone());
                    // A cursor moves with every batch; only new columns or a new table change
                    // what queries read.
                    if old.as_ref().is_none_or(|o| o.schema != rec.schema || o.table != rec.table) {
                        self.refresh_table(&rec.table);
                        self.new_generation(&rec.table);
                        if let Some(old) = old.filter(|o| o.table != rec.table) {
                            self.refresh_table(&old.table);
                            self.new_generation(&old.table);
                        }
                    }
                }
                StoreOp::DeleteSubscription(id) => {
                    if let Some(table) = self.subs.remove(id).and_then(|d| d.record).map(|r| r.table) {
                        self.refresh_table(&table);
                        self.new_generation(&table);
                    }
                }
                StoreOp::PutRow { sub, pk, row } => {
                    let rows = &mut self.subs.entry(sub.clone()).or_default().rows;
                    // A row the engine typed to these columns is kept as it is (and shared
                    // with the store); others are typed here.
                    let typed = match row.typed_to(rows.columns()) {
                        Some(typed) => {
                            rows.put_typed(pk, Arc::clone(typed));
                            true
                        }
                        None => {
                            rows.put(pk.clone(), &row.json());
                            rows.get(pk).is_some()
                        }
                    };
                    // A row that does not read: reads of the table fail until it is replaced,
                    // so state built from the table cannot follow it row by row.
                    if !typed && let Some(table) = self.table_of(sub).map(str::to_string) {
                        self.new_generation(&table);
                    }
                }
                StoreOp::DeleteRow { sub, pk } => {
                    if let Some(d) = self.subs.get_mut(sub) {
                        d.rows.remove(pk);
                    }
                }
                StoreOp::ClearRows(sub) => {
                    if let Some(d) = self.subs.get_mut(sub) {
                        d.rows.clear();
                    }
                    if let Some(table) = self.table_of(sub).map(str::to_string) {
                        self.new_generation(&table);
                    }
                }
                StoreOp::PutOutbox(e) => self.outbox.put(e.clone()),
                StoreOp::DeleteOutbox { client_id, seq } => {
                    self.outbox.remove(client_id, *seq);
                }
                StoreOp::PutMeta { key, value } => {
                    self.meta.insert(key.clone(), value.clone());
                }
            }
        }
        self.note_new_rows(&mut changes);
        changes
    }

    /// Brings the state of `table` in step with its subscriptions: its columns from their
    /// schemas, and every subscription's rows typed to them (typed again if they changed).
    /// Forgets a table that no subscription syncs any more.
    fn refresh_table(&mut self, table: &str) {
        if self.subs_of(table).next().is_none() {
            self.tables.remove(table);
            return;
        }
        let columns = table_row_columns(self.subscriptions(), table);
        for (_, d) in self.subs.iter_mut().filter(|(_, d)| d.record.as_ref().is_some_and(|r| r.table == table)) {
            d.rows.set_columns(columns.clone());
        }
        match self.tables.get_mut(table) {
            Some(state) => state.columns = columns,
            None => {
                let state = TableState { columns, generation: next_generation(), read: Cell::new(false) };
                self.tables.insert(table.to_string(), state);
            }
        }
    }

    /// Gives `table` a new generation: state built from its rows before cannot be updated
    /// with changes any more (see [`RowChanges`]).
    fn new_generation(&mut self, table: &str) {
        if let Some(state) = self.tables.get_mut(table) {
            state.generation = next_generation();
        }
    }

    /// The generation of `table` if its row changes are recorded: local queries read it and
    /// its columns are known.
    fn watched_generation(&self, table: &str) -> Option<u64> {
        self.tables.get(table).filter(|s| s.read.get() && s.columns.is_some()).map(|s| s.generation)
    }

    /// `(table, primary-key text)` of the rows `op` may change in what queries see, for tables
    /// whose changes are recorded. Ops that change a table wholesale (new columns, cleared
    /// rows, a subscription gone) give it a new generation instead.
    fn rows_touched_by(&self, op: &StoreOp) -> Vec<(String, String)> {
        let watched = |table: &str| self.watched_generation(table).is_some();
        let mut out = Vec::new();
        let pending = |entry: &OutboxEntry, out: &mut Vec<(String, String)>| {
            for op in entry.ops.iter().filter(|op| watched(&op.table)) {
                if let Some(key) = self.primary_key(&op.table).and_then(|pk| pending_key(pk, op)) {
                    out.push((op.table.clone(), key));
                }
            }
        };
        match op {
            StoreOp::PutRow { sub, pk, .. } | StoreOp::DeleteRow { sub, pk } => {
                if let Some(table) = self.table_of(sub).filter(|t| watched(t)) {
                    out.push((table.to_string(), pk.clone()));
                }
            }
            StoreOp::PutOutbox(entry) => {
                pending(entry, &mut out);
                // An entry replaced in place: the rows its old ops touched change too.
                if let Some(old) = self.outbox.get(&entry.client_id, entry.seq) {
                    pending(old, &mut out);
                }
            }
            StoreOp::DeleteOutbox { client_id, seq } => {
                if let Some(old) = self.outbox.get(client_id, *seq) {
                    pending(old, &mut out);
                }
            }
            StoreOp::PutSubscription(_)
            | StoreOp::DeleteSubscription(_)
            | StoreOp::ClearRows(_)
            | StoreOp::PutMeta { .. } => {}
        }
        out
    }

    /// Records the current value of a row about to change, unless an earlier op of the same
    /// apply already did.
    fn note_old_row(&mut self, changes: &mut RowChanges, table: &str, key: String) {
        let Some(generation) = self.watched_generation(table) else { return };
        let i = match changes.tables.iter().position(|(t, _)| t == table) {
            Some(i) => i,
            None => {
                changes.tables.push((table.to_string(), TableRowChanges::new(generation)));
                changes.tables.len() - 1
            }
        };
        let entry = &mut changes.tables[i].1;
        if entry.generation != generation || entry.rows.contains_key(&key) {
            return;
        }
        match self.view_row(table, &key) {
            Ok(old) => {
                entry.rows.insert(key, RowChange { old, new: None });
            }
            // A pending value that cannot be read: the next read reports it.
            Err(_) => self.new_generation(table),
        }
    }

    /// Completes the recorded changes with each row's value now; drops rows that end as they
    /// began, and tables that got a new generation meanwhile.
    fn note_new_rows(&mut self, changes: &mut RowChanges) {
        let mut tables = std::mem::take(&mut changes.tables);
        tables.retain_mut(|(table, entry)| self.note_new_rows_of(table, entry));
        changes.tables = tables;
    }

    /// Completes the recorded changes of one table; returns whether any row changed (false
    /// also when the table got a new generation).
    fn note_new_rows_of(&mut self, table: &str, entry: &mut TableRowChanges) -> bool {
        if self.watched_generation(table) != Some(entry.generation) {
            return false;
        }
        for (key, change) in entry.rows.iter_mut() {
            match self.view_row(table, key) {
                Ok(new) => change.new = new,
                Err(_) => {
                    self.new_generation(table);
                    return false;
                }
            }
        }
        entry.rows.retain(|_, c| match (&c.old, &c.new) {
            (Some(a), Some(b)) => !(Arc::ptr_eq(a, b) || same_row(a, b)),
            (None, None) => false,
            _ => true,
        });
        !entry.rows.is_empty()
    }

    /// The columns the rows of `table` are typed to, if they are known.
    pub(crate) fn row_columns(&self, table: &str) -> Option<&RowColumns> {
        self.tables.get(table)?.columns.as_ref()
    }

    /// The generation of `table`, if it is synced: a number that changes whenever what queries
    /// read of it changes other than row by row — its columns, a reset, a subscription added or
    /// gone, a reload (see [`RowChanges`]).
    pub fn typed_generation(&self, table: &str) -> Option<u64> {
        self.tables.get(table).map(|t| t.generation)
    }

    /// One row of `table` as [`Self::typed_view`] shows it: the confirmed row (of the first
    /// subscription with the key), with the pending writes to that key replayed on top. The
    /// table's columns are known.
    fn view_row(&self, table: &str, key: &str) -> Result<Option<TypedRow>, ReplicaError> {
        let confirmed = || self.subs_of(table).find_map(|(_, d)| d.rows.get(key)).cloned();
        let Some(pk_col) = self.primary_key(table) else { return Ok(confirmed()) };
        let writes = self.outbox.ops_on_row(table, pk_col, key);
        if writes.is_empty() {
            return Ok(confirmed());
        }
        let Some(columns) = self.tables.get(table).and_then(|t| t.columns.as_ref()) else { return Ok(None) };
        let row = self.merged_row(table, pk_col, key, &writes)?;
        row.map(|row| typed_row(table, &row, columns)).transpose()
    }

    /// The row `key` of `table` as the merged view shows it: its confirmed row (first
    /// subscription with the key) with `writes`, the pending writes to that key, replayed.
    fn merged_row(
        &self,
        table: &str,
        pk_col: &str,
        key: &str,
        writes: &[&MutationOp],
    ) -> Result<Option<Cow<'_, Row>>, ReplicaError> {
        let mut merged = MergedTable {
            crdt_columns: self.crdt_columns(table)?,
            subs: self.subs_of(table).map(|(_, data)| data).collect(),
            pending: BTreeMap::new(),
        };
        for op in writes {
            merged.replay(pk_col, op);
        }
        Ok(merged.get(key))
    }

    /// The table of a subscription, if its record is known.
    fn table_of(&self, sub: &SubscriptionId) -> Option<&str> {
        self.subs.get(sub).and_then(|d| d.record.as_ref()).map(|r| r.table.as_str())
    }

    pub fn subscription(&self, id: &SubscriptionId) -> Option<&SubscriptionData> {
        self.subs.get(id)
    }

    pub fn subscriptions(&self) -> impl Iterator<Item = &SubscriptionRecord> {
        self.subs.values().filter_map(|d| d.record.as_ref())
    }

    /// The local writes not yet confirmed, in order.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub fn meta(&self, key: &str) -> Option<&Value> {
        self.meta.get(key)
    }

    /// The user this replica belongs to, as the server last named them at sign-in: what
    /// `current_user()` is in local queries (kept with the replica, so offline too).
    pub fn user(&self) -> Option<&str> {
        self.meta(META_USER).and_then(Value::as_str)
    }

    fn subs_of<'a, 'b>(
        &'a self,
        table: &'b str,
    ) -> impl Iterator<Item = (&'a SubscriptionRecord, &'a SubscriptionData)> + use<'a, 'b> {
        self.subs.values().filter_map(move |d| d.record.as_ref().filter(|r| r.table == table).map(|r| (r, d)))
    }

    /// Primary-key column of `table`, once the server has described it.
    pub fn primary_key(&self, table: &str) -> Option<&str> {
        self.subs_of(table).find_map(|(r, _)| r.primary_key.as_deref())
    }

    /// Declared type of a column of `table`, from any subscription's schema.
    pub fn column_type(&self, table: &str, column: &str) -> Option<&str> {
        self.subs_of(table).flat_map(|(r, _)| r.schema.iter()).find(|c| c.name == column).map(|c| c.data_type.as_str())
    }

    /// `namespace.table` of every synced table, each once (in subscription id order).
    pub fn tables(&self) -> Vec<&str> {
        let mut tables: Vec<&str> = Vec::new();
        for r in self.subscriptions() {
            if !tables.contains(&r.table.as_str()) {
                tables.push(&r.table);
            }
        }
        tables
    }

    /// The columns of `table` as the server described them. Several subscriptions on one table
    /// may select different columns: the table has their union, in the order of the widest
    /// schema (a `SELECT *` subscription gives the table's own order), then the columns only
    /// the others have, in subscription id order. A column keeps the type of the schema that
    /// contributed it.
    pub fn table_columns(&self, table: &str) -> Result<Vec<&ColumnInfo>, ReplicaError> {
        let schemas: Vec<&[ColumnInfo]> = self.subs_of(table).map(|(r, _)| r.schema.as_slice()).collect();
        if schemas.is_empty() {
            return Err(ReplicaError::NotSynced(table.to_string()));
        }
        let columns = union_columns(&schemas);
        if columns.is_empty() {
            return Err(ReplicaError::SchemaPending(table.to_string()));
        }
        Ok(columns)
    }

    /// The rows of `table` as local queries read them: confirmed rows of all its subscriptions
    /// merged by primary key, pending writes replayed on top, each row aligned to `columns`
    /// (the table's columns with the types the server described) as typed values, CRDT_TEXT
    /// cells as their text. Confirmed rows are the stored rows themselves (shared, not copied),
    /// in the order they arrived; a row a pending write changed shows in its place, rows
    /// pending writes inserted come last.
    pub fn typed_view(&self, table: &str, columns: &[ColumnDef]) -> Result<Vec<TypedRow>, ReplicaError> {
        let view = self.view_parts(table, columns)?;
        let (merged, pending) = (&view.merged, &view.pending);
        let confirmed = |row: &TypedRow, d: &SubscriptionData, key: RowKey| -> Result<TypedRow, ReplicaError> {
            if view.aligned {
                return Ok(Arc::clone(row));
            }
            // A typed row is stored with the columns it is typed to: always there.
            let json = d.rows.json_row(&key.text()).ok_or_else(|| ReplicaError::SchemaPending(table.to_string()))?;
            typed_row(table, &json, columns)
        };
        // The usual case (one subscription, no pending write): every stored row as it is,
        // with no key read per row (a first query over a freshly loaded 1,000,000-row replica
        // spent ~30 ms reading keys nothing looked up).
        if let [only] = merged.subs[..]
            && pending.is_empty()
            && view.aligned
        {
            return Ok(only.rows.typed_rows().map(Arc::clone).collect());
        }
        let rows = merged.subs.iter().map(|d| d.rows.len()).sum::<usize>();
        let mut out = Vec::with_capacity(rows + pending.len());
        // The pending writes by key as a scan gives it, so that no row's key text is made.
        // (Inserted one by one: collecting into a map costs the wasm bundle a sort.)
        let mut pending_by_key = BTreeMap::new();
        for (key, changed) in pending {
            pending_by_key.insert(RowKey::of_text(key), changed);
        }
        for (i, d) in merged.subs.iter().enumerate() {
            for (key, row) in d.rows.typed() {
                // The first subscription with a key wins: only later ones look it up.
                if i > 0 && merged.subs[..i].iter().any(|earlier| earlier.rows.contains_key(key)) {
                    continue;
                }
                match pending_by_key.get(&key) {
                    None => out.push(confirmed(row, d, key)?),
                    Some(Some(changed)) => out.push(Arc::clone(changed)),
                    Some(None) => {}
                }
            }
        }
        for (key, changed) in pending {
            if let Some(changed) = changed
                && !merged.subs.iter().any(|d| d.rows.contains(key))
            {
                out.push(Arc::clone(changed));
            }
        }
        Ok(out)
    }

    /// Fails as [`Self::typed_view`] would, without making the view: what a query checks
    /// before it runs, reading a table's rows only if it scans them.
    pub fn check_view(&self, table: &str, columns: &[ColumnDef]) -> Result<(), ReplicaError> {
        self.view_parts(table, columns).map(|_| ())
    }

    /// The rows of [`Self::typed_view`] whose column `column` equals `value`, found by primary
    /// key in O(1) instead of a scan: `Some` when `column` is the table's primary key, of type
    /// TEXT or an integer, and `value` of that kind (as `WHERE id = 'x'` or `WHERE id = $1`
    /// has it); `None` when that does not apply — another column or type, or a pending update
    /// that rewrites a primary key (its row would move to another key).
    pub fn rows_with_key(
        &self,
        table: &str,
        columns: &[ColumnDef],
        column: usize,
        value: &kalamdb_query::Value,
    ) -> Result<Option<Vec<TypedRow>>, ReplicaError> {
        let (Some(pk_col), Some(c)) = (self.primary_key(table), columns.get(column)) else { return Ok(None) };
        // Keys are the primary key's JSON text: one text for a string; for an integer, the
        // number, or the string the server sends for one beyond 2^53 (a row is under one).
        let keys = match (&c.ty, value) {
            (DataType::Text, kalamdb_query::Value::Text(text)) => vec![pk_key(&Value::String(text.to_string()))],
            (DataType::SmallInt | DataType::Int | DataType::BigInt, kalamdb_query::Value::Int64(i)) => {
                vec![i.to_string(), pk_key(&Value::String(i.to_string()))]
            }
            _ => return Ok(None),
        };
        let stored = self.tables.get(table).and_then(|t| t.columns.as_ref());
        if c.name != pk_col || !stored.is_some_and(|s| same_columns(s, columns)) {
            return Ok(None);
        }
        let rewrites_key =
            |op: &&MutationOp| op.op == MutationKind::Update && op.row.as_ref().is_some_and(|r| r.contains_key(pk_col));
        if self.outbox.ops_on_table(table, pk_col).iter().any(rewrites_key) {
            return Ok(None);
        }
        let mut rows = Vec::new();
        for key in &keys {
            rows.extend(self.view_row(table, key)?);
        }
        Ok(Some(rows))
    }

    /// The rows of [`Self::typed_view`] whose column `column` equals `value`, from a hash
    /// index on the column: made by the second query that asks since the replica's rows or
    /// pending writes last changed (one pass over the view), kept until they next change.
    /// `None` when the caller should scan: the first ask after a change, or a column whose
    /// type is not indexed (only integers, TEXT and BOOLEAN are: their equality is exact).
    pub fn rows_with_value(
        &self,
        table: &str,
        columns: &[ColumnDef],
        column: usize,
        value: &kalamdb_query::Value,
    ) -> Result<Option<Vec<TypedRow>>, ReplicaError> {
        self.indexes.borrow_mut().rows_equal(table, columns, column, value, || self.typed_view(table, columns))
    }

    /// What [`Self::typed_view`] reads besides the stored rows: the table's subscriptions, its
    /// pending rows typed (`None`: deleted), and whether the stored rows are typed to
    /// `columns`. Checks that every stored row reads; marks the table as read by queries.
    fn view_parts(&self, table: &str, columns: &[ColumnDef]) -> Result<View<'_>, ReplicaError> {
        let merged = self.merged(table)?;
        let state = self.tables.get(table).ok_or_else(|| ReplicaError::NotSynced(table.to_string()))?;
        let stored = state.columns.as_ref().ok_or_else(|| ReplicaError::SchemaPending(table.to_string()))?;
        for d in &merged.subs {
            d.rows.check_readable(table)?;
        }
        let mut pending = BTreeMap::new();
        for (key, changed) in &merged.pending {
            let typed = changed.as_ref().map(|row| typed_row(table, row, columns)).transpose()?;
            pending.insert(key.clone(), typed);
        }
        state.read.set(true);
        // Rows are typed to the table's columns, which are what queries plan with; anything
        // else is read through JSON.
        Ok(View { aligned: same_columns(stored, columns), merged, pending })
    }

    /// A CRDT_TEXT cell as the application sees it, pending edits merged: `{"text", "state"}`
    /// (state = base64 Yjs v1 update), a plain string for a pending text replacement, or null.
    pub fn crdt_cell(&self, table: &str, pk: &Value, column: &str) -> Result<Value, ReplicaError> {
        if !self.crdt_columns(table)?.iter().any(|c| c == column) {
            return Err(ReplicaError::NotCrdtText { table: table.to_string(), column: column.to_string() });
        }
        let key = pk_key(pk);
        let row = match self.primary_key(table) {
            Some(pk_col) => self.merged_row(table, pk_col, &key, &self.outbox.ops_on_row(table, pk_col, &key))?,
            None => self.subs_of(table).find_map(|(_, d)| d.rows.json_row(&key)),
        };
        Ok(row.and_then(|r| r.get(column).cloned()).unwrap_or(Value::Null))
    }

    /// The subscriptions of `table` (their confirmed rows) and its pending writes replayed by
    /// primary key. Confirmed rows are borrowed, never copied: only rows touched by pending
    /// writes are materialised.
    fn merged(&self, table: &str) -> Result<MergedTable<'_>, ReplicaError> {
        let crdt_columns = self.crdt_columns(table)?;
        let subs: Vec<&SubscriptionData> = self.subs_of(table).map(|(_, data)| data).collect();
        let mut m = MergedTable { crdt_columns, subs, pending: BTreeMap::new() };
        if let Some(pk_col) = self.primary_key(table) {
            for op in self.outbox.ops_on_table(table, pk_col) {
                m.replay(pk_col, op);
            }
        }
        Ok(m)
    }

    fn crdt_columns(&self, table: &str) -> Result<Vec<String>, ReplicaError> {
        Ok(self
            .table_columns(table)?
            .into_iter()
            .filter(|c| c.data_type == CRDT_TEXT)
            .map(|c| c.name.clone())
            .collect())
    }
}

/// `row` (JSON, by column name) aligned to `columns` as typed values. A column the row lacks
/// (one a subscription of the table does not select) is NULL; a CRDT_TEXT cell is its text.
fn typed_row(table: &str, row: &Row, columns: &[ColumnDef]) -> Result<TypedRow, ReplicaError> {
    typed_values(table, columns, &|i| row.get(&columns[i].name).unwrap_or(&NULL))
}

/// JSON `null`, to borrow for absent cells.
static NULL: Value = Value::Null;

/// The typed row of the JSON values `value(i)`, one per column of `columns`; a CRDT_TEXT cell
/// is its text.
pub(crate) fn typed_values<'v>(
    table: &str,
    columns: &[ColumnDef],
    value: &dyn Fn(usize) -> &'v Value,
) -> Result<TypedRow, ReplicaError> {
    let mut failed = None;
    // Built in place, one allocation (the iterator's length is known); a value that does not
    // read is noted and reported once the row is built.
    let row: TypedRow = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let json = if c.ty == DataType::CrdtText { rows::crdt_text(value(i)) } else { value(i) };
            from_json(json, c.ty).unwrap_or_else(|source| {
                failed.get_or_insert_with(|| ReplicaError::BadValue {
                    table: table.to_string(),
                    column: c.name.clone(),
                    source,
                });
                kalamdb_query::Value::Null
            })
        })
        .collect();
    match failed {
        Some(error) => Err(error),
        None => Ok(row),
    }
}

/// A table as [`Replica::typed_view`] reads it (see [`Replica::view_parts`]).
struct View<'a> {
    merged: MergedTable<'a>,
    /// The rows pending writes changed, typed (`None`: deleted), by primary-key text.
    pending: BTreeMap<String, Option<TypedRow>>,
    /// Whether the stored rows are typed to the columns asked for.
    aligned: bool,
}

/// A table's subscriptions, whose confirmed rows are merged by key (the first subscription
/// with a key wins), and the rows pending writes changed (`None` = deleted).
struct MergedTable<'a> {
    crdt_columns: Vec<String>,
    subs: Vec<&'a SubscriptionData>,
    pending: BTreeMap<String, Option<Cow<'a, Row>>>,
}

impl<'a> MergedTable<'a> {
    fn get(&self, key: &str) -> Option<Cow<'a, Row>> {
        match self.pending.get(key) {
            Some(r) => r.clone(),
            None => self.subs.iter().find_map(|d| d.rows.json_row(key)),
        }
    }

    /// Replays one pending write.
    fn replay(&mut self, pk_col: &str, op: &MutationOp) {
        match op.op {
            MutationKind::Insert => {
                let Some(new) = &op.row else { return };
                let Some(pk) = new.get(pk_col) else { return };
                let mut row = new.clone();
                for c in &self.crdt_columns {
                    if let Some(v) = row.get_mut(c) {
                        *v = crdt_apply(&Value::Null, v);
                    }
                }
                self.pending.insert(pk_key(pk), Some(Cow::Owned(row)));
            }
            MutationKind::Update => {
                let (Some(pk), Some(changes)) = (&op.pk, &op.row) else { return };
                let key = pk_key(pk);
                let Some(mut row) = self.get(&key) else { return };
                let r = row.to_mut();
                for (k, v) in changes {
                    let v = if self.crdt_columns.contains(k) {
                        crdt_apply(r.get(k).unwrap_or(&Value::Null), v)
                    } else {
                        v.clone()
                    };
                    r.insert(k.clone(), v);
                }
                self.pending.insert(key, Some(row));
            }
            MutationKind::Delete => {
                if let Some(pk) = &op.pk {
                    self.pending.insert(pk_key(pk), None);
                }
            }
        }
    }
}

/// A pending write to a CRDT cell applied on top of its current value: a string replaces
/// the text; `{"update": base64}` merges into the document (with the `crdt` feature; without
/// it the confirmed text shows until the server echoes the merge).
fn crdt_apply(current: &Value, write: &Value) -> Value {
    match write {
        Value::Object(w) if w.contains_key("update") => merged_crdt(current, w.get("update")),
        other => other.clone(),
    }
}

#[cfg(feature = "crdt")]
fn merged_crdt(current: &Value, update: Option<&Value>) -> Value {
    use crate::crdt::CrdtText;
    let base = match current {
        Value::Object(m) => m.get("state").and_then(Value::as_str).and_then(|s| crate::crdt::decode_base64(s).ok()),
        _ => None,
    };
    let mut doc = match base.map(|b| CrdtText::from_state(&b)) {
        Some(Ok(doc)) => doc,
        _ => match current {
            Value::String(s) => CrdtText::from_text(s),
            _ => CrdtText::new(),
        },
    };
    if let Some(bytes) = update.and_then(Value::as_str).and_then(|s| crate::crdt::decode_base64(s).ok()) {
        let _ = doc.apply_update(&bytes);
    }
    serde_json::json!({ "text": doc.text(), "state": crate::crdt::encode_base64(&doc.state()) })
}

#[cfg(not(feature = "crdt"))]
fn merged_crdt(current: &Value, _update: Option<&Value>) -> Value {
    current.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(id: &str, columns: &[(&str, &str)]) -> StoreOp {
        crate::test_support::subscription(id, "app.t", columns, "id")
    }

    /// The columns local queries would read `app.t` with.
    fn columns(r: &Replica) -> Vec<ColumnDef> {
        r.table_columns("app.t")
            .unwrap()
            .into_iter()
            .map(|c| ColumnDef::new(c.name.clone(), c.data_type.parse().unwrap(), true))
            .collect()
    }

    /// The view in any order, to compare views whose rows arrived in different orders.
    fn sorted(mut rows: Vec<TypedRow>) -> Vec<TypedRow> {
        rows.sort_by_cached_key(|row| format!("{row:?}"));
        rows
    }

    /// The typed rows, kept by `apply` row by row and typed again when columns change, always
    /// show what a replica loaded from the store shows (the store types the rows it is given,
    /// or shares the replica's): random server rows, resets, schema changes and pending writes
    /// on a table synced by two subscriptions with different columns, read after every step.
    #[test]
    fn typed_rows_follow_every_change() {
        use crate::store::{MemoryStore, ReplicaStore};
        use futures::FutureExt;
        let mut next = crate::test_support::seeded_random(0x2545_f491_4f6c_dd1du64);
        let mut r = Replica::default();
        let store = MemoryStore::new();
        // Half the commits share the replica's typed rows with the store, half are typed by it.
        let commit = |r: &mut Replica, ops: Vec<StoreOp>, shared: bool| {
            r.apply(&ops);
            let done = if shared { store.commit_applied(ops, r) } else { store.commit(ops) };
            done.now_or_never().unwrap().unwrap();
        };
        commit(
            &mut r,
            vec![
                record("a", &[("id", "TEXT"), ("n", "BIGINT")]),
                record("b", &[("id", "TEXT"), ("price", "DECIMAL(10,2)")]),
            ],
            false,
        );
        let mut seq = 0;
        for step in 0..2000 {
            let sub = SubscriptionId(if next(2) == 0 { "a" } else { "b" }.into());
            let id = format!("k{}", next(12));
            let row = json!({"id": id, "n": next(100), "price": format!("{}.{:02}", next(50), next(100))});
            let op = match next(20) {
                0..=8 => StoreOp::PutRow { sub, pk: pk_key(&json!(id)), row: row.as_object().unwrap().clone().into() },
                9..=12 => StoreOp::DeleteRow { sub, pk: pk_key(&json!(id)) },
                13 => StoreOp::ClearRows(sub),
                14 => {
                    record("b", &[("id", "TEXT"), ("price", "DECIMAL(10,2)"), ("note", "TEXT")][..2 + next(2) as usize])
                }
                15..=17 => {
                    seq += 1;
                    let (kind, row, pk) = match next(3) {
                        0 => (MutationKind::Insert, Some(row.as_object().unwrap().clone()), None),
                        1 => (
                            MutationKind::Update,
                            Some(json!({"n": next(100)}).as_object().unwrap().clone()),
                            Some(json!(id)),
                        ),
                        _ => (MutationKind::Delete, None, Some(json!(id))),
                    };
                    let ops = vec![MutationOp { table: "app.t".into(), op: kind, row, pk }];
                    crate::test_support::pending_write(seq, ops)
                }
                _ => StoreOp::DeleteOutbox { client_id: "c".into(), seq: 1 + next(seq.max(1)) },
            };
            commit(&mut r, vec![op], next(2) == 0);
            let cols = columns(&r);
            let kept = r.typed_view("app.t", &cols).unwrap();
            let loaded = Replica::from_snapshot(store.load().now_or_never().unwrap().unwrap());
            assert_eq!(sorted(kept), sorted(loaded.typed_view("app.t", &cols).unwrap()), "step {step}");
        }
    }

    /// Confirmed rows show in the order they arrived, a pending write's row in the place of the
    /// row it changes, rows pending writes insert after them.
    #[test]
    fn pending_writes_replace_confirmed_rows_in_place() {
        let mut r = Replica::default();
        r.apply(&[record("a", &[("id", "TEXT"), ("n", "BIGINT")])]);
        for (id, n) in [("b", 1), ("d", 2)] {
            let row = json!({"id": id, "n": n}).as_object().unwrap().clone();
            r.apply(&[StoreOp::PutRow { sub: SubscriptionId("a".into()), pk: pk_key(&json!(id)), row: row.into() }]);
        }
        let op = |kind, row: Option<Value>, pk: Option<Value>| MutationOp {
            table: "app.t".into(),
            op: kind,
            row: row.map(|r| r.as_object().unwrap().clone()),
            pk,
        };
        let ops = vec![
            op(MutationKind::Insert, Some(json!({"id": "a", "n": 0})), None),
            op(MutationKind::Update, Some(json!({"n": 20})), Some(json!("d"))),
            op(MutationKind::Insert, Some(json!({"id": "c", "n": 3})), None),
            op(MutationKind::Delete, None, Some(json!("b"))),
            op(MutationKind::Insert, Some(json!({"id": "e", "n": 5})), None),
        ];
        r.apply(&[StoreOp::PutOutbox(OutboxEntry {
            client_id: "c".into(),
            seq: 1,
            ops,
            created_ms: 0.0,
            confirmed: None,
        })]);
        let cols = columns(&r);
        let view: Vec<Vec<kalamdb_query::Value>> =
            r.typed_view("app.t", &cols).unwrap().iter().map(|r| r.to_vec()).collect();
        let t = |s: &str| kalamdb_query::Value::Text(s.into());
        let i = kalamdb_query::Value::Int64;
        assert_eq!(view, vec![vec![t("d"), i(20)], vec![t("a"), i(0)], vec![t("c"), i(3)], vec![t("e"), i(5)]]);
    }

    /// A synced row whose value does not read as its column's type makes reads of the table
    /// fail, and gives the table a new generation, so live state built before it is rebuilt
    /// (and reports the error) rather than missing the row.
    #[test]
    fn a_row_that_does_not_read_fails_reads_and_ends_the_generation() {
        let mut r = Replica::default();
        r.apply(&[record("a", &[("id", "TEXT"), ("n", "BIGINT")])]);
        let put = |n: Value| StoreOp::PutRow {
            sub: SubscriptionId("a".into()),
            pk: pk_key(&json!("x")),
            row: json!({"id": "x", "n": n}).as_object().unwrap().clone().into(),
        };
        r.apply(&[put(json!(1))]);
        let cols = columns(&r);
        assert_eq!(r.typed_view("app.t", &cols).unwrap().len(), 1);
        let generation = r.typed_generation("app.t");
        r.apply(&[put(json!("one"))]);
        assert_ne!(r.typed_generation("app.t"), generation);
        assert!(matches!(r.typed_view("app.t", &cols), Err(ReplicaError::BadValue { column, .. }) if column == "n"));
        r.apply(&[put(json!(2))]);
        assert_eq!(
            r.typed_view("app.t", &cols).unwrap()[0].to_vec(),
            vec![kalamdb_query::Value::Text("x".into()), kalamdb_query::Value::Int64(2)]
        );
    }
}
