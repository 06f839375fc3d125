//! Fault injection for tests, through the `fail` crate, in debug builds only (release builds
//! compile the points out). The server reads `FAILPOINTS` when it starts, in `fail`'s syntax:
//! - `FAILPOINTS='flush:after_write=return'` aborts the process (as `kill -9` would stop it)
//!   at crash point `flush:after_write` of a flush or compaction; `2*off->return` aborts on
//!   the third pass;
//! - `FAILPOINTS='cluster:snapshot_write=return'` makes the operation at a failure point fail
//!   with an I/O error, without aborting;
//! - `FAILPOINTS='flush:locked=sleep(700)'` sleeps at every pass through delay point
//!   `flush:locked`, to widen race windows.
//!
//! Several points are separated by `;`.
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
/// A flush has read the current versions of a chunk of hot rows it is about to remove, and
/// has not yet taken the commit lock.
pub const REMOVE_BEFORE_LOCK: &str = "flush:remove_before_lock";
/// A scan has listed a partition's files and not yet read them.
pub const SCAN_AFTER_LISTING: &str = "scan:after_listing";
/// A backup is about to copy one cold file.
pub const BACKUP_FILE: &str = "backup:file";

/// Taking a Raft snapshot fails here (as on a full disk) if this point is configured to
/// `return`, after the snapshot's files are partly written.
pub const SNAPSHOT_WRITE: &str = "cluster:snapshot_write";
/// Applying a replicated commit fails here with an internal error (as a broken disk would)
/// if this point is configured to `return`: the node's Raft stops.
pub const APPLY_COMMIT: &str = "cluster:apply_commit";
/// Applying a replicated catalog statement fails here with an internal error if this point
/// is configured to `return`: the node's Raft stops.
pub const APPLY_STATEMENT: &str = "cluster:apply_statement";

/// A follower takes this many more milliseconds to answer each Raft append (and heartbeat)
/// if this point is configured to `return(ms)`, as a busy machine would.
pub const APPEND_SLOWLY: &str = "cluster:append";

/// Reads `FAILPOINTS`; the points stay configured while the returned scenario lives.
#[cfg(debug_assertions)]
pub fn setup() -> fail::FailScenario<'static> {
    fail::FailScenario::setup()
}

/// Aborts here if this point is configured to `return`.
#[cfg(debug_assertions)]
pub fn point(name: &str) {
    fail::fail_point!(name, |_| {
        eprintln!("kalamdb-server: fault injected at {name}");
        std::process::abort();
    });
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn point(_name: &str) {}

/// Whether this point is configured to `return`: the caller fails as it would on an I/O error.
#[cfg(debug_assertions)]
pub fn fails(name: &str) -> bool {
    fail::fail_point!(name, |_| true);
    false
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn fails(_name: &str) -> bool {
    false
}

/// Sleeps here if this point is configured to `sleep(ms)`.
#[cfg(debug_assertions)]
pub fn delay(name: &str) {
    fail::fail_point!(name);
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn delay(_name: &str) {}

/// Waits, without holding a thread, as many milliseconds as this point is configured to
/// `return(ms)`.
#[cfg(debug_assertions)]
pub async fn pause(name: &str) {
    let millis: Option<u64> = (|| {
        fail::fail_point!(name, |ms| ms.and_then(|ms| ms.parse().ok()));
        None
    })();
    if let Some(millis) = millis {
        tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub async fn pause(_name: &str) {}
