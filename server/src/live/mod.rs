//! Live queries: subscriptions and the fan-out of committed changes to them. The WebSocket
//! they travel on is [`crate::api::ws`] (see `docs/protocol.md`).
//!
//! - [`query`]: [`LiveQuery`], a subscription's SQL compiled once (planned by
//!   [`crate::sql::subscription`]).
//! - [`registry`]: [`LiveRegistry`], subscriptions by table and partition, and the fan-out
//!   of committed changes.
//! - [`catchup`]: initial load and catch-up from a cursor through the change index.
//! - [`listing`]: `system.live_queries` rows and `KILL LIVE QUERY` (also for other nodes).

pub(crate) mod catchup;
pub(crate) mod listing;
pub(crate) mod query;
pub(crate) mod registry;

pub(crate) use query::LiveQuery;
pub(crate) use registry::LiveRegistry;
