//! Consumer stores: every behaviour test runs against MemConsumerStore, FileConsumerStore and
//! SharedConsumer handles. The shared kind keeps a noisy neighbour in the same log: every call
//! also updates another consumer of the log (checked against its own model at each reopen), and
//! the log compacts often.

use std::collections::HashMap;
use std::ops::Deref;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use jetway_storage::{
    AckPolicy, ConsumerState, ConsumerStore, Engine, FileConsumerStore, MemConsumerStore, Result,
    SharedConsumer, SharedConsumerLog, StoreError, SyncPolicy,
};

use crate::common::fast_engine;

/// A consumer store under test and the name its kind knows it by.
pub struct Handle {
    store: Box<dyn ConsumerStore>,
    name: String,
}

impl Deref for Handle {
    type Target = dyn ConsumerStore;
    fn deref(&self) -> &Self::Target {
        &*self.store
    }
}

/// A kind of consumer store the suite runs against.
pub trait ConsumerKind {
    /// A new consumer with an empty state.
    fn open(&self, policy: AckPolicy) -> Handle;
    /// The same consumer after a restart (a memory store just keeps going).
    fn reopen(&self, handle: Handle, policy: AckPolicy) -> Handle;
    /// Bytes on disk of the consumer's log (None: memory only).
    fn disk_bytes(&self) -> Option<u64>;
    /// Whether `stop` makes later writes fail (a memory store has nothing to close).
    fn closes_on_stop(&self) -> bool {
        true
    }
}

struct Mem;

impl ConsumerKind for Mem {
    fn open(&self, policy: AckPolicy) -> Handle {
        Handle { store: Box::new(MemConsumerStore::new(policy)), name: String::new() }
    }
    fn reopen(&self, handle: Handle, _: AckPolicy) -> Handle {
        handle
    }
    fn disk_bytes(&self) -> Option<u64> {
        None
    }
    fn closes_on_stop(&self) -> bool {
        false
    }
}

struct File {
    engine: Engine,
    dir: tempfile::TempDir,
    count: AtomicU64,
}

impl File {
    fn new() -> Self {
        File { engine: fast_engine(), dir: tempfile::tempdir().unwrap(), count: AtomicU64::new(0) }
    }
    fn open_named(&self, name: &str, policy: AckPolicy) -> Handle {
        let dir = self.dir.path().join(name);
        let store = FileConsumerStore::open(&self.engine, &dir, policy, SyncPolicy::Always).unwrap();
        Handle { store: Box::new(store), name: name.to_string() }
    }
}

impl ConsumerKind for File {
    fn open(&self, policy: AckPolicy) -> Handle {
        self.open_named(&format!("c{}", self.count.fetch_add(1, Ordering::Relaxed)), policy)
    }
    fn reopen(&self, handle: Handle, policy: AckPolicy) -> Handle {
        handle.stop().unwrap();
        self.open_named(&handle.name, policy)
    }
    fn disk_bytes(&self) -> Option<u64> {
        let mut total = 0;
        for c in std::fs::read_dir(self.dir.path()).unwrap() {
            total += std::fs::metadata(c.unwrap().path().join("consumer.log")).unwrap().len();
        }
        Some(total)
    }
}

/// Another consumer of the same log, updated on every call to its partner, and its model.
struct Neighbour {
    handle: Mutex<Arc<SharedConsumer>>,
    model: MemConsumerStore,
    tick: AtomicU64,
}

impl Neighbour {
    fn touch(&self) {
        let t = self.tick.fetch_add(1, Ordering::Relaxed) + 1;
        let handle = self.handle.lock().unwrap();
        if t % 4 == 0 {
            handle.update_acks(t - 1, t - 1).unwrap();
            self.model.update_acks(t - 1, t - 1).unwrap();
        } else {
            handle.update_delivered(t, t, 1 + t % 3, t as i64).unwrap();
            self.model.update_delivered(t, t, 1 + t % 3, t as i64).unwrap();
        }
    }
}

/// A shared-log consumer whose every write also writes its neighbour's record.
struct Noisy {
    me: Arc<SharedConsumer>,
    neighbour: Arc<Neighbour>,
}

impl ConsumerStore for Noisy {
    fn update_delivered(&self, dseq: u64, sseq: u64, dc: u64, ts: i64) -> Result<()> {
        self.neighbour.touch();
        self.me.update_delivered(dseq, sseq, dc, ts)
    }
    fn update_acks(&self, dseq: u64, sseq: u64) -> Result<()> {
        self.neighbour.touch();
        self.me.update_acks(dseq, sseq)
    }
    fn update(&self, state: &ConsumerState) -> Result<()> {
        self.neighbour.touch();
        self.me.update(state)
    }
    fn state(&self) -> ConsumerState {
        self.me.state()
    }
    fn sync(&self) -> Result<()> {
        self.me.sync()
    }
    fn stop(&self) -> Result<()> {
        self.me.stop()
    }
}

struct Shared {
    engine: Engine,
    dir: tempfile::TempDir,
    log: Mutex<Arc<SharedConsumerLog>>,
    count: AtomicU64,
    neighbours: Mutex<HashMap<String, Arc<Neighbour>>>,
}

impl Shared {
    pub fn new() -> Self {
        let engine = fast_engine();
        let dir = tempfile::tempdir().unwrap();
        let opened = SharedConsumerLog::open(&engine, dir.path(), SyncPolicy::Always).unwrap();
        opened.log.set_compact_min(4096);
        Shared {
            engine,
            dir,
            log: Mutex::new(opened.log),
            count: AtomicU64::new(0),
            neighbours: Mutex::default(),
        }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl ConsumerKind for Shared {
    fn open(&self, policy: AckPolicy) -> Handle {
        let name = format!("c{}", self.count.fetch_add(1, Ordering::Relaxed));
        let log = self.log.lock().unwrap().clone();
        let me = log.add(&name, format!("meta of {name}").into_bytes(), policy, None).unwrap();
        let other = log.add(&format!("{name}-neighbour"), Vec::new(), AckPolicy::Explicit, None).unwrap();
        let neighbour = Arc::new(Neighbour {
            handle: Mutex::new(other),
            model: MemConsumerStore::new(AckPolicy::Explicit),
            tick: AtomicU64::new(0),
        });
        self.neighbours.lock().unwrap().insert(name.clone(), Arc::clone(&neighbour));
        Handle { store: Box::new(Noisy { me, neighbour }), name }
    }

    fn reopen(&self, handle: Handle, _: AckPolicy) -> Handle {
        handle.stop().unwrap();
        let mut log = self.log.lock().unwrap();
        log.stop().unwrap();
        let opened = SharedConsumerLog::open(&self.engine, self.path(), SyncPolicy::Always).unwrap();
        assert_eq!(opened.damage, None);
        opened.log.set_compact_min(4096);
        *log = opened.log;
        let mut restored: HashMap<String, Arc<SharedConsumer>> =
            opened.consumers.into_iter().map(|c| (c.name, c.consumer)).collect();
        let neighbours = self.neighbours.lock().unwrap();
        assert_eq!(restored.len(), 2 * neighbours.len(), "every consumer and neighbour comes back");
        for (name, n) in neighbours.iter() {
            let again = restored.remove(&format!("{name}-neighbour")).unwrap();
            assert_eq!(again.state(), n.model.state(), "the neighbour of {name}");
            *n.handle.lock().unwrap() = again;
            assert_eq!(log.meta(name), Some(format!("meta of {name}").into_bytes()));
        }
        let me = restored.remove(&handle.name).unwrap();
        let neighbour = Arc::clone(&neighbours[&handle.name]);
        Handle { store: Box::new(Noisy { me, neighbour }), name: handle.name }
    }

    fn disk_bytes(&self) -> Option<u64> {
        Some(std::fs::metadata(self.path().join("consumers.log")).unwrap().len())
    }
}

macro_rules! consumer_conformance {
    ($($name:ident),* $(,)?) => {
        mod mem {
            $( #[test] fn $name() { super::$name(&super::Mem) } )*
        }
        mod file {
            $( #[test] fn $name() { super::$name(&super::File::new()) } )*
        }
        mod shared {
            $( #[test] fn $name() { super::$name(&super::Shared::new()) } )*
        }
    };
}

consumer_conformance!(
    deliveries_and_acks_follow_the_explicit_policy,
    ack_all_covers_everything_up_to_the_ack,
    ack_none_moves_the_floor_with_deliveries,
    state_survives_reopen_and_a_full_update,
    redelivery_counts_and_timestamps_survive_reopen,
    each_policy_is_kept_across_reopen,
    acks_with_many_pending_append_small_records,
    stop_rejects_writes_and_keeps_the_state,
    consumers_of_one_kind_are_independent,
    updates_reach_the_file_without_a_sync,
);

fn exercise(c: &dyn ConsumerStore) {
    for i in 1..=10 {
        c.update_delivered(i, i + 100, 1, i as i64).unwrap();
    }
    c.update_delivered(11, 103, 2, 99).unwrap();
    c.update_acks(1, 101).unwrap();
    c.update_acks(2, 102).unwrap();
    c.update_acks(5, 105).unwrap();
}

fn deliveries_and_acks_follow_the_explicit_policy(k: &dyn ConsumerKind) {
    let c = k.open(AckPolicy::Explicit);
    exercise(&*c);
    let model = MemConsumerStore::new(AckPolicy::Explicit);
    exercise(&model);
    assert_eq!(c.state(), model.state());
    let st = c.state();
    assert_eq!(st.ack_floor.stream_seq, 102);
    assert_eq!(st.pending.len(), 7);
    assert_eq!(st.redelivered.get(&103), Some(&1));
    let c = k.reopen(c, AckPolicy::Explicit);
    assert_eq!(c.state(), model.state());
}

fn ack_all_covers_everything_up_to_the_ack(k: &dyn ConsumerKind) {
    let c = k.open(AckPolicy::All);
    for i in 1..=20 {
        c.update_delivered(i, i * 2, 1, 0).unwrap();
    }
    c.update_delivered(21, 4, 2, 0).unwrap();
    c.update_acks(10, 20).unwrap();
    let check = |st: ConsumerState| {
        // The floor then rises to just below the first pending message (stream seq 22).
        assert_eq!((st.ack_floor.consumer_seq, st.ack_floor.stream_seq), (10, 21));
        assert_eq!(
            st.pending.keys().copied().collect::<Vec<_>>(),
            (11..=20).map(|i| i * 2).collect::<Vec<_>>()
        );
        assert!(st.redelivered.is_empty(), "acked redeliveries are forgotten");
    };
    check(c.state());
    let c = k.reopen(c, AckPolicy::All);
    check(c.state());
}

fn ack_none_moves_the_floor_with_deliveries(k: &dyn ConsumerKind) {
    let c = k.open(AckPolicy::None);
    for i in 1..=5 {
        c.update_delivered(i, i + 10, 1, 0).unwrap();
    }
    c.update_acks(3, 13).unwrap();
    let st = c.state();
    assert!(st.pending.is_empty());
    assert_eq!(st.ack_floor, st.delivered);
    assert_eq!(st.delivered.stream_seq, 15);
    let c = k.reopen(c, AckPolicy::None);
    assert_eq!(c.state(), st);
}

fn state_survives_reopen_and_a_full_update(k: &dyn ConsumerKind) {
    let c = k.open(AckPolicy::Explicit);
    for i in 1..=5000 {
        c.update_delivered(i, i, 1, 0).unwrap();
    }
    for i in (1..=5000).step_by(2) {
        c.update_acks(i, i).unwrap();
    }
    let before = c.state();
    assert_eq!(before.pending.len(), 2500);
    let c = k.reopen(c, AckPolicy::Explicit);
    assert_eq!(c.state(), before);
    let mut full = before.clone();
    full.pending.clear();
    full.redelivered.insert(7, 3);
    c.update(&full).unwrap();
    assert_eq!(c.state(), full);
    let c = k.reopen(c, AckPolicy::Explicit);
    assert_eq!(c.state(), full);
    c.update_delivered(5001, 5001, 1, 1).unwrap();
    let c = k.reopen(c, AckPolicy::Explicit);
    assert_eq!(c.state().pending.len(), 1);
}

fn redelivery_counts_and_timestamps_survive_reopen(k: &dyn ConsumerKind) {
    let c = k.open(AckPolicy::Explicit);
    c.update_delivered(1, 50, 1, -5).unwrap();
    c.update_delivered(2, 50, 4, i64::MAX).unwrap();
    c.update_delivered(3, 51, 1, 7).unwrap();
    let c = k.reopen(c, AckPolicy::Explicit);
    let st = c.state();
    assert_eq!(st.redelivered.get(&50), Some(&3));
    // The first delivery's consumer sequence, the last delivery's time.
    assert_eq!((st.pending[&50].consumer_seq, st.pending[&50].timestamp), (1, i64::MAX));
    assert_eq!(st.pending[&51].timestamp, 7);
}

fn each_policy_is_kept_across_reopen(k: &dyn ConsumerKind) {
    for policy in [AckPolicy::None, AckPolicy::All, AckPolicy::Explicit] {
        let c = k.open(policy);
        let model = MemConsumerStore::new(policy);
        for s in [&*c, &model as &dyn ConsumerStore] {
            for i in 1..=6 {
                s.update_delivered(i, i, 1, 0).unwrap();
            }
            s.update_acks(4, 4).unwrap();
        }
        let c = k.reopen(c, policy);
        for i in 7..=8 {
            c.update_delivered(i, i, 1, 0).unwrap();
            model.update_delivered(i, i, 1, 0).unwrap();
        }
        c.update_acks(2, 2).unwrap();
        model.update_acks(2, 2).unwrap();
        assert_eq!(c.state(), model.state(), "{policy:?}");
    }
}

fn acks_with_many_pending_append_small_records(k: &dyn ConsumerKind) {
    let c = k.open(AckPolicy::Explicit);
    for i in 1..=100_000 {
        c.update_delivered(i, i, 1, 0).unwrap();
    }
    c.sync().unwrap();
    let before = k.disk_bytes();
    for i in 50_000..50_100 {
        c.update_acks(i, i).unwrap();
    }
    c.sync().unwrap();
    if let (Some(before), Some(after)) = (before, k.disk_bytes()) {
        // At most 128 bytes per call: the ack and, for the shared log, the neighbour's record.
        let grown = after.saturating_sub(before);
        assert!(grown <= 100 * 128, "100 acks wrote {grown} bytes");
    }
    assert_eq!(c.state().pending.len(), 99_900);
}

/// Delivery and ack records are queued lazily (nobody waits for them), yet they must reach
/// the file on their own shortly after, with no sync and no other write behind them.
fn updates_reach_the_file_without_a_sync(k: &dyn ConsumerKind) {
    let c = k.open(AckPolicy::Explicit);
    c.sync().unwrap();
    let Some(before) = k.disk_bytes() else { return };
    c.update_delivered(1, 1, 1, 0).unwrap();
    // Lazy writes wait 10 ms at most; an idle writer sleeps up to a second, so a writer that
    // is not woken by the first lazy write misses this.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    while k.disk_bytes() == Some(before) {
        assert!(std::time::Instant::now() < deadline, "a lazy record was never written");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

fn stop_rejects_writes_and_keeps_the_state(k: &dyn ConsumerKind) {
    let c = k.open(AckPolicy::Explicit);
    c.update_delivered(1, 1, 1, 0).unwrap();
    let st = c.state();
    c.stop().unwrap();
    c.stop().unwrap();
    assert_eq!(c.state(), st);
    if k.closes_on_stop() {
        assert!(matches!(c.update_delivered(2, 2, 1, 0), Err(StoreError::Closed)));
        assert!(matches!(c.update_acks(1, 1), Err(StoreError::Closed)));
        assert!(matches!(c.update(&ConsumerState::default()), Err(StoreError::Closed)));
        assert_eq!(c.state(), st, "a refused write changes nothing");
    }
    let c = k.reopen(c, AckPolicy::Explicit);
    assert_eq!(c.state(), st);
}

fn consumers_of_one_kind_are_independent(k: &dyn ConsumerKind) {
    let a = k.open(AckPolicy::Explicit);
    let b = k.open(AckPolicy::All);
    a.update_delivered(1, 10, 1, 0).unwrap();
    b.update_delivered(1, 20, 1, 0).unwrap();
    b.update_delivered(2, 21, 1, 0).unwrap();
    a.update_acks(1, 10).unwrap();
    b.stop().unwrap();
    a.update_delivered(2, 11, 1, 0).unwrap();
    let a = k.reopen(a, AckPolicy::Explicit);
    assert_eq!(a.state().pending.keys().copied().collect::<Vec<_>>(), vec![11]);
    assert_eq!(b.state().pending.len(), 2);
}

#[test]
fn torn_consumer_log_tail_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fast_engine();
    let c = FileConsumerStore::open(&engine, dir.path(), AckPolicy::Explicit, SyncPolicy::Always).unwrap();
    c.update_delivered(1, 1, 1, 0).unwrap();
    c.update_delivered(2, 2, 1, 0).unwrap();
    c.stop().unwrap();
    let log = dir.path().join("consumer.log");
    let data = std::fs::read(&log).unwrap();
    std::fs::write(&log, &data[..data.len() - 3]).unwrap();
    let c = FileConsumerStore::open(&engine, dir.path(), AckPolicy::Explicit, SyncPolicy::Always).unwrap();
    assert_eq!(c.state().delivered.stream_seq, 1);
    c.update_delivered(2, 2, 1, 0).unwrap();
    c.stop().unwrap();
    let c = FileConsumerStore::open(&engine, dir.path(), AckPolicy::Explicit, SyncPolicy::Always).unwrap();
    assert_eq!(c.state().delivered.stream_seq, 2);
}
