use super::*;
use crate::bosh::{parse_body, NS_HTTPBIND};

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='srv1' version='1.0'>";
const FEATURES: &str = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>";
const S0: StreamId = StreamId(0);
const S1: StreamId = StreamId(1);

fn limits() -> xml::Limits {
    xml::Limits {
        max_depth: 32,
        max_attributes: 64,
        max_element_bytes: 64 * 1024,
    }
}

fn settings() -> Settings {
    Settings {
        max_wait: Duration::from_secs(60),
        max_hold: 1,
        default_inactivity: Duration::from_secs(70),
        max_inactivity: Duration::from_secs(160),
        polling: Duration::from_secs(2),
        max_pause: Duration::from_secs(120),
        max_streams: 4,
        allowed_routes: Vec::new(),
        handshake_timeout: Duration::from_secs(15),
        max_pending_bytes: 64 * 1024,
        xml: limits(),
    }
}

fn backend_settings() -> backend::Settings {
    backend::Settings::plaintext_for_tests(limits())
}

fn request(s: &mut Session, now: Instant, handle: RequestHandle, text: &str) {
    let body = parse_body(text.as_bytes(), limits()).unwrap();
    s.handle_request(now, handle, &body, text.as_bytes());
}

fn req(rid: u64, attrs: &str, payload: &str) -> String {
    format!("<body xmlns='{NS_HTTPBIND}' rid='{rid}' sid='sid1' {attrs}>{payload}</body>")
}

fn backend_text_of(s: &mut Session, id: StreamId) -> String {
    let out = s.backend_output(id).to_vec();
    s.consume_backend_output(id, out.len());
    String::from_utf8(out).unwrap()
}

fn backend_text(s: &mut Session) -> String {
    backend_text_of(s, S0)
}

fn responses(s: &mut Session) -> Vec<(RequestHandle, String)> {
    std::iter::from_fn(|| s.poll_response())
        .map(|(h, r)| (h, String::from_utf8(r.body).unwrap()))
        .collect()
}

fn commands(s: &mut Session) -> Vec<Command> {
    std::iter::from_fn(|| s.poll_command()).collect()
}

fn create_with(now: Instant, settings: Settings, attrs: &str) -> Result<Session, Response> {
    let create = format!("<body xmlns='{NS_HTTPBIND}' rid='10' to='localhost' wait='30' hold='1' ver='1.11' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh' {attrs}/>");
    let body = parse_body(create.as_bytes(), limits()).unwrap();
    Session::create(now, settings, "sid1".into(), 1, &body)
}

/// A session through creation, backend connect and features.
fn ready_with(now: Instant, attrs: &str) -> Session {
    let mut s = create_with(now, settings(), attrs).unwrap();
    assert_eq!(
        s.poll_command(),
        Some(Command::Connect {
            stream: S0,
            domain: "localhost".into(),
            route: None,
        })
    );
    s.backend_connected(now, S0, backend_settings());
    assert!(backend_text(&mut s).contains("to='localhost'"));
    assert!(
        responses(&mut s).is_empty(),
        "creation waits for the features"
    );
    s.handle_backend_input(now, S0, format!("{HEADER}{FEATURES}").as_bytes());
    s
}

fn ready(now: Instant) -> Session {
    ready_with(now, "")
}

/// A ready session whose creation response was taken.
fn idle(now: Instant) -> Session {
    let mut s = ready(now);
    responses(&mut s);
    s
}

fn attr(body: &str, name: &str) -> Option<String> {
    let start = body.find(&format!(" {name}='"))? + name.len() + 3;
    let len = body[start..].find('\'')?;
    Some(body[start..start + len].to_string())
}

#[test]
fn creation_is_answered_with_the_features_and_session_attributes() {
    let now = Instant::now();
    let mut s = ready(now);
    let got = responses(&mut s);
    assert_eq!(got.len(), 1);
    let (handle, body) = &got[0];
    assert_eq!(*handle, 1);
    for attr in [
        "sid='sid1'",
        "wait='30'",
        "hold='1'",
        "requests='2'",
        "inactivity='70'",
        "polling='2'",
        "maxpause='120'",
        "from='localhost'",
        "xmpp:version='1.0'",
        "authid='srv1'",
        "secure='false'",
        "stream='",
    ] {
        assert!(body.contains(attr), "{attr} missing: {body}");
    }
    assert!(!body.contains(" ack="), "no acks asked for: {body}");
    assert!(body.contains("<stream:features"), "{body}");
}

#[test]
fn a_creation_without_to_is_improper_addressing_and_missing_wait_hold_get_defaults() {
    let now = Instant::now();
    let text = format!("<body xmlns='{NS_HTTPBIND}' rid='1'/>");
    let body = parse_body(text.as_bytes(), limits()).unwrap();
    let refused = Session::create(now, settings(), "s".into(), 1, &body)
        .err()
        .unwrap();
    assert!(String::from_utf8(refused.body)
        .unwrap()
        .contains("improper-addressing"));
    let text = format!("<body xmlns='{NS_HTTPBIND}' rid='1' to='localhost'/>");
    let body = parse_body(text.as_bytes(), limits()).unwrap();
    assert!(Session::create(now, settings(), "s".into(), 1, &body).is_ok());
}

#[test]
fn the_clients_from_is_echoed_as_to() {
    let now = Instant::now();
    let mut s = ready_with(now, "from='alice@localhost'");
    assert!(responses(&mut s)[0].1.contains("to='alice@localhost'"));
}

#[test]
fn a_held_request_is_answered_empty_after_wait() {
    let now = Instant::now();
    let mut s = idle(now);
    request(&mut s, now, 2, &req(11, "", ""));
    assert!(responses(&mut s).is_empty());
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(30)));
    s.handle_timeout(now + Duration::from_secs(30));
    let got = responses(&mut s);
    assert_eq!(got.len(), 1);
    assert!(
        got[0].1.ends_with("/>") && !got[0].1.contains("type="),
        "{got:?}"
    );
}

#[test]
fn server_stanzas_answer_the_held_request_with_jabber_client_declared() {
    let now = Instant::now();
    let mut s = idle(now);
    request(&mut s, now, 2, &req(11, "", ""));
    s.handle_backend_input(
        now,
        S0,
        b"<message from='b@localhost'><body>hi</body></message>",
    );
    let got = responses(&mut s);
    assert_eq!(got[0].0, 2);
    assert!(
        got[0]
            .1
            .contains("<message xmlns='jabber:client' from='b@localhost'>"),
        "{got:?}"
    );
    assert!(
        !got[0].1.contains(" stream="),
        "one stream: no names {got:?}"
    );
}

#[test]
fn early_rids_wait_for_the_gap_and_payloads_keep_rid_order() {
    let now = Instant::now();
    let mut s = idle(now);
    request(&mut s, now, 3, &req(12, "", "<presence id='second'/>"));
    assert_eq!(backend_text(&mut s), "", "rid 12 waits for 11");
    request(&mut s, now, 2, &req(11, "", "<presence id='first'/>"));
    assert_eq!(
        backend_text(&mut s),
        "<presence id='first'/><presence id='second'/>"
    );
    // With hold=1 the first of the two held requests was answered.
    assert_eq!(
        responses(&mut s).iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![2]
    );
}

#[test]
fn inactivity_ends_the_session_without_closing_the_server_stream() {
    let now = Instant::now();
    let mut s = idle(now);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(70)));
    s.handle_timeout(now + Duration::from_secs(70));
    assert!(s.is_ended());
    assert_eq!(s.poll_command(), Some(Command::End(End::Inactive)));
    assert!(!backend_text(&mut s).contains("</stream:stream>"));
}

#[test]
fn pause_answers_held_requests_and_stretches_inactivity_until_the_next_request() {
    let now = Instant::now();
    let mut s = idle(now);
    request(&mut s, now, 2, &req(11, "", ""));
    request(&mut s, now, 3, &req(12, "pause='100'", ""));
    assert_eq!(responses(&mut s).len(), 2);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(100)));
    let later = now + Duration::from_secs(90);
    s.handle_timeout(later);
    assert!(!s.is_ended(), "the pause holds past the inactivity");
    request(&mut s, later, 4, &req(13, "", ""));
    s.handle_timeout(later + Duration::from_secs(30));
    responses(&mut s);
    assert_eq!(
        s.poll_timeout(),
        Some(later + Duration::from_secs(30 + 70)),
        "back to the granted inactivity"
    );
}

#[test]
fn terminate_sends_the_payload_then_closes_cleanly() {
    let now = Instant::now();
    let mut s = idle(now);
    request(
        &mut s,
        now,
        2,
        &req(11, "type='terminate'", "<presence type='unavailable'/>"),
    );
    assert_eq!(
        backend_text(&mut s),
        "<presence type='unavailable'/></stream:stream>"
    );
    let got = responses(&mut s);
    assert!(got[0].1.contains("type='terminate'"), "{got:?}");
    assert_eq!(
        commands(&mut s),
        vec![
            Command::CloseBackend { stream: S0 },
            Command::End(End::ClientClosed)
        ]
    );
}

#[test]
fn a_restart_before_sasl_success_is_answered_with_the_features() {
    let now = Instant::now();
    let mut s = idle(now);
    request(
        &mut s,
        now,
        2,
        &req(
            11,
            "xmpp:restart='true' to='localhost' xmlns:xmpp='urn:xmpp:xbosh'",
            "",
        ),
    );
    assert_eq!(
        backend_text(&mut s),
        "",
        "no new stream header for the server"
    );
    assert!(responses(&mut s)[0].1.contains("<stream:features"));
    assert!(
        commands(&mut s).is_empty(),
        "a restart's `to` opens no stream"
    );
    // After SASL success the restart does reach the server.
    request(&mut s, now, 3, &req(12, "", "<auth/>"));
    s.handle_backend_input(
        now,
        S0,
        b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
    );
    responses(&mut s);
    backend_text(&mut s);
    request(
        &mut s,
        now,
        4,
        &req(13, "xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh' stream_attrs='{\"foo\":\"bar\",\"to\":\"other.example\"}'", ""),
    );
    let header = backend_text(&mut s);
    assert!(header.contains("<stream:stream"), "{header}");
    assert!(
        header.contains(" foo='bar'")
            && header.contains(" to='other.example'")
            && !header.contains("to='localhost'"),
        "stream_attrs add and override attributes: {header}"
    );
}

#[test]
fn stream_attrs_may_not_touch_namespaces_or_version() {
    for bad in [
        r#"{"xmlns":"x"}"#,
        r#"{"xmlns:stream":"x"}"#,
        r#"{"version":"2"}"#,
        r#"{"a b":"c"}"#,
        "[1]",
        "{",
    ] {
        assert!(stream_attrs(bad).is_err(), "{bad}");
    }
    let mut attrs = stream_attrs(r#"{"n":1,"b":true}"#).unwrap();
    attrs.sort();
    assert_eq!(
        attrs,
        vec![
            ("b".to_string(), "true".to_string()),
            ("n".to_string(), "1".to_string())
        ]
    );
}

#[test]
fn repeats_get_the_kept_response_and_far_rids_end_the_session() {
    let now = Instant::now();
    let mut s = ready(now);
    let creation = responses(&mut s).remove(0).1;
    request(&mut s, now, 9, &req(10, "", ""));
    assert_eq!(responses(&mut s), vec![(9, creation)]);
    request(&mut s, now, 8, &req(40, "", ""));
    let got = responses(&mut s);
    assert!(got[0].1.contains("item-not-found"), "{got:?}");
    assert!(s.is_ended());
}

#[test]
fn a_gone_request_is_not_answered() {
    let now = Instant::now();
    let mut s = idle(now);
    request(&mut s, now, 2, &req(11, "", ""));
    s.request_gone(now, 2);
    s.handle_backend_input(now, S0, b"<message><body>later</body></message>");
    assert!(responses(&mut s).is_empty(), "kept for the next request");
    request(&mut s, now, 3, &req(12, "", ""));
    assert!(responses(&mut s)[0].1.contains("later"));
}

#[test]
fn with_acks_responses_carry_ack_and_a_missed_one_is_reported() {
    let now = Instant::now();
    let mut s = ready_with(now, "ack='1'");
    let creation = responses(&mut s).remove(0).1;
    assert_eq!(attr(&creation, "ack").as_deref(), Some("10"), "{creation}");
    // 11 held, 12 arrives: 11 is answered with ack=12 (not its own rid).
    request(&mut s, now, 2, &req(11, "", ""));
    request(&mut s, now, 3, &req(12, "ack='10'", "<presence/>"));
    let got = responses(&mut s);
    assert_eq!(got.len(), 1);
    assert_eq!(attr(&got[0].1, "ack").as_deref(), Some("12"), "{got:?}");
    // The client never got 11's response: 3 s later its next request
    // still acknowledges only 10. 12 is answered at once with a report.
    let later = now + Duration::from_secs(3);
    request(&mut s, later, 4, &req(13, "ack='10'", "<presence/>"));
    let got = responses(&mut s);
    assert_eq!(got[0].0, 3);
    assert_eq!(attr(&got[0].1, "report").as_deref(), Some("11"), "{got:?}");
    assert_eq!(attr(&got[0].1, "time").as_deref(), Some("3000"), "{got:?}");
    // The client repeats 11 and gets its response, kept until acknowledged.
    request(&mut s, later, 5, &req(11, "", ""));
    assert_eq!(attr(&responses(&mut s)[0].1, "ack").as_deref(), Some("12"));
    // Once acknowledged it is released: a repeat now ends the session.
    request(&mut s, later, 6, &req(14, "ack='12'", "<presence/>"));
    request(&mut s, later, 7, &req(11, "", ""));
    let got = responses(&mut s);
    assert!(got.last().unwrap().1.contains("item-not-found"), "{got:?}");
}

#[test]
fn without_acks_no_ack_attributes_appear() {
    let now = Instant::now();
    let mut s = idle(now);
    request(&mut s, now, 2, &req(11, "", ""));
    request(&mut s, now, 3, &req(12, "", "<presence/>"));
    let got = responses(&mut s);
    assert!(got.len() == 1 && !got[0].1.contains("ack="), "{got:?}");
}

#[test]
fn empty_requests_while_one_is_held_and_too_soon_are_a_policy_violation() {
    let now = Instant::now();
    let mut s = idle(now);
    request(&mut s, now, 2, &req(11, "", ""));
    request(
        &mut s,
        now + Duration::from_millis(100),
        3,
        &req(12, "", ""),
    );
    let got = responses(&mut s);
    assert!(
        got.iter().any(|r| r.1.contains("policy-violation")),
        "{got:?}"
    );
    assert!(s.is_ended());
}

#[test]
fn a_page_reload_that_abandons_the_held_request_is_not_overactivity() {
    let now = Instant::now();
    let mut s = idle(now);
    request(&mut s, now, 2, &req(11, "", ""));
    // The page goes away with request 11 in flight; the new page carries on.
    s.request_gone(now, 2);
    request(
        &mut s,
        now + Duration::from_millis(100),
        3,
        &req(12, "", ""),
    );
    assert!(!s.is_ended());
    assert!(responses(&mut s).is_empty(), "12 is held");
    // Requests with payload while one is held are normal traffic.
    request(
        &mut s,
        now + Duration::from_millis(150),
        4,
        &req(13, "", "<presence/>"),
    );
    assert!(!s.is_ended());
}

#[test]
fn polling_faster_than_allowed_is_a_policy_violation_after_one_grace() {
    let now = Instant::now();
    let mut s = create_with(now, settings(), "").unwrap();
    let create = format!(
        "<body xmlns='{NS_HTTPBIND}' rid='10' to='localhost' wait='0' hold='0' ver='1.11'/>"
    );
    let body = parse_body(create.as_bytes(), limits()).unwrap();
    s = Session::create(now, settings(), "sid1".into(), 1, &body).unwrap_or(s);
    s.poll_command();
    s.backend_connected(now, S0, backend_settings());
    s.handle_backend_input(now, S0, format!("{HEADER}{FEATURES}").as_bytes());
    responses(&mut s);
    let mut t = now + Duration::from_secs(3);
    for rid in 11..14 {
        request(&mut s, t, rid, &req(rid, "", ""));
        t += Duration::from_secs(3);
    }
    assert!(!s.is_ended(), "polls 3 s apart are fine");
    request(&mut s, t, 20, &req(14, "", ""));
    request(&mut s, t + Duration::from_millis(500), 21, &req(15, "", ""));
    assert!(!s.is_ended(), "one early poll is forgiven (a reload)");
    request(&mut s, t + Duration::from_millis(900), 22, &req(16, "", ""));
    assert!(s.is_ended());
    assert!(responses(&mut s)
        .last()
        .unwrap()
        .1
        .contains("policy-violation"));
}

#[test]
fn a_legacy_client_gets_http_codes_for_its_errors() {
    let now = Instant::now();
    let create =
        format!("<body xmlns='{NS_HTTPBIND}' rid='10' to='localhost' wait='30' hold='1'/>");
    let body = parse_body(create.as_bytes(), limits()).unwrap();
    let mut s = Session::create(now, settings(), "sid1".into(), 1, &body).unwrap();
    request(&mut s, now, 2, &req(50, "", ""));
    let (handle, response) = s.poll_response().unwrap();
    assert_eq!((handle, response.status), (2, 404));
}

/// A second stream on the session: returns it with its name.
fn add_stream(s: &mut Session, now: Instant, rid: u64) -> String {
    request(s, now, 20, &req(rid, "to='localhost' xml:lang='de'", ""));
    let got = commands(s);
    assert_eq!(
        got,
        vec![Command::Connect {
            stream: S1,
            domain: "localhost".into(),
            route: None
        }]
    );
    let (domain, lang) = s.stream_target(S1).unwrap();
    assert_eq!((domain, lang), ("localhost", "de"));
    s.backend_connected(now, S1, backend_settings());
    assert!(backend_text_of(s, S1).contains("<stream:stream"));
    s.handle_backend_input(
        now,
        S1,
        format!("{}{FEATURES}", HEADER.replace("srv1", "srv2")).as_bytes(),
    );
    let got = responses(s);
    assert_eq!(got.len(), 1, "{got:?}");
    let body = &got[0].1;
    assert!(
        body.contains("authid='srv2'") && body.contains("<stream:features"),
        "{body}"
    );
    assert!(!body.contains("sid="), "not a session creation: {body}");
    attr(body, "stream").unwrap()
}

#[test]
fn a_second_stream_has_its_own_backend_and_names_its_payloads() {
    let now = Instant::now();
    let mut s = ready(now);
    let first = attr(&responses(&mut s)[0].1, "stream").unwrap();
    let second = add_stream(&mut s, now, 11);
    assert_ne!(first, second);
    // Payloads go to the named stream only.
    request(
        &mut s,
        now,
        3,
        &req(12, &format!("stream='{second}'"), "<presence id='p2'/>"),
    );
    assert_eq!(backend_text_of(&mut s, S1), "<presence id='p2'/>");
    assert_eq!(backend_text(&mut s), "");
    // Without a name they go to every stream (§19.3).
    request(&mut s, now, 4, &req(13, "", "<presence id='all'/>"));
    assert_eq!(backend_text(&mut s), "<presence id='all'/>");
    assert_eq!(backend_text_of(&mut s, S1), "<presence id='all'/>");
    responses(&mut s);
    // Server data comes out one stream per body, named.
    s.handle_backend_input(now, S1, b"<message id='m2'/>");
    s.handle_backend_input(now, S0, b"<message id='m1'/>");
    request(&mut s, now, 5, &req(14, "", "<r/>"));
    let got = responses(&mut s);
    let with_m2 = got.iter().find(|r| r.1.contains("m2")).unwrap();
    assert_eq!(attr(&with_m2.1, "stream"), Some(second.clone()));
    assert!(!with_m2.1.contains("m1"), "one stream per body: {got:?}");
    // An unknown stream name ends the session.
    request(&mut s, now, 6, &req(15, "stream='nope'", "<x/>"));
    assert!(s.is_ended());
}

#[test]
fn one_stream_closes_and_the_session_goes_on() {
    let now = Instant::now();
    let mut s = idle(now);
    let second = add_stream(&mut s, now, 11);
    request(
        &mut s,
        now,
        3,
        &req(
            12,
            &format!("type='terminate' stream='{second}'"),
            "<presence type='unavailable'/>",
        ),
    );
    assert_eq!(
        backend_text_of(&mut s, S1),
        "<presence type='unavailable'/></stream:stream>"
    );
    let got = responses(&mut s);
    let closed = got.iter().find(|r| r.0 == 3).unwrap();
    assert!(
        closed.1.contains("type='terminate'") && closed.1.contains(&second),
        "{got:?}"
    );
    assert_eq!(commands(&mut s), vec![Command::CloseBackend { stream: S1 }]);
    assert!(!s.is_ended());
    s.backend_released(S1);
    // The first stream still works; a late payload for the closed one is
    // dropped quietly.
    request(
        &mut s,
        now,
        4,
        &req(13, &format!("stream='{second}'"), "<late/>"),
    );
    assert!(!s.is_ended());
    request(&mut s, now, 5, &req(14, "", "<presence/>"));
    assert_eq!(backend_text(&mut s), "<presence/>");
    // A second terminate for it is answered for that stream alone.
    request(
        &mut s,
        now,
        6,
        &req(15, &format!("type='terminate' stream='{second}'"), ""),
    );
    let got = responses(&mut s);
    let again = got.iter().find(|r| r.0 == 6).unwrap();
    assert_eq!(attr(&again.1, "stream"), Some(second), "{got:?}");
    assert!(!s.is_ended());
}

#[test]
fn a_failed_second_stream_is_reported_by_name_without_ending_the_session() {
    let now = Instant::now();
    let mut s = idle(now);
    request(&mut s, now, 2, &req(11, "to='elsewhere'", ""));
    commands(&mut s);
    s.backend_failed(now, S1, "no route".into());
    let got = responses(&mut s);
    assert_eq!(got.len(), 1);
    assert!(
        got[0].1.contains("condition='remote-connection-failed'") && got[0].1.contains("stream='"),
        "{got:?}"
    );
    assert!(!s.is_ended());
}

#[test]
fn streams_are_capped() {
    let now = Instant::now();
    let mut s = idle(now);
    for rid in 11..14 {
        request(&mut s, now, rid, &req(rid, "to='localhost'", ""));
    }
    assert!(!s.is_ended());
    request(&mut s, now, 14, &req(14, "to='localhost'", ""));
    assert!(s.is_ended(), "a fifth stream is over max_streams = 4");
}

#[test]
fn route_is_ignored_unless_allowed_and_then_only_allowed_ones() {
    let now = Instant::now();
    let mut s = create_with(now, settings(), "route='xmpp:10.0.0.1:5222'").unwrap();
    assert!(matches!(
        s.poll_command(),
        Some(Command::Connect { route: None, .. })
    ));
    let mut allowing = settings();
    allowing.allowed_routes = vec!["xmpp:127.0.0.1:5223".into()];
    let refused = create_with(now, allowing.clone(), "route='xmpp:10.0.0.1:5222'").err();
    assert!(String::from_utf8(refused.unwrap().body)
        .unwrap()
        .contains("host-unknown"));
    let mut s2 = create_with(now, allowing, "route='xmpp:127.0.0.1:5223'").unwrap();
    assert!(matches!(
        s2.poll_command(),
        Some(Command::Connect { route: Some(r), .. }) if r == "xmpp:127.0.0.1:5223"
    ));
    drop(s.poll_command());
}

#[test]
fn shutting_down_answers_held_requests_with_system_shutdown() {
    let now = Instant::now();
    let mut s = idle(now);
    request(&mut s, now, 2, &req(11, "", ""));
    s.shut_down();
    assert!(responses(&mut s)[0].1.contains("system-shutdown"));
    assert!(!backend_text(&mut s).contains("</stream:stream>"));
}

/// §14.3: a held request whose connection broke, sent again with the same
/// rid on another connection, is held there and answered there; the
/// session goes on.
#[test]
fn an_unanswered_request_sent_again_after_its_connection_died_is_held_again() {
    let now = Instant::now();
    let mut s = idle(now);
    request(&mut s, now, 2, &req(11, "", ""));
    s.request_gone(now, 2);
    request(&mut s, now, 3, &req(11, "", ""));
    assert!(responses(&mut s).is_empty(), "held again, not refused");
    s.handle_backend_input(now, S0, b"<message><body>hi</body></message>");
    let got = responses(&mut s);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, 3);
    assert!(got[0].1.contains("hi"), "{got:?}");
    assert!(!s.is_ended());
}

/// The same, while the old connection still holds it: the new connection
/// takes it over and the old one is answered empty.
#[test]
fn an_unanswered_request_sent_again_moves_to_the_new_connection() {
    let now = Instant::now();
    let mut s = idle(now);
    request(&mut s, now, 2, &req(11, "", ""));
    request(&mut s, now, 3, &req(11, "", ""));
    let got = responses(&mut s);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, 2, "the old copy is let go");
    assert!(!got[0].1.contains("terminate"), "{got:?}");
    s.handle_backend_input(now, S0, b"<message><body>hi</body></message>");
    let got = responses(&mut s);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, 3);
    assert!(got[0].1.contains("hi"));
}

/// The session's domain outlives its streams, for the end's log line.
#[test]
fn a_terminated_session_still_names_its_domain() {
    let now = Instant::now();
    let mut s = idle(now);
    request(&mut s, now, 2, &req(11, "type='terminate'", ""));
    assert!(s.is_ended());
    assert!(commands(&mut s).contains(&Command::CloseBackend { stream: S0 }));
    backend_text(&mut s);
    s.backend_released(S0);
    assert_eq!(s.domain(), "localhost");
}

/// A client that vanishes while its request is held leaves a session
/// with nothing held: it ends after the inactivity period, not never.
#[test]
fn a_session_whose_held_request_went_away_ends_after_inactivity() {
    let now = Instant::now();
    let mut s = idle(now);
    request(&mut s, now, 2, &req(11, "", ""));
    s.request_gone(now, 2);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(70)));
    s.handle_timeout(now + Duration::from_secs(70));
    assert!(s.is_ended());
}

/// Clients take responses in rid order: a request sent again after a later
/// one was answered with data must not carry newer data itself.
#[test]
fn a_request_sent_again_after_a_later_one_was_answered_is_answered_empty() {
    let now = Instant::now();
    let mut s = idle(now);
    request(&mut s, now, 2, &req(11, "", ""));
    s.request_gone(now, 2);
    request(&mut s, now, 3, &req(12, "", ""));
    s.handle_backend_input(now, S0, b"<message><body>first</body></message>");
    let got = responses(&mut s);
    assert_eq!((got.len(), got[0].0), (1, 3));
    assert!(got[0].1.contains("first"));
    request(&mut s, now, 4, &req(11, "", ""));
    let got = responses(&mut s);
    assert_eq!(got.len(), 1, "answered at once: {got:?}");
    assert_eq!(got[0].0, 4);
    assert!(!got[0].1.contains("<message"), "{got:?}");
    s.handle_backend_input(now, S0, b"<message><body>second</body></message>");
    assert!(responses(&mut s).is_empty(), "kept for rid 13");
    request(&mut s, now, 5, &req(13, "", ""));
    assert!(responses(&mut s)[0].1.contains("second"));
}

#[test]
fn a_client_mistake_before_the_features_closes_the_server_stream_cleanly() {
    let now = Instant::now();
    let mut s = create_with(now, settings(), "").unwrap();
    commands(&mut s);
    s.backend_connected(now, S0, backend_settings());
    backend_text(&mut s);
    request(
        &mut s,
        now,
        2,
        &req(
            11,
            "xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh' to='localhost'",
            "",
        ),
    );
    assert!(s.is_ended());
    assert_eq!(backend_text(&mut s), "</stream:stream>");
    assert_eq!(
        commands(&mut s),
        vec![
            Command::CloseBackend { stream: S0 },
            Command::End(End::Client(Mistake::RestartTooEarly))
        ]
    );
}

#[test]
fn too_much_early_data_on_a_second_stream_closes_that_server_stream_cleanly() {
    let now = Instant::now();
    let mut s = idle(now);
    request(&mut s, now, 2, &req(11, "to='localhost'", ""));
    commands(&mut s);
    s.backend_connected(now, S1, backend_settings());
    backend_text_of(&mut s, S1);
    let second = s.streams[1].as_ref().unwrap().name.clone();
    // Two payloads of 40 KiB: more than the 64 KiB kept for a stream not up.
    let big = format!("<message><body>{}</body></message>", "x".repeat(40 * 1024));
    for rid in [12, 13] {
        request(
            &mut s,
            now,
            rid,
            &req(rid, &format!("stream='{second}'"), &big),
        );
    }
    assert!(!s.is_ended());
    assert_eq!(backend_text_of(&mut s, S1), "</stream:stream>");
    assert_eq!(commands(&mut s), vec![Command::CloseBackend { stream: S1 }]);
    let got = responses(&mut s);
    assert!(
        got.iter()
            .any(|r| r.1.contains("condition='policy-violation'") && r.1.contains(&second)),
        "{got:?}"
    );
    s.backend_released(S1);
    request(&mut s, now, 14, &req(14, "", "<presence/>"));
    assert_eq!(backend_text(&mut s), "<presence/>");
}
