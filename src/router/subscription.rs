//! A subscription: a filter, an optional queue group, and where matching messages go.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::deliver::Message;
use crate::nats::client::ClientShared;

/// Receives messages for an internal subscription (a stream's ingest, an API handler, …).
/// Called on the publisher's task: it must not block; hand work to the owner's queue.
pub trait InternalHandler: Send + Sync {
    fn deliver(&self, msg: &Message<'_>);

    /// Whether this handler takes `msg` at all. A message no subscription takes counts as
    /// not delivered, so a request nobody serves gets the no-responders status (the JetStream
    /// API's wildcard subscription leaves a pull request for a missing consumer to it).
    fn takes(&self, _msg: &Message<'_>) -> bool {
        true
    }
}

/// Where a matching message goes.
#[derive(Clone)]
pub enum Sink {
    /// A NATS client connection: encoded as `MSG`/`HMSG` with this subscription id.
    Client { client: Arc<ClientShared>, sid: Bytes },
    /// An in-process handler.
    Internal(Arc<dyn InternalHandler>),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sink::Client { client, sid } => write!(f, "Client({}, {:?})", client.id, sid),
            Sink::Internal(_) => f.write_str("Internal"),
        }
    }
}

/// One subscription. Shared between the sublist, its owner, and cached match results.
#[derive(Debug)]
pub struct Subscription {
    pub subject: Arc<str>,
    pub queue: Option<Arc<str>>,
    pub sink: Sink,
    /// Messages handed to the sink so far.
    delivered: AtomicU64,
    /// Auto-unsubscribe after this many deliveries; 0 means no limit.
    max_msgs: AtomicU64,
    /// Set once removed; cached match results may still hold it for a moment.
    closed: AtomicBool,
}

impl Subscription {
    pub fn new(subject: Arc<str>, queue: Option<Arc<str>>, sink: Sink) -> Arc<Self> {
        Arc::new(Subscription {
            subject,
            queue,
            sink,
            delivered: AtomicU64::new(0),
            max_msgs: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        })
    }

    /// Id of the owning client connection, if it is one (for `echo: false`).
    pub fn client_id(&self) -> Option<u64> {
        match &self.sink {
            Sink::Client { client, .. } => Some(client.id),
            Sink::Internal(_) => None,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// The auto-unsubscribe limit; 0 means none.
    pub fn max_msgs(&self) -> u64 {
        self.max_msgs.load(Ordering::Relaxed)
    }

    /// Sets the auto-unsubscribe limit. Returns true when it is already reached.
    pub fn set_max_msgs(&self, max: u64) -> bool {
        self.max_msgs.store(max, Ordering::Release);
        max > 0 && self.delivered() >= max
    }

    /// Claims one delivery. `None`: the limit is used up, skip. `Some(last)`: deliver, and
    /// `last` says this was the final one allowed (the caller then removes the subscription).
    pub(crate) fn claim_delivery(&self) -> Option<bool> {
        let max = self.max_msgs.load(Ordering::Acquire);
        let n = self.delivered.fetch_add(1, Ordering::AcqRel) + 1;
        if max == 0 {
            return Some(false);
        }
        if n > max {
            return None;
        }
        Some(n == max)
    }
}
