//! The TOML configuration: plain data, validated once at start, so that a
//! running server never meets a value it cannot use. Every key is optional;
//! its default is a `DEFAULT_*` constant here and its bound is checked in
//! [`Config::validate`]. docs/config.md is the reference for operators.
//!
//! Every error names its line, its key and the value as written, then says
//! what is wrong in words with an example of a good value; `source.rs` maps
//! the parser's and serde's errors to that form, `values.rs` reads each kind
//! of value.

mod source;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use switchboard_core::destinations::Pattern;

pub(crate) use source::key_path;
use source::Source;
use values::{
    bytes, count, dns_servers, duration, listen, optional_duration, proxies, show_duration,
};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:5280";
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 500;
pub const DEFAULT_MAX_SESSIONS_PER_ADDRESS: usize = 250;
pub const DEFAULT_NEW_SESSIONS_PER_SECOND: usize = 10;
pub const DEFAULT_TRUSTED_PROXIES: [&str; 2] = ["127.0.0.1", "::1"];
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 256 * 1024 * 1024;
pub const DEFAULT_MAX_HEAD_BYTES: usize = 8 * 1024;
pub const DEFAULT_MAX_HEADERS: usize = 64;
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
pub const DEFAULT_HTTP_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_HTTP_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_WEBSOCKET_PATH: &str = "/xmpp-websocket";
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 * 1024;
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(20);
pub const DEFAULT_BOSH_PATH: &str = "/http-bind";
pub const DEFAULT_BOSH_MAX_WAIT: Duration = Duration::from_secs(60);
pub const DEFAULT_BOSH_MAX_HOLD: u32 = 1;
pub const DEFAULT_BOSH_INACTIVITY: Duration = Duration::from_secs(70);
pub const DEFAULT_BOSH_MAX_INACTIVITY: Duration = Duration::from_secs(160);
pub const DEFAULT_BOSH_POLLING: Duration = Duration::from_secs(2);
pub const DEFAULT_BOSH_MAX_PAUSE: Duration = Duration::from_secs(120);
pub const DEFAULT_BOSH_MAX_STREAMS: usize = 4;
/// A token carries a stream's slot in one byte.
const MAX_STREAMS_BOUND: usize = 255;
pub const DEFAULT_MAX_DEPTH: usize = 32;
pub const DEFAULT_MAX_ATTRIBUTES: usize = 64;
pub const DEFAULT_MAX_ELEMENT_BYTES: usize = 256 * 1024;
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
pub const DEFAULT_MAX_BUFFER_BYTES: usize = 256 * 1024;
pub const DEFAULT_ROUTE: (&str, &str) = ("localhost", "127.0.0.1:5222");
pub const DEFAULT_DNS_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_DNS_ATTEMPTS: u32 = 2;
pub const DEFAULT_DNS_CACHE_ENTRIES: usize = 1024;

/// Upper bounds: generous, but a typo of three zeros is caught.
const MAX_CONNECTIONS_BOUND: usize = 1_000_000;
const MAX_BYTES_BOUND: usize = 64 * 1024 * 1024;
const MAX_BUDGET_BOUND: usize = 1 << 40;
const MAX_TIMEOUT_BOUND: Duration = Duration::from_secs(24 * 3600);
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: Server,
    pub http: Http,
    pub websocket: WebSocket,
    pub bosh: Bosh,
    pub xml: Xml,
    pub backend: Backend,
    pub dns: Dns,
    /// Where the file set each key; empty for a configuration built in code.
    #[serde(skip)]
    source: Source,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Server {
    #[serde(deserialize_with = "listen")]
    pub listen: SocketAddr,
    /// Accept pauses at this many open client connections.
    #[serde(deserialize_with = "count")]
    pub max_connections: usize,
    /// Open client connections from one address; more are answered 503.
    #[serde(deserialize_with = "count")]
    pub max_connections_per_address: usize,
    /// Live sessions, BOSH and WebSocket together.
    #[serde(deserialize_with = "count")]
    pub max_sessions: usize,
    /// Live sessions started from one address.
    #[serde(deserialize_with = "count")]
    pub max_sessions_per_address: usize,
    /// New sessions one address may start per second, in bursts of five
    /// times as many.
    #[serde(deserialize_with = "count")]
    pub new_sessions_per_second_per_address: usize,
    /// Proxies in front (nginx, HAProxy) whose `X-Forwarded-For` names
    /// the client; they are limited as a whole only.
    #[serde(deserialize_with = "proxies")]
    pub trusted_proxies: Vec<IpAddr>,
    /// Bytes buffered by all sessions together: above it reading pauses
    /// and new sessions are refused.
    #[serde(deserialize_with = "bytes")]
    pub max_buffered_bytes: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    #[serde(deserialize_with = "bytes")]
    pub max_head_bytes: usize,
    #[serde(deserialize_with = "count")]
    pub max_headers: usize,
    #[serde(deserialize_with = "bytes")]
    pub max_body_bytes: usize,
    #[serde(deserialize_with = "duration")]
    pub read_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// A client whose socket takes none of its pending output for this
    /// long is cut (nginx's `send_timeout`).
    #[serde(deserialize_with = "duration")]
    pub write_timeout: Duration,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocket {
    pub path: String,
    #[serde(deserialize_with = "bytes")]
    pub max_message_bytes: usize,
    /// `None` ("off") disables server pings.
    #[serde(deserialize_with = "optional_duration")]
    pub ping_interval: Option<Duration>,
    #[serde(deserialize_with = "duration")]
    pub pong_timeout: Duration,
    /// An upgraded connection must send `<open/>` within this.
    #[serde(deserialize_with = "duration")]
    pub open_timeout: Duration,
    /// Browser origins allowed to upgrade (RFC 6455 §10.2), compared
    /// exactly, e.g. "https://chat.example.org"; empty allows any, like
    /// Prosody's default `cross_domain_websocket`.
    pub allowed_origins: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bosh {
    pub path: String,
    /// Longest `wait` granted to a client (XEP-0124 §7.1).
    #[serde(deserialize_with = "duration")]
    pub max_wait: Duration,
    /// Most requests a client may have held at once.
    #[serde(deserialize_with = "count")]
    pub max_hold: u32,
    /// A client's `inactivity` is clamped into [default, max]
    /// (node-xmpp-bosh's rule).
    #[serde(deserialize_with = "duration")]
    pub default_inactivity: Duration,
    #[serde(deserialize_with = "duration")]
    pub max_inactivity: Duration,
    /// The shortest polling interval announced (XEP-0124 §12).
    #[serde(deserialize_with = "duration")]
    pub polling: Duration,
    /// The longest `pause` granted (XEP-0124 §10).
    #[serde(deserialize_with = "duration")]
    pub max_pause: Duration,
    /// Streams open at once in one session (XEP-0124 §19).
    #[serde(deserialize_with = "count")]
    pub max_streams: usize,
    /// `route` values ("xmpp:host:port") a client may ask for; empty (the
    /// default): `route` is ignored and the server is found from `to`.
    pub allowed_routes: Vec<String>,
    /// Origins whose pages may use BOSH (CORS); "*" allows any (BOSH
    /// carries no cookies), an empty list sends no CORS headers.
    pub allowed_origins: Vec<String>,
    /// Extra headers on every BOSH response (node-xmpp-bosh's
    /// `http_headers`).
    pub headers: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Xml {
    #[serde(deserialize_with = "count")]
    pub max_depth: usize,
    #[serde(deserialize_with = "count")]
    pub max_attributes: usize,
    #[serde(deserialize_with = "bytes")]
    pub max_element_bytes: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Backend {
    #[serde(deserialize_with = "duration")]
    pub connect_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub handshake_timeout: Duration,
    /// Trusted besides the system roots; empty for none.
    pub ca_file: PathBuf,
    /// Domains whose server may be used without TLS when it does not
    /// offer STARTTLS at all.
    pub plaintext_domains: Vec<String>,
    /// Per-direction output cap before the other side stops being read.
    #[serde(deserialize_with = "bytes")]
    pub max_buffer_bytes: usize,
    /// Static routes: domain → "host:port", or a table with the server's
    /// pinned certificate too. A route to a loopback address also allows a
    /// plaintext backend, and an unverified certificate unless
    /// `verify_loopback`.
    pub routes: BTreeMap<String, Route>,
    /// Whether a server found by DNS may be at a loopback, private or
    /// link-local address. Off: a client's `to` cannot reach the inside of
    /// the network; static routes are always allowed.
    pub allow_private_addresses: bool,
    /// Domains served (exact, or `*.suffix` for the names below it);
    /// empty serves any domain not denied. Routed domains are served.
    pub allowed_domains: Vec<String>,
    /// Domains never served, even when allowed or routed.
    pub denied_domains: Vec<String>,
    /// Ports a server found by DNS may be at; empty allows any.
    pub allowed_ports: Vec<u16>,
    /// Skip a STARTTLS the server offers without requiring it when the
    /// server is at a loopback address: switchboard and the server on one
    /// host, where encryption protects nothing and costs the server CPU.
    pub loopback_plaintext: bool,
    /// Verify the certificate of a server on a loopback route without a
    /// pin too. Off: any certificate is taken there, with a WARN at start.
    pub verify_loopback: bool,
}

/// A static route (`[backend.routes]`): `"host:port"`, or
/// `{ address = "host:port", certificate = "FILE.pem" }`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Route {
    /// "host:port"; empty only when a table left it out, which validation
    /// refuses.
    pub address: String,
    /// The server's own certificate (PEM), pinned: the server must present
    /// exactly it. Empty for none.
    pub certificate: PathBuf,
}

impl From<String> for Route {
    fn from(address: String) -> Route {
        Route {
            address,
            certificate: PathBuf::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dns {
    /// Empty: the nameservers of /etc/resolv.conf.
    #[serde(deserialize_with = "dns_servers")]
    pub servers: Vec<SocketAddr>,
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    #[serde(deserialize_with = "count")]
    pub attempts: u32,
    #[serde(deserialize_with = "count")]
    pub cache_entries: usize,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 5280))),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_sessions_per_address: DEFAULT_MAX_SESSIONS_PER_ADDRESS,
            new_sessions_per_second_per_address: DEFAULT_NEW_SESSIONS_PER_SECOND,
            trusted_proxies: DEFAULT_TRUSTED_PROXIES
                .iter()
                .filter_map(|ip| ip.parse().ok())
                .collect(),
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Http {
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            read_timeout: DEFAULT_HTTP_READ_TIMEOUT,
            idle_timeout: DEFAULT_HTTP_IDLE_TIMEOUT,
            write_timeout: DEFAULT_HTTP_WRITE_TIMEOUT,
        }
    }
}

impl Default for WebSocket {
    fn default() -> Self {
        WebSocket {
            path: DEFAULT_WEBSOCKET_PATH.into(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            ping_interval: Some(DEFAULT_PING_INTERVAL),
            open_timeout: DEFAULT_OPEN_TIMEOUT,
            pong_timeout: DEFAULT_PONG_TIMEOUT,
            allowed_origins: Vec::new(),
        }
    }
}

impl Default for Bosh {
    fn default() -> Self {
        Bosh {
            path: DEFAULT_BOSH_PATH.into(),
            max_wait: DEFAULT_BOSH_MAX_WAIT,
            max_hold: DEFAULT_BOSH_MAX_HOLD,
            default_inactivity: DEFAULT_BOSH_INACTIVITY,
            max_inactivity: DEFAULT_BOSH_MAX_INACTIVITY,
            polling: DEFAULT_BOSH_POLLING,
            max_pause: DEFAULT_BOSH_MAX_PAUSE,
            max_streams: DEFAULT_BOSH_MAX_STREAMS,
            allowed_routes: Vec::new(),
            allowed_origins: vec!["*".into()],
            headers: BTreeMap::new(),
        }
    }
}

impl Default for Xml {
    fn default() -> Self {
        Xml {
            max_depth: DEFAULT_MAX_DEPTH,
            max_attributes: DEFAULT_MAX_ATTRIBUTES,
            max_element_bytes: DEFAULT_MAX_ELEMENT_BYTES,
        }
    }
}

impl Default for Backend {
    fn default() -> Self {
        Backend {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            ca_file: PathBuf::new(),
            plaintext_domains: Vec::new(),
            max_buffer_bytes: DEFAULT_MAX_BUFFER_BYTES,
            routes: BTreeMap::from([(
                DEFAULT_ROUTE.0.to_string(),
                Route::from(DEFAULT_ROUTE.1.to_string()),
            )]),
            allow_private_addresses: false,
            allowed_domains: Vec::new(),
            denied_domains: Vec::new(),
            allowed_ports: Vec::new(),
            loopback_plaintext: false,
            verify_loopback: false,
        }
    }
}

impl Default for Dns {
    fn default() -> Self {
        Dns {
            servers: Vec::new(),
            timeout: DEFAULT_DNS_TIMEOUT,
            attempts: DEFAULT_DNS_ATTEMPTS,
            cache_entries: DEFAULT_DNS_CACHE_ENTRIES,
        }
    }
}

/// What is wrong with a configuration, and where: `line N: key: message`,
/// where the message starts with the value as written.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The reactor reports start-up failures as strings; a configuration
/// error keeps its line and key there.
impl From<ConfigError> for String {
    fn from(error: ConfigError) -> String {
        error.to_string()
    }
}

/// The largest XML nesting and attribute count allowed.
const MAX_XML_BOUND: usize = 1024;
const MAX_HOLD_BOUND: usize = 5;
const MAX_DNS_ATTEMPTS: usize = 10;

impl Config {
    /// Parse and validate a configuration file's text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let (source, tree) = Source::parse(text)?;
        let mut config = Config::deserialize(toml::de::Deserializer::from(tree))
            .map_err(|e| source.explain(&e))?;
        config.source = source;
        config.validate()?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            line: None,
            key: None,
            message: format!("cannot be read ({e})"),
        })?;
        Config::from_toml(&text)
    }

    /// Tight timeouts for tests; the limits stay the defaults.
    pub fn for_tests() -> Config {
        let mut config = Config::default();
        config.http.read_timeout = Duration::from_secs(2);
        config.http.idle_timeout = Duration::from_secs(2);
        config.websocket.ping_interval = Some(Duration::from_secs(5));
        config.websocket.pong_timeout = Duration::from_secs(2);
        config.backend.connect_timeout = Duration::from_secs(2);
        config.backend.handshake_timeout = Duration::from_secs(3);
        config.dns.timeout = Duration::from_millis(300);
        config
    }

    /// An error about `key` (its list element `index`): at the line where
    /// the file sets it, starting with the value as written there, else
    /// with `value` as this configuration holds it.
    pub(crate) fn error(
        &self,
        key: &str,
        index: Option<usize>,
        value: &str,
        what: &str,
    ) -> ConfigError {
        ConfigError {
            line: self.source.locate(key, index).map(|(line, _)| line),
            key: Some(key.to_string()),
            message: format!("{} {what}", self.as_written_at(key, index, value)),
        }
    }

    /// `key`'s value (its element `index`) as the file writes it, else
    /// `value`.
    fn as_written_at(&self, key: &str, index: Option<usize>, value: &str) -> String {
        match self.source.locate(key, index) {
            Some((_, raw)) => raw.to_string(),
            None => value.to_string(),
        }
    }

    /// An error about the name of `key` itself, at its line.
    fn key_error(&self, key: &str, what: &str) -> ConfigError {
        ConfigError {
            line: self.source.locate(key, None).map(|(line, _)| line),
            key: Some(key.to_string()),
            message: what.to_string(),
        }
    }

    /// Every bound and format, checked without touching the network or
    /// the disk; the first one broken is the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_counts()?;
        self.check_durations()?;
        self.check_bosh()?;
        self.check_paths()?;
        self.check_origins()?;
        self.check_backend()
    }

    fn check_counts(&self) -> Result<(), ConfigError> {
        let counts: [(&str, usize, usize, usize, usize); 12] = [
            (
                "server.max_connections",
                self.server.max_connections,
                1,
                MAX_CONNECTIONS_BOUND,
                DEFAULT_MAX_CONNECTIONS,
            ),
            (
                "server.max_connections_per_address",
                self.server.max_connections_per_address,
                1,
                MAX_CONNECTIONS_BOUND,
                DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            ),
            (
                "server.max_sessions",
                self.server.max_sessions,
                1,
                MAX_CONNECTIONS_BOUND,
                DEFAULT_MAX_SESSIONS,
            ),
            (
                "server.max_sessions_per_address",
                self.server.max_sessions_per_address,
                1,
                MAX_CONNECTIONS_BOUND,
                DEFAULT_MAX_SESSIONS_PER_ADDRESS,
            ),
            (
                "server.new_sessions_per_second_per_address",
                self.server.new_sessions_per_second_per_address,
                1,
                MAX_CONNECTIONS_BOUND,
                DEFAULT_NEW_SESSIONS_PER_SECOND,
            ),
            (
                "http.max_headers",
                self.http.max_headers,
                1,
                switchboard_core::http::MAX_HEADERS,
                DEFAULT_MAX_HEADERS,
            ),
            (
                "bosh.max_hold",
                self.bosh.max_hold as usize,
                1,
                MAX_HOLD_BOUND,
                DEFAULT_BOSH_MAX_HOLD as usize,
            ),
            (
                "bosh.max_streams",
                self.bosh.max_streams,
                1,
                MAX_STREAMS_BOUND,
                DEFAULT_BOSH_MAX_STREAMS,
            ),
            (
                "xml.max_depth",
                self.xml.max_depth,
                1,
                MAX_XML_BOUND,
                DEFAULT_MAX_DEPTH,
            ),
            (
                "xml.max_attributes",
                self.xml.max_attributes,
                1,
                MAX_XML_BOUND,
                DEFAULT_MAX_ATTRIBUTES,
            ),
            (
                "dns.attempts",
                self.dns.attempts as usize,
                1,
                MAX_DNS_ATTEMPTS,
                DEFAULT_DNS_ATTEMPTS as usize,
            ),
            (
                "dns.cache_entries",
                self.dns.cache_entries,
                0,
                MAX_CONNECTIONS_BOUND,
                DEFAULT_DNS_CACHE_ENTRIES,
            ),
        ];
        for (key, value, min, max, default) in counts {
            if !(min..=max).contains(&value) {
                let what = format!("is not a whole number from {min} to {max}, such as {default}");
                return Err(self.error(key, None, &value.to_string(), &what));
            }
        }
        let sizes = [
            (
                "server.max_buffered_bytes",
                self.server.max_buffered_bytes,
                MAX_BUDGET_BOUND,
                DEFAULT_MAX_BUFFERED_BYTES,
            ),
            (
                "http.max_head_bytes",
                self.http.max_head_bytes,
                MAX_BYTES_BOUND,
                DEFAULT_MAX_HEAD_BYTES,
            ),
            (
                "http.max_body_bytes",
                self.http.max_body_bytes,
                MAX_BYTES_BOUND,
                DEFAULT_MAX_BODY_BYTES,
            ),
            (
                "websocket.max_message_bytes",
                self.websocket.max_message_bytes,
                MAX_BYTES_BOUND,
                DEFAULT_MAX_MESSAGE_BYTES,
            ),
            (
                "xml.max_element_bytes",
                self.xml.max_element_bytes,
                MAX_BYTES_BOUND,
                DEFAULT_MAX_ELEMENT_BYTES,
            ),
            (
                "backend.max_buffer_bytes",
                self.backend.max_buffer_bytes,
                MAX_BYTES_BOUND,
                DEFAULT_MAX_BUFFER_BYTES,
            ),
        ];
        for (key, value, max, default) in sizes {
            if !(1..=max).contains(&value) {
                let what = format!(
                    "is not a number of bytes from 1 to {max} ({}), such as {default}",
                    in_binary_units(max)
                );
                return Err(self.error(key, None, &value.to_string(), &what));
            }
        }
        Ok(())
    }

    fn check_durations(&self) -> Result<(), ConfigError> {
        let timeouts = [
            (
                "http.read_timeout",
                self.http.read_timeout,
                DEFAULT_HTTP_READ_TIMEOUT,
            ),
            (
                "http.idle_timeout",
                self.http.idle_timeout,
                DEFAULT_HTTP_IDLE_TIMEOUT,
            ),
            (
                "http.write_timeout",
                self.http.write_timeout,
                DEFAULT_HTTP_WRITE_TIMEOUT,
            ),
            (
                "websocket.open_timeout",
                self.websocket.open_timeout,
                DEFAULT_OPEN_TIMEOUT,
            ),
            (
                "websocket.pong_timeout",
                self.websocket.pong_timeout,
                DEFAULT_PONG_TIMEOUT,
            ),
            (
                "backend.connect_timeout",
                self.backend.connect_timeout,
                DEFAULT_CONNECT_TIMEOUT,
            ),
            (
                "backend.handshake_timeout",
                self.backend.handshake_timeout,
                DEFAULT_HANDSHAKE_TIMEOUT,
            ),
            ("dns.timeout", self.dns.timeout, DEFAULT_DNS_TIMEOUT),
        ];
        let interval = self.websocket.ping_interval;
        for (key, value, default, off) in timeouts
            .into_iter()
            .map(|(key, value, default)| (key, value, default, ""))
            .chain(interval.map(|value| {
                (
                    "websocket.ping_interval",
                    value,
                    DEFAULT_PING_INTERVAL,
                    ", or \"off\"",
                )
            }))
        {
            if !(MIN_TIMEOUT..=MAX_TIMEOUT_BOUND).contains(&value) {
                let what = format!(
                    "is not a duration from 1ms to 24h, such as {}{off}",
                    show_duration(default)
                );
                return Err(self.error(key, None, &show_duration(value), &what));
            }
        }
        // XEP-0124 counts these in whole seconds.
        let bosh = [
            ("bosh.max_wait", self.bosh.max_wait, DEFAULT_BOSH_MAX_WAIT),
            (
                "bosh.default_inactivity",
                self.bosh.default_inactivity,
                DEFAULT_BOSH_INACTIVITY,
            ),
            (
                "bosh.max_inactivity",
                self.bosh.max_inactivity,
                DEFAULT_BOSH_MAX_INACTIVITY,
            ),
            ("bosh.polling", self.bosh.polling, DEFAULT_BOSH_POLLING),
            (
                "bosh.max_pause",
                self.bosh.max_pause,
                DEFAULT_BOSH_MAX_PAUSE,
            ),
        ];
        for (key, value, default) in bosh {
            if !(Duration::from_secs(1)..=MAX_TIMEOUT_BOUND).contains(&value) {
                let what = format!(
                    "is not a duration from 1s to 24h, such as {}",
                    show_duration(default)
                );
                return Err(self.error(key, None, &show_duration(value), &what));
            }
        }
        let (default, max) = (self.bosh.default_inactivity, self.bosh.max_inactivity);
        if max < default {
            // Blame the key the file set: raising the default alone runs
            // into the maximum's default, which the operator never wrote.
            return Err(if self.source.is_set("bosh.max_inactivity") {
                let what = format!(
                    "is less than bosh.default_inactivity ({}); give at least that",
                    self.as_written_at("bosh.default_inactivity", None, &show_duration(default))
                );
                self.error("bosh.max_inactivity", None, &show_duration(max), &what)
            } else {
                let what = format!(
                    "is more than bosh.max_inactivity ({}, its default); give at most that, or raise bosh.max_inactivity too",
                    show_duration(max)
                );
                self.error(
                    "bosh.default_inactivity",
                    None,
                    &show_duration(default),
                    &what,
                )
            });
        }
        Ok(())
    }

    fn check_bosh(&self) -> Result<(), ConfigError> {
        for (i, route) in self.bosh.allowed_routes.iter().enumerate() {
            let target = route.strip_prefix("xmpp:").unwrap_or_default();
            if !valid_route(target) {
                return Err(self.error(
                    "bosh.allowed_routes",
                    Some(i),
                    &format!("{route:?}"),
                    "is not a route such as \"xmpp:example.org:5222\" (xmpp:, a host, a colon and a port)",
                ));
            }
        }
        for (name, value) in &self.bosh.headers {
            let key = key_path(&["bosh", "headers", name]);
            if !valid_header_name(name) {
                return Err(self.key_error(
                    &key,
                    &format!("{name:?} is not a header name such as \"X-Frame-Options\" (no spaces, colons, quotes or brackets)"),
                ));
            }
            if value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(self.error(
                    &key,
                    None,
                    &format!("{value:?}"),
                    "is not a header value such as \"DENY\" (one line, no control characters)",
                ));
            }
        }
        Ok(())
    }

    fn check_paths(&self) -> Result<(), ConfigError> {
        let paths = [
            (
                "websocket.path",
                &self.websocket.path,
                DEFAULT_WEBSOCKET_PATH,
            ),
            ("bosh.path", &self.bosh.path, DEFAULT_BOSH_PATH),
        ];
        for (key, path, default) in paths {
            if !valid_path(path) {
                let what =
                    format!("is not a URL path such as {default:?} (a / first; no spaces, ? or #)");
                return Err(self.error(key, None, &format!("{path:?}"), &what));
            }
        }
        if self.websocket.path == self.bosh.path {
            let path = format!("{:?}", self.bosh.path);
            return Err(
                if self.source.is_set("bosh.path") || !self.source.is_set("websocket.path") {
                    let what = format!("is also websocket.path; give BOSH a path of its own such as {DEFAULT_BOSH_PATH:?}");
                    self.error("bosh.path", None, &path, &what)
                } else {
                    let what = format!("is also bosh.path; give WebSocket a path of its own such as {DEFAULT_WEBSOCKET_PATH:?}");
                    self.error("websocket.path", None, &path, &what)
                },
            );
        }
        Ok(())
    }

    fn check_origins(&self) -> Result<(), ConfigError> {
        const ORIGIN: &str =
            "is not a browser origin such as \"https://chat.example.org\" (scheme://host or scheme://host:port, in lower case, no path)";
        for (i, origin) in self.websocket.allowed_origins.iter().enumerate() {
            if origin == "*" {
                return Err(self.error(
                    "websocket.allowed_origins",
                    Some(i),
                    "\"*\"",
                    "is not a browser origin: to let any page upgrade, leave websocket.allowed_origins empty ([])",
                ));
            }
            if !valid_origin(origin) {
                let value = format!("{origin:?}");
                return Err(self.error("websocket.allowed_origins", Some(i), &value, ORIGIN));
            }
        }
        for (i, origin) in self.bosh.allowed_origins.iter().enumerate() {
            if origin != "*" && !valid_origin(origin) {
                let value = format!("{origin:?}");
                let what = format!("{ORIGIN}, or \"*\" for any page");
                return Err(self.error("bosh.allowed_origins", Some(i), &value, &what));
            }
        }
        Ok(())
    }

    fn check_backend(&self) -> Result<(), ConfigError> {
        const DOMAIN: &str =
            "is not a domain name such as \"example.org\" (lower-case letters, digits and -, between dots)";
        for (i, domain) in self.backend.plaintext_domains.iter().enumerate() {
            if !valid_domain(domain) {
                let value = format!("{domain:?}");
                return Err(self.error("backend.plaintext_domains", Some(i), &value, DOMAIN));
            }
        }
        const PATTERN: &str = "is not a domain such as \"example.org\" or a pattern such as \"*.example.org\" (every name below it)";
        for (key, list) in [
            ("backend.allowed_domains", &self.backend.allowed_domains),
            ("backend.denied_domains", &self.backend.denied_domains),
        ] {
            for (i, pattern) in list.iter().enumerate() {
                if Pattern::parse(pattern).is_none() {
                    return Err(self.error(key, Some(i), &format!("{pattern:?}"), PATTERN));
                }
            }
        }
        for (i, port) in self.backend.allowed_ports.iter().enumerate() {
            if *port == 0 {
                let what = "is not a port from 1 to 65535, such as 5222";
                return Err(self.error("backend.allowed_ports", Some(i), "0", what));
            }
        }
        for (domain, route) in &self.backend.routes {
            let key = key_path(&["backend", "routes", domain]);
            if !valid_domain(domain) {
                return Err(self.key_error(&key, &format!("{domain:?} {DOMAIN}")));
            }
            let address_key = key_path(&["backend", "routes", domain, "address"]);
            if self.source.is_set(&key) && route.address.is_empty() {
                let what = format!(
                    "has no address; give one, such as {{ address = \"10.0.0.5:5222\", certificate = {:?} }}",
                    route.certificate.display().to_string()
                );
                return Err(self.error(&key, None, "{}", &what));
            }
            if !valid_route(&route.address) {
                let key = if self.source.is_set(&address_key) {
                    &address_key
                } else {
                    &key
                };
                return Err(self.error(
                    key,
                    None,
                    &format!("{:?}", route.address),
                    "is not a host and port such as \"xmpp.example.org:5222\" or \"127.0.0.1:5222\"",
                ));
            }
        }
        Ok(())
    }
}

/// A byte count in the largest binary unit that divides it: "64 MiB".
fn in_binary_units(bytes: usize) -> String {
    let units = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (size, unit) in units {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

/// `host:port` with a non-empty host and a port number; `[v6]:port` too.
fn valid_route(target: &str) -> bool {
    if target.parse::<SocketAddr>().is_ok() {
        return true;
    }
    match target.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty() && !host.contains([':', ' ']) && port.parse::<u16>().is_ok()
        }
        None => false,
    }
}

/// A domain as clients write it in `to` and as routes are looked up:
/// lower case (lookups compare exactly), labels of letters, digits and
/// hyphens (IDNs in Unicode too) between dots; or an IP address literal.
fn valid_domain(domain: &str) -> bool {
    let literal = domain
        .strip_prefix('[')
        .and_then(|d| d.strip_suffix(']'))
        .is_some_and(|ip| ip.parse::<Ipv6Addr>().is_ok());
    if literal || domain.parse::<IpAddr>().is_ok() {
        return true;
    }
    domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c == '-' || (c.is_alphanumeric() && !c.is_uppercase()))
        })
}

/// A browser's `Origin` (RFC 6454 §6.2): `scheme://host[:port]`, lower
/// case, no path. Origins are compared exactly, so any other form would
/// never match.
fn valid_origin(origin: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_lowercase())
        && scheme
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    let (host_ok, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((ip, port)) => (ip.parse::<Ipv6Addr>().is_ok(), port),
            None => return false,
        },
        None => {
            let (host, port) = authority.split_at(authority.find(':').unwrap_or(authority.len()));
            let host_ok = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
            (host_ok, port)
        }
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|port| port.parse::<u16>().is_ok());
    scheme_ok && host_ok && port_ok
}

/// An HTTP field name (RFC 9110 §5.1: a token).
fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// A request path the router can match: it compares the path before `?`
/// exactly, so a query, a fragment or a space could never match.
fn valid_path(path: &str) -> bool {
    path.starts_with('/')
        && path
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '?' && c != '#')
}

#[cfg(test)]
mod tests;
