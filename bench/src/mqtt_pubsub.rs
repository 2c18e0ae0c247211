//! MQTT publisher → subscriber on one topic at QoS 0, 1 or 2.
//!
//! One subscriber (clean session, or persistent with `--persistent-subscriber`: then its
//! QoS 1/2 messages are stored durably on a server that persists sessions; subscribed at the
//! run's QoS, SUBACK seen before the clock starts) and one publisher with at most `--window` unacknowledged QoS 1/2
//! publishes (rumqttc's in-flight limit). Throughput mode publishes `--msgs` as fast as
//! the window allows; the clock runs from the first publish until the subscriber has all
//! of them. Latency mode (`--rate R`) publishes R messages a second, each stamped with
//! its send time, and reports the end-to-end latency distribution.
//!
//! QoS 0 may lose messages (a server may drop them under load); the run then ends when
//! the publisher is done and nothing arrived for [`QOS0_QUIET`], and reports the loss.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rumqttc::{Event, EventLoop, Outgoing, Packet, QoS};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::mqtt::{connect, options, qos, Endpoint};
use crate::stats::{latency_summary, megabytes_per_second, per_second, round3};

/// How long a QoS 0 run waits for stragglers once everything was sent.
const QOS0_QUIET: Duration = Duration::from_secs(2);
/// How often the run checks on its tasks.
const CHECK_INTERVAL: Duration = Duration::from_millis(20);
/// Bytes of the send timestamp at the front of each latency-mode payload.
const STAMP_LEN: usize = 8;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    endpoint: Endpoint,
    /// QoS of the publishes and of the subscription: 0, 1 or 2.
    #[arg(long, default_value_t = 1)]
    qos: u8,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Messages to publish.
    #[arg(long, default_value_t = 20_000)]
    msgs: u64,
    /// Unacknowledged QoS 1/2 publishes in flight at most.
    #[arg(long, default_value_t = 20)]
    window: u16,
    /// Latency mode: publish this many messages per second instead of as fast as possible.
    #[arg(long)]
    rate: Option<u64>,
    /// Topic published and subscribed to.
    #[arg(long, default_value = "bench/mqtt")]
    topic: String,
    /// The subscriber keeps a persistent session (clean session = false), removed at the end.
    #[arg(long)]
    persistent_subscriber: bool,
}

/// What the subscriber has seen so far; readable when the run must be abandoned.
#[derive(Default)]
struct Progress {
    received: AtomicU64,
    /// Nanoseconds from the run's epoch to the latest message.
    last_ns: AtomicU64,
    /// End-to-end latencies in µs (latency mode only).
    samples_us: Mutex<Vec<u64>>,
}

pub async fn run(args: Args, deadline: tokio::time::Instant) -> anyhow::Result<Value> {
    anyhow::ensure!(args.msgs >= 1, "--msgs must be at least 1");
    anyhow::ensure!(args.window >= 1, "--window must be at least 1");
    anyhow::ensure!(args.rate != Some(0), "--rate must be at least 1");
    anyhow::ensure!(
        args.rate.is_none() || args.size >= STAMP_LEN,
        "--size must be at least {STAMP_LEN} with --rate"
    );
    let qos = qos(args.qos)?;
    let epoch = Instant::now();
    let pid = std::process::id();
    let progress = Arc::new(Progress::default());

    let sub_id = format!("bench-sub-{pid}");
    let (sub_client, sub_loop) = tokio::time::timeout_at(
        deadline,
        connect(
            options(&args.endpoint, &sub_id, !args.persistent_subscriber, args.window),
            Some((&args.topic, qos)),
        ),
    )
    .await
    .context("subscriber connect timed out")??;
    let mut subscriber = tokio::spawn(subscribe(sub_loop, Arc::clone(&progress), epoch, args.rate.is_some()));

    let (pub_client, pub_loop) = tokio::time::timeout_at(
        deadline,
        connect(options(&args.endpoint, &format!("bench-pub-{pid}"), true, args.window), None),
    )
    .await
    .context("publisher connect timed out")??;
    let acked = Arc::new(AtomicU64::new(0));
    let mut acking = tokio::spawn(count_acks(pub_loop, qos, Arc::clone(&acked)));

    let started = epoch.elapsed();
    let (topic, size, msgs, rate) = (args.topic.clone(), args.size, args.msgs, args.rate);
    let publishing = tokio::spawn(async move {
        let mut pace = rate.map(|rate| {
            let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            pace
        });
        let filler = vec![b'x'; size];
        for _ in 0..msgs {
            let mut payload = filler.clone();
            if let Some(pace) = pace.as_mut() {
                pace.tick().await;
                let stamp = epoch.elapsed().as_nanos() as u64;
                payload[..STAMP_LEN].copy_from_slice(&stamp.to_le_bytes());
            }
            pub_client.publish(topic.as_str(), qos, false, payload).await.context("publishing")?;
        }
        // The client must outlive the publishes its event loop still has to send.
        anyhow::Ok(pub_client)
    });

    let waited = tokio::time::timeout_at(deadline, async {
        let mut quiet_since: Option<Instant> = None;
        let mut seen = 0;
        // Bounded by the deadline around it.
        loop {
            let received = progress.received.load(Ordering::Relaxed);
            if received >= msgs {
                return anyhow::Ok(());
            }
            for task in [&mut subscriber, &mut acking] {
                if task.is_finished() {
                    return Err(ended(task).await);
                }
            }
            if qos == QoS::AtMostOnce && acked.load(Ordering::Relaxed) >= msgs {
                if received != seen {
                    quiet_since = None;
                } else if quiet_since.get_or_insert_with(Instant::now).elapsed() >= QOS0_QUIET {
                    return Ok(());
                }
            }
            seen = received;
            tokio::time::sleep(CHECK_INTERVAL).await;
        }
    })
    .await;
    let published_all = publishing.is_finished();
    subscriber.abort();
    acking.abort();
    publishing.abort();
    let received = progress.received.load(Ordering::Relaxed);
    match waited {
        Ok(outcome) => outcome.with_context(|| format!("after {received} of {msgs} messages"))?,
        Err(_) => anyhow::bail!(
            "subscriber received {received} of {msgs} messages ({} acked) before the deadline",
            acked.load(Ordering::Relaxed)
        ),
    }
    anyhow::ensure!(published_all || received >= msgs, "publisher did not finish");
    if args.persistent_subscriber {
        // A clean connection under the same id ends the persistent session, so it does not
        // keep collecting the next runs' messages.
        drop(sub_client);
        tokio::time::timeout_at(deadline, connect(options(&args.endpoint, &sub_id, true, 1), None))
            .await
            .context("subscriber cleanup timed out")??;
    }

    let elapsed = Duration::from_nanos(progress.last_ns.load(Ordering::Relaxed)).saturating_sub(started);
    let mut result = json!({
        "host": args.endpoint.host,
        "port": args.endpoint.port,
        "qos": args.qos,
        "size": args.size,
        "msgs": msgs,
        "window": args.window,
        "persistent_subscriber": args.persistent_subscriber,
        "received": received,
        "lost": msgs.saturating_sub(received),
        "elapsed_s": round3(elapsed.as_secs_f64()),
        "msgs_per_s": per_second(received, elapsed).round(),
        "mb_per_s": round3(megabytes_per_second(received * args.size as u64, elapsed)),
    });
    if let (Some(rate), Value::Object(map)) = (args.rate, &mut result) {
        let mut samples = std::mem::take(&mut *progress.samples_us.lock().unwrap_or_else(|e| e.into_inner()));
        samples.sort_unstable();
        map.insert("rate".into(), json!(rate));
        map.insert("latency_us".into(), latency_summary(&samples));
    }
    Ok(result)
}

/// Why a connection task that should run until stopped has ended.
async fn ended(task: &mut JoinHandle<anyhow::Error>) -> anyhow::Error {
    match task.await {
        Ok(err) => err,
        Err(join) => anyhow::Error::new(join).context("connection task"),
    }
}

/// Counts the subscriber's messages (and their latency when stamped) until its
/// connection fails; the caller stops it once enough arrived.
async fn subscribe(
    mut eventloop: EventLoop,
    progress: Arc<Progress>,
    epoch: Instant,
    stamped: bool,
) -> anyhow::Error {
    loop {
        let publish = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(publish))) => publish,
            Ok(_) => continue,
            Err(err) => return anyhow::Error::new(err).context("subscriber connection"),
        };
        let now_ns = epoch.elapsed().as_nanos() as u64;
        if stamped {
            if let Some(stamp) = publish.payload.get(..STAMP_LEN) {
                let mut bytes = [0; STAMP_LEN];
                bytes.copy_from_slice(stamp);
                let latency_us = now_ns.saturating_sub(u64::from_le_bytes(bytes)) / 1000;
                progress.samples_us.lock().unwrap_or_else(|e| e.into_inner()).push(latency_us);
            }
        }
        progress.last_ns.store(now_ns, Ordering::Relaxed);
        progress.received.fetch_add(1, Ordering::Relaxed);
    }
}

/// Drives the publisher's event loop, counting completed publishes: written (QoS 0),
/// PUBACK (QoS 1) or PUBCOMP (QoS 2). Runs until the connection fails or the caller
/// stops it, so that written QoS 0 messages are flushed too.
async fn count_acks(mut eventloop: EventLoop, qos: QoS, acked: Arc<AtomicU64>) -> anyhow::Error {
    loop {
        let done = match eventloop.poll().await {
            Ok(Event::Outgoing(Outgoing::Publish(_))) => qos == QoS::AtMostOnce,
            Ok(Event::Incoming(Packet::PubAck(_))) => qos == QoS::AtLeastOnce,
            Ok(Event::Incoming(Packet::PubComp(_))) => qos == QoS::ExactlyOnce,
            Ok(_) => false,
            Err(err) => return anyhow::Error::new(err).context("publisher connection"),
        };
        if done {
            acked.fetch_add(1, Ordering::Relaxed);
        }
    }
}
