//! Monitoring: nats-server's HTTP endpoints and field names (also asked over NATS in the
//! system account, `system`), Prometheus metrics, a dashboard, and the `$SYS` connection
//! events.
//!
//! Layout: one file per endpoint (`varz`, `connz`, `subsz`, `routez`, `accountz` with
//! `/accstatz`, `healthz`, `metrics`, `dashboard`, and Jetway's own `mqttz`); `https` serves
//! them over TLS; `response` holds what they share (JSON
//! responses with CORS, query parsing, nats-server's time and duration formats); `closed` is the
//! ring of closed connections; `events` publishes connect/disconnect advisories; `system`
//! answers `$SYS.REQ.SERVER…` requests with the endpoints' documents; `process` reads
//! memory and CPU use from `/proc`.
//!
//! Everything here reads live state on request; nothing polls in the background. What must
//! outlive a connection (its closed record, the event sequence) lives in [`MonitorState`], one
//! per server, so tests can run many servers in one process.

mod accountz;
mod closed;
mod connz;
mod dashboard;
pub mod events;
mod healthz;
pub mod https;
mod jsz;
mod metrics;
mod mqttz;
mod process;
mod response;
mod routez;
mod subsz;
pub mod system;
mod varz;

pub(crate) use connz::reason_text;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::mqtt::MqttServer;
use crate::nats::client::ClientShared;
use crate::server::Core;

pub use closed::ClosedConnections;

/// Per-server monitoring state.
pub struct MonitorState {
    pub closed: ClosedConnections,
    /// Sequence number of the server's events (`server.seq` in advisories).
    event_seq: AtomicU64,
    metrics: metrics::ServerMetrics,
    cpu: process::CpuSampler,
    /// Where the monitor listens (the config may say `-1`, meaning "any port").
    http_addr: parking_lot::Mutex<Option<SocketAddr>>,
    /// Where the HTTPS monitor listens, when `https_port` is set.
    https_addr: parking_lot::Mutex<Option<SocketAddr>>,
    /// The MQTT gateway and its listener's address, when MQTT is enabled. Weak: the gateway
    /// holds the core, which holds this.
    mqtt: parking_lot::Mutex<Option<(Weak<MqttServer>, SocketAddr)>>,
    /// Requests served per endpoint (`/varz` `http_req_stats`).
    http_requests: parking_lot::Mutex<std::collections::BTreeMap<String, u64>>,
    /// Whether the `$SYS.REQ.SERVER` subscriptions are made (see [`system::install`]).
    system_requests: std::sync::atomic::AtomicBool,
}

impl MonitorState {
    pub fn new(config: &Config) -> Self {
        MonitorState {
            closed: ClosedConnections::new(config.max_closed_clients),
            event_seq: AtomicU64::new(0),
            metrics: metrics::ServerMetrics::new(),
            cpu: process::CpuSampler::default(),
            http_addr: parking_lot::Mutex::new(None),
            https_addr: parking_lot::Mutex::new(None),
            mqtt: parking_lot::Mutex::new(None),
            http_requests: parking_lot::Mutex::new(std::collections::BTreeMap::new()),
            system_requests: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Lets the endpoints read the MQTT gateway listening on `addr`.
    pub fn attach_mqtt(&self, gateway: &Arc<MqttServer>, addr: SocketAddr) {
        *self.mqtt.lock() = Some((Arc::downgrade(gateway), addr));
    }

    /// The MQTT gateway and where it listens, while it runs.
    fn mqtt(&self) -> Option<(Arc<MqttServer>, SocketAddr)> {
        let attached = self.mqtt.lock();
        let (gateway, addr) = attached.as_ref()?;
        Some((gateway.upgrade()?, *addr))
    }

    pub fn http_addr(&self) -> Option<SocketAddr> {
        *self.http_addr.lock()
    }

    pub fn https_addr(&self) -> Option<SocketAddr> {
        *self.https_addr.lock()
    }

    /// Requests served so far by endpoint path.
    fn http_requests(&self) -> std::collections::BTreeMap<String, u64> {
        self.http_requests.lock().clone()
    }

    fn next_event_seq(&self) -> u64 {
        self.event_seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn cpu_percent(&self, running_for: Duration) -> f64 {
        self.cpu.percent(running_for)
    }

    fn render_metrics(&self, core: &Core) -> String {
        self.metrics.render(core)
    }
}

/// Called once when a registered client is gone: remember it for `/connz?state=closed` and
/// announce the disconnect.
pub fn client_closed(core: &Core, client: &ClientShared) {
    let info = connz::ConnInfo::closed(client, std::time::SystemTime::now());
    events::client_disconnected(core, client, &info);
    core.monitor.closed.push(info);
}

/// Serves the endpoints over HTTP until `stop`.
pub async fn serve(core: Arc<Core>, listener: TcpListener, stop: CancellationToken) {
    *core.monitor.http_addr.lock() = listener.local_addr().ok();
    let app = endpoints(core);
    let result = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
    if let Err(e) = result {
        tracing::error!("monitoring server failed: {e}");
    }
}

/// Serves the endpoints over HTTPS until `stop` (`https_port`).
pub async fn serve_https(core: Arc<Core>, listener: https::TlsListener, stop: CancellationToken) {
    use axum::serve::Listener;
    *core.monitor.https_addr.lock() = listener.local_addr().ok();
    let app = endpoints(core);
    let result = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
    if let Err(e) = result {
        tracing::error!("HTTPS monitoring server failed: {e}");
    }
}

fn endpoints(core: Arc<Core>) -> axum::Router {
    axum::Router::new()
        .route("/", get(dashboard::dashboard))
        .route("/varz", get(varz::varz))
        .route("/connz", get(connz::connz))
        .route("/subsz", get(subsz::subsz))
        .route("/subscriptionsz", get(subsz::subsz))
        .route("/routez", get(routez::routez))
        .route("/gatewayz", get(routez::gatewayz))
        .route("/leafz", get(routez::leafz))
        .route("/accountz", get(accountz::accountz))
        .route("/accstatz", get(accountz::accstatz))
        .route("/healthz", get(healthz::healthz))
        .route("/jsz", get(jsz::jsz))
        .route("/metrics", get(metrics::metrics))
        .route("/mqttz", get(mqttz::mqttz))
        // Counted before the handler runs, so `/varz` includes the request asking.
        .route_layer(axum::middleware::from_fn_with_state(core.clone(), count_request))
        .fallback(response::not_found)
        .with_state(core)
}

/// Counts a request to an endpoint (a route layer: only paths of routes get here, so unknown
/// paths do not grow the map).
async fn count_request(
    State(core): State<Arc<Core>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    *core.monitor.http_requests.lock().entry(request.uri().path().to_owned()).or_default() += 1;
    next.run(request).await
}
