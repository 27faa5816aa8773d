//! `load stub`: a minimal XMPP server to measure a connection manager alone.
//!
//! Plain TCP, no STARTTLS offered: switchboard accepts a plaintext backend on
//! a loopback route. It opens streams for any `to` and answers as that
//! domain; offers SASL PLAIN (any user and password) and resource binding
//! (also before SASL, for `--auth none`) and the legacy session iq; routes
//! `<message/>`, `<presence/>` and `<iq/>` between bound JIDs, full or bare,
//! adding `from`; answers iqs addressed to itself (ping included) with an
//! empty result. One mio loop, edge-triggered, all writes batched per wake.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use switchboard_core::xml::{FrameKind, Framer, Limits, Mode};

use crate::xmpp::{attr, child_text, find, own_text, NS_BIND, NS_SASL, NS_SESSION};

/// Output held for one connection before it is cut off as too slow.
const MAX_OUTPUT: usize = 16 * 1024 * 1024;
/// Bytes read per `read` call.
const READ_CHUNK: usize = 64 * 1024;

/// The stub server: bound listeners and the connections it serves.
pub struct Stub {
    poll: Poll,
    listeners: Vec<TcpListener>,
    addrs: Vec<SocketAddr>,
    default_domain: String,
    conns: Slab<Conn>,
    /// Full JID → connection.
    full: HashMap<Vec<u8>, usize>,
    /// Bare JID → the connection bound last with it.
    bare: HashMap<Vec<u8>, usize>,
    /// Connections with output to write at the end of this wake-up.
    dirty: Vec<usize>,
    read_buf: Box<[u8]>,
    /// Stanzas to a JID nobody has bound.
    pub undeliverable: u64,
}

struct Conn {
    stream: TcpStream,
    framer: Framer,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
    dirty: bool,
    closing: bool,
    domain: String,
    user: Option<String>,
    jid: Option<Vec<u8>>,
    streams: u32,
}

impl Stub {
    /// Bind every address in `listen` (port 0 picks a free one).
    pub fn bind(listen: &[SocketAddr], domain: &str) -> io::Result<Stub> {
        let poll = Poll::new()?;
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for (i, addr) in listen.iter().enumerate() {
            let mut listener = TcpListener::bind(*addr)?;
            poll.registry()
                .register(&mut listener, Token(i), Interest::READABLE)?;
            addrs.push(listener.local_addr()?);
            listeners.push(listener);
        }
        Ok(Stub {
            poll,
            listeners,
            addrs,
            default_domain: domain.to_string(),
            conns: Slab::new(),
            full: HashMap::new(),
            bare: HashMap::new(),
            dirty: Vec::new(),
            read_buf: vec![0; READ_CHUNK].into_boxed_slice(),
            undeliverable: 0,
        })
    }

    /// The bound addresses, in the order given.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Serve until `until` or until `stop` is set.
    pub fn run(&mut self, until: Instant, stop: &AtomicBool) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            if now >= until || stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let timeout = (until - now).min(Duration::from_millis(100));
            if let Err(err) = self.poll.poll(&mut events, Some(timeout)) {
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            for event in events.iter() {
                let Token(token) = event.token();
                if token < self.listeners.len() {
                    self.accept(token);
                } else {
                    let key = token - self.listeners.len();
                    let hangup = event.is_read_closed() || event.is_error();
                    if event.is_readable() || hangup {
                        self.read(key, hangup);
                    }
                    if event.is_writable() {
                        self.mark_dirty(key);
                    }
                }
            }
            self.flush_dirty();
        }
    }

    fn accept(&mut self, index: usize) {
        loop {
            let (mut stream, _) = match self.listeners[index].accept() {
                Ok(pair) => pair,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                // Out of descriptors or a connection reset before accept:
                // leave the rest queued for the next readiness.
                Err(_) => return,
            };
            let _ = stream.set_nodelay(true);
            let entry = self.conns.vacant_entry();
            let token = Token(self.listeners.len() + entry.key());
            if self
                .poll
                .registry()
                .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                .is_err()
            {
                continue;
            }
            entry.insert(Conn {
                stream,
                framer: Framer::new(Mode::Stream, Limits::default()),
                input: Vec::new(),
                output: Vec::new(),
                written: 0,
                dirty: false,
                closing: false,
                domain: self.default_domain.clone(),
                user: None,
                jid: None,
                streams: 0,
            });
        }
    }

    fn read(&mut self, key: usize, hangup: bool) {
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            match conn.stream.read(&mut self.read_buf) {
                Ok(0) => return self.close(key),
                Ok(n) => {
                    conn.input.extend_from_slice(&self.read_buf[..n]);
                    if !self.process(key) {
                        return self.close(key);
                    }
                    // A short read emptied the socket; edge-triggered
                    // polling reports the next data anew.
                    if n < self.read_buf.len() && !hangup {
                        return;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.close(key),
            }
        }
    }

    /// Handle every complete unit in the connection's input; false when the
    /// connection must end.
    fn process(&mut self, key: usize) -> bool {
        let mut input = match self.conns.get_mut(key) {
            Some(conn) => std::mem::take(&mut conn.input),
            None => return false,
        };
        let mut pos = 0;
        let mut alive = true;
        while alive {
            let Some(conn) = self.conns.get_mut(key) else {
                return false;
            };
            if conn.closing {
                break;
            }
            let frame = match conn.framer.next(&input[pos..]) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(err) => {
                    let condition = err.condition();
                    self.send_to(key, |out| {
                        out.extend_from_slice(b"<stream:error><");
                        out.extend_from_slice(condition.as_str().as_bytes());
                        out.extend_from_slice(
                            b" xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>",
                        );
                    });
                    self.end(key);
                    break;
                }
            };
            let unit = &input[pos..pos + frame.len];
            pos += frame.len;
            alive = match frame.kind {
                FrameKind::StreamOpen(header) => {
                    self.open_stream(key, header.to.as_deref());
                    true
                }
                FrameKind::Element(info) => self.element(key, unit, info.local_name(unit)),
                FrameKind::StreamClose => {
                    self.send_to(key, |out| out.extend_from_slice(b"</stream:stream>"));
                    self.end(key);
                    true
                }
                FrameKind::Whitespace | FrameKind::Declaration => true,
            };
        }
        input.drain(..pos);
        if let Some(conn) = self.conns.get_mut(key) {
            conn.input = input;
        }
        alive
    }

    fn open_stream(&mut self, key: usize, to: Option<&str>) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Some(to) = to {
            if to != conn.domain {
                conn.domain = to.to_string();
            }
        }
        conn.streams += 1;
        let authed = conn.user.is_some();
        let (domain, streams) = (conn.domain.clone(), conn.streams);
        self.send_to(key, |out| {
            let _ = write!(
                out,
                "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
                 xmlns:stream='http://etherx.jabber.org/streams' id='{key}-{streams}' \
                 from='{domain}' version='1.0' xml:lang='en'><stream:features>"
            );
            if !authed {
                let _ = write!(
                    out,
                    "<mechanisms xmlns='{NS_SASL}'><mechanism>PLAIN</mechanism></mechanisms>"
                );
            }
            let _ = write!(
                out,
                "<bind xmlns='{NS_BIND}'/><session xmlns='{NS_SESSION}'/></stream:features>"
            );
        });
    }

    /// One top-level element from a client; false ends the connection.
    fn element(&mut self, key: usize, element: &[u8], local: &str) -> bool {
        match local {
            "auth" => self.auth(key, element),
            "iq" => self.iq(key, element),
            "message" | "presence" => {
                if let Some(to) = attr(element, b"to") {
                    self.route(key, to, element);
                }
                true
            }
            _ => true,
        }
    }

    fn auth(&mut self, key: usize, element: &[u8]) -> bool {
        // RFC 4616: [authzid] NUL authcid NUL passwd; any password will do.
        let user = base64::engine::general_purpose::STANDARD
            .decode(own_text(element))
            .ok()
            .and_then(|plain| {
                let mut parts = plain.split(|&b| b == 0);
                let _authzid = parts.next()?;
                let authcid = parts.next()?;
                String::from_utf8(authcid.to_vec()).ok()
            })
            .filter(|u| !u.is_empty() && !u.contains(['@', '/', '\'', '"', '<', '&']));
        let Some(user) = user else {
            self.send_to(key, |out| {
                let _ = write!(
                    out,
                    "<failure xmlns='{NS_SASL}'><malformed-request/></failure>"
                );
            });
            return true;
        };
        if let Some(conn) = self.conns.get_mut(key) {
            conn.user = Some(user);
            // The client restarts the stream after <success/>.
            conn.framer.reset();
        }
        self.send_to(key, |out| {
            let _ = write!(out, "<success xmlns='{NS_SASL}'/>");
        });
        true
    }

    fn iq(&mut self, key: usize, element: &[u8]) -> bool {
        let Some(conn) = self.conns.get(key) else {
            return false;
        };
        if let Some(to) = attr(element, b"to") {
            if to != conn.domain.as_bytes() {
                self.route(key, to, element);
                return true;
            }
        }
        let id = attr(element, b"id").unwrap_or_default().to_vec();
        let kind = attr(element, b"type").unwrap_or_default();
        if kind != b"get" && kind != b"set" {
            return true;
        }
        if find(element, NS_BIND.as_bytes()).is_some() {
            return self.bind_resource(key, element, &id);
        }
        // Session (RFC 3921 §3), ping (XEP-0199) and anything else asked of
        // the server: an empty result.
        self.send_to(key, |out| {
            out.extend_from_slice(b"<iq type='result' id='");
            out.extend_from_slice(&id);
            out.extend_from_slice(b"'/>");
        });
        true
    }

    fn bind_resource(&mut self, key: usize, element: &[u8], id: &[u8]) -> bool {
        let Some(conn) = self.conns.get(key) else {
            return false;
        };
        if conn.jid.is_some() {
            return true;
        }
        let resource = child_text(element, b"<resource>", b"</resource>")
            .filter(|r| !r.is_empty() && !r.iter().any(|b| b"'\"<&/".contains(b)))
            .unwrap_or(b"stub");
        let mut bare = match &conn.user {
            Some(user) => user.as_bytes().to_vec(),
            None => format!("anon{key}").into_bytes(),
        };
        bare.push(b'@');
        bare.extend_from_slice(conn.domain.as_bytes());
        let mut jid = bare.clone();
        jid.push(b'/');
        jid.extend_from_slice(resource);
        if self.full.contains_key(&jid) {
            let _ = write!(jid, "-{key}");
        }
        self.full.insert(jid.clone(), key);
        self.bare.insert(bare, key);
        self.send_to(key, |out| {
            out.extend_from_slice(b"<iq type='result' id='");
            out.extend_from_slice(id);
            let _ = write!(out, "'><bind xmlns='{NS_BIND}'><jid>");
            out.extend_from_slice(&jid);
            out.extend_from_slice(b"</jid></bind></iq>");
        });
        if let Some(conn) = self.conns.get_mut(key) {
            conn.jid = Some(jid);
        }
        true
    }

    /// Deliver `element` to the connection bound as `to` (full JID first,
    /// then bare), with the sender's JID as `from` when it has none.
    fn route(&mut self, from_key: usize, to: &[u8], element: &[u8]) {
        let target = self.full.get(to).or_else(|| self.bare.get(to)).copied();
        let Some(target) = target else {
            self.undeliverable += 1;
            return;
        };
        let from = self.conns.get(from_key).and_then(|c| c.jid.clone());
        let has_from = attr(element, b"from").is_some();
        self.send_to(target, |out| match (&from, has_from) {
            (Some(from), false) => {
                let name_end = element
                    .iter()
                    .position(|&b| b.is_ascii_whitespace() || b == b'>' || b == b'/')
                    .unwrap_or(element.len());
                out.extend_from_slice(&element[..name_end]);
                out.extend_from_slice(b" from='");
                out.extend_from_slice(from);
                out.push(b'\'');
                out.extend_from_slice(&element[name_end..]);
            }
            _ => out.extend_from_slice(element),
        });
    }

    fn send_to(&mut self, key: usize, write: impl FnOnce(&mut Vec<u8>)) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.closing && conn.output.len() == conn.written {
            return;
        }
        if conn.written > 0 && conn.written == conn.output.len() {
            conn.output.clear();
            conn.written = 0;
        }
        write(&mut conn.output);
        if conn.output.len() - conn.written > MAX_OUTPUT {
            conn.closing = true;
        }
        self.mark_dirty(key);
    }

    /// Close once the output is written.
    fn end(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.closing = true;
        }
        self.mark_dirty(key);
    }

    fn mark_dirty(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    fn flush_dirty(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for &key in &dirty {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            conn.dirty = false;
            let mut failed = false;
            while conn.written < conn.output.len() {
                match conn.stream.write(&conn.output[conn.written..]) {
                    Ok(0) => {
                        failed = true;
                        break;
                    }
                    Ok(n) => conn.written += n,
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            let drained = conn.written == conn.output.len();
            if drained {
                conn.output.clear();
                conn.written = 0;
            }
            if failed || (conn.closing && drained) {
                self.close(key);
            }
        }
        self.dirty = dirty;
        self.dirty.clear();
    }

    fn close(&mut self, key: usize) {
        if !self.conns.contains(key) {
            return;
        }
        let mut conn = self.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if let Some(jid) = conn.jid {
            if self.full.get(&jid) == Some(&key) {
                self.full.remove(&jid);
            }
            if let Some(slash) = jid.iter().position(|&b| b == b'/') {
                if self.bare.get(&jid[..slash]) == Some(&key) {
                    self.bare.remove(&jid[..slash]);
                }
            }
        }
    }
}
