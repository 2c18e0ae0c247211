//! A configuration reload (`ServerHandle::reload_with`, what SIGHUP calls) under connected
//! NATS and MQTT clients: new logins follow the new users; a connected client stays while the
//! new configuration would log it in the same way, and is closed otherwise.

use std::time::Duration;

use futures::StreamExt;

use crate::harness::{start_conf, RawClient, TestServer};

const BEFORE: &str = r#"
authorization {
  users: [
    {user: alice, password: a}
    {user: bob, password: b}
    {user: carol, password: c, permissions: {publish: "x.>", subscribe: "x.>"}}
    {user: device, password: d, allowed_connection_types: ["MQTT"]}
    {user: retired, password: r, allowed_connection_types: ["MQTT"]}
  ]
}
"#;

/// The retired device removed; Alice and the device unchanged; Bob's password and Carol's permissions changed; Dave and a
/// second device added.
const AFTER: &str = r#"
authorization {
  users: [
    {user: alice, password: a}
    {user: bob, password: b2}
    {user: carol, password: c, permissions: {publish: "y.>", subscribe: "y.>"}}
    {user: device, password: d, allowed_connection_types: ["MQTT"]}
    {user: dave, password: e}
    {user: device2, password: d2, allowed_connection_types: ["MQTT"]}
  ]
}
"#;

/// The running configuration with the users of `conf`.
fn with_users_of(server: &TestServer, conf: &str) -> jetway::Config {
    let loaded = jetway::Config::from_conf_str(conf, std::path::Path::new("reload.conf")).expect("loads");
    let mut config = server.core().config.clone();
    config.authorization = loaded.config.authorization;
    config.accounts = loaded.config.accounts;
    config
}

async fn login(
    server: &TestServer,
    user: &str,
    pass: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::with_user_and_password(user.into(), pass.into()).connect(server.url()).await
}

fn mqtt_device(server: &TestServer, id: &str, user: &str, pass: &str) -> rumqttc::MqttOptions {
    let addr = server.mqtt_addr();
    let mut options = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_credentials(user, pass);
    options
}

#[tokio::test]
async fn a_reload_keeps_unchanged_logins_and_closes_the_others() {
    let server = start_conf(BEFORE).await;
    let alice = login(&server, "alice", "a").await.expect("alice");
    let mut bob = RawClient::login(server.addr, "bob", "b").await;
    let mut carol = RawClient::login(server.addr, "carol", "c").await;
    let mut device = crate::mqtt::v4_with(server.mqtt_addr(), "dev-1", |o| {
        *o = mqtt_device(&server, "dev-1", "device", "d")
    })
    .await;
    let mut retired = crate::mqtt::v4_with(server.mqtt_addr(), "dev-r", |o| {
        *o = mqtt_device(&server, "dev-r", "retired", "r")
    })
    .await;
    assert!(login(&server, "dave", "e").await.is_err(), "not a user yet");

    server.handle.as_ref().expect("running").reload_with(with_users_of(&server, AFTER));

    // A changed password or changed permissions: the client is told and closed.
    for raw in [&mut bob, &mut carol] {
        raw.expect("-ERR 'Authorization Violation'\r\n").await;
        raw.expect_closed().await;
    }
    // A removed MQTT user's connection ends.
    let ended = async {
        loop {
            match retired.events.recv().await {
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), ended).await.expect("the retired device was closed");
    // Alice and the device stay connected and work.
    let mut sub = alice.subscribe("after.reload").await.expect("sub");
    alice.publish("after.reload", "still here".into()).await.expect("publish");
    let got = tokio::time::timeout(Duration::from_secs(5), sub.next()).await.expect("in time").expect("msg");
    assert_eq!(&got.payload[..], b"still here");
    device.subscribe("dev/echo", rumqttc::QoS::AtLeastOnce).await;
    device.client.publish("dev/echo", rumqttc::QoS::AtLeastOnce, false, "up").await.expect("publish");
    assert_eq!(&device.next_publish().await.payload[..], b"up");
    // New logins follow the new users.
    login(&server, "dave", "e").await.expect("dave is a user now");
    login(&server, "bob", "b2").await.expect("bob's new password");
    assert!(login(&server, "bob", "b").await.is_err(), "bob's old password");
    crate::mqtt::v4_with(server.mqtt_addr(), "dev-2", |o| {
        *o = mqtt_device(&server, "dev-2", "device2", "d2")
    })
    .await;
}

#[tokio::test]
async fn a_reload_whose_users_do_not_build_changes_nothing() {
    let server = start_conf(BEFORE).await;
    let alice = login(&server, "alice", "a").await.expect("alice");
    let broken =
        with_users_of(&server, r#"authorization { users: [{user: alice, password: a, account: NOPE}] }"#);
    server.handle.as_ref().expect("running").reload_with(broken);
    alice.flush().await.expect("alice is still connected");
    login(&server, "bob", "b").await.expect("the running users still log in");
}
