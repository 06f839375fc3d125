//! Printing results: aligned tables (the default), JSON lines, or CSV.
//!
//! - `table`: psql-like, numbers right-aligned, `NULL` for nulls, then `(N rows)`; DDL and
//!   DML print the server's message.
//! - `json`: one line per statement: a query is an array of objects (keys in column order),
//!   anything else `{"row_count":N,"message":"..."}`.
//! - `csv`: a header and the rows (RFC 4180 quoting, empty for NULL); messages go to stderr
//!   so stdout stays CSV.

use kalamdb_client_core::protocol::{ColumnInfo, QueryResult};
use serde_json::Value;
use std::io::Write;
use unicode_width::UnicodeWidthStr;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Table,
    Json,
    Csv,
}

impl Format {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Csv => "csv",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "table" | "aligned" => Some(Format::Table),
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// Prints one statement's result: data to `out`, notes (CSV messages) to `notes`.
pub(crate) fn result(
    r: &QueryResult,
    format: Format,
    out: &mut dyn Write,
    notes: &mut dyn Write,
) -> std::io::Result<()> {
    let is_query = !r.schema.is_empty();
    match format {
        Format::Table => {
            if is_query {
                table(&r.schema, &r.rows, out)?;
                writeln!(out, "{}", rows_footer(r.rows.len()))?;
            }
            match &r.message {
                Some(m) => writeln!(out, "{m}"),
                None if !is_query => writeln!(out, "OK, {} row(s)", r.row_count),
                None => Ok(()),
            }
        }
        Format::Json => {
            if is_query {
                let objects: Vec<String> = r.rows.iter().map(|row| json_object(&r.schema, row)).collect();
                writeln!(out, "[{}]", objects.join(","))
            } else {
                let message = r.message.as_ref().map_or(Value::Null, |m| Value::String(m.clone()));
                writeln!(out, "{{\"row_count\":{},\"message\":{}}}", r.row_count, message)
            }
        }
        Format::Csv => {
            if is_query {
                let header: Vec<String> = r.schema.iter().map(|c| csv_field(&c.name)).collect();
                writeln!(out, "{}", header.join(","))?;
                for row in &r.rows {
                    let fields: Vec<String> = row.iter().map(|v| csv_field(&plain(v))).collect();
                    writeln!(out, "{}", fields.join(","))?;
                }
                Ok(())
            } else {
                writeln!(notes, "{}", r.message.clone().unwrap_or_else(|| format!("OK, {} row(s)", r.row_count)))
            }
        }
    }
}

/// `(1 row)` / `(N rows)`.
pub(crate) fn rows_footer(n: usize) -> String {
    if n == 1 { "(1 row)".into() } else { format!("({n} rows)") }
}

/// An aligned table: header, a rule, the rows.
pub(crate) fn table(schema: &[ColumnInfo], rows: &[Vec<Value>], out: &mut dyn Write) -> std::io::Result<()> {
    let cells: Vec<Vec<String>> = rows.iter().map(|row| row.iter().map(cell).collect()).collect();
    let mut widths: Vec<usize> = schema.iter().map(|c| c.name.width()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.width());
        }
    }
    let line = |parts: Vec<String>| format!(" {}", parts.join(" | ")).trim_end().to_string();
    let header = schema.iter().zip(&widths).map(|(c, w)| pad(&c.name, *w, false)).collect();
    writeln!(out, "{}", line(header))?;
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
    writeln!(out, "{}", rule.join("+"))?;
    for (row, values) in cells.iter().zip(rows) {
        let parts =
            row.iter().zip(&widths).zip(values).map(|((c, w), v)| pad(c, *w, matches!(v, Value::Number(_)))).collect();
        writeln!(out, "{}", line(parts))?;
    }
    Ok(())
}

fn pad(s: &str, width: usize, right: bool) -> String {
    let fill = " ".repeat(width.saturating_sub(s.width()));
    if right { format!("{fill}{s}") } else { format!("{s}{fill}") }
}

/// A value as a table cell: text as is (control characters escaped so a row stays one
/// line), `NULL`, numbers and booleans as written, JSON values compact.
pub(crate) fn cell(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::String(s) => {
            let mut out = String::with_capacity(s.len());
            for ch in s.chars() {
                if ch.is_control() {
                    out.extend(ch.escape_default());
                } else {
                    out.push(ch);
                }
            }
            out
        }
        other => other.to_string(),
    }
}

/// A value as unquoted text (CSV): NULL is empty.
fn plain(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value for `key=value` lines (live changes): text quoted, NULL bare.
pub(crate) fn literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::String(s) => format!("'{}'", cell(&Value::String(s.replace('\'', "''")))),
        other => other.to_string(),
    }
}

/// A row as a JSON object with the keys in column order.
pub(crate) fn json_object(schema: &[ColumnInfo], row: &[Value]) -> String {
    let fields: Vec<String> =
        schema.iter().zip(row).map(|(c, v)| format!("{}:{}", Value::String(c.name.clone()), v)).collect();
    format!("{{{}}}", fields.join(","))
}

/// One CSV field, quoted when it must be.
pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A byte count for people: `512 B`, `1.5 KiB`, `3.2 MiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn query() -> QueryResult {
        QueryResult {
            schema: vec![
                ColumnInfo::new("id", "BIGINT"),
                ColumnInfo::new("title", "TEXT"),
                ColumnInfo::new("meta", "JSON"),
            ],
            rows: vec![vec![json!(1), json!("milk"), json!({"a": 1})], vec![json!(200), Value::Null, json!(null)]],
            row_count: 2,
            message: None,
        }
    }

    fn render(r: &QueryResult, f: Format) -> (String, String) {
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        result(r, f, &mut out, &mut notes).unwrap();
        (String::from_utf8(out).unwrap(), String::from_utf8(notes).unwrap())
    }

    #[test]
    fn tables_are_aligned_with_a_row_count() {
        let (out, _) = render(&query(), Format::Table);
        assert_eq!(
            out,
            " id  | title | meta\n-----+-------+---------\n   1 | milk  | {\"a\":1}\n 200 | NULL  | NULL\n(2 rows)\n"
        );
        let one = QueryResult { rows: vec![vec![json!(1), json!("a\nb"), json!(true)]], ..query() };
        let (out, _) = render(&one, Format::Table);
        assert!(out.contains("| a\\nb  |"), "{out}");
        assert!(out.ends_with("(1 row)\n"));
        let wide = QueryResult { rows: vec![vec![json!(1), json!("héllo wörld"), json!(1)]], ..query() };
        let (out, _) = render(&wide, Format::Table);
        assert!(out.lines().all(|l| l.width() <= " id | héllo wörld | meta".width() + 1), "{out}");
    }

    #[test]
    fn messages_and_the_other_formats() {
        let dml = QueryResult { row_count: 3, message: Some("Inserted 3 row(s)".into()), ..QueryResult::default() };
        assert_eq!(render(&dml, Format::Table).0, "Inserted 3 row(s)\n");
        assert_eq!(render(&dml, Format::Json).0, "{\"row_count\":3,\"message\":\"Inserted 3 row(s)\"}\n");
        assert_eq!(render(&dml, Format::Csv), (String::new(), "Inserted 3 row(s)\n".into()));
        assert_eq!(
            render(&query(), Format::Json).0,
            "[{\"id\":1,\"title\":\"milk\",\"meta\":{\"a\":1}},{\"id\":200,\"title\":null,\"meta\":null}]\n"
        );
        let q = QueryResult { rows: vec![vec![json!(1), json!("a,\"b\""), json!(" x")]], ..query() };
        assert_eq!(render(&q, Format::Csv).0, "id,title,meta\n1,\"a,\"\"b\"\"\",\" x\"\n");
    }

    #[test]
    fn small_formatters() {
        assert_eq!(literal(&json!("it's")), "'it''s'");
        assert_eq!(literal(&json!(null)), "NULL");
        assert_eq!(literal(&json!(2.5)), "2.5");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(rows_footer(0), "(0 rows)");
        assert_eq!(Format::parse("CSV"), Some(Format::Csv));
        assert_eq!(Format::parse("xml"), None);
    }
}
