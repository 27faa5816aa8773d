//! Backend connector core: the XML stream to the XMPP server over TCP with
//! STARTTLS (RFC 6120 §4, §5), sans-IO.
//!
//! [`Stream`] turns socket bytes into [`Event`]s and client bytes into
//! socket bytes; the reactor owns the socket. The TLS client
//! configurations ([`tls`]) are built once at start-up by the binary from
//! the bytes of the files it read.

mod stream;
pub mod tls;

pub use stream::{Error, Event, Settings, Stream};
