//! switchboard: an XMPP connection manager. Web clients speak BOSH
//! (XEP-0124/0206) or WebSocket (RFC 7395) to it; it carries each stream to
//! the XMPP server over TCP with STARTTLS (RFC 6120).
//!
//! The protocol cores (`http`, `xml`, `websocket`, `backend`, `dns`, `wheel`)
//! are sans-IO: bytes and time in, bytes, events and deadlines out. Only
//! `reactor` owns sockets and reads the clock.

pub mod backend;
pub mod bosh;
pub mod config;
pub mod dns;
pub mod http;
pub mod ids;
pub mod reactor;
pub mod session;
pub mod websocket;
pub mod wheel;
pub mod xml;
