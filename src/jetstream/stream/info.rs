//! `StreamInfo` and `StreamState` JSON.

use std::collections::BTreeMap;

use serde::Serialize;

use super::config::StreamConfig;
use crate::jetstream::json::time_text;

#[derive(Debug, Clone, Serialize)]
pub struct LostJson {
    pub msgs: Vec<u64>,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamStateJson {
    pub messages: u64,
    pub bytes: u64,
    pub first_seq: u64,
    pub first_ts: String,
    pub last_seq: u64,
    pub last_ts: String,
    #[serde(skip_serializing_if = "crate::jetstream::json::is_zero_u64")]
    pub num_subjects: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subjects: Option<BTreeMap<String, u64>>,
    #[serde(skip_serializing_if = "crate::jetstream::json::is_zero_u64")]
    pub num_deleted: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Vec<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<LostJson>,
    pub consumer_count: usize,
}

impl StreamStateJson {
    pub fn from_state(s: &jetway_storage::StreamState, consumer_count: usize) -> Self {
        StreamStateJson {
            messages: s.msgs,
            bytes: s.bytes,
            first_seq: s.first_seq,
            first_ts: time_text(s.first_ts),
            last_seq: s.last_seq,
            last_ts: time_text(s.last_ts),
            num_subjects: s.num_subjects,
            subjects: None,
            num_deleted: s.num_deleted,
            deleted: None,
            lost: s.lost.as_ref().map(|l| LostJson { msgs: l.msgs.clone(), bytes: l.bytes }),
            consumer_count,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterInfoJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub leader: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamInfoJson {
    pub config: StreamConfig,
    pub created: String,
    pub state: StreamStateJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<super::sourcing::StreamSourceInfoJson>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<super::sourcing::StreamSourceInfoJson>,
    /// Only `STREAM.INFO` (and `/jsz`) carry it: nats-server leaves it out of create, update
    /// and list responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfoJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    pub ts: String,
}
