//! The code the fuzz targets (`server/fuzz`, see `RELIABILITY.md`) run on each input, kept
//! here so that the regression test replaying their findings (`server/fuzz/regressions`)
//! runs exactly the same code.

use crate::auth::ManifestSigner;
use crate::backup::{self, BackupManifest};
use crate::sql::parser;
use kalamdb_client_core::protocol::ws::ClientMessage;

/// SQL text as `/v1/api/sql` parses it (tokenized once, each statement parsed), and the
/// whole text as subscription SQL.
pub fn sql_front(text: &str) {
    let _ = parser::parse_sql(text);
    let Ok(script) = parser::Script::tokenize(text) else { return };
    for i in 0..script.len().min(16) {
        let _ = script.statement(i);
    }
}

/// A WebSocket text frame as a connection decodes it, and a `subscribe` frame's SQL.
pub fn ws_frame(data: &[u8]) {
    if let Ok(ClientMessage::Subscribe(s)) = serde_json::from_slice::<ClientMessage>(data) {
        let _ = parser::parse_sql(&s.sql);
    }
}

/// A backup manifest as RESTORE and SHOW BACKUP read it: the tag check, then parsing and
/// the name checks.
pub fn backup_manifest(data: &[u8]) {
    let signer = ManifestSigner::new(b"fuzzing-key".to_vec());
    let tag = signer.sign(data);
    assert!(signer.verify(data, &tag));
    let _ = signer.verify(data, std::str::from_utf8(data).unwrap_or(""));
    if let Ok(manifest) = serde_json::from_slice::<BackupManifest>(data) {
        let _ = backup::check_names(&manifest);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, Instant};

    /// Replays every saved input of a target (seeds and findings) within a time bound.
    fn replay(target: &str, run: fn(&[u8])) {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut count = 0;
        for dir in ["seeds", "regressions"] {
            let Ok(entries) = std::fs::read_dir(base.join(dir).join(target)) else { continue };
            for entry in entries.flatten() {
                let input = std::fs::read(entry.path()).unwrap();
                let started = Instant::now();
                run(&input);
                let took = started.elapsed();
                assert!(took < Duration::from_secs(1), "{} took {took:?}", entry.path().display());
                count += 1;
            }
        }
        assert!(count > 0, "no saved inputs for {target}");
    }

    #[test]
    fn sql_front_inputs_are_handled_quickly() {
        replay("sql_front", |d| {
            if let Ok(text) = std::str::from_utf8(d) {
                super::sql_front(text)
            }
        });
    }

    #[test]
    fn ws_frame_inputs_are_handled_quickly() {
        replay("ws_frame", super::ws_frame);
    }

    #[test]
    fn backup_manifest_inputs_are_handled_quickly() {
        replay("backup_manifest", super::backup_manifest);
    }
}
