//! Wire types shared by the server and every client.
//!
//! - [`http`]: `POST /v1/api/sql` requests and results, auth endpoints, health.
//! - [`error`]: the error codes every endpoint answers with.
//! - [`role`]: user roles.
//! - [`ws`]: the WebSocket sync protocol (`/v1/ws`).

pub mod error;
pub mod http;
pub mod role;
pub mod ws;

pub use error::{ErrorBody, ErrorCode};
pub use http::*;
pub use role::Role;
