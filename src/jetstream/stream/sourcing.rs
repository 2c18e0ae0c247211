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
//!   retention) with nats-server's `Nats-Stream-Source` header:
//!   `<origin> <origin seq> <filter> <transform dest> <original subject>`, where `<origin>` is
//!   the origin's name (with `:<hash of the API prefix>` for an external one), `<filter>` the
//!   filter or the transforms' sources and `<transform dest>` their destinations (joined by
//!   form feeds; `>` when absent). The origin, filter and destination identify the source (its
//!   [`SourceIdentity`]), so two sources of one origin keep separate positions; after a restart
//!   each source's position is recovered from the newest stored message of its identity.
//!   `Nats-Expected-*` headers of the origin message are dropped: they were checked when it
//!   was first stored.
//!
//! An **external** mirror or source (`external.api`, `external.deliver`) names a stream of
//! another account on this server, reached as nats-server reaches it: the consumer-create
//! request nats-server would send on `<api>.CONSUMER.CREATE.<stream>…` must lead, through the
//! sourcing account's service imports, to `$JS.API` of the account holding the origin (as
//! with nats-server, the account's own domain prefix `$JS.<domain>.API` does not count: it
//! serves clients' requests), and the subject it would deliver on,
//! `<deliver>.S.…` (`.M.` for a mirror), must reach the sourcing account through a stream
//! import from that account. The messages are then read from the origin's store directly,
//! like a local origin's. Only one import hop is followed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use jetway_protocols::nats::headers::find_raw;
use jetway_protocols::nats::HeaderMap;
use jetway_storage::{NewMessage, StoreError, StoredMessage, SubjectFilter};
use jetway_subject::Transform;
use parking_lot::Mutex;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::config::{ExternalStream, StreamSource, SubjectTransform};
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
    /// What the `Nats-Stream-Source` header says of the source.
    identity: SourceIdentity,
    /// The first token of the header Jetway wrote before it wrote nats-server's (the name,
    /// with `:<filters>` when filtered): positions stored that way are still found.
    legacy_key: String,
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
    pub external: Option<ExternalStream>,
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
        let legacy_key = if filters.is_empty() {
            config.name.clone()
        } else {
            format!("{}:{}", config.name, filters.join(","))
        };
        let mappings =
            config.subject_transforms.iter().filter_map(|t| Transform::new(&t.src, &t.dest).ok()).collect();
        Link {
            identity: SourceIdentity::of(&config),
            config,
            mappings,
            legacy_key,
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
            external: self.config.external.clone(),
            filter_subject: Some(self.config.filter_subject.clone()).filter(|f| !f.is_empty()),
            subject_transforms: self.config.subject_transforms.clone(),
            lag: self.lag.load(Ordering::Relaxed),
            active: if contact == 0 { -1 } else { (crate::time::now_nanos() - contact).max(0) },
            error: self.error.lock().clone(),
        }
    }
}

/// Stands for the consumer name in the create subject an external origin is asked on (only
/// whether an import's subject matches it matters).
const CONSUMER_TOKEN: &str = "JS_SRC";

/// The account holding an external origin, and the origin's name there: where the consumer
/// create request nats-server would send for `config` leads, if the subject the consumer
/// would deliver on also comes back to `account`.
fn external_origin(
    account: &Arc<JsAccount>,
    external: &ExternalStream,
    config: &StreamSource,
    mirror: bool,
) -> Option<(Arc<JsAccount>, String)> {
    let create = match link_filters(config).as_slice() {
        [filter] => format!("{}.CONSUMER.CREATE.{}.{CONSUMER_TOKEN}.{filter}", external.api, config.name),
        _ => format!("{}.CONSUMER.CREATE.{}", external.api, config.name),
    }
    .replace("..", ".");
    // Only imports lead anywhere: nats-server's request does not take the account's own
    // domain mapping (`$JS.<domain>.API`), which serves clients.
    let (exporter, served) = crate::account::imports::service_target(&account.account, &create)?;
    let name = served.strip_prefix("$JS.API.CONSUMER.CREATE.")?.split('.').next()?;
    let holder = account.js.account(&exporter.name)?;
    if !Arc::ptr_eq(&holder, account) {
        let kind = if mirror { "M" } else { "S" };
        let deliver = if external.deliver.is_empty() { "$JS" } else { external.deliver.as_str() };
        let subject = format!("{deliver}.{kind}.{}", crate::jetstream::new_id()).replace("..", ".");
        if crate::account::imports::stream_import_subject(&account.account, &exporter, &subject)? != subject {
            return None;
        }
    }
    Some((holder, name.to_string()))
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

/// Who a source is, as nats-server composes it (its "index name"): the origin (with a hash
/// of the external API prefix), the filter or transform sources, the transform destinations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceIdentity {
    origin: String,
    filter: String,
    dest: String,
}

impl SourceIdentity {
    pub(crate) fn of(config: &StreamSource) -> SourceIdentity {
        let mut origin = config.name.clone();
        if let Some(external) = &config.external {
            origin.push(':');
            origin.push_str(&crate::jetstream::short_hash(&external.api));
        }
        let or_all = |s: &str| if s.is_empty() { ">".to_string() } else { s.to_string() };
        let (filter, dest) = if config.subject_transforms.is_empty() {
            (or_all(&config.filter_subject), ">".to_string())
        } else {
            let join = |part: fn(&SubjectTransform) -> &str| {
                config.subject_transforms.iter().map(|t| or_all(part(t))).collect::<Vec<_>>().join("\u{c}")
            };
            (join(|t| &t.src), join(|t| &t.dest))
        };
        SourceIdentity { origin, filter, dest }
    }

    /// The `Nats-Stream-Source` value for origin message `seq` first stored on `subject`.
    fn header(&self, seq: u64, subject: &str) -> String {
        format!("{} {seq} {} {} {subject}", self.origin, self.filter, self.dest)
    }
}

/// A `Nats-Stream-Source` value: its tokens (origin, sequence, filter, destination) split.
struct SourceHeader<'a> {
    origin: &'a str,
    seq: u64,
    filter: Option<&'a str>,
    dest: Option<&'a str>,
}

fn parse_source_header(value: &[u8]) -> Option<SourceHeader<'_>> {
    let text = std::str::from_utf8(value).ok()?;
    let mut tokens = text.split(' ');
    let origin = tokens.next()?;
    let seq = tokens.next()?.parse().ok()?;
    Some(SourceHeader { origin, seq, filter: tokens.next(), dest: tokens.next() })
}

impl SourceHeader<'_> {
    /// Whether this message was sourced by `link` (in nats-server's form or Jetway's earlier one).
    fn is_from(&self, link: &Link) -> bool {
        let id = &link.identity;
        let ours = self.origin == id.origin && self.filter == Some(&id.filter) && self.dest == Some(&id.dest);
        // Jetway's earlier form named a filtered source `<origin>:<filters>` (an unfiltered
        // one's header was already nats-server's).
        let earlier =
            link.config.external.is_none() && link.legacy_key != id.origin && self.origin == link.legacy_key;
        ours || earlier
    }
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
        for (i, link) in links.iter().enumerate() {
            let task = LinkTask {
                target: Arc::downgrade(self),
                account: account.clone(),
                link: link.clone(),
                mirror,
                next: recovered.get(&i).copied(),
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

    /// Next origin sequence of each source (by its index in `links`), from the newest message
    /// it sourced.
    fn recover_source_positions(&self, links: &[Arc<Link>]) -> HashMap<usize, u64> {
        let mut found = HashMap::new();
        let state = self.store.state();
        let mut seq = state.last_seq;
        while seq >= state.first_seq.max(1) && found.len() < links.len() {
            if let Ok(m) = self.store.load(seq) {
                let value = m.headers.as_deref().and_then(|h| find_raw(h, SOURCE_HEADER));
                if let Some(header) = value.and_then(parse_source_header) {
                    for (i, link) in links.iter().enumerate() {
                        if !found.contains_key(&i) && header.is_from(link) {
                            found.insert(i, header.seq + 1);
                        }
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
            let origin = match self.origin() {
                Ok(origin) => origin,
                Err(error) => {
                    *self.link.error.lock() = error;
                    drop(target);
                    tokio::select! {
                        _ = tokio::time::sleep(RECHECK) => continue,
                        _ = cancel.cancelled() => return,
                    }
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

    /// The origin stream; otherwise what `StreamInfo` reports: the origin's absence, or no
    /// error while an external origin cannot be reached (nats-server's request to it then
    /// goes unanswered, and it reports nothing either).
    fn origin(&self) -> Result<Arc<Stream>, Option<ApiError>> {
        let account = self.account.upgrade().ok_or(None)?;
        let config = &self.link.config;
        match &config.external {
            None => account.stream(&config.name).map_err(Some),
            Some(external) => {
                let (holder, name) = external_origin(&account, external, config, self.mirror).ok_or(None)?;
                holder.stream(&name).map_err(Some)
            }
        }
    }

    /// Copies what is available past the link's position.
    fn round(&mut self, target: &Stream, origin: &Stream) -> Round {
        let filters = link_filters(&self.link.config);
        let filter = SubjectFilter::new(&filters);
        let mut next = match self.next {
            Some(n) => n,
            None => self.start_position(target, origin, &filter),
        };
        let mut round = Round::Idle;
        let mut copied = 0;
        let mut error = None;
        loop {
            if copied >= BATCH {
                round = Round::More;
                break;
            }
            let msg = match origin.store.load_next(&filter, next) {
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
        let lag = origin.store.num_pending(&filter, next);
        self.link.lag.store(lag, Ordering::Relaxed);
        self.link.last_contact.store(crate::time::now_nanos(), Ordering::Relaxed);
        *self.link.error.lock() = error;
        round
    }

    /// Where a link without a recovered position starts in the origin.
    fn start_position(&self, target: &Stream, origin: &Stream, filter: &SubjectFilter) -> u64 {
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
            return crate::jetstream::consumer::first_at_or_after(origin, filter, start);
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
        headers.insert(SOURCE_HEADER, self.link.identity.header(msg.seq, &msg.subject));
        let headers: Bytes = headers.encode();
        target.ingest_sourced(&subject, &headers, &msg.payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: &str) -> StreamSource {
        StreamSource { name: name.into(), ..StreamSource::default() }
    }

    fn transform(src: &str, dest: &str) -> SubjectTransform {
        SubjectTransform { src: src.into(), dest: dest.into() }
    }

    #[test]
    fn headers_are_nats_servers() {
        let plain = SourceIdentity::of(&source("ORDERS"));
        assert_eq!(plain.header(42, "orders.1"), "ORDERS 42 > > orders.1");
        let filtered =
            SourceIdentity::of(&StreamSource { filter_subject: "orders.*".into(), ..source("ORDERS") });
        assert_eq!(filtered.header(7, "orders.a"), "ORDERS 7 orders.* > orders.a");
        let transformed = SourceIdentity::of(&StreamSource {
            subject_transforms: vec![transform("a.*", "b.{{wildcard(1)}}"), transform("c.>", "")],
            ..source("O")
        });
        assert_eq!(transformed.header(1, "a.x"), "O 1 a.*\u{c}c.> b.{{wildcard(1)}}\u{c}> a.x");
        // nats-server's getHash of the API prefix (sha256, eight base-62 digits).
        let external = SourceIdentity::of(&StreamSource {
            external: Some(ExternalStream { api: "$JS.hub.API".into(), deliver: String::new() }),
            ..source("ORDERS")
        });
        assert_eq!(external.header(3, "o.1"), "ORDERS:bTMUkJQk 3 > > o.1");
    }

    #[test]
    fn a_header_names_the_source_that_wrote_it_in_either_form() {
        let link = |config: StreamSource| Link::new(config);
        let plain = link(source("O"));
        let filtered = link(StreamSource { filter_subject: "a.>".into(), ..source("O") });
        let other_filter = link(StreamSource { filter_subject: "b.>".into(), ..source("O") });
        let parse =
            |value: &'static str| parse_source_header(value.as_bytes()).unwrap_or_else(|| panic!("{value}"));
        let ours = parse("O 5 a.> > a.x");
        assert_eq!(ours.seq, 5);
        assert!(ours.is_from(&filtered) && !ours.is_from(&plain) && !ours.is_from(&other_filter));
        assert!(parse("O 9 > > z").is_from(&plain));
        // Jetway's earlier form: the filter in the first token.
        let earlier = parse("O:a.> 6 a.> > a.y");
        assert!(earlier.is_from(&filtered) && !earlier.is_from(&plain) && !earlier.is_from(&other_filter));
        assert!(parse_source_header(b"O x").is_none());
    }

    #[test]
    fn transformed_links_map_subjects() {
        let link = Link::new(StreamSource {
            subject_transforms: vec![transform("a.*", "b.{{wildcard(1)}}")],
            ..source("O")
        });
        assert_eq!(link.map_subject("a.x"), "b.x");
        assert_eq!(link.map_subject("c.x"), "c.x");
    }
}
