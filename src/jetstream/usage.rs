//! Bytes stored by JetStream, per account and storage type and server-wide, and the check on
//! the write path that refuses a message once a quota is used up.
//!
//! Every stream's store mirrors its size into its account's counter for the stream's storage
//! type, whose parent is the server's counter ([`jetway_storage::UsageCounter`]). The check on
//! each publish is therefore two atomic loads, never a walk over streams. As in nats-server:
//!
//! - **server**: once the bytes stored of a storage type exceed `max_memory_store` /
//!   `max_file_store`, publishes to streams of that type get 10023 "insufficient resources";
//! - **account**: a message that would take the account past its `max_mem` / `max_file` gets
//!   10002 "resource limits exceeded for account".
//!
//! Reservations (a stream's `max_bytes` counted against the limits when the stream is created
//! or updated) are checked in `account_limits`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use jetway_storage::UsageCounter;

use super::errors::ApiError;
use super::stream::config::StorageType;

/// A limit that is not set.
const UNLIMITED: u64 = u64::MAX;

/// One value per storage type.
#[derive(Debug)]
pub struct ByStorage<T> {
    pub memory: T,
    pub file: T,
}

impl<T> ByStorage<T> {
    pub fn get(&self, storage: StorageType) -> &T {
        match storage {
            StorageType::Memory => &self.memory,
            StorageType::File => &self.file,
        }
    }
}

/// What the whole server stores of one storage type, and its limit.
#[derive(Debug)]
pub struct ServerQuota {
    pub used: Arc<UsageCounter>,
    pub limit: u64,
}

impl ServerQuota {
    pub fn new(limit: i64) -> Arc<ServerQuota> {
        // Negative only when a configured size overflowed `i64`: as good as no limit.
        Arc::new(ServerQuota { used: Arc::default(), limit: u64::try_from(limit).unwrap_or(u64::MAX) })
    }
}

/// What one account stores of one storage type, its limit, and the server's quota above it.
#[derive(Debug)]
pub struct Quota {
    /// Attached to every store of this account and storage type.
    pub used: Arc<UsageCounter>,
    /// The account's `max_mem` / `max_file`; [`UNLIMITED`] when not set. Atomic because the
    /// limits are set after the account's streams were loaded.
    limit: AtomicU64,
    server: Arc<ServerQuota>,
}

impl Quota {
    pub fn new(server: &Arc<ServerQuota>) -> Arc<Quota> {
        Arc::new(Quota {
            used: Arc::new(UsageCounter::with_parent(server.used.clone())),
            limit: AtomicU64::new(UNLIMITED),
            server: server.clone(),
        })
    }

    pub fn set_limit(&self, limit: Option<u64>) {
        self.limit.store(limit.unwrap_or(UNLIMITED), Ordering::Relaxed);
    }

    /// Whether a message taking `size` bytes may be stored (nats-server's order: the server's
    /// limit first, then the account's).
    pub fn admit(&self, size: u64) -> Result<(), ApiError> {
        if self.server.used.bytes() > self.server.limit {
            return Err(ApiError::insufficient_resources());
        }
        let limit = self.limit.load(Ordering::Relaxed);
        if limit != UNLIMITED && self.used.bytes().saturating_add(size) > limit {
            return Err(ApiError::account_resources_exceeded());
        }
        Ok(())
    }
}

/// A pair of [`Quota`]s for an account, one per storage type, under the server's.
pub fn account_quotas(server: &ByStorage<Arc<ServerQuota>>) -> ByStorage<Arc<Quota>> {
    ByStorage { memory: Quota::new(&server.memory), file: Quota::new(&server.file) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(result: Result<(), ApiError>) -> Option<u16> {
        result.err().map(|e| e.err_code)
    }

    #[test]
    fn the_account_limit_counts_the_new_message_and_the_server_limit_only_what_is_stored() {
        let server = ServerQuota::new(1_000);
        let a = Quota::new(&server);
        let b = Quota::new(&server);
        a.set_limit(Some(100));
        a.used.add(90);
        assert_eq!(code(a.admit(10)), None, "exactly at the limit is fine");
        assert_eq!(code(a.admit(11)), Some(10002));
        assert_eq!(code(b.admit(500)), None, "an unlimited account is not held by another's limit");
        b.used.add(911);
        assert_eq!(server.used.bytes(), 1_001);
        assert_eq!(code(b.admit(1)), Some(10023), "the server is over its limit");
        assert_eq!(code(a.admit(1)), Some(10023), "for every account");
        a.set_limit(None);
        b.used.sub(911);
        assert_eq!(code(a.admit(10_000)), None, "no limits left");
    }
}
