//! Which domains switchboard serves: `backend.allowed_domains` and
//! `backend.denied_domains`, the same condition on both transports, and
//! domains normalised before routing.

mod support;

use support::bosh_client::{create_body, BoshConn, BoshSession};
use support::{config_for, StubOptions, StubServer, Switchboard, WAIT};

const PATH: &str = "/http-bind";

fn stub() -> StubServer {
    StubServer::start(StubOptions::plaintext("localhost"))
}

/// The WebSocket client's stream error, and the BOSH terminate condition,
/// for a session to `domain`.
fn refusals(sb: &Switchboard, domain: &str) -> (String, Option<String>) {
    let mut ws = sb.ws();
    let (_, error) = ws.open(domain).unwrap();
    let mut bosh = BoshConn::connect(sb.addr, PATH);
    let reply = bosh.post(&create_body(1_000, domain, ""), WAIT);
    (error, reply.attr("condition"))
}

#[test]
fn a_domain_not_served_is_host_unknown_on_both_transports() {
    let stub = stub();
    let mut config = config_for(&stub);
    config.backend.allowed_domains = vec!["*.example.org".into()];
    let sb = Switchboard::start(config);
    let (error, condition) = refusals(&sb, "other.test");
    assert!(error.contains("host-unknown"), "{error}");
    assert_eq!(condition.as_deref(), Some("host-unknown"));
    assert_eq!(stub.connection_count(), 0, "nothing was connected");
    // The routed domain is served although not listed.
    let mut ws = sb.ws();
    let (_, features) = ws.open("localhost").unwrap();
    assert!(features.contains("features"), "{features}");
}

#[test]
fn a_denied_domain_is_refused_even_when_routed() {
    let stub = stub();
    let mut config = config_for(&stub);
    config.backend.denied_domains = vec!["localhost".into()];
    let sb = Switchboard::start(config);
    let (error, condition) = refusals(&sb, "localhost");
    assert!(error.contains("host-unknown"), "{error}");
    assert_eq!(condition.as_deref(), Some("host-unknown"));
    assert_eq!(stub.connection_count(), 0);
}

/// `LOCALHOST` and `localhost.` are `localhost`: they take its static route.
#[test]
fn domains_are_normalised_before_routing() {
    let stub = stub();
    let sb = Switchboard::start(config_for(&stub));
    for domain in ["LOCALHOST", "localhost.", "LocalHost."] {
        let mut ws = sb.ws();
        let (_, features) = ws.open(domain).unwrap();
        assert!(features.contains("features"), "{domain}: {features}");
        let (_, created) = BoshSession::create(sb.addr, PATH, domain, 5_000, "").unwrap();
        assert_eq!(
            created.attr("from").as_deref(),
            Some("localhost"),
            "{domain}"
        );
    }
}
