//! The stub resolver: one outstanding UDP exchange per query, retried on
//! the next server after a timeout, answers cached by TTL.
//!
//! A response is taken only from the server the query went to, with the
//! query's message id and question; anything else is dropped (RFC 5452
//! §9.1 spoofing resistance). TCP fallback for truncated answers is left
//! out: XMPP SRV and address answers fit a datagram, and a truncated one is
//! used for what it holds.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

/// Negative answers without an SOA are cached this long.
const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(60);
/// CNAME links followed within one answer.
const MAX_CNAME_CHAIN: usize = 8;

#[derive(Clone, Debug)]
pub struct ResolverConfig {
    pub servers: Vec<SocketAddr>,
    /// Wait for one datagram exchange.
    pub timeout: Duration,
    /// Tries per server.
    pub attempts: u32,
    pub max_cache_entries: usize,
}

/// Names one [`Resolver::query`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QueryId(u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Srv,
    A,
    Aaaa,
}

impl Kind {
    fn record_type(self) -> RecordType {
        match self {
            Kind::Srv => RecordType::SRV,
            Kind::A => RecordType::A,
            Kind::Aaaa => RecordType::AAAA,
        }
    }
}

/// RFC 2782 SRV record fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// Without the trailing dot; "." stays "." (service not offered).
    pub target: String,
}

/// A successful lookup. No records (NXDOMAIN or an empty answer) is an
/// empty answer, not an error: callers fall back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Srv(Vec<SrvRecord>),
    Addrs(Vec<IpAddr>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    NoServers,
    BadName,
    /// Every server and attempt timed out or failed (SERVFAIL, REFUSED...).
    Failed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::NoServers => "no dns servers configured",
            Error::BadName => "not a valid domain name",
            Error::Failed => "dns lookup failed on every server",
        })
    }
}

impl std::error::Error for Error {}

struct Pending {
    id: QueryId,
    name: String,
    kind: Kind,
    message_id: u16,
    server: usize,
    tries: u32,
    deadline: Instant,
}

struct Cached {
    answer: Answer,
    expires: Instant,
}

pub struct Resolver {
    config: ResolverConfig,
    next_id: u64,
    random: u64,
    pending: Vec<Pending>,
    transmit: VecDeque<(SocketAddr, Vec<u8>)>,
    answers: VecDeque<(QueryId, Result<Answer, Error>)>,
    cache: HashMap<(String, Kind), Cached>,
}

impl Resolver {
    /// `seed` feeds the message ids; any value works, a varying one is
    /// better against blind spoofing.
    pub fn new(config: ResolverConfig, seed: u64) -> Self {
        Resolver {
            config,
            next_id: 0,
            random: seed | 1,
            pending: Vec::new(),
            transmit: VecDeque::new(),
            answers: VecDeque::new(),
            cache: HashMap::new(),
        }
    }

    /// Start a lookup. A cached answer is ready at once from
    /// [`Resolver::poll_answer`].
    pub fn query(&mut self, now: Instant, name: &str, kind: Kind) -> QueryId {
        self.next_id += 1;
        let id = QueryId(self.next_id);
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(cached) = self.cache.get(&(name.clone(), kind)) {
            if cached.expires > now {
                self.answers.push_back((id, Ok(cached.answer.clone())));
                return id;
            }
        }
        if self.config.servers.is_empty() {
            self.answers.push_back((id, Err(Error::NoServers)));
            return id;
        }
        if Name::from_ascii(format!("{name}.")).is_err() || name.is_empty() {
            self.answers.push_back((id, Err(Error::BadName)));
            return id;
        }
        let mut pending = Pending {
            id,
            name,
            kind,
            message_id: 0,
            server: 0,
            tries: 0,
            deadline: now,
        };
        self.send(&mut pending, now);
        self.pending.push(pending);
        id
    }

    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmit.pop_front()
    }

    pub fn poll_answer(&mut self) -> Option<(QueryId, Result<Answer, Error>)> {
        self.answers.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.deadline).min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].deadline <= now {
                self.retry_or_fail(i, now);
            } else {
                i += 1;
            }
        }
    }

    /// A datagram from the UDP socket.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Ok(message) = Message::from_vec(bytes) else {
            return;
        };
        if message.metadata.message_type != MessageType::Response {
            return;
        }
        let Some(index) = self.pending.iter().position(|p| {
            p.message_id == message.metadata.id
                && self.config.servers.get(p.server) == Some(&from)
                && asks(&message, &p.name, p.kind)
        }) else {
            return;
        };
        match message.metadata.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => {
                let pending = self.pending.swap_remove(index);
                let (answer, ttl) = read_answer(&message, &pending.name, pending.kind);
                self.store(now, &pending.name, pending.kind, &answer, ttl);
                self.answers.push_back((pending.id, Ok(answer)));
            }
            _ => self.retry_or_fail(index, now),
        }
    }

    fn retry_or_fail(&mut self, index: usize, now: Instant) {
        let servers = self.config.servers.len() as u32;
        let pending = &mut self.pending[index];
        if pending.tries >= self.config.attempts.max(1) * servers {
            let pending = self.pending.swap_remove(index);
            self.answers.push_back((pending.id, Err(Error::Failed)));
            return;
        }
        let mut pending = self.pending.swap_remove(index);
        pending.server = (pending.server + 1) % servers as usize;
        self.send(&mut pending, now);
        self.pending.push(pending);
    }

    /// Encode and queue the query to its current server, with a fresh id.
    fn send(&mut self, pending: &mut Pending, now: Instant) {
        pending.message_id = self.next_message_id();
        pending.tries += 1;
        pending.deadline = now + self.config.timeout;
        let mut message = Message::query();
        message.metadata.id = pending.message_id;
        message.metadata.recursion_desired = true;
        if let Ok(name) = Name::from_ascii(format!("{}.", pending.name)) {
            message.add_query(Query::query(name, pending.kind.record_type()));
        }
        if let (Ok(bytes), Some(server)) =
            (message.to_vec(), self.config.servers.get(pending.server))
        {
            self.transmit.push_back((*server, bytes));
        }
    }

    fn next_message_id(&mut self) -> u16 {
        let mut x = self.random;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.random = x;
        (x >> 24) as u16
    }

    fn store(&mut self, now: Instant, name: &str, kind: Kind, answer: &Answer, ttl: Duration) {
        if ttl.is_zero() || self.config.max_cache_entries == 0 {
            return;
        }
        if self.cache.len() >= self.config.max_cache_entries {
            self.cache.retain(|_, c| c.expires > now);
        }
        if self.cache.len() >= self.config.max_cache_entries {
            return;
        }
        self.cache.insert(
            (name.to_string(), kind),
            Cached {
                answer: answer.clone(),
                expires: now + ttl,
            },
        );
    }
}

/// Whether the response's question is ours.
fn asks(message: &Message, name: &str, kind: Kind) -> bool {
    message.queries.first().is_some_and(|q| {
        q.query_type == kind.record_type()
            && q.name
                .to_ascii()
                .trim_end_matches('.')
                .eq_ignore_ascii_case(name)
    })
}

fn plain(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

/// The records answering `name` (following CNAMEs for addresses) and how
/// long the answer may be cached.
fn read_answer(message: &Message, name: &str, kind: Kind) -> (Answer, Duration) {
    let mut ttl: Option<u32> = None;
    let mut keep = |t: u32| ttl = Some(ttl.map_or(t, |m| m.min(t)));
    let answer = match kind {
        Kind::Srv => Answer::Srv(
            message
                .answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::SRV(srv) if plain(&r.name) == name => {
                        keep(r.ttl);
                        let target = plain(&srv.target);
                        Some(SrvRecord {
                            priority: srv.priority,
                            weight: srv.weight,
                            port: srv.port,
                            target: if target.is_empty() {
                                ".".into()
                            } else {
                                target
                            },
                        })
                    }
                    _ => None,
                })
                .collect(),
        ),
        Kind::A | Kind::Aaaa => {
            let mut names = vec![name.to_string()];
            for _ in 0..MAX_CNAME_CHAIN {
                let before = names.len();
                for r in &message.answers {
                    if let RData::CNAME(cname) = &r.data {
                        let target = plain(&cname.0);
                        if names.contains(&plain(&r.name)) && !names.contains(&target) {
                            keep(r.ttl);
                            names.push(target);
                        }
                    }
                }
                if names.len() == before {
                    break;
                }
            }
            Answer::Addrs(
                message
                    .answers
                    .iter()
                    .filter(|r| names.contains(&plain(&r.name)))
                    .filter_map(|r| {
                        let ip = match (&r.data, kind) {
                            (RData::A(a), Kind::A) => IpAddr::V4(a.0),
                            (RData::AAAA(a), Kind::Aaaa) => IpAddr::V6(a.0),
                            _ => return None,
                        };
                        keep(r.ttl);
                        Some(ip)
                    })
                    .collect(),
            )
        }
    };
    let empty = match &answer {
        Answer::Srv(r) => r.is_empty(),
        Answer::Addrs(a) => a.is_empty(),
    };
    let ttl = if empty {
        // RFC 2308 §5: negative answers live as long as the SOA minimum.
        message
            .authorities
            .iter()
            .find_map(|r| match &r.data {
                RData::SOA(soa) => Some(Duration::from_secs(u64::from(soa.minimum.min(r.ttl)))),
                _ => None,
            })
            .unwrap_or(DEFAULT_NEGATIVE_TTL)
    } else {
        Duration::from_secs(u64::from(ttl.unwrap_or(0)))
    };
    (answer, ttl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, CNAME, SOA, SRV};
    use hickory_proto::rr::Record;
    use std::net::Ipv4Addr;

    const S1: &str = "127.0.0.1:5301";
    const S2: &str = "127.0.0.1:5302";

    fn resolver(servers: &[&str]) -> Resolver {
        Resolver::new(
            ResolverConfig {
                servers: servers.iter().map(|s| s.parse().unwrap()).collect(),
                timeout: Duration::from_secs(1),
                attempts: 1,
                max_cache_entries: 16,
            },
            7,
        )
    }

    fn name(n: &str) -> Name {
        Name::from_ascii(n).unwrap()
    }

    /// A response to the query in `datagram`, with `answers`.
    fn respond(
        datagram: &[u8],
        code: ResponseCode,
        answers: Vec<Record>,
        authorities: Vec<Record>,
    ) -> Vec<u8> {
        let query = Message::from_vec(datagram).unwrap();
        let mut m = Message::query();
        m.metadata.id = query.metadata.id;
        m.metadata.message_type = MessageType::Response;
        m.metadata.response_code = code;
        m.add_query(query.queries[0].clone());
        m.answers = answers;
        m.authorities = authorities;
        m.to_vec().unwrap()
    }

    fn srv(owner: &str, priority: u16, weight: u16, port: u16, target: &str) -> Record {
        Record::from_rdata(
            name(owner),
            300,
            RData::SRV(SRV::new(priority, weight, port, name(target))),
        )
    }

    fn a(owner: &str, ip: [u8; 4], ttl: u32) -> Record {
        Record::from_rdata(name(owner), ttl, RData::A(A(Ipv4Addr::from(ip))))
    }

    #[test]
    fn srv_answer_comes_back_from_the_server_asked() {
        let now = Instant::now();
        let mut r = resolver(&[S1]);
        let id = r.query(now, "_xmpp-client._tcp.example.org", Kind::Srv);
        let (to, datagram) = r.poll_transmit().unwrap();
        assert_eq!(to, S1.parse().unwrap());
        let reply = respond(
            &datagram,
            ResponseCode::NoError,
            vec![srv(
                "_xmpp-client._tcp.example.org.",
                5,
                10,
                5222,
                "xmpp.example.org.",
            )],
            vec![],
        );
        r.handle_datagram(now, S1.parse().unwrap(), &reply);
        let (got, answer) = r.poll_answer().unwrap();
        assert_eq!(got, id);
        assert_eq!(
            answer,
            Ok(Answer::Srv(vec![SrvRecord {
                priority: 5,
                weight: 10,
                port: 5222,
                target: "xmpp.example.org".into()
            }]))
        );
    }

    #[test]
    fn responses_from_elsewhere_or_with_another_id_are_ignored() {
        let now = Instant::now();
        let mut r = resolver(&[S1]);
        r.query(now, "example.org", Kind::A);
        let (_, datagram) = r.poll_transmit().unwrap();
        let reply = respond(
            &datagram,
            ResponseCode::NoError,
            vec![a("example.org.", [1, 2, 3, 4], 60)],
            vec![],
        );
        r.handle_datagram(now, S2.parse().unwrap(), &reply);
        assert!(r.poll_answer().is_none(), "wrong server");
        let mut forged = reply.clone();
        forged[0] ^= 0xff;
        r.handle_datagram(now, S1.parse().unwrap(), &forged);
        assert!(r.poll_answer().is_none(), "wrong id");
        r.handle_datagram(now, S1.parse().unwrap(), &reply);
        assert!(r.poll_answer().is_some());
    }

    #[test]
    fn timeout_retries_on_the_next_server_then_fails() {
        let now = Instant::now();
        let mut r = resolver(&[S1, S2]);
        let id = r.query(now, "example.org", Kind::A);
        assert_eq!(r.poll_transmit().unwrap().0, S1.parse().unwrap());
        assert_eq!(r.poll_timeout(), Some(now + Duration::from_secs(1)));
        r.handle_timeout(now + Duration::from_secs(1));
        assert_eq!(r.poll_transmit().unwrap().0, S2.parse().unwrap());
        assert!(r.poll_answer().is_none());
        r.handle_timeout(now + Duration::from_secs(2));
        assert_eq!(r.poll_answer(), Some((id, Err(Error::Failed))));
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn nxdomain_is_an_empty_answer_cached_by_soa_minimum() {
        let now = Instant::now();
        let mut r = resolver(&[S1]);
        r.query(now, "_xmpp-client._tcp.nosrv.test", Kind::Srv);
        let (_, datagram) = r.poll_transmit().unwrap();
        let soa = SOA::new(name("ns.test."), name("h.test."), 1, 1, 1, 1, 30);
        let reply = respond(
            &datagram,
            ResponseCode::NXDomain,
            vec![],
            vec![Record::from_rdata(name("test."), 100, RData::SOA(soa))],
        );
        r.handle_datagram(now, S1.parse().unwrap(), &reply);
        assert_eq!(r.poll_answer().unwrap().1, Ok(Answer::Srv(vec![])));
        r.query(
            now + Duration::from_secs(29),
            "_xmpp-client._tcp.nosrv.test",
            Kind::Srv,
        );
        assert!(r.poll_transmit().is_none(), "cached");
        assert_eq!(r.poll_answer().unwrap().1, Ok(Answer::Srv(vec![])));
        r.query(
            now + Duration::from_secs(30),
            "_xmpp-client._tcp.nosrv.test",
            Kind::Srv,
        );
        assert!(r.poll_transmit().is_some(), "expired");
    }

    #[test]
    fn answers_are_cached_for_their_ttl() {
        let now = Instant::now();
        let mut r = resolver(&[S1]);
        r.query(now, "Example.org.", Kind::A);
        let (_, datagram) = r.poll_transmit().unwrap();
        let reply = respond(
            &datagram,
            ResponseCode::NoError,
            vec![a("example.org.", [1, 2, 3, 4], 60)],
            vec![],
        );
        r.handle_datagram(now, S1.parse().unwrap(), &reply);
        assert!(r.poll_answer().unwrap().1.is_ok());
        r.query(now + Duration::from_secs(59), "example.org", Kind::A);
        assert!(r.poll_transmit().is_none());
        assert_eq!(
            r.poll_answer().unwrap().1,
            Ok(Answer::Addrs(vec![IpAddr::from([1, 2, 3, 4])]))
        );
        r.query(now + Duration::from_secs(60), "example.org", Kind::A);
        assert!(r.poll_transmit().is_some());
    }

    #[test]
    fn cname_chains_lead_to_the_addresses() {
        let now = Instant::now();
        let mut r = resolver(&[S1]);
        r.query(now, "chat.example.org", Kind::A);
        let (_, datagram) = r.poll_transmit().unwrap();
        let reply = respond(
            &datagram,
            ResponseCode::NoError,
            vec![
                Record::from_rdata(
                    name("chat.example.org."),
                    60,
                    RData::CNAME(CNAME(name("xmpp.example.org."))),
                ),
                a("xmpp.example.org.", [10, 0, 0, 1], 60),
                a("unrelated.example.org.", [10, 0, 0, 2], 60),
            ],
            vec![],
        );
        r.handle_datagram(now, S1.parse().unwrap(), &reply);
        assert_eq!(
            r.poll_answer().unwrap().1,
            Ok(Answer::Addrs(vec![IpAddr::from([10, 0, 0, 1])]))
        );
    }

    #[test]
    fn servfail_moves_to_the_next_server() {
        let now = Instant::now();
        let mut r = resolver(&[S1, S2]);
        r.query(now, "example.org", Kind::A);
        let (_, datagram) = r.poll_transmit().unwrap();
        let reply = respond(&datagram, ResponseCode::ServFail, vec![], vec![]);
        r.handle_datagram(now, S1.parse().unwrap(), &reply);
        assert!(r.poll_answer().is_none());
        assert_eq!(r.poll_transmit().unwrap().0, S2.parse().unwrap());
    }

    #[test]
    fn without_servers_or_with_a_bad_name_the_answer_is_an_error_at_once() {
        let now = Instant::now();
        let mut r = resolver(&[]);
        let id = r.query(now, "example.org", Kind::A);
        assert_eq!(r.poll_answer(), Some((id, Err(Error::NoServers))));
        let mut r = resolver(&[S1]);
        let id = r.query(now, "bad..name", Kind::A);
        assert_eq!(r.poll_answer(), Some((id, Err(Error::BadName))));
        assert!(r.poll_transmit().is_none());
    }
}
