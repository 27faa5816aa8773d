//! Backend connector core: the XML stream to the XMPP server over TCP with
//! STARTTLS (RFC 6120 §4, §5), sans-IO.
//!
//! [`Stream`] turns socket bytes into [`Event`]s and client bytes into
//! socket bytes; the reactor owns the socket. [`client_config`] builds the
//! shared TLS configuration once at start-up (the only I/O here).

mod stream;
mod tls;

pub use stream::{Error, Event, Settings, Stream};
pub use tls::{client_config, config_with_roots, TlsConfigError};
