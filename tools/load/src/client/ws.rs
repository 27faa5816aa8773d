//! XMPP over WebSocket, client role (RFC 7395, RFC 6455): the HTTP upgrade
//! with `Sec-WebSocket-Protocol: xmpp`, `<open/>`, masked client frames,
//! unmasked server frames each carrying one element.

use std::io::Write;
use std::rc::Rc;

use base64::Engine;
use switchboard_core::xml::{FrameKind, Framer, Limits, Mode, NS_FRAMING};

use super::conn::{Conn, Net, ReadState};
use super::{token, Flow, Handler, Outbox, Rng};
use crate::net::Endpoint;
use crate::xmpp::ErrorKind;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

pub struct Ws {
    endpoint: Rc<Endpoint>,
    domain: Rc<str>,
    conn: Conn,
    upgraded: bool,
    key: String,
    framer: Framer,
    /// Why the session is ending (a stream error, `<close/>`): it ends with
    /// this once the server's close frame comes, as RFC 7395 §3.6 has it.
    ending: Option<ErrorKind>,
    /// Masking keys (RFC 6455 §5.3 wants them unpredictable to proxies;
    /// any varying key serves a load tool).
    rng: Rng,
}

impl Ws {
    pub fn new(endpoint: Rc<Endpoint>, domain: Rc<str>, seed: u64) -> Self {
        Ws {
            endpoint,
            domain,
            conn: Conn::default(),
            upgraded: false,
            key: String::new(),
            framer: Framer::new(Mode::Fragments, Limits::default()),
            ending: None,
            rng: Rng::new(seed),
        }
    }

    pub fn start(&mut self, net: &mut Net, session: usize) -> Result<(), ErrorKind> {
        self.conn.open(net, self.endpoint.addr, token(session, 0))?;
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        nonce[8..].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        self.key = base64::engine::general_purpose::STANDARD.encode(nonce);
        let _ = write!(
            self.conn.output,
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: xmpp\r\n\r\n",
            self.endpoint.path, self.endpoint.host, self.key
        );
        Ok(())
    }

    fn send_open(&mut self, net: &mut Net) {
        net.scratch.clear();
        let _ = write!(
            net.scratch,
            "<open xmlns='{NS_FRAMING}' to='{}' version='1.0' xml:lang='en'/>",
            self.domain
        );
        let open = std::mem::take(&mut net.scratch);
        self.send(&open);
        net.scratch = open;
    }

    pub fn on_ready(
        &mut self,
        net: &mut Net,
        outbox: &mut Outbox,
        handle: &mut Handler,
    ) -> Result<(), ErrorKind> {
        let state = self.conn.read(net)?;
        if !self.upgraded {
            let used = self.read_upgrade()?;
            if used == 0 {
                self.conn.flush()?;
                return state.end();
            }
            self.conn.input.drain(..used);
            self.upgraded = true;
            self.send_open(net);
        }
        let mut pos = 0;
        let mut result = Ok(());
        while result.is_ok() {
            let Some((opcode, start, end)) = frame_at(&self.conn.input[pos..])? else {
                break;
            };
            let (start, end) = (pos + start, pos + end);
            pos = end;
            match opcode {
                OP_TEXT => {
                    result = self.text(start, end, net, outbox, handle);
                }
                OP_PING => {
                    // Control payloads are at most 125 bytes (RFC 6455 §5.5).
                    let mut payload = [0u8; 125];
                    let len = (end - start).min(payload.len());
                    payload[..len].copy_from_slice(&self.conn.input[start..start + len]);
                    self.put_frame(OP_PONG, &payload[..len]);
                }
                OP_PONG => {}
                OP_CLOSE => {
                    let code = self
                        .conn
                        .input
                        .get(start..start + 2)
                        .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]]));
                    result = Err(match self.ending.take() {
                        Some(why) => why,
                        None => format!("ws_close:{code}").into(),
                    });
                }
                OP_CONTINUATION | OP_BINARY => result = Err("ws_bad_frame".into()),
                _ => result = Err("ws_bad_opcode".into()),
            }
        }
        self.conn.input.drain(..pos);
        result?;
        outbox.drain(|el| self.send(el));
        self.conn.flush()?;
        match (state, self.ending.take()) {
            (ReadState::Open, ending) => {
                self.ending = ending;
                Ok(())
            }
            (_, Some(why)) => Err(format!("{why}:no_close_frame").into()),
            (state, None) => state.end(),
        }
    }

    /// One text message: one element (RFC 7395 §3.3.3).
    fn text(
        &mut self,
        start: usize,
        end: usize,
        net: &mut Net,
        outbox: &mut Outbox,
        handle: &mut Handler,
    ) -> Result<(), ErrorKind> {
        let mut at = start;
        while at < end && self.ending.is_none() {
            let payload = &self.conn.input[at..end];
            let frame = match self.framer.next(payload) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Err("ws_partial_element".into()),
                Err(e) => return Err(format!("xml:{}", e.condition()).into()),
            };
            at += frame.len;
            if let FrameKind::Element(info) = frame.kind {
                match handle(&payload[..frame.len], &info, outbox) {
                    Flow::Continue => {}
                    Flow::Restart => {
                        outbox.drain(|el| put_text(&mut self.conn.output, &mut self.rng, el));
                        self.send_open(net);
                    }
                    // What follows the end, `<close/>` among it, says no more.
                    Flow::Fail(kind) => self.ending = Some(kind),
                }
            }
        }
        Ok(())
    }

    /// Check the 101 answer; the bytes it took, 0 while incomplete.
    fn read_upgrade(&mut self) -> Result<usize, ErrorKind> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let used = match response.parse(&self.conn.input) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(0),
            Err(_) => return Err("http_malformed".into()),
        };
        let code = response.code.unwrap_or(0);
        if code != 101 {
            return Err(format!("http_status:{code}").into());
        }
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        if header("sec-websocket-protocol").map(<[u8]>::trim_ascii) != Some(b"xmpp") {
            return Err("ws_no_xmpp_protocol".into());
        }
        let expected = tungstenite::handshake::derive_accept_key(self.key.as_bytes());
        if header("sec-websocket-accept").map(<[u8]>::trim_ascii) != Some(expected.as_bytes()) {
            return Err("ws_bad_accept".into());
        }
        Ok(used)
    }

    /// RFC 7395 §3.6: `<close/>`; the server answers with its own, then
    /// its close frame.
    pub fn logout(&mut self) {
        self.send(format!("<close xmlns='{NS_FRAMING}'/>").as_bytes());
    }

    pub fn send(&mut self, element: &[u8]) {
        put_text(&mut self.conn.output, &mut self.rng, element);
    }

    fn put_frame(&mut self, opcode: u8, payload: &[u8]) {
        put_masked(&mut self.conn.output, &mut self.rng, opcode, payload);
    }

    pub fn flush(&mut self) -> Result<(), ErrorKind> {
        self.conn.flush()
    }

    pub fn close(&mut self) {
        self.conn.close();
    }
}

fn put_text(out: &mut Vec<u8>, rng: &mut Rng, element: &[u8]) {
    put_masked(out, rng, OP_TEXT, element);
}

/// Append one final, masked client frame (RFC 6455 §5.2, §5.3).
pub fn put_masked(out: &mut Vec<u8>, rng: &mut Rng, opcode: u8, payload: &[u8]) {
    let mask = (rng.next_u64() as u32).to_le_bytes();
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    for (i, b) in out[start..].iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// The complete unmasked server frame at the start of `input`: its opcode
/// and payload range, `None` while incomplete. Fragmented and masked
/// server frames are refused (RFC 6455 §5.1; RFC 7395 §3.3.3).
pub fn frame_at(input: &[u8]) -> Result<Option<(u8, usize, usize)>, ErrorKind> {
    let [b0, b1, ..] = *input else {
        return Ok(None);
    };
    if b0 & 0x80 == 0 {
        return Err("ws_fragmented".into());
    }
    if b1 & 0x80 != 0 {
        return Err("ws_masked_server_frame".into());
    }
    let (len, header) = match b1 & 0x7F {
        126 => match input.get(2..4) {
            Some(l) => (u64::from(u16::from_be_bytes([l[0], l[1]])), 4),
            None => return Ok(None),
        },
        127 => match input.get(2..10) {
            Some(l) => {
                let mut b = [0u8; 8];
                b.copy_from_slice(l);
                (u64::from_be_bytes(b), 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    let Ok(len) = usize::try_from(len) else {
        return Err("ws_frame_too_big".into());
    };
    if input.len() - header < len {
        return Ok(None);
    }
    Ok(Some((b0 & 0x0F, header, header + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's own decoder accepts our masked frames.
    #[test]
    fn masked_client_frames_decode_on_the_server_codec() {
        use switchboard_core::websocket::{Codec, Limits, Message};
        let mut out = Vec::new();
        let mut rng = Rng::new(7);
        let long = "x".repeat(70_000);
        put_text(&mut out, &mut rng, b"<message/>");
        put_text(&mut out, &mut rng, long.as_bytes());
        let mut codec = Codec::new(Limits {
            max_message_bytes: 1 << 20,
        });
        codec.handle_input(&out);
        assert_eq!(
            codec.poll_message(),
            Ok(Some(Message::Text("<message/>".into())))
        );
        assert_eq!(codec.poll_message(), Ok(Some(Message::Text(long))));
        assert_eq!(codec.poll_message(), Ok(None));
    }

    /// A client session upgraded on a real loopback connection whose
    /// server side the test writes by hand; the server's answer to `<open/>`
    /// is the stream error of a failed backend.
    fn failed_backend() -> (Ws, Net, mio::Poll, std::net::TcpStream) {
        use std::io::{Read, Write as _};
        let crate::client::conn::Loopback {
            endpoint,
            mut net,
            poll,
            listener,
        } = crate::client::conn::Loopback::new("/xmpp-websocket");
        let mut ws = Ws::new(endpoint, "localhost".into(), 3);
        ws.start(&mut net, 0).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        while !request.ends_with(b"\r\n\r\n") {
            ws.flush().unwrap();
            let mut byte = [0u8; 1];
            server
                .set_read_timeout(Some(std::time::Duration::from_millis(10)))
                .unwrap();
            if let Ok(1) = server.read(&mut byte) {
                request.push(byte[0]);
            }
        }
        let accept = tungstenite::handshake::derive_accept_key(ws.key.as_bytes());
        let mut answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"
        )
        .into_bytes();
        for element in [
            "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>\
             <remote-connection-failed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
        ] {
            let len = element.len() as u16;
            answer.extend_from_slice(&[0x81, 126]);
            answer.extend_from_slice(&len.to_be_bytes());
            answer.extend_from_slice(element.as_bytes());
        }
        server.write_all(&answer).unwrap();
        (ws, net, poll, server)
    }

    /// Read until the session ends or `wait` passes: its error, if it ended.
    fn ends(ws: &mut Ws, net: &mut Net, wait: std::time::Duration) -> Option<ErrorKind> {
        let mut handle = |el: &[u8], info: &switchboard_core::xml::ElementInfo, _: &mut Outbox| {
            if crate::xmpp::is_stream_error(el, info) {
                Flow::Fail(
                    format!("stream_error:{}", crate::xmpp::stream_error_condition(el)).into(),
                )
            } else if info.local_name(el) == "close" {
                Flow::Fail("stream_closed".into())
            } else {
                Flow::Continue
            }
        };
        let until = std::time::Instant::now() + wait;
        while std::time::Instant::now() < until {
            net.hangup = true;
            if let Err(kind) = ws.on_ready(net, &mut Outbox::default(), &mut handle) {
                return Some(kind);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        None
    }

    #[test]
    fn a_stream_error_ends_the_session_with_the_close_frame_that_follows_it() {
        use std::io::Write as _;
        let (mut ws, mut net, _poll, mut server) = failed_backend();
        let short = std::time::Duration::from_millis(200);
        assert_eq!(
            ends(&mut ws, &mut net, short),
            None,
            "not before the close frame"
        );
        server.write_all(&[0x88, 2, 0x03, 0xE8]).unwrap();
        // Closed with the client's <open/> unread: a reset, which comes
        // after the close frame and must not hide it.
        drop(server);
        let end = ends(&mut ws, &mut net, std::time::Duration::from_secs(5));
        assert_eq!(
            end.as_deref(),
            Some("stream_error:remote-connection-failed")
        );

        let (mut ws, mut net, _poll, server) = failed_backend();
        drop(server);
        let end = ends(&mut ws, &mut net, std::time::Duration::from_secs(5));
        assert_eq!(
            end.as_deref(),
            Some("stream_error:remote-connection-failed:no_close_frame")
        );
    }

    #[test]
    fn server_frames_are_found_whole_or_not_at_all() {
        let mut frame = vec![0x81, 126, 0x01, 0x00];
        frame.extend(std::iter::repeat_n(b'a', 256));
        for cut in 0..frame.len() {
            assert_eq!(frame_at(&frame[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(frame_at(&frame), Ok(Some((OP_TEXT, 4, 260))));
        assert_eq!(frame_at(&[0x89, 0]), Ok(Some((OP_PING, 2, 2))));
        assert!(frame_at(&[0x01, 0]).is_err(), "fragment");
        assert!(frame_at(&[0x81, 0x80, 0, 0, 0, 0]).is_err(), "masked");
    }
}
