//! One cold-tier Parquet file: its schema, writing a partition's rows into it, and reading
//! columns or single rows back.
//!
//! Every user column is a field named after the column, with the column id in the field
//! metadata (`kalamdb.column_id`), so a file reads through a later schema by id. A
//! CRDT_TEXT column is two fields: its text (what SQL reads) and `{name}__state`, the Yjs
//! document. `_updated` and `_deleted` follow. A flush writes rows in primary-key order.

use crate::cold::ColdError;
use crate::cold::location::Location;
use crate::cold::location::{FileReader, Opening};
use crate::cold::manifest::{ColumnStats, FileEntry, sync_dir};
use crate::cold::stats::StatsBuilder;
use crate::error::{KalamError, Result};
use crate::schema::{DELETED_COLUMN, TableDef, UPDATED_COLUMN};
use crate::storage::row_codec::StoredRow;
use crate::types::{ArrowForm, DataType};
use crate::values::{self, CrdtCell, Value};
use datafusion::arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, BooleanArray, Date32Array, Decimal128Array, Float32Array,
    Float64Array, Int16Array, Int32Array, Int64Array, RecordBatch, RecordBatchOptions, StringArray,
    TimestampMicrosecondArray, new_null_array,
};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, RowSelection};
use parquet::arrow::async_reader::{ParquetRecordBatchStream, ParquetRecordBatchStreamBuilder};
use parquet::basic::Compression;
use parquet::file::metadata::PageIndexPolicy;
use parquet::file::properties::WriterProperties;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

const COLUMN_ID_KEY: &str = "kalamdb.column_id";
/// Marks the field holding a CRDT_TEXT column's documents.
const ROLE_KEY: &str = "kalamdb.role";
const CRDT_STATE_ROLE: &str = "crdt_state";
const STATE_SUFFIX: &str = "__state";
/// Rows per Parquet row group (and per read batch).
pub(crate) const ROW_GROUP_ROWS: usize = 65_536;
/// Rows per data page at most. With the page index Parquet writes by default, a point
/// read fetches and decodes one page per column, not a whole column chunk. Smaller pages
/// cost scans a header, statistics and a decompression call each: at 1,024 rows an
/// aggregate over a compacted file got slower, at 4,096 it did not (BENCHMARKS.md).
const PAGE_ROWS: usize = 4_096;
/// Dictionary bytes per column chunk at most, after which a column is written plain. Every
/// read of a dictionary-encoded page decodes the whole dictionary first: at Parquet's default
/// of 1 MiB, a point read of a column of unique values decoded a megabyte; columns with few
/// distinct values (what dictionaries are for) stay well under this.
const DICTIONARY_BYTES: usize = 16 << 10;

/// A column of a cold file, as readers ask for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileColumn {
    /// User column `i` of the table's current columns, as SQL sees it.
    User(usize),
    /// The Yjs document of CRDT_TEXT column `i`.
    CrdtState(usize),
    Updated,
    Deleted,
}

/// Name of the file holding batch `n`.
pub(crate) fn file_name(batch: u64) -> String {
    format!("batch-{batch}.parquet")
}

/// Name of a file holding batch `n` that no other writer can have chosen: in a cluster two
/// nodes that each believe they lead may write batch `n` of one partition to the shared
/// storage at once, and only the one the log lists may stay.
pub(crate) fn unique_file_name(batch: u64) -> String {
    format!("batch-{batch}-{:016x}.parquet", rand::random::<u64>())
}

/// The batch number of a file name [`file_name`] or [`unique_file_name`] made; `None` for
/// any other name.
pub(crate) fn batch_of(name: &str) -> Option<u64> {
    let stem = name.strip_prefix("batch-")?.strip_suffix(".parquet")?;
    let (digits, tag) = match stem.split_once('-') {
        Some((digits, tag)) if tag.len() == 16 && tag.bytes().all(|b| b.is_ascii_hexdigit()) => (digits, Some(tag)),
        Some(_) => return None,
        None => (stem, None),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let canonical = match tag {
        Some(tag) => format!("batch-{n}-{tag}.parquet"),
        None => file_name(n),
    };
    (canonical == name).then_some(n)
}

fn file_schema(table: &TableDef) -> SchemaRef {
    let mut fields = Vec::with_capacity(table.columns.len() + 2);
    for c in &table.columns {
        let id = HashMap::from([(COLUMN_ID_KEY.to_string(), c.id.to_string())]);
        let mut meta = c.data_type.field(&c.name, true).metadata().clone();
        meta.extend(id.clone());
        fields.push(Field::new(&c.name, c.data_type.arrow(), true).with_metadata(meta));
        if c.data_type == DataType::CrdtText {
            let mut meta = id;
            meta.insert(ROLE_KEY.to_string(), CRDT_STATE_ROLE.to_string());
            fields.push(Field::new(format!("{}{STATE_SUFFIX}", c.name), ArrowType::Binary, true).with_metadata(meta));
        }
    }
    fields.push(DataType::Timestamp.field(UPDATED_COLUMN, false));
    fields.push(DataType::Boolean.field(DELETED_COLUMN, false));
    Arc::new(Schema::new(fields))
}

/// Arrow type of a requested column.
fn column_field(table: &TableDef, c: FileColumn) -> Field {
    match c {
        FileColumn::User(i) => table.columns[i].data_type.field(&table.columns[i].name, true),
        FileColumn::CrdtState(i) => {
            Field::new(format!("{}{STATE_SUFFIX}", table.columns[i].name), ArrowType::Binary, true)
        }
        FileColumn::Updated => DataType::Timestamp.field(UPDATED_COLUMN, false),
        FileColumn::Deleted => DataType::Boolean.field(DELETED_COLUMN, false),
    }
}

/// Where a file is written: a temp file next to its final name, or memory for an object
/// store (uploaded whole on publish).
enum Sink {
    File(std::fs::File),
    Memory(Vec<u8>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::File(f) => f.write(buf),
            Sink::Memory(m) => m.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::File(f) => f.flush(),
            Sink::Memory(_) => Ok(()),
        }
    }
}

/// Writes a partition's rows to `batch-{n}.parquet.tmp` (in memory for an object store);
/// [`FileWriter::finish`] makes it durable.
pub(crate) struct FileWriter {
    writer: ArrowWriter<Sink>,
    schema: SchemaRef,
    table: Arc<TableDef>,
    dir: Location,
    batch: u64,
    /// The file's name once published.
    name: String,
    stats: StatsBuilder,
    rows: u64,
    tombstones: u64,
    oldest_tombstone: Option<i64>,
    min_updated: i64,
    max_updated: i64,
    /// Every row so far came in `_updated` order.
    sorted_by_updated: bool,
}

impl FileWriter {
    /// A writer of `batch-{batch}.parquet` (see [`file_name`]).
    pub(crate) fn create(dir: &Location, batch: u64, table: Arc<TableDef>) -> Result<FileWriter> {
        FileWriter::create_named(dir, batch, file_name(batch), table)
    }

    /// A writer of batch `batch` under `name` (see [`unique_file_name`]).
    pub(crate) fn create_named(dir: &Location, batch: u64, name: String, table: Arc<TableDef>) -> Result<FileWriter> {
        let sink = match dir.local_dir() {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(KalamError::io("create", d))?;
                let tmp = d.join(format!("{name}.tmp"));
                Sink::File(std::fs::File::create(&tmp).map_err(KalamError::io("create", &tmp))?)
            }
            None => Sink::Memory(Vec::new()),
        };
        let schema = file_schema(&table);
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_data_page_row_count_limit(PAGE_ROWS)
            .set_dictionary_page_size_limit(DICTIONARY_BYTES)
            .build();
        let writer = ArrowWriter::try_new(sink, schema.clone(), Some(props)).map_err(ColdError::parquet("start"))?;
        Ok(FileWriter {
            writer,
            schema,
            stats: StatsBuilder::new(&table),
            table,
            dir: dir.clone(),
            batch,
            name,
            rows: 0,
            tombstones: 0,
            oldest_tombstone: None,
            min_updated: i64::MAX,
            max_updated: i64::MIN,
            sorted_by_updated: true,
        })
    }

    /// Appends rows (a flush writes them in `_updated` order; a compaction in file order,
    /// which is `_updated` order when its files are).
    pub(crate) fn write(&mut self, rows: &[StoredRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (i, c) in self.table.columns.iter().enumerate() {
            let vals: Vec<&Value> = rows.iter().map(|r| &r.values[i]).collect();
            columns.push(values::to_arrow(c.data_type, &vals)?);
            if c.data_type == DataType::CrdtText {
                let mut b = BinaryBuilder::with_capacity(rows.len(), 64 * rows.len());
                for v in &vals {
                    match v {
                        Value::Crdt(cell) => b.append_value(&cell.state),
                        _ => b.append_null(),
                    }
                }
                columns.push(Arc::new(b.finish()));
            }
        }
        columns.push(Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.updated))));
        columns.push(Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.deleted)))));
        let batch = RecordBatch::try_new(self.schema.clone(), columns).map_err(ColdError::arrow("assemble"))?;
        self.writer.write(&batch).map_err(ColdError::parquet("write"))?;
        for r in rows {
            self.stats.add(&r.values);
            self.rows += 1;
            if r.deleted {
                self.tombstones += 1;
                self.oldest_tombstone = Some(self.oldest_tombstone.map_or(r.updated, |t| t.min(r.updated)));
            }
            self.sorted_by_updated &= self.rows == 1 || r.updated >= self.max_updated;
            self.min_updated = self.min_updated.min(r.updated);
            self.max_updated = self.max_updated.max(r.updated);
        }
        Ok(())
    }

    /// Closes and fsyncs the temp file. The file is not part of the tier until published.
    pub(crate) fn finish(self) -> Result<WrittenFile> {
        let name = self.name;
        let (bytes, content) = match self.writer.into_inner().map_err(ColdError::parquet("finish"))? {
            Sink::File(file) => {
                let path = self.dir.local_dir().map(|d| d.join(format!("{name}.tmp"))).unwrap_or_default();
                file.sync_all().map_err(KalamError::io("sync", path))?;
                (file.metadata().map(|m| m.len()).unwrap_or(0), None)
            }
            Sink::Memory(m) => (m.len() as u64, Some(bytes::Bytes::from(m))),
        };
        let columns: BTreeMap<_, ColumnStats> = self.stats.finish();
        Ok(WrittenFile {
            dir: self.dir,
            content,
            entry: FileEntry {
                batch: self.batch,
                file: name,
                rows: self.rows,
                tombstones: self.tombstones,
                oldest_tombstone: self.oldest_tombstone,
                bytes,
                min_updated: self.min_updated,
                max_updated: self.max_updated,
                created_at: crate::clock::now_micros(),
                schema_version: self.table.schema_version,
                columns,
                sorted_by_updated: self.sorted_by_updated,
            },
        })
    }
}

/// A complete file: fsynced under its temp name, or in memory for an object store.
pub(crate) struct WrittenFile {
    dir: Location,
    content: Option<bytes::Bytes>,
    pub entry: FileEntry,
}

impl WrittenFile {
    fn paths(&self, d: &std::path::Path) -> (PathBuf, PathBuf) {
        (d.join(format!("{}.tmp", self.entry.file)), d.join(&self.entry.file))
    }

    /// Gives it its final name (rename and directory fsync, or upload).
    pub(crate) async fn publish(&self) -> Result<()> {
        match (self.dir.local_dir(), &self.content) {
            (Some(d), _) => {
                let (tmp, path) = self.paths(d);
                let d = d.to_path_buf();
                crate::cold::location::blocking(move || {
                    std::fs::rename(&tmp, &path).map_err(KalamError::io("rename", &tmp))?;
                    sync_dir(&d)
                })
                .await
            }
            (None, Some(content)) => self.dir.put(&self.entry.file, content.clone()).await,
            (None, None) => Err(KalamError::internal("a file for an object store was written without its content")),
        }
    }

    /// Removes the file (whichever name it has): the flush did not happen.
    pub(crate) async fn discard(&self) {
        match self.dir.local_dir() {
            Some(d) => {
                let (tmp, path) = self.paths(d);
                let _ = tokio::fs::remove_file(tmp).await;
                let _ = tokio::fs::remove_file(path).await;
            }
            None => {
                let _ = self.dir.delete(&self.entry.file).await;
            }
        }
    }
}

/// Reads `columns` of a file through `table`'s current columns (matched by column id;
/// columns the file lacks read as NULL), all rows or only `selection`.
pub(crate) async fn read(
    dir: &Location,
    name: &str,
    table: &TableDef,
    columns: &[FileColumn],
    selection: Option<RowSelection>,
) -> Result<Vec<RecordBatch>> {
    let mut batches = open(dir, name, table, columns, selection, ROW_GROUP_ROWS).await?;
    let mut out = Vec::new();
    while let Some(batch) = batches.next().await {
        out.push(batch?);
    }
    Ok(out)
}

/// The metadata of a file with its page index (when the file has one): kept by the
/// partition for its point reads, so that each one fetches only the pages holding its rows.
pub(crate) type Footer = ArrowReaderMetadata;

/// Reads the [`Footer`] of `name`.
pub(crate) async fn footer(dir: &Location, name: &str) -> Result<Footer> {
    let mut reader = dir.open_ranged(name)?.reader().await?;
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    Ok(ArrowReaderMetadata::load_async(&mut reader, options).await.map_err(ColdError::parquet("open"))?)
}

/// The rows `selection` picks out of `name`, whose footer is `footer`: only the pages that
/// hold them are read.
pub(crate) async fn read_selected(
    dir: &Location,
    name: &str,
    footer: Footer,
    table: &TableDef,
    columns: &[FileColumn],
    selection: RowSelection,
) -> Result<Vec<RecordBatch>> {
    let reader = dir.open_ranged(name)?.reader().await?;
    let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, footer);
    let mut batches = FileBatches::with_builder(builder, table, columns, Some(selection), ROW_GROUP_ROWS)?;
    let mut out = Vec::new();
    while let Some(batch) = batches.next().await {
        out.push(batch?);
    }
    Ok(out)
}

/// Like [`read`], but one batch of at most `batch_rows` rows at a time, fetching only the
/// column chunks of the row group being decoded.
pub(crate) async fn open(
    dir: &Location,
    name: &str,
    table: &TableDef,
    columns: &[FileColumn],
    selection: Option<RowSelection>,
    batch_rows: usize,
) -> Result<FileBatches> {
    open_from(dir.open_ahead(name)?, table, columns, selection, batch_rows).await
}

/// Like [`open`], for a file whose opening was started earlier ([`Location::open_ahead`]).
pub(crate) async fn open_from(
    opening: Opening,
    table: &TableDef,
    columns: &[FileColumn],
    selection: Option<RowSelection>,
    batch_rows: usize,
) -> Result<FileBatches> {
    FileBatches::new(opening.reader().await?, table, columns, selection, batch_rows).await
}

/// The batches of one file, in file order, with the requested columns (see [`open`]).
pub(crate) struct FileBatches {
    reader: ParquetRecordBatchStream<FileReader>,
    table: Arc<TableDef>,
    columns: Vec<FileColumn>,
    /// Where each requested column is among the decoded ones (`None`: not in the file).
    source: Vec<Option<usize>>,
    schema: SchemaRef,
}

impl FileBatches {
    async fn new(
        reader: FileReader,
        table: &TableDef,
        columns: &[FileColumn],
        selection: Option<RowSelection>,
        batch_rows: usize,
    ) -> Result<FileBatches> {
        let builder = ParquetRecordBatchStreamBuilder::new(reader).await.map_err(ColdError::parquet("open"))?;
        FileBatches::with_builder(builder, table, columns, selection, batch_rows)
    }

    fn with_builder(
        builder: ParquetRecordBatchStreamBuilder<FileReader>,
        table: &TableDef,
        columns: &[FileColumn],
        selection: Option<RowSelection>,
        batch_rows: usize,
    ) -> Result<FileBatches> {
        let file_schema = builder.schema().clone();
        // Position in the file of each requested column, if present.
        let find_user = |id: u16, state: bool| {
            file_schema.fields().iter().position(|f| {
                f.metadata().get(COLUMN_ID_KEY).is_some_and(|v| v == &id.to_string())
                    && f.metadata().get(ROLE_KEY).is_some_and(|r| r == CRDT_STATE_ROLE) == state
            })
        };
        let in_file: Vec<Option<usize>> = columns
            .iter()
            .map(|c| match *c {
                FileColumn::User(i) => find_user(table.columns[i].id, false),
                FileColumn::CrdtState(i) => find_user(table.columns[i].id, true),
                FileColumn::Updated => file_schema.index_of(UPDATED_COLUMN).ok(),
                FileColumn::Deleted => file_schema.index_of(DELETED_COLUMN).ok(),
            })
            .collect();
        let mut roots: Vec<usize> = in_file.iter().flatten().copied().collect();
        roots.sort_unstable();
        roots.dedup();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
        let mut builder = builder.with_projection(mask).with_batch_size(batch_rows);
        if let Some(selection) = selection {
            builder = builder.with_row_selection(selection);
        }
        let reader = builder.build().map_err(ColdError::parquet("open"))?;
        // Decoded columns come in file order: a column's place is the number of roots before it.
        let source = in_file.iter().map(|p| p.map(|p| roots.partition_point(|&r| r < p))).collect();
        let schema = Arc::new(Schema::new(columns.iter().map(|c| column_field(table, *c)).collect::<Vec<_>>()));
        Ok(FileBatches { reader, table: Arc::new(table.clone()), columns: columns.to_vec(), source, schema })
    }

    /// A decoded batch in the requested columns and types.
    fn convert(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let table = &self.table;
        let mut arrays = Vec::with_capacity(self.columns.len());
        for (c, src) in self.columns.iter().zip(&self.source) {
            let target = column_field(table, *c);
            let array = match src {
                Some(at) => {
                    let a = batch.column(*at).clone();
                    if a.data_type() == target.data_type() {
                        a
                    } else {
                        datafusion::arrow::compute::cast(&a, target.data_type()).map_err(ColdError::arrow("convert"))?
                    }
                }
                // A column added after the file was written: its fill value.
                None => match *c {
                    FileColumn::User(i) if table.columns[i].has_fill() => {
                        let fill = table.columns[i].fill();
                        values::to_arrow(table.columns[i].data_type, &vec![&fill; batch.num_rows()])?
                    }
                    _ => new_null_array(target.data_type(), batch.num_rows()),
                },
            };
            arrays.push(array);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)
            .map_err(ColdError::arrow("assemble"))?)
    }
}

impl FileBatches {
    /// The next batch; `None` at the end of the file.
    pub(crate) async fn next(&mut self) -> Option<Result<RecordBatch>> {
        let batch = self.reader.next().await?;
        Some(batch.map_err(|e| ColdError::parquet("decode")(e).into()).and_then(|b| self.convert(b)))
    }
}

/// Every column needed to rebuild whole rows of `table`.
pub(crate) fn row_columns(table: &TableDef) -> Vec<FileColumn> {
    let mut cols: Vec<FileColumn> = (0..table.columns.len()).map(FileColumn::User).collect();
    cols.extend(
        table
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.data_type == DataType::CrdtText)
            .map(|(i, _)| FileColumn::CrdtState(i)),
    );
    cols.push(FileColumn::Updated);
    cols.push(FileColumn::Deleted);
    cols
}

/// Rebuilds row `r` of a batch read with [`row_columns`].
pub(crate) fn stored_row(table: &TableDef, batch: &RecordBatch, r: usize) -> Result<StoredRow> {
    let n = table.columns.len();
    let mut state_at = n;
    let mut values = Vec::with_capacity(n);
    for (i, c) in table.columns.iter().enumerate() {
        let array = batch.column(i).as_ref();
        let v = if c.data_type == DataType::CrdtText {
            let states = batch.column(state_at);
            state_at += 1;
            crdt_cell(array, states.as_ref(), r)?
        } else {
            cell(c.data_type, array, r)?
        };
        values.push(v);
    }
    let updated = batch
        .column(batch.num_columns() - 2)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .ok_or_else(|| ColdError::bad_column(UPDATED_COLUMN))?
        .value(r);
    let deleted = batch
        .column(batch.num_columns() - 1)
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| ColdError::bad_column(DELETED_COLUMN))?
        .value(r);
    Ok(StoredRow { updated, deleted, values })
}

fn crdt_cell(text: &dyn Array, states: &dyn Array, r: usize) -> Result<Value> {
    if text.is_null(r) {
        return Ok(Value::Null);
    }
    let text = downcast::<StringArray>(text)?.value(r).to_string();
    let states = downcast::<BinaryArray>(states)?;
    Ok(Value::Crdt(Box::new(if states.is_null(r) {
        CrdtCell::from_legacy_text(&text)
    } else {
        CrdtCell { text, state: states.value(r).to_vec() }
    })))
}

fn downcast<T: 'static>(a: &dyn Array) -> Result<&T> {
    Ok(a.as_any().downcast_ref::<T>().ok_or_else(|| ColdError::Corrupt("a column has an unexpected type".into()))?)
}

/// The stored value of a cell of a column of type `dt`.
pub(crate) fn cell(dt: DataType, a: &dyn Array, r: usize) -> Result<Value> {
    if a.is_null(r) {
        return Ok(Value::Null);
    }
    Ok(match dt {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(downcast::<BooleanArray>(a)?.value(r)),
        DataType::SmallInt => Value::Int(downcast::<Int16Array>(a)?.value(r) as i64),
        DataType::Int => Value::Int(downcast::<Int32Array>(a)?.value(r) as i64),
        DataType::BigInt => Value::Int(downcast::<Int64Array>(a)?.value(r)),
        DataType::Float => Value::Float(downcast::<Float32Array>(a)?.value(r) as f64),
        DataType::Double => Value::Float(downcast::<Float64Array>(a)?.value(r)),
        DataType::Decimal { .. } => Value::Decimal(downcast::<Decimal128Array>(a)?.value(r)),
        DataType::Text | DataType::Json => Value::Text(downcast::<StringArray>(a)?.value(r).to_string()),
        DataType::CrdtText => Value::Crdt(Box::new(CrdtCell::from_legacy_text(downcast::<StringArray>(a)?.value(r)))),
        DataType::Bytes => Value::Bytes(downcast::<BinaryArray>(a)?.value(r).to_vec()),
        DataType::Date => Value::Date(downcast::<Date32Array>(a)?.value(r)),
        DataType::Timestamp => Value::Timestamp(downcast::<TimestampMicrosecondArray>(a)?.value(r)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::test_table;

    fn table() -> Arc<TableDef> {
        test_table(&[
            ("id", DataType::BigInt),
            ("note", DataType::CrdtText),
            ("price", DataType::Decimal { precision: 10, scale: 2 }),
            ("day", DataType::Date),
        ])
    }

    #[test]
    fn batch_numbers_are_read_from_plain_and_unique_names_only() {
        assert_eq!(batch_of(&file_name(7)), Some(7));
        let unique = unique_file_name(7);
        assert_eq!(batch_of(&unique), Some(7));
        assert_ne!(unique, unique_file_name(7), "two writers of one batch never share a name");
        for other in
            ["batch-07.parquet", "batch-7-xyz.parquet", "batch-7-00ff.parquet", "batch-.parquet", "manifest.json"]
        {
            assert_eq!(batch_of(other), None, "{other}");
        }
    }

    #[tokio::test]
    async fn rows_round_trip_through_a_file_with_stats() {
        let dir = tempfile::tempdir().unwrap();
        let t = table();
        let doc = |s: &str| Value::Crdt(Box::new(CrdtCell::from_legacy_text(s)));
        let rows = vec![
            StoredRow {
                updated: 10,
                deleted: false,
                values: vec![Value::Int(1), doc("a"), Value::Decimal(1234), Value::Date(5)],
            },
            StoredRow {
                updated: 30,
                deleted: true,
                values: vec![Value::Int(2), Value::Null, Value::Null, Value::Date(9)],
            },
            StoredRow {
                updated: 20,
                deleted: false,
                values: vec![Value::Int(3), doc("c"), Value::Decimal(-5), Value::Null],
            },
        ];
        let loc = Location::Dir(dir.path().to_path_buf());
        let mut w = FileWriter::create(&loc, 7, t.clone()).unwrap();
        w.write(&rows[..1]).unwrap();
        w.write(&rows[1..]).unwrap();
        let written = w.finish().unwrap();
        written.publish().await.unwrap();
        let e = &written.entry;
        assert_eq!((e.batch, e.rows, e.tombstones, e.min_updated, e.max_updated), (7, 3, 1, 10, 30));
        assert_eq!(e.columns[&1].min, Some(Value::Int(1)));
        assert_eq!(e.columns[&3].max, Some(Value::Decimal(1234)));
        assert_eq!(e.columns[&4].nulls, 1);
        assert!(!e.columns.contains_key(&2), "no stats for CRDT_TEXT");
        let batches = read(&loc, &file_name(7), &t, &row_columns(&t), None).await.unwrap();
        let back: Vec<StoredRow> =
            batches.iter().flat_map(|b| (0..b.num_rows()).map(|r| stored_row(&t, b, r).unwrap())).collect();
        assert_eq!(back, rows);
        let only_last = read(
            &loc,
            &file_name(7),
            &t,
            &row_columns(&t),
            Some(RowSelection::from_consecutive_ranges(std::iter::once(2..3), 3)),
        )
        .await
        .unwrap();
        assert_eq!(stored_row(&t, &only_last[0], 0).unwrap(), rows[2]);
    }

    #[tokio::test]
    async fn a_point_read_goes_through_the_page_index_to_single_rows() {
        let dir = tempfile::tempdir().unwrap();
        let t = test_table(&[("id", DataType::BigInt), ("name", DataType::Text)]);
        let n = 10_000u64;
        let rows: Vec<StoredRow> = (0..n as i64)
            .map(|i| StoredRow {
                updated: i,
                deleted: false,
                values: vec![Value::Int(i), Value::Text(format!("name-{i}"))],
            })
            .collect();
        let loc = Location::Dir(dir.path().to_path_buf());
        let mut w = FileWriter::create(&loc, 1, t.clone()).unwrap();
        w.write(&rows).unwrap();
        w.finish().unwrap().publish().await.unwrap();

        let footer = footer(&loc, &file_name(1)).await.unwrap();
        let pages = footer.metadata().offset_index().expect("an offset index is written and read");
        let id_pages = pages[0][0].page_locations().len();
        assert!(id_pages >= n as usize / PAGE_ROWS, "{id_pages} pages of ids for {n} rows");

        let wanted = [0u64, 4_097, 9_999];
        let selection =
            RowSelection::from_consecutive_ranges(wanted.iter().map(|&r| r as usize..r as usize + 1), n as usize);
        let batches = read_selected(&loc, &file_name(1), footer, &t, &row_columns(&t), selection).await.unwrap();
        let back: Vec<StoredRow> =
            batches.iter().flat_map(|b| (0..b.num_rows()).map(|r| stored_row(&t, b, r).unwrap())).collect();
        assert_eq!(back, wanted.iter().map(|&r| rows[r as usize].clone()).collect::<Vec<_>>());
    }
}
