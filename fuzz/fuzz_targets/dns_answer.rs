#![no_main]

#[path = "../checks/dns_answer.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
