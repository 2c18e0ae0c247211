//! The JetStream side of one account: its streams, their creation, deletion and reload.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::account_limits::{reservation, Reserved};
use super::consumer::config::{AckPolicy, ConsumerConfig};
use super::consumer::Consumer;
use super::errors::ApiError;
use super::stream::config::{StorageType, StreamConfig};
use super::stream::Stream;
use super::usage::{ByStorage, Quota};
use super::JetStream;
use crate::account::Account;

/// What `meta.json` holds for a stream or a consumer.
#[derive(Debug, Serialize, Deserialize)]
struct Meta<C> {
    config: C,
    created: i64,
}

pub struct JsAccount {
    pub js: Arc<JetStream>,
    pub account: Arc<Account>,
    dir: PathBuf,
    streams: RwLock<BTreeMap<String, Arc<Stream>>>,
    /// Itself, for the mirror and source tasks that look up origins by name.
    me: Weak<JsAccount>,
    /// The account block's JetStream limits (unlimited by default).
    limits: RwLock<super::account_limits::AccountLimits>,
    /// Bytes stored per storage type, checked on every publish.
    quotas: ByStorage<Arc<Quota>>,
    /// This account's `$JS.API` requests and errors (`/jsz` account details).
    pub api_stats: super::ApiStats,
}

/// Writes `meta.json` durably: temp file, fsync, rename, fsync the folder.
fn write_meta<T: Serialize>(dir: &Path, meta: &T) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join("meta.json.tmp");
    let bytes = serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?;
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join("meta.json"))?;
    std::fs::File::open(dir)?.sync_all()
}

fn read_meta<C: serde::de::DeserializeOwned>(dir: &Path) -> Option<Meta<C>> {
    let bytes = std::fs::read(dir.join("meta.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl JsAccount {
    pub fn new(js: Arc<JetStream>, account: Arc<Account>) -> Arc<JsAccount> {
        let dir = js.store_dir.join(account.name.as_ref()).join("streams");
        let quotas = super::usage::account_quotas(&js.usage);
        Arc::new_cyclic(|me| JsAccount {
            js,
            account,
            dir,
            streams: RwLock::new(BTreeMap::new()),
            me: me.clone(),
            limits: RwLock::default(),
            quotas,
            api_stats: super::ApiStats::default(),
        })
    }

    /// What the account's limits reserve (memory, storage); `None` where unlimited.
    pub fn reservations(&self) -> (Option<u64>, Option<u64>) {
        let limits = self.limits.read();
        (limits.max_memory, limits.max_storage)
    }

    pub fn set_limits(&self, limits: super::account_limits::AccountLimits) {
        self.quotas.memory.set_limit(limits.max_memory);
        self.quotas.file.set_limit(limits.max_storage);
        *self.limits.write() = limits;
    }

    /// Bytes reserved (`max_bytes`) by this account's streams of `storage`, but `except`.
    pub fn reserved(&self, storage: StorageType, except: Option<&str>) -> u64 {
        reserved_by(self.streams.read().values(), storage, except)
    }

    /// Checks stream `config`'s reservation against the account's and the server's limits.
    /// `own` are this account's streams; the caller holds `js.reservations`.
    fn check_reservation<'a>(
        &self,
        config: &StreamConfig,
        creating: bool,
        own: impl Iterator<Item = &'a Arc<Stream>>,
        elsewhere: u64,
    ) -> Result<(), ApiError> {
        let account = reserved_by(own, config.storage, Some(&config.name));
        let reserved = Reserved { account, server: elsewhere.saturating_add(account) };
        let server_limit = self.js.usage.get(config.storage).limit;
        self.limits.read().check_reservation(config, creating, reserved, server_limit)
    }

    pub fn stream(&self, name: &str) -> Result<Arc<Stream>, ApiError> {
        self.streams.read().get(name).cloned().ok_or_else(ApiError::stream_not_found)
    }

    /// The config of stream `name`, if there is one.
    fn stream_config(&self, name: &str) -> Option<StreamConfig> {
        let stream = self.streams.read().get(name).cloned();
        stream.map(|s| s.config())
    }

    pub fn streams(&self) -> Vec<Arc<Stream>> {
        self.streams.read().values().cloned().collect()
    }

    /// Creates a stream, or returns the existing one when the config is identical.
    /// The bool says whether it was created.
    pub fn create_stream(&self, config: StreamConfig) -> Result<(Arc<Stream>, bool), ApiError> {
        let config = config.normalize_in(&self.js.config_limits, &|name| self.stream_config(name))?;
        if config.sealed {
            return Err(ApiError::stream_invalid_config("stream configuration for create can not be sealed"));
        }
        let _reserving = self.js.reservations.lock();
        let elsewhere = self.js.reserved_elsewhere(&self.account.name, config.storage);
        let mut streams = self.streams.write();
        if let Some(existing) = streams.get(&config.name) {
            if existing.config() == config {
                return Ok((existing.clone(), false));
            }
            return Err(ApiError::stream_name_exists());
        }
        check_overlap(streams.values(), &config)?;
        self.limits.read().check_stream_count(streams.len())?;
        self.check_reservation(&config, true, streams.values(), elsewhere)?;
        let created = crate::time::now_nanos();
        let (stream, _) = self.open_stream(config, created, true)?;
        streams.insert(stream.name.clone(), stream.clone());
        drop(streams);
        stream.subscribe();
        stream.start_sourcing(self.me.clone(), &self.js.runtime);
        Ok((stream, true))
    }

    /// Opens the store of a stream and builds it (new, or reloaded from disk).
    /// Also returns the consumers found in the stream's shared consumer log (reload only).
    fn open_stream(
        &self,
        config: StreamConfig,
        created: i64,
        new: bool,
    ) -> Result<(Arc<Stream>, Vec<jetway_storage::RestoredConsumer>), ApiError> {
        let store_config = config.store_config(self.js.sync);
        let (store, dir): (Arc<dyn jetway_storage::StreamStore>, Option<PathBuf>) = match config.storage {
            StorageType::Memory => {
                (Arc::new(jetway_storage::MemStore::new(&self.js.engine, store_config)), None)
            }
            StorageType::File => {
                let dir = self.dir.join(&config.name);
                if new {
                    if dir.exists() {
                        let _ = std::fs::remove_dir_all(&dir);
                    }
                    write_meta(&dir, &Meta { config: config.clone(), created })
                        .map_err(ApiError::stream_create)?;
                }
                let store_config = jetway_storage::StreamConfig {
                    affinity: writer_affinity(&self.account.name, &config.name, StoreRole::Messages),
                    ..store_config
                };
                let store = jetway_storage::FileStore::open(&self.js.engine, &dir.join("msgs"), store_config)
                    .map_err(ApiError::stream_create)?;
                (Arc::new(store), Some(dir))
            }
        };
        let quota = self.quotas.get(config.storage).clone();
        store.track_usage(Some(quota.used.clone()));
        let shared_log = match &dir {
            Some(dir) if keeps_consumers_in_one_log(&config.name) => {
                let affinity = writer_affinity(&self.account.name, &config.name, StoreRole::ConsumerLog);
                let opened = jetway_storage::SharedConsumerLog::open_beside(
                    &self.js.engine,
                    dir,
                    self.js.sync,
                    affinity,
                )
                .map_err(ApiError::stream_create)?;
                if let Some(damage) = &opened.damage {
                    tracing::warn!(
                        stream = %config.name,
                        "consumer log damaged at offset {}: {} bytes dropped, the file was kept as {}",
                        damage.offset,
                        damage.bytes,
                        damage.saved_as.display()
                    );
                }
                Some(opened)
            }
            _ => None,
        };
        let stream = Stream::new(
            config,
            created,
            store,
            dir,
            self.account.clone(),
            self.js.stats.clone(),
            self.js.domain.clone(),
            self.js.server_name.clone(),
            quota,
        );
        let restored = match shared_log {
            Some(opened) => {
                let _ = stream.consumer_log.set(opened.log);
                opened.consumers
            }
            None => Vec::new(),
        };
        Ok((stream, restored))
    }

    /// Updates a stream's config (nats-server's update rules).
    pub fn update_stream(&self, config: StreamConfig) -> Result<Arc<Stream>, ApiError> {
        let config = config.normalize_in(&self.js.config_limits, &|name| self.stream_config(name))?;
        let stream = self.stream(&config.name)?;
        let old = stream.config();
        config.check_update(&old)?;
        check_overlap(self.streams.read().values().filter(|s| s.name != config.name), &config)?;
        let _reserving = self.js.reservations.lock();
        let elsewhere = self.js.reserved_elsewhere(&self.account.name, config.storage);
        self.check_reservation(&config, false, self.streams.read().values(), elsewhere)?;
        if let Some(dir) = &stream.dir {
            write_meta(dir, &Meta { config: config.clone(), created: stream.created })
                .map_err(ApiError::stream_general)?;
        }
        let resource = old.sources != config.sources;
        stream.update_config(config, self.js.sync)?;
        if resource {
            stream.start_sourcing(self.me.clone(), &self.js.runtime);
        }
        Ok(stream)
    }

    /// Deletes a stream, its consumers and its data.
    pub fn delete_stream(&self, name: &str) -> Result<(), ApiError> {
        let stream = self.streams.write().remove(name).ok_or_else(ApiError::stream_not_found)?;
        for consumer in stream.consumers.write().values() {
            consumer.delete();
        }
        stream.stop();
        // Its bytes no longer count against the account and the server.
        stream.store.track_usage(None);
        if let Some(dir) = &stream.dir {
            std::fs::remove_dir_all(dir).map_err(ApiError::stream_delete)?;
        }
        Ok(())
    }

    /// Creates (or updates) a consumer. `action`: "" create-or-update, "create", "update".
    pub fn create_consumer(
        &self,
        stream: &Arc<Stream>,
        config: ConsumerConfig,
        action: &str,
    ) -> Result<Arc<Consumer>, ApiError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let durable: jetway_storage::Completion = Box::new(move |result| {
            let _ = tx.send(result);
        });
        let consumer = self.create_consumer_then(stream, config, action, durable)?;
        // The API runs on its own thread: wait there until the consumer's config is on disk.
        match rx.recv() {
            Ok(Err(e)) => Err(ApiError::stream_general(e)),
            Ok(Ok(_)) | Err(_) => Ok(consumer),
        }
    }

    /// Creates or updates a consumer like [`JsAccount::create_consumer`]; `durable` fires once
    /// its config is on disk, so async callers need not block a thread on it.
    pub fn create_consumer_then(
        &self,
        stream: &Arc<Stream>,
        config: ConsumerConfig,
        action: &str,
        durable: jetway_storage::Completion,
    ) -> Result<Arc<Consumer>, ApiError> {
        let stream_config = stream.config();
        let config = config.normalize(&stream_config, &self.js.config_limits)?;
        let name = if !config.name.is_empty() {
            config.name.clone()
        } else if !config.durable_name.is_empty() {
            config.durable_name.clone()
        } else {
            super::consumer::ephemeral_name()
        };
        let mut consumers = stream.consumers.write();
        if let Some(existing) = consumers.get(&name) {
            if action == "create" && existing.config() != config_with_name(&config, &name) {
                return Err(ApiError::consumer_already_exists());
            }
            let current = existing.config();
            let mut update = config_with_name(&config, &name);
            update.pause_until = current.pause_until.clone();
            update.check_update(&current)?;
            // The same config again (a client re-creating its consumer at every start, an MQTT
            // session resumed) writes nothing.
            let unchanged = update == current;
            let meta = || Meta { config: update.clone(), created: existing.created };
            match (&existing.dir, stream.consumer_log.get()) {
                (Some(dir), _) => {
                    if !unchanged {
                        write_meta(dir, &meta()).map_err(ApiError::stream_general)?;
                    }
                    durable(Ok(0));
                }
                (None, Some(log)) if log.contains(&name) => {
                    let queued = if unchanged {
                        log.when_durable(durable)
                    } else {
                        log.set_meta(&name, meta_bytes(&meta())?, Some(durable))
                    };
                    queued.map_err(ApiError::stream_general)?;
                }
                // Memory consumers keep nothing on disk.
                (None, _) => durable(Ok(0)),
            }
            existing.update_config(update);
            return Ok(existing.clone());
        }
        if action == "update" {
            return Err(ApiError::consumer_does_not_exist());
        }
        if stream_config.max_consumers > 0 && consumers.len() as i64 >= stream_config.max_consumers {
            return Err(ApiError::max_consumers());
        }
        self.limits.read().check_new_consumer(consumers.len())?;
        if stream_config.retention == super::stream::config::RetentionPolicy::WorkQueue {
            let filters = config.filters();
            for other in consumers.values() {
                let other_filters = other.config().filters();
                if filters.is_empty() || other_filters.is_empty() {
                    return Err(ApiError::workqueue_multiple_unfiltered());
                }
                if filters.iter().any(|f| other_filters.iter().any(|g| jetway_subject::filters_overlap(f, g)))
                {
                    return Err(ApiError::workqueue_consumer_not_unique());
                }
            }
        }
        let config = config_with_name(&config, &name);
        let created = crate::time::now_nanos();
        let consumer =
            self.start_consumer(stream, config, name.clone(), created, false, None, Some(durable))?;
        consumers.insert(name, consumer.clone());
        Ok(consumer)
    }

    /// Starts a consumer: new, `restored` from its folder at startup, or with the `initial`
    /// state of a stream restore. `durable` (when given) fires once its config is on disk.
    #[allow(clippy::too_many_arguments)]
    fn start_consumer(
        &self,
        stream: &Arc<Stream>,
        config: ConsumerConfig,
        name: String,
        created: i64,
        restored: bool,
        initial: Option<&jetway_storage::ConsumerState>,
        durable: Option<jetway_storage::Completion>,
    ) -> Result<Arc<Consumer>, ApiError> {
        let policy = match config.ack_policy {
            AckPolicy::None => jetway_storage::AckPolicy::None,
            AckPolicy::All => jetway_storage::AckPolicy::All,
            AckPolicy::Explicit => jetway_storage::AckPolicy::Explicit,
        };
        let persist = stream.dir.is_some() && !config.mem_storage;
        let mut durable = durable;
        let (store, dir): (Arc<dyn jetway_storage::ConsumerStore>, Option<PathBuf>) =
            match (&stream.dir, persist, stream.consumer_log.get()) {
                (Some(_), true, Some(log)) => {
                    let meta = meta_bytes(&Meta { config: config.clone(), created })?;
                    let store =
                        log.add(&name, meta, policy, durable.take()).map_err(ApiError::stream_general)?;
                    (store, None)
                }
                (Some(stream_dir), true, None) => {
                    let dir = stream_dir.join("obs").join(&name);
                    if !restored {
                        write_meta(&dir, &Meta { config: config.clone(), created })
                            .map_err(ApiError::stream_general)?;
                    }
                    let store =
                        jetway_storage::FileConsumerStore::open(&self.js.engine, &dir, policy, self.js.sync)
                            .map_err(ApiError::stream_general)?;
                    (Arc::new(store), Some(dir))
                }
                _ => (Arc::new(jetway_storage::MemConsumerStore::new(policy)), None),
            };
        if let Some(durable) = durable {
            // A consumer folder is written synchronously above; memory consumers keep nothing.
            durable(Ok(0));
        }
        if let Some(state) = initial {
            store.update(state).map_err(ApiError::stream_general)?;
        }
        let restored = restored || initial.is_some();
        Ok(Consumer::start(stream, config, name, created, store, dir, restored, &self.js.consumer_scheduler))
    }

    /// Creates stream `config` from a snapshot: its store's byte stream and its consumers
    /// (see `api::snapshot` for the format).
    pub fn restore_stream(
        &self,
        config: StreamConfig,
        created: i64,
        store_snapshot: &[u8],
        consumers: Vec<(String, i64, ConsumerConfig, jetway_storage::ConsumerState)>,
    ) -> Result<Arc<Stream>, ApiError> {
        let config = config.normalize_in(&self.js.config_limits, &|name| self.stream_config(name))?;
        let mut streams = self.streams.write();
        if streams.contains_key(&config.name) {
            return Err(ApiError::stream_name_exists());
        }
        check_overlap(streams.values(), &config)?;
        let (stream, _) = self.open_stream(config, created, true)?;
        let restored = jetway_storage::snapshot::restore(&*stream.store, &mut &store_snapshot[..]);
        if let Err(e) = restored {
            stream.stop();
            stream.store.track_usage(None);
            if let Some(dir) = &stream.dir {
                let _ = std::fs::remove_dir_all(dir);
            }
            return Err(ApiError::stream_general(format!("restore failed: {e}")));
        }
        for (name, consumer_created, consumer_config, state) in consumers {
            match self.start_consumer(
                &stream,
                consumer_config,
                name.clone(),
                consumer_created,
                false,
                Some(&state),
                None,
            ) {
                Ok(c) => {
                    stream.consumers.write().insert(name, c);
                }
                Err(e) => tracing::warn!(stream = %stream.name, "can't restore consumer {name}: {e}"),
            }
        }
        streams.insert(stream.name.clone(), stream.clone());
        drop(streams);
        stream.notify_stored();
        stream.subscribe();
        stream.start_sourcing(self.me.clone(), &self.js.runtime);
        Ok(stream)
    }

    /// Loads every stream and consumer persisted for this account.
    pub fn load(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let dir = entry.path();
            let Some(meta) = read_meta::<StreamConfig>(&dir) else {
                tracing::warn!("skipping {}: no readable meta.json", dir.display());
                continue;
            };
            let (stream, shared_consumers) = match self.open_stream(meta.config, meta.created, false) {
                Ok(opened) => opened,
                Err(e) => {
                    tracing::error!("can't restore stream from {}: {e}", dir.display());
                    continue;
                }
            };
            let state = stream.store.state();
            if let Some(lost) = &state.lost {
                tracing::warn!(stream = %stream.name, "recovered with damage: {} messages, {} bytes lost", lost.msgs.len(), lost.bytes);
            }
            tracing::info!(stream = %stream.name, "Restored {} messages for stream '{} > {}'", state.msgs, self.account.name, stream.name);
            self.streams.write().insert(stream.name.clone(), stream.clone());
            stream.subscribe();
            stream.start_sourcing(self.me.clone(), &self.js.runtime);
            for restored in shared_consumers {
                let name = restored.name;
                let Ok(meta) = serde_json::from_slice::<Meta<ConsumerConfig>>(&restored.meta) else {
                    tracing::error!(stream = %stream.name, "can't restore consumer {name}: unreadable config");
                    continue;
                };
                let consumer = Consumer::start(
                    &stream,
                    meta.config,
                    name.clone(),
                    meta.created,
                    restored.consumer,
                    None,
                    true,
                    &self.js.consumer_scheduler,
                );
                stream.consumers.write().insert(name, consumer);
            }
            let Ok(consumers) = std::fs::read_dir(dir.join("obs")) else { continue };
            for entry in consumers.flatten() {
                let Some(meta) = read_meta::<ConsumerConfig>(&entry.path()) else { continue };
                let name = entry.file_name().to_string_lossy().into_owned();
                match self.start_consumer(&stream, meta.config, name.clone(), meta.created, true, None, None)
                {
                    Ok(c) => {
                        stream.consumers.write().insert(name, c);
                    }
                    Err(e) => tracing::error!("can't restore consumer {name}: {e}"),
                }
            }
        }
    }

    /// Totals for `$JS.API.INFO`: (memory bytes, storage bytes, streams, consumers).
    pub fn usage(&self) -> (u64, u64, usize, usize) {
        let mut memory = 0;
        let mut storage = 0;
        let mut consumers = 0;
        let streams = self.streams();
        for s in &streams {
            let bytes = s.store.state().bytes;
            match s.config().storage {
                StorageType::Memory => memory += bytes,
                StorageType::File => storage += bytes,
            }
            consumers += s.consumers.read().len();
        }
        (memory, storage, streams.len(), consumers)
    }

    pub fn stop(&self) {
        for stream in self.streams() {
            stream.stop();
        }
    }
}

/// Bytes reserved by `streams` of `storage`, leaving out the stream named `except`.
fn reserved_by<'a>(
    streams: impl Iterator<Item = &'a Arc<Stream>>,
    storage: StorageType,
    except: Option<&str>,
) -> u64 {
    streams
        .map(|s| s.config())
        .filter(|c| c.storage == storage && except != Some(c.name.as_str()))
        .map(|c| reservation(&c))
        .fold(0, u64::saturating_add)
}

/// Refuses `config` when its subjects overlap those of one of `others`.
fn check_overlap<'a>(
    others: impl Iterator<Item = &'a Arc<Stream>>,
    config: &StreamConfig,
) -> Result<(), ApiError> {
    for other in others {
        let other_subjects = other.config().subjects;
        if config
            .subjects
            .iter()
            .any(|s| other_subjects.iter().any(|o| jetway_subject::filters_overlap(s, o)))
        {
            return Err(ApiError::subjects_overlap());
        }
    }
    Ok(())
}

/// A stream's message store, or its shared consumer log.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StoreRole {
    Messages,
    ConsumerLog,
}

/// The writer thread of a stream's store. Setting up an MQTT session writes its record to
/// `$MQTT_sess` and its consumer to `$MQTT_msgs`' consumer log and waits for both: the two share
/// a writer (per account), so both records go out in one batch of one thread (measured: a fifth
/// less server CPU per session set up). Every other store takes the next writer in turn.
fn writer_affinity(account: &str, stream: &str, role: StoreRole) -> jetway_storage::Affinity {
    let session_setup = matches!(
        (stream, role),
        (crate::mqtt::jetstream_store::SESS_STREAM, StoreRole::Messages)
            | (crate::mqtt::jetstream_store::MSGS_STREAM, StoreRole::ConsumerLog)
    );
    if session_setup {
        jetway_storage::Affinity::named(&format!("mqtt session setup in {account}"))
    } else {
        jetway_storage::Affinity::Any
    }
}

/// Streams whose durable consumers share one log in the stream's folder instead of a folder
/// each: the MQTT gateway's, where every persistent session has a consumer on `$MQTT_msgs`
/// (a folder, files and fsyncs per session would limit session setup to about a thousand a
/// second, and cost a file descriptor per session).
fn keeps_consumers_in_one_log(stream: &str) -> bool {
    is_gateway_stream(stream)
}

/// The MQTT gateway's streams (`$MQTT_*`). Their consumers are the gateway's sessions', and the
/// gateway acknowledges them directly ([`super::consumer::Consumer::ack_directly`]) rather than
/// through a `$JS.ACK` subscription per session.
pub(crate) fn is_gateway_stream(stream: &str) -> bool {
    stream.starts_with("$MQTT_")
}

/// A consumer's config and creation time as its shared-log meta (the `meta.json` body).
fn meta_bytes(meta: &Meta<ConsumerConfig>) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(meta).map_err(|e| ApiError::stream_general(e.to_string()))
}

fn config_with_name(config: &ConsumerConfig, name: &str) -> ConsumerConfig {
    let mut c = config.clone();
    c.name = name.to_string();
    c
}

/// Messages looked at for cleanup when a consumer of an interest stream goes.
const CLEANUP_SCAN_MAX: usize = 100_000;

impl Stream {
    /// Removes a consumer (inactivity or API delete), with its persisted state.
    pub fn remove_consumer(&self, name: &str) -> bool {
        let Some(consumer) = self.consumers.write().remove(name) else { return false };
        let floor = consumer.info().ack_floor.stream_seq;
        consumer.delete();
        if let Some(dir) = &consumer.dir {
            let _ = std::fs::remove_dir_all(dir);
        } else if let Some(log) = self.consumer_log.get() {
            // Not there for memory consumers: nothing to remove then.
            let _ = log.remove(name, None);
        }
        if self.retention() == super::stream::config::RetentionPolicy::Interest {
            self.drop_messages_nobody_needs(&consumer.config().filters(), floor);
        }
        true
    }

    /// Interest retention after a consumer went: the messages it had not acknowledged that no
    /// remaining consumer needs are removed, as nats-server does (at most
    /// [`CLEANUP_SCAN_MAX`] looked at).
    fn drop_messages_nobody_needs(&self, filters: &[String], ack_floor: u64) {
        let filter = jetway_storage::SubjectFilter::new(filters);
        let mut seq = ack_floor + 1;
        for _ in 0..CLEANUP_SCAN_MAX {
            let Ok(msg) = self.store.load_next(&filter, seq) else { break };
            seq = msg.seq + 1;
            // The removed consumer is out of the interest index already.
            let needed = self.interest.interested(&msg.subject).iter().any(|c| !c.has_acked(msg.seq));
            if !needed {
                self.remove_acked(msg.seq);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::jetstream_store::{MSGS_STREAM, SESS_STREAM};
    use jetway_storage::Affinity;

    #[test]
    fn session_records_and_session_consumers_share_a_writer_per_account() {
        let sessions = writer_affinity("A", SESS_STREAM, StoreRole::Messages);
        assert_ne!(sessions, Affinity::Any);
        assert_eq!(writer_affinity("A", MSGS_STREAM, StoreRole::ConsumerLog), sessions);
        assert_ne!(writer_affinity("B", SESS_STREAM, StoreRole::Messages), sessions, "per account");
        // The messages themselves, and every other store, spread over the writers.
        assert_eq!(writer_affinity("A", MSGS_STREAM, StoreRole::Messages), Affinity::Any);
        assert_eq!(writer_affinity("A", "ORDERS", StoreRole::Messages), Affinity::Any);
        assert_eq!(writer_affinity("A", "ORDERS", StoreRole::ConsumerLog), Affinity::Any);
    }
}
