//! The replica's working copy in memory: subscriptions with their confirmed rows, and the
//! outbox of local writes not yet confirmed.
//!
//! What the application sees of a table — its [`TableView`] — is the server-confirmed rows of
//! every subscription on that table, merged by primary key, with the pending outbox writes
//! replayed on top in order. A rejected write therefore rolls back by simply leaving the
//! outbox; nothing has to be undone in the confirmed rows.

use crate::protocol::ColumnInfo;
use crate::protocol::ws::{MutationKind, MutationOp};
use crate::store::{OutboxEntry, Row, Snapshot, StoreOp, SubscriptionId, SubscriptionRecord, pk_key};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;

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
}

/// One subscription: its record and the rows the server confirmed for it.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionData {
    pub record: Option<SubscriptionRecord>,
    pub rows: BTreeMap<String, Row>,
}

/// What a table looks like to the application: confirmed rows plus pending writes.
#[derive(Debug, Clone)]
pub struct TableView<'a> {
    pub columns: Vec<String>,
    pub rows: Vec<Cow<'a, Row>>,
}

/// The in-memory replica. Mutated only through [`Replica::apply`], with the same
/// [`StoreOp`]s that are committed to the store, so memory and disk cannot disagree.
#[derive(Debug, Clone, Default)]
pub struct Replica {
    subs: BTreeMap<SubscriptionId, SubscriptionData>,
    outbox: Vec<OutboxEntry>,
    meta: BTreeMap<String, Value>,
}

impl Replica {
    pub fn from_snapshot(s: Snapshot) -> Self {
        let mut r = Replica::default();
        for rec in s.subscriptions {
            let id = rec.id.clone();
            r.subs.entry(id).or_default().record = Some(rec);
        }
        for (sub, pk, row) in s.rows {
            // Rows of a subscription whose record is gone are leftovers; skip them.
            if let Some(d) = r.subs.get_mut(&sub) {
                d.rows.insert(pk, row);
            }
        }
        r.outbox = s.outbox;
        r.meta = s.meta.into_iter().collect();
        r
    }

    pub fn apply(&mut self, ops: &[StoreOp]) {
        for op in ops {
            match op {
                StoreOp::PutSubscription(rec) => {
                    self.subs.entry(rec.id.clone()).or_default().record = Some(rec.clone());
                }
                StoreOp::DeleteSubscription(id) => {
                    self.subs.remove(id);
                }
                StoreOp::PutRow { sub, pk, row } => {
                    self.subs.entry(sub.clone()).or_default().rows.insert(pk.clone(), row.clone());
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
                }
                StoreOp::PutOutbox(e) => {
                    match self.outbox.iter_mut().find(|x| x.client_id == e.client_id && x.seq == e.seq) {
                        Some(x) => *x = e.clone(),
                        None => self.outbox.push(e.clone()),
                    }
                }
                StoreOp::DeleteOutbox { client_id, seq } => {
                    self.outbox.retain(|x| !(x.client_id == *client_id && x.seq == *seq));
                }
                StoreOp::PutMeta { key, value } => {
                    self.meta.insert(key.clone(), value.clone());
                }
            }
        }
    }

    pub fn subscription(&self, id: &SubscriptionId) -> Option<&SubscriptionData> {
        self.subs.get(id)
    }

    pub fn subscriptions(&self) -> impl Iterator<Item = &SubscriptionRecord> {
        self.subs.values().filter_map(|d| d.record.as_ref())
    }

    pub fn outbox(&self) -> &[OutboxEntry] {
        &self.outbox
    }

    pub fn meta(&self, key: &str) -> Option<&Value> {
        self.meta.get(key)
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

    /// `namespace.table` of every synced table, each once, in name order.
    pub fn tables(&self) -> Vec<&str> {
        let mut tables: Vec<&str> = self.subscriptions().map(|r| r.table.as_str()).collect();
        tables.sort_unstable();
        tables.dedup();
        tables
    }

    /// The columns of `table` as the server described them. Several subscriptions on one table
    /// may select different columns: the table has their union, in the order of the widest
    /// schema (a `SELECT *` subscription gives the table's own order), then the columns only
    /// narrower ones have. A column keeps the first type seen (subscriptions in id order).
    pub fn table_columns(&self, table: &str) -> Result<Vec<&ColumnInfo>, ReplicaError> {
        let mut schemas: Vec<&[ColumnInfo]> = self.subs_of(table).map(|(r, _)| r.schema.as_slice()).collect();
        if schemas.is_empty() {
            return Err(ReplicaError::NotSynced(table.to_string()));
        }
        // Stable: equally wide schemas keep subscription order.
        schemas.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut columns: Vec<&ColumnInfo> = Vec::new();
        for c in schemas.into_iter().flatten() {
            if !columns.iter().any(|known| known.name == c.name) {
                columns.push(c);
            }
        }
        if columns.is_empty() {
            return Err(ReplicaError::SchemaPending(table.to_string()));
        }
        Ok(columns)
    }

    /// The application's view of `table`: confirmed rows of all its subscriptions merged by
    /// primary key, pending writes replayed on top, CRDT columns shown as text.
    pub fn table_view(&self, table: &str) -> Result<TableView<'_>, ReplicaError> {
        let merged = self.merged(table)?;
        let crdt_columns = &merged.crdt_columns;
        let rows = merged
            .rows()
            .map(|row| {
                if crdt_columns.iter().any(|c| row.get(c).is_some_and(Value::is_object)) {
                    let mut row = row.into_owned();
                    for c in crdt_columns {
                        if let Some(v) = row.get_mut(c) {
                            *v = crdt_display(v);
                        }
                    }
                    Cow::Owned(row)
                } else {
                    row
                }
            })
            .collect();
        Ok(TableView { columns: merged.columns.clone(), rows })
    }

    /// A CRDT_TEXT cell as the application sees it, pending edits merged: `{"text", "state"}`
    /// (state = base64 Yjs v1 update), a plain string for a pending text replacement, or null.
    pub fn crdt_cell(&self, table: &str, pk: &Value, column: &str) -> Result<Value, ReplicaError> {
        let merged = self.merged(table)?;
        if !merged.crdt_columns.iter().any(|c| c == column) {
            return Err(ReplicaError::NotCrdtText { table: table.to_string(), column: column.to_string() });
        }
        Ok(merged.get(&pk_key(pk)).and_then(|r| r.get(column).cloned()).unwrap_or(Value::Null))
    }

    /// Confirmed rows of `table` merged by primary key, with pending writes replayed on top.
    ///
    /// Confirmed rows are borrowed, never copied: only rows touched by pending writes are
    /// materialised, so a view of a large table costs a pointer per row.
    fn merged(&self, table: &str) -> Result<MergedTable<'_>, ReplicaError> {
        let schema = self.table_columns(table)?;
        let columns: Vec<String> = schema.iter().map(|c| c.name.clone()).collect();
        let crdt_columns: Vec<String> =
            schema.iter().filter(|c| c.data_type == CRDT_TEXT).map(|c| c.name.clone()).collect();
        let subs: Vec<&SubscriptionData> = self.subs_of(table).map(|(_, data)| data).collect();
        let confirmed: Vec<(&str, &Row)> = match subs.as_slice() {
            [one] => one.rows.iter().map(|(k, r)| (k.as_str(), r)).collect(),
            many => {
                let mut all: BTreeMap<&str, &Row> = BTreeMap::new();
                for d in many {
                    for (k, r) in &d.rows {
                        all.entry(k.as_str()).or_insert(r);
                    }
                }
                all.into_iter().collect()
            }
        };
        let mut m = MergedTable { columns, crdt_columns, confirmed, pending: BTreeMap::new() };
        if let Some(pk_col) = self.primary_key(table) {
            for entry in &self.outbox {
                for op in entry.ops.iter().filter(|op| op.table == table) {
                    m.replay(pk_col, op);
                }
            }
        }
        Ok(m)
    }
}

/// A table's confirmed rows (sorted by key) and the rows pending writes changed
/// (`None` = deleted).
struct MergedTable<'a> {
    columns: Vec<String>,
    crdt_columns: Vec<String>,
    confirmed: Vec<(&'a str, &'a Row)>,
    pending: BTreeMap<String, Option<Cow<'a, Row>>>,
}

impl<'a> MergedTable<'a> {
    fn get(&self, key: &str) -> Option<Cow<'a, Row>> {
        match self.pending.get(key) {
            Some(r) => r.clone(),
            None => {
                self.confirmed.binary_search_by(|(k, _)| (*k).cmp(key)).ok().map(|i| Cow::Borrowed(self.confirmed[i].1))
            }
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

    /// All visible rows in key order: confirmed and pending merged.
    fn rows(&self) -> impl Iterator<Item = Cow<'a, Row>> + '_ {
        let mut confirmed = self.confirmed.iter().peekable();
        let mut pending = self.pending.iter().peekable();
        std::iter::from_fn(move || {
            loop {
                let take_pending = match (confirmed.peek(), pending.peek()) {
                    (None, None) => return None,
                    (Some(_), None) => false,
                    (None, Some(_)) => true,
                    (Some((ck, _)), Some((pk, _))) => pk.as_str() <= *ck,
                };
                if take_pending {
                    let (pk, row) = pending.next()?;
                    if confirmed.peek().is_some_and(|(ck, _)| *ck == pk.as_str()) {
                        confirmed.next();
                    }
                    if let Some(row) = row {
                        return Some(row.clone());
                    }
                } else {
                    let (_, row) = confirmed.next()?;
                    return Some(Cow::Borrowed(*row));
                }
            }
        })
    }
}

/// Text of a CRDT cell in any of its forms: `{"text","state"}` from the server, or a string.
fn crdt_display(v: &Value) -> Value {
    match v {
        Value::Object(m) => m.get("text").cloned().unwrap_or(Value::Null),
        other => other.clone(),
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
