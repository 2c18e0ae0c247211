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

/// A server configured by nats-server `.conf` text (which must load without warnings), on
/// the test harness's ports and store folder; MQTT on a random port.
pub async fn start_conf(conf: &str) -> TestServer {
    let loaded = Config::from_conf_str(conf, std::path::Path::new("test.conf")).expect("config loads");
    assert!(loaded.warnings.is_empty(), "warnings: {:?}", loaded.warnings);
    TestServer::start_with(|c| {
        let mut config = loaded.config;
        config.host = c.host.clone();
        config.port = c.port;
        config.http_port = 0;
        config.mqtt.host = c.mqtt.host.clone();
        config.mqtt.port = -1;
        config.jetstream.store_dir = c.jetstream.store_dir.clone();
        config.tls = c.tls.take().or(config.tls);
        *c = config;
    })
    .await
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

    /// The WebSocket listener, when enabled (`websocket.port`).
    pub fn ws_addr(&self) -> SocketAddr {
        self.handle.as_ref().and_then(|h| h.websocket_addr).expect("websocket enabled")
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

    /// Connects and logs in as `user` (verbose off), through the first PONG.
    pub async fn login(addr: SocketAddr, user: &str, pass: &str) -> Self {
        let mut raw = RawClient::connect(addr).await;
        let connect =
            format!("CONNECT {{\"user\":\"{user}\",\"pass\":\"{pass}\",\"verbose\":false}}\r\nPING\r\n");
        raw.send(connect.as_bytes()).await;
        raw.expect("PONG\r\n").await;
        raw
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

/// A CA and a server certificate for `localhost`/`127.0.0.1`, as PEM files in a temp folder;
/// client certificates on request.
pub struct TestPki {
    pub dir: tempfile::TempDir,
    pub ca: jetway::certs::Authority,
    pub ca_file: std::path::PathBuf,
    pub server_cert: std::path::PathBuf,
    pub server_key: std::path::PathBuf,
}

impl TestPki {
    pub fn new() -> Self {
        use jetway::certs::{Authority, Validity};
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = Authority::new("Test CA", Validity::days(1)).expect("CA");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &ca.issued.cert_pem).expect("write CA");
        let pki = TestPki {
            server_cert: dir.path().join("server-cert.pem"),
            server_key: dir.path().join("server-key.pem"),
            dir,
            ca,
            ca_file,
        };
        pki.reissue_server_cert();
        pki
    }

    /// Writes a new server certificate and key over the files; returns the certificate.
    pub fn reissue_server_cert(&self) -> jetway::certs::Issued {
        let hosts = ["localhost".to_string(), "127.0.0.1".to_string()];
        let issued = self.ca.server(&hosts, jetway::certs::Validity::days(1)).expect("server cert");
        std::fs::write(&self.server_cert, &issued.cert_pem).expect("write cert");
        std::fs::write(&self.server_key, &issued.key_pem).expect("write key");
        issued
    }

    /// A client certificate signed by this CA, written as `<file_stem>-cert.pem`/`-key.pem`.
    pub fn client_files(
        &self,
        name: &str,
        validity: jetway::certs::Validity,
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        write_client(&self.ca, self.dir.path(), name, validity)
    }

    /// A rustls client config (ring) trusting this CA, with a client certificate when
    /// `identity` names its files (`(cert, key)`).
    pub fn client_config(
        &self,
        identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
    ) -> rustls::ClientConfig {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.issued.cert_der.clone()).expect("CA");
        let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
        match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain =
                    vec![rustls::pki_types::CertificateDer::from_pem_file(cert).expect("client cert")];
                let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).expect("client key");
                builder.with_client_auth_cert(chain, key).expect("client auth")
            }
        }
    }

    /// Does a client TLS handshake (as `localhost`) over `stream` and returns the server's
    /// certificate.
    pub async fn served_certificate(&self, stream: TcpStream) -> rustls::pki_types::CertificateDer<'static> {
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(self.client_config(None)));
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let handshake = connector.connect(name, stream);
        let tls = tokio::time::timeout(Duration::from_secs(5), handshake)
            .await
            .expect("in time")
            .expect("handshake");
        let chain = tls.get_ref().1.peer_certificates().expect("server certificate");
        chain.first().expect("leaf").clone().into_owned()
    }

    /// The `tls {}` settings for this PKI (server authentication only).
    pub fn settings(&self) -> jetway::config::Tls {
        jetway::config::Tls {
            cert_file: Some(self.server_cert.clone()),
            key_file: Some(self.server_key.clone()),
            ca_file: Some(self.ca_file.clone()),
            ..jetway::config::Tls::default()
        }
    }
}

/// Writes a client certificate signed by `ca` into `dir`.
pub fn write_client(
    ca: &jetway::certs::Authority,
    dir: &std::path::Path,
    name: &str,
    validity: jetway::certs::Validity,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let issued = ca.client(name, validity).expect("client cert");
    let stem = format!("{name}-{}", rand::random::<u32>());
    let (cert, key) = (dir.join(format!("{stem}-cert.pem")), dir.join(format!("{stem}-key.pem")));
    std::fs::write(&cert, &issued.cert_pem).expect("write client cert");
    std::fs::write(&key, &issued.key_pem).expect("write client key");
    (cert, key)
}

impl TestServer {
    /// A server whose client port takes TLS with `pki`'s certificates; `edit` adjusts the
    /// config (e.g. `tls.verify`).
    pub async fn start_tls(pki: &TestPki, edit: impl FnOnce(&mut Config)) -> Self {
        let settings = pki.settings();
        Self::start_with(|c| {
            c.tls = Some(settings);
            edit(c);
        })
        .await
    }

    /// async-nats options that trust the test CA and require TLS.
    pub fn tls_options(&self, pki: &TestPki) -> async_nats::ConnectOptions {
        async_nats::ConnectOptions::new().require_tls(true).add_root_certificates(pki.ca_file.clone())
    }

    /// `nats://127.0.0.1:PORT` (the server certificate includes the IP).
    pub async fn tls_client(
        &self,
        options: async_nats::ConnectOptions,
    ) -> Result<async_nats::Client, async_nats::ConnectError> {
        tokio::time::timeout(Duration::from_secs(10), options.connect(self.url()))
            .await
            .expect("connect attempt finishes")
    }
}
