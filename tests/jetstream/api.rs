//! The raw `$JS.API` contract: envelopes, strict JSON, account info, domains.

use async_nats::jetstream::stream;
use serde_json::Value;

use super::js;
use crate::harness::TestServer;

async fn request(nc: &async_nats::Client, subject: &str, body: &str) -> Value {
    let reply = nc.request(subject.to_string(), body.to_string().into()).await.unwrap();
    serde_json::from_slice(&reply.payload).unwrap()
}

/// Asserts a refusal as nats-server words it: `code`, `err_code` and `description`.
async fn assert_refused(nc: &async_nats::Client, subject: &str, body: &str, expected: (u16, u16, &str)) {
    let resp = request(nc, subject, body).await;
    let error = &resp["error"];
    let got = (error["code"].as_u64(), error["err_code"].as_u64(), error["description"].as_str());
    let (code, err_code, description) = expected;
    assert_eq!(got, (Some(code.into()), Some(err_code.into()), Some(description)), "{body}: {resp}");
}

/// A `$JS.API` subject no API serves (a newer API, a request missing its name) is a bad
/// request, in the system response nats-server's dispatcher builds for it.
#[tokio::test]
async fn unknown_api_subjects_are_bad_requests() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    for subject in ["$JS.API.FOO", "$JS.API.CONSUMER.BOGUS.S.C", "$JS.API.STREAM.INFO"] {
        assert_refused(&nc, subject, "", (400, 10003, "bad request")).await;
        let resp = request(&nc, subject, "").await;
        assert_eq!(resp["type"], "io.nats.jetstream.api.v1.system_response", "{subject}");
    }
}

/// `$JS.API.CONSUMER.RESET` (nats-server 2.14): back to just past the ack floor, then to a
/// sequence; delivery starts there with the consumer sequence at 1. A policy that does not
/// allow a sequence refuses it with 10204.
#[tokio::test]
async fn a_consumer_reset_moves_where_delivery_starts() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    let js = js(&server).await;
    let s = js
        .create_stream(stream::Config {
            name: "RST".into(),
            subjects: vec!["rst.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    for i in 0..5 {
        js.publish(format!("rst.{i}"), "x".into()).await.unwrap().await.unwrap();
    }
    let config = async_nats::jetstream::consumer::pull::Config {
        durable_name: Some("c".into()),
        ..Default::default()
    };
    let c = s.create_consumer(config).await.unwrap();
    let mut batch = c.fetch().max_messages(2).messages().await.unwrap();
    use futures::StreamExt;
    batch.next().await.unwrap().unwrap().ack().await.unwrap();
    let floor = request(&nc, "$JS.API.CONSUMER.RESET.RST.c", "").await;
    assert_eq!(
        (floor["reset_seq"].as_u64(), floor["num_ack_pending"].as_u64()),
        (Some(2), Some(0)),
        "{floor}"
    );
    let to_four = request(&nc, "$JS.API.CONSUMER.RESET.RST.c", r#"{"seq":4}"#).await;
    assert_eq!(to_four["type"], "io.nats.jetstream.api.v1.consumer_reset_response");
    assert_eq!(
        (to_four["delivered"]["stream_seq"].as_u64(), to_four["num_pending"].as_u64()),
        (Some(3), Some(2))
    );
    let m = c.fetch().max_messages(1).messages().await.unwrap().next().await.unwrap().unwrap();
    let info = m.info().unwrap();
    assert_eq!((info.stream_sequence, info.consumer_sequence, info.delivered), (4, 1, 1));
    let config = async_nats::jetstream::consumer::pull::Config {
        durable_name: Some("new".into()),
        deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::New,
        ..Default::default()
    };
    s.create_consumer(config).await.unwrap();
    assert_refused(
        &nc,
        "$JS.API.CONSUMER.RESET.RST.new",
        r#"{"seq":2}"#,
        (400, 10204, "invalid reset: not allowed"),
    )
    .await;
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
    assert_eq!(resp["error"]["description"], r#"invalid JSON: json: unknown field "colour""#, "Go's words");
    let create = r#"{"stream_name":"U","config":{"durable_name":"d","colour":"red"}}"#;
    let resp = request(&nc, "$JS.API.CONSUMER.CREATE.U.d", create).await;
    assert_eq!(resp["error"]["description"], r#"invalid JSON: json: unknown field "colour""#);
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

#[tokio::test]
async fn empty_optional_fields_are_left_out_as_nats_server_does() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    let info = request(&nc, "$JS.API.INFO", "").await;
    assert!(info.get("domain").is_none(), "no domain, no field: {info}");
    request(&nc, "$JS.API.STREAM.CREATE.E", r#"{"name":"E","subjects":["e.>"]}"#).await;
    let list = request(&nc, "$JS.API.STREAM.LIST", "").await;
    assert!(list.get("missing").is_none(), "{list}");
    let list = request(&nc, "$JS.API.CONSUMER.LIST.E", "").await;
    assert!(list.get("missing").is_none(), "{list}");
    let info = request(&nc, "$JS.API.STREAM.INFO.E", r#"{"deleted_details":true}"#).await;
    assert!(info["state"].get("deleted").is_none(), "nothing deleted: {info}");
}

#[tokio::test]
async fn times_are_written_as_go_writes_them() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    request(&nc, "$JS.API.STREAM.CREATE.T", r#"{"name":"T","subjects":["t"]}"#).await;
    let create = r#"{"stream_name":"T","config":{"durable_name":"d","ack_policy":"explicit"}}"#;
    request(&nc, "$JS.API.CONSUMER.CREATE.T.d", create).await;
    // RFC 3339 with the fraction's trailing zeros dropped (Go's RFC3339Nano).
    for (asked, written) in [
        ("2030-01-01T00:00:00Z", "2030-01-01T00:00:00Z"),
        ("2030-01-01T00:00:00.5Z", "2030-01-01T00:00:00.5Z"),
    ] {
        let paused =
            request(&nc, "$JS.API.CONSUMER.PAUSE.T.d", &format!(r#"{{"pause_until":"{asked}"}}"#)).await;
        assert_eq!(paused["pause_until"], written, "{paused}");
    }
}

#[tokio::test]
async fn stream_configs_are_refused_with_nats_server_codes_and_texts() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    request(&nc, "$JS.API.STREAM.CREATE.O", r#"{"name":"O","subjects":["o"]}"#).await;
    let cases = [
        (
            r#"{"name":"M","subjects":["mo"],"mirror":{"name":"O"}}"#,
            400,
            10034,
            "stream mirrors can not contain subjects",
        ),
        (
            r#"{"name":"M","mirror":{"name":"O"},"sources":[{"name":"O"}]}"#,
            400,
            10031,
            "stream mirrors can not also contain other sources",
        ),
        (
            r#"{"name":"M","mirror":{"name":"O"},"first_seq":5}"#,
            400,
            10143,
            "stream mirrors can not have first sequence configured",
        ),
        (
            r#"{"name":"M","mirror":{"name":"O","filter_subject":"o","subject_transforms":[{"src":"o","dest":"p"}]}}"#,
            400,
            10150,
            "mirror with multiple subject transforms cannot also have a single subject filter",
        ),
        (r#"{"name":"M","mirror":{"name":"M"}}"#, 500, 10052, "detected cycle"),
        (r#"{"name":"M","subjects":["m"],"sources":[{"name":"M"}]}"#, 500, 10052, "detected cycle"),
        (r#"{"name":"M","subjects":["m"],"max_age":-5}"#, 500, 10052, "max age can not be negative"),
        (r#"{"name":"M","subjects":["m","m"]}"#, 500, 10052, r#"subject "m" overlaps with "m""#),
        (r#"{"name":"M","subjects":["m.>","m.x"]}"#, 500, 10052, r#"subject "m.>" overlaps with "m.x""#),
        (r#"{"name":"M","subjects":["m..x"]}"#, 500, 10052, "invalid subject"),
        (r#"{"name":"M","subjects":[">"]}"#, 500, 10052, "capturing all subjects requires no-ack to be true"),
        (
            r#"{"name":"M","subjects":["$SYS.x"]}"#,
            500,
            10052,
            "subjects that overlap with system api require no-ack to be true",
        ),
        (
            r#"{"name":"M","subjects":["$JSC.x"]}"#,
            500,
            10052,
            "subjects that overlap with jetstream api require no-ack to be true",
        ),
        (
            r#"{"name":"M","subjects":["m"],"discard_new_per_subject":true,"max_msgs_per_subject":2}"#,
            500,
            10052,
            "discard new per subject requires discard new policy to be set",
        ),
        (
            r#"{"name":"M","subjects":["m"],"discard":"new","discard_new_per_subject":true}"#,
            500,
            10052,
            "discard new per subject requires max msgs per subject > 0",
        ),
        (r#"{"name":"M","subjects":["m"],"num_replicas":6}"#, 500, 10052, "maximum replicas is 5"),
        (
            r#"{"name":"M","subjects":["m"],"num_replicas":-1}"#,
            400,
            10133,
            "replicas count cannot be negative",
        ),
        (
            r#"{"name":"M","subjects":["m"],"compression":"zstd"}"#,
            400,
            10025,
            "invalid JSON: unknown compression algorithm",
        ),
        (
            r#"{"name":"M","subjects":["m"],"duplicate_window":50000000}"#,
            500,
            10052,
            "duplicates window needs to be >= 100ms",
        ),
        (
            r#"{"name":"M","subjects":["m"],"subject_delete_marker_ttl":500000000}"#,
            500,
            10052,
            "subject delete marker TTL must be at least 1 second",
        ),
    ];
    for (config, code, err_code, description) in cases {
        assert_refused(&nc, "$JS.API.STREAM.CREATE.M", config, (code, err_code, description)).await;
    }
}

#[tokio::test]
async fn deleting_a_missing_message_fails_as_each_nats_server_store_does() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    for (name, storage) in [("F", "file"), ("MEM", "memory")] {
        let config = format!(r#"{{"name":"{name}","subjects":["{name}.x"],"storage":"{storage}"}}"#);
        request(&nc, &format!("$JS.API.STREAM.CREATE.{name}"), &config).await;
        for _ in 0..3 {
            nc.request(format!("{name}.x"), "m".into()).await.unwrap();
        }
        let delete = |seq: u64| {
            let nc = nc.clone();
            async move {
                request(&nc, &format!("$JS.API.STREAM.MSG.DELETE.{name}"), &format!(r#"{{"seq":{seq}}}"#))
                    .await
            }
        };
        assert_eq!(delete(2).await["success"], true);
        let again = delete(2).await;
        assert_eq!(
            (again["error"]["code"].clone(), again["error"]["err_code"].clone()),
            (400.into(), 10043.into()),
            "{again}"
        );
        assert_eq!(again["error"]["description"], "sequence 2 not found");
        let (zero, past) = (delete(0).await, delete(99).await);
        if storage == "file" {
            assert_eq!(
                (zero["error"]["err_code"].clone(), zero["error"]["description"].clone()),
                (10057.into(), "no message found".into()),
                "{zero}"
            );
            assert_eq!(
                (past["error"]["err_code"].clone(), past["error"]["description"].clone()),
                (10057.into(), "stream store EOF".into()),
                "{past}"
            );
            assert_eq!(past["error"]["code"], 500);
            // Below the first message (here: purged) too.
            request(&nc, &format!("$JS.API.STREAM.PURGE.{name}"), "").await;
            let below = delete(1).await;
            assert_eq!(below["error"]["description"], "no message found", "{below}");
        } else {
            assert_eq!(zero["error"]["description"], "sequence 0 not found", "{zero}");
            assert_eq!(past["error"]["description"], "sequence 99 not found", "{past}");
        }
    }
}

#[tokio::test]
async fn responses_carry_what_nats_server_puts_in_them() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    let created = request(&nc, "$JS.API.STREAM.CREATE.R", r#"{"name":"R","subjects":["r"]}"#).await;
    assert_eq!(created["config"]["duplicate_window"], 120_000_000_000_u64, "{created}");
    // The cluster block is STREAM.INFO's only (a single server: its name as leader).
    assert!(created.get("cluster").is_none(), "{created}");
    let info = request(&nc, "$JS.API.STREAM.INFO.R", "").await;
    assert!(info["cluster"]["leader"].is_string(), "{info}");
    let list = request(&nc, "$JS.API.STREAM.LIST", "").await;
    assert!(list["streams"][0].get("cluster").is_none(), "{list}");
    let create = r#"{"stream_name":"R","config":{"durable_name":"d","ack_policy":"explicit"}}"#;
    let consumer = request(&nc, "$JS.API.CONSUMER.CREATE.R.d", create).await;
    assert!(consumer.get("cluster").is_none(), "{consumer}");
    assert!(request(&nc, "$JS.API.CONSUMER.INFO.R.d", "").await.get("cluster").is_none());
    // A stream fed by sources gets no default duplicate window.
    let sourced = request(&nc, "$JS.API.STREAM.CREATE.SR", r#"{"name":"SR","sources":[{"name":"R"}]}"#).await;
    assert!(sourced["config"].get("duplicate_window").is_none(), "{sourced}");
}

#[tokio::test]
async fn consumer_start_positions_are_checked_with_nats_server_texts() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    request(&nc, "$JS.API.STREAM.CREATE.SP", r#"{"name":"SP","subjects":["sp.>"]}"#).await;
    let cases = [
        (r#"{"deliver_policy":"last_per_subject"}"#, "consumer delivery policy is deliver last per subject, but optional filter subject is not set"),
        (r#"{"deliver_policy":"all","opt_start_seq":3}"#, "consumer delivery policy is deliver all, but optional start sequence is also set"),
        (r#"{"deliver_policy":"new","opt_start_time":"2026-01-01T00:00:00Z"}"#, "consumer delivery policy is deliver new, but optional start time is also set"),
        (r#"{"deliver_policy":"by_start_sequence"}"#, "consumer delivery policy is deliver by start sequence, but optional start sequence is not set"),
        (r#"{"deliver_policy":"by_start_time","opt_start_seq":2,"opt_start_time":"2026-01-01T00:00:00Z"}"#, "consumer delivery policy is deliver by start time, but optional start start sequence is also set"),
    ];
    for (config, description) in cases {
        let body = format!(r#"{{"stream_name":"SP","config":{config}}}"#);
        let resp = request(&nc, "$JS.API.CONSUMER.CREATE.SP", &body).await;
        assert_eq!(resp["error"]["err_code"], 10094, "{config}: {resp}");
        assert_eq!(resp["error"]["code"], 400, "{config}: {resp}");
        assert_eq!(resp["error"]["description"], description, "{config}");
    }
    let ok = request(
        &nc,
        "$JS.API.CONSUMER.CREATE.SP",
        r#"{"stream_name":"SP","config":{"deliver_policy":"last_per_subject","filter_subject":"sp.>"}}"#,
    )
    .await;
    assert!(ok.get("error").is_none(), "{ok}");
}

#[tokio::test]
async fn consumer_configs_are_refused_with_nats_server_codes_and_texts() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    request(&nc, "$JS.API.STREAM.CREATE.CC", r#"{"name":"CC","subjects":["cc.>"]}"#).await;
    let cases = [
        (
            r#"{"durable_name":"d","deliver_subject":"cc.loop"}"#,
            10081,
            "consumer deliver subject forms a cycle",
        ),
        (
            r#"{"durable_name":"d","deliver_subject":"out.*"}"#,
            10079,
            "consumer deliver subject has wildcards",
        ),
        (
            r#"{"durable_name":"d","deliver_subject":"out..x"}"#,
            10112,
            "invalid push consumer deliver subject",
        ),
        (
            r#"{"durable_name":"d","flow_control":true}"#,
            10089,
            "consumer flow control requires a push based consumer",
        ),
        (
            r#"{"durable_name":"d","max_expires":10}"#,
            10115,
            "consumer max request expires needs to be >= 1ms",
        ),
        (
            r#"{"durable_name":"d","backoff":[1000000000,2000000000],"max_deliver":1}"#,
            10116,
            "max deliver is required to be > length of backoff values",
        ),
        (r#"{"durable_name":"d","backoff":[-1]}"#, 10184, "consumer backoff needs to be positive"),
        (r#"{"durable_name":"d","ack_wait":-1}"#, 10183, "consumer ack wait needs to be positive"),
        (
            r#"{"durable_name":"d","ack_policy":"none","deliver_subject":"out.d","max_ack_pending":5}"#,
            10082,
            "consumer requires ack policy for max ack pending",
        ),
        (
            r#"{"durable_name":"d","sample_freq":"abc"}"#,
            10095,
            r#"failed to parse consumer sampling configuration: strconv.Atoi: parsing "abc": invalid syntax"#,
        ),
    ];
    for (config, err_code, description) in cases {
        let body = format!(r#"{{"stream_name":"CC","config":{config}}}"#);
        assert_refused(&nc, "$JS.API.CONSUMER.CREATE.CC.d", &body, (400, err_code, description)).await;
    }
    let resp =
        request(&nc, "$JS.API.CONSUMER.CREATE.CC", r#"{"stream_name":"CC","config":{"name":"a.b"}}"#).await;
    assert_eq!(
        resp["error"]["description"], r"consumer name can not contain '.', '*', '>', '\', '/'",
        "{resp}"
    );
    // Accepted as nats-server accepts them: as many backoff steps as deliveries, a filter the
    // stream does not (yet) cover, out-of-range limits read as unset.
    for (name, config) in [
        ("b1", r#"{"durable_name":"b1","backoff":[1000000000],"max_deliver":1}"#),
        ("f1", r#"{"durable_name":"f1","filter_subject":"elsewhere.>"}"#),
        ("n1", r#"{"durable_name":"n1","inactive_threshold":-1,"max_batch":-1,"max_waiting":-5}"#),
        ("p1", r#"{"durable_name":"p1","deliver_subject":"out.p1","max_batch":5}"#),
    ] {
        let body = format!(r#"{{"stream_name":"CC","config":{config}}}"#);
        let resp = request(&nc, &format!("$JS.API.CONSUMER.CREATE.CC.{name}"), &body).await;
        assert!(resp.get("error").is_none(), "{config}: {resp}");
        if name == "n1" {
            assert!(resp["config"].get("inactive_threshold").is_none(), "{resp}");
            assert!(resp["config"].get("max_batch").is_none(), "{resp}");
            assert_eq!(resp["config"]["max_waiting"], 512, "{resp}");
        }
    }
}

#[tokio::test]
async fn subject_mappings_are_checked_with_nats_server_texts() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    request(&nc, "$JS.API.STREAM.CREATE.O", r#"{"name":"O","subjects":["o.*"]}"#).await;
    let cases = [
        (
            r#"{"name":"T","subjects":["t.*"],"subject_transform":{"src":"t.*","dest":"g.{{wildcard(2)}}"}}"#,
            400,
            10156,
            "stream transform: invalid mapping destination: wildcard index out of range in {{wildcard(2)}}: [2]",
        ),
        (
            r#"{"name":"T","subjects":["t.*"],"subject_transform":{"src":"t..x","dest":"g"}}"#,
            400,
            10155,
            "stream transform source: invalid subject t..x",
        ),
        (
            r#"{"name":"T","subjects":["t.*"],"subject_transform":{"src":"t.*","dest":"g.{{nope(1)}}"}}"#,
            400,
            10156,
            "stream transform: invalid mapping destination: unknown function in {{nope(1)}}",
        ),
        (
            r#"{"name":"T","subjects":["t.*"],"republish":{"src":"t.*","dest":"r.*"}}"#,
            500,
            10052,
            "stream configuration for republish with transform from 't.*' to 'r.*' not valid",
        ),
        (
            // Checked with the config, as nats-server 2.15.1 does (it answers these exactly).
            r#"{"name":"T","sources":[{"name":"O","subject_transforms":[{"src":"o.*","dest":"s.$2"}]}]}"#,
            400,
            10146,
            "source transform: invalid mapping destination: wildcard index out of range in $2: [2]",
        ),
        (
            r#"{"name":"T","mirror":{"name":"O","subject_transforms":[{"src":"o.*","dest":"s.$2"}]}}"#,
            400,
            10154,
            "mirror transform: invalid mapping destination: wildcard index out of range in $2: [2]",
        ),
    ];
    for (config, code, err_code, description) in cases {
        assert_refused(&nc, "$JS.API.STREAM.CREATE.T", config, (code, err_code, description)).await;
    }
}

#[tokio::test]
async fn stream_names_and_metadata_are_bounded_as_by_nats_server() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    let long = "x".repeat(256);
    let resp = request(
        &nc,
        &format!("$JS.API.STREAM.CREATE.{long}"),
        &format!(r#"{{"name":"{long}","subjects":["l"]}}"#),
    )
    .await;
    assert_eq!(resp["error"]["description"], "stream name is too long, maximum allowed is 255", "{resp}");
    let big = "v".repeat(128 * 1024);
    let resp = request(
        &nc,
        "$JS.API.STREAM.CREATE.MD",
        &format!(r#"{{"name":"MD","subjects":["md"],"metadata":{{"k":"{big}"}}}}"#),
    )
    .await;
    assert_eq!(
        resp["error"]["description"], "stream metadata exceeds maximum size of 131072 bytes",
        "{resp}"
    );
    let resp =
        request(&nc, "$JS.API.STREAM.CREATE.EV", r#"{"name":"EV","subjects":["$JS.EVENT.ADVISORY.>"]}"#)
            .await;
    assert!(resp.get("error").is_none(), "advisories may be captured: {resp}");
}

#[tokio::test]
async fn consumer_updates_are_refused_with_nats_server_codes_and_texts() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    request(&nc, "$JS.API.STREAM.CREATE.UP", r#"{"name":"UP","subjects":["up.>"]}"#).await;
    let create = r#"{"stream_name":"UP","config":{"durable_name":"d","ack_policy":"explicit"}}"#;
    assert!(request(&nc, "$JS.API.CONSUMER.CREATE.UP.d", create).await.get("error").is_none());
    let cases = [
        (
            r#"{"durable_name":"d","ack_policy":"explicit","deliver_policy":"last"}"#,
            500,
            10012,
            "deliver policy can not be updated",
        ),
        (
            r#"{"durable_name":"d","ack_policy":"explicit","deliver_subject":"out.d"}"#,
            500,
            10012,
            "can not update pull consumer to push based",
        ),
        (r#"{"durable_name":"d","ack_policy":"none"}"#, 500, 10012, "ack policy can not be updated"),
    ];
    for (config, code, err_code, description) in cases {
        let body = format!(r#"{{"stream_name":"UP","config":{config}}}"#);
        assert_refused(&nc, "$JS.API.CONSUMER.CREATE.UP.d", &body, (code, err_code, description)).await;
    }
    let body =
        r#"{"stream_name":"UP","config":{"durable_name":"d","ack_policy":"explicit"},"action":"bogus"}"#;
    assert_refused(
        &nc,
        "$JS.API.CONSUMER.CREATE.UP.d",
        body,
        (400, 10025, r#"invalid JSON: unknown consumer action: "bogus""#),
    )
    .await;
}

#[tokio::test]
async fn stream_info_paging_and_message_get_options_follow_nats_server() {
    let server = TestServer::start().await;
    let nc = server.client().await;
    request(&nc, "$JS.API.STREAM.CREATE.PG", r#"{"name":"PG","subjects":["pg.>"]}"#).await;
    for i in 0..3 {
        nc.request(format!("pg.{i}"), "m".into()).await.unwrap();
    }
    // The paging fields are always there; a filter matching nothing gives no subjects map.
    for body in ["", r#"{"subjects_filter":"nope.>"}"#] {
        let info = request(&nc, "$JS.API.STREAM.INFO.PG", body).await;
        assert_eq!(
            (info["total"].clone(), info["offset"].clone(), info["limit"].clone()),
            (0.into(), 0.into(), 0.into()),
            "{info}"
        );
        assert!(info["state"].get("subjects").is_none(), "{info}");
    }
    let info = request(&nc, "$JS.API.STREAM.INFO.PG", r#"{"subjects_filter":"pg.*"}"#).await;
    assert_eq!((info["total"].clone(), info["limit"].clone()), (3.into(), 100_000.into()), "{info}");
    // seq, last_by_subj and start_time exclude each other; next_by_subj filters seq or time.
    for body in
        [r#"{"seq":1,"last_by_subj":"pg.1"}"#, r#"{"last_by_subj":"pg.1","next_by_subj":"pg.1"}"#, r#"{}"#]
    {
        assert_refused(&nc, "$JS.API.STREAM.MSG.GET.PG", body, (400, 10003, "bad request")).await;
    }
    let next = request(&nc, "$JS.API.STREAM.MSG.GET.PG", r#"{"seq":2,"next_by_subj":"pg.2"}"#).await;
    assert_eq!(next["message"]["seq"], 3, "{next}");
}

/// `jetstream { limits {} }` caps what configs may ask and lowers the defaults, with
/// nats-server's codes (its texts are checked in `interop/differential/test_jetstream_limits.py`).
#[tokio::test]
async fn server_limits_cap_and_default_consumer_and_stream_configs() {
    let server = TestServer::start_with(|c| {
        c.jetstream.limits.max_ack_pending = 500;
        c.jetstream.limits.max_request_batch = 100;
        c.jetstream.limits.duplicate_window = std::time::Duration::from_secs(60);
    })
    .await;
    let js = js(&server).await;
    let stream = js
        .create_stream(stream::Config {
            name: "CAPPED".into(),
            subjects: vec!["capped".into()],
            ..Default::default()
        })
        .await
        .expect("stream");
    assert_eq!(stream.cached_info().config.duplicate_window, std::time::Duration::from_secs(60));
    let too_long = js
        .create_stream(stream::Config {
            name: "LONG".into(),
            subjects: vec!["long".into()],
            duplicate_window: std::time::Duration::from_secs(120),
            ..Default::default()
        })
        .await;
    assert!(too_long.is_err(), "a window over the server limit");
    use async_nats::jetstream::consumer::pull;
    let consumer = stream
        .create_consumer(pull::Config { durable_name: Some("d".into()), ..Default::default() })
        .await
        .expect("consumer");
    let config = &consumer.cached_info().config;
    assert_eq!((config.max_ack_pending, config.max_batch), (500, 100));
    let over = stream
        .create_consumer(pull::Config {
            durable_name: Some("o".into()),
            max_ack_pending: 501,
            ..Default::default()
        })
        .await
        .expect_err("over the ack pending limit");
    assert!(over.to_string().contains("10121"), "{over}");
}
