//! Runs the statements of one request in order. Each statement is committed on its own;
//! on the first failure the statements before it stay applied and the error names the
//! failing statement (1-based).

use crate::auth::Principal;
use crate::database::Database;
use crate::error::{KalamError, Result, StatementError};
use crate::ids::NamespaceId;
use crate::replication::{
    Command, ForwardedStatement, GroupId, METADATA, MembershipChange, Outcome, ReplicatedStatement, WirePrincipal,
};
use crate::sql::ast::{AlterUserAction, ClusterChange, Secret, Statement, TableRef};
use crate::sql::commands::{alter_table, backup, execute_as, flush, kill, namespace, storage, table, user};
use crate::sql::context::{Applying, Origin};
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
    let mut cx =
        ExecContext { db, principal: principal.clone(), namespace, params: &req.params, origin: Origin::Client };
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
        if let (Some(replication), Origin::Client | Origin::OnLeader) = (cx.db.replication(), &cx.origin) {
            // A statement forwarded here runs here: if this node no longer leads, proposing
            // fails (`NotLeader`) and the sender asks the new leader, rather than this node
            // forwarding it on, which could go round in circles.
            let forwarded = matches!(cx.origin, Origin::OnLeader);
            if let Statement::FlushTable { table } = statement
                && let Ok(def) = cx.resolve_table(table)
                && cx.db.cold.is_replicated(&def.options.storage)
            {
                // Tables on a shared storage are flushed through the log, each partition by
                // its group's leader: every node that leads a group flushes its partitions.
                if !forwarded {
                    return flush_everywhere(cx, table, statement).await;
                }
            }
            let route = cluster_route(statement);
            let group = match route {
                Route::Leader => match write_group(cx, statement) {
                    // A table this node does not know (yet: created through another node
                    // a moment ago?): catch up with the catalog and look again.
                    METADATA if matches!(statement, Statement::Sql(_) | Statement::ExecuteAs { .. }) => {
                        replication.catalog_barrier().await?;
                        write_group(cx, statement)
                    }
                    group => group,
                },
                _ => METADATA,
            };
            match route {
                // A read of a user's partitions on a node that does not store them (spread
                // storage) runs on the group's leader; one forwarded here runs here.
                Route::Here if !forwarded => {
                    if let Some(group) = read_group(cx, statement)
                        && !replication.stores(group)
                        && let Some(answer) = forward(cx, group, statement).await?
                    {
                        return Ok(answer);
                    }
                }
                Route::Here => {}
                Route::Leader | Route::Log if !forwarded => {
                    let cx: &ExecContext<'_> = cx;
                    let here = || async move { execute_statement(&mut cx.on_leader(), statement, nested).await };
                    let there = || forward(cx, group, statement);
                    return crate::replication::on_leader(replication.as_ref(), group, here, there).await;
                }
                Route::Leader => {}
                Route::Log => return propose(cx, statement).await,
            }
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
                let mut inner = cx.acting_as(execute_as::target(cx, target)?);
                execute_statement(&mut inner, statement, true).await
            }
            Statement::AlterTable { table, action } => alter_table::alter(cx, table, action).await,
            Statement::FlushTable { table } => flush::table(cx, table),
            Statement::FlushAllTables { namespace } => flush::all_tables(cx, namespace.as_deref()),
            Statement::KillLiveQuery { live_id } => kill::live_query(cx, live_id).await,
            Statement::KillJob { job_id } => flush::kill_job(cx, job_id).await,
            Statement::CreateStorage(create) => storage::create(cx, create).await,
            Statement::DropStorage { id, if_exists } => storage::drop(cx, id, *if_exists),
            Statement::ShowStorages => storage::show(cx),
            Statement::AlterCluster(change) => alter_cluster(cx, change).await,
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

/// Where a statement runs in cluster mode.
enum Route {
    /// On this node: queries, and what concerns this node only (flushes of its replica,
    /// its live queries and jobs).
    Here,
    /// On the leader, which plans it and replicates the rows it writes.
    Leader,
    /// Through the log: the leader replicates the statement and every node applies it.
    Log,
}

fn cluster_route(statement: &Statement) -> Route {
    match statement {
        Statement::CreateNamespace { .. }
        | Statement::AlterNamespace { .. }
        | Statement::DropNamespace { .. }
        | Statement::CreateTable(_)
        | Statement::AlterTable { .. }
        | Statement::DropTable { .. }
        | Statement::CreateUser { .. }
        | Statement::AlterUser { .. }
        | Statement::DropUser { .. } => Route::Log,
        Statement::Sql(sql)
            if matches!(**sql, SqlStatement::Insert(_) | SqlStatement::Update(_) | SqlStatement::Delete(_)) =>
        {
            Route::Leader
        }
        // Membership changes run on the leader, as openraft requires.
        Statement::AlterCluster(_) => Route::Leader,
        Statement::ExecuteAs { statement, .. } => match cluster_route(statement) {
            Route::Here => Route::Here,
            _ => Route::Leader,
        },
        // Storages are part of the catalog (only shared ones are accepted: see
        // `storage::check`). A backup reads the replica of the node it runs on (one
        // consistent state, like any node's); a restore reads the backup where it is sent,
        // copies the files to the shared storages and registers the tables through the
        // logs (see `backup::replicated`).
        Statement::CreateStorage(_) | Statement::DropStorage { .. } => Route::Log,
        _ => Route::Here,
    }
}

/// The Raft group whose leader runs a statement that must run on a leader: the group of
/// the partition a write writes (the caller's, the `EXECUTE AS` target's, or a SHARED
/// table's), the metadata group for the rest (`ALTER CLUSTER`). A statement whose table
/// cannot be resolved goes to the metadata group's leader, which answers the same error.
fn write_group(cx: &ExecContext<'_>, statement: &Statement) -> GroupId {
    let Some(replication) = cx.db.replication() else { return METADATA };
    match statement {
        Statement::Sql(sql) => {
            let table = dml::written_table(sql).and_then(|name| cx.resolve_table(&dml::table_ref(name).ok()?).ok());
            table.map_or(METADATA, |t| replication.group_of(t.id, cx.partition(&t)))
        }
        Statement::ExecuteAs { user, statement } => match execute_as::target(cx, user) {
            Ok(principal) => write_group(&cx.acting_as(principal), statement),
            Err(_) => METADATA,
        },
        _ => METADATA,
    }
}

/// With spread storage, the data group whose partitions `statement` reads, when it reads a
/// user's: the caller's (or the `EXECUTE AS` target's) group if it names a USER or STREAM
/// table. No role reads another user's partitions, so that is the only group such a
/// statement needs besides the SHARED tables'.
fn read_group(cx: &ExecContext<'_>, statement: &Statement) -> Option<GroupId> {
    use datafusion::sql::sqlparser::ast::visit_relations;
    // Every node stores every group unless storage is spread.
    if !cx.db.committer.placement().shared_apart() {
        return None;
    }
    let replication = cx.db.replication()?;
    match statement {
        Statement::Sql(sql) => {
            let mut user_table = None;
            let _ = visit_relations(sql, |name| {
                let table = dml::table_ref(name).ok().and_then(|r| cx.resolve_table(&r).ok());
                match table {
                    Some(t) if t.kind != crate::schema::TableKind::Shared => {
                        user_table = Some(t.id);
                        std::ops::ControlFlow::Break(())
                    }
                    _ => std::ops::ControlFlow::Continue(()),
                }
            });
            user_table.map(|t| replication.group_of(t, crate::ids::Partition::User(cx.principal.user_id)))
        }
        Statement::ExecuteAs { user, statement } => {
            read_group(&cx.acting_as(execute_as::target(cx, user).ok()?), statement)
        }
        _ => None,
    }
}

/// `FLUSH TABLE` of a table on a shared storage, in a cluster. A SHARED table is in one data
/// group: its leader flushes it. A USER table's partitions are in every data group: every
/// node that leads one flushes the partitions of the groups it leads (here too, if this
/// node does); the answer has one row per job started.
async fn flush_everywhere(cx: &ExecContext<'_>, table: &TableRef, statement: &Statement) -> Result<QueryResult> {
    let replication = cx.db.replication().ok_or_else(|| KalamError::internal("flushing without a cluster"))?;
    let def = cx.resolve_table(table)?;
    if def.kind == crate::schema::TableKind::Shared {
        let group = replication.group_of(def.id, crate::ids::Partition::Shared);
        let here = || async { flush::table(&cx.on_leader(), table) };
        let there = || forward(cx, group, statement);
        return crate::replication::on_leader(replication.as_ref(), group, here, there).await;
    }
    let placement = cx.db.committer.placement();
    let mut asked = std::collections::BTreeSet::new();
    let mut answers = Vec::new();
    let mut here = false;
    for group in placement.all().map(crate::replication::raft_group) {
        if replication.leads(group) {
            here = true;
            continue;
        }
        // One question per leading node: it flushes all its groups' partitions.
        let leader = replication.leader_of(group);
        if leader.is_some_and(|l| !asked.insert(l)) {
            continue;
        }
        match forward(cx, group, statement).await? {
            Some(result) => answers.push(result),
            // It came to lead the group meanwhile.
            None => here = true,
        }
    }
    if here {
        answers.insert(0, flush::table(cx, table)?);
    }
    let mut answers = answers.into_iter();
    let mut all = answers.next().ok_or_else(|| KalamError::Unavailable("no data group has a leader; retry".into()))?;
    for other in answers {
        all.rows.extend(other.rows);
        all.message = match (all.message, other.message) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        };
    }
    all.row_count = all.rows.len() as u64;
    Ok(all)
}

/// `ALTER CLUSTER ADD NODE` / `REMOVE NODE` (system role; on the leader).
async fn alter_cluster(cx: &ExecContext<'_>, change: &ClusterChange) -> Result<QueryResult> {
    cx.principal.require(kalamdb_client_core::protocol::Role::System, "ALTER CLUSTER")?;
    let replication = cx.db.replication().ok_or_else(|| {
        KalamError::NotSupported("ALTER CLUSTER needs cluster mode: this server is a single node".into())
    })?;
    let change = match change {
        ClusterChange::AddNode { id, address } => MembershipChange::Add { id: *id, address: address.clone() },
        ClusterChange::RemoveNode { id } => MembershipChange::Remove { id: *id },
    };
    let message = replication.change_members(change).await?;
    Ok(results::message(1, message))
}

/// Hands a write statement to the leader of `group`, which runs it; answers once this node
/// applied it, or `None` if this node leads the group.
async fn forward(cx: &ExecContext<'_>, group: GroupId, statement: &Statement) -> Result<Option<QueryResult>> {
    let replication = cx.db.replication().ok_or_else(|| KalamError::internal("forwarding without a cluster"))?;
    replication
        .forward_statement(
            group,
            &ForwardedStatement {
                sql: statement.to_string(),
                params: cx.params.to_vec(),
                principal: (&cx.principal).into(),
                namespace: cx.namespace.as_ref().map(|n| n.to_string()),
                membership: matches!(statement, Statement::AlterCluster(_)),
                read_after: 0,
            },
        )
        .await
}

/// On the leader: appends a catalog statement to the log. Every node (this one included)
/// runs it when it applies the entry ([`apply_statement`]). A password is hashed here, once.
async fn propose(cx: &ExecContext<'_>, statement: &Statement) -> Result<QueryResult> {
    let replication = cx.db.replication().ok_or_else(|| KalamError::internal("proposing without a cluster"))?;
    let (sql, password_hash) = match statement {
        Statement::CreateUser { name, password, role, email } => {
            let hash = user::password_hash(cx, password.expose()).await?;
            let hidden = Statement::CreateUser {
                name: name.clone(),
                password: Secret(String::new()),
                role: *role,
                email: email.clone(),
            };
            (hidden.to_string(), Some(hash))
        }
        Statement::AlterUser { name, action: AlterUserAction::Password(password) } => {
            let hash = user::password_hash(cx, password.expose()).await?;
            let hidden =
                Statement::AlterUser { name: name.clone(), action: AlterUserAction::Password(Secret(String::new())) };
            (hidden.to_string(), Some(hash))
        }
        Statement::CreateStorage(create) => {
            storage::check(cx, create).await?;
            (statement.to_string(), None)
        }
        other => (other.to_string(), None),
    };
    let command = Command::Statement(ReplicatedStatement {
        sql,
        password_hash,
        principal: (&cx.principal).into(),
        namespace: cx.namespace.as_ref().map(|n| n.to_string()),
        at: cx.db.clock.now_micros(),
    });
    match replication.propose(command).await? {
        Outcome::Statement(result) => Ok(result),
        other => Err(KalamError::internal(format!("a statement entry was applied as {other:?}"))),
    }
}

/// Runs a catalog statement applied from the replicated log, as every replica does.
pub(crate) async fn apply_statement(db: &Arc<Database>, entry: ReplicatedStatement) -> Result<QueryResult> {
    let origin = Origin::Log(Applying { at: entry.at, password_hash: entry.password_hash });
    let (statement, mut cx) =
        statement_from_node(db, &entry.sql, entry.principal, entry.namespace.as_deref(), &[], origin)?;
    execute_statement(&mut cx, &statement, false).await
}

/// One statement another node sent (the leader through the log, or a follower forwarding
/// it), parsed, and the context it runs in.
fn statement_from_node<'a>(
    db: &'a Arc<Database>,
    sql: &str,
    principal: WirePrincipal,
    namespace: Option<&str>,
    params: &'a [serde_json::Value],
    origin: Origin,
) -> Result<(Statement, ExecContext<'a>)> {
    let statement = Script::tokenize(sql)?.single()?;
    let namespace = namespace.map(NamespaceId::new).transpose()?;
    Ok((statement, ExecContext { db, principal: principal.into(), namespace, params, origin }))
}

/// On the leader: runs a write statement another node forwarded, as `execute_request`
/// runs each statement.
pub(crate) async fn execute_forwarded(db: &Arc<Database>, forwarded: ForwardedStatement) -> Result<QueryResult> {
    let (statement, mut cx) = statement_from_node(
        db,
        &forwarded.sql,
        forwarded.principal,
        forwarded.namespace.as_deref(),
        &forwarded.params,
        Origin::OnLeader,
    )?;
    let mut outcome = execute_statement(&mut cx, &statement, false).await;
    for _ in 0..super::SCHEMA_CHANGE_RETRIES {
        if !matches!(outcome, Err(KalamError::SchemaChanged(_))) {
            break;
        }
        outcome = execute_statement(&mut cx, &statement, false).await;
    }
    outcome
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}
