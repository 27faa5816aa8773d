//! A stub XMPP server (RFC 6120 client-to-server side) on a loopback port, one
//! blocking thread per connection, for switchboard's integration tests.
//!
//! It offers STARTTLS when asked (certificate from a test CA, or
//! self-signed), SASL PLAIN
//! accepting any credentials, resource binding, routing of stanzas addressed
//! to bound JIDs and a result for any iq get/set addressed to the server.
//! Every connection keeps an event log that tests wait on and assert against.
//! For back-pressure tests it can flood a plaintext connection and stop
//! reading one.
//! The server stops, closing every connection, when dropped.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::certs::{self, TestCa};
use super::xml::{self, Frame, Framer};
use super::xmpp::{self, NS_BIND, NS_CLIENT, NS_SASL, NS_STREAM, NS_STREAMS, NS_TLS};

/// Bounds every blocking write of the stub, so a peer that stops reading
/// cannot hang a test.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// How STARTTLS (RFC 6120 §5) is offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// `<starttls/>` offered next to SASL.
    Optional,
    /// `<starttls><required/></starttls>` and no SASL before TLS.
    Required,
}

/// What the stub offers and how it behaves.
#[derive(Clone, Debug)]
pub struct StubOptions {
    /// The server's domain: `from` of its stream header, domain of bound JIDs.
    pub domain: String,
    /// `None`: plaintext only, no STARTTLS offered.
    pub tls: Option<TlsMode>,
    /// Name in the TLS certificate when it must differ from `domain`
    /// (to test certificate name checks).
    pub cert_domain: Option<String>,
    /// Present a self-signed `CA:TRUE` certificate, as Debian's Prosody
    /// does, instead of one from a test CA.
    pub self_signed: bool,
    /// Answer every stream open with `<host-unknown/>` (RFC 6120 §4.9.3.6).
    pub host_unknown: bool,
}

impl Default for StubOptions {
    fn default() -> Self {
        StubOptions {
            domain: "localhost".into(),
            tls: None,
            cert_domain: None,
            self_signed: false,
            host_unknown: false,
        }
    }
}

impl StubOptions {
    pub fn plaintext(domain: &str) -> Self {
        StubOptions {
            domain: domain.into(),
            ..StubOptions::default()
        }
    }

    pub fn starttls(domain: &str, mode: TlsMode) -> Self {
        StubOptions {
            domain: domain.into(),
            tls: Some(mode),
            ..StubOptions::default()
        }
    }

    pub fn host_unknown(domain: &str) -> Self {
        StubOptions {
            domain: domain.into(),
            host_unknown: true,
            ..StubOptions::default()
        }
    }
}

/// What one connection did, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StubEvent {
    /// A stream header arrived (RFC 6120 §4.7), once per (re)start.
    StreamOpened {
        to: Option<String>,
        version: Option<String>,
    },
    /// The TLS handshake after `<proceed/>` completed.
    StartTls,
    /// The TLS handshake failed (e.g. the client rejected the certificate).
    TlsFailed(String),
    /// SASL PLAIN succeeded for this authcid.
    Authenticated(String),
    /// A resource was bound to this full JID.
    Bound(String),
    /// A stanza (`iq`, `message`, `presence`) arrived, raw as received.
    StanzaReceived(String),
    /// Another top-level element (not a stanza, not STARTTLS or SASL),
    /// raw; the stub ignores it.
    OtherElement(String),
    /// The peer sent bytes the stub could not frame; the stub closed.
    NotWellFormed(String),
    /// `</stream:stream>` arrived (RFC 6120 §4.4); the stub answered in kind.
    ClientClosedStream,
    /// The TCP connection ended without `</stream:stream>`.
    TcpClosed,
}

/// A running stub server; see the module documentation.
pub struct StubServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    ca: Option<TestCa>,
    ca_file: Option<PathBuf>,
    /// The self-signed certificate in PEM, for pinning.
    cert_file: Option<PathBuf>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    options: StubOptions,
    tls_config: Option<Arc<rustls::ServerConfig>>,
    stop: AtomicBool,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    conns: Vec<ConnRecord>,
    threads: Vec<JoinHandle<()>>,
}

struct ConnRecord {
    events: Vec<StubEvent>,
    conn: Arc<Conn>,
    jid: Option<String>,
    open: bool,
    /// Set by [`StubServer::pause_reading`].
    paused: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl StubServer {
    pub fn start(options: StubOptions) -> StubServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind stub listener");
        let addr = listener.local_addr().expect("stub address");
        let cert_domain = options.cert_domain.as_deref().unwrap_or(&options.domain);
        let temp_pem = |kind: &str, pem: &str| {
            let path = std::env::temp_dir().join(format!(
                "switchboard-stub-{kind}-{}-{}.pem",
                std::process::id(),
                addr.port()
            ));
            std::fs::write(&path, pem).expect("write stub pem file");
            path
        };
        let (ca, tls_config, ca_file, cert_file) = match options.tls {
            None => (None, None, None, None),
            Some(_) if options.self_signed => {
                let (config, pem) = certs::self_signed(cert_domain);
                (None, Some(config), None, Some(temp_pem("cert", &pem)))
            }
            Some(_) => {
                let ca = TestCa::new();
                let config = ca.server_config(cert_domain);
                let ca_file = temp_pem("ca", ca.cert_pem());
                (Some(ca), Some(config), Some(ca_file), None)
            }
        };
        let shared = Arc::new(Shared {
            options,
            tls_config,
            stop: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || accept_loop(&shared, &listener))
        };
        StubServer {
            addr,
            shared,
            ca,
            ca_file,
            cert_file,
            acceptor: Some(acceptor),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn domain(&self) -> &str {
        &self.shared.options.domain
    }

    /// The test CA's certificate in PEM (only with TLS).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca.as_ref().map(TestCa::cert_pem)
    }

    /// A temporary file holding [`Self::ca_pem`], removed on drop: the value
    /// for switchboard's `backend.ca_file`.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// A temporary file holding the self-signed certificate (only with
    /// [`StubOptions::self_signed`]), removed on drop: what a route pins.
    pub fn cert_file(&self) -> Option<&Path> {
        self.cert_file.as_deref()
    }

    /// A rustls client configuration trusting the stub's CA (only with TLS).
    pub fn client_tls_config(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.ca.as_ref().map(TestCa::client_config)
    }

    /// Connections accepted so far; indexes for the other methods.
    pub fn connection_count(&self) -> usize {
        lock(&self.shared.state).conns.len()
    }

    /// A snapshot of connection `conn`'s event log (empty if no such connection).
    pub fn events(&self, conn: usize) -> Vec<StubEvent> {
        lock(&self.shared.state)
            .conns
            .get(conn)
            .map(|r| r.events.clone())
            .unwrap_or_default()
    }

    /// Waits until at least `n` connections were accepted.
    pub fn wait_connections(&self, n: usize, timeout: Duration) -> Result<(), String> {
        self.wait_until(timeout, |s| (s.conns.len() >= n).then_some(()))
            .ok_or_else(|| {
                format!(
                    "stub: {} connections after {timeout:?}, wanted {n}",
                    self.connection_count()
                )
            })
    }

    /// Waits until connection `conn` logged an event matching `pred`, and
    /// returns its whole log at that moment.
    pub fn wait_event(
        &self,
        conn: usize,
        timeout: Duration,
        pred: impl Fn(&StubEvent) -> bool,
    ) -> Result<Vec<StubEvent>, String> {
        self.wait_until(timeout, |s| {
            let record = s.conns.get(conn)?;
            record
                .events
                .iter()
                .any(&pred)
                .then(|| record.events.clone())
        })
        .ok_or_else(|| {
            format!(
                "stub: no matching event on connection {conn} after {timeout:?}; log: {:?}",
                self.events(conn)
            )
        })
    }

    /// The index of the connection bound to `jid` (full, or bare: the first match).
    pub fn connection_of(&self, jid: &str) -> Option<usize> {
        lock(&self.shared.state)
            .conns
            .iter()
            .position(|r| r.jid.as_deref().is_some_and(|j| jid_matches(j, jid)))
    }

    /// Sends `raw` to every open session bound to `jid` (full, or bare: all
    /// its resources); returns how many got it.
    pub fn send_to(&self, jid: &str, raw: &str) -> usize {
        self.shared.route(jid, raw)
    }

    /// Writes arbitrary bytes on connection `conn` (e.g. a stream error).
    pub fn send_raw(&self, conn: usize, bytes: &[u8]) -> Result<(), String> {
        let conn = lock(&self.shared.state)
            .conns
            .get(conn)
            .map(|r| Arc::clone(&r.conn))
            .ok_or_else(|| format!("stub: no connection {conn}"))?;
        conn.send(bytes)
            .map_err(|e| format!("stub: send failed: {e}"))
    }

    /// Writes the endless repetition of `chunk` on plaintext connection
    /// `conn`, from stream position `from` up to `to` (positions count bytes
    /// of that repetition, so a call can resume where a stalled one stopped,
    /// even mid-chunk). Stops early when one write makes no progress for
    /// `stall`; returns the position reached (`to` unless stalled).
    ///
    /// Writes on a clone of the socket without the connection's lock, so the
    /// stub's own thread keeps reading; nothing else should write to `conn`
    /// meanwhile. TLS connections are refused.
    pub fn flood(
        &self,
        conn: usize,
        chunk: &[u8],
        from: usize,
        to: usize,
        stall: Duration,
    ) -> Result<usize, String> {
        let conn = lock(&self.shared.state)
            .conns
            .get(conn)
            .map(|r| Arc::clone(&r.conn))
            .ok_or_else(|| format!("stub: no connection {conn}"))?;
        let mut sock = {
            let io = lock(&conn.io);
            if io.tls.is_some() {
                return Err("stub: flood on a TLS connection".into());
            }
            io.sock.try_clone().map_err(|e| format!("stub: {e}"))?
        };
        // The timeout is the socket's, shared with the stub's own writes:
        // restored below.
        sock.set_write_timeout(Some(stall))
            .map_err(|e| format!("stub: {e}"))?;
        let result = write_repeated(&mut sock, chunk, from, to);
        let _ = sock.set_write_timeout(Some(WRITE_TIMEOUT));
        result
    }

    /// Stops reading connection `conn` until [`Self::resume_reading`], so its
    /// peer's writes back up. A read already blocked completes first (at most
    /// one buffer, 16 KiB).
    pub fn pause_reading(&self, conn: usize) {
        if let Some(r) = lock(&self.shared.state).conns.get_mut(conn) {
            r.paused = true;
        }
        self.shared.changed.notify_all();
    }

    /// Undoes [`Self::pause_reading`].
    pub fn resume_reading(&self, conn: usize) {
        if let Some(r) = lock(&self.shared.state).conns.get_mut(conn) {
            r.paused = false;
        }
        self.shared.changed.notify_all();
    }

    /// Closes connection `conn`'s TCP socket without `</stream:stream>`, as a
    /// crashing server would.
    pub fn drop_connection(&self, conn: usize) {
        if let Some(r) = lock(&self.shared.state).conns.get(conn) {
            r.conn.shutdown();
        }
    }

    fn wait_until<T>(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&State) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut state = lock(&self.shared.state);
        loop {
            if let Some(found) = f(&state) {
                return Some(found);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}

impl Drop for StubServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept so it sees the stop flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let threads = {
            let mut state = lock(&self.shared.state);
            for r in &state.conns {
                r.conn.shutdown();
            }
            std::mem::take(&mut state.threads)
        };
        for t in threads {
            let _ = t.join();
        }
        for path in self.ca_file.iter().chain(&self.cert_file) {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn jid_matches(bound: &str, wanted: &str) -> bool {
    if wanted.contains('/') {
        bound == wanted
    } else {
        xmpp::bare_jid(bound) == wanted
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(sock) = stream else { continue };
        let _ = sock.set_nodelay(true);
        let _ = sock.set_write_timeout(Some(WRITE_TIMEOUT));
        let (Ok(reader), Ok(closer)) = (sock.try_clone(), sock.try_clone()) else {
            continue;
        };
        let conn = Arc::new(Conn {
            io: Mutex::new(ConnIo { sock, tls: None }),
            closer,
        });
        let mut state = lock(&shared.state);
        let index = state.conns.len();
        state.conns.push(ConnRecord {
            events: Vec::new(),
            conn: Arc::clone(&conn),
            jid: None,
            open: true,
            paused: false,
        });
        let handler = Handler {
            shared: Arc::clone(shared),
            conn,
            index,
            framer: Framer::default(),
            tls_started: false,
            tls_done: false,
            user: None,
            jid: None,
            streams: 0,
        };
        state
            .threads
            .push(std::thread::spawn(move || handler.run(reader)));
        shared.changed.notify_all();
    }
}

impl Shared {
    fn log(&self, index: usize, event: StubEvent) {
        if let Some(r) = lock(&self.state).conns.get_mut(index) {
            // A test that saw the last event must find the session gone.
            if matches!(
                event,
                StubEvent::ClientClosedStream
                    | StubEvent::TcpClosed
                    | StubEvent::TlsFailed(_)
                    | StubEvent::NotWellFormed(_)
            ) {
                r.open = false;
            }
            r.events.push(event);
        }
        self.changed.notify_all();
    }

    fn route(&self, to: &str, raw: &str) -> usize {
        let targets: Vec<Arc<Conn>> = lock(&self.state)
            .conns
            .iter()
            .filter(|r| r.open && r.jid.as_deref().is_some_and(|j| jid_matches(j, to)))
            .map(|r| Arc::clone(&r.conn))
            .collect();
        targets
            .iter()
            .filter(|c| c.send(raw.as_bytes()).is_ok())
            .count()
    }
}

/// One connection's socket; the mutex lets routing threads write while the
/// owner thread blocks reading its own clone of the socket.
struct Conn {
    io: Mutex<ConnIo>,
    closer: TcpStream,
}

struct ConnIo {
    sock: TcpStream,
    tls: Option<rustls::ServerConnection>,
}

impl Conn {
    fn send(&self, data: &[u8]) -> io::Result<()> {
        let mut io = lock(&self.io);
        let ConnIo { sock, tls } = &mut *io;
        match tls {
            Some(tls) => {
                tls.writer().write_all(data)?;
                while tls.wants_write() {
                    tls.write_tls(sock)?;
                }
                Ok(())
            }
            None => sock.write_all(data),
        }
    }

    /// Feeds bytes read from the socket; appends decrypted plaintext to
    /// `plain` and returns whether TLS is still handshaking.
    fn ingest(&self, bytes: &[u8], plain: &mut Vec<u8>) -> Result<bool, String> {
        let mut io = lock(&self.io);
        let ConnIo { sock, tls } = &mut *io;
        let Some(tls) = tls else {
            plain.extend_from_slice(bytes);
            return Ok(false);
        };
        let mut input = bytes;
        while !input.is_empty() {
            tls.read_tls(&mut input).map_err(|e| e.to_string())?;
            let state = match tls.process_new_packets() {
                Ok(state) => state,
                Err(e) => {
                    // Sends the alert so the peer learns why.
                    let _ = tls.write_tls(sock);
                    return Err(e.to_string());
                }
            };
            let mut chunk = vec![0; state.plaintext_bytes_to_read()];
            tls.reader()
                .read_exact(&mut chunk)
                .map_err(|e| e.to_string())?;
            plain.extend_from_slice(&chunk);
        }
        while tls.wants_write() {
            tls.write_tls(sock).map_err(|e| e.to_string())?;
        }
        Ok(tls.is_handshaking())
    }

    fn start_tls(&self, config: Arc<rustls::ServerConfig>) -> Result<(), String> {
        let tls = rustls::ServerConnection::new(config).map_err(|e| e.to_string())?;
        lock(&self.io).tls = Some(tls);
        Ok(())
    }

    fn shutdown(&self) {
        let _ = self.closer.shutdown(Shutdown::Both);
    }
}

struct Handler {
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    index: usize,
    framer: Framer,
    tls_started: bool,
    tls_done: bool,
    user: Option<String>,
    jid: Option<String>,
    streams: u32,
}

enum Next {
    Continue,
    Stop,
}

impl Handler {
    fn run(mut self, mut reader: TcpStream) {
        let mut buf = vec![0; 16 * 1024];
        'connection: loop {
            loop {
                let frame = match self.framer.next_frame() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(e) => {
                        self.log(StubEvent::NotWellFormed(e));
                        self.stream_error("not-well-formed");
                        break 'connection;
                    }
                };
                if let Next::Stop = self.handle(frame) {
                    break 'connection;
                }
            }
            self.wait_while_paused();
            let n = match reader.read(&mut buf) {
                Ok(0) => {
                    self.log(StubEvent::TcpClosed);
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.log(StubEvent::TcpClosed);
                    break;
                }
            };
            let mut plain = Vec::new();
            match self.conn.ingest(&buf[..n], &mut plain) {
                Ok(handshaking) => {
                    if self.tls_started && !self.tls_done && !handshaking {
                        self.tls_done = true;
                        self.log(StubEvent::StartTls);
                    }
                }
                Err(e) => {
                    self.log(StubEvent::TlsFailed(e));
                    break;
                }
            }
            self.framer.push(&plain);
        }
        self.conn.shutdown();
        if let Some(r) = lock(&self.shared.state).conns.get_mut(self.index) {
            r.open = false;
        }
        self.shared.changed.notify_all();
    }

    fn log(&self, event: StubEvent) {
        self.shared.log(self.index, event);
    }

    /// Blocks while the test paused this connection's reads; polls the stop
    /// flag so dropping the server never waits on a paused connection.
    fn wait_while_paused(&self) {
        let mut state = lock(&self.shared.state);
        while state.conns.get(self.index).is_some_and(|r| r.paused)
            && !self.shared.stop.load(Ordering::SeqCst)
        {
            state = self
                .shared
                .changed
                .wait_timeout(state, Duration::from_millis(50))
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    fn send(&self, data: &str) -> Next {
        match self.conn.send(data.as_bytes()) {
            Ok(()) => Next::Continue,
            Err(_) => Next::Stop,
        }
    }

    fn stream_error(&self, condition: &str) {
        let _ = self.send(&format!(
            "<stream:error><{condition} xmlns='{NS_STREAMS}'/></stream:error></stream:stream>"
        ));
    }

    fn handle(&mut self, frame: Frame) -> Next {
        match frame {
            Frame::Header(raw) => self.open_stream(&raw),
            Frame::StreamEnd => {
                self.log(StubEvent::ClientClosedStream);
                let _ = self.send("</stream:stream>");
                Next::Stop
            }
            Frame::Element(raw) => match xml::root_name(&raw).as_deref() {
                Some("starttls") => self.starttls(),
                Some("auth") => self.auth(&raw),
                Some("iq" | "message" | "presence") => self.stanza(raw),
                _ => {
                    // Lenient on purpose: a test can assert on what arrived
                    // (e.g. XEP-0198 `<enable/>`) instead of losing the stream.
                    self.log(StubEvent::OtherElement(raw));
                    Next::Continue
                }
            },
        }
    }

    fn open_stream(&mut self, raw: &str) -> Next {
        self.streams += 1;
        self.log(StubEvent::StreamOpened {
            to: xml::attr(raw, "to"),
            version: xml::attr(raw, "version"),
        });
        let options = &self.shared.options;
        let header = format!(
            "<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}' \
             id='stub-{}-{}' from='{}' version='1.0' xml:lang='en'>",
            self.index, self.streams, options.domain
        );
        if options.host_unknown {
            let _ = self.send(&header);
            self.stream_error("host-unknown");
            return Next::Stop;
        }
        let mechanisms =
            format!("<mechanisms xmlns='{NS_SASL}'><mechanism>PLAIN</mechanism></mechanisms>");
        // STARTTLS is offered only before authentication (RFC 6120 §5.3.1).
        let features = match (options.tls, self.tls_done, &self.user) {
            (_, _, Some(_)) => format!("<bind xmlns='{NS_BIND}'/>"),
            (Some(mode), false, None) => {
                let required = if mode == TlsMode::Required {
                    "<required/>"
                } else {
                    ""
                };
                let sasl = if mode == TlsMode::Required {
                    ""
                } else {
                    &mechanisms
                };
                format!("<starttls xmlns='{NS_TLS}'>{required}</starttls>{sasl}")
            }
            (_, _, None) => mechanisms,
        };
        self.send(&format!(
            "{header}<stream:features>{features}</stream:features>"
        ))
    }

    fn starttls(&mut self) -> Next {
        let config = match (&self.shared.tls_config, self.tls_started) {
            (Some(config), false) => Arc::clone(config),
            _ => {
                let _ = self.send(&format!("<failure xmlns='{NS_TLS}'/></stream:stream>"));
                return Next::Stop;
            }
        };
        if let Next::Stop = self.send(&format!("<proceed xmlns='{NS_TLS}'/>")) {
            return Next::Stop;
        }
        // Plaintext sent after <starttls/> must not be read as part of the
        // new stream (RFC 6120 §5.4.3.3).
        self.framer.clear();
        match self.conn.start_tls(config) {
            Ok(()) => {
                self.tls_started = true;
                Next::Continue
            }
            Err(e) => {
                self.log(StubEvent::TlsFailed(e));
                Next::Stop
            }
        }
    }

    fn auth(&mut self, raw: &str) -> Next {
        let tls_missing = self.shared.options.tls == Some(TlsMode::Required) && !self.tls_done;
        let user = xml::element_text(raw, "auth")
            .and_then(|text| xmpp::base64_decode(&text))
            .and_then(|bytes| {
                let mut fields = bytes.split(|&b| b == 0);
                let _authzid = fields.next()?;
                String::from_utf8(fields.next()?.to_vec()).ok()
            });
        match user {
            Some(user)
                if !tls_missing
                    && xml::attr(raw, "mechanism").as_deref() == Some("PLAIN")
                    && !user.is_empty() =>
            {
                self.log(StubEvent::Authenticated(user.clone()));
                self.user = Some(user);
                self.send(&format!("<success xmlns='{NS_SASL}'/>"))
            }
            _ => {
                let condition = if tls_missing {
                    "encryption-required"
                } else {
                    "malformed-request"
                };
                self.send(&format!(
                    "<failure xmlns='{NS_SASL}'><{condition}/></failure>"
                ))
            }
        }
    }

    fn stanza(&mut self, raw: String) -> Next {
        self.log(StubEvent::StanzaReceived(raw.clone()));
        let domain = self.shared.options.domain.clone();
        let name = xml::root_name(&raw);
        let kind = xml::attr(&raw, "type");
        let id = xml::attr(&raw, "id").unwrap_or_default();
        let to = xml::attr(&raw, "to");
        if name.as_deref() == Some("iq")
            && kind.as_deref() == Some("set")
            && xml::has_element(&raw, "bind")
        {
            return self.bind(&raw, &id);
        }
        let Some(jid) = self.jid.clone() else {
            self.stream_error("not-authorized");
            return Next::Stop;
        };
        match to {
            Some(to) if to.contains('@') => {
                self.shared.route(&to, &with_from(&raw, &jid));
                Next::Continue
            }
            to if name.as_deref() == Some("iq")
                && matches!(kind.as_deref(), Some("get" | "set"))
                && to.as_deref().is_none_or(|t| t == domain) =>
            {
                self.send(&format!(
                    "<iq type='result' id='{}' from='{domain}' to='{}'/>",
                    xml::escape(&id),
                    xml::escape(&jid)
                ))
            }
            _ => Next::Continue,
        }
    }

    fn bind(&mut self, raw: &str, id: &str) -> Next {
        let Some(user) = self.user.clone() else {
            self.stream_error("not-authorized");
            return Next::Stop;
        };
        let resource = xml::element_text(raw, "resource")
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| format!("stub{}", self.index));
        let jid = format!("{user}@{}/{resource}", self.shared.options.domain);
        if let Some(r) = lock(&self.shared.state).conns.get_mut(self.index) {
            r.jid = Some(jid.clone());
        }
        self.jid = Some(jid.clone());
        self.log(StubEvent::Bound(jid.clone()));
        self.send(&format!(
            "<iq type='result' id='{}'><bind xmlns='{NS_BIND}'><jid>{}</jid></bind></iq>",
            xml::escape(id),
            xml::escape(&jid)
        ))
    }
}

/// Writes the endless repetition of `chunk` from stream position `from` up
/// to `to` (positions count bytes of that repetition) on a socket with a
/// write timeout; returns the position reached, short of `to` when a write
/// timed out without progress.
pub(super) fn write_repeated(
    sock: &mut TcpStream,
    chunk: &[u8],
    from: usize,
    to: usize,
) -> Result<usize, String> {
    if chunk.is_empty() {
        return Err("flood with an empty chunk".into());
    }
    let mut at = from;
    while at < to {
        let offset = at % chunk.len();
        let end = chunk.len().min(offset + (to - at));
        match sock.write(&chunk[offset..end]) {
            Ok(0) => return Err(format!("flood wrote nothing at {at}")),
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(at)
            }
            Err(e) => return Err(format!("flood write failed at {at}: {e}")),
        }
    }
    Ok(at)
}

/// Stamps the sender's full JID on a routed stanza, as servers do
/// (RFC 6120 §8.1.2.1), unless the client already set `from`.
fn with_from(raw: &str, from: &str) -> String {
    if xml::attr(raw, "from").is_some() {
        return raw.to_string();
    }
    let name_end = raw
        .char_indices()
        .skip(1)
        .find(|&(_, c)| c.is_whitespace() || c == '>' || c == '/')
        .map_or(raw.len(), |(i, _)| i);
    format!(
        "{} from='{}'{}",
        &raw[..name_end],
        xml::escape(from),
        &raw[name_end..]
    )
}
