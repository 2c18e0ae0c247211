//! Push-consumer flow control: `100 FlowControl Request`, stalls, and async-nats' ordered consumer.

use std::time::Duration;

use async_nats::jetstream::consumer::{self, AckPolicy};
use async_nats::jetstream::stream;
use futures::StreamExt;

use crate::harness::TestServer;

async fn stream_of(js: &async_nats::jetstream::Context, name: &str, subject: &str, n: usize) {
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec![format!("{subject}.>")],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut acks = Vec::with_capacity(n);
    for i in 0..n {
        acks.push(
            js.publish(format!("{subject}.{}", i % 7), format!("message {i:06}").into()).await.unwrap(),
        );
    }
    for a in acks {
        a.await.unwrap();
    }
}

#[tokio::test]
async fn ordered_consumer_reads_thousands_of_messages_under_flow_control() {
    let server = TestServer::start().await;
    let js = super::js(&server).await;
    stream_of(&js, "BIG", "big", 5000).await;
    let s = js.get_stream("BIG").await.unwrap();
    let c = s
        .create_consumer(consumer::push::OrderedConfig {
            deliver_subject: "ordered.in".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = c.messages().await.unwrap();
    for i in 0..5000u64 {
        let m = tokio::time::timeout(Duration::from_secs(10), msgs.next())
            .await
            .unwrap_or_else(|_| panic!("stuck after {i} messages"))
            .unwrap()
            .unwrap();
        assert_eq!(m.info().unwrap().stream_sequence, i + 1);
    }
}

#[tokio::test]
async fn push_consumer_stalls_until_the_flow_control_request_is_answered() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let js = async_nats::jetstream::new(client.clone());
    stream_of(&js, "FC", "fc", 3000).await;
    let mut inbox = client.subscribe("fcin").await.unwrap();
    client.flush().await.unwrap();
    let s = js.get_stream("FC").await.unwrap();
    s.create_consumer(consumer::push::Config {
        durable_name: Some("fc".into()),
        deliver_subject: "fcin".into(),
        ack_policy: AckPolicy::None,
        flow_control: true,
        idle_heartbeat: Duration::from_millis(300),
        ..Default::default()
    })
    .await
    .unwrap();

    // Leave the first request unanswered: delivery stops short of the stream.
    let mut data = 0;
    let mut request: Option<String> = None;
    let stalled_subject = loop {
        let m = tokio::time::timeout(Duration::from_secs(5), inbox.next()).await.unwrap().unwrap();
        match (m.status.map(|s| s.as_u16()), m.reply.as_ref()) {
            (None, _) => data += 1,
            (Some(100), Some(reply)) => {
                assert_eq!(m.description.as_deref(), Some("FlowControl Request"));
                assert!(reply.starts_with("$JS.FC.FC.fc."), "{reply}");
                request.get_or_insert_with(|| reply.to_string());
            }
            (Some(100), None) => {
                let stalled =
                    m.headers.as_ref().and_then(|h| h.get("Nats-Consumer-Stalled")).map(|v| v.to_string());
                if let Some(subject) = stalled {
                    break subject;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(data < 3000, "delivery stalled, {data} delivered");
    assert_eq!(Some(stalled_subject.clone()), request, "the heartbeat names the open request");

    // Answer it (and every later one): the rest arrives.
    client.publish(stalled_subject, "".into()).await.unwrap();
    while data < 3000 {
        let m = tokio::time::timeout(Duration::from_secs(5), inbox.next()).await.unwrap().unwrap();
        match (m.status, m.reply) {
            (None, _) => data += 1,
            (Some(_), Some(reply)) => client.publish(reply, "".into()).await.unwrap(),
            _ => {}
        }
    }
}
