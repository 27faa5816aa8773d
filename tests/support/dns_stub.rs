//! A DNS server on a loopback UDP port answering from a fixed table of
//! records: for tests that lead switchboard's resolver to an address (SRV
//! with A and AAAA, RFC 2782, RFC 3596). A name in the table answers its
//! records of the asked type, or none (NOERROR); any other name NXDOMAIN.
//! Every question is logged as `"TYPE name."`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// One record of the table, owned by a fully qualified name.
#[derive(Clone, Debug)]
pub enum Rr {
    /// SRV priority 0, weight 0, to `target` (fully qualified) at `port`.
    Srv {
        target: String,
        port: u16,
    },
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
}

impl Rr {
    fn record_type(&self) -> RecordType {
        match self {
            Rr::Srv { .. } => RecordType::SRV,
            Rr::A(_) => RecordType::A,
            Rr::Aaaa(_) => RecordType::AAAA,
        }
    }

    fn rdata(&self) -> RData {
        match self {
            Rr::Srv { target, port } => RData::SRV(SRV::new(
                0,
                0,
                *port,
                Name::from_ascii(target).expect("srv target name"),
            )),
            Rr::A(ip) => RData::A(A::from(*ip)),
            Rr::Aaaa(ip) => RData::AAAA(AAAA::from(*ip)),
        }
    }
}

/// The records that lead a client's `domain` to `host` at `port`: SRV
/// `_xmpp-client._tcp.DOMAIN` to `xmpp.DOMAIN`, which has `host`.
pub fn srv_records(domain: &str, port: u16, host: Rr) -> Vec<(String, Rr)> {
    let target = format!("xmpp.{domain}.");
    vec![
        (
            format!("_xmpp-client._tcp.{domain}."),
            Rr::Srv {
                target: target.clone(),
                port,
            },
        ),
        (target, host),
    ]
}

pub struct DnsStub {
    pub addr: SocketAddr,
    /// Every question asked so far, in order.
    pub queries: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DnsStub {
    /// Serves `records`, owner names fully qualified (`"xmpp.srv.test."`).
    pub fn start(records: Vec<(String, Rr)>) -> DnsStub {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let queries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let queries = queries.clone();
            let stop = stop.clone();
            move || {
                let mut buf = [0u8; 512];
                while !stop.load(Ordering::SeqCst) {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    let Ok(query) = Message::from_vec(&buf[..n]) else {
                        continue;
                    };
                    let Some(question) = query.queries.first().cloned() else {
                        continue;
                    };
                    let qname = question.name.to_ascii();
                    queries
                        .lock()
                        .unwrap()
                        .push(format!("{} {}", question.query_type, qname));
                    let mut reply = Message::query();
                    reply.metadata.id = query.metadata.id;
                    reply.metadata.message_type = MessageType::Response;
                    reply.add_query(question.clone());
                    let owned: Vec<&Rr> = records
                        .iter()
                        .filter(|(name, _)| name.eq_ignore_ascii_case(&qname))
                        .map(|(_, rr)| rr)
                        .collect();
                    if owned.is_empty() {
                        reply.metadata.response_code = ResponseCode::NXDomain;
                    }
                    for rr in owned
                        .into_iter()
                        .filter(|rr| rr.record_type() == question.query_type)
                    {
                        reply.answers.push(Record::from_rdata(
                            question.name.clone(),
                            60,
                            rr.rdata(),
                        ));
                    }
                    let _ = socket.send_to(&reply.to_vec().unwrap(), from);
                }
            }
        });
        DnsStub {
            addr,
            queries,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for DnsStub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
