//! The store test suite: one binary, many modules.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod cache;
mod common;
mod conformance;
mod consumer;
mod consumer_model;
mod corruption;
mod crash_sim;
mod model;
mod prefill;
mod real_crash;
mod shared_log;
mod write_batch;
