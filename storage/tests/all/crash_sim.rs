//! Simulated crashes: only what was fsynced survives (contents, and names whose folder was
//! fsynced), plus torn writes. Every completed append must come back byte-identical and nothing
//! that was never appended may appear.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use jetway_storage::{
    AckPolicy, ConsumerState, ConsumerStore, CrashMode, FileStore, Io, MemConsumerStore, NewMessage,
    SharedConsumer, SharedConsumerLog, SimIo, StoreError, StreamConfig, StreamStore, SubjectFilter,
    SyncPolicy,
};

use crate::common::fast_engine;

/// The payload of sequence `seq` in these tests (its length varies).
pub fn expected_payload(seq: u64) -> Vec<u8> {
    let mut p = format!("message-{seq}-").into_bytes();
    let target = (seq * 37 % 300) as usize;
    while p.len() < target {
        p.push(b'a' + (seq % 26) as u8);
    }
    p
}

fn sim_root() -> SimIo {
    let sim = SimIo::new();
    sim.create_dir_all(Path::new("/data")).unwrap();
    sim.sync_dir(Path::new("/")).unwrap();
    sim
}

fn config() -> StreamConfig {
    let mut c = StreamConfig::named("crash");
    c.block_size = 4096;
    c
}

/// Checks the recovered store against the appends that completed.
fn verify(store: &dyn StreamStore, completed: &[u64], attempted_upto: u64) {
    for seq in completed {
        let m = store.load(*seq).unwrap_or_else(|e| panic!("completed seq {seq} lost: {e}"));
        assert_eq!(m.payload.as_ref(), expected_payload(*seq).as_slice(), "seq {seq} altered");
    }
    let st = store.state();
    assert!(st.last_seq <= attempted_upto, "last seq {} was never appended", st.last_seq);
    let mut next = st.first_seq;
    while let Ok(m) = store.load_next(&SubjectFilter::all(), next) {
        assert_eq!(
            m.payload.as_ref(),
            expected_payload(m.seq).as_slice(),
            "seq {} is not what was appended",
            m.seq
        );
        next = m.seq + 1;
    }
}

#[test]
fn completed_appends_survive_crashes_with_torn_writes() {
    let mut sim = sim_root();
    let dir = Path::new("/data/stream");
    let mut completed_all: Vec<u64> = Vec::new();
    for round in 0..30u64 {
        let engine = fast_engine();
        let io: Arc<dyn Io> = Arc::new(sim.clone());
        let store = FileStore::open_with(&engine, io, dir, config()).unwrap();
        verify(&store, &completed_all, u64::MAX);
        let start = store.state().last_seq + 1;
        let completed = Arc::new(Mutex::new(Vec::new()));
        let n = 20 + round * 7 % 50;
        for i in 0..n {
            let seq = start + i;
            let c = Arc::clone(&completed);
            let msg = NewMessage::new("crash.test", expected_payload(seq));
            let got = store
                .append(
                    msg,
                    Some(Box::new(move |r| {
                        if let Ok(s) = r {
                            c.lock().unwrap().push(s);
                        }
                    })),
                )
                .unwrap();
            assert_eq!(got, seq);
            if i % 9 == 0 {
                std::thread::yield_now();
            }
        }
        // Completions seen before the crash were fsynced before it.
        let done_before: Vec<u64> = completed.lock().unwrap().clone();
        let crashed = sim.crash(CrashMode::Torn { seed: round * 7919 + 1 });
        drop(store);
        drop(engine);
        completed_all.extend(done_before);
        sim = crashed;
        let engine = fast_engine();
        let store = FileStore::open_with(&engine, Arc::new(sim.clone()), dir, config()).unwrap();
        verify(&store, &completed_all, start + n - 1);
        // Whatever survived beyond the completions is now part of the stream.
        completed_all = {
            let st = store.state();
            (st.first_seq..=st.last_seq).filter(|s| store.load(*s).is_ok()).collect()
        };
        store.stop().unwrap();
    }
    assert!(completed_all.len() > 100, "only {} messages survived", completed_all.len());
}

#[test]
fn synced_removals_survive_a_crash() {
    let sim = sim_root();
    let dir = Path::new("/data/stream");
    let engine = fast_engine();
    let store = FileStore::open_with(&engine, Arc::new(sim.clone()), dir, config()).unwrap();
    for seq in 1..=100 {
        store.append(NewMessage::new("a", expected_payload(seq)), None).unwrap();
    }
    store.remove(50, false).unwrap();
    store.compact(20).unwrap();
    store.purge(&jetway_storage::PurgeOptions { keep: Some(60), ..Default::default() }).unwrap();
    store.sync().unwrap();
    let before = (store.state(), store.deleted());
    let crashed = sim.crash(CrashMode::Torn { seed: 3 });
    let engine2 = fast_engine();
    let store2 = FileStore::open_with(&engine2, Arc::new(crashed), dir, config()).unwrap();
    assert_eq!((store2.state(), store2.deleted()), before);
}

#[test]
fn a_new_block_needs_its_folder_synced() {
    // A crash right after a block file was created but before any sync must not leave a
    // store that fails to open or invents messages.
    let sim = sim_root();
    let dir = Path::new("/data/stream");
    let engine = fast_engine();
    let mut c = config();
    c.sync = jetway_storage::SyncPolicy::Never;
    let store = FileStore::open_with(&engine, Arc::new(sim.clone()), dir, c).unwrap();
    for seq in 1..=200 {
        store.append(NewMessage::new("a", expected_payload(seq)), None).unwrap();
    }
    for seed in 0..20 {
        let crashed = sim.crash(CrashMode::Torn { seed });
        let e = fast_engine();
        let s = FileStore::open_with(&e, Arc::new(crashed), dir, config()).unwrap();
        verify(&s, &[], 200);
    }
}

#[test]
fn failed_fsync_poisons_the_store() {
    let sim = sim_root();
    let engine = fast_engine();
    let store = FileStore::open_with(&engine, Arc::new(sim.clone()), Path::new("/data/p"), config()).unwrap();
    store.append(NewMessage::new("a", "ok"), None).unwrap();
    store.sync().unwrap();
    assert!(store.is_writable());
    sim.fail_syncs_after(0);
    let (tx, rx) = std::sync::mpsc::channel();
    store.append(NewMessage::new("a", "doomed"), Some(Box::new(move |r| tx.send(r).unwrap()))).unwrap();
    let r = rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
    assert!(r.is_err(), "an append whose fsync failed was acknowledged");
    assert!(matches!(store.append(NewMessage::new("a", "later"), None), Err(StoreError::Poisoned)));
    assert!(store.sync().is_err());
    assert!(!store.is_writable(), "health checks see the poison");
}

fn disk_bytes(sim: &SimIo, dir: &Path) -> usize {
    sim.list_dir(dir).unwrap().iter().map(|n| sim.read_all(&dir.join(n)).unwrap().len()).sum()
}

#[test]
fn sparse_blocks_are_rewritten_and_survive_crashes() {
    let sim = sim_root();
    let dir = Path::new("/data/sparse");
    let engine = fast_engine();
    let store = FileStore::open_with(&engine, Arc::new(sim.clone()), dir, config()).unwrap();
    for seq in 1..=1000 {
        store.append(NewMessage::new(&format!("k.{}", seq % 10), expected_payload(seq)), None).unwrap();
    }
    store.sync().unwrap();
    let before = disk_bytes(&sim, dir);
    // Keep the first message so no block is dropped from the front: only rewrites reclaim.
    for seq in 2..=990 {
        if seq % 3 != 0 {
            store.remove(seq, seq % 7 == 0).unwrap();
        }
    }
    for _ in 0..3 {
        store.sync().unwrap();
        let _ = store.state(); // applies finished rewrites, schedules more
    }
    store.sync().unwrap();
    let after = disk_bytes(&sim, dir);
    // A third of the messages stay, plus 24-byte tombstones for the rest.
    assert!(after * 3 < before * 2, "{before} bytes before, {after} after");
    let expect = (store.state(), store.deleted());
    for seq in (3..=990).step_by(3) {
        assert_eq!(store.load(seq).unwrap().payload.as_ref(), expected_payload(seq).as_slice());
    }
    for seed in 0..5 {
        let crashed = sim.crash(CrashMode::Torn { seed });
        let e = fast_engine();
        let s = FileStore::open_with(&e, Arc::new(crashed), dir, config()).unwrap();
        assert_eq!((s.state(), s.deleted()), expect);
        verify(&s, &[1, 3, 300, 990, 1000], 1000);
    }
}

/// What the shared-log crash test expects: each consumer's meta and state, by name.
type Image = BTreeMap<String, (Vec<u8>, ConsumerState)>;

struct XorShift(u64);
impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// A consumer of the crash test: its handle and a memory store fed the same updates.
struct Tracked {
    meta: Vec<u8>,
    handle: Arc<SharedConsumer>,
    model: MemConsumerStore,
}

fn image_of(consumers: &BTreeMap<String, Tracked>) -> Image {
    consumers.iter().map(|(n, t)| (n.clone(), (t.meta.clone(), t.model.state()))).collect()
}

#[test]
fn shared_log_keeps_every_confirmed_change_across_crashes() {
    let mut sim = sim_root();
    let dir = Path::new("/data/stream");
    let mut rng = XorShift(0x9e3779b97f4a7c15);
    let mut survived = Image::new();
    let mut changes_lost = 0;
    for round in 0..40u64 {
        // Odd rounds never fsync on their own: only `sync` confirms, and crashes tear more.
        let sync = if round % 2 == 0 { SyncPolicy::Always } else { SyncPolicy::Never };
        let engine = fast_engine();
        let opened = SharedConsumerLog::open_with(&engine, Arc::new(sim.clone()), dir, sync).unwrap();
        assert_eq!(opened.damage, None, "round {round}: a crash is not damage");
        let log = opened.log;
        log.set_compact_min(2048);
        let mut consumers: BTreeMap<String, Tracked> = BTreeMap::new();
        for c in opened.consumers {
            let model = MemConsumerStore::new(c.consumer.policy());
            model.update(&c.consumer.state()).unwrap();
            consumers.insert(c.name, Tracked { meta: c.meta, handle: c.consumer, model });
        }
        assert_eq!(image_of(&consumers), survived, "round {round}: restored what the last round left");
        // history[k]: the consumers after the first k changes of this round.
        let mut history = vec![image_of(&consumers)];
        let confirmed = Arc::new(Mutex::new(0usize));
        for step in 0..(30 + rng.below(60)) {
            let names: Vec<String> = consumers.keys().cloned().collect();
            let pick = names.get(rng.below(names.len() as u64) as usize).cloned();
            let change = history.len();
            match (rng.below(20), pick) {
                (0..=4, _) | (_, None) => {
                    let name = format!("r{round}-{step}");
                    let meta = vec![step as u8; rng.below(300) as usize];
                    let policy = [AckPolicy::Explicit, AckPolicy::All][rng.below(2) as usize];
                    let c = Arc::clone(&confirmed);
                    let done = Box::new(move |r: jetway_storage::Result<u64>| {
                        if r.is_ok() && sync == SyncPolicy::Always {
                            let mut c = c.lock().unwrap();
                            *c = (*c).max(change);
                        }
                    });
                    let handle = log.add(&name, meta.clone(), policy, Some(done)).unwrap();
                    consumers.insert(name, Tracked { meta, handle, model: MemConsumerStore::new(policy) });
                }
                (5..=12, Some(n)) => {
                    let t = &consumers[&n];
                    let seq = t.model.state().delivered.stream_seq + 1 + rng.below(3);
                    let dc = 1 + rng.below(3);
                    for s in [&*t.handle as &dyn ConsumerStore, &t.model] {
                        s.update_delivered(seq, seq, dc, step as i64).unwrap();
                    }
                }
                (13..=15, Some(n)) => {
                    let t = &consumers[&n];
                    let pending: Vec<u64> = t.model.state().pending.keys().copied().collect();
                    let seq = pending.get(rng.below(pending.len() as u64) as usize).copied().unwrap_or(1);
                    for s in [&*t.handle as &dyn ConsumerStore, &t.model] {
                        s.update_acks(seq, seq).unwrap();
                    }
                }
                (16, Some(n)) => {
                    let t = &consumers[&n];
                    let mut st = t.model.state();
                    st.pending.pop_first();
                    st.redelivered.insert(step, 2);
                    for s in [&*t.handle as &dyn ConsumerStore, &t.model] {
                        s.update(&st).unwrap();
                    }
                }
                (17, Some(n)) => {
                    let meta = format!("meta {round} {step}").into_bytes();
                    log.set_meta(&n, meta.clone(), None).unwrap();
                    consumers.get_mut(&n).unwrap().meta = meta;
                }
                (18, Some(n)) => {
                    log.remove(&n, None).unwrap();
                    consumers.remove(&n);
                }
                (_, Some(_)) => {
                    log.sync().unwrap();
                    let mut c = confirmed.lock().unwrap();
                    *c = (*c).max(change - 1);
                }
            }
            history.push(image_of(&consumers));
            if step % 9 == 0 {
                std::thread::yield_now();
            }
        }
        // Confirmations seen before the crash were durable before it.
        let confirmed = *confirmed.lock().unwrap();
        let crashed = sim.crash(CrashMode::Torn { seed: round * 7919 + 3 });
        drop(log);
        drop(consumers);
        drop(engine);
        sim = crashed;
        let engine = fast_engine();
        let opened =
            SharedConsumerLog::open_with(&engine, Arc::new(sim.clone()), dir, SyncPolicy::Always).unwrap();
        assert_eq!(opened.damage, None, "round {round}: a crash is not damage");
        let restored: Image =
            opened.consumers.iter().map(|c| (c.name.clone(), (c.meta.clone(), c.consumer.state()))).collect();
        // Every confirmed change is there, and what survived is exactly a prefix of the changes.
        let prefix = (confirmed..history.len()).rev().find(|k| history[*k] == restored);
        let Some(prefix) = prefix else {
            panic!("round {round}: the log after the crash is no prefix of at least {confirmed} changes");
        };
        changes_lost += history.len() - 1 - prefix;
        opened.log.stop().unwrap();
        survived = restored;
    }
    assert!(!survived.is_empty());
    assert!(changes_lost > 30, "only {changes_lost} changes were in flight at the crashes");
    eprintln!("{changes_lost} unconfirmed changes lost to 40 crashes");
}

/// Loads that miss the in-memory cache read ahead from the block; a rewrite of the block moves
/// records, and later loads must still return the right bytes.
#[test]
fn reads_from_disk_stay_right_across_block_rewrites() {
    let sim = sim_root();
    let dir = Path::new("/data/readahead");
    let engine = fast_engine();
    let store = FileStore::open_with(&engine, Arc::new(sim.clone()), dir, config()).unwrap();
    for seq in 1..=600 {
        store.append(NewMessage::new("r", expected_payload(seq)), None).unwrap();
    }
    store.stop().unwrap();
    // Reopened: nothing is cached, every load reads the blocks.
    let store = FileStore::open_with(&engine, Arc::new(sim.clone()), dir, config()).unwrap();
    for seq in 1..=600 {
        assert_eq!(store.load(seq).unwrap().payload.as_ref(), expected_payload(seq).as_slice(), "seq {seq}");
    }
    // Read ahead from the start of the first block, then rewrite the blocks under it (records
    // move towards the start of their block).
    assert_eq!(store.load(1).unwrap().payload.as_ref(), expected_payload(1).as_slice());
    for seq in 2..=590 {
        if seq % 4 != 0 {
            store.remove(seq, seq % 5 == 0).unwrap();
        }
    }
    for _ in 0..3 {
        store.sync().unwrap();
        let _ = store.state();
    }
    // First a message the read-ahead held before the rewrite moved it.
    for seq in (4..=590).step_by(4).chain(591..=600) {
        assert_eq!(store.load(seq).unwrap().payload.as_ref(), expected_payload(seq).as_slice(), "seq {seq}");
    }
    assert!(store.load(201).is_err(), "a removed message is gone");
    store.stop().unwrap();
}
