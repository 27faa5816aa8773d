//! switchboard in-process, on loopback, between the test WebSocket client and
//! the stub XMPP server: the whole RFC 7395 path, its failures, and that one
//! bad session never disturbs another.

mod support;

use std::time::Duration;

use support::ws_client::{client_frame, client_frame_header, OP_CONTINUATION, OP_PING, OP_TEXT};
use support::{
    config_for, RecvError, StubEvent, StubOptions, StubServer, Switchboard, TlsMode, WsClient,
    WAIT, WS_PATH as PATH,
};
use tungstenite::Message;

const CLOSE: &str = "<close xmlns=\"urn:ietf:params:xml:ns:xmpp-framing\" />";

fn tls_stub() -> StubServer {
    StubServer::start(StubOptions::starttls("localhost", TlsMode::Required))
}

/// A switchboard in front of `stub` and a WebSocket client logged in as
/// alice: the server (keep it alive), the client, its JID and its
/// connection at the stub.
fn alice_logged_in(stub: &StubServer) -> (Switchboard, WsClient, String, usize) {
    let sb = Switchboard::start(config_for(stub));
    let mut ws = sb.ws();
    ws.open("localhost").unwrap();
    let jid = ws.login_plain("alice", "pw", "localhost").unwrap();
    let conn = stub.connection_of(&jid).unwrap();
    (sb, ws, jid, conn)
}

/// Both users log in over WebSocket through STARTTLS on the backend and
/// exchange messages both ways; server stanzas carry `jabber:client`.
#[test]
fn two_clients_log_in_through_starttls_and_exchange_messages() {
    let stub = tls_stub();
    let sb = Switchboard::start(config_for(&stub));
    let mut alice = sb.ws();
    assert_eq!(alice.protocol(), Some("xmpp"));
    let (open, features) = alice.open("localhost").unwrap();
    assert!(open.starts_with("<open") && open.contains("urn:ietf:params:xml:ns:xmpp-framing"));
    assert!(open.contains("from='localhost'") || open.contains("from=\"localhost\""));
    assert!(features.contains("stream:features") && features.contains("xmlns:stream"));
    assert!(features.contains("PLAIN"), "post-TLS features: {features}");
    assert!(
        !features.contains("starttls"),
        "pre-TLS features leaked: {features}"
    );
    let alice_jid = alice.login_plain("alice", "pw", "localhost").unwrap();

    let mut bob = sb.ws();
    bob.open("localhost").unwrap();
    let bob_jid = bob.login_plain("bob", "pw", "localhost").unwrap();

    let conn = stub.connection_of(&alice_jid).unwrap();
    assert!(stub.events(conn).contains(&StubEvent::StartTls));

    alice
        .send_text(&format!("<message xmlns='jabber:client' to='{bob_jid}' type='chat'><body>hi bob</body></message>"))
        .unwrap();
    let got = bob.recv_text(WAIT).unwrap();
    assert!(got.contains("hi bob"), "{got}");
    assert_eq!(
        got.matches("xmlns='jabber:client'").count(),
        1,
        "declared once: {got}"
    );
    // Without its own declaration the stanza inherits `jabber:client` from
    // the server stream; the frame must declare it.
    bob.send_text(&format!(
        "<message to='{alice_jid}'><body>hi alice</body></message>"
    ))
    .unwrap();
    let got = alice.recv_text(WAIT).unwrap();
    assert!(got.contains("hi alice"), "{got}");
    assert!(got.starts_with("<message xmlns='jabber:client'"), "{got}");
}

/// RFC 7395 §3.6: `<close/>` is answered with exactly `<close/>` and the
/// server stream is closed cleanly.
/// `backend.loopback_plaintext`: a server at a loopback address that offers
/// STARTTLS without requiring it is used in plaintext, and the client never
/// sees the offer; off (the default), the offer is taken.
#[test]
fn optional_starttls_is_skipped_on_loopback_only_when_configured() {
    for skip in [false, true] {
        let stub = StubServer::start(StubOptions::starttls("localhost", TlsMode::Optional));
        let mut config = config_for(&stub);
        config.backend.loopback_plaintext = skip;
        let sb = Switchboard::start(config);
        let mut alice = sb.ws();
        let (_, features) = alice.open("localhost").unwrap();
        assert!(!features.contains("starttls"), "offer relayed: {features}");
        assert!(features.contains("PLAIN"), "{features}");
        let jid = alice.login_plain("alice", "pw", "localhost").unwrap();
        let conn = stub.connection_of(&jid).unwrap();
        assert_eq!(
            stub.events(conn).contains(&StubEvent::StartTls),
            !skip,
            "loopback_plaintext = {skip}"
        );
        alice
            .send_text(&format!(
                "<message xmlns='jabber:client' to='{jid}'><body>echo</body></message>"
            ))
            .unwrap();
        assert!(alice.recv_text(WAIT).unwrap().contains("echo"));
    }
}

#[test]
fn clean_close_answers_close_and_ends_the_server_stream() {
    let stub = tls_stub();
    let (_sb, mut ws, _, conn) = alice_logged_in(&stub);
    assert_eq!(ws.close_stream().unwrap(), CLOSE);
    stub.wait_event(conn, WAIT, |e| *e == StubEvent::ClientClosedStream)
        .unwrap();
}

/// A client that vanishes leaves the server stream unclosed (XEP-0198
/// resumption): the TCP connection ends without `</stream:stream>`.
#[test]
fn vanished_client_drops_backend_without_stream_close() {
    let stub = tls_stub();
    let (_sb, ws, _, conn) = alice_logged_in(&stub);
    ws.drop_tcp();
    let log = stub
        .wait_event(conn, WAIT, |e| *e == StubEvent::TcpClosed)
        .unwrap();
    assert!(!log.contains(&StubEvent::ClientClosedStream), "{log:?}");
}

/// Something a misbehaving client sends.
type Misbehaviour = Box<dyn Fn(&mut WsClient)>;

/// Bad input ends only the session that sent it, with its own close code;
/// a logged-in bystander keeps working.
#[test]
fn bad_input_ends_only_its_own_session() {
    let stub = tls_stub();
    let sb = Switchboard::start(config_for(&stub));
    let mut bystander = sb.ws();
    bystander.open("localhost").unwrap();
    let jid = bystander.login_plain("carol", "pw", "localhost").unwrap();

    let cases: Vec<(&str, Misbehaviour, u16, Option<&str>)> = vec![
        (
            "garbage",
            Box::new(|ws| ws.send_text("<<>>not xml").unwrap()),
            1007,
            Some("not-well-formed"),
        ),
        (
            "doctype",
            Box::new(|ws| {
                ws.send_text("<!DOCTYPE x [<!ENTITY a 'b'>]><message/>")
                    .unwrap()
            }),
            1007,
            Some("restricted-xml"),
        ),
        (
            "binary",
            Box::new(|ws| ws.send_binary(b"<message/>").unwrap()),
            1003,
            None,
        ),
        (
            "continuation without a message",
            Box::new(|ws| {
                ws.send_raw_frame(&client_frame(true, OP_CONTINUATION, b"<message/>"))
                    .unwrap();
            }),
            1002,
            None,
        ),
        (
            "text frame inside a fragmented message",
            Box::new(|ws| {
                ws.send_raw_frame(&client_frame(false, OP_TEXT, b"<message"))
                    .unwrap();
                ws.send_raw_frame(&client_frame(true, OP_TEXT, b"<message/>"))
                    .unwrap();
            }),
            1002,
            None,
        ),
        (
            "10 MB frame",
            Box::new(|ws| {
                ws.send_raw_frame(&client_frame_header(true, OP_TEXT, 10 * 1024 * 1024))
                    .unwrap();
            }),
            1009,
            None,
        ),
    ];
    for (name, send, code, condition) in cases {
        let mut ws = sb.ws();
        ws.open("localhost").unwrap();
        send(&mut ws);
        let mut texts = Vec::new();
        let closed = loop {
            match ws.recv_text(WAIT) {
                Ok(text) => texts.push(text),
                Err(RecvError::Closed { code, .. }) => break code,
                Err(e) => panic!("{name}: expected a close, got {e} after {texts:?}"),
            }
        };
        assert_eq!(closed, Some(code), "{name}: {texts:?}");
        if let Some(condition) = condition {
            assert!(
                texts
                    .iter()
                    .any(|t| t.contains("stream:error") && t.contains(condition)),
                "{name}: {texts:?}"
            );
            assert!(texts.iter().any(|t| t == CLOSE), "{name}: {texts:?}");
        }
    }
    // The bystander still relays.
    bystander
        .send_text(&format!(
            "<message xmlns='jabber:client' to='{jid}'><body>still here</body></message>"
        ))
        .unwrap();
    assert!(bystander.recv_text(WAIT).unwrap().contains("still here"));
}

/// RFC 6455 §5.4: a stanza sent in fragments, cut inside a multi-byte
/// character and with a ping between two fragments, reaches the server as
/// one element, byte for byte, and comes back routed.
#[test]
fn fragmented_stanza_reaches_the_server_intact() {
    let stub = tls_stub();
    let (_sb, mut ws, jid, conn) = alice_logged_in(&stub);
    let stanza = format!(
        "<message xmlns='jabber:client' to='{jid}' type='chat'><body>in pièces €</body></message>"
    );
    let bytes = stanza.as_bytes();
    let inside_euro = stanza.find('€').unwrap() + 1;
    ws.send_raw_frame(&client_frame(false, OP_TEXT, &bytes[..10]))
        .unwrap();
    ws.send_raw_frame(&client_frame(true, OP_PING, b"hb"))
        .unwrap();
    ws.send_raw_frame(&client_frame(
        false,
        OP_CONTINUATION,
        &bytes[10..inside_euro],
    ))
    .unwrap();
    ws.send_raw_frame(&client_frame(true, OP_CONTINUATION, &bytes[inside_euro..]))
        .unwrap();
    stub.wait_event(conn, WAIT, |e| {
        *e == StubEvent::StanzaReceived(stanza.clone())
    })
    .unwrap();
    let pong = ws.recv_message(WAIT).unwrap();
    assert_eq!(pong, Message::Pong(b"hb".to_vec().into()));
    let echo = ws.recv_text(WAIT).unwrap();
    assert!(echo.contains("<body>in pièces €</body>"), "{echo}");
}

/// A server stream error reaches the client, followed by `<close/>`.
#[test]
fn server_stream_error_is_relayed_then_closed() {
    let stub = StubServer::start(StubOptions::host_unknown("localhost"));
    let sb = Switchboard::start(config_for(&stub));
    let mut ws = sb.ws();
    let (_open, error) = ws.open("localhost").unwrap();
    assert!(
        error.contains("stream:error")
            && error.contains("host-unknown")
            && error.contains("xmlns:stream"),
        "{error}"
    );
    assert_eq!(ws.recv_text(WAIT).unwrap(), CLOSE);
}

/// A backend whose certificate is not trusted is never used: the client is
/// told `remote-connection-failed`.
#[test]
fn untrusted_backend_certificate_fails_the_session() {
    let stub = tls_stub();
    let mut config = config_for(&stub);
    config.backend.ca_file = Default::default();
    let sb = Switchboard::start(config);
    let mut ws = sb.ws();
    let (_open, error) = ws.open("localhost").unwrap();
    assert!(error.contains("remote-connection-failed"), "{error}");
    assert_eq!(ws.recv_text(WAIT).unwrap(), CLOSE);
}

/// An unroutable domain fails with a stream error, not a hang.
#[test]
fn unreachable_backend_fails_the_session() {
    let stub = tls_stub();
    let mut config = config_for(&stub);
    // A port nothing listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    config
        .backend
        .routes
        .insert("localhost".into(), free.to_string().into());
    let sb = Switchboard::start(config);
    let mut ws = sb.ws();
    let (_open, error) = ws.open("localhost").unwrap();
    assert!(error.contains("remote-connection-failed"), "{error}");
}

/// RFC 7395 §3.1: the `xmpp` subprotocol is required; other paths get 404;
/// `/` is a status page.
#[test]
fn http_front_door_refuses_what_it_does_not_serve() {
    let stub = tls_stub();
    let sb = Switchboard::start(config_for(&stub));
    let Err(err) = WsClient::connect(sb.addr, PATH, &["chat"]) else {
        panic!("upgrade without the xmpp subprotocol was accepted");
    };
    assert!(err.contains("400"), "{err}");
    let reply = WsClient::raw_request(
        sb.addr,
        b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
    let reply = WsClient::raw_request(
        sb.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 200") && reply.contains("switchboard"),
        "{reply}"
    );
    let reply = WsClient::raw_request(
        sb.addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
}

/// At the connection limit, accept pauses; a freed slot lets the next in.
#[test]
fn connection_limit_pauses_accept_until_a_slot_frees() {
    let stub = tls_stub();
    let mut config = config_for(&stub);
    config.server.max_connections = 1;
    let sb = Switchboard::start(config);
    let mut first = sb.ws();
    first.open("localhost").unwrap();
    let waiting = std::thread::spawn({
        let addr = sb.addr;
        move || {
            WsClient::connect(addr, PATH, &["xmpp"])
                .map(|mut ws| ws.open("localhost").is_ok())
                .unwrap_or(false)
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !waiting.is_finished(),
        "second connection served beyond the limit"
    );
    first.close_stream().unwrap();
    assert!(
        waiting.join().unwrap(),
        "second connection not served after the first left"
    );
}

/// With an origin list, a browser page from elsewhere is refused with 403;
/// a listed origin and a client without Origin (not a browser) get in.
#[test]
fn websocket_origins_can_be_restricted() {
    let stub = tls_stub();
    let mut config = config_for(&stub);
    config.websocket.allowed_origins = vec!["https://chat.example.org".into()];
    let sb = Switchboard::start(config);
    let Err(err) = WsClient::connect_with_headers(
        sb.addr,
        PATH,
        &["xmpp"],
        &[("Origin", "https://evil.example")],
    ) else {
        panic!("a foreign origin was let in");
    };
    assert!(err.contains("403"), "{err}");
    let mut ws = WsClient::connect_with_headers(
        sb.addr,
        PATH,
        &["xmpp"],
        &[("Origin", "https://chat.example.org")],
    )
    .unwrap();
    ws.open("localhost").unwrap();
    let mut ws = sb.ws();
    ws.open("localhost").unwrap();
}
