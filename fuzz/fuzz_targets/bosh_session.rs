#![no_main]

#[path = "../checks/bosh_session.rs"]
mod check;
#[path = "../checks/common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
