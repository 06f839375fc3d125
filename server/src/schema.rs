//! The schema model: what the catalog persists about namespaces, tables, schema versions,
//! storages and users. Plain data; the catalog ([`crate::catalog`]) stores and serves it.

use crate::error::Result;
use crate::ids::{NamespaceId, StorageId, TableId, UserId};
use crate::types::{ArrowForm, DataType};
use crate::values::{self, Value};
use datafusion::arrow::datatypes::{Field, Schema};
use kalamdb_client_core::protocol::Role;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A column default, evaluated per inserted row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum DefaultValue {
    Literal(Value),
    Now,
    SnowflakeId,
    UuidV7,
    Ulid,
    CurrentUser,
}

impl DefaultValue {
    pub(crate) fn sql(&self) -> String {
        match self {
            DefaultValue::Literal(Value::Text(s)) => format!("'{}'", s.replace('\'', "''")),
            DefaultValue::Literal(Value::Null) => "NULL".into(),
            DefaultValue::Literal(Value::Bool(b)) => b.to_string().to_uppercase(),
            DefaultValue::Literal(Value::Int(i)) => i.to_string(),
            DefaultValue::Literal(Value::Float(f)) => f.to_string(),
            DefaultValue::Literal(v) => format!("{v:?}"),
            DefaultValue::Now => "NOW()".into(),
            DefaultValue::SnowflakeId => "SNOWFLAKE_ID()".into(),
            DefaultValue::UuidV7 => "UUID_V7()".into(),
            DefaultValue::Ulid => "ULID()".into(),
            DefaultValue::CurrentUser => "CURRENT_USER()".into(),
        }
    }
}

/// Stable id of a column within its table; survives renames, never reused after a drop, so
/// stored rows (keyed by column id) read correctly through any later schema version.
pub(crate) type ColumnId = u16;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ColumnDef {
    pub id: ColumnId,
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
    pub default: Option<DefaultValue>,
}

impl ColumnDef {
    /// What a row stored before this column existed reads as: its literal DEFAULT, else NULL.
    pub(crate) fn fill(&self) -> Value {
        match &self.default {
            Some(DefaultValue::Literal(v)) => v.clone(),
            _ => Value::Null,
        }
    }

    /// Whether [`ColumnDef::fill`] is not NULL.
    pub(crate) fn has_fill(&self) -> bool {
        matches!(&self.default, Some(DefaultValue::Literal(v)) if !v.is_null())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TableKind {
    User,
    Shared,
    Stream,
}

impl TableKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TableKind::User => "user",
            TableKind::Shared => "shared",
            TableKind::Stream => "stream",
        }
    }
}

/// Who may use a SHARED table: `public` is readable by every signed-in user and writable by
/// service+; `private` and `restricted` are service+ only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AccessLevel {
    Public,
    Private,
    Restricted,
}

impl AccessLevel {
    pub(crate) fn parse(s: &str) -> Option<AccessLevel> {
        match s.to_ascii_lowercase().as_str() {
            "public" => Some(AccessLevel::Public),
            "private" => Some(AccessLevel::Private),
            "restricted" => Some(AccessLevel::Restricted),
            _ => None,
        }
    }
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AccessLevel::Public => "public",
            AccessLevel::Private => "private",
            AccessLevel::Restricted => "restricted",
        }
    }
}

/// `rows:N`, `interval:S` or both: flush a partition when either is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub(crate) struct FlushPolicy {
    pub rows: Option<u64>,
    pub interval_secs: Option<u64>,
}

impl FlushPolicy {
    pub(crate) fn parse(s: &str) -> Result<FlushPolicy, String> {
        let mut policy = FlushPolicy::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once(':')
                .ok_or_else(|| format!("invalid flush policy '{s}': expected 'rows:N', 'interval:S' or both"))?;
            let n: u64 = v
                .trim()
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("invalid flush policy '{s}': '{v}' is not a positive integer"))?;
            match k.trim().to_ascii_lowercase().as_str() {
                "rows" => policy.rows = Some(n),
                "interval" => policy.interval_secs = Some(n),
                other => return Err(format!("invalid flush policy '{s}': unknown part '{other}'")),
            }
        }
        if policy.rows.is_none() && policy.interval_secs.is_none() {
            return Err(format!("invalid flush policy '{s}': expected 'rows:N', 'interval:S' or both"));
        }
        Ok(policy)
    }
}

impl std::fmt::Display for FlushPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = vec![];
        if let Some(r) = self.rows {
            parts.push(format!("rows:{r}"));
        }
        if let Some(i) = self.interval_secs {
            parts.push(format!("interval:{i}"));
        }
        f.write_str(&parts.join(","))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TableOptions {
    pub flush_policy: FlushPolicy,
    pub deleted_retention_hours: u64,
    /// SHARED tables only.
    pub access_level: Option<AccessLevel>,
    /// Where the table's cold files live.
    pub storage: StorageId,
    /// STREAM tables only.
    #[serde(default)]
    pub stream: Option<StreamOptions>,
}

/// How a STREAM table keeps its events (in memory, per partition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StreamOptions {
    /// Events older than this are evicted.
    pub ttl_seconds: u64,
    /// At most this many events per partition; the oldest are evicted first.
    pub max_buffer: u64,
    /// An insert with no live subscriber on its partition is dropped.
    pub ephemeral: bool,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions { ttl_seconds: 3600, max_buffer: 10_000, ephemeral: false }
    }
}

impl TableOptions {
    /// Oldest `_updated` whose tombstones are still kept at time `now`: cleanup jobs purge
    /// older ones.
    pub(crate) fn tombstone_horizon(&self, now: i64) -> i64 {
        let hours = i64::try_from(self.deleted_retention_hours).unwrap_or(i64::MAX);
        now.saturating_sub(hours.saturating_mul(crate::clock::retention_hour_micros()))
    }
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            flush_policy: FlushPolicy { rows: Some(10_000), interval_secs: Some(300) },
            deleted_retention_hours: 168,
            access_level: None,
            storage: StorageId::local(),
            stream: None,
        }
    }
}

/// The current definition of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TableDef {
    pub id: TableId,
    pub namespace: NamespaceId,
    pub name: String,
    pub kind: TableKind,
    /// User-defined columns in declaration order (system columns are implicit).
    pub columns: Vec<ColumnDef>,
    /// Index into `columns` of the primary key.
    pub primary_key: usize,
    pub options: TableOptions,
    pub schema_version: u32,
    pub next_column_id: ColumnId,
    pub created_at: i64,
}

/// Name of the system column holding the commit timestamp / sync cursor.
pub(crate) const UPDATED_COLUMN: &str = "_updated";
/// Name of the soft-delete flag column.
pub(crate) const DELETED_COLUMN: &str = "_deleted";

impl TableDef {
    /// Turns the CRDT_TEXT writes of a new row into documents.
    pub(crate) fn resolve_new_row(&self, mut row: Vec<Value>) -> Result<Vec<Value>> {
        for (v, col) in row.iter_mut().zip(&self.columns) {
            if col.data_type == DataType::CrdtText && !matches!(v, Value::Crdt(_) | Value::Null) {
                *v = values::merge_crdt(None, std::mem::replace(v, Value::Null), &col.name)?;
            }
        }
        Ok(row)
    }

    pub(crate) fn qualified_name(&self) -> String {
        format!("{}.{}", self.namespace, self.name)
    }

    pub(crate) fn pk(&self) -> &ColumnDef {
        &self.columns[self.primary_key]
    }

    /// The column called exactly `name` (names are stored lower-cased).
    pub(crate) fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub(crate) fn has_system_columns(&self) -> bool {
        self.kind != TableKind::Stream
    }

    /// Arrow schema of the user columns, plus `_updated` and `_deleted` when `with_system`.
    pub(crate) fn arrow_schema(&self, with_system: bool) -> Arc<Schema> {
        let mut fields: Vec<Field> = self.columns.iter().map(|c| c.data_type.field(&c.name, c.nullable)).collect();
        if with_system && self.has_system_columns() {
            fields.push(DataType::Timestamp.field(UPDATED_COLUMN, false));
            fields.push(DataType::Boolean.field(DELETED_COLUMN, false));
        }
        Arc::new(Schema::new(fields))
    }
}

/// One schema version of a table, kept for every CREATE/ALTER.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SchemaVersion {
    pub table_id: TableId,
    pub version: u32,
    pub columns: Vec<ColumnDef>,
    pub primary_key: usize,
    pub created_at: i64,
    /// What changed, e.g. `CREATE TABLE` or `ADD COLUMN due DATE`.
    pub change: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Namespace {
    pub name: NamespaceId,
    pub created_at: i64,
    pub options: BTreeMap<String, serde_json::Value>,
}

/// A place for cold files: a directory or an S3 bucket (with an optional key prefix).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StorageDef {
    pub id: StorageId,
    pub location: StorageLocation,
    pub created_at: i64,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum StorageLocation {
    Filesystem {
        path: std::path::PathBuf,
        /// Every node of a cluster mounts this same directory (a network filesystem): the
        /// cluster then keeps one copy of the files, as in an object store.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        shared: bool,
    },
    S3 {
        bucket: String,
        prefix: Option<String>,
        region: Option<String>,
        endpoint: Option<String>,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        allow_http: bool,
    },
}

impl StorageLocation {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            StorageLocation::Filesystem { .. } => "filesystem",
            StorageLocation::S3 { .. } => "s3",
        }
    }

    /// Whether every node of a cluster reaches the same files through it: an object store, or
    /// a directory marked `SHARED`. Only such storages are usable in a cluster, whose
    /// flushes then write each file once (see `docs/cluster.md`).
    pub(crate) fn is_shared(&self) -> bool {
        match self {
            StorageLocation::Filesystem { shared, .. } => *shared,
            StorageLocation::S3 { .. } => true,
        }
    }

    /// Where it points, for SHOW STORAGES: a path, or `s3://bucket/prefix`.
    pub(crate) fn uri(&self) -> String {
        match self {
            StorageLocation::Filesystem { path, .. } => path.display().to_string(),
            StorageLocation::S3 { bucket, prefix, .. } => match prefix {
                Some(p) => format!("s3://{bucket}/{}", p.trim_matches('/')),
                None => format!("s3://{bucket}"),
            },
        }
    }
}

/// Shows `***` for the secret key, so a storage can be logged or printed.
impl std::fmt::Debug for StorageLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageLocation::Filesystem { path, shared } => {
                f.debug_struct("Filesystem").field("path", path).field("shared", shared).finish()
            }
            StorageLocation::S3 { bucket, prefix, region, endpoint, access_key_id, secret_access_key, allow_http } => f
                .debug_struct("S3")
                .field("bucket", bucket)
                .field("prefix", prefix)
                .field("region", region)
                .field("endpoint", endpoint)
                .field("access_key_id", access_key_id)
                .field("secret_access_key", &secret_access_key.as_ref().map(|_| "***"))
                .field("allow_http", allow_http)
                .finish(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct User {
    pub id: UserId,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub email: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Consecutive failed logins since the last success.
    pub failed_logins: u32,
    /// Microseconds since epoch until which logins are refused.
    pub locked_until: Option<i64>,
}

/// A USER table `app.t` with `columns` (ids from 1; the first is the primary key), for tests.
#[cfg(test)]
pub(crate) fn test_table(columns: &[(&str, DataType)]) -> Arc<TableDef> {
    let columns: Vec<ColumnDef> = columns
        .iter()
        .zip(1u16..)
        .map(|((name, data_type), id)| ColumnDef {
            id,
            name: name.to_string(),
            data_type: *data_type,
            nullable: true,
            default: None,
        })
        .collect();
    Arc::new(TableDef {
        id: TableId(1),
        namespace: NamespaceId::new("app").expect("a valid name"),
        name: "t".into(),
        kind: TableKind::User,
        next_column_id: columns.len() as u16 + 1,
        columns,
        primary_key: 0,
        options: TableOptions::default(),
        schema_version: 1,
        created_at: 0,
    })
}
