//! Every behaviour test, run against MemStore and FileStore (and, where it matters, across a
//! reopen of the file store).

use std::sync::{mpsc, Arc};
use std::time::Duration;

use bytes::Bytes;
use jetway_storage::{
    snapshot, DiscardPolicy, NewMessage, PurgeOptions, StoreError, StreamConfig, StreamStore, SubjectFilter,
    SubjectState, UsageCounter,
};

use crate::common::{cfg, payload, put, File, Kind, Mem};

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod mem {
            $( #[test] fn $name() { super::$name(&crate::common::Mem::new()) } )*
        }
        mod file {
            $( #[test] fn $name() { super::$name(&crate::common::File::new()) } )*
        }
    };
}

conformance!(
    append_assigns_sequences_and_reads_back,
    completions_report_each_sequence_in_order,
    headers_and_payload_round_trip,
    load_last_finds_newest_for_subject_and_wildcard,
    load_next_honours_literal_wildcard_and_multiple_filters,
    remove_leaves_a_gap_counted_as_deleted,
    erase_removes_the_message,
    purge_all_keeps_the_sequence,
    purge_by_filter_keep_and_upto,
    compact_removes_everything_below,
    compact_past_the_end_moves_first_sequence,
    truncate_removes_everything_above_and_reuses_sequences,
    state_counts_subjects_and_deleted,
    subjects_and_filtered_state_count_per_filter,
    max_msgs_discard_old_drops_the_oldest,
    max_bytes_discard_old_drops_the_oldest,
    discard_new_rejects_when_full,
    max_msgs_per_subject_keeps_the_newest,
    discard_new_per_subject_rejects_when_subject_is_full,
    max_msg_size_is_enforced,
    max_age_expires_in_the_background,
    ttl_expires_a_single_message,
    delete_markers_replace_the_last_message_of_a_subject,
    delete_markers_expire_without_leaving_markers,
    update_config_enforces_new_limits_at_once,
    append_raw_and_skip_to_leave_gaps,
    first_seq_config_starts_there,
    snapshot_restores_into_an_empty_store,
    reopen_keeps_messages_deletes_and_sequences,
    reopen_after_purge_and_compact_keeps_sequences,
    reopen_after_truncate_keeps_the_new_tail,
    many_subjects_stay_fast,
    stop_rejects_writes,
    usage_counter_follows_bytes_through_appends_limits_purges_and_expiry,
);

fn append_assigns_sequences_and_reads_back(k: &dyn Kind) {
    let s = k.open(StreamConfig::named("t"));
    assert_eq!(s.state().first_seq, 0);
    for i in 1..=10u64 {
        assert_eq!(put(&*s, "foo", &format!("m{i}")), i);
    }
    assert_eq!(payload(&*s, 7), "m7");
    let m = s.load(3).unwrap();
    assert_eq!(&*m.subject, "foo");
    assert!(m.timestamp > 0);
    assert!(matches!(s.load(11), Err(StoreError::NotFound)));
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (10, 1, 10));
}

fn completions_report_each_sequence_in_order(k: &dyn Kind) {
    let s = k.open(StreamConfig::named("t"));
    let (tx, rx) = mpsc::channel();
    for i in 0..50 {
        let tx = tx.clone();
        s.append(NewMessage::new("a", format!("{i}")), Some(Box::new(move |r| tx.send(r.unwrap()).unwrap())))
            .unwrap();
    }
    let got: Vec<u64> = (0..50).map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap()).collect();
    assert_eq!(got, (1..=50).collect::<Vec<_>>());
}

fn headers_and_payload_round_trip(k: &dyn Kind) {
    let s = k.open(StreamConfig::named("t"));
    let hdr = Bytes::from_static(b"NATS/1.0\r\nA: b\r\n\r\n");
    s.append(NewMessage::new("h", "body").with_headers(hdr.clone()), None).unwrap();
    put(&*s, "h", "");
    let s = k.reopen(s, StreamConfig::named("t"));
    let m = s.load(1).unwrap();
    assert_eq!(m.headers, Some(hdr));
    assert_eq!(&m.payload[..], b"body");
    let m = s.load(2).unwrap();
    assert_eq!((m.headers, m.payload.len()), (None, 0));
}

fn load_last_finds_newest_for_subject_and_wildcard(k: &dyn Kind) {
    let s = k.open(StreamConfig::named("t"));
    put(&*s, "a.1", "x");
    put(&*s, "a.2", "y");
    put(&*s, "a.1", "z");
    put(&*s, "b.1", "w");
    assert_eq!(s.load_last("a.1").unwrap().seq, 3);
    assert_eq!(s.load_last("a.*").unwrap().seq, 3);
    assert_eq!(s.load_last(">").unwrap().seq, 4);
    assert_eq!(s.load_last("a.2").unwrap().seq, 2);
    assert!(matches!(s.load_last("c"), Err(StoreError::NotFound)));
}

fn load_next_honours_literal_wildcard_and_multiple_filters(k: &dyn Kind) {
    let s = k.open(StreamConfig::named("t"));
    for i in 0..600 {
        put(&*s, &format!("x.{}", i % 3), "p");
    }
    put(&*s, "y.1", "late");
    assert_eq!(s.load_next(&SubjectFilter::new(&["x.1"]), 1).unwrap().seq, 2);
    assert_eq!(s.load_next(&SubjectFilter::new(&["x.1"]), 3).unwrap().seq, 5);
    assert_eq!(s.load_next(&SubjectFilter::new(&["x.*"]), 10).unwrap().seq, 10);
    assert_eq!(s.load_next(&SubjectFilter::new(&["y.*"]), 1).unwrap().seq, 601);
    assert_eq!(s.load_next(&SubjectFilter::new(&["y.>"]), 1).unwrap().seq, 601);
    assert_eq!(s.load_next(&SubjectFilter::new(&["x.2", "y.1"]), 599).unwrap().seq, 600);
    assert_eq!(s.load_next(&SubjectFilter::new(&["x.0", "x.2"]), 2).unwrap().seq, 3);
    assert_eq!(s.load_next(&SubjectFilter::all(), 42).unwrap().seq, 42);
    assert!(matches!(s.load_next(&SubjectFilter::new(&["z"]), 1), Err(StoreError::NotFound)));
    assert!(matches!(s.load_next(&SubjectFilter::new(&["x.*"]), 601), Err(StoreError::NotFound)));
    // Near the end (a caught-up consumer), with a removed message in the way.
    assert!(s.remove(600, false).unwrap());
    assert_eq!(s.load_next(&SubjectFilter::new(&["x.2", "y.1"]), 599).unwrap().seq, 601);
    assert_eq!(s.load_next(&SubjectFilter::new(&["x.1", "x.2"]), 598).unwrap().seq, 599);
    assert!(matches!(s.load_next(&SubjectFilter::new(&["x.0", "x.2"]), 600), Err(StoreError::NotFound)));
    // Many filters (a session consumer's): the next messages first, then every subject.
    let absent: Vec<String> = (0..300).map(|i| format!("z.{i}")).collect();
    let with = |extra: &[&str]| {
        SubjectFilter::new(
            &absent.iter().map(String::as_str).chain(extra.iter().copied()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(s.load_next(&with(&["x.1"]), 1).unwrap().seq, 2);
    assert_eq!(s.load_next(&with(&["y.1"]), 1).unwrap().seq, 601);
    assert_eq!(s.load_next(&with(&["y.*"]), 1).unwrap().seq, 601);
    assert_eq!(s.load_next(&with(&["x.1", "*.1"]), 598).unwrap().seq, 599);
    assert!(matches!(s.load_next(&with(&["x.*"]), 601), Err(StoreError::NotFound)));
    assert!(matches!(s.load_next(&with(&[]), 1), Err(StoreError::NotFound)));
    assert_eq!(s.num_pending(&with(&["x.1"]), 1), 200);
    assert_eq!(s.num_pending(&with(&["x.*", "y.1"]), 590), 11);
}

fn remove_leaves_a_gap_counted_as_deleted(k: &dyn Kind) {
    let s = k.open(StreamConfig::named("t"));
    for _ in 0..5 {
        put(&*s, "a", "p");
    }
    assert!(s.remove(3, false).unwrap());
    assert!(!s.remove(3, false).unwrap());
    assert!(s.remove(1, false).unwrap());
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq, st.num_deleted), (3, 2, 5, 1));
    assert_eq!(s.deleted(), vec![3]);
    assert_eq!(s.load_next(&SubjectFilter::all(), 3).unwrap().seq, 4);
}

fn erase_removes_the_message(k: &dyn Kind) {
    let s = k.open(StreamConfig::named("t"));
    put(&*s, "a", "secret");
    put(&*s, "a", "public");
    s.sync().unwrap();
    assert!(s.remove(1, true).unwrap());
    let s = k.reopen(s, StreamConfig::named("t"));
    assert!(matches!(s.load(1), Err(StoreError::NotFound)));
    assert_eq!(payload(&*s, 2), "public");
    assert_eq!(s.state().lost, None);
}

fn purge_all_keeps_the_sequence(k: &dyn Kind) {
    let s = k.open(StreamConfig::named("t"));
    for _ in 0..10 {
        put(&*s, "a", "p");
    }
    assert_eq!(s.purge(&PurgeOptions::default()).unwrap(), 10);
    let st = s.state();
    assert_eq!((st.msgs, st.bytes, st.first_seq, st.last_seq), (0, 0, 11, 10));
    assert_eq!(put(&*s, "a", "p"), 11);
}

fn purge_by_filter_keep_and_upto(k: &dyn Kind) {
    let s = k.open(StreamConfig::named("t"));
    for i in 0..10 {
        put(&*s, if i % 2 == 0 { "even" } else { "odd" }, "p");
    }
    let by = |filter: Option<&str>, keep: Option<u64>, upto: Option<u64>| PurgeOptions {
        filter: filter.map(str::to_string),
        keep,
        upto_seq: upto,
    };
    assert_eq!(s.purge(&by(Some("even"), Some(2), None)).unwrap(), 3);
    assert_eq!(s.subjects_state("even")["even"], SubjectState { msgs: 2, first: 7, last: 9 });
    assert_eq!(s.purge(&by(Some("odd"), None, Some(5))).unwrap(), 2);
    assert_eq!(s.subjects_state("odd")["odd"].first, 6);
    assert_eq!(s.purge(&by(None, Some(1), None)).unwrap(), 4);
    assert_eq!(s.state().msgs, 1);
    assert_eq!(s.load_last(">").unwrap().seq, 10);
}

fn compact_removes_everything_below(k: &dyn Kind) {
    let s = k.open(StreamConfig::named("t"));
    for _ in 0..10 {
        put(&*s, "a", "p");
    }
    assert_eq!(s.compact(6).unwrap(), 5);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (5, 6, 10));
    assert_eq!(s.compact(3).unwrap(), 0);
}

fn compact_past_the_end_moves_first_sequence(k: &dyn Kind) {
    let s = k.open(StreamConfig::named("t"));
    put(&*s, "a", "p");
    assert_eq!(s.compact(100).unwrap(), 1);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (0, 100, 99));
    let s = k.reopen(s, StreamConfig::named("t"));
    assert_eq!(put(&*s, "a", "p"), 100);
}

fn truncate_removes_everything_above_and_reuses_sequences(k: &dyn Kind) {
    let s = k.open(StreamConfig::named("t"));
    for i in 0..10 {
        put(&*s, "a", &format!("old{i}"));
    }
    s.truncate(6).unwrap();
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (6, 1, 6));
    assert_eq!(put(&*s, "a", "new7"), 7);
    assert_eq!(payload(&*s, 7), "new7");
}

fn state_counts_subjects_and_deleted(k: &dyn Kind) {
    let s = k.open(StreamConfig::named("t"));
    put(&*s, "a", "12345");
    put(&*s, "b", "1");
    put(&*s, "a", "");
    s.remove(2, false).unwrap();
    let st = s.state();
    assert_eq!(st.num_subjects, 1);
    assert_eq!(st.num_deleted, 1);
    assert_eq!(st.bytes, k.size_of("a", "12345") + k.size_of("a", ""));
    assert!(st.first_ts > 0 && st.last_ts >= st.first_ts);
}

fn subjects_and_filtered_state_count_per_filter(k: &dyn Kind) {
    let s = k.open(StreamConfig::named("t"));
    for i in 0..30 {
        put(&*s, &format!("kv.{}", i % 3), "v");
    }
    put(&*s, "other", "v");
    let subjects = s.subjects_state("kv.*");
    assert_eq!(subjects.len(), 3);
    assert_eq!(subjects["kv.1"], SubjectState { msgs: 10, first: 2, last: 29 });
    assert_eq!(s.subjects_state(">").len(), 4);
    assert_eq!(s.filtered_state(&SubjectFilter::new(&["kv.*"]), 1).msgs, 30);
    assert_eq!(
        s.filtered_state(&SubjectFilter::new(&["kv.*"]), 29),
        SubjectState { msgs: 2, first: 29, last: 30 }
    );
    assert_eq!(s.num_pending(&SubjectFilter::new(&["kv.0", "other"]), 20), 4);
    assert_eq!(s.num_pending(&SubjectFilter::all(), 20), 12);
    // A few messages from the end: literal filters against those messages.
    assert_eq!(s.num_pending(&SubjectFilter::new(&["kv.0", "other"]), 28), 2);
    assert_eq!(
        s.filtered_state(&SubjectFilter::new(&["kv.1"]), 27),
        SubjectState { msgs: 1, first: 29, last: 29 }
    );
    assert_eq!(
        s.filtered_state(&SubjectFilter::new(&["kv.1", "kv.2"]), 29),
        SubjectState { msgs: 2, first: 29, last: 30 }
    );
    assert_eq!(s.num_pending(&SubjectFilter::new(&["kv.0"]), 31), 0);
}

fn max_msgs_discard_old_drops_the_oldest(k: &dyn Kind) {
    let s = k.open(cfg(|c| c.max_msgs = Some(5)));
    for _ in 0..12 {
        put(&*s, "a", "p");
    }
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (5, 8, 12));
    let s = k.reopen(s, cfg(|c| c.max_msgs = Some(5)));
    assert_eq!(s.state().first_seq, 8);
}

fn max_bytes_discard_old_drops_the_oldest(k: &dyn Kind) {
    let one = k.size_of("a", "0123456789");
    let s = k.open(cfg(|c| c.max_bytes = Some(one * 3 + 1)));
    for _ in 0..10 {
        put(&*s, "a", "0123456789");
    }
    let st = s.state();
    assert_eq!((st.msgs, st.bytes, st.first_seq), (3, one * 3, 8));
}

fn discard_new_rejects_when_full(k: &dyn Kind) {
    let s = k.open(cfg(|c| {
        c.max_msgs = Some(3);
        c.discard = DiscardPolicy::New;
    }));
    for _ in 0..3 {
        put(&*s, "a", "p");
    }
    assert!(matches!(s.append(NewMessage::new("a", "p"), None), Err(StoreError::MaxMsgs)));
    let one = k.size_of("a", "p");
    let s = k.reopen(
        s,
        cfg(|c| {
            c.max_bytes = Some(one * 4);
            c.discard = DiscardPolicy::New;
        }),
    );
    put(&*s, "a", "p");
    assert!(matches!(s.append(NewMessage::new("a", "p"), None), Err(StoreError::MaxBytes)));
    assert_eq!(s.state().last_seq, 4);
}

fn max_msgs_per_subject_keeps_the_newest(k: &dyn Kind) {
    let s = k.open(cfg(|c| c.max_msgs_per_subject = Some(2)));
    for i in 0..10 {
        put(&*s, &format!("k.{}", i % 2), &format!("{i}"));
    }
    assert_eq!(s.state().msgs, 4);
    assert_eq!(payload(&*s, s.load_last("k.0").unwrap().seq), "8");
    assert_eq!(s.subjects_state("k.1")["k.1"], SubjectState { msgs: 2, first: 8, last: 10 });
    let s = k.reopen(s, cfg(|c| c.max_msgs_per_subject = Some(2)));
    assert_eq!(s.state().msgs, 4);
    assert_eq!(s.state().first_seq, 7);
    s.remove(8, false).unwrap();
    assert_eq!(s.deleted(), vec![8]);
}

fn discard_new_per_subject_rejects_when_subject_is_full(k: &dyn Kind) {
    let s = k.open(cfg(|c| {
        c.max_msgs_per_subject = Some(1);
        c.discard = DiscardPolicy::New;
        c.discard_new_per_subject = true;
    }));
    put(&*s, "a", "1");
    assert!(matches!(s.append(NewMessage::new("a", "2"), None), Err(StoreError::MaxMsgsPerSubject)));
    put(&*s, "b", "1");
    assert_eq!(s.state().msgs, 2);
}

fn max_msg_size_is_enforced(k: &dyn Kind) {
    let s = k.open(cfg(|c| c.max_msg_size = Some(4)));
    put(&*s, "a", "1234");
    assert!(matches!(s.append(NewMessage::new("a", "12345"), None), Err(StoreError::MaxMsgSize)));
    assert_eq!(s.state().last_seq, 1);
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

fn max_age_expires_in_the_background(k: &dyn Kind) {
    let s = k.open(cfg(|c| c.max_age = Some(Duration::from_millis(100))));
    put(&*s, "a", "old");
    std::thread::sleep(Duration::from_millis(60));
    put(&*s, "a", "new");
    wait_until("first expiry", || s.state().msgs == 1);
    assert_eq!(s.state().first_seq, 2);
    wait_until("second expiry", || s.state().msgs == 0);
    assert_eq!(s.state().first_seq, 3);
}

fn ttl_expires_a_single_message(k: &dyn Kind) {
    let s = k.open(StreamConfig::named("t"));
    s.append(NewMessage::new("a", "short").with_ttl(Duration::from_millis(50)), None).unwrap();
    put(&*s, "a", "forever");
    wait_until("ttl", || s.state().msgs == 1);
    assert_eq!(payload(&*s, 2), "forever");
}

/// The (sequence, subject) of each delete marker a store reported.
type Heard = Arc<std::sync::Mutex<Vec<(u64, String)>>>;

/// A store with delete markers (61 s, so that they stay) whose listener records what it hears.
fn with_markers(k: &dyn Kind, max_age: Option<Duration>) -> (Box<dyn StreamStore>, Heard) {
    let s = k.open(cfg(|c| {
        c.max_age = max_age;
        c.delete_marker_ttl = Some(Duration::from_secs(61));
    }));
    let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&heard);
    s.on_delete_marker(Arc::new(move |seq, subject| {
        if let Ok(mut log) = log.lock() {
            log.push((seq, subject.to_string()));
        }
    }));
    (s, heard)
}

fn delete_markers_replace_the_last_message_of_a_subject(k: &dyn Kind) {
    let (s, heard) = with_markers(k, None);
    let short = Duration::from_millis(50);
    s.append(NewMessage::new("a", "1").with_ttl(short), None).unwrap();
    put(&*s, "b", "kept");
    s.append(NewMessage::new("b", "3").with_ttl(short), None).unwrap();
    let purge = Bytes::from_static(b"NATS/1.0\r\nKV-Operation: PURGE\r\n\r\n");
    s.append(NewMessage { headers: Some(purge), ..NewMessage::new("c", "").with_ttl(short) }, None).unwrap();
    // 1 (last of a) makes way for a marker; 3 (b still has 2) and 4 (a purge already) just go.
    wait_until("expiry", || s.state().first_seq == 2 && s.state().msgs == 2);
    let marker = s.load(5).unwrap();
    assert_eq!(&*marker.subject, "a");
    assert_eq!(
        marker.headers.as_deref(),
        Some(&b"NATS/1.0\r\nNats-Marker-Reason: MaxAge\r\nNats-TTL: 1m1s\r\nNats-Rollup: sub\r\n\r\n"[..])
    );
    assert!(marker.payload.is_empty());
    assert_eq!(payload(&*s, 2), "kept");
    assert_eq!(s.state().last_seq, 5);
    wait_until("the listener", || {
        heard.lock().map(|h| h.clone()).unwrap_or_default() == [(5, "a".to_string())]
    });
}

fn delete_markers_expire_without_leaving_markers(k: &dyn Kind) {
    let (s, heard) = with_markers(k, Some(Duration::from_millis(100)));
    put(&*s, "x", "1");
    // The message ages out and a marker takes its place; the marker ages out in turn.
    wait_until("the marker", || heard.lock().map(|h| h.len()).unwrap_or(0) == 1);
    wait_until("the marker's expiry", || s.state().msgs == 0);
    assert_eq!(s.state().last_seq, 2);
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(heard.lock().map(|h| h.len()).unwrap_or(0), 1);
}

fn update_config_enforces_new_limits_at_once(k: &dyn Kind) {
    let s = k.open(StreamConfig::named("t"));
    for i in 0..10 {
        put(&*s, &format!("s.{}", i % 2), "p");
    }
    s.update_config(cfg(|c| c.max_msgs_per_subject = Some(3))).unwrap();
    assert_eq!(s.state().msgs, 6);
    s.update_config(cfg(|c| c.max_msgs = Some(2))).unwrap();
    assert_eq!(s.state().msgs, 2);
    assert_eq!(s.state().first_seq, 9);
}

fn append_raw_and_skip_to_leave_gaps(k: &dyn Kind) {
    let s = k.open(StreamConfig::named("t"));
    s.append_raw(5, 1_000, NewMessage::new("a", "five"), None).unwrap();
    assert!(matches!(
        s.append_raw(5, 1_000, NewMessage::new("a", "x"), None),
        Err(StoreError::InvalidSequence(5))
    ));
    s.skip_to(9).unwrap();
    assert_eq!(put(&*s, "a", "ten"), 10);
    let s = k.reopen(s, StreamConfig::named("t"));
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (2, 5, 10));
    assert_eq!(s.load(5).unwrap().timestamp, 1_000);
}

fn first_seq_config_starts_there(k: &dyn Kind) {
    let s = k.open(cfg(|c| c.first_seq = 1000));
    let st = s.state();
    assert_eq!((st.first_seq, st.last_seq), (1000, 999));
    assert_eq!(put(&*s, "a", "p"), 1000);
}

fn snapshot_restores_into_an_empty_store(k: &dyn Kind) {
    let s = k.open(StreamConfig::named("t"));
    for i in 0..20 {
        put(&*s, &format!("s.{}", i % 4), &format!("{i}"));
    }
    s.compact(3).unwrap();
    s.remove(10, false).unwrap();
    s.skip_to(25).unwrap();
    let mut snap = Vec::new();
    s.snapshot(&mut snap).unwrap();
    for target in [Box::new(Mem::new()) as Box<dyn Kind>, Box::new(File::new())] {
        let r = target.open(StreamConfig::named("r"));
        snapshot::restore(&*r, &mut &snap[..]).unwrap();
        let (a, b) = (s.state(), r.state());
        assert_eq!((a.msgs, a.first_seq, a.last_seq), (b.msgs, b.first_seq, b.last_seq));
        // Each kind counts bytes its own way (nats-server's file and memory formulas).
        if target.size_model() == k.size_model() {
            assert_eq!(a.bytes, b.bytes);
        }
        assert_eq!(s.deleted(), r.deleted());
        assert_eq!(s.load(11).unwrap(), r.load(11).unwrap());
    }
    let bad = &snap[..snap.len() - 3];
    let r = Mem::new().open(StreamConfig::named("r"));
    assert!(snapshot::restore(&*r, &mut &bad[..]).is_err());
}

fn reopen_keeps_messages_deletes_and_sequences(k: &dyn Kind) {
    let c = cfg(|c| c.block_size = 4096);
    let s = k.open(c.clone());
    for i in 0..200 {
        put(&*s, &format!("r.{}", i % 7), &format!("payload-{i}"));
    }
    s.remove(5, false).unwrap();
    s.remove(150, false).unwrap();
    s.remove(1, false).unwrap();
    let before = (s.state(), s.deleted(), s.subjects_state(">"));
    let s = k.reopen(s, c);
    assert_eq!((s.state(), s.deleted(), s.subjects_state(">")), before);
    assert_eq!(payload(&*s, 199), "payload-198");
    assert_eq!(put(&*s, "r.0", "more"), 201);
}

fn reopen_after_purge_and_compact_keeps_sequences(k: &dyn Kind) {
    let c = cfg(|c| c.block_size = 4096);
    let s = k.open(c.clone());
    for _ in 0..100 {
        put(&*s, "a", "0123456789012345678901234567890123456789");
    }
    s.purge(&PurgeOptions::default()).unwrap();
    let s = k.reopen(s, c.clone());
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (0, 101, 100));
    for _ in 0..100 {
        put(&*s, "a", "0123456789012345678901234567890123456789");
    }
    s.compact(150).unwrap();
    let s = k.reopen(s, c);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (51, 150, 200));
}

fn reopen_after_truncate_keeps_the_new_tail(k: &dyn Kind) {
    let s = k.open(StreamConfig::named("t"));
    for i in 0..10 {
        put(&*s, "a", &format!("old{i}"));
    }
    s.truncate(4).unwrap();
    put(&*s, "a", "new5");
    let s = k.reopen(s, StreamConfig::named("t"));
    let st = s.state();
    assert_eq!((st.msgs, st.last_seq), (5, 5));
    assert_eq!(payload(&*s, 5), "new5");
}

fn many_subjects_stay_fast(k: &dyn Kind) {
    let s = k.open(cfg(|c| c.max_msgs_per_subject = Some(1)));
    let n = 20_000;
    for i in 0..n {
        put(&*s, &format!("kv.{i}"), "v");
    }
    for i in 0..n {
        put(&*s, &format!("kv.{i}"), "w");
    }
    let start = std::time::Instant::now();
    for i in (0..n).step_by(7) {
        assert_eq!(s.load_last(&format!("kv.{i}")).unwrap().seq, n + i + 1);
        assert_eq!(s.load_next(&SubjectFilter::new(&[&format!("kv.{i}")]), 1).unwrap().seq, n + i + 1);
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{} per-subject lookups took {:?}",
        n / 7,
        start.elapsed()
    );
    assert_eq!(s.state().num_subjects, n);
    assert_eq!(s.state().msgs, n);
}

fn stop_rejects_writes(k: &dyn Kind) {
    let s = k.open(StreamConfig::named("t"));
    put(&*s, "a", "p");
    s.stop().unwrap();
    assert!(matches!(s.append(NewMessage::new("a", "p"), None), Err(StoreError::Closed)));
}

fn usage_counter_follows_bytes_through_appends_limits_purges_and_expiry(k: &dyn Kind) {
    let server = std::sync::Arc::new(UsageCounter::default());
    let account = std::sync::Arc::new(UsageCounter::with_parent(server.clone()));
    let s = k.open(cfg(|c| {
        c.max_msgs = Some(5);
        c.max_age = Some(Duration::from_millis(300));
    }));
    put(&*s, "a", "before attaching");
    s.track_usage(Some(account.clone()));
    assert_eq!(account.bytes(), s.state().bytes, "attaching counts what is already held");
    for i in 0..20 {
        put(&*s, &format!("u.{}", i % 3), &format!("message {i}"));
        assert_eq!(account.bytes(), s.state().bytes, "after append {i} (max_msgs drops the oldest)");
    }
    assert_eq!(server.bytes(), account.bytes(), "the parent sees the same changes");
    s.remove(s.state().first_seq, false).unwrap();
    assert_eq!(account.bytes(), s.state().bytes, "after remove");
    s.purge(&PurgeOptions { filter: Some("u.1".into()), ..Default::default() }).unwrap();
    assert_eq!(account.bytes(), s.state().bytes, "after a filtered purge");
    wait_until("max_age expiry", || s.state().msgs == 0);
    assert_eq!(account.bytes(), 0, "after expiry");
    put(&*s, "a", "again");
    assert!(account.bytes() > 0);
    s.purge(&PurgeOptions::default()).unwrap();
    assert_eq!((account.bytes(), server.bytes()), (0, 0), "after a full purge");
    put(&*s, "a", "held when detached");
    s.track_usage(None);
    assert_eq!((account.bytes(), server.bytes()), (0, 0), "detaching takes the bytes out");
}
