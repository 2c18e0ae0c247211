//! The duplicate window: `Nats-Msg-Id` → sequence for ids seen within `duplicate_window`.

use std::collections::{HashMap, VecDeque};

use foldhash::fast::RandomState;

/// Message ids seen recently, oldest first for expiry.
#[derive(Default)]
pub struct DedupWindow {
    by_id: HashMap<String, u64, RandomState>,
    order: VecDeque<(i64, String)>,
}

impl DedupWindow {
    /// The sequence stored for `id`, if it is still within the window.
    pub fn check(&mut self, id: &str, now: i64, window: i64) -> Option<u64> {
        self.expire(now, window);
        self.by_id.get(id).copied()
    }

    pub fn record(&mut self, id: &str, seq: u64, ts: i64) {
        if self.by_id.insert(id.to_string(), seq).is_none() {
            self.order.push_back((ts, id.to_string()));
        }
    }

    fn expire(&mut self, now: i64, window: i64) {
        let cutoff = now.saturating_sub(window);
        while let Some((ts, _)) = self.order.front() {
            if *ts >= cutoff {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.by_id.remove(&id);
            }
        }
    }

    pub fn clear(&mut self) {
        self.by_id.clear();
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_expire_after_the_window() {
        let mut d = DedupWindow::default();
        d.record("a", 1, 100);
        assert_eq!(d.check("a", 150, 100), Some(1));
        assert_eq!(d.check("a", 201, 100), None);
    }
}
