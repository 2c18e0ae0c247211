//! What differs between a memory and a file store: where message bytes go.

use std::sync::Arc;

use bytes::Bytes;

use crate::core::index::{Entry, Index};
use crate::error::Result;
use crate::message::StoredMessage;
use crate::state::LostData;
use crate::traits::Completion;

/// A message handed to a backend to keep.
pub(crate) struct Incoming {
    pub seq: u64,
    pub timestamp: i64,
    pub expires: i64,
    pub subject: Arc<str>,
    pub headers: Option<Bytes>,
    pub payload: Bytes,
}

/// The storage half of a store. The index half (`core::stream::Stream`) decides what is kept;
/// the backend keeps the bytes and records removals so that they survive a restart.
pub(crate) trait Backend: Send + 'static {
    /// Where one message's bytes are.
    type Loc: Send + Sync;

    /// How this store counts a message's bytes.
    const SIZE: crate::message::SizeModel;

    /// Fails when nothing may be written any more (poisoned or closed).
    fn writable(&self) -> Result<()>;

    /// Keeps a new message; `done` fires once it is durable.
    fn store(&mut self, msg: Incoming, done: Option<Completion>) -> Result<Self::Loc>;

    /// Reads a message back.
    fn load(&self, seq: u64, entry: &Entry<Self::Loc>) -> Result<StoredMessage>;

    /// Records the removal of `seq`; `first_after` is the stream's first sequence after it.
    fn removed(&mut self, seq: u64, loc: Self::Loc, erase: bool, first_after: u64) -> Result<()>;

    /// Forgets a message whose removal a following `truncated` records.
    fn forget(&mut self, seq: u64, loc: Self::Loc);

    /// Every message is gone; the stream continues at `first_seq` (last is `first_seq - 1`).
    fn cleared(&mut self, first_seq: u64) -> Result<()>;

    /// Every message above `last_seq` is gone (or, raising it, sequences up to it are used).
    fn truncated(&mut self, last_seq: u64) -> Result<()>;

    /// A wait, to run without the store lock, that returns once everything so far is durable.
    fn sync_waiter(&self) -> Box<dyn FnOnce() -> Result<()> + Send>;

    /// Housekeeping run at the start of every operation (applying and scheduling block
    /// rewrites for a file store).
    fn maintain(&mut self, _index: &mut Index<Self::Loc>) -> Result<()> {
        Ok(())
    }

    /// Drops what is cached in memory longer than it is useful, as of `now` (ns since the
    /// epoch); the engine's expiry thread calls it on every tick.
    fn expire_cache(&mut self, _now: i64) {}

    /// What was found damaged at open.
    fn lost(&self) -> Option<LostData>;

    /// Flushes and releases resources.
    fn stop(&mut self) -> Result<()>;
}
