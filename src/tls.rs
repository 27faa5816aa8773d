//! The files behind backend TLS (RFC 6120 §5, §13.7.2), read once at
//! start-up: the system trust store (rustls-native-certs), an optional
//! extra PEM CA file, and the certificates routes pin. The configurations
//! themselves are built by `switchboard_core::backend::tls` from what is
//! read here, and shared by every backend stream through an `Arc`. The
//! server certificate is verified against the XMPP domain, never the SRV
//! target host (RFC 6120 §13.7.2.1): the stream passes the domain as the
//! rustls `ServerName`.

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use switchboard_core::backend::tls::{self, Clock, Trust};

/// Why the TLS client configuration could not be built.
#[derive(Debug)]
pub enum TlsConfigError {
    /// The extra CA file could not be read or is not valid PEM.
    CaFile {
        /// The file named in the configuration.
        path: PathBuf,
        /// What went wrong reading it.
        error: pem::Error,
    },
    /// The extra CA file holds no `CERTIFICATE` section.
    NoCertificates(PathBuf),
    /// A certificate of the extra CA file is not a usable trust anchor.
    InvalidCa {
        /// The file named in the configuration.
        path: PathBuf,
        /// What rustls found wrong with it.
        error: rustls::Error,
    },
    /// Neither the system store nor a CA file gave any trust anchor, so no
    /// server certificate could ever be verified.
    NoTrustAnchors,
    /// A pinned certificate file could not be read or is not valid PEM.
    PinFile {
        /// The file named in the configuration.
        path: PathBuf,
        /// What went wrong reading it.
        error: pem::Error,
    },
    /// A pinned certificate file holds this many certificates, not one.
    PinCount {
        /// The file named in the configuration.
        path: PathBuf,
        /// How many `CERTIFICATE` sections it has.
        found: usize,
    },
    /// A pinned certificate file's one certificate is not X.509.
    PinInvalid {
        /// The file named in the configuration.
        path: PathBuf,
        /// What rustls found wrong with it.
        error: rustls::Error,
    },
    /// rustls refused the provider or protocol versions.
    Rustls(rustls::Error),
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsConfigError::CaFile { path, error } => {
                write!(f, "cannot read ca file {}: {error}", path.display())
            }
            TlsConfigError::NoCertificates(path) => {
                write!(f, "no certificate in ca file {}", path.display())
            }
            TlsConfigError::InvalidCa { path, error } => {
                write!(f, "invalid ca certificate in {}: {error}", path.display())
            }
            TlsConfigError::NoTrustAnchors => f.write_str("no trusted ca certificates"),
            TlsConfigError::PinFile { path, error } => {
                write!(
                    f,
                    "cannot read certificate file {}: {error}",
                    path.display()
                )
            }
            TlsConfigError::PinCount { path, found } => {
                write!(f, "{found} certificates in {}, not one", path.display())
            }
            TlsConfigError::PinInvalid { path, error } => {
                write!(f, "invalid certificate in {}: {error}", path.display())
            }
            TlsConfigError::Rustls(error) => write!(f, "tls configuration refused: {error}"),
        }
    }
}

impl std::error::Error for TlsConfigError {}

/// The default client configuration for backend STARTTLS: the system's
/// trust anchors (rustls-native-certs) plus every certificate of `ca_file`
/// (PEM), judged by `clock`.
///
/// Unreadable entries of the system store are logged and skipped; an
/// unreadable `ca_file` is an error, since the operator asked for it.
pub fn client_config(
    ca_file: Option<&Path>,
    clock: &Clock,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        log::warn!("system trust store: {error}");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    log::debug!("system trust store: {added} ca certificates, {ignored} unusable");
    if let Some(path) = ca_file {
        let iter = CertificateDer::pem_file_iter(path).map_err(|error| TlsConfigError::CaFile {
            path: path.to_owned(),
            error,
        })?;
        let mut found = 0usize;
        for cert in iter {
            let cert = cert.map_err(|error| TlsConfigError::CaFile {
                path: path.to_owned(),
                error,
            })?;
            roots.add(cert).map_err(|error| TlsConfigError::InvalidCa {
                path: path.to_owned(),
                error,
            })?;
            found += 1;
        }
        if found == 0 {
            return Err(TlsConfigError::NoCertificates(path.to_owned()));
        }
    }
    config_with_roots(roots, clock)
}

/// The same configuration as [`client_config`] over the given trust anchors
/// only.
fn config_with_roots(
    roots: RootCertStore,
    clock: &Clock,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    if roots.is_empty() {
        return Err(TlsConfigError::NoTrustAnchors);
    }
    tls::client_config(Trust::Roots(roots), clock).map_err(TlsConfigError::Rustls)
}

/// The server certificate a route pins: `path` must hold exactly one PEM
/// certificate, the one the server presents first. Its bytes are what is
/// compared, so it is parsed only to refuse what could never match.
pub fn pinned_certificate(path: &Path) -> Result<CertificateDer<'static>, TlsConfigError> {
    let pin_file = |error| TlsConfigError::PinFile {
        path: path.to_owned(),
        error,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pin_file)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pin_file)?;
    let [cert] = <[_; 1]>::try_from(certs).map_err(|certs| TlsConfigError::PinCount {
        path: path.to_owned(),
        found: certs.len(),
    })?;
    rustls::server::ParsedCertificate::try_from(&cert).map_err(|error| {
        TlsConfigError::PinInvalid {
            path: path.to_owned(),
            error,
        }
    })?;
    Ok(cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "switchboard-backend-tls-{}-{name}",
            std::process::id()
        ));
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn ca_pem() -> String {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn ca_file_certificates_are_added_to_the_system_roots() {
        let path = temp_file("ok.pem", ca_pem().as_bytes());
        let result = client_config(Some(&path), &Clock::default());
        std::fs::remove_file(&path).unwrap();
        assert!(result.is_ok(), "{:?}", result.err());
    }

    #[test]
    fn missing_ca_file_is_an_error() {
        let path = std::env::temp_dir().join("switchboard-backend-tls-does-not-exist.pem");
        let error = client_config(Some(&path), &Clock::default()).unwrap_err();
        assert!(matches!(error, TlsConfigError::CaFile { .. }), "{error}");
        assert!(error.to_string().starts_with("cannot read ca file"));
    }

    #[test]
    fn ca_file_without_certificates_is_an_error() {
        let path = temp_file("empty.pem", b"not a certificate\n");
        let error = client_config(Some(&path), &Clock::default()).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(
            matches!(error, TlsConfigError::NoCertificates(_)),
            "{error}"
        );
    }

    /// ejabberd serves key and certificate from one file (Debian's own
    /// ejabberd.pem is so): that file can be pinned as it is.
    #[test]
    fn a_pinned_file_may_hold_the_key_beside_the_certificate() {
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let path = temp_file(
            "key-and-cert.pem",
            format!("{}{}", key.serialize_pem(), cert.pem()).as_bytes(),
        );
        let pinned = pinned_certificate(&path);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(pinned.unwrap(), *cert.der());
    }

    #[test]
    fn empty_root_store_is_refused() {
        let error = config_with_roots(RootCertStore::empty(), &Clock::default()).unwrap_err();
        assert!(matches!(error, TlsConfigError::NoTrustAnchors));
    }
}
