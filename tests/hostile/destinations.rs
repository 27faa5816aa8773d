//! Destinations: which domains switchboard serves (`allowed_domains`,
//! `denied_domains`, names compared once normalised: case, trailing dot,
//! IDNA) and where DNS may lead it. Every `*.dns.test` domain has an SRV
//! record to one address of the case (RFC 2782, RFC 3596) on the port of
//! a listener bound to every local address, IPv4 and IPv6: an address
//! that reaches this host must be refused before any connection, and the
//! log must say why. Over both transports.
//!
//! Covered elsewhere and not repeated: a domain outside the allowed list
//! and a denied routed one (tests/destinations.rs), `LOCALHOST` and
//! `localhost.` (`domains_are_normalised_before_routing`), an A record of
//! 127.0.0.1 (tests/dns.rs `dns_answers_pointing_inside_are_refused_by_default`),
//! an SRV port outside `allowed_ports` on the stub's own port
//! (`a_port_outside_the_allowed_ones_is_not_connected`).

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use crate::corpus::{
    self, over_both, terminate, ws_error, Backend, Case, Outcome, Server, Via, Watch,
};
use crate::support::bosh_client::{create_body, BoshConn, BoshSession};
use crate::support::dns_stub::{srv_records, DnsStub, Rr};
use crate::support::raw_server::RawServer;
use crate::support::xmpp::chat_message;
use crate::support::{StubServer, WsClient, WAIT, WS_PATH};

#[derive(Clone, Copy, Debug)]
pub enum Probe {
    /// A session to this domain.
    Domain(&'static str, Via),
    /// A session to `NAME.dns.test`, whose SRV record leads to this
    /// address, on this port (the listener's when `None`).
    Dns(&'static str, &'static str, Option<u16>, Via),
}

const fn domain(name: &'static str, via: Via) -> Probe {
    Probe::Domain(name, via)
}

const fn at((name, ip): (&'static str, &'static str), via: Via) -> Probe {
    Probe::Dns(name, ip, None, via)
}

const fn at_port((name, ip, port): (&'static str, &'static str, u16), via: Via) -> Probe {
    Probe::Dns(name, ip, Some(port), via)
}

const fn not_connected(reason: &'static str) -> Outcome {
    Outcome::NotConnected(Cow::Borrowed(reason))
}

const INTERNAL: Outcome = not_connected("not a public address");
const NOT_SERVED_WS: Outcome = ws_error(1008, "host-unknown", Server::None);
const NOT_SERVED_BOSH: Outcome = terminate("host-unknown", Server::None);
/// What is no domain name at all is the client's mistake.
const NOT_A_NAME_WS: Outcome = ws_error(1007, "host-unknown", Server::None);
const NOT_A_NAME_BOSH: Outcome = terminate("improper-addressing", Server::None);
const NO_SERVER_WS: Outcome = ws_error(1000, "remote-connection-failed", Server::None);
const NO_SERVER_BOSH: Outcome = terminate("remote-connection-failed", Server::None);

#[rustfmt::skip]
pub const CASES: &[Case<Probe>] = over_both! {
    // Names, normalised, then matched against the lists.
    "an IDNA U-label", domain("Bücher.example") => Outcome::Served, Outcome::Served;
    "an IDNA U-label in upper case with a dot", domain("BÜCHER.EXAMPLE.") => Outcome::Served, Outcome::Served;
    "the IDNA A-label", domain("xn--bcher-kva.example") => Outcome::Served, Outcome::Served;
    "a denied name in upper case", domain("DENIED.allowed.test") => NOT_SERVED_WS, NOT_SERVED_BOSH;
    "a denied name with a trailing dot", domain("denied.allowed.test.") => NOT_SERVED_WS, NOT_SERVED_BOSH;
    "a denied name in mixed case with a trailing dot", domain("Denied.Allowed.Test.") => NOT_SERVED_WS, NOT_SERVED_BOSH;
    "a denied international name as its U-label", domain("BÖSE.allowed.test") => NOT_SERVED_WS, NOT_SERVED_BOSH;
    "a name below a denied suffix", domain("a.deep.allowed.test") => NOT_SERVED_WS, NOT_SERVED_BOSH;
    "the denied suffix itself is allowed", domain("deep.allowed.test") => NO_SERVER_WS, NO_SERVER_BOSH;
    "a name below an allowed suffix", domain("x.allowed.test") => NO_SERVER_WS, NO_SERVER_BOSH;
    "the allowed suffix itself", domain("allowed.test") => NOT_SERVED_WS, NOT_SERVED_BOSH;
    "a name ending like an allowed suffix", domain("evil-allowed.test") => NOT_SERVED_WS, NOT_SERVED_BOSH;
    "an allowed suffix inside another name", domain("x.allowed.test.evil.example") => NOT_SERVED_WS, NOT_SERVED_BOSH;
    "a look-alike with a Cyrillic letter", domain("lоcalhost") => NOT_SERVED_WS, NOT_SERVED_BOSH;
    "an IPv4 literal", domain("127.0.0.1") => NOT_SERVED_WS, NOT_SERVED_BOSH;
    "an IPv6 literal", domain("[::1]") => NOT_A_NAME_WS, NOT_A_NAME_BOSH;
    "a name with a port", domain("localhost:5222") => NOT_A_NAME_WS, NOT_A_NAME_BOSH;
    "a label of 64 characters below an allowed suffix", domain("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.allowed.test") => NO_SERVER_WS, NO_SERVER_BOSH;
    "a name over 253 characters", domain("a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.allowed.test") => NOT_A_NAME_WS, NOT_A_NAME_BOSH;
    // Addresses DNS leads to: IPv4 special-purpose blocks.
    "127.1.2.3", at(("v4-loopback", "127.1.2.3")) => INTERNAL, INTERNAL;
    "0.0.0.0", at(("v4-unspecified", "0.0.0.0")) => INTERNAL, INTERNAL;
    "10.0.0.1", at(("v4-private-10", "10.0.0.1")) => INTERNAL, INTERNAL;
    "172.16.0.1", at(("v4-private-172", "172.16.0.1")) => INTERNAL, INTERNAL;
    "192.168.1.1", at(("v4-private-192", "192.168.1.1")) => INTERNAL, INTERNAL;
    "169.254.169.254, cloud metadata", at(("v4-link-local", "169.254.169.254")) => INTERNAL, INTERNAL;
    "100.64.0.1, carrier-grade NAT", at(("v4-cgn", "100.64.0.1")) => INTERNAL, INTERNAL;
    "198.18.0.1, benchmarking", at(("v4-bench-low", "198.18.0.1")) => INTERNAL, INTERNAL;
    "198.19.255.254, benchmarking", at(("v4-bench-high", "198.19.255.254")) => INTERNAL, INTERNAL;
    "192.0.2.1, documentation", at(("v4-doc-1", "192.0.2.1")) => INTERNAL, INTERNAL;
    "198.51.100.1, documentation", at(("v4-doc-2", "198.51.100.1")) => INTERNAL, INTERNAL;
    "203.0.113.1, documentation", at(("v4-doc-3", "203.0.113.1")) => INTERNAL, INTERNAL;
    "192.0.0.1, protocol assignments", at(("v4-ietf", "192.0.0.1")) => INTERNAL, INTERNAL;
    "224.0.0.1, multicast", at(("v4-multicast", "224.0.0.1")) => INTERNAL, INTERNAL;
    "240.0.0.1, reserved", at(("v4-reserved", "240.0.0.1")) => INTERNAL, INTERNAL;
    "255.255.255.255, broadcast", at(("v4-broadcast", "255.255.255.255")) => INTERNAL, INTERNAL;
    // IPv6, and IPv4 carried in IPv6.
    "::1", at(("v6-loopback", "::1")) => INTERNAL, INTERNAL;
    "::", at(("v6-unspecified", "::")) => INTERNAL, INTERNAL;
    "::ffff:127.0.0.1, IPv4-mapped loopback", at(("v6-mapped", "::ffff:127.0.0.1")) => INTERNAL, INTERNAL;
    "::ffff:169.254.169.254, IPv4-mapped link-local", at(("v6-mapped-metadata", "::ffff:169.254.169.254")) => INTERNAL, INTERNAL;
    "::127.0.0.1, IPv4-compatible loopback", at(("v6-compatible", "::127.0.0.1")) => INTERNAL, INTERNAL;
    "64:ff9b::7f00:1, NAT64 of loopback", at(("v6-nat64", "64:ff9b::7f00:1")) => INTERNAL, INTERNAL;
    "64:ff9b::a9fe:a9fe, NAT64 of link-local", at(("v6-nat64-metadata", "64:ff9b::a9fe:a9fe")) => INTERNAL, INTERNAL;
    "64:ff9b:1::1, local-use NAT64", at(("v6-nat64-local", "64:ff9b:1::1")) => INTERNAL, INTERNAL;
    "2002:7f00:1::1, 6to4 of loopback", at(("v6-6to4", "2002:7f00:1::1")) => INTERNAL, INTERNAL;
    "2002:c0a8:101::1, 6to4 of a private address", at(("v6-6to4-private", "2002:c0a8:101::1")) => INTERNAL, INTERNAL;
    "fe80::1, link-local", at(("v6-link-local", "fe80::1")) => INTERNAL, INTERNAL;
    "fd12:3456::1, unique local", at(("v6-unique-local", "fd12:3456::1")) => INTERNAL, INTERNAL;
    "ff02::1, multicast", at(("v6-multicast", "ff02::1")) => INTERNAL, INTERNAL;
    "2001:db8::1, documentation", at(("v6-doc", "2001:db8::1")) => INTERNAL, INTERNAL;
    "100::1, discard", at(("v6-discard", "100::1")) => INTERNAL, INTERNAL;
    "2001::1, Teredo", at(("v6-teredo", "2001::1")) => INTERNAL, INTERNAL;
    // Ports.
    "a public address on a port not allowed", at_port(("port", "192.0.2.1", 5269)) => not_connected("port not allowed"), not_connected("port not allowed");
};

/// The reasons a DNS answer is refused before connecting, as logged.
const REASONS: [&str; 2] = ["not a public address", "port not allowed"];

struct Servers<'a> {
    addr: SocketAddr,
    stub: &'a StubServer,
    /// Bound to every local address on the port SRV records name.
    tripwire: &'a RawServer,
}

fn observe(servers: &Servers, probe: &Probe) -> Outcome {
    let (to, via) = match *probe {
        Probe::Domain(name, via) => (name.to_string(), via),
        Probe::Dns(name, _, _, via) => (format!("{name}.dns.test"), via),
    };
    let tripped = servers.tripwire.connection_count();
    let outcome = match via {
        Via::WebSocket => over_websocket(servers, &to),
        Via::Bosh => over_bosh(servers, &to),
    };
    let refused_at_once = match via {
        Via::WebSocket => outcome == NO_SERVER_WS,
        Via::Bosh => outcome == NO_SERVER_BOSH,
    };
    if !matches!(probe, Probe::Dns(..)) || !refused_at_once {
        return outcome;
    }
    if servers.tripwire.connection_count() > tripped {
        return Outcome::Other("the address was connected to".into());
    }
    let end = match via {
        Via::WebSocket => format!("(websocket, domain {to},"),
        Via::Bosh => format!(", domain {to},"),
    };
    let line = corpus::logged_where(|l| l.contains(" end: ") && l.contains(&end), WAIT);
    match line.and_then(|l| REASONS.iter().find(|r| l.contains(*r))) {
        Some(reason) => not_connected(reason),
        None => Outcome::Other(format!("no reason logged for {to}")),
    }
}

/// `<open/>` to `to`: its refusal, or a login and a message to itself.
fn over_websocket(servers: &Servers, to: &str) -> Outcome {
    let watch = Watch::new(&[Backend::Stub(servers.stub)]);
    let mut ws = WsClient::connect(servers.addr, WS_PATH, &["xmpp"]).unwrap();
    let mark = corpus::marker();
    let open =
        format!("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='{to}' version='1.0'/>");
    ws.send_text(&open).unwrap();
    loop {
        match ws.recv_text(WAIT) {
            Ok(text) if text.contains("stream:features") => break,
            Ok(text) if text.contains("stream:error") => {
                return corpus::ws_end(&mut ws, &mark, &[text], |wait| watch.server(wait))
            }
            Ok(_) => {}
            Err(e) => return Outcome::Other(format!("open: {e}")),
        }
    }
    let jid = ws.login_plain("prober", "pw", to).unwrap();
    ws.send_text(&chat_message(&jid, &mark)).unwrap();
    corpus::ws_end(&mut ws, &mark, &[], |wait| watch.server(wait))
}

/// A session created to `to`: its refusal, or a login and a message to
/// itself.
fn over_bosh(servers: &Servers, to: &str) -> Outcome {
    let watch = Watch::new(&[Backend::Stub(servers.stub)]);
    let mut conn = BoshConn::connect(servers.addr, corpus::BOSH_PATH);
    let created = conn.post(&create_body(7_000, to, ""), WAIT);
    let Some(sid) = created
        .attr("sid")
        .filter(|_| created.attr("type").is_none())
    else {
        return corpus::bosh_answer(&created, "", || watch.server(WAIT));
    };
    let mut session = BoshSession {
        conn,
        sid,
        rid: 7_000,
    };
    let jid = session.login("prober", to).unwrap();
    let mark = corpus::marker();
    let mut reply = session.request("", &chat_message(&jid, &mark)).unwrap();
    for _ in 0..5 {
        if reply.body.contains(&mark) || reply.attr("type").is_some() {
            break;
        }
        reply = session.request("", "").unwrap();
    }
    corpus::bosh_answer(&reply, &mark, || watch.server(WAIT))
}

pub fn run() {
    let tripwire = RawServer::start_on("[::]:0");
    let port = tripwire.addr().port();
    let mut records = Vec::new();
    for case in CASES {
        if let Probe::Dns(name, ip, to_port, Via::WebSocket) = case.probe {
            let host = match ip.parse::<IpAddr>().unwrap() {
                IpAddr::V4(v4) => Rr::A(v4),
                IpAddr::V6(v6) => Rr::Aaaa(v6),
            };
            records.extend(srv_records(
                &format!("{name}.dns.test"),
                to_port.unwrap_or(port),
                host,
            ));
        }
    }
    let dns = DnsStub::start(records);
    let (stub, mut config) = corpus::stub_and_config();
    config.backend.routes.insert(
        "xn--bcher-kva.example".into(),
        stub.addr().to_string().into(),
    );
    config.backend.allowed_domains = [
        "localhost",
        "*.allowed.test",
        "xn--bcher-kva.example",
        "*.dns.test",
    ]
    .map(String::from)
    .to_vec();
    config.backend.denied_domains = [
        "denied.allowed.test",
        "böse.allowed.test",
        "*.deep.allowed.test",
    ]
    .map(String::from)
    .to_vec();
    config.backend.allowed_ports = vec![port];
    config.dns.servers = vec![dns.addr];
    corpus::run("destinations", config, CASES, |addr, probe| {
        let servers = Servers {
            addr,
            stub: &stub,
            tripwire: &tripwire,
        };
        observe(&servers, probe)
    });
}
