#![no_main]

#[path = "../checks/split.rs"]
mod split;
#[path = "../checks/backend_stream.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
