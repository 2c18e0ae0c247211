//! Subject filters of reads, sorted out once.
//!
//! A consumer reads with the same filters for its whole life (an MQTT session's consumer may
//! hold thousands), so it keeps a [`SubjectFilter`] and hands it to every read instead of
//! having each read re-examine every filter. Large filter lists get a hash set of their plain
//! subjects and a trie of their wildcards, so testing one message costs the same whatever the
//! number of filters.

use jetway_subject::{is_literal, matches, FilterSet};

/// Up to this many filters are compared one by one; more get the indexes.
const FEW: usize = 8;

/// The subject filters of a read: none (or `>`) means every subject.
#[derive(Debug)]
pub struct SubjectFilter {
    /// The filters as given, in their order.
    filters: Box<[Box<str>]>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    All,
    /// A few plain subjects, compared one by one.
    FewSubjects,
    /// A few filters, some with wildcards, matched one by one.
    FewWildcards,
    /// Many filters: a hash set of the plain subjects, a trie of the wildcards.
    Many(FilterSet),
}

impl SubjectFilter {
    /// Every subject.
    pub fn all() -> SubjectFilter {
        SubjectFilter { filters: Box::default(), kind: Kind::All }
    }

    /// Subjects matching any of `filters`; none, or `>` among them, means every subject.
    pub fn new<S: AsRef<str>>(filters: &[S]) -> SubjectFilter {
        let filters: Box<[Box<str>]> = filters.iter().map(|f| Box::from(f.as_ref())).collect();
        let literal = filters.iter().all(|f| is_literal(f));
        let kind = if filters.is_empty() || filters.iter().any(|f| &**f == ">") {
            Kind::All
        } else if filters.len() <= FEW {
            if literal {
                Kind::FewSubjects
            } else {
                Kind::FewWildcards
            }
        } else {
            Kind::Many(filters.iter().collect())
        };
        SubjectFilter { filters, kind }
    }

    /// Subjects matching `filter`.
    pub fn one(filter: &str) -> SubjectFilter {
        SubjectFilter::new(&[filter])
    }

    /// The filters as given (empty for every subject by [`all`](Self::all)).
    pub fn filters(&self) -> &[Box<str>] {
        &self.filters
    }

    /// Whether every subject matches.
    pub fn is_all(&self) -> bool {
        matches!(self.kind, Kind::All)
    }

    /// Whether every filter is a plain subject (looked up, not matched).
    pub fn is_literal(&self) -> bool {
        match &self.kind {
            Kind::All | Kind::FewWildcards => false,
            Kind::FewSubjects => true,
            Kind::Many(set) => !set.has_wildcards(),
        }
    }

    /// Whether `subject` (a literal subject) matches.
    pub fn matches(&self, subject: &str) -> bool {
        match &self.kind {
            Kind::All => true,
            Kind::FewSubjects => self.filters.iter().any(|f| &**f == subject),
            Kind::FewWildcards => self.filters.iter().any(|f| matches(f, subject)),
            Kind::Many(set) => set.matches(subject),
        }
    }
}

#[cfg(test)]
mod tests {
    use jetway_subject::matches_any;
    use proptest::prelude::*;

    use super::*;

    fn subject() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..4).prop_map(|t| t.join("."))
    }

    /// Plain subjects and wildcard filters over the tokens of [`subject`].
    fn filter() -> impl Strategy<Value = String> {
        let token = prop::sample::select(vec!["a", "b", "c", "*"]);
        (prop::collection::vec(token, 1..4), any::<bool>()).prop_map(|(mut tokens, fwc)| {
            if fwc {
                tokens.push(">");
            }
            tokens.join(".")
        })
    }

    #[test]
    fn no_filter_or_a_full_wildcard_is_every_subject() {
        assert!(SubjectFilter::all().is_all());
        assert!(SubjectFilter::new::<&str>(&[]).is_all());
        assert!(SubjectFilter::new(&["a", ">"]).is_all());
        assert!(!SubjectFilter::one("a.>").is_all());
    }

    #[test]
    fn plain_subjects_are_told_from_wildcards_at_any_size() {
        let many: Vec<String> = (0..20).map(|i| format!("s.{i}")).collect();
        assert!(SubjectFilter::new(&many).is_literal());
        assert!(SubjectFilter::one("s.1").is_literal());
        let mut mixed = many.clone();
        mixed.push("w.*".into());
        assert!(!SubjectFilter::new(&mixed).is_literal());
        assert!(!SubjectFilter::one("w.*").is_literal());
        assert_eq!(SubjectFilter::new(&mixed).filters().len(), 21);
    }

    proptest! {
        #[test]
        fn matches_what_any_filter_matches(
            filters in prop::collection::vec(filter(), 0..24),
            subjects in prop::collection::vec(subject(), 1..16),
        ) {
            let compiled = SubjectFilter::new(&filters);
            for s in &subjects {
                let expected = filters.is_empty() || matches_any(&filters, s);
                prop_assert_eq!(compiled.matches(s), expected, "{:?} on {}", filters, s);
            }
        }
    }
}
