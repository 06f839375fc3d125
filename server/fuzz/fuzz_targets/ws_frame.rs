//! WebSocket frames as the server decodes them, with the SQL of a `subscribe` frame.
#![no_main]

use kalamdb_server::fuzzing::ws_frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ws_frame(data));
