//! Connecting benchmark clients, and noticing what the client library would hide.
//!
//! async-nats reconnects and drops messages for slow subscriptions silently; a benchmark
//! must know, because either one makes its numbers meaningless.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::{Client, ConnectOptions, Event};

/// Messages a subscription may buffer before async-nats drops them as a slow consumer.
/// Large, because a benchmark subscriber only counts and must not lose anything.
const SUBSCRIPTION_CAPACITY: usize = 1 << 20;

/// Trouble seen on any benchmark connection during a run.
#[derive(Debug, Default)]
pub struct Incidents {
    slow_consumer: AtomicU64,
    disconnected: AtomicU64,
    server_errors: AtomicU64,
}

impl Incidents {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// An error describing the incidents, if there were any.
    pub fn check(&self) -> anyhow::Result<()> {
        let slow = self.slow_consumer.load(Ordering::Relaxed);
        let disconnected = self.disconnected.load(Ordering::Relaxed);
        let errors = self.server_errors.load(Ordering::Relaxed);
        if slow + disconnected + errors > 0 {
            anyhow::bail!(
                "connection incidents: {slow} slow-consumer, {disconnected} disconnect, {errors} server-error events"
            );
        }
        Ok(())
    }

    fn record(&self, event: &Event) {
        let counter = match event {
            Event::SlowConsumer(_) => &self.slow_consumer,
            Event::Disconnected => &self.disconnected,
            Event::ServerError(_) => &self.server_errors,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One client connection whose incidents are counted in `incidents`.
pub async fn connect(url: &str, name: &str, incidents: &Arc<Incidents>) -> anyhow::Result<Client> {
    let incidents = Arc::clone(incidents);
    ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .subscription_capacity(SUBSCRIPTION_CAPACITY)
        .event_callback(move |event| {
            incidents.record(&event);
            async {}
        })
        .connect(url)
        .await
        .with_context(|| format!("connecting {name} to {url}"))
}
