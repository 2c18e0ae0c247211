//! Messages as they go into and come out of a store.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// A message as stored: what `load*` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The literal subject it was published on.
    pub subject: Arc<str>,
    /// Encoded NATS headers (`NATS/1.0\r\n...`), if any.
    pub headers: Option<Bytes>,
    /// The payload.
    pub payload: Bytes,
    /// Stream sequence.
    pub seq: u64,
    /// Store time in nanoseconds since the Unix epoch (never decreases within a stream).
    pub timestamp: i64,
}

/// A message to append. The store assigns sequence and timestamp.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    /// Literal subject.
    pub subject: &'a str,
    /// Encoded headers, if any.
    pub headers: Option<Bytes>,
    /// Payload.
    pub payload: Bytes,
    /// Per-message time to live (nats `Nats-TTL`); `None` means only stream limits apply.
    pub ttl: Option<Duration>,
    /// When it arrived (ns since the epoch), if the caller read the clock already; else the
    /// store does. Either way a stream's timestamps never go back.
    pub received: Option<i64>,
}

impl<'a> NewMessage<'a> {
    /// A message with a payload and nothing else.
    pub fn new(subject: &'a str, payload: impl Into<Bytes>) -> Self {
        NewMessage { subject, headers: None, payload: payload.into(), ttl: None, received: None }
    }

    /// The same message with headers.
    pub fn with_headers(mut self, headers: impl Into<Bytes>) -> Self {
        self.headers = Some(headers.into());
        self
    }

    /// The same message with a time to live.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

/// Fixed per-message overhead counted in `bytes`: the size of a record's fixed fields on disk.
pub const MSG_OVERHEAD: u64 = crate::file::record::MSG_FIXED_LEN as u64;

/// The size a message counts for in `StreamState::bytes` and `max_bytes`, the same in every
/// store: subject + headers + payload + [`MSG_OVERHEAD`] (which is its record size on disk).
pub fn stored_size(subject: &str, headers: Option<&Bytes>, payload: &Bytes) -> u64 {
    subject.len() as u64 + headers.map_or(0, |h| h.len() as u64) + payload.len() as u64 + MSG_OVERHEAD
}

/// Wall-clock time in nanoseconds since the Unix epoch.
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// A duration in nanoseconds, saturating.
pub fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}
