//! The raw `$JS.API` contract: envelopes, strict JSON, account info, domains.

use async_nats::jetstream::stream;
use serde_json::Value;

use super::js;
use crate::harness::TestServer;

async fn request(nc: &async_nats::Client, subject: &str, body: &str) -> Value {
    let reply = nc.request(subject.to_string(), body.to_string().into()).await.unwrap();
    serde_json::from_slice(&reply.payload).unwrap()
}

#[tokio::test]
async fn account_info_reports_usage_limits_and_api_level() {
    let server = TestServer::start().await;
    let js = js(&server).await;
    js.create_stream(stream::Config { name: "I".into(), ..Default::default() }).await.unwrap();
    js.publish("I", "x".into()).await.unwrap().await.unwrap();
    let nc = server.client().await;
    let info = request(&nc, "$JS.API.INFO", "").await;
    assert_eq!(info["type"], "io.nats.jetstream.api.v1.account_info_response");
    assert_eq!(info["streams"], 1);
    assert!(info["storage"].as_u64().unwrap() > 0);
    assert!(info["limits"]["max_storage"].as_i64().unwrap() > 0, "derived from the disk");
    assert!(info["limits"]["max_memory"].as_i64().unwrap() > 0, "derived from memory");
    assert_eq!(info["api"]["level"], 1);
    assert!(info["api"]["total"].as_u64().unwrap() >= 2);
}

#[tokio::test]
async fn unknown_request_fields_are_refused_with_10025() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    let resp =
        request(&nc, "$JS.API.STREAM.CREATE.U", r#"{"name":"U","subjects":["u"],"colour":"red"}"#).await;
    assert_eq!(resp["type"], "io.nats.jetstream.api.v1.stream_create_response");
    assert_eq!(resp["error"]["err_code"], 10025);
    assert_eq!(resp["error"]["code"], 400);
    let resp = request(&nc, "$JS.API.STREAM.CREATE.X", r#"{"name":"Y"}"#).await;
    assert_eq!(resp["error"]["err_code"], 10056, "name in subject must match");
}

#[tokio::test]
async fn domain_prefixes_the_api_and_is_in_pub_acks() {
    let server = TestServer::start_with(|c| c.jetstream.domain = Some("hub".into())).await;
    let nc = server.client().await;
    let js = async_nats::jetstream::with_domain(nc.clone(), "hub");
    js.create_stream(stream::Config {
        name: "DOM".into(),
        subjects: vec!["dom".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let ack = js.publish("dom", "x".into()).await.unwrap().await.unwrap();
    assert_eq!(ack.domain, "hub");
    let info = request(&nc, "$JS.hub.API.INFO", "").await;
    assert_eq!(info["domain"], "hub");
}
