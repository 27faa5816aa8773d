#![no_main]

#[path = "../checks/websocket_handshake.rs"]
mod check;
#[path = "../checks/common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
