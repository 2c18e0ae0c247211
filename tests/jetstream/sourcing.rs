//! Mirrors and sources between streams of one server, through async-nats.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::harness::{test_config, TestServer};

/// Polls stream info until `done` holds (sourcing is asynchronous).
async fn wait_for(js: &jetstream::Context, name: &str, done: impl Fn(&stream::Info) -> bool) -> stream::Info {
    let mut s = js.get_stream(name).await.unwrap();
    for _ in 0..100 {
        let info = s.info().await.unwrap().clone();
        if done(&info) {
            return info;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never reached the expected state: {:?}", s.info().await.unwrap().state);
}

async fn publish(js: &jetstream::Context, subject: &str, body: &str) -> u64 {
    js.publish(subject.to_string(), body.to_string().into()).await.unwrap().await.unwrap().sequence
}

#[tokio::test]
async fn mirror_copies_messages_keeping_sequences_and_refuses_publishes() {
    let server = TestServer::start().await;
    let js = super::js(&server).await;
    let origin = js
        .create_stream(stream::Config {
            name: "ORIGIN".into(),
            subjects: vec!["o.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    for i in 1..=5 {
        publish(&js, &format!("o.{i}"), &format!("m{i}")).await;
    }
    origin.delete_message(3).await.unwrap();
    js.create_stream(stream::Config {
        name: "M".into(),
        mirror: Some(stream::Source { name: "ORIGIN".into(), ..Default::default() }),
        ..Default::default()
    })
    .await
    .unwrap();
    let info = wait_for(&js, "M", |i| i.state.last_sequence == 5).await;
    assert_eq!(info.state.messages, 4, "the deleted sequence stays deleted");
    let mirror = info.mirror.expect("mirror info");
    assert_eq!((mirror.name.as_str(), mirror.lag), ("ORIGIN", 0));
    let m = js.get_stream("M").await.unwrap();
    let msg = m.get_raw_message(4).await.unwrap();
    assert_eq!((msg.subject.as_str(), &msg.payload[..]), ("o.4", &b"m4"[..]));
    let original = origin.get_raw_message(4).await.unwrap();
    assert_eq!(msg.time, original.time, "timestamps are kept");

    // New messages follow.
    publish(&js, "o.6", "m6").await;
    wait_for(&js, "M", |i| i.state.last_sequence == 6 && i.state.messages == 5).await;
    // The mirror has no subjects: a publish finds no stream.
    assert!(js.publish("M", "x".into()).await.unwrap().await.is_err());
}

#[tokio::test]
async fn sources_merge_two_streams_with_a_filter() {
    let server = TestServer::start().await;
    let js = super::js(&server).await;
    for (name, subject) in [("EU", "eu.>"), ("US", "us.>")] {
        js.create_stream(stream::Config {
            name: name.into(),
            subjects: vec![subject.into()],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    publish(&js, "eu.orders", "e1").await;
    publish(&js, "eu.returns", "e2").await;
    publish(&js, "us.orders", "u1").await;
    js.create_stream(stream::Config {
        name: "ALL".into(),
        subjects: vec!["all.>".into()],
        sources: Some(vec![
            stream::Source {
                name: "EU".into(),
                filter_subject: Some("eu.orders".into()),
                ..Default::default()
            },
            stream::Source { name: "US".into(), ..Default::default() },
        ]),
        ..Default::default()
    })
    .await
    .unwrap();
    let info = wait_for(&js, "ALL", |i| i.state.messages == 2).await;
    assert_eq!(info.sources.len(), 2);
    assert!(info.sources.iter().all(|s| s.lag == 0 && s.active.is_some()));
    publish(&js, "eu.orders", "e3").await;
    publish(&js, "eu.returns", "e4").await;
    publish(&js, "us.orders", "u2").await;
    publish(&js, "all.local", "l1").await;
    wait_for(&js, "ALL", |i| i.state.messages == 5).await;
    let all = js.get_stream("ALL").await.unwrap();
    let mut subjects = Vec::new();
    for seq in 1..=5 {
        let m = all.get_raw_message(seq).await.unwrap();
        if m.subject.as_str() != "all.local" {
            let source = m.headers.get("Nats-Stream-Source").map(|v| v.to_string()).unwrap_or_default();
            assert!(source.starts_with("EU") || source.starts_with("US"), "source header {source:?}");
        }
        subjects.push(m.subject.to_string());
    }
    subjects.sort();
    assert_eq!(subjects, ["all.local", "eu.orders", "eu.orders", "us.orders", "us.orders"]);
}

#[tokio::test]
async fn mirror_and_source_catch_up_after_a_restart_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let start = || async {
        let config = test_config(dir.path());
        jetway::run(config).await.unwrap()
    };
    let server = start().await;
    let js = jetstream::new(async_nats::connect(format!("nats://{}", server.nats_addr)).await.unwrap());
    js.create_stream(stream::Config {
        name: "SRC".into(),
        subjects: vec!["s.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    js.create_stream(stream::Config {
        name: "MIR".into(),
        mirror: Some(stream::Source { name: "SRC".into(), ..Default::default() }),
        ..Default::default()
    })
    .await
    .unwrap();
    js.create_stream(stream::Config {
        name: "AGG".into(),
        subjects: vec!["agg".into()],
        sources: Some(vec![stream::Source { name: "SRC".into(), ..Default::default() }]),
        ..Default::default()
    })
    .await
    .unwrap();
    for i in 0..10 {
        publish(&js, &format!("s.{i}"), "x").await;
    }
    wait_for(&js, "MIR", |i| i.state.messages == 10).await;
    wait_for(&js, "AGG", |i| i.state.messages == 10).await;
    server.shutdown().await;

    let server = start().await;
    let js = jetstream::new(async_nats::connect(format!("nats://{}", server.nats_addr)).await.unwrap());
    for i in 10..15 {
        publish(&js, &format!("s.{i}"), "x").await;
    }
    wait_for(&js, "MIR", |i| i.state.messages == 15 && i.state.last_sequence == 15).await;
    wait_for(&js, "AGG", |i| i.state.messages == 15).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let info = js.get_stream("AGG").await.unwrap().info().await.unwrap().clone();
    assert_eq!(info.state.messages, 15, "nothing copied twice after the restart");
    server.shutdown().await;
}

#[tokio::test]
async fn source_created_before_its_origin_starts_when_the_origin_appears() {
    let server = TestServer::start().await;
    let js = super::js(&server).await;
    js.create_stream(stream::Config {
        name: "LATE".into(),
        mirror: Some(stream::Source { name: "NOT_YET".into(), ..Default::default() }),
        ..Default::default()
    })
    .await
    .unwrap();
    js.create_stream(stream::Config {
        name: "NOT_YET".into(),
        subjects: vec!["ny".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    publish(&js, "ny", "hello").await;
    wait_for(&js, "LATE", |i| i.state.messages == 1).await;
}

/// Account A holds ORDERS and exports what a sourcing stream needs (the consumer-create API
/// for it, flow control, the delivery subjects); account B imports them, with A's API under
/// `$JS.a.API`.
const EXTERNAL_ACCOUNTS: &str = r#"accounts {
  A: {
    jetstream: enabled
    users: [{user: a, password: a}]
    exports: [
      {service: "$JS.API.CONSUMER.CREATE.ORDERS"}
      {service: "$JS.API.CONSUMER.CREATE.ORDERS.>"}
      {service: "$JS.FC.>"}
      {stream: "deliver.b.>"}
    ]
  }
  B: {
    jetstream: enabled
    users: [{user: b, password: b}]
    imports: [
      {service: {account: A, subject: "$JS.API.CONSUMER.CREATE.ORDERS"}, to: "$JS.a.API.CONSUMER.CREATE.ORDERS"}
      {service: {account: A, subject: "$JS.API.CONSUMER.CREATE.ORDERS.>"}, to: "$JS.a.API.CONSUMER.CREATE.ORDERS.>"}
      {service: {account: A, subject: "$JS.FC.>"}}
      {stream: {account: A, subject: "deliver.b.>"}}
    ]
  }
}"#;

#[tokio::test]
async fn another_accounts_stream_is_sourced_and_mirrored_through_imports_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let start = || async {
        let loaded =
            jetway::config::Config::from_conf_str(EXTERNAL_ACCOUNTS, std::path::Path::new("x.conf")).unwrap();
        let mut config = loaded.config;
        let test = test_config(dir.path());
        (config.host, config.port, config.http_port) = (test.host, test.port, test.http_port);
        (config.mqtt.host, config.mqtt.port) = (test.mqtt.host, test.mqtt.port);
        config.jetstream.store_dir = test.jetstream.store_dir;
        jetway::run(config).await.unwrap()
    };
    let login = |server: &jetway::ServerHandle, user: &str| {
        let url = format!("nats://{}", server.nats_addr);
        let user = user.to_string();
        async move {
            let client = async_nats::ConnectOptions::with_user_and_password(user.clone(), user)
                .connect(url)
                .await
                .unwrap();
            jetstream::new(client)
        }
    };
    let server = start().await;
    let (a, b) = (login(&server, "a").await, login(&server, "b").await);
    a.create_stream(stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    for subject in ["orders.a.1", "orders.b.2", "orders.a.3"] {
        publish(&a, subject, "m").await;
    }
    let external =
        Some(stream::External { api_prefix: "$JS.a.API".into(), delivery_prefix: Some("deliver.b".into()) });
    let from_a = |filter: &str| stream::Source {
        name: "ORDERS".into(),
        filter_subject: Some(filter.to_string()).filter(|f| !f.is_empty()),
        external: external.clone(),
        ..Default::default()
    };
    b.create_stream(stream::Config {
        name: "AGG".into(),
        subjects: vec!["agg".into()],
        sources: Some(vec![from_a(""), from_a("orders.a.>")]),
        ..Default::default()
    })
    .await
    .unwrap();
    b.create_stream(stream::Config { name: "MIR".into(), mirror: Some(from_a("")), ..Default::default() })
        .await
        .unwrap();
    wait_for(&b, "AGG", |i| i.state.messages == 5).await;
    // async-nats' `SourceInfo` has no `external`: the API's answer, as JSON.
    let info: serde_json::Value = b.request("STREAM.INFO.AGG", &serde_json::json!({})).await.unwrap();
    let sources = info["sources"].as_array().cloned().unwrap_or_default();
    assert_eq!(sources.len(), 2, "{info}");
    assert!(
        sources
            .iter()
            .all(|s| s["external"] == serde_json::json!({"api": "$JS.a.API", "deliver": "deliver.b"})),
        "{info}"
    );
    wait_for(&b, "MIR", |i| i.state.messages == 3 && i.state.last_sequence == 3).await;
    let copied = b.get_stream("AGG").await.unwrap().get_raw_message(1).await.unwrap();
    let header = copied.headers.get("Nats-Stream-Source").map(|v| v.to_string()).unwrap_or_default();
    // The origin's name and nats-server's hash of the API prefix.
    assert!(
        header.starts_with(&format!("ORDERS:{} ", jetway::jetstream::short_hash("$JS.a.API"))),
        "{header}"
    );
    server.shutdown().await;

    let server = start().await;
    let (a, b) = (login(&server, "a").await, login(&server, "b").await);
    publish(&a, "orders.a.4", "late").await;
    wait_for(&b, "AGG", |i| i.state.messages == 7).await;
    wait_for(&b, "MIR", |i| i.state.messages == 4 && i.state.last_sequence == 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let info = b.get_stream("AGG").await.unwrap().info().await.unwrap().clone();
    assert_eq!(info.state.messages, 7, "nothing copied twice after the restart");
    // A's streams stay A's: B has no ORDERS of its own.
    assert!(b.get_stream("ORDERS").await.is_err());
    server.shutdown().await;
}
