//! The first slice: a stream, acks, a pull consumer, a KV bucket.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;

use super::js;
use crate::harness::TestServer;

#[tokio::test]
async fn create_stream_publish_and_pull_with_acks() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let stream = js
        .create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(stream.cached_info().config.name, "ORDERS");
    for i in 0..10 {
        let ack = js.publish(format!("orders.{i}"), format!("o{i}").into()).await.unwrap().await.unwrap();
        assert_eq!(ack.stream, "ORDERS");
        assert_eq!(ack.sequence, i + 1);
    }
    let consumer = stream
        .create_consumer(consumer::pull::Config { durable_name: Some("worker".into()), ..Default::default() })
        .await
        .unwrap();
    let mut batch = consumer.fetch().max_messages(10).messages().await.unwrap();
    let mut got = Vec::new();
    while let Some(m) = tokio::time::timeout(Duration::from_secs(5), batch.next()).await.unwrap() {
        let m = m.unwrap();
        got.push(m.subject.to_string());
        m.ack().await.unwrap();
    }
    assert_eq!(got.len(), 10);
    assert_eq!(got[0], "orders.0");
    let mut consumer = consumer;
    let info = consumer.info().await.unwrap();
    assert_eq!(info.delivered.stream_sequence, 10);
}

#[tokio::test]
async fn kv_put_get_update_delete() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let kv = js
        .create_key_value(jetstream::kv::Config { bucket: "cfg".into(), history: 5, ..Default::default() })
        .await
        .unwrap();
    let r1 = kv.put("color", "red".into()).await.unwrap();
    assert_eq!(kv.get("color").await.unwrap().unwrap(), "red".as_bytes());
    let r2 = kv.update("color", "blue".into(), r1).await.unwrap();
    assert!(r2 > r1);
    assert!(kv.update("color", "green".into(), r1).await.is_err(), "stale revision refused");
    kv.delete("color").await.unwrap();
    assert!(kv.get("color").await.unwrap().is_none());
}
