//! nats-server's versioning metadata (2.11+): every stream and consumer config it answers with
//! carries `_nats.req.level` (the API level its features need), `_nats.ver` (the server's
//! version) and `_nats.level` (the server's API level) in `metadata`.
//!
//! nats-server stores the required level and adds the other two to responses. Here all three
//! are added to responses only: the required level follows from the config (nats-server
//! recomputes it at every create and update, so the two never differ), and a config stores no
//! metadata map it does not need (an MQTT session's consumer is one per session). What a
//! client sends back under these keys (an edited info) is dropped, as nats-server does.

use std::collections::BTreeMap;

use super::consumer::config::{ConsumerConfig, PriorityPolicy};
use super::stream::config::StreamConfig;
use super::API_LEVEL;
use crate::server::NATS_COMPAT_VERSION;

const REQUIRED_LEVEL: &str = "_nats.req.level";
const SERVER_VERSION: &str = "_nats.ver";
const SERVER_LEVEL: &str = "_nats.level";

/// Drops the versioning keys a request carries (the server sets them); no map if nothing is
/// left.
pub fn strip(metadata: &mut Option<BTreeMap<String, String>>) {
    if let Some(map) = metadata {
        for key in [REQUIRED_LEVEL, SERVER_VERSION, SERVER_LEVEL] {
            map.remove(key);
        }
        if map.is_empty() {
            *metadata = None;
        }
    }
}

/// The API level a stream's features need (TTLs and delete markers came with level 1).
fn stream_required_level(config: &StreamConfig) -> u32 {
    u32::from(config.allow_msg_ttl || config.subject_delete_marker_ttl > 0)
}

/// The API level a consumer's features need (pauses and priority groups came with level 1).
fn consumer_required_level(config: &ConsumerConfig) -> u32 {
    let paused = config.pause_until.as_deref().is_some_and(|t| !t.is_empty() && !t.starts_with("0001-01-01"));
    u32::from(
        paused
            || config.priority_policy != PriorityPolicy::None
            || config.priority_timeout != 0
            || !config.priority_groups.is_empty(),
    )
}

/// Adds the required level (`stored`), or also the server's version and level (an answer).
fn with_levels(metadata: &mut Option<BTreeMap<String, String>>, required: u32, answer: bool) {
    let map = metadata.get_or_insert_with(BTreeMap::new);
    map.insert(REQUIRED_LEVEL.into(), required.to_string());
    if answer {
        map.insert(SERVER_VERSION.into(), NATS_COMPAT_VERSION.into());
        map.insert(SERVER_LEVEL.into(), API_LEVEL.to_string());
    }
}

/// A stream config as nats-server stores it (and `/jsz` shows it): with its required level only.
pub fn stream_stored(mut config: StreamConfig) -> StreamConfig {
    let required = stream_required_level(&config);
    with_levels(&mut config.metadata, required, false);
    config
}

/// A consumer config as nats-server stores it (and `/jsz` shows it).
pub fn consumer_stored(mut config: ConsumerConfig) -> ConsumerConfig {
    let required = consumer_required_level(&config);
    with_levels(&mut config.metadata, required, false);
    config
}

/// A stream config as an API response shows it.
pub fn stream_answer(mut config: StreamConfig) -> StreamConfig {
    let required = stream_required_level(&config);
    with_levels(&mut config.metadata, required, true);
    config
}

/// A consumer config as an API response shows it.
pub fn consumer_answer(mut config: ConsumerConfig) -> ConsumerConfig {
    let required = consumer_required_level(&config);
    with_levels(&mut config.metadata, required, true);
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_carry_the_levels_and_requests_lose_them() {
        let plain = stream_answer(StreamConfig::default());
        let meta = plain.metadata.unwrap();
        assert_eq!(meta[REQUIRED_LEVEL], "0");
        assert_eq!(meta[SERVER_LEVEL], API_LEVEL.to_string());
        assert_eq!(meta[SERVER_VERSION], NATS_COMPAT_VERSION);
        let ttl = stream_answer(StreamConfig { allow_msg_ttl: true, ..StreamConfig::default() });
        assert_eq!(ttl.metadata.unwrap()[REQUIRED_LEVEL], "1");

        let paused = consumer_answer(ConsumerConfig {
            pause_until: Some("2030-01-01T00:00:00Z".into()),
            ..Default::default()
        });
        assert_eq!(paused.metadata.unwrap()[REQUIRED_LEVEL], "1");

        let mut echoed = Some(BTreeMap::from([
            (REQUIRED_LEVEL.to_string(), "1".to_string()),
            (SERVER_VERSION.to_string(), "x".to_string()),
            ("mine".to_string(), "kept".to_string()),
        ]));
        strip(&mut echoed);
        assert_eq!(echoed, Some(BTreeMap::from([("mine".to_string(), "kept".to_string())])));
    }
}
