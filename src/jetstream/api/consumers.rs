//! The `CONSUMER.*` endpoints (except `MSG.NEXT`, which each pull consumer answers itself).

use serde::Deserialize;
use serde_json::json;

use std::sync::Arc;

use super::{respond, ApiResponse, PagedRequest};
use crate::jetstream::account::JsAccount;
use crate::jetstream::consumer::config::ConsumerConfig;
use crate::jetstream::consumer::priority::is_valid_group_name;
use crate::jetstream::consumer::Consumer;
use crate::jetstream::errors::ApiError;
use crate::jetstream::json::{decode_request, parse_time, response, time_text};

const NAMES_LIMIT: usize = 1024;
const LIST_LIMIT: usize = 256;

/// nats-server's `CreateConsumerRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CreateRequest {
    stream_name: String,
    config: ConsumerConfig,
    action: String,
    pedantic: bool,
}

/// `CONSUMER.CREATE.<S>[.<C>[.<filter>]]` and `CONSUMER.DURABLE.CREATE.<S>.<C>`.
pub fn create(
    account: &JsAccount,
    stream_name: &str,
    name: Option<&str>,
    filter: Option<&str>,
    body: &[u8],
    legacy_durable: bool,
) -> ApiResponse {
    const KIND: &str = "consumer_create";
    let req: CreateRequest = match crate::jetstream::json::decode_json::<CreateRequest>(body) {
        // nats-server reads the action while decoding: an unknown one is invalid JSON.
        Ok(r) if !["", "create", "update"].contains(&r.action.as_str()) => {
            let e = ApiError::invalid_json(format!("unknown consumer action: {:?}", r.action));
            return ApiResponse::error(KIND, &e);
        }
        Ok(r) => r,
        Err(e) => return ApiResponse::error(KIND, &e),
    };
    let _ = req.pedantic;
    if !req.stream_name.is_empty() && req.stream_name != stream_name {
        return ApiResponse::error(KIND, &ApiError::stream_name_mismatch());
    }
    let mut config = req.config;
    match (name, legacy_durable) {
        (Some(n), true) => {
            if config.durable_name.is_empty() {
                return ApiResponse::error(KIND, &ApiError::durable_name_not_set());
            }
            if config.durable_name != n {
                return ApiResponse::error(KIND, &ApiError::durable_name_mismatch());
            }
        }
        (Some(n), false) => {
            if !config.durable_name.is_empty() && config.durable_name != n {
                return ApiResponse::error(KIND, &ApiError::durable_name_mismatch());
            }
            if !config.name.is_empty() && config.name != n {
                return ApiResponse::error(KIND, &ApiError::durable_name_mismatch());
            }
            config.name = n.to_string();
        }
        (None, _) => {
            if !config.durable_name.is_empty() {
                return ApiResponse::error(KIND, &ApiError::ephemeral_with_durable_name());
            }
        }
    }
    if let Some(filter) = filter {
        if !config.filter_subjects.is_empty() {
            return ApiResponse::error(KIND, &ApiError::multiple_filters_not_allowed());
        }
        if !config.filter_subject.is_empty() && config.filter_subject != filter {
            return ApiResponse::error(KIND, &ApiError::create_filter_mismatch());
        }
        config.filter_subject = filter.to_string();
    }
    let stream = match account.stream(stream_name) {
        Ok(s) => s,
        Err(e) => return ApiResponse::error(KIND, &e),
    };
    let existed = stream.consumers.read().contains_key(name.unwrap_or(""));
    match account.create_consumer(&stream, config, &req.action) {
        Ok(consumer) => {
            if !existed {
                advisory(account, "CONSUMER.CREATED", stream_name, &consumer.name, "create");
            }
            ApiResponse::json(response(KIND, &consumer.info()))
        }
        Err(e) => ApiResponse::error(KIND, &e),
    }
}

pub fn info(account: &JsAccount, stream: &str, name: &str) -> ApiResponse {
    respond("consumer_info", find(account, stream, name).map(|c| c.info()))
}

/// The consumer `name` of `stream`, or nats-server's not-found error for either.
fn find(account: &JsAccount, stream: &str, name: &str) -> Result<Arc<Consumer>, ApiError> {
    account.stream(stream)?.consumers.read().get(name).cloned().ok_or_else(ApiError::consumer_not_found)
}

pub fn delete(account: &JsAccount, stream_name: &str, name: &str) -> ApiResponse {
    let result = account.stream(stream_name).and_then(|stream| {
        if !stream.remove_consumer(name) {
            return Err(ApiError::consumer_not_found());
        }
        advisory(account, "CONSUMER.DELETED", stream_name, name, "delete");
        Ok(json!({"success": true}))
    });
    respond("consumer_delete", result)
}

pub fn names(account: &JsAccount, stream: &str, body: &[u8]) -> ApiResponse {
    let result = (|| {
        let req: PagedRequest = decode_request(body)?;
        let all: Vec<String> = account.stream(stream)?.consumers.read().keys().cloned().collect();
        let page: Vec<&String> = all.iter().skip(req.offset).take(NAMES_LIMIT).collect();
        Ok(json!({"total": all.len(), "offset": req.offset, "limit": NAMES_LIMIT, "consumers": page}))
    })();
    respond("consumer_names", result)
}

pub fn list(account: &JsAccount, stream: &str, body: &[u8]) -> ApiResponse {
    let result = (|| {
        let req: PagedRequest = decode_request(body)?;
        let all: Vec<_> = account.stream(stream)?.consumers.read().values().cloned().collect();
        let page: Vec<_> = all.iter().skip(req.offset).take(LIST_LIMIT).map(|c| c.info()).collect();
        Ok(json!({"total": all.len(), "offset": req.offset, "limit": LIST_LIMIT, "consumers": page}))
    })();
    respond("consumer_list", result)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PauseRequest {
    pause_until: Option<String>,
}

pub fn pause(account: &JsAccount, stream: &str, name: &str, body: &[u8]) -> ApiResponse {
    let result = (|| {
        let req: PauseRequest = decode_request(body)?;
        let consumer = find(account, stream, name)?;
        let until = req.pause_until.as_deref().and_then(parse_time).unwrap_or(0);
        consumer.pause(until);
        let now = crate::time::now_nanos();
        let paused = until > now;
        Ok(json!({
            "paused": paused,
            "pause_until": time_text(until),
            "pause_remaining": if paused { until - now } else { 0 },
        }))
    })();
    respond("consumer_pause", result)
}

/// `$JS.API.CONSUMER.RESET.<stream>.<consumer>` body: no body (or no `seq`) resets to just
/// past the ack floor.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    #[serde(default)]
    seq: u64,
}

/// Moves a consumer to a new starting sequence (nats-server 2.14): what it had delivered and
/// not acknowledged is forgotten, its consumer sequence starts over. The answer is its info and
/// the sequence it now starts at (`reset_seq`, 0 in a refusal, as nats-server writes it).
pub fn reset(account: &JsAccount, stream: &str, name: &str, body: &[u8]) -> ApiResponse {
    let result = (|| -> Result<serde_json::Value, ApiError> {
        let req: ResetRequest = decode_request(body)?;
        let consumer = find(account, stream, name)?;
        let seq =
            consumer.reset((req.seq > 0).then_some(req.seq)).map_err(ApiError::consumer_invalid_reset)?;
        let mut info = serde_json::to_value(consumer.info()).unwrap_or_default();
        info["reset_seq"] = seq.into();
        Ok(info)
    })();
    match result {
        Ok(info) => respond("consumer_reset", Ok(info)),
        Err(e) => {
            let body =
                crate::jetstream::json::response("consumer_reset", &json!({"error": e, "reset_seq": 0}));
            ApiResponse::raw(None, body.into(), true)
        }
    }
}

/// `$JS.API.CONSUMER.UNPIN.<stream>.<consumer>` body (unknown fields are ignored, as by
/// nats-server for this request).
#[derive(Deserialize, Default)]
struct UnpinRequest {
    #[serde(default)]
    group: String,
}

/// Takes the pin from a `pinned_client` consumer's group: its next request is pinned instead.
/// nats-server's checks, in its order: the body, the group's name, the stream, the consumer,
/// the group.
pub fn unpin(account: &JsAccount, stream: &str, name: &str, body: &[u8]) -> ApiResponse {
    let result = (|| {
        if body.trim_ascii().is_empty() {
            return Err(ApiError::invalid_json("unexpected end of JSON input"));
        }
        let req: UnpinRequest =
            serde_json::from_slice(body).map_err(|e| crate::jetstream::json::invalid_field(&e))?;
        if req.group.is_empty() {
            return Err(ApiError::invalid_json("consumer group not specified"));
        }
        if !is_valid_group_name(&req.group) {
            return Err(ApiError::invalid_group_name());
        }
        let consumer = find(account, stream, name)?;
        if !consumer.config().priority_groups.contains(&req.group) {
            return Err(ApiError::invalid_priority_group());
        }
        consumer.unpin(&req.group);
        Ok(json!({}))
    })();
    respond("consumer_unpin", result)
}

/// `$JS.EVENT.ADVISORY.CONSUMER.<CREATED|DELETED>.<stream>.<consumer>`.
fn advisory(account: &JsAccount, kind: &str, stream: &str, consumer: &str, action: &str) {
    let body = json!({
        "type": "io.nats.jetstream.advisory.v1.consumer_action",
        "id": crate::jetstream::new_id(),
        "timestamp": time_text(crate::time::now_nanos()),
        "stream": stream,
        "consumer": consumer,
        "action": action,
    });
    let subject = format!("$JS.EVENT.ADVISORY.{kind}.{stream}.{consumer}");
    let payload = bytes::Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    crate::router::deliver::publish(
        &account.account,
        &account.js.stats,
        &crate::router::Message::internal(&subject, None, None, &payload),
    );
}
