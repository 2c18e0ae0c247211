//! The shared consumer log: many consumers in one file, their lifecycle, compaction, group
//! commit and completions.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use jetway_storage::{
    AckPolicy, ConsumerStore, CrashMode, Engine, Io, MemConsumerStore, OpenedLog, SharedConsumer,
    SharedConsumerLog, SimIo, StoreError, SyncPolicy,
};

use crate::common::fast_engine;

fn open(engine: &Engine, dir: &Path) -> OpenedLog {
    let opened = SharedConsumerLog::open(engine, dir, SyncPolicy::Always).unwrap();
    assert_eq!(opened.damage, None);
    opened
}

fn log_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("consumers.log")).unwrap().len()
}

/// The log in `dir` on the simulated file system `io` (fsync before every completion).
fn open_sim(engine: &Engine, io: &SimIo, dir: &Path) -> OpenedLog {
    SharedConsumerLog::open_with(engine, Arc::new(io.clone()), dir, SyncPolicy::Always).unwrap()
}

/// A root with a durable `/data` folder.
pub fn sim_root() -> SimIo {
    let sim = SimIo::new();
    sim.create_dir_all(Path::new("/data")).unwrap();
    sim.sync_dir(Path::new("/")).unwrap();
    sim
}

/// What a consumer should look like: its meta and a memory store fed the same updates.
struct Expected {
    meta: Vec<u8>,
    model: MemConsumerStore,
}

/// Checks a reopened log against the expected consumers (in the order they were added).
fn assert_restored(opened: &OpenedLog, expected: &[(String, Expected)]) {
    let got: Vec<&str> = opened.consumers.iter().map(|c| c.name.as_str()).collect();
    let want: Vec<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(got, want, "exactly the live consumers, in the order they were added");
    for (c, (name, e)) in opened.consumers.iter().zip(expected) {
        assert_eq!(c.meta, e.meta, "meta of {name}");
        assert_eq!(c.consumer.state(), e.model.state(), "state of {name}");
        assert_eq!(opened.log.meta(name), Some(e.meta.clone()));
    }
    assert_eq!(opened.log.len(), expected.len());
}

#[test]
fn ten_thousand_consumers_come_back_with_their_meta_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fast_engine();
    let opened = open(&engine, dir.path());
    assert!(opened.consumers.is_empty() && opened.log.is_empty());
    let log = opened.log;
    let policies = [AckPolicy::Explicit, AckPolicy::All, AckPolicy::None];
    let mut all: Vec<(String, Expected, Arc<SharedConsumer>)> = Vec::new();
    for i in 0..10_000u64 {
        let name = format!("$MQTT_sess_{i:05}");
        let meta = format!("{{\"durable_name\":\"{name}\",\"created\":{i}}}").into_bytes();
        let policy = policies[i as usize % 3];
        let handle = log.add(&name, meta.clone(), policy, None).unwrap();
        all.push((name, Expected { meta, model: MemConsumerStore::new(policy) }, handle));
    }
    for (i, (_, e, h)) in all.iter().enumerate().filter(|(i, _)| i % 3 != 2) {
        let i = i as u64;
        for s in [&**h as &dyn ConsumerStore, &e.model] {
            s.update_delivered(1, 100 + i, 1, i as i64).unwrap();
            s.update_delivered(2, 101 + i, 1, i as i64).unwrap();
            s.update_delivered(3, 100 + i, 2, i as i64 + 1).unwrap();
            s.update_acks(2, 101 + i).unwrap();
        }
    }
    for (i, (name, e, _)) in all.iter_mut().enumerate() {
        if i % 11 == 0 {
            e.meta = format!("{{\"replaced\":{i}}}").into_bytes();
            log.set_meta(name, e.meta.clone(), None).unwrap();
        }
    }
    for (i, (name, _, h)) in all.iter().enumerate() {
        if i % 7 == 0 {
            log.remove(name, None).unwrap();
            assert!(matches!(h.update_acks(1, 1), Err(StoreError::Closed)));
        }
    }
    // A server stopping the stream stops each consumer, then the log: one wait for all.
    let started = std::time::Instant::now();
    for (_, _, h) in &all {
        h.stop().unwrap();
    }
    eprintln!("stopped 10,000 consumer handles in {:?}", started.elapsed());
    let expected: Vec<(String, Expected)> =
        all.into_iter().enumerate().filter(|(i, _)| i % 7 != 0).map(|(_, (n, e, _))| (n, e)).collect();
    log.stop().unwrap();
    drop(log);
    let opened = open(&engine, dir.path());
    assert_restored(&opened, &expected);
    // One file holds them all.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["consumers.log".to_string()]);
}

#[test]
fn compaction_keeps_states_exact_and_bounds_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fast_engine();
    let log = open(&engine, dir.path()).log;
    let mut expected: Vec<(String, Expected)> = Vec::new();
    let mut handles = Vec::new();
    for i in 0..50 {
        let name = format!("c{i}");
        handles.push(log.add(&name, vec![b'm'; 40], AckPolicy::Explicit, None).unwrap());
        expected.push((
            name,
            Expected { meta: vec![b'm'; 40], model: MemConsumerStore::new(AckPolicy::Explicit) },
        ));
    }
    let mut largest = 0;
    let mut written = 0u64;
    for round in 1..=1000u64 {
        for (h, (_, e)) in handles.iter().zip(&expected) {
            for s in [&**h as &dyn ConsumerStore, &e.model] {
                s.update_delivered(round, round, 1, 0).unwrap();
                if round > 3 {
                    s.update_acks(round - 3, round - 3).unwrap();
                }
            }
            written += 56 + 40;
        }
        if round % 50 == 0 {
            log.sync().unwrap();
            largest = largest.max(log_len(dir.path()));
        }
    }
    // Live data is ~10 KiB, so the 64 KiB minimum bounds the file (plus the last record).
    assert!(largest <= 64 * 1024 + 100, "the log reached {largest} bytes");
    assert!(written > 40 * largest, "{written} bytes of records went through a {largest}-byte file");
    // Removed consumers are not part of the compacted image.
    for (name, _) in expected.drain(10..) {
        log.remove(&name, None).unwrap();
    }
    log.set_compact_min(0);
    for (h, (_, e)) in handles.iter().zip(&expected) {
        for s in [&**h as &dyn ConsumerStore, &e.model] {
            s.update_delivered(5000, 5000, 2, 0).unwrap();
        }
    }
    log.sync().unwrap();
    let compacted = log_len(dir.path());
    assert!(compacted < 4096, "10 small consumers take {compacted} bytes");
    log.stop().unwrap();
    assert_restored(&open(&engine, dir.path()), &expected);
}

/// Metas live on disk only: each compaction copies every consumer's latest meta from the file
/// it replaces, and reads and restarts find them, whatever was added, replaced or removed
/// between compactions.
#[test]
fn compactions_carry_every_latest_meta_from_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fast_engine();
    let log = open(&engine, dir.path()).log;
    log.set_compact_min(0);
    let meta_of =
        |name: &str, version: usize| format!("{name} v{version} {}", "x".repeat(name.len() * 7)).into_bytes();
    let mut metas: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut handles = Vec::new();
    for round in 0..4 {
        for i in 0..20 {
            let name = format!("r{round}-c{i}");
            let meta = meta_of(&name, 0);
            handles.push(log.add(&name, meta.clone(), AckPolicy::Explicit, None).unwrap());
            metas.insert(name, meta);
        }
        for (n, (name, meta)) in metas.iter_mut().enumerate() {
            if n % 3 == round % 3 {
                *meta = meta_of(name, round + 1);
                log.set_meta(name, meta.clone(), None).unwrap();
            }
        }
        let gone: Vec<String> = metas.keys().filter(|n| n.ends_with("-c7")).cloned().collect();
        for name in gone {
            log.remove(&name, None).unwrap();
            metas.remove(&name);
        }
        log.sync().unwrap();
        let before = log_len(dir.path());
        log.compact().unwrap();
        log.sync().unwrap();
        assert_ne!(log_len(dir.path()), before, "round {round} compacted");
        for (name, meta) in &metas {
            assert_eq!(log.meta(name).as_ref(), Some(meta), "{name} after compaction {round}");
        }
    }
    // Records appended after the last compaction land where the log expects them.
    handles[0].update_delivered(1, 1, 1, 0).unwrap();
    log.stop().unwrap();
    let opened = open(&engine, dir.path());
    let restored: BTreeMap<String, Vec<u8>> =
        opened.consumers.iter().map(|c| (c.name.clone(), c.meta.clone())).collect();
    assert_eq!(restored, metas);
    assert_eq!(
        opened.consumers.iter().find(|c| c.name == "r0-c0").unwrap().consumer.state().delivered.stream_seq,
        1
    );
}

#[test]
fn a_log_too_long_for_its_consumers_is_compacted_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fast_engine();
    let log = open(&engine, dir.path()).log;
    for i in 0..2000 {
        log.add(&format!("gone-{i}"), vec![0; 100], AckPolicy::Explicit, None).unwrap();
    }
    let keep = log.add("kept", b"k".to_vec(), AckPolicy::All, None).unwrap();
    keep.update_delivered(1, 9, 1, 0).unwrap();
    log.set_compact_min(u64::MAX);
    for i in 0..2000 {
        log.remove(&format!("gone-{i}"), None).unwrap();
    }
    log.stop().unwrap();
    assert!(log_len(dir.path()) > 200_000);
    let opened = open(&engine, dir.path());
    opened.log.sync().unwrap();
    assert!(log_len(dir.path()) < 1000, "{} bytes after open", log_len(dir.path()));
    assert_eq!(opened.consumers.len(), 1);
    assert_eq!(opened.consumers[0].consumer.state(), keep.state());
}

#[test]
fn add_completions_fire_in_order_and_only_once_durable() {
    let sim = sim_root();
    let engine = fast_engine();
    let dir = Path::new("/data/stream");
    let log = open_sim(&engine, &sim, dir).log;
    let (tx, rx) = mpsc::channel();
    let n = 300u64;
    for i in 0..n {
        let (tx, sim) = (tx.clone(), sim.clone());
        let done = Box::new(move |r: jetway_storage::Result<u64>| {
            // What a power loss right now would leave.
            tx.send((r.unwrap(), sim.crash(CrashMode::Clean))).unwrap();
        });
        let handle =
            log.add(&format!("c{i}"), i.to_le_bytes().to_vec(), AckPolicy::Explicit, Some(done)).unwrap();
        assert_eq!(handle.id(), i + 1);
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let fired: Vec<(u64, SimIo)> =
        (0..n).map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap()).collect();
    assert_eq!(fired.iter().map(|(id, _)| *id).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>());
    let mut images = 0;
    for (id, image) in fired.iter().step_by(7) {
        let opened = open_sim(&engine, image, dir);
        assert!(opened.consumers.len() as u64 >= *id, "consumer {id} completed but is not on disk");
        for (i, c) in opened.consumers.iter().enumerate() {
            assert_eq!((c.name.clone(), c.consumer.id()), (format!("c{i}"), i as u64 + 1));
        }
        images += 1;
    }
    assert!(images > 40);
}

/// `when_durable` writes nothing and fires once everything queued before it is on disk.
#[test]
fn when_durable_fires_after_the_earlier_records_are_on_disk() {
    let sim = sim_root();
    let engine = fast_engine();
    let dir = Path::new("/data/stream");
    let log = open_sim(&engine, &sim, dir).log;
    log.sync().unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..20u64 {
        log.add(&format!("c{i}"), vec![1; 10], AckPolicy::Explicit, None).unwrap();
    }
    let before = sim.crash(CrashMode::Clean);
    let (tx2, sim2) = (tx.clone(), sim.clone());
    log.when_durable(Box::new(move |r| tx2.send((r.unwrap(), sim2.crash(CrashMode::Clean))).unwrap()))
        .unwrap();
    let (value, image) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(value, 0);
    let opened = open_sim(&engine, &image, dir);
    assert_eq!(opened.consumers.len(), 20, "every earlier add is durable when it fires");
    // It wrote nothing: the file holds what the adds wrote.
    log.sync().unwrap();
    let after = sim.crash(CrashMode::Clean);
    let len = |io: &SimIo| io.read_all(&dir.join("consumers.log")).unwrap().len();
    assert!(len(&before) <= len(&after));
    let (tx3, sim3) = (tx, sim.clone());
    let written = len(&after);
    log.when_durable(Box::new(move |r| tx3.send((r.unwrap(), sim3.crash(CrashMode::Clean))).unwrap()))
        .unwrap();
    let (_, image) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(len(&image), written, "a second wait with nothing new writes nothing");
}

#[test]
fn removing_a_consumer_closes_its_handles_and_frees_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fast_engine();
    let log = open(&engine, dir.path()).log;
    let a = log.add("a", b"first".to_vec(), AckPolicy::Explicit, None).unwrap();
    let also_a = log.consumer("a").unwrap();
    a.update_delivered(1, 1, 1, 0).unwrap();
    assert_eq!(also_a.state(), a.state(), "handles of one consumer share its state");
    let last = a.state();
    log.remove("a", None).unwrap();
    for h in [&a, &also_a] {
        assert!(matches!(h.update_delivered(2, 2, 1, 0), Err(StoreError::Closed)));
        assert!(matches!(h.update(&last), Err(StoreError::Closed)));
        assert_eq!(h.state(), last, "the last state stays readable");
    }
    assert!(log.consumer("a").is_none() && log.meta("a").is_none());
    assert!(matches!(log.remove("a", None), Err(StoreError::ConsumerNotFound(_))));
    assert!(matches!(log.set_meta("a", Vec::new(), None), Err(StoreError::ConsumerNotFound(_))));
    let again = log.add("a", b"second".to_vec(), AckPolicy::All, None).unwrap();
    assert!(again.id() > a.id(), "ids are never reused");
    assert!(again.state().pending.is_empty());
    log.stop().unwrap();
    let opened = open(&engine, dir.path());
    assert_eq!(opened.consumers.len(), 1);
    assert_eq!(
        (opened.consumers[0].meta.as_slice(), opened.consumers[0].consumer.id()),
        (&b"second"[..], again.id())
    );
}

#[test]
fn stopping_one_consumer_leaves_the_others_working() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fast_engine();
    let log = open(&engine, dir.path()).log;
    let a = log.add("a", Vec::new(), AckPolicy::Explicit, None).unwrap();
    let b = log.add("b", Vec::new(), AckPolicy::Explicit, None).unwrap();
    a.stop().unwrap();
    assert!(matches!(a.update_delivered(1, 1, 1, 0), Err(StoreError::Closed)));
    b.update_delivered(1, 1, 1, 0).unwrap();
    b.sync().unwrap();
    // A stopped handle does not stop the consumer: a new handle writes again.
    let a2 = log.consumer("a").unwrap();
    a2.update_delivered(7, 7, 1, 0).unwrap();
    log.stop().unwrap();
    for h in [&a2, &b] {
        assert!(matches!(h.update_acks(1, 1), Err(StoreError::Closed)), "a stopped log closes every handle");
    }
    assert!(matches!(log.add("c", Vec::new(), AckPolicy::Explicit, None), Err(StoreError::Closed)));
    assert!(!log.is_writable());
    let opened = open(&engine, dir.path());
    let states: Vec<u64> = opened.consumers.iter().map(|c| c.consumer.state().delivered.stream_seq).collect();
    assert_eq!(states, vec![7, 1]);
}

#[test]
fn names_are_unique_and_sizes_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fast_engine();
    let log = open(&engine, dir.path()).log;
    log.add("x", Vec::new(), AckPolicy::Explicit, None).unwrap();
    assert!(
        matches!(log.add("x", Vec::new(), AckPolicy::All, None), Err(StoreError::ConsumerExists(n)) if n == "x")
    );
    let long = "n".repeat(70_000);
    assert!(matches!(log.add(&long, Vec::new(), AckPolicy::All, None), Err(StoreError::InvalidConsumer(_))));
    assert_eq!(log.len(), 1);
}

#[test]
fn a_failed_fsync_poisons_the_log() {
    let sim = sim_root();
    let engine = fast_engine();
    let log = SharedConsumerLog::open_with(
        &engine,
        Arc::new(sim.clone()),
        Path::new("/data/p"),
        SyncPolicy::Always,
    )
    .unwrap()
    .log;
    let a = log.add("a", Vec::new(), AckPolicy::Explicit, None).unwrap();
    log.sync().unwrap();
    sim.fail_syncs_after(0);
    let (tx, rx) = mpsc::channel();
    log.add("b", Vec::new(), AckPolicy::Explicit, Some(Box::new(move |r| tx.send(r).unwrap()))).unwrap();
    assert!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap().is_err(),
        "an add whose fsync failed was confirmed"
    );
    assert!(matches!(a.update_delivered(1, 1, 1, 0), Err(StoreError::Poisoned)));
    assert!(matches!(log.add("c", Vec::new(), AckPolicy::Explicit, None), Err(StoreError::Poisoned)));
    assert!(a.sync().is_err());
    assert!(!log.is_writable());
}

#[test]
fn threads_updating_their_own_consumers_keep_exact_states() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fast_engine();
    let log = open(&engine, dir.path()).log;
    log.set_compact_min(8 * 1024);
    let per_thread: Vec<Vec<(String, Expected)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let log = Arc::clone(&log);
                s.spawn(move || {
                    let mut mine = Vec::new();
                    for round in 0..30u64 {
                        let name = format!("t{t}-c{round}");
                        let h = log.add(&name, name.clone().into_bytes(), AckPolicy::Explicit, None).unwrap();
                        let model = MemConsumerStore::new(AckPolicy::Explicit);
                        for i in 1..=40 {
                            for c in [&*h as &dyn ConsumerStore, &model] {
                                c.update_delivered(i, i * 2, 1 + i % 2, i as i64).unwrap();
                                if i % 3 == 0 {
                                    c.update_acks(i - 1, (i - 1) * 2).unwrap();
                                }
                            }
                        }
                        if round % 5 == 4 {
                            log.remove(&name, None).unwrap();
                        } else {
                            assert_eq!(h.state(), model.state());
                            mine.push((name.clone(), Expected { meta: name.into_bytes(), model }));
                        }
                    }
                    mine
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    log.stop().unwrap();
    let opened = open(&engine, dir.path());
    let mut expected: BTreeMap<String, Expected> = per_thread.into_iter().flatten().collect();
    assert_eq!(opened.consumers.len(), expected.len());
    for c in &opened.consumers {
        let e = expected.remove(&c.name).unwrap();
        assert_eq!((c.meta.clone(), c.consumer.state()), (e.meta, e.model.state()), "{}", c.name);
    }
}

/// Builds the fixture log: every kind of record, no compaction.
fn write_fixture_log(dir: &Path) {
    let engine = fast_engine();
    let log = open(&engine, dir).log;
    let a = log.add("alpha", b"{\"ack_policy\":\"explicit\"}".to_vec(), AckPolicy::Explicit, None).unwrap();
    let b = log.add("beta", Vec::new(), AckPolicy::All, None).unwrap();
    let c = log.add("gamma", b"gone".to_vec(), AckPolicy::None, None).unwrap();
    a.update_delivered(1, 10, 1, 1_700_000_000_000_000_000).unwrap();
    a.update_delivered(2, 11, 1, 1_700_000_000_000_000_001).unwrap();
    a.update_delivered(3, 10, 2, 1_700_000_000_000_000_002).unwrap();
    a.update_acks(2, 11).unwrap();
    b.update_delivered(1, 5, 1, -1).unwrap();
    c.update_delivered(1, 1, 1, 0).unwrap();
    let mut full = b.state();
    full.redelivered.insert(5, 4);
    b.update(&full).unwrap();
    log.set_meta("beta", b"v2".to_vec(), None).unwrap();
    log.remove("gamma", None).unwrap();
    log.stop().unwrap();
}

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/consumers-v1.log");

/// The byte format is a promise to every log already on disk: the same changes must give the
/// same bytes, and the checked-in log must keep opening to the same consumers. Regenerate
/// (after a deliberate format change, with a new magic) with `JETWAY_BLESS_FIXTURES=1`.
#[test]
fn shared_log_format_is_stable() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture_log(dir.path());
    let bytes = std::fs::read(dir.path().join("consumers.log")).unwrap();
    if std::env::var_os("JETWAY_BLESS_FIXTURES").is_some() {
        std::fs::write(FIXTURE, &bytes).unwrap();
    }
    assert_eq!(bytes, std::fs::read(FIXTURE).unwrap(), "the shared log's byte format changed");

    let old = tempfile::tempdir().unwrap();
    std::fs::copy(FIXTURE, old.path().join("consumers.log")).unwrap();
    let engine = fast_engine();
    let opened = open(&engine, old.path());
    let found: Vec<(&str, &[u8], AckPolicy, u64)> = opened
        .consumers
        .iter()
        .map(|c| (c.name.as_str(), c.meta.as_slice(), c.consumer.policy(), c.consumer.id()))
        .collect();
    assert_eq!(
        found,
        vec![
            ("alpha", &b"{\"ack_policy\":\"explicit\"}"[..], AckPolicy::Explicit, 1),
            ("beta", &b"v2"[..], AckPolicy::All, 2),
        ]
    );
    let alpha = opened.consumers[0].consumer.state();
    assert_eq!(alpha.pending.keys().copied().collect::<Vec<_>>(), vec![10]);
    // A redelivery keeps the first delivery's consumer sequence (as nats-server's store).
    assert_eq!((alpha.pending[&10].consumer_seq, alpha.redelivered[&10]), (1, 1));
    assert_eq!((alpha.delivered.consumer_seq, alpha.delivered.stream_seq), (3, 11));
    let beta = opened.consumers[1].consumer.state();
    assert_eq!((beta.pending[&5].timestamp, beta.redelivered[&5]), (-1, 4));
    assert_eq!(opened.log.add("delta", Vec::new(), AckPolicy::All, None).unwrap().id(), 4);
}
