//! The MQTT gateway on JetStream: sessions, retained messages, queued QoS 1/2 messages and QoS 2
//! state live in nats-server's `$MQTT_*` streams and survive a server restart; MQTT publishes
//! are ordinary messages for user streams.

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use jetway::mqtt::jetstream_store::hash8;
use jetway::server::ServerHandle;
use jetway_protocols::mqtt::{Ack, Packet, ProtocolVersion, Publish as RawPublish, QoS as RawQoS};

use crate::harness::test_config;
use crate::mqtt::{raw_connect, v4, v4_with, Raw, V4};

/// A server with MQTT on a random port, its JetStream in `dir` (the same `dir` restarts it).
async fn start(dir: &Path) -> ServerHandle {
    let mut config = test_config(dir);
    config.mqtt.port = -1;
    jetway::run(config).await.expect("server starts")
}

fn mqtt_addr(server: &ServerHandle) -> std::net::SocketAddr {
    server.mqtt_addr.expect("MQTT enabled")
}

async fn js_of(server: &ServerHandle) -> jetstream::Context {
    jetstream::new(async_nats::connect(format!("nats://{}", server.nats_addr)).await.unwrap())
}

/// Publishes at QoS 1 and waits for the PUBACK.
async fn publish_qos1(addr: std::net::SocketAddr, topic: &str, payload: &str, retain: bool) {
    let mut publisher = v4(addr, "publisher").await;
    publisher.client.publish(topic, rumqttc::QoS::AtLeastOnce, retain, payload.to_owned()).await.unwrap();
    publisher.wait_for(|e| matches!(e, rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)))).await;
    publisher.client.disconnect().await.unwrap();
}

/// A 3.1.1 client with a persistent session (clean session 0).
async fn persistent_v4(addr: std::net::SocketAddr, id: &str) -> V4 {
    v4_with(addr, id, |o| {
        o.set_clean_session(false);
    })
    .await
}

/// A QoS 1 SUBSCRIBE for the raw client.
fn subscribe_packet(filter: &str, qos: RawQoS) -> Packet {
    let filter = filter.to_owned();
    Packet::Subscribe(jetway_protocols::mqtt::Subscribe {
        packet_id: 1,
        properties: jetway_protocols::mqtt::Properties::default(),
        filters: vec![jetway_protocols::mqtt::SubscribeFilter {
            filter: filter.into(),
            options: jetway_protocols::mqtt::SubscriptionOptions::new(qos),
        }],
    })
}

#[tokio::test]
async fn persistent_session_and_queued_qos1_messages_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let addr = mqtt_addr(&server);
    let mut sub = persistent_v4(addr, "keeper").await;
    sub.subscribe("queued/#", rumqttc::QoS::AtLeastOnce).await;
    sub.client.disconnect().await.unwrap();
    drop(sub);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Published while the session is offline: they wait in $MQTT_msgs.
    publish_qos1(addr, "queued/1", "one", false).await;
    publish_qos1(addr, "queued/2", "two", false).await;
    server.shutdown().await;

    let server = start(dir.path()).await;
    let addr = mqtt_addr(&server);
    let mut sub = persistent_v4(addr, "keeper").await;
    let first = sub.next_publish().await;
    let second = sub.next_publish().await;
    assert_eq!((first.topic.as_str(), &first.payload[..]), ("queued/1", &b"one"[..]));
    assert_eq!((second.topic.as_str(), &second.payload[..]), ("queued/2", &b"two"[..]));
    assert_eq!(first.qos, rumqttc::QoS::AtLeastOnce);

    // The subscription itself was restored too.
    publish_qos1(addr, "queued/3", "three", false).await;
    assert_eq!(&sub.next_publish().await.payload[..], b"three");
    sub.no_publish(Duration::from_millis(300)).await;

    // Acknowledged messages leave the interest stream.
    let js = js_of(&server).await;
    let mut msgs = js.get_stream("$MQTT_msgs").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while msgs.info().await.unwrap().state.messages > 0 {
        assert!(tokio::time::Instant::now() < deadline, "acked messages still stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn unacknowledged_qos1_is_resent_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let addr = mqtt_addr(&server);
    let mut raw = Raw::mqtt_connect(addr, raw_connect(ProtocolVersion::V4, "forgetful", false), false).await;
    raw.send_packet(ProtocolVersion::V4, subscribe_packet("inflight/t", RawQoS::AtLeastOnce)).await;
    assert_eq!(raw.read_packet().await, vec![0x90, 0x03, 0x00, 0x01, 0x01], "SUBACK");
    publish_qos1(addr, "inflight/t", "m", false).await;
    let first = raw.read_packet().await;
    assert_eq!(first.first(), Some(&0x32), "QoS 1 PUBLISH: {first:?}");
    drop(raw); // never acknowledged
    server.shutdown().await;

    let server = start(dir.path()).await;
    let addr = mqtt_addr(&server);
    let mut raw = Raw::mqtt_connect(addr, raw_connect(ProtocolVersion::V4, "forgetful", false), true).await;
    let again = raw.read_packet().await;
    assert_eq!(again.first(), Some(&0x3A), "resent with DUP: {again:?}");
    assert!(again.ends_with(b"m"), "same message: {again:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn retained_message_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    publish_qos1(mqtt_addr(&server), "kept/topic", "retained", true).await;
    publish_qos1(mqtt_addr(&server), "kept/gone", "deleted next", true).await;
    publish_qos1(mqtt_addr(&server), "kept/gone", "", true).await;
    server.shutdown().await;

    let server = start(dir.path()).await;
    let mut sub = v4(mqtt_addr(&server), "late").await;
    sub.subscribe("kept/#", rumqttc::QoS::AtLeastOnce).await;
    let p = sub.next_publish().await;
    assert_eq!((p.topic.as_str(), &p.payload[..], p.retain), ("kept/topic", &b"retained"[..], true));
    assert_eq!(p.qos, rumqttc::QoS::AtLeastOnce);
    sub.no_publish(Duration::from_millis(300)).await;
    server.shutdown().await;
}

#[tokio::test]
async fn qos2_is_exactly_once_across_reconnects_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let nc = async_nats::connect(format!("nats://{}", server.nats_addr)).await.unwrap();
    let mut watcher = nc.subscribe("once.>").await.unwrap();
    nc.flush().await.unwrap();

    let mut p = RawPublish::new("once/x", "payload");
    p.qos = RawQoS::ExactlyOnce;
    p.packet_id = 7;
    let addr = mqtt_addr(&server);
    let mut raw = Raw::mqtt_connect(addr, raw_connect(ProtocolVersion::V4, "q2", false), false).await;
    raw.send_packet(ProtocolVersion::V4, Packet::Publish(p.clone())).await;
    assert_eq!(raw.read_packet().await, vec![0x50, 0x02, 0x00, 0x07], "PUBREC");
    drop(raw); // gone between PUBREC and PUBREL
    let got = tokio::time::timeout(Duration::from_secs(5), watcher.next()).await.unwrap().unwrap();
    assert_eq!(&got.payload[..], b"payload");

    // The packet id is in $MQTT_qos2in until PUBREL.
    let js = js_of(&server).await;
    let subject = format!("$MQTT.qos2.in.{}.7", hash8("q2"));
    let qos2in = js.get_stream("$MQTT_qos2in").await.unwrap();
    assert!(qos2in.get_last_raw_message_by_subject(&subject).await.is_ok());
    server.shutdown().await;

    let server = start(dir.path()).await;
    let nc = async_nats::connect(format!("nats://{}", server.nats_addr)).await.unwrap();
    let mut watcher = nc.subscribe("once.>").await.unwrap();
    nc.flush().await.unwrap();
    let addr = mqtt_addr(&server);
    let mut raw = Raw::mqtt_connect(addr, raw_connect(ProtocolVersion::V4, "q2", false), true).await;
    p.dup = true;
    raw.send_packet(ProtocolVersion::V4, Packet::Publish(p.clone())).await;
    assert_eq!(raw.read_packet().await, vec![0x50, 0x02, 0x00, 0x07], "PUBREC again");
    raw.send_packet(ProtocolVersion::V4, Packet::PubRel(Ack::new(7))).await;
    assert_eq!(raw.read_packet().await, vec![0x70, 0x02, 0x00, 0x07], "PUBCOMP");
    let dup = tokio::time::timeout(Duration::from_millis(500), watcher.next()).await;
    assert!(dup.is_err(), "the resent PUBLISH was delivered again: {dup:?}");

    // Released: the id is free again, and a new PUBLISH with it is delivered.
    let js = js_of(&server).await;
    let qos2in = js.get_stream("$MQTT_qos2in").await.unwrap();
    assert!(qos2in.get_last_raw_message_by_subject(&subject).await.is_err());
    p.dup = false;
    p.payload = "second".into();
    raw.send_packet(ProtocolVersion::V4, Packet::Publish(p)).await;
    assert_eq!(raw.read_packet().await, vec![0x50, 0x02, 0x00, 0x07], "PUBREC");
    let got = tokio::time::timeout(Duration::from_secs(5), watcher.next()).await.unwrap().unwrap();
    assert_eq!(&got.payload[..], b"second");
    server.shutdown().await;
}

#[tokio::test]
async fn qos2_delivery_to_a_persistent_session_keeps_pubrel_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let addr = mqtt_addr(&server);
    let mut raw = Raw::mqtt_connect(addr, raw_connect(ProtocolVersion::V4, "receiver", false), false).await;
    raw.send_packet(ProtocolVersion::V4, subscribe_packet("two/t", RawQoS::ExactlyOnce)).await;
    assert_eq!(raw.read_packet().await, vec![0x90, 0x03, 0x00, 0x01, 0x02], "SUBACK");
    let publisher = v4(addr, "publisher2").await;
    publisher.client.publish("two/t", rumqttc::QoS::ExactlyOnce, false, "x").await.unwrap();
    let publish = raw.read_packet().await;
    assert_eq!(publish.first(), Some(&0x34), "QoS 2 PUBLISH: {publish:?}");
    let id = [publish[9], publish[10]]; // 0x34 len 0x00 0x05 "two/t" id
    raw.send_packet(ProtocolVersion::V4, Packet::PubRec(Ack::new(u16::from_be_bytes(id)))).await;
    assert_eq!(raw.read_packet().await, vec![0x62, 0x02, id[0], id[1]], "PUBREL");
    drop(raw); // no PUBCOMP

    let js = js_of(&server).await;
    let out = js.get_stream("$MQTT_out").await.unwrap();
    let marker = format!("$MQTT.out.pubrel.{}.{}", hash8("receiver"), u16::from_be_bytes(id));
    assert!(out.get_last_raw_message_by_subject(&marker).await.is_ok(), "PUBREL marker stored");
    server.shutdown().await;

    let server = start(dir.path()).await;
    let addr = mqtt_addr(&server);
    let mut raw = Raw::mqtt_connect(addr, raw_connect(ProtocolVersion::V4, "receiver", false), true).await;
    assert_eq!(raw.read_packet().await, vec![0x62, 0x02, id[0], id[1]], "PUBREL resent, not the PUBLISH");
    raw.send_packet(ProtocolVersion::V4, Packet::PubComp(Ack::new(u16::from_be_bytes(id)))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let js = js_of(&server).await;
    let out = js.get_stream("$MQTT_out").await.unwrap();
    assert!(out.get_last_raw_message_by_subject(&marker).await.is_err(), "marker gone after PUBCOMP");
    server.shutdown().await;
}

#[tokio::test]
async fn mqtt_streams_hold_sessions_messages_and_retained_in_nats_server_layout() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let addr = mqtt_addr(&server);
    let mut sub = persistent_v4(addr, "inspect").await;
    sub.subscribe("layout/+", rumqttc::QoS::AtLeastOnce).await;
    sub.subscribe("other/#", rumqttc::QoS::ExactlyOnce).await;
    sub.client.disconnect().await.unwrap();
    drop(sub);
    tokio::time::sleep(Duration::from_millis(200)).await;
    publish_qos1(addr, "layout/a", "queued", false).await;
    publish_qos1(addr, "nobody/b", "not stored", false).await;
    publish_qos1(addr, "layout/r", "retained", true).await;

    let js = js_of(&server).await;
    let names: Vec<String> = futures::TryStreamExt::try_collect(js.stream_names()).await.unwrap();
    for name in ["$MQTT_sess", "$MQTT_msgs", "$MQTT_rmsgs", "$MQTT_qos2in", "$MQTT_out"] {
        assert!(names.iter().any(|n| n == name), "{name} missing from {names:?}");
    }

    let hash = hash8("inspect");
    let sess = js.get_stream("$MQTT_sess").await.unwrap();
    let record = sess.get_last_raw_message_by_subject(&format!("$MQTT.sess.{hash}")).await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&record.payload).unwrap();
    assert_eq!(json["id"], "inspect");
    assert_eq!(json["subs"]["layout.*"], 1);
    assert_eq!(json["subs"]["other.>"], 2);

    let mut msgs = js.get_stream("$MQTT_msgs").await.unwrap();
    assert_eq!(msgs.cached_info().config.retention, stream::RetentionPolicy::Interest);
    // The retained publish matches layout/+ too: two queued, the unmatched one not stored.
    assert_eq!(msgs.info().await.unwrap().state.messages, 2);
    let queued = msgs.get_last_raw_message_by_subject("$MQTT.msgs.layout.a").await.unwrap();
    assert_eq!(&queued.payload[..], b"queued");
    let session_consumer = msgs.consumer_info(&hash).await.unwrap();
    let mut filters = session_consumer.config.filter_subjects.clone();
    filters.sort();
    assert_eq!(filters, vec!["$MQTT.msgs.layout.*", "$MQTT.msgs.other", "$MQTT.msgs.other.>"]);
    assert_eq!(session_consumer.config.durable_name.as_deref(), Some(hash.as_str()));
    assert_eq!(session_consumer.num_pending, 2);

    let rmsgs = js.get_stream("$MQTT_rmsgs").await.unwrap();
    assert_eq!(rmsgs.cached_info().config.max_messages_per_subject, 1);
    let retained = rmsgs.get_last_raw_message_by_subject("$MQTT.rmsgs.layout.r").await.unwrap();
    assert_eq!(&retained.payload[..], b"retained");
    let headers = retained.headers;
    assert_eq!(headers.get("Nmqtt-RTopic").map(|v| v.as_str()), Some("layout/r"));
    server.shutdown().await;
}

/// A persistent session whose record is already durable and unchanged (3.1.1: it never
/// expires) is not written again when its client disconnects; the session is still there.
#[tokio::test]
async fn an_unchanged_session_record_is_not_rewritten_at_disconnect() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let addr = mqtt_addr(&server);
    let js = js_of(&server).await;
    let persistent = |o: &mut rumqttc::MqttOptions| {
        o.set_clean_session(false);
    };
    let mut sub = v4_with(addr, "steady", persistent).await;
    sub.subscribe("steady/+", rumqttc::QoS::AtLeastOnce).await;
    let mut sess = js.get_stream("$MQTT_sess").await.unwrap();
    let written = sess.info().await.unwrap().state.last_sequence;
    sub.client.disconnect().await.unwrap();
    drop(sub);
    // Reconnecting waits for the old connection's cleanup (session saved or not).
    let mut again = Raw::mqtt_connect(addr, raw_connect(ProtocolVersion::V4, "steady", false), true).await;
    assert_eq!(sess.info().await.unwrap().state.last_sequence, written, "no second record");
    again.send(&[0xE0, 0x00]).await; // DISCONNECT
    let _ = again.closed().await;
    // A reconnect without changes does not write one either, and the session stays.
    let _again = Raw::mqtt_connect(addr, raw_connect(ProtocolVersion::V4, "steady", false), true).await;
    assert_eq!(sess.info().await.unwrap().state.last_sequence, written);
}

#[tokio::test]
async fn user_stream_captures_mqtt_publishes_and_replays_them_from_a_start_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let js = js_of(&server).await;
    let s = js
        .create_stream(stream::Config {
            name: "SENSORS".into(),
            subjects: vec!["sensors.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let addr = mqtt_addr(&server);
    let publisher = v4(addr, "sensor").await;
    publisher.client.publish("sensors/a/temp", rumqttc::QoS::AtMostOnce, false, "early").await.unwrap();
    publish_qos1(addr, "sensors/b/temp", "early-qos1", false).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while js.get_stream("SENSORS").await.unwrap().info().await.unwrap().state.messages < 2 {
        assert!(tokio::time::Instant::now() < deadline, "MQTT publishes not captured");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start_time = time::OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_millis(50)).await;
    publisher.client.publish("sensors/a/temp", rumqttc::QoS::AtMostOnce, false, "late").await.unwrap();
    publish_qos1(addr, "sensors/c/hum", "late-qos1", false).await;

    let c = s
        .create_consumer(consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::ByStartTime { start_time },
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = c.fetch().max_messages(10).expires(Duration::from_millis(500)).messages().await.unwrap();
    let mut got = Vec::new();
    while let Some(m) = batch.next().await {
        let m = m.unwrap();
        got.push((m.subject.to_string(), String::from_utf8_lossy(&m.payload).into_owned()));
        m.ack().await.unwrap();
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            ("sensors.a.temp".to_string(), "late".to_string()),
            ("sensors.c.hum".to_string(), "late-qos1".to_string())
        ]
    );
    server.shutdown().await;
}

/// A clean session's messages die with its connection: it takes QoS 1 messages straight from
/// the router, with no consumer, and a message only clean sessions want is not stored.
#[tokio::test]
async fn clean_sessions_take_qos1_without_a_consumer_or_a_stored_copy() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let addr = mqtt_addr(&server);
    let mut raw = Raw::mqtt_connect(addr, raw_connect(ProtocolVersion::V4, "fleeting", true), false).await;
    raw.send_packet(ProtocolVersion::V4, subscribe_packet("gone/t", RawQoS::AtLeastOnce)).await;
    assert_eq!(raw.read_packet().await, vec![0x90, 0x03, 0x00, 0x01, 0x01], "SUBACK");
    publish_qos1(addr, "gone/t", "m", false).await;
    let publish = raw.read_packet().await;
    assert_eq!(publish.first(), Some(&0x32), "QoS 1 PUBLISH");
    assert!(publish.ends_with(b"m"), "the message: {publish:?}");
    let js = js_of(&server).await;
    let mut msgs = js.get_stream("$MQTT_msgs").await.unwrap();
    let info = msgs.info().await.unwrap();
    assert_eq!((info.state.messages, info.state.consumer_count), (0, 0), "nothing stored, no consumer");
    assert_eq!(info.state.last_sequence, 0, "not offered to the stream: not even a skipped sequence");
    drop(raw); // never acknowledged: nothing to clean up
    server.shutdown().await;
}

#[tokio::test]
async fn expired_mqtt5_session_loses_its_record_and_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let addr = mqtt_addr(&server);
    let mut connect = raw_connect(ProtocolVersion::V5, "brief", false);
    connect.properties.session_expiry_interval = Some(1);
    let mut raw = Raw::mqtt_connect(addr, connect, false).await;
    raw.send_packet(ProtocolVersion::V5, subscribe_packet("brief/t", RawQoS::AtLeastOnce)).await;
    assert_eq!(raw.read_packet().await.first(), Some(&0x90), "SUBACK");
    let js = js_of(&server).await;
    let msgs = js.get_stream("$MQTT_msgs").await.unwrap();
    assert!(msgs.consumer_info(hash8("brief")).await.is_ok(), "session consumer");
    drop(raw);

    let sess = js.get_stream("$MQTT_sess").await.unwrap();
    let subject = format!("$MQTT.sess.{}", hash8("brief"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while sess.get_last_raw_message_by_subject(&subject).await.is_ok()
        || msgs.consumer_info(hash8("brief")).await.is_ok()
    {
        assert!(tokio::time::Instant::now() < deadline, "session not expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.shutdown().await;
}

/// One task ends every offline session: it must wake for a session ending sooner than the
/// one it waits for, and leave a session whose client came back.
#[tokio::test]
async fn offline_sessions_end_in_expiry_order_and_a_resumed_one_lives_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let addr = mqtt_addr(&server);
    let session = |id: &str, expiry: u32, present: bool| {
        let mut connect = raw_connect(ProtocolVersion::V5, id, false);
        connect.properties.session_expiry_interval = Some(expiry);
        let topic = format!("{id}/t");
        async move {
            let mut raw = Raw::mqtt_connect(addr, connect, present).await;
            raw.send_packet(ProtocolVersion::V5, subscribe_packet(&topic, RawQoS::AtLeastOnce)).await;
            assert_eq!(raw.read_packet().await.first(), Some(&0x90), "SUBACK");
            raw
        }
    };
    drop(session("long", 3, false).await);
    drop(session("short", 1, false).await);
    drop(session("back", 1, false).await);
    let back = session("back", 1, true).await;
    let js = js_of(&server).await;
    let sess = js.get_stream("$MQTT_sess").await.unwrap();
    let has_record = |id: &str| {
        let (sess, subject) = (sess.clone(), format!("$MQTT.sess.{}", hash8(id)));
        async move { sess.get_last_raw_message_by_subject(&subject).await.is_ok() }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while has_record("short").await {
        assert!(tokio::time::Instant::now() < deadline, "the short session never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(has_record("long").await, "the long session ended with the short one");
    while has_record("long").await {
        assert!(tokio::time::Instant::now() < deadline, "the long session never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(has_record("back").await, "a resumed session was ended");
    drop(back);
    server.shutdown().await;
}

/// A session with thousands of subscriptions (a gateway device subscribing for each of its
/// sub-devices): its consumer's filters were compared pair by pair at every SUBSCRIBE, so
/// subscribing 4,000 topics took minutes of CPU (quadratic in the session's filters each
/// time). The bound is a guard against that, far above what it takes.
#[tokio::test]
async fn a_session_with_thousands_of_subscriptions_subscribes_without_quadratic_work() {
    const TOPICS: usize = 4000;
    const PER_SUBSCRIBE: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let addr = mqtt_addr(&server);
    let mut sub = persistent_v4(addr, "gateway-device").await;
    let subscribing = async {
        for first in (0..TOPICS).step_by(PER_SUBSCRIBE) {
            let filters = (first..first + PER_SUBSCRIBE)
                .map(|i| rumqttc::SubscribeFilter::new(format!("dev/{i}/cmd"), rumqttc::QoS::AtLeastOnce));
            sub.client.subscribe_many(filters).await.unwrap();
            sub.wait_for(|e| matches!(e, rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)))).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), subscribing).await.expect("subscribed in time");
    for topic in ["dev/0/cmd", &format!("dev/{}/cmd", TOPICS - 1)] {
        publish_qos1(addr, topic, "go", false).await;
        let p = sub.next_publish().await;
        assert_eq!((p.topic.as_str(), p.qos), (topic, rumqttc::QoS::AtLeastOnce));
    }
    server.shutdown().await;
}

/// Subscriptions overlapping in part give the session's consumer filters that overlap in
/// part, which a consumer may have (only a filter inside another is refused; the filters were
/// widened to everything before): what matches both comes once (the session's stored messages
/// come from its one consumer), what matches one comes too, and nothing else.
#[tokio::test]
async fn partly_overlapping_subscriptions_of_a_persistent_session_get_their_messages() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let addr = mqtt_addr(&server);
    let mut sub = persistent_v4(addr, "overlapper").await;
    sub.subscribe("ov/+/x", rumqttc::QoS::AtLeastOnce).await;
    sub.subscribe("ov/a/+", rumqttc::QoS::AtLeastOnce).await;
    let js = js_of(&server).await;
    let consumer =
        js.get_stream("$MQTT_msgs").await.unwrap().consumer_info(hash8("overlapper")).await.unwrap();
    let mut filters = consumer.config.filter_subjects.clone();
    filters.sort();
    assert_eq!(filters, vec!["$MQTT.msgs.ov.*.x", "$MQTT.msgs.ov.a.*"], "both filters, not everything");
    for topic in ["ov/a/x", "ov/b/x", "ov/a/y", "ov/b/y"] {
        publish_qos1(addr, topic, topic, false).await;
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(sub.next_publish().await.topic);
    }
    sub.no_publish(Duration::from_millis(300)).await;
    got.sort();
    assert_eq!(got, vec!["ov/a/x", "ov/a/y", "ov/b/x"]);
    server.shutdown().await;
}

#[tokio::test]
async fn without_jetstream_the_gateway_keeps_state_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.mqtt.port = -1;
    config.jetstream.enabled = false;
    let server = jetway::run(config).await.expect("server starts");
    let addr = mqtt_addr(&server);
    let mut sub = persistent_v4(addr, "memory").await;
    sub.subscribe("mem/#", rumqttc::QoS::AtLeastOnce).await;
    publish_qos1(addr, "mem/r", "retained", true).await;
    let p = sub.next_publish().await;
    assert_eq!((&p.payload[..], p.qos), (&b"retained"[..], rumqttc::QoS::AtLeastOnce));
    let mut late = v4(addr, "late-memory").await;
    late.subscribe("mem/#", rumqttc::QoS::AtMostOnce).await;
    assert!(late.next_publish().await.retain);
    server.shutdown().await;
}

/// The folder of stream `name` somewhere under the server's store `dir`.
fn stream_dir(dir: &Path, name: &str) -> std::path::PathBuf {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                if entry.file_name() == name {
                    return entry.path();
                }
                pending.push(entry.path());
            }
        }
    }
    panic!("no folder for stream {name} under {}", dir.display())
}

/// A session resumed without changes re-creates its consumer with the same config: nothing is
/// written to the consumer log (it was one config record per reconnect), and it still gets what
/// was queued while it was away.
#[tokio::test]
async fn resuming_an_unchanged_session_writes_no_consumer_record() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let addr = mqtt_addr(&server);
    let persistent = |o: &mut rumqttc::MqttOptions| {
        o.set_clean_session(false);
    };
    let mut sub = v4_with(addr, "resumer", persistent).await;
    sub.subscribe("resumer/+", rumqttc::QoS::AtLeastOnce).await;
    sub.client.disconnect().await.unwrap();
    drop(sub);
    let log = stream_dir(dir.path(), "$MQTT_msgs").join("consumers.log");
    // Written lazily: wait until the log has settled.
    let settled = |log: &Path| {
        let mut last = 0;
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(20));
            let len = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
            if len == last && len > 0 {
                return len;
            }
            last = len;
        }
        last
    };
    let before = settled(&log);
    for _ in 0..3 {
        let again = Raw::mqtt_connect(addr, raw_connect(ProtocolVersion::V4, "resumer", false), true).await;
        drop(again);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(settled(&log), before, "reconnects wrote to the consumer log");
    publish_qos1(addr, "resumer/x", "queued", false).await;
    let mut back = v4_with(addr, "resumer", persistent).await;
    assert_eq!(&back.next_publish().await.payload[..], b"queued");
}

/// Session consumers keep their config and state in one group-committed log in the
/// `$MQTT_msgs` folder (no folder per session), and come back from it after a restart; a
/// session ended by a clean CONNECT leaves it for good.
#[tokio::test]
async fn session_consumers_share_one_log_and_come_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let addr = mqtt_addr(&server);
    for id in ["log-a", "log-b", "log-c"] {
        let mut sub = v4_with(addr, id, |o| {
            o.set_clean_session(false);
        })
        .await;
        sub.subscribe(&format!("{id}/#"), rumqttc::QoS::AtLeastOnce).await;
        sub.client.disconnect().await.unwrap();
    }
    // A clean CONNECT ends log-c's session and removes its consumer.
    let gone = v4(addr, "log-c").await;
    gone.client.disconnect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let msgs_dir = stream_dir(dir.path(), "$MQTT_msgs");
    assert!(msgs_dir.join("consumers.log").is_file(), "shared consumer log");
    assert!(!msgs_dir.join("obs").exists(), "no folder per session consumer");
    server.shutdown().await;

    let server = start(dir.path()).await;
    let js = js_of(&server).await;
    let msgs = js.get_stream("$MQTT_msgs").await.unwrap();
    for id in ["log-a", "log-b"] {
        let info = msgs.consumer_info(hash8(id)).await.unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(
            info.config.filter_subjects,
            vec![format!("$MQTT.msgs.{id}"), format!("$MQTT.msgs.{id}.>")]
        );
        assert_eq!(info.config.durable_name.as_deref(), Some(hash8(id).as_str()));
    }
    assert!(msgs.consumer_info(hash8("log-c")).await.is_err(), "removed for good");

    // The restored consumer still delivers to its session.
    let mut sub = v4_with(mqtt_addr(&server), "log-a", |o| {
        o.set_clean_session(false);
    })
    .await;
    publish_qos1(mqtt_addr(&server), "log-a/x", "after", false).await;
    assert_eq!(&sub.next_publish().await.payload[..], b"after");
    server.shutdown().await;
}

/// The gateway acknowledges its sessions' consumers directly: acks work (the message leaves
/// the interest stream) without a `$JS.ACK` subscription per session, which would cost every
/// session memory and every ack a sublist lookup.
#[tokio::test]
async fn session_consumers_are_acknowledged_without_an_ack_subscription() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let addr = mqtt_addr(&server);
    let mut sub = persistent_v4(addr, "direct-acks").await;
    sub.subscribe("acks/#", rumqttc::QoS::AtLeastOnce).await;
    publish_qos1(addr, "acks/1", "one", false).await;
    assert_eq!(&sub.next_publish().await.payload[..], b"one");

    let js = js_of(&server).await;
    let mut msgs = js.get_stream("$MQTT_msgs").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while msgs.info().await.unwrap().state.messages > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the acked message is still stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let consumer = hash8("direct-acks");
    let nc = async_nats::connect(format!("nats://{}", server.nats_addr)).await.unwrap();
    let err = nc.request(format!("$JS.ACK.$MQTT_msgs.{consumer}.1.1.1.0.0"), "".into()).await.unwrap_err();
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders, "no ack subscription: {err}");
    server.shutdown().await;
}

/// The consumer names on `$MQTT_msgs` of shared subscription groups (`shr_<hash>`).
async fn group_consumers(js: &jetstream::Context) -> Vec<String> {
    let stream = js.get_stream("$MQTT_msgs").await.unwrap();
    let names: Vec<String> = stream.consumer_names().map(|n| n.unwrap()).collect().await;
    names.into_iter().filter(|n| n.starts_with("shr_")).collect()
}

/// Regression: QoS 1 messages for a shared subscription whose only member (a persistent
/// session) was offline were dropped; mosquitto queues them for the session. They now wait in
/// the group's consumer, also across a restart, and the subscription comes back with the
/// session.
#[tokio::test]
async fn shared_subscription_messages_wait_for_an_offline_member_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let addr = mqtt_addr(&server);
    let persistent = |o: &mut rumqttc::v5::MqttOptions| {
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(3600));
    };
    let mut worker = crate::mqtt::v5_with(addr, "away-worker", persistent).await;
    worker.subscribe("$share/workers/tasks/+", rumqttc::v5::mqttbytes::QoS::AtLeastOnce).await;
    worker.client.disconnect().await.unwrap();
    drop(worker);
    publish_qos1(addr, "tasks/1", "while away", false).await;
    server.shutdown().await;

    let server = start(dir.path()).await;
    let addr = mqtt_addr(&server);
    publish_qos1(addr, "tasks/2", "after the restart", false).await;
    // Reconnects without subscribing: the session brings its shared subscription back.
    let mut worker = crate::mqtt::v5_with(addr, "away-worker", persistent).await;
    for want in ["while away", "after the restart"] {
        let task = worker.next_publish().await;
        assert_eq!(&task.payload[..], want.as_bytes());
        assert_eq!(task.qos, rumqttc::v5::mqttbytes::QoS::AtLeastOnce);
    }
    publish_qos1(addr, "tasks/3", "once back", false).await;
    let task = worker.next_publish().await;
    assert_eq!((&task.topic[..], &task.payload[..]), (&b"tasks/3"[..], &b"once back"[..]));
    server.shutdown().await;
}

/// QoS 1 messages of a shared subscription reach one member each (a clean and a persistent
/// session here); the group's consumer ends with its last member, and nothing is stored for
/// it after that.
#[tokio::test]
async fn a_shared_group_delivers_each_message_once_and_ends_with_its_last_member() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let addr = mqtt_addr(&server);
    let q1 = rumqttc::v5::mqttbytes::QoS::AtLeastOnce;
    let mut clean = crate::mqtt::v5_with(addr, "clean-member", |_| {}).await;
    let mut kept = crate::mqtt::v5_with(addr, "kept-member", |o| {
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(3600));
    })
    .await;
    clean.subscribe("$share/g/spread/#", q1).await;
    kept.subscribe("$share/g/spread/#", q1).await;
    let js = js_of(&server).await;
    assert_eq!(group_consumers(&js).await.len(), 1, "one consumer for the group");

    let mut publisher = v4(addr, "spreader").await;
    for i in 0..20 {
        publisher.client.publish(format!("spread/{i}"), rumqttc::QoS::AtLeastOnce, false, "x").await.unwrap();
    }
    for _ in 0..20 {
        publisher.wait_for(|e| matches!(e, rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)))).await;
    }
    let mut topics: Vec<String> = Vec::new();
    for member in [&mut clean, &mut kept] {
        let got = member.publishes_within(Duration::from_millis(600)).await;
        assert!(!got.is_empty(), "both members get messages");
        topics.extend(got.iter().map(|p| String::from_utf8_lossy(&p.topic).into_owned()));
    }
    topics.sort();
    let mut want: Vec<String> = (0..20).map(|i| format!("spread/{i}")).collect();
    want.sort();
    assert_eq!(topics, want, "each message once");

    // The clean session's end leaves the persistent one; its unsubscribe ends the group.
    clean.client.disconnect().await.unwrap();
    kept.client.unsubscribe("$share/g/spread/#").await.unwrap();
    kept.wait_for(|e| {
        matches!(e, rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::UnsubAck(_)))
    })
    .await;
    assert_eq!(group_consumers(&js).await, Vec::<String>::new());
    publish_qos1(addr, "spread/late", "nobody", false).await;
    let msgs = js.get_stream("$MQTT_msgs").await.unwrap().info().await.unwrap().state.messages;
    assert_eq!(msgs, 0, "nothing stored for an ended group");
    server.shutdown().await;
}

/// Regression: a session that expired while the server was down (or after a restart) kept its
/// record and its consumer, which held every QoS 1 message for it, until its client came back
/// (maybe never). The account's first CONNECT after a restart schedules the expiry of every
/// offline session again.
#[tokio::test]
async fn sessions_expire_after_a_restart_without_their_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let addr = mqtt_addr(&server);
    for (id, expiry) in [("short-lived", 1), ("long-lived", 3600)] {
        let mut connect = raw_connect(ProtocolVersion::V5, id, false);
        connect.properties.session_expiry_interval = Some(expiry);
        let mut raw = Raw::mqtt_connect(addr, connect, false).await;
        raw.send_packet(ProtocolVersion::V5, subscribe_packet("expiring/t", RawQoS::AtLeastOnce)).await;
        assert_eq!(raw.read_packet().await.first(), Some(&0x90), "SUBACK");
        drop(raw);
    }
    server.shutdown().await;

    let server = start(dir.path()).await;
    // Any MQTT client opens the account's store.
    publish_qos1(mqtt_addr(&server), "expiring/t", "kept for long-lived only", false).await;
    let js = js_of(&server).await;
    let msgs = js.get_stream("$MQTT_msgs").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while msgs.consumer_info(hash8("short-lived")).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "the expired session kept its consumer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sess = js.get_stream("$MQTT_sess").await.unwrap();
    let record = |id: &str| format!("$MQTT.sess.{}", hash8(id));
    assert!(sess.get_last_raw_message_by_subject(&record("short-lived")).await.is_err(), "record gone");
    assert!(sess.get_last_raw_message_by_subject(&record("long-lived")).await.is_ok(), "record kept");
    assert!(msgs.consumer_info(hash8("long-lived")).await.is_ok(), "consumer kept");
    server.shutdown().await;
}
