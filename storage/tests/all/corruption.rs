//! Damaged files: each opens cleanly, reports what was lost, and keeps everything else.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jetway_storage::{
    AckPolicy, ConsumerStore, FileStore, Io, NewMessage, OpenedLog, RealIo, SharedConsumerLog, SimIo,
    StreamConfig, StreamStore, SubjectFilter, SyncPolicy,
};

use crate::common::fast_engine;
use crate::crash_sim::expected_payload;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// A stream of `n` messages in blocks of `block_size` bytes, cleanly closed.
    fn new(n: u64, block_size: u64) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let engine = fast_engine();
        let store = FileStore::open(&engine, &dir.path().join("s"), cfg(block_size)).unwrap();
        for seq in 1..=n {
            store.append(NewMessage::new("fix", expected_payload(seq)), None).unwrap();
        }
        store.stop().unwrap();
        Fixture { dir }
    }
    fn blocks(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> =
            std::fs::read_dir(self.dir.path().join("s")).unwrap().map(|e| e.unwrap().path()).collect();
        v.sort();
        v
    }
    fn open(&self, block_size: u64) -> FileStore {
        let engine = Box::leak(Box::new(fast_engine()));
        FileStore::open(engine, &self.dir.path().join("s"), cfg(block_size)).unwrap()
    }
}

fn cfg(block_size: u64) -> StreamConfig {
    let mut c = StreamConfig::named("fix");
    c.block_size = block_size;
    c
}

fn readable(store: &FileStore) -> Vec<u64> {
    let st = store.state();
    (st.first_seq..=st.last_seq)
        .filter(|s| {
            store.load(*s).map(|m| m.payload.as_ref() == expected_payload(*s).as_slice()).unwrap_or(false)
        })
        .collect()
}

/// Offset of the record of `seq` in a block (found by its text).
fn offset_of(data: &[u8], seq: u64) -> usize {
    let needle = format!("message-{seq}-");
    data.windows(needle.len()).position(|w| w == needle.as_bytes()).unwrap()
}

#[test]
fn bit_flip_mid_block_loses_only_that_message() {
    let f = Fixture::new(100, 1 << 20);
    let block = &f.blocks()[0];
    let mut data = std::fs::read(block).unwrap();
    let at = offset_of(&data, 50);
    data[at + 3] ^= 0x10;
    std::fs::write(block, data).unwrap();
    let s = f.open(1 << 20);
    let lost = s.state().lost.expect("damage reported");
    assert_eq!(lost.msgs, vec![50]);
    assert!(lost.bytes > 0);
    let expect: Vec<u64> = (1..=100).filter(|s| *s != 50).collect();
    assert_eq!(readable(&s), expect);
    assert_eq!(s.state().last_seq, 100);
}

#[test]
fn truncation_mid_record_is_a_torn_tail() {
    let f = Fixture::new(30, 1 << 20);
    let block = &f.blocks()[0];
    let data = std::fs::read(block).unwrap();
    let at = offset_of(&data, 30);
    std::fs::write(block, &data[..at + 5]).unwrap();
    let s = f.open(1 << 20);
    assert_eq!(s.state().lost, None, "a torn tail is not damage");
    assert_eq!(readable(&s), (1..=29).collect::<Vec<_>>());
    assert_eq!(s.append(NewMessage::new("fix", expected_payload(30)), None).unwrap(), 30);
    s.stop().unwrap();
    let s = f.open(1 << 20);
    assert_eq!(readable(&s), (1..=30).collect::<Vec<_>>());
}

#[test]
fn zeroed_block_is_reported_and_others_survive() {
    let f = Fixture::new(200, 4096);
    let blocks = f.blocks();
    assert!(blocks.len() >= 4);
    let victim = &blocks[1];
    let len = std::fs::metadata(victim).unwrap().len() as usize;
    std::fs::write(victim, vec![0u8; len]).unwrap();
    let s = f.open(4096);
    let lost = s.state().lost.expect("damage reported");
    let ok = readable(&s);
    assert_eq!(ok.len() + lost.msgs.len(), 200, "every message is either readable or reported lost");
    assert!(!lost.msgs.is_empty());
    assert_eq!(s.state().last_seq, 200);
}

#[test]
fn bad_block_header_keeps_the_records() {
    let f = Fixture::new(50, 1 << 20);
    let block = &f.blocks()[0];
    let mut data = std::fs::read(block).unwrap();
    data[2] ^= 0xff;
    std::fs::write(block, data).unwrap();
    let s = f.open(1 << 20);
    assert!(s.state().lost.is_some());
    assert_eq!(readable(&s).len(), 50);
    assert_eq!(s.append(NewMessage::new("fix", expected_payload(51)), None).unwrap(), 51);
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A damaged copy of `data`, in one of four ways picked by `round`: random bytes overwritten,
/// truncated, replaced by garbage, or a zeroed range.
fn damage(rng: &mut XorShift, data: &[u8], round: usize) -> Vec<u8> {
    let mut d = data.to_vec();
    match round % 4 {
        0 => {
            for _ in 0..(rng.next() % 8 + 1) {
                if !d.is_empty() {
                    let i = (rng.next() % d.len() as u64) as usize;
                    d[i] = rng.next() as u8;
                }
            }
        }
        1 => d.truncate((rng.next() % (d.len() as u64 + 1)) as usize),
        2 => d = (0..rng.next() % 5000).map(|_| rng.next() as u8).collect(),
        _ => {
            let a = (rng.next() % (d.len() as u64 + 1)) as usize;
            let b = (a + (rng.next() % 500) as usize).min(d.len());
            d[a..b].fill(0);
        }
    }
    d
}

#[test]
fn arbitrary_bytes_never_make_open_panic() {
    let engine = fast_engine();
    let mut rng = XorShift(0x9e3779b97f4a7c15);
    // Start from a real store image and damage it in random ways.
    let sim = SimIo::new();
    let dir = Path::new("/s");
    let store = FileStore::open_with(&engine, Arc::new(sim.clone()), dir, cfg(2048)).unwrap();
    for seq in 1..=60 {
        store.append(NewMessage::new("r", expected_payload(seq)), None).unwrap();
    }
    store.remove(7, false).unwrap();
    store.stop().unwrap();
    let names = sim.list_dir(dir).unwrap();
    let image: Vec<(String, Vec<u8>)> =
        names.iter().map(|n| (n.clone(), sim.read_all(&dir.join(n)).unwrap())).collect();
    for round in 0..150 {
        let case = SimIo::new();
        case.create_dir_all(dir).unwrap();
        for (name, data) in &image {
            let d = damage(&mut rng, data, round);
            let f = case.open(&dir.join(name), true).unwrap();
            f.write_at(&d, 0).unwrap();
        }
        let s = FileStore::open_with(&engine, Arc::new(case), dir, cfg(2048)).unwrap();
        let st = s.state();
        let mut next = st.first_seq;
        while let Ok(m) = s.load_next(&SubjectFilter::all(), next) {
            next = m.seq + 1;
        }
        s.append(NewMessage::new("after", "x"), None).unwrap();
    }
    let _ = RealIo;
}

/// A shared consumer log of ten consumers (two records each after the header), cleanly closed.
struct SharedFixture {
    dir: tempfile::TempDir,
}

impl SharedFixture {
    fn new() -> SharedFixture {
        let dir = tempfile::tempdir().unwrap();
        let engine = fast_engine();
        let log = SharedConsumerLog::open(&engine, dir.path(), SyncPolicy::Always).unwrap().log;
        for i in 0..10u64 {
            let c = log
                .add(&format!("c{i}"), format!("meta-{i}").into_bytes(), AckPolicy::Explicit, None)
                .unwrap();
            c.update_delivered(1, 100 + i, 1, 0).unwrap();
        }
        log.stop().unwrap();
        SharedFixture { dir }
    }
    fn path(&self) -> PathBuf {
        self.dir.path().join("consumers.log")
    }
    fn open(&self) -> OpenedLog {
        let engine = Box::leak(Box::new(fast_engine()));
        SharedConsumerLog::open(engine, self.dir.path(), SyncPolicy::Always).unwrap()
    }
}

fn names(opened: &OpenedLog) -> Vec<String> {
    opened.consumers.iter().map(|c| c.name.clone()).collect()
}

fn first_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("c{i}")).collect()
}

/// Offsets of the records of a log, from their length fields.
fn record_offsets(data: &[u8]) -> Vec<usize> {
    let mut at = 0;
    let mut out = Vec::new();
    while at + 4 <= data.len() {
        out.push(at);
        at += u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
    }
    out
}

#[test]
fn shared_log_cut_mid_record_is_a_torn_tail() {
    let f = SharedFixture::new();
    let data = std::fs::read(f.path()).unwrap();
    let last = *record_offsets(&data).last().unwrap();
    std::fs::write(f.path(), &data[..last + 11]).unwrap();
    let opened = f.open();
    assert_eq!(opened.damage, None, "a torn tail is not damage");
    assert_eq!(names(&opened), first_names(10));
    assert_eq!(opened.consumers[9].consumer.state().delivered.stream_seq, 0, "its last update was cut");
    assert_eq!(std::fs::metadata(f.path()).unwrap().len(), last as u64, "the tail is cut off");
    opened.log.add("after", Vec::new(), AckPolicy::All, None).unwrap();
    opened.log.stop().unwrap();
    let again = f.open();
    assert_eq!(again.damage, None);
    assert_eq!(names(&again).last().map(String::as_str), Some("after"));
}

#[test]
fn shared_log_zeroed_tail_is_a_torn_tail() {
    let f = SharedFixture::new();
    let mut data = std::fs::read(f.path()).unwrap();
    data.extend_from_slice(&[0u8; 4096]);
    std::fs::write(f.path(), &data).unwrap();
    let opened = f.open();
    assert_eq!(opened.damage, None);
    assert_eq!(names(&opened), first_names(10));
    assert_eq!(opened.consumers[9].consumer.state().delivered.stream_seq, 109);
}

#[test]
fn shared_log_bit_flip_stops_replay_and_keeps_a_copy() {
    let f = SharedFixture::new();
    let mut data = std::fs::read(f.path()).unwrap();
    // Records: header, then add and delivered per consumer; damage the add of c4.
    let at = record_offsets(&data)[1 + 2 * 4];
    data[at + 20] ^= 0x10;
    std::fs::write(f.path(), &data).unwrap();
    let opened = f.open();
    let damage = opened.damage.clone().expect("damage reported");
    assert_eq!((damage.offset, damage.bytes), (at as u64, (data.len() - at) as u64));
    assert_eq!(std::fs::read(&damage.saved_as).unwrap(), data, "the damaged file is kept as found");
    assert_eq!(names(&opened), first_names(4), "replay stops at the damage");
    assert_eq!(opened.consumers[3].consumer.state().delivered.stream_seq, 103);
    assert_eq!(opened.consumers[3].meta, b"meta-3");
    opened.log.add("after", Vec::new(), AckPolicy::All, None).unwrap();
    opened.log.stop().unwrap();
    let again = f.open();
    assert_eq!(again.damage, None, "the cut log is healthy");
    assert_eq!(names(&again), [first_names(4), vec!["after".to_string()]].concat());
}

#[test]
fn arbitrary_bytes_never_make_shared_log_open_panic() {
    let engine = fast_engine();
    let mut rng = XorShift(0x2545f4914f6cdd1d);
    let sim = SimIo::new();
    let dir = Path::new("/c");
    let log =
        SharedConsumerLog::open_with(&engine, Arc::new(sim.clone()), dir, SyncPolicy::Always).unwrap().log;
    for i in 0..40u64 {
        let c =
            log.add(&format!("c{i}"), vec![i as u8; (i * 7 % 50) as usize], AckPolicy::All, None).unwrap();
        c.update_delivered(1, i, 1, 0).unwrap();
        if i % 5 == 0 {
            log.remove(&format!("c{}", i / 2), None).unwrap();
        }
    }
    log.stop().unwrap();
    let image = sim.read_all(&dir.join("consumers.log")).unwrap();
    for round in 0..200 {
        let d = damage(&mut rng, &image, round);
        let case = SimIo::new();
        case.create_dir_all(dir).unwrap();
        case.open(&dir.join("consumers.log"), true).unwrap().write_at(&d, 0).unwrap();
        let opened =
            SharedConsumerLog::open_with(&engine, Arc::new(case.clone()), dir, SyncPolicy::Always).unwrap();
        let before = names(&opened);
        opened.log.add("after", Vec::new(), AckPolicy::Explicit, None).unwrap();
        opened.log.stop().unwrap();
        let again = SharedConsumerLog::open_with(&engine, Arc::new(case), dir, SyncPolicy::Always).unwrap();
        assert_eq!(again.damage, None, "round {round}: what open left is healthy");
        assert_eq!(names(&again), [before, vec!["after".to_string()]].concat(), "round {round}");
    }
}
