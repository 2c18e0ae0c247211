//! A connection's outbound queue: a list of fixed-size chunks under a short lock, and a wake-up
//! for the writer.
//!
//! Producers append encoded frames to the last chunk (starting a new one when it is full); the
//! writer takes every pending chunk at once and writes them in order, then gives them back for
//! reuse. Chunks never grow by reallocation, so a busy connection does not keep copying and
//! zero-filling ever larger buffers. The queue is bounded by `max_pending` bytes: a producer
//! that would pass it gets [`Overflow`] and the connection is closed as a slow consumer.
//! Nobody ever waits on a slow client beyond the short fast-producer stall.

use std::collections::VecDeque;

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// Size of one chunk: large enough that a write of a chunk is an efficient syscall.
const CHUNK: usize = 64 * 1024;
/// The first chunk of an idle connection that has no chunk to reuse. Most connections are idle
/// most of the time and send a few small frames (CONNACK, SUBACK, PONG): a full chunk each
/// would cost 64 KiB per connection. Busy connections move on to full chunks at their first
/// overflow and keep those.
const SMALL_CHUNK: usize = 512;
/// Empty chunks kept for reuse per connection.
const FREE_MAX: usize = 4;
/// Empty chunks kept for reuse by all connections together (32 MiB). Without it a connection
/// whose backlog grows and shrinks hands its chunks back to the allocator, which returns the
/// pages to the kernel; every refill then page-faults on freshly zeroed memory (measured: a
/// third of the server's CPU in a 1→1 flood).
const POOL_MAX: usize = 512;

static POOL: Mutex<Vec<BytesMut>> = Mutex::new(Vec::new());

/// Keeps a written chunk for reuse by this connection when there is room.
fn keep_chunk(free: &mut Vec<BytesMut>, mut chunk: BytesMut) {
    if free.len() < FREE_MAX && chunk.capacity() == CHUNK {
        chunk.clear();
        free.push(chunk);
    }
}

fn new_chunk(size_hint: usize) -> BytesMut {
    if size_hint <= CHUNK {
        if let Some(chunk) = POOL.lock().pop() {
            return chunk;
        }
    }
    BytesMut::with_capacity(size_hint.max(CHUNK))
}

fn release_chunks(chunks: impl Iterator<Item = BytesMut>) {
    let mut pool = POOL.lock();
    for mut chunk in chunks {
        if pool.len() >= POOL_MAX {
            break;
        }
        if chunk.capacity() == CHUNK {
            chunk.clear();
            pool.push(chunk);
        }
    }
}

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
    /// Pending bytes, in order. Only the last chunk is appended to.
    chunks: VecDeque<BytesMut>,
    pending: usize,
    /// Empty chunks for reuse.
    free: Vec<BytesMut>,
    /// True between the first append after a take and the next take: one wake per batch.
    wake_pending: bool,
    closed: bool,
}

pub struct Outbound {
    state: Mutex<State>,
    /// Held by whoever writes to the socket (the writer task or a direct writer).
    writing: std::sync::atomic::AtomicBool,
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
            writing: std::sync::atomic::AtomicBool::new(false),
            notify: Notify::new(),
            drained: Notify::new(),
            max_pending,
            stall_threshold: max_pending / 4 * 3,
        }
    }

    /// Appends a frame of about `size_hint` bytes written by `encode`.
    pub fn push(&self, size_hint: usize, encode: impl FnOnce(&mut BytesMut)) -> Result<Pushed, Overflow> {
        let mut guard = self.state.lock();
        let state = &mut *guard;
        if state.closed {
            return Ok(Pushed::default());
        }
        if state.pending + size_hint > self.max_pending {
            return Err(Overflow);
        }
        let fits = state.chunks.back().is_some_and(|c| c.capacity() - c.len() >= size_hint);
        if !fits {
            let chunk = match state.free.pop() {
                Some(c) if size_hint <= CHUNK => c,
                Some(c) => {
                    state.free.push(c);
                    new_chunk(size_hint)
                }
                None if state.chunks.is_empty() && size_hint <= SMALL_CHUNK => {
                    BytesMut::with_capacity(SMALL_CHUNK)
                }
                None => new_chunk(size_hint),
            };
            state.chunks.push_back(chunk);
        }
        let Some(last) = state.chunks.back_mut() else { return Ok(Pushed::default()) };
        let before = last.len();
        encode(last);
        state.pending += last.len() - before;
        let wake = !state.wake_pending;
        state.wake_pending = true;
        Ok(Pushed { wake, stalled: state.pending > self.stall_threshold })
    }

    /// Takes the right to write to the socket; false when someone else writes now.
    pub fn try_lock_writer(&self) -> bool {
        !self.writing.swap(true, std::sync::atomic::Ordering::Acquire)
    }

    /// Gives up the right to write. Returns true when bytes are pending: the caller must then
    /// get them written (wake the writer task), since a producer that queued them while the
    /// lock was held could not write them itself. Checked under the queue's lock, so a producer
    /// queueing after it sees the writer lock free.
    #[must_use = "pending bytes need a writer"]
    pub fn unlock_writer(&self) -> bool {
        let state = self.state.lock();
        self.writing.store(false, std::sync::atomic::Ordering::Release);
        state.pending > 0
    }

    /// Writes pending bytes with `write` (non-blocking) until the queue is empty or the socket
    /// takes no more. The caller holds the writer lock. Returns whether the queue is now empty
    /// and how many bytes were written.
    pub fn write_now(
        &self,
        mut write: impl FnMut(&[u8]) -> std::io::Result<usize>,
    ) -> std::io::Result<(bool, usize)> {
        let mut guard = self.state.lock();
        let state = &mut *guard;
        let mut written = 0;
        while let Some(front) = state.chunks.front_mut() {
            if front.is_empty() {
                if let Some(chunk) = state.chunks.pop_front() {
                    keep_chunk(&mut state.free, chunk);
                }
                continue;
            }
            match write(front) {
                Ok(n) => {
                    written += n;
                    state.pending -= n.min(state.pending);
                    if n < front.len() {
                        let _ = front.split_to(n);
                        break;
                    }
                    if let Some(chunk) = state.chunks.pop_front() {
                        keep_chunk(&mut state.free, chunk);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        let empty = state.pending == 0;
        if empty {
            // The next push needs a flush again.
            state.wake_pending = false;
        }
        Ok((empty, written))
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
                if state.closed || state.pending <= self.stall_threshold {
                    return;
                }
            }
            drained.await;
        }
    }

    /// True when pending bytes are at `max_pending` (a stall then waits longer).
    pub fn is_full(&self) -> bool {
        self.state.lock().pending >= self.max_pending
    }

    /// Wakes the writer.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Waits until woken.
    pub async fn wait(&self) {
        self.notify.notified().await;
    }

    /// Moves every pending chunk into `out` (which must be empty); false when there is nothing
    /// to send.
    pub fn take(&self, out: &mut VecDeque<BytesMut>) -> bool {
        let mut state = self.state.lock();
        state.wake_pending = false;
        if state.pending == 0 {
            return false;
        }
        std::mem::swap(&mut state.chunks, out);
        state.pending = 0;
        true
    }

    /// Gives back written chunks for reuse: a few stay with this connection, the rest go to
    /// the shared pool.
    pub fn recycle(&self, written: &mut VecDeque<BytesMut>) {
        {
            let mut state = self.state.lock();
            while state.free.len() < FREE_MAX {
                let Some(chunk) = written.pop_front() else { break };
                keep_chunk(&mut state.free, chunk);
            }
        }
        if !written.is_empty() {
            release_chunks(written.drain(..));
        }
    }

    /// Whether this connection keeps empty chunks for reuse (see [`Outbound::release_free`]).
    pub fn has_free_chunks(&self) -> bool {
        !self.state.lock().free.is_empty()
    }

    /// Hands the chunks kept for reuse back to the shared pool: called once the connection has
    /// been idle for a while, so idle connections hold no chunk at all.
    pub fn release_free(&self) {
        let free = {
            let mut state = self.state.lock();
            if state.chunks.is_empty() {
                // The queue's own room for chunk handles, too.
                state.chunks = VecDeque::new();
            }
            std::mem::take(&mut state.free)
        };
        release_chunks(free.into_iter());
    }

    /// Bytes waiting to be written.
    pub fn pending_bytes(&self) -> usize {
        self.state.lock().pending
    }

    /// Refuses further appends and wakes everyone waiting on the queue.
    pub fn close(&self) {
        let free = {
            let mut state = self.state.lock();
            state.closed = true;
            std::mem::take(&mut state.free)
        };
        release_chunks(free.into_iter());
        self.notify.notify_one();
        self.drained.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a direct writer emptied the queue, another producer queued bytes before the
    /// writer lock was released (so it could not write them, and its wake-up found the lock
    /// taken), and nobody was left to write them: a subscriber stopped receiving.
    #[test]
    fn bytes_queued_while_the_writer_lock_is_held_are_reported_at_unlock() {
        let q = Outbound::new(1 << 20);
        q.push(3, |b| b.extend_from_slice(b"one")).unwrap();
        assert!(q.try_lock_writer());
        assert_eq!(q.write_now(|buf| Ok(buf.len())).unwrap(), (true, 3));
        let pushed = q.push(3, |b| b.extend_from_slice(b"two")).unwrap();
        assert!(pushed.wake, "first bytes since the queue emptied");
        assert!(!q.try_lock_writer(), "the producer cannot write them itself");
        assert!(q.unlock_writer(), "whoever unlocks learns that bytes wait");
        assert!(q.try_lock_writer());
        assert_eq!(q.write_now(|buf| Ok(buf.len())).unwrap(), (true, 3));
        assert!(!q.unlock_writer(), "nothing left");
    }

    fn taken(q: &Outbound) -> Vec<u8> {
        let mut out = VecDeque::new();
        assert!(q.take(&mut out));
        let bytes = out.iter().flat_map(|c| c.iter().copied()).collect();
        q.recycle(&mut out);
        bytes
    }

    #[test]
    fn wakes_once_per_batch_and_bounds_pending_bytes() {
        let q = Outbound::new(10);
        assert_eq!(q.push(4, |b| b.extend_from_slice(b"abcd")), Ok(Pushed { wake: true, stalled: false }));
        assert_eq!(q.push(4, |b| b.extend_from_slice(b"efgh")), Ok(Pushed { wake: false, stalled: true }));
        assert_eq!(q.push(4, |b| b.extend_from_slice(b"ijkl")), Err(Overflow));
        assert_eq!(q.pending_bytes(), 8);
        assert_eq!(taken(&q), b"abcdefgh");
        assert!(!q.take(&mut VecDeque::new()));
        assert_eq!(q.push(4, |b| b.extend_from_slice(b"mnop")), Ok(Pushed { wake: true, stalled: false }));
    }

    #[test]
    fn direct_writes_keep_what_the_socket_did_not_take_in_order() {
        let q = Outbound::new(1 << 20);
        q.push(6, |b| b.extend_from_slice(b"abcdef")).unwrap();
        assert!(q.try_lock_writer());
        assert!(!q.try_lock_writer(), "one writer at a time");
        // The socket takes 4 bytes, then would block.
        let mut budget = 4usize;
        let mut sent = Vec::new();
        let (empty, written) = q
            .write_now(|buf| {
                if budget == 0 {
                    return Err(std::io::ErrorKind::WouldBlock.into());
                }
                let n = budget.min(buf.len());
                sent.extend_from_slice(&buf[..n]);
                budget -= n;
                Ok(n)
            })
            .unwrap();
        assert!(q.unlock_writer(), "the socket took only part");
        assert_eq!((empty, written, &sent[..]), (false, 4, &b"abcd"[..]));
        assert_eq!(q.pending_bytes(), 2);
        q.push(2, |b| b.extend_from_slice(b"gh")).unwrap();
        assert_eq!(taken(&q), b"efgh");
        // Everything taken: the next push asks for a flush again.
        assert!(q.try_lock_writer());
        q.push(1, |b| b.extend_from_slice(b"i")).unwrap();
        let (empty, written) = q.write_now(|buf| Ok(buf.len())).unwrap();
        assert!(!q.unlock_writer());
        assert_eq!((empty, written), (true, 1));
        assert_eq!(q.push(1, |b| b.extend_from_slice(b"j")), Ok(Pushed { wake: true, stalled: false }));
    }

    #[test]
    fn an_idle_connection_starts_small_and_gives_its_chunks_back() {
        let q = Outbound::new(1 << 20);
        q.push(4, |b| b.extend_from_slice(b"abcd")).unwrap();
        let mut out = VecDeque::new();
        assert!(q.take(&mut out));
        assert_eq!(out[0].capacity(), SMALL_CHUNK, "a first small frame gets a small chunk");
        q.recycle(&mut out);
        assert!(!q.has_free_chunks(), "small chunks are not kept");
        // Traffic past the small chunk moves on to full chunks, which are kept for reuse.
        for _ in 0..4 {
            q.push(300, |b| b.extend_from_slice(&[1; 300])).unwrap();
        }
        assert!(q.take(&mut out));
        assert_eq!(out.iter().map(|c| c.capacity()).collect::<Vec<_>>(), [SMALL_CHUNK, CHUNK]);
        q.recycle(&mut out);
        assert!(q.has_free_chunks());
        q.push(4, |b| b.extend_from_slice(b"efgh")).unwrap();
        assert!(q.take(&mut out));
        assert_eq!(out[0].capacity(), CHUNK, "a busy connection reuses its full chunk");
        q.recycle(&mut out);
        assert!(q.state.lock().chunks.capacity() > 0 || out.capacity() > 0);
        q.release_free();
        assert!(!q.has_free_chunks());
        assert_eq!(q.state.lock().chunks.capacity(), 0, "an idle queue holds no room for chunks");
    }

    #[test]
    fn frames_spanning_chunks_keep_their_order() {
        let q = Outbound::new(1 << 30);
        let frame = vec![7u8; 1000];
        let big = vec![9u8; CHUNK * 2];
        let mut expected = Vec::new();
        for i in 0..200 {
            let f: &[u8] = if i == 100 { &big } else { &frame };
            q.push(f.len(), |b| b.extend_from_slice(f)).unwrap();
            expected.extend_from_slice(f);
        }
        assert_eq!(taken(&q), expected);
    }
}
