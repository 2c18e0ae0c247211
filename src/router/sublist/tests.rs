use super::*;
use crate::router::{InternalHandler, Message, Sink};
use proptest::prelude::*;

struct Nop;
impl InternalHandler for Nop {
    fn deliver(&self, _: &Message<'_>) {}
}

fn sub(filter: &str, queue: Option<&str>) -> Arc<Subscription> {
    Subscription::new(filter.into(), queue.map(Into::into), Sink::Internal(Arc::new(Nop)))
}

fn subjects_of(r: &MatchResult) -> Vec<String> {
    let mut v: Vec<String> = r.plain.iter().map(|s| s.subject.to_string()).collect();
    v.sort();
    v
}

#[test]
fn matches_literals_and_wildcards() {
    let sl = Sublist::new();
    for f in ["a.b", "a.*", "a.>", "*.b", ">", "a.b.c", "b"] {
        sl.insert(sub(f, None));
    }
    assert_eq!(subjects_of(&sl.matches("a.b")), ["*.b", ">", "a.*", "a.>", "a.b"]);
    assert_eq!(subjects_of(&sl.matches("a.b.c")), [">", "a.>", "a.b.c"]);
    assert_eq!(subjects_of(&sl.matches("b")), [">", "b"]);
    assert_eq!(subjects_of(&sl.matches("a")), [">"]);
    assert!(sl.matches("a..b").is_empty());
}

#[test]
fn cache_is_invalidated_on_insert_and_remove() {
    let sl = Sublist::new();
    let s1 = sub("a.*", None);
    sl.insert(s1.clone());
    let g = sl.generation();
    assert_eq!(sl.matches("a.b").plain.len(), 1);
    assert_eq!(sl.matches("a.b").plain.len(), 1, "cached");
    let s2 = sub("a.b", None);
    sl.insert(s2.clone());
    assert_ne!(sl.generation(), g);
    assert_eq!(sl.matches("a.b").plain.len(), 2);
    assert!(sl.remove(&s1));
    assert!(!sl.remove(&s1));
    assert_eq!(sl.matches("a.b").plain.len(), 1);
    assert!(sl.remove(&s2));
    assert!(sl.matches("a.b").is_empty());
    assert_eq!(sl.count(), 0);
    assert!(sl.root.read().is_empty(), "empty nodes are pruned");
}

#[test]
fn a_literal_subscription_drops_only_its_own_cached_subject() {
    let sl = Sublist::new();
    sl.insert(sub("a.*", None));
    sl.matches("a.b");
    sl.matches("a.c");
    sl.insert(sub("a.b", None));
    assert!(sl.cache.read().contains_key("a.c"), "unrelated entries stay cached");
    assert!(!sl.cache.read().contains_key("a.b"));
    assert_eq!(sl.matches("a.b").plain.len(), 2);
    assert_eq!(sl.matches("a.c").plain.len(), 1);
}

#[test]
fn literal_prefixes_stop_at_the_first_wildcard_token() {
    assert_eq!(super::literal_prefix("a.b.*.c"), "a.b.");
    assert_eq!(super::literal_prefix("a.>"), "a.");
    assert_eq!(super::literal_prefix("*.a"), "");
    assert_eq!(super::literal_prefix(">"), "");
    // Tokens merely containing `*` or `>` are literal.
    assert_eq!(super::literal_prefix("a*.b.>"), "a*.b.");
}

#[test]
fn queue_groups_pick_one_member_round_robin() {
    let sl = Sublist::new();
    let members: Vec<_> = (0..3).map(|_| sub("q.>", Some("workers"))).collect();
    for m in &members {
        sl.insert(m.clone());
    }
    sl.insert(sub("q.*", Some("other")));
    let r = sl.matches("q.x");
    assert_eq!(r.groups.len(), 2);
    let g = r.groups.iter().find(|g| &*g.name == "workers").unwrap();
    let mut counts = [0; 3];
    for _ in 0..300 {
        let picked = g.pick().unwrap();
        let i = members.iter().position(|m| Arc::ptr_eq(m, picked)).unwrap();
        counts[i] += 1;
    }
    assert_eq!(counts, [100, 100, 100]);
    members[0].close();
    for _ in 0..10 {
        assert!(!Arc::ptr_eq(g.pick().unwrap(), &members[0]));
    }
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(str::to_string)
}
fn filter() -> impl Strategy<Value = String> {
    (proptest::collection::vec(prop_oneof![3 => token(), 1 => Just("*".to_string())], 1..4), any::<bool>())
        .prop_map(|(mut t, fwc)| {
            if fwc {
                t.push(">".into());
            }
            t.join(".")
        })
}
fn literal() -> impl Strategy<Value = String> {
    proptest::collection::vec(token(), 1..5).prop_map(|t| t.join("."))
}

#[test]
fn removing_queue_members_empties_their_groups_and_keeps_the_rest() {
    let sl = Sublist::new();
    let a1 = sub("jobs.x", Some("a"));
    let a2 = sub("jobs.x", Some("a"));
    let b = sub("jobs.x", Some("b"));
    let plain = sub("jobs.x", None);
    for s in [&a1, &a2, &b, &plain] {
        sl.insert(s.clone());
    }
    let groups = |sl: &Sublist| {
        let mut names: Vec<String> = sl.matches("jobs.x").groups.iter().map(|g| g.name.to_string()).collect();
        names.sort();
        names
    };
    assert_eq!(groups(&sl), ["a", "b"]);
    assert!(sl.remove(&a1));
    assert!(!sl.remove(&a1), "removed once");
    assert_eq!(groups(&sl), ["a", "b"]);
    assert!(sl.remove(&a2));
    assert_eq!(groups(&sl), ["b"]);
    assert!(sl.remove(&b));
    assert!(groups(&sl).is_empty());
    assert_eq!(subjects_of(&sl.matches("jobs.x")), ["jobs.x"]);
    // A node whose groups were all removed takes a new group again.
    sl.insert(sub("jobs.x", Some("c")));
    assert_eq!(groups(&sl), ["c"]);
    assert!(sl.remove(&plain));
}

#[test]
fn subjects_with_an_empty_token_match_nothing() {
    let sl = Sublist::new();
    for f in [">", "a.>", "a.*", "*.b", "a.b"] {
        sl.insert(sub(f, None));
    }
    assert_eq!(subjects_of(&sl.matches("a.b")), ["*.b", ">", "a.*", "a.>", "a.b"]);
    for bad in ["", ".", "a.", ".b", "a..b", "a.b."] {
        assert!(subjects_of(&sl.matches(bad)).is_empty(), "{bad:?}");
        assert!(subjects_of(&sl.matches_transient(bad)).is_empty(), "{bad:?}");
    }
}

proptest! {
    // The trie (with its cache, across removals) agrees with a naive scan of all filters.
    #[test]
    fn agrees_with_naive_matcher(
        filters in proptest::collection::vec(filter(), 1..30),
        removals in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        subjects in proptest::collection::vec(literal(), 1..30),
    ) {
        let sl = Sublist::new();
        let mut live: Vec<Arc<Subscription>> = filters.iter().map(|f| sub(f, None)).collect();
        for s in &live {
            sl.insert(s.clone());
        }
        for s in &subjects {
            let _ = sl.matches(s); // warm the cache
        }
        for r in removals {
            if live.is_empty() { break; }
            let s = live.remove(r.index(live.len()));
            prop_assert!(sl.remove(&s));
        }
        for s in &subjects {
            let mut expected: Vec<String> = live
                .iter()
                .filter(|f| jetway_subject::matches(&f.subject, s))
                .map(|f| f.subject.to_string())
                .collect();
            expected.sort();
            prop_assert_eq!(subjects_of(&sl.matches_transient(s)), expected.clone());
            prop_assert_eq!(subjects_of(&sl.matches(s)), expected);
        }
    }
}
