//! `ConsumerInfo` JSON.

use serde::Serialize;

use super::config::ConsumerConfig;

#[derive(Debug, Clone, Serialize)]
pub struct SequenceInfoJson {
    pub consumer_seq: u64,
    pub stream_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_active: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsumerInfoJson {
    pub stream_name: String,
    pub name: String,
    pub created: String,
    pub config: ConsumerConfig,
    pub delivered: SequenceInfoJson,
    pub ack_floor: SequenceInfoJson,
    pub num_ack_pending: u64,
    pub num_redelivered: u64,
    pub num_waiting: u64,
    pub num_pending: u64,
    #[serde(skip_serializing_if = "crate::jetstream::json::is_false")]
    pub push_bound: bool,
    #[serde(skip_serializing_if = "crate::jetstream::json::is_false")]
    pub paused: bool,
    #[serde(skip_serializing_if = "crate::jetstream::json::is_zero_i64")]
    pub pause_remaining: i64,
    /// The first priority group's state (nats-server reports one), when there are groups.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub priority_groups: Vec<PriorityGroupJson>,
    pub ts: String,
}

/// A priority group and the client pinned to it.
#[derive(Debug, Clone, Serialize)]
pub struct PriorityGroupJson {
    pub group: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_client_id: Option<String>,
    /// When the client was pinned; Go's zero time while none is (as nats-server writes it).
    pub pinned_ts: String,
}
