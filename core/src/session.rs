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
use crate::destinations;
pub use crate::end::End;
use crate::end::{Mistake, ServerSide};
use crate::stream_error::Condition;
use crate::websocket::{self, Codec, Message};
use crate::xml::{self, FrameKind, Framer};

/// RFC 7395 §3.3.2: the namespace of `<open/>` and `<close/>`.
const NS_FRAMING: &str = websocket::NS_FRAMING;

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
    /// Output held for one side before the other stops being read
    /// (back-pressure); also the client stanzas held while the backend is
    /// not ready yet.
    pub max_buffer_bytes: usize,
    /// `<open/>` must come within this after the upgrade.
    pub open_timeout: Duration,
    /// A frame once begun must be complete within this.
    pub read_timeout: Duration,
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
    /// Reads stopped at some time since the last judgement of the
    /// client's silence: what it sent may still wait unread.
    held_back: bool,
    handshake_deadline: Option<Instant>,
    /// Until the first `<open/>`.
    open_deadline: Option<Instant>,
    /// While a frame is begun and not complete.
    frame_deadline: Option<Instant>,
}

impl Session {
    /// A session whose upgrade has just been accepted. `stream_id` goes into
    /// the `<open/>` replies.
    pub fn new(settings: Settings, now: Instant, stream_id: String) -> Self {
        Session {
            codec: Codec::new(settings.websocket),
            framer: Framer::new(xml::Mode::Fragments, settings.xml),
            open_deadline: Some(now + settings.open_timeout),
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
            held_back: false,
            handshake_deadline: None,
            frame_deadline: None,
        }
    }

    /// The XMPP domain the client opened, once known.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The client's `xml:lang`, for the backend stream header.
    pub fn lang(&self) -> &str {
        &self.lang
    }

    pub fn is_ended(&self) -> bool {
        self.state == State::Ended
    }

    /// The endpoint ends the session (a limit refused it): the client
    /// hears what the table of ends says.
    pub fn refuse(&mut self, end: End) {
        if self.state != State::Ended {
            self.fail(end);
        }
    }

    /// Back-pressure: a full backend output stops reading the client.
    pub fn wants_client_input(&self) -> bool {
        self.backend_output().len() < self.settings.max_buffer_bytes
    }

    /// Back-pressure: a client that does not read stops the server's reads.
    pub fn wants_backend_input(&self) -> bool {
        self.client_output().len() < self.settings.max_buffer_bytes
    }

    /// Bytes held for either side, for the endpoint's accounting.
    pub fn buffered_bytes(&self) -> usize {
        self.codec.output().len() + self.backend_output().len() + self.pending.len()
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
        let ping = self
            .settings
            .ping_interval
            .map(|interval| match self.ping_sent {
                Some(sent) => sent + self.settings.pong_timeout,
                None => self.last_input + interval,
            });
        [
            ping,
            self.handshake_deadline,
            self.open_deadline,
            self.frame_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Time passed. `reading`: the client's socket is read now, and was
    /// not refused a read since the last call (neither this session's
    /// back-pressure nor the endpoint's buffer budget stopped it); while it
    /// is not, what the client sent may wait unread, so its silence is not
    /// judged until reads have gone on for a whole wait.
    pub fn handle_timeout(&mut self, now: Instant, reading: bool) {
        if self.state == State::Ended {
            return;
        }
        if self.handshake_deadline.is_some_and(|d| now >= d) {
            self.fail(End::HandshakeTimeout);
            return;
        }
        // Pings alone keep a client that never opens, or that dribbles a
        // frame a byte at a time, alive: these deadlines do not move.
        if self.open_deadline.is_some_and(|d| now >= d) {
            return self.fail(End::ClientTimeout("<open/>"));
        }
        let held_back = self.held_back || !reading;
        let mut judged = false;
        if self.frame_deadline.is_some_and(|d| now >= d) {
            if !held_back {
                return self.fail(End::ClientTimeout("whole frame"));
            }
            // Not the client's slowness: switchboard stopped reading.
            self.frame_deadline = Some(now + self.settings.read_timeout);
            judged = true;
        }
        if let Some(interval) = self.settings.ping_interval {
            match self.ping_sent {
                Some(sent) if now >= sent + self.settings.pong_timeout => {
                    if !held_back {
                        return self.end(Command::Drop(End::PingTimeout));
                    }
                    // A pong may be among the bytes left unread.
                    self.ping_sent = Some(now);
                    judged = true;
                }
                Some(_) => {}
                None if now >= self.last_input + interval => {
                    self.codec.send_ping();
                    self.ping_sent = Some(now);
                    judged = true;
                }
                None => {}
            }
        }
        // A new wait starts from what is known now.
        self.held_back = if judged { !reading } else { held_back };
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
                Ok(Some(Message::Closed(code))) => {
                    self.end(Command::Close(End::WebSocketClosed(code)))
                }
                Ok(None) => break,
                // The codec has queued the close frame with its code.
                Err(reason) => self.end(Command::Close(End::WebSocketProtocol(
                    reason.reason.to_string(),
                ))),
            }
        }
        self.frame_deadline = match self.frame_deadline {
            _ if !self.codec.has_partial_input() => None,
            Some(deadline) => Some(deadline),
            None => Some(now + self.settings.read_timeout),
        };
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
            self.fail(End::BackendFailed(why));
        }
    }

    /// Bytes read from the backend socket.
    pub fn handle_backend_input(&mut self, bytes: &[u8]) {
        let Some(stream) = self.backend.as_mut() else {
            return;
        };
        if let Err(e) = stream.handle_input(bytes) {
            self.fail(End::BackendFailed(e.to_string()));
            return;
        }
        self.drain_backend();
    }

    /// The backend socket reached end of file or failed.
    pub fn handle_backend_eof(&mut self) {
        if self.state != State::Ended {
            self.fail(End::BackendFailed("server closed the connection".into()));
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
                    self.fail(End::BackendFailed(why));
                    return;
                }
            };
            match event {
                backend::Event::Features(bytes, info) => {
                    relay(&mut self.codec, bytes, &info);
                    let first = self.state == State::Connecting;
                    self.handshake_deadline = None;
                    if first {
                        self.state = State::Open;
                        if !self.pending.is_empty() {
                            let pending = std::mem::take(&mut self.pending);
                            self.send_to_backend(&pending);
                        }
                    }
                }
                backend::Event::Element(bytes, info) => relay(&mut self.codec, bytes, &info),
                backend::Event::StreamError {
                    element,
                    info,
                    condition,
                } => {
                    relay(&mut self.codec, element, &info);
                    self.fail(End::ServerStreamError(condition));
                    return;
                }
                backend::Event::Closed => {
                    self.fail(End::ServerClosed);
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
        let info = match self.framer.next_in_text(text) {
            Ok(Some(frame)) => match frame.kind {
                FrameKind::Element(info)
                    if bytes[frame.len..].iter().all(u8::is_ascii_whitespace) =>
                {
                    info
                }
                // RFC 7395 §3.3.3: one complete element per message.
                _ => return self.fail(End::Client(Mistake::NotOneElement)),
            },
            Ok(None) => return self.fail(End::Client(Mistake::NotOneElement)),
            Err(e) => return self.fail(End::Client(Mistake::Xml(e))),
        };
        // RFC 7395 §3.3.2: `<open/>` and `<close/>` in the framing
        // namespace by default; a prefixed name is another element.
        let framing = info.namespace(bytes) == Some(NS_FRAMING) && info.prefix(bytes).is_none();
        match (framing, info.local_name(bytes)) {
            (true, "open") => self.handle_open(now, text),
            (true, "close") => self.handle_close(),
            _ if self.state == State::AwaitOpen => self.fail(End::Client(Mistake::BeforeOpen)),
            _ => self.send_to_backend(bytes),
        }
    }

    fn handle_open(&mut self, _now: Instant, text: &str) {
        let open = match parse_open(text) {
            Ok(open) => open,
            Err(why) => return self.fail(End::Client(Mistake::BadOpen(why))),
        };
        if let Some(lang) = open.lang {
            self.lang = lang;
        }
        match self.state {
            State::AwaitOpen => {
                let Some(to) = open.to.as_deref().and_then(destinations::normalize) else {
                    return self.fail(End::Client(Mistake::NoDomain));
                };
                self.domain = to;
                self.open_deadline = None;
                self.reply_open();
                self.state = State::Connecting;
                self.commands.push_back(Command::Connect {
                    domain: self.domain.clone(),
                });
            }
            State::Open => {
                let to = open.to.as_deref().map(destinations::normalize);
                if to.is_some_and(|to| to.as_deref() != Some(self.domain.as_str())) {
                    return self.fail(End::Client(Mistake::OtherDomain));
                }
                self.reply_open();
                let restarted = match self.backend.as_mut() {
                    Some(stream) => stream.restart(&self.lang).map_err(|e| e.to_string()),
                    None => Err("no backend stream".to_string()),
                };
                if let Err(why) = restarted {
                    self.fail(End::BackendFailed(why));
                }
            }
            State::Connecting => self.fail(End::Client(Mistake::RestartTooEarly)),
            State::Ended => {}
        }
    }

    /// RFC 7395 §3.6: answer `<close/>` with `<close/>`, close the server
    /// stream cleanly, then the WebSocket.
    fn handle_close(&mut self) {
        self.fail(End::ClientClosed);
    }

    fn reply_open(&mut self) {
        let open = websocket::open_element(&self.domain, &self.stream_id, &self.lang);
        self.codec.send_text(&open);
    }

    fn send_to_backend(&mut self, bytes: &[u8]) {
        match self.backend.as_mut().filter(|b| b.is_ready()) {
            Some(stream) => {
                if let Err(e) = stream.send(bytes) {
                    self.fail(End::BackendFailed(e.to_string()));
                }
            }
            None if self.pending.len() + bytes.len() <= self.settings.max_buffer_bytes => {
                self.pending.extend_from_slice(bytes);
            }
            None => self.fail(End::Client(Mistake::TooMuchEarlyData)),
        }
    }

    /// switchboard is going down: the client hears `system-shutdown` and
    /// close code 1001; the server stream is dropped without a close, so
    /// that the client may resume it elsewhere.
    pub fn shut_down(&mut self) {
        if self.state != State::Ended {
            self.fail(End::Shutdown);
        }
    }

    /// The session ends for `end`: the client hears what the table of
    /// ends says (a stream error, `<close/>`, the close code; RFC 7395
    /// §3.6), the server's stream is closed or dropped as it says, then
    /// both sockets close once this is written.
    fn fail(&mut self, end: End) {
        let told = end.websocket();
        if let Some(condition) = told.stream_error {
            self.codec.send_text(&stream_error_element(condition));
        }
        self.codec.send_text(websocket::CLOSE_ELEMENT);
        let reason = told.stream_error.map_or("", Condition::as_str);
        self.codec.send_close(told.close_code, reason);
        match end.server_side() {
            ServerSide::Close => {
                if let Some(stream) = self.backend.as_mut() {
                    stream.close();
                }
            }
            ServerSide::Drop => self.backend = None,
        }
        self.end(Command::Close(end));
    }

    fn end(&mut self, command: Command) {
        self.state = State::Ended;
        self.handshake_deadline = None;
        self.open_deadline = None;
        self.frame_deadline = None;
        self.commands.push_back(command);
    }
}

/// A server element as one text frame, with the namespaces its stream gave
/// it declared on itself (RFC 7395 §3.3.3). The framer only yields valid
/// UTF-8, and the declarations are ASCII.
fn relay(codec: &mut Codec, element: &[u8], info: &xml::ElementInfo) {
    codec.send_text_with(|out| xml::splice_namespaces(element, info, xml::NS_CLIENT, out));
}

/// RFC 7395 §3.6 shows stream errors with the `stream` prefix declared on
/// the element itself, since no `<stream:stream>` encloses it.
fn stream_error_element(condition: Condition) -> String {
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
            xmlparser::Token::Attribute {
                prefix,
                local,
                value,
                ..
            } => {
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

#[cfg(test)]
mod tests {
    use super::*;

    const FEATURES: &str = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>";
    const SERVER_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='s1' version='1.0'>";

    fn settings() -> Settings {
        Settings {
            websocket: websocket::Limits {
                max_message_bytes: 64 * 1024,
            },
            xml: xml::Limits {
                max_depth: 32,
                max_attributes: 64,
                max_element_bytes: 64 * 1024,
            },
            ping_interval: Some(Duration::from_secs(30)),
            pong_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(5),
            max_buffer_bytes: 1024,
            open_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(10),
        }
    }

    fn backend_settings() -> backend::Settings {
        backend::Settings::plaintext_for_tests(settings().xml)
    }

    /// A masked client text frame (RFC 6455 §5.3).
    fn text_frame(text: &str) -> Vec<u8> {
        let payload = text.as_bytes();
        let mut frame = vec![0x81];
        if payload.len() < 126 {
            frame.push(0x80 | payload.len() as u8);
        } else {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        let mask = [1u8, 2, 3, 4];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    /// Server frames (unmasked) as (opcode, payload).
    fn frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while bytes.len() >= 2 {
            let opcode = bytes[0] & 0x0f;
            let (len, head) = match bytes[1] & 0x7f {
                126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (n as usize, 2),
            };
            out.push((opcode, bytes[head..head + len].to_vec()));
            bytes = &bytes[head + len..];
        }
        out
    }

    /// Texts the session wrote to the client since the last call.
    fn client_texts(session: &mut Session) -> Vec<String> {
        let out = session.client_output().to_vec();
        session.consume_client_output(out.len());
        frames(&out)
            .into_iter()
            .filter(|(op, _)| *op == 1)
            .map(|(_, p)| String::from_utf8(p).unwrap())
            .collect()
    }

    fn backend_text(session: &mut Session) -> String {
        let out = session.backend_output().to_vec();
        session.consume_backend_output(out.len());
        String::from_utf8(out).unwrap()
    }

    const OPEN: &str =
        "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";

    /// A session through `<open/>`, backend connect and features.
    fn ready_session(now: Instant) -> Session {
        let mut s = Session::new(settings(), now, "id1".into());
        s.handle_client_input(now, &text_frame(OPEN));
        assert_eq!(
            s.poll_command(),
            Some(Command::Connect {
                domain: "localhost".into()
            })
        );
        s.backend_connected(now, backend_settings());
        let header = backend_text(&mut s);
        assert!(header.contains("to='localhost'"), "{header}");
        s.handle_backend_input(format!("{SERVER_HEADER}{FEATURES}").as_bytes());
        s
    }

    #[test]
    fn open_is_answered_at_once_and_features_follow_with_namespaces() {
        let now = Instant::now();
        let mut s = Session::new(settings(), now, "id1".into());
        s.handle_client_input(now, &text_frame(OPEN));
        let texts = client_texts(&mut s);
        assert_eq!(texts.len(), 1);
        assert!(
            texts[0].starts_with("<open") && texts[0].contains("id='id1'"),
            "{texts:?}"
        );
        assert!(s.poll_command().is_some());
        s.backend_connected(now, backend_settings());
        backend_text(&mut s);
        s.handle_backend_input(format!("{SERVER_HEADER}{FEATURES}").as_bytes());
        let texts = client_texts(&mut s);
        assert_eq!(texts.len(), 1, "{texts:?}");
        assert!(texts[0].starts_with("<stream:features"), "{texts:?}");
        assert!(
            texts[0].contains("xmlns:stream='http://etherx.jabber.org/streams'"),
            "{texts:?}"
        );
        assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(30)));
    }

    #[test]
    fn open_split_at_every_byte_gives_the_same_reply() {
        let frame = text_frame(OPEN);
        for cut in 1..frame.len() {
            let now = Instant::now();
            let mut s = Session::new(settings(), now, "id1".into());
            s.handle_client_input(now, &frame[..cut]);
            s.handle_client_input(now, &frame[cut..]);
            assert_eq!(client_texts(&mut s).len(), 1, "cut at {cut}");
            assert!(s.poll_command().is_some(), "cut at {cut}");
        }
    }

    #[test]
    fn stanzas_pass_through_unchanged_and_server_stanzas_get_jabber_client() {
        let now = Instant::now();
        let mut s = ready_session(now);
        client_texts(&mut s);
        let stanza = "<message xmlns='jabber:client' to='bob@localhost'><body>hi</body></message>";
        s.handle_client_input(now, &text_frame(stanza));
        assert_eq!(backend_text(&mut s), stanza);
        s.handle_backend_input(b"<message from='bob@localhost'><body>yo</body></message>");
        let texts = client_texts(&mut s);
        assert_eq!(
            texts,
            vec!["<message xmlns='jabber:client' from='bob@localhost'><body>yo</body></message>"]
        );
    }

    #[test]
    fn client_data_before_features_is_held_then_sent() {
        let now = Instant::now();
        let mut s = Session::new(settings(), now, "id1".into());
        s.handle_client_input(now, &text_frame(OPEN));
        s.poll_command();
        s.backend_connected(now, backend_settings());
        backend_text(&mut s);
        s.handle_client_input(now, &text_frame("<presence/>"));
        assert_eq!(backend_text(&mut s), "");
        s.handle_backend_input(format!("{SERVER_HEADER}{FEATURES}").as_bytes());
        assert_eq!(backend_text(&mut s), "<presence/>");
    }

    #[test]
    fn restart_opens_a_new_backend_stream_and_answers_open() {
        let now = Instant::now();
        let mut s = ready_session(now);
        client_texts(&mut s);
        s.handle_client_input(now, &text_frame(OPEN));
        let texts = client_texts(&mut s);
        assert!(texts[0].starts_with("<open"), "{texts:?}");
        assert!(backend_text(&mut s).contains("<stream:stream"));
        s.handle_backend_input(format!("{SERVER_HEADER}<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>").as_bytes());
        let texts = client_texts(&mut s);
        assert!(texts[0].contains("xmpp-bind"), "{texts:?}");
    }

    #[test]
    fn clean_close_answers_close_and_closes_the_server_stream() {
        let now = Instant::now();
        let mut s = ready_session(now);
        client_texts(&mut s);
        s.handle_client_input(
            now,
            &text_frame("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"),
        );
        let out = s.client_output().to_vec();
        let frames = frames(&out);
        assert_eq!(frames[0], (1, websocket::CLOSE_ELEMENT.as_bytes().to_vec()));
        assert_eq!(frames[1].0, 8);
        assert_eq!(&frames[1].1[..2], &1000u16.to_be_bytes());
        assert!(backend_text(&mut s).ends_with("</stream:stream>"));
        assert_eq!(s.poll_command(), Some(Command::Close(End::ClientClosed)));
    }

    #[test]
    fn vanished_client_leaves_the_server_stream_open() {
        let now = Instant::now();
        let mut s = ready_session(now);
        s.handle_client_eof();
        assert_eq!(s.poll_command(), Some(Command::Drop(End::ClientVanished)));
        assert!(!backend_text(&mut s).contains("</stream:stream>"));
    }

    #[test]
    fn server_stream_error_is_relayed_then_close() {
        let now = Instant::now();
        let mut s = ready_session(now);
        client_texts(&mut s);
        s.handle_backend_input(b"<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>");
        let texts = client_texts(&mut s);
        assert!(
            texts[0].contains("system-shutdown") && texts[0].contains("xmlns:stream"),
            "{texts:?}"
        );
        assert_eq!(texts[1], websocket::CLOSE_ELEMENT);
        assert_eq!(
            s.poll_command(),
            Some(Command::Close(End::ServerStreamError(
                Condition::SystemShutdown
            )))
        );
    }

    #[test]
    fn malformed_client_xml_is_a_stream_error_with_close_1007() {
        let now = Instant::now();
        let mut s = ready_session(now);
        client_texts(&mut s);
        s.handle_client_input(now, &text_frame("<message><body></message>"));
        let out = s.client_output().to_vec();
        let frames = frames(&out);
        let first = String::from_utf8(frames[0].1.clone()).unwrap();
        assert!(first.contains("not-well-formed"), "{first}");
        assert_eq!(frames.last().unwrap().0, 8);
        assert_eq!(&frames.last().unwrap().1[..2], &1007u16.to_be_bytes());
        assert!(matches!(
            s.poll_command(),
            Some(Command::Close(End::Client(_)))
        ));
    }

    #[test]
    fn two_elements_in_one_message_are_refused() {
        let now = Instant::now();
        let mut s = ready_session(now);
        client_texts(&mut s);
        s.handle_client_input(now, &text_frame("<presence/><presence/>"));
        assert!(client_texts(&mut s)[0].contains("bad-format"));
    }

    #[test]
    fn stanza_before_open_is_refused() {
        let now = Instant::now();
        let mut s = Session::new(settings(), now, "id1".into());
        s.handle_client_input(now, &text_frame("<presence/>"));
        assert!(client_texts(&mut s)[0].contains("not-authorized"));
        assert!(matches!(s.poll_command(), Some(Command::Close(_))));
    }

    #[test]
    fn backend_handshake_timeout_tells_the_client() {
        let now = Instant::now();
        let mut s = Session::new(settings(), now, "id1".into());
        s.handle_client_input(now, &text_frame(OPEN));
        s.poll_command();
        s.backend_connected(now, backend_settings());
        client_texts(&mut s);
        assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(5)));
        s.handle_timeout(now + Duration::from_secs(5), true);
        assert!(client_texts(&mut s)[0].contains("remote-connection-failed"));
        assert_eq!(
            s.poll_command(),
            Some(Command::Close(End::HandshakeTimeout))
        );
    }

    #[test]
    fn idle_client_is_pinged_then_dropped_without_pong() {
        let now = Instant::now();
        let mut s = ready_session(now);
        client_texts(&mut s);
        let ping_at = now + Duration::from_secs(30);
        s.handle_timeout(ping_at - Duration::from_millis(1), true);
        assert!(s.client_output().is_empty());
        s.handle_timeout(ping_at, true);
        let out = s.client_output().to_vec();
        s.consume_client_output(out.len());
        assert_eq!(frames(&out)[0].0, 9, "a ping frame");
        assert_eq!(s.poll_timeout(), Some(ping_at + Duration::from_secs(10)));
        s.handle_timeout(ping_at + Duration::from_secs(10), true);
        assert_eq!(s.poll_command(), Some(Command::Drop(End::PingTimeout)));
    }

    /// Whether the client's socket is read at each due time (the ping at
    /// 30 s, then every 10 s): the pong's wait ends the session only once
    /// reads went on for the whole of it.
    #[test]
    fn no_pong_is_not_the_clients_fault_while_switchboard_does_not_read_it() {
        let cases: [&[bool]; 3] = [
            &[true, true],
            // Reads stop as the pong is due (the buffer budget): it may
            // wait unread, so a new wait begins, then one more whole one.
            &[true, false, true, true],
            // The ping goes out while reads are stopped; they resume
            // before the pong is due, the pong not yet read.
            &[false, true, true],
        ];
        for reading in cases {
            let now = Instant::now();
            let mut s = ready_session(now);
            client_texts(&mut s);
            for (i, &reading_now) in reading.iter().enumerate() {
                let at = now + Duration::from_secs(30 + 10 * i as u64);
                assert_eq!(s.poll_timeout(), Some(at), "{reading:?} at {i}");
                s.handle_timeout(at, reading_now);
                let out = s.client_output().to_vec();
                s.consume_client_output(out.len());
                let expected = (i + 1 == reading.len()).then_some(Command::Drop(End::PingTimeout));
                assert_eq!(s.poll_command(), expected, "{reading:?} at {i}");
            }
        }
    }

    #[test]
    fn client_input_postpones_the_ping() {
        let now = Instant::now();
        let mut s = ready_session(now);
        let later = now + Duration::from_secs(20);
        s.handle_client_input(later, &text_frame(" "));
        assert_eq!(s.poll_timeout(), Some(later + Duration::from_secs(30)));
    }

    #[test]
    fn backend_failure_is_remote_connection_failed() {
        let now = Instant::now();
        let mut s = Session::new(settings(), now, "id1".into());
        s.handle_client_input(now, &text_frame(OPEN));
        s.poll_command();
        client_texts(&mut s);
        s.backend_failed("no server".into());
        let texts = client_texts(&mut s);
        assert!(texts[0].contains("remote-connection-failed"), "{texts:?}");
        assert_eq!(texts[1], websocket::CLOSE_ELEMENT);
    }

    /// A client that upgrades and never opens is let go after
    /// `open_timeout`, even if it answers every ping.
    #[test]
    fn no_open_within_the_open_timeout_is_connection_timeout() {
        let now = Instant::now();
        let mut s = Session::new(settings(), now, "id1".into());
        let pong = {
            let mut frame = text_frame("");
            frame[0] = 0x8a;
            frame
        };
        for second in 1..10 {
            s.handle_client_input(now + Duration::from_secs(second), &pong);
        }
        assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(10)));
        s.handle_timeout(now + Duration::from_secs(10), true);
        assert!(client_texts(&mut s)[0].contains("connection-timeout"));
        assert!(matches!(
            s.poll_command(),
            Some(Command::Close(End::ClientTimeout(_)))
        ));
    }

    /// A frame dribbled a byte at a time must still be whole within the
    /// read timeout counted from its first byte.
    #[test]
    fn a_frame_begun_must_be_whole_within_the_read_timeout() {
        let now = Instant::now();
        let mut s = ready_session(now);
        client_texts(&mut s);
        let frame = text_frame("<presence/>");
        for (i, byte) in frame[..frame.len() - 1].iter().enumerate() {
            s.handle_client_input(now + Duration::from_secs(i as u64), &[*byte]);
        }
        assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(10)));
        s.handle_timeout(now + Duration::from_secs(10), true);
        assert!(client_texts(&mut s)[0].contains("connection-timeout"));
        // A frame that completes in time clears the deadline.
        let mut s = ready_session(now);
        s.handle_client_input(now, &frame[..3]);
        s.handle_client_input(now + Duration::from_secs(1), &frame[3..]);
        assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(31)));
    }

    /// A frame left half read because switchboard stopped reading (a full
    /// backend output) is not the client's slowness.
    #[test]
    fn back_pressure_does_not_count_against_a_frame_begun() {
        let now = Instant::now();
        let mut s = ready_session(now);
        let big = format!("<message><body>{}</body></message>", "x".repeat(1200));
        s.handle_client_input(now, &text_frame(&big));
        assert!(!s.wants_client_input(), "the backend output is full");
        let frame = text_frame("<presence/>");
        s.handle_client_input(now, &frame[..3]);
        let reading = s.wants_client_input();
        s.handle_timeout(now + Duration::from_secs(10), reading);
        assert!(s.poll_command().is_none(), "not cut while back-pressured");
        backend_text(&mut s);
        s.handle_client_input(now + Duration::from_secs(11), &frame[3..]);
        assert_eq!(backend_text(&mut s), "<presence/>");
    }
}
