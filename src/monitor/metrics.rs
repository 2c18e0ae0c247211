//! `/metrics`: Prometheus text exposition.
//!
//! Each server has its own [`PrometheusRecorder`] (tests run many servers in one process, so a
//! process-global recorder would mix them). Nothing is recorded on the hot path: at scrape
//! time, one function per subsystem copies the live counters into the recorder through the
//! `metrics` facade, then the recorder renders. A subsystem adds its metrics by adding a
//! `record_<subsystem>` function and calling it from [`ServerMetrics::render`]:
//! JetStream (`jetway_jetstream_*`: streams, consumers, messages, bytes, API calls and errors),
//! the MQTT gateway (the same connection and traffic metrics with `protocol="mqtt"`, plus
//! sessions and retained messages) and the store (`jetway_store_*`: fsyncs, write latency).
//!
//! Names: `jetway_` prefix, counters end in `_total`, sizes in bytes, traffic labelled by
//! `protocol`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use metrics::{counter, describe_counter, describe_gauge, gauge, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

use super::process;
use crate::server::{Core, JETWAY_VERSION};

/// The Prometheus text format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub struct ServerMetrics {
    recorder: PrometheusRecorder,
}

impl ServerMetrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        metrics::with_local_recorder(&recorder, describe);
        ServerMetrics { recorder }
    }

    /// Copies the live state of `core` into the recorder and renders it.
    pub fn render(&self, core: &Core) -> String {
        metrics::with_local_recorder(&self.recorder, || {
            record_server(core);
            record_process(core);
            record_nats(core);
            record_router(core);
            record_jetstream(core);
            record_store(core);
            record_mqtt(core);
        });
        self.recorder.handle().render()
    }
}

pub async fn metrics(State(core): State<Arc<Core>>) -> Response {
    let body = core.monitor.render_metrics(&core);
    ([(header::CONTENT_TYPE, CONTENT_TYPE), (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")], body).into_response()
}

fn describe() {
    describe_counter!(
        "jetway_store_fsyncs_total",
        "fsyncs done by the storage threads (group commits and folder syncs)"
    );
    describe_gauge!("jetway_store_fsync_seconds_total", Unit::Seconds, "Time spent in fsync");
    describe_gauge!(
        "jetway_store_fsync_latency_bucket",
        "fsyncs that took at most `le` seconds (cumulative histogram buckets)"
    );
    describe_gauge!("jetway_jetstream_streams", "Streams over all accounts");
    describe_gauge!("jetway_jetstream_consumers", "Consumers over all accounts");
    describe_counter!("jetway_jetstream_api_requests_total", "JetStream API requests");
    describe_counter!("jetway_jetstream_api_errors_total", "JetStream API requests answered with an error");
    describe_gauge!("jetway_stream_messages", "Messages stored in a stream");
    describe_gauge!("jetway_stream_bytes", Unit::Bytes, "Bytes stored in a stream");
    describe_gauge!("jetway_stream_first_seq", "First sequence of a stream");
    describe_gauge!("jetway_stream_last_seq", "Last sequence of a stream");
    describe_gauge!("jetway_consumer_num_pending", "Messages a consumer has yet to deliver");
    describe_gauge!("jetway_consumer_num_ack_pending", "Messages delivered and not yet acknowledged");
    describe_gauge!("jetway_consumer_num_redelivered", "Pending messages delivered more than once");
    describe_gauge!("jetway_info", "Server identity in labels; always 1");
    describe_gauge!("jetway_uptime_seconds", Unit::Seconds, "Time since the server started");
    describe_gauge!("jetway_process_resident_memory_bytes", Unit::Bytes, "Resident memory of the process");
    describe_gauge!("jetway_process_cpu_seconds", Unit::Seconds, "User and system CPU time used so far");
    describe_gauge!("jetway_connections", "Open client connections");
    describe_counter!("jetway_connections_total", "Client connections accepted since start");
    describe_counter!("jetway_messages_received_total", "Messages received from clients");
    describe_counter!("jetway_messages_sent_total", "Messages sent to clients");
    describe_counter!("jetway_bytes_received_total", Unit::Bytes, "Payload and header bytes received");
    describe_counter!("jetway_bytes_sent_total", Unit::Bytes, "Payload and header bytes sent");
    describe_counter!("jetway_slow_consumers_total", "Clients disconnected as slow consumers");
    describe_counter!(
        "jetway_jetstream_consumer_wakeups_total",
        "Delivery passes of JetStream consumers (new messages, acks, requests, timers)"
    );
    describe_counter!("jetway_stale_connections_total", "Clients disconnected for unanswered PINGs");
    describe_gauge!("jetway_subscriptions", "Subscriptions over all accounts");
    describe_gauge!("jetway_closed_connections_retained", "Closed connections kept for /connz");
    describe_gauge!("jetway_mqtt_sessions_connected", "MQTT sessions with a connected client");
    describe_gauge!(
        "jetway_mqtt_sessions_stored",
        "Persistent MQTT sessions stored in $MQTT_sess, connected or not (JetStream only)"
    );
    describe_gauge!(
        "jetway_mqtt_inflight_messages",
        "MQTT QoS 1/2 messages in flight on connected sessions: out = sent and not yet acknowledged, in = QoS 2 received and awaiting PUBREL"
    );
    describe_gauge!(
        "jetway_mqtt_queued_messages",
        "MQTT QoS 1/2 messages waiting for a client's receive maximum"
    );
    describe_counter!(
        "jetway_mqtt_messages_received_total",
        "PUBLISH packets received from MQTT clients, by QoS"
    );
    describe_counter!("jetway_mqtt_messages_sent_total", "PUBLISH packets sent to MQTT clients, by QoS");
}

fn record_server(core: &Core) {
    gauge!(
        "jetway_info",
        "version" => JETWAY_VERSION,
        "server_id" => core.server_id.clone(),
        "server_name" => core.server_name.clone()
    )
    .set(1.0);
    let up = SystemTime::now().duration_since(core.started).unwrap_or_default();
    gauge!("jetway_uptime_seconds").set(up.as_secs_f64());
}

fn record_process(_core: &Core) {
    gauge!("jetway_process_resident_memory_bytes").set(process::resident_memory_bytes() as f64);
    // A gauge, not a counter: the facade's counters are integers and this is fractional seconds.
    gauge!("jetway_process_cpu_seconds").set(process::cpu_seconds());
}

/// Client connections and their traffic. The server's receive counters include what MQTT
/// clients publish, so the gateway's share is taken out of the NATS figures; its sends are
/// not in the server's counters (MQTT deliveries go through internal sinks).
fn record_nats(core: &Core) {
    let s = &core.stats;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let mqtt = core.clients().iter().filter(|c| c.is_mqtt()).count();
    let mqtt_traffic = core.monitor.mqtt().map(|(m, _)| m.stats.snapshot()).unwrap_or_default();
    gauge!("jetway_connections", "protocol" => "nats").set((core.num_clients() - mqtt) as f64);
    gauge!("jetway_connections", "protocol" => "mqtt").set(mqtt as f64);
    counter!("jetway_connections_total", "protocol" => "nats").absolute(load(&s.total_connections));
    let in_msgs = load(&s.in_msgs).saturating_sub(mqtt_traffic.received_msgs());
    let in_bytes = load(&s.in_bytes).saturating_sub(mqtt_traffic.received_bytes);
    counter!("jetway_messages_received_total", "protocol" => "nats").absolute(in_msgs);
    counter!("jetway_messages_sent_total", "protocol" => "nats").absolute(load(&s.out_msgs));
    counter!("jetway_bytes_received_total", "protocol" => "nats").absolute(in_bytes);
    counter!("jetway_bytes_sent_total", "protocol" => "nats").absolute(load(&s.out_bytes));
    counter!("jetway_slow_consumers_total", "protocol" => "nats").absolute(load(&s.slow_consumers));
    counter!("jetway_jetstream_consumer_wakeups_total").absolute(load(&s.consumer_pumps));
    counter!("jetway_stale_connections_total", "protocol" => "nats").absolute(load(&s.stale_connections));
    gauge!("jetway_closed_connections_retained").set(core.monitor.closed.len() as f64);
}

fn record_router(core: &Core) {
    gauge!("jetway_subscriptions").set(core.accounts.total_subscriptions() as f64);
}

/// JetStream: totals, per-stream state and per-consumer progress, labelled by account.
fn record_jetstream(core: &Core) {
    let Some(js) = &core.jetstream else { return };
    let (mut streams, mut consumers) = (0usize, 0usize);
    for account in js.accounts() {
        let acc = account.account.name.to_string();
        for stream in account.streams() {
            streams += 1;
            let state = stream.store.state();
            let labels = [("account", acc.clone()), ("stream", stream.name.clone())];
            gauge!("jetway_stream_messages", &labels).set(state.msgs as f64);
            gauge!("jetway_stream_bytes", &labels).set(state.bytes as f64);
            gauge!("jetway_stream_first_seq", &labels).set(state.first_seq as f64);
            gauge!("jetway_stream_last_seq", &labels).set(state.last_seq as f64);
            for consumer in stream.consumers.read().values() {
                consumers += 1;
                let info = consumer.info();
                let labels = [
                    ("account", acc.clone()),
                    ("stream", stream.name.clone()),
                    ("consumer", consumer.name.clone()),
                ];
                gauge!("jetway_consumer_num_pending", &labels).set(info.num_pending as f64);
                gauge!("jetway_consumer_num_ack_pending", &labels).set(info.num_ack_pending as f64);
                gauge!("jetway_consumer_num_redelivered", &labels).set(info.num_redelivered as f64);
            }
        }
    }
    gauge!("jetway_jetstream_streams").set(streams as f64);
    gauge!("jetway_jetstream_consumers").set(consumers as f64);
    counter!("jetway_jetstream_api_requests_total").absolute(js.api_stats.total.load(Ordering::Relaxed));
    counter!("jetway_jetstream_api_errors_total").absolute(js.api_stats.errors.load(Ordering::Relaxed));
}

/// The MQTT gateway: sessions, messages in flight, traffic by QoS (only while it runs).
fn record_mqtt(core: &Core) {
    let Some((gateway, _)) = core.monitor.mqtt() else { return };
    gauge!("jetway_mqtt_sessions_connected").set(gateway.connected_count() as f64);
    if let Some(stored) = gateway.stored_session_count() {
        gauge!("jetway_mqtt_sessions_stored").set(stored as f64);
    }
    let inflight = gateway.inflight_totals();
    gauge!("jetway_mqtt_inflight_messages", "direction" => "out").set(inflight.inflight as f64);
    gauge!("jetway_mqtt_inflight_messages", "direction" => "in").set(inflight.awaiting_pubrel as f64);
    gauge!("jetway_mqtt_queued_messages").set(inflight.queued as f64);
    let traffic = gateway.stats.snapshot();
    for (qos, (received, sent)) in
        ["0", "1", "2"].into_iter().zip(traffic.received.into_iter().zip(traffic.sent))
    {
        counter!("jetway_mqtt_messages_received_total", "qos" => qos).absolute(received);
        counter!("jetway_mqtt_messages_sent_total", "qos" => qos).absolute(sent);
    }
    counter!("jetway_messages_received_total", "protocol" => "mqtt").absolute(traffic.received_msgs());
    counter!("jetway_messages_sent_total", "protocol" => "mqtt").absolute(traffic.sent_msgs());
    counter!("jetway_bytes_received_total", "protocol" => "mqtt").absolute(traffic.received_bytes);
    counter!("jetway_bytes_sent_total", "protocol" => "mqtt").absolute(traffic.sent_bytes);
}

/// Storage: fsync count, total time, and a cumulative latency histogram (`le` in seconds).
fn record_store(core: &Core) {
    let Some(js) = &core.jetstream else { return };
    let snap = js.engine.sync_stats();
    counter!("jetway_store_fsyncs_total").absolute(snap.count);
    gauge!("jetway_store_fsync_seconds_total").set(snap.total_nanos as f64 / 1e9);
    let mut cumulative = 0;
    for (i, count) in snap.buckets.iter().enumerate() {
        cumulative += count;
        let le = match jetway_storage::SYNC_BUCKETS_US.get(i) {
            Some(us) => format!("{}", *us as f64 / 1e6),
            None => "+Inf".to_string(),
        };
        gauge!("jetway_store_fsync_latency_bucket", "le" => le).set(cumulative as f64);
    }
}
