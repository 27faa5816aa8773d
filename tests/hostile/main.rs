//! The hostile corpus: every probe of the "Hardening" issue, and the
//! fuzzers' seeds that make sense through the whole server, as tables of
//! cases (a probe and the outcome expected) run against one switchboard
//! per category, its configuration tuned for the category (small limits,
//! short timeouts). Beside every case a logged-in BOSH session and a
//! logged-in WebSocket session must still relay a message. Categories run
//! in parallel, as tests of their own; `--nocapture` shows each one's
//! summary.

#[path = "../support/mod.rs"]
mod support;

mod backend;
mod bosh;
mod corpus;
mod destinations;
mod http;
mod limits;
mod rfc7395;
mod signals;
mod websocket;
mod xml;

#[test]
fn http_smuggling_and_limits() {
    http::run();
}

#[test]
fn websocket_framing_and_upgrades() {
    websocket::run();
}

#[test]
fn xml_bombs_and_limits() {
    xml::run();
}

#[test]
fn rfc7395_opening_and_framing() {
    rfc7395::run();
}

#[test]
fn bosh_games() {
    bosh::run();
}

#[test]
fn backend_garbage_and_floods() {
    backend::run();
}

#[test]
fn destinations_by_name_and_by_dns() {
    destinations::run();
}

#[test]
fn limits_per_client() {
    limits::run();
}

#[test]
fn signals_and_descriptors() {
    signals::run();
}

#[test]
fn the_corpus_holds_at_least_200_cases() {
    let categories = [
        ("http", http::CASES.len()),
        ("websocket", websocket::CASES.len()),
        ("xml", xml::CASES.len()),
        ("rfc7395", rfc7395::CASES.len()),
        ("bosh", bosh::CASES.len()),
        ("backend", backend::CASES.len()),
        ("destinations", destinations::CASES.len()),
        ("limits", limits::CASES.len()),
        ("signals", signals::CASES.len()),
    ];
    let total: usize = categories.iter().map(|(_, n)| n).sum();
    for (name, n) in categories {
        println!("hostile corpus: {name}: {n} cases");
    }
    println!("hostile corpus: {total} cases in all");
    assert!(total >= 200, "{total} cases");
}
