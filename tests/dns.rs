//! The backend found by DNS SRV over the reactor's own UDP socket: a small
//! DNS server in the test answers `_xmpp-client._tcp` and A queries.

mod support;

use std::net::Ipv4Addr;

use support::dns_stub::{srv_records, DnsStub, Rr};
use support::{config_for, StubOptions, StubServer, Switchboard, TlsMode};
use switchboard::config::Config;

/// Answers SRV for `_xmpp-client._tcp.DOMAIN` → `xmpp.DOMAIN:port` and A
/// for `xmpp.DOMAIN` → 127.0.0.1; NXDOMAIN for anything else.
fn dns_stub(domain: &str, port: u16) -> DnsStub {
    DnsStub::start(srv_records(domain, port, Rr::A(Ipv4Addr::LOCALHOST)))
}

/// A STARTTLS stub for srv.test, found only through `dns_stub`'s records:
/// no static route. Returns the stub, the DNS server and a configuration
/// that asks it.
fn found_by_srv() -> (StubServer, DnsStub, Config) {
    let stub = StubServer::start(StubOptions::starttls("srv.test", TlsMode::Required));
    let dns = dns_stub("srv.test", stub.addr().port());
    let mut config = config_for(&stub);
    config.backend.routes.clear();
    config.dns.servers = vec![dns.addr];
    (stub, dns, config)
}

/// No static route: the domain's SRV record leads switchboard to the stub
/// server's port, where it negotiates verified STARTTLS for the domain.
#[test]
fn backend_is_found_by_srv_record() {
    let (_stub, dns, mut config) = found_by_srv();
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
    let (stub, dns, config) = found_by_srv();
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
    let (stub, _dns, mut config) = found_by_srv();
    config.backend.allow_private_addresses = true;
    config.backend.allowed_ports = vec![5222];
    let sb = Switchboard::start(config);

    let mut ws = sb.ws();
    let (_open, error) = ws.open("srv.test").unwrap();
    assert!(error.contains("remote-connection-failed"), "{error}");
    assert_eq!(stub.connection_count(), 0, "no connection reached the stub");
}
