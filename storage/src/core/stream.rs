//! One stream's logic over any backend: sequences, limits, purges, reads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::config::{DiscardPolicy, StreamConfig};
use crate::core::backend::{Backend, Incoming};
use crate::core::index::{Entry, Index};
use crate::error::{Result, StoreError};
use crate::filter::SubjectFilter;
use crate::message::{nanos, now_nanos, stored_size_in, NewMessage, StoredMessage};
use crate::state::{StreamState, SubjectState};
use crate::traits::{Completion, PurgeOptions};

/// Delete markers appended by expiry (sequence, subject) and who is to hear of them.
pub(crate) type NewMarkers = (Vec<(u64, Arc<str>)>, crate::traits::MarkerListener);

/// A stream: its index plus the backend that keeps the bytes.
pub(crate) struct Stream<B: Backend> {
    pub config: StreamConfig,
    pub index: Index<B::Loc>,
    pub backend: B,
    pub closed: bool,
    /// Delete markers appended by expiry and not yet reported to `marker_listener`.
    pub markers: Vec<(u64, Arc<str>)>,
    pub marker_listener: Option<crate::traits::MarkerListener>,
}

impl<B: Backend> Stream<B> {
    pub fn new(config: StreamConfig, index: Index<B::Loc>, backend: B) -> Self {
        Stream { config, index, backend, closed: false, markers: Vec::new(), marker_listener: None }
    }

    /// The delete markers expiry appended since the last call, with who is to hear of them
    /// (`None` when there are none or nobody listens).
    pub fn take_markers(&mut self) -> Option<NewMarkers> {
        if self.markers.is_empty() {
            return None;
        }
        let markers = std::mem::take(&mut self.markers);
        self.marker_listener.clone().map(|listener| (markers, listener))
    }

    /// Backend housekeeping; errors surface through the next write (the store is poisoned).
    pub fn maintain(&mut self) {
        let _ = self.backend.maintain(&mut self.index);
    }

    fn writable(&self) -> Result<()> {
        if self.closed {
            return Err(StoreError::Closed);
        }
        self.backend.writable()
    }

    /// Checks the limits that refuse a message rather than make room for it.
    fn admit(&self, msg: &NewMessage<'_>, size: u64) -> Result<()> {
        let body = msg.payload.len() + msg.headers.as_ref().map_or(0, |h| h.len());
        if let Some(max) = self.config.max_msg_size {
            if body > max as usize {
                return Err(StoreError::MaxMsgSize);
            }
        }
        if self.config.discard != DiscardPolicy::New {
            return Ok(());
        }
        if let Some(max) = self.config.max_msgs {
            if self.index.msgs.len() as u64 >= max {
                return Err(StoreError::MaxMsgs);
            }
        }
        if let Some(max) = self.config.max_bytes {
            if self.index.bytes + size > max {
                return Err(StoreError::MaxBytes);
            }
        }
        if let (Some(max), true) = (self.config.max_msgs_per_subject, self.config.discard_new_per_subject) {
            if self.index.subject_count(msg.subject) >= max {
                return Err(StoreError::MaxMsgsPerSubject);
            }
        }
        Ok(())
    }

    pub fn append(&mut self, msg: NewMessage<'_>, done: Option<Completion>) -> Result<u64> {
        self.writable()?;
        let size = stored_size_in(B::SIZE, msg.subject, msg.headers.as_deref(), msg.payload.len());
        self.admit(&msg, size)?;
        let seq = self.index.last_seq + 1;
        let timestamp = msg.received.unwrap_or_else(now_nanos).max(self.index.last_ts);
        self.store_at(seq, timestamp, msg, size, done)?;
        Ok(seq)
    }

    pub fn append_raw(
        &mut self,
        seq: u64,
        timestamp: i64,
        msg: NewMessage<'_>,
        done: Option<Completion>,
    ) -> Result<()> {
        self.writable()?;
        if seq <= self.index.last_seq {
            return Err(StoreError::InvalidSequence(seq));
        }
        let size = stored_size_in(B::SIZE, msg.subject, msg.headers.as_deref(), msg.payload.len());
        self.admit(&msg, size)?;
        self.store_at(seq, timestamp, msg, size, done)
    }

    fn store_at(
        &mut self,
        seq: u64,
        timestamp: i64,
        msg: NewMessage<'_>,
        size: u64,
        done: Option<Completion>,
    ) -> Result<()> {
        let expires = msg.ttl.map_or(0, |ttl| timestamp.saturating_add(nanos(ttl).max(1)));
        let subject = self.index.intern(msg.subject);
        let incoming = Incoming {
            seq,
            timestamp,
            expires,
            subject: Arc::clone(&subject),
            headers: msg.headers,
            payload: msg.payload,
        };
        let loc = self.backend.store(incoming, done)?;
        self.index.insert(seq, Entry { subject: Arc::clone(&subject), timestamp, size, expires, loc });
        self.enforce_subject_limit(&subject)?;
        self.enforce_totals()
    }

    fn enforce_subject_limit(&mut self, subject: &str) -> Result<()> {
        if let Some(max) = self.config.max_msgs_per_subject {
            while self.index.subject_count(subject) > max {
                match self.index.subject_first(subject) {
                    Some(seq) => self.remove_msg(seq, false)?,
                    None => break,
                };
            }
        }
        Ok(())
    }

    fn enforce_totals(&mut self) -> Result<()> {
        let max_msgs = self.config.max_msgs.unwrap_or(u64::MAX);
        let max_bytes = self.config.max_bytes.unwrap_or(u64::MAX);
        while !self.index.msgs.is_empty()
            && (self.index.msgs.len() as u64 > max_msgs || self.index.bytes > max_bytes)
        {
            self.remove_msg(self.index.first_seq, false)?;
        }
        Ok(())
    }

    /// Removes one message from index and backend; false when it was not there.
    pub fn remove_msg(&mut self, seq: u64, erase: bool) -> Result<bool> {
        match self.index.remove(seq) {
            Some(entry) => {
                self.backend.removed(seq, entry.loc, erase, self.index.first_seq)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    pub fn remove(&mut self, seq: u64, erase: bool) -> Result<bool> {
        self.writable()?;
        self.remove_msg(seq, erase)
    }

    /// Removes expired messages; returns the next deadline (ns), if any.
    pub fn expire(&mut self, now: i64) -> Result<Option<i64>> {
        if self.closed {
            return Ok(None);
        }
        self.backend.expire_cache(now);
        let mut next = None;
        if let Some(age) = self.config.max_age {
            let cutoff = now.saturating_sub(nanos(age));
            while let Some((seq, e)) = self.index.msgs.first_key_value() {
                if e.timestamp > cutoff {
                    next = Some(e.timestamp.saturating_add(nanos(age)));
                    break;
                }
                let seq = *seq;
                self.expire_msg(seq, now)?;
            }
        }
        while let Some((deadline, seq)) = self.index.next_ttl() {
            if deadline > now {
                next = Some(next.map_or(deadline, |n: i64| n.min(deadline)));
                break;
            }
            self.expire_msg(seq, now)?;
        }
        Ok(next)
    }

    /// Removes an expired message; with delete markers on, the last message of its subject
    /// (unless it is a marker itself) makes way for a marker, as in nats-server (which
    /// publishes the marker with `Nats-Rollup: sub`, removing the expired message).
    fn expire_msg(&mut self, seq: u64, now: i64) -> Result<()> {
        let marker = match (self.config.delete_marker_ttl, self.index.msgs.get(&seq)) {
            (Some(ttl), Some(entry)) if self.index.subject_count(&entry.subject) == 1 => {
                let subject = Arc::clone(&entry.subject);
                let is_marker =
                    self.load(seq).is_ok_and(|m| m.headers.as_deref().is_some_and(is_delete_marker));
                (!is_marker).then_some((subject, ttl))
            }
            _ => None,
        };
        self.remove_msg(seq, false)?;
        if let Some((subject, ttl)) = marker {
            let message = NewMessage {
                subject: &subject,
                headers: Some(delete_marker_headers(ttl)),
                payload: Bytes::new(),
                ttl: Some(ttl),
                received: Some(now),
            };
            // A marker refused by a limit is left out, like any message the limits refuse.
            match self.append(message, None) {
                Ok(marker_seq) => self.markers.push((marker_seq, subject)),
                Err(StoreError::Closed) => return Err(StoreError::Closed),
                Err(_) => {}
            }
        }
        Ok(())
    }

    pub fn load(&self, seq: u64) -> Result<StoredMessage> {
        let entry = self.index.msgs.get(&seq).ok_or(StoreError::NotFound)?;
        self.backend.load(seq, entry)
    }

    pub fn load_last(&self, filter: &str) -> Result<StoredMessage> {
        let seq = self.index.last_match(&SubjectFilter::one(filter)).ok_or(StoreError::NotFound)?;
        self.load(seq)
    }

    pub fn load_next(&self, filter: &SubjectFilter, start: u64) -> Result<StoredMessage> {
        if filter.is_all() {
            // One lookup finds both the sequence and its entry (a consumer reading along).
            let (seq, entry) = self.index.msgs.range(start..).next().ok_or(StoreError::NotFound)?;
            return self.backend.load(*seq, entry);
        }
        let seq = self.index.next_match(filter, start).ok_or(StoreError::NotFound)?;
        self.load(seq)
    }

    /// Drops every message; the stream continues at `first_seq`.
    fn clear(&mut self, first_seq: u64) -> Result<u64> {
        let n = self.index.msgs.len() as u64;
        self.index.clear(first_seq);
        self.backend.cleared(first_seq)?;
        Ok(n)
    }

    pub fn purge(&mut self, opts: &PurgeOptions) -> Result<u64> {
        self.writable()?;
        let filter = opts.filter.as_deref().filter(|f| *f != ">");
        if filter.is_none() && opts.keep.is_none() {
            return match opts.upto_seq {
                None => {
                    let next = self.index.last_seq + 1;
                    self.clear(next)
                }
                Some(seq) => self.compact_upto(seq),
            };
        }
        let filter = filter.map_or_else(SubjectFilter::all, SubjectFilter::one);
        let mut seqs = self.index.matching_seqs(&filter);
        if let Some(upto) = opts.upto_seq {
            seqs.retain(|s| *s < upto);
        }
        if let Some(keep) = opts.keep {
            let n = seqs.len().saturating_sub(usize::try_from(keep).unwrap_or(usize::MAX));
            seqs.truncate(n);
        }
        let mut removed = 0;
        for seq in seqs {
            removed += u64::from(self.remove_msg(seq, false)?);
        }
        Ok(removed)
    }

    pub fn compact(&mut self, seq: u64) -> Result<u64> {
        self.writable()?;
        self.compact_upto(seq)
    }

    fn compact_upto(&mut self, seq: u64) -> Result<u64> {
        if seq <= self.index.first_seq {
            return Ok(0);
        }
        let last_msg = self.index.msgs.keys().next_back().copied().unwrap_or(0);
        if last_msg < seq {
            // Nothing left: an empty stream's first sequence is always `last + 1`.
            return self.clear(seq.max(self.index.last_seq + 1));
        }
        let seqs: Vec<u64> = self.index.msgs.range(..seq).map(|(s, _)| *s).collect();
        for s in &seqs {
            self.remove_msg(*s, false)?;
        }
        Ok(seqs.len() as u64)
    }

    pub fn truncate(&mut self, seq: u64) -> Result<()> {
        self.writable()?;
        let doomed: Vec<u64> = self.index.msgs.range(seq.saturating_add(1)..).map(|(s, _)| *s).collect();
        for s in doomed.into_iter().rev() {
            if let Some(entry) = self.index.remove(s) {
                self.backend.forget(s, entry.loc);
            }
        }
        self.set_last(seq)
    }

    pub fn skip_to(&mut self, last_seq: u64) -> Result<()> {
        self.writable()?;
        if last_seq <= self.index.last_seq {
            return Ok(());
        }
        self.set_last(last_seq)
    }

    fn set_last(&mut self, last_seq: u64) -> Result<()> {
        self.index.last_seq = last_seq;
        if self.index.msgs.is_empty() {
            self.index.first_seq = last_seq + 1;
        }
        self.index.last_ts = self.index.msgs.values().next_back().map_or(self.index.last_ts, |e| e.timestamp);
        self.backend.truncated(last_seq)
    }

    pub fn state(&self) -> StreamState {
        let idx = &self.index;
        let msgs = idx.msgs.len() as u64;
        let span = if msgs == 0 { 0 } else { idx.last_seq + 1 - idx.first_seq };
        StreamState {
            msgs,
            bytes: idx.bytes,
            first_seq: idx.first_seq,
            first_ts: idx.msgs.values().next().map_or(0, |e| e.timestamp),
            last_seq: idx.last_seq,
            last_ts: idx.last_ts,
            num_subjects: idx.num_subjects(),
            num_deleted: span.saturating_sub(msgs),
            lost: self.backend.lost(),
        }
    }

    pub fn subjects_state(&self, filter: &str) -> BTreeMap<Arc<str>, SubjectState> {
        self.index.subjects_state(&SubjectFilter::one(filter))
    }

    pub fn filtered_state(&self, filter: &SubjectFilter, start: u64) -> SubjectState {
        self.index.filtered_state(filter, start)
    }

    pub fn update_config(&mut self, config: StreamConfig) -> Result<()> {
        self.writable()?;
        self.config = config;
        if let Some(max) = self.config.max_msgs_per_subject {
            for subject in self.index.subjects_over(max) {
                self.enforce_subject_limit(&subject)?;
            }
        }
        self.enforce_totals()?;
        self.expire(now_nanos()).map(|_| ())
    }
}

/// Headers of a subject delete marker: nats-server's reason, the marker's TTL in Go's
/// duration words, and a subject roll-up (what the marker stands for).
fn delete_marker_headers(ttl: Duration) -> Bytes {
    let secs = ttl.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let ttl_text = if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    };
    Bytes::from(format!(
        "NATS/1.0\r\nNats-Marker-Reason: MaxAge\r\nNats-TTL: {ttl_text}\r\nNats-Rollup: sub\r\n\r\n"
    ))
}

/// Whether raw headers mark a deletion already: a delete marker, or a Key-Value purge.
fn is_delete_marker(headers: &[u8]) -> bool {
    let has = |needle: &[u8]| headers.windows(needle.len()).any(|w| w == needle);
    has(b"\r\nNats-Marker-Reason:") || has(b"\r\nKV-Operation: PURGE\r\n")
}
