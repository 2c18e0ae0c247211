//! Flow control of push consumers (`flow_control: true`).
//!
//! A push consumer cannot see how far behind its subscriber is, so it asks: once
//! [`REQUEST_BYTES`] or [`REQUEST_MSGS`] have gone out since the last answer, it sends
//! `NATS/1.0 100 FlowControl Request` to the deliver subject with the reply subject
//! `$JS.FC.<stream>.<consumer>.<4 random characters>`. The subscriber answers with an empty
//! message once it has read up to that point. Delivery goes on while the request is
//! outstanding, but stops (*stalls*) once [`STALL_BYTES`] or [`STALL_MSGS`] are unanswered;
//! while stalled, idle heartbeats carry `Nats-Consumer-Stalled: <reply subject>` so a client
//! that lost the request can answer the heartbeat instead. An answer releases what the request
//! covered. A request unanswered for twice the heartbeat interval (1 s to 10 s) is dropped and
//! delivery resumes, so a vanished subscriber cannot wedge the consumer for good.
//!
//! nats-server counts bytes only, against a limit derived from the client's pending limit; the
//! message counts here make flow control visible for small messages too.

use std::sync::Weak;
use std::time::{Duration, Instant};

use super::Consumer;
use crate::router::{InternalHandler, Message};

/// Unanswered bytes that trigger a request.
const REQUEST_BYTES: u64 = 256 * 1024;
/// Unanswered messages that trigger a request.
const REQUEST_MSGS: u64 = 512;
/// Unanswered bytes at which delivery stalls while a request is outstanding.
const STALL_BYTES: u64 = 4 * REQUEST_BYTES;
/// Unanswered messages at which delivery stalls while a request is outstanding.
const STALL_MSGS: u64 = 4 * REQUEST_MSGS;

/// The flow-control state of one push consumer (under the consumer's lock).
#[derive(Debug, Default)]
pub(super) struct FlowControl {
    /// Delivered and not covered by an answered request.
    unanswered_bytes: u64,
    unanswered_msgs: u64,
    outstanding: Option<Outstanding>,
}

#[derive(Debug)]
struct Outstanding {
    subject: String,
    /// What the request covers: released when it is answered.
    bytes: u64,
    msgs: u64,
    expires: Instant,
}

impl FlowControl {
    /// Counts a delivery. Returns the reply subject of a request to send now, if one is due.
    pub(super) fn delivered(
        &mut self,
        size: u64,
        stream: &str,
        consumer: &str,
        timeout: Duration,
        now: Instant,
    ) -> Option<String> {
        self.unanswered_bytes += size;
        self.unanswered_msgs += 1;
        let due = self.unanswered_bytes >= REQUEST_BYTES || self.unanswered_msgs >= REQUEST_MSGS;
        if self.outstanding.is_some() || !due {
            return None;
        }
        let subject = format!("$JS.FC.{stream}.{consumer}.{}", random_token());
        self.outstanding = Some(Outstanding {
            subject: subject.clone(),
            bytes: self.unanswered_bytes,
            msgs: self.unanswered_msgs,
            expires: now + timeout,
        });
        Some(subject)
    }

    /// True while delivery must wait for an answer.
    pub(super) fn stalled(&self) -> bool {
        self.outstanding.is_some()
            && (self.unanswered_bytes >= STALL_BYTES || self.unanswered_msgs >= STALL_MSGS)
    }

    /// The reply subject of the request delivery is waiting for.
    pub(super) fn stalled_on(&self) -> Option<&str> {
        self.outstanding.as_ref().filter(|_| self.stalled()).map(|o| o.subject.as_str())
    }

    /// An answer arrived on `subject`; true when it released the outstanding request.
    pub(super) fn answered(&mut self, subject: &str) -> bool {
        match self.outstanding.take() {
            Some(o) if o.subject == subject => {
                self.unanswered_bytes = self.unanswered_bytes.saturating_sub(o.bytes);
                self.unanswered_msgs = self.unanswered_msgs.saturating_sub(o.msgs);
                true
            }
            other => {
                self.outstanding = other;
                false
            }
        }
    }

    /// Drops a request nobody answered in time; true when delivery may resume.
    pub(super) fn expire(&mut self, now: Instant) -> bool {
        if self.outstanding.as_ref().is_some_and(|o| o.expires <= now) {
            *self = FlowControl::default();
            return true;
        }
        false
    }

    /// When an outstanding request times out.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.outstanding.as_ref().map(|o| o.expires)
    }
}

/// How long a request may stay unanswered: twice the heartbeat, within 1 s to 10 s.
pub(super) fn request_timeout(idle_heartbeat_ns: i64) -> Duration {
    let hb = Duration::from_nanos(u64::try_from(idle_heartbeat_ns).unwrap_or(0));
    (hb * 2).clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// Four random base-62 characters (nats-server's flow-control reply suffix).
fn random_token() -> String {
    let mut name = super::ephemeral_name();
    name.truncate(4);
    name
}

/// The subscription on `$JS.FC.<stream>.<consumer>.*` that receives answers.
pub(super) struct FlowControlHandler(pub(super) Weak<Consumer>);

impl InternalHandler for FlowControlHandler {
    fn deliver(&self, msg: &Message<'_>) {
        let Some(consumer) = self.0.upgrade() else { return };
        let released = consumer.inner.lock().flow.as_mut().is_some_and(|f| f.answered(msg.subject));
        if released {
            consumer.wake_up();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_after_a_window_stalls_until_answered() {
        let now = Instant::now();
        let timeout = Duration::from_secs(1);
        let mut fc = FlowControl::default();
        let mut request = None;
        for _ in 0..REQUEST_MSGS {
            assert!(request.is_none());
            request = fc.delivered(10, "S", "C", timeout, now);
        }
        let subject = request.unwrap_or_default();
        assert!(subject.starts_with("$JS.FC.S.C.") && subject.len() == "$JS.FC.S.C.".len() + 4);
        for _ in REQUEST_MSGS..STALL_MSGS {
            assert!(!fc.stalled());
            assert!(fc.delivered(10, "S", "C", timeout, now).is_none(), "one request at a time");
        }
        assert_eq!(fc.stalled_on(), Some(subject.as_str()));
        assert!(!fc.answered("$JS.FC.S.C.zzzz"), "a stale answer releases nothing");
        assert!(fc.answered(&subject));
        assert!(!fc.stalled());
        assert_eq!(fc.unanswered_msgs, STALL_MSGS - REQUEST_MSGS);
    }

    #[test]
    fn an_unanswered_request_expires() {
        let now = Instant::now();
        let mut fc = FlowControl::default();
        for _ in 0..STALL_MSGS {
            fc.delivered(1, "S", "C", Duration::from_secs(1), now);
        }
        assert!(fc.stalled());
        assert!(!fc.expire(now));
        assert!(fc.expire(now + Duration::from_secs(1)));
        assert!(!fc.stalled());
        assert_eq!(request_timeout(5_000_000_000), Duration::from_secs(10));
        assert_eq!(request_timeout(100_000_000), Duration::from_secs(1));
    }
}
