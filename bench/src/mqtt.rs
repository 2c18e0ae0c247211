//! What the MQTT workloads share: the server address, client options, and waiting for
//! the CONNACK / SUBACK that rumqttc's event loop reports as events.
//!
//! rumqttc reconnects on the next `poll` after a connection error; a benchmark must not
//! (its numbers would be meaningless), so every error here ends the run.

use std::time::Duration;

use anyhow::Context;
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS,
    SubscribeReasonCode,
};

/// Requests a client may queue for its event loop before `publish` waits.
const REQUEST_CAPACITY: usize = 1024;

/// Where the MQTT listener is.
#[derive(clap::Args, Debug, Clone)]
pub struct Endpoint {
    /// MQTT listener host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// MQTT listener port.
    #[arg(long, default_value_t = 1883)]
    pub port: u16,
}

/// `--qos 0|1|2` as rumqttc's type.
pub fn qos(level: u8) -> anyhow::Result<QoS> {
    Ok(match level {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        2 => QoS::ExactlyOnce,
        _ => anyhow::bail!("--qos must be 0, 1 or 2 (got {level})"),
    })
}

/// MQTT 3.1.1 options: `inflight` unacknowledged outgoing QoS 1/2 publishes at most.
pub fn options(endpoint: &Endpoint, client_id: &str, clean_session: bool, inflight: u16) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, endpoint.host.as_str(), endpoint.port);
    options
        .set_clean_session(clean_session)
        .set_inflight(inflight)
        .set_keep_alive(Duration::from_secs(60))
        .set_max_packet_size(1 << 20, 1 << 20);
    options
}

/// A client whose connection is accepted (CONNACK seen) and, with `subscribe`, whose
/// subscription is granted (SUBACK seen). The event loop is returned for the caller to
/// keep polling.
pub async fn connect(
    options: MqttOptions,
    subscribe: Option<(&str, QoS)>,
) -> anyhow::Result<(AsyncClient, EventLoop)> {
    let id = options.client_id();
    let (client, mut eventloop) = AsyncClient::new(options, REQUEST_CAPACITY);
    // Nagle's algorithm would hold small acks and publishes back for the peer's delayed
    // ACK; every server gets the same client either way, but the numbers would measure
    // the TCP timers.
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(5);
    eventloop.set_network_options(network);
    if let Some((topic, qos)) = subscribe {
        // Queued now, sent right after the CONNECT on the first poll.
        client.subscribe(topic, qos).await.context("queueing SUBSCRIBE")?;
    }
    let mut connected = false;
    let mut subscribed = subscribe.is_none();
    // CONNACK and SUBACK arrive within the first few events; a bound keeps a chatty
    // server from holding this loop forever.
    for _ in 0..64 {
        let event = eventloop.poll().await.with_context(|| format!("MQTT client {id}"))?;
        match event {
            Event::Incoming(Packet::ConnAck(ack)) => {
                anyhow::ensure!(
                    ack.code == ConnectReturnCode::Success,
                    "client {id}: CONNACK refused: {:?}",
                    ack.code
                );
                connected = true;
            }
            Event::Incoming(Packet::SubAck(ack)) => {
                anyhow::ensure!(
                    !ack.return_codes.contains(&SubscribeReasonCode::Failure),
                    "client {id}: SUBACK refused the subscription"
                );
                subscribed = true;
            }
            _ => {}
        }
        if connected && subscribed {
            return Ok((client, eventloop));
        }
    }
    anyhow::bail!("client {id}: no CONNACK/SUBACK within 64 events")
}
