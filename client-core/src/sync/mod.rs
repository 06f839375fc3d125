//! The sync engine: subscriptions with persisted cursors, catch-up then live tail, the
//! outbox of local writes, reconnects and status.
//!
//! - [`engine`]: the state machine, no I/O — server frames and local calls in, store
//!   operations, frames and events out.
//! - [`driver`]: the task that runs the engine against a [`platform::Platform`] and a store.
//! - [`client`]: the [`Client`] handle applications hold.
//! - [`platform`]: what a runtime must provide (WebSocket, timers, clock, randomness).
//! - [`native`]: the tokio platform (feature `native`).
//! - [`schema_change`]: carrying rows across an `ALTER TABLE`.
//! - [`status`], [`backoff`]: reported state and reconnect delays.

pub mod backoff;
pub mod client;
pub mod driver;
pub mod engine;
#[cfg(feature = "native")]
pub mod native;
pub mod platform;
pub mod schema_change;
pub mod status;

pub use client::{Client, LiveQuery, WriteReceipt};
pub use driver::{ClientConfig, start};
pub use engine::{SyncEngine, SyncError};
#[cfg(feature = "native")]
pub use native::start_native;
pub use status::{MutationState, SyncEvent, SyncStatus};
