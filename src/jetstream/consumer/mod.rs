//! A consumer: a view of a stream with its own delivery position, pending acks and waiting
//! pull requests.
//!
//! A delivery pass (`engine`) sends what can be sent; it runs on a task that exists only
//! while the consumer has work ([`scheduler`]): woken by new messages, acks that free
//! `max_ack_pending`, pull requests, and its deadlines (ack wait, request expiry, heartbeats),
//! which one timer task keeps for every consumer. Acks and pull requests arrive on router
//! subscriptions and are applied at once under the consumer's lock (a short, in-memory
//! critical section). Delivery state is persisted through the `ConsumerStore`.

pub mod ack;
pub mod config;
mod engine;
mod flow_control;
pub mod info;
pub mod priority;
pub mod pull;
pub mod scheduler;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use jetway_storage::{ConsumerStore, SequencePair, SubjectFilter};
use parking_lot::{Mutex, RwLock};

use self::ack::{parse_ack, parse_ack_subject, AckKind};
use self::config::{AckPolicy, ConsumerConfig, DeliverPolicy};
use self::info::{ConsumerInfoJson, PriorityGroupJson, SequenceInfoJson};
use self::pull::{parse_request, status, Waiting};
use crate::account::Account;
use crate::jetstream::json::time_text;
use crate::jetstream::stream::config::RetentionPolicy;
use crate::jetstream::stream::Stream;
use crate::router::{deliver, InternalHandler, Message, Sink, Subscription};
use crate::stats::ServerStats;

/// A delivered, unacknowledged message.
#[derive(Debug, Clone, Copy)]
struct Pending {
    dseq: u64,
    deliveries: u64,
    deadline: Instant,
}

/// Pacing state: the store time of the last message sent, when it was sent, when the rate
/// limit allows the next one, and when the next paced message is due.
struct Paced {
    last: (i64, Instant, Instant),
    until: Option<Instant>,
}

/// Mutable delivery state, under the consumer's lock.
struct Inner {
    /// Next stream sequence to deliver for the first time.
    next_seq: u64,
    /// Last consumer sequence assigned and the stream sequence it carried.
    delivered: SequencePair,
    ack_floor: SequencePair,
    pending: BTreeMap<u64, Pending>,
    /// (deadline, stream seq) of every pending message, for the redelivery timer.
    deadlines: BTreeSet<(Instant, u64)>,
    /// Messages whose deliveries ran out unacknowledged (stream seq → consumer seq): not
    /// acknowledged, so interest retention keeps them for this consumer and the ack floor
    /// stays below them (as nats-server does); dropped once the stream no longer holds them.
    abandoned: BTreeMap<u64, u64>,
    /// Pending messages due for redelivery, in stream order.
    redeliver: BTreeSet<u64>,
    waiting: VecDeque<Waiting>,
    /// LastPerSubject: the initial messages still to deliver, in order.
    initial: VecDeque<u64>,
    last_delivery: i64,
    last_ack: i64,
    last_activity: Instant,
    next_heartbeat: Option<Instant>,
    paused_until: i64,
    /// A pause is in force whose end has not been announced yet (the pause advisory).
    pause_pending_end: bool,
    /// Paced consumers (`replay_policy: original`, `rate_limit_bps`) once they sent a message.
    /// This and `flow` are boxed: most consumers use neither, and every consumer (one per
    /// persistent MQTT session) would carry their room.
    paced: Option<Box<Paced>>,
    /// Push consumers with `flow_control`, once they delivered.
    flow: Option<Box<flow_control::FlowControl>>,
    /// The pinned client of a `pinned_client` consumer, while one is pinned.
    pin: Option<Box<priority::Pin>>,
}

/// The filters of `old` not in `new`, and those of `new` not in `old`.
fn filter_changes<'a>(old: &'a [Box<str>], new: &'a [String]) -> (Vec<&'a str>, Vec<&'a str>) {
    let in_old: std::collections::HashSet<&str> = old.iter().map(|f| &**f).collect();
    let in_new: std::collections::HashSet<&str> = new.iter().map(String::as_str).collect();
    let removed = old.iter().map(|f| &**f).filter(|f| !in_new.contains(f)).collect();
    let added = new.iter().map(String::as_str).filter(|f| !in_old.contains(f)).collect();
    (removed, added)
}

/// One consumer.
pub struct Consumer {
    pub name: String,
    pub stream_name: String,
    stream: Weak<Stream>,
    config: RwLock<ConsumerConfig>,
    /// The config's filters, sorted out once for the store's reads.
    filter: RwLock<Arc<SubjectFilter>>,
    pub created: i64,
    inner: Mutex<Inner>,
    store: Arc<dyn ConsumerStore>,
    pub dir: Option<Box<Path>>,
    account: Arc<Account>,
    stats: Arc<ServerStats>,
    /// This consumer, for waking it from `&self`.
    me: Weak<Consumer>,
    scheduler: Arc<scheduler::Scheduler>,
    delivery: scheduler::DeliveryState,
    deleted: AtomicBool,
    subscriptions: Mutex<Box<[Arc<Subscription>]>>,
}

impl Consumer {
    /// Creates a consumer on `stream` and wakes it for its first delivery pass. `restored` is
    /// the persisted state of a consumer being reloaded at startup.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        stream: &Arc<Stream>,
        config: ConsumerConfig,
        name: String,
        created: i64,
        store: Arc<dyn ConsumerStore>,
        dir: Option<PathBuf>,
        restored: bool,
        scheduler: &Arc<scheduler::Scheduler>,
    ) -> Arc<Consumer> {
        let filter = Arc::new(SubjectFilter::new(&config.filters()));
        let now = Instant::now();
        let ack_wait = Duration::from_nanos(u64::try_from(config.ack_wait).unwrap_or(0));
        let mut inner = Inner {
            next_seq: 1,
            delivered: SequencePair::default(),
            ack_floor: SequencePair::default(),
            pending: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            abandoned: BTreeMap::new(),
            redeliver: BTreeSet::new(),
            waiting: VecDeque::new(),
            initial: VecDeque::new(),
            last_delivery: 0,
            last_ack: 0,
            last_activity: now,
            next_heartbeat: None,
            flow: None,
            pin: None,
            pause_pending_end: false,
            paused_until: config
                .pause_until
                .as_deref()
                .and_then(crate::jetstream::json::parse_time)
                .unwrap_or(0),
            paced: None,
        };
        if restored {
            let state = store.state();
            inner.delivered = state.delivered;
            inner.ack_floor = state.ack_floor;
            inner.next_seq = state.delivered.stream_seq + 1;
            for (sseq, p) in &state.pending {
                let deliveries = state.redelivered.get(sseq).copied().unwrap_or(0) + 1;
                let deadline = now + ack_wait;
                inner.pending.insert(*sseq, Pending { dseq: p.consumer_seq, deliveries, deadline });
                inner.deadlines.insert((deadline, *sseq));
            }
        } else {
            Self::set_start_position(&mut inner, stream, &config, &filter);
            // Positions before the start count as delivered and acknowledged; with the last
            // message per subject, the start is the first of those (as nats-server reports it).
            let start = inner.initial.front().copied().unwrap_or(inner.next_seq);
            if start > 1 {
                inner.delivered.stream_seq = start - 1;
                inner.ack_floor.stream_seq = start - 1;
            }
        }
        let consumer = Arc::new_cyclic(|me| Consumer {
            name,
            stream_name: stream.name.clone(),
            stream: Arc::downgrade(stream),
            config: RwLock::new(config),
            filter: RwLock::new(filter),
            created,
            inner: Mutex::new(inner),
            store,
            dir: dir.map(PathBuf::into_boxed_path),
            account: stream.account.clone(),
            stats: stream.stats.clone(),
            me: me.clone(),
            scheduler: Arc::clone(scheduler),
            delivery: scheduler::DeliveryState::new(),
            deleted: AtomicBool::new(false),
            subscriptions: Mutex::new(Box::default()),
        });
        stream.interest.add(&consumer, consumer.filter.read().filters());
        consumer.subscribe();
        let paused_until = {
            let mut inner = consumer.inner.lock();
            inner.pause_pending_end = inner.paused_until > crate::time::now_nanos();
            inner.pause_pending_end.then_some(inner.paused_until)
        };
        if let (Some(until), false) = (paused_until, restored) {
            consumer.pause_advisory(until);
        }
        consumer.wake_up();
        consumer
    }

    /// Where a new consumer starts, by deliver policy.
    fn set_start_position(
        inner: &mut Inner,
        stream: &Stream,
        config: &ConsumerConfig,
        filter: &SubjectFilter,
    ) {
        let state = stream.store.state();
        let filters = filter.filters();
        inner.next_seq = match config.deliver_policy {
            DeliverPolicy::All => state.first_seq.max(1),
            DeliverPolicy::New => state.last_seq + 1,
            DeliverPolicy::Last => {
                let last = if filters.is_empty() {
                    Some(state.last_seq)
                } else {
                    filters.iter().filter_map(|f| stream.store.load_last(f).ok().map(|m| m.seq)).max()
                };
                last.filter(|s| *s > 0).unwrap_or(state.last_seq + 1)
            }
            DeliverPolicy::ByStartSequence => config.opt_start_seq.max(1),
            DeliverPolicy::ByStartTime => {
                let start = config
                    .opt_start_time
                    .as_deref()
                    .and_then(crate::jetstream::json::parse_time)
                    .unwrap_or(0);
                first_at_or_after(stream, filter, start)
            }
            DeliverPolicy::LastPerSubject => {
                let mut lasts: Vec<u64> = if filters.is_empty() {
                    stream.store.subjects_state(">").values().map(|s| s.last).collect()
                } else {
                    filters
                        .iter()
                        .flat_map(|f| stream.store.subjects_state(f).into_values().map(|s| s.last))
                        .collect()
                };
                lasts.sort_unstable();
                lasts.dedup();
                inner.initial = lasts.into();
                state.last_seq + 1
            }
        };
    }

    pub fn config(&self) -> ConsumerConfig {
        self.config.read().clone()
    }

    /// Whether this is a pull consumer (without copying its config).
    pub fn is_pull(&self) -> bool {
        self.config.read().is_pull()
    }

    /// Applies an update already checked with `check_update`.
    pub fn update_config(self: &Arc<Self>, config: ConsumerConfig) {
        {
            let mut filter = self.filter.write();
            let new = config.filters();
            let old = filter.filters();
            if !old.iter().map(|f| &**f).eq(new.iter().map(String::as_str)) {
                if let Some(stream) = self.stream.upgrade() {
                    if old.is_empty() || new.is_empty() {
                        stream.interest.remove(self, old);
                        stream.interest.add(self, &new);
                    } else {
                        // Only what changed: an MQTT session's consumer gains one filter per
                        // SUBSCRIBE among thousands it keeps.
                        let (removed, added) = filter_changes(old, &new);
                        stream.interest.remove(self, &removed);
                        stream.interest.add(self, &added);
                    }
                }
                *filter = Arc::new(SubjectFilter::new(&new));
            }
        }
        {
            let mut inner = self.inner.lock();
            inner.paused_until =
                config.pause_until.as_deref().and_then(crate::jetstream::json::parse_time).unwrap_or(0);
            // A pin belongs to a pinned_client consumer's group; it does not outlive them.
            let still_pinned = config.priority_policy == priority::PriorityPolicy::PinnedClient
                && inner.pin.as_ref().is_some_and(|p| config.priority_groups.contains(&p.group));
            if !still_pinned {
                inner.pin = None;
            }
        }
        *self.config.write() = config;
        self.wake_up();
    }

    /// Whether this consumer no longer needs message `seq` (interest retention).
    pub fn has_acked(&self, seq: u64) -> bool {
        let inner = self.inner.lock();
        seq <= inner.ack_floor.stream_seq
            || (seq < inner.next_seq
                && !inner.pending.contains_key(&seq)
                && !inner.abandoned.contains_key(&seq))
    }

    /// Makes every pending message due for redelivery now (an MQTT session resumed: its
    /// client must get what it had not acknowledged without waiting for `ack_wait`).
    /// `$JS.API.CONSUMER.RESET`: starts over at stream sequence `seq`, or just past the ack
    /// floor without one, as nats-server 2.14 does: pending and redelivery state is forgotten,
    /// the consumer sequence starts again at 1. A sequence below what the deliver policy
    /// allows is refused (the reason, for `invalid reset: <reason>`). Returns the sequence.
    pub fn reset(&self, seq: Option<u64>) -> Result<u64, &'static str> {
        let config = self.config();
        let stream = self.stream.upgrade();
        let mut inner = self.inner.lock();
        let old_floor = inner.ack_floor.stream_seq;
        let seq = match seq {
            None => inner.ack_floor.stream_seq + 1,
            Some(seq) => match config.deliver_policy {
                DeliverPolicy::All => seq,
                DeliverPolicy::ByStartSequence if seq < config.opt_start_seq => {
                    return Err("below start seq")
                }
                DeliverPolicy::ByStartSequence => seq,
                DeliverPolicy::ByStartTime => {
                    let start = config.opt_start_time.as_deref().and_then(crate::jetstream::json::parse_time);
                    let filter = Arc::clone(&self.filter.read());
                    let first = match (&stream, start) {
                        (Some(stream), Some(start)) => first_at_or_after(stream, &filter, start),
                        _ => 0,
                    };
                    if seq < first {
                        return Err("below start time");
                    }
                    seq
                }
                _ => return Err("not allowed"),
            },
        }
        .max(1);
        inner.pending.clear();
        inner.deadlines.clear();
        inner.redeliver.clear();
        inner.abandoned.clear();
        inner.initial.clear();
        inner.next_seq = seq;
        inner.delivered = SequencePair { consumer_seq: 0, stream_seq: seq - 1 };
        inner.ack_floor = inner.delivered;
        let state = jetway_storage::ConsumerState {
            delivered: inner.delivered,
            ack_floor: inner.ack_floor,
            ..Default::default()
        };
        drop(inner);
        if let Err(e) = self.store.update(&state) {
            tracing::warn!(consumer = %self.name, "can't persist a reset: {e}");
        }
        // On an interest stream, what the reset skipped may be needed by nobody now (as
        // nats-server re-checks then); a work queue keeps it.
        if let Some(stream) = stream.filter(|s| s.retention() == RetentionPolicy::Interest) {
            let mut next = stream.store.state().first_seq.max(old_floor + 1);
            while next < seq {
                let end = seq.min(next.saturating_add(1024));
                self.apply_retention(&(next..end).collect::<Vec<u64>>());
                next = end;
            }
        }
        self.wake_up();
        Ok(seq)
    }

    pub fn redeliver_pending(&self) {
        {
            let mut inner = self.inner.lock();
            let seqs: Vec<u64> = inner.pending.keys().copied().collect();
            inner.redeliver.extend(seqs);
        }
        self.wake_up();
    }

    /// Pauses until `until` (ns since the epoch; 0 resumes).
    pub fn pause(&self, until: i64) {
        let changed = {
            let mut inner = self.inner.lock();
            let changed = inner.paused_until != until;
            inner.paused_until = until;
            inner.pause_pending_end = until > crate::time::now_nanos();
            changed
        };
        self.config.write().pause_until = (until > 0).then(|| time_text(until));
        if changed {
            self.pause_advisory(until);
        }
        self.wake_up();
    }

    /// `$JS.EVENT.ADVISORY.CONSUMER.PAUSE.<stream>.<consumer>`: paused until `until` (ns; 0
    /// for no pause), or resumed when that has passed.
    fn pause_advisory(&self, until: i64) {
        let paused = until > crate::time::now_nanos();
        let extra = serde_json::json!({"paused": paused, "pause_until": time_text(until)});
        self.advisory("CONSUMER.PAUSE", "consumer_pause", extra);
    }

    pub fn paused_until(&self) -> i64 {
        self.inner.lock().paused_until
    }

    fn subscribe(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let mut subs = Vec::new();
        // The gateway's session consumers are acknowledged directly: a subscription each would
        // cost every session memory and every ack a sublist lookup.
        if !crate::jetstream::account::is_gateway_stream(&self.stream_name) {
            let ack_subject = format!("$JS.ACK.{}.{}.>", self.stream_name, self.name);
            let ack = Subscription::new(
                ack_subject.as_str().into(),
                None,
                Sink::Internal(Arc::new(AckHandler(weak.clone()))),
            );
            self.account.sublist.insert(ack.clone());
            subs.push(ack);
        }
        if self.config.read().flow_control {
            let fc_subject = format!("$JS.FC.{}.{}.*", self.stream_name, self.name);
            let handler = flow_control::FlowControlHandler(weak.clone());
            let fc = Subscription::new(fc_subject.as_str().into(), None, Sink::Internal(Arc::new(handler)));
            self.account.sublist.insert(fc.clone());
            subs.push(fc);
        }
        if self.config.read().is_pull() {
            let next_subject = format!("$JS.API.CONSUMER.MSG.NEXT.{}.{}", self.stream_name, self.name);
            let next = Subscription::new(
                next_subject.as_str().into(),
                None,
                Sink::Internal(Arc::new(NextHandler(weak))),
            );
            self.account.sublist.insert(next.clone());
            subs.push(next);
        }
        *self.subscriptions.lock() = subs.into_boxed_slice();
    }

    /// Stops the task and unsubscribes (the consumer's state stays on disk).
    /// New messages may be there for this consumer (the stream wakes only those whose filters
    /// take a new message's subject).
    pub(crate) fn notify_new_messages(&self) {
        self.wake_up();
    }

    /// Makes the consumer run a delivery pass soon.
    pub(crate) fn wake_up(&self) {
        if let Some(me) = self.me.upgrade() {
            self.scheduler.wake(&me);
        }
    }

    pub fn stop(&self) {
        if let Some(stream) = self.stream.upgrade() {
            stream.interest.remove(self, self.filter.read().filters());
        }
        self.delivery.stop();
        self.scheduler.clear_timer(self);
        let subs = std::mem::take(&mut *self.subscriptions.lock());
        for sub in subs.iter() {
            self.account.sublist.remove(sub);
        }
        let _ = self.store.stop();
    }

    /// Stops and marks deleted: waiting pull requests get `409 Consumer Deleted`.
    pub fn delete(&self) {
        self.deleted.store(true, Ordering::Release);
        let waiting: Vec<Waiting> = self.inner.lock().waiting.drain(..).collect();
        for w in waiting {
            self.send_status(&w.reply, 409, "Consumer Deleted", &[]);
        }
        self.stop();
    }

    /// The persisted delivery state (for snapshots).
    pub fn stored_state(&self) -> jetway_storage::ConsumerState {
        self.store.state()
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    pub fn info(&self) -> ConsumerInfoJson {
        let config = self.config();
        let stream_pending = self.stream.upgrade().map_or(0, |s| self.num_pending(&s));
        let inner = self.inner.lock();
        let now = crate::time::now_nanos();
        let push_bound = !config.is_pull() && self.has_push_interest(&config);
        let active = |t: i64| (t > 0).then(|| time_text(t));
        ConsumerInfoJson {
            stream_name: self.stream_name.clone(),
            name: self.name.clone(),
            created: time_text(self.created),
            delivered: SequenceInfoJson {
                consumer_seq: inner.delivered.consumer_seq,
                stream_seq: inner.delivered.stream_seq,
                last_active: active(inner.last_delivery),
            },
            ack_floor: SequenceInfoJson {
                consumer_seq: inner.ack_floor.consumer_seq,
                stream_seq: inner.ack_floor.stream_seq,
                last_active: active(inner.last_ack),
            },
            num_ack_pending: inner.pending.len() as u64,
            // Given-up messages count too, as in nats-server (whose delivery counts outlive
            // them): with `max_deliver` above 1 each of them was redelivered.
            num_redelivered: inner.pending.values().filter(|p| p.deliveries > 1).count() as u64
                + if config.max_deliver > 1 { inner.abandoned.len() as u64 } else { 0 },
            num_waiting: inner.waiting.len() as u64,
            num_pending: stream_pending + inner.initial.len() as u64,
            push_bound,
            paused: inner.paused_until > now,
            pause_remaining: (inner.paused_until - now).max(0),
            priority_groups: config
                .priority_groups
                .first()
                .map(|group| PriorityGroupJson {
                    group: group.clone(),
                    pinned_client_id: inner.pin.as_ref().map(|p| p.id.clone()),
                    pinned_ts: time_text(inner.pin.as_ref().map_or(0, |p| p.since_ns)),
                })
                .into_iter()
                .collect(),
            ts: time_text(now),
            config: crate::jetstream::versioning::consumer_answer(config),
        }
    }

    /// Messages matching the filters at or after the next position.
    fn num_pending(&self, stream: &Stream) -> u64 {
        let next = self.inner.lock().next_seq;
        let filter = Arc::clone(&self.filter.read());
        let state = stream.store.state();
        if next > state.last_seq {
            return 0;
        }
        if filter.is_all() {
            // From the first message on: all of them (sequences deleted inside the stream
            // hold none); from a later one without such holes: the rest of the range.
            if next <= state.first_seq {
                return state.msgs;
            }
            if state.num_deleted == 0 {
                return state.last_seq + 1 - next;
            }
        }
        stream.store.num_pending(&filter, next)
    }

    fn send_status(&self, reply: &str, code: u16, text: &str, headers: &[(&str, String)]) {
        let hdr = status(code, text, headers);
        let empty = Bytes::new();
        deliver::publish(&self.account, &self.stats, &Message::internal(reply, None, Some(&hdr), &empty));
    }

    /// An advisory on `$JS.EVENT.ADVISORY.<kind>`.
    fn advisory(&self, kind: &str, type_name: &str, extra: serde_json::Value) {
        let subject = format!("$JS.EVENT.ADVISORY.{kind}.{}.{}", self.stream_name, self.name);
        self.event(subject, &format!("io.nats.jetstream.advisory.v1.{type_name}"), extra);
    }

    /// An event about this consumer on `subject`: its `type`, an id, the time, the stream and
    /// consumer names, and `extra`'s fields.
    fn event(&self, subject: String, type_name: &str, extra: serde_json::Value) {
        let mut body = serde_json::json!({
            "type": type_name,
            "id": crate::jetstream::new_id(),
            "timestamp": time_text(crate::time::now_nanos()),
            "stream": self.stream_name,
            "consumer": self.name,
        });
        if let (Some(map), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
            map.extend(extra);
        }
        let payload = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        deliver::publish(&self.account, &self.stats, &Message::internal(&subject, None, None, &payload));
    }

    /// Whether a push consumer has someone to deliver to, as nats-server counts it: queue
    /// subscribers of its `deliver_group` on the deliver subject, or plain subscribers when it
    /// has no group. Until then it delivers nothing (and is not `push_bound`).
    pub(crate) fn has_push_interest(&self, config: &ConsumerConfig) -> bool {
        let result = self.account.sublist.matches(&config.deliver_subject);
        if config.deliver_group.is_empty() {
            !result.plain.is_empty()
        } else {
            result.groups.iter().any(|g| *g.name == *config.deliver_group && !g.members.is_empty())
        }
    }

    /// `$JS.API.CONSUMER.UNPIN`: the pinned client loses its pin, and the next request of
    /// the group is pinned. The advisory goes out even when nobody was pinned (as from
    /// nats-server).
    pub fn unpin(&self, group: &str) {
        self.inner.lock().pin = None;
        self.unpinned_advisory(group, "admin");
        self.wake_up();
    }

    /// `$JS.EVENT.ADVISORY.CONSUMER.PINNED.<stream>.<consumer>`.
    fn pinned_advisory(&self, group: &str, id: &str) {
        let extra = serde_json::json!({"account": &*self.account.name, "group": group, "pinned_id": id});
        self.advisory("CONSUMER.PINNED", "consumer_group_pinned", extra);
    }

    /// `$JS.EVENT.ADVISORY.CONSUMER.UNPINNED.<stream>.<consumer>`; `reason` is `admin` or
    /// `timeout`.
    fn unpinned_advisory(&self, group: &str, reason: &str) {
        let extra = serde_json::json!({"account": &*self.account.name, "group": group, "reason": reason});
        self.advisory("CONSUMER.UNPINNED", "consumer_group_unpinned", extra);
    }

    /// An ack arrived on `$JS.ACK.…`.
    /// An ack from inside the server (the MQTT gateway): `ack_subject` is the `$JS.ACK` reply
    /// subject of the delivery, the payload an ordinary ack.
    pub(crate) fn ack_directly(&self, ack_subject: &str) {
        self.on_ack(&Message::internal(ack_subject, None, None, &Bytes::new()));
    }

    fn on_ack(&self, msg: &Message<'_>) {
        let Some(r) = parse_ack_subject(msg.subject) else { return };
        let kind = parse_ack(msg.payload);
        // Only what an ack needs (a whole config clone per ack showed in profiles); the config
        // itself only when acks are sampled.
        let (ack_policy, ack_wait, max_ack_pending, sampled) = {
            let config = self.config.read();
            let sampled = (config.ack_policy == AckPolicy::Explicit
                && matches!(kind, AckKind::Ack | AckKind::Next(_))
                && sampling_hits(&config.sample_freq))
            .then(|| config.clone());
            (config.ack_policy, config.ack_wait, config.max_ack_pending, sampled)
        };
        let mut ack_time: Option<i64> = None;
        let now = Instant::now();
        let mut acked: Vec<u64> = Vec::new();
        let was_limited;
        {
            let mut inner = self.inner.lock();
            inner.last_activity = now;
            was_limited = max_ack_pending > 0 && inner.pending.len() as i64 >= max_ack_pending;
            match &kind {
                AckKind::Ack | AckKind::Next(_) | AckKind::Term(_) => {
                    if let (Some(config), Some(p)) = (&sampled, inner.pending.get(&r.stream_seq)) {
                        // Delivered when its ack wait started (a progress report restarts it).
                        let since = p.deadline.checked_sub(config.ack_wait_after(p.deliveries));
                        ack_time =
                            Some(since.map_or(0, |t| now.saturating_duration_since(t).as_nanos() as i64));
                    }
                    if ack_policy == AckPolicy::All {
                        let pending = inner.pending.range(..=r.stream_seq).map(|(s, _)| *s);
                        let abandoned = inner.abandoned.range(..=r.stream_seq).map(|(s, _)| *s);
                        let seqs: Vec<u64> = pending.chain(abandoned).collect();
                        for s in seqs {
                            self.ack_one(&mut inner, s);
                            acked.push(s);
                        }
                    } else if self.ack_one(&mut inner, r.stream_seq) {
                        acked.push(r.stream_seq);
                    }
                    inner.last_ack = crate::time::now_nanos();
                    self.update_ack_floor(&mut inner);
                }
                AckKind::Nak(delay) => {
                    if let Some(p) = inner.pending.get(&r.stream_seq).copied() {
                        let backoff = delay.unwrap_or_default();
                        inner.deadlines.remove(&(p.deadline, r.stream_seq));
                        let deadline = now + backoff;
                        inner.pending.insert(r.stream_seq, Pending { deadline, ..p });
                        if backoff.is_zero() {
                            inner.redeliver.insert(r.stream_seq);
                        } else {
                            inner.deadlines.insert((deadline, r.stream_seq));
                        }
                    }
                }
                AckKind::Progress => {
                    if let Some(p) = inner.pending.get(&r.stream_seq).copied() {
                        inner.deadlines.remove(&(p.deadline, r.stream_seq));
                        let deadline = now + Duration::from_nanos(u64::try_from(ack_wait).unwrap_or(0));
                        inner.pending.insert(r.stream_seq, Pending { deadline, ..p });
                        inner.deadlines.insert((deadline, r.stream_seq));
                    }
                }
            }
        }
        match &kind {
            AckKind::Nak(_) => self.advisory(
                "CONSUMER.MSG_NAKED",
                "nak",
                serde_json::json!({"stream_seq": r.stream_seq, "consumer_seq": r.consumer_seq, "deliveries": r.deliveries}),
            ),
            AckKind::Term(reason) => {
                let mut extra = serde_json::json!({"stream_seq": r.stream_seq, "consumer_seq": r.consumer_seq, "deliveries": r.deliveries});
                // Only a given reason is written (nats-server leaves an empty one out).
                if let Some(reason) = reason.as_ref().filter(|r| !r.is_empty()) {
                    extra["reason"] = reason.as_str().into();
                }
                self.advisory("CONSUMER.MSG_TERMINATED", "terminated", extra);
            }
            AckKind::Next(body) => {
                if let Some(reply) = msg.reply {
                    self.on_next_request(reply, body);
                }
            }
            _ => {}
        }
        if let Some(ack_time) = ack_time {
            let subject = format!("$JS.EVENT.METRIC.CONSUMER.ACK.{}.{}", self.stream_name, self.name);
            let extra = serde_json::json!({
                "consumer_seq": r.consumer_seq,
                "stream_seq": r.stream_seq,
                "ack_time": ack_time,
                "deliveries": r.deliveries,
            });
            self.event(subject, "io.nats.jetstream.metric.v1.consumer_ack", extra);
        }
        self.apply_retention(&acked);
        // AckSync: the ack itself asked for a confirmation.
        if let (Some(reply), false) = (msg.reply, matches!(kind, AckKind::Next(_))) {
            let empty = Bytes::new();
            deliver::publish(&self.account, &self.stats, &Message::internal(reply, None, None, &empty));
        }
        // A plain ack gives the delivery task nothing to do unless it was held back by
        // `max_ack_pending`; a nak or a progress report changes what is due when.
        if was_limited || matches!(kind, AckKind::Nak(_) | AckKind::Progress) {
            self.wake_up();
        }
    }

    /// Removes one pending message; true when it was pending.
    /// Acknowledges a pending message, or a late ack of one whose deliveries ran out.
    fn ack_one(&self, inner: &mut Inner, sseq: u64) -> bool {
        let dseq = match inner.pending.remove(&sseq) {
            Some(p) => {
                inner.deadlines.remove(&(p.deadline, sseq));
                inner.redeliver.remove(&sseq);
                p.dseq
            }
            None => match inner.abandoned.remove(&sseq) {
                Some(dseq) => dseq,
                None => return false,
            },
        };
        if let Err(e) = self.store.update_acks(dseq, sseq) {
            tracing::warn!(consumer = %self.name, "can't persist ack: {e}");
        }
        true
    }

    /// Just below the first message not acknowledged (pending or given up on); everything
    /// delivered when there is none.
    fn update_ack_floor(&self, inner: &mut Inner) {
        let pending = inner.pending.iter().next().map(|(sseq, p)| (*sseq, p.dseq));
        let abandoned = inner.abandoned.iter().next().map(|(sseq, dseq)| (*sseq, *dseq));
        match pending.into_iter().chain(abandoned).min() {
            Some((sseq, dseq)) => {
                inner.ack_floor =
                    SequencePair { consumer_seq: dseq.saturating_sub(1), stream_seq: sseq.saturating_sub(1) };
            }
            None => inner.ack_floor = inner.delivered,
        }
    }

    /// Interest and workqueue retention: drop messages nobody needs any more.
    fn apply_retention(&self, acked: &[u64]) {
        if acked.is_empty() {
            return;
        }
        let Some(stream) = self.stream.upgrade() else { return };
        match stream.retention() {
            RetentionPolicy::Limits => {}
            RetentionPolicy::WorkQueue => {
                for seq in acked {
                    stream.remove_acked(*seq);
                }
            }
            RetentionPolicy::Interest => {
                for seq in acked {
                    let Ok(msg) = stream.store.load(*seq) else { continue };
                    let all_done = stream
                        .interest
                        .interested(&msg.subject)
                        .iter()
                        .filter(|c| !std::ptr::eq(Arc::as_ptr(c), self))
                        .all(|c| c.has_acked(*seq));
                    if all_done {
                        stream.remove_acked(*seq);
                    }
                }
            }
        }
    }

    /// A pull request arrived (`MSG.NEXT`, or `+NXT`).
    pub(crate) fn on_next_request(&self, reply: &str, body: &[u8]) {
        let config = self.config.read().clone();
        if !config.is_pull() {
            self.send_status(reply, 409, "Consumer is push based", &[]);
            return;
        }
        let req = match parse_request(body) {
            Ok(r) => r,
            Err(why) => {
                self.send_status(reply, 400, &why, &[]);
                return;
            }
        };
        if config.max_batch > 0 && req.batch > config.max_batch {
            self.send_status(reply, 409, &format!("Exceeded MaxRequestBatch of {}", config.max_batch), &[]);
            return;
        }
        // A request without expires waits as long as it takes, whatever the limit (as nats-server).
        if config.max_expires > 0 && req.expires > config.max_expires {
            let d = crate::config::units::format_duration(Duration::from_nanos(config.max_expires as u64));
            self.send_status(reply, 409, &format!("Exceeded MaxRequestExpires of {d}"), &[]);
            return;
        }
        if config.max_bytes > 0 && req.max_bytes > config.max_bytes {
            self.send_status(
                reply,
                409,
                &format!("Exceeded MaxRequestMaxBytes of {}", config.max_bytes),
                &[],
            );
            return;
        }
        let policy = config.priority_policy;
        if let Err(why) = priority::check_request(policy, &config.priority_groups, &req) {
            self.send_status(reply, 400, why, &[]);
            return;
        }
        // As nats-server: a no_wait request that waiting requests would leave nothing for is
        // told so at once. Counting what is pending costs a look at the stream, so only when
        // requests are waiting (a plain fetch finds none).
        let claimed: u64 =
            if req.no_wait { self.inner.lock().waiting.iter().map(|w| w.remaining).sum() } else { 0 };
        let stream_pending =
            if claimed > 0 { self.stream.upgrade().map_or(0, |s| self.num_pending(&s)) } else { 0 };
        {
            let mut inner = self.inner.lock();
            // The pinned client keeps its pin by pulling; another pin is refused.
            if let (Some(pin), Some(id)) = (inner.pin.as_mut(), req.id.as_deref().filter(|id| !id.is_empty()))
            {
                if pin.id == id {
                    pin.expires = Instant::now() + pinned_ttl(&config);
                } else {
                    drop(inner);
                    self.send_status(reply, 423, "Nats-Pin-Id mismatch", &[]);
                    return;
                }
            }
            if claimed > 0 {
                let pending = stream_pending + inner.redeliver.len() as u64;
                if pending > 0 && pending < claimed {
                    drop(inner);
                    self.send_status(reply, 408, "Requests Pending", &[]);
                    return;
                }
            }
            if inner.waiting.len() as i64 >= config.max_waiting {
                drop(inner);
                if req.idle_heartbeat == 0 {
                    self.send_status(reply, 409, "Exceeded MaxWaiting", &[]);
                }
                return;
            }
            inner.last_activity = Instant::now();
            priority::enqueue(&mut inner.waiting, policy, Waiting::new(reply.into(), &req, Instant::now()));
        }
        self.wake_up();
    }
}

/// Whether this ack is sampled (`sample_freq`: a percentage, `%` optional), as nats-server
/// draws it.
fn sampling_hits(sample_freq: &str) -> bool {
    if sample_freq.is_empty() {
        return false;
    }
    let percent = sample_freq.trim_end_matches('%').parse::<i64>().unwrap_or(0);
    percent >= 100 || (percent > 0 && rand::random_range(0..100) <= percent)
}

/// How long a pinned client keeps its pin without pulling.
fn pinned_ttl(config: &ConsumerConfig) -> Duration {
    Duration::from_nanos(u64::try_from(config.priority_timeout).unwrap_or(0))
}

/// Generates a random name for an ephemeral consumer (8 base-62 characters, like nats-server's
/// short NUIDs).
pub fn ephemeral_name() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..8)
        .map(|_| char::from(ALPHABET.get(rand::random_range(0..ALPHABET.len())).copied().unwrap_or(b'x')))
        .collect()
}

/// The first sequence matching `filters` stored at or after `start_ns`; past the end when none.
pub(crate) fn first_at_or_after(stream: &Stream, filter: &SubjectFilter, start_ns: i64) -> u64 {
    match stream.store.load_next(filter, stream.first_seq_at(start_ns)) {
        Ok(m) => m.seq,
        Err(_) => stream.store.state().last_seq + 1,
    }
}

struct AckHandler(Weak<Consumer>);

impl InternalHandler for AckHandler {
    fn deliver(&self, msg: &Message<'_>) {
        if let Some(c) = self.0.upgrade() {
            c.on_ack(msg);
        }
    }
}

struct NextHandler(Weak<Consumer>);

impl InternalHandler for NextHandler {
    fn deliver(&self, msg: &Message<'_>) {
        if let (Some(c), Some(reply)) = (self.0.upgrade(), msg.reply) {
            c.on_next_request(reply, msg.payload);
        }
    }
}
