//! BOSH conformance over raw HTTP (XEP-0124 + XEP-0206): switchboard in
//! process in front of the stub XMPP server, each point of the protocol
//! walked with hand-written bodies.

mod support;

use std::time::Duration;

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

/// With `backend.loopback_plaintext`, an optional STARTTLS on a loopback
/// server is skipped; the stream never leaves the host, so XEP-0206 `secure`
/// stays true, and the features carry no offer.
#[test]
fn a_loopback_server_without_tls_still_counts_as_secure() {
    let stub = StubServer::start(StubOptions::starttls("localhost", TlsMode::Optional));
    let mut config = config_for(&stub);
    config.backend.loopback_plaintext = true;
    let sb = Switchboard::start(config);
    let (mut alice, created) = create(&sb);
    assert_eq!(
        created.attr("secure").as_deref(),
        Some("true"),
        "{}",
        created.body
    );
    let jid = alice.login("alice", "localhost").unwrap();
    let conn = stub.connection_of(&jid).unwrap();
    assert!(!stub.events(conn).contains(&StubEvent::StartTls));
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
/// XEP-0124 §7.1: a sid is the session's only credential. sids were two
/// consecutive outputs of an xorshift generator that reveals its state, so
/// a client could compute the next session's sid from its own and end that
/// session with one request. The attack, run against today's sids: no
/// output of that generator near the first sid is the second one, and the
/// forged terminate reaches no session.
#[test]
fn a_sid_cannot_be_computed_from_an_earlier_one() {
    fn xorshift(mut x: u64) -> u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
    let stub = tls_stub();
    let sb = Switchboard::start(config_for(&stub));
    let (mine, _) = create(&sb);
    let (mut victim, _) = create(&sb);
    assert_eq!(mine.sid.len(), 32, "128 bits: {}", mine.sid);
    let mut state = u64::from_str_radix(&mine.sid[16..], 16).unwrap();
    let mut outputs = Vec::new();
    for _ in 0..16 {
        state = xorshift(state);
        outputs.push(state);
    }
    let guesses: Vec<String> = outputs
        .windows(2)
        .map(|w| format!("{:016x}{:016x}", w[0], w[1]))
        .collect();
    assert!(!guesses.contains(&victim.sid), "the next sid was predicted");
    let mut attacker = BoshConn::connect(sb.addr, PATH);
    for (n, guess) in guesses.iter().enumerate() {
        let forged = body(RID + 1 + n as u64, guess, "type='terminate'", "");
        let reply = attacker.post(&forged, WAIT);
        assert_eq!(reply.attr("condition").as_deref(), Some("item-not-found"));
    }
    let reply = victim.request("", "").unwrap();
    assert_ne!(
        reply.attr("type").as_deref(),
        Some("terminate"),
        "{reply:?}"
    );
}

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
    bosh.login("alice", "localhost").unwrap();
    bosh.rid += 1;
    bosh.conn.send(&body(bosh.rid, &bosh.sid, "", ""));
    let mut second = BoshConn::connect(sb.addr, PATH);
    second.send(&body(bosh.rid + 1, &bosh.sid, "", "<presence/>"));
    let first = bosh.conn.recv(WAIT).expect("the held request is answered");
    assert_eq!(first.status, 200);
    assert_eq!(first.attr("type"), None, "{first:?}");
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

/// A logged-in session created with `extra` creation attributes.
fn logged_in(sb: &Switchboard, extra: &str) -> (BoshSession, HttpResponse, String) {
    let (mut bosh, created) = BoshSession::create(sb.addr, PATH, "localhost", RID, extra).unwrap();
    let jid = bosh.login("alice", "localhost").unwrap();
    (bosh, created, jid)
}

/// Poll until a response contains `needle`; a terminate body fails.
fn until(bosh: &mut BoshSession, mut reply: HttpResponse, needle: &str) -> HttpResponse {
    for _ in 0..20 {
        if reply.body.contains(needle) {
            return reply;
        }
        assert_eq!(reply.attr("type"), None, "waiting for {needle}: {reply:?}");
        reply = bosh.request("", "").unwrap();
    }
    panic!("no {needle} in time");
}

/// XEP-0124 §19: a second stream in the session has its own server
/// connection; payloads go where the `stream` attribute says; closing it
/// leaves the session and the first stream working.
#[test]
fn a_second_stream_works_beside_the_first_and_closes_alone() {
    let stub = tls_stub();
    let sb = Switchboard::start(config_for(&stub));
    let (mut bosh, created, _) = logged_in(&sb, "");
    let first = created.attr("stream").expect("multiple streams announced");
    let added = bosh.request("to='localhost' xml:lang='en'", "").unwrap();
    let second = added.attr("stream").expect("the new stream's name");
    assert_ne!(first, second);
    assert_eq!(added.attr("sid"), None, "{added:?}");
    let mut reply = added;
    while !reply.body.contains("stream:features") {
        reply = bosh.request("", "").unwrap();
    }
    assert_eq!(reply.attr("stream"), Some(second.clone()), "{reply:?}");
    stub.wait_connections(2, WAIT).unwrap();
    // The second stream logs in on its own (bob), every request naming it.
    let on_second = format!("stream='{second}'");
    let auth = support::xmpp::plain_auth("bob", "pw");
    let reply = bosh.request(&on_second, &auth).unwrap();
    until(&mut bosh, reply, "success");
    let restart =
        format!("{on_second} xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh' to='localhost'");
    let reply = bosh.request(&restart, "").unwrap();
    until(&mut bosh, reply, "bind");
    let bind = support::xmpp::bind_request("b2", None);
    let reply = bosh.request(&on_second, &bind).unwrap();
    let reply = until(&mut bosh, reply, "bob@localhost");
    assert_eq!(reply.attr("stream"), Some(second.clone()), "{reply:?}");
    let events = stub.events(1);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, StubEvent::Authenticated(u) if u == "bob")),
        "{events:?}"
    );
    assert!(!stub
        .events(0)
        .iter()
        .any(|e| matches!(e, StubEvent::Authenticated(u) if u == "bob")));
    // Closing the second stream: a terminate naming it, the session goes on.
    let closed = bosh
        .request(
            &format!("type='terminate' stream='{second}'"),
            "<presence type='unavailable'/>",
        )
        .unwrap();
    assert_eq!(
        closed.attr("type").as_deref(),
        Some("terminate"),
        "{closed:?}"
    );
    assert_eq!(closed.attr("stream"), Some(second), "{closed:?}");
    stub.wait_event(1, WAIT, |e| *e == StubEvent::ClientClosedStream)
        .unwrap();
    let ping = "<iq type='get' to='localhost' id='s1' xmlns='jabber:client'><ping xmlns='urn:xmpp:ping'/></iq>";
    let mut reply = bosh.request(&format!("stream='{first}'"), ping).unwrap();
    while !reply.body.contains("s1") {
        assert_eq!(reply.attr("type"), None, "{reply:?}");
        reply = bosh.request("", "").unwrap();
    }
}

/// XEP-0124 §12: a polling session (hold=0) that polls faster than
/// `polling` is ended with policy-violation (one early poll is forgiven).
#[test]
fn polling_too_fast_is_a_policy_violation() {
    let stub = tls_stub();
    let sb = Switchboard::start(config_for(&stub));
    let mut conn = BoshConn::connect(sb.addr, PATH);
    let created = conn.post(
        &create_body(RID, "localhost", "").replace("hold='1'", "hold='0'"),
        WAIT,
    );
    assert_eq!(created.attr("hold").as_deref(), Some("0"), "{created:?}");
    let sid = created.attr("sid").unwrap();
    let mut last = created;
    for rid in RID + 1..RID + 6 {
        last = conn.post(&body(rid, &sid, "", ""), WAIT);
        if last.attr("type").is_some() {
            break;
        }
    }
    assert_eq!(
        last.attr("condition").as_deref(),
        Some("policy-violation"),
        "{last:?}"
    );
}

/// XEP-0124 §17.1: a client that sent no `ver` is a legacy client and gets
/// HTTP error codes instead of terminal conditions.
#[test]
fn a_legacy_client_gets_http_error_codes() {
    let stub = tls_stub();
    let sb = Switchboard::start(config_for(&stub));
    let mut conn = BoshConn::connect(sb.addr, PATH);
    let created = conn.post(
        &create_body(RID, "localhost", "").replace("ver='1.11'", ""),
        WAIT,
    );
    let sid = created.attr("sid").unwrap();
    let refused = conn.post(&body(RID + 50, &sid, "", ""), WAIT);
    assert_eq!(refused.status, 404, "{refused:?}");
}

/// XEP-0124 §7.1 `route`: ignored by default (the server is found from
/// `to`); when routes are allowed, any other route is host-unknown and no
/// connection is made to it.
#[test]
fn route_is_ignored_by_default_and_limited_to_the_allowed_ones() {
    let stub = tls_stub();
    let sb = Switchboard::start(config_for(&stub));
    let (_bosh, created) = BoshSession::create(
        sb.addr,
        PATH,
        "localhost",
        RID,
        "route='xmpp:192.0.2.1:5222'",
    )
    .unwrap();
    assert_eq!(created.attr("type"), None, "route ignored: {created:?}");

    // Routes allowed: only those; an allowed one is where the stream goes
    // (here a plaintext server for another domain).
    let other = StubServer::start(StubOptions::plaintext("elsewhere.test"));
    let mut config = config_for(&stub);
    config.bosh.allowed_routes = vec![format!("xmpp:{}", other.addr())];
    config.backend.plaintext_domains = vec!["elsewhere.test".into()];
    let sb = Switchboard::start(config);
    let mut conn = BoshConn::connect(sb.addr, PATH);
    let refused = conn.post(
        &create_body(RID, "localhost", "route='xmpp:192.0.2.1:5222'"),
        WAIT,
    );
    assert_eq!(
        refused.attr("condition").as_deref(),
        Some("host-unknown"),
        "{refused:?}"
    );
    let route = format!("route='xmpp:{}'", other.addr());
    let (_bosh, created) =
        BoshSession::create(sb.addr, PATH, "elsewhere.test", RID, &route).unwrap();
    assert_eq!(created.attr("type"), None, "{created:?}");
    assert_eq!(
        other.connection_count(),
        1,
        "connected at the allowed route"
    );
}

/// node-xmpp-bosh's `stream_attrs`: members of the JSON object become
/// attributes of the restarted stream header, overriding ours.
#[test]
fn stream_attrs_reach_the_restarted_stream_header() {
    let stub = tls_stub();
    let sb = Switchboard::start(config_for(&stub));
    let (mut bosh, _) = create(&sb);
    let reply = bosh
        .request("", &support::xmpp::plain_auth("alice", "pw"))
        .unwrap();
    let mut reply = reply;
    while !reply.body.contains("success") {
        reply = bosh.request("", "").unwrap();
    }
    let restart = "xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh' to='localhost' stream_attrs='{&quot;to&quot;:&quot;alias.localhost&quot;}'";
    let mut reply = bosh.request(restart, "").unwrap();
    while !reply.body.contains("bind") {
        reply = bosh.request("", "").unwrap();
    }
    let conn = stub.connection_count() - 1;
    stub.wait_event(
        conn,
        WAIT,
        |e| matches!(e, StubEvent::StreamOpened { to: Some(to), .. } if to == "alias.localhost"),
    )
    .unwrap();
}

/// Draining (SIGTERM): a held BOSH request is answered with
/// `system-shutdown`, a WebSocket client hears the same stream error and a
/// 1001 close, and neither server stream is closed (they stay resumable).
#[test]
fn draining_tells_every_client_system_shutdown() {
    let stub = tls_stub();
    let sb = Switchboard::start(config_for(&stub));
    let (mut bosh, _, bosh_jid) = logged_in(&sb, "");
    let mut ws = sb.ws();
    ws.open("localhost").unwrap();
    let ws_jid = ws.login_plain("bob", "pw", "localhost").unwrap();
    bosh.rid += 1;
    bosh.conn.send(&body(bosh.rid, &bosh.sid, "", ""));
    std::thread::sleep(Duration::from_millis(100));
    sb.drain();
    let held = bosh.conn.recv(WAIT).expect("the held request is answered");
    assert_eq!(
        held.attr("condition").as_deref(),
        Some("system-shutdown"),
        "{held:?}"
    );
    let error = ws.recv_text(WAIT).unwrap();
    assert!(error.contains("system-shutdown"), "{error}");
    assert!(ws.recv_text(WAIT).unwrap().contains("<close"));
    match ws.recv_text(WAIT) {
        Err(support::RecvError::Closed { code, .. }) => assert_eq!(code, Some(1001)),
        other => panic!("expected a close frame, got {other:?}"),
    }
    for jid in [bosh_jid, ws_jid] {
        let conn = stub.connection_of(&jid).unwrap();
        let events = stub
            .wait_event(conn, WAIT, |e| *e == StubEvent::TcpClosed)
            .unwrap();
        assert!(
            !events.contains(&StubEvent::ClientClosedStream),
            "{jid}: {events:?}"
        );
    }
    // No new connection is accepted any more.
    std::thread::sleep(Duration::from_millis(100));
    let refused = std::net::TcpStream::connect(sb.addr).and_then(|mut s| {
        use std::io::{Read, Write};
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut buf = [0u8; 16];
        s.read(&mut buf)
    });
    assert!(matches!(refused, Ok(0) | Err(_)), "{refused:?}");
}

/// A request sent with `Connection: close` (HTTP/1.0 clients, some
/// proxies) that a session holds is still answered before the close.
#[test]
fn a_held_request_with_connection_close_is_answered_before_the_close() {
    use std::io::{Read, Write};
    let stub = tls_stub();
    let sb = Switchboard::start(config_for(&stub));
    let body = create_body(RID, "localhost", "");
    let mut stream = std::net::TcpStream::connect(sb.addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "POST {PATH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("sid="), "{answer}");
}
