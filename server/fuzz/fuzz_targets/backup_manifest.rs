//! Backup manifests as RESTORE and SHOW BACKUP read them: the tag check, parsing and the
//! name checks that keep paths inside the backup and the storage.
#![no_main]

use kalamdb_server::fuzzing::backup_manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| backup_manifest(data));
