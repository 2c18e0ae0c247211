//! The file backend: keeps message records in block files through the writer thread.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::config::{StreamConfig, SyncPolicy};
use crate::core::backend::{Backend, Incoming};
use crate::core::index::{Entry, Index};
use crate::core::stream::Stream;
use crate::core::Store;
use crate::engine::{Engine, Expirable};
use crate::error::{Result, StoreError};
use crate::file::block::{block_path, BlockHeader, BLOCK_HEADER_LEN};
use crate::file::compact::CompactionReports;
use crate::file::io::{Io, IoFile, RealIo};
use crate::file::record::{decode, encode_padding, encode_seq, kind, msg_len, Record, SEQ_RECORD_LEN};
use crate::file::recovery::recover;
use crate::file::writer::{Channel, Op};
use crate::file::{BlockMeta, Loc};
use crate::message::StoredMessage;
use crate::state::LostData;
use crate::traits::Completion;

/// Recent messages kept in memory (always until written, then up to this many bytes...
const CACHE_BYTES: u64 = 8 * 1024 * 1024;
/// ... and for this long, in ns: a consumer keeping up reads a message within milliseconds of
/// its store; an idle stream should not hold megabytes (nor the buffers its messages' bytes
/// share) for the readers that never come.
const CACHE_AGE: i64 = 2_000_000_000;

/// Bytes read from a block at once when a message is not in memory: the messages after it are
/// usually read next (a consumer catching up), and one `pread` then serves hundreds of them.
const READ_AHEAD: usize = 32 * 1024;

/// Bytes of a block read ahead: `bytes` start at `offset` of `block`.
struct ReadAhead {
    block: u32,
    offset: u64,
    bytes: Bytes,
}

impl ReadAhead {
    /// The `len` bytes at `offset` of `block`, when they lie in this buffer.
    fn get(&self, block: u32, offset: u64, len: usize) -> Option<Bytes> {
        let start = usize::try_from(offset.checked_sub(self.offset)?).ok()?;
        (block == self.block && start.checked_add(len)? <= self.bytes.len())
            .then(|| self.bytes.slice(start..start + len))
    }
}

/// Bytes of a cached message counted against [`CACHE_BYTES`].
fn body_len(m: &StoredMessage) -> u64 {
    (m.payload.len() + m.headers.as_ref().map_or(0, Bytes::len)) as u64
}

/// A file store's message bytes: block files written by a storage thread.
pub struct FileBackend {
    io: Arc<dyn Io>,
    pub(crate) dir: PathBuf,
    pub(crate) channel: Arc<Channel>,
    pub(crate) blocks: BTreeMap<u32, BlockMeta>,
    pub(crate) active: u32,
    block_size: u64,
    last_seq: u64,
    pub(crate) readers: Mutex<HashMap<u32, Arc<dyn IoFile>>>,
    /// The last bytes read ahead (written records never change in place, so they stay valid
    /// until their block is rewritten or removed; see `forget_reads`).
    read_ahead: Mutex<Option<ReadAhead>>,
    /// Blocks to rewrite at the next chance (see `file::compact`).
    pub(crate) candidates: Vec<u32>,
    /// Blocks at least this long are worth rewriting.
    pub(crate) compact_min: u64,
    pub(crate) compaction_reports: CompactionReports,
    /// Blocks the writer thread holds open (it opens only what it is told to).
    writer_files: std::collections::BTreeSet<u32>,
    /// Erases waiting for a rewrite of their block: block, seq, record length, old offset.
    pub(crate) deferred_erases: Vec<(u32, u64, u32, u64)>,
    cache: VecDeque<StoredMessage>,
    cache_bytes: u64,
    /// The last queued floor record, which a following floor may overwrite.
    last_floor: Option<(u32, u64)>,
    lost: Option<LostData>,
    stopped: bool,
}

/// A stream store in a folder of block files.
pub type FileStore = Store<FileBackend>;

impl Store<FileBackend> {
    /// Opens (or creates) the stream in folder `dir` on the real file system.
    pub fn open(engine: &Engine, dir: &Path, config: StreamConfig) -> Result<FileStore> {
        Self::open_with(engine, Arc::new(RealIo), dir, config)
    }

    /// Opens (or creates) the stream in folder `dir` through the I/O backend `io`. Recovers
    /// whatever is there; never panics on bad bytes.
    pub fn open_with(
        engine: &Engine,
        io: Arc<dyn Io>,
        dir: &Path,
        config: StreamConfig,
    ) -> Result<FileStore> {
        crate::file::io::ensure_dir(&*io, dir)?;
        let rec = recover(&*io, dir, config.first_seq)?;
        let writer = engine.shared.writer(config.affinity).ok_or(StoreError::Closed)?;
        // Prefilled only where fsyncs are frequent enough for their cost to matter.
        let prefill_cap = if config.sync == SyncPolicy::Always { config.block_size.max(1024) } else { 0 };
        let channel = Channel::new(writer, Arc::clone(&io), dir.to_path_buf(), config.sync, prefill_cap);
        let mut backend = FileBackend {
            io,
            dir: dir.to_path_buf(),
            channel,
            blocks: rec.blocks,
            active: 0,
            block_size: config.block_size.max(1024),
            last_seq: rec.index.last_seq,
            readers: Mutex::new(HashMap::new()),
            read_ahead: Mutex::new(None),
            candidates: Vec::new(),
            compact_min: (config.block_size / 2).max(512),
            compaction_reports: CompactionReports::default(),
            deferred_erases: Vec::new(),
            writer_files: Default::default(),
            cache: VecDeque::new(),
            cache_bytes: 0,
            last_floor: None,
            lost: rec.lost,
            stopped: false,
        };
        match rec.appendable {
            Some(id) => {
                backend.active = id;
                backend.writer_files.insert(id);
                backend.channel.push(Op::Open { file: id, path: block_path(dir, id) })?;
            }
            None => {
                // Never reuse an id: blocks kept after a damaged last one must stay intact.
                backend.active = backend.blocks.keys().next_back().copied().unwrap_or(0);
                backend.new_block(rec.index.first_seq, rec.index.last_seq)?;
            }
        }
        backend.drop_dead_front_blocks()?;
        let store = Store::from_stream(Stream::new(config, rec.index, backend));
        let weak: std::sync::Weak<dyn Expirable> = Arc::downgrade(&store.inner) as _;
        engine.shared.register_expiry(weak);
        Ok(store)
    }
}

impl FileBackend {
    fn path(&self, id: u32) -> PathBuf {
        block_path(&self.dir, id)
    }

    /// Starts block `active + 1` with a header saying `floor` and `last_seq`.
    fn new_block(&mut self, floor: u64, last_seq: u64) -> Result<()> {
        let id = self.active + 1;
        // The full block is sealed at its length: no prefilled zeros stay behind.
        if let Some(len) = self.blocks.get(&self.active).map(|b| b.len) {
            if self.channel.prefills() && self.writer_files.contains(&self.active) {
                self.channel.push(Op::SetLen { file: self.active, len })?;
            }
        }
        let header = BlockHeader { id, floor, last_seq }.encode();
        let path = self.path(id);
        self.channel.push(Op::Create { file: id, path })?;
        self.writer_files.insert(id);
        self.channel.push(Op::Write { file: id, offset: 0, bytes: header })?;
        self.blocks.insert(id, BlockMeta::with_len(BLOCK_HEADER_LEN as u64));
        self.active = id;
        self.last_floor = None;
        Ok(())
    }

    /// Reserves `len` bytes at the end of the active block (rolling to a new one when full).
    fn reserve(&mut self, len: u64, floor_hint: u64) -> Result<(u32, u64)> {
        let cur = self.blocks.get(&self.active).map_or(0, |b| b.len);
        if cur > BLOCK_HEADER_LEN as u64 && cur + len > self.block_size {
            self.new_block(floor_hint, self.last_seq)?;
        }
        let meta = self.blocks.entry(self.active).or_default();
        let offset = meta.len;
        meta.len += len;
        Ok((self.active, offset))
    }

    fn write_seq_record(&mut self, kind: u8, seq: u64) -> Result<()> {
        let mut bytes = Vec::with_capacity(SEQ_RECORD_LEN);
        encode_seq(&mut bytes, kind, seq);
        if kind == kind::FLOOR {
            if let Some((file, offset)) = self.last_floor {
                if self.channel.replace_last_write(file, offset, &bytes) {
                    return Ok(());
                }
            }
        }
        let (file, offset) = self.reserve(SEQ_RECORD_LEN as u64, 0)?;
        // Nobody waits for a removal's record (losing it in a crash brings the message back,
        // never loses one): it goes out with the next append's batch, or within 10 ms.
        self.channel.append_lazy(file, offset, |out| out.extend_from_slice(&bytes))?;
        self.last_floor = (kind == kind::FLOOR).then_some((file, offset));
        Ok(())
    }

    /// Deletes leading blocks without live messages. Safe: a record only ever affects
    /// messages in its own or earlier blocks, so nothing later depends on them.
    fn drop_dead_front_blocks(&mut self) -> Result<()> {
        while let Some((&id, meta)) = self.blocks.first_key_value() {
            if id == self.active || meta.live > 0 {
                break;
            }
            self.blocks.remove(&id);
            self.forget_reads(id);
            self.writer_files.remove(&id);
            self.channel.push(Op::Remove { file: id, path: self.path(id) })?;
        }
        Ok(())
    }

    /// Overwrites bytes in place in any block (erasing a message), opening it if needed.
    pub(crate) fn overwrite(&mut self, block: u32, offset: u64, bytes: Vec<u8>) -> Result<()> {
        if self.writer_files.insert(block) {
            self.channel.push(Op::Open { file: block, path: self.path(block) })?;
        }
        self.channel.push(Op::Write { file: block, offset, bytes })?;
        self.last_floor = None;
        // An erased message's bytes must not linger in memory either.
        self.forget_read_ahead(block);
        Ok(())
    }

    fn release(&mut self, loc: Loc) {
        if let Some(b) = self.blocks.get_mut(&loc.block) {
            b.release(u64::from(loc.len));
        }
        self.consider_compaction(loc.block);
    }

    fn evict_cache(&mut self) {
        self.evict_cache_while(|bytes, _| bytes > CACHE_BYTES);
    }

    /// Drops the oldest cached messages while `evict(cached bytes, message)` says so, never
    /// one not yet written (reads of it are served from here).
    fn evict_cache_while(&mut self, evict: impl Fn(u64, &StoredMessage) -> bool) {
        let written = self.channel.written_seq.load(Ordering::Acquire);
        while let Some(m) = self.cache.front() {
            if m.seq > written || !evict(self.cache_bytes, m) {
                break;
            }
            self.cache_bytes -= body_len(m);
            self.cache.pop_front();
        }
        if self.cache.is_empty() && self.cache.capacity() > 0 {
            self.cache = VecDeque::new();
        }
    }

    fn cached(&self, seq: u64) -> Option<&StoredMessage> {
        self.cache.get(self.cache_index(seq)).filter(|m| m.seq == seq)
    }

    /// Where `seq` is (or would go) in the cache (a consumer reading along loads every message
    /// through here).
    fn cache_index(&self, seq: u64) -> usize {
        match crate::core::seq_map::find_seq(&self.cache, seq, |m| m.seq) {
            Ok(i) | Err(i) => i,
        }
    }

    /// The bytes of the record at `loc`, from the read-ahead buffer or read with the ones after
    /// it.
    fn record_bytes(&self, loc: Loc) -> Result<Bytes> {
        let len = loc.len as usize;
        let mut read_ahead = self.read_ahead.lock();
        if let Some(bytes) = read_ahead.as_ref().and_then(|r| r.get(loc.block, loc.offset, len)) {
            return Ok(bytes);
        }
        let reader = self.reader(loc.block)?;
        let mut buf = vec![0u8; len.max(READ_AHEAD)];
        let done = reader.read_full_at(&mut buf, loc.offset)?;
        if done < len {
            return Err(StoreError::Corrupt(format!(
                "the record at {} of block {} is past its end",
                loc.offset, loc.block
            )));
        }
        buf.truncate(done);
        let bytes = Bytes::from(buf);
        let record = bytes.slice(..len);
        *read_ahead = Some(ReadAhead { block: loc.block, offset: loc.offset, bytes });
        Ok(record)
    }

    /// Drops what was read from `block`: it is being rewritten or removed.
    pub(crate) fn forget_reads(&self, block: u32) {
        self.readers.lock().remove(&block);
        self.forget_read_ahead(block);
    }

    fn forget_read_ahead(&self, block: u32) {
        let mut read_ahead = self.read_ahead.lock();
        if read_ahead.as_ref().is_some_and(|r| r.block == block) {
            *read_ahead = None;
        }
    }

    pub(crate) fn reader(&self, block: u32) -> Result<Arc<dyn IoFile>> {
        let mut readers = self.readers.lock();
        if let Some(r) = readers.get(&block) {
            return Ok(Arc::clone(r));
        }
        let f: Arc<dyn IoFile> = Arc::from(self.io.open(&self.path(block), false)?);
        readers.insert(block, Arc::clone(&f));
        Ok(f)
    }
}

impl Backend for FileBackend {
    type Loc = Loc;
    const SIZE: crate::message::SizeModel = crate::message::SizeModel::File;

    fn writable(&self) -> Result<()> {
        self.channel.writable(self.stopped)
    }

    fn store(&mut self, msg: Incoming, done: Option<Completion>) -> Result<Loc> {
        let len = msg_len(&msg.subject, msg.headers.as_deref(), &msg.payload);
        if msg.subject.len() > u16::MAX as usize || len > u32::MAX as usize {
            return Err(StoreError::MaxMsgSize);
        }
        let (block, offset) = self.reserve(len as u64, 0)?;
        let cached = StoredMessage {
            subject: Arc::clone(&msg.subject),
            headers: msg.headers.clone(),
            payload: msg.payload.clone(),
            seq: msg.seq,
            timestamp: msg.timestamp,
        };
        self.cache_bytes += body_len(&cached);
        self.cache.push_back(cached);
        self.last_seq = self.last_seq.max(msg.seq);
        if let Some(b) = self.blocks.get_mut(&block) {
            b.add(msg.seq, len as u64);
        }
        self.channel.push(Op::Msg { file: block, offset, msg, done })?;
        self.last_floor = None;
        self.evict_cache();
        Ok(Loc { block, offset, len: len as u32 })
    }

    fn load(&self, seq: u64, entry: &Entry<Loc>) -> Result<StoredMessage> {
        if let Some(m) = self.cached(seq) {
            return Ok(m.clone());
        }
        let loc = entry.loc;
        let buf = self.record_bytes(loc)?;
        match decode(&buf) {
            Ok((Record::Msg { seq: s, timestamp, headers, payload, .. }, _)) if s == seq => {
                Ok(StoredMessage {
                    subject: Arc::clone(&entry.subject),
                    headers: headers.map(|h| buf.slice(h)),
                    payload: buf.slice(payload),
                    seq,
                    timestamp,
                })
            }
            _ => Err(StoreError::Corrupt(format!("message {seq} fails its checksum"))),
        }
    }

    fn removed(&mut self, seq: u64, loc: Loc, erase: bool, first_after: u64) -> Result<()> {
        self.release(loc);
        if erase {
            let i = self.cache_index(seq);
            if self.cache.get(i).is_some_and(|m| m.seq == seq) {
                if let Some(m) = self.cache.remove(i) {
                    self.cache_bytes -= body_len(&m);
                }
            }
            if self.blocks.get(&loc.block).is_some_and(|b| b.compacting) {
                self.deferred_erases.push((loc.block, seq, loc.len, loc.offset));
            } else {
                self.overwrite(loc.block, loc.offset, encode_padding(loc.len as usize))?;
            }
        }
        if first_after > seq {
            self.write_seq_record(kind::FLOOR, first_after)?;
        } else {
            self.write_seq_record(kind::TOMBSTONE, seq)?;
        }
        self.drop_dead_front_blocks()
    }

    fn forget(&mut self, _seq: u64, loc: Loc) {
        self.release(loc);
    }

    fn cleared(&mut self, first_seq: u64) -> Result<()> {
        self.last_seq = self.last_seq.max(first_seq.saturating_sub(1));
        self.new_block(first_seq, self.last_seq)?;
        for meta in self.blocks.values_mut() {
            meta.live = 0;
            meta.live_bytes = 0;
        }
        self.cache.clear();
        self.cache_bytes = 0;
        self.drop_dead_front_blocks()
    }

    fn truncated(&mut self, last_seq: u64) -> Result<()> {
        self.last_seq = last_seq;
        while self.cache.back().is_some_and(|m| m.seq > last_seq) {
            if let Some(m) = self.cache.pop_back() {
                self.cache_bytes -= body_len(&m);
            }
        }
        self.write_seq_record(kind::TRUNCATE, last_seq)?;
        self.drop_dead_front_blocks()
    }

    fn sync_waiter(&self) -> Box<dyn FnOnce() -> Result<()> + Send> {
        self.channel.sync_waiter()
    }

    fn maintain(&mut self, index: &mut Index<Loc>) -> Result<()> {
        self.run_compactions(index)
    }

    fn expire_cache(&mut self, now: i64) {
        let stored_before = now.saturating_sub(CACHE_AGE);
        self.evict_cache_while(|_, m| m.timestamp < stored_before);
    }

    fn lost(&self) -> Option<LostData> {
        self.lost.clone()
    }

    fn stop(&mut self) -> Result<()> {
        self.stopped = true;
        self.readers.lock().clear();
        *self.read_ahead.lock() = None;
        Ok(())
    }
}
