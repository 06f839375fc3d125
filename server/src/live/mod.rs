//! Live queries and sync over one WebSocket (`/v1/ws`, see `docs/protocol.md`).
//!
//! - [`connection`]: one socket — auth and renewal, framing, limits, heartbeat.
//! - [`socket_writer`]: writes a socket's frames and change events, off the query runtime.
//! - [`query`]: [`LiveQuery`], a subscription's SQL compiled once.
//! - [`registry`]: [`LiveRegistry`], subscriptions by table and partition, and the fan-out
//!   of committed changes.
//! - [`catchup`]: initial load and catch-up from a cursor through the change index.
//! - [`mutations`]: the `mutate` frame, exactly once per `(user, client_id, seq)`.

pub mod catchup;
pub mod connection;
pub mod mutations;
pub mod query;
pub mod registry;
pub mod socket_writer;

pub use connection::serve;
pub use query::LiveQuery;
pub use registry::LiveRegistry;
