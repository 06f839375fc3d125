//! A source that finds rows by an index (`DataSource::rows_equal`): a `WHERE` that requires
//! `column = constant` reads those rows instead of scanning, and still evaluates the whole
//! `WHERE` on them.

use kalamdb_query::exec::execute;
use kalamdb_query::incremental::SharedRow;
use kalamdb_query::{Catalog, ColumnDef, DataSource, DataType, MemoryTables, Result, TableSchema, Value, plan};
use std::cell::Cell;

/// `MemoryTables` whose scans are counted, and whose look-ups by `id` return every row with that
/// `id` plus one row that does not match (a source may return more rows, never fewer).
struct Indexed {
    tables: MemoryTables,
    scans: Cell<usize>,
    lookups: Cell<usize>,
}

impl Catalog for Indexed {
    fn table(&self, namespace: Option<&str>, name: &str) -> Option<TableSchema> {
        self.tables.table(namespace, name)
    }
}

impl DataSource for Indexed {
    fn scan<'a>(&'a self, table: &TableSchema) -> Result<Box<dyn Iterator<Item = &'a [Value]> + 'a>> {
        self.scans.set(self.scans.get() + 1);
        self.tables.scan(table)
    }

    fn rows_equal(&self, table: &TableSchema, column: usize, value: &Value) -> Result<Option<Vec<SharedRow>>> {
        if table.columns[column].name != "id" {
            return Ok(None);
        }
        self.lookups.set(self.lookups.get() + 1);
        let rows: Vec<SharedRow> = self
            .tables
            .scan(table)?
            .filter(|r| &r[0] == value || r[0] == Value::Int64(3))
            .map(SharedRow::from)
            .collect();
        Ok(Some(rows))
    }
}

fn source() -> Indexed {
    let mut tables = MemoryTables::new("app");
    let columns = vec![ColumnDef::new("id", DataType::BigInt, false), ColumnDef::new("n", DataType::BigInt, true)];
    tables.add_table("t", columns, &["id"]).unwrap();
    let rows = (1..=5).map(|i| vec![Value::Int64(i), Value::Int64(i * 10)]).collect();
    tables.insert("t", rows).unwrap();
    Indexed { tables, scans: Cell::new(0), lookups: Cell::new(0) }
}

fn run(source: &Indexed, sql: &str) -> Vec<Vec<Value>> {
    let plan = plan(sql, source, &[]).unwrap();
    execute(&plan, source).unwrap()
}

#[test]
fn an_equality_on_an_indexed_column_reads_the_index_and_the_whole_where_still_applies() {
    let s = source();
    assert_eq!(run(&s, "SELECT n FROM t WHERE id = 2"), vec![vec![Value::Int64(20)]]);
    assert_eq!(run(&s, "SELECT n FROM t WHERE n > 10 AND 4 = id"), vec![vec![Value::Int64(40)]]);
    assert_eq!(run(&s, "SELECT n FROM t WHERE id = 2 AND n > 100"), Vec::<Vec<Value>>::new());
    assert_eq!(run(&s, "SELECT count(*) FROM t WHERE id = 2"), vec![vec![Value::Int64(1)]]);
    assert_eq!((s.lookups.get(), s.scans.get()), (4, 0));
}

#[test]
fn other_conditions_scan() {
    let s = source();
    for sql in [
        "SELECT n FROM t WHERE id = 2 OR id = 4",
        "SELECT n FROM t WHERE id <> 2",
        "SELECT n FROM t WHERE n = 20",
        "SELECT n FROM t WHERE id + 0 = 2",
        "SELECT n FROM t WHERE id = NULL",
    ] {
        run(&s, sql);
    }
    assert_eq!((s.lookups.get(), s.scans.get()), (0, 5));
}
