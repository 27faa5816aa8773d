//! switchboard: an XMPP connection manager. Web clients speak BOSH
//! (XEP-0124/0206) or WebSocket (RFC 7395) to it; it carries each stream to
//! the XMPP server over TCP with STARTTLS (RFC 6120).
//!
//! This crate is the shell around `switchboard_core`: configuration loading,
//! the mio loop that owns every socket and reads the clock, and `main`.

pub mod config;
mod dns_system;
pub mod reactor;
mod tls;
