//! Sans-IO stub resolver: lookups in, UDP datagrams out, answers back.
//!
//! Drain order after every `query`, `handle_datagram` or `handle_timeout`:
//! `poll_transmit` until `None`, then `poll_answer` until `None`, then
//! re-arm the timer from `poll_timeout`.
//!
//! A response is accepted only from the server its query was last sent to,
//! with that send's message id and the same question (RFC 5452 §9.1);
//! anything else is dropped silently. Each retry uses a fresh random id, so
//! a late answer to an earlier try is dropped too. Concurrent lookups of the
//! same name and kind share one query on the wire.
//!
//! Truncated (TC) responses are used as they are, without TCP fallback
//! (RFC 7766 would have us retry over TCP); queries advertise an EDNS(0)
//! payload of [`MAX_DATAGRAM`] bytes so that truncation is rare, and a
//! truncated response is never cached.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

use super::cache::Cache;
use super::{Answer, Error, Kind, SrvRecord};

/// EDNS(0) payload size advertised in queries (the DNS Flag Day 2020 value).
/// The reactor's receive buffer must hold at least this many bytes.
pub const MAX_DATAGRAM: usize = 1232;

/// Lookups in flight at once (after sharing equal ones); more fail at once
/// with [`Error::TooManyQueries`] so a flood of sessions to random domains
/// cannot grow the table without bound.
pub const MAX_OUTSTANDING: usize = 1024;

/// CNAME links followed in one answer before giving up on the chain.
const MAX_CNAME_HOPS: usize = 8;
/// Upper bound on how long anything is cached (RFC 2181 §8 allows far more).
const MAX_TTL: u32 = 86_400;
/// Negative answers without an SOA (RFC 2308 §5 says not to cache them;
/// a short time still spares the server a storm of repeats).
const DEFAULT_NEGATIVE_TTL: u32 = 60;
/// Upper bound on negative caching, so a newly published record is seen soon.
const MAX_NEGATIVE_TTL: u32 = 900;

/// Resolver settings; `servers` usually come from [`super::system_servers`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolverConfig {
    /// Recursive servers, asked in order on each attempt.
    pub servers: Vec<SocketAddr>,
    /// Wait for one server's answer before trying the next.
    pub timeout: Duration,
    /// Rounds over all servers (resolv.conf `attempts`); 0 counts as 1.
    pub attempts: u32,
    /// Cached answers kept at most; 0 disables the cache.
    pub max_cache_entries: usize,
}

impl Default for ResolverConfig {
    /// No servers, 2 s timeout, 2 attempts, 1024 cache entries.
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            timeout: Duration::from_secs(2),
            attempts: 2,
            max_cache_entries: 1024,
        }
    }
}

/// Names one lookup; its answer comes back from [`Resolver::poll_answer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QueryId(u64);

struct Outstanding {
    name: Name,
    kind: Kind,
    waiters: Vec<QueryId>,
    msg_id: u16,
    server: SocketAddr,
    tries: u32,
    deadline: Instant,
    last_error: Error,
}

/// A stub resolver over UDP (RFC 1035 §7), sans-IO.
pub struct Resolver {
    config: ResolverConfig,
    next_query: u64,
    cache: Cache,
    outstanding: Vec<Outstanding>,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    answers: VecDeque<(QueryId, Result<Answer, Error>)>,
}

impl Resolver {
    /// Message ids come from [`crate::ids`], the OS CSPRNG.
    pub fn new(config: ResolverConfig) -> Self {
        Self {
            cache: Cache::new(config.max_cache_entries),
            config,
            next_query: 0,
            outstanding: Vec::new(),
            transmits: VecDeque::new(),
            answers: VecDeque::new(),
        }
    }

    /// New servers or timeouts for lookups from now on; the cache starts
    /// afresh, since other servers may answer otherwise.
    pub fn reconfigure(&mut self, config: ResolverConfig) {
        self.cache = Cache::new(config.max_cache_entries);
        self.config = config;
    }

    /// Starts a lookup of `name` (UTF-8, IDNs become punycode). A cached or
    /// immediately failing lookup has its answer ready in `poll_answer`.
    pub fn query(&mut self, now: Instant, name: &str, kind: Kind) -> QueryId {
        let id = QueryId(self.next_query);
        self.next_query += 1;
        let name = match parse_name(name) {
            Ok(name) => name,
            Err(e) => {
                self.answers.push_back((id, Err(e)));
                return id;
            }
        };
        if let Some(answer) = self.cache.get(now, &name, kind) {
            self.answers.push_back((id, Ok(answer)));
            return id;
        }
        if let Some(o) = self
            .outstanding
            .iter_mut()
            .find(|o| o.kind == kind && o.name == name)
        {
            o.waiters.push(id);
            return id;
        }
        let Some(&server) = self.config.servers.first() else {
            self.answers.push_back((id, Err(Error::NoServers)));
            return id;
        };
        if self.outstanding.len() >= MAX_OUTSTANDING {
            self.answers.push_back((id, Err(Error::TooManyQueries)));
            return id;
        }
        let mut o = Outstanding {
            name,
            kind,
            waiters: vec![id],
            msg_id: 0,
            server,
            tries: 0,
            deadline: now,
            last_error: Error::Timeout,
        };
        match self.send(now, &mut o) {
            Ok(()) => self.outstanding.push(o),
            Err(e) => self.answers.push_back((id, Err(e))),
        }
        id
    }

    /// The next datagram to send: (server, message).
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    /// A datagram that arrived on the resolver's socket from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Ok(msg) = Message::from_vec(bytes) else {
            return;
        };
        if msg.message_type != MessageType::Response || msg.op_code != OpCode::Query {
            return;
        }
        let Some(index) = self.outstanding.iter().position(|o| {
            o.server == from && o.msg_id == msg.id && same_question(&msg, &o.name, o.kind)
        }) else {
            return;
        };
        match msg.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => {
                let o = self.outstanding.swap_remove(index);
                let (answer, ttl) = extract(&msg, &o.name, o.kind);
                if !msg.truncation {
                    let ttl = Duration::from_secs(u64::from(ttl));
                    self.cache.insert(now, &o.name, o.kind, answer.clone(), ttl);
                }
                for waiter in o.waiters {
                    self.answers.push_back((waiter, Ok(answer.clone())));
                }
            }
            code => {
                // Another server may well answer (RFC 1035 §7.2; glibc does the same).
                self.outstanding[index].last_error = Error::ServerFailure(u16::from(code));
                self.retry_or_fail(now, index);
            }
        }
    }

    /// Retries lookups whose wait is over on the next server, or fails them
    /// once every server was asked `attempts` times.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut index = 0;
        while index < self.outstanding.len() {
            if self.outstanding[index].deadline <= now {
                self.outstanding[index].last_error = Error::Timeout;
                if self.retry_or_fail(now, index) {
                    // swap_remove moved an unvisited entry into `index`.
                    continue;
                }
            }
            index += 1;
        }
    }

    /// When `handle_timeout` next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.outstanding.iter().map(|o| o.deadline).min()
    }

    /// The next finished lookup.
    pub fn poll_answer(&mut self) -> Option<(QueryId, Result<Answer, Error>)> {
        self.answers.pop_front()
    }

    /// Sends the lookup at `index` again, or fails it; true when removed.
    fn retry_or_fail(&mut self, now: Instant, index: usize) -> bool {
        let servers = u32::try_from(self.config.servers.len()).unwrap_or(u32::MAX);
        let total = self.config.attempts.max(1).saturating_mul(servers);
        let mut o = self.outstanding.swap_remove(index);
        if o.tries < total && self.send(now, &mut o).is_ok() {
            // Back into its old slot so handle_timeout's scan stays correct.
            self.outstanding.push(o);
            let last = self.outstanding.len() - 1;
            self.outstanding.swap(index, last);
            return false;
        }
        for waiter in o.waiters {
            self.answers.push_back((waiter, Err(o.last_error.clone())));
        }
        true
    }

    /// Queues the next try of `o`: next server in turn, fresh message id.
    fn send(&mut self, now: Instant, o: &mut Outstanding) -> Result<(), Error> {
        let servers = &self.config.servers;
        let Some(&server) = usize::try_from(o.tries)
            .ok()
            .and_then(|tries| servers.get(tries % servers.len().max(1)))
        else {
            return Err(Error::NoServers);
        };
        // Ids may repeat across lookups: a response must also match server
        // and question, and equal questions share one lookup.
        let msg_id = crate::ids::dns_message_id().map_err(|_| Error::NoRandomness)?;
        let bytes = encode_query(msg_id, &o.name, o.kind)?;
        o.msg_id = msg_id;
        o.server = server;
        o.tries += 1;
        o.deadline = now + self.config.timeout;
        self.transmits.push_back((server, bytes));
        Ok(())
    }
}

fn parse_name(name: &str) -> Result<Name, Error> {
    let mut parsed = Name::from_utf8(name).map_err(|_| Error::InvalidName)?;
    if parsed.iter().next().is_none() {
        return Err(Error::InvalidName);
    }
    parsed.set_fqdn(true);
    Ok(parsed)
}

fn record_type(kind: Kind) -> RecordType {
    match kind {
        Kind::Srv => RecordType::SRV,
        Kind::A => RecordType::A,
        Kind::Aaaa => RecordType::AAAA,
    }
}

fn encode_query(id: u16, name: &Name, kind: Kind) -> Result<Vec<u8>, Error> {
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(name.clone(), record_type(kind)));
    let mut edns = Edns::new();
    edns.set_max_payload(MAX_DATAGRAM as u16);
    msg.set_edns(edns);
    msg.to_vec().map_err(|_| Error::Encode)
}

fn same_question(msg: &Message, name: &Name, kind: Kind) -> bool {
    match msg.queries.as_slice() {
        [q] => {
            q.query_class() == DNSClass::IN
                && q.query_type() == record_type(kind)
                && q.name() == name
        }
        _ => false,
    }
}

/// The records answering `qname`/`kind`, following CNAMEs, and how long
/// the result may be cached (RFC 2181 §5.2 for the minimum, RFC 2308 §5 for
/// negative answers).
fn extract(msg: &Message, qname: &Name, kind: Kind) -> (Answer, u32) {
    let mut owner = qname;
    let mut chain_ttl = u32::MAX;
    for _ in 0..MAX_CNAME_HOPS {
        let next = msg.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(cname) if r.dns_class == DNSClass::IN && r.name == *owner => {
                Some((&cname.0, r.ttl))
            }
            _ => None,
        });
        let Some((target, ttl)) = next else {
            break;
        };
        owner = target;
        chain_ttl = chain_ttl.min(ttl);
    }
    let records = msg
        .answers
        .iter()
        .filter(|r| r.dns_class == DNSClass::IN && r.name == *owner);
    let mut ttl = chain_ttl;
    let answer = match kind {
        Kind::Srv => Answer::Srv(
            records
                .filter_map(|r| match &r.data {
                    RData::SRV(srv) => {
                        ttl = ttl.min(r.ttl);
                        Some(SrvRecord {
                            priority: srv.priority,
                            weight: srv.weight,
                            port: srv.port,
                            target: target_string(&srv.target),
                        })
                    }
                    _ => None,
                })
                .collect(),
        ),
        Kind::A | Kind::Aaaa => Answer::Addrs(
            records
                .filter_map(|r| {
                    let ip = match (&r.data, kind) {
                        (RData::A(a), Kind::A) => IpAddr::V4(a.0),
                        (RData::AAAA(aaaa), Kind::Aaaa) => IpAddr::V6(aaaa.0),
                        _ => return None,
                    };
                    ttl = ttl.min(r.ttl);
                    Some(ip)
                })
                .collect(),
        ),
    };
    let empty = match &answer {
        Answer::Srv(v) => v.is_empty(),
        Answer::Addrs(v) => v.is_empty(),
    };
    let ttl = if empty {
        let soa_ttl = msg
            .authorities
            .iter()
            .find_map(|r| match &r.data {
                RData::SOA(soa) => Some(soa.minimum.min(r.ttl)),
                _ => None,
            })
            .unwrap_or(DEFAULT_NEGATIVE_TTL);
        soa_ttl.min(chain_ttl).min(MAX_NEGATIVE_TTL)
    } else {
        ttl.min(MAX_TTL)
    };
    (answer, ttl)
}

fn target_string(target: &Name) -> String {
    if target.is_root() {
        return ".".to_owned();
    }
    target.to_ascii().trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA, SRV};
    use hickory_proto::rr::Record;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const S1: &str = "10.0.0.1:53";
    const S2: &str = "10.0.0.2:53";

    fn server(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn resolver(servers: &[&str], attempts: u32) -> Resolver {
        let config = ResolverConfig {
            servers: servers.iter().map(|s| server(s)).collect(),
            timeout: Duration::from_secs(2),
            attempts,
            max_cache_entries: 16,
        };
        Resolver::new(config)
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn srv(ttl: u32, owner: &str, p: u16, w: u16, port: u16, t: &str) -> Record {
        Record::from_rdata(name(owner), ttl, RData::SRV(SRV::new(p, w, port, name(t))))
    }

    fn a(ttl: u32, owner: &str, last: u8) -> Record {
        Record::from_rdata(
            name(owner),
            ttl,
            RData::A(A(Ipv4Addr::new(192, 0, 2, last))),
        )
    }

    fn cname(ttl: u32, owner: &str, target: &str) -> Record {
        Record::from_rdata(name(owner), ttl, RData::CNAME(CNAME(name(target))))
    }

    fn soa(ttl: u32, minimum: u32) -> Record {
        let data = SOA::new(
            name("ns.example."),
            name("admin.example."),
            1,
            1,
            1,
            1,
            minimum,
        );
        Record::from_rdata(name("example."), ttl, RData::SOA(data))
    }

    /// A response to `query` (a datagram the resolver sent).
    fn respond(
        query: &[u8],
        code: ResponseCode,
        answers: Vec<Record>,
        auth: Vec<Record>,
    ) -> Vec<u8> {
        let q = Message::from_vec(query).unwrap();
        let mut r = Message::response(q.id, OpCode::Query);
        r.metadata.response_code = code;
        r.add_queries(q.queries.clone());
        r.add_answers(answers);
        r.add_authorities(auth);
        r.to_vec().unwrap()
    }

    fn ok(answers: Vec<Record>) -> impl Fn(&[u8]) -> Vec<u8> {
        move |q| respond(q, ResponseCode::NoError, answers.clone(), vec![])
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn query_is_a_recursive_question_for_the_name_and_type() {
        let t0 = Instant::now();
        let mut r = resolver(&[S1], 1);
        r.query(t0, "_xmpp-client._tcp.Example.com", Kind::Srv);
        let (to, bytes) = r.poll_transmit().unwrap();
        assert_eq!(to, server(S1));
        assert!(bytes.len() <= MAX_DATAGRAM);
        let msg = Message::from_vec(&bytes).unwrap();
        assert!(msg.recursion_desired);
        assert_eq!(msg.message_type, MessageType::Query);
        assert_eq!(msg.queries.len(), 1);
        assert_eq!(
            msg.queries[0].name(),
            &name("_xmpp-client._tcp.example.com.")
        );
        assert_eq!(msg.queries[0].query_type(), RecordType::SRV);
        assert_eq!(msg.edns.as_ref().map(|e| e.max_payload()), Some(1232));
        assert_eq!(r.poll_transmit(), None);
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(2)));
    }

    #[test]
    fn srv_answer_is_returned_with_all_records() {
        let t0 = Instant::now();
        let mut r = resolver(&[S1], 1);
        let id = r.query(t0, "_xmpp-client._tcp.example.com", Kind::Srv);
        let (to, q) = r.poll_transmit().unwrap();
        let owner = "_xmpp-client._tcp.example.com.";
        let reply = ok(vec![
            srv(300, owner, 10, 5, 5222, "a.example.com."),
            srv(300, owner, 20, 0, 5223, "b.example.com."),
        ]);
        r.handle_datagram(t0, to, &reply(&q));
        let (got, answer) = r.poll_answer().unwrap();
        assert_eq!(got, id);
        let expected = vec![
            SrvRecord {
                priority: 10,
                weight: 5,
                port: 5222,
                target: "a.example.com".into(),
            },
            SrvRecord {
                priority: 20,
                weight: 0,
                port: 5223,
                target: "b.example.com".into(),
            },
        ];
        assert_eq!(answer, Ok(Answer::Srv(expected)));
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn nxdomain_is_an_empty_answer_cached_for_the_soa_minimum() {
        let t0 = Instant::now();
        let mut r = resolver(&[S1], 1);
        r.query(t0, "_xmpp-client._tcp.example.com", Kind::Srv);
        let (to, q) = r.poll_transmit().unwrap();
        r.handle_datagram(
            t0,
            to,
            &respond(&q, ResponseCode::NXDomain, vec![], vec![soa(3600, 30)]),
        );
        assert_eq!(r.poll_answer().unwrap().1, Ok(Answer::Srv(vec![])));

        let t1 = t0 + Duration::from_secs(29);
        let id = r.query(t1, "_xmpp-client._tcp.example.com", Kind::Srv);
        assert_eq!(r.poll_transmit(), None);
        assert_eq!(r.poll_answer(), Some((id, Ok(Answer::Srv(vec![])))));

        r.query(
            t0 + Duration::from_secs(30),
            "_xmpp-client._tcp.example.com",
            Kind::Srv,
        );
        assert!(r.poll_transmit().is_some());
    }

    #[test]
    fn negative_answer_without_soa_is_cached_for_the_default() {
        let t0 = Instant::now();
        let mut r = resolver(&[S1], 1);
        r.query(t0, "example.com", Kind::Aaaa);
        let (to, q) = r.poll_transmit().unwrap();
        r.handle_datagram(t0, to, &ok(vec![])(&q));
        assert_eq!(r.poll_answer().unwrap().1, Ok(Answer::Addrs(vec![])));
        r.query(t0 + Duration::from_secs(59), "example.com", Kind::Aaaa);
        assert_eq!(r.poll_transmit(), None);
        r.query(t0 + Duration::from_secs(60), "example.com", Kind::Aaaa);
        assert!(r.poll_transmit().is_some());
    }

    #[test]
    fn cache_hits_within_the_minimum_ttl_and_misses_after() {
        let t0 = Instant::now();
        let mut r = resolver(&[S1], 1);
        r.query(t0, "example.com", Kind::A);
        let (to, q) = r.poll_transmit().unwrap();
        r.handle_datagram(
            t0,
            to,
            &ok(vec![a(100, "example.com.", 1), a(40, "example.com.", 2)])(&q),
        );
        assert_eq!(
            r.poll_answer().unwrap().1,
            Ok(Answer::Addrs(vec![ip(1), ip(2)]))
        );

        let id = r.query(t0 + Duration::from_secs(39), "EXAMPLE.com.", Kind::A);
        assert_eq!(r.poll_transmit(), None, "cache hit sends nothing");
        assert_eq!(
            r.poll_answer(),
            Some((id, Ok(Answer::Addrs(vec![ip(1), ip(2)]))))
        );

        r.query(t0 + Duration::from_secs(40), "example.com", Kind::A);
        assert!(r.poll_transmit().is_some(), "expired entry is asked again");
        assert_eq!(r.poll_answer(), None);
    }

    #[test]
    fn cname_chain_is_followed_to_the_addresses() {
        let t0 = Instant::now();
        let mut r = resolver(&[S1], 1);
        r.query(t0, "xmpp.example.com", Kind::A);
        let (to, q) = r.poll_transmit().unwrap();
        let reply = ok(vec![
            cname(300, "xmpp.example.com.", "alias.example.net."),
            cname(20, "alias.example.net.", "host.example.org."),
            a(300, "host.example.org.", 7),
            a(300, "unrelated.example.org.", 8),
        ]);
        r.handle_datagram(t0, to, &reply(&q));
        assert_eq!(r.poll_answer().unwrap().1, Ok(Answer::Addrs(vec![ip(7)])));
        r.query(t0 + Duration::from_secs(19), "xmpp.example.com", Kind::A);
        assert_eq!(
            r.poll_transmit(),
            None,
            "cached for the chain's minimum ttl"
        );
        r.query(t0 + Duration::from_secs(20), "xmpp.example.com", Kind::A);
        assert!(r.poll_transmit().is_some());
    }

    #[test]
    fn cname_loop_ends_in_an_empty_answer() {
        let t0 = Instant::now();
        let mut r = resolver(&[S1], 1);
        r.query(t0, "a.example", Kind::A);
        let (to, q) = r.poll_transmit().unwrap();
        let reply = ok(vec![
            cname(60, "a.example.", "b.example."),
            cname(60, "b.example.", "a.example."),
        ]);
        r.handle_datagram(t0, to, &reply(&q));
        assert_eq!(r.poll_answer().unwrap().1, Ok(Answer::Addrs(vec![])));
    }

    #[test]
    fn aaaa_answer_ignores_a_records() {
        let t0 = Instant::now();
        let mut r = resolver(&[S1], 1);
        r.query(t0, "example.com", Kind::Aaaa);
        let (to, q) = r.poll_transmit().unwrap();
        let v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        let aaaa = Record::from_rdata(name("example.com."), 60, RData::AAAA(AAAA(v6)));
        r.handle_datagram(t0, to, &ok(vec![a(60, "example.com.", 1), aaaa])(&q));
        assert_eq!(
            r.poll_answer().unwrap().1,
            Ok(Answer::Addrs(vec![IpAddr::V6(v6)]))
        );
    }

    #[test]
    fn timeout_retries_on_the_second_server_then_fails() {
        let t0 = Instant::now();
        let mut r = resolver(&[S1, S2], 1);
        let id = r.query(t0, "example.com", Kind::A);
        let (first, q1) = r.poll_transmit().unwrap();
        assert_eq!(first, server(S1));

        r.handle_timeout(t0 + Duration::from_secs(1));
        assert_eq!(r.poll_transmit(), None, "nothing before the deadline");

        let t1 = t0 + Duration::from_secs(2);
        r.handle_timeout(t1);
        let (second, q2) = r.poll_transmit().unwrap();
        assert_eq!(second, server(S2));
        assert_ne!(
            Message::from_vec(&q1).unwrap().id,
            Message::from_vec(&q2).unwrap().id
        );
        assert_eq!(r.poll_answer(), None);
        assert_eq!(r.poll_timeout(), Some(t1 + Duration::from_secs(2)));

        // A late answer from the first server is no longer accepted.
        r.handle_datagram(t1, first, &ok(vec![a(60, "example.com.", 1)])(&q1));
        assert_eq!(r.poll_answer(), None);

        r.handle_timeout(t1 + Duration::from_secs(2));
        assert_eq!(r.poll_transmit(), None);
        assert_eq!(r.poll_answer(), Some((id, Err(Error::Timeout))));
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn attempts_repeat_the_round_of_servers() {
        let t0 = Instant::now();
        let mut r = resolver(&[S1, S2], 2);
        r.query(t0, "example.com", Kind::A);
        let mut sent = vec![r.poll_transmit().unwrap().0];
        let mut now = t0;
        for _ in 0..4 {
            now += Duration::from_secs(2);
            r.handle_timeout(now);
            sent.extend(r.poll_transmit().map(|(to, _)| to));
        }
        assert_eq!(sent, [S1, S2, S1, S2].map(server));
        assert_eq!(r.poll_answer().unwrap().1, Err(Error::Timeout));
    }

    #[test]
    fn servfail_moves_to_the_next_server_and_is_the_final_error() {
        let t0 = Instant::now();
        let mut r = resolver(&[S1, S2], 1);
        r.query(t0, "example.com", Kind::A);
        let (to, q) = r.poll_transmit().unwrap();
        r.handle_datagram(t0, to, &respond(&q, ResponseCode::ServFail, vec![], vec![]));
        let (to2, q2) = r.poll_transmit().unwrap();
        assert_eq!(to2, server(S2));
        assert_eq!(r.poll_answer(), None);
        r.handle_datagram(
            t0,
            to2,
            &respond(&q2, ResponseCode::Refused, vec![], vec![]),
        );
        assert_eq!(r.poll_answer().unwrap().1, Err(Error::ServerFailure(5)));
        // Failures are not cached.
        r.query(t0, "example.com", Kind::A);
        assert!(r.poll_transmit().is_some());
    }

    #[test]
    fn responses_from_another_server_or_with_another_id_or_question_are_ignored() {
        let t0 = Instant::now();
        let mut r = resolver(&[S1], 1);
        let id = r.query(t0, "example.com", Kind::A);
        let (to, q) = r.poll_transmit().unwrap();
        let good = ok(vec![a(60, "example.com.", 1)])(&q);

        r.handle_datagram(t0, server("10.0.0.9:53"), &good);
        r.handle_datagram(t0, server("10.0.0.1:5353"), &good);

        let mut wrong_id = Message::from_vec(&good).unwrap();
        wrong_id.metadata.id = wrong_id.id.wrapping_add(1);
        r.handle_datagram(t0, to, &wrong_id.to_vec().unwrap());

        let mut wrong_question = Message::from_vec(&good).unwrap();
        wrong_question.queries[0].set_name(name("evil.example."));
        r.handle_datagram(t0, to, &wrong_question.to_vec().unwrap());

        let mut wrong_type = Message::from_vec(&good).unwrap();
        wrong_type.queries[0].set_query_type(RecordType::AAAA);
        r.handle_datagram(t0, to, &wrong_type.to_vec().unwrap());

        let mut not_response = Message::from_vec(&good).unwrap();
        not_response.metadata.message_type = MessageType::Query;
        r.handle_datagram(t0, to, &not_response.to_vec().unwrap());

        r.handle_datagram(t0, to, b"\x00\x01garbage");
        assert_eq!(r.poll_answer(), None);

        r.handle_datagram(t0, to, &good);
        assert_eq!(r.poll_answer(), Some((id, Ok(Answer::Addrs(vec![ip(1)])))));
        // A duplicate of an already answered response is ignored too.
        r.handle_datagram(t0, to, &good);
        assert_eq!(r.poll_answer(), None);
    }

    #[test]
    fn response_split_at_any_byte_is_dropped_and_the_whole_one_still_accepted() {
        let t0 = Instant::now();
        let mut r = resolver(&[S1], 1);
        r.query(t0, "example.com", Kind::A);
        let (to, q) = r.poll_transmit().unwrap();
        let good = ok(vec![a(60, "example.com.", 1)])(&q);
        for cut in 0..good.len() {
            r.handle_datagram(t0, to, &good[..cut]);
            assert_eq!(r.poll_answer(), None, "prefix of {cut} bytes");
        }
        r.handle_datagram(t0, to, &good);
        assert_eq!(r.poll_answer().unwrap().1, Ok(Answer::Addrs(vec![ip(1)])));
    }

    #[test]
    fn equal_lookups_in_flight_share_one_query() {
        let t0 = Instant::now();
        let mut r = resolver(&[S1], 1);
        let first = r.query(t0, "example.com", Kind::A);
        let second = r.query(t0, "Example.COM", Kind::A);
        let (to, q) = r.poll_transmit().unwrap();
        assert_eq!(r.poll_transmit(), None);
        r.handle_datagram(t0, to, &ok(vec![a(60, "example.com.", 1)])(&q));
        let answer = Ok(Answer::Addrs(vec![ip(1)]));
        assert_eq!(r.poll_answer(), Some((first, answer.clone())));
        assert_eq!(r.poll_answer(), Some((second, answer)));
    }

    #[test]
    fn truncated_response_is_used_but_not_cached() {
        let t0 = Instant::now();
        let mut r = resolver(&[S1], 1);
        r.query(t0, "example.com", Kind::A);
        let (to, q) = r.poll_transmit().unwrap();
        let mut msg = Message::from_vec(&ok(vec![a(60, "example.com.", 1)])(&q)).unwrap();
        msg.metadata.truncation = true;
        r.handle_datagram(t0, to, &msg.to_vec().unwrap());
        assert_eq!(r.poll_answer().unwrap().1, Ok(Answer::Addrs(vec![ip(1)])));
        r.query(t0, "example.com", Kind::A);
        assert!(r.poll_transmit().is_some());
    }

    #[test]
    fn bad_names_and_missing_servers_fail_at_once() {
        let t0 = Instant::now();
        let mut r = resolver(&[S1], 1);
        let id = r.query(t0, "bad..name", Kind::A);
        assert_eq!(r.poll_answer(), Some((id, Err(Error::InvalidName))));
        let id = r.query(t0, "", Kind::A);
        assert_eq!(r.poll_answer(), Some((id, Err(Error::InvalidName))));
        let id = r.query(t0, &"x".repeat(64), Kind::A);
        assert_eq!(r.poll_answer(), Some((id, Err(Error::InvalidName))));
        assert_eq!(r.poll_transmit(), None);

        let mut none = resolver(&[], 1);
        let id = none.query(t0, "example.com", Kind::A);
        assert_eq!(none.poll_answer(), Some((id, Err(Error::NoServers))));
    }

    #[test]
    fn lookups_beyond_the_outstanding_limit_fail() {
        let t0 = Instant::now();
        let mut r = resolver(&[S1], 1);
        for i in 0..MAX_OUTSTANDING {
            r.query(t0, &format!("h{i}.example"), Kind::A);
        }
        assert_eq!(r.poll_answer(), None);
        let id = r.query(t0, "one-more.example", Kind::A);
        assert_eq!(r.poll_answer(), Some((id, Err(Error::TooManyQueries))));
    }

    #[test]
    fn timeouts_fail_every_expired_lookup_in_one_call() {
        let t0 = Instant::now();
        let mut r = resolver(&[S1], 1);
        let ids: Vec<_> = (0..5)
            .map(|i| r.query(t0, &format!("h{i}.example"), Kind::A))
            .collect();
        r.handle_timeout(t0 + Duration::from_secs(2));
        let mut failed: Vec<_> = std::iter::from_fn(|| r.poll_answer()).collect();
        failed.sort_by_key(|(id, _)| ids.iter().position(|x| x == id));
        assert_eq!(
            failed,
            ids.iter()
                .map(|&id| (id, Err(Error::Timeout)))
                .collect::<Vec<_>>()
        );
        assert_eq!(r.poll_timeout(), None);
    }
}
