//! One BOSH session (XEP-0124 + XEP-0206), sans-IO: HTTP request bodies and
//! backend bytes in, response bodies, backend bytes and commands out; time
//! only as `now`.
//!
//! Requests are taken in rid order within a window of `hold + 1`; an early
//! rid waits for the gap to fill, a repeated one gets its cached response.
//! Held requests are answered when server stanzas arrive, after `wait`, or
//! when more than `hold` are held (the oldest, empty).
//!
//! Drain order after any input: [`Session::poll_response`],
//! [`Session::poll_command`], [`Session::backend_output`],
//! [`Session::poll_timeout`].

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::body::{terminate_body, Body, Condition, NS_HTTPBIND, NS_XBOSH};
use crate::backend;
use crate::xml;

/// RFC 6120 §6.4.6: `<success/>` lives here.
const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";

/// An opaque id the reactor gives each HTTP request it holds.
pub type RequestHandle = u64;

/// The backend streams of a session; 0 is the first (XEP-0124 §19).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamId(pub usize);

/// Limits and timers, derived once from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Longest `wait` granted (XEP-0124 §7.1).
    pub max_wait: Duration,
    /// Most requests held at once.
    pub max_hold: u32,
    /// The inactivity granted is the client's clamped into these
    /// (node-xmpp-bosh's rule).
    pub default_inactivity: Duration,
    pub max_inactivity: Duration,
    /// The shortest interval allowed between polls (XEP-0124 §12).
    pub polling: Duration,
    pub max_pause: Duration,
    /// The backend stream must be ready within this.
    pub handshake_timeout: Duration,
    /// Server data held for the client before the backend stops being read.
    pub max_pending_bytes: usize,
    pub xml: xml::Limits,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Find and connect the server of `domain` for `stream`.
    Connect { stream: StreamId, domain: String },
    /// The stream is closed: drop its connection once its output is out.
    CloseBackend { stream: StreamId },
    /// The session is over; the text is for the log line.
    End(String),
}

/// An HTTP response body for a held request.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The response to a request that has no session (unknown sid, bad body).
pub fn terminate_response(condition: Condition) -> Response {
    Response {
        status: 200,
        body: terminate_body(Some(condition), b""),
    }
}

struct Held {
    rid: u64,
    handle: RequestHandle,
    deadline: Instant,
}

struct Queued {
    handle: RequestHandle,
    body: Body,
    payload: Vec<u8>,
}

pub struct Session {
    settings: Settings,
    sid: String,
    domain: String,
    /// The client's `from`, echoed as `to` (node-xmpp-bosh does).
    client_from: Option<String>,
    lang: String,
    wait: Duration,
    hold: u32,
    inactivity: Duration,
    /// The next rid to take.
    next_rid: u64,
    /// Requests ahead of a gap, by rid.
    queued: BTreeMap<u64, Queued>,
    held: VecDeque<Held>,
    /// The last responses, by rid, for repeats (XEP-0124 §14.3).
    cache: VecDeque<(u64, Vec<u8>)>,
    /// The creation request, until the stream features come.
    creation: Option<Held>,
    backend: Option<backend::Stream>,
    /// Server stanzas, namespaces spliced, waiting for a request.
    pending: Vec<u8>,
    /// Client payload that came before the backend was ready.
    early: Vec<u8>,
    /// The current stream's features, for a restart that cannot reach the
    /// server (see [`Session::restart`]).
    features: Vec<u8>,
    /// A SASL `<success/>` came since the current stream started.
    authenticated: bool,
    handshake_deadline: Option<Instant>,
    /// When the session last had no request held.
    idle_since: Option<Instant>,
    responses: VecDeque<(RequestHandle, Response)>,
    commands: VecDeque<Command>,
    ended: bool,
}

impl Session {
    /// Session creation (XEP-0124 §7.1). The creation response comes out
    /// of [`Session::poll_response`] with the backend's stream features.
    pub fn create(
        now: Instant,
        settings: Settings,
        sid: String,
        handle: RequestHandle,
        body: &Body,
        _raw: &[u8],
    ) -> Result<Session, Response> {
        let (Some(rid), Some(domain)) = (body.rid, body.to.clone().filter(|t| !t.is_empty()))
        else {
            return Err(terminate_response(Condition::BadRequest));
        };
        let wait = Duration::from_secs(body.wait.unwrap_or(u64::MAX)).min(settings.max_wait);
        let hold = body.hold.unwrap_or(1).min(settings.max_hold);
        let inactivity = body
            .inactivity
            .map_or(settings.default_inactivity, Duration::from_secs)
            .clamp(settings.default_inactivity, settings.max_inactivity);
        let mut session = Session {
            sid,
            domain: domain.clone(),
            client_from: body.from.clone(),
            lang: body.lang.clone().unwrap_or_else(|| "en".into()),
            wait,
            hold,
            inactivity,
            next_rid: rid.saturating_add(1),
            queued: BTreeMap::new(),
            held: VecDeque::new(),
            cache: VecDeque::new(),
            creation: Some(Held {
                rid,
                handle,
                deadline: now + wait,
            }),
            backend: None,
            pending: Vec::new(),
            early: Vec::new(),
            features: Vec::new(),
            authenticated: false,
            handshake_deadline: Some(now + settings.handshake_timeout),
            idle_since: None,
            responses: VecDeque::new(),
            commands: VecDeque::new(),
            ended: false,
            settings,
        };
        session.commands.push_back(Command::Connect {
            stream: StreamId(0),
            domain,
        });
        Ok(session)
    }

    pub fn sid(&self) -> &str {
        &self.sid
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn lang(&self) -> &str {
        &self.lang
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    pub fn poll_response(&mut self) -> Option<(RequestHandle, Response)> {
        self.responses.pop_front()
    }

    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    pub fn backend_output(&self, _stream: StreamId) -> &[u8] {
        self.backend.as_ref().map_or(&[], |b| b.output())
    }

    pub fn consume_backend_output(&mut self, _stream: StreamId, n: usize) {
        if let Some(b) = self.backend.as_mut() {
            b.consume_output(n);
        }
    }

    /// Back-pressure: stop reading the server while this much waits.
    pub fn wants_backend_input(&self, _stream: StreamId) -> bool {
        self.pending.len() < self.settings.max_pending_bytes
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        let held = self.held.iter().map(|h| h.deadline);
        let creation = self.creation.as_ref().map(|c| c.deadline);
        let idle = self.idle_since.map(|t| t + self.inactivity);
        held.chain(creation)
            .chain(idle)
            .chain(self.handshake_deadline)
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ended {
            return;
        }
        if self.handshake_deadline.is_some_and(|d| now >= d) {
            return self.terminate(
                Condition::RemoteConnectionFailed,
                "backend handshake timed out",
            );
        }
        if self.idle_since.is_some_and(|t| now >= t + self.inactivity) {
            // No `</stream:stream>`: the server may resume (XEP-0198).
            return self.end_quietly("inactivity timeout");
        }
        while self.held.front().is_some_and(|h| now >= h.deadline) {
            self.answer_oldest(now);
        }
        if self.creation.as_ref().is_some_and(|c| now >= c.deadline) {
            if let Some(creation) = self.creation.take() {
                let body = self.creation_body(&[]);
                self.respond(creation.rid, creation.handle, body);
                self.note_idle(now);
            }
        }
    }

    /// A request in this session (XEP-0124 §8-§14).
    pub fn handle_request(&mut self, now: Instant, handle: RequestHandle, body: &Body, raw: &[u8]) {
        if self.ended {
            self.responses
                .push_back((handle, terminate_response(Condition::ItemNotFound)));
            return;
        }
        let Some(rid) = body.rid else {
            return self.refuse(handle, Condition::BadRequest, "request without rid");
        };
        if rid < self.next_rid {
            // A repeat: the cached response, byte for byte.
            return match self.cache.iter().find(|(r, _)| *r == rid) {
                Some((_, cached)) => {
                    let body = cached.clone();
                    self.responses
                        .push_back((handle, Response { status: 200, body }));
                }
                None => self.refuse(
                    handle,
                    Condition::ItemNotFound,
                    "rid repeated beyond the cache",
                ),
            };
        }
        if rid > self.next_rid + u64::from(self.hold) {
            return self.refuse(handle, Condition::ItemNotFound, "rid outside the window");
        }
        let payload = raw.get(body.payload.clone()).unwrap_or_default().to_vec();
        self.queued.insert(
            rid,
            Queued {
                handle,
                body: body.clone(),
                payload,
            },
        );
        while let Some(next) = self.queued.remove(&self.next_rid) {
            let rid = self.next_rid;
            self.next_rid += 1;
            self.take(now, rid, next);
            if self.ended {
                return;
            }
        }
    }

    /// The client closed the connection holding `handle` (a page reload).
    pub fn request_gone(&mut self, handle: RequestHandle) {
        self.held.retain(|h| h.handle != handle);
        self.queued.retain(|_, q| q.handle != handle);
    }

    pub fn backend_connected(
        &mut self,
        _now: Instant,
        _stream: StreamId,
        settings: backend::Settings,
    ) {
        if !self.ended {
            self.backend = Some(backend::Stream::new(settings));
        }
    }

    pub fn backend_failed(&mut self, _stream: StreamId, why: String) {
        if !self.ended {
            self.terminate(Condition::RemoteConnectionFailed, &why);
        }
    }

    pub fn handle_backend_eof(&mut self, _stream: StreamId) {
        if !self.ended {
            self.terminate(
                Condition::RemoteConnectionFailed,
                "server closed the connection",
            );
        }
    }

    pub fn handle_backend_input(&mut self, now: Instant, _stream: StreamId, bytes: &[u8]) {
        let Some(stream) = self.backend.as_mut() else {
            return;
        };
        if let Err(e) = stream.handle_input(bytes) {
            return self.terminate(Condition::RemoteConnectionFailed, &e.to_string());
        }
        loop {
            let Some(stream) = self.backend.as_mut() else {
                return;
            };
            let event = match stream.poll_event() {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(e) => {
                    let why = e.to_string();
                    return self.terminate(Condition::RemoteConnectionFailed, &why);
                }
            };
            match event {
                backend::Event::Features(bytes, info) => {
                    self.features.clear();
                    xml::splice_namespaces(bytes, &info, xml::NS_CLIENT, &mut self.features);
                    self.pending.extend_from_slice(&self.features);
                    self.authenticated = false;
                    self.handshake_deadline = None;
                    if !self.early.is_empty() {
                        let early = std::mem::take(&mut self.early);
                        self.send_to_backend(&early);
                    }
                }
                backend::Event::Element(bytes, info) => {
                    self.authenticated |= info.local_name(bytes) == "success"
                        && info.namespace(bytes) == Some(NS_SASL);
                    xml::splice_namespaces(bytes, &info, xml::NS_CLIENT, &mut self.pending);
                }
                backend::Event::StreamError {
                    element,
                    info,
                    condition,
                } => {
                    let mut error = Vec::new();
                    xml::splice_namespaces(element, &info, xml::NS_CLIENT, &mut error);
                    self.backend = None;
                    return self.finish(
                        Some(Condition::RemoteStreamError),
                        &error,
                        &format!("server stream error: {condition}"),
                    );
                }
                backend::Event::Closed => {
                    self.backend = None;
                    return self.finish(None, b"", "server closed the stream");
                }
            }
        }
        self.flush(now);
    }

    /// Take one request, in rid order.
    fn take(&mut self, now: Instant, rid: u64, request: Queued) {
        self.idle_since = None;
        let body = &request.body;
        if body.terminate {
            // XEP-0124 §13: the payload first, then a clean close.
            self.send_to_backend(&request.payload);
            if let Some(stream) = self.backend.as_mut() {
                stream.close();
            }
            self.respond(rid, request.handle, terminate_body(None, b""));
            return self.finish(None, b"", "client terminated");
        }
        if body.restart {
            if let Err(why) = self.restart() {
                return self.terminate(Condition::RemoteConnectionFailed, &why);
            }
        } else if !request.payload.is_empty() {
            self.send_to_backend(&request.payload);
        }
        if let Some(pause) = body.pause {
            // XEP-0124 §10: answer everything; inactivity becomes the pause.
            self.inactivity = Duration::from_secs(pause).min(self.settings.max_pause);
            self.respond(rid, request.handle, self.plain_body(&[]));
            while !self.held.is_empty() {
                self.answer_oldest(now);
            }
            self.note_idle(now);
            return;
        }
        self.held.push_back(Held {
            rid,
            handle: request.handle,
            deadline: now + self.wait,
        });
        while self.held.len() > self.hold as usize {
            self.answer_oldest(now);
        }
        self.flush(now);
    }

    /// XEP-0206 §5: payload ignored, a new stream to the server. A server
    /// takes a new stream header only after STARTTLS or SASL success; some
    /// clients (node-xmpp-client) also restart right after creation, which
    /// in-server BOSH allows. Such a restart is answered with the current
    /// stream's features instead of reaching the server.
    fn restart(&mut self) -> Result<(), String> {
        let Some(stream) = self.backend.as_mut().filter(|b| b.is_ready()) else {
            return Err("restart before the stream was up".into());
        };
        if self.authenticated {
            stream.restart(&self.lang).map_err(|e| e.to_string())
        } else {
            self.pending.extend_from_slice(&self.features);
            Ok(())
        }
    }

    /// Give waiting server data to the oldest held request (or to the
    /// creation request, with the session attributes).
    fn flush(&mut self, now: Instant) {
        if self.pending.is_empty() {
            return;
        }
        if let Some(creation) = self.creation.take() {
            let pending = std::mem::take(&mut self.pending);
            let body = self.creation_body(&pending);
            self.respond(creation.rid, creation.handle, body);
            self.note_idle(now);
            return;
        }
        if !self.held.is_empty() {
            self.answer_oldest(now);
        }
    }

    fn answer_oldest(&mut self, now: Instant) {
        let Some(held) = self.held.pop_front() else {
            return;
        };
        let pending = std::mem::take(&mut self.pending);
        let body = self.plain_body(&pending);
        self.respond(held.rid, held.handle, body);
        self.note_idle(now);
    }

    fn note_idle(&mut self, now: Instant) {
        if self.held.is_empty() && self.creation.is_none() {
            self.idle_since = Some(now);
        }
    }

    fn respond(&mut self, rid: u64, handle: RequestHandle, body: Vec<u8>) {
        self.cache.push_back((rid, body.clone()));
        while self.cache.len() > self.hold as usize + 1 {
            self.cache.pop_front();
        }
        self.responses
            .push_back((handle, Response { status: 200, body }));
    }

    fn plain_body(&self, payload: &[u8]) -> Vec<u8> {
        wrap(
            format!(
                "<body xmlns='{NS_HTTPBIND}' xmlns:stream='{}'",
                xml::NS_STREAMS
            ),
            payload,
        )
    }

    /// XEP-0124 §7.1 and XEP-0206 §6: everything the client learns once.
    fn creation_body(&self, payload: &[u8]) -> Vec<u8> {
        let authid = self
            .backend
            .as_ref()
            .and_then(|b| b.server_header())
            .and_then(|h| h.id.clone())
            .map(|id| format!(" authid='{}'", escape(&id)))
            .unwrap_or_default();
        let to = self
            .client_from
            .as_deref()
            .map(|from| format!(" to='{}'", escape(from)))
            .unwrap_or_default();
        let head = format!(
            "<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}' xmlns:stream='{}' sid='{}' wait='{}' hold='{}' requests='{}' inactivity='{}' polling='{}' maxpause='{}' ver='1.11' from='{}' xmpp:version='1.0' secure='{}'{authid}{to}",
            xml::NS_STREAMS,
            escape(&self.sid),
            self.wait.as_secs(),
            self.hold,
            self.hold + 1,
            self.inactivity.as_secs(),
            self.settings.polling.as_secs(),
            self.settings.max_pause.as_secs(),
            escape(&self.domain),
            // XEP-0124 §7.1: whether our hop to the server is encrypted.
            self.backend.as_ref().is_some_and(|b| b.is_tls()),
        );
        wrap(head, payload)
    }

    fn send_to_backend(&mut self, payload: &[u8]) {
        if payload.is_empty() {
            return;
        }
        match self.backend.as_mut().filter(|b| b.is_ready()) {
            Some(stream) => {
                if let Err(e) = stream.send(payload) {
                    let why = e.to_string();
                    self.terminate(Condition::RemoteConnectionFailed, &why);
                }
            }
            None if self.early.len() + payload.len() <= self.settings.max_pending_bytes => {
                self.early.extend_from_slice(payload);
            }
            None => self.terminate(
                Condition::PolicyViolation,
                "too much data before the stream was up",
            ),
        }
    }

    fn refuse(&mut self, handle: RequestHandle, condition: Condition, why: &str) {
        self.responses
            .push_back((handle, terminate_response(condition)));
        self.terminate(condition, why);
    }

    /// End with a condition: every held request gets the terminate body;
    /// the backend is dropped without a stream close.
    fn terminate(&mut self, condition: Condition, why: &str) {
        self.backend = None;
        self.finish(Some(condition), b"", why);
    }

    /// Inactivity: nothing to answer, the backend left resumable.
    fn end_quietly(&mut self, why: &str) {
        self.backend = None;
        self.finish(None, b"", why);
    }

    fn finish(&mut self, condition: Option<Condition>, content: &[u8], why: &str) {
        if self.ended {
            return;
        }
        self.ended = true;
        let body = terminate_body(condition, content);
        let waiting = self.creation.take().into_iter().chain(self.held.drain(..));
        let waiting: Vec<Held> = waiting.collect();
        for held in waiting {
            self.responses.push_back((
                held.handle,
                Response {
                    status: 200,
                    body: body.clone(),
                },
            ));
        }
        for (_, queued) in std::mem::take(&mut self.queued) {
            self.responses.push_back((
                queued.handle,
                Response {
                    status: 200,
                    body: body.clone(),
                },
            ));
        }
        if self.backend.is_some() {
            self.commands.push_back(Command::CloseBackend {
                stream: StreamId(0),
            });
        }
        self.commands.push_back(Command::End(why.to_string()));
    }
}

fn wrap(mut head: String, payload: &[u8]) -> Vec<u8> {
    if payload.is_empty() {
        head.push_str("/>");
        return head.into_bytes();
    }
    head.push('>');
    let mut out = head.into_bytes();
    out.extend_from_slice(payload);
    out.extend_from_slice(b"</body>");
    out
}

fn escape(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('\'', "&apos;")
        .replace('<', "&lt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bosh::parse_body;
    use std::sync::Arc;

    const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='srv1' version='1.0'>";
    const FEATURES: &str = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>";
    const S0: StreamId = StreamId(0);

    fn limits() -> xml::Limits {
        xml::Limits {
            max_depth: 32,
            max_attributes: 64,
            max_element_bytes: 64 * 1024,
        }
    }

    fn settings() -> Settings {
        Settings {
            max_wait: Duration::from_secs(60),
            max_hold: 1,
            default_inactivity: Duration::from_secs(70),
            max_inactivity: Duration::from_secs(160),
            polling: Duration::from_secs(2),
            max_pause: Duration::from_secs(120),
            handshake_timeout: Duration::from_secs(15),
            max_pending_bytes: 64 * 1024,
            xml: limits(),
        }
    }

    fn backend_settings() -> backend::Settings {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        backend::Settings {
            domain: "localhost".into(),
            lang: "en".into(),
            tls: Arc::new(tls),
            plaintext_allowed: true,
            xml: limits(),
        }
    }

    fn request(s: &mut Session, now: Instant, handle: RequestHandle, text: &str) {
        let body = parse_body(text.as_bytes(), limits()).unwrap();
        s.handle_request(now, handle, &body, text.as_bytes());
    }

    fn req(rid: u64, attrs: &str, payload: &str) -> String {
        format!("<body xmlns='{NS_HTTPBIND}' rid='{rid}' sid='sid1' {attrs}>{payload}</body>")
    }

    fn backend_text(s: &mut Session) -> String {
        let out = s.backend_output(S0).to_vec();
        s.consume_backend_output(S0, out.len());
        String::from_utf8(out).unwrap()
    }

    fn responses(s: &mut Session) -> Vec<(RequestHandle, String)> {
        std::iter::from_fn(|| s.poll_response())
            .map(|(h, r)| (h, String::from_utf8(r.body).unwrap()))
            .collect()
    }

    /// A session through creation, backend connect and features.
    fn ready(now: Instant) -> Session {
        let create = format!("<body xmlns='{NS_HTTPBIND}' rid='10' to='localhost' wait='30' hold='1' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'/>");
        let body = parse_body(create.as_bytes(), limits()).unwrap();
        let mut s =
            Session::create(now, settings(), "sid1".into(), 1, &body, create.as_bytes()).unwrap();
        assert_eq!(
            s.poll_command(),
            Some(Command::Connect {
                stream: S0,
                domain: "localhost".into()
            })
        );
        s.backend_connected(now, S0, backend_settings());
        assert!(backend_text(&mut s).contains("to='localhost'"));
        assert!(
            responses(&mut s).is_empty(),
            "creation waits for the features"
        );
        s.handle_backend_input(now, S0, format!("{HEADER}{FEATURES}").as_bytes());
        s
    }

    #[test]
    fn creation_is_answered_with_the_features_and_session_attributes() {
        let now = Instant::now();
        let mut s = ready(now);
        let got = responses(&mut s);
        assert_eq!(got.len(), 1);
        let (handle, body) = &got[0];
        assert_eq!(*handle, 1);
        for attr in [
            "sid='sid1'",
            "wait='30'",
            "hold='1'",
            "requests='2'",
            "inactivity='70'",
            "polling='2'",
            "maxpause='120'",
            "from='localhost'",
            "xmpp:version='1.0'",
            "authid='srv1'",
            "secure='false'",
        ] {
            assert!(body.contains(attr), "{attr} missing: {body}");
        }
        assert!(body.contains("<stream:features"), "{body}");
    }

    #[test]
    fn the_clients_from_is_echoed_as_to() {
        let now = Instant::now();
        let create = format!("<body xmlns='{NS_HTTPBIND}' rid='10' to='localhost' from='alice@localhost' wait='30' hold='1'/>");
        let body = parse_body(create.as_bytes(), limits()).unwrap();
        let mut s =
            Session::create(now, settings(), "sid1".into(), 1, &body, create.as_bytes()).unwrap();
        s.poll_command();
        s.backend_connected(now, S0, backend_settings());
        s.handle_backend_input(now, S0, format!("{HEADER}{FEATURES}").as_bytes());
        assert!(responses(&mut s)[0].1.contains("to='alice@localhost'"));
    }

    #[test]
    fn a_held_request_is_answered_empty_after_wait() {
        let now = Instant::now();
        let mut s = ready(now);
        responses(&mut s);
        request(&mut s, now, 2, &req(11, "", ""));
        assert!(responses(&mut s).is_empty());
        assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(30)));
        s.handle_timeout(now + Duration::from_secs(30));
        let got = responses(&mut s);
        assert_eq!(got.len(), 1);
        assert!(
            got[0].1.ends_with("/>") && !got[0].1.contains("type="),
            "{got:?}"
        );
    }

    #[test]
    fn server_stanzas_answer_the_held_request_with_jabber_client_declared() {
        let now = Instant::now();
        let mut s = ready(now);
        responses(&mut s);
        request(&mut s, now, 2, &req(11, "", ""));
        s.handle_backend_input(
            now,
            S0,
            b"<message from='b@localhost'><body>hi</body></message>",
        );
        let got = responses(&mut s);
        assert_eq!(got[0].0, 2);
        assert!(
            got[0]
                .1
                .contains("<message xmlns='jabber:client' from='b@localhost'>"),
            "{got:?}"
        );
    }

    #[test]
    fn early_rids_wait_for_the_gap_and_payloads_keep_rid_order() {
        let now = Instant::now();
        let mut s = ready(now);
        responses(&mut s);
        request(&mut s, now, 3, &req(12, "", "<presence id='second'/>"));
        assert_eq!(backend_text(&mut s), "", "rid 12 waits for 11");
        request(&mut s, now, 2, &req(11, "", "<presence id='first'/>"));
        assert_eq!(
            backend_text(&mut s),
            "<presence id='first'/><presence id='second'/>"
        );
        // With hold=1 the first of the two held requests was answered.
        assert_eq!(
            responses(&mut s).iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![2]
        );
    }

    #[test]
    fn inactivity_ends_the_session_without_closing_the_server_stream() {
        let now = Instant::now();
        let mut s = ready(now);
        responses(&mut s);
        assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(70)));
        s.handle_timeout(now + Duration::from_secs(70));
        assert!(s.is_ended());
        assert_eq!(
            s.poll_command(),
            Some(Command::End("inactivity timeout".into()))
        );
        assert!(!backend_text(&mut s).contains("</stream:stream>"));
    }

    #[test]
    fn pause_answers_held_requests_and_stretches_inactivity() {
        let now = Instant::now();
        let mut s = ready(now);
        responses(&mut s);
        request(&mut s, now, 2, &req(11, "", ""));
        request(&mut s, now, 3, &req(12, "pause='100'", ""));
        assert_eq!(responses(&mut s).len(), 2);
        assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(100)));
    }

    #[test]
    fn terminate_sends_the_payload_then_closes_cleanly() {
        let now = Instant::now();
        let mut s = ready(now);
        responses(&mut s);
        request(
            &mut s,
            now,
            2,
            &req(11, "type='terminate'", "<presence type='unavailable'/>"),
        );
        assert_eq!(
            backend_text(&mut s),
            "<presence type='unavailable'/></stream:stream>"
        );
        let got = responses(&mut s);
        assert!(got[0].1.contains("type='terminate'"), "{got:?}");
        assert_eq!(s.poll_command(), Some(Command::CloseBackend { stream: S0 }));
    }

    #[test]
    fn a_restart_before_sasl_success_is_answered_with_the_features() {
        let now = Instant::now();
        let mut s = ready(now);
        responses(&mut s);
        request(
            &mut s,
            now,
            2,
            &req(11, "xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh'", ""),
        );
        assert_eq!(
            backend_text(&mut s),
            "",
            "no new stream header for the server"
        );
        assert!(responses(&mut s)[0].1.contains("<stream:features"));
        // After SASL success the restart does reach the server.
        request(&mut s, now, 3, &req(12, "", ""));
        s.handle_backend_input(
            now,
            S0,
            b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
        );
        responses(&mut s);
        request(
            &mut s,
            now,
            4,
            &req(13, "xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh'", ""),
        );
        assert!(backend_text(&mut s).contains("<stream:stream"));
    }

    #[test]
    fn repeats_get_the_cached_response_and_far_rids_end_the_session() {
        let now = Instant::now();
        let mut s = ready(now);
        let creation = responses(&mut s).remove(0).1;
        request(&mut s, now, 9, &req(10, "", ""));
        assert_eq!(responses(&mut s), vec![(9, creation)]);
        request(&mut s, now, 8, &req(40, "", ""));
        let got = responses(&mut s);
        assert!(got[0].1.contains("item-not-found"), "{got:?}");
        assert!(s.is_ended());
    }

    #[test]
    fn a_gone_request_is_not_answered() {
        let now = Instant::now();
        let mut s = ready(now);
        responses(&mut s);
        request(&mut s, now, 2, &req(11, "", ""));
        s.request_gone(2);
        s.handle_backend_input(now, S0, b"<message><body>later</body></message>");
        assert!(responses(&mut s).is_empty(), "kept for the next request");
        request(&mut s, now, 3, &req(12, "", ""));
        assert!(responses(&mut s)[0].1.contains("later"));
    }
}
