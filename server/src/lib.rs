//! KalamDB server.
//!
//! A request travels: [`api`] (HTTP, auth header, limits; the user's turn from
//! [`budget::Admission`]) → a task on the [`budget::QueryRuntime`] with a deadline →
//! [`sql`] (split, parse, run each statement as the caller) → [`catalog`] for DDL or
//! [`tables`] for data: reads through DataFusion providers scoped to the caller's partition,
//! under the statement's memory budget and the fair scheduler's CPU slots, writes through
//! the [`tables::Committer`], which assigns `_updated` and writes to [`storage`] (RocksDB).
//!
//! In cluster mode a write takes a detour before the committer: [`replication`] is the seam
//! (what is replicated, and how the SQL layer reaches the cluster), [`cluster`] runs the
//! node: a follower forwards write statements to the leader, the leader proposes the rows
//! it planned (or a catalog statement) to the Raft log, and every node applies committed
//! entries through the same committer.
//!
//! - [`config`]: TOML + environment + flags.
//! - [`server`]: bind, serve, graceful shutdown.
//! - [`database`]: the engine's handles, wired at start ([`server`] then runs recovery and
//!   starts the flush and cleanup policies).
//! - [`auth`]: passwords, JWTs, lockout, the root bootstrap, roles.
//! - [`budget`]: resource governance — the query runtime, fair CPU scheduling, statement
//!   memory, metered functions, per-user limits.
//! - [`catalog`]: namespaces, tables, schema versions, users: stored and served.
//! - [`schema`]: the table and column model the catalog stores.
//! - [`types`]: the column types of the SQL surface.
//! - [`live`]: subscriptions, catch-up and the fan-out of committed changes; the WebSocket
//!   they travel on (cursor sync, mutations) is [`api`]'s.
//! - [`tables`]: commit path, DataFusion table providers, `system.*` tables.
//! - [`storage`]: RocksDB column families, key layout, row encoding (the hot tier).
//! - [`cold`]: Parquet files per partition and their manifests (the cold tier), and reads
//!   merging both tiers.
//! - [`flush`]: moving hot rows to the cold tier (crash-safe), by policy or on demand.
//! - [`cleanup`]: purging expired tombstones and compacting a partition's files.
//! - [`recovery`]: at start, finishing or undoing the flushes and compactions a crash
//!   interrupted (their pending records).
//! - [`jobs`]: flushes and other background work, persisted and listed in `system.jobs`.
//! - [`backup`]: BACKUP / RESTORE DATABASE of one namespace (metadata and Parquet files).
//! - [`values`]: cell values, type coercion, Arrow conversion.
//! - [`clock`]: the wall clock the engine reads (injectable) and the hybrid clock behind
//!   `_updated`.
//! - [`replication`]: the log entries of cluster mode and the [`replication::Replication`]
//!   seam the SQL layer and mutations write through.
//! - [`cluster`]: cluster mode on openraft: state machine, node-to-node port, forwarding.
//! - [`tls`]: TLS for the client port and mutual TLS for the cluster port (rustls).
//! - [`ids`]: typed ids and names.
//! - [`error`]: [`error::KalamError`], mapped to HTTP once in [`api::error`].
//! - [`fault`]: crash and delay injection points for tests (debug builds only).
//! - [`fuzzing`]: what the fuzz targets in `server/fuzz` run on each input.

mod api;
mod auth;
mod backup;
mod budget;
mod catalog;
mod cleanup;
mod clock;
mod cluster;
mod cold;
pub mod config;
mod database;
pub mod error;
pub mod fault;
mod flush;
pub mod fuzzing;
mod ids;
mod jobs;
mod live;
mod recovery;
mod replication;
mod schema;
pub mod server;
mod sql;
mod storage;
mod tables;
mod tls;
mod types;
mod values;
