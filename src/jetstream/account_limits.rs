//! Per-account JetStream limits from an account's `jetstream {}` block (nats-server's
//! `max_mem`, `max_file`, `max_streams`, `max_consumers`), checked when streams and consumers
//! are created, with nats-server's error codes.
//!
//! Storage limits are reservations, as in nats-server: a stream with `max_bytes` reserves that
//! much of its storage type; a new stream whose reservation does not fit is refused (10028
//! memory, 10047 file).

use super::errors::ApiError;
use super::stream::config::{StorageType, StreamConfig};
use crate::config::AccountJetStreamConfig;

/// Limits of one account; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountLimits {
    pub max_memory: Option<u64>,
    pub max_storage: Option<u64>,
    pub max_streams: Option<usize>,
    /// Per stream, as nats-server applies the account's `max_consumers`.
    pub max_consumers: Option<usize>,
}

impl AccountLimits {
    pub fn from_config(cfg: &AccountJetStreamConfig) -> Self {
        let count = |v: Option<i64>| v.and_then(|n| usize::try_from(n).ok());
        AccountLimits {
            max_memory: cfg.max_mem,
            max_storage: cfg.max_file,
            max_streams: count(cfg.max_streams),
            max_consumers: count(cfg.max_consumers),
        }
    }

    /// Checks a new stream against the account's existing ones.
    pub fn check_new_stream<'a>(
        &self,
        new: &StreamConfig,
        existing: impl Iterator<Item = &'a StreamConfig>,
    ) -> Result<(), ApiError> {
        let existing: Vec<&StreamConfig> = existing.collect();
        if self.max_streams.is_some_and(|max| existing.len() >= max) {
            return Err(ApiError::max_streams());
        }
        let (limit, error): (Option<u64>, fn() -> ApiError) = match new.storage {
            StorageType::Memory => (self.max_memory, ApiError::memory_resources_exceeded),
            StorageType::File => (self.max_storage, ApiError::storage_resources_exceeded),
        };
        let Some(limit) = limit else {
            return Ok(());
        };
        let reserved: u64 = existing
            .iter()
            .filter(|c| c.storage == new.storage)
            .map(|c| u64::try_from(c.max_bytes).unwrap_or(0))
            .sum();
        let wanted = u64::try_from(new.max_bytes).unwrap_or(0);
        if reserved.saturating_add(wanted) > limit {
            return Err(error());
        }
        Ok(())
    }

    pub fn check_new_consumer(&self, consumers_of_stream: usize) -> Result<(), ApiError> {
        if self.max_consumers.is_some_and(|max| consumers_of_stream >= max) {
            return Err(ApiError::max_consumers());
        }
        Ok(())
    }
}
