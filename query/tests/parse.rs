//! Parser: round trips through Display, unsupported constructs named, limits.

use kalamdb_query::ast::{BinaryOp, Expr, Literal, ParamStyle, SelectItem};
use kalamdb_query::parser::{MAX_DEPTH, MAX_SQL_LEN};
use kalamdb_query::{QueryError, parse};

fn round_trip(sql: &str) -> String {
    let a = parse(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let printed = a.to_string();
    let b = parse(&printed).unwrap_or_else(|e| panic!("reparse of {printed}: {e}"));
    assert_eq!(a, b, "{sql} printed as {printed}");
    assert_eq!(printed, b.to_string());
    printed
}

#[test]
fn round_trips() {
    for sql in [
        "SELECT * FROM todos",
        "select a, b as c, t.* from ns.t as x left outer join u on u.id = x.id and u.k = x.k join v y on y.a = u.a",
        "SELECT DISTINCT a FROM t WHERE NOT a = 1 AND (b OR c) ORDER BY a DESC NULLS LAST, 2 LIMIT 5 OFFSET 2",
        "SELECT a FROM t WHERE a IN (1, 2, -3) AND b NOT BETWEEN 1 + 1 AND 3 OR c NOT LIKE 'x%' OR d ILIKE $1",
        "SELECT count(*), count(DISTINCT a), sum(a) FROM t GROUP BY b HAVING count(*) > 1",
        "SELECT a - (b - c), (a - b) - c, a / b * c, a * (b + c), -a, -(-a), - -1, a - -1, NOT NOT a FROM t",
        "SELECT CAST(a AS DECIMAL(10,2)), a::bigint, CAST(b AS double precision), CAST(c AS varchar(20)) FROM t",
        "SELECT TIMESTAMP '2024-01-02 03:04:05.123456', DATE '2024-02-29', 'it''s', 1.5, 1e20, -0.0, TRUE, NULL",
        "SELECT \"Mixed Case\", \"select\", \"date\" FROM \"Weird\"\"Name\"",
        "SELECT a FROM t WHERE a IS NULL AND b IS NOT NULL AND (a = b) = (c = d)",
        "SELECT a || b || 'c', (a || b) = c FROM t WHERE ? AND ? = $1",
        "SELECT -9223372036854775808, 9223372036854775807",
        "SELECT date_trunc('day', ts), round(x, -2), coalesce(a, b, 0) FROM t;",
        "SELECT a FROM t -- comment\n WHERE /* inline */ a = 1",
    ] {
        round_trip(sql);
    }
}

#[test]
fn display_is_minimal_and_explicit() {
    assert_eq!(round_trip("select a+b*c from t"), "SELECT a + b * c FROM t");
    assert_eq!(round_trip("select (a+b)*c from t"), "SELECT (a + b) * c FROM t");
    assert_eq!(round_trip("select a-(b-c) from t"), "SELECT a - (b - c) FROM t");
    assert_eq!(round_trip("select x from t where a or b and c"), "SELECT x FROM t WHERE a OR b AND c");
    assert_eq!(round_trip("select x from t where (a or b) and c"), "SELECT x FROM t WHERE (a OR b) AND c");
    assert_eq!(round_trip("select x::int from t"), "SELECT CAST(x AS INT) FROM t");
    assert_eq!(round_trip("select a != b from t"), "SELECT a <> b FROM t");
    // `||` binds like `*`, left to right (sqlparser's precedence, so DataFusion agrees).
    assert_eq!(round_trip("select 'v' || a / 3 from t"), "SELECT 'v' || a / 3 FROM t");
    assert_eq!(round_trip("select a + b || c from t"), "SELECT a + b || c FROM t");
    let q = parse("select 'v' || a / 3 from t").unwrap();
    let SelectItem::Expr { expr: Expr::Binary { op, left, .. }, .. } = &q.projection[0] else { panic!() };
    assert_eq!(*op, BinaryOp::Divide);
    assert!(matches!(**left, Expr::Binary { op: BinaryOp::Concat, .. }));
    let q = parse("select a + b || c from t").unwrap();
    let SelectItem::Expr { expr: Expr::Binary { op, .. }, .. } = &q.projection[0] else { panic!() };
    assert_eq!(*op, BinaryOp::Plus);
}

/// The operators looser than arithmetic bind as in sqlparser (found by the differential test
/// against the server): LIKE looser than comparisons, and NOT in an operand's place takes what
/// binds tighter than NOT.
#[test]
fn precedence_of_like_is_and_not_follows_sqlparser() {
    let reads = |sql: &str| parse(&format!("SELECT x FROM t WHERE {sql}")).unwrap().to_string();
    let same = |a: &str, b: &str| assert_eq!(reads(a), reads(b), "{a} should read as {b}");
    same("a LIKE b <= c", "a LIKE (b <= c)");
    same("a NOT ILIKE b = c", "a NOT ILIKE (b = c)");
    same("a LIKE b IN (c)", "a LIKE (b IN (c))");
    same("a = b LIKE c", "(a = b) LIKE c");
    same("a < b > NOT c", "(a < b) > (NOT c)");
    same("a = NOT b = c AND d", "(a = (NOT (b = c))) AND d");
    same("a <> NOT NULL", "a <> (NOT NULL)");
    same("a LIKE b IS NULL", "(a LIKE b) IS NULL");
    same("a IS NULL = b", "(a IS NULL) = b");
    same("a BETWEEN b AND c = d", "(a BETWEEN b AND c) = d");
    same("NOT a = b AND c", "(NOT (a = b)) AND c");
    same("NOT a LIKE b OR c", "(NOT (a LIKE b)) OR c");
    same("a + NOT b", "a + (NOT b)");
    // Display prints what it parsed unambiguously.
    assert_eq!(reads("a LIKE b <= c"), "SELECT x FROM t WHERE a LIKE (b <= c)");
    round_trip("SELECT x FROM t WHERE a = NOT b = c AND a LIKE b < c");
    assert!(matches!(parse("SELECT x FROM t WHERE NOT EXISTS (SELECT 1)"), Err(QueryError::Unsupported { .. })));
}

#[test]
fn parameters_and_literals() {
    let q = parse("SELECT $2, ?, ? FROM t").unwrap();
    let params: Vec<_> = q
        .projection
        .iter()
        .map(|i| match i {
            kalamdb_query::ast::SelectItem::Expr { expr: Expr::Param { index, style }, .. } => (*index, *style),
            _ => panic!(),
        })
        .collect();
    assert_eq!(params, [(2, ParamStyle::Dollar), (1, ParamStyle::Question), (2, ParamStyle::Question)]);
    let q = parse("SELECT 1.50 FROM t WHERE a = -5").unwrap();
    assert!(
        matches!(&q.projection[0], kalamdb_query::ast::SelectItem::Expr { expr: Expr::Literal(Literal::Float(f)), .. } if *f == 1.5)
    );
    assert!(
        matches!(q.selection, Some(Expr::Binary { op: BinaryOp::Eq, ref right, .. }) if **right == Expr::Literal(Literal::Int(-5)))
    );
}

fn unsupported(sql: &str) -> String {
    match parse(sql) {
        Err(e @ QueryError::Unsupported { .. }) => e.to_string(),
        other => panic!("{sql}: expected Unsupported, got {other:?}"),
    }
}

#[test]
fn unsupported_constructs_are_named() {
    for (sql, name) in [
        ("SELECT row_number() OVER (ORDER BY a) FROM t", "window functions are not supported"),
        ("SELECT a FROM t WHERE a IN (SELECT b FROM u)", "subqueries are not supported"),
        ("SELECT a FROM (SELECT 1) x", "subqueries are not supported"),
        ("SELECT a FROM t WHERE EXISTS (SELECT 1)", "subqueries are not supported"),
        ("SELECT (SELECT 1)", "subqueries are not supported"),
        ("SELECT a FROM t RIGHT JOIN u ON u.a = t.a", "RIGHT JOIN is not supported"),
        ("SELECT a FROM t FULL OUTER JOIN u ON u.a = t.a", "FULL JOIN is not supported"),
        ("SELECT a FROM t CROSS JOIN u", "CROSS JOIN is not supported"),
        ("SELECT a FROM t NATURAL JOIN u", "NATURAL JOIN is not supported"),
        ("SELECT a FROM t JOIN u USING (a)", "USING"),
        ("SELECT a FROM t, u", "comma-separated FROM lists"),
        ("SELECT a FROM t UNION SELECT b FROM u", "UNION is not supported"),
        ("WITH x AS (SELECT 1) SELECT * FROM x", "common table expressions (WITH) are not supported"),
        ("SELECT CASE WHEN a THEN 1 END FROM t", "CASE expressions are not supported"),
        ("SELECT a + INTERVAL '1 day' FROM t", "INTERVAL values are not supported"),
        ("SELECT a FROM t WHERE a IS TRUE", "IS TRUE"),
        ("SELECT DISTINCT ON (a) a FROM t", "DISTINCT ON is not supported"),
        ("INSERT INTO t VALUES (1)", "INSERT statements"),
        ("SELECT 1; SELECT 2", "multiple statements are not supported"),
        ("SELECT count(*) FILTER (WHERE a) FROM t", "aggregate FILTER clauses are not supported"),
        ("SELECT 99999999999999999999", "integer literals beyond the BIGINT range"),
    ] {
        let msg = unsupported(sql);
        assert!(msg.contains(name), "{sql}: {msg}");
        assert!(msg.contains("position"), "{sql}: {msg} has no position");
    }
}

#[test]
fn syntax_errors_have_positions() {
    assert_eq!(
        parse("SELECT a FROM WHERE").unwrap_err(),
        QueryError::Syntax { pos: 14, msg: "expected a table name, found 'where'".into() }
    );
    assert!(matches!(parse("SELECT a FROM t WHERE"), Err(QueryError::Syntax { pos: 21, .. })));
    assert!(matches!(parse("SELECT 'open"), Err(QueryError::Syntax { pos: 7, .. })));
    assert!(matches!(parse("SELECT a FROM t LIMIT -1"), Err(QueryError::Syntax { .. })));
    assert!(matches!(parse("SELECT TIMESTAMP '2024-13-01'"), Err(QueryError::Syntax { .. })));
    assert!(matches!(parse("SELECT CAST(a AS DECIMAL(50,2)) FROM t"), Err(QueryError::Syntax { .. })));
    assert!(matches!(parse(""), Err(QueryError::Syntax { pos: 0, .. })));
}

#[test]
fn depth_and_size_limits() {
    let ok = format!("SELECT {}1{}", "(".repeat(MAX_DEPTH - 2), ")".repeat(MAX_DEPTH - 2));
    parse(&ok).unwrap();
    for n in [MAX_DEPTH + 1, 10_000, 100_000] {
        let deep = format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n));
        let e = parse(&deep).unwrap_err();
        assert!(matches!(&e, QueryError::Syntax { msg, .. } if msg.contains("deeper")), "{e}");
    }
    // Long operator chains build deep trees without recursion: also limited.
    let chain = format!("SELECT {}", vec!["1"; 5_000].join(" + "));
    assert!(matches!(parse(&chain), Err(QueryError::Syntax { msg, .. }) if msg.contains("deeper")));
    let nots = format!("SELECT {} a FROM t", "NOT ".repeat(10_000));
    assert!(matches!(parse(&nots), Err(QueryError::Syntax { .. })));
    let minus = format!("SELECT {}a FROM t", "- ".repeat(10_000));
    assert!(matches!(parse(&minus), Err(QueryError::Syntax { .. })));
    let calls = format!("SELECT {}a{} FROM t", "lower(".repeat(10_000), ")".repeat(10_000));
    assert!(matches!(parse(&calls), Err(QueryError::Syntax { .. })));
    // Wide but shallow is fine.
    let wide =
        format!("SELECT a FROM t WHERE a IN ({})", (0..5_000).map(|i| i.to_string()).collect::<Vec<_>>().join(", "));
    parse(&wide).unwrap();
    let huge = format!("SELECT '{}'", "x".repeat(MAX_SQL_LEN));
    assert!(matches!(parse(&huge), Err(QueryError::Syntax { pos: 0, .. })));
}
