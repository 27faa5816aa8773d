//! `load forward`: a bare TCP byte forwarder, the floor of a relay.
//!
//! For each accepted client it connects to the target and copies bytes both
//! ways without looking at them, so a connection manager in the same place
//! can be measured against the least work a relay can do.
//!
//! One mio loop. Each socket is registered once for reading and writing,
//! edge-triggered, and its readiness is remembered until a read or write
//! finds it dry; a short read or write counts as dry (the kernel reports the
//! next change anew), except that once the peer's FIN was reported reads go
//! on until they return 0. One read buffer serves every socket: what the
//! destination takes is written straight from it and only the remainder is
//! held, and a direction that holds bytes reads nothing more until they are
//! written, so each direction holds at most one buffer and a slow reader
//! stops its writer (back-pressure). A FIN is passed on as a FIN (a write
//! shutdown) once the bytes before it are written, so half-closed streams
//! stay half-closed; a pair is released when both directions have ended, or
//! at once when either socket fails (a reset or a refused connect loses the
//! bytes in flight anyway). Each socket gets a bounded number of reads per
//! pass; a pair with more to read waits on a queue for the next pass.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::net::connect;

/// The listener's token; each pair's two sockets take the tokens after it.
const LISTENER: Token = Token(0);
/// Reads from one socket per pass before the other pairs get their turn.
pub const READS_PER_PASS: usize = 16;
/// Connections accepted per pass.
const ACCEPTS_PER_PASS: usize = 64;
/// The read buffer when none is asked for.
pub const DEFAULT_BUFFER: usize = 64 * 1024;

/// A pair's slot in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PairId(usize);

/// The two ends of a pair; also the index of the direction that reads
/// from that end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Client = 0,
    Server = 1,
}

impl PairId {
    fn token(self, side: Side) -> Token {
        Token(1 + self.0 * 2 + side as usize)
    }

    fn of(token: Token) -> (PairId, Side) {
        let index = token.0 - 1;
        let side = if index.is_multiple_of(2) {
            Side::Client
        } else {
            Side::Server
        };
        (PairId(index / 2), side)
    }
}

/// One socket and the readiness last reported for it.
struct Socket {
    stream: TcpStream,
    readable: bool,
    writable: bool,
    /// The peer's FIN (or an error) was reported: a short read is not dry.
    hangup: bool,
    /// Connected (the server side becomes so at its first writable event);
    /// a FIN cannot be passed on before.
    connected: bool,
}

impl Socket {
    fn new(stream: TcpStream, connected: bool) -> Socket {
        Socket {
            stream,
            readable: false,
            writable: false,
            hangup: false,
            connected,
        }
    }

    /// Write from the start of `data` while the socket takes it; how much
    /// it took.
    fn write_some(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut sent = 0;
        while self.writable && sent < data.len() {
            match self.stream.write(&data[sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    sent += n;
                    // A short write filled the send buffer.
                    self.writable = sent == data.len();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }
}

/// One direction of a pair.
#[derive(Default)]
struct Flow {
    /// Read from the source, not yet taken by the destination.
    held: Vec<u8>,
    /// The source sent its FIN.
    eof: bool,
    /// The FIN was passed on to the destination.
    shut: bool,
}

/// What one pass of copying left.
struct Pumped {
    /// Bytes read from the source.
    moved: u64,
    /// The source may have more to read: the pass stopped at its bound.
    more: bool,
}

/// Copy from `from` to `to` through `flow`: the held bytes first, then up
/// to [`READS_PER_PASS`] reads, each written straight on; pass the FIN on
/// once everything before it is written. `Err` when a socket failed.
fn pump(from: &mut Socket, to: &mut Socket, flow: &mut Flow, buf: &mut [u8]) -> io::Result<Pumped> {
    let mut pumped = Pumped {
        moved: 0,
        more: false,
    };
    if !flow.held.is_empty() {
        let sent = to.write_some(&flow.held)?;
        flow.held.drain(..sent);
        if !flow.held.is_empty() {
            return Ok(pumped);
        }
    }
    let mut reads = 0;
    while from.readable && !flow.eof {
        if reads == READS_PER_PASS {
            pumped.more = true;
            return Ok(pumped);
        }
        reads += 1;
        match from.stream.read(buf) {
            Ok(0) => flow.eof = true,
            Ok(n) => {
                pumped.moved += n as u64;
                if n < buf.len() && !from.hangup {
                    from.readable = false;
                }
                let sent = to.write_some(&buf[..n])?;
                if sent < n {
                    flow.held.extend_from_slice(&buf[sent..n]);
                    return Ok(pumped);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => from.readable = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if flow.eof && !flow.shut && to.connected {
        flow.shut = true;
        to.stream.shutdown(Shutdown::Write)?;
    }
    Ok(pumped)
}

/// A client and the connection opened for it to the target.
struct Pair {
    /// Indexed by [`Side`].
    sockets: [Socket; 2],
    /// Indexed by the [`Side`] read from: client → server, server → client.
    flows: [Flow; 2],
    /// On the queue of pairs with more to read.
    queued: bool,
}

/// What driving a pair left to do.
#[derive(Debug, PartialEq, Eq)]
enum Drive {
    /// Wait for the next readiness.
    Wait,
    /// Reads were left over: drive it again on the next pass.
    More,
    /// Both directions ended, or a socket failed: release it.
    Done,
}

/// Totals of a forwarder's run, printed when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Clients accepted (and connected on to the target).
    pub pairs: u64,
    /// Pairs released because both directions ended or a socket failed.
    pub released: u64,
    pub client_to_server_bytes: u64,
    pub server_to_client_bytes: u64,
    /// The most bytes one direction held at once (at most the buffer).
    pub most_held: usize,
}

impl Stats {
    /// The one-line summary `load forward` prints.
    pub fn summary(&self) -> String {
        format!(
            "pairs {}, released {}, bytes client->server {}, server->client {}, most held {}\n",
            self.pairs,
            self.released,
            self.client_to_server_bytes,
            self.server_to_client_bytes,
            self.most_held
        )
    }
}

/// The forwarder: its listener, its pairs and the one read buffer.
pub struct Forward {
    poll: Poll,
    listener: TcpListener,
    addr: SocketAddr,
    to: SocketAddr,
    pairs: Slab<Pair>,
    buf: Box<[u8]>,
    /// Pairs to drive again on the next pass; `spare` is the list being
    /// emptied, kept to reuse its allocation.
    queue: Vec<PairId>,
    spare: Vec<PairId>,
    /// The listener may have connections left to accept.
    accept_ready: bool,
    stats: Stats,
}

impl Forward {
    /// Listen on `listen` (port 0 picks a free one) to forward to `to`,
    /// reading `buffer` bytes at a time.
    pub fn bind(listen: SocketAddr, to: SocketAddr, buffer: usize) -> io::Result<Forward> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(listen)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Forward {
            poll,
            addr: listener.local_addr()?,
            listener,
            to,
            pairs: Slab::new(),
            buf: vec![0; buffer.max(1)].into_boxed_slice(),
            queue: Vec::new(),
            spare: Vec::new(),
            accept_ready: false,
            stats: Stats::default(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Forward until `until` or until `stop` is set; the totals.
    pub fn run(&mut self, until: Instant, stop: &AtomicBool) -> io::Result<Stats> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            if now >= until || stop.load(Ordering::Relaxed) {
                return Ok(self.stats);
            }
            let timeout = if self.queue.is_empty() && !self.accept_ready {
                (until - now).min(Duration::from_millis(100))
            } else {
                Duration::ZERO
            };
            if let Err(err) = self.poll.poll(&mut events, Some(timeout)) {
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            for event in events.iter() {
                if event.token() == LISTENER {
                    self.accept_ready = true;
                    continue;
                }
                let (id, side) = PairId::of(event.token());
                let Some(pair) = self.pairs.get_mut(id.0) else {
                    continue;
                };
                let socket = &mut pair.sockets[side as usize];
                let error = event.is_error();
                // An error or a hangup shows up as readable and writable so
                // that the next read or write meets it.
                if event.is_readable() || event.is_read_closed() || error {
                    socket.readable = true;
                }
                if event.is_read_closed() || error {
                    socket.hangup = true;
                }
                if event.is_writable() || event.is_write_closed() || error {
                    socket.writable = true;
                    socket.connected = true;
                }
                self.drive(id);
            }
            self.drive_queued();
            // After the events, so that no slot freed in this pass is
            // reused while events for its old sockets may still follow.
            if self.accept_ready {
                self.accept();
            }
        }
    }

    /// Drive the pairs left over from earlier passes once each.
    fn drive_queued(&mut self) {
        std::mem::swap(&mut self.queue, &mut self.spare);
        let mut queued = std::mem::take(&mut self.spare);
        for &id in &queued {
            // A pair released meanwhile, or a new one in its slot, is not
            // queued any more.
            match self.pairs.get_mut(id.0) {
                Some(pair) if pair.queued => pair.queued = false,
                _ => continue,
            }
            self.drive(id);
        }
        queued.clear();
        self.spare = queued;
    }

    /// Copy what can be copied both ways, then queue or release the pair.
    fn drive(&mut self, id: PairId) {
        let Some(pair) = self.pairs.get_mut(id.0) else {
            return;
        };
        match drive_pair(pair, &mut self.buf, &mut self.stats) {
            Drive::Wait => {}
            Drive::More => {
                if !pair.queued {
                    pair.queued = true;
                    self.queue.push(id);
                }
            }
            Drive::Done => {
                // Dropping a socket closes it, which also takes it out of
                // the poll set.
                self.pairs.remove(id.0);
                self.stats.released += 1;
            }
        }
    }

    fn accept(&mut self) {
        for _ in 0..ACCEPTS_PER_PASS {
            match self.listener.accept() {
                Ok((client, _)) => self.open(client),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accept_ready = false;
                    return;
                }
                Err(e)
                    if e.kind() == io::ErrorKind::Interrupted
                        || e.kind() == io::ErrorKind::ConnectionAborted => {}
                // Out of descriptors: the connections stay queued until
                // the next one arrives, rather than spinning on the error.
                Err(_) => {
                    self.accept_ready = false;
                    return;
                }
            }
        }
    }

    /// Connect a new client on to the target; a client whose connection
    /// cannot even start is closed at once.
    fn open(&mut self, mut client: TcpStream) {
        let Ok(mut server) = connect(self.to, None) else {
            return;
        };
        if client.set_nodelay(true).is_err() {
            return;
        }
        let entry = self.pairs.vacant_entry();
        let id = PairId(entry.key());
        let registry = self.poll.registry();
        let both = Interest::READABLE | Interest::WRITABLE;
        if registry
            .register(&mut client, id.token(Side::Client), both)
            .and_then(|()| registry.register(&mut server, id.token(Side::Server), both))
            .is_err()
        {
            return;
        }
        entry.insert(Pair {
            sockets: [Socket::new(client, true), Socket::new(server, false)],
            flows: [Flow::default(), Flow::default()],
            queued: false,
        });
        self.stats.pairs += 1;
    }
}

/// One pass over both directions of a pair.
fn drive_pair(pair: &mut Pair, buf: &mut [u8], stats: &mut Stats) -> Drive {
    let [client, server] = &mut pair.sockets;
    let [up, down] = &mut pair.flows;
    let result = pump(client, server, up, buf).and_then(|there| {
        stats.client_to_server_bytes += there.moved;
        let back = pump(server, client, down, buf)?;
        stats.server_to_client_bytes += back.moved;
        Ok(there.more || back.more)
    });
    stats.most_held = stats.most_held.max(up.held.len()).max(down.held.len());
    match result {
        Err(_) => Drive::Done,
        Ok(_) if up.shut && down.shut => Drive::Done,
        Ok(true) => Drive::More,
        Ok(false) => Drive::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener as StdListener;

    /// Two connected loopback sockets: (the test's end, a mio end).
    fn socket_pair() -> (std::net::TcpStream, TcpStream) {
        let listener = StdListener::bind("127.0.0.1:0").unwrap();
        let near = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (far, _) = listener.accept().unwrap();
        far.set_nonblocking(true).unwrap();
        (near, TcpStream::from_std(far))
    }

    fn ready(stream: TcpStream) -> Socket {
        let mut socket = Socket::new(stream, true);
        socket.readable = true;
        socket.writable = true;
        socket
    }

    #[test]
    fn tokens_round_trip_and_never_take_the_listener_token() {
        for key in [0, 1, 7, 1000] {
            for side in [Side::Client, Side::Server] {
                let token = PairId(key).token(side);
                assert_ne!(token, LISTENER);
                assert_eq!(PairId::of(token), (PairId(key), side));
            }
        }
    }

    #[test]
    fn one_pass_reads_at_most_its_bound_and_asks_for_another() {
        let (mut writer, from) = socket_pair();
        let (mut reader, to) = socket_pair();
        let total = 3 * READS_PER_PASS * 1024;
        let data: Vec<u8> = (0..total).map(|i| (i * 7 % 251) as u8).collect();
        writer.write_all(&data).unwrap();
        // Wait until every byte is in the source's receive queue.
        peek_until(&from, total);
        let (mut from, mut to) = (ready(from), ready(to));
        let mut flow = Flow::default();
        let mut buf = [0; 1024];
        let first = pump(&mut from, &mut to, &mut flow, &mut buf).unwrap();
        assert_eq!(first.moved, (READS_PER_PASS * 1024) as u64);
        assert!(first.more && from.readable);
        let mut moved = first.moved;
        loop {
            let pass = pump(&mut from, &mut to, &mut flow, &mut buf).unwrap();
            moved += pass.moved;
            if !pass.more {
                break;
            }
        }
        assert_eq!(moved, total as u64);
        let mut got = vec![0; total];
        reader.read_exact(&mut got).unwrap();
        assert_eq!(got, data);
    }

    /// Wait until `want` bytes are queued in `stream`.
    fn peek_until(stream: &TcpStream, want: usize) {
        let mut buf = vec![0; want];
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match stream.peek(&mut buf) {
                Ok(n) if n == want => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("peek: {e}"),
            }
            assert!(Instant::now() < deadline, "data never arrived");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_full_destination_holds_the_rest_and_stops_reading() {
        let (mut writer, from) = socket_pair();
        let (_reader, to) = socket_pair();
        let (mut from, mut to) = (ready(from), ready(to));
        let mut flow = Flow::default();
        let mut buf = [0; 4096];
        // The reader never reads: its receive queue and the forwarder's
        // send buffer fill, then the flow holds one short write's rest.
        let chunk = vec![b'x'; 64 * 1024];
        let mut passes = 0;
        while flow.held.is_empty() {
            writer.write_all(&chunk).unwrap();
            from.readable = true;
            pump(&mut from, &mut to, &mut flow, &mut buf).unwrap();
            passes += 1;
            assert!(passes < 10_000, "the destination never filled");
        }
        assert!(!to.writable);
        assert!(flow.held.len() <= buf.len());
        // Readable, but holding bytes: nothing more is read.
        from.readable = true;
        let held = flow.held.len();
        let pass = pump(&mut from, &mut to, &mut flow, &mut buf).unwrap();
        assert_eq!((pass.moved, flow.held.len()), (0, held));
    }
}
