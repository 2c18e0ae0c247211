//! Per-user publish and subscribe permissions, compiled from the config once at startup.
//!
//! The rules are nats-server's (`client.go` `pubAllowedFullCheck`, `canSubscribe`):
//! - no allow list allows everything; an allow list allows only what it matches;
//! - deny wins over allow;
//! - a SUB subject is checked with its wildcards taken as literal tokens, so `SUB foo.*` is
//!   allowed by `foo.*` or `foo.>` but not by `foo.bar`;
//! - a rule may carry a queue group (`"foo v1"`): it then decides queue subscriptions only;
//! - a wildcard SUB that overlaps a deny rule is allowed, and the denied subjects are filtered
//!   out at delivery ([`Permissions::delivery_denied`]).
//!
//! Matching walks the rule lists; callers cache the answer per subject
//! ([`PublishCache`]), so steady-state publishing costs one hash lookup.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use foldhash::fast::RandomState;

use crate::config::{PermissionsConfig, ResponsePermissionConfig, SubjectPermissionConfig};

/// A subject in a permissions list is not a valid subject (or `subject queue` pair).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid subject {0:?} in permissions")]
pub struct PermissionError(pub String);

/// One allow or deny entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    subject: String,
    /// Set for `"subject queue"` entries (subscribe only).
    queue: Option<String>,
}

impl Rule {
    fn parse(text: &str, allow_queue: bool) -> Result<Rule, PermissionError> {
        let invalid = || PermissionError(text.to_string());
        let mut parts = text.split_whitespace();
        let subject = parts.next().ok_or_else(invalid)?;
        let queue = parts.next();
        if parts.next().is_some() || (queue.is_some() && !allow_queue) {
            return Err(invalid());
        }
        if !jetway_subject::is_valid_filter(subject)
            || queue.is_some_and(|q| !jetway_subject::is_valid_filter(q))
        {
            return Err(invalid());
        }
        Ok(Rule { subject: subject.to_string(), queue: queue.map(str::to_string) })
    }
}

/// Allow and deny lists for one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Rules {
    /// `None` allows everything not denied.
    allow: Option<Vec<Rule>>,
    deny: Vec<Rule>,
}

impl Rules {
    fn compile(cfg: &SubjectPermissionConfig, allow_queue: bool) -> Result<Rules, PermissionError> {
        let parse = |list: &[String]| list.iter().map(|s| Rule::parse(s, allow_queue)).collect();
        Ok(Rules { allow: cfg.allow.as_deref().map(parse).transpose()?, deny: parse(&cfg.deny)? })
    }

    /// Publish: the subject is literal, queue rules do not apply.
    fn allows_publish(&self, subject: &str) -> bool {
        let plain = |r: &&Rule| r.queue.is_none();
        let allowed = self.allow.as_ref().is_none_or(|allow| {
            allow.iter().filter(plain).any(|r| jetway_subject::matches(&r.subject, subject))
        });
        allowed && !self.deny.iter().filter(plain).any(|r| jetway_subject::matches(&r.subject, subject))
    }

    fn allows_subscribe(&self, subject: &str, queue: Option<&str>) -> bool {
        let mut allowed = true;
        if let Some(allow) = &self.allow {
            let (plain, queued) = split_matches(allow, subject);
            allowed = plain;
            if let (Some(q), false) = (queue, queued.is_empty()) {
                allowed = queued.iter().any(|rq| jetway_subject::matches(rq, q));
            }
        }
        if allowed {
            let (plain, queued) = split_matches(&self.deny, subject);
            allowed = !plain;
            if let (true, Some(q)) = (allowed, queue) {
                allowed = !queued.iter().any(|rq| jetway_subject::matches(rq, q));
            }
        }
        allowed
    }
}

/// Whether a rule without a queue matches `subject`, and the queues of the matching queue
/// rules.
fn split_matches<'a>(rules: &'a [Rule], subject: &str) -> (bool, Vec<&'a str>) {
    let mut plain = false;
    let mut queues = Vec::new();
    for rule in rules.iter().filter(|r| jetway_subject::matches(&r.subject, subject)) {
        match &rule.queue {
            None => plain = true,
            Some(q) => queues.push(q.as_str()),
        }
    }
    (plain, queues)
}

/// How long and how often a user may answer a request it received (`allow_responses`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseRules {
    /// Answers per request; `None` is unlimited.
    pub max: Option<u32>,
    /// `None`: never expires.
    pub expires: Option<Duration>,
}

/// A user's compiled permissions. Immutable and shared by all its connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    publish: Option<Rules>,
    subscribe: Option<Rules>,
    responses: Option<ResponseRules>,
}

impl Permissions {
    pub fn compile(cfg: &PermissionsConfig) -> Result<Permissions, PermissionError> {
        let responses = cfg.allow_responses.filter(|r| r.max != 0).map(response_rules);
        let mut publish = cfg.publish.as_ref().map(|p| Rules::compile(p, false)).transpose()?;
        if responses.is_some() {
            // nats-server: allowing responses turns off the blanket publish allow.
            let rules = publish.get_or_insert_with(Rules::default);
            rules.allow.get_or_insert_with(Vec::new);
        }
        let subscribe = cfg.subscribe.as_ref().map(|s| Rules::compile(s, true)).transpose()?;
        Ok(Permissions { publish, subscribe, responses })
    }

    /// Whether publishing to `subject` is allowed by the static rules (responses aside).
    pub fn publish_allowed(&self, subject: &str) -> bool {
        self.publish.as_ref().is_none_or(|r| r.allows_publish(subject))
    }

    /// Whether `SUB subject [queue]` is allowed.
    pub fn subscribe_allowed(&self, subject: &str, queue: Option<&str>) -> bool {
        self.subscribe.as_ref().is_none_or(|r| r.allows_subscribe(subject, queue))
    }

    /// Whether a message on `subject` must not be delivered (a wildcard subscription wider
    /// than a deny rule).
    pub fn delivery_denied(&self, subject: &str) -> bool {
        self.subscribe.as_ref().is_some_and(|r| {
            r.deny.iter().any(|d| d.queue.is_none() && jetway_subject::matches(&d.subject, subject))
        })
    }

    /// Whether a subscription on `filter` could receive a subject a deny rule names.
    pub fn deny_overlaps(&self, filter: &str) -> bool {
        self.subscribe.as_ref().is_some_and(|r| {
            r.deny.iter().any(|d| d.queue.is_none() && jetway_subject::filters_overlap(&d.subject, filter))
        })
    }

    /// Whether any delivery can be denied (so connections without deny rules skip the check).
    pub fn filters_deliveries(&self) -> bool {
        self.subscribe.as_ref().is_some_and(|r| r.deny.iter().any(|d| d.queue.is_none()))
    }

    pub fn responses(&self) -> Option<ResponseRules> {
        self.responses
    }
}

fn response_rules(cfg: ResponsePermissionConfig) -> ResponseRules {
    ResponseRules {
        max: u32::try_from(cfg.max).ok().filter(|m| *m > 0),
        expires: (!cfg.never_expires).then_some(cfg.expires),
    }
}

/// Answers remembered per subject, so a connection checks each subject's rules once.
/// Bounded: past the limit the cache starts over (a rare full recompute beats unbounded growth
/// on a client that publishes to ever-new subjects).
#[derive(Debug, Default)]
pub struct PublishCache {
    answers: HashMap<Bytes, bool, RandomState>,
}

const PUBLISH_CACHE_MAX: usize = 1024;

impl PublishCache {
    /// Whether `perms` allow publishing to `subject` (statically; see [`Permissions`]).
    pub fn allowed(&mut self, perms: &Permissions, subject: &Bytes) -> bool {
        if let Some(hit) = self.answers.get(subject.as_ref()) {
            return *hit;
        }
        let allowed = std::str::from_utf8(subject).is_ok_and(|s| perms.publish_allowed(s));
        if self.answers.len() >= PUBLISH_CACHE_MAX {
            self.answers.clear();
        }
        self.answers.insert(subject.clone(), allowed);
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: Option<&[&str]>, deny: &[&str]) -> SubjectPermissionConfig {
        SubjectPermissionConfig {
            allow: allow.map(|a| a.iter().map(|s| s.to_string()).collect()),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn perms(
        publish: Option<SubjectPermissionConfig>,
        subscribe: Option<SubjectPermissionConfig>,
    ) -> Permissions {
        Permissions::compile(&PermissionsConfig { publish, subscribe, allow_responses: None })
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn no_rules_allow_everything() {
        let p = Permissions::default();
        assert!(p.publish_allowed("a.b"));
        assert!(p.subscribe_allowed(">", Some("q")));
        assert!(!p.delivery_denied("a"));
    }

    #[test]
    fn allow_list_with_wildcards_and_deny_wins() {
        let p = perms(Some(rules(Some(&["orders.>", "status"]), &["orders.secret.*"])), None);
        assert!(p.publish_allowed("orders.new"));
        assert!(p.publish_allowed("orders.eu.new"));
        assert!(p.publish_allowed("status"));
        assert!(!p.publish_allowed("status.x"));
        assert!(!p.publish_allowed("orders.secret.1"));
        assert!(!p.publish_allowed("other"));
    }

    #[test]
    fn deny_only_allows_the_rest() {
        let p = perms(Some(rules(None, &["admin.>"])), None);
        assert!(p.publish_allowed("x"));
        assert!(!p.publish_allowed("admin.reset"));
    }

    #[test]
    fn subscribe_wildcards_are_checked_as_literal_tokens() {
        let p = perms(None, Some(rules(Some(&["foo.*", "bar.baz"]), &[])));
        assert!(p.subscribe_allowed("foo.*", None));
        assert!(p.subscribe_allowed("foo.x", None));
        assert!(!p.subscribe_allowed("bar.*", None));
        assert!(!p.subscribe_allowed(">", None));
    }

    #[test]
    fn a_wildcard_subscription_over_a_deny_rule_is_filtered_at_delivery() {
        let p = perms(None, Some(rules(None, &["secret.>"])));
        assert!(!p.subscribe_allowed("secret.x", None));
        assert!(p.subscribe_allowed(">", None));
        assert!(p.filters_deliveries());
        assert!(p.delivery_denied("secret.x"));
        assert!(!p.delivery_denied("public.x"));
    }

    #[test]
    fn queue_rules_decide_queue_subscriptions() {
        let p = perms(None, Some(rules(Some(&["jobs v1", "logs"]), &["logs bad"])));
        assert!(p.subscribe_allowed("jobs", Some("v1")));
        assert!(!p.subscribe_allowed("jobs", Some("v2")));
        assert!(!p.subscribe_allowed("jobs", None));
        assert!(p.subscribe_allowed("logs", None));
        assert!(p.subscribe_allowed("logs", Some("good")));
        assert!(!p.subscribe_allowed("logs", Some("bad")));
    }

    #[test]
    fn allow_responses_turns_off_the_blanket_publish_allow() {
        let p = Permissions::compile(&PermissionsConfig {
            allow_responses: Some(ResponsePermissionConfig::default()),
            ..PermissionsConfig::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!p.publish_allowed("anything"));
        assert_eq!(
            p.responses(),
            Some(ResponseRules { max: Some(1), expires: Some(Duration::from_secs(120)) })
        );
    }

    #[test]
    fn invalid_subjects_are_rejected() {
        let bad =
            PermissionsConfig { publish: Some(rules(Some(&["a..b"]), &[])), ..PermissionsConfig::default() };
        assert!(Permissions::compile(&bad).is_err());
        let queue_on_publish =
            PermissionsConfig { publish: Some(rules(Some(&["a q"]), &[])), ..PermissionsConfig::default() };
        assert!(Permissions::compile(&queue_on_publish).is_err());
    }

    #[test]
    fn the_publish_cache_remembers_answers() {
        let p = perms(Some(rules(Some(&["a"]), &[])), None);
        let mut cache = PublishCache::default();
        assert!(cache.allowed(&p, &Bytes::from_static(b"a")));
        assert!(!cache.allowed(&p, &Bytes::from_static(b"b")));
        assert!(cache.allowed(&p, &Bytes::from_static(b"a")));
    }
}
