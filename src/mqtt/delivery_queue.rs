//! The QoS 1/2 deliveries waiting for one connection's task, which assigns their packet ids.
//!
//! A bounded queue that allocates nothing until used and gives its memory back once drained:
//! most MQTT connections are idle, and a channel that reserves its first block of slots up
//! front (tokio's mpsc: 32 deliveries, about 4 KB) would be the largest part of an idle
//! session.

use std::collections::VecDeque;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Capacity kept after the queue drains; a burst's larger buffer is given back.
const KEEP_CAPACITY: usize = 16;

pub struct DeliveryQueue<T> {
    items: Mutex<VecDeque<T>>,
    /// One permit per push, so a push between the consumer's check and its wait is not lost.
    ready: Notify,
    capacity: usize,
}

impl<T> DeliveryQueue<T> {
    pub fn new(capacity: usize) -> Self {
        DeliveryQueue { items: Mutex::new(VecDeque::new()), ready: Notify::new(), capacity: capacity.max(1) }
    }

    /// Queues `item`, or hands it back when the queue is full.
    pub fn try_push(&self, item: T) -> Result<(), T> {
        {
            let mut items = self.items.lock();
            if items.len() >= self.capacity {
                return Err(item);
            }
            items.push_back(item);
        }
        self.ready.notify_one();
        Ok(())
    }

    /// The next item, waiting for one. Cancel safe: an item is only taken when returned.
    pub async fn pop(&self) -> T {
        loop {
            if let Some(item) = self.try_pop() {
                return item;
            }
            self.ready.notified().await;
        }
    }

    fn try_pop(&self) -> Option<T> {
        let mut items = self.items.lock();
        let item = items.pop_front();
        if items.is_empty() && items.capacity() > KEEP_CAPACITY {
            items.shrink_to(KEEP_CAPACITY);
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_fifo_that_wakes_its_reader() {
        let queue = std::sync::Arc::new(DeliveryQueue::new(2));
        assert_eq!(queue.items.lock().capacity(), 0, "nothing allocated before use");
        assert_eq!(queue.try_push(1), Ok(()));
        assert_eq!(queue.try_push(2), Ok(()));
        assert_eq!(queue.try_push(3), Err(3), "full");
        assert_eq!(queue.pop().await, 1);
        assert_eq!(queue.pop().await, 2);
        let reader = tokio::spawn({
            let queue = queue.clone();
            async move { queue.pop().await }
        });
        tokio::task::yield_now().await;
        queue.try_push(4).unwrap();
        assert_eq!(
            tokio::time::timeout(std::time::Duration::from_secs(5), reader).await.unwrap().unwrap(),
            4
        );
    }

    #[tokio::test]
    async fn a_drained_queue_gives_back_a_bursts_memory() {
        let queue = DeliveryQueue::new(1000);
        for i in 0..1000 {
            queue.try_push(i).unwrap();
        }
        for _ in 0..1000 {
            queue.pop().await;
        }
        assert!(queue.items.lock().is_empty());
        assert!(queue.items.lock().capacity() <= KEEP_CAPACITY);
    }
}
