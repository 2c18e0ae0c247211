//! `STREAM.MSG.GET` and `STREAM.MSG.DELETE` (and the lookup `DIRECT.GET` shares).

use bytes::Bytes;
use jetway_storage::{StoredMessage, SubjectFilter};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{respond, ApiResponse};
use crate::jetstream::account::JsAccount;
use crate::jetstream::errors::ApiError;
use crate::jetstream::json::{decode_request, parse_time, response, serialize_b64, time_text};
use crate::jetstream::stream::config::StorageType;
use crate::jetstream::stream::Stream;

/// nats-server's `JSApiMsgGetRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct GetRequest {
    pub seq: u64,
    pub last_by_subj: Option<String>,
    pub next_by_subj: Option<String>,
    pub start_time: Option<String>,
    pub batch: i64,
    pub max_bytes: i64,
    pub multi_last: Vec<String>,
    pub up_to_seq: u64,
    pub up_to_time: Option<String>,
    pub no_hdr: bool,
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
pub(super) fn lookup(stream: &Stream, req: &GetRequest) -> Result<StoredMessage, ApiError> {
    let not_found = |_| ApiError::no_message_found();
    if let Some(subject) = &req.last_by_subj {
        return stream.store.load_last(subject).map_err(not_found);
    }
    let start = match &req.start_time {
        Some(t) => {
            let ts = parse_time(t).ok_or_else(ApiError::bad_request)?;
            stream.first_seq_at(ts)
        }
        None => req.seq,
    };
    if let Some(subject) = &req.next_by_subj {
        return stream.store.load_next(&SubjectFilter::one(subject), start.max(1)).map_err(not_found);
    }
    if req.start_time.is_some() {
        return stream.store.load_next(&SubjectFilter::all(), start).map_err(not_found);
    }
    stream.store.load(req.seq).map_err(not_found)
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
    // nats-server's rule: seq, last_by_subj and start_time exclude each other; next_by_subj
    // may go with seq or start_time (as a filter), not with last_by_subj; one is needed.
    let given = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    let (seq, last, next, time) =
        (req.seq > 0, given(&req.last_by_subj), given(&req.next_by_subj), req.start_time.is_some());
    if (seq && last) || !(seq || last || next || time) || (seq && time) || (time && last) || (last && next) {
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
    let result = (|| {
        let req: DeleteRequest = decode_request(body)?;
        let stream = account.stream(name)?;
        let config = stream.config();
        if config.sealed {
            return Err(ApiError::stream_sealed());
        }
        if config.deny_delete {
            return Err(ApiError::msg_delete_failed("message delete not permitted"));
        }
        match stream.store.remove(req.seq, !req.no_erase) {
            Ok(true) => Ok(json!({"success": true})),
            // nats-server's file store fails differently outside its range; kept for clients
            // that compare codes.
            Ok(false) if config.storage == StorageType::File => {
                let state = stream.store.state();
                Err(if req.seq == 0 || req.seq < state.first_seq {
                    ApiError::msg_delete_failed("no message found")
                } else if req.seq > state.last_seq {
                    ApiError::msg_delete_failed("stream store EOF")
                } else {
                    ApiError::seq_not_found(req.seq)
                })
            }
            Ok(false) => Err(ApiError::seq_not_found(req.seq)),
            Err(e) => Err(ApiError::stream_general(e)),
        }
    })();
    respond("stream_msg_delete", result)
}
