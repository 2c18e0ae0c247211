//! The JetStream API error table: nats-server's HTTP-like `code`, its stable `err_code`, and
//! its description text, so clients that switch on `err_code` behave as with nats-server.
//! Descriptions with a run-time part (`{err}`, `{seq}`) take it as an argument.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// `{"code": 404, "err_code": 10059, "description": "stream not found"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{description} ({err_code})")]
pub struct ApiError {
    pub code: u16,
    pub err_code: u16,
    pub description: Cow<'static, str>,
}

macro_rules! fixed_errors {
    ($($name:ident => $code:literal, $err_code:literal, $text:literal;)*) => {
        impl ApiError {
            $(
                pub fn $name() -> ApiError {
                    ApiError { code: $code, err_code: $err_code, description: Cow::Borrowed($text) }
                }
            )*
        }
    };
}

macro_rules! formatted_errors {
    ($($name:ident => $code:literal, $err_code:literal, $prefix:literal;)*) => {
        impl ApiError {
            $(
                pub fn $name(detail: impl std::fmt::Display) -> ApiError {
                    ApiError { code: $code, err_code: $err_code, description: Cow::Owned(format!(concat!($prefix, "{}"), detail)) }
                }
            )*
        }
    };
}

fixed_errors! {
    account_resources_exceeded => 400, 10002, "resource limits exceeded for account";
    bad_request => 400, 10003, "bad request";
    snapshot_deliver_subject_invalid => 400, 10015, "deliver subject not valid";
    consumer_name_exists => 400, 10013, "consumer name already in use";
    consumer_not_found => 404, 10014, "consumer not found";
    durable_name_not_in_subject => 400, 10016, "consumer expected to be durable but no durable name set in subject";
    durable_name_mismatch => 400, 10017, "consumer name in subject does not match durable name in request";
    durable_name_not_set => 400, 10018, "consumer expected to be durable but a durable name was not set";
    ephemeral_with_durable_name => 400, 10020, "consumer expected to be ephemeral but a durable name was set in request";
    insufficient_resources => 503, 10023, "insufficient resources";
    max_consumers => 400, 10026, "maximum consumers limit reached";
    max_streams => 400, 10027, "maximum number of streams reached";
    memory_resources_exceeded => 500, 10028, "insufficient memory resources available";
    no_message_found => 404, 10037, "no message found";
    not_enabled_for_account => 503, 10039, "JetStream not enabled for account";
    storage_resources_exceeded => 500, 10047, "insufficient storage resources available";
    message_too_large => 400, 10054, "message size exceeds maximum allowed";
    mirror_not_updatable => 400, 10055, "stream mirror configuration can not be updated";
    mirror_with_sources => 400, 10031, "stream mirrors can not also contain other sources";
    mirror_with_subjects => 400, 10034, "stream mirrors can not contain subjects";
    mirror_with_first_seq => 400, 10143, "stream mirrors can not have first sequence configured";
    mirror_filter_with_transforms => 400, 10150, "mirror with multiple subject transforms cannot also have a single subject filter";
    mirror_max_message_size_too_big => 400, 10030, "stream mirror must have max message size >= source";
    mirror_invalid_stream_name => 400, 10142, "mirrored stream name is invalid";
    mirror_overlapping_subject_filters => 400, 10152, "mirror subject filters can not overlap";
    source_max_message_size_too_big => 400, 10046, "stream source must have max message size >= target";
    source_duplicate_detected => 400, 10140, "duplicate source configuration detected";
    source_invalid_stream_name => 400, 10141, "sourced stream name is invalid";
    source_filter_with_transforms => 400, 10144, "source with multiple subject transforms cannot also have a single subject filter";
    source_overlapping_subject_filters => 400, 10147, "source filters can not overlap";
    stream_name_mismatch => 400, 10056, "stream name in subject does not match request";
    stream_name_exists => 400, 10058, "stream name already in use with a different configuration";
    stream_not_found => 404, 10059, "stream not found";
    expected_stream_mismatch => 400, 10060, "expected stream does not match";
    subjects_overlap => 400, 10065, "subjects overlap with an existing stream";
    replicas_not_supported => 500, 10074, "replicas > 1 not supported in non-clustered mode";
    replicas_negative => 400, 10133, "replicas count cannot be negative";
    not_enabled => 503, 10076, "JetStream not enabled";
    cluster_required => 503, 10010, "JetStream clustering support required";
    deliver_to_wildcards => 400, 10079, "consumer deliver subject has wildcards";
    push_max_waiting => 400, 10080, "consumer in push mode can not set max waiting";
    deliver_cycle => 400, 10081, "consumer deliver subject forms a cycle";
    max_pending_needs_ack_policy => 400, 10082, "consumer requires ack policy for max ack pending";
    small_heartbeat => 400, 10083, "consumer idle heartbeat needs to be >= 100ms";
    pull_requires_ack_on_workqueue => 400, 10084, "consumer in pull mode requires explicit ack policy on workqueue stream";
    pull_with_rate_limit => 400, 10086, "consumer in pull mode can not have rate limit set";
    heartbeat_requires_push => 400, 10088, "consumer idle heartbeat requires a push based consumer";
    flow_control_requires_push => 400, 10089, "consumer flow control requires a push based consumer";
    header_too_large => 400, 10097, "header size exceeds maximum allowed of 64k";
    workqueue_requires_explicit_ack => 400, 10098, "workqueue stream requires explicit ack";
    workqueue_multiple_unfiltered => 400, 10099, "multiple non-filtered consumers not allowed on workqueue stream";
    workqueue_consumer_not_unique => 400, 10100, "filtered consumer not unique on workqueue stream";
    workqueue_not_deliver_all => 400, 10101, "consumer must be deliver all on workqueue stream";
    consumer_existing_active => 400, 10105, "consumer already exists and is still active";
    consumer_description_too_long => 400, 10107, "consumer description is too long, maximum allowed is 4096";
    flow_control_needs_heartbeats => 400, 10108, "consumer with flow control also needs heartbeats";
    stream_sealed => 400, 10109, "invalid operation on sealed stream";
    invalid_deliver_subject => 400, 10112, "invalid push consumer deliver subject";
    max_request_expires_too_small => 400, 10115, "consumer max request expires needs to be >= 1ms";
    max_deliver_backoff => 400, 10116, "max deliver is required to be > length of backoff values";
    info_max_subjects => 500, 10117, "subject details would exceed maximum allowed";
    consumer_replicas_exceed_stream => 400, 10126, "consumer config replica count exceeds parent stream";
    create_filter_mismatch => 400, 10131, "Consumer create request did not match filtered subject from create subject";
    duplicate_filter_subjects => 400, 10136, "consumer cannot have both FilterSubject and FilterSubjects specified";
    multiple_filters_not_allowed => 400, 10137, "consumer with multiple subject filters cannot use subject based API";
    overlapping_filters => 400, 10138, "consumer subject filters cannot overlap";
    empty_filter => 400, 10139, "consumer filter in FilterSubjects cannot be empty";
    consumer_already_exists => 400, 10148, "consumer already exists";
    consumer_does_not_exist => 400, 10149, "consumer does not exist";
    invalid_ttl => 400, 10165, "invalid per-message TTL";
    ttl_disabled => 400, 10166, "per-message TTL is disabled";
    too_many_requests => 429, 10167, "too many requests";
    ack_wait_negative => 400, 10183, "consumer ack wait needs to be positive";
    backoff_negative => 400, 10184, "consumer backoff needs to be positive";
    expected_last_subject_seq_missing => 400, 10193, "missing sequence for expected last sequence per subject";
    priority_policy_without_group => 400, 10159, "Setting PriorityPolicy requires at least one PriorityGroup to be set";
    invalid_priority_group => 400, 10160, "Provided priority group does not exist for this consumer";
    empty_group_name => 400, 10161, "Group name cannot be an empty string";
    invalid_group_name => 400, 10162, "Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not exceed 16 characters";
    push_with_priority_group => 400, 10178, "priority groups can not be used with push consumers";
    priority_groups_without_policy => 400, 10196, "consumer can not have priority groups when policy is none";
    pinned_ttl_without_policy => 400, 10197, "PinnedTTL cannot be set when PriorityPolicy is none";
}

formatted_errors! {
    invalid_json => 400, 10025, "invalid JSON: ";
    consumer_invalid_reset => 400, 10204, "invalid reset: ";
    sequence_not_found => 400, 10043, "sequence ";
    consumer_create => 500, 10012, "";
    stream_create => 500, 10049, "";
    transform_invalid_source => 400, 10155, "stream transform source: ";
    transform_invalid_destination => 400, 10156, "stream transform: ";
    mirror_invalid_transform_source => 400, 10151, "mirror transform source: ";
    mirror_invalid_transform_destination => 400, 10154, "mirror transform: ";
    source_invalid_transform_source => 400, 10145, "source transform source: ";
    source_invalid_transform_destination => 400, 10146, "source transform: ";
    external_delivery_prefix_invalid => 400, 10024, "stream external delivery prefix ";
    external_delivery_prefix_overlaps => 400, 10022, "stream external delivery prefix ";
    external_api_overlap => 400, 10021, "stream external api prefix ";
    stream_delete => 500, 10050, "";
    stream_general => 500, 10051, "";
    stream_invalid_config => 500, 10052, "";
    consumer_invalid_policy => 400, 10094, "";
    invalid_sampling => 400, 10095, "failed to parse consumer sampling configuration: ";
    max_ack_pending_excess => 400, 10121, "consumer max ack pending exceeds system limit of ";
    max_request_batch_exceeded => 400, 10125, "consumer max request batch exceeds server limit of ";
    stream_limits => 500, 10053, "";
    wrong_last_msg_id => 400, 10070, "wrong last msg ID: ";
    wrong_last_sequence => 400, 10071, "wrong last sequence: ";
    store_failed => 503, 10077, "";
    msg_delete_failed => 500, 10057, "";
    purge_failed => 500, 10110, "";
    rollup_failed => 500, 10111, "";
    pedantic => 400, 10157, "pedantic mode: ";
}

impl ApiError {
    /// `sequence {seq} not found`.
    pub fn seq_not_found(seq: u64) -> ApiError {
        let mut e = Self::sequence_not_found(seq);
        e.description = Cow::Owned(format!("{} not found", e.description));
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_like_nats_server() {
        let json = serde_json::to_string(&ApiError::stream_not_found()).unwrap_or_default();
        assert_eq!(json, r#"{"code":404,"err_code":10059,"description":"stream not found"}"#);
        assert_eq!(ApiError::wrong_last_sequence(7).description, "wrong last sequence: 7");
        assert_eq!(ApiError::seq_not_found(9).description, "sequence 9 not found");
        assert_eq!(ApiError::consumer_not_found().to_string(), "consumer not found (10014)");
    }
}
