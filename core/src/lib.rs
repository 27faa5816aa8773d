//! switchboard's core: every protocol of the connection manager as a
//! sans-IO state machine. Bytes and time go in; bytes, events, commands and
//! deadlines come out. Nothing here owns a socket or reads a clock, and the
//! crate does not depend on mio or any socket type: the compiler keeps the
//! line. The binary crate's mio loop moves the bytes.

pub mod backend;
pub mod bosh;
pub mod buffer;
pub mod destinations;
pub mod dns;
pub mod end;
pub mod endpoint;
pub mod http;
pub mod ids;
pub mod session;
pub mod stream_error;
pub mod websocket;
pub mod wheel;
pub mod xml;
