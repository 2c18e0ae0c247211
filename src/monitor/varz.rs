//! `/varz`, `/healthz`, `/subsz` and a basic `/connz`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use crate::server::{Core, JETWAY_VERSION, NATS_COMPAT_VERSION};

fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    crate::time::format_rfc3339(secs)
}

fn respond(v: Value) -> impl IntoResponse {
    ([(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")], Json(v))
}

pub async fn varz(State(core): State<Arc<Core>>) -> impl IntoResponse {
    let c = &core.config;
    let s = &core.stats;
    let now = SystemTime::now();
    let uptime = now.duration_since(core.started).unwrap_or_default();
    respond(json!({
        "server_id": core.server_id,
        "server_name": core.server_name,
        "version": NATS_COMPAT_VERSION,
        "jetway_version": JETWAY_VERSION,
        "proto": 1,
        "go": "rust",
        "host": c.host,
        "port": c.port,
        "auth_required": core.auth.required(),
        "max_connections": c.max_connections,
        "max_subscriptions": c.max_subscriptions,
        "ping_interval": c.ping_interval.as_nanos() as u64,
        "ping_max": c.ping_max,
        "http_host": c.http_host,
        "http_port": c.http_port,
        "auth_timeout": c.authorization.timeout.as_secs_f64(),
        "max_control_line": c.max_control_line,
        "max_payload": c.max_payload,
        "max_pending": c.max_pending,
        "write_deadline": c.write_deadline.as_nanos() as u64,
        "start": rfc3339(core.started),
        "now": rfc3339(now),
        "uptime": format!("{}s", uptime.as_secs()),
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "connections": core.num_clients(),
        "total_connections": s.total_connections.load(Ordering::Relaxed),
        "in_msgs": s.in_msgs.load(Ordering::Relaxed),
        "out_msgs": s.out_msgs.load(Ordering::Relaxed),
        "in_bytes": s.in_bytes.load(Ordering::Relaxed),
        "out_bytes": s.out_bytes.load(Ordering::Relaxed),
        "slow_consumers": s.slow_consumers.load(Ordering::Relaxed),
        "stale_connections": s.stale_connections.load(Ordering::Relaxed),
        "subscriptions": core.accounts.total_subscriptions(),
    }))
}

pub async fn healthz() -> impl IntoResponse {
    respond(json!({"status": "ok"}))
}

pub async fn subsz(State(core): State<Arc<Core>>) -> impl IntoResponse {
    respond(serde_json::to_value(core.accounts.global().sublist.stats()).unwrap_or(Value::Null))
}

pub async fn connz(State(core): State<Arc<Core>>) -> impl IntoResponse {
    let mut clients = core.clients();
    clients.sort_by_key(|c| c.id);
    let conns: Vec<Value> = clients
        .iter()
        .map(|c| {
            let id = c.identity.lock().clone();
            json!({
                "cid": c.id,
                "kind": "Client",
                "type": "nats",
                "ip": c.addr.ip().to_string(),
                "port": c.addr.port(),
                "start": rfc3339(c.started),
                "pending_bytes": c.outbound.pending_bytes(),
                "in_msgs": c.counters.in_msgs.load(Ordering::Relaxed),
                "out_msgs": c.counters.out_msgs.load(Ordering::Relaxed),
                "in_bytes": c.counters.in_bytes.load(Ordering::Relaxed),
                "out_bytes": c.counters.out_bytes.load(Ordering::Relaxed),
                "subscriptions": c.num_subs(),
                "name": id.name,
                "lang": id.lang,
                "version": id.version,
            })
        })
        .collect();
    respond(json!({
        "server_id": core.server_id,
        "now": rfc3339(SystemTime::now()),
        "num_connections": conns.len(),
        "total": conns.len(),
        "offset": 0,
        "limit": 1024,
        "connections": conns,
    }))
}
