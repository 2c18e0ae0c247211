//! `/routez`, `/gatewayz`, `/leafz`: cluster routes, gateways and leaf nodes. Jetway has no
//! clustering yet, so they are always empty; the endpoints exist (with nats-server's shapes)
//! so tools that poll them keep working.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::response::Response;
use serde_json::json;

use super::response::{self, rfc3339};
use crate::server::Core;

pub async fn routez(State(core): State<Arc<Core>>) -> Response {
    response::ok(&json!({
        "server_id": core.server_id,
        "server_name": core.server_name,
        "now": rfc3339(SystemTime::now()),
        "num_routes": 0,
        "routes": [],
    }))
}

pub async fn gatewayz(State(core): State<Arc<Core>>) -> Response {
    response::ok(&json!({
        "server_id": core.server_id,
        "now": rfc3339(SystemTime::now()),
        "outbound_gateways": {},
        "inbound_gateways": {},
    }))
}

pub async fn leafz(State(core): State<Arc<Core>>) -> Response {
    response::ok(&json!({
        "server_id": core.server_id,
        "now": rfc3339(SystemTime::now()),
        "leafnodes": 0,
        "leafs": [],
    }))
}
