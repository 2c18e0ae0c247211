//! A stream: its config, its store, the subscriptions that feed it, and its consumers.
//!
//! The write path (`ingest`) runs on the publishing connection's task, under the stream's
//! ingest lock: header checks, the duplicate window and the append happen in one critical
//! section that never waits on disk (the store queues the write). The publish acknowledgement
//! is sent from the store's completion, which fires once the data is durable under the
//! stream's sync policy; appends are pipelined, so many acks in flight share one fsync.

pub mod config;
pub mod dedup;
pub mod info;
mod ingest;
pub mod interest;
mod source_checks;
pub mod sourcing;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use self::config::{RetentionPolicy, StreamConfig};
use self::dedup::DedupWindow;
use self::info::{ClusterInfoJson, StreamInfoJson, StreamStateJson};
use crate::account::Account;
use crate::jetstream::consumer::Consumer;
use crate::jetstream::errors::ApiError;
use crate::jetstream::json::time_text;
use crate::router::{InternalHandler, Message, Sink, Subscription};
use crate::stats::ServerStats;

/// Appends whose durability is still pending, per stream, before publishers get 429s.
const MAX_INFLIGHT: usize = 65_536;

/// One stream.
pub struct Stream {
    pub name: String,
    config: RwLock<StreamConfig>,
    pub created: i64,
    pub store: Arc<dyn jetway_storage::StreamStore>,
    /// The stream's folder (file storage) for its metadata and consumers.
    pub dir: Option<PathBuf>,
    pub account: Arc<Account>,
    pub stats: Arc<ServerStats>,
    pub domain: Option<String>,
    pub server_name: String,
    /// Serializes the write path: header checks, dedup and append.
    ingest: Mutex<IngestState>,
    /// Appends not yet durable.
    inflight: Arc<AtomicUsize>,
    /// Router subscriptions on the stream's subjects.
    subscriptions: Mutex<Vec<Arc<Subscription>>>,
    pub consumers: RwLock<BTreeMap<String, Arc<Consumer>>>,
    /// Last sequence stored; consumers wait on it for new messages.
    last_seq: watch::Sender<u64>,
    /// The tasks feeding a mirror or a stream with sources.
    sourcing: Mutex<Option<sourcing::Sourcing>>,
    /// The account's (and server's) storage quota for this stream's storage type.
    quota: Arc<crate::jetstream::usage::Quota>,
    /// Where this stream's durable consumers keep their config and state when they share one
    /// log instead of a folder each (streams with many small consumers: the MQTT sessions').
    pub consumer_log: std::sync::OnceLock<Arc<jetway_storage::SharedConsumerLog>>,
    /// The consumers by the subjects their filters take (interest retention's checks).
    pub interest: interest::ConsumerInterest,
    /// The stream's and domain's fields of every pub ack, encoded once.
    ack_fields: Arc<ingest::AckFields>,
    /// The config's subject transform and republish mapping, compiled.
    transforms: RwLock<ingest::Transforms>,
}

#[derive(Default)]
struct IngestState {
    dedup: DedupWindow,
    last_msg_id: Option<String>,
}

impl Stream {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: StreamConfig,
        created: i64,
        store: Arc<dyn jetway_storage::StreamStore>,
        dir: Option<PathBuf>,
        account: Arc<Account>,
        stats: Arc<ServerStats>,
        domain: Option<String>,
        server_name: String,
        quota: Arc<crate::jetstream::usage::Quota>,
    ) -> Arc<Stream> {
        let last = store.state().last_seq;
        let ack_fields = Arc::new(ingest::AckFields::new(&config.name, domain.as_deref()));
        let transforms = RwLock::new(ingest::Transforms::of(&config));
        let stream = Arc::new(Stream {
            name: config.name.clone(),
            config: RwLock::new(config),
            created,
            store,
            dir,
            account,
            stats,
            domain,
            server_name,
            ingest: Mutex::new(IngestState::default()),
            inflight: Arc::new(AtomicUsize::new(0)),
            subscriptions: Mutex::new(Vec::new()),
            consumers: RwLock::new(BTreeMap::new()),
            last_seq: watch::channel(last).0,
            sourcing: Mutex::new(None),
            quota,
            consumer_log: std::sync::OnceLock::new(),
            interest: interest::ConsumerInterest::default(),
            ack_fields,
            transforms,
        });
        stream.rebuild_dedup();
        // Delete markers the store appends when a subject's last message expires are new
        // messages: their readers are woken as for any other.
        let appended_to = Arc::downgrade(&stream);
        stream.store.on_delete_marker(Arc::new(move |seq, subject| {
            if let Some(stream) = appended_to.upgrade() {
                stream.notify_appended(seq, subject);
            }
        }));
        stream
    }

    pub fn config(&self) -> StreamConfig {
        self.config.read().clone()
    }

    pub fn retention(&self) -> RetentionPolicy {
        self.config.read().retention
    }

    /// Subscribes the stream to its subjects.
    pub fn subscribe(self: &Arc<Self>) {
        let subjects = self.config.read().subjects.clone();
        let handler: Arc<dyn InternalHandler> = Arc::new(StreamIngest(Arc::downgrade(self)));
        let mut subs = self.subscriptions.lock();
        for subject in subjects {
            let sub = Subscription::new(subject.as_str().into(), None, Sink::Internal(handler.clone()));
            self.account.sublist.insert(sub.clone());
            subs.push(sub);
        }
    }

    pub fn unsubscribe(&self) {
        for sub in self.subscriptions.lock().drain(..) {
            self.account.sublist.remove(&sub);
        }
    }

    /// Applies an already-checked config update: limits to the store, subjects to the router.
    pub fn update_config(
        self: &Arc<Self>,
        config: StreamConfig,
        sync: jetway_storage::SyncPolicy,
    ) -> Result<(), ApiError> {
        self.store.update_config(config.store_config(sync)).map_err(ApiError::stream_general)?;
        let resubscribe = self.config.read().subjects != config.subjects;
        *self.transforms.write() = ingest::Transforms::of(&config);
        *self.config.write() = config;
        if resubscribe {
            self.unsubscribe();
            self.subscribe();
        }
        Ok(())
    }

    /// Receiver of the last stored sequence, for consumers waiting for new messages.
    pub fn watch_last_seq(&self) -> watch::Receiver<u64> {
        self.last_seq.subscribe()
    }

    /// After a change to the stored messages other than one append (restore, mirror copy,
    /// purge): every consumer looks again, and sources/mirrors reading from this stream too.
    pub(crate) fn notify_stored(&self) {
        if self.last_seq.receiver_count() > 0 {
            self.last_seq.send_replace(self.store.state().last_seq);
        }
        for consumer in self.consumers.read().values() {
            consumer.notify_new_messages();
        }
    }

    /// The last sequence is now `seq` without a new message (interest streams skip messages
    /// nobody wants): only streams sourcing from this one need to know.
    pub(crate) fn notify_stored_seq(&self, seq: u64) {
        if self.last_seq.receiver_count() > 0 {
            self.last_seq.send_replace(seq);
        }
    }

    /// Message `seq` on `subject` was appended: wakes the consumers whose filters take it,
    /// not every consumer (a stream may have tens of thousands, one per MQTT session).
    pub(crate) fn notify_appended(&self, seq: u64, subject: &str) {
        self.notify_stored_seq(seq);
        for consumer in self.interest.interested(subject) {
            consumer.notify_new_messages();
        }
    }

    pub fn info(
        &self,
        deleted_details: bool,
        subjects_filter: Option<&str>,
    ) -> Result<StreamInfoJson, ApiError> {
        let state = self.store.state();
        let mut json = StreamStateJson::from_state(&state, self.consumers.read().len());
        if deleted_details {
            // Left out when nothing is deleted, as nats-server does.
            json.deleted = Some(self.store.deleted()).filter(|d| !d.is_empty());
        }
        if let Some(filter) = subjects_filter {
            let subjects = self.store.subjects_state(filter);
            if subjects.len() > 100_000 {
                return Err(ApiError::info_max_subjects());
            }
            json.subjects = Some(subjects.into_iter().map(|(s, st)| (s.to_string(), st.msgs)).collect());
        }
        let (mirror, sources) = self.source_infos();
        Ok(StreamInfoJson {
            config: crate::jetstream::versioning::stream_answer(self.config()),
            mirror,
            sources,
            created: time_text(self.created),
            state: json,
            cluster: Some(ClusterInfoJson { name: None, leader: self.server_name.clone() }),
            domain: self.domain.clone(),
            ts: time_text(crate::time::now_nanos()),
        })
    }

    /// Refills the duplicate window from the messages stored within it (after a restart).
    fn rebuild_dedup(&self) {
        let window = self.config.read().duplicate_window;
        if window <= 0 {
            return;
        }
        let state = self.store.state();
        let cutoff = crate::time::now_nanos().saturating_sub(window);
        let mut ingest = self.ingest.lock();
        let mut seq = state.last_seq;
        let mut found = Vec::new();
        while seq >= state.first_seq && seq > 0 {
            if let Ok(msg) = self.store.load(seq) {
                if msg.timestamp < cutoff {
                    break;
                }
                if let Some(id) = msg
                    .headers
                    .as_deref()
                    .and_then(|h| jetway_protocols::nats::headers::find_raw(h, "Nats-Msg-Id"))
                {
                    found.push((String::from_utf8_lossy(id).into_owned(), msg.seq, msg.timestamp));
                }
            }
            seq -= 1;
        }
        for (id, seq, ts) in found.into_iter().rev() {
            ingest.dedup.record(&id, seq, ts);
            // Only the last message's id counts for `Nats-Expected-Last-Msg-Id`.
            if seq == state.last_seq {
                ingest.last_msg_id = Some(id);
            }
        }
    }

    /// The first sequence stored at or after `ts` (ns since the epoch), by binary search over
    /// store times (which never decrease); `last_seq + 1` when there is none.
    pub fn first_seq_at(&self, ts: i64) -> u64 {
        let state = self.store.state();
        let (mut lo, mut hi) = (state.first_seq.max(1), state.last_seq + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.store.load_next(&jetway_storage::SubjectFilter::all(), mid) {
                Ok(m) if m.timestamp < ts => lo = m.seq + 1,
                _ => hi = mid,
            }
        }
        lo
    }

    /// Removes a message on behalf of a consumer ack (interest and workqueue retention).
    pub fn remove_acked(&self, seq: u64) {
        let _ = self.store.remove(seq, false);
    }

    /// Stops the stream: unsubscribes, stops consumers and flushes the store.
    pub fn stop(&self) {
        self.stop_sourcing();
        self.unsubscribe();
        for consumer in self.consumers.write().values() {
            consumer.stop();
        }
        if let Some(log) = self.consumer_log.get() {
            if let Err(e) = log.stop() {
                tracing::warn!(stream = %self.name, "error stopping the consumer log: {e}");
            }
        }
        if let Err(e) = self.store.stop() {
            tracing::warn!(stream = %self.name, "error stopping store: {e}");
        }
    }
}

/// The router sink of a stream's subscriptions.
struct StreamIngest(std::sync::Weak<Stream>);

impl InternalHandler for StreamIngest {
    fn deliver(&self, msg: &Message<'_>) {
        if let Some(stream) = self.0.upgrade() {
            stream.ingest(msg);
        }
    }
}

/// Drops the in-flight count when a completion fires (or is dropped unfired).
pub(crate) struct InflightGuard(Arc<AtomicUsize>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
