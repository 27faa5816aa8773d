//! Replays every seed in `fuzz/corpus/<target>/` through the same check its
//! cargo-fuzz target runs, so stable CI covers the corpus
//! and a committed crash reproducer fails here by name.

#[path = "../../fuzz/checks/mod.rs"]
mod checks;

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    let mut failed = Vec::new();
    for file in &files {
        let data = fs::read(file).unwrap();
        if panic::catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(file.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(failed.is_empty(), "{target}: failing seeds {failed:?}");
}

#[test]
fn http_request_seeds_hold_the_invariants() {
    replay("http_request", checks::http_request::check);
}

#[test]
fn xml_framer_seeds_hold_the_invariants() {
    replay("xml_framer", checks::xml_framer::check);
}

#[test]
fn websocket_codec_seeds_hold_the_invariants() {
    replay("websocket_codec", checks::websocket_codec::check);
}

#[test]
fn dns_answer_seeds_hold_the_invariants() {
    replay("dns_answer", checks::dns_answer::check);
}

#[test]
fn backend_stream_seeds_hold_the_invariants() {
    replay("backend_stream", checks::backend_stream::check);
}
