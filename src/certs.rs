//! Development certificates: a throw-away CA, a server certificate for the given hosts, and
//! client certificates, written as PEM files. Used by `jetway certs` and by the TLS tests.
//!
//! Keys are ECDSA P-256. Serial numbers are random, so a regenerated certificate is always
//! distinguishable from the one it replaces (the reload tests rely on that).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::CertificateDer;

/// Why certificates could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("can't generate certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("invalid host {host:?}: {source}")]
    Host { host: String, source: rcgen::Error },
    #[error("can't write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("invalid client name {0:?}: use letters, digits, '.', '_' or '-'")]
    ClientName(String),
}

/// When a certificate is valid.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// From an hour ago (tolerates clock skew between machines) for `days` days.
    pub fn days(days: u32) -> Self {
        let now = SystemTime::now();
        Validity {
            not_before: now - Duration::from_secs(3600),
            not_after: now + Duration::from_secs(u64::from(days) * 86_400),
        }
    }

    /// Valid for a day that ended yesterday: for testing that expired certificates fail.
    pub fn expired() -> Self {
        let now = SystemTime::now();
        Validity {
            not_before: now - Duration::from_secs(2 * 86_400),
            not_after: now - Duration::from_secs(86_400),
        }
    }

    fn apply(&self, params: &mut CertificateParams) {
        params.not_before = self.not_before.into();
        params.not_after = self.not_after.into();
    }
}

/// A certificate and its private key.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: CertificateDer<'static>,
}

/// A certificate authority that can sign server and client certificates.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    /// The CA's own certificate and key.
    pub issued: Issued,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").field("issued", &self.issued).finish_non_exhaustive()
    }
}

impl Authority {
    /// A new self-signed CA named `common_name`.
    pub fn new(common_name: &str, validity: Validity) -> Result<Self, CertsError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(random_serial());
        validity.apply(&mut params);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let issued =
            Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem(), cert_der: cert.der().clone() };
        Ok(Authority { issuer: Issuer::new(params, key), issued })
    }

    /// A server certificate for `hosts` (DNS names or IP addresses; the first is the CN).
    pub fn server(&self, hosts: &[String], validity: Validity) -> Result<Issued, CertsError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(hosts.first().map_or("localhost", String::as_str));
        params.subject_alt_names = hosts.iter().map(|h| san(h)).collect::<Result<_, _>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        validity.apply(&mut params);
        self.sign(params)
    }

    /// A client certificate whose subject is `CN=<name>,O=Jetway Development`.
    pub fn client(&self, client_name: &str, validity: Validity) -> Result<Issued, CertsError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(client_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        validity.apply(&mut params);
        self.sign(params)
    }

    /// Signs arbitrary parameters (tests use it for unusual subjects and SANs). A random
    /// serial is set when the parameters have none.
    pub fn sign(&self, mut params: CertificateParams) -> Result<Issued, CertsError> {
        if params.serial_number.is_none() {
            params.serial_number = Some(random_serial());
        }
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem(), cert_der: cert.der().clone() })
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Jetway Development");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn san(host: &str) -> Result<SanType, CertsError> {
    if let Ok(ip) = host.parse() {
        return Ok(SanType::IpAddress(ip));
    }
    let dns = host.try_into().map_err(|source| CertsError::Host { host: host.to_string(), source })?;
    Ok(SanType::DnsName(dns))
}

/// 16 random bytes, positive as a DER integer and without a leading zero byte.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// Paths of the files [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct Generated {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// `(name, certificate, key)` per client.
    pub clients: Vec<(String, PathBuf, PathBuf)>,
}

/// Writes a fresh CA (`ca.pem`, `ca-key.pem`), a server certificate for `hosts`
/// (`server-cert.pem`, `server-key.pem`) and one certificate per client
/// (`client-<name>-cert.pem`, `client-<name>-key.pem`) into `out`, creating it if needed.
pub fn generate(
    out: &Path,
    hosts: &[String],
    clients: &[String],
    days: u32,
) -> Result<Generated, CertsError> {
    for client in clients {
        let valid = !client.is_empty()
            && client.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid {
            return Err(CertsError::ClientName(client.clone()));
        }
    }
    std::fs::create_dir_all(out).map_err(|source| CertsError::Write { path: out.to_path_buf(), source })?;
    let validity = Validity::days(days);
    let ca = Authority::new("Jetway Development CA", validity)?;
    let server = ca.server(hosts, validity)?;
    let write = |file: &str, text: &str| -> Result<PathBuf, CertsError> {
        let path = out.join(file);
        std::fs::write(&path, text).map_err(|source| CertsError::Write { path: path.clone(), source })?;
        Ok(path)
    };
    let mut generated = Generated {
        ca_cert: write("ca.pem", &ca.issued.cert_pem)?,
        ca_key: write("ca-key.pem", &ca.issued.key_pem)?,
        server_cert: write("server-cert.pem", &server.cert_pem)?,
        server_key: write("server-key.pem", &server.key_pem)?,
        clients: Vec::new(),
    };
    for client in clients {
        let issued = ca.client(client, validity)?;
        let cert = write(&format!("client-{client}-cert.pem"), &issued.cert_pem)?;
        let key = write(&format!("client-{client}-key.pem"), &issued.key_pem)?;
        generated.clients.push((client.clone(), cert, key));
    }
    Ok(generated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_writes_a_ca_a_server_and_each_client() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let hosts = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
        let clients = vec!["alice".to_string(), "bob".to_string()];
        let generated = generate(dir.path(), &hosts, &clients, 30).unwrap_or_else(|e| panic!("{e}"));
        for path in [&generated.ca_cert, &generated.ca_key, &generated.server_cert, &generated.server_key] {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            assert!(text.starts_with("-----BEGIN "), "{}: {text}", path.display());
        }
        assert_eq!(generated.clients.len(), 2);
        assert!(generated.clients.iter().all(|(_, cert, key)| cert.exists() && key.exists()));
    }

    #[test]
    fn client_names_that_are_not_file_name_safe_are_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let e = generate(dir.path(), &["localhost".into()], &["../evil".into()], 1);
        assert!(matches!(e, Err(CertsError::ClientName(_))));
    }

    #[test]
    fn certificates_get_distinct_serials() {
        let ca = Authority::new("t", Validity::days(1)).unwrap_or_else(|e| panic!("{e}"));
        let a = ca.client("a", Validity::days(1)).unwrap_or_else(|e| panic!("{e}"));
        let b = ca.client("a", Validity::days(1)).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(a.cert_der, b.cert_der);
    }
}
