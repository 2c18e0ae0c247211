//! Accepting TLS connections for any listener: a reloadable acceptor, a first-byte sniff for
//! ports that take both plain text and TLS, and a handshake bounded by a timeout.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::config::{self, TlsError};
use super::identity::CertIdentities;
use super::reload::FileStamps;
use crate::config::Tls;

/// The content type of a TLS handshake record: what a ClientHello starts with.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The TLS settings of one listener and the config its next handshake will use.
pub struct ReloadableAcceptor {
    settings: Tls,
    /// Swapped whole on reload; a handshake clones the `Arc` and never holds the lock.
    current: RwLock<Arc<ServerConfig>>,
    /// What the files looked like when last loaded, so the watcher reloads only on change.
    pub(super) stamps: Mutex<FileStamps>,
}

impl std::fmt::Debug for ReloadableAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadableAcceptor").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl ReloadableAcceptor {
    /// Reads the files; any problem is an error naming the file.
    pub fn new(settings: &Tls) -> Result<Self, TlsError> {
        let stamps = FileStamps::read(&config::files(settings));
        let current = config::build(settings)?;
        Ok(ReloadableAcceptor {
            settings: settings.clone(),
            current: RwLock::new(current),
            stamps: Mutex::new(stamps),
        })
    }

    pub fn settings(&self) -> &Tls {
        &self.settings
    }

    /// The config new handshakes use.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current.read().clone()
    }

    pub(super) fn replace(&self, config: Arc<ServerConfig>) {
        *self.current.write() = config;
    }
}

/// What the first byte a client sent says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// A TLS handshake record: go on with [`accept`].
    Tls,
    /// Anything else: a plain-text client.
    Plain,
    /// The client closed (or the socket failed) before sending anything.
    Closed,
    /// Nothing arrived within the timeout.
    TimedOut,
}

/// Looks at (without consuming) the first byte the client sends.
pub async fn sniff(tcp: &TcpStream, timeout: Duration) -> Sniffed {
    let mut first = [0u8; 1];
    match tokio::time::timeout(timeout, tcp.peek(&mut first)).await {
        Err(_) => Sniffed::TimedOut,
        Ok(Ok(0)) | Ok(Err(_)) => Sniffed::Closed,
        Ok(Ok(_)) if first[0] == TLS_HANDSHAKE_RECORD => Sniffed::Tls,
        Ok(Ok(_)) => Sniffed::Plain,
    }
}

/// Why a handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum TlsAcceptError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// rustls' reason (bad or untrusted certificate, not TLS, no shared version, …).
    #[error("{0}")]
    Handshake(#[from] std::io::Error),
}

/// What the handshake settled, for monitoring and authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedTls {
    /// `"1.2"` or `"1.3"`, as nats-server reports it.
    pub version: String,
    /// IANA name with Go's spelling, e.g. `TLS_AES_128_GCM_SHA256`.
    pub cipher_suite: String,
    /// Names from the verified client certificate, when one was presented.
    pub peer: Option<CertIdentities>,
}

/// Runs the server side of a handshake on `stream` within `timeout`, using the acceptor's
/// current config.
pub async fn accept<S>(
    acceptor: &ReloadableAcceptor,
    stream: S,
    timeout: Duration,
) -> Result<(TlsStream<S>, NegotiatedTls), TlsAcceptError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = tokio_rustls::TlsAcceptor::from(acceptor.server_config()).accept(stream);
    let stream =
        tokio::time::timeout(timeout, handshake).await.map_err(|_| TlsAcceptError::Timeout(timeout))??;
    let negotiated = negotiated(stream.get_ref().1);
    Ok((stream, negotiated))
}

/// A connection on a TLS port of a protocol that starts with the client's bytes (MQTT,
/// WebSocket): there is nothing to send before the handshake.
pub enum Secured {
    Tls(Box<TlsStream<TcpStream>>, NegotiatedTls),
    /// A plain-text client, on a port that also takes those.
    Plain(TcpStream),
}

/// Why [`secure`] did not produce a connection.
#[derive(Debug, thiserror::Error)]
pub enum SecureError {
    /// Returned with the socket, so the listener can answer in its protocol.
    #[error("client sent plain text, not a TLS ClientHello")]
    PlainText(TcpStream),
    #[error("client closed before the TLS handshake")]
    Closed,
    #[error("no TLS ClientHello within {0:?}")]
    TimedOut(Duration),
    #[error(transparent)]
    Handshake(#[from] TlsAcceptError),
}

/// Sniffs the first byte and runs the handshake, all within the acceptor's `timeout`. With
/// `allow_plain`, a client that sends anything but a ClientHello first (or nothing within
/// the timeout) is handed back as plain text, as nats-server does with `allow_non_tls`.
pub async fn secure(
    acceptor: &ReloadableAcceptor,
    tcp: TcpStream,
    allow_plain: bool,
) -> Result<Secured, SecureError> {
    let timeout = acceptor.settings().timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    match sniff(&tcp, timeout).await {
        Sniffed::Tls => {}
        Sniffed::Plain | Sniffed::TimedOut if allow_plain => return Ok(Secured::Plain(tcp)),
        Sniffed::Plain => return Err(SecureError::PlainText(tcp)),
        Sniffed::TimedOut => return Err(SecureError::TimedOut(timeout)),
        Sniffed::Closed => return Err(SecureError::Closed),
    }
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    let (stream, negotiated) = accept(acceptor, tcp, remaining).await?;
    Ok(Secured::Tls(Box::new(stream), negotiated))
}

fn negotiated(conn: &rustls::ServerConnection) -> NegotiatedTls {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_2) => "1.2".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_3) => "1.3".to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    let cipher_suite = conn
        .negotiated_cipher_suite()
        .map(|s| s.suite())
        .map(|s| match s.as_str() {
            // rustls prefixes TLS 1.3 suites with TLS13_; Go (and the IANA registry) do not.
            Some(name) => name.replacen("TLS13_", "TLS_", 1),
            None => format!("{s:?}"),
        })
        .unwrap_or_default();
    let peer = conn.peer_certificates().and_then(|chain| chain.first()).and_then(|leaf| {
        CertIdentities::from_der(leaf)
            .inspect_err(|e| tracing::debug!("can't read the client certificate's names: {e}"))
            .ok()
    });
    NegotiatedTls { version, cipher_suite, peer }
}
