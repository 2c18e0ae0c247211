//! Exact wire behaviour: every `-ERR` path, pipelined and fragmented input.

use std::time::Duration;

use crate::harness::{RawClient, TestServer};

#[tokio::test]
async fn info_has_nats_server_fields() {
    let server = TestServer::start().await;
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut raw = RawClient { stream, received: Vec::new() };
    let line = raw.expect("\r\n").await;
    let json: serde_json::Value = serde_json::from_str(line.trim_start_matches("INFO ").trim()).unwrap();
    for field in [
        "server_id",
        "server_name",
        "version",
        "proto",
        "go",
        "host",
        "port",
        "headers",
        "max_payload",
        "client_id",
        "client_ip",
    ] {
        assert!(json.get(field).is_some(), "INFO lacks {field}: {json}");
    }
    assert_eq!(json["max_payload"], 1024 * 1024);
    assert_eq!(json["port"], server.addr.port());
    assert!(json["jetway_version"].is_string());
}

#[tokio::test]
async fn pipelined_ops_in_one_write() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    c.send(b"CONNECT {\"verbose\":false}\r\nSUB a 1\r\nPUB a 2\r\nhi\r\nPING\r\n").await;
    assert_eq!(c.expect("PONG\r\n").await, "MSG a 1 2\r\nhi\r\nPONG\r\n");
}

#[tokio::test]
async fn fragmented_input_byte_by_byte() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    let input =
        b"CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB a.b q 9\r\nHPUB a.b r 12 17\r\nNATS/1.0\r\n\r\nhello\r\nPING\r\n";
    c.stream.set_nodelay(true).unwrap();
    for b in input {
        c.send(&[*b]).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(c.expect("PONG\r\n").await, "HMSG a.b 9 r 12 17\r\nNATS/1.0\r\n\r\nhello\r\nPONG\r\n");
}

#[tokio::test]
async fn verbose_mode_acknowledges_each_op() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    c.send(b"CONNECT {\"verbose\":true}\r\nSUB a 1\r\nPUB a 1\r\nx\r\n").await;
    assert_eq!(c.expect("x\r\n").await, "+OK\r\n+OK\r\n+OK\r\nMSG a 1 1\r\nx\r\n");
    // As nats-server: PING and PONG are not acknowledged, nor is a refused SUB; UNSUB is,
    // even of an unknown sid.
    c.send(b"PING\r\nPONG\r\nSUB a..b 2\r\nUNSUB 9\r\nPING\r\n").await;
    assert_eq!(c.expect("PONG\r\n").await, "PONG\r\n");
    assert_eq!(c.expect("PONG\r\n").await, "-ERR 'Invalid Subject'\r\n+OK\r\nPONG\r\n");
}

#[tokio::test]
async fn unknown_operation_is_an_error_and_closes() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    c.send(b"FOO bar\r\n").await;
    assert_eq!(c.expect_closed().await, "-ERR 'Unknown Protocol Operation'\r\n");
}

#[tokio::test]
async fn payload_over_max_payload_is_refused_and_closes() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    c.send(b"PUB foo 2000000\r\n").await;
    assert_eq!(c.expect_closed().await, "-ERR 'Maximum Payload Violation'\r\n");
}

#[tokio::test]
async fn control_line_over_max_is_refused_and_closes() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    let long = format!("SUB {} 1\r\n", "a".repeat(5000));
    c.send(long.as_bytes()).await;
    assert!(c.expect_closed().await.starts_with("-ERR 'maximum control line exceeded"));
}

#[tokio::test]
async fn invalid_subject_is_an_error_but_keeps_the_connection() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    c.send(b"CONNECT {\"verbose\":false}\r\nSUB a..b 1\r\nSUB >.a 2\r\nPING\r\n").await;
    assert_eq!(c.expect("PONG\r\n").await, "-ERR 'Invalid Subject'\r\n-ERR 'Invalid Subject'\r\nPONG\r\n");
}

#[tokio::test]
async fn pedantic_mode_reports_a_wildcard_publish() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    // nats-server's exact answer: the -ERR, then the publish goes ahead (verbose by default).
    c.send(b"CONNECT {\"pedantic\":true}\r\nSUB a.* 1\r\nPUB a.* 1\r\nx\r\nPUB a.b 1\r\ny\r\nPING\r\n").await;
    assert_eq!(
        c.expect("PONG\r\n").await,
        "+OK\r\n+OK\r\n-ERR 'Invalid Publish Subject'\r\n+OK\r\nMSG a.* 1 1\r\nx\r\n+OK\r\nMSG a.b 1 1\r\ny\r\nPONG\r\n"
    );
}

#[tokio::test]
async fn no_responders_requires_headers() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    c.send(b"CONNECT {\"no_responders\":true}\r\n").await;
    assert_eq!(c.expect_closed().await, "-ERR 'no responders requires headers support'\r\n");
}

#[tokio::test]
async fn no_responders_status_goes_to_the_requesters_reply_subscription() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    c.send(b"CONNECT {\"verbose\":false,\"headers\":true,\"no_responders\":true}\r\nSUB _INBOX.x.* 5\r\nPUB svc _INBOX.x.1 0\r\n\r\nPING\r\n").await;
    let got = c.expect("PONG\r\n").await;
    assert_eq!(got, "HMSG _INBOX.x.1 5 35 35\r\nNATS/1.0 503\r\nNats-Subject: svc\r\n\r\n\r\nPONG\r\n");
}

#[tokio::test]
async fn hpub_without_headers_support_closes() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    c.send(b"CONNECT {\"verbose\":false}\r\nHPUB a 12 12\r\nNATS/1.0\r\n\r\n\r\n").await;
    assert_eq!(c.expect_closed().await, "");
}

#[tokio::test]
async fn authorization_violation_without_credentials() {
    let server = TestServer::start_with(|c| {
        c.authorization.user = Some("alice".into());
        c.authorization.password = Some("secret".into());
    })
    .await;
    let mut c = RawClient::connect(server.addr).await;
    c.send(b"CONNECT {\"user\":\"alice\",\"pass\":\"wrong\"}\r\n").await;
    assert_eq!(c.expect_closed().await, "-ERR 'Authorization Violation'\r\n");
    let mut c = RawClient::connect(server.addr).await;
    c.send(b"PING\r\n").await;
    assert_eq!(c.expect_closed().await, "-ERR 'Authorization Violation'\r\n");
    let mut c = RawClient::connect(server.addr).await;
    c.send(b"CONNECT {\"user\":\"alice\",\"pass\":\"secret\"}\r\nPING\r\n").await;
    c.expect("PONG\r\n").await;
}

#[tokio::test]
async fn authentication_timeout_without_connect() {
    let server = TestServer::start_with(|c| {
        c.authorization.token = Some("t0k".into());
        c.authorization.timeout = Duration::from_millis(200);
    })
    .await;
    let mut c = RawClient::connect(server.addr).await;
    assert_eq!(c.expect_closed().await, "-ERR 'Authentication Timeout'\r\n");
}

#[tokio::test]
async fn stale_connection_after_unanswered_pings() {
    let server = TestServer::start_with(|c| {
        c.ping_interval = Duration::from_millis(100);
        c.ping_max = 2;
    })
    .await;
    let mut c = RawClient::connect(server.addr).await;
    let got = c.expect_closed().await;
    assert_eq!(got, "PING\r\nPING\r\n-ERR 'Stale Connection'\r\n");
    assert_eq!(server.core().stats.stale_connections.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[tokio::test]
async fn answered_pings_keep_the_connection() {
    let server = TestServer::start_with(|c| c.ping_interval = Duration::from_millis(100)).await;
    let mut c = RawClient::connect(server.addr).await;
    for _ in 0..5 {
        c.expect("PING\r\n").await;
        c.send(b"PONG\r\n").await;
    }
}

/// As from nats-server: a first PING about 2 s after CONNECT (2 s plus up to a fifth), which
/// measures the RTT, even with the default two-minute interval.
#[tokio::test]
async fn the_first_ping_comes_two_seconds_after_connect() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    c.send(b"CONNECT {\"verbose\":false}\r\n").await;
    let connected = std::time::Instant::now();
    c.expect("PING\r\n").await;
    let after = connected.elapsed();
    assert!(after >= Duration::from_millis(1900) && after < Duration::from_millis(2700), "{after:?}");
}

/// As from nats-server: once its RTT is measured, a client that keeps talking is not PINGed.
#[tokio::test]
async fn a_talking_client_is_pinged_only_for_its_rtt() {
    let server = TestServer::start_with(|c| c.ping_interval = Duration::from_millis(200)).await;
    let mut c = RawClient::connect(server.addr).await;
    c.send(b"CONNECT {\"verbose\":false}\r\n").await;
    let mut pings = 0;
    for _ in 0..15 {
        c.send(b"PING\r\n").await;
        let new = c.expect("PONG\r\n").await.matches("PING\r\n").count();
        for _ in 0..new {
            c.send(b"PONG\r\n").await;
        }
        pings += new;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pings, 1, "only the PING that measures the RTT");
}

#[tokio::test]
async fn maximum_connections_exceeded() {
    let server = TestServer::start_with(|c| c.max_connections = 1).await;
    let _first = RawClient::connect(server.addr).await;
    let mut second = RawClient::connect(server.addr).await;
    assert_eq!(second.expect_closed().await, "-ERR 'maximum connections exceeded'\r\n");
}

#[tokio::test]
async fn maximum_subscriptions_exceeded_keeps_the_connection() {
    let server = TestServer::start_with(|c| c.max_subscriptions = 1).await;
    let mut c = RawClient::connect(server.addr).await;
    c.send(b"CONNECT {\"verbose\":false}\r\nSUB a 1\r\nSUB b 2\r\nPING\r\n").await;
    assert_eq!(c.expect("PONG\r\n").await, "-ERR 'maximum subscriptions exceeded'\r\nPONG\r\n");
}

#[tokio::test]
async fn malformed_pub_arguments_close_without_error_text() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    c.send(b"PUB foo\r\n").await;
    assert_eq!(c.expect_closed().await, "");
}

#[tokio::test]
async fn unsub_with_max_and_plain_unsub() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    c.send(b"CONNECT {\"verbose\":false}\r\nSUB a 1\r\nUNSUB 1 2\r\nPUB a 1\r\nx\r\nPUB a 1\r\ny\r\nPUB a 1\r\nz\r\nSUB b 2\r\nUNSUB 2\r\nPUB b 1\r\nw\r\nPING\r\n").await;
    assert_eq!(c.expect("PONG\r\n").await, "MSG a 1 1\r\nx\r\nMSG a 1 1\r\ny\r\nPONG\r\n");
    c.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_connect_that_leaves_options_out_gets_nats_server_defaults() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    // nats-server's defaults are verbose and pedantic: each op is acknowledged, and a wildcard
    // publish is refused with an -ERR (the connection stays).
    c.send(b"CONNECT {}\r\nSUB a 1\r\nPUB a.* 1\r\nx\r\nPUB a 1\r\ny\r\nPING\r\n").await;
    assert_eq!(
        c.expect("PONG\r\n").await,
        "+OK\r\n+OK\r\n-ERR 'Invalid Publish Subject'\r\n+OK\r\n+OK\r\nMSG a 1 1\r\ny\r\nPONG\r\n"
    );
}

#[tokio::test]
async fn protocol_errors_read_as_nats_server_writes_them() {
    let server = TestServer::start().await;
    // A payload longer than announced runs into the next op: "Unknown Protocol Operation".
    let mut c = RawClient::connect(server.addr).await;
    c.send(b"CONNECT {\"verbose\":false}\r\nPUB a 5\r\nhi\r\nPING\r\n").await;
    assert_eq!(c.expect("\r\n").await, "-ERR 'Unknown Protocol Operation'\r\n");
    let mut c = RawClient::connect(server.addr).await;
    let mut long = b"CONNECT {\"verbose\":false}\r\nSUB ".to_vec();
    long.extend(std::iter::repeat_n(b'a', 5000));
    long.extend(b" 1\r\n");
    c.send(&long).await;
    assert_eq!(c.expect("\r\n").await, "-ERR 'maximum control line exceeded'\r\n");
}
