//! Local SQL over the replica.
//!
//! The language is KalamDB's one query language, defined by the `kalamdb-query` crate: its
//! parser, type checker, planner and evaluator run here unchanged, and its crate documentation
//! is the reference (`docs/client.md` has a summary). This module only connects the replica to
//! it:
//!
//! - the **catalog** the planner resolves names in: every synced table with the columns and
//!   types the server described for it ([`Replica::table_columns`]);
//! - the **rows** of the tables a plan reads: the replica's view of each (confirmed rows plus
//!   pending local writes), typed by column type ([`Replica::typed_view`]);
//! - the **results**, converted back to the server's JSON encoding, so the same SQL returns the
//!   same rows online (the server) and offline (the replica).
//!
//! A query is parsed once ([`LocalQuery`]) and planned against the replica as it is now
//! ([`LocalPlan`]). A live query ([`crate::live::LiveView`]) keeps its plan as an incremental
//! dataflow fed with the replica's row changes, and plans again when a table it reads is read
//! again (new columns, a reset, a reload).
//!
//! [`subscription_table`] checks the SQL of a subscription with the same crate.

use crate::replica::{Replica, ReplicaError, TypedRow};
use kalamdb_query::ast::{Query, TableRef};
use kalamdb_query::incremental::{Dataflow, IncrementalError, check_supported};
use kalamdb_query::json::{param_from_json, to_json};
use kalamdb_query::types::UnknownTypeName;
use kalamdb_query::{Catalog, ColumnDef, DataSource, DataType, Plan, QueryError, Row, TableSchema, Value};
use serde_json::Value as Json;
use std::cell::OnceCell;
use std::sync::Arc;

/// Why a local query cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LocalQueryError {
    /// Not valid in the language, or failed evaluating it (the crate's error).
    #[error(transparent)]
    Language(#[from] QueryError),
    /// A table the query names is not synced, or its schema has not arrived yet, or one of its
    /// values cannot be read.
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    /// A table named without its namespace is synced in several namespaces.
    #[error("table name '{name}' is ambiguous: {candidates} are synced (qualify it with its namespace)")]
    AmbiguousTable {
        /// The name as written.
        name: String,
        /// The synced tables of that name, comma-separated.
        candidates: String,
    },
    /// The server described a column with a type this client does not know.
    #[error("column '{column}' of {table} has the type '{type_name}', which this client does not know")]
    UnknownType {
        /// `namespace.table`.
        table: String,
        /// The column.
        column: String,
        /// The type name the server sent.
        type_name: String,
        /// The parse failure.
        #[source]
        source: UnknownTypeName,
    },
}

/// A query result: output columns with their KalamDB type names, and rows aligned to them with
/// values in the server's JSON encoding (`docs/http-api.md`).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct ResultSet {
    /// Output column names.
    pub columns: Vec<String>,
    /// Output column types, as the server names them (`BIGINT`, `DECIMAL(12,2)`, ...).
    pub types: Vec<String>,
    /// Rows.
    pub rows: Rows,
}

/// One result row: values aligned to the result's columns. Shared, not copied, between the
/// results that show it (see [`Rows`]).
pub type JsonRow = Arc<[Json]>;

/// The rows of a result, shared: cloning a result copies one pointer, and a live query's next
/// result shares every row that did not change with the last one (a row is converted to JSON
/// once while it stays in the result). Reads as a slice of rows (`rows.len()`, `rows[i][j]`,
/// `rows.iter()`), compares equal to a `Vec<Vec<Json>>` of the same values, and iterated by
/// value gives each row as a `Vec<Json>`.
#[derive(Clone, Default, PartialEq)]
pub struct Rows(Arc<Vec<JsonRow>>);

impl Rows {
    /// Rows from shared rows.
    pub fn from_shared(rows: Vec<JsonRow>) -> Rows {
        Rows(Arc::new(rows))
    }

    /// Whether both are the same rows: each row the same shared row, or equal values.
    pub(crate) fn same_as(&self, other: &Rows) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| Arc::ptr_eq(a, b) || a == b))
    }
}

impl std::ops::Deref for Rows {
    type Target = [JsonRow];
    fn deref(&self) -> &[JsonRow] {
        &self.0
    }
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl From<Vec<Vec<Json>>> for Rows {
    fn from(rows: Vec<Vec<Json>>) -> Rows {
        rows.into_iter().collect()
    }
}

impl FromIterator<Vec<Json>> for Rows {
    fn from_iter<I: IntoIterator<Item = Vec<Json>>>(rows: I) -> Rows {
        Rows::from_shared(rows.into_iter().map(JsonRow::from).collect())
    }
}

impl PartialEq<Vec<Vec<Json>>> for Rows {
    fn eq(&self, other: &Vec<Vec<Json>>) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a[..] == b[..])
    }
}

impl IntoIterator for Rows {
    type Item = Vec<Json>;
    type IntoIter = std::vec::IntoIter<Vec<Json>>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter().map(|row| row.to_vec()).collect::<Vec<_>>().into_iter()
    }
}

impl<'a> IntoIterator for &'a Rows {
    type Item = &'a JsonRow;
    type IntoIter = std::slice::Iter<'a, JsonRow>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl serde::Serialize for Rows {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter().map(|row| &row[..]))
    }
}

/// A local query, parsed, with its parameters bound to values.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalQuery {
    query: Query,
    params: Vec<Value>,
}

impl LocalQuery {
    /// Parses `sql`; `params` are the values of `$1`, `$2`, ... (or of the `?`s, in order),
    /// typed by their JSON type (see [`param_from_json`]).
    pub fn parse(sql: &str, params: &[Json]) -> Result<LocalQuery, LocalQueryError> {
        Ok(LocalQuery { query: kalamdb_query::parse(sql)?, params: params.iter().map(param_from_json).collect() })
    }

    /// Resolves and type-checks the query against the replica's synced tables.
    pub fn plan(&self, replica: &Replica) -> Result<LocalPlan, LocalQueryError> {
        let catalog = SyncedTables::named_in(&self.query, replica)?;
        Ok(LocalPlan { plan: kalamdb_query::check::plan(&self.query, &catalog, &self.params)? })
    }
}

/// A local query planned against the replica's tables.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalPlan {
    plan: Plan,
}

impl LocalPlan {
    /// `namespace.table` of every table the plan reads, each once: what a live query depends on.
    pub fn tables(&self) -> Vec<String> {
        let mut tables: Vec<String> = Vec::new();
        for t in self.plan.tables() {
            let name = t.qualified_name();
            if !tables.contains(&name) {
                tables.push(name);
            }
        }
        tables
    }

    /// Runs the plan over the replica's current rows. The replica must be the one the plan was
    /// made from, unchanged since.
    pub fn run(&self, replica: &Replica) -> Result<ResultSet, LocalQueryError> {
        let source = TypedRows::load(&self.plan, replica)?;
        let rows = kalamdb_query::execute(&self.plan, &source)?;
        Ok(self.result_set(&rows))
    }

    /// The plan as an incremental dataflow over the replica's current rows (its first result
    /// computed), for a live query. Fails for plans it does not maintain
    /// ([`kalamdb_query::incremental::check_supported`]) and where a run would fail.
    pub(crate) fn dataflow<R: Clone>(&self, replica: &Replica) -> Result<Dataflow<R>, NotMaintained> {
        check_supported(&self.plan).map_err(IncrementalError::from)?;
        let source = TypedRows::load(&self.plan, replica)?;
        Ok(Dataflow::new(&self.plan, &source)?)
    }

    /// Result rows of this plan in the server's JSON encoding.
    pub(crate) fn result_set(&self, rows: &[Row]) -> ResultSet {
        ResultSet {
            columns: self.columns(),
            types: self.types(),
            rows: rows.iter().map(|row| self.json_row(row)).collect(),
        }
    }

    /// The output column names.
    pub(crate) fn columns(&self) -> Vec<String> {
        self.plan.schema.fields.iter().map(|f| f.name.clone()).collect()
    }

    /// The output column types, as the server names them.
    pub(crate) fn types(&self) -> Vec<String> {
        self.plan.schema.fields.iter().map(|f| f.ty.sql_name()).collect()
    }

    /// One result row in the server's JSON encoding.
    pub(crate) fn json_row(&self, row: &[Value]) -> Vec<Json> {
        row.iter().zip(&self.plan.schema.fields).map(|(v, f)| to_json(v, f.ty)).collect()
    }
}

/// Why a plan has no incremental dataflow: its shape is not maintained, or building it failed
/// (the replica's rows cannot be read, or evaluating them fails as a run would).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum NotMaintained {
    #[error(transparent)]
    Dataflow(#[from] IncrementalError),
    #[error(transparent)]
    Query(#[from] LocalQueryError),
}

/// The synced tables a query names, with their columns, as the planner's [`Catalog`].
struct SyncedTables {
    tables: Vec<TableSchema>,
    /// The replica's user: `current_user()`.
    user: Option<String>,
}

impl SyncedTables {
    /// Resolves every table in the query's FROM clause, so that a table that is not synced, or
    /// not yet, is reported as such rather than as an unknown name.
    fn named_in(query: &Query, replica: &Replica) -> Result<SyncedTables, LocalQueryError> {
        let refs = query.from.iter().flat_map(|f| std::iter::once(&f.base).chain(f.joins.iter().map(|j| &j.table)));
        let mut tables: Vec<TableSchema> = Vec::new();
        for table_ref in refs {
            let qualified = resolve(table_ref, replica)?;
            if !tables.iter().any(|t| t.qualified_name() == qualified) {
                tables.push(table_schema(&qualified, replica)?);
            }
        }
        Ok(SyncedTables { tables, user: replica.user().map(str::to_string) })
    }
}

impl Catalog for SyncedTables {
    fn table(&self, namespace: Option<&str>, name: &str) -> Option<TableSchema> {
        // Bare names were resolved to a unique synced table by `named_in`.
        self.tables.iter().find(|t| t.name == name && namespace.is_none_or(|ns| t.namespace == ns)).cloned()
    }

    fn current_user(&self) -> Option<String> {
        self.user.clone()
    }
}

/// `namespace.table` of a table reference; a bare name must match exactly one synced table.
fn resolve(table: &TableRef, replica: &Replica) -> Result<String, LocalQueryError> {
    if let Some(ns) = &table.namespace {
        return Ok(format!("{ns}.{}", table.name));
    }
    let matches: Vec<&str> = replica
        .tables()
        .into_iter()
        .filter(|t| t.split_once('.').is_some_and(|(_, name)| name == table.name))
        .collect();
    match matches.as_slice() {
        [] => Err(ReplicaError::NotSynced(table.name.clone()).into()),
        [one] => Ok(one.to_string()),
        many => Err(LocalQueryError::AmbiguousTable { name: table.name.clone(), candidates: many.join(", ") }),
    }
}

/// The planner's view of a synced table: its columns with their types, and its primary key.
fn table_schema(qualified: &str, replica: &Replica) -> Result<TableSchema, LocalQueryError> {
    let pk = replica.primary_key(qualified);
    let columns = replica
        .table_columns(qualified)?
        .into_iter()
        .map(|c| {
            let ty: DataType = c.data_type.parse().map_err(|source| LocalQueryError::UnknownType {
                table: qualified.to_string(),
                column: c.name.clone(),
                type_name: c.data_type.clone(),
                source,
            })?;
            Ok(ColumnDef::new(c.name.clone(), ty, pk != Some(c.name.as_str())))
        })
        .collect::<Result<Vec<ColumnDef>, LocalQueryError>>()?;
    let primary_key = columns.iter().position(|c| pk == Some(c.name.as_str())).into_iter().collect();
    let (namespace, name) = qualified.split_once('.').unwrap_or(("", qualified));
    Ok(TableSchema { namespace: namespace.to_string(), name: name.to_string(), columns, primary_key })
}

/// The rows of the tables a plan reads, as the replica shows them to queries (confirmed rows
/// plus pending writes, typed: [`Replica::typed_view`]). A table's rows are gathered when the
/// plan first scans it; a `WHERE` on its primary key reads the one row instead
/// ([`Replica::rows_with_key`]).
struct TypedRows<'r> {
    replica: &'r Replica,
    tables: Vec<PlanTable>,
}

/// A table a plan reads.
struct PlanTable {
    /// `namespace.table`.
    name: String,
    /// Its columns, as the plan reads them.
    columns: Vec<ColumnDef>,
    /// Its rows, once scanned.
    rows: OnceCell<Vec<TypedRow>>,
}

impl<'r> TypedRows<'r> {
    /// The tables of `plan`, each checked to read (so that a table that is not synced, or not
    /// yet, or holds a value that does not read, fails the query before it runs).
    fn load(plan: &Plan, replica: &'r Replica) -> Result<TypedRows<'r>, LocalQueryError> {
        let mut tables: Vec<PlanTable> = Vec::new();
        for schema in plan.tables() {
            let name = schema.qualified_name();
            if !tables.iter().any(|t| t.name == name) {
                // (A self-join reads one table twice.)
                replica.check_view(&name, &schema.columns)?;
                tables.push(PlanTable { name, columns: schema.columns.clone(), rows: OnceCell::new() });
            }
        }
        Ok(TypedRows { replica, tables })
    }

    fn entry(&self, table: &TableSchema) -> kalamdb_query::Result<&PlanTable> {
        let name = table.qualified_name();
        self.tables.iter().find(|t| t.name == name).ok_or(QueryError::UnknownTable(name))
    }

    fn table(&self, table: &TableSchema) -> kalamdb_query::Result<&Vec<TypedRow>> {
        let t = self.entry(table)?;
        if let Some(rows) = t.rows.get() {
            return Ok(rows);
        }
        let view = self.replica.typed_view(&t.name, &t.columns).map_err(replica_failed)?;
        Ok(t.rows.get_or_init(|| view))
    }
}

/// A table that `load` checked failed to read after all (it cannot: nothing changes the replica
/// while a query runs).
fn replica_failed(e: ReplicaError) -> QueryError {
    QueryError::Eval { msg: e.to_string() }
}

impl DataSource for TypedRows<'_> {
    fn scan<'a>(&'a self, table: &TableSchema) -> kalamdb_query::Result<Box<dyn Iterator<Item = &'a [Value]> + 'a>> {
        Ok(Box::new(self.table(table)?.iter().map(|row| &row[..])))
    }

    /// The replica's typed rows are shared already: a live query's first step takes them
    /// without copying a table's rows.
    fn scan_shared(&self, table: &TableSchema) -> kalamdb_query::Result<Option<Vec<TypedRow>>> {
        Ok(Some(self.table(table)?.clone()))
    }

    fn rows_equal(
        &self,
        table: &TableSchema,
        column: usize,
        value: &Value,
    ) -> kalamdb_query::Result<Option<Vec<TypedRow>>> {
        let t = self.entry(table)?;
        match self.replica.rows_with_key(&t.name, &t.columns, column, value).map_err(replica_failed)? {
            Some(rows) => Ok(Some(rows)),
            None => self.replica.rows_with_value(&t.name, &t.columns, column, value).map_err(replica_failed),
        }
    }
}

/// Why a subscription's SQL is refused before it reaches the server.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SubscriptionError {
    /// Not valid SQL of the language, or not the shape of a subscription (a join, an
    /// aggregate, ORDER BY, ...: the message names it and points to local queries).
    #[error(transparent)]
    Language(#[from] QueryError),
    /// The table is named without its namespace.
    #[error("name the table with its namespace (namespace.{0})")]
    Unqualified(String),
}

/// Checks the SQL of a subscription — `SELECT * | columns FROM namespace.table [WHERE ...]` —
/// and returns its table, `namespace.table`. The server checks the columns and the WHERE
/// clause against the table when it accepts the subscription.
pub fn subscription_table(sql: &str) -> Result<String, SubscriptionError> {
    let subscription = kalamdb_query::parse_subscription(sql)?;
    let table = subscription.table;
    match table.namespace {
        Some(ns) => Ok(format!("{ns}.{}", table.name)),
        None => Err(SubscriptionError::Unqualified(table.name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ws::{MutationKind, MutationOp};
    use crate::store::{OutboxEntry, StoreOp, SubscriptionId};
    use serde_json::json;

    use crate::test_support::subscription as record;

    fn rows(sub: &str, pk: &str, rows: Vec<Json>) -> Vec<StoreOp> {
        rows.into_iter()
            .map(|r| {
                let row = r.as_object().unwrap().clone();
                StoreOp::PutRow { sub: SubscriptionId(sub.into()), pk: crate::store::pk_key(&row[pk]), row: row.into() }
            })
            .collect()
    }

    /// Lists and their todos, as the server would have sent them.
    fn replica() -> Replica {
        let mut r = Replica::default();
        r.apply(&[record("lists", "app.lists", &[("id", "BIGINT"), ("name", "TEXT")], "id")]);
        r.apply(&rows(
            "lists",
            "id",
            vec![json!({"id": 1, "name": "Home"}), json!({"id": 2, "name": "Work"}), json!({"id": 3, "name": "Empty"})],
        ));
        let todos = [
            ("id", "TEXT"),
            ("list_id", "BIGINT"),
            ("title", "TEXT"),
            ("done", "BOOLEAN"),
            ("price", "DECIMAL(10,2)"),
            ("due", "TIMESTAMP"),
            ("big", "BIGINT"),
        ];
        r.apply(&[record("todos", "app.todos", &todos, "id")]);
        let todo = |id: &str, list: Json, title: &str, done: bool, price: Json, due: &str, big: Json| json!({"id": id, "list_id": list, "title": title, "done": done, "price": price, "due": due, "big": big});
        r.apply(&rows(
            "todos",
            "id",
            vec![
                todo(
                    "t1",
                    json!(1),
                    "milk",
                    false,
                    json!("9.00"),
                    "2024-03-15T10:00:00.000000Z",
                    json!(9007199254740993i64),
                ),
                todo("t2", json!(1), "bread", true, json!("10.00"), "2024-03-16T09:30:00.000000Z", json!(null)),
                todo("t3", json!(2), "report", false, json!(null), "2024-03-16T00:00:00.000000Z", json!(1)),
                todo("t4", json!(2), "email", false, json!("0.50"), "2024-04-01T12:00:00.000000Z", json!(-1)),
                todo("t5", json!(null), "orphan", true, json!("10.00"), "2023-12-31T23:59:59.999999Z", json!(null)),
            ],
        ));
        r
    }

    fn run(replica: &Replica, sql: &str, params: &[Json]) -> Result<ResultSet, LocalQueryError> {
        LocalQuery::parse(sql, params)?.plan(replica)?.run(replica)
    }

    fn rows_of(replica: &Replica, sql: &str) -> Vec<Json> {
        run(replica, sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")).rows.into_iter().map(Json::Array).collect()
    }

    #[test]
    fn joins_synced_tables() {
        let r = replica();
        assert_eq!(
            rows_of(
                &r,
                "SELECT t.title, l.name FROM app.todos t JOIN app.lists l ON l.id = t.list_id ORDER BY t.title"
            ),
            vec![
                json!(["bread", "Home"]),
                json!(["email", "Work"]),
                json!(["milk", "Home"]),
                json!(["report", "Work"])
            ]
        );
        // A LEFT JOIN keeps a list without todos, with NULLs for the todo's columns.
        assert_eq!(
            rows_of(
                &r,
                "SELECT l.name, t.title FROM app.lists l LEFT JOIN app.todos t ON t.list_id = l.id WHERE l.id = 3"
            ),
            vec![json!(["Empty", null])]
        );
        let plan = LocalQuery::parse("SELECT * FROM app.lists l JOIN todos t ON t.list_id = l.id", &[])
            .unwrap()
            .plan(&r)
            .unwrap();
        assert_eq!(plan.tables(), vec!["app.lists", "app.todos"], "what a live query watches");
    }

    #[test]
    fn groups_and_sums_decimals_exactly() {
        let r = replica();
        let rs = run(
            &r,
            "SELECT l.name, count(t.id) AS open, sum(t.price) AS total FROM app.lists l \
             LEFT JOIN app.todos t ON t.list_id = l.id AND t.done = false GROUP BY l.name ORDER BY l.name",
            &[],
        )
        .unwrap();
        assert_eq!(rs.columns, vec!["name", "open", "total"]);
        assert_eq!(rs.types, vec!["TEXT", "BIGINT", "DECIMAL(20,2)"]);
        assert_eq!(
            rs.rows,
            vec![
                vec![json!("Empty"), json!(0), json!(null)],
                vec![json!("Home"), json!(1), json!("9.00")],
                vec![json!("Work"), json!(2), json!("0.50")]
            ]
        );
        assert_eq!(
            rows_of(&r, "SELECT sum(price), avg(price), max(price) FROM app.todos HAVING count(*) > 1"),
            vec![json!(["29.50", "7.375000", "10.00"])]
        );
    }

    #[test]
    fn decimals_order_as_numbers() {
        let r = replica();
        assert_eq!(
            rows_of(&r, "SELECT title, price FROM app.todos WHERE price IS NOT NULL ORDER BY price, title"),
            vec![
                json!(["email", "0.50"]),
                json!(["milk", "9.00"]),
                json!(["bread", "10.00"]),
                json!(["orphan", "10.00"])
            ]
        );
        assert_eq!(
            rows_of(&r, "SELECT title FROM app.todos WHERE price > 9.5 ORDER BY title"),
            vec![json!(["bread"]), json!(["orphan"])]
        );
    }

    #[test]
    fn bigint_beyond_2_pow_53_stays_exact() {
        let r = replica();
        let rs = run(&r, "SELECT big, big + 1 AS next FROM app.todos WHERE big > 9007199254740992", &[]).unwrap();
        assert_eq!(serde_json::to_string(&rs.rows).unwrap(), "[[9007199254740993,9007199254740994]]");
        let rs = run(&r, "SELECT id FROM app.todos WHERE big = $1", &[json!(9007199254740993i64)]).unwrap();
        assert_eq!(rs.rows, vec![vec![json!("t1")]], "not equal to 2^53 + 2 nor to 2^53");
    }

    #[test]
    fn timestamps_compare_as_instants() {
        let r = replica();
        assert_eq!(
            rows_of(&r, "SELECT id FROM app.todos WHERE due >= '2024-03-16' ORDER BY due"),
            vec![json!(["t3"]), json!(["t2"]), json!(["t4"])]
        );
        let rs = run(
            &r,
            "SELECT id FROM app.todos WHERE due < TIMESTAMP '2024-01-01 00:00:00' OR due = $1 ORDER BY due",
            &[json!("2024-03-15T11:00:00+01:00")],
        )
        .unwrap();
        assert_eq!(rs.rows, vec![vec![json!("t5")], vec![json!("t1")]], "an offset converts to UTC");
        let rs = run(&r, "SELECT date_trunc('day', due) AS day FROM app.todos WHERE id = ?", &[json!("t2")]).unwrap();
        assert_eq!((rs.types[0].as_str(), &rs.rows[0][0]), ("TIMESTAMP", &json!("2024-03-16T00:00:00.000000Z")));
    }

    #[test]
    fn null_semantics_are_sqls() {
        let r = replica();
        // NULL is neither equal nor unequal to anything: the orphan is in neither result.
        assert_eq!(
            rows_of(&r, "SELECT id FROM app.todos WHERE list_id = 1 ORDER BY id"),
            vec![json!(["t1"]), json!(["t2"])]
        );
        assert_eq!(
            rows_of(&r, "SELECT id FROM app.todos WHERE list_id <> 1 ORDER BY id"),
            vec![json!(["t3"]), json!(["t4"])]
        );
        assert_eq!(rows_of(&r, "SELECT id FROM app.todos WHERE list_id IS NULL"), vec![json!(["t5"])]);
        assert_eq!(rows_of(&r, "SELECT id FROM app.todos WHERE list_id NOT IN (1, NULL)"), Vec::<Json>::new());
        assert_eq!(
            rows_of(&r, "SELECT count(*), count(list_id), count(DISTINCT list_id) FROM app.todos"),
            vec![json!([5, 4, 2])]
        );
        // NULLs sort last ascending, first descending.
        assert_eq!(
            rows_of(&r, "SELECT id FROM app.todos ORDER BY big DESC, id"),
            vec![json!(["t2"]), json!(["t5"]), json!(["t1"]), json!(["t3"]), json!(["t4"])]
        );
    }

    #[test]
    fn parameters_bind_by_position() {
        let r = replica();
        let ids = |sql: &str, params: &[Json]| -> Vec<Json> {
            run(&r, sql, params).unwrap().rows.into_iter().map(Json::Array).collect()
        };
        assert_eq!(
            ids("SELECT id FROM app.todos WHERE done = $1 AND list_id = $2", &[json!(false), json!(2)]),
            vec![json!(["t3"]), json!(["t4"])]
        );
        assert_eq!(
            ids("SELECT id FROM app.todos WHERE title LIKE ? AND id <> ?", &[json!("%e%"), json!("t4")]),
            vec![json!(["t2"]), json!(["t3"])]
        );
        // Text next to a DECIMAL reads as a decimal.
        assert_eq!(
            ids("SELECT id FROM app.todos WHERE price = $1 ORDER BY id", &[json!("10.0")]),
            vec![json!(["t2"]), json!(["t5"])]
        );
        let missing = run(&r, "SELECT id FROM app.todos WHERE id = $2", &[json!("t1")]).unwrap_err();
        assert!(matches!(missing, LocalQueryError::Language(_)), "{missing}");
    }

    #[test]
    fn tables_must_be_synced_and_known() {
        let mut r = replica();
        let err = run(&r, "SELECT * FROM app.nope", &[]).unwrap_err();
        assert_eq!(err.to_string(), "table 'app.nope' is not synced to this replica (declare it with sync() first)");
        let err = run(&r, "SELECT * FROM app.todos t JOIN app.nope n ON n.id = t.id", &[]).unwrap_err();
        assert_eq!(err, LocalQueryError::Replica(ReplicaError::NotSynced("app.nope".into())));
        assert_eq!(rows_of(&r, "SELECT name FROM lists WHERE id = 2"), vec![json!(["Work"])], "a bare name resolves");
        r.apply(&[record("other", "other.lists", &[("id", "BIGINT")], "id")]);
        let err = run(&r, "SELECT * FROM lists", &[]).unwrap_err().to_string();
        assert_eq!(
            err,
            "table name 'lists' is ambiguous: app.lists, other.lists are synced (qualify it with its namespace)"
        );
        // Declared, but the server has not described it yet.
        r.apply(&[record("fresh", "app.fresh", &[], "id")]);
        let err = run(&r, "SELECT * FROM app.fresh", &[]).unwrap_err();
        assert_eq!(err, LocalQueryError::Replica(ReplicaError::SchemaPending("app.fresh".into())));
        assert!(err.to_string().contains("not synced yet"), "{err}");
        let err = run(&r, "SELECT nope FROM app.todos", &[]).unwrap_err().to_string();
        assert_eq!(err, "column 'nope' does not exist");
        r.apply(&[record("weird", "app.weird", &[("id", "BIGINT"), ("shape", "GEOMETRY")], "id")]);
        let err = run(&r, "SELECT id FROM app.weird", &[]).unwrap_err().to_string();
        assert_eq!(err, "column 'shape' of app.weird has the type 'GEOMETRY', which this client does not know");
    }

    #[test]
    fn pending_writes_are_visible() {
        let mut r = replica();
        let op = |table: &str, op, row: Option<Json>, pk: Option<Json>| MutationOp {
            table: table.into(),
            op,
            row: row.map(|r| r.as_object().unwrap().clone()),
            pk,
        };
        r.apply(&[StoreOp::PutOutbox(OutboxEntry {
            client_id: "me".into(),
            seq: 1,
            ops: vec![
                op(
                    "app.todos",
                    MutationKind::Insert,
                    Some(json!({"id": "new", "list_id": 3, "title": "water plants", "done": false, "price": 2.5})),
                    None,
                ),
                op("app.todos", MutationKind::Update, Some(json!({"done": true})), Some(json!("t4"))),
                op("app.lists", MutationKind::Update, Some(json!({"name": "Garden"})), Some(json!(3))),
                op("app.todos", MutationKind::Delete, None, Some(json!("t1"))),
            ],
            created_ms: 0.0,
            confirmed: None,
        })]);
        assert_eq!(
            rows_of(
                &r,
                "SELECT l.name, count(t.id), sum(t.price) FROM app.lists l \
                 LEFT JOIN app.todos t ON t.list_id = l.id AND NOT t.done GROUP BY l.name ORDER BY 1"
            ),
            vec![json!(["Garden", 1, "2.50"]), json!(["Home", 0, null]), json!(["Work", 1, null])]
        );
        // A pending value the server would refuse cannot be read either.
        r.apply(&[StoreOp::PutOutbox(OutboxEntry {
            client_id: "me".into(),
            seq: 2,
            ops: vec![op("app.lists", MutationKind::Insert, Some(json!({"id": "four", "name": "x"})), None)],
            created_ms: 0.0,
            confirmed: None,
        })]);
        let err = run(&r, "SELECT * FROM app.lists", &[]).unwrap_err().to_string();
        assert_eq!(
            err,
            "the value of column 'id' of app.lists in the replica cannot be read: \"four\" is not a valid BIGINT value"
        );
    }

    #[test]
    fn subscriptions_are_one_table() {
        assert_eq!(subscription_table("SELECT id, title FROM app.todos WHERE done = false"), Ok("app.todos".into()));
        assert_eq!(subscription_table("SELECT * FROM todos"), Err(SubscriptionError::Unqualified("todos".into())));
        for (sql, construct) in [
            ("SELECT * FROM app.todos t JOIN app.lists l ON l.id = t.list_id", "JOIN is"),
            ("SELECT list_id, count(*) FROM app.todos GROUP BY list_id", "aggregate functions are"),
            ("SELECT id FROM app.todos GROUP BY id", "GROUP BY is"),
            ("SELECT DISTINCT list_id FROM app.todos", "DISTINCT is"),
            ("SELECT * FROM app.todos ORDER BY id", "ORDER BY is"),
            ("SELECT * FROM app.todos LIMIT 10", "LIMIT is"),
        ] {
            let err = subscription_table(sql).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{construct} not supported in a subscription")), "{sql}: {err}");
            assert!(err.contains("use a local query over them"), "{err}");
        }
        assert!(matches!(
            subscription_table("SELECT * FROM"),
            Err(SubscriptionError::Language(QueryError::Syntax { .. }))
        ));
    }

    /// A `WHERE` on the primary key reads rows by key ([`Replica::rows_with_key`]) and returns
    /// what a scan returns: after random server rows in two subscriptions with different
    /// columns, pending inserts, updates (some rewriting a key), deletes and confirmations, the
    /// same query through the index and through a scan (an expression on the key defeats the
    /// index) agree for every key. For TEXT keys, and for BIGINT keys, which the server sends
    /// as numbers or, beyond 2^53, as strings (both forms here).
    #[test]
    fn a_primary_key_look_up_returns_what_a_scan_returns() {
        let text = |k: u64, _: bool| json!(format!("k{k}"));
        look_ups_agree_with_scans("TEXT", text, "id || ''");
        let bigint = |k: u64, as_string: bool| if as_string { json!(k.to_string()) } else { json!(k) };
        look_ups_agree_with_scans("BIGINT", bigint, "id + 0");
    }

    /// `WHERE column = value` on a column other than the key reads its rows through a hash
    /// index the query makes ([`Replica::rows_with_value`]) and returns what a scan returns
    /// (an expression on the column defeats the index), for integer, TEXT and BOOLEAN columns,
    /// after random server rows in two subscriptions, pending writes and confirmations; each
    /// query runs three times between changes: scanned, then making the index, then from it.
    #[test]
    fn a_column_look_up_returns_what_a_scan_returns() {
        let mut next = crate::test_support::seeded_random(0x2545_f491_4f6c_dd1d);
        let mut r = Replica::default();
        let columns = [("id", "BIGINT"), ("n", "BIGINT"), ("note", "TEXT"), ("done", "BOOLEAN")];
        r.apply(&[record("a", "app.t", &columns, "id"), record("b", "app.t", &columns, "id")]);
        let cols: Vec<ColumnDef> =
            columns.iter().map(|(name, ty)| ColumnDef::new(*name, ty.parse().unwrap(), *name != "id")).collect();
        let one = kalamdb_query::Value::Int64(1);
        assert!(r.rows_with_value("app.t", &cols, 1, &one).unwrap().is_none(), "first ask scans");
        assert!(r.rows_with_value("app.t", &cols, 1, &one).unwrap().is_some(), "second ask indexes");
        assert!(
            r.rows_with_value("app.t", &cols, 3, &kalamdb_query::Value::Boolean(true)).unwrap().is_none(),
            "another column scans"
        );
        let mut seq = 0;
        for step in 0..300 {
            let row = json!({"id": next(20), "n": next(5), "note": format!("t{}", next(4)), "done": next(2) == 0});
            let op = match next(8) {
                0..=3 => rows(if next(2) == 0 { "a" } else { "b" }, "id", vec![row]).remove(0),
                4 => StoreOp::DeleteRow { sub: SubscriptionId("b".into()), pk: next(20).to_string() },
                5 | 6 => {
                    seq += 1;
                    let (kind, row, pk) = match next(3) {
                        0 => (MutationKind::Insert, Some(row), None),
                        1 => (
                            MutationKind::Update,
                            Some(json!({"n": next(5), "done": next(2) == 0})),
                            Some(json!(next(20))),
                        ),
                        _ => (MutationKind::Delete, None, Some(json!(next(20)))),
                    };
                    let row = row.map(|r| r.as_object().unwrap().clone());
                    crate::test_support::pending_write(
                        seq,
                        vec![MutationOp { table: "app.t".into(), op: kind, row, pk }],
                    )
                }
                _ => StoreOp::DeleteOutbox { client_id: "c".into(), seq: 1 + next(seq.max(1)) },
            };
            r.apply(&[op]);
            let cases = [
                ("n = $1", "n + 0 = $1", json!(next(5))),
                ("note = $1", "note || '' = $1", json!(format!("t{}", next(4)))),
                ("done = $1", "(done AND true) = $1", json!(next(2) == 0)),
            ];
            for (indexed, scanned, param) in cases {
                let sorted = |filter: &str| {
                    let sql = format!("SELECT id, n, note, done FROM app.t WHERE {filter} ORDER BY id");
                    run(&r, &sql, std::slice::from_ref(&param)).unwrap().rows
                };
                let expected = sorted(scanned);
                assert_eq!(sorted(indexed), expected, "step {step}, {indexed} with {param}");
                assert_eq!(sorted(indexed), expected, "step {step}, {indexed} making the index");
                assert_eq!(sorted(indexed), expected, "step {step}, {indexed} from the index");
            }
        }
    }

    fn look_ups_agree_with_scans(key_type: &str, key: impl Fn(u64, bool) -> Json, scanned_key: &str) {
        let mut next = crate::test_support::seeded_random(0x9e37_79b9_7f4a_7c15);
        let mut r = Replica::default();
        r.apply(&[
            record("a", "app.t", &[("id", key_type), ("n", "BIGINT")], "id"),
            record("b", "app.t", &[("id", key_type), ("n", "BIGINT"), ("note", "TEXT")], "id"),
        ]);
        let mut seq = 0;
        for step in 0..600 {
            let id = key(next(10), next(4) == 0);
            let row = json!({"id": id, "n": next(100), "note": format!("s{step}")});
            let op = match next(10) {
                0..=3 => rows(if next(2) == 0 { "a" } else { "b" }, "id", vec![row]).remove(0),
                4 => StoreOp::DeleteRow { sub: SubscriptionId("a".into()), pk: crate::store::pk_key(&id) },
                5..=8 => {
                    seq += 1;
                    let local = key(next(10), false);
                    let (kind, row, pk) = match next(4) {
                        0 => (MutationKind::Insert, Some(json!({"id": local, "n": next(100)})), None),
                        1 => (MutationKind::Update, Some(json!({"n": next(100)})), Some(local)),
                        2 => (MutationKind::Update, Some(json!({"id": key(next(10), false)})), Some(local)),
                        _ => (MutationKind::Delete, None, Some(local)),
                    };
                    let ops = vec![MutationOp {
                        table: "app.t".into(),
                        op: kind,
                        row: row.map(|r| r.as_object().unwrap().clone()),
                        pk,
                    }];
                    crate::test_support::pending_write(seq, ops)
                }
                _ => StoreOp::DeleteOutbox { client_id: "c".into(), seq: 1 + next(seq.max(1)) },
            };
            r.apply(&[op]);
            for k in 0..10 {
                let param = key(k, false);
                let sorted = |sql: &str| {
                    let mut rows: Vec<Vec<Json>> =
                        run(&r, sql, std::slice::from_ref(&param)).unwrap().rows.into_iter().collect();
                    rows.sort_by_key(|row| row.iter().map(Json::to_string).collect::<Vec<_>>());
                    rows
                };
                let by_key = sorted("SELECT id, n, note FROM app.t WHERE id = $1 AND n >= 0");
                let scanned = sorted(&format!("SELECT id, n, note FROM app.t WHERE {scanned_key} = $1 AND n >= 0"));
                assert_eq!(by_key, scanned, "{key_type} keys, step {step}, key {k}");
            }
        }
    }
}
