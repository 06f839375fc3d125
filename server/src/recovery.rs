//! Recovery of flushes and compactions a crash interrupted, run at start before any request
//! is served.
//!
//! For each pending record: files in the partition's directory that the manifest does not
//! list (temp files, a renamed file whose manifest was never written, files a compaction
//! replaced) are deleted — a flush's rows are still hot, a compaction's still in the files
//! it would have replaced. If the manifest lists a pending flush's file, the flush had
//! committed: its hot rows are removed (each only if still the flushed version), as the
//! flush would have done.

use crate::cold::file::{self, FileColumn};
use crate::cold::manifest::MANIFEST_FILE;
use crate::cold::{ColdError, ColdPartition};
use crate::database::Database;
use crate::error::{KalamError, Result};
use crate::flush::{PendingFile, PendingKind, clear_pending, remove_hot_rows};
use crate::ids::Partition;
use crate::schema::{TableDef, UPDATED_COLUMN};
use crate::storage::{CF_CATALOG, keys};
use crate::values;
use std::sync::Arc;

pub(crate) async fn recover(db: &Database) -> Result<()> {
    for kind in [PendingKind::Flush, PendingKind::Compaction] {
        for (k, v) in db.store.scan_prefix(CF_CATALOG, kind.prefix().as_bytes())? {
            let key = String::from_utf8_lossy(&k).to_string();
            let pending: PendingFile =
                serde_json::from_slice(&v).map_err(|e| KalamError::Corrupt(format!("pending record {key}: {e}")))?;
            let table = db.catalog.tables(None).into_iter().find(|t| t.id == pending.table_id);
            let Some(table) = table else {
                clear_pending(db, &key)?;
                continue;
            };
            let recovered = match kind {
                PendingKind::Flush => recover_flush(db, &table, &pending, &key).await,
                PendingKind::Compaction => recover_compaction(db, &table, &pending, &key).await,
            };
            match recovered {
                Ok(()) => {}
                // An object store that cannot be reached must not keep the server down: the
                // record stays, and reads tolerate what the interrupted work left.
                Err(e) if !table.options.storage.is_local() => tracing::error!(
                    table = %table.qualified_name(),
                    "cannot recover an interrupted flush or compaction (retried at the next start): {}",
                    e.report()
                ),
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Removes what an interrupted compaction left: its unlisted file, or the files it replaced.
async fn recover_compaction(db: &Database, table: &Arc<TableDef>, pending: &PendingFile, key: &str) -> Result<()> {
    let cold = db.cold.partition(table, Partition::from_key(pending.partition)).await?;
    let flushing = cold.flush_lock.lock().await;
    remove_unlisted_files(&cold).await?;
    crate::cleanup::delete_retired(&cold, &flushing).await?;
    clear_pending(db, key)?;
    tracing::info!(table = %table.qualified_name(), "recovered an interrupted compaction (batch {})", pending.batch);
    Ok(())
}

/// Finishes or rolls back one interrupted flush.
async fn recover_flush(db: &Database, table: &Arc<TableDef>, pending: &PendingFile, key: &str) -> Result<()> {
    let partition = Partition::from_key(pending.partition);
    let cold = db.cold.partition(table, partition).await?;
    remove_unlisted_files(&cold).await?;
    let entry = cold.files().into_iter().find(|f| f.batch == pending.batch);
    let flushed = match entry {
        Some(entry) => {
            let columns = [FileColumn::User(table.primary_key), FileColumn::Updated];
            let mut flushed = Vec::with_capacity(entry.rows as usize);
            for b in file::read(&cold.dir, &entry.file, table, &columns, None).await? {
                for r in 0..b.num_rows() {
                    let pk = file::cell(table.pk().data_type, b.column(0).as_ref(), r)?;
                    let updated = match file::cell(crate::types::DataType::Timestamp, b.column(1).as_ref(), r)? {
                        values::Value::Timestamp(t) => t,
                        _ => return Err(ColdError::bad_column(UPDATED_COLUMN).into()),
                    };
                    flushed.push((keys::encode_pk(&pk)?, updated));
                }
            }
            flushed
        }
        None => Vec::new(),
    };
    let removed = remove_hot_rows(db, table, partition, &flushed, Some(key)).await?;
    tracing::info!(
        table = %table.qualified_name(),
        "recovered an interrupted flush: batch {} {} ({} hot rows removed)",
        pending.batch,
        if flushed.is_empty() { "rolled back" } else { "completed" },
        removed
    );
    Ok(())
}

/// Deletes temp files and Parquet files the manifest does not list.
async fn remove_unlisted_files(cold: &ColdPartition) -> Result<()> {
    let manifest = cold.manifest();
    let listed: Vec<&str> = manifest.file_names().collect();
    for name in cold.dir.list(false).await? {
        let orphan = name.ends_with(".tmp") || (name != MANIFEST_FILE && !listed.contains(&name.as_str()));
        if orphan {
            cold.dir.delete(&name).await?;
        }
    }
    Ok(())
}
