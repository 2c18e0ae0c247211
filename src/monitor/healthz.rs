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

/// The `/healthz` document (also `$SYS.REQ.SERVER.PING.HEALTHZ`), or why the request is bad.
pub(super) fn body(core: &Core, params: &Params) -> Result<serde_json::Value, RequestError> {
    match check(core, params) {
        Ok(()) => Ok(json!({ "status": "ok" })),
        Err(Unhealthy::Request(e)) => Err(e),
        Err(Unhealthy::Unavailable(error)) => Ok(json!({ "status": "unavailable", "error": error })),
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
    // Validated above.
    let flag = |name| params.flag(name).unwrap_or(false);
    let js_enabled_only = flag("js-enabled-only") || flag("js-enabled");
    match &core.jetstream {
        None if js_enabled_only => Err(Unhealthy::Unavailable("JetStream not enabled".into())),
        None => Ok(()),
        // Enabled is all `js-enabled-only` asks; `js-server-only` skips per-asset checks
        // (there is no meta group on a single server, so it is then healthy).
        Some(_) if js_enabled_only || flag("js-server-only") => Ok(()),
        Some(js) => {
            for account in js.accounts() {
                for stream in account.streams() {
                    if !stream.store.is_writable() {
                        return Err(Unhealthy::Unavailable(format!(
                            "JetStream stream '{} > {}' is not current: store is poisoned by an I/O failure",
                            account.account.name, stream.name
                        )));
                    }
                }
            }
            Ok(())
        }
    }
}
