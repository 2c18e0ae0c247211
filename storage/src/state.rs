//! Answers about a stream as a whole: its state and per-subject counts.

/// A stream's state (nats-server `StreamState`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamState {
    /// Number of messages stored.
    pub msgs: u64,
    /// Bytes stored (sum of [`crate::message::stored_size_in`]).
    pub bytes: u64,
    /// Sequence of the first message; `last_seq + 1` when empty (0 for a fresh stream).
    pub first_seq: u64,
    /// Timestamp of the first message (0 when empty).
    pub first_ts: i64,
    /// Highest sequence ever assigned.
    pub last_seq: u64,
    /// Timestamp of the last message stored (0 if none).
    pub last_ts: i64,
    /// Number of distinct subjects stored.
    pub num_subjects: u64,
    /// Number of sequences between first and last that hold no message.
    pub num_deleted: u64,
    /// Data found damaged at open and dropped (file store only).
    pub lost: Option<LostData>,
}

/// Messages a file store could not recover.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LostData {
    /// Sequences known to be lost (gaps not explained by a removal).
    pub msgs: Vec<u64>,
    /// Bytes of damaged records skipped.
    pub bytes: u64,
}

/// Count and range of the messages of one subject or filter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubjectState {
    /// Number of messages.
    pub msgs: u64,
    /// First sequence (0 when none).
    pub first: u64,
    /// Last sequence (0 when none).
    pub last: u64,
}
