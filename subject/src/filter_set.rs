//! A set of filters that answers, for one of them, whether another filter of the set takes
//! every subject it takes, in time bounded by the filter's depth, not by the size of the set.
//!
//! Checking every pair with [`filter_is_subset`](crate::filter_is_subset) costs n² for n filters:
//! an MQTT session's consumer takes one filter per subscription, and a session with thousands
//! of subscriptions re-checked them all at every SUBSCRIBE.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use crate::FilterMap;

/// Filters; a filter may be in the set more than once. Plain subjects (most filters) are
/// counted in a hash map; only filters with wildcards go into the trie.
#[derive(Debug, Default)]
pub struct FilterSet {
    subjects: HashMap<Box<str>, u32, RandomState>,
    wildcards: FilterMap<()>,
}

impl FilterSet {
    pub fn new() -> FilterSet {
        FilterSet::default()
    }

    /// Adds `filter` (a `>` ends it, whatever follows).
    pub fn insert(&mut self, filter: &str) {
        if crate::is_literal(filter) {
            let count = self.subjects.entry(filter.into()).or_default();
            *count = count.saturating_add(1);
        } else {
            self.wildcards.insert(filter, ());
        }
    }

    /// Whether a filter of the set other than `filter` itself (one copy of it) takes every
    /// subject `filter` takes ([`filter_is_subset`](crate::filter_is_subset)). `filter` must be
    /// in the set.
    pub fn contained_in_another(&self, filter: &str) -> bool {
        if !crate::is_literal(filter) {
            // A plain subject takes no filter with a wildcard.
            return self.wildcards.contained_in_another(filter);
        }
        self.subjects.get(filter).is_some_and(|n| *n > 1) || self.wildcard_takes(filter)
    }

    /// Whether some filter of the set takes the plain `subject`.
    pub fn matches(&self, subject: &str) -> bool {
        self.subjects.contains_key(subject) || self.wildcard_takes(subject)
    }

    /// Whether some filter of the set has a wildcard.
    pub fn has_wildcards(&self) -> bool {
        !self.wildcards.is_empty()
    }

    fn wildcard_takes(&self, subject: &str) -> bool {
        let mut taken = false;
        self.wildcards.for_each_match(subject, |()| taken = true);
        taken
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter_is_subset;
    use crate::test_strategies::filter;
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
        assert!(set.matches("a.b.c") && set.matches("a") && set.matches("q.y.z") && !set.matches("b"));
        assert!(set.has_wildcards() && !twice.has_wildcards());
    }

    proptest! {
        #[test]
        fn agrees_with_the_pairwise_definition(filters in prop::collection::vec(filter(), 1..8)) {
            let set: FilterSet = filters.iter().collect();
            for (i, f) in filters.iter().enumerate() {
                prop_assert_eq!(set.contained_in_another(f), pairwise(&filters, i, f), "{} in {:?}", f, filters);
            }
        }

        #[test]
        fn matches_what_some_filter_takes(filters in prop::collection::vec(filter(), 0..8), subject in filter()) {
            let set: FilterSet = filters.iter().collect();
            // Only plain subjects are asked about.
            prop_assume!(crate::is_literal(&subject));
            prop_assert_eq!(set.matches(&subject), crate::matches_any(&filters, &subject));
        }
    }
}
