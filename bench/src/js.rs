//! What the JetStream workloads share: the stream they use, and windowed publishing.
//!
//! A publish "window" is the number of acks allowed in flight: window 1 waits for each
//! ack before the next publish (synchronous publishing), window W keeps up to W
//! publishes unacknowledged (asynchronous publishing).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::stream::{Config, StorageType};
use async_nats::jetstream::{self, Context, ErrorCode};
use async_nats::Client;
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt;

/// How long one JetStream API request or publish ack may take before it counts as failed.
const API_TIMEOUT: Duration = Duration::from_secs(10);

/// The options every JetStream workload has: where, which stream, what messages.
#[derive(clap::Args, Debug)]
pub struct StreamArgs {
    /// Server URL.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub url: String,
    /// Stream name. A stream the workload creates replaces any stream of this name.
    #[arg(long, default_value = "BENCH")]
    pub stream: String,
    /// Subject the stream captures and messages are published on.
    #[arg(long, default_value = "bench.js")]
    pub subject: String,
    /// Payload size in bytes of the messages published.
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Messages per run (published by js-pub, consumed by js-consume).
    #[arg(long, default_value_t = 100_000)]
    pub msgs: u64,
    /// Storage of a stream the workload creates.
    #[arg(long, value_enum, default_value_t = Storage::File)]
    pub storage: Storage,
}

/// Stream storage, as a command-line choice.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    File,
    Memory,
}

impl Storage {
    pub fn name(self) -> &'static str {
        match self {
            Storage::File => "file",
            Storage::Memory => "memory",
        }
    }

    fn store_type(self) -> StorageType {
        match self {
            Storage::File => StorageType::File,
            Storage::Memory => StorageType::Memory,
        }
    }
}

/// A JetStream context that allows `window` acks in flight (and waits, rather than
/// failing, if more were ever asked for).
pub fn context(client: Client, window: usize) -> Context {
    jetstream::ContextBuilder::new()
        .timeout(API_TIMEOUT)
        .max_ack_inflight(window.max(1))
        .backpressure_on_inflight(true)
        .build(client)
}

/// Deletes `name` if it exists, then creates it empty, capturing `subject`.
pub async fn recreate_stream(
    js: &Context,
    name: &str,
    subject: &str,
    storage: Storage,
) -> anyhow::Result<()> {
    match js.delete_stream(name).await {
        Ok(_) => {}
        Err(err) if is_stream_not_found(err.kind()) => {}
        Err(err) => return Err(err).with_context(|| format!("deleting the old stream {name}")),
    }
    js.create_stream(Config {
        name: name.to_owned(),
        subjects: vec![subject.to_owned()],
        storage: storage.store_type(),
        ..Default::default()
    })
    .await
    .with_context(|| format!("creating stream {name} ({} storage)", storage.name()))?;
    Ok(())
}

fn is_stream_not_found(kind: GetStreamErrorKind) -> bool {
    matches!(kind, GetStreamErrorKind::JetStream(err) if err.error_code() == ErrorCode::STREAM_NOT_FOUND)
}

/// The number of messages in `name` and its storage, or `None` if there is no such stream.
pub async fn stream_messages(js: &Context, name: &str) -> anyhow::Result<Option<(u64, &'static str)>> {
    match js.get_stream(name).await {
        Ok(stream) => {
            let info = stream.get_info().await.with_context(|| format!("stream info of {name}"))?;
            let storage = match info.config.storage {
                StorageType::File => Storage::File,
                StorageType::Memory => Storage::Memory,
            };
            Ok(Some((info.state.messages, storage.name())))
        }
        Err(err) if is_stream_not_found(err.kind()) => Ok(None),
        Err(err) => Err(err).with_context(|| format!("looking up stream {name}")),
    }
}

/// Publish acks collected so far: a run cut off by its deadline still knows how far it got.
#[derive(Debug, Default)]
pub struct Acks {
    /// Acks received.
    pub count: u64,
    /// Per ack: microseconds from the publish call until the ack was seen.
    pub latencies_us: Vec<u64>,
}

/// Publishes `count` messages with at most `window` acks outstanding, recording each ack
/// in `acks`. Every ack must be for a new message in `stream`.
pub async fn publish_windowed(
    js: &Context,
    stream: &str,
    subject: &str,
    payload: &Bytes,
    count: u64,
    window: usize,
    acks: &mut Acks,
) -> anyhow::Result<()> {
    let window = window.max(1);
    let mut in_flight = FuturesUnordered::new();
    let mut sent = 0;
    while sent < count || !in_flight.is_empty() {
        if sent < count && in_flight.len() < window {
            let started = Instant::now();
            let ack = js.publish(subject.to_owned(), payload.clone()).await.context("publishing")?;
            in_flight.push(async move {
                let outcome = ack.await;
                (outcome, started.elapsed())
            });
            sent += 1;
            continue;
        }
        let Some((outcome, latency)) = in_flight.next().await else { break };
        let ack = outcome.context("waiting for a publish ack")?;
        anyhow::ensure!(ack.stream == stream, "ack from stream {:?}, expected {stream:?}", ack.stream);
        anyhow::ensure!(!ack.duplicate, "ack for seq {} marked duplicate", ack.sequence);
        acks.latencies_us.push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
        acks.count += 1;
    }
    Ok(())
}
