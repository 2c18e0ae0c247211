//! Jetway: a NATS-compatible messaging server with JetStream and an MQTT gateway.
//!
//! Layout (see DESIGN.md): [`server`] assembles a [`server::Core`] (router, accounts,
//! counters) and its listeners; [`nats`] holds client connections; [`router`] decides who
//! receives a message; [`monitor`] serves the HTTP endpoints; [`config`] reads TOML and
//! nats-server `.conf` files; [`tls`] builds and reloads TLS acceptors; [`websocket`] serves
//! NATS and MQTT over WebSocket; [`certs`] makes development certificates. Tests and the binary both start a server with [`run`].

pub mod account;
pub mod certs;
pub mod config;
pub mod jetstream;
pub mod latch;
pub mod logging;
pub mod monitor;
pub mod mqtt;
pub mod nats;
pub mod router;
pub mod server;
pub mod stats;
pub mod time;
pub mod tls;
pub mod websocket;

pub use config::Config;
pub use server::{run, ServerHandle};
