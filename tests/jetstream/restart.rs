//! State survives a restart: streams, messages, consumers, positions and pending acks.

use std::time::Duration;

use async_nats::jetstream::consumer::{self, AckPolicy};
use async_nats::jetstream::stream;
use futures::StreamExt;

use crate::harness::test_config;

#[tokio::test]
async fn restart_keeps_streams_consumers_positions_and_pending_acks() {
    let dir = tempfile::tempdir().unwrap();
    let start = || async {
        let mut config = test_config(dir.path());
        config.jetstream.store_dir = Some(dir.path().join("js"));
        jetway::run(config).await.unwrap()
    };
    let server = start().await;
    let nc = async_nats::connect(format!("nats://{}", server.nats_addr)).await.unwrap();
    let js = async_nats::jetstream::new(nc);
    let s = js
        .create_stream(stream::Config {
            name: "KEEP".into(),
            subjects: vec!["keep.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    for i in 0..10 {
        js.publish(format!("keep.{i}"), format!("{i}").into()).await.unwrap().await.unwrap();
    }
    let c = s
        .create_consumer(consumer::pull::Config {
            durable_name: Some("d".into()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = c.fetch().max_messages(4).messages().await.unwrap();
    let mut n = 0;
    while let Some(m) = batch.next().await {
        let m = m.unwrap();
        n += 1;
        if n <= 3 {
            m.double_ack().await.unwrap();
        }
    }
    assert_eq!(n, 4, "3 acked, 1 pending");
    server.shutdown().await;

    let server = start().await;
    let nc = async_nats::connect(format!("nats://{}", server.nats_addr)).await.unwrap();
    let js = async_nats::jetstream::new(nc);
    let mut s = js.get_stream("KEEP").await.unwrap();
    let info = s.info().await.unwrap();
    assert_eq!((info.state.messages, info.state.last_sequence), (10, 10));
    let mut c: consumer::Consumer<consumer::pull::Config> = s.get_consumer("d").await.unwrap();
    let ci = c.info().await.unwrap();
    assert_eq!(ci.delivered.stream_sequence, 4);
    assert_eq!(ci.ack_floor.stream_sequence, 3);
    assert_eq!(ci.num_ack_pending, 1);
    assert_eq!(ci.num_pending, 6);
    server.shutdown().await;
}
