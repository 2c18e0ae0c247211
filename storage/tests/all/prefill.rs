//! Block files are prefilled with zeros ahead of their appends and cut to their length when
//! sealed; recovery reads a tail of zeros as the clean end of a block.

use std::path::Path;
use std::sync::Arc;

use jetway_storage::{FileStore, Io, NewMessage, RealIo, StreamConfig, StreamStore};

use crate::common::fast_engine;
use crate::crash_sim::expected_payload;

fn config() -> StreamConfig {
    let mut c = StreamConfig::named("prefill");
    c.block_size = 64 * 1024;
    c
}

/// Block files in `dir` by name, with their lengths.
fn blocks(dir: &Path) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".blk"))
        .map(|e| (e.file_name().to_string_lossy().to_string(), e.metadata().unwrap().len()))
        .collect();
    out.sort();
    out
}

fn trailing_zeros(path: &Path) -> usize {
    std::fs::read(path).unwrap().iter().rev().take_while(|b| **b == 0).count()
}

fn fill(store: &FileStore, upto: u64) {
    for seq in 1..=upto {
        store.append(NewMessage::new("p", expected_payload(seq)), None).unwrap();
    }
    store.sync().unwrap();
}

fn assert_all_there(store: &FileStore, upto: u64) {
    assert_eq!(store.state().lost, None, "nothing is reported lost");
    assert_eq!(store.state().msgs, upto);
    for seq in 1..=upto {
        assert_eq!(store.load(seq).unwrap().payload.as_ref(), expected_payload(seq).as_slice(), "seq {seq}");
    }
}

#[test]
fn the_active_block_is_prefilled_and_sealed_blocks_are_cut_to_their_data() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fast_engine();
    let store = FileStore::open(&engine, dir.path(), config()).unwrap();
    fill(&store, 1500);
    let files = blocks(dir.path());
    assert!(files.len() >= 3, "several blocks: {files:?}");
    let (sealed, active) = files.split_at(files.len() - 1);
    for (name, len) in sealed {
        assert!(*len <= 64 * 1024, "{name} is {len} bytes");
        // A block ends in its last record's 8-byte checksum, whose last bytes may be zeros
        // (1 block in 256 ends in one, which failed this test now and then): only a longer run
        // is prefill left behind.
        let zeros = trailing_zeros(&dir.path().join(name));
        assert!(zeros < 8, "{name} ends with its last record, not {zeros} zeros");
    }
    let active_path = dir.path().join(&active[0].0);
    assert!(trailing_zeros(&active_path) > 1000, "the active block has zeros ahead of its data");
    assert!(active[0].1 <= 64 * 1024, "prefilled never past the block size: {active:?}");
    store.stop().unwrap();

    let reopened = FileStore::open(&engine, dir.path(), config()).unwrap();
    assert_all_there(&reopened, 1500);
    // Appends continue where the data ends, over the zeros.
    reopened.append(NewMessage::new("p", expected_payload(1501)), None).unwrap();
    reopened.stop().unwrap();
    let reopened = FileStore::open(&engine, dir.path(), config()).unwrap();
    assert_all_there(&reopened, 1501);
}

#[test]
fn a_small_stream_costs_no_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fast_engine();
    let store = FileStore::open(&engine, dir.path(), config()).unwrap();
    fill(&store, 3);
    let files = blocks(dir.path());
    assert_eq!(files.len(), 1);
    // Only what a checksum may end in (see above), no prefill.
    assert!(trailing_zeros(&dir.path().join(&files[0].0)) < 8, "{files:?}");
    store.stop().unwrap();
}

#[test]
fn a_sealed_block_left_with_zeros_by_a_crash_is_read_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fast_engine();
    let store = FileStore::open(&engine, dir.path(), config()).unwrap();
    fill(&store, 1500);
    store.stop().unwrap();
    // As if the process died after the next block was created but before the cut was durable.
    let (first, len) = blocks(dir.path())[0].clone();
    let io = RealIo;
    let f = io.open(&dir.path().join(&first), false).unwrap();
    f.set_len(len + 20_000).unwrap();
    f.sync_data().unwrap();
    let reopened = FileStore::open_with(&engine, Arc::new(RealIo), dir.path(), config()).unwrap();
    assert_all_there(&reopened, 1500);
}
