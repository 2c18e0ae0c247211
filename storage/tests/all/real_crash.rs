//! Real crash tests: a child process (this test binary, re-executed) appends with
//! `SyncPolicy::Always` and 64 appends in flight, printing each completed sequence; the parent
//! SIGKILLs it at random moments, reopens the store and checks every printed sequence is there
//! and intact, and that nothing else appeared. The same for consumers added to a shared
//! consumer log.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use jetway_storage::{
    AckPolicy, ConsumerStore, FileStore, NewMessage, SharedConsumerLog, StreamConfig, StreamStore, SyncPolicy,
};

use crate::common::fast_engine;
use crate::crash_sim::expected_payload;

const CHILD_ENV: &str = "JETWAY_CRASH_CHILD_DIR";
const IN_FLIGHT: u64 = 64;

fn config() -> StreamConfig {
    let mut c = StreamConfig::named("sigkill");
    c.block_size = 64 * 1024;
    c
}

/// The child: appends until killed. Does nothing unless started by the parent.
#[test]
#[ignore = "started by sigkilled_appender_loses_no_acknowledged_message"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let engine = fast_engine();
    let store = FileStore::open(&engine, std::path::Path::new(&dir), config()).unwrap();
    let in_flight = Arc::new((Mutex::new(0u64), Condvar::new()));
    let mut seq = store.state().last_seq + 1;
    loop {
        {
            let (count, cv) = &*in_flight;
            let mut n = count.lock().unwrap();
            while *n >= IN_FLIGHT {
                n = cv.wait(n).unwrap();
            }
            *n += 1;
        }
        let counter = Arc::clone(&in_flight);
        let done = Box::new(move |r: jetway_storage::Result<u64>| {
            if let Ok(s) = r {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "ACK {s}");
                let _ = out.flush();
            }
            *counter.0.lock().unwrap() -= 1;
            counter.1.notify_one();
        });
        let got = store.append(NewMessage::new("kill.me", expected_payload(seq)), Some(done)).unwrap();
        assert_eq!(got, seq);
        seq += 1;
    }
}

#[test]
fn sigkilled_appender_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream");
    let exe = std::env::current_exe().unwrap();
    let mut acked: Vec<u64> = Vec::new();
    let mut rng = 0x2545f4914f6cdd1du64;
    for round in 0..20 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut child = Command::new(&exe)
            .args(["real_crash::crash_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("ACK ").and_then(|s| s.parse::<u64>().ok()))
                .collect::<Vec<u64>>()
        });
        std::thread::sleep(Duration::from_millis(40 + rng % 200));
        child.kill().unwrap();
        child.wait().unwrap();
        let round_acks = reader.join().unwrap();
        acked.extend(&round_acks);

        // This round's acknowledgements now; every round's again after the last crash.
        let last_round = round == 19;
        verify(&path, if last_round { &acked } else { &round_acks }, last_round);
    }
    assert!(acked.len() > 200, "only {} appends were acknowledged in 20 rounds", acked.len());
    eprintln!("{} appends acknowledged across 20 SIGKILLs", acked.len());
}

fn verify(path: &std::path::Path, acked: &[u64], scan_all: bool) {
    let engine = fast_engine();
    let store = FileStore::open(&engine, path, config()).unwrap();
    for seq in acked {
        let m = store.load(*seq).unwrap_or_else(|e| panic!("acknowledged {seq} lost: {e}"));
        assert_eq!(m.payload.as_ref(), expected_payload(*seq).as_slice(), "{seq} altered");
    }
    let st = store.state();
    assert_eq!(st.lost, None, "a crash is not corruption");
    if scan_all {
        let mut next = st.first_seq;
        while let Ok(m) = store.load_next(&[], next) {
            assert_eq!(
                m.payload.as_ref(),
                expected_payload(m.seq).as_slice(),
                "{} was never appended",
                m.seq
            );
            next = m.seq + 1;
        }
    }
    store.stop().unwrap();
}

const SHARED_CHILD_ENV: &str = "JETWAY_CRASH_SHARED_LOG_DIR";

fn session_meta(name: &str) -> Vec<u8> {
    format!("{{\"durable_name\":\"{name}\",\"filter\":\"$MQTT.msgs.{name}\"}}").into_bytes()
}

/// The child: adds consumers to a shared log until killed. Does nothing unless started by the
/// parent.
#[test]
#[ignore = "started by sigkilled_consumer_adder_loses_no_acknowledged_consumer"]
fn shared_log_crash_child() {
    let Ok(dir) = std::env::var(SHARED_CHILD_ENV) else {
        return;
    };
    let engine = fast_engine();
    let opened = SharedConsumerLog::open(&engine, std::path::Path::new(&dir), SyncPolicy::Always).unwrap();
    let log = opened.log;
    let in_flight = Arc::new((Mutex::new(0u64), Condvar::new()));
    for i in opened.consumers.len().. {
        {
            let (count, cv) = &*in_flight;
            let mut n = count.lock().unwrap();
            while *n >= IN_FLIGHT {
                n = cv.wait(n).unwrap();
            }
            *n += 1;
        }
        let name = format!("session-{i}");
        let counter = Arc::clone(&in_flight);
        let printed = name.clone();
        let done = Box::new(move |r: jetway_storage::Result<u64>| {
            if r.is_ok() {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "ACK {printed}");
                let _ = out.flush();
            }
            *counter.0.lock().unwrap() -= 1;
            counter.1.notify_one();
        });
        let meta = session_meta(&name);
        let c = log.add(&name, meta, AckPolicy::Explicit, Some(done)).unwrap();
        c.update_delivered(1, i as u64 + 1, 1, 0).unwrap();
    }
}

#[test]
fn sigkilled_consumer_adder_loses_no_acknowledged_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream");
    let exe = std::env::current_exe().unwrap();
    let mut acked: Vec<String> = Vec::new();
    let mut rng = 0x9e3779b97f4a7c15u64;
    for round in 0..12 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut child = Command::new(&exe)
            .args([
                "real_crash::shared_log_crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(SHARED_CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("ACK ").map(str::to_string))
                .collect::<Vec<String>>()
        });
        std::thread::sleep(Duration::from_millis(40 + rng % 200));
        child.kill().unwrap();
        child.wait().unwrap();
        acked.extend(reader.join().unwrap());

        let engine = fast_engine();
        let opened = SharedConsumerLog::open(&engine, &path, SyncPolicy::Always).unwrap();
        assert_eq!(opened.damage, None, "round {round}: a crash is not damage");
        let found: std::collections::HashMap<&str, &[u8]> =
            opened.consumers.iter().map(|c| (c.name.as_str(), c.meta.as_slice())).collect();
        for name in &acked {
            let meta = found.get(name.as_str()).unwrap_or_else(|| panic!("acknowledged {name} lost"));
            assert_eq!(*meta, session_meta(name).as_slice(), "{name} altered");
        }
        for (i, c) in opened.consumers.iter().enumerate() {
            assert_eq!(c.name, format!("session-{i}"), "consumers come back in order, none invented");
            let delivered = c.consumer.state().delivered.stream_seq;
            assert!(delivered == 0 || delivered == i as u64 + 1, "{} has a state never written", c.name);
        }
        opened.log.stop().unwrap();
    }
    assert!(acked.len() > 200, "only {} adds were acknowledged in 12 rounds", acked.len());
    eprintln!("{} consumer adds acknowledged across 12 SIGKILLs", acked.len());
}
