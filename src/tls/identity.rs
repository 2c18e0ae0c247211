//! The names a client certificate carries, read the way nats-server's `verify_and_map`
//! reads them, so a user configured for nats-server matches the same certificate here.
//!
//! nats-server tries, in order: SAN e-mail addresses, SAN DNS names, SAN URIs, then the
//! subject. The subject string is Go's `pkix.Name.ToRDNSequence().String()`: the well-known
//! attributes in a fixed order (C, ST, L, STREET, POSTALCODE, O, OU, CN, SERIALNUMBER),
//! printed last-first (RFC 2253 style), values of one type joined by `+` in one RDN, other
//! attribute types (domain components among them) left out. When the subject has domain
//! components, nats-server also tries that string with `,DC=…` appended.

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// Why the names could not be read (the certificate was verified, so this is rare).
#[derive(Debug, thiserror::Error)]
#[error("can't parse the client certificate: {0}")]
pub struct IdentityError(String);

/// The names in a client certificate, in nats-server's matching order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertIdentities {
    /// The subject, e.g. `CN=alice,OU=eng,O=Acme,C=US`.
    pub subject: String,
    /// `subject` followed by the domain components (`…,DC=example,DC=com`), when there are any.
    pub subject_with_dcs: Option<String>,
    pub emails: Vec<String>,
    pub dns_names: Vec<String>,
    pub uris: Vec<String>,
}

/// Go's names for the attributes `ToRDNSequence` keeps, in the order it emits them.
const SUBJECT_ORDER: [(&str, &str); 9] = [
    ("2.5.4.6", "C"),
    ("2.5.4.8", "ST"),
    ("2.5.4.7", "L"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.17", "POSTALCODE"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.3", "CN"),
    ("2.5.4.5", "SERIALNUMBER"),
];
/// Go keeps one value of these (the last), many of the others.
const SINGLE_VALUED: [&str; 2] = ["2.5.4.3", "2.5.4.5"];
const DOMAIN_COMPONENT: &str = "0.9.2342.19200300.100.1.25";

impl CertIdentities {
    /// Reads the names from a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, IdentityError> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| IdentityError(e.to_string()))?;
        let mut ids = CertIdentities::default();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::RFC822Name(email) => ids.emails.push(email.to_string()),
                    GeneralName::DNSName(dns) => ids.dns_names.push(dns.to_string()),
                    GeneralName::URI(uri) => ids.uris.push(uri.to_string()),
                    _ => {}
                }
            }
        }

        let mut values: Vec<(String, String)> = Vec::new();
        for attr in cert.subject().iter_attributes() {
            if let Ok(value) = attr.as_str() {
                values.push((attr.attr_type().to_id_string(), value.to_string()));
            }
        }
        let mut rdns: Vec<String> = Vec::new();
        for (oid, short) in SUBJECT_ORDER {
            let mut of_type: Vec<&str> = values
                .iter()
                .filter(|(o, _)| o == oid)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
                .collect();
            if SINGLE_VALUED.contains(&oid) && of_type.len() > 1 {
                of_type.drain(..of_type.len() - 1);
            }
            if !of_type.is_empty() {
                let rdn: Vec<String> = of_type.iter().map(|v| format!("{short}={}", escape(v))).collect();
                rdns.push(rdn.join("+"));
            }
        }
        rdns.reverse();
        ids.subject = rdns.join(",");
        let dcs: Vec<String> = values
            .iter()
            .filter(|(o, _)| o == DOMAIN_COMPONENT)
            .map(|(_, v)| format!("DC={}", escape(v)))
            .collect();
        if !dcs.is_empty() {
            ids.subject_with_dcs = Some(format!("{},{}", ids.subject, dcs.join(",")));
        }
        Ok(ids)
    }

    /// Every name in the order nats-server tries them against its users.
    pub fn candidates(&self) -> impl Iterator<Item = &str> {
        self.emails
            .iter()
            .chain(&self.dns_names)
            .chain(&self.uris)
            .map(String::as_str)
            .chain(self.subject_with_dcs.as_deref())
            .chain(Some(self.subject.as_str()).filter(|s| !s.is_empty()))
    }
}

/// RFC 2253 escaping as Go does it: `,+"\<>;` anywhere, a space at either end, `#` first.
fn escape(value: &str) -> String {
    let last = value.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let special = match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => true,
            ' ' => i == 0 || i == last,
            '#' => i == 0,
            _ => false,
        };
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DistinguishedName, DnType, SanType};

    use super::*;
    use crate::certs::{Authority, Validity};

    fn issue(dn: DistinguishedName, sans: Vec<SanType>) -> CertIdentities {
        let ca = Authority::new("test CA", Validity::days(1)).unwrap_or_else(|e| panic!("{e}"));
        let mut params = CertificateParams::default();
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        let issued = ca.sign(params).unwrap_or_else(|e| panic!("{e}"));
        CertIdentities::from_der(&issued.cert_der).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ia5(text: &str) -> rcgen::string::Ia5String {
        text.try_into().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn subject_is_printed_last_first_in_gos_attribute_order() {
        let mut dn = DistinguishedName::new();
        // Written in an unusual order on purpose: Go reorders by attribute type.
        dn.push(DnType::CommonName, "alice");
        dn.push(DnType::CountryName, "US");
        dn.push(DnType::OrganizationalUnitName, "eng");
        dn.push(DnType::OrganizationName, "Acme");
        dn.push(DnType::LocalityName, "Springfield");
        let ids = issue(dn, vec![]);
        assert_eq!(ids.subject, "CN=alice,OU=eng,O=Acme,L=Springfield,C=US");
        assert_eq!(ids.subject_with_dcs, None);
        assert_eq!(ids.candidates().collect::<Vec<_>>(), vec!["CN=alice,OU=eng,O=Acme,L=Springfield,C=US"]);
    }

    #[test]
    fn sans_come_before_the_subject_emails_first() {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "svc");
        let ids = issue(
            dn,
            vec![
                SanType::DnsName(ia5("svc.example.com")),
                SanType::URI(ia5("spiffe://example.com/svc")),
                SanType::Rfc822Name(ia5("svc@example.com")),
            ],
        );
        assert_eq!(ids.emails, vec!["svc@example.com"]);
        assert_eq!(ids.dns_names, vec!["svc.example.com"]);
        assert_eq!(ids.uris, vec!["spiffe://example.com/svc"]);
        assert_eq!(
            ids.candidates().collect::<Vec<_>>(),
            vec!["svc@example.com", "svc.example.com", "spiffe://example.com/svc", "CN=svc"]
        );
    }

    #[test]
    fn domain_components_give_a_second_subject_form() {
        let mut dn = DistinguishedName::new();
        // rcgen keeps one value per attribute type, so one DC here.
        dn.push(DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 25]), "example");
        dn.push(DnType::CommonName, "bob");
        let ids = issue(dn, vec![]);
        assert_eq!(ids.subject, "CN=bob");
        assert_eq!(ids.subject_with_dcs.as_deref(), Some("CN=bob,DC=example"));
    }

    #[test]
    fn special_characters_are_escaped_like_go() {
        assert_eq!(escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape(" lead and trail "), "\\ lead and trail\\ ");
        assert_eq!(escape("#1 and #2"), "\\#1 and #2");
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(CertIdentities::from_der(b"\x30\x03junk").is_err());
        assert!(CertIdentities::from_der(&[]).is_err());
    }
}
