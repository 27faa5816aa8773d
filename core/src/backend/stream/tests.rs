//! Drives a [`Stream`] against an in-memory stub XMPP server: its own
//! framer, a rustls `ServerConnection` with an rcgen certificate, and
//! scripted answers. Bytes move through `output()`/`handle_input()` only.

use super::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use std::io::Read;

const DOMAIN: &str = "localhost";
const SERVER_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' version='1.0' \
     xml:lang='en'>";
const FEATURES_STARTTLS: &str =
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\
     <mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN-BEFORE-TLS</mechanism>\
     </mechanisms></stream:features>";
const FEATURES_STARTTLS_REQUIRED: &str = "<stream:features><starttls \
     xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>";
const FEATURES_SASL: &str =
    "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
     <mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms></stream:features>";
const FEATURES_BIND: &str = "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
     <sm xmlns='urn:xmpp:sm:3'/></stream:features>";
const PROCEED: &str = "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
const FAILURE: &str = "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
const MESSAGE: &str = "<message from='juliet@localhost/balcony' type='chat'>\
     <body>wherefore &amp; 😀</body></message>";
const STREAM_ERROR: &str = "<stream:error><system-shutdown \
     xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text \
     xmlns='urn:ietf:params:xml:ns:xmpp-streams'>bye</text></stream:error>";

/// An owned copy of an [`Event`], so a test can collect them.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Features(String),
    Element(String),
    StreamError(String, String),
    Closed,
}

fn owned(event: Event<'_>) -> Seen {
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
    match event {
        Event::Features(bytes, _) => Seen::Features(text(bytes)),
        Event::Element(bytes, _) => Seen::Element(text(bytes)),
        Event::StreamError {
            element, condition, ..
        } => Seen::StreamError(condition.to_string(), text(element)),
        Event::Closed => Seen::Closed,
    }
}

struct Pki {
    roots: RootCertStore,
    server: Arc<ServerConfig>,
}

/// The time every test's clock reads unless it sets another: rcgen's
/// certificates are valid from 1975 to 4096.
const NOW: u64 = 1_767_225_600; // 2026-01-01

fn clock_at(secs: u64) -> tls::Clock {
    let clock = tls::Clock::default();
    clock.set(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
    clock
}

fn ca(name: &str) -> (rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert, rcgen::Issuer::new(params, key))
}

/// A server configuration presenting `chain`, signing with `key`.
fn server_config(chain: Vec<CertificateDer<'static>>, key: &rcgen::KeyPair) -> Arc<ServerConfig> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let server =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
    Arc::new(server)
}

/// A leaf for `name`, issued by a CA the client trusts (or by one it does
/// not know, when `trusted` is false), with `params` adjusted by `edit`.
fn pki_with(name: &str, trusted: bool, edit: impl FnOnce(&mut rcgen::CertificateParams)) -> Pki {
    let (ca_cert, issuer) = ca("switchboard test ca");
    let (_, other_issuer) = ca("unknown test ca");
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    params
        .extended_key_usages
        .push(rcgen::ExtendedKeyUsagePurpose::ServerAuth);
    edit(&mut params);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = params
        .signed_by(&key, if trusted { &issuer } else { &other_issuer })
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    Pki {
        roots,
        server: server_config(vec![leaf.der().clone()], &key),
    }
}

fn pki(name: &str, trusted: bool) -> Pki {
    pki_with(name, trusted, |_| {})
}

/// A self-signed certificate for `name` with `CA:TRUE`, as `openssl req
/// -x509` makes it (Debian's Prosody's own), and its key.
fn self_signed_ca_true(name: &str) -> (CertificateDer<'static>, rcgen::KeyPair) {
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.der().clone(), key)
}

fn settings_with(tls: Arc<ClientConfig>, plaintext_allowed: bool) -> Settings {
    Settings {
        domain: DOMAIN.to_owned(),
        lang: "en".to_owned(),
        tls,
        plaintext_allowed,
        skip_optional_tls: false,
        xml: xml::Limits::default(),
    }
}

fn settings(pki: &Pki, plaintext_allowed: bool) -> Settings {
    let trust = tls::Trust::Roots(pki.roots.clone());
    let tls = tls::client_config(trust, &clock_at(NOW)).unwrap();
    settings_with(tls, plaintext_allowed)
}

/// The server side: frames what the client sends, answers from a script.
struct Server {
    config: Arc<ServerConfig>,
    tls: Option<ServerConnection>,
    framer: Framer,
    /// Plaintext received and not yet framed.
    inbuf: Vec<u8>,
    /// Bytes for the client (TLS records once TLS runs).
    out: Vec<u8>,
    /// Features for the plaintext stream and for the stream after TLS.
    features_plain: &'static str,
    features_tls: &'static str,
    /// The answer to `<starttls/>`.
    starttls_answer: &'static str,
    /// Stream headers received (whole bytes).
    headers: Vec<String>,
    /// Top-level elements received, as the server decrypted them.
    elements: Vec<String>,
    closed: bool,
    close_notify: bool,
}

impl Server {
    fn new(pki: &Pki, features_plain: &'static str, features_tls: &'static str) -> Self {
        Server::with_config(&pki.server, features_plain, features_tls)
    }

    fn with_config(
        config: &Arc<ServerConfig>,
        features_plain: &'static str,
        features_tls: &'static str,
    ) -> Self {
        Server {
            config: Arc::clone(config),
            tls: None,
            framer: Framer::new(xml::Mode::Stream, xml::Limits::default()),
            inbuf: Vec::new(),
            out: Vec::new(),
            features_plain,
            features_tls,
            starttls_answer: PROCEED,
            headers: Vec::new(),
            elements: Vec::new(),
            closed: false,
            close_notify: false,
        }
    }

    /// Queue plaintext for the client.
    fn send(&mut self, data: &str) {
        match self.tls.as_mut() {
            None => self.out.extend_from_slice(data.as_bytes()),
            Some(conn) => {
                conn.writer().write_all(data.as_bytes()).unwrap();
                conn.write_tls(&mut self.out).unwrap();
            }
        }
    }

    /// The server side of a restart after SASL success.
    fn expect_restart(&mut self) {
        self.framer.reset();
    }

    fn receive(&mut self, mut wire: &[u8]) {
        if let Some(conn) = self.tls.as_mut() {
            while !wire.is_empty() {
                if conn.read_tls(&mut wire).unwrap() == 0 {
                    break;
                }
                let state = match conn.process_new_packets() {
                    Ok(state) => state,
                    // A client alert (bad certificate): stop serving.
                    Err(_) => return,
                };
                if state.peer_has_closed() {
                    self.close_notify = true;
                }
                let mut plain = Vec::new();
                let _ = conn.reader().read_to_end(&mut plain);
                self.inbuf.extend_from_slice(&plain);
            }
            while conn.wants_write() {
                conn.write_tls(&mut self.out).unwrap();
            }
        } else {
            self.inbuf.extend_from_slice(wire);
        }
        while let Some(frame) = self.framer.next(&self.inbuf).unwrap() {
            let bytes = String::from_utf8(self.inbuf[..frame.len].to_vec()).unwrap();
            self.inbuf.drain(..frame.len);
            match frame.kind {
                FrameKind::StreamOpen(_) => {
                    self.headers.push(bytes);
                    let features = if self.tls.is_some() {
                        self.features_tls
                    } else {
                        self.features_plain
                    };
                    self.send(SERVER_HEADER);
                    self.send(features);
                }
                FrameKind::Element(_) if bytes.starts_with("<starttls") => {
                    self.send(self.starttls_answer);
                    if self.starttls_answer == PROCEED {
                        assert!(self.inbuf.is_empty(), "client data after <starttls/>");
                        self.tls = Some(ServerConnection::new(Arc::clone(&self.config)).unwrap());
                        self.framer.reset();
                    }
                }
                FrameKind::Element(_) => self.elements.push(bytes),
                FrameKind::StreamClose => self.closed = true,
                FrameKind::Whitespace | FrameKind::Declaration => {}
            }
        }
    }
}

/// Move bytes both ways until neither side has anything to say; collect
/// the client's events. `chunk` cuts the server's bytes into pieces of at
/// most that size.
fn pump_chunked(
    stream: &mut Stream,
    server: &mut Server,
    chunk: usize,
) -> Result<Vec<Seen>, Error> {
    let mut seen = Vec::new();
    loop {
        let mut progress = false;
        if stream.wants_write() {
            let n = stream.output().len();
            server.receive(stream.output());
            stream.consume_output(n);
            progress = true;
        }
        if !server.out.is_empty() {
            let wire = std::mem::take(&mut server.out);
            for piece in wire.chunks(chunk) {
                stream.handle_input(piece)?;
                while let Some(event) = stream.poll_event()? {
                    seen.push(owned(event));
                }
            }
            progress = true;
        }
        if !progress {
            return Ok(seen);
        }
    }
}

fn pump(stream: &mut Stream, server: &mut Server) -> Result<Vec<Seen>, Error> {
    pump_chunked(stream, server, usize::MAX)
}

/// A stream negotiated through STARTTLS up to the SASL features.
fn negotiated() -> (Stream, Server) {
    let pki = pki(DOMAIN, true);
    let mut stream = Stream::new(settings(&pki, false));
    let mut server = Server::new(&pki, FEATURES_STARTTLS, FEATURES_SASL);
    let seen = pump(&mut stream, &mut server).unwrap();
    assert_eq!(seen, vec![Seen::Features(FEATURES_SASL.to_owned())]);
    (stream, server)
}

#[test]
fn initial_header_is_queued_with_escaped_domain_and_lang() {
    let pki = pki(DOMAIN, true);
    let mut settings = settings(&pki, false);
    settings.domain = "a'b&c".to_owned();
    settings.lang = "<en>".to_owned();
    let stream = Stream::new(settings);
    assert_eq!(
        std::str::from_utf8(stream.output()).unwrap(),
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' to='a&apos;b&amp;c' version='1.0' \
         xml:lang='&lt;en&gt;'>"
    );
    assert!(!stream.is_ready());
}

#[test]
fn starttls_negotiation_hands_only_post_tls_features_to_the_client() {
    let (stream, server) = negotiated();
    assert!(stream.is_tls());
    assert!(stream.is_ready());
    // One plaintext header, one over TLS, both naming the domain.
    assert_eq!(server.headers.len(), 2);
    assert!(server.headers.iter().all(|h| h.contains("to='localhost'")));
    assert!(server.tls.as_ref().is_some_and(|c| !c.is_handshaking()));
    assert_eq!(stream.server_header().unwrap().id.as_deref(), Some("s1"));
}

#[test]
fn starttls_works_over_tls12_too() {
    let mut pki = pki(DOMAIN, true);
    let server_config = Arc::get_mut(&mut pki.server).unwrap();
    let mut tls12 =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&server_config.cert_resolver));
    tls12.alpn_protocols.clear();
    pki.server = Arc::new(tls12);
    let mut stream = Stream::new(settings(&pki, false));
    let mut server = Server::new(&pki, FEATURES_STARTTLS, FEATURES_SASL);
    let seen = pump(&mut stream, &mut server).unwrap();
    assert_eq!(seen, vec![Seen::Features(FEATURES_SASL.to_owned())]);
    assert_eq!(
        server.tls.as_ref().unwrap().protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}

/// The failure of a STARTTLS negotiation with a server presenting what
/// `server` presents, to a stream set up by `settings`.
fn tls_failure(settings: Settings, server: &Arc<ServerConfig>) -> Result<tls::Failure, Vec<Seen>> {
    let mut stream = Stream::new(settings);
    let mut server = Server::with_config(server, FEATURES_STARTTLS, FEATURES_SASL);
    match pump(&mut stream, &mut server) {
        Ok(seen) => Err(seen),
        Err(Error::Tls(failure)) => {
            assert!(stream.wants_write(), "the alert is queued for the server");
            Ok(failure)
        }
        Err(other) => panic!("not a tls failure: {other:?}"),
    }
}

/// `tls_failure` that must fail: its message.
fn refused(settings: Settings, server: &Arc<ServerConfig>) -> (tls::Failure, String) {
    let failure = tls_failure(settings, server).expect("the handshake succeeded");
    let message = Error::Tls(failure.clone()).to_string();
    (failure, message)
}

fn accepted(settings: Settings, server: &Arc<ServerConfig>) {
    let seen = tls_failure(settings, server).expect_err("the handshake failed");
    assert_eq!(seen, vec![Seen::Features(FEATURES_SASL.to_owned())]);
}

#[test]
fn certificate_for_another_name_is_not_valid_for_the_domain() {
    let pki = pki("other.example", true);
    let (failure, message) = refused(settings(&pki, false), &pki.server);
    assert!(
        matches!(failure, tls::Failure::WrongName { .. }),
        "{failure:?}"
    );
    assert_eq!(
        message,
        "certificate not valid for localhost (it names other.example)"
    );
    assert_eq!(Error::Tls(failure).reason(), "tls");
}

#[test]
fn certificate_from_an_unknown_ca_is_not_trusted() {
    let pki = pki(DOMAIN, false);
    let (failure, message) = refused(settings(&pki, false), &pki.server);
    assert_eq!(failure, tls::Failure::Untrusted);
    assert_eq!(
        message,
        "certificate not trusted (self-signed or unknown CA; pin it with certificate = \"FILE.pem\" on the domain's backend.routes entry, or put its CA in backend.ca_file)"
    );
}

/// Certificate dates are judged by the injected clock, not the host's:
/// no waiting for a certificate to expire.
#[test]
fn certificate_dates_are_judged_by_the_injected_clock() {
    const DAY: u64 = 86_400;
    let from = NOW - 10 * DAY;
    let until = NOW + 10 * DAY;
    let pki = pki_with(DOMAIN, true, |params| {
        params.not_before = rcgen::date_time_ymd(2025, 12, 22);
        params.not_after = rcgen::date_time_ymd(2026, 1, 11);
    });
    let at = |secs: u64| {
        let trust = tls::Trust::Roots(pki.roots.clone());
        settings_with(tls::client_config(trust, &clock_at(secs)).unwrap(), false)
    };
    accepted(at(from + DAY), &pki.server);
    accepted(at(until - DAY), &pki.server);
    let (failure, message) = refused(at(until + DAY), &pki.server);
    assert_eq!(failure, tls::Failure::Expired);
    assert_eq!(message, "certificate expired");
    let (failure, message) = refused(at(from - DAY), &pki.server);
    assert_eq!(failure, tls::Failure::NotYetValid);
    assert_eq!(
        message,
        "certificate not valid yet (is this host's clock right?)"
    );
}

#[test]
fn a_clock_never_set_fails_the_handshake_instead_of_judging_dates_by_1970() {
    let pki = pki(DOMAIN, true);
    let trust = tls::Trust::Roots(pki.roots.clone());
    let tls = tls::client_config(trust, &tls::Clock::default()).unwrap();
    let (failure, message) = refused(settings_with(tls, false), &pki.server);
    assert!(matches!(failure, tls::Failure::Handshake(_)), "{failure:?}");
    assert!(message.starts_with("TLS handshake failed: "), "{message}");
}

/// Debian's Prosody's own certificate: self-signed with `CA:TRUE`. WebPKI
/// refuses it as a server certificate even when that very certificate is
/// a trusted root; a pin or a loopback route takes it.
#[test]
fn self_signed_ca_true_certificate_needs_a_pin_or_a_loopback_route() {
    let (cert, key) = self_signed_ca_true(DOMAIN);
    let server = server_config(vec![cert.clone()], &key);
    let mut roots = RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let clock = clock_at(NOW);
    let with = |trust| settings_with(tls::client_config(trust, &clock).unwrap(), false);
    let (failure, message) = refused(with(tls::Trust::Roots(roots)), &server);
    assert_eq!(failure, tls::Failure::Untrusted);
    assert!(
        message.starts_with("certificate not trusted (self-signed"),
        "{message}"
    );
    accepted(with(tls::Trust::Pinned(cert)), &server);
    accepted(with(tls::Trust::Loopback), &server);
}

#[test]
fn a_pin_refuses_any_other_certificate_even_a_trusted_one() {
    let (pinned, _) = self_signed_ca_true(DOMAIN);
    let pki = pki(DOMAIN, true);
    let trust = tls::Trust::Pinned(pinned);
    let tls = tls::client_config(trust, &clock_at(NOW)).unwrap();
    let (failure, message) = refused(settings_with(tls, false), &pki.server);
    assert_eq!(failure, tls::Failure::NotPinned);
    assert_eq!(
        message,
        "certificate is not the one pinned for this route (its certificate = file differs from what the server presents)"
    );
}

/// The pin and the loopback route judge the certificate, not the
/// handshake: a server that presents a certificate without holding its key
/// is refused all the same, over TLS 1.3 (CertificateVerify) and TLS 1.2
/// (ServerKeyExchange) alike.
#[test]
fn pinned_and_loopback_trust_still_check_the_handshake_signature() {
    let (cert, _) = self_signed_ca_true(DOMAIN);
    let (_, other_key) = self_signed_ca_true(DOMAIN);
    let clock = clock_at(NOW);
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let server = server_without_the_key(cert.clone(), &other_key, version);
        for trust in [tls::Trust::Pinned(cert.clone()), tls::Trust::Loopback] {
            let tls = tls::client_config(trust, &clock).unwrap();
            let (failure, message) = refused(settings_with(tls, false), &server);
            assert_eq!(failure, tls::Failure::BadSignature, "{version:?}");
            assert!(message.starts_with("bad signature: the server does not hold the key"));
        }
    }
}

/// A server presenting `cert` but signing its handshake with `key`, over
/// `version` only.
fn server_without_the_key(
    cert: CertificateDer<'static>,
    key: &rcgen::KeyPair,
    version: &'static rustls::SupportedProtocolVersion,
) -> Arc<ServerConfig> {
    #[derive(Debug)]
    struct Presents(Arc<rustls::sign::CertifiedKey>);
    impl rustls::server::ResolvesServerCert for Presents {
        fn resolve(
            &self,
            _: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(Arc::clone(&self.0))
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signer = provider.key_provider.load_private_key(key).unwrap();
    let certified = rustls::sign::CertifiedKey::new(vec![cert], signer);
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Presents(Arc::new(certified))));
    Arc::new(config)
}

#[test]
fn a_broken_handshake_says_tls_handshake_failed() {
    let pki = pki(DOMAIN, true);
    let mut stream = Stream::new(settings(&pki, false));
    stream
        .handle_input(format!("{SERVER_HEADER}{FEATURES_STARTTLS}").as_bytes())
        .unwrap();
    stream.handle_input(PROCEED.as_bytes()).unwrap();
    let error = stream
        .handle_input(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        .unwrap_err();
    assert!(
        matches!(error, Error::Tls(tls::Failure::Handshake(_))),
        "{error:?}"
    );
    assert!(
        error.to_string().starts_with("TLS handshake failed: "),
        "{error}"
    );
}

#[test]
fn server_without_starttls_is_refused_unless_plaintext_is_allowed() {
    let pki = pki(DOMAIN, true);
    let mut stream = Stream::new(settings(&pki, false));
    let mut server = Server::new(&pki, FEATURES_SASL, FEATURES_SASL);
    let error = pump(&mut stream, &mut server).unwrap_err();
    assert!(matches!(error, Error::TlsRequired), "{error:?}");
    assert_eq!(
        error.to_string(),
        "server does not offer STARTTLS and plaintext is not allowed for this domain (only for one in backend.plaintext_domains or on a loopback route)"
    );
}

#[test]
fn plaintext_allowed_without_starttls_gives_features_in_plaintext() {
    let pki = pki(DOMAIN, true);
    let mut stream = Stream::new(settings(&pki, true));
    let mut server = Server::new(&pki, FEATURES_SASL, FEATURES_BIND);
    let seen = pump(&mut stream, &mut server).unwrap();
    assert_eq!(seen, vec![Seen::Features(FEATURES_SASL.to_owned())]);
    assert!(!stream.is_tls());
    assert!(stream.is_ready());
    assert_eq!(server.headers.len(), 1);
}

#[test]
fn offered_starttls_is_used_even_when_plaintext_is_allowed() {
    let pki = pki(DOMAIN, true);
    let mut stream = Stream::new(settings(&pki, true));
    let mut server = Server::new(&pki, FEATURES_STARTTLS, FEATURES_SASL);
    let seen = pump(&mut stream, &mut server).unwrap();
    assert_eq!(seen, vec![Seen::Features(FEATURES_SASL.to_owned())]);
    assert!(stream.is_tls());
}

#[test]
fn required_starttls_is_used() {
    let pki = pki(DOMAIN, true);
    let mut stream = Stream::new(settings(&pki, true));
    let mut server = Server::new(&pki, FEATURES_STARTTLS_REQUIRED, FEATURES_SASL);
    let seen = pump(&mut stream, &mut server).unwrap();
    assert_eq!(seen, vec![Seen::Features(FEATURES_SASL.to_owned())]);
    assert!(stream.is_tls());
}

/// A stream as on a loopback link with `backend.loopback_plaintext`, and a
/// server offering `features` first.
fn on_loopback(features: &'static str) -> (Stream, Server) {
    let pki = pki(DOMAIN, true);
    let mut settings = settings(&pki, false);
    settings.skip_optional_tls = true;
    (
        Stream::new(settings),
        Server::new(&pki, features, FEATURES_SASL),
    )
}

#[test]
fn on_loopback_an_optional_starttls_is_skipped_and_cut_from_the_features() {
    let (mut stream, mut server) = on_loopback(FEATURES_STARTTLS);
    // Cut anywhere, the offer is found and cut out whole.
    let seen = pump_chunked(&mut stream, &mut server, 7).unwrap();
    let without_offer =
        FEATURES_STARTTLS.replace("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", "");
    assert_eq!(seen, vec![Seen::Features(without_offer)]);
    assert!(server.tls.is_none());
    assert_eq!(server.headers.len(), 1);
    assert!(!stream.is_tls());
    assert!(
        stream.is_secure(),
        "a loopback stream counts as secure (XEP-0206)"
    );
    // The stream goes on in plaintext.
    stream.send(MESSAGE.as_bytes()).unwrap();
    pump(&mut stream, &mut server).unwrap();
    assert_eq!(server.elements, [MESSAGE]);
}

#[test]
fn on_loopback_a_required_starttls_is_still_used() {
    let (mut stream, mut server) = on_loopback(FEATURES_STARTTLS_REQUIRED);
    let seen = pump(&mut stream, &mut server).unwrap();
    assert_eq!(seen, vec![Seen::Features(FEATURES_SASL.to_owned())]);
    assert!(stream.is_tls());
}

#[test]
fn starttls_failure_is_an_error() {
    let pki = pki(DOMAIN, true);
    let mut stream = Stream::new(settings(&pki, true));
    let mut server = Server::new(&pki, FEATURES_STARTTLS, FEATURES_SASL);
    server.starttls_answer = FAILURE;
    let error = pump(&mut stream, &mut server).unwrap_err();
    assert!(matches!(error, Error::StartTlsFailed), "{error:?}");
    assert_eq!(
        error.to_string(),
        "server answered STARTTLS with <failure/>"
    );
    assert!(!stream.is_ready());
}

#[test]
fn data_injected_after_proceed_is_refused() {
    let pki = pki(DOMAIN, true);
    let mut stream = Stream::new(settings(&pki, false));
    let mut server = Server::new(&pki, FEATURES_STARTTLS, FEATURES_SASL);
    server.starttls_answer = "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><message/>";
    let error = pump(&mut stream, &mut server).unwrap_err();
    assert!(
        matches!(error, Error::Unexpected("data after <proceed/>")),
        "{error:?}"
    );
}

#[test]
fn server_elements_are_relayed_byte_exact_over_tls() {
    let (mut stream, mut server) = negotiated();
    server.send(MESSAGE);
    server.send(" ");
    server.send("<iq type='result' id='1'/>");
    let seen = pump(&mut stream, &mut server).unwrap();
    assert_eq!(
        seen,
        vec![
            Seen::Element(MESSAGE.to_owned()),
            Seen::Element("<iq type='result' id='1'/>".to_owned()),
        ]
    );
}

#[test]
fn event_info_locates_the_element_name() {
    let (mut stream, mut server) = negotiated();
    server.send(MESSAGE);
    let wire = std::mem::take(&mut server.out);
    stream.handle_input(&wire).unwrap();
    match stream.poll_event().unwrap() {
        Some(Event::Element(bytes, info)) => {
            assert_eq!(info.local_name(bytes), "message");
            assert_eq!(info.namespace(bytes), None);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(stream.poll_event().unwrap(), None);
}

#[test]
fn sent_client_data_reaches_the_server_decrypted_and_unchanged() {
    let (mut stream, mut server) = negotiated();
    let auth = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG0zMA==</auth>";
    stream.send(auth.as_bytes()).unwrap();
    assert!(
        !stream.output().windows(5).any(|w| w == b"<auth"),
        "sent in clear"
    );
    pump(&mut stream, &mut server).unwrap();
    assert_eq!(server.elements, vec![auth.to_owned()]);
}

#[test]
fn send_before_features_is_refused() {
    let pki = pki(DOMAIN, true);
    let mut stream = Stream::new(settings(&pki, false));
    assert!(matches!(stream.send(b"<presence/>"), Err(Error::NotReady)));
    assert!(matches!(stream.restart("en"), Err(Error::NotReady)));
}

#[test]
fn restart_sends_a_new_header_and_yields_new_features() {
    let (mut stream, mut server) = negotiated();
    server.send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    let seen = pump(&mut stream, &mut server).unwrap();
    assert_eq!(
        seen,
        vec![Seen::Element(
            "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>".to_owned()
        )]
    );
    server.features_tls = FEATURES_BIND;
    server.expect_restart();
    stream.restart("de").unwrap();
    let seen = pump(&mut stream, &mut server).unwrap();
    assert_eq!(seen, vec![Seen::Features(FEATURES_BIND.to_owned())]);
    assert_eq!(server.headers.len(), 3);
    assert!(server.headers[2].contains("xml:lang='de'"));
    assert!(server.headers[2].contains("to='localhost'"));
}

#[test]
fn restart_works_in_plaintext() {
    let pki = pki(DOMAIN, true);
    let mut stream = Stream::new(settings(&pki, true));
    let mut server = Server::new(&pki, FEATURES_SASL, FEATURES_BIND);
    pump(&mut stream, &mut server).unwrap();
    server.features_plain = FEATURES_BIND;
    server.expect_restart();
    stream.restart("en").unwrap();
    let seen = pump(&mut stream, &mut server).unwrap();
    assert_eq!(seen, vec![Seen::Features(FEATURES_BIND.to_owned())]);
    assert!(!stream.is_tls());
}

#[test]
fn stream_error_names_its_condition() {
    let (mut stream, mut server) = negotiated();
    server.send(STREAM_ERROR);
    server.send("</stream:stream>");
    let seen = pump(&mut stream, &mut server).unwrap();
    assert_eq!(
        seen,
        vec![
            Seen::StreamError("system-shutdown".to_owned(), STREAM_ERROR.to_owned()),
            Seen::Closed,
        ]
    );
    assert!(matches!(
        stream.send(b"<presence/>"),
        Err(Error::AfterClose)
    ));
}

#[test]
fn stream_error_during_negotiation_reaches_the_client() {
    let pki = pki(DOMAIN, true);
    let mut stream = Stream::new(settings(&pki, false));
    let error =
        "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>";
    stream
        .handle_input(format!("{SERVER_HEADER}{error}").as_bytes())
        .unwrap();
    assert_eq!(
        owned(stream.poll_event().unwrap().unwrap()),
        Seen::StreamError("host-unknown".to_owned(), error.to_owned())
    );
}

#[test]
fn stream_error_without_condition_is_undefined_condition() {
    let (mut stream, mut server) = negotiated();
    server.send("<stream:error/>");
    let seen = pump(&mut stream, &mut server).unwrap();
    assert_eq!(
        seen,
        vec![Seen::StreamError(
            "undefined-condition".to_owned(),
            "<stream:error/>".to_owned()
        )]
    );
}

#[test]
fn server_stream_close_is_closed() {
    let (mut stream, mut server) = negotiated();
    server.send("</stream:stream>");
    let seen = pump(&mut stream, &mut server).unwrap();
    assert_eq!(seen, vec![Seen::Closed]);
}

#[test]
fn close_sends_stream_close_and_close_notify() {
    let (mut stream, mut server) = negotiated();
    stream.close();
    pump(&mut stream, &mut server).unwrap();
    assert!(server.closed);
    assert!(server.close_notify);
    assert!(matches!(
        stream.send(b"<presence/>"),
        Err(Error::AfterClose)
    ));
}

#[test]
fn close_in_plaintext_sends_stream_close() {
    let pki = pki(DOMAIN, true);
    let mut stream = Stream::new(settings(&pki, true));
    let mut server = Server::new(&pki, FEATURES_SASL, FEATURES_BIND);
    pump(&mut stream, &mut server).unwrap();
    stream.close();
    assert_eq!(stream.output(), b"</stream:stream>");
}

#[test]
fn old_server_version_is_refused() {
    let pki = pki(DOMAIN, true);
    let mut stream = Stream::new(settings(&pki, true));
    let error = stream
        .handle_input(
            b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='x'>",
        )
        .unwrap_err();
    assert!(matches!(error, Error::UnsupportedVersion), "{error:?}");
}

#[test]
fn malformed_server_xml_is_an_xml_error() {
    let pki = pki(DOMAIN, true);
    let mut stream = Stream::new(settings(&pki, true));
    let error = stream
        .handle_input(format!("{SERVER_HEADER}<!-- no -->").as_bytes())
        .unwrap_err();
    assert!(matches!(error, Error::Xml(_)), "{error:?}");
    assert_eq!(error.reason(), "xml");
}

#[test]
fn element_before_features_is_refused() {
    let pki = pki(DOMAIN, true);
    let mut stream = Stream::new(settings(&pki, true));
    let error = stream
        .handle_input(format!("{SERVER_HEADER}{MESSAGE}").as_bytes())
        .unwrap_err();
    assert!(matches!(error, Error::Unexpected(_)), "{error:?}");
}

/// Everything a plaintext server says in one session, for split tests.
fn plaintext_script() -> String {
    format!("{SERVER_HEADER}{FEATURES_SASL} {MESSAGE}{STREAM_ERROR}</stream:stream>")
}

fn plaintext_events(chunks: &[&[u8]]) -> Vec<Seen> {
    let pki = pki(DOMAIN, true);
    let mut stream = Stream::new(settings(&pki, true));
    let mut seen = Vec::new();
    for chunk in chunks {
        stream.handle_input(chunk).unwrap();
        while let Some(event) = stream.poll_event().unwrap() {
            seen.push(owned(event));
        }
    }
    seen
}

#[test]
fn plaintext_session_split_at_every_byte_gives_the_same_events() {
    let script = plaintext_script();
    let bytes = script.as_bytes();
    let whole = plaintext_events(&[bytes]);
    assert_eq!(
        whole,
        vec![
            Seen::Features(FEATURES_SASL.to_owned()),
            Seen::Element(MESSAGE.to_owned()),
            Seen::StreamError("system-shutdown".to_owned(), STREAM_ERROR.to_owned()),
            Seen::Closed,
        ]
    );
    for at in 0..=bytes.len() {
        let (a, b) = bytes.split_at(at);
        assert_eq!(plaintext_events(&[a, b]), whole, "split at {at}");
    }
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(plaintext_events(&singles), whole, "byte by byte");
}

#[test]
fn starttls_negotiation_split_at_every_byte_gives_the_same_events() {
    let pki = pki(DOMAIN, true);
    for chunk in [1, 2, 3, 7, 64] {
        let mut stream = Stream::new(settings(&pki, false));
        let mut server = Server::new(&pki, FEATURES_STARTTLS, FEATURES_SASL);
        let seen = pump_chunked(&mut stream, &mut server, chunk).unwrap();
        assert_eq!(
            seen,
            vec![Seen::Features(FEATURES_SASL.to_owned())],
            "chunk {chunk}"
        );
        assert_eq!(server.headers.len(), 2, "chunk {chunk}");
        server.send(MESSAGE);
        let seen = pump_chunked(&mut stream, &mut server, chunk).unwrap();
        assert_eq!(
            seen,
            vec![Seen::Element(MESSAGE.to_owned())],
            "chunk {chunk}"
        );
    }
}

#[test]
fn starttls_is_sent_once_whatever_the_split_of_the_first_features() {
    let pki = pki(DOMAIN, true);
    let script = format!("{SERVER_HEADER}{FEATURES_STARTTLS}");
    let bytes = script.as_bytes();
    for at in 0..=bytes.len() {
        let mut stream = Stream::new(settings(&pki, false));
        let header_len = stream.output().len();
        stream.consume_output(header_len);
        let (a, b) = bytes.split_at(at);
        stream.handle_input(a).unwrap();
        assert_eq!(stream.poll_event().unwrap(), None);
        stream.handle_input(b).unwrap();
        assert_eq!(stream.poll_event().unwrap(), None);
        assert_eq!(stream.output(), STARTTLS, "split at {at}");
    }
}

#[test]
fn idle_plaintext_stream_keeps_no_large_buffers() {
    let pki = pki(DOMAIN, true);
    let mut stream = Stream::new(settings(&pki, true));
    let mut server = Server::new(&pki, FEATURES_SASL, FEATURES_BIND);
    pump(&mut stream, &mut server).unwrap();
    let big = format!("<message><body>{}</body></message>", "x".repeat(100_000));
    stream.send(big.as_bytes()).unwrap();
    server.send(&big);
    let seen = pump(&mut stream, &mut server).unwrap();
    assert_eq!(seen.len(), 1);
    assert!(stream.input.capacity() <= KEEP_CAPACITY);
    assert!(stream.output.capacity() <= KEEP_CAPACITY);
}
