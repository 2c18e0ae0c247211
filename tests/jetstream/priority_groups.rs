//! Priority groups of pull consumers (`priority_policy` overflow, pinned_client, prioritized)
//! through async-nats' consumer API, and how waiting pull requests share messages.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PriorityPolicy};
use async_nats::jetstream::{stream, Context};
use futures::StreamExt;

use super::{err_code, js};
use crate::harness::TestServer;

async fn stream(js: &Context) -> stream::Stream {
    js.create_stream(stream::Config { name: "P".into(), subjects: vec!["p.>".into()], ..Default::default() })
        .await
        .unwrap()
}

async fn publish(js: &Context, n: usize) {
    for i in 0..n {
        js.publish(format!("p.{i}"), format!("m{i}").into()).await.unwrap().await.unwrap();
    }
}

/// Waits until `n` pull requests wait on the consumer (so the order of arrival is settled).
async fn until_waiting(consumer: &mut async_nats::jetstream::consumer::PullConsumer, n: usize) {
    for _ in 0..200 {
        if consumer.info().await.unwrap().num_waiting == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{n} pull requests never waited");
}

/// Sends pull requests (inbox, body) to `consumer` of stream `P`, each once the one before waits.
async fn pull_in_order<const N: usize>(
    client: &async_nats::Client,
    consumer: &mut async_nats::jetstream::consumer::PullConsumer,
    requests: [(&'static str, String); N],
) {
    let next = format!("$JS.API.CONSUMER.MSG.NEXT.P.{}", consumer.cached_info().name);
    for (i, (inbox, body)) in requests.into_iter().enumerate() {
        client.publish_with_reply(next.clone(), inbox, body.into()).await.unwrap();
        until_waiting(consumer, i + 1).await;
    }
}

/// The payloads arriving on `sub` within `wait`, status messages left out.
async fn payloads(sub: &mut async_nats::Subscriber, wait: Duration) -> Vec<String> {
    let mut got = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(wait, sub.next()).await {
        if m.status.is_none() {
            got.push(String::from_utf8_lossy(&m.payload).into_owned());
        }
    }
    got
}

/// A durable pull consumer with explicit acks and `policy` over the group `A`.
fn in_group_a(name: &str, policy: PriorityPolicy) -> pull::Config {
    pull::Config {
        durable_name: Some(name.into()),
        ack_policy: AckPolicy::Explicit,
        priority_policy: policy,
        priority_groups: vec!["A".into()],
        ..Default::default()
    }
}

#[tokio::test]
async fn a_pinned_client_gets_every_message_until_it_is_unpinned() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let s = stream(&js).await;
    let consumer = s
        .create_consumer(pull::Config {
            priority_timeout: Duration::from_secs(30),
            ..in_group_a("pin", PriorityPolicy::PinnedClient)
        })
        .await
        .unwrap();
    let pull = || {
        consumer.stream().group("A").expires(Duration::from_millis(500)).heartbeat(Duration::from_millis(100))
    };
    let mut first = pull().messages().await.unwrap();
    publish(&js, 1).await;
    let m = tokio::time::timeout(Duration::from_secs(5), first.next()).await.unwrap().unwrap().unwrap();
    m.ack().await.unwrap();
    let pin = m.headers.as_ref().and_then(|h| h.get("Nats-Pin-Id")).map(|v| v.to_string());
    assert!(pin.as_deref().is_some_and(|p| !p.is_empty()), "no pin id in {:?}", m.headers);

    // A second client stands by while the first is pinned.
    let mut second = pull().messages().await.unwrap();
    publish(&js, 5).await;
    for _ in 0..5 {
        let m = tokio::time::timeout(Duration::from_secs(5), first.next()).await.unwrap().unwrap().unwrap();
        m.ack().await.unwrap();
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(700), second.next()).await.is_err(),
        "standby got a message"
    );
    let mut info_consumer = s.get_consumer::<pull::Config>("pin").await.unwrap();
    let info = info_consumer.info().await.unwrap();
    let group = info.priority_groups.first().cloned().unwrap();
    assert_eq!((group.group.as_str(), &group.pinned_client_id), ("A", &pin));
    assert!(group.pinned_ts.is_some());

    // The pinned client goes away and an admin unpins it: the standby takes over.
    drop(first);
    s.unpin_consumer("pin", "A").await.unwrap();
    publish(&js, 2).await;
    for _ in 0..2 {
        let m = tokio::time::timeout(Duration::from_secs(5), second.next()).await.unwrap().unwrap().unwrap();
        m.ack().await.unwrap();
    }
    let info = info_consumer.info().await.unwrap();
    let new_pin = info.priority_groups.first().and_then(|g| g.pinned_client_id.clone());
    assert!(new_pin.is_some() && new_pin != pin, "pinned {new_pin:?} after {pin:?}");

    // Unpinning a group the consumer does not have is refused as by nats-server.
    let err = s.unpin_consumer("pin", "B").await.unwrap_err();
    assert_eq!(err_code(&err), Some(10160), "{err:?}");
}

#[tokio::test]
async fn an_overflow_request_waits_for_its_minimum_pending() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let s = stream(&js).await;
    let consumer = s.create_consumer(in_group_a("of", PriorityPolicy::Overflow)).await.unwrap();
    publish(&js, 2).await;
    let standby = || {
        consumer
            .batch()
            .group("A")
            .min_pending(5)
            .max_messages(3)
            .expires(Duration::from_millis(300))
            .messages()
    };
    // Two pending, the standby asks for at least five: nothing.
    let got: Vec<_> = standby().await.unwrap().collect().await;
    assert!(got.iter().all(|m| m.is_err()) || got.is_empty(), "{got:?}");
    // Six pending: it helps while five or more are (two messages), then waits again.
    publish(&js, 4).await;
    let got: Vec<_> = standby().await.unwrap().filter_map(|m| async { m.ok() }).collect().await;
    assert_eq!(got.len(), 2);
    // Two awaiting acks now: a request for at least two awaiting acks is served.
    let got: Vec<_> = consumer
        .batch()
        .group("A")
        .min_ack_pending(2)
        .max_messages(1)
        .expires(Duration::from_millis(300))
        .messages()
        .await
        .unwrap()
        .filter_map(|m| async { m.ok() })
        .collect()
        .await;
    assert_eq!(got.len(), 1);
}

#[tokio::test]
async fn prioritized_requests_are_served_lowest_priority_first() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let js = js(&server).await;
    let s = stream(&js).await;
    let mut consumer = s
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::New,
            ack_policy: AckPolicy::None,
            ..in_group_a("pr", PriorityPolicy::Prioritized)
        })
        .await
        .unwrap();
    let mut low = client.subscribe("low").await.unwrap();
    let mut high = client.subscribe("high").await.unwrap();
    let request = |p: u8| format!(r#"{{"batch":2,"expires":2000000000,"group":"A","priority":{p}}}"#);
    pull_in_order(&client, &mut consumer, [("low", request(5)), ("high", request(1))]).await;
    publish(&js, 3).await;
    assert_eq!(payloads(&mut high, Duration::from_millis(300)).await, ["m0", "m1"]);
    assert_eq!(payloads(&mut low, Duration::from_millis(300)).await, ["m2"]);
}

#[tokio::test]
async fn waiting_pull_requests_take_turns_message_by_message() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let js = js(&server).await;
    let s = stream(&js).await;
    let mut consumer = s
        .create_consumer(pull::Config {
            durable_name: Some("rr".into()),
            deliver_policy: DeliverPolicy::New,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut a = client.subscribe("a").await.unwrap();
    let mut b = client.subscribe("b").await.unwrap();
    let request = r#"{"batch":3,"expires":2000000000}"#.to_string();
    pull_in_order(&client, &mut consumer, [("a", request.clone()), ("b", request)]).await;
    publish(&js, 4).await;
    // As from nats-server: not a whole batch to the first request, but one message each in turn.
    assert_eq!(payloads(&mut a, Duration::from_millis(300)).await, ["m0", "m2"]);
    assert_eq!(payloads(&mut b, Duration::from_millis(300)).await, ["m1", "m3"]);
}

#[tokio::test]
async fn priority_configs_are_checked_as_by_nats_server() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    let s = stream(&js).await;
    let refused = [
        (pull::Config { priority_policy: PriorityPolicy::Overflow, ..Default::default() }, 10159),
        (
            pull::Config {
                priority_policy: PriorityPolicy::Overflow,
                priority_groups: vec!["a.b".into()],
                ..Default::default()
            },
            10162,
        ),
        (pull::Config { priority_groups: vec!["A".into()], ..Default::default() }, 10196),
        (pull::Config { priority_timeout: Duration::from_secs(1), ..Default::default() }, 10197),
    ];
    for (config, code) in refused {
        let err = s.create_consumer(config.clone()).await.unwrap_err();
        assert_eq!(err_code(&err), Some(code), "{config:?}: {err:?}");
    }
    // A pinned consumer without a timeout gets nats-server's two minutes.
    let mut consumer = s.create_consumer(in_group_a("pin", PriorityPolicy::PinnedClient)).await.unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!(info.config.priority_timeout, Duration::from_secs(120));
    assert_eq!(
        info.priority_groups.first().map(|g| (g.group.as_str(), g.pinned_client_id.clone())),
        Some(("A", None))
    );
}
