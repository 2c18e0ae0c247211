//! Simulated crashes: only what was fsynced survives (contents, and names whose folder was
//! fsynced), plus torn writes. Every completed append must come back byte-identical and nothing
//! that was never appended may appear.

use std::path::Path;
use std::sync::{Arc, Mutex};

use jetway_storage::{CrashMode, FileStore, Io, NewMessage, SimIo, StoreError, StreamConfig, StreamStore};

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
    while let Ok(m) = store.load_next(&[], next) {
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
