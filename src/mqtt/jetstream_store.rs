//! The durable [`SessionStore`]: everything the MQTT gateway keeps lives in JetStream streams
//! of the client's account, created on the account's first MQTT CONNECT (file storage, one
//! replica), so it survives a restart like any other stream.
//!
//! # Layout (nats-server's, so the data is interoperable)
//!
//! | Stream         | Subjects                                | Config                                  | Holds |
//! |----------------|-----------------------------------------|-----------------------------------------|-------|
//! | `$MQTT_sess`   | `$MQTT.sess.<hash8(client id)>`          | limits, `max_msgs_per_subject: 1`       | the session record (JSON) |
//! | `$MQTT_msgs`   | `$MQTT.msgs.<subject>`                   | **interest**                            | QoS 1/2 PUBLISHes, kept while a session's consumer has not acked them |
//! | `$MQTT_rmsgs`  | `$MQTT.rmsgs.<subject>`                  | limits, `max_msgs_per_subject: 1`       | retained messages, one per topic |
//! | `$MQTT_qos2in` | `$MQTT.qos2.in.<hash8>.<packet id>`      | limits, 1 per subject, discard new      | incoming QoS 2 ids awaiting PUBREL |
//! | `$MQTT_out`    | `$MQTT.out.pubrel.<hash8>.<packet id>`   | limits                                  | outgoing QoS 2 PUBREL markers awaiting PUBCOMP |
//!
//! `hash8` is nats-server's `getHash` (sha256, eight base-62 characters). The session record is
//! nats-server's `mqttPersistedSession` (`origin`, `id`, `clean`, `subs: {<subject>: qos}`)
//! plus a `jetway` object with what MQTT 5 needs (full subscription options, subscription
//! identifiers, session expiry); nats-server ignores it, and a record nats-server wrote (no
//! `jetway` object) is restored from `subs`. Retained messages carry nats-server's headers
//! (`Nmqtt-RTopic`, `Nmqtt-RFlags`, `Nmqtt-ROrigin`) plus the gateway's `Nmqtt-*` property
//! headers; the payload is the message body.
//!
//! # Where we differ from nats-server
//!
//! - **One consumer per session**, not one per QoS 1/2 subscription: a session's QoS 1/2
//!   filters become the `filter_subjects` of a single push consumer on `$MQTT_msgs` named
//!   `<hash8>` (durable for persistent sessions, memory-only for clean ones), delivering to
//!   `$MQTT.sub.<hash8>`; ack explicit, `ack_wait` = `mqtt.ack_wait`, `max_ack_pending` =
//!   `mqtt.max_ack_pending`. Filters that overlap are reduced (a filter contained in another
//!   is dropped); if two still overlap partially the consumer takes every message and the
//!   gateway acks those no subscription wants.
//! - **Shared subscriptions** (MQTT 5, which nats-server lacks) have one durable consumer per
//!   group, `shr_<hash8(group/filter)>`, delivering to `$MQTT.shr.<hash8>` with that hash as
//!   its `deliver_group`: each connected member holds a queue subscription there, so a message
//!   goes to one member, and waits in the stream while none is connected. The group lives while
//!   a session holds the subscription (counted here, from the session records at the account's
//!   first CONNECT); the last member's unsubscribe or session end removes the consumer.
//! - **Pipelined stores**: every write goes through the stream's write path with a
//!   completion (`Stream::ingest_with`); a PUBACK/PUBREC waits for its own store only.
//! - **QoS 2 keys** use the client id's hash, not the raw client id (which may hold characters
//!   that are not valid in a subject), and a PUBREL marker has one subject per packet id, so
//!   PUBCOMP is a purge of that subject and `$MQTT_out` needs no consumer (limits retention
//!   instead of interest).
//! - **A retained delete** purges the topic's subject instead of storing an empty record.
//! - **Incoming QoS 2** is delivered on first receipt (the spec's "method B"): the packet id is
//!   an empty marker in `$MQTT_qos2in` until PUBREL, and a resent PUBLISH with that id is not
//!   delivered again. nats-server keeps the whole message there and delivers it on PUBREL.
//! - **MQTT 5** facts (properties, expiry, subscription options) ride along as above; stored
//!   QoS 1/2 messages also carry `Nmqtt-Client` (publisher's hash, for no local) and
//!   `Nmqtt-Reply` (response topic).
//!
//! # What a user of nats-server's data sees
//!
//! Pointed at a store directory holding nats-server's `$MQTT_*` streams, the gateway uses
//! them as they are (a stream whose config differs from ours is used, not re-created).
//! Sessions are restored from `subs` (filters and QoS; no MQTT 5 options). nats-server's
//! per-subscription consumers (`<hash8>_<nuid>`) are left alone and keep holding the messages
//! they had not acknowledged (interest retention) until deleted with the JetStream API; the
//! session's own `<hash8>` consumer starts at the next message, so messages queued for a
//! nats-server session while it was offline are not delivered. Retained messages in the
//! per-subject format are read; the pre-2.10 single-subject JSON format is not. QoS 2 ids
//! nats-server recorded (under the raw client id) are not seen, and a `$MQTT_out` that
//! nats-server created has interest retention, so PUBREL markers are not kept in it.
//! nats-server reading our data sees the session records (it ignores the `jetway` object and
//! creates its own consumers), the retained messages and the queued messages.
//!
//! Deletions (purges, consumer removal) are applied at call time and are not awaited for
//! durability; appends are.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use jetway_protocols::mqtt::topic::{
    filter_to_subjects, subject_to_topic, topic_to_subject, SharedSubscription,
};
use jetway_protocols::mqtt::{MqttStr, Publish, QoS, RetainHandling, SubscriptionOptions};
use jetway_protocols::nats::HeaderMap;
use jetway_storage::PurgeOptions;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::store::{
    OutgoingMessage, RetainedMessage, SessionRecord, SessionStore, StoreError, StoreFuture, StoredDelivery,
    StoredSubscription,
};
use crate::account::Account;
use crate::jetstream::account::JsAccount;
use crate::jetstream::consumer::config::{AckPolicy, ConsumerConfig, DeliverPolicy};
use crate::jetstream::stream::config::{Discard, RetentionPolicy, StorageType, StreamConfig};
use crate::jetstream::stream::Stream;
use crate::jetstream::JetStream;
use crate::router::Message;

pub const SESS_STREAM: &str = "$MQTT_sess";
pub const MSGS_STREAM: &str = "$MQTT_msgs";
pub const RMSGS_STREAM: &str = "$MQTT_rmsgs";
pub const QOS2IN_STREAM: &str = "$MQTT_qos2in";
pub const OUT_STREAM: &str = "$MQTT_out";
const SESS_PREFIX: &str = "$MQTT.sess.";
pub const MSGS_PREFIX: &str = "$MQTT.msgs.";
const RMSGS_PREFIX: &str = "$MQTT.rmsgs.";
const QOS2IN_PREFIX: &str = "$MQTT.qos2.in.";
const OUT_PREFIX: &str = "$MQTT.out.pubrel.";
/// Where a session's consumer delivers: `$MQTT.sub.<hash8>`.
const DELIVER_PREFIX: &str = "$MQTT.sub.";
/// Where a shared subscription's group consumer delivers: `$MQTT.shr.<hash8>`.
const SHARED_DELIVER_PREFIX: &str = "$MQTT.shr.";
/// The name of a shared subscription's group consumer: `shr_<hash8>`.
const SHARED_CONSUMER_PREFIX: &str = "shr_";
const HDR_RTOPIC: &str = "Nmqtt-RTopic";
const HDR_RFLAGS: &str = "Nmqtt-RFlags";
const HDR_RORIGIN: &str = "Nmqtt-ROrigin";
const HDR_PUBREL: &str = "Nmqtt-PubRel";
/// On a stored QoS 1/2 message: the publisher's `hash8(client id)` (MQTT 5 no local).
pub const HDR_CLIENT: &str = "Nmqtt-Client";
/// On a stored QoS 1/2 message: the reply subject (MQTT 5 response topic).
pub const HDR_REPLY: &str = "Nmqtt-Reply";

/// nats-server's `getHash` ([`crate::jetstream::short_hash`]), needed for every stored QoS 1/2 message, so recent answers are remembered per thread.
pub fn hash8(name: &str) -> String {
    /// Names remembered per thread before the memo starts over.
    const MEMO_MAX: usize = 1024;
    thread_local! {
        static MEMO: std::cell::RefCell<HashMap<String, String, foldhash::fast::RandomState>> =
            std::cell::RefCell::new(HashMap::default());
    }
    let compute = || crate::jetstream::short_hash(name);
    MEMO.try_with(|memo| {
        let mut memo = memo.try_borrow_mut().ok()?;
        if let Some(hash) = memo.get(name) {
            return Some(hash.clone());
        }
        if memo.len() >= MEMO_MAX {
            memo.clear();
        }
        let hash = compute();
        memo.insert(name.to_owned(), hash.clone());
        Some(hash)
    })
    .ok()
    .flatten()
    .unwrap_or_else(compute)
}

/// The subject a session's consumer delivers to.
pub fn deliver_subject(client_id: &str) -> String {
    format!("{DELIVER_PREFIX}{}", hash8(client_id))
}

/// The group of an MQTT 5 shared subscription `$share/<group>/<filter>` in the JetStream
/// store: a durable consumer on `$MQTT_msgs` named `shr_<hash>` (hash: `hash8` of
/// `<group>/<filter>`) takes the group's QoS 1/2 messages and delivers each to one connected
/// member, through the members' queue subscriptions on `$MQTT.shr.<hash>` (queue `<hash>`).
/// While no member is connected the messages wait in the stream for the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedGroup {
    hash: String,
}

impl SharedGroup {
    pub fn new(group: &str, filter: &str) -> SharedGroup {
        // A group name holds no `/`, so `<group>/<filter>` names one pair.
        SharedGroup { hash: hash8(&format!("{group}/{filter}")) }
    }

    /// Where the group's consumer delivers.
    pub fn deliver_subject(&self) -> String {
        format!("{SHARED_DELIVER_PREFIX}{}", self.hash)
    }

    /// The queue group of the members' subscriptions on [`SharedGroup::deliver_subject`].
    pub fn queue(&self) -> &str {
        &self.hash
    }

    fn consumer_name(&self) -> String {
        group_consumer_name(&self.hash)
    }
}

/// The consumer of the shared group with hash `hash`.
fn group_consumer_name(hash: &str) -> String {
    format!("{SHARED_CONSUMER_PREFIX}{hash}")
}

/// The sessions holding each shared subscription group of one account (by group hash),
/// connected or not: the group's consumer lives while one does.
type GroupMembers = HashMap<String, HashSet<String>>;

/// The MQTT streams of one account.
struct Streams {
    js_account: Arc<JsAccount>,
    sess: Arc<Stream>,
    msgs: Arc<Stream>,
    rmsgs: Arc<Stream>,
    qos2in: Arc<Stream>,
    out: Arc<Stream>,
}

/// The JetStream-backed store.
pub struct JetStreamStore {
    js: Arc<JetStream>,
    /// nats-server's `origin`: the hash of the server name.
    origin: String,
    ack_wait: Duration,
    max_ack_pending: i64,
    accounts: Mutex<HashMap<String, Arc<Streams>>>,
    /// Shared subscription groups by account (see [`SharedGroup`]).
    groups: Mutex<HashMap<String, GroupMembers>>,
    /// The sessions with an expiry found when an account was opened, until the gateway takes
    /// them ([`SessionStore::take_expiring`]).
    expiring: Mutex<HashMap<String, Vec<(String, SystemTime)>>>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn fail<T: Send + 'static>(e: StoreError) -> StoreFuture<T> {
    Box::pin(std::future::ready(Err(e)))
}

fn done<T: Send + 'static>(value: T) -> StoreFuture<T> {
    Box::pin(std::future::ready(Ok(value)))
}

/// Appends through the stream's write path; resolves once durable (ordered at call time).
fn write(stream: &Stream, subject: &str, headers: Option<Bytes>, payload: Bytes) -> StoreFuture<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let msg = Message::internal(subject, None, headers.as_ref(), &payload);
    stream.ingest_with(
        &msg,
        Box::new(move |result: Result<(u64, bool), crate::jetstream::errors::ApiError>| {
            let _ = tx.send(result);
        }),
    );
    Box::pin(async move {
        match rx.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(StoreError::Unavailable("stream stopped".into())),
        }
    })
}

fn purge(stream: &Stream, filter: String) {
    if let Err(e) = stream.store.purge(&PurgeOptions { filter: Some(filter), ..PurgeOptions::default() }) {
        tracing::warn!(stream = %stream.name, error = %e, "MQTT store purge failed");
    }
}

fn stream_config(name: &str, subject: &str) -> StreamConfig {
    StreamConfig {
        name: name.into(),
        subjects: vec![subject.into()],
        storage: StorageType::File,
        num_replicas: 1,
        ..StreamConfig::default()
    }
}

/// The account's stream `config.name`: created, or the existing one (also when its config
/// differs, e.g. created by nats-server).
fn ensure(js_account: &JsAccount, config: StreamConfig) -> Result<Arc<Stream>, StoreError> {
    let name = config.name.clone();
    match js_account.create_stream(config) {
        Ok((stream, _)) => Ok(stream),
        Err(e) => {
            js_account.stream(&name).map_err(|_| unavailable(format!("can't create stream {name}: {e}")))
        }
    }
}

// ---- session record --------------------------------------------------------------------

#[derive(Debug, Default, Serialize, Deserialize)]
struct SessionJson {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    origin: String,
    #[serde(default)]
    id: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    clean: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    subs: BTreeMap<String, u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jetway: Option<JetwayJson>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct JetwayJson {
    #[serde(default)]
    subs: Vec<SubJson>,
    /// Session end, ns since the epoch; absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SubJson {
    filter: String,
    qos: u8,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    nl: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    rap: bool,
    #[serde(default)]
    rh: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<u32>,
    /// An MQTT 5 shared subscription.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    sh: bool,
}

fn nanos(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn from_nanos(ns: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

fn encode_session(origin: &str, record: &SessionRecord) -> Vec<u8> {
    let mut subs = BTreeMap::new();
    for s in &record.subscriptions {
        if s.shared {
            continue;
        }
        if let Ok((subject, _)) = filter_to_subjects(&s.filter) {
            subs.insert(subject, s.options.qos as u8);
        }
    }
    let json = SessionJson {
        origin: origin.to_owned(),
        id: record.client_id.clone(),
        clean: false,
        subs,
        jetway: Some(JetwayJson {
            subs: record
                .subscriptions
                .iter()
                .map(|s| SubJson {
                    filter: s.filter.clone(),
                    qos: s.options.qos as u8,
                    nl: s.options.no_local,
                    rap: s.options.retain_as_published,
                    rh: s.options.retain_handling as u8,
                    id: s.identifier,
                    sh: s.shared,
                })
                .collect(),
            expires: record.expires_at.map(nanos),
        }),
    };
    serde_json::to_vec(&json).unwrap_or_default()
}

/// An MQTT filter for a NATS subject filter of a nats-server session record.
fn subject_filter_to_topic(subject: &str) -> String {
    subject_to_topic(subject)
        .split('/')
        .map(|level| match level {
            "*" => "+",
            ">" => "#",
            other => other,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn decode_session(client_id: &str, payload: &[u8]) -> Result<Option<SessionRecord>, StoreError> {
    let json: SessionJson = serde_json::from_slice(payload).map_err(unavailable)?;
    if json.id != client_id {
        return Err(StoreError::Unavailable(format!(
            "session hash collision: {:?} holds {:?}",
            client_id, json.id
        )));
    }
    let options = |qos: u8, nl: bool, rap: bool, rh: u8| SubscriptionOptions {
        qos: QoS::from_bits(qos).unwrap_or(QoS::AtMostOnce),
        no_local: nl,
        retain_as_published: rap,
        retain_handling: match rh {
            1 => RetainHandling::OnNewSubscribe,
            2 => RetainHandling::Never,
            _ => RetainHandling::OnSubscribe,
        },
    };
    let (subscriptions, expires_at) = match json.jetway {
        Some(ext) => (
            ext.subs
                .into_iter()
                .map(|s| StoredSubscription {
                    filter: s.filter,
                    options: options(s.qos, s.nl, s.rap, s.rh),
                    identifier: s.id,
                    shared: s.sh,
                })
                .collect(),
            ext.expires.map(from_nanos),
        ),
        None => (
            json.subs
                .into_iter()
                .map(|(subject, qos)| StoredSubscription {
                    filter: subject_filter_to_topic(&subject),
                    options: options(qos, false, false, 0),
                    identifier: None,
                    shared: false,
                })
                .collect(),
            None,
        ),
    };
    Ok(Some(SessionRecord { client_id: client_id.to_owned(), subscriptions, expires_at }))
}

// ---- retained messages -----------------------------------------------------------------

fn publish_flags(publish: &Publish) -> u8 {
    (publish.qos as u8) << 1 | u8::from(publish.retain)
}

fn decode_retained(msg: &jetway_storage::StoredMessage) -> Option<RetainedMessage> {
    let headers = msg.headers.as_ref().and_then(|raw| HeaderMap::decode(raw).ok()).unwrap_or_default();
    let topic = match headers.get(HDR_RTOPIC) {
        Some(t) => t.to_owned(),
        None => subject_to_topic(msg.subject.strip_prefix(RMSGS_PREFIX)?).into_owned(),
    };
    let flags = headers
        .get(HDR_RFLAGS)
        .filter(|f| !f.starts_with('-'))
        .and_then(|f| u8::from_str_radix(f, 16).ok())
        .unwrap_or(0);
    let mut publish = Publish::new(MqttStr::from(topic.clone()), msg.payload.clone());
    publish.qos = QoS::from_bits((flags >> 1) & 3).unwrap_or(QoS::AtMostOnce);
    publish.retain = true;
    publish.properties = super::bridge::properties_from_headers(msg.headers.as_ref());
    Some(RetainedMessage { topic, publish, stored_at: from_nanos(msg.timestamp) })
}

// ---- consumer filters ------------------------------------------------------------------

/// The filters of one consumer: duplicates and filters contained in another dropped (what a
/// consumer may not have, as with nats-server); filters overlapping in part (`a.*`, `*.b`)
/// stay, and a message matching both is still delivered once.
///
/// A filter set answers for each filter, so a session with thousands of subscriptions costs
/// thousands of lookups here, not millions of comparisons.
pub fn consumer_filters(mut filters: Vec<String>) -> Vec<String> {
    filters.sort();
    filters.dedup();
    let all: jetway_subject::FilterSet = filters.iter().collect();
    filters.iter().filter(|f| !all.contained_in_another(f)).cloned().collect()
}

/// The account's streams, or the method returns the store's failure.
macro_rules! try_streams {
    ($store:expr, $account:expr) => {
        match $store.streams($account) {
            Ok(s) => s,
            Err(e) => return fail(e),
        }
    };
}

/// The packet ids under `prefix.<id>` subjects, with the sequence of each, in stored order.
fn packet_ids(stream: &Stream, prefix: &str) -> Vec<u16> {
    let mut found: Vec<(u64, u16)> = stream
        .store
        .subjects_state(&format!("{prefix}.*"))
        .into_iter()
        .filter_map(|(subject, state)| Some((state.last, subject.rsplit('.').next()?.parse().ok()?)))
        .collect();
    found.sort_unstable();
    found.into_iter().map(|(_, id)| id).collect()
}

impl JetStreamStore {
    pub fn new(js: Arc<JetStream>, ack_wait: Duration, max_ack_pending: u32) -> JetStreamStore {
        let origin = hash8(&js.server_name);
        JetStreamStore {
            js,
            origin,
            ack_wait,
            max_ack_pending: i64::from(max_ack_pending.max(1)),
            accounts: Mutex::new(HashMap::new()),
            groups: Mutex::new(HashMap::new()),
            expiring: Mutex::new(HashMap::new()),
        }
    }

    fn streams(&self, account: &str) -> Result<Arc<Streams>, StoreError> {
        self.accounts
            .lock()
            .get(account)
            .cloned()
            .ok_or_else(|| StoreError::Unavailable(format!("MQTT streams of account {account} not open")))
    }

    fn create_streams(&self, account: &Arc<Account>) -> Result<Arc<Streams>, StoreError> {
        let js_account = self.js.enable_account(account);
        let sess = ensure(
            &js_account,
            StreamConfig { max_msgs_per_subject: 1, ..stream_config(SESS_STREAM, "$MQTT.sess.>") },
        )?;
        let msgs = ensure(
            &js_account,
            StreamConfig {
                retention: RetentionPolicy::Interest,
                ..stream_config(MSGS_STREAM, "$MQTT.msgs.>")
            },
        )?;
        let rmsgs = ensure(
            &js_account,
            StreamConfig { max_msgs_per_subject: 1, ..stream_config(RMSGS_STREAM, "$MQTT.rmsgs.>") },
        )?;
        let qos2in = ensure(
            &js_account,
            StreamConfig {
                max_msgs_per_subject: 1,
                discard: Discard::New,
                discard_new_per_subject: true,
                ..stream_config(QOS2IN_STREAM, "$MQTT.qos2.in.>")
            },
        )?;
        let out = ensure(&js_account, stream_config(OUT_STREAM, "$MQTT.out.>"))?;
        Ok(Arc::new(Streams { js_account, sess, msgs, rmsgs, qos2in, out }))
    }

    /// `client_id` no longer holds the shared groups `which` picks (by hash); a group nobody
    /// holds any more loses its consumer.
    fn leave_groups(&self, streams: &Streams, account: &str, client_id: &str, which: impl Fn(&str) -> bool) {
        let mut groups = self.groups.lock();
        let Some(members) = groups.get_mut(account) else { return };
        members.retain(|hash, holders| {
            let ended = which(hash) && holders.remove(client_id) && holders.is_empty();
            if ended {
                streams.msgs.remove_consumer(&group_consumer_name(hash));
            }
            !ended
        });
    }
}

impl SessionStore for JetStreamStore {
    fn open_account(&self, account: &Arc<Account>) -> StoreFuture<()> {
        let mut accounts = self.accounts.lock();
        if accounts.contains_key(account.name.as_ref()) {
            return done(());
        }
        match self.create_streams(account) {
            Ok(streams) => {
                let scan = scan_sessions(&streams.sess, SystemTime::now());
                end_unheld_groups(&streams.msgs, &scan.members);
                self.groups.lock().insert(account.name.to_string(), scan.members);
                self.expiring.lock().insert(account.name.to_string(), scan.expiring);
                accounts.insert(account.name.to_string(), streams);
                done(())
            }
            Err(e) => fail(e),
        }
    }

    fn load_session(&self, account: &str, client_id: &str) -> StoreFuture<Option<SessionRecord>> {
        let streams = try_streams!(self, account);
        let subject = format!("{SESS_PREFIX}{}", hash8(client_id));
        let result = match streams.sess.store.load_last(&subject) {
            Ok(msg) if msg.payload.is_empty() => Ok(None),
            Ok(msg) => decode_session(client_id, &msg.payload),
            Err(_) => Ok(None),
        };
        Box::pin(std::future::ready(result))
    }

    fn save_session(&self, account: &str, record: SessionRecord) -> StoreFuture<()> {
        let streams = try_streams!(self, account);
        let subject = format!("{SESS_PREFIX}{}", hash8(&record.client_id));
        write(&streams.sess, &subject, None, Bytes::from(encode_session(&self.origin, &record)))
    }

    fn delete_session(&self, account: &str, client_id: &str) -> StoreFuture<()> {
        let streams = try_streams!(self, account);
        let hash = hash8(client_id);
        streams.msgs.remove_consumer(&hash);
        self.leave_groups(&streams, account, client_id, |_| true);
        purge(&streams.sess, format!("{SESS_PREFIX}{hash}"));
        purge(&streams.qos2in, format!("{QOS2IN_PREFIX}{hash}.*"));
        purge(&streams.out, format!("{OUT_PREFIX}{hash}.*"));
        done(())
    }

    fn store_retained(&self, account: &str, message: RetainedMessage) -> StoreFuture<()> {
        let streams = try_streams!(self, account);
        let subject = match topic_to_subject(&message.topic) {
            Ok(s) => s.into_owned(),
            Err(e) => return fail(unavailable(e)),
        };
        let mut headers = HeaderMap::new();
        headers.append(HDR_RTOPIC, message.topic.as_str());
        headers.append(HDR_RFLAGS, format!("{:x}", publish_flags(&message.publish)));
        headers.append(HDR_RORIGIN, self.origin.as_str());
        if let Some(raw) = super::bridge::to_nats_headers(&message.publish) {
            if let Ok(props) = HeaderMap::decode(&raw) {
                for (name, value) in props.iter() {
                    headers.append(name, value);
                }
            }
        }
        let payload = message.publish.payload.clone();
        write(&streams.rmsgs, &format!("{RMSGS_PREFIX}{subject}"), Some(headers.encode()), payload)
    }

    fn delete_retained(&self, account: &str, topic: &str) -> StoreFuture<()> {
        let streams = try_streams!(self, account);
        if let Ok(subject) = topic_to_subject(topic) {
            purge(&streams.rmsgs, format!("{RMSGS_PREFIX}{subject}"));
        }
        done(())
    }

    fn retained_matching(&self, account: &str, filter: &str) -> StoreFuture<Vec<RetainedMessage>> {
        let streams = try_streams!(self, account);
        let Ok((subject, parent)) = filter_to_subjects(filter) else { return done(Vec::new()) };
        let mut found = Vec::new();
        for f in std::iter::once(subject).chain(parent) {
            for subject in streams.rmsgs.store.subjects_state(&format!("{RMSGS_PREFIX}{f}")).into_keys() {
                let Ok(msg) = streams.rmsgs.store.load_last(&subject) else { continue };
                if let Some(m) = decode_retained(&msg) {
                    if super::retained::filter_matches(filter, &m.topic) {
                        found.push(m);
                    }
                }
            }
        }
        done(found)
    }

    fn store_outgoing(&self, account: &str, client_id: &str, message: OutgoingMessage) -> StoreFuture<()> {
        // Unreleased messages from a session's consumer are held by the consumer; others
        // (retained deliveries) are not persisted, as in nats-server.
        if !message.released {
            return done(());
        }
        let streams = try_streams!(self, account);
        let id = message.publish.packet_id;
        let mut headers = HeaderMap::new();
        headers.append(HDR_PUBREL, id.to_string());
        let subject = format!("{OUT_PREFIX}{}.{id}", hash8(client_id));
        write(&streams.out, &subject, Some(headers.encode()), Bytes::new())
    }

    fn remove_outgoing(&self, account: &str, client_id: &str, packet_id: u16) -> StoreFuture<()> {
        let streams = try_streams!(self, account);
        purge(&streams.out, format!("{OUT_PREFIX}{}.{packet_id}", hash8(client_id)));
        done(())
    }

    fn outgoing(&self, account: &str, client_id: &str) -> StoreFuture<Vec<OutgoingMessage>> {
        let streams = try_streams!(self, account);
        let found = packet_ids(&streams.out, &format!("{OUT_PREFIX}{}", hash8(client_id)));
        let messages = found
            .into_iter()
            .map(|id| {
                let mut publish = Publish::new("", Bytes::new());
                publish.qos = QoS::ExactlyOnce;
                publish.packet_id = id;
                OutgoingMessage { publish, released: true, delivery: None }
            })
            .collect();
        done(messages)
    }

    fn record_incoming_qos2(&self, account: &str, client_id: &str, packet_id: u16) -> StoreFuture<()> {
        let streams = try_streams!(self, account);
        let subject = format!("{QOS2IN_PREFIX}{}.{packet_id}", hash8(client_id));
        let stored = write(&streams.qos2in, &subject, None, Bytes::new());
        Box::pin(async move {
            match stored.await {
                // Already recorded (discard new per subject): that is the deduplication.
                Err(_) if streams.qos2in.store.load_last(&subject).is_ok() => Ok(()),
                other => other,
            }
        })
    }

    fn clear_incoming_qos2(&self, account: &str, client_id: &str, packet_id: u16) -> StoreFuture<()> {
        let streams = try_streams!(self, account);
        purge(&streams.qos2in, format!("{QOS2IN_PREFIX}{}.{packet_id}", hash8(client_id)));
        done(())
    }

    fn incoming_qos2(&self, account: &str, client_id: &str) -> StoreFuture<Vec<u16>> {
        let streams = try_streams!(self, account);
        let ids = packet_ids(&streams.qos2in, &format!("{QOS2IN_PREFIX}{}", hash8(client_id)));
        done(ids)
    }

    fn delivers_stored(&self) -> bool {
        true
    }

    fn store_message(
        &self,
        account: &str,
        client_id: Option<&str>,
        publish: &Publish,
    ) -> Option<StoreFuture<()>> {
        if publish.qos == QoS::AtMostOnce {
            return None;
        }
        let streams = match self.streams(account) {
            Ok(s) => s,
            Err(e) => return Some(fail(e)),
        };
        let subject = topic_to_subject(publish.topic.as_str()).ok()?;
        let stored_subject = format!("{MSGS_PREFIX}{subject}");
        // Only persistent sessions' consumers take from `$MQTT_msgs`: a message none of them
        // wants is not offered to the stream at all (not even as a skipped sequence).
        if !streams.msgs.has_interest(&stored_subject) {
            return None;
        }
        let mut headers = super::bridge::nats_header_map(publish);
        if let Some(id) = client_id {
            headers.append(HDR_CLIENT, hash8(id));
        }
        if let Some(reply) =
            publish.properties.response_topic.as_ref().and_then(|t| topic_to_subject(t.as_str()).ok())
        {
            headers.append(HDR_REPLY, reply.as_ref());
        }
        let headers = (!headers.is_empty()).then(|| headers.encode());
        Some(write(&streams.msgs, &stored_subject, headers, publish.payload.clone()))
    }

    fn ack_stored(&self, account: &str, _client_id: &str, delivery: &StoredDelivery) {
        let Ok(streams) = self.streams(account) else { return };
        // The session's consumer or a shared subscription's: the one that delivered it.
        let Some(name) = delivery.consumer() else { return };
        let consumer = streams.msgs.consumers.read().get(name).cloned();
        if let Some(consumer) = consumer {
            consumer.ack_directly(&delivery.ack_subject);
        }
    }

    fn sync_consumer(
        &self,
        account: &str,
        client_id: &str,
        filters: Vec<String>,
        durable: bool,
        resume: bool,
    ) -> StoreFuture<()> {
        let streams = try_streams!(self, account);
        let hash = hash8(client_id);
        if filters.is_empty() {
            streams.msgs.remove_consumer(&hash);
            return done(());
        }
        let deliver = Deliver { subject: format!("{DELIVER_PREFIX}{hash}"), group: String::new() };
        let config =
            push_consumer_config(&hash, deliver, filters, durable, self.ack_wait, self.max_ack_pending);
        // The SUBACK waits for the consumer's config to be on disk: a group commit shared with
        // every other session being set up, awaited without blocking the connection's thread.
        let (on_disk, written) = completion();
        let created =
            match streams.js_account.create_consumer_then(&streams.msgs, config.clone(), "", on_disk) {
                Ok(consumer) => Ok((consumer, written)),
                Err(e) => {
                    // A change the update rules refuse (e.g. clean to persistent): start over.
                    tracing::debug!(client_id, error = %e, "MQTT session consumer re-created");
                    streams.msgs.remove_consumer(&hash);
                    let (on_disk, written) = completion();
                    streams
                        .js_account
                        .create_consumer_then(&streams.msgs, config, "", on_disk)
                        .map(|c| (c, written))
                }
            };
        match created {
            Ok((consumer, written)) => {
                if resume {
                    consumer.redeliver_pending();
                }
                durable_then(written)
            }
            Err(e) => fail(unavailable(e)),
        }
    }

    fn join_shared(
        &self,
        account: &str,
        client_id: &str,
        group: &SharedGroup,
        filters: Vec<String>,
    ) -> StoreFuture<()> {
        let streams = try_streams!(self, account);
        let name = group.consumer_name();
        let deliver = Deliver { subject: group.deliver_subject(), group: group.queue().to_owned() };
        let config = push_consumer_config(&name, deliver, filters, true, self.ack_wait, self.max_ack_pending);
        let (on_disk, written) = completion();
        let (consumer, written) =
            match streams.js_account.create_consumer_then(&streams.msgs, config, "", on_disk) {
                Ok(consumer) => (consumer, Some(written)),
                // Created with other MQTT settings (ack wait) that may not change: kept.
                Err(e) => match streams.msgs.consumers.read().get(&name).cloned() {
                    Some(existing) => (existing, None),
                    None => return fail(unavailable(e)),
                },
            };
        self.groups
            .lock()
            .entry(account.to_owned())
            .or_default()
            .entry(group.hash.clone())
            .or_default()
            .insert(client_id.to_owned());
        // A member is here: what waited for one goes out.
        consumer.wake_up();
        written.map_or_else(|| done(()), durable_then)
    }

    fn take_expiring(&self, account: &str) -> Vec<(String, SystemTime)> {
        self.expiring.lock().remove(account).unwrap_or_default()
    }

    fn leave_shared(&self, account: &str, client_id: &str, group: &SharedGroup) {
        // Taken first: `open_account` locks `accounts`, then `groups`.
        let Ok(streams) = self.streams(account) else { return };
        self.leave_groups(&streams, account, client_id, |hash| hash == group.hash);
    }
}

/// What the session records of an account say when it is opened (after a start).
struct SessionScan {
    /// Who holds each shared subscription group (a record past its expiry holds nothing).
    members: GroupMembers,
    /// Every session with an expiry, and when it ends.
    expiring: Vec<(String, SystemTime)>,
}

fn scan_sessions(sess: &Stream, now: SystemTime) -> SessionScan {
    let mut members = GroupMembers::new();
    let mut expiring = Vec::new();
    for subject in sess.store.subjects_state(&format!("{SESS_PREFIX}*")).into_keys() {
        let Ok(msg) = sess.store.load_last(&subject) else { continue };
        let Ok(json) = serde_json::from_slice::<SessionJson>(&msg.payload) else { continue };
        let Some(ext) = json.jetway else { continue };
        if let Some(at) = ext.expires.map(from_nanos) {
            expiring.push((json.id.clone(), at));
            if at <= now {
                continue;
            }
        }
        for sub in ext.subs.iter().filter(|s| s.sh) {
            if let Some(Ok(shared)) = SharedSubscription::parse(&sub.filter) {
                let group = SharedGroup::new(shared.group, shared.filter);
                members.entry(group.hash).or_default().insert(json.id.clone());
            }
        }
    }
    SessionScan { members, expiring }
}

/// Removes the group consumers no session holds (left behind by a crash between a session's
/// end and its group's).
fn end_unheld_groups(msgs: &Stream, members: &GroupMembers) {
    let unheld: Vec<String> = msgs
        .consumers
        .read()
        .keys()
        .filter(|name| name.strip_prefix(SHARED_CONSUMER_PREFIX).is_some_and(|h| !members.contains_key(h)))
        .cloned()
        .collect();
    for name in unheld {
        msgs.remove_consumer(&name);
    }
}

type Written = tokio::sync::oneshot::Receiver<Result<u64, jetway_storage::StoreError>>;

/// A storage completion and the receiver of its outcome.
fn completion() -> (jetway_storage::Completion, Written) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let done: jetway_storage::Completion = Box::new(move |result| {
        let _ = tx.send(result);
    });
    (done, rx)
}

/// Resolves once a consumer's config is durable (or reports the store's failure).
fn durable_then(rx: Written) -> StoreFuture<()> {
    Box::pin(async move {
        match rx.await {
            Ok(Err(e)) => Err(unavailable(e)),
            Ok(Ok(_)) | Err(_) => Ok(()),
        }
    })
}

/// Where a consumer on `$MQTT_msgs` delivers: the subject, and the queue group (empty: none).
struct Deliver {
    subject: String,
    group: String,
}

/// A consumer on `$MQTT_msgs` named `name` for QoS 1/2 `filters`: a session's (`<hash8>`) or
/// a shared subscription group's (`shr_<hash8>`).
fn push_consumer_config(
    name: &str,
    deliver: Deliver,
    filters: Vec<String>,
    durable: bool,
    ack_wait: Duration,
    max_ack_pending: i64,
) -> ConsumerConfig {
    let filters: Vec<String> =
        consumer_filters(filters).into_iter().map(|f| format!("{MSGS_PREFIX}{f}")).collect();
    let mut config = ConsumerConfig {
        name: name.to_owned(),
        durable_name: if durable { name.to_owned() } else { String::new() },
        deliver_subject: deliver.subject,
        deliver_group: deliver.group,
        deliver_policy: DeliverPolicy::New,
        ack_policy: AckPolicy::Explicit,
        ack_wait: i64::try_from(ack_wait.as_nanos()).unwrap_or(i64::MAX),
        max_ack_pending,
        mem_storage: !durable,
        ..ConsumerConfig::default()
    };
    match <[String; 1]>::try_from(filters) {
        Ok([one]) => config.filter_subject = one,
        Err(many) => config.filter_subjects = many,
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_eight_base62_characters_and_stable() {
        let h = hash8("client-1");
        assert_eq!(h.len(), 8);
        assert!(h.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(h, hash8("client-1"));
        assert_ne!(h, hash8("client-2"));
    }

    #[test]
    fn consumer_filters_drop_duplicates_and_contained_ones_and_keep_partial_overlaps() {
        let f = |v: &[&str]| consumer_filters(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(f(&["a.>", "a.b", "a", "a"]), vec!["a", "a.>"]);
        assert_eq!(f(&["a.*", "*.b"]), vec!["*.b", "a.*"]);
        assert_eq!(f(&["x", "y.z", "x"]), vec!["x", "y.z"]);
        assert_eq!(f(&["a.*.c", "a.>", ">"]), vec![">"]);
    }

    #[test]
    fn session_records_round_trip_and_read_nats_server_records() {
        let record = SessionRecord {
            client_id: "c1".into(),
            subscriptions: vec![StoredSubscription {
                filter: "a/+/c".into(),
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: true,
                    retain_as_published: false,
                    retain_handling: RetainHandling::Never,
                },
                identifier: Some(7),
                shared: false,
            }],
            expires_at: None,
        };
        let bytes = encode_session("origin", &record);
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["id"], "c1");
        assert_eq!(json["subs"]["a.*.c"], 1);
        assert_eq!(decode_session("c1", &bytes).unwrap(), Some(record));
        let nats = br#"{"origin":"x","id":"c2","subs":{"a.*.c":1,"b.>":2}}"#;
        let restored = decode_session("c2", nats).unwrap().unwrap();
        let filters: Vec<_> = restored.subscriptions.iter().map(|s| s.filter.as_str()).collect();
        assert_eq!(filters, vec!["a/+/c", "b/#"]);
        assert!(decode_session("other", nats).is_err());
    }
}
