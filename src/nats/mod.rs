//! NATS client connections.
//!
//! - [`listener`]: accepts TCP connections, enforces `max_connections`, spawns a connection.
//! - [`connection`]: the per-connection task: reads and parses, applies ops, keeps the ping
//!   and auth deadlines, and runs the writer.
//! - [`client`]: what other tasks see of a connection ([`client::ClientShared`]): its outbound
//!   queue, subscriptions, counters and close signal.
//! - [`outbound`]: the outbound byte queue with its pending-bytes bound.
//! - [`ping`]: when the server PINGs a client (nats-server's rules).

pub mod client;
pub mod connection;
pub mod direct;
pub mod listener;
pub mod outbound;
pub mod ping;
