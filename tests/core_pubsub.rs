//! Core messaging through async-nats.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::harness::TestServer;

async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(Duration::from_secs(5), sub.next()).await.expect("message in time").expect("open")
}

#[tokio::test]
async fn publish_reaches_literal_and_wildcard_subscribers() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    let mut literal = nc.subscribe("orders.eu.created").await.unwrap();
    let mut star = nc.subscribe("orders.*.created").await.unwrap();
    let mut full = nc.subscribe("orders.>").await.unwrap();
    let mut other = nc.subscribe("orders.*").await.unwrap();
    nc.flush().await.unwrap();

    nc.publish("orders.eu.created", "hello".into()).await.unwrap();
    nc.publish("orders.us", "two".into()).await.unwrap();
    nc.flush().await.unwrap();

    for sub in [&mut literal, &mut star, &mut full] {
        let m = next(sub).await;
        assert_eq!(m.subject.as_str(), "orders.eu.created");
        assert_eq!(m.payload, Bytes::from("hello"));
    }
    assert_eq!(next(&mut full).await.subject.as_str(), "orders.us");
    let m = next(&mut other).await;
    assert_eq!((m.subject.as_str(), &m.payload[..]), ("orders.us", &b"two"[..]));
}

#[tokio::test]
async fn queue_group_delivers_each_message_once_spread_over_members() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(nc.queue_subscribe("work", "workers".into()).await.unwrap());
    }
    let mut plain = nc.subscribe("work").await.unwrap();
    nc.flush().await.unwrap();
    for i in 0..300u32 {
        nc.publish("work", i.to_string().into()).await.unwrap();
    }
    nc.flush().await.unwrap();

    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut per_member = Vec::new();
    for m in members.iter_mut() {
        let mut count = 0;
        while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(300), m.next()).await {
            *seen.entry(String::from_utf8(msg.payload.to_vec()).unwrap()).or_default() += 1;
            count += 1;
        }
        per_member.push(count);
    }
    assert_eq!(seen.len(), 300, "every message delivered to the group");
    assert!(seen.values().all(|&n| n == 1), "each message exactly once");
    assert!(per_member.iter().filter(|&&n| n > 0).count() > 1, "spread: {per_member:?}");
    for _ in 0..300 {
        next(&mut plain).await;
    }
}

#[tokio::test]
async fn headers_round_trip_with_multiple_values() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    let mut sub = nc.subscribe("h").await.unwrap();
    nc.flush().await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("X-One", "1");
    headers.append("X-Many", "a");
    headers.append("X-Many", "b");
    nc.publish_with_headers("h", headers, "body".into()).await.unwrap();
    let m = next(&mut sub).await;
    let h = m.headers.expect("headers");
    assert_eq!(h.get("X-One").map(|v| v.as_str()), Some("1"));
    let many: Vec<&str> = h.get_all("X-Many").map(|v| v.as_str()).collect();
    assert_eq!(many, ["a", "b"]);
    assert_eq!(m.payload, Bytes::from("body"));
}

#[tokio::test]
async fn request_reply() {
    let server = TestServer::start().await;
    let responder = server.client().await;
    let mut service = responder.subscribe("svc.echo").await.unwrap();
    responder.flush().await.unwrap();
    tokio::spawn(async move {
        while let Some(req) = service.next().await {
            if let Some(reply) = req.reply {
                let mut body = b"echo:".to_vec();
                body.extend_from_slice(&req.payload);
                responder.publish(reply, body.into()).await.unwrap();
            }
        }
    });
    let nc = server.client().await;
    for i in 0..20 {
        let resp = nc.request("svc.echo", format!("{i}").into()).await.unwrap();
        assert_eq!(resp.payload, Bytes::from(format!("echo:{i}")));
    }
}

#[tokio::test]
async fn request_without_responders_fails_fast_with_no_responders() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    let started = std::time::Instant::now();
    let err = nc.request("nobody.home", "x".into()).await.unwrap_err();
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);
    assert!(started.elapsed() < Duration::from_secs(2), "not a timeout");
}

#[tokio::test]
async fn auto_unsubscribe_after_n_messages() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    nc.flush().await.unwrap();
    let before = server.core().accounts.global().sublist.count();
    let mut sub = nc.subscribe("limited").await.unwrap();
    sub.unsubscribe_after(3).await.unwrap();
    nc.flush().await.unwrap();
    for i in 0..10 {
        nc.publish("limited", format!("{i}").into()).await.unwrap();
    }
    nc.flush().await.unwrap();
    let mut got = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(500), sub.next()).await {
        got.push(m.payload);
    }
    assert_eq!(got, vec![Bytes::from("0"), Bytes::from("1"), Bytes::from("2")]);
    assert_eq!(
        server.core().accounts.global().sublist.count(),
        before,
        "subscription removed from the router"
    );
}

#[tokio::test]
async fn echo_false_connection_does_not_receive_its_own_messages() {
    let server = TestServer::start().await;
    let quiet = async_nats::ConnectOptions::new().no_echo().connect(server.url()).await.unwrap();
    let mut own = quiet.subscribe("e").await.unwrap();
    let other = server.client().await;
    let mut theirs = other.subscribe("e").await.unwrap();
    other.flush().await.unwrap();
    quiet.flush().await.unwrap();
    quiet.publish("e", "from-quiet".into()).await.unwrap();
    quiet.flush().await.unwrap();
    assert_eq!(next(&mut theirs).await.payload, Bytes::from("from-quiet"));
    other.publish("e", "from-other".into()).await.unwrap();
    assert_eq!(next(&mut own).await.payload, Bytes::from("from-other"), "own message skipped");
}

#[tokio::test]
async fn large_payload_at_max_is_delivered_intact() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    let mut sub = nc.subscribe("big").await.unwrap();
    nc.flush().await.unwrap();
    let payload: Bytes = (0..1024 * 1024).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    nc.publish("big", payload.clone()).await.unwrap();
    assert_eq!(next(&mut sub).await.payload, payload);
}
