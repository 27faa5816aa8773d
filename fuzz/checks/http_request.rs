//! `http_request`: [`RequestReader`] over arbitrary bytes, as the reactor
//! drives it (all unconsumed bytes on every call, `len` dropped after each
//! request). Input: one selector byte (even: default limits, odd: small
//! ones derived from it), then the connection's bytes.
//!
//! Invariants: the bytes arriving whole or in two reads cut at a point
//! derived from the data give the same requests, and when both runs refuse
//! the connection, the same refusal (see `common::strict_refusals`); every
//! request uses at least one and at most the buffered bytes, and its body
//! lies within them.
//!
//! A head that is not complete yet may be refused early when more of it is
//! at hand (httparse meets a 65th field before the empty line), while fewer
//! bytes still answer "need more". Both runs therefore end with one more
//! read, an empty line, which forces the verdict on most unfinished heads;
//! a run still undecided after it (leading CRs, which the reader skips and
//! httparse refuses) is compatible with anything.

use super::common;
use switchboard_core::http::{Error, Limits, Request, RequestReader};

/// Ends a head whatever line it stopped in.
const END: &[u8] = b"\r\n\r\n";

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Undecided: the reader wants more bytes.
    NeedMore,
    Refused(Error),
}

pub fn check(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let limits = common::http_limits(selector);
    let whole = run(limits, &[input, END]);
    let (a, b) = input.split_at(common::point(input));
    let two = run(limits, &[a, b, END]);
    let at = a.len();
    assert_eq!(whole.0, two.0, "whole vs split at {at}: requests");
    if let (End::Refused(x), End::Refused(y)) = (&whole.1, &two.1) {
        if common::strict_refusals() {
            assert_eq!(x, y, "whole vs split at {at}: refusals");
        }
    }
}

fn run(limits: Limits, reads: &[&[u8]]) -> (Vec<Request>, End) {
    let mut reader = RequestReader::new(limits);
    let mut buf = Vec::new();
    let mut requests = Vec::new();
    for read in reads {
        buf.extend_from_slice(read);
        loop {
            match reader.read(&buf) {
                Ok(None) => break,
                Ok(Some(request)) => {
                    assert!(request.len > 0, "empty request {request:?}");
                    assert!(request.len <= buf.len(), "len beyond input {request:?}");
                    assert!(
                        request.body.start <= request.body.end && request.body.end <= request.len,
                        "body outside the request {request:?}"
                    );
                    buf.drain(..request.len);
                    requests.push(request);
                }
                Err(error) => return (requests, End::Refused(error)),
            }
        }
    }
    (requests, End::NeedMore)
}
