//! Open: rebuild the index by replaying every block in order.
//!
//! Replay applies records in log order (block by block, record by record): a message is
//! inserted, a tombstone removes one sequence, a floor every sequence below it, a truncate
//! every sequence above it. A torn tail of the last block is truncated; a tail of zeros in any
//! block is prefilled space and ends it cleanly. A damaged region elsewhere (bad checksum,
//! impossible length, zeroed bytes followed by records) is skipped by scanning for the
//! next valid record; its bytes and the sequences that vanished with it are reported as lost.
//! Nothing read from disk can make this panic.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use crate::core::index::{Entry, Index};
use crate::error::Result;
use crate::file::block::{block_path, parse_block_name, BlockHeader, BLOCK_HEADER_LEN};
use crate::file::io::Io;
use crate::file::record::{decode, Record};
use crate::file::{BlockMeta, Loc};
use crate::message::{stored_size_in, SizeModel};
use crate::state::LostData;

/// Most lost sequences listed individually.
const MAX_LOST_LISTED: usize = 100_000;

/// What open found.
pub(crate) struct Recovered {
    pub index: Index<Loc>,
    pub blocks: BTreeMap<u32, BlockMeta>,
    /// The block to append to, if the last block is healthy.
    pub appendable: Option<u32>,
    pub lost: Option<LostData>,
}

struct Replay {
    index: Index<Loc>,
    blocks: BTreeMap<u32, BlockMeta>,
    last_seq: u64,
    floor: u64,
    lost_bytes: u64,
    /// Sequence ranges that may have been in damaged regions (inclusive).
    gaps: Vec<(u64, u64)>,
    /// Start of a gap waiting for the next good message.
    open_gap: Option<u64>,
    last_msg_seq: u64,
    removed: HashSet<u64>,
}

impl Replay {
    fn drop_msg(&mut self, seq: u64) {
        if let Some(e) = self.index.remove(seq) {
            if let Some(b) = self.blocks.get_mut(&e.loc.block) {
                b.release(u64::from(e.loc.len));
            }
        }
        if self.open_gap.is_some() || !self.gaps.is_empty() {
            self.removed.insert(seq);
        }
    }

    fn damaged(&mut self, bytes: u64) {
        self.lost_bytes += bytes;
        if self.open_gap.is_none() {
            self.open_gap = Some(self.last_msg_seq + 1);
        }
    }

    fn apply(&mut self, block: u32, offset: u64, data: &[u8], rec: Record, len: usize) {
        match rec {
            Record::Msg { seq, timestamp, expires, subject, headers, payload } => {
                if let Some(start) = self.open_gap.take() {
                    if seq > start {
                        self.gaps.push((start, seq - 1));
                    }
                }
                self.last_msg_seq = seq;
                if seq < self.floor || seq == 0 {
                    return;
                }
                self.drop_msg(seq);
                let subject = std::str::from_utf8(data.get(subject).unwrap_or_default()).unwrap_or_default();
                let headers = headers.and_then(|h| data.get(h));
                let size = stored_size_in(SizeModel::File, subject, headers, payload.len());
                let entry = Entry {
                    subject: self.index.intern(subject),
                    timestamp,
                    size,
                    expires,
                    loc: Loc { block, offset, len: len as u32 },
                };
                self.index.insert(seq, entry);
                self.last_seq = self.last_seq.max(seq);
                if let Some(b) = self.blocks.get_mut(&block) {
                    b.add(seq, len as u64);
                }
            }
            Record::Tombstone(seq) => {
                // The message may have been erased: its tombstone still proves the sequence.
                self.last_seq = self.last_seq.max(seq);
                self.drop_msg(seq);
            }
            Record::Floor(f) => self.raise_floor(f),
            Record::Truncate(last) => {
                let doomed: Vec<u64> =
                    self.index.msgs.range(last.saturating_add(1)..).map(|(s, _)| *s).collect();
                for s in doomed {
                    self.drop_msg(s);
                }
                self.last_seq = last;
                self.floor = self.floor.min(last.saturating_add(1));
            }
            Record::Padding | Record::Consumer { .. } => {}
        }
    }

    fn raise_floor(&mut self, floor: u64) {
        if floor <= self.floor {
            return;
        }
        self.floor = floor;
        self.last_seq = self.last_seq.max(floor.saturating_sub(1));
        let doomed: Vec<u64> = self.index.msgs.range(..floor).map(|(s, _)| *s).collect();
        for s in doomed {
            self.drop_msg(s);
        }
    }

    /// Replays one block's records; returns the length of its valid prefix.
    fn scan(&mut self, block: u32, data: &[u8], is_last: bool) -> (u64, bool) {
        let mut pos = BLOCK_HEADER_LEN;
        let mut torn = false;
        while pos < data.len() {
            let rest = data.get(pos..).unwrap_or_default();
            match decode(rest) {
                Ok((rec, len)) => {
                    let body = rest.get(..len).unwrap_or_default();
                    self.apply(block, pos as u64, body, rec, len);
                    pos += len;
                }
                // Zeros to the end: space prefilled ahead of appends (see `file::writer`).
                Err(_) if rest.iter().all(|b| *b == 0) => break,
                Err(_) => match next_valid(data, pos + 1) {
                    Some(next) => {
                        self.damaged((next - pos) as u64);
                        pos = next;
                    }
                    None => {
                        if is_last {
                            // Nothing valid follows: a torn tail, never acknowledged.
                            torn = true;
                        } else {
                            self.damaged((data.len() - pos) as u64);
                        }
                        break;
                    }
                },
            }
        }
        (pos.min(data.len()) as u64, torn)
    }
}

/// The offset of the next decodable record at or after `from`.
fn next_valid(data: &[u8], from: usize) -> Option<usize> {
    (from..data.len()).find(|at| decode(data.get(*at..).unwrap_or_default()).is_ok())
}

/// Rebuilds a stream's index from the block files in `dir`.
pub(crate) fn recover(io: &dyn Io, dir: &Path, first_seq: u64) -> Result<Recovered> {
    for name in io.list_dir(dir)? {
        if name.ends_with(".tmp") {
            // A compaction or rewrite that never got renamed into place.
            io.remove_file(&dir.join(name))?;
        }
    }
    let mut ids: Vec<u32> = io.list_dir(dir)?.iter().filter_map(|n| parse_block_name(n)).collect();
    ids.sort_unstable();
    let mut r = Replay {
        index: Index::new(first_seq),
        blocks: BTreeMap::new(),
        last_seq: first_seq.saturating_sub(1),
        floor: 0,
        lost_bytes: 0,
        gaps: Vec::new(),
        open_gap: None,
        last_msg_seq: 0,
        removed: HashSet::new(),
    };
    let mut appendable = None;
    for (i, id) in ids.iter().enumerate() {
        let is_last = i + 1 == ids.len();
        let path = block_path(dir, *id);
        let data = io.read_all(&path)?;
        let header = BlockHeader::decode(&data);
        r.blocks.insert(*id, BlockMeta::with_len(data.len() as u64));
        match header {
            Some(h) => {
                r.last_seq = r.last_seq.max(h.last_seq);
                r.raise_floor(h.floor);
            }
            None if is_last && data.len() < BLOCK_HEADER_LEN => {
                // A block whose creation was torn: it never held an acknowledged record.
                r.blocks.remove(id);
                io.remove_file(&path)?;
                continue;
            }
            None => r.damaged(BLOCK_HEADER_LEN.min(data.len()) as u64),
        }
        let (valid, torn) = r.scan(*id, &data, is_last);
        if torn {
            let f = io.open(&path, false)?;
            f.set_len(valid)?;
            f.sync_data()?;
        }
        if let Some(b) = r.blocks.get_mut(id) {
            b.len = valid;
        }
        if is_last && header.is_some() {
            appendable = Some(*id);
        }
    }
    if let Some(start) = r.open_gap.take() {
        if r.last_seq >= start {
            r.gaps.push((start, r.last_seq));
        }
    }
    let mut lost = None;
    if r.lost_bytes > 0 {
        let mut msgs = Vec::new();
        for (a, b) in &r.gaps {
            for seq in *a.max(&r.floor)..=*b {
                if msgs.len() >= MAX_LOST_LISTED {
                    break;
                }
                if !r.index.msgs.contains_key(&seq) && !r.removed.contains(&seq) {
                    msgs.push(seq);
                }
            }
        }
        lost = Some(LostData { msgs, bytes: r.lost_bytes });
    }
    let mut index = r.index;
    index.last_seq = r.last_seq;
    if let Some(first) = index.msgs.keys().next() {
        index.first_seq = *first;
    } else {
        index.first_seq =
            if index.last_seq == 0 && r.floor <= 1 { 0 } else { (index.last_seq + 1).max(r.floor) };
        index.last_seq = index.last_seq.max(index.first_seq.saturating_sub(1));
    }
    Ok(Recovered { index, blocks: r.blocks, appendable, lost })
}
