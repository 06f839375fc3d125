//! Fault injection for tests, in debug builds only (release builds ignore the variables):
//! - `KALAMDB_FAULT=<point>[@n]` aborts the process (as `kill -9` would stop it) the `n`-th
//!   time (default: first) it reaches crash point `<point>` of a flush or compaction;
//! - `KALAMDB_DELAY=<point>:<ms>` sleeps that long at every pass through delay point
//!   `<point>`, to widen race windows.

pub const AFTER_WRITE: &str = "flush:after_write";
pub const AFTER_RENAME: &str = "flush:after_rename";
pub const AFTER_MANIFEST: &str = "flush:after_manifest";
pub const MID_DELETE: &str = "flush:mid_delete";
pub const AFTER_DELETE: &str = "flush:after_delete";
/// A compaction published its file but has not written the manifest.
pub const COMPACT_AFTER_WRITE: &str = "cleanup:after_write";
/// A compaction wrote the manifest but has not deleted the files it replaced.
pub const COMPACT_AFTER_MANIFEST: &str = "cleanup:after_manifest";

/// A flush holds its partition's flush lock and has found its table; it has written nothing.
pub const FLUSH_LOCKED: &str = "flush:locked";
/// A scan has listed a partition's files and not yet read them.
pub const SCAN_AFTER_LISTING: &str = "scan:after_listing";
/// A backup is about to copy one cold file.
pub const BACKUP_FILE: &str = "backup:file";

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

/// Sleeps here if this point is the configured delay.
#[cfg(debug_assertions)]
pub fn delay(name: &str) {
    static DELAY: std::sync::OnceLock<Option<(String, u64)>> = std::sync::OnceLock::new();
    let configured = DELAY.get_or_init(|| {
        let spec = std::env::var("KALAMDB_DELAY").ok()?;
        let (point, ms) = spec.rsplit_once(':')?;
        Some((point.to_string(), ms.parse().ok()?))
    });
    if let Some((point, ms)) = configured
        && point == name
    {
        std::thread::sleep(std::time::Duration::from_millis(*ms));
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn delay(_name: &str) {}
