//! Accepts NATS client connections.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::BytesMut;
use jetway_protocols::nats::encode;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::client::{ClientShared, CloseReason};
use crate::server::Core;

/// Accepts until the core's listeners are stopped (shutdown or lame-duck mode).
pub async fn accept_loop(core: Arc<Core>, listener: TcpListener) {
    accept_each(&core.clone(), listener, "client", |stream, addr| {
        let id = core.next_client_id();
        core.stats.total_connections.fetch_add(1, Ordering::Relaxed);
        let client =
            Arc::new(ClientShared::new(id, addr, core.config.max_pending as usize, core.stats.clone()));
        if !core.register(&client) {
            // Over max_connections: INFO then the error, as nats-server does, then close.
            let mut buf = BytesMut::new();
            encode::info(&mut buf, &core.client_info(id, addr.ip()));
            encode::err(&mut buf, "maximum connections exceeded");
            let mut stream = stream;
            tokio::spawn(async move {
                let _ = stream.write_all(&buf).await;
                let _ = stream.shutdown().await;
            });
            client.close(CloseReason::MaxConnectionsExceeded);
            return;
        }
        tracing::debug!(cid = id, %addr, "client connection created");
        let (reader, writer) = stream.into_split();
        core.tasks.spawn(super::connection::serve(core.clone(), client, reader, writer));
    })
    .await;
}

/// Accepts connections until the core's listeners are stopped, handing each (with
/// `TCP_NODELAY` set) to `handle`. Shared by the NATS and MQTT listeners.
pub(crate) async fn accept_each(
    core: &Core,
    listener: TcpListener,
    what: &str,
    mut handle: impl FnMut(TcpStream, SocketAddr),
) {
    let stop = core.stop_accepting.clone();
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::error!("error accepting {what} connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let _ = stream.set_nodelay(true);
        handle(stream, addr);
    }
}
