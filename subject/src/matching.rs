//! Wildcard matching between filters and subjects, and relations between filters.

use crate::{FWC, PWC};

/// True when the literal `subject` matches `filter`.
pub fn matches(filter: &str, subject: &str) -> bool {
    let mut f = filter.split('.');
    let mut s = subject.split('.');
    loop {
        match (f.next(), s.next()) {
            (None, None) => return true,
            (Some(FWC), Some(_)) => return true,
            (Some(PWC), Some(_)) => {}
            (Some(ft), Some(st)) if ft == st => {}
            _ => return false,
        }
    }
}

/// True when `subject` matches at least one of `filters`.
pub fn matches_any<S: AsRef<str>>(filters: &[S], subject: &str) -> bool {
    filters.iter().any(|f| matches(f.as_ref(), subject))
}

/// True when some literal subject matches both filters.
pub fn filters_overlap(a: &str, b: &str) -> bool {
    let mut at = a.split('.');
    let mut bt = b.split('.');
    loop {
        match (at.next(), bt.next()) {
            (None, None) => return true,
            (Some(FWC), Some(_)) | (Some(_), Some(FWC)) => return true,
            (Some(x), Some(y)) if x == PWC || y == PWC || x == y => {}
            _ => return false,
        }
    }
}

/// True when every subject matched by `sub` is also matched by `sup`.
pub fn filter_is_subset(sub: &str, sup: &str) -> bool {
    let mut st = sub.split('.');
    let mut pt = sup.split('.');
    loop {
        match (st.next(), pt.next()) {
            (None, None) => return true,
            (Some(_), Some(FWC)) => return true,
            (Some(FWC), Some(_)) => return false,
            (Some(_), Some(PWC)) => {}
            (Some(PWC), Some(_)) => return false,
            (Some(x), Some(y)) if x == y => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn literal_and_wildcards() {
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "a.b.c"));
        assert!(matches("a.*", "a.b"));
        assert!(!matches("a.*", "a"));
        assert!(!matches("a.*", "a.b.c"));
        assert!(matches("a.>", "a.b.c"));
        assert!(!matches("a.>", "a"));
        assert!(matches(">", "a"));
        assert!(matches("*.b.>", "x.b.y.z"));
        assert!(!matches("*.b.>", "x.c.y"));
    }

    #[test]
    fn overlap_and_subset() {
        assert!(filters_overlap("a.*", "a.b"));
        assert!(filters_overlap("a.>", "*.b"));
        assert!(!filters_overlap("a.*", "b.*"));
        assert!(!filters_overlap("a.*", "a.b.c"));
        assert!(filter_is_subset("a.b", "a.*"));
        assert!(filter_is_subset("a.*", "a.>"));
        assert!(!filter_is_subset("a.>", "a.*"));
        assert!(!filter_is_subset("a.*", "a.b"));
        assert!(filter_is_subset("a.b.c", ">"));
    }

    fn token() -> impl Strategy<Value = String> {
        prop_oneof![Just("a".to_string()), Just("b".to_string()), Just("c".to_string())]
    }
    fn filter_token() -> impl Strategy<Value = String> {
        prop_oneof![token(), Just("*".to_string())]
    }
    fn filter() -> impl Strategy<Value = String> {
        (proptest::collection::vec(filter_token(), 1..4), any::<bool>()).prop_map(|(mut t, fwc)| {
            if fwc {
                t.push(">".to_string());
            }
            t.join(".")
        })
    }
    fn literal() -> impl Strategy<Value = String> {
        proptest::collection::vec(token(), 1..6).prop_map(|t| t.join("."))
    }

    proptest! {
        // Overlap and subset must agree with brute-force matching over a small universe.
        #[test]
        fn relations_agree_with_matching(a in filter(), b in filter(), subjects in proptest::collection::vec(literal(), 64)) {
            for s in &subjects {
                if matches(&a, s) && matches(&b, s) {
                    prop_assert!(filters_overlap(&a, &b), "{a} {b} both match {s}");
                }
                if filter_is_subset(&a, &b) && matches(&a, s) {
                    prop_assert!(matches(&b, s), "{a} subset of {b} but {s}");
                }
            }
        }
    }
}
