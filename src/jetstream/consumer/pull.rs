//! Pull requests (`$JS.API.CONSUMER.MSG.NEXT`) and the status messages sent back to them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;

use super::priority::RequestPriority;

/// A request body: empty (batch 1), a bare integer batch, or JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct PullRequestJson {
    pub batch: i64,
    /// Nanoseconds.
    pub expires: i64,
    pub max_bytes: i64,
    pub no_wait: bool,
    /// Nanoseconds.
    pub idle_heartbeat: i64,
    /// Priority groups (see `priority`).
    pub group: Option<String>,
    pub min_pending: i64,
    pub min_ack_pending: i64,
    pub id: Option<String>,
    pub priority: i64,
    /// The request was a JSON object (not empty or a bare batch size): only such requests
    /// take part in priority groups, as in nats-server.
    #[serde(skip)]
    pub json: bool,
}

/// Parses a request body; `Err` carries the 400 description.
pub fn parse_request(body: &[u8]) -> Result<PullRequestJson, String> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return Ok(PullRequestJson { batch: 1, ..PullRequestJson::default() });
    }
    if let Ok(batch) = text.parse::<i64>() {
        return Ok(PullRequestJson { batch: batch.max(1), ..PullRequestJson::default() });
    }
    let mut req: PullRequestJson = crate::jetstream::json::decode_json(text.as_bytes())
        .map_err(|e| format!("Bad Request - {}", e.description))?;
    req.json = true;
    if req.batch <= 0 {
        req.batch = 1;
    }
    if req.expires < 0 || req.idle_heartbeat < 0 || req.max_bytes < 0 {
        return Err("Bad Request".into());
    }
    if req.idle_heartbeat > 0 && req.expires > 0 && req.idle_heartbeat * 2 > req.expires {
        return Err("Bad Request - heartbeat value too large".into());
    }
    Ok(req)
}

/// A waiting pull request.
#[derive(Debug, Clone)]
pub struct Waiting {
    /// Where its messages go (shared by every message delivered to it).
    pub reply: Arc<str>,
    /// Messages still to deliver.
    pub remaining: u64,
    /// Bytes still allowed (0: no limit).
    pub max_bytes: u64,
    pub bytes_left: u64,
    pub no_wait: bool,
    pub expires: Option<Instant>,
    pub heartbeat: Option<Duration>,
    pub next_heartbeat: Option<Instant>,
    /// Messages delivered to it so far.
    pub delivered: u64,
    /// Its part in the consumer's priority group, if any.
    pub priority: RequestPriority,
}

impl Waiting {
    pub fn new(reply: Arc<str>, req: &PullRequestJson, now: Instant) -> Self {
        let max_bytes = u64::try_from(req.max_bytes).unwrap_or(0);
        let heartbeat = u64::try_from(req.idle_heartbeat).ok().filter(|h| *h > 0).map(Duration::from_nanos);
        Waiting {
            reply,
            remaining: u64::try_from(req.batch).unwrap_or(1).max(1),
            max_bytes,
            bytes_left: max_bytes,
            no_wait: req.no_wait,
            expires: u64::try_from(req.expires)
                .ok()
                .filter(|e| *e > 0)
                .map(|e| now + Duration::from_nanos(e)),
            heartbeat,
            next_heartbeat: heartbeat.map(|h| now + h),
            delivered: 0,
            priority: RequestPriority::of(req),
        }
    }
}

/// A status-only message: `NATS/1.0 <code> <text>` plus headers, empty body.
pub fn status(code: u16, text: &str, headers: &[(&str, String)]) -> Bytes {
    let mut h = jetway_protocols::nats::HeaderMap::with_status(code, Some(text));
    for (name, value) in headers {
        h.append(*name, value.clone());
    }
    h.encode()
}

/// Headers telling a request what remained of it.
pub fn pending_headers(w: &Waiting) -> Vec<(&'static str, String)> {
    vec![("Nats-Pending-Messages", w.remaining.to_string()), ("Nats-Pending-Bytes", w.bytes_left.to_string())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_forms() {
        assert_eq!(parse_request(b"").map(|r| r.batch), Ok(1));
        assert_eq!(parse_request(b"10").map(|r| r.batch), Ok(10));
        let r = parse_request(br#"{"batch":5,"expires":1000000000,"no_wait":true}"#).unwrap_or_default();
        assert_eq!((r.batch, r.expires, r.no_wait), (5, 1_000_000_000, true));
        assert!(parse_request(b"{bad").is_err());
        assert!(parse_request(br#"{"batch":1,"expires":1000,"idle_heartbeat":900}"#).is_err());
        assert_eq!(&status(404, "No Messages", &[])[..], b"NATS/1.0 404 No Messages\r\n\r\n");
    }
}
