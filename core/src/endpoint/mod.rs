//! The whole connection manager as one sans-IO state machine, in the shape
//! of quinn-proto's `Endpoint`: the shell (the binary's mio loop) owns
//! every socket and the clock; it tells the endpoint what happened
//! (`handle_*`: a connection accepted, bytes read, a peer closed, bytes
//! written, a backend connected, a DNS datagram, time passing) and carries
//! out what the endpoint asks ([`Endpoint::poll_command`]: connect, close,
//! send a datagram, give a socket a turn), writing [`Endpoint::output`] and
//! reading while [`Endpoint::wants_read`]. The endpoint owns HTTP routing,
//! CORS and JSONP, the sid table, session creation, the timing wheel, the
//! resolver and the resource accounting.
//!
//! Bounded work: every call does work proportional to its input, except
//! the reading of pipelined HTTP requests, which stops after
//! [`REQUESTS_PER_TURN`] and asks for another turn
//! ([`Command::Turn`]); nothing here calls back into itself, so no peer
//! controls the stack depth.
//!
//! Drain order after any call: [`Endpoint::poll_command`] until `None`,
//! then [`Endpoint::poll_timeout`].

mod accounting;
mod bosh;
mod client;
mod http_policy;
mod link;
mod log_gate;
mod settings;

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use log::{debug, info, warn};
use slab::Slab;

pub use accounting::{Refusal, Usage};
pub use settings::{Limits, Settings};

use crate::dns::{self, FastRng, QueryId, Resolver, ResolverConfig};
use crate::end::{End, Mistake};
use crate::ids;
use crate::wheel::Wheel;
use accounting::Accounting;
use bosh::{BoshEntry, Ended};
use client::{Client, Request};

/// Pipelined HTTP requests read from one connection in one turn before
/// the others get theirs.
pub const REQUESTS_PER_TURN: usize = 16;
/// Wheel timers handled per call; the rest wait for the next.
const TIMERS_PER_CALL: usize = 1024;
/// DNS answers and transmits handled per call.
const DNS_BUDGET: usize = 64;
/// Wheel resolution and size: 10 ms ticks, 4096 slots (about 41 s a turn).
const WHEEL_TICK: std::time::Duration = std::time::Duration::from_millis(10);
const WHEEL_SLOTS: usize = 4096;

/// A socket's handle. The endpoint gives one to every client connection
/// it is told of and every backend connection it asks for; the generation
/// keeps an event for a closed socket from reaching the one reusing its
/// slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SocketId {
    index: u32,
    generation: u32,
}

impl SocketId {
    /// Slot numbers are small and dense: a shell can index a table by it.
    pub fn index(self) -> usize {
        self.index as usize
    }

    pub fn generation(self) -> u32 {
        self.generation
    }

    pub fn from_parts(index: usize, generation: u32) -> SocketId {
        SocketId {
            index: index as u32,
            generation,
        }
    }
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Open a TCP connection to `addr` as socket `id`; report
    /// [`Endpoint::handle_connected`] or [`Endpoint::handle_connect_failed`].
    Connect { id: SocketId, addr: SocketAddr },
    /// Close the socket and forget it; nothing more is said about it.
    Close(SocketId),
    /// Socket `id` has output to write or may be read again, or work left
    /// for [`Endpoint::handle_turn`]: give it a turn.
    Turn(SocketId),
    /// Send a DNS query.
    SendDatagram { to: SocketAddr, bytes: Vec<u8> },
}

/// A slab slot plus the generation of what lives there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    index: u32,
    generation: u32,
}

impl Key {
    /// A BOSH request handle: the connection holding the request.
    fn to_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    fn from_u64(value: u64) -> Self {
        Key {
            index: value as u32,
            generation: (value >> 32) as u32,
        }
    }
}

/// Who a socket or a DNS answer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// A client connection (HTTP, WebSocket).
    Client(Key),
    /// The backend of a WebSocket connection.
    WsBackend(Key),
    /// One stream's backend of a BOSH session (XEP-0124 §19).
    BoshBackend(Key, u8),
}

/// What a wheel entry is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    Client(Key),
    Bosh(Key),
}

struct Slot {
    generation: u32,
    owner: Owner,
    /// The shell was told not to read: it must be given a turn once it
    /// may (edge-triggered readiness brings no new event).
    refused: Cell<bool>,
    /// A read was refused since the owner last judged the peer's silence:
    /// what the peer sent may still wait unread.
    held_back: Cell<bool>,
}

/// The socket table: who owns each socket the shell holds.
struct Sockets {
    slots: Slab<Slot>,
}

impl Sockets {
    fn owner(&self, id: SocketId) -> Option<Owner> {
        self.slots
            .get(id.index())
            .filter(|s| s.generation == id.generation)
            .map(|s| s.owner)
    }

    /// Whether a read on `id` was refused since the last call.
    fn take_held_back(&self, id: SocketId) -> bool {
        self.slots
            .get(id.index())
            .filter(|s| s.generation == id.generation)
            .is_some_and(|s| s.held_back.take())
    }
}

/// The DNS side: the resolver core and which link asked each query.
struct Dns {
    resolver: Resolver,
    queries: HashMap<QueryId, Owner>,
}

/// The parts every client and session uses while it handles an input:
/// owned by the endpoint, lent whole, apart from the client and session
/// tables.
struct Shared {
    now: Instant,
    settings: Settings,
    sockets: Sockets,
    dns: Dns,
    commands: VecDeque<Command>,
    accounting: Accounting,
    /// SRV weight draws (RFC 2782), not ids.
    srv_weights: FastRng,
    /// Backend failures are logged at WARN, once a minute per cause.
    backend_log: log_gate::LogGate,
    next_generation: u32,
    /// The socket whose input is being handled: the shell gives it its
    /// turn's remaining work itself, so no `Turn` is asked for it.
    current: Option<SocketId>,
}

impl Shared {
    fn generation(&mut self) -> u32 {
        self.next_generation = self.next_generation.wrapping_add(1);
        self.next_generation
    }

    fn open_socket(&mut self, owner: Owner) -> SocketId {
        let generation = self.generation();
        let index = self.sockets.slots.insert(Slot {
            generation,
            owner,
            refused: Cell::new(false),
            held_back: Cell::new(false),
        });
        SocketId::from_parts(index, generation)
    }

    /// A backend connection for `owner` to `addr`.
    fn connect(&mut self, owner: Owner, addr: SocketAddr) -> SocketId {
        let id = self.open_socket(owner);
        self.accounting.link_opened();
        self.commands.push_back(Command::Connect { id, addr });
        id
    }

    fn close_socket(&mut self, id: SocketId) {
        if let Some(owner) = self.sockets.owner(id) {
            self.sockets.slots.remove(id.index());
            if !matches!(owner, Owner::Client(_)) {
                self.accounting.link_closed();
            }
            self.commands.push_back(Command::Close(id));
        }
    }

    /// Give socket `id` a turn if it has something to write or was
    /// refused a read (the socket whose input is being handled gets its
    /// turn's remaining work from the shell anyway).
    fn wake(&mut self, id: SocketId, has_output: bool) {
        let refused = self
            .sockets
            .slots
            .get(id.index())
            .filter(|s| s.generation == id.generation)
            .is_some_and(|s| s.refused.take());
        if (has_output || refused) && self.current != Some(id) {
            self.commands.push_back(Command::Turn(id));
        }
    }

    /// The buffers went back under their budget: every socket refused a
    /// read gets a turn.
    fn wake_refused(&mut self) {
        for (index, slot) in self.sockets.slots.iter() {
            if slot.refused.take() {
                let id = SocketId::from_parts(index, slot.generation);
                self.commands.push_back(Command::Turn(id));
            }
        }
    }

    /// A session ended: when the server side is why, say so at WARN, with
    /// the domain (once a minute per cause).
    fn log_end(&mut self, domain: &str, end: &End) {
        if matches!(
            end,
            End::BackendFailed(_) | End::HandshakeTimeout | End::ServerStreamError(_)
        ) {
            let cause = format!("{domain}: {end}");
            self.backend_log
                .warn(self.now, &cause, format_args!("{cause}"));
        }
    }

    fn query_dns(&mut self, owner: Owner, name: &str, kind: dns::Kind) {
        let id = self.dns.resolver.query(self.now, name, kind);
        self.dns.queries.insert(id, owner);
    }
}

pub struct Endpoint {
    shared: Shared,
    clients: Slab<Client>,
    /// BOSH sessions, which outlive the connections that carry them.
    boshes: Slab<BoshEntry>,
    sids: HashMap<String, Key>,
    ended: Ended,
    wheel: Wheel<Timer>,
    /// Timers due but not handled yet (more than one call's share).
    expired: VecDeque<Timer>,
    sessions_started: u64,
    draining: bool,
}

impl Endpoint {
    pub fn new(
        settings: Settings,
        resolver: ResolverConfig,
        now: Instant,
    ) -> Result<Endpoint, ids::Unavailable> {
        Ok(Endpoint {
            ended: Ended::new(settings.limits.max_sessions),
            shared: Shared {
                now,
                accounting: Accounting::new(settings.limits, settings.trusted_proxies.clone()),
                settings,
                sockets: Sockets { slots: Slab::new() },
                dns: Dns {
                    resolver: Resolver::new(resolver),
                    queries: HashMap::new(),
                },
                commands: VecDeque::new(),
                srv_weights: FastRng(ids::seed()?),
                backend_log: log_gate::LogGate::default(),
                next_generation: 0,
                current: None,
            },
            clients: Slab::new(),
            boshes: Slab::new(),
            sids: HashMap::new(),
            wheel: Wheel::new(now, WHEEL_TICK, WHEEL_SLOTS),
            expired: VecDeque::new(),
            sessions_started: 0,
            draining: false,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    /// New settings, for new sessions; live ones keep theirs (their
    /// limits, timers and backends).
    pub fn reload(&mut self, settings: Settings) {
        self.shared
            .accounting
            .set_limits(settings.limits, settings.trusted_proxies.clone());
        self.ended.set_max(settings.limits.max_sessions);
        self.shared.settings = settings;
    }

    /// Other DNS servers or resolver settings: new lookups use them.
    pub fn reconfigure_dns(&mut self, resolver: ResolverConfig) {
        self.shared.dns.resolver.reconfigure(resolver);
    }

    pub fn usage(&self) -> Usage {
        Usage {
            ended_sessions: self.ended.len(),
            ..self.shared.accounting.usage()
        }
    }

    /// Live sessions: BOSH sessions and WebSocket connections.
    pub fn sessions(&self) -> usize {
        self.boshes.len()
            + self
                .clients
                .iter()
                .filter(|(_, c)| c.is_websocket())
                .count()
    }

    /// Whether the shell may accept another connection (it pauses accept
    /// at the connection limit and while draining).
    pub fn may_accept(&self) -> bool {
        !self.draining && self.shared.accounting.may_accept()
    }

    /// Draining and nothing left to tell anyone.
    pub fn is_drained(&self) -> bool {
        self.draining && self.clients.is_empty()
    }

    pub fn poll_command(&mut self) -> Option<Command> {
        self.shared.commands.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.expired.is_empty() {
            return Some(self.shared.now);
        }
        [
            self.wheel.next_deadline(),
            self.shared.dns.resolver.poll_timeout(),
            self.ended.next_expiry(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ------------------------------------------------------------------
    // Socket I/O views

    /// Bytes to write to socket `id`; report what was written with
    /// [`Endpoint::handle_written`].
    pub fn output(&self, id: SocketId) -> &[u8] {
        match self.shared.sockets.owner(id) {
            Some(Owner::Client(key)) => live(&self.clients, key).map_or(&[], Client::client_output),
            Some(Owner::WsBackend(key)) => {
                live(&self.clients, key).map_or(&[], Client::backend_output)
            }
            Some(Owner::BoshBackend(key, stream)) => {
                live_bosh(&self.boshes, key).map_or(&[], |b| b.output(stream))
            }
            None => &[],
        }
    }

    /// Whether socket `id` may be read now (back-pressure, limits).
    pub fn wants_read(&self, id: SocketId) -> bool {
        let Some(slot) = self
            .shared
            .sockets
            .slots
            .get(id.index())
            .filter(|s| s.generation == id.generation)
        else {
            return false;
        };
        let budget = self.shared.accounting.within_budget();
        let wanted = match slot.owner {
            Owner::Client(key) => live(&self.clients, key).is_some_and(|c| {
                (budget || !c.is_websocket()) && c.wants_client_read(&self.shared)
            }),
            Owner::WsBackend(key) => {
                budget && live(&self.clients, key).is_some_and(|c| c.wants_backend_read())
            }
            Owner::BoshBackend(key, stream) => {
                budget && live_bosh(&self.boshes, key).is_some_and(|b| b.wants_read(stream))
            }
        };
        if !wanted {
            slot.refused.set(true);
            slot.held_back.set(true);
        }
        wanted
    }

    // ------------------------------------------------------------------
    // Events

    /// A client connection was accepted from `peer`. Over a per-address
    /// limit it is answered 503 and closed.
    pub fn handle_accepted(&mut self, now: Instant, peer: SocketAddr) -> SocketId {
        self.shared.now = now;
        let entry = self.clients.vacant_entry();
        let key = Key {
            index: entry.key() as u32,
            generation: self.shared.generation(),
        };
        let socket = self.shared.open_socket(Owner::Client(key));
        self.sessions_started += 1;
        let mut client = Client::new(key, socket, self.sessions_started, peer, &self.shared);
        if let Err(refusal) = self.shared.accounting.connection_opened(now, peer.ip()) {
            self.shared.accounting.log_refusal(now, refusal, peer.ip());
            client.refuse(refusal);
        }
        entry.insert(client);
        debug!("accepted {peer}");
        self.settle_client(key);
        socket
    }

    /// Bytes read from socket `id`.
    pub fn handle_read(&mut self, now: Instant, id: SocketId, bytes: &[u8]) {
        self.begin(now, id);
        match self.shared.sockets.owner(id) {
            Some(Owner::Client(key)) => {
                if let Some(client) = live_mut(&mut self.clients, key) {
                    client.handle_client_input(&self.shared, bytes);
                }
                self.read_requests(key);
                self.settle_client(key);
            }
            Some(Owner::WsBackend(key)) => {
                if let Some(client) = live_mut(&mut self.clients, key) {
                    client.handle_backend_input(bytes);
                }
                self.settle_client(key);
            }
            Some(Owner::BoshBackend(key, stream)) => {
                if let Some(entry) = live_bosh_mut(&mut self.boshes, key) {
                    entry.handle_input(now, stream, bytes);
                }
                self.settle_bosh(key);
            }
            None => {}
        }
        self.end();
    }

    /// Socket `id` reached end of file, was reset, or failed a write.
    pub fn handle_peer_closed(&mut self, now: Instant, id: SocketId) {
        self.begin(now, id);
        match self.shared.sockets.owner(id) {
            Some(Owner::Client(key)) => {
                if let Some(client) = live_mut(&mut self.clients, key) {
                    client.handle_client_eof(now);
                }
                self.settle_client(key);
            }
            Some(Owner::WsBackend(key)) => {
                if let Some(client) = live_mut(&mut self.clients, key) {
                    client.handle_backend_eof();
                }
                self.settle_client(key);
            }
            Some(Owner::BoshBackend(key, stream)) => {
                if let Some(entry) = live_bosh_mut(&mut self.boshes, key) {
                    entry.handle_eof(now, stream);
                }
                self.settle_bosh(key);
            }
            None => {}
        }
        self.end();
    }

    /// `n` bytes of [`Endpoint::output`] of socket `id` were written.
    pub fn handle_written(&mut self, now: Instant, id: SocketId, n: usize) {
        self.begin(now, id);
        match self.shared.sockets.owner(id) {
            Some(Owner::Client(key)) => {
                if let Some(client) = live_mut(&mut self.clients, key) {
                    client.consume_client_output(n);
                }
                self.settle_client(key);
            }
            Some(Owner::WsBackend(key)) => {
                if let Some(client) = live_mut(&mut self.clients, key) {
                    client.consume_backend_output(n);
                }
                self.settle_client(key);
            }
            Some(Owner::BoshBackend(key, stream)) => {
                if let Some(entry) = live_bosh_mut(&mut self.boshes, key) {
                    entry.consume_output(stream, n);
                }
                self.settle_bosh(key);
            }
            None => {}
        }
        self.end();
    }

    /// The connect of backend socket `id` completed, to `peer`.
    pub fn handle_connected(&mut self, now: Instant, id: SocketId, peer: SocketAddr) {
        self.begin(now, id);
        match self.shared.sockets.owner(id) {
            Some(Owner::WsBackend(key)) => {
                if let Some(client) = live_mut(&mut self.clients, key) {
                    if let Some(link) = client.link_mut() {
                        let progress = link.handle_connected(id, peer);
                        client.apply(progress, &self.shared);
                    }
                }
                self.settle_client(key);
            }
            Some(Owner::BoshBackend(key, stream)) => {
                if let Some(entry) = live_bosh_mut(&mut self.boshes, key) {
                    entry.handle_connected(id, stream, peer, &self.shared);
                }
                self.settle_bosh(key);
            }
            Some(Owner::Client(_)) | None => {}
        }
        self.end();
    }

    /// The connect of backend socket `id` failed; `why` is for the log.
    /// The socket is gone: the endpoint forgets it.
    pub fn handle_connect_failed(&mut self, now: Instant, id: SocketId, why: &str) {
        self.begin(now, id);
        match self.shared.sockets.owner(id) {
            Some(Owner::WsBackend(key)) => {
                if let Some(client) = live_mut(&mut self.clients, key) {
                    if let Some(link) = client.link_mut() {
                        let progress = link.handle_connect_failed(id, why, &mut self.shared);
                        client.apply(progress, &self.shared);
                    }
                }
                self.settle_client(key);
            }
            Some(Owner::BoshBackend(key, stream)) => {
                if let Some(entry) = live_bosh_mut(&mut self.boshes, key) {
                    entry.handle_connect_failed(id, stream, why, &mut self.shared);
                }
                self.settle_bosh(key);
            }
            Some(Owner::Client(_)) | None => {}
        }
        self.end();
    }

    /// Socket `id`'s turn: work it was promised ([`Command::Turn`]).
    pub fn handle_turn(&mut self, now: Instant, id: SocketId) {
        self.begin(now, id);
        if let Some(Owner::Client(key)) = self.shared.sockets.owner(id) {
            let deferred =
                live_mut(&mut self.clients, key).is_some_and(|c| std::mem::take(&mut c.deferred));
            if deferred {
                self.read_requests(key);
                self.settle_client(key);
            }
        }
        self.end();
    }

    /// A datagram on the DNS socket.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.shared.now = now;
        self.shared.dns.resolver.handle_datagram(now, from, bytes);
        self.service_dns();
    }

    /// Time passed: fire due timers (a bounded number per call).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.shared.now = now;
        self.shared.current = None;
        if self.expired.is_empty() {
            self.wheel.advance(now, &mut self.expired);
        }
        for _ in 0..TIMERS_PER_CALL {
            let Some(timer) = self.expired.pop_front() else {
                break;
            };
            match timer {
                Timer::Client(key) => {
                    let Some(client) = live_mut(&mut self.clients, key) else {
                        continue;
                    };
                    client.timer = None;
                    match client.handle_timeout(&mut self.shared) {
                        Some(reason) => self.finish_client(key, &reason),
                        None => self.settle_client(key),
                    }
                }
                Timer::Bosh(key) => {
                    let Some(entry) = live_bosh_mut(&mut self.boshes, key) else {
                        continue;
                    };
                    entry.timer = None;
                    entry.handle_timeout(&mut self.shared);
                    self.settle_bosh(key);
                }
            }
        }
        self.ended.expire(now);
        self.shared.dns.resolver.handle_timeout(now);
        self.service_dns();
    }

    /// Stop accepting; every session hears `system-shutdown` (BOSH
    /// XEP-0124 §17.2, WebSocket RFC 6120 §4.9.3.22); server streams are
    /// dropped without a close so that they stay resumable.
    pub fn begin_drain(&mut self, now: Instant) {
        self.shared.now = now;
        self.shared.current = None;
        self.draining = true;
        let boshes: Vec<Key> = self.boshes.iter().map(|(_, b)| b.key).collect();
        for key in boshes {
            if let Some(entry) = live_bosh_mut(&mut self.boshes, key) {
                entry.core.shut_down();
            }
            self.settle_bosh(key);
        }
        let clients: Vec<Key> = self.clients.iter().map(|(_, c)| c.key).collect();
        for key in clients {
            if let Some(client) = live_mut(&mut self.clients, key) {
                client.shut_down();
            }
            self.settle_client(key);
        }
    }

    // ------------------------------------------------------------------
    // Internals

    fn begin(&mut self, now: Instant, id: SocketId) {
        self.shared.now = now;
        self.shared.current = Some(id);
    }

    fn end(&mut self) {
        self.shared.current = None;
        self.service_dns();
        if self.shared.accounting.take_budget_freed() {
            self.shared.wake_refused();
        }
    }

    /// Read and answer the connection's buffered requests, a bounded
    /// number; the rest wait for its next turn.
    fn read_requests(&mut self, key: Key) {
        for _ in 0..REQUESTS_PER_TURN {
            let Some(client) = live_mut(&mut self.clients, key) else {
                return;
            };
            match client.next_request(&self.shared) {
                Request::None => return,
                Request::Answered => {}
                Request::Bosh(raw) => self.bosh_request(key, &raw),
            }
        }
        if let Some(client) = live_mut(&mut self.clients, key) {
            if client.has_input() {
                client.deferred = true;
                let socket = client.socket;
                self.shared.commands.push_back(Command::Turn(socket));
            }
        }
    }

    /// A BOSH `<body/>` read from connection `conn`: create a session or
    /// hand it to its session (XEP-0124 §7, §8). A request naming an
    /// unknown sid never creates one.
    fn bosh_request(&mut self, conn: Key, raw: &[u8]) {
        let now = self.shared.now;
        let handle = conn.to_u64();
        log::trace!("bosh request: {}", String::from_utf8_lossy(raw));
        let body = match crate::bosh::parse_body(raw, self.shared.settings.xml) {
            Ok(body) => body,
            Err(condition) => {
                // The client is told its session is over: so it is, or it
                // would linger for its inactivity period.
                let named = sid_in(raw).and_then(|sid| self.sids.get(sid).copied());
                if let Some(key) = named {
                    if let Some(entry) = live_bosh_mut(&mut self.boshes, key) {
                        entry.core.terminate(End::Client(Mistake::BadBody));
                    }
                    self.settle_bosh(key);
                }
                return self.deliver(conn, crate::bosh::terminate_response(condition));
            }
        };
        let key = match body.sid.as_deref() {
            None => match self.create_bosh(conn, &body) {
                Some(key) => key,
                None => return,
            },
            Some(sid) => {
                let found = self.sids.get(sid).copied();
                let Some(entry) = found.and_then(|key| live_bosh_mut(&mut self.boshes, key)) else {
                    let response = self.ended.get(sid, body.rid).cloned().unwrap_or_else(|| {
                        crate::bosh::terminate_response(crate::bosh::Condition::ItemNotFound)
                    });
                    return self.deliver(conn, response);
                };
                entry.core.handle_request(now, handle, &body, raw);
                entry.key
            }
        };
        if let Some(client) = live_mut(&mut self.clients, conn) {
            client.set_awaiting(Some(key));
        }
        self.settle_bosh(key);
    }

    /// XEP-0124 §7.1: a new session, within the limits.
    fn create_bosh(&mut self, conn: Key, body: &crate::bosh::Body) -> Option<Key> {
        let now = self.shared.now;
        let ip = live(&self.clients, conn)?.address;
        // What the client hears, from the table of ends.
        let refuse = |end: End| {
            let condition = end
                .bosh()
                .unwrap_or(crate::bosh::Condition::UndefinedCondition);
            crate::bosh::terminate_response(condition)
        };
        if let Err(refusal) = self.shared.accounting.open_session(now, ip) {
            self.shared.accounting.log_refusal(now, refusal, ip);
            self.deliver(conn, refuse(End::Refused(refusal.key())));
            return None;
        }
        let created = ids::sid().map_err(|_| refuse(End::Internal("no random sid")));
        let created = created.and_then(|sid| {
            let settings = self.shared.settings.bosh.clone();
            let handle = conn.to_u64();
            crate::bosh::Session::create(now, settings, sid.clone(), handle, body)
                .map(|core| (sid, core))
        });
        let (sid, core) = match created {
            Ok(created) => created,
            Err(response) => {
                self.shared.accounting.session_closed(ip);
                self.deliver(conn, response);
                return None;
            }
        };
        let entry = self.boshes.vacant_entry();
        let key = Key {
            index: entry.key() as u32,
            generation: self.shared.generation(),
        };
        self.sessions_started += 1;
        info!(
            "session {} start: bosh {sid} from {ip} to {} (ua {})",
            self.sessions_started,
            body.to.as_deref().unwrap_or(""),
            body.ua.as_deref().unwrap_or("-")
        );
        entry.insert(BoshEntry::new(
            key,
            sid.clone(),
            self.sessions_started,
            ip,
            core,
            now,
        ));
        self.sids.insert(sid, key);
        Some(key)
    }

    /// Write a BOSH response on the connection whose request it answers.
    /// A request buffered behind it is read in the connection's turn.
    fn deliver(&mut self, conn: Key, response: crate::bosh::Response) {
        let Some(client) = live_mut(&mut self.clients, conn) else {
            return;
        };
        client.deliver_bosh(response, &self.shared);
        let socket = client.socket;
        // The current connection is reading its requests already.
        if self.shared.current != Some(socket) && client.has_input() {
            client.deferred = true;
            self.shared.commands.push_back(Command::Turn(socket));
        }
        self.settle_client(conn);
    }

    /// After any input to a client: run its session's commands, finish it
    /// when done, keep its timer and accounting, give its sockets a turn.
    fn settle_client(&mut self, key: Key) {
        let Some(client) = live_mut(&mut self.clients, key) else {
            return;
        };
        let reason = client
            .run_commands(&mut self.shared)
            .or_else(|| client.finished());
        if let Some(reason) = reason {
            return self.finish_client(key, &reason);
        }
        let buffered = client.buffered_bytes();
        self.shared.accounting.buffered(client.buffered, buffered);
        client.buffered = buffered;
        client.note_output(self.shared.now);
        let wanted = client.next_deadline();
        let sockets = [
            Some((client.socket, !client.client_output().is_empty())),
            client
                .backend_socket()
                .map(|s| (s, !client.backend_output().is_empty())),
        ];
        rearm(
            &mut self.wheel,
            &mut self.expired,
            self.shared.now,
            &mut client.timer,
            wanted,
            Timer::Client(key),
        );
        for (socket, has_output) in sockets.into_iter().flatten() {
            self.shared.wake(socket, has_output);
        }
    }

    fn settle_bosh(&mut self, key: Key) {
        let Some(entry) = live_bosh_mut(&mut self.boshes, key) else {
            return;
        };
        entry.run_commands(&mut self.shared);
        let mut responses = Vec::new();
        while let Some(response) = entry.core.poll_response() {
            responses.push(response);
        }
        if let Some(reason) = entry.finished(self.shared.now) {
            self.finish_bosh(key, &reason);
        } else if let Some(entry) = live_bosh_mut(&mut self.boshes, key) {
            let buffered = entry.core.buffered_bytes();
            self.shared.accounting.buffered(entry.buffered, buffered);
            entry.buffered = buffered;
            let wanted = entry.next_deadline();
            rearm(
                &mut self.wheel,
                &mut self.expired,
                self.shared.now,
                &mut entry.timer,
                wanted,
                Timer::Bosh(key),
            );
            let sockets: Vec<(SocketId, bool)> = entry.sockets().collect();
            for (socket, has_output) in sockets {
                self.shared.wake(socket, has_output);
            }
        }
        for (handle, response) in responses {
            self.deliver(Key::from_u64(handle), response);
        }
    }

    fn finish_client(&mut self, key: Key, reason: &str) {
        let Some(mut client) = take(&mut self.clients, key) else {
            return;
        };
        let now = self.shared.now;
        client.log_end(reason, now);
        if let Some(link) = client.link_mut() {
            link.close(&mut self.shared);
        }
        self.shared.close_socket(client.socket);
        if let Some((id, _)) = client.timer.take() {
            self.wheel.cancel(id);
        }
        self.shared.accounting.buffered(client.buffered, 0);
        self.shared.accounting.connection_closed(client.peer.ip());
        if client.session_counted {
            self.shared.accounting.session_closed(client.address);
        }
        // A held BOSH request is gone with its connection (a page reload).
        if let Some(session) = client.awaiting() {
            if let Some(entry) = live_bosh_mut(&mut self.boshes, session) {
                entry.core.request_gone(now, key.to_u64());
                self.settle_bosh(session);
            }
        }
    }

    fn finish_bosh(&mut self, key: Key, reason: &str) {
        let Some(mut entry) = take_bosh(&mut self.boshes, key) else {
            return;
        };
        entry.log_end(reason, self.shared.now);
        entry.close_links(&mut self.shared);
        self.sids.remove(&entry.sid);
        // A client that terminated knows why, unless the answer to its
        // terminate (or one before it) was lost; others may not have heard.
        let until = self.shared.now + 2 * self.shared.settings.bosh.max_wait;
        let sid = entry.sid.clone();
        if entry.client_closed() {
            self.ended
                .insert_terminated(sid, entry.core.last_replies(), until);
        } else if let Some(why) = entry.core.end_response() {
            self.ended.insert(sid, why.clone(), until);
        }
        if let Some((id, _)) = entry.timer.take() {
            self.wheel.cancel(id);
        }
        self.shared.accounting.buffered(entry.buffered, 0);
        self.shared.accounting.session_closed(entry.ip);
    }

    /// Send queued queries, apply timeouts and hand answers to their links
    /// (an answer may start another query: loop, bounded).
    fn service_dns(&mut self) {
        for _ in 0..DNS_BUDGET {
            let mut progress = false;
            while let Some((to, bytes)) = self.shared.dns.resolver.poll_transmit() {
                progress = true;
                self.shared
                    .commands
                    .push_back(Command::SendDatagram { to, bytes });
            }
            while let Some((id, answer)) = self.shared.dns.resolver.poll_answer() {
                progress = true;
                match self.shared.dns.queries.remove(&id) {
                    Some(Owner::WsBackend(key)) => {
                        if let Some(client) = live_mut(&mut self.clients, key) {
                            if let Some(link) = client.link_mut() {
                                let progress = link.handle_dns_answer(answer, &mut self.shared);
                                client.apply(progress, &self.shared);
                            }
                        }
                        self.settle_client(key);
                    }
                    Some(Owner::BoshBackend(key, stream)) => {
                        if let Some(entry) = live_bosh_mut(&mut self.boshes, key) {
                            entry.handle_dns_answer(stream, answer, &mut self.shared);
                        }
                        self.settle_bosh(key);
                    }
                    Some(Owner::Client(_)) | None => {}
                }
            }
            if !progress {
                return;
            }
        }
        warn!("dns: more work than one call's budget; the rest waits");
    }
}

/// The `sid` a request body names, read leniently from its start tag: the
/// body may be too broken to parse. XML allows any whitespace before the
/// name and around the `=`.
fn sid_in(raw: &[u8]) -> Option<&str> {
    let head = &raw[..raw.len().min(1024)];
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let mut from = 0;
    while let Some(offset) = head
        .get(from..)?
        .windows(4)
        .position(|w| &w[1..] == b"sid" && space(&w[0]))
    {
        let name_end = from + offset + 4;
        from = name_end;
        let rest = &head[name_end..];
        let rest = &rest[rest.iter().take_while(|b| space(b)).count()..];
        let Some(rest) = rest.strip_prefix(b"=") else {
            continue;
        };
        let rest = &rest[rest.iter().take_while(|b| space(b)).count()..];
        let (&quote, value) = rest.split_first()?;
        if quote != b'\'' && quote != b'"' {
            return None;
        }
        let end = value.iter().position(|&b| b == quote)?;
        return std::str::from_utf8(&value[..end]).ok();
    }
    None
}

/// Keep an owner's one wheel entry at its earliest deadline.
///
/// The wheel first moves to `now` (queueing whatever is due): an insert into
/// a wheel left idle since its last advance would otherwise sit in a coarse
/// slot whose start is long past, and the poll timeout would say so.
fn rearm(
    wheel: &mut Wheel<Timer>,
    expired: &mut VecDeque<Timer>,
    now: Instant,
    current: &mut Option<(crate::wheel::TimerId, Instant)>,
    wanted: Option<Instant>,
    timer: Timer,
) {
    if current.map(|(_, at)| at) == wanted {
        return;
    }
    if let Some((id, _)) = current.take() {
        wheel.cancel(id);
    }
    if let Some(at) = wanted {
        wheel.advance(now, expired);
        *current = Some((wheel.insert(at, timer), at));
    }
}

/// The client a key names, unless its slot was reused since.
fn live(clients: &Slab<Client>, key: Key) -> Option<&Client> {
    clients
        .get(key.index as usize)
        .filter(|c| c.key.generation == key.generation)
}

fn live_mut(clients: &mut Slab<Client>, key: Key) -> Option<&mut Client> {
    clients
        .get_mut(key.index as usize)
        .filter(|c| c.key.generation == key.generation)
}

fn take(clients: &mut Slab<Client>, key: Key) -> Option<Client> {
    live(clients, key)?;
    clients.try_remove(key.index as usize)
}

fn live_bosh(boshes: &Slab<BoshEntry>, key: Key) -> Option<&BoshEntry> {
    boshes
        .get(key.index as usize)
        .filter(|b| b.key.generation == key.generation)
}

fn live_bosh_mut(boshes: &mut Slab<BoshEntry>, key: Key) -> Option<&mut BoshEntry> {
    boshes
        .get_mut(key.index as usize)
        .filter(|b| b.key.generation == key.generation)
}

fn take_bosh(boshes: &mut Slab<BoshEntry>, key: Key) -> Option<BoshEntry> {
    live_bosh(boshes, key)?;
    boshes.try_remove(key.index as usize)
}

#[cfg(test)]
mod tests {
    use super::sid_in;

    #[test]
    fn sid_in_reads_the_sid_after_any_xml_whitespace() {
        for raw in [
            &b"<body rid='1' sid='abc'><broken"[..],
            b"<body rid='1'\nsid='abc'><broken",
            b"<body\tsid = \"abc\" rid='1'",
            b"<body\r\n  sid=\n'abc'/>",
            b"<body xsid='no' sid='abc'/>",
        ] {
            assert_eq!(sid_in(raw), Some("abc"), "{}", String::from_utf8_lossy(raw));
        }
        for raw in [
            &b"<body xsid='abc'/>"[..],
            b"<body sid=abc/>",
            b"<body sid='abc",
            b"sid='abc'",
        ] {
            assert_eq!(sid_in(raw), None, "{}", String::from_utf8_lossy(raw));
        }
    }
}
