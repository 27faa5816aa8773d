//! Finding an XMPP server: DNS SRV and A/AAAA lookups (RFC 6120 §3.2).
//!
//! Contract: everything here is sans-IO; the binary reads /etc/resolv.conf.
//! - [`Resolver`] turns lookups into UDP datagrams and datagrams back into
//!   answers; the reactor owns the one nonblocking UDP socket, feeds
//!   `handle_datagram`/`handle_timeout` and drains `poll_transmit`,
//!   `poll_answer` and `poll_timeout`, in that order, after every input.
//! - [`Targets`] decides, for one XMPP domain, what to look up next and which
//!   address to connect to next; it owns no resolver, so its caller passes
//!   answers in.
//!
//! Empty answers (NXDOMAIN, NODATA) are `Ok` and empty so callers fall back;
//! only server failures and timeouts are errors.

mod cache;
mod resolver;
mod targets;

pub use resolver::{QueryId, Resolver, ResolverConfig, MAX_DATAGRAM, MAX_OUTSTANDING};
pub use targets::{Step, Targets, MAX_CONNECT_ATTEMPTS, XMPP_CLIENT_PORT};

use std::fmt;
use std::net::IpAddr;

/// What a lookup asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Service records (RFC 2782), e.g. `_xmpp-client._tcp.example.com`.
    Srv,
    /// IPv4 addresses (RFC 1035 §3.4.1).
    A,
    /// IPv6 addresses (RFC 3596).
    Aaaa,
}

/// One SRV record (RFC 2782).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower is tried first.
    pub priority: u16,
    /// Relative chance within one priority.
    pub weight: u16,
    /// Port on the target host.
    pub port: u16,
    /// Target host name without its trailing dot; `"."` means the service is
    /// decidedly not available (RFC 2782, RFC 6120 §3.2.1).
    pub target: String,
}

/// The records a lookup found. An empty list means the name or the record
/// type does not exist (NXDOMAIN or NODATA).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Answer to a [`Kind::Srv`] lookup.
    Srv(Vec<SrvRecord>),
    /// Answer to a [`Kind::A`] or [`Kind::Aaaa`] lookup, CNAME chains followed.
    Addrs(Vec<IpAddr>),
}

/// Why a lookup or the search for a server failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// No server answered within `timeout` on any attempt.
    Timeout,
    /// The last server asked answered with this failure rcode (SERVFAIL,
    /// REFUSED, ...).
    ServerFailure(u16),
    /// The name is not a valid DNS name.
    InvalidName,
    /// The resolver has no servers to ask.
    NoServers,
    /// More than [`MAX_OUTSTANDING`] lookups are in flight.
    TooManyQueries,
    /// The query message could not be encoded.
    Encode,
    /// The domain publishes a single SRV record with target `"."`
    /// (RFC 2782; RFC 6120 §3.2.1).
    ServiceUnavailable,
    /// No address was found for the domain or its SRV targets.
    NoAddresses,
    /// Every address found was tried and none accepted a connection.
    ConnectFailed,
    /// [`MAX_CONNECT_ATTEMPTS`] connections were tried without success.
    TooManyAttempts,
    /// /etc/resolv.conf could not be read or parsed.
    System(String),
    /// The OS random generator gave no message id.
    NoRandomness,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("dns lookup timed out"),
            Self::ServerFailure(code) => write!(f, "dns server failure (rcode {code})"),
            Self::InvalidName => f.write_str("invalid domain name"),
            Self::NoServers => f.write_str("no dns servers configured"),
            Self::TooManyQueries => f.write_str("too many dns lookups in flight"),
            Self::Encode => f.write_str("cannot encode dns query"),
            Self::ServiceUnavailable => f.write_str("xmpp service decidedly not available"),
            Self::NoAddresses => f.write_str("no address found for domain"),
            Self::ConnectFailed => f.write_str("could not connect to any address"),
            Self::TooManyAttempts => f.write_str("too many connection attempts"),
            Self::System(why) => write!(f, "cannot read resolver configuration: {why}"),
            Self::NoRandomness => f.write_str("no random dns message id"),
        }
    }
}

impl std::error::Error for Error {}

/// A seeded generator (SplitMix64) for SRV weight draws (RFC 2782), which
/// guard nothing: not for ids, which come from [`crate::ids`].
#[derive(Clone, Debug)]
pub struct FastRng(pub u64);

impl FastRng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
