//! The SQL front end on arbitrary text: splitting, KalamDB's own statements, and the
//! sqlparser front end that statements and subscriptions share. No input may panic, and
//! libFuzzer's `-timeout` catches any that takes long (the server parses before any
//! deadline can apply).
#![no_main]

use kalamdb_server::fuzzing::sql_front;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        sql_front(text);
    }
});
