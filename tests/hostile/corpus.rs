//! What every category shares: a case (a name, a probe, the outcome
//! expected), the outcomes as a client and the server stream observe them,
//! the healthy sessions that must keep relaying beside every case, the
//! runner that prints each category's summary, and the observers that
//! drive a probe over raw HTTP, BOSH or WebSocket and say what happened.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use switchboard::config::Config;

use crate::support::bosh_client::{body, create_body, BoshConn, BoshSession, HttpResponse};
use crate::support::raw_server::RawServer;
use crate::support::xmpp::chat_message;
use crate::support::{
    config_for, xml, RecvError, StubEvent, StubOptions, StubServer, Switchboard, WsClient, WAIT,
    WS_PATH,
};

pub const BOSH_PATH: &str = "/http-bind";

/// How long a server stream may take to end once its session has.
const SERVER_WAIT: Duration = Duration::from_millis(500);

/// The longest a BOSH request of a probe may wait for its answer: the
/// categories that hold requests grant a `wait` of at most 1 s, and every
/// other answer comes at once.
const BOSH_ANSWER: Duration = Duration::from_millis(1_500);

/// One line of a category's table.
pub struct Case<P: 'static> {
    pub name: &'static str,
    pub probe: P,
    pub expect: Outcome,
}

pub const fn case<P>(name: &'static str, probe: P, expect: Outcome) -> Case<P> {
    Case {
        name,
        probe,
        expect,
    }
}

/// What became of the session's stream to the XMPP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// No server stream was ever opened.
    None,
    /// Closed cleanly with `</stream:stream>`.
    Closed,
    /// Dropped without a word, resumable (XEP-0198).
    Dropped,
    /// Still open after the session ended for the client.
    Open,
    /// The server ended it itself (a stream error, or it closed or cut
    /// the connection).
    Ended,
}

/// What a probe led to, as seen from outside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// HTTP answers, their statuses in order; `close`: the last one said
    /// `Connection: close` (else the connection stayed until its idle
    /// timeout, or was upgraded after a 101).
    Http {
        statuses: Cow<'static, [u16]>,
        close: bool,
    },
    /// The connection ended without an answer (a deadline passed).
    Cut,
    /// No answer within the bound on waits, the connection still open.
    Unanswered,
    /// A BOSH terminate with its condition (`None`: a clean end).
    Terminate {
        condition: Option<Cow<'static, str>>,
        server: Server,
    },
    /// A WebSocket end: the stream error condition, whether `<close/>`
    /// came (RFC 7395 §3.6), the close frame's code (1005 for a close
    /// frame without one, `None` for no close frame at all).
    WsEnd {
        error: Option<Cow<'static, str>>,
        close: bool,
        code: Option<u16>,
        server: Server,
    },
    /// Served normally: the session relayed a message to itself and back.
    Served,
    /// The process lives on and serves a new session, having said this of
    /// what happened ("" for nothing).
    Survived(Cow<'static, str>),
    /// Refused before connecting to what DNS named, for this reason (the
    /// log's words): the client heard `remote-connection-failed` and
    /// nothing reached the address.
    NotConnected(Cow<'static, str>),
    /// Anything else, described: only ever observed.
    Other(String),
}

/// HTTP answers, the last one closing the connection.
pub const fn closing(statuses: &'static [u16]) -> Outcome {
    answers(statuses, true)
}

/// HTTP answers with these statuses; `close` as in [`Outcome::Http`].
pub const fn answers(statuses: &'static [u16], close: bool) -> Outcome {
    Outcome::Http {
        statuses: Cow::Borrowed(statuses),
        close,
    }
}

/// A BOSH terminate with `condition`.
pub const fn terminate(condition: &'static str, server: Server) -> Outcome {
    Outcome::Terminate {
        condition: Some(Cow::Borrowed(condition)),
        server,
    }
}

/// A BOSH terminate without a condition: the session ended cleanly.
pub const fn terminated(server: Server) -> Outcome {
    Outcome::Terminate {
        condition: None,
        server,
    }
}

/// The session's end as the table of ends tells it: a stream error,
/// `<close/>`, then the close frame.
pub const fn ws_error(code: u16, error: &'static str, server: Server) -> Outcome {
    Outcome::WsEnd {
        error: Some(Cow::Borrowed(error)),
        close: true,
        code: Some(code),
        server,
    }
}

/// `<close/>` and a close frame, no stream error.
pub const fn ws_closed(code: u16, server: Server) -> Outcome {
    Outcome::WsEnd {
        error: None,
        close: true,
        code: Some(code),
        server,
    }
}

/// A close frame alone: the WebSocket layer refused a frame (or answered
/// the client's own close frame).
pub const fn ws_frame(code: u16, server: Server) -> Outcome {
    Outcome::WsEnd {
        error: None,
        close: false,
        code: Some(code),
        server,
    }
}

/// A fresh marker for a relayed message.
pub fn marker() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("mark-{}", N.fetch_add(1, Ordering::SeqCst))
}

/// One logged-in BOSH session and one WebSocket session that must keep
/// relaying while the cases run beside them.
struct Healthy {
    addr: SocketAddr,
    bosh: BoshSession,
    bosh_jid: String,
    ws: WsClient,
    ws_jid: String,
}

impl Healthy {
    fn start(addr: SocketAddr) -> Healthy {
        let (mut bosh, _) =
            BoshSession::create(addr, BOSH_PATH, "localhost", 1_000, "").expect("healthy bosh");
        let bosh_jid = bosh.login("healthy-bosh", "localhost").unwrap();
        let mut ws = WsClient::connect(addr, WS_PATH, &["xmpp"]).expect("healthy websocket");
        ws.open("localhost").unwrap();
        let ws_jid = ws.login_plain("healthy-ws", "pw", "localhost").unwrap();
        Healthy {
            addr,
            bosh,
            bosh_jid,
            ws,
            ws_jid,
        }
    }

    /// A message from each session to itself comes back.
    fn check(&mut self) -> Result<(), String> {
        let mark = marker();
        self.ws
            .send_text(&chat_message(&self.ws_jid, &mark))
            .map_err(|e| format!("websocket: {e}"))?;
        loop {
            match self.ws.recv_text(WAIT) {
                Ok(text) if text.contains(&mark) => break,
                Ok(_) => {}
                Err(e) => return Err(format!("websocket: {e}")),
            }
        }
        // A fresh connection each time: the cases may set short HTTP
        // timeouts.
        self.bosh.conn = BoshConn::connect(self.addr, BOSH_PATH);
        let mut reply = self
            .bosh
            .request("", &chat_message(&self.bosh_jid, &mark))?;
        for _ in 0..5 {
            if reply.attr("type").as_deref() == Some("terminate") {
                return Err(format!("bosh: {}", reply.body));
            }
            if reply.body.contains(&mark) {
                return Ok(());
            }
            reply = self.bosh.request("", "")?;
        }
        Err(format!("bosh: no {mark} in {}", reply.body))
    }
}

/// The stub serving `localhost`, and the configuration of a category's
/// switchboard before its tuning: routed to the stub, no server pings (the
/// healthy WebSocket session reads only when checked).
pub fn stub_and_config() -> (StubServer, Config) {
    let stub = StubServer::start(StubOptions::plaintext("localhost"));
    let mut config = config_for(&stub);
    config.websocket.ping_interval = None;
    (stub, config)
}

/// A server at a new route for `domain` that accepts and never answers.
pub fn silent_route(config: &mut Config, domain: &str) -> RawServer {
    let silent = RawServer::start();
    config
        .backend
        .routes
        .insert(domain.into(), silent.addr().to_string().into());
    silent
}

/// Runs `cases` against a switchboard serving `config`, `observe` given
/// its address and each probe; see [`run_at`].
pub fn run<P>(
    category: &str,
    config: Config,
    cases: &[Case<P>],
    mut observe: impl FnMut(SocketAddr, &P) -> Outcome,
) {
    let sb = Switchboard::start(config);
    run_at(category, sb.addr, cases, |probe| observe(sb.addr, probe));
}

/// Runs `cases` in order through `observe` against switchboard at `addr`,
/// the healthy sessions checked after each; prints the category's summary
/// and fails with every case that did not go as expected.
pub fn run_at<P>(
    category: &str,
    addr: SocketAddr,
    cases: &[Case<P>],
    mut observe: impl FnMut(&P) -> Outcome,
) {
    capture_log();
    let mut healthy = Healthy::start(addr);
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut passed = 0;
    for case in cases {
        let observed = catch_unwind(AssertUnwindSafe(|| observe(&case.probe)))
            .unwrap_or_else(|panic| Outcome::Other(format!("panicked: {}", panic_text(&panic))));
        if observed == case.expect {
            passed += 1;
        } else {
            failures.push(format!(
                "{}: expected {:?}, got {observed:?}",
                case.name, case.expect
            ));
        }
        let beside = catch_unwind(AssertUnwindSafe(|| healthy.check()))
            .unwrap_or_else(|panic| Err(panic_text(&panic)));
        if let Err(e) = beside {
            failures.push(format!(
                "{}: the healthy sessions beside it: {e}",
                case.name
            ));
            break;
        }
    }
    println!(
        "hostile corpus: {category}: {} cases, {passed} passed ({} ms)",
        cases.len(),
        started.elapsed().as_millis()
    );
    assert!(
        failures.is_empty(),
        "{category}: {} of {} cases failed:\n{}",
        cases.len() - passed,
        cases.len(),
        failures.join("\n")
    );
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

// --- the server side

/// An XMPP server the cases' sessions reach.
#[derive(Clone, Copy)]
pub enum Backend<'a> {
    Stub(&'a StubServer),
    Raw(&'a RawServer),
}

/// What a server does to a session's stream, in the middle of a probe.
#[derive(Clone, Copy, Debug)]
pub enum Act<'a> {
    /// Sends these bytes.
    Send(&'a [u8]),
    /// Closes the connection, as a crashing server would.
    Cut,
    /// Sends this chunk again and again, up to this many bytes, until its
    /// writes make no progress for a second.
    Flood(&'a [u8], usize),
}

impl Backend<'_> {
    /// Connections accepted so far.
    fn count(self) -> usize {
        match self {
            Backend::Stub(stub) => stub.connection_count(),
            Backend::Raw(raw) => raw.connection_count(),
        }
    }

    /// Connection `conn`: closed cleanly, dropped, ended by the server, or
    /// still open after `wait`.
    fn side(self, conn: usize, wait: Duration) -> Server {
        match self {
            Backend::Stub(stub) => {
                let ended = stub.wait_event(conn, wait, |e| {
                    matches!(
                        e,
                        StubEvent::ClientClosedStream
                            | StubEvent::TcpClosed
                            | StubEvent::StreamErrorSent(_)
                            | StubEvent::Dropped
                    )
                });
                let by_server =
                    |e: &StubEvent| matches!(e, StubEvent::StreamErrorSent(_) | StubEvent::Dropped);
                match ended {
                    Ok(log) if log.contains(&StubEvent::ClientClosedStream) => Server::Closed,
                    Ok(log) if log.iter().any(by_server) => Server::Ended,
                    Ok(_) => Server::Dropped,
                    Err(_) => Server::Open,
                }
            }
            Backend::Raw(raw) => match raw.wait_closed(conn, wait) {
                Some(c) if c.server_closed => Server::Ended,
                Some(c) if c.client_closed && c.received.ends_with(b"</stream:stream>") => {
                    Server::Closed
                }
                Some(c) if c.client_closed => Server::Dropped,
                _ => Server::Open,
            },
        }
    }

    /// The server does `act` on connection `conn`. A failed write is the
    /// server's own business: the case judges what the client hears.
    fn act(self, conn: usize, act: &Act) {
        let stall = Duration::from_secs(1);
        let _ = match (self, *act) {
            (Backend::Stub(stub), Act::Send(bytes)) => stub.send_raw(conn, bytes),
            (Backend::Raw(raw), Act::Send(bytes)) => raw.send_raw(conn, bytes),
            (Backend::Stub(stub), Act::Cut) => {
                stub.drop_connection(conn);
                Ok(())
            }
            (Backend::Raw(raw), Act::Cut) => {
                raw.drop_connection(conn);
                Ok(())
            }
            (Backend::Stub(stub), Act::Flood(chunk, to)) => {
                stub.flood(conn, chunk, 0, to, stall).map(drop)
            }
            (Backend::Raw(raw), Act::Flood(chunk, to)) => {
                raw.flood(conn, chunk, 0, to, stall).map(drop)
            }
        };
    }
}

/// The backends a probe may reach, counted before it starts: afterwards,
/// the first with a new connection says what became of it.
pub struct Watch<'a> {
    marks: Vec<(Backend<'a>, usize)>,
}

impl<'a> Watch<'a> {
    pub fn new(backends: &[Backend<'a>]) -> Watch<'a> {
        Watch {
            marks: backends.iter().map(|b| (*b, b.count())).collect(),
        }
    }

    pub fn server(&self, wait: Duration) -> Server {
        self.first_new()
            .map_or(Server::None, |(b, conn)| b.side(conn, wait))
    }

    /// The server of the probe's session does `act`.
    pub fn act(&self, act: &Act) {
        if let Some((backend, conn)) = self.first_new() {
            backend.act(conn, act);
        }
    }

    fn first_new(&self) -> Option<(Backend<'a>, usize)> {
        self.marks
            .iter()
            .find(|(b, mark)| b.count() > *mark)
            .map(|(b, mark)| (*b, *mark))
    }
}

// --- raw HTTP

/// One part of what a raw HTTP probe sends.
#[derive(Clone, Copy, Debug)]
pub enum Part {
    Bytes(&'static [u8]),
    /// Bytes made when the case runs (too large to write out).
    Make(fn() -> Vec<u8>),
    /// These bytes one at a time, `ms` apart.
    Dribble(&'static [u8], u64),
    /// Nothing for `ms`.
    Pause(u64),
}

/// Sends `parts` on a new connection and reads every answer until the
/// server closes it (bounded by [`WAIT`] after the last part).
pub fn http_outcome(addr: SocketAddr, parts: &[Part]) -> Outcome {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).unwrap();
    for part in parts {
        // A write may fail once the server has answered and closed.
        let _ = match part {
            Part::Bytes(bytes) => stream.write_all(bytes),
            Part::Make(make) => stream.write_all(&make()),
            Part::Dribble(bytes, ms) => bytes.iter().try_for_each(|b| {
                std::thread::sleep(Duration::from_millis(*ms));
                stream.write_all(std::slice::from_ref(b))
            }),
            Part::Pause(ms) => {
                std::thread::sleep(Duration::from_millis(*ms));
                Ok(())
            }
        };
    }
    read_answers(&mut stream)
}

/// Every HTTP answer on `stream` until it ends; a 101 ends the reading.
fn read_answers(stream: &mut TcpStream) -> Outcome {
    let deadline = Instant::now() + WAIT;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut ended = false;
    while !ended && Instant::now() < deadline && !parse_answers(&bytes).1 {
        stream
            .set_read_timeout(Some(deadline.saturating_duration_since(Instant::now())))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => ended = true,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    }
    let (answers, upgraded) = parse_answers(&bytes);
    if answers.is_empty() {
        return match (ended, bytes.is_empty()) {
            (true, true) => Outcome::Cut,
            _ => Outcome::Other(format!("no answer: {}", String::from_utf8_lossy(&bytes))),
        };
    }
    if !ended && !upgraded {
        return Outcome::Other("the connection never ended".into());
    }
    let close = answers
        .last()
        .and_then(|a| a.header("Connection"))
        .is_some_and(|c| c.eq_ignore_ascii_case("close"));
    Outcome::Http {
        statuses: Cow::Owned(answers.iter().map(|a| a.status).collect()),
        close,
    }
}

/// The complete answers at the start of `bytes`, and whether the last is
/// a 101 (after which the bytes are WebSocket frames).
fn parse_answers(mut bytes: &[u8]) -> (Vec<HttpResponse>, bool) {
    let mut answers = Vec::new();
    while let Some(head_end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        let mut answer = HttpResponse {
            status,
            headers,
            body: String::new(),
        };
        if status == 101 {
            answers.push(answer);
            return (answers, true);
        }
        let len: usize = answer
            .header("Content-Length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let Some(body) = bytes.get(head_end + 4..head_end + 4 + len) else {
            break;
        };
        answer.body = String::from_utf8_lossy(body).into_owned();
        answers.push(answer);
        bytes = &bytes[head_end + 4 + len..];
    }
    (answers, false)
}

// --- WebSocket

/// How far a probe's session gets before its steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Begin {
    /// No session: a WebSocket upgraded, nothing sent; for BOSH, the
    /// steps create what they create.
    Nothing,
    /// Opened (WebSocket: `<open/>` answered with the features) or
    /// created (BOSH: its features may not have come).
    Created,
    /// Authenticated and bound.
    LoggedIn,
}

/// A session to `to` taken to `begin`, then `steps` (WebSocket [`Step`]s
/// or BOSH [`BStep`]s).
#[derive(Clone, Copy, Debug)]
pub struct Probe<S: 'static> {
    pub to: &'static str,
    pub begin: Begin,
    pub steps: &'static [S],
}

pub type WsProbe = Probe<Step<'static>>;
pub type BoshProbe = Probe<BStep<'static>>;

/// A session to `localhost`.
pub const fn probe<S>(begin: Begin, steps: &'static [S]) -> Probe<S> {
    Probe {
        to: "localhost",
        begin,
        steps,
    }
}

/// The same to `to`.
pub const fn probe_to<S>(to: &'static str, begin: Begin, steps: &'static [S]) -> Probe<S> {
    Probe { to, begin, steps }
}

/// One thing a WebSocket probe does.
#[derive(Clone, Copy, Debug)]
pub enum Step<'a> {
    /// A text message.
    Text(&'a str),
    /// Raw bytes on the socket (hand-made frames): at once when the pace
    /// is 0 ms, else one at a time that many ms apart.
    Raw(&'a [u8], u64),
    /// Raw bytes made when the case runs, as `Raw`.
    Make(fn() -> Vec<u8>, u64),
    /// Nothing for `ms`.
    Pause(u64),
    /// The session's server does something.
    Server(Act<'a>),
    /// A message to itself (logged-in sessions), which must come back.
    Echo,
}

/// Raw bytes made when the case runs, at once.
pub const fn made(make: fn() -> Vec<u8>) -> Step<'static> {
    Step::Make(make, 0)
}

/// Runs a WebSocket session to `to` through `begin` and `steps` against
/// switchboard at `addr`, whose domains lead to `backends`; says how the
/// session ended, or that it served the echo.
pub fn ws_outcome(
    addr: SocketAddr,
    backends: &[Backend],
    to: &str,
    begin: Begin,
    steps: &[Step],
) -> Outcome {
    let watch = Watch::new(backends);
    let mut ws = match WsClient::connect(addr, WS_PATH, &["xmpp"]) {
        Ok(ws) => ws,
        Err(e) => return Outcome::Other(e),
    };
    let mut jid = String::new();
    if begin != Begin::Nothing {
        match ws.open(to) {
            Ok((_, features)) if features.contains("features") => {}
            other => return Outcome::Other(format!("open: {other:?}")),
        }
    }
    if begin == Begin::LoggedIn {
        jid = ws.login_plain("prober", "pw", to).unwrap();
    }
    let mark = marker();
    for step in steps {
        let sent = match step {
            Step::Text(text) => ws.send_text(text),
            Step::Raw(bytes, ms) => send_paced(&mut ws, bytes, *ms),
            Step::Make(make, ms) => send_paced(&mut ws, &make(), *ms),
            Step::Pause(ms) => {
                std::thread::sleep(Duration::from_millis(*ms));
                Ok(())
            }
            Step::Server(act) => {
                watch.act(act);
                Ok(())
            }
            Step::Echo => ws.send_text(&chat_message(&jid, &mark)),
        };
        // A refused frame may close the connection before the rest.
        if sent.is_err() {
            break;
        }
    }
    ws_end(&mut ws, &mark, &[], |wait| watch.server(wait))
}

/// At once when `ms` is 0, else one byte at a time, `ms` apart.
fn send_paced(ws: &mut WsClient, bytes: &[u8], ms: u64) -> Result<(), String> {
    if ms == 0 {
        return ws.send_raw_frame(bytes);
    }
    bytes.iter().try_for_each(|b| {
        std::thread::sleep(Duration::from_millis(ms));
        ws.send_raw_frame(std::slice::from_ref(b))
    })
}

/// Reads until `mark` comes back (served) or the session ends, `seen`
/// the messages already read; `server` says, given how long to wait, what
/// became of the server stream.
pub fn ws_end(
    ws: &mut WsClient,
    mark: &str,
    seen: &[String],
    server: impl Fn(Duration) -> Server,
) -> Outcome {
    let mut error = None;
    let mut close = false;
    let mut seen = seen.iter().cloned();
    let code = loop {
        match seen.next().map_or_else(|| ws.recv_text(WAIT), Ok) {
            Ok(text) if text.contains(mark) => return Outcome::Served,
            Ok(text) if text.contains("stream:error") => error = stream_error_condition(&text),
            Ok(text) if xml::root_name(&text).as_deref() == Some("close") => close = true,
            Ok(_) => {}
            Err(RecvError::Closed { code, .. }) => break Some(code.unwrap_or(1005)),
            Err(RecvError::Eof) => break None,
            Err(e) => return Outcome::Other(format!("{e} (error {error:?}, close {close})")),
        }
    };
    Outcome::WsEnd {
        error: error.map(Cow::Owned),
        close,
        code,
        server: server(SERVER_WAIT),
    }
}

/// The defined condition of a `<stream:error/>` (RFC 6120 §4.9.3): its
/// first child other than `<text/>`.
fn stream_error_condition(raw: &str) -> Option<String> {
    let mut depth = 0;
    for token in xmlparser::Tokenizer::from(raw) {
        match token.ok()? {
            xmlparser::Token::ElementStart { local, .. } => {
                depth += 1;
                if depth == 2 && local.as_str() != "text" {
                    return Some(local.as_str().to_string());
                }
            }
            xmlparser::Token::ElementEnd {
                end: xmlparser::ElementEnd::Close(..) | xmlparser::ElementEnd::Empty,
                ..
            } => depth -= 1,
            _ => {}
        }
    }
    None
}

// --- BOSH

/// One request of a BOSH probe, on a connection of its own. In templates
/// `{sid}` is the session's sid, `{rid}` the next rid (each use takes
/// one), `{last}` the last rid taken, `{skip}` one past the next and
/// `{ahead}` two past it (neither taken), and `{echo}` a message to
/// itself (logged-in sessions) that must come back.
#[derive(Clone, Copy, Debug)]
pub enum BStep<'a> {
    /// A POST of this `<body/>`: at once when the pace is 0 ms, else one
    /// byte at a time that many ms apart.
    Post(&'a [u8], u64),
    /// A POST of a `<body/>` made when the case runs.
    Make(fn() -> Vec<u8>),
    /// A whole raw HTTP request.
    Http(&'static str),
    /// Nothing for `ms`.
    Pause(u64),
    /// The session's server does something.
    Server(Act<'a>),
    /// Empty requests until the session ends (a few at most).
    Poll,
    /// A message to itself in the next request, which must come back.
    Echo,
}

impl BStep<'_> {
    fn carries_echo(&self) -> bool {
        match self {
            BStep::Echo => true,
            BStep::Post(template, _) => find(template, b"{echo}").is_some(),
            _ => false,
        }
    }

    fn is_request(&self) -> bool {
        !matches!(self, BStep::Pause(_) | BStep::Server(_))
    }
}

/// A POST of this body template at once.
pub const fn post(template: &'static str) -> BStep<'static> {
    BStep::Post(template.as_bytes(), 0)
}

/// Runs a session to `to` taken to `begin`, then `steps`, against
/// switchboard at `addr` whose domains lead to `backends`. Says how the
/// last request carrying the echo (else the last request) was answered,
/// and what became of the session's server stream.
pub fn bosh_outcome(
    addr: SocketAddr,
    backends: &[Backend],
    to: &str,
    begin: Begin,
    steps: &[BStep],
) -> Outcome {
    let watch = Watch::new(backends);
    let mut session = BoshSession {
        conn: BoshConn::connect(addr, BOSH_PATH),
        sid: String::new(),
        rid: 5_000,
    };
    if begin != Begin::Nothing {
        let created = session.conn.post(&create_body(session.rid, to, ""), WAIT);
        match created.attr("sid") {
            Some(sid) if created.attr("type").is_none() => session.sid = sid,
            // Refused at creation: that is the outcome.
            _ => return bosh_answer(&created, "", || watch.server(SERVER_WAIT)),
        }
    }
    let jid = if begin == Begin::LoggedIn {
        session.login("prober", to).unwrap()
    } else {
        String::new()
    };
    let mark = marker();
    let echo = chat_message(&jid, &mark);
    let judged = steps
        .iter()
        .rposition(BStep::carries_echo)
        .or_else(|| steps.iter().rposition(BStep::is_request));
    let mut conns = Vec::new();
    for (n, step) in steps.iter().enumerate() {
        let request = match step {
            BStep::Pause(ms) => {
                std::thread::sleep(Duration::from_millis(*ms));
                continue;
            }
            BStep::Server(act) => {
                watch.act(act);
                continue;
            }
            BStep::Post(template, _) => {
                let template = replace(template, b"{echo}", echo.as_bytes());
                http_post(&fill(&template, &session.sid, &mut session.rid))
            }
            BStep::Make(make) => http_post(&fill(&make(), &session.sid, &mut session.rid)),
            BStep::Http(template) => fill(template.as_bytes(), &session.sid, &mut session.rid),
            BStep::Echo => {
                session.rid += 1;
                http_post(body(session.rid, &session.sid, "", &echo).as_bytes())
            }
            BStep::Poll => {
                session.rid += 1;
                http_post(body(session.rid, &session.sid, "", "").as_bytes())
            }
        };
        let mut conn = BoshConn::connect(addr, BOSH_PATH);
        match step {
            BStep::Post(_, ms) if *ms > 0 => {
                for b in request {
                    std::thread::sleep(Duration::from_millis(*ms));
                    conn.send_raw(&[b]);
                }
            }
            _ => conn.send_raw(&request),
        }
        conns.push((n, conn));
    }
    let Some((_, conn)) = conns.iter_mut().find(|(n, _)| Some(*n) == judged) else {
        return Outcome::Other("no request".into());
    };
    let mut asked = Instant::now();
    let mut reply = conn.recv(BOSH_ANSWER);
    // The echo may come after an empty answer, the end after a few.
    let polls = match steps.get(judged.unwrap_or(0)) {
        Some(BStep::Poll) => 5,
        _ if steps.iter().any(BStep::carries_echo) => 5,
        _ => 0,
    };
    for _ in 0..polls {
        let plain = reply.as_ref().is_some_and(|r| {
            !r.body.contains(&mark) && r.attr("type").is_none() && r.status == 200
        });
        if !plain {
            break;
        }
        session.rid += 1;
        conn.send(&body(session.rid, &session.sid, "", ""));
        asked = Instant::now();
        reply = conn.recv(BOSH_ANSWER);
    }
    let Some(reply) = reply else {
        return match asked.elapsed() < BOSH_ANSWER {
            true => Outcome::Cut,
            false => Outcome::Unanswered,
        };
    };
    bosh_answer(&reply, &mark, || watch.server(SERVER_WAIT))
}

/// What a BOSH answer says: an HTTP refusal, a terminate, or the echo.
pub fn bosh_answer(reply: &HttpResponse, mark: &str, server: impl Fn() -> Server) -> Outcome {
    if reply.status != 200 {
        return Outcome::Http {
            statuses: Cow::Owned(vec![reply.status]),
            close: reply
                .header("Connection")
                .is_some_and(|c| c.eq_ignore_ascii_case("close")),
        };
    }
    if reply.attr("type").as_deref() == Some("terminate") {
        return Outcome::Terminate {
            condition: reply.attr("condition").map(Cow::Owned),
            server: server(),
        };
    }
    if reply.body.contains(mark) {
        return Outcome::Served;
    }
    Outcome::Other(format!("answered: {}", reply.body))
}

fn http_post(body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {BOSH_PATH} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// A template with the session's `{sid}` and rids filled in.
fn fill(template: &[u8], sid: &str, rid: &mut u64) -> Vec<u8> {
    let mut out = replace(template, b"{sid}", sid.as_bytes());
    out = replace(&out, b"{skip}", (*rid + 2).to_string().as_bytes());
    out = replace(&out, b"{ahead}", (*rid + 3).to_string().as_bytes());
    while let Some(at) = find(&out, b"{rid}") {
        *rid += 1;
        out.splice(at..at + 5, rid.to_string().into_bytes());
    }
    replace(&out, b"{last}", rid.to_string().as_bytes())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some(at) = find(rest, from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

// --- the log

/// Every line switchboard logged in this process, at INFO and above
/// (the in-process servers of every category).
static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Keeps switchboard's log lines for [`logged_where`], from the first
/// category on.
fn capture_log() {
    static LOGGER: Capture = Capture;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

/// The first line logged so far that `wanted`, waiting up to `wait`.
pub fn logged_where(wanted: impl Fn(&str) -> bool, wait: Duration) -> Option<String> {
    let deadline = Instant::now() + wait;
    loop {
        let found = lines().iter().find(|l| wanted(l)).cloned();
        if found.is_some() || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn lines() -> std::sync::MutexGuard<'static, Vec<String>> {
    LINES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            lines().push(format!("{} {}", record.level(), record.args()));
        }
    }

    fn flush(&self) {}
}

// --- tables over both transports

/// The transport a probe goes over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    WebSocket,
    Bosh,
}

/// A table whose rows `"name", make(input) => websocket, bosh;` are two
/// cases, one per transport (`make(input, via)` builds each probe), and
/// whose rows `"name", make(input) => websocket;` and
/// `"name", make(input) => _, bosh;` (the other covered elsewhere) are one.
macro_rules! over_both {
    (@rows [$($done:expr,)*]) => { &[$($done,)*] };
    (@rows [$($done:expr,)*] $name:literal, $make:ident($input:expr) => _, $bosh:expr; $($rest:tt)*) => {
        over_both!(@rows [$($done,)*
            $crate::corpus::case(concat!($name, ", over BOSH"), $make($input, $crate::corpus::Via::Bosh), $bosh),
        ] $($rest)*)
    };
    (@rows [$($done:expr,)*] $name:literal, $make:ident($input:expr) => $ws:expr, $bosh:expr; $($rest:tt)*) => {
        over_both!(@rows [$($done,)*
            $crate::corpus::case(concat!($name, ", over WebSocket"), $make($input, $crate::corpus::Via::WebSocket), $ws),
            $crate::corpus::case(concat!($name, ", over BOSH"), $make($input, $crate::corpus::Via::Bosh), $bosh),
        ] $($rest)*)
    };
    (@rows [$($done:expr,)*] $name:literal, $make:ident($input:expr) => $ws:expr; $($rest:tt)*) => {
        over_both!(@rows [$($done,)*
            $crate::corpus::case(concat!($name, ", over WebSocket"), $make($input, $crate::corpus::Via::WebSocket), $ws),
        ] $($rest)*)
    };
    ($($rows:tt)*) => { over_both!(@rows [] $($rows)*) };
}

pub(crate) use over_both;
