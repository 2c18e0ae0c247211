//! `STREAM.MSG.GET`, `STREAM.MSG.DELETE` and `DIRECT.GET`.

use bytes::Bytes;
use jetway_protocols::nats::HeaderMap;
use jetway_storage::StoredMessage;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ApiResponse;
use crate::jetstream::account::JsAccount;
use crate::jetstream::errors::ApiError;
use crate::jetstream::json::{decode_request, parse_time, response, serialize_b64, time_text};
use crate::jetstream::stream::Stream;

/// nats-server's `JSApiMsgGetRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct GetRequest {
    seq: u64,
    last_by_subj: Option<String>,
    next_by_subj: Option<String>,
    start_time: Option<String>,
    batch: i64,
    max_bytes: i64,
    multi_last: Vec<String>,
    up_to_seq: u64,
    up_to_time: Option<String>,
    no_hdr: bool,
}

#[derive(Serialize)]
struct StoredMsgJson {
    subject: String,
    seq: u64,
    #[serde(serialize_with = "serialize_b64", skip_serializing_if = "Option::is_none")]
    hdrs: Option<Bytes>,
    #[serde(serialize_with = "serialize_b64", skip_serializing_if = "Option::is_none")]
    data: Option<Bytes>,
    time: String,
}

/// Finds the message a get request names.
fn lookup(stream: &Stream, req: &GetRequest) -> Result<StoredMessage, ApiError> {
    let not_found = |_| ApiError::no_message_found();
    if let Some(subject) = &req.last_by_subj {
        return stream.store.load_last(subject).map_err(not_found);
    }
    let start = match &req.start_time {
        Some(t) => {
            let ts = parse_time(t).ok_or_else(ApiError::bad_request)?;
            first_at_time(stream, ts)
        }
        None => req.seq,
    };
    if let Some(subject) = &req.next_by_subj {
        return stream.store.load_next(&[subject.as_str()], start.max(1)).map_err(not_found);
    }
    if req.start_time.is_some() {
        return stream.store.load_next(&[], start).map_err(not_found);
    }
    stream.store.load(req.seq).map_err(not_found)
}

/// First sequence whose time is at or after `ts`.
fn first_at_time(stream: &Stream, ts: i64) -> u64 {
    let state = stream.store.state();
    let (mut lo, mut hi) = (state.first_seq.max(1), state.last_seq + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match stream.store.load_next(&[], mid) {
            Ok(m) if m.timestamp < ts => lo = m.seq + 1,
            _ => hi = mid,
        }
    }
    lo
}

pub fn get(account: &JsAccount, name: &str, body: &[u8]) -> ApiResponse {
    const KIND: &str = "stream_msg_get";
    let req: GetRequest = match decode_request(body) {
        Ok(r) => r,
        Err(e) => return ApiResponse::error(KIND, &e),
    };
    if req.batch != 0 || req.max_bytes != 0 || !req.multi_last.is_empty() {
        return ApiResponse::error(KIND, &ApiError::bad_request());
    }
    if req.seq == 0 && req.last_by_subj.is_none() && req.next_by_subj.is_none() && req.start_time.is_none() {
        return ApiResponse::error(KIND, &ApiError::bad_request());
    }
    let stream = match account.stream(name) {
        Ok(s) => s,
        Err(e) => return ApiResponse::error(KIND, &e),
    };
    match lookup(&stream, &req) {
        Ok(m) => {
            let msg = StoredMsgJson {
                subject: m.subject.to_string(),
                seq: m.seq,
                hdrs: if req.no_hdr { None } else { m.headers },
                data: (!m.payload.is_empty()).then_some(m.payload),
                time: time_text(m.timestamp),
            };
            ApiResponse::json(response(KIND, &json!({ "message": msg })))
        }
        Err(e) => ApiResponse::error(KIND, &e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct DeleteRequest {
    seq: u64,
    no_erase: bool,
}

pub fn delete(account: &JsAccount, name: &str, body: &[u8]) -> ApiResponse {
    const KIND: &str = "stream_msg_delete";
    let req: DeleteRequest = match decode_request(body) {
        Ok(r) => r,
        Err(e) => return ApiResponse::error(KIND, &e),
    };
    let stream = match account.stream(name) {
        Ok(s) => s,
        Err(e) => return ApiResponse::error(KIND, &e),
    };
    let config = stream.config();
    if config.sealed {
        return ApiResponse::error(KIND, &ApiError::stream_sealed());
    }
    if config.deny_delete {
        return ApiResponse::error(KIND, &ApiError::stream_general("message delete not permitted"));
    }
    match stream.store.remove(req.seq, !req.no_erase) {
        Ok(true) => ApiResponse::json(response(KIND, &json!({"success": true}))),
        Ok(false) => ApiResponse::error(KIND, &ApiError::seq_not_found(req.seq)),
        Err(e) => ApiResponse::error(KIND, &ApiError::stream_general(e)),
    }
}

/// A status-only reply (direct get answers are raw messages, not JSON).
fn status(code: u16, text: &str) -> ApiResponse {
    let headers = HeaderMap::with_status(code, Some(text)).encode();
    ApiResponse { body: Bytes::new(), headers: Some(headers), error: code >= 400 }
}

/// The raw reply of a direct get: stream headers first, then the message's own.
fn direct_reply(stream: &Stream, m: StoredMessage, no_hdr: bool) -> ApiResponse {
    let mut h = HeaderMap::new();
    h.append("Nats-Stream", stream.name.clone());
    h.append("Nats-Subject", m.subject.to_string());
    h.append("Nats-Sequence", m.seq.to_string());
    h.append("Nats-Time-Stamp", time_text(m.timestamp));
    if !no_hdr {
        if let Some(original) = m.headers.as_deref().and_then(|raw| HeaderMap::decode(raw).ok()) {
            for (name, value) in original.iter() {
                h.append(name, value);
            }
        }
    }
    ApiResponse { body: m.payload, headers: Some(h.encode()), error: false }
}

pub fn direct_get(account: &JsAccount, name: &str, subject: Option<&str>, body: &[u8]) -> ApiResponse {
    let Ok(stream) = account.stream(name) else { return status(503, "No Responders") };
    if !stream.config().allow_direct {
        return status(503, "No Responders");
    }
    let req = match subject {
        Some(s) => GetRequest { last_by_subj: Some(s.to_string()), ..GetRequest::default() },
        None => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return status(408, "Empty Request");
            }
            match serde_json::from_slice::<GetRequest>(body) {
                Ok(r) => r,
                Err(_) => return status(408, "Malformed Request"),
            }
        }
    };
    if req.batch > 1 || !req.multi_last.is_empty() {
        // Batched direct gets stream several replies; not supported yet.
        return status(408, "Bad Request");
    }
    match lookup(&stream, &req) {
        Ok(m) => direct_reply(&stream, m, req.no_hdr),
        Err(_) => status(404, "Message Not Found"),
    }
}
