//! Resource governance: what one request may spend, and how the server's CPU and memory are
//! shared among users, so that no client can stall or starve the others (see
//! `docs/configuration.md`, section Limits).
//!
//! - [`QueryRuntime`]: the threads statements and subscription filters run on, apart from
//!   the runtime that serves sockets and `/health`.
//! - [`FairScheduler`]: CPU slots on those threads, handed out poll by poll to the users who
//!   have used the least ([`FairStream`] for query results).
//! - [`StatementBudget`] / [`StatementPool`] / [`QueryMemory`]: a statement's memory, within
//!   its user's and the server's, which also covers the outputs of scalar functions.
//! - [`MeterFunctions`]: every scalar function checked before it runs and charged after.
//! - [`Admission`]: per-user limits on statements and connections at once.
//!
//! Time is bounded where a request enters: the API runs a request as one task on the query
//! runtime and aborts it at `limits.query_timeout_secs`.

mod admission;
mod functions;
mod memory;
mod runtime;
mod scheduler;

pub(crate) use admission::{Admission, ConnectionPermit};
pub(crate) use functions::{MeterFunctions, meter_expr};
pub(crate) use memory::{BudgetOption, LIGHT_USER_BYTES, QueryMemory, StatementBudget, StatementPool, human_bytes};
pub(crate) use runtime::{
    QueryRuntime, at_request_priority, request_thread_started, spawn_background, stop_background,
};
pub(crate) use scheduler::{FairScheduler, FairStream, SMALL_WORK};
