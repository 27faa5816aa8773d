//! The simulated network and the shell around the endpoint. Each TCP
//! connection is two ordered byte pipes with a delay and a receive window;
//! the shell model drives the endpoint exactly as the binary's mio loop
//! does: edge-triggered readiness remembered per socket, one work queue of
//! turns, the same budgets, commands carried out after every call. A turn
//! the endpoint forgets to ask for is a hang here, as it would be there.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use switchboard_core::endpoint::{Command, Endpoint, SocketId};

use super::rng::Rng;

/// Reads per socket per turn, as the binary's shell.
const READ_BUDGET: usize = 16;
/// The shell's read buffer.
const SCRATCH: usize = 16 * 1024;

/// One direction of a connection.
#[derive(Default)]
pub struct Pipe {
    /// Bytes on the wire with their arrival time, in order.
    flight: VecDeque<(Instant, Vec<u8>)>,
    /// Bytes arrived and not read yet.
    pub arrived: Vec<u8>,
    /// The writer closed: end of file once everything has arrived.
    closed_at: Option<Instant>,
    /// The end of file has arrived.
    pub eof: bool,
}

impl Pipe {
    fn in_flight(&self) -> usize {
        self.flight.iter().map(|(_, b)| b.len()).sum()
    }

    fn last_arrival(&self) -> Option<Instant> {
        self.flight.back().map(|(t, _)| *t)
    }

    /// Move what has arrived by `now`; true when anything moved.
    fn deliver(&mut self, now: Instant) -> bool {
        let mut moved = false;
        while self.flight.front().is_some_and(|(t, _)| *t <= now) {
            if let Some((_, bytes)) = self.flight.pop_front() {
                self.arrived.extend_from_slice(&bytes);
                moved = true;
            }
        }
        if self.flight.is_empty() && !self.eof && self.closed_at.is_some_and(|t| t <= now) {
            self.eof = true;
            moved = true;
        }
        moved
    }
}

/// A peer's handle on its connection (never reused, unlike socket slots).
pub type ConnRef = usize;

/// A TCP connection between the endpoint and a simulated peer.
pub struct Conn {
    pub id: SocketId,
    /// Peer to endpoint.
    pub up: Pipe,
    /// Endpoint to peer.
    pub down: Pipe,
    /// How many bytes the peer's receive buffer holds.
    window: usize,
    latency: Duration,
    // The shell's view of the socket.
    readable: bool,
    writable: bool,
    queued: bool,
    ended: bool,
    connecting: bool,
    /// The endpoint closed it: the shell holds it no more.
    pub closed_by_endpoint: bool,
    /// The peer closed it.
    pub closed_by_peer: bool,
}

impl Conn {
    fn new(id: SocketId, window: usize, latency: Duration, connecting: bool) -> Conn {
        Conn {
            id,
            up: Pipe::default(),
            down: Pipe::default(),
            window,
            latency,
            readable: false,
            writable: !connecting,
            queued: false,
            ended: false,
            connecting,
            closed_by_endpoint: false,
            closed_by_peer: false,
        }
    }
}

/// A connect the endpoint asked for, answered later.
pub struct PendingConnect {
    pub at: Instant,
    pub id: SocketId,
    pub addr: SocketAddr,
    pub refuse: bool,
}

pub struct Net {
    pub now: Instant,
    pub conns: Vec<Conn>,
    /// The connections the shell holds, by socket.
    shell: HashMap<SocketId, ConnRef>,
    queue: VecDeque<SocketId>,
    pub connects: Vec<PendingConnect>,
    /// Backend connections the endpoint made, for the server to take.
    pub accepted_backends: Vec<ConnRef>,
    /// Whether the server refuses new connections now.
    pub server_down: bool,
    /// No latency, no cuts, no refusals: for scenarios that check exact
    /// times and bytes.
    pub exact: bool,
    pub datagrams: usize,
}

impl Net {
    pub fn new(now: Instant) -> Net {
        Net {
            now,
            conns: Vec::new(),
            shell: HashMap::new(),
            queue: VecDeque::new(),
            connects: Vec::new(),
            accepted_backends: Vec::new(),
            server_down: false,
            exact: false,
            datagrams: 0,
        }
    }

    pub fn conn(&self, at: ConnRef) -> Option<&Conn> {
        self.conns.get(at)
    }

    /// The connection the shell holds as socket `id`.
    fn held(&mut self, id: SocketId) -> Option<&mut Conn> {
        let at = *self.shell.get(&id)?;
        self.conns.get_mut(at)
    }

    fn insert(&mut self, conn: Conn) -> ConnRef {
        let at = self.conns.len();
        self.shell.insert(conn.id, at);
        self.conns.push(conn);
        at
    }

    fn enqueue(&mut self, id: SocketId) {
        if let Some(conn) = self.held(id) {
            if !conn.closed_by_endpoint && !conn.queued {
                conn.queued = true;
                self.queue.push_back(id);
            }
        }
    }

    /// A number in `lo..=hi`, or `exact` in exact mode.
    fn pick(&self, rng: &mut Rng, lo: u64, hi: u64, exact: u64) -> u64 {
        if self.exact {
            exact
        } else {
            rng.between(lo, hi)
        }
    }

    // ------------------------------------------------------------------
    // The peers' side

    /// A client connects: the shell accepts it.
    pub fn accept(
        &mut self,
        endpoint: &mut Endpoint,
        rng: &mut Rng,
        peer: SocketAddr,
        window: usize,
    ) -> ConnRef {
        let id = endpoint.handle_accepted(self.now, peer);
        let latency = Duration::from_millis(self.pick(rng, 0, 30, 0));
        let at = self.insert(Conn::new(id, window, latency, false));
        self.run_commands(endpoint, rng);
        at
    }

    /// The peer writes; bytes arrive in order after the latency, cut in
    /// random pieces.
    pub fn send(&mut self, rng: &mut Rng, at: ConnRef, bytes: &[u8]) {
        let now = self.now;
        let exact = self.exact;
        let Some(conn) = self.conns.get_mut(at) else {
            return;
        };
        if conn.closed_by_peer {
            return;
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let (n, jitter) = if exact {
                (rest.len(), Duration::ZERO)
            } else {
                (
                    (rng.between(1, 4096) as usize).min(rest.len()),
                    Duration::from_millis(rng.below(5)),
                )
            };
            let arrival = (now + conn.latency + jitter).max(conn.up.last_arrival().unwrap_or(now));
            conn.up.flight.push_back((arrival, rest[..n].to_vec()));
            rest = &rest[n..];
        }
    }

    /// The peer reads up to `max` bytes of what has arrived for it.
    pub fn recv(&mut self, at: ConnRef, max: usize) -> Vec<u8> {
        let Some(conn) = self.conns.get_mut(at) else {
            return Vec::new();
        };
        let n = conn.down.arrived.len().min(max);
        let bytes: Vec<u8> = conn.down.arrived.drain(..n).collect();
        if n > 0 && !conn.writable && !conn.closed_by_endpoint {
            conn.writable = true;
            let id = conn.id;
            self.enqueue(id);
        }
        bytes
    }

    /// The peer has read everything and the endpoint's side is closed.
    pub fn at_eof(&self, at: ConnRef) -> bool {
        self.conn(at)
            .is_none_or(|c| c.down.eof && c.down.arrived.is_empty())
    }

    /// The peer closes its side (a vanished client, a dead server).
    pub fn close(&mut self, at: ConnRef) {
        let now = self.now;
        if let Some(conn) = self.conns.get_mut(at) {
            if !conn.closed_by_peer {
                conn.closed_by_peer = true;
                let arrival = conn
                    .up
                    .last_arrival()
                    .unwrap_or(now)
                    .max(now + conn.latency);
                conn.up.closed_at = Some(arrival);
                // Whatever the endpoint sends from now on is lost.
                conn.down.arrived.clear();
            }
        }
    }

    // ------------------------------------------------------------------
    // Time

    /// Deliver what is due: arrivals raise the endpoint's readiness
    /// (edge-triggered) and finished connects are reported.
    pub fn advance(&mut self, endpoint: &mut Endpoint, rng: &mut Rng) {
        let now = self.now;
        let mut ready = Vec::new();
        for conn in self.conns.iter_mut() {
            if conn.up.deliver(now) && !conn.closed_by_endpoint {
                conn.readable = true;
                ready.push(conn.id);
            }
            if conn.closed_by_peer {
                conn.down.flight.clear();
            } else {
                conn.down.deliver(now);
            }
        }
        for id in ready {
            self.enqueue(id);
        }
        let mut due = Vec::new();
        self.connects.retain(|c| {
            if c.at <= now {
                due.push((c.id, c.addr, c.refuse));
                false
            } else {
                true
            }
        });
        for (id, addr, refuse) in due {
            let Some(&at) = self.shell.get(&id) else {
                continue;
            };
            if refuse || self.server_down {
                self.shell.remove(&id);
                endpoint.handle_connect_failed(now, id, "connection refused");
            } else {
                let conn = &mut self.conns[at];
                conn.connecting = false;
                conn.writable = true;
                self.accepted_backends.push(at);
                endpoint.handle_connected(now, id, addr);
                self.enqueue(id);
            }
            self.run_commands(endpoint, rng);
        }
    }

    // ------------------------------------------------------------------
    // The shell

    /// Give every queued socket one turn, as the binary's loop does.
    pub fn run_queue(&mut self, endpoint: &mut Endpoint, rng: &mut Rng) {
        for _ in 0..self.queue.len() {
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            let Some(conn) = self.held(id) else {
                continue;
            };
            conn.queued = false;
            self.turn(endpoint, rng, id);
        }
    }

    fn turn(&mut self, endpoint: &mut Endpoint, rng: &mut Rng, id: SocketId) {
        let now = self.now;
        endpoint.handle_turn(now, id);
        self.run_commands(endpoint, rng);
        if self.held(id).is_none_or(|c| c.connecting) {
            return;
        }
        self.flush(endpoint, rng, id);
        for _ in 0..READ_BUDGET {
            let Some(conn) = self.held(id) else {
                return;
            };
            if !conn.readable || conn.ended || !endpoint.wants_read(id) {
                return;
            }
            if conn.up.arrived.is_empty() {
                conn.readable = false;
                if conn.up.eof {
                    conn.ended = true;
                    endpoint.handle_peer_closed(now, id);
                    self.run_commands(endpoint, rng);
                }
                return;
            }
            let whole = conn.up.arrived.len() as u64;
            let n = if self.exact {
                whole.min(SCRATCH as u64)
            } else {
                rng.between(1, SCRATCH as u64).min(whole)
            } as usize;
            let Some(conn) = self.held(id) else {
                return;
            };
            let bytes: Vec<u8> = conn.up.arrived.drain(..n).collect();
            if conn.up.arrived.is_empty() && !conn.up.eof {
                conn.readable = false;
            }
            endpoint.handle_read(now, id, &bytes);
            self.run_commands(endpoint, rng);
            self.flush(endpoint, rng, id);
        }
        if self.held(id).is_some_and(|c| c.readable && !c.ended) {
            self.enqueue(id);
        }
    }

    fn flush(&mut self, endpoint: &mut Endpoint, rng: &mut Rng, id: SocketId) {
        let now = self.now;
        let exact = self.exact;
        loop {
            let Some(conn) = self.held(id) else {
                return;
            };
            let output = endpoint.output(id);
            if !conn.writable || conn.ended || output.is_empty() {
                return;
            }
            if conn.closed_by_peer {
                // A write to a reset connection fails.
                conn.ended = true;
                endpoint.handle_peer_closed(now, id);
                self.run_commands(endpoint, rng);
                return;
            }
            let used = conn.down.arrived.len() + conn.down.in_flight();
            let room = conn.window.saturating_sub(used);
            if room == 0 {
                conn.writable = false;
                return;
            }
            let cut = if exact {
                usize::MAX
            } else {
                rng.between(1, 64 * 1024) as usize
            };
            let n = output.len().min(room).min(cut);
            let arrival = (now + conn.latency).max(conn.down.last_arrival().unwrap_or(now));
            conn.down.flight.push_back((arrival, output[..n].to_vec()));
            if n == room && n < output.len() {
                conn.writable = false;
            }
            endpoint.handle_written(now, id, n);
            self.run_commands(endpoint, rng);
        }
    }

    pub fn run_commands(&mut self, endpoint: &mut Endpoint, rng: &mut Rng) {
        while let Some(command) = endpoint.poll_command() {
            match command {
                Command::Connect { id, addr } => {
                    let latency = Duration::from_millis(self.pick(rng, 0, 30, 0));
                    self.insert(Conn::new(id, 256 * 1024, latency, true));
                    let at = self.now + Duration::from_millis(self.pick(rng, 0, 200, 0));
                    let refuse = !self.exact && rng.chance(20);
                    self.connects.push(PendingConnect {
                        at,
                        id,
                        addr,
                        refuse,
                    });
                }
                Command::Close(id) => {
                    let now = self.now;
                    if let Some(conn) = self.held(id) {
                        conn.closed_by_endpoint = true;
                        let arrival = conn.down.last_arrival().unwrap_or(now).max(now);
                        conn.down.closed_at = Some(arrival);
                    }
                    self.shell.remove(&id);
                    self.connects.retain(|c| c.id != id);
                }
                Command::Turn(id) => self.enqueue(id),
                Command::SendDatagram { .. } => self.datagrams += 1,
            }
        }
    }

    /// Largest output any live socket holds.
    pub fn largest_output(&self, endpoint: &Endpoint) -> usize {
        self.shell
            .keys()
            .map(|&id| endpoint.output(id).len())
            .max()
            .unwrap_or(0)
    }
}
