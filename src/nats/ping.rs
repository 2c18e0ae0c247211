//! When the server PINGs a client, by nats-server's rules (sans-IO: the connection task asks).
//!
//! - Until CONNECT, the first PING is due one `ping_interval` after accept.
//! - CONNECT moves it to a short first PING: the lesser of `ping_interval` and 2 s, plus up to a
//!   fifth of that at random, which measures the client's RTT early.
//! - Then every `ping_interval`, a PING goes out only if the RTT needs measuring (never
//!   measured, or more than an hour ago) or nothing came from the client for a whole interval:
//!   a client that talks proves it is alive and is not interrupted.

use std::time::Duration;

use tokio::time::Instant;

/// The first PING after CONNECT comes at most this long after it (nats-server's
/// `firstClientPingInterval`).
const FIRST_CLIENT_PING: Duration = Duration::from_secs(2);
/// An RTT older than this is measured again (nats-server's `DEFAULT_RTT_MEASUREMENT_INTERVAL`).
const RTT_MEASUREMENT_INTERVAL: Duration = Duration::from_secs(3600);

pub struct PingSchedule {
    interval: Duration,
    due: Instant,
    /// When the last PING was sent (an RTT is measured from it).
    rtt_start: Option<Instant>,
    /// When the client last sent something.
    last_in: Instant,
}

impl PingSchedule {
    pub fn new(interval: Duration, now: Instant) -> PingSchedule {
        PingSchedule { interval, due: now + interval, rtt_start: None, last_in: now }
    }

    /// When the next PING is considered.
    pub fn due(&self) -> Instant {
        self.due
    }

    /// CONNECT arrived: the short first PING. `jitter` in `[0, 1)` spreads the PINGs of
    /// clients that connected together.
    pub fn connected(&mut self, now: Instant, jitter: f64) {
        let first = self.interval.min(FIRST_CLIENT_PING);
        self.due = now + first + first.div_f64(5.0).mul_f64(jitter.clamp(0.0, 1.0));
    }

    /// The client sent something.
    pub fn received(&mut self, now: Instant) {
        self.last_in = now;
    }

    /// The PING is due: whether to send it (`rtt_known`: the client has an RTT, if only the
    /// estimate made at CONNECT). The next one is due an interval later either way.
    pub fn ping_now(&mut self, now: Instant, rtt_known: bool) -> bool {
        self.due = now + self.interval;
        let need_rtt =
            !rtt_known || self.rtt_start.is_none_or(|s| now.duration_since(s) > RTT_MEASUREMENT_INTERVAL);
        if now.duration_since(self.last_in) < self.interval && !need_rtt {
            return false;
        }
        self.rtt_start = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn connect_brings_a_short_first_ping_then_the_interval() {
        let start = Instant::now();
        let mut s = PingSchedule::new(2 * MIN, start);
        assert_eq!(s.due(), start + 2 * MIN);
        s.connected(start, 0.0);
        assert_eq!(s.due(), start + FIRST_CLIENT_PING);
        s.connected(start, 0.999);
        assert!(s.due() > start + FIRST_CLIENT_PING && s.due() < start + Duration::from_millis(2400));
        // The first PING measures the RTT even though the client just talked.
        let at = start + FIRST_CLIENT_PING;
        s.received(at);
        assert!(s.ping_now(at, true));
        assert_eq!(s.due(), at + 2 * MIN);
        let mut short = PingSchedule::new(Duration::from_millis(300), start);
        short.connected(start, 0.0);
        assert_eq!(short.due(), start + Duration::from_millis(300));
    }

    #[test]
    fn a_talking_client_is_not_pinged_until_its_rtt_is_old() {
        let start = Instant::now();
        let mut s = PingSchedule::new(MIN, start);
        assert!(s.ping_now(start + MIN, true), "first: no RTT measured yet");
        s.received(start + MIN + MIN / 2);
        assert!(!s.ping_now(start + 2 * MIN, true), "talked within the interval");
        assert!(s.ping_now(start + 4 * MIN, true), "silent for an interval");
        s.received(start + 65 * MIN);
        assert!(s.ping_now(start + 65 * MIN + MIN / 2, true), "RTT over an hour old");
        assert!(!s.ping_now(start + 65 * MIN + MIN / 2, true));
        assert!(s.ping_now(start + 65 * MIN + MIN / 2, false), "no RTT at all");
    }
}
