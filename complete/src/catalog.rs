//! The names completion offers: what the shell and the console read from the server.

/// The namespaces, tables and columns the user may see.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    /// Namespaces (`system` and `information_schema` too, where their tables are listed).
    pub namespaces: Vec<String>,
    /// Tables, each with its columns.
    pub tables: Vec<Table>,
}

/// A table of the catalog.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// Its namespace.
    pub namespace: String,
    /// Its name in the namespace.
    pub name: String,
    /// What kind of table it is (`user`, `shared`, `stream`, `system`), shown beside it;
    /// empty where it is not known.
    pub kind: String,
    /// Its columns, in order.
    pub columns: Vec<Column>,
}

/// A column of a catalog table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its data type, shown beside it; empty where it is not known.
    pub data_type: String,
}

impl Catalog {
    /// The tables `name` (`t` or `ns.t`, in any case) refers to, given the current namespace.
    pub(crate) fn resolve<'a>(&'a self, name: &str, current: &str) -> Vec<&'a Table> {
        let (ns, t) = name.split_once('.').unwrap_or((current, name));
        self.tables
            .iter()
            .filter(|table| table.name.eq_ignore_ascii_case(t) && table.namespace.eq_ignore_ascii_case(ns))
            .collect()
    }
}
