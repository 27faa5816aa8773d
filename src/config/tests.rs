//! One test per configuration error message: each asserts the whole line
//! an operator reads, so a message that loses its line, key, value or
//! example fails here.

use super::*;
use crate::reactor::settings_from_config;

/// The message `text` is refused with, as `--check-config` prints it.
fn refused(text: &str) -> String {
    match Config::from_toml(text) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e.to_string(),
    }
}

/// The message start-up refuses `text` with (bounds, resolving, CA file).
fn refused_at_start(text: &str) -> String {
    let config = Config::from_toml(text).unwrap();
    match settings_from_config(&config) {
        Ok(_) => panic!("accepted at start: {text}"),
        Err(e) => e.to_string(),
    }
}

/// Each text is refused with exactly its message.
fn assert_refused(cases: &[(&str, &str)]) {
    for (text, message) in cases {
        assert_eq!(refused(text), *message, "{text}");
    }
}

fn temp_file(name: &str, contents: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("switchboard-config-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn empty_file_gives_the_documented_defaults() {
    let c = Config::from_toml("").unwrap();
    assert_eq!(c.server.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(c.websocket.path, DEFAULT_WEBSOCKET_PATH);
    assert_eq!(c.bosh.path, DEFAULT_BOSH_PATH);
    assert_eq!(c.websocket.ping_interval, Some(DEFAULT_PING_INTERVAL));
    assert_eq!(
        c.backend.routes.get("localhost"),
        Some(&Route::from("127.0.0.1:5222".to_string()))
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
allowed_origins = ["https://chat.example.org", "http://localhost:8080", "https://[::1]:8443"]
[bosh]
allowed_origins = ["*"]
allowed_routes = ["xmpp:127.0.0.1:5222"]
headers = { X-Frame-Options = "DENY" }
[backend]
ca_file = "/tmp/ca.pem"
plaintext_domains = ["internal.test", "bücher.example", "[::1]"]
loopback_plaintext = true
verify_loopback = true
[backend.routes]
"example.org" = "xmpp.example.org:5222"
"self-signed.example" = { address = "10.0.0.5:5222", certificate = "/etc/switchboard/self-signed.pem" }
[dns]
servers = ["127.0.0.1:53"]
timeout = "2m"
cache_entries = 0
"#,
    )
    .unwrap();
    assert_eq!(c.server.max_connections, 50_000);
    assert!(c.backend.loopback_plaintext && !Config::default().backend.loopback_plaintext);
    assert_eq!(c.http.read_timeout, Duration::from_millis(250));
    assert_eq!(c.websocket.ping_interval, None);
    assert_eq!(c.dns.timeout, Duration::from_secs(120));
    assert!(c.backend.verify_loopback && !Config::default().backend.verify_loopback);
    assert_eq!(
        c.backend.routes.get("example.org"),
        Some(&Route::from("xmpp.example.org:5222".to_string()))
    );
    assert_eq!(
        c.backend.routes.get("self-signed.example"),
        Some(&Route {
            address: "10.0.0.5:5222".into(),
            certificate: "/etc/switchboard/self-signed.pem".into(),
        })
    );
    assert!(
        !c.backend.routes.contains_key("localhost"),
        "routes given replace the default"
    );
}

#[test]
fn a_listen_address_must_be_an_ip_address_and_port() {
    assert_eq!(
        refused("[server]\nlisten = \"localhost:5280\"\n"),
        r#"line 2: server.listen: "localhost:5280" is not an IP address and port such as "127.0.0.1:5280""#
    );
}

#[test]
fn counts_must_be_whole_numbers_in_their_bounds() {
    let not_a_number = "is not a whole number written as digits, such as 4";
    assert_refused(&[
        ("[server]\nmax_connections = \"10k\"\n", &format!("line 2: server.max_connections: \"10k\" {not_a_number}")),
        ("[bosh]\nmax_hold = -1\n", &format!("line 2: bosh.max_hold: -1 {not_a_number}")),
        ("[xml]\nmax_depth = 1.5\n", &format!("line 2: xml.max_depth: 1.5 {not_a_number}")),
        ("[dns]\nattempts = 5000000000\n", &format!("line 2: dns.attempts: 5000000000 {not_a_number}")),
        ("[server]\nlisten = \"127.0.0.1:1\"\n\n[xml]\nmax_depth = 0\n", "line 5: xml.max_depth: 0 is not a whole number from 1 to 1024, such as 32"),
        ("[bosh]\nmax_hold = 9\n", "line 2: bosh.max_hold: 9 is not a whole number from 1 to 5, such as 1"),
        ("[dns]\ncache_entries = 1000001\n", "line 2: dns.cache_entries: 1000001 is not a whole number from 0 to 1000000, such as 1024"),
    ]);
}

#[test]
fn sizes_must_be_numbers_of_bytes_in_their_bounds() {
    assert_refused(&[
        ("[http]\nmax_body_bytes = \"64KiB\"\n", r#"line 2: http.max_body_bytes: "64KiB" is not a number of bytes written as digits, such as 65536"#),
        ("[websocket]\nmax_message_bytes = 0\n", "line 2: websocket.max_message_bytes: 0 is not a number of bytes from 1 to 67108864 (64 MiB), such as 262144"),
        ("[server]\nmax_buffered_bytes = 1099511627777\n", "line 2: server.max_buffered_bytes: 1099511627777 is not a number of bytes from 1 to 1099511627776 (1 TiB), such as 268435456"),
    ]);
}

#[test]
fn byte_bounds_are_shown_in_binary_units() {
    assert_eq!(in_binary_units(MAX_BYTES_BOUND), "64 MiB");
    assert_eq!(in_binary_units(MAX_BUDGET_BOUND), "1 TiB");
    assert_eq!(in_binary_units(1536), "1536 bytes");
}

#[test]
fn durations_need_a_unit_and_a_bound() {
    let form = r#"is not a duration such as "10s" (a whole number, then ms, s, m or h)"#;
    assert_refused(&[
        (
            "[http]\nread_timeout = 10\n",
            &format!("line 2: http.read_timeout: 10 {form}"),
        ),
        (
            "[http]\nread_timeout = \"soon\"\n",
            &format!("line 2: http.read_timeout: \"soon\" {form}"),
        ),
        (
            "[backend]\nconnect_timeout = \"0ms\"\n",
            r#"line 2: backend.connect_timeout: "0ms" is not a duration from 1ms to 24h, such as "10s""#,
        ),
        (
            "[bosh]\npolling = \"500ms\"\n",
            r#"line 2: bosh.polling: "500ms" is not a duration from 1s to 24h, such as "2s""#,
        ),
    ]);
}

#[test]
fn the_ping_interval_is_a_duration_or_off() {
    assert_refused(&[
        (
            "[websocket]\nping_interval = \"never\"\n",
            r#"line 2: websocket.ping_interval: "never" is not a duration such as "30s" (a whole number, then ms, s, m or h), or "off""#,
        ),
        (
            "[websocket]\nping_interval = \"25h\"\n",
            r#"line 2: websocket.ping_interval: "25h" is not a duration from 1ms to 24h, such as "30s", or "off""#,
        ),
    ]);
}

#[test]
fn a_default_inactivity_above_the_maximum_blames_the_key_that_was_written() {
    assert_refused(&[
        (
            "[bosh]\ndefault_inactivity = \"200s\"\n",
            r#"line 2: bosh.default_inactivity: "200s" is more than bosh.max_inactivity ("160s", its default); give at most that, or raise bosh.max_inactivity too"#,
        ),
        (
            "[bosh]\nmax_inactivity = \"60s\"\n",
            r#"line 2: bosh.max_inactivity: "60s" is less than bosh.default_inactivity ("70s"); give at least that"#,
        ),
        (
            "[bosh]\ndefault_inactivity = \"3m\"\nmax_inactivity = \"2m\"\n",
            r#"line 3: bosh.max_inactivity: "2m" is less than bosh.default_inactivity ("3m"); give at least that"#,
        ),
    ]);
}

#[test]
fn values_of_the_wrong_kind_are_named_in_words() {
    assert_refused(&[
        ("[backend]\nloopback_plaintext = \"yes\"\n", r#"line 2: backend.loopback_plaintext: "yes" is not true or false"#),
        ("[backend]\nca_file = 5\n", "line 2: backend.ca_file: 5 is not a string in double quotes"),
        ("[backend]\nplaintext_domains = \"example.org\"\n", r#"line 2: backend.plaintext_domains: "example.org" is not a list: write ["example.org"]"#),
        ("[websocket]\nallowed_origins = { a = 1 }\n", r#"line 2: websocket.allowed_origins: { a = 1 } is not a list such as ["…"]"#),
        ("server = 5\n", "line 1: server: 5 is not a table: write [server] on a line of its own, its keys below it"),
        ("[backend]\nroutes = 5\n", "line 2: backend.routes: 5 is not a table: write [backend.routes] on a line of its own, its keys below it"),
        ("[backend.routes]\n\"example.org\" = 5\n", r#"line 2: backend.routes."example.org": 5 is not a host and port such as "10.0.0.5:5222", or a table such as { address = "10.0.0.5:5222", certificate = "/etc/switchboard/example.org.pem" }"#),
        ("[backend.routes]\n\"example.org\" = { address = \"10.0.0.5:5222\", certificate = 5 }\n", r#"line 2: backend.routes."example.org".certificate: 5 is not a string in double quotes"#),
    ]);
}

#[test]
fn unknown_keys_and_tables_list_the_ones_that_exist() {
    assert_refused(&[
        ("[xml]\nmax_depth = 8\nmax_depht = 3\n", "line 3: xml.max_depht: is not a key of [xml]; its keys are max_depth, max_attributes, max_element_bytes"),
        ("[xml.extra]\nx = 1\n", "line 1: xml.extra: is not a key of [xml]; its keys are max_depth, max_attributes, max_element_bytes"),
        ("[sever]\nlisten = 3\n", "line 1: sever: is not a table switchboard knows; the tables are [server], [http], [websocket], [bosh], [xml], [backend], [dns]"),
        ("listen = \"127.0.0.1:5280\"\n", "line 1: listen: is not a key of its own; every key goes under a table: [server], [http], [websocket], [bosh], [xml], [backend], [dns]"),
    ]);
}

#[test]
fn a_key_or_table_given_twice_names_both_lines() {
    assert_refused(&[
        ("[server]\nmax_connections = 1\nmax_connections = 2\n", "line 3: server.max_connections: is given a second time (first on line 2); give each key and table once"),
        ("[server]\nmax_connections = 1\n[http]\n[server]\n", "line 4: server: is given a second time (first on line 1); give each key and table once"),
    ]);
}

#[test]
fn syntax_errors_name_the_line_and_the_text() {
    assert_refused(&[
        ("[server]\nlisten = localhost:5280\n", "line 2: server.listen: localhost:5280 is not valid TOML: string values must be quoted, expected literal string"),
        ("[server\nlisten = 1\n", "line 1: [server is not valid TOML: unclosed table, expected `]`"),
    ]);
}

#[test]
fn routes_need_a_domain_and_a_host_and_port() {
    assert_refused(&[
        ("[backend.routes]\n\"example.org\" = \"nohost\"\n", r#"line 2: backend.routes."example.org": "nohost" is not a host and port such as "xmpp.example.org:5222" or "127.0.0.1:5222""#),
        ("[backend.routes]\nlocalhost = \"127.0.0.1:5222\"\n\"Example.org\" = \"127.0.0.1:5222\"\n", r#"line 3: backend.routes."Example.org": "Example.org" is not a domain name such as "example.org" (lower-case letters, digits and -, between dots)"#),
        ("[backend]\nplaintext_domains = [\"ok.test\", \"https://x.test\"]\n", r#"line 2: backend.plaintext_domains: "https://x.test" is not a domain name such as "example.org" (lower-case letters, digits and -, between dots)"#),
        ("[bosh]\nallowed_routes = [\"example.org:5222\"]\n", r#"line 2: bosh.allowed_routes: "example.org:5222" is not a route such as "xmpp:example.org:5222" (xmpp:, a host, a colon and a port)"#),
    ]);
}

#[test]
fn a_route_table_has_an_address_and_a_certificate_only() {
    assert_refused(&[
        ("[backend.routes]\n\"example.org\" = { adress = \"10.0.0.5:5222\" }\n", r#"line 2: backend.routes."example.org".adress: is not a key of [backend.routes."example.org"]; its keys are address, certificate"#),
        ("[backend.routes]\n\"example.org\" = { certificate = \"/etc/x.pem\" }\n", r#"line 2: backend.routes."example.org": { certificate = "/etc/x.pem" } has no address; give one, such as { address = "10.0.0.5:5222", certificate = "/etc/x.pem" }"#),
        ("[backend.routes]\n\"example.org\" = { address = \"nohost\" }\n", r#"line 2: backend.routes."example.org".address: "nohost" is not a host and port such as "xmpp.example.org:5222" or "127.0.0.1:5222""#),
        ("[backend.routes.\"example.org\"]\naddress = \"10.0.0.5:5222\"\ncertificat = \"/etc/x.pem\"\n", r#"line 3: backend.routes."example.org".certificat: is not a key of [backend.routes."example.org"]; its keys are address, certificate"#),
    ]);
}

/// A self-signed certificate for `localhost`, `CA:TRUE` as `openssl req
/// -x509` makes it, in PEM.
fn self_signed_pem() -> String {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().pem()
}

#[test]
fn a_pinned_certificate_must_be_one_readable_pem_certificate() {
    let missing = std::env::temp_dir().join("switchboard-config-no-such-cert.pem");
    let shown = format!("{:?}", missing.display().to_string());
    let message = refused_at_start(&format!(
        "[backend.routes]\n\"example.org\" = {{ address = \"127.0.0.1:5222\", certificate = {shown} }}\n"
    ));
    assert_eq!(
        message,
        format!("line 2: backend.routes.\"example.org\".certificate: {shown} cannot be read (No such file or directory (os error 2)); give the PEM file of the server's own certificate, as it serves it")
    );
    let one = self_signed_pem();
    let cases = [
        ("pin-none.pem", "not a certificate\n".to_string(), r#"holds no certificate; give the server's own certificate, one "-----BEGIN CERTIFICATE-----" section"#),
        ("pin-cut.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n".to_string(), "is not a PEM file (missing section end marker"),
        ("pin-two.pem", format!("{one}{}", self_signed_pem()), "holds 2 certificates; give the server's own certificate alone, the one it presents first (it is compared byte for byte)"),
        ("pin-junk.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_string(), "holds something that is not an X.509 certificate ("),
    ];
    for (name, contents, what) in cases {
        let path = temp_file(name, &contents);
        let shown = format!("{:?}", path.display().to_string());
        let message = refused_at_start(&format!(
            "[backend.routes]\n\"example.org\" = {{ address = \"127.0.0.1:5222\", certificate = {shown} }}\n"
        ));
        std::fs::remove_file(&path).unwrap();
        assert!(
            message.starts_with(&format!(
                "line 2: backend.routes.\"example.org\".certificate: {shown} {what}"
            )),
            "{message}"
        );
    }
    let path = temp_file("pin-one.pem", &one);
    let text = format!(
        "[backend.routes]\n\"example.org\" = {{ address = \"127.0.0.1:5222\", certificate = {:?} }}\n",
        path.display().to_string()
    );
    let settings = settings_from_config(&Config::from_toml(&text).unwrap());
    std::fs::remove_file(&path).unwrap();
    assert!(settings.unwrap().route_tls.contains_key("example.org"));
}

/// Which routes get a TLS configuration of their own: a pinned one
/// anywhere; a loopback one without a pin unless `verify_loopback`; none
/// that leaves the host.
#[test]
fn loopback_routes_are_trusted_apart_unless_verify_loopback() {
    let text = "[backend.routes]\nlocalhost = \"127.0.0.1:5222\"\n\"v6.test\" = \"[::1]:5222\"\n\"remote.test\" = \"192.0.2.1:5222\"\n";
    let settings = settings_from_config(&Config::from_toml(text).unwrap()).unwrap();
    let mut own: Vec<&str> = settings.route_tls.keys().map(String::as_str).collect();
    own.sort_unstable();
    assert_eq!(own, ["localhost", "v6.test"]);
    let verified = format!("[backend]\nverify_loopback = true\n{text}");
    let settings = settings_from_config(&Config::from_toml(&verified).unwrap()).unwrap();
    assert!(settings.route_tls.is_empty());
}

#[test]
fn origins_are_browser_origins() {
    let origin = r#"is not a browser origin such as "https://chat.example.org" (scheme://host or scheme://host:port, in lower case, no path)"#;
    assert_refused(&[
        ("[websocket]\nallowed_origins = [\"chat.example.org\"]\n", &format!("line 2: websocket.allowed_origins: \"chat.example.org\" {origin}")),
        ("[bosh]\nallowed_origins = [\n  \"https://ok.example.org\",\n  \"https://chat.example.org/\",\n]\n", &format!("line 4: bosh.allowed_origins: \"https://chat.example.org/\" {origin}, or \"*\" for any page")),
        ("[websocket]\nallowed_origins = [\"*\"]\n", r#"line 2: websocket.allowed_origins: "*" is not a browser origin: to let any page upgrade, leave websocket.allowed_origins empty ([])"#),
    ]);
    for bad in [
        "HTTPS://chat.example.org",
        "https://",
        "https://a.test:x",
        "https://[::1",
        "https://a b",
    ] {
        assert!(!valid_origin(bad), "{bad}");
    }
}

#[test]
fn paths_start_with_a_slash_and_differ() {
    assert_refused(&[
        (
            "[websocket]\npath = \"xmpp-websocket\"\n",
            r#"line 2: websocket.path: "xmpp-websocket" is not a URL path such as "/xmpp-websocket" (a / first; no spaces, ? or #)"#,
        ),
        (
            "[bosh]\npath = \"/http-bind?x\"\n",
            r#"line 2: bosh.path: "/http-bind?x" is not a URL path such as "/http-bind" (a / first; no spaces, ? or #)"#,
        ),
        (
            "[bosh]\npath = \"/xmpp-websocket\"\n",
            r#"line 2: bosh.path: "/xmpp-websocket" is also websocket.path; give BOSH a path of its own such as "/http-bind""#,
        ),
        (
            "[websocket]\npath = \"/http-bind\"\n",
            r#"line 2: websocket.path: "/http-bind" is also bosh.path; give WebSocket a path of its own such as "/xmpp-websocket""#,
        ),
    ]);
}

#[test]
fn extra_headers_are_valid_http_headers() {
    assert_refused(&[
        (
            "[bosh.headers]\n\"X Bad\" = \"1\"\n",
            r#"line 2: bosh.headers."X Bad": "X Bad" is not a header name such as "X-Frame-Options" (no spaces, colons, quotes or brackets)"#,
        ),
        (
            "[bosh.headers]\nX-Frame-Options = \"a\\nb\"\n",
            r#"line 2: bosh.headers.X-Frame-Options: "a\nb" is not a header value such as "DENY" (one line, no control characters)"#,
        ),
    ]);
}

#[test]
fn dns_servers_are_ip_addresses_and_ports() {
    assert_eq!(
        refused("[dns]\nservers = [\n  \"127.0.0.1:53\",\n  \"8.8.8.8\",\n]\n"),
        r#"line 4: dns.servers: "8.8.8.8" is not an IP address and port such as "127.0.0.1:53""#
    );
}

#[test]
fn a_route_host_that_does_not_resolve_is_refused_at_start() {
    let message = refused_at_start(
        "[backend.routes]\nlocalhost = \"127.0.0.1:5222\"\n\"example.org\" = \"nohost.invalid:5222\"\n",
    );
    assert!(
        message.starts_with(
            r#"line 3: backend.routes."example.org": "nohost.invalid:5222" cannot be resolved ("#
        ),
        "{message}"
    );
    assert!(
        message.ends_with(r#"); give an IP address and port such as "127.0.0.1:5222", or a host name this machine resolves"#),
        "{message}"
    );
    let message = refused_at_start(
        "[bosh]\nallowed_routes = [\"xmpp:127.0.0.1:5222\", \"xmpp:nohost.invalid:5222\"]\n",
    );
    assert!(
        message.starts_with(
            r#"line 2: bosh.allowed_routes: "xmpp:nohost.invalid:5222" cannot be resolved ("#
        ),
        "{message}"
    );
}

#[test]
fn a_ca_file_that_gives_no_trust_is_refused_at_start() {
    let missing = std::env::temp_dir().join("switchboard-config-no-such-ca.pem");
    let message = refused_at_start(&format!(
        "[backend]\nca_file = {:?}\n",
        missing.display().to_string()
    ));
    assert!(
        message.starts_with(&format!(
            "line 2: backend.ca_file: {:?} cannot be read (",
            missing.display().to_string()
        )),
        "{message}"
    );
    assert!(
        message.ends_with("); give a readable PEM file of CA certificates, or leave ca_file out to trust the system's CAs only"),
        "{message}"
    );
    let cases = [
        (
            "empty.pem",
            "not a certificate\n",
            r#"holds no certificate; give a PEM file with at least one "-----BEGIN CERTIFICATE-----" section"#,
        ),
        (
            "cut.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n",
            "is not a PEM file (missing section end marker",
        ),
        (
            "bad.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "holds a certificate that cannot be a trusted CA (",
        ),
    ];
    for (name, contents, what) in cases {
        let path = temp_file(name, contents);
        let shown = format!("{:?}", path.display().to_string());
        let message = refused_at_start(&format!("[backend]\nca_file = {shown}\n"));
        std::fs::remove_file(&path).unwrap();
        assert!(
            message.starts_with(&format!("line 2: backend.ca_file: {shown} {what}")),
            "{message}"
        );
    }
}

#[test]
fn a_configuration_built_in_code_is_checked_at_start_too() {
    let mut config = Config::for_tests();
    config.bosh.max_hold = 0;
    let error = settings_from_config(&config).err().unwrap();
    assert_eq!(
        error.to_string(),
        "bosh.max_hold: 0 is not a whole number from 1 to 5, such as 1"
    );
}

/// The keys and defaults of docs/config.md's tables, as TOML text, and
/// each table's documented keys.
fn documented_defaults() -> (String, Vec<(String, Vec<String>)>) {
    let docs = include_str!("../../docs/config.md");
    let mut toml = String::new();
    let mut tables: Vec<(String, Vec<String>)> = Vec::new();
    for line in docs.lines() {
        if line.starts_with('#') {
            let table = line
                .split_once("`[")
                .and_then(|(_, rest)| rest.split_once("]`"));
            match table {
                Some((name, _)) if line.starts_with("## ") => {
                    toml.push_str(&format!("[{name}]\n"));
                    tables.push((name.to_string(), Vec::new()));
                }
                _ => {}
            }
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let [_, key, default, ..] = cells[..] else {
            continue;
        };
        let (Some(key), Some(default)) = (
            key.strip_prefix('`').and_then(|k| k.strip_suffix('`')),
            default.split('`').nth(1),
        ) else {
            continue;
        };
        toml.push_str(&format!("{key} = {default}\n"));
        if let Some((_, keys)) = tables.last_mut() {
            keys.push(key.to_string());
        }
    }
    (toml, tables)
}

#[test]
fn docs_config_md_lists_every_key_with_its_true_default() {
    let (toml, tables) = documented_defaults();
    let mut documented = Config::from_toml(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    // Only the values are compared, not where the text set them.
    documented.source = Source::default();
    assert_eq!(
        format!("{documented:?}"),
        format!("{:?}", Config::default())
    );
    assert_eq!(tables.len(), 7, "{tables:?}");
    for (table, mut keys) in tables {
        // routes has a section of its own below [backend]'s table.
        if table == "backend" {
            keys.push("routes".into());
        }
        let known = refused(&format!("[{table}]\nno_such_key = 1\n"));
        let (_, known) = known.split_once("its keys are ").unwrap();
        let mut known: Vec<&str> = known.split(", ").collect();
        known.sort_unstable();
        keys.sort_unstable();
        assert_eq!(known, keys, "[{table}]");
    }
}

#[test]
fn docs_config_md_error_examples_are_what_switchboard_prints() {
    let docs = include_str!("../../docs/config.md");
    let (_, block) = docs.split_once("```text\n").unwrap();
    let (examples, _) = block.split_once("```").unwrap();
    let printed = [
        refused("[server]\nlisten = \"localhost:5280\"\n"),
        refused("[backend.routes]\n\"example.org\" = \"nohost\"\n"),
    ];
    assert_eq!(examples.lines().collect::<Vec<_>>(), printed);
}

/// Every prefix of a file (a cut at every character) is read without a
/// panic, and every error it gives names a line.
#[test]
fn every_cut_of_a_file_gives_a_config_or_an_error_with_a_line() {
    let text = "[server]\nlisten = \"127.0.0.1:5290\" # here\n[bosh]\nallowed_origins = [\n  \"https://chat.example.org\",\n]\nheaders = { X-A = \"b\" }\n[backend.routes]\n\"example.org\" = \"127.0.0.1:5222\"\n[dns]\ntimeout = \"2s\"\n";
    for (cut, _) in text.char_indices() {
        if let Err(e) = Config::from_toml(&text[..cut]) {
            assert!(e.line.is_some(), "cut at {cut}: {e}");
        }
    }
}
