//! A catalog and data source held in memory: tables with their rows. Used by tests and as the
//! simplest host for the evaluator.

use crate::error::{QueryError, Result};
use crate::exec::{DataSource, Row};
use crate::schema::{Catalog, ColumnDef, TableSchema};
use crate::value::Value;

/// Tables and their rows, in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryTables {
    tables: Vec<(TableSchema, Vec<Row>)>,
    default_namespace: String,
}

impl MemoryTables {
    /// An empty set of tables; bare table names resolve in `default_namespace`.
    pub fn new(default_namespace: impl Into<String>) -> Self {
        MemoryTables { tables: Vec::new(), default_namespace: default_namespace.into() }
    }

    /// Add a table in the default namespace; `primary_key` names columns.
    pub fn add_table(&mut self, name: &str, columns: Vec<ColumnDef>, primary_key: &[&str]) -> Result<()> {
        let ns = self.default_namespace.clone();
        self.add_table_in(&ns, name, columns, primary_key)
    }

    /// Add a table in a namespace.
    pub fn add_table_in(
        &mut self,
        namespace: &str,
        name: &str,
        columns: Vec<ColumnDef>,
        primary_key: &[&str],
    ) -> Result<()> {
        let mut pk = Vec::new();
        for k in primary_key {
            pk.push(columns.iter().position(|c| c.name == *k).ok_or_else(|| QueryError::UnknownColumn(k.to_string()))?);
        }
        self.tables.push((
            TableSchema { namespace: namespace.into(), name: name.into(), columns, primary_key: pk },
            Vec::new(),
        ));
        Ok(())
    }

    /// Append rows to a table (namespace-qualified or bare).
    pub fn insert(&mut self, table: &str, rows: Vec<Row>) -> Result<()> {
        let (ns, name) = match table.split_once('.') {
            Some((ns, name)) => (ns.to_string(), name.to_string()),
            None => (self.default_namespace.clone(), table.to_string()),
        };
        let (schema, data) = self
            .tables
            .iter_mut()
            .find(|(t, _)| t.namespace == ns && t.name == name)
            .ok_or_else(|| QueryError::UnknownTable(table.to_string()))?;
        for r in &rows {
            if r.len() != schema.columns.len() {
                return Err(QueryError::eval(format!(
                    "row has {} values; {} has {} columns",
                    r.len(),
                    table,
                    schema.columns.len()
                )));
            }
        }
        data.extend(rows);
        Ok(())
    }
}

impl Catalog for MemoryTables {
    fn table(&self, namespace: Option<&str>, name: &str) -> Option<TableSchema> {
        let ns = namespace.unwrap_or(&self.default_namespace);
        self.tables.iter().find(|(t, _)| t.namespace == ns && t.name == name).map(|(t, _)| t.clone())
    }
}

impl DataSource for MemoryTables {
    fn scan<'a>(&'a self, table: &TableSchema) -> Result<Box<dyn Iterator<Item = &'a [Value]> + 'a>> {
        let (_, rows) = self
            .tables
            .iter()
            .find(|(t, _)| t.namespace == table.namespace && t.name == table.name)
            .ok_or_else(|| QueryError::UnknownTable(table.qualified_name()))?;
        Ok(Box::new(rows.iter().map(Vec::as_slice)))
    }
}
