//! Consumer stores: delivered and ack-floor sequences, pending acks, redelivery counts.

mod file;
mod mem;
mod state;

pub use file::FileConsumerStore;
pub use mem::MemConsumerStore;
