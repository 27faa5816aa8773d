//! Which hosts to try, in which order, for one XMPP domain (RFC 6120 §3.2).
//!
//! Drive it by calling [`Targets::next_step`] and doing what it says:
//! look a name up and pass the answer to [`Targets::handle_answer`], or
//! connect and, on failure, call [`Targets::connect_failed`]. On success
//! simply stop using it.
//!
//! Order: SRV `_xmpp-client._tcp.DOMAIN`, targets by priority then RFC 2782
//! weighted random choice; for each target AAAA then A, and its addresses
//! tried IPv6 and IPv4 alternately (RFC 8305 §4), skipping ones already
//! tried. Without SRV records, or when the SRV lookup fails, the domain's
//! own addresses on the default port (RFC 6120 §3.2.2). When SRV targets
//! exist but none connects there is no fallback (RFC 6120 §3.2.1 step 7).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use super::{Answer, Error, FastRng, Kind, SrvRecord};

/// The XMPP client port without SRV records (RFC 6120 §3.2.2, §14.7).
pub const XMPP_CLIENT_PORT: u16 = 5222;

/// Connections tried for one domain at most, and SRV targets considered at
/// most, so that a hostile answer cannot keep a session looping.
pub const MAX_CONNECT_ATTEMPTS: u32 = 16;

/// What the caller should do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Look this name up and pass the result to `handle_answer`.
    Query(String, Kind),
    /// Connect here; call `connect_failed` if that fails.
    Connect(SocketAddr),
    /// A lookup or connection is under way: wait for its outcome.
    Wait,
    /// Nothing is left to try; why the last try failed.
    Exhausted(Error),
}

#[derive(Debug)]
enum Phase {
    Start,
    AwaitingSrv,
    Ready,
    AwaitingAddrs,
    Connecting,
    Done(Error),
}

/// One host to resolve and the addresses found so far.
#[derive(Debug)]
struct Host {
    name: String,
    port: u16,
    // Popped from the end: AAAA first.
    pending: Vec<Kind>,
    v6: Vec<IpAddr>,
    v4: Vec<IpAddr>,
}

/// The connection plan for one XMPP domain (RFC 6120 §3.2.1).
#[derive(Debug)]
pub struct Targets {
    domain: String,
    default_port: u16,
    phase: Phase,
    hosts: VecDeque<Host>,
    addrs: VecDeque<SocketAddr>,
    tried: Vec<SocketAddr>,
    attempts: u32,
    last_error: Option<Error>,
}

impl Targets {
    /// Plans connections to `domain` (an XMPP domainpart; an IP literal,
    /// bracketed or not, is connected to directly on `default_port`).
    pub fn new(domain: &str, default_port: u16) -> Self {
        Self {
            domain: domain.trim_end_matches('.').to_owned(),
            default_port,
            phase: Phase::Start,
            hosts: VecDeque::new(),
            addrs: VecDeque::new(),
            tried: Vec::new(),
            attempts: 0,
            last_error: None,
        }
    }

    /// What to do now. Repeating the call without feeding an outcome in
    /// gives [`Step::Wait`] (or the same [`Step::Exhausted`]).
    pub fn next_step(&mut self) -> Step {
        loop {
            match &self.phase {
                Phase::AwaitingSrv | Phase::AwaitingAddrs | Phase::Connecting => return Step::Wait,
                Phase::Done(e) => return Step::Exhausted(e.clone()),
                Phase::Start => {
                    if let Some(ip) = ip_literal(&self.domain) {
                        self.addrs.push_back(SocketAddr::new(ip, self.default_port));
                        self.phase = Phase::Ready;
                        continue;
                    }
                    self.phase = Phase::AwaitingSrv;
                    return Step::Query(format!("_xmpp-client._tcp.{}", self.domain), Kind::Srv);
                }
                Phase::Ready => {
                    if let Some(step) = self.ready_step() {
                        return step;
                    }
                }
            }
        }
    }

    /// The outcome of the lookup the last [`Step::Query`] asked for;
    /// `random` orders SRV targets of equal priority (RFC 2782).
    pub fn handle_answer(&mut self, answer: Result<Answer, Error>, random: u64) {
        match self.phase {
            Phase::AwaitingSrv => self.handle_srv(answer, random),
            Phase::AwaitingAddrs => {
                match answer {
                    Ok(Answer::Addrs(ips)) => {
                        if let Some(host) = self.hosts.front_mut() {
                            for ip in ips {
                                match ip {
                                    IpAddr::V6(_) => host.v6.push(ip),
                                    IpAddr::V4(_) => host.v4.push(ip),
                                }
                            }
                        }
                    }
                    Ok(Answer::Srv(_)) => {}
                    Err(e) => self.last_error = Some(e),
                }
                self.phase = Phase::Ready;
            }
            _ => {}
        }
    }

    /// The last [`Step::Connect`] failed: move on to the next address.
    pub fn connect_failed(&mut self) {
        if let Phase::Connecting = self.phase {
            self.phase = Phase::Ready;
        }
    }

    fn handle_srv(&mut self, answer: Result<Answer, Error>, random: u64) {
        self.phase = Phase::Ready;
        let records = match answer {
            Ok(Answer::Srv(records)) if !records.is_empty() => records,
            Ok(_) => {
                self.fall_back();
                return;
            }
            Err(e) => {
                self.last_error = Some(e);
                self.fall_back();
                return;
            }
        };
        // RFC 2782 gives "." meaning only as the sole record; among others it
        // names no host, so it is skipped.
        let records: Vec<SrvRecord> = records.into_iter().filter(|r| r.target != ".").collect();
        if records.is_empty() {
            self.phase = Phase::Done(Error::ServiceUnavailable);
            return;
        }
        let limit = usize::try_from(MAX_CONNECT_ATTEMPTS).unwrap_or(usize::MAX);
        self.hosts = order_srv(records, random)
            .into_iter()
            .take(limit)
            .map(|r| Host::new(r.target, r.port))
            .collect();
    }

    fn fall_back(&mut self) {
        self.hosts = VecDeque::from([Host::new(self.domain.clone(), self.default_port)]);
    }

    /// One step from the Ready phase, or None to look again.
    fn ready_step(&mut self) -> Option<Step> {
        if let Some(addr) = self.addrs.pop_front() {
            if self.attempts >= MAX_CONNECT_ATTEMPTS {
                self.phase = Phase::Done(Error::TooManyAttempts);
                return None;
            }
            self.attempts += 1;
            self.tried.push(addr);
            self.phase = Phase::Connecting;
            return Some(Step::Connect(addr));
        }
        let Some(host) = self.hosts.front_mut() else {
            let error = if self.attempts > 0 {
                Error::ConnectFailed
            } else {
                self.last_error.take().unwrap_or(Error::NoAddresses)
            };
            self.phase = Phase::Done(error);
            return None;
        };
        if let Some(kind) = host.pending.pop() {
            self.phase = Phase::AwaitingAddrs;
            return Some(Step::Query(host.name.clone(), kind));
        }
        if let Some(host) = self.hosts.pop_front() {
            let port = host.port;
            for ip in interleave(host.v6, host.v4) {
                let addr = SocketAddr::new(ip, port);
                if !self.tried.contains(&addr) && !self.addrs.contains(&addr) {
                    self.addrs.push_back(addr);
                }
            }
        }
        None
    }
}

impl Host {
    fn new(name: String, port: u16) -> Self {
        Self {
            name,
            port,
            pending: vec![Kind::A, Kind::Aaaa],
            v6: Vec::new(),
            v4: Vec::new(),
        }
    }
}

fn ip_literal(domain: &str) -> Option<IpAddr> {
    if let Some(inner) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    domain.parse().ok()
}

fn interleave(first: Vec<IpAddr>, second: Vec<IpAddr>) -> Vec<IpAddr> {
    let mut out = Vec::with_capacity(first.len() + second.len());
    let mut first = first.into_iter();
    let mut second = second.into_iter();
    loop {
        match (first.next(), second.next()) {
            (None, None) => return out,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
}

/// Orders SRV records by priority, and within a priority by the weighted
/// random selection of RFC 2782. The first draw is `random` itself, so a
/// test can pick the first choice; later draws follow from it.
fn order_srv(mut records: Vec<SrvRecord>, random: u64) -> Vec<SrvRecord> {
    records.sort_by_key(|r| r.priority);
    let mut rng = FastRng(random);
    let mut draw = Some(random);
    let mut next_draw = move || draw.take().unwrap_or_else(|| rng.next_u64());
    let mut ordered = Vec::with_capacity(records.len());
    let mut rest = records.into_iter().peekable();
    while let Some(first) = rest.next() {
        let priority = first.priority;
        let mut group = vec![first];
        while let Some(r) = rest.next_if(|r| r.priority == priority) {
            group.push(r);
        }
        // Zero weights first, so they are chosen only when the draw is 0.
        group.sort_by_key(|r| r.weight != 0);
        while !group.is_empty() {
            let sum: u64 = group.iter().map(|r| u64::from(r.weight)).sum();
            let pick = next_draw() % (sum + 1);
            let mut running = 0;
            let index = group
                .iter()
                .position(|r| {
                    running += u64::from(r.weight);
                    running >= pick
                })
                .unwrap_or(0);
            ordered.push(group.remove(index));
        }
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn rec(priority: u16, weight: u16, port: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port,
            target: target.into(),
        }
    }

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn v6(last: u16) -> IpAddr {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last))
    }

    fn sa(ip: IpAddr, port: u16) -> Step {
        Step::Connect(SocketAddr::new(ip, port))
    }

    /// Runs `targets` to the end: `dns` answers every lookup, every connect
    /// fails. Returns all steps, the final Exhausted included.
    fn drive(
        targets: &mut Targets,
        random: u64,
        dns: impl Fn(&str, Kind) -> Result<Answer, Error>,
    ) -> Vec<Step> {
        let mut steps = Vec::new();
        for _ in 0..500 {
            let step = targets.next_step();
            steps.push(step.clone());
            match step {
                Step::Query(name, kind) => {
                    assert_eq!(targets.next_step(), Step::Wait);
                    targets.handle_answer(dns(&name, kind), random);
                }
                Step::Connect(_) => {
                    assert_eq!(targets.next_step(), Step::Wait);
                    targets.connect_failed();
                }
                Step::Wait => panic!("wait with nothing under way"),
                Step::Exhausted(_) => return steps,
            }
        }
        panic!("did not end: {steps:?}");
    }

    fn query(name: &str, kind: Kind) -> Step {
        Step::Query(name.into(), kind)
    }

    fn srv_query() -> Step {
        query("_xmpp-client._tcp.example.com", Kind::Srv)
    }

    fn queried_hosts(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Query(name, Kind::A) => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn srv_targets_are_tried_by_priority() {
        let mut t = Targets::new("example.com", XMPP_CLIENT_PORT);
        let steps = drive(&mut t, 0, |name, kind| match (name, kind) {
            (_, Kind::Srv) => Ok(Answer::Srv(vec![
                rec(20, 0, 5300, "late.example.com"),
                rec(10, 0, 5301, "first.example.com"),
                rec(10, 0, 5302, "second.example.com"),
            ])),
            (_, Kind::Aaaa) => Ok(Answer::Addrs(vec![])),
            ("first.example.com", Kind::A) => Ok(Answer::Addrs(vec![v4(1)])),
            ("second.example.com", Kind::A) => Ok(Answer::Addrs(vec![v4(2)])),
            (_, Kind::A) => Ok(Answer::Addrs(vec![v4(3)])),
        });
        assert_eq!(
            steps,
            vec![
                srv_query(),
                query("first.example.com", Kind::Aaaa),
                query("first.example.com", Kind::A),
                sa(v4(1), 5301),
                query("second.example.com", Kind::Aaaa),
                query("second.example.com", Kind::A),
                sa(v4(2), 5302),
                query("late.example.com", Kind::Aaaa),
                query("late.example.com", Kind::A),
                sa(v4(3), 5300),
                Step::Exhausted(Error::ConnectFailed),
            ]
        );
    }

    #[test]
    fn weights_choose_the_first_target_by_the_random_draw() {
        let order = |random| {
            let mut t = Targets::new("example.com", XMPP_CLIENT_PORT);
            let steps = drive(&mut t, random, |_, kind| match kind {
                Kind::Srv => Ok(Answer::Srv(vec![
                    rec(0, 10, 5222, "light.example.com"),
                    rec(0, 90, 5222, "heavy.example.com"),
                ])),
                _ => Ok(Answer::Addrs(vec![])),
            });
            assert_eq!(steps.last(), Some(&Step::Exhausted(Error::NoAddresses)));
            queried_hosts(&steps)
        };
        let light_first = vec![
            "light.example.com".to_owned(),
            "heavy.example.com".to_owned(),
        ];
        let heavy_first = vec![
            "heavy.example.com".to_owned(),
            "light.example.com".to_owned(),
        ];
        // Draws are taken modulo 101 (the weight sum plus one).
        assert_eq!(order(0), light_first);
        assert_eq!(order(10), light_first);
        assert_eq!(order(11), heavy_first);
        assert_eq!(order(100), heavy_first);
        assert_eq!(order(101 + 5), light_first);
    }

    #[test]
    fn zero_weight_is_chosen_only_on_a_zero_draw() {
        let records = vec![rec(0, 5, 1, "weighted"), rec(0, 0, 2, "zero")];
        let first = |random| order_srv(records.clone(), random)[0].target.clone();
        assert_eq!(first(0), "zero");
        assert_eq!(first(1), "weighted");
        assert_eq!(first(5), "weighted");
    }

    #[test]
    fn weighted_order_favours_heavy_targets_over_many_draws() {
        let records = vec![rec(0, 1, 1, "light"), rec(0, 9, 2, "heavy")];
        let mut rng = FastRng(42);
        let heavy_first = (0..1000)
            .filter(|_| order_srv(records.clone(), rng.next_u64())[0].target == "heavy")
            .count();
        assert!((800..=950).contains(&heavy_first), "{heavy_first}");
    }

    #[test]
    fn no_srv_records_fall_back_to_the_domain_on_5222() {
        let mut t = Targets::new("example.com.", XMPP_CLIENT_PORT);
        let steps = drive(&mut t, 0, |name, kind| match kind {
            Kind::Srv => Ok(Answer::Srv(vec![])),
            Kind::Aaaa => Ok(Answer::Addrs(vec![])),
            Kind::A => {
                assert_eq!(name, "example.com");
                Ok(Answer::Addrs(vec![v4(9)]))
            }
        });
        assert_eq!(
            steps,
            vec![
                srv_query(),
                query("example.com", Kind::Aaaa),
                query("example.com", Kind::A),
                sa(v4(9), 5222),
                Step::Exhausted(Error::ConnectFailed),
            ]
        );
    }

    #[test]
    fn failed_srv_lookup_falls_back_too() {
        let mut t = Targets::new("example.com", XMPP_CLIENT_PORT);
        let steps = drive(&mut t, 0, |_, kind| match kind {
            Kind::Srv => Err(Error::Timeout),
            _ => Ok(Answer::Addrs(vec![v4(9)])),
        });
        assert_eq!(steps[3], sa(v4(9), 5222));
    }

    #[test]
    fn sole_dot_target_means_no_service_and_no_fallback() {
        let mut t = Targets::new("example.com", XMPP_CLIENT_PORT);
        let steps = drive(&mut t, 0, |_, kind| match kind {
            Kind::Srv => Ok(Answer::Srv(vec![rec(0, 0, 0, ".")])),
            _ => panic!("no address lookup after a '.' target"),
        });
        assert_eq!(
            steps,
            vec![srv_query(), Step::Exhausted(Error::ServiceUnavailable)]
        );
        assert_eq!(t.next_step(), Step::Exhausted(Error::ServiceUnavailable));
    }

    #[test]
    fn dot_among_real_targets_is_skipped() {
        let mut t = Targets::new("example.com", XMPP_CLIENT_PORT);
        let steps = drive(&mut t, 0, |_, kind| match kind {
            Kind::Srv => Ok(Answer::Srv(vec![
                rec(0, 0, 0, "."),
                rec(1, 0, 5222, "real.example.com"),
            ])),
            _ => Ok(Answer::Addrs(vec![])),
        });
        assert_eq!(queried_hosts(&steps), vec!["real.example.com".to_owned()]);
    }

    #[test]
    fn connect_failures_walk_every_address_alternating_families() {
        let mut t = Targets::new("example.com", XMPP_CLIENT_PORT);
        let steps = drive(&mut t, 0, |name, kind| match (name, kind) {
            (_, Kind::Srv) => Ok(Answer::Srv(vec![
                rec(0, 0, 5222, "a.example.com"),
                rec(1, 0, 5223, "b.example.com"),
            ])),
            ("a.example.com", Kind::Aaaa) => Ok(Answer::Addrs(vec![v6(1), v6(2)])),
            ("a.example.com", Kind::A) => Ok(Answer::Addrs(vec![v4(1), v4(2), v4(3)])),
            // b repeats an address of a, but on another port: a new target.
            (_, Kind::Aaaa) => Ok(Answer::Addrs(vec![])),
            (_, Kind::A) => Ok(Answer::Addrs(vec![v4(1), v4(4)])),
        });
        let connects: Vec<_> = steps
            .iter()
            .filter(|s| matches!(s, Step::Connect(_)))
            .cloned()
            .collect();
        assert_eq!(
            connects,
            vec![
                sa(v6(1), 5222),
                sa(v4(1), 5222),
                sa(v6(2), 5222),
                sa(v4(2), 5222),
                sa(v4(3), 5222),
                sa(v4(1), 5223),
                sa(v4(4), 5223),
            ]
        );
        assert_eq!(steps.last(), Some(&Step::Exhausted(Error::ConnectFailed)));
        assert!(
            !queried_hosts(&steps).contains(&"example.com".to_owned()),
            "no fallback after srv"
        );
    }

    #[test]
    fn repeated_addresses_are_tried_once() {
        let mut t = Targets::new("example.com", XMPP_CLIENT_PORT);
        let steps = drive(&mut t, 0, |_, kind| match kind {
            Kind::Srv => Ok(Answer::Srv(vec![
                rec(0, 0, 5222, "a.example"),
                rec(0, 0, 5222, "b.example"),
            ])),
            _ => Ok(Answer::Addrs(vec![v4(1), v4(1)])),
        });
        let connects = steps
            .iter()
            .filter(|s| matches!(s, Step::Connect(_)))
            .count();
        assert_eq!(connects, 1);
    }

    #[test]
    fn connect_attempts_are_bounded() {
        let mut t = Targets::new("example.com", XMPP_CLIENT_PORT);
        let steps = drive(&mut t, 0, |_, kind| match kind {
            Kind::Srv => Ok(Answer::Srv(vec![rec(0, 0, 5222, "many.example")])),
            Kind::A => Ok(Answer::Addrs((0..=200).map(v4).collect())),
            Kind::Aaaa => Ok(Answer::Addrs(vec![])),
        });
        let connects = steps
            .iter()
            .filter(|s| matches!(s, Step::Connect(_)))
            .count();
        assert_eq!(connects, MAX_CONNECT_ATTEMPTS as usize);
        assert_eq!(steps.last(), Some(&Step::Exhausted(Error::TooManyAttempts)));
    }

    #[test]
    fn srv_targets_considered_are_bounded() {
        let mut t = Targets::new("example.com", XMPP_CLIENT_PORT);
        let steps = drive(&mut t, 0, |_, kind| match kind {
            Kind::Srv => Ok(Answer::Srv(
                (0..500)
                    .map(|i| rec(i, 0, 5222, &format!("h{i}.example")))
                    .collect(),
            )),
            _ => Ok(Answer::Addrs(vec![])),
        });
        assert_eq!(queried_hosts(&steps).len(), MAX_CONNECT_ATTEMPTS as usize);
        assert_eq!(steps.last(), Some(&Step::Exhausted(Error::NoAddresses)));
    }

    #[test]
    fn ip_literal_domains_connect_directly() {
        for (domain, ip) in [
            ("127.0.0.1", IpAddr::V4(Ipv4Addr::LOCALHOST)),
            ("[::1]", IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ("::1", IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ] {
            let mut t = Targets::new(domain, 5333);
            let steps = drive(&mut t, 0, |_, _| panic!("no lookup for an ip literal"));
            assert_eq!(
                steps,
                vec![sa(ip, 5333), Step::Exhausted(Error::ConnectFailed)],
                "{domain}"
            );
        }
    }

    #[test]
    fn lookup_errors_are_reported_when_no_address_was_found() {
        let mut t = Targets::new("example.com", XMPP_CLIENT_PORT);
        let steps = drive(&mut t, 0, |_, kind| match kind {
            Kind::Srv => Ok(Answer::Srv(vec![])),
            _ => Err(Error::ServerFailure(2)),
        });
        assert_eq!(
            steps.last(),
            Some(&Step::Exhausted(Error::ServerFailure(2)))
        );
    }

    #[test]
    fn aaaa_failure_still_tries_a() {
        let mut t = Targets::new("example.com", XMPP_CLIENT_PORT);
        let steps = drive(&mut t, 0, |_, kind| match kind {
            Kind::Srv => Ok(Answer::Srv(vec![])),
            Kind::Aaaa => Err(Error::Timeout),
            Kind::A => Ok(Answer::Addrs(vec![v4(1)])),
        });
        assert!(steps.contains(&sa(v4(1), 5222)));
        assert_eq!(steps.last(), Some(&Step::Exhausted(Error::ConnectFailed)));
    }

    #[test]
    fn stray_outcomes_are_ignored() {
        let mut t = Targets::new("example.com", XMPP_CLIENT_PORT);
        t.connect_failed();
        t.handle_answer(Ok(Answer::Addrs(vec![v4(1)])), 0);
        assert_eq!(t.next_step(), srv_query());
        t.connect_failed();
        assert_eq!(t.next_step(), Step::Wait);
        t.handle_answer(Ok(Answer::Srv(vec![])), 0);
        assert_eq!(t.next_step(), query("example.com", Kind::Aaaa));
        t.handle_answer(Ok(Answer::Srv(vec![rec(0, 0, 1, "x")])), 0);
        assert_eq!(t.next_step(), query("example.com", Kind::A));
        t.handle_answer(Ok(Answer::Addrs(vec![v4(1)])), 0);
        assert_eq!(t.next_step(), sa(v4(1), 5222));
        t.handle_answer(Ok(Answer::Addrs(vec![v4(2)])), 0);
        assert_eq!(
            t.next_step(),
            Step::Wait,
            "an answer does not end a connect"
        );
    }
}
