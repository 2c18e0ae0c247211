//! The monitoring endpoints through HTTP, against a server with real clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{RawClient, TestServer};

struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A minimal HTTP/1.1 GET: enough for these endpoints, no client library needed.
async fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    let stream = TcpStream::connect(addr).await.expect("connect to monitor");
    get_over(stream, addr, path).await
}

/// The GET of [`get`] over any byte stream (plain TCP or TLS).
async fn get_over<S>(mut stream: S, addr: SocketAddr, path: &str) -> HttpResponse
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send request");
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw)).await;
    match read.expect("response in time") {
        Ok(_) => {}
        // rustls reports a peer that closes without close_notify; the response is complete.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => panic!("read response: {e}"),
    }
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("headers end");
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    HttpResponse { status, headers, body }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

pub(crate) async fn get_json(addr: SocketAddr, path: &str) -> Value {
    let response = get(addr, path).await;
    assert_eq!(response.status, 200, "{path}: {}", response.body);
    assert_eq!(response.header("content-type"), Some("application/json"), "{path}");
    assert_eq!(response.header("access-control-allow-origin"), Some("*"), "{path}");
    response.json()
}

async fn monitored() -> (TestServer, SocketAddr) {
    monitored_with(|_| {}).await
}

async fn monitored_with(edit: impl FnOnce(&mut jetway::Config)) -> (TestServer, SocketAddr) {
    let server = TestServer::start_with(|c| {
        c.http_port = -1;
        c.server_name = Some("mon-1".into());
        // Exact subscription counts below: no JetStream API subscription in the account.
        c.jetstream.enabled = false;
        edit(c);
    })
    .await;
    let http = server.handle.as_ref().and_then(|h| h.http_addr).expect("monitor listening");
    (server, http)
}

/// A monitored server with MQTT (on JetStream) too.
async fn monitored_mqtt() -> (TestServer, SocketAddr) {
    monitored_with(|c| {
        c.mqtt.port = -1;
        c.jetstream.enabled = true;
    })
    .await
}

async fn named_client(server: &TestServer, name: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new().name(name).connect(server.url()).await.expect("client connects")
}

/// Polls `path` until `done` holds (state changes after a disconnect are asynchronous).
async fn eventually(addr: SocketAddr, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let v = get_json(addr, path).await;
        if done(&v) {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{path} never satisfied: {v:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn cids(connz: &Value) -> Vec<u64> {
    connz["connections"].as_array().expect("connections").iter().filter_map(|c| c["cid"].as_u64()).collect()
}

#[tokio::test]
async fn varz_reports_identity_limits_runtime_and_traffic() {
    let (server, http) = monitored_with(|c| c.max_payload = 512 * 1024).await;
    let a = named_client(&server, "alpha").await;
    let b = named_client(&server, "beta").await;
    let _s1 = b.subscribe("varz.>").await.unwrap();
    let _s2 = b.subscribe("other").await.unwrap();
    b.flush().await.unwrap();
    for _ in 0..10 {
        a.publish("varz.x", "12345".into()).await.unwrap();
    }
    a.flush().await.unwrap();

    let v = eventually(http, "/varz", |v| v["out_msgs"].as_u64() >= Some(10)).await;
    assert_eq!(v["server_name"], "mon-1");
    assert_eq!(v["server_id"].as_str().map(str::len), Some(56));
    assert_eq!(v["port"].as_u64(), Some(u64::from(server.addr.port())));
    assert_eq!(v["http_port"].as_u64(), Some(u64::from(http.port())));
    assert_eq!(v["max_payload"], 512 * 1024);
    assert_eq!(v["max_connections"], 64 * 1024);
    assert_eq!(v["ping_interval"], 120_000_000_000u64);
    assert_eq!(v["write_deadline"], 10_000_000_000u64);
    assert_eq!(v["connections"], 2);
    assert_eq!(v["total_connections"], 2);
    assert_eq!(v["subscriptions"], 2);
    assert_eq!(v["in_msgs"], 10);
    assert_eq!(v["in_bytes"], 50);
    assert_eq!(v["out_msgs"], 10);
    assert_eq!(v["slow_consumers"], 0);
    assert_eq!(v["slow_consumer_stats"]["clients"], 0);
    assert_eq!(v["stale_connections"], 0);
    assert_eq!(v["system_account"], "$SYS");
    assert_eq!(v["mqtt"], serde_json::json!({}), "MQTT is off: nats-server's empty block");
    assert_eq!(v["jetstream"], serde_json::json!({}));
    assert!(v["uptime"].as_str().is_some_and(|u| u.ends_with('s')), "{}", v["uptime"]);
    assert!(v["mem"].as_u64() > Some(1024 * 1024), "{}", v["mem"]);
    assert!(v["cores"].as_u64() >= Some(1));
    assert!(v["cpu"].as_f64().is_some());
    for time in ["start", "now", "config_load_time"] {
        assert!(v[time].as_str().is_some_and(|t| t.ends_with('Z') && t.contains('T')), "{time}: {}", v[time]);
    }
}

#[tokio::test]
async fn connz_lists_open_connections_with_identity_counters_and_subscriptions() {
    let (server, http) = monitored().await;
    let pubr = named_client(&server, "publisher").await;
    let subr = named_client(&server, "subscriber").await;
    let _a = subr.subscribe("orders.*").await.unwrap();
    let _b = subr.queue_subscribe("work", "workers".into()).await.unwrap();
    subr.flush().await.unwrap();
    for _ in 0..3 {
        pubr.publish("orders.new", "abc".into()).await.unwrap();
    }
    pubr.flush().await.unwrap();

    let v = eventually(http, "/connz?subs=1", |v| v["connections"][1]["out_msgs"] == 3).await;
    assert_eq!((v["num_connections"].as_u64(), v["total"].as_u64()), (Some(2), Some(2)));
    assert_eq!((v["offset"].as_u64(), v["limit"].as_u64()), (Some(0), Some(1024)));
    let conns = v["connections"].as_array().unwrap();
    let (p, s) = (&conns[0], &conns[1]);
    assert_eq!((p["name"].as_str(), s["name"].as_str()), (Some("publisher"), Some("subscriber")));
    assert_eq!(p["lang"], "rust");
    assert!(p["version"].as_str().is_some_and(|v| !v.is_empty()));
    assert_eq!((p["kind"].as_str(), p["type"].as_str()), (Some("Client"), Some("nats")));
    assert_eq!(p["ip"], "127.0.0.1");
    assert!(p["port"].as_u64() > Some(0));
    // The global account is not named, and no account is without `auth=1` (as nats-server).
    assert!(p.get("account").is_none(), "{p}");
    assert_eq!((p["in_msgs"].as_u64(), p["in_bytes"].as_u64()), (Some(3), Some(9)));
    assert_eq!((s["out_msgs"].as_u64(), s["out_bytes"].as_u64()), (Some(3), Some(9)));
    assert_eq!(s["subscriptions"], 2);
    assert_eq!(p["pending_bytes"], 0);
    let mut subjects: Vec<&str> =
        s["subscriptions_list"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    subjects.sort_unstable();
    assert_eq!(subjects, ["orders.*", "work"]);
    assert!(p.get("subscriptions_list").is_none(), "no list for a client without subscriptions");
    for field in ["start", "last_activity", "uptime", "idle"] {
        assert!(p[field].is_string(), "{field} missing: {p:#}");
    }
    assert!(p.get("stop").is_none() && p.get("reason").is_none());

    let detail = get_json(http, "/connz?subs=detail&sort=subs").await;
    let first = &detail["connections"][0];
    assert_eq!(first["name"], "subscriber");
    let mut details: Vec<Value> = first["subscriptions_list_detail"].as_array().unwrap().clone();
    details.sort_by_key(|d| d["subject"].as_str().map(String::from));
    assert_eq!(details[0]["subject"], "orders.*");
    assert_eq!(details[0]["msgs"], 3);
    assert_eq!(details[0]["cid"], first["cid"]);
    assert!(details[0]["sid"].is_string());
    assert_eq!(
        (details[1]["subject"].as_str(), details[1]["qgroup"].as_str()),
        (Some("work"), Some("workers"))
    );
}

#[tokio::test]
async fn connz_pages_sorts_and_filters() {
    let (server, http) = monitored().await;
    let (mut clients, mut subscribers) = (Vec::new(), Vec::new());
    for (i, subs) in [1usize, 3, 2, 0].iter().enumerate() {
        let nc = named_client(&server, &format!("c{i}")).await;
        for n in 0..*subs {
            subscribers.push(nc.subscribe(format!("s.{i}.{n}")).await.unwrap());
        }
        nc.flush().await.unwrap();
        clients.push(nc);
    }
    let all = get_json(http, "/connz").await;
    let ids = cids(&all);
    assert_eq!(ids.len(), 4);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "cid order by default: {ids:?}");

    let page = get_json(http, "/connz?offset=1&limit=2").await;
    assert_eq!(cids(&page), ids[1..3].to_vec());
    assert_eq!((page["total"].as_u64(), page["num_connections"].as_u64()), (Some(4), Some(2)));
    assert_eq!((page["offset"].as_u64(), page["limit"].as_u64()), (Some(1), Some(2)));

    let by_subs = get_json(http, "/connz?sort=subs").await;
    let counts: Vec<u64> = by_subs["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["subscriptions"].as_u64())
        .collect();
    assert_eq!(counts, [3, 2, 1, 0]);

    let one = get_json(http, &format!("/connz?cid={}", ids[2])).await;
    assert_eq!(cids(&one), [ids[2]]);
    assert_eq!(one["connections"][0]["name"], "c2");

    assert_eq!(cids(&get_json(http, "/connz?acc=$G").await).len(), 4);
    assert_eq!(cids(&get_json(http, "/connz?acc=nobody").await).len(), 0);

    for bad in [
        "/connz?sort=bogus",
        "/connz?sort=stop",
        "/connz?sort=reason&state=open",
        "/connz?state=gone",
        "/connz?limit=x",
        "/connz?subs=maybe",
    ] {
        let r = get(http, bad).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.json()["error"].is_string(), "{bad}");
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
}

#[tokio::test]
async fn connz_keeps_closed_connections_with_reasons_in_a_bounded_ring() {
    let (server, http) = monitored_with(|c| c.max_closed_clients = 2).await;
    let live = named_client(&server, "stays").await;
    live.flush().await.unwrap();

    let mut quitter = RawClient::connect(server.addr).await;
    quitter.send(b"CONNECT {\"name\":\"quitter\",\"user\":\"\",\"verbose\":false}\r\nSUB a 1\r\nPUB a 2\r\nhi\r\nPING\r\n").await;
    quitter.expect("PONG\r\n").await;
    drop(quitter);
    eventually(http, "/connz?state=closed", |v| v["total"] == 1).await;

    let mut violator = RawClient::connect(server.addr).await;
    violator.send(b"CONNECT {\"name\":\"violator\"}\r\nBOGUS\r\n").await;
    violator.expect_closed().await;
    let closed = eventually(http, "/connz?state=closed", |v| v["total"] == 2).await;
    let conns = closed["connections"].as_array().unwrap();
    assert_eq!(
        (conns[0]["name"].as_str(), conns[0]["reason"].as_str()),
        (Some("quitter"), Some("Client Closed"))
    );
    assert_eq!(
        (conns[1]["name"].as_str(), conns[1]["reason"].as_str()),
        (Some("violator"), Some("Protocol Violation"))
    );
    assert_eq!((conns[0]["in_msgs"].as_u64(), conns[0]["out_msgs"].as_u64()), (Some(1), Some(1)));
    assert!(conns.iter().all(|c| c["stop"].is_string() && c["uptime"].is_string()));

    let any = get_json(http, "/connz?state=any").await;
    assert_eq!(any["total"], 3);
    let by_reason = get_json(http, "/connz?state=closed&sort=reason").await;
    assert_eq!(by_reason["connections"][0]["reason"], "Client Closed");
    let by_stop = get_json(http, "/connz?state=closed&sort=stop").await;
    assert_eq!(by_stop["connections"][0]["name"], "violator", "newest stop first");

    // A third close pushes the oldest out of the ring of two.
    drop(live);
    let closed = eventually(http, "/connz?state=closed", |v| {
        v["connections"].as_array().is_some_and(|c| c.iter().any(|c| c["name"] == "stays"))
    })
    .await;
    assert_eq!(closed["total"], 2);
    let names: Vec<&str> =
        closed["connections"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["stays", "violator"], "cid order by default");
}

#[tokio::test]
async fn connz_reports_rtt_and_authorized_user_when_asked() {
    let (server, http) = monitored_with(|c| c.ping_interval = Duration::from_millis(100)).await;
    let nc = async_nats::ConnectOptions::with_user_and_password("ann".into(), "pw".into())
        .connect(server.url())
        .await
        .unwrap();
    nc.flush().await.unwrap();
    let v = eventually(http, "/connz?auth=1", |v| v["connections"][0]["rtt"].is_string()).await;
    let c = &v["connections"][0];
    assert!(c["rtt"].as_str().is_some_and(|r| r.ends_with('s')), "{}", c["rtt"]);
    assert_eq!(c["authorized_user"], "ann");
    let plain = get_json(http, "/connz").await;
    assert!(plain["connections"][0].get("authorized_user").is_none());
    assert_eq!(cids(&get_json(http, "/connz?user=ann").await).len(), 1);
    assert_eq!(cids(&get_json(http, "/connz?user=bob").await).len(), 0);
}

#[tokio::test]
async fn a_new_connection_has_an_rtt_estimate_before_any_ping() {
    // nats-server estimates the RTT from accept to CONNECT, so /connz (and advisories) have one
    // at once rather than after the first ping interval (2 minutes by default).
    let (server, http) = monitored().await;
    let nc = named_client(&server, "fresh").await;
    nc.flush().await.unwrap();
    let v = get_json(http, "/connz").await;
    let rtt = &v["connections"][0]["rtt"];
    assert!(rtt.as_str().is_some_and(|r| r.ends_with('s')), "{v}");
}

#[tokio::test]
async fn subsz_reports_stats_and_lists_subscriptions_with_test_filter_and_paging() {
    let (server, http) = monitored().await;
    let nc = named_client(&server, "subs").await;
    let mut keep = Vec::new();
    for subject in ["a.b", "a.*", "a.>", "x.y", "q"] {
        keep.push(nc.subscribe(subject).await.unwrap());
    }
    keep.push(nc.queue_subscribe("a.b", "g".into()).await.unwrap());
    nc.flush().await.unwrap();
    nc.publish("a.b", "m".into()).await.unwrap();
    nc.flush().await.unwrap();

    let v = get_json(http, "/subsz").await;
    assert_eq!(v["num_subscriptions"], 6);
    assert!(v["num_inserts"].as_u64() >= Some(6));
    assert!(v["num_matches"].as_u64() >= Some(1));
    for field in
        ["num_cache", "num_removes", "cache_hit_rate", "max_fanout", "avg_fanout", "server_id", "now"]
    {
        assert!(v.get(field).is_some(), "{field} missing: {v:#}");
    }
    assert_eq!(v["max_fanout"], 4, "a.b reaches a.b, a.*, a.> and one queue group");
    assert!(v.get("subscriptions_list").is_none());

    let all = get_json(http, "/subscriptionsz?subs=1").await;
    assert_eq!(all["total"], 6);
    let list = all["subscriptions_list"].as_array().unwrap();
    assert_eq!(list.len(), 6);
    assert!(list.iter().all(|s| s["account"] == "$G" && s["cid"].is_u64() && s["sid"].is_string()));
    let ab = list.iter().find(|s| s["subject"] == "a.b" && s.get("qgroup").is_none()).unwrap();
    assert_eq!(ab["msgs"], 1);

    let matching = get_json(http, "/subsz?subs=1&test=a.b").await;
    let mut subjects: Vec<&str> = matching["subscriptions_list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["subject"].as_str())
        .collect();
    subjects.sort_unstable();
    assert_eq!(subjects, ["a.*", "a.>", "a.b", "a.b"]);
    assert_eq!(matching["total"], 4);

    let page = get_json(http, "/subsz?subs=1&offset=4&limit=5").await;
    assert_eq!(page["subscriptions_list"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        (page["offset"].as_u64(), page["limit"].as_u64(), page["total"].as_u64()),
        (Some(4), Some(5), Some(6))
    );

    assert_eq!(get_json(http, "/subsz?acc=$SYS").await["num_subscriptions"], 0);
    assert_eq!(get(http, "/subsz?subs=1&test=a.*").await.status, 400);
}

#[tokio::test]
async fn routez_accountz_and_accstatz_describe_the_single_server_and_its_accounts() {
    let (server, http) = monitored().await;
    let nc = named_client(&server, "acct").await;
    let _s = nc.subscribe("acc.test").await.unwrap();
    nc.publish("acc.test", "xy".into()).await.unwrap();
    nc.flush().await.unwrap();

    let routes = get_json(http, "/routez").await;
    assert_eq!(
        (routes["num_routes"].as_u64(), routes["routes"].as_array().map(Vec::len)),
        (Some(0), Some(0))
    );
    assert_eq!(routes["server_name"], "mon-1");
    // No gateways or leaf nodes either, in nats-server's shapes (tools poll them).
    let gateways = get_json(http, "/gatewayz").await;
    assert_eq!(
        (&gateways["outbound_gateways"], &gateways["inbound_gateways"]),
        (&serde_json::json!({}), &serde_json::json!({}))
    );
    let leafs = get_json(http, "/leafz").await;
    assert_eq!((leafs["leafnodes"].as_u64(), leafs["leafs"].as_array().map(Vec::len)), (Some(0), Some(0)));

    let accounts = get_json(http, "/accountz").await;
    assert_eq!(accounts["system_account"], "$SYS");
    assert_eq!(accounts["accounts"], serde_json::json!(["$G", "$SYS"]));

    let detail = get_json(http, "/accountz?acc=$G").await;
    let d = &detail["account_detail"];
    assert_eq!((d["account_name"].as_str(), d["is_system"].as_bool()), (Some("$G"), Some(false)));
    assert_eq!((d["client_connections"].as_u64(), d["subscriptions"].as_u64()), (Some(1), Some(1)));
    assert_eq!(d["sublist_stats"]["num_subscriptions"], 1);
    assert_eq!(get_json(http, "/accountz?acc=$SYS").await["account_detail"]["is_system"], true);
    assert_eq!(get(http, "/accountz?acc=nope").await.status, 400);

    let stats = eventually(http, "/accstatz", |v| v["account_statz"][0]["sent"]["msgs"] == 1).await;
    let list = stats["account_statz"].as_array().unwrap();
    assert_eq!(list.len(), 1, "only accounts with connections: {stats:#}");
    let g = &list[0];
    assert_eq!(
        (g["acc"].as_str(), g["conns"].as_u64(), g["num_subscriptions"].as_u64()),
        (Some("$G"), Some(1), Some(1))
    );
    assert_eq!((g["received"]["msgs"].as_u64(), g["received"]["bytes"].as_u64()), (Some(1), Some(2)));
    assert_eq!(g["sent"]["routes"], serde_json::json!({"msgs": 0, "bytes": 0}), "nothing crossed a route");
    assert_eq!(get_json(http, "/accstatz?unused=1").await["account_statz"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn healthz_is_ok_accepts_jetstream_parameters_and_unknown_paths_are_json_404() {
    let (_server, http) = monitored().await;
    assert_eq!(get_json(http, "/healthz").await, serde_json::json!({"status": "ok"}));
    // These servers run without JetStream: asking for it is a 503, as with nats-server.
    let js_only = get(http, "/healthz?js-enabled-only=true").await;
    assert_eq!(js_only.status, 503);
    assert_eq!(js_only.json()["status"], "unavailable");
    assert_eq!(get_json(http, "/healthz?js-server-only=1").await["status"], "ok");
    assert_eq!(get(http, "/healthz?js-enabled-only=perhaps").await.status, 400);
    let missing = get(http, "/nope").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("content-type"), Some("application/json"));
    assert!(missing.json()["error"].is_string());
}

#[tokio::test]
async fn metrics_are_valid_prometheus_text_matching_the_live_counters() {
    let (server, http) = monitored().await;
    let a = named_client(&server, "m1").await;
    let b = named_client(&server, "m2").await;
    let _s = b.subscribe("metrics.>").await.unwrap();
    b.flush().await.unwrap();
    for _ in 0..7 {
        a.publish("metrics.x", "1234".into()).await.unwrap();
    }
    a.flush().await.unwrap();
    eventually(http, "/varz", |v| v["out_msgs"] == 7).await;

    let response = get(http, "/metrics").await;
    assert_eq!(response.status, 200);
    assert!(response.header("content-type").is_some_and(|t| t.starts_with("text/plain")));
    let lines = response.body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition format");
    let value = |name: &str| {
        // Samples labelled by protocol: the NATS one.
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get("protocol").is_none_or(|p| p == "nats"))
            .unwrap_or_else(|| panic!("{name} missing"));
        match sample.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
            ref other => panic!("{name}: unexpected {other:?}"),
        }
    };
    assert_eq!(value("jetway_connections"), 2.0);
    assert_eq!(value("jetway_connections_total"), 2.0);
    assert_eq!(value("jetway_messages_received_total"), 7.0);
    assert_eq!(value("jetway_messages_sent_total"), 7.0);
    assert_eq!(value("jetway_bytes_received_total"), 28.0);
    assert_eq!(value("jetway_bytes_sent_total"), 28.0);
    assert_eq!(value("jetway_slow_consumers_total"), 0.0);
    assert_eq!(value("jetway_stale_connections_total"), 0.0);
    assert_eq!(value("jetway_subscriptions"), 1.0);
    assert!(value("jetway_process_resident_memory_bytes") > 0.0);
    let traffic = scrape.samples.iter().find(|s| s.metric == "jetway_messages_received_total").unwrap();
    assert_eq!(traffic.labels.get("protocol"), Some("nats"));
    assert!(matches!(traffic.value, prometheus_parse::Value::Counter(_)), "{:?}", traffic.value);
    let info = scrape.samples.iter().find(|s| s.metric == "jetway_info").unwrap();
    assert_eq!(info.labels.get("server_name"), Some("mon-1"));
    assert!(scrape.docs.contains_key("jetway_connections"), "HELP lines present");
}

#[tokio::test]
async fn two_servers_in_one_process_have_separate_metrics() {
    let (one, http_one) = monitored().await;
    let (_two, http_two) = monitored().await;
    let _nc = one.client().await;
    let count = |body: String| {
        body.lines()
            .find(|l| l.starts_with("jetway_connections{") && l.contains("protocol=\"nats\""))
            .map(|l| l.ends_with(" 1"))
            .unwrap_or(false)
    };
    assert!(count(get(http_one, "/metrics").await.body));
    assert!(!count(get(http_two, "/metrics").await.body));
}

/// Collects what an internal subscription receives.
struct Collector(tokio::sync::mpsc::UnboundedSender<(String, Value)>);

impl jetway::router::InternalHandler for Collector {
    fn deliver(&self, msg: &jetway::router::Message<'_>) {
        let json = serde_json::from_slice(msg.payload).unwrap_or(Value::Null);
        let _ = self.0.send((msg.subject.to_string(), json));
    }
}

#[tokio::test]
async fn connect_and_disconnect_advisories_are_published_in_the_system_account() {
    let (server, _http) = monitored().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let core = server.core().clone();
    let sink = jetway::router::Sink::Internal(Arc::new(Collector(tx)));
    core.system_account.sublist.insert(jetway::router::Subscription::new(
        "$SYS.ACCOUNT.>".into(),
        None,
        sink,
    ));

    let mut raw = RawClient::connect(server.addr).await;
    raw.send(b"CONNECT {\"name\":\"evented\",\"lang\":\"raw\",\"version\":\"9.9\",\"user\":\"u1\"}\r\nSUB e 1\r\nPUB e 3\r\nabc\r\nPING\r\n").await;
    raw.expect("PONG\r\n").await;
    let (subject, connect) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
    assert_eq!(subject, "$SYS.ACCOUNT.$G.CONNECT");
    assert_eq!(connect["type"], "io.nats.server.advisory.v1.client_connect");
    assert_eq!(connect["id"].as_str().map(str::len), Some(22));
    assert!(connect["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    let s = &connect["server"];
    assert_eq!((s["name"].as_str(), s["id"].as_str()), (Some("mon-1"), Some(core.server_id.as_str())));
    assert_eq!(s["host"], "127.0.0.1");
    assert!(s["ver"].is_string() && s["seq"].as_u64() >= Some(1) && s["time"].is_string());
    let c = &connect["client"];
    assert_eq!(
        (c["name"].as_str(), c["lang"].as_str(), c["ver"].as_str()),
        (Some("evented"), Some("raw"), Some("9.9"))
    );
    assert_eq!(
        (c["acc"].as_str(), c["user"].as_str(), c["host"].as_str()),
        (Some("$G"), Some("u1"), Some("127.0.0.1"))
    );
    assert!(c["id"].as_u64() > Some(0) && c["start"].is_string() && c.get("stop").is_none());
    assert!(rx.try_recv().is_err(), "one event per connect");

    drop(raw);
    let (subject, gone) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
    assert_eq!(subject, "$SYS.ACCOUNT.$G.DISCONNECT");
    assert_eq!(gone["type"], "io.nats.server.advisory.v1.client_disconnect");
    assert_eq!(gone["client"]["id"], c["id"]);
    assert!(gone["client"]["stop"].is_string());
    assert_eq!(gone["reason"], "Client Closed");
    assert_eq!((gone["sent"]["msgs"].as_u64(), gone["sent"]["bytes"].as_u64()), (Some(1), Some(3)));
    assert_eq!((gone["received"]["msgs"].as_u64(), gone["received"]["bytes"].as_u64()), (Some(1), Some(3)));
    assert!(gone["server"]["seq"].as_u64() > s["seq"].as_u64(), "event sequence grows");
    assert_ne!(gone["id"], connect["id"]);
}

#[tokio::test]
async fn dashboard_is_one_self_contained_html_page() {
    let (_server, http) = monitored().await;
    let page = get(http, "/").await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").is_some_and(|t| t.starts_with("text/html")));
    assert!(page.body.contains("<canvas"), "rate chart");
    for endpoint in ["varz", "connz", "subsz", "jsz", "mqttz"] {
        assert!(page.body.contains(&format!("/{endpoint}")), "polls /{endpoint}");
    }
    assert!(!page.body.contains("http://") && !page.body.contains("https://"), "no external assets");
}

#[tokio::test]
async fn monitoring_is_off_unless_configured() {
    let server = TestServer::start().await;
    assert!(server.handle.as_ref().and_then(|h| h.http_addr).is_none());
}

/// A stream on `subjects` with a durable pull consumer.
async fn stream_with_consumer(
    js: &async_nats::jetstream::Context,
    name: &str,
    subjects: &str,
    durable: &str,
) {
    let stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: name.into(),
            subjects: vec![subjects.into()],
            ..Default::default()
        })
        .await
        .unwrap();
    stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some(durable.into()),
            ..Default::default()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn jsz_healthz_and_metrics_report_jetstream() {
    let (server, http) = monitored_with(|c| c.jetstream.enabled = true).await;
    let js = async_nats::jetstream::new(server.client().await);
    stream_with_consumer(&js, "MON", "mon.>", "watcher").await;
    for i in 0..3 {
        js.publish(format!("mon.{i}"), "x".into()).await.unwrap().await.unwrap();
    }

    let jsz = get_json(http, "/jsz?streams=1&consumers=1&config=1").await;
    assert_eq!(jsz["streams"], 1);
    assert_eq!(jsz["consumers"], 1);
    assert_eq!(jsz["messages"], 3);
    assert!(jsz["config"]["max_storage"].as_i64().unwrap() > 0);
    assert_eq!(jsz["config"]["sync_always"], true);
    assert_eq!(jsz["api"]["level"], 1);
    let detail = &jsz["account_details"][0];
    assert_eq!(detail["name"], "$G");
    let sd = &detail["stream_detail"][0];
    assert_eq!(sd["name"], "MON");
    assert_eq!(sd["state"]["messages"], 3);
    assert_eq!(sd["config"]["subjects"][0], "mon.>");
    assert_eq!(sd["consumer_detail"][0]["name"], "watcher");
    assert_eq!(sd["consumer_detail"][0]["num_pending"], 3);

    assert_eq!(get_json(http, "/healthz?js-enabled-only=true").await["status"], "ok");
    assert_eq!(get_json(http, "/healthz").await["status"], "ok");
    let varz = get_json(http, "/varz").await;
    // nats-server's JetStream block: config (strict, how it syncs), stats, API limits.
    let block = &varz["jetstream"];
    assert_eq!(
        (block["config"]["strict"].as_bool(), block["config"]["sync_always"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(
        (block["stats"]["reserved_memory"].as_u64(), block["stats"]["ha_assets"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(block["limits"], serde_json::json!({}));
    // Requests per endpoint, this one included.
    assert_eq!(
        (varz["http_req_stats"]["/varz"].as_u64(), varz["http_req_stats"]["/jsz"].as_u64().is_some()),
        (Some(1), true)
    );

    let body = get(http, "/metrics").await.body;
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("valid");
    let sample = |name: &str| {
        scrape.samples.iter().find(|s| s.metric == name).unwrap_or_else(|| panic!("{name} missing")).clone()
    };
    let msgs = sample("jetway_stream_messages");
    assert_eq!(msgs.labels.get("stream"), Some("MON"));
    assert!(matches!(msgs.value, prometheus_parse::Value::Gauge(v) if v == 3.0));
    let pending = sample("jetway_consumer_num_pending");
    assert_eq!(pending.labels.get("consumer"), Some("watcher"));
    assert!(matches!(pending.value, prometheus_parse::Value::Gauge(v) if v == 3.0));
    assert!(
        matches!(sample("jetway_jetstream_streams").value, prometheus_parse::Value::Gauge(v) if v == 1.0)
    );
}

#[tokio::test]
async fn mqtt_clients_are_told_apart_in_connz_and_metrics() {
    let (server, http) = monitored_mqtt().await;
    let _nats = named_client(&server, "plain-nats").await;
    let _mqtt = crate::mqtt::v4(server.mqtt_addr(), "sensor-17").await;
    let connz = eventually(http, "/connz", |v| v["num_connections"] == 2).await;
    let conns = connz["connections"].as_array().unwrap();
    let mqtt = conns.iter().find(|c| c["type"] == "mqtt").expect("an MQTT connection");
    assert_eq!(mqtt["mqtt_client"], "sensor-17");
    let nats = conns.iter().find(|c| c["type"] == "nats").expect("a NATS connection");
    assert!(nats.get("mqtt_client").is_none());

    let body = get(http, "/metrics").await.body;
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("valid");
    let connections = |protocol: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == "jetway_connections" && s.labels.get("protocol") == Some(protocol))
            .map(|s| s.value.clone())
    };
    assert!(matches!(connections("mqtt"), Some(prometheus_parse::Value::Gauge(v)) if v == 1.0));
    assert!(matches!(connections("nats"), Some(prometheus_parse::Value::Gauge(v)) if v == 1.0));
}

/// Every sample of `name` in Prometheus text, by its labels.
fn samples(body: &str, name: &str) -> Vec<(std::collections::HashMap<String, String>, f64)> {
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("valid");
    scrape
        .samples
        .into_iter()
        .filter(|s| s.metric == name)
        .map(|s| {
            let value = match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                other => panic!("{name}: unexpected {other:?}"),
            };
            let labels = s.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            (labels, value)
        })
        .collect()
}

/// The value of `name` whose labels include `labels`.
fn sample(body: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(body, name)
        .into_iter()
        .find(|(have, _)| labels.iter().all(|(k, v)| have.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("{name} {labels:?} missing"))
}

fn session<'a>(mqttz: &'a Value, client_id: &str) -> &'a Value {
    mqttz["sessions"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["client_id"] == client_id))
        .unwrap_or_else(|| panic!("no session {client_id} in {mqttz}"))
}

#[tokio::test]
async fn mqtt_sessions_in_flight_messages_and_traffic_show_in_mqttz_metrics_and_varz() {
    use jetway_protocols::mqtt::{Packet, ProtocolVersion, Publish, QoS};

    let (server, http) = monitored_mqtt().await;
    let addr = server.mqtt_addr();
    // NATS side: a connection, a stream capturing MQTT traffic, a consumer.
    let nats = named_client(&server, "back-office").await;
    stream_with_consumer(&async_nats::jetstream::new(nats.clone()), "TELEMETRY", "telemetry.>", "archiver")
        .await;

    // A persistent session with a QoS 1 subscription that never acknowledges what it gets.
    let mut device = crate::mqtt::v4_with(addr, "device-1", |o| {
        o.set_clean_session(false);
        o.set_manual_acks(true);
    })
    .await;
    device.subscribe("cmd/#", rumqttc::QoS::AtLeastOnce).await;
    // A clean session with a QoS 0 subscription.
    let mut viewer = crate::mqtt::v4(addr, "viewer").await;
    viewer.subscribe("telemetry/#", rumqttc::QoS::AtMostOnce).await;
    let publisher = crate::mqtt::v4(addr, "publisher").await;
    publisher.client.publish("cmd/reboot", rumqttc::QoS::AtLeastOnce, false, "now").await.unwrap();
    publisher.client.publish("telemetry/t1", rumqttc::QoS::AtMostOnce, false, "21.5").await.unwrap();
    assert_eq!(&device.next_publish().await.payload[..], b"now");
    assert_eq!(&viewer.next_publish().await.payload[..], b"21.5");
    // A QoS 2 PUBLISH whose PUBREL never comes.
    let mut raw = crate::mqtt::Raw::mqtt_connect(
        addr,
        crate::mqtt::raw_connect(ProtocolVersion::V4, "half-way", true),
        false,
    )
    .await;
    let mut qos2 = Publish::new("telemetry/t2", "x");
    qos2.qos = QoS::ExactlyOnce;
    qos2.packet_id = 9;
    raw.send_packet(ProtocolVersion::V4, Packet::Publish(qos2)).await;
    assert_eq!(raw.read_packet().await, vec![0x50, 0x02, 0x00, 0x09], "PUBREC");

    let mqttz = eventually(http, "/mqttz", |m| {
        m["connected"] == 4 && m["inflight"]["inflight"] == 1 && m["inflight"]["awaiting_pubrel"] == 1
    })
    .await;
    assert_eq!(mqttz["enabled"], true);
    assert_eq!(mqttz["stored"], 1, "one persistent session: {mqttz}");
    assert_eq!((mqttz["received"]["qos0"].as_u64(), mqttz["received"]["qos1"].as_u64()), (Some(1), Some(1)));
    assert_eq!(mqttz["received"]["qos2"], 1);
    // The viewer gets both telemetry messages at its QoS 0.
    assert_eq!((mqttz["sent"]["qos0"].as_u64(), mqttz["sent"]["qos1"].as_u64()), (Some(2), Some(1)));
    let d = session(&mqttz, "device-1");
    assert_eq!((d["connected"].as_bool(), d["persistent"].as_bool()), (Some(true), Some(true)));
    assert_eq!((d["subscriptions"].as_u64(), d["inflight"].as_u64()), (Some(1), Some(1)));
    assert_eq!(d["account"], "$G");
    let v = session(&mqttz, "viewer");
    assert_eq!(
        (v["persistent"].as_bool(), v["subscriptions"].as_u64(), v["inflight"].as_u64()),
        (Some(false), Some(1), Some(0))
    );
    assert_eq!(session(&mqttz, "half-way")["awaiting_pubrel"], 1);
    let connz = get_json(http, "/connz?mqtt_client=device-1").await;
    let entry = &connz["connections"][0];
    assert_eq!(entry["cid"], d["cid"], "the session's cid is its /connz entry");
    assert_eq!((entry["account"].as_str(), entry["subscriptions"].as_u64()), (None, Some(1)), "{entry}");

    let body = get(http, "/metrics").await.body;
    assert_eq!(sample(&body, "jetway_mqtt_sessions_connected", &[]), 4.0);
    assert_eq!(sample(&body, "jetway_mqtt_sessions_stored", &[]), 1.0);
    assert_eq!(sample(&body, "jetway_mqtt_inflight_messages", &[("direction", "out")]), 1.0);
    assert_eq!(sample(&body, "jetway_mqtt_inflight_messages", &[("direction", "in")]), 1.0);
    for (qos, received, sent) in [("0", 1.0, 2.0), ("1", 1.0, 1.0), ("2", 1.0, 0.0)] {
        assert_eq!(
            sample(&body, "jetway_mqtt_messages_received_total", &[("qos", qos)]),
            received,
            "qos {qos}"
        );
        assert_eq!(sample(&body, "jetway_mqtt_messages_sent_total", &[("qos", qos)]), sent, "qos {qos}");
    }
    assert_eq!(sample(&body, "jetway_messages_received_total", &[("protocol", "mqtt")]), 3.0);
    assert_eq!(sample(&body, "jetway_connections", &[("protocol", "mqtt")]), 4.0);
    assert_eq!(sample(&body, "jetway_connections", &[("protocol", "nats")]), 1.0);
    // MQTT publishes are not counted again as NATS traffic.
    let varz = get_json(http, "/varz").await;
    let nats_in = sample(&body, "jetway_messages_received_total", &[("protocol", "nats")]);
    assert!(nats_in + 3.0 <= varz["in_msgs"].as_f64().unwrap_or(0.0), "{nats_in} vs {}", varz["in_msgs"]);
    assert_eq!(sample(&body, "jetway_stream_messages", &[("stream", "TELEMETRY")]), 2.0);
    assert_eq!(sample(&body, "jetway_consumer_num_pending", &[("consumer", "archiver")]), 2.0);

    // /varz carries nats-server's mqtt block with the bound port.
    assert_eq!(varz["mqtt"]["port"].as_u64(), Some(u64::from(addr.port())));
    assert_eq!(varz["mqtt"]["host"], "127.0.0.1");
    assert_eq!(varz["mqtt"]["max_ack_pending"], 1024);

    // Disconnected, the persistent session stays listed with what it has not acknowledged.
    device.client.disconnect().await.unwrap();
    let away = eventually(http, "/mqttz?state=disconnected", |m| m["total"] == 1).await;
    let d = session(&away, "device-1");
    assert_eq!((d["connected"].as_bool(), d["persistent"].as_bool()), (Some(false), Some(true)));
    assert_eq!((d["subscriptions"].as_u64(), d["inflight"].as_u64()), (Some(1), Some(1)));
    assert!(d.get("cid").is_none());
    let connected = get_json(http, "/mqttz?state=connected").await;
    assert_eq!(connected["total"], 3);
    assert!(connected["sessions"].as_array().unwrap().iter().all(|s| s["connected"] == true));
    assert_eq!(get(http, "/mqttz?state=sideways").await.status, 400);
}

#[tokio::test]
async fn mqttz_and_varz_say_when_mqtt_is_off() {
    let (_server, http) = monitored().await;
    let mqttz = get_json(http, "/mqttz").await;
    assert_eq!((mqttz["enabled"].as_bool(), mqttz["total"].as_u64()), (Some(false), Some(0)));
    assert_eq!(get_json(http, "/varz").await["mqtt"], serde_json::json!({}));
    assert!(samples(&get(http, "/metrics").await.body, "jetway_mqtt_sessions_connected").is_empty());
}

#[tokio::test]
async fn closed_connections_keep_their_subscriptions() {
    let (server, http) = monitored().await;
    let nc = named_client(&server, "leaving").await;
    let _a = nc.subscribe("orders.>").await.unwrap();
    let _b = nc.queue_subscribe("jobs", "workers".into()).await.unwrap();
    nc.flush().await.unwrap();
    let open = eventually(http, "/connz?subs=1", |c| c["connections"][0]["subscriptions"] == 2).await;
    let cid = open["connections"][0]["cid"].as_u64().unwrap();
    drop((_a, _b));
    drop(nc);

    let closed = eventually(http, "/connz?state=closed&subs=1", |c| c["total"] == 1).await;
    let conn = &closed["connections"][0];
    assert_eq!(conn["cid"].as_u64(), Some(cid));
    assert_eq!(conn["subscriptions"], 2, "counted at close: {conn}");
    assert_eq!(conn["subscriptions_list"], serde_json::json!(["jobs", "orders.>"]));
    let detail = get_json(http, "/connz?state=closed&subs=detail").await;
    let subs = detail["connections"][0]["subscriptions_list_detail"].as_array().unwrap().clone();
    assert_eq!(subs.len(), 2);
    assert_eq!((subs[0]["subject"].as_str(), subs[0]["qgroup"].as_str()), (Some("jobs"), Some("workers")));
    assert_eq!(subs[0]["cid"].as_u64(), Some(cid));
    let plain = get_json(http, "/connz?state=closed").await;
    assert!(plain["connections"][0].get("subscriptions_list").is_none(), "only when asked for");
}

/// A TLS connection to `addr` that trusts `pki`'s CA, for `localhost`.
async fn tls_connect(
    addr: SocketAddr,
    pki: &crate::harness::TestPki,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tcp = TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(pki.client_config(None))).connect(name, tcp).await
}

async fn https_get(addr: SocketAddr, pki: &crate::harness::TestPki, path: &str) -> HttpResponse {
    let tls = tls_connect(addr, pki).await.expect("TLS handshake with the monitor");
    get_over(tls, addr, path).await
}

#[tokio::test]
async fn https_monitoring_serves_the_endpoints_with_the_client_port_certificate() {
    let pki = crate::harness::TestPki::new();
    // Mutual TLS on the client port: the monitor still asks browsers for no certificate.
    let server = TestServer::start_tls(&pki, |c| {
        c.https_port = -1;
        c.mqtt.port = -1;
        if let Some(tls) = c.tls.as_mut() {
            tls.verify = true;
        }
    })
    .await;
    let handle = server.handle.as_ref().expect("running");
    assert!(handle.http_addr.is_none(), "HTTPS instead of HTTP");
    let https = handle.https_addr.expect("HTTPS monitor");

    let varz = https_get(https, &pki, "/varz").await;
    assert_eq!(varz.status, 200, "{}", varz.body);
    assert_eq!(varz.header("content-type"), Some("application/json"));
    let v = varz.json();
    assert_eq!(v["https_port"].as_u64(), Some(u64::from(https.port())));
    assert_eq!(v["http_port"], 0);
    for path in ["/connz", "/subsz", "/jsz", "/healthz", "/mqttz"] {
        assert_eq!(https_get(https, &pki, path).await.status, 200, "{path}");
    }
    let metrics = https_get(https, &pki, "/metrics").await;
    assert!(metrics.body.contains("jetway_connections"), "{}", metrics.body);
    assert!(https_get(https, &pki, "/").await.body.contains("<canvas"));

    // Plain HTTP on the HTTPS port gets no answer; a client that does not trust the
    // certificate fails its handshake; neither disturbs the next client.
    let plain = tokio::time::timeout(Duration::from_secs(5), async {
        let mut tcp = TcpStream::connect(https).await.expect("connect");
        tcp.write_all(b"GET /varz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
        let mut buf = Vec::new();
        let _ = tcp.read_to_end(&mut buf).await;
        buf
    })
    .await
    .expect("closed in time");
    assert!(!String::from_utf8_lossy(&plain).contains("200 OK"), "{plain:?}");
    let stranger = crate::harness::TestPki::new();
    assert!(tls_connect(https, &stranger).await.is_err(), "untrusted certificate");
    assert_eq!(https_get(https, &pki, "/healthz").await.json()["status"], "ok");
}

#[tokio::test]
async fn https_monitoring_picks_up_a_reloaded_certificate() {
    let pki = crate::harness::TestPki::new();
    let server = TestServer::start_tls(&pki, |c| c.https_port = -1).await;
    let handle = server.handle.as_ref().expect("running");
    let https = handle.https_addr.expect("HTTPS monitor");
    let served = |tls: &tokio_rustls::client::TlsStream<TcpStream>| {
        tls.get_ref().1.peer_certificates().and_then(|c| c.first()).cloned().expect("certificate")
    };
    let before = served(&tls_connect(https, &pki).await.expect("handshake"));
    let reissued = pki.reissue_server_cert();
    handle.reload(); // SIGHUP
    let after = served(&tls_connect(https, &pki).await.expect("handshake after reload"));
    assert_ne!(before, after);
    assert_eq!(after, reissued.cert_der);
}

#[tokio::test]
async fn https_monitoring_needs_tls_and_excludes_http() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = crate::harness::test_config(dir.path());
    config.https_port = -1;
    let without_tls = jetway::run(config.clone()).await.err().expect("refused without TLS");
    assert!(without_tls.to_string().contains("TLS"), "{without_tls}");
    let pki = crate::harness::TestPki::new();
    config.tls = Some(pki.settings());
    config.http_port = -1;
    let both = jetway::run(config).await.err().expect("refused with both ports");
    assert!(both.to_string().contains("both HTTP"), "{both}");
}

#[tokio::test]
async fn mqtt_clients_are_announced_in_the_system_account() {
    let (server, _http) = monitored_with(|c| c.mqtt.port = -1).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let sink = jetway::router::Sink::Internal(Arc::new(Collector(tx)));
    server.core().system_account.sublist.insert(jetway::router::Subscription::new(
        "$SYS.ACCOUNT.>".into(),
        None,
        sink,
    ));
    let device = crate::mqtt::v4(server.mqtt_addr(), "announced").await;
    let (subject, connect) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
    assert_eq!(subject, "$SYS.ACCOUNT.$G.CONNECT");
    assert_eq!(connect["client"]["name"], "announced");
    device.client.disconnect().await.unwrap();
    let (subject, gone) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
    assert_eq!(subject, "$SYS.ACCOUNT.$G.DISCONNECT");
    assert_eq!(gone["client"]["name"], "announced");
}

const SYSTEM: &str = r#"
system_account: SYS
accounts {
  SYS { users: [{user: sys, password: sys}] }
  APP { users: [{user: app, password: app}] }
}
"#;

/// A request in the system account, answered as JSON.
async fn system_request(client: &async_nats::Client, subject: &str, body: &str) -> Value {
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        client.request(subject.to_string(), body.to_string().into()),
    )
    .await
    .expect("answered in time")
    .unwrap_or_else(|e| panic!("{subject}: {e}"));
    serde_json::from_slice(&reply.payload).expect("JSON")
}

/// The monitoring endpoints over NATS (`$SYS.REQ.SERVER…`), as the `nats` CLI's `server`
/// commands ask them: nats-server's envelope, options and filters, system account only.
#[tokio::test]
async fn system_account_requests_answer_like_the_monitoring_endpoints() {
    let server = crate::harness::start_conf(SYSTEM).await;
    let login = |user: &'static str| {
        async_nats::ConnectOptions::with_user_and_password(user.into(), user.into()).connect(server.url())
    };
    let sys = login("sys").await.expect("system user");
    let app = login("app").await.expect("app user");
    let _sub = app.subscribe("app.events").await.expect("sub");
    app.flush().await.expect("flush");
    let id = server.core().server_id.clone();

    let ping = system_request(&sys, "$SYS.REQ.SERVER.PING", "").await;
    assert_eq!(ping["server"]["id"], id.as_str());
    assert_eq!(ping["server"]["name"], server.core().server_name.as_str());
    assert_eq!(ping["statsz"]["connections"], 2);
    assert!(ping["statsz"]["subscriptions"].as_u64().is_some_and(|n| n >= 1), "{ping}");

    let varz = system_request(&sys, "$SYS.REQ.SERVER.PING.VARZ", "").await;
    assert_eq!(varz["data"]["server_id"], id.as_str());
    assert_eq!(varz["server"]["id"], id.as_str());

    let connz = system_request(
        &sys,
        &format!("$SYS.REQ.SERVER.{id}.CONNZ"),
        r#"{"subscriptions": true, "acc": "APP"}"#,
    )
    .await;
    let conns = connz["data"]["connections"].as_array().expect("connections");
    assert_eq!(conns.len(), 1, "{connz}");
    assert_eq!(conns[0]["subscriptions_list"], serde_json::json!(["app.events"]));

    let idz = system_request(&sys, "$SYS.REQ.SERVER.PING.IDZ", "").await;
    assert_eq!(idz["id"], id.as_str());
    let health = system_request(&sys, "$SYS.REQ.SERVER.PING.HEALTHZ", "").await;
    assert_eq!(health["data"]["status"], "ok");
    let bad = system_request(&sys, "$SYS.REQ.SERVER.PING.CONNZ", r#"{"sort": "nonsense"}"#).await;
    assert_eq!(bad["error"]["code"], 400, "{bad}");

    // Filters that leave this server out: no answer.
    let filtered = sys.request("$SYS.REQ.SERVER.PING.VARZ", r#"{"server_name": "elsewhere"}"#.into());
    assert!(tokio::time::timeout(Duration::from_millis(500), filtered).await.map_or(true, |r| r.is_err()));
    // Outside the system account nobody answers.
    let outside = app.request("$SYS.REQ.SERVER.PING", "".into()).await;
    assert!(outside.is_err(), "answered outside the system account");
}
