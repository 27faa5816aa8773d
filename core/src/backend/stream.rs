//! The client-to-server XML stream toward the XMPP server (RFC 6120 §4),
//! with STARTTLS (RFC 6120 §5), as a sans-IO state machine.
//!
//! Contract: the reactor owns the TCP socket. It feeds every byte read into
//! [`Stream::handle_input`], then calls [`Stream::poll_event`] until it
//! returns `Ok(None)`; it writes [`Stream::output`] to the socket and reports
//! what was written with [`Stream::consume_output`] whenever
//! [`Stream::wants_write`]. Any `Err` ends the stream: the reactor drops the
//! connection (the output may still hold a TLS alert, which it may try to
//! write first) and tells the client why.
//!
//! Drain order, written once: `handle_input` → `poll_event`* → `output`.
//!
//! Negotiation happens inside: our header is queued at creation; the server's
//! first `<stream:features/>` is examined, STARTTLS runs when offered, the
//! stream restarts over TLS (RFC 6120 §5.4.3.3), and only the features of
//! that restarted stream reach the client as [`Event::Features`]. After
//! that, server elements come out as [`Event::Element`] byte for byte, and
//! client bytes go in through [`Stream::send`] unchanged. A client-driven
//! restart (after SASL success, RFC 6120 §6.4.6) is [`Stream::restart`].
//!
//! Ending: [`Stream::close`] is for a client that closed on purpose; a
//! client that vanished must not end the server's session (XEP-0198
//! resumption), so the reactor then just drops the TCP connection.
//!
//! Memory: the stream keeps no large buffer while idle (about 1.2 KiB in
//! all on plaintext, about 9.5 KiB with TLS, most of it rustls's 4 KiB record
//! buffer and its boxed `ClientConnection`).
//!
//! Policy: TLS is used whenever the server offers it, even for a domain
//! where plaintext is allowed; plaintext is only a fallback for servers that
//! do not offer STARTTLS at all, and only where the settings allow it. The
//! one exception is [`Settings::skip_optional_tls`]: the connection never
//! leaves the host, the operator said so, and the server does not require
//! TLS; the `<starttls/>` offer is then cut from the features the client
//! sees, since nobody will negotiate it.

use super::tls;
use crate::buffer;
use crate::stream_error::Condition;
use crate::xml::{self, ElementInfo, FrameKind, Framer, StreamHeader};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use std::fmt;
use std::io::{self, BufRead, Read, Write};
use std::sync::Arc;

/// Buffers that empty keep at most this much capacity, so an idle session
/// holds almost nothing; a burst's larger allocation is given back.
const KEEP_CAPACITY: usize = 512;

const STARTTLS: &[u8] = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
const STREAM_CLOSE: &[u8] = b"</stream:stream>";

/// What one backend stream needs to know.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The XMPP domain: the header's `to` (RFC 6120 §4.7.2) and the name the
    /// server certificate must match (RFC 6120 §13.7.2.1), whatever host
    /// the connection actually goes to.
    pub domain: String,
    /// `xml:lang` of our first header (RFC 6120 §4.7.4); empty leaves it
    /// out.
    pub lang: String,
    /// Shared client configuration, built once at start-up.
    pub tls: Arc<ClientConfig>,
    /// The server may be used without TLS when it does not offer STARTTLS.
    /// An offered STARTTLS is used unless `skip_optional_tls`.
    pub plaintext_allowed: bool,
    /// The connection is to a loopback address and the operator allows
    /// plaintext there (`backend.loopback_plaintext`): an offered STARTTLS
    /// without `<required/>` is skipped, which saves the server the cost of
    /// encryption for bytes that never leave the host.
    pub skip_optional_tls: bool,
    /// Limits on what the server may send.
    pub xml: xml::Limits,
}

#[cfg(test)]
impl Settings {
    /// Plaintext to `localhost`, trusting no one: for the session cores'
    /// tests, whose stub servers never offer STARTTLS.
    pub(crate) fn plaintext_for_tests(xml: xml::Limits) -> Settings {
        let trust = tls::Trust::Roots(rustls::RootCertStore::empty());
        Settings {
            domain: "localhost".into(),
            lang: "en".into(),
            tls: tls::client_config(trust, &tls::Clock::default())
                .expect("ring supports the default versions"),
            plaintext_allowed: true,
            skip_optional_tls: false,
            xml,
        }
    }
}

/// Something the server sent that the session must act on.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// The `<stream:features/>` the client negotiates with (RFC 6120 §4.3.2):
    /// after STARTTLS when it ran, and again after each [`Stream::restart`].
    /// The client never sees pre-TLS features.
    Features(&'a [u8], ElementInfo),
    /// A top-level element of the stream: a stanza or a SASL/bind/sm
    /// element (RFC 6120 §4.1), exactly as the server sent it.
    Element(&'a [u8], ElementInfo),
    /// `<stream:error/>` (RFC 6120 §4.9): relay it, then end the session.
    StreamError {
        /// The error element, as sent.
        element: &'a [u8],
        /// Its start tag.
        info: ElementInfo,
        /// The defined condition (RFC 6120 §4.9.3), `undefined-condition`
        /// when the server named none.
        condition: Condition,
    },
    /// The server closed its stream, `</stream:stream>` (RFC 6120 §4.4).
    Closed,
}

/// Why the backend stream failed. Every error ends the stream.
#[derive(Debug)]
pub enum Error {
    /// The server's XML broke the rules or the limits.
    Xml(xml::Error),
    /// TLS failed, including server certificate verification.
    Tls(tls::Failure),
    /// The server offers no STARTTLS and plaintext is not allowed for this
    /// domain (RFC 6120 §5.3.1).
    TlsRequired,
    /// The server answered `<starttls/>` with `<failure/>` (RFC 6120
    /// §5.4.2.2).
    StartTlsFailed,
    /// The domain is not a valid TLS server name.
    InvalidDomain,
    /// The server's stream header does not announce version 1.0
    /// (RFC 6120 §4.7.5): it cannot offer features.
    UnsupportedVersion,
    /// The server sent something that does not fit the negotiation.
    Unexpected(&'static str),
    /// [`Stream::send`] or [`Stream::restart`] before the first
    /// [`Event::Features`].
    NotReady,
    /// [`Stream::send`] or [`Stream::restart`] after [`Stream::close`] or
    /// after the server closed.
    AfterClose,
}

impl Error {
    /// A short fixed reason for log lines and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Xml(_) => "xml",
            Error::Tls(_) => "tls",
            Error::TlsRequired => "tls-required",
            Error::StartTlsFailed => "starttls-failed",
            Error::InvalidDomain => "invalid-domain",
            Error::UnsupportedVersion => "unsupported-version",
            Error::Unexpected(_) => "unexpected",
            Error::NotReady => "not-ready",
            Error::AfterClose => "after-close",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Xml(e) => write!(f, "server xml: {e}"),
            Error::Tls(failure) => write!(f, "{failure}"),
            Error::TlsRequired => f.write_str(
                "server does not offer STARTTLS and plaintext is not allowed for this domain (only for one in backend.plaintext_domains or on a loopback route)",
            ),
            Error::StartTlsFailed => f.write_str("server answered STARTTLS with <failure/>"),
            Error::InvalidDomain => f.write_str("domain is not a valid TLS server name"),
            Error::UnsupportedVersion => f.write_str("server stream is not version 1.0"),
            Error::Unexpected(what) => write!(f, "unexpected from server: {what}"),
            Error::NotReady => f.write_str("stream not negotiated yet"),
            Error::AfterClose => f.write_str("stream already closed"),
        }
    }
}

impl std::error::Error for Error {}

impl From<xml::Error> for Error {
    fn from(e: xml::Error) -> Self {
        Error::Xml(e)
    }
}

/// Where the negotiation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Our header is out; the server's is awaited. `negotiate`: the features
    /// that follow are ours to examine for STARTTLS (the first plaintext
    /// stream), not the client's.
    Header { negotiate: bool },
    /// The server's header arrived; its features are awaited.
    Features { negotiate: bool },
    /// `<starttls/>` sent; `<proceed/>` awaited (RFC 6120 §5.4.2).
    Proceed,
    /// TLS handshake running; our new header goes out when it completes.
    Handshake,
    /// Features delivered: elements are relayed.
    Relay,
    /// The server closed its stream; nothing more is read.
    Closed,
}

/// An event found at the front of the input, not yet handed out.
#[derive(Debug)]
struct Pending {
    len: usize,
    kind: PendingKind,
}

#[derive(Debug)]
enum PendingKind {
    Features(ElementInfo),
    Element(ElementInfo),
    StreamError(ElementInfo, Condition),
    Closed,
}

/// One backend XML stream, from the first header to the close. See the
/// module documentation for the calling contract.
#[derive(Debug)]
pub struct Stream {
    domain: String,
    lang: String,
    config: Arc<ClientConfig>,
    plaintext_allowed: bool,
    skip_optional_tls: bool,
    phase: Phase,
    framer: Framer,
    /// Plaintext from the server (decrypted when TLS runs); `input[start..]`
    /// is not yet consumed.
    input: Vec<u8>,
    start: usize,
    /// The event at `input[start..]` when `handle_input` already found it.
    pending: Option<Pending>,
    /// Bytes for the socket (TLS records when TLS runs).
    output: Vec<u8>,
    /// Boxed: most of a TLS session's fixed cost, absent on plaintext ones.
    tls: Option<Box<ClientConnection>>,
    server_header: Option<StreamHeader>,
    /// The first `Event::Features` has been found: `send` is allowed.
    ready: bool,
    /// `close` was called.
    closing: bool,
}

impl Stream {
    /// A new stream to `settings.domain`, with our initial stream header
    /// (RFC 6120 §4.7) already queued in [`Stream::output`].
    pub fn new(settings: Settings) -> Self {
        let mut output = Vec::new();
        stream_header(&settings.domain, &settings.lang, &[], &mut output);
        Stream {
            domain: settings.domain,
            lang: settings.lang,
            config: settings.tls,
            plaintext_allowed: settings.plaintext_allowed,
            skip_optional_tls: settings.skip_optional_tls,
            phase: Phase::Header { negotiate: true },
            framer: Framer::new(xml::Mode::Stream, settings.xml),
            input: Vec::new(),
            start: 0,
            pending: None,
            output,
            tls: None,
            server_header: None,
            ready: false,
            closing: false,
        }
    }

    /// Take raw bytes read from the socket: decrypt them when TLS runs and
    /// act on negotiation elements (which may queue output). Call
    /// [`Stream::poll_event`] until `Ok(None)` afterwards.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.phase == Phase::Closed {
            return Ok(());
        }
        self.compact_input();
        if self.tls.is_some() {
            self.read_tls(bytes)?;
        } else {
            buffer::append(&mut self.input, bytes);
        }
        // Negotiation is acted on here, not left to `poll_event`: the bytes
        // after `<proceed/>` must go to TLS, never into the plaintext buffer.
        if self.pending.is_none() {
            self.pending = self.step()?;
        }
        Ok(())
    }

    /// The next event from the server, or `Ok(None)` when the input holds no
    /// complete one. The event borrows the stream's input buffer.
    pub fn poll_event(&mut self) -> Result<Option<Event<'_>>, Error> {
        let pending = match self.pending.take() {
            Some(pending) => pending,
            None => match self.step()? {
                Some(pending) => pending,
                None => {
                    if self.start >= self.input.len() {
                        self.start = 0;
                        release(&mut self.input);
                    }
                    return Ok(None);
                }
            },
        };
        let at = self.start;
        self.start = at + pending.len;
        let bytes = self.input.get(at..self.start).unwrap_or_default();
        Ok(Some(match pending.kind {
            PendingKind::Features(info) => Event::Features(bytes, info),
            PendingKind::Element(info) => Event::Element(bytes, info),
            PendingKind::StreamError(info, condition) => Event::StreamError {
                element: bytes,
                info,
                condition,
            },
            PendingKind::Closed => Event::Closed,
        }))
    }

    /// Bytes waiting to be written to the socket.
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    /// `n` bytes of [`Stream::output`] were written.
    pub fn consume_output(&mut self, n: usize) {
        let n = n.min(self.output.len());
        self.output.drain(..n);
        if self.output.is_empty() {
            release(&mut self.output);
        }
    }

    /// There is output to write.
    pub fn wants_write(&self) -> bool {
        !self.output.is_empty()
    }

    /// Bytes queued for the socket, for back-pressure: stop reading the
    /// client while this is above the session's limit.
    pub fn buffered_output_len(&self) -> usize {
        self.output.len()
    }

    /// Send client bytes to the server unchanged (encrypted when TLS runs).
    /// Allowed from the first [`Event::Features`] on.
    pub fn send(&mut self, data: &[u8]) -> Result<(), Error> {
        if self.closing || self.phase == Phase::Closed {
            return Err(Error::AfterClose);
        }
        if !self.ready {
            return Err(Error::NotReady);
        }
        self.write(data)
    }

    /// Restart the stream for the client (RFC 6120 §6.4.6 after SASL
    /// success; a WebSocket `<open/>`, RFC 7395 §3.3.2; a BOSH
    /// `xmpp:restart`, XEP-0206 §5): send a new header with the client's
    /// `lang`, forget what is left of the old stream (the server sends
    /// nothing more on it), and deliver the new features as
    /// [`Event::Features`].
    pub fn restart(&mut self, lang: &str) -> Result<(), Error> {
        self.restart_with(lang, &[])
    }

    /// A restart whose header also carries `extra` attributes, which win
    /// over `to` and `xml:lang` (node-xmpp-bosh's `stream_attrs`). The
    /// caller keeps namespace declarations and `version` out of `extra`.
    pub fn restart_with(&mut self, lang: &str, extra: &[(String, String)]) -> Result<(), Error> {
        if self.closing || self.phase == Phase::Closed {
            return Err(Error::AfterClose);
        }
        if !self.ready {
            return Err(Error::NotReady);
        }
        let mut header = Vec::new();
        stream_header(&self.domain, lang, extra, &mut header);
        self.write(&header)?;
        self.framer.reset();
        self.input.clear();
        release(&mut self.input);
        self.start = 0;
        self.pending = None;
        self.phase = Phase::Header { negotiate: false };
        Ok(())
    }

    /// Close the stream cleanly: queue `</stream:stream>` (RFC 6120 §4.4)
    /// and a TLS `close_notify`. Only for a client that closed on purpose
    /// (WebSocket `<close/>`, BOSH `type='terminate'`): the server then
    /// ends the session. When the client merely vanished, do NOT call this;
    /// drop the TCP connection instead, so that the server keeps the session
    /// resumable (XEP-0198 §5).
    pub fn close(&mut self) {
        if self.closing {
            return;
        }
        self.closing = true;
        if self.phase == Phase::Handshake {
            // Plaintext written now would go out after the handshake,
            // inside the new TLS stream we are abandoning.
            if let Some(conn) = self.tls.as_deref_mut() {
                conn.send_close_notify();
            }
            self.flush_tls();
            return;
        }
        // Failure here only means TLS already failed; there is nothing
        // more to tell the server.
        let _ = self.write(STREAM_CLOSE);
        if let Some(conn) = self.tls.as_deref_mut() {
            conn.send_close_notify();
        }
        self.flush_tls();
    }

    /// The first [`Event::Features`] has been found (it stays true across
    /// restarts): the client may send.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The TLS handshake has completed on this stream.
    pub fn is_tls(&self) -> bool {
        self.tls.as_deref().is_some_and(|c| !c.is_handshaking())
    }

    /// Nobody between switchboard and the server can read the stream: TLS
    /// runs, or the connection stays on this host (XEP-0206 `secure`).
    pub fn is_secure(&self) -> bool {
        self.is_tls() || self.skip_optional_tls
    }

    /// The server's latest stream header (RFC 6120 §4.7): its `id`
    /// (XEP-0206 `authid`), `from`, `version`, `xml:lang`.
    pub fn server_header(&self) -> Option<&StreamHeader> {
        self.server_header.as_ref()
    }

    /// Frame the input until the next event, acting on negotiation
    /// elements on the way. The event's bytes stay at `input[start..]`.
    fn step(&mut self) -> Result<Option<Pending>, Error> {
        loop {
            let negotiate = match self.phase {
                Phase::Header { negotiate } | Phase::Features { negotiate } => negotiate,
                Phase::Proceed | Phase::Relay => false,
                Phase::Handshake | Phase::Closed => return Ok(None),
            };
            let rest = self.input.get(self.start..).unwrap_or_default();
            let Some(frame) = self.framer.next(rest)? else {
                return Ok(None);
            };
            let len = frame.len;
            let info = match frame.kind {
                FrameKind::Whitespace | FrameKind::Declaration => {
                    self.start += len;
                    continue;
                }
                FrameKind::StreamClose => {
                    self.phase = Phase::Closed;
                    return Ok(Some(Pending {
                        len,
                        kind: PendingKind::Closed,
                    }));
                }
                FrameKind::StreamOpen(header) => {
                    if !matches!(self.phase, Phase::Header { .. }) {
                        return Err(Error::Unexpected("second stream header"));
                    }
                    check_header(&header)?;
                    self.server_header = Some(header);
                    self.phase = Phase::Features { negotiate };
                    self.start += len;
                    continue;
                }
                FrameKind::Element(info) => info,
            };
            let element = rest.get(..len).unwrap_or_default();
            if is_stream_element(element, &info, "error") {
                let condition = stream_error_condition(element);
                return Ok(Some(Pending {
                    len,
                    kind: PendingKind::StreamError(info, condition),
                }));
            }
            match self.phase {
                Phase::Relay => {
                    return Ok(Some(Pending {
                        len,
                        kind: PendingKind::Element(info),
                    }))
                }
                Phase::Features { negotiate } => {
                    if !is_stream_element(element, &info, "features") {
                        return Err(Error::Unexpected("element before stream features"));
                    }
                    let mut len = len;
                    if negotiate {
                        match starttls_offer(element)? {
                            // Offered is enough, `<required/>` or not: TLS is
                            // preferred even where plaintext is allowed...
                            Some(offer) if offer.required || !self.skip_optional_tls => {
                                self.start += len;
                                self.write(STARTTLS)?;
                                self.phase = Phase::Proceed;
                                continue;
                            }
                            // ...but for the loopback exception.
                            Some(offer) => {
                                let at = self.start;
                                self.input.drain(at + offer.span.start..at + offer.span.end);
                                len -= offer.span.len();
                            }
                            None if !self.plaintext_allowed && !self.skip_optional_tls => {
                                return Err(Error::TlsRequired);
                            }
                            None => {}
                        }
                    }
                    self.phase = Phase::Relay;
                    self.ready = true;
                    return Ok(Some(Pending {
                        len,
                        kind: PendingKind::Features(info),
                    }));
                }
                Phase::Proceed => {
                    if info.namespace(element) != Some(xml::NS_TLS) {
                        return Err(Error::Unexpected("element other than a starttls answer"));
                    }
                    match info.local_name(element) {
                        "proceed" => {}
                        "failure" => return Err(Error::StartTlsFailed),
                        _ => return Err(Error::Unexpected("element other than a starttls answer")),
                    }
                    self.start += len;
                    if self.start < self.input.len() {
                        // The server cannot speak TLS before our ClientHello:
                        // anything here was injected into the plaintext.
                        return Err(Error::Unexpected("data after <proceed/>"));
                    }
                    self.start_tls()?;
                    return Ok(None);
                }
                Phase::Header { .. } | Phase::Handshake | Phase::Closed => {
                    return Err(Error::Unexpected("element outside the stream"))
                }
            }
        }
    }

    /// `<proceed/>` arrived: drop the plaintext stream and send the
    /// ClientHello (RFC 6120 §5.4.3.1).
    fn start_tls(&mut self) -> Result<(), Error> {
        let name = ServerName::try_from(self.domain.clone()).map_err(|_| Error::InvalidDomain)?;
        let mut conn = ClientConnection::new(Arc::clone(&self.config), name)
            .map_err(|e| Error::Tls(tls::Failure::of(e, &self.domain)))?;
        // Our own output buffer is the bounded one; rustls's is emptied
        // into it after every write.
        conn.set_buffer_limit(None);
        self.tls = Some(Box::new(conn));
        self.input.clear();
        release(&mut self.input);
        self.start = 0;
        self.phase = Phase::Handshake;
        self.flush_tls();
        Ok(())
    }

    /// Decrypt `bytes` into `input`; restart the stream when the handshake
    /// completes (RFC 6120 §5.4.3.3).
    fn read_tls(&mut self, mut bytes: &[u8]) -> Result<(), Error> {
        let Some(conn) = self.tls.as_deref_mut() else {
            return Ok(());
        };
        while !bytes.is_empty() {
            match conn.read_tls(&mut bytes) {
                // close_notify received: rustls reads nothing more.
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => return Err(Error::Unexpected("tls record too large")),
            }
            if let Err(e) = conn.process_new_packets() {
                // Queue the alert that tells the server why.
                let _ = conn.write_tls(&mut self.output);
                return Err(Error::Tls(tls::Failure::of(e, &self.domain)));
            }
            let mut reader = conn.reader();
            loop {
                match reader.fill_buf() {
                    Ok([]) | Err(_) => break,
                    Ok(chunk) => {
                        let n = chunk.len();
                        self.input.extend_from_slice(chunk);
                        reader.consume(n);
                    }
                }
            }
            if self.phase == Phase::Handshake && !conn.is_handshaking() {
                let mut header = Vec::new();
                stream_header(&self.domain, &self.lang, &[], &mut header);
                conn.writer()
                    .write_all(&header)
                    .map_err(|_| Error::Unexpected("tls write refused"))?;
                self.framer.reset();
                self.phase = Phase::Header { negotiate: false };
            }
        }
        // rustls grows its record buffer (capacity doubling: 32 KiB after
        // one full-size record) and only trims it back to 4 KiB at its next
        // read. Trigger that read now with a source that has nothing yet,
        // so an idle session does not keep the large buffer. WouldBlock,
        // unlike an empty read, is not taken as end of stream.
        let _ = conn.read_tls(&mut NothingYet);
        self.flush_tls();
        Ok(())
    }

    /// Queue bytes for the server, through TLS when it runs.
    fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        match self.tls.as_deref_mut() {
            None => buffer::append(&mut self.output, data),
            Some(conn) => {
                conn.writer()
                    .write_all(data)
                    .map_err(|_| Error::Unexpected("tls write refused"))?;
                self.flush_tls();
            }
        }
        Ok(())
    }

    /// Move rustls's pending records into our output.
    fn flush_tls(&mut self) {
        if let Some(conn) = self.tls.as_deref_mut() {
            while conn.wants_write() {
                match conn.write_tls(&mut self.output) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
    }

    /// Drop consumed input so new bytes append after the unconsumed ones.
    fn compact_input(&mut self) {
        if self.start > 0 {
            self.input.drain(..self.start.min(self.input.len()));
            self.start = 0;
        }
    }
}

/// A byte source that has nothing yet; see [`Stream::read_tls`].
struct NothingYet;

impl Read for NothingYet {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

/// Clear a drained buffer, giving back capacity beyond [`KEEP_CAPACITY`].
fn release(buf: &mut Vec<u8>) {
    buf.clear();
    if buf.capacity() > KEEP_CAPACITY {
        *buf = Vec::new();
    }
}

/// Our stream header (RFC 6120 §4.7, §4.8), attribute values escaped.
fn stream_header(domain: &str, lang: &str, extra: &[(String, String)], out: &mut Vec<u8>) {
    let given = |name: &str| extra.iter().any(|(k, _)| k == name);
    out.extend_from_slice(
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
          xmlns:stream='http://etherx.jabber.org/streams'",
    );
    let defaults = [("to", domain), ("version", "1.0"), ("xml:lang", lang)];
    let defaults = defaults
        .into_iter()
        .filter(|(name, value)| !value.is_empty() && !given(name));
    let extra = extra.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    for (name, value) in defaults.chain(extra) {
        out.push(b' ');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"='");
        escape_attribute(value, out);
        out.push(b'\'');
    }
    out.push(b'>');
}

fn escape_attribute(value: &str, out: &mut Vec<u8>) {
    for &b in value.as_bytes() {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'\'' => out.extend_from_slice(b"&apos;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            _ => out.push(b),
        }
    }
}

/// A server header we can negotiate with: version 1.0 or later
/// (RFC 6120 §4.7.5) in the `jabber:client` namespace (RFC 6120 §4.8.3).
fn check_header(header: &StreamHeader) -> Result<(), Error> {
    let major = header
        .version
        .as_deref()
        .and_then(|v| v.split('.').next())
        .and_then(|major| major.parse::<u32>().ok());
    if major.is_none_or(|major| major < 1) {
        return Err(Error::UnsupportedVersion);
    }
    match header.ns.as_deref() {
        Some(ns) if ns != xml::NS_CLIENT => {
            Err(Error::Unexpected("stream namespace is not jabber:client"))
        }
        _ => Ok(()),
    }
}

/// `<stream:LOCAL>` in the streams namespace. The framer guarantees the
/// header bound the `stream` prefix to it.
fn is_stream_element(element: &[u8], info: &ElementInfo, local: &str) -> bool {
    info.local_name(element) == local
        && (info.prefix(element) == Some("stream")
            || info.namespace(element) == Some(xml::NS_STREAMS))
}

/// A `<starttls/>` among the stream features (RFC 6120 §5.4.1).
struct StartTlsOffer {
    required: bool,
    /// Its place in the features element.
    span: std::ops::Range<usize>,
}

fn starttls_offer(features: &[u8]) -> Result<Option<StartTlsOffer>, Error> {
    Ok(xml::children(features)?
        .into_iter()
        .find(|c| c.local == "starttls" && c.ns.as_deref() == Some(xml::NS_TLS))
        .map(|c| StartTlsOffer {
            required: c.children.iter().any(|name| name == "required"),
            span: c.span,
        }))
}

/// The defined condition of a `<stream:error/>` (RFC 6120 §4.9.2): its
/// child in the stream errors namespace other than `<text/>`.
fn stream_error_condition(element: &[u8]) -> Condition {
    xml::children(element)
        .ok()
        .and_then(|children| {
            children
                .into_iter()
                .find(|c| c.ns.as_deref() == Some(xml::NS_STREAM_ERRORS) && c.local != "text")
        })
        .map_or(Condition::UndefinedCondition, |c| {
            Condition::from_name(&c.local)
        })
}

#[cfg(test)]
mod tests;
