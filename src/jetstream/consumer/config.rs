//! `ConsumerConfig` as the JetStream API speaks it, with nats-server's defaults and checks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::priority::PriorityPolicy;
use super::priority::{is_valid_group_name, DEFAULT_PINNED_TTL};
use crate::config::JetStreamLimits;
use crate::jetstream::errors::ApiError;
use crate::jetstream::json::{is_false, is_zero_i64, is_zero_u64};
use crate::jetstream::stream::config::{is_valid_name, RetentionPolicy, StreamConfig};

/// Default ack wait: 30 s.
pub const DEFAULT_ACK_WAIT: i64 = 30 * 1_000_000_000;
/// Default max ack pending.
pub const DEFAULT_MAX_ACK_PENDING: i64 = 1000;
/// Default max waiting pull requests.
pub const DEFAULT_MAX_WAITING: i64 = 512;
/// Ephemeral consumers are removed after this long without interest.
pub const DEFAULT_INACTIVE_THRESHOLD: i64 = 5 * 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliverPolicy {
    #[default]
    All,
    Last,
    New,
    ByStartSequence,
    ByStartTime,
    LastPerSubject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckPolicy {
    /// nats-server decodes an absent field as `none`.
    #[default]
    None,
    All,
    Explicit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayPolicy {
    #[default]
    Instant,
    Original,
}

/// nats-server's `ConsumerConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerConfig {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub durable_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub deliver_policy: DeliverPolicy,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub opt_start_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<String>,
    pub ack_policy: AckPolicy,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub ack_wait: i64,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_deliver: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backoff: Vec<i64>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub filter_subject: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filter_subjects: Vec<String>,
    pub replay_policy: ReplayPolicy,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub rate_limit_bps: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sample_freq: String,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_waiting: i64,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_ack_pending: i64,
    #[serde(skip_serializing_if = "is_false")]
    pub flow_control: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub headers_only: bool,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_batch: i64,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_expires: i64,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_bytes: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub deliver_subject: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub deliver_group: String,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub idle_heartbeat: i64,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub inactive_threshold: i64,
    pub num_replicas: i64,
    #[serde(skip_serializing_if = "is_false")]
    pub mem_storage: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub direct: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_until: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub priority_groups: Vec<String>,
    #[serde(skip_serializing_if = "PriorityPolicy::is_none")]
    pub priority_policy: PriorityPolicy,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub priority_timeout: i64,
}

impl ConsumerConfig {
    pub fn is_pull(&self) -> bool {
        self.deliver_subject.is_empty()
    }

    pub fn is_durable(&self) -> bool {
        !self.durable_name.is_empty()
    }

    /// How long the `deliveries`-th delivery of a message waits for its ack: its `backoff`
    /// step (the last one past the end), else `ack_wait`.
    pub fn ack_wait_after(&self, deliveries: u64) -> std::time::Duration {
        let step = self.backoff.get((deliveries as usize).saturating_sub(1)).or(self.backoff.last());
        let nanos = step.copied().unwrap_or(self.ack_wait);
        std::time::Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
    }

    /// Every filter (empty: the whole stream).
    pub fn filters(&self) -> Vec<String> {
        if !self.filter_subjects.is_empty() {
            self.filter_subjects.clone()
        } else if !self.filter_subject.is_empty() {
            vec![self.filter_subject.clone()]
        } else {
            Vec::new()
        }
    }

    /// Fills defaults and checks the config against its stream and the server's `limits`
    /// (nats-server `setConsumerConfigDefaults` and `checkConsumerCfg`).
    pub fn normalize(
        mut self,
        stream: &StreamConfig,
        limits: &JetStreamLimits,
    ) -> Result<ConsumerConfig, ApiError> {
        crate::jetstream::versioning::strip(&mut self.metadata);
        if !self.name.is_empty() && !is_valid_name(&self.name) {
            return Err(ApiError::stream_invalid_config(
                "consumer name can not contain '.', '*', '>', '\\', '/'",
            ));
        }
        if !self.durable_name.is_empty() && !is_valid_name(&self.durable_name) {
            return Err(ApiError::stream_invalid_config(
                "consumer durable name can not contain '.', '*', '>', '\\', '/'",
            ));
        }
        if self.description.as_ref().is_some_and(|d| d.len() > 4096) {
            return Err(ApiError::consumer_description_too_long());
        }
        // Out-of-range limits fall back to "unset", as nats-server does outside pedantic mode.
        self.max_waiting = self.max_waiting.max(0);
        self.max_ack_pending = self.max_ack_pending.max(-1);
        self.max_batch = self.max_batch.max(0);
        self.max_expires = self.max_expires.max(0);
        self.max_bytes = self.max_bytes.max(0);
        self.idle_heartbeat = self.idle_heartbeat.max(0);
        self.inactive_threshold = self.inactive_threshold.max(0);
        if self.ack_policy != AckPolicy::None && self.ack_wait == 0 {
            self.ack_wait = DEFAULT_ACK_WAIT;
        }
        if let Some(first) = self.backoff.first() {
            self.ack_wait = *first;
        }
        if self.backoff.iter().any(|b| *b < 0) {
            return Err(ApiError::backoff_negative());
        }
        if self.ack_wait < 0 {
            return Err(ApiError::ack_wait_negative());
        }
        if self.max_deliver == 0 || self.max_deliver < -1 {
            self.max_deliver = -1;
        }
        if self.max_deliver > 0 && self.backoff.len() as i64 > self.max_deliver {
            return Err(ApiError::max_deliver_backoff());
        }
        if !self.sample_freq.is_empty() {
            let number = self.sample_freq.strip_suffix('%').unwrap_or(&self.sample_freq);
            if !number.parse::<i64>().is_ok_and(|n| n >= 0) {
                // Go's words for the parse failure, which nats-server passes on.
                return Err(ApiError::invalid_sampling(format!(
                    "strconv.Atoi: parsing {number:?}: invalid syntax"
                )));
            }
        }
        if self.ack_policy != AckPolicy::None && self.max_ack_pending == 0 {
            self.max_ack_pending = if stream.consumer_limits.max_ack_pending > 0 {
                stream.consumer_limits.max_ack_pending
            } else if limits.max_ack_pending > 0 {
                limits.max_ack_pending.min(DEFAULT_MAX_ACK_PENDING)
            } else {
                DEFAULT_MAX_ACK_PENDING
            };
        }
        if self.is_pull() && self.max_batch == 0 && limits.max_request_batch > 0 {
            self.max_batch = limits.max_request_batch;
        }
        if stream.consumer_limits.max_ack_pending > 0
            && self.max_ack_pending > stream.consumer_limits.max_ack_pending
        {
            return Err(ApiError::max_ack_pending_excess(stream.consumer_limits.max_ack_pending));
        }
        if self.is_pull() && limits.max_request_batch > 0 && self.max_batch > limits.max_request_batch {
            return Err(ApiError::max_request_batch_exceeded(limits.max_request_batch));
        }
        if limits.max_ack_pending > 0 && self.max_ack_pending > limits.max_ack_pending {
            return Err(ApiError::max_ack_pending_excess(limits.max_ack_pending));
        }
        if self.is_pull() {
            if self.max_waiting == 0 {
                self.max_waiting = DEFAULT_MAX_WAITING;
            }
            if self.rate_limit_bps > 0 {
                return Err(ApiError::pull_with_rate_limit());
            }
            if self.idle_heartbeat > 0 {
                return Err(ApiError::heartbeat_requires_push());
            }
            if self.flow_control {
                return Err(ApiError::flow_control_requires_push());
            }
            if self.max_expires != 0 && self.max_expires < 1_000_000 {
                return Err(ApiError::max_request_expires_too_small());
            }
        } else {
            if !jetway_subject::is_valid_filter(&self.deliver_subject) {
                return Err(ApiError::invalid_deliver_subject());
            }
            if !jetway_subject::is_valid_literal(&self.deliver_subject) {
                return Err(ApiError::deliver_to_wildcards());
            }
            if stream.subjects.iter().any(|s| jetway_subject::matches(s, &self.deliver_subject)) {
                return Err(ApiError::deliver_cycle());
            }
            if self.max_waiting != 0 {
                return Err(ApiError::push_max_waiting());
            }
            if self.max_ack_pending > 0 && self.ack_policy == AckPolicy::None {
                return Err(ApiError::max_pending_needs_ack_policy());
            }
            if self.flow_control && self.idle_heartbeat == 0 {
                return Err(ApiError::flow_control_needs_heartbeats());
            }
        }
        if self.idle_heartbeat != 0 && self.idle_heartbeat < 100_000_000 {
            return Err(ApiError::small_heartbeat());
        }
        if !self.filter_subject.is_empty() && !self.filter_subjects.is_empty() {
            return Err(ApiError::duplicate_filter_subjects());
        }
        // nats-server's order: any empty filter; then, filter by filter, an invalid one or
        // one whose subjects another filter takes too (filters may overlap in part: `a.*`
        // and `*.b` are allowed).
        if self.filter_subjects.iter().any(String::is_empty) {
            return Err(ApiError::empty_filter());
        }
        let filters = self.filters();
        // From a set, not every pair: an MQTT session's consumer has a filter per subscription.
        let others: jetway_subject::FilterSet = filters.iter().collect();
        for f in &filters {
            if jetway_subject::validate_filter(f).is_err() {
                return Err(ApiError::stream_invalid_config("invalid subject"));
            }
            if others.contained_in_another(f) {
                return Err(ApiError::overlapping_filters());
            }
        }
        self.check_start_position()?;
        if stream.retention == RetentionPolicy::WorkQueue {
            if self.is_pull() && self.ack_policy != AckPolicy::Explicit {
                return Err(ApiError::pull_requires_ack_on_workqueue());
            }
            if self.ack_policy != AckPolicy::Explicit {
                return Err(ApiError::workqueue_requires_explicit_ack());
            }
            if self.deliver_policy != DeliverPolicy::All {
                return Err(ApiError::workqueue_not_deliver_all());
            }
        }
        if self.num_replicas > 1 {
            return Err(ApiError::consumer_replicas_exceed_stream());
        }
        if self.num_replicas < 0 {
            self.num_replicas = 0;
        }
        if !self.is_durable() && self.inactive_threshold == 0 {
            self.inactive_threshold = if stream.consumer_limits.inactive_threshold > 0 {
                stream.consumer_limits.inactive_threshold
            } else {
                DEFAULT_INACTIVE_THRESHOLD
            };
        }
        self.check_priority_groups()?;
        Ok(self)
    }

    /// Priority groups: defaults and nats-server's rules, in its order.
    fn check_priority_groups(&mut self) -> Result<(), ApiError> {
        self.priority_timeout = self.priority_timeout.max(0);
        if self.priority_policy == PriorityPolicy::PinnedClient && self.priority_timeout == 0 {
            self.priority_timeout = DEFAULT_PINNED_TTL;
        }
        if self.priority_policy.is_none() {
            if !self.priority_groups.is_empty() {
                return Err(ApiError::priority_groups_without_policy());
            }
            if self.priority_timeout > 0 {
                return Err(ApiError::pinned_ttl_without_policy());
            }
            return Ok(());
        }
        if !self.is_pull() {
            return Err(ApiError::push_with_priority_group());
        }
        if self.priority_groups.is_empty() {
            return Err(ApiError::priority_policy_without_group());
        }
        for group in &self.priority_groups {
            if group.is_empty() {
                return Err(ApiError::empty_group_name());
            }
            if !is_valid_group_name(group) {
                return Err(ApiError::invalid_group_name());
            }
        }
        Ok(())
    }

    /// The delivery policy and its optional start agree (nats-server's rules and texts).
    fn check_start_position(&self) -> Result<(), ApiError> {
        let bad_start = |policy: &str, start: &str| {
            Err(ApiError::consumer_invalid_policy(format!(
                "consumer delivery policy is deliver {policy}, but optional start {start} is also set"
            )))
        };
        let not_set = |policy: &str, what: &str| {
            Err(ApiError::consumer_invalid_policy(format!(
                "consumer delivery policy is deliver {policy}, but optional {what} is not set"
            )))
        };
        let (seq, time) = (self.opt_start_seq != 0, self.opt_start_time.is_some());
        let policy = match self.deliver_policy {
            DeliverPolicy::All => "all",
            DeliverPolicy::Last => "last",
            DeliverPolicy::LastPerSubject => "last per subject",
            DeliverPolicy::New => "new",
            DeliverPolicy::ByStartSequence if !seq => return not_set("by start sequence", "start sequence"),
            DeliverPolicy::ByStartSequence if time => return bad_start("by start sequence", "time"),
            DeliverPolicy::ByStartTime if !time => return not_set("by start time", "start time"),
            DeliverPolicy::ByStartTime if seq => return bad_start("by start time", "start sequence"),
            DeliverPolicy::ByStartSequence | DeliverPolicy::ByStartTime => return Ok(()),
        };
        if seq {
            return bad_start(policy, "sequence");
        }
        if time {
            return bad_start(policy, "time");
        }
        if self.deliver_policy == DeliverPolicy::LastPerSubject
            && self.filter_subject.is_empty()
            && self.filter_subjects.is_empty()
        {
            return not_set(policy, "filter subject");
        }
        Ok(())
    }

    /// Checks an update of an existing consumer (fields nats-server does not let change).
    pub fn check_update(&self, old: &ConsumerConfig) -> Result<(), ApiError> {
        // nats-server's order and words (`checkNewConsumerConfig`, error 10012).
        let refusals = [
            (self.deliver_policy != old.deliver_policy, "deliver policy can not be updated"),
            (self.mem_storage != old.mem_storage, "storage type can not be updated"),
            (self.opt_start_seq != old.opt_start_seq, "start sequence can not be updated"),
            (self.opt_start_time != old.opt_start_time, "start time can not be updated"),
            (self.ack_policy != old.ack_policy, "ack policy can not be updated"),
            (self.replay_policy != old.replay_policy, "replay policy can not be updated"),
            (self.idle_heartbeat != old.idle_heartbeat, "heart beats can not be updated"),
            (self.flow_control != old.flow_control, "flow control can not be updated"),
            (old.is_pull() && !self.is_pull(), "can not update pull consumer to push based"),
            (!old.is_pull() && self.is_pull(), "can not update push consumer to pull based"),
            (self.max_waiting != old.max_waiting, "max waiting can not be updated"),
        ];
        match refusals.iter().find(|(refused, _)| *refused) {
            Some((_, text)) => Err(ApiError::consumer_create(*text)),
            None => Ok(()),
        }
    }
}
