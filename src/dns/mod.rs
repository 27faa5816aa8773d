//! DNS for finding an XMPP server (RFC 6120 §3.2), sans-IO.
//!
//! [`Resolver`] builds queries and reads answers with hickory-proto; the
//! reactor sends and receives its datagrams on one nonblocking UDP socket.
//! [`Targets`] walks SRV records and addresses for one domain in the order
//! RFC 6120 §3.2.1 and RFC 2782 give. [`system_servers`] reads
//! /etc/resolv.conf once at start.

mod resolver;
mod targets;

pub use resolver::{Answer, Error, Kind, QueryId, Resolver, ResolverConfig, SrvRecord};
pub use targets::{Step, Targets};

use std::net::SocketAddr;

/// The nameservers of /etc/resolv.conf, on port 53.
pub fn system_servers() -> Result<Vec<SocketAddr>, String> {
    let text = std::fs::read("/etc/resolv.conf").map_err(|e| format!("/etc/resolv.conf: {e}"))?;
    let conf = resolv_conf::Config::parse(&text).map_err(|e| format!("/etc/resolv.conf: {e}"))?;
    Ok(conf
        .nameservers
        .iter()
        .map(|ip| SocketAddr::new(ip.into(), 53))
        .collect())
}
