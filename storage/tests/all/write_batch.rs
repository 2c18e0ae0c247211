//! `WriteBatch`: writes that need no fsync are performed by the thread that made them when its
//! batch ends; the storage threads still make them durable on the policy's schedule.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use jetway_storage::{
    CrashMode, Engine, FileStore, Io, NewMessage, SimIo, StreamConfig, StreamStore, SyncPolicy, WriteBatch,
    MAX_SYNC_BATCH_MSGS,
};

use crate::common::fast_engine;

type Fired = Arc<Mutex<Vec<(u64, ThreadId)>>>;

fn sim_root() -> SimIo {
    let sim = SimIo::new();
    sim.create_dir_all(Path::new("/data")).unwrap();
    sim.sync_dir(Path::new("/")).unwrap();
    sim
}

fn config(sync: SyncPolicy) -> StreamConfig {
    let mut c = StreamConfig::named("batch");
    c.sync = sync;
    c
}

/// The stream at `/data/stream` on `fs`.
fn open(engine: &Engine, fs: SimIo, sync: SyncPolicy) -> FileStore {
    FileStore::open_with(engine, Arc::new(fs), Path::new(STREAM_DIR), config(sync)).unwrap()
}

const STREAM_DIR: &str = "/data/stream";

fn append(store: &dyn StreamStore, payload: &str, fired: &Fired) -> u64 {
    let fired = Arc::clone(fired);
    let done = Box::new(move |r: jetway_storage::Result<u64>| {
        fired.lock().unwrap().push((r.unwrap(), std::thread::current().id()));
    });
    store.append(NewMessage::new("batch.test", payload.as_bytes().to_vec()), Some(done)).unwrap()
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn interval_writes_complete_in_order_on_this_thread_when_the_batch_ends() {
    let sim = sim_root();
    let engine = fast_engine();
    let store = open(&engine, sim.clone(), SyncPolicy::Interval(Duration::from_secs(3600)));
    // The first message creates the block file, which is a storage thread's job.
    let first: Fired = Arc::default();
    append(&store, "m1", &first);
    wait_for("the first message", || !first.lock().unwrap().is_empty());
    let fired: Fired = Arc::default();
    {
        let _batch = WriteBatch::begin();
        for i in 2..=3 {
            assert_eq!(append(&store, &format!("m{i}"), &fired), i);
        }
        // Nested batches join the outer one.
        {
            let _inner = WriteBatch::begin();
            append(&store, "m4", &fired);
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(fired.lock().unwrap().is_empty(), "completions fired before the batch ended");
        // Loads see the messages meanwhile.
        assert_eq!(store.load(2).unwrap().payload.as_ref(), b"m2");
    }
    let me = std::thread::current().id();
    assert_eq!(*fired.lock().unwrap(), (2..=4).map(|s| (s, me)).collect::<Vec<_>>());
    store.stop().unwrap();
    let engine2 = fast_engine();
    let reopened = open(&engine2, sim.clone(), SyncPolicy::Interval(Duration::from_secs(3600)));
    assert_eq!(reopened.state().msgs, 4);
}

/// Messages of the stream at [`STREAM_DIR`] that a power loss now would keep.
fn survive_power_loss(sim: &SimIo) -> u64 {
    let engine = fast_engine();
    let store = open(&engine, sim.crash(CrashMode::Clean), SyncPolicy::Interval(Duration::from_secs(3600)));
    let msgs = store.state().msgs;
    store.stop().unwrap();
    msgs
}

#[test]
fn inline_writes_still_get_the_periodic_fsync() {
    let sim = sim_root();
    let engine = fast_engine();
    let store = open(&engine, sim.clone(), SyncPolicy::Interval(Duration::from_millis(20)));
    let fired: Fired = Arc::default();
    // A storage thread creates the block and syncs it; then it has nothing left to sync.
    append(&store, "m1", &fired);
    wait_for("the first message's fsync", || survive_power_loss(&sim) == 1);
    {
        let _batch = WriteBatch::begin();
        for i in 2..=5 {
            append(&store, &format!("m{i}"), &fired);
        }
    }
    assert_eq!(fired.lock().unwrap().len(), 5);
    // Written by this thread; the storage thread must learn of them and sync them in time.
    wait_for("the periodic fsync", || survive_power_loss(&sim) == 5);
    store.stop().unwrap();
}

#[test]
fn always_policy_writes_go_to_the_storage_threads_even_in_a_batch() {
    let sim = sim_root();
    let engine = fast_engine();
    let store = open(&engine, sim.clone(), SyncPolicy::Always);
    let fired: Fired = Arc::default();
    let _batch = WriteBatch::begin();
    append(&store, "durable", &fired);
    // Completes while the batch is still open, on a storage thread, after an fsync.
    wait_for("the completion", || !fired.lock().unwrap().is_empty());
    assert_ne!(fired.lock().unwrap()[0].1, std::thread::current().id());
    let crashed = sim.crash(CrashMode::Clean);
    let engine2 = fast_engine();
    let store2 = open(&engine2, crashed, SyncPolicy::Always);
    assert_eq!(store2.state().msgs, 1);
}

thread_local! {
    static IN_SCOPE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the completions it wraps, and counts its batches.
struct MarkingScope(std::sync::atomic::AtomicUsize);

impl jetway_storage::CompletionScope for MarkingScope {
    fn run(&self, complete: &mut dyn FnMut()) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        IN_SCOPE.with(|s| s.set(true));
        complete();
        IN_SCOPE.with(|s| s.set(false));
    }
}

#[test]
fn a_completion_scope_wraps_every_completion_of_a_writer_batch() {
    let scope = Arc::new(MarkingScope(std::sync::atomic::AtomicUsize::new(0)));
    let engine = jetway_storage::Engine::new(jetway_storage::EngineConfig {
        writer_threads: 1,
        completion_scope: Some(scope.clone()),
        ..jetway_storage::EngineConfig::default()
    })
    .unwrap();
    let store = open(&engine, sim_root(), SyncPolicy::Always);
    let inside: Arc<Mutex<Vec<bool>>> = Arc::default();
    for i in 0..50 {
        let inside = Arc::clone(&inside);
        let done = Box::new(move |r: jetway_storage::Result<u64>| {
            r.unwrap();
            inside.lock().unwrap().push(IN_SCOPE.with(|s| s.get()));
        });
        store.append(NewMessage::new("scoped", format!("m{i}").into_bytes()), Some(done)).unwrap();
    }
    wait_for("50 completions", || inside.lock().unwrap().len() == 50);
    assert!(inside.lock().unwrap().iter().all(|i| *i), "every completion ran inside the scope");
    assert!(scope.0.load(std::sync::atomic::Ordering::Relaxed) >= 1);
}

/// Holds a writer thread inside the completions of its first batch that acknowledges
/// anything until released, and counts the completions of every batch.
#[derive(Default)]
struct GatedScope {
    released: Mutex<bool>,
    open: std::sync::Condvar,
    per_batch: Mutex<Vec<usize>>,
}

thread_local! {
    static FIRED_IN_BATCH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl jetway_storage::CompletionScope for GatedScope {
    fn run(&self, complete: &mut dyn FnMut()) {
        FIRED_IN_BATCH.with(|n| n.set(0));
        complete();
        let fired = FIRED_IN_BATCH.with(|n| n.get());
        self.per_batch.lock().unwrap().push(fired);
        if fired == 0 {
            return;
        }
        let mut released = self.released.lock().unwrap();
        while !*released {
            released = self.open.wait(released).unwrap();
        }
    }
}

#[test]
fn an_fsync_batch_takes_at_most_max_sync_batch_msgs_and_the_rest_follow_in_order() {
    let scope = Arc::new(GatedScope::default());
    let engine = jetway_storage::Engine::new(jetway_storage::EngineConfig {
        writer_threads: 1,
        completion_scope: Some(scope.clone()),
        ..jetway_storage::EngineConfig::default()
    })
    .unwrap();
    let sim = sim_root();
    let store = open(&engine, sim.clone(), SyncPolicy::Always);
    let order: Arc<Mutex<Vec<u64>>> = Arc::default();
    let counted = |order: &Arc<Mutex<Vec<u64>>>| {
        let order = Arc::clone(order);
        Box::new(move |r: jetway_storage::Result<u64>| {
            order.lock().unwrap().push(r.unwrap());
            FIRED_IN_BATCH.with(|n| n.set(n.get() + 1));
        })
    };
    store.append(NewMessage::new("gated", b"first".to_vec()), Some(counted(&order))).unwrap();
    // The writer is now held inside the batch that acknowledged it: everything below queues
    // up behind it.
    wait_for("the first ack", || order.lock().unwrap().len() == 1);
    let queued = 2 * MAX_SYNC_BATCH_MSGS + 44;
    for i in 0..queued {
        store.append(NewMessage::new("gated", format!("m{i}").into_bytes()), Some(counted(&order))).unwrap();
    }
    let syncs_before = engine.sync_stats().count;
    *scope.released.lock().unwrap() = true;
    scope.open.notify_all();
    wait_for("every completion", || order.lock().unwrap().len() == queued + 1);

    // (A batch that only created the block file fires nothing.)
    let batches: Vec<usize> = scope.per_batch.lock().unwrap().iter().copied().filter(|n| *n > 0).collect();
    assert_eq!(batches, vec![1, MAX_SYNC_BATCH_MSGS, MAX_SYNC_BATCH_MSGS, 44]);
    assert!(engine.sync_stats().count - syncs_before >= 3, "each part was made durable before its acks");
    let expected: Vec<u64> = (1..=queued as u64 + 1).collect();
    assert_eq!(*order.lock().unwrap(), expected, "acks in sequence order");
    assert_eq!(survive_power_loss(&sim), queued as u64 + 1);
    store.stop().unwrap();
}

#[test]
fn unacknowledged_appends_share_a_lazy_fsync_and_still_reach_the_disk() {
    let sim = sim_root();
    let engine = fast_engine();
    let store = open(&engine, sim.clone(), SyncPolicy::Always);
    let fired: Fired = Arc::default();
    // The first append creates the block: a storage thread's job, done at once.
    append(&store, "m0", &fired);
    wait_for("the first ack", || fired.lock().unwrap().len() == 1);
    let syncs_before = engine.sync_stats().count;
    for i in 1..=200 {
        store.append(NewMessage::new("batch.test", format!("m{i}").into_bytes()), None).unwrap();
    }
    // Nobody waits for them: they go out together within the lazy delay, not one fsync each.
    wait_for("the lazy write", || survive_power_loss(&sim) == 201);
    let syncs = engine.sync_stats().count - syncs_before;
    assert!(syncs <= 10, "{syncs} fsyncs for 200 unacknowledged appends");
    store.stop().unwrap();
}
