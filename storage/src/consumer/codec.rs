//! The bodies of consumer records, shared by the one-consumer log (`file.rs`) and the shared
//! log (`shared.rs`): a shared log's update record is its consumer id (u64) followed by exactly
//! the body a one-consumer log writes, so both logs decode and apply updates with this code.
//!
//! Bodies (all little-endian):
//!
//! - delivered: consumer seq, stream seq, delivery count, timestamp (4 x u64, 32 bytes);
//! - ack: consumer seq, stream seq (2 x u64, 16 bytes);
//! - full state: delivered (2 x u64), ack floor (2 x u64), pending count (u64) then per pending
//!   message stream seq, consumer seq, timestamp (3 x u64), redelivered count (u64) then per
//!   entry stream seq and count (2 x u64).

use crate::consumer::state;
use crate::file::record::{kind, u64_at};
use crate::traits::{AckPolicy, ConsumerState, PendingAck, SequencePair};

/// Bytes of a delivered body.
const DELIVERED_LEN: usize = 32;
/// Bytes of an ack body.
const ACK_LEN: usize = 16;

/// One change to a consumer's state, as a record carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Update {
    /// A delivery (`delivery_count` 1 is the first).
    Delivered { consumer_seq: u64, stream_seq: u64, delivery_count: u64, timestamp: i64 },
    /// An acknowledgement.
    Acked { consumer_seq: u64, stream_seq: u64 },
    /// The whole state.
    Full(ConsumerState),
}

impl Update {
    /// Applies the change with the rules of `consumer::state`.
    pub fn apply(self, st: &mut ConsumerState, policy: AckPolicy) {
        match self {
            Update::Delivered { consumer_seq, stream_seq, delivery_count, timestamp } => {
                state::delivered(st, policy, consumer_seq, stream_seq, delivery_count, timestamp);
            }
            Update::Acked { consumer_seq, stream_seq } => state::acked(st, policy, consumer_seq, stream_seq),
            Update::Full(full) => *st = full,
        }
    }

    /// The record kind in a one-consumer log; a shared log uses [`Update::shared_kind`].
    pub fn kind(&self) -> u8 {
        match self {
            Update::Delivered { .. } => kind::CONSUMER_DELIVERED,
            Update::Acked { .. } => kind::CONSUMER_ACK,
            Update::Full(_) => kind::CONSUMER_FULL,
        }
    }

    /// The record kind in a shared log (id, then the same body).
    pub fn shared_kind(&self) -> u8 {
        match self {
            Update::Delivered { .. } => kind::SHARED_DELIVERED,
            Update::Acked { .. } => kind::SHARED_ACK,
            Update::Full(_) => kind::SHARED_FULL,
        }
    }

    /// Length of the body.
    pub fn body_len(&self) -> usize {
        match self {
            Update::Delivered { .. } => DELIVERED_LEN,
            Update::Acked { .. } => ACK_LEN,
            Update::Full(st) => state_len(st),
        }
    }

    /// Appends the body to `out`.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            Update::Delivered { consumer_seq, stream_seq, delivery_count, timestamp } => {
                put_u64s(out, &[*consumer_seq, *stream_seq, *delivery_count, *timestamp as u64]);
            }
            Update::Acked { consumer_seq, stream_seq } => put_u64s(out, &[*consumer_seq, *stream_seq]),
            Update::Full(st) => encode_state(out, st),
        }
    }

    /// Decodes the body of a record of `kind` (a one-consumer or a shared update kind). `None`
    /// when the kind is not an update or the body has the wrong length.
    pub fn decode(kind: u8, body: &[u8]) -> Option<Update> {
        let f = |i: usize| u64_at(body, i * 8);
        match kind {
            kind::CONSUMER_DELIVERED | kind::SHARED_DELIVERED if body.len() == DELIVERED_LEN => {
                Some(Update::Delivered {
                    consumer_seq: f(0)?,
                    stream_seq: f(1)?,
                    delivery_count: f(2)?,
                    timestamp: f(3)? as i64,
                })
            }
            kind::CONSUMER_ACK | kind::SHARED_ACK if body.len() == ACK_LEN => {
                Some(Update::Acked { consumer_seq: f(0)?, stream_seq: f(1)? })
            }
            kind::CONSUMER_FULL | kind::SHARED_FULL => decode_state(body).map(Update::Full),
            _ => None,
        }
    }
}

/// Appends little-endian u64s.
pub(crate) fn put_u64s(out: &mut Vec<u8>, values: &[u64]) {
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Length of the full-state body of `st` (O(1)).
pub(crate) fn state_len(st: &ConsumerState) -> usize {
    48 + st.pending.len() * 24 + st.redelivered.len() * 16
}

/// Appends the full-state body of `st`.
pub(crate) fn encode_state(out: &mut Vec<u8>, st: &ConsumerState) {
    out.reserve(state_len(st));
    put_u64s(
        out,
        &[
            st.delivered.consumer_seq,
            st.delivered.stream_seq,
            st.ack_floor.consumer_seq,
            st.ack_floor.stream_seq,
        ],
    );
    put_u64s(out, &[st.pending.len() as u64]);
    for (s, p) in &st.pending {
        put_u64s(out, &[*s, p.consumer_seq, p.timestamp as u64]);
    }
    put_u64s(out, &[st.redelivered.len() as u64]);
    for (s, c) in &st.redelivered {
        put_u64s(out, &[*s, *c]);
    }
}

/// Decodes a full-state body; `None` unless `b` is exactly one.
pub(crate) fn decode_state(b: &[u8]) -> Option<ConsumerState> {
    let mut at = 0;
    let mut next = || {
        let v = u64_at(b, at);
        at += 8;
        v
    };
    let mut st = ConsumerState {
        delivered: SequencePair { consumer_seq: next()?, stream_seq: next()? },
        ack_floor: SequencePair { consumer_seq: next()?, stream_seq: next()? },
        ..ConsumerState::default()
    };
    // Counts come from disk: each entry must still fit in what is left of the body.
    for _ in 0..next()? {
        let (s, c, t) = (next()?, next()?, next()?);
        st.pending.insert(s, PendingAck { consumer_seq: c, timestamp: t as i64 });
    }
    for _ in 0..next()? {
        let (s, c) = (next()?, next()?);
        st.redelivered.insert(s, c);
    }
    (at == b.len()).then_some(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_has_the_announced_length() {
        let mut st = ConsumerState::default();
        for i in 1..=5 {
            state::delivered(&mut st, AckPolicy::Explicit, i, i * 3, 1 + i % 2, i as i64 * 7);
        }
        let mut out = Vec::new();
        encode_state(&mut out, &st);
        assert_eq!(out.len(), state_len(&st));
        assert_eq!(decode_state(&out), Some(st));
        assert_eq!(decode_state(&out[..out.len() - 1]), None, "short");
        out.push(0);
        assert_eq!(decode_state(&out), None, "trailing bytes");
    }

    #[test]
    fn a_huge_count_does_not_loop_or_allocate() {
        let mut out = Vec::new();
        put_u64s(&mut out, &[1, 2, 3, 4, u64::MAX]);
        assert_eq!(decode_state(&out), None);
    }

    #[test]
    fn updates_decode_under_both_kinds() {
        let u = Update::Delivered { consumer_seq: 1, stream_seq: 2, delivery_count: 3, timestamp: -4 };
        let mut body = Vec::new();
        u.encode_body(&mut body);
        assert_eq!(body.len(), u.body_len());
        assert_eq!(Update::decode(u.kind(), &body), Some(u.clone()));
        assert_eq!(Update::decode(u.shared_kind(), &body), Some(u));
        assert_eq!(Update::decode(kind::CONSUMER_ACK, &body), None, "wrong length");
    }
}
