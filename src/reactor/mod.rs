//! The one mio loop. It alone owns sockets, the poll, the timing wheel and
//! the connection slab, and it alone reads the clock; the protocol cores it
//! drives see bytes and `now`.
//!
//! Each wake-up: accept (paused at the connection limit), drive every
//! connection that had an event (bounded reads each; leftovers go on the
//! `again` list), fire due timers, service DNS. The poll timeout is the
//! earliest of the wheel's next deadline and the resolver's.

mod bosh;
mod conn;
mod io;
mod link;
mod settings;
mod token;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::{TcpListener, UdpSocket};
use mio::{Events, Interest, Poll, Registry, Waker};
use slab::Slab;

use crate::config::Config;
use bosh::BoshEntry;
use conn::{Conn, Outcome, Shared};
use link::Readiness;
pub use settings::Settings;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use switchboard_core::dns;
use switchboard_core::wheel::Wheel;
use token::{Key, Owner, DNS, LISTENER, SIGNALS, WAKER};

/// Size of the one read buffer all sockets share.
const SCRATCH_BYTES: usize = 16 * 1024;
/// Wheel resolution and size: 10 ms ticks, 4096 slots (about 41 s a turn).
const WHEEL_TICK: Duration = Duration::from_millis(10);
const WHEEL_SLOTS: usize = 4096;
/// Connections accepted per wake-up before others get their turn.
const ACCEPT_BUDGET: usize = 256;
/// DNS datagrams read per wake-up.
const DNS_BUDGET: usize = 64;

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

/// The DNS side of the loop: the resolver core, its UDP socket, and which
/// connection asked each query.
pub struct DnsClient {
    resolver: dns::Resolver,
    socket: Option<UdpSocket>,
    queries: HashMap<dns::QueryId, Owner>,
}

impl DnsClient {
    fn query(&mut self, owner: Owner, now: Instant, name: &str, kind: dns::Kind) {
        let id = self.resolver.query(now, name, kind);
        self.queries.insert(id, owner);
    }
}

/// What a wheel entry (or an `again` entry) is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    Conn(Key),
    Bosh(Key),
}

pub struct Server {
    poll: Poll,
    listener: TcpListener,
    local_addr: SocketAddr,
    conns: Slab<Conn>,
    /// BOSH sessions, which outlive the connections that carry them.
    boshes: Slab<BoshEntry>,
    sids: HashMap<String, Key>,
    wheel: Wheel<Timer>,
    shared: Shared,
    next_generation: u32,
    sessions_started: u64,
    /// The listener may hold connections not accepted yet (edge-triggered:
    /// set by its event, cleared only by `WouldBlock`).
    accept_pending: bool,
    again: Vec<Timer>,
    stop: Arc<AtomicBool>,
    drain: Arc<AtomicBool>,
    /// Set once draining: when to stop even if clients are still there.
    drain_deadline: Option<Instant>,
    signals: Option<Signals>,
    waker: Arc<Waker>,
}

/// Run a server from a configuration until SIGTERM or SIGINT, which drain
/// it: every client is told `system-shutdown` before the process ends.
pub fn run(config: &Config) -> Result<(), String> {
    let mut server = Server::bind(config)?;
    server.stop_on_signals()?;
    info!("listening on {}", server.local_addr());
    server.run().map_err(|e| format!("reactor failed: {e}"))
}

impl Server {
    /// Bind the listener and the DNS socket; nothing is served until
    /// [`Server::run`].
    pub fn bind(config: &Config) -> Result<Server, String> {
        let settings = Settings::from_config(config)?;
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
        let dns = open_dns(config, &registry)?;
        let now = Instant::now();
        Ok(Server {
            poll,
            listener,
            local_addr,
            conns: Slab::new(),
            boshes: Slab::new(),
            sids: HashMap::new(),
            wheel: Wheel::new(now, WHEEL_TICK, WHEEL_SLOTS),
            shared: Shared {
                registry,
                settings,
                dns,
                scratch: vec![0; SCRATCH_BYTES].into_boxed_slice(),
                srv_weights: dns::FastRng(
                    switchboard_core::ids::seed().map_err(|e| e.to_string())?,
                ),
                now,
            },
            next_generation: 0,
            sessions_started: 0,
            accept_pending: false,
            again: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            drain: Arc::new(AtomicBool::new(false)),
            drain_deadline: None,
            signals: None,
            waker,
        })
    }

    /// Drain on SIGTERM and SIGINT (for the process, not for servers that
    /// tests run side by side).
    pub fn stop_on_signals(&mut self) -> Result<(), String> {
        let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(|e| format!("signals: {e}"))?;
        self.shared
            .registry
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(|e| format!("poll: {e}"))?;
        self.signals = Some(signals);
        Ok(())
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
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
                if self.conns.is_empty() || Instant::now() >= deadline {
                    info!("stopped");
                    break;
                }
            }
            let now = Instant::now();
            let mut timeout = self.poll_timeout(now);
            if let Some(deadline) = self.drain_deadline {
                let left = deadline.saturating_duration_since(now);
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            self.shared.now = now;
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_pending = true,
                    DNS => self.read_dns(),
                    WAKER => {}
                    SIGNALS => {
                        let caught = self.signals.as_mut().map(|s| s.pending().next());
                        if let Some(Some(signal)) = caught {
                            info!("signal {signal}: draining");
                            self.drain.store(true, Ordering::SeqCst);
                        }
                    }
                    token => {
                        let Some(owner) = Owner::from_token(token) else {
                            continue;
                        };
                        // Errors and hang-ups surface through the next read.
                        let closed = event.is_read_closed() || event.is_error();
                        let ready = Readiness {
                            readable: event.is_readable() || closed,
                            writable: event.is_writable()
                                || event.is_write_closed()
                                || event.is_error(),
                            closed,
                        };
                        self.socket_ready(owner, ready);
                    }
                }
            }
            if self.accept_pending {
                self.accept();
            }
            for timer in std::mem::take(&mut self.again) {
                self.drive_owner(timer);
            }
            self.fire_timers();
            self.service_dns();
        }
        Ok(())
    }

    /// Stop accepting; every session hears `system-shutdown` (BOSH
    /// XEP-0124 §17.2, WebSocket RFC 6120 §4.9.3.22); server streams are
    /// dropped without a close so that they stay resumable.
    fn begin_drain(&mut self) {
        let now = Instant::now();
        self.shared.now = now;
        self.drain_deadline = Some(now + DRAIN_GRACE);
        let _ = self.shared.registry.deregister(&mut self.listener);
        self.accept_pending = false;
        let boshes: Vec<Key> = self.boshes.iter().map(|(_, b)| b.key).collect();
        for key in boshes {
            if let Some(entry) = live_bosh(&mut self.boshes, key) {
                entry.core.shut_down();
            }
            self.drive_bosh(key);
        }
        let conns: Vec<Key> = self.conns.iter().map(|(_, c)| c.key).collect();
        for key in conns {
            if let Some(conn) = live(&mut self.conns, key) {
                conn.shut_down();
            }
            self.drive(key);
        }
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.again.is_empty()
            || (self.accept_pending && self.conns.len() < self.shared.settings.max_connections)
        {
            return Some(Duration::ZERO);
        }
        let next = match (
            self.wheel.next_deadline(),
            self.shared.dns.resolver.poll_timeout(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        next.map(|deadline| deadline.saturating_duration_since(now))
    }

    fn accept(&mut self) {
        for _ in 0..ACCEPT_BUDGET {
            if self.conns.len() >= self.shared.settings.max_connections {
                debug!(
                    "connection limit {} reached: accept paused",
                    self.shared.settings.max_connections
                );
                return;
            }
            let (stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.accept_pending = false;
                    return;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors and the like: retrying at once would
                    // spin, so wait for the listener's next event.
                    warn!("accept failed: {e}");
                    self.accept_pending = false;
                    return;
                }
            };
            let _ = stream.set_nodelay(true);
            let entry = self.conns.vacant_entry();
            self.next_generation = self.next_generation.wrapping_add(1);
            let key = Key::new(entry.key(), self.next_generation);
            self.sessions_started += 1;
            let mut conn = Conn::new(key, self.sessions_started, stream, peer, &self.shared);
            if let Err(e) = conn.register(&self.shared.registry) {
                warn!("cannot register connection from {peer}: {e}");
                continue;
            }
            debug!("accepted {peer}");
            entry.insert(conn);
            self.rearm(Timer::Conn(key));
        }
    }

    /// Remember a socket's readiness and drive what owns it.
    fn socket_ready(&mut self, owner: Owner, ready: Readiness) {
        match owner {
            Owner::Client(key) | Owner::WsBackend(key) => {
                let Some(conn) = live(&mut self.conns, key) else {
                    return;
                };
                if matches!(owner, Owner::Client(_)) {
                    conn.mark_client_ready(ready);
                } else {
                    conn.mark_backend_ready(ready);
                }
                self.drive(key);
            }
            Owner::BoshBackend(key, stream) => {
                let Some(entry) = live_bosh(&mut self.boshes, key) else {
                    return;
                };
                entry.mark_ready(stream, ready);
                self.drive_bosh(key);
            }
        }
    }

    fn drive_owner(&mut self, timer: Timer) {
        match timer {
            Timer::Conn(key) => self.drive(key),
            Timer::Bosh(key) => self.drive_bosh(key),
        }
    }

    /// Drive one connection and settle what it asked for.
    fn drive(&mut self, key: Key) {
        let Some(conn) = live(&mut self.conns, key) else {
            return;
        };
        let outcome = conn.drive(&mut self.shared);
        let request = conn.take_bosh_request();
        match outcome {
            Outcome::Keep => self.rearm(Timer::Conn(key)),
            Outcome::Again => {
                self.again.push(Timer::Conn(key));
                self.rearm(Timer::Conn(key));
            }
            Outcome::Finish(reason) => return self.finish(key, &reason),
        }
        if let Some(body) = request {
            self.bosh_request(key, &body);
        }
    }

    /// A BOSH `<body/>` read from connection `conn`: create a session or
    /// hand it to its session (XEP-0124 §7, §8). A request naming an
    /// unknown sid never creates one.
    fn bosh_request(&mut self, conn: Key, raw: &[u8]) {
        let now = self.shared.now;
        let handle = conn.to_u64();
        log::trace!("bosh request: {}", String::from_utf8_lossy(raw));
        let body = match switchboard_core::bosh::parse_body(raw, self.shared.settings.xml_limits())
        {
            Ok(body) => body,
            Err(condition) => {
                return self.deliver(conn, switchboard_core::bosh::terminate_response(condition))
            }
        };
        let key = match body.sid.as_deref() {
            None => {
                let Ok(sid) = switchboard_core::ids::sid() else {
                    let response = switchboard_core::bosh::terminate_response(
                        switchboard_core::bosh::Condition::InternalServerError,
                    );
                    return self.deliver(conn, response);
                };
                let settings = self.shared.settings.bosh.clone();
                let core = match switchboard_core::bosh::Session::create(
                    now,
                    settings,
                    sid.clone(),
                    handle,
                    &body,
                ) {
                    Ok(core) => core,
                    Err(response) => return self.deliver(conn, response),
                };
                let entry = self.boshes.vacant_entry();
                self.next_generation = self.next_generation.wrapping_add(1);
                let key = Key::new(entry.key(), self.next_generation);
                self.sessions_started += 1;
                info!(
                    "session {} start: bosh {sid} to {} (ua {})",
                    self.sessions_started,
                    body.to.as_deref().unwrap_or(""),
                    body.ua.as_deref().unwrap_or("-")
                );
                entry.insert(BoshEntry::new(
                    key,
                    sid.clone(),
                    self.sessions_started,
                    core,
                    now,
                ));
                self.sids.insert(sid, key);
                key
            }
            Some(sid) => {
                let found = self.sids.get(sid).copied();
                let Some(entry) = found.and_then(|key| live_bosh(&mut self.boshes, key)) else {
                    let response = switchboard_core::bosh::terminate_response(
                        switchboard_core::bosh::Condition::ItemNotFound,
                    );
                    return self.deliver(conn, response);
                };
                entry.core.handle_request(now, handle, &body, raw);
                entry.key
            }
        };
        if let Some(c) = live(&mut self.conns, conn) {
            c.set_awaiting(Some(key));
        }
        self.drive_bosh(key);
    }

    /// Write a BOSH response on the connection whose request it answers.
    /// The connection is driven from the work queue, never from here: a
    /// response may free the next pipelined request, whose answer would
    /// come back here, one stack level per request a peer sends.
    fn deliver(&mut self, conn: Key, response: switchboard_core::bosh::Response) {
        if let Some(c) = live(&mut self.conns, conn) {
            c.deliver_bosh(response, &mut self.shared);
            self.again.push(Timer::Conn(conn));
        }
    }

    fn drive_bosh(&mut self, key: Key) {
        let Some(entry) = live_bosh(&mut self.boshes, key) else {
            return;
        };
        let outcome = entry.drive(&mut self.shared);
        let mut responses = Vec::new();
        while let Some(response) = entry.core.poll_response() {
            responses.push(response);
        }
        for (handle, response) in responses {
            self.deliver(Key::from_u64(handle), response);
        }
        match outcome {
            Outcome::Keep => self.rearm(Timer::Bosh(key)),
            Outcome::Again => {
                self.again.push(Timer::Bosh(key));
                self.rearm(Timer::Bosh(key));
            }
            Outcome::Finish(reason) => self.finish_bosh(key, &reason),
        }
    }

    /// Keep an owner's one wheel entry at its earliest deadline.
    fn rearm(&mut self, timer: Timer) {
        let slot = match timer {
            Timer::Conn(key) => {
                live(&mut self.conns, key).map(|c| (c.next_deadline(), &mut c.timer))
            }
            Timer::Bosh(key) => {
                live_bosh(&mut self.boshes, key).map(|b| (b.next_deadline(), &mut b.timer))
            }
        };
        let Some((wanted, current)) = slot else {
            return;
        };
        if current.map(|(_, at)| at) == wanted {
            return;
        }
        if let Some((id, _)) = current.take() {
            self.wheel.cancel(id);
        }
        if let Some(at) = wanted {
            *current = Some((self.wheel.insert(at, timer), at));
        }
    }

    fn fire_timers(&mut self) {
        let now = self.shared.now;
        let mut expired = Vec::new();
        self.wheel.advance(now, &mut expired);
        for timer in expired {
            match timer {
                Timer::Conn(key) => {
                    let Some(conn) = live(&mut self.conns, key) else {
                        continue;
                    };
                    conn.timer = None;
                    match conn.handle_timeout(&mut self.shared) {
                        Some(reason) => self.finish(key, &reason),
                        None => self.drive(key),
                    }
                }
                Timer::Bosh(key) => {
                    let Some(entry) = live_bosh(&mut self.boshes, key) else {
                        continue;
                    };
                    entry.timer = None;
                    entry.handle_timeout(&mut self.shared);
                    self.drive_bosh(key);
                }
            }
        }
    }

    fn finish(&mut self, key: Key, reason: &str) {
        let now = self.shared.now;
        let Some(mut conn) = self.conns.try_remove(key.index as usize) else {
            return;
        };
        conn.log_end(reason, now);
        conn.deregister(&self.shared.registry);
        if let Some((id, _)) = conn.timer.take() {
            self.wheel.cancel(id);
        }
        // A held BOSH request is gone with its connection (a page reload).
        if let Some(session) = conn.awaiting() {
            if let Some(entry) = live_bosh(&mut self.boshes, session) {
                entry.core.request_gone(key.to_u64());
                self.drive_bosh(session);
            }
        }
    }

    fn finish_bosh(&mut self, key: Key, reason: &str) {
        let Some(mut entry) = self.boshes.try_remove(key.index as usize) else {
            return;
        };
        entry.log_end(reason, self.shared.now);
        entry.deregister(&self.shared.registry);
        self.sids.remove(&entry.sid);
        if let Some((id, _)) = entry.timer.take() {
            self.wheel.cancel(id);
        }
    }

    fn read_dns(&mut self) {
        let now = self.shared.now;
        let Some(socket) = self.shared.dns.socket.as_ref() else {
            return;
        };
        for _ in 0..DNS_BUDGET {
            match socket.recv_from(&mut self.shared.scratch) {
                Ok((n, from)) => {
                    self.shared
                        .dns
                        .resolver
                        .handle_datagram(now, from, &self.shared.scratch[..n])
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    }

    /// Send queued queries, apply timeouts and hand answers to their
    /// connections (an answer may start another query: loop, bounded).
    fn service_dns(&mut self) {
        let now = self.shared.now;
        self.shared.dns.resolver.handle_timeout(now);
        for _ in 0..DNS_BUDGET {
            let mut progress = false;
            while let Some((server, datagram)) = self.shared.dns.resolver.poll_transmit() {
                progress = true;
                if let Some(socket) = self.shared.dns.socket.as_ref() {
                    if let Err(e) = socket.send_to(&datagram, server) {
                        debug!("dns send to {server} failed: {e}");
                    }
                }
            }
            while let Some((id, answer)) = self.shared.dns.resolver.poll_answer() {
                progress = true;
                match self.shared.dns.queries.remove(&id) {
                    Some(Owner::Client(key) | Owner::WsBackend(key)) => {
                        if let Some(conn) = live(&mut self.conns, key) {
                            conn.handle_dns_answer(answer, &mut self.shared);
                            self.drive(key);
                        }
                    }
                    Some(Owner::BoshBackend(key, stream)) => {
                        if let Some(entry) = live_bosh(&mut self.boshes, key) {
                            entry.handle_dns_answer(stream, answer, &mut self.shared);
                            self.drive_bosh(key);
                        }
                    }
                    None => {}
                }
            }
            if !progress {
                return;
            }
        }
    }
}

/// The BOSH session a key names, unless its slot was reused since.
fn live_bosh(boshes: &mut Slab<BoshEntry>, key: Key) -> Option<&mut BoshEntry> {
    boshes
        .get_mut(key.index as usize)
        .filter(|entry| entry.key.generation == key.generation)
}

/// The connection a key names, unless its slot was reused since.
fn live(conns: &mut Slab<Conn>, key: Key) -> Option<&mut Conn> {
    conns
        .get_mut(key.index as usize)
        .filter(|conn| conn.key.generation == key.generation)
}

fn open_dns(config: &Config, registry: &Registry) -> Result<DnsClient, String> {
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
    let resolver = dns::Resolver::new(dns::ResolverConfig {
        servers,
        timeout: config.dns.timeout,
        attempts: config.dns.attempts,
        max_cache_entries: config.dns.cache_entries,
    });
    Ok(DnsClient {
        resolver,
        socket,
        queries: HashMap::new(),
    })
}
