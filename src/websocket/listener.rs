//! Accepts WebSocket connections: TLS when `websocket.tls` is set (`wss://`), then the HTTP
//! upgrade within `handshake_timeout`, then the NATS or MQTT connection task over the
//! WebSocket stream. Each step runs in the connection's own task; a bad request gets an
//! HTTP error and closes only its own connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_websockets::{CloseCode, Limits, Message, ServerBuilder};

use super::handshake::{self, Endpoint, HandshakeError, Rules, Upgrade};
use super::origin::OriginPolicy;
use crate::account::users::ConnectionKind;
use crate::mqtt::MqttServer;
use crate::nats::client::{ClientShared, CloseReason};
use crate::nats::connection::Greeting;
use crate::nats::listener::accept_each;
use crate::server::{bind, display_addr, Core, StartError};
use crate::tls::{NegotiatedTls, SecureError, Secured};

/// Go's answer to an HTTP request on a TLS port, which browsers and tools recognise.
const PLAIN_ON_TLS: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";
/// How long an error response may take to write before the socket is dropped anyway.
const ERROR_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// What every connection of the listener shares.
struct Listener {
    core: Arc<Core>,
    /// The MQTT gateway, when MQTT is enabled (`/mqtt` is refused otherwise).
    mqtt: Option<Arc<MqttServer>>,
    origins: OriginPolicy,
}

/// Binds the listener when `websocket.port` is set and spawns its accept loop; returns the
/// bound address.
pub async fn start(
    core: &Arc<Core>,
    mqtt: Option<Arc<MqttServer>>,
) -> Result<Option<SocketAddr>, StartError> {
    let settings = &core.config.websocket;
    if settings.port == 0 {
        return Ok(None);
    }
    let origins = OriginPolicy::new(settings.same_origin, &settings.allowed_origins)
        .map_err(|e| StartError::Config(format!("websocket.allowed_origins: {e}")))?;
    let listener = bind(&settings.host, settings.port, 0).await?;
    let addr =
        listener.local_addr().map_err(|source| StartError::Listen { addr: settings.host.clone(), source })?;
    let _ = core.websocket_addr.set(addr);
    let scheme = if core.websocket_tls.is_some() { "wss" } else { "ws" };
    tracing::info!("Listening for websocket clients on {scheme}://{}", display_addr(addr));
    if core.websocket_tls.is_none() {
        tracing::warn!("Websocket not configured with TLS. DO NOT USE IN PRODUCTION!");
    }
    if settings.compression {
        tracing::warn!("websocket compression (permessage-deflate) is not supported, ignored");
    }
    let shared = Arc::new(Listener { core: core.clone(), mqtt, origins });
    tokio::spawn(accept_loop(shared, listener));
    Ok(Some(addr))
}

async fn accept_loop(listener: Arc<Listener>, tcp: TcpListener) {
    let core = listener.core.clone();
    accept_each(&core, tcp, "websocket client", |stream, addr| {
        core.tasks.spawn(serve(listener.clone(), stream, addr));
    })
    .await;
}

/// TLS (for `wss://`), then the upgrade and the connection.
async fn serve(listener: Arc<Listener>, tcp: TcpStream, addr: SocketAddr) {
    let Some(tls) = &listener.core.websocket_tls else {
        return upgrade_and_serve(&listener, tcp, addr, None).await;
    };
    match crate::tls::secure(tls, tcp, false).await {
        Ok(Secured::Tls(stream, negotiated)) => {
            upgrade_and_serve(&listener, *stream, addr, Some(negotiated)).await
        }
        // Not produced without `allow_plain`; nothing to serve.
        Ok(Secured::Plain(_)) => {}
        Err(SecureError::PlainText(mut tcp)) => {
            tracing::error!("{} - websocket TLS handshake error: client sent plain text", display_addr(addr));
            let _ = tokio::time::timeout(ERROR_WRITE_TIMEOUT, tcp.write_all(PLAIN_ON_TLS)).await;
        }
        Err(SecureError::Closed) => {}
        Err(e) => tracing::error!("{} - websocket TLS handshake error: {e}", display_addr(addr)),
    }
}

async fn upgrade_and_serve<S>(
    listener: &Listener,
    mut stream: S,
    addr: SocketAddr,
    tls: Option<NegotiatedTls>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let core = &listener.core;
    let rules =
        Rules { mqtt_enabled: listener.mqtt.is_some(), tls: tls.is_some(), origins: &listener.origins };
    let timeout = core.config.websocket.handshake_timeout;
    let upgrade = match tokio::time::timeout(timeout, read_upgrade(&mut stream, rules)).await {
        Ok(Ok(Some(upgrade))) => upgrade,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::error!("{} - websocket handshake error: {e}", display_addr(addr));
            let (status, reason) = e.status();
            let response = handshake::error_response(status, reason);
            let _ = tokio::time::timeout(ERROR_WRITE_TIMEOUT, async {
                stream.write_all(&response).await?;
                stream.shutdown().await
            })
            .await;
            return;
        }
        Err(_) => {
            tracing::debug!("{} - websocket handshake timeout after {timeout:?}", display_addr(addr));
            return;
        }
    };
    let accepted = handshake::accept_response(&upgrade);
    if !matches!(tokio::time::timeout(timeout, stream.write_all(&accepted)).await, Ok(Ok(()))) {
        return;
    }
    let kind = match upgrade.endpoint {
        Endpoint::Nats => ConnectionKind::Websocket,
        Endpoint::Mqtt => ConnectionKind::MqttWebsocket,
    };
    let client = core.new_client(addr, kind);
    if let Some(tls) = tls {
        client.set_tls(tls);
    }
    let limits = Limits::default().max_payload_len(Some(super::max_message_len(core.config.max_payload)));
    let socket = ServerBuilder::new().limits(limits).serve(stream);
    let (reader, mut writer) = super::stream::split(socket, close_frame(client.clone()));
    if !core.register(&client) {
        client.close(CloseReason::MaxConnectionsExceeded);
        let _ = tokio::time::timeout(ERROR_WRITE_TIMEOUT, writer.shutdown()).await;
        return;
    }
    tracing::debug!(
        cid = client.id,
        %addr,
        kind = ?kind,
        user_agent = upgrade.user_agent.as_deref().unwrap_or(""),
        "websocket client connection created"
    );
    match (&upgrade.endpoint, &listener.mqtt) {
        (Endpoint::Mqtt, Some(mqtt)) => {
            crate::mqtt::connection::serve(mqtt.clone(), client, reader, writer).await
        }
        _ => crate::nats::connection::serve(core.clone(), client, reader, writer, Greeting::SendInfo).await,
    }
}

/// Reads until the upgrade request is complete and checks it. `Ok(None)`: the client closed
/// (or the socket failed) before sending a whole request.
async fn read_upgrade<S: AsyncRead + Unpin>(
    stream: &mut S,
    rules: Rules<'_>,
) -> Result<Option<Upgrade>, HandshakeError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => n,
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if let Some(upgrade) = handshake::parse(&buf, rules)? {
            return Ok(Some(upgrade));
        }
    }
}

/// The close frame sent when the server ends the connection, with a status for its reason
/// (nats-server's mapping) and the reason as text.
fn close_frame(client: Arc<ClientShared>) -> super::stream::CloseFrame {
    Box::new(move || {
        let reason = client.close_reason();
        let code = match reason {
            None | Some(CloseReason::ClientClosed) => CloseCode::NORMAL_CLOSURE,
            Some(
                CloseReason::AuthenticationTimeout
                | CloseReason::AuthenticationViolation
                | CloseReason::SlowConsumerPendingBytes
                | CloseReason::SlowConsumerWriteDeadline
                | CloseReason::MaxConnectionsExceeded
                | CloseReason::MaxControlLineExceeded,
            ) => CloseCode::POLICY_VIOLATION,
            Some(CloseReason::ProtocolViolation) => CloseCode::PROTOCOL_ERROR,
            Some(CloseReason::MaxPayloadExceeded) => CloseCode::MESSAGE_TOO_BIG,
            Some(
                CloseReason::WriteError
                | CloseReason::ReadError
                | CloseReason::StaleConnection
                | CloseReason::ServerShutdown
                | CloseReason::DuplicateClientId
                | CloseReason::KeepAliveTimeout,
            ) => CloseCode::GOING_AWAY,
            Some(CloseReason::TlsHandshakeError) => CloseCode::INTERNAL_SERVER_ERROR,
        };
        let mut text = reason.map(|r| crate::monitor::reason_text(&r)).unwrap_or_default();
        // A close frame's reason is at most 123 bytes (tokio-websockets panics past that).
        while text.len() > 123 {
            text.pop();
        }
        Message::close(Some(code), &text)
    })
}
