//! Property tests with a seeded generator (no extra dependencies):
//! - random syntax trees print as SQL that parses back to the same tree;
//! - random token soup and random well-typed-ish queries never panic anywhere in
//!   parse → plan → execute (they return a value or a `QueryError`).

use kalamdb_query::ast::*;
use kalamdb_query::{ColumnDef, DataType, MemoryTables, Value, parse, run};

mod common;
use common::Rng;

const NAMES: [&str; 9] = ["a", "b", "t", "price", "Mixed", "select", "x y", "date", "q\"uote"];

fn name(r: &mut Rng) -> String {
    r.pick(&NAMES).to_string()
}

fn data_type(r: &mut Rng) -> DataType {
    use DataType::*;
    match r.below(13) {
        0 => Boolean,
        1 => SmallInt,
        2 => Int,
        3 => BigInt,
        4 => Float,
        5 => Double,
        6 => {
            let precision = 1 + r.below(38) as u8;
            Decimal { precision, scale: r.below(precision as usize + 1) as i8 }
        }
        7 => Text,
        8 => Bytes,
        9 => Date,
        10 => Timestamp,
        11 => Json,
        _ => CrdtText,
    }
}

fn literal(r: &mut Rng) -> Literal {
    match r.below(9) {
        0 => Literal::Null,
        1 => Literal::Boolean(r.chance(50)),
        2 => Literal::Int(*r.pick(&[0, 1, -1, 42, i64::MIN, i64::MAX, -9_007_199_254_740_993])),
        3 => Literal::Int(r.next() as i64),
        4 => Literal::Float(*r.pick(&[0.5, -2.25, 1e20, 1e-7, -0.0, 123.456, f64::MAX])),
        5 => Literal::Float((r.next() as i64) as f64 / 1000.0),
        6 => Literal::String(r.pick(&["", "x", "it's", "100%", "a\nb", "ü"]).to_string()),
        7 => Literal::Date(r.below(100_000) as i32 - 30_000),
        _ => Literal::Timestamp((r.next() % 4_000_000_000_000_000) as i64 - 1_000_000_000_000_000),
    }
}

fn expr(r: &mut Rng, depth: usize) -> Expr {
    let leaf = depth == 0 || r.chance(25);
    let b = |r: &mut Rng| Box::new(expr(r, depth.saturating_sub(1)));
    if leaf {
        return match r.below(3) {
            0 => Expr::Column((0..1 + r.below(3)).map(|_| name(r)).collect()),
            1 => Expr::Literal(literal(r)),
            _ => Expr::Param { index: 1 + r.below(9), style: ParamStyle::Dollar },
        };
    }
    match r.below(10) {
        0 => Expr::Unary { op: if r.chance(50) { UnaryOp::Not } else { UnaryOp::Neg }, expr: b(r) },
        1..=3 => {
            let op = *r.pick(&[
                BinaryOp::Or,
                BinaryOp::And,
                BinaryOp::Eq,
                BinaryOp::NotEq,
                BinaryOp::Lt,
                BinaryOp::LtEq,
                BinaryOp::Gt,
                BinaryOp::GtEq,
                BinaryOp::Concat,
                BinaryOp::Plus,
                BinaryOp::Minus,
                BinaryOp::Multiply,
                BinaryOp::Divide,
                BinaryOp::Modulo,
            ]);
            Expr::Binary { left: b(r), op, right: b(r) }
        }
        4 => Expr::IsNull { expr: b(r), negated: r.chance(50) },
        5 => Expr::InList {
            expr: b(r),
            list: (0..1 + r.below(3)).map(|_| expr(r, depth - 1)).collect(),
            negated: r.chance(50),
        },
        6 => Expr::Between { expr: b(r), low: b(r), high: b(r), negated: r.chance(50) },
        7 => Expr::Like { expr: b(r), pattern: b(r), negated: r.chance(50), case_insensitive: r.chance(50) },
        8 => Expr::Cast { expr: b(r), ty: data_type(r) },
        _ => {
            let star = r.chance(15);
            let args = if star { vec![] } else { (0..1 + r.below(3)).map(|_| expr(r, depth - 1)).collect() };
            let fname = r.pick(&["count", "sum", "lower", "coalesce", "f", "date", "left"]).to_string();
            Expr::Function { name: fname, args, distinct: !star && r.chance(20), star }
        }
    }
}

fn table_ref(r: &mut Rng) -> TableRef {
    TableRef { namespace: r.chance(30).then(|| name(r)), name: name(r), alias: r.chance(50).then(|| name(r)) }
}

fn query(r: &mut Rng) -> Query {
    let d = 4;
    let projection = (0..1 + r.below(4))
        .map(|_| match r.below(6) {
            0 => SelectItem::Wildcard,
            1 => SelectItem::QualifiedWildcard(name(r)),
            _ => SelectItem::Expr { expr: expr(r, d), alias: r.chance(40).then(|| name(r)) },
        })
        .collect();
    let from = r.chance(80).then(|| FromClause {
        base: table_ref(r),
        joins: (0..r.below(3))
            .map(|_| Join {
                kind: if r.chance(50) { JoinKind::Inner } else { JoinKind::Left },
                table: table_ref(r),
                on: expr(r, 2),
            })
            .collect(),
    });
    Query {
        distinct: r.chance(20),
        projection,
        from,
        selection: r.chance(60).then(|| expr(r, d)),
        group_by: (0..r.below(3)).map(|_| expr(r, 2)).collect(),
        having: r.chance(20).then(|| expr(r, 2)),
        order_by: (0..r.below(3))
            .map(|_| OrderByItem {
                expr: expr(r, 2),
                desc: r.chance(50),
                nulls_first: *r.pick(&[None, Some(true), Some(false)]),
            })
            .collect(),
        limit: r.chance(30).then(|| r.below(1000) as u64),
        offset: r.chance(20).then(|| r.below(1000) as u64),
    }
}

#[test]
fn random_trees_print_and_reparse_identically() {
    let mut r = Rng(0x5EED_1234_ABCD_0001);
    for i in 0..3_000 {
        let q = query(&mut r);
        let sql = q.to_string();
        let back = parse(&sql).unwrap_or_else(|e| panic!("case {i}: {sql}\n{e}"));
        assert_eq!(back, q, "case {i}: {sql}\nreprinted: {back}");
    }
}

fn fixture() -> MemoryTables {
    use DataType::*;
    let mut db = MemoryTables::new("app");
    let cols = vec![
        ColumnDef::new("a", BigInt, true),
        ColumnDef::new("b", Int, true),
        ColumnDef::new("price", Decimal { precision: 10, scale: 2 }, true),
        ColumnDef::new("t", Text, true),
        ColumnDef::new("date", Timestamp, true),
        ColumnDef::new("f", Double, true),
    ];
    db.add_table("t", cols, &["a"]).unwrap();
    db.add_table("u", vec![ColumnDef::new("ua", BigInt, true), ColumnDef::new("ub", Int, true)], &["ua"]).unwrap();
    let mut r = Rng(7);
    let val = |r: &mut Rng, c: usize| -> Value {
        if r.chance(20) {
            return Value::Null;
        }
        match c {
            0 => Value::Int64(*r.pick(&[0, 1, -1, i64::MIN, i64::MAX, 2, 3])),
            1 => Value::Int64(*r.pick(&[0, 1, -1, i32::MIN as i64, i32::MAX as i64, 7])),
            2 => Value::decimal((r.next() % 100_000) as i128 - 50_000, 2),
            3 => Value::Text(r.pick(&["", "a", "B", "%_", "ü"]).to_string().into()),
            4 => Value::Timestamp((r.next() % 4_000_000_000_000_000) as i64),
            _ => Value::Float64(*r.pick(&[0.0, -0.0, 1.5, f64::NAN, f64::INFINITY, -1e300])),
        }
    };
    let rows = (0..12).map(|_| (0..6).map(|c| val(&mut r, c)).collect()).collect();
    db.insert("t", rows).unwrap();
    let rows = (0..12).map(|_| (0..2).map(|c| val(&mut r, c)).collect()).collect();
    db.insert("u", rows).unwrap();
    db
}

#[test]
fn random_queries_never_panic() {
    let db = fixture();
    let mut r = Rng(0xC0FF_EE00_0000_0042);
    let params = [Value::Int64(1), Value::Text("a".into()), Value::Null, Value::Float64(0.5)];
    let (mut ok, mut failed) = (0, 0);
    for _ in 0..4_000 {
        // Random trees over the fixture's names: mostly type errors, some run.
        let mut q = query(&mut r);
        if let Some(from) = &mut q.from {
            from.base = TableRef { namespace: None, name: "t".into(), alias: None };
            for (k, j) in from.joins.iter_mut().enumerate() {
                j.table = TableRef { namespace: None, name: "u".into(), alias: Some(format!("u{k}")) };
            }
        }
        match run(&q.to_string(), &db, &params) {
            Ok(_) => ok += 1,
            Err(_) => failed += 1,
        }
    }
    assert!(ok + failed == 4_000);
    // Hand-shaped queries that do run, over edge-case data.
    let exprs = [
        "a + b",
        "a * b",
        "a - b",
        "a / b",
        "a % b",
        "-a",
        "abs(a)",
        "abs(b)",
        "price * price",
        "price / price",
        "price + a",
        "price * f",
        "f / 0",
        "round(price, 1)",
        "round(f, 2)",
        "round(a, -3)",
        "CAST(f AS INT)",
        "CAST(price AS SMALLINT)",
        "CAST(t AS BIGINT)",
        "CAST(a AS DECIMAL(5,2))",
        "lower(t) || upper(t)",
        "length(t)",
        "coalesce(a, b, 0)",
        "date_trunc('quarter', date)",
        "t LIKE '%\\%%'",
        "t ILIKE 'b'",
        "a IN (1, b, NULL)",
        "price BETWEEN -1 AND 1",
        "f = f",
        "date > '2001-01-01'",
    ];
    let mut ran = 0;
    for e in exprs {
        for sql in [
            format!("SELECT {e} FROM t"),
            format!("SELECT {e}, count(*), sum(price), avg(f), min(t), max(date) FROM t GROUP BY {e} ORDER BY 1 DESC"),
            format!("SELECT DISTINCT {e} FROM t JOIN u ON ua = a ORDER BY 1 NULLS FIRST LIMIT 3"),
            format!("SELECT t.a FROM t LEFT JOIN u ON ub = b WHERE {e} IS NOT NULL ORDER BY t.a"),
        ] {
            match run(&sql, &db, &params) {
                Ok(_) => ran += 1,
                Err(e) => {
                    if std::env::var("SHOW").is_ok() {
                        eprintln!("{sql}: {e}");
                    }
                }
            }
        }
    }
    // Most of them are valid and run; the rest fail on data (overflow, division by zero).
    assert!(ran >= exprs.len() * 4 * 2 / 3, "only {ran} ran");
}

#[test]
fn random_token_soup_never_panics() {
    let words = [
        "SELECT",
        "FROM",
        "WHERE",
        "GROUP",
        "BY",
        "ORDER",
        "HAVING",
        "JOIN",
        "LEFT",
        "ON",
        "AND",
        "OR",
        "NOT",
        "IN",
        "IS",
        "NULL",
        "BETWEEN",
        "LIKE",
        "CAST",
        "AS",
        "(",
        ")",
        ",",
        ".",
        "*",
        "+",
        "-",
        "/",
        "%",
        "||",
        "=",
        "<>",
        "<",
        ">=",
        "::",
        "a",
        "t",
        "u",
        "price",
        "1",
        "1.5",
        "'x'",
        "$1",
        "?",
        "count",
        "sum",
        "DISTINCT",
        "LIMIT",
        "OFFSET",
        "DESC",
        "NULLS",
        "FIRST",
        "TIMESTAMP",
        "'2024-01-01'",
        "DECIMAL",
        "INT",
        ";",
        "\"",
        "'",
        "OVER",
        "é",
        "'é'",
        "\"É\"",
        "ü_x",
        "'2024-01-01 10:00+aé1'",
        "DATE",
        "1e999",
        "9223372036854775808",
        "$0",
        "/*",
        "--",
        "date_trunc",
        "'day'",
    ];
    let db = fixture();
    let mut r = Rng(99);
    for _ in 0..20_000 {
        let n = 1 + r.below(24);
        let mut sql = String::from(if r.chance(80) { "SELECT " } else { "" });
        for _ in 0..n {
            let w: &str = words[r.below(words.len())];
            sql.push_str(w);
            sql.push(' ');
        }
        let _ = run(&sql, &db, &[Value::Int64(1)]);
    }
}

/// ORDER BY ... LIMIT/OFFSET (evaluated as a top-k) returns exactly the rows of the full
/// ORDER BY cut afterwards, in the same order, over data full of ties, NULLs and NaNs.
#[test]
fn order_by_with_limit_is_the_full_order_cut() {
    let db = fixture();
    let mut r = Rng(11);
    let keys = ["a", "b", "price", "t", "date", "f", "a + b", "coalesce(t, 'z')"];
    for _ in 0..400 {
        let order: Vec<String> = (0..1 + r.below(3))
            .map(|_| {
                let dir = *r.pick(&["", " ASC", " DESC", " DESC NULLS LAST", " NULLS FIRST"]);
                format!("{}{dir}", r.pick(&keys))
            })
            .collect();
        let base = format!("SELECT a, b, t FROM t ORDER BY {}", order.join(", "));
        let (limit, offset) = (r.below(15), r.below(15));
        let all = run(&base, &db, &[]).unwrap().rows;
        let cut = run(&format!("{base} LIMIT {limit} OFFSET {offset}"), &db, &[]).unwrap().rows;
        let want: Vec<_> = all.into_iter().skip(offset).take(limit).collect();
        assert_eq!(cut, want, "{base} LIMIT {limit} OFFSET {offset}");
    }
}
