//! Accepts MQTT client connections, in plain TCP or TLS (`mqtt.tls`).
//!
//! With TLS the client's first bytes must be a ClientHello, and the handshake must finish
//! within `mqtt.tls.timeout`. A plain-text client is closed with a log line saying why (MQTT
//! has no packet to tell it before CONNECT), unless the top-level `allow_non_tls` lets it in,
//! as nats-server does. A failed handshake affects only its own connection.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};

use super::MqttServer;
use crate::account::users::ConnectionKind;
use crate::nats::client::{ClientShared, CloseReason};
use crate::nats::listener::{abandon, accept_each, Peer};
use crate::tls::{ReloadableAcceptor, SecureError, Secured};

/// Accepts until the core's listeners are stopped (shutdown or lame-duck mode).
pub async fn accept_loop(mqtt: Arc<MqttServer>, listener: TcpListener) {
    let core = mqtt.core.clone();
    accept_each(&core, listener, "MQTT client", |stream, addr| {
        let client = core.new_client(addr, ConnectionKind::Mqtt);
        if !core.register(&client) {
            // MQTT has no way to say why before CONNECT: close, as nats-server does.
            client.close(CloseReason::MaxConnectionsExceeded);
            return;
        }
        tracing::debug!(cid = client.id, %addr, "MQTT client connection created");
        match &core.mqtt_tls {
            None => {
                let (reader, writer) = stream.into_split();
                core.tasks.spawn(super::connection::serve(mqtt.clone(), client, reader, writer));
            }
            // The handshake runs in the connection's own task, never in the accept loop.
            Some(tls) => {
                core.tasks.spawn(serve_tls(mqtt.clone(), client, stream, tls.clone()));
            }
        }
    })
    .await;
}

/// Handshakes one client of the TLS port, then serves it.
async fn serve_tls(
    mqtt: Arc<MqttServer>,
    client: Arc<ClientShared>,
    tcp: TcpStream,
    tls: Arc<ReloadableAcceptor>,
) {
    let core = &mqtt.core;
    let peer = Peer { id: client.id, addr: client.addr };
    match crate::tls::secure(&tls, tcp, core.config.allow_non_tls).await {
        Ok(Secured::Tls(stream, negotiated)) => {
            client.set_tls(negotiated);
            let (reader, writer) = tokio::io::split(*stream);
            super::connection::serve(mqtt.clone(), client, reader, writer).await;
        }
        Ok(Secured::Plain(stream)) => {
            tracing::debug!(cid = client.id, "MQTT client chose plain text (allow_non_tls)");
            let (reader, writer) = stream.into_split();
            super::connection::serve(mqtt.clone(), client, reader, writer).await;
        }
        Err(SecureError::Closed) => abandon(core, &client, CloseReason::ClientClosed),
        Err(e @ SecureError::PlainText(_)) => {
            tracing::error!("{peer} - MQTT TLS handshake error: {e}; the MQTT port requires TLS");
            abandon(core, &client, CloseReason::TlsHandshakeError);
        }
        Err(e) => {
            tracing::error!("{peer} - MQTT TLS handshake error: {e}");
            abandon(core, &client, CloseReason::TlsHandshakeError);
        }
    }
}
