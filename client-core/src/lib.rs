//! KalamDB client core.
//!
//! - [`protocol`]: the wire types of the HTTP API (and, later, the WebSocket sync
//!   protocol). The server serialises exactly these types, so a client built on this
//!   crate cannot drift from the server.
//! - [`crdt`] (feature `crdt`): CRDT_TEXT values as Yjs documents, shared with the server.

#[cfg(feature = "crdt")]
pub mod crdt;
pub mod protocol;
