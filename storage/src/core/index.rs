//! The in-memory index every store keeps: messages by sequence and sequences by subject.
//!
//! Per-subject state is a hash map from subject to its sequences, so `load_last`, per-subject
//! limits and literal-filter reads are O(1) or O(log n) whatever the number of subjects.
//! Wildcard filters scan a short window of messages first and then fall back to walking the
//! subjects (never every message).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use jetway_subject::{is_literal, SubjectTree};

use super::seq_map::SeqMap;
use crate::filter::SubjectFilter;
use crate::state::SubjectState;
use crate::usage::UsageCounter;

/// How many messages a wildcard read scans before it walks the subject map instead.
const SCAN_BUDGET: usize = 256;

/// One message in the index; `L` is where its bytes live (the message itself for a memory
/// store, a block location for a file store).
#[derive(Debug)]
pub(crate) struct Entry<L> {
    pub subject: Arc<str>,
    pub timestamp: i64,
    pub size: u64,
    /// Absolute TTL deadline in ns, 0 when none.
    pub expires: i64,
    pub loc: L,
}

/// Sequences of one subject, ascending. Most subjects of a KV bucket hold one message; the
/// rare longer list is boxed so that every subject's entry stays two words.
#[derive(Debug)]
enum Seqs {
    One(u64),
    #[allow(clippy::box_collection)] // the box is the point: see above
    Many(Box<VecDeque<u64>>),
}

impl Seqs {
    fn len(&self) -> usize {
        match self {
            Seqs::One(_) => 1,
            Seqs::Many(v) => v.len(),
        }
    }
    fn first(&self) -> u64 {
        match self {
            Seqs::One(s) => *s,
            Seqs::Many(v) => v.front().copied().unwrap_or(0),
        }
    }
    fn last(&self) -> u64 {
        match self {
            Seqs::One(s) => *s,
            Seqs::Many(v) => v.back().copied().unwrap_or(0),
        }
    }
    fn push(&mut self, seq: u64) {
        match self {
            Seqs::One(s) => *self = Seqs::Many(Box::new(VecDeque::from([*s, seq]))),
            Seqs::Many(v) => v.push_back(seq),
        }
    }
    /// Removes `seq`; returns true when no sequence is left.
    fn remove(&mut self, seq: u64) -> bool {
        match self {
            Seqs::One(s) => *s == seq,
            Seqs::Many(v) => {
                if v.front() == Some(&seq) {
                    v.pop_front();
                } else if let Ok(i) = v.binary_search(&seq) {
                    v.remove(i);
                }
                v.is_empty()
            }
        }
    }
    /// The first sequence at or after `start`.
    fn next_from(&self, start: u64) -> Option<u64> {
        match self {
            Seqs::One(s) => (*s >= start).then_some(*s),
            Seqs::Many(v) => v.get(v.partition_point(|s| *s < start)).copied(),
        }
    }
    /// How many sequences are at or after `start`, and the first of them.
    fn count_from(&self, start: u64) -> (u64, u64) {
        match self {
            Seqs::One(s) => {
                if *s >= start {
                    (1, *s)
                } else {
                    (0, 0)
                }
            }
            Seqs::Many(v) => {
                let i = v.partition_point(|s| *s < start);
                ((v.len() - i) as u64, v.get(i).copied().unwrap_or(0))
            }
        }
    }
}

type Hasher = foldhash::fast::RandomState;

/// Messages by sequence, sequences by subject, totals and TTL deadlines.
#[derive(Debug)]
pub(crate) struct Index<L> {
    pub msgs: SeqMap<Entry<L>>,
    subjects: HashMap<Arc<str>, Seqs, Hasher>,
    /// The same subjects, for wildcard filters.
    tree: SubjectTree<Arc<str>>,
    /// Messages with a TTL, by deadline.
    ttl: BTreeSet<(i64, u64)>,
    pub bytes: u64,
    /// Where changes of `bytes` are mirrored (a quota over many stores), if anywhere.
    usage: Option<Arc<UsageCounter>>,
    /// First sequence: the first message's, else `last_seq + 1` (0 for a fresh stream).
    pub first_seq: u64,
    pub last_seq: u64,
    pub last_ts: i64,
}

impl<L> Index<L> {
    pub fn new(first_seq: u64) -> Self {
        Index {
            msgs: SeqMap::new(),
            subjects: HashMap::with_hasher(Hasher::default()),
            tree: SubjectTree::new(),
            ttl: BTreeSet::new(),
            bytes: 0,
            usage: None,
            first_seq: if first_seq <= 1 { 0 } else { first_seq },
            last_seq: first_seq.saturating_sub(1),
            last_ts: 0,
        }
    }

    /// The shared copy of `subject` if the index holds it, else a new one.
    pub fn intern(&self, subject: &str) -> Arc<str> {
        match self.subjects.get_key_value(subject) {
            Some((k, _)) => Arc::clone(k),
            None => Arc::from(subject),
        }
    }

    pub fn subject_count(&self, subject: &str) -> u64 {
        self.subjects.get(subject).map_or(0, |s| s.len() as u64)
    }

    pub fn subject_first(&self, subject: &str) -> Option<u64> {
        self.subjects.get(subject).map(Seqs::first)
    }

    pub fn num_subjects(&self) -> u64 {
        self.subjects.len() as u64
    }

    /// Adds a message; `seq` must be above every sequence held.
    pub fn insert(&mut self, seq: u64, entry: Entry<L>) {
        if self.msgs.is_empty() {
            self.first_seq = seq;
        }
        self.last_seq = self.last_seq.max(seq);
        self.last_ts = self.last_ts.max(entry.timestamp);
        self.bytes += entry.size;
        if let Some(usage) = &self.usage {
            usage.add(entry.size);
        }
        if entry.expires != 0 {
            self.ttl.insert((entry.expires, seq));
        }
        match self.subjects.get_mut(&*entry.subject) {
            Some(s) => s.push(seq),
            None => {
                self.subjects.insert(Arc::clone(&entry.subject), Seqs::One(seq));
                self.tree.insert(&entry.subject, Arc::clone(&entry.subject));
            }
        }
        self.msgs.insert(seq, entry);
    }

    /// Removes a message and returns it.
    pub fn remove(&mut self, seq: u64) -> Option<Entry<L>> {
        let entry = self.msgs.remove(&seq)?;
        self.bytes = self.bytes.saturating_sub(entry.size);
        if let Some(usage) = &self.usage {
            usage.sub(entry.size);
        }
        if entry.expires != 0 {
            self.ttl.remove(&(entry.expires, seq));
        }
        if let Some(s) = self.subjects.get_mut(&*entry.subject) {
            if s.remove(seq) {
                self.subjects.remove(&*entry.subject);
                self.tree.remove(&entry.subject);
            }
        }
        if seq == self.first_seq {
            self.first_seq = self.msgs.keys().next().copied().unwrap_or(self.last_seq + 1);
        }
        Some(entry)
    }

    /// Drops every message at once; the first sequence becomes `first_seq`.
    pub fn clear(&mut self, first_seq: u64) {
        self.msgs.clear();
        self.subjects.clear();
        self.tree = SubjectTree::new();
        self.ttl.clear();
        if let Some(usage) = &self.usage {
            usage.sub(self.bytes);
        }
        self.bytes = 0;
        self.first_seq = first_seq;
        self.last_seq = self.last_seq.max(first_seq.saturating_sub(1));
    }

    /// Mirrors `bytes` into `usage` from now on (moving what is held from the previous
    /// counter, if any, to the new one).
    pub fn set_usage(&mut self, usage: Option<Arc<UsageCounter>>) {
        if let Some(old) = &self.usage {
            old.sub(self.bytes);
        }
        if let Some(new) = &usage {
            new.add(self.bytes);
        }
        self.usage = usage;
    }

    /// The earliest TTL deadline and its sequence.
    pub fn next_ttl(&self) -> Option<(i64, u64)> {
        self.ttl.first().copied()
    }

    /// The first message at or after `start` matching `filter`.
    pub fn next_match(&self, filter: &SubjectFilter, start: u64) -> Option<u64> {
        if filter.is_all() {
            return self.msgs.range(start..).next().map(|(s, _)| *s);
        }
        // Looking up a few plain subjects beats testing messages; otherwise the next
        // messages are tried first (a consumer reading along finds its match among them
        // whatever the number of its filters), then the matching subjects are walked.
        let lookups = filter.filters().len();
        if !(filter.is_literal() && lookups <= SCAN_BUDGET) {
            for (seq, e) in self.msgs.range(start..).take(SCAN_BUDGET) {
                if filter.matches(&e.subject) {
                    return Some(*seq);
                }
            }
            // Nothing past the window: the scan above was complete.
            self.msgs.range(start..).nth(SCAN_BUDGET)?;
        }
        self.matching_subjects(filter).into_iter().filter_map(|(_, s)| s.next_from(start)).min()
    }

    /// The last message matching `filter`.
    pub fn last_match(&self, filter: &SubjectFilter) -> Option<u64> {
        if filter.is_all() {
            return self.msgs.keys().next_back().copied();
        }
        if !filter.is_literal() {
            for (seq, e) in self.msgs.iter().rev().take(SCAN_BUDGET) {
                if filter.matches(&e.subject) {
                    return Some(*seq);
                }
            }
        }
        self.matching_subjects(filter).into_iter().map(|(_, s)| s.last()).max()
    }

    /// Count and range of the messages at or after `start` matching `filter`.
    pub fn filtered_state(&self, filter: &SubjectFilter, start: u64) -> SubjectState {
        let mut st = SubjectState::default();
        let mut add = |n: u64, first: u64, last: u64| {
            if n == 0 {
                return;
            }
            st.msgs += n;
            st.first = if st.first == 0 { first } else { st.first.min(first) };
            st.last = st.last.max(last);
        };
        if filter.is_all() {
            if start <= self.first_seq {
                let first = self.msgs.keys().next().copied().unwrap_or(0);
                let last = self.msgs.keys().next_back().copied().unwrap_or(0);
                add(self.msgs.len() as u64, first, last);
            } else {
                let mut range = self.msgs.range(start..);
                let first = range.next().map(|(s, _)| *s).unwrap_or(0);
                let last = self.msgs.keys().next_back().copied().unwrap_or(0);
                add(range.count() as u64 + u64::from(first != 0), first, last);
            }
            return st;
        }
        // Walk whichever is shorter: the subjects the filter can match (its plain subjects,
        // or every subject for wildcards), or the messages from `start` on.
        let remaining = self.last_seq.saturating_sub(start);
        let subjects = if filter.is_literal() { filter.filters().len() } else { self.subjects.len() };
        if (subjects as u64) < remaining {
            for (_, s) in self.matching_subjects(filter) {
                let (n, first) = s.count_from(start);
                add(n, first, s.last());
            }
        } else {
            for (seq, e) in self.msgs.range(start..) {
                if filter.matches(&e.subject) {
                    add(1, *seq, *seq);
                }
            }
        }
        st
    }

    /// Per-subject state of the subjects matching `filter`.
    pub fn subjects_state(&self, filter: &SubjectFilter) -> BTreeMap<Arc<str>, SubjectState> {
        let state = |s: &Seqs| SubjectState { msgs: s.len() as u64, first: s.first(), last: s.last() };
        self.matching_subjects(filter).into_iter().map(|(k, s)| (Arc::clone(k), state(s))).collect()
    }

    /// Every sequence of the subjects matching `filter`, ascending.
    pub fn matching_seqs(&self, filter: &SubjectFilter) -> Vec<u64> {
        if filter.is_all() {
            return self.msgs.keys().copied().collect();
        }
        let mut out = Vec::new();
        for (_, s) in self.matching_subjects(filter) {
            match s {
                Seqs::One(seq) => out.push(*seq),
                Seqs::Many(v) => out.extend(v.iter().copied()),
            }
        }
        out.sort_unstable();
        out
    }

    /// The subjects matching `filter`, each once, without looking at subjects a wildcard
    /// cannot match (the subject tree narrows the walk token by token).
    fn matching_subjects(&self, filter: &SubjectFilter) -> Vec<(&Arc<str>, &Seqs)> {
        if filter.is_all() {
            return self.subjects.iter().collect();
        }
        let mut keys: Vec<&Arc<str>> = Vec::new();
        for f in filter.filters() {
            if is_literal(f) {
                keys.extend(self.subjects.get_key_value(&**f).map(|(k, _)| k));
            } else {
                self.tree.for_each_match(f, |k| keys.push(k));
            }
        }
        if filter.filters().len() > 1 {
            keys.sort_unstable_by_key(|k| Arc::as_ptr(k).cast::<u8>());
            keys.dedup_by_key(|k| Arc::as_ptr(k).cast::<u8>());
        }
        keys.into_iter().filter_map(|k| self.subjects.get_key_value(&**k)).collect()
    }

    /// Subjects holding more than `limit` messages.
    pub fn subjects_over(&self, limit: u64) -> Vec<Arc<str>> {
        self.subjects.iter().filter(|(_, s)| s.len() as u64 > limit).map(|(k, _)| Arc::clone(k)).collect()
    }

    /// Gaps between first and last sequence.
    pub fn deleted(&self) -> Vec<u64> {
        let mut out = Vec::new();
        let mut next = self.first_seq;
        for seq in self.msgs.keys() {
            out.extend(next..*seq);
            next = seq + 1;
        }
        out
    }
}
