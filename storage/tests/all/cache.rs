//! The file store's cache of recent messages: bounded in bytes and in age.

use std::time::Duration;

use jetway_storage::{Engine, EngineConfig, FileStore, NewMessage, StreamConfig, StreamStore};

/// Rewrites `from` as `to` (same length) in whichever file of `dir` holds it.
fn change_on_disk(dir: &std::path::Path, from: &[u8], to: &[u8]) {
    for entry in walk(dir) {
        let mut bytes = std::fs::read(&entry).unwrap();
        if let Some(at) = bytes.windows(from.len()).position(|w| w == from) {
            bytes[at..at + to.len()].copy_from_slice(to);
            std::fs::write(&entry, bytes).unwrap();
            return;
        }
    }
    panic!("no file holds the bytes");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_cached_message_is_dropped_once_old_and_its_load_then_reads_the_block() {
    let dir = tempfile::tempdir().unwrap();
    // The test drives expiry itself (`expire_at`).
    let engine = Engine::new(EngineConfig {
        writer_threads: 1,
        expiry_tick: Duration::from_secs(3600),
        ..EngineConfig::default()
    })
    .unwrap();
    let store = FileStore::open(&engine, &dir.path().join("s"), StreamConfig::named("s")).unwrap();
    let seq = store.append(NewMessage::new("a", "cached-payload"), None).unwrap();
    store.sync().unwrap();
    // Changed behind the store's back: a load served from memory does not see it.
    change_on_disk(dir.path(), b"cached-payload", b"CACHED-PAYLOAD");
    let stored_at = store.load(seq).unwrap().timestamp;
    assert_eq!(store.load(seq).unwrap().payload.as_ref(), b"cached-payload");

    store.expire_at(stored_at + 1_000_000_000).unwrap();
    assert_eq!(store.load(seq).unwrap().payload.as_ref(), b"cached-payload", "a second old: still cached");

    store.expire_at(stored_at + 3_000_000_000).unwrap();
    // Read from the block now: the changed bytes (or the record's checksum refusing them).
    let loaded = store.load(seq).map(|m| m.payload);
    assert!(loaded.as_ref().map_or(true, |p| p.as_ref() != b"cached-payload"), "{loaded:?}");
}
