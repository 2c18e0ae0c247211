//! HTTP monitoring endpoints (nats-server's field names). For now `/varz`, `/healthz`,
//! `/connz` and `/subsz`; the observability issue completes them.

mod varz;

use std::sync::Arc;

use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::server::Core;

pub async fn serve(core: Arc<Core>, listener: TcpListener, stop: CancellationToken) {
    let app = axum::Router::new()
        .route("/varz", get(varz::varz))
        .route("/healthz", get(varz::healthz))
        .route("/subsz", get(varz::subsz))
        .route("/connz", get(varz::connz))
        .with_state(core);
    let result = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
    if let Err(e) = result {
        tracing::error!("monitoring server failed: {e}");
    }
}
