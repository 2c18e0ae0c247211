//! The write path of a stream: nats-server's checks in its order (sealed, expected stream,
//! TTL, expected last subject sequence, expected last sequence, dedup, expected last msg id,
//! rollup permission, sizes, storage limits), then the append and, once durable, the publish acknowledgement.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use jetway_protocols::nats::headers::find_raw;
use jetway_storage::{NewMessage, PurgeOptions, StoreError};
use jetway_subject::Transform;

use super::config::RetentionPolicy;
use super::{InflightGuard, Stream, MAX_INFLIGHT};
use crate::jetstream::errors::ApiError;
use crate::router::{deliver, Message};

/// Largest header block a stream accepts (nats-server: 64 KiB).
const MAX_HEADER_SIZE: usize = 65_535;

/// What receives the outcome of a store: `Ok((seq, duplicate))` or the error.
pub(crate) type Done = Box<dyn FnOnce(Result<(u64, bool), ApiError>) + Send>;

/// What became of the completion of the append this thread is doing (see [`append_here`]).
enum Parked {
    /// Nothing yet: the store keeps the completion (the usual case for a file store).
    Nothing,
    /// The store completed inside `append`: the outcome waits for the caller.
    Outcome(Done, Result<(u64, bool), ApiError>),
    /// The store dropped the completion without calling it (it refused the append).
    Unfired(Done),
}

thread_local! {
    /// The append in progress on this thread: its number, and what became of its completion.
    ///
    /// A memory store completes inside `append`, while the ingest lock is held: the outcome is
    /// parked here and delivered once the lock is released, because delivering it (publishing
    /// an ack) may come back into this very stream. A completion fired on a storage thread, or
    /// later on this one, finds no append of its number here and delivers at once: the common
    /// case costs no shared slot and no lock.
    static APPENDING: std::cell::RefCell<Option<(u64, Parked)>> = const { std::cell::RefCell::new(None) };
    /// The number of the next append on this thread.
    static NEXT_APPEND: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The `done` of one append, carried by the store's completion.
struct PendingAck {
    /// The number of the append on its thread.
    append: u64,
    done: Option<Done>,
    _inflight: InflightGuard,
}

impl PendingAck {
    fn complete(mut self, outcome: Result<(u64, bool), ApiError>) {
        let Some(done) = self.done.take() else { return };
        let append = self.append;
        // Released before delivering: the ack may come back into a stream on this thread.
        drop(self);
        if let Some(Parked::Outcome(done, outcome)) = park(append, Parked::Outcome(done, outcome)) {
            done(outcome);
        }
    }
}

impl Drop for PendingAck {
    /// A completion dropped unfired during its own append: the caller reports the refusal.
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            park(self.append, Parked::Unfired(done));
        }
    }
}

/// Parks `what` for append `append` if that append is in progress on this thread; else hands
/// it back.
fn park(append: u64, what: Parked) -> Option<Parked> {
    let mut what = Some(what);
    let _ = APPENDING.try_with(|a| {
        if let Ok(mut a) = a.try_borrow_mut() {
            if let Some((n, parked @ Parked::Nothing)) = &mut *a {
                if *n == append {
                    *parked = what.take().unwrap_or(Parked::Nothing);
                }
            }
        }
    });
    what
}

/// Runs `append` as this thread's append in progress, with the number its completion gets;
/// returns its result and what became of the completion meanwhile. Nests (an ack delivered
/// into a stream appends again).
fn append_here<T>(append: impl FnOnce(u64) -> T) -> (T, Parked) {
    let number = NEXT_APPEND.with(|n| {
        let number = n.get();
        n.set(number.wrapping_add(1));
        number
    });
    let outer = APPENDING.with(|a| a.borrow_mut().replace((number, Parked::Nothing)));
    let result = append(number);
    let mine = APPENDING.with(|a| std::mem::replace(&mut *a.borrow_mut(), outer));
    (result, mine.map_or(Parked::Nothing, |(_, parked)| parked))
}

/// Where a publish acknowledgement goes.
struct AckTarget {
    reply: String,
    fields: Arc<AckFields>,
}

/// The JSON fields naming a stream in its pub acks, encoded once per stream: a pub ack is
/// then one buffer and a number, not a JSON map built per message.
pub(crate) struct AckFields {
    /// `"stream":"<name>"`
    stream: Box<[u8]>,
    /// `,"domain":"<domain>"` with a domain, else empty (error acks leave it out).
    domain: Box<[u8]>,
}

impl AckFields {
    pub(crate) fn new(stream: &str, domain: Option<&str>) -> AckFields {
        let field = |name: &str, value: &str| {
            let mut out = Vec::with_capacity(name.len() + value.len() + 8);
            out.extend_from_slice(b"\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            // Writing JSON into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, value);
            out
        };
        let domain = domain.map(|d| [b",".as_slice(), &field("domain", d)].concat()).unwrap_or_default();
        AckFields { stream: field("stream", stream).into(), domain: domain.into() }
    }
}

fn header<'a>(headers: Option<&'a Bytes>, name: &str) -> Option<&'a str> {
    headers.and_then(|h| find_raw(h, name)).and_then(|v| std::str::from_utf8(v).ok())
}

/// `Nats-TTL`: a Go duration of at least 1 s, whole seconds, or `never`.
fn parse_ttl(text: &str) -> Result<Option<Duration>, ApiError> {
    if text.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    let parsed = match text.parse::<i64>() {
        Ok(secs) if secs > 0 => Duration::from_secs(secs as u64),
        Ok(-1) => return Ok(None),
        Ok(_) => return Err(ApiError::invalid_ttl()),
        Err(_) => crate::config::units::parse_duration(text).map_err(|_| ApiError::invalid_ttl())?,
    };
    if parsed < Duration::from_secs(1) {
        return Err(ApiError::invalid_ttl());
    }
    Ok(Some(parsed))
}

impl Stream {
    /// Stores a published message and acknowledges it once durable.
    pub(crate) fn ingest(&self, msg: &Message<'_>) {
        let mut done: Option<Done> = msg.reply.filter(|_| !self.config.read().no_ack).map(|r| {
            let target = AckTarget { reply: r.to_string(), fields: Arc::clone(&self.ack_fields) };
            let account = self.account.clone();
            let stats = self.stats.clone();
            Box::new(move |result: Result<(u64, bool), ApiError>| {
                let payload = Bytes::from(ack_body(&target, result));
                deliver::publish_reply(
                    &account,
                    &stats,
                    &Message::internal(&target.reply, None, None, &payload),
                );
            }) as Done
        });
        self.ingest_inner(msg, &mut done);
    }

    /// Stores a message for an internal writer (the MQTT gateway): `done` gets the outcome,
    /// `Ok((seq, duplicate))` once the message is durable (at once for duplicates and for
    /// interest streams nobody is interested in: `seq` is then used but nothing is stored),
    /// or the error. The append is ordered at call time; `done` runs on a storage thread.
    pub(crate) fn ingest_with(&self, msg: &Message<'_>, done: Done) {
        self.ingest_inner(msg, &mut Some(done));
    }

    fn ingest_inner(&self, msg: &Message<'_>, done: &mut Option<Done>) {
        let result = self.try_ingest(msg, done);
        if let Some(done) = done.take() {
            match result {
                // Duplicates and skipped interest messages are acknowledged at once.
                Ok(Some(seq_and_dup)) => done(Ok(seq_and_dup)),
                Err(e) => done(Err(e)),
                // Unreachable: the completion took `done`.
                Ok(None) => {}
            }
        }
    }

    /// Stores a message copied from a source stream (no reply, no ack); `Err` when refused.
    pub(crate) fn ingest_sourced(
        &self,
        subject: &str,
        headers: &Bytes,
        payload: &Bytes,
    ) -> Result<(), ApiError> {
        // No completion: the store writes it lazily (its position is the message itself).
        self.try_ingest(&Message::internal(subject, None, Some(headers), payload), &mut None).map(|_| ())
    }

    /// Returns `Some((seq, duplicate))` when the ack is to be sent now, `None` when the store's
    /// completion will send it.
    fn try_ingest(
        &self,
        msg: &Message<'_>,
        done: &mut Option<Done>,
    ) -> Result<Option<(u64, bool)>, ApiError> {
        // Held for the whole write path: updates are rare, publishes are not.
        let config = self.config.read();
        // The stream's subject transform maps what arrives before anything else looks at it
        // (as nats-server's input transform: a subject its source does not match is kept).
        // Its lock is taken only by streams that have one.
        let mapped = match config.subject_transform {
            Some(_) => match &self.transforms.read().input {
                Some(t) if t.matches(msg.subject) => Some(t.apply(msg.subject)),
                _ => None,
            },
            None => None,
        };
        let mapped_msg;
        let msg = match &mapped {
            Some(subject) => {
                mapped_msg = Message { subject, ..*msg };
                &mapped_msg
            }
            None => msg,
        };
        if config.sealed {
            return Err(ApiError::stream_sealed());
        }
        let headers = msg.headers;
        if let Some(expected) = header(headers, "Nats-Expected-Stream") {
            if expected != self.name {
                return Err(ApiError::expected_stream_mismatch());
            }
        }
        let mut ttl = match header(headers, "Nats-TTL") {
            Some(_) if !config.allow_msg_ttl => return Err(ApiError::ttl_disabled()),
            Some(text) => parse_ttl(text)?,
            None => None,
        };
        // As nats-server: with delete markers, a message lives at least as long as a marker
        // (or the marker left by an older message of its subject could be missed), unless the
        // subject keeps one message anyway; its header then says so, in seconds.
        let mut raised_headers = None;
        if let (Some(given), Some(floor)) = (ttl, config.delete_marker_ttl()) {
            if given < floor && config.max_msgs_per_subject != 1 {
                ttl = Some(floor);
                let mut map = headers
                    .and_then(|raw| jetway_protocols::nats::HeaderMap::decode(raw).ok())
                    .unwrap_or_default();
                map.insert("Nats-TTL", floor.as_secs().to_string());
                raised_headers = Some(map.encode());
            }
        }
        if headers.is_some_and(|h| h.len() > MAX_HEADER_SIZE) {
            return Err(ApiError::header_too_large());
        }
        if config.max_msg_size > 0 && msg.size() > config.max_msg_size as usize {
            return Err(ApiError::message_too_large());
        }
        let rollup = header(headers, "Nats-Rollup");
        if let Some(kind) = rollup {
            if !config.allow_rollup_hdrs || config.deny_purge {
                return Err(ApiError::rollup_failed("rollup not permitted"));
            }
            if kind != "sub" && kind != "all" {
                return Err(ApiError::rollup_failed(format!("rollup value invalid: {kind:?}")));
            }
        }
        if self.inflight.load(Ordering::Acquire) >= MAX_INFLIGHT {
            return Err(ApiError::too_many_requests());
        }

        let mut ingest = self.ingest.lock();
        if let Some(text) = header(headers, "Nats-Expected-Last-Subject-Sequence") {
            // Unreadable numbers never match (nats-server reads them as the largest u64).
            let expected: u64 = text.parse().unwrap_or(u64::MAX);
            let subject =
                header(headers, "Nats-Expected-Last-Subject-Sequence-Subject").unwrap_or(msg.subject);
            let last = self.store.load_last(subject).map(|m| m.seq).unwrap_or(0);
            if last != expected {
                return Err(ApiError::wrong_last_sequence(last));
            }
        } else if header(headers, "Nats-Expected-Last-Subject-Sequence-Subject").is_some() {
            return Err(ApiError::expected_last_subject_seq_missing());
        }
        if let Some(text) = header(headers, "Nats-Expected-Last-Sequence") {
            let expected: u64 = text.parse().unwrap_or(u64::MAX);
            let last_seq = self.store.state().last_seq;
            if last_seq != expected {
                return Err(ApiError::wrong_last_sequence(last_seq));
            }
        }
        let now = crate::time::now_nanos();
        let msg_id = header(headers, "Nats-Msg-Id").filter(|id| !id.is_empty());
        if let Some(id) = msg_id {
            if let Some(seq) = ingest.dedup.check(id, now, config.duplicate_window) {
                return Ok(Some((seq, true)));
            }
        }
        if let Some(expected) = header(headers, "Nats-Expected-Last-Msg-Id") {
            let last = ingest.last_msg_id.as_deref().unwrap_or("");
            if expected != last {
                return Err(ApiError::wrong_last_msg_id(last));
            }
        }

        // Storage limits (server, then account): two atomic loads, see `jetstream::usage`.
        let size_model = match config.storage {
            super::config::StorageType::Memory => jetway_storage::SizeModel::Memory,
            super::config::StorageType::File => jetway_storage::SizeModel::File,
        };
        let size = jetway_storage::stored_size_in(
            size_model,
            msg.subject,
            headers.map(|h| &h[..]),
            msg.payload.len(),
        );
        self.quota.admit(size)?;

        // Interest retention with nobody interested: the sequence is used, nothing is stored.
        if config.retention == RetentionPolicy::Interest && !self.has_interest(msg.subject) {
            let seq = self.store.state().last_seq + 1;
            self.store.skip_to(seq).map_err(store_error)?;
            if let Some(id) = msg_id {
                ingest.dedup.record(id, seq, now);
            }
            ingest.last_msg_id = msg_id.map(str::to_string);
            drop(ingest);
            self.notify_stored_seq(seq);
            return Ok(Some((seq, false)));
        }

        self.inflight.fetch_add(1, Ordering::AcqRel);
        let inflight = InflightGuard(self.inflight.clone());
        // Republished copies say which sequence preceded this one on its subject.
        let previous_on_subject = match &config.republish {
            Some(_) => self.store.load_last(msg.subject).map(|m| m.seq).unwrap_or(0),
            None => 0,
        };
        let new = NewMessage {
            subject: msg.subject,
            headers: raised_headers.or_else(|| headers.cloned()),
            payload: msg.payload.clone(),
            ttl,
            received: Some(now),
        };
        let waiting = done.take();
        let (appended, parked) = append_here(|append| {
            let completion = waiting.map(|done| {
                let pending = PendingAck { append, done: Some(done), _inflight: inflight };
                Box::new(move |result: Result<u64, StoreError>| {
                    pending.complete(result.map(|seq| (seq, false)).map_err(store_error));
                }) as jetway_storage::Completion
            });
            self.store.append(new, completion)
        });
        let seq = match appended {
            Ok(seq) => seq,
            Err(e) => {
                // Refused: the caller reports the error through `done`.
                *done = match parked {
                    Parked::Outcome(d, _) | Parked::Unfired(d) => Some(d),
                    Parked::Nothing => None,
                };
                return Err(store_error(e));
            }
        };
        if let Some(id) = msg_id {
            ingest.dedup.record(id, seq, now);
        }
        // The last message's id, none when it had none (as nats-server's `lmsgId`).
        ingest.last_msg_id = msg_id.map(str::to_string);
        if let Some(kind) = rollup {
            let filter = (kind == "sub").then(|| msg.subject.to_string());
            let purged = self.store.purge(&PurgeOptions { filter, upto_seq: Some(seq), keep: None });
            if let Err(e) = purged {
                tracing::warn!(stream = %self.name, "rollup purge failed: {e}");
            }
        }
        drop(ingest);
        let republish = config.republish.clone();
        // No lock is held from here on: what we publish may come back into this stream.
        drop(config);
        self.notify_appended(seq, msg.subject);
        if let Some(republish) = &republish {
            self.republish(republish, msg, seq, previous_on_subject, now);
        }
        if let Parked::Outcome(done, outcome) = parked {
            done(outcome);
        }
        Ok(None)
    }

    /// Whether a consumer's filter takes `subject` (what interest retention keeps).
    pub(crate) fn has_interest(&self, subject: &str) -> bool {
        self.interest.any(subject)
    }

    fn republish(&self, rp: &super::config::RePublish, msg: &Message<'_>, seq: u64, previous: u64, now: i64) {
        let dest = match &self.transforms.read().republish {
            Some(t) if t.matches(msg.subject) => t.apply(msg.subject),
            _ => return,
        };
        let mut h = match msg.headers.and_then(|raw| jetway_protocols::nats::HeaderMap::decode(raw).ok()) {
            Some(h) => h,
            None => jetway_protocols::nats::HeaderMap::new(),
        };
        h.insert("Nats-Stream", self.name.clone());
        h.insert("Nats-Subject", msg.subject);
        h.insert("Nats-Sequence", seq.to_string());
        h.insert("Nats-Time-Stamp", crate::time::format_nanos(now));
        h.insert("Nats-Last-Sequence", previous.to_string());
        let empty = Bytes::new();
        let payload = if rp.headers_only {
            h.insert("Nats-Msg-Size", msg.payload.len().to_string());
            &empty
        } else {
            msg.payload
        };
        let headers = h.encode();
        deliver::publish(
            &self.account,
            &self.stats,
            &Message::internal(&dest, None, Some(&headers), payload),
        );
    }
}

/// A stream's subject mappings, compiled from its config (which was checked: a mapping that
/// fails to compile here is left out).
#[derive(Default)]
pub(crate) struct Transforms {
    /// `subject_transform`: applied to every message the stream stores, as it arrives.
    input: Option<Transform>,
    /// `republish`: where a stored message is published again.
    republish: Option<Transform>,
}

impl Transforms {
    pub(crate) fn of(config: &super::config::StreamConfig) -> Transforms {
        Transforms {
            input: config
                .subject_transform
                .as_ref()
                .filter(|t| !t.dest.is_empty())
                .and_then(|t| Transform::new(&t.src, &t.dest).ok()),
            republish: config.republish.as_ref().and_then(|rp| Transform::new(&rp.src, &rp.dest).ok()),
        }
    }
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::MaxMsgSize => ApiError::message_too_large(),
        other => ApiError::store_failed(other),
    }
}

/// `{"stream":"S","domain":"D","seq":N,"duplicate":true}` (domain and duplicate when they
/// apply; nats-server's field order), or the error form `{"error":{..},"stream":"S","seq":0}`.
fn ack_body(target: &AckTarget, result: Result<(u64, bool), ApiError>) -> Vec<u8> {
    let fields = &target.fields;
    let mut body = Vec::with_capacity(fields.stream.len() + fields.domain.len() + 48);
    match result {
        Ok((seq, duplicate)) => {
            body.push(b'{');
            body.extend_from_slice(&fields.stream);
            body.extend_from_slice(&fields.domain);
            body.extend_from_slice(b",\"seq\":");
            body.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
            if duplicate {
                body.extend_from_slice(b",\"duplicate\":true");
            }
        }
        Err(e) => {
            body.extend_from_slice(b"{\"error\":");
            // Writing JSON into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut body, &e);
            body.push(b',');
            body.extend_from_slice(&fields.stream);
            body.extend_from_slice(b",\"seq\":0");
        }
    }
    body.push(b'}');
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    type Seen = Arc<Mutex<Vec<Result<(u64, bool), ApiError>>>>;

    /// A pending ack recording what it delivers, and the in-flight count it holds.
    fn pending(append: u64, inflight: &Arc<AtomicUsize>) -> (PendingAck, Seen) {
        let seen: Seen = Arc::default();
        let sink = seen.clone();
        inflight.fetch_add(1, Ordering::AcqRel);
        let done: Done = Box::new(move |outcome| sink.lock().unwrap().push(outcome));
        (PendingAck { append, done: Some(done), _inflight: InflightGuard(inflight.clone()) }, seen)
    }

    #[test]
    fn an_ack_completed_inside_its_append_waits_for_the_caller() {
        let inflight = Arc::new(AtomicUsize::new(0));
        let mut seen = None;
        let ((), parked) = append_here(|n| {
            let (ack, s) = pending(n, &inflight);
            ack.complete(Ok((5, false)));
            seen = Some(s);
        });
        let seen = seen.unwrap();
        assert!(seen.lock().unwrap().is_empty(), "not delivered while appending");
        let Parked::Outcome(done, outcome) = parked else { panic!("the outcome is parked") };
        assert_eq!(inflight.load(Ordering::Acquire), 0);
        done(outcome);
        assert!(matches!(seen.lock().unwrap().as_slice(), [Ok((5, false))]));
    }

    #[test]
    fn an_ack_completed_later_or_elsewhere_is_delivered_at_once() {
        let inflight = Arc::new(AtomicUsize::new(0));
        let mut kept = None;
        let ((), parked) = append_here(|n| kept = Some(pending(n, &inflight)));
        assert!(matches!(parked, Parked::Nothing));
        let (ack, seen) = kept.unwrap();
        // Fired during a later append on this thread: not that append's, so not parked.
        let ((), later) = append_here(|_| ack.complete(Ok((9, true))));
        assert!(matches!(later, Parked::Nothing));
        assert!(matches!(seen.lock().unwrap().as_slice(), [Ok((9, true))]));
        // And from another thread.
        let mut kept = None;
        let _ = append_here(|n| kept = Some(pending(n, &inflight)));
        let (ack, seen) = kept.unwrap();
        std::thread::spawn(move || ack.complete(Ok((10, false)))).join().unwrap();
        assert!(matches!(seen.lock().unwrap().as_slice(), [Ok((10, false))]));
        assert_eq!(inflight.load(Ordering::Acquire), 0);
    }

    #[test]
    fn an_ack_dropped_unfired_in_its_append_returns_to_the_caller_and_nesting_keeps_both() {
        let inflight = Arc::new(AtomicUsize::new(0));
        let mut inner = None;
        let ((), outer) = append_here(|n| {
            let (outer_ack, _) = pending(n, &inflight);
            // An append nested in this one (an ack delivered into a stream) completes its own.
            let ((), parked) = append_here(|m| pending(m, &inflight).0.complete(Ok((2, false))));
            inner = parked.into();
            drop(outer_ack);
        });
        let inner = inner.unwrap();
        assert!(matches!(inner, Parked::Outcome(_, Ok((2, false)))));
        assert!(matches!(outer, Parked::Unfired(_)), "the refused append's done comes back");
        assert_eq!(inflight.load(Ordering::Acquire), 0);
    }

    fn ack(stream: &str, domain: Option<&str>, result: Result<(u64, bool), ApiError>) -> serde_json::Value {
        let target = AckTarget { reply: String::new(), fields: Arc::new(AckFields::new(stream, domain)) };
        let body = ack_body(&target, result);
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)))
    }

    #[test]
    fn pub_acks_are_the_json_clients_parse() {
        assert_eq!(ack("S", None, Ok((7, false))), serde_json::json!({"stream": "S", "seq": 7}));
        assert_eq!(
            ack("S", Some("hub"), Ok((u64::MAX, true))),
            serde_json::json!({"stream": "S", "domain": "hub", "seq": u64::MAX, "duplicate": true})
        );
        assert_eq!(ack("we\"ird\\", None, Ok((1, false)))["stream"], "we\"ird\\");
        let error = ApiError::invalid_ttl();
        let expected =
            serde_json::json!({"error": serde_json::to_value(&error).unwrap(), "stream": "S", "seq": 0});
        assert_eq!(ack("S", Some("hub"), Err(error)), expected);
    }

    #[test]
    fn ttl_forms() {
        assert_eq!(parse_ttl("30s").ok().flatten(), Some(Duration::from_secs(30)));
        assert_eq!(parse_ttl("5").ok().flatten(), Some(Duration::from_secs(5)));
        assert_eq!(parse_ttl("never").ok(), Some(None));
        assert!(parse_ttl("500ms").is_err());
        assert!(parse_ttl("x").is_err());
    }
}
