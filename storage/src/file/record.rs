//! Records: the unit written to block files and snapshots (see the crate docs for the layout).

use std::ops::Range;

use xxhash_rust::xxh3::xxh3_64;

/// Bytes before a record's body: length (4), kind (1), flags (1), reserved (2).
pub const RECORD_HEADER_LEN: usize = 8;
/// The checksum at the end of every record.
pub const CHECKSUM_LEN: usize = 8;
/// Smallest valid record (header + checksum).
pub const MIN_RECORD_LEN: usize = RECORD_HEADER_LEN + CHECKSUM_LEN;
/// Fixed part of a message record: header, seq, timestamp, expires, three lengths, checksum.
pub const MSG_FIXED_LEN: usize = RECORD_HEADER_LEN + 8 + 8 + 8 + 2 + 4 + 4 + CHECKSUM_LEN;
/// Length of a record carrying one sequence (tombstone, floor, truncate).
pub const SEQ_RECORD_LEN: usize = RECORD_HEADER_LEN + 8 + CHECKSUM_LEN;

/// Record kinds (byte 4).
pub mod kind {
    /// A message.
    pub const MSG: u8 = 1;
    /// The message with this sequence was removed.
    pub const TOMBSTONE: u8 = 2;
    /// Every message below this sequence was removed.
    pub const FLOOR: u8 = 3;
    /// Every message above this sequence was removed; the last sequence is this one.
    pub const TRUNCATE: u8 = 4;
    /// Nothing (an erased message); skipped.
    pub const PADDING: u8 = 5;
    /// Consumer: a delivery (consumer seq, stream seq, delivery count, timestamp).
    pub const CONSUMER_DELIVERED: u8 = 16;
    /// Consumer: an acknowledgement (consumer seq, stream seq).
    pub const CONSUMER_ACK: u8 = 17;
    /// Consumer: the whole state (see `consumer::file`).
    pub const CONSUMER_FULL: u8 = 18;
    /// Shared consumer log: a delivery (id, then the body of `CONSUMER_DELIVERED`).
    pub const SHARED_DELIVERED: u8 = 32;
    /// Shared consumer log: an acknowledgement (id, then the body of `CONSUMER_ACK`).
    pub const SHARED_ACK: u8 = 33;
    /// Shared consumer log: a whole state (id, then the body of `CONSUMER_FULL`).
    pub const SHARED_FULL: u8 = 34;
    /// Shared consumer log: the first record of the file (magic, next id).
    pub const SHARED_HEADER: u8 = 35;
    /// Shared consumer log: a consumer added (id, ack policy, name, meta).
    pub const SHARED_ADD: u8 = 36;
    /// Shared consumer log: a consumer's meta replaced (id, meta).
    pub const SHARED_META: u8 = 37;
    /// Shared consumer log: a consumer removed (id).
    pub const SHARED_REMOVED: u8 = 38;

    /// Whether `k` is a record of a shared consumer log.
    pub fn is_shared(k: u8) -> bool {
        (SHARED_DELIVERED..=SHARED_REMOVED).contains(&k)
    }
}

const FLAG_HEADERS: u8 = 1;

/// A decoded record; message parts are ranges into the record's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A message.
    Msg {
        /// Sequence.
        seq: u64,
        /// Timestamp (ns).
        timestamp: i64,
        /// TTL deadline (ns), 0 if none.
        expires: i64,
        /// Subject bytes.
        subject: Range<usize>,
        /// Header bytes, if the message has headers.
        headers: Option<Range<usize>>,
        /// Payload bytes.
        payload: Range<usize>,
    },
    /// A removal.
    Tombstone(u64),
    /// A new first sequence.
    Floor(u64),
    /// A new last sequence.
    Truncate(u64),
    /// Nothing.
    Padding,
    /// A consumer record: its kind and body.
    Consumer {
        /// One of the `CONSUMER_*` or `SHARED_*` kinds.
        kind: u8,
        /// Body bytes.
        body: Range<usize>,
    },
}

/// Why bytes do not decode as a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The buffer ends before the record does (a torn write at the end of a file).
    Incomplete,
    /// Invalid length, kind or checksum.
    Invalid,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
/// Little-endian u64 at `at`, if the bytes are there.
pub fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn begin(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8) -> usize {
    let start = out.len();
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&[0, 0]);
    start
}

fn finish(out: &mut Vec<u8>, start: usize) {
    let sum = xxh3_64(out.get(start..).unwrap_or_default());
    out.extend_from_slice(&sum.to_le_bytes());
}

/// Length of the message record for these parts.
pub fn msg_len(subject: &str, headers: Option<&[u8]>, payload: &[u8]) -> usize {
    MSG_FIXED_LEN + subject.len() + headers.map_or(0, <[u8]>::len) + payload.len()
}

/// Appends a message record to `out`. The caller checks the subject fits in a u16 and the
/// record in a u32.
pub fn encode_msg(
    out: &mut Vec<u8>,
    seq: u64,
    timestamp: i64,
    expires: i64,
    subject: &str,
    headers: Option<&[u8]>,
    payload: &[u8],
) {
    let len = msg_len(subject, headers, payload);
    out.reserve(len);
    let start = begin(out, len, kind::MSG, if headers.is_some() { FLAG_HEADERS } else { 0 });
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&timestamp.to_le_bytes());
    out.extend_from_slice(&expires.to_le_bytes());
    out.extend_from_slice(&(subject.len() as u16).to_le_bytes());
    out.extend_from_slice(&(headers.map_or(0, <[u8]>::len) as u32).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(subject.as_bytes());
    out.extend_from_slice(headers.unwrap_or_default());
    out.extend_from_slice(payload);
    finish(out, start);
}

/// Appends a tombstone, floor or truncate record.
pub fn encode_seq(out: &mut Vec<u8>, kind: u8, seq: u64) {
    let start = begin(out, SEQ_RECORD_LEN, kind, 0);
    out.extend_from_slice(&seq.to_le_bytes());
    finish(out, start);
}

/// Appends a record whose body `body` writes straight into `out` (the length is filled in
/// afterwards). The caller keeps the record within u32 bytes.
pub fn encode_with(out: &mut Vec<u8>, kind: u8, body: impl FnOnce(&mut Vec<u8>)) {
    let start = begin(out, 0, kind, 0);
    body(out);
    let len = (out.len() - start + CHECKSUM_LEN) as u32;
    if let Some(field) = out.get_mut(start..start + 4) {
        field.copy_from_slice(&len.to_le_bytes());
    }
    finish(out, start);
}

/// A padding record of exactly `len` bytes (`len >= MIN_RECORD_LEN`).
pub fn encode_padding(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let start = begin(&mut out, len, kind::PADDING, 0);
    out.resize(len - CHECKSUM_LEN, 0);
    finish(&mut out, start);
    out
}

/// Decodes the record at the start of `buf`; returns it and its length.
pub fn decode(buf: &[u8]) -> Result<(Record, usize), DecodeError> {
    let len = u32_at(buf, 0).ok_or(DecodeError::Incomplete)? as usize;
    if len < MIN_RECORD_LEN {
        return Err(DecodeError::Invalid);
    }
    let rec = buf.get(..len).ok_or(DecodeError::Incomplete)?;
    let body_end = len - CHECKSUM_LEN;
    let sum = u64_at(rec, body_end).ok_or(DecodeError::Invalid)?;
    if xxh3_64(rec.get(..body_end).unwrap_or_default()) != sum {
        return Err(DecodeError::Invalid);
    }
    let kind = *rec.get(4).ok_or(DecodeError::Invalid)?;
    let flags = *rec.get(5).ok_or(DecodeError::Invalid)?;
    let seq_body = || -> Result<u64, DecodeError> {
        if len != SEQ_RECORD_LEN {
            return Err(DecodeError::Invalid);
        }
        u64_at(rec, RECORD_HEADER_LEN).ok_or(DecodeError::Invalid)
    };
    let record = match kind {
        kind::MSG => decode_msg(rec, flags)?,
        kind::TOMBSTONE => Record::Tombstone(seq_body()?),
        kind::FLOOR => Record::Floor(seq_body()?),
        kind::TRUNCATE => Record::Truncate(seq_body()?),
        kind::PADDING => Record::Padding,
        kind::CONSUMER_DELIVERED | kind::CONSUMER_ACK | kind::CONSUMER_FULL => {
            Record::Consumer { kind, body: RECORD_HEADER_LEN..body_end }
        }
        k if kind::is_shared(k) => Record::Consumer { kind, body: RECORD_HEADER_LEN..body_end },
        _ => return Err(DecodeError::Invalid),
    };
    Ok((record, len))
}

fn decode_msg(rec: &[u8], flags: u8) -> Result<Record, DecodeError> {
    let bad = DecodeError::Invalid;
    let seq = u64_at(rec, 8).ok_or(bad)?;
    let timestamp = u64_at(rec, 16).ok_or(bad)? as i64;
    let expires = u64_at(rec, 24).ok_or(bad)? as i64;
    let subject_len = u16_at(rec, 32).ok_or(bad)? as usize;
    let headers_len = u32_at(rec, 34).ok_or(bad)? as usize;
    let payload_len = u32_at(rec, 38).ok_or(bad)? as usize;
    let s0 = MSG_FIXED_LEN - CHECKSUM_LEN;
    let h0 = s0 + subject_len;
    let p0 = h0 + headers_len;
    let end = p0 + payload_len;
    if end + CHECKSUM_LEN != rec.len() || std::str::from_utf8(rec.get(s0..h0).ok_or(bad)?).is_err() {
        return Err(bad);
    }
    Ok(Record::Msg {
        seq,
        timestamp,
        expires,
        subject: s0..h0,
        headers: (flags & FLAG_HEADERS != 0).then_some(h0..p0),
        payload: p0..end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_round_trips() {
        let mut out = Vec::new();
        encode_msg(&mut out, 7, 42, 0, "a.b", Some(b"NATS/1.0\r\n\r\n"), b"hello");
        assert_eq!(out.len(), msg_len("a.b", Some(b"NATS/1.0\r\n\r\n"), b"hello"));
        let (rec, len) = decode(&out).unwrap();
        assert_eq!(len, out.len());
        let Record::Msg { seq, subject, payload, headers, .. } = rec else { panic!() };
        assert_eq!(seq, 7);
        assert_eq!(&out[subject], b"a.b");
        assert_eq!(&out[payload], b"hello");
        assert!(headers.is_some());
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let mut out = Vec::new();
        encode_msg(&mut out, 1, 2, 0, "s", None, b"payload");
        for i in 0..out.len() * 8 {
            let mut b = out.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(decode(&b).is_err(), "bit {i}");
        }
    }

    #[test]
    fn short_buffer_is_incomplete() {
        let mut out = Vec::new();
        encode_seq(&mut out, kind::TOMBSTONE, 9);
        assert_eq!(decode(&out[..out.len() - 1]), Err(DecodeError::Incomplete));
        assert_eq!(decode(&out), Ok((Record::Tombstone(9), SEQ_RECORD_LEN)));
        let pad = encode_padding(100);
        assert_eq!(decode(&pad), Ok((Record::Padding, 100)));
    }
}
