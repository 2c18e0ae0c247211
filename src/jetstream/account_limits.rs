//! Per-account JetStream limits from an account's `jetstream {}` block (nats-server's
//! `max_mem`, `max_file`, `max_streams`, `max_consumers`), checked when streams and consumers
//! are created, with nats-server's error codes.
//!
//! Storage limits are reservations, as in nats-server: a stream with `max_bytes` reserves that
//! much of its storage type; a stream created or updated with a reservation that does not fit
//! next to the others, in its account or in the server (`max_memory_store` /
//! `max_file_store`), is refused (10028 memory, 10047 file). What is actually stored is
//! checked on every publish (see `usage`).

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

    /// Checks the number of streams before a new one is created.
    pub fn check_stream_count(&self, existing: usize) -> Result<(), ApiError> {
        if self.max_streams.is_some_and(|max| existing >= max) {
            return Err(ApiError::max_streams());
        }
        Ok(())
    }

    /// Checks that what stream `config` reserves fits next to the other streams of its storage
    /// type: `reserved.account` in this account (against `max_mem` / `max_file`) and
    /// `reserved.server` in the whole server (against `server_limit`, the server's
    /// `max_memory_store` / `max_file_store`). As in nats-server, a stream without
    /// `max_bytes` reserves nothing, but creating one needs a byte to spare.
    pub fn check_reservation(
        &self,
        config: &StreamConfig,
        creating: bool,
        reserved: Reserved,
        server_limit: u64,
    ) -> Result<(), ApiError> {
        let (limit, error): (Option<u64>, fn() -> ApiError) = match config.storage {
            StorageType::Memory => (self.max_memory, ApiError::memory_resources_exceeded),
            StorageType::File => (self.max_storage, ApiError::storage_resources_exceeded),
        };
        let wanted = match reservation(config) {
            0 if creating => 1,
            n => n,
        };
        if limit.is_some_and(|limit| reserved.account.saturating_add(wanted) > limit) {
            return Err(error());
        }
        if reserved.server.saturating_add(wanted) > server_limit {
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

/// What a stream reserves of its storage type: its `max_bytes`, or nothing when unlimited.
pub fn reservation(config: &StreamConfig) -> u64 {
    u64::try_from(config.max_bytes).unwrap_or(0)
}

/// Bytes reserved by the *other* streams of one storage type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reserved {
    /// In the stream's account.
    pub account: u64,
    /// In the whole server (the account's included).
    pub server: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(storage: StorageType, max_bytes: i64) -> StreamConfig {
        StreamConfig { name: "S".into(), storage, max_bytes, ..StreamConfig::default() }
    }

    fn code(result: Result<(), ApiError>) -> Option<u16> {
        result.err().map(|e| e.err_code)
    }

    #[test]
    fn reservations_must_fit_in_the_account_and_in_the_server() {
        let limits =
            AccountLimits { max_memory: Some(1_000), max_storage: Some(5_000), ..Default::default() };
        let reserved = Reserved { account: 600, server: 600 };
        let memory = |max_bytes| stream(StorageType::Memory, max_bytes);
        assert_eq!(code(limits.check_reservation(&memory(400), true, reserved, u64::MAX)), None);
        assert_eq!(code(limits.check_reservation(&memory(401), true, reserved, u64::MAX)), Some(10028));
        assert_eq!(code(limits.check_reservation(&memory(400), true, reserved, 999)), Some(10028), "server");
        let file = stream(StorageType::File, 4_401);
        assert_eq!(code(limits.check_reservation(&file, false, reserved, u64::MAX)), Some(10047));
    }

    #[test]
    fn an_unlimited_stream_reserves_nothing_but_creating_one_needs_a_byte_to_spare() {
        let limits = AccountLimits { max_memory: Some(1_000), ..Default::default() };
        let full = Reserved { account: 1_000, server: 1_000 };
        let unlimited = stream(StorageType::Memory, -1);
        assert_eq!(code(limits.check_reservation(&unlimited, true, full, u64::MAX)), Some(10028));
        assert_eq!(code(limits.check_reservation(&unlimited, false, full, u64::MAX)), None);
        assert_eq!(reservation(&unlimited), 0);
    }
}
