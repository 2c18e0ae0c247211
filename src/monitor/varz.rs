//! `/varz`: server identity, limits, runtime figures and traffic counters.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::response::Response;
use serde_json::json;

use super::process;
use super::response::{self, rfc3339, uptime};
use crate::server::{Core, JETWAY_VERSION, NATS_COMPAT_VERSION};

pub async fn varz(State(core): State<Arc<Core>>) -> Response {
    response::ok(&body(&core))
}

/// The `/varz` document (also `$SYS.REQ.SERVER.PING.VARZ`).
pub(super) fn body(core: &Core) -> serde_json::Value {
    let c = &core.config;
    let s = &core.stats;
    let now = SystemTime::now();
    let running_for = now.duration_since(core.started).unwrap_or_default();
    // The INFO clients get carries the bound address, which differs from the config for `-p -1`.
    let info = core.client_info(0, IpAddr::V4(Ipv4Addr::LOCALHOST));
    let http_port = core.monitor.http_addr().map_or(i64::from(c.http_port), |a| i64::from(a.port()));
    let https_port = core.monitor.https_addr().map_or(i64::from(c.https_port), |a| i64::from(a.port()));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let slow_consumers = s.slow_consumers.load(Ordering::Relaxed);
    let stale_connections = s.stale_connections.load(Ordering::Relaxed);
    let (in_msgs, in_bytes) = (s.in_msgs.load(Ordering::Relaxed), s.in_bytes.load(Ordering::Relaxed));
    let (out_msgs, out_bytes) = (s.out_msgs.load(Ordering::Relaxed), s.out_bytes.load(Ordering::Relaxed));
    let mut body = json!({
        "server_id": core.server_id,
        "server_name": core.server_name,
        "version": NATS_COMPAT_VERSION,
        "jetway_version": JETWAY_VERSION,
        "proto": 1,
        "go": "rust",
        "host": info.host,
        "port": info.port,
        "max_connections": c.max_connections,
        "ping_interval": duration_nanos(c.ping_interval),
        "ping_max": c.ping_max,
        "http_host": c.http_host,
        "http_port": http_port,
        "http_base_path": "",
        "https_port": https_port,
        "auth_timeout": c.authorization.timeout.as_secs_f64(),
        "max_control_line": c.max_control_line,
        "max_payload": c.max_payload,
        "max_pending": c.max_pending,
        "tls_timeout": 2.0,
        "write_deadline": duration_nanos(c.write_deadline),
    });
    // Two literals: one would exceed `json!`'s macro recursion limit.
    let runtime = json!({
        "cluster": {},
        "gateway": {},
        "leaf": {},
        "mqtt": mqtt_block(core),
        "websocket": websocket_block(core),
        // nats-server reports an empty block when JetStream is disabled.
        "jetstream": jetstream_block(core),
        "start": rfc3339(core.started),
        "now": rfc3339(now),
        "uptime": uptime(running_for),
        "mem": process::resident_memory_bytes(),
        "cores": cores,
        "gomaxprocs": cores,
        "cpu": core.monitor.cpu_percent(running_for),
        "connections": core.num_clients(),
        "total_connections": s.total_connections.load(Ordering::Relaxed),
        "routes": 0,
        "remotes": 0,
        "leafnodes": 0,
        "in_msgs": in_msgs,
        "out_msgs": out_msgs,
        "in_bytes": in_bytes,
        "out_bytes": out_bytes,
        // Only clients exist yet, so the client-only counters equal the totals.
        "in_client_msgs": in_msgs,
        "out_client_msgs": out_msgs,
        "in_client_bytes": in_bytes,
        "out_client_bytes": out_bytes,
        "slow_consumers": slow_consumers,
        "slow_consumer_stats": { "clients": slow_consumers, "routes": 0, "gateways": 0, "leafs": 0 },
        "stale_connections": stale_connections,
        "stale_connection_stats": { "clients": stale_connections, "routes": 0, "gateways": 0, "leafs": 0 },
        "subscriptions": core.accounts.total_subscriptions(),
        // No reload yet: the configuration was loaded when the server started.
        "config_load_time": rfc3339(core.started),
        "system_account": &*core.system_account.name,
        "stalled_clients": s.stalls.load(Ordering::Relaxed),
        "http_req_stats": core.monitor.http_requests(),
    });
    if let (Some(fields), serde_json::Value::Object(more)) = (body.as_object_mut(), runtime) {
        fields.extend(more);
        // Left out when false or zero, as nats-server does.
        if core.auth().required() {
            fields.insert("auth_required".into(), true.into());
        }
        if info.tls_required {
            fields.insert("tls_required".into(), true.into());
        }
        if c.max_subscriptions > 0 {
            fields.insert("max_subscriptions".into(), c.max_subscriptions.into());
        }
    }
    body
}

/// The `mqtt` block (nats-server's `MQTTOptsVarz`): empty when MQTT is off, else where the
/// gateway listens (the bound port, as nats-server reports it) and its options.
fn mqtt_block(core: &Core) -> serde_json::Value {
    let Some((_, addr)) = core.monitor.mqtt() else { return json!({}) };
    let m = &core.config.mqtt;
    let mut block = json!({
        "host": m.host,
        "port": addr.port(),
        // nats-server reports its MQTT TLS handshake timeout (default 2 s) with or without TLS.
        "tls_timeout": m.tls.as_ref().map_or(2.0, |t| t.timeout.as_secs_f64()),
        "ack_wait": duration_nanos(m.ack_wait),
        "max_ack_pending": m.max_ack_pending,
        "tls_map": m.tls.as_ref().is_some_and(|t| t.verify_and_map),
    });
    if let (Some(fields), Some(user)) = (block.as_object_mut(), &m.no_auth_user) {
        fields.insert("no_auth_user".into(), user.as_str().into());
    }
    block
}

/// The `websocket` block: nats-server reports the bound port once the listener runs (and
/// an empty block when it is disabled).
fn websocket_block(core: &Core) -> serde_json::Value {
    let w = &core.config.websocket;
    if w.port == 0 {
        return json!({});
    }
    json!({
        "host": w.host,
        "port": core.websocket_addr.get().map_or(i64::from(w.port), |a| i64::from(a.port())),
        "no_tls": w.no_tls,
        "tls_map": w.tls.as_ref().is_some_and(|t| t.verify_and_map),
        "handshake_timeout": duration_nanos(w.handshake_timeout),
        "same_origin": w.same_origin,
        "allowed_origins": w.allowed_origins,
        "compression": false,
    })
}

/// Go marshals a `time.Duration` as integer nanoseconds.
fn duration_nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The `jetstream` block of `/varz`: config, usage and limits.
pub(super) fn jetstream_block(core: &Core) -> serde_json::Value {
    let Some(js) = &core.jetstream else { return serde_json::json!({}) };
    let (reserved_memory, reserved_storage) = super::jsz::server_reservations(js);
    let (mut memory, mut storage) = (0, 0);
    for account in js.accounts() {
        let (m, s, _, _) = account.usage();
        memory += m;
        storage += s;
    }
    serde_json::json!({
        "config": super::jsz::config_block(core, js),
        "stats": {
            "memory": memory,
            "storage": storage,
            "reserved_memory": reserved_memory,
            "reserved_storage": reserved_storage,
            "accounts": js.accounts().len(),
            "ha_assets": 0,
            "api": {
                "level": crate::jetstream::API_LEVEL,
                "total": js.api_stats.total.load(std::sync::atomic::Ordering::Relaxed),
                "errors": js.api_stats.errors.load(std::sync::atomic::Ordering::Relaxed),
            },
        },
        // nats-server's API limits (max request batch, ...): none are configurable here.
        "limits": {},
    })
}
