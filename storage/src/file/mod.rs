//! `FileStore`: a stream in a folder of block files. See the crate docs for the format.

pub(crate) mod block;
mod compact;
pub(crate) mod io;
pub(crate) mod record;
pub(crate) mod recovery;
pub(crate) mod sim;
mod store;
mod write_batch;
pub(crate) mod writer;

pub use store::{FileBackend, FileStore};
pub use write_batch::WriteBatch;
pub use writer::MAX_SYNC_BATCH_MSGS;

/// Where a message record is: block, offset and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub(crate) block: u32,
    pub(crate) len: u32,
    pub(crate) offset: u64,
}

/// What the store tracks per block file.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BlockMeta {
    /// Messages in it still in the stream.
    pub live: u64,
    /// Bytes of those messages' records.
    pub live_bytes: u64,
    /// Bytes written (or queued) so far: the offset of the next record.
    pub len: u64,
    /// Lowest and highest sequence of the live messages ever added (a range to search).
    pub min_seq: u64,
    pub max_seq: u64,
    /// A compaction of this block is queued and not yet applied.
    pub compacting: bool,
}

impl BlockMeta {
    pub fn with_len(len: u64) -> Self {
        BlockMeta { len, ..BlockMeta::default() }
    }

    /// Counts a message record of `len` bytes.
    pub fn add(&mut self, seq: u64, len: u64) {
        self.live += 1;
        self.live_bytes += len;
        self.min_seq = if self.min_seq == 0 { seq } else { self.min_seq.min(seq) };
        self.max_seq = self.max_seq.max(seq);
    }

    /// Forgets a message record of `len` bytes.
    pub fn release(&mut self, len: u64) {
        self.live = self.live.saturating_sub(1);
        self.live_bytes = self.live_bytes.saturating_sub(len);
    }
}
