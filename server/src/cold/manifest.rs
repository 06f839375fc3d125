//! The per-scope manifest: which Parquet files make up one partition's cold tier, with the
//! statistics reads prune by. A file is part of the tier exactly when the manifest lists it;
//! the manifest is replaced atomically (temp file, fsync, rename, fsync of the directory).
//!
//! ```json
//! {"format":1,"table_id":3,"next_batch":3,"files":[
//!   {"batch":1,"file":"batch-1.parquet","rows":120,"tombstones":4,"bytes":8123,
//!    "min_updated":1700000000000000,"max_updated":1700000000900000,"created_at":...,
//!    "oldest_tombstone":1700000000500000,
//!    "schema_version":1,"columns":{"2":{"min":{"Int":1},"max":{"Int":90},"nulls":0}}}],
//!  "obsolete":["batch-0.parquet"],"purged_through":1699990000000000}
//! ```
//! Column statistics are keyed by column id, so they survive renames. `obsolete` lists files
//! a compaction replaced that are still to be deleted (see [`crate::cleanup`]);
//! `purged_through` is the `_updated` of the newest tombstone a compaction purged (0: none).

use crate::cold::ColdError;
use crate::cold::location::Location;
use crate::error::{KalamError, Result};
use crate::ids::TableId;
use crate::schema::ColumnId;
use crate::values::Value;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

pub(crate) const MANIFEST_FILE: &str = "manifest.json";
const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub format: u32,
    /// The table the files belong to; a directory left by a dropped table of the same name
    /// has another id and is not read.
    pub table_id: TableId,
    /// Number of the next file to write; never reused, so a name always means one content.
    pub next_batch: u64,
    pub files: Vec<FileEntry>,
    /// Replaced by a compaction, no longer read, to be deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub obsolete: Vec<String>,
    /// `_updated` of the newest tombstone purged: a cursor older than this may have missed
    /// it, and cannot be caught up incrementally.
    #[serde(default)]
    pub purged_through: i64,
}

/// One flushed Parquet file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct FileEntry {
    pub batch: u64,
    pub file: String,
    /// Row versions in the file, tombstones included.
    pub rows: u64,
    pub tombstones: u64,
    /// `_updated` of the oldest tombstone (absent when there is none, and in files written
    /// before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_tombstone: Option<i64>,
    pub bytes: u64,
    pub min_updated: i64,
    pub max_updated: i64,
    pub created_at: i64,
    pub schema_version: u32,
    /// Min/max of the columns whose type has an order (absent when all values are NULL).
    pub columns: BTreeMap<ColumnId, ColumnStats>,
    /// The rows are in `_updated` order, so readers that need that order can stream the
    /// file instead of sorting it (false for files written before it was recorded).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sorted_by_updated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ColumnStats {
    pub min: Option<Value>,
    pub max: Option<Value>,
    pub nulls: u64,
}

impl Manifest {
    pub(crate) fn empty(table_id: TableId) -> Manifest {
        Manifest { format: FORMAT, table_id, next_batch: 1, files: Vec::new(), obsolete: Vec::new(), purged_through: 0 }
    }

    /// Reads `dir/manifest.json`; `None` if there is none.
    pub(crate) async fn load(dir: &Location) -> Result<Option<Manifest>> {
        let Some(bytes) = dir.read(MANIFEST_FILE).await? else { return Ok(None) };
        Manifest::from_bytes(&bytes, dir).map(Some)
    }

    /// Reads a manifest stored as [`Manifest::to_bytes`] made it, for the files of `dir`.
    pub(crate) fn from_bytes(bytes: &[u8], dir: &Location) -> Result<Manifest> {
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| ColdError::Corrupt(format!("manifest in {}: {e}", dir.display())))?;
        if manifest.format != FORMAT {
            return Err(ColdError::Corrupt(format!(
                "manifest in {} has format {}, this server reads {FORMAT}",
                dir.display(),
                manifest.format
            ))
            .into());
        }
        Ok(manifest)
    }

    /// Replaces `dir/manifest.json` atomically and durably.
    pub(crate) async fn store(&self, dir: &Location) -> Result<()> {
        dir.put(MANIFEST_FILE, self.to_bytes().into()).await
    }

    /// The manifest as stored in `manifest.json`.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("manifests serialise")
    }

    pub(crate) fn file_names(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|f| f.file.as_str())
    }
}

impl FileEntry {
    /// Whether the file holds a tombstone older than `horizon`.
    pub(crate) fn has_tombstone_before(&self, horizon: i64) -> bool {
        self.tombstones > 0 && self.oldest_tombstone.unwrap_or(self.min_updated) < horizon
    }
}

/// Writes `dir/name` through a temp file: write, fsync, rename, fsync the directory.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(KalamError::io("create", &tmp))?;
    f.write_all(bytes).map_err(KalamError::io("write", &tmp))?;
    f.sync_all().map_err(KalamError::io("sync", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name)).map_err(KalamError::io("rename", &tmp))?;
    sync_dir(dir)
}

/// fsyncs a directory, making renames and deletions in it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(KalamError::io("sync directory", dir))
}
