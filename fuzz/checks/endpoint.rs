//! The endpoint fed arbitrary event sequences: connections accepted, bytes
//! read (pieces of real requests, frames and server streams, or raw fuzz
//! bytes), peers closing, partial writes, connects finishing or failing,
//! time passing by any step, turns, DNS datagrams, a drain.
//!
//! Input: a stream of operations, each a byte choosing the event and the
//! bytes after it its arguments (see `step`).
//!
//! Invariants: no panic; every command names a socket the endpoint gave
//! out and has not closed (a `Connect` a new one); an output is bounded;
//! the counters agree with the sockets the driver holds (client
//! connections, backend links); after every peer has closed and the clock
//! has run an hour, every counter is zero and no deadline is in the past.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::common::{self, pick, Input};
use switchboard_core::backend::tls::Clock;
use switchboard_core::dns::ResolverConfig;
use switchboard_core::endpoint::{Command, Endpoint, Limits, Settings, SocketId, Usage};

const SERVER: &str = "127.0.0.1:5222";
const DNS: &str = "127.0.0.1:53";
/// An output may exceed its cap (4 KiB in `Settings::tight`) by what one
/// input produces.
const OUTPUT_BOUND: usize = 80 * 1024;
const STEPS_MS: [u64; 8] = [0, 1, 10, 100, 1_000, 5_000, 30_000, 120_000];

const UPGRADE: &[u8] = b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n";
const SERVER_STREAM: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='s1' version='1.0'>\
<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>";
const STANZA: &[u8] = b"<message to='a@localhost'><body>hi</body></message>";

fn settings() -> Settings {
    let server = SERVER.parse().expect("an address");
    let mut settings = Settings::tight("localhost", server, common::tls(), Clock::default());
    settings.bosh.max_hold = 2;
    settings.limits = Limits {
        max_connections: 16,
        max_connections_per_address: 6,
        max_sessions: 8,
        max_sessions_per_address: 4,
        new_sessions_per_second_per_address: 2,
        max_buffered_bytes: 64 * 1024,
    };
    settings.trusted_proxies = vec!["127.0.0.1".parse().expect("an address")];
    settings
}

/// The sockets the driver holds, as the shell would.
#[derive(Default)]
struct Sockets {
    clients: Vec<SocketId>,
    backends: Vec<SocketId>,
    connecting: Vec<SocketId>,
    /// Every id ever given, to tell a new one from a reused one.
    given: HashSet<SocketId>,
}

impl Sockets {
    fn all(&self) -> Vec<SocketId> {
        self.clients.iter().chain(&self.backends).copied().collect()
    }

    fn forget(&mut self, id: SocketId) -> bool {
        let before = self.clients.len() + self.backends.len();
        self.clients.retain(|&s| s != id);
        self.backends.retain(|&s| s != id);
        self.connecting.retain(|&s| s != id);
        before != self.clients.len() + self.backends.len()
    }
}

struct Driver {
    endpoint: Endpoint,
    sockets: Sockets,
    now: Instant,
    /// The last sid seen in an output, for requests to a live session.
    sid: Option<String>,
}

pub fn check(data: &[u8]) {
    let start = Instant::now();
    let resolver = ResolverConfig {
        servers: vec![DNS.parse().expect("an address")],
        ..ResolverConfig::default()
    };
    let Ok(endpoint) = Endpoint::new(settings(), resolver, start) else {
        return;
    };
    let mut driver = Driver {
        endpoint,
        sockets: Sockets::default(),
        now: start,
        sid: None,
    };
    let mut input = Input(data);
    while !input.is_empty() {
        driver.step(&mut input);
        driver.commands();
        driver.check();
    }
    // Everyone leaves; an hour passes.
    for id in driver.sockets.all() {
        driver.endpoint.handle_peer_closed(driver.now, id);
        driver.commands();
    }
    for _ in 0..720 {
        driver.advance(Duration::from_secs(5));
    }
    let usage = driver.endpoint.usage();
    assert_eq!(usage, Usage::default(), "left after everyone went");
    assert_eq!(driver.endpoint.sessions(), 0);
}

impl Driver {
    fn step(&mut self, input: &mut Input) {
        let now = self.now;
        let op = input.byte();
        match op % 10 {
            0 | 1 => {
                let peer = SocketAddr::from(([10, 0, 0, input.byte() % 4], 40_000));
                let id = self.endpoint.handle_accepted(now, peer);
                self.give(id);
                self.sockets.clients.push(id);
            }
            2 | 3 => {
                let Some(&id) = pick(&self.sockets.all(), input.byte()) else {
                    return;
                };
                let bytes = self.piece(input);
                self.endpoint.handle_read(now, id, &bytes);
            }
            4 => {
                if let Some(&id) = pick(&self.sockets.all(), input.byte()) {
                    self.endpoint.handle_peer_closed(now, id);
                }
            }
            5 => {
                let Some(&id) = pick(&self.sockets.all(), input.byte()) else {
                    return;
                };
                let output = self.endpoint.output(id);
                let n = output.len().min(usize::from(input.byte()) * 64);
                let written = String::from_utf8_lossy(&output[..n]).into_owned();
                if let Some(sid) = written
                    .split("sid='")
                    .nth(1)
                    .and_then(|s| s.split('\'').next())
                {
                    self.sid = Some(sid.to_string());
                }
                self.endpoint.handle_written(now, id, n);
            }
            6 => {
                let Some(&id) = pick(&self.sockets.connecting, input.byte()) else {
                    return;
                };
                self.sockets.connecting.retain(|&s| s != id);
                if input.byte().is_multiple_of(4) {
                    // The endpoint answers with a Close of the socket.
                    self.endpoint.handle_connect_failed(now, id, "refused");
                } else {
                    let server = SERVER.parse().expect("an address");
                    self.endpoint.handle_connected(now, id, server);
                }
            }
            7 => {
                let ms = *pick(&STEPS_MS, input.byte()).unwrap_or(&0);
                self.advance(Duration::from_millis(ms));
            }
            8 => {
                if let Some(&id) = pick(&self.sockets.all(), input.byte()) {
                    self.endpoint.handle_turn(now, id);
                }
            }
            _ => {
                if input.byte() == 0xff {
                    self.endpoint.begin_drain(now);
                } else {
                    let len = usize::from(input.byte());
                    let bytes = input.bytes(len).to_vec();
                    let dns = DNS.parse().expect("an address");
                    self.endpoint.handle_datagram(now, dns, &bytes);
                }
            }
        }
    }

    /// Bytes a peer sends: a piece of something real, whole or cut, or
    /// raw input.
    fn piece(&self, input: &mut Input) -> Vec<u8> {
        let sid = self.sid.as_deref().unwrap_or("none");
        let rid = 1_000 + u64::from(input.byte());
        let bosh = |body: String| {
            format!(
                "POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        };
        let open =
            b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";
        let mask = common::mask(input.0);
        let whole = match input.byte() % 9 {
            0 => bosh(format!(
                "<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' to='localhost' wait='2' hold='1' ver='1.11'/>"
            )),
            1 => bosh(format!(
                "<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' sid='{sid}'>{}</body>",
                String::from_utf8_lossy(STANZA)
            )),
            2 => bosh(format!(
                "<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' sid='{sid}' type='terminate'/>"
            )),
            3 => UPGRADE.to_vec(),
            4 => common::client_frame(common::FIN | common::OP_TEXT, open, mask),
            5 => common::client_frame(common::FIN | common::OP_TEXT, STANZA, mask),
            6 => SERVER_STREAM.to_vec(),
            7 => STANZA.to_vec(),
            _ => {
                let len = usize::from(input.byte());
                return input.bytes(len).to_vec();
            }
        };
        // Whole, or cut where the input says.
        let cut = usize::from(input.byte());
        if cut == 0 || cut >= whole.len() {
            whole
        } else {
            whole[..cut].to_vec()
        }
    }

    fn give(&mut self, id: SocketId) {
        assert!(self.sockets.given.insert(id), "{id:?} given twice");
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        if self
            .endpoint
            .poll_timeout()
            .is_some_and(|at| at <= self.now)
        {
            self.endpoint.handle_timeout(self.now);
            self.commands();
        }
        self.check();
    }

    fn commands(&mut self) {
        while let Some(command) = self.endpoint.poll_command() {
            match command {
                Command::Connect { id, .. } => {
                    self.give(id);
                    self.sockets.backends.push(id);
                    self.sockets.connecting.push(id);
                }
                Command::Close(id) => {
                    assert!(self.sockets.forget(id), "close of {id:?}, not held");
                }
                Command::Turn(id) => {
                    assert!(self.sockets.all().contains(&id), "turn of {id:?}, not held");
                }
                Command::SendDatagram { .. } => {}
            }
        }
    }

    fn check(&self) {
        let usage = self.endpoint.usage();
        assert_eq!(usage.connections, self.sockets.clients.len(), "{usage:?}");
        assert_eq!(usage.links, self.sockets.backends.len(), "{usage:?}");
        for id in self.sockets.all() {
            let len = self.endpoint.output(id).len();
            assert!(len <= OUTPUT_BOUND, "{id:?} holds {len} bytes");
        }
        if let Some(at) = self.endpoint.poll_timeout() {
            // Due work is done by the next `advance`; it is never far past.
            assert!(
                at + Duration::from_secs(200) > self.now,
                "a deadline long past"
            );
        }
    }
}
