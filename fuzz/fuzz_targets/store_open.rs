//! Opens a stream folder (and a consumer folder) made of arbitrary bytes on the simulated file
//! system: open must never panic, every read must return a value or an error, and the store
//! must accept a new message afterwards.
//!
//! Input: byte 0 = number of block files (1..=4); the rest is split evenly between them. If
//! byte 1 is odd, each file is prefixed with a valid block header so the fuzzer reaches the
//! record parser quickly. The same bytes are also opened as a consumer log.

#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use jetway_storage::{
    AckPolicy, ConsumerStore, Engine, FileConsumerStore, FileStore, Io, NewMessage, SimIo, StreamConfig, StreamStore,
    SyncPolicy,
};
use libfuzzer_sys::fuzz_target;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::start().expect("engine threads"))
}

fn header(id: u32) -> Vec<u8> {
    // Matches the documented 40-byte block header: magic, id, reserved, floor, last, xxh3.
    let mut h = Vec::with_capacity(40);
    h.extend_from_slice(b"JWBLOCK1");
    h.extend_from_slice(&id.to_le_bytes());
    h.extend_from_slice(&[0; 4]);
    h.extend_from_slice(&0u64.to_le_bytes());
    h.extend_from_slice(&0u64.to_le_bytes());
    let sum = xxh3(&h);
    h.extend_from_slice(&sum.to_le_bytes());
    h
}

fn xxh3(b: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(b)
}

fuzz_target!(|data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else { return };
    let files = usize::from(count % 4) + 1;
    let with_header = rest.first().is_some_and(|b| b % 2 == 1);
    let sim = SimIo::new();
    let dir = Path::new("/s");
    if sim.create_dir_all(dir).is_err() {
        return;
    }
    let chunk = rest.len() / files + 1;
    for (i, part) in rest.chunks(chunk).enumerate() {
        let id = u32::try_from(i + 1).unwrap_or(1);
        let mut bytes = if with_header { header(id) } else { Vec::new() };
        bytes.extend_from_slice(part);
        let Ok(f) = sim.open(&dir.join(format!("{id:010}.blk")), true) else { return };
        let _ = f.write_at(&bytes, 0);
    }
    let io: Arc<dyn Io> = Arc::new(sim.clone());
    if let Ok(store) = FileStore::open_with(engine(), Arc::clone(&io), dir, StreamConfig::named("fuzz")) {
        let st = store.state();
        let mut next = st.first_seq;
        for _ in 0..10_000 {
            match store.load_next(&[], next) {
                Ok(m) => next = m.seq + 1,
                Err(_) => break,
            }
        }
        let _ = store.load_last(">");
        let _ = store.append(NewMessage::new("fuzz", "x"), None);
        let _ = store.stop();
    }
    let cdir = Path::new("/c");
    if sim.create_dir_all(cdir).is_ok() {
        if let Ok(f) = sim.open(&cdir.join("consumer.log"), true) {
            let _ = f.write_at(rest, 0);
        }
        if let Ok(c) = FileConsumerStore::open_with(engine(), io, cdir, AckPolicy::Explicit, SyncPolicy::Always) {
            let _ = c.state();
            let _ = c.stop();
        }
    }
});
