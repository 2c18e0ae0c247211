//! Consumer store benchmarks (never pass/fail). Run:
//! `cargo bench -p jetway-storage --bench consumers`.
//!
//! Before the criterion groups it prints a summary: creating durable consumers one folder each
//! (`FileConsumerStore`, what every consumer costs without the shared log) against adding them
//! to a [`SharedConsumerLog`] under `SyncPolicy::Always` with many adds in flight (their
//! completions fire once an fsync covers them, so many adds share one fsync), and the rate of
//! delivered/ack records over 10,000 consumers of one log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{bench_dir, confirmed_n, engine, raw_fsync_rate};
use criterion::{BenchmarkId, Criterion, Throughput};
use jetway_storage::{
    AckPolicy, ConsumerStore, FileConsumerStore, SharedConsumer, SharedConsumerLog, SyncPolicy,
};

/// What the MQTT gateway stores per session consumer: its config as JSON and a creation time.
fn meta(name: &str) -> Vec<u8> {
    format!(
        "{{\"config\":{{\"durable_name\":\"{name}\",\"deliver_policy\":\"new\",\"ack_policy\":\"explicit\",\
         \"ack_wait\":30000000000,\"max_deliver\":-1,\"filter_subject\":\"$MQTT.msgs.{name}\",\
         \"replay_policy\":\"instant\",\"max_ack_pending\":1024}},\"created\":1700000000000000000}}"
    )
    .into_bytes()
}

static NEXT_NAME: AtomicU64 = AtomicU64::new(0);

fn next_name() -> String {
    format!("sess{}", NEXT_NAME.fetch_add(1, Ordering::Relaxed))
}

/// Adds `n` consumers keeping at most `in_flight` unconfirmed; returns the time until the last
/// completion.
fn add_n(log: &Arc<SharedConsumerLog>, n: u64, in_flight: u64) -> Duration {
    confirmed_n(n, Some(in_flight), |done| {
        let name = next_name();
        log.add(&name, meta(&name), AckPolicy::Explicit, Some(done)).unwrap();
    })
}

fn summary() {
    let engine = engine();
    let dir = bench_dir();
    let raw = raw_fsync_rate(dir.path(), 300);
    println!("raw fsync rate (128 B write + fdatasync): {raw:.0}/s");
    let n_file = 300;
    let start = Instant::now();
    for i in 0..n_file {
        let c = FileConsumerStore::open(
            &engine,
            &dir.path().join(format!("obs/c{i}")),
            AckPolicy::Explicit,
            SyncPolicy::Always,
        )
        .unwrap();
        c.sync().unwrap();
    }
    let per_folder = f64::from(n_file) / start.elapsed().as_secs_f64();
    println!("FileConsumerStore, one folder per consumer, open + sync: {per_folder:.0} consumers/s");
    for in_flight in [1u64, 64, 256, 1024] {
        let log = SharedConsumerLog::open(
            &engine,
            &dir.path().join(format!("shared-{in_flight}")),
            SyncPolicy::Always,
        )
        .unwrap()
        .log;
        let n = if in_flight == 1 { 500 } else { 50_000 };
        let t = add_n(&log, n, in_flight);
        let rate = n as f64 / t.as_secs_f64();
        println!(
            "SharedConsumerLog add, Always, {in_flight} in flight: {rate:.0} adds/s ({n} adds) = {:.1}x the raw fsync rate",
            rate / raw
        );
        log.stop().unwrap();
    }
    let log = SharedConsumerLog::open(&engine, &dir.path().join("updates"), SyncPolicy::Always).unwrap().log;
    let handles: Vec<Arc<SharedConsumer>> = (0..10_000)
        .map(|_| next_name())
        .map(|n| log.add(&n, meta(&n), AckPolicy::Explicit, None).unwrap())
        .collect();
    log.sync().unwrap();
    let start = Instant::now();
    let rounds = 20u64;
    for r in 1..=rounds {
        for h in &handles {
            h.update_delivered(r, r, 1, 0).unwrap();
            h.update_acks(r, r).unwrap();
        }
    }
    log.sync().unwrap();
    let records = (rounds * 2 * handles.len() as u64) as f64;
    println!(
        "SharedConsumerLog updates over 10,000 consumers (Always, one sync at the end): {:.0} records/s",
        records / start.elapsed().as_secs_f64()
    );
    let compaction = Instant::now();
    log.compact().unwrap();
    println!("compacting 10,000 consumers (encoding under the log's lock): {:?}", compaction.elapsed());
    log.stop().unwrap();
    drop(handles);
    drop(log);
    let reopen = Instant::now();
    let opened = SharedConsumerLog::open(&engine, &dir.path().join("updates"), SyncPolicy::Always).unwrap();
    println!("reopen of 10,000 consumers: {:?}", reopen.elapsed());
    assert_eq!(opened.consumers.len(), 10_000);
}

fn adds(c: &mut Criterion) {
    let engine = engine();
    let dir = bench_dir();
    let mut group = c.benchmark_group("shared_consumer_log/add_always");
    group.throughput(Throughput::Elements(1));
    for in_flight in [64u64, 1024] {
        let log =
            SharedConsumerLog::open(&engine, &dir.path().join(format!("c-{in_flight}")), SyncPolicy::Always)
                .unwrap()
                .log;
        group.bench_with_input(BenchmarkId::new("in_flight", in_flight), &in_flight, |b, n| {
            b.iter_custom(|iters| add_n(&log, iters, *n));
        });
        log.stop().unwrap();
    }
    group.finish();
}

fn main() {
    summary();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .configure_from_args();
    adds(&mut c);
    c.final_summary();
}
