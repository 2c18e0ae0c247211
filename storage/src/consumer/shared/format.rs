//! The records of a shared consumer log and its replay (see the crate docs for the bytes).
//!
//! Replay applies records in order and stops at the first one that does not decode or does not
//! fit what came before (a second header, an update of an unknown id, a name added twice).
//! What follows the stop is a torn tail when no valid record of this log comes after it (a
//! crash cut the last writes: never acknowledged) and damage otherwise.

use std::collections::{BTreeMap, HashMap};

use crate::consumer::codec::{self, Update};
use crate::file::record::{decode, encode_with, kind, u64_at, Record, MIN_RECORD_LEN, RECORD_HEADER_LEN};
use crate::traits::{AckPolicy, ConsumerState};

/// First bytes of the header record's body.
pub(super) const MAGIC: &[u8; 8] = b"JWCLOG01";
/// Length of the header record.
pub(super) const HEADER_LEN: usize = MIN_RECORD_LEN + 16;
/// Id, ack policy and name length before an added consumer's name.
const ADD_FIXED: usize = 8 + 1 + 2;

/// One decoded record of a shared log, borrowing from the file's bytes.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum LogRecord<'a> {
    Header { next_id: u64 },
    Add { id: u64, policy: AckPolicy, name: &'a str, meta: &'a [u8] },
    Meta { id: u64, meta: &'a [u8] },
    Removed { id: u64 },
    Update { id: u64, update: Update },
}

fn policy_byte(p: AckPolicy) -> u8 {
    match p {
        AckPolicy::None => 0,
        AckPolicy::All => 1,
        AckPolicy::Explicit => 2,
    }
}

fn policy_of(b: u8) -> Option<AckPolicy> {
    match b {
        0 => Some(AckPolicy::None),
        1 => Some(AckPolicy::All),
        2 => Some(AckPolicy::Explicit),
        _ => None,
    }
}

impl<'a> LogRecord<'a> {
    /// Decodes the body of a record of `kind`; `None` if it is not a well-formed shared record.
    pub fn decode(kind: u8, body: &'a [u8]) -> Option<LogRecord<'a>> {
        // Every body starts with 8 bytes: the magic for the header, the consumer id otherwise.
        let (id, rest) = (u64_at(body, 0)?, body.get(8..)?);
        match kind {
            kind::SHARED_HEADER if body.get(..8)? == MAGIC && rest.len() == 8 => {
                Some(LogRecord::Header { next_id: u64_at(rest, 0)? })
            }
            kind::SHARED_HEADER => None,
            kind::SHARED_ADD => {
                let policy = policy_of(*rest.first()?)?;
                let name_len = u16::from_le_bytes(rest.get(1..3)?.try_into().ok()?) as usize;
                let name = std::str::from_utf8(rest.get(3..3 + name_len)?).ok()?;
                let meta = rest.get(3 + name_len..)?;
                Some(LogRecord::Add { id, policy, name, meta })
            }
            kind::SHARED_META => Some(LogRecord::Meta { id, meta: rest }),
            kind::SHARED_REMOVED => rest.is_empty().then_some(LogRecord::Removed { id }),
            _ => Some(LogRecord::Update { id, update: Update::decode(kind, rest)? }),
        }
    }
}

/// Appends the header record.
pub(super) fn encode_header(out: &mut Vec<u8>, next_id: u64) {
    encode_with(out, kind::SHARED_HEADER, |o| {
        o.extend_from_slice(MAGIC);
        o.extend_from_slice(&next_id.to_le_bytes());
    });
}

/// Length of an add record with `meta_len` bytes of meta (the caller keeps `name` within u16
/// bytes).
pub(super) fn add_len(name: &str, meta_len: usize) -> usize {
    MIN_RECORD_LEN + ADD_FIXED + name.len() + meta_len
}

/// Where an add record's meta starts, from the record's start.
pub(super) fn add_meta_offset(name: &str) -> usize {
    RECORD_HEADER_LEN + ADD_FIXED + name.len()
}

/// Where a meta record's meta starts, from the record's start.
pub(super) const META_OFFSET: usize = RECORD_HEADER_LEN + 8;

/// Length of a meta record.
pub(super) fn meta_len(meta_len: usize) -> usize {
    MIN_RECORD_LEN + 8 + meta_len
}

/// Appends an add record.
pub(super) fn encode_add(out: &mut Vec<u8>, id: u64, policy: AckPolicy, name: &str, meta: &[u8]) {
    encode_with(out, kind::SHARED_ADD, |o| {
        o.extend_from_slice(&id.to_le_bytes());
        o.push(policy_byte(policy));
        o.extend_from_slice(&(name.len() as u16).to_le_bytes());
        o.extend_from_slice(name.as_bytes());
        o.extend_from_slice(meta);
    });
}

/// Appends a meta record.
pub(super) fn encode_meta(out: &mut Vec<u8>, id: u64, meta: &[u8]) {
    encode_with(out, kind::SHARED_META, |o| {
        o.extend_from_slice(&id.to_le_bytes());
        o.extend_from_slice(meta);
    });
}

/// Appends a removed record.
pub(super) fn encode_removed(out: &mut Vec<u8>, id: u64) {
    encode_with(out, kind::SHARED_REMOVED, |o| o.extend_from_slice(&id.to_le_bytes()));
}

/// Length of an update record.
pub(super) fn update_len(update: &Update) -> usize {
    MIN_RECORD_LEN + 8 + update.body_len()
}

/// Appends an update record.
pub(super) fn encode_update(out: &mut Vec<u8>, id: u64, update: &Update) {
    encode_with(out, update.shared_kind(), |o| {
        o.extend_from_slice(&id.to_le_bytes());
        update.encode_body(o);
    });
}

/// Length of a full-state record of `st`.
pub(super) fn full_len(st: &ConsumerState) -> usize {
    MIN_RECORD_LEN + 8 + codec::state_len(st)
}

/// Appends a full-state record (without cloning the state into an [`Update`]).
pub(super) fn encode_full(out: &mut Vec<u8>, id: u64, st: &ConsumerState) {
    encode_with(out, kind::SHARED_FULL, |o| {
        o.extend_from_slice(&id.to_le_bytes());
        codec::encode_state(o, st);
    });
}

/// A consumer rebuilt by replay.
#[derive(Debug)]
pub(super) struct Replayed {
    pub name: String,
    pub policy: AckPolicy,
    pub meta: Vec<u8>,
    /// Where `meta` is in the replayed bytes.
    pub meta_at: usize,
    pub state: ConsumerState,
}

/// How replay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// Every byte was a valid record.
    Clean,
    /// The valid prefix is followed by bytes with no valid record among them.
    Torn,
    /// A record that does not decode or apply is followed by valid records.
    Damaged,
}

/// What a log's bytes hold.
#[derive(Debug)]
pub(super) struct Replay {
    /// Live consumers by id (the order they were added in).
    pub consumers: BTreeMap<u64, Replayed>,
    /// The id the next added consumer gets: above every id the file ever mentions.
    pub next_id: u64,
    /// Length of the valid prefix.
    pub valid: usize,
    pub end: End,
}

impl Replay {
    /// Applies `rec`, which borrows from `data` (the whole log).
    fn apply(
        &mut self,
        data: &[u8],
        names: &mut HashMap<String, u64>,
        rec: LogRecord<'_>,
        first: bool,
    ) -> Option<()> {
        if first != matches!(rec, LogRecord::Header { .. }) {
            return None;
        }
        match rec {
            LogRecord::Header { next_id } => self.next_id = self.next_id.max(next_id),
            LogRecord::Add { id, policy, name, meta } => {
                if self.consumers.contains_key(&id) || names.contains_key(name) {
                    return None;
                }
                names.insert(name.to_string(), id);
                let c = Replayed {
                    name: name.to_string(),
                    policy,
                    meta: meta.to_vec(),
                    meta_at: offset_in(data, meta),
                    state: Default::default(),
                };
                self.consumers.insert(id, c);
                self.next_id = self.next_id.max(id.saturating_add(1));
            }
            LogRecord::Meta { id, meta } => {
                let c = self.consumers.get_mut(&id)?;
                c.meta = meta.to_vec();
                c.meta_at = offset_in(data, meta);
            }
            LogRecord::Removed { id } => {
                let c = self.consumers.remove(&id)?;
                names.remove(&c.name);
            }
            LogRecord::Update { id, update } => {
                let c = self.consumers.get_mut(&id)?;
                update.apply(&mut c.state, c.policy);
            }
        }
        Some(())
    }
}

/// Where `part`, a slice of `data`, starts in it.
fn offset_in(data: &[u8], part: &[u8]) -> usize {
    (part.as_ptr() as usize).saturating_sub(data.as_ptr() as usize)
}

/// Replays a log's bytes; never panics.
pub(super) fn replay(data: &[u8]) -> Replay {
    let mut r = Replay { consumers: BTreeMap::new(), next_id: 1, valid: 0, end: End::Clean };
    let mut names = HashMap::new();
    while r.valid < data.len() {
        let rest = data.get(r.valid..).unwrap_or_default();
        let applied = match decode(rest) {
            Ok((Record::Consumer { kind, body }, len)) => rest
                .get(..len)
                .and_then(|rec| rec.get(body))
                .and_then(|body| LogRecord::decode(kind, body))
                .and_then(|rec| r.apply(data, &mut names, rec, r.valid == 0))
                .map(|()| len),
            Ok(_) => None,
            Err(_) => {
                r.end = if valid_record_after(data, r.valid + 1) { End::Damaged } else { End::Torn };
                return r;
            }
        };
        match applied {
            Some(len) => r.valid += len,
            None => {
                // A record with a good checksum that does not fit is damage, never a torn write.
                r.end = End::Damaged;
                return r;
            }
        }
    }
    r
}

/// Whether a valid record of a shared log starts anywhere at or after `from`. Only offsets
/// whose kind and reserved bytes look right are checksummed, so garbage scans in linear time.
fn valid_record_after(data: &[u8], from: usize) -> bool {
    (from..data.len()).any(|at| {
        let rest = data.get(at..).unwrap_or_default();
        rest.get(4).is_some_and(|k| kind::is_shared(*k))
            && rest.get(5..8) == Some(&[0, 0, 0][..])
            && decode(rest).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log holding only its header.
    fn header() -> Vec<u8> {
        let mut out = Vec::new();
        encode_header(&mut out, 1);
        out
    }

    #[test]
    fn records_round_trip() {
        let mut out = Vec::new();
        encode_add(&mut out, 7, AckPolicy::All, "sess-ü", b"{\"x\":1}");
        assert_eq!(out.len(), add_len("sess-ü", 7));
        let at = add_meta_offset("sess-ü");
        assert_eq!(&out[at..at + 7], b"{\"x\":1}");
        let mut meta = Vec::new();
        encode_meta(&mut meta, 7, b"m");
        assert_eq!((meta.len(), &meta[META_OFFSET..META_OFFSET + 1]), (meta_len(1), &b"m"[..]));
        let (Record::Consumer { kind, body }, len) = decode(&out).unwrap() else { panic!() };
        assert_eq!(len, out.len());
        assert_eq!(
            LogRecord::decode(kind, &out[body]),
            Some(LogRecord::Add { id: 7, policy: AckPolicy::All, name: "sess-ü", meta: b"{\"x\":1}" })
        );
        let u = Update::Acked { consumer_seq: 3, stream_seq: 9 };
        let mut out = Vec::new();
        encode_update(&mut out, 7, &u);
        assert_eq!(out.len(), update_len(&u));
        let (Record::Consumer { kind, body }, _) = decode(&out).unwrap() else { panic!() };
        assert_eq!(LogRecord::decode(kind, &out[body]), Some(LogRecord::Update { id: 7, update: u }));
    }

    #[test]
    fn replay_rebuilds_live_consumers_and_next_id() {
        let delivered = crate::SequencePair { consumer_seq: 4, stream_seq: 8 };
        let st = ConsumerState { delivered, ..Default::default() };
        let mut data = header();
        encode_add(&mut data, 1, AckPolicy::Explicit, "a", b"m1");
        encode_add(&mut data, 2, AckPolicy::None, "b", b"");
        encode_full(&mut data, 1, &st);
        encode_meta(&mut data, 1, b"m2");
        encode_removed(&mut data, 2);
        let r = replay(&data);
        assert_eq!((r.end, r.valid, r.next_id), (End::Clean, data.len(), 3));
        let a = &r.consumers[&1];
        assert_eq!((a.name.as_str(), a.meta.as_slice(), &a.state), ("a", &b"m2"[..], &st));
        assert_eq!(r.consumers.len(), 1);
    }

    #[test]
    fn a_cut_last_record_is_torn_and_a_bad_middle_one_is_damage() {
        let mut data = header();
        encode_add(&mut data, 1, AckPolicy::Explicit, "a", b"");
        encode_add(&mut data, 2, AckPolicy::Explicit, "b", b"");
        let cut = replay(&data[..data.len() - 3]);
        assert_eq!((cut.end, cut.consumers.len()), (End::Torn, 1));
        let mut flipped = data.clone();
        flipped[HEADER_LEN + 9] ^= 1;
        let bad = replay(&flipped);
        assert_eq!((bad.end, bad.valid, bad.consumers.len()), (End::Damaged, HEADER_LEN, 0));
    }

    #[test]
    fn records_that_do_not_fit_are_damage() {
        let mut no_header = Vec::new();
        encode_add(&mut no_header, 1, AckPolicy::Explicit, "a", b"");
        let mut two_headers = header();
        encode_header(&mut two_headers, 1);
        let mut unknown_id = header();
        encode_update(&mut unknown_id, 5, &Update::Acked { consumer_seq: 1, stream_seq: 1 });
        let mut name_twice = header();
        encode_add(&mut name_twice, 1, AckPolicy::Explicit, "a", b"");
        encode_add(&mut name_twice, 2, AckPolicy::Explicit, "a", b"");
        for (what, data) in [
            ("no header", no_header),
            ("second header", two_headers),
            ("unknown id", unknown_id),
            ("name twice", name_twice),
        ] {
            assert_eq!(replay(&data).end, End::Damaged, "{what}");
        }
    }
}
