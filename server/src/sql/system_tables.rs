//! `system.*` tables, built from the catalog and the live registry when a query names them.
//! Readable by dba/system, except `live_queries`, where everyone sees their own rows.
//! Password hashes are never exposed.

use crate::auth::Principal;
use crate::database::Database;
use crate::error::{KalamError, Result};
use crate::ids::{Partition, TableId};
use crate::live::listing::LiveQueryInfo;
use crate::schema::{DELETED_COLUMN, TableDef, TableKind, UPDATED_COLUMN};
use crate::types::{ArrowForm, DataType};
use crate::values::{self, Value};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use datafusion::catalog::TableProvider;
use datafusion::catalog::memory::MemTable;
use kalamdb_client_core::protocol::Role;
use std::sync::Arc;

/// This server's name in `node` columns: `local` on a single node, `node-<id>` in a cluster.
fn node_name(db: &Database) -> String {
    db.config.cluster.node_id.map_or_else(|| "local".to_string(), node_id_name)
}

fn node_id_name(id: u64) -> String {
    format!("node-{id}")
}

/// This node's jobs and, in cluster mode, those of the other nodes that answer; each with the
/// name of the node that runs it.
async fn jobs_everywhere(db: &Database) -> Vec<(String, crate::jobs::Job)> {
    let mut jobs: Vec<_> = db.jobs.list().into_iter().map(|j| (node_name(db), j)).collect();
    if let Some(replication) = db.replication() {
        for (id, theirs) in replication.jobs_elsewhere().await {
            jobs.extend(theirs.into_iter().map(|j| (node_id_name(id), j)));
        }
    }
    jobs
}

/// The live queries `principal` may see (their own below dba): this node's and, in cluster
/// mode, those the other nodes that answer serve; each with the name of its node.
async fn live_queries_everywhere(db: &Database, principal: &Principal) -> Vec<(String, LiveQueryInfo)> {
    let owner = (principal.role < Role::Dba).then_some(principal.user_id);
    let mut live: Vec<_> = db.live.describe(owner).into_iter().map(|q| (node_name(db), q)).collect();
    if let Some(replication) = db.replication() {
        for (id, theirs) in replication.live_queries_elsewhere(owner).await {
            live.extend(theirs.into_iter().map(|q| (node_id_name(id), q)));
        }
    }
    live
}

pub(crate) const TABLES: [&str; 9] =
    ["users", "namespaces", "tables", "columns", "table_schemas", "live_queries", "jobs", "storages", "cluster"];

/// Whether `principal` may read `system.<name>`: dba and system read all; other roles only
/// `live_queries`, restricted to their own rows.
pub(crate) fn check_access(principal: &Principal, name: &str) -> Result<()> {
    if name == "live_queries" {
        return Ok(());
    }
    principal.require(Role::Dba, &format!("reading system.{name}"))
}

/// Column names and types plus rows: the in-memory form of a system table.
struct Rows {
    columns: Vec<(&'static str, DataType)>,
    rows: Vec<Vec<Value>>,
}

impl Rows {
    fn into_provider(self) -> Result<Arc<dyn TableProvider>> {
        let fields: Vec<_> = self.columns.iter().map(|(n, t)| t.field(n, true)).collect();
        let schema = Arc::new(Schema::new(fields));
        let arrays = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, (_, t))| {
                let col: Vec<&Value> = self.rows.iter().map(|r| &r[i]).collect();
                values::to_arrow(*t, &col)
            })
            .collect::<Result<Vec<_>>>()?;
        let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(KalamError::internal)?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]]).map_err(KalamError::from)?))
    }
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

fn opt_text(s: Option<impl Into<String>>) -> Value {
    s.map(|s| Value::Text(s.into())).unwrap_or(Value::Null)
}

/// Builds the provider for `system.<name>`.
pub(crate) async fn table(db: &Database, principal: &Principal, name: &str) -> Result<Arc<dyn TableProvider>> {
    check_access(principal, name)?;
    use DataType::*;
    let rows = match name {
        "users" => Rows {
            columns: vec![
                ("user_id", Text),
                ("username", Text),
                ("role", Text),
                ("email", Text),
                ("created_at", Timestamp),
                ("updated_at", Timestamp),
                ("failed_logins", Int),
                ("locked_until", Timestamp),
                ("data_group", BigInt),
            ],
            rows: db
                .catalog
                .users()
                .into_iter()
                .map(|u| {
                    vec![
                        text(u.id.to_string()),
                        text(u.username),
                        text(u.role.as_str()),
                        opt_text(u.email),
                        Value::Timestamp(u.created_at),
                        Value::Timestamp(u.updated_at),
                        Value::Int(u.failed_logins as i64),
                        u.locked_until.map(Value::Timestamp).unwrap_or(Value::Null),
                        data_group(db, TableId(0), Partition::User(u.id)),
                    ]
                })
                .collect(),
        },
        "namespaces" => Rows {
            columns: vec![
                ("namespace_id", Text),
                ("name", Text),
                ("created_at", Timestamp),
                ("options", Json),
                ("table_count", Int),
            ],
            rows: db
                .catalog
                .namespaces()
                .into_iter()
                .map(|n| {
                    let count = db.catalog.tables(Some(&n.name)).len() as i64;
                    vec![
                        text(n.name.to_string()),
                        text(n.name.to_string()),
                        Value::Timestamp(n.created_at),
                        text(serde_json::to_string(&n.options).unwrap_or_default()),
                        Value::Int(count),
                    ]
                })
                .collect(),
        },
        "tables" => Rows {
            columns: vec![
                ("table_id", Text),
                ("namespace", Text),
                ("table_name", Text),
                ("table_type", Text),
                ("schema_version", Int),
                ("created_at", Timestamp),
                ("flush_policy", Text),
                ("deleted_retention_hours", BigInt),
                ("access_level", Text),
                ("storage", Text),
                ("data_group", BigInt),
            ],
            rows: db.catalog.tables(None).iter().map(|t| table_row(db, t)).collect(),
        },
        "columns" => Rows {
            columns: vec![
                ("namespace", Text),
                ("table_name", Text),
                ("column_name", Text),
                ("ordinal_position", Int),
                ("data_type", Text),
                ("is_nullable", Boolean),
                ("is_primary_key", Boolean),
                ("column_default", Text),
                ("is_system", Boolean),
            ],
            rows: db.catalog.tables(None).iter().flat_map(|t| column_rows(t)).collect(),
        },
        "table_schemas" => {
            let mut rows = vec![];
            for t in db.catalog.tables(None) {
                for v in db.catalog.schema_versions(t.id)? {
                    rows.push(vec![
                        text(t.id.to_string()),
                        text(t.namespace.to_string()),
                        text(t.name.clone()),
                        Value::Int(v.version as i64),
                        text(serde_json::to_string(&v.columns).map_err(KalamError::internal)?),
                        Value::Timestamp(v.created_at),
                        text(v.change),
                    ]);
                }
            }
            Rows {
                columns: vec![
                    ("table_id", Text),
                    ("namespace", Text),
                    ("table_name", Text),
                    ("version", Int),
                    ("columns", Json),
                    ("created_at", Timestamp),
                    ("changes", Text),
                ],
                rows,
            }
        }
        "live_queries" => Rows {
            columns: vec![
                ("live_id", Text),
                ("connection_id", Text),
                ("subscription_id", Text),
                ("user_id", Text),
                ("username", Text),
                ("namespace", Text),
                ("table_name", Text),
                ("query", Text),
                ("options", Json),
                ("created_at", Timestamp),
                ("updated_at", Timestamp),
                ("changes", BigInt),
                ("node", Text),
            ],
            // Every node's: each serves its own WebSocket sessions (in cluster mode, the
            // others are asked).
            rows: live_queries_everywhere(db, principal)
                .await
                .into_iter()
                .map(|(node, q)| {
                    vec![
                        text(q.live_id),
                        text(q.connection_id),
                        text(q.subscription_id),
                        text(q.user_id.to_string()),
                        text(q.username),
                        text(q.namespace),
                        text(q.table_name),
                        text(q.query),
                        text(q.options.to_string()),
                        Value::Timestamp(q.created_at),
                        Value::Timestamp(q.updated_at),
                        Value::Int(q.changes as i64),
                        text(node),
                    ]
                })
                .collect(),
        },
        "jobs" => Rows {
            columns: vec![
                ("job_id", Text),
                ("job_type", Text),
                ("status", Text),
                ("namespace", Text),
                ("table_name", Text),
                ("trigger", Text),
                ("created_at", Timestamp),
                ("started_at", Timestamp),
                ("finished_at", Timestamp),
                ("rows", BigInt),
                ("bytes", BigInt),
                ("files", BigInt),
                ("error", Text),
                ("node", Text),
            ],
            // Every node's: each runs its own flushes (in cluster mode, the others' are asked).
            rows: jobs_everywhere(db)
                .await
                .into_iter()
                .map(|(node, j)| {
                    vec![
                        text(j.id),
                        text(j.job_type.as_str()),
                        text(j.status.as_str()),
                        opt_text(j.namespace),
                        opt_text(j.table),
                        text(j.trigger),
                        Value::Timestamp(j.created_at),
                        j.started_at.map(Value::Timestamp).unwrap_or(Value::Null),
                        j.finished_at.map(Value::Timestamp).unwrap_or(Value::Null),
                        Value::Int(j.rows as i64),
                        Value::Int(j.bytes as i64),
                        Value::Int(j.files as i64),
                        opt_text(j.error),
                        text(node),
                    ]
                })
                .collect(),
        },
        "storages" => Rows { columns: STORAGE_COLUMNS.to_vec(), rows: storage_rows(db) },
        // The members as the node answering sees them; no rows on a single node.
        "cluster" => Rows {
            columns: vec![
                ("group_id", BigInt),
                ("node_id", BigInt),
                ("address", Text),
                ("voter", Boolean),
                ("leader", Boolean),
                ("this_node", Boolean),
                ("term", BigInt),
                ("log_index", BigInt),
                ("applied_index", BigInt),
                ("lag", BigInt),
                ("snapshot_index", BigInt),
                ("purged_index", BigInt),
                ("committed_index", BigInt),
                ("problem", Text),
            ],
            rows: match db.replication() {
                Some(r) => r.members().await,
                None => Vec::new(),
            }
            .into_iter()
            .map(|m| {
                let int = |v: Option<u64>| v.map_or(Value::Null, |v| Value::Int(v as i64));
                vec![
                    Value::Int(i64::from(m.group.0)),
                    Value::Int(m.node_id as i64),
                    text(m.address),
                    Value::Bool(m.voter),
                    Value::Bool(m.leader),
                    Value::Bool(m.this_node),
                    Value::Int(m.term as i64),
                    int(m.log_index),
                    int(m.applied_index),
                    int(m.lag),
                    int(m.snapshot_index),
                    int(m.purged_index),
                    int(m.committed_index),
                    m.problem.map_or(Value::Null, text),
                ]
            })
            .collect(),
        },
        other => return Err(KalamError::TableNotFound(format!("system.{other}"))),
    };
    rows.into_provider()
}

/// In a cluster, the Raft group (`system.cluster`'s `group_id`) that replicates `table`'s
/// `partition`; NULL on a single node. A USER partition's group depends on its user only.
fn data_group(db: &Database, table: TableId, partition: Partition) -> Value {
    db.replication().map_or(Value::Null, |r| Value::Int(i64::from(r.group_of(table, partition).0)))
}

/// Columns of `system.storages` and `SHOW STORAGES`.
pub(crate) const STORAGE_COLUMNS: [(&str, DataType); 10] = [
    ("storage_id", DataType::Text),
    ("storage_type", DataType::Text),
    ("location", DataType::Text),
    ("region", DataType::Text),
    ("endpoint", DataType::Text),
    ("access_key_id", DataType::Text),
    ("secret_access_key", DataType::Text),
    ("allow_http", DataType::Boolean),
    ("table_count", DataType::Int),
    ("created_at", DataType::Timestamp),
];

/// One row per storage, `local` first; a secret key shows as `***`.
pub(crate) fn storage_rows(db: &Database) -> Vec<Vec<Value>> {
    use crate::schema::StorageLocation;
    let tables = db.catalog.tables(None);
    let count =
        |id: &crate::ids::StorageId| Value::Int(tables.iter().filter(|t| &t.options.storage == id).count() as i64);
    let local = crate::ids::StorageId::local();
    let mut rows = vec![vec![
        text(local.as_str()),
        text("filesystem"),
        text(db.config.server.data_dir.join("storage").display().to_string()),
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
        count(&local),
        Value::Null,
    ]];
    for s in db.catalog.storages() {
        let (region, endpoint, key, secret, allow_http) = match &s.location {
            StorageLocation::Filesystem { .. } => (None, None, None, None, Value::Null),
            StorageLocation::S3 { region, endpoint, access_key_id, secret_access_key, allow_http, .. } => (
                region.clone(),
                endpoint.clone(),
                access_key_id.clone(),
                secret_access_key.as_ref().map(|_| "***"),
                Value::Bool(*allow_http),
            ),
        };
        rows.push(vec![
            text(s.id.as_str()),
            text(s.location.type_name()),
            text(s.location.uri()),
            opt_text(region),
            opt_text(endpoint),
            opt_text(key),
            opt_text(secret),
            allow_http,
            count(&s.id),
            Value::Timestamp(s.created_at),
        ]);
    }
    rows
}

fn table_row(db: &Database, t: &TableDef) -> Vec<Value> {
    vec![
        text(t.id.to_string()),
        text(t.namespace.to_string()),
        text(t.name.clone()),
        text(t.kind.as_str()),
        Value::Int(t.schema_version as i64),
        Value::Timestamp(t.created_at),
        text(t.options.flush_policy.to_string()),
        Value::Int(t.options.deleted_retention_hours as i64),
        opt_text(t.options.access_level.map(|a| a.as_str())),
        text(t.options.storage.as_str()),
        // USER and STREAM tables are spread over the groups by user.
        match t.kind {
            TableKind::Shared => data_group(db, t.id, Partition::Shared),
            TableKind::User | TableKind::Stream => Value::Null,
        },
    ]
}

/// One row per column, system columns last (also used by DESCRIBE TABLE).
pub(crate) fn column_rows(t: &TableDef) -> Vec<Vec<Value>> {
    let mut rows: Vec<Vec<Value>> = t
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            vec![
                text(t.namespace.to_string()),
                text(t.name.clone()),
                text(c.name.clone()),
                Value::Int(i as i64 + 1),
                text(c.data_type.sql_name()),
                Value::Bool(c.nullable),
                Value::Bool(i == t.primary_key),
                opt_text(c.default.as_ref().map(|d| d.sql())),
                Value::Bool(false),
            ]
        })
        .collect();
    if t.has_system_columns() {
        for (name, dt) in [(UPDATED_COLUMN, DataType::Timestamp), (DELETED_COLUMN, DataType::Boolean)] {
            let ordinal = rows.len() as i64 + 1;
            rows.push(vec![
                text(t.namespace.to_string()),
                text(t.name.clone()),
                text(name),
                Value::Int(ordinal),
                text(dt.sql_name()),
                Value::Bool(false),
                Value::Bool(false),
                Value::Null,
                Value::Bool(true),
            ]);
        }
    }
    rows
}
