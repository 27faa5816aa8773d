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
        if rid >= self.next_rid + u64::from(self.hold) + 1 {
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
        let head = format!(
            "<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}' xmlns:stream='{}' sid='{}' wait='{}' hold='{}' requests='{}' inactivity='{}' polling='{}' maxpause='{}' ver='1.11' from='{}' xmpp:version='1.0' secure='true'{authid}",
            xml::NS_STREAMS,
            escape(&self.sid),
            self.wait.as_secs(),
            self.hold,
            self.hold + 1,
            self.inactivity.as_secs(),
            self.settings.polling.as_secs(),
            self.settings.max_pause.as_secs(),
            escape(&self.domain),
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
