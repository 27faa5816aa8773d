//! One accepted client connection: its socket, its HTTP phase or WebSocket
//! session, and the backend socket the session uses. The reactor lends it
//! the shared parts ([`Shared`]) for each drive.

use std::net::SocketAddr;
use std::time::Instant;

use log::{debug, info};
use mio::net::TcpStream;
use mio::{Interest, Registry};

use super::io::{self, Io};
use super::link::{Link, Progress, Readiness, Socket};
use super::settings::Settings;
use super::token::{Key, Owner};
use super::DnsClient;
use switchboard_core::bosh;
use switchboard_core::dns;
use switchboard_core::http;
use switchboard_core::session::{Command, End, Session};
use switchboard_core::websocket;

/// Reads per socket per wake-up before yielding to other connections.
const READ_BUDGET: usize = 16;

/// The parts of the reactor every connection uses while it is driven:
/// owned by the reactor, lent whole, apart from the connection slab.
pub struct Shared {
    pub registry: Registry,
    pub settings: Settings,
    pub dns: DnsClient,
    /// The one read buffer all sockets share.
    pub scratch: Box<[u8]>,
    /// SRV weight draws (RFC 2782), not ids.
    pub srv_weights: dns::FastRng,
    /// The time of the current wake-up.
    pub now: Instant,
}

/// What the reactor must do with a connection after driving it.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Keep,
    /// More work is left after the read budget: drive again soon.
    Again,
    Finish(String),
}

enum Phase {
    Http(Box<HttpPhase>),
    WebSocket(Box<Session>),
}

struct HttpPhase {
    reader: http::RequestReader,
    /// Deadline for the request being read, or for the next one to start.
    deadline: Instant,
    close_after_write: bool,
    /// A BOSH request body for the reactor to take to its session.
    bosh_request: Option<Vec<u8>>,
    /// The BOSH session holding this connection's request; no further
    /// request is read until it answers.
    awaiting: Option<Key>,
    /// `Access-Control-Allow-Origin` for the BOSH response, if any.
    cors_origin: Option<String>,
    /// node-xmpp-bosh's JSONP: wrap the response in a call to this.
    jsonp: Option<String>,
}

pub struct Conn {
    pub key: Key,
    /// Counts sessions since start, for log lines.
    number: u64,
    peer: SocketAddr,
    started: Instant,
    client: Socket,
    /// Unconsumed client bytes in the HTTP phase.
    input: Vec<u8>,
    /// Raw bytes for the client ahead of the session's frames (HTTP
    /// responses, the 101 of the upgrade).
    output: Vec<u8>,
    phase: Phase,
    backend: Option<Link>,
    /// Set once a close is decided: flush, then finish by this deadline.
    closing: Option<(End, Instant)>,
    pub timer: Option<(switchboard_core::wheel::TimerId, Instant)>,
}

impl Conn {
    pub fn new(
        key: Key,
        number: u64,
        stream: TcpStream,
        peer: SocketAddr,
        shared: &Shared,
    ) -> Self {
        Conn {
            key,
            number,
            peer,
            started: shared.now,
            client: Socket::new(stream),
            input: Vec::new(),
            output: Vec::new(),
            phase: Phase::Http(Box::new(HttpPhase {
                reader: http::RequestReader::new(shared.settings.http),
                deadline: shared.now + shared.settings.http_read_timeout,
                close_after_write: false,
                bosh_request: None,
                awaiting: None,
                cors_origin: None,
                jsonp: None,
            })),
            backend: None,
            closing: None,
            timer: None,
        }
    }

    pub fn register(&mut self, registry: &Registry) -> std::io::Result<()> {
        registry.register(
            &mut self.client.stream,
            Owner::Client(self.key).token(),
            Interest::READABLE | Interest::WRITABLE,
        )
    }

    /// Release both sockets from the poll; dropping closes them.
    pub fn deregister(&mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.client.stream);
        if let Some(link) = self.backend.as_mut() {
            link.deregister(registry);
        }
    }

    /// switchboard is going down: a WebSocket session says so and closes.
    pub fn shut_down(&mut self) {
        if let Phase::WebSocket(session) = &mut self.phase {
            session.shut_down();
        }
    }

    /// Log the end of a WebSocket session with its reason.
    pub fn log_end(&self, reason: &str, now: Instant) {
        if let Phase::WebSocket(session) = &self.phase {
            info!(
                "session {} end: {} (domain {}, {} ms)",
                self.number,
                reason,
                session.domain(),
                now.duration_since(self.started).as_millis()
            );
        } else {
            debug!("http connection from {} closed: {}", self.peer, reason);
        }
    }

    /// Remember readiness from a poll event.
    pub fn mark_client_ready(&mut self, ready: Readiness) {
        self.client.mark(ready);
    }

    pub fn mark_backend_ready(&mut self, ready: Readiness) {
        if let Some(link) = self.backend.as_mut() {
            link.mark_ready(ready);
        }
    }

    /// The earliest deadline among this connection's timers.
    pub fn next_deadline(&self) -> Option<Instant> {
        let phase = match &self.phase {
            // A held BOSH request is the session's to time (`wait`).
            Phase::Http(http) if http.awaiting.is_some() => None,
            Phase::Http(http) => Some(http.deadline),
            Phase::WebSocket(session) => session.poll_timeout(),
        };
        let connect = self.backend.as_ref().and_then(Link::deadline);
        [phase, connect, self.closing.as_ref().map(|c| c.1)]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, shared: &mut Shared) -> Option<String> {
        let now = shared.now;
        if let Some((end, deadline)) = &self.closing {
            if now >= *deadline {
                return Some(format!("{end} (close not flushed in time)"));
            }
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

    /// Do all the work the remembered readiness allows, within a budget.
    pub fn drive(&mut self, shared: &mut Shared) -> Outcome {
        for _ in 0..READ_BUDGET {
            let mut progress = false;
            if let Some(link) = self.backend.as_mut() {
                let progress = link.check_connected(shared);
                self.apply(progress, shared);
            }
            match self.flush() {
                Ok(p) => progress |= p,
                Err(why) => return Outcome::Finish(why),
            }
            if let Some(outcome) = self.finished() {
                return outcome;
            }
            progress |= self.read_client(shared);
            progress |= self.read_backend(shared);
            if let Some(why) = self.run_commands(shared) {
                return Outcome::Finish(why);
            }
            if !progress {
                return Outcome::Keep;
            }
        }
        Outcome::Again
    }

    /// A finished close: everything flushed (or nothing more to say).
    fn finished(&self) -> Option<Outcome> {
        let (end, _) = self.closing.as_ref()?;
        let flushed = self.output.is_empty()
            && match &self.phase {
                Phase::WebSocket(session) => {
                    session.client_output().is_empty()
                        && (self.backend.is_none() || session.backend_output().is_empty())
                }
                Phase::Http(_) => true,
            };
        flushed.then(|| Outcome::Finish(end.to_string()))
    }

    /// Write both outputs while the sockets take them. `Ok(true)` when
    /// anything was written.
    fn flush(&mut self) -> Result<bool, String> {
        let mut progress = false;
        if self.client.writable {
            while !self.output.is_empty() {
                let n = self.write_client_raw()?;
                if n == 0 {
                    break;
                }
                progress = true;
            }
            if self.output.is_empty() {
                if let Phase::WebSocket(session) = &mut self.phase {
                    while !session.client_output().is_empty() && self.client.writable {
                        match io::write_all_possible(
                            &mut self.client.stream,
                            session.client_output(),
                        ) {
                            Ok(n) => {
                                session.consume_client_output(n);
                                progress |= n > 0;
                                if n == 0 || !session.client_output().is_empty() {
                                    self.client.writable = false;
                                }
                            }
                            Err(_) => {
                                session.handle_client_eof();
                                break;
                            }
                        }
                    }
                }
            }
            if let Phase::Http(http) = &self.phase {
                if http.close_after_write && self.output.is_empty() {
                    return Err("response sent, connection close".into());
                }
            }
        }
        if let (Some(backend), Phase::WebSocket(session)) = (
            self.backend.as_mut().and_then(Link::socket),
            &mut self.phase,
        ) {
            if backend.writable && !session.backend_output().is_empty() {
                match io::write_all_possible(&mut backend.stream, session.backend_output()) {
                    Ok(n) => {
                        session.consume_backend_output(n);
                        progress |= n > 0;
                        if !session.backend_output().is_empty() {
                            backend.writable = false;
                        }
                    }
                    Err(_) => session.handle_backend_eof(),
                }
            }
        }
        Ok(progress)
    }

    /// Write the raw output; returns bytes written (0 when the socket is full).
    fn write_client_raw(&mut self) -> Result<usize, String> {
        match io::write_all_possible(&mut self.client.stream, &self.output) {
            Ok(n) => {
                self.output.drain(..n);
                if !self.output.is_empty() {
                    self.client.writable = false;
                }
                if self.output.is_empty() {
                    self.output = Vec::new();
                }
                Ok(n)
            }
            Err(io) => Err(format!("client write failed: {io:?}")),
        }
    }

    /// Read from the client while allowed; `true` when bytes came in.
    fn read_client(&mut self, shared: &mut Shared) -> bool {
        if !self.client.readable
            || self.closing.is_some()
            || !self.client_may_read(&shared.settings)
        {
            return false;
        }
        match io::read(&mut self.client.stream, &mut shared.scratch) {
            Io::Progress(n) => {
                self.client.after_read(n, shared.scratch.len());
                let bytes = &shared.scratch[..n];
                match &mut self.phase {
                    Phase::Http(_) => {
                        self.input.extend_from_slice(bytes);
                        self.handle_http_input(shared);
                    }
                    Phase::WebSocket(session) => session.handle_client_input(shared.now, bytes),
                }
                true
            }
            Io::WouldBlock => {
                self.client.readable = false;
                false
            }
            Io::Closed | Io::Failed(_) => {
                self.client.readable = false;
                match &mut self.phase {
                    Phase::WebSocket(session) => session.handle_client_eof(),
                    Phase::Http(_) => {
                        self.closing = Some((End::ClientVanished, shared.now));
                        self.output.clear();
                    }
                }
                true
            }
        }
    }

    /// Back-pressure: stop reading a client whose backend output is full.
    fn client_may_read(&self, settings: &Settings) -> bool {
        match &self.phase {
            Phase::Http(http) => {
                !http.close_after_write
                    && self.output.len() < settings.max_buffer_bytes
                    && self.input.len()
                        < settings.http.max_head_bytes + settings.http.max_body_bytes
            }
            Phase::WebSocket(session) => session.backend_output().len() < settings.max_buffer_bytes,
        }
    }

    fn read_backend(&mut self, shared: &mut Shared) -> bool {
        let Phase::WebSocket(session) = &mut self.phase else {
            return false;
        };
        let Some(backend) = self.backend.as_mut().and_then(Link::socket) else {
            return false;
        };
        // Back-pressure: a client that does not read stops the server's reads.
        if !backend.readable || session.client_output().len() >= shared.settings.max_buffer_bytes {
            return false;
        }
        match io::read(&mut backend.stream, &mut shared.scratch) {
            Io::Progress(n) => {
                backend.after_read(n, shared.scratch.len());
                session.handle_backend_input(&shared.scratch[..n]);
                true
            }
            Io::WouldBlock => {
                backend.readable = false;
                false
            }
            Io::Closed | Io::Failed(_) => {
                backend.readable = false;
                session.handle_backend_eof();
                true
            }
        }
    }

    fn handle_http_input(&mut self, shared: &mut Shared) {
        loop {
            let Phase::Http(http) = &mut self.phase else {
                return;
            };
            if http.close_after_write || http.bosh_request.is_some() || http.awaiting.is_some() {
                return;
            }
            let request = match http.reader.read(&self.input) {
                Ok(Some(request)) => request,
                Ok(None) => return,
                Err(e) => {
                    http::write_response(
                        &mut self.output,
                        e.status(),
                        Some("text/plain"),
                        &[],
                        e.to_string().as_bytes(),
                        false,
                    );
                    http.close_after_write = true;
                    return;
                }
            };
            http.deadline = shared.now + shared.settings.http_idle_timeout;
            if !request.keep_alive {
                http.close_after_write = true;
            }
            let consumed = request.len;
            let upgraded = self.handle_request(&request, shared);
            self.input.drain(..consumed);
            if upgraded {
                let rest = std::mem::take(&mut self.input);
                if let Phase::WebSocket(session) = &mut self.phase {
                    if !rest.is_empty() {
                        session.handle_client_input(shared.now, &rest);
                    }
                }
                return;
            }
        }
    }

    /// Answer one request; `true` when it upgraded the connection.
    fn handle_request(&mut self, request: &http::Request, shared: &mut Shared) -> bool {
        let settings = &shared.settings;
        let keep_alive = request.keep_alive;
        if request.path == settings.websocket_path {
            if !origin_allowed(&settings.websocket_origins, request.origin.as_deref()) {
                let body = b"origin not allowed\n";
                http::write_response(
                    &mut self.output,
                    http::Status::FORBIDDEN,
                    Some("text/plain"),
                    &[],
                    body,
                    false,
                );
                self.set_close_after_write();
                return false;
            }
            let upgrade = websocket::UpgradeRequest {
                is_get: request.method == http::Method::Get,
                upgrade: request.upgrade.as_deref(),
                connection: request.connection.as_deref(),
                key: request.sec_websocket_key.as_deref(),
                version: request.sec_websocket_version.as_deref(),
                protocols: request.sec_websocket_protocol.as_deref(),
            };
            return match websocket::accept(&upgrade) {
                Ok(response) => {
                    let Ok(id) = switchboard_core::ids::stream_id() else {
                        let body = b"no random stream id\n";
                        http::write_response(
                            &mut self.output,
                            http::Status::SERVICE_UNAVAILABLE,
                            Some("text/plain"),
                            &[],
                            body,
                            false,
                        );
                        self.set_close_after_write();
                        return false;
                    };
                    self.output.extend_from_slice(&response);
                    self.phase = Phase::WebSocket(Box::new(Session::new(
                        settings.session.clone(),
                        shared.now,
                        id,
                    )));
                    info!(
                        "session {} start: websocket from {}",
                        self.number, self.peer
                    );
                    true
                }
                Err(refusal) => {
                    let body = refusal.to_string();
                    http::write_response(
                        &mut self.output,
                        refusal.status(),
                        Some("text/plain"),
                        refusal.headers(),
                        body.as_bytes(),
                        false,
                    );
                    self.set_close_after_write();
                    false
                }
            };
        }
        if request.path == settings.bosh_path {
            self.handle_bosh_request(request, shared);
            return false;
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
            keep_alive,
        );
        false
    }

    /// XEP-0124 §4: a POST carries one `<body/>` for the reactor to take to
    /// its session; OPTIONS is a CORS preflight.
    fn handle_bosh_request(&mut self, request: &http::Request, shared: &Shared) {
        let Phase::Http(http) = &mut self.phase else {
            return;
        };
        let cors = cors_origin(&shared.settings.bosh_origins, request.origin.as_deref());
        match request.method {
            http::Method::Post => {
                let body = self.input.get(request.body.clone()).unwrap_or_default();
                http.bosh_request = Some(body.to_vec());
                http.cors_origin = cors;
                http.jsonp = None;
            }
            // For old clients (node-xmpp-bosh's extra): the body in `?data=`,
            // optionally answered as JSONP to `?callback=`.
            http::Method::Get => {
                let query = request.query.as_deref().unwrap_or_default();
                let callback = http::query_param(query, "callback")
                    .map(|name| String::from_utf8(name).unwrap_or_default());
                match (http::query_param(query, "data"), callback) {
                    (Some(body), callback) if callback.as_deref().is_none_or(safe_identifier) => {
                        http.bosh_request = Some(body);
                        http.cors_origin = cors;
                        http.jsonp = callback;
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
    }

    /// The BOSH request body read from this connection, for the reactor.
    pub fn take_bosh_request(&mut self) -> Option<Vec<u8>> {
        match &mut self.phase {
            Phase::Http(http) => http.bosh_request.take(),
            Phase::WebSocket(_) => None,
        }
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

    /// Write a BOSH response and read the next request (XEP-0124 §8: the
    /// client may pipeline on a kept-alive connection).
    pub fn deliver_bosh(&mut self, response: bosh::Response, shared: &mut Shared) {
        let Phase::Http(http) = &mut self.phase else {
            return;
        };
        http.awaiting = None;
        http.deadline = shared.now + shared.settings.http_idle_timeout;
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
        self.handle_http_input(shared);
    }

    fn set_close_after_write(&mut self) {
        if let Phase::Http(http) = &mut self.phase {
            http.close_after_write = true;
        }
    }

    /// Carry out what the session asked for. `Some(reason)` finishes the
    /// connection at once.
    fn run_commands(&mut self, shared: &mut Shared) -> Option<String> {
        loop {
            let Phase::WebSocket(session) = &mut self.phase else {
                return None;
            };
            match session.poll_command()? {
                Command::Connect { domain } => {
                    let (link, progress) =
                        Link::start(&domain, None, Owner::WsBackend(self.key), shared);
                    self.backend = Some(link);
                    self.apply(progress, shared);
                }
                Command::Close(end) => {
                    let linger = shared.now + shared.settings.linger;
                    self.closing = Some((end, linger));
                }
                Command::Drop(end) => return Some(end.to_string()),
            }
        }
    }

    /// A DNS answer for this connection's backend link.
    pub fn handle_dns_answer(
        &mut self,
        answer: Result<dns::Answer, dns::Error>,
        shared: &mut Shared,
    ) {
        if let Some(link) = self.backend.as_mut() {
            let progress = link.handle_dns_answer(answer, shared);
            self.apply(progress, shared);
        }
    }

    /// Tell the session what became of its backend link.
    fn apply(&mut self, progress: Progress, shared: &Shared) {
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
}

/// RFC 6455 §10.2: a browser names the page's origin; non-browser clients
/// send none and are let through.
fn origin_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    match origin {
        Some(origin) if !allowed.is_empty() => allowed.iter().any(|a| a == origin),
        _ => true,
    }
}

/// The `Access-Control-Allow-Origin` value for a request: `*` when the
/// list allows any origin, the request's origin when listed, else none.
fn cors_origin(allowed: &[String], origin: Option<&str>) -> Option<String> {
    if allowed.iter().any(|a| a == "*") {
        return Some("*".to_string());
    }
    let origin = origin?;
    allowed
        .iter()
        .any(|a| a == origin)
        .then(|| origin.to_string())
}

/// A JSONP callback name: a JavaScript identifier path, nothing that could
/// carry script of its own.
fn safe_identifier(name: &str) -> bool {
    let mut parts = name.split('.');
    name.len() <= 64
        && parts.all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        })
}

/// `callback({"reply":"<body .../>"})`, as node-xmpp-bosh answers JSONP.
fn jsonp(callback: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{callback}({{\"reply\":\"").into_bytes();
    for c in String::from_utf8_lossy(body).chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out.extend_from_slice(b"\"})");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonp_callbacks_must_be_plain_identifiers() {
        for good in ["cb", "_cb1", "$", "jQuery.cb_2", "a.b.c"] {
            assert!(safe_identifier(good), "{good}");
        }
        for bad in [
            "",
            "1cb",
            "cb()",
            "a..b",
            "alert(1);cb",
            "a b",
            "cb<",
            &"x".repeat(65),
        ] {
            assert!(!safe_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn jsonp_escapes_the_reply_as_a_json_string() {
        let out = jsonp("cb", b"<body a=\"1\">\\\n\xe2\x80\xa8</body>");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "cb({\"reply\":\"<body a=\\\"1\\\">\\\\\\u000a\\u2028</body>\"})"
        );
    }

    #[test]
    fn cors_echoes_listed_origins_or_allows_any() {
        let any = vec!["*".to_string()];
        let listed = vec!["https://a.example".to_string()];
        assert_eq!(cors_origin(&any, None).as_deref(), Some("*"));
        assert_eq!(
            cors_origin(&listed, Some("https://a.example")).as_deref(),
            Some("https://a.example")
        );
        assert_eq!(cors_origin(&listed, Some("https://b.example")), None);
        assert_eq!(cors_origin(&[], Some("https://a.example")), None);
    }
}
