//! `Store<B>`: a stream behind a lock, registered for expiry, implementing `StreamStore`.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::StreamConfig;
use crate::core::backend::Backend;
use crate::core::stream::Stream;
use crate::engine::Expirable;
use crate::error::Result;
use crate::message::{NewMessage, StoredMessage};
use crate::state::{StreamState, SubjectState};
use crate::traits::{Completion, PurgeOptions, StreamStore};

/// A stream store over backend `B`; see [`crate::MemStore`] and [`crate::FileStore`].
/// The backend trait is private on purpose (sealed): only this crate adds backends.
#[allow(private_bounds)]
pub struct Store<B: Backend> {
    pub(crate) inner: Arc<Mutex<Stream<B>>>,
}

impl<B: Backend> std::fmt::Debug for Store<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("stream", &self.inner.lock().config.name).finish()
    }
}

#[allow(private_bounds)]
impl<B: Backend> Store<B> {
    pub(crate) fn from_stream(stream: Stream<B>) -> Self {
        Store { inner: Arc::new(Mutex::new(stream)) }
    }

    /// Removes messages past `max_age` or their TTL as of `now` (ns since the epoch). The
    /// engine's expiry thread calls this; tests may call it with a chosen time.
    pub fn expire_at(&self, now: i64) -> Result<Option<i64>> {
        self.inner.lock().expire(now)
    }
}

impl<B: Backend> Expirable for Mutex<Stream<B>> {
    fn expire_due(&self, now: i64) -> Option<i64> {
        self.lock().expire(now).ok().flatten()
    }
}

impl<B: Backend> StreamStore for Store<B> {
    fn append(&self, msg: NewMessage<'_>, done: Option<Completion>) -> Result<u64> {
        self.inner.lock().append(msg, done)
    }

    fn append_raw(
        &self,
        seq: u64,
        timestamp: i64,
        msg: NewMessage<'_>,
        done: Option<Completion>,
    ) -> Result<()> {
        self.inner.lock().append_raw(seq, timestamp, msg, done)
    }

    fn skip_to(&self, last_seq: u64) -> Result<()> {
        self.inner.lock().skip_to(last_seq)
    }

    fn load(&self, seq: u64) -> Result<StoredMessage> {
        self.inner.lock().load(seq)
    }

    fn load_last(&self, filter: &str) -> Result<StoredMessage> {
        self.inner.lock().load_last(filter)
    }

    fn load_next(&self, filters: &[&str], start: u64) -> Result<StoredMessage> {
        self.inner.lock().load_next(filters, start)
    }

    fn remove(&self, seq: u64, erase: bool) -> Result<bool> {
        self.inner.lock().remove(seq, erase)
    }

    fn purge(&self, opts: &PurgeOptions) -> Result<u64> {
        self.inner.lock().purge(opts)
    }

    fn compact(&self, seq: u64) -> Result<u64> {
        self.inner.lock().compact(seq)
    }

    fn truncate(&self, seq: u64) -> Result<()> {
        self.inner.lock().truncate(seq)
    }

    fn state(&self) -> StreamState {
        self.inner.lock().state()
    }

    fn deleted(&self) -> Vec<u64> {
        self.inner.lock().index.deleted()
    }

    fn subjects_state(&self, filter: &str) -> BTreeMap<Arc<str>, SubjectState> {
        self.inner.lock().subjects_state(filter)
    }

    fn filtered_state(&self, filters: &[&str], start: u64) -> SubjectState {
        self.inner.lock().filtered_state(filters, start)
    }

    fn update_config(&self, config: StreamConfig) -> Result<()> {
        self.inner.lock().update_config(config)
    }

    fn sync(&self) -> Result<()> {
        // Take what is needed and wait without the lock: the writer may need it meanwhile.
        let waiter = self.inner.lock().backend.sync_waiter();
        waiter()
    }

    fn snapshot(&self, out: &mut dyn Write) -> Result<()> {
        crate::snapshot::write(self, out)
    }

    fn stop(&self) -> Result<()> {
        let waiter = {
            let mut stream = self.inner.lock();
            if stream.closed {
                return Ok(());
            }
            stream.closed = true;
            stream.backend.sync_waiter()
        };
        let res = waiter();
        self.inner.lock().backend.stop()?;
        res
    }
}

impl<B: Backend> Drop for Store<B> {
    fn drop(&mut self) {
        if Arc::strong_count(&self.inner) == 1 {
            let _ = self.inner.lock().backend.stop();
        }
    }
}
