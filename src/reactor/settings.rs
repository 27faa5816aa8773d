//! The configuration turned, once at start, into what the endpoint uses on
//! every connection: core limits, route tables (host names resolved), the
//! TLS client configs (certificate files read), per route where a route is
//! trusted otherwise.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};

use crate::config::{key_path, Config, ConfigError, Route};
use crate::tls::TlsConfigError;
use switchboard_core::backend::tls::{self, Clock, Trust};
use switchboard_core::bosh;
use switchboard_core::destinations::{Destinations, Pattern};
use switchboard_core::endpoint::{Limits, Settings};
use switchboard_core::http;
use switchboard_core::session;
use switchboard_core::websocket;
use switchboard_core::xml;

/// XMPP client port when no SRV record names one (RFC 6120 §3.2.2).
const XMPP_CLIENT_PORT: u16 = 5222;

/// Everything start-up checks short of binding the listener: the
/// configuration's bounds and formats (again, for configurations built in
/// code), route host names resolved, the CA file and pinned certificates
/// read. `--check-config` runs this very function, so the two cannot
/// disagree; both log a WARN for each loopback route whose certificate is
/// not verified. The clock of the TLS configs is not set yet: the reactor
/// sets it.
pub fn from_config(config: &Config) -> Result<Settings, ConfigError> {
    config.validate()?;
    let xml = xml::Limits {
        max_depth: config.xml.max_depth,
        max_attributes: config.xml.max_attributes,
        max_element_bytes: config.xml.max_element_bytes,
    };
    let clock = Clock::default();
    let ca_file = Some(config.backend.ca_file.as_path()).filter(|p| !p.as_os_str().is_empty());
    let tls = crate::tls::client_config(ca_file, &clock).map_err(|e| ca_file_error(config, &e))?;
    let mut routes = HashMap::new();
    let mut route_tls = HashMap::new();
    let mut plaintext: HashSet<String> = config.backend.plaintext_domains.iter().cloned().collect();
    for (domain, route) in &config.backend.routes {
        let key = key_path(&["backend", "routes", domain]);
        let address = &route.address;
        let addrs = resolve(config, &key, None, address, address)?;
        // A loopback route never leaves the machine: plaintext is as
        // safe there as the machine itself.
        let on_host = !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback());
        if on_host {
            plaintext.insert(domain.clone());
        }
        if let Some(trust) = route_trust(config, domain, route, on_host, &addrs)? {
            let config = tls::client_config(trust, &clock).map_err(|e| {
                config.error(
                    &key,
                    None,
                    &format!("{address:?}"),
                    &format!("cannot be used: {e}"),
                )
            })?;
            route_tls.insert(domain.clone(), config);
        }
        routes.insert(domain.clone(), addrs);
    }
    let mut bosh_routes = HashMap::new();
    for (i, route) in config.bosh.allowed_routes.iter().enumerate() {
        let target = route.strip_prefix("xmpp:").unwrap_or(route);
        let addrs = resolve(config, "bosh.allowed_routes", Some(i), route, target)?;
        bosh_routes.insert(route.clone(), addrs);
    }
    Ok(Settings {
        http: http::Limits {
            max_head_bytes: config.http.max_head_bytes,
            max_headers: config.http.max_headers,
            max_body_bytes: config.http.max_body_bytes,
        },
        http_read_timeout: config.http.read_timeout,
        http_idle_timeout: config.http.idle_timeout,
        http_write_timeout: config.http.write_timeout,
        websocket_path: config.websocket.path.clone(),
        websocket_origins: config.websocket.allowed_origins.clone(),
        bosh_path: config.bosh.path.clone(),
        bosh_origins: config.bosh.allowed_origins.clone(),
        bosh_headers: config.bosh.headers.clone().into_iter().collect(),
        bosh: bosh::Settings {
            max_wait: config.bosh.max_wait,
            max_hold: config.bosh.max_hold,
            default_inactivity: config.bosh.default_inactivity,
            max_inactivity: config.bosh.max_inactivity,
            polling: config.bosh.polling,
            max_pause: config.bosh.max_pause,
            max_streams: config.bosh.max_streams,
            allowed_routes: config.bosh.allowed_routes.clone(),
            handshake_timeout: config.backend.handshake_timeout,
            max_pending_bytes: config.backend.max_buffer_bytes,
            xml,
        },
        session: session::Settings {
            websocket: websocket::Limits {
                max_message_bytes: config.websocket.max_message_bytes,
            },
            xml,
            ping_interval: config.websocket.ping_interval,
            pong_timeout: config.websocket.pong_timeout,
            handshake_timeout: config.backend.handshake_timeout,
            max_buffer_bytes: config.backend.max_buffer_bytes,
            open_timeout: config.websocket.open_timeout,
            read_timeout: config.http.read_timeout,
        },
        limits: Limits {
            max_connections: config.server.max_connections,
            max_connections_per_address: config.server.max_connections_per_address,
            max_sessions: config.server.max_sessions,
            max_sessions_per_address: config.server.max_sessions_per_address,
            new_sessions_per_second_per_address: u32::try_from(
                config.server.new_sessions_per_second_per_address,
            )
            .unwrap_or(u32::MAX),
            max_buffered_bytes: config.server.max_buffered_bytes,
        },
        trusted_proxies: config.server.trusted_proxies.clone(),
        max_buffer_bytes: config.backend.max_buffer_bytes,
        linger: config.websocket.pong_timeout,
        connect_timeout: config.backend.connect_timeout,
        default_port: XMPP_CLIENT_PORT,
        routes,
        bosh_routes,
        destinations: Destinations {
            allowed: patterns(&config.backend.allowed_domains),
            denied: patterns(&config.backend.denied_domains),
            allowed_ports: config.backend.allowed_ports.clone(),
            allow_private: config.backend.allow_private_addresses,
        },
        plaintext,
        loopback_plaintext: config.backend.loopback_plaintext,
        xml,
        tls,
        route_tls,
        clock,
    })
}

/// How `domain`'s route trusts its server when not by the CAs: the
/// certificate it pins, else any certificate when every address of the
/// route is on this host (said in a WARN line) and `verify_loopback` is
/// off.
fn route_trust(
    config: &Config,
    domain: &str,
    route: &Route,
    on_host: bool,
    addrs: &[SocketAddr],
) -> Result<Option<Trust>, ConfigError> {
    if !route.certificate.as_os_str().is_empty() {
        let pin = crate::tls::pinned_certificate(&route.certificate).map_err(|e| {
            let key = key_path(&["backend", "routes", domain, "certificate"]);
            let path = format!("{:?}", route.certificate.display().to_string());
            config.error(&key, None, &path, &certificate_problem(&e))
        })?;
        return Ok(Some(Trust::Pinned(pin)));
    }
    if !on_host || config.backend.verify_loopback {
        return Ok(None);
    }
    let addrs: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    log::warn!(
        "{}: the server's certificate is not verified: every address of this route ({}) is on this host, so the stream never leaves it; to verify it, pin it ({} = {{ address = {:?}, certificate = \"FILE.pem\" }}) or set backend.verify_loopback = true",
        key_path(&["backend", "routes", domain]),
        addrs.join(", "),
        key_path(&[domain]),
        route.address,
    );
    Ok(Some(Trust::Loopback))
}

/// The host and port of a route (`value`, as the configuration holds it)
/// resolved, as the loop will dial them.
fn resolve(
    config: &Config,
    key: &str,
    index: Option<usize>,
    value: &str,
    target: &str,
) -> Result<Vec<SocketAddr>, ConfigError> {
    target
        .to_socket_addrs()
        .map(Iterator::collect)
        .map_err(|e| {
            let what = format!(
                "cannot be resolved ({e}); give an IP address and port such as \"127.0.0.1:5222\", or a host name this machine resolves"
            );
            config.error(key, index, &format!("{value:?}"), &what)
        })
}

/// Why `backend.ca_file` (or the lack of one) gives no usable trust.
fn ca_file_error(config: &Config, error: &TlsConfigError) -> ConfigError {
    let what = match error {
        TlsConfigError::CaFile {
            error: rustls::pki_types::pem::Error::Io(e),
            ..
        } => format!("cannot be read ({e}); give a readable PEM file of CA certificates, or leave ca_file out to trust the system's CAs only"),
        TlsConfigError::CaFile { error, .. } => {
            format!("is not a PEM file ({error}); give a file of \"-----BEGIN CERTIFICATE-----\" sections")
        }
        TlsConfigError::NoCertificates(_) => {
            "holds no certificate; give a PEM file with at least one \"-----BEGIN CERTIFICATE-----\" section".into()
        }
        TlsConfigError::InvalidCa { error, .. } => {
            format!("holds a certificate that cannot be a trusted CA ({error}); give the CA's own certificate")
        }
        TlsConfigError::NoTrustAnchors => {
            "names no CA file and this system has no CA certificates; give a PEM file of the CAs that sign your XMPP servers' certificates".into()
        }
        other => certificate_problem(other),
    };
    let path = format!("{:?}", config.backend.ca_file.display().to_string());
    config.error("backend.ca_file", None, &path, &what)
}

/// Why a route's `certificate` file cannot be pinned.
fn certificate_problem(error: &TlsConfigError) -> String {
    match error {
        TlsConfigError::PinFile {
            error: rustls::pki_types::pem::Error::Io(e),
            ..
        } => format!("cannot be read ({e}); give the PEM file of the server's own certificate, as it serves it"),
        TlsConfigError::PinFile { error, .. } => format!(
            "is not a PEM file ({error}); give the server's own certificate, one \"-----BEGIN CERTIFICATE-----\" section"
        ),
        TlsConfigError::PinCount { found: 0, .. } => {
            "holds no certificate; give the server's own certificate, one \"-----BEGIN CERTIFICATE-----\" section".into()
        }
        TlsConfigError::PinCount { found, .. } => format!(
            "holds {found} certificates; give the server's own certificate alone, the one it presents first (it is compared byte for byte)"
        ),
        TlsConfigError::PinInvalid { error, .. } => format!(
            "holds something that is not an X.509 certificate ({error}); give the server's own certificate"
        ),
        other => format!("cannot be used: {other}"),
    }
}

/// The domain patterns of a list `Config::validate` has checked.
fn patterns(list: &[String]) -> Vec<Pattern> {
    list.iter().filter_map(|p| Pattern::parse(p)).collect()
}
