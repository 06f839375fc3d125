//! Queries (SELECT, EXPLAIN, VALUES) through DataFusion, scoped to the caller.

use crate::budget::{FairScheduler, FairStream, StatementBudget, human_bytes};
use crate::error::{KalamError, Result};
use crate::ids::UserId;
use crate::schema::{DELETED_COLUMN, UPDATED_COLUMN};
use crate::sql::parser::ident_name;
use crate::sql::{ExecContext, results, session};
use crate::tables::SystemColumns;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::execution::context::SQLOptions;
use datafusion::execution::context::SessionContext;
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::physical_plan::execute_stream;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Expr, Statement, visit_expressions};
use futures::StreamExt;
use kalamdb_client_core::protocol::QueryResult;
use std::ops::ControlFlow;
use std::sync::Arc;

/// Which system columns a statement names (see [`SystemColumns`]): `_deleted` anywhere
/// shows tombstones, `_updated` shows the columns; names in string literals do not count.
pub(crate) fn system_columns_of(statement: &Statement) -> SystemColumns {
    let mut mode = SystemColumns::Hidden;
    let _ = visit_expressions(statement, |e| {
        let name = match e {
            Expr::Identifier(i) => Some(i),
            Expr::CompoundIdentifier(parts) => parts.last(),
            _ => None,
        };
        match name.map(ident_name).as_deref() {
            Some(DELETED_COLUMN) => {
                mode = SystemColumns::VisibleWithTombstones;
                return ControlFlow::Break(());
            }
            Some(UPDATED_COLUMN) => mode = SystemColumns::Visible,
            _ => {}
        }
        ControlFlow::Continue(())
    });
    mode
}

/// JSON request parameters as DataFusion parameter values.
pub(crate) fn param_values(params: &[serde_json::Value]) -> Result<ParamValues> {
    let values = params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Ok(match p {
                serde_json::Value::Null => ScalarValue::Null,
                serde_json::Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
                serde_json::Value::Number(n) => match n.as_i64() {
                    Some(v) => ScalarValue::Int64(Some(v)),
                    None => ScalarValue::Float64(n.as_f64()),
                },
                serde_json::Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
                other => ScalarValue::Utf8(Some(other.to_string())),
            })
            .map_err(|e: KalamError| KalamError::Validation(format!("parameter ${}: {e}", i + 1)))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ParamValues::List(values.into_iter().map(Into::into).collect()))
}

/// Plans and runs a read-only statement, returning its schema and batches.
///
/// The work runs on the query runtime ([`crate::budget::QueryRuntime`]): planning, and each
/// poll of the result stream, while holding a CPU slot of the fair scheduler; the batches
/// collected are charged to the statement's memory. Fails as soon as more than `max_rows`
/// rows arrive, so a runaway query stops early. Time is bounded by the request's deadline:
/// dropping this future aborts the work.
pub(crate) async fn run(
    cx: &ExecContext<'_>,
    statement: Statement,
    system_columns: SystemColumns,
    max_rows: usize,
) -> Result<(Schema, Vec<RecordBatch>)> {
    let job = QueryJob::new(cx, statement, system_columns, max_rows)?;
    cx.db.runtime.run(job.collect()).await
}

/// Runs a query statement and renders its result (also on the query runtime).
pub(crate) async fn execute(
    cx: &ExecContext<'_>,
    statement: Statement,
    system_columns: SystemColumns,
) -> Result<QueryResult> {
    let limits = &cx.db.config.limits;
    let job = QueryJob::new(cx, statement, system_columns, limits.max_result_rows)?;
    let max_bytes = limits.max_response_bytes;
    let (scheduler, user) = (cx.db.scheduler.clone(), cx.principal.user_id);
    cx.db
        .runtime
        .run(async move {
            let (schema, batches) = job.collect().await?;
            // Turning rows into JSON is the user's CPU too: a slot per batch.
            let mut result = results::ResultBuilder::new(&schema, max_bytes);
            for batch in &batches {
                let _slot = scheduler.acquire(user).await;
                result.push(batch)?;
            }
            Ok(result.finish())
        })
        .await
}

/// Everything a query needs on the query runtime, owned.
struct QueryJob {
    ctx: SessionContext,
    budget: Arc<StatementBudget>,
    statement: Statement,
    params: Option<ParamValues>,
    scheduler: Arc<FairScheduler>,
    user: UserId,
    max_rows: usize,
    statement_memory: usize,
}

impl QueryJob {
    fn new(cx: &ExecContext<'_>, statement: Statement, system_columns: SystemColumns, max_rows: usize) -> Result<Self> {
        let (ctx, budget) = session::context_for(cx.db, &cx.principal, cx.namespace.as_ref(), system_columns);
        Ok(QueryJob {
            ctx,
            budget,
            statement,
            params: (!cx.params.is_empty()).then(|| param_values(cx.params)).transpose()?,
            scheduler: cx.db.scheduler.clone(),
            user: cx.principal.user_id,
            max_rows,
            statement_memory: cx.db.config.limits.statement_memory_bytes,
        })
    }

    async fn collect(self) -> Result<(Schema, Vec<RecordBatch>)> {
        let QueryJob { ctx, budget, statement, params, scheduler, user, max_rows, statement_memory } = self;
        let (schema, mut stream) = {
            let _slot = scheduler.acquire(user).await;
            let plan = ctx.state().statement_to_plan(DfStatement::Statement(Box::new(statement))).await?;
            // DataFusion's own DDL/DML/SET must never run: KalamDB handles those itself.
            SQLOptions::new()
                .with_allow_ddl(false)
                .with_allow_dml(false)
                .with_allow_statements(false)
                .verify_plan(&plan)?;
            let mut df = ctx.execute_logical_plan(plan).await?;
            if let Some(params) = params {
                df = df.with_param_values(params)?;
            }
            let schema = df.schema().as_arrow().clone();
            let plan = df.create_physical_plan().await?;
            let stream = execute_stream(plan, session::task_context(&ctx, &budget))?;
            (schema, FairStream::new(stream, scheduler.clone(), user))
        };
        let collected = MemoryConsumer::new("statement result").register(&budget.pool());
        let mut batches = vec![];
        let mut rows = 0usize;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            rows += batch.num_rows();
            if rows > max_rows {
                return Err(KalamError::TooLarge(format!(
                    "the statement produced more than {max_rows} rows; add a LIMIT or a narrower WHERE"
                )));
            }
            collected.try_grow(batch.get_array_memory_size()).map_err(|_| {
                KalamError::TooLarge(format!(
                    "the statement's result is larger than its memory limit of {} (limits.statement_memory_bytes); \
                     add a LIMIT or select fewer columns",
                    human_bytes(statement_memory)
                ))
            })?;
            batches.push(batch);
        }
        Ok((schema, batches))
    }
}
