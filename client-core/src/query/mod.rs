//! Local SQL over the replica: the same subset that defines a subscription — one table, a
//! projection, `WHERE` with comparisons/AND/OR/NOT/IN/LIKE/BETWEEN/IS NULL, `ORDER BY`,
//! `LIMIT`/`OFFSET` — evaluated on rows held in memory.
//!
//! Semantics follow SQL: comparisons with NULL are unknown and filter the row out, `ASC`
//! sorts NULLs last and `DESC` first, `LIKE` is case-sensitive with `%` and `_`.

mod parser;

pub use parser::parse;

use serde_json::{Map, Value};
use std::cmp::Ordering;

/// One row: column name → JSON value, as the server encodes values.
pub type Row = Map<String, Value>;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    #[error("syntax error: {0}")]
    Syntax(String),
    #[error("table '{0}' is not synced to this replica (declare it with sync() first)")]
    UnknownTable(String),
    #[error("column '{column}' does not exist in {table}")]
    UnknownColumn { table: String, column: String },
}

/// A parsed local query.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalQuery {
    /// `namespace.table` (or a bare name, resolved by the caller).
    pub table: String,
    pub projection: Projection,
    pub filter: Option<Expr>,
    pub order_by: Vec<OrderBy>,
    pub limit: Option<usize>,
    pub offset: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    All,
    Columns(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    pub column: String,
    pub descending: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Column(String),
    Literal(Value),
    Cmp(Box<Expr>, CmpOp, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    IsNull(Box<Expr>),
    In { expr: Box<Expr>, list: Vec<Expr>, negated: bool },
    Like { expr: Box<Expr>, pattern: Box<Expr>, negated: bool },
}

/// A query result: column names and rows aligned to them.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct ResultSet {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl ResultSet {
    /// Rows as column → value objects.
    pub fn to_objects(&self) -> Vec<Row> {
        self.rows.iter().map(|r| self.columns.iter().cloned().zip(r.iter().cloned()).collect()).collect()
    }
}

impl LocalQuery {
    /// Columns this query reads, for validation against the table's schema.
    fn referenced_columns(&self) -> Vec<&str> {
        fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a str>) {
            match e {
                Expr::Column(c) => out.push(c),
                Expr::Literal(_) => {}
                Expr::Cmp(a, _, b) | Expr::And(a, b) | Expr::Or(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Expr::Not(a) | Expr::IsNull(a) => walk(a, out),
                Expr::In { expr, list, .. } => {
                    walk(expr, out);
                    list.iter().for_each(|e| walk(e, out));
                }
                Expr::Like { expr, pattern, .. } => {
                    walk(expr, out);
                    walk(pattern, out);
                }
            }
        }
        let mut out = Vec::new();
        if let Projection::Columns(cols) = &self.projection {
            out.extend(cols.iter().map(String::as_str));
        }
        if let Some(f) = &self.filter {
            walk(f, &mut out);
        }
        out.extend(self.order_by.iter().map(|o| o.column.as_str()));
        out
    }

    /// Runs the query over `rows`, whose columns are `columns` (in schema order).
    pub fn run<'a>(&self, columns: &[String], rows: impl Iterator<Item = &'a Row>) -> Result<ResultSet, QueryError> {
        for c in self.referenced_columns() {
            if !columns.iter().any(|x| x == c) {
                return Err(QueryError::UnknownColumn { table: self.table.clone(), column: c.to_string() });
            }
        }
        let mut matched: Vec<&Row> =
            rows.filter(|r| self.filter.as_ref().is_none_or(|f| truthy(&eval(f, r)))).collect();
        if !self.order_by.is_empty() {
            matched.sort_by(|a, b| {
                for o in &self.order_by {
                    let ord = order_values(field(a, &o.column), field(b, &o.column), o.descending);
                    if ord != Ordering::Equal {
                        return ord;
                    }
                }
                Ordering::Equal
            });
        }
        let out_cols: Vec<String> = match &self.projection {
            Projection::All => columns.to_vec(),
            Projection::Columns(c) => c.clone(),
        };
        let rows = matched
            .into_iter()
            .skip(self.offset)
            .take(self.limit.unwrap_or(usize::MAX))
            .map(|r| out_cols.iter().map(|c| field(r, c).clone()).collect())
            .collect();
        Ok(ResultSet { columns: out_cols, rows })
    }
}

const NULL: Value = Value::Null;

fn field<'a>(row: &'a Row, col: &str) -> &'a Value {
    row.get(col).unwrap_or(&NULL)
}

fn truthy(v: &Value) -> bool {
    matches!(v, Value::Bool(true))
}

/// Evaluates to a JSON value; `Null` stands for SQL's unknown.
fn eval(e: &Expr, row: &Row) -> Value {
    match e {
        Expr::Column(c) => field(row, c).clone(),
        Expr::Literal(v) => v.clone(),
        Expr::Cmp(a, op, b) => {
            let (a, b) = (eval(a, row), eval(b, row));
            match compare(&a, &b) {
                None => Value::Null,
                Some(ord) => Value::Bool(match op {
                    CmpOp::Eq => ord == Ordering::Equal,
                    CmpOp::NotEq => ord != Ordering::Equal,
                    CmpOp::Lt => ord == Ordering::Less,
                    CmpOp::LtEq => ord != Ordering::Greater,
                    CmpOp::Gt => ord == Ordering::Greater,
                    CmpOp::GtEq => ord != Ordering::Less,
                }),
            }
        }
        Expr::And(a, b) => match (eval(a, row), eval(b, row)) {
            (Value::Bool(false), _) | (_, Value::Bool(false)) => Value::Bool(false),
            (Value::Bool(true), Value::Bool(true)) => Value::Bool(true),
            _ => Value::Null,
        },
        Expr::Or(a, b) => match (eval(a, row), eval(b, row)) {
            (Value::Bool(true), _) | (_, Value::Bool(true)) => Value::Bool(true),
            (Value::Bool(false), Value::Bool(false)) => Value::Bool(false),
            _ => Value::Null,
        },
        Expr::Not(a) => match eval(a, row) {
            Value::Bool(b) => Value::Bool(!b),
            _ => Value::Null,
        },
        Expr::IsNull(a) => Value::Bool(eval(a, row).is_null()),
        Expr::In { expr, list, negated } => {
            let v = eval(expr, row);
            if v.is_null() {
                return Value::Null;
            }
            let mut saw_null = false;
            for item in list {
                let item = eval(item, row);
                match compare(&v, &item) {
                    Some(Ordering::Equal) => return Value::Bool(!negated),
                    None => saw_null = true,
                    _ => {}
                }
            }
            if saw_null { Value::Null } else { Value::Bool(*negated) }
        }
        Expr::Like { expr, pattern, negated } => match (eval(expr, row), eval(pattern, row)) {
            (Value::String(s), Value::String(p)) => Value::Bool(like(&s, &p) != *negated),
            _ => Value::Null,
        },
    }
}

/// SQL comparison of two values; `None` when either is NULL or they are not comparable.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        // Large integers and decimals may arrive as strings; compare them numerically.
        (Value::String(s), Value::Number(n)) => s.parse::<f64>().ok()?.partial_cmp(&n.as_f64()?),
        (Value::Number(n), Value::String(s)) => n.as_f64()?.partial_cmp(&s.parse::<f64>().ok()?),
        _ => None,
    }
}

/// Total order for ORDER BY: NULLs last ascending, first descending (like PostgreSQL).
fn order_values(a: &Value, b: &Value, descending: bool) -> Ordering {
    let ord = match (a.is_null(), b.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => compare(a, b).unwrap_or_else(|| a.to_string().cmp(&b.to_string())),
    };
    if descending { ord.reverse() } else { ord }
}

/// `LIKE` matching with `%` (any run) and `_` (one character); backtracking over `%` only.
fn like(s: &str, pattern: &str) -> bool {
    let s: Vec<char> = s.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let (mut si, mut pi) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == s[si]) && p[pi] != '%' {
            si += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows() -> (Vec<String>, Vec<Row>) {
        let cols = vec!["id".to_string(), "title".to_string(), "done".to_string(), "prio".to_string()];
        let data = [
            json!({"id": 1, "title": "buy milk", "done": false, "prio": 2}),
            json!({"id": 2, "title": "walk dog", "done": true, "prio": null}),
            json!({"id": 3, "title": "buy bread", "done": false, "prio": 5}),
            json!({"id": 4, "title": "Write it's", "done": true, "prio": 1}),
        ];
        (cols, data.into_iter().map(|v| v.as_object().unwrap().clone()).collect())
    }

    fn ids(sql: &str, params: &[Value]) -> Vec<i64> {
        let (cols, data) = rows();
        let q = parse(sql, params).unwrap();
        let rs = q.run(&cols, data.iter()).unwrap();
        let idx = rs.columns.iter().position(|c| c == "id").unwrap();
        rs.rows.iter().map(|r| r[idx].as_i64().unwrap()).collect()
    }

    #[test]
    fn filters_with_sql_null_semantics() {
        assert_eq!(ids("SELECT * FROM app.todos WHERE done = false", &[]), vec![1, 3]);
        assert_eq!(ids("SELECT * FROM app.todos WHERE prio > 1", &[]), vec![1, 3]);
        assert_eq!(ids("SELECT * FROM app.todos WHERE NOT prio > 1", &[]), vec![4]);
        assert_eq!(ids("SELECT * FROM app.todos WHERE prio IS NULL", &[]), vec![2]);
        assert_eq!(ids("SELECT * FROM app.todos WHERE prio IS NOT NULL AND done", &[]), vec![4]);
        assert_eq!(ids("SELECT * FROM app.todos WHERE id IN (1, 4, 9)", &[]), vec![1, 4]);
        assert_eq!(ids("SELECT * FROM app.todos WHERE id NOT IN (1, 4)", &[]), vec![2, 3]);
        assert_eq!(ids("select id from app.todos where title like 'buy%'", &[]), vec![1, 3]);
        assert_eq!(ids("SELECT id FROM app.todos WHERE title LIKE '_alk%'", &[]), vec![2]);
        assert_eq!(ids("SELECT id FROM app.todos WHERE title = 'Write it''s'", &[]), vec![4]);
        assert_eq!(ids("SELECT id FROM app.todos WHERE prio BETWEEN 2 AND 5 OR id = 2", &[]), vec![1, 2, 3]);
        assert_eq!(ids("SELECT id FROM app.todos WHERE (id = 1 OR id = 2) AND done = $1", &[json!(true)]), vec![2]);
        assert_eq!(ids("SELECT id FROM app.todos WHERE id >= ? AND id < ?", &[json!(2), json!(4)]), vec![2, 3]);
    }

    #[test]
    fn orders_limits_and_projects() {
        assert_eq!(ids("SELECT id FROM app.todos ORDER BY prio", &[]), vec![4, 1, 3, 2]);
        assert_eq!(ids("SELECT id FROM app.todos ORDER BY prio DESC", &[]), vec![2, 3, 1, 4]);
        assert_eq!(ids("SELECT id FROM app.todos ORDER BY done ASC, id DESC LIMIT 3", &[]), vec![3, 1, 4]);
        assert_eq!(ids("SELECT id FROM app.todos ORDER BY id LIMIT 2 OFFSET 1", &[]), vec![2, 3]);
        let (cols, data) = rows();
        let rs = parse("SELECT title, id FROM todos WHERE id = 1", &[]).unwrap().run(&cols, data.iter()).unwrap();
        assert_eq!(rs.columns, vec!["title", "id"]);
        assert_eq!(rs.rows, vec![vec![json!("buy milk"), json!(1)]]);
        assert_eq!(rs.to_objects()[0]["title"], json!("buy milk"));
    }

    #[test]
    fn rejects_what_it_cannot_run() {
        let (cols, data) = rows();
        for bad in [
            "SELECT",
            "SELECT * FROM",
            "SELECT * FROM t WHERE",
            "SELECT * FROM t WHERE id = 'x",
            "SELECT * FROM t JOIN u",
            "SELECT * FROM t WHERE id = $2",
            "SELECT * FROM t LIMIT -1",
            "SELECT * FROM t WHERE id NOT = 1",
            "DELETE FROM t",
        ] {
            assert!(matches!(parse(bad, &[json!(1)]), Err(QueryError::Syntax(_))), "{bad}");
        }
        let q = parse("SELECT nope FROM t", &[]).unwrap();
        assert!(matches!(q.run(&cols, data.iter()), Err(QueryError::UnknownColumn { .. })));
    }

    #[test]
    fn like_handles_runs_and_unicode() {
        assert!(like("héllo wörld", "h_llo%d"));
        assert!(like("abc", "%"));
        assert!(like("", "%"));
        assert!(!like("abc", "a_"));
        assert!(like("aXbXc", "%X%c"));
        assert!(!like("abc", "ABC"));
    }
}
