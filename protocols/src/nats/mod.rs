//! The NATS client protocol.
