//! Publishing: dedup, expected-* headers, rollups, TTL.

use std::time::Duration;

use async_nats::jetstream::message::PublishMessage as Publish;
use async_nats::jetstream::stream;

use super::{err_code, js};
use crate::harness::TestServer;

#[tokio::test]
async fn duplicate_message_ids_are_acked_with_the_original_sequence() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let mut s = js
        .create_stream(stream::Config { name: "D".into(), subjects: vec!["d".into()], ..Default::default() })
        .await
        .unwrap();
    let first = js
        .send_publish("d", Publish::build().payload("a".into()).message_id("m1"))
        .await
        .unwrap()
        .await
        .unwrap();
    let again = js
        .send_publish("d", Publish::build().payload("a".into()).message_id("m1"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(first.sequence, 1);
    assert!(!first.duplicate);
    assert_eq!(again.sequence, 1);
    assert!(again.duplicate);
    assert_eq!(s.info().await.unwrap().state.messages, 1);
}

#[tokio::test]
async fn expected_headers_are_checked() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    js.create_stream(stream::Config { name: "E".into(), subjects: vec!["e.*".into()], ..Default::default() })
        .await
        .unwrap();
    js.send_publish("e.a", Publish::build().payload("1".into()).message_id("id-1"))
        .await
        .unwrap()
        .await
        .unwrap();
    let wrong_seq = js
        .send_publish("e.a", Publish::build().payload("2".into()).expected_last_sequence(5))
        .await
        .unwrap()
        .await;
    assert_eq!(err_code(&wrong_seq.unwrap_err()), Some(10071));
    js.send_publish("e.a", Publish::build().payload("2".into()).expected_last_sequence(1))
        .await
        .unwrap()
        .await
        .unwrap();
    let wrong_subj = js
        .send_publish("e.a", Publish::build().payload("3".into()).expected_last_subject_sequence(1))
        .await
        .unwrap()
        .await;
    assert_eq!(err_code(&wrong_subj.unwrap_err()), Some(10071));
    js.send_publish("e.b", Publish::build().payload("3".into()).expected_last_subject_sequence(0))
        .await
        .unwrap()
        .await
        .unwrap();
    let wrong_stream = js
        .send_publish("e.a", Publish::build().payload("4".into()).expected_stream("OTHER"))
        .await
        .unwrap()
        .await;
    assert_eq!(err_code(&wrong_stream.unwrap_err()), Some(10060));
    let wrong_id = js
        .send_publish("e.a", Publish::build().payload("5".into()).expected_last_message_id("nope"))
        .await
        .unwrap()
        .await;
    assert_eq!(err_code(&wrong_id.unwrap_err()), Some(10070));
}

#[tokio::test]
async fn publish_to_a_subject_without_stream_gets_no_responders() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    // async-nats reports the 503 no-responders status as StreamNotFound.
    let err = js.publish("nowhere", "x".into()).await.unwrap().await.unwrap_err();
    assert!(format!("{err:?}").contains("StreamNotFound"), "{err:?}");
}

#[tokio::test]
async fn rollup_replaces_the_subject_history() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let mut s = js
        .create_stream(stream::Config {
            name: "R".into(),
            subjects: vec!["r.*".into()],
            allow_rollup: true,
            ..Default::default()
        })
        .await
        .unwrap();
    for _ in 0..3 {
        js.publish("r.a", "x".into()).await.unwrap().await.unwrap();
    }
    js.publish("r.b", "y".into()).await.unwrap().await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Rollup", "sub");
    js.publish_with_headers("r.a", headers, "snapshot".into()).await.unwrap().await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 2);
}

#[tokio::test]
async fn per_message_ttl_expires_messages() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let mut s = js
        .create_stream(stream::Config {
            name: "T".into(),
            subjects: vec!["t".into()],
            allow_message_ttl: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-TTL", "1s");
    js.publish_with_headers("t", headers, "short".into()).await.unwrap().await.unwrap();
    js.publish("t", "forever".into()).await.unwrap().await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 2);
    tokio::time::timeout(Duration::from_secs(5), async {
        while s.info().await.unwrap().state.messages != 1 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("TTL message expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_stream_capturing_its_own_ack_inbox_does_not_deadlock() {
    // Regression: a memory store acknowledges inside `append`; the ack, published while the
    // stream's ingest lock was held, came back into the same stream and deadlocked it.
    let server = TestServer::start().await;
    let js = js(&server).await;
    let mut s = js
        .create_stream(stream::Config {
            name: "LOOP".into(),
            subjects: vec!["loop.>".into(), "ackbox.>".into()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut raw = crate::harness::RawClient::connect(server.addr).await;
    raw.send(b"CONNECT {}\r\nPUB loop.x ackbox.1 2\r\nhi\r\nPING\r\n").await;
    raw.expect("PONG\r\n").await;
    let info =
        tokio::time::timeout(Duration::from_secs(5), s.info()).await.expect("stream still answers").unwrap();
    assert_eq!(info.state.messages, 2, "the message and its ack, captured on ackbox.1");
}

#[tokio::test]
async fn expected_values_are_read_as_nats_server_reads_them() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    js.create_stream(stream::Config { name: "X".into(), subjects: vec!["x.*".into()], ..Default::default() })
        .await
        .unwrap();
    let nc = server.client().await;
    let publish = |subject: &'static str, header: &'static str, value: &'static str| {
        let nc = nc.clone();
        async move {
            let mut headers = async_nats::HeaderMap::new();
            if !header.is_empty() {
                headers.insert(header, value);
            }
            let reply = nc.request_with_headers(subject, headers, "m".into()).await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&reply.payload).unwrap()
        }
    };
    publish("x.a", "Nats-Msg-Id", "first").await;
    // The last message's id is that of the last message: none, once one came without.
    publish("x.a", "", "").await;
    let ack = publish("x.a", "Nats-Expected-Last-Msg-Id", "first").await;
    assert_eq!(ack["error"]["description"], "wrong last msg ID: ", "{ack}");
    // An unreadable number is a mismatch reported with the actual value.
    let ack = publish("x.a", "Nats-Expected-Last-Sequence", "abc").await;
    assert_eq!(
        (ack["error"]["err_code"].clone(), ack["error"]["description"].clone()),
        (10071.into(), "wrong last sequence: 2".into()),
        "{ack}"
    );
    let ack = publish("x.a", "Nats-Expected-Last-Subject-Sequence", "abc").await;
    assert_eq!(ack["error"]["err_code"], 10071, "{ack}");
    // A stream denying deletes says so as nats-server does.
    let nc2 = server.client().await;
    let create = r#"{"name":"ND","subjects":["nd"],"deny_delete":true}"#;
    nc2.request("$JS.API.STREAM.CREATE.ND", create.into()).await.unwrap();
    nc2.request("nd", "m".into()).await.unwrap();
    let reply = nc2.request("$JS.API.STREAM.MSG.DELETE.ND", r#"{"seq":1}"#.into()).await.unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(reply["error"]["err_code"], 10057, "{reply}");
    assert_eq!(reply["error"]["description"], "message delete not permitted");
}
