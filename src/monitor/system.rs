//! Monitoring over NATS: the requests nats-server answers in its system account, which the
//! `nats` CLI's `server` commands send (`nats server list` asks `$SYS.REQ.SERVER.PING`,
//! `nats server info` asks `…PING.VARZ`, and so on).
//!
//! `$SYS.REQ.SERVER.PING` (STATSZ), `$SYS.REQ.SERVER.PING.<KIND>` and
//! `$SYS.REQ.SERVER.<server id>.<KIND>` are answered for the kinds below with nats-server's
//! envelope `{"server": {…}, "data": {…}}` (`"statsz"` for STATSZ, `"error"` for a bad
//! request). A request body may carry nats-server's options as JSON (`{"subscriptions":
//! true}` for CONNZ, …) and its filters (`server_name`, `host`, `cluster`, `domain`,
//! `tags`): a server the filters leave out does not answer. Only clients of the system
//! account can send these: the subscriptions live there, made when it has users.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::SystemTime;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::events::server_info;
use super::response::{rfc3339, Params, RequestError};
use super::{accountz, connz, healthz, jsz, process, subsz, varz};
use crate::router::{InternalHandler, Message, Sink, Subscription};
use crate::server::Core;

/// The kinds answered; others have no subscriber (the requester hears "no responders").
const KINDS: [&str; 8] = ["STATSZ", "IDZ", "VARZ", "CONNZ", "SUBSZ", "ACCOUNTZ", "JSZ", "HEALTHZ"];

/// Subscribes the system account to the requests once some user can log into it (at startup
/// or after a reload); the subscriptions hold the core weakly. Until then nobody could ask,
/// and the server's subscription counts show only clients' subscriptions.
pub fn install(core: &Arc<Core>) {
    if !core.auth().has_users_in(&core.system_account)
        || core.monitor.system_requests.swap(true, Ordering::AcqRel)
    {
        return;
    }
    let handler: Arc<dyn InternalHandler> = Arc::new(SystemRequests { core: Arc::downgrade(core) });
    let mut subjects = vec!["$SYS.REQ.SERVER.PING".to_string()];
    for kind in KINDS {
        subjects.push(format!("$SYS.REQ.SERVER.PING.{kind}"));
        subjects.push(format!("$SYS.REQ.SERVER.{}.{kind}", core.server_id));
    }
    for subject in subjects {
        let sub = Subscription::new(subject.into(), None, Sink::Internal(handler.clone()));
        core.system_account.sublist.insert(sub);
    }
}

struct SystemRequests {
    core: Weak<Core>,
}

impl InternalHandler for SystemRequests {
    fn deliver(&self, msg: &Message<'_>) {
        let (Some(core), Some(reply)) = (self.core.upgrade(), msg.reply) else { return };
        let kind = match msg.subject.rsplit('.').next() {
            Some("PING") => "STATSZ",
            Some(kind) => kind,
            None => return,
        };
        let Some(answer) = answer(&core, kind, msg.payload) else { return };
        let Ok(body) = serde_json::to_vec(&answer) else { return };
        let body = Bytes::from(body);
        core.publish(&core.system_account, &Message::internal(reply, None, None, &body));
    }
}

/// The reply to a `kind` request with `body`; `None` when the request's filters leave this
/// server out.
fn answer(core: &Core, kind: &str, body: &[u8]) -> Option<Value> {
    let options: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(options)) => options,
            _ => return Some(envelope(core, Err(bad_request("invalid request options")))),
        }
    };
    if filtered_out(core, &options) {
        return None;
    }
    if kind == "STATSZ" {
        return Some(json!({ "server": server_info(core, SystemTime::now()), "statsz": statsz(core) }));
    }
    if kind == "IDZ" {
        return Some(json!({ "name": core.server_name, "host": core.config.host, "id": core.server_id }));
    }
    let params = params(kind, &options);
    let data = match kind {
        "VARZ" => Ok(varz::body(core)),
        "CONNZ" => connz::build(core, &params).and_then(to_value),
        "SUBSZ" => subsz::build(core, &params).and_then(to_value),
        "ACCOUNTZ" => accountz::build(core, &params).and_then(to_value),
        "JSZ" => jsz::render(core, &params),
        // Over NATS the status carries its HTTP code too, as nats-server's does.
        "HEALTHZ" => healthz::body(core, &params).map(|mut health| {
            let code = if health["status"] == "ok" { 200 } else { 503 };
            if let Some(fields) = health.as_object_mut() {
                fields.insert("status_code".into(), code.into());
            }
            health
        }),
        _ => return None,
    };
    Some(envelope(core, data.map_err(|e| bad_request(&e.to_string()))))
}

fn to_value(body: impl serde::Serialize) -> Result<Value, RequestError> {
    Ok(serde_json::to_value(body).unwrap_or(Value::Null))
}

fn bad_request(description: &str) -> Value {
    json!({ "code": 400, "description": description })
}

/// nats-server's `ServerAPIResponse`.
fn envelope(core: &Core, data: Result<Value, Value>) -> Value {
    match data {
        Ok(data) => json!({ "server": server_info(core, SystemTime::now()), "data": data }),
        Err(error) => json!({ "server": server_info(core, SystemTime::now()), "data": null, "error": error }),
    }
}

/// nats-server's `ServerStats`, for what applies to one server without routes or gateways.
fn statsz(core: &Core) -> Value {
    let s = &core.stats;
    let running_for = SystemTime::now().duration_since(core.started).unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (in_msgs, in_bytes) = (s.in_msgs.load(Ordering::Relaxed), s.in_bytes.load(Ordering::Relaxed));
    let (out_msgs, out_bytes) = (s.out_msgs.load(Ordering::Relaxed), s.out_bytes.load(Ordering::Relaxed));
    let accounts = core.accounts.all();
    let mut stats = json!({
        "start": rfc3339(core.started),
        "mem": process::resident_memory_bytes(),
        "cores": cores,
        "cpu": core.monitor.cpu_percent(running_for),
        "connections": core.num_clients(),
        "total_connections": s.total_connections.load(Ordering::Relaxed),
        "active_accounts": accounts.iter().filter(|a| a.num_connections() > 0).count(),
        "subscriptions": accounts.iter().map(|a| a.sublist.count()).sum::<u64>(),
        "sent": { "msgs": out_msgs, "bytes": out_bytes },
        "sent_to_clients": { "msgs": out_msgs, "bytes": out_bytes },
        "received": { "msgs": in_msgs, "bytes": in_bytes },
        "received_from_clients": { "msgs": in_msgs, "bytes": in_bytes },
        "slow_consumers": s.slow_consumers.load(Ordering::Relaxed),
        "active_servers": 1,
        "gomaxprocs": cores,
    });
    if let Some(fields) = stats.as_object_mut() {
        let stale = s.stale_connections.load(Ordering::Relaxed);
        if stale > 0 {
            fields.insert("stale_connections".into(), stale.into());
        }
        if core.jetstream.is_some() {
            let mut jetstream = varz::jetstream_block(core);
            // Without the store's path, as nats-server sends it.
            if let Some(config) = jetstream.get_mut("config").and_then(Value::as_object_mut) {
                config.remove("store_dir");
            }
            fields.insert("jetstream".into(), jetstream);
        }
    }
    stats
}

/// Whether the request's filters (nats-server's `EventFilterOptions`) leave this server
/// out: names and hosts match by substring, a cluster or tags never (no clustering), a
/// domain by equality.
fn filtered_out(core: &Core, options: &Map<String, Value>) -> bool {
    let text = |key: &str| options.get(key).and_then(Value::as_str).filter(|v| !v.is_empty());
    if text("server_name").is_some_and(|name| !core.server_name.contains(name)) {
        return true;
    }
    if text("host").is_some_and(|host| !core.config.host.contains(host)) {
        return true;
    }
    if text("cluster").is_some() {
        return true;
    }
    if options.get("tags").and_then(Value::as_array).is_some_and(|tags| !tags.is_empty()) {
        return true;
    }
    let domain = core.jetstream.as_ref().and_then(|js| js.domain.as_deref());
    text("domain").is_some_and(|d| Some(d) != domain)
}

/// nats-server's JSON options of a `kind` request as the HTTP endpoint's query parameters.
fn params(kind: &str, options: &Map<String, Value>) -> Params {
    let mut query = HashMap::new();
    for (key, value) in options {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            _ => continue,
        };
        let name = match (kind, key.as_str()) {
            ("CONNZ", "subscriptions_detail") if text == "true" => ("subs", "detail".to_string()),
            ("CONNZ" | "SUBSZ", "subscriptions") => ("subs", text),
            // Connection states by number: open, closed, any.
            ("CONNZ", "state") => {
                let state = match text.as_str() {
                    "1" => "closed",
                    "2" => "any",
                    _ => "open",
                };
                ("state", state.to_string())
            }
            ("SUBSZ" | "JSZ" | "ACCOUNTZ", "account") => ("acc", text),
            ("JSZ", "consumer") => ("consumers", text),
            (_, other) => (other, text),
        };
        query.insert(name.0.to_string(), name.1);
    }
    Params(query)
}
