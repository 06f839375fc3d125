//! CREATE / DROP TABLE, SHOW TABLES, DESCRIBE TABLE [HISTORY], SHOW STATS FOR TABLE.

use crate::error::{KalamError, Result};
use crate::ids::{StorageId, TableId, normalize_ident};
use crate::schema::{
    AccessLevel, ColumnDef, DELETED_COLUMN, DefaultValue, FlushPolicy, StreamOptions, TableDef, TableKind,
    TableOptions, UPDATED_COLUMN,
};
use crate::sql::ast::{ColumnSpec, CreateTable, DefaultSpec, Literal, TableRef};
use crate::sql::system_tables as system;
use crate::sql::{ExecContext, results};
use crate::storage::{CF_ROWS, keys};
use crate::types::DataType;
use crate::values::{self, Value};
use kalamdb_client_core::protocol::{ColumnInfo, QueryResult, Role};
use serde_json::json;

/// A literal from DDL as a value (before coercion to the column type).
pub(crate) fn literal_value(l: &Literal) -> Value {
    match l {
        Literal::Null => Value::Null,
        Literal::Bool(b) => Value::Bool(*b),
        Literal::String(s) => Value::Text(s.clone()),
        Literal::Number(n) => match n.parse::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Text(n.clone()),
        },
    }
}

fn default_value(col: &str, dt: DataType, spec: &DefaultSpec) -> Result<DefaultValue> {
    let bad = |what: &str| {
        KalamError::Validation(format!("DEFAULT {what} does not fit column '{col}' of type {}", dt.sql_name()))
    };
    Ok(match spec {
        DefaultSpec::Literal(l) => {
            let v = match (dt, literal_value(l)) {
                (DataType::Float | DataType::Double, Value::Text(t)) if matches!(l, Literal::Number(_)) => {
                    Value::Float(t.parse().map_err(|_| bad(&t))?)
                }
                (_, v) => v,
            };
            DefaultValue::Literal(values::coerce(v, dt, col)?)
        }
        DefaultSpec::Now => match dt {
            DataType::Timestamp | DataType::Date | DataType::BigInt => DefaultValue::Now,
            _ => return Err(bad("NOW()")),
        },
        DefaultSpec::SnowflakeId => match dt {
            DataType::BigInt => DefaultValue::SnowflakeId,
            _ => return Err(bad("SNOWFLAKE_ID() (needs BIGINT)")),
        },
        DefaultSpec::UuidV7 => match dt {
            DataType::Text => DefaultValue::UuidV7,
            _ => return Err(bad("UUID_V7() (needs TEXT)")),
        },
        DefaultSpec::Ulid => match dt {
            DataType::Text => DefaultValue::Ulid,
            _ => return Err(bad("ULID() (needs TEXT)")),
        },
        DefaultSpec::CurrentUser => match dt {
            DataType::Text => DefaultValue::CurrentUser,
            _ => return Err(bad("CURRENT_USER() (needs TEXT)")),
        },
    })
}

pub(crate) fn column_def(id: u16, spec: &ColumnSpec, primary_key: bool) -> Result<ColumnDef> {
    let name = normalize_ident("column", &spec.name)?;
    if name == UPDATED_COLUMN || name == DELETED_COLUMN {
        return Err(KalamError::Validation(format!("'{name}' is a system column and cannot be declared")));
    }
    let dt = spec.data_type;
    if primary_key && !dt.can_be_primary_key() {
        return Err(KalamError::Validation(format!(
            "primary key '{name}' has type {}: use SMALLINT, INT, BIGINT or TEXT",
            dt.sql_name()
        )));
    }
    let default = spec.default.as_ref().map(|d| default_value(&name, dt, d)).transpose()?;
    Ok(ColumnDef { id, name, data_type: dt, nullable: !(spec.not_null || primary_key), default })
}

fn table_options(kind: TableKind, options: &[crate::sql::ast::OptionSpec]) -> Result<TableOptions> {
    let mut out = TableOptions::default();
    if kind == TableKind::Shared {
        out.access_level = Some(AccessLevel::Private);
    }
    if kind == TableKind::Stream {
        out.stream = Some(StreamOptions::default());
    }
    let positive = |key: &str, v: String| -> Result<u64> {
        v.parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| KalamError::Validation(format!("{key} must be a positive integer")))
    };
    for o in options {
        let text = || match &o.value {
            Literal::String(s) | Literal::Number(s) => Ok(s.clone()),
            Literal::Bool(b) => Ok(b.to_string()),
            Literal::Null => Err(KalamError::Validation(format!("option '{}' cannot be NULL", o.key))),
        };
        match o.key.as_str() {
            "flush_policy" | "deleted_retention_hours" if kind == TableKind::Stream => {
                return Err(KalamError::Validation(format!("option '{}' does not apply to STREAM tables", o.key)));
            }
            "flush_policy" => out.flush_policy = FlushPolicy::parse(&text()?).map_err(KalamError::Validation)?,
            "deleted_retention_hours" => {
                out.deleted_retention_hours = text()?.parse().ok().filter(|h| *h > 0).ok_or_else(|| {
                    KalamError::Validation("deleted_retention_hours must be a positive integer".into())
                })?
            }
            "access_level" => {
                if kind != TableKind::Shared {
                    return Err(KalamError::Validation("access_level applies to SHARED tables only".into()));
                }
                let v = text()?;
                out.access_level = Some(AccessLevel::parse(&v).ok_or_else(|| {
                    KalamError::Validation(format!("invalid access_level '{v}': use public, private or restricted"))
                })?);
            }
            "storage" => {
                // Whether it exists is checked by the catalog, atomically with the create.
                out.storage = StorageId::new(&text()?)?;
            }
            "ttl_seconds" | "max_buffer" | "ephemeral" => {
                let Some(stream) = out.stream.as_mut() else {
                    return Err(KalamError::Validation(format!("option '{}' applies to STREAM tables only", o.key)));
                };
                match o.key.as_str() {
                    "ttl_seconds" => stream.ttl_seconds = positive("ttl_seconds", text()?)?,
                    "max_buffer" => stream.max_buffer = positive("max_buffer", text()?)?,
                    _ => {
                        stream.ephemeral = match text()?.to_ascii_lowercase().as_str() {
                            "true" => true,
                            "false" => false,
                            other => {
                                return Err(KalamError::Validation(format!(
                                    "ephemeral must be true or false, not '{other}'"
                                )));
                            }
                        }
                    }
                }
            }
            other => return Err(KalamError::Validation(format!("unknown table option '{other}'"))),
        }
    }
    Ok(out)
}

pub(crate) fn create(cx: &ExecContext<'_>, stmt: &CreateTable) -> Result<QueryResult> {
    cx.principal.require(Role::Dba, "CREATE TABLE")?;
    let kind = stmt.kind;
    let namespace = cx.namespace_for(stmt.table.namespace.as_deref())?;
    let name = normalize_ident("table", &stmt.table.name)?;
    let table_pk = stmt.primary_key.as_ref().map(|p| p.to_ascii_lowercase());
    let mut columns = Vec::with_capacity(stmt.columns.len() + 1);
    let mut primary_key = None;
    for (i, spec) in stmt.columns.iter().enumerate() {
        let is_pk = spec.primary_key || table_pk.as_deref() == Some(spec.name.to_ascii_lowercase().as_str());
        columns.push(column_def(i as u16 + 1, spec, is_pk)?);
        if is_pk {
            primary_key = Some(i);
        }
    }
    let primary_key = match primary_key {
        Some(pk) => pk,
        None => {
            if columns.iter().any(|c| c.name == "id") {
                return Err(KalamError::Validation(
                    "table has a column 'id' but no PRIMARY KEY: declare one (e.g. id BIGINT PRIMARY KEY)".into(),
                ));
            }
            columns.insert(
                0,
                ColumnDef {
                    id: columns.len() as u16 + 1,
                    name: "id".into(),
                    data_type: DataType::BigInt,
                    nullable: false,
                    default: Some(DefaultValue::SnowflakeId),
                },
            );
            0
        }
    };
    let next_column_id = columns.iter().map(|c| c.id).max().unwrap_or(0) + 1;
    let def = TableDef {
        id: TableId(0),
        namespace: namespace.clone(),
        name: name.clone(),
        kind,
        columns,
        primary_key,
        options: table_options(kind, &stmt.options)?,
        schema_version: 1,
        next_column_id,
        created_at: cx.now(),
    };
    Ok(match cx.db.catalog.create_table(def, stmt.if_not_exists)? {
        Some(t) => results::message(0, format!("Table '{}' created ({})", t.qualified_name(), kind.as_str())),
        None => results::message(0, format!("Table '{namespace}.{name}' already exists")),
    })
}

pub(crate) async fn drop(
    cx: &ExecContext<'_>,
    kind: Option<TableKind>,
    table: &TableRef,
    if_exists: bool,
) -> Result<QueryResult> {
    cx.principal.require(Role::Dba, "DROP TABLE")?;
    let def = match cx.resolve_table(table) {
        Ok(t) => t,
        Err(KalamError::TableNotFound(_) | KalamError::NamespaceNotFound(_)) if if_exists => {
            return Ok(results::message(0, format!("Table '{}' does not exist", table.name)));
        }
        Err(e) => return Err(e),
    };
    if let Some(k) = kind
        && k != def.kind
    {
        return Err(KalamError::Validation(format!(
            "'{}' is a {} table, not a {} table",
            def.qualified_name(),
            def.kind.as_str().to_uppercase(),
            k.as_str().to_uppercase()
        )));
    }
    if cx.may_refuse_for_local_state() {
        super::backup::check_no_backup(cx, &def.namespace)?;
        let live = cx.db.live.count_on_table(def.id);
        if live > 0 {
            return Err(KalamError::InUse(format!(
                "table '{}' has {live} live subscription(s); end them (KILL LIVE QUERY) first",
                def.qualified_name()
            )));
        }
    }
    cx.db.committer.drop_tables(|| cx.db.catalog.drop_table(&def.namespace, &def.name).map(|t| vec![t]))?;
    end_subscriptions(cx, &def);
    let message = match cx.db.drop_table_data(&def).await {
        Some(job) => format!("Table '{}' dropped (cleanup job '{job}')", def.qualified_name()),
        None => format!("Table '{}' dropped", def.qualified_name()),
    };
    Ok(results::message(0, message))
}

/// Ends this node's subscriptions to a dropped table (a statement applied from the log drops
/// it on every node whatever their subscriptions): their clients hear `schema_changed`, and
/// subscribing again finds no table.
pub(crate) fn end_subscriptions(cx: &ExecContext<'_>, def: &TableDef) {
    use crate::tables::ChangeSink;
    if cx.db.live.count_on_table(def.id) > 0 {
        cx.db.live.schema_changed(def.id, def.schema_version + 1);
    }
}

pub(crate) fn show(cx: &ExecContext<'_>, namespace: Option<&str>) -> Result<QueryResult> {
    let ns = cx.existing_namespace(namespace)?;
    let rows: Vec<Vec<serde_json::Value>> = cx
        .db
        .catalog
        .tables(ns.as_ref())
        .iter()
        .filter(|t| cx.check_read(t).is_ok())
        .map(|t| {
            vec![
                json!(t.namespace.as_str()),
                json!(t.name),
                json!(t.kind.as_str().to_uppercase()),
                json!(t.schema_version),
                json!(values::format_timestamp(t.created_at)),
            ]
        })
        .collect();
    Ok(QueryResult {
        schema: cols(&[
            ("namespace", "TEXT"),
            ("table_name", "TEXT"),
            ("table_type", "TEXT"),
            ("schema_version", "INT"),
            ("created_at", "TIMESTAMP"),
        ]),
        row_count: rows.len() as u64,
        rows,
        message: None,
    })
}

fn cols(c: &[(&str, &str)]) -> Vec<ColumnInfo> {
    c.iter().map(|(n, t)| ColumnInfo::new(*n, *t)).collect()
}

pub(crate) fn describe(cx: &ExecContext<'_>, table: &TableRef, history: bool) -> Result<QueryResult> {
    let def = cx.resolve_table(table)?;
    cx.check_read(&def)?;
    if history {
        let rows: Vec<Vec<serde_json::Value>> = cx
            .db
            .catalog
            .schema_versions(def.id)?
            .into_iter()
            .map(|v| {
                let columns: Vec<String> =
                    v.columns.iter().map(|c| format!("{} {}", c.name, c.data_type.sql_name())).collect();
                vec![
                    json!(v.version),
                    json!(values::format_timestamp(v.created_at)),
                    json!(v.change),
                    json!(columns.join(", ")),
                ]
            })
            .collect();
        return Ok(QueryResult {
            schema: cols(&[("version", "INT"), ("created_at", "TIMESTAMP"), ("change", "TEXT"), ("columns", "TEXT")]),
            row_count: rows.len() as u64,
            rows,
            message: None,
        });
    }
    let rows: Vec<Vec<serde_json::Value>> = system::column_rows(&def)
        .iter()
        .map(|r| r[2..].iter().map(|v| values::to_json(v, DataType::Text)).collect())
        .collect();
    Ok(QueryResult {
        schema: cols(&[
            ("column_name", "TEXT"),
            ("ordinal_position", "INT"),
            ("data_type", "TEXT"),
            ("is_nullable", "BOOLEAN"),
            ("is_primary_key", "BOOLEAN"),
            ("column_default", "TEXT"),
            ("is_system", "BOOLEAN"),
        ]),
        row_count: rows.len() as u64,
        rows,
        message: Some(format!(
            "{} table {} (schema version {})",
            def.kind.as_str().to_uppercase(),
            def.qualified_name(),
            def.schema_version
        )),
    })
}

/// Row and byte counts of the hot tier and of the cold tier's files (row versions,
/// tombstones included) across all partitions (dba+).
pub(crate) async fn stats(cx: &ExecContext<'_>, table: &TableRef) -> Result<QueryResult> {
    cx.principal.require(Role::Dba, "SHOW STATS")?;
    let def = cx.resolve_table(table)?;
    let (mut rows, mut tombstones, mut bytes) = (0u64, 0u64, 0u64);
    cx.db.store.for_each_prefix(CF_ROWS, &keys::table_prefix(def.id), |k, v| {
        bytes += (k.len() + v.len()) as u64;
        match crate::storage::row_codec::decode_header(v) {
            Ok((_, true)) => tombstones += 1,
            _ => rows += 1,
        }
        true
    })?;
    let (mut cold_rows, mut cold_files, mut cold_bytes, mut last_flush) = (0u64, 0u64, 0u64, None::<i64>);
    for partition in cx.db.cold.partitions_on_disk(&def).await? {
        for f in cx.db.cold.partition(&def, partition).await?.files() {
            cold_rows += f.rows;
            cold_files += 1;
            cold_bytes += f.bytes;
            last_flush = last_flush.max(Some(f.created_at));
        }
    }
    Ok(QueryResult {
        schema: cols(&[
            ("hot_rows", "BIGINT"),
            ("hot_tombstones", "BIGINT"),
            ("hot_bytes", "BIGINT"),
            ("cold_rows", "BIGINT"),
            ("cold_files", "BIGINT"),
            ("cold_bytes", "BIGINT"),
            ("last_flush", "TIMESTAMP"),
        ]),
        rows: vec![vec![
            json!(rows),
            json!(tombstones),
            json!(bytes),
            json!(cold_rows),
            json!(cold_files),
            json!(cold_bytes),
            last_flush.map(|t| json!(values::format_timestamp(t))).unwrap_or(serde_json::Value::Null),
        ]],
        row_count: 1,
        message: None,
    })
}
