//! The WebSocket listener (NATS and MQTT over `ws://` and `wss://`) and TLS on the MQTT port,
//! through async-nats, rumqttc and raw bytes. Certificates come from `TestPki` (rcgen).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jetway::certs::Validity;
use jetway::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{TestPki, TestServer};
use crate::mqtt::{v4_start, V4};

const WAIT: Duration = Duration::from_secs(5);

/// A server with MQTT and a plain `ws://` listener on random loopback ports; `edit` goes last.
async fn ws_server(edit: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::start_with(|c| {
        c.mqtt.port = -1;
        c.websocket.host = "127.0.0.1".into();
        c.websocket.port = -1;
        c.websocket.no_tls = true;
        edit(c);
    })
    .await
}

/// `edit` on top of a `.conf` text's users and accounts.
fn with_conf(conf: &str, c: &mut Config) {
    let loaded = Config::from_conf_str(conf, Path::new("transports.conf")).expect("config loads");
    assert!(loaded.warnings.is_empty(), "warnings: {:?}", loaded.warnings);
    c.authorization = loaded.config.authorization;
    c.accounts = loaded.config.accounts;
}

fn ws_url(server: &TestServer) -> String {
    format!("ws://{}", server.ws_addr())
}

async fn next_msg(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(WAIT, sub.next()).await.expect("message in time").expect("subscription open")
}

/// Returns once the server has processed everything `client` sent before: async-nats'
/// `flush` only empties the client's buffer, so a request nobody answers (503 no responders)
/// is the round trip.
async fn barrier(client: &async_nats::Client) {
    let request = client.request("barrier.nobody.listens", "".into());
    let _ = tokio::time::timeout(WAIT, request).await.expect("no-responders answer in time");
}

/// Publishes on `subject` from `publisher` and checks that `subscriber` receives it.
async fn assert_delivers(publisher: &async_nats::Client, subscriber: &async_nats::Client, subject: &str) {
    let mut sub = subscriber.subscribe(subject.to_string()).await.expect("subscribe");
    barrier(subscriber).await;
    publisher.publish(subject.to_string(), "hello".into()).await.expect("publish");
    publisher.flush().await.expect("flush");
    assert_eq!(next_msg(&mut sub).await.payload.as_ref(), b"hello");
}

// ---- rumqttc over WebSocket and TLS --------------------------------------------------------

/// rumqttc 3.1.1 options for MQTT over WebSocket (`ws://HOST:PORT/mqtt`).
fn mqtt_ws_options(addr: SocketAddr, id: &str) -> rumqttc::MqttOptions {
    let mut opts = rumqttc::MqttOptions::new(id, format!("ws://{addr}/mqtt"), addr.port());
    opts.set_transport(rumqttc::Transport::Ws);
    opts.set_keep_alive(Duration::from_secs(30));
    opts
}

/// rumqttc 3.1.1 options for MQTT over TLS, trusting `pki`'s CA, with a client certificate
/// when `identity` names one (`(cert file, key file)`).
fn mqtt_tls_options(
    addr: SocketAddr,
    id: &str,
    pki: &TestPki,
    identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
) -> rumqttc::MqttOptions {
    let mut opts = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_transport(rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Rustls(Arc::new(
        pki.client_config(identity),
    ))));
    opts
}

/// Connects and waits for the CONNACK: `Ok` with the client, or the connection error's text.
async fn mqtt_connect(opts: rumqttc::MqttOptions) -> Result<V4, String> {
    let mut client = v4_start(opts);
    loop {
        let event = tokio::time::timeout(WAIT, client.events.recv())
            .await
            .expect("CONNACK or an error in time")
            .expect("event loop running");
        match event {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => return Ok(client),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
}

/// An MQTT client subscribed to `filter` gets what `publisher` publishes on `topic`.
async fn assert_mqtt_round_trip(publisher: &V4, subscriber: &mut V4, filter: &str, topic: &str) {
    subscriber.subscribe(filter, rumqttc::QoS::AtLeastOnce).await;
    publisher.client.publish(topic, rumqttc::QoS::AtLeastOnce, false, "payload").await.expect("queued");
    let got = subscriber.next_publish().await;
    assert_eq!((got.topic.as_str(), &got.payload[..]), (topic, &b"payload"[..]));
}

// ---- NATS over WebSocket -------------------------------------------------------------------

#[tokio::test]
async fn nats_clients_over_ws_and_tcp_share_one_subject_space() {
    let server = ws_server(|_| {}).await;
    let ws = async_nats::connect(ws_url(&server)).await.expect("ws client");
    let tcp = server.client().await;
    assert_delivers(&tcp, &ws, "ws.from.tcp").await;
    assert_delivers(&ws, &tcp, "tcp.from.ws").await;
    // Request/reply across the two transports, with a payload larger than one TCP segment.
    let mut service = tcp.subscribe("svc").await.expect("sub");
    barrier(&tcp).await;
    let big = bytes::Bytes::from(vec![b'x'; 256 * 1024]);
    let request = tokio::spawn({
        let ws = ws.clone();
        let big = big.clone();
        async move { ws.request("svc", big).await }
    });
    let msg = next_msg(&mut service).await;
    assert_eq!(msg.payload.len(), 256 * 1024);
    tcp.publish(msg.reply.expect("reply subject"), big.clone()).await.expect("reply");
    let reply = tokio::time::timeout(WAIT, request).await.expect("in time").expect("task").expect("reply");
    assert_eq!(reply.payload, big);

    // INFO names the WebSocket listener, without TLS.
    let info = ws.server_info();
    assert_eq!((info.port, info.tls_required), (server.ws_addr().port(), false));
    let kinds: Vec<_> = server.core().clients().iter().map(|c| c.type_name()).collect();
    assert!(kinds.contains(&"websocket") && kinds.contains(&"nats"), "{kinds:?}");
}

#[tokio::test]
async fn nats_over_wss_trusts_the_ca_and_reports_tls_in_info() {
    let pki = TestPki::new();
    let server = ws_server(|c| {
        c.websocket.no_tls = false;
        c.websocket.tls = Some(pki.settings());
    })
    .await;
    let url = format!("wss://localhost:{}", server.ws_addr().port());
    let wss = async_nats::ConnectOptions::new()
        .add_root_certificates(pki.ca_file.clone())
        .connect(url.clone())
        .await
        .expect("wss client");
    let tcp = server.client().await;
    assert_delivers(&wss, &tcp, "wss.out").await;
    assert_delivers(&tcp, &wss, "wss.in").await;
    assert!(wss.server_info().tls_required);
    let negotiated: Vec<_> = server.core().clients().iter().filter_map(|c| c.tls.get().cloned()).collect();
    assert_eq!(negotiated.len(), 1, "only the wss client did TLS");

    // A client that does not trust the CA fails; the listener keeps serving.
    let other = TestPki::new();
    let untrusted =
        async_nats::ConnectOptions::new().add_root_certificates(other.ca_file.clone()).connect(url);
    assert!(tokio::time::timeout(WAIT, untrusted).await.map_or(true, |r| r.is_err()));
    assert_delivers(&tcp, &wss, "wss.still").await;

    // Plain HTTP on the wss port gets Go's answer.
    let mut raw = TcpStream::connect(server.ws_addr()).await.expect("connect");
    raw.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await.expect("write");
    let reply = read_all(&mut raw).await;
    assert!(reply.starts_with("HTTP/1.0 400 Bad Request"), "{reply:?}");
}

// ---- MQTT over WebSocket -------------------------------------------------------------------

#[tokio::test]
async fn mqtt_over_ws_bridges_to_nats_both_ways() {
    let server = ws_server(|_| {}).await;
    let nats = server.client().await;
    let mut device =
        mqtt_connect(mqtt_ws_options(server.ws_addr(), "ws-device")).await.expect("MQTT over ws");

    // MQTT over WebSocket → NATS.
    let mut telemetry = nats.subscribe("sensors.>").await.expect("sub");
    barrier(&nats).await;
    device.client.publish("sensors/ws/t", rumqttc::QoS::AtLeastOnce, false, "21.5").await.expect("queued");
    let msg = next_msg(&mut telemetry).await;
    assert_eq!((msg.subject.as_str(), &msg.payload[..]), ("sensors.ws.t", &b"21.5"[..]));

    // NATS → MQTT over WebSocket.
    device.subscribe("cmd/#", rumqttc::QoS::AtMostOnce).await;
    nats.publish("cmd.ws.reboot", "now".into()).await.expect("publish");
    nats.flush().await.expect("flush");
    let got = device.next_publish().await;
    assert_eq!((got.topic.as_str(), &got.payload[..]), ("cmd/ws/reboot", &b"now"[..]));

    // And between MQTT over TCP and MQTT over WebSocket.
    let tcp = mqtt_connect({
        let addr = server.mqtt_addr();
        rumqttc::MqttOptions::new("tcp-device", addr.ip().to_string(), addr.port())
    })
    .await
    .expect("MQTT over TCP");
    assert_mqtt_round_trip(&tcp, &mut device, "mixed/#", "mixed/a").await;
    let kinds: Vec<_> = server.core().clients().iter().map(|c| c.kind()).collect();
    assert!(kinds.contains(&jetway::account::users::ConnectionKind::MqttWebsocket), "{kinds:?}");
}

#[tokio::test]
async fn mqtt_over_ws_confirms_the_mqtt_subprotocol_and_is_not_found_without_the_gateway() {
    let server = ws_server(|_| {}).await;
    let response = upgrade(server.ws_addr(), "/mqtt", "Sec-WebSocket-Protocol: mqtt\r\n").await;
    assert!(response.starts_with("HTTP/1.1 101 "), "{response}");
    assert!(response.contains("Sec-WebSocket-Protocol: mqtt\r\n"), "{response}");
    let nats = upgrade(server.ws_addr(), "/", "Sec-WebSocket-Protocol: mqtt\r\n").await;
    assert!(nats.starts_with("HTTP/1.1 101 ") && !nats.contains("Sec-WebSocket-Protocol"), "{nats}");

    let no_mqtt = ws_server(|c| c.mqtt.port = 0).await;
    let response = upgrade(no_mqtt.ws_addr(), "/mqtt", "").await;
    assert!(response.starts_with("HTTP/1.1 404 "), "{response}");
}

// ---- MQTT over TLS -------------------------------------------------------------------------

/// A server whose MQTT port takes TLS with `tls`.
async fn mqtt_tls_server(tls: jetway::config::Tls) -> TestServer {
    TestServer::start_with(|c| {
        c.mqtt.port = -1;
        c.mqtt.tls = Some(tls);
    })
    .await
}

/// Two MQTT clients connected over TLS without client certificates.
async fn tls_pair(server: &TestServer, pki: &TestPki) -> (V4, V4) {
    let addr = server.mqtt_addr();
    let a = mqtt_connect(mqtt_tls_options(addr, "tls-a", pki, None)).await.expect("TLS client a");
    let b = mqtt_connect(mqtt_tls_options(addr, "tls-b", pki, None)).await.expect("TLS client b");
    (a, b)
}

#[tokio::test]
async fn mqtt_over_tls_with_and_without_client_certificates() {
    let pki = TestPki::new();
    let server = mqtt_tls_server(pki.settings()).await;
    let (mut a, b) = tls_pair(&server, &pki).await;
    assert_mqtt_round_trip(&b, &mut a, "secure/#", "secure/x").await;
    let negotiated: Vec<_> = server.core().clients().iter().filter_map(|c| c.tls.get().cloned()).collect();
    assert_eq!(negotiated.len(), 2);
    assert!(negotiated.iter().all(|t| t.version == "1.3" && t.peer.is_none()), "{negotiated:?}");

    // Mutual TLS: a certificate from the CA is required.
    let mutual = mqtt_tls_server(jetway::config::Tls { verify: true, ..pki.settings() }).await;
    let addr = mutual.mqtt_addr();
    assert!(mqtt_connect(mqtt_tls_options(addr, "no-cert", &pki, None)).await.is_err());
    let identity = pki.client_files("alice", Validity::days(1));
    let mut alice = mqtt_connect(mqtt_tls_options(addr, "alice", &pki, Some(identity))).await.expect("alice");
    let peer = mutual.core().clients().iter().find_map(|c| c.tls.get().and_then(|t| t.peer.clone()));
    assert_eq!(peer.map(|p| p.subject), Some("CN=alice,O=Jetway Development".to_string()));
    let nats = mutual.client().await;
    alice.subscribe("to/alice", rumqttc::QoS::AtMostOnce).await;
    nats.publish("to.alice", "hi".into()).await.expect("publish");
    nats.flush().await.expect("flush");
    assert_eq!(&alice.next_publish().await.payload[..], b"hi");
}

#[tokio::test]
async fn verify_and_map_logs_an_mqtt_client_in_as_its_certificate_user() {
    let pki = TestPki::new();
    let server = TestServer::start_with(|c| {
        with_conf(
            r#"accounts {
                 DEVICES { users: [
                   { user: "CN=alice,O=Jetway Development", allowed_connection_types: [MQTT] },
                   { user: ops, password: pw }
                 ] }
               }"#,
            c,
        );
        c.mqtt.port = -1;
        c.mqtt.tls = Some(jetway::config::Tls { verify_and_map: true, ..pki.settings() });
    })
    .await;
    let addr = server.mqtt_addr();
    let identity = pki.client_files("alice", Validity::days(1));
    let alice = mqtt_connect(mqtt_tls_options(addr, "alice", &pki, Some(identity))).await.expect("alice");
    // Alice landed in the DEVICES account: a NATS user of that account sees her publishes.
    let ops = async_nats::ConnectOptions::with_user_and_password("ops".into(), "pw".into())
        .connect(server.url())
        .await
        .expect("ops");
    let mut sub = ops.subscribe("telemetry.>").await.expect("sub");
    barrier(&ops).await;
    alice.client.publish("telemetry/alice", rumqttc::QoS::AtLeastOnce, false, "1").await.expect("queued");
    assert_eq!(next_msg(&mut sub).await.subject.as_str(), "telemetry.alice");

    // A certificate that names no user is refused, and so is a password login as the
    // certificate user on a port without mapping (the NATS port).
    let stranger = pki.client_files("mallory", Validity::days(1));
    let refused = mqtt_connect(mqtt_tls_options(addr, "mallory", &pki, Some(stranger))).await;
    assert!(refused.is_err_and(|e| e.contains("NotAuthorized")), "mallory must be refused");
    let as_alice =
        async_nats::ConnectOptions::with_user_and_password("CN=alice,O=Jetway Development".into(), "".into())
            .connect(server.url())
            .await;
    assert!(as_alice.is_err(), "a certificate user has no password login");
}

#[tokio::test]
async fn a_plain_client_on_the_mqtt_tls_port_is_closed_while_tls_clients_keep_working() {
    let pki = TestPki::new();
    let server = mqtt_tls_server(pki.settings()).await;
    let addr = server.mqtt_addr();
    let (mut a, b) = tls_pair(&server, &pki).await;

    // A plain MQTT CONNECT (3.1.1, client id "p") is not a ClientHello.
    let mut plain = TcpStream::connect(addr).await.expect("connect");
    plain.write_all(b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01p").await.expect("write");
    assert_eq!(read_all(&mut plain).await, "", "closed without an answer");
    // rumqttc in plain text gets no CONNACK either.
    let plain_client = rumqttc::MqttOptions::new("plain", addr.ip().to_string(), addr.port());
    assert!(mqtt_connect(plain_client).await.is_err());

    assert_mqtt_round_trip(&b, &mut a, "still/#", "still/ok").await;
    let reasons = tokio::time::timeout(WAIT, async {
        loop {
            let closed = server.core().monitor.closed.snapshot();
            if closed.iter().filter(|c| c.reason.as_deref() == Some("TLS Handshake Failure")).count() >= 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    reasons.await.expect("both plain clients recorded as TLS handshake failures");
}

#[tokio::test]
async fn reload_swaps_the_mqtt_and_websocket_certificates() {
    let pki = TestPki::new();
    let server = ws_server(|c| {
        c.mqtt.tls = Some(pki.settings());
        c.websocket.no_tls = false;
        c.websocket.tls = Some(pki.settings());
    })
    .await;
    let pki = &pki;
    let served =
        |addr| async move { pki.served_certificate(TcpStream::connect(addr).await.expect("connect")).await };
    let before = (served(server.mqtt_addr()).await, served(server.ws_addr()).await);
    let reissued = pki.reissue_server_cert();
    server.handle.as_ref().expect("running").reload();
    let after = (served(server.mqtt_addr()).await, served(server.ws_addr()).await);
    assert_ne!(before.0, after.0);
    assert_eq!(after.0, reissued.cert_der);
    assert_eq!(after.1, reissued.cert_der);
}

// ---- allowed_connection_types --------------------------------------------------------------

#[tokio::test]
async fn allowed_connection_types_tell_websocket_from_tcp() {
    let server = ws_server(|c| {
        with_conf(
            r#"authorization { users: [
                 { user: web, password: pw, allowed_connection_types: [WEBSOCKET] },
                 { user: mqttws, password: pw, allowed_connection_types: [MQTT_WS] },
                 { user: plain, password: pw, allowed_connection_types: [STANDARD, MQTT] }
               ] }"#,
            c,
        )
    })
    .await;
    let nats = |url: String, user: &str| {
        let options = async_nats::ConnectOptions::with_user_and_password(user.into(), "pw".into());
        async move { tokio::time::timeout(WAIT, options.connect(url)).await.expect("attempt ends").is_ok() }
    };
    assert!(nats(ws_url(&server), "web").await, "WEBSOCKET user over ws");
    assert!(!nats(server.url(), "web").await, "WEBSOCKET user over tcp");
    assert!(!nats(ws_url(&server), "plain").await, "STANDARD user over ws");
    assert!(!nats(ws_url(&server), "mqttws").await, "MQTT_WS user over NATS ws");

    let mqtt_ws = |user: &str| {
        let mut opts = mqtt_ws_options(server.ws_addr(), &format!("id-{user}"));
        opts.set_credentials(user, "pw");
        mqtt_connect(opts)
    };
    let mqtt_tcp = |user: &str| {
        let addr = server.mqtt_addr();
        let mut opts = rumqttc::MqttOptions::new(format!("tcp-{user}"), addr.ip().to_string(), addr.port());
        opts.set_credentials(user, "pw");
        mqtt_connect(opts)
    };
    assert!(mqtt_ws("mqttws").await.is_ok(), "MQTT_WS user over ws");
    assert!(mqtt_tcp("mqttws").await.is_err_and(|e| e.contains("NotAuthorized")), "MQTT_WS user over tcp");
    assert!(mqtt_ws("plain").await.is_err_and(|e| e.contains("NotAuthorized")), "MQTT user over ws");
    assert!(mqtt_tcp("plain").await.is_ok(), "MQTT user over tcp");
}

// ---- the upgrade request -------------------------------------------------------------------

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Sends an upgrade request for `path` (plus `extra` header lines) and returns the response
/// head (for a 101) or the whole response (for an error).
async fn upgrade(addr: SocketAddr, path: &str, extra: &str) -> String {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    );
    send_raw(addr, request.as_bytes()).await
}

/// Sends `bytes` and reads what comes back until the server closes, or until the end of a
/// `101` response head.
async fn send_raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut buf = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await.expect("answer in time") {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        if got.starts_with(b"HTTP/1.1 101") && got.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

async fn read_all(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut got)).await.expect("closed in time");
    // A reset after the server closes counts as closed too.
    let _ = read;
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn bad_upgrade_requests_get_http_errors_without_disturbing_other_clients() {
    let server = ws_server(|_| {}).await;
    let addr = server.ws_addr();
    let ws = async_nats::connect(ws_url(&server)).await.expect("ws client");
    let tcp = server.client().await;
    let mut sub = ws.subscribe("undisturbed").await.expect("sub");
    barrier(&ws).await;

    let full = |path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
    };
    let cases: Vec<(String, &str)> = vec![
        ("\x16\x03\x01 not http at all\r\n\r\n".into(), "HTTP/1.1 400 "),
        (full("/").replace("GET", "POST"), "HTTP/1.1 405 "),
        (full("/").replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), ""), "HTTP/1.1 400 "),
        (full("/").replace("Upgrade: websocket\r\n", ""), "HTTP/1.1 400 "),
        (full("/").replace("Version: 13", "Version: 7"), "HTTP/1.1 400 "),
        (format!("{}{}", full("/"), "\u{81}\u{80}early"), "HTTP/1.1 400 "),
        (format!("GET / HTTP/1.1\r\nX-Filler: {}\r\n\r\n", "a".repeat(20_000)), "HTTP/1.1 431 "),
    ];
    for (request, want) in cases {
        let response = send_raw(addr, request.as_bytes()).await;
        assert!(response.starts_with(want), "{request:?} got {response:?}");
        assert!(response.contains("Sec-WebSocket-Version: 13\r\n"), "{response:?}");
    }
    // A client that connects and says nothing is dropped after handshake_timeout (2 s).
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(read_all(&mut silent).await, "");

    // The WebSocket client saw none of it.
    tcp.publish("undisturbed", "ok".into()).await.expect("publish");
    tcp.flush().await.expect("flush");
    assert_eq!(&next_msg(&mut sub).await.payload[..], b"ok");
}

#[tokio::test]
async fn origins_are_checked_against_the_allowed_list_and_same_origin() {
    let server = ws_server(|c| c.websocket.allowed_origins = vec!["https://app.example".into()]).await;
    let addr = server.ws_addr();
    let allowed = upgrade(addr, "/", "Origin: https://app.example\r\n").await;
    assert!(allowed.starts_with("HTTP/1.1 101 "), "{allowed}");
    let foreign = upgrade(addr, "/", "Origin: https://evil.example\r\n").await;
    assert!(foreign.starts_with("HTTP/1.1 403 Forbidden"), "{foreign}");
    let no_origin = upgrade(addr, "/", "").await;
    assert!(no_origin.starts_with("HTTP/1.1 101 "), "non-browser clients send no Origin: {no_origin}");

    let same = ws_server(|c| c.websocket.same_origin = true).await;
    let addr = same.ws_addr();
    let own = upgrade(addr, "/", &format!("Origin: http://{addr}\r\n")).await;
    assert!(own.starts_with("HTTP/1.1 101 "), "{own}");
    let other_port = upgrade(addr, "/", "Origin: http://127.0.0.1:1\r\n").await;
    assert!(other_port.starts_with("HTTP/1.1 403 "), "{other_port}");
}

#[tokio::test]
async fn varz_reports_the_websocket_listener() {
    let server = ws_server(|c| c.http_port = -1).await;
    let http = server.handle.as_ref().and_then(|h| h.http_addr).expect("monitor");
    let varz = crate::monitor::get_json(http, "/varz").await;
    assert_eq!(varz["websocket"]["port"], server.ws_addr().port(), "{}", varz["websocket"]);
    assert_eq!(varz["websocket"]["host"], "127.0.0.1");
    assert_eq!(varz["websocket"]["no_tls"], true);
    let off = TestServer::start_with(|c| c.http_port = -1).await;
    let http = off.handle.as_ref().and_then(|h| h.http_addr).expect("monitor");
    assert_eq!(crate::monitor::get_json(http, "/varz").await["websocket"], serde_json::json!({}));
}

#[tokio::test]
async fn allow_non_tls_lets_plain_mqtt_clients_in_beside_tls_ones() {
    let pki = TestPki::new();
    let server = TestServer::start_with(|c| {
        c.mqtt.port = -1;
        c.mqtt.tls = Some(pki.settings());
        c.allow_non_tls = true;
        // The client port needs TLS for allow_non_tls to mean anything there too.
        c.tls = Some(pki.settings());
    })
    .await;
    let addr = server.mqtt_addr();
    let mut secure = mqtt_connect(mqtt_tls_options(addr, "secure", &pki, None)).await.expect("TLS client");
    let plain = rumqttc::MqttOptions::new("plain", addr.ip().to_string(), addr.port());
    let plain = mqtt_connect(plain).await.expect("plain client allowed");
    assert_mqtt_round_trip(&plain, &mut secure, "mixed/#", "mixed/plain").await;
}

#[tokio::test]
async fn mqtt_over_wss_maps_the_websocket_certificate_with_the_mqtt_setting() {
    let pki = TestPki::new();
    let server = ws_server(|c| {
        with_conf(
            r#"authorization { users: [
                 { user: "CN=alice,O=Jetway Development", allowed_connection_types: [MQTT_WS] }
               ] }"#,
            c,
        );
        // The WebSocket's TLS asks for the certificate; MQTT's verify_and_map maps it.
        c.websocket.no_tls = false;
        c.websocket.tls = Some(jetway::config::Tls { verify: true, ..pki.settings() });
        c.mqtt.tls = Some(jetway::config::Tls { verify_and_map: true, ..pki.settings() });
    })
    .await;
    let wss = |id: &str, name: &str| {
        let addr = server.ws_addr();
        let identity = pki.client_files(name, Validity::days(1));
        let mut opts =
            rumqttc::MqttOptions::new(id, format!("wss://localhost:{}/mqtt", addr.port()), addr.port());
        let tls = rumqttc::TlsConfiguration::Rustls(Arc::new(pki.client_config(Some(identity))));
        opts.set_transport(rumqttc::Transport::Wss(tls));
        mqtt_connect(opts)
    };
    wss("alice-wss", "alice").await.expect("alice maps to her user over wss");
    let mallory = wss("mallory-wss", "mallory").await;
    assert!(mallory.is_err_and(|e| e.contains("NotAuthorized")), "an unmapped certificate is refused");
}
