//! Runs the statements of one request in order. Each statement is committed on its own;
//! on the first failure the statements before it stay applied and the error names the
//! failing statement (1-based).

use crate::auth::Principal;
use crate::database::Database;
use crate::error::{KalamError, Result, StatementError};
use crate::ids::NamespaceId;
use crate::sql::ast::Statement;
use crate::sql::commands::{alter_table, backup, execute_as, flush, kill, namespace, storage, table, user};
use crate::sql::parser::Script;
use crate::sql::{ExecContext, dml, point_read, query, results};
use crate::tables::SystemColumns;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use futures::future::BoxFuture;
use kalamdb_client_core::protocol::{QueryResult, SqlRequest};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs a request. `running` is set to the 1-based index of the statement in progress, so
/// that a caller cancelling the request can say which statement it stopped.
pub(crate) async fn execute_request(
    db: &Arc<Database>,
    principal: &Principal,
    req: &SqlRequest,
    running: &AtomicUsize,
) -> std::result::Result<Vec<QueryResult>, StatementError> {
    let limits = &db.config.limits;
    if req.sql.len() > limits.max_sql_bytes {
        return Err(KalamError::TooLarge(format!(
            "SQL text is {} bytes, more than the limit of {}",
            req.sql.len(),
            limits.max_sql_bytes
        ))
        .into());
    }
    if req.params.len() > limits.max_params {
        return Err(KalamError::TooLarge(format!("more than {} parameters", limits.max_params)).into());
    }
    let namespace = match &req.namespace {
        Some(ns) => {
            let ns = NamespaceId::new(ns)?;
            if db.catalog.namespace(&ns).is_none() {
                return Err(KalamError::NamespaceNotFound(ns.to_string()).into());
            }
            Some(ns)
        }
        None => None,
    };
    let script = Script::tokenize(&req.sql)?;
    if script.is_empty() {
        return Err(KalamError::Validation("the request contains no SQL statement".into()).into());
    }
    if script.len() > limits.max_statements {
        return Err(KalamError::TooManyStatements(format!(
            "{} statements in one request, more than the limit of {}",
            script.len(),
            limits.max_statements
        ))
        .into());
    }
    let mut cx = ExecContext { db, principal: principal.clone(), namespace, params: &req.params };
    let mut results = Vec::with_capacity(script.len());
    let mut response_bytes = 0usize;
    for i in 0..script.len() {
        running.store(i + 1, Ordering::Relaxed);
        // Parsed just before it runs: a syntax error leaves the statements before it applied.
        let statement = match script.statement(i) {
            Ok(statement) => statement,
            Err(error) => return Err(StatementError { error, statement: Some(i + 1) }),
        };
        let mut outcome = execute_statement(&mut cx, &statement, false).await;
        // A write that raced an ALTER TABLE wrote nothing: run it again on the new definition.
        for _ in 0..super::SCHEMA_CHANGE_RETRIES {
            if !matches!(outcome, Err(KalamError::SchemaChanged(_))) {
                break;
            }
            outcome = execute_statement(&mut cx, &statement, false).await;
        }
        // The response holds every result: its size is bounded as a whole.
        let outcome = outcome.and_then(|r| {
            response_bytes += results::result_json_len(&r);
            if response_bytes > limits.max_response_bytes {
                return Err(results::response_too_large(limits.max_response_bytes));
            }
            Ok(r)
        });
        match outcome {
            Ok(r) => results.push(r),
            Err(error) => return Err(StatementError { error, statement: Some(i + 1) }),
        }
    }
    Ok(results)
}

/// Runs one statement. `nested` is set inside `EXECUTE AS`, which cannot nest.
fn execute_statement<'a, 'b: 'a>(
    cx: &'a mut ExecContext<'b>,
    statement: &'a Statement,
    nested: bool,
) -> BoxFuture<'a, Result<QueryResult>> {
    Box::pin(async move {
        if nested && matches!(statement, Statement::ExecuteAs { .. }) {
            return Err(KalamError::Validation("EXECUTE AS cannot be nested".into()));
        }
        if nested && !matches!(statement, Statement::Sql(_)) {
            // The target's own account, and anything beyond their data, stays out of reach:
            // acting as a user must not mean managing that user.
            return Err(KalamError::Forbidden(
                "EXECUTE AS runs queries and data changes only (SELECT, INSERT, UPDATE, DELETE); \
                 account, schema and admin statements run as yourself"
                    .into(),
            ));
        }
        match statement {
            Statement::CreateNamespace { name, if_not_exists } => namespace::create(cx, name, *if_not_exists),
            Statement::AlterNamespace { name, options } => namespace::alter(cx, name, options),
            Statement::DropNamespace { name, if_exists, cascade } => {
                namespace::drop(cx, name, *if_exists, *cascade).await
            }
            Statement::ShowNamespaces => namespace::show(cx),
            Statement::Use { namespace } => namespace::use_namespace(cx, namespace),
            Statement::CreateTable(create) => table::create(cx, create),
            Statement::DropTable { kind, table, if_exists } => table::drop(cx, *kind, table, *if_exists).await,
            Statement::ShowTables { namespace } => table::show(cx, namespace.as_deref()),
            Statement::DescribeTable { table, history } => table::describe(cx, table, *history),
            Statement::ShowStats { table } => table::stats(cx, table).await,
            Statement::CreateUser { name, password, role, email } => {
                user::create(cx, name, password.expose(), *role, email.as_deref()).await
            }
            Statement::AlterUser { name, action } => user::alter(cx, name, action).await,
            Statement::DropUser { name, if_exists } => user::drop(cx, name, *if_exists),
            Statement::ExecuteAs { user: target, statement } => {
                let principal = execute_as::target(cx, target)?;
                let mut inner =
                    ExecContext { db: cx.db, principal, namespace: cx.namespace.clone(), params: cx.params };
                execute_statement(&mut inner, statement, true).await
            }
            Statement::AlterTable { table, action } => alter_table::alter(cx, table, action).await,
            Statement::FlushTable { table } => flush::table(cx, table),
            Statement::FlushAllTables { namespace } => flush::all_tables(cx, namespace.as_deref()),
            Statement::KillLiveQuery { live_id } => kill::live_query(cx, live_id),
            Statement::KillJob { job_id } => flush::kill_job(cx, job_id),
            Statement::CreateStorage(create) => storage::create(cx, create).await,
            Statement::DropStorage { id, if_exists } => storage::drop(cx, id, *if_exists),
            Statement::ShowStorages => storage::show(cx),
            Statement::BackupDatabase { namespace, path } => backup::backup(cx, namespace, path).await,
            Statement::RestoreDatabase { namespace, path } => backup::restore(cx, namespace, path).await,
            Statement::ShowBackup { path } => backup::show(cx, path).await,
            Statement::Sql(sql) => execute_sql(cx, sql).await,
        }
    })
}

async fn execute_sql(cx: &ExecContext<'_>, stmt: &SqlStatement) -> Result<QueryResult> {
    let system_columns = query::system_columns_of(stmt);
    match stmt {
        SqlStatement::Query(_) if system_columns == SystemColumns::Hidden => {
            match point_read::try_execute(cx, stmt).await {
                Some(result) => result,
                None => query::execute(cx, stmt.clone(), system_columns).await,
            }
        }
        SqlStatement::Query(_) | SqlStatement::Explain { .. } => query::execute(cx, stmt.clone(), system_columns).await,
        SqlStatement::Insert(ins) => dml::insert::execute(cx, ins).await,
        SqlStatement::Update(upd) => dml::update::execute(cx, upd).await,
        SqlStatement::Delete(del) => dml::delete::execute(cx, del).await,
        other => Err(KalamError::NotSupported(format!("unsupported statement: {}", first_words(&other.to_string())))),
    }
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}
