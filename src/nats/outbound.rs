//! A connection's outbound queue: one byte buffer under a short lock, a wake-up for the writer.
//!
//! Producers append encoded frames; the writer swaps the whole buffer out and sends it with one
//! `write`. The buffer is bounded by `max_pending` bytes: a producer that would pass it gets
//! [`Overflow`] and the connection is closed as a slow consumer. Nobody ever waits on a slow
//! client.

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// Buffers larger than this are not kept for reuse after a write.
const KEEP_CAPACITY: usize = 1024 * 1024;

/// The queue would pass `max_pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

/// The result of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pushed {
    /// First data since the writer's last take: the writer needs a wake-up.
    pub wake: bool,
    /// Pending bytes are past the stall threshold (3/4 of `max_pending`): the producer should
    /// pause briefly so the writer catches up (nats-server's "fast producer stall").
    pub stalled: bool,
}

#[derive(Default)]
struct State {
    buf: BytesMut,
    /// True between the first append after a take and the next take: one wake per batch.
    wake_pending: bool,
    closed: bool,
}

pub struct Outbound {
    state: Mutex<State>,
    notify: Notify,
    /// Signalled after every write, for producers waiting out a stall.
    drained: Notify,
    max_pending: usize,
    stall_threshold: usize,
}

impl Outbound {
    pub fn new(max_pending: usize) -> Self {
        Outbound {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            drained: Notify::new(),
            max_pending,
            stall_threshold: max_pending / 4 * 3,
        }
    }

    /// Appends a frame of about `size_hint` bytes written by `encode`.
    pub fn push(&self, size_hint: usize, encode: impl FnOnce(&mut BytesMut)) -> Result<Pushed, Overflow> {
        let mut state = self.state.lock();
        if state.closed {
            return Ok(Pushed::default());
        }
        if state.buf.len() + size_hint > self.max_pending {
            return Err(Overflow);
        }
        encode(&mut state.buf);
        let wake = !state.wake_pending;
        state.wake_pending = true;
        Ok(Pushed { wake, stalled: state.buf.len() > self.stall_threshold })
    }

    /// Tells stalled producers that bytes were written.
    pub fn signal_drained(&self) {
        self.drained.notify_waiters();
    }

    /// Resolves once pending bytes are at or below the stall threshold (or the queue closed).
    pub async fn below_stall_threshold(&self) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            {
                let state = self.state.lock();
                if state.closed || state.buf.len() <= self.stall_threshold {
                    return;
                }
            }
            drained.await;
        }
    }

    /// True when pending bytes are at `max_pending` (a stall then waits longer).
    pub fn is_full(&self) -> bool {
        self.state.lock().buf.len() >= self.max_pending
    }

    /// Wakes the writer.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Waits until woken.
    pub async fn wait(&self) {
        self.notify.notified().await;
    }

    /// Swaps the pending bytes into `spare` (which must be empty); returns false when there
    /// is nothing to send.
    pub fn take(&self, spare: &mut BytesMut) -> bool {
        let mut state = self.state.lock();
        state.wake_pending = false;
        if state.buf.is_empty() {
            return false;
        }
        std::mem::swap(&mut state.buf, spare);
        true
    }

    /// Gives back a sent buffer for reuse.
    pub fn recycle(spare: &mut BytesMut) {
        if spare.capacity() > KEEP_CAPACITY {
            *spare = BytesMut::new();
        } else {
            spare.clear();
        }
    }

    /// Bytes waiting to be written.
    pub fn pending_bytes(&self) -> usize {
        self.state.lock().buf.len()
    }

    /// Refuses further appends and drops what is pending except what `keep` retains.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.notify.notify_one();
        self.drained.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_once_per_batch_and_bounds_pending_bytes() {
        let q = Outbound::new(10);
        assert_eq!(q.push(4, |b| b.extend_from_slice(b"abcd")), Ok(Pushed { wake: true, stalled: false }));
        assert_eq!(q.push(4, |b| b.extend_from_slice(b"efgh")), Ok(Pushed { wake: false, stalled: true }));
        assert_eq!(q.push(4, |b| b.extend_from_slice(b"ijkl")), Err(Overflow));
        let mut spare = BytesMut::new();
        assert!(q.take(&mut spare));
        assert_eq!(&spare[..], b"abcdefgh");
        Outbound::recycle(&mut spare);
        assert!(!q.take(&mut spare));
        assert_eq!(q.push(4, |b| b.extend_from_slice(b"mnop")), Ok(Pushed { wake: true, stalled: false }));
    }
}
