//! `dns_answer`: [`Resolver::handle_datagram`] with arbitrary datagrams
//! after one query. Input: one selector byte, then datagram material.
//! Selector bits 0–1 pick the lookup (SRV, A, AAAA; 3 is SRV too); bit 2
//! picks how the datagram is built:
//! - raw: the material as it is, its first two bytes (the message id)
//!   overwritten with the query's id so that more than the id check is hit;
//! - spliced: a header with the query's id, flags and section counts from
//!   the first 8 bytes of the material (QR set, opcode QUERY), the query's
//!   own question, then the rest of the material as records, so that the
//!   record parsing and answer extraction are reached.
//!
//! Invariants: no panic; at most one answer, only for the outstanding
//! query, of the kind asked for; once answered, the same datagram again
//! answers nothing; a second lookup of the same name is then either
//! answered from the cache with the same answer or sent to the server.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use switchboard_core::dns::{Answer, Kind, Resolver, ResolverConfig};

const SERVER: &str = "127.0.0.53:53";

pub fn check(data: &[u8]) {
    let Some((&selector, material)) = data.split_first() else {
        return;
    };
    let (kind, name) = match selector & 3 {
        1 => (Kind::A, "xmpp.example.com"),
        2 => (Kind::Aaaa, "xmpp.example.com"),
        _ => (Kind::Srv, "_xmpp-client._tcp.example.com"),
    };
    let server: SocketAddr = SERVER.parse().expect("server address");
    let config = ResolverConfig {
        servers: vec![server],
        timeout: Duration::from_secs(2),
        attempts: 2,
        max_cache_entries: 4,
    };
    let mut resolver = Resolver::new(config);
    let now = Instant::now();
    let id = resolver.query(now, name, kind);
    let (to, query) = resolver.poll_transmit().expect("the query is sent");
    assert_eq!(to, server);
    assert!(resolver.poll_answer().is_none());

    let datagram = if selector & 4 == 0 {
        raw(&query, material)
    } else {
        spliced(&query, material)
    };
    resolver.handle_datagram(now, server, &datagram);
    let answer = match resolver.poll_answer() {
        None => return,
        Some((answered, answer)) => {
            assert_eq!(answered, id, "answer for a query never asked");
            answer
        }
    };
    assert!(resolver.poll_answer().is_none(), "two answers to one query");
    if let Ok(answer) = &answer {
        match (kind, answer) {
            (Kind::Srv, Answer::Srv(_)) => {}
            (Kind::A, Answer::Addrs(addrs)) => assert!(addrs.iter().all(IpAddr::is_ipv4)),
            (Kind::Aaaa, Answer::Addrs(addrs)) => assert!(addrs.iter().all(IpAddr::is_ipv6)),
            _ => panic!("{kind:?} answered with {answer:?}"),
        }
    }

    // A query that was answered is no longer outstanding.
    while resolver.poll_transmit().is_some() {}
    resolver.handle_datagram(now, server, &datagram);
    assert!(resolver.poll_answer().is_none(), "answered twice");

    if let Ok(first) = answer {
        let again = resolver.query(now, name, kind);
        match resolver.poll_answer() {
            Some((answered, cached)) => {
                assert_eq!(answered, again);
                assert_eq!(cached, Ok(first), "cache changed the answer");
            }
            None => assert!(resolver.poll_transmit().is_some(), "lookup went nowhere"),
        }
    }
}

fn raw(query: &[u8], material: &[u8]) -> Vec<u8> {
    let mut datagram = material.to_vec();
    for (byte, id) in datagram.iter_mut().zip(query.iter().take(2)) {
        *byte = *id;
    }
    datagram
}

fn spliced(query: &[u8], material: &[u8]) -> Vec<u8> {
    let (head, records) = material.split_at(material.len().min(8));
    let mut header = [0u8; 8];
    header[..head.len()].copy_from_slice(head);
    let mut datagram = query.get(..2).unwrap_or_default().to_vec();
    // QR = 1, opcode = 0 (QUERY); the other flag bits and the rcode are fuzzed.
    datagram.push((header[0] & 0x07) | 0x80);
    datagram.push(header[1]);
    datagram.extend_from_slice(&[0, 1]);
    datagram.extend_from_slice(&header[2..8]);
    datagram.extend_from_slice(question(query));
    datagram.extend_from_slice(records);
    datagram
}

/// The question section of our own query: the name's labels, then type and
/// class.
fn question(query: &[u8]) -> &[u8] {
    let mut at = 12;
    while let Some(&len) = query.get(at) {
        at += 1 + usize::from(len);
        if len == 0 {
            break;
        }
    }
    query.get(12..at + 4).unwrap_or_default()
}
