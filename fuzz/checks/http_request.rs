//! `http_request`: [`RequestReader`] over arbitrary bytes, as the reactor
//! drives it (all unconsumed bytes on every call, `len` dropped after each
//! request). Input: one selector byte (even: default limits, odd: small
//! ones derived from it), then the connection's bytes.
//!
//! Invariants: the bytes arriving whole or in two reads cut at a point
//! derived from the data give the same requests and the same error (see
//! `common::strict_refusals`); every
//! request uses at least one and at most the buffered bytes, and its body
//! lies within them.
//!
//! A head that is not complete yet may be refused early when more of it is
//! at hand (httparse meets a 65th field before the empty line), while fewer
//! bytes still answer "need more": both runs therefore end with one more
//! read, an empty line, which forces the verdict on an unfinished head.

use super::common;
use switchboard::http::{Error, Limits, Request, RequestReader};

/// Ends a head whatever line it stopped in.
const END: &[u8] = b"\r\n\r\n";

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Request(Box<Request>),
    Error(Error),
}

pub fn check(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let limits = if selector % 2 == 0 {
        Limits::default()
    } else {
        Limits {
            max_head_bytes: 32 + usize::from(selector),
            max_headers: usize::from(selector >> 5),
            max_body_bytes: usize::from(selector >> 1),
        }
    };
    let whole = run(limits, &[input, END]);
    let (a, b) = input.split_at(common::point(input));
    let two = run(limits, &[a, b, END]);
    let same = |x: &Outcome, y: &Outcome| {
        x == y
            || (!common::strict_refusals()
                && matches!((x, y), (Outcome::Error(_), Outcome::Error(_))))
    };
    assert!(
        whole.len() == two.len() && whole.iter().zip(&two).all(|(x, y)| same(x, y)),
        "whole vs split at {}: {whole:?} vs {two:?}",
        a.len()
    );
}

fn run(limits: Limits, reads: &[&[u8]]) -> Vec<Outcome> {
    let mut reader = RequestReader::new(limits);
    let mut buf = Vec::new();
    let mut out = Vec::new();
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
                    out.push(Outcome::Request(Box::new(request)));
                }
                Err(error) => {
                    out.push(Outcome::Error(error));
                    return out;
                }
            }
        }
    }
    out
}
