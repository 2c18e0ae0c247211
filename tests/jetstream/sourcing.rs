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
