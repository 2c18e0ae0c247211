//! Mirrors and sources: streams fed from other streams of the same account on this server.
//!
//! Each mirror or source is one background task (a *link*). The link resolves its origin by
//! name every round, so the origin may be created after the stream that sources it, or be
//! deleted and come back; while it is missing the link reports an error in `StreamInfo` and
//! looks again every second. A round copies what the origin holds past the link's position
//! (at most `BATCH` messages before yielding), then waits on the origin's last-sequence watch.
//!
//! - A **mirror** copies messages with their origin sequence and timestamp
//!   (`StreamStore::append_raw`); sequences it does not copy (deleted in the origin, or outside
//!   the mirror's filter) become deleted sequences of the mirror, so both agree on sequence
//!   numbers. A mirror has no subjects, so clients cannot publish into it. Its position after a
//!   restart is its own last sequence.
//! - A **source** appends each message through the stream's normal write path (dedup, limits,
//!   retention) with a `Nats-Stream-Source` header:
//!   `<key> <origin seq> <filter> <transform dest> <original subject>`, where `<key>` is the
//!   origin's name, followed by `:<filters>` when the source is filtered (so two filtered
//!   sources of one origin keep separate positions). After a restart each source's position is
//!   recovered from the newest stored message carrying its key. `Nats-Expected-*` headers of
//!   the origin message are dropped: they were checked when it was first stored.
//!
//! External mirrors and sources (other accounts or domains) are refused by the config check.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use jetway_protocols::nats::headers::find_raw;
use jetway_protocols::nats::HeaderMap;
use jetway_storage::{NewMessage, StoreError, StoredMessage};
use jetway_subject::Transform;
use parking_lot::Mutex;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::config::{StreamSource, SubjectTransform};
use super::Stream;
use crate::jetstream::account::JsAccount;
use crate::jetstream::errors::ApiError;

/// The header a sourced message carries.
pub const SOURCE_HEADER: &str = "Nats-Stream-Source";

/// Messages copied per round before the task yields.
const BATCH: usize = 1024;

/// How often a link looks for a missing origin, and re-checks a quiet one.
const RECHECK: Duration = Duration::from_secs(1);

/// The running mirror or sources of one stream.
pub struct Sourcing {
    cancel: CancellationToken,
    mirror: bool,
    links: Vec<Arc<Link>>,
}

/// One mirror or source and what `StreamInfo` shows of it.
struct Link {
    config: StreamSource,
    /// The config's subject transforms, compiled (checked with the stream's config).
    mappings: Vec<Transform>,
    /// First token of the `Nats-Stream-Source` header.
    key: String,
    lag: AtomicU64,
    /// Last time the origin was reached (ns since the epoch; 0: never).
    last_contact: AtomicI64,
    error: Mutex<Option<ApiError>>,
}

/// `StreamSourceInfo`.
#[derive(Debug, Clone, Serialize)]
pub struct StreamSourceInfoJson {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_subject: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subject_transforms: Vec<SubjectTransform>,
    pub lag: u64,
    /// Nanoseconds since the origin was last reached; -1 when never.
    pub active: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

impl Link {
    fn new(config: StreamSource) -> Link {
        let filters = link_filters(&config);
        let key = if filters.is_empty() {
            config.name.clone()
        } else {
            format!("{}:{}", config.name, filters.join(","))
        };
        let mappings =
            config.subject_transforms.iter().filter_map(|t| Transform::new(&t.src, &t.dest).ok()).collect();
        Link {
            config,
            mappings,
            key,
            lag: AtomicU64::new(0),
            last_contact: AtomicI64::new(0),
            error: Mutex::new(None),
        }
    }

    /// The subject a message gets in the sourcing stream: by the first transform matching it.
    fn map_subject(&self, subject: &str) -> String {
        match self.mappings.iter().find(|t| t.matches(subject)) {
            Some(t) => t.apply(subject),
            None => subject.to_string(),
        }
    }

    fn info(&self) -> StreamSourceInfoJson {
        let contact = self.last_contact.load(Ordering::Relaxed);
        StreamSourceInfoJson {
            name: self.config.name.clone(),
            filter_subject: Some(self.config.filter_subject.clone()).filter(|f| !f.is_empty()),
            subject_transforms: self.config.subject_transforms.clone(),
            lag: self.lag.load(Ordering::Relaxed),
            active: if contact == 0 { -1 } else { (crate::time::now_nanos() - contact).max(0) },
            error: self.error.lock().clone(),
        }
    }
}

/// The origin subjects a link takes: the transforms' sources, else the filter, else all.
fn link_filters(config: &StreamSource) -> Vec<String> {
    if !config.subject_transforms.is_empty() {
        return config
            .subject_transforms
            .iter()
            .map(|t| if t.src.is_empty() { ">".into() } else { t.src.clone() })
            .collect();
    }
    if config.filter_subject.is_empty() {
        Vec::new()
    } else {
        vec![config.filter_subject.clone()]
    }
}

/// Splits a `Nats-Stream-Source` value into its key and origin sequence.
fn parse_source_header(value: &[u8]) -> Option<(&str, u64)> {
    let text = std::str::from_utf8(value).ok()?;
    let mut tokens = text.split(' ');
    let key = tokens.next()?;
    let seq = tokens.next()?.parse().ok()?;
    Some((key, seq))
}

impl Stream {
    /// Starts a task per mirror or source in the config (none: nothing to do). `account` is
    /// where origins are looked up by name.
    pub fn start_sourcing(self: &Arc<Self>, account: Weak<JsAccount>, runtime: &tokio::runtime::Handle) {
        self.stop_sourcing();
        let config = self.config();
        let (mirror, configs) = match config.mirror {
            Some(m) => (true, vec![m]),
            None => (false, config.sources),
        };
        if configs.is_empty() {
            return;
        }
        let links: Vec<Arc<Link>> = configs.into_iter().map(|c| Arc::new(Link::new(c))).collect();
        let recovered = if mirror { HashMap::new() } else { self.recover_source_positions(&links) };
        let cancel = CancellationToken::new();
        for link in &links {
            let task = LinkTask {
                target: Arc::downgrade(self),
                account: account.clone(),
                link: link.clone(),
                mirror,
                next: recovered.get(&link.key).copied(),
            };
            runtime.spawn(task.run(cancel.clone()));
        }
        *self.sourcing.lock() = Some(Sourcing { cancel, mirror, links });
    }

    /// Stops the mirror and source tasks.
    pub fn stop_sourcing(&self) {
        if let Some(old) = self.sourcing.lock().take() {
            old.cancel.cancel();
        }
    }

    /// `mirror` and `sources` of `StreamInfo`.
    pub fn source_infos(&self) -> (Option<StreamSourceInfoJson>, Vec<StreamSourceInfoJson>) {
        let sourcing = self.sourcing.lock();
        let Some(s) = sourcing.as_ref() else { return (None, Vec::new()) };
        let infos: Vec<StreamSourceInfoJson> = s.links.iter().map(|l| l.info()).collect();
        if s.mirror {
            (infos.into_iter().next(), Vec::new())
        } else {
            (None, infos)
        }
    }

    /// Next origin sequence of each source, from the newest message carrying its key.
    fn recover_source_positions(&self, links: &[Arc<Link>]) -> HashMap<String, u64> {
        let mut found = HashMap::new();
        let state = self.store.state();
        let mut seq = state.last_seq;
        while seq >= state.first_seq.max(1) && found.len() < links.len() {
            if let Ok(m) = self.store.load(seq) {
                let value = m.headers.as_deref().and_then(|h| find_raw(h, SOURCE_HEADER));
                if let Some((key, origin_seq)) = value.and_then(parse_source_header) {
                    if links.iter().any(|l| l.key == key) && !found.contains_key(key) {
                        found.insert(key.to_string(), origin_seq + 1);
                    }
                }
            }
            seq -= 1;
        }
        found
    }
}

/// The task of one link.
struct LinkTask {
    target: Weak<Stream>,
    account: Weak<JsAccount>,
    link: Arc<Link>,
    mirror: bool,
    /// Next origin sequence to copy; `None` until first decided.
    next: Option<u64>,
}

/// What one round did.
enum Round {
    /// Caught up: wait for the origin.
    Idle,
    /// Stopped at the batch limit: go on at once.
    More,
    /// The target is full or busy: try again shortly.
    Busy,
}

impl LinkTask {
    async fn run(mut self, cancel: CancellationToken) {
        loop {
            let Some(target) = self.target.upgrade() else { return };
            let origin = self.account.upgrade().and_then(|a| a.stream(&self.link.config.name).ok());
            let Some(origin) = origin else {
                *self.link.error.lock() = Some(ApiError::stream_not_found());
                drop(target);
                tokio::select! {
                    _ = tokio::time::sleep(RECHECK) => continue,
                    _ = cancel.cancelled() => return,
                }
            };
            let mut watch = origin.watch_last_seq();
            watch.borrow_and_update();
            let round = self.round(&target, &origin);
            drop((target, origin));
            match round {
                Round::More => {
                    tokio::task::yield_now().await;
                    if cancel.is_cancelled() {
                        return;
                    }
                }
                Round::Busy => tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    _ = cancel.cancelled() => return,
                },
                Round::Idle => tokio::select! {
                    _ = watch.changed() => {}
                    _ = tokio::time::sleep(RECHECK) => {}
                    _ = cancel.cancelled() => return,
                },
            }
        }
    }

    /// Copies what is available past the link's position.
    fn round(&mut self, target: &Stream, origin: &Stream) -> Round {
        let filters = link_filters(&self.link.config);
        let refs: Vec<&str> = filters.iter().map(String::as_str).collect();
        let mut next = match self.next {
            Some(n) => n,
            None => self.start_position(target, origin, &refs),
        };
        let mut round = Round::Idle;
        let mut copied = 0;
        let mut error = None;
        loop {
            if copied >= BATCH {
                round = Round::More;
                break;
            }
            let msg = match origin.store.load_next(&refs, next) {
                Ok(m) => m,
                Err(StoreError::NotFound) => break,
                Err(e) => {
                    error = Some(ApiError::stream_general(e));
                    break;
                }
            };
            let seq = msg.seq;
            let stored = if self.mirror {
                self.store_mirrored(target, msg, &mut next)
            } else {
                self.store_sourced(target, msg)
            };
            match stored {
                Ok(()) => {}
                Err(e) if e.err_code == ApiError::too_many_requests().err_code => {
                    round = Round::Busy;
                    break;
                }
                Err(e) => {
                    // Refused by the target (limits): reported, and the link moves on.
                    tracing::warn!(stream = %target.name, origin = %origin.name, "sourced message {seq} not stored: {e}");
                    error = Some(e);
                }
            }
            next = next.max(seq + 1);
            copied += 1;
        }
        if self.mirror && matches!(round, Round::Idle) {
            // Deleted messages at the origin's tail: the mirror's last sequence follows anyway.
            let last = origin.store.state().last_seq;
            if last >= next && target.store.skip_to(last).is_ok() {
                next = last + 1;
            }
        }
        self.next = Some(next);
        if copied > 0 || self.mirror {
            target.notify_stored();
        }
        let lag = origin.store.num_pending(&refs, next);
        self.link.lag.store(lag, Ordering::Relaxed);
        self.link.last_contact.store(crate::time::now_nanos(), Ordering::Relaxed);
        *self.link.error.lock() = error;
        round
    }

    /// Where a link without a recovered position starts in the origin.
    fn start_position(&self, target: &Stream, origin: &Stream, filters: &[&str]) -> u64 {
        let own_last = target.store.state().last_seq;
        if self.mirror && own_last > 0 {
            return own_last + 1;
        }
        let config = &self.link.config;
        if config.opt_start_seq > 0 {
            return config.opt_start_seq;
        }
        let state = origin.store.state();
        if let Some(start) = config.opt_start_time.as_deref().and_then(crate::jetstream::json::parse_time) {
            return crate::jetstream::consumer::first_at_or_after(origin, filters, start);
        }
        state.first_seq.max(1)
    }

    /// A mirror keeps the origin's sequence and time.
    fn store_mirrored(&self, target: &Stream, msg: StoredMessage, next: &mut u64) -> Result<(), ApiError> {
        let subject = self.link.map_subject(&msg.subject);
        let new = NewMessage {
            subject: &subject,
            headers: msg.headers,
            payload: msg.payload,
            ttl: None,
            received: None,
        };
        match target.store.append_raw(msg.seq, msg.timestamp, new, None) {
            Ok(()) => Ok(()),
            Err(StoreError::InvalidSequence(_)) => {
                // Already there (the mirror is ahead of this position): continue after it.
                *next = (*next).max(target.store.state().last_seq + 1);
                Ok(())
            }
            Err(e) => Err(ApiError::store_failed(e)),
        }
    }

    /// A source appends through the write path, with the `Nats-Stream-Source` header.
    fn store_sourced(&self, target: &Stream, msg: StoredMessage) -> Result<(), ApiError> {
        let config = &self.link.config;
        let subject = self.link.map_subject(&msg.subject);
        let mut headers =
            msg.headers.as_deref().and_then(|raw| HeaderMap::decode(raw).ok()).unwrap_or_default();
        let expected: Vec<String> = headers
            .iter()
            .map(|(name, _)| name)
            .filter(|n| n.starts_with("Nats-Expected-"))
            .map(str::to_string)
            .collect();
        for name in expected {
            headers.remove(&name);
        }
        let filter = link_filters(config).join(",");
        let dest = config.subject_transforms.iter().map(|t| t.dest.as_str()).collect::<Vec<_>>().join(",");
        let value =
            format!("{} {} {} {} {}", self.link.key, msg.seq, or_gt(&filter), or_gt(&dest), msg.subject);
        headers.insert(SOURCE_HEADER, value);
        let headers: Bytes = headers.encode();
        target.ingest_sourced(&subject, &headers, &msg.payload)
    }
}

/// Empty header fields are written as `>` so the value keeps its token positions.
fn or_gt(field: &str) -> &str {
    if field.is_empty() {
        ">"
    } else {
        field
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_value_round_trips_key_and_sequence() {
        assert_eq!(parse_source_header(b"ORDERS 42 > > orders.1"), Some(("ORDERS", 42)));
        assert_eq!(parse_source_header(b"ORDERS:a.* 7 a.* > a.b"), Some(("ORDERS:a.*", 7)));
        assert_eq!(parse_source_header(b"ORDERS x"), None);
    }

    #[test]
    fn filtered_links_get_their_own_key_and_mapped_subjects() {
        let plain = Link::new(StreamSource { name: "O".into(), ..StreamSource::default() });
        assert_eq!(plain.key, "O");
        let transformed = StreamSource {
            name: "O".into(),
            subject_transforms: vec![SubjectTransform {
                src: "a.*".into(),
                dest: "b.{{wildcard(1)}}".into(),
            }],
            ..StreamSource::default()
        };
        let link = Link::new(transformed);
        assert_eq!(link.key, "O:a.*");
        assert_eq!(link.map_subject("a.x"), "b.x");
        assert_eq!(link.map_subject("c.x"), "c.x");
    }
}
