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
use crate::filter::SubjectFilter;
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
        f.debug_struct("Store").field("stream", &self.stream().config.name).finish()
    }
}

#[allow(private_bounds)]
impl<B: Backend> Store<B> {
    pub(crate) fn from_stream(stream: Stream<B>) -> Self {
        Store { inner: Arc::new(Mutex::new(stream)) }
    }

    /// The stream, locked, after backend housekeeping.
    fn stream(&self) -> parking_lot::MutexGuard<'_, Stream<B>> {
        let mut stream = self.inner.lock();
        stream.maintain();
        stream
    }

    /// Removes messages past `max_age` or their TTL as of `now` (ns since the epoch). The
    /// engine's expiry thread calls this; tests may call it with a chosen time.
    pub fn expire_at(&self, now: i64) -> Result<Option<i64>> {
        let (next, markers) = {
            let mut stream = self.stream();
            (stream.expire(now), stream.take_markers())
        };
        report_markers(markers);
        next
    }
}

/// Tells the marker listener of the delete markers expiry appended (taken under the lock,
/// told outside it).
fn report_markers(markers: Option<crate::core::stream::NewMarkers>) {
    if let Some((markers, listener)) = markers {
        for (seq, subject) in markers {
            listener(seq, &subject);
        }
    }
}

impl<B: Backend> Expirable for Mutex<Stream<B>> {
    fn expire_due(&self, now: i64) -> Option<i64> {
        let (next, markers) = {
            let mut stream = self.lock();
            (stream.expire(now).ok().flatten(), stream.take_markers())
        };
        report_markers(markers);
        next
    }
}

impl<B: Backend> StreamStore for Store<B> {
    fn append(&self, msg: NewMessage<'_>, done: Option<Completion>) -> Result<u64> {
        self.stream().append(msg, done)
    }

    fn append_raw(
        &self,
        seq: u64,
        timestamp: i64,
        msg: NewMessage<'_>,
        done: Option<Completion>,
    ) -> Result<()> {
        self.stream().append_raw(seq, timestamp, msg, done)
    }

    fn skip_to(&self, last_seq: u64) -> Result<()> {
        self.stream().skip_to(last_seq)
    }

    fn load(&self, seq: u64) -> Result<StoredMessage> {
        self.stream().load(seq)
    }

    fn load_last(&self, filter: &str) -> Result<StoredMessage> {
        self.stream().load_last(filter)
    }

    fn load_next(&self, filter: &SubjectFilter, start: u64) -> Result<StoredMessage> {
        self.stream().load_next(filter, start)
    }

    fn remove(&self, seq: u64, erase: bool) -> Result<bool> {
        self.stream().remove(seq, erase)
    }

    fn purge(&self, opts: &PurgeOptions) -> Result<u64> {
        self.stream().purge(opts)
    }

    fn compact(&self, seq: u64) -> Result<u64> {
        self.stream().compact(seq)
    }

    fn truncate(&self, seq: u64) -> Result<()> {
        self.stream().truncate(seq)
    }

    fn state(&self) -> StreamState {
        self.stream().state()
    }

    fn deleted(&self) -> Vec<u64> {
        self.stream().index.deleted()
    }

    fn subjects_state(&self, filter: &str) -> BTreeMap<Arc<str>, SubjectState> {
        self.stream().subjects_state(filter)
    }

    fn filtered_state(&self, filter: &SubjectFilter, start: u64) -> SubjectState {
        self.stream().filtered_state(filter, start)
    }

    fn update_config(&self, config: StreamConfig) -> Result<()> {
        let (updated, markers) = {
            let mut stream = self.stream();
            (stream.update_config(config), stream.take_markers())
        };
        report_markers(markers);
        updated
    }

    fn on_delete_marker(&self, listener: crate::traits::MarkerListener) {
        self.inner.lock().marker_listener = Some(listener);
    }

    fn track_usage(&self, usage: Option<Arc<crate::usage::UsageCounter>>) {
        self.inner.lock().index.set_usage(usage);
    }

    fn sync(&self) -> Result<()> {
        // Take what is needed and wait without the lock: the writer may need it meanwhile.
        let waiter = self.stream().backend.sync_waiter();
        waiter()
    }

    fn snapshot(&self, out: &mut dyn Write) -> Result<()> {
        crate::snapshot::write(self, out)
    }

    fn is_writable(&self) -> bool {
        self.inner.lock().backend.writable().is_ok()
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
        self.stream().backend.stop()?;
        res
    }
}

impl<B: Backend> Drop for Store<B> {
    fn drop(&mut self) {
        if Arc::strong_count(&self.inner) == 1 {
            let _ = self.stream().backend.stop();
        }
    }
}
