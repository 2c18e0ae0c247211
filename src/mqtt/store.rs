//! The persistence seam of the MQTT gateway: sessions, retained messages, outgoing QoS 1/2
//! messages awaiting their acknowledgement, and incoming QoS 2 packet identifiers awaiting
//! PUBREL.
//!
//! # The contract
//!
//! Every method returns a [`StoreFuture`]: a boxed `'static` future that resolves once the
//! operation is durable. The gateway relies on three properties, which a JetStream-backed
//! implementation (`$MQTT_sess`, `$MQTT_msgs`, `$MQTT_rmsgs`, `$MQTT_qos2in`, `$MQTT_out`, see
//! `reference/nats-reference.md` 3.3–3.8) must keep:
//!
//! - **Ordered at call time.** The effect of a call is ordered before the effect of any later
//!   call on the same store, even if the earlier future has not resolved yet (a JetStream
//!   store enqueues the append in the call and only awaits the pub ack in the future).
//! - **Pipelined.** The gateway keeps many futures outstanding and sends each PUBACK / PUBREC
//!   when its own future resolves, in packet order; it never waits for one store before
//!   issuing the next. The futures therefore must make progress without being polled (await a
//!   completion sent by the store's own task, don't do the work inside `poll`).
//! - **Fire and forget is allowed.** Dropping a future does not cancel the operation; the
//!   gateway drops the futures of writes whose completion it does not need to observe.
//!
//! # Implementations
//!
//! [`super::jetstream_store::JetStreamStore`] is the durable one, used whenever JetStream is
//! enabled: it also stores QoS 1/2 messages and delivers them to sessions through one
//! consumer per session ([`SessionStore::delivers_stored`]). [`MemoryStore`] keeps everything
//! in process memory and completes every future at once; it is the fallback when JetStream is
//! disabled: **nothing survives a server restart then**.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use foldhash::fast::RandomState;
use jetway_protocols::mqtt::{Publish, SubscriptionOptions};
use parking_lot::Mutex;

use crate::account::Account;

/// A store operation in flight; resolves once the operation is durable.
pub type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'static>>;

/// Why the store could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backing store is unavailable (e.g. JetStream has no leader); the client gets a
    /// failure code (CONNACK 0x88 server unavailable, SUBACK 0x80, PUBACK 0x80) and may retry.
    #[error("MQTT store unavailable: {0}")]
    Unavailable(String),
    /// A limit of the store was reached.
    #[error("MQTT store limit reached: {0}")]
    LimitReached(&'static str),
}

/// A session's subscription as persisted: enough to re-create it on reconnect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubscription {
    /// The filter as the client sent it, `$share/<group>/` prefix included.
    pub filter: String,
    pub options: SubscriptionOptions,
    /// MQTT 5 subscription identifier, delivered with every matching PUBLISH.
    pub identifier: Option<u32>,
    /// An MQTT 5 shared subscription (`$share/<group>/<filter>`); for an MQTT 3.1.1 client
    /// such a filter is a plain topic filter.
    pub shared: bool,
}

/// A persistent session (nats-server's `mqttPersistedSession`, keyed by client id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub client_id: String,
    pub subscriptions: Vec<StoredSubscription>,
    /// When the session ends if no client resumes it; `None` never (3.1.1 clean session 0, or
    /// MQTT 5 expiry 0xFFFFFFFF). The gateway checks it when loading.
    pub expires_at: Option<SystemTime>,
}

/// A retained message, one per topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedMessage {
    /// The MQTT topic name.
    pub topic: String,
    /// The PUBLISH as received (QoS, payload, MQTT 5 properties); `retain` is set.
    pub publish: Publish,
    /// When it was stored, to count down its message expiry interval.
    pub stored_at: SystemTime,
}

/// A QoS 1/2 PUBLISH sent to a session's client and not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The PUBLISH as sent, packet identifier included. To serialise it, encode it as an
    /// MQTT 5 packet (`Packet::Publish(p).encode(ProtocolVersion::V5, ..)`) and read it back
    /// with `Decoder::connected(.., ProtocolVersion::V5)`.
    pub publish: Publish,
    /// QoS 2: PUBREC arrived and PUBREL was sent; only PUBREL is resent from now on.
    pub released: bool,
    /// The stored message behind it (delivered by the session's consumer), acknowledged to
    /// the consumer on PUBACK (QoS 1) or PUBREC (QoS 2); `None` once acknowledged, or for
    /// messages that are not stored (retained deliveries, the in-memory store).
    pub delivery: Option<StoredDelivery>,
}

/// Where a delivery from a session's consumer came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDelivery {
    /// The consumer's `$JS.ACK.…` reply subject: an empty message to it acknowledges.
    pub ack_subject: String,
    pub stream_seq: u64,
}

impl StoredDelivery {
    /// The consumer that delivered it (`$JS.ACK.<stream>.<consumer>.…`): the session's own, or
    /// a shared subscription group's.
    pub fn consumer(&self) -> Option<&str> {
        self.ack_subject.split('.').nth(3)
    }

    /// Whether `other` delivers the same message from the same consumer (a redelivery).
    pub fn same_as(&self, other: &StoredDelivery) -> bool {
        self.stream_seq == other.stream_seq && self.consumer() == other.consumer()
    }
}

/// What the MQTT gateway persists. Keys are scoped by account name: client ids and topics of
/// different accounts never meet.
pub trait SessionStore: Send + Sync + 'static {
    /// The session of `client_id`, if one was saved (expired or not: the caller checks).
    fn load_session(&self, account: &str, client_id: &str) -> StoreFuture<Option<SessionRecord>>;
    /// Creates or replaces the session record; resolves once it is durable (a SUBACK or
    /// UNSUBACK waits for it: an acknowledged subscription must survive a crash).
    fn save_session(&self, account: &str, record: SessionRecord) -> StoreFuture<()>;
    /// Deletes the session record and everything that belongs to it: outgoing messages and
    /// incoming QoS 2 packet identifiers.
    fn delete_session(&self, account: &str, client_id: &str) -> StoreFuture<()>;

    /// Stores `message` as the retained message of its topic, replacing the previous one.
    fn store_retained(&self, account: &str, message: RetainedMessage) -> StoreFuture<()>;
    /// Deletes the retained message of `topic` (a retained PUBLISH with an empty payload).
    fn delete_retained(&self, account: &str, topic: &str) -> StoreFuture<()>;
    /// Every retained message whose topic matches the MQTT topic `filter` (wildcards
    /// included; topics starting with `$` are not matched by a leading wildcard).
    fn retained_matching(&self, account: &str, filter: &str) -> StoreFuture<Vec<RetainedMessage>>;

    /// Records a QoS 1/2 PUBLISH sent to `client_id`, or replaces it (same packet id) when it
    /// moves to `released`. Called before the PUBLISH is written to the client.
    fn store_outgoing(&self, account: &str, client_id: &str, message: OutgoingMessage) -> StoreFuture<()>;
    /// The client acknowledged `packet_id` (PUBACK, or PUBCOMP for QoS 2).
    fn remove_outgoing(&self, account: &str, client_id: &str, packet_id: u16) -> StoreFuture<()>;
    /// Everything still unacknowledged, in packet order of sending, to resend on reconnect.
    fn outgoing(&self, account: &str, client_id: &str) -> StoreFuture<Vec<OutgoingMessage>>;

    /// Records that the QoS 2 PUBLISH `packet_id` from `client_id` was received (and routed):
    /// until PUBREL, a PUBLISH with the same id is a duplicate. The PUBREC waits for this.
    fn record_incoming_qos2(&self, account: &str, client_id: &str, packet_id: u16) -> StoreFuture<()>;
    /// PUBREL arrived for `packet_id`: the id may be reused. PUBCOMP waits for this.
    fn clear_incoming_qos2(&self, account: &str, client_id: &str, packet_id: u16) -> StoreFuture<()>;
    /// The QoS 2 packet ids received and not yet released, restored on reconnect.
    fn incoming_qos2(&self, account: &str, client_id: &str) -> StoreFuture<Vec<u16>>;

    /// Prepares the account's storage (the JetStream store creates its streams on the
    /// account's first CONNECT). Called before any other method for that account.
    fn open_account(&self, _account: &Arc<Account>) -> StoreFuture<()> {
        done(())
    }

    /// The sessions with an expiry (client id, end) that the account's opening found in the
    /// store, once: the gateway schedules their end, which a restart had forgotten.
    fn take_expiring(&self, _account: &str) -> Vec<(String, std::time::SystemTime)> {
        Vec::new()
    }

    /// Whether QoS 1/2 messages are stored ([`SessionStore::store_message`]) and delivered to
    /// sessions through their consumer ([`SessionStore::sync_consumer`]) instead of straight
    /// from the router.
    fn delivers_stored(&self) -> bool {
        false
    }

    /// Stores a QoS 1/2 PUBLISH for the sessions subscribed to it (`$MQTT_msgs`); the
    /// PUBACK/PUBREC waits for it. `None` when this store keeps no messages.
    /// `client_id`: the publisher, recorded for MQTT 5 no local.
    fn store_message(
        &self,
        _account: &str,
        _client_id: Option<&str>,
        _publish: &Publish,
    ) -> Option<StoreFuture<()>> {
        None
    }

    /// Acknowledges a message the session's consumer delivered (the client's PUBACK, or
    /// PUBREC for QoS 2). Only called by stores that deliver stored messages.
    fn ack_stored(&self, _account: &str, _client_id: &str, _delivery: &StoredDelivery) {}

    /// Makes the session's consumer match `filters` (NATS subject filters of its QoS 1/2
    /// subscriptions; empty: no consumer). It delivers to
    /// [`super::jetstream_store::deliver_subject`] and keeps its position while the client is
    /// away when `durable`. `resume`: a client just (re)connected, so everything delivered and
    /// not acknowledged is sent again now.
    fn sync_consumer(
        &self,
        _account: &str,
        _client_id: &str,
        _filters: Vec<String>,
        _durable: bool,
        _resume: bool,
    ) -> StoreFuture<()> {
        done(())
    }

    /// Makes `client_id` a member of the shared subscription `$share/<group>/<filter>`
    /// (`filters`: its NATS subject filters), whose QoS 1/2 messages are then stored for the
    /// group (one delivery per message, to one member) and kept while no member is connected,
    /// as long as one session holds the subscription. The connection's route on
    /// [`super::jetstream_store::SharedGroup`] must be in place first: joining wakes the
    /// group's consumer. Resolves once the group is durable. Only called by stores that
    /// deliver stored messages.
    fn join_shared(
        &self,
        _account: &str,
        _client_id: &str,
        _group: &super::jetstream_store::SharedGroup,
        _filters: Vec<String>,
    ) -> StoreFuture<()> {
        done(())
    }

    /// `client_id` unsubscribed from the shared subscription: the last member to leave ends
    /// the group (its undelivered messages go with it).
    fn leave_shared(&self, _account: &str, _client_id: &str, _group: &super::jetstream_store::SharedGroup) {}
}

fn done<T: Send + 'static>(value: T) -> StoreFuture<T> {
    Box::pin(std::future::ready(Ok(value)))
}

type Key = (String, String);

fn key(account: &str, name: &str) -> Key {
    (account.to_owned(), name.to_owned())
}

/// Everything the in-memory store holds.
#[derive(Default)]
struct State {
    sessions: HashMap<Key, SessionRecord, RandomState>,
    /// By (account, topic); a BTreeMap so matching walks topics in a stable order.
    retained: BTreeMap<Key, RetainedMessage>,
    /// By (account, client id), then packet id in sending order.
    outgoing: HashMap<Key, Vec<OutgoingMessage>, RandomState>,
    incoming_qos2: HashMap<Key, Vec<u16>, RandomState>,
}

/// The interim [`SessionStore`]: process memory, one short lock, every future ready at once.
/// Bounded by `max_retained` topics and, per session, by `max_outgoing` messages and 65,535
/// incoming QoS 2 ids (the packet id space).
pub struct MemoryStore {
    state: Mutex<State>,
    max_retained: usize,
    max_outgoing: usize,
}

impl MemoryStore {
    pub fn new(max_retained: usize, max_outgoing: usize) -> MemoryStore {
        MemoryStore { state: Mutex::new(State::default()), max_retained, max_outgoing }
    }
}

impl SessionStore for MemoryStore {
    fn load_session(&self, account: &str, client_id: &str) -> StoreFuture<Option<SessionRecord>> {
        done(self.state.lock().sessions.get(&key(account, client_id)).cloned())
    }

    fn save_session(&self, account: &str, record: SessionRecord) -> StoreFuture<()> {
        self.state.lock().sessions.insert(key(account, &record.client_id), record);
        done(())
    }

    fn delete_session(&self, account: &str, client_id: &str) -> StoreFuture<()> {
        let k = key(account, client_id);
        let mut state = self.state.lock();
        state.sessions.remove(&k);
        state.outgoing.remove(&k);
        state.incoming_qos2.remove(&k);
        done(())
    }

    fn store_retained(&self, account: &str, message: RetainedMessage) -> StoreFuture<()> {
        let k = key(account, &message.topic);
        let mut state = self.state.lock();
        if !state.retained.contains_key(&k) && state.retained.len() >= self.max_retained {
            return Box::pin(std::future::ready(Err(StoreError::LimitReached("retained messages"))));
        }
        state.retained.insert(k, message);
        done(())
    }

    fn delete_retained(&self, account: &str, topic: &str) -> StoreFuture<()> {
        self.state.lock().retained.remove(&key(account, topic));
        done(())
    }

    fn retained_matching(&self, account: &str, filter: &str) -> StoreFuture<Vec<RetainedMessage>> {
        let state = self.state.lock();
        let found = state
            .retained
            .iter()
            .filter(|((acc, topic), _)| acc == account && super::retained::filter_matches(filter, topic))
            .map(|(_, m)| m.clone())
            .collect();
        done(found)
    }

    fn store_outgoing(&self, account: &str, client_id: &str, message: OutgoingMessage) -> StoreFuture<()> {
        let mut state = self.state.lock();
        let list = state.outgoing.entry(key(account, client_id)).or_default();
        if let Some(slot) = list.iter_mut().find(|m| m.publish.packet_id == message.publish.packet_id) {
            *slot = message;
            return done(());
        }
        if list.len() >= self.max_outgoing {
            return Box::pin(std::future::ready(Err(StoreError::LimitReached("outgoing messages"))));
        }
        list.push(message);
        done(())
    }

    fn remove_outgoing(&self, account: &str, client_id: &str, packet_id: u16) -> StoreFuture<()> {
        if let Some(list) = self.state.lock().outgoing.get_mut(&key(account, client_id)) {
            list.retain(|m| m.publish.packet_id != packet_id);
        }
        done(())
    }

    fn outgoing(&self, account: &str, client_id: &str) -> StoreFuture<Vec<OutgoingMessage>> {
        done(self.state.lock().outgoing.get(&key(account, client_id)).cloned().unwrap_or_default())
    }

    fn record_incoming_qos2(&self, account: &str, client_id: &str, packet_id: u16) -> StoreFuture<()> {
        let mut state = self.state.lock();
        let ids = state.incoming_qos2.entry(key(account, client_id)).or_default();
        if !ids.contains(&packet_id) {
            ids.push(packet_id);
        }
        done(())
    }

    fn clear_incoming_qos2(&self, account: &str, client_id: &str, packet_id: u16) -> StoreFuture<()> {
        if let Some(ids) = self.state.lock().incoming_qos2.get_mut(&key(account, client_id)) {
            ids.retain(|id| *id != packet_id);
        }
        done(())
    }

    fn incoming_qos2(&self, account: &str, client_id: &str) -> StoreFuture<Vec<u16>> {
        done(self.state.lock().incoming_qos2.get(&key(account, client_id)).cloned().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jetway_protocols::mqtt::QoS;

    fn retained(topic: &str, payload: &'static str) -> RetainedMessage {
        let mut publish = Publish::new(topic.to_owned(), payload);
        publish.retain = true;
        RetainedMessage { topic: topic.into(), publish, stored_at: SystemTime::now() }
    }

    #[tokio::test]
    async fn retained_is_one_per_topic_and_matched_by_wildcards() {
        let store = MemoryStore::new(10, 10);
        store.store_retained("A", retained("a/b", "1")).await.unwrap();
        store.store_retained("A", retained("a/b", "2")).await.unwrap();
        store.store_retained("A", retained("a/c/d", "3")).await.unwrap();
        store.store_retained("A", retained("$SYS/x", "4")).await.unwrap();
        store.store_retained("B", retained("a/b", "other account")).await.unwrap();
        let all = store.retained_matching("A", "a/#").await.unwrap();
        let payloads: Vec<_> = all.iter().map(|m| m.publish.payload.clone()).collect();
        assert_eq!(payloads, vec!["2", "3"]);
        assert_eq!(store.retained_matching("A", "#").await.unwrap().len(), 2);
        assert_eq!(store.retained_matching("A", "$SYS/+").await.unwrap().len(), 1);
        store.delete_retained("A", "a/b").await.unwrap();
        assert_eq!(store.retained_matching("A", "a/+").await.unwrap().len(), 0);
    }

    #[tokio::test]
    async fn outgoing_is_replaced_by_packet_id_and_bounded() {
        let store = MemoryStore::new(10, 2);
        let mut p = Publish::new("t", "x");
        p.qos = QoS::ExactlyOnce;
        p.packet_id = 1;
        let m = OutgoingMessage { publish: p.clone(), released: false, delivery: None };
        store.store_outgoing("A", "c", m.clone()).await.unwrap();
        store.store_outgoing("A", "c", OutgoingMessage { released: true, ..m }).await.unwrap();
        assert_eq!(store.outgoing("A", "c").await.unwrap().len(), 1);
        assert!(store.outgoing("A", "c").await.unwrap()[0].released);
        p.packet_id = 2;
        store
            .store_outgoing("A", "c", OutgoingMessage { publish: p.clone(), released: false, delivery: None })
            .await
            .unwrap();
        p.packet_id = 3;
        let over = store
            .store_outgoing("A", "c", OutgoingMessage { publish: p, released: false, delivery: None })
            .await;
        assert!(over.is_err());
        store.remove_outgoing("A", "c", 1).await.unwrap();
        store.delete_session("A", "c").await.unwrap();
        assert!(store.outgoing("A", "c").await.unwrap().is_empty());
    }
}
