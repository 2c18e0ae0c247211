//! One requester, one responder, sequential requests: round-trip latency.
//!
//! Only one request is ever in flight, so the numbers are the server's per-message
//! latency (two hops: requester → responder → requester), not its throughput.

use std::time::Instant;

use anyhow::Context;
use async_nats::Subject;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::conn::{connect, Incidents};
use crate::stats::{per_second, percentile, round3};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Server URL.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    url: String,
    /// Payload size in bytes, for both request and reply.
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Measured requests.
    #[arg(long, default_value_t = 20_000)]
    count: usize,
    /// Requests sent first and not measured (connection and inbox set-up, caches).
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Subject the responder listens on.
    #[arg(long, default_value = "bench.rr")]
    subject: String,
}

pub async fn run(args: Args, deadline: tokio::time::Instant) -> anyhow::Result<Value> {
    anyhow::ensure!(args.count >= 1, "--count must be at least 1");
    let incidents = Incidents::new();
    let subject = Subject::from(args.subject.as_str());

    let responder = connect(&args.url, "bench-responder", &incidents).await?;
    let mut requests = responder.subscribe(subject.clone()).await?;
    responder.flush().await.context("confirming the responder's subscription")?;
    let responding = tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            if let Some(reply) = request.reply {
                if responder.publish(reply, request.payload).await.is_err() {
                    break;
                }
            }
        }
    });

    let requester = connect(&args.url, "bench-requester", &incidents).await?;
    let payload = Bytes::from(vec![b'r'; args.size]);
    let measure = async {
        for _ in 0..args.warmup {
            requester.request(subject.clone(), payload.clone()).await.context("warm-up request")?;
        }
        let mut samples_us = Vec::with_capacity(args.count);
        let started = Instant::now();
        for _ in 0..args.count {
            let sent = Instant::now();
            let reply = requester.request(subject.clone(), payload.clone()).await.context("request")?;
            samples_us.push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
            anyhow::ensure!(reply.payload.len() == args.size, "reply of {} bytes", reply.payload.len());
        }
        anyhow::Ok((samples_us, started.elapsed()))
    };
    let outcome = tokio::time::timeout_at(deadline, measure).await;
    responding.abort();
    let (mut samples_us, elapsed) = outcome.context("requests did not finish before the deadline")??;
    incidents.check()?;

    samples_us.sort_unstable();
    let total: u64 = samples_us.iter().sum();
    Ok(json!({
        "url": args.url,
        "size": args.size,
        "count": args.count,
        "elapsed_s": round3(elapsed.as_secs_f64()),
        "requests_per_s": per_second(args.count as u64, elapsed).round(),
        "latency_us": {
            "p50": percentile(&samples_us, 50.0),
            "p90": percentile(&samples_us, 90.0),
            "p99": percentile(&samples_us, 99.0),
            "max": samples_us.last().copied().unwrap_or(0),
            "mean": round3(total as f64 / samples_us.len() as f64),
        },
    }))
}
