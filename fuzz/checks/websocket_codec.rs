//! `websocket_codec`: [`Codec`] over arbitrary client bytes, driven as the
//! reactor does (`handle_input`, then `poll_message` until `Ok(None)` or an
//! error). Input: one selector byte (bit 0: 64 KiB or 16-byte message
//! limit, bit 1: we start the close handshake first), then the bytes.
//!
//! Invariants: the bytes in one read or in two cut at a point derived from
//! the data give the same messages, the same error, the same output (pongs,
//! close frames) and the same closed state; no text message exceeds the
//! limit; a failed or closed codec says so.

use super::common;
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
