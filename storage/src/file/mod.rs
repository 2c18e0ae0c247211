//! `FileStore`: a stream in a folder of block files. See the crate docs for the format.

pub(crate) mod block;
pub(crate) mod io;
pub(crate) mod record;
pub(crate) mod recovery;
pub(crate) mod sim;
mod store;
pub(crate) mod writer;

pub use store::{FileBackend, FileStore};

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
    /// Bytes written (or queued) so far: the offset of the next record.
    pub len: u64,
}
