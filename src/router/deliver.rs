//! Fan-out of one message to everything it matches.
//!
//! Client sinks get the encoded frame appended to their outbound queue; the queue's writer is
//! not woken here but recorded in a [`FlushSet`], which the publisher flushes once after its
//! whole read batch (write coalescing: one wake-up and one `write` per batch, not per message).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

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
        Message { subject, reply, headers, payload, origin: None, echo: true }
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
    /// Receivers past their stall threshold; the publisher waits for them after flushing.
    stalled: Vec<Arc<ClientShared>>,
    stats: Arc<ServerStats>,
    out_msgs: u64,
    out_bytes: u64,
    /// Write to the receivers' sockets from this task (a connection ending a read batch), or
    /// only wake their writer tasks (internal publishers, which publish one message at a time:
    /// a write per message would cost a syscall each, where a wake coalesces).
    direct: bool,
}

impl FlushSet {
    /// For a connection's read batches: flushes write directly when the socket allows.
    pub fn new(stats: Arc<ServerStats>) -> Self {
        let mut set = Self::waking(stats);
        set.direct = true;
        set
    }

    /// For internal publishers: flushes only wake the receivers' writer tasks.
    pub fn waking(stats: Arc<ServerStats>) -> Self {
        FlushSet { clients: Vec::new(), stalled: Vec::new(), stats, out_msgs: 0, out_bytes: 0, direct: false }
    }

    pub(crate) fn add(&mut self, client: &Arc<ClientShared>) {
        self.clients.push(client.clone());
    }

    fn stall(&mut self, client: &Arc<ClientShared>) {
        if !self.stalled.iter().any(|c| Arc::ptr_eq(c, client)) {
            self.stalled.push(client.clone());
        }
    }

    /// Fast-producer stall: after a batch that pushed receivers past 3/4 of `max_pending`,
    /// the publisher pauses (without blocking a thread) until they drain, at most 2 ms per
    /// receiver (5 ms when full) and 10 ms in total, as nats-server does. The publisher stops
    /// reading meanwhile, so TCP pushes back on it instead of the receiver being cut off.
    pub async fn wait_stalled(&mut self) {
        const TOTAL: Duration = Duration::from_millis(10);
        let started = tokio::time::Instant::now();
        for client in self.stalled.drain(..) {
            let ttl =
                if client.outbound.is_full() { Duration::from_millis(5) } else { Duration::from_millis(2) };
            let ttl = ttl.min(TOTAL.saturating_sub(started.elapsed()));
            if ttl.is_zero() {
                break;
            }
            self.stats.stalls.fetch_add(1, Ordering::Relaxed);
            let _ = tokio::time::timeout(ttl, client.outbound.below_stall_threshold()).await;
        }
    }

    /// Wakes every recorded writer once and publishes the batch's counters.
    pub fn flush(&mut self) {
        for client in self.clients.drain(..) {
            if self.direct {
                client.flush_now();
            } else {
                client.wake_writer();
            }
        }
        if self.out_msgs > 0 {
            self.stats.out_msgs.fetch_add(self.out_msgs, Ordering::Relaxed);
            self.stats.out_bytes.fetch_add(self.out_bytes, Ordering::Relaxed);
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
pub fn deliver(sublist: &Sublist, result: &MatchResult, msg: &Message<'_>, flush: &mut FlushSet) -> usize {
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

fn deliver_one(sublist: &Sublist, sub: &Arc<Subscription>, msg: &Message<'_>, flush: &mut FlushSet) -> bool {
    if sub.is_closed() {
        return false;
    }
    if !msg.echo && msg.origin.is_some() && sub.client_id() == msg.origin {
        return false;
    }
    match &sub.sink {
        Sink::Client { client, .. } => {
            if client.permissions.get().is_some_and(|p| !p.on_deliver(msg.subject, msg.reply)) {
                return false;
            }
        }
        Sink::Internal(handler) => {
            if !handler.takes(msg) {
                return false;
            }
        }
    }
    let Some(last) = sub.claim_delivery() else {
        return false;
    };
    match &sub.sink {
        Sink::Client { client, sid } => {
            let pushed = client.push_msg(msg, sid);
            if pushed.wake {
                flush.add(client);
            }
            if pushed.stalled {
                flush.stall(client);
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

/// Publishes `msg` into `account` from inside the server (API replies, acks, advisories,
/// consumer deliveries): matches, delivers and wakes the writers at once.
pub fn publish(account: &crate::account::Account, stats: &Arc<ServerStats>, msg: &Message<'_>) -> usize {
    publish_routed(account, stats, msg.subject, msg)
}

/// Like [`publish`], but routed by `route` while receivers see `msg.subject` (JetStream
/// deliveries: routed to a deliver subject or inbox, shown with the stream subject).
pub fn publish_routed(
    account: &crate::account::Account,
    stats: &Arc<ServerStats>,
    route: &str,
    msg: &Message<'_>,
) -> usize {
    let result = account.sublist.matches(route);
    deliver_in_scope(account, stats, &result, msg)
}

/// Delivers into the thread's open [`DeliveryScope`], else waking the receivers at once.
fn deliver_in_scope(
    account: &crate::account::Account,
    stats: &Arc<ServerStats>,
    result: &MatchResult,
    msg: &Message<'_>,
) -> usize {
    let batched = DELIVERY_BATCH.with(|batch| {
        let mut batch = batch.try_borrow_mut().ok()?;
        let flush = batch.as_mut()?;
        Some(deliver(&account.sublist, result, msg, flush))
    });
    batched.unwrap_or_else(|| {
        let mut flush = FlushSet::waking(stats.clone());
        deliver(&account.sublist, result, msg, &mut flush)
    })
}

/// Publishes a reply (a publish ack, an API response) into `account`. Reply subjects are
/// usually unique inboxes, so the lookup bypasses the match cache. Inside a [`DeliveryScope`]
/// the receivers are written to when the scope ends.
pub fn publish_reply(
    account: &crate::account::Account,
    stats: &Arc<ServerStats>,
    msg: &Message<'_>,
) -> usize {
    let result = account.sublist.matches_transient(msg.subject);
    deliver_in_scope(account, stats, &result, msg)
}

thread_local! {
    /// The receivers of what is published on this thread inside a [`DeliveryScope`].
    static DELIVERY_BATCH: std::cell::RefCell<Option<FlushSet>> = const { std::cell::RefCell::new(None) };
}

/// The storage threads' completion scope: the publish acks a batch of completions queues are
/// written to their clients' sockets once, directly, when the batch ends, instead of each
/// client's writer task being woken from the storage thread (a cross-thread wake-up per client
/// per group commit, and the acks' latency of that hop).
pub struct ReplyBatch {
    pub stats: Arc<ServerStats>,
}

impl jetway_storage::CompletionScope for ReplyBatch {
    fn run(&self, complete: &mut dyn FnMut()) {
        let _deliveries = DeliveryScope::begin(&self.stats);
        complete();
    }
}

/// While it lives, what is published on this thread ([`publish`], [`publish_reply`]: publish
/// acks, an MQTT connection's PUBLISHes) is queued and flushed when it ends, once per
/// receiver (written to its socket directly where the receiver allows that, else its writer
/// task woken once), instead of each message waking its receiver's writer task. A scope begun inside another is a no-op: the outer one flushes. Never held
/// across an `.await` (it is the thread's, not the task's).
#[must_use]
pub struct DeliveryScope {
    outermost: bool,
}

impl DeliveryScope {
    pub fn begin(stats: &Arc<ServerStats>) -> DeliveryScope {
        let outermost = DELIVERY_BATCH.with(|batch| {
            let mut batch = batch.borrow_mut();
            if batch.is_some() {
                return false;
            }
            *batch = Some(FlushSet::new(stats.clone()));
            true
        });
        DeliveryScope { outermost }
    }
}

impl Drop for DeliveryScope {
    fn drop(&mut self) {
        if !self.outermost {
            return;
        }
        if let Some(mut flush) = DELIVERY_BATCH.with(|batch| batch.borrow_mut().take()) {
            flush.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;

    use super::{publish, publish_reply, DeliveryScope};
    use crate::account::Account;
    use crate::nats::client::ClientShared;
    use crate::router::{Message, Sink, Subscription};
    use crate::stats::ServerStats;

    /// Whether the client's writer task was woken (within a few milliseconds).
    async fn writer_woken(client: &ClientShared) -> bool {
        tokio::time::timeout(Duration::from_millis(20), client.outbound.wait()).await.is_ok()
    }

    #[tokio::test]
    async fn publishes_in_a_scope_reach_their_receivers_when_it_ends() {
        let stats = Arc::new(ServerStats::default());
        let account = Account::new("A");
        let client = Arc::new(ClientShared::new(1, "127.0.0.1:1".parse().unwrap(), 1 << 20, stats.clone()));
        let sink = Sink::Client { client: client.clone(), sid: Bytes::from_static(b"1") };
        account.sublist.insert(Subscription::new("sensors.>".into(), None, sink));
        let payload = Bytes::from_static(b"21.5");
        let msg = Message::internal("sensors.t1", None, None, &payload);
        let scope = DeliveryScope::begin(&stats);
        for _ in 0..3 {
            assert_eq!(publish(&account, &stats, &msg), 1);
        }
        assert!(!writer_woken(&client).await, "an MQTT read's PUBLISHes are queued until its scope ends");
        drop(scope);
        assert!(writer_woken(&client).await);
        let mut chunks = std::collections::VecDeque::new();
        client.outbound.take(&mut chunks);
        let bytes: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(bytes.windows(4).filter(|w| w == b"21.5").count(), 3, "all three, in one batch");
    }

    #[tokio::test]
    async fn replies_in_a_scope_are_flushed_once_when_the_outermost_scope_ends() {
        let stats = Arc::new(ServerStats::default());
        let account = Account::new("A");
        let client = Arc::new(ClientShared::new(1, "127.0.0.1:1".parse().unwrap(), 1 << 20, stats.clone()));
        let sink = Sink::Client { client: client.clone(), sid: Bytes::from_static(b"1") };
        account.sublist.insert(Subscription::new("reply.1".into(), None, sink));
        let payload = Bytes::from_static(b"ack");
        let reply = Message::internal("reply.1", None, None, &payload);

        // What the writer task does when woken: take everything queued.
        let taken = |client: &ClientShared| {
            let mut chunks = std::collections::VecDeque::new();
            client.outbound.take(&mut chunks);
            chunks.iter().map(|c| c.len()).sum::<usize>()
        };
        // Without a scope the reply wakes the writer at once.
        assert_eq!(publish_reply(&account, &stats, &reply), 1);
        assert!(writer_woken(&client).await);
        assert!(taken(&client) > 0);

        let outer = DeliveryScope::begin(&stats);
        {
            let _inner = DeliveryScope::begin(&stats);
            assert_eq!(publish_reply(&account, &stats, &reply), 1);
        }
        assert_eq!(publish_reply(&account, &stats, &reply), 1);
        assert!(!writer_woken(&client).await, "queued until the outermost scope ends");
        drop(outer);
        // This client has no socket for direct writes: the flush hands the bytes to its writer.
        assert!(writer_woken(&client).await);
        assert!(taken(&client) > 0);
    }
}
