//! Many clients, restarts, and slow consumers.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::harness::{RawClient, TestServer};

#[tokio::test]
async fn client_reconnects_after_server_restart() {
    let mut server = TestServer::start().await;
    let port = server.addr.port();
    let nc = server.client().await;
    let mut sub = nc.subscribe("after.restart").await.unwrap();
    nc.flush().await.unwrap();
    server.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::harness::test_config(dir.path());
    config.port = i32::from(port);
    let restarted = jetway::run(config).await.expect("restart on the same port");

    // The client reconnects on its own and re-subscribes; publish until the message flows.
    let publisher = async_nats::connect(format!("nats://127.0.0.1:{port}")).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            publisher.publish("after.restart", "back".into()).await.unwrap();
            if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), sub.next()).await {
                return m;
            }
        }
    })
    .await
    .expect("message after reconnect");
    assert_eq!(&got.payload[..], b"back");
    restarted.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_clients() {
    let server = TestServer::start().await;
    let receiver = server.client().await;
    let mut sub = receiver.subscribe("many.>").await.unwrap();
    receiver.flush().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let url = server.url();
        tasks.push(tokio::spawn(async move {
            let nc = async_nats::connect(url).await.unwrap();
            nc.publish(format!("many.{i}"), "x".into()).await.unwrap();
            nc.flush().await.unwrap();
            nc
        }));
    }
    let mut clients = Vec::new();
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    assert!(server.core().num_clients() >= 1001);
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 1000 {
        let m = tokio::time::timeout(Duration::from_secs(10), sub.next()).await.unwrap().unwrap();
        seen.insert(m.subject.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_disconnected_while_a_fast_one_keeps_receiving() {
    let server = TestServer::start_with(|c| c.max_pending = 4 * 1024 * 1024).await;
    // The slow client subscribes and then never reads.
    let mut slow = RawClient::connect(server.addr).await;
    slow.send(b"SUB firehose 1\r\nPING\r\n").await;
    slow.expect("PONG\r\n").await;
    let fast = server.client().await;
    let mut fast_sub = fast.subscribe("firehose").await.unwrap();
    fast.flush().await.unwrap();

    // Batches of 1 MiB; the fast client reads each batch before the next is sent, so only the
    // slow one accumulates (64 MiB in total: far beyond its socket buffers and max_pending).
    let publisher = server.client().await;
    let payload = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
    for _ in 0..64 {
        for _ in 0..16 {
            publisher.publish("firehose", payload.clone()).await.unwrap();
        }
        publisher.flush().await.unwrap();
        for _ in 0..16 {
            let m = tokio::time::timeout(Duration::from_secs(10), fast_sub.next())
                .await
                .expect("fast keeps receiving");
            assert_eq!(m.unwrap().payload.len(), payload.len());
        }
    }
    assert!(server.core().stats.slow_consumers.load(Ordering::Relaxed) >= 1);
    // The slow connection is gone from the server; the fast one and the publisher remain.
    tokio::time::timeout(Duration::from_secs(5), async {
        while server.core().num_clients() > 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("slow consumer closed");
    let _ = slow.stream.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_producer_is_stalled_instead_of_cutting_off_a_reading_subscriber() {
    // A publisher flooding far faster than one subscriber reads: 40 MiB against a 4 MiB
    // max_pending. The publisher must be slowed down; the subscriber gets everything.
    let server = TestServer::start_with(|c| c.max_pending = 4 * 1024 * 1024).await;
    let sub_client = server.client().await;
    let mut sub = sub_client.subscribe("flood").await.unwrap();
    sub_client.flush().await.unwrap();
    let total = 40_000;
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while n < total {
            match tokio::time::timeout(Duration::from_secs(20), sub.next()).await {
                Ok(Some(_)) => n += 1,
                _ => break,
            }
        }
        n
    });
    let publisher = server.client().await;
    let payload = bytes::Bytes::from(vec![b'x'; 1024]);
    for _ in 0..total {
        publisher.publish("flood", payload.clone()).await.unwrap();
    }
    publisher.flush().await.unwrap();
    assert_eq!(reader.await.unwrap(), total);
    assert_eq!(server.core().stats.slow_consumers.load(Ordering::Relaxed), 0);
}
