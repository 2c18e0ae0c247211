//! JetStream: persistent streams and consumers behind the `$JS.API.>` request API.
//!
//! - [`JetStream`]: the engine of one server: storage threads, limits, and the streams of each
//!   account ([`account::JsAccount`]).
//! - [`stream`]: a stream's config, write path (dedup, expected-* headers, pub acks), info, and
//!   the tasks feeding mirrors and sourced streams (`stream::sourcing`).
//! - [`consumer`]: consumers, their delivery task, acks, pull requests and push flow control.
//! - [`api`]: the request handlers, one file per group of endpoints, fed by one
//!   `$JS.API.>` subscription per account through a bounded queue (batched direct gets and
//!   snapshot/restore, whose format is documented in `api::snapshot`, answer with several
//!   messages).
//! - [`errors`]: nats-server's error table. [`json`]: the API's JSON conventions.
//! - [`limits`] (server), [`account_limits`] (per account, reservations) and [`usage`] (bytes
//!   stored, checked on every publish): nats-server's storage limits.
//!
//! On disk (`store_dir/jetstream/<account>/streams/<stream>/`): `meta.json` (config and creation
//! time), `msgs/` (the file store), `obs/<consumer>/` (`meta.json` and the consumer store).

pub mod account;
pub mod account_limits;
pub mod api;
pub mod consumer;
pub mod errors;
pub mod json;
pub mod limits;
pub mod not_enabled;
pub mod stream;
pub mod usage;
pub mod versioning;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use self::account::JsAccount;
use crate::account::Account;
use crate::config::{JetStream as JetStreamConfig, SyncInterval};
use crate::stats::ServerStats;

/// The JetStream API level this server implements (reported as `api_lvl` / `api.level`).
/// Level 1 is nats-server 2.11: per-message TTL and consumer pause.
/// Storage writer (group commit) threads.
const STORE_WRITER_THREADS: usize = 4;

pub const API_LEVEL: u32 = 1;

/// Why JetStream could not start.
#[derive(Debug, thiserror::Error)]
pub enum JetStreamError {
    #[error("can't create JetStream store directory {path}: {source}")]
    StoreDir { path: PathBuf, source: std::io::Error },
    #[error("can't start storage threads: {0}")]
    Engine(std::io::Error),
}

/// Counters of the API (`$JS.API.INFO` `api`).
#[derive(Debug, Default)]
pub struct ApiStats {
    pub total: AtomicU64,
    pub errors: AtomicU64,
}

/// The JetStream engine of one server.
pub struct JetStream {
    pub store_dir: PathBuf,
    pub sync: jetway_storage::SyncPolicy,
    pub domain: Option<String>,
    pub limits: limits::Limits,
    /// `limits {}`: caps on what stream and consumer configs may ask for.
    pub config_limits: crate::config::JetStreamLimits,
    pub engine: jetway_storage::Engine,
    pub api_stats: ApiStats,
    pub server_name: String,
    pub stats: Arc<ServerStats>,
    pub runtime: tokio::runtime::Handle,
    /// When consumers run (delivery tasks only while busy) and their deadlines.
    pub consumer_scheduler: Arc<consumer::scheduler::Scheduler>,
    /// Bytes stored per storage type, against `max_memory_store` / `max_file_store`.
    pub usage: usage::ByStorage<Arc<usage::ServerQuota>>,
    /// Held while a stream's reservation is checked and recorded (create, update), so two
    /// accounts can't both take the last free bytes of the server. Taken before any
    /// `JsAccount.streams` lock.
    pub(crate) reservations: Mutex<()>,
    accounts: Mutex<HashMap<String, Arc<JsAccount>>>,
    /// The server, for what advisories say about the clients that asked (set once it runs).
    pub(crate) core: std::sync::OnceLock<std::sync::Weak<crate::server::Core>>,
}

impl JetStream {
    /// Starts the engine. Streams are loaded per account by [`JetStream::enable_account`].
    pub fn start(
        config: &JetStreamConfig,
        store_dir: PathBuf,
        server_name: String,
        stats: Arc<ServerStats>,
    ) -> Result<Arc<JetStream>, JetStreamError> {
        let root = store_dir.join("jetstream");
        std::fs::create_dir_all(&root)
            .map_err(|source| JetStreamError::StoreDir { path: root.clone(), source })?;
        // Several writer threads, so that fsyncs of different files run side by side: an MQTT QoS 2
        // delivery to a persistent session touches three (the message stream, the session's
        // consumer, the PUBREL markers), and one thread would fsync them one after another
        // (measured: QoS 2 to a persistent session 15k -> 23k msgs/s with 4). Each store
        // stays on one thread, so a single stream's group commit is unchanged.
        let engine = jetway_storage::Engine::new(jetway_storage::EngineConfig {
            writer_threads: STORE_WRITER_THREADS,
            completion_scope: Some(Arc::new(crate::router::deliver::ReplyBatch { stats: stats.clone() })),
            ..Default::default()
        })
        .map_err(JetStreamError::Engine)?;
        let sync = match config.sync_interval {
            SyncInterval::Always => jetway_storage::SyncPolicy::Always,
            SyncInterval::Every(d) => jetway_storage::SyncPolicy::Interval(d),
        };
        let limits = limits::Limits::derive(config, &root);
        let usage = usage::ByStorage {
            memory: usage::ServerQuota::new(limits.max_memory),
            file: usage::ServerQuota::new(limits.max_storage),
        };
        Ok(Arc::new(JetStream {
            store_dir: root,
            sync,
            domain: config.domain.clone(),
            limits,
            config_limits: config.limits.clone(),
            engine,
            api_stats: ApiStats::default(),
            server_name,
            stats,
            runtime: tokio::runtime::Handle::current(),
            consumer_scheduler: consumer::scheduler::Scheduler::start(tokio::runtime::Handle::current()),
            usage,
            reservations: Mutex::new(()),
            accounts: Mutex::new(HashMap::new()),
            core: std::sync::OnceLock::new(),
        }))
    }

    /// Enables JetStream for `account`: loads its streams and subscribes its API.
    pub fn enable_account(self: &Arc<Self>, account: &Arc<Account>) -> Arc<JsAccount> {
        if let Some(existing) = self.accounts.lock().get(account.name.as_ref()) {
            return existing.clone();
        }
        let js_account = JsAccount::new(self.clone(), account.clone());
        js_account.load();
        api::subscribe(self, &js_account);
        self.accounts.lock().insert(account.name.to_string(), js_account.clone());
        js_account
    }

    pub fn account(&self, name: &str) -> Option<Arc<JsAccount>> {
        self.accounts.lock().get(name).cloned()
    }

    pub fn accounts(&self) -> Vec<Arc<JsAccount>> {
        self.accounts.lock().values().cloned().collect()
    }

    /// Bytes reserved by streams of `storage` in every account but `except`.
    pub(crate) fn reserved_elsewhere(&self, except: &str, storage: stream::config::StorageType) -> u64 {
        self.accounts()
            .iter()
            .filter(|a| a.account.name.as_ref() != except)
            .map(|a| a.reserved(storage, None))
            .fold(0, u64::saturating_add)
    }

    /// Stops every stream and consumer and flushes the stores (final fsync).
    pub fn shutdown(&self) {
        for account in self.accounts() {
            account.stop();
        }
        self.consumer_scheduler.shutdown();
    }

    /// Counts a request as it arrives (so `$JS.API.INFO` includes itself, as nats-server's does).
    pub(crate) fn count_request(&self) {
        self.api_stats.total.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_error(&self) {
        self.api_stats.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// nats-server's `getHash`: sha256 of `name`, its first eight bytes as base-62 digits (the
/// MQTT gateway's session and message subjects, an external source's identity).
pub fn short_hash(name: &str) -> String {
    use sha2::{Digest, Sha256};
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let digest = Sha256::digest(name.as_bytes());
    digest.iter().take(8).map(|b| char::from(DIGITS[usize::from(b % 62)])).collect()
}

/// A unique id for advisories and generated names (22 base-62 characters, like a NUID).
pub fn new_id() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..22)
        .map(|_| char::from(ALPHABET.get(rand::random_range(0..ALPHABET.len())).copied().unwrap_or(b'x')))
        .collect()
}
