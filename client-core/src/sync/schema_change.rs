//! Carrying a subscription's rows across a schema change (an `ALTER TABLE` on the server)
//! instead of downloading them again.
//!
//! Columns are matched by their stable id when both schemas carry ids (so a renamed column
//! keeps its values), else by name. Columns the new schema lacks are dropped from the rows;
//! new columns get the value the server reads old rows as (`default`, else NULL).

use crate::protocol::ColumnInfo;
use crate::store::Row;
use serde_json::Value;

/// Where a column of the new schema takes its value from.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    /// The old row's column of this name.
    Column(String),
    /// A column the old rows did not have.
    Fill(Value),
}

/// How to rewrite rows stored under one schema into another.
#[derive(Debug, Clone, PartialEq)]
pub struct RowMigration {
    columns: Vec<(String, Source)>,
}

impl RowMigration {
    /// The rewrite from `old` to `new`, or `None` when stored rows read the same under both
    /// (the first schema of a subscription, or only types changed).
    pub fn between(old: &[ColumnInfo], new: &[ColumnInfo]) -> Option<RowMigration> {
        if old.is_empty() {
            return None;
        }
        let by_id = old.iter().chain(new).all(|c| c.id.is_some());
        let columns: Vec<(String, Source)> = new
            .iter()
            .map(|n| {
                let found = old.iter().find(|o| if by_id { o.id == n.id } else { o.name == n.name });
                let source = match found {
                    Some(o) => Source::Column(o.name.clone()),
                    None => Source::Fill(n.default.clone().unwrap_or(Value::Null)),
                };
                (n.name.clone(), source)
            })
            .collect();
        let unchanged = old.len() == new.len()
            && columns.iter().all(|(name, source)| matches!(source, Source::Column(from) if from == name));
        (!unchanged).then_some(RowMigration { columns })
    }

    /// `row` (stored under the old schema) under the new one.
    pub fn apply(&self, row: &Row) -> Row {
        // `extend`, not `collect`: collecting into a map compiles in a sort (~3 KB of wasm).
        let mut out = Row::new();
        out.extend(self.columns.iter().map(|(name, source)| {
            let v = match source {
                Source::Column(from) => row.get(from).cloned().unwrap_or(Value::Null),
                Source::Fill(v) => v.clone(),
            };
            (name.clone(), v)
        }));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn col(name: &str, id: u16) -> ColumnInfo {
        ColumnInfo { id: Some(id), ..ColumnInfo::new(name, "TEXT") }
    }

    fn row(v: Value) -> Row {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn renames_drops_and_fills_by_column_id() {
        let old = [col("id", 1), col("title", 2), col("done", 3)];
        let mut due = col("due", 4);
        due.default = Some(json!("2026-01-01"));
        let new = [col("id", 1), col("name", 2), due, col("note", 5)];
        let m = RowMigration::between(&old, &new).expect("rows change");
        assert_eq!(
            m.apply(&row(json!({"id": "a", "title": "t", "done": true}))),
            row(json!({"id": "a", "name": "t", "due": "2026-01-01", "note": null}))
        );
    }

    #[test]
    fn same_columns_or_first_schema_need_no_rewrite() {
        let old = [col("id", 1), col("n", 2)];
        let mut widened = old.clone();
        widened[1].data_type = "BIGINT".into();
        assert_eq!(RowMigration::between(&old, &widened), None);
        assert_eq!(RowMigration::between(&[], &old), None);
    }

    #[test]
    fn schemas_without_ids_match_by_name() {
        let old = [ColumnInfo::new("id", "TEXT"), ColumnInfo::new("a", "TEXT")];
        let new = [ColumnInfo::new("id", "TEXT"), ColumnInfo::new("b", "TEXT")];
        let m = RowMigration::between(&old, &new).unwrap();
        assert_eq!(m.apply(&row(json!({"id": 1, "a": 2}))), row(json!({"id": 1, "b": null})));
    }
}
