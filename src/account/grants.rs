//! The part of a connection's permissions that changes as messages flow, shared between the
//! connection (which publishes) and the publishers that deliver to it:
//! - the delivery filter: a wildcard subscription wider than a deny rule must not carry the
//!   denied subjects, so deliveries are checked (answers cached per subject);
//! - response grants (`allow_responses`): a request delivered to the connection lets it
//!   publish to the request's reply subject, a limited number of times, for a limited time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use foldhash::fast::RandomState;
use parking_lot::Mutex;

use super::permissions::Permissions;

/// Subjects remembered by the delivery filter and reply grants held, before pruning.
const MAX_ENTRIES: usize = 4096;

/// One reply subject the connection may answer.
#[derive(Debug, Clone, Copy)]
struct Grant {
    granted: Instant,
    used: u32,
}

/// A connection's permissions with their dynamic state.
#[derive(Debug)]
pub struct ConnectionPermissions {
    pub rules: Arc<Permissions>,
    denied_cache: Mutex<HashMap<Box<str>, bool, RandomState>>,
    grants: Mutex<HashMap<Box<str>, Grant, RandomState>>,
}

impl ConnectionPermissions {
    pub fn new(rules: Arc<Permissions>) -> Self {
        ConnectionPermissions { rules, denied_cache: Mutex::default(), grants: Mutex::default() }
    }

    /// Called for each message about to be delivered to the connection. Returns false when
    /// the subject is denied; records a response grant for the reply subject otherwise.
    pub fn on_deliver(&self, subject: &str, reply: Option<&str>) -> bool {
        if self.rules.filters_deliveries() && self.delivery_denied(subject) {
            return false;
        }
        if let (Some(reply), Some(_)) = (reply, self.rules.responses()) {
            if !self.rules.publish_allowed(reply) {
                let mut grants = self.grants.lock();
                if grants.len() >= MAX_ENTRIES {
                    self.prune(&mut grants);
                }
                grants.insert(reply.into(), Grant { granted: Instant::now(), used: 0 });
            }
        }
        true
    }

    fn delivery_denied(&self, subject: &str) -> bool {
        let mut cache = self.denied_cache.lock();
        if let Some(hit) = cache.get(subject) {
            return *hit;
        }
        let denied = self.rules.delivery_denied(subject);
        if cache.len() >= MAX_ENTRIES {
            cache.clear();
        }
        cache.insert(subject.into(), denied);
        denied
    }

    /// Whether the connection may publish to `subject` as a response, using one grant.
    pub fn use_response_grant(&self, subject: &str) -> bool {
        let Some(limits) = self.rules.responses() else {
            return false;
        };
        let mut grants = self.grants.lock();
        let Some(grant) = grants.get_mut(subject) else {
            return false;
        };
        let expired = limits.expires.is_some_and(|ttl| grant.granted.elapsed() > ttl);
        grant.used += 1;
        let over = limits.max.is_some_and(|max| grant.used > max);
        let last = limits.max.is_some_and(|max| grant.used >= max);
        if expired || over || last {
            grants.remove(subject);
        }
        !(expired || over)
    }

    fn prune(&self, grants: &mut HashMap<Box<str>, Grant, RandomState>) {
        let Some(limits) = self.rules.responses() else {
            grants.clear();
            return;
        };
        grants.retain(|_, g| limits.expires.is_none_or(|ttl| g.granted.elapsed() <= ttl));
        if grants.len() >= MAX_ENTRIES {
            // All live and still too many: drop the oldest half rather than grow.
            let mut ages: Vec<Instant> = grants.values().map(|g| g.granted).collect();
            ages.sort_unstable();
            if let Some(cut) = ages.get(ages.len() / 2).copied() {
                grants.retain(|_, g| g.granted > cut);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{PermissionsConfig, ResponsePermissionConfig, SubjectPermissionConfig};

    fn with_responses(max: i64) -> ConnectionPermissions {
        let cfg = PermissionsConfig {
            allow_responses: Some(ResponsePermissionConfig {
                max,
                expires: Duration::from_secs(60),
                never_expires: false,
            }),
            subscribe: Some(SubjectPermissionConfig { allow: None, deny: vec!["secret.>".into()] }),
            ..PermissionsConfig::default()
        };
        ConnectionPermissions::new(Arc::new(Permissions::compile(&cfg).unwrap_or_else(|e| panic!("{e}"))))
    }

    #[test]
    fn a_received_request_grants_max_responses_to_its_reply_subject() {
        let p = with_responses(2);
        assert!(!p.use_response_grant("_INBOX.1"));
        assert!(p.on_deliver("svc", Some("_INBOX.1")));
        assert!(p.use_response_grant("_INBOX.1"));
        assert!(p.use_response_grant("_INBOX.1"));
        assert!(!p.use_response_grant("_INBOX.1"));
    }

    #[test]
    fn denied_subjects_are_not_delivered() {
        let p = with_responses(1);
        assert!(!p.on_deliver("secret.x", Some("_INBOX.2")));
        assert!(!p.use_response_grant("_INBOX.2"));
        assert!(p.on_deliver("open", None));
    }
}
