//! `STREAM.SNAPSHOT` and `STREAM.RESTORE` through raw requests (async-nats has no API for them).

use std::time::Duration;

use async_nats::jetstream::consumer::{self, AckPolicy};
use async_nats::jetstream::stream;
use futures::StreamExt;

use crate::harness::TestServer;

async fn request(client: &async_nats::Client, subject: String, body: String) -> serde_json::Value {
    let reply = client.request(subject, body.into()).await.unwrap();
    serde_json::from_slice(&reply.payload).unwrap()
}

#[tokio::test]
async fn snapshot_delete_restore_round_trip_keeps_messages_and_consumers() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let js = async_nats::jetstream::new(client.clone());
    let s = js
        .create_stream(stream::Config {
            name: "SNAP".into(),
            subjects: vec!["snap.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    for i in 0..300 {
        js.publish(format!("snap.{}", i % 3), format!("payload {i} {}", "x".repeat(100)).into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    s.delete_message(10).await.unwrap();
    let c = s
        .create_consumer(consumer::pull::Config {
            durable_name: Some("worker".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = c.fetch().max_messages(5).messages().await.unwrap();
    while let Some(m) = batch.next().await {
        m.unwrap().double_ack().await.unwrap();
    }

    // Snapshot: the reply, then acked chunks, then the 204 end marker.
    let deliver = client.new_inbox();
    let mut chunks = client.subscribe(deliver.clone()).await.unwrap();
    let reply = request(
        &client,
        "$JS.API.STREAM.SNAPSHOT.SNAP".into(),
        serde_json::json!({"deliver_subject": deliver, "chunk_size": 4096, "window_size": 8192}).to_string(),
    )
    .await;
    assert_eq!(reply["type"], "io.nats.jetstream.api.v1.stream_snapshot_response");
    assert_eq!(reply["config"]["name"], "SNAP");
    assert_eq!(reply["state"]["messages"], 299);
    let mut snapshot = Vec::new();
    let mut count = 0;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), chunks.next()).await.unwrap().unwrap();
        if let Some(status) = m.status {
            assert_eq!(status.as_u16(), 204);
            break;
        }
        let ack = m.reply.unwrap().to_string();
        assert!(ack.starts_with("$JS.SNAPSHOT.ACK.SNAP."), "{ack}");
        assert!(ack.ends_with(&format!(".{}.{count}", m.payload.len())), "{ack}");
        snapshot.extend_from_slice(&m.payload);
        count += 1;
        client.publish(ack, "".into()).await.unwrap();
    }
    assert!(count > 2, "several chunks of at most 4 KiB: {count}");

    js.delete_stream("SNAP").await.unwrap();
    assert!(js.get_stream("SNAP").await.is_err());

    // Restore: ask for a deliver subject, upload the chunks, end with an empty message.
    let reply = request(
        &client,
        "$JS.API.STREAM.RESTORE.SNAP".into(),
        serde_json::json!({"config": {"name": "SNAP", "subjects": ["snap.>"]}, "state": {}}).to_string(),
    )
    .await;
    let upload = reply["deliver_subject"].as_str().unwrap().to_string();
    for chunk in snapshot.chunks(3000) {
        let ack = client.request(upload.clone(), chunk.to_vec().into()).await.unwrap();
        assert!(ack.payload.is_empty());
    }
    let done = client.request(upload, "".into()).await.unwrap();
    let done: serde_json::Value = serde_json::from_slice(&done.payload).unwrap();
    assert_eq!(done["type"], "io.nats.jetstream.api.v1.stream_create_response", "{done}");
    assert_eq!(done["state"]["messages"], 299);
    assert_eq!(done["state"]["last_seq"], 300);

    let mut s = js.get_stream("SNAP").await.unwrap();
    let info = s.info().await.unwrap();
    assert_eq!((info.state.messages, info.state.first_sequence, info.state.last_sequence), (299, 1, 300));
    assert!(s.get_raw_message(10).await.is_err(), "deleted stays deleted");
    let m = s.get_raw_message(42).await.unwrap();
    assert!(m.payload.starts_with(b"payload 41 "));
    let mut c: consumer::Consumer<consumer::pull::Config> = s.get_consumer("worker").await.unwrap();
    let ci = c.info().await.unwrap();
    assert_eq!((ci.delivered.stream_sequence, ci.ack_floor.stream_sequence), (5, 5));
    let mut batch = c.fetch().max_messages(1).messages().await.unwrap();
    let next = batch.next().await.unwrap().unwrap();
    assert_eq!(next.info().unwrap().stream_sequence, 6, "the consumer continues where it was");
    // New publishes land in the restored stream.
    js.publish("snap.new", "x".into()).await.unwrap().await.unwrap();
}

#[tokio::test]
async fn restore_refuses_an_existing_stream_and_garbage() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let js = async_nats::jetstream::new(client.clone());
    js.create_stream(stream::Config { name: "HERE".into(), ..Default::default() }).await.unwrap();
    let reply =
        request(&client, "$JS.API.STREAM.RESTORE.HERE".into(), r#"{"config":{"name":"HERE"}}"#.into()).await;
    assert!(reply["error"]["err_code"].is_number(), "{reply}");

    let reply =
        request(&client, "$JS.API.STREAM.RESTORE.NEW".into(), r#"{"config":{"name":"NEW"}}"#.into()).await;
    let upload = reply["deliver_subject"].as_str().unwrap().to_string();
    client.request(upload.clone(), "not a snapshot".into()).await.unwrap();
    let done = client.request(upload, "".into()).await.unwrap();
    let done: serde_json::Value = serde_json::from_slice(&done.payload).unwrap();
    assert!(done["error"]["description"].as_str().unwrap().contains("restore failed"), "{done}");
    assert!(js.get_stream("NEW").await.is_err());
}
