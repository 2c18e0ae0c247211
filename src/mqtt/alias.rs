//! MQTT 5 topic aliases, both directions.
//!
//! Client to server: the client may send up to the `topic_alias_maximum` the server announced
//! in CONNACK; a PUBLISH with a topic and an alias sets it, one with an empty topic uses it.
//! Server to client: up to the maximum the client announced in CONNECT; the first PUBLISH on a
//! topic carries the topic and a new alias, later ones only the alias. When the table is full,
//! further topics are sent without alias (no eviction: simple and always correct).

use std::collections::HashMap;

use foldhash::fast::RandomState;
use jetway_protocols::mqtt::{MqttStr, Publish};

/// Aliases the server announces it accepts from a client (CONNACK `topic_alias_maximum`).
pub const INBOUND_MAXIMUM: u16 = 64;

/// Why a client's alias was refused: the DISCONNECT reason is 0x94 (topic alias invalid) for
/// an alias over the maximum and 0x82 (protocol error) for an unknown one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliasError {
    OverMaximum(u16),
    Unknown(u16),
}

/// An alias table, allocated by its first alias: most connections never use one, and every
/// idle MQTT session would carry two empty maps.
type Table<K, V> = Option<Box<HashMap<K, V, RandomState>>>;

/// The aliases a client set on this connection (they never outlive it).
#[derive(Debug, Default)]
pub struct InboundAliases {
    topics: Table<u16, MqttStr>,
}

impl InboundAliases {
    /// Resolves the alias of `publish` in place: afterwards its topic is set.
    pub fn resolve(&mut self, publish: &mut Publish) -> Result<(), AliasError> {
        let Some(alias) = publish.properties.topic_alias.take() else {
            return Ok(());
        };
        if alias == 0 || alias > INBOUND_MAXIMUM {
            return Err(AliasError::OverMaximum(alias));
        }
        if publish.topic.is_empty() {
            let known = self.topics.as_ref().and_then(|t| t.get(&alias));
            publish.topic = known.cloned().ok_or(AliasError::Unknown(alias))?;
        } else {
            self.topics.get_or_insert_with(Box::default).insert(alias, publish.topic.clone());
        }
        Ok(())
    }
}

/// The aliases the server set towards its client.
#[derive(Debug, Default)]
pub struct OutboundAliases {
    maximum: u16,
    by_topic: Table<MqttStr, u16>,
}

/// What [`OutboundAliases::apply`] did, so that a PUBLISH that is then dropped can be undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    None,
    Reused,
    New(u16),
}

impl OutboundAliases {
    pub fn new(maximum: u16) -> OutboundAliases {
        OutboundAliases { maximum, by_topic: None }
    }

    /// Rewrites `publish` to use an alias when the client accepts them.
    pub fn apply(&mut self, publish: &mut Publish) -> Applied {
        if self.maximum == 0 {
            return Applied::None;
        }
        let by_topic = self.by_topic.get_or_insert_with(Box::default);
        if let Some(&alias) = by_topic.get(&publish.topic) {
            publish.properties.topic_alias = Some(alias);
            publish.topic = MqttStr::default();
            return Applied::Reused;
        }
        let next = by_topic.len() + 1;
        let Ok(alias) = u16::try_from(next) else { return Applied::None };
        if alias > self.maximum {
            return Applied::None;
        }
        by_topic.insert(publish.topic.clone(), alias);
        publish.properties.topic_alias = Some(alias);
        Applied::New(alias)
    }

    /// Forgets an alias whose defining PUBLISH was never sent.
    pub fn undo(&mut self, applied: Applied) {
        if let (Applied::New(alias), Some(by_topic)) = (applied, &mut self.by_topic) {
            by_topic.retain(|_, a| *a != alias);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_alias_is_set_then_used_and_bounded() {
        let mut aliases = InboundAliases::default();
        let mut p = Publish::new("a/b", "x");
        p.properties.topic_alias = Some(3);
        aliases.resolve(&mut p).unwrap();
        let mut q = Publish::new("", "y");
        q.properties.topic_alias = Some(3);
        aliases.resolve(&mut q).unwrap();
        assert_eq!(q.topic, "a/b");
        let mut r = Publish::new("", "z");
        r.properties.topic_alias = Some(4);
        assert_eq!(aliases.resolve(&mut r), Err(AliasError::Unknown(4)));
        let mut s = Publish::new("t", "z");
        s.properties.topic_alias = Some(INBOUND_MAXIMUM + 1);
        assert_eq!(aliases.resolve(&mut s), Err(AliasError::OverMaximum(INBOUND_MAXIMUM + 1)));
    }

    #[test]
    fn tables_are_allocated_by_their_first_alias_only() {
        let mut inbound = InboundAliases::default();
        inbound.resolve(&mut Publish::new("a", "x")).unwrap();
        assert!(inbound.topics.is_none(), "a PUBLISH without alias");
        let mut none = OutboundAliases::new(0);
        assert_eq!(none.apply(&mut Publish::new("a", "x")), Applied::None);
        assert!(none.by_topic.is_none(), "a client that takes no aliases");
    }

    #[test]
    fn outbound_aliases_up_to_the_client_maximum() {
        let mut aliases = OutboundAliases::new(1);
        let mut p = Publish::new("a", "x");
        assert_eq!(aliases.apply(&mut p), Applied::New(1));
        assert_eq!(p.topic, "a");
        let mut p = Publish::new("a", "x");
        assert_eq!(aliases.apply(&mut p), Applied::Reused);
        assert!(p.topic.is_empty());
        let mut p = Publish::new("b", "x");
        assert_eq!(aliases.apply(&mut p), Applied::None);
        assert_eq!(p.properties.topic_alias, None);
    }
}
