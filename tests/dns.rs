//! The backend found by DNS SRV over the reactor's own UDP socket: a small
//! DNS server in the test answers `_xmpp-client._tcp` and A queries.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use support::{config_for, StubOptions, StubServer, Switchboard, TlsMode};

/// Answers SRV for `_xmpp-client._tcp.DOMAIN` → `xmpp.DOMAIN:port` and A
/// for `xmpp.DOMAIN` → 127.0.0.1; NXDOMAIN for anything else.
struct DnsStub {
    addr: SocketAddr,
    queries: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DnsStub {
    fn start(domain: &str, port: u16) -> DnsStub {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let queries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let srv_name = format!("_xmpp-client._tcp.{domain}.");
        let host = format!("xmpp.{domain}.");
        let thread = std::thread::spawn({
            let queries = queries.clone();
            let stop = stop.clone();
            move || {
                let mut buf = [0u8; 512];
                while !stop.load(Ordering::SeqCst) {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    let query = Message::from_vec(&buf[..n]).unwrap();
                    let question = query.queries[0].clone();
                    let qname = question.name.to_ascii();
                    queries
                        .lock()
                        .unwrap()
                        .push(format!("{} {}", question.query_type, qname));
                    let mut reply = Message::query();
                    reply.metadata.id = query.metadata.id;
                    reply.metadata.message_type = MessageType::Response;
                    reply.add_query(question.clone());
                    let owner = question.name.clone();
                    match (question.query_type, qname.as_str()) {
                        (RecordType::SRV, q) if q == srv_name => {
                            reply.answers.push(Record::from_rdata(
                                owner,
                                60,
                                RData::SRV(SRV::new(0, 0, port, Name::from_ascii(&host).unwrap())),
                            ))
                        }
                        (RecordType::A, q) if q == host => reply.answers.push(Record::from_rdata(
                            owner,
                            60,
                            RData::A(A::new(127, 0, 0, 1)),
                        )),
                        (RecordType::AAAA, q) if q == host => {}
                        _ => reply.metadata.response_code = ResponseCode::NXDomain,
                    }
                    socket.send_to(&reply.to_vec().unwrap(), from).unwrap();
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

/// No static route: the domain's SRV record leads switchboard to the stub
/// server's port, where it negotiates verified STARTTLS for the domain.
#[test]
fn backend_is_found_by_srv_record() {
    let stub = StubServer::start(StubOptions::starttls("srv.test", TlsMode::Required));
    let dns = DnsStub::start("srv.test", stub.addr().port());
    let mut config = config_for(&stub);
    config.backend.routes.clear();
    config.dns.servers = vec![dns.addr];
    // The stub's records point at loopback, which DNS answers may not
    // reach unless allowed.
    config.backend.allow_private_addresses = true;
    let sb = Switchboard::start(config);

    let mut ws = sb.ws();
    let (_open, features) = ws.open("srv.test").unwrap();
    assert!(features.contains("PLAIN"), "{features}");
    let jid = ws.login_plain("alice", "pw", "srv.test").unwrap();
    assert!(jid.starts_with("alice@srv.test/"), "{jid}");
    let queries = dns.queries.lock().unwrap().clone();
    assert_eq!(queries[0], "SRV _xmpp-client._tcp.srv.test.", "{queries:?}");
    assert!(
        queries.contains(&"A xmpp.srv.test.".to_string()),
        "{queries:?}"
    );

    // A second session is served from the cache: no new queries.
    let mut again = sb.ws();
    again.open("srv.test").unwrap();
    assert_eq!(dns.queries.lock().unwrap().len(), queries.len());

    // A domain with no records at all fails the session cleanly.
    let mut lost = sb.ws();
    let (_open, error) = lost.open("nowhere.test").unwrap();
    assert!(error.contains("remote-connection-failed"), "{error}");
}

/// A client's `to` cannot lead switchboard to an internal address by DNS:
/// the same records, without `backend.allow_private_addresses`, are refused
/// before any connection is made.
#[test]
fn dns_answers_pointing_inside_are_refused_by_default() {
    let stub = StubServer::start(StubOptions::starttls("srv.test", TlsMode::Required));
    let dns = DnsStub::start("srv.test", stub.addr().port());
    let mut config = config_for(&stub);
    config.backend.routes.clear();
    config.dns.servers = vec![dns.addr];
    let sb = Switchboard::start(config);

    let mut ws = sb.ws();
    let (_open, error) = ws.open("srv.test").unwrap();
    assert!(error.contains("remote-connection-failed"), "{error}");
    assert!(
        dns.queries
            .lock()
            .unwrap()
            .contains(&"A xmpp.srv.test.".to_string()),
        "the name was resolved, the address refused"
    );
    assert_eq!(stub.connection_count(), 0, "no connection reached the stub");
}

/// SRV records may name any port: with `backend.allowed_ports` only those
/// ports are connected to, whatever a domain's DNS says.
#[test]
fn a_port_outside_the_allowed_ones_is_not_connected() {
    let stub = StubServer::start(StubOptions::starttls("srv.test", TlsMode::Required));
    let dns = DnsStub::start("srv.test", stub.addr().port());
    let mut config = config_for(&stub);
    config.backend.routes.clear();
    config.dns.servers = vec![dns.addr];
    config.backend.allow_private_addresses = true;
    config.backend.allowed_ports = vec![5222];
    let sb = Switchboard::start(config);

    let mut ws = sb.ws();
    let (_open, error) = ws.open("srv.test").unwrap();
    assert!(error.contains("remote-connection-failed"), "{error}");
    assert_eq!(stub.connection_count(), 0, "no connection reached the stub");
}
