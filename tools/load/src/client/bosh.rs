//! XMPP over BOSH, client role (XEP-0124, XEP-0206), the way browsers run
//! it: two keep-alive HTTP/1.1 connections, `hold='1'`, and one request
//! always held by the server so that it can push stanzas. A stanza to send
//! goes out on the free connection (the server then answers the held
//! request), or waits in `pending` while both requests are out.

use std::io::Write;
use std::rc::Rc;

use switchboard_core::xml::{FrameKind, Framer, Limits, Mode};

use super::conn::{Conn, Net, ReadState};
use super::{token, Flow, Handler, Outbox};
use crate::net::Endpoint;
use crate::xmpp::{attr, start_tag_end, ErrorKind};

/// XEP-0124 §7 body namespace.
pub const NS_HTTPBIND: &str = "http://jabber.org/protocol/httpbind";
/// XEP-0206 §8 namespace of the `xmpp:` attributes.
pub const NS_XBOSH: &str = "urn:xmpp:xbosh";

pub struct Bosh {
    endpoint: Rc<Endpoint>,
    domain: Rc<str>,
    wait: u32,
    conns: [Conn; 2],
    /// A request is out on this connection.
    busy: [bool; 2],
    /// The request out on each connection, whole, kept until its answer
    /// begins: a keep-alive connection the server closes just as the
    /// request leaves gets it again on a new connection, once (browsers
    /// retry the same way; the same `rid` makes it safe, XEP-0124 §14).
    out: [Vec<u8>; 2],
    retried: [bool; 2],
    sid: Option<Box<str>>,
    rid: u64,
    /// Stanzas for the next request.
    pending: Vec<u8>,
    restart: bool,
    framer: Framer,
}

impl Bosh {
    pub fn new(endpoint: Rc<Endpoint>, domain: Rc<str>, wait: u32, seed: u64) -> Self {
        Bosh {
            endpoint,
            domain,
            wait,
            conns: [Conn::default(), Conn::default()],
            busy: [false; 2],
            out: [Vec::new(), Vec::new()],
            retried: [false; 2],
            sid: None,
            // Any start below 2^53 (XEP-0124 §14.1) with room to count up.
            rid: 1_000_000 + seed.wrapping_mul(7919) % 1_000_000_000,
            pending: Vec::new(),
            restart: false,
            framer: Framer::new(Mode::Fragments, Limits::default()),
        }
    }

    /// Connect the first connection and ask for a session (XEP-0206 §4).
    pub fn start(&mut self, net: &mut Net, session: usize) -> Result<(), ErrorKind> {
        net.scratch.clear();
        let _ = write!(
            net.scratch,
            "<body content='text/xml; charset=utf-8' hold='1' rid='{}' to='{}' ver='1.6' \
             wait='{}' xml:lang='en' xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}' \
             xmpp:version='1.0'/>",
            self.rid, self.domain, self.wait
        );
        self.request(net, session, 0)?;
        // The second connection is opened now, as browsers have theirs
        // warm: otherwise the first message of every session pays a TCP
        // connect, and the message phase starts with a connect storm.
        self.conns[1].open(net, self.endpoint.addr, token(session, 1))
    }

    /// POST `net.scratch` as the next request on connection `slot`.
    fn request(&mut self, net: &mut Net, session: usize, slot: usize) -> Result<(), ErrorKind> {
        let conn = &mut self.conns[slot];
        if !conn.is_open() {
            conn.open(net, self.endpoint.addr, token(session, slot))?;
        }
        let out = &mut self.out[slot];
        out.clear();
        let _ = write!(
            out,
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/xml; charset=utf-8\r\n\
             Content-Length: {}\r\n\r\n",
            self.endpoint.path,
            self.endpoint.host,
            net.scratch.len()
        );
        out.extend_from_slice(&net.scratch);
        conn.output.extend_from_slice(out);
        self.busy[slot] = true;
        self.retried[slot] = false;
        self.rid += 1;
        Ok(())
    }

    /// The server closed connection `slot` with a request out on it and no
    /// answer begun: send that request again on a new connection, once.
    fn retry(&mut self, net: &mut Net, session: usize, slot: usize) -> Result<(), ErrorKind> {
        let conn = &mut self.conns[slot];
        if self.retried[slot] || !conn.input.is_empty() {
            return Err("http_closed".into());
        }
        conn.close();
        conn.open(net, self.endpoint.addr, token(session, slot))?;
        conn.output.extend_from_slice(&self.out[slot]);
        self.retried[slot] = true;
        Ok(())
    }

    /// Send what waits, and keep one request out (XEP-0124 §10: the server
    /// needs a held request to push stanzas).
    fn pump(&mut self, net: &mut Net, session: usize) -> Result<(), ErrorKind> {
        let Some(sid) = self.sid.clone() else {
            return Ok(());
        };
        loop {
            let Some(free) = self.busy.iter().position(|b| !b) else {
                return Ok(());
            };
            let outstanding = self.busy.iter().filter(|b| **b).count();
            net.scratch.clear();
            if self.restart {
                // XEP-0206 §5: the restart request carries nothing else.
                let _ = write!(
                    net.scratch,
                    "<body rid='{}' sid='{sid}' to='{}' xml:lang='en' xmpp:restart='true' \
                     xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}'/>",
                    self.rid, self.domain
                );
                self.restart = false;
            } else if !self.pending.is_empty() {
                let _ = write!(
                    net.scratch,
                    "<body rid='{}' sid='{sid}' xmlns='{NS_HTTPBIND}'>",
                    self.rid
                );
                net.scratch.extend_from_slice(&self.pending);
                net.scratch.extend_from_slice(b"</body>");
                self.pending.clear();
            } else if outstanding == 0 {
                let _ = write!(
                    net.scratch,
                    "<body rid='{}' sid='{sid}' xmlns='{NS_HTTPBIND}'/>",
                    self.rid
                );
            } else {
                return Ok(());
            }
            self.request(net, session, free)?;
        }
    }

    pub fn on_ready(
        &mut self,
        net: &mut Net,
        session: usize,
        slot: usize,
        outbox: &mut Outbox,
        handle: &mut Handler,
    ) -> Result<(), ErrorKind> {
        let state = self.conns[slot].read(net)?;
        let mut input = std::mem::take(&mut self.conns[slot].input);
        let mut pos = 0;
        let result = loop {
            match self.response(&input[pos..], outbox, handle) {
                Ok(0) => break Ok(()),
                Ok(used) => {
                    pos += used;
                    self.busy[slot] = false;
                }
                Err(kind) => break Err(kind),
            }
        };
        input.drain(..pos);
        self.conns[slot].input = input;
        result?;
        if state == ReadState::Eof {
            if self.busy[slot] {
                self.retry(net, session, slot)?;
            } else {
                // An idle keep-alive connection the server let go: reopened
                // when next needed.
                self.conns[slot].close();
            }
        }
        outbox.drain(|el| self.pending.extend_from_slice(el));
        self.flush(net, session)
    }

    /// Handle one complete HTTP response at the start of `input`; the bytes it took, 0
    /// while incomplete.
    fn response(
        &mut self,
        input: &[u8],
        outbox: &mut Outbox,
        handle: &mut Handler,
    ) -> Result<usize, ErrorKind> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let head = match response.parse(input) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(0),
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
            return Ok(0);
        }
        let code = response.code.unwrap_or(0);
        if code != 200 {
            return Err(format!("http_status:{code}").into());
        }
        let body = &input[head..head + length];
        self.body(body, outbox, handle)?;
        Ok(head + length)
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

    pub fn flush(&mut self, net: &mut Net, session: usize) -> Result<(), ErrorKind> {
        self.pump(net, session)?;
        for conn in &mut self.conns {
            conn.flush()?;
        }
        Ok(())
    }

    pub fn close(&mut self) {
        for conn in &mut self.conns {
            conn.close();
        }
    }
}
