//! The one error type of the crate.

use std::io;

/// Everything a store operation can fail with.
///
/// The limit errors carry nats-server's texts so the server can hand them to clients as is.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A previous write or fsync failed; the store accepts no more writes and acknowledges
    /// nothing until it is reopened.
    #[error("store is poisoned by an earlier I/O failure")]
    Poisoned,
    /// The store was stopped or deleted.
    #[error("store is closed")]
    Closed,
    /// Headers plus payload exceed `max_msg_size`.
    #[error("message size exceeds maximum allowed")]
    MaxMsgSize,
    /// `discard: new` and the stream is at `max_msgs`.
    #[error("maximum messages exceeded")]
    MaxMsgs,
    /// `discard: new` and the stream is at `max_bytes`.
    #[error("maximum bytes exceeded")]
    MaxBytes,
    /// `discard: new` with `discard_new_per_subject` and the subject is at its limit.
    #[error("maximum messages per subject exceeded")]
    MaxMsgsPerSubject,
    /// No message with that sequence (or matching that filter).
    #[error("no message found")]
    NotFound,
    /// A sequence that cannot be used here (for example a raw store below the last sequence).
    #[error("invalid sequence {0}")]
    InvalidSequence(u64),
    /// A subject or filter that does not follow the subject grammar.
    #[error("invalid subject: {0}")]
    InvalidSubject(String),
    /// A shared consumer log already holds a consumer of that name.
    #[error("consumer {0} already exists")]
    ConsumerExists(String),
    /// A shared consumer log holds no consumer of that name.
    #[error("consumer {0} not found")]
    ConsumerNotFound(String),
    /// A consumer name, meta or state that a shared consumer log cannot record (too long).
    #[error("invalid consumer: {0}")]
    InvalidConsumer(String),
    /// Bytes on disk or in a snapshot that do not decode.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// An operating-system I/O failure.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

impl StoreError {
    /// A copy of this error to hand to several completions (I/O errors keep kind and text).
    pub fn duplicate(&self) -> StoreError {
        match self {
            StoreError::Poisoned => StoreError::Poisoned,
            StoreError::Closed => StoreError::Closed,
            StoreError::MaxMsgSize => StoreError::MaxMsgSize,
            StoreError::MaxMsgs => StoreError::MaxMsgs,
            StoreError::MaxBytes => StoreError::MaxBytes,
            StoreError::MaxMsgsPerSubject => StoreError::MaxMsgsPerSubject,
            StoreError::NotFound => StoreError::NotFound,
            StoreError::InvalidSequence(s) => StoreError::InvalidSequence(*s),
            StoreError::InvalidSubject(s) => StoreError::InvalidSubject(s.clone()),
            StoreError::ConsumerExists(s) => StoreError::ConsumerExists(s.clone()),
            StoreError::ConsumerNotFound(s) => StoreError::ConsumerNotFound(s.clone()),
            StoreError::InvalidConsumer(s) => StoreError::InvalidConsumer(s.clone()),
            StoreError::Corrupt(s) => StoreError::Corrupt(s.clone()),
            StoreError::Io(e) => StoreError::Io(io::Error::new(e.kind(), e.to_string())),
        }
    }
}

/// Result alias used throughout the crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
