//! `bosh_session`: one [`Session`] driven by operations decoded from the
//! input, as the reactor drives it, on a virtual clock. Input: one selector
//! byte (bit 0: `hold` up to 2 or 0, bit 1: tiny XML limits for the
//! backend, bit 2: routes allowed, bit 3: no polling interval), four bytes
//! for the creation request (rid, wait, hold, flags), then operations of
//! one to three bytes each: requests with rids near, repeated, early, far
//! or out of order, with or without terminate, restart, pause, ack, stream
//! names, `to` (a new stream) and payloads, fixed or from the input; a
//! request's connection gone; a backend connected, fed (only while the
//! session wants input, as the reactor does), failed or at end of file;
//! time moving on, or jumping to `poll_timeout`; outputs written and
//! closed backends released; a shutdown. The run ends with a shutdown.
//!
//! Invariants after every step: no panic; responses only for handles that
//! were given and not gone, at most one each, and none bigger than the
//! server data the session may hold allows; `End` comes once, exactly when
//! `is_ended` turns true, and after it nothing but refusals of new requests
//! and no deadline; a live session with no request to answer has a deadline
//! (inactivity); after `handle_timeout(now)` the next deadline is later than
//! `now`; the backend output is bounded by what the client sent and does not
//! grow after the end. After the final shutdown every request given and not
//! gone has had its response.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::common::{self, pick, Input};
use switchboard_core::backend;
use switchboard_core::bosh::{
    parse_body, Command, RequestHandle, Response, Session, Settings, StreamId, MAX_RID, NS_HTTPBIND,
};
use switchboard_core::xml;

const MAX_PENDING: usize = 512;
/// Room in a response beyond the server data: the body element, a
/// restart's copy of the features, and namespaces spliced into a read's
/// elements.
const RESPONSE_SLACK: usize = 8 * 1024;
/// Room in a backend output per step beyond the client's payloads: stream
/// headers and closes.
const BACKEND_SLACK_PER_STEP: usize = 512;

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='srv1' version='1.0'>";
const SERVER_DATA: [&str; 7] = [
    HEADER,
    "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>",
    "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
    "<message from='b@localhost'><body>hello</body></message>",
    "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
    "</stream:stream>",
    "<message from='b@localhost'><body>xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx</body></message>",
];
const PAYLOADS: [&str; 5] = [
    "",
    "<message to='a@localhost'><body>hi</body></message>",
    "<presence/>",
    "<iq type='get' id='q1'><query xmlns='jabber:iq:roster'/></iq>",
    "<message><body>zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz</body></message>",
];
const STEPS_MS: [u64; 10] = [0, 1, 100, 999, 1_000, 2_000, 5_000, 30_000, 61_000, 200_000];

/// What the driver knows, and what the invariants need.
struct Driver {
    session: Session,
    now: Instant,
    next_handle: RequestHandle,
    /// The rid the session takes next, as far as the driver can tell.
    next_rid: u64,
    given: BTreeSet<RequestHandle>,
    answered: BTreeSet<RequestHandle>,
    gone: BTreeSet<RequestHandle>,
    /// Handles given after the session ended.
    after_end: BTreeSet<RequestHandle>,
    /// Streams the session asked to connect, and whether they are.
    streams: BTreeMap<usize, bool>,
    /// Rids given so far, to follow the session's next rid over gaps.
    rids: BTreeSet<u64>,
    /// Each backend output's length at the last drain.
    outputs: BTreeMap<usize, usize>,
    /// Streams the session closed (`CloseBackend`), not yet released.
    releasable: BTreeSet<usize>,
    names: Vec<String>,
    ended: bool,
    /// Client payload bytes given, bounding what reaches the backends.
    client_bytes: usize,
    steps: usize,
    backend_xml: xml::Limits,
}

pub fn check(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut input = Input(rest);
    let settings = settings(selector);
    let backend_xml = if selector & 2 == 0 {
        xml::Limits::default()
    } else {
        common::TINY_XML
    };
    let now = Instant::now();
    let (rid, create) = creation(&mut input);
    let Ok(body) = parse_body(create.as_bytes(), xml::Limits::default()) else {
        panic!("creation body {create:?} refused");
    };
    let session = match Session::create(now, settings, "sid1".into(), 1, &body) {
        Ok(session) => session,
        Err(response) => return check_refusal(&response),
    };
    let mut driver = Driver {
        session,
        now,
        next_handle: 2,
        next_rid: rid + 1,
        given: BTreeSet::from([1]),
        answered: BTreeSet::new(),
        gone: BTreeSet::new(),
        after_end: BTreeSet::new(),
        streams: BTreeMap::new(),
        rids: BTreeSet::from([rid]),
        outputs: BTreeMap::new(),
        releasable: BTreeSet::new(),
        names: Vec::new(),
        ended: false,
        client_bytes: 0,
        steps: 0,
        backend_xml,
    };
    driver.drain();
    while !input.0.is_empty() {
        driver.step(&mut input);
        driver.steps += 1;
        driver.drain();
    }
    driver.session.shut_down();
    driver.drain();
    assert!(driver.ended, "not ended by the shutdown");
    let lost = driver.outstanding();
    assert!(lost.is_empty(), "requests never answered: {lost:?}");
}

fn settings(selector: u8) -> Settings {
    Settings {
        max_wait: Duration::from_secs(60),
        max_hold: if selector & 1 == 0 { 2 } else { 0 },
        default_inactivity: Duration::from_secs(10),
        max_inactivity: Duration::from_secs(30),
        polling: if selector & 8 == 0 {
            Duration::from_secs(2)
        } else {
            Duration::ZERO
        },
        max_pause: Duration::from_secs(20),
        max_streams: 2,
        allowed_routes: if selector & 4 == 0 {
            Vec::new()
        } else {
            vec!["xmpp:localhost:5222".into()]
        },
        handshake_timeout: Duration::from_secs(5),
        max_pending_bytes: MAX_PENDING,
        xml: xml::Limits::default(),
    }
}

/// The creation request (XEP-0124 §7.1) and its rid.
fn creation(input: &mut Input) -> (u64, String) {
    let rid = match input.byte() {
        b if b % 4 == 0 => 1,
        b if b % 4 == 1 => u64::from(b),
        b if b % 4 == 2 => MAX_RID - 3,
        _ => MAX_RID,
    };
    let wait = input.byte() % 70;
    let hold = input.byte() % 4;
    let flags = input.byte();
    let mut attrs = format!("rid='{rid}' wait='{wait}' hold='{hold}'");
    let optional = [
        (1, "ack='1'"),
        (2, "ver='1.11'"),
        (4, "inactivity='5'"),
        (8, "route='xmpp:localhost:5222'"),
        (16, "from='alice@localhost'"),
    ];
    for (bit, attr) in optional {
        if flags & bit != 0 {
            attrs = format!("{attrs} {attr}");
        }
    }
    let to = if flags & 32 == 0 { "localhost" } else { "" };
    (
        rid,
        format!("<body xmlns='{NS_HTTPBIND}' {attrs} to='{to}' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>"),
    )
}

fn check_refusal(response: &Response) {
    assert_eq!(response.status, 200);
    let body = String::from_utf8_lossy(&response.body);
    assert!(body.contains("type='terminate'"), "{body}");
}

impl Driver {
    fn step(&mut self, input: &mut Input) {
        match input.byte() % 13 {
            0..=2 => {
                let (rid, body) = self.request_body(input);
                self.request(rid, &body);
            }
            3 => {
                let len = usize::from(input.byte());
                let payload = String::from_utf8_lossy(input.bytes(len)).into_owned();
                let rid = self.next_rid;
                let body =
                    format!("<body xmlns='{NS_HTTPBIND}' rid='{rid}' sid='sid1'>{payload}</body>");
                self.request(Some(rid), &body);
            }
            4 => {
                if let Some(&handle) = pick(&self.outstanding(), input.byte()) {
                    self.session.request_gone(self.now, handle);
                    self.gone.insert(handle);
                }
            }
            5 => {
                let waiting: Vec<usize> = self
                    .streams
                    .iter()
                    .filter(|(_, connected)| !**connected)
                    .map(|(&id, _)| id)
                    .collect();
                // The reactor drops a session's connections at `End`: none
                // completes after it.
                let Some(&id) = pick(&waiting, input.byte()).filter(|_| !self.ended) else {
                    return;
                };
                let settings = backend::Settings {
                    domain: "localhost".into(),
                    lang: "en".into(),
                    tls: common::tls(),
                    plaintext_allowed: true,
                    skip_optional_tls: false,
                    xml: self.backend_xml,
                };
                self.session
                    .backend_connected(self.now, StreamId(id), settings);
                self.streams.insert(id, true);
            }
            6 => {
                let id = self.stream(input.byte());
                let data = SERVER_DATA[usize::from(input.byte()) % SERVER_DATA.len()];
                self.backend_input(id, data.as_bytes());
            }
            7 => {
                let id = self.stream(input.byte());
                let len = usize::from(input.byte() % 64);
                let data = input.bytes(len).to_vec();
                self.backend_input(id, &data);
            }
            8 => {
                let id = self.stream(input.byte());
                if input.byte().is_multiple_of(2) {
                    self.session.handle_backend_eof(self.now, id);
                } else {
                    self.session.backend_failed(self.now, id, "refused".into());
                }
            }
            9 => {
                let ms = STEPS_MS[usize::from(input.byte()) % STEPS_MS.len()];
                self.now += Duration::from_millis(ms);
                self.timeout();
            }
            10 => {
                if let Some(at) = self.session.poll_timeout() {
                    self.now = self.now.max(at);
                }
                self.timeout();
            }
            11 => {
                let ids: Vec<usize> = self.streams.keys().copied().collect();
                for id in ids {
                    let n = self.session.backend_output(StreamId(id)).len();
                    self.session.consume_backend_output(StreamId(id), n);
                }
                for id in std::mem::take(&mut self.releasable) {
                    self.session.backend_released(StreamId(id));
                }
            }
            _ => {
                if input.byte() == 0 {
                    self.session.shut_down();
                }
            }
        }
    }

    /// A request body from three bytes: rid, flags, payload.
    fn request_body(&self, input: &mut Input) -> (Option<u64>, String) {
        let (rid_byte, flags, payload) = (input.byte(), input.byte(), input.byte());
        let next = self.next_rid;
        let rid = match rid_byte % 8 {
            step @ 0..=3 => next + u64::from(step),
            4 => next.saturating_sub(1),
            5 => next.saturating_sub(2 + u64::from(rid_byte >> 3)),
            6 => next + 100,
            _ => MAX_RID,
        };
        let rid = (flags & 128 == 0).then_some(rid);
        let mut attrs = String::new();
        if let Some(rid) = rid {
            attrs.push_str(&format!(" rid='{rid}'"));
        }
        if flags & 1 != 0 {
            attrs.push_str(" type='terminate'");
        }
        if flags & 2 != 0 {
            attrs.push_str(" xmlns:xmpp='urn:xmpp:xbosh' xmpp:restart='true' to='localhost'");
        }
        if flags & 4 != 0 {
            attrs.push_str(&format!(" pause='{}'", payload % 30));
        }
        if flags & 8 != 0 {
            let ack = next.saturating_sub(u64::from(payload % 4));
            attrs.push_str(&format!(" ack='{ack}'"));
        }
        if flags & 16 != 0 {
            let name = pick(&self.names, payload).map_or("gone", String::as_str);
            attrs.push_str(&format!(" stream='{name}'"));
        }
        if flags & 32 != 0 {
            attrs.push_str(" to='localhost'");
        }
        if flags & 64 != 0 {
            attrs.push_str(" stream_attrs='{\"a\":\"b\",\"xmlns\":\"x\"}'");
        }
        let payload = PAYLOADS[usize::from(payload) % PAYLOADS.len()];
        let text = format!("<body xmlns='{NS_HTTPBIND}' sid='sid1'{attrs}>{payload}</body>");
        (rid, text)
    }

    fn request(&mut self, rid: Option<u64>, text: &str) {
        // The reactor refuses what does not parse before any session.
        let Ok(body) = parse_body(text.as_bytes(), xml::Limits::default()) else {
            return;
        };
        if let Some(rid) = rid {
            self.rids.insert(rid);
            while self.rids.contains(&self.next_rid) {
                self.next_rid += 1;
            }
        }
        let handle = self.next_handle;
        self.next_handle += 1;
        self.given.insert(handle);
        if self.ended {
            self.after_end.insert(handle);
        }
        self.client_bytes += body.payload.len();
        self.session
            .handle_request(self.now, handle, &body, text.as_bytes());
    }

    fn backend_input(&mut self, id: StreamId, bytes: &[u8]) {
        if self.session.wants_backend_input(id) {
            self.session.handle_backend_input(self.now, id, bytes);
        }
    }

    fn timeout(&mut self) {
        self.session.handle_timeout(self.now);
        if let Some(at) = self.session.poll_timeout() {
            assert!(at > self.now, "deadline {at:?} not after {:?}", self.now);
        }
    }

    /// Handles given, not answered and not gone.
    fn outstanding(&self) -> Vec<RequestHandle> {
        self.given
            .iter()
            .copied()
            .filter(|h| !self.answered.contains(h) && !self.gone.contains(h))
            .collect()
    }

    /// One of the streams the session asked for.
    fn stream(&self, byte: u8) -> StreamId {
        let ids: Vec<usize> = self.streams.keys().copied().collect();
        StreamId(pick(&ids, byte).copied().unwrap_or(0))
    }

    /// Takes the session's outputs and checks them.
    fn drain(&mut self) {
        while let Some((handle, response)) = self.session.poll_response() {
            assert!(self.given.contains(&handle), "response to unknown {handle}");
            assert!(!self.gone.contains(&handle), "response to gone {handle}");
            assert!(self.answered.insert(handle), "second response to {handle}");
            assert!(
                response.body.len() <= MAX_PENDING + RESPONSE_SLACK,
                "response of {} bytes",
                response.body.len()
            );
            assert!(matches!(response.status, 200 | 400 | 403 | 404));
            if self.ended {
                assert!(self.after_end.contains(&handle), "late answer to {handle}");
                let body = String::from_utf8_lossy(&response.body);
                assert!(body.contains("type='terminate'"), "{body}");
            }
            self.learn_name(&response.body);
        }
        let was_ended = self.ended;
        while let Some(command) = self.session.poll_command() {
            assert!(!was_ended, "{command:?} after the end");
            match command {
                Command::Connect { stream, .. } => {
                    self.streams.insert(stream.0, false);
                }
                Command::CloseBackend { stream } => {
                    self.releasable.insert(stream.0);
                }
                Command::End(_) => {
                    assert!(!self.ended, "a second End");
                    self.ended = true;
                }
            }
        }
        assert_eq!(self.session.is_ended(), self.ended, "is_ended vs End");
        if self.ended {
            assert_eq!(
                self.session.poll_timeout(),
                None,
                "a deadline after the end"
            );
        } else if self.outstanding().is_empty() {
            // XEP-0124 §7.1: with no request to answer, inactivity ends it.
            assert!(
                self.session.poll_timeout().is_some(),
                "idle without a deadline"
            );
        }
        let bound = self.client_bytes + BACKEND_SLACK_PER_STEP * (self.steps + 1);
        for &id in self.streams.keys() {
            let out = self.session.backend_output(StreamId(id)).len();
            assert!(out <= bound, "backend output of {out} bytes");
            let before = self.outputs.insert(id, out).unwrap_or(0);
            assert!(
                !was_ended || out <= before,
                "backend output grew after the end"
            );
        }
    }

    fn learn_name(&mut self, body: &[u8]) {
        let text = String::from_utf8_lossy(body);
        let Some(start) = text.find(" stream='").map(|at| at + 9) else {
            return;
        };
        if let Some(len) = text[start..].find('\'') {
            let name = text[start..start + len].to_owned();
            if !self.names.contains(&name) {
                self.names.push(name);
            }
        }
    }
}
