//! Store benchmarks (never pass/fail). Run: `cargo bench -p jetway-storage --bench store`.
//!
//! Before the criterion groups it prints a summary: the machine's raw fsync rate (a loop of
//! small write + fdatasync), `Always`-policy throughput with 64 appends in flight as a multiple
//! of it (group commit), and bytes on disk per 128-byte message.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{bench_dir, confirmed_n, engine, raw_fsync_rate};
use criterion::{BenchmarkId, Criterion, Throughput};
use jetway_storage::{FileStore, NewMessage, StreamConfig, StreamStore, SubjectFilter, SyncPolicy};

fn config(sync: SyncPolicy) -> StreamConfig {
    let mut c = StreamConfig::named("bench");
    c.sync = sync;
    c.max_bytes = Some(1 << 30);
    c
}

/// Appends `n` messages keeping at most `in_flight` unacknowledged (None: no limit) and
/// returns the time until the last completion.
fn append_n(store: &dyn StreamStore, payload: &Bytes, n: u64, in_flight: Option<u64>) -> Duration {
    confirmed_n(n, in_flight, |done| {
        store.append(NewMessage::new("bench.subject", payload.clone()), Some(done)).unwrap();
    })
}

fn summary() {
    let dir = bench_dir();
    let raw = raw_fsync_rate(dir.path(), 300);
    let engine = engine();
    let store = FileStore::open(&engine, &dir.path().join("always"), config(SyncPolicy::Always)).unwrap();
    let payload = Bytes::from(vec![1u8; 128]);
    let n = 20_000;
    let t = append_n(&store, &payload, n, Some(64));
    let always = n as f64 / t.as_secs_f64();
    let interval = FileStore::open(
        &engine,
        &dir.path().join("interval"),
        config(SyncPolicy::Interval(Duration::from_millis(100))),
    )
    .unwrap();
    let n2 = 1_000_000;
    let t2 = append_n(&interval, &payload, n2, None);
    interval.sync().unwrap();
    let per_msg = dir_size(&dir.path().join("interval")) as f64 / n2 as f64;
    println!("raw fsync rate (128 B write + fdatasync): {raw:.0}/s");
    println!("Always, 64 in flight, 128 B: {always:.0} msgs/s = {:.1}x the raw fsync rate", always / raw);
    println!("Interval(100ms), 128 B, one stream: {:.0} msgs/s", n2 as f64 / t2.as_secs_f64());
    println!("bytes on disk per 128-byte message: {per_msg:.1}");
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
}

fn policies() -> [(&'static str, SyncPolicy, Option<u64>); 3] {
    [
        ("always_64_in_flight", SyncPolicy::Always, Some(64)),
        ("interval_100ms", SyncPolicy::Interval(Duration::from_millis(100)), None),
        ("never", SyncPolicy::Never, None),
    ]
}

fn appends(c: &mut Criterion) {
    let engine = engine();
    let dir = bench_dir();
    for (name, sync, in_flight) in policies() {
        let mut group = c.benchmark_group(format!("append_1_stream/{name}"));
        for size in [16usize, 128, 1024, 16 * 1024] {
            let store =
                FileStore::open(&engine, &dir.path().join(format!("{name}-{size}")), config(sync)).unwrap();
            let payload = Bytes::from(vec![3u8; size]);
            group.throughput(Throughput::Elements(1));
            group.bench_with_input(BenchmarkId::new("msgs", size), &size, |b, _| {
                b.iter_custom(|iters| append_n(&store, &payload, iters, in_flight));
            });
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_with_input(BenchmarkId::new("bytes", size), &size, |b, _| {
                b.iter_custom(|iters| append_n(&store, &payload, iters, in_flight));
            });
            store.stop().unwrap();
        }
        group.finish();
    }
    for (name, sync, in_flight) in policies() {
        let mut group = c.benchmark_group(format!("append_8_streams/{name}"));
        for size in [16usize, 128, 1024, 16 * 1024] {
            let stores: Vec<Arc<FileStore>> = (0..8)
                .map(|i| {
                    Arc::new(
                        FileStore::open(
                            &engine,
                            &dir.path().join(format!("{name}-{size}-{i}")),
                            config(sync),
                        )
                        .unwrap(),
                    )
                })
                .collect();
            let payload = Bytes::from(vec![3u8; size]);
            group.throughput(Throughput::Elements(1));
            group.bench_with_input(BenchmarkId::new("msgs", size), &size, |b, _| {
                b.iter_custom(|iters| {
                    let per = iters.div_ceil(8);
                    let start = Instant::now();
                    std::thread::scope(|s| {
                        for store in &stores {
                            let p = payload.clone();
                            s.spawn(move || append_n(&**store, &p, per, in_flight));
                        }
                    });
                    start.elapsed()
                });
            });
            for s in stores {
                s.stop().unwrap();
            }
        }
        group.finish();
    }
}

fn load_next(c: &mut Criterion) {
    let engine = engine();
    let dir = bench_dir();
    let store = FileStore::open(&engine, &dir.path().join("reads"), config(SyncPolicy::Never)).unwrap();
    let payload = Bytes::from(vec![5u8; 128]);
    let n = 200_000u64;
    for i in 0..n {
        store.append(NewMessage::new(&format!("orders.{}.created", i % 16), payload.clone()), None).unwrap();
    }
    store.sync().unwrap();
    let mut group = c.benchmark_group("load_next");
    group.throughput(Throughput::Elements(1));
    // A session consumer's thousands of filters, one of which the stream holds.
    let many: Vec<String> =
        (0..4_000).map(|i| format!("devices.{i}.state")).chain(["orders.3.created".into()]).collect();
    for (name, filter) in [
        ("literal", SubjectFilter::one("orders.3.created")),
        ("wildcard", SubjectFilter::one("orders.*.created")),
        ("sparse_wildcard", SubjectFilter::one("orders.3.*")),
        ("many_literals", SubjectFilter::new(&many)),
    ] {
        let mut next = 1;
        group.bench_function(name, |b| {
            b.iter(|| {
                let m = match store.load_next(&filter, next) {
                    Ok(m) => m,
                    Err(_) => store.load_next(&filter, 1).unwrap(),
                };
                next = m.seq + 1;
                m.seq
            });
        });
    }
    group.finish();
}

fn open_recovery(c: &mut Criterion) {
    let engine = engine();
    let dir = bench_dir();
    let path = dir.path().join("million");
    {
        let store = FileStore::open(&engine, &path, config(SyncPolicy::Never)).unwrap();
        let payload = Bytes::from(vec![9u8; 128]);
        for i in 0..1_000_000u64 {
            store.append(NewMessage::new(&format!("kv.{}", i % 1000), payload.clone()), None).unwrap();
        }
        store.stop().unwrap();
    }
    let mut group = c.benchmark_group("open");
    group.sample_size(10);
    group.bench_function("1m_messages", |b| {
        b.iter(|| {
            let s = FileStore::open(&engine, &path, config(SyncPolicy::Never)).unwrap();
            assert_eq!(s.state().msgs, 1_000_000);
            s.stop().unwrap();
        });
    });
    group.finish();
}

/// KV-style: one million distinct subjects, one message each (the index is shared by both
/// stores; the memory store isolates it from disk reads).
fn million_subjects(c: &mut Criterion) {
    let engine = engine();
    let mut cfg = StreamConfig::named("kv");
    cfg.max_msgs_per_subject = Some(1);
    let store = jetway_storage::MemStore::new(&engine, cfg);
    let payload = Bytes::from_static(b"value");
    let n = 1_000_000u64;
    let start = Instant::now();
    for i in 0..n {
        store.append(NewMessage::new(&format!("$KV.bucket.key{i}"), payload.clone()), None).unwrap();
    }
    println!("1,000,000 distinct subjects appended in {:?}", start.elapsed());
    let keys: Vec<String> = (0..4096u64).map(|i| format!("$KV.bucket.key{}", i * 7919 % n)).collect();
    let mut group = c.benchmark_group("million_subjects");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("load_last_literal", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            store.load_last(&keys[i]).unwrap().seq
        });
    });
    group.bench_function("load_next_literal", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            store.load_next(&SubjectFilter::one(&keys[i]), 1).unwrap().seq
        });
    });
    group.bench_function("overwrite_with_per_subject_limit", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            store.append(NewMessage::new(&keys[i], payload.clone()), None).unwrap()
        });
    });
    let wild: Vec<String> = (0..4096u64).map(|i| format!("$KV.*.key{}", i * 7919 % n)).collect();
    group.bench_function("load_last_wildcard", |b| {
        b.iter(|| {
            i = (i + 1) % wild.len();
            store.load_last(&wild[i]).unwrap().seq
        });
    });
    group.bench_function("subjects_state_literal", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            store.subjects_state(&keys[i]).len()
        });
    });
    group.finish();
}

fn main() {
    summary();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10)
        .configure_from_args();
    load_next(&mut c);
    million_subjects(&mut c);
    open_recovery(&mut c);
    appends(&mut c);
    c.final_summary();
}
