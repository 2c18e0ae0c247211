//! Server-wide counters (reported by `/varz`).

use std::sync::atomic::AtomicU64;

#[derive(Debug, Default)]
pub struct ServerStats {
    pub in_msgs: AtomicU64,
    pub in_bytes: AtomicU64,
    pub out_msgs: AtomicU64,
    pub out_bytes: AtomicU64,
    pub slow_consumers: AtomicU64,
    pub stale_connections: AtomicU64,
    /// Producers made to wait for a client's full outbound queue (fast-producer stalls).
    pub stalls: AtomicU64,
    pub total_connections: AtomicU64,
    /// Delivery passes of JetStream consumers (each wake-up of one): idle consumers must not
    /// add to it.
    pub consumer_pumps: AtomicU64,
}
