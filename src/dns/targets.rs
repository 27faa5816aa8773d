//! Which addresses to try, in order, for an XMPP domain (RFC 6120 §3.2).
//!
//! SRV `_xmpp-client._tcp.DOMAIN` first: records by priority, weighted
//! random within a priority (RFC 2782). Each target's A addresses are tried
//! before its AAAA ones, and only looked up when the earlier ones failed.
//! Without SRV records (or when the SRV lookup fails) the domain itself on
//! port 5222 (RFC 6120 §3.2.2). A lone "." target means the service is not
//! offered: nothing is tried. Lookups and connects are bounded so a hostile
//! answer cannot make a session loop.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use super::resolver::{Answer, Error, Kind, SrvRecord};

const MAX_CONNECT_ATTEMPTS: usize = 16;
const MAX_LOOKUPS: usize = 16;

/// What the caller should do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Query(String, Kind),
    Connect(SocketAddr),
    Exhausted,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    /// Nothing asked yet.
    Start,
    /// The SRV lookup is out.
    AwaitSrv,
    /// An address lookup is out, for this port.
    AwaitAddrs(u16),
    Walking,
    /// The domain says it offers no XMPP service.
    Refused,
}

pub struct Targets {
    domain: String,
    default_port: u16,
    phase: Phase,
    lookups: VecDeque<(String, u16, Kind)>,
    addrs: VecDeque<SocketAddr>,
    connects: usize,
    lookups_done: usize,
}

impl Targets {
    pub fn new(domain: &str, default_port: u16) -> Self {
        let mut targets = Targets {
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            default_port,
            phase: Phase::Start,
            lookups: VecDeque::new(),
            addrs: VecDeque::new(),
            connects: 0,
            lookups_done: 0,
        };
        if let Ok(ip) = domain.parse::<IpAddr>() {
            targets.addrs.push_back(SocketAddr::new(ip, default_port));
            targets.phase = Phase::Walking;
        }
        targets
    }

    pub fn next_step(&mut self) -> Step {
        if matches!(self.phase, Phase::Refused) {
            return Step::Exhausted;
        }
        if self.phase == Phase::Start {
            self.phase = Phase::AwaitSrv;
            return Step::Query(format!("_xmpp-client._tcp.{}", self.domain), Kind::Srv);
        }
        if self.connects < MAX_CONNECT_ATTEMPTS {
            if let Some(addr) = self.addrs.pop_front() {
                self.connects += 1;
                return Step::Connect(addr);
            }
        }
        while self.lookups_done < MAX_LOOKUPS && self.connects < MAX_CONNECT_ATTEMPTS {
            let Some((host, port, kind)) = self.lookups.pop_front() else {
                break;
            };
            if let Ok(ip) = host.parse::<IpAddr>() {
                if kind == Kind::A {
                    self.connects += 1;
                    return Step::Connect(SocketAddr::new(ip, port));
                }
                continue;
            }
            self.lookups_done += 1;
            self.phase = Phase::AwaitAddrs(port);
            return Step::Query(host, kind);
        }
        Step::Exhausted
    }

    /// The answer to the last [`Step::Query`]; `random` spreads SRV weights.
    pub fn handle_answer(&mut self, answer: Result<Answer, Error>, random: u64) {
        match std::mem::replace(&mut self.phase, Phase::Walking) {
            Phase::AwaitSrv => match answer {
                Ok(Answer::Srv(records)) if records.len() == 1 && records[0].target == "." => {
                    self.phase = Phase::Refused;
                }
                Ok(Answer::Srv(records)) if !records.is_empty() => {
                    for record in order(records, random) {
                        self.lookups
                            .push_back((record.target.clone(), record.port, Kind::A));
                        self.lookups
                            .push_back((record.target, record.port, Kind::Aaaa));
                    }
                }
                _ => {
                    let domain = self.domain.clone();
                    self.lookups
                        .push_back((domain.clone(), self.default_port, Kind::A));
                    self.lookups
                        .push_back((domain, self.default_port, Kind::Aaaa));
                }
            },
            Phase::AwaitAddrs(port) => {
                if let Ok(Answer::Addrs(ips)) = answer {
                    self.addrs
                        .extend(ips.into_iter().map(|ip| SocketAddr::new(ip, port)));
                }
            }
            other => self.phase = other,
        }
    }
}

/// RFC 2782: ascending priority; within one priority, repeatedly pick a
/// record with probability proportional to its weight (zero weights get a
/// small chance, listed first as the RFC suggests).
fn order(mut records: Vec<SrvRecord>, mut random: u64) -> Vec<SrvRecord> {
    records.retain(|r| r.target != ".");
    records.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut ordered = Vec::with_capacity(records.len());
    while !records.is_empty() {
        let priority = records[0].priority;
        let end = records
            .iter()
            .position(|r| r.priority != priority)
            .unwrap_or(records.len());
        let mut group: Vec<SrvRecord> = records.drain(..end).collect();
        while !group.is_empty() {
            let total: u64 = group.iter().map(|r| u64::from(r.weight)).sum();
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            let mut pick = if total == 0 { 0 } else { random % (total + 1) };
            let mut chosen = group.len() - 1;
            for (i, r) in group.iter().enumerate() {
                if u64::from(r.weight) >= pick {
                    chosen = i;
                    break;
                }
                pick -= u64::from(r.weight);
            }
            ordered.push(group.remove(chosen));
        }
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, port: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port,
            target: target.into(),
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn srv_targets_are_tried_by_priority_a_before_aaaa() {
        let mut t = Targets::new("example.org", 5222);
        assert_eq!(
            t.next_step(),
            Step::Query("_xmpp-client._tcp.example.org".into(), Kind::Srv)
        );
        t.handle_answer(
            Ok(Answer::Srv(vec![
                srv(20, 0, 5223, "b.example.org"),
                srv(10, 0, 5222, "a.example.org"),
            ])),
            1,
        );
        assert_eq!(t.next_step(), Step::Query("a.example.org".into(), Kind::A));
        t.handle_answer(
            Ok(Answer::Addrs(vec![
                [10, 0, 0, 1].into(),
                [10, 0, 0, 2].into(),
            ])),
            1,
        );
        assert_eq!(t.next_step(), Step::Connect(addr("10.0.0.1:5222")));
        assert_eq!(t.next_step(), Step::Connect(addr("10.0.0.2:5222")));
        assert_eq!(
            t.next_step(),
            Step::Query("a.example.org".into(), Kind::Aaaa)
        );
        t.handle_answer(Ok(Answer::Addrs(vec![])), 1);
        assert_eq!(t.next_step(), Step::Query("b.example.org".into(), Kind::A));
        t.handle_answer(Err(Error::Failed), 1);
        assert_eq!(
            t.next_step(),
            Step::Query("b.example.org".into(), Kind::Aaaa)
        );
        t.handle_answer(Ok(Answer::Addrs(vec!["::1".parse().unwrap()])), 1);
        assert_eq!(t.next_step(), Step::Connect(addr("[::1]:5223")));
        assert_eq!(t.next_step(), Step::Exhausted);
    }

    #[test]
    fn without_srv_records_the_domain_itself_on_5222() {
        for answer in [Ok(Answer::Srv(vec![])), Err(Error::Failed)] {
            let mut t = Targets::new("fallback.test", 5222);
            t.next_step();
            t.handle_answer(answer, 1);
            assert_eq!(t.next_step(), Step::Query("fallback.test".into(), Kind::A));
            t.handle_answer(Ok(Answer::Addrs(vec![[127, 0, 0, 1].into()])), 1);
            assert_eq!(t.next_step(), Step::Connect(addr("127.0.0.1:5222")));
        }
    }

    #[test]
    fn a_dot_target_means_no_service() {
        let mut t = Targets::new("example.org", 5222);
        t.next_step();
        t.handle_answer(Ok(Answer::Srv(vec![srv(0, 0, 0, ".")])), 1);
        assert_eq!(t.next_step(), Step::Exhausted);
    }

    #[test]
    fn ip_literals_connect_directly() {
        let mut t = Targets::new("127.0.0.1", 5222);
        assert_eq!(t.next_step(), Step::Connect(addr("127.0.0.1:5222")));
        assert_eq!(t.next_step(), Step::Exhausted);
    }

    #[test]
    fn weights_spread_the_choice_within_a_priority() {
        let records = vec![
            srv(1, 90, 1, "heavy"),
            srv(1, 10, 1, "light"),
            srv(0, 5, 1, "first"),
        ];
        let mut heavy_first = 0;
        for seed in 1..=200u64 {
            let ordered = order(records.clone(), seed * 7919);
            assert_eq!(ordered[0].target, "first");
            assert_eq!(ordered.len(), 3);
            heavy_first += usize::from(ordered[1].target == "heavy");
        }
        assert!(
            (150..200).contains(&heavy_first),
            "heavy first {heavy_first}/200"
        );
    }

    #[test]
    fn a_hostile_answer_cannot_make_it_loop() {
        let mut t = Targets::new("example.org", 5222);
        t.next_step();
        let many: Vec<SrvRecord> = (0..100)
            .map(|i| srv(1, 1, 5222, &format!("h{i}.example.org")))
            .collect();
        t.handle_answer(Ok(Answer::Srv(many)), 3);
        let mut steps = 0;
        loop {
            match t.next_step() {
                Step::Query(..) => {
                    t.handle_answer(Ok(Answer::Addrs(vec![[10, 0, 0, 1].into(); 10])), 3)
                }
                Step::Connect(_) => {}
                Step::Exhausted => break,
            }
            steps += 1;
            assert!(steps < 100, "unbounded");
        }
    }
}
