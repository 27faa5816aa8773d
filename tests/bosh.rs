//! BOSH conformance over raw HTTP (XEP-0124 + XEP-0206): switchboard in
//! process in front of the stub XMPP server, each point of the protocol
//! walked with hand-written bodies.

mod support;

use support::bosh_client::{body, create_body, BoshConn, BoshSession, HttpResponse};
use support::{config_for, StubEvent, StubOptions, StubServer, Switchboard, TlsMode, WAIT};

const PATH: &str = "/http-bind";
const RID: u64 = 1_000;

fn tls_stub() -> StubServer {
    StubServer::start(StubOptions::starttls("localhost", TlsMode::Required))
}

/// A created session whose stream features have come.
fn create(sb: &Switchboard) -> (BoshSession, HttpResponse) {
    let (session, created) = BoshSession::create(sb.addr, PATH, "localhost", RID, "").unwrap();
    assert_eq!(created.status, 200, "{created:?}");
    (session, created)
}

/// XEP-0124 §7.1, XEP-0206 §6: the creation response carries every
/// attribute clients depend on, and the stream features follow.
#[test]
fn creation_response_has_the_attributes_clients_need() {
    let stub = tls_stub();
    let sb = Switchboard::start(config_for(&stub));
    let (_bosh, created) = create(&sb);
    for attr in [
        "sid",
        "wait",
        "requests",
        "hold",
        "inactivity",
        "polling",
        "ver",
        "from",
    ] {
        assert!(created.attr(attr).is_some(), "no {attr}: {}", created.body);
    }
    assert_eq!(created.attr("requests").as_deref(), Some("2"));
    assert_eq!(
        created.attr("secure").as_deref(),
        Some("true"),
        "STARTTLS to the server"
    );
    assert_eq!(created.attr("xmpp:version").as_deref(), Some("1.0"));
    assert!(
        created.body.contains("xmlns:xmpp='urn:xmpp:xbosh'")
            || created.body.contains("xmlns:xmpp=\"urn:xmpp:xbosh\"")
    );
    assert!(created
        .header("Content-Type")
        .is_some_and(|t| t.starts_with("text/xml")));
}

/// A user logs in over BOSH through STARTTLS and exchanges a message with
/// the server; the response stanzas declare `jabber:client`.
#[test]
fn login_and_message_over_bosh() {
    let stub = tls_stub();
    let sb = Switchboard::start(config_for(&stub));
    let (mut alice, _) = create(&sb);
    let jid = alice.login("alice", "localhost").unwrap();
    assert!(jid.starts_with("alice@localhost/"), "{jid}");
    let conn = stub.connection_of(&jid).unwrap();
    assert!(stub.events(conn).contains(&StubEvent::StartTls));
    // The stub routes messages to the sender's own JID back to it.
    let reply = alice
        .request(
            "",
            &format!("<message to='{jid}' xmlns='jabber:client'><body>echo</body></message>"),
        )
        .unwrap();
    let mut got = reply.body;
    while !got.contains("echo") {
        got = alice.request("", "").unwrap().body;
    }
    assert!(
        got.contains("xmlns='jabber:client'") || got.contains("xmlns=\"jabber:client\""),
        "{got}"
    );
}

/// A request for an unknown sid never creates a session: HTTP 200 with a
/// terminate body, condition item-not-found (XEP-0124 §17.2).
#[test]
fn unknown_sid_is_item_not_found() {
    let stub = tls_stub();
    let sb = Switchboard::start(config_for(&stub));
    let mut conn = BoshConn::connect(sb.addr, PATH);
    let reply = conn.post(&body(5, "nosuchsid", "", ""), WAIT);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.attr("type").as_deref(), Some("terminate"));
    assert_eq!(reply.attr("condition").as_deref(), Some("item-not-found"));
    assert_eq!(stub.connection_count(), 0, "no backend was opened");
}

/// XEP-0124 §14.3: a repeated rid gets the same response byte for byte.
#[test]
fn repeated_rid_gets_the_cached_response() {
    let stub = tls_stub();
    let sb = Switchboard::start(config_for(&stub));
    let (mut bosh, _) = create(&sb);
    bosh.login("alice", "localhost").unwrap();
    let ping = "<iq type='get' to='localhost' id='p1' xmlns='jabber:client'><ping xmlns='urn:xmpp:ping'/></iq>";
    let first = bosh.request("", ping).unwrap();
    assert!(first.body.contains("p1"), "{first:?}");
    let again = bosh.conn.post(&body(bosh.rid, &bosh.sid, "", ping), WAIT);
    assert_eq!(again.body, first.body);
}

/// XEP-0124 §14.2: a rid far outside the window terminates the session.
#[test]
fn rid_outside_the_window_terminates() {
    let stub = tls_stub();
    let sb = Switchboard::start(config_for(&stub));
    let (mut bosh, _) = create(&sb);
    let reply = bosh
        .conn
        .post(&body(bosh.rid + 100, &bosh.sid, "", ""), WAIT);
    assert_eq!(
        reply.attr("type").as_deref(),
        Some("terminate"),
        "{reply:?}"
    );
    assert_eq!(reply.attr("condition").as_deref(), Some("item-not-found"));
}

/// `type='terminate'` delivers its payload first, then closes the server
/// stream cleanly (XEP-0124 §13).
#[test]
fn terminate_delivers_payload_then_closes_cleanly() {
    let stub = tls_stub();
    let sb = Switchboard::start(config_for(&stub));
    let (mut bosh, _) = create(&sb);
    let jid = bosh.login("alice", "localhost").unwrap();
    let conn = stub.connection_of(&jid).unwrap();
    let reply = bosh
        .request("type='terminate'", "<presence type='unavailable'/>")
        .unwrap();
    assert_eq!(
        reply.attr("type").as_deref(),
        Some("terminate"),
        "{reply:?}"
    );
    let log = stub
        .wait_event(conn, WAIT, |e| *e == StubEvent::ClientClosedStream)
        .unwrap();
    assert!(
        log.iter()
            .any(|e| matches!(e, StubEvent::StanzaReceived(s) if s.contains("unavailable"))),
        "{log:?}"
    );
}

/// With hold=1, a second request makes the server answer the first, held
/// one with an empty body (XEP-0124 §10).
#[test]
fn a_newer_request_releases_the_held_one() {
    let stub = tls_stub();
    let sb = Switchboard::start(config_for(&stub));
    let (mut bosh, _) = create(&sb);
    bosh.rid += 1;
    bosh.conn.send(&body(bosh.rid, &bosh.sid, "", ""));
    let mut second = BoshConn::connect(sb.addr, PATH);
    second.send(&body(bosh.rid + 1, &bosh.sid, "", ""));
    let first = bosh.conn.recv(WAIT).expect("the held request is answered");
    assert_eq!(first.status, 200);
    assert!(!first.body.contains("<message"), "{first:?}");
}

/// An oversize body is refused before it is read whole.
#[test]
fn oversize_body_is_refused() {
    let stub = tls_stub();
    let mut config = config_for(&stub);
    config.http.max_body_bytes = 1024;
    let sb = Switchboard::start(config);
    let mut conn = BoshConn::connect(sb.addr, PATH);
    let big = create_body(RID, "localhost", &format!("x='{}'", "a".repeat(4096)));
    conn.send(&big);
    let reply = conn.recv(WAIT).expect("an answer");
    assert_eq!(reply.status, 413, "{reply:?}");
}

/// Malformed XML is a terminate with bad-request, and creates nothing.
#[test]
fn malformed_body_is_bad_request() {
    let stub = tls_stub();
    let sb = Switchboard::start(config_for(&stub));
    let mut conn = BoshConn::connect(sb.addr, PATH);
    let reply = conn.post(
        "<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='localhost'><message>",
        WAIT,
    );
    assert_eq!(
        reply.attr("type").as_deref(),
        Some("terminate"),
        "{reply:?}"
    );
    assert_eq!(reply.attr("condition").as_deref(), Some("bad-request"));
    assert_eq!(stub.connection_count(), 0);
}

/// CORS: the preflight is answered, and responses allow the origin.
#[test]
fn cors_preflight_and_allow_origin() {
    let stub = tls_stub();
    let sb = Switchboard::start(config_for(&stub));
    let mut conn = BoshConn::connect(sb.addr, PATH);
    conn.send_raw(b"OPTIONS /http-bind HTTP/1.1\r\nHost: x\r\nOrigin: https://chat.example\r\nAccess-Control-Request-Method: POST\r\n\r\n");
    let reply = conn.recv(WAIT).expect("preflight answer");
    assert_eq!(reply.status, 204);
    assert!(reply
        .header("Access-Control-Allow-Methods")
        .is_some_and(|m| m.contains("POST")));
    assert_eq!(reply.header("Access-Control-Allow-Origin"), Some("*"));
}

/// node-xmpp-client restarts the stream right after creation, before SASL;
/// Prosody and ejabberd allow it, and so must we.
#[test]
fn restart_before_authentication_is_allowed() {
    let stub = tls_stub();
    let sb = Switchboard::start(config_for(&stub));
    let (mut bosh, _) = create(&sb);
    let mut reply = bosh
        .request("xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh'", "")
        .unwrap();
    while !reply.body.contains("stream:features") {
        assert_ne!(
            reply.attr("type").as_deref(),
            Some("terminate"),
            "{reply:?}"
        );
        reply = bosh.request("", "").unwrap();
    }
    let jid = bosh.login("alice", "localhost").unwrap();
    assert!(jid.starts_with("alice@localhost/"), "{jid}");
}

/// node-xmpp-bosh's GET fallback: the body in `?data=`, the answer as JSONP
/// when a safe `?callback=` is given; an unsafe one is refused.
#[test]
fn get_with_data_answers_as_jsonp() {
    let stub = tls_stub();
    let sb = Switchboard::start(config_for(&stub));
    let mut conn = BoshConn::connect(sb.addr, PATH);
    let data = create_body(RID, "localhost", "")
        .replace('%', "%25")
        .replace(' ', "+")
        .replace('&', "%26")
        .replace('=', "%3D")
        .replace('\'', "%27");
    conn.send_raw(
        format!("GET {PATH}?callback=cb_1&data={data} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    let reply = conn.recv(WAIT).expect("an answer");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply
        .header("Content-Type")
        .is_some_and(|t| t.starts_with("application/javascript")));
    assert!(
        reply.body.starts_with("cb_1({\"reply\":\"<body ") && reply.body.contains("sid="),
        "{}",
        reply.body
    );
    conn.send_raw(
        format!("GET {PATH}?callback=alert(1)&data={data} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    assert_eq!(conn.recv(WAIT).expect("an answer").status, 400);
}
