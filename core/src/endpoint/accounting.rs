//! The one owner of resource accounting: every client connection, session,
//! backend link and buffered byte is counted here against its limit, per
//! client address too, and every refusal goes through here so that it is
//! answered and logged the same way on every path.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Instant;

use super::log_gate::LogGate;
use super::settings::Limits;

/// Which limit refused something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    ConnectionsPerAddress,
    Sessions,
    SessionsPerAddress,
    Buffers,
}

impl Refusal {
    /// The configuration key of the limit.
    pub fn key(self) -> &'static str {
        match self {
            Refusal::ConnectionsPerAddress => "server.max_connections_per_address",
            Refusal::Sessions => "server.max_sessions",
            Refusal::SessionsPerAddress => "server.max_sessions_per_address",
            Refusal::Buffers => "server.max_buffered_bytes",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// What is in use now; every count returns to zero when all clients leave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub connections: usize,
    pub sessions: usize,
    /// Backend sockets, connecting or connected.
    pub links: usize,
    pub buffered_bytes: usize,
    /// Addresses with a connection or a session.
    pub addresses: usize,
    /// BOSH sessions that ended lately, remembered to tell their clients
    /// why (at most `max_sessions`, for twice the longest `wait`).
    pub ended_sessions: usize,
}

#[derive(Clone, Copy, Debug, Default)]
struct PerAddress {
    connections: usize,
    sessions: usize,
}

pub struct Accounting {
    limits: Limits,
    usage: Usage,
    /// The buffers went back under their budget: reads refused for it
    /// may go on.
    budget_freed: bool,
    per_address: HashMap<IpAddr, PerAddress>,
    log: LogGate,
}

impl Accounting {
    pub fn new(limits: Limits) -> Self {
        Accounting {
            limits,
            usage: Usage::default(),
            budget_freed: false,
            per_address: HashMap::new(),
            log: LogGate::default(),
        }
    }

    /// New limits apply from now on; what is open stays open.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn usage(&self) -> Usage {
        Usage {
            addresses: self.per_address.len(),
            ..self.usage
        }
    }

    /// Whether another connection may be accepted at all (accept pauses at
    /// the limit: the kernel's queue holds the rest).
    pub fn may_accept(&self) -> bool {
        self.usage.connections < self.limits.max_connections
    }

    /// A connection was accepted; it is counted whatever the verdict,
    /// since it holds a descriptor until it is closed.
    pub fn connection_opened(&mut self, ip: IpAddr) -> Result<(), Refusal> {
        self.usage.connections += 1;
        let entry = self.per_address.entry(ip).or_default();
        entry.connections += 1;
        if entry.connections > self.limits.max_connections_per_address {
            return Err(Refusal::ConnectionsPerAddress);
        }
        Ok(())
    }

    pub fn connection_closed(&mut self, ip: IpAddr) {
        self.usage.connections = self.usage.connections.saturating_sub(1);
        self.release(ip, |a| a.connections = a.connections.saturating_sub(1));
    }

    /// A session wants to start; counted only when allowed.
    pub fn open_session(&mut self, ip: IpAddr) -> Result<(), Refusal> {
        if self.usage.sessions >= self.limits.max_sessions {
            return Err(Refusal::Sessions);
        }
        if self.usage.buffered_bytes > self.limits.max_buffered_bytes {
            return Err(Refusal::Buffers);
        }
        let entry = self.per_address.entry(ip).or_default();
        if entry.sessions >= self.limits.max_sessions_per_address {
            if entry.connections == 0 && entry.sessions == 0 {
                self.per_address.remove(&ip);
            }
            return Err(Refusal::SessionsPerAddress);
        }
        entry.sessions += 1;
        self.usage.sessions += 1;
        Ok(())
    }

    pub fn session_closed(&mut self, ip: IpAddr) {
        self.usage.sessions = self.usage.sessions.saturating_sub(1);
        self.release(ip, |a| a.sessions = a.sessions.saturating_sub(1));
    }

    pub fn link_opened(&mut self) {
        self.usage.links += 1;
    }

    pub fn link_closed(&mut self) {
        self.usage.links = self.usage.links.saturating_sub(1);
    }

    /// An owner's buffers went from `old` to `new` bytes.
    pub fn buffered(&mut self, old: usize, new: usize) {
        let was_over = !self.within_budget();
        self.usage.buffered_bytes = (self.usage.buffered_bytes + new).saturating_sub(old);
        self.budget_freed |= was_over && self.within_budget();
    }

    /// Relayed data is read only while the buffers together are within
    /// their budget (HTTP requests always: they are bounded, and BOSH
    /// requests are what drains BOSH buffers).
    pub fn within_budget(&self) -> bool {
        self.usage.buffered_bytes <= self.limits.max_buffered_bytes
    }

    /// Whether the buffers went back under their budget since last asked.
    pub fn take_budget_freed(&mut self) -> bool {
        std::mem::take(&mut self.budget_freed)
    }

    /// Log a refusal at WARN, at most once a minute per limit.
    pub fn log_refusal(&mut self, now: Instant, refusal: Refusal, ip: IpAddr) {
        self.log.warn(
            now,
            refusal.key(),
            format_args!("limit {refusal} reached: refused {ip}"),
        );
    }

    fn release(&mut self, ip: IpAddr, change: impl FnOnce(&mut PerAddress)) {
        if let Some(entry) = self.per_address.get_mut(&ip) {
            change(entry);
            if entry.connections == 0 && entry.sessions == 0 {
                self.per_address.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_connections: 3,
            max_connections_per_address: 2,
            max_sessions: 3,
            max_sessions_per_address: 2,
            max_buffered_bytes: 100,
        }
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn one_address_cannot_take_more_than_its_share() {
        let mut a = Accounting::new(limits());
        assert_eq!(a.connection_opened(A), Ok(()));
        assert_eq!(a.connection_opened(A), Ok(()));
        assert_eq!(a.connection_opened(A), Err(Refusal::ConnectionsPerAddress));
        assert!(!a.may_accept(), "the refused one still holds a descriptor");
        a.connection_closed(A);
        assert!(a.may_accept());
        assert_eq!(a.open_session(A), Ok(()));
        assert_eq!(a.open_session(A), Ok(()));
        assert_eq!(a.open_session(A), Err(Refusal::SessionsPerAddress));
        assert_eq!(a.open_session(B), Ok(()));
        assert_eq!(a.open_session(B), Err(Refusal::Sessions));
    }

    #[test]
    fn counts_return_to_zero_and_forget_the_address() {
        let mut a = Accounting::new(limits());
        let _ = a.connection_opened(A);
        let _ = a.open_session(A);
        a.link_opened();
        a.buffered(0, 40);
        a.buffered(40, 10);
        assert_eq!(a.usage().buffered_bytes, 10);
        a.buffered(10, 0);
        a.link_closed();
        a.session_closed(A);
        a.connection_closed(A);
        assert_eq!(a.usage(), Usage::default());
    }

    #[test]
    fn over_the_buffer_budget_no_session_starts_until_it_frees() {
        let mut a = Accounting::new(limits());
        a.buffered(0, 101);
        assert!(!a.within_budget());
        assert!(!a.take_budget_freed());
        assert_eq!(a.open_session(A), Err(Refusal::Buffers));
        assert_eq!(a.usage().addresses, 0, "a refused session leaves nothing");
        a.buffered(101, 100);
        assert!(a.within_budget());
        assert!(a.take_budget_freed(), "reads refused for it may go on");
        assert!(!a.take_budget_freed());
    }
}
