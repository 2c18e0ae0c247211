//! A set of filters that answers, for one of them, whether another filter of the set takes
//! every subject it takes, in time bounded by the filter's depth, not by the size of the set.
//!
//! Checking every pair with [`filter_is_subset`](crate::filter_is_subset) costs n² for n filters:
//! an MQTT session's consumer takes one filter per subscription, and a session with thousands
//! of subscriptions re-checked them all at every SUBSCRIBE.

use std::collections::HashMap;

use crate::{FWC, PWC};

/// Filters, as a token trie; a filter may be in the set more than once.
#[derive(Debug, Default)]
pub struct FilterSet {
    root: Node,
}

#[derive(Debug, Default)]
struct Node {
    literal: HashMap<Box<str>, Node>,
    pwc: Option<Box<Node>>,
    /// Filters ending here with `>` (one or more further tokens).
    fwc: u32,
    /// Filters ending here.
    end: u32,
}

impl FilterSet {
    pub fn new() -> FilterSet {
        FilterSet::default()
    }

    /// Adds `filter` (a `>` ends it, whatever follows).
    pub fn insert(&mut self, filter: &str) {
        let mut node = &mut self.root;
        for token in filter.split('.') {
            node = match token {
                FWC => {
                    node.fwc = node.fwc.saturating_add(1);
                    return;
                }
                PWC => node.pwc.get_or_insert_with(Box::default),
                literal => node.literal.entry(literal.into()).or_default(),
            };
        }
        node.end = node.end.saturating_add(1);
    }

    /// Whether a filter of the set other than `filter` itself (one copy of it) takes every
    /// subject `filter` takes ([`filter_is_subset`](crate::filter_is_subset)). `filter` must be
    /// in the set.
    pub fn contained_in_another(&self, filter: &str) -> bool {
        let tokens: Vec<&str> = filter.split('.').collect();
        contained(&self.root, &tokens, true)
    }
}

impl<S: AsRef<str>> FromIterator<S> for FilterSet {
    fn from_iter<I: IntoIterator<Item = S>>(filters: I) -> FilterSet {
        let mut set = FilterSet::new();
        for filter in filters {
            set.insert(filter.as_ref());
        }
        set
    }
}

/// Filters ending at `node` (`count` of them), less the one that is the filter asked about
/// when the walk followed its own tokens (`exact`).
fn others(count: u32, exact: bool) -> bool {
    count.saturating_sub(u32::from(exact)) > 0
}

/// Whether a filter of the set takes every subject the one asked about takes. `tokens` are
/// what is left of that filter; `exact`: the walk so far followed its own tokens (the set's
/// copy of it lies on this path).
fn contained(node: &Node, tokens: &[&str], exact: bool) -> bool {
    let Some((&token, rest)) = tokens.split_first() else {
        return others(node.end, exact);
    };
    if others(node.fwc, exact && token == FWC) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter_is_subset;
    use proptest::prelude::*;

    /// What the pairwise definition says for filter `f`, number `i` of `filters`.
    fn pairwise(filters: &[String], i: usize, f: &str) -> bool {
        filters.iter().enumerate().any(|(j, g)| j != i && filter_is_subset(f, g))
    }

    #[test]
    fn examples() {
        let set: FilterSet = ["a.>", "a.b", "a", "x.*.z", "*.y.z"].into_iter().collect();
        assert!(set.contained_in_another("a.b"));
        assert!(!set.contained_in_another("a.>") && !set.contained_in_another("a"));
        assert!(!set.contained_in_another("x.*.z"), "overlapping in part is not containment");
        let twice: FilterSet = ["q.r", "q.r"].into_iter().collect();
        assert!(twice.contained_in_another("q.r"));
        let all: FilterSet = [">", "a.b", "*"].into_iter().collect();
        assert!(all.contained_in_another("a.b") && all.contained_in_another("*"));
        assert!(!all.contained_in_another(">"));
        let alone: FilterSet = ["q.>"].into_iter().collect();
        assert!(!alone.contained_in_another("q.>"));
    }

    fn filter() -> impl Strategy<Value = String> {
        let token = prop_oneof![Just("a"), Just("b"), Just("*")];
        (prop::collection::vec(token, 1..4), any::<bool>()).prop_map(|(tokens, fwc)| {
            let mut tokens: Vec<&str> = tokens;
            if fwc {
                tokens.push(">");
            }
            tokens.join(".")
        })
    }

    proptest! {
        #[test]
        fn agrees_with_the_pairwise_definition(filters in prop::collection::vec(filter(), 1..8)) {
            let set: FilterSet = filters.iter().collect();
            for (i, f) in filters.iter().enumerate() {
                prop_assert_eq!(set.contained_in_another(f), pairwise(&filters, i, f), "{} in {:?}", f, filters);
            }
        }
    }
}
