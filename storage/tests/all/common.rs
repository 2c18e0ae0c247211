//! Helpers shared by the test modules: store kinds and small shortcuts.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jetway_storage::{
    Engine, EngineConfig, FileStore, Io, MemStore, NewMessage, RealIo, SizeModel, StreamConfig, StreamStore,
};

/// A kind of store the conformance suite runs against.
pub trait Kind {
    /// A new empty store.
    fn open(&self, config: StreamConfig) -> Box<dyn StreamStore>;
    /// The same stream after a restart (a memory store just keeps going).
    fn reopen(&self, store: Box<dyn StreamStore>, config: StreamConfig) -> Box<dyn StreamStore>;
    /// How this kind of store counts a message's bytes.
    fn size_model(&self) -> SizeModel;
    /// The bytes a message counts for in this kind of store.
    fn size_of(&self, subject: &str, payload: &str) -> u64 {
        jetway_storage::stored_size_in(self.size_model(), subject, None, payload.len())
    }
}

pub fn fast_engine() -> Engine {
    Engine::new(EngineConfig {
        writer_threads: 1,
        expiry_tick: Duration::from_millis(10),
        ..EngineConfig::default()
    })
    .unwrap()
}

pub struct Mem {
    engine: Engine,
}

impl Mem {
    pub fn new() -> Self {
        Mem { engine: fast_engine() }
    }
}

impl Kind for Mem {
    fn open(&self, config: StreamConfig) -> Box<dyn StreamStore> {
        Box::new(MemStore::new(&self.engine, config))
    }
    fn reopen(&self, store: Box<dyn StreamStore>, config: StreamConfig) -> Box<dyn StreamStore> {
        store.update_config(config).unwrap();
        store
    }
    fn size_model(&self) -> SizeModel {
        SizeModel::Memory
    }
}

pub struct File {
    engine: Engine,
    io: Arc<dyn Io>,
    dir: tempfile::TempDir,
}

impl File {
    pub fn new() -> Self {
        File { engine: fast_engine(), io: Arc::new(RealIo), dir: tempfile::tempdir().unwrap() }
    }
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("stream")
    }
}

impl Kind for File {
    fn open(&self, config: StreamConfig) -> Box<dyn StreamStore> {
        Box::new(FileStore::open_with(&self.engine, Arc::clone(&self.io), &self.path(), config).unwrap())
    }
    fn reopen(&self, store: Box<dyn StreamStore>, config: StreamConfig) -> Box<dyn StreamStore> {
        store.stop().unwrap();
        drop(store);
        self.open(config)
    }
    fn size_model(&self) -> SizeModel {
        SizeModel::File
    }
}

/// Appends a payload-only message and returns its sequence.
pub fn put(store: &dyn StreamStore, subject: &str, payload: &str) -> u64 {
    store.append(NewMessage::new(subject, payload.to_string()), None).unwrap()
}

/// The payload of `seq` as text.
pub fn payload(store: &dyn StreamStore, seq: u64) -> String {
    String::from_utf8(store.load(seq).unwrap().payload.to_vec()).unwrap()
}

/// A config with the given tweak applied.
pub fn cfg(f: impl FnOnce(&mut StreamConfig)) -> StreamConfig {
    let mut c = StreamConfig::named("test");
    f(&mut c);
    c
}
