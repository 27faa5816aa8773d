//! Trust for the TLS under STARTTLS (RFC 6120 §5, §13.7.2): the client
//! configurations backend streams use, the wall clock they judge
//! certificate dates by, and why a handshake failed in words an operator
//! can act on. Sans-IO: the shell reads every file and the clock, and hands
//! over DER bytes and seconds.
//!
//! Three kinds of [`Trust`], chosen per route by the shell:
//! - [`Trust::Roots`]: the WebPKI path: a chain to a trusted CA, the dates,
//!   and the XMPP domain as the name (RFC 6120 §13.7.2.1, RFC 6125). Every
//!   server found by DNS, and every route the two below do not cover.
//! - [`Trust::Pinned`]: the server must present exactly this certificate,
//!   byte for byte. For self-signed servers anywhere: a certificate made
//!   with `openssl req -x509` has `CA:TRUE`, which WebPKI refuses as a
//!   server certificate even when that very file is a trusted root, so a
//!   pin is the only way to trust it. Its CA flag, names and dates are not
//!   judged: the operator vouched for these bytes, and a self-signed
//!   certificate's dates are vouched for by no one else.
//! - [`Trust::Loopback`]: any certificate. Only for a route whose
//!   addresses are all loopback: the bytes never leave the host, so
//!   verification guards against no one (a reverse proxy does not verify
//!   its upstreams by default either). The shell says so in a WARN line.
//!
//! Under all three the handshake signature is still checked against the
//! presented certificate's key (TLS 1.2 ServerKeyExchange, TLS 1.3
//! CertificateVerify): the peer must hold the key of what it presents.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{self, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::time_provider::TimeProvider;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// The wall clock rustls reads certificate dates against: seconds since
/// the Unix epoch, stored by the shell at each wake-up. Clones share one
/// value. Until the first [`Clock::set`] there is no time, and a handshake
/// that needs one fails rather than judging dates by 1970.
#[derive(Clone, Debug, Default)]
pub struct Clock(Arc<AtomicU64>);

impl Clock {
    /// Store the wall-clock time the shell read; whole seconds are enough
    /// for certificate dates. A time before 1970 counts as none.
    pub fn set(&self, now: SystemTime) {
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.0.store(secs, Ordering::Relaxed);
    }
}

impl TimeProvider for Clock {
    fn current_time(&self) -> Option<UnixTime> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            secs => Some(UnixTime::since_unix_epoch(Duration::from_secs(secs))),
        }
    }
}

/// How a backend's certificate is trusted; see the module documentation.
#[derive(Debug)]
pub enum Trust {
    /// A chain to one of these CAs, valid now, for the XMPP domain.
    Roots(RootCertStore),
    /// Exactly this certificate (DER), whatever its CA flag, names and
    /// dates.
    Pinned(CertificateDer<'static>),
    /// Any certificate: loopback routes only.
    Loopback,
}

/// The client configuration for `trust`: the ring provider, TLS 1.2 and
/// 1.3, no client certificate, and `clock` as the only time rustls sees.
pub fn client_config(trust: Trust, clock: &Clock) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let builder =
        ClientConfig::builder_with_details(Arc::clone(&provider), Arc::new(clock.clone()))
            .with_safe_default_protocol_versions()?;
    let accept = match trust {
        Trust::Roots(roots) => {
            return Ok(Arc::new(
                builder.with_root_certificates(roots).with_no_client_auth(),
            ))
        }
        Trust::Pinned(der) => Accept::Pinned(der),
        Trust::Loopback => Accept::Any,
    };
    let verifier = Verifier { accept, algorithms };
    Ok(Arc::new(
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth(),
    ))
}

/// Which end-entity certificates a [`Verifier`] takes.
#[derive(Debug)]
enum Accept {
    Pinned(CertificateDer<'static>),
    Any,
}

/// The verifier of [`Trust::Pinned`] and [`Trust::Loopback`]: it judges
/// the end-entity certificate by [`Accept`] alone, and leaves the handshake
/// signatures to the provider's own checks, as WebPKI does.
#[derive(Debug)]
struct Verifier {
    accept: Accept,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.accept {
            Accept::Pinned(pin) if pin.as_ref() != end_entity.as_ref() => {
                // The one error no WebPKI check gives: `Failure::NotPinned`.
                Err(CertificateError::ApplicationVerificationFailure.into())
            }
            Accept::Pinned(_) | Accept::Any => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Why TLS with the server failed, in the words an operator acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The certificate's notAfter is past, by [`Clock`].
    Expired,
    /// The certificate's notBefore is still ahead, by [`Clock`].
    NotYetValid,
    /// The certificate does not name the XMPP domain (RFC 6120
    /// §13.7.2.1); `presented` are the names it does carry.
    WrongName {
        domain: String,
        presented: Vec<String>,
    },
    /// No trusted CA vouches for it: self-signed (`CA:TRUE` or not), or
    /// issued by a CA that is neither a system root nor in `ca_file`.
    Untrusted,
    /// A pinned route's server presented another certificate.
    NotPinned,
    /// A signature does not verify with the key it claims: the server does
    /// not hold the key of the certificate it presents, or a certificate's
    /// own signature is broken.
    BadSignature,
    /// Another certificate problem, in rustls's words.
    Certificate(String),
    /// The handshake failed for a reason other than the certificate.
    Handshake(String),
}

impl Failure {
    /// The cause of `error`, met while connecting to `domain`'s server.
    pub fn of(error: rustls::Error, domain: &str) -> Failure {
        let rustls::Error::InvalidCertificate(error) = error else {
            return Failure::Handshake(error.to_string());
        };
        match error {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => Failure::Expired,
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                Failure::NotYetValid
            }
            CertificateError::NotValidForName => Failure::WrongName {
                domain: domain.to_string(),
                presented: Vec::new(),
            },
            CertificateError::NotValidForNameContext { presented, .. } => Failure::WrongName {
                domain: domain.to_string(),
                presented: presented.iter().map(|name| plain_name(name)).collect(),
            },
            CertificateError::UnknownIssuer => Failure::Untrusted,
            CertificateError::ApplicationVerificationFailure => Failure::NotPinned,
            CertificateError::BadSignature => Failure::BadSignature,
            // What `openssl req -x509` makes, Debian's Prosody's own.
            CertificateError::Other(ref other)
                if matches!(
                    other.0.downcast_ref::<webpki::Error>(),
                    Some(webpki::Error::CaUsedAsEndEntity)
                ) =>
            {
                Failure::Untrusted
            }
            other => Failure::Certificate(other.to_string()),
        }
    }
}

/// A name as WebPKI presents it (`DnsName("example.org")`,
/// `IpAddress(10.0.0.5)`) as an operator writes it.
fn plain_name(presented: &str) -> String {
    let unwrapped = presented
        .strip_prefix("DnsName(\"")
        .and_then(|name| name.strip_suffix("\")"))
        .or_else(|| {
            presented
                .strip_prefix("IpAddress(")
                .and_then(|ip| ip.strip_suffix(')'))
        });
    unwrapped.unwrap_or(presented).to_string()
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Expired => f.write_str("certificate expired"),
            Failure::NotYetValid => {
                f.write_str("certificate not valid yet (is this host's clock right?)")
            }
            Failure::WrongName { domain, presented } if presented.is_empty() => {
                write!(f, "certificate not valid for {domain}")
            }
            Failure::WrongName { domain, presented } => write!(
                f,
                "certificate not valid for {domain} (it names {})",
                presented.join(", ")
            ),
            Failure::Untrusted => f.write_str(
                "certificate not trusted (self-signed or unknown CA; pin it with certificate = \"FILE.pem\" on the domain's backend.routes entry, or put its CA in backend.ca_file)",
            ),
            Failure::NotPinned => f.write_str(
                "certificate is not the one pinned for this route (its certificate = file differs from what the server presents)",
            ),
            Failure::BadSignature => f.write_str(
                "bad signature: the server does not hold the key of the certificate it presents, or the certificate is corrupt",
            ),
            Failure::Certificate(why) => write!(f, "certificate refused: {why}"),
            Failure::Handshake(why) => write!(f, "TLS handshake failed: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presented_names_are_shown_as_written() {
        assert_eq!(
            plain_name("DnsName(\"xmpp.example.org\")"),
            "xmpp.example.org"
        );
        assert_eq!(plain_name("IpAddress(10.0.0.5)"), "10.0.0.5");
        assert_eq!(plain_name("DirectoryName"), "DirectoryName");
    }

    #[test]
    fn clock_has_no_time_until_set_and_then_the_shells() {
        let clock = Clock::default();
        assert_eq!(clock.current_time(), None);
        let shared = clock.clone();
        clock.set(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        assert_eq!(
            shared.current_time().map(|t| t.as_secs()),
            Some(1_800_000_000)
        );
        clock.set(UNIX_EPOCH - Duration::from_secs(1));
        assert_eq!(shared.current_time(), None);
    }
}
