//! `/mqttz` (Jetway's own; nats-server has no such endpoint): the MQTT gateway's sessions,
//! connected and stored, with their subscriptions and messages in flight, and the gateway's
//! totals. Parameters: `state=connected|disconnected|any` (default `any`), `acc`, `offset`,
//! `limit` (default 1024).
//!
//! Connected sessions come first (by account and client id), then stored sessions whose
//! client is away (JetStream only). Stored sessions are read from `$MQTT_sess` only as far as
//! the page needs (`offset + limit`), so `total` counts what was read, not every session.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::connz::DEFAULT_LIMIT;
use super::response::{self, rfc3339, Params, RequestError};
use crate::mqtt::stats::{InflightTotals, SessionInfo, TrafficSnapshot};
use crate::server::Core;

#[derive(Debug, Serialize)]
struct Mqttz {
    server_id: String,
    now: String,
    /// Whether the gateway runs (false: every other figure is zero).
    enabled: bool,
    /// Sessions with a connected client.
    connected: usize,
    /// Persistent sessions stored in `$MQTT_sess`, connected or not (absent without JetStream).
    #[serde(skip_serializing_if = "Option::is_none")]
    stored: Option<u64>,
    /// Messages in flight over the connected sessions.
    inflight: InflightTotals,
    /// PUBLISH packets received from and sent to clients, by QoS.
    received: ByQos,
    sent: ByQos,
    total: usize,
    offset: usize,
    limit: usize,
    sessions: Vec<SessionInfo>,
}

#[derive(Debug, Default, Serialize)]
struct ByQos {
    qos0: u64,
    qos1: u64,
    qos2: u64,
    bytes: u64,
}

impl ByQos {
    fn new([qos0, qos1, qos2]: [u64; 3], bytes: u64) -> Self {
        ByQos { qos0, qos1, qos2, bytes }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Connected,
    Disconnected,
    Any,
}

pub async fn mqttz(State(core): State<Arc<Core>>, Query(query): Query<HashMap<String, String>>) -> Response {
    match build(&core, &Params(query)).await {
        Ok(body) => response::ok(&body),
        Err(e) => e.into_response(),
    }
}

async fn build(core: &Core, params: &Params) -> Result<Mqttz, RequestError> {
    let offset = params.number("offset")?;
    let limit = match params.number("limit")? {
        0 => DEFAULT_LIMIT,
        n => n,
    };
    let wanted = match params.text("state").map(str::to_ascii_lowercase).as_deref() {
        None | Some("any" | "all") => Wanted::Any,
        Some("connected" | "open") => Wanted::Connected,
        Some("disconnected" | "closed") => Wanted::Disconnected,
        Some(other) => {
            return Err(RequestError::BadValue { param: "state", kind: "state", value: other.into() })
        }
    };
    let account = params.text("acc");
    let now = rfc3339(SystemTime::now());
    let Some((gateway, _)) = core.monitor.mqtt() else {
        return Ok(Mqttz {
            server_id: core.server_id.clone(),
            now,
            enabled: false,
            connected: 0,
            stored: None,
            inflight: InflightTotals::default(),
            received: ByQos::default(),
            sent: ByQos::default(),
            total: 0,
            offset,
            limit,
            sessions: Vec::new(),
        });
    };
    let mut connected = gateway.connected_sessions();
    let connected_count = connected.len();
    connected.retain(|s| account.is_none_or(|a| a == s.account));
    connected.sort_by(|a, b| (&a.account, &a.client_id).cmp(&(&b.account, &b.client_id)));
    let mut sessions = Vec::new();
    if wanted != Wanted::Disconnected {
        sessions = connected;
    }
    if wanted != Wanted::Connected {
        let want = offset.saturating_add(limit).saturating_sub(sessions.len());
        let mut away = gateway.disconnected_sessions(account, want).await;
        away.sort_by(|a, b| (&a.account, &a.client_id).cmp(&(&b.account, &b.client_id)));
        sessions.extend(away);
    }
    let traffic: TrafficSnapshot = gateway.stats.snapshot();
    let total = sessions.len();
    Ok(Mqttz {
        server_id: core.server_id.clone(),
        now,
        enabled: true,
        connected: connected_count,
        stored: gateway.stored_session_count(),
        inflight: gateway.inflight_totals(),
        received: ByQos::new(traffic.received, traffic.received_bytes),
        sent: ByQos::new(traffic.sent, traffic.sent_bytes),
        total,
        offset,
        limit,
        sessions: response::page(sessions, offset, limit),
    })
}
