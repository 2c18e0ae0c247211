//! One MQTT session gathering many subscriptions (a gateway device subscribing for each of
//! its sub-devices): how long each SUBSCRIBE takes as the session's subscriptions grow.
//!
//! One client (clean session = false unless `--clean`) subscribes `--topics` distinct topics
//! at QoS 1, `--per-subscribe` filters per SUBSCRIBE packet, one packet at a time (each waits
//! for its SUBACK). Reported: the whole time, and the mean SUBACK wait of the first and the
//! last tenth of the packets: a server whose per-SUBSCRIBE work grows with the session's
//! subscriptions shows a last tenth far slower than the first.

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
    let _ = client.disconnect().await;
    anyhow::ensure!(refused == 0, "the server refused {refused} of {} subscriptions", args.topics);
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
    }))
}
