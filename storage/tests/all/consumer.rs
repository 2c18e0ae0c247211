//! Consumer stores: state survives reopen; acks stay small whatever the pending count.

use std::sync::Arc;

use jetway_storage::{AckPolicy, ConsumerStore, FileConsumerStore, MemConsumerStore, RealIo, SyncPolicy};

use crate::common::fast_engine;

fn exercise(c: &dyn ConsumerStore) {
    for i in 1..=10 {
        c.update_delivered(i, i + 100, 1, i as i64).unwrap();
    }
    c.update_delivered(11, 103, 2, 99).unwrap();
    c.update_acks(1, 101).unwrap();
    c.update_acks(2, 102).unwrap();
    c.update_acks(5, 105).unwrap();
}

#[test]
fn mem_and_file_consumer_stores_agree() {
    let mem = MemConsumerStore::new(AckPolicy::Explicit);
    exercise(&mem);
    let dir = tempfile::tempdir().unwrap();
    let engine = fast_engine();
    let file = FileConsumerStore::open(&engine, dir.path(), AckPolicy::Explicit, SyncPolicy::Always).unwrap();
    exercise(&file);
    assert_eq!(mem.state(), file.state());
    let st = mem.state();
    assert_eq!(st.ack_floor.stream_seq, 102);
    assert_eq!(st.pending.len(), 7);
    assert_eq!(st.redelivered.get(&103), Some(&1));
}

#[test]
fn file_consumer_state_survives_reopen_and_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fast_engine();
    let c = FileConsumerStore::open(&engine, dir.path(), AckPolicy::Explicit, SyncPolicy::Always).unwrap();
    for i in 1..=5000 {
        c.update_delivered(i, i, 1, 0).unwrap();
    }
    for i in (1..=5000).step_by(2) {
        c.update_acks(i, i).unwrap();
    }
    let before = c.state();
    c.stop().unwrap();
    let c = FileConsumerStore::open(&engine, dir.path(), AckPolicy::Explicit, SyncPolicy::Always).unwrap();
    assert_eq!(c.state(), before);
    let mut full = before.clone();
    full.pending.clear();
    c.update(&full).unwrap();
    c.stop().unwrap();
    let c = FileConsumerStore::open_with(
        &engine,
        Arc::new(RealIo),
        dir.path(),
        AckPolicy::Explicit,
        SyncPolicy::Always,
    )
    .unwrap();
    assert_eq!(c.state(), full);
}

#[test]
fn acks_with_many_pending_append_small_records() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fast_engine();
    let c = FileConsumerStore::open(&engine, dir.path(), AckPolicy::Explicit, SyncPolicy::Never).unwrap();
    for i in 1..=100_000 {
        c.update_delivered(i, i, 1, 0).unwrap();
    }
    c.sync().unwrap();
    let log = dir.path().join("consumer.log");
    let before = std::fs::metadata(&log).unwrap().len();
    for i in 50_000..50_100 {
        c.update_acks(i, i).unwrap();
    }
    c.sync().unwrap();
    let grown = std::fs::metadata(&log).unwrap().len() - before;
    assert!(grown <= 100 * 64, "100 acks wrote {grown} bytes");
    assert_eq!(c.state().pending.len(), 99_900);
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
