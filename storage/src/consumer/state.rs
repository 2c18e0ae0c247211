//! How deliveries and acknowledgements change a consumer's state (shared by both stores).

use crate::traits::{AckPolicy, ConsumerState, PendingAck};

/// Applies a delivery.
pub(crate) fn delivered(st: &mut ConsumerState, policy: AckPolicy, dseq: u64, sseq: u64, dc: u64, ts: i64) {
    if policy != AckPolicy::None {
        if dc > 1 {
            st.redelivered.insert(sseq, dc - 1);
        }
        match st.pending.get_mut(&sseq) {
            // A redelivery keeps the first delivery's consumer sequence (the ack floor counts
            // from it), as nats-server's store does.
            Some(p) if dc > 1 => p.timestamp = ts,
            _ => {
                st.pending.insert(sseq, PendingAck { consumer_seq: dseq, timestamp: ts });
            }
        }
    }
    st.delivered.consumer_seq = st.delivered.consumer_seq.max(dseq);
    st.delivered.stream_seq = st.delivered.stream_seq.max(sseq);
    if policy == AckPolicy::None {
        st.ack_floor = st.delivered;
    }
}

/// Applies an acknowledgement.
pub(crate) fn acked(st: &mut ConsumerState, policy: AckPolicy, dseq: u64, sseq: u64) {
    match policy {
        AckPolicy::None => return,
        AckPolicy::All => {
            st.pending.retain(|s, _| *s > sseq);
            st.redelivered.retain(|s, _| *s > sseq);
            st.ack_floor.consumer_seq = st.ack_floor.consumer_seq.max(dseq);
            st.ack_floor.stream_seq = st.ack_floor.stream_seq.max(sseq);
        }
        AckPolicy::Explicit => {
            if st.pending.remove(&sseq).is_none() {
                return;
            }
            st.redelivered.remove(&sseq);
        }
    }
    match st.pending.first_key_value() {
        None => st.ack_floor = st.delivered,
        Some((s, p)) => {
            st.ack_floor.stream_seq = st.ack_floor.stream_seq.max(s.saturating_sub(1));
            st.ack_floor.consumer_seq = st.ack_floor.consumer_seq.max(p.consumer_seq.saturating_sub(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_acks_move_the_floor_to_the_first_pending() {
        let mut st = ConsumerState::default();
        for i in 1..=3 {
            delivered(&mut st, AckPolicy::Explicit, i, i * 10, 1, 0);
        }
        acked(&mut st, AckPolicy::Explicit, 2, 20);
        assert_eq!(st.ack_floor.stream_seq, 9);
        acked(&mut st, AckPolicy::Explicit, 1, 10);
        assert_eq!((st.ack_floor.consumer_seq, st.ack_floor.stream_seq), (2, 29));
        acked(&mut st, AckPolicy::Explicit, 3, 30);
        assert_eq!(st.ack_floor, st.delivered);
        assert!(st.pending.is_empty());
    }

    #[test]
    fn redelivery_is_counted_and_keeps_the_first_consumer_sequence() {
        let mut st = ConsumerState::default();
        delivered(&mut st, AckPolicy::Explicit, 1, 5, 1, 0);
        delivered(&mut st, AckPolicy::Explicit, 2, 5, 3, 9);
        assert_eq!(st.redelivered.get(&5), Some(&2));
        assert_eq!((st.pending[&5].consumer_seq, st.pending[&5].timestamp), (1, 9));
        assert_eq!(st.delivered.consumer_seq, 2);
        acked(&mut st, AckPolicy::All, 2, 5);
        assert!(st.redelivered.is_empty());
    }
}
