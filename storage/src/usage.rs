//! Byte totals shared by groups of stores, kept current by the stores themselves.
//!
//! A server enforcing a quota over many streams (an account's file streams, a server-wide
//! memory limit) must not ask every store for its size on every append. Instead each store
//! mirrors every change of its `bytes` into a [`UsageCounter`], under its own lock, so reading
//! a group's total is one atomic load. A counter may have a parent (account → server), which
//! receives the same changes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes held by the stores attached to it (see [`crate::StreamStore::track_usage`]).
#[derive(Debug, Default)]
pub struct UsageCounter {
    bytes: AtomicU64,
    parent: Option<Arc<UsageCounter>>,
}

impl UsageCounter {
    /// A counter whose changes are also applied to `parent`.
    pub fn with_parent(parent: Arc<UsageCounter>) -> Self {
        UsageCounter { bytes: AtomicU64::new(0), parent: Some(parent) }
    }

    /// The current total.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Counts `n` more bytes (stores call this; so may tests).
    pub fn add(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.bytes.fetch_add(n, Ordering::Relaxed);
        if let Some(parent) = &self.parent {
            parent.add(n);
        }
    }

    /// Counts `n` bytes fewer, never going below zero.
    pub fn sub(&self, n: u64) {
        if n == 0 {
            return;
        }
        // Saturating: a counter is never worth a panic or a wrap-around to "full".
        let _ = self.bytes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(n)));
        if let Some(parent) = &self.parent {
            parent.sub(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_reach_the_parent_and_never_go_below_zero() {
        let server = Arc::new(UsageCounter::default());
        let a = UsageCounter::with_parent(server.clone());
        let b = UsageCounter::with_parent(server.clone());
        a.add(100);
        b.add(50);
        assert_eq!((a.bytes(), b.bytes(), server.bytes()), (100, 50, 150));
        a.sub(30);
        assert_eq!((a.bytes(), server.bytes()), (70, 120));
        b.sub(500);
        assert_eq!((b.bytes(), server.bytes()), (0, 0));
    }
}
