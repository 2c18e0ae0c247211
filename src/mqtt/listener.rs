//! Accepts MQTT client connections.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::MqttServer;
use crate::nats::client::{ClientShared, CloseReason};
use crate::nats::listener::accept_each;

/// Accepts until the core's listeners are stopped (shutdown or lame-duck mode).
pub async fn accept_loop(mqtt: Arc<MqttServer>, listener: TcpListener) {
    let core = mqtt.core.clone();
    accept_each(&core, listener, "MQTT client", |stream, addr| {
        let id = core.next_client_id();
        core.stats.total_connections.fetch_add(1, Ordering::Relaxed);
        let client =
            Arc::new(ClientShared::new(id, addr, core.config.max_pending as usize, core.stats.clone()));
        client.set_mqtt();
        if !core.register(&client) {
            // MQTT has no way to say why before CONNECT: close, as nats-server does.
            client.close(CloseReason::MaxConnectionsExceeded);
            return;
        }
        tracing::debug!(cid = id, %addr, "MQTT client connection created");
        let (reader, writer) = stream.into_split();
        core.tasks.spawn(super::connection::serve(mqtt.clone(), client, reader, writer));
    })
    .await;
}
