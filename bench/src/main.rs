//! `jetway-bench`: whole-server benchmark drivers for any NATS-compatible server.
//!
//! Each subcommand connects to a running server, drives one workload, and prints exactly
//! one JSON line on stdout (`"ok": true` plus its measurements, or `"ok": false` with an
//! error) so scripts such as `bench/compare.sh` can parse it. The process exits non-zero
//! when the run failed or overran `--timeout-secs`.
//!
//! Layout: one file per workload (`pubsub`, `reqrep`, `js_pub`, `js_consume`,
//! `mqtt_pubsub`, `mqtt_sessions`, `mqtt_subscriptions`), `js` for what the JetStream
//! workloads share, `mqtt` for what the MQTT ones share, `conn` for NATS connection set-up and
//! event counting, `stats` for the arithmetic. A new workload is a new file, a variant in
//! [`Workload`], and an arm in [`Workload::run`].

mod conn;
mod js;
mod js_consume;
mod js_pub;
mod mqtt;
mod mqtt_pubsub;
mod mqtt_sessions;
mod mqtt_subscriptions;
mod pubsub;
mod reqrep;
mod stats;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::{json, Value};

/// How long past its deadline a workload may take to report before it is cut off.
const BACKSTOP_GRACE: Duration = Duration::from_secs(2);

#[derive(Parser, Debug)]
#[command(name = "jetway-bench", about = "Whole-server benchmark drivers (not tests)")]
struct Cli {
    /// Abort the whole run, and report failure, after this many seconds.
    #[arg(long, global = true, default_value_t = 60)]
    timeout_secs: u64,

    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand, Debug)]
enum Workload {
    /// N publishers → M subscribers on one subject; throughput.
    Pubsub(pubsub::Args),
    /// One requester doing sequential requests to one responder; latency.
    Reqrep(reqrep::Args),
    /// JetStream publish with acks, `--window` acks in flight; throughput and ack latency.
    JsPub(js_pub::Args),
    /// JetStream durable pull consumer with explicit acks draining a stream; throughput.
    JsConsume(js_consume::Args),
    /// MQTT publisher → subscriber at QoS 0/1/2 with a publish window; throughput, or
    /// end-to-end latency at a fixed `--rate`.
    MqttPubsub(mqtt_pubsub::Args),
    /// MQTT sessions with one QoS 1 subscription each: setup rate, then held idle.
    MqttSessions(mqtt_sessions::Args),
    /// One MQTT session subscribing many topics: SUBACK time as its subscriptions grow.
    MqttSubscriptions(mqtt_subscriptions::Args),
}

impl Workload {
    fn name(&self) -> &'static str {
        match self {
            Workload::Pubsub(_) => "pubsub",
            Workload::Reqrep(_) => "reqrep",
            Workload::JsPub(_) => "js-pub",
            Workload::JsConsume(_) => "js-consume",
            Workload::MqttPubsub(_) => "mqtt-pubsub",
            Workload::MqttSessions(_) => "mqtt-sessions",
            Workload::MqttSubscriptions(_) => "mqtt-subscriptions",
        }
    }

    /// Workloads stop themselves at `deadline` and say how far they got.
    async fn run(self, deadline: tokio::time::Instant) -> anyhow::Result<Value> {
        match self {
            Workload::Pubsub(args) => pubsub::run(args, deadline).await,
            Workload::Reqrep(args) => reqrep::run(args, deadline).await,
            Workload::JsPub(args) => js_pub::run(args, deadline).await,
            Workload::JsConsume(args) => js_consume::run(args, deadline).await,
            Workload::MqttPubsub(args) => mqtt_pubsub::run(args, deadline).await,
            Workload::MqttSessions(args) => mqtt_sessions::run(args, deadline).await,
            Workload::MqttSubscriptions(args) => mqtt_subscriptions::run(args, deadline).await,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let name = cli.workload.name();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => return report(name, Err(anyhow::Error::new(err))),
    };
    let limit = Duration::from_secs(cli.timeout_secs);
    let outcome = runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + limit;
        // The backstop for a workload stuck before it checks its own deadline.
        match tokio::time::timeout_at(deadline + BACKSTOP_GRACE, cli.workload.run(deadline)).await {
            Ok(result) => result,
            Err(_) => Err(anyhow::anyhow!("timed out after {}s", limit.as_secs())),
        }
    });
    // Tasks still blocked on a dead server must not hold the process open.
    runtime.shutdown_timeout(Duration::from_secs(1));
    report(name, outcome)
}

/// Prints the one JSON line and turns the outcome into the exit code.
fn report(name: &str, outcome: anyhow::Result<Value>) -> ExitCode {
    let (line, code) = match outcome {
        Ok(mut fields) => {
            if let Value::Object(map) = &mut fields {
                map.insert("mode".into(), json!(name));
                map.insert("ok".into(), json!(true));
            }
            (fields, ExitCode::SUCCESS)
        }
        Err(err) => (json!({ "mode": name, "ok": false, "error": format!("{err:#}") }), ExitCode::FAILURE),
    };
    println!("{line}");
    code
}
