//! How much each partition holds in the hot tier: the number of hot row versions (one per
//! key) and the `_updated` of the oldest, which the flush policies (`rows:N`,
//! `interval:S`) are evaluated against. Counted from the change index at start, then kept
//! up to date by the commit path and by flushes.

use crate::error::{KalamError, Result};
use crate::ids::{Partition, TableId};
use crate::storage::{CF_ROW_INDEX, Store, keys};
use parking_lot::Mutex;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HotPartition {
    pub rows: u64,
    /// `_updated` of the oldest hot version.
    pub oldest: i64,
}

impl HotPartition {
    /// Whether some hot row is older than `t`.
    pub(crate) fn has_rows_before(&self, t: i64) -> bool {
        self.rows > 0 && self.oldest < t
    }
}

#[derive(Debug, Default)]
pub(crate) struct HotStats {
    partitions: Mutex<HashMap<(TableId, Partition), HotPartition>>,
}

impl HotStats {
    /// Counts the change index (one entry per hot key).
    pub(crate) fn load(store: &Store) -> Result<HotStats> {
        let mut partitions: HashMap<(TableId, Partition), HotPartition> = HashMap::new();
        let mut err = None;
        store.for_each_prefix(CF_ROW_INDEX, b"", |k, _| {
            let (Some(table), Some(part), Some(updated)) = (k.get(..8), k.get(8..16), keys::index_key_updated(k))
            else {
                err = Some(KalamError::Corrupt("change index key".into()));
                return false;
            };
            let table = TableId(u64::from_be_bytes(table.try_into().expect("8 bytes")));
            let partition = Partition::from_key(u64::from_be_bytes(part.try_into().expect("8 bytes")));
            let e = partitions.entry((table, partition)).or_insert(HotPartition { rows: 0, oldest: updated });
            e.rows += 1;
            e.oldest = e.oldest.min(updated);
            true
        })?;
        match err {
            Some(e) => Err(e),
            None => Ok(HotStats { partitions: Mutex::new(partitions) }),
        }
    }

    /// `n` new hot keys, the first of them written at `updated`.
    pub(crate) fn added(&self, table: TableId, partition: Partition, n: u64, updated: i64) {
        if n == 0 {
            return;
        }
        let mut parts = self.partitions.lock();
        let e = parts.entry((table, partition)).or_insert(HotPartition { rows: 0, oldest: updated });
        if e.rows == 0 {
            e.oldest = updated;
        }
        e.rows += n;
    }

    /// `n` keys left the hot tier. The oldest version is left as it was (at most older than
    /// the truth, so an interval policy fires early rather than late) until
    /// [`HotStats::set_oldest`].
    pub(crate) fn removed(&self, table: TableId, partition: Partition, n: u64) {
        let mut parts = self.partitions.lock();
        if let Some(e) = parts.get_mut(&(table, partition)) {
            e.rows = e.rows.saturating_sub(n);
            if e.rows == 0 {
                parts.remove(&(table, partition));
            }
        }
    }

    /// Sets the oldest hot version of a partition, read from its change index (`None`: it
    /// has no hot rows left).
    pub(crate) fn set_oldest(&self, table: TableId, partition: Partition, oldest: Option<i64>) {
        let mut parts = self.partitions.lock();
        match oldest {
            Some(o) => {
                if let Some(e) = parts.get_mut(&(table, partition)) {
                    e.oldest = o;
                }
            }
            None => {
                parts.remove(&(table, partition));
            }
        }
    }

    /// The hot rows of one partition, if it has any.
    pub(crate) fn get(&self, table: TableId, partition: Partition) -> Option<HotPartition> {
        self.partitions.lock().get(&(table, partition)).copied()
    }

    /// Partitions of `table` with hot rows.
    pub(crate) fn partitions_of(&self, table: TableId) -> Vec<(Partition, HotPartition)> {
        let mut out: Vec<_> =
            self.partitions.lock().iter().filter(|((t, _), _)| *t == table).map(|((_, p), s)| (*p, *s)).collect();
        out.sort_by_key(|(p, _)| *p);
        out
    }

    pub(crate) fn drop_table(&self, table: TableId) {
        self.partitions.lock().retain(|(t, _), _| *t != table);
    }
}
