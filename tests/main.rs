//! End-to-end tests through real clients. One binary; each test starts its own server on
//! ephemeral loopback ports (see `harness`).

mod harness;

mod cli;
mod core_pubsub;
mod crash;
mod jetstream;
mod mappings;
mod monitor;
mod mqtt;
mod mqtt_persistence;
mod raw_protocol;
mod reload;
mod resilience;
mod security;
mod tls;
mod transports;
