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
    SessionRate,
    Buffers,
}

impl Refusal {
    /// The configuration key of the limit.
    pub fn key(self) -> &'static str {
        match self {
            Refusal::ConnectionsPerAddress => "server.max_connections_per_address",
            Refusal::Sessions => "server.max_sessions",
            Refusal::SessionsPerAddress => "server.max_sessions_per_address",
            Refusal::SessionRate => "server.new_sessions_per_second_per_address",
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

/// New sessions an address may start at once, as a multiple of its rate.
const BURST: f64 = 5.0;

#[derive(Clone, Copy, Debug)]
struct PerAddress {
    connections: usize,
    sessions: usize,
    /// The token bucket of new sessions (BURST × the rate when full).
    tokens: f64,
    refilled: Instant,
}

impl PerAddress {
    fn is_idle(&self) -> bool {
        self.connections == 0 && self.sessions == 0
    }
}

pub struct Accounting {
    limits: Limits,
    usage: Usage,
    /// By address: IPv4 addresses, IPv6 /64 prefixes (one host's share).
    per_address: HashMap<IpAddr, PerAddress>,
    /// Trusted proxies: counted, but limited only as a whole; the clients
    /// behind them are limited by their forwarded addresses.
    exempt: Vec<IpAddr>,
    log: LogGate,
    /// The buffers went back under their budget: reads refused for it
    /// may go on.
    budget_freed: bool,
}

/// The share an address is counted under: an IPv4 address, or the /64 of
/// an IPv6 one (a host gets a whole /64 to pick from).
fn share(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
        v4 => v4,
    }
}

impl Accounting {
    pub fn new(limits: Limits, exempt: Vec<IpAddr>) -> Self {
        Accounting {
            limits,
            usage: Usage::default(),
            per_address: HashMap::new(),
            exempt,
            log: LogGate::default(),
            budget_freed: false,
        }
    }

    /// New limits apply from now on; what is open stays open.
    pub fn set_limits(&mut self, limits: Limits, exempt: Vec<IpAddr>) {
        self.limits = limits;
        self.exempt = exempt;
    }

    pub fn usage(&self) -> Usage {
        Usage {
            addresses: self.per_address.values().filter(|a| !a.is_idle()).count(),
            ..self.usage
        }
    }

    fn is_exempt(&self, ip: IpAddr) -> bool {
        self.exempt.contains(&ip) || self.exempt.contains(&share(ip))
    }

    /// Whether another connection may be accepted at all (accept pauses at
    /// the limit: the kernel's queue holds the rest).
    pub fn may_accept(&self) -> bool {
        self.usage.connections < self.limits.max_connections
    }

    /// A connection was accepted; it is counted whatever the verdict,
    /// since it holds a descriptor until it is closed.
    pub fn connection_opened(&mut self, now: Instant, ip: IpAddr) -> Result<(), Refusal> {
        self.usage.connections += 1;
        if self.is_exempt(ip) {
            return Ok(());
        }
        let entry = self.entry(now, ip);
        entry.connections += 1;
        if entry.connections > self.limits.max_connections_per_address {
            return Err(Refusal::ConnectionsPerAddress);
        }
        Ok(())
    }

    pub fn connection_closed(&mut self, ip: IpAddr) {
        self.usage.connections = self.usage.connections.saturating_sub(1);
        if !self.is_exempt(ip) {
            self.release(ip, |a| a.connections = a.connections.saturating_sub(1));
        }
    }

    /// A session wants to start for a client at `ip`; counted only when
    /// allowed.
    pub fn open_session(&mut self, now: Instant, ip: IpAddr) -> Result<(), Refusal> {
        if self.usage.sessions >= self.limits.max_sessions {
            return Err(Refusal::Sessions);
        }
        if !self.within_budget() {
            return Err(Refusal::Buffers);
        }
        if !self.is_exempt(ip) {
            let limits = self.limits;
            let entry = self.entry(now, ip);
            if entry.sessions >= limits.max_sessions_per_address {
                return Err(Refusal::SessionsPerAddress);
            }
            let rate = f64::from(limits.new_sessions_per_second_per_address);
            let elapsed = now.saturating_duration_since(entry.refilled).as_secs_f64();
            entry.tokens = (entry.tokens + elapsed * rate).min(BURST * rate);
            entry.refilled = now;
            if entry.tokens < 1.0 {
                return Err(Refusal::SessionRate);
            }
            entry.tokens -= 1.0;
            entry.sessions += 1;
        }
        self.usage.sessions += 1;
        Ok(())
    }

    pub fn session_closed(&mut self, ip: IpAddr) {
        self.usage.sessions = self.usage.sessions.saturating_sub(1);
        if !self.is_exempt(ip) {
            self.release(ip, |a| a.sessions = a.sessions.saturating_sub(1));
        }
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

    /// The entry of `ip`'s share, new ones with a full bucket. Idle
    /// entries stay while their bucket refills (or a client could reset
    /// its rate by leaving); past a bound they are swept.
    fn entry(&mut self, now: Instant, ip: IpAddr) -> &mut PerAddress {
        let bound = self.limits.max_connections + self.limits.max_sessions;
        if self.per_address.len() > bound {
            self.per_address.retain(|_, a| !a.is_idle());
        }
        let full = BURST * f64::from(self.limits.new_sessions_per_second_per_address);
        self.per_address.entry(share(ip)).or_insert(PerAddress {
            connections: 0,
            sessions: 0,
            tokens: full,
            refilled: now,
        })
    }

    fn release(&mut self, ip: IpAddr, change: impl FnOnce(&mut PerAddress)) {
        if let Some(entry) = self.per_address.get_mut(&share(ip)) {
            change(entry);
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
            new_sessions_per_second_per_address: 10,
            max_buffered_bytes: 100,
        }
    }

    fn accounting() -> Accounting {
        Accounting::new(limits(), Vec::new())
    }

    static T0: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);
    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn one_address_cannot_take_more_than_its_share() {
        let mut a = accounting();
        assert_eq!(a.connection_opened(*T0, A), Ok(()));
        assert_eq!(a.connection_opened(*T0, A), Ok(()));
        assert_eq!(
            a.connection_opened(*T0, A),
            Err(Refusal::ConnectionsPerAddress)
        );
        assert!(!a.may_accept(), "the refused one still holds a descriptor");
        a.connection_closed(A);
        assert!(a.may_accept());
        assert_eq!(a.open_session(*T0, A), Ok(()));
        assert_eq!(a.open_session(*T0, A), Ok(()));
        assert_eq!(a.open_session(*T0, A), Err(Refusal::SessionsPerAddress));
        assert_eq!(a.open_session(*T0, B), Ok(()));
        assert_eq!(a.open_session(*T0, B), Err(Refusal::Sessions));
    }

    #[test]
    fn counts_return_to_zero_and_forget_the_address() {
        let mut a = accounting();
        let _ = a.connection_opened(*T0, A);
        let _ = a.open_session(*T0, A);
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
        let mut a = accounting();
        a.buffered(0, 101);
        assert!(!a.within_budget());
        assert!(!a.take_budget_freed());
        assert_eq!(a.open_session(*T0, A), Err(Refusal::Buffers));
        assert_eq!(a.usage().addresses, 0, "a refused session leaves nothing");
        a.buffered(101, 100);
        assert!(a.within_budget());
        assert!(a.take_budget_freed(), "reads refused for it may go on");
        assert!(!a.take_budget_freed());
    }

    #[test]
    fn new_sessions_from_one_address_are_rate_limited_and_leaving_does_not_reset_it() {
        let mut limits = limits();
        limits.max_sessions = 100;
        limits.max_sessions_per_address = 100;
        limits.new_sessions_per_second_per_address = 2;
        let mut a = Accounting::new(limits, Vec::new());
        let t0 = *T0;
        // A burst of five times the rate, then one per half second.
        for _ in 0..10 {
            assert_eq!(a.open_session(t0, A), Ok(()));
            a.session_closed(A);
        }
        assert_eq!(a.open_session(t0, A), Err(Refusal::SessionRate));
        assert_eq!(a.open_session(t0, B), Ok(()), "another address has its own");
        let later = t0 + std::time::Duration::from_millis(500);
        assert_eq!(a.open_session(later, A), Ok(()));
        assert_eq!(a.open_session(later, A), Err(Refusal::SessionRate));
        assert_eq!(a.usage().addresses, 2, "A and B each hold a session");
    }

    #[test]
    fn an_ipv6_host_is_counted_by_its_64_and_trusted_proxies_as_a_whole() {
        let mut a = Accounting::new(limits(), vec!["127.0.0.1".parse().unwrap()]);
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(a.connection_opened(*T0, one), Ok(()));
        assert_eq!(a.connection_opened(*T0, other), Ok(()));
        a.connection_closed(one);
        a.connection_closed(other);
        let mut a = Accounting::new(limits(), vec!["127.0.0.1".parse().unwrap()]);
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(a.connection_opened(*T0, proxy), Ok(()));
        }
        assert!(!a.may_accept(), "the proxy counts toward the whole");
        let mut b = Accounting::new(limits(), Vec::new());
        assert_eq!(b.connection_opened(*T0, one), Ok(()));
        assert_eq!(b.connection_opened(*T0, other), Ok(()));
        assert_eq!(
            b.connection_opened(*T0, "2001:db8:1:2::77".parse().unwrap()),
            Err(Refusal::ConnectionsPerAddress),
            "one /64, one share"
        );
    }
}
