//! Sans-IO wire formats: bytes in, typed values out, and back. No sockets, no runtime.
//!
//! - [`nats`]: the NATS client protocol (parser for client ops, encoder for server ops, headers).
//! - [`mqtt`]: MQTT 3.1.1 and 5 (decoder for client packets, encoder, topic <-> subject rules).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

pub mod mqtt;
pub mod nats;
