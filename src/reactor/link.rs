//! The TCP side of a backend: finding the XMPP server of a domain (static
//! route, else DNS through [`dns::Targets`]), connecting one address at a
//! time, each attempt with a deadline, then carrying bytes. What goes over
//! it is the session's business; this only owns the socket.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use log::debug;
use mio::net::TcpStream;
use mio::{Interest, Registry};

use super::conn::Shared;
use super::token::Owner;
use switchboard_core::dns::{self, Step};

/// A socket with its remembered readiness (edge-triggered: readiness stays
/// true until an operation reports `WouldBlock`).
pub struct Socket {
    pub stream: TcpStream,
    pub readable: bool,
    pub writable: bool,
    /// The peer shut its side (or the socket failed): read to the end.
    peer_closed: bool,
}

/// What one poll event says about a socket.
#[derive(Clone, Copy, Debug)]
pub struct Readiness {
    pub readable: bool,
    pub writable: bool,
    pub closed: bool,
}

impl Socket {
    pub fn new(stream: TcpStream) -> Self {
        Socket {
            stream,
            readable: false,
            writable: false,
            peer_closed: false,
        }
    }

    pub fn mark(&mut self, ready: Readiness) {
        self.readable |= ready.readable;
        self.writable |= ready.writable;
        self.peer_closed |= ready.closed;
    }

    /// A read that did not fill the buffer drained the socket: new data
    /// brings a new edge-triggered event, so no second read is needed to
    /// see `WouldBlock` (a third of the relay's syscalls). Not when the
    /// peer closed: its end of file must still be read.
    pub fn after_read(&mut self, n: usize, capacity: usize) {
        if n < capacity && !self.peer_closed {
            self.readable = false;
        }
    }
}

/// How the server's addresses are being found.
enum Dial {
    Route(std::vec::IntoIter<SocketAddr>),
    Dns(dns::Targets),
}

/// Where a link stands after an input.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// Still resolving or connecting.
    Pending,
    /// The TCP connection to this address is up: start the XMPP stream.
    Connected(SocketAddr),
    /// Every address failed or none was found.
    Failed(String),
}

pub struct Link {
    /// Socket events and DNS answers for this link go to its owner.
    owner: Owner,
    domain: String,
    /// Until connected.
    dial: Option<Dial>,
    socket: Option<Socket>,
    /// The deadline of the connect attempt in flight.
    connecting: Option<Instant>,
}

impl Link {
    /// Start finding and connecting the server of `domain`, at `route`
    /// when one was given (addresses the configuration allows).
    pub fn start(
        domain: &str,
        route: Option<Vec<SocketAddr>>,
        owner: Owner,
        shared: &mut Shared,
    ) -> (Link, Progress) {
        let dial = match route.or_else(|| shared.settings.routes.get(domain).cloned()) {
            Some(addrs) => Dial::Route(addrs.into_iter()),
            None => Dial::Dns(dns::Targets::new(domain, shared.settings.default_port)),
        };
        let mut link = Link {
            owner,
            domain: domain.to_string(),
            dial: Some(dial),
            socket: None,
            connecting: None,
        };
        let progress = link.advance(shared);
        (link, progress)
    }

    /// The connected socket; `None` while resolving or connecting.
    pub fn socket(&mut self) -> Option<&mut Socket> {
        match self.connecting {
            None => self.socket.as_mut(),
            Some(_) => None,
        }
    }

    pub fn mark_ready(&mut self, ready: Readiness) {
        if let Some(socket) = self.socket.as_mut() {
            socket.mark(ready);
        }
    }

    /// The deadline of the connect attempt in flight.
    pub fn deadline(&self) -> Option<Instant> {
        self.connecting
    }

    pub fn deregister(&mut self, registry: &Registry) {
        if let Some(socket) = self.socket.as_mut() {
            let _ = registry.deregister(&mut socket.stream);
        }
    }

    /// A DNS answer for this link.
    pub fn handle_dns_answer(
        &mut self,
        answer: Result<dns::Answer, dns::Error>,
        shared: &mut Shared,
    ) -> Progress {
        let Some(Dial::Dns(targets)) = self.dial.as_mut() else {
            return Progress::Pending;
        };
        targets.handle_answer(answer, shared.srv_weights.next_u64());
        self.advance(shared)
    }

    /// A timer fired: an attempt past its deadline counts as failed.
    pub fn handle_timeout(&mut self, shared: &mut Shared) -> Progress {
        if self.connecting.is_some_and(|d| shared.now >= d) {
            return self.attempt_failed(shared);
        }
        Progress::Pending
    }

    /// After readiness on a connecting socket, see whether the connect
    /// finished (mio: a writable event, then `take_error` and `peer_addr`).
    pub fn check_connected(&mut self, shared: &mut Shared) -> Progress {
        let Some(socket) = self.socket.as_mut().filter(|_| self.connecting.is_some()) else {
            return Progress::Pending;
        };
        if !socket.writable && !socket.readable {
            return Progress::Pending;
        }
        let peer = match socket.stream.take_error() {
            Ok(Some(_)) | Err(_) => None,
            Ok(None) => match socket.stream.peer_addr() {
                Ok(peer) => Some(peer),
                Err(e) if e.kind() == std::io::ErrorKind::NotConnected => {
                    socket.writable = false;
                    socket.readable = false;
                    return Progress::Pending;
                }
                Err(_) => None,
            },
        };
        let Some(peer) = peer else {
            return self.attempt_failed(shared);
        };
        let _ = socket.stream.set_nodelay(true);
        self.connecting = None;
        self.dial = None;
        Progress::Connected(peer)
    }

    fn attempt_failed(&mut self, shared: &mut Shared) -> Progress {
        self.deregister(&shared.registry);
        self.socket = None;
        self.connecting = None;
        if let Some(Dial::Dns(targets)) = self.dial.as_mut() {
            targets.connect_failed();
        }
        self.advance(shared)
    }

    /// Take the next step: a DNS query, a TCP connect, or giving up.
    fn advance(&mut self, shared: &mut Shared) -> Progress {
        loop {
            let step = match self.dial.as_mut() {
                None => return Progress::Pending,
                Some(Dial::Route(addrs)) => addrs
                    .next()
                    .map_or(Step::Exhausted(dns::Error::ConnectFailed), Step::Connect),
                Some(Dial::Dns(targets)) => targets.next_step(),
            };
            match step {
                Step::Query(name, kind) => {
                    shared.dns.query(self.owner, shared.now, &name, kind);
                    return Progress::Pending;
                }
                Step::Connect(addr) => match self.check_found(addr, shared) {
                    Ok(()) => return Progress::Pending,
                    Err(e) => {
                        debug!("{}: connect {addr} failed: {e}", self.domain);
                        if let Some(Dial::Dns(targets)) = self.dial.as_mut() {
                            targets.connect_failed();
                        }
                    }
                },
                Step::Wait => return Progress::Pending,
                Step::Exhausted(why) => {
                    self.dial = None;
                    return Progress::Failed(format!("{}: {why}", self.domain));
                }
            }
        }
    }

    /// An address found by DNS came from whoever controls the client's
    /// `to` domain: unless allowed, it may not point inside the network.
    fn check_found(&mut self, addr: SocketAddr, shared: &mut Shared) -> std::io::Result<()> {
        let found_by_dns = matches!(self.dial, Some(Dial::Dns(_)));
        if found_by_dns && !shared.settings.allow_private_addresses && is_internal(addr.ip()) {
            return Err(std::io::Error::other("internal address refused"));
        }
        self.connect(addr, shared)
    }

    fn connect(&mut self, addr: SocketAddr, shared: &mut Shared) -> std::io::Result<()> {
        let mut stream = TcpStream::connect(addr)?;
        shared.registry.register(
            &mut stream,
            self.owner.token(),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        debug!("{}: connecting to {addr}", self.domain);
        self.socket = Some(Socket::new(stream));
        self.connecting = Some(shared.now + shared.settings.connect_timeout);
        Ok(())
    }
}

/// Loopback, private, link-local, unique-local, unspecified and the like:
/// addresses that reach this machine or its network rather than the
/// Internet.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                // 100.64.0.0/10, carrier-grade NAT (RFC 6598).
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
                || v4.octets()[0] == 0
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_internal(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["192.0.2.1", "8.8.8.8", "2001:db8::1", "::ffff:8.8.8.8"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }
}
