//! nats-server's checks of a stream's mirror and sources, in its order and words: the
//! mirror's exclusions and transforms, each source's name, identity (duplicates), filter and
//! transforms, message sizes against origins in the same account, external prefixes, and
//! cycles through the account's other streams.

use super::config::{is_valid_name, StreamConfig, StreamSource, SubjectTransform};
use super::sourcing::SourceIdentity;
use crate::jetstream::errors::ApiError;

/// The prefix of the JetStream API in an account (what an external `api` may not overlap).
const API_PREFIX: &str = "$JS.API";

/// Finds the config of another stream of the same account by name.
pub(crate) type Lookup<'a> = &'a dyn Fn(&str) -> Option<StreamConfig>;

/// Checks `config`'s mirror and sources; `others` finds the account's other streams.
pub(crate) fn check(config: &StreamConfig, others: Lookup<'_>) -> Result<(), ApiError> {
    let mut origins = Origins::default();
    if let Some(mirror) = &config.mirror {
        check_mirror(config, mirror)?;
        if mirror.external.is_none() && !is_valid_name(&mirror.name) {
            return Err(ApiError::mirror_invalid_stream_name());
        }
        origins.note(config, mirror, others, ApiError::mirror_max_message_size_too_big)?;
    }
    let mut identities: Vec<SourceIdentity> = Vec::new();
    for source in &config.sources {
        if !is_valid_name(&source.name) {
            return Err(ApiError::source_invalid_stream_name());
        }
        let identity = SourceIdentity::of(source);
        if identities.contains(&identity) {
            return Err(ApiError::source_duplicate_detected());
        }
        identities.push(identity);
        if !source.filter_subject.is_empty() && !source.subject_transforms.is_empty() {
            return Err(ApiError::source_filter_with_transforms());
        }
        check_transforms(
            &source.subject_transforms,
            ApiError::source_invalid_transform_source,
            ApiError::source_invalid_transform_destination,
        )?;
        let transforms = &source.subject_transforms;
        if (0..transforms.len()).any(|i| overlaps_another(transforms, i, jetway_subject::filter_is_subset)) {
            return Err(ApiError::source_overlapping_subject_filters());
        }
        origins.note(config, source, others, ApiError::source_max_message_size_too_big)?;
    }
    origins.check_prefixes()?;
    check_cycles(config, others)
}

/// What the mirror or sources say of their origins, for the checks made after them all.
#[derive(Default)]
struct Origins<'a> {
    /// Subjects of origins in this account, which an external delivery prefix must not cover.
    subjects: Vec<String>,
    delivery_prefixes: Vec<&'a str>,
    api_prefixes: Vec<&'a str>,
}

impl<'a> Origins<'a> {
    /// Notes `link`'s origin: an external one's prefixes, or a local one's subjects, whose
    /// messages must fit `config`'s maximum size (else `too_big`).
    fn note(
        &mut self,
        config: &StreamConfig,
        link: &'a StreamSource,
        others: Lookup<'_>,
        too_big: fn() -> ApiError,
    ) -> Result<(), ApiError> {
        if let Some(external) = &link.external {
            self.delivery_prefixes.extend(Some(external.deliver.as_str()).filter(|d| !d.is_empty()));
            self.api_prefixes.extend(Some(external.api.as_str()).filter(|a| !a.is_empty()));
        } else if let Some(origin) = others(&link.name) {
            self.subjects.extend(origin.subjects.iter().cloned());
            if config.max_msg_size > 0 && origin.max_msg_size > 0 && config.max_msg_size < origin.max_msg_size
            {
                return Err(too_big());
            }
        }
        Ok(())
    }

    /// External prefixes: literal, a delivery prefix clear of the local origins' subjects, an
    /// API prefix clear of the account's own API.
    fn check_prefixes(&self) -> Result<(), ApiError> {
        for &prefix in &self.delivery_prefixes {
            if !jetway_subject::is_valid_literal(prefix) {
                return Err(ApiError::external_delivery_prefix_invalid(format!(
                    "{prefix} must not contain wildcards"
                )));
            }
            let covered =
                self.subjects.iter().find(|s| jetway_subject::filters_overlap(s, &format!("{prefix}.{s}")));
            if let Some(subject) = covered {
                return Err(ApiError::external_delivery_prefix_overlaps(format!(
                    "{prefix} overlaps with stream subject {subject}"
                )));
            }
        }
        for &prefix in &self.api_prefixes {
            if !jetway_subject::is_valid_literal(prefix) {
                return Err(ApiError::stream_invalid_config(format!(
                    "stream external api prefix {prefix:?} must be a valid subject without wildcards"
                )));
            }
            if jetway_subject::filters_overlap(prefix, API_PREFIX) {
                return Err(ApiError::external_api_overlap(format!(
                    "{prefix} must not overlap with {API_PREFIX}"
                )));
            }
        }
        Ok(())
    }
}

/// What a mirror may not be combined with, and its filter and transforms.
fn check_mirror(config: &StreamConfig, mirror: &StreamSource) -> Result<(), ApiError> {
    if config.first_seq > 0 {
        return Err(ApiError::mirror_with_first_seq());
    }
    if !config.subjects.is_empty() {
        return Err(ApiError::mirror_with_subjects());
    }
    if !config.sources.is_empty() {
        return Err(ApiError::mirror_with_sources());
    }
    if !mirror.filter_subject.is_empty() && !mirror.subject_transforms.is_empty() {
        return Err(ApiError::mirror_filter_with_transforms());
    }
    if config.subject_delete_marker_ttl > 0 {
        // Markers would take sequences of their own, and the mirror's must be the origin's.
        return Err(ApiError::stream_invalid_config("subject delete markers forbidden on mirrors"));
    }
    let transforms = &mirror.subject_transforms;
    for (i, outer) in transforms.iter().enumerate() {
        check_transforms(
            std::slice::from_ref(outer),
            ApiError::mirror_invalid_transform_source,
            ApiError::mirror_invalid_transform_destination,
        )?;
        if overlaps_another(transforms, i, jetway_subject::filters_overlap) {
            return Err(ApiError::mirror_overlapping_subject_filters());
        }
    }
    Ok(())
}

/// Whether the source of transform `i` overlaps another's, as `overlap` tells (nats-server
/// asks a mirror's for any overlap, a source's for a subset).
fn overlaps_another(transforms: &[SubjectTransform], i: usize, overlap: fn(&str, &str) -> bool) -> bool {
    let Some(outer) = transforms.get(i) else { return false };
    transforms.iter().enumerate().any(|(j, inner)| i != j && overlap(&outer.src, &inner.src))
}

/// Each transform's source is a valid filter (or empty) and its mapping valid.
fn check_transforms(
    transforms: &[SubjectTransform],
    bad_source: fn(String) -> ApiError,
    bad_destination: fn(jetway_subject::TransformError) -> ApiError,
) -> Result<(), ApiError> {
    for t in transforms {
        if !t.src.is_empty() && !jetway_subject::is_valid_filter(&t.src) {
            return Err(bad_source(format!("invalid subject {}", t.src)));
        }
        jetway_subject::validate_mapping(&t.src, &t.dest).map_err(bad_destination)?;
    }
    Ok(())
}

/// A stream may not come back to itself through the sources (of subjects it takes) and
/// mirrors of the account's streams; external origins are not followed.
fn check_cycles(config: &StreamConfig, others: Lookup<'_>) -> Result<(), ApiError> {
    let cycle = || ApiError::stream_invalid_config("detected cycle");
    let mut to_visit = vec![config.clone()];
    let mut visited: Vec<String> = Vec::new();
    while !to_visit.is_empty() {
        let current = to_visit.remove(0);
        visited.push(current.name.clone());
        for source in current.sources.iter().filter(|s| s.external.is_none()) {
            if visited.contains(&source.name) {
                let takes = source.filter_subject.is_empty()
                    || current
                        .subjects
                        .iter()
                        .any(|s| jetway_subject::filters_overlap(s, &source.filter_subject));
                if takes {
                    return Err(cycle());
                }
            } else if let Some(origin) = others(&source.name) {
                to_visit.push(origin);
            }
        }
        if let Some(mirror) = current.mirror.as_ref().filter(|m| m.external.is_none()) {
            if visited.contains(&mirror.name) {
                return Err(cycle());
            }
            if let Some(origin) = others(&mirror.name) {
                to_visit.push(origin);
            }
        }
    }
    Ok(())
}
