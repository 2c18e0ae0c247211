//! Retained messages: which ones a new subscription gets, and how they are sent.
//!
//! The messages themselves live in the [`super::store::SessionStore`] (one per topic; an empty
//! retained PUBLISH deletes). On SUBSCRIBE the matching ones are sent after the SUBACK with the
//! RETAIN flag set ([MQTT-3.3.1-8]) at the lower of the stored and the granted QoS; shared
//! subscriptions get none (spec 4.8.2).

use std::time::SystemTime;

use jetway_protocols::mqtt::topic::{filter_matches_dollar_topics, filter_to_subjects, topic_to_subject};
use jetway_protocols::mqtt::{Publish, QoS};

use super::store::RetainedMessage;

/// Whether the MQTT topic name `topic` matches the MQTT topic filter `filter`, with MQTT's
/// rules: `#` also matches the parent level, and a leading wildcard never matches a `$` topic.
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && !filter_matches_dollar_topics(filter) {
        return false;
    }
    let (Ok((subject_filter, parent)), Ok(subject)) = (filter_to_subjects(filter), topic_to_subject(topic))
    else {
        return false;
    };
    jetway_subject::matches(&subject_filter, &subject) || parent.is_some_and(|p| p == subject)
}

/// The PUBLISH that delivers `message` to a subscription granted `granted` QoS, with its
/// message expiry counted down; `None` once it has expired.
pub fn to_delivery(message: &RetainedMessage, granted: QoS, now: SystemTime) -> Option<Publish> {
    let mut publish = message.publish.clone();
    if let Some(expiry) = publish.properties.message_expiry_interval {
        let elapsed = now.duration_since(message.stored_at).unwrap_or_default().as_secs();
        let left = u64::from(expiry).checked_sub(elapsed).filter(|left| *left > 0)?;
        publish.properties.message_expiry_interval = Some(u32::try_from(left).unwrap_or(u32::MAX));
    }
    publish.qos = publish.qos.min(granted);
    publish.retain = true;
    publish.dup = false;
    publish.packet_id = 0;
    publish.properties.topic_alias = None;
    publish.properties.subscription_identifiers.clear();
    Some(publish)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_filter_rules() {
        assert!(filter_matches("a/#", "a"));
        assert!(filter_matches("a/#", "a/b/c"));
        assert!(filter_matches("a/+", "a/b"));
        assert!(!filter_matches("a/+", "a/b/c"));
        assert!(filter_matches("#", "x/y"));
        assert!(!filter_matches("#", "$SYS/x"));
        assert!(!filter_matches("+/x", "$SYS/x"));
        assert!(filter_matches("$SYS/#", "$SYS/x"));
        assert!(filter_matches("a.b/c", "a.b/c"));
        assert!(!filter_matches("a/b", "a.b"));
    }

    #[test]
    fn expired_retained_messages_are_not_delivered() {
        let mut publish = Publish::new("t", "x");
        publish.properties.message_expiry_interval = Some(10);
        let stored_at = SystemTime::now() - std::time::Duration::from_secs(4);
        let m = RetainedMessage { topic: "t".into(), publish, stored_at };
        let p = to_delivery(&m, QoS::AtLeastOnce, SystemTime::now()).unwrap();
        assert_eq!(p.properties.message_expiry_interval, Some(6));
        assert!(p.retain);
        let later = SystemTime::now() + std::time::Duration::from_secs(7);
        assert!(to_delivery(&m, QoS::AtLeastOnce, later).is_none());
    }
}
