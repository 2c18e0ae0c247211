//! JetStream pull consumption with explicit acks: how fast a durable consumer drains a
//! stream.
//!
//! The stream is filled first (unmeasured: `--msgs` messages published with 256 acks in
//! flight), unless `--reuse` finds it already holding at least `--msgs` messages, e.g.
//! from a `js-pub` run. A fresh durable pull consumer (explicit acks, deliver all) then
//! fetches batches of `--batch` and acks every message. The clock runs from the first
//! fetch until the last ack is flushed to the server.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::stream::ConsumerErrorKind;
use async_nats::jetstream::ErrorCode;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::conn::{connect, Incidents};
use crate::js::{context, publish_windowed, recreate_stream, stream_messages, Acks, StreamArgs};
use crate::stats::{megabytes_per_second, per_second, round3};

/// Acks in flight while filling the stream.
const PRELOAD_WINDOW: usize = 256;
/// How long one pull request may wait for its batch to fill.
const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// A run fails after this many pull requests in a row that brought nothing.
const MAX_EMPTY_PULLS: u32 = 3;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    common: StreamArgs,
    /// Messages asked for per pull request.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Durable consumer name; an existing consumer of this name is replaced.
    #[arg(long, default_value = "bench-consumer")]
    consumer: String,
    /// Keep an existing stream that already holds at least --msgs messages.
    #[arg(long)]
    reuse: bool,
}

pub async fn run(args: Args, deadline: tokio::time::Instant) -> anyhow::Result<Value> {
    let Args { common: args, batch, consumer: consumer_name, reuse } = args;
    anyhow::ensure!(args.msgs >= 1, "--msgs must be at least 1");
    anyhow::ensure!(batch >= 1, "--batch must be at least 1");
    let incidents = Incidents::new();
    let client = connect(&args.url, "bench-js-consume", &incidents).await?;
    let js = context(client.clone(), PRELOAD_WINDOW);

    let existing = stream_messages(&js, &args.stream).await?;
    let reused = reuse && existing.is_some_and(|(held, _)| held >= args.msgs);
    let storage = match existing {
        Some((_, storage)) if reused => storage,
        _ => args.storage.name(),
    };
    let preload_started = Instant::now();
    if !reused {
        recreate_stream(&js, &args.stream, &args.subject, args.storage).await?;
        let payload = Bytes::from(vec![b'c'; args.size]);
        let mut acks = Acks::default();
        let filling = publish_windowed(
            &js,
            &args.stream,
            &args.subject,
            &payload,
            args.msgs,
            PRELOAD_WINDOW,
            &mut acks,
        );
        match tokio::time::timeout_at(deadline, filling).await {
            Ok(result) => result.context("filling the stream")?,
            Err(_) => anyhow::bail!(
                "deadline reached while filling the stream ({} of {} acks)",
                acks.count,
                args.msgs
            ),
        }
    }
    let preload = preload_started.elapsed();

    let stream = js.get_stream(&args.stream).await.context("opening the stream")?;
    match stream.delete_consumer(&consumer_name).await {
        Ok(_) => {}
        Err(err) if is_consumer_not_found(err.kind()) => {}
        Err(err) => return Err(err).context("deleting the old consumer"),
    }
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(consumer_name.clone()),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::All,
            // Acks are sent without waiting, so a few batches may be unacknowledged at once.
            max_ack_pending: i64::try_from(batch.saturating_mul(4).max(1000)).unwrap_or(i64::MAX),
            ..Default::default()
        })
        .await
        .context("creating the pull consumer")?;

    let mut received: u64 = 0;
    let mut bytes: u64 = 0;
    let mut pulls: u64 = 0;
    let started = Instant::now();
    let consuming = async {
        let mut empty_in_a_row = 0;
        while received < args.msgs {
            let want = usize::try_from(args.msgs - received).unwrap_or(usize::MAX).min(batch);
            let mut pulled = consumer
                .batch()
                .max_messages(want)
                .expires(PULL_EXPIRES)
                .messages()
                .await
                .context("sending a pull request")?;
            pulls += 1;
            let before = received;
            while let Some(message) = pulled.next().await {
                let message = message.map_err(|err| anyhow::anyhow!("pulling: {err}"))?;
                bytes += message.payload.len() as u64;
                message.ack().await.map_err(|err| anyhow::anyhow!("acking: {err}"))?;
                received += 1;
            }
            empty_in_a_row = if received == before { empty_in_a_row + 1 } else { 0 };
            anyhow::ensure!(
                empty_in_a_row < MAX_EMPTY_PULLS,
                "{MAX_EMPTY_PULLS} pull requests in a row brought nothing"
            );
        }
        client.flush().await.context("flushing the acks")?;
        anyhow::Ok(())
    };
    let outcome = tokio::time::timeout_at(deadline, consuming).await;
    let elapsed = started.elapsed();
    match outcome {
        Ok(result) => result?,
        Err(_) => anyhow::bail!("deadline reached after {received} of {} messages", args.msgs),
    }
    incidents.check()?;

    Ok(json!({
        "url": args.url,
        "stream": args.stream,
        "storage": storage,
        "msgs": args.msgs,
        "batch": batch,
        "reused_stream": reused,
        "preload_s": round3(preload.as_secs_f64()),
        "pull_requests": pulls,
        "elapsed_s": round3(elapsed.as_secs_f64()),
        "msgs_per_s": per_second(received, elapsed).round(),
        "mb_per_s": round3(megabytes_per_second(bytes, elapsed)),
    }))
}

fn is_consumer_not_found(kind: ConsumerErrorKind) -> bool {
    matches!(kind, ConsumerErrorKind::JetStream(err) if err.error_code() == ErrorCode::CONSUMER_NOT_FOUND)
}
