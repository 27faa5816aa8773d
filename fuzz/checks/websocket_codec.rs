//! `websocket_codec`: [`Codec`] over arbitrary client bytes, driven as the
//! reactor does (`handle_input`, then `poll_message` until `Ok(None)` or an
//! error). Input: one selector byte (bit 0: 64 KiB or 16-byte message
//! limit, bit 1: we start the close handshake first, bit 2: the bytes are
//! not frames but one text message's payload, which the check sends in
//! fragments of 1 to 16 bytes (RFC 6455 §5.4) sized from the data, bit 3:
//! with a ping after each fragment but the last), then the bytes.
//!
//! Invariants: the bytes in one read or in two cut at a point derived from
//! the data give the same messages, the same error, the same output (pongs,
//! close frames) and the same closed state; no text message exceeds the
//! limit; a failed or closed codec says so. A fragmented payload comes out
//! as one message equal to it when it is UTF-8 within the limit, as 1007
//! when it is not UTF-8, as 1009 when it is UTF-8 over the limit (either
//! when it is both, as the bad bytes may come before the fragment that
//! crosses the limit).

use super::common;
use super::common::{FIN, OP_CONTINUATION, OP_PING, OP_TEXT};
use switchboard_core::websocket::{CloseReason, Codec, Limits, Message};

#[derive(Debug, PartialEq, Eq)]
struct Run {
    messages: Vec<Message>,
    error: Option<CloseReason>,
    output: Vec<u8>,
    closed: bool,
}

pub fn check(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_message_bytes: if selector & 1 == 0 { 64 * 1024 } else { 16 },
    };
    let close_first = selector & 2 != 0;
    let payload = (selector & 4 != 0).then_some(input);
    let frames = payload.map(|payload| fragmented(payload, selector & 8 != 0));
    let input = frames.as_deref().unwrap_or(input);
    let whole = run(limits, close_first, &[input]);
    let (a, b) = input.split_at(common::point(input));
    let two = run(limits, close_first, &[a, b]);
    assert_eq!(whole, two, "whole vs split at {}", a.len());
    for message in &whole.messages {
        if let Message::Text(text) = message {
            assert!(
                text.len() <= limits.max_message_bytes,
                "text over the limit"
            );
        }
    }
    if whole.error.is_some()
        || whole
            .messages
            .iter()
            .any(|m| matches!(m, Message::Closed(_)))
    {
        assert!(whole.closed, "failed or closed codec not closed");
    }
    if let Some(payload) = payload {
        check_reassembled(payload, limits, &whole);
    }
}

/// `payload` as one text message in fragments whose sizes follow from the
/// data, with a ping after each fragment but the last when `pings`.
fn fragmented(payload: &[u8], pings: bool) -> Vec<u8> {
    let mask = common::mask(payload);
    let pieces = common::chunks(payload);
    let Some(last) = pieces.len().checked_sub(1) else {
        return common::client_frame(FIN | OP_TEXT, b"", mask);
    };
    let mut out = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let opcode = if i == 0 { OP_TEXT } else { OP_CONTINUATION };
        let fin = if i == last { FIN } else { 0 };
        out.extend(common::client_frame(fin | opcode, piece, mask));
        if pings && i != last {
            out.extend(common::client_frame(FIN | OP_PING, b"p", mask));
        }
    }
    out
}

fn check_reassembled(payload: &[u8], limits: Limits, run: &Run) {
    let fits = payload.len() <= limits.max_message_bytes;
    match (std::str::from_utf8(payload), fits) {
        (Ok(text), true) => {
            assert_eq!(run.messages, [Message::Text(text.to_owned())]);
            assert_eq!(run.error, None);
        }
        (Err(_), true) => {
            assert_eq!(run.messages, []);
            assert_eq!(run.error, Some(CloseReason::INVALID_UTF8));
        }
        (Ok(_), false) => assert_eq!(run.error, Some(CloseReason::TOO_BIG)),
        (Err(_), false) => assert!(
            matches!(
                run.error,
                Some(CloseReason::TOO_BIG | CloseReason::INVALID_UTF8)
            ),
            "{:?}",
            run.error
        ),
    }
}

fn run(limits: Limits, close_first: bool, reads: &[&[u8]]) -> Run {
    let mut codec = Codec::new(limits);
    if close_first {
        codec.send_close(1000, "bye");
    }
    let total: usize = reads.iter().map(|r| r.len()).sum();
    let mut messages = Vec::new();
    let mut error = None;
    'reads: for read in reads {
        codec.handle_input(read);
        loop {
            match codec.poll_message() {
                Ok(None) => break,
                Ok(Some(message)) => {
                    // A message takes a frame of at least two bytes: more
                    // messages than that means the codec is looping.
                    assert!(messages.len() <= total / 2, "more messages than frames");
                    messages.push(message);
                }
                Err(reason) => {
                    assert_eq!(codec.poll_message(), Err(reason), "error not final");
                    error = Some(reason);
                    break 'reads;
                }
            }
        }
    }
    Run {
        messages,
        error,
        output: codec.output().to_vec(),
        closed: codec.is_closed(),
    }
}
