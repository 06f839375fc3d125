//! What the planner needs to know about tables, and the trait that supplies it.

use crate::types::DataType;

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    /// Name (identifiers are case-insensitive: unquoted names are lower-cased by the parser, so
    /// catalogs should hold lower-case names).
    pub name: String,
    /// Type.
    pub ty: DataType,
    /// Whether NULL may occur.
    pub nullable: bool,
}

impl ColumnDef {
    /// A column.
    pub fn new(name: impl Into<String>, ty: DataType, nullable: bool) -> Self {
        ColumnDef { name: name.into(), ty, nullable }
    }
}

/// A table's identity and columns. Rows of this table are `Vec<Value>` aligned to `columns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    /// Namespace.
    pub namespace: String,
    /// Table name.
    pub name: String,
    /// Columns, in row order.
    pub columns: Vec<ColumnDef>,
    /// Indexes into `columns` of the primary key.
    pub primary_key: Vec<usize>,
}

impl TableSchema {
    /// `namespace.name`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.namespace, self.name)
    }
}

/// Resolves table names for the planner.
///
/// The server implements it over its catalog (restricted to what the caller may read); the
/// client over the synced tables of its replica.
pub trait Catalog {
    /// The table `namespace.name`, or a bare `name` resolved the implementor's way (a default
    /// namespace, or a unique match). `None` if unknown.
    fn table(&self, namespace: Option<&str>, name: &str) -> Option<TableSchema>;

    /// The signed-in user, which `current_user()` names; `None` (the default) where no user
    /// is known, and a query that uses it is refused.
    fn current_user(&self) -> Option<String> {
        None
    }
}
