//! Differential test of the query language: generated SELECTs over generated data, run through
//! the real server (DataFusion) over HTTP and through `kalamdb-query` (the client's engine) over
//! the same rows in memory, must return the same rows — in the same order where the ORDER BY is
//! total, as multisets otherwise. Both sides failing counts as agreement (the messages are not
//! compared; the first few are printed). Every difference is collected; the test fails at the
//! end listing the first ten.
//!
//! Values are read by kalamdb-query's column types and compared typed: integers exactly (BIGINT
//! beyond 2^53 included: JSON numbers are read as `i64`), decimals as their exact text at the
//! column's scale (`"1.50"`, so a scale difference shows), timestamps as microseconds, floats
//! within 4 ulps, float aggregates within 1e-12 relative (see [`ulps_for`]). The column types
//! the server's schema names are compared too.
//!
//! The generator follows `query/difftest/gen.py` and steers around what DataFusion 55 or the
//! server gets wrong, as listed in `query/difftest/README.md`:
//! - every output column has an alias (DataFusion rejects two equal generated names), and no
//!   two GROUP BY keys or aggregates are equal but for a CAST (see [`cast_free`]);
//! - `round` on a decimal only as a whole select item (nested, its logical and physical scales
//!   differ in DataFusion);
//! - no `CAST(decimal AS integer)` (DataFusion's unwrap-cast compares the decimal instead);
//! - no special floats: float division only by non-zero literals, no float `%`;
//! - no integer divisor that may be 0 (DataFusion filters below joins, so it alone may fail);
//! - no values beyond 2^53 in float sums and averages (see [`BIG_COLUMNS`]);
//! - no integer literal alone in GROUP BY (an ordinal);
//! - no `count(DISTINCT x)` over doubles (grouped, DataFusion counts -0.0 and 0.0 apart);
//! - no `LIMIT 0` (DataFusion evaluates nothing then, so a failing expression fails only here);
//! - no extra ON condition on the left table of a LEFT JOIN (a wrong result in DataFusion).
//!
//! To explore locally: `KALAMDB_DIFF_SEED` and `KALAMDB_DIFF_QUERIES` override the seed and the
//! number of queries (CI runs the defaults); `KALAMDB_DIFF_SQL` runs one query on both sides and
//! prints the two results (with `-- --nocapture`).

use crate::common::*;
use kalamdb_query::value::{format_decimal, format_timestamp, parse_date, parse_decimal, parse_timestamp};
use kalamdb_query::{ColumnDef, DataType, MemoryTables, Value};
use serde_json::{Value as Json, json};
use std::cmp::Ordering;
use std::time::Instant;

const DEFAULT_SEED: u64 = 0x6b61_6c61_6d64_6231;
const DEFAULT_QUERIES: usize = 400;

/// SplitMix64: small, seeded, the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())].clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Data

/// One table: SQL column types, the engine's column definitions and the rows.
struct Table {
    name: &'static str,
    columns: Vec<(&'static str, &'static str, DataType, bool)>,
    rows: Vec<Vec<Value>>,
}

fn dec2(text: &str) -> Value {
    Value::decimal(parse_decimal(text, 2).unwrap(), 2)
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

/// `v` with probability `1 - p_null`, else NULL.
fn maybe(rng: &mut Rng, p_null: f64, v: Value) -> Value {
    if rng.chance(p_null) { Value::Null } else { v }
}

const TWO_53: i64 = 1 << 53;

fn generate_tables(rng: &mut Rng) -> Vec<Table> {
    use DataType::*;
    let dec = Decimal { precision: 10, scale: 2 };
    let user_names = ["ann", "bob", "cid", "dee", "Eve", "zoë"];
    let users = Table {
        name: "users",
        columns: vec![
            ("name", "TEXT PRIMARY KEY", Text, false),
            ("active", "BOOLEAN", Boolean, true),
            ("joined", "TIMESTAMP", Timestamp, true),
            ("credit", "DECIMAL(10,2)", dec, true),
        ],
        rows: user_names
            .iter()
            .map(|n| {
                let active = Value::Boolean(rng.chance(0.6));
                let joined = Value::Timestamp(timestamp(rng));
                let credit = dec_value(rng);
                vec![text(n), maybe(rng, 0.2, active), maybe(rng, 0.2, joined), maybe(rng, 0.2, credit)]
            })
            .collect(),
    };

    // List ids: small ones and ones beyond 2^53 that differ only past a double's precision.
    let list_ids = [1, 2, 3, 4, 5, 6, 7, TWO_53 + 1, TWO_53 + 2, -(TWO_53 + 3)];
    let list_names = ["Home", "Work", "Errands", "home", "Garden", "Books", "Trip ", "Misc", "Äpfel", "a_b%"];
    let mut owners: Vec<&str> = user_names.to_vec();
    owners.push("zed");
    let lists = Table {
        name: "lists",
        columns: vec![
            ("id", "BIGINT PRIMARY KEY", BigInt, false),
            ("name", "TEXT NOT NULL", Text, false),
            ("owner", "TEXT", Text, true),
            ("budget", "DECIMAL(10,2)", dec, true),
            ("rank", "SMALLINT", SmallInt, true),
        ],
        rows: list_ids
            .iter()
            .zip(list_names)
            .map(|(id, name)| {
                let owner = text(rng.pick(&owners));
                let budget = dec_value(rng);
                let rank = Value::Int64(rng.range(-3, 9));
                vec![
                    Value::Int64(*id),
                    text(name),
                    maybe(rng, 0.2, owner),
                    maybe(rng, 0.2, budget),
                    maybe(rng, 0.2, rank),
                ]
            })
            .collect(),
    };

    let titles = ["milk", "bread", "report", "email", "Milk", "call mom", "taxes", "", "read", "éclair", "50% off"];
    let todos = Table {
        name: "todos",
        columns: vec![
            ("id", "BIGINT PRIMARY KEY", BigInt, false),
            ("list_id", "BIGINT", BigInt, true),
            ("title", "TEXT NOT NULL", Text, false),
            ("done", "BOOLEAN", Boolean, true),
            ("price", "DECIMAL(10,2)", dec, true),
            ("qty", "INT", Int, true),
            ("score", "DOUBLE", Double, true),
            ("created", "TIMESTAMP", Timestamp, true),
            ("prio", "SMALLINT", SmallInt, true),
            ("big", "BIGINT", BigInt, true),
        ],
        rows: (1..=60)
            .map(|id| {
                let list = if rng.chance(0.1) { 99 } else { rng.pick(&list_ids) };
                let done = Value::Boolean(rng.chance(0.4));
                let price = dec_value(rng);
                let qty = Value::Int64(rng.range(-3, 20));
                // Multiples of 1/8: sums of these are exact in any order.
                let score = Value::Float64(rng.range(-80, 80) as f64 / 8.0);
                let created = Value::Timestamp(timestamp(rng));
                let prio = Value::Int64(rng.range(-2, 5));
                let big = Value::Int64(match rng.below(4) {
                    0 => TWO_53 + rng.range(-3, 3),
                    1 => -(1 << 55) + rng.range(0, 5),
                    2 => (1 << 56) - rng.range(0, 5),
                    _ => rng.range(-1000, 1000),
                });
                vec![
                    Value::Int64(id),
                    maybe(rng, 0.1, Value::Int64(list)),
                    text(rng.pick(&titles)),
                    maybe(rng, 0.15, done),
                    maybe(rng, 0.15, price),
                    maybe(rng, 0.15, qty),
                    maybe(rng, 0.15, score),
                    maybe(rng, 0.1, created),
                    maybe(rng, 0.2, prio),
                    maybe(rng, 0.15, big),
                ]
            })
            .collect(),
    };

    let labels = ["urgent", "home", "later", "Urgent", "x", "wait"];
    let tags = Table {
        name: "tags",
        columns: vec![
            ("id", "INT PRIMARY KEY", Int, false),
            ("todo_id", "BIGINT", BigInt, true),
            ("label", "TEXT", Text, true),
            ("weight", "DOUBLE", Double, true),
            ("added", "TIMESTAMP", Timestamp, true),
        ],
        rows: (1..=45)
            .map(|id| {
                let todo = Value::Int64(rng.range(1, 70));
                let label = text(rng.pick(&labels));
                let weight = Value::Float64(rng.range(0, 40) as f64 / 4.0);
                let added = Value::Timestamp(timestamp(rng));
                vec![
                    Value::Int64(id),
                    maybe(rng, 0.1, todo),
                    maybe(rng, 0.15, label),
                    maybe(rng, 0.15, weight),
                    maybe(rng, 0.15, added),
                ]
            })
            .collect(),
    };
    vec![users, lists, todos, tags]
}

/// A DECIMAL(10,2) from a small pool (so groups repeat) or anywhere in range.
fn dec_value(rng: &mut Rng) -> Value {
    const POOL: [&str; 10] = ["9.00", "10.00", "0.50", "2.25", "-1.25", "0.00", "99999.99", "0.01", "10.05", "-0.10"];
    if rng.chance(0.6) { dec2(rng.pick(&POOL)) } else { Value::decimal(rng.range(-500_000, 5_000_000) as i128, 2) }
}

/// A timestamp between November 2023 and early 2025: some at midnight, some with milli- or
/// microseconds.
fn timestamp(rng: &mut Rng) -> i64 {
    const POOL: [&str; 4] =
        ["2024-03-16 00:00:00", "2024-03-15 10:20:30", "2024-01-01 00:00:00", "2023-12-31 23:59:59.999999"];
    if rng.chance(0.25) {
        return parse_timestamp(rng.pick(&POOL)).unwrap();
    }
    let base = parse_timestamp("2023-11-01 00:00:00").unwrap();
    let secs = rng.range(0, 450 * 86_400);
    let frac = match rng.below(3) {
        0 => 0,
        1 => rng.range(0, 999) * 1000,
        _ => rng.range(0, 999_999),
    };
    base + secs * 1_000_000 + frac
}

/// A value as a SQL literal for an INSERT into a column of type `ty`.
fn literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Boolean(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        Value::Int64(i) => i.to_string(),
        Value::Float64(f) => format!("{f:?}"),
        Value::Decimal(d) => format!("'{}'", format_decimal(d.value, d.scale)),
        Value::Text(s) => format!("'{}'", s.replace('\'', "''")),
        Value::Timestamp(t) => format!("'{}'", format_timestamp(*t)),
        other => panic!("no literal for {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Queries

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ty {
    Int,
    Dec,
    Dbl,
    Text,
    Bool,
    Ts,
}

/// Columns by table alias and type.
const COLUMNS: &[(char, Ty, &str)] = &[
    ('t', Ty::Int, "t.id"),
    ('t', Ty::Int, "t.list_id"),
    ('t', Ty::Int, "t.qty"),
    ('t', Ty::Int, "t.prio"),
    ('t', Ty::Int, "t.big"),
    ('t', Ty::Dec, "t.price"),
    ('t', Ty::Dbl, "t.score"),
    ('t', Ty::Text, "t.title"),
    ('t', Ty::Bool, "t.done"),
    ('t', Ty::Ts, "t.created"),
    ('l', Ty::Int, "l.id"),
    ('l', Ty::Int, "l.rank"),
    ('l', Ty::Dec, "l.budget"),
    ('l', Ty::Text, "l.name"),
    ('l', Ty::Text, "l.owner"),
    ('g', Ty::Int, "g.id"),
    ('g', Ty::Int, "g.todo_id"),
    ('g', Ty::Dbl, "g.weight"),
    ('g', Ty::Text, "g.label"),
    ('g', Ty::Ts, "g.added"),
    ('u', Ty::Text, "u.name"),
    ('u', Ty::Bool, "u.active"),
    ('u', Ty::Ts, "u.joined"),
    ('u', Ty::Dec, "u.credit"),
];

/// One generated query.
struct Query {
    sql: String,
    params: Vec<Value>,
    /// Whether ORDER BY fixes the order of the rows (then the order is compared).
    ordered: bool,
}

struct Gen {
    rng: Rng,
    /// Table aliases in scope.
    aliases: Vec<char>,
    params: Vec<Value>,
    /// Leave out the columns with values beyond 2^53 (see [`BIG_COLUMNS`]).
    small: bool,
}

/// Columns holding integers beyond 2^53. Float sums and averages of them differ in the last
/// places: DataFusion adds the doubles one by one (`avg` over BIGINT too), kalamdb-query sums
/// exactly and rounds once (e.g. avg of 9007199254741002, 4, 1, -9007199254740987 is 5 here
/// and 5.25 there). So `avg` and float `sum` arguments leave them out.
const BIG_COLUMNS: [&str; 3] = ["t.big", "l.id", "t.list_id"];

impl Gen {
    fn cols(&self, ty: Ty) -> Vec<&'static str> {
        COLUMNS
            .iter()
            .filter(|(a, t, c)| *t == ty && self.aliases.contains(a) && !(self.small && BIG_COLUMNS.contains(c)))
            .map(|(_, _, c)| *c)
            .collect()
    }

    /// A column of `ty` in scope, or `fallback`.
    fn col_or(&mut self, ty: Ty, fallback: &str) -> String {
        let cols = self.cols(ty);
        if cols.is_empty() { fallback.to_string() } else { self.rng.pick(&cols).to_string() }
    }

    fn leaf(&mut self, ty: Ty, literals: &[&str]) -> String {
        let mut options: Vec<String> = self.cols(ty).iter().map(|c| c.to_string()).collect();
        options.extend(literals.iter().map(|l| l.to_string()));
        self.rng.pick(&options)
    }

    fn param(&mut self, v: Value) -> String {
        self.params.push(v);
        format!("${}", self.params.len())
    }

    fn expr(&mut self, ty: Ty, d: u32) -> String {
        let leaf = d == 0 || self.rng.chance(0.3);
        let r = &mut self.rng;
        match ty {
            Ty::Int => {
                if leaf {
                    return self.leaf(ty, &["1", "2", "-3", "0", "10", "7"]);
                }
                match r.below(9) {
                    0 => {
                        let op = r.pick(&["+", "-", "*"]);
                        format!("({} {op} {})", self.expr(Ty::Int, d - 1), self.expr(Ty::Int, d - 1))
                    }
                    1 => {
                        let op = self.rng.pick(&["/", "%"]);
                        // Never a divisor that may be 0: DataFusion may evaluate a WHERE on rows
                        // that a join drops later (filter pushdown), so only it would fail.
                        let rhs = match self.rng.below(5) {
                            0 => format!("(abs({}) + 1)", self.expr(Ty::Int, d - 1)),
                            k => ["2", "3", "-4", "7"][k - 1].to_string(),
                        };
                        format!("({} {op} {rhs})", self.expr(Ty::Int, d - 1))
                    }
                    2 => format!("abs({})", self.expr(Ty::Int, d - 1)),
                    3 => format!("length({})", self.expr(Ty::Text, d - 1)),
                    4 => format!("coalesce({}, {})", self.expr(Ty::Int, d - 1), self.expr(Ty::Int, d - 1)),
                    5 => format!("(7 - {})", self.expr(Ty::Int, d - 1)),
                    6 => format!("round({}, -1)", self.expr(Ty::Int, d - 1)),
                    7 => format!("-{}", self.col_or(Ty::Int, "5")),
                    _ => format!("CAST({} AS BIGINT)", self.expr(Ty::Dbl, d - 1)),
                }
            }
            Ty::Dec => {
                if leaf {
                    return self.leaf(ty, &["CAST('1.25' AS DECIMAL(5,2))", "CAST('-0.5' AS DECIMAL(3,1))"]);
                }
                match r.below(6) {
                    0 => {
                        let op = r.pick(&["+", "-"]);
                        let rhs =
                            if self.rng.chance(0.5) { self.expr(Ty::Dec, d - 1) } else { self.expr(Ty::Int, d - 1) };
                        format!("({} {op} {rhs})", self.expr(Ty::Dec, d - 1))
                    }
                    1 => {
                        let rhs = match self.rng.below(4) {
                            0 => "2".to_string(),
                            1 => "-1".to_string(),
                            2 => self.col_or(Ty::Int, "3"),
                            _ => self.expr(Ty::Dec, 0),
                        };
                        format!("({} * {rhs})", self.expr(Ty::Dec, d - 1))
                    }
                    2 => {
                        let rhs = self.rng.pick(&["3", "7", "-2", "CAST('1.5' AS DECIMAL(3,1))"]);
                        format!("({} / {rhs})", self.expr(Ty::Dec, d - 1))
                    }
                    3 => format!("abs({})", self.expr(Ty::Dec, d - 1)),
                    4 => format!("coalesce({}, 0)", self.expr(Ty::Dec, d - 1)),
                    _ => format!("CAST({} AS DECIMAL(20,2))", self.expr(Ty::Int, d - 1)),
                }
            }
            Ty::Dbl => {
                if leaf {
                    return self.leaf(ty, &["1.5", "-0.25", "2.0", "0.1", "CAST(2 AS DOUBLE)"]);
                }
                match r.below(7) {
                    0 => {
                        let op = r.pick(&["+", "-", "*"]);
                        let rhs =
                            if self.rng.chance(0.5) { self.expr(Ty::Dbl, d - 1) } else { self.expr(Ty::Int, d - 1) };
                        format!("({} {op} {rhs})", self.expr(Ty::Dbl, d - 1))
                    }
                    // Division only by non-zero literals: no inf or NaN (see the module comment).
                    1 => {
                        let rhs = r.pick(&["2.0", "4", "-0.5", "3"]);
                        format!("({} / {rhs})", self.expr(Ty::Dbl, d - 1))
                    }
                    2 => {
                        let n = r.pick(&["0", "1", "2"]);
                        format!("round({}, {n})", self.expr(Ty::Dbl, d - 1))
                    }
                    3 => {
                        let k = r.pick(&["1.5", "0.1"]);
                        format!("({} * {k})", self.expr(Ty::Dec, d - 1))
                    }
                    4 => format!("abs({})", self.expr(Ty::Dbl, d - 1)),
                    5 => format!("CAST({} AS DOUBLE)", self.expr(Ty::Int, d - 1)),
                    _ => format!("CAST({} AS DOUBLE)", self.expr(Ty::Dec, d - 1)),
                }
            }
            Ty::Text => {
                if leaf {
                    return self.leaf(ty, &["'milk'", "'a'", "'Home'", "''"]);
                }
                match r.below(7) {
                    0 => format!("lower({})", self.expr(Ty::Text, d - 1)),
                    1 => format!("upper({})", self.expr(Ty::Text, d - 1)),
                    2 | 3 => {
                        let rhs = match self.rng.below(3) {
                            0 => self.expr(Ty::Text, d - 1),
                            1 => self.expr(Ty::Int, d - 1),
                            _ => self.expr(Ty::Dec, d - 1),
                        };
                        format!("({} || {rhs})", self.expr(Ty::Text, d - 1))
                    }
                    4 => format!("coalesce({}, {})", self.expr(Ty::Text, d - 1), self.expr(Ty::Text, d - 1)),
                    5 => format!("CAST({} AS TEXT)", self.expr(Ty::Int, d - 1)),
                    _ => format!("CAST({} AS TEXT)", self.expr(Ty::Ts, d - 1)),
                }
            }
            Ty::Ts => {
                if leaf {
                    return self.leaf(ty, &["TIMESTAMP '2024-03-15 12:00:00'"]);
                }
                let unit = r.pick(&["day", "month", "week", "hour", "year", "minute"]);
                format!("date_trunc('{unit}', {})", self.expr(Ty::Ts, d - 1))
            }
            Ty::Bool => {
                if leaf {
                    return self.leaf(ty, &["TRUE", "FALSE", "NULL"]);
                }
                // Mostly parenthesised, so most conditions type-check; bare ones test that both
                // sides parse NOT, IS, LIKE and comparisons with the same precedence.
                let paren = r.chance(0.7);
                let e = self.condition(d);
                if paren { format!("({e})") } else { e }
            }
        }
    }

    /// A condition at depth `d` > 0.
    fn condition(&mut self, d: u32) -> String {
        let r = &mut self.rng;
        match r.below(11) {
            0 => {
                let op = r.pick(&["AND", "OR"]);
                format!("({} {op} {})", self.expr(Ty::Bool, d - 1), self.expr(Ty::Bool, d - 1))
            }
            1 => format!("NOT {}", self.expr(Ty::Bool, d - 1)),
            2 | 3 => {
                let t = r.pick(&[Ty::Int, Ty::Dec, Ty::Text, Ty::Ts, Ty::Dbl, Ty::Int, Ty::Bool]);
                let op = self.rng.pick(&["=", "<>", "<", "<=", ">", ">="]);
                format!("{} {op} {}", self.expr(t, d - 1), self.expr(t, d - 1))
            }
            4 => {
                let t = r.pick(&[Ty::Int, Ty::Text, Ty::Dec, Ty::Ts, Ty::Bool]);
                let not = self.rng.pick(&["", "NOT "]);
                format!("{} IS {not}NULL", self.expr(t, d - 1))
            }
            5 => {
                let not = r.pick(&["", "NOT "]);
                let n = r.below(3) + 1;
                let null = r.pick(&["", ", NULL"]);
                let lhs = self.expr(Ty::Int, d - 1);
                let items: Vec<String> = (0..n).map(|_| self.expr(Ty::Int, 0)).collect();
                format!("{lhs} {not}IN ({}{null})", items.join(", "))
            }
            6 => {
                let not = r.pick(&["", "NOT "]);
                format!(
                    "{} {not}BETWEEN {} AND {}",
                    self.expr(Ty::Int, d - 1),
                    self.expr(Ty::Int, 0),
                    self.expr(Ty::Int, 0)
                )
            }
            7 => {
                let pat = r.pick(&["%e%", "m%", "_a%", "%", "H___", "%K", "%\\%%", "a\\_b%"]);
                let op = r.pick(&["LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"]);
                format!("{} {op} '{pat}'", self.expr(Ty::Text, d - 1))
            }
            8 => {
                let col = self.col_or(Ty::Dec, "CAST('2.25' AS DECIMAL(4,2))");
                let op = self.rng.pick(&[">", "<", "=", ">="]);
                let lit = self.rng.pick(&["9.5", "10", "2.25", "'10.00'", "-0.1", "0"]);
                format!("{col} {op} {lit}")
            }
            9 => {
                let col = self.col_or(Ty::Ts, "TIMESTAMP '2024-02-01 00:00:00'");
                let op = self.rng.pick(&[">=", "<", "=", ">"]);
                let lit = self.rng.pick(&["2024-03-16", "2024-03-15 10:20:30", "2024-01-01", "2024-06-30T12:00:00Z"]);
                format!("{col} {op} '{lit}'")
            }
            _ => self.param_condition(),
        }
    }

    /// A condition with a parameter: an integer, a text, a timestamp as text, a decimal as text.
    fn param_condition(&mut self) -> String {
        match self.rng.below(4) {
            0 => {
                let lhs = self.expr(Ty::Int, 1);
                let op = self.rng.pick(&["=", "<", ">=", "<>"]);
                let v = self.rng.pick(&[0, 2, 5, -1, TWO_53 + 1]);
                let p = self.param(Value::Int64(v));
                format!("{lhs} {op} {p}")
            }
            1 => {
                let lhs = self.expr(Ty::Text, 1);
                let op = self.rng.pick(&["=", "<>", ">", "LIKE"]);
                let v = self.rng.pick(&["milk", "Home", "m%", "ann", ""]);
                let p = self.param(text(v));
                format!("{lhs} {op} {p}")
            }
            2 => {
                let lhs = self.col_or(Ty::Ts, "TIMESTAMP '2024-02-01 00:00:00'");
                let op = self.rng.pick(&[">=", "<"]);
                let v = self.rng.pick(&["2024-03-16", "2024-06-01 08:00:00", "2024-01-01T00:00:00Z"]);
                let p = self.param(text(v));
                format!("{lhs} {op} {p}")
            }
            _ => {
                let lhs = self.col_or(Ty::Dec, "CAST('2.25' AS DECIMAL(4,2))");
                let op = self.rng.pick(&[">=", "<", "="]);
                let v = self.rng.pick(&["10.00", "0.5", "9", "-1.25"]);
                let p = self.param(text(v));
                format!("{lhs} {op} {p}")
            }
        }
    }

    /// FROM clause: sets the aliases in scope; returns the clause and the columns that identify
    /// a row of the join (for a total ORDER BY over non-output columns).
    fn from(&mut self) -> (String, Vec<&'static str>) {
        let kind =
            self.rng.pick(&["join", "join", "left", "left", "todos", "todos", "users", "tags", "lists", "chain"]);
        self.aliases.clear();
        match kind {
            "todos" => {
                self.aliases.push('t');
                ("app.todos t".into(), vec!["t.id"])
            }
            "join" | "left" | "users" => {
                self.aliases.extend(['t', 'l']);
                let join = if kind == "join" || self.rng.chance(0.3) { "JOIN" } else { "LEFT JOIN" };
                // Extra ON conditions only in INNER joins: DataFusion 55 drops every row of
                // `t LEFT JOIN l ON t.list_id = l.id AND 2 = t.list_id WHERE lower(l.name) > 'a'`
                // (see query/difftest/README.md).
                let extra = if join == "JOIN" && self.rng.chance(0.35) {
                    format!(" AND {}", self.expr(Ty::Bool, 1))
                } else {
                    String::new()
                };
                let mut sql = format!("app.todos t {join} app.lists l ON t.list_id = l.id{extra}");
                if kind == "users" {
                    self.aliases.push('u');
                    let join = self.rng.pick(&["JOIN", "LEFT JOIN"]);
                    sql.push_str(&format!(" {join} app.users u ON l.owner = u.name"));
                }
                (sql, vec!["t.id"])
            }
            "tags" => {
                self.aliases.extend(['t', 'g']);
                let join = self.rng.pick(&["JOIN", "LEFT JOIN"]);
                (format!("app.todos t {join} app.tags g ON g.todo_id = t.id"), vec!["t.id", "g.id"])
            }
            "lists" => {
                self.aliases.extend(['l', 't']);
                let extra = if self.rng.chance(0.3) { " AND NOT t.done" } else { "" };
                (format!("app.lists l LEFT JOIN app.todos t ON t.list_id = l.id{extra}"), vec!["l.id", "t.id"])
            }
            _ => {
                self.aliases.extend(['g', 't', 'l']);
                let join = self.rng.pick(&["JOIN", "LEFT JOIN"]);
                (
                    format!("app.tags g JOIN app.todos t ON g.todo_id = t.id {join} app.lists l ON l.id = t.list_id"),
                    vec!["g.id"],
                )
            }
        }
    }

    /// A select item of type `ty` (never a bare NULL: its column type is not `ty`).
    fn item(&mut self, ty: Ty) -> String {
        for _ in 0..8 {
            let e = if ty == Ty::Dec && self.rng.chance(0.1) {
                // round on a decimal only at the top (see the module comment).
                format!(
                    "round({}, {})",
                    self.col_or(Ty::Dec, "CAST('2.25' AS DECIMAL(4,2))"),
                    self.rng.pick(&["0", "1"])
                )
            } else {
                self.expr(ty, 2)
            };
            if e != "NULL" {
                return e;
            }
        }
        "TRUE".into()
    }

    fn aggregate(&mut self) -> String {
        let f = self.rng.pick(&[
            "count(*)",
            "count",
            "sum",
            "avg",
            "min",
            "max",
            "count(DISTINCT",
            "sum(DISTINCT",
            "min",
            "max",
        ]);
        if f == "count(*)" {
            return f.into();
        }
        let ty = if f.starts_with("sum") || f.starts_with("avg") {
            self.rng.pick(&[Ty::Int, Ty::Dec, Ty::Dbl])
        } else {
            self.rng.pick(&[Ty::Int, Ty::Dec, Ty::Text, Ty::Ts, Ty::Dbl])
        };
        // Grouped count(DISTINCT) over doubles counts -0.0 and 0.0 apart in DataFusion (and
        // round(-0.4, 0) is -0.0): not over doubles.
        let ty = if f == "count(DISTINCT" && ty == Ty::Dbl { Ty::Int } else { ty };
        self.small = f.starts_with("avg") || (f.starts_with("sum") && ty == Ty::Dbl);
        let arg = self.expr(ty, 1);
        self.small = false;
        if f.ends_with("DISTINCT") { format!("{f} {arg})") } else { format!("{f}({arg})") }
    }

    /// One to three aggregates, no two equal but for a CAST (see [`cast_free`]).
    fn aggregates(&mut self) -> Vec<String> {
        let mut aggs: Vec<String> = Vec::new();
        for _ in 0..self.rng.below(3) + 1 {
            let a = self.aggregate();
            // DataFusion names count(*) count(Int64(1)), like count(1) and count(CAST(1 AS TEXT)).
            let name = |x: &str| cast_free(&x.replace("count(*)", "count(1)"));
            if !aggs.iter().any(|b| *b != a && name(b) == name(&a)) {
                aggs.push(a);
            }
        }
        aggs
    }

    /// A HAVING condition and the aggregates it uses.
    fn having(&mut self) -> (String, Vec<String>) {
        let one = |g: &mut Gen| -> (String, String) {
            let (agg, rest) = match g.rng.below(5) {
                0 => (
                    "count(*)".to_string(),
                    format!("{} {}", g.rng.pick(&[">", ">=", "<"]), g.rng.pick(&["0", "1", "2"])),
                ),
                1 => (format!("sum({})", g.expr(Ty::Int, 1)), format!("> {}", g.rng.pick(&["0", "10", "-5"]))),
                2 => {
                    let c = g.col_or(Ty::Dec, "CAST('1.00' AS DECIMAL(3,2))");
                    (format!("max({c})"), format!(">= {}", g.rng.pick(&["10", "0.5"])))
                }
                3 => {
                    let c = g.col_or(Ty::Ts, "TIMESTAMP '2024-01-01 00:00:00'");
                    (format!("min({c})"), "< '2024-03-16'".to_string())
                }
                _ => (format!("count(DISTINCT {})", g.expr(Ty::Text, 1)), "> 1".to_string()),
            };
            (format!("{agg} {rest}"), agg)
        };
        let (a, agg_a) = one(self);
        if self.rng.chance(0.2) {
            let (b, agg_b) = one(self);
            (format!("{a} {} {b}", self.rng.pick(&["AND", "OR"])), vec![agg_a, agg_b])
        } else {
            (a, vec![agg_a])
        }
    }

    fn query(&mut self) -> Query {
        self.params.clear();
        let (from, key) = self.from();
        let filter = if self.rng.chance(0.6) { format!(" WHERE {}", self.expr(Ty::Bool, 2)) } else { String::new() };
        let all = [Ty::Int, Ty::Dec, Ty::Text, Ty::Ts, Ty::Dbl, Ty::Bool];
        let (sql, ordered) = match self.rng.below(10) {
            // Projection, ordered by every output column, maybe DISTINCT, LIMIT/OFFSET.
            0..=2 => {
                let n = self.rng.below(3) + 1;
                let items: Vec<String> = (0..n)
                    .map(|i| {
                        let ty = self.rng.pick(&all);
                        format!("{} AS c{i}", self.item(ty))
                    })
                    .collect();
                let distinct = if self.rng.chance(0.2) { "DISTINCT " } else { "" };
                if self.rng.chance(0.2) {
                    (format!("SELECT {distinct}{} FROM {from}{filter}", items.join(", ")), false)
                } else {
                    // By ordinal or by output alias.
                    let order: Vec<String> = (1..=n)
                        .map(|i| {
                            let key = if self.rng.chance(0.3) { format!("c{}", i - 1) } else { i.to_string() };
                            format!("{key}{}", self.rng.pick(&["", " DESC", " NULLS FIRST", " DESC NULLS LAST"]))
                        })
                        .collect();
                    let limit = self.rng.pick(&["", "", " LIMIT 3", " LIMIT 5 OFFSET 2", " OFFSET 4"]);
                    (
                        format!(
                            "SELECT {distinct}{} FROM {from}{filter} ORDER BY {}{limit}",
                            items.join(", "),
                            order.join(", ")
                        ),
                        true,
                    )
                }
            }
            // Projection ordered by the columns that identify a joined row, with LIMIT.
            3 => {
                let n = self.rng.below(3) + 1;
                let items: Vec<String> = (0..n)
                    .map(|i| {
                        let ty = self.rng.pick(&all);
                        format!("{} AS c{i}", self.item(ty))
                    })
                    .collect();
                let dir = self.rng.pick(&["", " DESC"]);
                let order: Vec<String> = key.iter().map(|k| format!("{k}{dir}")).collect();
                let limit = self.rng.pick(&["", " LIMIT 7", " LIMIT 4 OFFSET 3"]);
                (format!("SELECT {} FROM {from}{filter} ORDER BY {}{limit}", items.join(", "), order.join(", ")), true)
            }
            // Aggregates without GROUP BY: one row.
            4 => {
                let aggs: Vec<String> =
                    self.aggregates().iter().enumerate().map(|(i, a)| format!("{a} AS a{i}")).collect();
                (format!("SELECT {} FROM {from}{filter}", aggs.join(", ")), true)
            }
            // GROUP BY one or two keys, aggregates, HAVING, ORDER BY every output column.
            _ => {
                let mut keys: Vec<String> = Vec::new();
                for _ in 0..if self.rng.chance(0.25) { 2 } else { 1 } {
                    let ty = self.rng.pick(&[Ty::Int, Ty::Text, Ty::Bool, Ty::Ts, Ty::Dec]);
                    let mut g = self.item(ty);
                    if g.trim_start_matches('-').chars().all(|c| c.is_ascii_digit()) {
                        g = format!("({g} + 0)"); // a bare integer in GROUP BY is an ordinal
                    }
                    if !keys.iter().any(|k| cast_free(k) == cast_free(&g)) {
                        keys.push(g);
                    }
                }
                let nkeys = keys.len();
                let aggs = self.aggregates();
                let n = aggs.len();
                let agg_items: Vec<String> = aggs.iter().enumerate().map(|(i, a)| format!("{a} AS a{i}")).collect();
                let key_items: Vec<String> = keys.iter().enumerate().map(|(i, k)| format!("{k} AS g{i}")).collect();
                let group_by: Vec<String> = keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| match self.rng.below(6) {
                        0 => format!("g{i}"),
                        1 => format!("{}", i + 1),
                        _ => k.clone(),
                    })
                    .collect();
                let mut having = String::new();
                if self.rng.chance(0.3) {
                    let (cond, used) = self.having();
                    // No HAVING aggregate that collides with a select item's (see `cast_free`).
                    let collides = used.iter().any(|h| aggs.iter().any(|a| a != h && cast_free(a) == cast_free(h)));
                    if !collides {
                        having = format!(" HAVING {cond}");
                    }
                }
                let select = format!(
                    "SELECT {}, {} FROM {from}{filter} GROUP BY {}{having}",
                    key_items.join(", "),
                    agg_items.join(", "),
                    group_by.join(", ")
                );
                if self.rng.chance(0.2) {
                    (select, false)
                } else {
                    let order: Vec<String> = (1..=nkeys + n).map(|i| i.to_string()).collect();
                    let limit = self.rng.pick(&["", "", "", " LIMIT 2"]);
                    (format!("{select} ORDER BY {}{limit}", order.join(", ")), true)
                }
            }
        };
        Query { sql, params: self.params.clone(), ordered }
    }
}

/// `sql` without its CASTs (`CAST(x AS T)` → `x`): the name DataFusion gives an expression
/// ignores casts, so two GROUP BY keys or aggregates equal but for casts collide there ("Schema
/// contains duplicate unqualified field name"), although the select items are aliased.
fn cast_free(sql: &str) -> String {
    let Some(start) = sql.find("CAST(") else { return sql.to_string() };
    let bytes = sql.as_bytes();
    let (mut depth, mut quoted, mut as_at, mut end) = (0, false, None, None);
    for i in start + 4..sql.len() {
        let c = bytes[i];
        if quoted {
            quoted = c != b'\'';
            continue;
        }
        match c {
            b'\'' => quoted = true,
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    end = Some(i);
                    break;
                }
            }
            _ if depth == 1 && sql[i..].starts_with(" AS ") => as_at = Some(i),
            _ => {}
        }
    }
    match (as_at, end) {
        (Some(a), Some(e)) => cast_free(&format!("{}{}{}", &sql[..start], &sql[start + 5..a], &sql[e + 1..])),
        _ => sql.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Comparison

/// A result cell in a form both sides convert to.
#[derive(Clone, Debug)]
enum Cell {
    Null,
    Bool(bool),
    Int(i128),
    /// Decimal text at the column's scale (`"1.50"`): a different scale is a difference.
    Dec(String),
    Float(f64),
    Text(String),
    Ts(i64),
    Date(i32),
}

impl Cell {
    fn rank(&self) -> u8 {
        match self {
            Cell::Null => 0,
            Cell::Bool(_) => 1,
            Cell::Int(_) => 2,
            Cell::Dec(_) => 3,
            Cell::Float(_) => 4,
            Cell::Text(_) => 5,
            Cell::Ts(_) => 6,
            Cell::Date(_) => 7,
        }
    }

    /// A total order, to sort rows compared as multisets.
    fn order(&self, other: &Cell) -> Ordering {
        match (self, other) {
            (Cell::Bool(a), Cell::Bool(b)) => a.cmp(b),
            (Cell::Int(a), Cell::Int(b)) => a.cmp(b),
            (Cell::Dec(a), Cell::Dec(b)) => {
                let (x, y) = (a.parse::<f64>().unwrap_or(0.0), b.parse::<f64>().unwrap_or(0.0));
                x.total_cmp(&y).then_with(|| a.cmp(b))
            }
            (Cell::Float(a), Cell::Float(b)) => a.total_cmp(b),
            (Cell::Text(a), Cell::Text(b)) => a.cmp(b),
            (Cell::Ts(a), Cell::Ts(b)) => a.cmp(b),
            (Cell::Date(a), Cell::Date(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }

    fn agrees(&self, other: &Cell, ulps: f64) -> bool {
        match (self, other) {
            (Cell::Null, Cell::Null) => true,
            (Cell::Bool(a), Cell::Bool(b)) => a == b,
            (Cell::Int(a), Cell::Int(b)) => a == b,
            (Cell::Dec(a), Cell::Dec(b)) => a == b,
            (Cell::Float(a), Cell::Float(b)) => float_agrees(*a, *b, ulps),
            (Cell::Text(a), Cell::Text(b)) => a == b,
            (Cell::Ts(a), Cell::Ts(b)) => a == b,
            (Cell::Date(a), Cell::Date(b)) => a == b,
            _ => false,
        }
    }
}

/// Equal, both NaN, or within `ulps` units in the last place of the larger magnitude.
fn float_agrees(a: f64, b: f64, ulps: f64) -> bool {
    if a == b || (a.is_nan() && b.is_nan()) {
        return true;
    }
    a.is_finite() && b.is_finite() && (a - b).abs() <= ulps * f64::EPSILON * a.abs().max(b.abs())
}

/// How far floats of output column `name` may differ: 4 ulps, or 1e-12 relative for aggregates
/// (`a0`, `a1`, ...): DataFusion adds floats one by one in its order, kalamdb-query exactly, so
/// a sum of n terms may differ by about n ulps (sum(-0.3) over 60 rows is -18.00000000000002
/// there and -18.0 here).
fn ulps_for(name: &str) -> f64 {
    if name.starts_with('a') { 1e-12 / f64::EPSILON } else { 4.0 }
}

/// What the server returned: the column types its schema names, and the JSON rows.
struct ServerRows {
    types: Vec<String>,
    rows: Vec<Vec<Json>>,
}

/// What kalamdb-query returned: column names and types, and rows.
struct LocalRows {
    names: Vec<String>,
    types: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

fn local_cell(v: &Value) -> Cell {
    match v {
        Value::Null => Cell::Null,
        Value::Boolean(b) => Cell::Bool(*b),
        Value::Int64(i) => Cell::Int(*i as i128),
        Value::Float64(f) => Cell::Float(*f),
        Value::Decimal(d) => Cell::Dec(format_decimal(d.value, d.scale)),
        Value::Text(s) | Value::Json(s) => Cell::Text(s.to_string()),
        Value::Bytes(b) => Cell::Text(format!("{b:?}")),
        Value::Date(d) => Cell::Date(*d),
        Value::Timestamp(t) => Cell::Ts(*t),
    }
}

/// A JSON cell of the server read as a value of type `ty` (as `docs/http-api.md` encodes it).
fn server_cell(v: &Json, ty: &str) -> Result<Cell, String> {
    let bad = || format!("the server's {v} is not a {ty} as JSON");
    if v.is_null() {
        return Ok(Cell::Null);
    }
    Ok(match ty {
        "BOOLEAN" => Cell::Bool(v.as_bool().ok_or_else(bad)?),
        "SMALLINT" | "INT" | "BIGINT" => {
            Cell::Int(v.as_i64().map(i128::from).or_else(|| v.as_u64().map(i128::from)).ok_or_else(bad)?)
        }
        "FLOAT" | "DOUBLE" => match v {
            Json::Number(n) => Cell::Float(n.as_f64().ok_or_else(bad)?),
            Json::String(s) => Cell::Float(s.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        "TEXT" => Cell::Text(v.as_str().ok_or_else(bad)?.to_string()),
        // RFC 3339 with microseconds and `Z`.
        "TIMESTAMP" => Cell::Ts(v.as_str().filter(|s| s.ends_with('Z')).and_then(parse_timestamp).ok_or_else(bad)?),
        "DATE" => Cell::Date(v.as_str().and_then(parse_date).ok_or_else(bad)?),
        t if t.starts_with("DECIMAL") => Cell::Dec(v.as_str().ok_or_else(bad)?.to_string()),
        _ => return Err(bad()),
    })
}

/// The server's rows read as values of `types` (kalamdb-query's column types; the schemas'
/// types are compared apart, in [`compare`]).
fn server_cells(server: &ServerRows, types: &[String]) -> Result<Vec<Vec<Cell>>, String> {
    server
        .rows
        .iter()
        .map(|row| {
            if row.len() != types.len() {
                return Err(format!("row {row:?} has {} values for {} columns", row.len(), types.len()));
            }
            row.iter().zip(types).map(|(v, t)| server_cell(v, t)).collect()
        })
        .collect()
}

async fn on_server(s: &TestServer, auth: &Auth, q: &Query) -> Result<ServerRows, String> {
    let params: Vec<Json> = q
        .params
        .iter()
        .map(|p| match p {
            Value::Int64(i) => json!(i),
            Value::Text(t) => json!(t),
            other => panic!("no JSON parameter for {other:?}"),
        })
        .collect();
    let r = s.sql_params(auth, &q.sql, json!(params)).await;
    if r.status != 200 {
        let message = r.body["error"]["message"].as_str().map(str::to_string).unwrap_or_else(|| r.body.to_string());
        return Err(format!("{} {message}", r.status.as_u16()));
    }
    let result = &r.body["results"][0];
    let types = result["schema"]
        .as_array()
        .ok_or("no schema")?
        .iter()
        .map(|c| c["type"].as_str().unwrap_or("?").to_string())
        .collect();
    let rows = result["rows"]
        .as_array()
        .ok_or("no rows")?
        .iter()
        .map(|r| r.as_array().cloned().ok_or("a row is not an array"))
        .collect::<Result<_, _>>()?;
    Ok(ServerRows { types, rows })
}

fn locally(db: &MemoryTables, q: &Query) -> Result<LocalRows, String> {
    let r = kalamdb_query::run(&q.sql, db, &q.params).map_err(|e| e.to_string())?;
    Ok(LocalRows {
        names: r.columns.iter().map(|c| c.name.clone()).collect(),
        types: r.columns.iter().map(|c| c.ty.sql_name()).collect(),
        rows: r.rows.iter().map(|row| row.iter().map(local_cell).collect()).collect(),
    })
}

fn sort_rows(rows: &mut [Vec<Cell>]) {
    rows.sort_by(|a, b| a.iter().zip(b).map(|(x, y)| x.order(y)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal));
}

/// How two successful results compare.
enum Verdict {
    Same,
    Differ(String),
}

fn compare(server: &ServerRows, local: &LocalRows, ordered: bool) -> Verdict {
    if server.types.len() != local.types.len() {
        return Verdict::Differ(format!("columns differ: server {:?}, kalamdb-query {:?}", server.types, local.types));
    }
    let mut a = match server_cells(server, &local.types) {
        Ok(rows) => rows,
        Err(e) => return Verdict::Differ(e),
    };
    if a.len() != local.rows.len() {
        return Verdict::Differ(format!("{} rows on the server, {} in kalamdb-query", a.len(), local.rows.len()));
    }
    let mut b = local.rows.clone();
    if !ordered {
        sort_rows(&mut a);
        sort_rows(&mut b);
    }
    let ulps: Vec<f64> = local.names.iter().map(|n| ulps_for(n)).collect();
    let agree = |x: &Vec<Cell>, y: &Vec<Cell>| x.iter().zip(y).zip(&ulps).all(|((p, q), u)| p.agrees(q, *u));
    if let Some(i) = a.iter().zip(&b).position(|(x, y)| !agree(x, y)) {
        let sorted = if ordered { "" } else { " (sorted)" };
        return Verdict::Differ(format!("row {i}{sorted} differs: server {:?}, kalamdb-query {:?}", a[i], b[i]));
    }
    let labels: Vec<String> = server
        .types
        .iter()
        .zip(&local.types)
        .enumerate()
        .filter(|(_, (s, l))| s != l)
        .map(|(i, (s, l))| format!("column {i}: server {s}, kalamdb-query {l}"))
        .collect();
    if labels.is_empty() {
        Verdict::Same
    } else {
        Verdict::Differ(format!("column types differ: {}", labels.join("; ")))
    }
}

fn show_server(r: &Result<ServerRows, String>) -> String {
    match r {
        Err(e) => format!("error: {e}"),
        Ok(rows) => {
            let shown: Vec<String> = rows.rows.iter().take(12).map(|r| Json::Array(r.clone()).to_string()).collect();
            let more = if rows.rows.len() > 12 { format!(" ... ({} rows)", rows.rows.len()) } else { String::new() };
            format!("{:?} [{}]{more}", rows.types, shown.join(", "))
        }
    }
}

fn show_local(r: &Result<LocalRows, String>) -> String {
    match r {
        Err(e) => format!("error: {e}"),
        Ok(rows) => {
            let shown: Vec<String> = rows.rows.iter().take(12).map(|r| format!("{r:?}")).collect();
            let more = if rows.rows.len() > 12 { format!(" ... ({} rows)", rows.rows.len()) } else { String::new() };
            format!("{:?} [{}]{more}", rows.types, shown.join(", "))
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test]
async fn server_and_client_engine_return_the_same_rows() {
    let started = Instant::now();
    let seed: u64 = env_or("KALAMDB_DIFF_SEED", DEFAULT_SEED);
    let count: usize = env_or("KALAMDB_DIFF_QUERIES", DEFAULT_QUERIES);
    let mut rng = Rng(seed);
    let tables = generate_tables(&mut rng);

    let s = TestServer::start().await;
    let token = s.login("root", ROOT_PASSWORD).await;
    let auth = Auth::Bearer(token);
    let mut db = MemoryTables::new("app");
    s.sql_ok(&auth, "CREATE NAMESPACE app").await;
    for t in &tables {
        let cols: Vec<String> = t.columns.iter().map(|(n, sql, _, _)| format!("{n} {sql}")).collect();
        s.sql_ok(&auth, &format!("CREATE SHARED TABLE app.{} ({})", t.name, cols.join(", "))).await;
        let values: Vec<String> =
            t.rows.iter().map(|r| format!("({})", r.iter().map(literal).collect::<Vec<_>>().join(", "))).collect();
        s.sql_ok(&auth, &format!("INSERT INTO app.{} VALUES {}", t.name, values.join(", "))).await;
        let defs = t.columns.iter().map(|(n, _, ty, nullable)| ColumnDef::new(*n, *ty, *nullable)).collect();
        db.add_table(t.name, defs, &[t.columns[0].0]).unwrap();
        db.insert(t.name, t.rows.clone()).unwrap();
    }
    // The server holds what the engine holds: every column of every row, with the same types.
    for t in &tables {
        let cols: Vec<&str> = t.columns.iter().map(|c| c.0).collect();
        let q = Query {
            sql: format!("SELECT {} FROM app.{} ORDER BY {}", cols.join(", "), t.name, cols[0]),
            params: vec![],
            ordered: true,
        };
        let server = on_server(&s, &auth, &q).await.expect("the server reads the table");
        let local = locally(&db, &q).expect("the engine reads the table");
        assert_eq!(server.rows.len(), t.rows.len());
        match compare(&server, &local, true) {
            Verdict::Same => {}
            Verdict::Differ(why) => panic!("table {}: {why}", t.name),
        }
    }

    if let Ok(sql) = std::env::var("KALAMDB_DIFF_SQL") {
        let q = Query { sql, params: vec![], ordered: false };
        eprintln!("SERVER {}", show_server(&on_server(&s, &auth, &q).await));
        eprintln!("LOCAL  {}", show_local(&locally(&db, &q)));
        return;
    }
    let mut generator = Gen { rng: Rng(seed ^ 0x5eed), aliases: vec![], params: vec![], small: false };
    let (mut same, mut with_rows) = (0, 0);
    let (mut both_failed, mut mismatches) = (Vec::new(), Vec::new());
    for _ in 0..count {
        let q = generator.query();
        let (server, local) = (on_server(&s, &auth, &q).await, locally(&db, &q));
        let why = match (&server, &local) {
            (Err(a), Err(b)) => {
                both_failed.push(format!("{}\n    server: {a}\n    kalamdb-query: {b}", q.sql));
                None
            }
            (Ok(a), Ok(b)) => match compare(a, b, q.ordered) {
                Verdict::Same => None,
                Verdict::Differ(why) => Some(why),
            },
            (Err(_), Ok(_)) => Some("only the server failed".into()),
            (Ok(_), Err(_)) => Some("only kalamdb-query failed".into()),
        };
        match why {
            Some(why) => mismatches.push(format!(
                "{}\n  params: {:?}\n  {why}\n  server:        {}\n  kalamdb-query: {}",
                q.sql,
                q.params,
                show_server(&server),
                show_local(&local)
            )),
            None if server.is_ok() => {
                same += 1;
                if server.as_ref().is_ok_and(|r| !r.rows.is_empty()) {
                    with_rows += 1;
                }
            }
            None => {}
        }
    }
    eprintln!(
        "differential: seed {seed:#x}, {count} queries: {same} agree ({with_rows} with rows), {} fail on both \
         sides, {} differ; {:.1} s",
        both_failed.len(),
        mismatches.len(),
        started.elapsed().as_secs_f64()
    );
    for f in both_failed.iter().take(5) {
        eprintln!("  both failed: {f}");
    }
    assert!(
        mismatches.is_empty(),
        "{} of {count} queries differ (seed {seed:#x}); the first ones:\n\n{}",
        mismatches.len(),
        mismatches.iter().take(10).cloned().collect::<Vec<_>>().join("\n\n")
    );
    // The comparison means something only if most queries run and return rows.
    assert!(count < 300 || same >= count * 8 / 10, "only {same} of {count} queries succeeded on both sides");
    assert!(count < 300 || with_rows >= count / 2, "only {with_rows} of {count} queries returned rows");
}
