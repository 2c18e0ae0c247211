//! `/routez`: cluster routes. Jetway has no clustering yet, so the list is always empty; the
//! endpoint exists so tools that poll it keep working.

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
