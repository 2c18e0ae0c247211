//! Subject mappings (nats-server's `mappings`, top-level and per account) through async-nats
//! and rumqttc: what a client publishes to a mapped subject reaches the destination's
//! subscribers, streams and MQTT sessions, and permissions judge the destination.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use jetway_protocols::mqtt::{MqttStr, Properties, ProtocolVersion, QoS, Will};

use crate::harness::{start_conf, TestServer};

const WAIT: Duration = Duration::from_secs(5);

const GLOBAL: &str = r#"
mappings = {
  "foo": "bar"
  "orders.*.*": "shipped.$2.$1"
  "dev.>": "devices.>"
  "split": [{destination: "left", weight: 30%}, {destination: "right", weight: 70%}]
  "gone": [{destination: "gone", weight: 0}, {destination: "elsewhere", weight: 0}]
}
jetstream { }
"#;

async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(WAIT, sub.next()).await.expect("message in time").expect("subscription open")
}

async fn nothing(sub: &mut async_nats::Subscriber) {
    if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
        panic!("unexpected message on {}", m.subject);
    }
}

#[tokio::test]
async fn a_published_subject_is_mapped_to_its_destination() {
    let server = start_conf(GLOBAL).await;
    let nc = server.client().await;
    let mut bar = nc.subscribe("bar").await.unwrap();
    let mut foo = nc.subscribe("foo").await.unwrap();
    let mut shipped = nc.subscribe("shipped.>").await.unwrap();
    nc.flush().await.unwrap();
    nc.publish("foo", "one".into()).await.unwrap();
    nc.publish("orders.eu.42", "two".into()).await.unwrap();
    let m = next(&mut bar).await;
    assert_eq!((m.subject.as_str(), &m.payload[..]), ("bar", &b"one"[..]));
    assert_eq!(next(&mut shipped).await.subject.as_str(), "shipped.42.eu");
    nothing(&mut foo).await;
}

#[tokio::test]
async fn weighted_destinations_share_the_messages_and_a_listed_source_drops_the_rest() {
    let server = start_conf(GLOBAL).await;
    let nc = server.client().await;
    let mut left = nc.subscribe("left").await.unwrap();
    let mut right = nc.subscribe("right").await.unwrap();
    let mut split = nc.subscribe("split").await.unwrap();
    let mut gone = nc.subscribe("gone").await.unwrap();
    let mut elsewhere = nc.subscribe("elsewhere").await.unwrap();
    nc.flush().await.unwrap();
    const N: usize = 400;
    for _ in 0..N {
        nc.publish("split", "m".into()).await.unwrap();
    }
    nc.publish("gone", "m".into()).await.unwrap();
    nc.flush().await.unwrap();
    let (mut l, mut r) = (0, 0);
    while l + r < N {
        tokio::select! {
            Some(_) = left.next() => l += 1,
            Some(_) = right.next() => r += 1,
            _ = tokio::time::sleep(WAIT) => panic!("{l} + {r} of {N} arrived"),
        }
    }
    // 30% / 70%: far from either edge for 400 messages (binomial sd ~9).
    assert!((70..=170).contains(&l), "left got {l} of {N}");
    nothing(&mut split).await;
    nothing(&mut gone).await;
    nothing(&mut elsewhere).await;
}

#[tokio::test]
async fn a_stream_stores_and_acknowledges_the_mapped_subject() {
    let server = start_conf(GLOBAL).await;
    let js = async_nats::jetstream::new(server.client().await);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "BAR".into(),
        subjects: vec!["bar".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let ack = js.publish("foo", "kept".into()).await.unwrap().await.unwrap();
    assert_eq!((ack.stream.as_str(), ack.sequence), ("BAR", 1));
    let stored = js.get_stream("BAR").await.unwrap().get_raw_message(1).await.unwrap();
    assert_eq!(stored.subject.as_str(), "bar");
}

#[tokio::test]
async fn an_mqtt_publish_and_will_are_mapped_to_another_topic() {
    let server = start_conf(GLOBAL).await;
    let nc = server.client().await;
    let mut devices = nc.subscribe("devices.>").await.unwrap();
    nc.flush().await.unwrap();
    let addr = server.mqtt_addr();
    let mut sub = crate::mqtt::v4(addr, "mapped-sub").await;
    sub.subscribe("devices/#", rumqttc::QoS::AtLeastOnce).await;
    let mut publisher = crate::mqtt::v4(addr, "publisher").await;
    publisher.client.publish("dev/7/temp", rumqttc::QoS::AtLeastOnce, false, "21").await.unwrap();
    publisher.wait_for(|e| matches!(e, rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)))).await;
    let p = sub.next_publish().await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("devices/7/temp", &b"21"[..]));
    assert_eq!(next(&mut devices).await.subject.as_str(), "devices.7.temp");
    // A will goes where its topic is mapped, as any PUBLISH.
    let mut connect = crate::mqtt::raw_connect(ProtocolVersion::V4, "dying", true);
    connect.will = Some(Will {
        topic: MqttStr::from("dev/7/status".to_owned()),
        payload: Bytes::from_static(b"lost"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Properties::default(),
    });
    let dying = crate::mqtt::Raw::mqtt_connect(addr, connect, false).await;
    drop(dying); // the connection closes without DISCONNECT: the will goes out
    assert_eq!(next(&mut devices).await.subject.as_str(), "devices.7.status");
    let p = sub.next_publish().await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("devices/7/status", &b"lost"[..]));
}

const ACCOUNTS: &str = r#"
accounts {
  A: {
    users: [{user: a, password: a, permissions: {publish: {allow: ["ok.>", "_INBOX.>", "_R_.>"]}, subscribe: {allow: [">"]}}}]
    mappings: { "in.*": "ok.$1", "blocked": "no.way", "svc.old": "svc.new" }
    exports: [{service: "svc.>"}]
  }
  B: {
    users: [{user: b, password: b}]
    imports: [{service: {account: A, subject: "svc.>"}}]
    mappings: { "foo": "bar" }
  }
}
"#;

async fn user(server: &TestServer, name: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(name.into(), name.into())
        .connect(server.url())
        .await
        .expect("user connects")
}

#[tokio::test]
async fn permissions_judge_the_mapped_subject_and_mappings_stay_in_their_account() {
    let server = start_conf(ACCOUNTS).await;
    let a = user(&server, "a").await;
    let b = user(&server, "b").await;
    let mut ok = a.subscribe("ok.>").await.unwrap();
    let mut a_bar = a.subscribe("bar").await.unwrap();
    let mut b_bar = b.subscribe("bar").await.unwrap();
    a.flush().await.unwrap();
    b.flush().await.unwrap();
    // `in.x` is outside a's permissions, its destination `ok.x` inside.
    a.publish("in.x", "m".into()).await.unwrap();
    assert_eq!(next(&mut ok).await.subject.as_str(), "ok.x");
    // B's mapping is not A's.
    a.publish("foo", "m".into()).await.unwrap();
    b.publish("foo", "m".into()).await.unwrap();
    assert_eq!(next(&mut b_bar).await.subject.as_str(), "bar");
    nothing(&mut a_bar).await;
    // `blocked` maps to `no.way`, which a may not publish: the violation names the destination.
    let mut raw = crate::harness::RawClient::connect(server.addr).await;
    raw.send(b"CONNECT {\"user\":\"a\",\"pass\":\"a\",\"verbose\":false}\r\nPUB blocked 1\r\nx\r\nPING\r\n")
        .await;
    raw.expect("-ERR 'Permissions Violation for Publish to \"no.way\"'\r\n").await;
}

#[tokio::test]
async fn a_service_import_follows_the_exporters_mapping() {
    let server = start_conf(ACCOUNTS).await;
    let a = user(&server, "a").await;
    let b = user(&server, "b").await;
    let mut new = a.subscribe("svc.new").await.unwrap();
    a.flush().await.unwrap();
    let responder = tokio::spawn({
        let a = a.clone();
        async move {
            let msg = next(&mut new).await;
            a.publish(msg.reply.expect("reply"), "answered".into()).await.unwrap();
        }
    });
    let answer =
        tokio::time::timeout(WAIT, b.request("svc.old", "?".into())).await.expect("in time").unwrap();
    assert_eq!(&answer.payload[..], b"answered");
    responder.await.unwrap();
}

#[tokio::test]
async fn a_bad_mapping_stops_the_server_from_starting() {
    for (conf, why) in [
        (
            r#"mappings = { "a": [{destination: "b", weight: 60}, {destination: "c", weight: 50}] }"#,
            "total weight",
        ),
        (r#"mappings = { "a.*": "b.$2" }"#, "Error adding mapping for \"a.*\""),
        (r#"mappings = { "a": {destination: "b"} }"#, "Missing weight"),
    ] {
        let loaded = jetway::Config::from_conf_str(conf, std::path::Path::new("bad.conf")).expect("parses");
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::harness::test_config(dir.path());
        config.mappings = loaded.config.mappings;
        let error = jetway::run(config).await.err().expect("refused").to_string();
        assert!(error.contains(why), "{conf}: {error}");
    }
}
