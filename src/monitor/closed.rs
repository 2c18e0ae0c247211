//! The ring of recently closed connections behind `/connz?state=closed`.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;

use super::connz::ConnInfo;

/// At most `max_closed_clients` snapshots; the oldest is dropped first.
pub struct ClosedConnections {
    max: usize,
    ring: Mutex<VecDeque<Arc<ConnInfo>>>,
}

impl ClosedConnections {
    pub fn new(max: usize) -> Self {
        // Grown on demand: a server that never closes a connection should not reserve 10,000.
        ClosedConnections { max, ring: Mutex::new(VecDeque::new()) }
    }

    pub fn push(&self, info: ConnInfo) {
        if self.max == 0 {
            return;
        }
        let mut ring = self.ring.lock();
        while ring.len() >= self.max {
            ring.pop_front();
        }
        ring.push_back(Arc::new(info));
    }

    /// Oldest first. Cloning the `Arc`s keeps the lock short.
    pub fn snapshot(&self) -> Vec<Arc<ConnInfo>> {
        self.ring.lock().iter().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.ring.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nats::client::ClientShared;

    fn closed(id: u64) -> ConnInfo {
        let client = ClientShared::new(id, "127.0.0.1:1".parse().unwrap(), 1024, Default::default());
        ConnInfo::closed(&client, std::time::SystemTime::now())
    }

    #[test]
    fn keeps_only_the_newest_max_closed_clients() {
        let ring = ClosedConnections::new(3);
        for id in 1..=5 {
            ring.push(closed(id));
        }
        let ids: Vec<u64> = ring.snapshot().iter().map(|c| c.cid).collect();
        assert_eq!(ids, vec![3, 4, 5]);
    }

    #[test]
    fn zero_max_closed_clients_keeps_nothing() {
        let ring = ClosedConnections::new(0);
        ring.push(closed(1));
        assert!(ring.is_empty());
    }
}
