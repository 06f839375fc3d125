//! The key index of a partition's cold tier: for every primary key in its files, where
//! the newest cold version lives and what it is (`_updated`, tombstone or not). Built
//! lazily from the files' key and system columns, extended in place by each flush.
//!
//! It answers, without reading whole files: does a cold row exist for this key (INSERT
//! duplicate checks, UPDATE/DELETE of flushed rows, point reads), and is this row of a file
//! the newest cold version of its key (merging tiers in scans and catch-up).

use crate::cold::ColdError;
use crate::cold::file::{self, FileColumn};
use crate::cold::location::Location;
use crate::cold::manifest::FileEntry;
use crate::error::Result;
use crate::schema::{DELETED_COLUMN, TableDef, UPDATED_COLUMN};
use crate::types::DataType;
use crate::values::Value;
use datafusion::arrow::array::{
    Array, BooleanArray, Int16Array, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use std::collections::HashMap;

/// A primary-key value as a hash key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum PkKey {
    Int(i64),
    Text(Box<str>),
}

impl PkKey {
    pub(crate) fn of(v: &Value) -> Option<PkKey> {
        match v {
            Value::Int(i) => Some(PkKey::Int(*i)),
            Value::Text(s) => Some(PkKey::Text(s.as_str().into())),
            _ => None,
        }
    }

    pub(crate) fn value(&self) -> Value {
        match self {
            PkKey::Int(i) => Value::Int(*i),
            PkKey::Text(s) => Value::Text(s.to_string()),
        }
    }
}

/// Reads primary keys out of an Arrow column of the key's type.
pub(crate) enum PkColumn<'a> {
    Int16(&'a Int16Array),
    Int32(&'a Int32Array),
    Int64(&'a Int64Array),
    Text(&'a StringArray),
}

impl<'a> PkColumn<'a> {
    pub(crate) fn new(dt: DataType, a: &'a dyn Array) -> Result<PkColumn<'a>> {
        let bad = || ColdError::bad_column("of the primary key");
        let any = a.as_any();
        Ok(match dt {
            DataType::SmallInt => PkColumn::Int16(any.downcast_ref().ok_or_else(bad)?),
            DataType::Int => PkColumn::Int32(any.downcast_ref().ok_or_else(bad)?),
            DataType::BigInt => PkColumn::Int64(any.downcast_ref().ok_or_else(bad)?),
            DataType::Text => PkColumn::Text(any.downcast_ref().ok_or_else(bad)?),
            _ => return Err(bad().into()),
        })
    }

    pub(crate) fn key(&self, r: usize) -> PkKey {
        match self {
            PkColumn::Int16(a) => PkKey::Int(a.value(r) as i64),
            PkColumn::Int32(a) => PkKey::Int(a.value(r) as i64),
            PkColumn::Int64(a) => PkKey::Int(a.value(r)),
            PkColumn::Text(a) => PkKey::Text(a.value(r).into()),
        }
    }
}

/// Where the newest cold version of a key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ColdVersion {
    pub batch: u64,
    /// Row number within the file.
    pub row: u32,
    pub updated: i64,
    pub deleted: bool,
}

#[derive(Debug, Default)]
pub(crate) struct KeyIndex {
    map: HashMap<PkKey, ColdVersion>,
    /// Per file (batch), how many of its rows a newer cold version supersedes: a file with
    /// none needs no per-row check against the index when it is scanned.
    superseded: HashMap<u64, u64>,
}

impl KeyIndex {
    /// Reads the key and system columns of every file.
    pub(crate) async fn build(dir: &Location, table: &TableDef, files: &[FileEntry]) -> Result<KeyIndex> {
        let mut index = KeyIndex {
            map: HashMap::with_capacity(files.iter().map(|f| f.rows as usize).sum()),
            superseded: HashMap::new(),
        };
        let columns = [FileColumn::User(table.primary_key), FileColumn::Updated, FileColumn::Deleted];
        let mut ahead = files.first().map(|f| dir.open_ahead(&f.file)).transpose()?;
        for (i, f) in files.iter().enumerate() {
            let opening = ahead.take().expect("opened ahead");
            ahead = files.get(i + 1).map(|f| dir.open_ahead(&f.file)).transpose()?;
            let mut row = 0u32;
            let mut batches = file::open_from(opening, table, &columns, None, file::ROW_GROUP_ROWS).await?;
            while let Some(batch) = batches.next().await {
                let batch = batch?;
                let pks = PkColumn::new(table.pk().data_type, batch.column(0).as_ref())?;
                let updated = batch
                    .column(1)
                    .as_any()
                    .downcast_ref::<TimestampMicrosecondArray>()
                    .ok_or_else(|| ColdError::bad_column(UPDATED_COLUMN))?;
                let deleted = batch
                    .column(2)
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .ok_or_else(|| ColdError::bad_column(DELETED_COLUMN))?;
                for r in 0..batch.num_rows() {
                    let v = ColdVersion { batch: f.batch, row, updated: updated.value(r), deleted: deleted.value(r) };
                    index.insert(pks.key(r), v);
                    row += 1;
                }
            }
        }
        Ok(index)
    }

    /// Records `v` for `key` unless a newer version is known.
    pub(crate) fn insert(&mut self, key: PkKey, v: ColdVersion) {
        match self.map.get_mut(&key) {
            Some(old) if old.updated >= v.updated => *self.superseded.entry(v.batch).or_default() += 1,
            Some(old) => {
                *self.superseded.entry(old.batch).or_default() += 1;
                *old = v;
            }
            None => {
                self.map.insert(key, v);
            }
        }
    }

    /// How many rows of file `batch` are not the newest cold version of their key.
    pub(crate) fn superseded_in(&self, batch: u64) -> u64 {
        self.superseded.get(&batch).copied().unwrap_or(0)
    }

    pub(crate) fn get(&self, key: &PkKey) -> Option<&ColdVersion> {
        self.map.get(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Every key with its newest cold version.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&PkKey, &ColdVersion)> {
        self.map.iter()
    }
}
