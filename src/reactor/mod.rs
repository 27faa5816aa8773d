//! The one mio loop. It alone owns sockets, the poll, the timing wheel and
//! the connection slab, and it alone reads the clock; the protocol cores it
//! drives see bytes and `now`.
//!
//! Each wake-up: accept (paused at the connection limit), drive every
//! connection that had an event (bounded reads each; leftovers go on the
//! `again` list), fire due timers, service DNS. The poll timeout is the
//! earliest of the wheel's next deadline and the resolver's.

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
use crate::dns;
use crate::wheel::Wheel;
use conn::{Conn, Outcome, Rng, Shared};
pub use settings::Settings;
use token::{ConnKey, DNS, LISTENER, WAKER};

/// Size of the one read buffer all sockets share.
const SCRATCH_BYTES: usize = 16 * 1024;
/// Wheel resolution and size: 10 ms ticks, 4096 slots (about 41 s a turn).
const WHEEL_TICK: Duration = Duration::from_millis(10);
const WHEEL_SLOTS: usize = 4096;
/// Connections accepted per wake-up before others get their turn.
const ACCEPT_BUDGET: usize = 256;
/// DNS datagrams read per wake-up.
const DNS_BUDGET: usize = 64;

/// Stops a running [`Server`] from another thread.
#[derive(Clone)]
pub struct Handle {
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl Handle {
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }
}

/// The DNS side of the loop: the resolver core, its UDP socket, and which
/// connection asked each query.
pub struct DnsClient {
    resolver: dns::Resolver,
    socket: Option<UdpSocket>,
    queries: HashMap<dns::QueryId, ConnKey>,
}

impl DnsClient {
    fn query(&mut self, key: ConnKey, now: Instant, name: &str, kind: dns::Kind) {
        let id = self.resolver.query(now, name, kind);
        self.queries.insert(id, key);
    }
}

pub struct Server {
    poll: Poll,
    listener: TcpListener,
    local_addr: SocketAddr,
    conns: Slab<Conn>,
    wheel: Wheel<ConnKey>,
    shared: Shared,
    next_generation: u32,
    sessions_started: u64,
    /// The listener may hold connections not accepted yet (edge-triggered:
    /// set by its event, cleared only by `WouldBlock`).
    accept_pending: bool,
    again: Vec<ConnKey>,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

/// Run a server from a configuration until the process is stopped.
pub fn run(config: &Config) -> Result<(), String> {
    let mut server = Server::bind(config)?;
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
            wheel: Wheel::new(now, WHEEL_TICK, WHEEL_SLOTS),
            shared: Shared {
                registry,
                settings,
                dns,
                scratch: vec![0; SCRATCH_BYTES].into_boxed_slice(),
                random: Rng::new(dns::random_seed()),
                now,
            },
            next_generation: 0,
            sessions_started: 0,
            accept_pending: false,
            again: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            waker,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn handle(&self) -> Handle {
        Handle {
            stop: self.stop.clone(),
            waker: self.waker.clone(),
        }
    }

    /// Serve until [`Handle::shutdown`].
    pub fn run(&mut self) -> std::io::Result<()> {
        let mut events = Events::with_capacity(1024);
        while !self.stop.load(Ordering::SeqCst) {
            let timeout = self.poll_timeout(Instant::now());
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
                    token => {
                        let Some((key, side)) = ConnKey::from_token(token) else {
                            continue;
                        };
                        let Some(conn) = live(&mut self.conns, key) else {
                            continue;
                        };
                        // Errors and hang-ups surface through the next read.
                        let readable =
                            event.is_readable() || event.is_read_closed() || event.is_error();
                        let writable =
                            event.is_writable() || event.is_write_closed() || event.is_error();
                        conn.mark_ready(side, readable, writable);
                        self.drive(key);
                    }
                }
            }
            if self.accept_pending {
                self.accept();
            }
            for key in std::mem::take(&mut self.again) {
                self.drive(key);
            }
            self.fire_timers();
            self.service_dns();
        }
        Ok(())
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
            let key = ConnKey::new(entry.key(), self.next_generation);
            self.sessions_started += 1;
            let mut conn = Conn::new(key, self.sessions_started, stream, peer, &self.shared);
            if let Err(e) = conn.register(&self.shared.registry) {
                warn!("cannot register connection from {peer}: {e}");
                continue;
            }
            debug!("accepted {peer}");
            entry.insert(conn);
            self.rearm(key);
        }
    }

    /// Drive one connection and settle what it asked for.
    fn drive(&mut self, key: ConnKey) {
        let Some(conn) = live(&mut self.conns, key) else {
            return;
        };
        match conn.drive(&mut self.shared) {
            Outcome::Keep => self.rearm(key),
            Outcome::Again => {
                self.again.push(key);
                self.rearm(key);
            }
            Outcome::Finish(reason) => self.finish(key, &reason),
        }
    }

    /// Keep the connection's one wheel entry at its earliest deadline.
    fn rearm(&mut self, key: ConnKey) {
        let Some(conn) = self.conns.get_mut(key.index as usize) else {
            return;
        };
        let wanted = conn.next_deadline();
        if conn.timer.map(|(_, at)| at) == wanted {
            return;
        }
        if let Some((id, _)) = conn.timer.take() {
            self.wheel.cancel(id);
        }
        if let Some(at) = wanted {
            conn.timer = Some((self.wheel.insert(at, key), at));
        }
    }

    fn fire_timers(&mut self) {
        let now = self.shared.now;
        let mut expired = Vec::new();
        self.wheel.advance(now, &mut expired);
        for key in expired {
            let Some(conn) = live(&mut self.conns, key) else {
                continue;
            };
            conn.timer = None;
            match conn.handle_timeout(&mut self.shared) {
                Some(reason) => self.finish(key, &reason),
                None => self.drive(key),
            }
        }
    }

    fn finish(&mut self, key: ConnKey, reason: &str) {
        let now = self.shared.now;
        let Some(mut conn) = self.conns.try_remove(key.index as usize) else {
            return;
        };
        conn.log_end(reason, now);
        conn.deregister(&self.shared.registry);
        if let Some((id, _)) = conn.timer.take() {
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
                let Some(key) = self.shared.dns.queries.remove(&id) else {
                    continue;
                };
                let Some(conn) = live(&mut self.conns, key) else {
                    continue;
                };
                conn.handle_dns_answer(answer, &mut self.shared);
                self.drive(key);
            }
            if !progress {
                return;
            }
        }
    }
}

/// The connection a key names, unless its slot was reused since.
fn live(conns: &mut Slab<Conn>, key: ConnKey) -> Option<&mut Conn> {
    conns
        .get_mut(key.index as usize)
        .filter(|conn| conn.key.generation == key.generation)
}

fn open_dns(config: &Config, registry: &Registry) -> Result<DnsClient, String> {
    let servers = if config.dns.servers.is_empty() {
        dns::system_servers().unwrap_or_else(|e| {
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
    let resolver = dns::Resolver::new(
        dns::ResolverConfig {
            servers,
            timeout: config.dns.timeout,
            attempts: config.dns.attempts,
            max_cache_entries: config.dns.cache_entries,
        },
        dns::random_seed(),
    );
    Ok(DnsClient {
        resolver,
        socket,
        queries: HashMap::new(),
    })
}
