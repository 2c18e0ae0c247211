//! Keep alive for every MQTT connection from one sweeper task.
//!
//! A connection records when its last packet arrived; the sweeper closes the connections
//! silent for longer than their grace, one and a half times the keep alive the client asked
//! for ([MQTT-3.1.2-24]), at most [`SWEEP_INTERVAL`] late. One task for all, instead of a timer
//! in every connection's task: the timer was a tenth of an idle connection's task memory, and
//! resetting it was work on every read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Weak};
use std::time::{Duration, Instant};

use super::MqttServer;

/// How often the sweeper looks; a silent connection is closed at most this much late.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// What the sweeper reads of one connection.
#[derive(Debug)]
pub struct KeepAlive {
    /// How long the connection may stay silent, in ms; 0: forever (keep alive 0).
    grace_ms: u64,
    /// When its last packet arrived, in ms on [`now_ms`]'s clock.
    last_packet_ms: AtomicU64,
}

impl KeepAlive {
    /// The keep alive of a connection whose CONNECT asked for `keep_alive_secs` (0: none).
    pub fn new(keep_alive_secs: u16) -> KeepAlive {
        let keep_alive_ms = u64::from(keep_alive_secs) * 1000;
        KeepAlive { grace_ms: keep_alive_ms + keep_alive_ms / 2, last_packet_ms: AtomicU64::new(now_ms()) }
    }

    /// A packet arrived.
    pub fn packet_received(&self) {
        self.last_packet_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Whether the connection stayed silent past its grace as of `now`.
    pub fn expired(&self, now: u64) -> bool {
        self.grace_ms > 0 && now.saturating_sub(self.last_packet_ms.load(Ordering::Relaxed)) > self.grace_ms
    }
}

/// Milliseconds on a monotonic clock (since its first use).
pub fn now_ms() -> u64 {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    u64::try_from(START.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Closes expired connections of `mqtt` every [`SWEEP_INTERVAL`], as long as it exists.
pub async fn sweep(mqtt: Weak<MqttServer>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(mqtt) = mqtt.upgrade() else { return };
        mqtt.close_silent(now_ms());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_expires_past_one_and_a_half_keep_alives_of_silence() {
        let k = KeepAlive::new(2);
        let start = k.last_packet_ms.load(Ordering::Relaxed);
        assert!(!k.expired(start + 3000), "exactly 1.5 x 2 s: not yet");
        assert!(k.expired(start + 3001));
        k.last_packet_ms.store(start + 3000, Ordering::Relaxed);
        assert!(!k.expired(start + 3001), "a packet restarts the count");
        let none = KeepAlive::new(0);
        assert!(!none.expired(u64::MAX), "keep alive 0: never");
    }
}
