//! INSERT INTO t [(cols)] VALUES (...), ... | SELECT ...

use crate::error::{KalamError, Result};
use crate::ids::Partition;
use crate::replication::StreamEvents;
use crate::schema::{TableDef, TableKind};
use crate::sql::dml::{MAX_ROWS_PER_WRITE, evaluate_default, simple_value, table_ref, writable_column};
use crate::sql::parser::ident_name;
use crate::sql::{ExecContext, query, results};
use crate::tables::{RowOp, SystemColumns, TableWrite};
use crate::values::{self, Value};
use datafusion::sql::sqlparser::ast::{Expr, Insert, SetExpr, Statement, TableObject};
use kalamdb_client_core::protocol::QueryResult;

pub(crate) async fn execute(cx: &ExecContext<'_>, ins: &Insert) -> Result<QueryResult> {
    if ins.on.is_some() || ins.returning.is_some() || ins.overwrite || ins.or.is_some() || ins.partitioned.is_some() {
        return Err(KalamError::NotSupported(
            "INSERT supports VALUES or SELECT only (no ON CONFLICT, RETURNING, OVERWRITE)".into(),
        ));
    }
    let TableObject::TableName(name) = &ins.table else {
        return Err(KalamError::NotSupported("INSERT INTO a table function is not supported".into()));
    };
    let table = cx.resolve_table(&table_ref(name)?)?;
    cx.check_write(&table)?;

    let targets: Vec<usize> = if ins.columns.is_empty() {
        (0..table.columns.len()).collect()
    } else {
        let mut t = Vec::with_capacity(ins.columns.len());
        for c in &ins.columns {
            let name = match c.0.as_slice() {
                [part] => part.as_ident().map(ident_name),
                _ => None,
            };
            let Some(name) = name else {
                return Err(KalamError::Validation(format!("invalid column name '{c}' in the INSERT column list")));
            };
            let idx = writable_column(&table, &name)?;
            if t.contains(&idx) {
                return Err(KalamError::Validation(format!("column '{}' is listed twice", table.columns[idx].name)));
            }
            t.push(idx);
        }
        t
    };
    let source = ins.source.as_ref().ok_or_else(|| KalamError::Validation("INSERT needs VALUES or a SELECT".into()))?;

    let provided: Vec<Vec<Option<Value>>> = match source.body.as_ref() {
        SetExpr::Values(values) if source.order_by.is_none() && source.limit_clause.is_none() => {
            if values.rows.len() > MAX_ROWS_PER_WRITE {
                return Err(KalamError::TooLarge(format!("at most {MAX_ROWS_PER_WRITE} rows per INSERT")));
            }
            let mut rows = Vec::with_capacity(values.rows.len());
            for (r, row) in values.rows.iter().enumerate() {
                if row.content.len() != targets.len() {
                    return Err(KalamError::Validation(format!(
                        "row {} has {} values but {} columns are being inserted",
                        r + 1,
                        row.content.len(),
                        targets.len()
                    )));
                }
                rows.push(value_row(cx, &table, &targets, &row.content).await?);
            }
            rows
        }
        _ => select_rows(cx, &table, &targets, Statement::Query(source.clone())).await?,
    };

    let mut ops = Vec::with_capacity(provided.len());
    for row in provided {
        ops.push(RowOp::Insert { values: complete_row(cx, &table, &targets, row)? });
    }
    let partition = cx.partition(&table);
    if table.kind == TableKind::Stream {
        return insert_events(cx, &table, partition, ops);
    }
    let result = cx.db.commit(vec![TableWrite { table: &table, partition, ops }], None).await?;
    Ok(results::message(result.affected, format!("Inserted {} row(s)", result.affected)))
}

/// STREAM tables: events go to the partition's buffer and its subscribers; with `ephemeral`
/// they are dropped when nobody subscribes.
fn insert_events(cx: &ExecContext<'_>, table: &TableDef, partition: Partition, ops: Vec<RowOp>) -> Result<QueryResult> {
    let ephemeral = table.options.stream.is_some_and(|s| s.ephemeral);
    // In a cluster the subscribers may be on other nodes: each node applies the rule to its own.
    let relay = cx.db.replication();
    if ephemeral && relay.is_none() && !cx.db.live.has_subscribers(table.id, partition) {
        return Ok(results::message(0, "No live subscriber: events dropped (ephemeral stream)"));
    }
    // Events skip the committer's row path, so CRDT_TEXT values become documents here.
    let rows: Vec<Vec<Value>> = ops
        .into_iter()
        .filter_map(|op| match op {
            RowOp::Insert { values } => Some(table.resolve_new_row(values)),
            _ => None,
        })
        .collect::<Result<_>>()?;
    let streams = &cx.db.streams;
    let local = !ephemeral || cx.db.live.has_subscribers(table.id, partition);
    let events = cx.db.committer.commit_stream(table, partition, rows, |events| {
        if local {
            streams.append(table, partition, events)
        }
    });
    if let Some(relay) = relay {
        relay.relay_stream(StreamEvents {
            table: table.id,
            schema_version: table.schema_version,
            partition,
            events: events.clone(),
        });
    }
    Ok(results::message(events.len() as u64, format!("Inserted {} event(s)", events.len())))
}

/// Values of one VALUES row (`None` where DEFAULT was written).
async fn value_row(
    cx: &ExecContext<'_>,
    table: &TableDef,
    targets: &[usize],
    exprs: &[Expr],
) -> Result<Vec<Option<Value>>> {
    let mut out = Vec::with_capacity(exprs.len());
    for (expr, &idx) in exprs.iter().zip(targets) {
        let col = &table.columns[idx];
        if matches!(expr, Expr::Identifier(i) if i.value.eq_ignore_ascii_case("default") && i.quote_style.is_none()) {
            out.push(None);
            continue;
        }
        let v = match simple_value(cx, expr, col.data_type, &col.name) {
            Some(v) => v?,
            None => evaluate_expr(cx, expr, col.data_type, &col.name).await?,
        };
        out.push(Some(v));
    }
    Ok(out)
}

/// Evaluates a general expression (arithmetic, casts, scalar functions) with DataFusion.
async fn evaluate_expr(cx: &ExecContext<'_>, expr: &Expr, dt: crate::types::DataType, column: &str) -> Result<Value> {
    let stmt = super::select_statement(vec![expr.clone()], None, None);
    let (_, batches) = query::run(cx, stmt, SystemColumns::Hidden, 1).await?;
    let batch = batches.iter().find(|b| b.num_rows() > 0).ok_or_else(|| KalamError::internal("no value"))?;
    values::coerce(values::from_arrow(batch.column(0).as_ref(), 0)?, dt, column)
}

/// INSERT ... SELECT: the query runs in the caller's scope; columns map by position.
async fn select_rows(
    cx: &ExecContext<'_>,
    table: &TableDef,
    targets: &[usize],
    stmt: Statement,
) -> Result<Vec<Vec<Option<Value>>>> {
    let system_columns = query::system_columns_of(&stmt);
    let (schema, batches) = query::run(cx, stmt, system_columns, MAX_ROWS_PER_WRITE).await?;
    if schema.fields().len() != targets.len() {
        return Err(KalamError::Validation(format!(
            "the SELECT returns {} columns but {} columns are being inserted",
            schema.fields().len(),
            targets.len()
        )));
    }
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut rows = Vec::with_capacity(total);
    for batch in &batches {
        for r in 0..batch.num_rows() {
            let mut row = Vec::with_capacity(targets.len());
            for (c, &idx) in targets.iter().enumerate() {
                let col = &table.columns[idx];
                let v = values::from_arrow(batch.column(c).as_ref(), r)?;
                row.push(Some(values::coerce(v, col.data_type, &col.name)?));
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

/// A full row: provided values, defaults for the rest, NOT NULL checked.
pub(crate) fn complete_row(
    cx: &ExecContext<'_>,
    table: &TableDef,
    targets: &[usize],
    provided: Vec<Option<Value>>,
) -> Result<Vec<Value>> {
    let mut row: Vec<Option<Value>> = vec![None; table.columns.len()];
    for (&idx, v) in targets.iter().zip(provided) {
        row[idx] = v;
    }
    table
        .columns
        .iter()
        .zip(row)
        .map(|(col, v)| {
            let v = match v {
                Some(v) => v,
                None => match &col.default {
                    Some(d) => evaluate_default(cx, d, col.data_type),
                    None => Value::Null,
                },
            };
            if v.is_null() && !col.nullable {
                return Err(KalamError::Validation(format!(
                    "column '{}' of table '{}' cannot be NULL",
                    col.name,
                    table.qualified_name()
                )));
            }
            Ok(v)
        })
        .collect()
}
