//! The ends of offline sessions, from one task for the whole gateway.
//!
//! A persistent session whose client went away with a session expiry (MQTT 5, or one read
//! back after a restart) is due to end at a deadline. The deadlines wait in one
//! [`ExpirySchedule`], one per session, and one task ends each session when its deadline
//! passes, unless a client resumed it meanwhile. A task per disconnect (as before) cost a
//! timer and a future for as long as the expiry ran, and piled up for a client that keeps
//! reconnecting (one per disconnect, each living for the whole expiry interval).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use foldhash::fast::RandomState;
use tokio::sync::Notify;

use super::{MqttServer, SessionKey};

/// When each offline session is due to end: each session at most once (a later schedule
/// replaces its earlier deadline).
#[derive(Debug, Default)]
pub struct ExpirySchedule {
    by_deadline: BTreeSet<(Instant, SessionKey)>,
    by_session: HashMap<SessionKey, Instant, RandomState>,
}

impl ExpirySchedule {
    /// Sets the deadline of `session`; true when it is now the earliest of all.
    pub fn schedule(&mut self, session: SessionKey, at: Instant) -> bool {
        if let Some(old) = self.by_session.insert(session.clone(), at) {
            self.by_deadline.remove(&(old, session.clone()));
        }
        self.by_deadline.insert((at, session));
        self.next_deadline() == Some(at)
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.first().map(|(at, _)| *at)
    }

    /// The sessions whose deadline is `now` or earlier, earliest first, taken out.
    pub fn take_due(&mut self, now: Instant) -> Vec<SessionKey> {
        let mut due = Vec::new();
        while self.by_deadline.first().is_some_and(|(at, _)| *at <= now) {
            let Some((_, session)) = self.by_deadline.pop_first() else { break };
            self.by_session.remove(&session);
            due.push(session);
        }
        due
    }

    pub fn len(&self) -> usize {
        self.by_deadline.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_deadline.is_empty()
    }
}

/// The gateway's schedule and what wakes its task.
#[derive(Default)]
pub(crate) struct Expiries {
    schedule: parking_lot::Mutex<ExpirySchedule>,
    /// Wakes the task for an earlier deadline; shared so the task can wait on it without
    /// holding the gateway.
    wake: Arc<Notify>,
    started: std::sync::atomic::AtomicBool,
}

/// Sessions expiring more than this far ahead are checked at their next CONNECT only.
const LONGEST: Duration = Duration::from_secs(86_400 * 365);
/// Checked this long after their expiry, so the record's own expiry has passed for sure.
const MARGIN: Duration = Duration::from_millis(10);

impl MqttServer {
    /// Ends the session of `client_id` once it expired, `after` from now, unless a client
    /// resumed it meanwhile (a resumed session's record carries a later expiry, or none).
    pub(crate) fn expire_later(self: &Arc<Self>, account: String, client_id: String, after: Duration) {
        if after > LONGEST {
            return;
        }
        let expiries = &self.expiries;
        let earliest =
            expiries.schedule.lock().schedule((account, client_id), Instant::now() + after + MARGIN);
        if !expiries.started.swap(true, std::sync::atomic::Ordering::AcqRel) {
            tokio::spawn(run(Arc::downgrade(self), expiries.wake.clone()));
        } else if earliest {
            expiries.wake.notify_one();
        }
    }
}

/// Ends the sessions of `mqtt` as they fall due, as long as the gateway exists.
async fn run(mqtt: Weak<MqttServer>, wake: Arc<Notify>) {
    loop {
        let next = {
            let Some(mqtt) = mqtt.upgrade() else { return };
            let due = mqtt.expiries.schedule.lock().take_due(Instant::now());
            for (account, client_id) in due {
                end_if_expired(&mqtt, account, client_id).await;
            }
            let next = mqtt.expiries.schedule.lock().next_deadline();
            next
        };
        match next {
            Some(at) => tokio::select! {
                _ = tokio::time::sleep_until(at.into()) => {}
                _ = wake.notified() => {}
            },
            None => wake.notified().await,
        }
    }
}

/// Deletes the session unless its client is connected or its record says it lives on.
async fn end_if_expired(mqtt: &MqttServer, account: String, client_id: String) {
    if mqtt.live.lock().contains_key(&(account.clone(), client_id.clone())) {
        return;
    }
    if let Ok(Some(record)) = mqtt.store.load_session(&account, &client_id).await {
        if record.expires_at.is_some_and(|at| at <= SystemTime::now()) {
            tracing::debug!(client_id, "MQTT session expired");
            let _ = mqtt.store.delete_session(&account, &client_id).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> SessionKey {
        ("$G".to_string(), id.to_string())
    }

    #[test]
    fn sessions_fall_due_in_deadline_order_once_each() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut schedule = ExpirySchedule::default();
        assert!(schedule.schedule(key("b"), at(20)), "the first is the earliest");
        assert!(schedule.schedule(key("a"), at(10)), "an earlier one");
        assert!(!schedule.schedule(key("c"), at(30)), "a later one");
        assert_eq!(schedule.next_deadline(), Some(at(10)));
        assert_eq!(schedule.take_due(at(5)), Vec::<SessionKey>::new());
        assert_eq!(schedule.take_due(at(20)), vec![key("a"), key("b")]);
        assert_eq!((schedule.len(), schedule.next_deadline()), (1, Some(at(30))));
        assert_eq!(schedule.take_due(at(100)), vec![key("c")]);
        assert!(schedule.is_empty() && schedule.next_deadline().is_none());
    }

    #[test]
    fn a_session_scheduled_again_keeps_only_its_new_deadline() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut schedule = ExpirySchedule::default();
        schedule.schedule(key("a"), at(10));
        schedule.schedule(key("b"), at(20));
        // The client came back and left again: its session now ends later.
        assert!(!schedule.schedule(key("a"), at(50)));
        assert_eq!(schedule.len(), 2);
        assert_eq!(schedule.take_due(at(30)), vec![key("b")]);
        assert_eq!(schedule.take_due(at(60)), vec![key("a")]);
        // Or sooner.
        schedule.schedule(key("c"), at(100));
        assert!(schedule.schedule(key("c"), at(70)));
        assert_eq!(schedule.take_due(at(80)), vec![key("c")]);
    }
}
