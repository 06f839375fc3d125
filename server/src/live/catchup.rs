//! The initial load of a subscription, or its catch-up from a cursor, read through the
//! `(partition, _updated)` change index in a snapshot taken at the subscription's watermark
//! (under the commit lock, when it was registered): exactly the state every later live
//! event applies to.
//!
//! Rows are sent in `_updated` order, so the cursor after each batch is a valid resume
//! point: an interrupted first sync continues where it stopped. With `since`, rows that were
//! deleted — or no longer match the WHERE — since the cursor are reported by primary key in
//! `deleted`, so the client can drop them. Changes above the watermark are not read here:
//! they reach the client as live events.
//!
//! Once a partition has been flushed, rows changed after the cursor may be in Parquet
//! files: those (files pruned by their newest `_updated`, newest cold version per key,
//! left out when the key has a newer hot version) are merged into the stream in
//! `_updated` order, so a client cannot tell a flush happened. The files are the ones
//! listed when the snapshot was taken.

use crate::cold::merge::ColdChanges;
use crate::cold::{ColdPartition, ColdSnapshot, ColdStore};
use crate::error::{KalamError, Result};
use crate::live::query::{LiveQuery, to_batch};
use crate::storage::row_codec::{self, StoredRow};
use crate::storage::{CF_ROW_INDEX, CF_ROWS, Snapshot, Store, keys};
use kalamdb_client_core::protocol::ws::{ServerMessage, Subscribe};
use std::collections::{HashSet, VecDeque};

pub(crate) const DEFAULT_BATCH_SIZE: usize = 1000;
pub(crate) const MAX_BATCH_SIZE: usize = 10_000;

pub(crate) struct CatchUp {
    id: String,
    /// Exclusive lower bound: the next batch reads entries with `_updated > position`.
    position: i64,
    watermark: i64,
    /// Report deletions (a catch-up from a cursor, not a first load).
    report_deletes: bool,
    reset: bool,
    batch_size: usize,
    done: bool,
    /// Cold rows still to send, in `_updated` order.
    cold: Option<ColdChanges>,
}

/// What an initial load reads: the hot snapshot and the cold listing taken at its watermark.
pub(crate) struct LoadSnapshot<'a, 'db> {
    pub store: &'a Store,
    pub hot: &'a Snapshot<'db>,
    pub cold: &'a ColdSnapshot,
    /// The partition's cold tier: its key index tells which rows of the listed files are
    /// current, so that they can be streamed.
    pub tier: Option<(&'a ColdStore, &'a ColdPartition)>,
    pub watermark: i64,
}

impl CatchUp {
    /// Plans the load of `s` over `view`. A cursor older than the newest tombstone purged from
    /// the partition (`cold.purged_through`), which it may have missed, or from the future gets
    /// a reset: a full load the client replaces its copy with.
    pub(crate) async fn new(view: &LoadSnapshot<'_, '_>, query: &LiveQuery, s: &Subscribe) -> Result<CatchUp> {
        let batch_size = s.batch_size.map(|b| b as usize).unwrap_or(DEFAULT_BATCH_SIZE);
        if batch_size == 0 || batch_size > MAX_BATCH_SIZE {
            return Err(KalamError::Validation(format!("batch_size must be between 1 and {MAX_BATCH_SIZE}")));
        }
        let (cold, watermark) = (view.cold, view.watermark);
        let reset = s.since.is_some_and(|since| since < cold.purged_through || since > watermark);
        let mut load = CatchUp {
            id: s.id.clone(),
            position: match s.since {
                Some(since) if !reset => since,
                _ => 0,
            },
            watermark,
            report_deletes: s.since.is_some() && !reset,
            reset,
            batch_size,
            done: false,
            cold: None,
        };
        if let (Some(n), false) = (s.last_rows, load.report_deletes) {
            let cold_rows = cold_changes(view, query, load.position).await?;
            load.position = start_of_last_rows(view, query, cold_rows, n as usize).await?;
        }
        load.cold = cold_changes(view, query, load.position).await?;
        Ok(load)
    }

    /// The next `batch` frame, or `None` after the last one.
    pub(crate) async fn next_batch(
        &mut self,
        view: &LoadSnapshot<'_, '_>,
        query: &LiveQuery,
    ) -> Result<Option<ServerMessage>> {
        if self.done {
            return Ok(None);
        }
        let (store, snapshot) = (view.store, view.hot);
        let table = &query.table;
        let prefix = keys::partition_prefix(table.id, query.partition);
        let start = keys::index_key(table.id, query.partition, self.position.saturating_add(1));
        let mut entries: Vec<(i64, Vec<u8>)> = Vec::with_capacity(self.batch_size);
        let mut reached_end = true;
        {
            let cf = store.cf(CF_ROW_INDEX);
            let mut it = snapshot.raw_iterator_cf(&cf);
            it.seek(start);
            while it.valid() {
                let (Some(k), Some(v)) = (it.key(), it.value()) else { break };
                if !k.starts_with(&prefix) {
                    break;
                }
                let updated = keys::index_key_updated(k).ok_or_else(|| KalamError::Corrupt("index key".into()))?;
                if updated > self.watermark {
                    break;
                }
                if entries.len() == self.batch_size {
                    reached_end = false;
                    break;
                }
                entries.push((updated, v.to_vec()));
                it.next();
            }
            it.status()?;
        }
        // Merge the hot entries with the cold rows by `_updated`, up to a batch.
        let mut hot_taken = 0;
        let mut from_cold: Vec<StoredRow> = Vec::new();
        let mut last_updated = None;
        while hot_taken + from_cold.len() < self.batch_size {
            let hot = entries.get(hot_taken).map(|e| e.0);
            let cold = match &mut self.cold {
                Some(c) => c.peek_updated().await?,
                None => None,
            };
            let take_cold = match (hot, cold) {
                (Some(h), Some(c)) => c < h,
                (Some(_), None) => false,
                // Past the hot entries read: only when there are no more of them.
                (None, Some(_)) if reached_end => true,
                _ => break,
            };
            if take_cold {
                let row = match &mut self.cold {
                    Some(c) => c.next_row().await?,
                    None => None,
                };
                let Some(row) = row else { break };
                last_updated = Some(row.updated);
                from_cold.push(row);
            } else {
                last_updated = hot;
                hot_taken += 1;
            }
        }
        let cold_left = match &mut self.cold {
            Some(c) => c.peek_updated().await?.is_some(),
            None => false,
        };
        let reached_end = reached_end && hot_taken == entries.len() && !cold_left;
        entries.truncate(hot_taken);
        let rows_cf = store.cf(CF_ROWS);
        let keys: Vec<Vec<u8>> = entries.iter().map(|(_, pk)| keys::row_key(table.id, query.partition, pk)).collect();
        let fetched = snapshot.multi_get_cf(keys.iter().map(|k| (&rows_cf, k.as_slice())));
        let mut versions: Vec<StoredRow> = from_cold;
        for ((updated, _), bytes) in entries.iter().zip(fetched) {
            let Some(bytes) = bytes? else { continue };
            let row = row_codec::decode(table, &bytes)?;
            debug_assert_eq!(row.updated, *updated, "snapshot index and rows agree");
            versions.push(row);
        }
        let mut live: Vec<StoredRow> = Vec::with_capacity(versions.len());
        let mut deleted = Vec::new();
        for row in versions {
            if row.deleted {
                if self.report_deletes {
                    deleted.push(query.pk_json(&row.values));
                }
            } else {
                live.push(row);
            }
        }
        let refs: Vec<&StoredRow> = live.iter().collect();
        let matches = if refs.is_empty() { vec![] } else { query.matches_batch(&to_batch(table, &refs)?)? };
        let mut rows = Vec::with_capacity(live.len());
        for (row, m) in live.iter().zip(matches) {
            if m {
                rows.push(query.project(&row.values));
            } else if self.report_deletes {
                // It may have matched when the client last saw it.
                deleted.push(query.pk_json(&row.values));
            }
        }
        self.position = if reached_end { self.watermark } else { last_updated.unwrap_or(self.watermark) };
        self.done = reached_end;
        let reset = std::mem::take(&mut self.reset);
        Ok(Some(ServerMessage::Batch {
            id: self.id.clone(),
            rows,
            deleted,
            cursor: self.position,
            reset,
            last: self.done,
        }))
    }
}

/// The cold rows after `position` (up to the watermark), if any file has some. (Not a
/// method: a `CatchUp` holds file readers, which cannot be shared across threads.)
async fn cold_changes(view: &LoadSnapshot<'_, '_>, query: &LiveQuery, position: i64) -> Result<Option<ColdChanges>> {
    let cold = view.cold;
    if !cold.files.iter().any(|f| f.max_updated > position) {
        return Ok(None);
    }
    let hot_keys = hot_keys_after(view.store, view.hot, query, position, view.watermark)?;
    let newest = match view.tier {
        Some((store, tier)) => tier.newest_versions(store, &query.table, cold).await?,
        None => None,
    };
    Ok(Some(ColdChanges::new(
        cold.dir.clone(),
        query.table.clone(),
        &cold.files,
        position,
        view.watermark,
        hot_keys,
        newest,
    )))
}

/// Encoded keys of the hot rows changed after `position` (up to the watermark): their
/// cold versions are superseded.
fn hot_keys_after(
    store: &Store,
    snapshot: &Snapshot<'_>,
    query: &LiveQuery,
    position: i64,
    watermark: i64,
) -> Result<HashSet<Vec<u8>>> {
    let table = &query.table;
    let prefix = keys::partition_prefix(table.id, query.partition);
    let cf = store.cf(CF_ROW_INDEX);
    let mut it = snapshot.raw_iterator_cf(&cf);
    it.seek(keys::index_key(table.id, query.partition, position.saturating_add(1)));
    let mut out = HashSet::new();
    while it.valid() {
        let (Some(k), Some(pk)) = (it.key(), it.value()) else { break };
        if !k.starts_with(&prefix) || keys::index_key_updated(k).is_none_or(|u| u > watermark) {
            break;
        }
        out.insert(pk.to_vec());
        it.next();
    }
    it.status()?;
    Ok(out)
}

/// Rows of the cold stream matched against the filter at a time.
const MATCH_CHUNK: usize = 1024;

/// The exclusive start position from which the forward scan yields the newest `n` matching
/// rows at or below the watermark: the `_updated` of the newest `n` matching cold rows are
/// kept from one pass over the cold stream, then walked backwards together with the hot
/// change index.
async fn start_of_last_rows(
    view: &LoadSnapshot<'_, '_>,
    query: &LiveQuery,
    cold: Option<ColdChanges>,
    n: usize,
) -> Result<i64> {
    let (store, snapshot, watermark) = (view.store, view.hot, view.watermark);
    if n == 0 {
        return Ok(watermark);
    }
    let table = &query.table;
    // Newest `n` matching cold versions, oldest first.
    let mut cold_matches: VecDeque<i64> = VecDeque::new();
    if let Some(mut cold) = cold {
        let mut chunk: Vec<StoredRow> = Vec::with_capacity(MATCH_CHUNK);
        loop {
            let row = cold.next_row().await?;
            let end = row.is_none();
            if let Some(row) = row.filter(|r| !r.deleted) {
                chunk.push(row);
            }
            if chunk.len() == MATCH_CHUNK || (end && !chunk.is_empty()) {
                let refs: Vec<&StoredRow> = chunk.iter().collect();
                for (row, m) in chunk.iter().zip(query.matches_batch(&to_batch(table, &refs)?)?) {
                    if m {
                        if cold_matches.len() == n {
                            cold_matches.pop_front();
                        }
                        cold_matches.push_back(row.updated);
                    }
                }
                chunk.clear();
            }
            if end {
                break;
            }
        }
    }
    let prefix = keys::partition_prefix(table.id, query.partition);
    let cf = store.cf(CF_ROW_INDEX);
    let mut it = snapshot.raw_iterator_cf(&cf);
    it.seek_for_prev(keys::index_key(table.id, query.partition, watermark));
    let mut found = 0;
    loop {
        let hot = match (it.valid(), it.key(), it.value()) {
            (true, Some(k), Some(pk)) if k.starts_with(&prefix) => {
                Some((keys::index_key_updated(k).ok_or_else(|| KalamError::Corrupt("index key".into()))?, pk.to_vec()))
            }
            _ => None,
        };
        let cold_newest = cold_matches.back().copied();
        let updated = match (hot, cold_newest) {
            (Some((h, _)), Some(c)) if c > h => {
                cold_matches.pop_back();
                c
            }
            (Some((h, pk)), _) => {
                it.prev();
                let bytes = snapshot.get_cf(&store.cf(CF_ROWS), keys::row_key(table.id, query.partition, &pk))?;
                let matching = match bytes.map(|b| row_codec::decode(table, &b)).transpose()? {
                    Some(row) if !row.deleted => query.matches_batch(&to_batch(table, &[&row])?)?[0],
                    _ => false,
                };
                if !matching {
                    continue;
                }
                h
            }
            (None, Some(c)) => {
                cold_matches.pop_back();
                c
            }
            (None, None) => break,
        };
        found += 1;
        if found == n {
            return Ok(updated - 1);
        }
    }
    it.status()?;
    Ok(0)
}

/// The initial load of a STREAM subscription: the still-buffered events after `since`
/// (captured at the watermark), filtered and cut into batches. Evicted events are gone, so
/// streams never report deletes or resets.
pub(crate) fn stream_batches(
    query: &LiveQuery,
    id: &str,
    events: &[StoredRow],
    last_rows: Option<u32>,
    batch_size: Option<u32>,
    watermark: i64,
) -> Result<Vec<ServerMessage>> {
    let batch_size = batch_size.map(|b| b as usize).unwrap_or(DEFAULT_BATCH_SIZE);
    let refs: Vec<&StoredRow> = events.iter().collect();
    let matches = if refs.is_empty() { vec![] } else { query.matches_batch(&to_batch(&query.table, &refs)?)? };
    let mut matching: Vec<&StoredRow> = events.iter().zip(matches).filter(|(_, m)| *m).map(|(e, _)| e).collect();
    if let Some(n) = last_rows {
        let skip = matching.len().saturating_sub(n as usize);
        matching.drain(..skip);
    }
    let chunks: Vec<&[&StoredRow]> = matching.chunks(batch_size).collect();
    if chunks.is_empty() {
        return Ok(vec![ServerMessage::Batch {
            id: id.to_string(),
            rows: vec![],
            deleted: vec![],
            cursor: watermark,
            reset: false,
            last: true,
        }]);
    }
    let n = chunks.len();
    Ok(chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| ServerMessage::Batch {
            id: id.to_string(),
            rows: chunk.iter().map(|e| query.project(&e.values)).collect(),
            deleted: vec![],
            cursor: if i + 1 == n { watermark } else { chunk.last().map(|e| e.updated).unwrap_or(watermark) },
            reset: false,
            last: i + 1 == n,
        })
        .collect())
}
