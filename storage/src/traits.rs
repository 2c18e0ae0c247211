//! The interfaces the server programs against.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use crate::config::StreamConfig;
use crate::error::{Result, StoreError};
use crate::filter::SubjectFilter;
use crate::message::{NewMessage, StoredMessage};
use crate::state::{StreamState, SubjectState};

/// Reports whether an append became durable: `Ok(seq)` once it is (under the stream's sync
/// policy), or the error that prevented it. Called exactly once, on a storage thread (or inline
/// for a memory store), in append order per stream. It must be quick and must not call back into
/// the store; the server forwards it to a oneshot channel.
pub type Completion = Box<dyn FnOnce(Result<u64, StoreError>) + Send>;

/// Told of each delete marker expiry appended (its sequence and subject), after the store's
/// lock is released (see [`StreamConfig::delete_marker_ttl`]): the server wakes the readers of
/// the subject as for any new message.
pub type MarkerListener = Arc<dyn Fn(u64, &str) + Send + Sync>;

/// What `purge` removes. All fields empty: everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeOptions {
    /// Only messages whose subject matches this filter.
    pub filter: Option<String>,
    /// Only messages with a sequence below this one.
    pub upto_seq: Option<u64>,
    /// Keep the newest `keep` messages (of the filter, if given).
    pub keep: Option<u64>,
}

/// The store of one stream. Methods take `&self`: stores lock internally so that the expiry and
/// storage threads can work beside the owning task. Reads see every accepted append at once.
pub trait StreamStore: Send + Sync {
    /// Appends a message: assigns the next sequence, enforces limits (removing old messages or
    /// refusing with `MaxMsgs`/`MaxBytes`/`MaxMsgsPerSubject`/`MaxMsgSize`), makes it readable
    /// and queues the write. `done` fires once it is durable. Never blocks on disk.
    fn append(&self, msg: NewMessage<'_>, done: Option<Completion>) -> Result<u64>;

    /// Appends with a sequence and timestamp chosen by the caller (restore, mirrors). `seq`
    /// must be above the last sequence; sequences skipped in between count as deleted.
    fn append_raw(
        &self,
        seq: u64,
        timestamp: i64,
        msg: NewMessage<'_>,
        done: Option<Completion>,
    ) -> Result<()>;

    /// Raises the last sequence to `last_seq` without storing anything (nats `SkipMsgs`).
    fn skip_to(&self, last_seq: u64) -> Result<()>;

    /// The message with sequence `seq`.
    fn load(&self, seq: u64) -> Result<StoredMessage>;

    /// The newest message whose subject matches `filter`.
    fn load_last(&self, filter: &str) -> Result<StoredMessage>;

    /// The first message at or after `start` whose subject matches `filter`.
    fn load_next(&self, filter: &SubjectFilter, start: u64) -> Result<StoredMessage>;

    /// Removes one message; with `erase` its bytes are also overwritten on disk.
    /// Returns whether it existed.
    fn remove(&self, seq: u64, erase: bool) -> Result<bool>;

    /// Removes messages as `opts` says; returns how many.
    fn purge(&self, opts: &PurgeOptions) -> Result<u64>;

    /// Removes every message below `seq` (the first sequence becomes `seq`); returns how many.
    fn compact(&self, seq: u64) -> Result<u64>;

    /// Removes every message above `seq`; the last sequence becomes `seq`.
    fn truncate(&self, seq: u64) -> Result<()>;

    /// The stream's state.
    fn state(&self) -> StreamState;

    /// The sequences between first and last that hold no message.
    fn deleted(&self) -> Vec<u64>;

    /// Per-subject count and range of the subjects matching `filter`.
    fn subjects_state(&self, filter: &str) -> BTreeMap<Arc<str>, SubjectState>;

    /// Count and range of the messages at or after `start` matching `filter`.
    fn filtered_state(&self, filter: &SubjectFilter, start: u64) -> SubjectState;

    /// Number of messages at or after `start` matching `filter` (consumer pending).
    fn num_pending(&self, filter: &SubjectFilter, start: u64) -> u64 {
        self.filtered_state(filter, start).msgs
    }

    /// Applies new limits (enforcing them at once).
    fn update_config(&self, config: StreamConfig) -> Result<()>;

    /// Sets who hears of the delete markers expiry appends.
    fn on_delete_marker(&self, listener: MarkerListener);

    /// Blocks until everything accepted so far is durable (fsynced for a file store).
    fn sync(&self) -> Result<()>;

    /// Writes the whole stream (first/last sequence and every message) as a byte stream that
    /// [`crate::snapshot::restore`] reads back into any empty store.
    fn snapshot(&self, out: &mut dyn Write) -> Result<()>;

    /// Flushes and stops: later calls fail with `Closed`.
    fn stop(&self) -> Result<()>;

    /// Whether the store still accepts writes: false once poisoned by an I/O failure or
    /// stopped (health checks report it).
    fn is_writable(&self) -> bool;

    /// Mirrors the store's `bytes` into `usage` from now on (its current bytes are added at
    /// once); `None` detaches it, taking its bytes out of the previous counter. Lets a server
    /// enforce quotas over many stores without asking each one on every append.
    fn track_usage(&self, usage: Option<Arc<crate::usage::UsageCounter>>);
}

/// A pair of consumer and stream sequences.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SequencePair {
    /// The consumer's own delivery sequence.
    pub consumer_seq: u64,
    /// The stream sequence.
    pub stream_seq: u64,
}

/// A delivered message not yet acknowledged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PendingAck {
    /// Consumer sequence of its latest delivery.
    pub consumer_seq: u64,
    /// Time of its latest delivery (ns since the epoch).
    pub timestamp: i64,
}

/// Everything a consumer persists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerState {
    /// Highest delivered sequences.
    pub delivered: SequencePair,
    /// Everything at or below is acknowledged.
    pub ack_floor: SequencePair,
    /// Pending acknowledgements keyed by stream sequence.
    pub pending: BTreeMap<u64, PendingAck>,
    /// Redelivery counts (deliveries minus one) keyed by stream sequence.
    pub redelivered: BTreeMap<u64, u64>,
}

/// How a consumer acknowledges: decides what `update_acks` removes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AckPolicy {
    /// Nothing is pending; delivered is also the ack floor.
    None,
    /// An ack covers every pending message up to it.
    All,
    /// Each message is acknowledged on its own.
    #[default]
    Explicit,
}

/// The persisted state of one consumer. Updates apply to the state at once and reach the disk
/// shortly after (file stores write them within 10 ms, without fsync under `Interval`); a crash
/// may lose the last ones, which means redeliveries. [`ConsumerStore::sync`] waits for them.
pub trait ConsumerStore: Send + Sync {
    /// Records a delivery: `delivery_count` 1 is the first delivery.
    fn update_delivered(
        &self,
        consumer_seq: u64,
        stream_seq: u64,
        delivery_count: u64,
        timestamp: i64,
    ) -> Result<()>;

    /// Records an acknowledgement.
    fn update_acks(&self, consumer_seq: u64, stream_seq: u64) -> Result<()>;

    /// Replaces the whole state.
    fn update(&self, state: &ConsumerState) -> Result<()>;

    /// The current state.
    fn state(&self) -> ConsumerState;

    /// Blocks until every update so far is durable.
    fn sync(&self) -> Result<()>;

    /// Flushes and stops.
    fn stop(&self) -> Result<()>;
}
