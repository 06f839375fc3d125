//! KalamDB client core.
//!
//! - [`protocol`]: the wire types of the HTTP API (and, later, the WebSocket sync
//!   protocol). The server serialises exactly these types, so a client built on this
//!   crate cannot drift from the server.

pub mod protocol;
