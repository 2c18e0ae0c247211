//! Consumers: pull and push, acks, redelivery, max deliver, ordered consumers.

use std::time::Duration;

use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy};
use async_nats::jetstream::{stream, AckKind};
use futures::StreamExt;

use super::js;
use crate::harness::TestServer;

async fn stream_with(
    js: &async_nats::jetstream::Context,
    name: &str,
    subject: &str,
    n: usize,
) -> stream::Stream {
    let s = js
        .create_stream(stream::Config {
            name: name.into(),
            subjects: vec![subject.into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let base = subject.trim_end_matches(".>").trim_end_matches(".*");
    for i in 0..n {
        js.publish(format!("{base}.{i}"), format!("{i}").into()).await.unwrap().await.unwrap();
    }
    s
}

#[tokio::test]
async fn missing_consumer_is_10014() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let s = stream_with(&js, "S", "s.>", 0).await;
    // async-nats turns err_code 10014 into its NotFound kind.
    let err = s.get_consumer::<consumer::pull::Config>("nope").await.unwrap_err();
    assert!(format!("{err:?}").contains("NotFound"), "{err:?}");
    let raw = server.client().await.request("$JS.API.CONSUMER.INFO.S.nope", "".into()).await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&raw.payload).unwrap();
    assert_eq!(json["error"]["err_code"], 10014);
}

#[tokio::test]
async fn pull_fetch_batch_and_expiry() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let s = stream_with(&js, "P", "p.>", 5).await;
    let c = s
        .create_consumer(consumer::pull::Config { durable_name: Some("d".into()), ..Default::default() })
        .await
        .unwrap();
    let mut batch = c.batch().max_messages(3).expires(Duration::from_millis(500)).messages().await.unwrap();
    let mut n = 0;
    while let Some(m) = batch.next().await {
        m.unwrap().ack().await.unwrap();
        n += 1;
    }
    assert_eq!(n, 3);
    // Only 2 left: a batch of 10 gets 2 then ends at its expiry.
    let started = std::time::Instant::now();
    let mut batch = c.batch().max_messages(10).expires(Duration::from_millis(500)).messages().await.unwrap();
    let mut n = 0;
    while let Some(m) = batch.next().await {
        m.unwrap().ack().await.unwrap();
        n += 1;
    }
    assert_eq!(n, 2);
    assert!(started.elapsed() >= Duration::from_millis(400));
    // fetch (no_wait) with nothing left ends at once.
    let mut empty = c.fetch().max_messages(5).messages().await.unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(2), empty.next()).await.unwrap().is_none());
}

#[tokio::test]
async fn an_ack_below_max_ack_pending_resumes_a_waiting_pull_at_once() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let s = stream_with(&js, "M", "m.>", 4).await;
    let c = s
        .create_consumer(consumer::pull::Config {
            durable_name: Some("d".into()),
            ack_policy: AckPolicy::Explicit,
            max_ack_pending: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    // One request for all four: two arrive, then max_ack_pending holds the rest back.
    let mut batch = c.batch().max_messages(4).expires(Duration::from_secs(20)).messages().await.unwrap();
    let first = batch.next().await.unwrap().unwrap();
    let second = batch.next().await.unwrap().unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(300), batch.next()).await.is_err());
    // Each ack frees a slot: the waiting request gets the next message now, not at its
    // expiry or an ack wait later.
    for (acked, expected) in [(first, 3), (second, 4)] {
        acked.ack().await.unwrap();
        let next =
            tokio::time::timeout(Duration::from_secs(2), batch.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(next.info().unwrap().stream_sequence, expected);
    }
}

#[tokio::test]
async fn redelivery_after_ack_wait_and_after_nak_with_delay() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let s = stream_with(&js, "R", "r.>", 2).await;
    let c = s
        .create_consumer(consumer::pull::Config {
            durable_name: Some("d".into()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_millis(300),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = c.messages().await.unwrap();
    let first = msgs.next().await.unwrap().unwrap();
    assert_eq!(first.info().unwrap().delivered, 1);
    let second = msgs.next().await.unwrap().unwrap();
    second.ack_with(AckKind::Nak(Some(Duration::from_millis(200)))).await.unwrap();
    // Both come back: #1 after ack_wait (not acked), #2 after the NAK delay.
    let mut redelivered = Vec::new();
    for _ in 0..2 {
        let m = tokio::time::timeout(Duration::from_secs(3), msgs.next()).await.unwrap().unwrap().unwrap();
        let info = m.info().unwrap();
        redelivered.push((info.stream_sequence, info.delivered));
        m.ack().await.unwrap();
    }
    redelivered.sort();
    assert_eq!(redelivered, [(1, 2), (2, 2)]);
}

#[tokio::test]
async fn max_deliver_stops_redelivery_and_sends_the_advisory() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    let mut advisories = nc.subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>").await.unwrap();
    nc.flush().await.unwrap();
    let js = js(&server).await;
    let s = stream_with(&js, "M", "m.>", 1).await;
    let mut c = s
        .create_consumer(consumer::pull::Config {
            durable_name: Some("d".into()),
            ack_wait: Duration::from_millis(200),
            max_deliver: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = c.messages().await.unwrap();
    for expected in 1..=2 {
        let m = tokio::time::timeout(Duration::from_secs(3), msgs.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(m.info().unwrap().delivered, expected);
    }
    let advisory = tokio::time::timeout(Duration::from_secs(3), advisories.next()).await.unwrap().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&advisory.payload).unwrap();
    assert_eq!(json["type"], "io.nats.jetstream.advisory.v1.max_deliver");
    assert_eq!(json["stream_seq"], 1);
    assert!(
        tokio::time::timeout(Duration::from_millis(600), msgs.next()).await.is_err(),
        "no third delivery"
    );
    // Given up, it still counts as redelivered (nats-server keeps its delivery count).
    let info = c.info().await.unwrap();
    assert_eq!((info.num_redelivered, info.num_ack_pending), (1, 0));
}

/// Regression: a message NAKed at its last allowed delivery was delivered once more. As from
/// nats-server, it is given up on when its next delivery is due (the advisory says so), and
/// stays pending until then with its first delivery's consumer sequence as the ack floor.
#[tokio::test]
async fn a_nak_at_the_last_delivery_gives_the_message_up() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    let mut advisories = nc.subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>").await.unwrap();
    nc.flush().await.unwrap();
    let js = js(&server).await;
    let s = stream_with(&js, "MN", "mn.>", 1).await;
    let mut c = s
        .create_consumer(consumer::pull::Config {
            durable_name: Some("d".into()),
            max_deliver: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    for expected in 1..=2 {
        let mut batch = c.fetch().max_messages(1).expires(Duration::from_secs(2)).messages().await.unwrap();
        let m = batch.next().await.unwrap().unwrap();
        assert_eq!(m.info().unwrap().delivered, expected);
        m.ack_with(AckKind::Nak(None)).await.unwrap();
    }
    nc.flush().await.unwrap();
    let info = c.info().await.unwrap();
    assert_eq!(info.num_ack_pending, 1, "pending until its next delivery is due");
    assert_eq!((info.ack_floor.consumer_sequence, info.ack_floor.stream_sequence), (0, 0));
    let mut batch = c.fetch().max_messages(1).expires(Duration::from_millis(500)).messages().await.unwrap();
    assert!(batch.next().await.is_none(), "no third delivery");
    let advisory = tokio::time::timeout(Duration::from_secs(3), advisories.next()).await.unwrap().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&advisory.payload).unwrap();
    assert_eq!((json["stream_seq"].as_u64(), json["deliveries"].as_u64()), (Some(1), Some(2)));
    let info = c.info().await.unwrap();
    assert_eq!((info.num_ack_pending, info.num_redelivered), (0, 1));
    assert_eq!((info.ack_floor.consumer_sequence, info.ack_floor.stream_sequence), (0, 0));
}

#[tokio::test]
async fn sampled_acks_are_reported_with_their_latency() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    let mut metrics = nc.subscribe("$JS.EVENT.METRIC.CONSUMER.ACK.>").await.unwrap();
    nc.flush().await.unwrap();
    let js = js(&server).await;
    let s = stream_with(&js, "SF", "sf.>", 2).await;
    let config = |name: &str, sample_frequency| consumer::pull::Config {
        durable_name: Some(name.into()),
        ack_policy: AckPolicy::Explicit,
        sample_frequency,
        ..Default::default()
    };
    for (name, sample_frequency) in [("unsampled", 0), ("sampled", 100)] {
        let c = s.create_consumer(config(name, sample_frequency)).await.unwrap();
        let mut batch = c.fetch().max_messages(1).messages().await.unwrap();
        let m = batch.next().await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        m.double_ack().await.unwrap();
    }
    let event = tokio::time::timeout(Duration::from_secs(2), metrics.next()).await.unwrap().unwrap();
    assert_eq!(&*event.subject, "$JS.EVENT.METRIC.CONSUMER.ACK.SF.sampled");
    let json: serde_json::Value = serde_json::from_slice(&event.payload).unwrap();
    assert_eq!(json["type"], "io.nats.jetstream.metric.v1.consumer_ack");
    assert_eq!(
        (json["stream_seq"].as_u64(), json["consumer_seq"].as_u64(), json["deliveries"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    let ack_time = json["ack_time"].as_i64().unwrap_or(0);
    assert!((50_000_000..2_000_000_000).contains(&ack_time), "ack_time {ack_time}");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), metrics.next()).await.is_err(),
        "one event only"
    );
}

#[tokio::test]
async fn an_idle_push_consumer_with_a_subscriber_does_not_wake_until_a_message_comes() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    let js = js(&server).await;
    let s = stream_with(&js, "I", "i.>", 1).await;
    let mut inbox = nc.subscribe("idle.deliver").await.unwrap();
    nc.flush().await.unwrap();
    s.create_consumer(consumer::push::Config {
        durable_name: Some("d".into()),
        deliver_subject: "idle.deliver".into(),
        ack_policy: AckPolicy::None,
        ..Default::default()
    })
    .await
    .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(2), inbox.next()).await.unwrap().unwrap();
    assert_eq!(first.payload, "0");
    let pumps = || server.core().stats.consumer_pumps.load(std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = pumps();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(pumps(), before, "an idle consumer with interest polled");
    // A new message still wakes it.
    js.publish("i.1", "1".into()).await.unwrap().await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(2), inbox.next()).await.unwrap().unwrap();
    assert_eq!(next.payload, "1");
}

#[tokio::test]
async fn idle_consumers_hold_no_task_and_busy_ones_still_deliver() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    let js = js(&server).await;
    let s = stream_with(&js, "T", "t.>", 1).await;
    let mut inbox = nc.subscribe("tasks.>").await.unwrap();
    nc.flush().await.unwrap();
    let alive = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let before = alive();
    const CONSUMERS: usize = 100;
    for i in 0..CONSUMERS {
        s.create_consumer(consumer::push::Config {
            durable_name: Some(format!("c{i}")),
            deliver_subject: format!("tasks.{i}"),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(1),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    // Each delivers the stored message; its ack wait runs out once (a timer, not a task).
    for _ in 0..CONSUMERS {
        tokio::time::timeout(Duration::from_secs(5), inbox.next()).await.unwrap().unwrap();
    }
    let mut redelivered = 0;
    while redelivered < CONSUMERS {
        let m = tokio::time::timeout(Duration::from_secs(5), inbox.next()).await.unwrap().unwrap();
        nc.publish(m.reply.unwrap(), "".into()).await.unwrap();
        redelivered += 1;
    }
    // Past the ack wait registered by the redeliveries (a stale timer still makes one pass)
    // and the linger of that last pass (about 2 s): no delivery task is left.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while alive() >= before + 10 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{CONSUMERS} idle consumers: {before} -> {} tasks",
            alive()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    nc.flush().await.unwrap();
    js.publish("t.1", "again".into()).await.unwrap().await.unwrap();
    for _ in 0..CONSUMERS {
        let m = tokio::time::timeout(Duration::from_secs(5), inbox.next()).await.unwrap().unwrap();
        assert_eq!(m.payload, "again");
        nc.publish(m.reply.unwrap(), "".into()).await.unwrap();
    }
}

#[tokio::test]
async fn a_deleted_consumer_leaves_no_timer_behind() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let s = stream_with(&js, "D", "d.>", 1).await;
    let c = s
        .create_consumer(consumer::pull::Config {
            durable_name: Some("d".into()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(3600),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = c.fetch().max_messages(1).messages().await.unwrap();
    batch.next().await.unwrap().unwrap(); // delivered, not acknowledged: an hour's ack wait
    let scheduler = server.core().jetstream.as_ref().unwrap().consumer_scheduler.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while scheduler.pending_timers() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the ack wait was never registered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Past the linger of its delivery task: only the timer remembers it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = scheduler.pending_timers();
    s.delete_consumer("d").await.unwrap();
    assert_eq!(scheduler.pending_timers(), before - 1);
}

#[tokio::test]
async fn a_push_consumer_created_before_its_subscriber_delivers_once_one_appears() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    let js = js(&server).await;
    let s = stream_with(&js, "L", "l.>", 2).await;
    s.create_consumer(consumer::push::Config {
        durable_name: Some("d".into()),
        deliver_subject: "late.deliver".into(),
        ack_policy: AckPolicy::None,
        ..Default::default()
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut inbox = nc.subscribe("late.deliver").await.unwrap();
    for expected in ["0", "1"] {
        let m = tokio::time::timeout(Duration::from_secs(2), inbox.next()).await.unwrap().unwrap();
        assert_eq!(m.payload, expected);
    }
}

#[tokio::test]
async fn push_consumer_with_queue_group_delivers_each_message_once() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let s = stream_with(&js, "Q", "q.>", 0).await;
    let c = s
        .create_consumer(consumer::push::Config {
            durable_name: Some("workers".into()),
            deliver_subject: "deliver.q".into(),
            deliver_group: Some("g".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut a = c.messages().await.unwrap();
    let mut b = c.messages().await.unwrap();
    for i in 0..20 {
        js.publish(format!("q.{i}"), "x".into()).await.unwrap().await.unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    let (mut na, mut nb) = (0, 0);
    while seen.len() < 20 {
        tokio::select! {
            Some(m) = a.next() => { let m = m.unwrap(); assert!(seen.insert(m.subject.to_string())); m.ack().await.unwrap(); na += 1; }
            Some(m) = b.next() => { let m = m.unwrap(); assert!(seen.insert(m.subject.to_string())); m.ack().await.unwrap(); nb += 1; }
            _ = tokio::time::sleep(Duration::from_secs(5)) => panic!("only {} of 20", seen.len()),
        }
    }
    assert_eq!(na + nb, 20);
}

#[tokio::test]
async fn ordered_consumer_replays_the_stream_in_order() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let s = stream_with(&js, "O", "o.>", 50).await;
    let c = s
        .create_consumer(consumer::push::OrderedConfig {
            deliver_subject: "ord.inbox".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = c.messages().await.unwrap();
    for i in 0..50u64 {
        let m = tokio::time::timeout(Duration::from_secs(5), msgs.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(m.info().unwrap().stream_sequence, i + 1);
    }
}

#[tokio::test]
async fn deliver_policies() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let s = stream_with(&js, "DP", "dp.*", 0).await;
    for (subject, payload) in [("dp.a", "1"), ("dp.b", "2"), ("dp.a", "3"), ("dp.c", "4")] {
        js.publish(subject, payload.into()).await.unwrap().await.unwrap();
    }
    async fn first_seqs(s: &stream::Stream, policy: DeliverPolicy, n: usize) -> Vec<u64> {
        // Last-per-subject needs a filter (nats-server refuses it without one).
        let filter_subject =
            if policy == DeliverPolicy::LastPerSubject { "dp.*".into() } else { String::new() };
        let c = s
            .create_consumer(consumer::pull::Config {
                deliver_policy: policy,
                filter_subject,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut batch = c.fetch().max_messages(n).messages().await.unwrap();
        let mut seqs = Vec::new();
        while let Some(m) = batch.next().await {
            seqs.push(m.unwrap().info().unwrap().stream_sequence);
        }
        seqs
    }
    assert_eq!(first_seqs(&s, DeliverPolicy::All, 10).await, [1, 2, 3, 4]);
    assert_eq!(first_seqs(&s, DeliverPolicy::Last, 10).await, [4]);
    assert_eq!(first_seqs(&s, DeliverPolicy::New, 10).await, Vec::<u64>::new());
    assert_eq!(first_seqs(&s, DeliverPolicy::ByStartSequence { start_sequence: 3 }, 10).await, [3, 4]);
    assert_eq!(first_seqs(&s, DeliverPolicy::LastPerSubject, 10).await, [2, 3, 4]);
}

#[tokio::test]
async fn replay_original_keeps_the_gaps_between_messages() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let s = stream_with(&js, "RO", "ro.>", 1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    js.publish("ro.later", "2".into()).await.unwrap().await.unwrap();
    let c = s
        .create_consumer(consumer::pull::Config {
            replay_policy: consumer::ReplayPolicy::Original,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = c.batch().max_messages(2).expires(Duration::from_secs(3)).messages().await.unwrap();
    batch.next().await.unwrap().unwrap();
    let first = std::time::Instant::now();
    batch.next().await.unwrap().unwrap();
    assert!(first.elapsed() >= Duration::from_millis(300), "gap kept: {:?}", first.elapsed());
}

#[tokio::test]
async fn rate_limit_spaces_push_deliveries() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let s = stream_with(&js, "RL", "rl.>", 0).await;
    for _ in 0..5 {
        js.publish("rl.x", vec![0u8; 1000].into()).await.unwrap().await.unwrap();
    }
    // ~1 KB per message at 40 kbit/s: about 0.2 s per message, so 5 take about 0.8 s after the first.
    let c = s
        .create_consumer(consumer::push::Config {
            deliver_subject: "ratelimited.inbox".into(),
            rate_limit: 40_000,
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = c.messages().await.unwrap();
    msgs.next().await.unwrap().unwrap();
    let started = std::time::Instant::now();
    for _ in 0..4 {
        tokio::time::timeout(Duration::from_secs(5), msgs.next()).await.unwrap().unwrap().unwrap();
    }
    assert!(started.elapsed() >= Duration::from_millis(600), "paced: {:?}", started.elapsed());
}

#[tokio::test]
async fn paused_consumer_delivers_nothing_until_resumed() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let s = stream_with(&js, "PA", "pa.>", 3).await;
    let c = s
        .create_consumer(consumer::pull::Config { durable_name: Some("d".into()), ..Default::default() })
        .await
        .unwrap();
    let nc = server.client().await;
    let until = jetway::time::format_nanos(jetway::time::now_nanos() + 60_000_000_000);
    let reply = nc
        .request("$JS.API.CONSUMER.PAUSE.PA.d", format!(r#"{{"pause_until":"{until}"}}"#).into())
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(json["paused"], true, "{json}");
    assert!(json["pause_remaining"].as_i64().unwrap() > 0);
    let mut batch = c.batch().max_messages(3).expires(Duration::from_millis(500)).messages().await.unwrap();
    assert!(batch.next().await.is_none(), "paused: nothing delivered");
    let reply = nc.request("$JS.API.CONSUMER.PAUSE.PA.d", "{}".into()).await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(json["paused"], false);
    let mut batch = c.batch().max_messages(3).expires(Duration::from_secs(2)).messages().await.unwrap();
    let mut n = 0;
    while let Some(m) = batch.next().await {
        m.unwrap();
        n += 1;
    }
    assert_eq!(n, 3);
}

#[tokio::test]
async fn inactive_ephemeral_consumer_is_removed() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let s = stream_with(&js, "IN", "in.>", 1).await;
    let c = s
        .create_consumer(consumer::pull::Config {
            inactive_threshold: Duration::from_millis(300),
            ..Default::default()
        })
        .await
        .unwrap();
    let name = c.cached_info().name.clone();
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if s.consumer_info(&name).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("removed after its inactive threshold");
}

#[tokio::test]
async fn headers_only_delivers_headers_and_the_size() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let s = stream_with(&js, "HO", "ho.>", 0).await;
    js.publish("ho.x", vec![7u8; 321].into()).await.unwrap().await.unwrap();
    let c =
        s.create_consumer(consumer::pull::Config { headers_only: true, ..Default::default() }).await.unwrap();
    let mut batch = c.fetch().max_messages(1).messages().await.unwrap();
    let m = batch.next().await.unwrap().unwrap();
    assert!(m.payload.is_empty());
    let size = m.headers.as_ref().and_then(|h| h.get("Nats-Msg-Size")).map(|v| v.as_str().to_string());
    assert_eq!(size.as_deref(), Some("321"));
}

#[tokio::test]
async fn a_no_wait_pull_from_a_paused_consumer_is_answered_no_messages() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    stream_with(&js, "PN", "pn.>", 2).await;
    let nc = server.client().await;
    let until = jetway::time::format_nanos(jetway::time::now_nanos() + 60_000_000_000);
    let create = r#"{"stream_name":"PN","config":{"durable_name":"d","ack_policy":"explicit"}}"#;
    nc.request("$JS.API.CONSUMER.CREATE.PN.d", create.into()).await.unwrap();
    nc.request("$JS.API.CONSUMER.PAUSE.PN.d", format!(r#"{{"pause_until":"{until}"}}"#).into())
        .await
        .unwrap();
    // As nats-server: a paused consumer has nothing to send, so a no_wait request ends at once.
    let reply = tokio::time::timeout(
        Duration::from_secs(2),
        nc.request("$JS.API.CONSUMER.MSG.NEXT.PN.d", r#"{"batch":1,"no_wait":true}"#.into()),
    )
    .await
    .expect("a no_wait request is answered")
    .unwrap();
    let headers = reply.headers.expect("a status message");
    assert_eq!(reply.status, Some(async_nats::StatusCode::NOT_FOUND), "{headers:?}");
    let info = nc.request("$JS.API.CONSUMER.INFO.PN.d", "".into()).await.unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.payload).unwrap();
    assert_eq!(info["num_waiting"], 0, "the answered request is not kept: {info}");
}

#[tokio::test]
async fn num_pending_leaves_out_messages_deleted_inside_the_stream() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    stream_with(&js, "ND", "nd.>", 3).await;
    let nc = server.client().await;
    let deleted = nc.request("$JS.API.STREAM.MSG.DELETE.ND", r#"{"seq":2}"#.into()).await.unwrap();
    assert!(String::from_utf8_lossy(&deleted.payload).contains(r#""success":true"#));
    let create = r#"{"stream_name":"ND","config":{"durable_name":"d","ack_policy":"explicit"}}"#;
    let created = nc.request("$JS.API.CONSUMER.CREATE.ND.d", create.into()).await.unwrap();
    let created: serde_json::Value = serde_json::from_slice(&created.payload).unwrap();
    assert_eq!(created["num_pending"], 2, "two messages are left: {created}");
}

/// A pull request and everything that comes back within `wait`.
async fn pull_replies(
    nc: &async_nats::Client,
    subject: &str,
    body: &str,
    wait: Duration,
) -> Vec<async_nats::Message> {
    let inbox = nc.new_inbox();
    let mut replies = nc.subscribe(inbox.clone()).await.unwrap();
    nc.publish_with_reply(subject.to_string(), inbox, body.to_string().into()).await.unwrap();
    let mut got = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(wait, replies.next()).await {
        got.push(m);
    }
    got
}

#[tokio::test]
async fn pull_requests_are_judged_as_nats_server_judges_them() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    stream_with(&js, "PJ", "pj.>", 3).await;
    let nc = server.client().await;
    let create = r#"{"stream_name":"PJ","config":{"durable_name":"d","ack_policy":"explicit","max_expires":2000000000}}"#;
    nc.request("$JS.API.CONSUMER.CREATE.PJ.d", create.into()).await.unwrap();
    let wait = Duration::from_millis(300);
    // No expires at all is within any max_expires (only a longer one is refused).
    let got = pull_replies(&nc, "$JS.API.CONSUMER.MSG.NEXT.PJ.d", r#"{"batch":1}"#, wait).await;
    assert_eq!(got.len(), 1);
    assert!(got[0].status.is_none(), "a message, not {:?}", got[0].headers);
    let got =
        pull_replies(&nc, "$JS.API.CONSUMER.MSG.NEXT.PJ.d", r#"{"batch":1,"expires":5000000000}"#, wait)
            .await;
    assert_eq!(got[0].status, Some(async_nats::StatusCode::from_u16(409).unwrap()));
    // A message's size for max_bytes counts its ack reply subject too: 5 bytes of subject
    // and payload do not fit in 10 once the reply is added.
    let got = pull_replies(
        &nc,
        "$JS.API.CONSUMER.MSG.NEXT.PJ.d",
        r#"{"batch":2,"max_bytes":10,"expires":300000000}"#,
        wait,
    )
    .await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].status, Some(async_nats::StatusCode::from_u16(409).unwrap()));
    assert_eq!(got[0].description.as_deref(), Some("Message Size Exceeds MaxBytes"));
}

#[tokio::test]
async fn next_requests_to_a_missing_or_push_consumer_are_answered_as_nats_server_does() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    stream_with(&js, "NX", "nx.>", 1).await;
    let nc = server.client().await;
    // Nobody serves a consumer that does not exist: no responders.
    let missing = nc.request("$JS.API.CONSUMER.MSG.NEXT.NX.nope", "1".into()).await;
    assert_eq!(missing.unwrap_err().kind(), async_nats::RequestErrorKind::NoResponders);
    let missing = nc.request("$JS.API.CONSUMER.MSG.NEXT.NOPE.d", "1".into()).await;
    assert_eq!(missing.unwrap_err().kind(), async_nats::RequestErrorKind::NoResponders);
    // A push consumer says what it is.
    let create = r#"{"stream_name":"NX","config":{"durable_name":"p","ack_policy":"explicit","deliver_subject":"push.nx"}}"#;
    nc.request("$JS.API.CONSUMER.CREATE.NX.p", create.into()).await.unwrap();
    let got = pull_replies(&nc, "$JS.API.CONSUMER.MSG.NEXT.NX.p", "1", Duration::from_millis(300)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].status, Some(async_nats::StatusCode::from_u16(409).unwrap()));
    assert_eq!(got[0].description.as_deref(), Some("Consumer is push based"));
}

#[tokio::test]
async fn terminated_messages_are_announced_with_their_reason_when_given() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let s = stream_with(&js, "TA", "ta.>", 2).await;
    let nc = server.client().await;
    let mut advisories = nc.subscribe("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.TA.>").await.unwrap();
    nc.flush().await.unwrap();
    let c = s
        .create_consumer(consumer::pull::Config { durable_name: Some("t".into()), ..Default::default() })
        .await
        .unwrap();
    let mut batch = c.fetch().max_messages(2).messages().await.unwrap();
    let first = batch.next().await.unwrap().unwrap();
    let second = batch.next().await.unwrap().unwrap();
    first.ack_with(AckKind::Term).await.unwrap();
    nc.publish(second.reply.clone().unwrap(), "+TERM not wanted".into()).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let m = tokio::time::timeout(Duration::from_secs(2), advisories.next()).await.unwrap().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(json["type"], "io.nats.jetstream.advisory.v1.terminated");
        seen.push((json["stream_seq"].as_u64().unwrap(), json.get("reason").cloned()));
    }
    seen.sort_by_key(|(seq, _)| *seq);
    assert_eq!(seen, [(1, None), (2, Some("not wanted".into()))]);
}

/// `no_wait` as nats-server reads it: without `expires` a request ends at once with
/// `404 No Messages` when nothing is left (even queued behind a waiting request, and after
/// delivering part of its batch); with `expires` it waits for messages like any request but
/// ends with `404` as soon as it got some and nothing more is there, or `408` at expiry.
#[tokio::test]
async fn no_wait_requests_end_as_on_nats_server() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    stream_with(&js, "NW", "nw.>", 2).await;
    let nc = server.client().await;
    let create = r#"{"stream_name":"NW","config":{"durable_name":"d","ack_policy":"explicit"}}"#;
    nc.request("$JS.API.CONSUMER.CREATE.NW.d", create.into()).await.unwrap();
    let next = "$JS.API.CONSUMER.MSG.NEXT.NW.d";
    let status = |m: &async_nats::Message| m.status.map(|s| s.as_u16());
    let quick = Duration::from_millis(400);

    // Part of a batch, then the end: 404, not 408.
    let got = pull_replies(&nc, next, r#"{"batch":5,"no_wait":true}"#, quick).await;
    let statuses: Vec<_> = got.iter().map(status).collect();
    assert_eq!(statuses, [None, None, Some(404)], "{got:?}");

    // A waiting request holds the rest of the stream; a no_wait one behind it ends at once.
    let inbox = nc.new_inbox();
    let mut lingering = nc.subscribe(inbox.clone()).await.unwrap();
    nc.publish_with_reply(next, inbox, r#"{"batch":5,"expires":5000000000}"#.into()).await.unwrap();
    nc.flush().await.unwrap();
    let got = pull_replies(&nc, next, r#"{"batch":1,"no_wait":true}"#, quick).await;
    assert_eq!(got.iter().map(status).collect::<Vec<_>>(), [Some(404)], "{got:?}");

    // With expires it waits: a message published meanwhile is delivered, then the request ends.
    let inbox = nc.new_inbox();
    let mut waiting = nc.subscribe(inbox.clone()).await.unwrap();
    nc.publish_with_reply(next, inbox, r#"{"batch":2,"no_wait":true,"expires":2000000000}"#.into())
        .await
        .unwrap();
    nc.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    // The lingering request is first in line: let it take one message.
    js.publish("nw.late", "for the lingering request".into()).await.unwrap().await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(2), lingering.next()).await.unwrap().unwrap();
    assert!(first.status.is_none(), "{first:?}");
    drop(lingering); // its interest gone, the lingering request is dropped
    tokio::time::sleep(Duration::from_millis(100)).await;
    js.publish("nw.later", "for the no_wait request".into()).await.unwrap().await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(2), waiting.next()).await.unwrap().unwrap();
    assert_eq!((m.subject.as_str(), status(&m)), ("nw.later", None), "{m:?}");
    let end = tokio::time::timeout(Duration::from_secs(2), waiting.next()).await.unwrap().unwrap();
    assert_eq!(status(&end), Some(404), "{end:?}");

    // With expires and nothing coming: 408 when it expires, not an early 404.
    let started = std::time::Instant::now();
    let got = pull_replies(
        &nc,
        next,
        r#"{"batch":1,"no_wait":true,"expires":300000000}"#,
        Duration::from_millis(800),
    )
    .await;
    assert_eq!(got.iter().map(status).collect::<Vec<_>>(), [Some(408)], "{got:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
}

/// A no_wait pull that could not be served because waiting requests already claim more than
/// is pending gets `408 Requests Pending` at once, as from nats-server.
#[tokio::test]
async fn a_no_wait_pull_behind_larger_claims_is_told_requests_pending() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    stream_with(&js, "RQ", "rq.>", 3).await;
    let nc = server.client().await;
    let create =
        r#"{"stream_name":"RQ","config":{"durable_name":"c","ack_policy":"explicit","max_ack_pending":1}}"#;
    nc.request("$JS.API.CONSUMER.CREATE.RQ.c", create.into()).await.unwrap();
    let next = "$JS.API.CONSUMER.MSG.NEXT.RQ.c";
    // One delivered (and not acknowledged: max_ack_pending holds the other two); the request
    // still claims four.
    let inbox = nc.new_inbox();
    let mut claim = nc.subscribe(inbox.clone()).await.unwrap();
    nc.publish_with_reply(next, inbox, r#"{"batch":5,"expires":3000000000}"#.into()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), claim.next()).await.unwrap().unwrap();
    for body in [r#"{"batch":1,"no_wait":true}"#, r#"{"batch":1,"no_wait":true,"expires":300000000}"#] {
        let got = pull_replies(&nc, next, body, Duration::from_millis(200)).await;
        let got: Vec<_> = got.iter().map(|m| (m.status.map(|s| s.as_u16()), m.description.clone())).collect();
        assert_eq!(got, [(Some(408), Some("Requests Pending".to_string()))], "{body}");
    }
}
