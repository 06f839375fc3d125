//! The rules of completion: every case of completion-cases.json (their `about` says what a
//! case asserts), then how entries rank, what a quoted name's completion replaces, and where
//! nothing is completed.

use kalamdb_complete::{Catalog, Column, Completion, CompletionKind, Completions, Table, complete};
use serde::Deserialize;

const CASES: &str = include_str!("completion-cases.json");

#[derive(Deserialize)]
struct Cases {
    catalog: CaseCatalog,
    cases: Vec<Case>,
    unfinished: Vec<String>,
    pasted: Vec<Pasted>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseCatalog {
    namespaces: Vec<String>,
    tables: Vec<CaseTable>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseTable {
    namespace: String,
    name: String,
    columns: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    sql: String,
    namespace: Option<String>,
    columns: Option<Vec<String>>,
    exactly: Option<Vec<String>>,
    #[serde(default)]
    offered: Vec<String>,
    #[serde(default)]
    not_offered: Vec<String>,
}

/// An input too long to write out: its parts, each a text and how many times it repeats.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Pasted {
    name: String,
    parts: Vec<(String, usize)>,
    offered: Vec<String>,
}

fn cases() -> Cases {
    serde_json::from_str(CASES).expect("tests/completion-cases.json")
}

/// The cases' catalog (tables of kind `user`, columns of type `Utf8`: they only show as
/// details).
fn catalog() -> Catalog {
    let table = |t: CaseTable| Table {
        namespace: t.namespace,
        name: t.name,
        kind: "user".to_string(),
        columns: t.columns.into_iter().map(|name| Column { name, data_type: "Utf8".to_string() }).collect(),
    };
    let shared = cases().catalog;
    Catalog { namespaces: shared.namespaces, tables: shared.tables.into_iter().map(table).collect() }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// The text and caret of `sql`, whose one `|` is the caret.
fn at_caret(sql: &str) -> Option<(String, usize)> {
    let caret = sql.find('|').filter(|&p| sql.rfind('|') == Some(p))?;
    Some((sql.replacen('|', "", 1), caret))
}

/// What fails in `case`, if anything.
fn check(catalog: &Catalog, case: &Case) -> Vec<String> {
    let Some((text, caret)) = at_caret(&case.sql) else {
        return vec!["the sql has no caret, or more than one `|`".to_string()];
    };
    let items = complete(catalog, &text, caret, case.namespace.as_deref(), true).map(|c| c.items).unwrap_or_default();
    let all = sorted(items.iter().map(|c| c.text.clone()).collect());
    let columns = sorted(items.iter().filter(|c| c.kind == CompletionKind::Column).map(|c| c.text.clone()).collect());
    let mut failed = Vec::new();
    if let Some(expected) = case.columns.clone().map(sorted)
        && expected != columns
    {
        failed.push(format!("columns {columns:?}, expected {expected:?}"));
    }
    if let Some(expected) = case.exactly.clone().map(sorted)
        && expected != all
    {
        failed.push(format!("offered {all:?}, expected exactly {expected:?}"));
    }
    let missing: Vec<&String> = case.offered.iter().filter(|o| !all.contains(o)).collect();
    if !missing.is_empty() {
        failed.push(format!("{missing:?} not offered"));
    }
    let unwanted: Vec<&String> = case.not_offered.iter().filter(|o| all.contains(o)).collect();
    if !unwanted.is_empty() {
        failed.push(format!("{unwanted:?} offered"));
    }
    failed
}

#[test]
fn the_cases() {
    let shared = cases();
    let catalog = catalog();
    let failures: Vec<String> = shared
        .cases
        .iter()
        .flat_map(|case| check(&catalog, case).into_iter().map(|f| format!("{}: {}\n  {}", case.name, case.sql, f)))
        .collect();
    assert!(failures.is_empty(), "{} of {} failed:\n{}", failures.len(), shared.cases.len(), failures.join("\n"));
}

#[test]
fn unfinished_statements_never_panic() {
    let catalog = catalog();
    for text in cases().unfinished {
        for caret in 0..=text.len() + 1 {
            for explicit in [true, false] {
                if let Some(found) = complete(&catalog, &text, caret, Some("app"), explicit) {
                    assert!(found.from <= found.to && found.to <= text.len(), "{text:?} at {caret}");
                }
            }
        }
    }
}

/// On a test's thread, whose stack is smaller than the shell's (2 MiB, not 8).
#[test]
fn pasted_inputs_complete_without_exhausting_the_stack() {
    let catalog = catalog();
    for pasted in cases().pasted {
        let text: String = pasted.parts.iter().map(|(part, times)| part.repeat(*times)).collect();
        let items = complete(&catalog, &text, text.len(), Some("app"), true).map(|c| c.items).unwrap_or_default();
        let missing: Vec<&String> = pasted.offered.iter().filter(|o| !items.iter().any(|c| &&c.text == o)).collect();
        assert!(missing.is_empty(), "{}: {missing:?} not offered", pasted.name);
    }
}

/// What is offered with the caret at the end of `before`, the text going on with `after`, in
/// the namespace `app`.
fn offered(before: &str, after: &str, explicit: bool) -> Option<Vec<Completion>> {
    complete(&catalog(), &format!("{before}{after}"), before.len(), Some("app"), explicit).map(|c| c.items)
}

fn texts(before: &str, after: &str, explicit: bool) -> Vec<String> {
    offered(before, after, explicit).unwrap_or_default().into_iter().map(|c| c.text).collect()
}

fn column_names(before: &str, after: &str) -> Vec<String> {
    let items = offered(before, after, true).unwrap_or_default();
    items.into_iter().filter(|c| c.kind == CompletionKind::Column).map(|c| c.text).collect()
}

const OPEN: &str = "WITH open AS (SELECT id, title AS name FROM app.todos WHERE NOT done) ";
const TODOS: [&str; 4] = ["id", "title", "done", "list_id"];

#[test]
fn the_querys_own_names_come_first() {
    // A CTE's columns, with the CTE's name as their detail.
    let first: Vec<(CompletionKind, String, String)> = offered(&format!("{OPEN}SELECT "), " FROM open", true)
        .unwrap_or_default()[..2]
        .iter()
        .map(|c| (c.kind, c.text.clone(), c.detail.clone()))
        .collect();
    assert_eq!(
        first,
        [
            (CompletionKind::Column, "id".to_string(), "open".to_string()),
            (CompletionKind::Column, "name".to_string(), "open".to_string())
        ]
    );
    let sub = " FROM (SELECT title, count(*) AS n FROM app.todos GROUP BY title) s";
    assert_eq!(column_names("SELECT ", sub), ["title", "n"]);
    // A subquery's own table's, then (correlated) the outer query's.
    let correlated = column_names("SELECT * FROM app.todos WHERE title IN (SELECT ", " FROM app.tags)");
    assert_eq!(correlated, ["tag", "id", "title", "done", "list_id"]);
    // In ORDER BY, the select list's names, then the tables' columns.
    let ranked = "SELECT title, CASE WHEN done THEN 1 ELSE 0 END AS rank FROM app.todos ORDER BY ";
    let rest = TODOS.iter().filter(|c| **c != "title").map(|c| c.to_string());
    assert_eq!(
        column_names(ranked, ""),
        ["title".to_string(), "rank".to_string()].into_iter().chain(rest).collect::<Vec<_>>()
    );
    // Columns, then keywords and functions, then tables and namespaces.
    let mut kinds = Vec::new();
    for c in offered("SELECT ", " FROM app.lists", true).unwrap_or_default() {
        if kinds.last() != Some(&c.kind) {
            kinds.push(c.kind);
        }
    }
    use CompletionKind::*;
    assert_eq!(kinds, [Column, Keyword, Function, Table, Namespace]);
}

#[test]
fn tables_complete_by_their_own_name_and_as_ns_table() {
    assert_eq!(texts("SELECT * FROM tod", "", true), ["todos", "app.todos"]);
    assert_eq!(texts("SELECT * FROM ev", "", true), ["analytics.events"]);
    let first = offered("SELECT * FROM app.li", "", true).unwrap_or_default().remove(0);
    assert_eq!(first, Completion { text: "app.lists".into(), kind: CompletionKind::Table, detail: "user".into() });
}

#[test]
fn a_quoted_name_is_replaced_whole_its_closing_quote_included() {
    // What the text becomes when the first entry offered at the caret (at `|`) is taken.
    let taken = |sql: &str| {
        let (text, caret) = at_caret(sql).expect("a caret");
        let found = complete(&catalog(), &text, caret, Some("app"), false).expect("completions");
        format!("{}{}{}", &text[..found.from], found.items[0].text, &text[found.to..])
    };
    assert_eq!(taken("SELECT \"ti| FROM app.todos"), "SELECT \"title\" FROM app.todos");
    assert_eq!(taken("SELECT \"ti|\" FROM app.todos"), "SELECT \"title\" FROM app.todos");
    assert_eq!(taken("SELECT \"ti|tl\" FROM app.todos"), "SELECT \"title\" FROM app.todos");
    assert_eq!(taken("SELECT t.\"ti|, t.id FROM app.todos t"), "SELECT t.\"title\", t.id FROM app.todos t");
    assert_eq!(taken("SELECT \"t\".\"ti|, t.id FROM app.todos t"), "SELECT \"t\".\"title\", t.id FROM app.todos t");
    assert_eq!(taken("SELECT titl| FROM app.todos"), "SELECT title FROM app.todos");
    assert_eq!(taken("SELECT ti|tl FROM app.todos"), "SELECT title FROM app.todos");
    // Unless asked for, nothing right after the opening quote, nor the name typed whole.
    assert_eq!(complete(&catalog(), "SELECT \"", 8, Some("app"), false), None);
    assert!(texts("SELECT \"title", "\" FROM app.todos", false).is_empty());
}

#[test]
fn where_nothing_is_completed_and_what_is_replaced() {
    // Nothing inside a string or comment, in a number, or right after a quoted name.
    assert_eq!(offered("SELECT 'ti", "", true), None);
    assert_eq!(offered("SELECT 1 /* ti", "", true), None);
    assert_eq!(offered("SELECT 1 -- ti", "", true), None);
    assert_eq!(offered("SELECT 12", "", true), None);
    assert_eq!(offered("SELECT \"title\"", "", true), None);
    // Unless asked for, an empty word gets nothing and the word itself is left out.
    assert_eq!(offered("SELECT ", "", false), None);
    assert!(!texts("SELECT title", " FROM app.todos", false).contains(&"title".to_string()));
    assert!(texts("SELECT title", " FROM app.todos", true).contains(&"title".to_string()));
    // The word at the caret: what replaces it runs to its end.
    let found = complete(&catalog(), "SELECT tit FROM app.todos", "SELECT ti".len(), Some("app"), true);
    assert_eq!(found.map(|c| (c.from, c.to)), Some(("SELECT ".len(), "SELECT tit".len())));
    // Offsets are bytes, in any script; a caret inside a character is taken back to its start.
    let text = "SELECT é FROM app.todos";
    assert!(matches!(complete(&catalog(), text, 8, None, true), Some(Completions { from: 7, .. })));
}

#[test]
fn keywords_follow_the_case_typed() {
    assert!(texts("sel", "", true).contains(&"select".to_string()));
    assert!(texts("SEL", "", true).contains(&"SELECT".to_string()));
    assert!(texts("SELECT co", "", true).contains(&"count".to_string()));
}

#[test]
fn meta_commands_that_take_a_table_or_namespace() {
    assert_eq!(texts("\\d app.e", "", true), Vec::<String>::new());
    assert_eq!(texts("\\d analytics.e", "", true), ["analytics.events"]);
    assert!(texts("\\d t", "", true).contains(&"todos".to_string()));
    assert_eq!(texts("\\dt a", "", true), ["app", "analytics"]);
}

#[test]
fn names_that_differ_by_case_only_are_offered_each() {
    let columns = ["Name", "NAME", "name"].map(|name| Column { name: name.to_string(), data_type: "Utf8".to_string() });
    let people = Table {
        namespace: "app".to_string(),
        name: "people".to_string(),
        kind: "user".to_string(),
        columns: columns.to_vec(),
    };
    let catalog = Catalog { namespaces: vec!["app".to_string()], tables: vec![people] };
    let offered = |sql: &str| {
        let (text, caret) = at_caret(sql).expect("a caret");
        let found = complete(&catalog, &text, caret, Some("app"), true).map(|c| c.items).unwrap_or_default();
        sorted(found.into_iter().map(|c| c.text).collect())
    };
    // Three columns: two need quotes to be told apart from the third.
    assert_eq!(offered("SELECT \"N| FROM app.people"), vec!["\"NAME\"", "\"Name\"", "\"name\""]);
    let plain = offered("SELECT n| FROM app.people");
    for name in ["\"NAME\"", "\"Name\"", "name"] {
        assert!(plain.contains(&name.to_string()), "{name} missing from {plain:?}");
    }
}
