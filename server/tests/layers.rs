//! The server's module graph: which top-level modules name which (`crate::x` outside comments
//! and test modules), and its cycles. `cargo test -p kalamdb-server --test layers -- --nocapture`
//! prints both.
//!
//! There is no cycle: layers name only layers below them (bottom up: types, values, schema →
//! storage → cold → tables → replication → live → database → flush, cleanup, backup →
//! recovery, sql → api → cluster → server). A cycle fails the test, and so does a bottom layer naming one above it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → modules it names.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            // Test modules may use anything.
            if path.extension().is_none_or(|e| e != "rs") || path.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap();
            let top =
                rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
            if top == "lib" || top == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
            let names = graph.entry(top.clone()).or_default();
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for (at, _) in line.match_indices("crate::") {
                    let name: String =
                        line[at + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                    if !name.is_empty() && name != top {
                        names.insert(name);
                    }
                }
            }
        }
    }
    graph
}

/// Strongly connected components with more than one module.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    // Two modules are in one cycle when each reaches the other.
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(m) = todo.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if graph.contains_key(next) && seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&String, BTreeSet<String>> = graph.keys().map(|m| (m, reach(m))).collect();
    let mut out: Vec<BTreeSet<String>> = Vec::new();
    for m in graph.keys() {
        let component: BTreeSet<String> =
            graph.keys().filter(|n| reachable[m].contains(*n) && reachable[n].contains(m)).cloned().collect();
        if component.len() > 1 && !out.contains(&component) {
            out.push(component);
        }
    }
    out
}

#[test]
fn module_cycles_do_not_grow() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    for (module, names) in &graph {
        println!("{module} -> {}", names.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    let found = cycles(&graph);
    println!("cycles: {found:?}");
    assert!(found.is_empty(), "module cycles: {found:?}");
    // The bottom and engine layers name nothing above them.
    for (module, below) in [
        ("types", &[][..]),
        ("values", &["types", "error", "ids"][..]),
        ("schema", &["types", "values", "error", "ids", "clock"][..]),
        // The engine: hot tier, cold tier, commit path, live fan-out, and their wiring.
        ("storage", &["error", "ids", "schema", "types", "values"][..]),
        ("cold", &["clock", "error", "fault", "ids", "schema", "storage", "types", "values"][..]),
        ("tables", &["clock", "cold", "error", "fault", "ids", "schema", "storage", "types", "values"][..]),
        ("live", &["budget", "clock", "cold", "error", "ids", "schema", "storage", "tables", "values"][..]),
        (
            "database",
            &[
                "auth",
                "budget",
                "catalog",
                "clock",
                "cold",
                "config",
                "error",
                "ids",
                "jobs",
                "live",
                "replication",
                "schema",
                "storage",
                "tables",
            ][..],
        ),
        // What a cluster replicates, between the commit path and the layers that write.
        ("replication", &["auth", "cold", "error", "ids", "jobs", "live", "schema", "storage", "tables"][..]),
    ] {
        let names = &graph[module];
        assert!(names.iter().all(|n| below.contains(&n.as_str())), "{module} names {names:?}");
    }
}

#[test]
fn the_cycle_check_finds_cycles() {
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a", &["b"][..]), ("b", &["c"][..]), ("c", &["a"][..]), ("d", &["a"][..])]
            .into_iter()
            .map(|(m, names)| (m.to_string(), names.iter().map(|s| s.to_string()).collect()))
            .collect();
    let expected: BTreeSet<String> = ["a", "b", "c"].into_iter().map(String::from).collect();
    assert_eq!(cycles(&graph), vec![expected]);
}
