//! Ack subjects and ack payloads.
//!
//! A delivered message's reply subject is
//! `$JS.ACK.<stream>.<consumer>.<delivered_count>.<stream_seq>.<consumer_seq>.<timestamp_ns>.<num_pending>`
//! (nats-server's v1 form, 9 tokens), which clients parse for message metadata.

use std::time::Duration;

/// Builds the ack reply subject of one delivery.
pub fn ack_subject(
    stream: &str,
    consumer: &str,
    deliveries: u64,
    sseq: u64,
    dseq: u64,
    ts: i64,
    pending: u64,
) -> String {
    // Once per delivered message: one exact allocation, no formatting machinery.
    const PREFIX: &str = "$JS.ACK.";
    let mut numbers = itoa::Buffer::new();
    let mut s = String::with_capacity(PREFIX.len() + stream.len() + consumer.len() + 2 + 5 * 21);
    s.push_str(PREFIX);
    s.push_str(stream);
    s.push('.');
    s.push_str(consumer);
    for n in [deliveries, sseq, dseq] {
        s.push('.');
        s.push_str(numbers.format(n));
    }
    s.push('.');
    s.push_str(numbers.format(ts));
    s.push('.');
    s.push_str(numbers.format(pending));
    s
}

/// The sequences an ack subject names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckRef {
    pub deliveries: u64,
    pub stream_seq: u64,
    pub consumer_seq: u64,
    /// When the message was stored (ns since the epoch; 0 if the token is not a number).
    pub timestamp: i64,
}

/// Parses the tokens after `$JS.ACK.<stream>.<consumer>.`.
pub fn parse_ack_subject(subject: &str) -> Option<AckRef> {
    // Only the first 9 tokens and the count matter (no allocation: one per ack adds up).
    let mut tokens = [""; 9];
    let mut count = 0;
    for (i, token) in subject.split('.').enumerate() {
        if let Some(slot) = tokens.get_mut(i) {
            *slot = token;
        }
        count = i + 1;
    }
    if count < 9 {
        return None;
    }
    // v1 has 9 tokens; v2 (11+) inserts domain and account hash after `$JS.ACK`.
    let base = if count == 9 { 4 } else { 6 };
    let num = |i: usize| tokens.get(base + i).and_then(|t| t.parse::<u64>().ok());
    let timestamp = tokens.get(base + 3).and_then(|t| t.parse::<i64>().ok()).unwrap_or(0);
    Some(AckRef { deliveries: num(0)?, stream_seq: num(1)?, consumer_seq: num(2)?, timestamp })
}

/// What an ack message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckKind {
    Ack,
    /// Redeliver, optionally after a delay.
    Nak(Option<Duration>),
    /// Work in progress: restart the ack-wait timer.
    Progress,
    /// Ack, then deliver more to the ack's reply subject (pull consumers).
    Next(Vec<u8>),
    /// Never redeliver.
    Term(Option<String>),
}

/// Parses an ack payload (nats-server `processAck`). Unknown payloads count as an ack.
pub fn parse_ack(payload: &[u8]) -> AckKind {
    let text = String::from_utf8_lossy(payload);
    let text = text.trim();
    if text.is_empty() || text == "+ACK" || text == "+OK" {
        return AckKind::Ack;
    }
    if let Some(rest) = text.strip_prefix("-NAK") {
        return AckKind::Nak(parse_nak_delay(rest.trim()));
    }
    if text.starts_with("+WPI") {
        return AckKind::Progress;
    }
    if let Some(rest) = text.strip_prefix("+NXT") {
        return AckKind::Next(rest.trim().as_bytes().to_vec());
    }
    if let Some(rest) = text.strip_prefix("+TERM") {
        let reason = rest.trim();
        return AckKind::Term((!reason.is_empty()).then(|| reason.to_string()));
    }
    AckKind::Ack
}

/// `-NAK {"delay": <ns>}` or `-NAK 5s`; unparsable is no delay.
fn parse_nak_delay(rest: &str) -> Option<Duration> {
    if rest.is_empty() {
        return None;
    }
    if rest.starts_with('{') {
        #[derive(serde::Deserialize)]
        struct Delay {
            delay: i64,
        }
        let d: Delay = serde_json::from_str(rest).ok()?;
        return u64::try_from(d.delay).ok().filter(|d| *d > 0).map(Duration::from_nanos);
    }
    crate::config::units::parse_duration(rest).ok().filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_subject_round_trip() {
        let s = ack_subject("S", "C", 2, 10, 7, 123, 5);
        assert_eq!(s, "$JS.ACK.S.C.2.10.7.123.5");
        assert_eq!(
            ack_subject("KV_b", "c1", 1, u64::MAX, 3, -4, 0),
            format!("$JS.ACK.KV_b.c1.1.{}.3.-4.0", u64::MAX)
        );
        assert_eq!(s, "$JS.ACK.S.C.2.10.7.123.5");
        assert_eq!(
            parse_ack_subject(&s),
            Some(AckRef { deliveries: 2, stream_seq: 10, consumer_seq: 7, timestamp: 123 })
        );
        assert_eq!(parse_ack_subject("$JS.ACK.S.C.x"), None);
    }

    #[test]
    fn ack_kinds() {
        assert_eq!(parse_ack(b""), AckKind::Ack);
        assert_eq!(parse_ack(b"+ACK"), AckKind::Ack);
        assert_eq!(parse_ack(b"-NAK"), AckKind::Nak(None));
        assert_eq!(parse_ack(br#"-NAK {"delay": 2000000000}"#), AckKind::Nak(Some(Duration::from_secs(2))));
        assert_eq!(parse_ack(b"-NAK 5s"), AckKind::Nak(Some(Duration::from_secs(5))));
        assert_eq!(parse_ack(b"+WPI"), AckKind::Progress);
        assert_eq!(parse_ack(b"+NXT 5"), AckKind::Next(b"5".to_vec()));
        assert_eq!(parse_ack(b"+TERM bad data"), AckKind::Term(Some("bad data".into())));
    }
}
