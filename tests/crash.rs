//! Durability under SIGKILL: every acknowledged JetStream publish survives the process being
//! killed at a random moment.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream::{self, stream};

/// A jetway child process on random loopback ports.
struct ChildServer {
    child: Child,
    port: u16,
    mqtt_port: u16,
}

impl ChildServer {
    /// Starts on `store`, with the TOML config file `config` when given.
    fn start(store: &std::path::Path, config: Option<&std::path::Path>) -> ChildServer {
        let mut command = Command::new(env!("CARGO_BIN_EXE_jetway"));
        if let Some(config) = config {
            command.arg("-c").arg(config);
        }
        let mut child = command
            .args(["-a", "127.0.0.1", "-p", "-1", "-m", "0", "--mqtt_port", "-1", "-sd"])
            .arg(store)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("jetway starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let port_in = |line: &str| line.rsplit(':').next().and_then(|p| p.trim().parse::<u16>().ok());
        let (mut port, mut mqtt_port) = (None, None);
        while port.is_none() || mqtt_port.is_none() {
            let line = lines.next().expect("log line").expect("readable log");
            if let Some(addr) = line.split("Listening for client connections on ").nth(1) {
                port = port_in(addr);
            } else if let Some(addr) = line.split("Listening for MQTT clients on ").nth(1) {
                mqtt_port = port_in(addr);
            }
        }
        // Keep draining the log so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        ChildServer { child, port: port.expect("port"), mqtt_port: mqtt_port.expect("MQTT port") }
    }

    fn kill(mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_publishes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    sigkill_rounds(dir.path(), None, 10).await;
}

/// With interval sync an ack means "written to the OS" (done by the publishing connection at
/// the end of its read batch): a killed process loses none of it, only a power loss could.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_publishes_survive_sigkill_with_interval_sync() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("interval.toml");
    std::fs::write(&config, "[jetstream]\nsync_interval = \"2m\"\n").unwrap();
    let store = dir.path().join("store");
    sigkill_rounds(&store, Some(&config), 6).await;
}

/// A persistent MQTT session's subscription is part of what its SUBACK acknowledges: the
/// server killed right after the SUBACK still has the session, and the message published to
/// it after the restart is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_mqtt_subscription_survives_sigkill() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let dir = tempfile::tempdir().unwrap();
    for round in 0..5 {
        let server = ChildServer::start(dir.path(), None);
        let id = format!("device-{round}");
        let topic = format!("crash/{round}");
        let mut options = MqttOptions::new(&id, "127.0.0.1", server.mqtt_port);
        options.set_clean_session(false);
        let (client, mut events) = AsyncClient::new(options, 10);
        client.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
        loop {
            let event = tokio::time::timeout(Duration::from_secs(5), events.poll()).await.unwrap().unwrap();
            if matches!(event, Event::Incoming(Packet::SubAck(_))) {
                break;
            }
        }
        server.kill();
        drop(events);

        let server = ChildServer::start(dir.path(), None);
        let (publisher, mut publisher_events) = AsyncClient::new(
            MqttOptions::new(format!("publisher-{round}"), "127.0.0.1", server.mqtt_port),
            10,
        );
        publisher.publish(&topic, QoS::AtLeastOnce, false, "after the crash").await.unwrap();
        loop {
            let event =
                tokio::time::timeout(Duration::from_secs(5), publisher_events.poll()).await.unwrap().unwrap();
            if matches!(event, Event::Incoming(Packet::PubAck(_))) {
                break;
            }
        }
        let mut options = MqttOptions::new(&id, "127.0.0.1", server.mqtt_port);
        options.set_clean_session(false);
        let (_client, mut events) = AsyncClient::new(options, 10);
        let mut present = None;
        let received = loop {
            let event = tokio::time::timeout(Duration::from_secs(5), events.poll()).await.unwrap().unwrap();
            match event {
                Event::Incoming(Packet::ConnAck(ack)) => present = Some(ack.session_present),
                Event::Incoming(Packet::Publish(p)) => break p,
                _ => {}
            }
        };
        assert_eq!(present, Some(true), "round {round}: the session was lost");
        assert_eq!(
            (received.topic.as_str(), &received.payload[..]),
            (topic.as_str(), &b"after the crash"[..])
        );
        server.kill();
    }
}

/// Publishes with acks in flight and kills the server at a random moment, `rounds` times;
/// checks every acknowledged message after each restart.
async fn sigkill_rounds(store: &std::path::Path, config: Option<&std::path::Path>, rounds: u64) {
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    let mut last_round: BTreeMap<u64, String> = BTreeMap::new();
    for round in 0..rounds {
        let server = ChildServer::start(store, config);
        let nc = async_nats::connect(format!("nats://127.0.0.1:{}", server.port)).await.unwrap();
        let js = jetstream::new(nc);
        let mut s = js
            .get_or_create_stream(stream::Config {
                name: "CRASH".into(),
                subjects: vec!["crash.>".into()],
                ..Default::default()
            })
            .await
            .unwrap();
        // Everything acknowledged before the kill is still there, byte for byte.
        let info = s.info().await.unwrap();
        assert!(info.state.last_sequence >= acked.keys().next_back().copied().unwrap_or(0), "round {round}");
        verify(&s, &last_round).await;
        last_round.clear();
        // Publish with up to 64 acks in flight, and kill the server at a random moment.
        let kill_after = Duration::from_millis(50 + rand::random_range(0..250));
        let deadline = tokio::time::Instant::now() + kill_after;
        let mut in_flight = futures::stream::FuturesUnordered::new();
        let mut i = 0u64;
        let killer = tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            server.kill();
        });
        use futures::StreamExt;
        loop {
            while in_flight.len() < 64 {
                let payload = format!("r{round}-m{i}");
                i += 1;
                let js = js.clone();
                in_flight.push(async move {
                    let ack = js.publish("crash.x", payload.clone().into()).await.ok()?.await.ok()?;
                    Some((ack.sequence, payload))
                });
            }
            match tokio::time::timeout(Duration::from_secs(2), in_flight.next()).await {
                Ok(Some(Some((seq, payload)))) => {
                    acked.insert(seq, payload.clone());
                    last_round.insert(seq, payload);
                }
                Ok(Some(None)) => {
                    if killer.is_finished() {
                        break;
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        killer.await.unwrap();
        drop(in_flight);
    }
    assert!(acked.len() > 100, "the test published something: {}", acked.len());
    // Final check on a last restart.
    let server = ChildServer::start(store, config);
    let js = jetstream::new(async_nats::connect(format!("nats://127.0.0.1:{}", server.port)).await.unwrap());
    let s = js.get_stream("CRASH").await.unwrap();
    verify(&s, &acked).await;
    server.kill();
}

/// Every message in `expected` is stored with its payload (checked 32 requests at a time).
async fn verify(s: &stream::Stream, expected: &BTreeMap<u64, String>) {
    use futures::StreamExt;
    let checks = futures::stream::iter(expected.iter()).map(|(seq, payload)| async move {
        let msg = s.get_raw_message(*seq).await.unwrap_or_else(|e| panic!("acked seq {seq} lost: {e}"));
        assert_eq!(&msg.payload[..], payload.as_bytes(), "seq {seq}");
    });
    checks.buffer_unordered(32).collect::<Vec<()>>().await;
}
