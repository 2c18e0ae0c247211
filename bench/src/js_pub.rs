//! JetStream publish with acks: how fast a stream stores messages, and the ack latency.
//!
//! The stream is deleted and created afresh, then `--msgs` messages are published with
//! at most `--window` acks in flight. Window 1 is synchronous publishing (each ack
//! awaited before the next publish), so its rate is 1 / ack latency; with a larger window
//! a server that syncs to disk before acking can batch its fsyncs, and the ceiling is
//! about window / fsync latency. The clock runs from the first publish to the last ack.

use std::time::Instant;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::conn::{connect, Incidents};
use crate::js::{context, publish_windowed, recreate_stream, stream_messages, Acks, StreamArgs};
use crate::stats::{megabytes_per_second, per_second, percentile, round3};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    common: StreamArgs,
    /// Publish acks allowed in flight: 1 = synchronous publishing.
    #[arg(long, default_value_t = 1)]
    window: usize,
}

pub async fn run(args: Args, deadline: tokio::time::Instant) -> anyhow::Result<Value> {
    let Args { common: args, window } = args;
    anyhow::ensure!(args.msgs >= 1, "--msgs must be at least 1");
    anyhow::ensure!(window >= 1, "--window must be at least 1");
    let incidents = Incidents::new();
    let client = connect(&args.url, "bench-js-pub", &incidents).await?;
    let js = context(client, window);
    recreate_stream(&js, &args.stream, &args.subject, args.storage).await?;

    let payload = Bytes::from(vec![b'j'; args.size]);
    let mut acks =
        Acks { count: 0, latencies_us: Vec::with_capacity(usize::try_from(args.msgs).unwrap_or(0)) };
    let started = Instant::now();
    let publishing =
        publish_windowed(&js, &args.stream, &args.subject, &payload, args.msgs, window, &mut acks);
    let outcome = tokio::time::timeout_at(deadline, publishing).await;
    let elapsed = started.elapsed();
    match outcome {
        Ok(result) => result?,
        Err(_) => anyhow::bail!("deadline reached after {} of {} acks", acks.count, args.msgs),
    }
    incidents.check()?;
    let (stored, _) = stream_messages(&js, &args.stream).await?.unwrap_or((0, ""));
    anyhow::ensure!(
        stored == args.msgs,
        "stream {} holds {stored} messages, expected {}",
        args.stream,
        args.msgs
    );

    let mut latencies = acks.latencies_us;
    latencies.sort_unstable();
    let total: u64 = latencies.iter().sum();
    Ok(json!({
        "url": args.url,
        "stream": args.stream,
        "storage": args.storage.name(),
        "size": args.size,
        "msgs": args.msgs,
        "window": window,
        "elapsed_s": round3(elapsed.as_secs_f64()),
        "msgs_per_s": per_second(args.msgs, elapsed).round(),
        "mb_per_s": round3(megabytes_per_second(args.msgs * args.size as u64, elapsed)),
        "ack_latency_us": {
            "p50": percentile(&latencies, 50.0),
            "p90": percentile(&latencies, 90.0),
            "p99": percentile(&latencies, 99.0),
            "max": latencies.last().copied().unwrap_or(0),
            "mean": round3(total as f64 / latencies.len().max(1) as f64),
        },
    }))
}
