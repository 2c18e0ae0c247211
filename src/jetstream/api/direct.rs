//! `$JS.API.DIRECT.GET.<stream>[.<subject>]`: messages answered raw (headers and payload, no
//! JSON), on streams with `allow_direct`.
//!
//! - One message: `seq`, `last_by_subj`, `next_by_subj` (+ `seq` as start), `start_time`, or the
//!   subject in the request subject. Headers `Nats-Stream`, `Nats-Subject`, `Nats-Sequence`,
//!   `Nats-Time-Stamp`, then the message's own.
//! - A batch (`batch`, optionally `max_bytes`): up to `batch` messages from the start position
//!   (`seq`, `start_time`), filtered by `next_by_subj`. Each also carries `Nats-Num-Pending`
//!   (matching messages after it) and `Nats-Last-Sequence` (the previous message sent, 0 for
//!   the first). The batch ends with `NATS/1.0 204 EOB` carrying the same two headers.
//! - `multi_last: [subjects…]` (wildcards allowed), optionally `up_to_seq` / `up_to_time`: the
//!   last message of every matching subject at or below that point, in stream order, then
//!   `204 EOB` with `Nats-UpTo-Sequence` as well. More than [`MAX_RESULTS`] subjects is
//!   `413 Too Many Results`; `batch` caps how many are sent.
//!
//! Errors are status messages: `408 Empty Request`, `408 Malformed Request`, `408 Bad Request`,
//! `404 Message Not Found`, `404 No Results`. A stream that does not exist or does not allow
//! direct gets answers `503 No Responders`.

use bytes::Bytes;
use jetway_protocols::nats::HeaderMap;
use jetway_storage::{StoredMessage, SubjectFilter};

use super::messages::{lookup, GetRequest};
use super::ApiResponse;
use crate::jetstream::account::JsAccount;
use crate::jetstream::json::{parse_time, time_text};
use crate::jetstream::stream::Stream;

/// Most results a multi-last get returns (nats-server's limit).
const MAX_RESULTS: usize = 1024;
/// Most messages one batched get sends: responses are built whole, so they are bounded; a
/// client pages on with the `Nats-Last-Sequence` and `Nats-Num-Pending` of the closing status.
const MAX_BATCH: usize = 1024;
/// Most bytes one batched get sends when the request sets no (or a larger) `max_bytes`.
const MAX_BATCH_BYTES: u64 = 8 * 1024 * 1024;

/// A status-only reply.
fn status(code: u16, text: &str, headers: &[(&str, String)]) -> ApiResponse {
    let mut h = HeaderMap::with_status(code, Some(text));
    for (name, value) in headers {
        h.append(*name, value.clone());
    }
    ApiResponse::raw(Some(h.encode()), Bytes::new(), code >= 400)
}

/// The headers and payload of one message: stream headers first, batch headers next, then
/// the message's own.
fn direct_message(
    stream: &Stream,
    m: StoredMessage,
    no_hdr: bool,
    batch: &[(&str, String)],
) -> (Bytes, Bytes) {
    let mut h = HeaderMap::new();
    h.append("Nats-Stream", stream.name.clone());
    h.append("Nats-Subject", m.subject.to_string());
    h.append("Nats-Sequence", m.seq.to_string());
    h.append("Nats-Time-Stamp", time_text(m.timestamp));
    for (name, value) in batch {
        h.append(*name, value.clone());
    }
    if !no_hdr {
        if let Some(original) = m.headers.as_deref().and_then(|raw| HeaderMap::decode(raw).ok()) {
            for (name, value) in original.iter() {
                h.append(name, value);
            }
        }
    }
    (h.encode(), m.payload)
}

/// Several messages in one response: the first is the response itself, the rest follow.
fn many(messages: Vec<(Bytes, Bytes)>, eob: ApiResponse) -> ApiResponse {
    let mut messages = messages.into_iter();
    let Some((headers, body)) = messages.next() else { return eob };
    let mut response = ApiResponse::raw(Some(headers), body, false);
    response.then = messages.map(|(h, b)| (Some(h), b)).collect();
    response.then.push((eob.headers, eob.body));
    response
}

pub fn get(account: &JsAccount, name: &str, subject: Option<&str>, body: &[u8]) -> ApiResponse {
    let Ok(stream) = account.stream(name) else { return status(503, "No Responders", &[]) };
    if !stream.config().allow_direct {
        return status(503, "No Responders", &[]);
    }
    let req = match subject {
        Some(s) => GetRequest { last_by_subj: Some(s.to_string()), ..GetRequest::default() },
        None => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return status(408, "Empty Request", &[]);
            }
            match serde_json::from_slice::<GetRequest>(body) {
                Ok(r) => r,
                Err(_) => return status(408, "Malformed Request", &[]),
            }
        }
    };
    let conflicting = (req.seq > 0 && req.last_by_subj.is_some())
        || (req.start_time.is_some() && (req.seq > 0 || req.last_by_subj.is_some()))
        || (req.batch > 0 && req.last_by_subj.is_some())
        || (!req.multi_last.is_empty()
            && (req.seq > 0
                || req.last_by_subj.is_some()
                || req.next_by_subj.is_some()
                || req.start_time.is_some()))
        || (req.up_to_seq > 0 && req.up_to_time.is_some())
        || req.batch < 0
        || req.max_bytes < 0;
    if conflicting {
        return status(408, "Bad Request", &[]);
    }
    if !req.multi_last.is_empty() {
        return multi_last(&stream, &req);
    }
    if req.batch > 0 {
        return batch(&stream, &req);
    }
    match lookup(&stream, &req) {
        Ok(m) => {
            let (headers, body) = direct_message(&stream, m, req.no_hdr, &[]);
            ApiResponse::raw(Some(headers), body, false)
        }
        Err(_) => status(404, "Message Not Found", &[]),
    }
}

/// `batch` messages from the start position.
fn batch(stream: &Stream, req: &GetRequest) -> ApiResponse {
    let filter = req.next_by_subj.as_deref().map_or_else(SubjectFilter::all, SubjectFilter::one);
    let mut next = match req.start_time.as_deref() {
        Some(t) => match parse_time(t) {
            Some(ts) => stream.first_seq_at(ts),
            None => return status(408, "Bad Request", &[]),
        },
        None => req.seq.max(1),
    };
    let max_bytes = match u64::try_from(req.max_bytes).unwrap_or(0) {
        0 => MAX_BATCH_BYTES,
        asked => asked.min(MAX_BATCH_BYTES),
    };
    let max_msgs = usize::try_from(req.batch).unwrap_or(0).min(MAX_BATCH);
    let mut sent_bytes = 0u64;
    let mut last_sent = 0u64;
    let mut pending = 0u64;
    let mut messages = Vec::new();
    while messages.len() < max_msgs {
        let Ok(m) = stream.store.load_next(&filter, next) else { break };
        let size = (m.subject.len() + m.headers.as_ref().map_or(0, Bytes::len) + m.payload.len()) as u64;
        if !messages.is_empty() && sent_bytes + size > max_bytes {
            break;
        }
        sent_bytes += size;
        next = m.seq + 1;
        pending = stream.store.num_pending(&filter, next);
        let seq = m.seq;
        let batch_headers =
            [("Nats-Num-Pending", pending.to_string()), ("Nats-Last-Sequence", last_sent.to_string())];
        messages.push(direct_message(stream, m, req.no_hdr, &batch_headers));
        last_sent = seq;
    }
    if messages.is_empty() {
        return status(404, "Message Not Found", &[]);
    }
    let eob = status(
        204,
        "EOB",
        &[("Nats-Num-Pending", pending.to_string()), ("Nats-Last-Sequence", last_sent.to_string())],
    );
    many(messages, eob)
}

/// The last message of every subject matching `multi_last`, at or below the `up_to` point.
fn multi_last(stream: &Stream, req: &GetRequest) -> ApiResponse {
    let state = stream.store.state();
    let up_to = match (req.up_to_seq, req.up_to_time.as_deref()) {
        (seq, _) if seq > 0 => seq.min(state.last_seq),
        (_, Some(t)) => match parse_time(t) {
            // The last sequence stored before the time.
            Some(ts) => stream.first_seq_at(ts.saturating_add(1)).saturating_sub(1),
            None => return status(408, "Bad Request", &[]),
        },
        _ => state.last_seq,
    };
    let mut seqs = Vec::new();
    for filter in &req.multi_last {
        for (subject, ss) in stream.store.subjects_state(filter) {
            if ss.first > up_to {
                continue;
            }
            let last = if ss.last <= up_to {
                Some(ss.last)
            } else {
                last_at_or_below(stream, &subject, ss.first, up_to)
            };
            seqs.extend(last);
            if seqs.len() > MAX_RESULTS {
                return status(413, "Too Many Results", &[]);
            }
        }
    }
    seqs.sort_unstable();
    seqs.dedup();
    if seqs.is_empty() {
        return status(404, "No Results", &[]);
    }
    let limit = if req.batch > 0 { usize::try_from(req.batch).unwrap_or(usize::MAX) } else { usize::MAX };
    let total = seqs.len();
    let mut messages = Vec::new();
    let mut last_sent = 0;
    for (i, seq) in seqs.into_iter().take(limit).enumerate() {
        let Ok(m) = stream.store.load(seq) else { continue };
        let pending = (total - i - 1) as u64;
        let batch_headers =
            [("Nats-Num-Pending", pending.to_string()), ("Nats-Last-Sequence", last_sent.to_string())];
        messages.push(direct_message(stream, m, req.no_hdr, &batch_headers));
        last_sent = seq;
    }
    let pending = total.saturating_sub(limit) as u64;
    let eob = status(
        204,
        "EOB",
        &[
            ("Nats-Num-Pending", pending.to_string()),
            ("Nats-Last-Sequence", last_sent.to_string()),
            ("Nats-UpTo-Sequence", up_to.to_string()),
        ],
    );
    many(messages, eob)
}

/// The newest message on `subject` at or below `up_to` (walking forward from `first`).
fn last_at_or_below(stream: &Stream, subject: &str, first: u64, up_to: u64) -> Option<u64> {
    let mut found = None;
    let mut next = first;
    let filter = SubjectFilter::one(subject);
    while let Ok(m) = stream.store.load_next(&filter, next) {
        if m.seq > up_to {
            break;
        }
        found = Some(m.seq);
        next = m.seq + 1;
    }
    found
}
