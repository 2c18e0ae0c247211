//! `$JS.API.STREAM.SNAPSHOT.<S>` and `$JS.API.STREAM.RESTORE.<S>`: a stream, its messages and
//! its consumers as one byte stream, moved in chunks over NATS.
//!
//! **Snapshot.** The request `{deliver_subject, no_consumers, chunk_size, window_size}` is
//! answered with `{config, state}`. Then the snapshot goes to `deliver_subject` in chunks of
//! `chunk_size` (default 128 KiB, clamped to 1 KiB–1 MiB), each with the reply subject
//! `$JS.SNAPSHOT.ACK.<S>.<id>.<chunk length>.<chunk index>`; the client acks each chunk with
//! an empty message there. At most `window_size / chunk_size` chunks are unacknowledged
//! (window default 8 MiB, clamped to 1 KiB–32 MiB); with no ack for [`ACK_TIMEOUT`] the
//! snapshot ends with `408 No Flow Response`. The end is an empty message with the header
//! `NATS/1.0 204`.
//!
//! **Restore.** The request `{config, state}` is answered with `{deliver_subject}`. The client
//! publishes the chunks there as requests (each answered with an empty message) and then an
//! empty message, whose reply gets the final `stream_create`-style response (StreamInfo or an
//! error). A restore with no chunk for [`RESTORE_IDLE`] is abandoned.
//!
//! **Format** (Jetway's own; nats-server's tar + S2 archives are not read or written):
//!
//! ```text
//! magic   "JWSTREAM"                    8 bytes
//! length  u32 little-endian             length of the JSON header
//! header  JSON {config, created, consumers: [{name, created, config, state}]}
//! store   the stream store's snapshot byte stream (jetway_storage::snapshot), to the end
//! ```
//!
//! A consumer `state` is `{delivered: {consumer_seq, stream_seq}, ack_floor: {…},
//! pending: [[stream_seq, consumer_seq, timestamp_ns]…], redelivered: [[stream_seq, count]…]}`.
//! With `no_consumers` the list is empty. The snapshot is built in memory before it is sent,
//! and a restore buffers every chunk before creating the stream (bounded by
//! [`MAX_RESTORE_BYTES`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use jetway_protocols::nats::HeaderMap;
use jetway_storage::{ConsumerState, PendingAck, SequencePair};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Semaphore;

use super::ApiResponse;
use crate::jetstream::account::JsAccount;
use crate::jetstream::consumer::config::ConsumerConfig;
use crate::jetstream::errors::ApiError;
use crate::jetstream::json::{decode_request, response};
use crate::jetstream::stream::config::StreamConfig;
use crate::jetstream::stream::info::StreamStateJson;
use crate::router::{deliver, InternalHandler, Message, Sink, Subscription};

const MAGIC: &[u8; 8] = b"JWSTREAM";
/// How long a snapshot waits for a chunk ack.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a restore waits for the next chunk.
const RESTORE_IDLE: Duration = Duration::from_secs(30);
/// Largest snapshot a restore accepts.
const MAX_RESTORE_BYTES: usize = 4 << 30;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SnapshotRequest {
    deliver_subject: String,
    no_consumers: bool,
    chunk_size: i64,
    window_size: i64,
    jsck: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotHeader {
    config: StreamConfig,
    created: i64,
    consumers: Vec<ConsumerSnapshot>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ConsumerSnapshot {
    name: String,
    created: i64,
    config: ConsumerConfig,
    state: ConsumerStateJson,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PairJson {
    consumer_seq: u64,
    stream_seq: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ConsumerStateJson {
    delivered: PairJson,
    ack_floor: PairJson,
    pending: Vec<(u64, u64, i64)>,
    redelivered: Vec<(u64, u64)>,
}

impl ConsumerStateJson {
    fn from_state(s: &ConsumerState) -> Self {
        let pair = |p: SequencePair| PairJson { consumer_seq: p.consumer_seq, stream_seq: p.stream_seq };
        ConsumerStateJson {
            delivered: pair(s.delivered),
            ack_floor: pair(s.ack_floor),
            pending: s.pending.iter().map(|(sseq, p)| (*sseq, p.consumer_seq, p.timestamp)).collect(),
            redelivered: s.redelivered.iter().map(|(s, n)| (*s, *n)).collect(),
        }
    }

    fn into_state(self) -> ConsumerState {
        let pair = |p: PairJson| SequencePair { consumer_seq: p.consumer_seq, stream_seq: p.stream_seq };
        ConsumerState {
            delivered: pair(self.delivered),
            ack_floor: pair(self.ack_floor),
            pending: self
                .pending
                .into_iter()
                .map(|(sseq, consumer_seq, timestamp)| (sseq, PendingAck { consumer_seq, timestamp }))
                .collect(),
            redelivered: self.redelivered.into_iter().collect(),
        }
    }
}

/// Writes the snapshot of stream `name` (see the module docs for the layout).
fn encode(
    account: &JsAccount,
    name: &str,
    no_consumers: bool,
) -> Result<(Vec<u8>, StreamConfig, StreamStateJson), ApiError> {
    let stream = account.stream(name)?;
    let consumers = if no_consumers {
        Vec::new()
    } else {
        stream
            .consumers
            .read()
            .values()
            .map(|c| ConsumerSnapshot {
                name: c.name.clone(),
                created: c.created,
                config: c.config(),
                state: ConsumerStateJson::from_state(&c.stored_state()),
            })
            .collect()
    };
    let config = stream.config();
    let header = SnapshotHeader { config: config.clone(), created: stream.created, consumers };
    let header = serde_json::to_vec(&header).map_err(ApiError::stream_general)?;
    let mut out = Vec::with_capacity(header.len() + 12);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&u32::try_from(header.len()).map_err(ApiError::stream_general)?.to_le_bytes());
    out.extend_from_slice(&header);
    stream.store.snapshot(&mut out).map_err(ApiError::stream_general)?;
    let state = StreamStateJson::from_state(&stream.store.state(), stream.consumers.read().len());
    Ok((out, config, state))
}

/// Splits a snapshot into its header and the store's byte stream.
fn decode(data: &[u8]) -> Result<(SnapshotHeader, &[u8]), ApiError> {
    let bad = || ApiError::stream_general("restore failed: not a Jetway stream snapshot");
    if data.get(..8) != Some(MAGIC.as_slice()) {
        return Err(bad());
    }
    let len_bytes: [u8; 4] = data.get(8..12).and_then(|b| b.try_into().ok()).ok_or_else(bad)?;
    let end = 12 + u32::from_le_bytes(len_bytes) as usize;
    let header = serde_json::from_slice(data.get(12..end).ok_or_else(bad)?).map_err(|_| bad())?;
    Ok((header, data.get(end..).unwrap_or_default()))
}

pub fn snapshot(account: &Arc<JsAccount>, name: &str, body: &[u8]) -> ApiResponse {
    const KIND: &str = "stream_snapshot";
    let req: SnapshotRequest = match decode_request(body) {
        Ok(r) => r,
        Err(e) => return ApiResponse::error(KIND, &e),
    };
    if req.deliver_subject.is_empty() || jetway_subject::validate_literal(&req.deliver_subject).is_err() {
        return ApiResponse::error(KIND, &ApiError::snapshot_deliver_subject_invalid());
    }
    let (data, config, state) = match encode(account, name, req.no_consumers) {
        Ok(s) => s,
        Err(e) => return ApiResponse::error(KIND, &e),
    };
    let _ = req.jsck;
    let chunk =
        usize::try_from(req.chunk_size).ok().filter(|c| *c > 0).unwrap_or(128 * 1024).clamp(1024, 1 << 20);
    let window =
        usize::try_from(req.window_size).ok().filter(|w| *w > 0).unwrap_or(8 << 20).clamp(1024, 32 << 20);
    let mut reply = ApiResponse::json(response(KIND, &json!({"config": config, "state": state})));
    let sender = ChunkSender {
        account: account.clone(),
        stream: name.to_string(),
        deliver: req.deliver_subject,
        data: Bytes::from(data),
        chunk,
        window_chunks: (window / chunk).max(1),
    };
    let runtime = account.js.runtime.clone();
    reply.after = Some(Box::new(move || {
        runtime.spawn(sender.run());
    }));
    reply
}

/// Sends a snapshot's chunks with at most a window of them unacknowledged.
struct ChunkSender {
    account: Arc<JsAccount>,
    stream: String,
    deliver: String,
    data: Bytes,
    chunk: usize,
    window_chunks: usize,
}

/// Releases a window slot per chunk ack.
struct AckHandler(Arc<Semaphore>);

impl InternalHandler for AckHandler {
    fn deliver(&self, _msg: &Message<'_>) {
        self.0.add_permits(1);
    }
}

impl ChunkSender {
    async fn run(self) {
        let acks = Arc::new(Semaphore::new(self.window_chunks));
        let ack_subject = format!("$JS.SNAPSHOT.ACK.{}.{}", self.stream, crate::jetstream::new_id());
        let sub = Subscription::new(
            format!("{ack_subject}.>").as_str().into(),
            None,
            Sink::Internal(Arc::new(AckHandler(acks.clone()))),
        );
        let account = &self.account.account;
        let stats = &self.account.js.stats;
        account.sublist.insert(sub.clone());
        let mut failure = None;
        for (index, chunk) in self.data.chunks(self.chunk).enumerate() {
            match tokio::time::timeout(ACK_TIMEOUT, acks.acquire()).await {
                Ok(Ok(permit)) => permit.forget(),
                _ => {
                    failure = Some((408, "No Flow Response"));
                    break;
                }
            }
            if account.sublist.matches(&self.deliver).is_empty() {
                failure = Some((408, "No Interest"));
                break;
            }
            let reply = format!("{ack_subject}.{}.{index}", chunk.len());
            let payload = self.data.slice_ref(chunk);
            deliver::publish(account, stats, &Message::internal(&self.deliver, Some(&reply), None, &payload));
        }
        let end = match failure {
            Some((code, text)) => HeaderMap::with_status(code, Some(text)),
            None => HeaderMap::with_status(204, None),
        };
        let empty = Bytes::new();
        deliver::publish(
            account,
            stats,
            &Message::internal(&self.deliver, None, Some(&end.encode()), &empty),
        );
        account.sublist.remove(&sub);
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RestoreRequest {
    config: Option<StreamConfig>,
    state: Option<serde_json::Value>,
}

pub fn restore(account: &Arc<JsAccount>, name: &str, body: &[u8]) -> ApiResponse {
    const KIND: &str = "stream_restore";
    let req: RestoreRequest = match decode_request(body) {
        Ok(r) => r,
        Err(e) => return ApiResponse::error(KIND, &e),
    };
    let _ = req.state;
    if req.config.as_ref().is_some_and(|c| c.name != name) {
        return ApiResponse::error(KIND, &ApiError::stream_name_mismatch());
    }
    if account.stream(name).is_ok() {
        return ApiResponse::error(KIND, &ApiError::stream_name_exists());
    }
    let deliver_subject = format!("$JS.SNAPSHOT.RESTORE.{name}.{}", crate::jetstream::new_id());
    let receiver = Arc::new(RestoreReceiver {
        account: account.clone(),
        stream: name.to_string(),
        state: Mutex::new(RestoreState { data: Vec::new(), last_chunk: Instant::now(), finished: false }),
        subscription: Mutex::new(None),
    });
    let sub = Subscription::new(deliver_subject.as_str().into(), None, Sink::Internal(receiver.clone()));
    account.account.sublist.insert(sub.clone());
    *receiver.subscription.lock() = Some(sub);
    account.js.runtime.spawn(receiver.clone().watch_idle());
    ApiResponse::json(response(KIND, &json!({ "deliver_subject": deliver_subject })))
}

/// Collects the chunks of one restore.
struct RestoreReceiver {
    account: Arc<JsAccount>,
    stream: String,
    state: Mutex<RestoreState>,
    subscription: Mutex<Option<Arc<Subscription>>>,
}

struct RestoreState {
    data: Vec<u8>,
    last_chunk: Instant,
    finished: bool,
}

impl RestoreReceiver {
    fn unsubscribe(&self) {
        if let Some(sub) = self.subscription.lock().take() {
            self.account.account.sublist.remove(&sub);
        }
    }

    fn reply(&self, reply: Option<&str>, body: Bytes) {
        if let Some(reply) = reply {
            deliver::publish(
                &self.account.account,
                &self.account.js.stats,
                &Message::internal(reply, None, None, &body),
            );
        }
    }

    /// Abandons a restore whose client went quiet.
    async fn watch_idle(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let state = self.state.lock();
            if state.finished {
                return;
            }
            if state.last_chunk.elapsed() >= RESTORE_IDLE {
                drop(state);
                tracing::warn!(stream = %self.stream, "restore abandoned: no data for {RESTORE_IDLE:?}");
                self.unsubscribe();
                return;
            }
        }
    }
}

/// The end of an upload: builds stream `name` from what arrived.
fn finish(account: &JsAccount, name: &str, data: &[u8]) -> ApiResponse {
    const KIND: &str = "stream_create";
    let result = decode(data).and_then(|(header, store)| {
        if header.config.name != name {
            return Err(ApiError::stream_name_mismatch());
        }
        let consumers = header
            .consumers
            .into_iter()
            .map(|c| (c.name, c.created, c.config, c.state.into_state()))
            .collect();
        account.restore_stream(header.config, header.created, store, consumers)
    });
    match result.and_then(|stream| stream.info(false, None)) {
        Ok(info) => ApiResponse::json(response(KIND, &info)),
        Err(e) => ApiResponse::error(KIND, &e),
    }
}

impl InternalHandler for RestoreReceiver {
    fn deliver(&self, msg: &Message<'_>) {
        let mut state = self.state.lock();
        if state.finished {
            return;
        }
        state.last_chunk = Instant::now();
        if !msg.payload.is_empty() {
            if state.data.len() + msg.payload.len() > MAX_RESTORE_BYTES {
                state.finished = true;
                drop(state);
                self.unsubscribe();
                let error = ApiError::stream_general("restore failed: snapshot too large");
                self.reply(msg.reply, crate::jetstream::json::error_response("stream_create", &error).into());
                return;
            }
            state.data.extend_from_slice(msg.payload);
            drop(state);
            self.reply(msg.reply, Bytes::new());
            return;
        }
        // An empty message: end of the upload. Creating the stream writes to disk, so it runs
        // off the connection task.
        state.finished = true;
        let data = std::mem::take(&mut state.data);
        drop(state);
        self.unsubscribe();
        let reply = msg.reply.map(str::to_string);
        let account = self.account.clone();
        let stream = self.stream.clone();
        self.account.js.runtime.spawn_blocking(move || {
            let response = finish(&account, &stream, &data);
            // The restore request was counted when it arrived; only its outcome is left.
            if response.error {
                account.js.count_error();
            }
            if let Some(reply) = reply {
                let m = Message::internal(&reply, None, response.headers.as_ref(), &response.body);
                deliver::publish(&account.account, &account.js.stats, &m);
            }
        });
    }
}
