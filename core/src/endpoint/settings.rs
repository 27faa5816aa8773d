//! What the endpoint needs from the configuration, resolved once at start
//! by the binary (route host names looked up, certificate files read): the
//! endpoint itself never touches a file or a resolver of the host.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::backend;
use crate::bosh;
use crate::destinations::Destinations;
use crate::http;
use crate::session;
use crate::xml;

/// Resource limits: everything that holds a descriptor or memory is counted
/// against one of these, per client address too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Open client connections; at the limit accept pauses.
    pub max_connections: usize,
    /// Open client connections from one address; beyond it a new one is
    /// answered 503 and closed.
    pub max_connections_per_address: usize,
    /// Live sessions (BOSH and WebSocket).
    pub max_sessions: usize,
    /// Live sessions started from one address.
    pub max_sessions_per_address: usize,
    /// New sessions one address may start per second (in bursts of five
    /// times as many).
    pub new_sessions_per_second_per_address: u32,
    /// Bytes buffered by all sessions together; above it nothing is read
    /// until writes bring it down, and new sessions are refused.
    pub max_buffered_bytes: usize,
}

pub struct Settings {
    pub http: http::Limits,
    pub http_read_timeout: Duration,
    pub http_idle_timeout: Duration,
    /// A client whose socket takes none of its pending output for this
    /// long is cut.
    pub http_write_timeout: Duration,
    pub websocket_path: String,
    /// Empty: any origin may upgrade.
    pub websocket_origins: Vec<String>,
    pub bosh_path: String,
    pub bosh_origins: Vec<String>,
    pub bosh_headers: Vec<(String, String)>,
    pub bosh: bosh::Settings,
    pub session: session::Settings,
    pub limits: Limits,
    /// Proxies in front (nginx, HAProxy): limited only as a whole; the
    /// clients behind them by the address they forward.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Per-direction output cap before the other side stops being read.
    pub max_buffer_bytes: usize,
    /// How long a closing connection may take to flush its last bytes.
    pub linger: Duration,
    pub connect_timeout: Duration,
    pub default_port: u16,
    /// Static routes.
    pub routes: HashMap<String, Vec<SocketAddr>>,
    /// The BOSH `route` values allowed, and where they lead.
    pub bosh_routes: HashMap<String, Vec<SocketAddr>>,
    /// Which domains are served, and which addresses and ports found by
    /// DNS may be connected to.
    pub destinations: Destinations,
    /// Domains whose server may be used without TLS.
    pub plaintext: HashSet<String>,
    /// An optional STARTTLS is skipped on connections to loopback addresses.
    pub loopback_plaintext: bool,
    pub xml: xml::Limits,
    /// TLS toward servers: WebPKI with the system's and `ca_file`'s CAs.
    pub tls: Arc<rustls::ClientConfig>,
    /// Static routes whose server is trusted otherwise (a pinned
    /// certificate, or any certificate on a loopback route; see
    /// [`backend::tls::Trust`]), by domain. Used only when the connection
    /// went to one of that route's own addresses: a BOSH `route` that sends
    /// the domain elsewhere gets [`Settings::tls`].
    pub route_tls: HashMap<String, Arc<rustls::ClientConfig>>,
    /// The wall clock every configuration above judges certificate dates
    /// by; the shell sets it at each wake-up.
    pub clock: backend::tls::Clock,
}

impl Settings {
    /// Small limits and short timeouts, one plaintext `domain` routed to
    /// `server`: for driving the endpoint with no real server, as the
    /// simulation and the fuzz checks do.
    pub fn tight(
        domain: &str,
        server: SocketAddr,
        tls: Arc<rustls::ClientConfig>,
        clock: backend::tls::Clock,
    ) -> Settings {
        const BUFFER: usize = 4096;
        let xml = xml::Limits {
            max_depth: 16,
            max_attributes: 32,
            max_element_bytes: 2 * BUFFER,
        };
        let seconds = Duration::from_secs;
        Settings {
            http: http::Limits {
                max_head_bytes: 8192,
                max_headers: 32,
                max_body_bytes: 64 * 1024,
            },
            http_read_timeout: seconds(2),
            http_idle_timeout: seconds(5),
            http_write_timeout: seconds(8),
            websocket_path: "/xmpp-websocket".into(),
            websocket_origins: Vec::new(),
            bosh_path: "/http-bind".into(),
            bosh_origins: vec!["*".into()],
            bosh_headers: Vec::new(),
            bosh: bosh::Settings {
                max_wait: seconds(4),
                max_hold: 1,
                default_inactivity: seconds(10),
                max_inactivity: seconds(20),
                polling: seconds(1),
                max_pause: seconds(20),
                max_streams: 2,
                allowed_routes: Vec::new(),
                handshake_timeout: seconds(3),
                max_pending_bytes: BUFFER,
                xml,
            },
            session: session::Settings {
                websocket: crate::websocket::Limits {
                    max_message_bytes: 2 * BUFFER,
                },
                xml,
                ping_interval: Some(seconds(5)),
                pong_timeout: seconds(2),
                handshake_timeout: seconds(3),
                max_buffer_bytes: BUFFER,
                open_timeout: seconds(3),
                read_timeout: seconds(2),
            },
            limits: Limits {
                max_connections: 40,
                max_connections_per_address: 10,
                max_sessions: 14,
                max_sessions_per_address: 5,
                new_sessions_per_second_per_address: 1,
                max_buffered_bytes: 128 * 1024,
            },
            trusted_proxies: Vec::new(),
            max_buffer_bytes: BUFFER,
            linger: seconds(2),
            connect_timeout: seconds(2),
            default_port: 5222,
            routes: HashMap::from([(domain.to_string(), vec![server])]),
            bosh_routes: HashMap::new(),
            destinations: Destinations::default(),
            plaintext: [domain.to_string()].into(),
            loopback_plaintext: false,
            xml,
            tls,
            route_tls: HashMap::new(),
            clock,
        }
    }

    /// Whether sessions for `domain` (normalised) are served: listed
    /// domains, or any when none is listed, and statically routed ones;
    /// never denied ones.
    pub fn serves(&self, domain: &str) -> bool {
        let destinations = &self.destinations;
        let listed = destinations.allowed.is_empty()
            || self.routes.contains_key(domain)
            || destinations.serves(domain);
        listed && !destinations.denied_matches(domain)
    }

    /// What a new backend stream for `domain`, connected to `peer`, needs.
    pub fn backend_settings(
        &self,
        domain: &str,
        lang: &str,
        peer: SocketAddr,
    ) -> backend::Settings {
        let on_route = self
            .routes
            .get(domain)
            .is_some_and(|addrs| addrs.contains(&peer));
        let tls = match self.route_tls.get(domain) {
            Some(tls) if on_route => tls,
            _ => &self.tls,
        };
        backend::Settings {
            domain: domain.to_string(),
            lang: lang.to_string(),
            tls: Arc::clone(tls),
            plaintext_allowed: self.plaintext.contains(domain),
            skip_optional_tls: self.loopback_plaintext && peer.ip().to_canonical().is_loopback(),
            xml: self.xml,
        }
    }
}
