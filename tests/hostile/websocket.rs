//! WebSocket framing errors (RFC 6455 §5) on a logged-in session, and
//! upgrade requests switchboard must refuse (RFC 6455 §4.2.1, RFC 7395
//! §3.1), origins restricted to one. Limits here: 8 KiB messages, frames
//! whole within 500 ms.
//!
//! Covered elsewhere and not repeated (tests/websocket.rs): a binary
//! message, a 10 MB frame, a continuation without a message begun, a text
//! frame inside a fragmented message, garbage text and a DOCTYPE
//! (`bad_input_ends_only_its_own_session`), a message in fragments cut
//! inside a character with a ping between them
//! (`fragmented_stanza_reaches_the_server_intact`), an upgrade offering
//! only another subprotocol (`http_front_door_refuses_what_it_does_not_serve`),
//! a foreign origin and a listed one (`websocket_origins_can_be_restricted`).

use std::time::Duration;

use crate::corpus::{
    self, answers, case, closing, made, ws_frame, Backend, Begin, Case, Outcome, Server, Step,
    WsProbe,
};
use crate::support::ws_client::{
    client_frame, client_frame_header, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT,
};

use Begin::LoggedIn;
use Server::Dropped;
use Step::{Echo, Text};

pub enum Probe {
    /// A session, then frames.
    Ws(WsProbe),
    /// A raw upgrade request, and the answers to it.
    Upgrade(&'static [u8]),
    /// A `websocket_codec` fuzz input on a logged-in session, then a
    /// message to itself: its frames, or (selector bit 2) a text payload
    /// sent in fragments, with pings between them (bit 3).
    CodecSeed(&'static [u8]),
}

const fn frames(steps: &'static [Step<'static>]) -> Probe {
    Probe::Ws(corpus::probe(LoggedIn, steps))
}

/// A masked frame whose first byte (FIN, RSV, opcode) is `first`.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = client_frame(true, first & 0x0f, payload);
    frame[0] = first;
    frame
}

/// A frame with the mask bit clear (RFC 6455 §5.1: clients must mask).
fn unmasked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![first, payload.len() as u8];
    frame.extend_from_slice(payload);
    frame
}

/// A close frame with `code` and `reason`.
fn close(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    client_frame(true, OP_CLOSE, &payload)
}

/// A text message of exactly `len` bytes, to nobody bound.
fn text_of(len: usize) -> Vec<u8> {
    let head = "<message xmlns='jabber:client' to='nobody@localhost'><body>";
    let tail = "</body></message>";
    let text = format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len()));
    client_frame(true, OP_TEXT, text.as_bytes())
}

const PRESENCE: &[u8] = b"<presence xmlns='jabber:client'/>";

#[rustfmt::skip]
pub const CASES: &[Case<Probe>] = &[
    // Frames (RFC 6455 §5.2).
    case("unmasked text frame", frames(&[made(|| unmasked(0x81, PRESENCE))]), ws_frame(1002, Dropped)),
    case("RSV1 set", frames(&[made(|| frame(0xC1, PRESENCE))]), ws_frame(1002, Dropped)),
    case("RSV2 set", frames(&[made(|| frame(0xA1, PRESENCE))]), ws_frame(1002, Dropped)),
    case("RSV3 set", frames(&[made(|| frame(0x91, PRESENCE))]), ws_frame(1002, Dropped)),
    case("data opcode 3", frames(&[made(|| frame(0x83, PRESENCE))]), ws_frame(1002, Dropped)),
    case("data opcode 7", frames(&[made(|| frame(0x87, PRESENCE))]), ws_frame(1002, Dropped)),
    case("control opcode 0xB", frames(&[made(|| frame(0x8B, b""))]), ws_frame(1002, Dropped)),
    case("control opcode 0xF", frames(&[made(|| frame(0x8F, b""))]), ws_frame(1002, Dropped)),
    case("one byte over max_message_bytes", frames(&[made(|| client_frame_header(true, OP_TEXT, 8193))]), ws_frame(1009, Dropped)),
    case("a message of max_message_bytes", frames(&[made(|| text_of(8192)), Echo]), Outcome::Served),
    case("64-bit length with its top bit set", frames(&[made(|| client_frame_header(true, OP_TEXT, 1 << 63))]), ws_frame(1009, Dropped)),
    case("length not in its shortest form", frames(&[made(non_minimal_length), Echo]), Outcome::Served),
    case("invalid UTF-8 in a text frame", frames(&[made(|| client_frame(true, OP_TEXT, b"<presence>\xff</presence>"))]), ws_frame(1007, Dropped)),
    case("control frame over 125 bytes", frames(&[made(|| client_frame(true, OP_PING, &[b'p'; 126]))]), ws_frame(1002, Dropped)),
    case("fragmented ping", frames(&[made(|| client_frame(false, OP_PING, b"p"))]), ws_frame(1002, Dropped)),
    // Fragmented messages (RFC 6455 §5.4).
    case("fragments adding up past max_message_bytes", frames(&[made(|| client_frame(false, OP_TEXT, &[b' '; 5000])), made(|| client_frame(true, OP_CONTINUATION, &[b' '; 5000]))]), ws_frame(1009, Dropped)),
    case("close inside a fragmented message", frames(&[made(|| client_frame(false, OP_TEXT, b"<presence")), made(|| close(1000, b""))]), ws_frame(1000, Dropped)),
    case("a fragment cut in the middle of a UTF-8 character, never finished", frames(&[made(|| client_frame(false, OP_TEXT, b"<message>caf\xc3")), made(|| client_frame(true, OP_CONTINUATION, b"</message>"))]), ws_frame(1007, Dropped)),
    // Close frames (RFC 6455 §5.5.1, §7.4).
    case("close with 1000", frames(&[made(|| close(1000, b"bye"))]), ws_frame(1000, Dropped)),
    case("close with no code", frames(&[made(|| client_frame(true, OP_CLOSE, b""))]), ws_frame(1005, Dropped)),
    case("close with 4000", frames(&[made(|| close(4000, b""))]), ws_frame(4000, Dropped)),
    case("close with 1005, which may not be sent", frames(&[made(|| close(1005, b""))]), ws_frame(1002, Dropped)),
    case("close with 1015, which may not be sent", frames(&[made(|| close(1015, b""))]), ws_frame(1002, Dropped)),
    case("close with 999", frames(&[made(|| close(999, b""))]), ws_frame(1002, Dropped)),
    case("close with a one-byte payload", frames(&[made(|| client_frame(true, OP_CLOSE, b"\x03"))]), ws_frame(1002, Dropped)),
    case("close reason not UTF-8", frames(&[made(|| close(1000, b"\xff\xfe"))]), ws_frame(1007, Dropped)),
    // Control frames that must not disturb the session.
    case("ping with a payload", frames(&[made(|| client_frame(true, OP_PING, b"are you there")), Echo]), Outcome::Served),
    case("unsolicited pong", frames(&[made(|| client_frame(true, OP_PONG, b"")), Echo]), Outcome::Served),
    case("100 pings", frames(&[made(|| client_frame(true, OP_PING, b"p").repeat(100)), Echo]), Outcome::Served),
    case("empty text frame", frames(&[Text(""), Echo]), Outcome::Served),
    case("white space text frame", frames(&[Text(" \r\n\t "), Echo]), Outcome::Served),
    // Deadlines: a frame once begun is whole within read_timeout.
    case("a frame dribbled within read_timeout", frames(&[Step::Make(|| client_frame(true, OP_TEXT, PRESENCE), 2), Echo]), Outcome::Served),
    case("a frame dribbled past read_timeout", frames(&[Step::Make(|| client_frame(true, OP_TEXT, PRESENCE), 40)]), corpus::ws_error(1008, "connection-timeout", Server::Closed)),
    case("a frame header without its payload", frames(&[made(|| client_frame_header(true, OP_TEXT, 100))]), corpus::ws_error(1008, "connection-timeout", Server::Closed)),
    case("half a frame header", frames(&[Step::Raw(&[0x81], 0)]), corpus::ws_error(1008, "connection-timeout", Server::Closed)),
    // The upgrade (RFC 6455 §4.2.1, RFC 7395 §3.1).
    case("no subprotocol offered", Probe::Upgrade(b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"), closing(&[400])),
    case("XMPP in upper case", Probe::Upgrade(b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: XMPP\r\n\r\n"), closing(&[400])),
    case("xmpp among others", Probe::Upgrade(b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, xmpp\r\n\r\n"), answers(&[101], false)),
    case("no Sec-WebSocket-Key", Probe::Upgrade(b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"), closing(&[400])),
    case("key of 15 bytes", Probe::Upgrade(b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"), closing(&[400])),
    case("key that is not base64", Probe::Upgrade(b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"), closing(&[400])),
    case("two keys", Probe::Upgrade(b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"), closing(&[400])),
    case("version 8", Probe::Upgrade(b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"), closing(&[426])),
    case("no version", Probe::Upgrade(b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"), closing(&[426])),
    case("upgrade by POST", Probe::Upgrade(b"POST /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\nContent-Length: 0\r\n\r\n"), closing(&[405])),
    case("no Upgrade field", Probe::Upgrade(b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"), closing(&[400])),
    case("Connection without upgrade", Probe::Upgrade(b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"), closing(&[400])),
    case("upgrade to h2c", Probe::Upgrade(b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"), closing(&[400])),
    case("origin null", Probe::Upgrade(b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\nOrigin: null\r\n\r\n"), closing(&[403])),
    case("allowed origin with a trailing slash", Probe::Upgrade(b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\nOrigin: https://chat.example.org/\r\n\r\n"), closing(&[403])),
    case("allowed origin in upper case", Probe::Upgrade(b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\nOrigin: HTTPS://CHAT.EXAMPLE.ORG\r\n\r\n"), closing(&[403])),
    case("allowed origin on another port", Probe::Upgrade(b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\nOrigin: https://chat.example.org:8443\r\n\r\n"), closing(&[403])),
    case("allowed origin over http", Probe::Upgrade(b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\nOrigin: http://chat.example.org\r\n\r\n"), closing(&[403])),
    case("allowed origin as a suffix of another", Probe::Upgrade(b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\nOrigin: https://chat.example.org.evil.example\r\n\r\n"), closing(&[403])),
    case("seed rfc6455-sample, from an origin not allowed", Probe::Upgrade(seed(include_bytes!("../../fuzz/corpus/websocket_handshake/rfc6455-sample"))), closing(&[403])),
    case("upgrade in HTTP/1.0", Probe::Upgrade(b"GET /xmpp-websocket HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"), answers(&[101], false)),
    // The fuzzers' frames (fuzz/corpus/websocket_codec), through the whole
    // server, its limits (8 KiB, not a seed's 16 bytes), then a message to
    // itself. Their texts are elements (`<a></a>`) the stub ignores.
    case("seed bad-utf8", Probe::CodecSeed(include_bytes!("../../fuzz/corpus/websocket_codec/bad-utf8")), ws_frame(1007, Dropped)),
    case("seed binary", Probe::CodecSeed(include_bytes!("../../fuzz/corpus/websocket_codec/binary")), ws_frame(1003, Dropped)),
    case("seed binary-inside-fragmented", Probe::CodecSeed(include_bytes!("../../fuzz/corpus/websocket_codec/binary-inside-fragmented")), ws_frame(1002, Dropped)),
    case("seed close-first", Probe::CodecSeed(include_bytes!("../../fuzz/corpus/websocket_codec/close-first")), ws_frame(1000, Dropped)),
    case("seed continuation-without-start", Probe::CodecSeed(include_bytes!("../../fuzz/corpus/websocket_codec/continuation-without-start")), ws_frame(1002, Dropped)),
    case("seed fragmented", Probe::CodecSeed(include_bytes!("../../fuzz/corpus/websocket_codec/fragmented")), Outcome::Served),
    case("seed fragments-over-limit", Probe::CodecSeed(include_bytes!("../../fuzz/corpus/websocket_codec/fragments-over-limit")), Outcome::Served),
    case("seed fragments-pings-between", Probe::CodecSeed(include_bytes!("../../fuzz/corpus/websocket_codec/fragments-pings-between")), Outcome::Served),
    case("seed payload-fragmented", Probe::CodecSeed(include_bytes!("../../fuzz/corpus/websocket_codec/payload-fragmented")), Outcome::Served),
    case("seed payload-fragmented-cut-char", Probe::CodecSeed(include_bytes!("../../fuzz/corpus/websocket_codec/payload-fragmented-cut-char")), ws_frame(1007, Dropped)),
    case("seed payload-fragmented-pings", Probe::CodecSeed(include_bytes!("../../fuzz/corpus/websocket_codec/payload-fragmented-pings")), Outcome::Served),
    case("seed payload-fragmented-too-big", Probe::CodecSeed(include_bytes!("../../fuzz/corpus/websocket_codec/payload-fragmented-too-big")), Outcome::Served),
    case("seed text-inside-fragmented", Probe::CodecSeed(include_bytes!("../../fuzz/corpus/websocket_codec/text-inside-fragmented")), ws_frame(1002, Dropped)),
    case("seed text-ping-close", Probe::CodecSeed(include_bytes!("../../fuzz/corpus/websocket_codec/text-ping-close")), corpus::ws_error(1007, "host-unknown", Server::Closed)),
    case("seed too-big", Probe::CodecSeed(include_bytes!("../../fuzz/corpus/websocket_codec/too-big")), Outcome::Served),
    case("seed unmasked", Probe::CodecSeed(include_bytes!("../../fuzz/corpus/websocket_codec/unmasked")), ws_frame(1002, Dropped)),
];

const fn seed(bytes: &'static [u8]) -> &'static [u8] {
    // The first byte of a fuzz input selects the parser's limits.
    match bytes.split_first() {
        Some((_, input)) => input,
        None => bytes,
    }
}

/// A `websocket_codec` input as bytes on the wire: its frames, or its
/// payload as one text message in fragments of 3 bytes (with a ping after
/// each but the last when asked).
fn codec_seed(data: &[u8]) -> Vec<u8> {
    let Some((&selector, input)) = data.split_first() else {
        return Vec::new();
    };
    if selector & 4 == 0 {
        return input.to_vec();
    }
    let pieces: Vec<&[u8]> = input.chunks(3).collect();
    let mut wire = Vec::new();
    for (n, piece) in pieces.iter().enumerate() {
        let last = n + 1 == pieces.len();
        let opcode = if n == 0 { OP_TEXT } else { OP_CONTINUATION };
        wire.extend(client_frame(last, opcode, piece));
        if selector & 8 != 0 && !last {
            wire.extend(client_frame(true, OP_PING, b""));
        }
    }
    wire
}

/// A text frame of 33 bytes whose length is written in 64 bits.
fn non_minimal_length() -> Vec<u8> {
    let mut frame = vec![0x81, 0x80 | 127];
    frame.extend_from_slice(&(PRESENCE.len() as u64).to_be_bytes());
    let masked = client_frame(true, OP_TEXT, PRESENCE);
    // The masking key and the masked payload follow the 2-byte header.
    frame.extend_from_slice(&masked[2..]);
    frame
}

pub fn run() {
    let (stub, mut config) = corpus::stub_and_config();
    config.websocket.max_message_bytes = 8192;
    config.websocket.allowed_origins = vec!["https://chat.example.org".into()];
    config.http.read_timeout = Duration::from_millis(500);
    corpus::run("websocket", config, CASES, |addr, probe| match probe {
        Probe::Ws(p) => corpus::ws_outcome(addr, &[Backend::Stub(&stub)], p.to, p.begin, p.steps),
        Probe::Upgrade(request) => corpus::http_outcome(addr, &[corpus::Part::Bytes(request)]),
        Probe::CodecSeed(data) => {
            let wire = codec_seed(data);
            let steps = [Step::Raw(&wire, 0), Echo];
            corpus::ws_outcome(addr, &[Backend::Stub(&stub)], "localhost", LoggedIn, &steps)
        }
    });
}
