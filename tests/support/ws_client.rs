//! A minimal blocking WebSocket client (RFC 6455, via tungstenite's client
//! handshake) with the XMPP-over-WebSocket helpers of RFC 7395, plus raw
//! HTTP and raw frames for testing how a server refuses bad input.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Error as WsError, Message, WebSocket};

use super::stub_server::write_repeated;
use super::xml;
use super::xmpp::{self, ElementStream, NS_FRAMING};
use super::{RecvError, WAIT};

/// RFC 6455 §5.2 opcodes, for [`client_frame`].
pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The masking key of hand-made frames; any fixed key is valid (RFC 6455 §5.3).
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A connected WebSocket client.
pub struct WsClient {
    ws: WebSocket<TcpStream>,
    status: u16,
    headers: Vec<(String, String)>,
    pings: usize,
    /// Wait used by the XMPP helpers (`open`, `login_plain`, `close_stream`).
    pub timeout: Duration,
}

impl WsClient {
    /// Opens a WebSocket to `ws://addr/path` offering `protocols`
    /// (`Sec-WebSocket-Protocol`). A refusal (status other than 101, or a
    /// subprotocol answer tungstenite finds invalid) is an `Err` naming it.
    pub fn connect(addr: SocketAddr, path: &str, protocols: &[&str]) -> Result<WsClient, String> {
        WsClient::connect_with_headers(addr, path, protocols, &[])
    }

    /// As [`Self::connect`], with extra request headers (e.g. `Origin`).
    pub fn connect_with_headers(
        addr: SocketAddr,
        path: &str,
        protocols: &[&str],
        headers: &[(&str, &str)],
    ) -> Result<WsClient, String> {
        let mut request = format!("ws://{addr}{path}")
            .into_client_request()
            .map_err(|e| format!("request: {e}"))?;
        let request_headers = request.headers_mut();
        if !protocols.is_empty() {
            let value = protocols.join(", ");
            request_headers.insert(
                "Sec-WebSocket-Protocol",
                value.parse().map_err(|e| format!("protocol header: {e}"))?,
            );
        }
        for (name, value) in headers {
            let name: tungstenite::http::HeaderName =
                name.parse().map_err(|e| format!("header name: {e}"))?;
            request_headers.append(
                name,
                value.parse().map_err(|e| format!("header value: {e}"))?,
            );
        }
        let sock =
            TcpStream::connect_timeout(&addr, WAIT).map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = sock.set_nodelay(true);
        sock.set_read_timeout(Some(WAIT))
            .and_then(|()| sock.set_write_timeout(Some(WAIT)))
            .map_err(|e| e.to_string())?;
        let (ws, response) = match tungstenite::client::client(request, sock) {
            Ok(done) => done,
            Err(tungstenite::HandshakeError::Failure(WsError::Http(response))) => {
                let body = response
                    .body()
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                return Err(format!(
                    "http status {}: {body}",
                    response.status().as_u16()
                ));
            }
            Err(tungstenite::HandshakeError::Failure(e)) => {
                return Err(format!("websocket handshake: {e}"))
            }
            Err(tungstenite::HandshakeError::Interrupted(_)) => {
                return Err("websocket handshake: timed out".into())
            }
        };
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        Ok(WsClient {
            ws,
            status: response.status().as_u16(),
            headers,
            pings: 0,
            timeout: WAIT,
        })
    }

    /// Sends `request` as is on a new connection and returns everything the
    /// server answers: up to the end of a `Content-Length` body, the server
    /// closing, or [`WAIT`].
    pub fn raw_request(addr: SocketAddr, request: &[u8]) -> Result<String, String> {
        let mut sock =
            TcpStream::connect_timeout(&addr, WAIT).map_err(|e| format!("connect {addr}: {e}"))?;
        sock.set_write_timeout(Some(WAIT))
            .map_err(|e| e.to_string())?;
        sock.write_all(request).map_err(|e| format!("send: {e}"))?;
        let deadline = Instant::now() + WAIT;
        let mut response = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            if let Some(complete) = complete_response_len(&response) {
                response.truncate(complete);
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            match sock.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => response.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                // A reset after a response still leaves the response to check.
                Err(_) => break,
            }
        }
        Ok(String::from_utf8_lossy(&response).into_owned())
    }

    /// The handshake response status (101 when connected).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The subprotocol the server chose (`Sec-WebSocket-Protocol`).
    pub fn protocol(&self) -> Option<&str> {
        self.response_header("sec-websocket-protocol")
    }

    /// A handshake response header, by case-insensitive name.
    pub fn response_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// WebSocket pings received so far (tungstenite answers them itself).
    pub fn pings_received(&self) -> usize {
        self.pings
    }

    pub fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.send(Message::text(text))
    }

    pub fn send_binary(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.send(Message::binary(bytes.to_vec()))
    }

    /// Sends a WebSocket ping (RFC 6455 §5.5.2); the pong is skipped by reads.
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), String> {
        self.send(Message::Ping(payload.to_vec().into()))
    }

    /// Writes bytes straight to the socket, bypassing tungstenite: for
    /// hand-made frames (see [`client_frame`]).
    pub fn send_raw_frame(&mut self, bytes: &[u8]) -> Result<(), String> {
        let sock = self.ws.get_mut();
        sock.write_all(bytes)
            .and_then(|()| sock.flush())
            .map_err(|e| format!("send raw: {e}"))
    }

    /// Writes the endless repetition of `frame` (e.g. one [`client_frame`])
    /// straight to the socket, from stream position `from` up to `to`
    /// (positions count bytes of that repetition, so a call resumes where a
    /// stalled one stopped, even mid-frame). Stops early when one write makes
    /// no progress for `stall`; returns the position reached (`to` unless
    /// stalled). Finish on a frame boundary before using tungstenite again.
    pub fn flood_raw(
        &mut self,
        frame: &[u8],
        from: usize,
        to: usize,
        stall: Duration,
    ) -> Result<usize, String> {
        let sock = self.ws.get_mut();
        sock.set_write_timeout(Some(stall))
            .map_err(|e| e.to_string())?;
        let result = write_repeated(sock, frame, from, to);
        let _ = sock.set_write_timeout(Some(WAIT));
        result
    }

    fn send(&mut self, message: Message) -> Result<(), String> {
        self.ws.send(message).map_err(|e| format!("send: {e}"))
    }

    /// The next data or control message within `timeout`, pongs included;
    /// a close frame from the server is `Err(Closed)`.
    pub fn recv_message(&mut self, timeout: Duration) -> Result<Message, RecvError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RecvError::Timeout);
            }
            self.ws
                .get_ref()
                .set_read_timeout(Some(left))
                .map_err(|e| RecvError::Io(e.to_string()))?;
            match self.ws.read() {
                Ok(Message::Close(frame)) => {
                    return Err(RecvError::Closed {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    })
                }
                Ok(Message::Ping(payload)) => {
                    self.pings += 1;
                    return Ok(Message::Ping(payload));
                }
                Ok(message) => return Ok(message),
                Err(WsError::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(classify(e)),
            }
        }
    }

    /// The next text message within `timeout`, skipping pings and pongs. A
    /// binary message is an error: RFC 7395 §3.2 carries XML in text only.
    pub fn recv_text(&mut self, timeout: Duration) -> Result<String, RecvError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_message(left)? {
                Message::Text(text) => return Ok(text.to_string()),
                Message::Binary(bytes) => {
                    return Err(RecvError::Io(format!(
                        "unexpected binary message of {} bytes",
                        bytes.len()
                    )))
                }
                _ => {}
            }
        }
    }

    /// Sends a close frame (1000) and waits for the server's close frame and
    /// end of connection; returns the server's close code.
    pub fn close(&mut self, timeout: Duration) -> Result<Option<u16>, RecvError> {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        self.ws
            .close(Some(frame))
            .map_err(|e| RecvError::Io(format!("close: {e}")))?;
        let deadline = Instant::now() + timeout;
        let mut code = None;
        loop {
            match self.recv_message(deadline.saturating_duration_since(Instant::now())) {
                Ok(_) => {}
                Err(RecvError::Closed { code: c, .. }) if code.is_none() => code = Some(c),
                Err(RecvError::Closed { .. } | RecvError::Eof) if code.is_some() => {
                    return Ok(code.flatten())
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Vanishes: shuts the TCP connection down without a close frame.
    pub fn drop_tcp(self) {
        let _ = self.ws.get_ref().shutdown(Shutdown::Both);
    }

    /// Sends the RFC 7395 §3.3.1 `<open/>` to `domain`; returns the server's
    /// `<open/>` and the message after it (`<stream:features/>`, or a
    /// `<stream:error/>` when the server refuses).
    pub fn open(&mut self, domain: &str) -> Result<(String, String), RecvError> {
        self.send_text(&format!(
            "<open xmlns='{NS_FRAMING}' to='{}' version='1.0'/>",
            xml::escape(domain)
        ))
        .map_err(RecvError::Io)?;
        let opened = self.recv_text(self.timeout)?;
        let next = self.recv_text(self.timeout)?;
        Ok((opened, next))
    }

    /// After [`Self::open`]: SASL PLAIN, a new `<open/>`, bind with a
    /// server-chosen resource; returns the full JID.
    pub fn login_plain(
        &mut self,
        user: &str,
        password: &str,
        domain: &str,
    ) -> Result<String, String> {
        xmpp::login_plain(self, user, password, domain, None)
    }

    /// As [`Self::login_plain`], binding `resource`.
    pub fn login_plain_as(
        &mut self,
        user: &str,
        password: &str,
        domain: &str,
        resource: &str,
    ) -> Result<String, String> {
        xmpp::login_plain(self, user, password, domain, Some(resource))
    }

    /// Sends the RFC 7395 §3.6 `<close/>` and returns the server's answer
    /// (its own `<close/>`).
    pub fn close_stream(&mut self) -> Result<String, RecvError> {
        self.send_text(&format!("<close xmlns='{NS_FRAMING}'/>"))
            .map_err(RecvError::Io)?;
        self.recv_text(self.timeout)
    }
}

impl ElementStream for WsClient {
    fn send_element(&mut self, raw: &str) -> Result<(), String> {
        self.send_text(raw)
    }

    fn recv_element(&mut self) -> Result<String, String> {
        self.recv_text(self.timeout).map_err(|e| e.to_string())
    }

    fn restart_stream(&mut self, domain: &str) -> Result<String, String> {
        let (opened, features) = self.open(domain).map_err(|e| e.to_string())?;
        if xml::root_name(&opened).as_deref() != Some("open") {
            return Err(format!("restart answered with {opened}"));
        }
        Ok(features)
    }
}

fn classify(e: WsError) -> RecvError {
    match e {
        WsError::ConnectionClosed | WsError::AlreadyClosed => RecvError::Closed {
            code: None,
            reason: "connection closed".into(),
        },
        WsError::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake) => {
            RecvError::Eof
        }
        WsError::Io(e)
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof
            ) =>
        {
            RecvError::Eof
        }
        other => RecvError::Io(other.to_string()),
    }
}

/// Length of a complete HTTP response in `bytes`, when its head and its
/// `Content-Length` body (0 without the header) have arrived.
fn complete_response_len(bytes: &[u8]) -> Option<usize> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&bytes[..head_end]);
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    (bytes.len() >= head_end + length).then_some(head_end + length)
}

/// The header of a masked client frame (RFC 6455 §5.2) announcing
/// `payload_len` bytes; send the payload masked with [`mask`] after it, or
/// not at all to test a server's reaction to the length alone.
pub fn client_frame_header(fin: bool, opcode: u8, payload_len: u64) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | (opcode & 0x0f)];
    match payload_len {
        0..=125 => out.push(0x80 | payload_len as u8),
        126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(payload_len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&payload_len.to_be_bytes());
        }
    }
    out.extend_from_slice(&MASK);
    out
}

/// Masks `payload` with the key [`client_frame_header`] announces.
pub fn mask(payload: &[u8]) -> Vec<u8> {
    payload
        .iter()
        .zip(MASK.iter().cycle())
        .map(|(b, m)| b ^ m)
        .collect()
}

/// A complete masked client frame: for fragments (`fin = false`, then
/// [`OP_CONTINUATION`]), bad opcodes, oversize payloads.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = client_frame_header(fin, opcode, payload.len() as u64);
    frame.extend_from_slice(&mask(payload));
    frame
}
