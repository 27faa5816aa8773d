//! Proves the integration-test support works on its own, without switchboard:
//! the stub XMPP server against the direct TCP client, and the WebSocket
//! client against small tungstenite servers in this file.

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use support::ws_client::{client_frame, client_frame_header, mask, OP_CONTINUATION, OP_TEXT};
use support::xml::{self, Frame, Framer};
use support::xmpp::{self, NS_FRAMING};
use support::{
    RecvError, StubEvent, StubOptions, StubServer, TlsMode, WsClient, XmppTcpClient, WAIT,
};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::Message;

const SHORT: Duration = Duration::from_millis(200);

#[test]
fn framer_yields_the_same_frames_whatever_the_split() {
    let stream = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' to='a.example' version='1.0'>\
                  <message to='b@a.example' note='x>y'><body>1 &lt; 2</body><x/></message>\n \
                  <presence/><iq type='get' id=\"q\"><ping xmlns='urn:xmpp:ping'/></iq></stream:stream>";
    let expected = vec![
        Frame::Header("<stream:stream xmlns='jabber:client' to='a.example' version='1.0'>".into()),
        Frame::Element(
            "<message to='b@a.example' note='x>y'><body>1 &lt; 2</body><x/></message>".into(),
        ),
        Frame::Element("<presence/>".into()),
        Frame::Element("<iq type='get' id=\"q\"><ping xmlns='urn:xmpp:ping'/></iq>".into()),
        Frame::StreamEnd,
    ];
    for split in 0..=stream.len() {
        let mut framer = Framer::default();
        let mut frames = Vec::new();
        for part in [&stream.as_bytes()[..split], &stream.as_bytes()[split..]] {
            framer.push(part);
            while let Some(frame) = framer.next_frame().unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(frames, expected, "split at {split}");
    }
    let mut bytewise = Framer::default();
    let mut frames = Vec::new();
    for b in stream.as_bytes() {
        bytewise.push(std::slice::from_ref(b));
        while let Some(frame) = bytewise.next_frame().unwrap() {
            frames.push(frame);
        }
    }
    assert_eq!(frames, expected);
}

#[test]
fn xml_helpers_read_attributes_and_text() {
    let raw = "<message xml:lang='en' to='a&amp;b@x'><body>hi &#x263A; &apos;q&apos;</body><empty/></message>";
    assert_eq!(xml::root_name(raw).as_deref(), Some("message"));
    assert_eq!(xml::attr(raw, "to").as_deref(), Some("a&b@x"));
    assert_eq!(xml::attr(raw, "xml:lang").as_deref(), Some("en"));
    assert_eq!(xml::attr(raw, "lang"), None);
    assert_eq!(
        xml::element_text(raw, "body").as_deref(),
        Some("hi \u{263A} 'q'")
    );
    assert_eq!(xml::element_text(raw, "empty").as_deref(), Some(""));
    assert!(xml::has_element(raw, "empty"));
    assert!(!xml::has_element(raw, "missing"));
}

#[test]
fn base64_matches_rfc_4648_vectors_and_round_trips() {
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
        ("\0user\0pass", "AHVzZXIAcGFzcw=="),
    ] {
        assert_eq!(xmpp::base64_encode(plain.as_bytes()), encoded);
        assert_eq!(xmpp::base64_decode(encoded).unwrap(), plain.as_bytes());
    }
    assert_eq!(xmpp::base64_decode("Zm9v!"), None);
}

fn login(stub: &StubServer, user: &str) -> (XmppTcpClient, String) {
    let mut client = XmppTcpClient::connect(stub.addr()).unwrap();
    let features = client.open(stub.domain()).unwrap();
    assert!(xml::has_element(&features, "mechanisms"), "{features}");
    let jid = client.login_plain(user, "secret", stub.domain()).unwrap();
    (client, jid)
}

#[test]
fn two_tcp_clients_exchange_a_message_through_the_plaintext_stub() {
    let stub = StubServer::start(StubOptions::plaintext("chat.example"));
    let (mut alice, alice_jid) = login(&stub, "alice");
    let (mut bob, bob_jid) = login(&stub, "bob");
    assert!(alice_jid.starts_with("alice@chat.example/"), "{alice_jid}");
    assert!(bob_jid.starts_with("bob@chat.example/"), "{bob_jid}");
    assert!(alice.header().unwrap().contains("from='chat.example'"));

    alice
        .send(&xmpp::chat_message("bob@chat.example", "hello bob"))
        .unwrap();
    let received = bob.recv(WAIT).unwrap();
    assert_eq!(
        xml::element_text(&received, "body").as_deref(),
        Some("hello bob")
    );
    assert_eq!(
        xml::attr(&received, "from").as_deref(),
        Some(alice_jid.as_str())
    );

    bob.send(&xmpp::chat_message(&alice_jid, "hi alice"))
        .unwrap();
    let received = alice.recv(WAIT).unwrap();
    assert_eq!(
        xml::element_text(&received, "body").as_deref(),
        Some("hi alice")
    );

    alice
        .send("<iq type='get' id='ping1' to='chat.example'><ping xmlns='urn:xmpp:ping'/></iq>")
        .unwrap();
    let pong = alice.recv(WAIT).unwrap();
    assert_eq!(xml::attr(&pong, "type").as_deref(), Some("result"));
    assert_eq!(xml::attr(&pong, "id").as_deref(), Some("ping1"));

    alice.send("<enable xmlns='urn:xmpp:sm:3'/>").unwrap();
    let a = stub.connection_of(&alice_jid).unwrap();
    stub.wait_event(
        a,
        WAIT,
        |e| matches!(e, StubEvent::OtherElement(s) if s.contains("enable")),
    )
    .unwrap();
    let events = stub.events(a);
    assert_eq!(
        events[0],
        StubEvent::StreamOpened {
            to: Some("chat.example".into()),
            version: Some("1.0".into())
        }
    );
    assert!(events.contains(&StubEvent::Authenticated("alice".into())));
    assert!(events.contains(&StubEvent::Bound(alice_jid.clone())));
    assert!(events
        .iter()
        .any(|e| matches!(e, StubEvent::StanzaReceived(s) if s.contains("hello bob"))));
    assert_eq!(
        stub.send_to(
            "bob@chat.example",
            "<message><body>from server</body></message>"
        ),
        1
    );
    assert!(bob.recv(WAIT).unwrap().contains("from server"));
}

#[test]
fn clean_stream_close_and_vanishing_client_are_told_apart() {
    let stub = StubServer::start(StubOptions::plaintext("chat.example"));
    let (mut polite, polite_jid) = login(&stub, "polite");
    let (rude, rude_jid) = login(&stub, "rude");
    let polite_conn = stub.connection_of(&polite_jid).unwrap();
    let rude_conn = stub.connection_of(&rude_jid).unwrap();

    polite.close_stream(WAIT).unwrap();
    let events = stub
        .wait_event(polite_conn, WAIT, |e| *e == StubEvent::ClientClosedStream)
        .unwrap();
    assert!(!events.contains(&StubEvent::TcpClosed), "{events:?}");

    rude.drop_tcp();
    let events = stub
        .wait_event(rude_conn, WAIT, |e| *e == StubEvent::TcpClosed)
        .unwrap();
    assert!(
        !events.contains(&StubEvent::ClientClosedStream),
        "{events:?}"
    );
    assert_eq!(stub.send_to(&rude_jid, "<message/>"), 0);
}

#[test]
fn required_starttls_verifies_against_the_test_ca_then_allows_login() {
    let stub = StubServer::start(StubOptions::starttls("secure.example", TlsMode::Required));
    assert!(stub
        .ca_pem()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    let ca_file = stub.ca_file().unwrap().to_path_buf();
    assert_eq!(
        std::fs::read_to_string(&ca_file).unwrap(),
        stub.ca_pem().unwrap()
    );

    let mut client = XmppTcpClient::connect(stub.addr()).unwrap();
    let features = client.open("secure.example").unwrap();
    assert!(xml::has_element(&features, "required"), "{features}");
    assert!(!xml::has_element(&features, "mechanisms"), "{features}");
    let features = client
        .starttls("secure.example", stub.client_tls_config().unwrap())
        .unwrap();
    assert!(client.is_tls());
    assert!(!xml::has_element(&features, "starttls"), "{features}");
    let jid = client.login_plain("carol", "pw", "secure.example").unwrap();
    client.send(&xmpp::chat_message(&jid, "to myself")).unwrap();
    assert!(client.recv(WAIT).unwrap().contains("to myself"));

    let events = stub.events(0);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            StubEvent::StreamOpened { .. } => "open",
            StubEvent::StartTls => "tls",
            StubEvent::Authenticated(_) => "auth",
            StubEvent::Bound(_) => "bound",
            StubEvent::StanzaReceived(_) => "stanza",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        ["open", "tls", "open", "auth", "open", "stanza", "bound", "stanza"]
    );
    drop(stub);
    assert!(!ca_file.exists(), "the ca file outlived the stub");
}

#[test]
fn sasl_before_required_tls_is_refused() {
    let stub = StubServer::start(StubOptions::starttls("secure.example", TlsMode::Required));
    let mut client = XmppTcpClient::connect(stub.addr()).unwrap();
    client.open("secure.example").unwrap();
    let err = client
        .login_plain("mallory", "pw", "secure.example")
        .unwrap_err();
    assert!(err.contains("encryption-required"), "{err}");
}

#[test]
fn certificate_for_another_name_fails_the_tls_handshake() {
    let stub = StubServer::start(StubOptions {
        cert_domain: Some("other.example".into()),
        ..StubOptions::starttls("secure.example", TlsMode::Optional)
    });
    let mut client = XmppTcpClient::connect(stub.addr()).unwrap();
    let features = client.open("secure.example").unwrap();
    assert!(xml::has_element(&features, "starttls") && xml::has_element(&features, "mechanisms"));
    let err = client
        .starttls("secure.example", stub.client_tls_config().unwrap())
        .unwrap_err();
    assert!(err.contains("tls handshake"), "{err}");
    stub.wait_event(0, WAIT, |e| matches!(e, StubEvent::TlsFailed(_)))
        .unwrap();
}

#[test]
fn host_unknown_mode_answers_the_open_with_a_stream_error() {
    let stub = StubServer::start(StubOptions::host_unknown("nowhere.example"));
    let mut client = XmppTcpClient::connect(stub.addr()).unwrap();
    let error = client.open("nowhere.example").unwrap();
    assert_eq!(xml::root_name(&error).as_deref(), Some("error"));
    assert!(xml::has_element(&error, "host-unknown"), "{error}");
    assert!(matches!(
        client.recv(WAIT),
        Err(RecvError::Closed { code: None, .. })
    ));
}

#[test]
fn stub_dropping_a_connection_reaches_the_client_as_eof() {
    let stub = StubServer::start(StubOptions::plaintext("chat.example"));
    let (mut client, jid) = login(&stub, "dave");
    stub.drop_connection(stub.connection_of(&jid).unwrap());
    assert_eq!(client.recv(WAIT), Err(RecvError::Eof));
}

#[test]
fn tcp_recv_times_out_when_nothing_arrives() {
    let stub = StubServer::start(StubOptions::plaintext("chat.example"));
    let (mut client, _) = login(&stub, "erin");
    assert_eq!(client.recv(SHORT), Err(RecvError::Timeout));
}

/// A one-connection WebSocket server that requires the `xmpp` subprotocol,
/// echoes data messages and reports how the connection ended.
// tungstenite's `Callback` fixes the large `ErrorResponse` error type.
#[allow(clippy::result_large_err)]
fn echo_server() -> (SocketAddr, mpsc::Receiver<String>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (report, reports) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(WAIT)).unwrap();
        let callback =
            |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
                let offered = request
                    .headers()
                    .get("sec-websocket-protocol")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !offered.split(',').any(|p| p.trim() == "xmpp") {
                    let mut refusal = ErrorResponse::new(Some("xmpp subprotocol required".into()));
                    *refusal.status_mut() = tungstenite::http::StatusCode::BAD_REQUEST;
                    return Err(refusal);
                }
                response
                    .headers_mut()
                    .insert("sec-websocket-protocol", "xmpp".parse().unwrap());
                Ok(response)
            };
        let mut ws = match tungstenite::accept_hdr(sock, callback) {
            Ok(ws) => ws,
            Err(e) => {
                let _ = report.send(format!("refused: {e}"));
                return;
            }
        };
        loop {
            match ws.read() {
                Ok(m @ (Message::Text(_) | Message::Binary(_))) => ws.send(m).unwrap(),
                Ok(Message::Close(frame)) => {
                    let code = frame.map(|f| u16::from(f.code));
                    let _ = report.send(format!("close frame {code:?}"));
                    let _ = ws.flush();
                }
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed) => return,
                Err(e) => {
                    let _ = report.send(format!("error: {e}"));
                    return;
                }
            }
        }
    });
    (addr, reports, thread)
}

#[test]
fn ws_client_handshakes_echoes_and_closes_cleanly() {
    let (addr, reports, thread) = echo_server();
    let mut ws = WsClient::connect(addr, "/xmpp-websocket", &["xmpp"]).unwrap();
    assert_eq!(ws.status(), 101);
    assert_eq!(ws.protocol(), Some("xmpp"));

    ws.send_text("<presence/>").unwrap();
    assert_eq!(ws.recv_text(WAIT).unwrap(), "<presence/>");
    ws.send_binary(b"\x00\x01").unwrap();
    match ws.recv_message(WAIT).unwrap() {
        Message::Binary(b) => assert_eq!(&b[..], b"\x00\x01"),
        other => panic!("expected binary, got {other:?}"),
    }
    ws.send_ping(b"p").unwrap();
    assert!(matches!(ws.recv_message(WAIT).unwrap(), Message::Pong(p) if &p[..] == b"p"));

    // A fragmented text message built by hand comes back whole.
    ws.send_raw_frame(&client_frame(false, OP_TEXT, b"<mess"))
        .unwrap();
    ws.send_raw_frame(&client_frame(false, OP_CONTINUATION, b"age/"))
        .unwrap();
    let mut last = client_frame_header(true, OP_CONTINUATION, 1);
    last.extend_from_slice(&mask(b">"));
    ws.send_raw_frame(&last).unwrap();
    assert_eq!(ws.recv_text(WAIT).unwrap(), "<message/>");

    assert_eq!(ws.recv_text(SHORT), Err(RecvError::Timeout));
    assert_eq!(ws.close(WAIT), Ok(Some(1000)));
    assert_eq!(
        reports.recv_timeout(WAIT).unwrap(),
        "close frame Some(1000)"
    );
    thread.join().unwrap();
}

#[test]
fn ws_client_reports_binary_where_text_was_expected() {
    let (addr, _reports, thread) = echo_server();
    let mut ws = WsClient::connect(addr, "/", &["xmpp"]).unwrap();
    ws.send_binary(b"<x/>").unwrap();
    assert!(matches!(ws.recv_text(WAIT), Err(RecvError::Io(e)) if e.contains("binary")));
    ws.drop_tcp();
    thread.join().unwrap();
}

#[test]
fn ws_client_drop_tcp_vanishes_without_a_close_frame() {
    let (addr, reports, thread) = echo_server();
    let ws = WsClient::connect(addr, "/", &["xmpp"]).unwrap();
    ws.drop_tcp();
    let report = reports.recv_timeout(WAIT).unwrap();
    assert!(report.contains("without closing handshake"), "{report}");
    thread.join().unwrap();
}

#[test]
fn ws_refusal_is_visible_through_connect_and_raw_request() {
    let (addr, _, thread) = echo_server();
    let err = WsClient::connect(addr, "/", &[]).err().unwrap();
    assert!(err.starts_with("http status 400"), "{err}");
    thread.join().unwrap();

    let (addr, _, thread) = echo_server();
    let response = WsClient::raw_request(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.ends_with("\r\n\r\n"), "{response}");
    thread.join().unwrap();
}

/// A one-session RFC 7395 to RFC 6120 bridge (a toy switchboard) so the
/// WebSocket XMPP helpers can be proven against the stub.
// tungstenite's `Callback` fixes the large `ErrorResponse` error type.
#[allow(clippy::result_large_err)]
fn bridge(backend: SocketAddr) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        let callback = |_: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
            response
                .headers_mut()
                .insert("sec-websocket-protocol", "xmpp".parse().unwrap());
            Ok(response)
        };
        let mut ws = tungstenite::accept_hdr(sock, callback).unwrap();
        let mut tcp = XmppTcpClient::connect(backend).unwrap();
        let poll = Duration::from_millis(10);
        loop {
            ws.get_ref().set_read_timeout(Some(poll)).unwrap();
            match ws.read() {
                Ok(Message::Text(text)) => match xml::root_name(&text).as_deref() {
                    Some("open") => {
                        let domain = xml::attr(&text, "to").unwrap();
                        let features = tcp.open(&domain).unwrap();
                        ws.send(Message::text(format!(
                            "<open xmlns='{NS_FRAMING}' from='{domain}' version='1.0'/>"
                        )))
                        .unwrap();
                        ws.send(Message::text(features)).unwrap();
                    }
                    Some("close") => {
                        tcp.close_stream(WAIT).unwrap();
                        ws.send(Message::text(format!("<close xmlns='{NS_FRAMING}'/>")))
                            .unwrap();
                    }
                    _ => tcp.send(&text).unwrap(),
                },
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
            match tcp.recv(poll) {
                Ok(element) => ws.send(Message::text(element)).unwrap(),
                Err(RecvError::Timeout) => {}
                Err(_) => return,
            }
        }
    });
    (addr, thread)
}

#[test]
fn ws_xmpp_helpers_log_in_and_close_through_a_bridge_to_the_stub() {
    let stub = StubServer::start(StubOptions::plaintext("web.example"));
    let (addr, thread) = bridge(stub.addr());
    let mut ws = WsClient::connect(addr, "/xmpp-websocket", &["xmpp"]).unwrap();
    let (opened, features) = ws.open("web.example").unwrap();
    assert_eq!(xml::root_name(&opened).as_deref(), Some("open"));
    assert!(xml::has_element(&features, "mechanisms"), "{features}");
    let jid = ws
        .login_plain_as("frank", "pw", "web.example", "phone")
        .unwrap();
    assert_eq!(jid, "frank@web.example/phone");

    let (mut tcp, _) = login(&stub, "grace");
    tcp.send(&xmpp::chat_message("frank@web.example", "over the bridge"))
        .unwrap();
    let received = ws.recv_text(WAIT).unwrap();
    assert_eq!(
        xml::element_text(&received, "body").as_deref(),
        Some("over the bridge")
    );

    let closed = ws.close_stream().unwrap();
    assert_eq!(xml::root_name(&closed).as_deref(), Some("close"));
    let conn = stub.connection_of(&jid).unwrap();
    let events = stub
        .wait_event(conn, WAIT, |e| *e == StubEvent::ClientClosedStream)
        .unwrap();
    assert!(!events.contains(&StubEvent::TcpClosed));
    ws.drop_tcp();
    thread.join().unwrap();
}

#[test]
fn stub_stops_on_drop_and_frees_its_port() {
    let stub = StubServer::start(StubOptions::default());
    let addr = stub.addr();
    let (mut client, _) = login(&stub, "heidi");
    drop(stub);
    assert_eq!(client.recv(WAIT), Err(RecvError::Eof));
    assert!(TcpStream::connect_timeout(&addr, SHORT).is_err());
}
