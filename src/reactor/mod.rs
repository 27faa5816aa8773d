//! The shell: one mio loop around the sans-IO [`Endpoint`]. It alone owns
//! sockets, the poll and the clock; the endpoint decides everything else.
//!
//! Each wake-up: remember the readiness the events report and queue their
//! sockets; accept (paused while the endpoint says so); give each queued
//! socket one turn (the endpoint's promised work, then write its output,
//! then a bounded number of reads, each followed by a write), queueing it
//! again at the back when its budget ran out; fire due timers. Commands
//! from the endpoint (connect, close, give a socket a turn, send a DNS
//! datagram) are carried out after each call into it. Nothing calls back
//! into the loop, so no peer controls the stack depth, and the queue makes
//! the turns fair.
//!
//! Readiness is edge-triggered and remembered: every socket is registered
//! once for reading and writing, and a flag stays set until an operation
//! reports `WouldBlock`.

mod io;
mod reload;
mod settings;
mod token;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Registry, Waker};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use switchboard_core::dns;
use switchboard_core::endpoint::{Command, Endpoint, SocketId};

use crate::config::Config;
use io::Io;
pub use settings::from_config as settings_from_config;
use token::{DNS, LISTENER, SIGNALS, WAKER};

/// Size of the one read buffer all sockets share.
const SCRATCH_BYTES: usize = 16 * 1024;
/// Connections accepted per wake-up before others get their turn.
const ACCEPT_BUDGET: usize = 256;
/// Reads per socket per turn before yielding to the others.
const READ_BUDGET: usize = 16;
/// DNS datagrams read per wake-up.
const DNS_BUDGET: usize = 64;
/// After a failed accept (out of descriptors), when to try again: soon
/// enough that queued clients get in once descriptors free up, late
/// enough not to spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// How long a draining server waits for its last words to reach clients.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Stops a running [`Server`] from another thread.
#[derive(Clone)]
pub struct Handle {
    stop: Arc<AtomicBool>,
    drain: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl Handle {
    /// Stop at once.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }

    /// Stop as on SIGTERM: tell every client, then stop.
    pub fn drain(&self) {
        self.drain.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }
}

/// One socket the shell holds for the endpoint, with its remembered
/// readiness.
struct Socket {
    generation: u32,
    stream: TcpStream,
    readable: bool,
    writable: bool,
    /// The peer shut its side (or the socket failed): read to the end.
    peer_closed: bool,
    /// End of file (or a failure) was reported to the endpoint.
    ended: bool,
    /// A backend connect in progress.
    connecting: bool,
    /// In the work queue.
    queued: bool,
}

pub struct Server {
    poll: Poll,
    registry: Registry,
    listener: TcpListener,
    local_addr: SocketAddr,
    endpoint: Endpoint,
    /// By socket slot index.
    sockets: Vec<Option<Socket>>,
    queue: VecDeque<SocketId>,
    dns: Option<UdpSocket>,
    scratch: Box<[u8]>,
    now: Instant,
    /// The listener may hold connections not accepted yet (edge-triggered:
    /// set by its event, cleared only by `WouldBlock`).
    accept_pending: bool,
    /// After a failed accept: not before this.
    accept_retry: Option<Instant>,
    stop: Arc<AtomicBool>,
    drain: Arc<AtomicBool>,
    /// Set once draining: when to stop even if clients are still there.
    drain_deadline: Option<Instant>,
    signals: Option<Signals>,
    /// The configuration file SIGHUP reads again, if the process has one.
    reload: Option<reload::Reload>,
    /// The address configured (not the one bound, which may be port 0's).
    listen: SocketAddr,
    waker: Arc<Waker>,
}

/// Run a server from a configuration until SIGTERM or SIGINT, which drain
/// it: every client is told `system-shutdown` before the process ends.
/// SIGHUP reads `path` again; SIGQUIT is ignored.
pub fn run(config: &Config, path: Option<&std::path::Path>) -> Result<(), String> {
    // The handlers go in before the port opens: a SIGTERM sent as soon as
    // the port answers must drain, not kill.
    let signals =
        Signals::new([SIGTERM, SIGINT, SIGHUP, SIGQUIT]).map_err(|e| format!("signals: {e}"))?;
    check_descriptors(config);
    let mut server = Server::bind(config)?;
    server.reload = path.map(reload::Reload::new);
    server.stop_on_signals(signals)?;
    info!("{}", server.describe());
    server.run().map_err(|e| format!("reactor failed: {e}"))
}

impl Server {
    /// Bind the listener and the DNS socket; nothing is served until
    /// [`Server::run`].
    pub fn bind(config: &Config) -> Result<Server, String> {
        let settings = settings::from_config(config)?;
        let poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
        let registry = poll
            .registry()
            .try_clone()
            .map_err(|e| format!("poll: {e}"))?;
        let mut listener = TcpListener::bind(config.server.listen)
            .map_err(|e| format!("cannot listen on {}: {e}", config.server.listen))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| format!("listener: {e}"))?;
        registry
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| format!("poll: {e}"))?;
        let waker = Arc::new(Waker::new(&registry, WAKER).map_err(|e| format!("poll: {e}"))?);
        let (dns, resolver) = open_dns(config, &registry)?;
        let now = Instant::now();
        settings.clock.set(SystemTime::now());
        let endpoint = Endpoint::new(settings, resolver, now).map_err(|e| e.to_string())?;
        Ok(Server {
            poll,
            registry,
            listener,
            local_addr,
            endpoint,
            sockets: Vec::new(),
            queue: VecDeque::new(),
            dns,
            scratch: vec![0; SCRATCH_BYTES].into_boxed_slice(),
            now,
            accept_pending: false,
            accept_retry: None,
            stop: Arc::new(AtomicBool::new(false)),
            drain: Arc::new(AtomicBool::new(false)),
            drain_deadline: None,
            signals: None,
            reload: None,
            listen: config.server.listen,
            waker,
        })
    }

    /// Drain on SIGTERM and SIGINT, read the configuration again on SIGHUP
    /// (for the process, not for servers that tests run side by side).
    pub fn stop_on_signals(&mut self, mut signals: Signals) -> Result<(), String> {
        self.registry
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(|e| format!("poll: {e}"))?;
        self.signals = Some(signals);
        Ok(())
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The start-up line: where clients connect and where domains lead.
    pub fn describe(&self) -> String {
        let settings = self.endpoint.settings();
        let addr = self.local_addr;
        let mut routes: Vec<String> = settings
            .routes
            .iter()
            .map(|(domain, addrs)| {
                let addrs: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
                format!("{domain} → {}", addrs.join(", "))
            })
            .collect();
        routes.sort();
        routes.push("other domains by DNS SRV".into());
        format!(
            "listening on {addr} (BOSH http://{addr}{}, WebSocket ws://{addr}{}); routes: {}",
            settings.bosh_path,
            settings.websocket_path,
            routes.join("; ")
        )
    }

    pub fn handle(&self) -> Handle {
        Handle {
            stop: self.stop.clone(),
            drain: self.drain.clone(),
            waker: self.waker.clone(),
        }
    }

    /// Serve until [`Handle::shutdown`], or until drained.
    pub fn run(&mut self) -> std::io::Result<()> {
        let mut events = Events::with_capacity(1024);
        while !self.stop.load(Ordering::SeqCst) {
            if self.drain.load(Ordering::SeqCst) && self.drain_deadline.is_none() {
                self.begin_drain();
            }
            if let Some(deadline) = self.drain_deadline {
                if self.endpoint.is_drained() || Instant::now() >= deadline {
                    info!("stopped");
                    break;
                }
            }
            let timeout = self.poll_timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.now = Instant::now();
            // Certificate dates are judged by this reading (rustls's clock).
            self.endpoint.settings().clock.set(SystemTime::now());
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_pending = true,
                    DNS => self.read_dns(),
                    WAKER => {}
                    SIGNALS => self.signals(),
                    token => {
                        // Errors and hang-ups surface through the next read.
                        let closed = event.is_read_closed() || event.is_error();
                        self.mark_ready(
                            token,
                            event.is_readable() || closed,
                            event.is_writable() || event.is_write_closed() || event.is_error(),
                            closed,
                        );
                    }
                }
            }
            if self.accept_pending && self.accept_retry.is_none_or(|at| self.now >= at) {
                self.accept();
            }
            for _ in 0..self.queue.len() {
                let Some(id) = self.queue.pop_front() else {
                    break;
                };
                if let Some(socket) = self.socket_mut(id) {
                    socket.queued = false;
                    self.turn(id);
                }
            }
            if self
                .endpoint
                .poll_timeout()
                .is_some_and(|at| at <= self.now)
            {
                self.endpoint.handle_timeout(self.now);
                self.run_commands();
            }
        }
        Ok(())
    }

    fn signals(&mut self) {
        let caught: Vec<i32> = match self.signals.as_mut() {
            Some(signals) => signals.pending().collect(),
            None => return,
        };
        for signal in caught {
            match signal {
                SIGHUP => self.reload(),
                SIGQUIT => info!("SIGQUIT ignored: SIGTERM or SIGINT stop switchboard"),
                _ => {
                    info!("signal {signal}: draining");
                    self.drain.store(true, Ordering::SeqCst);
                }
            }
        }
    }

    /// SIGHUP: the configuration file again, for new sessions; refused
    /// whole, with the reason, when it does not check out.
    fn reload(&mut self) {
        let Some(reload) = self.reload.as_mut() else {
            info!("SIGHUP: no configuration file to read again (built-in defaults)");
            return;
        };
        let path = reload.path().display().to_string();
        let read = reload.read().and_then(|(config, text, changed)| {
            let settings = settings::from_config(&config).map_err(|e| e.to_string())?;
            Ok((config, text, changed, settings))
        });
        let (config, text, changed, settings) = match read {
            Ok(read) => read,
            Err(why) => {
                log::error!("SIGHUP: {path}: {why}; the running configuration stays");
                return;
            }
        };
        reload.applied(text);
        if config.server.listen != self.listen {
            warn!(
                "SIGHUP: server.listen cannot change without a restart: still listening on {}",
                self.local_addr
            );
        }
        if changed
            .iter()
            .any(|key| key == "dns" || key.starts_with("dns."))
        {
            match open_dns(&config, &self.registry) {
                Ok((socket, resolver)) => {
                    if let Some(mut old) = self.dns.take() {
                        let _ = self.registry.deregister(&mut old);
                    }
                    self.dns = socket;
                    self.endpoint.reconfigure_dns(resolver);
                }
                Err(e) => warn!("SIGHUP: dns: {e}; the resolver stays as it was"),
            }
        }
        // The new TLS configs read a clock of their own: set it now, not at
        // the next wake-up.
        settings.clock.set(SystemTime::now());
        self.endpoint.reload(settings);
        let changed = if changed.is_empty() {
            "nothing".to_string()
        } else {
            changed.join(", ")
        };
        info!("SIGHUP: {path} read again; changed for new sessions: {changed}");
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        let accept_now = self.accept_pending
            && self.endpoint.may_accept()
            && self.accept_retry.is_none_or(|at| now >= at);
        if !self.queue.is_empty() || accept_now {
            return Some(Duration::ZERO);
        }
        let retry = self.accept_retry.filter(|_| self.accept_pending);
        [self.endpoint.poll_timeout(), retry, self.drain_deadline]
            .into_iter()
            .flatten()
            .min()
            .map(|deadline| deadline.saturating_duration_since(now))
    }

    fn begin_drain(&mut self) {
        self.now = Instant::now();
        self.drain_deadline = Some(self.now + DRAIN_GRACE);
        let _ = self.registry.deregister(&mut self.listener);
        self.accept_pending = false;
        self.endpoint.begin_drain(self.now);
        self.run_commands();
    }

    fn accept(&mut self) {
        for _ in 0..ACCEPT_BUDGET {
            if !self.endpoint.may_accept() {
                return;
            }
            let (mut stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.accept_pending = false;
                    self.accept_retry = None;
                    return;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors and the like: the queued clients
                    // stay queued, and the next try is on a timer, not on
                    // the next client's arrival.
                    warn!("accept failed: {e}");
                    self.accept_retry = Some(self.now + ACCEPT_RETRY);
                    return;
                }
            };
            self.accept_retry = None;
            let _ = stream.set_nodelay(true);
            let id = self.endpoint.handle_accepted(self.now, peer);
            if let Err(e) = self.registry.register(
                &mut stream,
                token::token(id),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                warn!("cannot register connection from {peer}: {e}");
                self.endpoint.handle_peer_closed(self.now, id);
            } else {
                self.insert(id, stream, false);
            }
            self.run_commands();
        }
    }

    fn insert(&mut self, id: SocketId, stream: TcpStream, connecting: bool) {
        let index = id.index();
        if self.sockets.len() <= index {
            self.sockets.resize_with(index + 1, || None);
        }
        self.sockets[index] = Some(Socket {
            generation: id.generation(),
            stream,
            readable: false,
            writable: false,
            peer_closed: false,
            ended: false,
            connecting,
            queued: false,
        });
    }

    fn socket_mut(&mut self, id: SocketId) -> Option<&mut Socket> {
        socket_in(&mut self.sockets, id)
    }

    /// Remember a socket's readiness and queue it.
    fn mark_ready(&mut self, token: mio::Token, readable: bool, writable: bool, closed: bool) {
        let Some((index, carried)) = token::parts(token) else {
            return;
        };
        let Some(socket) = self
            .sockets
            .get_mut(index)
            .and_then(Option::as_mut)
            .filter(|s| token::same_generation(s.generation, carried))
        else {
            return;
        };
        socket.readable |= readable;
        socket.writable |= writable;
        socket.peer_closed |= closed;
        if !socket.queued {
            socket.queued = true;
            self.queue
                .push_back(SocketId::from_parts(index, socket.generation));
        }
    }

    fn enqueue(&mut self, id: SocketId) {
        if let Some(socket) = self.socket_mut(id) {
            if !socket.queued {
                socket.queued = true;
                self.queue.push_back(id);
            }
        }
    }

    /// One socket's turn: promised work, a finished connect, writes, then
    /// a bounded number of reads.
    fn turn(&mut self, id: SocketId) {
        let now = self.now;
        self.endpoint.handle_turn(now, id);
        self.run_commands();
        if !self.check_connected(id) {
            return;
        }
        self.flush(id);
        for _ in 0..READ_BUDGET {
            let Some(socket) = socket_in(&mut self.sockets, id) else {
                return;
            };
            if !socket.readable || socket.ended || !self.endpoint.wants_read(id) {
                return;
            }
            match io::read(&mut socket.stream, &mut self.scratch) {
                Io::Progress(n) => {
                    // A read that did not fill the buffer drained the
                    // socket: new data brings a new edge, so no second read
                    // is needed to see `WouldBlock`. Not when the peer
                    // closed: its end of file must still be read.
                    if n < SCRATCH_BYTES && !socket.peer_closed {
                        socket.readable = false;
                    }
                    self.endpoint.handle_read(now, id, &self.scratch[..n]);
                    self.run_commands();
                    self.flush(id);
                }
                Io::WouldBlock => socket.readable = false,
                Io::Closed | Io::Failed(_) => {
                    socket.readable = false;
                    socket.ended = true;
                    self.endpoint.handle_peer_closed(now, id);
                    self.run_commands();
                    return;
                }
            }
        }
        // The budget ran out with data left: after the others.
        if self.socket_mut(id).is_some_and(|s| s.readable && !s.ended) {
            self.enqueue(id);
        }
    }

    /// Whether the socket is connected; reports a connect that finished.
    fn check_connected(&mut self, id: SocketId) -> bool {
        let now = self.now;
        let Some(socket) = self.socket_mut(id) else {
            return false;
        };
        if !socket.connecting {
            return true;
        }
        if !socket.writable && !socket.readable {
            return false;
        }
        // mio: a writable event, then `take_error` and `peer_addr`.
        let result = match socket.stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(e.to_string()),
            Ok(None) => match socket.stream.peer_addr() {
                Ok(peer) => Ok(peer),
                Err(e) if e.kind() == std::io::ErrorKind::NotConnected => {
                    socket.writable = false;
                    socket.readable = false;
                    return false;
                }
                Err(e) => Err(e.to_string()),
            },
        };
        match result {
            Ok(peer) => {
                socket.connecting = false;
                let _ = socket.stream.set_nodelay(true);
                self.endpoint.handle_connected(now, id, peer);
                self.run_commands();
                self.socket_mut(id).is_some()
            }
            Err(why) => {
                self.endpoint
                    .handle_connect_failed(now, id, &describe(&why));
                self.run_commands();
                false
            }
        }
    }

    /// Write the endpoint's output for the socket while it takes it.
    fn flush(&mut self, id: SocketId) {
        let now = self.now;
        loop {
            let Some(socket) = socket_in(&mut self.sockets, id) else {
                return;
            };
            let output = self.endpoint.output(id);
            if !socket.writable || socket.ended || socket.connecting || output.is_empty() {
                return;
            }
            match io::write_all_possible(&mut socket.stream, output) {
                Ok(0) => {
                    socket.writable = false;
                    return;
                }
                Ok(n) => {
                    if n < output.len() {
                        socket.writable = false;
                    }
                    self.endpoint.handle_written(now, id, n);
                    self.run_commands();
                }
                Err(_) => {
                    socket.ended = true;
                    self.endpoint.handle_peer_closed(now, id);
                    self.run_commands();
                    return;
                }
            }
        }
    }

    /// Carry out what the endpoint asked for.
    fn run_commands(&mut self) {
        while let Some(command) = self.endpoint.poll_command() {
            match command {
                Command::Connect { id, addr } => self.connect(id, addr),
                Command::Close(id) => {
                    if let Some(slot) = self.sockets.get_mut(id.index()) {
                        if slot
                            .as_ref()
                            .is_some_and(|s| s.generation == id.generation())
                        {
                            if let Some(mut socket) = slot.take() {
                                let _ = self.registry.deregister(&mut socket.stream);
                            }
                        }
                    }
                }
                Command::Turn(id) => self.enqueue(id),
                Command::SendDatagram { to, bytes } => {
                    if let Some(socket) = self.dns.as_ref() {
                        if let Err(e) = socket.send_to(&bytes, to) {
                            debug!("dns send to {to} failed: {e}");
                        }
                    }
                }
            }
        }
    }

    fn connect(&mut self, id: SocketId, addr: SocketAddr) {
        let registered = TcpStream::connect(addr).and_then(|mut stream| {
            self.registry
                .register(
                    &mut stream,
                    token::token(id),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .map(|()| stream)
        });
        match registered {
            Ok(stream) => self.insert(id, stream, true),
            Err(e) => self
                .endpoint
                .handle_connect_failed(self.now, id, &describe(&e.to_string())),
        }
    }

    fn read_dns(&mut self) {
        let Some(socket) = self.dns.as_ref() else {
            return;
        };
        for _ in 0..DNS_BUDGET {
            match socket.recv_from(&mut self.scratch) {
                Ok((n, from)) => {
                    self.endpoint
                        .handle_datagram(self.now, from, &self.scratch[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        self.run_commands();
    }
}

/// The socket a handle names, unless its slot was reused since.
fn socket_in(sockets: &mut [Option<Socket>], id: SocketId) -> Option<&mut Socket> {
    sockets
        .get_mut(id.index())
        .and_then(Option::as_mut)
        .filter(|s| s.generation == id.generation())
}

/// Descriptors the process holds besides its clients' and backends': the
/// listener, the poll, the waker, signals, DNS, the standard streams.
const FIXED_DESCRIPTORS: u64 = 32;

/// Raise the soft descriptor limit to the hard one, and say at start when
/// it still cannot hold the configured connections and sessions with their
/// backend sockets, and how many it can.
fn check_descriptors(config: &Config) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read or write the struct given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    let soft = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
            info!("descriptor limit raised from {soft} to {}", limit.rlim_max);
        }
    }
    let have = limit.rlim_cur;
    // Every session holds a backend socket beside its client connections.
    let need = config.server.max_connections as u64
        + config.server.max_sessions as u64
        + FIXED_DESCRIPTORS;
    if have < need {
        let room = have.saturating_sub(FIXED_DESCRIPTORS);
        warn!(
            "the descriptor limit is {have}: server.max_connections ({}) and server.max_sessions ({}) need about {need} with their backend sockets; this limit holds about {} WebSocket sessions (2 descriptors each) or {} BOSH sessions (up to 3); raise it (ulimit -n, systemd LimitNOFILE=) or lower the limits",
            config.server.max_connections,
            config.server.max_sessions,
            room / 2,
            room / 3
        );
    }
}

/// An OS error as a log line says it: "connection refused", without the
/// errno suffix.
fn describe(error: &str) -> String {
    let text = error.split(" (os error").next().unwrap_or(error);
    text.to_lowercase()
}

fn open_dns(
    config: &Config,
    registry: &Registry,
) -> Result<(Option<UdpSocket>, dns::ResolverConfig), String> {
    let servers = if config.dns.servers.is_empty() {
        crate::dns_system::servers().unwrap_or_else(|e| {
            warn!("no DNS servers from /etc/resolv.conf ({e}): only static routes will work");
            Vec::new()
        })
    } else {
        config.dns.servers.clone()
    };
    let socket = match servers.first() {
        None => None,
        Some(first) => {
            let local: SocketAddr = if first.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let mut socket = UdpSocket::bind(local).map_err(|e| format!("dns socket: {e}"))?;
            registry
                .register(&mut socket, DNS, Interest::READABLE)
                .map_err(|e| format!("poll: {e}"))?;
            Some(socket)
        }
    };
    let resolver = dns::ResolverConfig {
        servers,
        timeout: config.dns.timeout,
        attempts: config.dns.attempts,
        max_cache_entries: config.dns.cache_entries,
    };
    Ok((socket, resolver))
}
