//! Reading a partition through both tiers. The newest `_updated` per primary key wins:
//! a hot row always supersedes cold versions of its key (a flush removes a hot row only
//! while it is still the flushed version), and among cold files the key index names the
//! newest version. Tombstones take part in the merge and are dropped afterwards unless the
//! reader asked for them.

use crate::cold::file::{self, FileColumn};
use crate::cold::key_index::{KeyIndex, PkColumn, PkKey};
use crate::cold::location::{Location, Opening};
use crate::cold::manifest::FileEntry;
use crate::cold::stats::compare;
use crate::cold::{ColdError, ColdPartition, ColdSnapshot, ColdStore};
use crate::error::Result;
use crate::ids::Partition;
use crate::schema::{DELETED_COLUMN, TableDef, UPDATED_COLUMN};
use crate::storage::row_codec::rows_to_batch;
use crate::storage::row_codec::{self, StoredRow};
use crate::storage::{CF_ROWS, OwnedSnapshot, Store, keys};
use crate::values::Value;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::{filter, not};
use datafusion::arrow::datatypes::SchemaRef;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// A comparison operator of a pruning predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CompareOp {
    Eq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl CompareOp {
    /// The operator with its operands swapped (`5 < c` is `c > 5`).
    pub(crate) fn flipped(self) -> CompareOp {
        match self {
            CompareOp::Eq => CompareOp::Eq,
            CompareOp::Lt => CompareOp::Gt,
            CompareOp::LtEq => CompareOp::GtEq,
            CompareOp::Gt => CompareOp::Lt,
            CompareOp::GtEq => CompareOp::LtEq,
        }
    }
}

/// What a predicate compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatColumn {
    /// User column by index into the table's columns.
    User(usize),
    Updated,
}

/// `column op value`: files whose statistics prove no row satisfies it are skipped.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FilePredicate {
    pub column: StatColumn,
    pub op: CompareOp,
    pub value: Value,
}

impl FilePredicate {
    /// False only when no row of `f` can satisfy the predicate.
    pub(crate) fn may_match(&self, table: &TableDef, f: &FileEntry) -> bool {
        let (min, max) = match self.column {
            StatColumn::Updated => (Value::Timestamp(f.min_updated), Value::Timestamp(f.max_updated)),
            StatColumn::User(i) => match f.columns.get(&table.columns[i].id) {
                Some(s) => match (&s.min, &s.max) {
                    (Some(min), Some(max)) => (min.clone(), max.clone()),
                    // Only NULLs: no comparison is true.
                    _ if s.nulls == f.rows => return false,
                    _ => return true,
                },
                None => return true,
            },
        };
        let (Some(v_min), Some(v_max)) = (compare(&self.value, &min), compare(&self.value, &max)) else {
            return true;
        };
        match self.op {
            CompareOp::Eq => v_min != Ordering::Less && v_max != Ordering::Greater,
            CompareOp::Lt => v_min == Ordering::Greater,
            CompareOp::LtEq => v_min != Ordering::Less,
            CompareOp::Gt => v_max == Ordering::Less,
            CompareOp::GtEq => v_max != Ordering::Greater,
        }
    }
}

/// What a scan of one partition returns.
#[derive(Debug, Clone)]
pub(crate) struct ScanSpec {
    pub table: Arc<TableDef>,
    pub partition: Partition,
    /// Output columns: indexes into the table's columns, then `_updated` and `_deleted` when
    /// `with_system`.
    pub projection: Vec<usize>,
    pub with_system: bool,
    pub with_tombstones: bool,
    /// Files whose statistics prove these false are skipped.
    pub predicates: Vec<FilePredicate>,
    /// Rows needed at most (no filter is left to apply above the scan).
    pub limit: Option<usize>,
}

/// What every part of a scan of one partition reads, fixed when the scan opens: a snapshot
/// of the hot rows taken with the file listing, and the listed files its predicates may
/// match. A scan reads both tiers a batch at a time — the hot rows, then each file's rows
/// that are the newest version of their key and have no hot version — so memory is bounded
/// by the batch size, not by the partition. Files are decoded on the thread that polls the
/// scan, so the fair scheduler accounts for the work.
pub(crate) struct ScanSource {
    spec: ScanSpec,
    snapshot: OwnedSnapshot,
    /// Holds the listed files until the scan ends.
    listing: ColdSnapshot,
    /// The listed files the predicates may match.
    files: Vec<FileEntry>,
    newest: NewestVersions,
    schema: SchemaRef,
    /// Read from files: key, tombstone flag, then the projection.
    file_columns: Vec<FileColumn>,
}

/// A scan in progress over a [`ScanSource`].
pub(crate) struct PartitionScan {
    source: ScanSource,
    /// Where the next hot chunk starts; `None` once the hot rows are done.
    hot_next: Option<Vec<u8>>,
    /// Files not yet started.
    files: VecDeque<FileEntry>,
    /// The file being read.
    reading: Option<FileCursor>,
    /// The next file, being opened while the current one is read.
    ahead: Option<Opening>,
    left: Option<usize>,
}

struct FileCursor {
    batch: u64,
    batches: file::FileBatches,
    /// File row number of the next row.
    row: u32,
    /// Some hot key falls in the file's key range: its rows are checked against the snapshot.
    check_hot: bool,
}

/// Rows per batch a scan returns (a file's row group).
const SCAN_BATCH_ROWS: usize = 65_536;

impl ScanSource {
    /// Lists the files and takes the hot snapshot. A flush that lands between the two would
    /// move rows out of the snapshot into a file the listing lacks: then both are taken again.
    pub(crate) async fn open(
        spec: ScanSpec,
        store: &Arc<Store>,
        cold_store: &ColdStore,
        cold: &ColdPartition,
    ) -> Result<Self> {
        let table = spec.table.clone();
        let (listing, snapshot, newest) = loop {
            let listing = cold.snapshot();
            crate::fault::delay(crate::fault::SCAN_AFTER_LISTING);
            let snapshot = OwnedSnapshot::of(store);
            if cold.generation() != listing.generation {
                continue;
            }
            if listing.files.is_empty() {
                break (listing, snapshot, NewestVersions::default());
            }
            if let Some(newest) = cold.newest_versions(cold_store, &table, &listing).await? {
                break (listing, snapshot, newest);
            }
        };
        let files =
            listing.files.iter().filter(|f| spec.predicates.iter().all(|p| p.may_match(&table, f))).cloned().collect();
        let n_user = table.columns.len();
        let mut file_columns = vec![FileColumn::User(table.primary_key), FileColumn::Deleted];
        file_columns.extend(spec.projection.iter().map(|&i| match i {
            i if i < n_user => FileColumn::User(i),
            i if i == n_user => FileColumn::Updated,
            _ => FileColumn::Deleted,
        }));
        let schema = projected_schema(&table, spec.with_system, &spec.projection)?;
        Ok(ScanSource { spec, snapshot, listing, files, newest, schema, file_columns })
    }

    /// Starts reading: the hot rows, then the files.
    pub(crate) fn scan(mut self) -> PartitionScan {
        let hot_next = Some(keys::partition_prefix(self.spec.table.id, self.spec.partition).to_vec());
        let files = std::mem::take(&mut self.files).into();
        PartitionScan { hot_next, files, reading: None, ahead: None, left: self.spec.limit, source: self }
    }

    /// Up to [`SCAN_BATCH_ROWS`] visible hot rows from `from` on, and where to go on from
    /// (`None` at the end of the partition).
    fn hot_chunk(&self, from: &[u8]) -> Result<(Option<RecordBatch>, Option<Vec<u8>>)> {
        let spec = &self.spec;
        let prefix = keys::partition_prefix(spec.table.id, spec.partition);
        let (store, snapshot) = (self.snapshot.borrow_owner(), self.snapshot.borrow_dependent());
        let cf = store.cf(CF_ROWS);
        let mut it = snapshot.raw_iterator_cf(&cf);
        it.seek(from);
        let mut rows = Vec::new();
        let mut next = None;
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(&prefix) {
                break;
            }
            if rows.len() == SCAN_BATCH_ROWS {
                next = Some(k.to_vec());
                break;
            }
            if spec.with_tombstones || !row_codec::decode_header(v)?.1 {
                rows.push(row_codec::decode(&spec.table, v)?);
            }
            it.next();
        }
        it.status()?;
        if rows.is_empty() {
            return Ok((None, next));
        }
        let refs: Vec<&StoredRow> = rows.iter().collect();
        Ok((Some(rows_to_batch(&spec.table, &refs, spec.with_system, Some(&spec.projection))?), next))
    }

    async fn open_file(&self, f: &FileEntry, opening: Opening) -> Result<FileCursor> {
        let table = &self.spec.table;
        let batches = file::open_from(opening, table, &self.file_columns, None, SCAN_BATCH_ROWS).await?;
        Ok(FileCursor { batch: f.batch, batches, row: 0, check_hot: self.hot_key_in_range(f)? })
    }

    /// Whether a hot row's key falls within file `f`'s key range (true without statistics):
    /// one seek in the snapshot, keys being encoded in order.
    fn hot_key_in_range(&self, f: &FileEntry) -> Result<bool> {
        let spec = &self.spec;
        let Some(stats) = f.columns.get(&spec.table.pk().id) else { return Ok(true) };
        let (Some(min), Some(max)) = (&stats.min, &stats.max) else { return Ok(true) };
        let (Ok(min), Ok(max)) = (keys::encode_pk(min), keys::encode_pk(max)) else { return Ok(true) };
        let (store, snapshot) = (self.snapshot.borrow_owner(), self.snapshot.borrow_dependent());
        let cf = store.cf(CF_ROWS);
        let mut it = snapshot.raw_iterator_cf(&cf);
        it.seek(keys::row_key(spec.table.id, spec.partition, &min));
        let prefix = keys::partition_prefix(spec.table.id, spec.partition);
        let found = it.key().is_some_and(|k| k.starts_with(&prefix) && k[prefix.len()..] <= max[..]);
        it.status()?;
        Ok(found)
    }

    /// The next batch of a file, with only its current rows: `None` at the end of the file,
    /// `Some(None)` when no row of the batch is kept.
    async fn step(&self, cursor: &mut FileCursor) -> Result<Option<Option<RecordBatch>>> {
        let Some(batch) = cursor.batches.next().await else { return Ok(None) };
        let batch = batch?;
        let spec = &self.spec;
        let n = batch.num_rows();
        let first = cursor.row;
        cursor.row += n as u32;
        let deleted = batch
            .column(1)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| ColdError::bad_column(DELETED_COLUMN))?;
        let newest = self.newest.of_file(cursor.batch);
        if newest.is_none() && !cursor.check_hot {
            // Every row is current: only tombstones may need hiding (no per-row work).
            let arrays = batch.columns()[2..].to_vec();
            let batch = match spec.with_tombstones || deleted.true_count() == 0 {
                true => RecordBatch::try_new_with_options(
                    self.schema.clone(),
                    arrays,
                    &RecordBatchOptions::new().with_row_count(Some(n)),
                ),
                false => {
                    let mask = not(deleted).map_err(ColdError::arrow("filter"))?;
                    let arrays = arrays
                        .iter()
                        .map(|a| filter(a.as_ref(), &mask))
                        .collect::<std::result::Result<Vec<_>, _>>()
                        .map_err(ColdError::arrow("filter"))?;
                    let kept = mask.true_count();
                    RecordBatch::try_new_with_options(
                        self.schema.clone(),
                        arrays,
                        &RecordBatchOptions::new().with_row_count(Some(kept)),
                    )
                }
            };
            let batch = batch.map_err(ColdError::arrow("assemble"))?;
            return Ok(Some((batch.num_rows() > 0).then_some(batch)));
        }
        let mut keep: Vec<bool> = (0..n)
            .map(|r| {
                newest.is_none_or(|words| is_set(words, first + r as u32))
                    && (spec.with_tombstones || !deleted.value(r))
            })
            .collect();
        if cursor.check_hot {
            // A hot version supersedes every cold one.
            let pks = PkColumn::new(spec.table.pk().data_type, batch.column(0).as_ref())?;
            let candidates: Vec<usize> = (0..n).filter(|&r| keep[r]).collect();
            let row_keys = candidates
                .iter()
                .map(|&r| Ok(keys::row_key(spec.table.id, spec.partition, &keys::encode_pk(&pks.key(r).value())?)))
                .collect::<Result<Vec<_>>>()?;
            let (store, snapshot) = (self.snapshot.borrow_owner(), self.snapshot.borrow_dependent());
            let cf = store.cf(CF_ROWS);
            let found = snapshot.multi_get_cf(row_keys.iter().map(|k| (&cf, k.as_slice())));
            for (&r, found) in candidates.iter().zip(found) {
                if found?.is_some() {
                    keep[r] = false;
                }
            }
        }
        let mask = BooleanArray::from(keep);
        let kept = mask.true_count();
        if kept == 0 {
            return Ok(Some(None));
        }
        let arrays: Vec<ArrayRef> = batch.columns()[2..]
            .iter()
            .map(|a| if kept == n { Ok(a.clone()) } else { filter(a.as_ref(), &mask) })
            .collect::<std::result::Result<_, _>>()
            .map_err(ColdError::arrow("filter"))?;
        let options = RecordBatchOptions::new().with_row_count(Some(kept));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options);
        Ok(Some(Some(batch.map_err(ColdError::arrow("assemble"))?)))
    }
}

impl PartitionScan {
    /// The next batch, or `None` at the end.
    pub(crate) async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if self.left == Some(0) {
                return Ok(None);
            }
            if let Some(from) = self.hot_next.take() {
                let (batch, next) = self.source.hot_chunk(&from)?;
                self.hot_next = next;
                match batch {
                    Some(batch) => return Ok(Some(self.apply_limit(batch))),
                    None => continue,
                }
            }
            let cursor = match &mut self.reading {
                Some(cursor) => cursor,
                None => match self.files.pop_front() {
                    Some(f) => {
                        let dir = &self.source.listing.dir;
                        let opening = match self.ahead.take() {
                            Some(opening) if opening.name() == f.file => opening,
                            _ => dir.open_ahead(&f.file)?,
                        };
                        self.ahead = self.files.front().map(|next| dir.open_ahead(&next.file)).transpose()?;
                        self.reading.insert(self.source.open_file(&f, opening).await?)
                    }
                    None => return Ok(None),
                },
            };
            match self.source.step(cursor).await? {
                Some(Some(batch)) => return Ok(Some(self.apply_limit(batch))),
                Some(None) => {}
                None => self.reading = None,
            }
        }
    }

    fn apply_limit(&mut self, batch: RecordBatch) -> RecordBatch {
        match &mut self.left {
            Some(left) => {
                let keep = (*left).min(batch.num_rows());
                *left -= keep;
                batch.slice(0, keep)
            }
            None => batch,
        }
    }
}

/// Which rows of a listing's files are the newest cold version of their key: taken from the
/// key index while it describes exactly those files. Files none of whose rows is superseded
/// need no entry, the others get one bit per row.
#[derive(Debug, Default)]
pub(crate) struct NewestVersions {
    bits: HashMap<u64, Vec<u64>>,
}

impl NewestVersions {
    pub(crate) fn of(index: &KeyIndex, files: &[FileEntry]) -> NewestVersions {
        let mut bits: HashMap<u64, Vec<u64>> = files
            .iter()
            .filter(|f| index.superseded_in(f.batch) > 0)
            .map(|f| (f.batch, vec![0u64; (f.rows as usize).div_ceil(64)]))
            .collect();
        if !bits.is_empty() {
            for (_, v) in index.iter() {
                if let Some(words) = bits.get_mut(&v.batch)
                    && let Some(word) = words.get_mut(v.row as usize / 64)
                {
                    *word |= 1 << (v.row % 64);
                }
            }
        }
        NewestVersions { bits }
    }

    /// The bits of file `batch`; `None` when every row of it is current.
    fn of_file(&self, batch: u64) -> Option<&[u64]> {
        self.bits.get(&batch).map(Vec::as_slice)
    }

    fn is_newest(&self, batch: u64, row: u32) -> bool {
        self.of_file(batch).is_none_or(|words| is_set(words, row))
    }
}

fn is_set(words: &[u64], row: u32) -> bool {
    words.get(row as usize / 64).is_some_and(|w| w & (1 << (row % 64)) != 0)
}

/// The current cold versions of a partition changed after `position` and at or before
/// `watermark`, in `_updated` order, leaving out keys whose newer version is hot
/// (`hot_keys`: encoded keys of hot rows changed after `position`). Only the listing's files
/// are read: the tier as it was when the reader's hot snapshot was taken.
///
/// Flushes write disjoint, increasing `_updated` ranges, in `_updated` order: such files are
/// streamed one batch at a time, so memory does not grow with the partition. Files that
/// overlap, or were written before files were sorted, are read and sorted as a group; without
/// [`NewestVersions`] (the tier changed before they could be taken) every file is one group,
/// deduplicated by key in memory.
pub(crate) struct ColdChanges {
    dir: Location,
    table: Arc<TableDef>,
    groups: VecDeque<Vec<FileEntry>>,
    position: i64,
    watermark: i64,
    hot_keys: HashSet<Vec<u8>>,
    newest: Option<NewestVersions>,
    columns: Vec<FileColumn>,
    /// Rows of the current group that are ready, in `_updated` order.
    ready: VecDeque<StoredRow>,
    /// The file being streamed, and the file row number of its next row.
    reader: Option<(FileEntry, file::FileBatches, u32)>,
    /// The next streamed file, being opened while the current one is read.
    ahead: Option<Opening>,
}

/// Rows decoded at a time while a file is streamed.
const STREAM_BATCH_ROWS: usize = 4096;

impl ColdChanges {
    pub(crate) fn new(
        dir: Location,
        table: Arc<TableDef>,
        files: &[FileEntry],
        position: i64,
        watermark: i64,
        hot_keys: HashSet<Vec<u8>>,
        newest: Option<NewestVersions>,
    ) -> ColdChanges {
        // A version after `position` can only be superseded by a later one, which is in a
        // file whose newest version is after `position` too.
        let mut files: Vec<FileEntry> = files.iter().filter(|f| f.max_updated > position).cloned().collect();
        let mut groups = VecDeque::new();
        if newest.is_none() {
            if !files.is_empty() {
                groups.push_back(files);
            }
        } else {
            files.sort_by_key(|f| (f.min_updated, f.max_updated));
            for f in files {
                match groups.back_mut() {
                    Some(group) if group.iter().any(|g: &FileEntry| g.max_updated >= f.min_updated) => group.push(f),
                    _ => groups.push_back(vec![f]),
                }
            }
        }
        let columns = file::row_columns(&table);
        ColdChanges {
            dir,
            table,
            groups,
            position,
            watermark,
            hot_keys,
            newest,
            columns,
            ready: VecDeque::new(),
            reader: None,
            ahead: None,
        }
    }

    /// `_updated` of the next row, without taking it.
    pub(crate) async fn peek_updated(&mut self) -> Result<Option<i64>> {
        self.fill().await?;
        Ok(self.ready.front().map(|r| r.updated))
    }

    /// The next row.
    pub(crate) async fn next_row(&mut self) -> Result<Option<StoredRow>> {
        self.fill().await?;
        Ok(self.ready.pop_front())
    }

    async fn fill(&mut self) -> Result<()> {
        while self.ready.is_empty() {
            if let Some((entry, batches, row)) = &mut self.reader {
                match batches.next().await {
                    Some(batch) => {
                        let batch = batch?;
                        let first = *row;
                        *row += batch.num_rows() as u32;
                        let newest = self.newest.as_ref().and_then(|n| n.of_file(entry.batch));
                        for r in 0..batch.num_rows() {
                            if newest.is_none_or(|words| is_set(words, first + r as u32))
                                && let Some(row) = self.candidate(&batch, r)?
                            {
                                self.ready.push_back(row);
                            }
                        }
                    }
                    None => self.reader = None,
                }
                continue;
            }
            let Some(group) = self.groups.pop_front() else { return Ok(()) };
            match group.as_slice() {
                [f] if f.sorted_by_updated && self.newest.is_some() => {
                    let opening = match self.ahead.take() {
                        Some(opening) if opening.name() == f.file => opening,
                        _ => self.dir.open_ahead(&f.file)?,
                    };
                    self.ahead = match self.groups.front().map(Vec::as_slice) {
                        Some([next]) => Some(self.dir.open_ahead(&next.file)?),
                        _ => None,
                    };
                    let batches = file::open_from(opening, &self.table, &self.columns, None, STREAM_BATCH_ROWS).await?;
                    self.reader = Some((f.clone(), batches, 0));
                }
                _ => self.read_group(&group).await?,
            }
        }
        Ok(())
    }

    /// A row of a file batch if it changed in the range and no hot version supersedes it.
    fn candidate(&self, batch: &RecordBatch, r: usize) -> Result<Option<StoredRow>> {
        let updated = batch
            .column(batch.num_columns() - 2)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .ok_or_else(|| ColdError::bad_column(UPDATED_COLUMN))?
            .value(r);
        if updated > self.watermark || updated <= self.position {
            return Ok(None);
        }
        let row = file::stored_row(&self.table, batch, r)?;
        let hot = keys::encode_pk(&row.values[self.table.primary_key]).is_ok_and(|k| self.hot_keys.contains(&k));
        Ok((!hot).then_some(row))
    }

    /// Reads a group of files whole, keeps the newest version per key, sorts by `_updated`.
    async fn read_group(&mut self, group: &[FileEntry]) -> Result<()> {
        let mut newest: HashMap<PkKey, StoredRow> = HashMap::new();
        for f in group {
            let mut row = 0u32;
            for b in file::read(&self.dir, &f.file, &self.table, &self.columns, None).await? {
                for r in 0..b.num_rows() {
                    let at = row + r as u32;
                    if self.newest.as_ref().is_some_and(|n| !n.is_newest(f.batch, at)) {
                        continue;
                    }
                    let Some(version) = self.candidate(&b, r)? else { continue };
                    let Some(key) = PkKey::of(&version.values[self.table.primary_key]) else { continue };
                    match newest.get(&key) {
                        Some(old) if old.updated >= version.updated => {}
                        _ => {
                            newest.insert(key, version);
                        }
                    }
                }
                row += b.num_rows() as u32;
            }
        }
        let mut rows: Vec<StoredRow> = newest.into_values().collect();
        rows.sort_by_key(|r| r.updated);
        self.ready.extend(rows);
        Ok(())
    }
}

/// Shares one projected schema between the hot batch and the file batches.
pub(crate) fn projected_schema(table: &TableDef, with_system: bool, projection: &[usize]) -> Result<SchemaRef> {
    Ok(Arc::new(table.arrow_schema(with_system).project(projection).map_err(ColdError::arrow("project"))?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cold::manifest::ColumnStats;
    use crate::schema::test_table;
    use crate::types::DataType;

    #[test]
    fn predicates_skip_only_files_that_cannot_match() {
        let table = test_table(&[("n", DataType::Int)]);
        let file = FileEntry {
            batch: 1,
            file: "batch-1.parquet".into(),
            rows: 10,
            tombstones: 0,
            oldest_tombstone: None,
            bytes: 1,
            min_updated: 100,
            max_updated: 200,
            created_at: 0,
            schema_version: 1,
            columns: [(1, ColumnStats { min: Some(Value::Int(10)), max: Some(Value::Int(20)), nulls: 0 })].into(),
            sorted_by_updated: true,
        };
        let n = |op, v: i64| {
            FilePredicate { column: StatColumn::User(0), op, value: Value::Int(v) }.may_match(&table, &file)
        };
        let u = |op, v: i64| {
            FilePredicate { column: StatColumn::Updated, op, value: Value::Timestamp(v) }.may_match(&table, &file)
        };
        use CompareOp::*;
        assert!(n(Eq, 10) && n(Eq, 20) && !n(Eq, 9) && !n(Eq, 21));
        assert!(n(Lt, 11) && !n(Lt, 10) && n(LtEq, 10) && !n(LtEq, 9));
        assert!(n(Gt, 19) && !n(Gt, 20) && n(GtEq, 20) && !n(GtEq, 21));
        assert!(u(Gt, 199) && !u(Gt, 200) && u(Lt, 101) && !u(Lt, 100));
        // Incomparable values never prune.
        let text = FilePredicate { column: StatColumn::User(0), op: Eq, value: Value::Text("x".into()) };
        assert!(text.may_match(&table, &file));
    }

    /// Generated partitions (keys rewritten and deleted across files, files sorted by
    /// `_updated` or not, some keys with a hot version): the streamed cold changes equal a
    /// merge done naively in memory, from every position, with and without the key index.
    #[tokio::test]
    async fn cold_changes_equal_a_naive_merge() {
        let table = test_table(&[("id", DataType::BigInt), ("n", DataType::Int)]);
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..12 {
            let dir = tempfile::tempdir().unwrap();
            let location = Location::Dir(dir.path().to_path_buf());
            let (mut entries, mut all) = (Vec::new(), Vec::new());
            let mut updated = 100i64;
            for batch in 1..=1 + next(5) {
                let mut keys: Vec<i64> = (0..40).filter(|_| next(3) == 0).collect();
                // Some files in key order (as written before files were sorted), some in
                // `_updated` order.
                let sorted = next(2) == 0;
                let mut rows: Vec<StoredRow> = keys
                    .drain(..)
                    .map(|k| {
                        updated += 1 + next(3) as i64;
                        StoredRow {
                            updated,
                            deleted: next(5) == 0,
                            values: vec![Value::Int(k), Value::Int(next(100) as i64)],
                        }
                    })
                    .collect();
                if !sorted {
                    rows.reverse();
                }
                let mut writer = file::FileWriter::create(&location, batch, table.clone()).unwrap();
                // Written in chunks, as a flush does.
                for chunk in rows.chunks(7) {
                    writer.write(chunk).unwrap();
                }
                let written = writer.finish().unwrap();
                assert_eq!(written.entry.sorted_by_updated, sorted || rows.len() < 2, "round {round}");
                written.publish().await.unwrap();
                entries.push(written.entry.clone());
                all.extend(rows);
            }
            let hot: HashSet<Vec<u8>> =
                (0..40).filter(|_| next(6) == 0).map(|k| keys::encode_pk(&Value::Int(k)).unwrap()).collect();
            let watermark = updated;
            let index = KeyIndex::build(&location, &table, &entries).await.unwrap();
            for position in [0, 100, 110, 130, updated / 2 + 50, watermark] {
                let mut newest: HashMap<i64, &StoredRow> = HashMap::new();
                for r in &all {
                    let Value::Int(k) = r.values[0] else { unreachable!() };
                    if newest.get(&k).is_none_or(|old| old.updated < r.updated) {
                        newest.insert(k, r);
                    }
                }
                let mut expected: Vec<(i64, i64, bool)> = newest
                    .values()
                    .filter(|r| r.updated > position && r.updated <= watermark)
                    .filter(|r| !hot.contains(&keys::encode_pk(&r.values[0]).unwrap()))
                    .map(|r| {
                        (
                            r.updated,
                            match r.values[0] {
                                Value::Int(k) => k,
                                _ => 0,
                            },
                            r.deleted,
                        )
                    })
                    .collect();
                expected.sort();
                for with_index in [true, false] {
                    let versions = with_index.then(|| NewestVersions::of(&index, &entries));
                    let mut changes = ColdChanges::new(
                        location.clone(),
                        table.clone(),
                        &entries,
                        position,
                        watermark,
                        hot.clone(),
                        versions,
                    );
                    let mut got = Vec::new();
                    while let Some(u) = changes.peek_updated().await.unwrap() {
                        let row = changes.next_row().await.unwrap().unwrap();
                        assert_eq!(row.updated, u);
                        got.push((
                            row.updated,
                            match row.values[0] {
                                Value::Int(k) => k,
                                _ => 0,
                            },
                            row.deleted,
                        ));
                    }
                    assert_eq!(got, expected, "round {round}, position {position}, index {with_index}");
                }
            }
        }
    }
}
