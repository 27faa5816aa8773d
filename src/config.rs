//! The TOML configuration: plain data, validated once at start (STYLE rule
//! 10). Every key is optional; its default is a `DEFAULT_*` constant here
//! and its bound is checked in [`Config::validate`]. docs/config.md is the
//! reference for operators.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:5280";
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 256 * 1024 * 1024;
pub const DEFAULT_MAX_HEAD_BYTES: usize = 8 * 1024;
pub const DEFAULT_MAX_HEADERS: usize = 64;
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
pub const DEFAULT_HTTP_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
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
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Server {
    pub listen: SocketAddr,
    /// Accept pauses at this many open client connections.
    pub max_connections: usize,
    /// Open client connections from one address; more are answered 503.
    pub max_connections_per_address: usize,
    /// Live sessions, BOSH and WebSocket together.
    pub max_sessions: usize,
    /// Live sessions started from one address.
    pub max_sessions_per_address: usize,
    /// Bytes buffered by all sessions together: above it reading pauses
    /// and new sessions are refused.
    pub max_buffered_bytes: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    pub max_head_bytes: usize,
    pub max_headers: usize,
    pub max_body_bytes: usize,
    #[serde(deserialize_with = "duration")]
    pub read_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocket {
    pub path: String,
    pub max_message_bytes: usize,
    /// `None` ("off") disables server pings.
    #[serde(deserialize_with = "optional_duration")]
    pub ping_interval: Option<Duration>,
    #[serde(deserialize_with = "duration")]
    pub pong_timeout: Duration,
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
    pub max_depth: usize,
    pub max_attributes: usize,
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
    pub max_buffer_bytes: usize,
    /// Static routes: domain → "host:port". A route to a loopback address
    /// also allows a plaintext backend.
    pub routes: BTreeMap<String, String>,
    /// Whether a server found by DNS may be at a loopback, private or
    /// link-local address. Off: a client's `to` cannot reach the inside of
    /// the network; static routes are always allowed.
    pub allow_private_addresses: bool,
    /// Skip a STARTTLS the server offers without requiring it when the
    /// server is at a loopback address: switchboard and the server on one
    /// host, where encryption protects nothing and costs the server CPU.
    pub loopback_plaintext: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dns {
    /// Empty: the nameservers of /etc/resolv.conf.
    pub servers: Vec<SocketAddr>,
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    pub attempts: u32,
    pub cache_entries: usize,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 5280))),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS,
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_sessions_per_address: DEFAULT_MAX_SESSIONS,
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
        }
    }
}

impl Default for WebSocket {
    fn default() -> Self {
        WebSocket {
            path: DEFAULT_WEBSOCKET_PATH.into(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            ping_interval: Some(DEFAULT_PING_INTERVAL),
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
            routes: BTreeMap::from([(DEFAULT_ROUTE.0.to_string(), DEFAULT_ROUTE.1.to_string())]),
            allow_private_addresses: false,
            loopback_plaintext: false,
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

/// What is wrong with a configuration, and where.
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

impl Config {
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|span| line_of(text, span.start));
            ConfigError {
                line,
                key: None,
                message: e.message().trim().to_string(),
            }
        })?;
        config.validate().map_err(|(key, message)| ConfigError {
            line: find_key_line(text, &key),
            key: Some(key),
            message,
        })?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            line: None,
            key: None,
            message: format!("cannot read {}: {e}", path.display()),
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

    /// Every bound, as (dotted key, message) for the first one broken.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let counts: [(&str, usize, usize); 13] = [
            (
                "server.max_connections",
                self.server.max_connections,
                MAX_CONNECTIONS_BOUND,
            ),
            (
                "server.max_connections_per_address",
                self.server.max_connections_per_address,
                MAX_CONNECTIONS_BOUND,
            ),
            (
                "server.max_sessions",
                self.server.max_sessions,
                MAX_CONNECTIONS_BOUND,
            ),
            (
                "server.max_sessions_per_address",
                self.server.max_sessions_per_address,
                MAX_CONNECTIONS_BOUND,
            ),
            (
                "server.max_buffered_bytes",
                self.server.max_buffered_bytes,
                MAX_BUDGET_BOUND,
            ),
            (
                "http.max_head_bytes",
                self.http.max_head_bytes,
                MAX_BYTES_BOUND,
            ),
            (
                "http.max_headers",
                self.http.max_headers,
                switchboard_core::http::MAX_HEADERS,
            ),
            (
                "http.max_body_bytes",
                self.http.max_body_bytes,
                MAX_BYTES_BOUND,
            ),
            (
                "websocket.max_message_bytes",
                self.websocket.max_message_bytes,
                MAX_BYTES_BOUND,
            ),
            ("xml.max_depth", self.xml.max_depth, 1024),
            ("xml.max_attributes", self.xml.max_attributes, 1024),
            (
                "xml.max_element_bytes",
                self.xml.max_element_bytes,
                MAX_BYTES_BOUND,
            ),
            (
                "backend.max_buffer_bytes",
                self.backend.max_buffer_bytes,
                MAX_BYTES_BOUND,
            ),
        ];
        for (key, value, max) in counts {
            if value == 0 || value > max {
                return Err((key.into(), format!("must be between 1 and {max}")));
            }
        }
        let timeouts = [
            ("http.read_timeout", Some(self.http.read_timeout)),
            ("http.idle_timeout", Some(self.http.idle_timeout)),
            ("websocket.ping_interval", self.websocket.ping_interval),
            ("websocket.pong_timeout", Some(self.websocket.pong_timeout)),
            (
                "backend.connect_timeout",
                Some(self.backend.connect_timeout),
            ),
            (
                "backend.handshake_timeout",
                Some(self.backend.handshake_timeout),
            ),
            ("dns.timeout", Some(self.dns.timeout)),
        ];
        for (key, value) in timeouts {
            if value.is_some_and(|d| !(MIN_TIMEOUT..=MAX_TIMEOUT_BOUND).contains(&d)) {
                return Err((key.into(), "must be between 1ms and 24h".into()));
            }
        }
        for (key, value) in [
            ("bosh.max_wait", self.bosh.max_wait),
            ("bosh.default_inactivity", self.bosh.default_inactivity),
            ("bosh.max_inactivity", self.bosh.max_inactivity),
            ("bosh.polling", self.bosh.polling),
            ("bosh.max_pause", self.bosh.max_pause),
        ] {
            if !(Duration::from_secs(1)..=MAX_TIMEOUT_BOUND).contains(&value) {
                return Err((key.into(), "must be between 1s and 24h".into()));
            }
        }
        if self.bosh.max_inactivity < self.bosh.default_inactivity {
            return Err((
                "bosh.max_inactivity".into(),
                "must be at least bosh.default_inactivity".into(),
            ));
        }
        if !(1..=MAX_STREAMS_BOUND).contains(&self.bosh.max_streams) {
            return Err((
                "bosh.max_streams".into(),
                format!("must be between 1 and {MAX_STREAMS_BOUND}"),
            ));
        }
        for route in &self.bosh.allowed_routes {
            let target = route.strip_prefix("xmpp:").unwrap_or_default();
            if target
                .rsplit_once(':')
                .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
            {
                return Err((
                    "bosh.allowed_routes".into(),
                    format!("{route:?} is not xmpp:host:port"),
                ));
            }
        }
        if !(1..=5).contains(&self.bosh.max_hold) {
            return Err(("bosh.max_hold".into(), "must be between 1 and 5".into()));
        }
        for (name, value) in &self.bosh.headers {
            let bad = |t: &str| t.is_empty() || t.contains(['\r', '\n']);
            if bad(name) || name.contains([':', ' ']) || value.contains(['\r', '\n']) {
                return Err((format!("bosh.headers.{name}"), "not a valid header".into()));
            }
        }
        if !(1..=10).contains(&self.dns.attempts) {
            return Err(("dns.attempts".into(), "must be between 1 and 10".into()));
        }
        if self.dns.cache_entries > MAX_CONNECTIONS_BOUND {
            return Err((
                "dns.cache_entries".into(),
                format!("must be at most {MAX_CONNECTIONS_BOUND}"),
            ));
        }
        for (key, path) in [
            ("websocket.path", &self.websocket.path),
            ("bosh.path", &self.bosh.path),
        ] {
            if !path.starts_with('/') {
                return Err((key.into(), "must start with /".into()));
            }
        }
        if self.websocket.path == self.bosh.path {
            return Err(("bosh.path".into(), "must differ from websocket.path".into()));
        }
        for (domain, target) in &self.backend.routes {
            if !valid_route(target) {
                return Err((
                    format!("backend.routes.{domain}"),
                    format!("{target:?} is not host:port"),
                ));
            }
        }
        Ok(())
    }
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

/// Durations are strings with a unit: "250ms", "10s", "2m", "1h".
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "{text:?} is not a duration like \"250ms\", \"10s\", \"2m\""
        ))
    })
}

fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    if text == "off" {
        return Ok(None);
    }
    parse_duration(&text)
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not a duration or \"off\"")))
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line where a dotted key is set: the `key =` line inside its table
/// (or a dotted `table.key =` line), else the table header.
fn find_key_line(text: &str, dotted: &str) -> Option<usize> {
    let (table, key) = dotted.rsplit_once('.')?;
    let mut in_table = false;
    let mut header = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_table = name.trim() == table;
            if in_table {
                header = Some(n + 1);
            }
            continue;
        }
        let Some((name, _)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim().trim_matches('"');
        if (in_table && name == key) || name == dotted {
            return Some(n + 1);
        }
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.server.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.websocket.path, DEFAULT_WEBSOCKET_PATH);
        assert_eq!(c.bosh.path, DEFAULT_BOSH_PATH);
        assert_eq!(c.websocket.ping_interval, Some(DEFAULT_PING_INTERVAL));
        assert_eq!(
            c.backend.routes.get("localhost").map(String::as_str),
            Some("127.0.0.1:5222")
        );
        assert_eq!(c.http.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert!(Config::default().validate().is_ok());
        assert!(Config::for_tests().validate().is_ok());
    }

    #[test]
    fn a_full_file_parses() {
        let c = Config::from_toml(
            r#"
[server]
listen = "0.0.0.0:5281"
max_connections = 50000
[http]
read_timeout = "250ms"
[websocket]
ping_interval = "off"
[backend]
ca_file = "/tmp/ca.pem"
plaintext_domains = ["internal.test"]
loopback_plaintext = true
[backend.routes]
"example.org" = "xmpp.example.org:5222"
[dns]
servers = ["127.0.0.1:53"]
timeout = "2m"
"#,
        )
        .unwrap();
        assert_eq!(c.server.max_connections, 50_000);
        assert!(c.backend.loopback_plaintext && !Config::default().backend.loopback_plaintext);
        assert_eq!(c.http.read_timeout, Duration::from_millis(250));
        assert_eq!(c.websocket.ping_interval, None);
        assert_eq!(c.dns.timeout, Duration::from_secs(120));
        assert_eq!(
            c.backend.routes.get("example.org").map(String::as_str),
            Some("xmpp.example.org:5222")
        );
        assert!(
            !c.backend.routes.contains_key("localhost"),
            "routes given replace the default"
        );
    }

    #[test]
    fn a_bound_violation_names_its_line_and_key() {
        let e = Config::from_toml("[server]\nlisten = \"127.0.0.1:1\"\n\n[xml]\nmax_depth = 0\n")
            .unwrap_err();
        assert_eq!(e.line, Some(5));
        assert_eq!(e.key.as_deref(), Some("xml.max_depth"));
        assert_eq!(
            e.to_string(),
            "line 5: xml.max_depth: must be between 1 and 1024"
        );
    }

    #[test]
    fn unknown_keys_and_bad_types_name_their_line() {
        let e = Config::from_toml("[server]\nlisten = \"127.0.0.1:1\"\nlissen = 3\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("lissen"), "{e}");
        let e = Config::from_toml("[http]\nread_timeout = \"soon\"\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("duration"), "{e}");
    }

    #[test]
    fn a_bad_route_names_the_route_key() {
        let e = Config::from_toml("[backend.routes]\nexample = \"nohost\"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("backend.routes.example"));
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("-1s"), None);
    }
}
