//! Storage threads and group commit.
//!
//! Each file store (and file consumer store) owns a [`Channel`]: a queue of file operations
//! bound to one writer thread for its whole life, so its operations run in order. A writer
//! thread takes every ready channel at once and, for that batch, (1) performs all queued writes
//! (contiguous writes to one file become one `pwrite`), (2) fsyncs each dirty file once (and
//! the folder when a file was created, renamed or removed), (3) fires the completions in order.
//! Under `Interval`/`Never` completions fire after step 1 and step 2 runs when due. Any failed
//! write or fsync poisons the channel: every pending and later completion gets an error.
//!
//! Block files of `Always` streams are *prefilled*: once a block holds 4 KiB, its channel
//! writes zeros ahead of its appends (as much as it holds, 16 KiB to 1 MiB, never past the
//! block size), and seals a full block by cutting it to its length.
//! An fdatasync of bytes written over prefilled space flushes only data; one that grows the
//! file must also write the inode (its size), which on ext4 doubles its latency. Recovery
//! reads a tail of zeros as the end of a block (see `recovery.rs`).
//!
//! Writes nobody waits for (consumer delivery and ack records) are queued *lazily*
//! ([`Channel::append_lazy`]): they do not wake the writer, which picks them up on its next
//! batch or at most [`LAZY_DELAY`] later. A busy consumer then costs one `pwrite` per batch
//! instead of a wake-up and a `pwrite` per record; a crash loses at most that much consumer
//! state, which means redelivery, never a lost message. Anything queued normally behind lazy
//! records (a barrier, a notify) wakes the writer and takes them along, in order.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::config::SyncPolicy;
use crate::core::backend::Incoming;
use crate::error::{Result, StoreError};
use crate::file::io::{Io, IoFile};
use crate::file::record::encode_msg;
use crate::traits::Completion;

/// One file operation, in queue order.
pub(crate) enum Op {
    /// Creates (or empties) a file and keeps it open as `file`.
    Create { file: u32, path: PathBuf },
    /// Opens an existing file, keeping its bytes, as `file`.
    Open { file: u32, path: PathBuf },
    /// Writes bytes at an offset.
    Write { file: u32, offset: u64, bytes: Vec<u8> },
    /// Encodes and writes a message record; `done` fires once it is durable.
    Msg { file: u32, offset: u64, msg: Incoming, done: Option<Completion> },
    /// Closes and unlinks a file.
    Remove { file: u32, path: PathBuf },
    /// Rewrites a sealed block without its dead messages (see `file::compact`).
    Compact { file: u32, path: PathBuf, live: Vec<u64>, report: crate::file::compact::CompactionReports },
    /// Closes a handle (the file stays).
    Close { file: u32 },
    /// Cuts a file to `len` (sealing a prefilled block).
    SetLen { file: u32, len: u64 },
    /// Renames a file after making every written file durable; handles stay valid.
    Rename { from: PathBuf, to: PathBuf },
    /// Fires after everything before it is fsynced, whatever the policy.
    Barrier(Completion),
    /// Fires with `Ok(value)` once everything before it is durable under the channel's policy,
    /// like a message's completion (in order with them).
    Notify { done: Completion, value: u64 },
    /// Reads `len` bytes of `file` at `offset`, after every write queued before it, and hands
    /// them to `reply` (dropped uncalled on a poisoned channel).
    Read { file: u32, offset: u64, len: usize, reply: ReadReply },
    /// Writes at `offset` of `file` the bytes `build` makes, which may read what earlier
    /// operations wrote to `source` (a log's compacted image, made from the metas it holds on
    /// disk rather than in memory).
    Build { file: u32, offset: u64, source: u32, build: BuildBytes },
}

/// Where an [`Op::Read`] delivers.
pub(crate) type ReadReply = Box<dyn FnOnce(std::io::Result<Vec<u8>>) + Send>;
/// Reads `len` bytes at an offset of an [`Op::Build`]'s source file.
pub(crate) type ReadSource<'a> = &'a dyn Fn(u64, usize) -> std::io::Result<Vec<u8>>;
/// Makes an [`Op::Build`]'s bytes.
pub(crate) type BuildBytes = Box<dyn FnOnce(ReadSource<'_>) -> std::io::Result<Vec<u8>> + Send>;

impl Op {
    /// Whether a thread's batch may perform this operation itself (see `write_batch`).
    fn can_write_inline(&self) -> bool {
        matches!(self, Op::Write { .. } | Op::Msg { .. } | Op::Notify { .. })
    }

    /// A message nobody waits for (published without a reply, a sourced copy): written
    /// lazily, like consumer records.
    fn is_unacknowledged(&self) -> bool {
        matches!(self, Op::Msg { done: None, .. })
    }
}

/// Capacity of the buffer that coalesces a batch's writes.
const WRITE_BUFFER: usize = 64 * 1024;

thread_local! {
    /// The last write buffer this thread used, emptied, for its next batch: allocating and
    /// freeing 64 KiB per batch would have the allocator hand the pages back to the OS and
    /// fault them in again. One per thread that writes (storage threads, and runtime threads
    /// writing their own batches), not one per store.
    static SPARE_WRITE_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// An empty buffer with room for a batch.
fn take_write_buffer() -> Vec<u8> {
    let mut buf = SPARE_WRITE_BUFFER.try_with(std::cell::Cell::take).unwrap_or_default();
    buf.reserve(WRITE_BUFFER);
    buf
}

/// Keeps an emptied buffer for this thread's next batch (one that grew past the usual size is
/// let go).
fn give_back_write_buffer(buf: Vec<u8>) {
    if buf.capacity() <= WRITE_BUFFER {
        let _ = SPARE_WRITE_BUFFER.try_with(|spare| spare.set(buf));
    }
}

/// What prefills write from (the zero page backs it: it costs no memory).
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// A prefilled file gets zeros once its data passes this: a stream that holds a few small
/// messages (a KV bucket, an idle MQTT stream) costs no more disk than its data.
const PREFILL_START: u64 = 4 * 1024;
/// Zeros written ahead of a prefilled file's appends at a time: as much as its data, between
/// 16 KiB and 1 MiB (see the module docs).
const PREFILL_CHUNK_MIN: u64 = 16 * 1024;
const PREFILL_CHUNK_MAX: u64 = 1024 * 1024;

/// How long lazily queued writes may wait for the writer.
pub(crate) const LAZY_DELAY: Duration = Duration::from_millis(10);

/// Capacity of a buffer started for lazily appended records.
const LAZY_BUFFER: usize = 4096;

/// Acknowledged messages one fsync-before-ack batch writes at most; the rest go into the next
/// batch. Publishers that keep a window of acks in flight send in bursts: one fsync for a
/// whole window leaves them idle while it runs and the disk idle while they turn the acks into
/// new messages. Halves of a window of 256 ping-pong instead (async publish +25%, measured), at
/// the cost of at most one more fsync per 128 messages.
pub const MAX_SYNC_BATCH_MSGS: usize = 128;

/// Whether a channel is in its writer's lists, and which.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Scheduled {
    #[default]
    No,
    /// In the lazy list: written on the writer's next batch or after [`LAZY_DELAY`].
    Lazy,
    /// In the ready queue (or the lazy list with the writer woken to take it).
    Now,
}

#[derive(Default)]
struct Queue {
    ops: Vec<Op>,
    scheduled: Scheduled,
    /// Registered with a thread's open [`WriteBatch`](super::write_batch::WriteBatch).
    in_batch: bool,
}

struct Target {
    io: Arc<dyn Io>,
    dir: PathBuf,
    files: HashMap<u32, Box<dyn IoFile>>,
    dirty: BTreeSet<u32>,
    dir_dirty: bool,
    last_sync: Instant,
    done: Vec<(Completion, u64)>,
    barriers: Vec<Completion>,
    /// Coalesced write not yet issued: file, start offset, bytes.
    pending: Option<(u32, u64, Vec<u8>)>,
    /// Files created here and prefilled: where their data ends and their zeros end.
    prefilled: HashMap<u32, Prefilled>,
    error: Option<StoreError>,
}

/// A prefilled file's appends so far and the zeros written ahead of them.
#[derive(Clone, Copy, Default)]
struct Prefilled {
    data_end: u64,
    zeros_end: u64,
}

/// `len` bytes of open `file` at `offset`; an error if the file ends before.
fn read_exact(t: &Target, file: u32, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let f = t.files.get(&file).ok_or_else(|| std::io::Error::other("read of an unknown file"))?;
    let mut buf = vec![0u8; len];
    if f.read_full_at(&mut buf, offset)? < len {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
    }
    Ok(buf)
}

/// The queue of one store, bound to one writer thread.
pub(crate) struct Channel {
    queue: Mutex<Queue>,
    target: Mutex<Target>,
    poisoned: AtomicBool,
    /// When completions may fire and fsyncs are due.
    policy: SyncPolicy,
    /// Files this channel creates are prefilled up to this length (0: never).
    prefill_cap: u64,
    /// Highest message sequence written to the OS.
    pub written_seq: AtomicU64,
    writer: Arc<Writer>,
}

impl Channel {
    /// A channel writing into `dir`; files it creates are prefilled up to `prefill_cap` bytes
    /// (0: not prefilled).
    pub fn new(
        writer: Arc<Writer>,
        io: Arc<dyn Io>,
        dir: PathBuf,
        policy: SyncPolicy,
        prefill_cap: u64,
    ) -> Arc<Channel> {
        Arc::new(Channel {
            queue: Mutex::new(Queue::default()),
            target: Mutex::new(Target {
                io,
                dir,
                files: HashMap::new(),
                dirty: BTreeSet::new(),
                dir_dirty: false,
                last_sync: Instant::now(),
                done: Vec::new(),
                barriers: Vec::new(),
                pending: None,
                prefilled: HashMap::new(),
                error: None,
            }),
            poisoned: AtomicBool::new(false),
            policy,
            prefill_cap,
            written_seq: AtomicU64::new(0),
            writer,
        })
    }

    /// Whether files this channel creates are prefilled.
    pub fn prefills(&self) -> bool {
        self.prefill_cap > 0
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// Whether its owner may queue more: `Poisoned` after a failed write or fsync, else
    /// `Closed` once the owner (`stopped`) was stopped.
    pub fn writable(&self, stopped: bool) -> Result<()> {
        if self.is_poisoned() {
            Err(StoreError::Poisoned)
        } else if stopped {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// Queues an operation and wakes the writer.
    pub fn push(self: &Arc<Self>, op: Op) -> Result<()> {
        self.push_all([op])
    }

    /// Queues operations together and wakes the writer: all of them, or none (`Closed`) once
    /// the writer is shut down.
    pub fn push_all(self: &Arc<Self>, ops: impl IntoIterator<Item = Op>) -> Result<()> {
        if self.writer.is_shut_down() {
            return Err(StoreError::Closed);
        }
        let mut q = self.queue.lock();
        let before = q.ops.len();
        q.ops.extend(ops);
        if self.policy != SyncPolicy::Always
            && q.ops.get(before..).unwrap_or_default().iter().all(Op::can_write_inline)
            && super::write_batch::is_open()
        {
            // Performed by this thread when its batch ends (see `write_batch`).
            if !std::mem::replace(&mut q.in_batch, true) {
                drop(q);
                super::write_batch::register(Arc::clone(self));
            }
            return Ok(());
        }
        if q.ops.get(before..).unwrap_or_default().iter().all(Op::is_unacknowledged) {
            // Nobody waits for these: they join the next batch, or go out within LAZY_DELAY.
            self.schedule_lazily(q);
            return Ok(());
        }
        let was = std::mem::replace(&mut q.scheduled, Scheduled::Now);
        drop(q);
        match was {
            Scheduled::No => self.writer.schedule(Arc::clone(self)),
            Scheduled::Lazy => self.writer.take_lazy_now(),
            Scheduled::Now => {}
        }
        Ok(())
    }

    /// Appends bytes written by `encode` at `(file, offset)` without waking the writer (see
    /// the module docs); returns how many bytes were appended. Contiguous appends share one
    /// queued write.
    pub fn append_lazy(
        self: &Arc<Self>,
        file: u32,
        offset: u64,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> Result<u64> {
        if self.writer.is_shut_down() {
            return Err(StoreError::Closed);
        }
        let mut q = self.queue.lock();
        let appended = match q.ops.last_mut() {
            Some(Op::Write { file: f, offset: o, bytes })
                if *f == file && *o + bytes.len() as u64 == offset =>
            {
                let before = bytes.len();
                encode(bytes);
                (bytes.len() - before) as u64
            }
            _ => {
                let mut bytes = Vec::with_capacity(LAZY_BUFFER);
                encode(&mut bytes);
                let appended = bytes.len() as u64;
                q.ops.push(Op::Write { file, offset, bytes });
                appended
            }
        };
        self.schedule_lazily(q);
        Ok(appended)
    }

    /// Puts this channel on its writer's lazy list unless it is on a list already (its queue
    /// lock `q` is released first).
    fn schedule_lazily(self: &Arc<Self>, mut q: MutexGuard<'_, Queue>) {
        if q.scheduled == Scheduled::No {
            q.scheduled = Scheduled::Lazy;
            drop(q);
            self.writer.schedule_lazy(Arc::clone(self));
        }
    }

    /// Replaces the bytes of a queued, not yet written `Write` at `(file, offset)` of the same
    /// length, if it is still the last operation queued. Used to coalesce floor records.
    pub fn replace_last_write(&self, file: u32, offset: u64, bytes: &[u8]) -> bool {
        let mut q = self.queue.lock();
        match q.ops.last_mut() {
            Some(Op::Write { file: f, offset: o, bytes: b })
                if *f == file && *o == offset && b.len() == bytes.len() =>
            {
                b.copy_from_slice(bytes);
                true
            }
            _ => false,
        }
    }

    /// Blocks until everything queued so far is durable.
    pub fn sync_waiter(self: &Arc<Self>) -> Box<dyn FnOnce() -> Result<()> + Send> {
        let (tx, rx) = std::sync::mpsc::channel();
        let pushed = self.push(Op::Barrier(Box::new(move |r| {
            let _ = tx.send(r.map(|_| ()));
        })));
        Box::new(move || {
            pushed?;
            rx.recv().map_err(|_| StoreError::Closed)?
        })
    }

    fn poison(&self, t: &mut Target, err: StoreError) {
        self.poisoned.store(true, Ordering::Release);
        if t.error.is_none() {
            t.error = Some(err);
        }
    }

    fn flush_pending(&self, t: &mut Target) -> std::io::Result<()> {
        if let Some((file, offset, mut bytes)) = t.pending.take() {
            let f = t.files.get(&file).ok_or_else(|| std::io::Error::other("write to unknown file"))?;
            f.write_at(&bytes, offset)?;
            t.dirty.insert(file);
            bytes.clear();
            give_back_write_buffer(bytes);
        }
        Ok(())
    }

    fn buffer(t: &mut Target, file: u32, offset: u64) -> &mut Vec<u8> {
        let contiguous = matches!(&t.pending, Some((f, o, b)) if *f == file && o + b.len() as u64 == offset);
        if !contiguous {
            // The caller flushed already when this is not contiguous.
            t.pending = None;
        }
        &mut t.pending.get_or_insert_with(|| (file, offset, take_write_buffer())).2
    }

    /// Notes that a prefilled `file` now holds data up to `end`; past its zeros, writes the
    /// queued data and the next zeros (at most `prefill_cap` into the file).
    fn prefill_after(&self, t: &mut Target, file: u32, end: u64) -> std::io::Result<()> {
        let cap = self.prefill_cap;
        let Some(p) = t.prefilled.get_mut(&file) else { return Ok(()) };
        p.data_end = p.data_end.max(end);
        if p.data_end <= p.zeros_end || p.data_end < PREFILL_START || p.data_end >= cap {
            return Ok(());
        }
        let chunk = p.data_end.clamp(PREFILL_CHUNK_MIN, PREFILL_CHUNK_MAX);
        let (from, to) = (p.data_end, (p.data_end + chunk).min(cap));
        p.zeros_end = to;
        // The data first: the zeros must start where the file's data ends.
        self.flush_pending(t)?;
        let f = t.files.get(&file).ok_or_else(|| std::io::Error::other("prefill of an unknown file"))?;
        // From one static block of zeros: a fresh zeroed buffer of up to 1 MiB per prefill
        // would be allocated, faulted in and handed back each time.
        let mut at = from;
        while at < to {
            let len = usize::try_from(to - at).unwrap_or(usize::MAX).min(ZEROS.len());
            f.write_at(ZEROS.get(..len).unwrap_or_default(), at)?;
            at += len as u64;
        }
        Ok(())
    }

    fn apply(&self, t: &mut Target, op: Op, max_seq: &mut u64) -> std::io::Result<()> {
        let contiguous_with = |t: &Target, file: u32, offset: u64| matches!(&t.pending, Some((f, o, b)) if *f == file && o + b.len() as u64 == offset);
        match op {
            Op::Write { file, offset, bytes } => {
                if !contiguous_with(t, file, offset) {
                    self.flush_pending(t)?;
                }
                Self::buffer(t, file, offset).extend_from_slice(&bytes);
                self.prefill_after(t, file, offset + bytes.len() as u64)?;
            }
            Op::Msg { file, offset, msg, done } => {
                if !contiguous_with(t, file, offset) {
                    self.flush_pending(t)?;
                }
                let buf = Self::buffer(t, file, offset);
                encode_msg(
                    buf,
                    msg.seq,
                    msg.timestamp,
                    msg.expires,
                    &msg.subject,
                    msg.headers.as_deref(),
                    &msg.payload,
                );
                // The buffer ends where this record does.
                let end = t.pending.as_ref().map_or(offset, |(_, start, b)| start + b.len() as u64);
                *max_seq = (*max_seq).max(msg.seq);
                if let Some(done) = done {
                    t.done.push((done, msg.seq));
                }
                self.prefill_after(t, file, end)?;
            }
            Op::Create { file, path } => {
                self.flush_pending(t)?;
                let f = t.io.open(&path, true)?;
                f.set_len(0)?;
                t.files.insert(file, f);
                t.dirty.insert(file);
                t.dir_dirty = true;
                if self.prefill_cap > 0 {
                    t.prefilled.insert(file, Prefilled::default());
                }
            }
            Op::SetLen { file, len } => {
                self.flush_pending(t)?;
                let f = t.files.get(&file).ok_or_else(|| std::io::Error::other("cut of an unknown file"))?;
                f.set_len(len)?;
                t.dirty.insert(file);
                t.prefilled.remove(&file);
            }
            Op::Open { file, path } => {
                self.flush_pending(t)?;
                let f = t.io.open(&path, false)?;
                t.files.insert(file, f);
            }
            Op::Remove { file, path } => {
                self.flush_pending(t)?;
                t.prefilled.remove(&file);
                t.files.remove(&file);
                t.dirty.remove(&file);
                t.io.remove_file(&path)?;
                t.dir_dirty = true;
            }
            Op::Compact { file, path, live, report } => {
                self.flush_pending(t)?;
                t.prefilled.remove(&file);
                let (done, new_file) = crate::file::compact::rewrite_block(&*t.io, file, &path, &live)?;
                if let Some(f) = new_file {
                    if t.files.contains_key(&file) {
                        t.files.insert(file, f);
                    }
                    t.dir_dirty = true;
                }
                report.lock().push(done);
            }
            Op::Close { file } => {
                self.flush_pending(t)?;
                t.prefilled.remove(&file);
                t.files.remove(&file);
                t.dirty.remove(&file);
            }
            Op::Rename { from, to } => {
                self.flush_pending(t)?;
                // The new name must never be durable before the bytes it names.
                for id in std::mem::take(&mut t.dirty) {
                    if let Some(f) = t.files.get(&id) {
                        f.sync_data()?;
                    }
                }
                t.io.rename(&from, &to)?;
                t.dir_dirty = true;
            }
            Op::Barrier(done) => t.barriers.push(done),
            Op::Notify { done, value } => t.done.push((done, value)),
            Op::Read { file, offset, len, reply } => {
                self.flush_pending(t)?;
                reply(read_exact(t, file, offset, len));
            }
            Op::Build { file, offset, source, build } => {
                self.flush_pending(t)?;
                let bytes = build(&|at, len| read_exact(t, source, at, len))?;
                Self::buffer(t, file, offset).extend_from_slice(&bytes);
                self.prefill_after(t, file, offset + bytes.len() as u64)?;
            }
        }
        Ok(())
    }

    /// Step 1: perform the queued operations (under `Always`, at most
    /// [`MAX_SYNC_BATCH_MSGS`] messages). Returns whether some are left for the next batch.
    fn write_phase(&self) -> bool {
        let mut q = self.queue.lock();
        let split = if self.policy == SyncPolicy::Always {
            let mut msgs =
                q.ops.iter().enumerate().filter(|(_, op)| matches!(op, Op::Msg { done: Some(_), .. }));
            msgs.nth(MAX_SYNC_BATCH_MSGS).map(|(at, _)| at)
        } else {
            None
        };
        let ops = match split {
            Some(at) => {
                let rest = q.ops.split_off(at);
                std::mem::replace(&mut q.ops, rest)
            }
            None => std::mem::take(&mut q.ops),
        };
        let more = split.is_some();
        q.scheduled = if more { Scheduled::Now } else { Scheduled::No };
        // Taken before the queue is released: a thread writing inline must not get ahead.
        let mut t = self.target.lock();
        drop(q);
        self.write_ops(&mut t, ops);
        more
    }

    /// Performs the operations queued for this thread's batch (see `write_batch`), fires the
    /// completions, and lets the storage thread know the files need their periodic fsync.
    pub(crate) fn write_inline(self: &Arc<Self>) {
        let mut q = self.queue.lock();
        q.in_batch = false;
        let ops = std::mem::take(&mut q.ops);
        if ops.is_empty() {
            // A storage thread took them already.
            return;
        }
        let mut t = self.target.lock();
        drop(q);
        self.write_ops(&mut t, ops);
        let dirty = !t.dirty.is_empty();
        drop(t);
        self.complete_phase();
        if dirty {
            self.schedule_lazily(self.queue.lock());
        }
    }

    fn write_ops(&self, t: &mut Target, ops: Vec<Op>) {
        let mut max_seq = 0;
        for op in ops {
            if self.is_poisoned() {
                // Queued behind earlier completions so that errors, too, arrive in order.
                match op {
                    Op::Msg { msg, done: Some(done), .. } => t.done.push((done, msg.seq)),
                    Op::Barrier(done) => t.barriers.push(done),
                    Op::Notify { done, value } => t.done.push((done, value)),
                    _ => {}
                }
                continue;
            }
            if let Err(e) = self.apply(t, op, &mut max_seq) {
                self.poison(t, StoreError::Io(e));
            }
        }
        if let Err(e) = self.flush_pending(t) {
            self.poison(t, StoreError::Io(e));
        }
        if !self.is_poisoned() && max_seq > 0 {
            self.written_seq.fetch_max(max_seq, Ordering::Release);
        }
    }

    /// Step 2: fsync what the policy (or a barrier) asks for.
    fn sync_phase(&self, now: Instant, shutting_down: bool) {
        let mut t = self.target.lock();
        if self.is_poisoned() || (t.dirty.is_empty() && !t.dir_dirty) {
            return;
        }
        let due = !t.barriers.is_empty()
            || shutting_down
            || match self.policy {
                SyncPolicy::Always => true,
                SyncPolicy::Interval(d) => now.duration_since(t.last_sync) >= d,
                SyncPolicy::Never => false,
            };
        if !due {
            return;
        }
        let dirty = std::mem::take(&mut t.dirty);
        let mut result = Ok(());
        for id in dirty {
            if let Some(f) = t.files.get(&id) {
                let started = Instant::now();
                result = result.and_then(|_| f.sync_data());
                self.writer.stats.record(started.elapsed());
            }
        }
        if t.dir_dirty {
            let started = Instant::now();
            result = result.and_then(|_| t.io.sync_dir(&t.dir));
            self.writer.stats.record(started.elapsed());
            t.dir_dirty = false;
        }
        t.last_sync = now;
        if let Err(e) = result {
            self.poison(&mut t, StoreError::Io(e));
        }
    }

    /// When an unsynced channel next needs an fsync.
    fn sync_deadline(&self) -> Option<Instant> {
        let t = self.target.lock();
        if t.dirty.is_empty() && !t.dir_dirty {
            return None;
        }
        match self.policy {
            SyncPolicy::Interval(d) => Some(t.last_sync + d),
            _ => None,
        }
    }

    /// Step 3: fire completions in order.
    fn complete_phase(&self) {
        let (done, barriers, err) = {
            let mut t = self.target.lock();
            let durable = t.dirty.is_empty() && !t.dir_dirty;
            let policy = self.policy;
            let done = if policy == SyncPolicy::Always && !durable && t.error.is_none() {
                Vec::new()
            } else {
                std::mem::take(&mut t.done)
            };
            let barriers =
                if durable || t.error.is_some() { std::mem::take(&mut t.barriers) } else { Vec::new() };
            (done, barriers, t.error.as_ref().map(StoreError::duplicate))
        };
        for (done, seq) in done {
            done(match &err {
                None => Ok(seq),
                Some(e) => Err(e.duplicate()),
            });
        }
        for done in barriers {
            done(match &err {
                None => Ok(0),
                Some(e) => Err(e.duplicate()),
            });
        }
    }
}

#[derive(Default)]
struct Ready {
    queue: Vec<Arc<Channel>>,
    /// Channels holding only lazy writes, and since when the oldest waits.
    lazy: Vec<Arc<Channel>>,
    lazy_since: Option<Instant>,
    /// A channel in `lazy` has normal work queued behind its lazy writes.
    lazy_now: bool,
    shutdown: bool,
}

impl Ready {
    /// The ready channels, with every lazy one when they are due or others are written
    /// anyway (one batch, one pass over the files).
    fn take_batch(&mut self, now: Instant) -> Vec<Arc<Channel>> {
        let lazy_due = self.lazy_now
            || !self.queue.is_empty()
            || self.shutdown
            || self.lazy_since.is_some_and(|t| now.duration_since(t) >= LAZY_DELAY);
        let mut batch = std::mem::take(&mut self.queue);
        if lazy_due {
            batch.append(&mut self.lazy);
            self.lazy_since = None;
            self.lazy_now = false;
        }
        batch
    }
}

/// One writer thread's state: the channels ready to be written.
#[derive(Default)]
pub(crate) struct Writer {
    ready: Mutex<Ready>,
    cv: Condvar,
    shut: AtomicBool,
    /// fsyncs done by this thread, for the server's metrics.
    pub stats: crate::engine::SyncStats,
    /// Wraps each batch's completions.
    scope: Option<Arc<dyn crate::engine::CompletionScope>>,
}

impl Writer {
    pub fn new(scope: Option<Arc<dyn crate::engine::CompletionScope>>) -> Self {
        Writer { scope, ..Writer::default() }
    }

    fn schedule(&self, ch: Arc<Channel>) {
        self.ready.lock().queue.push(ch);
        self.cv.notify_one();
    }

    fn schedule_lazy(&self, ch: Arc<Channel>) {
        let mut ready = self.ready.lock();
        ready.lazy.push(ch);
        if ready.lazy_since.is_none() {
            ready.lazy_since = Some(Instant::now());
            // The writer may be asleep on a longer timeout: let it set its clock by this one.
            self.cv.notify_one();
        }
    }

    /// A lazily scheduled channel got normal work: take the lazy list now.
    fn take_lazy_now(&self) {
        self.ready.lock().lazy_now = true;
        self.cv.notify_one();
    }

    fn is_shut_down(&self) -> bool {
        self.shut.load(Ordering::Acquire)
    }

    pub fn shutdown(&self) {
        self.ready.lock().shutdown = true;
        self.cv.notify_all();
    }

    /// The thread body: batches until shut down, then flushes and syncs what is left.
    pub fn run(&self) {
        let mut unsynced: Vec<Arc<Channel>> = Vec::new();
        loop {
            let (batch, shutting_down) = {
                let mut st = self.ready.lock();
                loop {
                    let now = Instant::now();
                    let batch = st.take_batch(now);
                    if !batch.is_empty() {
                        break (batch, st.shutdown);
                    }
                    if st.shutdown {
                        self.shut.store(true, Ordering::Release);
                        break (Vec::new(), true);
                    }
                    let deadline = unsynced
                        .iter()
                        .filter_map(|c| c.sync_deadline())
                        .chain(st.lazy_since.map(|t| t + LAZY_DELAY))
                        .min();
                    let wait = deadline.map_or(Duration::from_secs(1), |d| d.saturating_duration_since(now));
                    if self.cv.wait_for(&mut st, wait).timed_out()
                        && !unsynced.is_empty()
                        && st.lazy_since.is_none()
                    {
                        break (Vec::new(), false);
                    }
                }
            };
            let mut again = Vec::new();
            for ch in &batch {
                if ch.write_phase() {
                    again.push(Arc::clone(ch));
                }
            }
            let now = Instant::now();
            for ch in batch.iter().chain(unsynced.iter()) {
                ch.sync_phase(now, shutting_down);
            }
            let mut complete = || {
                for ch in &batch {
                    ch.complete_phase();
                }
            };
            match &self.scope {
                Some(scope) => scope.run(&mut complete),
                None => complete(),
            }
            if !again.is_empty() {
                self.ready.lock().queue.extend(again);
            }
            for ch in batch {
                if !unsynced.iter().any(|c| Arc::ptr_eq(c, &ch)) {
                    unsynced.push(ch);
                }
            }
            unsynced.retain(|c| c.sync_deadline().is_some());
            if shutting_down && self.is_shut_down() && {
                let r = self.ready.lock();
                r.queue.is_empty() && r.lazy.is_empty()
            } {
                return;
            }
        }
    }
}
