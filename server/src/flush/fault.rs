//! Fault injection for crash tests: with `KALAMDB_FAULT=<point>[@n]` set, a debug build
//! aborts the process (as `kill -9` would stop it) the `n`-th time (default: first) it
//! reaches `<point>`. Release builds ignore the variable.

pub const AFTER_WRITE: &str = "flush:after_write";
pub const AFTER_RENAME: &str = "flush:after_rename";
pub const AFTER_MANIFEST: &str = "flush:after_manifest";
pub const MID_DELETE: &str = "flush:mid_delete";
pub const AFTER_DELETE: &str = "flush:after_delete";

/// Aborts here if this point is the configured fault.
#[cfg(debug_assertions)]
pub fn point(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static HITS: AtomicU64 = AtomicU64::new(0);
    let Ok(spec) = std::env::var("KALAMDB_FAULT") else { return };
    let (target, nth) = match spec.split_once('@') {
        Some((t, n)) => (t.to_string(), n.parse::<u64>().unwrap_or(1)),
        None => (spec, 1),
    };
    if target == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == nth {
        eprintln!("kalamdb-server: fault injected at {name}");
        std::process::abort();
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn point(_name: &str) {}
