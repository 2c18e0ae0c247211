//! The storage engine: the threads every store of a server shares.
//!
//! One expiry thread serves every store (no per-message timers): it asks each registered store
//! to drop what has expired and sleeps until the earliest next deadline (at most one tick).
//! A few writer threads (see [`crate::file::writer`]) do every file write and fsync.

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::file::writer::Writer;
use crate::message::now_nanos;

/// Something with messages that expire.
pub(crate) trait Expirable: Send + Sync {
    /// Removes what is due at `now`; returns the next deadline.
    fn expire_due(&self, now: i64) -> Option<i64>;
}

/// Wraps the completions a writer thread fires for one batch, so that what they produce can
/// be dealt with once per batch (the server writes the acknowledgements they queue to the
/// clients' sockets at the end, instead of waking each client's writer task).
pub trait CompletionScope: Send + Sync {
    /// Calls `complete`, which fires the batch's completions, inside the scope.
    fn run(&self, complete: &mut dyn FnMut());
}

/// Engine settings.
#[derive(Clone)]
pub struct EngineConfig {
    /// Number of writer (group-commit) threads shared by every file store.
    pub writer_threads: usize,
    /// Longest sleep of the expiry thread, bounding how late an expiry can be.
    pub expiry_tick: Duration,
    /// Wraps each writer batch's completions (none: they just run).
    pub completion_scope: Option<Arc<dyn CompletionScope>>,
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("writer_threads", &self.writer_threads)
            .field("expiry_tick", &self.expiry_tick)
            .field("completion_scope", &self.completion_scope.is_some())
            .finish()
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { writer_threads: 1, expiry_tick: Duration::from_millis(100), completion_scope: None }
    }
}

#[derive(Default)]
struct ExpiryState {
    targets: Vec<Weak<dyn Expirable>>,
    shutdown: bool,
}

/// Upper bounds (in microseconds) of the fsync latency histogram buckets; a last bucket holds
/// everything slower.
pub const SYNC_BUCKETS_US: [u64; 10] = [50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000];

/// fsync counters of a writer thread (or, summed, of an engine).
#[derive(Debug, Default)]
pub struct SyncStats {
    count: std::sync::atomic::AtomicU64,
    total_nanos: std::sync::atomic::AtomicU64,
    buckets: [std::sync::atomic::AtomicU64; SYNC_BUCKETS_US.len() + 1],
}

/// A snapshot of [`SyncStats`]: how many fsyncs, their total time, and a histogram
/// (non-cumulative counts per bucket of [`SYNC_BUCKETS_US`], then the overflow bucket).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncSnapshot {
    pub count: u64,
    pub total_nanos: u64,
    pub buckets: Vec<u64>,
}

impl SyncStats {
    pub(crate) fn record(&self, took: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = SYNC_BUCKETS_US.iter().position(|b| us <= *b).unwrap_or(SYNC_BUCKETS_US.len());
        self.count.fetch_add(1, Relaxed);
        self.total_nanos.fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Relaxed);
        if let Some(b) = self.buckets.get(bucket) {
            b.fetch_add(1, Relaxed);
        }
    }

    fn add_to(&self, snap: &mut SyncSnapshot) {
        use std::sync::atomic::Ordering::Relaxed;
        snap.count += self.count.load(Relaxed);
        snap.total_nanos += self.total_nanos.load(Relaxed);
        if snap.buckets.len() < self.buckets.len() {
            snap.buckets.resize(self.buckets.len(), 0);
        }
        for (total, b) in snap.buckets.iter_mut().zip(&self.buckets) {
            *total += b.load(Relaxed);
        }
    }
}

pub(crate) struct Shared {
    expiry: Mutex<ExpiryState>,
    expiry_cv: Condvar,
    pub writers: Vec<Arc<Writer>>,
    next_writer: std::sync::atomic::AtomicUsize,
}

/// Which writer thread a new store's writes go to.
///
/// Stores opened with the same key share a writer: writes to them that are queued together
/// (say, a record in one and a record in the other, both awaited) then go out in the same
/// batch, with one wake-up of one thread and their fsyncs back to back, instead of waking two
/// threads and waiting for the later of two batches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Affinity {
    /// The next writer in turn (spreads independent stores over the threads).
    #[default]
    Any,
    /// The writer of every store opened with this key.
    Key(u64),
}

impl Affinity {
    /// The affinity of every store opened with `name`.
    pub fn named(name: &str) -> Affinity {
        // FNV-1a: stable, and the names are few and short.
        let hash = name
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        Affinity::Key(hash)
    }
}

impl Shared {
    /// The writer thread for a new store.
    pub fn writer(&self, affinity: Affinity) -> Option<Arc<Writer>> {
        let n = match affinity {
            Affinity::Any => self.next_writer.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            // Truncation is fine: only the remainder matters.
            Affinity::Key(key) => key as usize,
        };
        self.writers.get(n % self.writers.len().max(1)).cloned()
    }

    pub fn register_expiry(&self, target: Weak<dyn Expirable>) {
        self.expiry.lock().targets.push(target);
        self.expiry_cv.notify_one();
    }
}

/// The shared threads of all stores. Dropping it stops them (after flushing queued writes).
pub struct Engine {
    pub(crate) shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("writers", &self.shared.writers.len()).finish()
    }
}

impl Engine {
    /// fsyncs done so far by this engine's writer threads.
    pub fn sync_stats(&self) -> SyncSnapshot {
        let mut snap = SyncSnapshot::default();
        for writer in &self.shared.writers {
            writer.stats.add_to(&mut snap);
        }
        snap
    }

    /// Starts the engine's threads.
    pub fn new(config: EngineConfig) -> std::io::Result<Engine> {
        let writers: Vec<Arc<Writer>> = (0..config.writer_threads.max(1))
            .map(|_| Arc::new(Writer::new(config.completion_scope.clone())))
            .collect();
        let shared = Arc::new(Shared {
            expiry: Mutex::new(ExpiryState::default()),
            expiry_cv: Condvar::new(),
            writers: writers.clone(),
            next_writer: Default::default(),
        });
        let mut threads = Vec::new();
        for (i, w) in writers.into_iter().enumerate() {
            threads.push(
                std::thread::Builder::new()
                    .name(format!("jetway-store-writer-{i}"))
                    .spawn(move || w.run())?,
            );
        }
        let s = Arc::clone(&shared);
        let tick = config.expiry_tick;
        threads.push(
            std::thread::Builder::new()
                .name("jetway-store-expiry".into())
                .spawn(move || expiry_loop(&s, tick))?,
        );
        Ok(Engine { shared, threads })
    }

    /// An engine with default settings.
    pub fn start() -> std::io::Result<Engine> {
        Engine::new(EngineConfig::default())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shared.expiry.lock().shutdown = true;
        self.shared.expiry_cv.notify_all();
        for w in &self.shared.writers {
            w.shutdown();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn expiry_loop(shared: &Shared, tick: Duration) {
    let mut state = shared.expiry.lock();
    while !state.shutdown {
        let targets: Vec<Arc<dyn Expirable>> = {
            state.targets.retain(|t| t.strong_count() > 0);
            state.targets.iter().filter_map(Weak::upgrade).collect()
        };
        let now = now_nanos();
        let next = parking_lot::MutexGuard::unlocked(&mut state, || {
            targets.iter().filter_map(|t| t.expire_due(now)).min()
        });
        let mut wait = tick;
        if let Some(next) = next {
            let until = u64::try_from(next.saturating_sub(now_nanos())).unwrap_or(0);
            wait = wait.min(Duration::from_nanos(until).max(Duration::from_millis(1)));
        }
        if !state.shutdown {
            shared.expiry_cv.wait_for(&mut state, wait);
        }
    }
}

#[cfg(test)]
mod sync_stats_tests {
    use super::*;
    use crate::{FileStore, NewMessage, StreamConfig, StreamStore};

    #[test]
    fn fsyncs_are_counted_in_the_latency_histogram() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::start().unwrap();
        assert_eq!(engine.sync_stats().count, 0);
        let store = FileStore::open(&engine, &dir.path().join("s"), StreamConfig::named("s")).unwrap();
        store.append(NewMessage::new("a", "x"), None).unwrap();
        store.sync().unwrap();
        let snap = engine.sync_stats();
        assert!(snap.count >= 1);
        assert_eq!(snap.buckets.len(), SYNC_BUCKETS_US.len() + 1);
        assert_eq!(snap.buckets.iter().sum::<u64>(), snap.count);
    }
}

#[cfg(test)]
mod affinity_tests {
    use super::*;
    use crate::{AckPolicy, FileStore, NewMessage, SharedConsumerLog, StreamConfig, StreamStore, SyncPolicy};

    fn engine(writers: usize) -> Engine {
        Engine::new(EngineConfig { writer_threads: writers, ..EngineConfig::default() }).unwrap()
    }

    /// fsyncs per writer thread.
    fn fsyncs(engine: &Engine) -> Vec<u64> {
        engine
            .shared
            .writers
            .iter()
            .map(|w| {
                let mut snap = SyncSnapshot::default();
                w.stats.add_to(&mut snap);
                snap.count
            })
            .collect()
    }

    #[test]
    fn one_key_always_names_the_same_writer_and_any_takes_turns() {
        let engine = engine(4);
        let key = Affinity::named("sessions");
        let first = engine.shared.writer(key).unwrap();
        let mut turns = Vec::new();
        for _ in 0..8 {
            assert!(Arc::ptr_eq(&first, &engine.shared.writer(key).unwrap()));
            turns.push(engine.shared.writer(Affinity::Any).unwrap());
        }
        for (i, w) in turns.iter().enumerate() {
            assert!(Arc::ptr_eq(w, &turns[(i + 4) % 8]), "round robin over the 4 writers");
            assert!(!Arc::ptr_eq(w, &turns[(i + 1) % 8]));
        }
        assert_eq!(Affinity::named("sessions"), key);
        assert_ne!(Affinity::named("other"), key);
    }

    #[test]
    fn a_store_and_a_log_with_one_affinity_are_synced_by_one_writer() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(4);
        let affinity = Affinity::named("together");
        let config = StreamConfig { affinity, ..StreamConfig::named("s") };
        let store = FileStore::open(&engine, &dir.path().join("s"), config).unwrap();
        let opened =
            SharedConsumerLog::open_beside(&engine, &dir.path().join("log"), SyncPolicy::Always, affinity)
                .unwrap();
        let before = fsyncs(&engine);
        for i in 0..3 {
            store.append(NewMessage::new("a", "x"), None).unwrap();
            opened.log.add(&format!("c{i}"), b"{}".to_vec(), AckPolicy::Explicit, None).unwrap();
            store.sync().unwrap();
            opened.log.sync().unwrap();
        }
        let grown: Vec<u64> = fsyncs(&engine).iter().zip(&before).map(|(a, b)| a - b).collect();
        assert_eq!(grown.iter().filter(|n| **n > 0).count(), 1, "fsyncs per writer: {grown:?}");
    }
}
