//! The sans-IO HTTP/1.1 layer: request reading and response writing.
//!
//! Contract: no sockets, no clock. The reactor feeds each connection's
//! unconsumed input to its [`RequestReader`], acts on the [`Request`]s (or
//! answers an [`Error`] with [`Error::status`] and closes), and appends
//! responses to the connection's output with [`write_response`]. Routing,
//! CORS policy and the WebSocket handshake sit above this module.

mod query;
mod request;
mod response;

pub use query::query_param;
pub use request::{has_token, Error, Limits, Method, Request, RequestReader, MAX_HEADERS};
pub use response::{write_response, Status};
