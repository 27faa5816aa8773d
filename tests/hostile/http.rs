//! HTTP smuggling and limits: request framing that two parsers could read
//! two ways, heads, bodies and header counts over the limits, bad request
//! targets and hosts, and slowloris heads and bodies, each sent raw on a
//! connection of its own (RFC 9112). Limits here: 1 KiB of head, 16 header
//! fields, 4 KiB of body, 150 ms to send a request and to begin the next.
//!
//! Covered elsewhere and not repeated: `Content-Length` then
//! `Transfer-Encoding` (tests/websocket.rs
//! `http_front_door_refuses_what_it_does_not_serve`), an oversize BOSH body
//! sent whole (tests/bosh.rs `oversize_body_is_refused`), and every
//! request split at every byte (core/src/http/request.rs).

use std::time::Duration;

use crate::corpus::{self, answers, case, closing, Case, Outcome, Part};

use Part::{Bytes, Dribble, Make, Pause};

const fn seed(bytes: &'static [u8]) -> &'static [u8] {
    // The first byte of a fuzz input selects the parser's limits.
    match bytes.split_first() {
        Some((_, input)) => input,
        None => bytes,
    }
}

#[rustfmt::skip]
pub const CASES: &[Case<&[Part]>] = &[
    // Ambiguous body framing (RFC 9112 §6.1-6.3).
    case("transfer-encoding before content-length", &[Bytes(b"POST /http-bind HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n")], closing(&[400])),
    case("transfer-encoding with content-length 0", &[Bytes(b"POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")], closing(&[400])),
    case("two equal content-lengths", &[Bytes(b"POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello")], closing(&[400])),
    case("content-length list", &[Bytes(b"POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello")], closing(&[400])),
    case("negative content-length", &[Bytes(b"POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")], closing(&[400])),
    case("content-length with a plus sign", &[Bytes(b"POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello")], closing(&[400])),
    case("hexadecimal content-length", &[Bytes(b"POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello")], closing(&[400])),
    case("empty content-length", &[Bytes(b"POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n")], closing(&[400])),
    case("content-length with a space inside", &[Bytes(b"POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: 1 0\r\n\r\nhello")], closing(&[400])),
    case("content-length beyond 64 bits", &[Bytes(b"POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n")], closing(&[413])),
    case("transfer-encoding gzip", &[Bytes(b"POST /http-bind HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")], closing(&[501])),
    case("transfer-encoding identity", &[Bytes(b"POST /http-bind HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n")], closing(&[501])),
    case("transfer-encoding in HTTP/1.0", &[Bytes(b"POST /http-bind HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")], closing(&[400])),
    case("space before the colon", &[Bytes(b"POST /http-bind HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n")], closing(&[400])),
    case("obs-fold continuation line", &[Bytes(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n")], closing(&[400])),
    case("lone CR line ends, never a head's end", &[Bytes(b"GET / HTTP/1.1\rHost: x\r\r")], Outcome::Cut),
    case("NUL in a header value", &[Bytes(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n")], closing(&[400])),
    case("header line without a colon", &[Bytes(b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")], closing(&[400])),
    case("non-UTF-8 Origin", &[Bytes(b"GET / HTTP/1.1\r\nHost: x\r\nOrigin: https://\xff\xfe\r\n\r\n")], closing(&[400])),
    case("non-UTF-8 in a header switchboard ignores", &[Bytes(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: \xff\xfe\r\n\r\n")], answers(&[200], false)),
    case("two Origin fields", &[Bytes(b"GET / HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\nOrigin: https://b.example\r\n\r\n")], closing(&[400])),
    case("two Content-Type fields", &[Bytes(b"POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n")], closing(&[400])),
    case("smuggling after a good request on one connection", &[Bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")], closing(&[200, 400])),
    case("a request inside a body is body", &[Bytes(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 27\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")], answers(&[404], false)),
    // Limits.
    case("head over max_head_bytes", &[Make(|| format!("GET / HTTP/1.1\r\nHost: x\r\nX-A: {}\r\n\r\n", "a".repeat(2000)).into_bytes())], closing(&[431])),
    case("request line over max_head_bytes", &[Make(|| format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(2000)).into_bytes())], closing(&[431])),
    case("line ends alone past max_head_bytes", &[Make(|| b"\r\n".repeat(600))], closing(&[431])),
    case("17 header fields", &[Make(|| headers(17))], closing(&[431])),
    case("16 header fields", &[Make(|| headers(16))], answers(&[200], false)),
    case("body over max_body_bytes", &[Bytes(b"POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: 4097\r\n\r\n")], closing(&[413])),
    case("body at max_body_bytes", &[Make(|| body_of(4096))], answers(&[200], false)),
    case("20 requests pipelined", &[Make(|| b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(20))], answers(&[200; 20], false)),
    // Request targets and hosts (RFC 9112 §3.2, §3.2.2).
    case("absolute-form target", &[Bytes(b"GET http://x/http-bind HTTP/1.1\r\nHost: x\r\n\r\n")], closing(&[400])),
    case("authority-form target", &[Bytes(b"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n")], closing(&[400])),
    case("asterisk with GET", &[Bytes(b"GET * HTTP/1.1\r\nHost: x\r\n\r\n")], closing(&[400])),
    case("asterisk with OPTIONS", &[Bytes(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")], answers(&[404], false)),
    case("target without a slash", &[Bytes(b"GET http-bind HTTP/1.1\r\nHost: x\r\n\r\n")], closing(&[400])),
    case("space inside the target", &[Bytes(b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n")], closing(&[400])),
    case("percent-encoded BOSH path", &[Bytes(b"POST /http%2Dbind HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")], answers(&[404], false)),
    case("dot segments before the BOSH path", &[Bytes(b"POST /x/../http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")], answers(&[404], false)),
    case("no Host in HTTP/1.1", &[Bytes(b"GET / HTTP/1.1\r\n\r\n")], closing(&[400])),
    case("two Host fields", &[Bytes(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")], closing(&[400])),
    case("no Host in HTTP/1.0", &[Bytes(b"GET / HTTP/1.0\r\n\r\n")], closing(&[200])),
    case("HTTP/2 preface", &[Bytes(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")], closing(&[400])),
    case("HTTP/1.2", &[Bytes(b"GET / HTTP/1.2\r\nHost: x\r\n\r\n")], closing(&[400])),
    case("HTTP/0.9 request line", &[Bytes(b"GET /\r\n\r\n")], closing(&[400])),
    case("method with a bad character", &[Bytes(b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n")], closing(&[400])),
    case("lower-case method", &[Bytes(b"get / HTTP/1.1\r\nHost: x\r\n\r\n")], answers(&[404], false)),
    case("DELETE on the BOSH path", &[Bytes(b"DELETE /http-bind HTTP/1.1\r\nHost: x\r\n\r\n")], answers(&[405], false)),
    case("bare LF line ends", &[Bytes(b"GET / HTTP/1.1\nHost: x\n\n")], answers(&[200], false)),
    case("empty lines before the request", &[Bytes(b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")], answers(&[200], false)),
    // Slowloris: a request once begun is whole within read_timeout.
    case("head dribbled a byte every 60 ms", &[Dribble(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa\r\n\r\n", 60)], Outcome::Cut),
    case("body dribbled a byte every 60 ms", &[Bytes(b"POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n"), Dribble(b"<body xmlns='http://jabber.org/protocol/", 60)], Outcome::Cut),
    case("second request dribbled on a kept-alive connection", &[Bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Pause(50), Dribble(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa\r\n\r\n", 60)], answers(&[200], false)),
    case("head that stops before its blank line", &[Bytes(b"GET / HTTP/1.1\r\nHost: x\r\n")], Outcome::Cut),
    case("body shorter than its Content-Length", &[Bytes(b"POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n<body/>")], Outcome::Cut),
    case("a connection that sends nothing", &[Pause(50)], Outcome::Cut),
    // The fuzzers' seeds and finds (fuzz/corpus/http_request), whole.
    case("seed bosh-post-pipelined", &[Bytes(seed(include_bytes!("../../fuzz/corpus/http_request/bosh-post-pipelined")))], answers(&[200, 200], false)),
    case("seed chunked-refused", &[Bytes(seed(include_bytes!("../../fuzz/corpus/http_request/chunked-refused")))], closing(&[501])),
    case("seed crash-400-or-431-by-split", &[Bytes(CRASH_BY_SPLIT)], closing(&[400])),
    case("seed crash-400-or-431-by-split, in three pieces", &[Bytes(piece(CRASH_BY_SPLIT, 0, 30)), Pause(10), Bytes(piece(CRASH_BY_SPLIT, 30, 60)), Pause(10), Bytes(piece(CRASH_BY_SPLIT, 60, CRASH_BY_SPLIT.len()))], closing(&[400])),
    case("seed head-too-large-whole-malformed-cut", &[Bytes(seed(include_bytes!("../../fuzz/corpus/http_request/head-too-large-whole-malformed-cut")))], closing(&[400])),
    case("seed get-upgrade", &[Bytes(seed(include_bytes!("../../fuzz/corpus/http_request/get-upgrade")))], answers(&[101], false)),
    case("seed options-star-http10", &[Bytes(seed(include_bytes!("../../fuzz/corpus/http_request/options-star-http10")))], closing(&[404, 404])),
    case("seed small-limits (its body never comes)", &[Bytes(seed(include_bytes!("../../fuzz/corpus/http_request/small-limits")))], Outcome::Cut),
    case("seed smuggling (two lengths)", &[Bytes(seed(include_bytes!("../../fuzz/corpus/http_request/smuggling")))], closing(&[400])),
];

/// The fuzzers' first find: read whole or in pieces, the same refusal.
const CRASH_BY_SPLIT: &[u8] = seed(include_bytes!(
    "../../fuzz/corpus/http_request/crash-400-or-431-by-split"
));

/// Bytes `from..to` of `bytes`.
const fn piece(bytes: &'static [u8], from: usize, to: usize) -> &'static [u8] {
    bytes.split_at(to).0.split_at(from).1
}

/// A GET with `count` header fields, `Host` one of them.
fn headers(count: usize) -> Vec<u8> {
    let mut request = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for n in 1..count {
        request.push_str(&format!("X-{n}: {n}\r\n"));
    }
    request.push_str("\r\n");
    request.into_bytes()
}

/// A BOSH POST whose body is exactly `len` bytes: an unknown sid, padded
/// with the white space XML allows after the element.
fn body_of(len: usize) -> Vec<u8> {
    let body = "<body xmlns='http://jabber.org/protocol/httpbind' rid='1' sid='nosuch'/>";
    format!(
        "POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n{body}{}",
        " ".repeat(len - body.len())
    )
    .into_bytes()
}

pub fn run() {
    // The stub serves the healthy sessions only.
    let (_stub, mut config) = corpus::stub_and_config();
    config.http.max_head_bytes = 1024;
    config.http.max_headers = 16;
    config.http.max_body_bytes = 4096;
    config.http.read_timeout = Duration::from_millis(150);
    config.http.idle_timeout = Duration::from_millis(150);
    corpus::run("http", config, CASES, |addr, parts| {
        corpus::http_outcome(addr, parts)
    });
}
