//! Integration tests: each starts the real server binary (see `common`).

mod admin;
mod alter;
mod auth;
mod backups;
mod bad_input;
mod client_sync;
mod cluster;
mod common;
mod cors;
mod crdt;
mod differential;
mod durability;
mod flush;
mod hostile;
mod isolation;
mod live;
mod retention;
mod sql_basics;
mod storages;
mod tls;
