//! Which consumers of a stream take which subjects, for the checks interest retention makes
//! on every message: is anyone interested in a new message, and has everyone interested
//! acknowledged it. Filters are kept in a sublist, so a check costs the consumers whose
//! filters match, not every consumer of the stream: the MQTT gateway's `$MQTT_msgs` has one
//! consumer per persistent session, tens of thousands of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::jetstream::consumer::Consumer;
use crate::router::{InternalHandler, Message, Sink, Sublist, Subscription};

/// A filter's entry in the sublist; its deliveries are never used.
struct FilterEntry;

impl InternalHandler for FilterEntry {
    fn deliver(&self, _msg: &Message<'_>) {}
}

/// The sink of every filter's sublist entry: one for all, as it is never called.
static FILTER_SINK: std::sync::LazyLock<Arc<FilterEntry>> =
    std::sync::LazyLock::new(|| Arc::new(FilterEntry));

/// A filter's sublist entry and the consumers using the filter.
type FilterUsers = (Arc<Subscription>, Vec<Weak<Consumer>>);

#[derive(Default)]
struct Registry {
    /// Per distinct filter.
    by_filter: HashMap<Arc<str>, FilterUsers>,
    /// Consumers without a filter: they take every subject of the stream.
    unfiltered: Vec<Weak<Consumer>>,
}

/// The consumers of one stream by the subjects their filters take.
pub struct ConsumerInterest {
    filters: Sublist,
    registry: Mutex<Registry>,
    /// Whether `registry` holds no consumer, refreshed under its lock: a stream without
    /// consumers answers every check without a lock or a lookup.
    empty: AtomicBool,
}

impl Default for ConsumerInterest {
    fn default() -> Self {
        ConsumerInterest {
            filters: Sublist::default(),
            registry: Mutex::default(),
            empty: AtomicBool::new(true),
        }
    }
}

impl ConsumerInterest {
    /// Registers `consumer` under `filters` (none: every subject).
    pub fn add<S: AsRef<str>>(&self, consumer: &Arc<Consumer>, filters: &[S]) {
        let mut registry = self.registry.lock();
        self.empty.store(false, Ordering::Release);
        if filters.is_empty() {
            registry.unfiltered.push(Arc::downgrade(consumer));
            return;
        }
        for filter in filters.iter().map(AsRef::as_ref) {
            if let Some((_, users)) = registry.by_filter.get_mut(filter) {
                users.push(Arc::downgrade(consumer));
                continue;
            }
            let sink: Arc<FilterEntry> = Arc::clone(&FILTER_SINK);
            let sub = Subscription::new(filter.into(), None, Sink::Internal(sink));
            self.filters.insert(sub.clone());
            // Keyed by the entry's own copy of the filter: no second one.
            registry.by_filter.insert(Arc::clone(&sub.subject), (sub, vec![Arc::downgrade(consumer)]));
        }
    }

    /// Forgets `consumer` under `filters` (as given to [`ConsumerInterest::add`]).
    pub fn remove<S: AsRef<str>>(&self, consumer: &Consumer, filters: &[S]) {
        let same = |w: &Weak<Consumer>| std::ptr::eq(w.as_ptr(), consumer);
        let mut registry = self.registry.lock();
        if filters.is_empty() {
            registry.unfiltered.retain(|w| !same(w));
        }
        for filter in filters.iter().map(AsRef::as_ref) {
            let Some((sub, users)) = registry.by_filter.get_mut(filter) else { continue };
            users.retain(|w| !same(w));
            if users.is_empty() {
                self.filters.remove(sub);
                registry.by_filter.remove(filter);
            }
        }
        // A filter's entry goes with its last user, so no entries means no consumers.
        self.empty.store(registry.unfiltered.is_empty() && registry.by_filter.is_empty(), Ordering::Release);
    }

    /// Whether no consumer is registered.
    fn is_empty(&self) -> bool {
        self.empty.load(Ordering::Acquire)
    }

    /// Whether any consumer takes `subject`.
    pub fn any(&self, subject: &str) -> bool {
        if self.is_empty() {
            return false;
        }
        if !self.registry.lock().unfiltered.is_empty() {
            return true;
        }
        !self.filters.matches(subject).is_empty()
    }

    /// The consumers that take `subject`, each once.
    pub fn interested(&self, subject: &str) -> Vec<Arc<Consumer>> {
        if self.is_empty() {
            return Vec::new();
        }
        let matched = self.filters.matches(subject);
        let registry = self.registry.lock();
        let mut found: Vec<Arc<Consumer>> = registry.unfiltered.iter().filter_map(Weak::upgrade).collect();
        for sub in &matched.plain {
            if let Some((_, users)) = registry.by_filter.get(&sub.subject) {
                found.extend(users.iter().filter_map(Weak::upgrade));
            }
        }
        drop(registry);
        // Each consumer once, whatever its filters matched through.
        found.sort_unstable_by_key(|c| Arc::as_ptr(c) as usize);
        found.dedup_by_key(|c| Arc::as_ptr(c) as usize);
        found
    }
}
