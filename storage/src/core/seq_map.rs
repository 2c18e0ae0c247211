//! A map keyed by message sequence, made for how a stream uses its index: appends at the end,
//! removals mostly at the front (limits, acknowledged work) and now and then in the middle
//! (deletes, KV revisions replaced), lookups of one sequence or of a range.
//!
//! Entries sit in sequence order in chunks of up to [`CHUNK`] slots. An append writes the next
//! slot of the last chunk (no per-entry node, no rebalancing: a `BTreeMap` spent 7% of a
//! publish's server time there, allocating nodes it filled half), and growing the map never
//! moves what it holds (a single `VecDeque` would copy every entry at each doubling: tens of
//! milliseconds at a few million messages). A removal leaves a tombstone that keeps the
//! sequence for the searches; tombstones at the ends are dropped at once, a chunk made mostly
//! of them is compacted, and an empty chunk goes. A lookup finds the chunk by binary search
//! and the slot by its distance from the chunk's first sequence (one probe while the chunk has
//! no gaps), else by binary search.

use std::collections::VecDeque;
use std::ops::{Bound, RangeBounds};

/// Slots per chunk: 1024 entries of a file store's index are about 80 KiB.
const CHUNK: usize = 1024;

struct Slot<V> {
    seq: u64,
    /// `None`: removed (a tombstone).
    value: Option<V>,
}

/// Slots in ascending sequence order; never empty while in a map, and its first and last
/// slots are live when it is the map's first or last chunk.
struct Chunk<V> {
    slots: VecDeque<Slot<V>>,
    live: usize,
}

impl<V> Chunk<V> {
    fn first_seq(&self) -> u64 {
        self.slots.front().map_or(0, |s| s.seq)
    }

    fn last_seq(&self) -> u64 {
        self.slots.back().map_or(0, |s| s.seq)
    }

    /// The slot holding `seq`, or where it would go.
    fn position(&self, seq: u64) -> Result<usize, usize> {
        find_seq(&self.slots, seq, |s| s.seq)
    }

    /// The first slot at or after `seq`.
    fn lower_bound(&self, seq: u64) -> usize {
        match self.position(seq) {
            Ok(i) | Err(i) => i,
        }
    }

    /// Drops the tombstones, and the room it no longer needs.
    fn compact(&mut self) {
        self.slots.retain(|s| s.value.is_some());
        if self.slots.len() < self.slots.capacity() / 4 {
            self.slots.shrink_to_fit();
        }
    }
}

/// Where `seq` is in `items` (ascending by `seq_of`), or where it would go. Sequences held
/// are usually consecutive, so the distance from the first is tried before a binary search.
pub(crate) fn find_seq<T>(items: &VecDeque<T>, seq: u64, seq_of: impl Fn(&T) -> u64) -> Result<usize, usize> {
    let first = items.front().map_or(seq, &seq_of);
    if let Some(i) = seq.checked_sub(first).and_then(|d| usize::try_from(d).ok()) {
        if items.get(i).is_some_and(|item| seq_of(item) == seq) {
            return Ok(i);
        }
    }
    items.binary_search_by_key(&seq, seq_of)
}

/// Entries by sequence (see the module docs).
pub(crate) struct SeqMap<V> {
    chunks: VecDeque<Chunk<V>>,
    len: usize,
}

impl<V> Default for SeqMap<V> {
    fn default() -> Self {
        SeqMap { chunks: VecDeque::new(), len: 0 }
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for SeqMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V> SeqMap<V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }

    /// The chunk that holds `seq` if any chunk's range covers it.
    fn chunk_of(&self, seq: u64) -> Option<usize> {
        let c = self.chunks.partition_point(|c| c.last_seq() < seq);
        self.chunks.get(c).is_some_and(|chunk| chunk.first_seq() <= seq).then_some(c)
    }

    fn slot(&self, seq: u64) -> Option<&Slot<V>> {
        let chunk = self.chunks.get(self.chunk_of(seq)?)?;
        chunk.slots.get(chunk.position(seq).ok()?)
    }

    pub fn get(&self, seq: &u64) -> Option<&V> {
        self.slot(*seq).and_then(|s| s.value.as_ref())
    }

    pub fn get_mut(&mut self, seq: &u64) -> Option<&mut V> {
        let c = self.chunk_of(*seq)?;
        let chunk = self.chunks.get_mut(c)?;
        let i = chunk.position(*seq).ok()?;
        chunk.slots.get_mut(i)?.value.as_mut()
    }

    pub fn contains_key(&self, seq: &u64) -> bool {
        self.get(seq).is_some()
    }

    /// Adds or replaces the entry of `seq`; returns the replaced one.
    pub fn insert(&mut self, seq: u64, value: V) -> Option<V> {
        let appends = self.chunks.back().is_none_or(|c| c.last_seq() < seq);
        if appends {
            match self.chunks.back_mut() {
                Some(last) if last.slots.len() < CHUNK => {
                    last.slots.push_back(Slot { seq, value: Some(value) });
                    last.live += 1;
                }
                _ => {
                    let mut slots = VecDeque::with_capacity(CHUNK);
                    slots.push_back(Slot { seq, value: Some(value) });
                    self.chunks.push_back(Chunk { slots, live: 1 });
                }
            }
            self.len += 1;
            return None;
        }
        // Below the last sequence: rare (recovery, restores). The chunk whose range covers
        // `seq`, else the one after the gap it falls in.
        let c = self.chunks.partition_point(|c| c.last_seq() < seq);
        // Some chunk ends at or after `seq`: the last one does.
        let chunk = self.chunks.get_mut(c)?;
        match chunk.position(seq) {
            Ok(i) => {
                let old = chunk.slots.get_mut(i)?.value.replace(value);
                if old.is_none() {
                    chunk.live += 1;
                    self.len += 1;
                }
                old
            }
            Err(i) => {
                chunk.slots.insert(i, Slot { seq, value: Some(value) });
                chunk.live += 1;
                self.len += 1;
                if chunk.slots.len() > 2 * CHUNK {
                    // Inserts below the end keep landing here (a descending fill): split, so
                    // that each costs a chunk's shift at most, not the map's.
                    let upper = chunk.slots.split_off(CHUNK);
                    let upper_live = upper.iter().filter(|s| s.value.is_some()).count();
                    chunk.live -= upper_live;
                    self.chunks.insert(c + 1, Chunk { slots: upper, live: upper_live });
                }
                None
            }
        }
    }

    /// Removes the entry of `seq` and returns it.
    pub fn remove(&mut self, seq: &u64) -> Option<V> {
        let c = self.chunk_of(*seq)?;
        let chunk = self.chunks.get_mut(c)?;
        let i = chunk.position(*seq).ok()?;
        let value = chunk.slots.get_mut(i)?.value.take()?;
        chunk.live -= 1;
        self.len -= 1;
        if chunk.live == 0 {
            self.chunks.remove(c);
        } else if chunk.live * 2 < chunk.slots.len() {
            chunk.compact();
        }
        self.trim_ends();
        Some(value)
    }

    /// Drops the tombstones before the first entry and after the last.
    fn trim_ends(&mut self) {
        if let Some(first) = self.chunks.front_mut() {
            while first.slots.front().is_some_and(|s| s.value.is_none()) {
                first.slots.pop_front();
            }
        }
        if let Some(last) = self.chunks.back_mut() {
            while last.slots.back().is_some_and(|s| s.value.is_none()) {
                last.slots.pop_back();
            }
        }
    }

    pub fn first_key_value(&self) -> Option<(&u64, &V)> {
        self.iter().next()
    }

    /// Entries with sequences in `range`, ascending (and from the back).
    pub fn range(&self, range: impl RangeBounds<u64>) -> impl DoubleEndedIterator<Item = (&u64, &V)> + '_ {
        let start = match range.start_bound() {
            Bound::Included(s) => Some(*s),
            Bound::Excluded(s) => s.checked_add(1),
            Bound::Unbounded => Some(0),
        };
        // The first sequence past the range (`None`: unbounded).
        let end = match range.end_bound() {
            Bound::Included(e) => e.checked_add(1),
            Bound::Excluded(e) => Some(*e),
            Bound::Unbounded => None,
        };
        let (first_chunk, first_slot) = match start {
            Some(start) => {
                let c = self.chunks.partition_point(|c| c.last_seq() < start);
                (c, self.chunks.get(c).map_or(0, |chunk| chunk.lower_bound(start)))
            }
            // Starts past u64::MAX: nothing.
            None => (self.chunks.len(), 0),
        };
        let (end_chunk, end_slot) = match end {
            Some(end) => {
                let c = self.chunks.partition_point(|c| c.first_seq() < end);
                // Chunk `c - 1` is the last that starts below `end`.
                match c.checked_sub(1).and_then(|last| self.chunks.get(last)) {
                    Some(last) => (c, last.lower_bound(end)),
                    None => (0, 0),
                }
            }
            None => (self.chunks.len(), self.chunks.back().map_or(0, |c| c.slots.len())),
        };
        let chunks = if first_chunk < end_chunk { first_chunk..end_chunk } else { 0..0 };
        self.chunks.range(chunks.clone()).zip(chunks).flat_map(move |(chunk, c)| {
            let from = if c == first_chunk { first_slot } else { 0 };
            let to = if c + 1 == end_chunk { end_slot } else { chunk.slots.len() };
            chunk.slots.range(from.min(to)..to).filter_map(|s| s.value.as_ref().map(|v| (&s.seq, v)))
        })
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&u64, &V)> + '_ {
        self.chunks.iter().flat_map(|c| c.slots.iter().filter_map(|s| s.value.as_ref().map(|v| (&s.seq, v))))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &u64> + '_ {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + '_ {
        self.iter().map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        Append(u8),
        Insert(u16),
        Remove(u16),
        RemoveFirst,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => any::<u8>().prop_map(Op::Append),
            1 => any::<u16>().prop_map(Op::Insert),
            4 => any::<u16>().prop_map(Op::Remove),
            3 => Just(Op::RemoveFirst),
        ]
    }

    fn check_same(map: &SeqMap<u64>, model: &BTreeMap<u64, u64>, probes: &[u64]) {
        assert_eq!(map.len(), model.len());
        assert_eq!(map.is_empty(), model.is_empty());
        assert!(map.iter().eq(model.iter()));
        assert!(map.iter().rev().eq(model.iter().rev()));
        assert_eq!(map.first_key_value(), model.first_key_value());
        assert_eq!(map.keys().next_back(), model.keys().next_back());
        for &p in probes {
            assert_eq!(map.get(&p), model.get(&p), "get {p}");
            assert!(map.range(p..).eq(model.range(p..)), "range {p}..");
            assert!(map.range(..p).eq(model.range(..p)), "range ..{p}");
            assert!(map.range(p..=p + 700).eq(model.range(p..=p + 700)), "range {p}..={}", p + 700);
            assert!(map.range(p..).rev().take(3).eq(model.range(p..).rev().take(3)));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn behaves_like_a_btree_map(ops in proptest::collection::vec(op(), 1..3000), probes in proptest::collection::vec(0u64..6000, 8)) {
            let mut map = SeqMap::new();
            let mut model = BTreeMap::new();
            let mut next = 1u64;
            for op in ops {
                match op {
                    Op::Append(gap) => {
                        next += u64::from(gap % 4);
                        prop_assert_eq!(map.insert(next, next * 10), model.insert(next, next * 10));
                        next += 1;
                    }
                    Op::Insert(at) => {
                        let seq = u64::from(at) % next.max(1);
                        prop_assert_eq!(map.insert(seq, seq + 1), model.insert(seq, seq + 1));
                    }
                    Op::Remove(at) => {
                        let seq = u64::from(at) % next.max(1);
                        prop_assert_eq!(map.remove(&seq), model.remove(&seq));
                    }
                    Op::RemoveFirst => {
                        let first = model.keys().next().copied();
                        if let Some(seq) = first {
                            prop_assert_eq!(map.remove(&seq), model.remove(&seq));
                        }
                    }
                }
            }
            check_same(&map, &model, &probes);
            let mut all: Vec<u64> = model.keys().copied().collect();
            all.reverse();
            for seq in all {
                prop_assert_eq!(map.remove(&seq), model.remove(&seq));
            }
            prop_assert!(map.is_empty());
            prop_assert_eq!(map.chunks.len(), 0);
        }
    }

    #[test]
    fn appends_fill_whole_chunks_and_removals_free_them() {
        let mut map = SeqMap::new();
        for seq in 1..=(3 * CHUNK as u64) {
            map.insert(seq, ());
        }
        assert_eq!(map.chunks.len(), 3);
        for seq in 1..=(CHUNK as u64) {
            map.remove(&seq);
        }
        assert_eq!(map.chunks.len(), 2, "the emptied first chunk is gone");
        // Two entries of every three of the middle chunk removed: compacted, lookups right.
        let middle = CHUNK as u64 + 1..=2 * CHUNK as u64;
        for seq in middle.clone().filter(|s| s % 3 != 0) {
            map.remove(&seq);
        }
        let kept = middle.clone().filter(|s| s % 3 == 0).count();
        // Compacted whenever tombstones outnumbered entries.
        assert!(map.chunks[0].slots.len() <= 2 * kept, "{} slots", map.chunks[0].slots.len());
        for seq in middle {
            assert_eq!(map.get(&seq).is_some(), seq % 3 == 0, "{seq}");
        }
        assert_eq!(map.len(), kept + CHUNK);
    }

    #[test]
    fn a_descending_fill_splits_its_chunk() {
        let mut map = SeqMap::new();
        let n = 5 * CHUNK as u64;
        map.insert(n + 1, n + 1);
        for seq in (1..=n).rev() {
            map.insert(seq, seq);
        }
        assert!(map.chunks.iter().all(|c| c.slots.len() <= 2 * CHUNK && c.live == c.slots.len()));
        assert!(map.iter().map(|(k, v)| (*k, *v)).eq((1..=n + 1).map(|s| (s, s))));
        assert_eq!(map.get(&(n / 2)), Some(&(n / 2)));
    }

    #[test]
    fn ranges_at_the_extremes_of_u64() {
        let mut map = SeqMap::new();
        map.insert(u64::MAX - 1, 1);
        map.insert(u64::MAX, 2);
        assert_eq!(map.range(u64::MAX..).count(), 1);
        assert_eq!(map.range(..=u64::MAX).count(), 2);
        assert_eq!(map.range((Bound::Excluded(u64::MAX), Bound::Unbounded)).count(), 0);
        assert_eq!(map.range(0..0).count(), 0);
        assert_eq!(map.get(&u64::MAX), Some(&2));
    }
}
