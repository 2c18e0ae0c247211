//! TLS for every listener: building rustls server configs from PEM files, accepting with a
//! deadline, reading client identities, and reloading certificates without a restart.
//!
//! - [`config`]: PEM files -> `rustls::ServerConfig` (versions, client verification).
//! - [`acceptor`]: the [`ReloadableAcceptor`] listeners share, [`sniff`] (is the first byte
//!   a TLS record?), [`accept`] (handshake within a timeout, returning what was negotiated)
//!   and [`secure`] (both, for the MQTT and WebSocket ports, which send nothing first).
//! - [`identity`]: subject DN and SANs of a verified client certificate, as nats-server
//!   prints them, for `verify_and_map`.
//! - [`reload`]: reloading on SIGHUP and when the files change on disk.
//!
//! A listener that wants TLS holds an `Arc<ReloadableAcceptor>`, sniffs the first byte if it
//! must also accept plain text, and calls [`accept`] on the socket. Reloading swaps the
//! config used by later handshakes; established connections keep the one they started with.

pub mod acceptor;
pub mod config;
pub mod identity;
pub mod reload;

pub use acceptor::{
    accept, secure, sniff, NegotiatedTls, ReloadableAcceptor, SecureError, Secured, Sniffed, TlsAcceptError,
};
pub use config::TlsError;
pub use identity::CertIdentities;

#[cfg(test)]
pub(crate) mod testing {
    use std::path::Path;

    /// A CA, a server certificate for localhost and one client, `alice`, written into `dir`.
    pub fn write_pki(dir: &Path) -> crate::certs::Generated {
        crate::certs::generate(dir, &["localhost".into(), "127.0.0.1".into()], &["alice".into()], 1)
            .unwrap_or_else(|e| panic!("test certificates: {e}"))
    }
}
