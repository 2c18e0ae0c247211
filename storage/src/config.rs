//! What a store needs to know about its stream: limits, discard policy, durability.

use crate::engine::Affinity;
use std::time::Duration;

/// When to drop messages once a limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DiscardPolicy {
    /// Remove the oldest messages to make room (nats-server `discard: old`).
    #[default]
    Old,
    /// Refuse the new message (nats-server `discard: new`).
    New,
}

/// When an append counts as durable, and so when its completion fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// The completion fires only after an fsync covers the record (group-committed).
    #[default]
    Always,
    /// Completions fire once the record is written to the OS (it survives a process crash);
    /// the storage thread fsyncs at least every interval (an OS crash may lose that window).
    Interval(Duration),
    /// Like `Interval` but never fsyncs except on close.
    Never,
}

/// Limits and policies of one stream, as the store enforces them.
///
/// `None` means unlimited. The server translates nats-server's `-1` defaults into `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// Stream name (used for the folder of a file store and in logs).
    pub name: String,
    /// Maximum number of messages kept.
    pub max_msgs: Option<u64>,
    /// Maximum total bytes kept (see [`crate::message::stored_size_in`]).
    pub max_bytes: Option<u64>,
    /// Maximum age of a message.
    pub max_age: Option<Duration>,
    /// Maximum number of messages kept per subject.
    pub max_msgs_per_subject: Option<u64>,
    /// Maximum headers plus payload of one message.
    pub max_msg_size: Option<u32>,
    /// What to do when `max_msgs` or `max_bytes` is reached.
    pub discard: DiscardPolicy,
    /// With `discard: New`, also refuse a message whose subject is at `max_msgs_per_subject`
    /// (otherwise the oldest message of that subject is removed).
    pub discard_new_per_subject: bool,
    /// Durability of appends (file store only; a memory store is never durable).
    pub sync: SyncPolicy,
    /// Size at which a file store starts a new block file.
    pub block_size: u64,
    /// The sequence of the first message of a new, empty stream.
    pub first_seq: u64,
    /// The writer thread of a file store (see [`Affinity`]).
    pub affinity: Affinity,
    /// Subject delete markers (nats-server's `subject_delete_marker_ttl`): when the last
    /// message of a subject expires (`max_age` or its own TTL), an empty marker message with
    /// this TTL takes its place, so readers of the subject (a Key-Value watcher) learn that it
    /// went. `None`: expired messages just go.
    pub delete_marker_ttl: Option<Duration>,
}

/// Default block size of a file store: 8 MiB.
pub const DEFAULT_BLOCK_SIZE: u64 = 8 * 1024 * 1024;

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            name: String::from("stream"),
            max_msgs: None,
            max_bytes: None,
            max_age: None,
            max_msgs_per_subject: None,
            max_msg_size: None,
            discard: DiscardPolicy::Old,
            discard_new_per_subject: false,
            sync: SyncPolicy::Always,
            block_size: DEFAULT_BLOCK_SIZE,
            first_seq: 1,
            affinity: Affinity::Any,
            delete_marker_ttl: None,
        }
    }
}

impl StreamConfig {
    /// A default config with the given name.
    pub fn named(name: &str) -> Self {
        StreamConfig { name: name.to_string(), ..StreamConfig::default() }
    }
}
