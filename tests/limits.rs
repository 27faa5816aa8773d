//! Resource limits, attacked: one address opening connection after
//! connection or session after session, and sessions beyond the server's
//! limit. Each refusal is answered with its error (HTTP 503, BOSH
//! `policy-violation`, WebSocket `resource-constraint` and close code 1008)
//! while a session beside it goes on.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::bosh_client::{create_body, BoshConn, BoshSession};
use support::{config_for, RecvError, StubOptions, StubServer, Switchboard, WAIT};

const PATH: &str = "/http-bind";

fn stub() -> StubServer {
    StubServer::start(StubOptions::plaintext("localhost"))
}

/// The test config, loopback limited per address like any other (by
/// default it is a trusted proxy's address).
fn limited(stub: &StubServer) -> switchboard::config::Config {
    let mut config = config_for(stub);
    config.server.trusted_proxies.clear();
    config
}

/// A logged-in BOSH session, to stay healthy beside an attack, and its JID.
fn healthy_bosh(sb: &Switchboard, rid: u64) -> (BoshSession, String) {
    let (mut bosh, _) = BoshSession::create(sb.addr, PATH, "localhost", rid, "").unwrap();
    let jid = bosh.login("alice", "localhost").unwrap();
    (bosh, jid)
}

/// The healthy session beside an attack still relays: a message to
/// itself comes back (the stub routes it).
fn still_relays((bosh, jid): &mut (BoshSession, String)) {
    let message =
        format!("<message xmlns='jabber:client' to='{jid}'><body>still here</body></message>");
    let mut reply = bosh
        .request("", &message)
        .expect("the healthy session answers");
    for _ in 0..3 {
        assert_ne!(
            reply.attr("type").as_deref(),
            Some("terminate"),
            "{reply:?}"
        );
        if reply.body.contains("still here") {
            return;
        }
        reply = bosh.request("", "").expect("the healthy session answers");
    }
    panic!("the message never came back: {reply:?}");
}

/// An HTTP exchange on a fresh connection; the whole answer.
fn raw(sb: &Switchboard, request: &str) -> String {
    let mut stream = TcpStream::connect(sb.addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn connections_beyond_the_per_address_limit_are_answered_503() {
    let stub = stub();
    let mut config = limited(&stub);
    config.server.max_connections_per_address = 4;
    let sb = Switchboard::start(config);
    let mut healthy = healthy_bosh(&sb, 1_000);
    // The healthy session holds one connection; three more fill the share.
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(sb.addr).unwrap())
        .collect();
    let answer = raw(&sb, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("server.max_connections_per_address"),
        "{answer}"
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let answer = raw(
        &sb,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "freed: {answer}");
    still_relays(&mut healthy);
}

#[test]
fn bosh_sessions_beyond_the_limit_are_refused_with_policy_violation() {
    let stub = stub();
    let mut config = config_for(&stub);
    config.server.max_sessions = 2;
    let sb = Switchboard::start(config);
    let mut healthy = healthy_bosh(&sb, 1_000);
    let (_second, _) = BoshSession::create(sb.addr, PATH, "localhost", 2_000, "").unwrap();
    let mut third = BoshConn::connect(sb.addr, PATH);
    let refused = third.post(&create_body(3_000, "localhost", ""), WAIT);
    assert_eq!(refused.attr("type").as_deref(), Some("terminate"));
    assert_eq!(
        refused.attr("condition").as_deref(),
        Some("policy-violation"),
        "{refused:?}"
    );
    still_relays(&mut healthy);
}

#[test]
fn websocket_sessions_beyond_the_per_address_limit_hear_resource_constraint() {
    let stub = stub();
    let mut config = limited(&stub);
    config.server.max_sessions_per_address = 1;
    let sb = Switchboard::start(config);
    let mut healthy = sb.ws();
    healthy.open("localhost").unwrap();
    healthy.login_plain("alice", "pw", "localhost").unwrap();
    let mut refused = sb.ws();
    let (_, error) = refused.open("localhost").unwrap();
    assert!(error.contains("resource-constraint"), "{error}");
    let closed = loop {
        match refused.recv_text(WAIT) {
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            closed,
            RecvError::Closed {
                code: Some(1008),
                ..
            }
        ),
        "{closed:?}"
    );
    healthy
        .send_text("<presence xmlns='jabber:client'/>")
        .unwrap();
    assert!(healthy.close_stream().unwrap().contains("close"));
}

/// Sessions that end free their place: the limit counts live ones only.
#[test]
fn a_session_that_ends_gives_its_place_back() {
    let stub = stub();
    let mut config = config_for(&stub);
    config.server.max_sessions = 1;
    let sb = Switchboard::start(config);
    for _ in 0..3 {
        let mut ws = sb.ws();
        let (_, features) = ws.open("localhost").unwrap();
        assert!(features.contains("features"), "{features}");
        ws.close_stream().unwrap();
    }
}

/// Over the buffer budget no session starts: here one session's kept
/// responses already fill a one-byte budget.
#[test]
fn no_session_starts_over_the_buffer_budget() {
    let stub = stub();
    let mut config = config_for(&stub);
    config.server.max_buffered_bytes = 1;
    let sb = Switchboard::start(config);
    let (_first, _) = BoshSession::create(sb.addr, PATH, "localhost", 1_000, "").unwrap();
    let mut second = BoshConn::connect(sb.addr, PATH);
    let refused = second.post(&create_body(2_000, "localhost", ""), WAIT);
    assert_eq!(
        refused.attr("condition").as_deref(),
        Some("policy-violation"),
        "{refused:?}"
    );
}

/// Behind a trusted proxy, sessions are counted by the address the proxy
/// forwards, not by the proxy's own.
#[test]
fn behind_a_trusted_proxy_sessions_count_by_the_forwarded_address() {
    let stub = stub();
    let mut config = config_for(&stub);
    config.server.max_sessions_per_address = 1;
    let sb = Switchboard::start(config);
    let create = |forwarded_for: &str| {
        let body = create_body(1_000, "localhost", "");
        raw(
            &sb,
            &format!(
                "POST {PATH} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {forwarded_for}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    let first = create("198.51.100.1, 203.0.113.5");
    assert!(first.contains("sid="), "{first}");
    let second = create("203.0.113.5");
    assert!(
        second.contains("policy-violation"),
        "the same client: {second}"
    );
    let other = create("203.0.113.6");
    assert!(
        other.contains("sid="),
        "another client behind the proxy: {other}"
    );
}

/// One address starting sessions back to back is held to its rate: the
/// burst goes through, the rest is refused, others are not affected.
#[test]
fn new_sessions_from_one_address_are_rate_limited() {
    let stub = stub();
    let mut config = limited(&stub);
    config.server.new_sessions_per_second_per_address = 2;
    let sb = Switchboard::start(config);
    let mut conn = BoshConn::connect(sb.addr, PATH);
    let mut created = 0;
    let mut refused = 0;
    for rid in 0..20u64 {
        let reply = conn.post(&create_body(1_000 + rid * 10, "localhost", ""), WAIT);
        match reply.attr("condition").as_deref() {
            Some("policy-violation") => refused += 1,
            _ => created += 1,
        }
    }
    assert!(
        (10..=11).contains(&created),
        "{created} created, {refused} refused"
    );
    assert_eq!(created + refused, 20);
}
