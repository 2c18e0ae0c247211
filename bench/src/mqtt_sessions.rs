//! Many MQTT sessions, each with one QoS 1 subscription: setup rate, then idle.
//!
//! `--count` clients connect (distinct client ids; `--persistent` asks for
//! clean-session = false) at most `--concurrency` at a time, each subscribing to its own
//! topic at QoS 1; the setup rate counts from the first CONNECT to the last SUBACK. The
//! sessions then stay connected and idle so that a script can measure the server's
//! memory: with `--ready-file PATH` the driver writes the setup numbers to PATH and holds
//! until PATH is removed (or the deadline); otherwise it holds for `--hold-secs`. Then
//! every client disconnects.
//!
//! With `--offline` (persistent sessions only) each client disconnects right after its
//! SUBACK, so the server holds the sessions without connections: this is how more sessions
//! than the machine's file descriptors allow are held. After the hold, `--verify K` of them
//! (spread over the range) are checked: a QoS 1 message is published to each one's topic
//! while it is offline, then the client reconnects and must find its session present and
//! the message delivered.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, EventLoop, Outgoing, Packet, QoS};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::mqtt::{connect, options, Endpoint};
use crate::stats::{per_second, round3};

/// How often a holding driver looks for the removal of its ready file.
const READY_POLL: Duration = Duration::from_millis(100);
/// How long the disconnects may take in all before the remaining tasks are dropped.
const DISCONNECT_GRACE: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    endpoint: Endpoint,
    /// Sessions (client connections) to set up.
    #[arg(long, default_value_t = 2000)]
    count: u64,
    /// Persistent sessions (clean session = false) instead of clean ones.
    #[arg(long)]
    persistent: bool,
    /// Connections being set up at the same time at most.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Prefix of each session's topic (`PREFIX/INDEX`).
    #[arg(long, default_value = "bench/sess")]
    topic_prefix: String,
    /// Once all are set up, write the numbers here and hold until the file is removed.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Without `--ready-file`: seconds to hold the idle sessions.
    #[arg(long, default_value_t = 0)]
    hold_secs: u64,
    /// Disconnect each (persistent) session right after its SUBACK: the server holds them
    /// offline.
    #[arg(long)]
    offline: bool,
    /// With `--offline`: sessions checked after the hold (queued message delivered on
    /// reconnect, session present).
    #[arg(long, default_value_t = 100)]
    verify: u64,
}

/// One idle session: its client handle and the task polling its event loop.
struct Session {
    client: AsyncClient,
    task: JoinHandle<()>,
}

/// How long a verified session may take to reconnect and receive its message.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(args: Args, deadline: tokio::time::Instant) -> anyhow::Result<Value> {
    anyhow::ensure!(args.count >= 1, "--count must be at least 1");
    anyhow::ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    anyhow::ensure!(!args.offline || args.persistent, "--offline needs --persistent");
    let pid = std::process::id();
    let closing = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicU64::new(0));

    let started = Instant::now();
    let setup = futures::stream::iter(0..args.count)
        .map(|index| {
            let mut options =
                options(&args.endpoint, &format!("bench-sess-{pid}-{index}"), !args.persistent, 20);
            // Idle for the whole hold: keep-alive pings must not be what keeps them open.
            options.set_keep_alive(Duration::from_secs(300));
            let topic = format!("{}/{index}", args.topic_prefix);
            let (closing, dropped) = (Arc::clone(&closing), Arc::clone(&dropped));
            let offline = args.offline;
            async move {
                let (client, mut eventloop) = connect(options, Some((&topic, QoS::AtLeastOnce)))
                    .await
                    .with_context(|| format!("session {index}"))?;
                if offline {
                    client.disconnect().await.context("queueing DISCONNECT")?;
                    disconnected(&mut eventloop).await.with_context(|| format!("session {index}"))?;
                    return anyhow::Ok(None);
                }
                let task = tokio::spawn(idle(eventloop, closing, dropped));
                anyhow::Ok(Some(Session { client, task }))
            }
        })
        .buffer_unordered(args.concurrency)
        .try_filter_map(|session| async move { Ok(session) })
        .try_collect::<Vec<Session>>();
    let sessions = tokio::time::timeout_at(deadline, setup)
        .await
        .context("session setup did not finish before the deadline")??;
    let setup_elapsed = started.elapsed();
    let mut result = json!({
        "host": args.endpoint.host,
        "port": args.endpoint.port,
        "count": args.count,
        "persistent": args.persistent,
        "offline": args.offline,
        "concurrency": args.concurrency,
        "setup_s": round3(setup_elapsed.as_secs_f64()),
        "sessions_per_s": per_second(args.count, setup_elapsed).round(),
    });

    let held = Instant::now();
    match &args.ready_file {
        Some(path) => {
            std::fs::write(path, format!("{result}\n"))
                .with_context(|| format!("writing {}", path.display()))?;
            // Bounded by the deadline: a script that never removes the file fails the run.
            while path.exists() {
                anyhow::ensure!(
                    tokio::time::Instant::now() + READY_POLL < deadline,
                    "{} was not removed before the deadline",
                    path.display()
                );
                tokio::time::sleep(READY_POLL).await;
            }
        }
        None => {
            tokio::time::sleep_until(
                deadline.min(tokio::time::Instant::now() + Duration::from_secs(args.hold_secs)),
            )
            .await
        }
    }
    let held_s = held.elapsed();
    let lost = dropped.load(Ordering::Relaxed);
    if args.offline && args.verify > 0 {
        let verified = tokio::time::timeout_at(deadline, verify(&args, pid))
            .await
            .context("verifying offline sessions did not finish before the deadline")??;
        if let Value::Object(map) = &mut result {
            map.insert("verified".into(), json!(verified));
        }
    }

    closing.store(true, Ordering::Relaxed);
    let disconnecting = async {
        for session in &sessions {
            // A client whose connection already failed cannot disconnect; it was counted.
            let _ = session.client.disconnect().await;
        }
        for session in sessions {
            let _ = session.task.await;
        }
    };
    let disconnected = tokio::time::timeout(DISCONNECT_GRACE, disconnecting).await.is_ok();

    anyhow::ensure!(lost == 0, "{lost} of {} idle sessions lost their connection", args.count);
    if let Value::Object(map) = &mut result {
        map.insert("held_s".into(), json!(round3(held_s.as_secs_f64())));
        map.insert("disconnected_cleanly".into(), json!(disconnected));
    }
    Ok(result)
}

/// Polls an idle session's event loop (answering pings) until it disconnects; a
/// connection failure before `closing` counts as a dropped session.
async fn idle(mut eventloop: EventLoop, closing: Arc<AtomicBool>, dropped: Arc<AtomicU64>) {
    loop {
        match eventloop.poll().await {
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(_) => {
                if !closing.load(Ordering::Relaxed) {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
        }
    }
}

/// Polls until the DISCONNECT has gone out (bounded: a few events at most).
async fn disconnected(eventloop: &mut EventLoop) -> anyhow::Result<()> {
    for _ in 0..64 {
        if let Event::Outgoing(Outgoing::Disconnect) = eventloop.poll().await? {
            return Ok(());
        }
    }
    anyhow::bail!("DISCONNECT not sent within 64 events")
}

/// The offline sessions checked: `--verify` of them, spread over the range.
fn verified_indexes(count: u64, verify: u64) -> Vec<u64> {
    let verify = verify.min(count).max(1);
    (0..verify).map(|i| i * count / verify).collect()
}

/// Publishes a QoS 1 message to each verified session's topic, then reconnects each session:
/// its CONNACK must report the session present and the message must arrive. Returns how many
/// sessions were verified.
async fn verify(args: &Args, pid: u32) -> anyhow::Result<u64> {
    let indexes = verified_indexes(args.count, args.verify);
    let publisher = options(&args.endpoint, &format!("bench-sess-{pid}-verifier"), true, 20);
    let (client, mut eventloop) = connect(publisher, None).await.context("verifier")?;
    for &index in &indexes {
        let topic = format!("{}/{index}", args.topic_prefix);
        client.publish(topic, QoS::AtLeastOnce, false, format!("verify-{index}")).await?;
    }
    let mut acked = 0;
    while acked < indexes.len() {
        if let Event::Incoming(Packet::PubAck(_)) = eventloop.poll().await.context("verifier")? {
            acked += 1;
        }
    }
    client.disconnect().await?;
    disconnected(&mut eventloop).await?;

    let checks = futures::stream::iter(indexes.iter().copied())
        .map(|index| async move {
            let options = options(&args.endpoint, &format!("bench-sess-{pid}-{index}"), false, 20);
            tokio::time::timeout(VERIFY_TIMEOUT, reconnect_and_receive(options, index, &args.topic_prefix))
                .await
                .with_context(|| format!("session {index}: nothing within {VERIFY_TIMEOUT:?}"))?
        })
        .buffer_unordered(args.concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(checks.len() as u64)
}

/// Reconnects an offline session (no new subscription) and waits for its queued message.
async fn reconnect_and_receive(
    options: rumqttc::MqttOptions,
    index: u64,
    prefix: &str,
) -> anyhow::Result<()> {
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let topic = format!("{prefix}/{index}");
    let expected = format!("verify-{index}");
    let mut present = None;
    loop {
        match eventloop.poll().await.with_context(|| format!("session {index}"))? {
            Event::Incoming(Packet::ConnAck(ack)) => {
                anyhow::ensure!(ack.code == ConnectReturnCode::Success, "session {index}: {:?}", ack.code);
                present = Some(ack.session_present);
                anyhow::ensure!(ack.session_present, "session {index} was not present on reconnect");
            }
            Event::Incoming(Packet::Publish(publish)) => {
                anyhow::ensure!(present == Some(true), "session {index}: message before CONNACK");
                anyhow::ensure!(publish.topic == topic, "session {index}: message on {}", publish.topic);
                anyhow::ensure!(publish.payload == expected.as_bytes(), "session {index}: wrong payload");
                break;
            }
            _ => {}
        }
    }
    client.disconnect().await?;
    disconnected(&mut eventloop).await
}

#[cfg(test)]
mod tests {
    use super::verified_indexes;

    #[test]
    fn verified_sessions_are_spread_over_the_whole_range() {
        assert_eq!(verified_indexes(50_000, 4), vec![0, 12_500, 25_000, 37_500]);
        assert_eq!(verified_indexes(3, 10), vec![0, 1, 2], "never more than there are");
        assert_eq!(verified_indexes(10, 0), vec![0], "at least one");
    }
}
