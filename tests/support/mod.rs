//! Test support for switchboard's integration tests: a stub XMPP server
//! ([`StubServer`]), a blocking RFC 7395 WebSocket client ([`WsClient`]), a
//! direct XMPP-over-TCP client ([`XmppTcpClient`]) and a test CA ([`TestCa`]).
//! Everything uses std threads and blocking sockets, and every wait is bounded.
//!
//! Include with `mod support;`.

// Each test binary compiles this module and uses a different subset of it.
#![allow(dead_code, unused_imports)]

pub mod bosh_client;
pub mod certs;
pub mod dns_stub;
pub mod process;
pub mod raw_server;
pub mod stub_server;
pub mod switchboard;
pub mod ws_client;
pub mod xml;
pub mod xmpp;
pub mod xmpp_client;

use std::fmt;
use std::time::Duration;

pub use certs::TestCa;
pub use stub_server::{StubEvent, StubOptions, StubServer, TlsMode};
pub use switchboard::{config_for, Switchboard, WS_PATH};
pub use ws_client::WsClient;
pub use xmpp_client::XmppTcpClient;

/// The default bound on any single wait in the support code and the tests.
pub const WAIT: Duration = Duration::from_secs(5);

/// Why a receive gave no message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// Nothing complete arrived within the timeout.
    Timeout,
    /// The peer closed: a WebSocket close frame (`code` from it), or
    /// `</stream:stream>` on a TCP XMPP stream (`code` is `None`).
    Closed { code: Option<u16>, reason: String },
    /// The TCP connection ended without a close frame or stream end.
    Eof,
    /// Any other I/O or protocol failure.
    Io(String),
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Timeout => write!(f, "timed out"),
            RecvError::Closed { code, reason } => write!(f, "closed ({code:?}) {reason}"),
            RecvError::Eof => write!(f, "connection ended without a close"),
            RecvError::Io(e) => write!(f, "{e}"),
        }
    }
}
