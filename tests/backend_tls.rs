//! How switchboard trusts a server's certificate, end to end: a stub
//! presenting a self-signed `CA:TRUE` certificate (Debian's Prosody's
//! stock kind) behind a loopback route is used as is, unless
//! `backend.verify_loopback`; a route pinning that certificate is trusted
//! whatever it is, and only with that certificate.

mod support;

use support::bosh_client::BoshSession;
use support::{config_for, StubEvent, StubOptions, StubServer, Switchboard, TlsMode, WAIT};
use switchboard::config::{Config, Route};

fn self_signed_stub() -> StubServer {
    StubServer::start(StubOptions {
        self_signed: true,
        ..StubOptions::starttls("localhost", TlsMode::Required)
    })
}

/// A client logs in over WebSocket through `config`: the session's
/// features, or the stream error it was refused with.
fn login(config: Config) -> Result<String, String> {
    let sb = Switchboard::start(config);
    let mut ws = sb.ws();
    let (_open, features) = ws.open("localhost").map_err(|e| format!("{e:?}"))?;
    if features.contains("remote-connection-failed") {
        return Err(features);
    }
    ws.login_plain("alice", "pw", "localhost")
        .map_err(|e| format!("{e:?}"))?;
    Ok(features)
}

/// A route to `stub` pinning `certificate`.
fn pinned_route(stub: &StubServer, certificate: &std::path::Path) -> Route {
    Route {
        address: stub.addr().to_string(),
        certificate: certificate.to_path_buf(),
    }
}

/// Zero configuration beside a stock local server: only the route, no CA,
/// no pin.
#[test]
fn a_self_signed_server_on_a_loopback_route_is_used_as_is() {
    let stub = self_signed_stub();
    let mut config = config_for(&stub);
    config.backend.verify_loopback = false;
    let features = login(config).unwrap();
    assert!(features.contains("PLAIN"), "{features}");
    assert!(stub.events(0).contains(&StubEvent::StartTls));
}

#[test]
fn verify_loopback_refuses_a_self_signed_server_on_a_loopback_route() {
    let stub = self_signed_stub();
    let config = config_for(&stub);
    assert!(config.backend.verify_loopback);
    let refused = login(config).unwrap_err();
    assert!(refused.contains("remote-connection-failed"), "{refused}");
    let events = stub
        .wait_event(0, WAIT, |e| *e == StubEvent::TcpClosed)
        .unwrap();
    assert!(!events.contains(&StubEvent::StartTls), "{events:?}");
}

#[test]
fn a_pinned_certificate_is_trusted_whatever_its_ca_flag() {
    let stub = self_signed_stub();
    let mut config = config_for(&stub);
    let route = pinned_route(&stub, stub.cert_file().unwrap());
    config.backend.routes.insert("localhost".into(), route);
    login(config).unwrap();
}

#[test]
fn a_pin_refuses_a_server_presenting_another_certificate() {
    let stub = self_signed_stub();
    let other = self_signed_stub();
    let mut config = config_for(&stub);
    config.backend.verify_loopback = false;
    let route = pinned_route(&stub, other.cert_file().unwrap());
    config.backend.routes.insert("localhost".into(), route);
    let refused = login(config).unwrap_err();
    assert!(refused.contains("remote-connection-failed"), "{refused}");
}

/// A route's own trust goes with its addresses, not its domain: a BOSH
/// `route` (XEP-0124 §7.1) that sends the route's domain to another
/// loopback server is verified as any other, while the route's own
/// address still takes what it presents.
#[test]
fn a_bosh_route_elsewhere_does_not_inherit_a_loopback_routes_trust() {
    let stub = self_signed_stub();
    let elsewhere = self_signed_stub();
    let mut config = config_for(&stub);
    config.backend.verify_loopback = false;
    config.bosh.allowed_routes = vec![
        format!("xmpp:{}", stub.addr()),
        format!("xmpp:{}", elsewhere.addr()),
    ];
    let sb = Switchboard::start(config);
    let route = format!("route='xmpp:{}'", stub.addr());
    BoshSession::create(sb.addr, "/http-bind", "localhost", 1, &route).unwrap();
    let route = format!("route='xmpp:{}'", elsewhere.addr());
    let refused = BoshSession::create(sb.addr, "/http-bind", "localhost", 1, &route)
        .err()
        .unwrap();
    assert!(refused.contains("remote-connection-failed"), "{refused}");
    assert_eq!(elsewhere.connection_count(), 1);
}
