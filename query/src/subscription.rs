//! The shape of a subscription: the SQL a client syncs with, `SELECT * | columns FROM
//! [namespace.]table [WHERE ...]`.
//!
//! A subscription replicates rows of one table (the server streams them with their primary key
//! and later changes to them), so everything that computes new rows — joins, aggregates,
//! GROUP BY, DISTINCT — and everything that orders or cuts the result — ORDER BY, LIMIT — has no
//! place in it. Those belong in a local query over the synced tables. [`parse_subscription`]
//! names the first such construct it finds ([`QueryError::NotInSubscription`]); the WHERE
//! clause is any expression of the language, type-checked once the table's columns are known.

use crate::ast::{Expr, Query, SelectItem, TableRef};
use crate::check::contains_aggregate;
use crate::error::{QueryError, Result};
use crate::parser::parse;

/// A subscription's SQL, checked for its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// The table (its namespace as written, if it was).
    pub table: TableRef,
    /// The selected column names, in order; `None` for `*`.
    pub columns: Option<Vec<String>>,
    /// The WHERE condition.
    pub filter: Option<Expr>,
}

/// Parses `sql` and checks that it is a subscription: one table, `*` or plain columns
/// (optionally qualified by the table's name or alias), an optional WHERE without parameters
/// or aggregates.
pub fn parse_subscription(sql: &str) -> Result<Subscription> {
    let q = parse(sql)?;
    let refuse = |construct: &str| Err(QueryError::NotInSubscription { construct: construct.to_string() });
    let Query { distinct, projection, from, selection, group_by, having, order_by, limit, offset } = q;
    let Some(from) = from else { return refuse("a SELECT without FROM") };
    if !from.joins.is_empty() {
        return refuse("JOIN");
    }
    let aggregates = projection.iter().any(|i| matches!(i, SelectItem::Expr { expr, .. } if contains_aggregate(expr)))
        || selection.as_ref().is_some_and(contains_aggregate);
    for (present, construct) in [
        (aggregates, "aggregate functions"),
        (!group_by.is_empty(), "GROUP BY"),
        (having.is_some(), "HAVING"),
        (distinct, "DISTINCT"),
        (!order_by.is_empty(), "ORDER BY"),
        (limit.is_some(), "LIMIT"),
        (offset.is_some(), "OFFSET"),
    ] {
        if present {
            return refuse(construct);
        }
    }
    let table = from.base;
    let mut columns = Some(Vec::new());
    for item in projection {
        match item {
            SelectItem::Wildcard => columns = None,
            SelectItem::QualifiedWildcard(q) if q == table.visible_name() => columns = None,
            SelectItem::QualifiedWildcard(q) => return Err(QueryError::UnknownTable(q)),
            SelectItem::Expr { alias: Some(_), .. } => return refuse("column aliases (AS)"),
            SelectItem::Expr { expr: Expr::Column(parts), alias: None } => {
                let name = match parts.as_slice() {
                    [name] => name.clone(),
                    [q, name] if q == table.visible_name() => name.clone(),
                    _ => return Err(QueryError::UnknownColumn(parts.join("."))),
                };
                if let Some(cols) = &mut columns {
                    cols.push(name);
                }
            }
            SelectItem::Expr { .. } => return refuse("computed columns (select plain columns)"),
        }
    }
    if let Some(filter) = &selection {
        let mut params = false;
        filter.walk(&mut |e| params |= matches!(e, Expr::Param { .. }));
        if params {
            return refuse("parameters");
        }
    }
    Ok(Subscription { table, columns, filter: selection })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(sql: &str) -> String {
        match parse_subscription(sql) {
            Err(QueryError::NotInSubscription { construct }) => construct,
            other => panic!("{sql}: {other:?}"),
        }
    }

    #[test]
    fn accepts_one_table_with_columns_and_a_filter() {
        let s = parse_subscription("SELECT * FROM app.todos WHERE done = false AND lower(title) LIKE 'a%'").unwrap();
        assert_eq!((s.table.namespace.as_deref(), s.table.name.as_str()), (Some("app"), "todos"));
        assert_eq!(s.columns, None);
        assert!(s.filter.is_some());
        let s = parse_subscription("select t.id, title from app.todos t").unwrap();
        assert_eq!(s.columns, Some(vec!["id".to_string(), "title".to_string()]));
        assert_eq!(parse_subscription("SELECT todos.* FROM todos").unwrap().columns, None);
    }

    #[test]
    fn names_what_a_subscription_cannot_have() {
        assert_eq!(refused("SELECT * FROM app.a JOIN app.b ON a.id = b.a_id"), "JOIN");
        assert_eq!(refused("SELECT count(*) FROM app.t"), "aggregate functions");
        assert_eq!(refused("SELECT id FROM app.t WHERE max(n) > 1"), "aggregate functions");
        assert_eq!(refused("SELECT id FROM app.t GROUP BY id"), "GROUP BY");
        assert_eq!(refused("SELECT DISTINCT id FROM app.t"), "DISTINCT");
        assert_eq!(refused("SELECT id FROM app.t ORDER BY id"), "ORDER BY");
        assert_eq!(refused("SELECT id FROM app.t LIMIT 5"), "LIMIT");
        assert_eq!(refused("SELECT id FROM app.t OFFSET 5"), "OFFSET");
        assert_eq!(refused("SELECT id AS key FROM app.t"), "column aliases (AS)");
        assert_eq!(refused("SELECT id + 1 FROM app.t"), "computed columns (select plain columns)");
        assert_eq!(refused("SELECT id FROM app.t WHERE id = $1"), "parameters");
        assert_eq!(refused("SELECT 1"), "a SELECT without FROM");
        let e = parse_subscription("SELECT * FROM app.a JOIN app.b ON a.id = b.a_id").unwrap_err().to_string();
        assert!(e.starts_with("JOIN is not supported in a subscription"), "{e}");
        assert!(e.contains("local query"), "{e}");
        let e = parse_subscription("SELECT count(*) FROM app.t").unwrap_err().to_string();
        assert!(e.starts_with("aggregate functions are not supported in a subscription"), "{e}");
    }

    #[test]
    fn other_errors_are_the_languages() {
        assert!(matches!(parse_subscription("SELECT * FROM"), Err(QueryError::Syntax { .. })));
        assert!(matches!(
            parse_subscription("SELECT * FROM app.t UNION SELECT * FROM app.u"),
            Err(QueryError::Unsupported { .. })
        ));
        assert_eq!(parse_subscription("SELECT x.* FROM app.t"), Err(QueryError::UnknownTable("x".into())));
        assert_eq!(parse_subscription("SELECT x.id FROM app.t"), Err(QueryError::UnknownColumn("x.id".into())));
    }
}
