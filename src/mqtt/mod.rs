//! The MQTT gateway: MQTT 3.1.1 and 5 clients over TCP, bridged both ways to NATS subjects.
//!
//! # Layout
//!
//! - [`listener`]: accepts connections and spawns their tasks.
//! - [`connection`]: the per-connection task: read → decode (`jetway_protocols::mqtt`) →
//!   handle; the writer is the NATS connections' writer over the same outbound queue.
//! - [`session`]: the connected session: subscriptions, packet ids, QoS 1/2 in flight.
//! - [`bridge`]: MQTT PUBLISH → router message (headers for MQTT-only facts); router
//!   deliveries → PUBLISH in the subscriber's outbound queue (an internal router sink).
//! - [`expiry`]: the ends of offline sessions (one task for all); [`keep_alive`]: silent
//!   connections closed (one sweeper for all).
//! - [`will`], [`alias`], [`retained`]: will messages, MQTT 5 topic aliases, retained
//!   messages.
//! - [`stats`]: what monitoring reads (counters by QoS, session gauges, session listings).
//! - [`store`]: the persistence seam ([`store::SessionStore`]);
//!   [`jetstream_store`]: its durable implementation on the account's JetStream (nats-server's
//!   `$MQTT_*` streams; the layout and where it differs are described there), used whenever
//!   JetStream is enabled. Without JetStream the gateway falls back to an in-memory store and
//!   warns: nothing survives a restart then.
//!
//! # QoS 1/2 with JetStream
//!
//! A QoS 1/2 PUBLISH is routed on its subject (NATS subscribers, QoS 0 MQTT subscriptions,
//! user streams see it at once) and stored in `$MQTT_msgs` under `$MQTT.msgs.<subject>`; its
//! PUBACK/PUBREC waits for that store. A session's QoS 1/2 subscriptions do not take such
//! messages from the router: one consumer per session (filter_subjects = its filters) delivers
//! them on `$MQTT.sub.<hash>`, the connection assigns packet ids, and PUBACK (QoS 1) or PUBREC
//! (QoS 2) acknowledges the consumer. A persistent session's consumer is durable: what is
//! published while the client is away waits in the stream, and what was in flight is sent
//! again when it comes back.
//!
//! # Invariants
//!
//! - One live connection per (account, client id): a new CONNECT takes the session over, the
//!   old connection is closed (MQTT 5: DISCONNECT 0x8E) and its cleanup finishes before the
//!   new one loads the session.
//! - A PUBACK/PUBREC goes out only after the store operations of its PUBLISH completed, in
//!   packet order, without waiting for later PUBLISHes (pipelined).
//! - Bad input gets the codec's reaction and closes only that connection.

pub mod alias;
pub mod bridge;
pub mod connection;
pub mod delivery_queue;
pub mod expiry;
pub mod jetstream_store;
pub mod keep_alive;
pub mod listener;
pub mod retained;
pub mod session;
pub mod stats;
pub mod store;
pub mod will;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use foldhash::fast::RandomState;
use jetway_protocols::mqtt::topic::{subject_to_topic, topic_to_subject};
use jetway_protocols::mqtt::{Publish, TopicError};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::account::mappings::Mapped;
use crate::account::Account;
use crate::nats::client::{ClientShared, CloseReason};
use crate::server::Core;
use store::{RetainedMessage, SessionStore, StoreFuture};

/// Retained topics kept by the interim in-memory store.
const MAX_RETAINED: usize = 100_000;

/// (account name, client id)
type SessionKey = (String, String);

/// A connected client id, as seen by a connection that wants to take it over.
pub struct LiveConnection {
    pub client: Arc<ClientShared>,
    /// Set once the connection finished its cleanup (session saved, will handled).
    pub finished: crate::latch::Latch,
    /// The session's sizes for monitoring, refreshed by the connection task.
    pub gauges: stats::SessionGauges,
    /// When the connection last sent a packet, for the keep-alive sweeper.
    pub keep_alive: keep_alive::KeepAlive,
}

/// State of the gateway shared by every MQTT connection.
pub struct MqttServer {
    pub core: Arc<Core>,
    pub store: Arc<dyn SessionStore>,
    /// Traffic by QoS, for monitoring.
    pub stats: Arc<stats::MqttStats>,
    live: Mutex<HashMap<SessionKey, Arc<LiveConnection>, RandomState>>,
    /// Delayed wills, cancelled when their client id connects again.
    pub(crate) pending_wills: Mutex<HashMap<SessionKey, CancellationToken, RandomState>>,
    /// When offline sessions end.
    expiries: expiry::Expiries,
}

impl MqttServer {
    /// A gateway on the server's JetStream (nats-server's `$MQTT_*` streams), or, when
    /// JetStream is disabled, on the in-memory store (with a warning: MQTT needs JetStream to
    /// keep anything across a restart).
    pub fn new(core: Arc<Core>) -> Arc<MqttServer> {
        let mqtt = &core.config.mqtt;
        let store: Arc<dyn SessionStore> = match &core.jetstream {
            Some(js) => Arc::new(jetstream_store::JetStreamStore::new(
                js.clone(),
                mqtt.ack_wait,
                mqtt.max_ack_pending,
            )),
            None => {
                tracing::warn!(
                    "MQTT without JetStream: sessions, retained and QoS 1/2 messages are kept in memory only"
                );
                let max_outgoing = mqtt.max_ack_pending.max(1) as usize;
                Arc::new(store::MemoryStore::new(MAX_RETAINED, max_outgoing))
            }
        };
        Self::with_store(core, store)
    }

    pub fn with_store(core: Arc<Core>, store: Arc<dyn SessionStore>) -> Arc<MqttServer> {
        Arc::new(MqttServer {
            core,
            store,
            stats: Arc::default(),
            live: Mutex::new(HashMap::default()),
            pending_wills: Mutex::new(HashMap::default()),
            expiries: expiry::Expiries::default(),
        })
    }

    /// Registers `conn` as the live connection of `client_id` and returns the one it replaces.
    /// Also cancels a pending delayed will of that client id.
    pub fn claim(
        &self,
        account: &str,
        client_id: &str,
        conn: Arc<LiveConnection>,
    ) -> Option<Arc<LiveConnection>> {
        let key = (account.to_owned(), client_id.to_owned());
        if let Some(will) = self.pending_wills.lock().remove(&key) {
            will.cancel();
        }
        self.live.lock().insert(key, conn)
    }

    /// Closes every connection silent for longer than its keep alive allows (see
    /// [`keep_alive`]); `now` on [`keep_alive::now_ms`]'s clock.
    pub fn close_silent(&self, now: u64) {
        let silent: Vec<Arc<ClientShared>> = self
            .live
            .lock()
            .values()
            .filter(|c| c.keep_alive.expired(now))
            .map(|c| c.client.clone())
            .collect();
        for client in silent {
            if client.close(CloseReason::KeepAliveTimeout) {
                tracing::debug!(cid = client.id, "MQTT keep alive expired");
            }
        }
    }

    /// Forgets `conn` as the live connection of `client_id`, unless it was taken over.
    pub fn release(&self, account: &str, client_id: &str, conn: &Arc<LiveConnection>) {
        let key = (account.to_owned(), client_id.to_owned());
        let mut live = self.live.lock();
        if live.get(&key).is_some_and(|c| Arc::ptr_eq(c, conn)) {
            live.remove(&key);
        }
    }

    /// Routes a PUBLISH to NATS and MQTT subscribers and applies its RETAIN flag. Returns the
    /// store operation the acknowledgement must wait for, if any.
    /// `client_id` is the publisher's (for MQTT 5 no local on stored messages).
    pub fn publish(
        &self,
        account: &Account,
        origin: Option<u64>,
        client_id: Option<&str>,
        publish: &Publish,
    ) -> Option<StoreFuture<()>> {
        if let Err(e) = bridge::route(account, &self.core.stats, origin, publish) {
            tracing::debug!(topic = %publish.topic, error = %e, "MQTT publish not routed");
            return None;
        }
        let stored = self.store.store_message(&account.name, client_id, publish);
        if !publish.retain {
            return stored;
        }
        // An empty retained payload deletes the retained message and is still delivered.
        if publish.payload.is_empty() {
            let deleted = self.store.delete_retained(&account.name, publish.topic.as_str());
            return both(stored, Some(deleted));
        }
        let mut retained = publish.clone();
        retained.dup = false;
        retained.packet_id = 0;
        retained.properties.topic_alias = None;
        let message = RetainedMessage {
            topic: publish.topic.to_string(),
            publish: retained,
            stored_at: SystemTime::now(),
        };
        both(stored, Some(self.store.store_retained(&account.name, message)))
    }

    fn publish_will(&self, account: &Account, publish: &Publish) {
        // The account's subject mappings apply to a will as to any PUBLISH.
        let mut will = publish.clone();
        if let Ok(false) = map_topic(account, &mut will) {
            return;
        }
        // Nobody waits for a will's stores: fire and forget (ordered at call time).
        drop(self.publish(account, None, None, &will));
    }
}

/// Applies `account`'s subject mappings to a PUBLISH (or will): its topic moves to where its
/// subject is mapped. `Ok(false)` when a weighted mapping drops it; `Err` for a topic that is
/// no NATS subject.
pub(crate) fn map_topic(account: &Account, publish: &mut Publish) -> Result<bool, TopicError> {
    let subject = topic_to_subject(publish.topic.as_str())?;
    match account.map_subject(&subject) {
        Mapped::Unchanged => {}
        Mapped::To(subject) => publish.topic = subject_to_topic(&subject).into_owned().into(),
        Mapped::Dropped => return Ok(false),
    }
    Ok(true)
}

/// Both store operations, as one (each was ordered when it was called).
pub(crate) fn both(a: Option<StoreFuture<()>>, b: Option<StoreFuture<()>>) -> Option<StoreFuture<()>> {
    match (a, b) {
        (None, None) => None,
        (Some(f), None) | (None, Some(f)) => Some(f),
        (Some(a), Some(b)) => Some(Box::pin(async move {
            let (a, b) = (a.await, b.await);
            a.and(b)
        })),
    }
}

/// The MQTT 5 DISCONNECT reason that tells a client why the server closed its connection
/// (shutdown 0x8B, takeover 0x8E, keep alive 0x8D); `None` when nothing is sent.
pub fn close_reason_code(reason: CloseReason) -> Option<jetway_protocols::mqtt::ReasonCode> {
    use jetway_protocols::mqtt::ReasonCode;
    match reason {
        CloseReason::ServerShutdown => Some(ReasonCode::ServerShuttingDown),
        CloseReason::DuplicateClientId => Some(ReasonCode::SessionTakenOver),
        CloseReason::KeepAliveTimeout => Some(ReasonCode::KeepAliveTimeout),
        CloseReason::ProtocolViolation => Some(ReasonCode::ProtocolError),
        _ => None,
    }
}
