//! A consumer's delivery pass: delivers new messages and redeliveries to push subscribers or
//! waiting pull requests, expires requests, sends heartbeats, removes an inactive ephemeral
//! consumer, and says when it needs the next pass (see `scheduler` for who runs it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use jetway_storage::{StoredMessage, SubjectFilter};

use super::ack::ack_subject;
use super::config::{AckPolicy, ConsumerConfig, ReplayPolicy};
use super::flow_control;
use super::priority::{self, Choice, Pin, PriorityPolicy};
use super::pull::{pending_headers, Waiting};
use super::{Consumer, Inner, Pending};
use crate::jetstream::stream::Stream;
use crate::router::{deliver, FlushSet, MatchResult, Message};

/// Messages delivered per wake-up of the receivers' writers.
const DELIVERY_CHUNK: usize = 32;

/// How often a push consumer with messages to send looks for a subscriber on its deliver
/// subject while it has none.
const INTEREST_RECHECK: Duration = Duration::from_millis(250);

/// Messages delivered per pump before yielding to other tasks.
const MAX_PER_PUMP: usize = 1024;

/// A status message on its way out: (reply subject, code, text, headers).
type StatusOut = (String, u16, String, Vec<(&'static str, String)>);

/// What [`Consumer::choose_request`] found.
struct ChosenRequest {
    /// The request's reply subject, `None` when no request may take the message.
    target: Option<Arc<str>>,
    /// (group, pin id) of a pin just given to it.
    pinned: Option<(String, String)>,
    /// Requests refused on the way (`423`, holding a stale pin).
    refused: Vec<StatusOut>,
}

/// One message on its way out (published after the lock is released).
struct Outgoing {
    /// Where the message is routed: the deliver subject or the pull request's inbox.
    target: Arc<str>,
    /// The stream subject, shown to the receiver.
    subject: Arc<str>,
    reply: Option<String>,
    headers: Option<Bytes>,
    payload: Bytes,
}

impl Consumer {
    /// Delivers what can be delivered now. Returns when to wake next, and whether it stopped
    /// early with more to do.
    pub(super) fn pump(self: &Arc<Self>, stream: &Arc<Stream>) -> (Option<Instant>, bool) {
        self.stats.consumer_pumps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let config = self.config();
        let filter = Arc::clone(&self.filter.read());
        let now = Instant::now();
        let now_ns = crate::time::now_nanos();
        let mut out: Vec<Outgoing> = Vec::new();
        let mut statuses: Vec<StatusOut> = Vec::new();
        let mut max_delivered: Vec<(u64, u64)> = Vec::new();
        let mut more = false;
        let mut flow_request: Option<String> = None;
        let flow_controlled = config.flow_control && !config.is_pull();
        let policy = config.priority_policy;
        // (group, pin id) of pins given, groups of pins that timed out: advisories.
        let mut pinned: Vec<(String, String)> = Vec::new();
        let mut unpinned: Vec<String> = Vec::new();
        let mut resumed_from: Option<i64> = None;
        let delete;
        let next_wake;
        {
            let mut inner = self.inner.lock();
            self.expire_pending(&mut inner, &config, now, &mut max_delivered);
            // Messages given up on leave with the stream's (limits, purges).
            if let Some(&oldest) = inner.abandoned.keys().next() {
                let first = stream.store.state().first_seq;
                if oldest < first {
                    inner.abandoned = inner.abandoned.split_off(&first);
                    self.update_ack_floor(&mut inner);
                }
            }
            if config.is_pull() {
                expire_requests(&mut inner, &self.account, now, &mut statuses);
                if inner.pin.as_ref().is_some_and(|p| p.expires <= now) {
                    // The pinned client stopped pulling: the next request of the group gets the pin.
                    unpinned.extend(inner.pin.take().map(|p| p.group));
                }
            }
            let paused = inner.paused_until > now_ns;
            if !paused && inner.pause_pending_end {
                // The pause ran out: announced once, as nats-server's resume timer does.
                inner.pause_pending_end = false;
                resumed_from = Some(inner.paused_until);
            }
            let push_target = (!config.is_pull() && !paused)
                .then(|| Arc::<str>::from(config.deliver_subject.as_str()))
                .filter(|_| self.has_push_interest(&config));
            if flow_controlled {
                if let Some(flow) = inner.flow.as_mut() {
                    flow.expire(now);
                }
            }
            if paused && config.is_pull() {
                // A paused consumer has nothing to send.
                end_no_wait_requests(&mut inner, &mut statuses);
            }
            let mut count = 0;
            loop {
                if paused || (flow_controlled && inner.flow.as_ref().is_some_and(|f| f.stalled())) {
                    break;
                }
                if count >= MAX_PER_PUMP {
                    more = true;
                    break;
                }
                let push_to = if config.is_pull() {
                    if inner.waiting.is_empty() {
                        break;
                    }
                    None
                } else {
                    match &push_target {
                        Some(s) => Some(Arc::clone(s)),
                        None => break,
                    }
                };
                let Some(msg) = self.next_message(&mut inner, stream, &config, &filter, &mut max_delivered)
                else {
                    if config.is_pull() {
                        end_no_wait_requests(&mut inner, &mut statuses);
                    }
                    break;
                };
                // Paced delivery: `replay_policy: original` keeps the gaps between the messages'
                // store times; `rate_limit_bps` spaces messages by their size.
                if let Some(due) = pacing_due(&inner, &config, &msg) {
                    if due > now {
                        self.unpick(&mut inner, &msg);
                        if let Some(paced) = inner.paced.as_mut() {
                            paced.until = Some(due);
                        }
                        break;
                    }
                }
                // The request it goes to: the first waiting one, unless a priority group
                // says otherwise (nats-server picks after the message, as here).
                let (target, newly_pinned) = match push_to {
                    Some(target) => (target, false),
                    None => {
                        let chosen =
                            self.choose_request(&mut inner, &config, stream, &filter, &msg, (now, now_ns));
                        statuses.extend(chosen.refused);
                        let newly_pinned = chosen.pinned.is_some();
                        pinned.extend(chosen.pinned);
                        match chosen.target {
                            Some(target) => (target, newly_pinned),
                            None => {
                                self.unpick(&mut inner, &msg);
                                break;
                            }
                        }
                    }
                };
                // Its size as nats-server counts it (for max_bytes and flow control): subject,
                // ack reply, headers and payload.
                let reply = self.ack_reply(&inner, stream, &filter, &msg);
                let size = msg.subject.len()
                    + reply.len()
                    + msg.headers.as_ref().map_or(0, Bytes::len)
                    + msg.payload.len();
                if config.is_pull() {
                    if let Some(w) = inner.waiting.front_mut() {
                        if w.max_bytes > 0 && size as u64 > w.bytes_left {
                            let w = w.clone();
                            inner.waiting.pop_front();
                            // Undo the pick: the message stays for the next request, and a pin
                            // just given to this request is taken back.
                            self.unpick(&mut inner, &msg);
                            if newly_pinned {
                                inner.pin = None;
                            }
                            statuses.push((
                                w.reply.to_string(),
                                409,
                                "Message Size Exceeds MaxBytes".into(),
                                pending_headers(&w),
                            ));
                            continue;
                        }
                    }
                }
                let msg_ts = msg.timestamp;
                let mut out_msg = self.record_delivery(&mut inner, &config, msg, reply, &target, now, now_ns);
                if policy == PriorityPolicy::PinnedClient {
                    let id = inner.pin.as_ref().map_or("", |p| p.id.as_str());
                    out_msg.headers = Some(priority::with_pin_id(out_msg.headers.as_ref(), id));
                }
                out.push(out_msg);
                count += 1;
                if flow_controlled {
                    let timeout = flow_control::request_timeout(config.idle_heartbeat);
                    flow_request = inner.flow.get_or_insert_default().delivered(
                        size as u64,
                        &self.stream_name,
                        &self.name,
                        timeout,
                        now,
                    );
                    if flow_request.is_some() {
                        // The request goes out after what it covers; delivery continues next pump.
                        more = true;
                        break;
                    }
                }
                if config.is_pull() {
                    let done = match inner.waiting.front_mut() {
                        Some(w) => {
                            w.remaining -= 1;
                            w.delivered += 1;
                            w.bytes_left = w.bytes_left.saturating_sub(size as u64);
                            w.next_heartbeat = w.heartbeat.map(|h| now + h);
                            w.remaining == 0 || (w.max_bytes > 0 && w.bytes_left == 0)
                        }
                        None => false,
                    };
                    priority::after_delivery(&mut inner.waiting, policy, done);
                }
                if config.replay_policy == ReplayPolicy::Original || config.rate_limit_bps > 0 {
                    let wait = if config.rate_limit_bps > 0 {
                        Duration::from_secs_f64(size as f64 * 8.0 / config.rate_limit_bps as f64)
                    } else {
                        Duration::ZERO
                    };
                    let last = (msg_ts, now, now + wait);
                    match inner.paced.as_mut() {
                        Some(paced) => paced.last = last,
                        None => inner.paced = Some(Box::new(super::Paced { last, until: None })),
                    }
                }
            }
            // Heartbeats: push consumers idle for `idle_heartbeat`, pull requests with one.
            if config.idle_heartbeat > 0 && push_target.is_some() {
                let hb = Duration::from_nanos(config.idle_heartbeat as u64);
                if !out.is_empty() {
                    inner.next_heartbeat = Some(now + hb);
                } else if inner.next_heartbeat.is_none_or(|t| t <= now) {
                    inner.next_heartbeat = Some(now + hb);
                    let mut headers = heartbeat_headers(&inner);
                    if let Some(fc) = inner.flow.as_ref().and_then(|f| f.stalled_on()) {
                        headers.push(("Nats-Consumer-Stalled", fc.to_string()));
                    }
                    statuses.push((config.deliver_subject.clone(), 100, "Idle Heartbeat".into(), headers));
                }
            }
            for i in 0..inner.waiting.len() {
                let Some(w) = inner.waiting.get(i) else { break };
                if let (Some(hb), Some(at)) = (w.heartbeat, w.next_heartbeat) {
                    if at <= now {
                        let reply = w.reply.to_string();
                        statuses.push((reply, 100, "Idle Heartbeat".into(), heartbeat_headers(&inner)));
                        if let Some(w) = inner.waiting.get_mut(i) {
                            w.next_heartbeat = Some(now + hb);
                        }
                    }
                }
            }
            if !out.is_empty() {
                inner.last_activity = now;
            }
            delete = self.inactive(&inner, &config, push_target.is_some(), now);
            // A push consumer with something to send but nobody on its deliver subject looks
            // again shortly (a subscription appearing does not wake it); one with nothing to
            // send is woken by the next message, and an idle one costs nothing.
            let waits_for_interest = !config.is_pull()
                && !paused
                && push_target.is_none()
                && (!inner.redeliver.is_empty()
                    || !inner.initial.is_empty()
                    || stream.store.state().last_seq >= inner.next_seq);
            next_wake = self.next_wake(&inner, &config, now, waits_for_interest);
        }
        if let Some(until) = resumed_from {
            self.pause_advisory(until);
        }
        for (group, id) in pinned {
            self.pinned_advisory(&group, &id);
        }
        for group in unpinned {
            self.unpinned_advisory(&group, "timeout");
        }
        for (seq, deliveries) in max_delivered {
            self.advisory(
                "CONSUMER.MAX_DELIVERIES",
                "max_deliver",
                serde_json::json!({"stream_seq": seq, "deliveries": deliveries}),
            );
        }
        // Messages first: a request's closing status must come after what it delivered.
        // One route lookup per target, and one wake per receiver per chunk: the first
        // messages of a big batch are on their way while the rest are encoded.
        let mut flush = FlushSet::waking(self.stats.clone());
        let mut route: Option<(&Arc<str>, Arc<MatchResult>)> = None;
        for (i, m) in out.iter().enumerate() {
            if i % DELIVERY_CHUNK == DELIVERY_CHUNK - 1 {
                flush.flush();
            }
            let result = match &route {
                // `Arc` equality checks the pointer first: the targets of one pump share theirs.
                Some((target, result)) if **target == m.target => Arc::clone(result),
                _ => {
                    let result = self.account.sublist.matches(&m.target);
                    route = Some((&m.target, Arc::clone(&result)));
                    result
                }
            };
            let msg = Message::internal(&m.subject, m.reply.as_deref(), m.headers.as_ref(), &m.payload);
            deliver::deliver(&self.account.sublist, &result, &msg, &mut flush);
        }
        flush.flush();
        if let Some(fc) = flow_request {
            let hdr = super::pull::status(100, "FlowControl Request", &[]);
            let empty = Bytes::new();
            let msg = Message::internal(&config.deliver_subject, Some(&fc), Some(&hdr), &empty);
            deliver::publish(&self.account, &self.stats, &msg);
        }
        for (reply, code, text, headers) in statuses {
            self.send_status(&reply, code, &text, &headers);
        }
        if delete {
            tracing::debug!(consumer = %self.name, "removing inactive consumer");
            stream.remove_consumer(&self.name);
        }
        (next_wake, more)
    }

    /// The pull request `msg` goes to: brought to the front of the waiting queue by the
    /// consumer's priority policy (see `priority::choose`); `None` when no request may take it.
    fn choose_request(
        &self,
        inner: &mut Inner,
        config: &ConsumerConfig,
        stream: &Stream,
        filter: &SubjectFilter,
        msg: &StoredMessage,
        (now, now_ns): (Instant, i64),
    ) -> ChosenRequest {
        let policy = config.priority_policy;
        // Overflow thresholds count what is pending, this message included (a look at the
        // stream, so only when a request has one).
        let wants_pending =
            policy == PriorityPolicy::Overflow && inner.waiting.iter().any(|w| w.priority.min_pending > 0);
        let pending = if wants_pending { self.pending_after(inner, stream, filter, msg.seq) + 1 } else { 0 };
        let mut refused = Vec::new();
        let Inner { waiting, pin, pending: awaiting_ack, .. } = inner;
        let choice = priority::choose(
            waiting,
            policy,
            pin,
            pending,
            awaiting_ack.len() as u64,
            |w| new_pin(w, config, now, now_ns),
            &mut refused,
        );
        let refused = refused
            .into_iter()
            .map(|w| (w.reply.to_string(), 423, "Nats-Wrong-Pin-Id".to_string(), pending_headers(&w)))
            .collect();
        let target = inner.waiting.front().map(|w| Arc::clone(&w.reply));
        match (choice, target) {
            (Choice::Deliver { newly_pinned }, Some(target)) => ChosenRequest {
                target: Some(target),
                pinned: newly_pinned
                    .then(|| inner.pin.as_ref().map(|p| (p.group.clone(), p.id.clone())))
                    .flatten(),
                refused,
            },
            _ => ChosenRequest { target: None, pinned: None, refused },
        }
    }

    /// Moves pending messages whose ack wait (or NAK delay) ran out to the redelivery set, or
    /// gives them up after `max_deliver` deliveries.
    fn expire_pending(
        &self,
        inner: &mut Inner,
        config: &ConsumerConfig,
        now: Instant,
        max_delivered: &mut Vec<(u64, u64)>,
    ) {
        while let Some(&(deadline, seq)) = inner.deadlines.iter().next() {
            if deadline > now {
                break;
            }
            inner.deadlines.remove(&(deadline, seq));
            if !self.give_up_if_delivered_out(inner, config, seq, max_delivered)
                && inner.pending.contains_key(&seq)
            {
                inner.redeliver.insert(seq);
            }
        }
    }

    /// Gives up on pending message `seq` if it had its `max_deliver` deliveries: it leaves the
    /// pending set unacknowledged (the store keeps it as delivered: after a restart it is given
    /// up on again once its ack wait passes). True when it was.
    fn give_up_if_delivered_out(
        &self,
        inner: &mut Inner,
        config: &ConsumerConfig,
        seq: u64,
        max_delivered: &mut Vec<(u64, u64)>,
    ) -> bool {
        let Some(p) = inner.pending.get(&seq).copied() else { return false };
        if config.max_deliver <= 0 || p.deliveries < config.max_deliver as u64 {
            return false;
        }
        inner.pending.remove(&seq);
        inner.deadlines.remove(&(p.deadline, seq));
        inner.abandoned.insert(seq, p.dseq);
        max_delivered.push((seq, p.deliveries));
        self.update_ack_floor(inner);
        true
    }

    /// The next message to deliver: a redelivery first, then new messages. A redelivery asked
    /// for after the last allowed delivery (a NAK) is given up on when it would go out, as
    /// nats-server does: until then it stays pending.
    fn next_message(
        &self,
        inner: &mut Inner,
        stream: &Stream,
        config: &ConsumerConfig,
        filter: &SubjectFilter,
        max_delivered: &mut Vec<(u64, u64)>,
    ) -> Option<StoredMessage> {
        while let Some(seq) = inner.redeliver.pop_first() {
            if !inner.pending.contains_key(&seq)
                || self.give_up_if_delivered_out(inner, config, seq, max_delivered)
            {
                continue;
            }
            match stream.store.load(seq) {
                Ok(m) => return Some(m),
                Err(_) => {
                    // Gone from the stream (limits): nothing to redeliver.
                    if let Some(p) = inner.pending.remove(&seq) {
                        inner.deadlines.remove(&(p.deadline, seq));
                    }
                }
            }
        }
        let limited = config.ack_policy != AckPolicy::None
            && config.max_ack_pending > 0
            && inner.pending.len() as i64 >= config.max_ack_pending;
        if limited {
            return None;
        }
        while let Some(seq) = inner.initial.pop_front() {
            if let Ok(m) = stream.store.load(seq) {
                return Some(m);
            }
        }
        let m = stream.store.load_next(filter, inner.next_seq).ok()?;
        Some(m)
    }

    /// Puts back a message picked by `next_message` but not delivered: a redelivery goes back
    /// to the redelivery set, a message of the initial last-per-subject set back to its front;
    /// a new message needs nothing (the position only moves on delivery).
    fn unpick(&self, inner: &mut Inner, msg: &StoredMessage) {
        if inner.pending.contains_key(&msg.seq) {
            inner.redeliver.insert(msg.seq);
        } else if msg.seq < inner.next_seq {
            inner.initial.push_front(msg.seq);
        }
    }

    /// The ack reply subject `msg` gets if it is delivered next (see `record_delivery`).
    fn ack_reply(
        &self,
        inner: &Inner,
        stream: &Stream,
        filter: &SubjectFilter,
        msg: &StoredMessage,
    ) -> String {
        let dseq = inner.delivered.consumer_seq + 1;
        let deliveries = inner.pending.get(&msg.seq).map_or(1, |p| p.deliveries + 1);
        let pending = self.pending_after(inner, stream, filter, msg.seq);
        ack_subject(&self.stream_name, &self.name, deliveries, msg.seq, dseq, msg.timestamp, pending)
    }

    /// Records a delivery and builds the outgoing message; `reply` is its `ack_reply`.
    #[allow(clippy::too_many_arguments)]
    fn record_delivery(
        &self,
        inner: &mut Inner,
        config: &ConsumerConfig,
        msg: StoredMessage,
        reply: String,
        target: &Arc<str>,
        now: Instant,
        now_ns: i64,
    ) -> Outgoing {
        inner.delivered.consumer_seq += 1;
        let dseq = inner.delivered.consumer_seq;
        // A redelivery keeps the consumer sequence of the first delivery in its pending record
        // (the ack floor counts from it), as nats-server does; its ack subject has the new one.
        let (deliveries, pending_dseq) = match inner.pending.get(&msg.seq).copied() {
            Some(p) => {
                inner.deadlines.remove(&(p.deadline, msg.seq));
                (p.deliveries + 1, p.dseq)
            }
            None => (1, dseq),
        };
        if deliveries == 1 {
            inner.next_seq = inner.next_seq.max(msg.seq + 1);
            inner.delivered.stream_seq = inner.delivered.stream_seq.max(msg.seq);
        }
        if config.ack_policy == AckPolicy::None {
            inner.ack_floor = inner.delivered;
        } else {
            let deadline = now + config.ack_wait_after(deliveries);
            inner.pending.insert(msg.seq, Pending { dseq: pending_dseq, deliveries, deadline });
            inner.deadlines.insert((deadline, msg.seq));
        }
        if let Err(e) = self.store.update_delivered(dseq, msg.seq, deliveries, now_ns) {
            tracing::warn!(consumer = %self.name, "can't persist delivery: {e}");
        }
        inner.last_delivery = now_ns;
        let (headers, payload) = if config.headers_only {
            let mut h = msg
                .headers
                .as_deref()
                .and_then(|raw| jetway_protocols::nats::HeaderMap::decode(raw).ok())
                .unwrap_or_default();
            h.insert("Nats-Msg-Size", msg.payload.len().to_string());
            (Some(h.encode()), Bytes::new())
        } else {
            (msg.headers, msg.payload)
        };
        Outgoing { target: Arc::clone(target), subject: msg.subject, reply: Some(reply), headers, payload }
    }

    /// Messages left after `seq` for this consumer (the last token of the ack subject).
    fn pending_after(&self, inner: &Inner, stream: &Stream, filter: &SubjectFilter, seq: u64) -> u64 {
        let state = stream.store.state();
        let base = if filter.is_all() && state.num_deleted == 0 {
            state.last_seq.saturating_sub(seq.max(inner.next_seq.saturating_sub(1)))
        } else {
            stream.store.num_pending(filter, inner.next_seq.max(seq + 1))
        };
        base + inner.initial.len() as u64
    }

    /// Ephemeral (or explicitly limited) consumers are removed after `inactive_threshold`
    /// without interest.
    fn inactive(&self, inner: &Inner, config: &ConsumerConfig, push_interest: bool, now: Instant) -> bool {
        if config.inactive_threshold <= 0 {
            return false;
        }
        let has_interest = if config.is_pull() { !inner.waiting.is_empty() } else { push_interest };
        if has_interest {
            return false;
        }
        now.duration_since(inner.last_activity) >= Duration::from_nanos(config.inactive_threshold as u64)
    }

    fn next_wake(
        &self,
        inner: &Inner,
        config: &ConsumerConfig,
        now: Instant,
        waits_for_interest: bool,
    ) -> Option<Instant> {
        let mut wake: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
        };
        consider(inner.deadlines.iter().next().map(|(d, _)| *d));
        for w in &inner.waiting {
            consider(w.expires);
            consider(w.next_heartbeat);
        }
        consider(inner.next_heartbeat);
        consider(inner.pin.as_ref().map(|p| p.expires));
        consider(inner.flow.as_ref().and_then(|f| f.deadline()));
        if inner.paused_until > 0 {
            let now_ns = crate::time::now_nanos();
            if inner.paused_until > now_ns {
                consider(Some(now + Duration::from_nanos((inner.paused_until - now_ns) as u64)));
            }
        }
        if config.inactive_threshold > 0 {
            let limit = Duration::from_nanos(config.inactive_threshold as u64);
            consider(Some(inner.last_activity.max(now - limit.min(now.elapsed())) + limit));
        }
        consider(inner.paced.as_ref().and_then(|p| p.until).filter(|t| *t > now));
        if waits_for_interest {
            consider(Some(now + INTEREST_RECHECK));
        }
        wake
    }
}

/// A pin for the request `w` (of a `pinned_client` consumer), lasting `priority_timeout`.
fn new_pin(w: &Waiting, config: &ConsumerConfig, now: Instant, now_ns: i64) -> Pin {
    Pin {
        id: crate::jetstream::new_id(),
        group: w.priority.group.as_deref().unwrap_or_default().to_string(),
        since_ns: now_ns,
        expires: now + super::pinned_ttl(config),
    }
}

fn heartbeat_headers(inner: &Inner) -> Vec<(&'static str, String)> {
    vec![
        ("Nats-Last-Consumer", inner.delivered.consumer_seq.to_string()),
        ("Nats-Last-Stream", inner.delivered.stream_seq.to_string()),
    ]
}

/// Nothing (more) to send: every no_wait request without `expires`, or that already got part
/// of its batch, ends with `404 No Messages` (nats-server's rule); one with `expires` that got
/// nothing yet waits like any request (`408` when it expires).
fn end_no_wait_requests(inner: &mut Inner, statuses: &mut Vec<StatusOut>) {
    inner.waiting.retain(|w| {
        let ends = w.no_wait && (w.expires.is_none() || w.delivered > 0);
        if ends {
            statuses.push((w.reply.to_string(), 404, "No Messages".to_string(), Vec::new()));
        }
        !ends
    });
}

/// Ends requests whose `expires` passed (408 Request Timeout) or whose requester is gone.
fn expire_requests(
    inner: &mut Inner,
    account: &crate::account::Account,
    now: Instant,
    statuses: &mut Vec<StatusOut>,
) {
    inner.waiting.retain(|w| {
        if w.expires.is_some_and(|e| e <= now) {
            statuses.push((w.reply.to_string(), 408, "Request Timeout".into(), pending_headers(w)));
            return false;
        }
        // Interest gone: nobody would receive what we send.
        !account.sublist.matches(&w.reply).is_empty()
    });
}

/// When `msg` may go out under pacing: after the previous message plus the gap between their
/// store times (`replay_policy: original`), and not before the rate limit allows.
fn pacing_due(inner: &Inner, config: &ConsumerConfig, msg: &StoredMessage) -> Option<Instant> {
    let (prev_ts, prev_at, rate_free_at) = inner.paced.as_ref()?.last;
    let mut due = rate_free_at;
    if config.replay_policy == ReplayPolicy::Original {
        let gap = u64::try_from(msg.timestamp.saturating_sub(prev_ts)).unwrap_or(0);
        due = due.max(prev_at + Duration::from_nanos(gap));
    }
    Some(due)
}
