//! HTTPS monitoring (`https_port`): the same endpoints behind TLS, with the top-level `tls {}`
//! block's certificate and without asking clients for one (nats-server's behaviour: its
//! monitoring listener uses the client TLS config with client authentication turned off).
//!
//! axum serves anything implementing its `Listener`; [`TlsListener`] is one whose accepted
//! connections have finished their handshake. Handshakes run in tasks of their own (at most
//! `MAX_HANDSHAKES` at a time, each within the `tls.timeout`), so a client that opens a
//! socket and says nothing holds up no one else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::config::Tls;
use crate::tls::{ReloadableAcceptor, TlsError};

/// Handshakes in progress at once; more connections wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 64;
/// Finished handshakes waiting for the HTTP server to take them.
const READY_QUEUE: usize = 64;
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// The monitoring port's TLS: the client port's settings without client certificates.
pub fn acceptor(client_tls: &Tls) -> Result<Arc<ReloadableAcceptor>, TlsError> {
    let settings = Tls { verify: false, verify_and_map: false, handshake_first: false, ..client_tls.clone() };
    Ok(Arc::new(ReloadableAcceptor::new(&settings)?))
}

/// TLS connections ready for HTTP.
pub struct TlsListener {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Accepts on `tcp` and runs the handshakes until `stop`.
    pub fn spawn(
        tcp: TcpListener,
        acceptor: Arc<ReloadableAcceptor>,
        stop: CancellationToken,
    ) -> std::io::Result<TlsListener> {
        let local_addr = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        tokio::spawn(accept_loop(tcp, acceptor, tx, stop));
        Ok(TlsListener { local_addr, ready })
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: Arc<ReloadableAcceptor>,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    stop: CancellationToken,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let timeout = acceptor.settings().timeout;
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => return,
            permit = handshakes.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let (socket, addr) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::debug!("monitoring: accept failed: {e}");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
        };
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match crate::tls::accept(&acceptor, socket, timeout).await {
                // A full queue waits; a closed one (shutdown) drops the connection.
                Ok((stream, _)) => drop(ready.send((stream, addr)).await),
                Err(e) => tracing::debug!(%addr, "monitoring: TLS handshake failed: {e}"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // Stopped: nothing will come any more, and the server is shutting down.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}
