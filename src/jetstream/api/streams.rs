//! `$JS.API.INFO` and the `STREAM.*` endpoints.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{respond, ApiResponse, PagedRequest};
use crate::jetstream::account::JsAccount;
use crate::jetstream::errors::ApiError;
use crate::jetstream::json::{decode_request, response};
use crate::jetstream::stream::config::StreamConfig;
use crate::jetstream::stream::info::StreamInfoJson;
use crate::jetstream::{JetStream, API_LEVEL};

/// Page size of `STREAM.NAMES`.
const NAMES_LIMIT: usize = 1024;
/// Page size of `STREAM.LIST`.
const LIST_LIMIT: usize = 256;
/// Most subjects one `STREAM.INFO` lists (nats-server's `JSMaxSubjectDetails`).
const SUBJECT_DETAILS_LIMIT: usize = 100_000;

pub fn account_info(js: &Arc<JetStream>, account: &JsAccount) -> ApiResponse {
    let (memory, storage, streams, consumers) = account.usage();
    let mut body = json!({
        "memory": memory,
        "storage": storage,
        "reserved_memory": 0,
        "reserved_storage": 0,
        "streams": streams,
        "consumers": consumers,
        "limits": {
            "max_memory": js.limits.max_memory,
            "max_storage": js.limits.max_storage,
            "max_streams": -1,
            "max_consumers": -1,
            "max_ack_pending": -1,
            "memory_max_stream_bytes": -1,
            "storage_max_stream_bytes": -1,
            "max_bytes_required": false,
        },
        "api": {
            "level": API_LEVEL,
            "total": js.api_stats.total.load(Ordering::Relaxed),
            "errors": js.api_stats.errors.load(Ordering::Relaxed),
        },
    });
    if let Some(domain) = &js.domain {
        body["domain"] = domain.as_str().into();
    }
    ApiResponse::json(response("account_info", &body))
}

/// A create/update body: the config plus the optional `pedantic` flag.
fn decode_config(body: &[u8]) -> Result<StreamConfig, ApiError> {
    let mut config: serde_json::Value = serde_json::from_slice(body).map_err(ApiError::invalid_json)?;
    crate::jetstream::json::strip_nulls(&mut config);
    if let Some(map) = config.as_object_mut() {
        map.remove("pedantic");
    }
    serde_json::from_value(config).map_err(|e| crate::jetstream::json::invalid_field(&e))
}

fn info_response(kind: &str, account: &JsAccount, name: &str, created: Option<bool>) -> ApiResponse {
    let stream = match account.stream(name) {
        Ok(s) => s,
        Err(e) => return ApiResponse::error(kind, &e),
    };
    match stream.info(false, None) {
        Ok(info) => {
            let info = StreamInfoJson { cluster: None, ..info };
            let mut value = serde_json::to_value(info).unwrap_or_default();
            if let (Some(map), Some(created)) = (value.as_object_mut(), created) {
                map.insert("did_create".into(), created.into());
            }
            ApiResponse::json(response(kind, &value))
        }
        Err(e) => ApiResponse::error(kind, &e),
    }
}

pub fn create(account: &JsAccount, name: &str, body: &[u8]) -> ApiResponse {
    const KIND: &str = "stream_create";
    let config = match decode_config(body) {
        Ok(c) => c,
        Err(e) => return ApiResponse::error(KIND, &e),
    };
    if config.name != name {
        return ApiResponse::error(KIND, &ApiError::stream_name_mismatch());
    }
    match account.create_stream(config) {
        Ok((stream, created)) => {
            if created {
                advisory(account, "STREAM.CREATED", "stream_action", &stream.name, "create");
            }
            info_response(KIND, account, name, Some(created))
        }
        Err(e) => ApiResponse::error(KIND, &e),
    }
}

pub fn update(account: &JsAccount, name: &str, body: &[u8]) -> ApiResponse {
    const KIND: &str = "stream_update";
    let config = match decode_config(body) {
        Ok(c) => c,
        Err(e) => return ApiResponse::error(KIND, &e),
    };
    if config.name != name {
        return ApiResponse::error(KIND, &ApiError::stream_name_mismatch());
    }
    match account.update_stream(config) {
        Ok(_) => {
            advisory(account, "STREAM.UPDATED", "stream_action", name, "modify");
            info_response(KIND, account, name, None)
        }
        Err(e) => ApiResponse::error(KIND, &e),
    }
}

pub fn delete(account: &JsAccount, name: &str) -> ApiResponse {
    let result = account.delete_stream(name).map(|()| {
        advisory(account, "STREAM.DELETED", "stream_action", name, "delete");
        json!({"success": true})
    });
    respond("stream_delete", result)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct InfoRequest {
    deleted_details: bool,
    subjects_filter: Option<String>,
    offset: usize,
}

pub fn info(account: &JsAccount, name: &str, body: &[u8]) -> ApiResponse {
    const KIND: &str = "stream_info";
    let req: InfoRequest = match decode_request(body) {
        Ok(r) => r,
        Err(e) => return ApiResponse::error(KIND, &e),
    };
    let stream = match account.stream(name) {
        Ok(s) => s,
        Err(e) => return ApiResponse::error(KIND, &e),
    };
    match stream.info(req.deleted_details, req.subjects_filter.as_deref()) {
        Ok(mut info) => {
            // Paging of the subjects map, as nats-server does: the paging fields are always
            // there, and all zero unless some subjects matched (then without the empty map).
            let (mut total, mut offset, mut limit) = (0, 0, 0);
            if let Some(subjects) = info.state.subjects.take().filter(|s| !s.is_empty()) {
                (total, offset, limit) = (subjects.len(), req.offset, SUBJECT_DETAILS_LIMIT);
                info.state.subjects =
                    Some(subjects.into_iter().skip(req.offset).take(SUBJECT_DETAILS_LIMIT).collect());
            }
            let mut value = serde_json::to_value(info).unwrap_or_default();
            if let Some(map) = value.as_object_mut() {
                map.insert("total".into(), total.into());
                map.insert("offset".into(), offset.into());
                map.insert("limit".into(), limit.into());
            }
            ApiResponse::json(response(KIND, &value))
        }
        Err(e) => ApiResponse::error(KIND, &e),
    }
}

fn filtered(account: &JsAccount, subject: Option<&str>) -> Vec<Arc<crate::jetstream::stream::Stream>> {
    account
        .streams()
        .into_iter()
        .filter(|s| match subject {
            Some(f) if !f.is_empty() => {
                s.config().subjects.iter().any(|ss| jetway_subject::filters_overlap(f, ss))
            }
            _ => true,
        })
        .collect()
}

pub fn names(account: &JsAccount, body: &[u8]) -> ApiResponse {
    let result = decode_request::<PagedRequest>(body).map(|req| {
        let streams = filtered(account, req.subject.as_deref());
        let names: Vec<String> =
            streams.iter().skip(req.offset).take(NAMES_LIMIT).map(|s| s.name.clone()).collect();
        json!({"total": streams.len(), "offset": req.offset, "limit": NAMES_LIMIT, "streams": names})
    });
    respond("stream_names", result)
}

pub fn list(account: &JsAccount, body: &[u8]) -> ApiResponse {
    let result = decode_request::<PagedRequest>(body).map(|req| {
        let streams = filtered(account, req.subject.as_deref());
        let infos: Vec<serde_json::Value> = streams
            .iter()
            .skip(req.offset)
            .take(LIST_LIMIT)
            .filter_map(|s| s.info(false, None).ok())
            .map(|info| StreamInfoJson { cluster: None, ..info })
            .map(|i| serde_json::to_value(i).unwrap_or_default())
            .collect();
        json!({"total": streams.len(), "offset": req.offset, "limit": LIST_LIMIT, "streams": infos})
    });
    respond("stream_list", result)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PurgeRequest {
    filter: Option<String>,
    seq: Option<u64>,
    keep: Option<u64>,
}

pub fn purge(account: &JsAccount, name: &str, body: &[u8]) -> ApiResponse {
    let result = (|| {
        let req: PurgeRequest = decode_request(body)?;
        let stream = account.stream(name)?;
        let config = stream.config();
        if config.sealed {
            return Err(ApiError::stream_sealed());
        }
        if config.deny_purge {
            return Err(ApiError::purge_failed("stream purge not permitted"));
        }
        if req.seq.is_some() && req.keep.is_some() {
            return Err(ApiError::bad_request());
        }
        let opts = jetway_storage::PurgeOptions {
            filter: req.filter.filter(|f| !f.is_empty()),
            upto_seq: req.seq,
            keep: req.keep,
        };
        let purged = stream.store.purge(&opts).map_err(ApiError::purge_failed)?;
        stream.notify_stored();
        Ok(json!({"success": true, "purged": purged}))
    })();
    respond("stream_purge", result)
}

#[derive(Serialize)]
struct StreamAction<'a> {
    r#type: String,
    id: String,
    timestamp: String,
    stream: &'a str,
    action: &'a str,
}

/// `$JS.EVENT.ADVISORY.STREAM.<CREATED|UPDATED|DELETED>.<stream>`.
fn advisory(account: &JsAccount, kind: &str, type_name: &str, stream: &str, action: &str) {
    let body = StreamAction {
        r#type: format!("io.nats.jetstream.advisory.v1.{type_name}"),
        id: crate::jetstream::new_id(),
        timestamp: crate::time::format_nanos(crate::time::now_nanos()),
        stream,
        action,
    };
    let subject = format!("$JS.EVENT.ADVISORY.{kind}.{stream}");
    let payload = bytes::Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    crate::router::deliver::publish(
        &account.account,
        &account.js.stats,
        &crate::router::Message::internal(&subject, None, None, &payload),
    );
}
