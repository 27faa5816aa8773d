//! One WebSocket client's XMPP session (RFC 7395), sans-IO.
//!
//! It joins the client's frame codec to the backend stream: client messages
//! go in as socket bytes, server elements come out as text frames with their
//! namespaces declared, and everything the reactor must do with sockets
//! (connect a backend, close) comes out as a [`Command`]. Time enters only
//! as `now`.
//!
//! Drain order after any input: [`Session::poll_command`], then the two
//! outputs ([`Session::client_output`], [`Session::backend_output`]), then
//! [`Session::poll_timeout`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::backend;
use crate::websocket::{self, Codec, Message};
use crate::xml::{self, FrameKind, Framer};

/// RFC 7395 §3.3.2: the namespace of `<open/>` and `<close/>`.
const NS_FRAMING: &str = websocket::NS_FRAMING;

/// WebSocket close codes (RFC 6455 §7.4.1).
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_INVALID_PAYLOAD: u16 = 1007;
const CLOSE_POLICY: u16 = 1008;

/// Limits and timers of one session, derived once from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub websocket: websocket::Limits,
    pub xml: xml::Limits,
    /// Server ping after this much client silence; `None` disables pings.
    pub ping_interval: Option<Duration>,
    pub pong_timeout: Duration,
    /// Stream open, STARTTLS and restart must finish within this.
    pub handshake_timeout: Duration,
    /// Bytes of client stanzas held while the backend is not ready yet.
    pub max_pending_bytes: usize,
}

/// What the reactor must do for the session.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Find and connect the XMPP server of `domain`, then call
    /// [`Session::backend_connected`] or [`Session::backend_failed`].
    Connect { domain: String },
    /// Write out both outputs, then close both sockets.
    Close(End),
    /// Close both sockets now, without writing anything more to the backend:
    /// the server keeps the XMPP session resumable (XEP-0198).
    Drop(End),
}

/// Why a session ended; the text goes into the session's end log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    ClientClosed,
    ClientVanished,
    /// A WebSocket close frame with this code, without `<close/>`.
    WebSocketClosed(u16),
    ServerClosed,
    ServerStreamError(String),
    BackendFailed(String),
    HandshakeTimeout,
    PingTimeout,
    ProtocolError(String),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::ClientClosed => f.write_str("client closed"),
            End::ClientVanished => f.write_str("client vanished"),
            End::WebSocketClosed(code) => write!(f, "client closed the websocket ({code}) without <close/>"),
            End::ServerClosed => f.write_str("server closed the stream"),
            End::ServerStreamError(c) => write!(f, "server stream error: {c}"),
            End::BackendFailed(why) => write!(f, "backend failed: {why}"),
            End::HandshakeTimeout => f.write_str("backend handshake timed out"),
            End::PingTimeout => f.write_str("client did not answer ping"),
            End::ProtocolError(why) => write!(f, "client protocol error: {why}"),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Waiting for the client's first `<open/>`.
    AwaitOpen,
    /// `<open/>` answered; the backend is being found, connected, negotiated.
    Connecting,
    /// Relaying.
    Open,
    /// A close was decided; nothing more is read.
    Ended,
}

/// The attributes of a client `<open/>` that the session uses.
#[derive(Debug, Default, PartialEq, Eq)]
struct Open {
    to: Option<String>,
    lang: Option<String>,
}

pub struct Session {
    settings: Settings,
    codec: Codec,
    framer: Framer,
    state: State,
    stream_id: String,
    domain: String,
    lang: String,
    backend: Option<backend::Stream>,
    /// Client stanzas that came before the backend was ready.
    pending: Vec<u8>,
    commands: VecDeque<Command>,
    last_input: Instant,
    ping_sent: Option<Instant>,
    handshake_deadline: Option<Instant>,
    /// Reused for splicing namespaces into server elements.
    splice: Vec<u8>,
}

impl Session {
    /// A session whose upgrade has just been accepted. `stream_id` goes into
    /// the `<open/>` replies.
    pub fn new(settings: Settings, now: Instant, stream_id: String) -> Self {
        Session {
            codec: Codec::new(settings.websocket.clone()),
            framer: Framer::new(xml::Mode::Fragments, settings.xml.clone()),
            settings,
            state: State::AwaitOpen,
            stream_id,
            domain: String::new(),
            lang: String::from("en"),
            backend: None,
            pending: Vec::new(),
            commands: VecDeque::new(),
            last_input: now,
            ping_sent: None,
            handshake_deadline: None,
            splice: Vec::new(),
        }
    }

    /// The XMPP domain the client opened, once known.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn is_ended(&self) -> bool {
        self.state == State::Ended
    }

    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    pub fn client_output(&self) -> &[u8] {
        self.codec.output()
    }

    pub fn consume_client_output(&mut self, n: usize) {
        self.codec.consume_output(n);
    }

    pub fn backend_output(&self) -> &[u8] {
        self.backend.as_ref().map_or(&[], |b| b.output())
    }

    pub fn consume_backend_output(&mut self, n: usize) {
        if let Some(b) = self.backend.as_mut() {
            b.consume_output(n);
        }
    }

    /// Earliest time [`Session::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Ended {
            return None;
        }
        let ping = self.settings.ping_interval.map(|interval| match self.ping_sent {
            Some(sent) => sent + self.settings.pong_timeout,
            None => self.last_input + interval,
        });
        match (ping, self.handshake_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Ended {
            return;
        }
        if self.handshake_deadline.is_some_and(|d| now >= d) {
            self.fail_backend(End::HandshakeTimeout);
            return;
        }
        let Some(interval) = self.settings.ping_interval else {
            return;
        };
        match self.ping_sent {
            Some(sent) if now >= sent + self.settings.pong_timeout => {
                self.codec.send_close(CLOSE_POLICY, "ping timeout");
                self.end(Command::Drop(End::PingTimeout));
            }
            Some(_) => {}
            None if now >= self.last_input + interval => {
                self.codec.send_ping();
                self.ping_sent = Some(now);
            }
            None => {}
        }
    }

    /// Bytes read from the client socket.
    pub fn handle_client_input(&mut self, now: Instant, bytes: &[u8]) {
        if self.state == State::Ended {
            return;
        }
        self.last_input = now;
        self.ping_sent = None;
        self.codec.handle_input(bytes);
        while self.state != State::Ended {
            match self.codec.poll_message() {
                Ok(Some(Message::Text(text))) => self.handle_client_message(now, &text),
                // A close frame without `<close/>` first leaves the server
                // stream open for resumption (XEP-0198), like a vanished
                // client; the codec has queued the close reply.
                Ok(Some(Message::Closed(code))) => self.end(Command::Close(End::WebSocketClosed(code))),
                Ok(None) => break,
                // The codec has queued the close frame with its code.
                Err(reason) => self.end(Command::Close(End::ProtocolError(reason.reason.to_string()))),
            }
        }
    }

    /// The client's socket reached end of file or failed.
    pub fn handle_client_eof(&mut self) {
        if self.state != State::Ended {
            self.end(Command::Drop(End::ClientVanished));
        }
    }

    /// The TCP connection to the server is up: start the XMPP stream on it.
    pub fn backend_connected(&mut self, now: Instant, settings: backend::Settings) {
        if self.state != State::Connecting {
            return;
        }
        self.backend = Some(backend::Stream::new(settings));
        self.handshake_deadline = Some(now + self.settings.handshake_timeout);
    }

    /// No server could be reached for the domain.
    pub fn backend_failed(&mut self, why: String) {
        if self.state != State::Ended {
            self.fail_backend(End::BackendFailed(why));
        }
    }

    /// Bytes read from the backend socket.
    pub fn handle_backend_input(&mut self, bytes: &[u8]) {
        let Some(stream) = self.backend.as_mut() else {
            return;
        };
        if let Err(e) = stream.handle_input(bytes) {
            self.fail_backend(End::BackendFailed(e.to_string()));
            return;
        }
        self.drain_backend();
    }

    /// The backend socket reached end of file or failed.
    pub fn handle_backend_eof(&mut self) {
        if self.state != State::Ended {
            self.fail_backend(End::BackendFailed("server closed the connection".into()));
        }
    }

    fn drain_backend(&mut self) {
        loop {
            let Some(stream) = self.backend.as_mut() else {
                return;
            };
            let event = match stream.poll_event() {
                Ok(Some(event)) => event,
                Ok(None) => return,
                Err(e) => {
                    let why = e.to_string();
                    self.fail_backend(End::BackendFailed(why));
                    return;
                }
            };
            match event {
                backend::Event::Features(bytes, info) => {
                    self.splice.clear();
                    xml::splice_namespaces(bytes, &info, xml::NS_CLIENT, &mut self.splice);
                    let first = self.state == State::Connecting;
                    self.handshake_deadline = None;
                    send_utf8(&mut self.codec, &self.splice);
                    if first {
                        self.state = State::Open;
                        if !self.pending.is_empty() {
                            let pending = std::mem::take(&mut self.pending);
                            self.send_to_backend(&pending);
                        }
                    }
                }
                backend::Event::Element(bytes, info) => {
                    self.splice.clear();
                    xml::splice_namespaces(bytes, &info, xml::NS_CLIENT, &mut self.splice);
                    send_utf8(&mut self.codec, &self.splice);
                }
                backend::Event::StreamError {
                    element,
                    info,
                    condition,
                } => {
                    self.splice.clear();
                    xml::splice_namespaces(element, &info, xml::NS_CLIENT, &mut self.splice);
                    send_utf8(&mut self.codec, &self.splice);
                    self.close_client(End::ServerStreamError(condition));
                    return;
                }
                backend::Event::Closed => {
                    self.close_client(End::ServerClosed);
                    return;
                }
            }
        }
    }

    fn handle_client_message(&mut self, now: Instant, text: &str) {
        let bytes = text.as_bytes();
        if bytes.iter().all(u8::is_ascii_whitespace) {
            // Whitespace keepalive: nothing to relay over RFC 7395.
            return;
        }
        self.framer.reset();
        let info = match self.framer.next(bytes) {
            Ok(Some(frame)) => match frame.kind {
                FrameKind::Element(info)
                    if bytes[frame.len..].iter().all(u8::is_ascii_whitespace) =>
                {
                    info
                }
                // RFC 7395 §3.3.3: one complete element per message.
                _ => return self.stream_error("bad-format", "not exactly one element"),
            },
            Ok(None) => return self.stream_error("not-well-formed", "incomplete element"),
            Err(e) => return self.stream_error(e.condition(), &e.to_string()),
        };
        let framing = info.namespace(bytes) == Some(NS_FRAMING);
        match (framing, info.local_name(bytes)) {
            (true, "open") => self.handle_open(now, text),
            (true, "close") => self.handle_close(),
            _ if self.state == State::AwaitOpen => {
                self.stream_error("not-authorized", "stanza before <open/>")
            }
            _ => self.send_to_backend(bytes),
        }
    }

    fn handle_open(&mut self, _now: Instant, text: &str) {
        let open = match parse_open(text) {
            Ok(open) => open,
            Err(why) => return self.stream_error("not-well-formed", why),
        };
        if let Some(lang) = open.lang {
            self.lang = lang;
        }
        match self.state {
            State::AwaitOpen => {
                let Some(to) = open.to.filter(|to| !to.is_empty()) else {
                    return self.stream_error("host-unknown", "<open/> without to");
                };
                self.domain = to;
                self.reply_open();
                self.state = State::Connecting;
                self.commands.push_back(Command::Connect {
                    domain: self.domain.clone(),
                });
            }
            State::Open => {
                if open.to.is_some_and(|to| to != self.domain) {
                    return self.stream_error("host-unknown", "restart to another domain");
                }
                self.reply_open();
                let restarted = match self.backend.as_mut() {
                    Some(stream) => stream.restart(&self.lang).map_err(|e| e.to_string()),
                    None => Err("no backend stream".to_string()),
                };
                if let Err(why) = restarted {
                    self.fail_backend(End::BackendFailed(why));
                }
            }
            State::Connecting => self.stream_error("policy-violation", "restart before features"),
            State::Ended => {}
        }
    }

    /// RFC 7395 §3.6: answer `<close/>` with `<close/>`, close the server
    /// stream cleanly, then the WebSocket.
    fn handle_close(&mut self) {
        if let Some(stream) = self.backend.as_mut() {
            stream.close();
        }
        self.codec.send_text(websocket::CLOSE_ELEMENT);
        self.codec.send_close(CLOSE_NORMAL, "");
        self.end(Command::Close(End::ClientClosed));
    }

    fn reply_open(&mut self) {
        let open = websocket::open_element(&self.domain, &self.stream_id, &self.lang);
        self.codec.send_text(&open);
    }

    fn send_to_backend(&mut self, bytes: &[u8]) {
        match self.backend.as_mut().filter(|b| b.is_ready()) {
            Some(stream) => {
                if let Err(e) = stream.send(bytes) {
                    self.fail_backend(End::BackendFailed(e.to_string()));
                }
            }
            None if self.pending.len() + bytes.len() <= self.settings.max_pending_bytes => {
                self.pending.extend_from_slice(bytes);
            }
            None => self.stream_error("policy-violation", "too much data before stream features"),
        }
    }

    /// The server side failed: tell the client with an RFC 6120 stream error
    /// and close. The backend socket is dropped without a stream close.
    fn fail_backend(&mut self, end: End) {
        let condition = match end {
            End::HandshakeTimeout => "connection-timeout",
            _ => "remote-connection-failed",
        };
        self.codec.send_text(&stream_error_element(condition));
        self.codec.send_text(websocket::CLOSE_ELEMENT);
        self.codec.send_close(CLOSE_NORMAL, "");
        self.backend = None;
        self.end(Command::Close(end));
    }

    /// The server ended its stream: RFC 7395 §3.6, close the client side too.
    fn close_client(&mut self, end: End) {
        self.codec.send_text(websocket::CLOSE_ELEMENT);
        self.codec.send_close(CLOSE_NORMAL, "");
        self.end(Command::Close(end));
    }

    /// A client error: RFC 6120 §4.9 stream error, `<close/>`, then close
    /// the WebSocket with 1007. The server stream is closed cleanly, since
    /// this client will not come back to resume it.
    fn stream_error(&mut self, condition: &str, why: &str) {
        self.codec.send_text(&stream_error_element(condition));
        self.codec.send_text(websocket::CLOSE_ELEMENT);
        self.codec.send_close(CLOSE_INVALID_PAYLOAD, condition);
        if let Some(stream) = self.backend.as_mut() {
            stream.close();
        }
        self.end(Command::Close(End::ProtocolError(format!("{condition}: {why}"))));
    }

    fn end(&mut self, command: Command) {
        self.state = State::Ended;
        self.handshake_deadline = None;
        self.commands.push_back(command);
    }
}

fn send_utf8(codec: &mut Codec, bytes: &[u8]) {
    // The framer only yields elements of valid UTF-8.
    if let Ok(text) = std::str::from_utf8(bytes) {
        codec.send_text(text);
    }
}

/// RFC 7395 §3.6 shows stream errors with the `stream` prefix declared on
/// the element itself, since no `<stream:stream>` encloses it.
fn stream_error_element(condition: &str) -> String {
    format!(
        "<stream:error xmlns:stream='{}'><{condition} xmlns='{}'/></stream:error>",
        xml::NS_STREAMS,
        xml::NS_STREAM_ERRORS
    )
}

/// The attributes of `<open/>` (RFC 7395 §3.3.2) the session needs.
fn parse_open(text: &str) -> Result<Open, &'static str> {
    let mut open = Open::default();
    for token in xmlparser::Tokenizer::from(text) {
        match token.map_err(|_| "malformed <open/>")? {
            xmlparser::Token::Attribute { prefix, local, value, .. } => {
                let value = xml::unescape(value.as_str()).map_err(|_| "bad attribute value")?;
                match (prefix.as_str(), local.as_str()) {
                    ("", "to") => open.to = Some(value.into_owned()),
                    ("xml", "lang") => open.lang = Some(value.into_owned()),
                    _ => {}
                }
            }
            xmlparser::Token::ElementEnd { .. } => break,
            _ => {}
        }
    }
    Ok(open)
}
