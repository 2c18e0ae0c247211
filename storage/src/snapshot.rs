//! Snapshot and restore of a whole stream as one byte stream.
//!
//! Layout (little-endian): magic `JWSNAP01` (8 bytes), first sequence (u64), last sequence
//! (u64); then one message record per message, exactly as in block files (checksummed); then
//! the trailer: magic `JWSNAPND` (8 bytes) and the number of message records (u64), so a
//! truncated snapshot is detected. Per-message TTL deadlines are not carried over
//! (the records hold 0): restored messages live by the stream limits only.

use std::io::{Read, Write};

use crate::error::{Result, StoreError};
use crate::file::record::{decode, encode_msg, u64_at, Record};
use crate::filter::SubjectFilter;
use crate::message::NewMessage;
use crate::traits::StreamStore;

const SNAP_MAGIC: &[u8; 8] = b"JWSNAP01";
const END_MAGIC: &[u8; 8] = b"JWSNAPND";

/// Writes `store` to `out` (see the module docs for the layout).
pub fn write(store: &dyn StreamStore, out: &mut dyn Write) -> Result<()> {
    let state = store.state();
    let mut buf = Vec::with_capacity(64 * 1024);
    buf.extend_from_slice(SNAP_MAGIC);
    buf.extend_from_slice(&state.first_seq.to_le_bytes());
    buf.extend_from_slice(&state.last_seq.to_le_bytes());
    let mut count = 0u64;
    let mut next = state.first_seq;
    let all = SubjectFilter::all();
    loop {
        let msg = match store.load_next(&all, next) {
            Ok(m) if m.seq <= state.last_seq => m,
            Ok(_) | Err(StoreError::NotFound) => break,
            Err(e) => return Err(e),
        };
        encode_msg(&mut buf, msg.seq, msg.timestamp, 0, &msg.subject, msg.headers.as_deref(), &msg.payload);
        count += 1;
        next = msg.seq + 1;
        if buf.len() >= 60 * 1024 {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    buf.extend_from_slice(END_MAGIC);
    buf.extend_from_slice(&count.to_le_bytes());
    out.write_all(&buf)?;
    Ok(())
}

/// Reads a snapshot from `input` into `store`, which must be empty and fresh (no sequence
/// used yet). Sequences, timestamps, subjects, headers and payloads are kept.
pub fn restore(store: &dyn StreamStore, input: &mut dyn Read) -> Result<()> {
    let state = store.state();
    if state.last_seq != 0 || state.msgs != 0 {
        return Err(StoreError::InvalidSequence(state.last_seq));
    }
    let mut data = Vec::new();
    input.read_to_end(&mut data)?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("snapshot: {what}"));
    if data.get(..8) != Some(SNAP_MAGIC.as_slice()) {
        return Err(corrupt("bad magic"));
    }
    let first = u64_at(&data, 8).ok_or_else(|| corrupt("short header"))?;
    let last = u64_at(&data, 16).ok_or_else(|| corrupt("short header"))?;
    let mut pos = 24;
    let mut msgs = Vec::new();
    loop {
        let rest = data.get(pos..).unwrap_or_default();
        if rest.get(..8) == Some(END_MAGIC.as_slice()) {
            let count = u64_at(rest, 8).ok_or_else(|| corrupt("short trailer"))?;
            if count != msgs.len() as u64 {
                return Err(corrupt("message count mismatch"));
            }
            break;
        }
        let (rec, len) = decode(rest).map_err(|_| corrupt("bad record"))?;
        let body = rest.get(..len).unwrap_or_default();
        if let Record::Msg { seq, timestamp, subject, headers, payload, .. } = rec {
            let subject =
                std::str::from_utf8(body.get(subject).unwrap_or_default()).map_err(|_| corrupt("subject"))?;
            let headers = headers.map(|h| bytes::Bytes::copy_from_slice(body.get(h).unwrap_or_default()));
            let payload = bytes::Bytes::copy_from_slice(body.get(payload).unwrap_or_default());
            msgs.push((seq, timestamp, subject.to_string(), headers, payload));
        }
        pos += len;
    }
    if first > 1 {
        store.compact(first)?;
    }
    for (seq, ts, subject, headers, payload) in msgs {
        let msg = NewMessage { subject: &subject, headers, payload, ttl: None, received: None };
        store.append_raw(seq, ts, msg, None)?;
    }
    store.skip_to(last)?;
    Ok(())
}
