//! What monitoring sees of the MQTT gateway: message counters by QoS, and the sessions,
//! connected ones through their connection's [`SessionGauges`], stored ones in `$MQTT_sess`.
//!
//! The gateway's code only bumps [`MqttStats`] and, once per turn of a connection's loop,
//! copies its session's sizes into the gauges of its [`super::LiveConnection`] (a few relaxed
//! stores). Everything else is assembled here when an endpoint asks, so the message path pays
//! nothing for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use jetway_protocols::mqtt::QoS;
use serde::{Deserialize, Serialize};

use super::jetstream_store::{hash8, MSGS_STREAM, SESS_STREAM};
use super::session::SessionState;
use super::MqttServer;

/// Messages and bytes received from and sent to MQTT clients, by QoS.
#[derive(Debug, Default)]
pub struct MqttStats {
    received: [AtomicU64; 3],
    received_bytes: AtomicU64,
    sent: [AtomicU64; 3],
    sent_bytes: AtomicU64,
}

/// A copy of [`MqttStats`]; arrays are indexed by QoS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficSnapshot {
    pub received: [u64; 3],
    pub received_bytes: u64,
    pub sent: [u64; 3],
    pub sent_bytes: u64,
}

impl TrafficSnapshot {
    pub fn received_msgs(&self) -> u64 {
        self.received.iter().sum()
    }

    pub fn sent_msgs(&self) -> u64 {
        self.sent.iter().sum()
    }
}

impl MqttStats {
    /// A PUBLISH from a client, `bytes` of payload.
    pub fn received(&self, qos: QoS, bytes: usize) {
        count(&self.received, &self.received_bytes, qos, bytes);
    }

    /// A PUBLISH written to a client's queue, `bytes` long on the wire.
    pub fn sent(&self, qos: QoS, bytes: usize) {
        count(&self.sent, &self.sent_bytes, qos, bytes);
    }

    pub fn snapshot(&self) -> TrafficSnapshot {
        let load = |a: &[AtomicU64; 3]| a.each_ref().map(|c| c.load(Ordering::Relaxed));
        TrafficSnapshot {
            received: load(&self.received),
            received_bytes: self.received_bytes.load(Ordering::Relaxed),
            sent: load(&self.sent),
            sent_bytes: self.sent_bytes.load(Ordering::Relaxed),
        }
    }
}

fn count(msgs: &[AtomicU64; 3], total_bytes: &AtomicU64, qos: QoS, bytes: usize) {
    if let Some(counter) = msgs.get(qos as usize) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    total_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
}

/// The sizes of a connected session, as of the last turn of its connection's loop.
#[derive(Debug, Default)]
pub struct SessionGauges {
    persistent: AtomicBool,
    subscriptions: AtomicUsize,
    inflight: AtomicUsize,
    queued: AtomicUsize,
    awaiting_pubrel: AtomicUsize,
}

impl SessionGauges {
    /// Copies the session's sizes; called by the connection task, which owns the session.
    pub fn observe(&self, session: &SessionState) {
        self.persistent.store(session.persistent, Ordering::Relaxed);
        self.subscriptions.store(session.subscriptions.len(), Ordering::Relaxed);
        self.inflight.store(session.inflight.len(), Ordering::Relaxed);
        self.queued.store(session.waiting.len(), Ordering::Relaxed);
        self.awaiting_pubrel.store(session.incoming_qos2.len(), Ordering::Relaxed);
    }
}

/// One session as `/mqttz` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SessionInfo {
    pub account: String,
    pub client_id: String,
    /// A client is connected with this session now.
    pub connected: bool,
    /// The session outlives the connection (3.1.1 clean session 0, MQTT 5 session expiry).
    pub persistent: bool,
    /// The connection's id in `/connz`, while connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cid: Option<u64>,
    pub subscriptions: usize,
    /// QoS 1/2 messages sent to the client and not yet acknowledged (PUBACK, or PUBREC for
    /// QoS 2). For a stored session: what its consumer delivered and awaits acks for.
    pub inflight: u64,
    /// QoS 1/2 messages waiting to be sent: beyond the client's receive maximum while
    /// connected; queued in `$MQTT_msgs` for a stored session.
    pub queued: u64,
    /// Incoming QoS 2 messages received and not yet released by PUBREL.
    pub awaiting_pubrel: u64,
}

/// Totals over the connected sessions.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct InflightTotals {
    pub inflight: u64,
    pub queued: u64,
    pub awaiting_pubrel: u64,
}

/// The one field of a stored session record (nats-server's `mqttPersistedSession`) needed to
/// find the session again: the client id (records are keyed by its hash).
#[derive(Deserialize)]
struct RecordId {
    id: String,
}

impl MqttServer {
    /// The connected sessions, in no particular order.
    pub fn connected_sessions(&self) -> Vec<SessionInfo> {
        let live: Vec<_> = self.live.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        live.into_iter()
            .map(|((account, client_id), conn)| {
                let g = &conn.gauges;
                let load = |a: &AtomicUsize| a.load(Ordering::Relaxed) as u64;
                SessionInfo {
                    account,
                    client_id,
                    connected: true,
                    persistent: g.persistent.load(Ordering::Relaxed),
                    cid: Some(conn.client.id),
                    subscriptions: g.subscriptions.load(Ordering::Relaxed),
                    inflight: load(&g.inflight),
                    queued: load(&g.queued),
                    awaiting_pubrel: load(&g.awaiting_pubrel),
                }
            })
            .collect()
    }

    pub fn connected_count(&self) -> usize {
        self.live.lock().len()
    }

    /// Each connected session's subscription count, by connection id (for `/connz`).
    pub fn subscriptions_by_cid(&self) -> HashMap<u64, usize> {
        let live = self.live.lock();
        live.values().map(|c| (c.client.id, c.gauges.subscriptions.load(Ordering::Relaxed))).collect()
    }

    /// Sums of the connected sessions' gauges.
    pub fn inflight_totals(&self) -> InflightTotals {
        let mut totals = InflightTotals::default();
        for conn in self.live.lock().values() {
            let g = &conn.gauges;
            totals.inflight += g.inflight.load(Ordering::Relaxed) as u64;
            totals.queued += g.queued.load(Ordering::Relaxed) as u64;
            totals.awaiting_pubrel += g.awaiting_pubrel.load(Ordering::Relaxed) as u64;
        }
        totals
    }

    /// Persistent sessions stored in `$MQTT_sess` over all accounts, connected or not; `None`
    /// without JetStream (the in-memory fallback is not counted).
    pub fn stored_session_count(&self) -> Option<u64> {
        let js = self.core.jetstream.as_ref()?;
        let sessions = js
            .accounts()
            .into_iter()
            .filter_map(|a| a.stream(SESS_STREAM).ok())
            .map(|s| s.store.state().msgs);
        Some(sessions.sum())
    }

    /// Stored sessions whose client is not connected, at most `limit` (`$MQTT_sess`;
    /// JetStream only). Subscriptions and QoS 2 state come through the session store, queued
    /// and in-flight messages from the session's consumer on `$MQTT_msgs`.
    pub async fn disconnected_sessions(
        &self,
        account_filter: Option<&str>,
        limit: usize,
    ) -> Vec<SessionInfo> {
        let Some(js) = &self.core.jetstream else { return Vec::new() };
        let mut found = Vec::new();
        for js_account in js.accounts() {
            let account = js_account.account.name.to_string();
            if account_filter.is_some_and(|a| a != account) {
                continue;
            }
            let Ok(sess) = js_account.stream(SESS_STREAM) else { continue };
            let msgs = js_account.stream(MSGS_STREAM).ok();
            for subject in sess.store.subjects_state(">").into_keys() {
                if found.len() >= limit {
                    return found;
                }
                let Ok(record) = sess.store.load_last(&subject) else { continue };
                let Ok(RecordId { id }) = serde_json::from_slice(&record.payload) else { continue };
                if self.live.lock().contains_key(&(account.clone(), id.clone())) {
                    continue;
                }
                let Ok(Some(session)) = self.store.load_session(&account, &id).await else { continue };
                let awaiting_pubrel =
                    self.store.incoming_qos2(&account, &id).await.map_or(0, |ids| ids.len());
                let consumer = msgs.as_ref().and_then(|m| m.consumers.read().get(&hash8(&id)).cloned());
                let (inflight, queued) = consumer.map_or((0, 0), |c| {
                    let info = c.info();
                    (info.num_ack_pending, info.num_pending)
                });
                found.push(SessionInfo {
                    account: account.clone(),
                    client_id: id,
                    connected: false,
                    persistent: true,
                    cid: None,
                    subscriptions: session.subscriptions.len(),
                    inflight,
                    queued,
                    awaiting_pubrel: awaiting_pubrel as u64,
                });
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_is_counted_by_qos() {
        let stats = MqttStats::default();
        stats.received(QoS::AtMostOnce, 10);
        stats.received(QoS::ExactlyOnce, 5);
        stats.sent(QoS::AtLeastOnce, 7);
        stats.sent(QoS::AtLeastOnce, 7);
        let s = stats.snapshot();
        assert_eq!((s.received, s.received_bytes), ([1, 0, 1], 15));
        assert_eq!((s.sent, s.sent_bytes), ([0, 2, 0], 14));
        assert_eq!((s.received_msgs(), s.sent_msgs()), (2, 2));
    }

    #[test]
    fn gauges_copy_the_session_sizes() {
        let mut session = SessionState::new("c".into(), true, u32::MAX);
        session.incoming_qos2.insert(7);
        let gauges = SessionGauges::default();
        gauges.observe(&session);
        assert!(gauges.persistent.load(Ordering::Relaxed));
        assert_eq!(gauges.awaiting_pubrel.load(Ordering::Relaxed), 1);
        assert_eq!(gauges.inflight.load(Ordering::Relaxed), 0);
    }
}
