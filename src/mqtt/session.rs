//! A session's state while its client is connected: subscriptions, packet identifiers, and
//! the QoS 1/2 messages in flight in both directions. What must outlive the connection is
//! written through the [`super::store::SessionStore`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::mem;
use std::sync::Arc;

use foldhash::fast::RandomState;

use super::store::{OutgoingMessage, StoredSubscription};
use crate::router::Subscription;

/// A subscription of the session and its router subscriptions (two for a `#` filter).
pub struct ActiveSubscription {
    pub stored: StoredSubscription,
    pub routes: Vec<Arc<Subscription>>,
}

/// A session's subscriptions by filter. Devices hold a handful, so a small list (one
/// allocation the size of its entries) serves them; past [`Subscriptions::SMALL`] it becomes
/// a hash map, so a client with thousands of filters does not pay a scan per SUBSCRIBE, with
/// an index of their subjects, so a delivered message is not matched against every filter.
pub enum Subscriptions {
    Small(Vec<ActiveSubscription>),
    Large(Box<LargeSubscriptions>),
}

/// Many subscriptions: by filter, and each filter's subjects (a `#` filter has two) in a
/// trie whose values are the filters.
#[derive(Default)]
pub struct LargeSubscriptions {
    by_filter: HashMap<String, ActiveSubscription, RandomState>,
    by_subject: jetway_subject::FilterMap<String>,
}

impl LargeSubscriptions {
    fn insert(&mut self, subscription: ActiveSubscription) -> Option<ActiveSubscription> {
        let filter = subscription.stored.filter.clone();
        let old = self.by_filter.insert(filter.clone(), subscription);
        if old.is_none() {
            for subject in subjects_of(&filter) {
                self.by_subject.insert(&subject, filter.clone());
            }
        }
        old
    }

    fn remove(&mut self, filter: &str) -> Option<ActiveSubscription> {
        let removed = self.by_filter.remove(filter)?;
        for subject in subjects_of(filter) {
            self.by_subject.remove(&subject, &removed.stored.filter);
        }
        Some(removed)
    }
}

/// The NATS filters an MQTT filter stands for (`a/#`: `a.>` and `a`); none for a filter
/// that has no subject form (such a filter matches nothing).
fn subjects_of(filter: &str) -> Vec<String> {
    match jetway_protocols::mqtt::topic::filter_to_subjects(filter) {
        Ok((subject, parent)) => std::iter::once(subject).chain(parent).collect(),
        Err(_) => Vec::new(),
    }
}

impl Default for Subscriptions {
    fn default() -> Self {
        Subscriptions::Small(Vec::new())
    }
}

impl Subscriptions {
    pub const SMALL: usize = 16;

    pub fn len(&self) -> usize {
        match self {
            Subscriptions::Small(list) => list.len(),
            Subscriptions::Large(large) => large.by_filter.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains_key(&self, filter: &str) -> bool {
        self.get(filter).is_some()
    }

    pub fn get(&self, filter: &str) -> Option<&ActiveSubscription> {
        match self {
            Subscriptions::Small(list) => list.iter().find(|s| s.stored.filter == filter),
            Subscriptions::Large(large) => large.by_filter.get(filter),
        }
    }

    /// The subscriptions whose filter matches `topic`, as [`super::retained::filter_matches`]
    /// says (`subject`: the topic as a NATS subject).
    pub fn matching(&self, topic: &str, subject: &str) -> Vec<&ActiveSubscription> {
        match self {
            Subscriptions::Small(list) => {
                list.iter().filter(|s| super::retained::filter_matches(&s.stored.filter, topic)).collect()
            }
            Subscriptions::Large(large) => {
                let mut found = Vec::new();
                large.by_subject.for_each_match(subject, |filter| found.extend(large.by_filter.get(filter)));
                // Filters starting with a wildcard do not take `$` topics.
                if topic.starts_with('$') {
                    found.retain(|s| {
                        jetway_protocols::mqtt::topic::filter_matches_dollar_topics(&s.stored.filter)
                    });
                }
                found
            }
        }
    }

    /// Adds `subscription`, returning the one it replaces (same filter).
    pub fn insert(&mut self, subscription: ActiveSubscription) -> Option<ActiveSubscription> {
        match self {
            Subscriptions::Small(list) => {
                if let Some(old) = list.iter_mut().find(|s| s.stored.filter == subscription.stored.filter) {
                    return Some(mem::replace(old, subscription));
                }
                if list.len() < Self::SMALL {
                    // Exactly one more: a Vec's first growth would make room for four.
                    list.reserve_exact(1);
                    list.push(subscription);
                    return None;
                }
                let mut large = Box::<LargeSubscriptions>::default();
                for s in mem::take(list) {
                    large.insert(s);
                }
                large.insert(subscription);
                *self = Subscriptions::Large(large);
                None
            }
            Subscriptions::Large(large) => large.insert(subscription),
        }
    }

    pub fn remove(&mut self, filter: &str) -> Option<ActiveSubscription> {
        match self {
            Subscriptions::Small(list) => {
                let at = list.iter().position(|s| s.stored.filter == filter)?;
                Some(list.remove(at))
            }
            Subscriptions::Large(large) => large.remove(filter),
        }
    }

    /// Every subscription (no allocation: this runs for every stored delivery).
    pub fn values(&self) -> impl Iterator<Item = &ActiveSubscription> + '_ {
        let (list, map) = match self {
            Subscriptions::Small(list) => (list.as_slice(), None),
            Subscriptions::Large(large) => (&[][..], Some(&large.by_filter)),
        };
        list.iter().chain(map.into_iter().flat_map(|map| map.values()))
    }
}

/// The connected session.
pub struct SessionState {
    pub client_id: String,
    /// Whether the session is kept after the connection ends (3.1.1 clean session 0, MQTT 5
    /// session expiry > 0).
    pub persistent: bool,
    /// MQTT 5 session expiry in seconds (`u32::MAX`: never); 3.1.1: 0 or `u32::MAX`.
    pub expiry: u32,
    pub subscriptions: Subscriptions,
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
            subscriptions: Subscriptions::default(),
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

    fn subscription(filter: &str, qos: QoS) -> ActiveSubscription {
        let options = jetway_protocols::mqtt::SubscriptionOptions::new(qos);
        ActiveSubscription {
            stored: StoredSubscription { filter: filter.into(), options, identifier: None, shared: false },
            routes: Vec::new(),
        }
    }

    #[test]
    fn subscriptions_replace_by_filter_small_and_large() {
        let mut subs = Subscriptions::default();
        for i in 0..Subscriptions::SMALL * 2 {
            assert!(subs.insert(subscription(&format!("t/{i}"), QoS::AtMostOnce)).is_none());
            assert_eq!(subs.len(), i + 1);
            // Replacing keeps one entry per filter, in both representations.
            let old = subs.insert(subscription(&format!("t/{i}"), QoS::AtLeastOnce)).unwrap();
            assert_eq!(old.stored.options.qos, QoS::AtMostOnce);
            assert_eq!(subs.len(), i + 1);
        }
        assert!(matches!(subs, Subscriptions::Large(_)));
        assert!(subs.contains_key("t/0") && !subs.contains_key("t/x"));
        assert!(subs.values().all(|s| s.stored.options.qos == QoS::AtLeastOnce));
        assert_eq!(subs.remove("t/3").unwrap().stored.filter, "t/3");
        assert!(subs.remove("t/3").is_none());
        assert_eq!(subs.len(), Subscriptions::SMALL * 2 - 1);
    }

    #[test]
    fn matching_subscriptions_are_those_the_filters_match_small_and_large() {
        let filters = ["a/#", "a/+", "+/b", "#", "$SYS/#", "a/b/c", "a//c", "x", "+", "+/+/c"];
        let topics = ["a", "a/b", "a/b/c", "x", "y/b", "$SYS/x", "$SYS", "a//c", "q/r/c", "b"];
        let mut small = Subscriptions::default();
        let mut large = Subscriptions::default();
        for filter in filters {
            small.insert(subscription(filter, QoS::AtLeastOnce));
            large.insert(subscription(filter, QoS::AtLeastOnce));
        }
        for i in 0..Subscriptions::SMALL {
            large.insert(subscription(&format!("other/{i}"), QoS::AtLeastOnce));
        }
        assert!(matches!(small, Subscriptions::Small(_)) && matches!(large, Subscriptions::Large(_)));
        // A removed filter is no longer found.
        large.insert(subscription("gone/#", QoS::AtLeastOnce));
        assert!(large.remove("gone/#").is_some());
        for topic in topics {
            let subject = jetway_protocols::mqtt::topic::topic_to_subject(topic).unwrap().into_owned();
            let names = |subs: &Subscriptions| {
                let mut names: Vec<String> =
                    subs.matching(topic, &subject).into_iter().map(|s| s.stored.filter.clone()).collect();
                names.sort();
                names
            };
            let mut expected: Vec<String> = filters
                .iter()
                .filter(|f| crate::mqtt::retained::filter_matches(f, topic))
                .map(|f| f.to_string())
                .collect();
            expected.sort();
            assert_eq!(names(&small), expected, "{topic}");
            assert_eq!(names(&large), expected, "{topic}");
        }
    }

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
