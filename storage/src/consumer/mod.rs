//! Consumer stores: delivered and ack-floor sequences, pending acks, redelivery counts.
//!
//! `file.rs`: one consumer per folder and log file. `shared/`: many consumers of a stream in
//! one log file. `mem.rs`: memory only. `state.rs`: how deliveries and acks change a state;
//! `codec.rs`: the record bodies both logs share.

mod codec;
mod file;
mod mem;
mod shared;
mod state;

pub use file::FileConsumerStore;
pub use mem::MemConsumerStore;
pub use shared::{LogDamage, OpenedLog, RestoredConsumer, SharedConsumer, SharedConsumerLog};
