//! What the benchmarks share: the engine, a temp folder, the raw fsync rate and the
//! "n operations, at most k unconfirmed" driver.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use jetway_storage::{Completion, Engine, EngineConfig};

pub fn engine() -> Engine {
    Engine::new(EngineConfig { writer_threads: 2, ..EngineConfig::default() }).unwrap()
}

pub fn bench_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(std::env::temp_dir()).unwrap()
}

/// Small write + fdatasync per iteration: what one un-batched durable record costs.
pub fn raw_fsync_rate(dir: &Path, n: u32) -> f64 {
    let mut f = OpenOptions::new().create(true).append(true).open(dir.join("raw")).unwrap();
    let start = Instant::now();
    for _ in 0..n {
        f.write_all(&[7u8; 128]).unwrap();
        f.sync_data().unwrap();
    }
    f64::from(n) / start.elapsed().as_secs_f64()
}

/// Starts `n` operations with `start` (which hands its completion to the store), keeping at
/// most `in_flight` unconfirmed (None: no limit); returns the time until the last completion.
pub fn confirmed_n(n: u64, in_flight: Option<u64>, mut start: impl FnMut(Completion)) -> Duration {
    let begin = Instant::now();
    let gate = Arc::new((Mutex::new(0u64), Condvar::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..n {
        if let Some(limit) = in_flight {
            let mut k = gate.0.lock().unwrap();
            while *k >= limit {
                k = gate.1.wait(k).unwrap();
            }
            *k += 1;
        }
        let g = Arc::clone(&gate);
        let tx = (i + 1 == n).then(|| tx.clone());
        start(Box::new(move |r: jetway_storage::Result<u64>| {
            r.unwrap();
            *g.0.lock().unwrap() -= 1;
            g.1.notify_one();
            if let Some(tx) = tx {
                tx.send(()).unwrap();
            }
        }));
    }
    if n > 0 {
        rx.recv().unwrap();
    }
    begin.elapsed()
}
