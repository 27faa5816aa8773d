//! BOSH and WebSocket timing on the simulation's virtual clock, in exact
//! mode (no latency, no cuts, no faults): what used to be checked against
//! a real server with real sleeps, now checked to the millisecond and in
//! no time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use switchboard_core::dns;
use switchboard_core::endpoint::Endpoint;

use super::clients::http_response;
use super::ledger::Ledger;
use super::net::{ConnRef, Net};
use super::rng::Rng;
use super::server::ServerConn;
use super::settings;

const NS: &str = "http://jabber.org/protocol/httpbind";
const RID: u64 = 1_000;

struct Scenario {
    net: Net,
    endpoint: Endpoint,
    rng: Rng,
    servers: Vec<ServerConn>,
    ledger: Ledger,
    /// Bytes a client connection received and has not parsed yet.
    input: HashMap<ConnRef, Vec<u8>>,
}

impl Scenario {
    fn new() -> Scenario {
        let now = Instant::now();
        let mut net = Net::new(now);
        net.exact = true;
        let endpoint = Endpoint::new(settings(), dns::ResolverConfig::default(), now)
            .expect("the system random generator");
        Scenario {
            net,
            endpoint,
            rng: Rng::new(0),
            servers: Vec::new(),
            ledger: Ledger::default(),
            input: HashMap::new(),
        }
    }

    /// Everything due by now happens: deliveries, the server, turns, timers.
    fn settle(&mut self) {
        for _ in 0..16 {
            self.net.advance(&mut self.endpoint, &mut self.rng);
            for conn in self.net.accepted_backends.drain(..) {
                self.servers.push(ServerConn::plain(&mut self.rng, conn));
            }
            for server in &mut self.servers {
                server
                    .step(&mut self.net, &mut self.rng, &mut self.ledger)
                    .expect("a well-behaved exchange");
            }
            self.net.run_queue(&mut self.endpoint, &mut self.rng);
            let now = self.net.now;
            if self.endpoint.poll_timeout().is_some_and(|at| at <= now) {
                self.endpoint.handle_timeout(now);
                self.net.run_commands(&mut self.endpoint, &mut self.rng);
            }
        }
    }

    fn advance(&mut self, by: Duration) {
        self.net.now += by;
        self.settle();
    }

    fn connect(&mut self) -> ConnRef {
        self.connect_with_window(256 * 1024)
    }

    /// A client whose receive buffer holds `window` bytes.
    fn connect_with_window(&mut self, window: usize) -> ConnRef {
        let peer = "127.0.0.1:40000".parse().expect("an address");
        let conn = self
            .net
            .accept(&mut self.endpoint, &mut self.rng, peer, window);
        self.settle();
        conn
    }

    fn send(&mut self, conn: ConnRef, bytes: &[u8]) {
        self.net.send(&mut self.rng, conn, bytes);
        self.settle();
    }

    fn post(&mut self, conn: ConnRef, body: &str) {
        let request = format!(
            "POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.send(conn, request.as_bytes());
    }

    /// The connection's next whole HTTP response body, if one came.
    fn response(&mut self, conn: ConnRef) -> Option<String> {
        let bytes = self.net.recv(conn, usize::MAX);
        let input = self.input.entry(conn).or_default();
        input.extend_from_slice(&bytes);
        let (status, body, used) = http_response(input)?;
        input.drain(..used);
        assert_eq!(status, 200, "{body}");
        Some(body)
    }

    /// Every byte the connection received since last asked.
    fn received(&mut self, conn: ConnRef) -> Vec<u8> {
        let mut bytes = self.input.remove(&conn).unwrap_or_default();
        bytes.extend(self.net.recv(conn, usize::MAX));
        bytes
    }

    /// A BOSH session whose features came; its sid.
    fn bosh(&mut self, conn: ConnRef, extra: &str) -> String {
        self.post(
            conn,
            &format!(
                "<body xmlns='{NS}' xmlns:xmpp='urn:xmpp:xbosh' rid='{RID}' to='sim.test' \
                 wait='4' hold='1' ver='1.11' xmpp:version='1.0' {extra}/>"
            ),
        );
        let created = self.response(conn).expect("the creation response");
        assert!(created.contains("<stream:features"), "{created}");
        attr(&created, "sid").expect("a sid")
    }
}

fn body(rid: u64, sid: &str, extra: &str, payload: &str) -> String {
    format!("<body xmlns='{NS}' rid='{rid}' sid='{sid}' {extra}>{payload}</body>")
}

fn attr(body: &str, name: &str) -> Option<String> {
    let start = body.find(&format!(" {name}='"))? + name.len() + 3;
    let len = body[start..].find('\'')?;
    Some(body[start..start + len].to_string())
}

/// XEP-0124 §9: with acks, a response the client never acknowledged is
/// reported (`report`, `time`) once it is 2 s old, and a repeat of its
/// request gets it byte for byte.
#[test]
fn acks_report_a_missed_response_and_its_repeat_gets_it() {
    let mut s = Scenario::new();
    let first = s.connect();
    let sid = s.bosh(first, "ack='1'");
    let n = RID;
    // n+1 is held; n+2 releases it, and its answer acknowledges n+2.
    s.post(first, &body(n + 1, &sid, "", ""));
    let second = s.connect();
    s.post(
        second,
        &body(n + 2, &sid, &format!("ack='{n}'"), "<presence/>"),
    );
    let lost = s.response(first).expect("n+1 answered");
    assert_eq!(attr(&lost, "ack"), Some((n + 2).to_string()), "{lost}");
    // The client "never got" n+1's answer: 2.1 s on it still acks n.
    s.advance(Duration::from_millis(2_100));
    let third = s.connect();
    s.post(
        third,
        &body(n + 3, &sid, &format!("ack='{n}'"), "<presence/>"),
    );
    let reported = s.response(second).expect("n+2 answered at once");
    assert_eq!(attr(&reported, "report"), Some((n + 1).to_string()));
    assert_eq!(attr(&reported, "time"), Some("2100".into()), "{reported}");
    let fourth = s.connect();
    s.post(fourth, &body(n + 1, &sid, "", ""));
    assert_eq!(s.response(fourth), Some(lost), "the kept response");
}

/// XEP-0124 §11: empty requests while another is held, faster than
/// `polling`, end the session with policy-violation; but not when the
/// held request's connection went away first (a page reload).
#[test]
fn overactivity_is_policed_but_a_page_reload_is_not() {
    let mut s = Scenario::new();
    let page = s.connect();
    let sid = s.bosh(page, "");
    // A reload: the held request's connection goes, the new page carries
    // on with the next rid at once.
    let old_page = s.connect();
    s.post(old_page, &body(RID + 1, &sid, "", ""));
    s.net.close(old_page);
    s.settle();
    let message = "<message to='echo@sim.test' id='m1-1'><body>hi</body></message>";
    s.post(page, &body(RID + 2, &sid, "", message));
    let reply = s.response(page).expect("answered with the echo");
    assert!(reply.contains("id='e1-1'"), "{reply}");
    // Overactivity: one held, another empty one at once.
    s.post(page, &body(RID + 3, &sid, "", ""));
    let other = s.connect();
    s.post(other, &body(RID + 4, &sid, "", ""));
    let refused = s.response(other).expect("refused at once");
    assert_eq!(
        attr(&refused, "condition").as_deref(),
        Some("policy-violation")
    );
}

/// A held request is answered empty after `wait`, not a moment before.
#[test]
fn a_held_request_is_answered_after_wait() {
    let mut s = Scenario::new();
    let conn = s.connect();
    let sid = s.bosh(conn, "");
    s.post(conn, &body(RID + 1, &sid, "", ""));
    s.advance(Duration::from_millis(3_990));
    assert_eq!(s.response(conn), None, "held for wait = 4 s");
    s.advance(Duration::from_millis(20));
    let reply = s.response(conn).expect("answered after wait");
    assert!(!reply.contains("terminate"), "{reply}");
}

/// An idle WebSocket client gets a ping after `ping_interval` (5 s here)
/// and is dropped when it does not answer within `pong_timeout` (2 s).
#[test]
fn an_idle_websocket_client_is_pinged_then_dropped_without_pong() {
    let mut s = Scenario::new();
    let conn = s.connect();
    s.send(
        conn,
        b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Protocol: xmpp\r\n\r\n",
    );
    let open = b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='sim.test' version='1.0'/>";
    let mut frame = vec![0x81, 0x80 | open.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(open);
    s.send(conn, &frame);
    assert!(!s.received(conn).is_empty(), "the upgrade and <open/>");
    s.advance(Duration::from_millis(4_990));
    assert!(s.received(conn).is_empty(), "no ping before 5 s");
    s.advance(Duration::from_millis(20));
    assert_eq!(s.received(conn), vec![0x89, 0x00], "a ping frame");
    s.advance(Duration::from_millis(1_990));
    assert!(!s.net.at_eof(conn), "not dropped before the pong timeout");
    s.advance(Duration::from_millis(20));
    assert!(s.net.at_eof(conn), "dropped without a pong");
}

/// Slowloris on a kept-alive connection: once a request has begun it must
/// be whole within `http.read_timeout` (2 s here), not the 5 s a kept-alive
/// connection may idle between requests.
#[test]
fn a_request_begun_must_be_whole_within_the_read_timeout() {
    let mut s = Scenario::new();
    let conn = s.connect();
    s.send(conn, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(s.received(conn).starts_with(b"HTTP/1.1 200"));
    s.advance(Duration::from_secs(1));
    s.send(conn, b"GET / HTTP/1.1\r\nHo");
    s.advance(Duration::from_millis(1_990));
    assert!(!s.net.at_eof(conn), "still within the read timeout");
    s.advance(Duration::from_millis(20));
    assert!(
        s.net.at_eof(conn),
        "cut when the request was not whole in time"
    );
}

/// A client that reads nothing is cut after `http.write_timeout` (8 s
/// here), however busily it sends: the server behind switchboard does not
/// buffer for it forever.
#[test]
fn a_client_that_reads_nothing_is_cut_after_the_write_timeout() {
    let mut s = Scenario::new();
    let conn = s.connect_with_window(1024);
    s.send(
        conn,
        b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Protocol: xmpp\r\n\r\n",
    );
    let frame = |text: &str| {
        let mut bytes = vec![0x81, 0xfe];
        bytes.extend_from_slice(&(text.len() as u16).to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        bytes.extend_from_slice(text.as_bytes());
        bytes
    };
    s.send(
        conn,
        &frame("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='sim.test' version='1.0'/>"),
    );
    // Echoes pile up unread; the client keeps sending.
    let body = "x".repeat(500);
    for n in 1..=40u64 {
        let message =
            format!("<message to='echo@sim.test' id='m1-{n}'><body>{body}</body></message>");
        s.send(conn, &frame(&message));
        s.advance(Duration::from_millis(200));
        if s.net.conn(conn).is_some_and(|c| c.closed_by_endpoint) {
            let stalled_for = n * 200;
            assert!(
                (8_000..=9_000).contains(&stalled_for),
                "cut after {stalled_for} ms"
            );
            return;
        }
    }
    panic!("a client that read nothing for 8 s was not cut");
}

/// A request too broken to parse that names a live session gets
/// `bad-request`, and the session is over for switchboard and the server
/// too, at once: it does not linger for its inactivity period.
#[test]
fn a_session_told_bad_request_is_released_at_once_with_its_server_stream() {
    let mut s = Scenario::new();
    let conn = s.connect();
    let sid = s.bosh(conn, "");
    assert_eq!(s.endpoint.usage().links, 1);
    s.post(
        conn,
        &format!(
            "<body xmlns='{NS}' rid='{}' sid='{sid}'><unclosed></body>",
            RID + 1
        ),
    );
    let reply = s.response(conn).expect("answered at once");
    assert_eq!(attr(&reply, "condition").as_deref(), Some("bad-request"));
    s.advance(Duration::from_millis(10));
    let usage = s.endpoint.usage();
    assert_eq!((usage.sessions, usage.links), (0, 0), "{usage:?}");
    assert_eq!(s.endpoint.sessions(), 0);
}

/// A session that ends while no request is held (its server went away)
/// tells the client's next request why; a session the client terminated
/// answers its terminate sent again with the same response (XEP-0124
/// §14.3: the first answer may have been lost) and any other request
/// `item-not-found`.
#[test]
fn the_next_request_hears_why_a_session_ended_unless_the_client_ended_it() {
    let mut s = Scenario::new();
    let conn = s.connect();
    let sid = s.bosh(conn, "");
    let server = s.servers[0].conn();
    s.net.close(server);
    s.advance(Duration::from_millis(10));
    s.post(conn, &body(RID + 1, &sid, "", ""));
    let told = s.response(conn).expect("answered at once");
    assert_eq!(
        attr(&told, "condition").as_deref(),
        Some("remote-connection-failed")
    );

    let conn = s.connect();
    let sid = s.bosh(conn, "");
    let terminate = body(RID + 1, &sid, "type='terminate'", "");
    s.post(conn, &terminate);
    let answered = s.response(conn).expect("terminated");
    assert!(answered.contains("terminate"), "{answered}");
    s.advance(Duration::from_millis(300));
    s.post(conn, &terminate);
    assert_eq!(s.response(conn).expect("answered again"), answered);
    s.post(conn, &body(RID + 2, &sid, "", ""));
    let gone = s.response(conn).expect("answered");
    assert_eq!(attr(&gone, "condition").as_deref(), Some("item-not-found"));

    // The request held when the client terminated, its answer lost, sent
    // again: it hears that answer.
    let conn = s.connect();
    let sid = s.bosh(conn, "");
    s.post(conn, &body(RID + 1, &sid, "", ""));
    assert_eq!(s.response(conn), None, "held");
    let other = s.connect();
    s.post(other, &body(RID + 2, &sid, "type='terminate'", ""));
    assert!(s.response(other).expect("terminated").contains("terminate"));
    let held_answer = s.response(conn).expect("the held request answered");
    s.post(other, &body(RID + 1, &sid, "", ""));
    assert_eq!(s.response(other).expect("answered again"), held_answer);

    // The request held when its connection went away, then the client
    // terminated, sent again: the session ended as its client asked.
    let conn = s.connect();
    let sid = s.bosh(conn, "");
    s.post(conn, &body(RID + 1, &sid, "", ""));
    s.net.close(conn);
    s.advance(Duration::from_millis(10));
    let other = s.connect();
    s.post(other, &body(RID + 2, &sid, "type='terminate'", ""));
    assert!(s.response(other).expect("terminated").contains("terminate"));
    s.post(other, &body(RID + 1, &sid, "", ""));
    let ended = s.response(other).expect("answered");
    assert!(ended.contains("type='terminate'"), "{ended}");
    assert_eq!(attr(&ended, "condition"), None, "{ended}");
}
