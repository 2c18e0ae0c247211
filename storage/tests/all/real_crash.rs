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
    AckPolicy, Completion, ConsumerStore, FileStore, NewMessage, SharedConsumerLog, StreamConfig,
    StreamStore, SubjectFilter, SyncPolicy,
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

/// Keeps a child's operations in flight to at most [`IN_FLIGHT`].
#[derive(Default)]
struct Gate(Arc<(Mutex<u64>, Condvar)>);

impl Gate {
    /// Waits for a free slot; returns the completion that frees it and, on success, prints
    /// `ACK ` and what `line` makes of the reported value.
    fn acked_completion(&self, line: impl FnOnce(u64) -> String + Send + 'static) -> Completion {
        let (count, cv) = &*self.0;
        let mut n = count.lock().unwrap();
        while *n >= IN_FLIGHT {
            n = cv.wait(n).unwrap();
        }
        *n += 1;
        let gate = Arc::clone(&self.0);
        Box::new(move |r: jetway_storage::Result<u64>| {
            if let Ok(v) = r {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "ACK {}", line(v));
                let _ = out.flush();
            }
            *gate.0.lock().unwrap() -= 1;
            gate.1.notify_one();
        })
    }
}

/// Runs test `child` of this binary with `env` set to `path`, SIGKILLs it after `millis` and
/// returns what followed `ACK ` on each line it printed.
fn run_and_kill(child: &str, env: &str, path: &std::path::Path, millis: u64) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([child, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(env, path)
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
    std::thread::sleep(Duration::from_millis(millis));
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap()
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
    let gate = Gate::default();
    let mut seq = store.state().last_seq + 1;
    loop {
        let done = gate.acked_completion(|s| s.to_string());
        let got = store.append(NewMessage::new("kill.me", expected_payload(seq)), Some(done)).unwrap();
        assert_eq!(got, seq);
        seq += 1;
    }
}

#[test]
fn sigkilled_appender_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream");
    let mut acked: Vec<u64> = Vec::new();
    let mut rng = 0x2545f4914f6cdd1du64;
    for round in 0..20 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let round_acks: Vec<u64> = run_and_kill("real_crash::crash_child", CHILD_ENV, &path, 40 + rng % 200)
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
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
        while let Ok(m) = store.load_next(&SubjectFilter::all(), next) {
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
    let gate = Gate::default();
    for i in opened.consumers.len().. {
        let name = format!("session-{i}");
        let printed = name.clone();
        let done = gate.acked_completion(move |_| printed);
        let meta = session_meta(&name);
        let c = log.add(&name, meta, AckPolicy::Explicit, Some(done)).unwrap();
        c.update_delivered(1, i as u64 + 1, 1, 0).unwrap();
    }
}

#[test]
fn sigkilled_consumer_adder_loses_no_acknowledged_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream");
    let mut acked: Vec<String> = Vec::new();
    let mut rng = 0x9e3779b97f4a7c15u64;
    for round in 0..12 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        acked.extend(run_and_kill(
            "real_crash::shared_log_crash_child",
            SHARED_CHILD_ENV,
            &path,
            40 + rng % 200,
        ));

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
