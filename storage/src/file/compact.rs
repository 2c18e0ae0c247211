//! Reclaiming space in sealed blocks: a block whose live messages fill less than half of it
//! is rewritten without its dead message records.
//!
//! The store schedules the rewrite (it knows which records are live) and the writer thread
//! performs it: it copies the header, every live message record and every tombstone, floor and
//! truncate record (removal records keep their order relative to messages, so replay gives the
//! same result), writes `NNNNNNNNNN.blk.tmp`, fsyncs it and renames it over the block; the
//! folder fsync follows with the batch. Until the store applies the new offsets it reads
//! through a handle opened on the old file, which the rename does not disturb. An erase of a
//! message in a block being rewritten waits for the new offsets. Open deletes stray `.tmp`
//! files, so a crash leaves either the old or the new block, both valid.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::core::index::Index;
use crate::error::Result;
use crate::file::block::{block_path, BLOCK_HEADER_LEN};
use crate::file::io::{Io, IoFile};
use crate::file::record::{decode, encode_padding, Record};
use crate::file::store::FileBackend;
use crate::file::writer::Op;
use crate::file::Loc;

/// The outcome of one block rewrite, handed from the writer thread to the store.
#[derive(Debug)]
pub(crate) struct Compacted {
    pub block: u32,
    /// New offset of every message record kept, by sequence.
    pub moved: Vec<(u64, u64)>,
    /// New length of the block file.
    pub len: u64,
    /// False when the block could not be parsed (damaged): it was left as it is.
    pub rewritten: bool,
}

/// Where finished rewrites wait for the store.
pub(crate) type CompactionReports = Arc<Mutex<Vec<Compacted>>>;

/// Writer side: rewrites block `block` at `path` keeping the message records at `live`
/// (sorted offsets). Returns the report and the new file's handle.
pub(crate) fn rewrite_block(
    io: &dyn Io,
    block: u32,
    path: &Path,
    live: &[u64],
) -> std::io::Result<(Compacted, Option<Box<dyn IoFile>>)> {
    let data = io.read_all(path)?;
    let untouched = Compacted { block, moved: Vec::new(), len: data.len() as u64, rewritten: false };
    let Some(header) = data.get(..BLOCK_HEADER_LEN) else {
        return Ok((untouched, None));
    };
    let mut out = Vec::with_capacity(data.len() / 2);
    out.extend_from_slice(header);
    let mut moved = Vec::new();
    let mut pos = BLOCK_HEADER_LEN;
    while pos < data.len() {
        let rest = data.get(pos..).unwrap_or_default();
        let Ok((rec, len)) = decode(rest) else {
            return Ok((untouched, None));
        };
        let keep = match rec {
            Record::Msg { seq, .. } => {
                let live = live.binary_search(&(pos as u64)).is_ok();
                if live {
                    moved.push((seq, out.len() as u64));
                }
                live
            }
            Record::Padding | Record::Consumer { .. } => false,
            Record::Tombstone(_) | Record::Floor(_) | Record::Truncate(_) => true,
        };
        if keep {
            out.extend_from_slice(rest.get(..len).unwrap_or_default());
        }
        pos += len;
    }
    let tmp = path.with_extension("blk.tmp");
    let f = io.open(&tmp, true)?;
    f.set_len(0)?;
    f.write_at(&out, 0)?;
    f.sync_data()?;
    io.rename(&tmp, path)?;
    Ok((Compacted { block, moved, len: out.len() as u64, rewritten: true }, Some(f)))
}

impl FileBackend {
    /// Notes that `block` lost a message; it may now be worth rewriting.
    pub(crate) fn consider_compaction(&mut self, block: u32) {
        let Some(meta) = self.blocks.get(&block) else {
            return;
        };
        let used = meta.len.saturating_sub(BLOCK_HEADER_LEN as u64);
        if block != self.active
            && !meta.compacting
            && meta.len >= self.compact_min
            && meta.live_bytes * 2 < used
            && self.candidates.last() != Some(&block)
        {
            self.candidates.push(block);
        }
    }

    /// Store side, at the start of every operation: applies finished rewrites and schedules
    /// the ones now due.
    pub(crate) fn run_compactions(&mut self, index: &mut Index<Loc>) -> Result<()> {
        let finished = std::mem::take(&mut *self.compaction_reports.lock());
        for report in finished {
            self.apply_compaction(index, report)?;
        }
        if self.candidates.is_empty() {
            return Ok(());
        }
        let mut candidates = std::mem::take(&mut self.candidates);
        candidates.sort_unstable();
        candidates.dedup();
        for id in candidates {
            let Some(meta) = self.blocks.get(&id) else {
                continue;
            };
            if id == self.active || meta.compacting {
                continue;
            }
            let mut live: Vec<u64> = index
                .msgs
                .range(meta.min_seq..=meta.max_seq.max(meta.min_seq))
                .filter(|(_, e)| e.loc.block == id)
                .map(|(_, e)| e.loc.offset)
                .collect();
            live.sort_unstable();
            // Pin the current file: reads use it until the new offsets are applied.
            self.reader(id)?;
            self.channel.push(Op::Compact {
                file: id,
                path: block_path(&self.dir, id),
                live,
                report: Arc::clone(&self.compaction_reports),
            })?;
            if let Some(meta) = self.blocks.get_mut(&id) {
                meta.compacting = true;
            }
        }
        Ok(())
    }

    fn apply_compaction(&mut self, index: &mut Index<Loc>, report: Compacted) -> Result<()> {
        let block = report.block;
        let erases: Vec<(u32, u64, u32, u64)> = {
            let (mine, others) =
                std::mem::take(&mut self.deferred_erases).into_iter().partition(|e| e.0 == block);
            self.deferred_erases = others;
            mine
        };
        let Some(meta) = self.blocks.get_mut(&block) else {
            return Ok(());
        };
        // A damaged block stays marked, so it is not retried on every removal.
        meta.compacting = !report.rewritten;
        meta.len = report.len;
        let moved: HashMap<u64, u64> = report.moved.into_iter().collect();
        for (seq, offset) in &moved {
            if let Some(e) = index.msgs.get_mut(seq) {
                if e.loc.block == block {
                    e.loc.offset = *offset;
                }
            }
        }
        if report.rewritten {
            self.forget_reads(block);
        }
        for (_, seq, len, old_offset) in erases {
            let offset = if report.rewritten { moved.get(&seq).copied() } else { Some(old_offset) };
            if let Some(offset) = offset {
                self.overwrite(block, offset, encode_padding(len as usize))?;
            }
        }
        Ok(())
    }
}
