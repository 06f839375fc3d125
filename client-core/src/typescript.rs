//! The TypeScript SDK's copies of the types the engine hands to JavaScript are generated
//! from the Rust definitions (ts-rs) into `sdks/typescript/src/generated/`, and checked here:
//! a field or variant changed in Rust without regenerating fails this test, and the SDK's
//! code that reads these values then fails to compile against the new types.
//!
//! Integers are `number`: the engine serialises with serde-wasm-bindgen's JSON-compatible
//! mode, which gives JavaScript numbers (cursors are microseconds, well inside 2^53).

use crate::protocol::{ColumnInfo, ErrorCode, Role, UserInfo};
use crate::sync::{MutationState, SyncEvent, SyncStatus};
use ts_rs::TS;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdks/typescript/src/generated");

fn config() -> ts_rs::Config {
    ts_rs::Config::default().with_large_int("number").with_import_extension(Some("js"))
}

/// `(file name, generated text)` of every generated type.
fn generated() -> Vec<(String, String)> {
    fn one<T: TS + ?Sized + 'static>(cfg: &ts_rs::Config) -> (String, String) {
        let text = T::export_to_string(cfg).expect("ts-rs renders the type");
        (format!("{}.ts", T::name(cfg)), text)
    }
    let cfg = config();
    vec![
        one::<ErrorCode>(&cfg),
        one::<Role>(&cfg),
        one::<UserInfo>(&cfg),
        one::<ColumnInfo>(&cfg),
        one::<SyncStatus>(&cfg),
        one::<MutationState>(&cfg),
        one::<SyncEvent>(&cfg),
    ]
}

#[test]
fn the_typescript_wire_types_are_generated_from_the_rust_ones() {
    let write = std::env::var_os("KALAMDB_WRITE_TS").is_some();
    let mut stale = Vec::new();
    for (file, text) in generated() {
        let path = std::path::Path::new(DIR).join(&file);
        if write {
            std::fs::create_dir_all(DIR).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        if std::fs::read_to_string(&path).unwrap_or_default() != text {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} in {DIR} are not the TypeScript of their Rust types: \
         run `KALAMDB_WRITE_TS=1 cargo test -p kalamdb-client-core typescript`"
    );
}
