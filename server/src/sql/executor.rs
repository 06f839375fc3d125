//! Runs the statements of one request in order. Each statement is committed on its own;
//! on the first failure the statements before it stay applied and the error names the
//! failing statement (1-based).

use crate::auth::Principal;
use crate::database::Database;
use crate::error::{KalamError, Result, StatementError};
use crate::ids::NamespaceId;
use crate::sql::ast::Statement;
use crate::sql::commands::{alter_table, backup, execute_as, flush, kill, namespace, storage, table, user};
use crate::sql::{ExecContext, dml, parser, point_read, query};
use crate::tables::SystemColumns;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use datafusion::sql::sqlparser::tokenizer::Token;
use futures::future::BoxFuture;
use kalamdb_client_core::protocol::{QueryResult, SqlRequest};
use std::sync::Arc;

impl From<parser::ParseError> for KalamError {
    fn from(e: parser::ParseError) -> Self {
        KalamError::Parse(e.message)
    }
}

pub async fn execute_request(
    db: &Arc<Database>,
    principal: &Principal,
    req: &SqlRequest,
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
    let statements = parser::split_statements(&req.sql).map_err(KalamError::from)?;
    if statements.is_empty() {
        return Err(KalamError::Validation("the request contains no SQL statement".into()).into());
    }
    if statements.len() > limits.max_statements {
        return Err(KalamError::TooManyStatements(format!(
            "{} statements in one request, more than the limit of {}",
            statements.len(),
            limits.max_statements
        ))
        .into());
    }
    let mut cx = ExecContext { db, principal: principal.clone(), namespace, params: &req.params };
    let mut results = Vec::with_capacity(statements.len());
    for (i, text) in statements.iter().enumerate() {
        let mut outcome = execute_statement(&mut cx, text, false).await;
        // A write that raced an ALTER TABLE wrote nothing: run it again on the new definition.
        for _ in 0..super::SCHEMA_CHANGE_RETRIES {
            if !matches!(outcome, Err(KalamError::SchemaChanged(_))) {
                break;
            }
            outcome = execute_statement(&mut cx, text, false).await;
        }
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
    text: &'a str,
    nested: bool,
) -> BoxFuture<'a, Result<QueryResult>> {
    Box::pin(async move {
        match parser::parse_statement(text)? {
            Statement::CreateNamespace { name, if_not_exists } => namespace::create(cx, &name, if_not_exists),
            Statement::AlterNamespace { name, options } => namespace::alter(cx, &name, &options),
            Statement::DropNamespace { name, if_exists, cascade } => namespace::drop(cx, &name, if_exists, cascade),
            Statement::ShowNamespaces => namespace::show(cx),
            Statement::Use { namespace } => namespace::use_namespace(cx, &namespace),
            Statement::CreateTable(create) => table::create(cx, &create),
            Statement::DropTable { kind, table, if_exists } => table::drop(cx, kind, &table, if_exists),
            Statement::ShowTables { namespace } => table::show(cx, namespace.as_deref()),
            Statement::DescribeTable { table, history } => table::describe(cx, &table, history),
            Statement::ShowStats { table } => table::stats(cx, &table),
            Statement::CreateUser { name, password, role, email } => {
                user::create(cx, &name, &password, role, email.as_deref()).await
            }
            Statement::AlterUser { name, action } => user::alter(cx, &name, &action).await,
            Statement::DropUser { name, if_exists } => user::drop(cx, &name, if_exists),
            Statement::ExecuteAs { user: target, statement } => {
                if nested {
                    return Err(KalamError::Validation("EXECUTE AS cannot be nested".into()));
                }
                let principal = execute_as::target(cx, &target)?;
                let mut inner =
                    ExecContext { db: cx.db, principal, namespace: cx.namespace.clone(), params: cx.params };
                execute_statement(&mut inner, &statement, true).await
            }
            Statement::AlterTable { table, action } => alter_table::alter(cx, &table, &action),
            Statement::FlushTable { table } => flush::table(cx, &table),
            Statement::FlushAllTables { namespace } => flush::all_tables(cx, namespace.as_deref()),
            Statement::KillLiveQuery { live_id } => kill::live_query(cx, &live_id),
            Statement::KillJob { job_id } => flush::kill_job(cx, &job_id),
            Statement::CreateStorage(create) => storage::create(cx, &create),
            Statement::DropStorage { id, if_exists } => storage::drop(cx, &id, if_exists),
            Statement::ShowStorages => storage::show(cx),
            Statement::BackupDatabase { namespace, path } => backup::backup(cx, &namespace, &path),
            Statement::RestoreDatabase { namespace, path } => backup::restore(cx, &namespace, &path),
            Statement::ShowBackup { path } => backup::show(cx, &path).await,
            Statement::Sql(sql) => execute_sql(cx, &sql).await,
        }
    })
}

async fn execute_sql(cx: &ExecContext<'_>, sql: &str) -> Result<QueryResult> {
    use datafusion::sql::sqlparser::{dialect::GenericDialect, parser::Parser, tokenizer::Tokenizer};
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql).tokenize().map_err(|e| KalamError::Parse(e.to_string()))?;
    check_complexity(&tokens)?;
    let system_columns = query::system_columns_in(&tokens);
    let tokens = normalize_current_user(tokens);
    let mut stmts =
        Parser::new(&dialect).with_tokens(tokens).parse_statements().map_err(|e| KalamError::Parse(e.to_string()))?;
    if stmts.len() != 1 {
        return Err(KalamError::Parse("expected one statement".into()));
    }
    let stmt = stmts.remove(0);
    match &stmt {
        SqlStatement::Query(_) if system_columns == SystemColumns::Hidden => match point_read::try_execute(cx, &stmt) {
            Some(result) => result,
            None => query::execute(cx, stmt, system_columns).await,
        },
        SqlStatement::Query(_) | SqlStatement::Explain { .. } => query::execute(cx, stmt, system_columns).await,
        SqlStatement::Insert(ins) => dml::insert::execute(cx, ins).await,
        SqlStatement::Update(upd) => dml::update::execute(cx, upd).await,
        SqlStatement::Delete(del) => dml::delete::execute(cx, del).await,
        other => Err(KalamError::NotSupported(format!("unsupported statement: {}", first_words(&other.to_string())))),
    }
}

/// Most binary operators one statement may chain. Long `a OR b OR ...` chains become deep
/// expression trees that the planner walks recursively; past this a statement is refused
/// rather than risking the server's stack. (`IN (...)` lists are not counted.)
pub const MAX_OPERATORS: usize = 500;

fn check_complexity(tokens: &[Token]) -> Result<()> {
    use datafusion::sql::sqlparser::keywords::Keyword;
    let operators = tokens
        .iter()
        .filter(|t| match t {
            Token::Word(w) => matches!(
                w.keyword,
                Keyword::AND
                    | Keyword::OR
                    | Keyword::UNION
                    | Keyword::INTERSECT
                    | Keyword::EXCEPT
                    | Keyword::LIKE
                    | Keyword::BETWEEN
            ),
            Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
            | Token::StringConcat
            | Token::Ampersand
            | Token::Pipe
            | Token::Caret
            | Token::Eq
            | Token::DoubleEq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::ShiftLeft
            | Token::ShiftRight => true,
            _ => false,
        })
        .count();
    if operators > MAX_OPERATORS {
        return Err(KalamError::TooLarge(format!(
            "the statement is too complex: {operators} operators, more than {MAX_OPERATORS} (use IN (...) instead of long OR chains)"
        )));
    }
    Ok(())
}

/// sqlparser reads `CURRENT_USER` as a keyword that takes no parentheses; KalamDB documents
/// `CURRENT_USER()`, so the empty parentheses are dropped before parsing.
fn normalize_current_user(tokens: Vec<Token>) -> Vec<Token> {
    let is_word = |t: &Token| matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("current_user"));
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        out.push(tokens[i].clone());
        if is_word(&tokens[i]) && tokens.get(i + 1) == Some(&Token::LParen) && tokens.get(i + 2) == Some(&Token::RParen)
        {
            i += 3;
        } else {
            i += 1;
        }
    }
    out
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}
