//! Builds a rustls `ServerConfig` from the `tls {}` settings and their PEM files.
//!
//! Only the ring provider is used, passed explicitly, so the result does not depend on which
//! process-wide default another crate may have installed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::{Tls, TlsVersion};

/// Why a TLS configuration could not be built. Every variant names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls: {what} is not set")]
    Missing { what: &'static str },
    #[error("tls: can't read {what} {}: {source}", path.display())]
    Read { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("tls: {what} {} has no usable PEM data: {reason}", path.display())]
    Pem { what: &'static str, path: PathBuf, reason: String },
    #[error("tls: certificate {} and key {} can't be used together: {source}", cert.display(), key.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf, source: rustls::Error },
    #[error("tls: CA file {} can't verify client certificates: {reason}", path.display())]
    ClientVerifier { path: PathBuf, reason: String },
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The files a configuration is read from, in a fixed order (watched for changes).
pub fn files(settings: &Tls) -> Vec<PathBuf> {
    [&settings.cert_file, &settings.key_file, &settings.ca_file].into_iter().flatten().cloned().collect()
}

/// Reads the files and builds the server config.
pub fn build(settings: &Tls) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_path = settings.cert_file.as_deref().ok_or(TlsError::Missing { what: "cert_file" })?;
    let key_path = settings.key_file.as_deref().ok_or(TlsError::Missing { what: "key_file" })?;
    let chain = read_certs("certificate file", cert_path)?;
    let key = read_key(key_path)?;
    // The CA file is read even without `verify`, so a wrong path fails at startup, as in
    // nats-server.
    let roots = settings.ca_file.as_deref().map(read_roots).transpose()?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match settings.min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(versions)?;
    let builder = match (&roots, settings.verifies_clients()) {
        (Some((ca_path, roots)), true) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots.clone()), provider)
                .build()
                .map_err(|e| TlsError::ClientVerifier { path: ca_path.clone(), reason: e.to_string() })?;
            builder.with_client_cert_verifier(verifier)
        }
        (None, true) => return Err(TlsError::Missing { what: "ca_file (needed by verify)" }),
        (_, false) => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(chain, key).map_err(|source| TlsError::KeyMismatch {
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
        source,
    })?;
    Ok(Arc::new(config))
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.to_path_buf(), source })
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |reason: String| TlsError::Pem { what, path: path.to_path_buf(), reason };
    let bytes = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read("key file", path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Pem {
        what: "key file",
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn read_roots(path: &Path) -> Result<(PathBuf, RootCertStore), TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs("CA file", path)? {
        roots.add(cert).map_err(|e| TlsError::Pem {
            what: "CA file",
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok((path.to_path_buf(), roots))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::Generated as Pki;
    use crate::tls::testing::write_pki;

    fn settings(pki: &Pki) -> Tls {
        Tls {
            cert_file: Some(pki.server_cert.clone()),
            key_file: Some(pki.server_key.clone()),
            ca_file: Some(pki.ca_cert.clone()),
            ..Tls::default()
        }
    }

    #[test]
    fn builds_from_generated_pem_files_with_and_without_client_verification() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let pki = write_pki(dir.path());
        assert!(build(&settings(&pki)).is_ok());
        assert!(build(&Tls { verify: true, ..settings(&pki) }).is_ok());
        assert!(build(&Tls { min_version: TlsVersion::V1_3, ..settings(&pki) }).is_ok());
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let pki = write_pki(dir.path());
        let missing = dir.path().join("nope.pem");
        let e = build(&Tls { cert_file: Some(missing.clone()), ..settings(&pki) }).err();
        let text = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("certificate file") && text.contains("nope.pem"), "{text}");
        let e = build(&Tls { ca_file: Some(missing), ..settings(&pki) }).err();
        assert!(e.is_some_and(|e| e.to_string().contains("CA file")));
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let pki = write_pki(dir.path());
        let e = build(&Tls { key_file: Some(pki.clients[0].2.clone()), ..settings(&pki) }).err();
        assert!(matches!(e, Some(TlsError::KeyMismatch { .. })), "{e:?}");
    }

    #[test]
    fn garbage_instead_of_pem_is_an_error() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let pki = write_pki(dir.path());
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap_or_else(|e| panic!("{e}"));
        let e = build(&Tls { cert_file: Some(junk.clone()), ..settings(&pki) }).err();
        assert!(matches!(e, Some(TlsError::Pem { .. })), "{e:?}");
        let e = build(&Tls { key_file: Some(junk), ..settings(&pki) }).err();
        assert!(matches!(e, Some(TlsError::Pem { .. })), "{e:?}");
    }
}
