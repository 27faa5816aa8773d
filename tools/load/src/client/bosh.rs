//! XMPP over BOSH, client role (XEP-0124, XEP-0206), the way browsers run
//! it: two keep-alive HTTP/1.1 connections, `hold='1'`, and one request
//! always held by the server so that it can push stanzas. A stanza to send
//! goes out on the free connection (the server then answers the held
//! request), or waits in `pending` while both requests are out.
//!
//! A request is kept whole until its response is complete. When its
//! connection breaks (the server closed or reset it, or `--cut-connections`
//! cut it on purpose) it goes out again with the same rid on a new
//! connection (§14.3), and the server answers it with the response it
//! kept, or holds it again. Responses are handled in rid order whichever
//! connection brings them, and no rid goes out `requests` or more beyond
//! the oldest unhandled one (§14.2). With acks (§9) every request says how
//! far the responses arrived, and a response that reports a missing one
//! sends its request again.

use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, Instant};

use switchboard_core::xml::{FrameKind, Framer, Limits, Mode};

use super::conn::{Conn, Net, ReadState};
use super::{token, Flow, Handler, Outbox, Rng};
use crate::net::Endpoint;
use crate::xmpp::{attr, start_tag_end, ErrorKind};

/// XEP-0124 §7 body namespace.
pub const NS_HTTPBIND: &str = "http://jabber.org/protocol/httpbind";
/// XEP-0206 §8 namespace of the `xmpp:` attributes.
pub const NS_XBOSH: &str = "urn:xmpp:xbosh";

/// `requests` for `hold='1'` (XEP-0124 §7.1: hold + 1): how far beyond
/// the oldest unhandled response a new rid may go.
const REQUESTS: u64 = 2;
/// A connection that breaks under the same request this many times in a
/// row (without a planned cut) ends the session: the server is gone.
const MAX_BREAKS: u8 = 3;
/// A request cut this many times in a row goes out whole the next time,
/// so that even `--cut-connections 1` makes progress.
const MAX_CUTS_IN_A_ROW: u8 = 4;
/// A held request is cut this long after it was written (unless its
/// answer comes first), log-uniformly between the two: under echo load a
/// request is held for about one round trip (a millisecond), with light
/// traffic for seconds, so every scale gets its share of cuts, some
/// before the server read the request and some while it holds it.
const HELD_CUT_RANGE: (Duration, Duration) =
    (Duration::from_micros(100), Duration::from_millis(500));

/// Where `--cut-connections` cuts a connection carrying a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CutAt {
    BeforeRequest,
    /// Once this many bytes of the request are written.
    MidRequest(usize),
    /// This long after the request is written, unless the response is
    /// in by then.
    Held(Duration),
    /// When the first bytes of the response are read: the server has
    /// answered and kept the response, the client does not have it.
    MidResponse,
}

/// The connection cuts of one session: a share of requests, at random
/// points (seeded, so that a run can be repeated).
#[derive(Clone, Debug)]
pub struct Cutter {
    share: f64,
    rng: Rng,
}

impl Cutter {
    /// Cut `share` (0 to 1) of the requests; `seed` picks which and where.
    pub fn new(share: f64, seed: u64) -> Self {
        Cutter {
            share,
            rng: Rng::new(seed),
        }
    }

    /// Whether and where to cut a request of `len` bytes.
    fn plan(&mut self, len: usize) -> Option<CutAt> {
        let rng = &mut self.rng;
        if rng.unit() >= self.share {
            return None;
        }
        Some(match rng.next_u64() % 4 {
            0 => CutAt::BeforeRequest,
            1 if len > 1 => CutAt::MidRequest(1 + (rng.next_u64() % (len as u64 - 1)) as usize),
            1 => CutAt::BeforeRequest,
            2 => {
                let (low, high) = HELD_CUT_RANGE;
                let ratio = high.as_secs_f64() / low.as_secs_f64();
                CutAt::Held(low.mul_f64(ratio.powf(rng.unit())))
            }
            _ => CutAt::MidResponse,
        })
    }
}

/// A request on a connection, kept whole until its response is complete.
struct Out {
    rid: u64,
    http: Vec<u8>,
    cut: Option<CutAt>,
    /// The instant a `Held` cut falls due, once the request is written.
    cut_due: Option<Instant>,
    cuts_in_a_row: u8,
    breaks: u8,
}

pub struct Bosh {
    endpoint: Rc<Endpoint>,
    domain: Rc<str>,
    wait: u32,
    /// Acknowledge responses (XEP-0124 §9).
    acks: bool,
    conns: [Conn; 2],
    out: [Option<Out>; 2],
    sid: Option<Box<str>>,
    /// The session creation request's rid: never cut, since a session
    /// cannot be asked for again with the same rid.
    first_rid: u64,
    next_rid: u64,
    /// Every response up to this rid is handled: the `ack` (§9.1).
    handled: u64,
    /// Responses that came before an earlier one: (rid, body).
    early: Vec<(u64, Vec<u8>)>,
    /// Stanzas for the next request.
    pending: Vec<u8>,
    restart: bool,
    /// The next request ends the session (XEP-0124 §13).
    terminate: bool,
    framer: Framer,
    cutter: Option<Cutter>,
}

impl Bosh {
    pub fn new(
        endpoint: Rc<Endpoint>,
        domain: Rc<str>,
        wait: u32,
        seed: u64,
        acks: bool,
        cutter: Option<Cutter>,
    ) -> Self {
        // Any start below 2^53 (XEP-0124 §14.1) with room to count up.
        let rid = 1_000_000 + seed.wrapping_mul(7919) % 1_000_000_000;
        Bosh {
            endpoint,
            domain,
            wait,
            acks,
            conns: [Conn::default(), Conn::default()],
            out: [None, None],
            sid: None,
            first_rid: rid,
            next_rid: rid,
            handled: rid - 1,
            early: Vec::new(),
            pending: Vec::new(),
            restart: false,
            terminate: false,
            framer: Framer::new(Mode::Fragments, Limits::default()),
            cutter,
        }
    }

    /// Connect the first connection and ask for a session (XEP-0206 §4).
    pub fn start(&mut self, net: &mut Net, session: usize) -> Result<(), ErrorKind> {
        net.scratch.clear();
        let _ = write!(
            net.scratch,
            "<body content='text/xml; charset=utf-8' hold='1' rid='{}' to='{}' ver='1.6' \
             wait='{}' xml:lang='en' xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}' \
             xmpp:version='1.0'{}/>",
            self.next_rid,
            self.domain,
            self.wait,
            if self.acks { " ack='1'" } else { "" }
        );
        self.request(net, session, 0)?;
        // The second connection is opened now, as browsers have theirs
        // warm: otherwise the first message of every session pays a TCP
        // connect, and the message phase starts with a connect storm.
        self.conns[1].open(net, self.endpoint.addr, token(session, 1))
    }

    /// POST `net.scratch` as the next request on connection `slot`.
    fn request(&mut self, net: &mut Net, session: usize, slot: usize) -> Result<(), ErrorKind> {
        let mut http = Vec::with_capacity(160 + net.scratch.len());
        let _ = write!(
            http,
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/xml; charset=utf-8\r\n\
             Content-Length: {}\r\n\r\n",
            self.endpoint.path,
            self.endpoint.host,
            net.scratch.len()
        );
        http.extend_from_slice(&net.scratch);
        let out = Out {
            rid: self.next_rid,
            http,
            cut: None,
            cut_due: None,
            cuts_in_a_row: 0,
            breaks: 0,
        };
        self.next_rid += 1;
        self.put(net, session, slot, out)
    }

    /// Queue `out` on connection `slot`, opening it if needed, and carry
    /// out or arm the cut planned for it.
    fn put(
        &mut self,
        net: &mut Net,
        session: usize,
        slot: usize,
        mut out: Out,
    ) -> Result<(), ErrorKind> {
        loop {
            let conn = &mut self.conns[slot];
            if !conn.is_open() {
                conn.open(net, self.endpoint.addr, token(session, slot))?;
            }
            let cut = match self.cutter.as_mut() {
                Some(cutter)
                    if out.rid != self.first_rid && out.cuts_in_a_row < MAX_CUTS_IN_A_ROW =>
                {
                    cutter.plan(out.http.len())
                }
                _ => None,
            };
            if cut.is_some() {
                out.cuts_in_a_row += 1;
            }
            if cut == Some(CutAt::BeforeRequest) {
                conn.close();
                net.faults.cut_before_request += 1;
                net.faults.resent += 1;
                continue;
            }
            let len = match cut {
                Some(CutAt::MidRequest(len)) => len,
                _ => out.http.len(),
            };
            conn.output.extend_from_slice(&out.http[..len]);
            out.cut = cut;
            out.cut_due = None;
            self.out[slot] = Some(out);
            return Ok(());
        }
    }

    /// Send the request of `slot` again, with its rid, on a new connection.
    fn again(&mut self, net: &mut Net, session: usize, slot: usize) -> Result<(), ErrorKind> {
        self.conns[slot].close();
        let Some(out) = self.out[slot].take() else {
            return Ok(());
        };
        net.faults.resent += 1;
        self.put(net, session, slot, out)
    }

    /// Cut connection `slot` on purpose and send its request again.
    fn cut(&mut self, net: &mut Net, session: usize, slot: usize) -> Result<(), ErrorKind> {
        let Some(out) = self.out[slot].as_ref() else {
            return Ok(());
        };
        let faults = &mut net.faults;
        if matches!(out.cut, Some(CutAt::MidRequest(_))) {
            faults.cut_mid_request += 1;
        } else if self.conns[slot].input.is_empty() {
            faults.cut_held += 1;
        } else {
            // A held cut whose response began to arrive counts here too.
            faults.cut_mid_response += 1;
        }
        self.again(net, session, slot)
    }

    /// Connection `slot` broke without a planned cut (closed or reset by
    /// the server): its request goes out again, up to `MAX_BREAKS` times
    /// in a row; an idle one is let go.
    fn broke(
        &mut self,
        net: &mut Net,
        session: usize,
        slot: usize,
        why: ErrorKind,
    ) -> Result<(), ErrorKind> {
        let Some(out) = self.out[slot].as_mut() else {
            // An idle keep-alive connection the server let go: reopened
            // when next needed.
            self.conns[slot].close();
            return Ok(());
        };
        if out.breaks >= MAX_BREAKS {
            return Err(why);
        }
        out.breaks += 1;
        net.faults.server_closed += 1;
        self.again(net, session, slot)
    }

    /// Send what waits, and keep one request out (XEP-0124 §10: the server
    /// needs a held request to push stanzas).
    fn pump(&mut self, net: &mut Net, session: usize) -> Result<(), ErrorKind> {
        let Some(sid) = self.sid.clone() else {
            return Ok(());
        };
        while let Some(free) = self.out.iter().position(Option::is_none) {
            if self.next_rid >= self.handled + 1 + REQUESTS {
                // §14.2: the server may not take a rid that far ahead of
                // the one whose response is still missing.
                return Ok(());
            }
            let outstanding = self.out.iter().filter(|o| o.is_some()).count();
            net.scratch.clear();
            let _ = write!(net.scratch, "<body rid='{}' sid='{sid}'", self.next_rid);
            if self.acks {
                let _ = write!(net.scratch, " ack='{}'", self.handled);
            }
            if self.restart {
                // XEP-0206 §5: the restart request carries nothing else.
                let _ = write!(
                    net.scratch,
                    " to='{}' xml:lang='en' xmpp:restart='true' xmlns='{NS_HTTPBIND}' \
                     xmlns:xmpp='{NS_XBOSH}'/>",
                    self.domain
                );
                self.restart = false;
            } else if self.terminate {
                // With what waits, then unavailable presence (§13).
                let _ = write!(net.scratch, " type='terminate' xmlns='{NS_HTTPBIND}'>");
                net.scratch.extend_from_slice(&self.pending);
                net.scratch
                    .extend_from_slice(b"<presence type='unavailable' xmlns='jabber:client'/>");
                net.scratch.extend_from_slice(b"</body>");
                self.pending.clear();
                self.terminate = false;
            } else if !self.pending.is_empty() {
                let _ = write!(net.scratch, " xmlns='{NS_HTTPBIND}'>");
                net.scratch.extend_from_slice(&self.pending);
                net.scratch.extend_from_slice(b"</body>");
                self.pending.clear();
            } else if outstanding == 0 {
                let _ = write!(net.scratch, " xmlns='{NS_HTTPBIND}'/>");
            } else {
                return Ok(());
            }
            self.request(net, session, free)?;
        }
        Ok(())
    }

    pub fn on_ready(
        &mut self,
        net: &mut Net,
        session: usize,
        slot: usize,
        outbox: &mut Outbox,
        handle: &mut Handler,
    ) -> Result<(), ErrorKind> {
        let result = self.read(net, session, slot, outbox, handle);
        outbox.drain(|el| self.pending.extend_from_slice(el));
        result?;
        self.flush(net, session)
    }

    /// Read connection `slot` and handle its response, if complete.
    fn read(
        &mut self,
        net: &mut Net,
        session: usize,
        slot: usize,
        outbox: &mut Outbox,
        handle: &mut Handler,
    ) -> Result<(), ErrorKind> {
        let state = match self.conns[slot].read(net) {
            Ok(state) => state,
            Err(why) => return self.broke(net, session, slot, why),
        };
        let input = &self.conns[slot].input;
        let cut_now = !input.is_empty()
            && self.out[slot]
                .as_ref()
                .is_some_and(|o| o.cut == Some(CutAt::MidResponse));
        if cut_now {
            return self.cut(net, session, slot);
        }
        match response(input)? {
            Some((used, body)) => {
                let Some(out) = self.out[slot].take() else {
                    return Err("http_unexpected_response".into());
                };
                let body = body.to_vec();
                self.conns[slot].input.drain(..used);
                if state != ReadState::Open {
                    self.conns[slot].close();
                }
                let reported = self.arrived(out.rid, body, outbox, handle)?;
                match reported {
                    Some(rid) => self.report(net, session, rid),
                    None => Ok(()),
                }
            }
            None => match state {
                ReadState::Open => Ok(()),
                ReadState::Eof => self.broke(net, session, slot, "http_closed".into()),
                ReadState::Failed(why) => self.broke(net, session, slot, why.into()),
            },
        }
    }

    /// The response to `rid` is in: handle it now if every earlier one is,
    /// else keep it until they are. Returns the rid of a response the
    /// server reported missing (§9.2).
    fn arrived(
        &mut self,
        rid: u64,
        body: Vec<u8>,
        outbox: &mut Outbox,
        handle: &mut Handler,
    ) -> Result<Option<u64>, ErrorKind> {
        let reported = attr(&body, b"report")
            .and_then(|r| std::str::from_utf8(r).ok())
            .and_then(|r| r.parse::<u64>().ok());
        if rid != self.handled + 1 {
            self.early.push((rid, body));
            return Ok(reported);
        }
        self.body(&body, outbox, handle)?;
        self.handled = rid;
        while let Some(at) = self.early.iter().position(|(r, _)| *r == self.handled + 1) {
            let (rid, body) = self.early.swap_remove(at);
            self.body(&body, outbox, handle)?;
            self.handled = rid;
        }
        Ok(reported)
    }

    /// The server says the response to `rid` has not been acknowledged
    /// for a while: if it is still missing, send its request again.
    fn report(&mut self, net: &mut Net, session: usize, rid: u64) -> Result<(), ErrorKind> {
        net.faults.reports += 1;
        match self
            .out
            .iter()
            .position(|o| o.as_ref().is_some_and(|o| o.rid == rid))
        {
            Some(slot) => self.again(net, session, slot),
            None => Ok(()),
        }
    }

    /// One `<body/>`: session attributes, termination, then its children.
    fn body(
        &mut self,
        body: &[u8],
        outbox: &mut Outbox,
        handle: &mut Handler,
    ) -> Result<(), ErrorKind> {
        let Some(tag_end) = start_tag_end(body) else {
            return Err("bosh_malformed_body".into());
        };
        if attr(body, b"type") == Some(b"terminate") {
            let condition = attr(body, b"condition").unwrap_or(b"none");
            return Err(format!("bosh_terminate:{}", String::from_utf8_lossy(condition)).into());
        }
        if self.sid.is_none() {
            let sid = attr(body, b"sid")
                .and_then(|s| std::str::from_utf8(s).ok())
                .ok_or(ErrorKind::Borrowed("bosh_no_sid"))?;
            self.sid = Some(sid.into());
        }
        if body[tag_end - 1] == b'/' {
            return Ok(());
        }
        let close = body
            .iter()
            .rposition(|&b| b == b'<')
            .filter(|&c| c > tag_end)
            .ok_or(ErrorKind::Borrowed("bosh_malformed_body"))?;
        let mut inner = &body[tag_end + 1..close];
        self.framer.reset();
        while !inner.is_empty() {
            let frame = match self.framer.next(inner) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Err("bosh_partial_element".into()),
                Err(e) => return Err(format!("xml:{}", e.condition()).into()),
            };
            let (unit, rest) = inner.split_at(frame.len);
            inner = rest;
            if let FrameKind::Element(info) = frame.kind {
                match handle(unit, &info, outbox) {
                    Flow::Continue => {}
                    Flow::Restart => self.restart = true,
                    Flow::Fail(kind) => return Err(kind),
                }
            }
        }
        Ok(())
    }

    pub fn send(&mut self, element: &[u8]) {
        self.pending.extend_from_slice(element);
    }

    /// End the session with the next request; the server answers it with
    /// a terminate body.
    pub fn logout(&mut self) {
        self.terminate = true;
    }

    pub fn flush(&mut self, net: &mut Net, session: usize) -> Result<(), ErrorKind> {
        self.pump(net, session)?;
        for slot in 0..2 {
            // Ends: each pass either stops, or sends a request again after
            // a cut (at most MAX_CUTS_IN_A_ROW in a row) or a break (at
            // most MAX_BREAKS).
            loop {
                if let Err(why) = self.conns[slot].flush() {
                    self.broke(net, session, slot, why)?;
                    continue;
                }
                if !self.written(net, session, slot)? {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Once a request is written: cut a mid-request connection (true: the
    /// request went out again), or arm a held cut.
    fn written(&mut self, net: &mut Net, session: usize, slot: usize) -> Result<bool, ErrorKind> {
        if !self.conns[slot].all_written() {
            return Ok(false);
        }
        let Some(out) = self.out[slot].as_mut() else {
            return Ok(false);
        };
        match out.cut {
            Some(CutAt::MidRequest(_)) => {
                self.cut(net, session, slot)?;
                Ok(true)
            }
            Some(CutAt::Held(after)) if out.cut_due.is_none() => {
                out.cut_due = Some(Instant::now() + after);
                net.wake_after(session, after);
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    /// A wake-up asked for by a held cut: cut the connections whose
    /// response has not come by now.
    pub fn on_wake(&mut self, net: &mut Net, session: usize) -> Result<(), ErrorKind> {
        let now = Instant::now();
        for slot in 0..2 {
            let due = self.out[slot]
                .as_ref()
                .and_then(|o| o.cut_due)
                .is_some_and(|at| now >= at);
            if due {
                self.cut(net, session, slot)?;
            }
        }
        self.flush(net, session)
    }

    pub fn close(&mut self) {
        for conn in &mut self.conns {
            conn.close();
        }
    }
}

/// The complete HTTP response at the start of `input`: the bytes it takes
/// and its body; `None` while incomplete. Anything but 200 is an error.
fn response(input: &[u8]) -> Result<Option<(usize, &[u8])>, ErrorKind> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(input) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("http_malformed".into()),
    };
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .ok_or(ErrorKind::Borrowed("http_no_content_length"))?;
    if input.len() - head < length {
        return Ok(None);
    }
    let code = response.code.unwrap_or(0);
    if code != 200 {
        return Err(format!("http_status:{code}").into());
    }
    Ok(Some((head + length, &input[head..head + length])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::conn::Loopback;
    use mio::Poll;
    use switchboard_core::xml::ElementInfo;

    /// A session's transport whose connections go to a listener nobody
    /// answers: the tests play the server by hand.
    struct Rig {
        bosh: Bosh,
        net: Net,
        _poll: Poll,
        _listener: std::net::TcpListener,
    }

    impl Rig {
        fn new(acks: bool) -> Rig {
            let Loopback {
                endpoint,
                net,
                poll,
                listener,
            } = Loopback::new("/http-bind");
            Rig {
                bosh: Bosh::new(endpoint, "localhost".into(), 60, 1, acks, None),
                net,
                _poll: poll,
                _listener: listener,
            }
        }

        /// The `<body/>` of the request out on `slot`.
        fn request(&self, slot: usize) -> String {
            let out = self.bosh.out[slot].as_ref().expect("a request out");
            let text = String::from_utf8(out.http.clone()).unwrap();
            text.split_once("\r\n\r\n").unwrap().1.to_string()
        }

        /// The server answers the request on `slot` with `body`; the ids
        /// of the elements handled, in order.
        fn answer(&mut self, slot: usize, body: &str) -> Vec<String> {
            let out = self.bosh.out[slot].take().expect("a request out");
            let mut seen = Vec::new();
            let mut handle = |el: &[u8], _: &ElementInfo, _: &mut Outbox| {
                seen.push(String::from_utf8_lossy(attr(el, b"id").unwrap_or_default()).into());
                Flow::Continue
            };
            let mut outbox = Outbox::default();
            self.bosh
                .arrived(out.rid, body.as_bytes().to_vec(), &mut outbox, &mut handle)
                .unwrap();
            seen
        }

        fn send(&mut self, element: &str) {
            self.bosh.send(element.as_bytes());
            self.bosh.pump(&mut self.net, 0).unwrap();
        }
    }

    const SESSION: &str = "<body xmlns='http://jabber.org/protocol/httpbind' sid='s1'/>";

    fn with(ids: &[&str]) -> String {
        let stanzas: String = ids
            .iter()
            .map(|id| format!("<message id='{id}'/>"))
            .collect();
        format!("<body xmlns='http://jabber.org/protocol/httpbind'>{stanzas}</body>")
    }

    #[test]
    fn with_acks_every_request_acknowledges_the_responses_handled() {
        let mut rig = Rig::new(true);
        rig.bosh.start(&mut rig.net, 0).unwrap();
        let first = rig.bosh.first_rid;
        assert!(rig.request(0).contains(" ack='1'"), "{}", rig.request(0));
        rig.answer(0, SESSION);
        rig.send("<message id='a'/>");
        let body = rig.request(0);
        assert!(
            body.contains(&format!("rid='{}' sid='s1' ack='{first}'", first + 1)),
            "{body}"
        );

        let mut plain = Rig::new(false);
        plain.bosh.start(&mut plain.net, 0).unwrap();
        assert!(!plain.request(0).contains("ack="));
        plain.answer(0, SESSION);
        plain.send("<message id='a'/>");
        assert!(!plain.request(0).contains("ack="), "{}", plain.request(0));
    }

    #[test]
    fn responses_are_handled_in_rid_order_and_no_rid_runs_ahead_of_a_missing_one() {
        let mut rig = Rig::new(true);
        rig.bosh.start(&mut rig.net, 0).unwrap();
        let first = rig.bosh.first_rid;
        rig.answer(0, SESSION);
        rig.send("<message id='a'/>");
        rig.send("<message id='b'/>");
        assert!(rig.request(1).contains(&format!("rid='{}'", first + 2)));
        // The later response comes first: kept, not handled.
        assert_eq!(rig.answer(1, &with(&["m2"])), Vec::<String>::new());
        // Its connection is free, but the next rid would be `requests`
        // beyond the missing response: it waits.
        rig.send("<message id='c'/>");
        assert!(rig.bosh.out[1].is_none(), "a request ran ahead");
        // The missing one comes: both handled, in rid order.
        assert_eq!(rig.answer(0, &with(&["m1"])), ["m1", "m2"]);
        assert_eq!(rig.bosh.handled, first + 2);
        rig.bosh.pump(&mut rig.net, 0).unwrap();
        let body = rig.request(0);
        assert!(
            body.contains(&format!("rid='{}' sid='s1' ack='{}'", first + 3, first + 2)),
            "{body}"
        );
        assert!(body.contains("<message id='c'/>"), "{body}");
    }

    #[test]
    fn a_cut_request_goes_out_again_whole_with_its_rid_until_one_attempt_is_spared() {
        let mut rig = Rig::new(true);
        rig.bosh.cutter = Some(Cutter::new(1.0, 5));
        rig.bosh.start(&mut rig.net, 0).unwrap();
        assert_eq!(rig.bosh.out[0].as_ref().unwrap().cut, None, "creation");
        rig.answer(0, SESSION);
        rig.send("<message id='a'/>");
        let out = rig.bosh.out[0].as_ref().unwrap();
        let (rid, http) = (out.rid, out.http.clone());
        let mut attempts = 1;
        // Every attempt is cut (those before the request at once), until
        // one goes out whole: the cut is carried out here by hand.
        while let Some(cut) = rig.bosh.out[0].as_ref().unwrap().cut {
            assert_ne!(cut, CutAt::BeforeRequest);
            rig.bosh.conns[0].input.extend_from_slice(b"HTTP/1.1 200");
            rig.bosh.cut(&mut rig.net, 0, 0).unwrap();
            assert!(
                rig.bosh.conns[0].input.is_empty(),
                "the partial response is gone"
            );
            let again = rig.bosh.out[0].as_ref().unwrap();
            assert_eq!((again.rid, &again.http), (rid, &http));
            attempts += 1;
            assert!(attempts <= MAX_CUTS_IN_A_ROW + 1);
        }
        let faults = rig.net.faults;
        assert_eq!(faults.cuts(), u64::from(MAX_CUTS_IN_A_ROW), "{faults:?}");
        assert_eq!(faults.resent, faults.cuts());
        assert!(faults.cut_mid_response > 0, "{faults:?}");
    }

    #[test]
    fn a_reported_response_has_its_request_sent_again_on_a_new_connection() {
        let mut rig = Rig::new(true);
        rig.bosh.start(&mut rig.net, 0).unwrap();
        rig.answer(0, SESSION);
        rig.send("<message id='a'/>");
        rig.send("<message id='b'/>");
        let missing = rig.bosh.out[0].as_ref().unwrap().rid;
        let http = rig.bosh.out[0].as_ref().unwrap().http.clone();
        let opened = rig.net.opened;
        // XEP-0124 §9.2: the response to the other request says the first
        // one's has not been acknowledged for a while.
        let out = rig.bosh.out[1].take().unwrap();
        let body = format!(
            "<body xmlns='http://jabber.org/protocol/httpbind' report='{missing}' time='2500'/>"
        );
        let mut outbox = Outbox::default();
        let mut handle = |_: &[u8], _: &ElementInfo, _: &mut Outbox| Flow::Continue;
        let reported = rig
            .bosh
            .arrived(out.rid, body.into_bytes(), &mut outbox, &mut handle)
            .unwrap();
        assert_eq!(reported, Some(missing));
        rig.bosh.report(&mut rig.net, 0, missing).unwrap();
        let again = rig.bosh.out[0].as_ref().unwrap();
        assert_eq!((again.rid, &again.http), (missing, &http));
        assert_eq!(rig.net.opened, opened + 1, "on a new connection");
        assert_eq!((rig.net.faults.reports, rig.net.faults.resent), (1, 1));
    }

    #[test]
    fn cuts_take_the_share_asked_at_every_point_and_repeat_with_their_seed() {
        let mut cutter = Cutter::new(0.1, 42);
        let plans: Vec<_> = (0..100_000).map(|_| cutter.plan(300)).collect();
        let cuts = plans.iter().flatten().count();
        assert!((9_000..11_000).contains(&cuts), "{cuts} of 100000");
        let count = |f: fn(&CutAt) -> bool| plans.iter().flatten().filter(|c| f(c)).count();
        for n in [
            count(|c| *c == CutAt::BeforeRequest),
            count(|c| matches!(c, CutAt::MidRequest(1..300))),
            count(|c| matches!(c, CutAt::Held(_))),
            count(|c| *c == CutAt::MidResponse),
        ] {
            assert!(
                n * 4 > cuts * 9 / 10 && n * 4 < cuts * 11 / 10,
                "{n} of {cuts}"
            );
        }
        let (low, high) = HELD_CUT_RANGE;
        assert!(plans
            .iter()
            .flatten()
            .all(|c| !matches!(c, CutAt::Held(d) if *d < low || *d > high)));
        let mut again = Cutter::new(0.1, 42);
        assert!(plans.iter().all(|p| *p == again.plan(300)));
        assert_eq!(Cutter::new(0.0, 1).plan(300), None);
    }
}
