//! A consumer's state in a log file, written through the storage threads.
//!
//! Folder layout: `consumer.log`, a sequence of records framed like stream records (see the
//! crate docs): `CONSUMER_FULL` (the whole state), then `CONSUMER_DELIVERED` (32-byte body:
//! consumer seq, stream seq, delivery count, timestamp) and `CONSUMER_ACK` (16-byte body:
//! consumer seq, stream seq). Each update appends one small record, so an ack costs about
//! 40 bytes whatever the number of pending messages. When the log grows past four times the
//! last full state (and 64 KiB) a new full state is written to `consumer.log.tmp` and renamed
//! over the log. `CONSUMER_FULL` body: delivered (2 x u64), ack floor (2 x u64), pending count
//! (u64) then per pending stream seq, consumer seq, timestamp (3 x u64), redelivered count
//! (u64) then per entry stream seq and count (2 x u64). All little-endian (see
//! `consumer::codec`, shared with the shared log).

use crate::engine::Affinity;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::SyncPolicy;
use crate::consumer::codec::{self, Update};
use crate::engine::Engine;
use crate::error::{Result, StoreError};
use crate::file::io::{Io, RealIo};
use crate::file::record::{decode, encode_with, kind, Record, MIN_RECORD_LEN};
use crate::file::writer::{Channel, Op};
use crate::traits::{AckPolicy, ConsumerState, ConsumerStore};

const LOG: &str = "consumer.log";
const TMP: &str = "consumer.log.tmp";
/// Below this a log is never compacted: each compaction costs two fsyncs and a rename.
const COMPACT_MIN: u64 = 256 * 1024;

struct Inner {
    state: ConsumerState,
    channel: Arc<Channel>,
    dir: PathBuf,
    file: u32,
    log_len: u64,
    full_len: u64,
    stopped: bool,
}

/// Consumer state persisted in a folder.
pub struct FileConsumerStore {
    policy: AckPolicy,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for FileConsumerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileConsumerStore").field("dir", &self.inner.lock().dir).finish()
    }
}

fn encode_full(st: &ConsumerState) -> Vec<u8> {
    let mut out = Vec::with_capacity(codec::state_len(st) + MIN_RECORD_LEN);
    encode_with(&mut out, kind::CONSUMER_FULL, |out| codec::encode_state(out, st));
    out
}

/// Replays a log; returns the state, the length of the valid prefix and the length of the
/// last full-state record. Stops at the first record that does not decode or apply.
fn replay(data: &[u8], policy: AckPolicy) -> (ConsumerState, u64, u64) {
    let mut st = ConsumerState::default();
    let (mut pos, mut full_len) = (0, 0);
    while let Ok((Record::Consumer { kind: k, body }, len)) = decode(data.get(pos..).unwrap_or_default()) {
        let b = data.get(pos..pos + len).and_then(|r| r.get(body)).unwrap_or_default();
        let Some(update) = Update::decode(k, b).filter(|u| u.kind() == k) else {
            break;
        };
        if k == kind::CONSUMER_FULL {
            full_len = len as u64;
        }
        update.apply(&mut st, policy);
        pos += len;
    }
    (st, pos as u64, full_len)
}

impl FileConsumerStore {
    /// Opens (or creates) the consumer state in folder `dir` on the real file system.
    pub fn open(engine: &Engine, dir: &Path, policy: AckPolicy, sync: SyncPolicy) -> Result<Self> {
        Self::open_with(engine, Arc::new(RealIo), dir, policy, sync)
    }

    /// Opens (or creates) the consumer state in `dir` through `io`. A torn tail is dropped.
    pub fn open_with(
        engine: &Engine,
        io: Arc<dyn Io>,
        dir: &Path,
        policy: AckPolicy,
        sync: SyncPolicy,
    ) -> Result<Self> {
        crate::file::io::ensure_dir(&*io, dir)?;
        if io.exists(&dir.join(TMP)) {
            io.remove_file(&dir.join(TMP))?;
        }
        let log = dir.join(LOG);
        let (state, valid, full_len) = if io.exists(&log) {
            let data = io.read_all(&log)?;
            let r = replay(&data, policy);
            if r.1 < data.len() as u64 {
                let f = io.open(&log, false)?;
                f.set_len(r.1)?;
                f.sync_data()?;
            }
            r
        } else {
            (ConsumerState::default(), 0, 0)
        };
        let writer = engine.shared.writer(Affinity::Any).ok_or(StoreError::Closed)?;
        let channel = Channel::new(writer, io, dir.to_path_buf(), sync, 0);
        if valid == 0 {
            channel.push(Op::Create { file: 1, path: log })?;
        } else {
            channel.push(Op::Open { file: 1, path: log })?;
        }
        let inner = Inner {
            state,
            channel,
            dir: dir.to_path_buf(),
            file: 1,
            log_len: valid,
            full_len,
            stopped: false,
        };
        Ok(FileConsumerStore { policy, inner: Mutex::new(inner) })
    }

    /// Applies `update` and appends its record (refused once stopped or poisoned).
    fn record(&self, update: Update) -> Result<()> {
        let mut inner = self.inner.lock();
        inner.channel.writable(inner.stopped)?;
        let (file, offset) = (inner.file, inner.log_len);
        // Nobody waits for a consumer record: it goes out with the writer's next batch.
        let len = inner.channel.append_lazy(file, offset, |out| {
            encode_with(out, update.kind(), |out| update.encode_body(out))
        })?;
        update.apply(&mut inner.state, self.policy);
        inner.log_len += len;
        if inner.log_len > COMPACT_MIN.max(4 * inner.full_len) {
            Self::rewrite(&mut inner)?;
        }
        Ok(())
    }

    /// Replaces the log by one full-state record (tmp file, fsync, rename, folder fsync).
    fn rewrite(inner: &mut Inner) -> Result<()> {
        let full = encode_full(&inner.state);
        let old = inner.file;
        inner.file += 1;
        let (tmp, log) = (inner.dir.join(TMP), inner.dir.join(LOG));
        inner.channel.push(Op::Create { file: inner.file, path: tmp.clone() })?;
        inner.log_len = full.len() as u64;
        inner.full_len = inner.log_len;
        inner.channel.push(Op::Write { file: inner.file, offset: 0, bytes: full })?;
        inner.channel.push(Op::Rename { from: tmp, to: log })?;
        inner.channel.push(Op::Close { file: old })
    }
}

impl ConsumerStore for FileConsumerStore {
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
        let mut inner = self.inner.lock();
        inner.channel.writable(inner.stopped)?;
        inner.state = state.clone();
        Self::rewrite(&mut inner)
    }

    fn state(&self) -> ConsumerState {
        self.inner.lock().state.clone()
    }

    fn sync(&self) -> Result<()> {
        let waiter = self.inner.lock().channel.sync_waiter();
        waiter()
    }

    fn stop(&self) -> Result<()> {
        let waiter = {
            let mut inner = self.inner.lock();
            if inner.stopped {
                return Ok(());
            }
            inner.stopped = true;
            inner.channel.sync_waiter()
        };
        waiter()
    }
}
