//! `/healthz`: 200 `{"status":"ok"}` while the server accepts clients.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::response::{self, Params, RequestError};
use crate::server::Core;

pub async fn healthz(
    State(core): State<Arc<Core>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match check(&core, &Params(query)) {
        Ok(()) => response::ok(&json!({ "status": "ok" })),
        Err(Unhealthy::Request(e)) => e.into_response(),
        Err(Unhealthy::Unavailable(error)) => response::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "status": "unavailable", "error": error }),
        ),
    }
}

enum Unhealthy {
    Request(RequestError),
    Unavailable(String),
}

fn check(core: &Core, params: &Params) -> Result<(), Unhealthy> {
    // nats-server's parameters are all accepted (and checked) so probes written for it work
    // unchanged.
    for flag in ["js-enabled", "js-enabled-only", "js-server-only", "js-meta-only", "details"] {
        params.flag(flag).map_err(Unhealthy::Request)?;
    }
    if core.stop_accepting.is_cancelled() {
        return Err(Unhealthy::Unavailable("server is shutting down".into()));
    }
    // JetStream readiness plugs in here: once the engine exists, a `Core` hook reports whether
    // it is enabled and current (and, with `account`/`stream`/`consumer`, whether those assets
    // are healthy). Until then JetStream checks have nothing to fail on, so they pass, as on a
    // nats-server without JetStream.
    Ok(())
}
