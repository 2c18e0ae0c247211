//! JetStream through async-nats' own JetStream, KV and Object Store APIs.

mod api;
mod basics;
mod consumers;
mod direct;
mod flow_control;
mod kv_objects;
mod priority_groups;
mod publish;
mod restart;
mod snapshot;
mod sourcing;
mod streams;

use async_nats::jetstream;

use crate::harness::TestServer;

pub async fn js(server: &TestServer) -> jetstream::Context {
    jetstream::new(server.client().await)
}

/// The JetStream error code of an async-nats error, found in its debug text.
pub fn err_code<E: std::fmt::Debug>(e: &E) -> Option<u64> {
    let text = format!("{e:?}");
    let at = text.find("ErrorCode(")? + "ErrorCode(".len();
    text.get(at..)?.split(')').next()?.parse().ok()
}
