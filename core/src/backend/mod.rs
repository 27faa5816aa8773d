//! Backend connector core: the XML stream to the XMPP server over TCP with
//! STARTTLS (RFC 6120 §4, §5), sans-IO.
//!
//! [`Stream`] turns socket bytes into [`Event`]s and client bytes into
//! socket bytes; the reactor owns the socket. The shared TLS client
//! configuration is built once at start-up by the binary.

mod stream;

pub use stream::{Error, Event, Settings, Stream};
