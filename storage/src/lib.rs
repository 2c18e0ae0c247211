//! Stream and consumer stores for Jetway: the storage under every JetStream stream and MQTT
//! session. Synchronous, no async runtime, no protocol knowledge; it owns its threads.
//!
//! # API
//!
//! - [`Engine`]: the shared threads (writer threads doing group commit, one expiry thread).
//!   Create one per server; every store is opened on it, on the next writer in turn or, with
//!   an [`Affinity`] key, on the writer every store with that key shares (stores written and
//!   awaited together then share batches). A [`CompletionScope`] may wrap each writer batch's
//!   completions; [`WriteBatch`] lets a thread perform its own `Interval`/`Never` writes.
//! - [`StreamStore`] (trait), implemented by [`MemStore`] and [`FileStore`]: `append` returns
//!   the sequence at once (the message is readable immediately) and reports durability later
//!   through a [`Completion`]; loads by sequence, last-by-subject and next-matching-filter;
//!   remove/erase, purge (all, filter, keep, up-to), compact, truncate; state, per-subject
//!   state, filtered state / pending counts; snapshot/[`snapshot::restore`].
//! - [`ConsumerStore`] (trait), implemented by [`MemConsumerStore`], [`FileConsumerStore`]
//!   (one folder and log per consumer) and [`SharedConsumer`]: delivered and ack-floor
//!   sequences, pending acks, redelivery counts.
//! - [`SharedConsumerLog`]: every consumer of a stream in one log file written through one
//!   channel: adding a consumer is one appended record (its completion fires once durable),
//!   all consumers' records share each fsync, and a consumer costs no file descriptor.
//! - [`Io`] / [`IoFile`]: the file-system backend; [`RealIo`] for production, [`SimIo`] for
//!   crash and fault-injection tests.
//! - [`UsageCounter`]: a byte total over many stores (quotas), kept current by each store
//!   it is attached to ([`StreamStore::track_usage`]).
//!
//! # Layout
//!
//! - `config.rs`, `message.rs`, `state.rs`, `error.rs`, `traits.rs`: the vocabulary;
//!   `usage.rs`: byte totals shared by stores.
//! - `core/`: what every store shares: `index.rs` (messages by sequence, sequences by subject,
//!   TTL deadlines), `seq_map.rs` (the by-sequence map: chunks of slots, appends at the end,
//!   tombstones compacted per chunk), `stream.rs` (sequences, limits, discard, purge, reads),
//!   `backend.rs` (what a backend provides), `store.rs` (the locked, `StreamStore`-implementing
//!   wrapper).
//! - `mem/`: the memory backend. `file/`: the file backend: `record.rs` and `block.rs` (the
//!   format), `recovery.rs` (open), `writer.rs` (storage threads, group commit, lazy
//!   records, prefill), `write_batch.rs` (writes done by the thread that made them, for
//!   policies without fsync-before-ack), `compact.rs` (block rewrites), `io.rs`/`sim.rs` (I/O
//!   backends), `store.rs` (the backend, with its read-ahead).
//! - `consumer/`: consumer stores: `file.rs` (one per folder), `shared/` (many in one log:
//!   `format.rs` the records and replay, `mod.rs` the log and its handles), `mem.rs`,
//!   `state.rs` (how deliveries and acks change a state), `codec.rs` (record bodies both logs
//!   share). `engine.rs`: threads. `snapshot.rs`: snapshot/restore.
//!
//! # Per-subject state
//!
//! The index keeps a hash map from subject to its sequences (inline for a subject with one
//! message, as in KV buckets and MQTT retained messages) and a [`jetway_subject::SubjectTree`]
//! of the same subjects. `load_last`, per-subject limits and literal-filter reads are O(1) or
//! O(log n) whatever the number of subjects; a wildcard read first scans a short window of
//! messages and then walks only the tree branches the filter can match.
//!
//! # Invariants
//!
//! - Sequences only grow (except `truncate`); timestamps never decrease within a stream.
//! - Every accepted append is readable at once; its completion fires exactly once, in append
//!   order per stream: under [`SyncPolicy::Always`] only after an fsync covers the record (and
//!   the folder fsync covering a new block file); under `Interval`/`Never` once the record is
//!   written to the OS. An append without a completion is written (and under `Always`
//!   fsynced) lazily, with the next batch or within 10 ms.
//! - A failed write or fsync poisons the store: later writes fail with
//!   [`StoreError::Poisoned`]; pending completions get the error; nothing more is acknowledged.
//! - A record on disk only affects messages in its own block or in earlier blocks, so deleting
//!   leading blocks whose messages are all removed never changes what recovery finds.
//! - Open never panics on any bytes: a torn tail is truncated, damage elsewhere is skipped and
//!   reported in [`StreamState::lost`] (a consumer log stops at damage instead: its records
//!   depend on those before them).
//!
//! # Threads and locks
//!
//! Each store is one `parking_lot::Mutex` held only for in-memory work (never across disk I/O;
//! a cold read does one `pread` of up to 32 KiB under it, kept to serve the reads after it).
//! Nested order, outermost first: store lock -> channel queue lock -> writer ready lock. The
//! writer thread takes the ready lock, releases it, then a channel's queue lock and, before
//! releasing that, its target lock (so whoever took the queued operations first also writes
//! them first). A thread ending a [`WriteBatch`] takes the same two locks in the same order to
//! perform its `Interval`/`Never` writes itself (no fsync: that stays on the writer threads).
//! The expiry thread takes its list lock, releases it, then each store's lock. Completions run
//! on the writer thread, or on the thread ending a `WriteBatch`, with no store lock held.
//! Consumer delivery and ack records are queued lazily (no writer wake-up; written within
//! 10 ms). A shared consumer log: log lock -> one consumer's slot lock -> channel queue lock
//! (a consumer's `state()` takes only its slot lock).
//!
//! # Space
//!
//! Removing a message writes a 24-byte tombstone (or a floor record when it was the first
//! message; consecutive floors coalesce into one). A block file is deleted once it is not the
//! block being appended to and every block before it is gone and it holds no live message, so
//! a stream trimmed from the front (limits, max age, compact, purge) reclaims its space at
//! once. A sealed block whose live messages fill less than half of it (and that is at least
//! half a block long) is rewritten without its dead message records by the writer thread
//! (`file/compact.rs`: `.tmp` file, fsync, rename, folder fsync), which is what keeps KV-style
//! streams with per-subject limits from growing without bound.
//!
//! # On-disk format (all integers little-endian)
//!
//! A stream is a folder of block files named `NNNNNNNNNN.blk` (block id, 10 zero-padded decimal
//! digits). Blocks are replayed in id order; the last one is appended to. A new block starts
//! when the current one would exceed `block_size`. Files ending in `.tmp` are ignored.
//!
//! Block header (40 bytes):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `JWBLOCK1` |
//! | 8 | 4 | block id (u32) |
//! | 12 | 4 | reserved, zero |
//! | 16 | 8 | floor: every sequence below was removed when the block was started (u64) |
//! | 24 | 8 | last sequence assigned when the block was started (u64) |
//! | 32 | 8 | xxh3-64 of bytes 0..32 |
//!
//! Then records, back to back, and possibly zeros to the end of the file: under the `Always`
//! sync policy the block being appended to, once it holds 4 KiB, is prefilled with zeros up to
//! 1 MiB ahead of its records (never past `block_size`), and a sealed block is cut to its records, so only a crash can leave zeros
//! after a sealed block's last record. A length field of zero ends a block's records when only
//! zeros follow. Every record:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | total record length L, including this field and the checksum (u32, >= 16) |
//! | 4 | 1 | kind |
//! | 5 | 1 | flags (bit 0: the message has headers) |
//! | 6 | 2 | reserved, zero |
//! | 8 | L-16 | body |
//! | L-8 | 8 | xxh3-64 of bytes 0..L-8 |
//!
//! Kinds and bodies:
//!
//! - 1 message: seq (u64), timestamp ns (i64), TTL deadline ns or 0 (i64), subject length
//!   (u16), headers length (u32), payload length (u32), subject, headers, payload. L = 50 +
//!   lengths. What a message counts for in `bytes` and `max_bytes` is not L but
//!   nats-server's file store formula (see `SizeModel`), so limits behave as there.
//! - 2 tombstone: seq (u64): that message was removed.
//! - 3 floor: seq (u64): every message below it was removed.
//! - 4 truncate: seq (u64): every message above it was removed; the last sequence is seq.
//! - 5 padding: any body; an erased message is overwritten in place by padding.
//! - 16 consumer delivered: consumer seq, stream seq, delivery count, timestamp (4 x u64).
//! - 17 consumer ack: consumer seq, stream seq (2 x u64).
//! - 18 consumer full state: delivered (2 x u64), ack floor (2 x u64), pending count (u64) then
//!   per pending message stream seq, consumer seq, timestamp (3 x u64), redelivered count
//!   (u64) then per entry stream seq and count (2 x u64).
//! - 32, 33, 34 shared delivered, ack, full state: consumer id (u64), then the body of 16, 17
//!   or 18.
//! - 35 shared log header: magic `JWCLOG01` (8 bytes), next consumer id (u64). L = 32.
//! - 36 consumer added: id (u64), ack policy (u8: 0 none, 1 all, 2 explicit), name length
//!   (u16), name (UTF-8), meta (the rest of the body: the caller's bytes, kept as given).
//! - 37 meta replaced: id (u64), meta (the rest of the body).
//! - 38 consumer removed: id (u64).
//!
//! A [`FileConsumerStore`] is a folder holding `consumer.log`: records 16-18 of one consumer
//! (a full state, then deliveries and acks), rewritten as one full state (via
//! `consumer.log.tmp`) when it outgrows four times the last full state and 64 KiB.
//!
//! A [`SharedConsumerLog`] is `consumers.log` in the folder it is given (normally the stream's):
//! a header (35), then records 32-38 of any of its consumers, in the order they were applied.
//! Ids are given by the log, start at 1 and are never reused (the header carries the next
//! one across compactions; only ids that damage cut off may come again). Replay: the header must come first and only there; an add needs an
//! unused id and name, every other record a live id. Replay stops at the first record that does
//! not decode or does not fit: if no valid record follows, it is a torn tail and the file is
//! cut there; otherwise it is damage: the file is first copied to
//! `consumers.log.damaged-N`, then cut, and open reports it ([`LogDamage`]). Compaction
//! rewrites the file as header + (add, full state) per live consumer via `consumers.log.tmp`
//! (fsync, rename, folder fsync) once the file is longer than four times that image and
//! 64 KiB.
//!
//! Snapshots use the same message records (see [`snapshot`]).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

mod config;
mod consumer;
mod core;
mod engine;
mod error;
mod file;
mod filter;
mod mem;
mod message;
pub mod snapshot;
mod state;
mod traits;
mod usage;

pub use config::{DiscardPolicy, StreamConfig, SyncPolicy, DEFAULT_BLOCK_SIZE};
pub use consumer::{
    FileConsumerStore, LogDamage, MemConsumerStore, OpenedLog, RestoredConsumer, SharedConsumer,
    SharedConsumerLog,
};
pub use core::Store;
pub use engine::{Affinity, CompletionScope, Engine, EngineConfig, SyncSnapshot, SYNC_BUCKETS_US};
pub use error::{Result, StoreError};
pub use file::io::{Io, IoFile, RealIo};
pub use file::sim::{CrashMode, SimIo};
pub use file::{FileBackend, FileStore, WriteBatch, MAX_SYNC_BATCH_MSGS};
pub use filter::SubjectFilter;
pub use mem::{MemBackend, MemStore};
pub use message::{now_nanos, stored_size_in, NewMessage, SizeModel, StoredMessage};
pub use state::{LostData, StreamState, SubjectState};
pub use traits::{
    AckPolicy, Completion, ConsumerState, ConsumerStore, MarkerListener, PendingAck, PurgeOptions,
    SequencePair, StreamStore,
};
pub use usage::UsageCounter;
