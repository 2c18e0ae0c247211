//! N publishers → M subscribers on one subject: fan-out throughput.
//!
//! Every connection is set up (and every subscription confirmed with a flush) before the
//! clock starts. The clock runs from the first publish until every subscriber has
//! received every message, so the delivered rate includes the server's fan-out and the
//! subscribers' reads, not just how fast publishers can write into their sockets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use async_nats::Subject;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::conn::{connect, Incidents};
use crate::stats::{megabytes_per_second, per_second, round3};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Server URL.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    url: String,
    /// Publisher connections; the message count is split between them.
    #[arg(long, default_value_t = 1)]
    pubs: u64,
    /// Subscriber connections, each receiving every message (0: publish only).
    #[arg(long, default_value_t = 1)]
    subs: u64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Messages published in total (across all publishers).
    #[arg(long, default_value_t = 1_000_000)]
    msgs: u64,
    /// Subject everything is published on.
    #[arg(long, default_value = "bench.x")]
    subject: String,
}

/// A subscriber's count so far, readable when the run has to be abandoned.
struct SubscriberHandle {
    received: Arc<AtomicU64>,
    task: JoinHandle<Instant>,
}

pub async fn run(args: Args, deadline: tokio::time::Instant) -> anyhow::Result<Value> {
    anyhow::ensure!(args.pubs >= 1, "--pubs must be at least 1");
    anyhow::ensure!(args.msgs >= 1, "--msgs must be at least 1");
    let incidents = Incidents::new();
    let subject = Subject::from(args.subject.as_str());

    let mut subscribers = Vec::new();
    for index in 0..args.subs {
        subscribers.push(start_subscriber(&args, index, &subject, &incidents).await?);
    }
    let mut publishers = Vec::new();
    for index in 0..args.pubs {
        publishers.push(connect(&args.url, &format!("bench-pub-{index}"), &incidents).await?);
    }

    let payload = Bytes::from(vec![b'x'; args.size]);
    let started = Instant::now();
    let mut publishing = Vec::new();
    for (index, client) in (0..args.pubs).zip(publishers) {
        let share = args.msgs / args.pubs + u64::from(index < args.msgs % args.pubs);
        let (subject, payload) = (subject.clone(), payload.clone());
        publishing.push(tokio::spawn(async move {
            for _ in 0..share {
                client.publish(subject.clone(), payload.clone()).await?;
            }
            client.flush().await?;
            anyhow::Ok(Instant::now())
        }));
    }

    let mut published_at = started;
    for task in publishing {
        let finished = tokio::time::timeout_at(deadline, task)
            .await
            .context("publishers did not finish before the deadline")?
            .context("publisher task panicked")?
            .context("publishing")?;
        published_at = published_at.max(finished);
    }

    let mut delivered_at = published_at;
    for (index, subscriber) in subscribers.into_iter().enumerate() {
        let received = Arc::clone(&subscriber.received);
        let finished = match tokio::time::timeout_at(deadline, subscriber.task).await {
            Ok(joined) => joined.context("subscriber task panicked")?,
            Err(_) => {
                // Say why messages are missing when a connection saw trouble.
                let why = incidents.check().err().map(|e| format!(" ({e})")).unwrap_or_default();
                anyhow::bail!(
                    "subscriber {index} received {} of {} messages before the deadline{why}",
                    received.load(Ordering::Relaxed),
                    args.msgs
                )
            }
        };
        let count = received.load(Ordering::Relaxed);
        anyhow::ensure!(
            count == args.msgs,
            "subscriber {index}'s stream ended after {count} of {} messages",
            args.msgs
        );
        delivered_at = delivered_at.max(finished);
    }
    incidents.check()?;

    let elapsed = delivered_at - started;
    let publish_elapsed = published_at - started;
    let delivered = args.msgs * args.subs;
    let bytes = |count: u64| count * args.size as u64;
    Ok(json!({
        "url": args.url,
        "pubs": args.pubs,
        "subs": args.subs,
        "size": args.size,
        "msgs": args.msgs,
        "elapsed_s": round3(elapsed.as_secs_f64()),
        "publish_elapsed_s": round3(publish_elapsed.as_secs_f64()),
        "published_msgs_per_s": per_second(args.msgs, publish_elapsed).round(),
        "published_mb_per_s": round3(megabytes_per_second(bytes(args.msgs), publish_elapsed)),
        "delivered_msgs_per_s": per_second(delivered, elapsed).round(),
        "delivered_mb_per_s": round3(megabytes_per_second(bytes(delivered), elapsed)),
    }))
}

/// Subscribes on its own connection, confirms the subscription reached the server, and
/// counts messages until `--msgs` arrived; the task yields the time of the last one.
async fn start_subscriber(
    args: &Args,
    index: u64,
    subject: &Subject,
    incidents: &Arc<Incidents>,
) -> anyhow::Result<SubscriberHandle> {
    let client = connect(&args.url, &format!("bench-sub-{index}"), incidents).await?;
    let mut subscription = client.subscribe(subject.clone()).await?;
    client.flush().await.context("confirming the subscription")?;
    let received = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&received);
    let expected = args.msgs;
    let task = tokio::spawn(async move {
        // The connection lives as long as the subscription is read.
        let _client = client;
        let mut count = 0;
        while count < expected {
            if subscription.next().await.is_none() {
                break;
            }
            count += 1;
            counter.store(count, Ordering::Relaxed);
        }
        Instant::now()
    });
    Ok(SubscriberHandle { received, task })
}
