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
//! (u64) then per entry stream seq and count (2 x u64). All little-endian.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::SyncPolicy;
use crate::consumer::state;
use crate::engine::Engine;
use crate::error::{Result, StoreError};
use crate::file::io::{Io, RealIo};
use crate::file::record::{decode, encode_body, kind, u64_at, Record};
use crate::file::writer::{Channel, Op};
use crate::traits::{AckPolicy, ConsumerState, ConsumerStore, PendingAck, SequencePair};

const LOG: &str = "consumer.log";
const TMP: &str = "consumer.log.tmp";
const COMPACT_MIN: u64 = 64 * 1024;

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
    let mut body = Vec::with_capacity(48 + st.pending.len() * 24 + st.redelivered.len() * 16);
    for v in [
        st.delivered.consumer_seq,
        st.delivered.stream_seq,
        st.ack_floor.consumer_seq,
        st.ack_floor.stream_seq,
    ] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    body.extend_from_slice(&(st.pending.len() as u64).to_le_bytes());
    for (s, p) in &st.pending {
        for v in [*s, p.consumer_seq, p.timestamp as u64] {
            body.extend_from_slice(&v.to_le_bytes());
        }
    }
    body.extend_from_slice(&(st.redelivered.len() as u64).to_le_bytes());
    for (s, c) in &st.redelivered {
        body.extend_from_slice(&s.to_le_bytes());
        body.extend_from_slice(&c.to_le_bytes());
    }
    let mut out = Vec::new();
    encode_body(&mut out, kind::CONSUMER_FULL, &body);
    out
}

fn decode_full(b: &[u8]) -> Option<ConsumerState> {
    let mut at = 0;
    let mut next = || {
        let v = u64_at(b, at);
        at += 8;
        v
    };
    let mut st = ConsumerState {
        delivered: SequencePair { consumer_seq: next()?, stream_seq: next()? },
        ack_floor: SequencePair { consumer_seq: next()?, stream_seq: next()? },
        ..ConsumerState::default()
    };
    for _ in 0..next()? {
        let (s, c, t) = (next()?, next()?, next()?);
        st.pending.insert(s, PendingAck { consumer_seq: c, timestamp: t as i64 });
    }
    for _ in 0..next()? {
        let (s, c) = (next()?, next()?);
        st.redelivered.insert(s, c);
    }
    Some(st)
}

/// Replays a log; returns the state and the length of the valid prefix.
fn replay(data: &[u8], policy: AckPolicy) -> (ConsumerState, u64, u64) {
    let mut st = ConsumerState::default();
    let (mut pos, mut full_len) = (0, 0);
    while let Ok((Record::Consumer { kind: k, body }, len)) = decode(data.get(pos..).unwrap_or_default()) {
        let b = data.get(pos..pos + len).and_then(|r| r.get(body)).unwrap_or_default();
        let f = |i: usize| u64_at(b, i * 8).unwrap_or(0);
        match k {
            kind::CONSUMER_FULL => match decode_full(b) {
                Some(full) => {
                    st = full;
                    full_len = len as u64;
                }
                None => break,
            },
            kind::CONSUMER_DELIVERED => state::delivered(&mut st, policy, f(0), f(1), f(2), f(3) as i64),
            kind::CONSUMER_ACK => state::acked(&mut st, policy, f(0), f(1)),
            _ => break,
        }
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
        let writer = engine.shared.writer().ok_or(StoreError::Closed)?;
        let channel = Channel::new(writer, io, dir.to_path_buf(), sync);
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

    fn append(&self, inner: &mut Inner, kind: u8, fields: &[u64]) -> Result<()> {
        if inner.stopped {
            return Err(StoreError::Closed);
        }
        if inner.channel.is_poisoned() {
            return Err(StoreError::Poisoned);
        }
        let body: Vec<u8> = fields.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut bytes = Vec::with_capacity(body.len() + 16);
        encode_body(&mut bytes, kind, &body);
        let len = bytes.len() as u64;
        inner.channel.push(Op::Write { file: inner.file, offset: inner.log_len, bytes })?;
        inner.log_len += len;
        if inner.log_len > COMPACT_MIN.max(4 * inner.full_len) {
            Self::rewrite(inner)?;
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
        let mut inner = self.inner.lock();
        state::delivered(&mut inner.state, self.policy, dseq, sseq, dc, ts);
        self.append(&mut inner, kind::CONSUMER_DELIVERED, &[dseq, sseq, dc, ts as u64])
    }

    fn update_acks(&self, dseq: u64, sseq: u64) -> Result<()> {
        let mut inner = self.inner.lock();
        state::acked(&mut inner.state, self.policy, dseq, sseq);
        self.append(&mut inner, kind::CONSUMER_ACK, &[dseq, sseq])
    }

    fn update(&self, state: &ConsumerState) -> Result<()> {
        let mut inner = self.inner.lock();
        if inner.stopped {
            return Err(StoreError::Closed);
        }
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
