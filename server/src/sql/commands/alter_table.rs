//! ALTER TABLE: each change makes a new schema version (kept in `system.table_schemas`).
//!
//! Stored rows and Parquet files keep their column ids, so every older version reads
//! through the new one: added columns read as their literal DEFAULT (else NULL), dropped
//! ones are skipped, renamed ones are found by id and widened types are cast. Live
//! subscriptions on the table end with a `schema_changed` frame after every earlier change;
//! clients subscribe again and carry their rows over (see `docs/protocol.md`).

use crate::error::{KalamError, Result};
use crate::ids::normalize_ident;
use crate::schema::{AccessLevel, DELETED_COLUMN, TableDef, TableKind, UPDATED_COLUMN};
use crate::sql::ast::{AlterTableAction, TableRef};
use crate::sql::commands::table::column_def;
use crate::sql::{ExecContext, results};
use crate::types::DataType;
use kalamdb_client_core::protocol::{QueryResult, Role};

pub(crate) async fn alter(cx: &ExecContext<'_>, table: &TableRef, action: &AlterTableAction) -> Result<QueryResult> {
    cx.principal.require(Role::Dba, "ALTER TABLE")?;
    let def = cx.resolve_table(table)?;
    if def.kind == TableKind::Stream {
        return Err(KalamError::NotSupported(format!(
            "'{}' is a STREAM table, which cannot be altered; drop it and create it again",
            def.qualified_name()
        )));
    }
    let (next, change) = next_definition(cx, &def, action)?;
    // Waits for running flushes, which decode rows through the old definition.
    let _schema = cx.db.schema_lock.write().await;
    let altered = cx.db.committer.change_schema(|| cx.db.catalog.alter_table(next, change.clone(), cx.now()))?;
    Ok(results::message(
        0,
        format!("Table '{}' altered: {change} (schema version {})", altered.qualified_name(), altered.schema_version),
    ))
}

/// The table after `action`, and a description of the change.
fn next_definition(cx: &ExecContext<'_>, def: &TableDef, action: &AlterTableAction) -> Result<(TableDef, String)> {
    let mut next = def.clone();
    next.schema_version += 1;
    let existing = |name: &str| -> Result<usize> {
        let name = name.to_ascii_lowercase();
        if name == UPDATED_COLUMN || name == DELETED_COLUMN {
            return Err(KalamError::Validation(format!("'{name}' is a system column and cannot be altered")));
        }
        def.column_index(&name).ok_or_else(|| {
            KalamError::Validation(format!("column '{name}' does not exist in '{}'", def.qualified_name()))
        })
    };
    let not_primary_key = |i: usize, what: &str| {
        if i == def.primary_key {
            Err(KalamError::Validation(format!("cannot {what} the primary key '{}'", def.pk().name)))
        } else {
            Ok(())
        }
    };
    let change = match action {
        AlterTableAction::AddColumn(spec) => {
            if spec.primary_key {
                return Err(KalamError::Validation(format!(
                    "'{}' already has a primary key ('{}')",
                    def.qualified_name(),
                    def.pk().name
                )));
            }
            let col = column_def(next.next_column_id, spec, false)?;
            if def.column_index(&col.name).is_some() {
                return Err(KalamError::AlreadyExists(format!(
                    "column '{}' already exists in '{}'",
                    col.name,
                    def.qualified_name()
                )));
            }
            if !col.nullable && !col.has_fill() {
                return Err(KalamError::Validation(format!(
                    "NOT NULL column '{}' needs a literal DEFAULT for the rows that already exist",
                    col.name
                )));
            }
            let change = format!("ADD COLUMN {} {}", col.name, col.data_type.sql_name());
            next.columns.push(col);
            next.next_column_id += 1;
            change
        }
        AlterTableAction::DropColumn(name) => {
            let i = existing(name)?;
            not_primary_key(i, "drop")?;
            refuse_if_subscribed(cx, def, i, "drop")?;
            let col = next.columns.remove(i);
            if i < next.primary_key {
                next.primary_key -= 1;
            }
            format!("DROP COLUMN {}", col.name)
        }
        AlterTableAction::RenameColumn { from, to } => {
            let i = existing(from)?;
            let to = normalize_ident("column", to)?;
            if to == UPDATED_COLUMN || to == DELETED_COLUMN {
                return Err(KalamError::Validation(format!("'{to}' is a system column name")));
            }
            if def.column_index(&to).is_some() {
                return Err(KalamError::AlreadyExists(format!(
                    "column '{to}' already exists in '{}'",
                    def.qualified_name()
                )));
            }
            refuse_if_subscribed(cx, def, i, "rename")?;
            let change = format!("RENAME COLUMN {} TO {to}", next.columns[i].name);
            next.columns[i].name = to;
            change
        }
        AlterTableAction::ModifyColumn { name, data_type } => {
            let i = existing(name)?;
            not_primary_key(i, "change the type of")?;
            let from = def.columns[i].data_type;
            if from == *data_type {
                return Err(KalamError::Validation(format!(
                    "column '{}' already has type {}",
                    def.columns[i].name,
                    from.sql_name()
                )));
            }
            if !widens(from, *data_type) {
                return Err(KalamError::NotSupported(format!(
                    "MODIFY COLUMN from {} to {} is not supported: only widening changes \
                     (SMALLINT → INT → BIGINT, FLOAT → DOUBLE) keep every stored value exact",
                    from.sql_name(),
                    data_type.sql_name()
                )));
            }
            next.columns[i].data_type = *data_type;
            format!("MODIFY COLUMN {} {}", next.columns[i].name, data_type.sql_name())
        }
        AlterTableAction::SetAccessLevel(level) => {
            if def.kind != TableKind::Shared {
                return Err(KalamError::Validation("SET ACCESS LEVEL applies to SHARED tables only".into()));
            }
            let parsed = AccessLevel::parse(level).ok_or_else(|| {
                KalamError::Validation(format!("invalid access level '{level}': use public, private or restricted"))
            })?;
            next.options.access_level = Some(parsed);
            format!("SET ACCESS LEVEL {}", parsed.as_str())
        }
    };
    Ok((next, change))
}

/// Type changes every stored value survives unchanged (integers share one stored form, as
/// do floating-point numbers; Parquet columns are cast on read).
fn widens(from: DataType, to: DataType) -> bool {
    use DataType::*;
    matches!((from, to), (SmallInt, Int) | (SmallInt, BigInt) | (Int, BigInt) | (Float, Double))
}

fn refuse_if_subscribed(cx: &ExecContext<'_>, def: &TableDef, i: usize, what: &str) -> Result<()> {
    // Applied from the log: the change ends this node's subscriptions to the table instead.
    if !cx.may_refuse_for_local_state() {
        return Ok(());
    }
    let id = def.columns[i].id;
    let users: Vec<String> = cx
        .db
        .live
        .snapshot()
        .into_iter()
        .filter(|s| s.query.table.id == def.id && s.query.named_columns.contains(&id))
        .map(|s| s.live_id.clone())
        .collect();
    if users.is_empty() {
        return Ok(());
    }
    Err(KalamError::InUse(format!(
        "cannot {what} column '{}': {} live subscription(s) use it ({}); end them (KILL LIVE QUERY) first",
        def.columns[i].name,
        users.len(),
        users.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
    )))
}
