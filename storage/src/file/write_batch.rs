//! Writes performed by the thread that made them, at the end of its batch.
//!
//! Under an `Interval` or `Never` sync policy a write needs no fsync before its completion,
//! so handing it to a storage thread only adds two thread wake-ups to every publish ack. A
//! connection that processes a batch of input (one socket read) opens a [`WriteBatch`]; the
//! message writes that stores queue on this thread meanwhile are performed by this thread when
//! the batch ends, contiguous ones in one `pwrite`, and their completions fire there. The
//! storage threads still run the periodic fsyncs. `Always` channels, barriers and file
//! operations keep using the storage threads.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::Arc;

use super::writer::Channel;

thread_local! {
    /// Channels with writes queued inline by this thread's open batch (`None`: no batch).
    static BATCH: RefCell<Option<Vec<Arc<Channel>>>> = const { RefCell::new(None) };
}

/// An open batch on this thread; performs its queued writes when dropped. Not `Send`: a batch
/// must not be held across an `.await`, where the task could move to another thread.
#[must_use = "the writes happen when the batch is dropped"]
pub struct WriteBatch {
    /// False for a batch nested in another: the outer one performs the writes.
    outermost: bool,
    _not_send: PhantomData<*const ()>,
}

impl WriteBatch {
    /// Opens a batch on this thread (nested batches join the outer one).
    pub fn begin() -> WriteBatch {
        let outermost = BATCH.with(|b| {
            let mut b = b.borrow_mut();
            if b.is_some() {
                return false;
            }
            *b = Some(Vec::new());
            true
        });
        WriteBatch { outermost, _not_send: PhantomData }
    }
}

impl Drop for WriteBatch {
    fn drop(&mut self) {
        if !self.outermost {
            return;
        }
        // Completions may queue more writes (an ack delivered into a stream): drain until
        // nothing is left, then close the batch.
        loop {
            let channels = BATCH.with(|b| b.borrow_mut().as_mut().map(std::mem::take).unwrap_or_default());
            if channels.is_empty() {
                break;
            }
            for channel in channels {
                channel.write_inline();
            }
        }
        BATCH.with(|b| *b.borrow_mut() = None);
    }
}

/// True when this thread has an open batch.
pub(crate) fn is_open() -> bool {
    BATCH.with(|b| b.borrow().is_some())
}

/// Records that `channel` has writes for this thread's open batch.
pub(crate) fn register(channel: Arc<Channel>) {
    BATCH.with(|b| {
        if let Some(list) = b.borrow_mut().as_mut() {
            list.push(channel);
        }
    });
}
