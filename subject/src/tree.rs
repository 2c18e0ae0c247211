//! A subject tree: values keyed by literal subjects, found by wildcard filter without looking
//! at subjects the filter cannot match (each filter token narrows the walk to one child, or
//! fans out only at `*` and `>`).

use std::collections::HashMap;

/// A node's children. Boxed and absent until a node has one: most nodes are leaves (one per
/// subject of a stream with many subjects, such as a KV bucket), and a leaf then costs a
/// pointer, not an empty map.
type Children<V> = Option<Box<HashMap<Box<str>, Node<V>, foldhash::fast::RandomState>>>;

use crate::{FWC, PWC};

/// Values keyed by literal subject, searchable by filter.
#[derive(Debug)]
pub struct SubjectTree<V> {
    root: Node<V>,
    len: usize,
}

#[derive(Debug)]
struct Node<V> {
    children: Children<V>,
    value: Option<V>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node { children: None, value: None }
    }
}

impl<V> Node<V> {
    fn child(&self, token: &str) -> Option<&Node<V>> {
        self.children.as_ref()?.get(token)
    }

    fn child_mut(&mut self, token: &str) -> Option<&mut Node<V>> {
        self.children.as_mut()?.get_mut(token)
    }

    fn children(&self) -> impl Iterator<Item = &Node<V>> {
        self.children.iter().flat_map(|c| c.values())
    }

    fn is_empty(&self) -> bool {
        self.value.is_none() && self.children.is_none()
    }
}

impl<V> Default for SubjectTree<V> {
    fn default() -> Self {
        SubjectTree { root: Node::default(), len: 0 }
    }
}

impl<V> SubjectTree<V> {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of subjects held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets the value of a literal subject; returns the previous one.
    pub fn insert(&mut self, subject: &str, value: V) -> Option<V> {
        let mut node = &mut self.root;
        for token in crate::tokens(subject) {
            let children = node.children.get_or_insert_with(Box::default);
            // Look up before inserting: allocating the key only for new nodes.
            if !children.contains_key(token) {
                children.insert(token.into(), Node::default());
            }
            node = children.get_mut(token)?;
        }
        let old = node.value.replace(value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// The value of a literal subject.
    pub fn get(&self, subject: &str) -> Option<&V> {
        let mut node = &self.root;
        for token in crate::tokens(subject) {
            node = node.child(token)?;
        }
        node.value.as_ref()
    }

    /// Removes a literal subject, pruning nodes left empty; returns its value.
    pub fn remove(&mut self, subject: &str) -> Option<V> {
        let tokens: Vec<&str> = crate::tokens(subject).collect();
        let old = Self::remove_at(&mut self.root, &tokens);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    fn remove_at(node: &mut Node<V>, tokens: &[&str]) -> Option<V> {
        let Some((first, rest)) = tokens.split_first() else {
            return node.value.take();
        };
        let child = node.child_mut(first)?;
        let old = Self::remove_at(child, rest);
        if child.is_empty() {
            if let Some(children) = node.children.as_mut() {
                children.remove(*first);
                if children.is_empty() {
                    node.children = None;
                }
            }
        }
        old
    }

    /// Calls `f` with the value of every subject matching `filter` (in no particular order).
    pub fn for_each_match<'a>(&'a self, filter: &str, mut f: impl FnMut(&'a V)) {
        let tokens: Vec<&str> = crate::tokens(filter).collect();
        Self::walk(&self.root, &tokens, &mut f);
    }

    fn walk<'a>(node: &'a Node<V>, tokens: &[&str], f: &mut impl FnMut(&'a V)) {
        let Some((first, rest)) = tokens.split_first() else {
            if let Some(v) = &node.value {
                f(v);
            }
            return;
        };
        match *first {
            FWC => {
                for child in node.children() {
                    Self::walk_all(child, f);
                }
            }
            PWC => {
                for child in node.children() {
                    Self::walk(child, rest, f);
                }
            }
            literal => {
                if let Some(child) = node.child(literal) {
                    Self::walk(child, rest, f);
                }
            }
        }
    }

    fn walk_all<'a>(node: &'a Node<V>, f: &mut impl FnMut(&'a V)) {
        if let Some(v) = &node.value {
            f(v);
        }
        for child in node.children() {
            Self::walk_all(child, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(t: &SubjectTree<u32>, filter: &str) -> Vec<u32> {
        let mut v = Vec::new();
        t.for_each_match(filter, |x| v.push(*x));
        v.sort_unstable();
        v
    }

    #[test]
    fn wildcards_find_exactly_the_matching_subjects() {
        let mut t = SubjectTree::new();
        for (i, s) in ["a", "a.b", "a.c", "a.b.c", "x.b.c", "a.b.d.e"].iter().enumerate() {
            t.insert(s, i as u32);
        }
        assert_eq!(found(&t, "a.*"), vec![1, 2]);
        assert_eq!(found(&t, "a.>"), vec![1, 2, 3, 5]);
        assert_eq!(found(&t, "*.b.c"), vec![3, 4]);
        assert_eq!(found(&t, ">"), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(found(&t, "a"), vec![0]);
        assert_eq!(found(&t, "a.b.*.e"), vec![5]);
        assert_eq!(t.len(), 6);
    }

    #[test]
    fn remove_prunes_and_keeps_the_rest() {
        let mut t = SubjectTree::new();
        t.insert("a.b.c", 1);
        t.insert("a.b", 2);
        assert_eq!(t.remove("a.b.c"), Some(1));
        assert_eq!(t.remove("a.b.c"), None);
        assert_eq!(t.get("a.b"), Some(&2));
        assert_eq!(found(&t, "a.>"), vec![2]);
        assert_eq!(t.remove("a.b"), Some(2));
        assert!(t.is_empty());
        assert!(t.root.children.is_none(), "empty nodes are pruned up to the root");
    }

    #[test]
    fn agrees_with_matches() {
        let subjects = ["foo.bar", "foo.baz.qux", "foo", "bar.foo", "foo.bar.baz"];
        let filters = ["foo.*", "foo.>", "*.foo", ">", "*.*", "foo.*.qux", "*.>"];
        let mut t = SubjectTree::new();
        for (i, s) in subjects.iter().enumerate() {
            t.insert(s, i as u32);
        }
        for f in filters {
            let expect: Vec<u32> = subjects
                .iter()
                .enumerate()
                .filter(|(_, s)| crate::matches(f, s))
                .map(|(i, _)| i as u32)
                .collect();
            assert_eq!(found(&t, f), expect, "filter {f}");
        }
    }

    fn token() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::prop_oneof![
            proptest::strategy::Just("a".to_string()),
            proptest::strategy::Just("b".to_string()),
            "[c-e]{1,2}"
        ]
    }

    proptest::proptest! {
        // Inserts and removals in any order: matches agree with `crate::matches` and nothing
        // is left behind once every subject is removed.
        #[test]
        fn inserts_and_removals_agree_with_matches(
            subjects in proptest::collection::vec(proptest::collection::vec(token(), 1..4), 1..40),
            removed in proptest::collection::vec(proptest::sample::select((0..40usize).collect::<Vec<_>>()), 0..40),
            filters in proptest::collection::vec(
                proptest::collection::vec(proptest::prop_oneof![3 => token(), 1 => proptest::strategy::Just("*".to_string()), 1 => proptest::strategy::Just(">".to_string())], 1..4),
                1..10,
            ),
        ) {
            let subjects: Vec<String> = subjects.into_iter().map(|t| t.join(".")).collect();
            let mut t = SubjectTree::new();
            let mut live = std::collections::BTreeMap::new();
            for (i, s) in subjects.iter().enumerate() {
                t.insert(s, i as u32);
                live.insert(s.clone(), i as u32);
            }
            for r in removed {
                if let Some(s) = subjects.get(r) {
                    proptest::prop_assert_eq!(t.remove(s), live.remove(s));
                }
            }
            proptest::prop_assert_eq!(t.len(), live.len());
            for f in filters {
                // `>` only as the last token.
                let end = f.iter().position(|t| t == ">").map_or(f.len(), |i| i + 1);
                let f = f.iter().take(end).cloned().collect::<Vec<_>>().join(".");
                let mut expect: Vec<u32> =
                    live.iter().filter(|(s, _)| crate::matches(&f, s)).map(|(_, v)| *v).collect();
                expect.sort_unstable();
                proptest::prop_assert_eq!(found(&t, &f), expect, "filter {}", f);
            }
            for s in live.keys() {
                t.remove(s);
            }
            proptest::prop_assert!(t.is_empty() && t.root.children.is_none());
        }
    }
}
