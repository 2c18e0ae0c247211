//! TLS on the client port: server authentication, mutual TLS, TLS-first, plain-text clients,
//! and certificate reload. Certificates are made per test with rcgen (through `jetway::certs`).

use std::time::Duration;

use futures::StreamExt;
use jetway::certs::{Authority, Validity};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;

use crate::harness::{write_client, RawClient, TestPki, TestServer};

/// Reads the plain-text INFO line a TLS server sends first, as JSON.
async fn plain_info(server: &TestServer) -> (RawClient, serde_json::Value) {
    let stream = TcpStream::connect(server.addr).await.expect("connect");
    let mut raw = RawClient { stream, received: Vec::new() };
    let line = raw.expect("\r\n").await;
    let json = serde_json::from_str(line.trim_start_matches("INFO ").trim()).expect("INFO is JSON");
    (raw, json)
}

/// Connects with rustls after the plain INFO and returns the certificate the server presented.
async fn served_certificate(server: &TestServer, pki: &TestPki) -> CertificateDer<'static> {
    let (raw, _) = plain_info(server).await;
    pki.served_certificate(raw.stream).await
}

/// Publishes on `subject` from `publisher` and checks that `subscriber` receives it.
async fn assert_delivers(publisher: &async_nats::Client, subscriber: &async_nats::Client, subject: &str) {
    let mut sub = subscriber.subscribe(subject.to_string()).await.expect("subscribe");
    subscriber.flush().await.expect("flush");
    publisher.publish(subject.to_string(), "hello".into()).await.expect("publish");
    publisher.flush().await.expect("flush");
    let msg = tokio::time::timeout(Duration::from_secs(5), sub.next()).await.expect("delivered in time");
    assert_eq!(msg.expect("message").payload.as_ref(), b"hello");
}

#[tokio::test]
async fn info_announces_tls_required_in_plain_text_before_the_handshake() {
    let pki = TestPki::new();
    let server = TestServer::start_tls(&pki, |_| {}).await;
    let (_, info) = plain_info(&server).await;
    assert_eq!(info["tls_required"], true);
    assert!(info.get("tls_verify").is_none_or(|v| v == false), "{info}");
    assert!(info.get("tls_available").is_none_or(|v| v == false), "{info}");

    let verifying =
        TestServer::start_tls(&pki, |c| c.tls.as_mut().into_iter().for_each(|t| t.verify = true)).await;
    let (_, info) = plain_info(&verifying).await;
    assert_eq!((info["tls_required"].clone(), info["tls_verify"].clone()), (true.into(), true.into()));
}

/// Regression: `/varz` said `tls_required: false` whatever the TLS configuration.
#[tokio::test]
async fn varz_says_tls_is_required() {
    let pki = TestPki::new();
    let server = TestServer::start_tls(&pki, |c| c.http_port = -1).await;
    let http = server.handle.as_ref().and_then(|h| h.http_addr).expect("monitor listening");
    let varz = crate::monitor::get_json(http, "/varz").await;
    assert_eq!(varz["tls_required"], true);
    let plain = TestServer::start_with(|c| c.http_port = -1).await;
    let http = plain.handle.as_ref().and_then(|h| h.http_addr).expect("monitor listening");
    assert!(
        crate::monitor::get_json(http, "/varz").await.get("tls_required").is_none(),
        "left out when false"
    );
}

#[tokio::test]
async fn a_client_trusting_the_ca_pubs_and_subs_over_tls() {
    let pki = TestPki::new();
    let server = TestServer::start_tls(&pki, |_| {}).await;
    let a = server.tls_client(server.tls_options(&pki)).await.expect("TLS client a");
    let b = server.tls_client(server.tls_options(&pki)).await.expect("TLS client b");
    assert_delivers(&a, &b, "tls.pubsub").await;
    let facts = server.core().clients().into_iter().filter_map(|c| c.tls.get().cloned()).collect::<Vec<_>>();
    assert_eq!(facts.len(), 2);
    assert!(
        facts.iter().all(|t| t.version == "1.3" && t.cipher_suite.starts_with("TLS_") && t.peer.is_none()),
        "{facts:?}"
    );
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_server_certificate_fails_to_connect() {
    let pki = TestPki::new();
    let other = TestPki::new();
    let server = TestServer::start_tls(&pki, |_| {}).await;
    assert!(server.tls_client(server.tls_options(&other)).await.is_err());
}

#[tokio::test]
async fn a_plain_text_client_on_a_tls_port_gets_tls_required_and_is_closed() {
    let pki = TestPki::new();
    let server = TestServer::start_tls(&pki, |_| {}).await;
    let (mut raw, _) = plain_info(&server).await;
    raw.send(b"CONNECT {\"verbose\":false}\r\nPING\r\n").await;
    let rest = raw.expect_closed().await;
    assert_eq!(rest, "-ERR 'Secure Connection - TLS Required'\r\n");
    // The port still serves TLS clients.
    assert!(server.tls_client(server.tls_options(&pki)).await.is_ok());
}

#[tokio::test]
async fn garbage_after_a_tls_record_byte_fails_the_handshake_without_affecting_others() {
    let pki = TestPki::new();
    let server = TestServer::start_tls(&pki, |_| {}).await;
    let good = server.tls_client(server.tls_options(&pki)).await.expect("good client");
    let (mut raw, _) = plain_info(&server).await;
    raw.send(b"\x16\x03\x01\x00\x05junkjunkjunk").await;
    raw.expect_closed().await;
    assert_delivers(&good, &good, "still.fine").await;
}

#[tokio::test]
async fn mutual_tls_accepts_a_client_certificate_signed_by_the_ca() {
    let pki = TestPki::new();
    let server =
        TestServer::start_tls(&pki, |c| c.tls.as_mut().into_iter().for_each(|t| t.verify = true)).await;
    let (cert, key) = pki.client_files("alice", Validity::days(1));
    let alice =
        server.tls_client(server.tls_options(&pki).add_client_certificate(cert, key)).await.expect("alice");
    assert_delivers(&alice, &alice, "mtls.ok").await;
    let clients = server.core().clients();
    let peer =
        clients.iter().find_map(|c| c.tls.get().and_then(|t| t.peer.clone())).expect("peer identities");
    assert_eq!(peer.subject, "CN=alice,O=Jetway Development");
}

#[tokio::test]
async fn mutual_tls_refuses_missing_untrusted_and_expired_certificates_while_serving_others() {
    let pki = TestPki::new();
    let server =
        TestServer::start_tls(&pki, |c| c.tls.as_mut().into_iter().for_each(|t| t.verify = true)).await;
    let (cert, key) = pki.client_files("good", Validity::days(1));
    let good =
        server.tls_client(server.tls_options(&pki).add_client_certificate(cert, key)).await.expect("good");
    let mut sub = good.subscribe("watch").await.expect("subscribe");
    good.flush().await.expect("flush");

    // No certificate at all.
    assert!(server.tls_client(server.tls_options(&pki)).await.is_err(), "no client certificate");
    // Signed by another CA.
    let rogue = Authority::new("Rogue CA", Validity::days(1)).expect("rogue CA");
    let (cert, key) = write_client(&rogue, pki.dir.path(), "mallory", Validity::days(1));
    assert!(
        server.tls_client(server.tls_options(&pki).add_client_certificate(cert, key)).await.is_err(),
        "untrusted"
    );
    // Signed by the right CA, but expired.
    let (cert, key) = pki.client_files("late", Validity::expired());
    assert!(
        server.tls_client(server.tls_options(&pki).add_client_certificate(cert, key)).await.is_err(),
        "expired"
    );

    good.publish("watch", "still here".into()).await.expect("publish");
    let msg =
        tokio::time::timeout(Duration::from_secs(5), sub.next()).await.expect("in time").expect("message");
    assert_eq!(msg.payload.as_ref(), b"still here");
    assert_eq!(server.core().num_clients(), 1);
}

#[tokio::test]
async fn handshake_first_serves_tls_first_clients_and_sends_no_plain_info() {
    let pki = TestPki::new();
    let server = TestServer::start_tls(&pki, |c| {
        c.tls.as_mut().into_iter().for_each(|t| {
            t.handshake_first = true;
            t.timeout = Duration::from_millis(300);
        })
    })
    .await;
    let client = server.tls_client(server.tls_options(&pki).tls_first()).await.expect("TLS-first client");
    assert_delivers(&client, &client, "first.ok").await;

    // A plain client waits for an INFO that never comes and is told TLS is required.
    let stream = TcpStream::connect(server.addr).await.expect("connect");
    let mut raw = RawClient { stream, received: Vec::new() };
    assert_eq!(raw.expect_closed().await, "-ERR 'Secure Connection - TLS Required'\r\n");
}

#[tokio::test]
async fn allow_non_tls_serves_plain_and_tls_clients_on_one_port() {
    let pki = TestPki::new();
    let server = TestServer::start_tls(&pki, |c| c.allow_non_tls = true).await;
    let (_, info) = plain_info(&server).await;
    assert_eq!(info["tls_available"], true);
    assert!(info.get("tls_required").is_none_or(|v| v == false), "{info}");
    let plain = server.client().await;
    let tls = server.tls_client(server.tls_options(&pki)).await.expect("TLS client");
    assert_delivers(&plain, &tls, "mixed").await;
    assert_delivers(&tls, &plain, "mixed.back").await;
}

#[tokio::test]
async fn reloaded_certificates_serve_new_connections_while_old_ones_keep_working() {
    let pki = TestPki::new();
    let server = TestServer::start_tls(&pki, |_| {}).await;
    let before = served_certificate(&server, &pki).await;
    let old = server.tls_client(server.tls_options(&pki)).await.expect("client before reload");

    let reissued = pki.reissue_server_cert();
    server.core().tls.as_ref().expect("TLS configured").reload().expect("reload");

    let after = served_certificate(&server, &pki).await;
    assert_ne!(before, after);
    assert_eq!(after, reissued.cert_der);
    assert_delivers(&old, &old, "survives.reload").await;
    let new = server.tls_client(server.tls_options(&pki)).await.expect("client after reload");
    assert_delivers(&old, &new, "old.to.new").await;
}

#[tokio::test]
async fn certificate_files_replaced_on_disk_are_picked_up_without_a_signal() {
    let pki = TestPki::new();
    let server = TestServer::start_tls(&pki, |_| {}).await;
    let reissued = pki.reissue_server_cert();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while served_certificate(&server, &pki).await != reissued.cert_der {
        assert!(tokio::time::Instant::now() < deadline, "new certificate not served within 10s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_bad_certificate_path_fails_startup_naming_the_file() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().expect("dir");
    let mut config = crate::harness::test_config(dir.path());
    let missing = pki.dir.path().join("missing-cert.pem");
    config.tls = Some(jetway::config::Tls { cert_file: Some(missing), ..pki.settings() });
    let error = jetway::run(config).await.err().expect("startup fails");
    assert!(error.to_string().contains("missing-cert.pem"), "{error}");
}

#[tokio::test]
async fn the_committed_development_certificates_work_for_mutual_tls() {
    let certs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("certs");
    let server = TestServer::start_with(|c| {
        c.tls = Some(jetway::config::Tls {
            cert_file: Some(certs.join("server-cert.pem")),
            key_file: Some(certs.join("server-key.pem")),
            ca_file: Some(certs.join("ca.pem")),
            verify: true,
            ..jetway::config::Tls::default()
        })
    })
    .await;
    let options = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(certs.join("ca.pem"))
        .add_client_certificate(certs.join("client-client-cert.pem"), certs.join("client-client-key.pem"));
    let client = server.tls_client(options).await.expect("connects with the committed certificates");
    assert_delivers(&client, &client, "dev.certs").await;
}

#[tokio::test]
async fn with_allow_non_tls_a_silent_plain_client_is_served_after_the_tls_timeout() {
    let pki = TestPki::new();
    let server = TestServer::start_tls(&pki, |c| {
        c.allow_non_tls = true;
        c.tls.as_mut().into_iter().for_each(|t| t.timeout = Duration::from_millis(200));
    })
    .await;
    let (mut raw, _) = plain_info(&server).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    raw.send(b"CONNECT {}\r\nPING\r\n").await;
    raw.expect("PONG\r\n").await;
}
