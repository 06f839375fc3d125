//! Live local queries, maintained incrementally.
//!
//! A [`LiveView`] holds one live query. Its first result comes from an incremental dataflow
//! ([`kalamdb_query::incremental::Dataflow`]) built over the replica's rows; after that, every
//! local write and synced batch reaches it as [`RowChanges`] (each changed row before and after,
//! from [`Replica::apply`]), which the dataflow turns into the new result without reading the
//! tables again.
//!
//! The changes are only meaningful against the tables as the dataflow was built from them, so
//! the view remembers each table's [`Replica::typed_generation`]. When one
//! differs (new columns, cleared rows, a reload) or a step cannot be applied exactly (an
//! evaluation error, a float sum that overflowed, an `ORDER BY ... LIMIT` whose kept rows ran
//! out), the view plans the query again and builds a new dataflow. Plans the dataflow does not
//! maintain ([`kalamdb_query::incremental::check_supported`]) run from scratch after every
//! change, as all live queries did before.
//!
//! The dataflow keeps each result row's JSON with the row, and a delivered result shares its
//! rows with the dataflow ([`crate::query::Rows`]): a change converts only the rows it changed,
//! and copies a pointer per row shown.

use crate::query::{JsonRow, LocalPlan, LocalQuery, LocalQueryError, NotMaintained, ResultSet, Rows};
use crate::replica::{Replica, RowChanges};
use kalamdb_query::incremental::{Dataflow, IncrementalError, TableDeltas, Unsupported};
use std::collections::HashSet;
use std::rc::Rc;

/// One live query and what keeps its result current.
pub struct LiveView {
    query: LocalQuery,
    /// `namespace.table` of the tables its plan reads: the changes it listens to.
    tables: Vec<String>,
    state: Maintenance,
    /// The result last delivered. Its rows are shared with the dataflow, so telling whether a
    /// new result differs compares pointers for the rows that stayed.
    last: ResultSet,
}

enum Maintenance {
    /// Fed with row changes; valid while every table has the generation it was built from.
    Incremental { plan: LocalPlan, dataflow: Box<Dataflow<JsonRow>>, generations: Vec<(String, u64)> },
    /// The plan's shape is not maintained: run from scratch after every change.
    Rerun(Unsupported),
    /// To be planned and built again at the next change (after a failed step or build).
    Rebuild,
}

/// How a live query's result is kept current, for tests, benchmarks and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveMode {
    /// Maintained from the changes of each write and batch.
    Incremental,
    /// Run from scratch after every change, for this reason.
    Rerun(Unsupported),
    /// Run from scratch until the next change builds a dataflow again (the last build or step
    /// failed, e.g. a row that fails to evaluate).
    Rebuild,
}

impl LiveView {
    /// Plans `query` and computes its first result. Fails as [`LocalPlan::run`] would (a table
    /// not synced, a row that fails to evaluate, ...).
    pub fn start(query: LocalQuery, replica: &Replica) -> Result<(LiveView, ResultSet), LocalQueryError> {
        let plan = query.plan(replica)?;
        let tables = plan.tables();
        let (state, shown) = match plan.dataflow(replica) {
            Ok(dataflow) => {
                let shown = current(&plan, &dataflow)?;
                (incremental(plan, dataflow, &tables, replica), shown)
            }
            Err(NotMaintained::Dataflow(IncrementalError::Unsupported(reason))) => {
                (Maintenance::Rerun(reason), plan.run(replica)?)
            }
            Err(_) => (Maintenance::Rebuild, plan.run(replica)?),
        };
        let view = LiveView { query, tables, state, last: shown.clone() };
        Ok((view, shown))
    }

    /// `namespace.table` of every table the query reads.
    pub fn tables(&self) -> &[String] {
        &self.tables
    }

    /// How the result is kept current now.
    pub fn mode(&self) -> LiveMode {
        match &self.state {
            Maintenance::Incremental { .. } => LiveMode::Incremental,
            Maintenance::Rerun(reason) => LiveMode::Rerun(reason.clone()),
            Maintenance::Rebuild => LiveMode::Rebuild,
        }
    }

    /// Brings the result up to date after the replica changed: `touched` are the tables whose
    /// rows may have changed, `changes` the rows that did (both from the engine's effects).
    /// Returns the new result if it differs from the last one delivered. An error (a table's
    /// last subscription went away, a row fails to evaluate) makes the result empty, as a query
    /// run at that moment would fail.
    pub fn refresh(&mut self, replica: &Replica, touched: &HashSet<String>, changes: &RowChanges) -> Option<ResultSet> {
        if !self.tables.iter().any(|t| touched.contains(t)) {
            return None;
        }
        let shown = match self.apply_changes(replica, changes) {
            Step::Unchanged => return None,
            Step::Changed(shown) => shown,
            Step::Invalid => self.rebuild(replica),
        };
        let last = &self.last;
        if shown.rows.same_as(&last.rows) && shown.columns == last.columns && shown.types == last.types {
            return None;
        }
        self.last = shown.clone();
        Some(shown)
    }

    /// Feeds the changes to the dataflow, if there is one and they apply to it.
    fn apply_changes(&mut self, replica: &Replica, changes: &RowChanges) -> Step {
        let Maintenance::Incremental { plan, dataflow, generations } = &mut self.state else { return Step::Invalid };
        let mut deltas = TableDeltas::new();
        for (table, generation) in generations.iter() {
            if replica.typed_generation(table) != Some(*generation) {
                return Step::Invalid;
            }
            let Some(changed) = changes.table(table) else { continue };
            if changed.generation != *generation {
                return Step::Invalid;
            }
            deltas.insert(table.clone(), Rc::clone(changed.delta()));
        }
        let step = match dataflow.apply(&deltas) {
            Ok(false) => Step::Unchanged,
            Ok(true) => current(plan, dataflow).map_or(Step::Invalid, Step::Changed),
            Err(_) => Step::Invalid,
        };
        if let Step::Invalid = step {
            self.state = Maintenance::Rebuild;
        }
        step
    }

    /// Plans the query again and builds its dataflow (or, for a shape that is not maintained,
    /// runs it); returns the result, empty if the query fails now.
    fn rebuild(&mut self, replica: &Replica) -> ResultSet {
        let plan = match self.query.plan(replica) {
            Ok(plan) => plan,
            Err(_) => {
                self.state = Maintenance::Rebuild;
                return ResultSet::default();
            }
        };
        self.tables = plan.tables();
        let run = |plan: &LocalPlan| plan.run(replica).unwrap_or_default();
        if let Maintenance::Rerun(_) = self.state {
            return run(&plan);
        }
        match plan.dataflow(replica) {
            Ok(dataflow) => match current(&plan, &dataflow) {
                Ok(result) => {
                    self.state = incremental(plan, dataflow, &self.tables, replica);
                    result
                }
                Err(_) => {
                    self.state = Maintenance::Rebuild;
                    run(&plan)
                }
            },
            Err(NotMaintained::Dataflow(IncrementalError::Unsupported(reason))) => {
                self.state = Maintenance::Rerun(reason);
                run(&plan)
            }
            Err(_) => {
                self.state = Maintenance::Rebuild;
                run(&plan)
            }
        }
    }
}

/// What feeding one step of changes to a dataflow gave.
enum Step {
    Unchanged,
    Changed(ResultSet),
    /// No dataflow, changes against other copies of the tables, or a failed step: plan and
    /// build again.
    Invalid,
}

/// The dataflow's result in the server's JSON encoding; only rows not read before are
/// converted.
fn current(plan: &LocalPlan, dataflow: &Dataflow<JsonRow>) -> Result<ResultSet, LocalQueryError> {
    let rows = dataflow.rendered(|row| Ok::<_, LocalQueryError>(plan.json_row(row).into()))?;
    Ok(ResultSet { columns: plan.columns(), types: plan.types(), rows: Rows::from_shared(rows) })
}

/// The incremental state of a dataflow just built over the replica's tables (each synced, so
/// each has a generation).
fn incremental(plan: LocalPlan, dataflow: Dataflow<JsonRow>, tables: &[String], replica: &Replica) -> Maintenance {
    let generations: Option<Vec<(String, u64)>> =
        tables.iter().map(|t| replica.typed_generation(t).map(|g| (t.clone(), g))).collect();
    match generations {
        Some(generations) => Maintenance::Incremental { plan, dataflow: Box::new(dataflow), generations },
        None => Maintenance::Rebuild,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ws::{MutationKind, MutationOp};
    use crate::store::{OutboxEntry, StoreOp, SubscriptionId, pk_key};
    use serde_json::{Value as Json, json};
    use std::sync::Arc;

    fn record(id: &str, table: &str, columns: &[(&str, &str)]) -> StoreOp {
        crate::test_support::subscription(id, table, columns, "id")
    }

    const TODOS: [(&str, &str); 5] =
        [("id", "TEXT"), ("list_id", "BIGINT"), ("done", "BOOLEAN"), ("price", "DECIMAL(10,2)"), ("due", "TIMESTAMP")];

    const QUERIES: [&str; 7] = [
        "SELECT id, price FROM app.todos WHERE done = false ORDER BY price DESC, id LIMIT 3",
        "SELECT list_id, count(*) AS n, sum(price) AS total, min(due) AS earliest FROM app.todos GROUP BY list_id",
        "SELECT l.name, count(t.id) AS open FROM app.lists l LEFT JOIN app.todos t ON t.list_id = l.id \
         AND t.done = false GROUP BY l.name ORDER BY open DESC, l.name",
        "SELECT * FROM app.todos",
        "SELECT DISTINCT list_id FROM app.todos",
        "SELECT t.id, l.name FROM app.todos t JOIN app.lists l ON l.id = t.list_id WHERE t.price > 5",
        // Not maintained: runs from scratch.
        "SELECT id FROM app.todos LIMIT 2",
    ];

    /// Rows compared as the query promises them: in order with ORDER BY, as a multiset without.
    fn comparable(sql: &str, mut rs: ResultSet) -> ResultSet {
        if !sql.contains("ORDER BY") {
            let mut rows: Vec<Vec<Json>> = rs.rows.into_iter().collect();
            rows.sort_by_key(|r| serde_json::to_string(r).unwrap());
            rs.rows = rows.into();
        }
        rs
    }

    /// Random synced rows, pending writes, confirmations, rejections, resets and schema changes
    /// against live queries over two tables: after every step each live result equals the
    /// query run from scratch, and maintained queries stay maintained.
    #[test]
    fn live_results_follow_writes_and_batches_exactly() {
        let mut next = crate::test_support::seeded_random(0x9e37_79b9_7f4a_7c15u64);
        let mut r = Replica::default();
        r.apply(&[
            record("lists", "app.lists", &[("id", "BIGINT"), ("name", "TEXT")]),
            record("todos", "app.todos", &TODOS),
        ]);
        let mut views: Vec<(String, LiveView, ResultSet)> = QUERIES
            .iter()
            .map(|sql| {
                let (view, first) = LiveView::start(LocalQuery::parse(sql, &[]).unwrap(), &r).unwrap();
                (sql.to_string(), view, first)
            })
            .collect();
        let touched: HashSet<String> = ["app.lists".to_string(), "app.todos".to_string()].into();
        let (mut seq, mut incremental_steps) = (0u64, 0usize);
        for step in 0..600 {
            let todo = |next: &mut dyn FnMut(u64) -> u64| -> Json {
                let price = if next(6) == 0 { Json::Null } else { json!(format!("{}.{:02}", next(12), next(100))) };
                json!({"id": format!("t{}", next(15)), "list_id": next(5), "done": next(2) == 0, "price": price,
                       "due": format!("2024-03-{:02}T10:00:00Z", 1 + next(9))})
            };
            let ops: Vec<StoreOp> = (0..1 + next(4))
                .map(|_| match next(24) {
                    0..=6 => {
                        let row = todo(&mut next);
                        let pk = pk_key(&row["id"]);
                        StoreOp::PutRow {
                            sub: SubscriptionId("todos".into()),
                            pk,
                            row: row.as_object().unwrap().clone().into(),
                        }
                    }
                    7..=8 => {
                        let id = next(4);
                        let row = json!({"id": id, "name": format!("list {}", next(3))});
                        StoreOp::PutRow {
                            sub: SubscriptionId("lists".into()),
                            pk: pk_key(&json!(id)),
                            row: row.as_object().unwrap().clone().into(),
                        }
                    }
                    9..=10 => StoreOp::DeleteRow {
                        sub: SubscriptionId("todos".into()),
                        pk: pk_key(&json!(format!("t{}", next(15)))),
                    },
                    11..=17 => {
                        seq += 1;
                        let (op, row, pk) = match next(3) {
                            0 => (MutationKind::Insert, Some(todo(&mut next)), None),
                            1 => (
                                MutationKind::Update,
                                Some(json!({"done": next(2) == 0, "price": format!("{}.50", next(9))})),
                                Some(json!(format!("t{}", next(15)))),
                            ),
                            _ => (MutationKind::Delete, None, Some(json!(format!("t{}", next(15))))),
                        };
                        let row = row.map(|r| r.as_object().unwrap().clone());
                        let ops = vec![MutationOp { table: "app.todos".into(), op, row, pk }];
                        StoreOp::PutOutbox(OutboxEntry {
                            client_id: "me".into(),
                            seq,
                            ops,
                            created_ms: 0.0,
                            confirmed: None,
                        })
                    }
                    18..=21 => StoreOp::DeleteOutbox { client_id: "me".into(), seq: 1 + next(seq.max(1)) },
                    22 => StoreOp::ClearRows(SubscriptionId(if next(2) == 0 { "todos" } else { "lists" }.into())),
                    _ => {
                        let mut columns = TODOS.to_vec();
                        if next(2) == 0 {
                            columns.push(("note", "TEXT"));
                        }
                        record("todos", "app.todos", &columns)
                    }
                })
                .collect();
            let changes = r.apply(&ops);
            for (sql, view, shown) in &mut views {
                if let Some(result) = view.refresh(&r, &touched, &changes) {
                    *shown = result;
                }
                let expected = LocalQuery::parse(sql, &[]).unwrap().plan(&r).unwrap().run(&r).unwrap();
                assert_eq!(comparable(sql, shown.clone()), comparable(sql, expected), "step {step}: {sql}");
                match view.mode() {
                    LiveMode::Incremental => incremental_steps += 1,
                    LiveMode::Rerun(_) => assert!(sql.ends_with("LIMIT 2"), "{sql} should be maintained"),
                    LiveMode::Rebuild => panic!("step {step}: {sql} failed to build"),
                }
            }
        }
        assert_eq!(incremental_steps, 600 * (QUERIES.len() - 1));
    }

    /// A delivered result shares its unchanged rows with the last one, and a changed row's
    /// JSON is made again (a kept conversion of the old row would show the old count).
    #[test]
    fn unchanged_rows_are_shared_and_changed_rows_converted_again() {
        let mut r = Replica::default();
        r.apply(&[record("todos", "app.todos", &TODOS)]);
        let put = |id: &str, list: u64, price: &str| StoreOp::PutRow {
            sub: SubscriptionId("todos".into()),
            pk: pk_key(&json!(id)),
            row: json!({"id": id, "list_id": list, "done": false, "price": price, "due": "2024-03-01T10:00:00Z"})
                .as_object()
                .unwrap()
                .clone()
                .into(),
        };
        r.apply(&[put("a", 1, "1.00"), put("b", 2, "2.00"), put("c", 3, "3.00")]);
        let sql = "SELECT list_id, count(*) AS n, sum(price) AS total FROM app.todos GROUP BY list_id ORDER BY list_id";
        let (mut view, first) = LiveView::start(LocalQuery::parse(sql, &[]).unwrap(), &r).unwrap();
        assert_eq!(view.mode(), LiveMode::Incremental);
        let touched: HashSet<String> = ["app.todos".to_string()].into();
        let changes = r.apply(&[put("d", 2, "0.50")]);
        let next = view.refresh(&r, &touched, &changes).expect("list 2 changed");
        assert_eq!(
            next.rows,
            vec![
                vec![json!(1), json!(1), json!("1.00")],
                vec![json!(2), json!(2), json!("2.50")],
                vec![json!(3), json!(1), json!("3.00")]
            ]
        );
        assert!(Arc::ptr_eq(&first.rows[0], &next.rows[0]) && Arc::ptr_eq(&first.rows[2], &next.rows[2]));
        assert!(!Arc::ptr_eq(&first.rows[1], &next.rows[1]));
        // A change that leaves every shown row as it was delivers nothing.
        let changes = r.apply(&[put("d", 2, "0.50")]);
        assert_eq!(view.refresh(&r, &touched, &changes), None);
    }
}
