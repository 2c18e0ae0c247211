//! Test servers and a raw protocol client.

use std::net::SocketAddr;
use std::time::Duration;

use jetway::{Config, ServerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A server on ephemeral loopback ports with its own store folder.
pub struct TestServer {
    pub handle: Option<ServerHandle>,
    pub addr: SocketAddr,
    /// The MQTT listener, when enabled (see [`TestServer::start_mqtt`]).
    pub mqtt_addr: Option<SocketAddr>,
    /// Store folder, removed when the server is dropped.
    pub _dir: tempfile::TempDir,
}

/// A config for tests: loopback, random NATS port, monitoring and MQTT off, temp store.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut c = Config {
        host: "127.0.0.1".into(),
        port: -1,
        http_host: "127.0.0.1".into(),
        http_port: 0,
        ..Config::default()
    };
    c.mqtt.port = 0;
    c.mqtt.host = "127.0.0.1".into();
    c.jetstream.store_dir = Some(dir.join("js"));
    c
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(edit: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path());
        edit(&mut config);
        let handle = jetway::run(config).await.expect("server starts");
        let addr = handle.nats_addr;
        let mqtt_addr = handle.mqtt_addr;
        TestServer { handle: Some(handle), addr, mqtt_addr, _dir: dir }
    }

    /// A server with MQTT on a random port too.
    pub async fn start_mqtt() -> Self {
        Self::start_with(|c| c.mqtt.port = -1).await
    }

    pub fn mqtt_addr(&self) -> SocketAddr {
        self.mqtt_addr.expect("MQTT enabled")
    }

    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url()).await.expect("client connects")
    }

    pub fn core(&self) -> &std::sync::Arc<jetway::server::Core> {
        self.handle.as_ref().expect("running").core()
    }

    pub async fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.core().stop_accepting.cancel();
            for c in h.core().clients() {
                c.close(jetway::nats::client::CloseReason::ServerShutdown);
            }
        }
    }
}

/// A client speaking raw protocol bytes, for exact wire checks.
pub struct RawClient {
    pub stream: TcpStream,
    pub received: Vec<u8>,
}

impl RawClient {
    /// Connects and reads the INFO line.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut c = RawClient { stream, received: Vec::new() };
        c.expect("INFO ").await;
        c.expect("\r\n").await;
        c
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Reads until `needle` has been received (and consumes through it). Panics after 5 s.
    pub async fn expect(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(pos) = find(&self.received, needle.as_bytes()) {
                let upto = pos + needle.len();
                let seen: Vec<u8> = self.received.drain(..upto).collect();
                return String::from_utf8_lossy(&seen).into_owned();
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "timed out waiting for {needle:?}; got {:?}",
                        String::from_utf8_lossy(&self.received)
                    )
                })
                .expect("read");
            assert!(
                n > 0,
                "closed while waiting for {needle:?}; got {:?}",
                String::from_utf8_lossy(&self.received)
            );
            self.received.extend_from_slice(&buf[..n]);
        }
    }

    /// Waits for the server to close the connection; returns everything received.
    pub async fn expect_closed(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let mut buf = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => panic!("not closed; got {:?}", String::from_utf8_lossy(&self.received)),
                Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&self.received).into_owned(),
                Ok(Ok(n)) => self.received.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Asserts nothing arrives within `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        let mut buf = [0u8; 4096];
        if let Ok(Ok(n)) = tokio::time::timeout(wait, self.stream.read(&mut buf)).await {
            panic!("unexpected data: {:?}", String::from_utf8_lossy(&buf[..n]));
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
