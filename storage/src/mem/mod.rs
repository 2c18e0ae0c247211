//! `MemStore`: a stream kept in memory only. Completions fire at once.

use std::sync::Arc;

use bytes::Bytes;

use crate::config::StreamConfig;
use crate::core::backend::{Backend, Incoming};
use crate::core::index::{Entry, Index};
use crate::core::stream::Stream;
use crate::core::Store;
use crate::engine::{Engine, Expirable};
use crate::error::Result;
use crate::message::StoredMessage;
use crate::state::LostData;
use crate::traits::Completion;

/// A memory store's message bytes: headers and payload.
pub struct MemBackend {
    _private: (),
}

impl Backend for MemBackend {
    type Loc = (Option<Bytes>, Bytes);
    const SIZE: crate::message::SizeModel = crate::message::SizeModel::Memory;

    fn writable(&self) -> Result<()> {
        Ok(())
    }

    fn store(&mut self, msg: Incoming, done: Option<Completion>) -> Result<Self::Loc> {
        if let Some(done) = done {
            done(Ok(msg.seq));
        }
        Ok((msg.headers, msg.payload))
    }

    fn load(&self, seq: u64, entry: &Entry<Self::Loc>) -> Result<StoredMessage> {
        Ok(StoredMessage {
            subject: Arc::clone(&entry.subject),
            headers: entry.loc.0.clone(),
            payload: entry.loc.1.clone(),
            seq,
            timestamp: entry.timestamp,
        })
    }

    fn removed(&mut self, _seq: u64, _loc: Self::Loc, _erase: bool, _first_after: u64) -> Result<()> {
        Ok(())
    }

    fn forget(&mut self, _seq: u64, _loc: Self::Loc) {}

    fn cleared(&mut self, _first_seq: u64) -> Result<()> {
        Ok(())
    }

    fn truncated(&mut self, _last_seq: u64) -> Result<()> {
        Ok(())
    }

    fn sync_waiter(&self) -> Box<dyn FnOnce() -> Result<()> + Send> {
        Box::new(|| Ok(()))
    }

    fn lost(&self) -> Option<LostData> {
        None
    }

    fn stop(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A stream store in memory.
pub type MemStore = Store<MemBackend>;

impl Store<MemBackend> {
    /// A new empty memory store whose expiry runs on `engine`'s expiry thread.
    pub fn new(engine: &Engine, config: StreamConfig) -> MemStore {
        let index = Index::new(config.first_seq);
        let store = Store::from_stream(Stream::new(config, index, MemBackend { _private: () }));
        let weak: std::sync::Weak<dyn Expirable> = Arc::downgrade(&store.inner) as _;
        engine.shared.register_expiry(weak);
        store
    }
}
