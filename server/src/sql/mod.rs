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

pub(crate) mod ast;
pub(crate) mod commands;
pub(crate) mod context;
pub(crate) mod dialect;
pub(crate) mod dml;
pub(crate) mod executor;
pub(crate) mod functions;
pub(crate) mod parser;
pub(crate) mod point_read;
pub(crate) mod query;
pub(crate) mod results;
pub(crate) mod rewrite;
pub(crate) mod session;
pub(crate) mod subscription;
pub(crate) mod system_tables;

pub(crate) use context::ExecContext;

/// How often a write that raced an ALTER TABLE is planned again before giving up.
pub(crate) const SCHEMA_CHANGE_RETRIES: usize = 3;
pub(crate) use executor::execute_request;
