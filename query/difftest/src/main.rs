//! Runs every line of a SQL file through kalamdb-query and through DataFusion over one fixture
//! and reports the queries whose results differ. Both sides failing counts as agreement; only the
//! fact of an error is compared, not its message.

use datafusion::arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int16Array,
    Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use kalamdb_query::value::{format_float, parse_decimal, parse_timestamp};
use kalamdb_query::{ColumnDef, DataType, MemoryTables, TableSchema, Value, run};
use std::sync::Arc;

/// The fixture of `tests/queries.rs`.
fn fixture() -> MemoryTables {
    use DataType::*;
    let dec = |t: &str| Value::decimal(parse_decimal(t, 2).unwrap(), 2);
    let text = |s: &str| Value::Text(s.into());
    let mut db = MemoryTables::new("app");
    db.add_table(
        "lists",
        vec![
            ColumnDef::new("id", BigInt, false),
            ColumnDef::new("name", Text, false),
            ColumnDef::new("owner", Text, true),
        ],
        &["id"],
    )
    .unwrap();
    db.add_table(
        "todos",
        vec![
            ColumnDef::new("id", BigInt, false),
            ColumnDef::new("list_id", BigInt, true),
            ColumnDef::new("title", Text, false),
            ColumnDef::new("done", Boolean, false),
            ColumnDef::new("price", Decimal { precision: 10, scale: 2 }, true),
            ColumnDef::new("created", Timestamp, false),
            ColumnDef::new("qty", Int, true),
        ],
        &["id"],
    )
    .unwrap();
    db.add_table("users", vec![ColumnDef::new("id", BigInt, false), ColumnDef::new("name", Text, false)], &["id"])
        .unwrap();
    db.insert(
        "lists",
        vec![
            vec![Value::Int64(1), text("Home"), text("ann")],
            vec![Value::Int64(2), text("Work"), text("bob")],
            vec![Value::Int64(3), text("Empty"), Value::Null],
        ],
    )
    .unwrap();
    let todo =
        |id: i64, list: Option<i64>, title: &str, done: bool, price: Option<&str>, created: &str, qty: Option<i64>| {
            vec![
                Value::Int64(id),
                list.map_or(Value::Null, Value::Int64),
                text(title),
                Value::Boolean(done),
                price.map_or(Value::Null, dec),
                Value::Timestamp(parse_timestamp(created).unwrap()),
                qty.map_or(Value::Null, Value::Int64),
            ]
        };
    db.insert(
        "todos",
        vec![
            todo(1, Some(1), "milk", false, Some("9.00"), "2024-03-15 10:20:30", Some(2)),
            todo(2, Some(1), "bread", true, Some("10.00"), "2024-03-15 23:59:59", None),
            todo(3, Some(2), "report", false, None, "2024-03-16 08:00:00", Some(5)),
            todo(4, Some(2), "email", false, Some("0.50"), "2024-04-01 00:00:00", Some(1)),
            todo(5, None, "orphan", true, Some("10.00"), "2023-12-31 12:00:00", None),
            todo(6, Some(9), "dangling", false, Some("2.25"), "2024-03-15 10:00:00", Some(3)),
        ],
    )
    .unwrap();
    db.insert("users", vec![vec![Value::Int64(1), text("ann")], vec![Value::Int64(2), text("bob")]]).unwrap();
    // Edge values of the other types: NaN, ±0.0, ±inf, tiny and huge floats, f32 rounding,
    // SMALLINT extremes, dates around the epoch and leap days.
    db.add_table(
        "m",
        vec![
            ColumnDef::new("id", BigInt, false),
            ColumnDef::new("d", Date, true),
            ColumnDef::new("f", Double, true),
            ColumnDef::new("r", Float, true),
            ColumnDef::new("s", SmallInt, true),
            ColumnDef::new("k", Text, true),
        ],
        &["id"],
    )
    .unwrap();
    let date = |t: &str| Value::Date(kalamdb_query::value::parse_date(t).unwrap());
    let f32v = |x: f32| Value::Float64(x as f64);
    let n = Value::Null;
    db.insert(
        "m",
        vec![
            vec![Value::Int64(1), date("2024-02-29"), Value::Float64(1.5), f32v(0.1), Value::Int64(32767), text("a")],
            vec![
                Value::Int64(2),
                date("1970-01-01"),
                Value::Float64(-0.0),
                f32v(-0.0),
                Value::Int64(-32768),
                text("b"),
            ],
            vec![Value::Int64(3), date("1969-12-31"), Value::Float64(0.0), f32v(2.5), Value::Int64(0), text("a")],
            vec![Value::Int64(4), n.clone(), Value::Float64(f64::NAN), f32v(f32::NAN), Value::Int64(7), n.clone()],
            vec![
                Value::Int64(5),
                date("2000-03-01"),
                Value::Float64(f64::INFINITY),
                f32v(1e-7),
                Value::Int64(-1),
                text("c"),
            ],
            vec![Value::Int64(6), date("2024-12-31"), Value::Float64(1e-7), f32v(3.4e38), n.clone(), text("b")],
            vec![Value::Int64(7), date("2024-02-29"), Value::Float64(-2.5), n.clone(), Value::Int64(100), text("")],
            vec![Value::Int64(8), date("2023-01-01"), n.clone(), f32v(-1.25), Value::Int64(-7), text("a")],
            vec![
                Value::Int64(9),
                date("2024-06-15"),
                Value::Float64(0.1),
                f32v(16777217.0),
                Value::Int64(2),
                text("c"),
            ],
            vec![Value::Int64(10), date("2024-06-15"), Value::Float64(1e300), f32v(0.5), Value::Int64(3), text("d")],
        ],
    )
    .unwrap();
    db
}

fn arrow_type(t: DataType) -> ArrowType {
    match t {
        DataType::Null => ArrowType::Null,
        DataType::Boolean => ArrowType::Boolean,
        DataType::SmallInt => ArrowType::Int16,
        DataType::Int => ArrowType::Int32,
        DataType::BigInt => ArrowType::Int64,
        DataType::Float => ArrowType::Float32,
        DataType::Double => ArrowType::Float64,
        DataType::Decimal { precision, scale } => ArrowType::Decimal128(precision, scale),
        DataType::Text | DataType::Json | DataType::CrdtText => ArrowType::Utf8,
        DataType::Bytes => ArrowType::Binary,
        DataType::Date => ArrowType::Date32,
        DataType::Timestamp => ArrowType::Timestamp(TimeUnit::Microsecond, None),
    }
}

/// One column of typed values as an Arrow array.
fn column(t: DataType, values: Vec<&Value>) -> ArrayRef {
    let int = |v: &Value| if let Value::Int64(i) = v { Some(*i) } else { None };
    let float = |v: &Value| if let Value::Float64(f) = v { Some(*f) } else { None };
    let text = |v: &Value| match v {
        Value::Text(s) | Value::Json(s) => Some(s.to_string()),
        _ => None,
    };
    match t {
        DataType::Boolean => Arc::new(
            values.iter().map(|v| if let Value::Boolean(b) = v { Some(*b) } else { None }).collect::<BooleanArray>(),
        ),
        DataType::SmallInt => Arc::new(values.iter().map(|v| int(v).map(|i| i as i16)).collect::<Int16Array>()),
        DataType::Int => Arc::new(values.iter().map(|v| int(v).map(|i| i as i32)).collect::<Int32Array>()),
        DataType::BigInt => Arc::new(values.iter().map(|v| int(v)).collect::<Int64Array>()),
        DataType::Float => Arc::new(values.iter().map(|v| float(v).map(|f| f as f32)).collect::<Float32Array>()),
        DataType::Double => Arc::new(values.iter().map(|v| float(v)).collect::<Float64Array>()),
        DataType::Decimal { precision, scale } => Arc::new(
            values
                .iter()
                .map(|v| if let Value::Decimal(d) = v { Some(d.value) } else { None })
                .collect::<Decimal128Array>()
                .with_precision_and_scale(precision, scale)
                .unwrap(),
        ),
        DataType::Text | DataType::Json | DataType::CrdtText => {
            Arc::new(values.iter().map(|v| text(v)).collect::<StringArray>())
        }
        DataType::Bytes => Arc::new(
            values
                .iter()
                .map(|v| if let Value::Bytes(b) = v { Some(&b[..]) } else { None })
                .collect::<BinaryArray>(),
        ),
        DataType::Date => Arc::new(
            values.iter().map(|v| if let Value::Date(d) = v { Some(*d) } else { None }).collect::<Date32Array>(),
        ),
        DataType::Timestamp => Arc::new(
            values
                .iter()
                .map(|v| if let Value::Timestamp(t) = v { Some(*t) } else { None })
                .collect::<TimestampMicrosecondArray>(),
        ),
        DataType::Null => unreachable!("no NULL-typed columns"),
    }
}

fn register(ctx: &SessionContext, db: &MemoryTables, table: &TableSchema) {
    use kalamdb_query::DataSource;
    let rows: Vec<&[Value]> = db.scan(table).unwrap().collect();
    let fields: Vec<Field> = table.columns.iter().map(|c| Field::new(&c.name, arrow_type(c.ty), c.nullable)).collect();
    let schema = Arc::new(Schema::new(fields));
    let arrays =
        table.columns.iter().enumerate().map(|(i, c)| column(c.ty, rows.iter().map(|r| &r[i]).collect())).collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
    ctx.register_table(table.name.as_str(), Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())).unwrap();
}

fn ours(db: &MemoryTables, sql: &str) -> Result<Vec<String>, String> {
    let r = run(sql, db, &[]).map_err(|e| e.to_string())?;
    Ok(r.rows
        .iter()
        .map(|row| {
            row.iter()
                .zip(&r.columns)
                .map(|(v, c)| match (v, c.ty) {
                    (Value::Float64(f), DataType::Float) => format_float(*f, true),
                    _ => v.to_string(),
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect())
}

async fn theirs(ctx: &SessionContext, sql: &str) -> Result<Vec<String>, String> {
    let df = ctx.sql(sql).await.map_err(|e| e.to_string())?;
    let batches = df.collect().await.map_err(|e| e.to_string())?;
    let opts = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let fmts: Vec<_> = b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap()).collect();
        for r in 0..b.num_rows() {
            out.push(fmts.iter().map(|f| f.value(r).to_string()).collect::<Vec<_>>().join("|"));
        }
    }
    Ok(out)
}

/// Failures of DataFusion 55 itself, on queries this crate answers correctly: not counted.
const KNOWN_DATAFUSION_ERRORS: [&str; 3] = [
    // Unaliased expressions or aggregates whose generated names collide.
    "require unique expression names",
    "duplicate unqualified field name",
    // round(decimal, n) has one scale in the logical plan and another at execution.
    "Invalid comparison operation: Decimal128",
];

/// Whether two result cells agree: equal text, or two floats within a few ulps (float sums
/// depend on how DataFusion batches rows; this crate sums exactly).
fn cells_agree(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) if x != y && x.is_finite() && y.is_finite() => {
            (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
        }
        _ => false,
    }
}

fn rows_agree(a: &[String], b: &[String]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            let (xs, ys): (Vec<&str>, Vec<&str>) = (x.split('|').collect(), y.split('|').collect());
            xs.len() == ys.len() && xs.iter().zip(&ys).all(|(p, q)| cells_agree(p, q))
        })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    use kalamdb_query::Catalog;
    let db = fixture();
    // As the server: one partition per plan.
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    for name in ["lists", "todos", "users", "m"] {
        register(&ctx, &db, &db.table(None, name).unwrap());
    }
    let file = std::env::args().nth(1).expect("usage: kalamdb-query-difftest QUERIES.sql");
    let (mut same, mut both_err, mut known, mut differ) = (0, 0, 0, 0);
    for sql in std::fs::read_to_string(file).unwrap().lines().filter(|l| !l.trim().is_empty()) {
        match (ours(&db, sql), theirs(&ctx, sql).await) {
            (Err(_), Err(_)) => both_err += 1,
            (Ok(a), Ok(b)) if rows_agree(&a, &b) => same += 1,
            (Ok(_), Err(e)) if KNOWN_DATAFUSION_ERRORS.iter().any(|k| e.contains(k)) => known += 1,
            (a, b) => {
                differ += 1;
                println!("DIFF {sql}\n  kalamdb-query: {a:?}\n  datafusion:    {b:?}");
            }
        }
    }
    println!("same={same} both_err={both_err} known_datafusion_bugs={known} differ={differ}");
    if differ > 0 {
        std::process::exit(1);
    }
}
