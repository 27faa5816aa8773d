//! One accepted client connection, sans-IO: its HTTP phase (requests read,
//! routed and answered) or its WebSocket session, and the backend link the
//! session uses. The endpoint owns it and lends it the shared parts for
//! each input.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use log::{debug, info};

use super::accounting::Refusal;
use super::http_policy::{cors_origin, jsonp, origin_allowed, safe_identifier};
use super::link::{Link, Progress};
use super::{Key, Owner, Shared, SocketId};
use crate::bosh;
use crate::http;
use crate::ids;
use crate::session::{Command, End, Session};
use crate::websocket;
use crate::wheel::TimerId;

enum Phase {
    Http(Box<HttpPhase>),
    WebSocket(Box<Session>),
}

struct HttpPhase {
    reader: http::RequestReader,
    /// Deadline for the request being read, or for the next one to start.
    deadline: Instant,
    close_after_write: bool,
    /// The BOSH session holding this connection's request; no further
    /// request is read until it answers.
    awaiting: Option<Key>,
    /// `Access-Control-Allow-Origin` for the BOSH response, if any.
    cors_origin: Option<String>,
    /// node-xmpp-bosh's JSONP: wrap the response in a call to this.
    jsonp: Option<String>,
}

/// What reading the next buffered request gave.
pub(super) enum Request {
    /// Nothing to do now: more bytes are needed, a BOSH session holds the
    /// previous request, or the connection is closing.
    None,
    /// A request answered here (status page, CORS preflight, refusals,
    /// the WebSocket upgrade).
    Answered,
    /// A BOSH `<body/>` for the endpoint to take to its session.
    Bosh(Vec<u8>),
}

pub(super) struct Client {
    pub key: Key,
    pub socket: SocketId,
    /// Counts sessions since start, for log lines.
    number: u64,
    pub peer: SocketAddr,
    /// Whom sessions are counted for: the peer, or the client a trusted
    /// proxy forwards for (its last `X-Forwarded-For` entry).
    pub address: IpAddr,
    started: Instant,
    /// Unconsumed client bytes in the HTTP phase.
    input: Vec<u8>,
    /// Raw bytes for the client ahead of the session's frames (HTTP
    /// responses, the 101 of the upgrade).
    output: Vec<u8>,
    phase: Phase,
    backend: Option<Link>,
    /// Set once a close is decided: flush, then finish by this deadline.
    closing: Option<(End, Instant)>,
    /// Buffered requests are left to read in the connection's next turn.
    pub deferred: bool,
    /// Since when output has waited without the socket taking a byte.
    stalled_since: Option<Instant>,
    write_timeout: std::time::Duration,
    /// The WebSocket session counts against the session limits.
    pub session_counted: bool,
    pub timer: Option<(TimerId, Instant)>,
    /// Bytes last reported to the accounting.
    pub buffered: usize,
}

impl Client {
    pub fn new(key: Key, socket: SocketId, number: u64, peer: SocketAddr, shared: &Shared) -> Self {
        Client {
            key,
            socket,
            number,
            peer,
            address: peer.ip(),
            started: shared.now,
            input: Vec::new(),
            output: Vec::new(),
            phase: Phase::Http(Box::new(HttpPhase {
                reader: http::RequestReader::new(shared.settings.http),
                deadline: shared.now + shared.settings.http_read_timeout,
                close_after_write: false,
                awaiting: None,
                cors_origin: None,
                jsonp: None,
            })),
            backend: None,
            closing: None,
            deferred: false,
            stalled_since: None,
            write_timeout: shared.settings.http_write_timeout,
            session_counted: false,
            timer: None,
            buffered: 0,
        }
    }

    /// A connection over a limit: answered 503, then closed.
    pub fn refuse(&mut self, refusal: Refusal) {
        let body = format!("{refusal} reached\n");
        self.answer_and_close(http::Status::SERVICE_UNAVAILABLE, body.as_bytes(), &[]);
    }

    /// The backend socket, connecting or connected.
    pub fn backend_socket(&self) -> Option<SocketId> {
        self.backend.as_ref().and_then(Link::socket)
    }

    pub fn link_mut(&mut self) -> Option<&mut Link> {
        self.backend.as_mut()
    }

    /// The WebSocket session, once upgraded.
    pub fn is_websocket(&self) -> bool {
        matches!(self.phase, Phase::WebSocket(_))
    }

    /// switchboard is going down: a WebSocket session says so and closes.
    pub fn shut_down(&mut self) {
        if let Phase::WebSocket(session) = &mut self.phase {
            session.shut_down();
        }
    }

    /// Log the end of a WebSocket session with its reason (a connection
    /// that upgraded but never opened a session is not one).
    pub fn log_end(&self, reason: &str, now: Instant) {
        if let (Phase::WebSocket(session), true) = (&self.phase, self.session_counted) {
            info!(
                "session {} end: {} (websocket, domain {}, {} ms)",
                self.number,
                reason,
                session.domain(),
                now.duration_since(self.started).as_millis()
            );
        } else {
            debug!("http connection from {} closed: {}", self.peer, reason);
        }
    }

    // --- what the shell writes and reads

    /// Bytes for the client socket: raw HTTP first, then WebSocket frames.
    pub fn client_output(&self) -> &[u8] {
        match &self.phase {
            _ if !self.output.is_empty() => &self.output,
            Phase::WebSocket(session) => session.client_output(),
            Phase::Http(_) => &[],
        }
    }

    pub fn consume_client_output(&mut self, n: usize) {
        if n > 0 {
            self.stalled_since = None;
        }
        if !self.output.is_empty() {
            self.output.drain(..n.min(self.output.len()));
            if self.output.is_empty() {
                self.output = Vec::new();
            }
        } else if let Phase::WebSocket(session) = &mut self.phase {
            session.consume_client_output(n);
        }
    }

    pub fn backend_output(&self) -> &[u8] {
        match &self.phase {
            Phase::WebSocket(session) if self.backend_connected() => session.backend_output(),
            _ => &[],
        }
    }

    pub fn consume_backend_output(&mut self, n: usize) {
        if let Phase::WebSocket(session) = &mut self.phase {
            session.consume_backend_output(n);
        }
    }

    fn backend_connected(&self) -> bool {
        self.backend
            .as_ref()
            .is_some_and(|l| l.connected().is_some())
    }

    /// Back-pressure: stop reading a client whose backend output is full.
    pub fn wants_client_read(&self, shared: &Shared) -> bool {
        if self.closing.is_some() {
            return false;
        }
        let settings = &shared.settings;
        match &self.phase {
            Phase::Http(http) => {
                !http.close_after_write
                    && self.output.len() < settings.max_buffer_bytes
                    && self.input.len()
                        < settings.http.max_head_bytes + settings.http.max_body_bytes
            }
            Phase::WebSocket(session) => session.wants_client_input(),
        }
    }

    /// Back-pressure: a client that does not read stops the server's reads.
    pub fn wants_backend_read(&self) -> bool {
        match &self.phase {
            Phase::WebSocket(session) => self.backend_connected() && session.wants_backend_input(),
            Phase::Http(_) => false,
        }
    }

    /// Bytes held for either side, for the accounting.
    pub fn buffered_bytes(&self) -> usize {
        let session = match &self.phase {
            Phase::WebSocket(session) => session.buffered_bytes(),
            Phase::Http(_) => 0,
        };
        self.input.len() + self.output.len() + session
    }

    // --- inputs

    /// Bytes read from the client socket. In the HTTP phase they wait for
    /// [`Client::next_request`]; a request once begun must be whole
    /// within the read timeout.
    pub fn handle_client_input(&mut self, shared: &Shared, bytes: &[u8]) {
        match &mut self.phase {
            Phase::Http(_) => {
                let begun = self.input.is_empty() && !bytes.is_empty();
                self.input.extend_from_slice(bytes);
                if begun {
                    self.rearm_http(shared);
                }
            }
            Phase::WebSocket(session) => session.handle_client_input(shared.now, bytes),
        }
    }

    /// The HTTP deadline: for the rest of a request begun, else for the
    /// next one to begin.
    fn rearm_http(&mut self, shared: &Shared) {
        if let Phase::Http(http) = &mut self.phase {
            let settings = &shared.settings;
            let wait = if self.input.is_empty() {
                settings.http_idle_timeout
            } else {
                settings.http_read_timeout
            };
            http.deadline = shared.now + wait;
        }
    }

    /// Keep the write timeout's clock: it runs while output waits.
    pub fn note_output(&mut self, now: Instant) {
        if self.client_output().is_empty() {
            self.stalled_since = None;
        } else {
            self.stalled_since.get_or_insert(now);
        }
    }

    /// The client's side ended (end of file, reset, a failed write).
    pub fn handle_client_eof(&mut self, now: Instant) {
        match &mut self.phase {
            Phase::WebSocket(session) => session.handle_client_eof(),
            Phase::Http(_) => {
                self.closing = Some((End::ClientVanished, now));
                self.output = Vec::new();
            }
        }
    }

    pub fn handle_backend_input(&mut self, bytes: &[u8]) {
        if let Phase::WebSocket(session) = &mut self.phase {
            session.handle_backend_input(bytes);
        }
    }

    pub fn handle_backend_eof(&mut self) {
        if let Phase::WebSocket(session) = &mut self.phase {
            session.handle_backend_eof();
        }
    }

    /// Tell the session what became of its backend link.
    pub fn apply(&mut self, progress: Progress, shared: &Shared) {
        let Phase::WebSocket(session) = &mut self.phase else {
            return;
        };
        match progress {
            Progress::Pending => {}
            Progress::Connected(peer) => {
                let settings =
                    shared
                        .settings
                        .backend_settings(session.domain(), session.lang(), peer);
                session.backend_connected(shared.now, settings);
            }
            Progress::Failed(why) => session.backend_failed(why),
        }
    }

    // --- time

    /// The earliest deadline among this connection's timers.
    pub fn next_deadline(&self) -> Option<Instant> {
        let phase = match &self.phase {
            // A held BOSH request is the session's to time (`wait`).
            Phase::Http(http) if http.awaiting.is_some() => None,
            Phase::Http(http) => Some(http.deadline),
            Phase::WebSocket(session) => session.poll_timeout(),
        };
        let connect = self.backend.as_ref().and_then(Link::deadline);
        let stalled = self.stalled_since.map(|t| t + self.write_timeout);
        [phase, connect, self.closing.as_ref().map(|c| c.1), stalled]
            .into_iter()
            .flatten()
            .min()
    }

    /// `Some(reason)` finishes the connection.
    pub fn handle_timeout(&mut self, shared: &mut Shared) -> Option<String> {
        let now = shared.now;
        if let Some((end, deadline)) = &self.closing {
            if now >= *deadline {
                return Some(format!("{end} (close not flushed in time)"));
            }
        }
        if self
            .stalled_since
            .is_some_and(|t| now >= t + self.write_timeout)
        {
            return Some(End::WriteTimeout.to_string());
        }
        if let Some(link) = self.backend.as_mut() {
            let progress = link.handle_timeout(shared);
            self.apply(progress, shared);
        }
        match &mut self.phase {
            Phase::Http(http) if http.awaiting.is_none() && now >= http.deadline => {
                Some("http read timeout".into())
            }
            Phase::Http(_) => None,
            Phase::WebSocket(session) => {
                session.handle_timeout(now);
                None
            }
        }
    }

    // --- settling after an input

    /// Carry out what the session asked for. `Some(reason)` finishes the
    /// connection at once.
    pub fn run_commands(&mut self, shared: &mut Shared) -> Option<String> {
        loop {
            let Phase::WebSocket(session) = &mut self.phase else {
                return None;
            };
            match session.poll_command()? {
                Command::Connect { domain } => {
                    if !shared.settings.serves(&domain) {
                        session.refuse(End::NotServed(domain));
                        continue;
                    }
                    if let Err(refusal) = shared.accounting.open_session(shared.now, self.address) {
                        shared
                            .accounting
                            .log_refusal(shared.now, refusal, self.address);
                        session.refuse(End::Refused(refusal.key()));
                        continue;
                    }
                    self.session_counted = true;
                    info!(
                        "session {} start: websocket from {} to {domain}",
                        self.number, self.address
                    );
                    let owner = Owner::WsBackend(self.key);
                    let (link, progress) = Link::start(&domain, None, owner, shared);
                    self.backend = Some(link);
                    self.apply(progress, shared);
                }
                Command::Close(end) => {
                    shared.log_end(session.domain(), &end);
                    let linger = shared.now + shared.settings.linger;
                    self.closing = Some((end, linger));
                }
                Command::Drop(end) => {
                    shared.log_end(session.domain(), &end);
                    return Some(end.to_string());
                }
            }
        }
    }

    /// A close that is done: everything flushed, or nothing more to say.
    pub fn finished(&self) -> Option<String> {
        if let Some((end, _)) = &self.closing {
            let flushed = self.client_output().is_empty() && self.backend_output().is_empty();
            return flushed.then(|| end.to_string());
        }
        match &self.phase {
            // Not while a BOSH session holds its request: the response is
            // still to come.
            Phase::Http(http)
                if http.close_after_write && self.output.is_empty() && http.awaiting.is_none() =>
            {
                Some("response sent, connection close".into())
            }
            _ => None,
        }
    }

    // --- HTTP

    /// Read and route the next buffered request.
    pub fn next_request(&mut self, shared: &Shared) -> Request {
        if self.closing.is_some() {
            return Request::None;
        }
        let Phase::Http(http) = &mut self.phase else {
            return Request::None;
        };
        if http.close_after_write || http.awaiting.is_some() {
            return Request::None;
        }
        let request = match http.reader.read(&self.input) {
            Ok(Some(request)) => request,
            Ok(None) => return Request::None,
            Err(e) => {
                self.answer_and_close(e.status(), e.to_string().as_bytes(), &[]);
                return Request::Answered;
            }
        };
        if !request.keep_alive {
            http.close_after_write = true;
        }
        let answer = self.route(&request, shared);
        self.input.drain(..request.len);
        self.rearm_http(shared);
        if let Phase::WebSocket(session) = &mut self.phase {
            let rest = std::mem::take(&mut self.input);
            if !rest.is_empty() {
                session.handle_client_input(shared.now, &rest);
            }
        }
        if self.input.is_empty() {
            self.input = Vec::new();
        }
        answer
    }

    /// Whether a request may be waiting in the buffered input.
    pub fn has_input(&self) -> bool {
        matches!(self.phase, Phase::Http(_)) && !self.input.is_empty()
    }

    fn route(&mut self, request: &http::Request, shared: &Shared) -> Request {
        if shared.settings.trusted_proxies.contains(&self.peer.ip()) {
            let forwarded = request.forwarded_for.as_deref().and_then(|list| {
                list.rsplit(',')
                    .next()
                    .and_then(|last| last.trim().parse().ok())
            });
            self.address = forwarded.unwrap_or(self.peer.ip());
        }
        if request.path == shared.settings.websocket_path {
            self.upgrade(request, shared);
            return Request::Answered;
        }
        if request.path == shared.settings.bosh_path {
            return self.bosh(request, shared);
        }
        let (status, body) = if request.path == "/" && request.method == http::Method::Get {
            (
                http::Status::OK,
                format!("switchboard {}\n", env!("CARGO_PKG_VERSION")),
            )
        } else {
            (http::Status::NOT_FOUND, "not found\n".to_string())
        };
        http::write_response(
            &mut self.output,
            status,
            Some("text/plain; charset=utf-8"),
            &[],
            body.as_bytes(),
            request.keep_alive,
        );
        Request::Answered
    }

    /// RFC 6455 §4.2 and RFC 7395 §3.1: the upgrade to an XMPP WebSocket.
    fn upgrade(&mut self, request: &http::Request, shared: &Shared) {
        let settings = &shared.settings;
        if !origin_allowed(&settings.websocket_origins, request.origin.as_deref()) {
            return self.answer_and_close(http::Status::FORBIDDEN, b"origin not allowed\n", &[]);
        }
        let upgrade = websocket::UpgradeRequest {
            is_get: request.method == http::Method::Get,
            upgrade: request.upgrade.as_deref(),
            connection: request.connection.as_deref(),
            key: request.sec_websocket_key.as_deref(),
            version: request.sec_websocket_version.as_deref(),
            protocols: request.sec_websocket_protocol.as_deref(),
        };
        let response = match websocket::accept(&upgrade) {
            Ok(response) => response,
            Err(refusal) => {
                let body = refusal.to_string();
                return self.answer_and_close(refusal.status(), body.as_bytes(), refusal.headers());
            }
        };
        let Ok(id) = ids::stream_id() else {
            return self.answer_and_close(
                http::Status::SERVICE_UNAVAILABLE,
                b"no random stream id\n",
                &[],
            );
        };
        self.output.extend_from_slice(&response);
        self.phase = Phase::WebSocket(Box::new(Session::new(
            settings.session.clone(),
            shared.now,
            id,
        )));
        debug!("websocket upgrade from {}", self.peer);
    }

    fn answer_and_close(&mut self, status: http::Status, body: &[u8], headers: &[(&str, &str)]) {
        http::write_response(
            &mut self.output,
            status,
            Some("text/plain"),
            headers,
            body,
            false,
        );
        if let Phase::Http(http) = &mut self.phase {
            http.close_after_write = true;
        }
    }

    /// XEP-0124 §4: a POST carries one `<body/>` for the endpoint to take
    /// to its session; OPTIONS is a CORS preflight.
    fn bosh(&mut self, request: &http::Request, shared: &Shared) -> Request {
        let Phase::Http(http) = &mut self.phase else {
            return Request::None;
        };
        let cors = cors_origin(&shared.settings.bosh_origins, request.origin.as_deref());
        match request.method {
            http::Method::Post => {
                let body = self.input.get(request.body.clone()).unwrap_or_default();
                http.cors_origin = cors;
                http.jsonp = None;
                return Request::Bosh(body.to_vec());
            }
            // For old clients (node-xmpp-bosh's extra): the body in `?data=`,
            // optionally answered as JSONP to `?callback=`.
            http::Method::Get => {
                let query = request.query.as_deref().unwrap_or_default();
                let callback = http::query_param(query, "callback")
                    .map(|name| String::from_utf8(name).unwrap_or_default());
                match (http::query_param(query, "data"), callback) {
                    (Some(body), callback) if callback.as_deref().is_none_or(safe_identifier) => {
                        http.cors_origin = cors;
                        http.jsonp = callback;
                        return Request::Bosh(body);
                    }
                    _ => http::write_response(
                        &mut self.output,
                        http::Status::BAD_REQUEST,
                        Some("text/plain"),
                        &[],
                        b"GET needs ?data= and a callback that is a plain identifier\n",
                        request.keep_alive,
                    ),
                }
            }
            http::Method::Options => {
                let mut headers = vec![
                    ("Access-Control-Allow-Methods", "POST, GET, OPTIONS"),
                    ("Access-Control-Allow-Headers", "Content-Type"),
                    ("Access-Control-Max-Age", "86400"),
                ];
                if let Some(origin) = cors.as_deref() {
                    headers.push(("Access-Control-Allow-Origin", origin));
                }
                http::write_response(
                    &mut self.output,
                    http::Status::NO_CONTENT,
                    None,
                    &headers,
                    b"",
                    request.keep_alive,
                );
            }
            _ => http::write_response(
                &mut self.output,
                http::Status::METHOD_NOT_ALLOWED,
                Some("text/plain"),
                &[("Allow", "POST, GET, OPTIONS")],
                b"BOSH takes POST (or GET with ?data=)\n",
                request.keep_alive,
            ),
        }
        Request::Answered
    }

    /// The BOSH session holding this connection's request.
    pub fn awaiting(&self) -> Option<Key> {
        match &self.phase {
            Phase::Http(http) => http.awaiting,
            Phase::WebSocket(_) => None,
        }
    }

    pub fn set_awaiting(&mut self, session: Option<Key>) {
        if let Phase::Http(http) = &mut self.phase {
            http.awaiting = session;
        }
    }

    /// Write a BOSH response; the next pipelined request (XEP-0124 §8) is
    /// read by the endpoint, in this connection's turn.
    pub fn deliver_bosh(&mut self, response: bosh::Response, shared: &Shared) {
        let Phase::Http(http) = &mut self.phase else {
            return;
        };
        http.awaiting = None;
        let mut headers: Vec<(&str, &str)> = shared
            .settings
            .bosh_headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Some(origin) = http.cors_origin.as_deref() {
            headers.push(("Access-Control-Allow-Origin", origin));
            if origin != "*" {
                headers.push(("Vary", "Origin"));
            }
        }
        let status = http::Status::from_code(response.status);
        let keep_alive = !http.close_after_write;
        let (content_type, body) = match http.jsonp.take() {
            Some(callback) => (
                "application/javascript; charset=utf-8",
                jsonp(&callback, &response.body),
            ),
            None => ("text/xml; charset=utf-8", response.body),
        };
        http::write_response(
            &mut self.output,
            status,
            Some(content_type),
            &headers,
            &body,
            keep_alive,
        );
        self.rearm_http(shared);
    }
}
