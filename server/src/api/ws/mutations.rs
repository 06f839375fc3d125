//! The `mutate` frame: writes from a client's outbox, applied atomically per message and
//! exactly once per `(user, client_id, seq)`.
//!
//! The outcome of every message is stored in the `mutations` column family, in the same
//! RocksDB batch as its rows, so a retry after a reconnect or a server restart finds it and
//! gets the original outcome back (`duplicate` for an applied message) instead of applying
//! twice.

use crate::auth::Principal;
use crate::database::Database;
use crate::error::{KalamError, Result};
use crate::ids::{DataGroup, Partition};
use crate::replication::{ForwardedMutation, GroupId, METADATA};
use crate::schema::TableDef;
use crate::sql::ExecContext;
use crate::sql::ast::TableRef;
use crate::sql::context::Origin;
use crate::sql::dml::{insert::complete_row, update::check_not_null, writable_column};
use crate::tables::{MutationKey, RowOp, TableWrite};
use crate::types::DataType;
use crate::values;
use kalamdb_client_core::protocol::ws::{Mutate, MutateResult, MutationKind, MutationOp, MutationStatus};
use rocksdb::WriteBatch;
use std::sync::Arc;

pub(crate) const MAX_OPS_PER_MESSAGE: usize = 1000;
const MAX_CLIENT_ID: usize = 128;

/// Applies a client's mutation message: here, or in a cluster on the leader (this node
/// answers once it has applied it too).
pub(crate) async fn apply(db: &Arc<Database>, principal: &Principal, m: Mutate) -> MutateResult {
    let key = MutationKey { user: principal.user_id, client_id: m.client_id.clone(), seq: m.seq };
    let outcome = match db.replication() {
        Some(replication) => {
            let mut group = group_of_message(db, principal, &m);
            if group == METADATA {
                // A table this node does not know (yet): catch up with the catalog first.
                if let Err(e) = replication.catalog_barrier().await {
                    return key.outcome(MutationStatus::Rejected, Some((e.code(), e.public_message())), None);
                }
                group = group_of_message(db, principal, &m);
            }
            let forwarded = ForwardedMutation { mutate: m, principal: principal.into() };
            let here = || apply_here(db, principal, forwarded.mutate.clone());
            let there = || replication.forward_mutation(group, &forwarded);
            crate::replication::on_leader(replication.as_ref(), group, here, there).await
        }
        // A single node always leads: this is `Ok`.
        None => apply_here(db, principal, m).await,
    };
    outcome.unwrap_or_else(|e| key.outcome(MutationStatus::Rejected, Some((e.code(), e.public_message())), None))
}

/// In a cluster, the group whose leader applies a mutation message: that of the data group
/// it commits in ([`data_group_of_message`]). A message whose first table is unknown goes
/// to the metadata group's leader, which refuses it as any node would.
fn group_of_message(db: &Database, principal: &Principal, m: &Mutate) -> GroupId {
    data_group_of_message(db, principal, m).map_or(METADATA, crate::replication::raft_group)
}

/// The data group a mutation message commits in, which keeps its outcome record: that of the
/// partition its first op writes (a message writing several groups is refused when it
/// commits). `None` if its first table is unknown.
fn data_group_of_message(db: &Database, principal: &Principal, m: &Mutate) -> Option<DataGroup> {
    let op = m.ops.first()?;
    let (ns, name) = op.table.split_once('.')?;
    let table = db.catalog.table(&crate::ids::NamespaceId::new(ns).ok()?, &name.to_ascii_lowercase())?;
    let partition = match table.kind {
        crate::schema::TableKind::Shared => Partition::Shared,
        _ => Partition::User(principal.user_id),
    };
    Some(db.committer.group_of(table.id, partition))
}

/// Applies a mutation message on this node (in a cluster, the leader: a message forwarded
/// here is never forwarded on). Its refusals are outcomes; the one error is
/// [`KalamError::NotLeader`] (in a cluster, where nothing was applied: the caller sends the
/// message to the new leader).
pub(crate) async fn apply_here(db: &Arc<Database>, principal: &Principal, m: Mutate) -> Result<MutateResult> {
    let key = MutationKey { user: principal.user_id, client_id: m.client_id.clone(), seq: m.seq };
    let refuse = |e: &KalamError| key.outcome(MutationStatus::Rejected, Some((e.code(), e.public_message())), None);
    if m.client_id.is_empty() || m.client_id.len() > MAX_CLIENT_ID || m.client_id.contains('\0') {
        return Ok(refuse(&KalamError::Validation(format!("client_id must be 1-{MAX_CLIENT_ID} characters"))));
    }
    // One message per client at a time, so a retry racing its original cannot apply twice.
    let lock = db.client_locks.get((principal.user_id, m.client_id.clone()));
    let _guard = lock.lock().await;
    let group = data_group_of_message(db, principal, &m).unwrap_or(DataGroup(0));
    match key.recorded(&db.store, group) {
        Ok(Some(mut earlier)) => {
            if earlier.status == MutationStatus::Applied {
                earlier.status = MutationStatus::Duplicate;
            }
            return Ok(earlier);
        }
        Ok(None) => {}
        Err(e) => return Ok(refuse(&e)),
    }
    let attempt = async || {
        let mut planned = plan(db, principal, &m.ops)?;
        let writes: Vec<TableWrite<'_>> = planned
            .iter_mut()
            .map(|(t, p, ops)| TableWrite { table: t, partition: *p, ops: std::mem::take(ops) })
            .collect();
        db.commit(writes, Some(key.clone())).await
    };
    // A concurrent ALTER TABLE only means planning again on the new definition.
    let mut outcome = attempt().await;
    for _ in 0..crate::sql::SCHEMA_CHANGE_RETRIES {
        if !matches!(outcome, Err(KalamError::SchemaChanged(_))) {
            break;
        }
        outcome = attempt().await;
    }
    Ok(match outcome {
        Ok(c) if c.duplicate => key.outcome(MutationStatus::Duplicate, None, c.cursor),
        Ok(c) => {
            let mut result = key.outcome(MutationStatus::Applied, None, c.cursor);
            result.tables = c
                .tables
                .iter()
                .filter_map(|(id, at)| Some((db.catalog.table_by_id(*id)?.qualified_name(), *at)))
                .collect();
            result
        }
        Err(e @ KalamError::NotLeader(_)) => return Err(e),
        Err(e) => {
            let rejected = refuse(&e);
            // Internal failures may be transient: let a retry try again. A refusal at commit
            // is recorded by the commit itself (on every replica in a cluster); one while
            // planning is recorded here on the single node, and planned again after a
            // failover in a cluster.
            if e.code() == kalamdb_client_core::protocol::ErrorCode::InternalError {
                tracing::error!(error = %e.report(), "internal error in a mutation");
            } else if db.replication().is_none() {
                let mut batch = WriteBatch::default();
                key.record(&db.store, &mut batch, group, &rejected);
                let _ = db.store.write(batch);
            }
            rejected
        }
    })
}

type PlannedWrites = Vec<(Arc<TableDef>, Partition, Vec<RowOp>)>;

/// Validates every op and groups them by table, in first-seen order.
fn plan(db: &Arc<Database>, principal: &Principal, ops: &[MutationOp]) -> Result<PlannedWrites> {
    if ops.is_empty() || ops.len() > MAX_OPS_PER_MESSAGE {
        return Err(KalamError::Validation(format!("a mutation needs 1-{MAX_OPS_PER_MESSAGE} ops")));
    }
    let cx = ExecContext { db, principal: principal.clone(), namespace: None, params: &[], origin: Origin::Client };
    let mut writes: PlannedWrites = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let fail = |e: KalamError| match e {
            KalamError::Validation(m) => KalamError::Validation(format!("op {}: {m}", i + 1)),
            other => other,
        };
        let (ns, name) = op
            .table
            .split_once('.')
            .ok_or_else(|| KalamError::Validation(format!("op {}: table must be namespace.table", i + 1)))?;
        let table = cx.resolve_table(&TableRef { namespace: Some(ns.to_string()), name: name.to_ascii_lowercase() })?;
        cx.check_write(&table)?;
        if table.kind == crate::schema::TableKind::Stream {
            return Err(KalamError::NotSupported(format!(
                "op {}: '{}' is a STREAM table; send its events with INSERT over HTTP",
                i + 1,
                table.qualified_name()
            )));
        }
        let pk_col = table.pk();
        let pk = || -> Result<values::Value> {
            let pk = op.pk.as_ref().ok_or_else(|| KalamError::Validation(format!("{:?} needs a pk", op.op)))?;
            values::from_json(pk, Some(pk_col.data_type), &pk_col.name)
        };
        let row_op = match op.op {
            MutationKind::Insert => {
                let row =
                    op.row.as_ref().ok_or_else(|| KalamError::Validation("insert needs a row".into())).map_err(fail)?;
                let mut targets = Vec::with_capacity(row.len());
                let mut provided = Vec::with_capacity(row.len());
                for (col, v) in row {
                    let idx = writable_column(&table, &col.to_ascii_lowercase()).map_err(fail)?;
                    targets.push(idx);
                    provided.push(Some(cell(&table, idx, v).map_err(fail)?));
                }
                RowOp::Insert { values: complete_row(&cx, &table, &targets, provided).map_err(fail)? }
            }
            MutationKind::Update => {
                let pk = pk().map_err(fail)?;
                let mut set = Vec::new();
                for (col, v) in op.row.iter().flatten() {
                    let idx = writable_column(&table, &col.to_ascii_lowercase()).map_err(fail)?;
                    let v = cell(&table, idx, v).map_err(fail)?;
                    if idx == table.primary_key {
                        if v != pk {
                            return Err(fail(KalamError::Validation("the primary key cannot be updated".into())));
                        }
                        continue;
                    }
                    set.push((idx, v));
                }
                check_not_null(&table, &set).map_err(fail)?;
                RowOp::Update { pk, set }
            }
            MutationKind::Delete => RowOp::Delete { pk: pk().map_err(fail)? },
        };
        let partition = cx.partition(&table);
        match writes.iter_mut().find(|(t, p, _)| t.id == table.id && *p == partition) {
            Some((_, _, ops)) => ops.push(row_op),
            None => writes.push((table, partition, vec![row_op])),
        }
    }
    Ok(writes)
}

/// A value from an op's `row`. CRDT_TEXT columns take a string (the new text, applied as an
/// edit) or `{"update": "<base64 Yjs v1 update>"}`, merged into the stored document at commit.
fn cell(table: &TableDef, idx: usize, json: &serde_json::Value) -> Result<values::Value> {
    let c = &table.columns[idx];
    match c.data_type {
        DataType::CrdtText => values::crdt_write_from_json(json, &c.name),
        dt => values::from_json(json, Some(dt), &c.name),
    }
}
