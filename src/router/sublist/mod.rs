//! The subscription trie.
//!
//! Each level maps a literal token to a node, plus optional `*` and `>` nodes. A node holds the
//! plain subscriptions and queue groups whose filter ends there. Matching walks the literal,
//! `*` and `>` branches for every token, so its cost depends on the subject's depth, not on the
//! number of subscriptions.
//!
//! Match results are cached per subject. Every insert and remove bumps a generation counter and
//! drops the cached results the changed filter could affect; callers may keep their own small
//! cache in front and trust an entry while [`Sublist::generation`] is unchanged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use foldhash::fast::RandomState;
use parking_lot::RwLock;

use super::subscription::Subscription;

/// Cached results kept at most; beyond it the cache is cleared (nats-server uses 1,024).
const CACHE_MAX: usize = 1024;

/// Everything a subject matches.
#[derive(Debug, Default)]
pub struct MatchResult {
    /// Plain subscriptions: each receives the message.
    pub plain: Vec<Arc<Subscription>>,
    /// Queue groups: one member of each receives the message.
    pub groups: Vec<QueueGroup>,
}

impl MatchResult {
    pub fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.groups.is_empty()
    }
}

/// The members of one queue group matching a subject.
#[derive(Debug)]
pub struct QueueGroup {
    pub name: Arc<str>,
    pub members: Vec<Arc<Subscription>>,
    /// Round-robin cursor: spreads messages evenly over members.
    cursor: AtomicUsize,
}

impl QueueGroup {
    /// Picks the next live member, skipping closed ones.
    pub fn pick(&self) -> Option<&Arc<Subscription>> {
        let n = self.members.len();
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|i| (start + i) % n).filter_map(|i| self.members.get(i)).find(|s| !s.is_closed())
    }
}

/// Queue groups at one node, by name.
type Queues = HashMap<Arc<str>, Vec<Arc<Subscription>>, RandomState>;

#[derive(Default)]
struct Node {
    next: Option<Box<Level>>,
    plain: Vec<Arc<Subscription>>,
    /// Boxed: most nodes have no queue group (a node per distinct literal subject: an MQTT
    /// session's topic and deliver subject each make one).
    queues: Option<Box<Queues>>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.plain.is_empty()
            && self.queues.as_ref().is_none_or(|q| q.is_empty())
            && self.next.as_ref().is_none_or(|l| l.is_empty())
    }
}

#[derive(Default)]
struct Level {
    literal: HashMap<Box<str>, Node, RandomState>,
    pwc: Option<Box<Node>>,
    fwc: Option<Box<Node>>,
}

impl Level {
    fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.pwc.is_none() && self.fwc.is_none()
    }
}

/// Counters reported by `/subsz`.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct SublistStats {
    pub num_subscriptions: u64,
    pub num_cache: u64,
    pub num_inserts: u64,
    pub num_removes: u64,
    pub num_matches: u64,
    pub cache_hit_rate: f64,
    /// Largest and mean number of receivers (subscriptions plus queue groups) over the cached
    /// match results: how wide the current traffic fans out.
    pub max_fanout: u64,
    pub avg_fanout: f64,
}

/// The subscription index of one account.
#[derive(Default)]
pub struct Sublist {
    root: RwLock<Level>,
    cache: RwLock<HashMap<Box<str>, Arc<MatchResult>, RandomState>>,
    generation: AtomicU64,
    count: AtomicU64,
    inserts: AtomicU64,
    removes: AtomicU64,
    matches: AtomicU64,
    cache_hits: AtomicU64,
}

impl Sublist {
    pub fn new() -> Self {
        Self::default()
    }

    /// Changes on every insert and remove.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Adds a subscription. The filter must already be validated.
    pub fn insert(&self, sub: Arc<Subscription>) {
        {
            let mut root = self.root.write();
            let mut level: &mut Level = &mut root;
            let mut tokens = sub.subject.split('.').peekable();
            let node = loop {
                let Some(token) = tokens.next() else { return };
                let node: &mut Node = match token {
                    "*" => level.pwc.get_or_insert_with(Box::default),
                    ">" => level.fwc.get_or_insert_with(Box::default),
                    _ => level.literal.entry(token.into()).or_default(),
                };
                if tokens.peek().is_none() {
                    break node;
                }
                level = node.next.get_or_insert_with(Box::default);
            };
            match &sub.queue {
                Some(q) => {
                    node.queues.get_or_insert_default().entry(q.clone()).or_default().push(sub.clone())
                }
                None => {
                    if node.plain.capacity() == 0 {
                        // Most subjects have one subscriber: room for one, not four.
                        node.plain.reserve_exact(1);
                    }
                    node.plain.push(sub.clone());
                }
            }
            self.bump(&sub.subject);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.inserts.fetch_add(1, Ordering::Relaxed);
    }

    /// Removes a subscription (by identity). Returns false when it was not present.
    pub fn remove(&self, sub: &Arc<Subscription>) -> bool {
        sub.close();
        let removed = {
            let mut root = self.root.write();
            let tokens: Vec<&str> = sub.subject.split('.').collect();
            let removed = remove_in(&mut root, &tokens, sub);
            if removed {
                self.bump(&sub.subject);
            }
            removed
        };
        if removed {
            self.count.fetch_sub(1, Ordering::Relaxed);
            self.removes.fetch_add(1, Ordering::Relaxed);
        }
        removed
    }

    /// New generation; drop cached results for subjects the changed filter matches.
    /// Called with the trie write lock held so a concurrent match cannot cache a stale result
    /// under the new generation.
    fn bump(&self, filter: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let mut cache = self.cache.write();
        if jetway_subject::is_literal(filter) {
            // A literal filter matches only itself: no scan of the whole cache (subscribing to
            // inboxes and deliver subjects is frequent; measured 15% of MQTT session setup).
            cache.remove(filter);
        } else {
            // Only subjects starting with the filter's literal tokens can match: a cheap
            // prefix comparison rejects most of the cache before tokenizing.
            let prefix = literal_prefix(filter);
            cache.retain(|subject, _| {
                !(subject.starts_with(prefix) && jetway_subject::matches(filter, subject))
            });
        }
    }

    /// Everything `subject` matches (a literal subject).
    pub fn matches(&self, subject: &str) -> Arc<MatchResult> {
        self.lookup(subject, true)
    }

    /// Like [`Sublist::matches`], but a miss is not added to the cache: for subjects used
    /// once (reply inboxes of acks and API responses), which would only evict useful entries.
    pub fn matches_transient(&self, subject: &str) -> Arc<MatchResult> {
        self.lookup(subject, false)
    }

    fn lookup(&self, subject: &str, cache_miss: bool) -> Arc<MatchResult> {
        self.matches.fetch_add(1, Ordering::Relaxed);
        // A transient subject is used once: probing the cache for it (a hash and a shared
        // lock per reply) would only ever miss.
        if cache_miss {
            if let Some(hit) = self.cache.read().get(subject) {
                self.cache_hits.fetch_add(1, Ordering::Relaxed);
                return hit.clone();
            }
        }
        let root = self.root.read();
        let mut result = MatchResult::default();
        let mut groups: HashMap<Arc<str>, Vec<Arc<Subscription>>, RandomState> = HashMap::default();
        if is_valid_subject_shape(subject) {
            collect(&root, subject, &mut result.plain, &mut groups);
        }
        result.groups = groups
            .into_iter()
            .map(|(name, members)| QueueGroup { name, members, cursor: AtomicUsize::new(0) })
            .collect();
        let result = Arc::new(result);
        if !cache_miss {
            return result;
        }
        let mut cache = self.cache.write();
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(subject.into(), result.clone());
        drop(cache);
        drop(root);
        result
    }

    /// All subscriptions, for monitoring.
    pub fn all(&self) -> Vec<Arc<Subscription>> {
        fn walk(level: &Level, out: &mut Vec<Arc<Subscription>>) {
            let nodes = level.literal.values().chain(level.pwc.as_deref()).chain(level.fwc.as_deref());
            for node in nodes {
                out.extend(node.plain.iter().cloned());
                out.extend(node.queues.iter().flat_map(|q| q.values()).flatten().cloned());
                if let Some(next) = &node.next {
                    walk(next, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root.read(), &mut out);
        out
    }

    pub fn stats(&self) -> SublistStats {
        let matches = self.matches.load(Ordering::Relaxed);
        let hits = self.cache_hits.load(Ordering::Relaxed);
        let (num_cache, max_fanout, total_fanout) = {
            let cache = self.cache.read();
            let fanouts = cache.values().map(|r| (r.plain.len() + r.groups.len()) as u64);
            let (max, total) = fanouts.fold((0, 0), |(max, total), f| (u64::max(max, f), total + f));
            (cache.len() as u64, max, total)
        };
        SublistStats {
            num_subscriptions: self.count(),
            num_cache,
            max_fanout,
            avg_fanout: if num_cache == 0 { 0.0 } else { total_fanout as f64 / num_cache as f64 },
            num_inserts: self.inserts.load(Ordering::Relaxed),
            num_removes: self.removes.load(Ordering::Relaxed),
            num_matches: matches,
            cache_hit_rate: if matches == 0 { 0.0 } else { hits as f64 / matches as f64 },
        }
    }
}

/// Whether `subject` has no empty token (nothing can match one that has).
fn is_valid_subject_shape(subject: &str) -> bool {
    !subject.is_empty() && !subject.starts_with('.') && !subject.ends_with('.') && !subject.contains("..")
}

/// Collects what matches `subject` (its remaining tokens) at `level`. The subject is split as
/// the walk goes: no token list is allocated per lookup.
fn collect(
    level: &Level,
    subject: &str,
    plain: &mut Vec<Arc<Subscription>>,
    groups: &mut HashMap<Arc<str>, Vec<Arc<Subscription>>, RandomState>,
) {
    let (token, rest) = match subject.split_once('.') {
        Some((token, rest)) => (token, Some(rest)),
        None => (subject, None),
    };
    if let Some(fwc) = &level.fwc {
        add_node(fwc, plain, groups);
    }
    let branches = [level.literal.get(token), level.pwc.as_deref()];
    for node in branches.into_iter().flatten() {
        match rest {
            None => add_node(node, plain, groups),
            Some(rest) => {
                if let Some(next) = &node.next {
                    collect(next, rest, plain, groups);
                }
            }
        }
    }
}

fn add_node(
    node: &Node,
    plain: &mut Vec<Arc<Subscription>>,
    groups: &mut HashMap<Arc<str>, Vec<Arc<Subscription>>, RandomState>,
) {
    plain.extend(node.plain.iter().cloned());
    for (name, members) in node.queues.iter().flat_map(|q| q.iter()) {
        groups.entry(name.clone()).or_default().extend(members.iter().cloned());
    }
}

fn remove_in(level: &mut Level, tokens: &[&str], sub: &Arc<Subscription>) -> bool {
    let Some((token, rest)) = tokens.split_first() else {
        return false;
    };
    let node = match *token {
        "*" => level.pwc.as_deref_mut(),
        ">" => level.fwc.as_deref_mut(),
        t => level.literal.get_mut(t),
    };
    let Some(node) = node else { return false };
    let removed = if rest.is_empty() {
        remove_from_node(node, sub)
    } else {
        match node.next.as_deref_mut() {
            Some(next) => {
                let removed = remove_in(next, rest, sub);
                if next.is_empty() {
                    node.next = None;
                }
                removed
            }
            None => false,
        }
    };
    // Prune empty nodes so churn (request inboxes) does not grow the trie forever.
    match *token {
        "*" if level.pwc.as_ref().is_some_and(|n| n.is_empty()) => level.pwc = None,
        ">" if level.fwc.as_ref().is_some_and(|n| n.is_empty()) => level.fwc = None,
        t if level.literal.get(t).is_some_and(Node::is_empty) => {
            level.literal.remove(t);
        }
        _ => {}
    }
    removed
}

fn remove_from_node(node: &mut Node, sub: &Arc<Subscription>) -> bool {
    let list = match &sub.queue {
        Some(q) => match node.queues.as_mut().and_then(|queues| queues.get_mut(q)) {
            Some(list) => list,
            None => return false,
        },
        None => &mut node.plain,
    };
    let Some(pos) = list.iter().position(|s| Arc::ptr_eq(s, sub)) else {
        return false;
    };
    list.swap_remove(pos);
    if let (Some(q), Some(queues)) = (&sub.queue, node.queues.as_mut()) {
        if queues.get(q).is_some_and(Vec::is_empty) {
            queues.remove(q);
        }
        if queues.is_empty() {
            node.queues = None;
        }
    }
    true
}

#[cfg(test)]
mod tests;

/// The part of `filter` before its first wildcard token, separator included (`a.b.` for
/// `a.b.*.c`, empty for `*.a`).
fn literal_prefix(filter: &str) -> &str {
    let mut at = 0;
    for token in filter.split('.') {
        if token == "*" || token == ">" {
            break;
        }
        at += token.len() + 1;
    }
    filter.get(..at.min(filter.len())).unwrap_or("")
}
