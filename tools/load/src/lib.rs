//! The switchboard load tool as a library: the binary in `main.rs` is its
//! command line, and the integration tests drive the same functions in
//! process.
//!
//! One thread, one mio loop per mode, no async runtime. XML streams are cut
//! by switchboard's own framer; HTTP responses are read with httparse.

pub mod cli;
pub mod client;
pub mod forward;
pub mod html;
pub mod ledger;
pub mod modes;
pub mod net;
pub mod report;
pub mod stub;
pub mod xmpp;
