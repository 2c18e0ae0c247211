//! The QoS 1/2 deliveries waiting for one connection's task, which assigns their packet ids.
//!
//! A queue that allocates nothing until used and gives its memory back once drained: most
//! MQTT connections are idle, and a channel that reserves its first block of slots up front
//! (tokio's mpsc: 32 deliveries, about 4 KB) would be the largest part of an idle session.
//!
//! It is bounded by the bytes it holds (the connection's slow-consumer limit), not by a count
//! of messages: publishers are acknowledged once their messages are queued here, so a burst
//! that briefly outruns the connection's task must fit.

use std::collections::VecDeque;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Capacity kept after the queue drains; a burst's larger buffer is given back.
const KEEP_CAPACITY: usize = 16;

struct Items<T> {
    /// Each item with the bytes it was pushed as.
    queue: VecDeque<(T, usize)>,
    bytes: usize,
}

pub struct DeliveryQueue<T> {
    items: Mutex<Items<T>>,
    /// One permit per push, so a push between the consumer's check and its wait is not lost.
    ready: Notify,
    max_bytes: usize,
}

/// Whether `bytes` more fit a queue holding `held` bytes (`empty`: nothing) within `max`: an
/// empty queue takes one item of any size, so a message larger than the limit still moves.
pub fn fits(empty: bool, held: usize, bytes: usize, max: usize) -> bool {
    empty || held.saturating_add(bytes) <= max
}

impl<T> DeliveryQueue<T> {
    /// A queue that holds at most `max_bytes` (and always at least one item).
    pub fn new(max_bytes: usize) -> Self {
        DeliveryQueue {
            items: Mutex::new(Items { queue: VecDeque::new(), bytes: 0 }),
            ready: Notify::new(),
            max_bytes,
        }
    }

    /// Queues `item` counted as `bytes`, or hands it back when it does not fit.
    pub fn try_push(&self, item: T, bytes: usize) -> Result<(), T> {
        {
            let mut items = self.items.lock();
            if !fits(items.queue.is_empty(), items.bytes, bytes, self.max_bytes) {
                return Err(item);
            }
            items.bytes += bytes;
            items.queue.push_back((item, bytes));
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
        let (item, bytes) = items.queue.pop_front()?;
        items.bytes -= bytes;
        if items.queue.is_empty() && items.queue.capacity() > KEEP_CAPACITY {
            items.queue.shrink_to(KEEP_CAPACITY);
        }
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fifo_bounded_by_bytes_that_wakes_its_reader() {
        let queue = std::sync::Arc::new(DeliveryQueue::new(100));
        assert_eq!(queue.items.lock().queue.capacity(), 0, "nothing allocated before use");
        assert_eq!(queue.try_push(1, 60), Ok(()));
        assert_eq!(queue.try_push(2, 40), Ok(()));
        assert_eq!(queue.try_push(3, 1), Err(3), "full");
        assert_eq!(queue.pop().await, 1);
        assert_eq!(queue.try_push(3, 60), Ok(()), "room again");
        assert_eq!(queue.pop().await, 2);
        assert_eq!(queue.pop().await, 3);
        assert_eq!(queue.try_push(4, 500), Ok(()), "an empty queue takes one item of any size");
        assert_eq!(queue.pop().await, 4);
        let reader = tokio::spawn({
            let queue = queue.clone();
            async move { queue.pop().await }
        });
        tokio::task::yield_now().await;
        queue.try_push(5, 1).unwrap();
        assert_eq!(
            tokio::time::timeout(std::time::Duration::from_secs(5), reader).await.unwrap().unwrap(),
            5
        );
        assert_eq!(queue.items.lock().bytes, 0);
    }

    #[tokio::test]
    async fn a_drained_queue_gives_back_a_bursts_memory() {
        let queue = DeliveryQueue::new(usize::MAX);
        for i in 0..1000 {
            queue.try_push(i, 1).unwrap();
        }
        for _ in 0..1000 {
            queue.pop().await;
        }
        assert!(queue.items.lock().queue.is_empty());
        assert!(queue.items.lock().queue.capacity() <= KEEP_CAPACITY);
    }
}
