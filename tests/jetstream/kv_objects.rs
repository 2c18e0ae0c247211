//! Key-Value and Object Store through async-nats' own APIs.

use std::time::Duration;

use async_nats::jetstream::{kv, object_store};
use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncReadExt;

use super::js;
use crate::harness::TestServer;

#[tokio::test]
async fn kv_history_keys_purge_and_watch() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let kv = js
        .create_key_value(kv::Config { bucket: "b".into(), history: 3, ..Default::default() })
        .await
        .unwrap();
    let mut watch = kv.watch_all().await.unwrap();
    for v in ["1", "2", "3", "4"] {
        kv.put("k", v.into()).await.unwrap();
    }
    kv.put("other", "x".into()).await.unwrap();
    let history: Vec<kv::Entry> = kv.history("k").await.unwrap().try_collect().await.unwrap();
    let values: Vec<&[u8]> = history.iter().map(|e| &e.value[..]).collect();
    assert_eq!(values, [b"2", b"3", b"4"], "history keeps the last 3");
    let mut keys: Vec<String> = kv.keys().await.unwrap().try_collect().await.unwrap();
    keys.sort();
    assert_eq!(keys, ["k", "other"]);
    kv.purge("k").await.unwrap();
    assert!(kv.get("k").await.unwrap().is_none());
    let history: Vec<kv::Entry> = kv.history("k").await.unwrap().try_collect().await.unwrap();
    assert_eq!(history.len(), 1, "purge leaves only the purge marker");
    assert_eq!(history[0].operation, kv::Operation::Purge);
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let e = tokio::time::timeout(Duration::from_secs(5), watch.next()).await.unwrap().unwrap().unwrap();
        seen.push((e.key.clone(), e.value.clone()));
    }
    assert_eq!(seen[0].0, "k");
    assert_eq!(seen[4].0, "other");
}

#[tokio::test]
async fn kv_create_refuses_an_existing_key() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let kv = js.create_key_value(kv::Config { bucket: "c".into(), ..Default::default() }).await.unwrap();
    kv.create("k", "a".into()).await.unwrap();
    assert!(kv.create("k", "b".into()).await.is_err());
    kv.delete("k").await.unwrap();
    kv.create("k", "c".into()).await.expect("create after delete is allowed");
}

#[tokio::test]
async fn object_store_put_get_list_delete_5_mib() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let store = js
        .create_object_store(object_store::Config { bucket: "files".into(), ..Default::default() })
        .await
        .unwrap();
    let data: Vec<u8> =
        (0..5 * 1024 * 1024).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    store.put("big.bin", &mut data.as_slice()).await.unwrap();
    store.put("small.txt", &mut &b"hello"[..]).await.unwrap();
    let mut object = store.get("big.bin").await.unwrap();
    let mut back = Vec::new();
    object.read_to_end(&mut back).await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "object content round trips");
    let mut names: Vec<String> = store.list().await.unwrap().map_ok(|i| i.name).try_collect().await.unwrap();
    names.sort();
    assert_eq!(names, ["big.bin", "small.txt"]);
    store.delete("big.bin").await.unwrap();
    assert!(store.get("big.bin").await.is_err());
}

/// A bucket with `limit_markers` (nats-server 2.11's subject delete markers): a key that ages
/// out or whose TTL runs out is seen by watchers as purged, and a key TTL below the marker's
/// is raised to it.
#[tokio::test]
async fn expired_keys_leave_markers_that_watchers_see_as_purges() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let kv = js
        .create_key_value(kv::Config {
            bucket: "m".into(),
            // Two per key: with one, nats-server leaves key TTLs as they are.
            history: 2,
            max_age: Duration::from_secs(1),
            limit_markers: Some(Duration::from_secs(2)),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut watch = kv.watch_all().await.unwrap();
    kv.put("aged", "v".into()).await.unwrap();
    let started = std::time::Instant::now();
    kv.create_with_ttl("short", "v".into(), Duration::from_secs(1)).await.unwrap();
    let stream = js.get_stream("KV_m").await.unwrap();
    let short = stream.get_last_raw_message_by_subject("$KV.m.short").await.unwrap();
    assert_eq!(short.headers.get("Nats-TTL").map(|v| v.as_str()), Some("2"), "raised to the markers' TTL");
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let entry =
            tokio::time::timeout(Duration::from_secs(6), watch.next()).await.unwrap().unwrap().unwrap();
        seen.push((entry.key, entry.operation, started.elapsed()));
    }
    let ops: Vec<_> = seen.iter().map(|(k, op, _)| (k.as_str(), *op)).collect();
    assert_eq!(
        ops,
        [
            ("aged", kv::Operation::Put),
            ("short", kv::Operation::Put),
            ("aged", kv::Operation::Purge),
            ("short", kv::Operation::Purge)
        ]
    );
    assert!(seen[2].2 >= Duration::from_millis(900), "aged out early: {seen:?}");
    assert!(kv.get("aged").await.unwrap().is_none());
    let marker = stream.get_last_raw_message_by_subject("$KV.m.aged").await.unwrap();
    let headers = marker.headers;
    assert_eq!(headers.get("Nats-Marker-Reason").map(|v| v.as_str()), Some("MaxAge"));
    assert_eq!(headers.get("Nats-TTL").map(|v| v.as_str()), Some("2s"));
}
