//! TLS client configuration for backend streams (RFC 6120 §5, §13.7.2).
//!
//! Built once at start-up and shared by every backend stream through an
//! `Arc`: it reads the system trust store (rustls-native-certs) and an
//! optional extra PEM CA file. The
//! server certificate is later verified against the XMPP domain, never the
//! SRV target host (RFC 6120 §13.7.2.1): the stream passes the domain as the
//! rustls `ServerName`.

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
            TlsConfigError::Rustls(error) => write!(f, "tls configuration refused: {error}"),
        }
    }
}

impl std::error::Error for TlsConfigError {}

/// The client configuration for backend STARTTLS: the system's trust
/// anchors (rustls-native-certs) plus every certificate of `ca_file` (PEM),
/// the ring provider, TLS 1.2 and 1.3, no client certificate.
///
/// Unreadable entries of the system store are logged and skipped; an
/// unreadable `ca_file` is an error, since the operator asked for it.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsConfigError> {
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
    config_with_roots(roots)
}

/// The same configuration as [`client_config`] over the given trust anchors
/// only (tests and in-process stub backends use their own CA).
pub fn config_with_roots(roots: RootCertStore) -> Result<Arc<ClientConfig>, TlsConfigError> {
    if roots.is_empty() {
        return Err(TlsConfigError::NoTrustAnchors);
    }
    // Default features are off, so no process-wide provider is installed:
    // name ring explicitly.
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(TlsConfigError::Rustls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
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
        let result = client_config(Some(&path));
        std::fs::remove_file(&path).unwrap();
        assert!(result.is_ok(), "{:?}", result.err());
    }

    #[test]
    fn missing_ca_file_is_an_error() {
        let path = std::env::temp_dir().join("switchboard-backend-tls-does-not-exist.pem");
        let error = client_config(Some(&path)).unwrap_err();
        assert!(matches!(error, TlsConfigError::CaFile { .. }), "{error}");
        assert!(error.to_string().starts_with("cannot read ca file"));
    }

    #[test]
    fn ca_file_without_certificates_is_an_error() {
        let path = temp_file("empty.pem", b"not a certificate\n");
        let error = client_config(Some(&path)).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(
            matches!(error, TlsConfigError::NoCertificates(_)),
            "{error}"
        );
    }

    #[test]
    fn empty_root_store_is_refused() {
        let error = config_with_roots(RootCertStore::empty()).unwrap_err();
        assert!(matches!(error, TlsConfigError::NoTrustAnchors));
    }
}
