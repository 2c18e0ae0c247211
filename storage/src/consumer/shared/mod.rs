//! Many consumers of one stream in one log file, written through one writer channel.
//!
//! A [`SharedConsumerLog`] keeps, in `consumers.log` of the folder it is given, every record of
//! its consumers: added (id, ack policy, name, caller's meta), meta replaced, removed, and the
//! same delivered / ack / full-state updates a [`crate::FileConsumerStore`] writes, tagged with
//! the consumer's id. Creating a consumer is one appended record (no folder, no file, no file
//! descriptor), and all consumers' records are group-committed together: one fsync covers
//! every add and update of the batch.
//!
//! Each [`SharedConsumer`] handle is a [`ConsumerStore`]: an `Arc` to the log, an `Arc` to its
//! slot (id, ack policy, state) and a stop flag. No channel, file or buffer per consumer.
//!
//! Compaction: the log keeps the exact length its compacted image would have (header, then one
//! add and one full-state record per live consumer). When the file grows past
//! [`COMPACT_RATIO`] times that (and [`COMPACT_MIN`]), the image is written to
//! `consumers.log.tmp` and renamed over the log through the channel (rename after fsync,
//! folder fsync), as `FileConsumerStore` rewrites its log. Amortised O(1) per record.
//!
//! Locks, outermost first: the log's lock -> a slot's lock -> the channel's queue lock. Every
//! write takes the log's lock (it orders records and assigns offsets), so a record's place in
//! the file always matches the order its changes were applied in memory; compaction, under the
//! log's lock, sees every slot between two records. `state()` takes only the slot's lock.

mod format;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::SyncPolicy;
use crate::consumer::codec::Update;
use crate::engine::{Affinity, Engine};
use crate::error::{Result, StoreError};
use crate::file::io::{Io, RealIo};
use crate::file::record::MIN_RECORD_LEN;
use crate::file::writer::{BuildBytes, Channel, Op, ReadSource};
use crate::traits::{AckPolicy, Completion, ConsumerState, ConsumerStore};
use format::End;

/// The log's file name in its folder.
const SHARED_LOG: &str = "consumers.log";
const TMP: &str = "consumers.log.tmp";
/// The log is compacted once it is this many times longer than its compacted image...
const COMPACT_RATIO: u64 = 4;
/// ... and at least this long.
const COMPACT_MIN: u64 = 64 * 1024;

/// What [`SharedConsumerLog::open`] found.
#[derive(Debug)]
pub struct OpenedLog {
    /// The log, ready for new consumers.
    pub log: Arc<SharedConsumerLog>,
    /// Every live consumer, in the order they were added.
    pub consumers: Vec<RestoredConsumer>,
    /// Set when replay stopped at damage (not at a torn tail): records after it were dropped.
    pub damage: Option<LogDamage>,
}

/// A consumer found in the log at open.
#[derive(Debug)]
pub struct RestoredConsumer {
    /// Its name.
    pub name: String,
    /// The meta bytes last given to `add` or `set_meta`.
    pub meta: Vec<u8>,
    /// Its store, with the state it had.
    pub consumer: Arc<SharedConsumer>,
}

/// Damage found at open. The log was cut at `offset`; the whole damaged file was kept as
/// `saved_as` for inspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDamage {
    /// Where replay stopped.
    pub offset: u64,
    /// Bytes dropped from the log.
    pub bytes: u64,
    /// The copy of the file as it was found.
    pub saved_as: PathBuf,
}

/// One consumer's persisted part, shared by the log (for compaction) and its handles.
struct Slot {
    id: u64,
    policy: AckPolicy,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    state: ConsumerState,
    /// Removed from the log: its handles return `Closed`.
    removed: bool,
}

/// A live consumer as the log keeps it. Its meta stays on disk only (it is read back for
/// compactions and [`SharedConsumerLog::meta`]): a log of one consumer per MQTT session would
/// otherwise hold every session's consumer config twice.
struct Entry {
    slot: Arc<Slot>,
    meta: MetaAt,
}

/// Where a consumer's latest meta is in the current log file.
#[derive(Clone, Copy)]
struct MetaAt {
    offset: u64,
    len: u32,
}

impl MetaAt {
    fn new(offset: u64, len: usize) -> MetaAt {
        // Records (and so metas) are checked to fit a u32 length before they are queued.
        MetaAt { offset, len: u32::try_from(len).unwrap_or(u32::MAX) }
    }
}

/// One consumer of a compacted image, captured under the log's lock.
struct ImagePart {
    id: u64,
    policy: AckPolicy,
    name: Arc<str>,
    /// Its meta in the file being compacted.
    meta: MetaAt,
    /// Its full-state record.
    state: Vec<u8>,
}

struct Inner {
    channel: Arc<Channel>,
    dir: PathBuf,
    /// The writer's handle of the current log file (a new one after each compaction).
    file: u32,
    /// Bytes written or queued to the current file: the offset of the next record.
    log_len: u64,
    /// Length of the compacted image of the live consumers.
    live_len: u64,
    compact_min: u64,
    next_id: u64,
    consumers: HashMap<Arc<str>, Entry>,
    stopped: bool,
    /// Writes queued so far, and how many of them a completed `sync` covers: a `sync` with
    /// nothing new to cover returns at once (stopping every consumer of a stream one after the
    /// other costs one wait, not one per consumer).
    queued: u64,
    synced: Arc<AtomicU64>,
}

/// The consumers of one stream in one log file. See the module docs.
pub struct SharedConsumerLog {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for SharedConsumerLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("SharedConsumerLog")
            .field("dir", &inner.dir)
            .field("consumers", &inner.consumers.len())
            .finish()
    }
}

/// One consumer of a [`SharedConsumerLog`]: its [`ConsumerStore`].
pub struct SharedConsumer {
    log: Arc<SharedConsumerLog>,
    slot: Arc<Slot>,
    stopped: AtomicBool,
}

impl std::fmt::Debug for SharedConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedConsumer").field("id", &self.slot.id).finish()
    }
}

/// Blocks until the writes a sync covers are durable.
type SyncWait = Box<dyn FnOnce() -> Result<()> + Send>;

fn invalid(what: String) -> StoreError {
    StoreError::InvalidConsumer(what)
}

/// Refuses a record the u32 length field cannot describe.
fn check_record_len(len: usize) -> Result<()> {
    if len > u32::MAX as usize {
        return Err(invalid(format!("a record of {len} bytes is too large")));
    }
    Ok(())
}

fn entry_len(name: &str, meta_len: usize, state: &ConsumerState) -> u64 {
    (format::add_len(name, meta_len) + format::full_len(state)) as u64
}

impl SharedConsumerLog {
    /// Opens (or creates) the log in folder `dir` on the real file system.
    pub fn open(engine: &Engine, dir: &Path, sync: SyncPolicy) -> Result<OpenedLog> {
        Self::open_on(engine, Arc::new(RealIo), dir, sync, Affinity::Any)
    }

    /// Opens (or creates) the log in folder `dir`, written by the writer thread `affinity`
    /// names (see [`Affinity`]).
    pub fn open_beside(
        engine: &Engine,
        dir: &Path,
        sync: SyncPolicy,
        affinity: Affinity,
    ) -> Result<OpenedLog> {
        Self::open_on(engine, Arc::new(RealIo), dir, sync, affinity)
    }

    /// Opens (or creates) the log in folder `dir` through `io`. A torn tail is cut off; at
    /// damage replay stops, the file is saved aside and cut there (see [`LogDamage`]).
    pub fn open_with(engine: &Engine, io: Arc<dyn Io>, dir: &Path, sync: SyncPolicy) -> Result<OpenedLog> {
        Self::open_on(engine, io, dir, sync, Affinity::Any)
    }

    fn open_on(
        engine: &Engine,
        io: Arc<dyn Io>,
        dir: &Path,
        sync: SyncPolicy,
        affinity: Affinity,
    ) -> Result<OpenedLog> {
        crate::file::io::ensure_dir(&*io, dir)?;
        let (path, tmp) = (dir.join(SHARED_LOG), dir.join(TMP));
        if io.exists(&tmp) {
            // A compaction that never got renamed into place.
            io.remove_file(&tmp)?;
        }
        let data = if io.exists(&path) { io.read_all(&path)? } else { Vec::new() };
        let replay = format::replay(&data);
        let valid = replay.valid as u64;
        let damage = match replay.end {
            End::Clean => None,
            End::Torn => None,
            End::Damaged => Some(LogDamage {
                offset: valid,
                bytes: data.len() as u64 - valid,
                saved_as: save_damaged(&*io, dir, &data)?,
            }),
        };
        if replay.end != End::Clean && valid > 0 {
            let f = io.open(&path, false)?;
            f.set_len(valid)?;
            f.sync_data()?;
        }
        drop(data);
        let writer = engine.shared.writer(affinity).ok_or(StoreError::Closed)?;
        let channel = Channel::new(writer, io, dir.to_path_buf(), sync, 0);
        let mut log_len = valid;
        if valid == 0 {
            let mut header = Vec::with_capacity(format::HEADER_LEN);
            format::encode_header(&mut header, replay.next_id);
            log_len = header.len() as u64;
            channel
                .push_all([Op::Create { file: 1, path }, Op::Write { file: 1, offset: 0, bytes: header }])?;
        } else {
            channel.push(Op::Open { file: 1, path })?;
        }
        let mut inner = Inner {
            channel,
            dir: dir.to_path_buf(),
            file: 1,
            log_len,
            live_len: format::HEADER_LEN as u64,
            compact_min: COMPACT_MIN,
            next_id: replay.next_id,
            consumers: HashMap::with_capacity(replay.consumers.len()),
            stopped: false,
            queued: u64::from(valid == 0),
            synced: Arc::default(),
        };
        let mut restored = Vec::with_capacity(replay.consumers.len());
        for (id, c) in replay.consumers {
            inner.live_len += entry_len(&c.name, c.meta.len(), &c.state);
            let state = Mutex::new(SlotState { state: c.state, removed: false });
            let slot = Arc::new(Slot { id, policy: c.policy, state });
            inner.consumers.insert(
                c.name.as_str().into(),
                Entry { slot: Arc::clone(&slot), meta: MetaAt::new(c.meta_at as u64, c.meta.len()) },
            );
            restored.push((c.name, c.meta, slot));
        }
        inner.maybe_compact()?;
        let log = Arc::new(SharedConsumerLog { inner: Mutex::new(inner) });
        let consumers = restored
            .into_iter()
            .map(|(name, meta, slot)| RestoredConsumer { name, meta, consumer: log.handle(slot) })
            .collect();
        Ok(OpenedLog { log, consumers, damage })
    }

    fn handle(self: &Arc<Self>, slot: Arc<Slot>) -> Arc<SharedConsumer> {
        Arc::new(SharedConsumer { log: Arc::clone(self), slot, stopped: AtomicBool::new(false) })
    }

    /// Adds consumer `name` with an empty state: one record, queued at once (never blocks on
    /// disk). `meta` is kept as is (the caller's config, creation time...). `done` fires with
    /// `Ok(id)` once the record is durable under the log's sync policy (after an fsync under
    /// `Always`), in order with every other completion of the log; on an error return it is
    /// dropped uncalled.
    pub fn add(
        self: &Arc<Self>,
        name: &str,
        meta: Vec<u8>,
        policy: AckPolicy,
        done: Option<Completion>,
    ) -> Result<Arc<SharedConsumer>> {
        if name.len() > u16::MAX as usize {
            return Err(invalid(format!("a name of {} bytes is too long", name.len())));
        }
        check_record_len(format::add_len(name, meta.len()))?;
        let mut inner = self.inner.lock();
        inner.writable()?;
        if inner.consumers.contains_key(name) {
            return Err(StoreError::ConsumerExists(name.to_string()));
        }
        let id = inner.next_id;
        let mut bytes = Vec::with_capacity(format::add_len(name, meta.len()));
        format::encode_add(&mut bytes, id, policy, name, &meta);
        let meta_at = MetaAt::new(inner.log_len + format::add_meta_offset(name) as u64, meta.len());
        inner.append(bytes, done.map(|d| (d, id)))?;
        inner.next_id += 1;
        let slot = Arc::new(Slot { id, policy, state: Mutex::default() });
        inner.live_len += entry_len(name, meta.len(), &ConsumerState::default());
        inner.consumers.insert(name.into(), Entry { slot: Arc::clone(&slot), meta: meta_at });
        inner.maybe_compact()?;
        drop(inner);
        Ok(self.handle(slot))
    }

    /// A new handle on live consumer `name` (handles of one consumer share its state).
    pub fn consumer(self: &Arc<Self>, name: &str) -> Option<Arc<SharedConsumer>> {
        let slot = Arc::clone(&self.inner.lock().consumers.get(name)?.slot);
        Some(self.handle(slot))
    }

    /// The meta of consumer `name`, read back from the log. Blocks until the log's writer
    /// thread has written it and read it back (not for async contexts; [`Self::contains`]
    /// answers from memory). `None` when there is no such consumer or the read failed.
    pub fn meta(&self, name: &str) -> Option<Vec<u8>> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        {
            let inner = self.inner.lock();
            let at = inner.consumers.get(name)?.meta;
            let reply = Box::new(move |read| {
                let _ = tx.send(read);
            });
            let read = Op::Read { file: inner.file, offset: at.offset, len: at.len as usize, reply };
            inner.channel.push(read).ok()?;
        }
        rx.recv().ok()?.ok()
    }

    /// Fires `done` (with `Ok(0)`) once every record queued so far is durable, writing nothing
    /// itself: for a caller that found nothing to change but must not answer before what it
    /// relies on is on disk.
    pub fn when_durable(&self, done: Completion) -> Result<()> {
        let inner = self.inner.lock();
        inner.writable()?;
        inner.channel.push(Op::Notify { done, value: 0 })
    }

    /// Whether consumer `name` is in the log.
    pub fn contains(&self, name: &str) -> bool {
        self.inner.lock().consumers.contains_key(name)
    }

    /// Number of live consumers.
    pub fn len(&self) -> usize {
        self.inner.lock().consumers.len()
    }

    /// Whether the log holds no consumer.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces the meta of consumer `name` (one record). `done` as for [`Self::add`].
    pub fn set_meta(&self, name: &str, meta: Vec<u8>, done: Option<Completion>) -> Result<()> {
        check_record_len(format::meta_len(meta.len()))?;
        let mut inner = self.inner.lock();
        inner.writable()?;
        let entry =
            inner.consumers.get(name).ok_or_else(|| StoreError::ConsumerNotFound(name.to_string()))?;
        let id = entry.slot.id;
        let old_len = u64::from(entry.meta.len);
        let mut bytes = Vec::with_capacity(format::meta_len(meta.len()));
        format::encode_meta(&mut bytes, id, &meta);
        let meta_at = MetaAt::new(inner.log_len + format::META_OFFSET as u64, meta.len());
        inner.append(bytes, done.map(|d| (d, id)))?;
        inner.live_len = (inner.live_len + meta.len() as u64).saturating_sub(old_len);
        if let Some(e) = inner.consumers.get_mut(name) {
            e.meta = meta_at;
        }
        inner.maybe_compact()
    }

    /// Removes consumer `name` and its state (one record); its handles then return `Closed`.
    /// `done` as for [`Self::add`].
    pub fn remove(&self, name: &str, done: Option<Completion>) -> Result<()> {
        let mut inner = self.inner.lock();
        inner.writable()?;
        let id = match inner.consumers.get(name) {
            Some(e) => e.slot.id,
            None => return Err(StoreError::ConsumerNotFound(name.to_string())),
        };
        let mut bytes = Vec::with_capacity(MIN_RECORD_LEN + 8);
        format::encode_removed(&mut bytes, id);
        inner.append(bytes, done.map(|d| (d, id)))?;
        if let Some((name, e)) = inner.consumers.remove_entry(name) {
            let mut slot = e.slot.state.lock();
            slot.removed = true;
            inner.live_len =
                inner.live_len.saturating_sub(entry_len(&name, e.meta.len as usize, &slot.state));
        }
        inner.maybe_compact()
    }

    /// Blocks until every record queued so far (of every consumer) is durable.
    pub fn sync(&self) -> Result<()> {
        let Some(wait) = self.inner.lock().sync_waiter()? else {
            return Ok(());
        };
        wait()
    }

    /// Flushes and stops: every later write, of every consumer, fails with `Closed`.
    pub fn stop(&self) -> Result<()> {
        let wait = {
            let mut inner = self.inner.lock();
            if inner.stopped {
                return Ok(());
            }
            inner.stopped = true;
            inner.sync_waiter()?
        };
        wait.map_or(Ok(()), |wait| wait())
    }

    /// Whether the log still accepts writes: false once stopped or poisoned by an I/O failure.
    pub fn is_writable(&self) -> bool {
        self.inner.lock().writable().is_ok()
    }

    /// Rewrites the log now as its compacted image (it happens on its own as the log grows).
    pub fn compact(&self) -> Result<()> {
        let mut inner = self.inner.lock();
        inner.writable()?;
        inner.compact()
    }

    /// Lowers (or raises) the length below which the log is never compacted, so tests can
    /// compact small logs.
    #[doc(hidden)]
    pub fn set_compact_min(&self, bytes: u64) {
        self.inner.lock().compact_min = bytes;
    }
}

impl Inner {
    fn writable(&self) -> Result<()> {
        self.channel.writable(self.stopped)
    }

    /// What waits until every write queued so far is durable; `None` when a completed sync
    /// already covers them all.
    fn sync_waiter(&self) -> Result<Option<SyncWait>> {
        if self.channel.is_poisoned() {
            return Err(StoreError::Poisoned);
        }
        let (target, synced) = (self.queued, Arc::clone(&self.synced));
        if synced.load(Ordering::Acquire) >= target {
            return Ok(None);
        }
        let wait = self.channel.sync_waiter();
        Ok(Some(Box::new(move || {
            wait()?;
            synced.fetch_max(target, Ordering::AcqRel);
            Ok(())
        })))
    }

    /// Queues `bytes` (whole records) at the end of the log and `done` right behind them.
    fn append(&mut self, bytes: Vec<u8>, done: Option<(Completion, u64)>) -> Result<()> {
        let len = bytes.len() as u64;
        let write = Op::Write { file: self.file, offset: self.log_len, bytes };
        match done {
            Some((done, value)) => self.channel.push_all([write, Op::Notify { done, value }])?,
            None => self.channel.push(write)?,
        }
        self.log_len += len;
        self.queued += 1;
        Ok(())
    }

    fn maybe_compact(&mut self) -> Result<()> {
        if self.log_len > self.compact_min.max(COMPACT_RATIO.saturating_mul(self.live_len)) {
            self.compact()?;
        }
        Ok(())
    }

    /// Replaces the log by its compacted image: `.tmp` file, fsync, rename, folder fsync, all
    /// queued behind every earlier record. States are taken now, under the lock; the metas are
    /// copied from the current file by the writer, which has written them by then.
    fn compact(&mut self) -> Result<()> {
        let old = self.file;
        let mut image_len = format::HEADER_LEN as u64;
        let mut parts = Vec::with_capacity(self.consumers.len());
        for (name, e) in &mut self.consumers {
            let mut state = Vec::new();
            format::encode_full(&mut state, e.slot.id, &e.slot.state.lock().state);
            let meta_len = e.meta.len as usize;
            let part_len = format::add_len(name, meta_len) + state.len();
            parts.push(ImagePart {
                id: e.slot.id,
                policy: e.slot.policy,
                name: Arc::clone(name),
                meta: e.meta,
                state,
            });
            e.meta = MetaAt::new(image_len + format::add_meta_offset(name) as u64, meta_len);
            image_len += part_len as u64;
        }
        let next_id = self.next_id;
        let build: BuildBytes = Box::new(move |read: ReadSource<'_>| {
            let mut image = Vec::with_capacity(usize::try_from(image_len).unwrap_or(0));
            format::encode_header(&mut image, next_id);
            for p in parts {
                let meta = read(p.meta.offset, p.meta.len as usize)?;
                format::encode_add(&mut image, p.id, p.policy, &p.name, &meta);
                image.extend_from_slice(&p.state);
            }
            if image.len() as u64 != image_len {
                // Later records would land at wrong offsets: fail the log instead.
                return Err(std::io::Error::other("compacted consumer log has an unexpected length"));
            }
            Ok(image)
        });
        self.file = self.file.wrapping_add(1);
        self.log_len = image_len;
        self.live_len = image_len;
        let (tmp, log) = (self.dir.join(TMP), self.dir.join(SHARED_LOG));
        self.queued += 1;
        self.channel.push_all([
            Op::Create { file: self.file, path: tmp.clone() },
            Op::Build { file: self.file, offset: 0, source: old, build },
            Op::Rename { from: tmp, to: log },
            Op::Close { file: old },
        ])
    }
}

/// Writes `data` (a damaged log) to the first free `consumers.log.damaged-N` and makes it
/// durable before the log is cut.
fn save_damaged(io: &dyn Io, dir: &Path, data: &[u8]) -> Result<PathBuf> {
    let path = (1u32..)
        .map(|n| dir.join(format!("{SHARED_LOG}.damaged-{n}")))
        .find(|p| !io.exists(p))
        .ok_or_else(|| StoreError::Corrupt("no free name for a damaged consumer log".into()))?;
    let f = io.open(&path, true)?;
    f.set_len(0)?;
    f.write_at(data, 0)?;
    f.sync_data()?;
    io.sync_dir(dir)?;
    Ok(path)
}

impl SharedConsumer {
    /// The id the log gave this consumer: unique in the log and never given again (except
    /// ids that damage cut off the log, see [`LogDamage`]).
    pub fn id(&self) -> u64 {
        self.slot.id
    }

    /// Its ack policy (recorded when it was added).
    pub fn policy(&self) -> AckPolicy {
        self.slot.policy
    }

    /// Applies `update` and appends its record.
    fn record(&self, update: Update) -> Result<()> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let len = format::update_len(&update);
        check_record_len(len)?;
        let mut inner = self.log.inner.lock();
        inner.writable()?;
        let mut slot = self.slot.state.lock();
        if slot.removed {
            return Err(StoreError::Closed);
        }
        // Nobody waits for a delivery or ack record: it goes out with the writer's next batch.
        let id = self.slot.id;
        let (file, offset) = (inner.file, inner.log_len);
        inner.log_len +=
            inner.channel.append_lazy(file, offset, |out| format::encode_update(out, id, &update))?;
        inner.queued += 1;
        let before = format::full_len(&slot.state) as u64;
        update.apply(&mut slot.state, self.slot.policy);
        let after = format::full_len(&slot.state) as u64;
        inner.live_len = (inner.live_len + after).saturating_sub(before);
        drop(slot);
        inner.maybe_compact()
    }
}

impl ConsumerStore for SharedConsumer {
    fn update_delivered(&self, dseq: u64, sseq: u64, dc: u64, ts: i64) -> Result<()> {
        self.record(Update::Delivered {
            consumer_seq: dseq,
            stream_seq: sseq,
            delivery_count: dc,
            timestamp: ts,
        })
    }

    fn update_acks(&self, dseq: u64, sseq: u64) -> Result<()> {
        self.record(Update::Acked { consumer_seq: dseq, stream_seq: sseq })
    }

    fn update(&self, state: &ConsumerState) -> Result<()> {
        self.record(Update::Full(state.clone()))
    }

    fn state(&self) -> ConsumerState {
        self.slot.state.lock().state.clone()
    }

    /// Waits for every record of the whole log so far (one barrier serves all consumers).
    fn sync(&self) -> Result<()> {
        self.log.sync()
    }

    /// Stops this handle only: the log and other consumers go on.
    fn stop(&self) -> Result<()> {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.log.sync()
    }
}
