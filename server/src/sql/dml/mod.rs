//! INSERT, UPDATE and DELETE (parsed by sqlparser, committed through
//! [`crate::tables::Committer`]).
//!
//! Simple statements — literal or parameter values, `WHERE pk = value` — are executed
//! directly. Anything else (expressions, subqueries, arbitrary WHERE) is evaluated by a
//! DataFusion query over the caller's own scope first, then committed.

pub(crate) mod delete;
pub(crate) mod insert;
pub(crate) mod update;

/// Most rows one INSERT, UPDATE or DELETE statement may write.
pub(crate) const MAX_ROWS_PER_WRITE: usize = 100_000;

use crate::clock::now_micros;
use crate::error::{KalamError, Result};
use crate::schema::{DefaultValue, TableDef};
use crate::sql::ast::TableRef;
use crate::sql::parser::ident_name;
use crate::sql::{ExecContext, query};
use crate::types::DataType;
use crate::values::{self, Value};
use datafusion::arrow::array::RecordBatch;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, FunctionArguments, Ident, ObjectName, ObjectNamePart, SelectItem, SetExpr, Statement,
    TableWithJoins, UnaryOperator, Value as SqlValue,
};
use std::sync::LazyLock;

/// `ns.t` / `t` from a sqlparser object name.
pub(crate) fn table_ref(name: &ObjectName) -> Result<TableRef> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Ok(ident_name(i)),
            _ => Err(KalamError::NotSupported(format!("unsupported table name '{name}'"))),
        })
        .collect::<Result<_>>()?;
    match parts.as_slice() {
        [t] => Ok(TableRef { namespace: None, name: t.clone() }),
        [ns, t] => Ok(TableRef { namespace: Some(ns.clone()), name: t.clone() }),
        _ => Err(KalamError::Validation(format!("invalid table name '{name}': use table or namespace.table"))),
    }
}

/// The table an INSERT, UPDATE or DELETE writes, as named (`None` for another statement,
/// or one these statements do not support, which fails when it runs).
pub(crate) fn written_table(statement: &Statement) -> Option<&ObjectName> {
    use datafusion::sql::sqlparser::ast::{FromTable, TableFactor, TableObject};
    let relation = match statement {
        Statement::Insert(ins) => match &ins.table {
            TableObject::TableName(name) => return Some(name),
            _ => return None,
        },
        Statement::Update(upd) => &upd.table.relation,
        Statement::Delete(del) => match &del.from {
            FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => &t.first()?.relation,
        },
        _ => return None,
    };
    match relation {
        TableFactor::Table { name, .. } => Some(name),
        _ => None,
    }
}

/// The table an UPDATE or DELETE names, checked for write access. STREAM tables hold events,
/// which are never changed once sent.
pub(crate) fn existing_rows_target(cx: &ExecContext<'_>, name: &ObjectName) -> Result<std::sync::Arc<TableDef>> {
    let table = cx.resolve_table(&table_ref(name)?)?;
    cx.check_write(&table)?;
    if table.kind == crate::schema::TableKind::Stream {
        return Err(KalamError::NotSupported(format!(
            "'{}' is a STREAM table: events cannot be updated or deleted",
            table.qualified_name()
        )));
    }
    Ok(table)
}

/// Index of the user-writable column `name` (normalized), with clear errors for system and
/// unknown columns.
pub(crate) fn writable_column(table: &TableDef, name: &str) -> Result<usize> {
    if name == crate::schema::UPDATED_COLUMN || name == crate::schema::DELETED_COLUMN {
        return Err(KalamError::Validation(format!("'{name}' is a system column maintained by the server")));
    }
    table.column_index(name).ok_or_else(|| {
        KalamError::Validation(format!("column '{name}' does not exist in table '{}'", table.qualified_name()))
    })
}

/// The value of an expression that needs no query engine (literals, parameters, the
/// default functions), coerced to `dt`; `None` if the expression needs DataFusion.
pub(crate) fn simple_value(cx: &ExecContext<'_>, expr: &Expr, dt: DataType, column: &str) -> Option<Result<Value>> {
    let raw = match expr {
        Expr::Value(v) => match &v.value {
            SqlValue::Number(n, _) => Ok(number(n, dt)),
            SqlValue::SingleQuotedString(s) => Ok(Value::Text(s.clone())),
            SqlValue::Boolean(b) => Ok(Value::Bool(*b)),
            SqlValue::Null => Ok(Value::Null),
            SqlValue::HexStringLiteral(h) => hex(h).map(Value::Bytes),
            SqlValue::Placeholder(p) => return Some(param(cx, p, dt, column)),
            _ => return None,
        },
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                SqlValue::Number(n, _) => Ok(number(&format!("-{n}"), dt)),
                _ => return None,
            },
            _ => return None,
        },
        Expr::Nested(inner) => return simple_value(cx, inner, dt, column),
        Expr::Function(f)
            if matches!(&f.args, FunctionArguments::None)
                || matches!(&f.args, FunctionArguments::List(l) if l.args.is_empty()) =>
        {
            let name = f.name.to_string().to_ascii_lowercase();
            let default = match name.as_str() {
                "now" | "current_timestamp" => DefaultValue::Now,
                "snowflake_id" => DefaultValue::SnowflakeId,
                "uuid_v7" => DefaultValue::UuidV7,
                "ulid" => DefaultValue::Ulid,
                "current_user" => DefaultValue::CurrentUser,
                _ => return None,
            };
            Ok(evaluate_default(cx, &default, dt))
        }
        _ => return None,
    };
    Some(raw.and_then(|v| values::coerce(v, dt, column)))
}

fn number(n: &str, dt: DataType) -> Value {
    match n.parse::<i64>() {
        Ok(i) => Value::Int(i),
        // Decimals keep their exact digits; other targets take a float.
        Err(_) if matches!(dt, DataType::Decimal { .. }) => Value::Text(n.to_string()),
        Err(_) => n.parse::<f64>().map(Value::Float).unwrap_or_else(|_| Value::Text(n.to_string())),
    }
}

fn hex(h: &str) -> Result<Vec<u8>> {
    if !h.len().is_multiple_of(2) {
        return Err(KalamError::Validation("hex literal needs an even number of digits".into()));
    }
    (0..h.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&h[i..i + 2], 16)
                .map_err(|_| KalamError::Validation(format!("invalid hex literal X'{h}'")))
        })
        .collect()
}

fn param(cx: &ExecContext<'_>, p: &str, dt: DataType, column: &str) -> Result<Value> {
    let n: usize = p
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .filter(|n| *n >= 1)
        .ok_or_else(|| KalamError::Validation(format!("unsupported placeholder '{p}': use $1, $2, ...")))?;
    let json = cx.params.get(n - 1).ok_or_else(|| {
        KalamError::Validation(format!("parameter ${n} is used but only {} parameters were sent", cx.params.len()))
    })?;
    values::from_json(json, Some(dt), column)
}

/// Evaluates a column default for one new row.
pub(crate) fn evaluate_default(cx: &ExecContext<'_>, default: &DefaultValue, dt: DataType) -> Value {
    match default {
        DefaultValue::Literal(v) => v.clone(),
        DefaultValue::Now => match dt {
            DataType::Date => Value::Date((now_micros().div_euclid(86_400_000_000)) as i32),
            DataType::BigInt => Value::Int(now_micros()),
            _ => Value::Timestamp(now_micros()),
        },
        DefaultValue::SnowflakeId => Value::Int(cx.db.snowflake.next()),
        DefaultValue::UuidV7 => Value::Text(uuid::Uuid::now_v7().to_string()),
        DefaultValue::Ulid => Value::Text(cx.db.ulids.next().to_string()),
        DefaultValue::CurrentUser => Value::Text(cx.principal.username.clone()),
    }
}

/// If `selection` is exactly `pk = <simple value>`, that key.
pub(crate) fn pk_equality(cx: &ExecContext<'_>, table: &TableDef, selection: Option<&Expr>) -> Option<Result<Value>> {
    let Some(Expr::BinaryOp { left, op: BinaryOperator::Eq, right }) = selection else { return None };
    let pk = table.pk();
    let is_pk = |e: &Expr| match e {
        Expr::Identifier(i) => ident_name(i) == pk.name,
        _ => false,
    };
    let value_expr = if is_pk(left) {
        right
    } else if is_pk(right) {
        left
    } else {
        return None;
    };
    simple_value(cx, value_expr, pk.data_type, &pk.name)
}

/// Runs `SELECT pk, <exprs> FROM <target> [WHERE selection]` in the caller's scope: the rows
/// an UPDATE or DELETE will touch, with any computed values.
pub(crate) async fn select_matching(
    cx: &ExecContext<'_>,
    table: &TableDef,
    target: &TableWithJoins,
    exprs: &[&Expr],
    selection: Option<&Expr>,
) -> Result<Vec<RecordBatch>> {
    let mut projection = vec![Expr::Identifier(Ident::with_quote('"', table.pk().name.clone()))];
    projection.extend(exprs.iter().map(|e| (*e).clone()));
    let statement = select_statement(projection, Some(target.clone()), selection.cloned());
    let system_columns = query::system_columns_of(&statement);
    let (_, batches) = query::run(cx, statement, system_columns, MAX_ROWS_PER_WRITE).await?;
    Ok(batches)
}

/// `SELECT <projection> [FROM <from>] [WHERE <selection>]`, assembled from parsed parts (the
/// parts are never printed and parsed again).
pub(crate) fn select_statement(
    projection: Vec<Expr>,
    from: Option<TableWithJoins>,
    selection: Option<Expr>,
) -> Statement {
    static SKELETON: LazyLock<Statement> =
        LazyLock::new(|| crate::sql::parser::parse_sql("SELECT 1").expect("a constant statement parses"));
    let mut statement = SKELETON.clone();
    if let Statement::Query(query) = &mut statement
        && let SetExpr::Select(select) = query.body.as_mut()
    {
        select.projection = projection.into_iter().map(SelectItem::UnnamedExpr).collect();
        select.from = from.into_iter().collect();
        select.selection = selection;
    }
    statement
}
