//! Users, permissions, accounts, imports/exports, per-account JetStream and verify_and_map,
//! through real clients and raw bytes. Configs are written in nats-server `.conf` syntax, so
//! these tests also cover the loader.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use jetway::Config;

use crate::harness::{start_conf, RawClient, TestPki, TestServer};

const WAIT: Duration = Duration::from_secs(5);

async fn user_client(server: &TestServer, user: &str, pass: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(user.into(), pass.into())
        .connect(server.url())
        .await
        .expect("user connects")
}

/// The user names of the server's connected clients.
fn user_names(server: &TestServer) -> Vec<String> {
    server
        .core()
        .clients()
        .iter()
        .filter_map(|c| c.identity.lock().user.as_deref().map(String::from))
        .collect()
}

async fn next_msg(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(WAIT, sub.next()).await.expect("message in time").expect("subscription open")
}

async fn no_msg(sub: &mut async_nats::Subscriber) {
    if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
        panic!("unexpected message on {}", m.subject);
    }
}

const PERMISSIONS: &str = r#"
authorization {
  users: [
    { user: limited, password: pw, permissions: {
        publish: { allow: ["allowed.>"], deny: "allowed.secret" }
        subscribe: { allow: ["allowed.>", "jobs v1", "wide.>"], deny: ["wide.secret"] }
    } }
    { user: admin, password: pw }
    { user: responder, password: pw, permissions: { subscribe: "svc", allow_responses: true } }
  ]
}
"#;

#[tokio::test]
async fn denied_publish_and_subscribe_get_nats_server_errors_and_the_connection_stays_open() {
    let server = start_conf(PERMISSIONS).await;
    let mut raw = RawClient::login(server.addr, "limited", "pw").await;
    raw.send(b"PUB denied 2\r\nhi\r\n").await;
    raw.expect("-ERR 'Permissions Violation for Publish to \"denied\"'\r\n").await;
    raw.send(b"PUB allowed.secret 2\r\nhi\r\n").await;
    raw.expect("-ERR 'Permissions Violation for Publish to \"allowed.secret\"'\r\n").await;
    raw.send(b"SUB denied.x 1\r\n").await;
    raw.expect("-ERR 'Permissions Violation for Subscription to \"denied.x\"'\r\n").await;
    raw.send(b"SUB jobs v2 2\r\n").await;
    raw.expect("-ERR 'Permissions Violation for Subscription to \"jobs\" using queue \"v2\"'\r\n").await;
    raw.send(b"PUB allowed.x _R_.forged 0\r\n\r\n").await;
    raw.expect("-ERR 'Permissions Violation for Publish with Reply of \"_R_.forged\"'\r\n").await;
    // Still connected, and what is allowed works.
    raw.send(b"SUB jobs v1 3\r\nSUB allowed.a 4\r\nPUB allowed.a 2\r\nok\r\nPING\r\n").await;
    let seen = raw.expect("PONG\r\n").await;
    assert!(seen.contains("MSG allowed.a 4 2\r\nok\r\n"), "{seen:?}");
    assert!(!seen.contains("-ERR"), "{seen:?}");
}

#[tokio::test]
async fn async_nats_sees_a_permissions_violation_through_its_events() {
    let server = start_conf(PERMISSIONS).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::with_user_and_password("limited".into(), "pw".into())
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    let _ = tx.send(e.to_string());
                }
            }
        })
        .connect(server.url())
        .await
        .expect("connects");
    client.publish("denied", "x".into()).await.expect("queued");
    client.flush().await.expect("flush");
    let error = tokio::time::timeout(WAIT, rx.recv()).await.expect("error event").expect("channel");
    assert!(error.to_lowercase().contains("permissions violation for publish to \"denied\""), "{error}");
}

#[tokio::test]
async fn a_wildcard_subscription_never_delivers_denied_subjects() {
    let server = start_conf(PERMISSIONS).await;
    let limited = user_client(&server, "limited", "pw").await;
    let admin = user_client(&server, "admin", "pw").await;
    let mut sub = limited.subscribe("wide.>").await.expect("sub");
    limited.flush().await.expect("flush");
    admin.publish("wide.secret", "no".into()).await.expect("pub");
    admin.publish("wide.open", "yes".into()).await.expect("pub");
    admin.flush().await.expect("flush");
    assert_eq!(next_msg(&mut sub).await.subject.as_str(), "wide.open");
    no_msg(&mut sub).await;
}

#[tokio::test]
async fn allow_responses_lets_a_user_answer_each_request_once() {
    let server = start_conf(PERMISSIONS).await;
    let responder = user_client(&server, "responder", "pw").await;
    let admin = user_client(&server, "admin", "pw").await;
    let mut requests = responder.subscribe("svc").await.expect("sub");
    responder.flush().await.expect("flush");
    let request = tokio::spawn(async move { admin.request("svc", "ping".into()).await });
    let msg = next_msg(&mut requests).await;
    let reply = msg.reply.expect("reply subject");
    responder.publish(reply.clone(), "pong".into()).await.expect("pub");
    // A second answer is over the default of one response.
    responder.publish(reply, "again".into()).await.expect("pub");
    responder.flush().await.expect("flush");
    let answer = request.await.expect("task").expect("response");
    assert_eq!(&answer.payload[..], b"pong");
    let mut raw = RawClient::login(server.addr, "responder", "pw").await;
    raw.send(b"PUB elsewhere 0\r\n\r\n").await;
    raw.expect("-ERR 'Permissions Violation for Publish to \"elsewhere\"'\r\n").await;
}

#[tokio::test]
async fn bcrypt_passwords_and_no_auth_user_log_clients_in() {
    let hash = bcrypt::hash("s3cret", 4).expect("hash");
    let server = start_conf(&format!(
        "authorization {{ users: [ {{ user: hashed, password: \"{hash}\" }}, \
         {{ user: guest, permissions: {{ publish: \"guest.>\" }} }} ] }}\nno_auth_user: guest"
    ))
    .await;
    let hashed = user_client(&server, "hashed", "s3cret").await;
    hashed.publish("any", "x".into()).await.expect("pub");
    hashed.flush().await.expect("flush");
    let mut wrong = RawClient::connect(server.addr).await;
    wrong.send(b"CONNECT {\"user\":\"hashed\",\"pass\":\"nope\"}\r\n").await;
    assert!(wrong.expect_closed().await.contains("-ERR 'Authorization Violation'"));
    // No credentials: the guest, with the guest's permissions.
    let mut raw = RawClient::connect(server.addr).await;
    raw.send(b"CONNECT {\"verbose\":false}\r\nPUB guest.a 0\r\n\r\nPUB other 0\r\n\r\nPING\r\n").await;
    let seen = raw.expect("PONG\r\n").await;
    assert_eq!(seen.matches("-ERR").count(), 1, "{seen:?}");
    assert!(seen.contains("Permissions Violation for Publish to \"other\""), "{seen:?}");
    let users = user_names(&server);
    assert!(users.contains(&"guest".to_string()), "{users:?}");
}

#[tokio::test]
async fn allowed_connection_types_keep_users_on_their_listeners() {
    let server = start_conf(
        "authorization { users: [ { user: device, password: pw, allowed_connection_types: [MQTT] }, \
         { user: app, password: pw, allowed_connection_types: [\"STANDARD\"] } ] }",
    )
    .await;
    let mut raw = RawClient::connect(server.addr).await;
    raw.send(b"CONNECT {\"user\":\"device\",\"pass\":\"pw\"}\r\n").await;
    let got = raw.expect_closed().await;
    assert!(got.contains("-ERR 'Authorization Violation'"), "{got:?}");
    RawClient::login(server.addr, "app", "pw").await;

    let mqtt_code = |user: &'static str| {
        let addr = server.mqtt_addr();
        async move {
            let mut opts = rumqttc::MqttOptions::new(format!("c-{user}"), addr.ip().to_string(), addr.port());
            opts.set_credentials(user, "pw");
            let (_client, mut events) = rumqttc::AsyncClient::new(opts, 10);
            match tokio::time::timeout(WAIT, events.poll()).await.expect("CONNACK in time") {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack))) => Ok(ack.code),
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => Err(code),
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    assert_eq!(mqtt_code("device").await, Ok(rumqttc::ConnectReturnCode::Success));
    assert_eq!(mqtt_code("app").await, Err(rumqttc::ConnectReturnCode::NotAuthorized));
}

const TWO_ACCOUNTS: &str = r#"
accounts {
  A { users: [ { user: a, password: pw } ], jetstream: enabled,
      exports: [ { stream: "telemetry.>" }, { service: "time", accounts: [B] } ] }
  B { users: [ { user: b, password: pw } ], jetstream: enabled,
      imports: [ { stream: { account: A, subject: "telemetry.>" }, prefix: fromA },
                 { service: { account: A, subject: "time" } } ] }
  C { users: [ { user: c, password: pw } ], max_connections: 1 }
}
"#;

#[tokio::test]
async fn accounts_with_the_same_subjects_do_not_see_each_others_messages_or_streams() {
    let server = start_conf(TWO_ACCOUNTS).await;
    let a = user_client(&server, "a", "pw").await;
    let b = user_client(&server, "b", "pw").await;
    let mut a_sub = a.subscribe("data").await.expect("sub");
    let mut b_sub = b.subscribe("data").await.expect("sub");
    a.flush().await.expect("flush");
    b.flush().await.expect("flush");
    a.publish("data", "from a".into()).await.expect("pub");
    a.flush().await.expect("flush");
    assert_eq!(&next_msg(&mut a_sub).await.payload[..], b"from a");
    no_msg(&mut b_sub).await;

    let a_js = async_nats::jetstream::new(a.clone());
    let b_js = async_nats::jetstream::new(b.clone());
    a_js.create_stream(async_nats::jetstream::stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        ..Default::default()
    })
    .await
    .expect("A creates ORDERS");
    let b_names: Vec<String> = b_js.stream_names().collect::<Vec<_>>().await.into_iter().flatten().collect();
    assert!(b_names.is_empty(), "B sees {b_names:?}");
    b_js.create_stream(async_nats::jetstream::stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        ..Default::default()
    })
    .await
    .expect("B has its own ORDERS");
}

#[tokio::test]
async fn a_stream_import_carries_exactly_the_exported_subjects() {
    let server = start_conf(TWO_ACCOUNTS).await;
    let a = user_client(&server, "a", "pw").await;
    let b = user_client(&server, "b", "pw").await;
    let mut everything = b.subscribe(">").await.expect("sub");
    b.flush().await.expect("flush");
    a.publish("telemetry.dev1.temp", "21".into()).await.expect("pub");
    a.publish("private.notes", "no".into()).await.expect("pub");
    a.flush().await.expect("flush");
    let got = next_msg(&mut everything).await;
    assert_eq!(got.subject.as_str(), "fromA.telemetry.dev1.temp");
    assert_eq!(&got.payload[..], b"21");
    no_msg(&mut everything).await;
}

#[tokio::test]
async fn a_service_import_answers_requests_from_the_importing_account() {
    let server = start_conf(TWO_ACCOUNTS).await;
    let a = user_client(&server, "a", "pw").await;
    let b = user_client(&server, "b", "pw").await;
    let mut requests = a.subscribe("time").await.expect("sub");
    a.flush().await.expect("flush");
    let responder = tokio::spawn({
        let a = a.clone();
        async move {
            for _ in 0..2 {
                let Some(msg) = requests.next().await else { return };
                let reply = msg.reply.expect("reply");
                assert!(reply.starts_with("_R_."), "mapped reply {reply}");
                a.publish(reply, "noon".into()).await.expect("respond");
            }
        }
    });
    for _ in 0..2 {
        let answer =
            tokio::time::timeout(WAIT, b.request("time", "?".into())).await.expect("in time").expect("reply");
        assert_eq!(&answer.payload[..], b"noon");
    }
    responder.await.expect("responder");
}

#[tokio::test]
async fn an_account_connection_limit_refuses_the_next_client() {
    let server = start_conf(TWO_ACCOUNTS).await;
    let _first = RawClient::login(server.addr, "c", "pw").await;
    let mut second = RawClient::connect(server.addr).await;
    second.send(b"CONNECT {\"user\":\"c\",\"pass\":\"pw\"}\r\n").await;
    let got = second.expect_closed().await;
    assert!(got.contains("-ERR 'maximum account active connections exceeded'"), "{got:?}");
}

async fn api(client: &async_nats::Client, subject: &str, body: serde_json::Value) -> serde_json::Value {
    let reply = tokio::time::timeout(WAIT, client.request(subject.to_string(), body.to_string().into()))
        .await
        .expect("answer in time")
        .expect("answer");
    serde_json::from_slice(&reply.payload).expect("json")
}

fn err_code(answer: &serde_json::Value) -> Option<u64> {
    answer["error"]["err_code"].as_u64()
}

/// A stream config on the subjects `<name>.>`; `max_bytes` -1 is unlimited.
fn stream(name: &str, storage: &str, max_bytes: i64) -> serde_json::Value {
    serde_json::json!({ "name": name, "subjects": [format!("{name}.>")], "storage": storage, "max_bytes": max_bytes })
}

#[tokio::test]
async fn account_jetstream_limits_are_enforced_with_nats_server_error_codes() {
    let server = start_conf(
        r#"accounts {
             L { users: [ { user: l, password: pw } ],
                 jetstream: { max_streams: 2, max_consumers: 1, max_mem: 10000, max_file: 20000 } }
             N { users: [ { user: n, password: pw } ] }
           }"#,
    )
    .await;
    let l = user_client(&server, "l", "pw").await;
    let ok = api(&l, "$JS.API.STREAM.CREATE.S1", stream("S1", "memory", 8000)).await;
    assert_eq!(err_code(&ok), None, "{ok}");
    let mem = api(&l, "$JS.API.STREAM.CREATE.S2", stream("S2", "memory", 4000)).await;
    assert_eq!(err_code(&mem), Some(10028), "{mem}");
    let file = api(&l, "$JS.API.STREAM.CREATE.S2", stream("S2", "file", 30000)).await;
    assert_eq!(err_code(&file), Some(10047), "{file}");
    let ok = api(&l, "$JS.API.STREAM.CREATE.S2", stream("S2", "file", 1000)).await;
    assert_eq!(err_code(&ok), None, "{ok}");
    let third = api(&l, "$JS.API.STREAM.CREATE.S3", stream("S3", "file", 0)).await;
    assert_eq!(err_code(&third), Some(10027), "{third}");
    let consumer = |name: &str| serde_json::json!({ "stream_name": "S1", "config": { "durable_name": name, "ack_policy": "explicit" } });
    let first = api(&l, "$JS.API.CONSUMER.CREATE.S1.C1", consumer("C1")).await;
    assert_eq!(err_code(&first), None, "{first}");
    let second = api(&l, "$JS.API.CONSUMER.CREATE.S1.C2", consumer("C2")).await;
    assert_eq!(err_code(&second), Some(10026), "{second}");

    let n = user_client(&server, "n", "pw").await;
    let info = api(&n, "$JS.API.INFO", serde_json::json!({})).await;
    assert_eq!(err_code(&info), Some(10039), "{info}");
}

/// Publishes `count` messages of 300 bytes to `subject` and returns what each pub ack said:
/// the sequence, or the JetStream error code.
async fn publish_outcomes(
    js: &async_nats::jetstream::Context,
    subject: &str,
    count: usize,
) -> Vec<Result<u64, Option<u64>>> {
    let mut outcomes = Vec::new();
    for _ in 0..count {
        let ack = js.publish(subject.to_string(), vec![b'x'; 300].into()).await.expect("sent");
        let ack = tokio::time::timeout(WAIT, ack).await.expect("ack in time");
        outcomes.push(ack.map(|a| a.sequence).map_err(|e| crate::jetstream::err_code(&e)));
    }
    outcomes
}

/// The first `stored` (within `expected`) publishes were stored, every later one refused
/// with `code`.
fn assert_refused_after(
    outcomes: &[Result<u64, Option<u64>>],
    expected: std::ops::RangeInclusive<usize>,
    code: u64,
) {
    let stored = outcomes.iter().take_while(|o| o.is_ok()).count();
    assert!(expected.contains(&stored), "{outcomes:?}");
    assert!(outcomes[stored..].iter().all(|o| *o == Err(Some(code))), "{outcomes:?}");
}

#[tokio::test]
async fn publishes_past_an_account_storage_limit_are_refused_with_10002() {
    let server = start_conf(
        r#"accounts {
             L { users: [ { user: l, password: pw } ], jetstream: { max_mem: 2000, max_file: 2000 } }
             M { users: [ { user: m, password: pw } ], jetstream: enabled }
           }"#,
    )
    .await;
    let l = user_client(&server, "l", "pw").await;
    let js = async_nats::jetstream::new(l.clone());
    for (name, storage) in [("LF", "file"), ("LM", "memory")] {
        let created = api(&l, &format!("$JS.API.STREAM.CREATE.{name}"), stream(name, storage, -1)).await;
        assert_eq!(err_code(&created), None, "{created}");
        // 300 bytes of payload plus subject and overhead: the sixth or seventh message no
        // longer fits in 2,000 bytes, and every later one is refused too.
        assert_refused_after(&publish_outcomes(&js, &format!("{name}.x"), 10).await, 5..=6, 10002);
    }
    // Raising a stream's reservation beyond the account's limit is refused too.
    let update = api(&l, "$JS.API.STREAM.UPDATE.LF", stream("LF", "file", 5000)).await;
    assert_eq!(err_code(&update), Some(10047), "{update}");
    // Another account is not held by L's limits.
    let m = user_client(&server, "m", "pw").await;
    let created = api(&m, "$JS.API.STREAM.CREATE.MF", stream("MF", "file", -1)).await;
    assert_eq!(err_code(&created), None, "{created}");
    let outcomes = publish_outcomes(&async_nats::jetstream::new(m), "MF.x", 10).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    // Space freed by a purge can be used again at once.
    let purged = api(&l, "$JS.API.STREAM.PURGE.LF", serde_json::json!({})).await;
    assert_eq!(purged["success"], true, "{purged}");
    assert!(publish_outcomes(&js, "LF.x", 1).await[0].is_ok());
}

#[tokio::test]
async fn publishes_past_the_server_memory_limit_are_refused_with_10023() {
    let server = TestServer::start_with(|c| c.jetstream.max_memory_store = Some(2000)).await;
    let nc = server.client().await;
    let created = api(&nc, "$JS.API.STREAM.CREATE.MEM", stream("MEM", "memory", -1)).await;
    assert_eq!(err_code(&created), None, "{created}");
    let js = async_nats::jetstream::new(nc.clone());
    // nats-server refuses once what is stored *exceeds* the limit: the message that crosses it
    // is still stored.
    assert_refused_after(&publish_outcomes(&js, "MEM.x", 10).await, 6..=7, 10023);
    let more = api(&nc, "$JS.API.STREAM.CREATE.MEM2", stream("MEM2", "memory", 4000)).await;
    assert_eq!(err_code(&more), Some(10028), "a reservation beyond the server's memory: {more}");
    // Deleting the stream gives the memory back.
    let deleted = api(&nc, "$JS.API.STREAM.DELETE.MEM", serde_json::json!({})).await;
    assert_eq!(deleted["success"], true, "{deleted}");
    let again = api(&nc, "$JS.API.STREAM.CREATE.MEM", stream("MEM", "memory", -1)).await;
    assert_eq!(err_code(&again), None, "{again}");
    assert!(publish_outcomes(&js, "MEM.x", 1).await[0].is_ok());
}

#[tokio::test]
async fn verify_and_map_logs_the_certificate_user_in() {
    let pki = TestPki::new();
    let server = TestServer::start_tls(&pki, |c| {
        let loaded = Config::from_conf_str(
            r#"authorization { users: [ { user: "CN=alice,O=Jetway Development",
                 permissions: { publish: "alice.>", subscribe: "alice.>" } } ] }"#,
            Path::new("mtls.conf"),
        )
        .expect("config");
        c.authorization = loaded.config.authorization;
        if let Some(t) = c.tls.as_mut() {
            t.verify_and_map = true;
        }
    })
    .await;
    let (cert, key) = pki.client_files("alice", jetway::certs::Validity::days(1));
    let alice =
        server.tls_client(server.tls_options(&pki).add_client_certificate(cert, key)).await.expect("alice");
    let mut sub = alice.subscribe("alice.inbox").await.expect("sub");
    alice.publish("alice.inbox", "hi".into()).await.expect("pub");
    assert_eq!(&next_msg(&mut sub).await.payload[..], b"hi");
    let users = user_names(&server);
    assert_eq!(users, vec!["CN=alice,O=Jetway Development".to_string()]);
    let (cert, key) = pki.client_files("mallory", jetway::certs::Validity::days(1));
    let refused = server.tls_client(server.tls_options(&pki).add_client_certificate(cert, key)).await;
    assert!(refused.is_err(), "a certificate without a user is refused");
}

const MQTT_PERMS: &str = r#"
authorization { users: [
  { user: sensor, password: pw, permissions: { publish: "sensors.>", subscribe: "cmd.>" } }
] }
"#;

#[tokio::test]
async fn mqtt5_denied_publish_and_subscribe_get_not_authorized_codes() {
    use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, SubscribeReasonCode};
    use rumqttc::v5::mqttbytes::QoS;
    let server = start_conf(MQTT_PERMS).await;
    let addr = server.mqtt_addr();
    let mut opts = rumqttc::v5::MqttOptions::new("s5", addr.ip().to_string(), addr.port());
    opts.set_credentials("sensor", "pw");
    let (client, mut events) = rumqttc::v5::AsyncClient::new(opts, 10);
    client.subscribe("secret/#", QoS::AtLeastOnce).await.expect("queued");
    client.publish("admin/reset", QoS::AtLeastOnce, false, "x").await.expect("queued");
    client.publish("sensors/t1", QoS::AtLeastOnce, false, "21").await.expect("queued");
    let (mut suback, mut pubacks) = (None, Vec::new());
    let deadline = tokio::time::Instant::now() + WAIT;
    while suback.is_none() || pubacks.len() < 2 {
        match tokio::time::timeout_at(deadline, events.poll()).await.expect("in time").expect("connected") {
            rumqttc::v5::Event::Incoming(Packet::SubAck(ack)) => suback = Some(ack.return_codes),
            rumqttc::v5::Event::Incoming(Packet::PubAck(ack)) => pubacks.push(ack.reason),
            _ => {}
        }
    }
    assert_eq!(suback, Some(vec![SubscribeReasonCode::NotAuthorized]));
    assert_eq!(pubacks, vec![PubAckReason::NotAuthorized, PubAckReason::Success]);
}

#[tokio::test]
async fn mqtt311_denied_subscribe_fails_and_a_denied_publish_is_dropped_on_a_kept_connection() {
    use rumqttc::{Event, Packet, QoS, SubscribeReasonCode};
    let server = start_conf(MQTT_PERMS).await;
    let core = server.core().clone();
    let addr = server.mqtt_addr();
    let mut opts = rumqttc::MqttOptions::new("s4", addr.ip().to_string(), addr.port());
    opts.set_credentials("sensor", "pw");
    let (client, mut events) = rumqttc::AsyncClient::new(opts, 10);
    client.subscribe("secret/#", QoS::AtLeastOnce).await.expect("queued");
    client.subscribe("cmd/#", QoS::AtMostOnce).await.expect("queued");
    client.publish("admin/reset", QoS::AtLeastOnce, false, "x").await.expect("queued");
    let mut codes = Vec::new();
    let mut acked = false;
    let deadline = tokio::time::Instant::now() + WAIT;
    while codes.len() < 2 || !acked {
        match tokio::time::timeout_at(deadline, events.poll()).await.expect("in time").expect("connected") {
            Event::Incoming(Packet::SubAck(ack)) => codes.extend(ack.return_codes),
            Event::Incoming(Packet::PubAck(_)) => acked = true,
            _ => {}
        }
    }
    assert_eq!(codes, vec![SubscribeReasonCode::Failure, SubscribeReasonCode::Success(QoS::AtMostOnce)]);
    // Still connected: an allowed publish goes through.
    let before = core.stats.in_msgs.load(std::sync::atomic::Ordering::Relaxed);
    client.publish("sensors/t", QoS::AtLeastOnce, false, "ok").await.expect("queued");
    loop {
        match tokio::time::timeout_at(deadline, events.poll()).await.expect("in time").expect("connected") {
            Event::Incoming(Packet::PubAck(_)) => break,
            _ => continue,
        }
    }
    assert!(core.stats.in_msgs.load(std::sync::atomic::Ordering::Relaxed) > before);
}

/// nkey users (`users: [{nkey: U…}]`): async-nats signs the INFO nonce with the seed; the
/// server checks the signature against the configured public key.
#[tokio::test]
async fn an_nkey_user_logs_in_with_its_seed_and_keeps_its_permissions() {
    let key = nkeys::KeyPair::new_user();
    let conf = format!(
        r#"
authorization {{
  users: [
    {{ nkey: "{}", permissions: {{ publish: "nk.>", subscribe: "nk.>" }} }}
    {{ user: admin, password: pw }}
  ]
}}
"#,
        key.public_key()
    );
    let server = start_conf(&conf).await;
    let seed = key.seed().expect("seed");
    let client = async_nats::ConnectOptions::with_nkey(seed).connect(server.url()).await.expect("nkey login");
    let mut sub = client.subscribe("nk.x").await.expect("sub");
    client.publish("nk.x", "signed".into()).await.expect("publish");
    assert_eq!(&next_msg(&mut sub).await.payload[..], b"signed");
    assert!(user_names(&server).contains(&key.public_key()), "named by its public key");
    let stream = tokio::net::TcpStream::connect(server.addr).await.expect("connect");
    let mut raw = RawClient { stream, received: Vec::new() };
    let info = raw.expect("\r\n").await;
    let nonce_of = |info: &str| -> String {
        let json: serde_json::Value =
            serde_json::from_str(info.trim_start_matches("INFO ").trim()).expect("INFO json");
        json["nonce"].as_str().map(String::from).unwrap_or_default()
    };
    let nonce = nonce_of(&info);
    assert_eq!(nonce.len(), 15, "INFO carries nats-server's 15-character nonce: {info}");
    let mut other = RawClient {
        stream: tokio::net::TcpStream::connect(server.addr).await.expect("connect"),
        received: Vec::new(),
    };
    assert_ne!(nonce_of(&other.expect("\r\n").await), nonce, "each connection gets its own nonce");
    // The public key is no user name, and a signature by another key does not verify.
    raw.send(format!("CONNECT {{\"user\":\"{}\",\"verbose\":false}}\r\n", key.public_key()).as_bytes()).await;
    raw.expect("-ERR 'Authorization Violation'").await;
    let stranger = nkeys::KeyPair::new_user().seed().expect("seed");
    let refused = async_nats::ConnectOptions::with_nkey(stranger).connect(server.url());
    let refused = tokio::time::timeout(WAIT, refused).await.expect("answered in time");
    assert!(refused.is_err(), "a stranger's seed logged in");
    // Password users are unaffected.
    user_client(&server, "admin", "pw").await;
}
