//! Temporary compile shim (replaced by the dns branch).
use std::net::SocketAddr;
use std::time::{Duration, Instant};
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QueryId(u64);
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Srv,
    A,
    Aaaa,
}
#[derive(Debug)]
pub enum Answer {
    Addrs(Vec<std::net::IpAddr>),
}
#[derive(Debug)]
pub struct Error;
pub struct ResolverConfig {
    pub servers: Vec<SocketAddr>,
    pub timeout: Duration,
    pub attempts: u32,
    pub max_cache_entries: usize,
}
pub struct Resolver;
impl Resolver {
    pub fn new(_c: ResolverConfig, _seed: u64) -> Self {
        Resolver
    }
    pub fn query(&mut self, _now: Instant, _name: &str, _kind: Kind) -> QueryId {
        QueryId(0)
    }
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        None
    }
    pub fn handle_datagram(&mut self, _now: Instant, _from: SocketAddr, _b: &[u8]) {}
    pub fn handle_timeout(&mut self, _now: Instant) {}
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    pub fn poll_answer(&mut self) -> Option<(QueryId, Result<Answer, Error>)> {
        None
    }
}
pub fn system_servers() -> Result<Vec<SocketAddr>, String> {
    Ok(vec![])
}
pub enum Step {
    Query(String, Kind),
    Connect(SocketAddr),
    Exhausted,
}
pub struct Targets;
impl Targets {
    pub fn new(_d: &str, _p: u16) -> Self {
        Targets
    }
    pub fn next_step(&mut self) -> Step {
        Step::Exhausted
    }
    pub fn handle_answer(&mut self, _a: Result<Answer, Error>, _r: u64) {}
    pub fn connect_failed(&mut self) {}
}
