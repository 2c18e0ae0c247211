//! Values kept under subject filters and found by the literal subjects they match: one walk
//! of the subject's tokens, not a match per filter (an MQTT session with thousands of
//! subscriptions looks up the ones a delivered message matches).

use std::collections::HashMap;

use crate::{FWC, PWC};

/// Values by filter, as a token trie; one filter may hold several values.
#[derive(Debug)]
pub struct FilterMap<V> {
    root: Node<V>,
    len: usize,
}

#[derive(Debug)]
struct Node<V> {
    literal: HashMap<Box<str>, Node<V>>,
    pwc: Option<Box<Node<V>>>,
    /// Values of filters ending here with `>`.
    fwc: Vec<V>,
    /// Values of filters ending here.
    end: Vec<V>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node { literal: HashMap::new(), pwc: None, fwc: Vec::new(), end: Vec::new() }
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.pwc.is_none() && self.fwc.is_empty() && self.end.is_empty()
    }
}

impl<V> Default for FilterMap<V> {
    fn default() -> Self {
        FilterMap { root: Node::default(), len: 0 }
    }
}

impl<V: PartialEq> FilterMap<V> {
    pub fn new() -> Self {
        FilterMap::default()
    }

    /// Values held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps `value` under `filter` (a `>` ends it, whatever follows).
    pub fn insert(&mut self, filter: &str, value: V) {
        let mut node = &mut self.root;
        for token in filter.split('.') {
            node = match token {
                FWC => {
                    node.fwc.push(value);
                    self.len += 1;
                    return;
                }
                PWC => node.pwc.get_or_insert_with(Box::default),
                literal => node.literal.entry(literal.into()).or_default(),
            };
        }
        node.end.push(value);
        self.len += 1;
    }

    /// Takes one `value` out from under `filter`; whether it was there.
    pub fn remove(&mut self, filter: &str, value: &V) -> bool {
        let tokens: Vec<&str> = filter.split('.').collect();
        let removed = remove_in(&mut self.root, &tokens, value);
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Whether a filter other than `filter` itself (one of its values) takes every subject
    /// `filter` takes ([`filter_is_subset`](crate::filter_is_subset)). `filter` must be in
    /// the map.
    pub fn contained_in_another(&self, filter: &str) -> bool {
        let tokens: Vec<&str> = filter.split('.').collect();
        contained(&self.root, &tokens, true)
    }

    /// Calls `visit` with each value whose filter matches the literal `subject`.
    pub fn for_each_match(&self, subject: &str, mut visit: impl FnMut(&V)) {
        let tokens: Vec<&str> = subject.split('.').collect();
        walk(&self.root, &tokens, &mut visit);
    }
}

fn walk<V>(node: &Node<V>, tokens: &[&str], visit: &mut impl FnMut(&V)) {
    let Some((&token, rest)) = tokens.split_first() else {
        node.end.iter().for_each(visit);
        return;
    };
    // A `>` here takes this token and all that follow.
    node.fwc.iter().for_each(&mut *visit);
    if let Some(child) = node.literal.get(token) {
        walk(child, rest, visit);
    }
    if let Some(child) = &node.pwc {
        walk(child, rest, visit);
    }
}

/// Values under a filter ending at a node (`count` of them), less the one of the filter asked
/// about when the walk followed its own tokens (`exact`).
fn others(count: usize, exact: bool) -> bool {
    count.saturating_sub(usize::from(exact)) > 0
}

/// Whether a filter of the map takes every subject the one asked about takes. `tokens` are
/// what is left of that filter; `exact`: the walk so far followed its own tokens (its own
/// values lie on this path).
fn contained<V>(node: &Node<V>, tokens: &[&str], exact: bool) -> bool {
    let Some((&token, rest)) = tokens.split_first() else {
        return others(node.end.len(), exact);
    };
    if others(node.fwc.len(), exact && token == FWC) {
        return true;
    }
    match token {
        // Only a `>` takes all that a `>` takes.
        FWC => false,
        PWC => node.pwc.as_deref().is_some_and(|child| contained(child, rest, exact)),
        literal => {
            node.pwc.as_deref().is_some_and(|child| contained(child, rest, false))
                || node.literal.get(literal).is_some_and(|child| contained(child, rest, exact))
        }
    }
}

/// Removes one `value` under the filter `tokens`, and the nodes left empty on its path.
fn remove_in<V: PartialEq>(node: &mut Node<V>, tokens: &[&str], value: &V) -> bool {
    let take = |values: &mut Vec<V>| match values.iter().position(|v| v == value) {
        Some(at) => {
            values.swap_remove(at);
            true
        }
        None => false,
    };
    let Some((&token, rest)) = tokens.split_first() else {
        return take(&mut node.end);
    };
    match token {
        FWC => take(&mut node.fwc),
        PWC => {
            let Some(child) = node.pwc.as_deref_mut() else { return false };
            let removed = remove_in(child, rest, value);
            if child.is_empty() {
                node.pwc = None;
            }
            removed
        }
        literal => {
            let Some(child) = node.literal.get_mut(literal) else { return false };
            let removed = remove_in(child, rest, value);
            if child.is_empty() {
                node.literal.remove(literal);
            }
            removed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matches;
    use crate::test_strategies::filter;
    use proptest::prelude::*;

    fn found(map: &FilterMap<usize>, subject: &str) -> Vec<usize> {
        let mut out = Vec::new();
        map.for_each_match(subject, |v| out.push(*v));
        out.sort_unstable();
        out
    }

    #[test]
    fn values_are_found_by_matching_subjects_and_removed() {
        let mut map = FilterMap::new();
        for (i, filter) in ["a.b", "a.*", "a.>", ">", "*.b", "a.b"].into_iter().enumerate() {
            map.insert(filter, i);
        }
        assert_eq!(found(&map, "a.b"), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(found(&map, "a"), vec![3]);
        assert_eq!(found(&map, "a.b.c"), vec![2, 3]);
        assert_eq!(found(&map, "x.b"), vec![3, 4]);
        assert!(map.remove("a.b", &5) && !map.remove("a.b", &5) && !map.remove("a.c", &0));
        assert!(map.remove("a.>", &2) && map.remove(">", &3));
        assert_eq!(found(&map, "a.b.c"), Vec::<usize>::new());
        assert_eq!(map.len(), 3);
        for (filter, v) in [("a.b", 0), ("a.*", 1), ("*.b", 4)] {
            assert!(map.remove(filter, &v));
        }
        assert!(map.is_empty() && map.root.is_empty(), "emptied nodes are pruned");
    }

    fn subject() -> impl Strategy<Value = String> {
        prop::collection::vec(prop_oneof![Just("a"), Just("b"), Just("c")], 1..5).prop_map(|t| t.join("."))
    }

    proptest! {
        #[test]
        fn finds_what_matches_finds(filters in prop::collection::vec(filter(), 0..8), subjects in prop::collection::vec(subject(), 1..6), removed in 0usize..8) {
            let mut map = FilterMap::new();
            for (i, f) in filters.iter().enumerate() {
                map.insert(f, i);
            }
            let gone = filters.get(removed).map(|f| (f.clone(), removed));
            if let Some((f, i)) = &gone {
                prop_assert!(map.remove(f, i));
            }
            for s in &subjects {
                let mut expected: Vec<usize> = filters
                    .iter()
                    .enumerate()
                    .filter(|(i, f)| Some(*i) != gone.as_ref().map(|g| g.1) && matches(f, s))
                    .map(|(i, _)| i)
                    .collect();
                expected.sort_unstable();
                prop_assert_eq!(found(&map, s), expected, "{} in {:?}", s, filters);
            }
        }
    }
}
