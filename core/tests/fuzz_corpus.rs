//! Replays every seed in `fuzz/corpus/<target>/` through the same check its
//! cargo-fuzz target runs, so stable CI covers the corpus and a committed
//! crash reproducer fails here by name.

#[path = "../../fuzz/checks/mod.rs"]
mod checks;

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

/// A target's check: panics when an invariant breaks.
type Check = fn(&[u8]);

fn replay(target: &str, check: Check) {
    let (passed, failed) = run_seeds("corpus", target, check);
    assert!(
        !passed.is_empty() || !failed.is_empty(),
        "no seeds for {target}"
    );
    assert!(failed.is_empty(), "{target}: failing seeds {failed:?}");
}

/// The names of the seeds in `fuzz/<folder>/<target>/` that pass and that
/// fail `check`.
fn run_seeds(folder: &str, target: &str, check: Check) -> (Vec<String>, Vec<String>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(folder)
        .join(target);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let (mut passed, mut failed) = (Vec::new(), Vec::new());
    for file in &files {
        let data = fs::read(file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        match panic::catch_unwind(AssertUnwindSafe(|| check(&data))) {
            Ok(()) => passed.push(name),
            Err(_) => failed.push(name),
        }
    }
    (passed, failed)
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

#[test]
fn bosh_body_seeds_hold_the_invariants() {
    replay("bosh_body", checks::bosh_body::check);
}

#[test]
fn bosh_session_seeds_hold_the_invariants() {
    replay("bosh_session", checks::bosh_session::check);
}

#[test]
fn websocket_handshake_seeds_hold_the_invariants() {
    replay("websocket_handshake", checks::websocket_handshake::check);
}

#[test]
fn websocket_open_seeds_hold_the_invariants() {
    replay("websocket_open", checks::websocket_open::check);
}

#[test]
fn endpoint_seeds_hold_the_invariants() {
    replay("endpoint", checks::endpoint::check);
}
