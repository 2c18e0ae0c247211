//! Sans-IO wire formats: bytes in, typed values out, and back. No sockets, no runtime.
//!
//! - [`nats`]: the NATS client protocol (parser for client ops, encoder for server ops, headers).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

pub mod nats;
