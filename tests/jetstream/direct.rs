//! Batched `DIRECT.GET` (`batch`, `max_bytes`, `multi_last`, `up_to_seq`) through raw requests.

use std::time::Duration;

use async_nats::jetstream::stream;
use futures::StreamExt;

use crate::harness::TestServer;

/// Sends a direct get and collects the replies up to and including the closing status.
async fn direct_get(client: &async_nats::Client, stream: &str, body: &str) -> Vec<async_nats::Message> {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.unwrap();
    client
        .publish_with_reply(format!("$JS.API.DIRECT.GET.{stream}"), inbox, body.to_string().into())
        .await
        .unwrap();
    let mut out = Vec::new();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), sub.next()).await.unwrap().unwrap();
        let done = m.status.is_some();
        out.push(m);
        if done {
            return out;
        }
    }
}

fn header(m: &async_nats::Message, name: &str) -> String {
    m.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.to_string()).unwrap_or_default()
}

async fn kv_like_stream(server: &TestServer) -> async_nats::Client {
    let client = server.client().await;
    let js = async_nats::jetstream::new(client.clone());
    js.create_stream(stream::Config {
        name: "D".into(),
        subjects: vec!["d.>".into()],
        allow_direct: true,
        ..Default::default()
    })
    .await
    .unwrap();
    // seq: 1 d.a, 2 d.b, 3 d.a, 4 d.c, 5 d.b, 6 d.a
    for (subject, body) in
        [("d.a", "a1"), ("d.b", "b1"), ("d.a", "a2"), ("d.c", "c1"), ("d.b", "b2"), ("d.a", "a3")]
    {
        js.publish(subject, body.into()).await.unwrap().await.unwrap();
    }
    client
}

#[tokio::test]
async fn batch_streams_messages_with_pending_counts_then_eob() {
    let server = TestServer::start().await;
    let client = kv_like_stream(&server).await;
    let replies = direct_get(&client, "D", r#"{"seq":2,"batch":3}"#).await;
    assert_eq!(replies.len(), 4);
    let seqs: Vec<String> = replies[..3].iter().map(|m| header(m, "Nats-Sequence")).collect();
    assert_eq!(seqs, ["2", "3", "4"]);
    let pending: Vec<String> = replies[..3].iter().map(|m| header(m, "Nats-Num-Pending")).collect();
    assert_eq!(pending, ["4", "3", "2"]);
    let last: Vec<String> = replies[..3].iter().map(|m| header(m, "Nats-Last-Sequence")).collect();
    assert_eq!(last, ["0", "2", "3"]);
    let eob = &replies[3];
    assert_eq!(eob.status.map(|s| s.as_u16()), Some(204));
    assert_eq!(eob.description.as_deref(), Some("EOB"));
    assert_eq!(
        (header(eob, "Nats-Num-Pending"), header(eob, "Nats-Last-Sequence")),
        ("2".into(), "4".into())
    );

    // Filtered by subject.
    let replies = direct_get(&client, "D", r#"{"next_by_subj":"d.a","batch":10}"#).await;
    let bodies: Vec<&[u8]> = replies.iter().filter(|m| m.status.is_none()).map(|m| &m.payload[..]).collect();
    assert_eq!(bodies, [b"a1", b"a2", b"a3"]);
    assert_eq!(header(replies.last().unwrap(), "Nats-Num-Pending"), "0");

    // max_bytes stops the batch early (always at least one message).
    let replies = direct_get(&client, "D", r#"{"seq":1,"batch":10,"max_bytes":6}"#).await;
    assert_eq!(replies.len(), 2);
    // Nothing there: 404.
    let replies = direct_get(&client, "D", r#"{"seq":100,"batch":2}"#).await;
    assert_eq!(replies[0].status.map(|s| s.as_u16()), Some(404));
}

#[tokio::test]
async fn multi_last_returns_each_subjects_last_message_up_to_a_sequence() {
    let server = TestServer::start().await;
    let client = kv_like_stream(&server).await;
    let replies = direct_get(&client, "D", r#"{"multi_last":["d.a","d.b"]}"#).await;
    let seqs: Vec<String> =
        replies.iter().filter(|m| m.status.is_none()).map(|m| header(m, "Nats-Sequence")).collect();
    assert_eq!(seqs, ["5", "6"]);
    let eob = replies.last().unwrap();
    assert_eq!(eob.status.map(|s| s.as_u16()), Some(204));
    assert_eq!(header(eob, "Nats-UpTo-Sequence"), "6");

    let replies = direct_get(&client, "D", r#"{"multi_last":["d.>"],"up_to_seq":4}"#).await;
    let got: Vec<(String, String)> = replies
        .iter()
        .filter(|m| m.status.is_none())
        .map(|m| (header(m, "Nats-Subject"), String::from_utf8_lossy(&m.payload).into_owned()))
        .collect();
    assert_eq!(
        got,
        [("d.b".to_string(), "b1".to_string()), ("d.a".into(), "a2".into()), ("d.c".into(), "c1".into())]
    );
    assert_eq!(header(replies.last().unwrap(), "Nats-UpTo-Sequence"), "4");

    let replies = direct_get(&client, "D", r#"{"multi_last":["x.>"]}"#).await;
    assert_eq!(
        (replies[0].status.map(|s| s.as_u16()), replies[0].description.as_deref()),
        (Some(404), Some("No Results"))
    );
    let replies = direct_get(&client, "D", r#"{"multi_last":["d.a"],"seq":3}"#).await;
    assert_eq!(replies[0].status.map(|s| s.as_u16()), Some(408));
}

#[tokio::test]
async fn multi_last_over_the_limit_is_413() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let js = async_nats::jetstream::new(client.clone());
    js.create_stream(stream::Config {
        name: "MANY".into(),
        subjects: vec!["m.>".into()],
        allow_direct: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut acks = Vec::new();
    for i in 0..1100 {
        acks.push(js.publish(format!("m.{i}"), "x".into()).await.unwrap());
    }
    for a in acks {
        a.await.unwrap();
    }
    let replies = direct_get(&client, "MANY", r#"{"multi_last":["m.*"]}"#).await;
    assert_eq!(
        (replies[0].status.map(|s| s.as_u16()), replies[0].description.as_deref()),
        (Some(413), Some("Too Many Results"))
    );
}

#[tokio::test]
async fn a_batch_is_bounded_and_says_where_to_continue() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let js = async_nats::jetstream::new(client.clone());
    js.create_stream(stream::Config {
        name: "BIG".into(),
        subjects: vec!["big".into()],
        allow_direct: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut acks = Vec::new();
    for i in 0..1500 {
        acks.push(js.publish("big", format!("{i}").into()).await.unwrap());
    }
    for ack in acks {
        ack.await.unwrap();
    }
    let replies = direct_get(&client, "BIG", r#"{"seq":1,"batch":100000}"#).await;
    assert_eq!(replies.len(), 1024 + 1, "1,024 messages, then the closing status");
    let eob = replies.last().unwrap();
    assert_eq!(header(eob, "Nats-Last-Sequence"), "1024");
    assert_eq!(header(eob, "Nats-Num-Pending"), "476");
}
