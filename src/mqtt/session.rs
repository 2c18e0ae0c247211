//! A session's state while its client is connected: subscriptions, packet identifiers, and
//! the QoS 1/2 messages in flight in both directions. What must outlive the connection is
//! written through the [`super::store::SessionStore`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use foldhash::fast::RandomState;

use super::store::{OutgoingMessage, StoredSubscription};
use crate::router::Subscription;

/// A subscription of the session and its router subscriptions (two for a `#` filter).
pub struct ActiveSubscription {
    pub stored: StoredSubscription,
    pub routes: Vec<Arc<Subscription>>,
}

/// The connected session.
pub struct SessionState {
    pub client_id: String,
    /// Whether the session is kept after the connection ends (3.1.1 clean session 0, MQTT 5
    /// session expiry > 0).
    pub persistent: bool,
    /// MQTT 5 session expiry in seconds (`u32::MAX`: never); 3.1.1: 0 or `u32::MAX`.
    pub expiry: u32,
    pub subscriptions: HashMap<String, ActiveSubscription, RandomState>,
    /// Outgoing QoS 1/2 messages sent and not yet acknowledged, in sending order.
    pub inflight: VecDeque<OutgoingMessage>,
    /// Outgoing QoS 1/2 messages waiting for the client's receive maximum to allow them.
    pub waiting: VecDeque<OutgoingMessage>,
    /// Incoming QoS 2 packet ids received and not yet released by PUBREL.
    pub incoming_qos2: HashSet<u16, RandomState>,
    next_packet_id: u16,
}

impl SessionState {
    pub fn new(client_id: String, persistent: bool, expiry: u32) -> SessionState {
        SessionState {
            client_id,
            persistent,
            expiry,
            subscriptions: HashMap::default(),
            inflight: VecDeque::new(),
            waiting: VecDeque::new(),
            incoming_qos2: HashSet::default(),
            next_packet_id: 0,
        }
    }

    /// A packet id not used by an in-flight outgoing message, or `None` when all 65,535 are.
    pub fn next_packet_id(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
            let id = self.next_packet_id;
            if !self.inflight.iter().any(|m| m.publish.packet_id == id) {
                return Some(id);
            }
        }
        None
    }

    /// Removes and returns the in-flight message `packet_id`.
    pub fn take_inflight(&mut self, packet_id: u16) -> Option<OutgoingMessage> {
        let at = self.inflight.iter().position(|m| m.publish.packet_id == packet_id)?;
        self.inflight.remove(at)
    }

    pub fn inflight_mut(&mut self, packet_id: u16) -> Option<&mut OutgoingMessage> {
        self.inflight.iter_mut().find(|m| m.publish.packet_id == packet_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jetway_protocols::mqtt::{Publish, QoS};

    #[test]
    fn packet_ids_skip_those_in_flight_and_wrap() {
        let mut s = SessionState::new("c".into(), false, 0);
        assert_eq!(s.next_packet_id(), Some(1));
        let mut p = Publish::new("t", "x");
        p.qos = QoS::AtLeastOnce;
        p.packet_id = 2;
        s.inflight.push_back(OutgoingMessage { publish: p, released: false, delivery: None });
        assert_eq!(s.next_packet_id(), Some(3));
        s.next_packet_id = u16::MAX;
        assert_eq!(s.next_packet_id(), Some(1));
        assert!(s.take_inflight(2).is_some());
        assert!(s.take_inflight(2).is_none());
    }
}
