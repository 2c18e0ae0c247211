//! Jetway: a NATS-compatible messaging server with JetStream and an MQTT gateway.

pub mod config;
