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

/// How a store counts a message's bytes (`StreamState::bytes`, `max_bytes`, account usage):
/// nats-server's formulas, so that the same messages report the same sizes and fill the same
/// limits as there, whatever Jetway's own records take on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeModel {
    /// nats-server's file store: a 22-byte record head, the subject, a 4-byte header length
    /// and the headers when there are any, the payload, an 8-byte checksum.
    File,
    /// nats-server's memory store: subject, headers and payload plus 16 (sequence and time).
    Memory,
}

/// The size a message counts for under `model`.
pub fn stored_size_in(model: SizeModel, subject: &str, headers: Option<&[u8]>, payload_len: usize) -> u64 {
    let (subject, headers, payload) =
        (subject.len() as u64, headers.map_or(0, |h| h.len() as u64), payload_len as u64);
    match model {
        SizeModel::File if headers == 0 => 22 + subject + payload + 8,
        SizeModel::File => 22 + subject + 4 + headers + payload + 8,
        SizeModel::Memory => subject + headers + payload + 16,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_counted_as_nats_server_counts_them() {
        // What nats-server 2.15 reports for the same messages (`bytes` in StreamInfo).
        assert_eq!(stored_size_in(SizeModel::File, "o.0", None, 1), 34);
        assert_eq!(stored_size_in(SizeModel::File, "o.2", Some(b"NATS/1.0\r\nH: v\r\n\r\n"), 1), 56);
        assert_eq!(stored_size_in(SizeModel::Memory, "o.0", None, 1), 20);
        assert_eq!(stored_size_in(SizeModel::Memory, "o.2", Some(b"NATS/1.0\r\nH: v\r\n\r\n"), 1), 38);
    }
}
