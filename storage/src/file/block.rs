//! Block files: names and the fixed header at the start of each.

use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_64;

use crate::file::record::u64_at;

/// First 8 bytes of every block file.
pub const BLOCK_MAGIC: &[u8; 8] = b"JWBLOCK1";
/// Length of the block header.
pub const BLOCK_HEADER_LEN: usize = 40;
/// File-name suffix of block files.
pub const BLOCK_SUFFIX: &str = ".blk";

/// What a block header says: the stream's first and last sequence when the block was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// Block number (also in the file name).
    pub id: u32,
    /// Every message below this sequence had been removed.
    pub floor: u64,
    /// Last sequence assigned before the block.
    pub last_seq: u64,
}

impl BlockHeader {
    /// The 40 header bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(BLOCK_HEADER_LEN);
        out.extend_from_slice(BLOCK_MAGIC);
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.floor.to_le_bytes());
        out.extend_from_slice(&self.last_seq.to_le_bytes());
        let sum = xxh3_64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Decodes a header; `None` if the bytes are short, of another format or damaged.
    pub fn decode(buf: &[u8]) -> Option<BlockHeader> {
        let head = buf.get(..BLOCK_HEADER_LEN - 8)?;
        if head.get(..8)? != BLOCK_MAGIC || xxh3_64(head) != u64_at(buf, BLOCK_HEADER_LEN - 8)? {
            return None;
        }
        Some(BlockHeader {
            id: u32::from_le_bytes(head.get(8..12)?.try_into().ok()?),
            floor: u64_at(head, 16)?,
            last_seq: u64_at(head, 24)?,
        })
    }
}

/// The path of block `id` in `dir`: zero-padded so names sort like ids.
pub fn block_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:010}{BLOCK_SUFFIX}"))
}

/// The block id a file name stands for, if it is a block file.
pub fn parse_block_name(name: &str) -> Option<u32> {
    let digits = name.strip_suffix(BLOCK_SUFFIX)?;
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = BlockHeader { id: 3, floor: 10, last_seq: 20 };
        let mut b = h.encode();
        assert_eq!(BlockHeader::decode(&b), Some(h));
        b[17] ^= 1;
        assert_eq!(BlockHeader::decode(&b), None);
        assert_eq!(BlockHeader::decode(&b[..10]), None);
    }

    #[test]
    fn names_round_trip() {
        let p = block_path(Path::new("/x"), 42);
        assert_eq!(parse_block_name(p.file_name().unwrap().to_str().unwrap()), Some(42));
        assert_eq!(parse_block_name("42.blk"), None);
        assert_eq!(parse_block_name("0000000042.blk.tmp"), None);
    }
}
