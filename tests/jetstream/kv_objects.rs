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
