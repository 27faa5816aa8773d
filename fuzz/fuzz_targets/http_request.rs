#![no_main]

#[path = "../checks/split.rs"]
mod split;
#[path = "../checks/http_request.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
