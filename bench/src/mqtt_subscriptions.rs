//! One MQTT session gathering many subscriptions (a gateway device subscribing for each of
//! its sub-devices): how long each SUBSCRIBE takes as the session's subscriptions grow.
//!
//! One client (clean session = false unless `--clean`) subscribes `--topics` distinct topics
//! at QoS 1, `--per-subscribe` filters per SUBSCRIBE packet, one packet at a time (each waits
//! for its SUBACK). Reported: the whole time, and the mean SUBACK wait of the first and the
//! last tenth of the packets: a server whose per-SUBSCRIBE work grows with the session's
//! subscriptions shows a last tenth far slower than the first.
//!
//! With `--publish M`, a second client then publishes M QoS 1 messages (20 in flight) to the
//! last topic subscribed, and the rate at which the session receives them is reported: what
//! a delivery costs when the receiving session holds many subscriptions (compare with
//! `--topics 1`).

use std::time::{Duration, Instant};

use anyhow::Context;
use rumqttc::{Event, Packet, QoS, SubscribeFilter, SubscribeReasonCode};
use serde_json::{json, Value};

use crate::mqtt::{connect, options, Endpoint};
use crate::stats::round3;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    endpoint: Endpoint,
    /// Distinct topics subscribed in all.
    #[arg(long, default_value_t = 4000)]
    topics: usize,
    /// Filters per SUBSCRIBE packet.
    #[arg(long, default_value_t = 1)]
    per_subscribe: usize,
    /// A clean session instead of a persistent one.
    #[arg(long)]
    clean: bool,
    /// QoS 1 messages published to the last topic once subscribed (0: none).
    #[arg(long, default_value_t = 0)]
    publish: u64,
}

pub async fn run(args: Args, deadline: tokio::time::Instant) -> anyhow::Result<Value> {
    anyhow::ensure!(
        args.topics >= 1 && args.per_subscribe >= 1,
        "--topics and --per-subscribe must be at least 1"
    );
    let id = format!("bench-subs-{}", std::process::id());
    let (client, mut eventloop) =
        tokio::time::timeout_at(deadline, connect(options(&args.endpoint, &id, args.clean, 20), None))
            .await
            .context("CONNECT did not finish before the deadline")??;
    let packets = args.topics.div_ceil(args.per_subscribe);
    let mut waits = Vec::with_capacity(packets);
    // Filters the server refused (SUBACK failure codes).
    let mut refused = 0;
    let started = Instant::now();
    for first in (0..args.topics).step_by(args.per_subscribe) {
        let last = (first + args.per_subscribe).min(args.topics);
        let filters =
            (first..last).map(|i| SubscribeFilter::new(format!("bench/subs/{i}/cmd"), QoS::AtLeastOnce));
        let sent = Instant::now();
        client.subscribe_many(filters).await.context("queueing SUBSCRIBE")?;
        loop {
            let event = tokio::time::timeout_at(deadline, eventloop.poll()).await.with_context(|| {
                format!("SUBACK {} of {packets} did not come before the deadline", waits.len() + 1)
            })??;
            if let Event::Incoming(Packet::SubAck(ack)) = event {
                refused +=
                    ack.return_codes.iter().filter(|c| matches!(c, SubscribeReasonCode::Failure)).count();
                break;
            }
        }
        waits.push(sent.elapsed());
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(refused == 0, "the server refused {refused} of {} subscriptions", args.topics);
    let delivered_per_s = if args.publish > 0 {
        let topic = format!("bench/subs/{}/cmd", args.topics - 1);
        let publisher = format!("bench-subs-pub-{}", std::process::id());
        let (sender, mut sender_loop) = connect(options(&args.endpoint, &publisher, true, 20), None).await?;
        // Queued while the publisher's loop turns (the request channel is bounded).
        let queueing = async {
            for _ in 0..args.publish {
                sender.publish(topic.as_str(), QoS::AtLeastOnce, false, vec![b'x'; 128]).await?;
            }
            anyhow::Ok(())
        };
        let acknowledged = async {
            let mut acked = 0;
            while acked < args.publish {
                if let Event::Incoming(Packet::PubAck(_)) = sender_loop.poll().await? {
                    acked += 1;
                }
            }
            anyhow::Ok(())
        };
        let publishing = async {
            let (queued, acked) = tokio::join!(queueing, acknowledged);
            queued.and(acked)
        };
        let receiving = async {
            let started = Instant::now();
            let mut received = 0;
            while received < args.publish {
                if let Event::Incoming(Packet::Publish(_)) = eventloop.poll().await? {
                    received += 1;
                }
            }
            anyhow::Ok(started.elapsed())
        };
        let (published, received) =
            tokio::time::timeout_at(deadline, async { tokio::join!(publishing, receiving) })
                .await
                .context("the messages were not delivered before the deadline")?;
        published?;
        let _ = sender.disconnect().await;
        Some((args.publish as f64 / received?.as_secs_f64()).round())
    } else {
        None
    };
    let _ = client.disconnect().await;
    let tenth = (waits.len() / 10).max(1);
    let mean_ms = |part: &[Duration]| {
        round3(part.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / part.len().max(1) as f64)
    };
    let first_tenth = mean_ms(waits.get(..tenth).unwrap_or_default());
    let last_tenth = mean_ms(waits.get(waits.len() - tenth..).unwrap_or_default());
    Ok(json!({
        "host": args.endpoint.host,
        "port": args.endpoint.port,
        "topics": args.topics,
        "per_subscribe": args.per_subscribe,
        "persistent": !args.clean,
        "subscribe_packets": packets,
        "elapsed_s": round3(elapsed.as_secs_f64()),
        "first_tenth_suback_ms": first_tenth,
        "last_tenth_suback_ms": last_tenth,
        "refused": refused,
        "published": args.publish,
        "delivered_per_s": delivered_per_s,
    }))
}
