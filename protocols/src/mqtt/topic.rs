//! Topic names, topic filters and shared subscriptions (spec 4.7, 4.8.2), and the translation
//! between MQTT topics and NATS subjects, rule for rule as nats-server does it
//! (`mqttToNATSSubjectConversion` and `natsSubjectToMQTTTopic` in its `server/mqtt.go`):
//!
//! | MQTT          | NATS            | why                                                    |
//! |---------------|-----------------|--------------------------------------------------------|
//! | `a/b`         | `a.b`           | the level separators differ                            |
//! | `/a`, `a/`, `a//b` | `/.a`, `a./`, `a./.b` | NATS has no empty tokens: an empty level is `/` |
//! | `a.b`         | `a//b`          | `.` would split the level; `//` cannot come from `/`    |
//! | `+`, `#`      | `*`, `>`        | filters only                                           |
//! | `a/#`         | `a.>` and `a`   | MQTT's `#` also matches its parent level; NATS's `>` does not |
//! | whitespace, DEL | refused       | they would break the NATS wire protocol                |
//!
//! NATS wildcard characters inside a topic (`a/*`, `a/>`) are not escaped, as in nats-server.

use std::borrow::Cow;

/// Why a topic name or filter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic cannot be empty")]
    Empty,
    #[error("wildcards not allowed in publish's topic")]
    WildcardInTopicName,
    #[error("'#' must be the last level and alone in it")]
    MultiLevelWildcardMisplaced,
    #[error("'+' must be alone in its level")]
    SingleLevelWildcardMisplaced,
    #[error("shared subscription needs a group name without wildcards and a filter")]
    InvalidSharedSubscription,
    #[error("character not supported for MQTT topics")]
    UnsupportedCharacter,
}

/// Checks a topic name (PUBLISH, will): not empty, no wildcards ([MQTT-4.7.3-1],
/// [MQTT-3.3.2-2]).
pub fn validate_topic_name(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.bytes().any(|b| matches!(b, b'+' | b'#')) {
        return Err(TopicError::WildcardInTopicName);
    }
    Ok(())
}

/// Checks a topic filter: not empty, `#` alone in the last level, `+` alone in its level
/// ([MQTT-4.7.1-2], [MQTT-4.7.1-3]). A `$share/...` filter is checked as written: use
/// [`SharedSubscription::parse`] first to check the inner filter.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(TopicError::MultiLevelWildcardMisplaced);
        }
        if level.contains('+') && level != "+" {
            return Err(TopicError::SingleLevelWildcardMisplaced);
        }
    }
    Ok(())
}

/// An MQTT 5 shared subscription, `$share/<group>/<filter>` (spec 4.8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedSubscription<'a> {
    pub group: &'a str,
    pub filter: &'a str,
}

impl<'a> SharedSubscription<'a> {
    /// `None` if `filter` is not a shared subscription; otherwise the group and inner filter,
    /// both checked ([MQTT-4.8.2-1], [MQTT-4.8.2-2]).
    pub fn parse(filter: &'a str) -> Option<Result<SharedSubscription<'a>, TopicError>> {
        let rest = filter.strip_prefix("$share/")?;
        let Some((group, inner)) = rest.split_once('/') else {
            return Some(Err(TopicError::InvalidSharedSubscription));
        };
        if group.is_empty() || group.contains(['+', '#']) || inner.is_empty() {
            return Some(Err(TopicError::InvalidSharedSubscription));
        }
        Some(validate_topic_filter(inner).map(|()| SharedSubscription { group, filter: inner }))
    }
}

/// Whether `filter` can match topics beginning with `$`. A filter starting with a wildcard
/// cannot ([MQTT-4.7.2-1]): `#` and `+/x` never see `$SYS/x`.
pub fn filter_matches_dollar_topics(filter: &str) -> bool {
    !matches!(filter.as_bytes().first(), Some(b'+' | b'#'))
}

/// The NATS-side form of [`filter_matches_dollar_topics`], nats-server's
/// `isMQTTReservedSubscription`: a subscription on `*`, `>` or `*.…` must not be given
/// subjects that start with `$`.
pub fn is_reserved_subscription(subject: &str) -> bool {
    subject == "*" || subject == ">" || subject.starts_with("*.")
}

fn unsupported(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0C' | '\x7F')
}

/// Converts a validated topic or filter, level by level. Wildcards pass through as NATS
/// wildcards; the callers decide whether they are allowed.
fn convert(topic: &str) -> Result<Cow<'_, str>, TopicError> {
    if topic.chars().any(unsupported) {
        return Err(TopicError::UnsupportedCharacter);
    }
    if !topic.contains(['/', '.', '+', '#']) {
        return Ok(Cow::Borrowed(topic));
    }
    let mut subject = String::with_capacity(topic.len() + 8);
    for (i, level) in topic.split('/').enumerate() {
        if i > 0 {
            subject.push('.');
        }
        if level.is_empty() {
            subject.push('/');
            continue;
        }
        for c in level.chars() {
            match c {
                '.' => subject.push_str("//"),
                '+' => subject.push('*'),
                '#' => subject.push('>'),
                c => subject.push(c),
            }
        }
    }
    Ok(Cow::Owned(subject))
}

/// The NATS subject a PUBLISH (or will) topic is published on.
pub fn topic_to_subject(topic: &str) -> Result<Cow<'_, str>, TopicError> {
    validate_topic_name(topic)?;
    convert(topic)
}

/// The NATS subjects a SUBSCRIBE filter listens on: the translated filter, and for `x/#` also
/// the parent level `x`, because MQTT's `#` includes its parent and NATS's `>` does not. A lone
/// `#` needs no parent.
pub fn filter_to_subjects(filter: &str) -> Result<(String, Option<String>), TopicError> {
    validate_topic_filter(filter)?;
    let subject = convert(filter)?.into_owned();
    let parent = subject.strip_suffix(".>").filter(|parent| !parent.is_empty()).map(str::to_owned);
    Ok((subject, parent))
}

/// The MQTT topic a message on `subject` is delivered under: the inverse of
/// [`topic_to_subject`]. As in nats-server, a `/` that is not part of `/.` or `//` (a subject no
/// MQTT topic produces) is dropped.
pub fn subject_to_topic(subject: &str) -> Cow<'_, str> {
    if !subject.contains(['/', '.']) {
        return Cow::Borrowed(subject);
    }
    let mut topic = String::with_capacity(subject.len());
    let mut chars = subject.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' => match chars.peek() {
                Some('.') => {
                    topic.push('/');
                    chars.next();
                }
                Some('/') => {
                    topic.push('.');
                    chars.next();
                }
                _ => {}
            },
            '.' => topic.push('/'),
            c => topic.push(c),
        }
    }
    Cow::Owned(topic)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// nats-server's `TestMQTTTopicAndSubjectConversion`, both directions.
    #[test]
    fn topics_translate_to_subjects_and_back_like_nats_server() {
        let table = [
            ("/", "/./"),
            ("//", "/././"),
            ("///", "/./././"),
            ("////", "/././././"),
            ("foo", "foo"),
            ("/foo", "/.foo"),
            ("//foo", "/./.foo"),
            ("///foo", "/././.foo"),
            ("///foo/", "/././.foo./"),
            ("///foo//", "/././.foo././"),
            ("///foo///", "/././.foo./././"),
            ("//.foo.//", "/././/foo//././"),
            ("foo/bar", "foo.bar"),
            ("/foo/bar", "/.foo.bar"),
            ("/foo/bar/", "/.foo.bar./"),
            ("foo/bar/baz", "foo.bar.baz"),
            ("/foo/bar/baz", "/.foo.bar.baz"),
            ("/foo/bar/baz/", "/.foo.bar.baz./"),
            ("bar/", "bar./"),
            ("bar//", "bar././"),
            ("bar///", "bar./././"),
            ("foo//bar", "foo./.bar"),
            ("foo///bar", "foo././.bar"),
            ("foo////bar", "foo./././.bar"),
            (".", "//"),
            ("..", "////"),
            ("...", "//////"),
            ("./", "//./"),
            (".//.", "//././/"),
            ("././.", "//.//.//"),
            ("././/.", "//.//././/"),
            (".foo", "//foo"),
            ("foo.", "foo//"),
            (".foo.", "//foo//"),
            ("foo../bar/", "foo////.bar./"),
            ("foo../bar/.", "foo////.bar.//"),
            ("/foo/", "/.foo./"),
            ("./foo/.", "//.foo.//"),
            ("foo.bar/baz", "foo//bar.baz"),
        ];
        for (topic, subject) in table {
            assert_eq!(topic_to_subject(topic).unwrap(), subject, "{topic}");
            assert_eq!(subject_to_topic(subject), topic, "{subject}");
        }
    }

    #[test]
    fn publish_topics_refuse_wildcards_and_whitespace() {
        for (topic, err) in [
            ("foo/+", TopicError::WildcardInTopicName),
            ("foo/#", TopicError::WildcardInTopicName),
            ("foo bar", TopicError::UnsupportedCharacter),
            ("foo\x7fbar", TopicError::UnsupportedCharacter),
            ("foo\tbar", TopicError::UnsupportedCharacter),
            ("", TopicError::Empty),
        ] {
            assert_eq!(topic_to_subject(topic), Err(err), "{topic:?}");
        }
    }

    /// nats-server's `TestMQTTFilterConversion`.
    #[test]
    fn filters_translate_like_nats_server() {
        let table = [
            ("+", "*"),
            ("/+", "/.*"),
            ("+/", "*./"),
            ("/+/", "/.*./"),
            ("foo/+", "foo.*"),
            ("foo/+/", "foo.*./"),
            ("foo/+/bar", "foo.*.bar"),
            ("foo/+/+", "foo.*.*"),
            ("foo/+/+/", "foo.*.*./"),
            ("foo/+/+/bar", "foo.*.*.bar"),
            ("foo//+", "foo./.*"),
            ("foo//+/", "foo./.*./"),
            ("foo//+//", "foo./.*././"),
            ("foo//+//bar", "foo./.*./.bar"),
            ("foo///+///bar", "foo././.*././.bar"),
            ("foo.bar///+///baz", "foo//bar././.*././.baz"),
            ("#", ">"),
            ("/#", "/.>"),
            ("/foo/#", "/.foo.>"),
            ("foo/#", "foo.>"),
            ("foo//#", "foo./.>"),
            ("foo///#", "foo././.>"),
            ("foo/bar/#", "foo.bar.>"),
            ("foo/bar.baz/#", "foo.bar//baz.>"),
            ("foo*/bar", "foo*.bar"),
            ("foo>/bar", "foo>.bar"),
            ("foo/*/bar", "foo.*.bar"),
            ("foo/*/bar/*", "foo.*.bar.*"),
            ("foo/>", "foo.>"),
            ("foo/*/bar/>", "foo.*.bar.>"),
        ];
        for (filter, subject) in table {
            assert_eq!(filter_to_subjects(filter).unwrap().0, subject, "{filter}");
        }
    }

    #[test]
    fn multi_level_wildcard_also_subscribes_to_the_parent_level() {
        assert_eq!(filter_to_subjects("foo/#").unwrap(), ("foo.>".to_owned(), Some("foo".to_owned())));
        assert_eq!(filter_to_subjects("/#").unwrap(), ("/.>".to_owned(), Some("/".to_owned())));
        assert_eq!(filter_to_subjects("#").unwrap(), (">".to_owned(), None));
        assert_eq!(filter_to_subjects("foo/+").unwrap(), ("foo.*".to_owned(), None));
    }

    #[test]
    fn filters_need_wildcards_alone_in_their_level() {
        for ok in ["#", "+", "a/#", "+/+", "a/+/b", "/+", "+/#", "$share/g/a"] {
            assert_eq!(validate_topic_filter(ok), Ok(()), "{ok}");
        }
        for (bad, err) in [
            ("", TopicError::Empty),
            ("a#", TopicError::MultiLevelWildcardMisplaced),
            ("a/#/b", TopicError::MultiLevelWildcardMisplaced),
            ("#/", TopicError::MultiLevelWildcardMisplaced),
            ("a/b+", TopicError::SingleLevelWildcardMisplaced),
            ("++", TopicError::SingleLevelWildcardMisplaced),
        ] {
            assert_eq!(validate_topic_filter(bad), Err(err), "{bad}");
        }
    }

    #[test]
    fn shared_subscriptions_split_group_and_filter() {
        assert_eq!(SharedSubscription::parse("a/b"), None);
        assert_eq!(SharedSubscription::parse("$share"), None);
        assert_eq!(
            SharedSubscription::parse("$share/workers/jobs/#"),
            Some(Ok(SharedSubscription { group: "workers", filter: "jobs/#" }))
        );
        for bad in ["$share/", "$share/g", "$share//a", "$share/g/", "$share/g+/a"] {
            assert_eq!(
                SharedSubscription::parse(bad),
                Some(Err(TopicError::InvalidSharedSubscription)),
                "{bad}"
            );
        }
        assert_eq!(
            SharedSubscription::parse("$share/g/a#"),
            Some(Err(TopicError::MultiLevelWildcardMisplaced))
        );
    }

    #[test]
    fn leading_wildcards_do_not_match_dollar_topics() {
        assert!(!filter_matches_dollar_topics("#"));
        assert!(!filter_matches_dollar_topics("+/monitor"));
        assert!(filter_matches_dollar_topics("$SYS/#"));
        assert!(filter_matches_dollar_topics("a/+"));
        assert!(is_reserved_subscription(">"));
        assert!(is_reserved_subscription("*"));
        assert!(is_reserved_subscription("*.monitor"));
        assert!(!is_reserved_subscription("$SYS.>"));
        assert!(!is_reserved_subscription("a.*"));
    }
}
