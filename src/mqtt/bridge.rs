//! MQTT ↔ NATS: an MQTT PUBLISH becomes a router [`Message`]; a routed message becomes a
//! PUBLISH in an MQTT connection's outbound queue.
//!
//! MQTT-only facts ride in NATS headers so NATS clients see plain messages and MQTT clients
//! get them back on delivery:
//!
//! | MQTT                       | NATS                                                   |
//! |----------------------------|--------------------------------------------------------|
//! | topic                      | subject (the codec's `topic` rules)                    |
//! | QoS 1/2                    | `Nmqtt-Pub: <qos>` (nats-server's header)               |
//! | RETAIN                     | `Nmqtt-Retained: 1` (for "retain as published")         |
//! | response topic             | reply subject                                          |
//! | correlation data           | `Nmqtt-Corr: <hex>`                                    |
//! | content type               | `Nmqtt-Content-Type`                                   |
//! | payload format indicator   | `Nmqtt-Payload-Format: 1`                              |
//! | message expiry interval    | `Nmqtt-Expiry: <seconds>`                              |
//! | user property `k = v`      | header `k: v` (names that can't be header names are dropped) |
//!
//! A plain QoS 0 PUBLISH without properties carries no headers at all. On delivery every
//! header that is not `Nmqtt-*` becomes a user property.
//!
//! Delivery runs on the publisher's task ([`SubscriptionHandler`] is the router sink): QoS 0
//! is encoded straight into the subscriber's outbound queue; QoS 1/2 goes through the
//! subscriber connection's bounded queue, because packet ids and in-flight state belong to
//! the connection task.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use jetway_protocols::mqtt::topic::{subject_to_topic, topic_to_subject, TopicError};
use jetway_protocols::mqtt::{MqttStr, Packet, Properties, ProtocolVersion, Publish, QoS};
use jetway_protocols::nats::headers::HeaderMap;
use parking_lot::Mutex;

use super::alias::OutboundAliases;
use super::delivery_queue::DeliveryQueue;
use crate::account::Account;
use crate::nats::client::{ClientShared, CloseReason};
use crate::router::{InternalHandler, Message};
use crate::stats::ServerStats;

const HDR_PUB: &str = "Nmqtt-Pub";
const HDR_RETAINED: &str = "Nmqtt-Retained";
const HDR_CORRELATION: &str = "Nmqtt-Corr";
const HDR_CONTENT_TYPE: &str = "Nmqtt-Content-Type";
const HDR_PAYLOAD_FORMAT: &str = "Nmqtt-Payload-Format";
const HDR_EXPIRY: &str = "Nmqtt-Expiry";
/// Correlation data remembered per connection for responses that come back without it.
const CORRELATIONS_MAX: usize = 1024;

/// The NATS header block for `publish`, or `None` when it needs none.
pub fn to_nats_headers(publish: &Publish) -> Option<Bytes> {
    let headers = nats_header_map(publish);
    (!headers.is_empty()).then(|| headers.encode())
}

/// The NATS headers of an MQTT PUBLISH, not yet encoded (a caller adding its own encodes once).
pub fn nats_header_map(publish: &Publish) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if publish.qos != QoS::AtMostOnce {
        headers.append(HDR_PUB, (publish.qos as u8).to_string());
    }
    if publish.retain {
        headers.append(HDR_RETAINED, "1");
    }
    let p = &publish.properties;
    if let Some(data) = &p.correlation_data {
        headers.append(HDR_CORRELATION, hex_encode(data));
    }
    if let Some(content_type) = &p.content_type {
        if header_value_ok(content_type.as_str()) {
            headers.append(HDR_CONTENT_TYPE, content_type.as_str());
        }
    }
    if p.payload_format_utf8 == Some(true) {
        headers.append(HDR_PAYLOAD_FORMAT, "1");
    }
    if let Some(expiry) = p.message_expiry_interval {
        headers.append(HDR_EXPIRY, expiry.to_string());
    }
    for (name, value) in &p.user_properties {
        if header_name_ok(name.as_str()) && header_value_ok(value.as_str()) {
            headers.append(name.as_str(), value.as_str());
        }
    }
    headers
}

/// A stored message's MQTT 5 expiry interval ran out while it waited: it must not be sent on
/// ([MQTT-3.3.2-5]).
#[derive(Debug, PartialEq, Eq)]
pub struct Expired;

/// What is left of a stored message's expiry interval (`Nmqtt-Expiry`, seconds) after it
/// waited from `stored_ns` to `now_ns`: what it is sent on with ([MQTT-3.3.2-6]); `None` when
/// it has no expiry.
pub fn expiry_left(headers: Option<&HeaderMap>, stored_ns: i64, now_ns: i64) -> Result<Option<u32>, Expired> {
    let Some(expiry) = headers.and_then(|h| h.get(HDR_EXPIRY)).and_then(|v| v.parse::<u64>().ok()) else {
        return Ok(None);
    };
    let waited = u64::try_from(now_ns.saturating_sub(stored_ns)).unwrap_or(0) / 1_000_000_000;
    match expiry.checked_sub(waited).filter(|left| *left > 0) {
        Some(left) => Ok(Some(u32::try_from(left).unwrap_or(u32::MAX))),
        None => Err(Expired),
    }
}

fn header_name_ok(name: &str) -> bool {
    !name.is_empty() && !name.starts_with("Nmqtt-") && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

fn header_value_ok(value: &str) -> bool {
    !value.contains(['\r', '\n']) && value.trim() == value
}

fn hex_encode(data: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(data.len() * 2);
    for b in data {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xF)]));
    }
    s
}

fn hex_decode(s: &str) -> Option<Bytes> {
    let digit = |c: u8| char::from(c).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let bytes = s.as_bytes();
    if bytes.len() % 2 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 2);
    for pair in bytes.chunks_exact(2) {
        let [hi, lo] = pair else { return None };
        out.push(digit(*hi)? << 4 | digit(*lo)?);
    }
    Some(Bytes::from(out))
}

/// What a routed message says about itself, for an MQTT subscriber.
#[derive(Debug, Default)]
struct Delivered {
    /// QoS it was published with (messages from NATS clients are QoS 0).
    qos: Option<QoS>,
    retain: bool,
    properties: Properties,
}

fn from_nats_headers(raw: Option<&Bytes>, want_properties: bool) -> Delivered {
    let Some(raw) = raw else { return Delivered::default() };
    let Ok(headers) = HeaderMap::decode(raw) else { return Delivered::default() };
    let mut d = Delivered::default();
    for (name, value) in headers.iter() {
        match name {
            HDR_PUB => d.qos = value.bytes().next().and_then(|b| QoS::from_bits(b.wrapping_sub(b'0'))),
            HDR_RETAINED => d.retain = value == "1",
            _ if !want_properties => {}
            HDR_CORRELATION => d.properties.correlation_data = hex_decode(value),
            HDR_CONTENT_TYPE => d.properties.content_type = Some(MqttStr::from(value.to_owned())),
            HDR_PAYLOAD_FORMAT => d.properties.payload_format_utf8 = Some(value == "1"),
            HDR_EXPIRY => d.properties.message_expiry_interval = value.parse().ok(),
            // Other gateway headers (retained records, stores) are no user properties.
            _ if name.starts_with("Nmqtt-") => {}
            _ => d
                .properties
                .user_properties
                .push((MqttStr::from(name.replace('\0', "")), MqttStr::from(value.replace('\0', "")))),
        }
    }
    d
}

/// The MQTT 5 properties a stored message's headers carry.
pub fn properties_from_headers(raw: Option<&Bytes>) -> Properties {
    from_nats_headers(raw, true).properties
}

/// Routes an MQTT PUBLISH (already alias-resolved) into `account` from connection `origin`.
/// Returns how many subscriptions received it.
pub fn route(
    account: &Account,
    stats: &Arc<ServerStats>,
    origin: Option<u64>,
    publish: &Publish,
) -> Result<usize, TopicError> {
    let subject = topic_to_subject(publish.topic.as_str())?;
    let reply = match &publish.properties.response_topic {
        Some(topic) => Some(topic_to_subject(topic.as_str())?),
        None => None,
    };
    let headers = to_nats_headers(publish);
    let msg = Message {
        subject: &subject,
        reply: reply.as_deref(),
        headers: headers.as_ref(),
        payload: &publish.payload,
        origin,
        echo: true,
    };
    Ok(crate::router::deliver::publish(account, stats, &msg))
}

/// The delivery end of one MQTT connection, shared by its subscriptions' handlers.
pub struct Outlet {
    pub client: Arc<ClientShared>,
    pub version: ProtocolVersion,
    /// The client's maximum packet size: larger PUBLISHes are dropped ([MQTT-3.1.2-25]).
    pub client_max_packet: Option<usize>,
    /// Held while a PUBLISH is encoded and queued, so an alias is always defined on the wire
    /// before it is used (lock order: `aliases`, then the outbound queue's lock).
    aliases: Mutex<OutboundAliases>,
    /// QoS 1/2 deliveries for the connection task, which assigns packet ids.
    pub deliveries: DeliveryQueue<QosDelivery>,
    /// Correlation data of this client's requests, by response subject, for responses from
    /// NATS clients that do not copy the header back.
    correlations: Mutex<VecDeque<(String, Bytes)>>,
    /// QoS 1/2 deliveries dropped: the connection's queues were full (it is then closed as a
    /// slow consumer), or the client's maximum packet size refused them.
    pub dropped: AtomicU64,
    /// The gateway's traffic counters (monitoring).
    stats: Arc<super::stats::MqttStats>,
}

impl Outlet {
    pub fn new(
        client: Arc<ClientShared>,
        version: ProtocolVersion,
        client_max_packet: Option<usize>,
        topic_alias_maximum: u16,
        queue_bytes: usize,
        stats: Arc<super::stats::MqttStats>,
    ) -> Outlet {
        Outlet {
            client,
            version,
            client_max_packet,
            aliases: Mutex::new(OutboundAliases::new(topic_alias_maximum)),
            deliveries: DeliveryQueue::new(queue_bytes),
            correlations: Mutex::new(VecDeque::new()),
            dropped: AtomicU64::new(0),
            stats,
        }
    }

    /// A QoS 1/2 message for this client does not fit its queues: it is lost for a session
    /// whose messages are not stored, so the connection is closed as a slow consumer (as NATS
    /// does) rather than left running without it.
    pub fn slow_consumer(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.client.close_slow_consumer("MQTT QoS 1/2 queue full");
    }

    /// Encodes any packet into the outbound queue and wakes the writer.
    pub fn send(&self, packet: &Packet) {
        let mut buf = BytesMut::new();
        if packet.encode(self.version, &mut buf).is_ok() {
            self.push_bytes(&buf);
        }
    }

    fn push_bytes(&self, bytes: &[u8]) {
        match self.client.outbound.push(bytes.len(), |out| out.extend_from_slice(bytes)) {
            Ok(pushed) if pushed.wake => self.client.outbound.wake(),
            Ok(_) => {}
            Err(_) => {
                self.client.close(CloseReason::SlowConsumerPendingBytes);
            }
        }
    }

    /// Sends a PUBLISH, applying an outbound topic alias; dropped when over the client's
    /// maximum packet size.
    pub fn send_publish(&self, mut publish: Publish) {
        let mut aliases = self.aliases.lock();
        let applied = if self.version == ProtocolVersion::V5 {
            aliases.apply(&mut publish)
        } else {
            super::alias::Applied::None
        };
        let mut buf = BytesMut::with_capacity(publish.payload.len() + publish.topic.len() + 16);
        let qos = publish.qos;
        let encoded = Packet::Publish(publish).encode(self.version, &mut buf);
        if encoded.is_err() || self.client_max_packet.is_some_and(|max| buf.len() > max) {
            aliases.undo(applied);
            tracing::debug!(cid = self.client.id, "PUBLISH over the client's maximum packet size dropped");
            return;
        }
        self.client.counters.out_msgs.fetch_add(1, Ordering::Relaxed);
        self.client.counters.out_bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.stats.sent(qos, buf.len());
        self.push_bytes(&buf);
    }

    /// Remembers the correlation data of a request this client published.
    pub fn remember_correlation(&self, response_subject: String, data: Bytes) {
        let mut correlations = self.correlations.lock();
        correlations.retain(|(s, _)| *s != response_subject);
        if correlations.len() >= CORRELATIONS_MAX {
            correlations.pop_front();
        }
        correlations.push_back((response_subject, data));
    }

    fn take_correlation(&self, subject: &str) -> Option<Bytes> {
        let mut correlations = self.correlations.lock();
        let at = correlations.iter().position(|(s, _)| s == subject)?;
        correlations.remove(at).map(|(_, data)| data)
    }
}

/// A QoS 1/2 delivery for the connection task.
pub enum QosDelivery {
    /// Straight from the router (the in-memory store, shared subscriptions).
    Routed(Box<Publish>),
    /// From the session's consumer on `$MQTT_msgs`.
    Stored(StoredMessage),
}

/// A message the session's consumer delivered.
pub struct StoredMessage {
    /// The NATS subject it was published on (without the `$MQTT.msgs.` prefix).
    pub subject: String,
    pub headers: Option<Bytes>,
    pub payload: Bytes,
    /// The consumer's `$JS.ACK.…` subject.
    pub ack_subject: String,
    /// From the group consumer of this shared subscription (its filter, `$share/…`); `None`:
    /// from the session's consumer.
    pub share: Option<Arc<str>>,
}

impl Outlet {
    /// The PUBLISH that delivers a message on `subject` to a subscription granted `granted`.
    #[allow(clippy::too_many_arguments)]
    pub fn to_publish(
        &self,
        subject: &str,
        reply: Option<&str>,
        headers: Option<&Bytes>,
        payload: Bytes,
        granted: QoS,
        retain_as_published: bool,
        identifiers: &[u32],
    ) -> Publish {
        let v5 = self.version == ProtocolVersion::V5;
        let delivered = from_nats_headers(headers, v5);
        let topic = subject_to_topic(subject);
        let mut publish = Publish::new(MqttStr::from(topic.into_owned()), payload);
        publish.qos = delivered.qos.unwrap_or(QoS::AtMostOnce).min(granted);
        publish.retain = retain_as_published && delivered.retain;
        if v5 {
            publish.properties = delivered.properties;
            if let Some(reply) = reply {
                publish.properties.response_topic = Some(MqttStr::from(subject_to_topic(reply).into_owned()));
            }
            if publish.properties.correlation_data.is_none() {
                publish.properties.correlation_data = self.take_correlation(subject);
            }
            publish.properties.subscription_identifiers.extend_from_slice(identifiers);
        }
        publish
    }
}

/// What a queued delivery counts for against the connection's slow-consumer limit.
pub fn queued_bytes(topic: &str, headers: Option<&Bytes>, payload: &Bytes) -> usize {
    /// The packet's fixed part and the queue's bookkeeping.
    const OVERHEAD: usize = 64;
    topic.len() + headers.map_or(0, Bytes::len) + payload.len() + OVERHEAD
}

/// The router sink of a session's consumer deliveries (`$MQTT.sub.<hash>`), or of a shared
/// subscription group's (`$MQTT.shr.<hash>`, a queue subscription of each member).
pub struct StoredHandler {
    pub outlet: Arc<Outlet>,
    /// The shared subscription's filter (`$share/…`) for a group's deliveries.
    pub share: Option<Arc<str>>,
}

impl InternalHandler for StoredHandler {
    fn deliver(&self, msg: &Message<'_>) {
        // Status messages carry no ack subject.
        let Some(reply) = msg.reply else { return };
        let subject = msg.subject.strip_prefix(super::jetstream_store::MSGS_PREFIX).unwrap_or(msg.subject);
        let stored = StoredMessage {
            subject: subject.to_owned(),
            headers: msg.headers.cloned(),
            payload: msg.payload.clone(),
            ack_subject: reply.to_owned(),
            share: self.share.clone(),
        };
        let bytes = queued_bytes(&stored.subject, stored.headers.as_ref(), &stored.payload);
        if self.outlet.deliveries.try_push(QosDelivery::Stored(stored), bytes).is_err() {
            // Not acknowledged: the consumer sends it again after its ack wait.
            tracing::debug!(cid = self.outlet.client.id, "QoS 1/2 delivery queue full: redelivered later");
        }
    }
}

/// One MQTT subscription's router sink (a `#` filter has two router subscriptions sharing it).
pub struct SubscriptionHandler {
    pub outlet: Arc<Outlet>,
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub identifier: Option<u32>,
    /// False for filters starting with a wildcard: they must not see `$` topics.
    pub dollar_topics: bool,
    /// MQTT QoS 1/2 messages come from the session's consumer, not from here.
    pub stored: bool,
}

impl InternalHandler for SubscriptionHandler {
    fn deliver(&self, msg: &Message<'_>) {
        if !self.dollar_topics && msg.subject.starts_with('$') {
            return;
        }
        if self.no_local && msg.origin.is_some() && msg.origin == Some(self.outlet.client.id) {
            return;
        }
        if self.stored && self.qos != QoS::AtMostOnce {
            // MQTT QoS 1/2 publishes reach this subscription through the session's consumer.
            let qos = from_nats_headers(msg.headers, false).qos;
            if qos.is_some_and(|q| q != QoS::AtMostOnce) {
                return;
            }
        }
        let publish = self.outlet.to_publish(
            msg.subject,
            msg.reply,
            msg.headers,
            msg.payload.clone(),
            self.qos,
            self.retain_as_published,
            self.identifier.as_slice(),
        );
        if publish.qos == QoS::AtMostOnce {
            self.outlet.send_publish(publish);
        } else {
            let bytes = queued_bytes(publish.topic.as_str(), None, &publish.payload);
            if self.outlet.deliveries.try_push(QosDelivery::Routed(Box::new(publish)), bytes).is_err() {
                self.outlet.slow_consumer();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_messages_expire_and_carry_what_is_left() {
        let mut headers = HeaderMap::new();
        headers.append(HDR_EXPIRY, "10");
        let second = 1_000_000_000;
        assert_eq!(expiry_left(None, 0, 50 * second), Ok(None));
        assert_eq!(expiry_left(Some(&headers), 5 * second, 5 * second), Ok(Some(10)));
        assert_eq!(expiry_left(Some(&headers), 0, 4 * second + 1), Ok(Some(6)));
        assert_eq!(expiry_left(Some(&headers), 0, 10 * second), Err(Expired));
        // A clock that went back does not lengthen it.
        assert_eq!(expiry_left(Some(&headers), 9 * second, 0), Ok(Some(10)));
    }

    #[test]
    fn properties_round_trip_through_headers() {
        let mut p = Publish::new("a/b", "x");
        p.qos = QoS::AtLeastOnce;
        p.retain = true;
        p.properties.correlation_data = Some(Bytes::from_static(b"\x00\xffid"));
        p.properties.content_type = Some("text/plain".into());
        p.properties.payload_format_utf8 = Some(true);
        p.properties.message_expiry_interval = Some(30);
        p.properties.user_properties = vec![("k".into(), "v".into()), ("bad name".into(), "dropped".into())];
        let headers = to_nats_headers(&p).unwrap();
        let d = from_nats_headers(Some(&headers), true);
        assert_eq!(d.qos, Some(QoS::AtLeastOnce));
        assert!(d.retain);
        assert_eq!(d.properties.correlation_data, p.properties.correlation_data);
        assert_eq!(d.properties.content_type, p.properties.content_type);
        assert_eq!(d.properties.payload_format_utf8, Some(true));
        assert_eq!(d.properties.message_expiry_interval, Some(30));
        assert_eq!(d.properties.user_properties, vec![("k".into(), "v".into())]);
    }

    #[test]
    fn plain_qos0_publish_has_no_headers() {
        assert!(to_nats_headers(&Publish::new("a", "x")).is_none());
    }
}
