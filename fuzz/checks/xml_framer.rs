//! `xml_framer`: [`Framer`] over arbitrary bytes in both modes. Input: one
//! selector byte (bit 0: Stream or Fragments mode, bit 1: default or tiny
//! limits), then the stream's bytes.
//!
//! Invariants: fed in chunks whose sizes follow from the data, consuming
//! frames as the contract says (drop `len` bytes, pass the same unconsumed
//! bytes extended next time), the framer cuts the same frames as when fed
//! everything at once (runs of whitespace frames joined: whitespace is
//! framed as far as it has arrived), and ends the same way; every frame is
//! non-empty, fits the buffered bytes, and its recorded offsets lie within
//! it.
//!
//! "The same way" allows one thing: a run that ends needing more bytes has
//! not decided yet, so the other may already have refused the unit (the
//! framer skips rescanning when new bytes hold no `<` or `>`, so a control
//! character trickling in is refused only when the tag ends). Two refusals
//! must agree (see `common::strict_refusals`).

use super::common;
use switchboard_core::xml::{Error, Frame, FrameKind, Framer, Limits, Mode};

#[derive(Debug, PartialEq, Eq)]
enum End {
    NeedMore,
    Error(Error),
}

pub fn check(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let mode = if selector & 1 == 0 {
        Mode::Stream
    } else {
        Mode::Fragments
    };
    let limits = if selector & 2 == 0 {
        Limits::default()
    } else {
        common::TINY_XML
    };
    let whole = coalesce(run(mode, limits, &[input]));
    let chunked = coalesce(run(mode, limits, &common::chunks(input)));
    assert_eq!(whole.0, chunked.0, "whole vs chunked: frames");
    match (&whole.1, &chunked.1) {
        (End::NeedMore, _) | (_, End::NeedMore) => {}
        // Bytes that are both bad UTF-8 and malformed XML may be refused for
        // either, depending on the reads: UTF-8 is checked as bytes arrive,
        // markup when its construct ends. Either ends the stream.
        (End::Error(Error::InvalidUtf8), End::Error(_))
        | (End::Error(_), End::Error(Error::InvalidUtf8)) => {}
        (a, b) if common::strict_refusals() => assert_eq!(a, b, "whole vs chunked: refusals"),
        _ => {}
    }
    let framed: usize = whole.0.iter().map(|(frame, _)| frame.len).sum();
    assert!(framed <= input.len());
}

type Run = (Vec<(Frame, Vec<u8>)>, End);

fn run(mode: Mode, limits: Limits, reads: &[&[u8]]) -> Run {
    let mut framer = Framer::new(mode, limits);
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    for read in reads {
        buf.extend_from_slice(read);
        loop {
            match framer.next(&buf) {
                Ok(None) => break,
                Ok(Some(frame)) => {
                    assert!(frame.len > 0, "empty frame {frame:?}");
                    assert!(frame.len <= buf.len(), "frame beyond input {frame:?}");
                    let bytes: Vec<u8> = buf.drain(..frame.len).collect();
                    check_frame(&frame, &bytes);
                    frames.push((frame, bytes));
                }
                Err(error) => return (frames, End::Error(error)),
            }
        }
    }
    (frames, End::NeedMore)
}

/// Joins whitespace frames that follow each other: whitespace is framed as
/// far as it has arrived, so where it is cut depends on the reads.
fn coalesce((frames, end): Run) -> Run {
    let mut out: Vec<(Frame, Vec<u8>)> = Vec::new();
    for (frame, bytes) in frames {
        if let Some((last, last_bytes)) = out.last_mut() {
            if last.kind == FrameKind::Whitespace && frame.kind == FrameKind::Whitespace {
                last.len += frame.len;
                last_bytes.extend_from_slice(&bytes);
                continue;
            }
        }
        out.push((frame, bytes));
    }
    (out, end)
}

fn check_frame(frame: &Frame, bytes: &[u8]) {
    assert!(std::str::from_utf8(bytes).is_ok(), "frame not utf-8");
    match &frame.kind {
        FrameKind::Element(info) => {
            assert_eq!(bytes.first(), Some(&b'<'), "element frame {frame:?}");
            assert!(info.name_start <= info.local_start && info.local_start <= info.name_end);
            assert!(info.name_end <= bytes.len(), "name beyond frame {frame:?}");
            if let Some(ns) = &info.default_ns {
                assert!(ns.start <= ns.end && ns.end <= bytes.len(), "{frame:?}");
            }
        }
        FrameKind::Whitespace => assert!(
            bytes
                .iter()
                .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')),
            "whitespace frame {bytes:?}"
        ),
        FrameKind::StreamOpen(_) | FrameKind::StreamClose | FrameKind::Declaration => {}
    }
}
