//! Simulated web clients, BOSH and WebSocket, each one session. They cut
//! what they send at random (the network cuts further), pipeline, open new
//! connections, abandon a connection holding a request and send it again
//! elsewhere (a page reload), stop reading for a while, vanish, or close
//! cleanly; and they check what comes back against the ledger.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use switchboard_core::endpoint::Endpoint;

use super::ledger::{ids, Ledger};
use super::net::{ConnRef, Net};
use super::rng::Rng;

/// `SIM_TRACE=TAG` prints what client TAG does.
fn trace(tag: u64, now: std::time::Instant, what: std::fmt::Arguments) {
    if std::env::var("SIM_TRACE").ok().and_then(|t| t.parse().ok()) == Some(tag) {
        eprintln!("[{tag} {:?}] {what}", now);
    }
}

/// A client waiting this long for an answer it is owed is a hang.
pub const HANG: Duration = Duration::from_secs(60);
/// A client that stops reading for longer than the endpoint lingers over
/// a close (2 s here) may never read why its session ended.
const LONG_SILENCE: Duration = Duration::from_secs(2);

/// How a client's session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The client closed and everything it sent was echoed.
    Closed,
    /// The client was told why (terminate body, close frame, HTTP status).
    Told(String),
    /// The client left without a word.
    Vanished,
}

/// What a client will do, chosen when it starts.
struct Plan {
    messages: u64,
    /// Leave without closing after this many messages.
    vanish_after: Option<u64>,
    /// Stop reading (and sending) at this message, for this long.
    silence: Option<(u64, Duration)>,
}

impl Plan {
    fn new(rng: &mut Rng) -> Plan {
        Plan {
            messages: rng.between(0, 12),
            vanish_after: rng.chance(150).then(|| rng.below(8)),
            silence: rng.chance(150).then(|| {
                (
                    rng.below(8),
                    Duration::from_millis(rng.between(100, 12_000)),
                )
            }),
        }
    }
}

/// A message of the client's, with a body of random size.
fn message(rng: &mut Rng, tag: u64, n: u64) -> String {
    let body = "x".repeat(rng.between(0, 3000) as usize);
    format!("<message xmlns='jabber:client' to='echo@sim.test' id='m{tag}-{n}'><body>{body}</body></message>")
}

/// Check the echoes and pushes in `bytes` against the ledger.
fn received(ledger: &mut Ledger, bytes: &[u8]) -> Result<(), String> {
    for (tag, n) in ids(bytes, 'e') {
        ledger.echo_received(tag, n)?;
    }
    for (tag, k) in ids(bytes, 'p') {
        ledger.push_received(tag, k)?;
    }
    Ok(())
}

// ----------------------------------------------------------------------
// WebSocket (RFC 6455, RFC 7395)

#[derive(Debug, PartialEq, Eq)]
enum WsState {
    Upgrading,
    Opening,
    Ready,
    Closing,
}

pub struct WsClient {
    pub tag: u64,
    conn: ConnRef,
    state: WsState,
    input: Vec<u8>,
    plan: Plan,
    sent: u64,
    silent_until: Option<Instant>,
    /// A silence was long enough to miss the reason of an end.
    long_silence: bool,
    /// Since when the client waits for something it is owed.
    waiting_since: Option<Instant>,
    pub outcome: Option<Outcome>,
}

const UPGRADE: &str = "GET /xmpp-websocket HTTP/1.1\r\nHost: sim.test\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n";
const OPEN: &str =
    "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='sim.test' version='1.0'/>";
const CLOSE: &str = "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>";

/// A masked client frame (RFC 6455 §5.3).
fn frame(rng: &mut Rng, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n < 65536 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask = (rng.next_u64() as u32).to_be_bytes();
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// The next complete server frame: (opcode, payload, length used).
fn server_frame(input: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let (&b0, rest) = input.split_first()?;
    let (&b1, rest) = rest.split_first()?;
    let (len, head) = match b1 & 0x7f {
        126 => (
            usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?])),
            4,
        ),
        127 => (
            u64::from_be_bytes(rest.get(..8)?.try_into().ok()?) as usize,
            10,
        ),
        n => (usize::from(n), 2),
    };
    let payload = input.get(head..head + len)?;
    Some((b0 & 0x0f, payload.to_vec(), head + len))
}

impl WsClient {
    pub fn start(
        net: &mut Net,
        endpoint: &mut Endpoint,
        rng: &mut Rng,
        tag: u64,
        peer: SocketAddr,
    ) -> WsClient {
        let window = if rng.chance(200) { 2048 } else { 256 * 1024 };
        let conn = net.accept(endpoint, rng, peer, window);
        net.send(rng, conn, UPGRADE.as_bytes());
        WsClient {
            tag,
            conn,
            state: WsState::Upgrading,
            input: Vec::new(),
            plan: Plan::new(rng),
            sent: 0,
            silent_until: None,
            long_silence: false,
            waiting_since: Some(net.now),
            outcome: None,
        }
    }

    /// Finish soon: no more messages than already sent.
    pub fn wind_down(&mut self) {
        self.plan.messages = self.plan.messages.min(self.sent);
        self.plan.silence = None;
    }

    pub fn step(
        &mut self,
        net: &mut Net,
        rng: &mut Rng,
        ledger: &mut Ledger,
    ) -> Result<(), String> {
        if self.outcome.is_some() {
            return Ok(());
        }
        let now = net.now;
        if self.silent_until.is_some_and(|t| now < t) {
            return Ok(());
        }
        self.silent_until = None;
        let bytes = net.recv(self.conn, usize::MAX);
        self.input.extend_from_slice(&bytes);
        if self.state == WsState::Upgrading {
            let Some(end) = self.input.windows(4).position(|w| w == b"\r\n\r\n") else {
                return self.check_eof(net);
            };
            let head = String::from_utf8_lossy(&self.input[..end]).into_owned();
            self.input.drain(..end + 4);
            if !head.starts_with("HTTP/1.1 101") {
                self.outcome = Some(Outcome::Told(head.lines().next().unwrap_or("").into()));
                net.close(self.conn);
                return Ok(());
            }
            self.state = WsState::Opening;
            let open = frame(rng, 1, OPEN.as_bytes());
            net.send(rng, self.conn, &open);
        }
        while let Some((opcode, payload, used)) = server_frame(&self.input) {
            self.input.drain(..used);
            trace(
                self.tag,
                now,
                format_args!(
                    "frame {opcode}: {}",
                    String::from_utf8_lossy(&payload[..payload.len().min(120)])
                ),
            );
            match opcode {
                1 => self.text(net, &payload, ledger)?,
                8 => {
                    let code = payload
                        .get(..2)
                        .map_or(0, |c| u16::from_be_bytes([c[0], c[1]]));
                    self.outcome = Some(if self.state == WsState::Closing {
                        ledger.check_complete(self.tag)?;
                        Outcome::Closed
                    } else {
                        Outcome::Told(format!("close {code}"))
                    });
                    net.close(self.conn);
                    return Ok(());
                }
                9 => {
                    let pong = frame(rng, 10, &payload);
                    net.send(rng, self.conn, &pong);
                }
                _ => {}
            }
        }
        if self.outcome.is_none() {
            self.act(net, rng, ledger);
        }
        self.check_eof(net)?;
        if self
            .waiting_since
            .is_some_and(|since| now.saturating_duration_since(since) > HANG)
        {
            return Err(format!(
                "websocket session {} hangs in {:?}",
                self.tag, self.state
            ));
        }
        Ok(())
    }

    fn text(&mut self, net: &Net, payload: &[u8], ledger: &mut Ledger) -> Result<(), String> {
        let text = String::from_utf8_lossy(payload);
        if text.starts_with("<stream:features") && self.state == WsState::Opening {
            self.state = WsState::Ready;
            self.waiting_since = None;
        }
        received(ledger, payload)?;
        if ledger.all_echoed(self.tag) && self.state == WsState::Ready {
            self.waiting_since = None;
        } else if self.state == WsState::Ready {
            self.waiting_since = Some(net.now);
        }
        Ok(())
    }

    fn act(&mut self, net: &mut Net, rng: &mut Rng, ledger: &mut Ledger) {
        if self.state != WsState::Ready {
            return;
        }
        if self.plan.vanish_after.is_some_and(|n| self.sent >= n) {
            net.close(self.conn);
            self.outcome = Some(Outcome::Vanished);
            return;
        }
        if let Some((_, how_long)) = self.plan.silence.filter(|(at, _)| self.sent >= *at) {
            self.plan.silence = None;
            self.silent_until = Some(net.now + how_long);
            trace(self.tag, net.now, format_args!("silent for {how_long:?}"));
            self.long_silence = how_long >= LONG_SILENCE;
            self.waiting_since = None;
            return;
        }
        let in_flight = !ledger.all_echoed(self.tag);
        if self.sent < self.plan.messages && (!in_flight || rng.chance(300)) {
            self.sent += 1;
            let n = ledger.next_message(self.tag);
            let text = message(rng, self.tag, n);
            let bytes = frame(rng, 1, text.as_bytes());
            trace(self.tag, net.now, format_args!("send m{}-{n}", self.tag));
            net.send(rng, self.conn, &bytes);
            self.waiting_since.get_or_insert(net.now);
        } else if self.sent >= self.plan.messages && !in_flight {
            let bytes = frame(rng, 1, CLOSE.as_bytes());
            net.send(rng, self.conn, &bytes);
            self.state = WsState::Closing;
            self.waiting_since = Some(net.now);
        }
    }

    /// The connection ended: fine after a long silence (the close was not
    /// read in time, or pings went unanswered), a lost reason otherwise.
    fn check_eof(&mut self, net: &mut Net) -> Result<(), String> {
        if self.outcome.is_none() && net.at_eof(self.conn) {
            if !self.long_silence {
                return Err(format!(
                    "websocket session {} ended in {:?} without a reason",
                    self.tag, self.state
                ));
            }
            self.outcome = Some(Outcome::Told("dropped while silent".into()));
            net.close(self.conn);
        }
        Ok(())
    }
}

// ----------------------------------------------------------------------
// BOSH (XEP-0124, XEP-0206)

struct HttpConn {
    conn: ConnRef,
    input: Vec<u8>,
    /// Rids of the requests sent on it, in order.
    pending: VecDeque<u64>,
    abandoned: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum BoshState {
    Creating,
    Waiting,
    Ready,
    Terminating,
}

pub struct BoshClient {
    pub tag: u64,
    peer: SocketAddr,
    window: usize,
    conns: Vec<HttpConn>,
    state: BoshState,
    sid: Option<String>,
    next_rid: u64,
    wait: u64,
    /// Every request not answered yet, by rid, with its body for a resend.
    outstanding: BTreeMap<u64, String>,
    /// Responses come in any order over several connections; they are
    /// taken in rid order.
    responses: BTreeMap<u64, String>,
    next_response: u64,
    /// Rids whose connection was abandoned, to send again.
    resend: Vec<u64>,
    plan: Plan,
    sent: u64,
    silent_until: Option<Instant>,
    waiting_since: Option<Instant>,
    pub outcome: Option<Outcome>,
}

const NS_HTTPBIND: &str = "http://jabber.org/protocol/httpbind";

impl BoshClient {
    pub fn start(
        net: &mut Net,
        endpoint: &mut Endpoint,
        rng: &mut Rng,
        tag: u64,
        peer: SocketAddr,
    ) -> BoshClient {
        let rid = rng.between(1, 1 << 40);
        let mut client = BoshClient {
            tag,
            peer,
            window: if rng.chance(150) { 2048 } else { 256 * 1024 },
            conns: Vec::new(),
            state: BoshState::Creating,
            sid: None,
            next_rid: rid,
            wait: rng.between(1, 4),
            outstanding: BTreeMap::new(),
            responses: BTreeMap::new(),
            next_response: rid,
            resend: Vec::new(),
            plan: Plan::new(rng),
            sent: 0,
            silent_until: None,
            waiting_since: Some(net.now),
            outcome: None,
        };
        let body = format!(
            "<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh' rid='{rid}' to='sim.test' \
             wait='{}' hold='1' ver='1.11' xmpp:version='1.0'/>",
            client.wait
        );
        client.request(net, endpoint, rng, body);
        client
    }

    pub fn wind_down(&mut self) {
        self.plan.messages = self.plan.messages.min(self.sent);
        self.plan.silence = None;
    }

    /// Send the next rid's request.
    fn request(&mut self, net: &mut Net, endpoint: &mut Endpoint, rng: &mut Rng, body: String) {
        let rid = self.next_rid;
        self.next_rid += 1;
        self.outstanding.insert(rid, body);
        self.send(net, endpoint, rng, rid);
    }

    /// Put request `rid` on a connection: an idle one, a busy one
    /// (pipelining) or a new one.
    fn send(&mut self, net: &mut Net, endpoint: &mut Endpoint, rng: &mut Rng, rid: u64) {
        let Some(body) = self.outstanding.get(&rid) else {
            return;
        };
        let live = |c: &&mut HttpConn| !c.abandoned && !net.at_eof(c.conn);
        let idle = self
            .conns
            .iter_mut()
            .filter(live)
            .position(|c| c.pending.is_empty());
        let pipeline = rng.chance(200);
        let at = match idle {
            Some(at) if !rng.chance(100) => Some(at),
            _ if pipeline => self.conns.iter_mut().filter(live).position(|_| true),
            _ => None,
        };
        let conn = match at.and_then(|at| {
            self.conns
                .iter_mut()
                .filter(|c| !c.abandoned && !net.at_eof(c.conn))
                .nth(at)
        }) {
            Some(conn) => conn,
            None => {
                let conn = net.accept(endpoint, rng, self.peer, self.window);
                self.conns.push(HttpConn {
                    conn,
                    input: Vec::new(),
                    pending: VecDeque::new(),
                    abandoned: false,
                });
                self.conns.last_mut().expect("just pushed")
            }
        };
        let request = format!(
            "POST /http-bind HTTP/1.1\r\nHost: sim.test\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.pending.push_back(rid);
        trace(
            self.tag,
            net.now,
            format_args!(
                "send rid {rid} on conn {}: {}",
                conn.conn,
                &body[..body.len().min(200)]
            ),
        );
        net.send(rng, conn.conn, request.as_bytes());
        self.waiting_since.get_or_insert(net.now);
    }

    pub fn step(
        &mut self,
        net: &mut Net,
        endpoint: &mut Endpoint,
        rng: &mut Rng,
        ledger: &mut Ledger,
    ) -> Result<(), String> {
        if self.outcome.is_some() {
            return Ok(());
        }
        let now = net.now;
        if self.silent_until.is_some_and(|t| now < t) {
            return Ok(());
        }
        self.silent_until = None;
        self.read(net)?;
        while let Some(body) = self.responses.remove(&self.next_response) {
            self.next_response += 1;
            self.response(&body, ledger)?;
            if self.outcome.is_some() {
                self.leave(net);
                return Ok(());
            }
        }
        for rid in std::mem::take(&mut self.resend) {
            self.send(net, endpoint, rng, rid);
        }
        self.act(net, endpoint, rng, ledger);
        if self.outstanding.is_empty() {
            self.waiting_since = None;
        }
        if self
            .waiting_since
            .is_some_and(|since| now.saturating_duration_since(since) > HANG)
        {
            return Err(format!(
                "bosh session {} hangs in {:?} with rids {:?} outstanding",
                self.tag,
                self.state,
                self.outstanding.keys().collect::<Vec<_>>()
            ));
        }
        Ok(())
    }

    /// Read every connection; complete responses go to `responses`.
    fn read(&mut self, net: &mut Net) -> Result<(), String> {
        for conn in self.conns.iter_mut().filter(|c| !c.abandoned) {
            let bytes = net.recv(conn.conn, usize::MAX);
            conn.input.extend_from_slice(&bytes);
            while let Some((status, body, used)) = http_response(&conn.input) {
                conn.input.drain(..used);
                let Some(rid) = conn.pending.pop_front() else {
                    return Err(format!(
                        "bosh session {}: a response nobody asked for",
                        self.tag
                    ));
                };
                if status != 200 {
                    self.outcome = Some(Outcome::Told(format!("http {status}")));
                    return Ok(());
                }
                self.outstanding.remove(&rid);
                trace(
                    self.tag,
                    net.now,
                    format_args!(
                        "response rid {rid} on conn {}: {}",
                        conn.conn,
                        &body[..body.len().min(300)]
                    ),
                );
                self.waiting_since = (!self.outstanding.is_empty()).then_some(net.now);
                self.responses.insert(rid, body);
            }
            if net.at_eof(conn.conn) && !conn.pending.is_empty() {
                return Err(format!(
                    "bosh session {}: connection closed with rids {:?} unanswered",
                    self.tag, conn.pending
                ));
            }
        }
        Ok(())
    }

    fn response(&mut self, body: &str, ledger: &mut Ledger) -> Result<(), String> {
        if body.contains("type='terminate'") || body.contains("type=\"terminate\"") {
            self.outcome = Some(if self.state == BoshState::Terminating {
                ledger.check_complete(self.tag)?;
                Outcome::Closed
            } else {
                let condition = body
                    .split("condition='")
                    .nth(1)
                    .and_then(|c| c.split('\'').next())
                    .unwrap_or("none");
                Outcome::Told(format!("terminate {condition}"))
            });
            return Ok(());
        }
        if let Some(sid) = body
            .split("sid='")
            .nth(1)
            .and_then(|s| s.split('\'').next())
        {
            if self.sid.is_none() {
                self.sid = Some(sid.to_string());
                self.state = BoshState::Waiting;
            }
        }
        if body.contains("<stream:features") && self.state == BoshState::Waiting {
            self.state = BoshState::Ready;
        }
        received(ledger, body.as_bytes())
    }

    fn act(&mut self, net: &mut Net, endpoint: &mut Endpoint, rng: &mut Rng, ledger: &mut Ledger) {
        let Some(sid) = self.sid.clone() else {
            return;
        };
        if self.state == BoshState::Terminating {
            return;
        }
        if self.plan.vanish_after.is_some_and(|n| self.sent >= n) && self.state == BoshState::Ready
        {
            self.outcome = Some(Outcome::Vanished);
            self.leave(net);
            return;
        }
        if let Some((_, how_long)) = self.plan.silence.filter(|(at, _)| self.sent >= *at) {
            self.plan.silence = None;
            // A BOSH client that stops reading stops asking too.
            self.silent_until = Some(net.now + how_long.min(Duration::from_secs(4)));
            self.waiting_since = None;
            return;
        }
        // A page reload: the connection holding a request goes; the
        // request is sent again on another.
        if rng.chance(8) {
            if let Some(conn) = self
                .conns
                .iter_mut()
                .find(|c| !c.abandoned && !c.pending.is_empty())
            {
                conn.abandoned = true;
                trace(
                    self.tag,
                    net.now,
                    format_args!("abandon conn {} with {:?}", conn.conn, conn.pending),
                );
                net.close(conn.conn);
                self.resend.extend(conn.pending.drain(..));
                return;
            }
        }
        // XEP-0124 §14.3: no rid beyond the oldest unanswered one plus
        // `requests` (2 with hold 1), or the server cannot keep what an
        // abandoned request missed.
        let in_window = self
            .outstanding
            .keys()
            .next()
            .is_none_or(|oldest| self.next_rid < oldest + 2);
        let outstanding = if in_window { self.outstanding.len() } else { 2 };
        let head = |extra: &str, rid: u64| {
            format!("<body xmlns='{NS_HTTPBIND}' rid='{rid}' sid='{sid}'{extra}>")
        };
        if self.state == BoshState::Ready && self.sent < self.plan.messages && outstanding < 2 {
            let mut payload = String::new();
            // Two messages of up to 3 KB stay under the element limit.
            for _ in 0..rng.between(1, 2).min(self.plan.messages - self.sent) {
                self.sent += 1;
                let n = ledger.next_message(self.tag);
                payload.push_str(&message(rng, self.tag, n));
            }
            let body = format!("{}{payload}</body>", head("", self.next_rid));
            self.request(net, endpoint, rng, body);
        } else if self.state == BoshState::Ready
            && self.sent >= self.plan.messages
            && ledger.all_echoed(self.tag)
            && outstanding < 2
        {
            let body = format!("{}</body>", head(" type='terminate'", self.next_rid));
            self.state = BoshState::Terminating;
            self.request(net, endpoint, rng, body);
        } else if outstanding == 0 {
            let body = format!("{}</body>", head("", self.next_rid));
            self.request(net, endpoint, rng, body);
        }
    }

    /// Close every connection.
    fn leave(&mut self, net: &mut Net) {
        for conn in &self.conns {
            net.close(conn.conn);
        }
    }
}

/// A complete HTTP response at the start of `input`: (status, body, used).
pub fn http_response(input: &[u8]) -> Option<(u16, String, usize)> {
    let end = input.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&input[..end]).ok()?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let body = input.get(end..end + len)?;
    Some((
        status,
        String::from_utf8_lossy(body).into_owned(),
        end + len,
    ))
}
