//! `/jsz`: JetStream configuration, usage and, on request, per-account stream and consumer
//! details (nats-server's field names).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::response::{self, Params};
use crate::config::SyncInterval;
use crate::jetstream::{JetStream, API_LEVEL};
use crate::server::Core;

pub async fn jsz(State(core): State<Arc<Core>>, Query(query): Query<HashMap<String, String>>) -> Response {
    match render(&core, &Params(query)) {
        Ok(v) => response::ok(&v),
        Err(e) => e.into_response(),
    }
}

/// The `/jsz` document (also `$SYS.REQ.SERVER.PING.JSZ`).
pub(super) fn render(core: &Core, params: &Params) -> Result<Value, response::RequestError> {
    let now = response::rfc3339(std::time::SystemTime::now());
    let Some(js) = &core.jetstream else {
        return Ok(json!({ "server_id": core.server_id, "now": now, "disabled": true }));
    };
    let with_accounts = params.flag("accounts")?;
    let with_streams = params.flag("streams")?;
    let with_consumers = params.flag("consumers")?;
    let with_config = params.flag("config")?;
    let only_account = params.text("acc");
    let totals = totals(js);
    let details: Vec<Value> = if with_accounts || with_streams || with_consumers || only_account.is_some() {
        js.accounts()
            .iter()
            .filter(|a| only_account.is_none_or(|name| *a.account.name == *name))
            .map(|a| account_detail(a, with_streams || with_consumers, with_consumers, with_config))
            .collect()
    } else {
        Vec::new()
    };
    let (reserved_memory, reserved_storage) = server_reservations(js);
    let mut body = json!({
        "server_id": core.server_id,
        "now": now,
        "config": config_block(core, js),
        "memory": totals.memory,
        "storage": totals.storage,
        "reserved_memory": reserved_memory,
        "reserved_storage": reserved_storage,
        "accounts": js.accounts().len(),
        "ha_assets": 0,
        "api": {
            "level": API_LEVEL,
            "total": js.api_stats.total.load(Ordering::Relaxed),
            "errors": js.api_stats.errors.load(Ordering::Relaxed),
        },
        "streams": totals.streams,
        "consumers": totals.consumers,
        "messages": totals.messages,
        "bytes": totals.bytes,
        "total": details.len(),
    });
    if !details.is_empty() {
        body["account_details"] = Value::Array(details);
    }
    Ok(body)
}

/// nats-server's `JetStreamConfig` as `/jsz` and `/varz` show it (fields that are false,
/// zero or empty are left out, as it does; `strict` because unknown API fields are refused).
pub(super) fn config_block(core: &Core, js: &JetStream) -> Value {
    let mut config = json!({
        "max_memory": js.limits.max_memory,
        "max_storage": js.limits.max_storage,
        "store_dir": js.store_dir.display().to_string(),
        "strict": true,
    });
    match core.config.jetstream.sync_interval {
        SyncInterval::Always => config["sync_always"] = true.into(),
        SyncInterval::Every(d) => config["sync_interval"] = (d.as_nanos() as u64).into(),
    }
    if let Some(domain) = &js.domain {
        config["domain"] = domain.as_str().into();
    }
    config
}

/// What accounts' limits reserve across the server (memory, storage).
pub(super) fn server_reservations(js: &JetStream) -> (u64, u64) {
    js.accounts()
        .iter()
        .map(|a| a.reservations())
        .fold((0, 0), |(m, s), (am, as_)| (m + am.unwrap_or(0), s + as_.unwrap_or(0)))
}

#[derive(Default)]
struct Totals {
    memory: u64,
    storage: u64,
    streams: usize,
    consumers: usize,
    messages: u64,
    bytes: u64,
}

fn totals(js: &JetStream) -> Totals {
    let mut t = Totals::default();
    for account in js.accounts() {
        let (memory, storage, streams, consumers) = account.usage();
        t.memory += memory;
        t.storage += storage;
        t.streams += streams;
        t.consumers += consumers;
        for s in account.streams() {
            let state = s.store.state();
            t.messages += state.msgs;
            t.bytes += state.bytes;
        }
    }
    t
}

fn account_detail(
    account: &crate::jetstream::account::JsAccount,
    streams: bool,
    consumers: bool,
    config: bool,
) -> Value {
    let (memory, storage, _, _) = account.usage();
    // Unlimited shows as the largest number, as nats-server's -1 does once unsigned.
    let (reserved_memory, reserved_storage) = account.reservations();
    let mut detail = json!({
        "name": account.account.name.as_ref(),
        "id": account.account.name.as_ref(),
        "memory": memory,
        "storage": storage,
        "reserved_memory": reserved_memory.unwrap_or(u64::MAX),
        "reserved_storage": reserved_storage.unwrap_or(u64::MAX),
        "accounts": 0,
        "ha_assets": 0,
        "api": {
            "level": 0,
            "total": account.api_stats.total.load(Ordering::Relaxed),
            "errors": account.api_stats.errors.load(Ordering::Relaxed),
        },
    });
    if streams {
        let list: Vec<Value> = account
            .streams()
            .iter()
            .filter_map(|s| s.info(false, None).ok().map(|info| (s, info)))
            .map(|(s, info)| {
                let mut v = json!({
                    "name": s.name,
                    "created": info.created,
                    "state": info.state,
                    "cluster": info.cluster,
                });
                if config {
                    // The stored config: its required API level, not the server's own keys.
                    let stored = crate::jetstream::versioning::stream_stored(s.config());
                    v["config"] = serde_json::to_value(&stored).unwrap_or_default();
                }
                if consumers {
                    let list: Vec<Value> = s
                        .consumers
                        .read()
                        .values()
                        .map(|c| {
                            let mut ci = serde_json::to_value(c.info()).unwrap_or_default();
                            if config {
                                let stored = crate::jetstream::versioning::consumer_stored(c.config());
                                ci["config"] = serde_json::to_value(&stored).unwrap_or_default();
                            } else if let Some(map) = ci.as_object_mut() {
                                map.remove("config");
                            }
                            ci
                        })
                        .collect();
                    // Left out when there are none, as nats-server does.
                    if !list.is_empty() {
                        v["consumer_detail"] = Value::Array(list);
                    }
                }
                v
            })
            .collect();
        detail["stream_detail"] = Value::Array(list);
    }
    detail
}
