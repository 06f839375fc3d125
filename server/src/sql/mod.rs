//! SQL execution.
//!
//! - [`parser`]: the one SQL front end (sqlparser's tokenizer and parser, extended with
//!   KalamDB's own statements); [`ast`]: the typed statements it returns.
//! - [`executor`]: runs a request's statements in order, one result each.
//! - [`context`]: who a statement runs as, the current namespace, parameters.
//! - [`session`]: the DataFusion catalog a query sees, scoped to the caller;
//!   [`system_tables`]: the `system.*` tables it includes.
//! - [`functions`]: CURRENT_USER(), SNOWFLAKE_ID(), UUID_V7(), ULID() for queries.
//! - [`point_read`]: the primary-key fast path for `SELECT ... WHERE pk = value`.
//! - [`query`]: SELECT (and EXPLAIN) through DataFusion; [`results`]: Arrow → JSON.
//! - [`commands`]: one file per custom command group; [`dml`]: INSERT, UPDATE, DELETE.
//! - [`dialect`]: the sqlparser dialect and the cost limits of one statement; [`rewrite`]: fixes
//!   applied to every parsed statement.

pub mod ast;
pub mod commands;
pub mod context;
pub mod dialect;
pub mod dml;
pub mod executor;
pub mod functions;
pub mod parser;
pub mod point_read;
pub mod query;
pub mod results;
pub mod rewrite;
pub mod session;
pub mod subscription;
pub mod system_tables;

pub use context::ExecContext;

/// How often a write that raced an ALTER TABLE is planned again before giving up.
pub const SCHEMA_CHANGE_RETRIES: usize = 3;
pub use executor::execute_request;
