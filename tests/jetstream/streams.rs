//! Stream management: create/update/delete/info/names/list/purge, limits, errors.

use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use futures::TryStreamExt;

use super::{err_code, js};
use crate::harness::TestServer;

#[tokio::test]
async fn create_is_idempotent_and_conflicts_are_refused() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let config = stream::Config { name: "A".into(), subjects: vec!["a.>".into()], ..Default::default() };
    js.create_stream(config.clone()).await.unwrap();
    js.create_stream(config.clone()).await.expect("identical config is fine");
    let different = stream::Config { max_messages: 10, ..config.clone() };
    let err = js.create_stream(different).await.unwrap_err();
    assert_eq!(err_code(&err), Some(10058));
    let overlap = stream::Config { name: "B".into(), subjects: vec!["a.b".into()], ..Default::default() };
    let err = js.create_stream(overlap).await.unwrap_err();
    assert_eq!(err_code(&err), Some(10065), "{err:?}");
}

#[tokio::test]
async fn missing_stream_is_10059() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let err = js.get_stream("NOPE").await.unwrap_err();
    assert_eq!(err_code(&err), Some(10059), "{err:?}");
    let Err(err) = js.delete_stream("NOPE").await else { panic!("deleting a missing stream succeeded") };
    assert_eq!(err_code(&err), Some(10059), "{err:?}");
}

#[tokio::test]
async fn names_list_update_delete() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    for name in ["S1", "S2", "S3"] {
        js.create_stream(stream::Config {
            name: name.into(),
            storage: StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let mut names: Vec<String> = js.stream_names().try_collect().await.unwrap();
    names.sort();
    assert_eq!(names, ["S1", "S2", "S3"]);
    let infos: Vec<stream::Info> = js.streams().try_collect().await.unwrap();
    assert_eq!(infos.len(), 3);
    let updated = js
        .update_stream(stream::Config {
            name: "S1".into(),
            storage: StorageType::Memory,
            max_messages: 5,
            description: Some("five".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(updated.config.max_messages, 5);
    let err = js
        .update_stream(stream::Config { name: "S1".into(), storage: StorageType::File, ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err_code(&err), Some(10052), "storage can not change: {err:?}");
    assert!(js.delete_stream("S2").await.unwrap().success);
    let mut names: Vec<String> = js.stream_names().try_collect().await.unwrap();
    names.sort();
    assert_eq!(names, ["S1", "S3"]);
}

#[tokio::test]
async fn limits_and_discard_policies() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let mut old = js
        .create_stream(stream::Config {
            name: "OLD".into(),
            subjects: vec!["old.>".into()],
            max_messages: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    for i in 0..5 {
        js.publish(format!("old.{i}"), "x".into()).await.unwrap().await.unwrap();
    }
    let info = old.info().await.unwrap();
    assert_eq!((info.state.messages, info.state.first_sequence, info.state.last_sequence), (3, 3, 5));

    js.create_stream(stream::Config {
        name: "NEW".into(),
        subjects: vec!["new.>".into()],
        max_messages: 2,
        discard: DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .unwrap();
    js.publish("new.1", "x".into()).await.unwrap().await.unwrap();
    js.publish("new.2", "x".into()).await.unwrap().await.unwrap();
    let err = js.publish("new.3", "x".into()).await.unwrap().await.unwrap_err();
    assert!(format!("{err:?}").contains("maximum messages exceeded"), "{err:?}");

    let mut per_subject = js
        .create_stream(stream::Config {
            name: "PS".into(),
            subjects: vec!["ps.>".into()],
            max_messages_per_subject: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    for _ in 0..3 {
        js.publish("ps.a", "x".into()).await.unwrap().await.unwrap();
    }
    js.publish("ps.b", "x".into()).await.unwrap().await.unwrap();
    assert_eq!(per_subject.info().await.unwrap().state.messages, 2);
}

#[tokio::test]
async fn purge_all_by_subject_and_keep() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let mut s = js
        .create_stream(stream::Config {
            name: "P".into(),
            subjects: vec!["p.*".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    for i in 0..6 {
        js.publish(format!("p.{}", i % 2), "x".into()).await.unwrap().await.unwrap();
    }
    let purged = s.purge().filter("p.0").await.unwrap();
    assert_eq!(purged.purged, 3);
    let purged = s.purge().keep(1).await.unwrap();
    assert_eq!(purged.purged, 2);
    assert_eq!(s.info().await.unwrap().state.messages, 1);
    s.purge().await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 0);
}

#[tokio::test]
async fn message_get_and_delete() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let s = js
        .create_stream(stream::Config {
            name: "M".into(),
            subjects: vec!["m.*".into()],
            allow_direct: true,
            ..Default::default()
        })
        .await
        .unwrap();
    js.publish("m.a", "one".into()).await.unwrap().await.unwrap();
    js.publish("m.b", "two".into()).await.unwrap().await.unwrap();
    js.publish("m.a", "three".into()).await.unwrap().await.unwrap();
    let raw = s.get_raw_message(2).await.unwrap();
    assert_eq!((raw.subject.as_str(), &raw.payload[..]), ("m.b", &b"two"[..]));
    let last = s.get_last_raw_message_by_subject("m.a").await.unwrap();
    assert_eq!(last.sequence, 3);
    let direct = s.direct_get_last_for_subject("m.a").await.unwrap();
    assert_eq!(&direct.payload[..], b"three");
    let direct = s.direct_get(1).await.unwrap();
    assert_eq!(&direct.payload[..], b"one");
    assert!(s.delete_message(2).await.unwrap());
    // async-nats turns err_code 10037 into its NoMessageFound kind.
    let err = s.get_raw_message(2).await.unwrap_err();
    assert!(format!("{err:?}").contains("NoMessageFound"), "{err:?}");
}

#[tokio::test]
async fn workqueue_retention_removes_acked_messages() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let mut s = js
        .create_stream(stream::Config {
            name: "WQ".into(),
            subjects: vec!["wq.>".into()],
            retention: RetentionPolicy::WorkQueue,
            ..Default::default()
        })
        .await
        .unwrap();
    for i in 0..4 {
        js.publish(format!("wq.{i}"), "job".into()).await.unwrap().await.unwrap();
    }
    let consumer = s
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("w".into()),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = consumer.fetch().max_messages(4).messages().await.unwrap();
    while let Some(m) = batch.try_next().await.unwrap() {
        m.double_ack().await.unwrap();
    }
    assert_eq!(s.info().await.unwrap().state.messages, 0);
    // A second unfiltered consumer is not allowed on a work queue.
    let err = s
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("w2".into()),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err_code(&err), Some(10099), "{err:?}");
}

#[tokio::test]
async fn interest_retention_keeps_messages_until_every_consumer_acked() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let mut s = js
        .create_stream(stream::Config {
            name: "INT".into(),
            subjects: vec!["int.>".into()],
            retention: RetentionPolicy::Interest,
            ..Default::default()
        })
        .await
        .unwrap();
    js.publish("int.0", "nobody".into()).await.unwrap().await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 0, "no interest: not stored");
    let mut consumers = Vec::new();
    for name in ["c1", "c2"] {
        consumers.push(
            s.create_consumer(async_nats::jetstream::consumer::pull::Config {
                durable_name: Some(name.into()),
                ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                ..Default::default()
            })
            .await
            .unwrap(),
        );
    }
    let ack = js.publish("int.1", "both".into()).await.unwrap().await.unwrap();
    assert_eq!(ack.sequence, 2);
    let mut first = consumers[0].fetch().max_messages(1).messages().await.unwrap();
    first.try_next().await.unwrap().unwrap().double_ack().await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 1, "c2 has not acked yet");
    let mut second = consumers[1].fetch().max_messages(1).messages().await.unwrap();
    second.try_next().await.unwrap().unwrap().double_ack().await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 0);
}

/// Interest follows consumers' filters: only consumers whose filters take a subject keep its
/// messages, a filter change moves its interest, and deleting a consumer drops the messages
/// only it still needed (as nats-server does).
#[tokio::test]
async fn interest_retention_follows_consumer_filters() {
    use async_nats::jetstream::consumer::{pull, AckPolicy};
    let server = TestServer::start().await;
    let js = js(&server).await;
    let mut s = js
        .create_stream(stream::Config {
            name: "INTF".into(),
            subjects: vec!["f.>".into()],
            retention: RetentionPolicy::Interest,
            ..Default::default()
        })
        .await
        .unwrap();
    let filtered = |name: &str, filters: &[&str]| pull::Config {
        durable_name: Some(name.into()),
        ack_policy: AckPolicy::Explicit,
        filter_subjects: filters.iter().map(|f| f.to_string()).collect(),
        ..Default::default()
    };
    let wide = s.create_consumer(filtered("wide", &["f.a.*", "f.b"])).await.unwrap();
    let other = s.create_consumer(filtered("other", &["f.z"])).await.unwrap();
    js.publish("f.q", "nobody".into()).await.unwrap().await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 0, "no filter takes f.q: not stored");
    js.publish("f.a.b", "wide only".into()).await.unwrap().await.unwrap();
    let mut got = wide.fetch().max_messages(1).messages().await.unwrap();
    got.try_next().await.unwrap().unwrap().double_ack().await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 0, "its only interested consumer acked");

    // `other` now also takes f.a.>: a new f.a.b waits for both.
    s.create_consumer(filtered("other", &["f.z", "f.a.>"])).await.unwrap();
    js.publish("f.a.b", "both".into()).await.unwrap().await.unwrap();
    let mut got = wide.fetch().max_messages(1).messages().await.unwrap();
    got.try_next().await.unwrap().unwrap().double_ack().await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 1, "other has not acked yet");
    drop(other);
    s.delete_consumer("other").await.unwrap();
    js.publish("f.z", "gone".into()).await.unwrap().await.unwrap();
    let state = s.info().await.unwrap().state.clone();
    assert_eq!((state.consumer_count, state.last_sequence), (1, 4));
    assert_eq!(state.messages, 0, "seq 3 went with the only consumer still needing it; f.z is not stored");

    // Without any consumer nothing is kept; a new one brings interest back.
    drop(wide);
    s.delete_consumer("wide").await.unwrap();
    js.publish("f.a.b", "nobody left".into()).await.unwrap().await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 0);
    let again = s.create_consumer(filtered("again", &["f.a.*", "f.b"])).await.unwrap();
    js.publish("f.a.b", "kept".into()).await.unwrap().await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 1);
    drop(again);
    s.delete_consumer("again").await.unwrap();
    js.publish("f.a.b", "dropped again".into()).await.unwrap().await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 0, "the deleted consumer took its interest along");
}

/// The subject of the message a stream holds at `seq`.
async fn stored_subject(nc: &async_nats::Client, stream: &str, seq: u64) -> String {
    let reply = nc
        .request(format!("$JS.API.STREAM.MSG.GET.{stream}"), format!(r#"{{"seq":{seq}}}"#).into())
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    json["message"]["subject"].as_str().unwrap_or_else(|| panic!("no message {seq}: {json}")).to_string()
}

#[tokio::test]
async fn subject_transforms_map_with_nats_server_functions() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    let create = |name: &str, config: &str| {
        let nc = nc.clone();
        let (subject, config) = (format!("$JS.API.STREAM.CREATE.{name}"), config.to_string());
        async move {
            let reply = nc.request(subject, config.into()).await.unwrap();
            let json: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
            assert!(json.get("error").is_none(), "{json}");
        }
    };
    // The stream's own transform maps what it stores; a subject its source does not match
    // is kept.
    create(
        "TR",
        r#"{"name":"TR","subjects":["orders.*.*","other"],
            "subject_transform":{"src":"orders.*.*","dest":"byregion.{{wildcard(2)}}.$1.{{split(1,-)}}"}}"#,
    )
    .await;
    nc.request("orders.a-b.eu", "m".into()).await.unwrap();
    nc.request("other", "m".into()).await.unwrap();
    assert_eq!(stored_subject(&nc, "TR", 1).await, "byregion.eu.a-b.a.b");
    assert_eq!(stored_subject(&nc, "TR", 2).await, "other");
    // Republish and source transforms use the same mappings.
    let mut republished = nc.subscribe("copy.>").await.unwrap();
    nc.flush().await.unwrap();
    create(
        "RP",
        r#"{"name":"RP","subjects":["rp.*"],"republish":{"src":"rp.*","dest":"copy.{{wildcard(1)}}.{{partition(4,1)}}"}}"#,
    )
    .await;
    create(
        "SRC",
        r#"{"name":"SRC","sources":[{"name":"RP","subject_transforms":[{"src":"rp.*","dest":"sourced.$1"}]}]}"#,
    )
    .await;
    nc.request("rp.key", "m".into()).await.unwrap();
    let copy =
        tokio::time::timeout(std::time::Duration::from_secs(2), futures::StreamExt::next(&mut republished))
            .await
            .unwrap()
            .unwrap();
    // nats-server's partition: FNV-1a of the token, modulo the buckets (fnv1a32("key") % 4 = 0).
    assert_eq!(copy.subject.as_str(), "copy.key.0");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let reply = nc.request("$JS.API.STREAM.MSG.GET.SRC", r#"{"seq":1}"#.into()).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
        if let Some(subject) = json["message"]["subject"].as_str() {
            assert_eq!(subject, "sourced.key");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not sourced: {json}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A message a consumer gave up on (its deliveries ran out unacknowledged) is not
/// acknowledged: an interest stream keeps it for that consumer, and the consumer's ack floor
/// stays below it, as nats-server does.
#[tokio::test]
async fn interest_retention_keeps_what_a_consumer_gave_up_on() {
    use async_nats::jetstream::consumer::{pull, AckPolicy};
    let server = TestServer::start().await;
    let js = js(&server).await;
    let mut s = js
        .create_stream(stream::Config {
            name: "GIVE".into(),
            subjects: vec!["give.>".into()],
            retention: RetentionPolicy::Interest,
            ..Default::default()
        })
        .await
        .unwrap();
    let quitter = s
        .create_consumer(pull::Config {
            durable_name: Some("quitter".into()),
            ack_policy: AckPolicy::Explicit,
            max_deliver: 1,
            ack_wait: std::time::Duration::from_millis(200),
            ..Default::default()
        })
        .await
        .unwrap();
    let steady = s
        .create_consumer(pull::Config { durable_name: Some("steady".into()), ..Default::default() })
        .await
        .unwrap();
    js.publish("give.1", "m".into()).await.unwrap().await.unwrap();
    let mut once = quitter.fetch().max_messages(1).messages().await.unwrap();
    once.try_next().await.unwrap().unwrap(); // never acknowledged
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let mut batch = steady.fetch().max_messages(1).messages().await.unwrap();
    batch.try_next().await.unwrap().unwrap().double_ack().await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 1, "the quitter never acknowledged it");
    let mut quitter = quitter;
    let info = quitter.info().await.unwrap().clone();
    assert_eq!((info.ack_floor.stream_sequence, info.num_ack_pending), (0, 0), "{info:?}");
}
