//! The invariants each fuzz target checks, shared by the cargo-fuzz targets
//! (nightly) and by `tests/fuzz_corpus.rs`, which replays the committed seed
//! corpus under plain stable `cargo test`.

pub mod backend_stream;
pub mod bosh_body;
pub mod bosh_session;
pub mod common;
pub mod dns_answer;
pub mod endpoint;
pub mod http_request;
pub mod websocket_codec;
pub mod websocket_handshake;
pub mod websocket_open;
pub mod xml_framer;
