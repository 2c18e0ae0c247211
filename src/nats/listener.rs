//! Accepts NATS client connections, in plain TCP or TLS.
//!
//! With TLS (nats-server's order): INFO goes out in plain text, the client answers with a
//! ClientHello, and the handshake must finish within `tls.timeout`; then the connection runs
//! as usual over the encrypted stream. With `handshake_first` the handshake comes first and
//! INFO is the first encrypted message. A client that sends plain text to a TLS-only port gets
//! `-ERR 'Secure Connection - TLS Required'` and is closed; with `allow_non_tls` it is served
//! in plain text. A failed handshake affects only its own connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use jetway_protocols::nats::encode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::client::{ClientShared, CloseReason};
use super::connection::{serve, Greeting};
use super::direct::SharedTcpWriter;
use crate::account::users::ConnectionKind;
use crate::server::{display_addr, Core};
use crate::tls::{ReloadableAcceptor, Sniffed};

/// Sent to a plain-text client on a TLS-only port (nats-server's text).
const TLS_REQUIRED: &str = "Secure Connection - TLS Required";

/// Accepts until the core's listeners are stopped (shutdown or lame-duck mode).
pub async fn accept_loop(core: Arc<Core>, listener: TcpListener) {
    accept_each(&core.clone(), listener, "client", |stream, addr| {
        let client = core.new_client(addr, ConnectionKind::Standard);
        let id = client.id;
        if !core.register(&client) {
            // Over max_connections: INFO then the error, as nats-server does, then close.
            let mut buf = info(&core, &client);
            encode::err(&mut buf, "maximum connections exceeded");
            let mut stream = stream;
            tokio::spawn(async move {
                let _ = stream.write_all(&buf).await;
                let _ = stream.shutdown().await;
            });
            client.close(CloseReason::MaxConnectionsExceeded);
            return;
        }
        tracing::debug!(cid = id, %addr, "client connection created");
        match &core.tls {
            None => {
                let (reader, writer) = stream.into_split();
                let writer = SharedTcpWriter(Arc::new(writer));
                client.set_direct_writer(writer.clone());
                core.tasks.spawn(serve(core.clone(), client, reader, writer, Greeting::SendInfo));
            }
            // The handshake runs in the connection's own task, never in the accept loop.
            Some(tls) => {
                core.tasks.spawn(serve_tls(core.clone(), client, stream, tls.clone()));
            }
        }
    })
    .await;
}

/// Accepts connections until the core's listeners are stopped, handing each (with
/// `TCP_NODELAY` set) to `handle`. Shared by the NATS, MQTT and WebSocket listeners.
pub(crate) async fn accept_each(
    core: &Core,
    listener: TcpListener,
    what: &str,
    mut handle: impl FnMut(TcpStream, SocketAddr),
) {
    let stop = core.stop_accepting.clone();
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::error!("error accepting {what} connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let _ = stream.set_nodelay(true);
        handle(stream, addr);
    }
}

fn info(core: &Core, client: &ClientShared) -> BytesMut {
    let mut buf = BytesMut::new();
    encode::info(&mut buf, &core.client_info_for(client));
    buf
}

/// Greets, sniffs and handshakes one client of a TLS port, then serves it.
async fn serve_tls(
    core: Arc<Core>,
    client: Arc<ClientShared>,
    mut tcp: TcpStream,
    acceptor: Arc<ReloadableAcceptor>,
) {
    let settings = acceptor.settings();
    let first = settings.handshake_first;
    let deadline = tokio::time::Instant::now() + settings.timeout;
    let remaining = || deadline.saturating_duration_since(tokio::time::Instant::now());
    let where_ = Peer { id: client.id, addr: client.addr };

    if !first {
        let greeting = info(&core, &client);
        if !matches!(tokio::time::timeout(remaining(), tcp.write_all(&greeting)).await, Ok(Ok(()))) {
            return abandon(&core, &client, CloseReason::WriteError);
        }
    }
    match crate::tls::sniff(&tcp, remaining()).await {
        Sniffed::Tls => {}
        // Silence counts as plain text too (nats-server's rule): a plain client may wait for
        // its own reasons before sending CONNECT.
        Sniffed::Plain | Sniffed::TimedOut if core.config.allow_non_tls && !first => {
            tracing::debug!(cid = client.id, "client chose plain text (allow_non_tls)");
            let (reader, writer) = tcp.into_split();
            let writer = SharedTcpWriter(Arc::new(writer));
            client.set_direct_writer(writer.clone());
            return serve(core, client, reader, writer, Greeting::InfoAlreadySent).await;
        }
        Sniffed::Plain => {
            tracing::error!("{where_} - TLS handshake error: client sent plain text, not a TLS ClientHello");
            return refuse_plain(&core, &client, tcp).await;
        }
        // A client waiting for a plain INFO that never comes (handshake_first) ends up here.
        Sniffed::TimedOut => {
            tracing::debug!("{where_} - TLS handshake timeout");
            return refuse_plain(&core, &client, tcp).await;
        }
        Sniffed::Closed => return abandon(&core, &client, CloseReason::ClientClosed),
    }
    match crate::tls::accept(&acceptor, tcp, remaining()).await {
        Ok((stream, negotiated)) => {
            client.set_tls(negotiated);
            let (reader, writer) = tokio::io::split(stream);
            let greeting = if first { Greeting::SendInfo } else { Greeting::InfoAlreadySent };
            serve(core, client, reader, writer, greeting).await;
        }
        Err(e) => {
            tracing::error!("{where_} - TLS handshake error: {e}");
            abandon(&core, &client, CloseReason::TlsHandshakeError);
        }
    }
}

/// A client address and id, printed like nats-server's connection log prefix.
pub(crate) struct Peer {
    pub id: u64,
    pub addr: SocketAddr,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} - cid:{}", display_addr(self.addr), self.id)
    }
}

async fn refuse_plain(core: &Core, client: &ClientShared, mut tcp: TcpStream) {
    let mut buf = BytesMut::new();
    encode::err(&mut buf, TLS_REQUIRED);
    let write = async {
        tcp.write_all(&buf).await?;
        tcp.shutdown().await?;
        // Read what the client sent before closing: closing with unread input makes the
        // kernel send a reset, which can destroy the -ERR before the client reads it.
        let mut sink = [0u8; 1024];
        while tcp.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
    abandon(core, client, CloseReason::TlsHandshakeError);
}

/// Ends a connection that never reached the protocol loop.
pub(crate) fn abandon(core: &Core, client: &ClientShared, reason: CloseReason) {
    client.close(reason);
    core.unregister(client);
}
