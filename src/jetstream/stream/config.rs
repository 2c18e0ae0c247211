//! `StreamConfig` as the JetStream API speaks it (nats-server's field names, defaults and
//! always-emitted fields), its validation, and its translation to the store's limits.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::JetStreamLimits;
use crate::jetstream::errors::ApiError;
use crate::jetstream::json::{is_false, is_zero_i64, is_zero_u64};

/// Default duplicate window: 2 minutes.
pub const DEFAULT_DUPLICATE_WINDOW: i64 = 120 * 1_000_000_000;
const MIN_DURATION: i64 = 100_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionPolicy {
    #[default]
    Limits,
    Interest,
    #[serde(rename = "workqueue")]
    WorkQueue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Discard {
    #[default]
    Old,
    New,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    #[default]
    File,
    Memory,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectTransform {
    pub src: String,
    pub dest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RePublish {
    #[serde(default)]
    pub src: String,
    pub dest: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub headers_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalStream {
    pub api: String,
    #[serde(default)]
    pub deliver: String,
}

/// A mirror or source of another stream.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSource {
    pub name: String,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub opt_start_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub filter_subject: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_transforms: Vec<SubjectTransform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalStream>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerLimits {
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub inactive_threshold: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub max_ack_pending: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub preferred: String,
}

/// nats-server's `StreamConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    pub retention: RetentionPolicy,
    pub max_consumers: i64,
    pub max_msgs: i64,
    pub max_bytes: i64,
    /// Nanoseconds; 0 is unlimited.
    pub max_age: i64,
    pub max_msgs_per_subject: i64,
    pub max_msg_size: i32,
    pub discard: Discard,
    #[serde(skip_serializing_if = "is_false")]
    pub discard_new_per_subject: bool,
    pub storage: StorageType,
    pub num_replicas: i64,
    #[serde(skip_serializing_if = "is_false")]
    pub no_ack: bool,
    /// Nanoseconds.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub duplicate_window: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<StreamSource>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<StreamSource>,
    pub compression: String,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub first_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_transform: Option<SubjectTransform>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub republish: Option<RePublish>,
    pub allow_direct: bool,
    pub mirror_direct: bool,
    pub sealed: bool,
    pub deny_delete: bool,
    pub deny_purge: bool,
    pub allow_rollup_hdrs: bool,
    pub consumer_limits: ConsumerLimits,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    pub allow_msg_ttl: bool,
    /// Nanoseconds.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub subject_delete_marker_ttl: i64,
    // Features of newer servers that Jetway does not implement: accepted in requests so strict
    // decoding does not reject clients that send them unset, refused when turned on.
    #[serde(skip_serializing_if = "is_false")]
    pub allow_msg_counter: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub allow_atomic: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub allow_msg_schedules: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub allow_batched: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persist_mode: Option<String>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            name: String::new(),
            description: None,
            subjects: Vec::new(),
            retention: RetentionPolicy::Limits,
            max_consumers: -1,
            max_msgs: -1,
            max_bytes: -1,
            max_age: 0,
            max_msgs_per_subject: -1,
            max_msg_size: -1,
            discard: Discard::Old,
            discard_new_per_subject: false,
            storage: StorageType::File,
            num_replicas: 1,
            no_ack: false,
            duplicate_window: 0,
            placement: None,
            mirror: None,
            sources: Vec::new(),
            compression: "none".into(),
            first_seq: 0,
            subject_transform: None,
            republish: None,
            allow_direct: false,
            mirror_direct: false,
            sealed: false,
            deny_delete: false,
            deny_purge: false,
            allow_rollup_hdrs: false,
            consumer_limits: ConsumerLimits::default(),
            metadata: None,
            allow_msg_ttl: false,
            subject_delete_marker_ttl: 0,
            allow_msg_counter: false,
            allow_atomic: false,
            allow_msg_schedules: false,
            allow_batched: false,
            persist_mode: None,
        }
    }
}

/// Longest stream or consumer name (nats-server's `JSMaxNameLen`).
const MAX_NAME_LEN: usize = 255;
/// Largest total of metadata keys and values (nats-server's `JSMaxMetadataLen`).
const MAX_METADATA_LEN: usize = 128 * 1024;

/// Names of streams and consumers: non-empty, at most 255 bytes, none of
/// space, tab, CR, LF, FF, `.`, `*`, `>`, `\` or `/` (nats-server `isValidAssetName`).
pub fn is_valid_name(name: &str) -> bool {
    has_valid_name_chars(name) && name.len() <= MAX_NAME_LEN
}

/// Not empty, and none of the characters nats-server refuses in a name.
fn has_valid_name_chars(name: &str) -> bool {
    !name.is_empty()
        && !name
            .bytes()
            .any(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0c | b'.' | b'*' | b'>' | b'\\' | b'/'))
}

/// A mirror's or source's filter and transforms, with nats-server's words for them (it checks
/// them when it creates the stream: error 10049).
fn check_source_mappings(link: &StreamSource, what: &str) -> Result<(), ApiError> {
    let bad_filter = |f: &str| !f.is_empty() && jetway_subject::validate_filter(f).is_err();
    if link.subject_transforms.is_empty() {
        if bad_filter(&link.filter_subject) {
            let sep = if what == "mirror" { "" } else { ":" };
            return Err(ApiError::stream_create(format!(
                "subject filter '{}' for the {what}{sep} invalid subject",
                link.filter_subject
            )));
        }
        return Ok(());
    }
    for t in &link.subject_transforms {
        if bad_filter(&t.src) {
            return Err(ApiError::stream_create(if what == "mirror" {
                format!("invalid subject transform source '{}' for the mirror: invalid subject", t.src)
            } else {
                format!("subject filter '{}' for the source: invalid subject", t.src)
            }));
        }
        if !t.dest.is_empty() {
            if let Err(e) = jetway_subject::Transform::new(&t.src, &t.dest) {
                return Err(ApiError::stream_create(format!(
                    "subject transform from '{}' to '{}' for the {what}: {e}",
                    t.src, t.dest
                )));
            }
        }
    }
    Ok(())
}

impl StreamConfig {
    /// Fills defaults and checks the config as nats-server's `checkStreamCfg` does.
    /// [`StreamConfig::normalize_in`] for a stream checked on its own (no other streams of
    /// its account to look at).
    pub fn normalize(self) -> Result<StreamConfig, ApiError> {
        self.normalize_in(&JetStreamLimits::default(), &|_| None)
    }

    /// Fills in nats-server's defaults and applies its checks, in its order, under the
    /// server's `limits`; `others` finds the configs of the account's other streams (for
    /// mirrors and sources).
    pub fn normalize_in(
        mut self,
        limits: &JetStreamLimits,
        others: super::source_checks::Lookup<'_>,
    ) -> Result<StreamConfig, ApiError> {
        if !has_valid_name_chars(&self.name) {
            return Err(ApiError::stream_invalid_config(
                "stream name is required and can not contain '.', '*', '>', '\\', '/'",
            ));
        }
        if self.name.len() > MAX_NAME_LEN {
            return Err(ApiError::stream_invalid_config("stream name is too long, maximum allowed is 255"));
        }
        if self.description.as_ref().is_some_and(|d| d.len() > 4096) {
            return Err(ApiError::stream_invalid_config(
                "stream description is too long, maximum allowed is 4096",
            ));
        }
        crate::jetstream::versioning::strip(&mut self.metadata);
        let metadata_len: usize = self.metadata.iter().flatten().map(|(k, v)| k.len() + v.len()).sum();
        if metadata_len > MAX_METADATA_LEN {
            return Err(ApiError::stream_invalid_config(format!(
                "stream metadata exceeds maximum size of {MAX_METADATA_LEN} bytes"
            )));
        }
        if self.compression.is_empty() {
            self.compression = "none".into();
        }
        if self.compression != "none" && self.compression != "s2" {
            // nats-server reads the compression while decoding the request.
            return Err(ApiError::invalid_json("unknown compression algorithm"));
        }
        if self.num_replicas == 0 {
            self.num_replicas = 1;
        }
        if self.num_replicas > 5 {
            return Err(ApiError::stream_invalid_config("maximum replicas is 5"));
        }
        if self.num_replicas < 0 {
            return Err(ApiError::replicas_negative());
        }
        if self.num_replicas > 1 {
            return Err(ApiError::replicas_not_supported());
        }
        for v in
            [&mut self.max_consumers, &mut self.max_msgs, &mut self.max_bytes, &mut self.max_msgs_per_subject]
        {
            if *v == 0 || *v < -1 {
                *v = -1;
            }
        }
        if self.max_msg_size == 0 || self.max_msg_size < -1 {
            self.max_msg_size = -1;
        }
        if self.max_age < 0 {
            return Err(ApiError::stream_invalid_config("max age can not be negative"));
        }
        if self.max_age != 0 && self.max_age < MIN_DURATION {
            return Err(ApiError::stream_invalid_config("max age needs to be >= 100ms"));
        }
        if self.duplicate_window < 0 {
            return Err(ApiError::stream_invalid_config("duplicates window can not be negative"));
        }
        let window_limit = i64::try_from(limits.duplicate_window.as_nanos()).unwrap_or(i64::MAX);
        // As nats-server: mirrors and sourcing streams get no default window.
        if self.duplicate_window == 0 && self.mirror.is_none() && self.sources.is_empty() {
            self.duplicate_window = DEFAULT_DUPLICATE_WINDOW;
            if window_limit > 0 {
                self.duplicate_window = self.duplicate_window.min(window_limit);
            }
            if self.max_age != 0 && self.max_age < self.duplicate_window {
                self.duplicate_window = self.max_age;
            }
        } else if self.max_age != 0 && self.duplicate_window > self.max_age {
            return Err(ApiError::stream_invalid_config("duplicates window can not be larger then max age"));
        }
        if window_limit > 0 && self.duplicate_window > window_limit {
            return Err(ApiError::stream_invalid_config(format!(
                "duplicates window can not be larger then server limit of {}",
                crate::time::go_duration(limits.duplicate_window)
            )));
        }
        if self.duplicate_window > 0 && self.duplicate_window < MIN_DURATION {
            return Err(ApiError::stream_invalid_config("duplicates window needs to be >= 100ms"));
        }
        if self.discard_new_per_subject {
            if self.discard != Discard::New {
                return Err(ApiError::stream_invalid_config(
                    "discard new per subject requires discard new policy to be set",
                ));
            }
            if self.max_msgs_per_subject <= 0 {
                return Err(ApiError::stream_invalid_config(
                    "discard new per subject requires max msgs per subject > 0",
                ));
            }
        }
        if self.allow_msg_counter || self.allow_atomic || self.allow_msg_schedules || self.allow_batched {
            return Err(ApiError::stream_invalid_config(
                "counters, atomic and fast batches and message schedules are not supported by this server",
            ));
        }
        if self.persist_mode.as_deref().is_some_and(|m| m != "default" && !m.is_empty()) {
            return Err(ApiError::stream_invalid_config(
                "async persist mode is not supported by this server",
            ));
        }
        if self.subject_delete_marker_ttl < 0 {
            return Err(ApiError::stream_invalid_config("subject delete marker TTL must not be negative"));
        }
        if self.subject_delete_marker_ttl != 0 {
            if self.subject_delete_marker_ttl < 1_000_000_000 {
                return Err(ApiError::stream_invalid_config(
                    "subject delete marker TTL must be at least 1 second",
                ));
            }
            self.allow_msg_ttl = true;
            self.allow_rollup_hdrs = true;
        }
        if self.allow_rollup_hdrs && self.deny_purge {
            return Err(ApiError::stream_invalid_config("roll-ups require the purge permission"));
        }
        if self.mirror.is_none() && self.mirror_direct {
            return Err(ApiError::stream_invalid_config("stream has no mirror but does have mirror direct"));
        }
        super::source_checks::check(&self, others)?;
        if self.subjects.is_empty() && self.mirror.is_none() && self.sources.is_empty() {
            self.subjects = vec![self.name.clone()];
        }
        // nats-server's checks, in its order and words.
        for (i, subject) in self.subjects.iter().enumerate() {
            if jetway_subject::validate_filter(subject).is_err() {
                return Err(ApiError::stream_invalid_config("invalid subject"));
            }
            if self.subjects.iter().take(i).any(|earlier| earlier == subject) {
                return Err(ApiError::stream_invalid_config("duplicate subjects detected"));
            }
            if subject == ">" && !self.no_ack {
                return Err(ApiError::stream_invalid_config(
                    "capturing all subjects requires no-ack to be true",
                ));
            }
            if !self.no_ack {
                let api = ["$JS.>", "$JSC.>", "$NRG.>"]
                    .iter()
                    .any(|ns| jetway_subject::filters_overlap(subject, ns))
                    && !jetway_subject::filter_is_subset(subject, "$JS.EVENT.>");
                if api {
                    return Err(ApiError::stream_invalid_config(
                        "subjects that overlap with jetstream api require no-ack to be true",
                    ));
                }
                if jetway_subject::filters_overlap(subject, "$SYS.>")
                    && !jetway_subject::filter_is_subset(subject, "$SYS.ACCOUNT.>")
                {
                    return Err(ApiError::stream_invalid_config(
                        "subjects that overlap with system api require no-ack to be true",
                    ));
                }
            }
            if let Some(other) =
                self.subjects.iter().skip(i + 1).find(|other| jetway_subject::filters_overlap(other, subject))
            {
                return Err(ApiError::stream_invalid_config(format!(
                    "subject {subject:?} overlaps with {other:?}"
                )));
            }
        }
        if let Some(t) = &self.subject_transform {
            if !t.src.is_empty() && jetway_subject::validate_filter(&t.src).is_err() {
                return Err(ApiError::transform_invalid_source(format!("invalid subject {}", t.src)));
            }
            jetway_subject::validate_mapping(&t.src, &t.dest)
                .map_err(ApiError::transform_invalid_destination)?;
        }
        if let Some(rp) = &mut self.republish {
            if rp.src.is_empty() {
                rp.src = ">".into();
            }
            if self.subjects.iter().any(|s| jetway_subject::filters_overlap(s, &rp.dest)) {
                return Err(ApiError::stream_invalid_config(
                    "stream configuration for republish destination forms a cycle",
                ));
            }
            if jetway_subject::Transform::new(&rp.src, &rp.dest).is_err() {
                return Err(ApiError::stream_invalid_config(format!(
                    "stream configuration for republish with transform from '{}' to '{}' not valid",
                    rp.src, rp.dest
                )));
            }
        }
        if let Some(mirror) = &self.mirror {
            check_source_mappings(mirror, "mirror")?;
        }
        for source in &self.sources {
            check_source_mappings(source, "source")?;
        }
        Ok(self)
    }

    /// Checks an update against the current config (nats-server `configUpdateCheck`).
    pub fn check_update(&self, old: &StreamConfig) -> Result<(), ApiError> {
        let invalid = |m: &str| Err(ApiError::stream_invalid_config(m.to_string()));
        if self.name != old.name {
            return invalid("stream configuration name must match original");
        }
        if self.storage != old.storage {
            return invalid("stream configuration update can not change storage type");
        }
        if self.retention != old.retention
            && (self.retention == RetentionPolicy::WorkQueue || old.retention == RetentionPolicy::WorkQueue)
        {
            return invalid("stream configuration update can not change retention policy to/from workqueue");
        }
        if old.sealed && !self.sealed {
            return invalid("stream configuration update can not unseal a sealed stream");
        }
        if old.deny_delete && !self.deny_delete {
            return invalid("stream configuration update can not cancel deny message deletes");
        }
        if old.deny_purge && !self.deny_purge {
            return invalid("stream configuration update can not cancel deny purge");
        }
        if self.mirror != old.mirror {
            return Err(ApiError::mirror_not_updatable());
        }
        if old.allow_msg_ttl && !self.allow_msg_ttl {
            return invalid("message TTL status can not be disabled");
        }
        Ok(())
    }

    /// `subject_delete_marker_ttl` in the whole seconds nats-server uses, if set.
    pub fn delete_marker_ttl(&self) -> Option<Duration> {
        u64::try_from(self.subject_delete_marker_ttl / 1_000_000_000)
            .ok()
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
    }

    /// The limits the store enforces.
    pub fn store_config(&self, sync: jetway_storage::SyncPolicy) -> jetway_storage::StreamConfig {
        let positive = |v: i64| u64::try_from(v).ok().filter(|v| *v > 0);
        jetway_storage::StreamConfig {
            name: self.name.clone(),
            max_msgs: positive(self.max_msgs),
            max_bytes: positive(self.max_bytes),
            max_age: positive(self.max_age).map(Duration::from_nanos),
            max_msgs_per_subject: positive(self.max_msgs_per_subject),
            max_msg_size: u32::try_from(self.max_msg_size).ok().filter(|v| *v > 0),
            discard: match self.discard {
                Discard::Old => jetway_storage::DiscardPolicy::Old,
                Discard::New => jetway_storage::DiscardPolicy::New,
            },
            discard_new_per_subject: self.discard_new_per_subject,
            sync,
            first_seq: self.first_seq.max(1),
            delete_marker_ttl: self.delete_marker_ttl(),
            ..jetway_storage::StreamConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_nats_server() {
        let c = StreamConfig { name: "ORDERS".into(), ..StreamConfig::default() }
            .normalize()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.subjects, ["ORDERS"]);
        assert_eq!(c.max_msgs, -1);
        assert_eq!(c.duplicate_window, DEFAULT_DUPLICATE_WINDOW);
        let json = serde_json::to_value(&c).unwrap_or_default();
        for always in [
            "retention",
            "max_consumers",
            "max_msgs",
            "max_bytes",
            "max_age",
            "max_msgs_per_subject",
            "discard",
            "storage",
            "num_replicas",
            "compression",
            "allow_direct",
            "sealed",
            "deny_delete",
            "deny_purge",
            "allow_rollup_hdrs",
            "consumer_limits",
            "allow_msg_ttl",
        ] {
            assert!(json.get(always).is_some(), "{always} always emitted");
        }
        assert_eq!(json["retention"], "limits");
        assert_eq!(json["storage"], "file");
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<StreamConfig>(r#"{"name":"A","bogus":1}"#).is_err());
    }

    #[test]
    fn invalid_configs_are_refused() {
        let bad = |c: StreamConfig| c.normalize().is_err();
        assert!(bad(StreamConfig { name: "a.b".into(), ..StreamConfig::default() }));
        assert!(bad(StreamConfig { name: "A".into(), num_replicas: 3, ..StreamConfig::default() }));
        assert!(bad(StreamConfig {
            name: "A".into(),
            subjects: vec!["a.*".into(), "a.b".into()],
            ..StreamConfig::default()
        }));
        assert!(bad(StreamConfig { name: "A".into(), max_age: 5, ..StreamConfig::default() }));
    }
}
