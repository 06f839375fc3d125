//! KalamDB's query language, defined once: parsed, type-checked and planned here, then
//! evaluated locally by the client (native and wasm32) and validated — then lowered to
//! DataFusion — by the server. The same SQL must return the same rows on both sides.
//!
//! # Layout
//!
//! SQL flows through the modules in this order:
//!
//! - [`lexer`](crate::lexer) (private): SQL text → tokens with byte positions.
//! - [`parser`]: tokens → [`ast::Query`], a recursive-descent parser with limits on input size
//!   and nesting depth. Constructs outside the language are rejected by name
//!   ([`QueryError::Unsupported`]).
//! - [`ast`]: the syntax tree; its `Display` prints SQL that parses back to the same tree.
//! - [`types`]: [`DataType`], the server's column types.
//! - [`value`]: [`Value`], typed values (exact DECIMAL and BIGINT, DATE, TIMESTAMP) with SQL
//!   comparison, and the text forms of decimals and times.
//! - [`schema`]: [`Catalog`], how the planner learns tables and columns.
//! - [`check`]: name resolution and type checking → [`plan::Plan`].
//! - [`plan`]: the logical plan (Scan, Filter, Project, Join, Aggregate, Distinct, Sort, Limit)
//!   over positional rows.
//! - [`eval`]: one expression over one row, with three-valued logic.
//! - [`exec`]: from-scratch evaluation of a plan over in-memory rows ([`exec::DataSource`]).
//! - [`memory`]: [`MemoryTables`], a catalog and data source in memory.
//! - [`error`]: [`QueryError`], the one error type.
//!
//! The entry points are [`parse`], [`plan`] (parse + check) and [`run`] (parse + check +
//! execute). Live queries will run the same plans incrementally: see
//! `docs/incremental-queries.md` for the design.
//!
//! # Why a hand-written parser
//!
//! The browser bundle has a 250 KB (gzip) budget and is at its limit; sqlparser and DataFusion
//! would each exceed it alone. The language is a small subset of SELECT, so a recursive-descent
//! parser of a few hundred lines does the job, and lets every unsupported construct be named.
//!
//! # The language
//!
//! ```text
//! SELECT [DISTINCT] item, ...            item: *, t.*, expr [[AS] alias]
//! [FROM [ns.]table [[AS] alias]
//!    { [INNER] JOIN | LEFT [OUTER] JOIN } [ns.]table [[AS] alias] ON a = b [AND ...] ...]
//! [WHERE expr] [GROUP BY expr, ...] [HAVING expr]
//! [ORDER BY expr|alias|ordinal [ASC|DESC] [NULLS FIRST|LAST], ...]
//! [LIMIT n] [OFFSET n]
//! ```
//!
//! Expressions: columns (`c`, `t.c`, `ns.t.c`), literals (integers, `1.5`, `1e3`, `'text'`,
//! TRUE, FALSE, NULL, `DATE '2024-01-31'`, `TIMESTAMP '2024-01-31 10:00:00'`), parameters `$1`
//! and `?`, `= <> != < <= > >=`, AND, OR, NOT, `[NOT] IN (list)`, `[NOT] BETWEEN`, `[NOT] LIKE`,
//! `[NOT] ILIKE`, `IS [NOT] NULL`, `+ - * / %`, unary `-`, `||`, `CAST(x AS type)` and `x::type`,
//! the functions lower, upper, length (char_length), coalesce, abs, round(x[, n]),
//! date_trunc('unit', ts), and the aggregates count(*), count([DISTINCT] x),
//! sum/avg/min/max([DISTINCT] x).
//!
//! Not in the language (each rejected by name): subqueries, CTEs (WITH), set operations
//! (UNION/INTERSECT/EXCEPT), RIGHT/FULL/CROSS/NATURAL joins, JOIN ... USING, comma joins,
//! joins without an equality between the two sides, window functions, CASE, INTERVAL and date
//! arithmetic, IS TRUE/FALSE, ESCAPE, DISTINCT ON, non-deterministic functions (now(),
//! random()), other functions.
//!
//! # SEMANTICS
//!
//! The reference is DataFusion 55 with default settings (the server's engine), checked against
//! its source where noted. Items marked *(uncertain)* are for the differential test to settle.
//!
//! - **Literals.** An integer literal is BIGINT (Int64). A literal with a point or exponent is
//!   DOUBLE (DataFusion's `parse_float_as_decimal` defaults to false), so `price > 9.5` compares
//!   a DECIMAL column with a DOUBLE; that comparison is done exactly in decimal, as DataFusion
//!   coerces DECIMAL vs FLOAT comparisons to a decimal of scale max(s, 15). Integer literals
//!   beyond the BIGINT range are rejected (DataFusion would make them UInt64/Decimal).
//! - **Text literals next to other types** are read as that type at plan time:
//!   `ts >= '2024-01-01'`, `d = '2024-01-31'`, `id = '5'`, `price = '9.50'`. An unreadable
//!   literal is a type error. *(uncertain for numbers: DataFusion may compare as text.)*
//! - **Comparisons** are exact across integers, decimals and floats; an integer against a float
//!   compares as DOUBLE. Strings (TEXT, JSON, CRDT_TEXT) compare byte-wise (UTF-8 order, no
//!   collation), as Arrow. Floats compare by IEEE total order as Arrow's kernels do: NaN equals
//!   NaN and is the greatest value, -0.0 < 0.0 *(uncertain)*. DATE against TIMESTAMP compares
//!   instants. Other mixed types are a type error (stricter than DataFusion, which would cast).
//! - **Joins.** The ON condition must contain at least one equality between an expression of
//!   the tables joined so far and one of the new table (the hash keys); other conjuncts are
//!   evaluated on each key match (for LEFT JOIN, a left row without a match that passes them is
//!   NULL-extended, as in SQL).
//! - **NULL.** Comparisons and arithmetic with NULL give NULL; AND/OR/NOT use three-valued
//!   logic (FALSE AND NULL = FALSE, TRUE OR NULL = TRUE); `x IN (…, NULL)` is NULL when no item
//!   matches; WHERE, ON and HAVING keep only TRUE. NULL join keys never match. GROUP BY and
//!   DISTINCT treat NULLs as equal. AND/OR skip their right side once the left decides
//!   (DataFusion short-circuits per batch, so a division by zero hidden behind `FALSE AND` may
//!   still fail there) *(uncertain)*.
//! - **Integer arithmetic** is computed in the wider operand type (SMALLINT < INT < BIGINT);
//!   `+ - *` wrap on overflow at that width (DataFusion's default kernels are `*_wrapping`);
//!   `/` truncates toward zero; `/` and `%` by zero are errors ("division by zero"), as is
//!   `i64::MIN / -1`. `%` takes the sign of the dividend. Unary minus wraps.
//! - **Float arithmetic** is IEEE: `1.0 / 0` is `inf`, `0.0 / 0` is NaN (Arrow's float kernels
//!   do not check). FLOAT (f32) arithmetic is rounded to f32; integer ⊕ FLOAT is FLOAT, anything
//!   ⊕ DOUBLE is DOUBLE, DECIMAL ⊕ float is float.
//! - **Decimals** are scaled i128s, compared and summed exactly, never as strings or floats.
//!   Result types follow Arrow: `+ -` scale max(s1,s2), precision max(p1-s1,p2-s2)+scale+1;
//!   `*` precision p1+p2+1, scale s1+s2; `/` scale s1+4 (the quotient truncated), precision
//!   p1-s1+s2+scale; `%` scale max(s1,s2). Integers join decimal arithmetic as DECIMAL(5,0),
//!   (10,0), (20,0). Precision is capped at 38; overflow of i128 is an error. Results are not
//!   checked against the declared precision *(as Arrow's unchecked kernels)*.
//! - **CAST** narrowing that does not fit (300 → SMALLINT, 'x' → INT, 1000 → DECIMAL(4,2)) is an
//!   error. Float → integer truncates; decimal → integer truncates; decimal → decimal of smaller
//!   scale rounds half away from zero; float → decimal rounds. Text → BOOLEAN accepts
//!   true/false/t/f/yes/no/on/off/1/0. Casting to TEXT prints integers and decimals exactly
//!   (`1.50`), dates `YYYY-MM-DD`, timestamps `YYYY-MM-DDTHH:MM:SS[.ffffff]`, floats in Rust's
//!   shortest form *(uncertain against Arrow's float formatting)*.
//! - **`||`** takes text, integer and decimal operands (others need a CAST); NULL gives NULL.
//! - **LIKE/ILIKE**: `%` any run, `_` one character, `\` escapes; ILIKE compares lower-cased
//!   (Unicode) text.
//! - **Functions.** lower/upper: Unicode case mapping. length: characters, INT. coalesce: the
//!   arguments' common type. abs keeps the type; abs of the minimum integer is an overflow error.
//!   round(x, n): n must be an integer literal (default 0); integers keep their type (a no-op for
//!   n ≥ 0, else half away from zero); floats `(x·10ⁿ).round()/10ⁿ`; DECIMAL(p,s) becomes
//!   DECIMAL(p, min(s, max(n,0))) rounded half away from zero — all as DataFusion 55.
//!   date_trunc units: microsecond … second, minute, hour, day, week (Monday), month, quarter,
//!   year; the result is a TIMESTAMP (a DATE argument is converted to a timestamp first).
//! - **Aggregates.** count(*), count(x): BIGINT, never NULL (0 over no rows). sum: BIGINT for
//!   integers (wrapping), DOUBLE for floats, DECIMAL(min(38,p+10), s) for decimals. avg: DOUBLE
//!   for integers and floats (summed as f64), DECIMAL(min(38,p+4), s+4) for decimals (the exact
//!   sum divided by the count, truncated). min/max keep the type. All but count give NULL over
//!   no non-NULL input. An aggregate without GROUP BY returns one row also over no rows; with
//!   GROUP BY, no rows. `DISTINCT` inside an aggregate ignores duplicate and NULL values. Float
//!   sums may differ from DataFusion's in the last bits where it adds in another order
//!   *(uncertain)*.
//! - **ORDER BY** keys: an output alias, a 1-based ordinal, an output expression, or any other
//!   expression over the input (not with DISTINCT). Defaults as PostgreSQL and DataFusion: ASC
//!   puts NULLs last, DESC first. Rows with equal keys are ordered by their own values (column
//!   by column, ascending, NULLs last), so the order is deterministic whatever the storage order
//!   (DataFusion leaves ties unspecified; compare with it only where ORDER BY is total). Without
//!   ORDER BY the row order is unspecified (this evaluator returns scan/join order).
//! - **GROUP BY** items are input expressions, output aliases or ordinals. Select expressions
//!   must be grouped expressions or built from aggregates and grouped expressions.
//! - **Identifiers** are case-insensitive (unquoted names are lower-cased); `"Quoted"` names
//!   keep their case. Output columns are named by their alias, else their column name, else the
//!   expression's SQL text *(names differ from DataFusion's, e.g. `count(*)`; compare by
//!   position)*.
//! - **Parameters** `$n` are 1-based; the k-th `?` is parameter k. A parameter's type is its
//!   value's type; they are bound at plan time.
//! - **BIGINT** values are `i64` end to end, exact beyond 2^53. The JavaScript binding must
//!   hand them to JS as `bigint` (or as a decimal string where JSON is required), never as
//!   `number`; DECIMAL values go to JS as strings (`"1.50"`).
//! - **TIMESTAMP** is microseconds since the epoch, UTC, no time zone (the server's
//!   `Timestamp(Microsecond, None)`). Literals accept `YYYY-MM-DD[ T]HH:MM[:SS[.f]][Z|±HH:MM]`
//!   (an offset is converted to UTC).

mod lexer;

pub mod ast;
pub mod check;
pub mod error;
pub mod eval;
pub mod exec;
pub mod memory;
pub mod parser;
pub mod plan;
pub mod schema;
pub mod types;
pub mod value;

pub use error::{QueryError, Result};
pub use exec::{DataSource, Row, execute};
pub use memory::MemoryTables;
pub use parser::parse;
pub use plan::{Field, Plan, Schema};
pub use schema::{Catalog, ColumnDef, TableSchema};
pub use types::DataType;
pub use value::Value;

/// Parse and check `sql` against `catalog`, binding `params`.
pub fn plan(sql: &str, catalog: &dyn Catalog, params: &[Value]) -> Result<Plan> {
    check::plan(&parse(sql)?, catalog, params)
}

/// A query's result: output columns and rows aligned to them.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// Output columns (name and type).
    pub columns: Vec<Field>,
    /// Rows.
    pub rows: Vec<Row>,
}

/// Parse, check and run `sql` over `tables`.
pub fn run<T: Catalog + DataSource>(sql: &str, tables: &T, params: &[Value]) -> Result<QueryResult> {
    let plan = plan(sql, tables, params)?;
    let rows = execute(&plan, tables)?;
    Ok(QueryResult { columns: plan.schema.fields, rows })
}
