//! A consumer's state in memory.

use parking_lot::Mutex;

use crate::consumer::state;
use crate::error::Result;
use crate::traits::{AckPolicy, ConsumerState, ConsumerStore};

/// Consumer state kept in memory only.
#[derive(Debug, Default)]
pub struct MemConsumerStore {
    policy: AckPolicy,
    state: Mutex<ConsumerState>,
}

impl MemConsumerStore {
    /// An empty consumer state.
    pub fn new(policy: AckPolicy) -> Self {
        MemConsumerStore { policy, state: Mutex::default() }
    }
}

impl ConsumerStore for MemConsumerStore {
    fn update_delivered(&self, dseq: u64, sseq: u64, dc: u64, ts: i64) -> Result<()> {
        state::delivered(&mut self.state.lock(), self.policy, dseq, sseq, dc, ts);
        Ok(())
    }
    fn update_acks(&self, dseq: u64, sseq: u64) -> Result<()> {
        state::acked(&mut self.state.lock(), self.policy, dseq, sseq);
        Ok(())
    }
    fn update(&self, state: &ConsumerState) -> Result<()> {
        *self.state.lock() = state.clone();
        Ok(())
    }
    fn state(&self) -> ConsumerState {
        self.state.lock().clone()
    }
    fn sync(&self) -> Result<()> {
        Ok(())
    }
    fn stop(&self) -> Result<()> {
        Ok(())
    }
}
