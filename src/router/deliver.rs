//! Fan-out of one message to everything it matches.
//!
//! Client sinks get the encoded frame appended to their outbound queue; the queue's writer is
//! not woken here but recorded in a [`FlushSet`], which the publisher flushes once after its
//! whole read batch (write coalescing: one wake-up and one `write` per batch, not per message).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::sublist::{MatchResult, Sublist};
use super::subscription::{Sink, Subscription};
use crate::nats::client::ClientShared;
use crate::stats::ServerStats;

/// A message being routed. Borrowed: routing copies nothing until a sink needs to.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub subject: &'a str,
    pub reply: Option<&'a str>,
    /// Raw `NATS/1.0` header block, if any.
    pub headers: Option<&'a Bytes>,
    pub payload: &'a Bytes,
    /// Publishing connection, for `echo: false`; `None` for internal publishers.
    pub origin: Option<u64>,
    /// Whether the publisher wants its own messages back.
    pub echo: bool,
}

impl<'a> Message<'a> {
    /// A message from an internal publisher (no origin connection).
    pub fn internal(
        subject: &'a str,
        reply: Option<&'a str>,
        headers: Option<&'a Bytes>,
        payload: &'a Bytes,
    ) -> Self {
        Message {
            subject,
            reply,
            headers,
            payload,
            origin: None,
            echo: true,
        }
    }

    /// Header and payload bytes together, as counted by `max_payload` and stats.
    pub fn size(&self) -> usize {
        self.headers.map_or(0, |h| h.len()) + self.payload.len()
    }
}

/// Clients whose outbound queues got data and whose writers need waking, and the outbound
/// traffic of the batch (added to the server counters once per batch, not per message, so
/// publishers on different cores do not fight over one cache line).
pub struct FlushSet {
    clients: Vec<Arc<ClientShared>>,
    stats: Arc<ServerStats>,
    out_msgs: u64,
    out_bytes: u64,
}

impl FlushSet {
    pub fn new(stats: Arc<ServerStats>) -> Self {
        FlushSet {
            clients: Vec::new(),
            stats,
            out_msgs: 0,
            out_bytes: 0,
        }
    }

    pub(crate) fn add(&mut self, client: &Arc<ClientShared>) {
        self.clients.push(client.clone());
    }

    /// Wakes every recorded writer once and publishes the batch's counters.
    pub fn flush(&mut self) {
        for client in self.clients.drain(..) {
            client.wake_writer();
        }
        if self.out_msgs > 0 {
            self.stats
                .out_msgs
                .fetch_add(self.out_msgs, Ordering::Relaxed);
            self.stats
                .out_bytes
                .fetch_add(self.out_bytes, Ordering::Relaxed);
            self.out_msgs = 0;
            self.out_bytes = 0;
        }
    }
}

impl Drop for FlushSet {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Delivers `msg` to `result`: every plain subscription and one member per queue group.
/// Returns the number of sinks that received it.
pub fn deliver(
    sublist: &Sublist,
    result: &MatchResult,
    msg: &Message<'_>,
    flush: &mut FlushSet,
) -> usize {
    let mut delivered = 0;
    for sub in &result.plain {
        delivered += usize::from(deliver_one(sublist, sub, msg, flush));
    }
    for group in &result.groups {
        // A member whose auto-unsubscribe limit ran out mid-pick is skipped, the next is tried.
        for _ in 0..group.members.len() {
            let Some(member) = group.pick() else { break };
            if deliver_one(sublist, member, msg, flush) {
                delivered += 1;
                break;
            }
        }
    }
    delivered
}

fn deliver_one(
    sublist: &Sublist,
    sub: &Arc<Subscription>,
    msg: &Message<'_>,
    flush: &mut FlushSet,
) -> bool {
    if sub.is_closed() {
        return false;
    }
    if !msg.echo && msg.origin.is_some() && sub.client_id() == msg.origin {
        return false;
    }
    let Some(last) = sub.claim_delivery() else {
        return false;
    };
    match &sub.sink {
        Sink::Client { client, sid } => {
            if client.push_msg(msg, sid) {
                flush.add(client);
            }
        }
        Sink::Internal(handler) => handler.deliver(msg),
    }
    flush.out_msgs += 1;
    flush.out_bytes += msg.size() as u64;
    if last {
        sublist.remove(sub);
        if let Sink::Client { client, sid } = &sub.sink {
            client.forget_sub(sid);
        }
    }
    true
}
