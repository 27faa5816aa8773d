//! Server-side WebSocket message codec (RFC 6455 §5) for the XMPP
//! subprotocol (RFC 7395 §3.2, §3.3.3), over in-memory buffers.
//!
//! Contract: the reactor feeds raw socket bytes to `handle_input`, then calls
//! `poll_message` until it returns `Ok(None)`; it writes `output()` to the
//! socket and reports progress with `consume_output`. On `Err(CloseReason)`
//! the close frame is already queued: flush `output()`, then close the TCP
//! connection. After `Message::Closed` or once `is_closed()` holds, do the
//! same. Pings are answered here; pongs are swallowed (liveness is the
//! reactor's job: any input counts).
//!
//! Frames are decoded here, in one pass over the bytes read: each is refused
//! at the header byte that shows it is unwanted, before any of its payload
//! is kept. Binary messages are refused (1003); a continuation frame with no
//! message started, or a new text or binary frame inside a fragmented
//! message, is a protocol error (1002, RFC 6455 §5.4), as are reserved bits
//! and opcodes, an unmasked frame (§5.1) and a fragmented or long control
//! frame (§5.5); a text message whose frames together announce more than
//! the limit is refused (1009) at the header that crosses it. Control
//! frames between fragments are handled at once (§5.4). UTF-8 is checked
//! over the whole reassembled message as its fragments arrive, so a
//! character may be split across fragments (1007 when it is invalid, §8.1).
//!
//! Why not tungstenite's `WebSocketContext` (it frames the handshake here):
//! driven over memory it copies every frame into its own buffer, collects
//! the message in another and hands it out in a third, allocating a context
//! per burst of input; the relay's CPU per round trip against a bare byte
//! forwarder measured above its 1.5x budget with it (docs/benchmarks.md).
//! Here a message is unmasked once, from the read bytes into its string.
//!
//! Memory: when all input is consumed, the input buffer releases its
//! allocation, and the reassembly buffer exists only while a fragmented
//! message is incomplete, so an idle codec holds no heap at all.

use std::fmt;

use crate::buffer;

/// Frame opcodes (RFC 6455 §5.2).
const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xa;

/// FIN and the three reserved bits of a frame's first byte (RFC 6455 §5.2).
const FIN: u8 = 0x80;
const RSV: u8 = 0x70;

/// A control frame's payload is at most 125 bytes (RFC 6455 §5.5); a close
/// frame's first two are the code (§5.5.1).
const MAX_CONTROL_PAYLOAD: usize = 125;
const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// Size caps for incoming messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest text message accepted, in bytes of payload over all its
    /// fragments; larger ones close the connection with 1009 (RFC 6455
    /// §7.4.1).
    pub max_message_bytes: usize,
}

/// A complete message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// One text message: one complete XML element (RFC 7395 §3.3.3).
    Text(String),
    /// The client's close frame with its status code (1005 when it gave
    /// none, RFC 6455 §7.1.5). If the client started the close handshake
    /// the reply is queued; if we started it, the handshake is complete.
    Closed(u16),
}

/// Why the codec failed the connection (RFC 6455 §7.1.7): the close frame
/// carrying `code` and `reason` is already queued in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseReason {
    /// The status code sent (RFC 6455 §7.4.1).
    pub code: u16,
    /// The reason sent, also fit for a log line.
    pub reason: &'static str,
}

impl CloseReason {
    /// A binary data frame: RFC 7395 §3.2 allows only text (1003).
    pub const BINARY: CloseReason = CloseReason {
        code: 1003,
        reason: "binary messages are not allowed",
    };
    /// Invalid UTF-8 in a text message or close reason (1007).
    pub const INVALID_UTF8: CloseReason = CloseReason {
        code: 1007,
        reason: "invalid utf-8",
    };
    /// A message over `Limits::max_message_bytes`, counted over all its
    /// fragments (1009).
    pub const TOO_BIG: CloseReason = CloseReason {
        code: 1009,
        reason: "message too big",
    };
    /// An unmasked client frame, reserved bits or opcode, a malformed
    /// control frame, fragments out of order (RFC 6455 §5.4), or a frame
    /// after the close (1002).
    pub const PROTOCOL: CloseReason = CloseReason {
        code: 1002,
        reason: "websocket protocol error",
    };
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (close code {})", self.reason, self.code)
    }
}

impl std::error::Error for CloseReason {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// We sent a close frame and wait for the client's.
    Closing,
    /// The close handshake is over.
    Closed,
    /// We failed the connection and sent this close.
    Failed(CloseReason),
}

/// A text message whose first fragments have arrived (RFC 6455 §5.4).
#[derive(Debug, Default)]
struct Fragments {
    /// The unmasked payload so far.
    payload: Vec<u8>,
    /// `payload` up to here is valid UTF-8: what follows is at most the
    /// start of one character cut by a fragment boundary.
    valid_to: usize,
}

/// One frame's header, once all of it is in.
#[derive(Debug, Clone, Copy)]
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    /// Header bytes, masking key included.
    len: usize,
    payload: usize,
}

/// The WebSocket codec of one client connection, server role.
#[derive(Debug)]
pub struct Codec {
    limits: Limits,
    state: State,
    /// Present only while a fragmented message is incomplete; boxed so that
    /// an idle codec stays small.
    fragments: Option<Box<Fragments>>,
    input: Vec<u8>,
    /// Bytes of `input` already decoded.
    input_pos: usize,
    output: Vec<u8>,
    /// Bytes of `output` already written to the socket.
    output_pos: usize,
}

impl Codec {
    /// A codec for a connection whose handshake has just completed.
    pub fn new(limits: Limits) -> Self {
        Codec {
            limits,
            state: State::Open,
            fragments: None,
            input: Vec::new(),
            input_pos: 0,
            output: Vec::new(),
            output_pos: 0,
        }
    }

    /// A frame has begun and is not complete yet, or a fragmented message.
    pub fn has_partial_input(&self) -> bool {
        self.fragments.is_some() || self.input_pos < self.input.len()
    }

    /// Raw bytes read from the client socket. Ignored once the connection
    /// is closed or failed.
    pub fn handle_input(&mut self, bytes: &[u8]) {
        if matches!(self.state, State::Closed | State::Failed(_)) || bytes.is_empty() {
            return;
        }
        if self.input_pos > 0 {
            self.input.drain(..self.input_pos);
            self.input_pos = 0;
        }
        buffer::append(&mut self.input, bytes);
    }

    /// The next complete message, `Ok(None)` when more input is needed.
    /// Pings are answered (the pong is queued) and pongs are dropped. An
    /// error is final: every later call returns it again.
    pub fn poll_message(&mut self) -> Result<Option<Message>, CloseReason> {
        match self.state {
            State::Failed(reason) => return Err(reason),
            State::Closed => return Ok(None),
            State::Open | State::Closing => {}
        }
        loop {
            let pending = self.input.get(self.input_pos..).unwrap_or_default();
            let header = match self.header(pending) {
                Ok(Some(header)) => header,
                Ok(None) => {
                    self.release_input();
                    return Ok(None);
                }
                Err(reason) => return Err(self.fail(reason)),
            };
            let start = self.input_pos + header.len;
            let Some(masked) = self.input.get(start..start + header.payload) else {
                return Ok(None);
            };
            let mut payload = Vec::with_capacity(masked.len());
            unmask_onto(&mut payload, masked, header.mask);
            self.input_pos = start + header.payload;
            let message = match header.opcode {
                OP_PING => {
                    // No answer once our close is out (RFC 6455 §5.5.1).
                    if self.state == State::Open {
                        self.queue_frame(OP_PONG, &payload);
                    }
                    continue;
                }
                OP_CLOSE => self.closed(&payload),
                OP_TEXT | OP_CONTINUATION => self.text(header.fin, payload),
                // Pongs; the header check lets no other opcode through.
                _ => continue,
            };
            match message {
                Ok(None) => {}
                Ok(Some(message)) => return Ok(Some(message)),
                Err(reason) => return Err(self.fail(reason)),
            }
        }
    }

    /// The header at the start of `bytes`, `Ok(None)` while it is cut
    /// short. Each refusal is raised by the first byte that shows it, so
    /// nothing of a refused frame is kept waiting for the rest.
    fn header(&self, bytes: &[u8]) -> Result<Option<Header>, CloseReason> {
        let Some(&first) = bytes.first() else {
            return Ok(None);
        };
        let opcode = first & 0x0f;
        let fin = first & FIN != 0;
        let in_message = self.fragments.is_some();
        let control = opcode & 0x8 != 0;
        match opcode {
            OP_TEXT | OP_BINARY if in_message => return Err(CloseReason::PROTOCOL),
            OP_CONTINUATION if !in_message => return Err(CloseReason::PROTOCOL),
            OP_BINARY => return Err(CloseReason::BINARY),
            OP_CONTINUATION | OP_TEXT | OP_CLOSE | OP_PING | OP_PONG => {}
            _ => return Err(CloseReason::PROTOCOL),
        }
        if first & RSV != 0 || (control && !fin) {
            return Err(CloseReason::PROTOCOL);
        }
        let Some(&second) = bytes.get(1) else {
            return Ok(None);
        };
        // Clients mask every frame (RFC 6455 §5.1).
        if second & 0x80 == 0 {
            return Err(CloseReason::PROTOCOL);
        }
        // The 7-bit length, or how many bytes hold the length after it.
        let extended = match second & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        if control && extended > 0 {
            return Err(CloseReason::PROTOCOL);
        }
        let payload = if extended == 0 {
            u64::from(second & 0x7f)
        } else {
            match bytes.get(2..2 + extended) {
                Some(length) => length.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b)),
                None => return Ok(None),
            }
        };
        if !control {
            let so_far = self.fragments.as_ref().map_or(0, |f| f.payload.len());
            let limit = self.limits.max_message_bytes.saturating_sub(so_far);
            if payload > u64::try_from(limit).unwrap_or(u64::MAX) {
                return Err(CloseReason::TOO_BIG);
            }
        }
        let key_at = 2 + extended;
        let Some(mask) = bytes.get(key_at..key_at + 4) else {
            return Ok(None);
        };
        Ok(Some(Header {
            fin,
            opcode,
            mask: [mask[0], mask[1], mask[2], mask[3]],
            len: key_at + 4,
            // Within the message limit, so within `usize`.
            payload: usize::try_from(payload).unwrap_or(usize::MAX),
        }))
    }

    /// A text or continuation frame's payload: the message once it is
    /// complete.
    fn text(&mut self, fin: bool, payload: Vec<u8>) -> Result<Option<Message>, CloseReason> {
        let whole = match self.fragments.take() {
            None if fin => payload,
            started => {
                let mut fragments = started.unwrap_or_default();
                fragments.payload.extend_from_slice(&payload);
                let fresh = fragments.payload.get(fragments.valid_to..);
                match std::str::from_utf8(fresh.unwrap_or_default()) {
                    Ok(_) => fragments.valid_to = fragments.payload.len(),
                    Err(e) if e.error_len().is_none() && !fin => {
                        fragments.valid_to += e.valid_up_to();
                    }
                    Err(_) => return Err(CloseReason::INVALID_UTF8),
                }
                if !fin {
                    self.fragments = Some(fragments);
                    return Ok(None);
                }
                fragments.payload
            }
        };
        match String::from_utf8(whole) {
            Ok(text) => Ok(Some(Message::Text(text))),
            Err(_) => Err(CloseReason::INVALID_UTF8),
        }
    }

    /// The client's close frame (RFC 6455 §5.5.1): answered with the same
    /// code and reason when the client started the close, and the end of
    /// the connection either way.
    fn closed(&mut self, payload: &[u8]) -> Result<Option<Message>, CloseReason> {
        let code = match payload {
            [] => None,
            [_] => return Err(CloseReason::PROTOCOL),
            [high, low, reason @ ..] => {
                if std::str::from_utf8(reason).is_err() {
                    return Err(CloseReason::INVALID_UTF8);
                }
                Some(u16::from_be_bytes([*high, *low]))
            }
        };
        let code = if self.state == State::Open {
            match code {
                // A code no endpoint may send (RFC 6455 §7.4.1, §7.4.2).
                Some(code) if !may_be_sent(code) => {
                    let answer = CloseReason::PROTOCOL;
                    self.queue_close(answer.code, answer.reason);
                    Some(answer.code)
                }
                _ => {
                    self.queue_frame(OP_CLOSE, payload);
                    code
                }
            }
        } else {
            code
        };
        self.finish(State::Closed);
        Ok(Some(Message::Closed(code.unwrap_or(1005))))
    }

    /// Queues one text message (RFC 7395 §3.3.3: one complete element per
    /// message). Ignored once a close frame was sent or received.
    pub fn send_text(&mut self, text: &str) {
        if self.state == State::Open {
            self.queue_frame(OP_TEXT, text.as_bytes());
        }
    }

    /// Queue one text message whose payload `write` appends straight to the
    /// output: relayed stanzas are copied once, from the backend's buffer
    /// into the frame. `write` must append valid UTF-8 (RFC 6455 §5.6).
    pub fn send_text_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        if self.state != State::Open {
            return;
        }
        self.compact_output();
        buffer::reserve(&mut self.output, 1);
        let start = self.output.len();
        write(&mut self.output);
        let len = self.output.len() - start;
        put_header(&mut self.output, OP_TEXT, len);
        // The header went after the payload: turn it to the front.
        let header = self.output.len() - start - len;
        self.output[start..].rotate_right(header);
    }

    /// Queues an empty ping (RFC 6455 §5.5.2; RFC 7395 §3.8). Ignored once
    /// a close frame was sent or received.
    pub fn send_ping(&mut self) {
        if self.state == State::Open {
            self.queue_frame(OP_PING, &[]);
        }
    }

    /// Starts the close handshake (RFC 6455 §5.5.1, §7.1.2): queues a close
    /// frame; the client's answer arrives as `Message::Closed`. `code` must
    /// be one an endpoint may send (RFC 6455 §7.4: not 1005, 1006, 1015);
    /// `reason` is cut to 123 bytes. Ignored unless the connection is open.
    pub fn send_close(&mut self, code: u16, reason: &str) {
        if self.state == State::Open {
            self.queue_close(code, reason);
            self.state = State::Closing;
        }
    }

    /// Bytes to write to the socket.
    pub fn output(&self) -> &[u8] {
        self.output.get(self.output_pos..).unwrap_or_default()
    }

    /// Marks the first `n` bytes of `output()` as written.
    pub fn consume_output(&mut self, n: usize) {
        self.output_pos = self.output_pos.saturating_add(n).min(self.output.len());
        if self.output_pos == self.output.len() {
            self.output = Vec::new();
            self.output_pos = 0;
        }
    }

    /// Whether `output()` has bytes waiting.
    pub fn wants_write(&self) -> bool {
        self.output_pos < self.output.len()
    }

    /// Whether the connection is over (close handshake done, or failed):
    /// once `output()` is flushed, the TCP connection can be closed.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed | State::Failed(_))
    }

    /// Queues the close frame for `reason` unless one was sent already, and
    /// makes the failure final.
    fn fail(&mut self, reason: CloseReason) -> CloseReason {
        if self.state == State::Open {
            self.queue_close(reason.code, reason.reason);
        }
        self.finish(State::Failed(reason));
        reason
    }

    fn finish(&mut self, state: State) {
        self.state = state;
        self.fragments = None;
        self.input = Vec::new();
        self.input_pos = 0;
    }

    fn release_input(&mut self) {
        if self.input_pos == self.input.len() {
            self.input = Vec::new();
            self.input_pos = 0;
        }
    }

    fn queue_frame(&mut self, opcode: u8, payload: &[u8]) {
        self.compact_output();
        buffer::reserve(&mut self.output, payload.len() + 10);
        put_header(&mut self.output, opcode, payload.len());
        self.output.extend_from_slice(payload);
    }

    /// A close frame with `code` and `reason`, cut to fit at a character
    /// boundary.
    fn queue_close(&mut self, code: u16, reason: &str) {
        let reason = truncate_to_char_boundary(reason, MAX_CLOSE_REASON);
        self.compact_output();
        put_header(&mut self.output, OP_CLOSE, 2 + reason.len());
        self.output.extend_from_slice(&code.to_be_bytes());
        self.output.extend_from_slice(reason.as_bytes());
    }

    /// Drops written bytes before appending once they are at least half of
    /// the buffer, so partial writes cost amortised O(1) per byte.
    fn compact_output(&mut self) {
        if self.output_pos > 0 && self.output_pos >= self.output.len() / 2 {
            self.output.drain(..self.output_pos);
            self.output_pos = 0;
        }
    }
}

/// Whether an endpoint may put `code` in a close frame (RFC 6455 §7.4.1,
/// §7.4.2): the defined codes but 1004 (reserved), 1005, 1006 and 1015
/// (never sent), and the registered and private ranges.
fn may_be_sent(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999)
}

/// Appends `masked` unmasked with `mask` (RFC 6455 §5.3), eight bytes at a
/// time: the key repeats every four bytes from the payload's start.
fn unmask_onto(out: &mut Vec<u8>, masked: &[u8], mask: [u8; 4]) {
    let start = out.len();
    out.extend_from_slice(masked);
    let payload = out.get_mut(start..).unwrap_or_default();
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut words = payload.chunks_exact_mut(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ wide).to_ne_bytes());
    }
    for (byte, key) in words.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= key;
    }
}

/// Writes an unmasked, final frame header (RFC 6455 §5.2): servers never
/// mask (§5.1).
fn put_header(out: &mut Vec<u8>, opcode: u8, len: usize) {
    out.push(FIN | opcode);
    if len <= 125 {
        out.push(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

fn truncate_to_char_boundary(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_message_bytes: 100_000,
    };
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A client frame: `first` is FIN/RSV/opcode, the payload is masked
    /// when `mask` is given.
    fn frame(first: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = Vec::new();
        let mask_bit = if mask.is_some() { 0x80 } else { 0 };
        let len = payload.len();
        if len <= 125 {
            out.extend_from_slice(&[first, mask_bit | len as u8]);
        } else if len <= 0xffff {
            out.extend_from_slice(&[first, mask_bit | 126]);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.extend_from_slice(&[first, mask_bit | 127]);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        match mask {
            Some(mask) => {
                out.extend_from_slice(&mask);
                out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
            }
            None => out.extend_from_slice(payload),
        }
        out
    }

    fn text(payload: &str) -> Vec<u8> {
        frame(0x81, payload.as_bytes(), Some(MASK))
    }

    fn close(code: Option<u16>, reason: &str) -> Vec<u8> {
        let mut payload = Vec::new();
        if let Some(code) = code {
            payload.extend_from_slice(&code.to_be_bytes());
            payload.extend_from_slice(reason.as_bytes());
        }
        frame(0x88, &payload, Some(MASK))
    }

    /// Decodes server frames, asserting they are unmasked and final:
    /// (opcode, payload) each.
    fn server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            assert_eq!(bytes[0] & 0xf0, 0x80, "final, no reserved bits");
            assert_eq!(bytes[1] & 0x80, 0, "server frames are unmasked");
            let (len, header) = match bytes[1] & 0x7f {
                126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                len => (len as usize, 2),
            };
            frames.push((bytes[0] & 0x0f, bytes[header..header + len].to_vec()));
            bytes = &bytes[header + len..];
        }
        frames
    }

    fn drain(codec: &mut Codec) -> Result<Vec<Message>, CloseReason> {
        let mut messages = Vec::new();
        while let Some(message) = codec.poll_message()? {
            messages.push(message);
        }
        Ok(messages)
    }

    /// Feeds `input` in the given pieces, draining after each.
    fn feed(codec: &mut Codec, pieces: &[&[u8]]) -> Result<Vec<Message>, CloseReason> {
        let mut messages = Vec::new();
        for piece in pieces {
            codec.handle_input(piece);
            messages.extend(drain(codec)?);
        }
        Ok(messages)
    }

    fn take_output(codec: &mut Codec) -> Vec<u8> {
        let out = codec.output().to_vec();
        codec.consume_output(out.len());
        out
    }

    fn close_payload(code: u16, reason: &str) -> Vec<u8> {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        payload
    }

    fn assert_failed_with(codec: &mut Codec, input: &[u8], expected: CloseReason) {
        codec.handle_input(input);
        assert_eq!(drain(codec), Err(expected));
        assert_eq!(codec.poll_message(), Err(expected), "failure is final");
        assert!(codec.is_closed());
        assert_eq!(
            server_frames(&take_output(codec)),
            vec![(OP_CLOSE, close_payload(expected.code, expected.reason))]
        );
    }

    #[test]
    fn text_messages_fed_whole_or_split_at_every_byte_come_out_the_same() {
        let long = "é".repeat(150);
        let first = "<message to='a@b'><body>hi</body></message>";
        let mut input = text(first);
        input.extend(text(&long));
        let expected = vec![Message::Text(first.into()), Message::Text(long.clone())];

        let mut codec = Codec::new(LIMITS);
        assert_eq!(feed(&mut codec, &[&input]), Ok(expected.clone()));

        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            let mut codec = Codec::new(LIMITS);
            assert_eq!(feed(&mut codec, &[a, b]), Ok(expected.clone()), "{split}");
        }

        let mut codec = Codec::new(LIMITS);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(feed(&mut codec, &bytes), Ok(expected));
    }

    #[test]
    fn message_with_64_bit_length_fed_bytewise_is_reassembled() {
        let big = "x".repeat(70_000);
        let input = text(&big);
        let mut codec = Codec::new(LIMITS);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(feed(&mut codec, &bytes), Ok(vec![Message::Text(big)]));
    }

    #[test]
    fn empty_text_message_is_delivered() {
        let mut codec = Codec::new(LIMITS);
        assert_eq!(
            feed(&mut codec, &[&text("")]),
            Ok(vec![Message::Text(String::new())])
        );
    }

    #[test]
    fn ping_is_answered_with_pong_carrying_its_payload() {
        let mut codec = Codec::new(LIMITS);
        let mut input = frame(0x89, b"beat", Some(MASK));
        input.extend(text("<r/>"));
        assert_eq!(
            feed(&mut codec, &[&input]),
            Ok(vec![Message::Text("<r/>".into())])
        );
        assert_eq!(
            server_frames(&take_output(&mut codec)),
            vec![(0xa, b"beat".to_vec())]
        );
    }

    #[test]
    fn pong_is_swallowed_without_output() {
        let mut codec = Codec::new(LIMITS);
        assert_eq!(
            feed(&mut codec, &[&frame(0x8a, b"x", Some(MASK))]),
            Ok(vec![])
        );
        assert!(!codec.wants_write());
    }

    /// A text message, then `bad` in the same read: the message comes out,
    /// then the failure.
    fn assert_failed_after_a_message(bad: &[u8], expected: CloseReason) {
        let mut codec = Codec::new(LIMITS);
        let mut input = text("<a/>");
        input.extend_from_slice(bad);
        codec.handle_input(&input);
        assert_eq!(codec.poll_message(), Ok(Some(Message::Text("<a/>".into()))));
        assert_failed_with(&mut codec, &[], expected);
    }

    #[test]
    fn binary_message_closes_with_1003_after_earlier_messages() {
        assert_failed_after_a_message(&frame(0x82, b"\x00\x01", Some(MASK)), CloseReason::BINARY);
        assert_eq!(CloseReason::BINARY.code, 1003);
    }

    /// `payload` as a text message cut at `cuts` (ascending offsets): a
    /// text frame without FIN, continuation frames, FIN on the last
    /// (RFC 6455 §5.4), with `between` after every fragment but the last.
    fn fragmented(payload: &[u8], cuts: &[usize], between: &[u8]) -> Vec<u8> {
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(payload.len());
        let last = bounds.len() - 2;
        let mut out = Vec::new();
        for (i, pair) in bounds.windows(2).enumerate() {
            let opcode = if i == 0 { OP_TEXT } else { OP_CONTINUATION };
            let fin = if i == last { 0x80 } else { 0 };
            out.extend(frame(fin | opcode, &payload[pair[0]..pair[1]], Some(MASK)));
            if i != last {
                out.extend_from_slice(between);
            }
        }
        out
    }

    /// Feeds `input` whole, then split in two at every byte, and checks each
    /// way gives `expected`.
    fn assert_whole_and_split(input: &[u8], expected: &Result<Vec<Message>, CloseReason>) {
        assert_eq!(&feed(&mut Codec::new(LIMITS), &[input]), expected);
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            let got = feed(&mut Codec::new(LIMITS), &[a, b]);
            assert_eq!(&got, expected, "split at {split}");
        }
    }

    const STANZA: &str = "<message to='é@b'><body>€ ok</body></message>";

    #[test]
    fn text_in_two_fragments_cut_at_every_byte_is_one_message() {
        let expected = Ok(vec![Message::Text(STANZA.into())]);
        for cut in 0..=STANZA.len() {
            let input = fragmented(STANZA.as_bytes(), &[cut], &[]);
            assert_eq!(feed(&mut Codec::new(LIMITS), &[&input]), expected, "{cut}");
        }
        // Fragment boundaries and read boundaries both anywhere.
        assert_whole_and_split(&fragmented(STANZA.as_bytes(), &[11], &[]), &expected);
    }

    #[test]
    fn text_in_three_fragments_cut_at_every_pair_of_bytes_is_one_message() {
        let expected = Ok(vec![Message::Text(STANZA.into())]);
        for first in 0..=STANZA.len() {
            for second in first..=STANZA.len() {
                let input = fragmented(STANZA.as_bytes(), &[first, second], &[]);
                let got = feed(&mut Codec::new(LIMITS), &[&input]);
                assert_eq!(got, expected, "cuts {first}, {second}");
            }
        }
    }

    #[test]
    fn text_in_one_fragment_per_byte_fed_bytewise_is_one_message() {
        let cuts: Vec<usize> = (1..STANZA.len()).collect();
        let input = fragmented(STANZA.as_bytes(), &cuts, &[]);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(
            feed(&mut Codec::new(LIMITS), &bytes),
            Ok(vec![Message::Text(STANZA.into())])
        );
    }

    #[test]
    fn pings_between_fragments_are_answered_at_once() {
        let ping = frame(0x89, b"hb", Some(MASK));
        let input = fragmented(STANZA.as_bytes(), &[5, 20, 30], &ping);
        assert_whole_and_split(&input, &Ok(vec![Message::Text(STANZA.into())]));

        // The pongs go out before the message is complete.
        let last = input.len() - frame(0x80, &STANZA.as_bytes()[30..], Some(MASK)).len();
        let mut codec = Codec::new(LIMITS);
        assert_eq!(feed(&mut codec, &[&input[..last]]), Ok(vec![]));
        assert_eq!(
            server_frames(&take_output(&mut codec)),
            vec![(0xa, b"hb".to_vec()); 3]
        );
        assert_eq!(
            feed(&mut codec, &[&input[last..]]),
            Ok(vec![Message::Text(STANZA.into())])
        );
    }

    #[test]
    fn close_between_fragments_ends_the_connection_at_once() {
        let mut input = frame(OP_TEXT, b"<mess", Some(MASK));
        input.extend(close(Some(1000), ""));
        let mut codec = Codec::new(LIMITS);
        assert_eq!(feed(&mut codec, &[&input]), Ok(vec![Message::Closed(1000)]));
        assert!(codec.is_closed());
    }

    #[test]
    fn fragments_over_the_limit_close_with_1009_at_the_header_that_crosses_it() {
        let limits = Limits {
            max_message_bytes: 300,
        };
        let payload = "z".repeat(301);
        let input = fragmented(payload.as_bytes(), &[100, 200], &[]);
        // The third fragment's header (2 bytes, then the mask) starts 6
        // bytes before its 101 payload bytes; its length byte is enough.
        let third = input.len() - 101 - 6;
        let mut codec = Codec::new(limits);
        assert_eq!(feed(&mut codec, &[&input[..third]]), Ok(vec![]));
        assert_failed_with(&mut codec, &input[third..third + 2], CloseReason::TOO_BIG);
        assert!(codec.fragments.is_none(), "nothing kept");
        assert_eq!(codec.input.capacity(), 0);

        // Whole: the same refusal, before the rest is looked at.
        let mut codec = Codec::new(limits);
        assert_failed_with(&mut codec, &input, CloseReason::TOO_BIG);

        // Exactly the limit over three fragments passes.
        let exact = "z".repeat(300);
        let input = fragmented(exact.as_bytes(), &[100, 200], &[]);
        let mut codec = Codec::new(limits);
        assert_eq!(feed(&mut codec, &[&input]), Ok(vec![Message::Text(exact)]));
    }

    #[test]
    fn continuation_without_a_message_started_closes_with_1002() {
        let mut codec = Codec::new(LIMITS);
        assert_failed_with(
            &mut codec,
            &frame(0x80, b"age/>", Some(MASK)),
            CloseReason::PROTOCOL,
        );
        // Nor after a complete message.
        assert_failed_after_a_message(&frame(0x80, b"<b/>", Some(MASK)), CloseReason::PROTOCOL);
    }

    #[test]
    fn new_data_frame_inside_a_fragmented_message_closes_with_1002() {
        for first in [0x81, 0x01, 0x82, 0x02] {
            let mut codec = Codec::new(LIMITS);
            let mut input = frame(OP_TEXT, b"<mess", Some(MASK));
            input.extend(frame(first, b"age/>", Some(MASK)));
            assert_failed_with(&mut codec, &input, CloseReason::PROTOCOL);
        }
    }

    #[test]
    fn fragmented_binary_message_closes_with_1003_at_its_first_frame() {
        let mut codec = Codec::new(LIMITS);
        assert_failed_with(
            &mut codec,
            &frame(0x02, b"\x00", Some(MASK)),
            CloseReason::BINARY,
        );
    }

    #[test]
    fn utf8_is_checked_over_the_whole_fragmented_message() {
        let euro = "€".as_bytes();
        // A character split across fragments is fine at every cut.
        for cut in 0..=euro.len() {
            let input = fragmented(euro, &[cut], &[]);
            assert_whole_and_split(&input, &Ok(vec![Message::Text("€".into())]));
        }
        // A character cut off by the end of the message is not.
        let mut codec = Codec::new(LIMITS);
        let input = fragmented(&euro[..2], &[1], &[]);
        assert_failed_with(&mut codec, &input, CloseReason::INVALID_UTF8);
        // Nor is a stray continuation byte in a later fragment.
        let mut codec = Codec::new(LIMITS);
        let input = fragmented(b"ok\x80ok", &[2], &[]);
        assert_failed_with(&mut codec, &input, CloseReason::INVALID_UTF8);
    }

    #[test]
    fn reassembly_is_freed_after_each_fragmented_message() {
        let input = fragmented(STANZA.as_bytes(), &[10], &[]);
        let second = frame(0x80, &STANZA.as_bytes()[10..], Some(MASK)).len();
        let (head, tail) = input.split_at(input.len() - second);
        let mut codec = Codec::new(LIMITS);
        assert_eq!(feed(&mut codec, &[head]), Ok(vec![]));
        assert!(codec.fragments.is_some(), "the first fragment is held");
        assert_eq!(
            feed(&mut codec, &[tail]),
            Ok(vec![Message::Text(STANZA.into())])
        );
        assert!(codec.fragments.is_none());
        assert_eq!(codec.input.capacity(), 0);
    }

    #[test]
    fn oversized_frame_closes_with_1009_as_soon_as_its_header_arrives() {
        let mut codec = Codec::new(Limits {
            max_message_bytes: 10,
        });
        let mut header = vec![0x81, 0x80 | 127];
        header.extend_from_slice(&(10u64 << 20).to_be_bytes());
        header.extend_from_slice(&MASK);
        header.extend_from_slice(&[0x55; 100]);
        assert_failed_with(&mut codec, &header, CloseReason::TOO_BIG);
        assert_eq!(CloseReason::TOO_BIG.code, 1009);
        assert_eq!(codec.input.capacity(), 0, "nothing kept");
    }

    #[test]
    fn message_of_exactly_the_limit_passes_and_one_byte_more_fails() {
        let limits = Limits {
            max_message_bytes: 300,
        };
        let mut codec = Codec::new(limits);
        let exact = "y".repeat(300);
        assert_eq!(
            feed(&mut codec, &[&text(&exact)]),
            Ok(vec![Message::Text(exact)])
        );
        let mut codec = Codec::new(limits);
        assert_failed_with(&mut codec, &text(&"y".repeat(301)), CloseReason::TOO_BIG);
    }

    #[test]
    fn invalid_utf8_in_text_closes_with_1007() {
        let mut codec = Codec::new(LIMITS);
        assert_failed_with(
            &mut codec,
            &frame(0x81, b"ok\xff\xfe", Some(MASK)),
            CloseReason::INVALID_UTF8,
        );
        assert_eq!(CloseReason::INVALID_UTF8.code, 1007);
    }

    #[test]
    fn unmasked_client_frame_closes_with_1002() {
        let mut codec = Codec::new(LIMITS);
        assert_failed_with(
            &mut codec,
            &frame(0x81, b"<a/>", None),
            CloseReason::PROTOCOL,
        );
        assert_eq!(CloseReason::PROTOCOL.code, 1002);
    }

    #[test]
    fn reserved_bits_opcodes_and_bad_control_frames_close_with_1002() {
        let cases = [
            frame(0xc1, b"<a/>", Some(MASK)),     // RSV1 without extension
            frame(0x83, b"?", Some(MASK)),        // reserved data opcode
            frame(0x8b, b"", Some(MASK)),         // reserved control opcode
            frame(0x09, b"", Some(MASK)),         // fragmented ping
            frame(0x89, &[0u8; 126], Some(MASK)), // control frame over 125
            frame(0x88, &[0x03], Some(MASK)),     // close payload of 1 byte
        ];
        for case in cases {
            let mut codec = Codec::new(LIMITS);
            assert_failed_with(&mut codec, &case, CloseReason::PROTOCOL);
        }
    }

    #[test]
    fn client_close_is_echoed_and_reported_with_its_code() {
        let mut codec = Codec::new(LIMITS);
        let mut input = text("<a/>");
        input.extend(close(Some(1000), "bye"));
        input.extend(text("<ignored/>"));
        assert_eq!(
            feed(&mut codec, &[&input]),
            Ok(vec![Message::Text("<a/>".into()), Message::Closed(1000)])
        );
        assert!(codec.is_closed());
        assert_eq!(
            server_frames(&take_output(&mut codec)),
            vec![(OP_CLOSE, close_payload(1000, "bye"))]
        );
        codec.send_text("<late/>");
        assert!(!codec.wants_write(), "nothing is sent after the close");
    }

    #[test]
    fn client_close_whose_reason_is_not_utf8_closes_with_1007() {
        let mut payload = 1000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"by\xffe");
        let mut codec = Codec::new(LIMITS);
        assert_failed_with(
            &mut codec,
            &frame(0x88, &payload, Some(MASK)),
            CloseReason::INVALID_UTF8,
        );
    }

    #[test]
    fn our_close_answered_with_a_code_not_allowed_reports_it_without_a_reply() {
        let mut codec = Codec::new(LIMITS);
        codec.send_close(1000, "");
        take_output(&mut codec);
        assert_eq!(
            feed(&mut codec, &[&close(Some(1006), "")]),
            Ok(vec![Message::Closed(1006)])
        );
        assert!(codec.is_closed());
        assert!(!codec.wants_write());
    }

    #[test]
    fn close_codes_an_endpoint_may_send_are_echoed_and_others_answered_with_1002() {
        for code in [
            0, 999, 1000, 1003, 1004, 1005, 1006, 1007, 1013, 1014, 1015, 2999, 3000, 4999, 5000,
        ] {
            let mut codec = Codec::new(LIMITS);
            let allowed = matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999);
            let (reported, answer) = if allowed {
                (code, close_payload(code, "x"))
            } else {
                (1002, close_payload(1002, CloseReason::PROTOCOL.reason))
            };
            assert_eq!(
                feed(&mut codec, &[&close(Some(code), "x")]),
                Ok(vec![Message::Closed(reported)]),
                "{code}"
            );
            assert_eq!(
                server_frames(&take_output(&mut codec)),
                vec![(OP_CLOSE, answer)],
                "{code}"
            );
        }
    }

    #[test]
    fn unmasking_matches_the_key_at_every_length_and_after_earlier_bytes() {
        let mask = [0x01, 0x80, 0xfe, 0x7f];
        for before in 0..9 {
            for len in 0..40 {
                let plain: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
                let masked: Vec<u8> = plain
                    .iter()
                    .zip(mask.iter().cycle())
                    .map(|(b, m)| b ^ m)
                    .collect();
                let mut out = vec![0xaa; before];
                unmask_onto(&mut out, &masked, mask);
                assert_eq!(out[..before], vec![0xaa; before][..]);
                assert_eq!(out[before..], plain[..], "{before} then {len}");
            }
        }
    }

    #[test]
    fn length_with_the_top_bit_set_closes_with_1009_not_a_wrap() {
        let mut header = vec![0x81, 0x80 | 127];
        header.extend_from_slice(&u64::MAX.to_be_bytes());
        let mut codec = Codec::new(LIMITS);
        assert_failed_with(&mut codec, &header, CloseReason::TOO_BIG);
    }

    #[test]
    fn client_close_without_code_reports_1005() {
        let mut codec = Codec::new(LIMITS);
        assert_eq!(
            feed(&mut codec, &[&close(None, "")]),
            Ok(vec![Message::Closed(1005)])
        );
        assert_eq!(
            server_frames(&take_output(&mut codec)),
            vec![(OP_CLOSE, vec![])]
        );
    }

    #[test]
    fn ping_after_our_close_is_not_answered() {
        let mut codec = Codec::new(LIMITS);
        codec.send_close(1001, "shutdown");
        take_output(&mut codec);
        assert_eq!(
            feed(&mut codec, &[&frame(0x89, b"p", Some(MASK))]),
            Ok(vec![])
        );
        assert!(!codec.wants_write());
    }

    #[test]
    fn our_close_completes_on_the_client_answer_without_a_second_close_frame() {
        let mut codec = Codec::new(LIMITS);
        codec.send_close(1000, "");
        assert_eq!(
            server_frames(&take_output(&mut codec)),
            vec![(OP_CLOSE, close_payload(1000, ""))]
        );
        codec.send_text("<dropped/>");
        codec.send_ping();
        assert!(!codec.wants_write());
        assert!(!codec.is_closed(), "waiting for the client's close");
        let mut input = text("<late/>");
        input.extend(close(Some(1000), ""));
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(
            feed(&mut codec, &bytes),
            Ok(vec![Message::Text("<late/>".into()), Message::Closed(1000)])
        );
        assert!(codec.is_closed());
        assert!(!codec.wants_write());
    }

    #[test]
    fn close_reason_is_cut_to_fit_a_control_frame_at_a_char_boundary() {
        let mut codec = Codec::new(LIMITS);
        codec.send_close(1001, &"ü".repeat(100));
        let frames = server_frames(&take_output(&mut codec));
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].1.len(), 2 + 122);
        assert!(std::str::from_utf8(&frames[0].1[2..]).is_ok());
    }

    #[test]
    fn sent_text_is_one_unmasked_final_text_frame_at_every_length_format() {
        for len in [0, 1, 125, 126, 65_535, 65_536] {
            let body = "z".repeat(len);
            let mut codec = Codec::new(LIMITS);
            codec.send_text(&body);
            assert_eq!(
                server_frames(&take_output(&mut codec)),
                vec![(OP_TEXT, body.into_bytes())],
                "{len}"
            );
        }
    }

    #[test]
    fn sent_ping_is_an_empty_ping_frame() {
        let mut codec = Codec::new(LIMITS);
        codec.send_ping();
        assert_eq!(take_output(&mut codec), vec![0x89, 0x00]);
    }

    #[test]
    fn partial_writes_keep_order_and_free_the_buffer_when_done() {
        let mut codec = Codec::new(LIMITS);
        codec.send_text("<a/>");
        let first = codec.output().to_vec();
        codec.consume_output(3);
        assert!(codec.wants_write());
        codec.send_text("<b/>");
        let mut written = first[..3].to_vec();
        written.extend_from_slice(codec.output());
        codec.consume_output(codec.output().len());
        assert!(!codec.wants_write());
        assert_eq!(codec.output.capacity(), 0);
        assert_eq!(
            server_frames(&written),
            vec![(OP_TEXT, b"<a/>".to_vec()), (OP_TEXT, b"<b/>".to_vec())]
        );
    }

    #[test]
    fn idle_codec_holds_no_heap_after_traffic() {
        let mut codec = Codec::new(LIMITS);
        let big = "q".repeat(50_000);
        let mut input = text(&big);
        input.extend(frame(0x89, b"", Some(MASK)));
        assert_eq!(feed(&mut codec, &[&input]), Ok(vec![Message::Text(big)]));
        codec.send_text("<a/>");
        take_output(&mut codec);
        assert!(!codec.has_partial_input());
        assert_eq!(codec.input.capacity(), 0);
        assert_eq!(codec.input.capacity(), 0);
        assert_eq!(codec.output.capacity(), 0);
    }

    #[test]
    fn partial_frame_is_kept_until_complete_then_released() {
        let mut codec = Codec::new(LIMITS);
        let input = text("<presence/>");
        assert_eq!(feed(&mut codec, &[&input[..5]]), Ok(vec![]));
        assert!(codec.has_partial_input());
        assert_eq!(codec.input.len(), 5, "the cut frame waits in the input");
        assert_eq!(
            feed(&mut codec, &[&input[5..]]),
            Ok(vec![Message::Text("<presence/>".into())])
        );
        assert!(!codec.has_partial_input());
        assert_eq!(codec.input.capacity(), 0);
    }

    #[test]
    fn input_after_failure_is_ignored() {
        let mut codec = Codec::new(LIMITS);
        assert_failed_with(&mut codec, &frame(0x81, b"x", None), CloseReason::PROTOCOL);
        codec.handle_input(&text("<a/>"));
        assert_eq!(codec.input.capacity(), 0);
        codec.send_text("<b/>");
        codec.send_close(1000, "");
        assert!(!codec.wants_write());
    }

    #[test]
    fn send_text_with_frames_what_the_writer_appends() {
        let limits = Limits {
            max_message_bytes: 1 << 20,
        };
        for len in [0usize, 5, 125, 126, 70_000] {
            let payload = "x".repeat(len);
            let mut codec = Codec::new(limits);
            codec.send_text("a");
            codec.send_text_with(|out| out.extend_from_slice(payload.as_bytes()));
            let mut expected = Codec::new(limits);
            expected.send_text("a");
            expected.send_text(&payload);
            assert_eq!(codec.output(), expected.output(), "payload of {len} bytes");
        }
    }
}
