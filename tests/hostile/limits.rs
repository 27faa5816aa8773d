//! Limits per client, behind the trusted proxy that loopback is by
//! default: sessions count by the last address of `X-Forwarded-For` (an
//! IPv6 host by its /64), BOSH and WebSocket together; sessions started
//! back to back are held to a rate, leaving or not; one address cannot
//! lock the others out; and a client that stops reading is cut after
//! `http.write_timeout` whatever it keeps sending. Limits here: 3 sessions
//! per address, 2 new a second in bursts of 10, 12 sessions in all, cut
//! after 2 s without a byte taken.
//!
//! Covered elsewhere and not repeated (tests/limits.rs): connections per
//! address answered 503, BOSH sessions over `max_sessions`, WebSocket
//! sessions over the per-address limit without a proxy, a session's place
//! given back when it ends, the buffer budget, sessions counted by a
//! forwarded list's last address, the rate on one address.

use std::net::SocketAddr;
use std::time::Duration;

use crate::corpus::{
    self, case, terminate, ws_error, Act, Backend, Begin, Case, Outcome, Server, Step, Via,
};
use crate::support::bosh_client::{body, create_body, BoshConn, BoshSession};
use crate::support::ws_client::{client_frame, OP_PING};
use crate::support::xmpp::chat_message;
use crate::support::{StubServer, WsClient, WAIT, WS_PATH};

use Via::{Bosh, WebSocket};

/// A session from behind the proxy: the `X-Forwarded-For` fields it
/// carries, and its transport.
type Client = (&'static [&'static str], Via);

pub enum Probe {
    /// These sessions kept open, then one more: refused, or logged in and
    /// relaying. All are ended after.
    Sessions(&'static [Client], Client),
    /// This many BOSH sessions created back to back on one keep-alive
    /// connection from one address, each ended at once, then one more.
    BackToBack(&'static str, usize),
    /// One address creating sessions on one keep-alive connection until
    /// refused, this many at most, then a session from another address.
    Lockout(&'static str, usize, Client),
    /// A logged-in WebSocket client that stops reading while its server
    /// floods it, sending pings all along.
    Unread,
}

const REFUSED_WS: Outcome = ws_error(1008, "resource-constraint", Server::None);
const REFUSED_BOSH: Outcome = terminate("policy-violation", Server::None);

#[rustfmt::skip]
pub const CASES: &[Case<Probe>] = &[
    case("BOSH sessions beyond max_sessions_per_address", Probe::Sessions(&[(&["203.0.113.10"], Bosh), (&["203.0.113.10"], Bosh), (&["203.0.113.10"], Bosh)], (&["203.0.113.10"], Bosh)), REFUSED_BOSH),
    case("WebSocket sessions beyond max_sessions_per_address", Probe::Sessions(&[(&["203.0.113.11"], WebSocket), (&["203.0.113.11"], WebSocket), (&["203.0.113.11"], WebSocket)], (&["203.0.113.11"], WebSocket)), REFUSED_WS),
    case("BOSH and WebSocket count together", Probe::Sessions(&[(&["203.0.113.12"], Bosh), (&["203.0.113.12"], WebSocket), (&["203.0.113.12"], Bosh)], (&["203.0.113.12"], WebSocket)), REFUSED_WS),
    case("the addresses of one IPv6 /64 count together", Probe::Sessions(&[(&["2001:db8:0:1::1"], Bosh), (&["2001:db8:0:1::2"], WebSocket), (&["2001:db8:0:1:ffff::3"], Bosh)], (&["2001:db8:0:1::4"], Bosh)), REFUSED_BOSH),
    case("another /64 is another address", Probe::Sessions(&[(&["2001:db8:0:2::1"], Bosh), (&["2001:db8:0:2::2"], WebSocket), (&["2001:db8:0:2::3"], Bosh)], (&["2001:db8:0:3::1"], WebSocket)), Outcome::Served),
    case("the last of two X-Forwarded-For fields counts", Probe::Sessions(&[(&["203.0.113.13"], Bosh), (&["203.0.113.13"], Bosh), (&["203.0.113.13"], WebSocket)], (&["198.51.100.99", "203.0.113.13"], Bosh)), REFUSED_BOSH),
    case("a forwarded address is not its first one", Probe::Sessions(&[(&["203.0.113.14, 198.51.100.1"], Bosh), (&["203.0.113.14, 198.51.100.2"], Bosh), (&["203.0.113.14, 198.51.100.3"], WebSocket)], (&["203.0.113.14"], Bosh)), Outcome::Served),
    case("sessions back to back beyond the burst, each ended at once", Probe::BackToBack("203.0.113.15", 10), REFUSED_BOSH),
    case("sessions back to back within the burst", Probe::BackToBack("203.0.113.16", 9), Outcome::Served),
    case("one keep-alive connection creating sessions back to back locks nobody out", Probe::Lockout("203.0.113.17", 15, (&["203.0.113.18"], WebSocket)), Outcome::Served),
    case("a client that stops reading is cut, pings or not", Probe::Unread, Outcome::WsEnd { error: None, close: false, code: None, server: Server::Dropped }),
];

/// A session from behind the proxy, kept until [`Kept::end`].
enum Kept {
    Bosh(BoshSession),
    WebSocket(Box<WsClient>),
}

impl Kept {
    fn end(self) {
        match self {
            Kept::Bosh(mut session) => {
                let _ = session.request("type='terminate'", "");
            }
            Kept::WebSocket(mut ws) => {
                let _ = ws.close_stream();
            }
        }
    }
}

/// A POST of `body` on `conn` from behind the proxy.
fn post_from(conn: &mut BoshConn, forwarded: &[&str], body: &str) {
    let fields: String = forwarded
        .iter()
        .map(|f| format!("X-Forwarded-For: {f}\r\n"))
        .collect();
    conn.send_raw(
        format!(
            "POST {} HTTP/1.1\r\nHost: localhost\r\n{fields}Content-Length: {}\r\n\r\n{body}",
            corpus::BOSH_PATH,
            body.len()
        )
        .as_bytes(),
    );
}

/// A session from behind the proxy: kept when served, else how it was
/// refused.
fn start(addr: SocketAddr, (forwarded, via): (&[&str], Via), rid: u64) -> Result<Kept, Outcome> {
    match via {
        Via::Bosh => {
            let mut conn = BoshConn::connect(addr, corpus::BOSH_PATH);
            post_from(&mut conn, forwarded, &create_body(rid, "localhost", ""));
            let created = conn.recv(WAIT).ok_or(Outcome::Unanswered)?;
            match created
                .attr("sid")
                .filter(|_| created.attr("type").is_none())
            {
                Some(sid) => Ok(Kept::Bosh(BoshSession { conn, sid, rid })),
                None => Err(corpus::bosh_answer(&created, "", || Server::None)),
            }
        }
        Via::WebSocket => {
            let headers: Vec<(&str, &str)> =
                forwarded.iter().map(|f| ("X-Forwarded-For", *f)).collect();
            let mut ws = WsClient::connect_with_headers(addr, WS_PATH, &["xmpp"], &headers)
                .map_err(Outcome::Other)?;
            match ws.open("localhost") {
                Ok((_, features)) if features.contains("stream:features") => {
                    Ok(Kept::WebSocket(Box::new(ws)))
                }
                Ok((opened, next)) => Err(corpus::ws_end(
                    &mut ws,
                    &corpus::marker(),
                    &[opened, next],
                    |_| Server::None,
                )),
                Err(e) => Err(Outcome::Other(format!("open: {e}"))),
            }
        }
    }
}

/// A session started and kept: it logs in and relays a message to itself.
fn relays(kept: &mut Kept) -> Outcome {
    let mark = corpus::marker();
    match kept {
        Kept::Bosh(session) => {
            let jid = session.login("prober", "localhost").unwrap();
            let mut reply = session.request("", &chat_message(&jid, &mark)).unwrap();
            for _ in 0..5 {
                if reply.body.contains(&mark) || reply.attr("type").is_some() {
                    break;
                }
                reply = session.request("", "").unwrap();
            }
            corpus::bosh_answer(&reply, &mark, || Server::Open)
        }
        Kept::WebSocket(ws) => {
            let jid = ws.login_plain("prober", "pw", "localhost").unwrap();
            ws.send_text(&chat_message(&jid, &mark)).unwrap();
            corpus::ws_end(ws, &mark, &[], |_| Server::Open)
        }
    }
}

/// The last session of a probe: refused, or served.
fn last(addr: SocketAddr, client: (&[&str], Via), rid: u64) -> Outcome {
    match start(addr, client, rid) {
        Ok(mut kept) => {
            let outcome = relays(&mut kept);
            kept.end();
            outcome
        }
        Err(refused) => refused,
    }
}

/// Sessions created back to back on one connection from `forwarded`, as
/// many as `count` until one is refused (then its answer); each ended at
/// once when `leave`, else kept.
fn back_to_back(
    addr: SocketAddr,
    forwarded: &str,
    count: usize,
    leave: bool,
) -> (Vec<Kept>, Option<Outcome>) {
    let mut conn = BoshConn::connect(addr, corpus::BOSH_PATH);
    let mut kept = Vec::new();
    for n in 0..count as u64 {
        let rid = 10_000 + 100 * n;
        post_from(&mut conn, &[forwarded], &create_body(rid, "localhost", ""));
        let Some(created) = conn.recv(WAIT) else {
            return (kept, Some(Outcome::Unanswered));
        };
        let Some(sid) = created
            .attr("sid")
            .filter(|_| created.attr("type").is_none())
        else {
            return (
                kept,
                Some(corpus::bosh_answer(&created, "", || Server::None)),
            );
        };
        if leave {
            conn.send(&body(rid + 1, &sid, "type='terminate'", ""));
            conn.recv(WAIT);
        } else {
            kept.push(Kept::Bosh(BoshSession {
                conn: BoshConn::connect(addr, corpus::BOSH_PATH),
                sid,
                rid,
            }));
        }
    }
    (kept, None)
}

fn observe(addr: SocketAddr, stub: &StubServer, probe: &Probe) -> Outcome {
    match probe {
        Probe::Sessions(fill, from) => {
            let mut kept = Vec::new();
            for (n, session) in fill.iter().enumerate() {
                match start(addr, *session, 20_000 + 100 * n as u64) {
                    Ok(session) => kept.push(session),
                    Err(refused) => {
                        return Outcome::Other(format!("session {n} refused: {refused:?}"))
                    }
                }
            }
            let outcome = last(addr, *from, 30_000);
            kept.into_iter().for_each(Kept::end);
            outcome
        }
        Probe::BackToBack(forwarded, count) => {
            if let (_, Some(refused)) = back_to_back(addr, forwarded, *count, true) {
                return Outcome::Other(format!("refused within {count}: {refused:?}"));
            }
            last(addr, (&[forwarded], Via::Bosh), 40_000)
        }
        Probe::Lockout(forwarded, count, other) => {
            let (kept, refused) = back_to_back(addr, forwarded, *count, false);
            let outcome = match refused {
                Some(_) => last(addr, *other, 50_000),
                None => Outcome::Other(format!("{count} sessions from one address")),
            };
            kept.into_iter().for_each(Kept::end);
            outcome
        }
        Probe::Unread => {
            let steps = [
                Step::Server(Act::Flood(b"<message xmlns='jabber:client'><body>flood flood flood flood flood flood flood flood</body></message>", 256 << 20)),
                Step::Make(|| client_frame(true, OP_PING, b"").repeat(40), 15),
            ];
            corpus::ws_outcome(
                addr,
                &[Backend::Stub(stub)],
                "localhost",
                Begin::LoggedIn,
                &steps,
            )
        }
    }
}

pub fn run() {
    let (stub, mut config) = corpus::stub_and_config();
    config.server.max_sessions = 12;
    config.server.max_sessions_per_address = 3;
    config.server.new_sessions_per_second_per_address = 2;
    config.http.write_timeout = Duration::from_secs(2);
    corpus::run("limits", config, CASES, |addr, probe| {
        observe(addr, &stub, probe)
    });
}
