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
//! Frames are decoded by tungstenite's `WebSocketContext` (unmasking, UTF-8
//! validation, reassembly of fragments, the close handshake). In front of
//! it a small scanner walks the frame headers of the bytes handed over and
//! decides what the context may see, each at the header byte that shows it,
//! before any payload is buffered: binary messages are refused (1003); a
//! continuation frame with no message started, or a new text or binary
//! frame inside a fragmented message, is a protocol error (1002, RFC 6455
//! §5.4); a text message whose frames together announce more than the limit
//! is refused (1009) at the header that crosses it. Control frames between
//! fragments are handled at once (§5.4). UTF-8 is checked over the whole
//! reassembled message, so a character may be split across fragments (1007
//! when it is invalid, §8.1).
//!
//! Memory: when all input is consumed at a message boundary, the context is
//! dropped (a fresh one is equivalent: no partial frame or message, no close
//! in progress) and the input and output buffers release their allocations,
//! so an idle codec holds no heap at all, reassembly buffer included. The
//! cost is two small allocations per burst of input.

use std::fmt;
use std::io::{self, Read, Write};

use tungstenite::error::{CapacityError, Error};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};

/// How much the context reads per step; also its initial buffer, allocated
/// only while input is being decoded.
const READ_CHUNK: usize = 4096;

/// Frame opcodes (RFC 6455 §5.2).
const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;

/// A close frame payload is at most 125 bytes, two of them the code
/// (RFC 6455 §5.5, §5.5.1).
const MAX_CLOSE_REASON: usize = 123;

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
    /// Anything the decoder reports that the above do not cover (1011).
    pub const INTERNAL: CloseReason = CloseReason {
        code: 1011,
        reason: "internal error",
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

/// The WebSocket codec of one client connection, server role.
#[derive(Debug)]
pub struct Codec {
    limits: Limits,
    state: State,
    /// Present only while a frame is partly received or a close is in
    /// progress; boxed so that an idle codec stays small.
    context: Option<Box<WebSocketContext>>,
    scanner: Scanner,
    input: Vec<u8>,
    /// Bytes of `input` already handed to the context.
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
            context: None,
            scanner: Scanner::default(),
            input: Vec::new(),
            input_pos: 0,
            output: Vec::new(),
            output_pos: 0,
        }
    }

    /// A frame has begun and is not complete yet.
    pub fn has_partial_input(&self) -> bool {
        self.context.is_some() || self.input_pos < self.input.len()
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
        self.input.extend_from_slice(bytes);
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
            if self.context.is_none() && self.input_pos == self.input.len() {
                self.release_input();
                return Ok(None);
            }
            let limits = self.limits;
            let context = self
                .context
                .get_or_insert_with(|| Box::new(new_context(limits)));
            let mut io = Io {
                input: &self.input,
                input_pos: &mut self.input_pos,
                output: &mut self.output,
                scanner: &mut self.scanner,
                max_message: limits.max_message_bytes,
                refused: None,
            };
            let read = context.read(&mut io);
            match read {
                Ok(tungstenite::Message::Text(text)) => {
                    return Ok(Some(Message::Text(text.as_str().to_owned())));
                }
                Ok(tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_)) => {}
                Ok(tungstenite::Message::Close(frame)) => {
                    // Writes the echo when the client started the close;
                    // the context then reports the connection closed.
                    let _ = context.flush(&mut io);
                    self.finish(State::Closed);
                    return Ok(Some(Message::Closed(
                        frame.map_or(1005, |frame| u16::from(frame.code)),
                    )));
                }
                Ok(tungstenite::Message::Binary(_) | tungstenite::Message::Frame(_)) => {
                    return Err(self.fail(CloseReason::BINARY));
                }
                Err(Error::Io(err)) if err.kind() == io::ErrorKind::WouldBlock => {
                    if let Some(reason) = io.refused {
                        return Err(self.fail(reason));
                    }
                    // All input is consumed. At a frame boundary the context
                    // holds nothing a fresh one would not.
                    if self.state == State::Open && io.scanner.at_boundary() {
                        let _ = context.flush(&mut io);
                        self.context = None;
                    }
                    self.release_input();
                    return Ok(None);
                }
                Err(Error::ConnectionClosed | Error::AlreadyClosed) => {
                    self.finish(State::Closed);
                    return Ok(None);
                }
                Err(err) => return Err(self.fail(reason_for(&err))),
            }
        }
    }

    /// Queues one text message (RFC 7395 §3.3.3: one complete element per
    /// message). Ignored once a close frame was sent or received.
    pub fn send_text(&mut self, text: &str) {
        if self.state == State::Open {
            self.compact_output();
            put_header(&mut self.output, OP_TEXT, text.len());
            self.output.extend_from_slice(text.as_bytes());
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
            self.compact_output();
            put_header(&mut self.output, OP_PING, 0);
        }
    }

    /// Starts the close handshake (RFC 6455 §5.5.1, §7.1.2): queues a close
    /// frame; the client's answer arrives as `Message::Closed`. `code` must
    /// be one an endpoint may send (RFC 6455 §7.4: not 1005, 1006, 1015);
    /// `reason` is cut to 123 bytes. Ignored unless the connection is open.
    pub fn send_close(&mut self, code: u16, reason: &str) {
        if self.state != State::Open {
            return;
        }
        self.compact_output();
        let limits = self.limits;
        let context = self
            .context
            .get_or_insert_with(|| Box::new(new_context(limits)));
        let mut io = Io {
            input: &self.input,
            input_pos: &mut self.input_pos,
            output: &mut self.output,
            scanner: &mut self.scanner,
            max_message: limits.max_message_bytes,
            refused: None,
        };
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: truncate_to_char_boundary(reason, MAX_CLOSE_REASON).into(),
        };
        // Writing into memory cannot fail; the context records that the
        // close is ours so it does not echo the client's answer.
        let _ = context.close(&mut io, Some(frame));
        self.state = State::Closing;
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
            self.compact_output();
            put_header(&mut self.output, OP_CLOSE, 2 + reason.reason.len());
            self.output.extend_from_slice(&reason.code.to_be_bytes());
            self.output.extend_from_slice(reason.reason.as_bytes());
        }
        self.finish(State::Failed(reason));
        reason
    }

    fn finish(&mut self, state: State) {
        self.state = state;
        self.context = None;
        self.input = Vec::new();
        self.input_pos = 0;
    }

    fn release_input(&mut self) {
        if self.input_pos == self.input.len() {
            self.input = Vec::new();
            self.input_pos = 0;
        }
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

fn new_context(limits: Limits) -> WebSocketContext {
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_CHUNK)
        // Frames go straight to our output buffer, which never blocks.
        .write_buffer_size(0)
        .max_frame_size(Some(limits.max_message_bytes))
        .max_message_size(Some(limits.max_message_bytes));
    WebSocketContext::new(Role::Server, Some(config))
}

fn reason_for(err: &Error) -> CloseReason {
    match err {
        Error::Capacity(CapacityError::MessageTooLong { .. }) => CloseReason::TOO_BIG,
        Error::Utf8(_) => CloseReason::INVALID_UTF8,
        Error::Protocol(_) => CloseReason::PROTOCOL,
        _ => CloseReason::INTERNAL,
    }
}

/// Writes an unmasked, final frame header (RFC 6455 §5.2): servers never
/// mask (§5.1).
fn put_header(out: &mut Vec<u8>, opcode: u8, len: usize) {
    out.push(0x80 | opcode);
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

/// The stream the context reads from and writes to: our input and output
/// buffers, with the scanner deciding how much input may pass.
struct Io<'a> {
    input: &'a [u8],
    input_pos: &'a mut usize,
    output: &'a mut Vec<u8>,
    scanner: &'a mut Scanner,
    /// `Limits::max_message_bytes`, for the scanner.
    max_message: usize,
    /// Set when the scanner stopped in front of a refused frame.
    refused: Option<CloseReason>,
}

impl Read for Io<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let pending = self.input.get(*self.input_pos..).unwrap_or_default();
        let offered = pending
            .get(..buf.len().min(pending.len()))
            .unwrap_or_default();
        let (admitted, refused) = self.scanner.admit(offered, self.max_message);
        self.refused = refused;
        if admitted == 0 {
            // Never Ok(0): the context would take it for end of stream.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let (src, dst) = (
            offered.get(..admitted).unwrap_or_default(),
            buf.get_mut(..admitted).unwrap_or_default(),
        );
        dst.copy_from_slice(src);
        *self.input_pos += admitted;
        Ok(admitted)
    }
}

impl Write for Io<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Follows the frames in the bytes handed to the context (RFC 6455 §5.2)
/// and the fragmented message they build (§5.4), to refuse a frame by its
/// header before any of its payload is buffered.
#[derive(Debug, Default)]
struct Scanner {
    part: FramePart,
    /// The frame being scanned is a text or continuation frame: its
    /// payload counts toward the message.
    data: bool,
    /// The frame being scanned has FIN set.
    fin: bool,
    /// Payload bytes announced so far by the frames of the text message
    /// being received; `None` between messages.
    message: Option<u64>,
}

/// Where the scanner is within one frame.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum FramePart {
    /// Next byte starts a frame: FIN, RSV and opcode.
    #[default]
    FirstByte,
    /// Next byte has the mask bit and the 7-bit length.
    LengthByte,
    /// `left` bytes of a 16- or 64-bit length remain.
    ExtendedLength { left: u8, len: u64, masked: bool },
    /// Masking key and payload bytes still to pass.
    Payload { left: u64 },
}

impl Scanner {
    /// Between messages: the context holds nothing a fresh one would not.
    fn at_boundary(&self) -> bool {
        self.part == FramePart::FirstByte && self.message.is_none()
    }

    /// How many leading bytes of `bytes` may be handed over, and the reason
    /// if it stopped in front of a refused frame. A refusal leaves the
    /// scanner where it was, so asking again gives the same answer.
    fn admit(&mut self, bytes: &[u8], max_message: usize) -> (usize, Option<CloseReason>) {
        let mut used = 0;
        while let Some(&byte) = bytes.get(used) {
            match self.part {
                FramePart::Payload { left } => {
                    let rest = bytes.len() - used;
                    let step = usize::try_from(left).unwrap_or(usize::MAX).min(rest);
                    used += step;
                    match left - step as u64 {
                        0 => self.end_frame(),
                        left => self.part = FramePart::Payload { left },
                    }
                }
                FramePart::FirstByte => {
                    if let Err(reason) = self.start_frame(byte) {
                        return (used, Some(reason));
                    }
                    used += 1;
                }
                FramePart::LengthByte => {
                    let masked = byte & 0x80 != 0;
                    let left = match byte & 0x7f {
                        126 => 2,
                        127 => 8,
                        len => {
                            if let Err(reason) = self.payload(u64::from(len), masked, max_message) {
                                return (used, Some(reason));
                            }
                            used += 1;
                            continue;
                        }
                    };
                    used += 1;
                    self.part = FramePart::ExtendedLength {
                        left,
                        len: 0,
                        masked,
                    };
                }
                FramePart::ExtendedLength { left, len, masked } => {
                    let len = (len << 8) | u64::from(byte);
                    if left > 1 {
                        self.part = FramePart::ExtendedLength {
                            left: left - 1,
                            len,
                            masked,
                        };
                    } else if let Err(reason) = self.payload(len, masked, max_message) {
                        return (used, Some(reason));
                    }
                    used += 1;
                }
            }
        }
        (used, None)
    }

    /// The first header byte: what the frame may be at this point of the
    /// message (RFC 6455 §5.4; RFC 7395 §3.2 allows only text).
    fn start_frame(&mut self, byte: u8) -> Result<(), CloseReason> {
        let in_message = self.message.is_some();
        self.data = match byte & 0x0f {
            OP_TEXT | OP_BINARY if in_message => return Err(CloseReason::PROTOCOL),
            OP_CONTINUATION if !in_message => return Err(CloseReason::PROTOCOL),
            OP_BINARY => return Err(CloseReason::BINARY),
            OP_TEXT | OP_CONTINUATION => true,
            _ => false,
        };
        self.fin = byte & 0x80 != 0;
        self.part = FramePart::LengthByte;
        Ok(())
    }

    /// The payload length is known: a data frame adds it to its message,
    /// which may not grow past the limit.
    fn payload(&mut self, len: u64, masked: bool, max_message: usize) -> Result<(), CloseReason> {
        if self.data {
            let total = self.message.unwrap_or(0).saturating_add(len);
            if total > u64::try_from(max_message).unwrap_or(u64::MAX) {
                return Err(CloseReason::TOO_BIG);
            }
            self.message = Some(total);
        }
        match len.saturating_add(if masked { 4 } else { 0 }) {
            0 => self.end_frame(),
            left => self.part = FramePart::Payload { left },
        }
        Ok(())
    }

    fn end_frame(&mut self) {
        self.part = FramePart::FirstByte;
        if self.data && self.fin {
            self.message = None;
        }
    }
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
        assert!(codec.context.is_none(), "nothing kept");

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
        assert!(codec.context.is_some(), "the first fragment is held");
        assert_eq!(
            feed(&mut codec, &[tail]),
            Ok(vec![Message::Text(STANZA.into())])
        );
        assert!(codec.context.is_none());
        assert_eq!(codec.input.capacity(), 0);
        assert!(codec.scanner.at_boundary());
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
    fn client_close_with_a_code_not_allowed_on_the_wire_is_answered_with_1002() {
        let mut codec = Codec::new(LIMITS);
        assert_eq!(
            feed(&mut codec, &[&close(Some(1005), "")]),
            Ok(vec![Message::Closed(1002)])
        );
        let frames = server_frames(&take_output(&mut codec));
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].1[..2], 1002u16.to_be_bytes());
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
        assert!(codec.context.is_none());
        assert_eq!(codec.input.capacity(), 0);
        assert_eq!(codec.output.capacity(), 0);
    }

    #[test]
    fn partial_frame_keeps_the_context_until_complete() {
        let mut codec = Codec::new(LIMITS);
        let input = text("<presence/>");
        assert_eq!(feed(&mut codec, &[&input[..5]]), Ok(vec![]));
        assert!(codec.context.is_some());
        assert_eq!(codec.input.capacity(), 0, "bytes moved to the context");
        assert_eq!(
            feed(&mut codec, &[&input[5..]]),
            Ok(vec![Message::Text("<presence/>".into())])
        );
        assert!(codec.context.is_none());
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
