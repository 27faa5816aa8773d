//! The TCP side of a backend, sans-IO: finding the XMPP server of a domain
//! (static route, else DNS through [`dns::Targets`]) and asking the shell
//! to connect to one address at a time, each attempt with a deadline. What
//! goes over the connection is the session's business.

use std::net::SocketAddr;
use std::time::Instant;

use log::debug;

use super::{Owner, Shared, SocketId};
use crate::dns::{self, Step};

/// How the server's addresses are being found.
enum Dial {
    Route(std::vec::IntoIter<SocketAddr>),
    Dns(dns::Targets),
}

/// Where a link stands after an input.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Progress {
    /// Still resolving or connecting.
    Pending,
    /// The TCP connection to this address is up: start the XMPP stream.
    Connected(SocketAddr),
    /// Every address failed or none was found.
    Failed(String),
}

pub(super) struct Link {
    /// Socket events and DNS answers for this link go to its owner.
    owner: Owner,
    domain: String,
    /// Until connected; boxed, since a session keeps its link for life and
    /// the search state is large.
    dial: Option<Box<Dial>>,
    socket: Option<SocketId>,
    /// The address of the connect attempt in flight.
    target: Option<SocketAddr>,
    /// The deadline of the connect attempt in flight.
    connecting: Option<Instant>,
    /// Each address tried and why it failed, for the failure's message.
    failures: Vec<String>,
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
            dial: Some(Box::new(dial)),
            socket: None,
            target: None,
            connecting: None,
            failures: Vec::new(),
        };
        let progress = link.advance(shared);
        (link, progress)
    }

    /// The connected socket; `None` while resolving or connecting.
    pub fn connected(&self) -> Option<SocketId> {
        self.socket.filter(|_| self.connecting.is_none())
    }

    /// The socket, connecting or connected.
    pub fn socket(&self) -> Option<SocketId> {
        self.socket
    }

    /// The deadline of the connect attempt in flight.
    pub fn deadline(&self) -> Option<Instant> {
        self.connecting
    }

    /// Close the socket, if any (the link is being dropped).
    pub fn close(&mut self, shared: &mut Shared) {
        if let Some(id) = self.socket.take() {
            shared.close_socket(id);
        }
        self.connecting = None;
    }

    pub fn handle_dns_answer(
        &mut self,
        answer: Result<dns::Answer, dns::Error>,
        shared: &mut Shared,
    ) -> Progress {
        let Some(Dial::Dns(targets)) = self.dial.as_deref_mut() else {
            return Progress::Pending;
        };
        targets.handle_answer(answer, shared.srv_weights.next_u64());
        self.advance(shared)
    }

    /// A timer fired: an attempt past its deadline counts as failed.
    pub fn handle_timeout(&mut self, shared: &mut Shared) -> Progress {
        if self.connecting.is_some_and(|d| shared.now >= d) {
            return self.attempt_failed("timed out", shared);
        }
        Progress::Pending
    }

    /// The shell's connect on `id` completed.
    pub fn handle_connected(&mut self, id: SocketId, peer: SocketAddr) -> Progress {
        if self.socket != Some(id) || self.connecting.is_none() {
            return Progress::Pending;
        }
        self.connecting = None;
        self.target = None;
        self.dial = None;
        self.failures = Vec::new();
        Progress::Connected(peer)
    }

    /// The shell's connect on `id` failed (refused, unreachable...).
    pub fn handle_connect_failed(
        &mut self,
        id: SocketId,
        why: &str,
        shared: &mut Shared,
    ) -> Progress {
        if self.socket != Some(id) || self.connecting.is_none() {
            return Progress::Pending;
        }
        self.attempt_failed(why, shared)
    }

    fn attempt_failed(&mut self, why: &str, shared: &mut Shared) -> Progress {
        if let Some(id) = self.socket.take() {
            shared.close_socket(id);
        }
        if let Some(addr) = self.target.take() {
            self.failures.push(format!("{addr}: {why}"));
        }
        self.connecting = None;
        if let Some(Dial::Dns(targets)) = self.dial.as_deref_mut() {
            targets.connect_failed();
        }
        self.advance(shared)
    }

    /// Take the next step: a DNS query, a TCP connect, or giving up.
    fn advance(&mut self, shared: &mut Shared) -> Progress {
        loop {
            let step = match self.dial.as_deref_mut() {
                None => return Progress::Pending,
                Some(Dial::Route(addrs)) => addrs
                    .next()
                    .map_or(Step::Exhausted(dns::Error::ConnectFailed), Step::Connect),
                Some(Dial::Dns(targets)) => targets.next_step(),
            };
            match step {
                Step::Query(name, kind) => {
                    shared.query_dns(self.owner, &name, kind);
                    return Progress::Pending;
                }
                Step::Connect(addr) => {
                    // Static routes are the operator's own; what DNS found
                    // is whoever controls the domain's.
                    let refused = match self.dial.as_deref() {
                        Some(Dial::Dns(_)) => shared.settings.destinations.refuse(addr),
                        _ => None,
                    };
                    if let Some(why) = refused {
                        debug!("{}: {addr} refused: {why}", self.domain);
                        self.failures.push(format!("{addr}: {why}"));
                        if let Some(Dial::Dns(targets)) = self.dial.as_deref_mut() {
                            targets.connect_failed();
                        }
                        continue;
                    }
                    debug!("{}: connecting to {addr}", self.domain);
                    self.socket = Some(shared.connect(self.owner, addr));
                    self.target = Some(addr);
                    self.connecting = Some(shared.now + shared.settings.connect_timeout);
                    return Progress::Pending;
                }
                Step::Wait => return Progress::Pending,
                Step::Exhausted(why) => {
                    // What an operator can change: the route, or DNS.
                    let hint = match self.dial.take().as_deref() {
                        Some(Dial::Route(_)) => format!(
                            "is the XMPP server listening there? the address is backend.routes.\"{}\"",
                            self.domain
                        ),
                        _ => format!(
                            "check the SRV record _xmpp-client._tcp.{}, or give the domain a route in [backend.routes]",
                            self.domain
                        ),
                    };
                    let tried = std::mem::take(&mut self.failures);
                    return Progress::Failed(if tried.is_empty() {
                        format!("{why}; {hint}")
                    } else {
                        format!("{why} ({}); {hint}", tried.join("; "))
                    });
                }
            }
        }
    }
}
